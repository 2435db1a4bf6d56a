"""The wire between face-worn IMU arrays and the host: protocol v1, codec, firmware and emulator.

Nothing outside this package parses bytes from a sensor. ``PROTOCOL.md`` beside this file is
the specification; :mod:`imucap.firmware_bridge.protocol` holds the message types and
:mod:`imucap.firmware_bridge.codec` turns byte streams into messages and back.
"""

from .codec import DecoderCounters, FrameDecoder, Packet, encode_frame
from .protocol import (
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Ack,
    Content,
    DeviceInfo,
    GetInfo,
    Log,
    MsgType,
    Ping,
    Pong,
    ProtocolVersionError,
    Samples,
    SetRate,
    Start,
    Stop,
)

__all__ = [
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "Ack",
    "Content",
    "DecoderCounters",
    "DeviceInfo",
    "FrameDecoder",
    "GetInfo",
    "Log",
    "MsgType",
    "Packet",
    "Ping",
    "Pong",
    "ProtocolVersionError",
    "Samples",
    "SetRate",
    "Start",
    "Stop",
    "encode_frame",
]
