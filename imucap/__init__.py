"""imucap: sensor-based facial capture from face-worn IMUs to ARKit blendshapes and FACS AUs.

The core imports fast and without heavy extras; rooms of the toolkit live in subpackages:
``imucap.firmware_bridge`` (the wire), ``imucap.devices`` (transports and streams),
``imucap.vocab`` (blendshape names), ``imucap.datasets``, ``imucap.models``, ``imucap.viewers``.
"""

__version__ = "0.1.0"
