"""The Bluetooth LE transport through bleak's public API, against virtual arrays on bumble.

The arrays are GATT peripherals on bumble's software Bluetooth stack (advertising, scanning,
connection, MTU exchange, discovery, notifications and writes are real procedures over an
in-process link); the host side is the ``ble:`` device, going through ``BleakScanner`` and
``BleakClient`` with the virtual radio's backend classes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("bleak", reason="the BLE transport runs on bleak (pip install 'imucap[ble]')")
pytest.importorskip("bumble", reason="virtual BLE arrays need the bumble Bluetooth stack "
                                     "(pip install 'imucap[ble-virtual]')")

from bleak import BleakClient, BleakScanner  # noqa: E402
from bleak.exc import BleakError  # noqa: E402

from imucap.devices import open_device  # noqa: E402
from imucap.devices.ble import (  # noqa: E402
    VIRTUAL_ENV,
    BleConfig,
    BleDevice,
    ble_loop,
    scan_arrays,
)
from imucap.errors import (  # noqa: E402
    BadDeviceURIError,
    DeviceError,
    DeviceNotFoundError,
    HandshakeError,
)
from imucap.firmware_bridge.codec import FrameDecoder, encode_frame  # noqa: E402
from imucap.firmware_bridge.emulator import EmulatorConfig  # noqa: E402
from imucap.firmware_bridge.emulator.ble import (  # noqa: E402
    BleFaultConfig,
    VirtualArrayConfig,
    VirtualRadio,
    parse_virtual_arrays,
)
from imucap.firmware_bridge.protocol import DeviceInfo, GetInfo  # noqa: E402
from imucap.firmware_bridge.sites import IMUSIC11_SITES, site_preset  # noqa: E402
from imucap.firmware_bridge.transport import (  # noqa: E402
    COMMANDS_UUID,
    FRAMES_UUID,
    MODEL_NUMBER_UUID,
    SERIAL_NUMBER_UUID,
    SERVICE_UUID,
)

from emulator_helpers import collect, wire_frames  # noqa: E402

IMUCAP = [sys.executable, "-m", "imucap"]


@pytest.fixture
def radio():
    with VirtualRadio() as r:
        yield r


@pytest.fixture(autouse=True)
def _no_virtual_env(monkeypatch):
    monkeypatch.delenv(VIRTUAL_ENV, raising=False)


def device(radio: VirtualRadio, target: str, **kw) -> BleDevice:
    kw.setdefault("scan_timeout_s", 3.0)
    return BleDevice(BleConfig(target=target, backend=radio, **kw))


def no_bluetooth_service() -> bool:
    """True where bleak's default backend cannot reach any Bluetooth stack (like CI boxes)."""
    if not sys.platform.startswith("linux"):
        return False
    return not any(os.path.exists(p) for p in ("/run/dbus/system_bus_socket",
                                                "/var/run/dbus/system_bus_socket"))


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != VIRTUAL_ENV}
    env.update(extra)
    return env


# ---------------------------------------------------------------------- streaming


def test_clean_stream_is_complete_with_exact_statistics(radio):
    virtual = radio.add_array(EmulatorConfig(rate_hz=100, keep_sent=True),
                              VirtualArrayConfig(name="imucap-clean"))
    with device(radio, "imucap-clean") as dev:
        assert dev.mtu == 247 and virtual.mtu == 247
        assert dev.info.sites == IMUSIC11_SITES  # from DEVICE_INFO, over notifications
        assert dev.name == f"ble:imucap-clean ({virtual.address})"
        frames = collect(dev, 2.0)
        virtual.stop_faults()
        frames += collect(dev, 0.3)
        assert dev.read_latest(max_age_s=1.0).sites == IMUSIC11_SITES
        stats = dev.stats()
    sent = virtual.array.report.sent
    got = wire_frames(frames)
    assert len(got) >= 150
    assert got == sent[: len(got)]
    assert len(sent) - len(got) <= 2  # the last frames may be on their way at disconnect
    assert stats.frames == len(got) and stats.samples == len(got)
    assert stats.frames_lost == stats.samples_lost == stats.bad_frames == 0
    assert stats.reconnects == 0
    assert 60 < stats.frames_per_s < 140  # a loose sanity check of the 100 Hz rate
    assert virtual.report.notifications >= len(got)  # one frame per notification at 247
    assert not virtual.connected


@pytest.mark.parametrize("kind,mtu", [("drop", 23), ("corrupt", 247), ("corrupt", 23),
                                      ("drop", 247)])
def test_notification_faults_are_counted_exactly(kind, mtu):
    faults = BleFaultConfig(**{kind: 0.05}, seed=7)
    with VirtualRadio(central_mtu=mtu) as radio:
        virtual = radio.add_array(EmulatorConfig(rate_hz=100, samples_per_frame=2),
                                  VirtualArrayConfig(name="imucap-lossy", faults=faults))
        with device(radio, "imucap-lossy") as dev:
            assert dev.mtu == mtu
            collect(dev, 2.5)
            virtual.stop_faults()
            collect(dev, 0.4)  # a clean tail shows the last losses
            stats = dev.stats()
        report = virtual.report
        sent = virtual.array.report
    hit = report.dropped_notifications if kind == "drop" else report.corrupted_notifications
    assert hit > 0 and report.frames_lost > 0
    assert stats.frames_lost == report.frames_lost
    assert stats.samples_lost == report.samples_lost
    assert stats.bad_frames == report.bad_chunks
    assert stats.bytes_discarded == report.bytes_discarded
    assert stats.crc_errors + stats.cobs_errors == stats.bad_frames
    if kind == "corrupt":
        assert 0 < report.bad_chunks <= report.corrupted_notifications
    expected = sent.frames_sent - report.samples_frames_lost
    assert 0 <= expected - stats.frames <= 2  # frames in flight at disconnect
    assert stats.reconnects == 0


def test_link_drops_reconnect_and_the_stream_resumes(radio):
    faults = BleFaultConfig(disconnect_every_s=0.4, seed=2)
    virtual = radio.add_array(EmulatorConfig(rate_hz=100),
                              VirtualArrayConfig(name="imucap-drops", faults=faults))
    with device(radio, "imucap-drops", reconnect_max_backoff_s=0.2) as dev:
        frames = collect(dev, 2.0)  # the first scheduled drop comes within 1.2 s
        virtual.stop_faults()
        assert virtual.wait_connected(5.0)
        time.sleep(0.2)
        virtual.drop_connection()  # and one on demand
        frames += collect(dev, 0.8)  # the last reconnection completes
        n_before = dev.stats().frames
        tail = collect(dev, 0.6)
        stats = dev.stats()
    assert virtual.report.disconnects >= 2
    assert stats.reconnects == virtual.report.disconnects
    assert virtual.report.connections == stats.reconnects + 1
    assert stats.state != "failed" and stats.frames > n_before and tail
    assert len({f.boot_id for f in frames + tail}) == 1  # a link drop is not a restart
    assert "disconnected" in stats.last_error


def test_power_cut_mid_stream_then_back(radio):
    virtual = radio.add_array(EmulatorConfig(rate_hz=100), VirtualArrayConfig(name="imucap-pwr"))
    with device(radio, "imucap-pwr", reconnect_max_backoff_s=0.2) as dev:
        before = collect(dev, 0.8)
        virtual.power_off(1.2)
        assert not virtual.powered
        # While it is off it does not advertise: a scan does not list it.
        assert "imucap-pwr" not in [a.name for a in scan_arrays(0.3, radio)]
        after = collect(dev, 3.0)
        stats = dev.stats()
    assert virtual.report.power_offs == 1 and virtual.powered
    assert stats.reconnects == 1 and stats.reconnect_attempts >= 1
    boots_before = {f.boot_id for f in before}
    assert len(boots_before) == 1
    restarted = [f for f in after if f.boot_id not in boots_before]
    assert len(restarted) > 50  # the stream resumed from the restarted board


@pytest.mark.parametrize("central_mtu,array_mtu", [(23, 247), (247, 23)])
def test_at_mtu_23_commands_are_split_and_clock_probes_answered(central_mtu, array_mtu):
    with VirtualRadio(central_mtu=central_mtu) as radio:
        virtual = radio.add_array(EmulatorConfig(rate_hz=100),
                                  VirtualArrayConfig(name="imucap-small", max_mtu=array_mtu))
        with device(radio, "imucap-small", ping_interval_s=0.3) as dev:
            assert dev.mtu == 23 and virtual.mtu == 23
            frames = collect(dev, 2.0)
            stats = dev.stats()
        commands = virtual.report.commands
    assert len(frames) > 100 and stats.frames_lost == 0 and stats.bad_frames == 0
    # A PING frame is 22 bytes: at MTU 23 it takes two writes of at most 20 (the virtual
    # client refuses longer writes without response), and the PONGs came back.
    assert stats.clock_rtt_ms is not None and stats.clock_source != "none"
    assert commands >= 2 + 2 * 3  # GET_INFO, START, then at least three split PINGs


def test_two_arrays_stream_side_by_side(radio):
    left = radio.add_array(EmulatorConfig(sites=site_preset("face6"), device_id=0x11),
                           VirtualArrayConfig(name="imucap-left"))
    right = radio.add_array(EmulatorConfig(sites=site_preset("face4"), device_id=0x22),
                            VirtualArrayConfig(name="imucap-right"))
    by_address = right.address.lower().replace(":", "-")  # any spelling of the address
    with device(radio, "imucap-left") as a, device(radio, by_address) as b:
        fa = collect(a, 1.0)
        fb = [b.read(timeout_s=1.0) for _ in range(20)]
        assert a.info.sensor_count == 6 and b.info.sensor_count == 4
        assert b.address == right.address and b.name == f"ble:imucap-right ({right.address})"
    assert fa and fb and left.report.connections == right.report.connections == 1


# ---------------------------------------------------------------------- bleak's public API


def test_gatt_profile_through_bleak_public_api(radio):
    virtual = radio.add_array(EmulatorConfig(device_id=0x1AC0FACE),
                              VirtualArrayConfig(name="imucap-face"))

    async def session() -> None:
        found = await BleakScanner.find_device_by_name(
            "imucap-face", timeout=3.0, service_uuids=[SERVICE_UUID],
            backend=radio.scanner_class)
        assert found is not None and found.address == virtual.address
        async with BleakClient(found, backend=radio.client_class) as client:
            assert client.mtu_size == 247
            frames = client.services.get_characteristic(FRAMES_UUID)
            commands = client.services.get_characteristic(COMMANDS_UUID)
            assert frames.properties == ["notify"]
            assert set(commands.properties) == {"write-without-response", "write"}
            assert frames.service_uuid == SERVICE_UUID
            assert await client.read_gatt_char(SERIAL_NUMBER_UUID) == b"1ac0face"
            assert await client.read_gatt_char(MODEL_NUMBER_UUID) == b"ICM-42688-P"
            stream = bytearray()
            await client.start_notify(FRAMES_UUID, lambda _c, data: stream.extend(data))
            await client.write_gatt_char(COMMANDS_UUID, encode_frame(GetInfo(), 0),
                                         response=False)
            for _ in range(100):
                if stream.endswith(b"\x00"):
                    break
                await asyncio.sleep(0.02)
            await client.stop_notify(FRAMES_UUID)
        packets = FrameDecoder().feed(bytes(stream))
        assert isinstance(packets[0].message, DeviceInfo)
        assert packets[0].message.device_id == 0x1AC0FACE
        # Like CoreBluetooth, the virtual radio connects only to a BLEDevice its scan found.
        with pytest.raises(BleakError, match="BLEDevice"):
            await BleakClient(virtual.address, backend=radio.client_class).connect()

    asyncio.run(session())
    assert not virtual.connected


def test_scan_lists_arrays_with_name_address_and_signal(radio):
    near = radio.add_array(EmulatorConfig(), VirtualArrayConfig(name="imucap-near", rssi=-42))
    far = radio.add_array(EmulatorConfig(), VirtualArrayConfig(name="imucap-far", rssi=-81))
    radio.add_array(config=VirtualArrayConfig(name="imucap-fake", impostor=True))
    arrays = scan_arrays(0.4, radio)
    assert [(a.name, a.address, a.rssi) for a in arrays] == [
        ("imucap-far", far.address, -81), ("imucap-near", near.address, -42)]
    assert arrays[0].device.address == far.address  # bleak's BLEDevice


def test_device_uri():
    dev = open_device("ble:imucap-1a2b?rate_hz=50&scan_timeout_s=2&adapter=hci1")
    assert isinstance(dev, BleDevice)
    cfg = dev.config
    assert (cfg.target, cfg.rate_hz, cfg.scan_timeout_s, cfg.adapter) == ("imucap-1a2b", 50, 2.0,
                                                                           "hci1")
    assert open_device("ble:AA:BB:CC:DD:EE:FF").config.target == "AA:BB:CC:DD:EE:FF"
    assert dev.name == "ble:imucap-1a2b"
    for bad in ("ble:", "ble:imucap-1a2b?bogus=1", "ble:x?scan_timeout_s=0"):
        with pytest.raises(BadDeviceURIError):
            open_device(bad)


def test_virtual_array_list():
    assert parse_virtual_arrays("imucap-left:face6, imucap-right") == [
        ("imucap-left", site_preset("face6")), ("imucap-right", IMUSIC11_SITES)]
    for bad in ("", "imucap-a,imucap-a", "imucap-a:nope", "x" * 30):
        with pytest.raises(ValueError):
            parse_virtual_arrays(bad)


# ---------------------------------------------------------------------- bad input


@pytest.mark.skipif(not no_bluetooth_service(), reason="needs a machine without a Bluetooth "
                                                       "service (no D-Bus system bus)")
def test_bluetooth_absent_is_one_clear_line():
    dev = BleDevice(BleConfig(target="imucap-1a2b", scan_timeout_s=1.0))  # bleak's own backend
    with pytest.raises(DeviceError) as err:
        dev.connect()
    message = str(err.value)
    assert message.startswith("Bluetooth is off or this computer has no adapter")
    assert "\n" not in message
    with pytest.raises(DeviceError, match="Bluetooth is off"):
        scan_arrays(0.5)


def test_bluetooth_turned_off_is_one_clear_line(radio):
    radio.add_array(EmulatorConfig(), VirtualArrayConfig(name="imucap-off"))
    radio.adapter_powered = False
    with pytest.raises(DeviceError) as err:
        device(radio, "imucap-off").connect()
    assert str(err.value).startswith("Bluetooth is off or this computer has no adapter")
    assert "\n" not in str(err.value)
    with pytest.raises(DeviceError, match="Bluetooth is off"):
        scan_arrays(0.3, radio)


def test_no_array_of_that_name(radio):
    radio.add_array(EmulatorConfig(), VirtualArrayConfig(name="imucap-here"))
    with pytest.raises(DeviceNotFoundError) as err:
        device(radio, "imucap-elsewhere", scan_timeout_s=0.5).connect()
    assert "no imucap array named imucap-elsewhere nearby" in str(err.value)
    assert "imucap devices --ble" in str(err.value) and "\n" not in str(err.value)


def test_right_name_but_another_service_is_refused(radio):
    fake = radio.add_array(config=VirtualArrayConfig(name="imucap-fake", impostor=True))
    with pytest.raises(HandshakeError) as err:
        device(radio, "imucap-fake", scan_timeout_s=0.5).connect()
    assert str(err.value).startswith(f"imucap-fake ({fake.address}) is not an imucap array")
    assert "6e400001" in str(err.value)  # what it advertises instead
    # Advertising the imucap service is not enough: the GATT profile is checked too.
    liar = radio.add_array(config=VirtualArrayConfig(name="imucap-liar", impostor=True,
                                                     advertised_uuid=SERVICE_UUID))
    with pytest.raises(HandshakeError, match="is not an imucap array: it has no imucap frames"):
        device(radio, "imucap-liar").connect()
    time.sleep(0.1)
    assert not liar.connected  # refused and disconnected


# ---------------------------------------------------------------------- shutdown


def _device_threads() -> set[str]:
    return {t.name for t in threading.enumerate()} - {"imucap-ble", "imucap-virtual-radio"}


def test_clean_shutdown_and_a_second_connection(radio):
    virtual = radio.add_array(EmulatorConfig(), VirtualArrayConfig(name="imucap-twice"))
    before = _device_threads()
    dev = device(radio, "imucap-twice")
    for _ in range(2):
        dev.connect()
        assert dev.read(timeout_s=2.0) is not None
        dev.disconnect()
        time.sleep(0.1)
        assert not virtual.connected  # unsubscribed and disconnected on the BLE loop
        assert _device_threads() == before
        assert ble_loop().is_running()
    assert virtual.report.connections == 2


def test_disconnect_during_reconnection_returns_promptly(radio):
    virtual = radio.add_array(EmulatorConfig(), VirtualArrayConfig(name="imucap-gone"))
    before = _device_threads()
    dev = device(radio, "imucap-gone", scan_timeout_s=10.0)
    dev.connect()
    virtual.power_off(30.0)
    deadline = time.monotonic() + 3.0
    while dev.state != "reconnecting" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert dev.state == "reconnecting"
    time.sleep(0.3)  # a 10 s scan is under way
    start = time.monotonic()
    dev.disconnect()
    assert time.monotonic() - start < 2.0
    assert dev.state == "disconnected"
    time.sleep(0.1)
    assert _device_threads() == before


# ---------------------------------------------------------------------- without extras, CLI


def test_imports_without_bleak_or_bumble_and_says_what_to_install():
    code = (
        "import sys\n"
        "sys.modules['bumble'] = None\n"
        "sys.modules['bleak'] = None\n"
        "import imucap.firmware_bridge.emulator\n"
        "from imucap.devices import open_device\n"
        "from imucap.errors import DeviceError\n"
        "dev = open_device('ble:imucap-1a2b')\n"
        "try:\n"
        "    dev.connect()\n"
        "except DeviceError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=cli_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Bluetooth LE needs bleak: pip install 'imucap[ble]'"


@pytest.mark.skipif(not no_bluetooth_service(), reason="needs a machine without a Bluetooth "
                                                       "service (no D-Bus system bus)")
def test_cli_devices_ble_without_bluetooth_is_one_line():
    out = subprocess.run([*IMUCAP, "devices", "--ble", "--timeout", "1"], capture_output=True,
                         text=True, timeout=60, env=cli_env(), stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("imucap: error: Bluetooth is off or this computer has no adapter")


def test_cli_devices_ble_lists_virtual_arrays():
    out = subprocess.run(
        [*IMUCAP, "devices", "--ble", "--timeout", "0.5"], capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL,
        env=cli_env(**{VIRTUAL_ENV: "imucap-left:face6,imucap-right:face6"}))
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    named = {row[0]: row for row in rows if row and row[0].startswith("imucap-")}
    assert set(named) == {"imucap-left", "imucap-right"}
    assert all(row[-1] == "dBm" and int(row[-2]) < 0 for row in named.values())
    assert "ble:NAME" in out.stdout


def test_cli_stream_from_a_virtual_array():
    out = subprocess.run(
        [*IMUCAP, "stream", "--device", "ble:imucap-demo", "--print", "--duration", "2"],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
        env=cli_env(**{VIRTUAL_ENV: "imucap-demo:face6"}))
    assert out.returncode == 0, out.stderr
    assert "ble:imucap-demo (" in out.stdout
    assert "frontalis_l" in out.stdout and "mentalis" in out.stdout
    total = int(out.stdout.split("total ")[1].split(" frames")[0])
    assert total > 100
    assert "frames lost 0" in out.stdout
