"""Bluetooth LE arrays (``ble:NAME_OR_ADDRESS``): PROTOCOL.md section 5 on bleak.

An array is found by scanning for the imucap service UUID and matching the advertised name
(``ble:imucap-1a2b``) or the address (``ble:AA:BB:CC:DD:EE:FF``; on macOS the UUID the system
gives the board), and connected with the ``BLEDevice`` the scan returned. The link works at
the largest ATT_MTU the platform negotiates (the array offers 247) and at 23 where it cannot
tell; it subscribes to the frames characteristic and writes commands without response, cut at
ATT_MTU - 3. Everything above the byte stream (handshake, loss accounting, clock, reconnection
with backoff) is :class:`~imucap.devices.protocol_device.ProtocolDevice`'s, as on a serial
port: a dropped link makes :meth:`BleLink.read` raise ``LinkLost``, and each reconnection scans
again for the same board.

All bleak calls of the process run on one asyncio event loop owned by this module, in a daemon
thread (``imucap-ble``) shared by every BLE device, so bleak never meets a caller's own event
loop, and links are closed (notifications stopped, then disconnected) on the loop that opened
them.

Options after ``?``: the shared stream settings (``rate_hz``, ``samples_per_frame``, …),
``scan_timeout_s`` (how long to look for the array, default 5), ``connect_timeout_s``
(default 10) and ``adapter`` (BlueZ only, such as ``hci1``).

**Without a radio.** Set ``IMUCAP_BLE_VIRTUAL`` to a comma-separated list of virtual arrays,
each ``NAME`` or ``NAME:PRESET`` with a site preset such as ``face6``::

    IMUCAP_BLE_VIRTUAL=imucap-left:face6,imucap-right:face6 imucap devices --ble
    IMUCAP_BLE_VIRTUAL=imucap-demo imucap stream --device ble:imucap-demo --print

While it is set, this module talks to an in-process virtual radio holding those arrays
(:mod:`imucap.firmware_bridge.emulator.ble`, on the bumble Bluetooth stack:
``pip install 'imucap[ble-virtual]'``) instead of the computer's Bluetooth adapter.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import re
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from imucap.errors import (
    BadDeviceURIError,
    DeviceError,
    DeviceNotFoundError,
    DevicePermissionError,
    HandshakeError,
)
from imucap.firmware_bridge.transport import (
    COMMANDS_UUID,
    DEFAULT_ATT_MTU,
    FRAMES_UUID,
    SERVICE_UUID,
    value_size,
)

from .base import DeviceConfig, register_device
from .links import Link, LinkLost
from .protocol_device import ProtocolDevice

log = logging.getLogger(__name__)

#: Environment variable listing virtual arrays to use instead of the Bluetooth adapter.
VIRTUAL_ENV = "IMUCAP_BLE_VIRTUAL"

_ADDRESS = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$"
                      r"|^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")
#: Generic Access and Generic Attribute: every GATT server has them, they name nothing.
_GENERIC = {"00001800-0000-1000-8000-00805f9b34fb", "00001801-0000-1000-8000-00805f9b34fb"}
#: How long the first connection looks for a board of that name without the imucap service.
_DIAGNOSE_S = 2.0


@dataclass(kw_only=True)
class BleConfig(DeviceConfig):
    """Which Bluetooth LE array to open, on top of the shared stream settings.

    Attributes:
        target: The array's advertised name (``imucap-1a2b``) or its address
            (``AA:BB:CC:DD:EE:FF``; on macOS the UUID the system gives it).
        scan_timeout_s: How long to scan for it; each reconnection scans again.
        connect_timeout_s: How long to wait for the connection itself.
        adapter: BlueZ adapter to use (``hci0``); None for the system's default. Linux only.
        backend: None for the platform's Bluetooth stack through bleak; otherwise an object
            whose ``client_class`` and ``scanner_class`` are bleak backend classes
            (subclasses of ``BaseBleakClient`` and ``BaseBleakScanner``), such as a
            :class:`~imucap.firmware_bridge.emulator.ble.VirtualRadio`.
    """

    target: str = ""
    scan_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    adapter: str | None = None
    backend: Any = None

    def __post_init__(self) -> None:
        if self.scan_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("scan_timeout_s and connect_timeout_s must be positive")


@dataclass(frozen=True)
class BleArrayInfo:
    """An array seen advertising the imucap service.

    Attributes:
        name: Advertised name ('' when none was heard).
        address: Bluetooth address (a UUID on macOS).
        rssi: Signal strength, dBm.
        device: bleak's ``BLEDevice``, to connect without scanning again.
    """

    name: str
    address: str
    rssi: int | None
    device: Any


# ---------------------------------------------------------------------- bleak, the loop


def _bleak() -> Any:
    try:
        import bleak
    except ImportError:
        raise DeviceError("Bluetooth LE needs bleak: pip install 'imucap[ble]'") from None
    return bleak


_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: threading.Thread | None = None
_open_links: weakref.WeakSet[BleLink] = weakref.WeakSet()


def ble_loop() -> asyncio.AbstractEventLoop:
    """The event loop every bleak call of this process runs on (started on first use)."""
    global _loop, _loop_thread
    with _loop_lock:
        if _loop is None or _loop_thread is None or not _loop_thread.is_alive():
            _loop = asyncio.new_event_loop()
            _loop_thread = threading.Thread(target=_loop.run_forever, name="imucap-ble",
                                            daemon=True)
            _loop_thread.start()
            atexit.register(_close_all)
        return _loop


def _run(coro: Awaitable, timeout_s: float) -> Any:
    """Run a coroutine on the BLE loop from another thread and wait for its result."""
    if threading.current_thread() is _loop_thread:
        raise RuntimeError("a blocking BLE call from the BLE event loop itself")
    future = asyncio.run_coroutine_threadsafe(coro, ble_loop())
    try:
        return future.result(timeout_s)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise


def _close_all() -> None:
    """At exit: disconnect what is still connected, so the arrays advertise again."""
    for link in list(_open_links):
        link.close()


def _same_address(address: str) -> str:
    """An address in one spelling: upper case, a MAC address with colons (a UUID unchanged)."""
    address = address.strip().upper()
    return address.replace("-", ":") if len(address) == 17 else address


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ---------------------------------------------------------------------- platform specifics
# Everything that differs between operating systems' Bluetooth stacks is in this section.


def _scanner_options(adapter: str | None) -> dict[str, Any]:
    return {"bluez": {"adapter": adapter}} if adapter else {}


def _client_options(adapter: str | None) -> dict[str, Any]:
    return {"bluez": {"adapter": adapter}} if adapter else {}


async def _negotiated_mtu(client: Any) -> int:
    """ATT_MTU of a fresh connection: what the platform negotiated, or 23 if it cannot say."""
    backend = getattr(client, "_backend", None)
    if type(backend).__name__ == "BleakClientBlueZDBus":
        # BlueZ exchanges the MTU by itself, but bleak learns it only by acquiring a
        # characteristic; bleak documents this call in its mtu_size.py example.
        try:
            await backend._acquire_mtu()
        except Exception as exc:
            log.info("BlueZ did not tell the ATT_MTU (%s): working at %d", exc, DEFAULT_ATT_MTU)
            return DEFAULT_ATT_MTU
    try:
        mtu = int(client.mtu_size)
    except Exception:
        return DEFAULT_ATT_MTU
    return max(mtu, DEFAULT_ATT_MTU)


def _hint() -> str:
    if sys.platform.startswith("linux"):
        return ("turn Bluetooth on; on Linux the BlueZ service must be running "
                "(systemctl status bluetooth)")
    return "turn Bluetooth on in the system settings"


def _bluetooth_unavailable(exc: BaseException) -> DeviceError | None:
    """A one-line error if ``exc`` says Bluetooth is off, absent or denied; else None."""
    from bleak.exc import BleakError

    try:
        from bleak.exc import BleakBluetoothNotAvailableError
    except ImportError:  # bleak < 2.0
        BleakBluetoothNotAvailableError = ()  # noqa: N806
    if BleakBluetoothNotAvailableError and isinstance(exc, BleakBluetoothNotAvailableError):
        text = _one_line(exc.args[0] if exc.args else exc)
        if exc.reason.name.startswith("DENIED"):
            return DevicePermissionError(f"this program may not use Bluetooth ({text}): allow "
                                         f"it in the system's privacy settings")
        return DeviceError(f"Bluetooth is off or this computer has no adapter: {text}; "
                           f"{_hint()}")
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        # BlueZ is reached over the D-Bus system bus; no socket means no Bluetooth service.
        return DeviceError(f"Bluetooth is off or this computer has no adapter: the Bluetooth "
                           f"service is not reachable ({exc.strerror or _one_line(exc)}); "
                           f"{_hint()}")
    if isinstance(exc, PermissionError):
        return DevicePermissionError(f"permission denied by the Bluetooth service "
                                     f"({_one_line(exc)}): run as a user allowed to use it")
    if isinstance(exc, BleakError) and re.search(
            r"no bluetooth adapters|adapter .*not found|not ready|powered off|turned off|"
            r"ServiceUnknown|NotReady|NotAvailable", str(exc), re.IGNORECASE):
        return DeviceError(f"Bluetooth is off or this computer has no adapter: "
                           f"{_one_line(exc)}; {_hint()}")
    return None


# ---------------------------------------------------------------------- backend


def resolve_backend(backend: Any = None) -> Any:
    """The backend to use: the one given, else the virtual radio ``IMUCAP_BLE_VIRTUAL`` names,
    else None (the platform's Bluetooth stack).

    Raises:
        DeviceError: The variable is set but cannot be used (bumble missing, bad list).
    """
    if backend is not None:
        return backend
    spec = os.environ.get(VIRTUAL_ENV, "").strip()
    if not spec:
        return None
    try:
        from imucap.firmware_bridge.emulator.ble import shared_radio
    except ImportError as exc:
        raise DeviceError(f"{VIRTUAL_ENV} is set, but the virtual radio needs bumble and bleak: "
                          f"pip install 'imucap[ble-virtual]' ({exc})") from None
    try:
        return shared_radio(spec)
    except ValueError as exc:
        raise DeviceError(f"{VIRTUAL_ENV}={spec!r}: {exc}") from None


def _classes(backend: Any) -> tuple[Any, Any]:
    if backend is None:
        return None, None
    return backend.client_class, backend.scanner_class


def _uuids(adv: Any) -> set[str]:
    return {u.lower() for u in adv.service_uuids or ()}


async def _started_scanner(callback: Any, uuids: list[str] | None, scanner_cls: Any,
                           adapter: str | None) -> Any:
    from bleak import BleakScanner

    try:
        scanner = BleakScanner(callback, uuids, backend=scanner_cls, **_scanner_options(adapter))
        await scanner.start()
    except Exception as exc:
        error = _bluetooth_unavailable(exc)
        if error is not None:
            raise error from None
        raise DeviceError(f"cannot scan for Bluetooth LE devices: {_one_line(exc)}") from None
    return scanner


async def _quietly(coro: Awaitable) -> None:
    try:
        await coro
    except Exception as exc:
        log.debug("ignored while closing: %r", exc)


# ---------------------------------------------------------------------- scanning


def scan_arrays(timeout_s: float = 5.0, backend: Any = None, *,
                adapter: str | None = None) -> list[BleArrayInfo]:
    """Arrays advertising the imucap service nearby, by name.

    Args:
        timeout_s: How long to listen.
        backend: bleak backend classes (see :class:`BleConfig`); None for the platform's.
        adapter: BlueZ adapter (Linux only); None for the default.

    Raises:
        DeviceError: Bluetooth is off or absent, or bleak is not installed (one line).
    """
    _bleak()
    backend = resolve_backend(backend)
    return _run(_scan(timeout_s, backend, adapter), timeout_s + 15.0)


async def _scan(timeout_s: float, backend: Any, adapter: str | None) -> list[BleArrayInfo]:
    _, scanner_cls = _classes(backend)
    scanner = await _started_scanner(None, [SERVICE_UUID], scanner_cls, adapter)
    try:
        await asyncio.sleep(timeout_s)
    finally:
        await _quietly(scanner.stop())
    out = [BleArrayInfo(adv.local_name or device.name or "", device.address, adv.rssi, device)
           for device, adv in scanner.discovered_devices_and_advertisement_data.values()
           if SERVICE_UUID in _uuids(adv)]
    return sorted(out, key=lambda a: (a.name, a.address))


# ---------------------------------------------------------------------- the link


class _Memory:
    """What the links of one device share: the board found first, and whether it is closing."""

    def __init__(self) -> None:
        self.address: str | None = None
        self.name: str | None = None
        self.closing = False
        self.opening: BleLink | None = None


class BleLink(Link):
    """A connection to one Bluetooth LE array: notifications in, writes without response out.

    Args:
        config: Which array, and how long to look for it.
        memory: What earlier links of the same device learnt (the board's address), so a
            reconnection comes back to the same board; None for a link of its own.
    """

    def __init__(self, config: BleConfig, memory: _Memory | None = None) -> None:
        self.config = config
        self._memory = memory or _Memory()
        self.description = f"ble:{config.target}"
        #: ATT_MTU of the connection, once open.
        self.mtu: int | None = None
        #: The board's address and advertised name, once open.
        self.address: str | None = None
        self.name: str | None = None
        self._client: Any = None
        self._frames: Any = None
        self._commands: Any = None
        self._with_response = False
        self._cond = threading.Condition()
        self._buf = bytearray()
        self._lost: str | None = None
        self._future: concurrent.futures.Future | None = None

    @property
    def is_open(self) -> bool:
        return self._client is not None and self._lost is None

    # ------------------------------------------------------------------ open

    def open(self) -> None:
        _bleak()
        memory = self._memory
        if memory.closing:
            raise DeviceError(f"{self.description} is being disconnected")
        backend = resolve_backend(self.config.backend)
        cfg = self.config
        limit = 2 * cfg.scan_timeout_s + _DIAGNOSE_S + cfg.connect_timeout_s + 15.0
        future = asyncio.run_coroutine_threadsafe(self._open(backend), ble_loop())
        self._future = future
        memory.opening = self
        try:
            future.result(limit)
        except concurrent.futures.CancelledError:
            raise DeviceError(f"stopped connecting to {self.description}") from None
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise DeviceError(f"connecting to {self.description} took longer than {limit:g} s: "
                              f"is the Bluetooth stack stuck?") from None
        finally:
            self._future = None
            if memory.opening is self:
                memory.opening = None
        _open_links.add(self)

    def abort(self) -> None:
        """Give up a scan or connection in progress (``open`` raises DeviceError)."""
        future = self._future
        if future is not None:
            future.cancel()

    async def _open(self, backend: Any) -> None:
        from bleak import BleakClient

        client_cls, scanner_cls = _classes(backend)
        with self._cond:
            self._buf.clear()
            self._lost = None
        device, adv = await self._find(scanner_cls)
        name = adv.local_name or device.name or self.config.target
        where = f"{name} ({device.address})"
        timeout = self.config.connect_timeout_s
        client = BleakClient(device, disconnected_callback=self._on_disconnected,
                             timeout=timeout, backend=client_cls,
                             **_client_options(self.config.adapter))
        try:
            await asyncio.wait_for(client.connect(), timeout + 2.0)
        except asyncio.TimeoutError:
            await _quietly(client.disconnect())
            raise DeviceNotFoundError(f"{where} did not accept a connection within "
                                      f"{timeout:g} s: is it connected to another computer?"
                                      ) from None
        except Exception as exc:
            log.debug("connecting to %s failed", where, exc_info=True)
            error = _bluetooth_unavailable(exc)
            if error is not None:
                raise error from None
            raise DeviceError(f"cannot connect to {where}: {_one_line(exc)}") from None
        try:
            await self._attach(client, where)
        except BaseException:
            await _quietly(client.disconnect())
            raise
        self._client = client
        self.name, self.address = name, device.address
        self.description = f"ble:{name} ({device.address})"
        self._memory.address, self._memory.name = device.address, name

    async def _find(self, scanner_cls: Any) -> tuple[Any, Any]:
        """Scan for the imucap service until the wanted board shows; its device and advert."""
        target = self.config.target
        remembered = self._memory.address
        by_address = bool(_ADDRESS.match(target))

        def wanted(device: Any, adv: Any) -> bool:
            address = _same_address(device.address)
            if remembered and address == _same_address(remembered):
                return True
            if by_address:
                return address == _same_address(target)
            return (adv.local_name or device.name) == target

        found = asyncio.get_running_loop().create_future()

        def seen(device: Any, adv: Any) -> None:
            if not found.done() and SERVICE_UUID in _uuids(adv) and wanted(device, adv):
                found.set_result((device, adv))

        timeout = self.config.scan_timeout_s
        scanner = await _started_scanner(seen, [SERVICE_UUID], scanner_cls, self.config.adapter)
        try:
            return await asyncio.wait_for(found, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            await _quietly(scanner.stop())
        if remembered is not None:
            raise DeviceNotFoundError(f"{self._memory.name} ({remembered}) is not advertising "
                                      f"(scanned {timeout:g} s)")
        await self._diagnose(scanner_cls, wanted)
        what = "with address" if by_address else "named"
        raise DeviceNotFoundError(
            f"no imucap array {what} {target} nearby (scanned {timeout:g} s): is it switched "
            f"on and not connected to another computer? 'imucap devices --ble' lists the "
            f"arrays in range")

    async def _diagnose(self, scanner_cls: Any, wanted: Callable[[Any, Any], bool]) -> None:
        """After a failed first scan: is there a board of that name without the imucap service?"""
        others: dict[str, tuple[str, list[str]]] = {}

        def seen(device: Any, adv: Any) -> None:
            if SERVICE_UUID not in _uuids(adv) and wanted(device, adv):
                others[device.address] = (adv.local_name or device.name or "",
                                          sorted(_uuids(adv)))

        scanner = await _started_scanner(seen, None, scanner_cls, self.config.adapter)
        try:
            await asyncio.sleep(min(_DIAGNOSE_S, self.config.scan_timeout_s))
        finally:
            await _quietly(scanner.stop())
        if others:
            address, (name, uuids) = next(iter(others.items()))
            services = ", ".join(uuids) or "no service"
            raise HandshakeError(
                f"{name or self.config.target} ({address}) is not an imucap array: it "
                f"advertises {services}, not the imucap service {SERVICE_UUID}")

    async def _attach(self, client: Any, where: str) -> None:
        """Check the GATT profile, learn the MTU and subscribe to the frames."""
        services = client.services
        frames = services.get_characteristic(FRAMES_UUID)
        commands = services.get_characteristic(COMMANDS_UUID)
        if frames is None or commands is None or "notify" not in frames.properties:
            missing = ("frames characteristic (notify)" if frames is None
                       or "notify" not in frames.properties else "commands characteristic")
            uuid = FRAMES_UUID if missing.startswith("frames") else COMMANDS_UUID
            found = ", ".join(sorted(s.uuid for s in services if s.uuid not in _GENERIC)) or "none"
            raise HandshakeError(f"{where} is not an imucap array: it has no imucap {missing} "
                                 f"{uuid} (its services: {found})")
        if "write-without-response" in commands.properties:
            self._with_response = False
        elif "write" in commands.properties:
            self._with_response = True
        else:
            raise HandshakeError(f"{where} is not an imucap array: its commands "
                                 f"characteristic cannot be written")
        self._frames, self._commands = frames, commands
        self.mtu = await _negotiated_mtu(client)
        try:
            await client.start_notify(frames, self._on_notify)
        except Exception as exc:
            raise DeviceError(f"{where} refused notifications of its frames: "
                              f"{_one_line(exc)}") from None

    # ------------------------------------------------------------------ callbacks (BLE loop)

    def _on_notify(self, _sender: Any, data: bytearray) -> None:
        with self._cond:
            self._buf += data
            self._cond.notify()

    def _on_disconnected(self, _client: Any) -> None:
        with self._cond:
            if self._lost is None:
                self._lost = f"{self.name or self.config.target} disconnected"
            self._cond.notify_all()

    # ------------------------------------------------------------------ byte stream

    def read(self, timeout_s: float) -> bytes:
        with self._cond:
            if not self._buf and self._lost is None and self._client is not None:
                self._cond.wait(timeout_s)
            if self._buf:
                data = bytes(self._buf)
                self._buf.clear()
                return data
            if self._lost is not None:
                raise LinkLost(self._lost)
            if self._client is None:
                raise LinkLost("not connected")
        return b""

    def write(self, data: bytes) -> None:
        client = self._client
        if client is None or self._lost is not None:
            raise LinkLost(self._lost or "not connected")
        future = asyncio.run_coroutine_threadsafe(self._write(client, bytes(data)), ble_loop())
        try:
            future.result(5.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise LinkLost("a write did not complete within 5 s") from None
        except Exception as exc:
            raise LinkLost(_one_line(exc)) from None

    async def _write(self, client: Any, data: bytes) -> None:
        size = value_size(self.mtu or DEFAULT_ATT_MTU)
        for i in range(0, len(data), size):
            await client.write_gatt_char(self._commands, data[i:i + size],
                                         response=self._with_response)

    def close(self) -> None:
        client, self._client = self._client, None
        with self._cond:
            if self._lost is None:
                self._lost = "closed"
            self._cond.notify_all()
        _open_links.discard(self)
        if client is None:
            return
        try:
            _run(self._shutdown(client), 5.0)
        except Exception as exc:
            log.debug("closing %s: %r", self.description, exc)

    async def _shutdown(self, client: Any) -> None:
        if client.is_connected:
            await _quietly(client.stop_notify(self._frames))
        await _quietly(client.disconnect())


# ---------------------------------------------------------------------- the device


class BleDevice(ProtocolDevice):
    """An imucap array over Bluetooth LE; each reconnection scans again for the same board."""

    type_name = "ble"

    def __init__(self, config: BleConfig) -> None:
        if not config.target:
            raise ValueError("BleConfig needs a target: the array's name or address")
        self._ble_memory = _Memory()
        self._ble_link: BleLink | None = None
        super().__init__(config, self._new_ble_link)

    def _new_ble_link(self) -> BleLink:
        link = BleLink(self.config, self._ble_memory)
        self._ble_link = link
        return link

    @property
    def mtu(self) -> int | None:
        """ATT_MTU of the current connection (None while not connected)."""
        link = self._ble_link
        return link.mtu if link is not None and link.is_open else None

    @property
    def address(self) -> str | None:
        """The board's Bluetooth address, once found."""
        return self._ble_memory.address

    def disconnect(self) -> None:
        memory = self._ble_memory
        memory.closing = True  # a reconnection under way gives up at once
        opening = memory.opening
        if opening is not None:
            opening.abort()
        try:
            super().disconnect()
        finally:
            memory.closing = False


@dataclass(kw_only=True)
class _UriOptions:
    scan_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    adapter: str | None = None


@register_device("ble")
def _from_uri(target: str, params: dict[str, str]) -> BleDevice:
    from .uri import stream_settings, take_options

    target = target.strip()
    if not target:
        raise BadDeviceURIError("ble: needs the array's name or address, for example "
                                "ble:imucap-1a2b ('imucap devices --ble' lists the arrays)")
    own = take_options(params, _UriOptions)
    return BleDevice(BleConfig(target=target, **own, **stream_settings(params)))
