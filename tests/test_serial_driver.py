"""The serial driver against the emulator over real pseudo-terminals: data, faults, errors."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import numpy as np
import pytest

from imucap.devices import open_device
from imucap.devices.serial import SerialConfig, SerialDevice
from imucap.errors import (
    DeviceBusyError,
    DeviceError,
    DeviceNotFoundError,
    HandshakeError,
    StaleDataError,
)
from imucap.firmware_bridge.emulator import FaultConfig
from imucap.firmware_bridge.protocol import ProtocolVersionError
from imucap.firmware_bridge.sites import IMUSIC11_SITES

from emulator_helpers import collect, served_pty, wire_frames


def device_on(port: str, **kw) -> SerialDevice:
    return SerialDevice(SerialConfig(port=port, **kw))


def drain_after(dev, runner, seconds: float = 0.4) -> list:
    """Stop the faults, let a clean tail through, then take what is still queued."""
    runner.array.stop_faults()
    return collect(dev, seconds)


def test_clean_stream_is_complete_ordered_and_in_si_units(pty_emulator):
    with device_on(pty_emulator.port) as dev:
        assert dev.info.sites == IMUSIC11_SITES
        assert dev.info.chip == "ICM-42688-P"
        frames = collect(dev, 2.0)
        frames += drain_after(dev, pty_emulator)
        stats = dev.stats()
    sent = pty_emulator.array.report.sent
    got = wire_frames(frames)
    assert len(got) >= 150
    assert got == sent[: len(got)]
    assert len(sent) - len(got) <= 2  # the last frames may still be on their way at stop
    assert stats.frames_lost == stats.samples_lost == stats.bad_frames == 0
    accel = np.concatenate([f.accel for f in frames])
    assert accel.shape[1:] == (11, 3)
    # Face sensors at rest-ish under gravity: |a| close to 9.81 m/s².
    assert np.allclose(np.linalg.norm(accel, axis=-1).mean(), 9.81, atol=0.15)
    gyro = np.concatenate([f.gyro for f in frames])
    assert 0.01 < np.abs(gyro).mean() < 2.0  # rad/s, not deg/s
    t = np.concatenate([f.device_time_us for f in frames])
    assert np.all(np.diff(t) == 10_000)
    assert all(f.sensor_ok.all() for f in frames)


def test_every_fault_kind_is_counted_exactly_and_intact_frames_arrive_in_order(tmp_path):
    faults = FaultConfig(drop=0.03, corrupt=0.03, garbage=0.03, unknown=0.03,
                         stall_every_s=2.0, stall_s=0.8, disconnect_every_s=3.0,
                         disconnect_s=0.5, seed=11)
    with served_pty(tmp_path, faults=faults, keep_sent=True, seed=3) as runner:
        dev = device_on(runner.port, stall_threshold_s=0.4, reconnect_max_backoff_s=0.2)
        with dev:
            frames = collect(dev, 9.0)
            frames += drain_after(dev, runner, 1.2)  # longer than a stall
            stats = dev.stats()
        injected = runner.array.report
    # Every kind of fault happened, so the comparison below means something.
    assert injected.dropped_frames and injected.corrupted_frames and injected.garbage_chunks
    assert injected.unknown_messages and injected.stalls and injected.disconnects
    assert stats.frames_lost == injected.lost_frames
    assert stats.bad_frames == injected.bad_frames
    assert stats.bytes_discarded == injected.corrupted_bytes + injected.garbage_bytes
    assert stats.unknown_types == injected.unknown_messages
    assert stats.stalls == injected.stalls
    assert stats.reconnects == injected.disconnects
    got = wire_frames(frames)
    assert got == injected.sent[: len(got)]
    assert len(injected.sent) - len(got) <= 2
    assert len({f.boot_id for f in frames}) == injected.disconnects + 1


def test_lost_frames_are_flagged_on_the_next_frame(tmp_path):
    faults = FaultConfig(drop=0.2, seed=5)
    with served_pty(tmp_path, faults=faults) as runner, device_on(runner.port) as dev:
        frames = collect(dev, 1.5)
        frames += drain_after(dev, runner)
        stats = dev.stats()
    assert sum(f.lost_before for f in frames) == stats.frames_lost == \
        runner.array.report.dropped_frames > 0
    for f in frames:  # a batch never spans a loss: its samples are evenly spaced
        assert np.all(np.diff(f.device_time_us) == 10_000)
    assert stats.samples_lost == stats.frames_lost  # one sample per frame at 100 Hz


def test_set_rate_changes_rate_and_batching(tmp_path):
    with served_pty(tmp_path) as runner, device_on(runner.port, rate_hz=400) as dev:
        assert dev.info.rate_hz == 400
        frames = collect(dev, 1.0)
    assert {f.n_samples // f.wire_frames for f in frames} == {4}
    t = np.concatenate([f.device_time_us for f in frames])
    assert np.all(np.diff(t) == 2500)


def test_device_clock_is_mapped_to_host_time_with_drift(tmp_path):
    with served_pty(tmp_path, clock_drift_ppm=150.0) as runner, device_on(
            runner.port, ping_interval_s=0.5) as dev:
        frames = collect(dev, 12.5)
        drift = dev.clock.drift_ppm
    late = [f for f in frames if f.arrival_time_s > frames[0].arrival_time_s + 11.0]
    truth = np.concatenate([runner.array.host_time_of(f.device_time_us) for f in late])
    mapped = np.concatenate([f.host_time_s for f in late])
    assert np.median(np.abs(mapped - truth)) < 2e-3
    assert abs(drift - 150.0) < 30.0


def test_newer_minor_protocol_is_accepted(tmp_path):
    with served_pty(tmp_path, protocol_version=(1, 5)) as runner, device_on(runner.port) as dev:
        assert dev.info.proto_minor == 5
        assert dev.read(timeout_s=2.0).n_sensors == 11


def test_newer_major_protocol_is_refused_clearly(tmp_path):
    with served_pty(tmp_path, protocol_version=(2, 0)) as runner:
        with pytest.raises(ProtocolVersionError, match="upgrade imucap"):
            device_on(runner.port).connect()


def test_read_apis_share_one_stream(pty_emulator):
    dev = device_on(pty_emulator.port)
    assert dev.features["accel"]["shape"] == (None, 3)  # known before connecting
    with pytest.raises(DeviceError, match="not connected"):
        dev.read(timeout_s=0.1)
    seen = []
    got_async = []
    with dev:
        assert dev.features["accel"]["shape"] == (11, 3)
        unregister = dev.add_callback(seen.append)
        first = dev.read(timeout_s=2.0)
        latest = dev.read_latest(max_age_s=1.0)
        assert latest.seq >= first.seq

        async def consume():
            async def on_frame(frame):
                got_async.append(frame.seq)

            undo = dev.add_callback(on_frame)
            items = [await dev.async_read(timeout_s=2.0)]
            async for frame in dev:
                items.append(frame)
                if len(items) == 5:
                    break
            await asyncio.sleep(0.1)
            undo()
            return items

        items = asyncio.run(consume())
        assert [f.seq for f in items] == sorted(f.seq for f in items)
        assert items[0].seq > first.seq
        unregister()
        count = len(seen)
        time.sleep(0.2)
        assert len(seen) == count  # unregistered: no more calls
        assert got_async  # the coroutine callback ran on its loop
    assert seen and seen[0].seq <= first.seq


def test_read_latest_refuses_stale_frames(tmp_path):
    with served_pty(tmp_path) as runner, device_on(runner.port, silence_timeout_s=10) as dev:
        dev.read(timeout_s=2.0)
        runner.array.config.faults.stall_every_s = 0.0
        runner.array.link_closed()  # the device stops streaming; the port stays open
        time.sleep(0.5)
        with pytest.raises(StaleDataError, match="old"):
            dev.read_latest(max_age_s=0.2)
        assert dev.read_latest().n_sensors == 11


def test_slow_consumer_loses_oldest_frames_counted(tmp_path):
    with served_pty(tmp_path) as runner, device_on(runner.port, queue_size=10) as dev:
        time.sleep(0.6)
        frames = [dev.read(timeout_s=1.0) for _ in range(10)]
        assert dev.stats().queue_drops > 0
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)


def test_missing_port_is_one_clear_line(tmp_path):
    with pytest.raises(DeviceNotFoundError, match="does not exist.*imucap devices"):
        device_on(str(tmp_path / "ttyNOPE")).connect()


def test_missing_usb_id_is_one_clear_line():
    with pytest.raises(DeviceNotFoundError, match="no USB serial device 1234:abcd"):
        open_device("serial:1234:abcd").connect()


def test_busy_port_is_refused(pty_emulator):
    with device_on(pty_emulator.port):
        with pytest.raises(DeviceBusyError, match="busy"):
            device_on(pty_emulator.port).connect()


def test_not_a_serial_port(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("hello")
    with pytest.raises(DeviceError, match="not a serial port"):
        device_on(str(path)).connect()


def test_silent_port_times_out_with_advice():
    master, slave = os.openpty()
    try:
        dev = device_on(os.ttyname(slave), handshake_timeout_s=0.5)
        with pytest.raises(HandshakeError, match="nothing answered"):
            dev.connect()
    finally:
        os.close(master)
        os.close(slave)


def test_port_with_foreign_bytes_times_out_with_advice():
    master, slave = os.openpty()
    stop = threading.Event()

    def chatter():
        while not stop.is_set():
            os.write(master, b"hello from another gadget\r\n")
            time.sleep(0.05)

    t = threading.Thread(target=chatter, daemon=True)
    t.start()
    try:
        dev = device_on(os.ttyname(slave), handshake_timeout_s=0.6)
        with pytest.raises(HandshakeError, match="bytes arrived.*no DEVICE_INFO"):
            dev.connect()
    finally:
        stop.set()
        t.join()
        os.close(master)
        os.close(slave)


def test_device_gone_for_good_fails_readers_clearly(tmp_path):
    with served_pty(tmp_path) as runner:
        dev = device_on(runner.port, reconnect_timeout_s=0.5)
        dev.connect()
        dev.read(timeout_s=2.0)
        runner.stop()  # unplugged, and never comes back
        with pytest.raises(DeviceError, match="did not come back"):
            while True:
                dev.read(timeout_s=3.0)
        dev.disconnect()


def test_device_that_streams_on_power_up_is_joined_mid_stream(tmp_path):
    with served_pty(tmp_path, autostart=True) as runner:
        time.sleep(0.3)  # frames are already flowing before the host opens the port
        with device_on(runner.port) as dev:
            frames = collect(dev, 1.0)
            stats = dev.stats()
    assert len(frames) > 50
    assert stats.frames_lost == stats.samples_lost == stats.bad_frames == 0


def test_a_failed_sensor_is_flagged_and_has_no_rate(tmp_path):
    with served_pty(tmp_path, dead_sensors=(3,)) as runner, device_on(runner.port) as dev:
        frames = collect(dev, 1.6)
        rates = dev.stats().sensor_rates_hz
    assert all(not f.sensor_ok[3] and f.sensor_ok.sum() == 10 for f in frames)
    assert rates[3] == 0.0 and all(90 < r < 110 for i, r in enumerate(rates) if i != 3)


def test_device_that_goes_quiet_after_start_is_reconnected(tmp_path):
    with served_pty(tmp_path) as runner:
        dev = device_on(runner.port, silence_timeout_s=0.5, ping_interval_s=0)
        with dev:
            dev.read(timeout_s=2.0)
            runner.array.link_closed()  # the firmware hangs: the port stays, the data stops
            deadline = time.monotonic() + 5
            while dev.stats().reconnects == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert dev.stats().reconnects == 1
            assert "no data for 0.5 s" in dev.stats().last_error
            dev.read(timeout_s=2.0)  # streaming again after the new handshake
