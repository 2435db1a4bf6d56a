"""Messages of imucap wire protocol v1 and their payload layouts (see ``PROTOCOL.md``).

Every multi-byte field is little-endian. A frame body is a 4-byte header (version, type,
sequence number), a type-specific payload and a CRC-32; :mod:`.codec` adds COBS framing.
Readers ignore bytes past the fields they know, so a minor version may append fields.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

import numpy as np

from imucap.errors import ImucapError

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0

HEADER = struct.Struct("<BBH")  # version (major << 4 | minor), type, sequence number
CRC_SIZE = 4
MAX_BODY_SIZE = 4096
"""Largest decoded frame (header + payload + CRC) a receiver must accept, in bytes."""
MAX_SENSORS = 16
MAX_NAME_BYTES = 32
"""Longest string field (chip, firmware, site name), in UTF-8 bytes."""
STANDARD_GRAVITY = 9.80665
QUAT_ONE = 16384
"""Fixed-point scale of on-board orientation quaternions (Q14: 1.0 is 16384)."""


class ProtocolVersionError(ImucapError):
    """The peer speaks a major protocol version this host does not understand."""


class PayloadError(ValueError):
    """A payload is shorter than its fixed fields or inconsistent with itself."""


class MsgType(IntEnum):
    """Message type byte. Device-to-host types are below 0x80, host commands at 0x80 and up."""

    DEVICE_INFO = 0x01
    SAMPLES = 0x02
    PONG = 0x03
    ACK = 0x04
    LOG = 0x05
    GET_INFO = 0x81
    START = 0x82
    STOP = 0x83
    SET_RATE = 0x84
    PING = 0x85


class Content(IntFlag):
    """Which blocks each sensor's record carries in a SAMPLES message, in this order."""

    ACCEL = 0x01
    GYRO = 0x02
    MAG = 0x04
    QUAT = 0x08


class AckStatus(IntEnum):
    """Result of a host command, reported in an ACK."""

    OK = 0
    UNSUPPORTED = 1
    BAD_ARGUMENT = 2
    BUSY = 3


_BLOCK_VALUES = {Content.ACCEL: 3, Content.GYRO: 3, Content.MAG: 3, Content.QUAT: 4}
_BLOCK_SIZES = {int(bit): n for bit, n in _BLOCK_VALUES.items()}
ALL_CONTENT = 0x0F
"""Content bits defined in v1; the others are reserved (a new block changes the record size,
so only a new major version may add one)."""


def values_per_sensor(content: int) -> int:
    """Number of int16 values in one sensor's record for a content bit set (bits 0-3)."""
    return _VALUES_PER_SENSOR[content & ALL_CONTENT]


# A table, because this runs for every frame and IntFlag arithmetic is slow.
_VALUES_PER_SENSOR = tuple(sum(n for bit, n in _BLOCK_VALUES.items() if c & bit)
                           for c in range(16))


def version_byte(major: int = PROTOCOL_MAJOR, minor: int = PROTOCOL_MINOR) -> int:
    """The header's version byte: major in the high nibble, minor in the low nibble."""
    return ((major & 0x0F) << 4) | (minor & 0x0F)


def check_version(major: int, minor: int, *, peer: str = "device") -> None:
    """Accept the same major version (any minor); refuse any other with a clear message.

    Raises:
        ProtocolVersionError: ``major`` differs from :data:`PROTOCOL_MAJOR`.
    """
    if major == PROTOCOL_MAJOR:
        return
    if major > PROTOCOL_MAJOR:
        raise ProtocolVersionError(
            f"the {peer} speaks imucap protocol {major}.{minor}, newer than the {PROTOCOL_MAJOR}.x "
            f"this imucap understands: upgrade imucap (pip install -U imucap)"
        )
    raise ProtocolVersionError(
        f"the {peer} speaks imucap protocol {major}.{minor}, older than the {PROTOCOL_MAJOR}.x "
        f"this imucap understands: update the device's firmware"
    )


def _pack_str(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > MAX_NAME_BYTES:
        raise ValueError(f"string {text!r} is {len(raw)} bytes in UTF-8; the protocol allows "
                         f"{MAX_NAME_BYTES}")
    return struct.pack("<B", len(raw)) + raw


def _unpack_str(buf: bytes, offset: int) -> tuple[str, int]:
    if offset >= len(buf):
        raise PayloadError("string length byte missing")
    n = buf[offset]
    end = offset + 1 + n
    if end > len(buf):
        raise PayloadError("string runs past the end of the payload")
    return buf[offset + 1 : end].decode("utf-8", errors="replace"), end


# ---------------------------------------------------------------- device to host


@dataclass(frozen=True)
class DeviceInfo:
    """What a device is and how to read its samples; sent after GET_INFO and after a change.

    Attributes:
        proto_major: Protocol major version the device speaks.
        proto_minor: Protocol minor version.
        device_id: Stable identifier of the board (for example from its MAC address).
        boot_id: Random per power-up; a new value means the device restarted, so its clock and
            sequence numbers restarted too.
        rate_hz: Output sample rate in Hz.
        samples_per_frame: Nominal samples packed in one SAMPLES message.
        content: :class:`Content` bits carried per sensor.
        accel_range_g: Accelerometer full scale, ±g; one LSB is ``accel_range_g / 32768`` g.
        gyro_range_dps: Gyroscope full scale, ±degrees/s; one LSB is ``gyro_range_dps / 32768``.
        mag_range_ut: Magnetometer full scale, ±µT (0 without a magnetometer).
        streaming: Whether the device is streaming SAMPLES now.
        chip: IMU part number, for example ``"ICM-42688-P"``.
        firmware: Firmware name and version.
        sites: One placement site name per sensor, in sensor order.
    """

    proto_major: int = PROTOCOL_MAJOR
    proto_minor: int = PROTOCOL_MINOR
    device_id: int = 0
    boot_id: int = 0
    rate_hz: int = 100
    samples_per_frame: int = 1
    content: int = Content.ACCEL | Content.GYRO
    accel_range_g: int = 8
    gyro_range_dps: int = 1000
    mag_range_ut: int = 0
    streaming: bool = False
    chip: str = ""
    firmware: str = ""
    sites: tuple[str, ...] = ()

    TYPE = MsgType.DEVICE_INFO
    _FIXED = struct.Struct("<BBIIHBBBHHHB")

    @property
    def sensor_count(self) -> int:
        """Number of sensors in the array."""
        return len(self.sites)

    @property
    def accel_scale(self) -> float:
        """Metres per second squared per accelerometer LSB."""
        return self.accel_range_g * STANDARD_GRAVITY / 32768.0

    @property
    def gyro_scale(self) -> float:
        """Radians per second per gyroscope LSB."""
        return math.radians(self.gyro_range_dps / 32768.0)

    @property
    def mag_scale(self) -> float:
        """Microtesla per magnetometer LSB."""
        return self.mag_range_ut / 32768.0

    def encode_payload(self) -> bytes:
        if not 1 <= len(self.sites) <= MAX_SENSORS:
            raise ValueError(f"a device has 1 to {MAX_SENSORS} sensors, got {len(self.sites)}")
        head = self._FIXED.pack(
            self.proto_major, self.proto_minor, self.device_id, self.boot_id, self.rate_hz,
            self.samples_per_frame, len(self.sites), int(self.content), self.accel_range_g,
            self.gyro_range_dps, self.mag_range_ut, int(self.streaming),
        )
        parts = [head, _pack_str(self.chip), _pack_str(self.firmware)]
        parts += [_pack_str(s) for s in self.sites]
        return b"".join(parts)

    @classmethod
    def decode_payload(cls, buf: bytes) -> DeviceInfo:
        if len(buf) < cls._FIXED.size:
            raise PayloadError(f"DEVICE_INFO needs {cls._FIXED.size} bytes, got {len(buf)}")
        (major, minor, device_id, boot_id, rate_hz, spf, count, content, acc, gyr, mag,
         streaming) = cls._FIXED.unpack_from(buf)
        if not 1 <= count <= MAX_SENSORS:
            raise PayloadError(f"DEVICE_INFO announces {count} sensors (1 to {MAX_SENSORS})")
        offset = cls._FIXED.size
        chip, offset = _unpack_str(buf, offset)
        firmware, offset = _unpack_str(buf, offset)
        sites = []
        for _ in range(count):
            name, offset = _unpack_str(buf, offset)
            sites.append(name)
        return cls(major, minor, device_id, boot_id, rate_hz, spf, content, acc, gyr, mag,
                   bool(streaming), chip, firmware, tuple(sites))


@dataclass(eq=False, slots=True)
class Samples:
    """A batch of raw samples from every sensor, in the device's int16 counts.

    Not frozen (it is built for every frame, and frozen dataclasses build slowly); treat it
    as read-only.

    Attributes:
        t0_us: Device time of the first sample, microseconds since the device booted.
        dt_us: Time between consecutive samples of the batch, microseconds.
        content: :class:`Content` bits present in each sensor record.
        sensor_ok: Bit i set when sensor i delivered valid data for this batch.
        data: int16 array ``(n_samples, n_sensors, values_per_sensor(content))``; the columns
            are accel xyz, gyro xyz, mag xyz, quat wxyz, for the blocks present.
    """

    t0_us: int
    dt_us: int
    content: int
    sensor_ok: int
    data: np.ndarray

    TYPE = MsgType.SAMPLES
    _FIXED = struct.Struct("<QIBBBxH")

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_sensors(self) -> int:
        return int(self.data.shape[1])

    def block(self, bit: Content) -> np.ndarray | None:
        """The int16 columns of one content block, ``(n, sensors, 3 or 4)``, or None if absent."""
        bit = int(bit)  # plain ints: IntFlag arithmetic is slow on this per-frame path
        if not self.content & bit:
            return None
        start = _VALUES_PER_SENSOR[self.content & (bit - 1)]
        return self.data[:, :, start : start + _BLOCK_SIZES[bit]]

    def timestamps_us(self) -> np.ndarray:
        """Device time of each sample in microseconds, int64."""
        return self.t0_us + self.dt_us * np.arange(self.n_samples, dtype=np.int64)

    def encode_payload(self) -> bytes:
        n, sensors, vals = self.data.shape
        if self.content & ~ALL_CONTENT or not self.content & ALL_CONTENT:
            raise ValueError(f"content bits {self.content:#x}: use bits 0-3, at least one")
        if vals != values_per_sensor(self.content):
            raise ValueError("data's last axis does not match the content bits")
        if not 1 <= n <= 255 or not 1 <= sensors <= MAX_SENSORS:
            raise ValueError(f"a batch has 1 to 255 samples of 1 to {MAX_SENSORS} sensors, "
                             f"got {n} x {sensors}")
        if self.data.dtype != np.int16 and self.data.size and (
                self.data.min() < -32768 or self.data.max() > 32767):
            raise ValueError("sample values must fit in int16 (-32768 to 32767)")
        head = self._FIXED.pack(self.t0_us, self.dt_us, n, sensors, int(self.content),
                                self.sensor_ok)
        return head + np.ascontiguousarray(self.data, dtype="<i2").tobytes()

    @classmethod
    def decode_payload(cls, buf: bytes) -> Samples:
        if len(buf) < cls._FIXED.size:
            raise PayloadError(f"SAMPLES needs {cls._FIXED.size} bytes, got {len(buf)}")
        t0_us, dt_us, n, sensors, content, sensor_ok = cls._FIXED.unpack_from(buf)
        vals = values_per_sensor(content)
        if n == 0 or not 1 <= sensors <= MAX_SENSORS or vals == 0 or content & ~ALL_CONTENT:
            raise PayloadError(f"SAMPLES with {n} samples, {sensors} sensors, content {content}")
        count = n * sensors * vals
        if cls._FIXED.size + 2 * count > len(buf):
            raise PayloadError(
                f"SAMPLES announces {count} values but carries {(len(buf) - cls._FIXED.size) // 2}"
            )
        data = np.frombuffer(buf, dtype="<i2", count=count, offset=cls._FIXED.size)
        return cls(t0_us, dt_us, content, sensor_ok, data.reshape(n, sensors, vals))


@dataclass(frozen=True)
class Pong:
    """Answer to PING: the host's time echoed, and the device's receive and send times."""

    nonce: int
    host_time_us: int
    device_rx_us: int
    device_tx_us: int

    TYPE = MsgType.PONG
    _FIXED = struct.Struct("<IQQQ")

    def encode_payload(self) -> bytes:
        return self._FIXED.pack(self.nonce, self.host_time_us, self.device_rx_us,
                                self.device_tx_us)

    @classmethod
    def decode_payload(cls, buf: bytes) -> Pong:
        if len(buf) < cls._FIXED.size:
            raise PayloadError(f"PONG needs {cls._FIXED.size} bytes, got {len(buf)}")
        return cls(*cls._FIXED.unpack_from(buf))


@dataclass(frozen=True)
class Ack:
    """The result of a host command, naming the command by its sequence number and type."""

    command_seq: int
    command_type: int
    status: int = AckStatus.OK

    TYPE = MsgType.ACK
    _FIXED = struct.Struct("<HBB")

    def encode_payload(self) -> bytes:
        return self._FIXED.pack(self.command_seq, self.command_type, self.status)

    @classmethod
    def decode_payload(cls, buf: bytes) -> Ack:
        if len(buf) < cls._FIXED.size:
            raise PayloadError(f"ACK needs {cls._FIXED.size} bytes, got {len(buf)}")
        return cls(*cls._FIXED.unpack_from(buf))


@dataclass(frozen=True)
class Log:
    """A line of text from the firmware (level 0 debug, 1 info, 2 warning, 3 error)."""

    level: int
    text: str

    TYPE = MsgType.LOG

    def encode_payload(self) -> bytes:
        return bytes([self.level]) + self.text.encode("utf-8")

    @classmethod
    def decode_payload(cls, buf: bytes) -> Log:
        if len(buf) < 1:
            raise PayloadError("LOG needs a level byte")
        return cls(buf[0], buf[1:].decode("utf-8", errors="replace"))


# ---------------------------------------------------------------- host to device


class _NoPayload:
    """A command that is its type byte alone."""

    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, buf: bytes):
        return cls()


@dataclass(frozen=True)
class GetInfo(_NoPayload):
    """Ask the device for a DEVICE_INFO."""

    TYPE = MsgType.GET_INFO


@dataclass(frozen=True)
class Start(_NoPayload):
    """Start streaming SAMPLES."""

    TYPE = MsgType.START


@dataclass(frozen=True)
class Stop(_NoPayload):
    """Stop streaming SAMPLES."""

    TYPE = MsgType.STOP


@dataclass(frozen=True)
class SetRate:
    """Change the output rate; ``samples_per_frame`` 0 lets the device choose the batching."""

    rate_hz: int
    samples_per_frame: int = 0

    TYPE = MsgType.SET_RATE
    _FIXED = struct.Struct("<HB")

    def encode_payload(self) -> bytes:
        return self._FIXED.pack(self.rate_hz, self.samples_per_frame)

    @classmethod
    def decode_payload(cls, buf: bytes) -> SetRate:
        if len(buf) < cls._FIXED.size:
            raise PayloadError(f"SET_RATE needs {cls._FIXED.size} bytes, got {len(buf)}")
        return cls(*cls._FIXED.unpack_from(buf))


@dataclass(frozen=True)
class Ping:
    """Time-sync probe; the device answers at once with a PONG."""

    nonce: int
    host_time_us: int = 0

    TYPE = MsgType.PING
    _FIXED = struct.Struct("<IQ")

    def encode_payload(self) -> bytes:
        return self._FIXED.pack(self.nonce, self.host_time_us)

    @classmethod
    def decode_payload(cls, buf: bytes) -> Ping:
        if len(buf) < cls._FIXED.size:
            raise PayloadError(f"PING needs {cls._FIXED.size} bytes, got {len(buf)}")
        return cls(*cls._FIXED.unpack_from(buf))


Message = DeviceInfo | Samples | Pong | Ack | Log | GetInfo | Start | Stop | SetRate | Ping

MESSAGE_CLASSES: dict[int, type] = {
    cls.TYPE: cls
    for cls in (DeviceInfo, Samples, Pong, Ack, Log, GetInfo, Start, Stop, SetRate, Ping)
}
