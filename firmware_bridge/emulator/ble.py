"""Virtual Bluetooth LE arrays on a software Bluetooth stack, and a bleak backend to reach them.

PROTOCOL.md section 5 makes an imucap array a GATT peripheral. This module builds that
peripheral on bumble, a Bluetooth stack written in Python: every virtual array is a bumble
``Device`` (host) with its own bumble ``Controller``, and one more device plays the host
computer's adapter (the central). Their controllers share one in-process ``LocalLink``, so
advertising, scanning, connecting, the ATT_MTU exchange, service discovery, notifications and
writes are real Bluetooth LE procedures, carried as HCI packets and ATT PDUs, without a radio.

The radio runs on its own asyncio event loop in a thread, as an operating system's Bluetooth
stack runs in a process of its own. :attr:`VirtualRadio.client_class` and
:attr:`VirtualRadio.scanner_class` are bleak backends (subclasses of bleak's
``BaseBleakClient`` and ``BaseBleakScanner``) that act as the central on that link: pass them
to ``BleakClient(device, backend=...)`` and ``BleakScanner(backend=...)``, or give the radio
itself to :class:`imucap.devices.ble.BleConfig` as ``backend``::

    with VirtualRadio() as radio:
        radio.add_array(EmulatorConfig(rate_hz=100), VirtualArrayConfig(name="imucap-demo"))
        with BleDevice(BleConfig(target="imucap-demo", backend=radio)) as dev:
            frame = dev.read(timeout_s=2.0)

Each virtual array is driven by an :class:`~imucap.firmware_bridge.emulator.EmulatedArray`:
its frame stream is cut into notification values by
:func:`~imucap.firmware_bridge.transport.notification_chunks` at the negotiated ATT_MTU, the
values written to the commands characteristic go to ``EmulatedArray.receive``, and a dropped
link stops streaming (``link_closed``) and starts advertising again. On top of the array's own
frame-level faults, :class:`BleFaultConfig` injects Bluetooth faults (lost and damaged
notifications, link drops, power cuts), and :class:`BleFaultReport` says exactly what a host
must count.

What bumble's in-process link does not do, and what the radio adds or leaves out:

- Its controllers do not exchange SCAN_REQ/SCAN_RSP: the scan response report repeats the
  advertising data, so an array's name (in its scan response) would never arrive. The
  radio's controllers answer an active scan with the scan response data the advertiser's host
  set, and report each array's configured signal strength instead of a fixed -50 dBm.
- Its controller accepts LE Create Connection Cancel but ignores it (no Connection Complete
  with status 0x02), so a connection attempt that times out would hang; the radio's
  controllers complete the cancel as the Core specification says.
- There is no radio timing: no connection intervals, no packets-per-event limit and no
  supervision timeout. Data moves as fast as the CPU allows, and a power cut reaches the
  central at once (with the supervision-timeout reason, 0x08) rather than 2 s later.
- The controllers take 251-byte link-layer packets (LE Data Length Extension), so a
  notification at ATT_MTU 247 travels as one packet, as on hardware that supports it.

``IMUCAP_BLE_VIRTUAL`` (read by :mod:`imucap.devices.ble`) starts one radio per process
with the arrays :func:`parse_virtual_arrays` reads from it (:func:`shared_radio`).

Needs bumble and bleak (``pip install 'imucap[ble-virtual]'``); the emulator package itself
does not import this module.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import logging
import threading
import time
import uuid as uuidlib
import zlib
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import core, data_types, gatt, hci
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData, PhysicalTransport
from bumble.device import Device, Peer
from bumble.host import Host
from bumble.link import LocalLink
from bumble.profiles.device_information_service import DeviceInformationService
from bumble.transport.common import AsyncPipeSink

from ..codec import FrameDecoder
from ..protocol import Samples
from ..sites import site_preset
from ..transport import (
    COMMANDS_UUID,
    DEFAULT_ATT_MTU,
    FRAMES_UUID,
    PREFERRED_ATT_MTU,
    SERVICE_UUID,
    ble_name,
    notification_chunks,
)
from .device import EmulatedArray, EmulatorConfig
from .motion import MotionSource

try:  # bleak >= 2.0 says why Bluetooth is unavailable
    from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason
except ImportError:  # pragma: no cover - older bleak
    BleakBluetoothNotAvailableError = None
    BleakBluetoothNotAvailableReason = None

log = logging.getLogger(__name__)

#: The central's (the host adapter's) address: a random static address (top bits 11).
CENTRAL_ADDRESS = "C0:FF:EE:00:00:01"
#: What an impostor serves instead of the imucap service (Nordic's UART service).
OTHER_SERVICE_UUID = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
OTHER_TX_UUID = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
OTHER_RX_UUID = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
#: Link-layer payload the controllers take: LE Data Length Extension.
LINK_PACKET_OCTETS = 251
#: The advertising flags of PROTOCOL.md: LE General Discoverable, BR/EDR not supported.
_ADV_FLAGS = 0x06

_BLEAK_PROPERTIES = {
    gatt.Characteristic.Properties.BROADCAST: "broadcast",
    gatt.Characteristic.Properties.READ: "read",
    gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    gatt.Characteristic.Properties.WRITE: "write",
    gatt.Characteristic.Properties.NOTIFY: "notify",
    gatt.Characteristic.Properties.INDICATE: "indicate",
    gatt.Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    gatt.Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}


# ---------------------------------------------------------------------- configuration


@dataclass(kw_only=True)
class BleFaultConfig:
    """Bluetooth faults to inject, on top of the emulated array's own frame-level faults.

    Probabilities are per notification. Faults start ``start_after_s`` after a host subscribes
    (so the session's handshake goes through) and stop at :meth:`VirtualArray.stop_faults`.

    Attributes:
        drop: Chance that a notification is lost on the way.
        corrupt: Chance that one byte of a notification is changed on the way.
        disconnect_every_s: Mean time between link drops (0: none). The array drops the
            connection, stops streaming and advertises again at once, as after walking out
            of range and back.
        power_off_every_s: Mean time between power cuts (0: none). The array vanishes (its
            link drops and it stops advertising), comes back after ``power_off_s`` and
            restarts (new boot id, clock and sequence numbers from zero).
        power_off_s: How long a power cut lasts.
        start_after_s: Delay between a host's subscription and the first fault.
        seed: Seed of the fault schedule.
    """

    drop: float = 0.0
    corrupt: float = 0.0
    disconnect_every_s: float = 0.0
    power_off_every_s: float = 0.0
    power_off_s: float = 1.0
    start_after_s: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name}={value} is not a probability from 0 to 1")
        if self.drop + self.corrupt > 1.0:
            raise ValueError("fault probabilities drop + corrupt exceed 1")
        for name in ("disconnect_every_s", "power_off_every_s", "power_off_s", "start_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"fault {name} must not be negative")


@dataclass
class BleFaultReport:
    """What a virtual array sent over Bluetooth, and exactly what a correct host must count.

    ``frames_lost``, ``bad_chunks`` and ``bytes_discarded`` follow the receiver's rule of
    PROTOCOL.md section 1: the bytes between two delimiters that arrive form one chunk, and a
    chunk is a frame only if it is exactly one frame's bytes, unchanged. They match a host's
    statistics when the emulated array injects no frame-level faults of its own, and cover
    the connections during which notification faults were active.

    Attributes:
        connections: Connections accepted.
        commands: Values written to the commands characteristic.
        notifications: Notifications of the frame stream, lost ones included.
        notification_bytes: Their value bytes.
        dropped_notifications: Notifications lost on the way.
        corrupted_notifications: Notifications delivered with one byte changed.
        frames_lost: Device frames (any type) that did not reach the host intact.
        samples_frames_lost: SAMPLES frames among them.
        samples_lost: Samples in those SAMPLES frames.
        bad_chunks: Damaged chunks a host's decoder must discard.
        bytes_discarded: Their size, delimiters excluded.
        disconnects: Link drops made.
        power_offs: Power cuts made.
    """

    connections: int = 0
    commands: int = 0
    notifications: int = 0
    notification_bytes: int = 0
    dropped_notifications: int = 0
    corrupted_notifications: int = 0
    frames_lost: int = 0
    samples_frames_lost: int = 0
    samples_lost: int = 0
    bad_chunks: int = 0
    bytes_discarded: int = 0
    disconnects: int = 0
    power_offs: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(kw_only=True)
class VirtualArrayConfig:
    """How a virtual array appears on the air.

    Attributes:
        name: Advertised name; ``imucap-XXXX`` from the array's device id by default.
        address: Random static address (``D0:CA:…``); one is made up by default.
        max_mtu: Largest ATT_MTU the array accepts in an MTU exchange (247; 23 keeps the
            link at the default MTU).
        rssi: Signal strength a scanner reports for it, dBm.
        advertising_interval_ms: Time between advertisements.
        impostor: Serve another service (Nordic's UART service) instead of imucap's, as a
            board with an imucap-like name that is not an imucap array.
        advertised_uuid: Service UUID to advertise; by default the one it serves.
        faults: Bluetooth faults to inject.
    """

    name: str | None = None
    address: str | None = None
    max_mtu: int = PREFERRED_ATT_MTU
    rssi: int = -55
    advertising_interval_ms: float = 20.0
    impostor: bool = False
    advertised_uuid: str | None = None
    faults: BleFaultConfig = field(default_factory=BleFaultConfig)

    def __post_init__(self) -> None:
        if not DEFAULT_ATT_MTU <= self.max_mtu <= 517:
            raise ValueError(f"max_mtu must be {DEFAULT_ATT_MTU} to 517, got {self.max_mtu}")
        if self.name is not None and not 1 <= len(self.name.encode()) <= 29:
            raise ValueError(f"an advertised name is 1 to 29 bytes (it must fit a scan "
                             f"response), got {self.name!r}")


# ---------------------------------------------------------------------- loss accounting


class _LossModel:
    """Which frames reach a host intact when notifications are lost or damaged on the way.

    Fed every notification of a connection in order, with its fate, it follows the host
    decoder's rule exactly: chunks end at delivered delimiters, and a chunk is intact only if
    it holds exactly one frame's bytes, unchanged.
    """

    def __init__(self, report: BleFaultReport) -> None:
        self.report = report
        self.active = False
        self._unit = 0  # global index of the first frame of the current burst
        self.reset()

    def reset(self) -> None:
        """A new connection: a host's decoder drops its partial frame silently."""
        self._len = 0
        self._ok = True
        self._expect: tuple[int, int] | None = None

    def account(self, burst: bytes, notes: list[tuple[int, int, bool, int]]) -> None:
        """Take one burst of whole frames and its notifications.

        Args:
            burst: The frame stream written in one go, ending with a delimiter.
            notes: ``(start, end, delivered, corrupted_at)`` of each notification, in order;
                ``corrupted_at`` is the position of the changed byte, or -1.
        """
        ends = np.flatnonzero(np.frombuffer(burst, np.uint8) == 0).tolist()
        starts = [0] + [e + 1 for e in ends[:-1]]
        rep = self.report
        for p, q, delivered, bad_at in notes:
            i = bisect.bisect_left(ends, p)
            while i < len(ends) and starts[i] < q:
                a, b = starts[i], ends[i]  # frame bytes a..b-1, its delimiter at b
                unit = self._unit + i
                u, v = max(p, a), min(q, b + 1)
                with_delimiter = v == b + 1
                if not delivered:
                    if with_delimiter and b > a:
                        self._lost(burst[a:b])
                    i += 1
                    continue
                data_end = min(v, b)
                if data_end > u:
                    if self._len == 0:
                        self._ok = u == a
                    elif self._expect != (unit, u - a):
                        self._ok = False
                    if u <= bad_at < data_end:
                        self._ok = False
                    self._len += data_end - u
                    self._expect = (unit, data_end - a)
                if with_delimiter:
                    intact = self._len > 0 and self._ok and self._expect == (unit, b - a)
                    if self._len and not intact:
                        rep.bad_chunks += 1
                        rep.bytes_discarded += self._len
                    if not intact and b > a:
                        self._lost(burst[a:b])
                    self._len, self._ok, self._expect = 0, True, None
                i += 1
        self._unit += len(ends)

    def _lost(self, frame: bytes) -> None:
        packets = FrameDecoder().feed(frame + b"\x00")
        if not packets:
            return  # not a frame of the array's (its own garbage): nothing a host can miss
        self.report.frames_lost += 1
        msg = packets[0].message
        if isinstance(msg, Samples):
            self.report.samples_frames_lost += 1
            self.report.samples_lost += msg.data.shape[0]


# ---------------------------------------------------------------------- controller


class _RadioController(Controller):
    """A bumble controller completed where the in-process link falls short (module docstring).

    Answers active scans with the advertiser's scan response, reports the advertiser's
    configured RSSI, honours LE Create Connection Cancel, and takes 251-byte link packets.
    """

    def __init__(self, name: str, link: LocalLink, rssi: int = -55) -> None:
        super().__init__(name, link=link)
        self.rssi = rssi
        self.le_acl_data_packet_length = LINK_PACKET_OCTETS
        self.supported_max_tx_octets = self.supported_max_rx_octets = LINK_PACKET_OCTETS
        self.suggested_max_tx_octets = LINK_PACKET_OCTETS

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if isinstance(packet, hci.HCI_LE_Extended_Advertising_Report_Event):
            packet = hci.HCI_LE_Extended_Advertising_Report_Event(
                [self._as_heard(report) for report in packet.reports])
        super().send_hci_packet(packet)

    def _as_heard(self, report: Any) -> Any:
        found = self._advertiser(report.address)
        if found is None:
            return report
        advertiser, scan_response = found
        kind = hci.HCI_LE_Extended_Advertising_Report_Event.EventType
        adv_ind = (kind.CONNECTABLE_ADVERTISING | kind.SCANNABLE_ADVERTISING
                   | kind.LEGACY_ADVERTISING_PDU_USED)
        if report.event_type & kind.SCAN_RESPONSE:
            return dataclasses.replace(report, event_type=adv_ind | kind.SCAN_RESPONSE,
                                       data=scan_response, rssi=advertiser.rssi)
        return dataclasses.replace(report, event_type=adv_ind, rssi=advertiser.rssi)

    def _advertiser(self, address: hci.Address) -> tuple[_RadioController, bytes] | None:
        for other in self.link.controllers:
            if other is self or not isinstance(other, _RadioController):
                continue
            for adv_set in other.advertising_sets.values():
                if adv_set.enabled and adv_set.address == address:
                    return other, bytes(adv_set.scan_response_data)
            legacy = other.le_legacy_advertiser
            if legacy.enabled and legacy.address == address:
                return other, bytes(legacy.scan_response_data)
        return None

    def on_hci_le_create_connection_cancel_command(self, _command: Any) -> Any:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        failed = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR, connection_handle=0,
            role=hci.Role.CENTRAL, peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address, connection_interval=0, peripheral_latency=0,
            supervision_timeout=0, central_clock_accuracy=0)
        # After the Command Complete that the caller sends for this command.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, failed)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


def _new_device(link: LocalLink, name: str, address: str, rssi: int) -> Device:
    controller = _RadioController(name, link, rssi)
    return Device(name=name, address=hci.Address(address),
                  host=Host(controller, AsyncPipeSink(controller)))


def _uuid_str(value: UUID) -> str:
    """A bumble UUID as bleak writes it: 128-bit, lower case."""
    return str(uuidlib.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


# ---------------------------------------------------------------------- peripheral


class VirtualArray:
    """One virtual imucap array on a :class:`VirtualRadio`.

    Built by :meth:`VirtualRadio.add_array`; its methods may be called from any thread.

    Attributes:
        name: Advertised name.
        address: Bluetooth address, as bleak writes it.
        array: The emulated array behind it (None for an impostor).
        config: How it appears on the air.
        report: What it sent and injected over Bluetooth.
    """

    def __init__(self, radio: VirtualRadio, array: EmulatedArray | None,
                 config: VirtualArrayConfig, index: int) -> None:
        self.radio = radio
        self.array = array
        self.config = config
        device_id = array.config.device_id if array is not None else 0xBAD0 + index
        self.name = config.name or ble_name(device_id)
        self.address = (config.address or f"D0:CA:{index >> 8 & 0xFF:02X}:{index & 0xFF:02X}:"
                        f"{device_id >> 8 & 0xFF:02X}:{device_id & 0xFF:02X}").upper()
        self.report = BleFaultReport()
        self._device_id = device_id
        self._rng = np.random.default_rng(config.faults.seed)
        self._loss = _LossModel(self.report)
        self._device: Device | None = None
        self._connection: Any = None
        self._subscribed = False
        self._closing_link = False
        self._powered = True
        self._faults_from = float("inf")
        self._next_disconnect = self._next_power_off = float("inf")
        self._woken = False
        self._waiter: asyncio.Future | None = None
        self._tasks: set[asyncio.Task] = set()
        self._connected = threading.Event()

    # ------------------------------------------------------------------ public

    @property
    def connected(self) -> bool:
        """Whether a host is connected."""
        return self._connection is not None

    @property
    def subscribed(self) -> bool:
        """Whether the connected host has subscribed to the frames characteristic."""
        return self._subscribed

    @property
    def mtu(self) -> int | None:
        """ATT_MTU of the current connection (None while nobody is connected)."""
        connection = self._connection
        return None if connection is None else connection.att_mtu

    @property
    def powered(self) -> bool:
        """False during a power cut."""
        return self._powered

    def wait_connected(self, timeout_s: float = 5.0) -> bool:
        """Wait until a host is connected and subscribed; False on timeout."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self._subscribed:
                return True
            self._connected.wait(0.02)
        return self._subscribed

    def drop_connection(self) -> None:
        """Drop the link now, as after going out of range; advertise again at once."""
        self.radio.call(self._drop(count=True))

    def power_off(self, seconds: float) -> None:
        """Cut the power for ``seconds``: the link drops, advertising stops, then a restart."""
        self.radio.call(self._power_cut(seconds, count=True))

    def stop_faults(self) -> None:
        """Inject nothing more, Bluetooth or frame-level (frames already lost stay lost)."""
        def stop() -> None:
            self.config.faults = BleFaultConfig(seed=self.config.faults.seed)
            self._next_disconnect = self._next_power_off = float("inf")
        self.radio.call_soon(stop)
        if self.array is not None:
            self.array.stop_faults()

    # ------------------------------------------------------------------ setup (radio loop)

    async def _start(self) -> None:
        cfg = self.config
        device = _new_device(self.radio._link, self.name, self.address, cfg.rssi)
        if cfg.impostor:
            serves = OTHER_SERVICE_UUID
            device.add_service(gatt.Service(OTHER_SERVICE_UUID, [
                gatt.Characteristic(OTHER_TX_UUID, gatt.Characteristic.Properties.NOTIFY,
                                    gatt.Characteristic.READABLE, b""),
                gatt.Characteristic(OTHER_RX_UUID, gatt.Characteristic.Properties.WRITE,
                                    gatt.Characteristic.WRITEABLE, b""),
            ]))
            model, firmware = "nRF52832", "uart-bridge 2.1"
        else:
            serves = SERVICE_UUID
            self._frames = gatt.Characteristic(
                FRAMES_UUID, gatt.Characteristic.Properties.NOTIFY,
                gatt.Characteristic.READABLE, b"")
            self._frames.on("subscription", self._on_subscription)
            commands = gatt.Characteristic(
                COMMANDS_UUID, gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE
                | gatt.Characteristic.Properties.WRITE, gatt.Characteristic.WRITEABLE,
                gatt.CharacteristicValue(write=self._on_command))
            device.add_service(gatt.Service(SERVICE_UUID, [self._frames, commands]))
            model = self.array.config.chip if self.array is not None else "IMU"
            firmware = "imucap-emulator 1.0"
        device.add_service(DeviceInformationService(
            manufacturer_name="imucap", model_number=model,
            serial_number=f"{self._device_id:08x}", firmware_revision=firmware))
        device.gatt_server.max_mtu = cfg.max_mtu
        device.on("connection", self._on_connection)
        advertised = cfg.advertised_uuid or serves
        self._adv_data = bytes(AdvertisingData([
            data_types.Flags(_ADV_FLAGS),
            data_types.CompleteListOf128BitServiceUUIDs([UUID(advertised)])]))
        self._scan_response = bytes(AdvertisingData([data_types.CompleteLocalName(self.name)]))
        self._device = device
        await device.power_on()
        await self._advertise()
        if self.array is not None:
            self._spawn(self._pump())

    def _spawn(self, coro: Coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _advertise(self) -> None:
        if self._device is None or not self._powered or self._connection is not None:
            return
        interval = self.config.advertising_interval_ms
        await self._device.start_advertising(
            advertising_data=self._adv_data, scan_response_data=self._scan_response,
            advertising_interval_min=interval, advertising_interval_max=interval)

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._powered = False
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect()

    # ------------------------------------------------------------------ events (radio loop)

    def _on_connection(self, connection: Any) -> None:
        if connection.role != hci.Role.PERIPHERAL:
            return
        self._connection = connection
        self._subscribed = False
        self._closing_link = False
        self._loss.reset()
        self._loss.active = False
        self.report.connections += 1
        connection.on("disconnection", lambda reason: self._on_disconnection(connection, reason))

    def _on_disconnection(self, connection: Any, reason: int) -> None:
        if connection is not self._connection:
            return
        self._connection = None
        self._subscribed = False
        self._connected.clear()
        self._loss.reset()
        if self.array is not None:
            self.array.link_closed()  # stop streaming, as when a serial port closes
        log.debug("%s: link lost (reason 0x%02x)", self.name, reason)
        if self._powered:
            self._spawn(self._advertise())
        self._wake()

    def _on_subscription(self, bearer: Any, notify_enabled: bool, _indicate: bool) -> None:
        if bearer is not self._connection:
            return
        self._subscribed = notify_enabled
        if notify_enabled:
            now = time.monotonic()
            faults = self.config.faults
            self._faults_from = now + faults.start_after_s
            self._next_disconnect = self._schedule(faults.disconnect_every_s)
            self._next_power_off = self._schedule(faults.power_off_every_s)
            self._connected.set()
        self._wake()

    def _on_command(self, _connection: Any, value: bytes) -> None:
        self.report.commands += 1
        if self.array is not None:
            self.array.receive(bytes(value))
        self._wake()

    def _schedule(self, mean_s: float) -> float:
        if mean_s <= 0:
            return float("inf")
        start = max(self._faults_from, time.monotonic())
        return start + float(self._rng.uniform(0.5, 1.5)) * mean_s

    # ------------------------------------------------------------------ streaming

    def _wake(self) -> None:
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _nap(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less if a command or a connection change comes."""
        if not self._woken and seconds > 0:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            handle = loop.call_later(seconds, lambda: waiter.done() or waiter.set_result(None))
            try:
                await waiter
            finally:
                handle.cancel()
                self._waiter = None
        self._woken = False

    async def _pump(self) -> None:
        """Run the emulated array: poll it, and send what it writes as notifications."""
        array = self.array
        while True:
            connection = self._connection
            if connection is None or not self._subscribed:
                await self._nap(0.05)
                continue
            await self._nap(array.time_to_next_s())
            if self._connection is not connection or not self._subscribed:
                continue
            burst = bytearray()
            for action in array.poll():
                if action.kind == "write":
                    burst += action.data
                    continue
                await self._notify(connection, bytes(burst))
                burst.clear()
                if action.kind == "stall":
                    await asyncio.sleep(action.seconds)
                else:  # the array's own disconnect fault: it vanishes and restarts
                    await self._power_cut(action.seconds, count=False)
            await self._notify(connection, bytes(burst))
            now = time.monotonic()
            if now >= self._next_power_off:
                await self._power_cut(self.config.faults.power_off_s, count=True)
            elif now >= self._next_disconnect:
                await self._drop(count=True)

    async def _notify(self, connection: Any, burst: bytes) -> None:
        if not burst:
            return
        values = notification_chunks(burst, connection.att_mtu)
        self.report.notifications += len(values)
        self.report.notification_bytes += len(burst)
        faults = self.config.faults
        if (faults.drop or faults.corrupt) and time.monotonic() >= self._faults_from:
            self._loss.active = True
        if not self._loss.active:
            for value in values:
                if self._connection is not connection or self._closing_link:
                    return
                await self._device.notify_subscriber(connection, self._frames, value)
            return
        notes = []
        start = 0
        for value in values:
            end = start + len(value)
            delivered, bad_at = True, -1
            roll = self._rng.random()
            if roll < faults.drop:
                delivered = False
                self.report.dropped_notifications += 1
            elif roll < faults.drop + faults.corrupt:
                nonzero = np.flatnonzero(np.frombuffer(value, np.uint8))
                if len(nonzero):
                    pos = int(nonzero[self._rng.integers(len(nonzero))])
                    new = int(self._rng.integers(1, 255))
                    new += new >= value[pos]  # any non-zero value but the original
                    value = value[:pos] + bytes([new]) + value[pos + 1:]
                    bad_at = start + pos
                    self.report.corrupted_notifications += 1
            notes.append((start, end, delivered, bad_at))
            start = end
            if delivered:
                if self._connection is not connection or self._closing_link:
                    break
                await self._device.notify_subscriber(connection, self._frames, value)
        self._loss.account(burst, notes)

    # ------------------------------------------------------------------ faults

    async def _drop(self, *, count: bool) -> None:
        connection = self._connection
        if connection is None:
            return
        if count:
            self.report.disconnects += 1
        self._next_disconnect = self._schedule(self.config.faults.disconnect_every_s)
        self._closing_link = True
        with contextlib.suppress(Exception):
            await connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)

    async def _power_cut(self, seconds: float, *, count: bool) -> None:
        if not self._powered:
            return
        if count:
            self.report.power_offs += 1
        self._next_power_off = float("inf")
        self._powered = False
        with contextlib.suppress(Exception):
            await self._device.stop_advertising()
        connection = self._connection
        if connection is not None:
            self._closing_link = True
            with contextlib.suppress(Exception):
                # What the central sees when a peripheral goes silent: a supervision timeout.
                await connection.disconnect(hci.HCI_CONNECTION_TIMEOUT_ERROR)
        self._spawn(self._power_on_after(seconds))

    async def _power_on_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.array is not None:
            self.array.reboot()
        self._powered = True
        self._next_power_off = self._schedule(self.config.faults.power_off_every_s)
        await self._advertise()


# ---------------------------------------------------------------------- the radio


@dataclass(frozen=True)
class _Sighting:
    """An advertisement the central heard; a BLEDevice's ``details`` on the virtual radio."""

    radio_id: int
    address: str
    bumble_address: Any = field(repr=False)
    name: str | None
    service_uuids: tuple[str, ...]
    rssi: int
    tx_power: int | None


class _Relay:
    """Hands calls from the radio's loop to another loop, in order, a batch per wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def push(self, fn: Callable, *args: Any) -> None:
        with self._lock:
            self._queue.append((fn, args))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # that loop is closed: nobody listens any more
            pass

    def _drain(self) -> None:
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
            self._scheduled = False
        for fn, args in items:
            try:
                fn(*args)
            except Exception:  # a callback's bug must not stop the others
                log.exception("callback %r failed", fn)


class VirtualRadio:
    """An in-process Bluetooth LE world: virtual arrays and a central, on bumble.

    Args:
        central_mtu: ATT_MTU the central asks for after connecting (as macOS, Windows and
            Android do by themselves); 23 makes it skip the exchange and stay at 23.
    """

    def __init__(self, *, central_mtu: int = PREFERRED_ATT_MTU) -> None:
        if not DEFAULT_ATT_MTU <= central_mtu <= 517:
            raise ValueError(f"central_mtu must be {DEFAULT_ATT_MTU} to 517, got {central_mtu}")
        self.central_mtu = central_mtu
        self.adapter_powered = True
        self.arrays: list[VirtualArray] = []
        self._closed = False
        self._scanners: set[Callable[[_Sighting], None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="imucap-virtual-radio", daemon=True)
        self._thread.start()
        self.call(self._start())
        bound = {"radio": self}
        #: bleak client backend on this radio (``BleakClient(device, backend=...)``).
        self.client_class: type[BaseBleakClient] = type(
            "VirtualBleakClient", (VirtualBleakClient,), bound)
        #: bleak scanner backend on this radio (``BleakScanner(backend=...)``).
        self.scanner_class: type[BaseBleakScanner] = type(
            "VirtualBleakScanner", (VirtualBleakScanner,), bound)

    async def _start(self) -> None:
        self._link = LocalLink()
        self._central = _new_device(self._link, "central", CENTRAL_ADDRESS, -40)
        self._central.on("advertisement", self._on_advertisement)
        self._connect_lock = asyncio.Lock()
        self._attempts: dict[object, Any] = {}  # connections made, until their client has them
        self._abandoned: set[object] = set()  # attempts whose client gave up
        await self._central.power_on()

    # ------------------------------------------------------------------ threads

    def call(self, coro: Coroutine, timeout_s: float = 10.0) -> Any:
        """Run a coroutine on the radio's loop from another thread and return its result."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("VirtualRadio.call() from the radio's own thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the radio's loop soon."""
        self._loop.call_soon_threadsafe(fn)

    async def hop(self, coro: Coroutine) -> Any:
        """Await a coroutine on the radio's loop from another event loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # ------------------------------------------------------------------ arrays

    def add_array(self, array: EmulatedArray | EmulatorConfig | None = None,
                  config: VirtualArrayConfig | None = None, *,
                  motion: MotionSource | None = None) -> VirtualArray:
        """Power up a virtual array: it advertises at once.

        Args:
            array: The emulated array behind it, or its config (None: a default 11-sensor
                array; ignored for an impostor).
            config: How it appears on the air.
            motion: What its sensors measure, when ``array`` is a config or None.
        """
        config = config or VirtualArrayConfig()
        if config.impostor:
            array = None
        elif not isinstance(array, EmulatedArray):
            array = EmulatedArray(array or EmulatorConfig(), motion=motion)
        virtual = VirtualArray(self, array, config, len(self.arrays) + 1)
        if any(a.address == virtual.address for a in self.arrays):
            raise ValueError(f"address {virtual.address} is taken on this radio")
        self.call(virtual._start())
        self.arrays.append(virtual)
        return virtual

    def array(self, name: str) -> VirtualArray:
        """The virtual array with this advertised name."""
        for virtual in self.arrays:
            if virtual.name == name:
                return virtual
        raise KeyError(name)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Power everything off and stop the radio's thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.call(self._shutdown(), timeout_s=5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shutdown(self) -> None:
        for virtual in self.arrays:
            await virtual._close()
        for connection in list(self._central.connections.values()):
            with contextlib.suppress(Exception):
                await connection.disconnect()
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=2.0)

    def __enter__(self) -> VirtualRadio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ central (radio loop)

    def _check_adapter(self) -> None:
        if not self.adapter_powered:
            if BleakBluetoothNotAvailableError is not None:
                raise BleakBluetoothNotAvailableError(
                    "Bluetooth is turned off", BleakBluetoothNotAvailableReason.POWERED_OFF)
            raise BleakError("Bluetooth is turned off")

    async def _scan_start(self, sink: Callable[[_Sighting], None]) -> None:
        self._check_adapter()
        self._scanners.add(sink)
        if not self._central.is_scanning:
            await self._central.start_scanning(active=True, filter_duplicates=False)

    async def _scan_stop(self, sink: Callable[[_Sighting], None]) -> None:
        self._scanners.discard(sink)
        if not self._scanners and self._central.is_scanning:
            await self._central.stop_scanning()

    def _on_advertisement(self, advertisement: Any) -> None:
        if not self._scanners or not self.adapter_powered:
            return
        data = advertisement.data
        kinds = AdvertisingData.Type
        uuids: list[str] = []
        for kind in (kinds.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                     kinds.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                     kinds.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
                     kinds.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
                     kinds.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                     kinds.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS):
            uuids += [_uuid_str(u) for u in data.get(kind) or ()]
        name = data.get(kinds.COMPLETE_LOCAL_NAME) or data.get(kinds.SHORTENED_LOCAL_NAME)
        tx_power = data.get(kinds.TX_POWER_LEVEL)
        sighting = _Sighting(
            radio_id=id(self), address=advertisement.address.to_string(False).upper(),
            bumble_address=advertisement.address, name=name, service_uuids=tuple(uuids),
            rssi=advertisement.rssi, tx_power=tx_power if isinstance(tx_power, int) else None)
        for sink in list(self._scanners):
            sink(sighting)

    async def _connect(self, sighting: _Sighting, timeout_s: float,
                       on_disconnection: Callable[[int], None],
                       attempt: object) -> tuple[Any, Peer, list]:
        self._check_adapter()
        async with self._connect_lock:  # one connection attempt at a time, as controllers do
            task = asyncio.get_running_loop().create_task(self._central.connect(
                sighting.bumble_address, transport=PhysicalTransport.LE, timeout=timeout_s))
            try:
                connection = await asyncio.shield(task)
            except asyncio.CancelledError:
                # The caller gave up. bumble cannot drop an attempt half-way: let it end, and
                # close the connection it made after all, so the array advertises again.
                await asyncio.wait([task])
                if not task.cancelled() and task.exception() is None:
                    await self._disconnect(task.result())
                raise
            except core.BaseBumbleError as exc:
                raise BleakDeviceNotFoundError(
                    sighting.address, f"{sighting.address} did not answer within "
                    f"{timeout_s:g} s ({type(exc).__name__})") from None
        connection.on("disconnection", on_disconnection)
        peer = Peer(connection)
        try:
            if self.central_mtu > DEFAULT_ATT_MTU:
                await peer.request_mtu(self.central_mtu)
            await peer.discover_services()
            for service in peer.services:
                await peer.discover_characteristics(service=service)
                for characteristic in service.characteristics:
                    await peer.discover_descriptors(characteristic)
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.disconnect()
            raise
        snapshot = [(service, [(c, list(c.descriptors)) for c in service.characteristics])
                    for service in peer.services]
        if attempt in self._abandoned:  # the caller gave up while the result was on its way
            self._abandoned.discard(attempt)
            await self._disconnect(connection)
            raise asyncio.CancelledError
        self._attempts[attempt] = connection
        return connection, peer, snapshot

    def _settle(self, attempt: object, kept: bool) -> None:
        """A client took its connection (``kept``), or gave up on it: close it if it is made."""
        connection = self._attempts.pop(attempt, None)
        if kept:
            return
        if connection is None:
            self._abandoned.add(attempt)
        else:
            asyncio.get_running_loop().create_task(self._disconnect(connection))

    async def _disconnect(self, connection: Any) -> None:
        if connection.handle in self._central.connections:
            with contextlib.suppress(Exception):
                await connection.disconnect()


# ---------------------------------------------------------------------- bleak backends


class VirtualBleakScanner(BaseBleakScanner):
    """bleak's scanner backend on a :class:`VirtualRadio` (use ``radio.scanner_class``)."""

    radio: ClassVar[VirtualRadio]

    def __init__(self, detection_callback: Any = None, service_uuids: list[str] | None = None,
                 scanning_mode: str = "active", **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self._relay: _Relay | None = None
        self._names: dict[str, str] = {}
        self._sink = self._from_radio

    async def start(self) -> None:
        self.seen_devices = {}
        self._relay = _Relay(asyncio.get_running_loop())
        await self.radio.hop(self.radio._scan_start(self._sink))

    async def stop(self) -> None:
        await self.radio.hop(self.radio._scan_stop(self._sink))

    def _from_radio(self, sighting: _Sighting) -> None:  # on the radio's loop
        self._relay.push(self._on_sighting, sighting)

    def _on_sighting(self, s: _Sighting) -> None:
        if not self.is_allowed_uuid(list(s.service_uuids)):
            return
        name = s.name or self._names.get(s.address)  # the name came in a scan response
        if name:
            self._names[s.address] = name
        adv = AdvertisementData(local_name=name, manufacturer_data={}, service_data={},
                                service_uuids=list(s.service_uuids), tx_power=s.tx_power,
                                rssi=s.rssi, platform_data=(s,))
        device = self.create_or_update_device(s.address, s.address, name, s, adv)
        self.call_detection_callbacks(device, adv)


class VirtualBleakClient(BaseBleakClient):
    """bleak's client backend on a :class:`VirtualRadio` (use ``radio.client_class``).

    Like CoreBluetooth, it connects only to a ``BLEDevice`` its scanner found, never to a bare
    address. The MTU exchange happens while connecting, as on macOS and Windows.
    """

    radio: ClassVar[VirtualRadio]

    def __init__(self, address_or_ble_device: BLEDevice | str, *,
                 disconnected_callback: Callable[[], None] | None = None,
                 timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout)
        details = getattr(address_or_ble_device, "details", None)
        self._sighting = details if isinstance(details, _Sighting) else None
        self._connection: Any = None
        self._peer: Peer | None = None
        self._mtu = DEFAULT_ATT_MTU
        self._relay: _Relay | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._closing = False

    @property
    def name(self) -> str:
        sighting = self._sighting
        return (sighting.name if sighting and sighting.name else self.address)

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        sighting = self._sighting
        if sighting is None or sighting.radio_id != id(self.radio):
            raise BleakError(f"the virtual radio connects only to a BLEDevice its scanner "
                             f"found, not to {self.address!r}: scan first")
        self._relay = _Relay(asyncio.get_running_loop())
        self._closing = False
        radio, attempt = self.radio, object()
        try:
            connection, peer, snapshot = await radio.hop(radio._connect(
                sighting, self._timeout, self._from_radio_disconnection, attempt))
        except asyncio.CancelledError:  # the radio may still make it: have it closed then
            radio.call_soon(lambda: radio._settle(attempt, kept=False))
            raise
        radio.call_soon(lambda: radio._settle(attempt, kept=True))
        self._connection, self._peer = connection, peer
        self._mtu = connection.att_mtu
        self.services = self._collection(snapshot)

    def _collection(self, snapshot: list) -> BleakGATTServiceCollection:
        services = BleakGATTServiceCollection()
        for service, characteristics in snapshot:
            bleak_service = BleakGATTService(service, service.handle, _uuid_str(service.uuid))
            services.add_service(bleak_service)
            for proxy, descriptors in characteristics:
                names = [n for flag, n in _BLEAK_PROPERTIES.items() if proxy.properties & flag]
                char = BleakGATTCharacteristic(proxy, proxy.handle, _uuid_str(proxy.uuid), names,
                                               lambda: self._mtu - 3, bleak_service)
                services.add_characteristic(char)
                for descriptor in descriptors:
                    services.add_descriptor(BleakGATTDescriptor(
                        descriptor, descriptor.handle, _uuid_str(descriptor.type), char))
        return services

    def _from_radio_disconnection(self, reason: int) -> None:  # on the radio's loop
        relay = self._relay
        if relay is not None:
            relay.push(self._on_disconnected, reason)

    def _on_disconnected(self, reason: int) -> None:
        self._connection = None
        self._peer = None
        if not self._closing and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        await self.radio.hop(self.radio._disconnect(connection))
        self._connection = None
        self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Virtual arrays need no pairing (imucap arrays do not ask for it)."""

    async def unpair(self) -> None:
        """Nothing to forget: virtual arrays are never paired."""

    def _need_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *,
                             use_cached: bool = False, **kwargs: Any) -> bytearray:
        peer = self._need_peer()
        return bytearray(await self.radio.hop(peer.read_value(characteristic.obj)))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *,
                                   use_cached: bool = False, **kwargs: Any) -> bytearray:
        peer = self._need_peer()
        return bytearray(await self.radio.hop(peer.read_value(descriptor.obj)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any,
                              response: bool) -> None:
        peer = self._need_peer()
        value = bytes(data)
        if not response and len(value) > self._mtu - 3:
            raise BleakError(f"a write without response carries at most {self._mtu - 3} "
                             f"bytes at ATT_MTU {self._mtu}, got {len(value)}")
        await self.radio.hop(peer.write_value(characteristic.obj, value, with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        peer = self._need_peer()
        await self.radio.hop(peer.write_value(descriptor.obj, bytes(data), with_response=True))

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: Callable[[bytearray], None], **kwargs: Any) -> None:
        peer = self._need_peer()
        relay = self._relay

        def on_value(value: bytes) -> None:  # on the radio's loop
            relay.push(callback, bytearray(value))

        await self.radio.hop(peer.subscribe(characteristic.obj, on_value, prefer_notify=True))
        self._subscribers[characteristic.handle] = on_value

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._need_peer()
        on_value = self._subscribers.pop(characteristic.handle, None)
        await self.radio.hop(peer.unsubscribe(characteristic.obj, on_value))


# ---------------------------------------------------------------------- from the environment


def parse_virtual_arrays(spec: str) -> list[tuple[str, tuple[str, ...]]]:
    """``(name, sites)`` of each array in a list like ``imucap-left:face6,imucap-right``.

    Each entry is an advertised name, optionally followed by ``:`` and a site preset
    (:func:`~imucap.firmware_bridge.sites.site_preset`; ``imusic11`` by default).

    Raises:
        ValueError: An entry is empty, too long, repeated, or names an unknown preset.
    """
    out: list[tuple[str, tuple[str, ...]]] = []
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, _, preset = entry.partition(":")
        name = name.strip()
        if not 1 <= len(name.encode()) <= 29:
            raise ValueError(f"virtual array name {name!r} must be 1 to 29 bytes")
        if any(name == other for other, _ in out):
            raise ValueError(f"virtual array {name!r} is listed twice")
        out.append((name, site_preset(preset.strip() or "imusic11")))
    if not out:
        raise ValueError("no virtual array listed: write NAME[:PRESET],…")
    return out


_shared: dict[str, VirtualRadio] = {}
_shared_lock = threading.Lock()


def shared_radio(spec: str) -> VirtualRadio:
    """The process's virtual radio holding the arrays ``spec`` lists (made on first use).

    Each array streams at 100 Hz and has a device id made from its name, so its boot id and
    Device Information differ from its neighbours'.
    """
    with _shared_lock:
        radio = _shared.get(spec)
        if radio is None:
            arrays = parse_virtual_arrays(spec)
            radio = VirtualRadio()
            for name, sites in arrays:
                device_id = zlib.crc32(name.encode())
                radio.add_array(EmulatorConfig(sites=sites, device_id=device_id, seed=device_id),
                                VirtualArrayConfig(name=name))
            _shared[spec] = radio
        return radio
