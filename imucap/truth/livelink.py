"""An iPhone running Live Link Face as the truth source (UDP, packet version 6).

The receiver binds only where the user says, loopback by default: it listens on a network, and
an iPhone on the lab's Wi-Fi needs ``livelink://0.0.0.0:11111`` (or the host's address) on
purpose. The phone's frame time (timecode as frame number + sub-frame at its frame rate) is the
source time; the phone's clock is mapped to the host's by :mod:`imucap.sync`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from urllib.parse import urlsplit

from imucap.sinks.base import SinkError
from imucap.sinks.livelink import DEFAULT_PORT, PACKET_VERSION, LiveLinkReceiver

from .base import TruthError, TruthFrame, TruthSource, TruthStats

DEFAULT_HOST = "127.0.0.1"


def parse_livelink_uri(uri: str, *, option: str = "--truth") -> tuple[str, int]:
    """``livelink://[HOST][:PORT]`` → ``(host, port)`` to listen on.

    An empty host is loopback (``127.0.0.1``); the port defaults to Live Link Face's 11111.
    """
    parts = urlsplit(uri)
    if parts.scheme != "livelink" or parts.path not in ("", "/"):
        raise TruthError(f"{option} {uri}: expected livelink://[HOST][:PORT], such as "
                         f"livelink://0.0.0.0:11111 to hear an iPhone on the network")
    try:
        port = parts.port
    except ValueError:
        raise TruthError(f"{option} {uri}: the port must be a number from 1 to 65535") from None
    return parts.hostname or DEFAULT_HOST, DEFAULT_PORT if port is None else port


class LiveLinkTruth(TruthSource):
    """Live Link Face packets as truth frames.

    The first sender heard is the one recorded; packets from any other device id are ignored
    and counted (``stats().strangers``). Packets of another Live Link version are counted as
    rejected and explained in ``stats().last_error``.

    Args:
        host: Address to listen on (loopback by default).
        port: UDP port.
        subject: Record only this Live Link subject name (None: the first sender).
        gap_timeout_s: Silence after which the stream counts as stopped (a gap).
    """

    kind = "livelink"

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 subject: str | None = None, gap_timeout_s: float = 0.5) -> None:
        self.host, self.port = host, port
        self.subject = subject
        self.gap_timeout_s = gap_timeout_s
        self._rx: LiveLinkReceiver | None = None
        self._sender: str | None = None
        self._lock = threading.Lock()
        self._frames = 0
        self._strangers = 0
        self._gaps = 0
        self._in_gap = False
        self._last_arrival = math.nan
        self._recent: deque[float] = deque()
        self._rate_hz = 0.0

    @property
    def name(self) -> str:
        return f"Live Link Face on {self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        """Where the receiver listens (the real port when 0 was asked for)."""
        return self._rx.address if self._rx is not None else (self.host, self.port)

    def open(self) -> LiveLinkTruth:
        if self._rx is None:
            rx = LiveLinkReceiver(self.port, self.host, queue_size=4096)
            try:
                rx.open()
            except SinkError as exc:
                raise TruthError(str(exc)) from None
            self._rx = rx
        return self

    def close(self) -> None:
        if self._rx is not None:
            self._rx.close()
            self._rx = None

    def read(self, timeout_s: float | None = None) -> TruthFrame | None:
        rx = self._rx
        if rx is None:
            return None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            packet = rx.read(left)
            if packet is None:
                self._check_gap()
                return None
            if self.subject is not None and packet.subject != self.subject:
                self._count_stranger()
                continue
            if self._sender is None:
                self._sender = packet.device_id
            elif packet.device_id != self._sender:
                self._count_stranger()
                continue
            rate = packet.frame_rate_hz
            if not rate > 0:
                self._count_stranger()
                continue
            self._rate_hz = rate
            arrival = packet.arrival_time_s if packet.arrival_time_s is not None else \
                time.monotonic()
            with self._lock:
                seq = self._frames
                self._frames += 1
                self._last_arrival = arrival
                self._in_gap = False
                self._recent.append(arrival)
                while self._recent and arrival - self._recent[0] > 1.0:
                    self._recent.popleft()
            return TruthFrame(seq=seq, source_time_s=packet.time_s, arrival_time_s=arrival,
                              weights=packet.weights, head_ypr=packet.head_ypr)

    def _count_stranger(self) -> None:
        with self._lock:
            self._strangers += 1

    def _check_gap(self) -> None:
        with self._lock:
            if self._frames and not self._in_gap and \
                    time.monotonic() - self._last_arrival > self.gap_timeout_s:
                self._in_gap = True
                self._gaps += 1

    def stats(self) -> TruthStats:
        rx = self._rx.stats() if self._rx is not None else None
        self._check_gap()
        with self._lock:
            now = time.monotonic()
            while self._recent and now - self._recent[0] > 1.0:
                self._recent.popleft()
            if self._rx is None:
                state = "closed"
            elif not self._frames:
                state = "waiting"
            else:
                state = "gap" if self._in_gap else "streaming"
            error = ""
            rejected = 0
            if rx is not None:
                rejected = rx.rejected
                if rx.wrong_version:
                    error = (f"{rx.wrong_version} packet(s) of another Live Link version (this "
                             f"imucap reads version {PACKET_VERSION}, the Live Link Face app's "
                             f"current one): update the app on the phone")
                elif rx.last_error:
                    error = rx.last_error
            return TruthStats(state=state, frames=self._frames,
                              frames_per_s=float(len(self._recent)), rejected=rejected,
                              strangers=self._strangers, gaps=self._gaps,
                              dropped=rx.queue_drops if rx is not None else 0,
                              last_error=error)

    def metadata(self) -> dict[str, object]:
        out = super().metadata()
        out.update(host=self.host, port=self.port, sender=self._sender,
                   frame_rate_hz=self._rate_hz)
        return out
