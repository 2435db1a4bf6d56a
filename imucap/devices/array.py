"""Several devices as one array: two boards on one face, merged on one clock.

``array:left=ble:imucap-left,right=udp://0.0.0.0:9000`` opens each part by its own URI (with
its own options after ``?``) and merges them into one array whose sites are the parts' sites,
matched by name (a site on two parts is refused).

**One clock.** Every part already maps its device clock onto this computer's monotonic clock
(:class:`~imucap.clock.ClockMapper`: PING/PONG probes and arrivals). The array samples a
regular grid on that clock, at ``rate_hz`` (by default the fastest part's rate), and takes
each part's value at each grid instant by linear interpolation between the part's two samples
around it. So the array's "device clock" is the host clock itself: ``device_time_us`` is host
microseconds and the array's clock mapping is exact.

**When a sample goes out.** A grid instant is emitted once every part has a sample at or after
it (so its value is known): the merge adds the wait for the next sample of the part that
samples last, between nothing and one sample period (the grid's phase is chosen at the start to
make it short, but the boards' clocks drift against the host's, so over minutes it moves
through the whole period; half a period on average, 5 ms at 100 Hz). Or, when a part lags or is
gone, after ``partial_timeout_s``: then the sample is *partial*, the missing part's sensors are
marked not ok (``sensor_ok`` False, values NaN) and ``stats().partial_samples`` counts it. A
part that loses samples (a gap longer than two of its periods) is missing over the gap rather
than interpolated across it. The other parts keep streaming while one reconnects.

Array options follow the parts, separated by commas like them: ``rate_hz=…``,
``partial_timeout_s=…``, ``queue_size=…``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from imucap.clock import ClockMapper
from imucap.errors import BadDeviceURIError, DeviceError
from imucap.firmware_bridge.protocol import Content, DeviceInfo
from imucap.frames import ImuFrame

from .base import DeviceConfig, ImuDevice, StreamStats

log = logging.getLogger(__name__)

#: Counters of StreamStats that add up over the parts.
_SUMMED = ("bytes", "crc_errors", "cobs_errors", "short_frames", "oversize_frames",
           "payload_errors", "bad_frames", "bytes_discarded", "resyncs", "unknown_types",
           "seq_gaps", "frames_lost", "samples_lost", "out_of_order", "duplicates",
           "foreign_packets", "stalls", "reconnects", "reconnect_attempts")


@dataclass(kw_only=True)
class ArrayConfig(DeviceConfig):
    """The parts and how to merge them.

    Attributes:
        parts: Part name to device URI (or an unconnected device), in sensor order.
        rate_hz: Rate of the merged array's grid (None: the fastest part's rate).
        partial_timeout_s: Emit a sample without the parts that have not delivered it after
            this long (they are marked missing).
    """

    parts: dict[str, Any] = field(default_factory=dict)
    partial_timeout_s: float = 0.1


class _PartBuffer:
    """Recent samples of one part on the host clock."""

    def __init__(self, n_sensors: int, rate_hz: float) -> None:
        self.t = np.empty(0, np.float64)
        self.values = np.empty((0, n_sensors, 6), np.float32)
        self.ok = np.empty((0, n_sensors), bool)
        self.gap_s = 2.5 / rate_hz  # longer than this between samples: data is missing
        self.last_arrival = -np.inf

    def add(self, frame: ImuFrame) -> None:
        n = frame.n_samples
        values = np.concatenate([frame.accel, frame.gyro], axis=2)
        ok = np.broadcast_to(frame.sensor_ok, (n, frame.n_sensors))
        t = frame.host_time_s
        if len(self.t) and t[0] <= self.t[-1]:
            keep = t > self.t[-1]  # a clock correction may step back: keep time increasing
            t, values, ok = t[keep], values[keep], ok[keep]
        self.t = np.concatenate([self.t, t])
        self.values = np.concatenate([self.values, values])
        self.ok = np.concatenate([self.ok, ok])
        self.last_arrival = frame.arrival_time_s

    def trim(self, before_s: float) -> None:
        """Drop samples not needed for instants at or after ``before_s``."""
        i = int(np.searchsorted(self.t, before_s, side="right")) - 1
        if i > 0:
            self.t, self.values, self.ok = self.t[i:], self.values[i:], self.ok[i:]

    def covers(self, t: float) -> bool:
        return bool(len(self.t)) and self.t[-1] >= t

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values ``(k, sensors, 6)`` and ok ``(k, sensors)`` at instants ``t`` (NaN: missing)."""
        n = len(self.t)
        if n == 0:
            k, s = len(t), self.values.shape[1]
            return np.full((k, s, 6), np.nan, np.float32), np.zeros((k, s), bool)
        i1 = np.searchsorted(self.t, t, side="left")
        i1c = np.minimum(i1, n - 1)
        exact = self.t[i1c] == t
        i0 = np.where(exact, i1c, i1 - 1)
        good = (i0 >= 0) & (i1 < n)
        i0c = np.maximum(i0, 0)
        t0, t1 = self.t[i0c], self.t[i1c]
        span = t1 - t0
        good &= span <= self.gap_s
        w = np.divide(t - t0, span, out=np.zeros(len(t)), where=span > 0)
        v0 = self.values[i0c]
        out = v0 + (self.values[i1c] - v0) * w.astype(np.float32)[:, None, None]
        both = self.ok[i0c] & self.ok[i1c] & good[:, None]
        out[~both] = np.nan
        return out, both


class ArrayMerger:
    """Merge the parts' frames onto one grid; no threads (the device wraps it).

    Args:
        parts: ``(name, sites, rate_hz)`` of each part, in sensor order.
        rate_hz: Grid rate.
        partial_timeout_s: How long an instant waits for a lagging part.
    """

    def __init__(self, parts: list[tuple[str, tuple[str, ...], float]], rate_hz: float,
                 partial_timeout_s: float) -> None:
        self.names = [p[0] for p in parts]
        self.sites = tuple(s for p in parts for s in p[1])
        self.period = 1.0 / rate_hz
        self.partial_timeout_s = partial_timeout_s
        self._buffers = [_PartBuffer(len(p[1]), p[2]) for p in parts]
        self._slices = []
        start = 0
        for _, sites, _ in parts:
            self._slices.append(slice(start, start + len(sites)))
            start += len(sites)
        self._next_t: float | None = None
        self._seq = 0
        self.boot_id = int.from_bytes(os.urandom(4), "little") or 1
        self.samples = 0
        self.frames = 0
        self.partial_samples = 0
        self.valid_samples = np.zeros(len(self.sites), np.int64)

    def add(self, index: int, frame: ImuFrame) -> None:
        """A frame from part ``index``."""
        self._buffers[index].add(frame)

    def next_deadline(self) -> float | None:
        """Host time at which the next instant goes out even if parts lag (None: no data)."""
        if self._next_t is None:
            return None
        return self._next_t + self.partial_timeout_s

    def _start(self, now: float) -> bool:
        starts = [b.t[0] for b in self._buffers if len(b.t)]
        if not starts:
            return False
        if len(starts) < len(self._buffers):
            first = min(b.last_arrival for b in self._buffers if len(b.t))
            if now - first < self.partial_timeout_s:
                return False  # give every part a chance to deliver before starting
        # The grid's phase: the one after which every part's next sample comes soonest, since
        # an instant goes out when every part has a sample at or after it.
        period = self.period
        phases = [b.t[-1] % period for b in self._buffers if len(b.t)]

        def wait(c: float) -> float:
            return max((p - c) % period for p in phases)

        # A margin before that sample, so that the part's clock estimate moving a little
        # later does not make every instant wait a whole period for the sample after.
        best = min(phases, key=wait) - min(0.002, 0.2 * period)
        first = max(starts)
        self._next_t = first + (best - first) % period
        return True

    def pop(self, now: float) -> list[ImuFrame]:
        """The frames whose instants are complete, or overdue, at host time ``now``."""
        if self._next_t is None and not self._start(now):
            return []
        t0 = self._next_t
        # How far every part reaches, and how far any part does.
        reach = [b.t[-1] if len(b.t) else -np.inf for b in self._buffers]
        complete_until = min(reach)
        overdue_until = now - self.partial_timeout_s
        until = max(complete_until, min(overdue_until, max(reach)))
        if until < t0:
            return []  # nobody has data that far yet
        k = int(np.floor((until - t0) / self.period + 1e-9)) + 1
        k = min(k, 100000)
        t = t0 + self.period * np.arange(k)
        n_sensors = len(self.sites)
        values = np.empty((k, n_sensors, 6), np.float32)
        ok = np.empty((k, n_sensors), bool)
        for buf, sl in zip(self._buffers, self._slices, strict=True):
            values[:, sl], ok[:, sl] = buf.sample(t)
        self._next_t = t0 + self.period * k
        for buf in self._buffers:
            buf.trim(self._next_t)
        any_ok = ok.any(axis=1)
        if not any_ok.all():
            # Instants no part can speak for (all gone, or a jump): skip them.
            t, values, ok = t[any_ok], values[any_ok], ok[any_ok]
            if len(t) == 0:
                self._fast_forward()
                return []
        return self._frames(t, values, ok, now)

    def _fast_forward(self) -> None:
        """After a time when no part had data, continue from where the data resumes."""
        firsts = [b.t[0] for b in self._buffers if len(b.t)]
        if firsts and min(firsts) > self._next_t:
            steps = np.ceil((min(firsts) - self._next_t) / self.period)
            self._next_t += steps * self.period

    def _frames(self, t: np.ndarray, values: np.ndarray, ok: np.ndarray,
                now: float) -> list[ImuFrame]:
        out = []
        full = ok.all(axis=1)
        self.partial_samples += int((~full).sum())
        self.valid_samples += ok.sum(axis=0)
        # One frame per run of instants with the same sensor_ok.
        if len(t) == 1:
            bounds = [(0, 1)]
        else:
            change = (np.flatnonzero((ok[1:] != ok[:-1]).any(axis=1)) + 1).tolist()
            bounds = list(zip([0] + change, change + [len(t)], strict=True))
        for a, b in bounds:
            tt = t[a:b]
            out.append(ImuFrame(
                seq=self._seq & 0xFFFF, boot_id=self.boot_id,
                device_time_us=np.round(tt * 1e6).astype(np.int64), host_time_s=tt.copy(),
                arrival_time_s=now, accel=values[a:b, :, :3], gyro=values[a:b, :, 3:],
                mag=None, quat=None, sensor_ok=ok[a].copy(), sites=self.sites))
            self._seq += 1
            self.frames += 1
            self.samples += b - a
        return out


def _check_sites(parts: dict[str, ImuDevice]) -> None:
    owner: dict[str, str] = {}
    for name, dev in parts.items():
        for site in dev.info.sites:
            if site in owner:
                raise DeviceError(
                    f"site {site!r} is on both array parts {owner[site]!r} and {name!r}: each "
                    f"site must be on one board (set the sites in the boards' firmware)")
            owner[site] = name


class ArrayDevice(ImuDevice):
    """Several devices merged into one array on the host clock (see the module's notes)."""

    type_name = "array"

    def __init__(self, config: ArrayConfig) -> None:
        super().__init__(config)
        if len(config.parts) < 1:
            raise ValueError("an array needs at least one part")
        self.parts: dict[str, ImuDevice] = {}
        from .uri import open_device

        for name, part in config.parts.items():
            self.parts[name] = open_device(part) if isinstance(part, str) else part
        self._merger: ArrayMerger | None = None
        self._info: DeviceInfo | None = None
        self._clock = ClockMapper()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connected = False
        self._unsubscribe: list = []
        self._rates = (0.0, 0.0, ())
        self._rate_mark = (time.monotonic(), 0, 0, None)

    @property
    def name(self) -> str:
        return "array(" + ", ".join(f"{k}: {d.name}" for k, d in self.parts.items()) + ")"

    @property
    def info(self) -> DeviceInfo | None:
        return self._info

    @property
    def clock(self) -> ClockMapper:
        """The array's clock is the host clock: this mapping is exact (offset 0, drift 0)."""
        return self._clock

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        if self._connected:
            raise DeviceError(f"{self.name} is already connected")
        errors: dict[str, BaseException] = {}

        def open_part(name: str, dev: ImuDevice) -> None:
            try:
                dev.connect()
            except BaseException as exc:  # reported below, with the part's name
                errors[name] = exc

        threads = [threading.Thread(target=open_part, args=item, daemon=True)
                   for item in self.parts.items()]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            for name, dev in self.parts.items():
                if name not in errors:
                    dev.disconnect()
            name, exc = next(iter(errors.items()))
            raise type(exc)(f"array part {name!r}: {exc}") if isinstance(exc, DeviceError) \
                else exc
        try:
            _check_sites(self.parts)
        except DeviceError:
            for dev in self.parts.values():
                dev.disconnect()
            raise
        infos = [d.info for d in self.parts.values()]
        rate = self.config.rate_hz or max(i.rate_hz for i in infos)
        self._merger = ArrayMerger(
            [(k, tuple(d.info.sites), d.info.rate_hz) for k, d in self.parts.items()],
            rate, self.config.partial_timeout_s)
        self._info = DeviceInfo(
            device_id=zlib.crc32(b"".join(i.device_id.to_bytes(4, "little") for i in infos)),
            boot_id=self._merger.boot_id, rate_hz=int(round(rate)), samples_per_frame=1,
            content=Content.ACCEL | Content.GYRO,
            accel_range_g=max(i.accel_range_g for i in infos),
            gyro_range_dps=max(i.gyro_range_dps for i in infos), streaming=True,
            chip="/".join(sorted({i.chip for i in infos})),
            firmware="imucap array: " + ", ".join(
                f"{k}={d.info.firmware}" for k, d in self.parts.items()),
            sites=self._merger.sites)
        self._clock.reset()
        self._failure = None
        self._stopping.clear()
        self._connected = True
        for index, dev in enumerate(self.parts.values()):
            self._unsubscribe.append(dev.add_callback(
                lambda frame, i=index: self._on_part_frame(i, frame)))
        self._rate_mark = (time.monotonic(), 0, 0, self._merger.valid_samples.copy())
        self._thread = threading.Thread(target=self._run, name="imucap-array", daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
        for dev in self.parts.values():
            dev.disconnect()
        self._connected = False
        self._wake_readers()

    def _on_part_frame(self, index: int, frame: ImuFrame) -> None:
        with self._cond:
            if self._merger is not None:
                self._merger.add(index, frame)
                self._cond.notify_all()

    def _run(self) -> None:
        next_tick = time.monotonic() + 1.0
        try:
            while not self._stopping.is_set():
                with self._cond:
                    now = time.monotonic()
                    frames = self._merger.pop(now)
                    if not frames:
                        deadline = self._merger.next_deadline()
                        wait = 0.05 if deadline is None else min(max(deadline - now, 0.001),
                                                                 0.05)
                        self._cond.wait(wait)
                for frame in frames:
                    self._deliver(frame)
                now = time.monotonic()
                if now >= next_tick:
                    # The array's clock is the host clock: record that as an exact probe.
                    self._clock.add_probe(now, int(now * 1e6), int(now * 1e6), now)
                    self._tick(now)
                    next_tick = now + 1.0
        except BaseException as exc:  # a bug: keep it visible to readers and in the log
            log.exception("merger of %s crashed", self.name)
            self._fail(exc)

    def _tick(self, now: float) -> None:
        m = self._merger
        t0, frames0, samples0, valid0 = self._rate_mark
        dt = max(now - t0, 1e-6)
        rates = tuple(float(r) for r in (m.valid_samples - valid0) / dt)
        self._rates = ((m.frames - frames0) / dt, (m.samples - samples0) / dt, rates)
        self._rate_mark = (now, m.frames, m.samples, m.valid_samples.copy())

    def part_stats(self) -> dict[str, StreamStats]:
        """Each part's own statistics."""
        return {name: dev.stats() for name, dev in self.parts.items()}

    def stats(self) -> StreamStats:
        parts = self.part_stats()
        m = self._merger
        states = {s.state for s in parts.values()}
        if not self._connected:
            state = "disconnected"
        elif states == {"streaming"}:
            state = "streaming"
        elif "streaming" in states:
            state = "partial"
        else:
            state = sorted(states)[0]
        summed = {name: sum(getattr(s, name) for s in parts.values()) for name in _SUMMED}
        errors = [f"{k}: {s.last_error}" for k, s in parts.items() if s.last_error]
        fps, sps, sensor_rates = self._rates
        return replace(
            StreamStats(), state=state, frames=m.frames if m else 0,
            samples=m.samples if m else 0, frames_per_s=fps, samples_per_s=sps,
            bytes_per_s=sum(s.bytes_per_s for s in parts.values()),
            sensor_rates_hz=sensor_rates, queue_drops=self._queue_drops,
            partial_samples=m.partial_samples if m else 0,
            clock_offset_s=0.0, clock_drift_ppm=0.0, clock_rtt_ms=0.0, clock_source="host",
            last_error="; ".join(errors), **summed)


_ARRAY_OPTIONS = {f.name for f in fields(ArrayConfig)} - {"parts"}


def array_from_uri(uri: str) -> ArrayDevice:
    """Build (not connect) the array an ``array:`` URI names."""
    from .uri import stream_settings

    body = uri.strip()[len("array:"):]
    parts: dict[str, str] = {}
    options: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in body.split(","))):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not value:
            raise BadDeviceURIError(
                f"array part {item!r} needs NAME=URI, as in "
                f"array:left=ble:imucap-left,right=udp://0.0.0.0:9000")
        if name in _ARRAY_OPTIONS and ":" not in value:
            options[name] = value
            continue
        if not name.isidentifier():
            raise BadDeviceURIError(f"array part name {name!r} must be a plain word "
                                    f"(left, right, …)")
        if name in parts:
            raise BadDeviceURIError(f"array part {name!r} is named twice in {uri!r}")
        parts[name] = value.strip()
    if not parts:
        raise BadDeviceURIError(
            "an array needs its parts: array:left=URI,right=URI (each part a device URI)")
    partial = options.pop("partial_timeout_s", None)
    settings = stream_settings(options)
    from .uri import open_device

    devices = {}
    for name, part_uri in parts.items():
        if part_uri.startswith("array:"):
            raise BadDeviceURIError("an array part cannot be an array itself")
        try:
            devices[name] = open_device(part_uri)
        except BadDeviceURIError as exc:
            raise BadDeviceURIError(f"array part {name!r}: {exc}") from None
    try:
        config = ArrayConfig(parts=devices, **settings,
                             **({"partial_timeout_s": float(partial)} if partial else {}))
    except ValueError:
        raise BadDeviceURIError(f"partial_timeout_s={partial!r} is not a number") from None
    return ArrayDevice(config)
