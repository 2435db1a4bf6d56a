"""Byte streams to protocol messages and back: COBS framing, CRC-32 check, streaming decoder.

:func:`encode_frame` makes the bytes a sender writes; :class:`FrameDecoder` takes bytes as they
arrive in chunks of any size and returns whole messages, counting everything it discards.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields

from . import cobs
from .protocol import (
    CRC_SIZE,
    HEADER,
    MAX_BODY_SIZE,
    MESSAGE_CLASSES,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Message,
    PayloadError,
    Samples,
    check_version,
    version_byte,
)

DELIMITER = b"\x00"
MAX_ENCODED_SIZE = MAX_BODY_SIZE + MAX_BODY_SIZE // 254 + 1
"""Longest COBS-encoded frame a receiver accepts, delimiter excluded."""


def crc32(data: bytes) -> int:
    """CRC-32 as in zlib and IEEE 802.3 (reflected 0x04C11DB7, init and xor-out 0xFFFFFFFF)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_body(msg: Message, seq: int, *, major: int = PROTOCOL_MAJOR,
                minor: int = PROTOCOL_MINOR) -> bytes:
    """Header, payload and CRC of one frame, before COBS."""
    body = HEADER.pack(version_byte(major, minor), int(msg.TYPE), seq & 0xFFFF)
    body += msg.encode_payload()
    if len(body) + CRC_SIZE > MAX_BODY_SIZE:
        raise ValueError(f"frame body of {len(body) + CRC_SIZE} bytes exceeds {MAX_BODY_SIZE}")
    return body + crc32(body).to_bytes(4, "little")


def encode_frame(msg: Message, seq: int, *, major: int = PROTOCOL_MAJOR,
                 minor: int = PROTOCOL_MINOR) -> bytes:
    """The bytes to send for one message: COBS-encoded body followed by the 0x00 delimiter.

    Args:
        msg: Any message of :mod:`.protocol`.
        seq: Sequence number, taken modulo 65536.
        major: Protocol major version to write (tests write others).
        minor: Protocol minor version to write.
    """
    return cobs.encode(encode_body(msg, seq, major=major, minor=minor)) + DELIMITER


@dataclass(slots=True)
class Packet:
    """One decoded frame: its header fields and its message (None for an unknown type).

    Built for every frame, so not frozen; treat it as read-only.
    """

    seq: int
    minor: int
    type: int
    message: Message | None
    size: int
    """Encoded size on the wire, delimiter included."""


@dataclass
class DecoderCounters:
    """What a :class:`FrameDecoder` has seen; every discarded byte is accounted for."""

    bytes_in: int = 0
    frames_ok: int = 0
    crc_errors: int = 0
    cobs_errors: int = 0
    short_frames: int = 0
    oversize_frames: int = 0
    payload_errors: int = 0
    version_errors: int = 0
    unknown_types: int = 0
    bytes_discarded: int = 0
    resyncs: int = 0

    @property
    def bad_frames(self) -> int:
        """Frames dropped as damaged: CRC, COBS, too short, too long or malformed payload."""
        return (self.crc_errors + self.cobs_errors + self.short_frames + self.oversize_frames
                + self.payload_errors)

    def as_dict(self) -> dict[str, int]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["bad_frames"] = self.bad_frames
        return out


class FrameDecoder:
    """Streaming decoder: feed bytes in chunks of any size, get whole messages out.

    A damaged frame (bad COBS, bad CRC, too short or too long) is counted and skipped up to the
    next delimiter; a run of damaged frames followed by a good one counts as one resync.
    Frames of a type this host does not know are counted and skipped. A frame of another major
    protocol version is counted in ``version_errors`` and skipped, and its version is kept in
    :attr:`peer_version`; call :meth:`check_peer_version` to turn it into a clear error.

    Args:
        peer: Word used in error messages for the sender ("device" or "host").
    """

    def __init__(self, *, peer: str = "device") -> None:
        self.counters = DecoderCounters()
        self._peer = peer
        self._buf = bytearray()
        self._overflow_bytes = 0  # bytes of an over-long frame seen but no longer stored
        self._in_bad_run = False
        self.peer_version: tuple[int, int] | None = None
        """Version of the last frame refused for its major version, if any."""

    def check_peer_version(self) -> None:
        """Raise :class:`~.protocol.ProtocolVersionError` if a frame of another major came."""
        if self.peer_version is not None:
            check_version(*self.peer_version, peer=self._peer)

    def reset(self) -> None:
        """Forget a partial frame (after a reconnect); counters are kept."""
        self._buf.clear()
        self._overflow_bytes = 0
        self._in_bad_run = False

    def feed(self, data: bytes) -> list[Packet]:
        """Decode what ``data`` completes; keep an unfinished frame for the next call."""
        self.counters.bytes_in += len(data)
        out: list[Packet] = []
        chunks = data.split(DELIMITER)
        tail = chunks.pop()
        for i, chunk in enumerate(chunks):
            if i == 0 and (self._buf or self._overflow_bytes):
                if self._overflow_bytes:
                    self._bad(len(self._buf) + self._overflow_bytes + len(chunk), "oversize_frames")
                    self._buf.clear()
                    self._overflow_bytes = 0
                    continue
                chunk = bytes(self._buf + chunk)
                self._buf.clear()
            if not chunk:
                continue  # an empty frame: senders may send extra delimiters to flush
            packet = self._decode_chunk(chunk)
            if packet is not None:
                out.append(packet)
        if tail:
            self._keep_partial(tail)
        return out

    def _keep_partial(self, data: bytes) -> None:
        if self._overflow_bytes:
            self._overflow_bytes += len(data)
        elif len(self._buf) + len(data) > MAX_ENCODED_SIZE:
            # Stop storing an over-long frame; it is counted and dropped at its delimiter.
            self._overflow_bytes = len(data)
        else:
            self._buf += data

    def _bad(self, nbytes: int, counter: str) -> None:
        setattr(self.counters, counter, getattr(self.counters, counter) + 1)
        self.counters.bytes_discarded += nbytes
        self._in_bad_run = True

    def _decode_chunk(self, chunk: bytes) -> Packet | None:
        if len(chunk) > MAX_ENCODED_SIZE:
            self._bad(len(chunk), "oversize_frames")
            return None
        try:
            body = cobs.decode(chunk)
        except cobs.CobsError:
            self._bad(len(chunk), "cobs_errors")
            return None
        if len(body) < HEADER.size + CRC_SIZE:
            self._bad(len(chunk), "short_frames")
            return None
        if len(body) > MAX_BODY_SIZE:
            self._bad(len(chunk), "oversize_frames")
            return None
        view = memoryview(body)  # slices of a view copy nothing
        if crc32(view[:-CRC_SIZE]) != int.from_bytes(view[-CRC_SIZE:], "little"):
            self._bad(len(chunk), "crc_errors")
            return None
        version, mtype, seq = HEADER.unpack_from(body)
        major, minor = version >> 4, version & 0x0F
        if major != PROTOCOL_MAJOR:
            self.counters.version_errors += 1
            self.counters.bytes_discarded += len(chunk)
            self.peer_version = (major, minor)
            return None
        cls = MESSAGE_CLASSES.get(mtype)
        message = None
        if cls is not None:
            try:
                payload = view[HEADER.size : -CRC_SIZE]
                message = cls.decode_payload(payload if cls is Samples else bytes(payload))
            except (PayloadError, UnicodeDecodeError):
                self._bad(len(chunk), "payload_errors")
                return None
        if self._in_bad_run:
            self.counters.resyncs += 1
            self._in_bad_run = False
        self.counters.frames_ok += 1
        if cls is None:
            self.counters.unknown_types += 1
        return Packet(seq, minor, mtype, message, len(chunk) + 1)
