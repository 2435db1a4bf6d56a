"""The emulated sensor array's behaviour, apart from any link: protocol, clock and faults.

:class:`EmulatedArray` answers host commands and produces frames on its own device clock
(with a configurable offset and drift against the host clock). Its fault injector damages the
stream in ways a real link does and keeps an exact account in :class:`FaultReport`, which is
what the driver's counters are tested against. The runners in :mod:`.runners` carry its bytes
over a pseudo-terminal, TCP or UDP.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..codec import FrameDecoder, encode_frame
from ..protocol import (
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Ack,
    AckStatus,
    Content,
    DeviceInfo,
    GetInfo,
    Ping,
    Pong,
    Samples,
    SetRate,
    Start,
    Stop,
)
from ..sites import IMUSIC11_SITES
from .motion import MotionSource, SyntheticMotion

MAX_RATE_HZ = 1000
UNKNOWN_TYPE = 0x7E  # a device-to-host type this version does not define


@dataclass(kw_only=True)
class FaultConfig:
    """Which faults to inject. Probabilities are per SAMPLES frame; intervals are mean seconds.

    Faults never hit two frames in a row, and a disconnect never directly follows a damaged
    frame, so the host can see every fault on its own (a lost frame shows only through the
    sequence number of the next frame that arrives).

    Attributes:
        drop: Chance that a frame is lost on the way (its sequence number is used up).
        corrupt: Chance that one byte of a frame is changed on the way.
        garbage: Chance that a burst of 1 to 64 random bytes (then a delimiter) follows a frame.
        unknown: Chance that a message of a type the host does not know follows a frame.
        stall_every_s: Mean time between stalls (0: none). During a stall nothing is written;
            the samples are kept and arrive afterwards in a burst.
        stall_s: How long a stall lasts.
        disconnect_every_s: Mean time between disconnects (0: none). The device vanishes (its
            port closes), reappears after ``disconnect_s`` as if re-plugged, and restarts.
        disconnect_s: How long the device stays away.
        seed: Seed of the fault schedule.
    """

    drop: float = 0.0
    corrupt: float = 0.0
    garbage: float = 0.0
    unknown: float = 0.0
    stall_every_s: float = 0.0
    stall_s: float = 0.5
    disconnect_every_s: float = 0.0
    disconnect_s: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt", "garbage", "unknown"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name}={value} is not a probability from 0 to 1")
        if self.drop + self.corrupt + self.garbage + self.unknown > 1.0:
            raise ValueError("fault probabilities drop + corrupt + garbage + unknown exceed 1")
        for name in ("stall_every_s", "stall_s", "disconnect_every_s", "disconnect_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"fault {name} must not be negative")

    def any(self) -> bool:
        return bool(self.drop or self.corrupt or self.garbage or self.unknown
                    or self.stall_every_s or self.disconnect_every_s)


@dataclass
class FaultReport:
    """Exactly what the emulator sent and injected.

    Attributes:
        frames_sent: SAMPLES frames written intact.
        samples_sent: Samples in those frames.
        dropped_frames: SAMPLES frames never written (lost on the way).
        corrupted_frames: SAMPLES frames written with one byte changed.
        corrupted_bytes: Encoded size of the corrupted frames, delimiters excluded.
        garbage_chunks: Bursts of random bytes written between frames.
        garbage_bytes: Their total size, delimiters excluded.
        unknown_messages: Messages of an unknown type written.
        stalls: Stalls made.
        disconnects: Disconnects made.
        sent: ``(boot_id, seq, t0_us)`` of every intact SAMPLES frame, in order, when the
            emulator was asked to keep them.
    """

    frames_sent: int = 0
    samples_sent: int = 0
    dropped_frames: int = 0
    corrupted_frames: int = 0
    corrupted_bytes: int = 0
    garbage_chunks: int = 0
    garbage_bytes: int = 0
    unknown_messages: int = 0
    stalls: int = 0
    disconnects: int = 0
    sent: list[tuple[int, int, int]] = field(default_factory=list, repr=False)

    @property
    def lost_frames(self) -> int:
        """Frames whose content never reached the host: dropped plus corrupted."""
        return self.dropped_frames + self.corrupted_frames

    @property
    def bad_frames(self) -> int:
        """Chunks a host must discard: corrupted frames plus garbage bursts."""
        return self.corrupted_frames + self.garbage_chunks

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        out.pop("sent")
        return out


@dataclass(kw_only=True)
class EmulatorConfig:
    """How the emulated array looks to the host.

    Attributes:
        sites: Placement site name of each sensor (1 to 16).
        rate_hz: Output rate at start-up (the host may change it with SET_RATE).
        samples_per_frame: Samples per frame; 0 picks about 100 frames per second.
        chip: Chip name announced in DEVICE_INFO.
        accel_range_g: Accelerometer full scale.
        gyro_range_dps: Gyroscope full scale.
        device_id: Board identifier announced in DEVICE_INFO.
        clock_offset_s: Device clock at the moment the emulator starts, in seconds (boot time).
        clock_drift_ppm: How much faster the device's clock runs than the host's, in ppm.
        autostart: Stream without waiting for START (like firmware that streams on power-up).
        protocol_version: ``(major, minor)`` written in frames; tests use other versions.
        dead_sensors: Indices of sensors that report no valid data (sensor_ok bit cleared).
        keep_sent: Record every intact frame in :attr:`FaultReport.sent` (for tests).
        seed: Seed of the motion.
        faults: Faults to inject.
    """

    sites: tuple[str, ...] = IMUSIC11_SITES
    rate_hz: int = 100
    samples_per_frame: int = 0
    chip: str = "ICM-42688-P"
    accel_range_g: int = 8
    gyro_range_dps: int = 1000
    device_id: int = 0x1AC0FACE
    clock_offset_s: float = 12.5
    clock_drift_ppm: float = 0.0
    autostart: bool = False
    protocol_version: tuple[int, int] = (PROTOCOL_MAJOR, PROTOCOL_MINOR)
    dead_sensors: tuple[int, ...] = ()
    keep_sent: bool = False
    seed: int = 0
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if not 1 <= len(self.sites) <= 16:
            raise ValueError(f"an emulated array has 1 to 16 sensors, got {len(self.sites)}")
        if not 1 <= self.rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"rate_hz must be 1 to {MAX_RATE_HZ}, got {self.rate_hz}")


def auto_samples_per_frame(rate_hz: int) -> int:
    """Samples per frame that give about 100 frames per second."""
    return max(1, round(rate_hz / 100))


@dataclass(frozen=True)
class Action:
    """What a runner must do next: write bytes, stall, or disconnect."""

    kind: str  # "write", "stall" or "disconnect"
    data: bytes = b""
    seconds: float = 0.0


class EmulatedArray:
    """A virtual face-IMU array speaking protocol v1, independent of the link that carries it.

    Thread-safe: a runner calls :meth:`receive` with bytes from the host and :meth:`poll`
    to get what to do next; other threads may read :attr:`report`.

    Args:
        config: What the array looks like and which faults to inject.
        motion: What the sensors measure; a :class:`SyntheticMotion` by default.
        clock: Host clock in seconds (monotonic); tests may pass their own.
    """

    def __init__(self, config: EmulatorConfig | None = None, *,
                 motion: MotionSource | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or EmulatorConfig()
        self.report = FaultReport()
        self._clock = clock
        self._lock = threading.Lock()
        self._motion = motion or SyntheticMotion(self.config.sites,
                                                 rate_hz=self.config.rate_hz,
                                                 seed=self.config.seed)
        self._fault_rng = np.random.default_rng(self.config.faults.seed)
        self._host_start = clock()
        self._decoder = FrameDecoder(peer="host")
        self._boot(first=True)
        self._next_stall = self._schedule(self.config.faults.stall_every_s)
        self._next_disconnect = self._schedule(self.config.faults.disconnect_every_s)

    @property
    def motion(self) -> MotionSource:
        """What the sensors measure."""
        return self._motion

    # ------------------------------------------------------------------ clock

    def device_time_us(self, host_s: float | None = None) -> int:
        """The device clock at host time ``host_s`` (now by default), in microseconds."""
        host_s = self._clock() if host_s is None else host_s
        elapsed = (host_s - self._boot_host) * (1.0 + self.config.clock_drift_ppm * 1e-6)
        return int(round((elapsed + self._boot_device_s) * 1e6))

    def host_time_of(self, device_us: int | np.ndarray) -> float | np.ndarray:
        """The host time at which the device clock reads ``device_us`` (the truth for tests)."""
        elapsed = np.asarray(device_us) * 1e-6 - self._boot_device_s
        return self._boot_host + elapsed / (1.0 + self.config.clock_drift_ppm * 1e-6)

    # ------------------------------------------------------------------ state

    def _boot(self, *, first: bool) -> None:
        cfg = self.config
        self._boot_host = self._clock()
        # The first power-up starts at the configured clock; a re-plug restarts it at zero.
        self._boot_device_s = cfg.clock_offset_s if first else 0.0
        self.boot_id = int.from_bytes(os.urandom(4), "little") or 1
        self._seq = 0
        self._rate_hz = cfg.rate_hz
        self._spf = cfg.samples_per_frame or auto_samples_per_frame(self._rate_hz)
        self.streaming = cfg.autostart
        self._pending: list[bytes] = []
        self._fault_cooldown = False
        self._decoder.reset()
        if self.streaming:
            self._start_stream()
            self._queue_info()

    def _start_stream(self) -> None:
        dt_us = round(1e6 / self._rate_hz)
        self._stream_start = self._clock()
        now_us = self.device_time_us()
        self._dt_us = dt_us
        self._next_t_us = now_us + dt_us  # first sample one period from now
        self._raw_ahead = np.empty((0, len(self.config.sites), 6), dtype=np.int16)

    @property
    def rate_hz(self) -> int:
        return self._rate_hz

    @property
    def samples_per_frame(self) -> int:
        return self._spf

    def device_info(self) -> DeviceInfo:
        cfg = self.config
        major, minor = cfg.protocol_version
        return DeviceInfo(
            proto_major=major, proto_minor=minor, device_id=cfg.device_id, boot_id=self.boot_id,
            rate_hz=self._rate_hz, samples_per_frame=self._spf,
            content=Content.ACCEL | Content.GYRO, accel_range_g=cfg.accel_range_g,
            gyro_range_dps=cfg.gyro_range_dps, streaming=self.streaming, chip=cfg.chip,
            firmware="imucap-emulator 1.0", sites=cfg.sites,
        )

    def _frame(self, msg) -> bytes:
        major, minor = self.config.protocol_version
        data = encode_frame(msg, self._seq, major=major, minor=minor)
        self._seq = (self._seq + 1) & 0xFFFF
        return data

    def _queue_info(self) -> None:
        self._pending.append(self._frame(self.device_info()))

    # ------------------------------------------------------------------ host commands

    def receive(self, data: bytes) -> None:
        """Take bytes the host wrote; replies are returned by the next :meth:`poll`."""
        rx_us = self.device_time_us()
        with self._lock:
            for packet in self._decoder.feed(data):
                msg = packet.message
                if isinstance(msg, GetInfo):
                    self._queue_info()
                elif isinstance(msg, Start):
                    if not self.streaming:
                        self.streaming = True
                        self._start_stream()
                    self._pending.append(self._frame(Ack(packet.seq, packet.type)))
                elif isinstance(msg, Stop):
                    self.streaming = False
                    self._pending.append(self._frame(Ack(packet.seq, packet.type)))
                elif isinstance(msg, SetRate):
                    if not 1 <= msg.rate_hz <= MAX_RATE_HZ:
                        status = AckStatus.BAD_ARGUMENT
                        self._pending.append(self._frame(Ack(packet.seq, packet.type, status)))
                        continue
                    self._rate_hz = msg.rate_hz
                    self._spf = msg.samples_per_frame or auto_samples_per_frame(msg.rate_hz)
                    if self.streaming:
                        self._start_stream()
                    self._pending.append(self._frame(Ack(packet.seq, packet.type)))
                    self._queue_info()
                elif isinstance(msg, Ping):
                    pong = Pong(msg.nonce, msg.host_time_us, rx_us, self.device_time_us())
                    self._pending.append(self._frame(pong))
                elif packet.message is not None:
                    status = AckStatus.UNSUPPORTED
                    self._pending.append(self._frame(Ack(packet.seq, packet.type, status)))

    # ------------------------------------------------------------------ output

    def _schedule(self, mean_s: float) -> float:
        if mean_s <= 0:
            return float("inf")
        return self._clock() + float(self._fault_rng.uniform(0.5, 1.5)) * mean_s

    def time_to_next_s(self) -> float:
        """Seconds until :meth:`poll` has something new to do (at most 0.05)."""
        if self._pending:
            return 0.0
        if not self.streaming:
            return 0.05
        last_us = self._next_t_us + (self._spf - 1) * self._dt_us
        wait = float(self.host_time_of(last_us)) - self._clock()
        return min(max(wait, 0.0), 0.05)

    def poll(self) -> list[Action]:
        """What to do now: replies and due frames to write, then perhaps a stall or disconnect.

        Replies already due are written before a stall or a disconnect starts, and neither
        starts within 0.2 s of START, so a host sees each one while it is streaming.
        """
        now = self._clock()
        with self._lock:
            faults = self.config.faults
            out = self._pending
            self._pending = []
            actions = [Action("write", data=b"".join(out))] if out else []
            if self.streaming and now - self._stream_start > 0.2:
                if now >= self._next_disconnect and not self._fault_cooldown:
                    self._next_disconnect = now + faults.disconnect_s + \
                        float(self._fault_rng.uniform(0.5, 1.5)) * faults.disconnect_every_s
                    self.report.disconnects += 1
                    return actions + [Action("disconnect", seconds=faults.disconnect_s)]
                if now >= self._next_stall:
                    self._next_stall = now + faults.stall_s + \
                        float(self._fault_rng.uniform(0.5, 1.5)) * faults.stall_every_s
                    self.report.stalls += 1
                    return actions + [Action("stall", seconds=faults.stall_s)]
            if self.streaming:
                device_now = self.device_time_us(now)
                frames = []
                while self._next_t_us + (self._spf - 1) * self._dt_us <= device_now:
                    frames.extend(self._samples_frame())
                if frames:
                    actions.append(Action("write", data=b"".join(frames)))
            return actions

    def stop_faults(self) -> None:
        """Inject nothing from now on (the next frame is clean, so earlier losses show)."""
        with self._lock:
            self.config.faults = FaultConfig(seed=self.config.faults.seed)
            self._next_stall = self._next_disconnect = float("inf")

    def announce(self) -> None:
        """Queue an unprompted DEVICE_INFO (a UDP board announcing itself to its host)."""
        with self._lock:
            self._queue_info()

    def link_closed(self) -> None:
        """The host closed the link (port closed, socket gone): stop streaming, drop replies."""
        with self._lock:
            self.streaming = False
            self._pending = []
            self._decoder.reset()

    def reboot(self) -> None:
        """Power-cycle: new boot id, clock and sequence numbers from zero, not streaming."""
        with self._lock:
            self._boot(first=False)

    def _raw_samples(self, t_us: np.ndarray) -> np.ndarray:
        """int16 accel+gyro for the next samples, whose times are ``t_us``.

        The motion is evaluated 100 ms ahead at a time: one call per sample would cost more
        than a frame period at 1 kHz.
        """
        n = len(t_us)
        if len(self._raw_ahead) < n:
            block = max(n, round(0.1 * self._rate_hz))
            start = int(t_us[0]) + len(self._raw_ahead) * self._dt_us
            times = start + self._dt_us * np.arange(block, dtype=np.int64)
            info = self.device_info()
            accel, gyro = self._motion.sample(times * 1e-6)
            raw = np.empty((block, len(self.config.sites), 6), dtype=np.int16)
            raw[..., :3] = np.clip(np.round(accel / info.accel_scale), -32768, 32767)
            raw[..., 3:] = np.clip(np.round(gyro / info.gyro_scale), -32768, 32767)
            self._raw_ahead = np.concatenate([self._raw_ahead, raw])
        raw, self._raw_ahead = self._raw_ahead[:n], self._raw_ahead[n:]
        return raw

    def _samples_frame(self) -> list[bytes]:
        cfg = self.config
        n = self._spf
        t_us = self._next_t_us + self._dt_us * np.arange(n, dtype=np.int64)
        self._next_t_us += n * self._dt_us
        raw = self._raw_samples(t_us).copy()
        ok = (1 << len(cfg.sites)) - 1
        for i in cfg.dead_sensors:
            ok &= ~(1 << i)
            raw[:, i] = 0
        msg = Samples(int(t_us[0]), self._dt_us, Content.ACCEL | Content.GYRO, ok, raw)
        seq = self._seq
        frame = self._frame(msg)
        return self._inject(frame, seq, int(t_us[0]), n)

    def _inject(self, frame: bytes, seq: int, t0_us: int, n: int) -> list[bytes]:
        faults, rep, rng = self.config.faults, self.report, self._fault_rng
        if self._fault_cooldown:
            self._fault_cooldown = False
        else:
            roll = rng.random()
            if roll < faults.drop:
                rep.dropped_frames += 1
                self._fault_cooldown = True
                return []
            roll -= faults.drop
            if roll < faults.corrupt:
                damaged = bytearray(frame)
                pos = int(rng.integers(0, len(frame) - 1))
                damaged[pos] = int(rng.choice([v for v in range(1, 256) if v != frame[pos]]))
                rep.corrupted_frames += 1
                rep.corrupted_bytes += len(frame) - 1
                self._fault_cooldown = True
                return [bytes(damaged)]
            roll -= faults.corrupt
            extra = b""
            if roll < faults.garbage:
                junk = bytes(rng.integers(1, 256, int(rng.integers(1, 65)), dtype=np.uint8))
                rep.garbage_chunks += 1
                rep.garbage_bytes += len(junk)
                extra = junk + b"\x00"
                self._fault_cooldown = True
            elif roll - faults.garbage < faults.unknown:
                junk = bytes(rng.integers(0, 256, int(rng.integers(0, 24)), dtype=np.uint8))
                extra = self._unknown_frame(junk)
                rep.unknown_messages += 1
                self._fault_cooldown = True
            self._sent(seq, t0_us, n)
            return [frame, extra] if extra else [frame]
        self._sent(seq, t0_us, n)
        return [frame]

    def _unknown_frame(self, payload: bytes) -> bytes:
        class _Unknown:
            TYPE = UNKNOWN_TYPE

            def encode_payload(self) -> bytes:
                return payload

        return self._frame(_Unknown())

    def _sent(self, seq: int, t0_us: int, n: int) -> None:
        self.report.frames_sent += 1
        self.report.samples_sent += n
        if self.config.keep_sent:
            self.report.sent.append((self.boot_id, seq, t0_us))
