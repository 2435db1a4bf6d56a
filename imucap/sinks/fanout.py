"""Send every output frame to several sinks at once, none of them able to hold up the rest.

Each sink gets its own worker thread behind a small bounded queue. ``send()`` only thins the
frame stream to ``rate_hz`` and puts the frame on every queue, so it takes microseconds
whatever the sinks do. Drop policy: a sink that falls behind loses its oldest queued frames
(counted in its ``frames_dropped``); the others, and the caller, never wait for it.

Rate limiting goes by the frames' own times (``FaceFrame.time_s``), so it does not depend on
when the caller gets to run: a frame is passed on once it is no earlier than one period after
the time it is due, less a quarter period of tolerance for jitter. The due time advances by
whole periods, so a 90 Hz stream thinned to 60 Hz comes out at 60 Hz on average, not 45; after
a pause the schedule restarts from the next frame instead of letting a burst through.

A sink whose ``open()`` fails is reported (one warning line, and in ``stats().failed``) and
left out; the others go on. Only when every sink fails does ``open()`` raise.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imucap.errors import ImucapError

from .base import DropOldestQueue, Sink, SinkError, SinkStats

if TYPE_CHECKING:
    from imucap.inference.engine import FaceFrame

__all__ = ["FanOut", "FanOutStats"]

log = logging.getLogger(__name__)

# Share of a period by which a frame may come early and still be passed on.
_TOLERANCE = 0.25


@dataclass(frozen=True)
class FanOutStats:
    """What a :class:`FanOut` did.

    Attributes:
        frames_in: Frames given to ``send()``.
        frames_thinned: Of those, frames left out to keep to ``rate_hz``.
        sinks: Each running sink's stats, by name; ``frames_dropped`` includes frames its
            queue dropped.
        failed: Sinks left out because ``open()`` failed: name -> the reason.
    """

    frames_in: int = 0
    frames_thinned: int = 0
    sinks: Mapping[str, SinkStats] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)


class _Worker:
    """One sink's queue and thread."""

    def __init__(self, sink: Sink, key: str, queue_size: int) -> None:
        self.sink = sink
        self.key = key
        self.queue: DropOldestQueue[FaceFrame] = DropOldestQueue(queue_size)
        self.thread = threading.Thread(target=self._run, name=f"imucap-sink {key}", daemon=True)

    def _run(self) -> None:
        while True:
            frame = self.queue.get()
            if frame is None:
                return
            try:
                self.sink.send(frame)
            except Exception as exc:  # noqa: BLE001 - a broken sink must not end its thread
                self.sink.count_error(f"{type(exc).__name__}: {exc}")


class FanOut:
    """Sends each frame to every sink, each on its own thread.

    Args:
        sinks: The sinks, or sink URIs (see :func:`imucap.sinks.open_sink`); opened by
            :meth:`open` unless already open.
        rate_hz: Highest frame rate passed on (None or 0: no thinning).
        queue_size: Frames waiting per sink before its oldest are dropped.
        close_timeout_s: How long :meth:`close` waits for each sink to finish its queue.

    Example:
        >>> with FanOut(["livelink://127.0.0.1", "lsl"], rate_hz=60) as out:  # doctest: +SKIP
        ...     for frame in engine_frames:
        ...         out.send(frame)
    """

    def __init__(self, sinks: Iterable[Sink | str], rate_hz: float | None = 60.0, *,
                 queue_size: int = 4, close_timeout_s: float = 2.0) -> None:
        if rate_hz is not None and not (rate_hz >= 0 and math.isfinite(rate_hz)):
            raise SinkError(f"FanOut rate_hz must be a positive number or None, got {rate_hz!r}")
        if queue_size < 1:
            raise SinkError(f"FanOut queue_size must be at least 1, got {queue_size}")
        from .uri import sink_from_uri

        self._sinks = [sink_from_uri(s, rate_hz=rate_hz or None) if isinstance(s, str) else s
                       for s in sinks]
        self.rate_hz = rate_hz or None
        self.queue_size = queue_size
        self.close_timeout_s = close_timeout_s
        self._period_s = 1.0 / rate_hz if rate_hz else 0.0
        self._workers: list[_Worker] = []
        self._failed: dict[str, str] = {}
        self._is_open = False
        self._lock = threading.Lock()
        self._frames_in = 0
        self._thinned = 0
        self._next_due: float | None = None
        self._last_time: float | None = None
        self._closed_stats: FanOutStats | None = None

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks that are running (after :meth:`open`), or all of them (before)."""
        if self._is_open:
            return tuple(w.sink for w in self._workers)
        return tuple(self._sinks)

    def open(self) -> FanOut:
        """Opens every sink and starts its thread; returns self.

        Raises:
            SinkError: If no sink could be opened (the message lists why, one per sink).
        """
        if self._is_open:
            return self
        self._failed = {}
        self._closed_stats = None
        keys: set[str] = set()
        try:
            for sink in self._sinks:
                key = _unique(sink.name, keys)
                try:
                    sink.open()
                except (ImucapError, OSError) as exc:
                    self._failed[key] = str(exc)
                    log.warning("sink %s left out: %s", key, exc)
                    continue
                self._workers.append(_Worker(sink, key, self.queue_size))
        except BaseException:
            for worker in self._workers:
                worker.sink.close()
            self._workers = []
            raise
        if not self._workers and self._sinks:
            reasons = "; ".join(f"{k}: {why}" for k, why in self._failed.items())
            raise SinkError(f"no sink could be opened ({reasons})")
        for worker in self._workers:
            worker.thread.start()
        self._next_due = self._last_time = None
        self._is_open = True
        return self

    def send(self, frame: FaceFrame) -> bool:
        """Queues the frame for every sink unless thinned; never waits for a sink.

        Returns:
            Whether the frame was passed on (False: thinned to keep to ``rate_hz``).

        Raises:
            SinkError: If the fan-out is not open.
        """
        if not self._is_open:
            raise SinkError("FanOut is not open: call open() first")
        with self._lock:
            self._frames_in += 1
            if not self._due(frame.time_s):
                self._thinned += 1
                return False
        for worker in self._workers:
            if worker.queue.put(frame) is not None:
                worker.sink.count_dropped()
        return True

    def _due(self, t: float) -> bool:
        if not self._period_s:
            return True
        period = self._period_s
        restart = (self._next_due is None or self._last_time is None or t < self._last_time
                   or not math.isfinite(t))
        self._last_time = t
        if restart:
            self._next_due = t + period
            return True
        if t < self._next_due - _TOLERANCE * period:
            return False
        self._next_due += period
        if self._next_due < t:
            # More than a period behind the schedule (a pause): restart it from this frame
            # instead of passing a burst to catch up.
            self._next_due = t + period
        return True

    def close(self) -> None:
        """Lets every sink finish its queue (up to ``close_timeout_s``), then closes it."""
        if not self._is_open:
            return
        self._is_open = False
        for worker in self._workers:
            worker.queue.close()
        for worker in self._workers:
            worker.thread.join(self.close_timeout_s)
            if worker.thread.is_alive():
                log.warning("sink %s did not finish within %.1f s; closing it anyway",
                            worker.key, self.close_timeout_s)
            try:
                worker.sink.close()
            except Exception as exc:  # noqa: BLE001 - close the others whatever one does
                log.warning("sink %s failed to close: %s", worker.key, exc)
        self._closed_stats = self._collect()
        self._workers = []

    def stats(self) -> FanOutStats:
        """Counters of the fan-out and of each sink (also after :meth:`close`)."""
        if not self._is_open and self._closed_stats is not None:
            return self._closed_stats
        return self._collect()

    def _collect(self) -> FanOutStats:
        with self._lock:
            frames_in, thinned = self._frames_in, self._thinned
        sinks = {w.key: w.sink.stats() for w in self._workers}
        return FanOutStats(frames_in=frames_in, frames_thinned=thinned, sinks=sinks,
                           failed=dict(self._failed))

    def __enter__(self) -> FanOut:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _unique(name: str, taken: set[str]) -> str:
    key, n = name, 2
    while key in taken:
        key, n = f"{name}#{n}", n + 1
    taken.add(key)
    return key

