"""The recorder: an IMU device and a truth source written into one session file, live.

Three threads meet in one queue: the device's reader delivers IMU frames through a callback,
a truth thread reads the truth source, and a writer thread drains the queue into the
:class:`~imucap.record.session_file.SessionWriter` (closing a chunk every quarter second and
fsyncing every second by default). Markers and events are queued the same way, so everything
lands in the file in arrival order. A write error (disk full, read-only disk) stops the
recording cleanly: the writer keeps what it flushed, the threads stop, and :attr:`error` says
what happened in one line.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from imucap.clock import ClockMapper
from imucap.devices.base import ImuDevice, StreamStats
from imucap.frames import ImuFrame
from imucap.truth.base import TruthFrame, TruthSource, TruthStats

from .session_file import DiskWriteError, SessionFileError, SessionWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecorderStatus:
    """What the live panel shows.

    Attributes:
        elapsed_s: Time since the recording started.
        imu: The device's stream statistics.
        truth: The truth source's statistics (None without truth).
        imu_frames: IMU frames written.
        imu_samples: IMU samples written.
        truth_frames: Truth frames written.
        markers: Markers set.
        file_bytes: Size of the session file on disk.
        disk_free_bytes: Free space where the file is.
        backlog: Items waiting to be written.
        truth_offset_s: Truth source clock minus host clock, as estimated so far (NaN before).
        truth_drift_ppm: How much faster the truth source's clock runs, ppm.
        sync_residual_ms: RMS residual of the last alignment (NaN before one ran).
        dropped: Items dropped because the writer fell behind (should stay 0).
        error: Why the recording stopped ("" while it runs).
    """

    elapsed_s: float
    imu: StreamStats
    truth: TruthStats | None
    imu_frames: int
    imu_samples: int
    truth_frames: int
    markers: int
    file_bytes: int
    disk_free_bytes: int
    backlog: int
    truth_offset_s: float = math.nan
    truth_drift_ppm: float = math.nan
    sync_residual_ms: float = math.nan
    dropped: int = 0
    error: str = ""


@dataclass
class _Counters:
    imu_frames: int = 0
    imu_samples: int = 0
    truth_frames: int = 0
    markers: int = 0
    dropped: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


class Recorder:
    """Records a connected device (and optionally a truth source) into a session writer.

    Args:
        device: A connected device.
        writer: The open session file.
        truth: An open truth source, or None.
        status_interval_s: How often device and truth statistics are stored.
        max_backlog: Items the queue holds before dropping the oldest (counted; about a
            minute at the heaviest array).
    """

    def __init__(self, device: ImuDevice, writer: SessionWriter, *,
                 truth: TruthSource | None = None, status_interval_s: float = 1.0,
                 max_backlog: int = 100_000) -> None:
        self.device = device
        self.writer = writer
        self.truth = truth
        self.status_interval_s = status_interval_s
        self.truth_clock = ClockMapper(window_s=0.5, history_s=600.0)
        self._queue: deque[tuple[str, Any]] = deque()
        self._max_backlog = max_backlog
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._c = _Counters()
        self._threads: list[threading.Thread] = []
        self._unsubscribe: Any = None
        self._start_s = math.nan
        self._error = ""
        self._last_status = 0.0
        self._last_reconnects = 0
        self._truth_state = ""
        self.sync_residual_ms = math.nan
        self.recent_s = 30.0
        self._recent_imu: deque[ImuFrame] = deque()
        self._recent_truth: deque[TruthFrame] = deque()

    # ------------------------------------------------------------------ control

    @property
    def error(self) -> str:
        """Why the recording stopped on its own ("" while fine)."""
        return self._error

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def start(self) -> Recorder:
        """Start writing; returns self."""
        self._start_s = time.monotonic()
        self._push("event", ("recording_started", self._start_s, {}))
        self._unsubscribe = self.device.add_callback(self._on_imu)
        self._threads = [threading.Thread(target=self._write_loop, name="imucap-rec-writer",
                                          daemon=True)]
        if self.truth is not None:
            self._threads.append(threading.Thread(target=self._truth_loop,
                                                  name="imucap-rec-truth", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def mark(self, label: str = "") -> int:
        """Set a marker now; returns its number (1, 2, ...)."""
        self._c.markers += 1
        index = self._c.markers
        self._push("marker", (label or f"marker {index}", time.monotonic(), index))
        return index

    def event(self, kind: str, time_s: float | None = None, **detail: Any) -> None:
        """Store an event (a calibration step, a note) at ``time_s`` (now by default)."""
        self._push("event", (kind, time.monotonic() if time_s is None else time_s, detail))

    def add_metadata(self, name: str, value: dict[str, Any]) -> None:
        """Store a metadata record (``imucap.calibration``, ``imucap.notes``) in the file."""
        self._push("metadata", (name, value))

    def recent(self, since_s: float) -> tuple[list[ImuFrame], list[TruthFrame]]:
        """IMU and truth frames written since host time ``since_s`` (up to ``recent_s`` ago)."""
        with self._cond:
            imu = [f for f in self._recent_imu if f.arrival_time_s >= since_s]
            truth = [f for f in self._recent_truth
                     if (f.arrival_time_s if f.live else math.inf) >= since_s]
        return imu, truth

    def stop(self) -> None:
        """Stop taking data, write everything queued, and leave the writer open (the caller
        adds the sync results, then closes it)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._push("event", ("recording_stopped", time.monotonic(), {}))
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []

    # ------------------------------------------------------------------ producers

    def _push(self, kind: str, item: Any) -> None:
        with self._cond:
            if len(self._queue) >= self._max_backlog:
                self._queue.popleft()
                self._c.dropped += 1
            self._queue.append((kind, item))
            self._cond.notify()

    def _on_imu(self, frame: ImuFrame) -> None:
        if not self._stop.is_set():
            self._push("imu", frame)

    def _truth_loop(self) -> None:
        truth = self.truth
        assert truth is not None
        while not self._stop.is_set():
            try:
                frame = truth.read(0.1)
            except Exception as exc:  # a source's failure is stored, the IMU goes on
                log.exception("truth source failed")
                self._push("event", ("truth_failed", time.monotonic(), {"detail": str(exc)}))
                return
            if frame is not None:
                self._push("truth", frame)

    # ------------------------------------------------------------------ writer

    def _write_loop(self) -> None:
        writer = self.writer
        try:
            while True:
                with self._cond:
                    if not self._queue and not self._stop.is_set():
                        self._cond.wait(0.05)
                    items = list(self._queue)
                    self._queue.clear()
                for kind, item in items:
                    self._write(kind, item)
                now = time.monotonic()
                if now - self._last_status >= self.status_interval_s:
                    self._write_status(now)
                writer.maybe_flush(now)
                if self._stop.is_set():
                    with self._cond:
                        if not self._queue:
                            break
            self._write_status(time.monotonic())
            writer.flush()
        except (DiskWriteError, SessionFileError) as exc:
            self._error = str(exc)
            self._stop.set()
        except Exception as exc:  # a bug: stop cleanly, keep what is written, report it
            log.exception("recorder writer failed")
            self._error = f"recording stopped by an internal error: {exc!r}"
            self._stop.set()
            try:
                writer.flush()
            except SessionFileError:
                pass

    def _write(self, kind: str, item: Any) -> None:
        w = self.writer
        if kind == "imu":
            w.write_imu(item)
            self._c.imu_frames += 1
            self._c.imu_samples += item.n_samples
            self._keep(self._recent_imu, item, item.arrival_time_s)
        elif kind == "truth":
            frame: TruthFrame = item
            w.write_truth(frame)
            self._c.truth_frames += 1
            if frame.live:
                self._keep(self._recent_truth, frame, frame.arrival_time_s)
            if frame.live and self.truth is not None:
                self.truth_clock.add_arrival(int(round(frame.source_time_s * 1e6)),
                                             frame.arrival_time_s - self.truth.latency_s)
        elif kind == "metadata":
            w.add_metadata(*item)
        elif kind == "marker":
            label, t, index = item
            w.write_marker(label, t, index)
        else:
            name, t, detail = item
            w.write_event(name, t, **detail)
            self._c.events.append({"kind": name, "time_s": t, **detail})

    def _keep(self, buffer: deque, item: Any, t: float) -> None:
        with self._cond:
            buffer.append(item)
            while buffer and t - (buffer[0].arrival_time_s) > self.recent_s:
                buffer.popleft()

    def _write_status(self, now: float) -> None:
        self._last_status = now
        stats = self.device.stats()
        clock = getattr(self.device, "clock", None)
        if clock is not None:
            probes = []
            while clock.probe_log:
                probes.append(clock.probe_log.popleft())
            self.writer.write_probes(probes)
        if stats.reconnects != self._last_reconnects:
            self._last_reconnects = stats.reconnects
            self._write("event", ("device_reconnected", now,
                                  {"reconnects": stats.reconnects, "detail": stats.last_error}))
        status: dict[str, Any] = {
            "imu": {"state": stats.state, "frames": stats.frames, "samples": stats.samples,
                    "samples_per_s": stats.samples_per_s, "frames_lost": stats.frames_lost,
                    "samples_lost": stats.samples_lost, "bad_frames": stats.bad_frames,
                    "reconnects": stats.reconnects, "clock_offset_s": stats.clock_offset_s,
                    "clock_drift_ppm": stats.clock_drift_ppm, "clock_rtt_ms": stats.clock_rtt_ms,
                    "last_error": stats.last_error},
            "written": {"imu_frames": self._c.imu_frames, "truth_frames": self._c.truth_frames,
                        "dropped": self._c.dropped},
        }
        if self.truth is not None:
            ts = self.truth.stats()
            status["truth"] = {"state": ts.state, "frames": ts.frames,
                               "frames_per_s": ts.frames_per_s, "no_face": ts.no_face,
                               "rejected": ts.rejected, "strangers": ts.strangers,
                               "gaps": ts.gaps, "last_error": ts.last_error}
            if ts.state != self._truth_state:
                if ts.state == "gap":
                    self._write("event", ("truth_gap", now, {"detail": "truth stream stopped"}))
                elif ts.state == "streaming" and self._truth_state == "gap":
                    self._write("event", ("truth_resumed", now, {}))
                elif ts.state == "ended":
                    self._write("event", ("truth_ended", now, {"detail": ts.last_error or
                                                                "the video file ended"}))
                self._truth_state = ts.state
            if self.truth_clock.ready:
                status["truth"].update(offset_s=self.truth_clock.offset_s(),
                                       drift_ppm=self.truth_clock.drift_ppm)
        self.writer.write_status(now, status)

    # ------------------------------------------------------------------ status

    def status(self) -> RecorderStatus:
        """A snapshot for the live panel (any thread)."""
        path = self.writer.path
        try:
            size = path.stat().st_size
            free = shutil.disk_usage(path.parent).free
        except OSError:
            size = free = 0
        ready = self.truth_clock.ready
        return RecorderStatus(
            elapsed_s=time.monotonic() - self._start_s if math.isfinite(self._start_s) else 0.0,
            imu=self.device.stats(), truth=self.truth.stats() if self.truth else None,
            imu_frames=self._c.imu_frames, imu_samples=self._c.imu_samples,
            truth_frames=self._c.truth_frames, markers=self._c.markers, file_bytes=size,
            disk_free_bytes=free, backlog=len(self._queue),
            truth_offset_s=self.truth_clock.offset_s() if ready else math.nan,
            truth_drift_ppm=self.truth_clock.drift_ppm if ready else math.nan,
            sync_residual_ms=self.sync_residual_ms, dropped=self._c.dropped, error=self._error)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events written so far."""
        return list(self._c.events)
