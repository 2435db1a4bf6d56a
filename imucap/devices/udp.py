"""Wi-Fi arrays that send UDP datagrams to this computer (PROTOCOL.md section 6).

``udp://0.0.0.0:9000`` listens on UDP port 9000 of every interface. A board configured with
this computer's address announces itself there (DEVICE_INFO once a second); the host answers
to the address the announcement came from and runs the usual session over it: handshake,
stream, clock probes, and reconnection when the board goes quiet.

Several boards may send to one port. The port is opened once per process and shared; each
device takes the board with its ``device_id`` (``?device_id=0x1ac0face``), or the first board
no other device has taken. A board that reappears from another address (a reboot, a new DHCP
lease) is recognised by its ``device_id``. Datagrams that hold no imucap frame are ignored and
counted (``stats().foreign_packets``).

A board that waits to be contacted instead of announcing is reached with
``?peer=HOST:PORT``: the host sends GET_INFO there until it answers.

Datagrams may be lost, duplicated or reordered: frames are put back in sequence order within
``reorder_window_s`` (see :mod:`imucap.devices.reorder`), duplicates are dropped, and losses
show in the statistics as on any link.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from imucap.errors import DeviceBusyError, DeviceError, DeviceNotFoundError
from imucap.firmware_bridge.codec import FrameDecoder, encode_frame
from imucap.firmware_bridge.protocol import DeviceInfo, GetInfo
from imucap.firmware_bridge.transport import UDP_DEFAULT_PORT, pack_datagrams

from .base import DeviceConfig, StreamStats, register_device
from .links import Link, LinkLost
from .protocol_device import ProtocolDevice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Announcement:
    """A board heard on a port: what it said of itself, from where, and when."""

    info: DeviceInfo
    address: tuple[str, int]
    heard_at_s: float


class _Inbox:
    """Datagrams routed to one device's link."""

    def __init__(self) -> None:
        self.items: deque[bytes] = deque()
        self.cond = threading.Condition()
        self.dropped = 0

    def put(self, data: bytes) -> None:
        with self.cond:
            if len(self.items) >= 4096:  # nobody reads: keep the newest
                self.items.popleft()
                self.dropped += 1
            self.items.append(data)
            self.cond.notify()

    def take(self, timeout_s: float) -> bytes:
        with self.cond:
            if not self.items:
                self.cond.wait(timeout_s)
            data = b"".join(self.items)
            self.items.clear()
            return data


class UdpPort:
    """One bound UDP socket shared by every device that listens on it in this process.

    A thread reads datagrams and routes each by its source address to the board that sent it
    (learnt from the board's DEVICE_INFO). Use :func:`open_port` and :meth:`release`.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.foreign = 0  # datagrams holding no imucap frame
        self.unclaimed = 0  # datagrams from boards no device has taken
        self._refs = 0
        self._lock = threading.Condition()
        self._routes: dict[tuple[str, int], int] = {}  # address -> device_id
        self._boards: dict[int, Announcement] = {}  # device_id -> latest announcement
        self._inboxes: dict[int, _Inbox] = {}  # device_id -> the link that took it
        self._last_heard: dict[int, float] = {}  # device_id -> last datagram
        self._asked: dict[tuple[str, int], float] = {}  # unknown senders asked for GET_INFO
        self._seq = itertools.count()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise DeviceBusyError(
                    f"UDP port {port} is already in use by another program (another imucap, "
                    f"a Live Link or OSC receiver?): close it, or let the board send to another "
                    f"port and listen there with udp://{host}:PORT") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise DeviceError(
                    f"{host} is not an address of this computer: listen on udp://0.0.0.0:{port} "
                    f"(every interface) or on one of its own addresses") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise DeviceError(f"not allowed to listen on UDP port {port}: ports below 1024 "
                                  f"need privileges; use 9000 (the default)") from None
            raise DeviceError(f"cannot listen on UDP {host}:{port}: "
                              f"{os.strerror(exc.errno) if exc.errno else exc}") from None
        sock.setblocking(False)
        self._sock = sock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"imucap-udp-{port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ routing

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], 0.1)
            except (OSError, ValueError):
                return  # closed
            if not ready:
                continue
            now = time.monotonic()
            for _ in range(256):  # drain what is there, then look at the stop flag again
                try:
                    data, address = self._sock.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    # e.g. ECONNREFUSED from an earlier send to a closed port: not fatal
                    break
                self._route(data, address[:2], now)

    def _route(self, data: bytes, address: tuple[str, int], now: float) -> None:
        with self._lock:
            device_id = self._routes.get(address)
            if device_id is not None:
                self._last_heard[device_id] = now
                inbox = self._inboxes.get(device_id)
                if inbox is not None:
                    inbox.put(data)  # the usual case: a taken board's stream, to its link
                    return
        decoder = FrameDecoder()
        packets = decoder.feed(data)
        if not packets:
            if device_id is None:
                with self._lock:
                    self.foreign += 1
            return
        info = next((p.message for p in packets if isinstance(p.message, DeviceInfo)), None)
        with self._lock:
            if info is not None:
                device_id = info.device_id
                old = self._boards.get(device_id)
                if old is not None and old.address != address:
                    self._routes.pop(old.address, None)
                self._routes[address] = device_id
                self._boards[device_id] = Announcement(info, address, now)
                self._last_heard[device_id] = now
                self._lock.notify_all()
            inbox = self._inboxes.get(device_id) if device_id is not None else None
            if device_id is None:
                # imucap frames from a board not yet known (this host restarted while it
                # streams): ask it what it is, at most once a second.
                if now - self._asked.get(address, -1e9) > 1.0:
                    self._asked[address] = now
                    self._send(encode_frame(GetInfo(), next(self._seq) & 0xFFFF), address)
                self.unclaimed += 1
                return
            if inbox is None:
                self.unclaimed += 1
                return
        inbox.put(data)

    # ------------------------------------------------------------------ for links

    def _send(self, data: bytes, address: tuple[str, int]) -> None:
        for datagram in pack_datagrams(data):
            self._sock.sendto(datagram, address)

    def send(self, data: bytes, device_id: int) -> None:
        """Send frames to a board, at its latest address."""
        with self._lock:
            board = self._boards.get(device_id)
        if board is None:
            raise LinkLost(f"board {device_id:#010x} has no known address")
        try:
            self._send(data, board.address)
        except OSError as exc:
            raise LinkLost(f"cannot send to {board.address[0]}:{board.address[1]}: "
                           f"{os.strerror(exc.errno) if exc.errno else exc}") from None

    def ask(self, address: tuple[str, int]) -> None:
        """Send GET_INFO to an address (a board that waits to be contacted)."""
        try:
            self._send(encode_frame(GetInfo(), next(self._seq) & 0xFFFF), address)
        except OSError as exc:
            log.debug("GET_INFO to %s failed: %s", address, exc)

    def boards(self) -> list[Announcement]:
        """Boards heard on this port, newest first."""
        with self._lock:
            return sorted(self._boards.values(), key=lambda a: -a.heard_at_s)

    def claim(self, device_id: int | None, timeout_s: float, *,
              peer: tuple[str, int] | None = None) -> tuple[int, _Inbox]:
        """Wait for a board (this id, or any untaken one) and route its datagrams to an inbox.

        Raises:
            DeviceNotFoundError: No such board announced itself in time.
            DeviceBusyError: The board is already taken by another device of this program.
        """
        deadline = time.monotonic() + timeout_s
        next_ask = 0.0
        with self._lock:
            while True:
                now = time.monotonic()
                for board in sorted(self._boards.values(), key=lambda a: a.heard_at_s):
                    if peer is not None and board.address != peer:
                        continue
                    if device_id is not None and board.info.device_id != device_id:
                        continue
                    if board.info.device_id in self._inboxes:
                        if device_id is not None:
                            raise DeviceBusyError(
                                f"board {device_id:#010x} on UDP port {self.port} is already "
                                f"read by another device of this program")
                        continue
                    heard = self._last_heard.get(board.info.device_id, board.heard_at_s)
                    if now - heard > max(timeout_s, 3.0) and peer is None:
                        continue  # an old announcement: wait for a fresh one
                    inbox = _Inbox()
                    self._inboxes[board.info.device_id] = inbox
                    return board.info.device_id, inbox
                if now >= deadline:
                    raise DeviceNotFoundError(self._not_found(device_id, timeout_s, peer))
                if peer is not None and now >= next_ask:
                    next_ask = now + 0.5
                    self._lock.release()
                    try:
                        self.ask(peer)
                    finally:
                        self._lock.acquire()
                    continue
                self._lock.wait(min(deadline - now, 0.1))

    def _not_found(self, device_id: int | None, timeout_s: float,
                   peer: tuple[str, int] | None) -> str:
        if peer is not None:
            return (f"no imucap board answered at {peer[0]}:{peer[1]} within {timeout_s:g} s: "
                    f"check its address and that it is on the network")
        heard = ", ".join(f"{b.info.device_id:#010x} at {b.address[0]}:{b.address[1]}"
                          for b in self._boards.values())
        if device_id is not None and heard:
            return (f"board {device_id:#010x} has not announced itself on UDP port {self.port} "
                    f"within {timeout_s:g} s (heard: {heard}): check its device id")
        if heard:
            return (f"every board heard on UDP port {self.port} ({heard}) is already read by "
                    f"another device of this program")
        return (f"no imucap board announced itself on UDP port {self.port} within "
                f"{timeout_s:g} s: check that it is on the same network, sends to this "
                f"computer's address and port {self.port}, and that no firewall blocks UDP "
                f"port {self.port}")

    def unclaim(self, device_id: int) -> None:
        with self._lock:
            self._inboxes.pop(device_id, None)

    def release(self) -> None:
        """Give up one use of the port; the last one closes it."""
        with _PORTS_LOCK:
            self._refs -= 1
            if self._refs > 0:
                return
            _PORTS.pop((self.host, self.port), None)
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._sock.close()


_PORTS: dict[tuple[str, int], UdpPort] = {}
_PORTS_LOCK = threading.Lock()


def open_port(host: str, port: int) -> UdpPort:
    """The process's shared socket on ``host:port``, bound on first use; call ``release()``."""
    with _PORTS_LOCK:
        shared = _PORTS.get((host, port))
        if shared is None:
            shared = UdpPort(host, port)
            _PORTS[(host, port)] = shared
        shared._refs += 1
        return shared


class UdpLink(Link):
    """The datagrams of one board on a shared port, as a byte stream.

    Args:
        host: Address to listen on (``0.0.0.0``: every interface).
        port: UDP port to listen on.
        device_id: Take only the board with this id (None: the first untaken one).
        peer: Contact a board that waits at this address instead of waiting for it.
        wait_s: How long :meth:`open` waits for the board.
        reorder_window_s: How long a frame waits for a missing one before it (read by
            :class:`~imucap.devices.protocol_device.ProtocolDevice`).
    """

    def __init__(self, host: str, port: int, *, device_id: int | None = None,
                 peer: tuple[str, int] | None = None, wait_s: float = 3.0,
                 reorder_window_s: float = 0.03) -> None:
        self.host, self.port = host, port
        self.device_id = device_id
        self.peer = peer
        self.wait_s = wait_s
        self.reorder_window_s = reorder_window_s
        self._port: UdpPort | None = None
        self.last_port: UdpPort | None = None  # kept after close, for its counters
        self._inbox: _Inbox | None = None
        self._claimed: int | None = None
        self.description = f"udp://{host}:{port}" + (
            f" board {device_id:#010x}" if device_id is not None else "")

    @property
    def shared_port(self) -> UdpPort | None:
        """The shared socket while open."""
        return self._port

    def open(self) -> None:
        shared = open_port(self.host, self.port)
        try:
            device_id, inbox = shared.claim(self.device_id, self.wait_s, peer=self.peer)
        except BaseException:
            shared.release()
            raise
        self._port, self._inbox, self._claimed = shared, inbox, device_id
        self.last_port = shared
        board = next(b for b in shared.boards() if b.info.device_id == device_id)
        self.description = (f"udp://{self.host}:{self.port} board {device_id:#010x} "
                            f"({board.address[0]})")

    def read(self, timeout_s: float) -> bytes:
        inbox = self._inbox
        if inbox is None:
            raise LinkLost("link is closed")
        return inbox.take(timeout_s)

    def write(self, data: bytes) -> None:
        if self._port is None or self._claimed is None:
            raise LinkLost("link is closed")
        self._port.send(data, self._claimed)

    def close(self) -> None:
        shared, self._port = self._port, None
        if shared is not None:
            if self._claimed is not None:
                shared.unclaim(self._claimed)
            shared.release()
        self._inbox = None


@dataclass(kw_only=True)
class UdpConfig(DeviceConfig):
    """Where to listen, and which board to take.

    Attributes:
        host: Address to listen on (``0.0.0.0``: every interface).
        port: UDP port the boards send to.
        device_id: Take only the board with this id (None: the first one heard).
        peer: ``HOST:PORT`` of a board that waits to be contacted (None: wait for it).
        reorder_window_s: How long a frame waits for a missing one before it.
    """

    host: str = "0.0.0.0"
    port: int = UDP_DEFAULT_PORT
    device_id: int | None = None
    peer: str | None = None
    reorder_window_s: float = 0.03


class UdpDevice(ProtocolDevice):
    """A Wi-Fi array over UDP; after the first handshake it keeps to the same board."""

    type_name = "udp"

    def __init__(self, config: UdpConfig) -> None:
        self._peer = _parse_peer(config.peer) if config.peer else None
        self._pinned: int | None = config.device_id
        self._newest_link: UdpLink | None = None
        super().__init__(config, self._new_link)

    def _new_link(self) -> UdpLink:
        cfg = self.config
        self._newest_link = UdpLink(cfg.host, cfg.port, device_id=self._pinned, peer=self._peer,
                               wait_s=cfg.handshake_timeout_s,
                               reorder_window_s=cfg.reorder_window_s)
        return self._newest_link

    def _accept_info(self, info: DeviceInfo) -> None:
        super()._accept_info(info)
        self._pinned = info.device_id  # reconnect to this board, not to another one

    def stats(self) -> StreamStats:
        """The stream's statistics; ``foreign_packets`` counts strangers on the whole port."""
        stats = super().stats()
        link = self._newest_link
        port = link.last_port if link is not None else None
        return replace(stats, foreign_packets=port.foreign) if port is not None else stats


def _parse_peer(text: str) -> tuple[str, int]:
    from .uri import parse_host_port

    host, port = parse_host_port(text, scheme="udp peer")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror:
        raise DeviceNotFoundError(f"cannot resolve the board's host {host!r}") from None
    return info[0][4][0], port


def _parse_id(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f"device_id={text!r} is not a number (write 0x1ac0face or "
                         f"449903310)") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"device_id={text} does not fit 32 bits")
    return value


@register_device("udp")
def _from_uri(target: str, params: dict[str, str]) -> UdpDevice:
    from .uri import parse_host_port, stream_settings, take_options

    host, port = parse_host_port(target or f"0.0.0.0:{UDP_DEFAULT_PORT}", scheme="udp",
                                 default_port=UDP_DEFAULT_PORT)
    device_id = _parse_id(params.pop("device_id")) if "device_id" in params else None
    own = take_options(params, UdpConfig)
    own.pop("device_id", None)
    for name in ("host", "port"):
        if name in own:
            raise ValueError(f"give the address as udp://HOST:PORT, not as ?{name}=")
    return UdpDevice(UdpConfig(host=host, port=port, device_id=device_id, **own,
                               **stream_settings(params)))
