"""Several devices as one array: the merge on its own, and two emulated boards over real UDP."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from imucap.devices import open_device
from imucap.devices.array import ArrayConfig, ArrayDevice, ArrayMerger, array_from_uri
from imucap.errors import BadDeviceURIError, DeviceError
from imucap.firmware_bridge.emulator import EmulatedArray, EmulatorConfig, UdpRunner
from imucap.firmware_bridge.emulator.motion import SyntheticMotion
from imucap.frames import ImuFrame

from emulator_helpers import free_udp_port

LEFT = ("frontalis_l", "zygomaticus_major_l", "buccinator_l")
RIGHT = ("frontalis_r", "zygomaticus_major_r", "buccinator_r", "mentalis")


def frame(t: np.ndarray, sites: tuple[str, ...], value, ok=None, arrival=None) -> ImuFrame:
    """A part's frame whose every value is ``value(t)`` (so interpolation is checkable)."""
    n, s = len(t), len(sites)
    v = np.broadcast_to(np.asarray(value(t), np.float32)[:, None, None], (n, s, 3)).copy()
    return ImuFrame(seq=0, boot_id=1, device_time_us=(t * 1e6).astype(np.int64),
                    host_time_s=np.asarray(t, float),
                    arrival_time_s=float(t[-1]) if arrival is None else arrival,
                    accel=v, gyro=v * 2, mag=None, quat=None,
                    sensor_ok=np.ones(s, bool) if ok is None else ok, sites=sites)


def merged(frames: list[ImuFrame]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.concatenate([f.host_time_s for f in frames])
    accel = np.concatenate([f.accel for f in frames])
    ok = np.concatenate([np.broadcast_to(f.sensor_ok, (f.n_samples, f.n_sensors))
                         for f in frames])
    return t, accel, ok


# ---------------------------------------------------------------------- the merge


def test_parts_on_their_own_grids_are_interpolated_onto_one():
    m = ArrayMerger([("left", LEFT, 100.0), ("right", RIGHT, 100.0)], 100.0, 0.1)
    # The parts sample at different instants (3.7 ms apart); each value is a line in time.
    tl = 10.0 + 0.01 * np.arange(50)
    tr = 10.0037 + 0.01 * np.arange(50)
    m.add(0, frame(tl, LEFT, lambda t: 3 * (t - 10)))
    m.add(1, frame(tr, RIGHT, lambda t: -5 * (t - 10) + 1))
    out = m.pop(now=10.55)  # nothing overdue yet
    t, accel, ok = merged(out)
    assert ok.all() and out[0].sites == LEFT + RIGHT
    # The grid takes the left part's phase: the right part's next sample is then 3.7 ms away
    # rather than 6.3 ms (an instant goes out once every part has a sample at or after it).
    # (less a 2 ms margin, so that the left part's samples are never just missed).
    assert t[0] == pytest.approx(10.008) and np.allclose(np.diff(t), 0.01)
    assert t[-1] <= min(tl[-1], tr[-1])  # nothing beyond what every part has delivered
    np.testing.assert_allclose(accel[:, 0, 0], 3 * (t - 10), atol=1e-5)
    np.testing.assert_allclose(accel[:, 5, 2], -5 * (t - 10) + 1, atol=1e-5)
    np.testing.assert_allclose(out[0].gyro[:, 0, 0], 2 * 3 * (t[:out[0].n_samples] - 10),
                               atol=1e-5)
    assert m.partial_samples == 0 and m.samples == len(t)


def test_a_lagging_part_is_waited_for_then_marked_missing():
    m = ArrayMerger([("left", LEFT, 100.0), ("right", RIGHT, 100.0)], 100.0, 0.1)
    t = 5.0 + 0.01 * np.arange(30)
    m.add(0, frame(t, LEFT, lambda x: x))
    m.add(1, frame(t[:10], RIGHT, lambda x: x))
    first = m.pop(now=5.1)
    assert merged(first)[0][-1] == pytest.approx(5.088)  # as far as both parts reach
    assert m.pop(now=5.15) == []  # the right part may still come
    late = m.pop(now=5.30)  # 0.1 s overdue: the left part's instants go out without it
    t2, accel, ok = merged(late)
    assert t2[0] == pytest.approx(5.098) and t2[-1] == pytest.approx(5.198)
    assert ok[:, :3].all() and not ok[:, 3:].any() and np.isnan(accel[:, 3:]).all()
    assert m.partial_samples == len(t2)
    # The right part comes back: complete samples again, and a gap is not interpolated over.
    t3 = 5.0 + 0.01 * np.arange(30, 60)
    m.add(0, frame(t3, LEFT, lambda x: x))
    m.add(1, frame(t3, RIGHT, lambda x: x))
    t4, _, ok4 = merged(m.pop(now=5.9))
    assert t4[0] == pytest.approx(5.208)
    assert not ok4[t4 < 5.295, 3:].any() and ok4[t4 > 5.305].all()


def test_a_sensor_fault_in_one_part_stays_that_sensors_alone():
    m = ArrayMerger([("left", LEFT, 100.0), ("right", RIGHT, 100.0)], 50.0, 0.1)
    t = 1.0 + 0.01 * np.arange(20)
    m.add(0, frame(t, LEFT, lambda x: x, ok=np.array([True, False, True])))
    m.add(1, frame(t, RIGHT, lambda x: x))
    out = m.pop(now=2.0)
    assert np.allclose(np.diff(merged(out)[0]), 0.02)  # the array's own rate
    assert out[0].sensor_ok.tolist() == [True, False, True, True, True, True, True]


# ---------------------------------------------------------------------- URIs


def test_array_uri_gives_each_part_its_own_options():
    dev = array_from_uri("array:left=udp://127.0.0.1:9101?device_id=0x1&reorder_window_s=0.05,"
                         "right=udp://127.0.0.1:9101?device_id=2,partial_timeout_s=0.2,"
                         "rate_hz=200")
    assert list(dev.parts) == ["left", "right"]
    assert dev.parts["left"].config.device_id == 1
    assert dev.parts["left"].config.reorder_window_s == 0.05
    assert dev.parts["right"].config.device_id == 2
    assert dev.config.partial_timeout_s == 0.2 and dev.config.rate_hz == 200
    assert isinstance(open_device("array:a=emulator:face4"), ArrayDevice)


@pytest.mark.parametrize("uri, message", [
    ("array:", "needs its parts"),
    ("array:left", "needs NAME=URI"),
    ("array:left=emulator:,left=emulator:", "named twice"),
    ("array:left=array:x=emulator:", "cannot be an array"),
    ("array:left=emulator:,right=bogus:thing", "array part 'right': unknown device scheme"),
    ("array:left=emulator:,partial_timeout_s=soon", "not a number"),
])
def test_bad_array_uris(uri, message):
    with pytest.raises(BadDeviceURIError, match=message):
        open_device(uri)


# ---------------------------------------------------------------------- two boards


class _BoardView:
    """What one board's sensors feel: the world's motion, read at the board's own clock."""

    def __init__(self, world: SyntheticMotion) -> None:
        self.world = world
        self.array: EmulatedArray | None = None

    def sample(self, t_s: np.ndarray):
        host = self.array.host_time_of(np.round(np.asarray(t_s) * 1e6).astype(np.int64))
        return self.world.sample(np.asarray(host, float))


def _board(port: int, sites, device_id: int, taps, tap_site: str, **config) -> UdpRunner:
    view = _BoardView(SyntheticMotion(sites, rate_hz=500, seed=device_id, taps_s=taps,
                                      tap_site=tap_site))
    array = EmulatedArray(EmulatorConfig(sites=sites, device_id=device_id, rate_hz=500,
                                         **config), motion=view)
    view.array = array
    return UdpRunner(array, send_to=("127.0.0.1", port)).start()


def _peak_times(t: np.ndarray, x: np.ndarray, taps) -> list[float]:
    """Sub-sample time of the largest |x| near each tap."""
    out = []
    for tap in taps:
        sel = np.flatnonzero(np.abs(t - tap) < 0.015)
        if len(sel) < 3:
            continue
        i = sel[np.argmax(x[sel])]
        y0, y1, y2 = x[i - 1], x[i], x[i + 1]
        shift = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
        out.append(t[i] + shift * (t[i + 1] - t[i]))
    return out


def test_two_boards_with_their_own_clocks_stream_as_one_array_on_one_clock():
    """A tap felt by both boards at one instant lines up in the merged array.

    The boards' clocks differ by 85 s and drift by +60 and -45 ppm; each board samples the
    same world at its own clock, sends over UDP to one port, and the array puts both onto the
    host clock. The tap's acceleration peaks on the left brow and on the chin must coincide.
    """
    port = free_udp_port()
    taps = tuple(time.monotonic() + 1.5 + 0.4 * k for k in range(6))
    left = _board(port, LEFT, 0x1E, taps, "frontalis_l", clock_offset_s=5.0,
                  clock_drift_ppm=60.0)
    right = _board(port, RIGHT, 0x21, taps, "mentalis", clock_offset_s=90.0,
                   clock_drift_ppm=-45.0)
    dev = open_device(f"array:left=udp://127.0.0.1:{port}?device_id=0x1e,"
                      f"right=udp://127.0.0.1:{port}?device_id=0x21")
    frames = []
    try:
        with dev:
            assert dev.info.sites == LEFT + RIGHT and dev.info.rate_hz == 500
            end = taps[-1] + 0.3
            while time.monotonic() < end:
                frames.append(dev.read(timeout_s=1.0))
            stats, parts = dev.stats(), dev.part_stats()
    finally:
        left.stop()
        right.stop()
    t, accel, ok = merged(frames)
    assert np.allclose(np.diff(t), 0.002)  # one regular grid, nothing twice, nothing skipped
    assert ok.all() and stats.partial_samples == 0 and stats.state == "streaming"
    assert parts["left"].clock_drift_ppm != parts["right"].clock_drift_ppm
    brow = np.linalg.norm(accel[:, LEFT.index("frontalis_l")], axis=1)
    chin = np.linalg.norm(accel[:, len(LEFT) + RIGHT.index("mentalis")], axis=1)
    brow_peaks, chin_peaks = _peak_times(t, brow, taps), _peak_times(t, chin, taps)
    assert len(brow_peaks) == len(chin_peaks) == len(taps)
    between = np.abs(np.subtract(brow_peaks, chin_peaks))
    assert between.max() < 0.001, between  # one clock: the same instant on both boards
    assert np.abs(np.subtract(brow_peaks, taps)).max() < 0.002


def test_one_board_going_away_leaves_the_other_streaming():
    port = free_udp_port()
    left = _board(port, LEFT, 0x1E, (), "frontalis_l")
    right = _board(port, RIGHT, 0x21, (), "mentalis")
    dev = ArrayDevice(ArrayConfig(parts={
        "left": f"udp://127.0.0.1:{port}?device_id=0x1e&silence_timeout_s=0.5",
        "right": f"udp://127.0.0.1:{port}?device_id=0x21&silence_timeout_s=0.5"},
        partial_timeout_s=0.1))
    try:
        with dev:
            time.sleep(0.5)
            right.stop()
            time.sleep(1.2)
            while True:  # drain what queued meanwhile
                try:
                    dev.read(timeout_s=0.0)
                except TimeoutError:
                    break
            later = [dev.read(timeout_s=1.0) for _ in range(20)]
            stats = dev.stats()
    finally:
        left.stop()
    _, accel, ok = merged(later)
    assert ok[:, :3].all() and not ok[:, 3:].any()
    assert np.isfinite(accel[:, :3]).all() and np.isnan(accel[:, 3:]).all()
    assert stats.state == "partial" and stats.partial_samples >= 20
    assert "right: link lost" in stats.last_error


def test_the_same_site_on_two_boards_is_refused():
    port = free_udp_port()
    a = _board(port, LEFT, 0x1, (), "frontalis_l")
    b = _board(port, ("mentalis", "frontalis_l"), 0x2, (), "mentalis")
    dev = open_device(f"array:a=udp://127.0.0.1:{port}?device_id=1,"
                      f"b=udp://127.0.0.1:{port}?device_id=2")
    try:
        with pytest.raises(DeviceError, match="site 'frontalis_l' is on both array parts"):
            dev.connect()
    finally:
        a.stop()
        b.stop()
    assert not any(p.is_connected for p in dev.parts.values())


def test_a_part_that_cannot_connect_is_named():
    port = free_udp_port()
    dev = open_device(f"array:left=emulator:face4,right=udp://127.0.0.1:{port}"
                      f"?handshake_timeout_s=0.3")
    with pytest.raises(DeviceError, match="array part 'right': no imucap board"):
        dev.connect()
    assert not dev.parts["left"].is_connected


def test_cli_streams_a_serial_board_and_a_wifi_board_as_one_array():
    port = free_udp_port()
    emu = subprocess.Popen(
        [sys.executable, "-m", "imucap", "emulate", "--udp-to", f"127.0.0.1:{port}",
         "--sensors", "3", "--duration", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "imucap", "stream", "--device",
             f"array:left=emulator:face4,right=udp://127.0.0.1:{port}", "--duration", "3",
             "--print"], capture_output=True, text=True, timeout=60)
    finally:
        emu.terminate()
        emu.wait(timeout=10)
    assert out.returncode == 0, out.stderr
    assert "x7 @ 100 Hz" in out.stdout
    for site in ("frontalis_l", "mentalis", "s00", "s02"):
        assert site in out.stdout
    assert "array   0 samples partial" in out.stdout or "samples partial" in out.stdout
    assert "  left      " in out.stdout and "  right     " in out.stdout
