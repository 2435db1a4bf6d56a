"""The sink abstraction: where output face frames go, and how a sink accounts for them.

A sink is opened once, sent one :class:`~imucap.inference.engine.FaceFrame` at a time, and
closed. ``open()`` raises :class:`SinkError` (one line: what is wrong, what to do) for anything
that can be known up front: a host name that does not resolve, a port out of range, a missing
optional package. Once open, ``send()`` never raises for trouble on the network: a refused UDP
port, a full send buffer or an unreachable host is counted in ``stats().errors``, its text kept
in ``stats().last_error``, and the stream carries on with the next frame.

Subclasses implement ``_open``, ``_send`` (returns the bytes it handed to the transport) and
``_close``; the base class does the bookkeeping and times every send.
"""

from __future__ import annotations

import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from imucap.errors import ImucapError

if TYPE_CHECKING:
    from imucap.inference.engine import FaceFrame

__all__ = [
    "LIVE_EXTRA_HINT",
    "DropOldestQueue",
    "Sink",
    "SinkError",
    "SinkStats",
    "UdpSink",
    "check_port",
]

#: What to tell a user whose optional live-streaming packages are missing.
LIVE_EXTRA_HINT = "pip install 'imucap[live]'"

# Send costs kept for the mean and p99 in stats().
_COST_WINDOW = 1024

T = TypeVar("T")


class SinkError(ImucapError):
    """A sink could not be opened or named: bad URI, host, port, or a missing package."""


@dataclass(frozen=True)
class SinkStats:
    """What a sink did so far.

    Attributes:
        frames_sent: Frames handed to the transport.
        frames_dropped: Frames never tried: dropped by a full queue in front of the sink
            (:class:`~imucap.sinks.fanout.FanOut`) or because the sink could not take them.
        errors: Sends that failed (the frame is lost); the stream went on.
        last_error: Text of the most recent failure, or None.
        bytes_sent: Payload bytes handed to the transport (0 where the transport does not say).
        mean_send_us: Mean cost of one ``send()`` in microseconds, over the last 1024 sends.
        p99_send_us: 99th percentile of that cost.
    """

    frames_sent: int = 0
    frames_dropped: int = 0
    errors: int = 0
    last_error: str | None = None
    bytes_sent: int = 0
    mean_send_us: float = 0.0
    p99_send_us: float = 0.0


def check_port(port: object, what: str) -> int:
    """Returns ``port`` as an int in 1..65535, or raises a one-line :class:`SinkError`.

    Args:
        port: The port as given.
        what: What the port is for, for the message (``"Live Link"``).
    """
    if isinstance(port, bool) or not isinstance(port, int):
        try:
            port = int(str(port), 10)
        except ValueError:
            raise SinkError(f"{what} port {port!r} is not a number: give a UDP port from "
                            f"1 to 65535") from None
    if not 0 < port < 65536:
        raise SinkError(f"{what} port {port} is out of range: give a UDP port from 1 to 65535")
    return port


class Sink(ABC):
    """Somewhere to send output frames.

    Use as a context manager, or call ``open()`` and ``close()``. ``open()`` on an open sink and
    ``close()`` on a closed one do nothing. Not for use from several threads at once (a
    :class:`~imucap.sinks.fanout.FanOut` gives each sink its own thread); ``stats()`` may be
    called from any thread.
    """

    #: Exceptions that ``send()`` counts as a failed send instead of raising. Trouble on the
    #: network arrives as OSError; subclasses add their transport's own.
    transient_errors: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, name: str) -> None:
        self._name = name
        self._is_open = False
        self._lock = threading.Lock()
        self._sent = 0
        self._dropped = 0
        self._errors = 0
        self._last_error: str | None = None
        self._bytes = 0
        self._costs_ns: deque[int] = deque(maxlen=_COST_WINDOW)

    @property
    def name(self) -> str:
        """Where this sink sends, written like its URI (``livelink://127.0.0.1:11111``)."""
        return self._name

    @property
    def is_open(self) -> bool:
        """Whether ``open()`` succeeded and ``close()`` has not been called since."""
        return self._is_open

    def open(self) -> Sink:
        """Gets ready to send (resolves hosts, creates sockets and outlets); returns self.

        Raises:
            SinkError: With one line that says what is wrong and what to do.
        """
        if not self._is_open:
            self._open()
            self._is_open = True
        return self

    def send(self, frame: FaceFrame) -> None:
        """Sends one frame. Network trouble is counted in ``stats()``, never raised.

        Raises:
            SinkError: If the sink is not open.
        """
        if not self._is_open:
            raise SinkError(f"sink {self._name} is not open: call open() first")
        start = time.perf_counter_ns()
        try:
            sent = self._send(frame)
        except self.transient_errors as exc:
            cost = time.perf_counter_ns() - start
            with self._lock:
                self._errors += 1
                self._last_error = _describe(exc)
                self._costs_ns.append(cost)
            return
        cost = time.perf_counter_ns() - start
        with self._lock:
            self._sent += 1
            self._bytes += sent
            self._costs_ns.append(cost)

    def close(self) -> None:
        """Releases sockets and outlets. Idempotent."""
        if self._is_open:
            self._is_open = False
            self._close()

    def count_dropped(self, n: int = 1) -> None:
        """Counts frames that were meant for this sink but never reached ``send()``."""
        with self._lock:
            self._dropped += n

    def count_error(self, text: str) -> None:
        """Counts a failure that happened around this sink rather than inside ``send()``."""
        with self._lock:
            self._errors += 1
            self._last_error = text

    def stats(self) -> SinkStats:
        """A snapshot of the counters (safe from any thread)."""
        with self._lock:
            costs = sorted(self._costs_ns)
            snapshot = SinkStats(
                frames_sent=self._sent,
                frames_dropped=self._dropped,
                errors=self._errors,
                last_error=self._last_error,
                bytes_sent=self._bytes,
            )
        if not costs:
            return snapshot
        mean = sum(costs) / len(costs) / 1e3
        p99 = costs[min(len(costs) - 1, int(0.99 * len(costs)))] / 1e3
        return replace(snapshot, mean_send_us=mean, p99_send_us=p99)

    def __enter__(self) -> Sink:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"<{type(self).__name__} {self._name} ({state})>"

    @abstractmethod
    def _open(self) -> None:
        """Acquires resources; raises SinkError for what the user can fix."""

    @abstractmethod
    def _send(self, frame: FaceFrame) -> int:
        """Sends one frame; returns the bytes handed over. May raise ``transient_errors``."""

    @abstractmethod
    def _close(self) -> None:
        """Releases resources."""


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


class UdpSink(Sink):
    """A sink that sends each frame as one UDP datagram to a fixed host and port.

    The socket is connected (so the kernel reports a refused port, as ECONNREFUSED on a later
    send on Linux) and non-blocking (so a full send buffer costs a counted error, never a stall).
    """

    def __init__(self, host: str, port: int, *, scheme: str, what: str) -> None:
        self.host = host
        self.port = check_port(port, what)
        self._what = what
        super().__init__(f"{scheme}://{_host_for_uri(host)}:{self.port}")
        self._sock: socket.socket | None = None

    def _open(self) -> None:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise SinkError(f"cannot resolve host {self.host!r} for {self._what} ({exc}): "
                            f"check the name, or give an IP address") from None
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            raise SinkError(f"cannot send to {self.host}:{self.port} for {self._what} "
                            f"({exc}): check the address and the network") from None
        self._sock = sock

    def _transmit(self, data: bytes) -> int:
        assert self._sock is not None
        return self._sock.send(data)

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class DropOldestQueue(Generic[T]):
    """A small bounded queue whose ``put`` never blocks: when full, the oldest item goes.

    ``get`` blocks until an item arrives or the queue is closed (then returns None once the
    remaining items are gone).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        self._items: deque[T] = deque()
        self._size = size
        self._cond = threading.Condition(threading.Lock())
        self._closed = False

    def put(self, item: T) -> T | None:
        """Adds ``item``; returns the item dropped to make room, or None."""
        with self._cond:
            dropped = self._items.popleft() if len(self._items) >= self._size else None
            self._items.append(item)
            self._cond.notify()
        return dropped

    def get(self, timeout_s: float | None = None) -> T | None:
        """The oldest item; None on timeout, or when closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait_for(lambda: self._items or self._closed, timeout_s)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        """Wakes every waiting ``get``; items already queued are still handed out."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
