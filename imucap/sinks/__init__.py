"""Live sinks: send each output face frame to Unreal Live Link, VMC receivers and LSL.

>>> from imucap.sinks import FanOut
>>> with FanOut(["livelink://127.0.0.1", "vmc://127.0.0.1", "lsl"]) as out:  # doctest: +SKIP
...     for frame in engine_frames:
...         out.send(frame)

Importing this package loads neither python-osc nor pylsl; the sinks that need them import
them when opened and say ``pip install 'imucap[live]'`` when they are missing.
"""

from .base import Sink, SinkError, SinkStats
from .fanout import FanOut, FanOutStats
from .livelink import (
    LiveLinkPacket,
    LiveLinkPacketError,
    LiveLinkReceiver,
    LiveLinkReceiverStats,
    LiveLinkSender,
    decode_packet,
    encode_packet,
)
from .lsl import LslSink
from .uri import SINK_SCHEMES, open_sink, sink_from_uri
from .vmc import VmcSender

__all__ = [
    "SINK_SCHEMES",
    "FanOut",
    "FanOutStats",
    "LiveLinkPacket",
    "LiveLinkPacketError",
    "LiveLinkReceiver",
    "LiveLinkReceiverStats",
    "LiveLinkSender",
    "LslSink",
    "Sink",
    "SinkError",
    "SinkStats",
    "VmcSender",
    "decode_packet",
    "encode_packet",
    "open_sink",
    "sink_from_uri",
]
