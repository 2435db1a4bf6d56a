"""Links that carry an emulated array's bytes: a pseudo-terminal, a TCP server, a UDP socket.

Each runner owns one thread that reads host commands, asks the :class:`EmulatedArray` what to
do, and writes, stalls or disconnects as told. The pseudo-terminal behaves like a USB CDC
port: it has a stable path (a symbolic link that :mod:`serial` opens), closing it on the host
side stops streaming, and a disconnect removes the path until the device "re-plugs".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
import tempfile
import termios
import threading
import time
import tty
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..transport import UDP_ANNOUNCE_S, UDP_HOST_TIMEOUT_S, UDP_MAX_DATAGRAM, pack_datagrams
from .device import Action, EmulatedArray, FaultReport


class EmulatorRunner(ABC):
    """Base of the runners: the thread, the action loop, start and stop."""

    def __init__(self, array: EmulatedArray) -> None:
        self.array = array
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def report(self) -> FaultReport:
        return self.array.report

    def start(self) -> EmulatorRunner:
        """Open the link and start serving; returns self."""
        self._open()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the link."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._close()

    def __enter__(self) -> EmulatorRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # link hooks ------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None:
        """Open the link (again, after a disconnect)."""

    @abstractmethod
    def _close(self) -> None:
        """Close the link; safe to call twice."""

    @abstractmethod
    def _wait_input(self, timeout_s: float) -> bytes | None:
        """Bytes from the host, b'' if none within the timeout, None if the host went away."""

    @abstractmethod
    def _write(self, data: bytes) -> None:
        """Send bytes to the host (dropped if nobody listens, as a device's would be)."""

    def _drain(self) -> None:
        """Wait until the host has read what was written (before a disconnect)."""
        time.sleep(0.05)  # bytes in flight on a socket arrive well within this

    def _tick(self) -> None:  # noqa: B027  (a hook: most links have no timers)
        """Called once per loop turn, before the array is polled (timers of a link)."""

    # loop -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._wait_input(min(self.array.time_to_next_s(), 0.05))
                if data is None:
                    self.array.link_closed()
                elif data:
                    self.array.receive(data)
                self._tick()
                for action in self.array.poll():
                    self._act(action)
        except BaseException as exc:  # kept for the owner; a dead emulator must be visible
            self.error = exc
            raise

    def _act(self, action: Action) -> None:
        if action.kind == "write":
            self._write(action.data)
        elif action.kind == "stall":
            self._stop.wait(action.seconds)
        elif action.kind == "disconnect":
            self._drain()
            self._close()
            if self._stop.wait(action.seconds):
                return
            self.array.reboot()
            self._open()


class PtyRunner(EmulatorRunner):
    """Serves the array on a pseudo-terminal, reachable at a stable path.

    Args:
        array: The emulated array.
        path: Where to put the symbolic link to the pseudo-terminal; a fresh temporary path
            by default. ``port`` gives the path to open.
    """

    def __init__(self, array: EmulatedArray, path: str | os.PathLike | None = None) -> None:
        super().__init__(array)
        if path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="imucap-emu-")
            path = Path(self._tmpdir) / "ttyIMU0"
        else:
            self._tmpdir = None
        self.port = str(path)
        self._master: int | None = None
        self._slave_name = ""
        self._host_present = False

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._slave_name = os.ttyname(slave)
        # Only the host holds the slave side open, so the master sees it close (like DTR).
        os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        self._host_present = False
        tmp = self.port + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(self._slave_name, tmp)
        os.replace(tmp, self.port)

    def _close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if os.path.islink(self.port):
                os.unlink(self.port)
        if self._master is not None:
            os.close(self._master)
            self._master = None
        if self._tmpdir and self._stop.is_set():
            with contextlib.suppress(OSError):
                os.rmdir(self._tmpdir)

    def _wait_input(self, timeout_s: float) -> bytes | None:
        if self._master is None:
            self._stop.wait(timeout_s)
            return b""
        ready, _, _ = select.select([self._master], [], [], timeout_s)
        if not ready:
            return b""
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            # EIO: no process has the port open. Say so once, then wait for one to open it.
            was_present, self._host_present = self._host_present, False
            self._stop.wait(0.02)
            return None if was_present else b""
        self._host_present = True
        return data

    def _write(self, data: bytes) -> None:
        if not self._host_present or self._master is None:
            return  # nobody has the port open: a USB device's writes go nowhere
        view = memoryview(data)
        deadline = time.monotonic() + 1.0
        while view:
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # the host stopped reading; like a full USB FIFO, the rest is lost
                select.select([], [self._master], [], 0.01)
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise

    def _drain(self) -> None:
        try:
            fd = os.open(self._slave_name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            deadline = time.monotonic() + 1.0
            buf = bytearray(4)
            while time.monotonic() < deadline:
                fcntl.ioctl(fd, termios.FIONREAD, buf)
                if int.from_bytes(buf, "little") == 0:
                    break
                time.sleep(0.005)
            time.sleep(0.05)  # let the host's read loop take what it was handed
        finally:
            os.close(fd)


class TcpRunner(EmulatorRunner):
    """Serves the array to one TCP client at a time.

    Args:
        array: The emulated array.
        host: Address to listen on (loopback by default).
        port: Port to listen on; 0 picks a free one (see ``address``).
    """

    def __init__(self, array: EmulatedArray, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(array)
        self._bind = (host, port)
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self.address: tuple[str, int] = (host, port)

    def _open(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self._bind)
        server.listen(1)
        self._server = server
        self.address = server.getsockname()[:2]
        self._bind = self.address  # reappear on the same port after a disconnect

    def _close(self) -> None:
        for sock in (self._client, self._server):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._client = self._server = None

    def _wait_input(self, timeout_s: float) -> bytes | None:
        if self._server is None:
            self._stop.wait(timeout_s)
            return b""
        if self._client is None:
            ready, _, _ = select.select([self._server], [], [], timeout_s)
            if ready:
                self._client, _ = self._server.accept()
                self._client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return b""
        ready, _, _ = select.select([self._client], [], [], timeout_s)
        if not ready:
            return b""
        try:
            data = self._client.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._client.close()
            self._client = None
            return None
        return data

    def _write(self, data: bytes) -> None:
        if self._client is None:
            return
        try:
            self._client.sendall(data)
        except OSError:
            self._client.close()
            self._client = None
            self.array.link_closed()


@dataclass(kw_only=True)
class DatagramFaults:
    """Faults of a network path, per datagram sent while streaming.

    A fault never hits two datagrams in a row, nor the one after (so each shows on its own).

    Attributes:
        loss: Chance that a datagram is lost.
        duplicate: Chance that a datagram arrives twice.
        reorder: Chance that a datagram is held back and sent after the next one.
        seed: Seed of the fault schedule.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"datagram fault {name} is not a probability from 0 to 1")
        if self.loss + self.duplicate + self.reorder > 1.0:
            raise ValueError("datagram faults loss + duplicate + reorder exceed 1")


@dataclass
class DatagramReport:
    """Exactly what the network path did.

    Attributes:
        datagrams: Datagrams handed to the network (each copy of a duplicate counts).
        lost: Datagrams lost; ``frames_lost`` frames were in them.
        duplicated: Datagrams sent twice; ``frames_duplicated`` frames were in them.
        reordered: Datagrams sent after the next one; ``frames_reordered`` frames in them.
        announcements: DEVICE_INFO announcements sent while no host talked to the device.
        host_timeouts: Times the device gave its host up after hearing nothing from it.
    """

    datagrams: int = 0
    lost: int = 0
    frames_lost: int = 0
    duplicated: int = 0
    frames_duplicated: int = 0
    reordered: int = 0
    frames_reordered: int = 0
    announcements: int = 0
    host_timeouts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class UdpRunner(EmulatorRunner):
    """Serves the array over UDP, as a Wi-Fi board does (PROTOCOL.md section 6).

    Commands come in datagrams from any address; the array's frames go, packed whole into
    datagrams, to the sender of the latest command. With ``send_to`` the device also knows its
    host's address: while no host talks to it, it announces itself there (DEVICE_INFO every
    ``announce_s``), and after ``host_timeout_s`` without a command it stops streaming and
    announces again. Without ``send_to`` it waits to be contacted.

    Args:
        array: The emulated array.
        host: Address to bind (loopback by default).
        port: Port to bind; 0 picks a free one (see ``address``).
        max_datagram: Largest datagram to send, in bytes.
        send_to: ``(host, port)`` of the host to announce to (None: wait to be contacted).
        announce_s: Time between announcements.
        host_timeout_s: Give the host up after this long without a command (0: never).
        faults: Loss, duplication and reordering of the datagrams sent while streaming.
    """

    def __init__(self, array: EmulatedArray, host: str = "127.0.0.1", port: int = 0,
                 max_datagram: int = UDP_MAX_DATAGRAM, *,
                 send_to: tuple[str, int] | None = None, announce_s: float = UDP_ANNOUNCE_S,
                 host_timeout_s: float = UDP_HOST_TIMEOUT_S,
                 faults: DatagramFaults | None = None) -> None:
        super().__init__(array)
        self._bind = (host, port)
        self._sock: socket.socket | None = None
        self._peer: tuple[str, int] | None = None
        self.max_datagram = max_datagram
        self.address: tuple[str, int] = (host, port)
        self.send_to = send_to
        self.announce_s = announce_s
        self.host_timeout_s = host_timeout_s
        self.faults = faults or DatagramFaults()
        self.net = DatagramReport()
        self._rng = np.random.default_rng(self.faults.seed)
        self._cooldown = 0
        self._held: bytes | None = None  # a datagram being reordered
        self._last_command_s: float | None = None
        self._next_announce_s = 0.0

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(self._bind)
        if self.send_to is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._sock = sock
        self.address = sock.getsockname()[:2]
        self._bind = self.address
        self._last_command_s = None
        self._next_announce_s = 0.0  # a board that powers up announces at once

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._peer = None
        self._held = None

    def _wait_input(self, timeout_s: float) -> bytes | None:
        if self._sock is None:
            self._stop.wait(timeout_s)
            return b""
        ready, _, _ = select.select([self._sock], [], [], timeout_s)
        if not ready:
            return b""
        try:
            data, peer = self._sock.recvfrom(65536)
        except OSError:  # e.g. ICMP port unreachable from an earlier send: nobody listens
            return b""
        self._peer = peer[:2]
        self._last_command_s = time.monotonic()
        return data

    def _tick(self) -> None:
        now = time.monotonic()
        talking = self._last_command_s is not None
        if talking and self.host_timeout_s and now - self._last_command_s > self.host_timeout_s:
            # The host went quiet: stop streaming and look for a host again.
            self.array.link_closed()
            self.net.host_timeouts += 1
            self._last_command_s = None
            self._peer = None
            talking = False
        if not talking and self.send_to is not None and now >= self._next_announce_s:
            self._next_announce_s = now + self.announce_s
            self._peer = self.send_to
            self.array.announce()
            self.net.announcements += 1

    def _send(self, datagram: bytes) -> None:
        try:
            self._sock.sendto(datagram, self._peer)
            self.net.datagrams += 1
        except OSError:
            pass  # nobody listens there (yet): a board's datagrams go nowhere too

    def _write(self, data: bytes) -> None:
        if self._sock is None or self._peer is None:
            return
        for datagram in pack_datagrams(data, self.max_datagram):
            self._send_with_faults(datagram)

    def _send_with_faults(self, datagram: bytes) -> None:
        f, net = self.faults, self.net
        if not (self.array.streaming and (f.loss or f.duplicate or f.reorder)):
            self._send(datagram)
            if self._held is not None:  # faults were switched off while one was held back
                self._send(self._held)
                self._held = None
            return
        frames = datagram.count(b"\x00")
        roll = self._rng.random() if not self._cooldown else 1.0
        self._cooldown = max(0, self._cooldown - 1)
        held, self._held = self._held, None
        if roll < f.loss:
            net.lost += 1
            net.frames_lost += frames
            self._cooldown = 2
        elif roll < f.loss + f.duplicate:
            self._send(datagram)
            self._send(datagram)
            net.duplicated += 1
            net.frames_duplicated += frames
            self._cooldown = 2
        elif roll < f.loss + f.duplicate + f.reorder and held is None:
            self._held = datagram  # goes out after the next one
            net.reordered += 1
            net.frames_reordered += frames
            self._cooldown = 2
        else:
            self._send(datagram)
        if held is not None:
            self._send(held)
