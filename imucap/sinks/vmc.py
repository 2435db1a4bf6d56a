"""VMC protocol over OSC/UDP: send output frames to VSeeFace, Warudo, VNyan and the like.

Each frame is one OSC bundle (time tag "immediately") holding, in this order:

- ``/VMC/Ext/OK (int)1``: the model is loaded (the VMC spec's short form, which every
  receiver accepts; calibration state and mode, added in V2.5, are optional);
- ``/VMC/Ext/T (float)time``: the sender's relative time, here seconds since the first frame
  this sink sent (on the frames' own clock);
- ``/VMC/Ext/Blend/Val (string)name (float)value`` for each of the 52 blendshapes, named as
  VRM "perfect sync" clips are (:attr:`imucap.vocab.NameScheme.PASCAL`: ``EyeBlinkLeft``,
  ``JawOpen``, ...), in ARKit order;
- ``/VMC/Ext/Blend/Apply``: the receiver applies the values it has accumulated.

Receivers listen on port 39539 by default. The bundle's layout is built once with python-osc;
each frame then only writes its 53 floats into that layout, which keeps the cost per frame in
the microseconds where building 55 OSC messages from scratch costs about a millisecond.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from imucap.vocab import NameScheme, names

from .base import LIVE_EXTRA_HINT, SinkError, UdpSink

if TYPE_CHECKING:
    from imucap.inference.engine import FaceFrame

__all__ = [
    "ADDRESS_APPLY",
    "ADDRESS_OK",
    "ADDRESS_TIME",
    "ADDRESS_VAL",
    "DEFAULT_PORT",
    "VMC_BLEND_NAMES",
    "VmcBundle",
    "VmcSender",
]

#: The default port of VMC performer receivers (VSeeFace, Warudo, EVMC4U).
DEFAULT_PORT = 39539
ADDRESS_OK = "/VMC/Ext/OK"
ADDRESS_TIME = "/VMC/Ext/T"
ADDRESS_VAL = "/VMC/Ext/Blend/Val"
ADDRESS_APPLY = "/VMC/Ext/Blend/Apply"
#: Blend clip names sent, in ARKit order: the perfect-sync spelling of each ARKit name.
VMC_BLEND_NAMES: tuple[str, ...] = names(NameScheme.PASCAL)

_BUNDLE_HEADER_BYTES = 16  # "#bundle\0" and the 8-byte time tag
_FLOAT_BYTES = np.arange(4)
_TIME = struct.Struct(">f")


def _import_osc():
    try:
        from pythonosc import osc_bundle_builder, osc_message_builder
        from pythonosc.osc_bundle import OscBundle
    except ImportError:
        raise SinkError(f"the VMC sink needs python-osc: {LIVE_EXTRA_HINT}") from None
    return osc_bundle_builder, osc_message_builder, OscBundle


class VmcBundle:
    """The per-frame VMC bundle: laid out once by python-osc, then refilled for each frame.

    Args:
        blend_names: Clip names, one per weight.

    Raises:
        SinkError: If python-osc is not installed.
    """

    def __init__(self, blend_names: tuple[str, ...] = VMC_BLEND_NAMES) -> None:
        bundle_builder, message_builder, osc_bundle = _import_osc()

        def message(address: str, *args: tuple[object, str]):
            builder = message_builder.OscMessageBuilder(address=address)
            for value, kind in args:
                builder.add_arg(value, kind)
            return builder.build()

        self.blend_names = tuple(blend_names)
        messages = [message(ADDRESS_OK, (1, "i")), message(ADDRESS_TIME, (0.0, "f"))]
        messages += [message(ADDRESS_VAL, (name, "s"), (0.0, "f")) for name in self.blend_names]
        messages.append(message(ADDRESS_APPLY))
        builder = bundle_builder.OscBundleBuilder(bundle_builder.IMMEDIATELY)
        for m in messages:
            builder.add_content(m)
        layout = builder.build().dgram
        # Each element is a 4-byte size and the message; a float argument is a message's last
        # 4 bytes. The T message is element 1, the Val messages elements 2 to 2 + n.
        ends = _BUNDLE_HEADER_BYTES + np.cumsum([4 + m.size for m in messages])
        if int(ends[-1]) != len(layout):
            raise SinkError("python-osc laid out the VMC bundle unexpectedly: report this with "
                            "your python-osc version")
        self._time_at = int(ends[1]) - 4
        self._vals_at = ((ends[2:2 + len(self.blend_names)] - 4)[:, None] + _FLOAT_BYTES).ravel()
        self._buffer = bytearray(layout)
        self._bytes = np.frombuffer(self._buffer, dtype=np.uint8)
        self._check(osc_bundle)

    def fill(self, time_s: float, weights: ArrayLike) -> bytearray:
        """Writes a frame's time and weights into the bundle; returns it (reused each call).

        Weights that are not finite are sent as 0.
        """
        values = np.asarray(weights, dtype=">f4")
        if values.shape != (len(self.blend_names),):
            raise ValueError(f"expected {len(self.blend_names)} weights, got shape "
                             f"{values.shape}")
        if not np.isfinite(values).all():
            values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        self._bytes[self._vals_at] = values.view(np.uint8)
        _TIME.pack_into(self._buffer, self._time_at, time_s if math.isfinite(time_s) else 0.0)
        return self._buffer

    def encode(self, time_s: float, weights: ArrayLike) -> bytes:
        """The bundle for one frame, as bytes of its own."""
        return bytes(self.fill(time_s, weights))

    def _check(self, osc_bundle) -> None:
        """Reads a filled bundle back with python-osc: the layout must hold what was written."""
        probe = np.linspace(0.0, 1.0, len(self.blend_names), dtype=np.float32)
        parsed = osc_bundle(self.encode(1.5, probe))
        messages = [parsed.content(i) for i in range(parsed.num_contents)]
        vals = [m.params for m in messages[2:-1]]
        if not (messages[0].address == ADDRESS_OK and messages[1].params == [1.5]
                and [v[0] for v in vals] == list(self.blend_names)
                and np.array_equal(np.array([v[1] for v in vals], np.float32), probe)
                and messages[-1].address == ADDRESS_APPLY):
            raise SinkError("python-osc reads the VMC bundle back differently: report this "
                            "with your python-osc version")


class VmcSender(UdpSink):
    """Sends each frame's blendshapes to a VMC receiver as one OSC bundle.

    Args:
        host: Where the receiver runs.
        port: Its VMC port.

    Raises:
        SinkError: On a port out of range (at once); on a host that does not resolve or a
            missing python-osc (at ``open()``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        super().__init__(host, port, scheme="vmc", what="VMC")
        self._bundle: VmcBundle | None = None
        self._t0: float | None = None

    def _open(self) -> None:
        if self._bundle is None:
            self._bundle = VmcBundle()
        self._t0 = None
        super()._open()

    def encode(self, frame: FaceFrame) -> bytes:
        """The bundle this sender sends for ``frame`` (needs ``open()`` first)."""
        return bytes(self._fill(frame))

    def _fill(self, frame: FaceFrame) -> bytearray:
        if self._bundle is None:
            raise SinkError(f"sink {self.name} is not open: call open() first")
        if self._t0 is None:
            self._t0 = frame.time_s
        return self._bundle.fill(frame.time_s - self._t0, frame.weights)

    def _send(self, frame: FaceFrame) -> int:
        return self._transmit(self._fill(frame))
