"""A virtual face-IMU array that speaks protocol v1, with fault injection, for use without hardware.

Build an :class:`EmulatedArray` from an :class:`EmulatorConfig` and serve it with a runner::

    with PtyRunner(EmulatedArray(EmulatorConfig(rate_hz=100))) as emu:
        print(emu.port)  # a serial-port path that pyserial opens
"""

from .device import (
    Action,
    EmulatedArray,
    EmulatorConfig,
    FaultConfig,
    FaultReport,
    auto_samples_per_frame,
)
from .motion import MotionSource, SyntheticMotion
from .runners import (
    DatagramFaults,
    DatagramReport,
    EmulatorRunner,
    PtyRunner,
    TcpRunner,
    UdpRunner,
)

__all__ = [
    "Action",
    "DatagramFaults",
    "DatagramReport",
    "EmulatedArray",
    "EmulatorConfig",
    "EmulatorRunner",
    "FaultConfig",
    "FaultReport",
    "MotionSource",
    "PtyRunner",
    "SyntheticMotion",
    "TcpRunner",
    "UdpRunner",
    "auto_samples_per_frame",
]
