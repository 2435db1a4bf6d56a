"""The device abstraction every transport implements, and the ways to read its frames.

A device is opened from a URI (:func:`imucap.devices.open_device`) or built from its config
dataclass; ``connect()`` does the handshake and starts streaming on a background reader. Frames
are read in whichever style suits the caller, all served by one queue:

- ``read(timeout_s)`` blocks for the next unconsumed frame;
- ``await async_read(timeout_s)`` and ``async for frame in device`` do the same in asyncio;
- ``read_latest(max_age_s)`` returns the newest frame and refuses one that is too old;
- ``add_callback(fn)`` calls ``fn(frame)`` (sync, or async on the caller's loop) for every
  frame and returns a function that unregisters it.

Drop policy: the queue holds ``queue_size`` frames; a consumer that falls behind loses the
oldest ones, counted in ``stats().queue_drops``. Callbacks always see every frame.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from imucap.errors import DeviceError, StaleDataError
from imucap.firmware_bridge.protocol import DeviceInfo
from imucap.frames import ImuFrame

log = logging.getLogger(__name__)

FrameCallback = Callable[[ImuFrame], Any]


@dataclass(kw_only=True)
class DeviceConfig:
    """Settings every device shares.

    Attributes:
        rate_hz: Output rate to ask the device for; None keeps the device's own.
        samples_per_frame: Batching to ask for with ``rate_hz``; 0 lets the device choose.
        queue_size: Frames kept for ``read()`` before the oldest are dropped.
        handshake_timeout_s: How long to wait for the device to answer when connecting.
        reconnect: Whether to reconnect automatically after the link is lost.
        reconnect_timeout_s: Give up reconnecting after this long (None: never give up).
        reconnect_max_backoff_s: Longest wait between reconnection attempts.
        silence_timeout_s: Treat the link as lost after this long without any byte.
        stall_threshold_s: A gap between arrivals longer than this counts as one stall.
        ping_interval_s: Time between clock probes (0 disables them).
        read_interval_s: Pause after each read that brought data, so that at high frame
            rates one wake-up takes several frames; adds at most this much latency.
    """

    rate_hz: int | None = None
    samples_per_frame: int = 0
    queue_size: int = 1024
    handshake_timeout_s: float = 3.0
    reconnect: bool = True
    reconnect_timeout_s: float | None = None
    reconnect_max_backoff_s: float = 2.0
    silence_timeout_s: float = 3.0
    stall_threshold_s: float = 0.25
    ping_interval_s: float = 1.0
    read_interval_s: float = 0.002


@dataclass(frozen=True)
class StreamStats:
    """A snapshot of a stream's health, like an IMU SDK's link statistics.

    Rates are measured over the last second. Counters run from ``connect()``.
    """

    state: str = "disconnected"
    frames: int = 0
    samples: int = 0
    bytes: int = 0
    frames_per_s: float = 0.0
    samples_per_s: float = 0.0
    bytes_per_s: float = 0.0
    sensor_rates_hz: tuple[float, ...] = ()
    crc_errors: int = 0
    cobs_errors: int = 0
    short_frames: int = 0
    oversize_frames: int = 0
    payload_errors: int = 0
    bad_frames: int = 0
    bytes_discarded: int = 0
    resyncs: int = 0
    unknown_types: int = 0
    seq_gaps: int = 0
    frames_lost: int = 0
    samples_lost: int = 0
    out_of_order: int = 0
    duplicates: int = 0
    foreign_packets: int = 0
    partial_samples: int = 0
    stalls: int = 0
    reconnects: int = 0
    reconnect_attempts: int = 0
    queue_drops: int = 0
    clock_offset_s: float = 0.0
    clock_drift_ppm: float = 0.0
    clock_rtt_ms: float | None = None
    clock_source: str = "none"
    last_error: str = ""

    @property
    def loss_ratio(self) -> float:
        """Samples lost over samples expected (received plus lost)."""
        total = self.samples + self.samples_lost
        return self.samples_lost / total if total else 0.0


@dataclass
class _Subscription:
    loop: asyncio.AbstractEventLoop | None
    fn: FrameCallback
    is_async: bool
    pending: set = field(default_factory=set)


class ImuDevice(ABC):
    """A source of :class:`~imucap.frames.ImuFrame` s: connect, read, disconnect.

    Subclasses implement :meth:`connect`, :meth:`disconnect`, :attr:`info` and
    :meth:`stats`, and hand each decoded frame to :meth:`_deliver`.
    """

    type_name = "device"

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self._frames: deque[ImuFrame] = deque()
        self._cond = threading.Condition()
        self._latest: ImuFrame | None = None
        self._subs: dict[int, _Subscription] = {}
        self._next_sub = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._queue_drops = 0
        self._failure: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    @abstractmethod
    def connect(self) -> None:
        """Open the link, do the handshake and start streaming. Raises a clear DeviceError."""

    @abstractmethod
    def disconnect(self) -> None:
        """Stop streaming and close the link; safe to call twice."""

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """Whether the device is connected (or reconnecting) and frames may arrive."""

    @property
    @abstractmethod
    def info(self) -> DeviceInfo | None:
        """The device's DEVICE_INFO, None before the first handshake."""

    @abstractmethod
    def stats(self) -> StreamStats:
        """A snapshot of the stream's statistics."""

    @property
    def name(self) -> str:
        """A short description for messages, such as the port or address."""
        return self.type_name

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """The channels this device produces, with shapes and units; works while disconnected.

        The number of sensors is known after the first handshake (``None`` before it).
        """
        info = self.info
        sensors = info.sensor_count if info else None
        feats: dict[str, dict[str, Any]] = {
            "accel": {"shape": (sensors, 3), "dtype": "float32", "unit": "m/s^2"},
            "gyro": {"shape": (sensors, 3), "dtype": "float32", "unit": "rad/s"},
            "device_time_us": {"shape": (), "dtype": "int64", "unit": "us"},
            "host_time_s": {"shape": (), "dtype": "float64", "unit": "s"},
        }
        if info and info.mag_range_ut:
            feats["mag"] = {"shape": (sensors, 3), "dtype": "float32", "unit": "uT"}
        if info:
            feats["sites"] = {"names": info.sites}
        return feats

    def __enter__(self) -> ImuDevice:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    async def __aenter__(self) -> ImuDevice:
        await asyncio.to_thread(self.connect)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.disconnect)

    # ------------------------------------------------------------------ reading

    def _check_readable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if not self.is_connected:
            raise DeviceError(f"{self.name} is not connected: call connect() first")

    def read(self, timeout_s: float | None = None) -> ImuFrame:
        """The next unconsumed frame, waiting up to ``timeout_s`` (None: forever).

        Raises:
            TimeoutError: No frame arrived in time.
            DeviceError: The device is not connected, or failed for good.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._frames:
                if self._failure is not None or not self.is_connected:
                    self._check_readable()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no frame from {self.name} within {timeout_s} s")
                self._cond.wait(0.1 if remaining is None else min(remaining, 0.1))
            return self._frames.popleft()

    def read_latest(self, max_age_s: float | None = None) -> ImuFrame:
        """The newest frame, without waiting and without consuming the queue.

        Args:
            max_age_s: Refuse a frame that arrived longer ago than this (None: any age).

        Raises:
            StaleDataError: No frame yet, or the newest is older than ``max_age_s``.
        """
        self._check_readable()
        frame = self._latest
        if frame is None:
            raise StaleDataError(f"no frame has arrived from {self.name} yet")
        age = time.monotonic() - frame.arrival_time_s
        if max_age_s is not None and age > max_age_s:
            raise StaleDataError(
                f"the newest frame from {self.name} is {age:.3f} s old (limit {max_age_s} s)")
        return frame

    async def async_read(self, timeout_s: float | None = None) -> ImuFrame:
        """Await the next unconsumed frame; the asyncio twin of :meth:`read`."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            event = asyncio.Event()
            waiter = (loop, event)
            with self._cond:
                if self._frames:
                    return self._frames.popleft()
                self._check_readable()
                self._waiters.add(waiter)
            try:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no frame from {self.name} within {timeout_s} s")
                wait = 0.25 if remaining is None else min(remaining, 0.25)
                try:
                    await asyncio.wait_for(event.wait(), wait)
                except asyncio.TimeoutError:
                    pass  # poll again so a failure or disconnect is noticed
            finally:
                with self._cond:
                    self._waiters.discard(waiter)

    def __aiter__(self) -> AsyncIterator[ImuFrame]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[ImuFrame]:
        while True:
            try:
                yield await self.async_read()
            except DeviceError:
                if self._failure is not None:
                    raise
                return  # disconnected on purpose: the iteration ends

    def add_callback(self, fn: FrameCallback) -> Callable[[], None]:
        """Call ``fn(frame)`` for every frame; returns a function that unregisters it.

        A plain function runs on the reader thread and must be quick. A coroutine function
        runs on the event loop that was running when it was registered.
        """
        is_async = inspect.iscoroutinefunction(fn)
        loop = asyncio.get_running_loop() if is_async else None
        with self._cond:
            key = self._next_sub
            self._next_sub += 1
            self._subs[key] = _Subscription(loop, fn, is_async)

        def unregister() -> None:
            with self._cond:
                self._subs.pop(key, None)

        return unregister

    # ------------------------------------------------------------------ for subclasses

    def _deliver(self, frame: ImuFrame) -> None:
        with self._cond:
            if len(self._frames) >= self.config.queue_size:
                self._frames.popleft()
                self._queue_drops += 1
            self._frames.append(frame)
            self._latest = frame
            self._cond.notify_all()
            waiters = list(self._waiters)
            subs = list(self._subs.values())
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        for sub in subs:
            if sub.is_async:
                fut = asyncio.run_coroutine_threadsafe(sub.fn(frame), sub.loop)
                sub.pending.add(fut)
                fut.add_done_callback(sub.pending.discard)
            else:
                try:
                    sub.fn(frame)
                except Exception:  # a consumer's bug must not stop the stream
                    log.exception("frame callback %r failed", sub.fn)

    def _fail(self, exc: BaseException) -> None:
        """The device failed for good: wake every reader, who will get ``exc``."""
        with self._cond:
            self._failure = exc
            self._cond.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def _wake_readers(self) -> None:
        with self._cond:
            self._cond.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)


DeviceFactory = Callable[[str, dict[str, str]], ImuDevice]
_REGISTRY: dict[str, DeviceFactory] = {}


def register_device(scheme: str) -> Callable[[DeviceFactory], DeviceFactory]:
    """Register a factory ``(target, params) -> ImuDevice`` for a URI scheme."""

    def wrap(factory: DeviceFactory) -> DeviceFactory:
        _REGISTRY[scheme] = factory
        return factory

    return wrap


def device_schemes() -> dict[str, DeviceFactory]:
    """The registered URI schemes and their factories."""
    return dict(_REGISTRY)
