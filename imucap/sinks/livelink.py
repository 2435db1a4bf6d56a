"""Live Link Face over UDP: send output frames to Unreal, and receive an iPhone's frames.

Packet layout (version 6, as the Live Link Face app sends it and Unreal's LiveLinkFace
plugin reads it), all big-endian:

====================  ==================================================================
uint8                 version, 6
int32 + bytes         device id: byte length, then UTF-8
int32 + bytes         subject name: byte length, then UTF-8
int32                 frame number (frames of the rate below)
float32               sub-frame, the fraction of a frame in [0, 1)
int32, int32          frame rate numerator and denominator (60/1; 30000/1001 for 29.97)
uint8                 number of values, always 61
61 x float32          :data:`imucap.vocab.LIVELINK_UDP_NAMES`: the 52 blendshapes in Unreal's
                      EARFaceBlendShape order, head yaw/pitch/roll, left eye yaw/pitch/roll,
                      right eye yaw/pitch/roll
====================  ==================================================================

:class:`LiveLinkSender` stamps each frame with ``frame number = floor(time_s * fps)`` and the
fraction as its sub-frame, so the frame's host time survives the trip; head and eye angles are
0 (imucap does not estimate them). :class:`LiveLinkReceiver` listens on a UDP port (as Unreal
does) and hands out decoded :class:`LiveLinkPacket` s, for recording an iPhone's frames as the
truth next to the IMUs.
"""

from __future__ import annotations

import errno
import math
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from imucap.vocab import NUM_LIVELINK_VALUES, from_livelink, to_livelink

from .base import DropOldestQueue, SinkError, UdpSink, check_port

if TYPE_CHECKING:
    from imucap.inference.engine import FaceFrame

__all__ = [
    "DEFAULT_PORT",
    "PACKET_VERSION",
    "REJECT_KINDS",
    "LiveLinkPacket",
    "LiveLinkPacketError",
    "LiveLinkReceiver",
    "LiveLinkReceiverStats",
    "LiveLinkSender",
    "decode_packet",
    "default_device_id",
    "encode_packet",
    "rate_fraction",
]

#: Live Link Face's UDP port (the app's default target, Unreal's default listener).
DEFAULT_PORT = 11111
#: The packet version this module writes and accepts.
PACKET_VERSION = 6

_LEN = struct.Struct(">i")
_TIMING = struct.Struct(">ifiiB")  # frame number, sub-frame, rate num/den, value count
_VALUES_BYTES = 4 * NUM_LIVELINK_VALUES
_INT32_MAX = 2**31 - 1
# For each of the first 52 packet positions, the ARKit index of the weight that goes there
# (the table's own layout, read back through to_livelink once).
_UDP_FROM_ARKIT = to_livelink(np.arange(52, dtype=np.float32))[:52].astype(np.intp)
#: Why a packet was rejected: the kinds counted by :class:`LiveLinkReceiverStats`.
REJECT_KINDS = ("version", "count", "short", "oversized", "malformed")


class LiveLinkPacketError(SinkError):
    """A datagram that is not a version-6 Live Link Face packet.

    Attributes:
        kind: One of ``version``, ``count``, ``short``, ``oversized``, ``malformed``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class LiveLinkPacket:
    """One decoded Live Link Face packet.

    Attributes:
        device_id: The sender's device id.
        subject: The subject name (what Unreal lists as the Live Link subject).
        frame_number: Frame number at ``rate_numerator / rate_denominator`` frames/s.
        subframe: Fraction of a frame, in [0, 1).
        rate_numerator: Frame rate numerator.
        rate_denominator: Frame rate denominator.
        weights: float32 (52,) blendshape weights in :data:`imucap.vocab.ARKIT_NAMES` order.
        head_ypr: float32 (3,) head yaw, pitch, roll.
        left_eye_ypr: float32 (3,) left eye yaw, pitch, roll.
        right_eye_ypr: float32 (3,) right eye yaw, pitch, roll.
        arrival_time_s: Host time (``time.monotonic()``) at which it arrived; None when
            decoded from bytes that did not come off a socket.
        source: ``(address, port)`` it came from, when received.
    """

    device_id: str
    subject: str
    frame_number: int
    subframe: float
    rate_numerator: int
    rate_denominator: int
    weights: np.ndarray
    head_ypr: np.ndarray
    left_eye_ypr: np.ndarray
    right_eye_ypr: np.ndarray
    arrival_time_s: float | None = None
    source: tuple[str, int] | None = None

    @property
    def frame_rate_hz(self) -> float:
        """The frame rate as a float (0 when the denominator is 0)."""
        return self.rate_numerator / self.rate_denominator if self.rate_denominator else 0.0

    @property
    def time_s(self) -> float:
        """The packet's frame time in seconds, ``(frame_number + subframe) / rate``."""
        rate = self.frame_rate_hz
        return (self.frame_number + self.subframe) / rate if rate else math.nan


def rate_fraction(fps: float) -> tuple[int, int]:
    """Frame rate as Live Link's numerator and denominator: ``60 -> (60, 1)``,
    ``59.94 -> (60000, 1001)``.

    Raises:
        SinkError: If ``fps`` is not a positive finite number.
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise SinkError(f"Live Link frame rate must be a positive number, got {fps!r}")
    if fps != round(fps):
        # The NTSC family (23.976, 29.97, 59.94) is n * 1000/1001, not the decimal written.
        ntsc = round(fps * 1.001)
        if abs(ntsc * 1000 / 1001 - fps) < 0.005:
            return ntsc * 1000, 1001
    frac = Fraction(fps).limit_denominator(1000)
    return frac.numerator, frac.denominator


def default_device_id(subject: str = "imucap") -> str:
    """A device id that stays the same for this host and subject across runs."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"imucap://{socket.gethostname()}/{subject}"))


def _text_field(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, got {type(text).__name__}")
    data = text.encode("utf-8")
    return _LEN.pack(len(data)) + data


def _header(device_id: str, subject: str) -> bytes:
    return bytes([PACKET_VERSION]) + _text_field(device_id, "device_id") + _text_field(
        subject, "subject")


def _values_bytes(values: np.ndarray) -> bytes:
    return np.asarray(values, dtype=">f4").tobytes()


def encode_packet(
    weights: ArrayLike,
    *,
    frame_number: int,
    subframe: float = 0.0,
    rate: tuple[int, int] = (60, 1),
    subject: str = "imucap",
    device_id: str = "imucap",
    head_ypr: ArrayLike = (0.0, 0.0, 0.0),
    left_eye_ypr: ArrayLike = (0.0, 0.0, 0.0),
    right_eye_ypr: ArrayLike = (0.0, 0.0, 0.0),
) -> bytes:
    """Builds one version-6 Live Link Face packet.

    Args:
        weights: 52 blendshape weights in :data:`imucap.vocab.ARKIT_NAMES` order.
        frame_number: int32 frame number.
        subframe: Fraction of a frame, [0, 1).
        rate: Frame rate as ``(numerator, denominator)``; see :func:`rate_fraction`.
        subject: Subject name.
        device_id: Device id.
        head_ypr: Head yaw, pitch, roll.
        left_eye_ypr: Left eye yaw, pitch, roll.
        right_eye_ypr: Right eye yaw, pitch, roll.

    Raises:
        ValueError: On a wrong number of weights or angles.
        struct.error: If a number does not fit its int32 field.
    """
    values = to_livelink(weights, head_ypr=head_ypr, left_eye_ypr=left_eye_ypr,
                         right_eye_ypr=right_eye_ypr)
    timing = _TIMING.pack(int(frame_number), float(subframe), int(rate[0]), int(rate[1]),
                          NUM_LIVELINK_VALUES)
    return _header(device_id, subject) + timing + _values_bytes(values)


def _read_text(data: bytes, pos: int, what: str) -> tuple[str, int]:
    if pos + 4 > len(data):
        raise LiveLinkPacketError("short", f"packet ends inside the {what} length "
                                           f"({len(data)} bytes)")
    (length,) = _LEN.unpack_from(data, pos)
    pos += 4
    if length < 0:
        raise LiveLinkPacketError("malformed", f"negative {what} length {length}")
    if pos + length > len(data):
        raise LiveLinkPacketError("short", f"packet ends inside the {what} ({length} bytes "
                                           f"announced, {len(data) - pos} left)")
    try:
        text = data[pos:pos + length].decode("utf-8")
    except UnicodeDecodeError:
        raise LiveLinkPacketError("malformed", f"{what} is not UTF-8") from None
    return text, pos + length


def decode_packet(data: bytes, *, arrival_time_s: float | None = None,
                  source: tuple[str, int] | None = None) -> LiveLinkPacket:
    """Decodes one version-6 Live Link Face packet.

    Args:
        data: The whole datagram.
        arrival_time_s: Stored in the result.
        source: Stored in the result.

    Raises:
        LiveLinkPacketError: With ``kind`` ``version`` (not version 6), ``count`` (not 61
            values), ``short`` (ends early), ``oversized`` (bytes after the 61 values) or
            ``malformed`` (a negative length, text that is not UTF-8).
    """
    data = bytes(data)
    if not data:
        raise LiveLinkPacketError("short", "empty packet")
    if data[0] != PACKET_VERSION:
        raise LiveLinkPacketError("version", f"packet version {data[0]}, expected "
                                             f"{PACKET_VERSION}")
    device_id, pos = _read_text(data, 1, "device id")
    subject, pos = _read_text(data, pos, "subject name")
    if pos + _TIMING.size > len(data):
        raise LiveLinkPacketError("short", f"packet ends inside the frame time "
                                           f"({len(data)} bytes)")
    frame_number, subframe, num, den, count = _TIMING.unpack_from(data, pos)
    pos += _TIMING.size
    if count != NUM_LIVELINK_VALUES:
        raise LiveLinkPacketError("count", f"packet has {count} values, expected "
                                           f"{NUM_LIVELINK_VALUES}")
    left = len(data) - pos
    if left < _VALUES_BYTES:
        raise LiveLinkPacketError("short", f"packet ends inside the values ({left} of "
                                           f"{_VALUES_BYTES} bytes)")
    if left > _VALUES_BYTES:
        raise LiveLinkPacketError("oversized", f"{left - _VALUES_BYTES} bytes after the "
                                               f"{NUM_LIVELINK_VALUES} values")
    values = np.frombuffer(data, dtype=">f4", count=NUM_LIVELINK_VALUES, offset=pos)
    split = from_livelink(values.astype(np.float32))
    return LiveLinkPacket(device_id, subject, frame_number, subframe, num, den,
                          split.weights, split.head_ypr, split.left_eye_ypr,
                          split.right_eye_ypr, arrival_time_s, source)


class LiveLinkSender(UdpSink):
    """Sends each frame to a Live Link Face listener (Unreal's LiveLinkFace source).

    Args:
        host: Where Unreal runs.
        port: Its Live Link Face port.
        subject: The subject name Unreal shows.
        device_id: Device id in each packet; default :func:`default_device_id`.
        fps: Frame rate written into packets, used to turn frame times into frame numbers.

    Frame numbers are ``floor(frame.time_s * fps)`` modulo 2**31 (the field is int32), the
    remainder is the sub-frame. Weights that are not finite are sent as 0.

    Raises:
        SinkError: On a port out of range or a bad frame rate (at once); on a host that does
            not resolve (at ``open()``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                 subject: str = "imucap", device_id: str | None = None,
                 fps: float = 60.0) -> None:
        super().__init__(host, port, scheme="livelink", what="Live Link")
        self.subject = subject
        self.device_id = default_device_id(subject) if device_id is None else device_id
        self.rate = rate_fraction(fps)
        self._frames_per_s = self.rate[0] / self.rate[1]
        self._header = _header(self.device_id, subject)
        self._values = np.zeros(NUM_LIVELINK_VALUES, dtype=">f4")  # head and eyes stay 0

    def encode(self, frame: FaceFrame) -> bytes:
        """The packet this sender sends for ``frame``."""
        weights = np.asarray(frame.weights, dtype=np.float32)
        if weights.shape != (52,):
            raise ValueError(f"expected 52 blendshape weights, got shape {weights.shape}")
        values = self._values
        values[:52] = weights[_UDP_FROM_ARKIT]
        if not np.isfinite(values).all():
            np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        position = frame.time_s * self._frames_per_s
        # A time on the frame grid (k / 60) can land a hair below k in floating point: count
        # it as frame k, not as frame k - 1 at subframe 0.99999.
        whole = math.floor(position + 1e-6)
        timing = _TIMING.pack(whole % (_INT32_MAX + 1), max(0.0, position - whole), self.rate[0],
                              self.rate[1], NUM_LIVELINK_VALUES)
        return self._header + timing + values.tobytes()

    def _send(self, frame: FaceFrame) -> int:
        return self._transmit(self.encode(frame))


@dataclass(frozen=True)
class LiveLinkReceiverStats:
    """What a :class:`LiveLinkReceiver` saw.

    Attributes:
        packets: Packets accepted.
        bytes_received: Bytes of every datagram, accepted or not.
        wrong_version: Rejected: not version 6.
        wrong_count: Rejected: a value count other than 61.
        short: Rejected: ended early.
        oversized: Rejected: bytes after the 61 values.
        malformed: Rejected: a negative length or text that is not UTF-8.
        queue_drops: Accepted packets lost because nobody read them in time.
        last_error: Why the most recent packet was rejected.
    """

    packets: int = 0
    bytes_received: int = 0
    wrong_version: int = 0
    wrong_count: int = 0
    short: int = 0
    oversized: int = 0
    malformed: int = 0
    queue_drops: int = 0
    last_error: str | None = None

    @property
    def rejected(self) -> int:
        """All rejected packets."""
        return (self.wrong_version + self.wrong_count + self.short + self.oversized
                + self.malformed)


_STAT_FIELD = {"version": "wrong_version", "count": "wrong_count", "short": "short",
               "oversized": "oversized", "malformed": "malformed"}


class LiveLinkReceiver:
    """Listens for Live Link Face packets (an iPhone running the app) on a UDP port.

    A background thread receives and decodes; read the packets with :meth:`read` or by
    iterating. When nobody reads, the oldest of ``queue_size`` packets are dropped (counted).

    Args:
        port: UDP port to listen on; 0 picks a free one (see :attr:`address`).
        host: Address to listen on: loopback by default (it listens on a network, so every
            other address is the caller's choice); ``0.0.0.0`` is every IPv4 interface.
        queue_size: Packets kept for :meth:`read`.

    Example:
        >>> with LiveLinkReceiver(port=11111) as rx:  # doctest: +SKIP
        ...     for packet in rx:
        ...         print(packet.subject, packet.frame_number, packet.weights[:3])
    """

    _POLL_S = 0.1

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1", *,
                 queue_size: int = 1024) -> None:
        self.host = host
        self.port = 0 if port == 0 else check_port(port, "Live Link receiver")
        self._queue_size = queue_size
        self._queue: DropOldestQueue[LiveLinkPacket] = DropOldestQueue(queue_size)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_STAT_FIELD.values(), 0)
        self._packets = 0
        self._bytes = 0
        self._drops = 0
        self._last_error: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` actually bound (the port chosen when 0 was asked for)."""
        if self._sock is None:
            return self.host, self.port
        return self._sock.getsockname()[:2]

    def open(self) -> LiveLinkReceiver:
        """Binds the port and starts receiving; returns self.

        Raises:
            SinkError: The port is taken, not allowed, or the host is not an address here.
        """
        if self._sock is not None:
            return self
        if self._queue.closed:
            self._queue = DropOldestQueue(self._queue_size)
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM,
                                       flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise SinkError(f"cannot resolve {self.host!r} to listen for Live Link ({exc}): "
                            f"give an address of this machine, or 0.0.0.0") from None
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise SinkError(f"UDP port {self.port} is already in use (another Live Link "
                                f"receiver?): close that program or pick another port") from None
            raise SinkError(f"cannot listen for Live Link on {self.host}:{self.port} ({exc}): "
                            f"pick another port or address") from None
        sock.settimeout(self._POLL_S)
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="imucap-livelink-rx",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stops receiving and releases the port. Packets already queued can still be read."""
        if self._sock is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._sock.close()
        self._sock = None
        self._queue.close()

    def read(self, timeout_s: float | None = None) -> LiveLinkPacket | None:
        """The oldest unread packet; None after ``timeout_s``, or once closed and empty."""
        return self._queue.get(timeout_s)

    def __iter__(self) -> Iterator[LiveLinkPacket]:
        while True:
            packet = self._queue.get()
            if packet is None:
                return
            yield packet

    def stats(self) -> LiveLinkReceiverStats:
        """A snapshot of the counters."""
        with self._lock:
            return LiveLinkReceiverStats(packets=self._packets, bytes_received=self._bytes,
                                         queue_drops=self._drops, last_error=self._last_error,
                                         **self._counts)

    def __enter__(self) -> LiveLinkReceiver:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, source = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                with self._lock:
                    self._last_error = f"receive failed: {exc}"
                if self._stop.wait(self._POLL_S):
                    return
                continue
            arrival = time.monotonic()
            try:
                packet = decode_packet(data, arrival_time_s=arrival, source=source[:2])
            except LiveLinkPacketError as exc:
                with self._lock:
                    self._bytes += len(data)
                    self._counts[_STAT_FIELD[exc.kind]] += 1
                    self._last_error = str(exc)
                continue
            dropped = self._queue.put(packet)
            with self._lock:
                self._bytes += len(data)
                self._packets += 1
                self._drops += dropped is not None
