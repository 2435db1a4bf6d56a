"""Byte links under the protocol: a serial port (pyserial) and a TCP stream.

A link only moves bytes. It turns the operating system's errors into one-line
:class:`~imucap.errors.DeviceError` s when opening, and into :class:`LinkLost` once open, so
the device above can reconnect.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass

from imucap.errors import (
    DeviceBusyError,
    DeviceError,
    DeviceNotFoundError,
    DevicePermissionError,
)


class LinkLost(Exception):
    """An open link stopped working (unplugged, closed by the peer, I/O error)."""


class Link(ABC):
    """A bidirectional byte stream."""

    description = "link"

    @abstractmethod
    def open(self) -> None:
        """Open the link; raises a DeviceError subclass with a one-line explanation."""

    @abstractmethod
    def read(self, timeout_s: float) -> bytes:
        """Bytes available now, waiting up to ``timeout_s`` for the first; b'' on timeout."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Write all of ``data``."""

    @abstractmethod
    def close(self) -> None:
        """Close; safe to call twice."""


# ---------------------------------------------------------------------- serial


@dataclass(frozen=True)
class SerialPortInfo:
    """A serial port the operating system lists."""

    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    description: str
    manufacturer: str | None

    @property
    def vid_pid(self) -> str:
        if self.vid is None or self.pid is None:
            return ""
        return f"{self.vid:04x}:{self.pid:04x}"


KNOWN_BOARDS = {
    (0x303A, 0x1001): "ESP32-S3 (USB Serial/JTAG): imucap reference firmware",
    (0x303A, 0x4001): "ESP32-S3 (TinyUSB CDC): imucap reference firmware",
}


def list_serial_ports() -> list[SerialPortInfo]:
    """Serial ports with their USB vendor and product ids, sorted by path."""
    from serial.tools import list_ports

    out = []
    for p in list_ports.comports():
        out.append(SerialPortInfo(p.device, p.vid, p.pid, p.serial_number,
                                  p.description or "", p.manufacturer))
    return sorted(out, key=lambda p: p.device)


def _permission_hint() -> str:
    if sys.platform.startswith("linux"):
        return ("add yourself to the 'dialout' group (sudo usermod -aG dialout $USER), "
                "then log out and in again")
    return "check the port's permissions"


class SerialLink(Link):
    """A serial port opened by path or found by USB VID:PID.

    Args:
        port: Device path (``/dev/ttyACM0``, ``COM3``); or None to find it by ``vid``/``pid``.
        vid: USB vendor id to look for when ``port`` is None.
        pid: USB product id to look for when ``port`` is None.
        serial_number: With ``vid``/``pid``, pick the board with this USB serial number.
        baudrate: Line rate; USB CDC ignores it, a UART bridge needs the firmware's rate.
    """

    def __init__(self, port: str | None = None, *, vid: int | None = None,
                 pid: int | None = None, serial_number: str | None = None,
                 baudrate: int = 921600) -> None:
        if port is None and (vid is None or pid is None):
            raise ValueError("give a port path, or both vid and pid")
        self.port = port
        self.vid, self.pid, self.serial_number = vid, pid, serial_number
        self.baudrate = baudrate
        self._ser = None
        self._fd: int | None = None
        self.description = port or f"USB {vid:04x}:{pid:04x}"

    def _resolve(self) -> str:
        if self.port is not None:
            return self.port
        matches = [p for p in list_serial_ports() if p.vid == self.vid and p.pid == self.pid
                   and (self.serial_number is None or p.serial_number == self.serial_number)]
        want = f"{self.vid:04x}:{self.pid:04x}"
        if self.serial_number:
            want += f" with serial number {self.serial_number}"
        if not matches:
            raise DeviceNotFoundError(
                f"no USB serial device {want} is plugged in: 'imucap devices' lists what is")
        if len(matches) > 1:
            paths = ", ".join(p.device for p in matches)
            raise DeviceError(f"several devices match {want} ({paths}): name one by path, "
                              f"or add ?serial_number=… to the URI")
        return matches[0].device

    def open(self) -> None:
        import serial

        path = self._resolve()
        self.description = path
        try:
            self._ser = serial.Serial(path, self.baudrate, timeout=0.05, write_timeout=1.0,
                                      exclusive=True)
        except (serial.SerialException, OSError) as exc:
            code = getattr(exc, "errno", None)
            if code is None and isinstance(exc.__context__, OSError):
                code = exc.__context__.errno
            if code == errno.ENOENT:
                raise DeviceNotFoundError(
                    f"serial port {path} does not exist: is the board plugged in? "
                    f"'imucap devices' lists the ports") from None
            if code in (errno.EACCES, errno.EPERM):
                raise DevicePermissionError(
                    f"permission denied on {path}: {_permission_hint()}") from None
            if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
                raise DeviceBusyError(
                    f"serial port {path} is busy: another program (a serial monitor, another "
                    f"imucap) has it open; close it and try again") from None
            if code == errno.ENOTTY or "configure port" in str(exc):
                raise DeviceError(f"{path} is not a serial port: name the board's port "
                                  f"('imucap devices' lists them)") from None
            raise DeviceError(f"cannot open serial port {path}: {exc}") from None
        fileno = getattr(self._ser, "fileno", None)
        self._fd = fileno() if fileno is not None and os.name == "posix" else None

    def read(self, timeout_s: float) -> bytes:
        import serial

        ser = self._ser
        if ser is None:
            raise LinkLost("port is closed")
        if self._fd is not None:
            # POSIX: wait and read on the descriptor itself; pyserial's read costs more per
            # call than a whole frame's decoding at 1000 frames/s.
            try:
                ready, _, _ = select.select([self._fd], [], [], timeout_s)
                if not ready:
                    return b""
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return b""
            except OSError as exc:
                raise LinkLost(str(exc)) from None
            if not data:
                raise LinkLost("the port reported data but returned none (device unplugged?)")
            return data
        try:
            waiting = ser.in_waiting
            if waiting:
                return ser.read(waiting)
            data = ser.read(1)  # waits up to the port's 50 ms timeout for the first byte
            if data:
                waiting = ser.in_waiting
                if waiting:
                    data += ser.read(waiting)
            return data
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(str(exc)) from None

    def write(self, data: bytes) -> None:
        import serial

        if self._ser is None:
            raise LinkLost("port is closed")
        try:
            self._ser.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(str(exc)) from None

    def close(self) -> None:
        ser, self._ser = self._ser, None
        self._fd = None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # closing an unplugged port may fail; it is closed either way
                pass


# ---------------------------------------------------------------------- TCP


class TcpLink(Link):
    """A TCP connection to a device (or to ``imucap emulate --tcp``).

    Args:
        host: Host name or address.
        port: TCP port.
        connect_timeout_s: How long to wait for the connection.
    """

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 3.0) -> None:
        self.host, self.port = host, port
        self.connect_timeout_s = connect_timeout_s
        self._sock: socket.socket | None = None
        self.description = f"tcp://{host}:{port}"

    def open(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout_s)
        except socket.gaierror:
            raise DeviceNotFoundError(
                f"cannot resolve host {self.host!r}: check the name in the URI") from None
        except ConnectionRefusedError:
            raise DeviceNotFoundError(
                f"nothing listens at {self.description}: start the device or the emulator "
                f"('imucap emulate --tcp {self.host}:{self.port}')") from None
        except TimeoutError:
            raise DeviceNotFoundError(
                f"no answer from {self.description} within {self.connect_timeout_s} s: "
                f"check the address and the network") from None
        except OSError as exc:
            raise DeviceError(f"cannot connect to {self.description}: "
                              f"{os.strerror(exc.errno) if exc.errno else exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def read(self, timeout_s: float) -> bytes:
        sock = self._sock
        if sock is None:
            raise LinkLost("socket is closed")
        sock.settimeout(timeout_s)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise LinkLost(str(exc)) from None
        if not data:
            raise LinkLost("the device closed the connection")
        return data

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise LinkLost("socket is closed")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise LinkLost(str(exc)) from None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
