"""The UDP transport against the emulator over real loopback sockets, faults included."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from imucap.devices import open_device
from imucap.devices.reorder import SeqReorder
from imucap.devices.udp import UdpConfig, UdpDevice
from imucap.errors import BadDeviceURIError, DeviceBusyError, DeviceNotFoundError
from imucap.firmware_bridge.codec import Packet
from imucap.firmware_bridge.emulator import (
    DatagramFaults,
    EmulatedArray,
    EmulatorConfig,
    FaultConfig,
    UdpRunner,
)
from imucap.firmware_bridge.protocol import DeviceInfo, Samples

from emulator_helpers import collect, free_udp_port


def board(port: int, *, net: DatagramFaults | None = None, host_timeout_s: float = 5.0,
          **config) -> UdpRunner:
    """An emulated Wi-Fi board announcing itself to 127.0.0.1:port (``net``: its network)."""
    array = EmulatedArray(EmulatorConfig(**config))
    return UdpRunner(array, send_to=("127.0.0.1", port), faults=net,
                     host_timeout_s=host_timeout_s).start()


# ---------------------------------------------------------------------- reordering


def _packets(seqs, boot=7):
    out = []
    for s in seqs:
        if s == "info":
            out.append(Packet(0, 0, 1, DeviceInfo(boot_id=boot, sites=("a",)), 10))
        else:
            out.append(Packet(s, 0, 2, None, 10))
    return out


def test_reorder_puts_frames_back_in_order_and_drops_duplicates_and_late_ones():
    ro = SeqReorder(window_s=0.03)
    ro.reset(10, boot_id=7)
    got = [p.seq for p, _ in ro.push(_packets([10, 12, 11, 13]), 0.0)]
    assert got == [10, 11, 12, 13] and ro.reordered == 1
    got = [p.seq for p, _ in ro.push(_packets([13, 12, 14]), 0.001)]
    assert got == [14] and ro.duplicates == 2
    # 15 is lost: 16 and 17 wait for it, then go on when the window passes.
    assert ro.push(_packets([16, 17]), 0.002) == []
    assert ro.pending and ro.due_in_s(0.012) == pytest.approx(0.02)
    assert ro.due(0.02) == []
    assert [p.seq for p, _ in ro.due(0.033)] == [16, 17]
    assert ro.push(_packets([15]), 0.04) == [] and ro.late == 1
    # Sequence numbers wrap at 65536.
    ro.reset(65534)
    assert [p.seq for p, _ in ro.push(_packets([65535, 65534, 0, 1]), 1.0)] == \
        [65534, 65535, 0, 1]


def test_reorder_starts_afresh_when_the_device_restarts():
    ro = SeqReorder()
    ro.reset(500, boot_id=7)
    ro.push(_packets([500, 501]), 0.0)
    restarted = _packets(["info"], boot=8)  # seq 0, a new boot: not a late packet
    assert [p.seq for p, _ in ro.push(restarted, 0.01)] == [0]
    assert [p.seq for p, _ in ro.push(_packets([1, 2]), 0.02)] == [1, 2]
    assert ro.late == 0 and ro.duplicates == 0


# ---------------------------------------------------------------------- streaming


def test_streams_with_exact_accounting_under_loss_duplication_and_reordering():
    port = free_udp_port()
    net = DatagramFaults(loss=0.04, duplicate=0.04, reorder=0.04, seed=3)
    runner = board(port, net=net, rate_hz=200, samples_per_frame=2, keep_sent=True)
    # A generous window: a busy test machine must not turn a reordered datagram into a loss.
    dev = open_device(f"udp://127.0.0.1:{port}?reorder_window_s=0.2")
    try:
        dev.connect()
        frames = collect(dev, 3.0)
        runner.faults = DatagramFaults()  # the rest arrives clean, so every loss shows
        frames += collect(dev, 0.6)
        stats = dev.stats()
    finally:
        dev.disconnect()
        runner.stop()
    net = runner.net
    assert net.lost > 3 and net.duplicated > 3 and net.reordered > 3
    assert stats.frames_lost == net.frames_lost
    assert stats.duplicates == net.frames_duplicated
    assert stats.out_of_order == net.frames_reordered
    assert stats.bad_frames == 0 and stats.reconnects == 0
    t = np.concatenate([f.device_time_us for f in frames])
    assert np.all(np.diff(t) > 0), "a duplicate or a reordered sample reached the reader"
    dt = 5000
    missing = int(((t[-1] - t[0]) // dt + 1) - len(t))
    assert missing == stats.samples_lost > 0
    assert frames[0].sites == runner.array.config.sites
    assert stats.clock_rtt_ms is not None  # PING/PONG crossed the network both ways


def test_two_boards_on_one_port_are_told_apart_and_strangers_are_ignored():
    port = free_udp_port()
    a = board(port, device_id=0xA1, sites=("frontalis_l", "zygomaticus_major_l"))
    b = board(port, device_id=0xB2, sites=("frontalis_r", "zygomaticus_major_r", "mentalis"))
    dev_b = open_device(f"udp://127.0.0.1:{port}?device_id=0xb2")
    dev_a = open_device(f"udp://127.0.0.1:{port}?device_id={0xA1}")
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        dev_b.connect()
        dev_a.connect()
        for junk in (b"hello", b"\x00\x00", os.urandom(64) + b"\x00", b"GET / HTTP/1.1\r\n"):
            stranger.sendto(junk, ("127.0.0.1", port))
        fa, fb = collect(dev_a, 1.0), collect(dev_b, 0.5)
        sa, sb = dev_a.stats(), dev_b.stats()
    finally:
        stranger.close()
        dev_a.disconnect()
        dev_b.disconnect()
        a.stop()
        b.stop()
    assert dev_a.info.device_id == 0xA1 and dev_b.info.device_id == 0xB2
    assert fa[-1].sites == ("frontalis_l", "zygomaticus_major_l")
    assert fb[-1].sites == ("frontalis_r", "zygomaticus_major_r", "mentalis")
    assert sa.foreign_packets == sb.foreign_packets == 4
    assert sa.bad_frames == sb.bad_frames == 0 and sa.frames_lost == sb.frames_lost == 0


def test_a_board_that_restarts_is_taken_again_and_the_host_can_take_over():
    port = free_udp_port()
    faults = FaultConfig(disconnect_every_s=1.2, disconnect_s=0.3, seed=1)
    runner = board(port, host_timeout_s=0.6, faults=faults)
    dev = UdpDevice(UdpConfig(host="127.0.0.1", port=port, handshake_timeout_s=3.0))
    try:
        dev.connect()
        first_boot = dev.info.boot_id
        collect(dev, 2.5)
        runner.array.stop_faults()
        # The board may be off for 0.3 s more, then announces once a second: wait for it.
        frames, deadline = collect(dev, 1.0), time.monotonic() + 5.0
        while dev.stats().state != "streaming" and time.monotonic() < deadline:
            frames += collect(dev, 0.5)
        frames += collect(dev, 0.3)
        stats = dev.stats()
    finally:
        dev.disconnect()
    try:
        assert runner.array.report.disconnects >= 1
        assert stats.reconnects >= 1 and stats.state == "streaming"
        assert dev.info.boot_id != first_boot and frames[-1].boot_id == dev.info.boot_id
        # The host went away (STOP, then silence): the board gives it up, announces again,
        # and a new host takes it.
        time.sleep(1.5)
        assert runner.net.host_timeouts >= 1
        again = open_device(f"udp://127.0.0.1:{port}")
        with again:
            assert len(collect(again, 0.5)) > 10
    finally:
        runner.stop()


def test_a_board_that_waits_to_be_contacted_is_reached_with_peer():
    runner = UdpRunner(EmulatedArray(EmulatorConfig(rate_hz=100))).start()
    host, port = runner.address
    dev = open_device(f"udp://127.0.0.1:{free_udp_port()}?peer={host}:{port}")
    try:
        with dev:
            frames = collect(dev, 0.8)
    finally:
        runner.stop()
    assert sum(f.n_samples for f in frames) > 40


# ---------------------------------------------------------------------- bad input


def test_a_port_in_use_and_a_silent_port_each_say_what_to_do():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        busy = other.getsockname()[1]
        with pytest.raises(DeviceBusyError, match=f"UDP port {busy} is already in use"):
            open_device(f"udp://127.0.0.1:{busy}").connect()
    port = free_udp_port()
    dev = open_device(f"udp://127.0.0.1:{port}?handshake_timeout_s=0.4")
    with pytest.raises(DeviceNotFoundError, match="no imucap board announced itself"):
        dev.connect()
    runner = board(port, device_id=0x11)
    try:
        dev = open_device(f"udp://127.0.0.1:{port}?device_id=0x12&handshake_timeout_s=1.5")
        with pytest.raises(DeviceNotFoundError, match=r"0x00000012.*heard: 0x00000011"):
            dev.connect()
    finally:
        runner.stop()


@pytest.mark.parametrize("uri, message", [
    ("udp://0.0.0.0:9000?device_id=left", "is not a number"),
    ("udp://0.0.0.0:9000?port=9001", "unknown device option|not as"),
    ("udp://0.0.0.0:70000", "out of range"),
    ("udp://0.0.0.0:9000?loss=1", "unknown device option"),
])
def test_bad_udp_uris(uri, message):
    with pytest.raises(BadDeviceURIError, match=message):
        open_device(uri)


def test_udp_uri_defaults():
    dev = open_device("udp://0.0.0.0")
    assert (dev.config.host, dev.config.port, dev.config.device_id) == ("0.0.0.0", 9000, None)
    dev = open_device("udp://127.0.0.1:9001?device_id=0x1ac0face&reorder_window_s=0.05")
    assert dev.config.device_id == 0x1AC0FACE and dev.config.reorder_window_s == 0.05


def test_cli_streams_an_emulated_wifi_board_and_reports_a_busy_port():
    port = free_udp_port()
    emu = subprocess.Popen(
        [sys.executable, "-m", "imucap", "emulate", "--udp-to", f"127.0.0.1:{port}",
         "--device-id", "0x2", "--udp-loss", "0.03", "--duration", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "imucap", "stream", "--device",
             f"udp://127.0.0.1:{port}?device_id=0x2", "--duration", "3", "--print"],
            capture_output=True, text=True, timeout=60)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
            holder.bind(("127.0.0.1", 0))
            busy = holder.getsockname()[1]
            refused = subprocess.run(
                [sys.executable, "-m", "imucap", "stream", "--device",
                 f"udp://127.0.0.1:{busy}", "--duration", "1", "--print"],
                capture_output=True, text=True, timeout=60)
    finally:
        emu.terminate()
        emu.wait(timeout=10)
    assert out.returncode == 0, out.stderr
    assert "board 0x00000002" in out.stdout and "duplicates 0" in out.stdout
    lost = int(out.stdout.split("frames lost ")[1].split()[0])
    assert lost > 0  # the emulator lost datagrams on purpose, and the host saw it
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert f"UDP port {busy} is already in use" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_announcing_emulator_still_answers_raw_commands():
    """The UDP runner's announcements are ordinary DEVICE_INFO frames (PROTOCOL.md 6)."""
    from imucap.firmware_bridge.codec import FrameDecoder

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as host:
        host.bind(("127.0.0.1", 0))
        host.settimeout(3.0)
        runner = board(host.getsockname()[1], device_id=0x77, host_timeout_s=0.0)
        try:
            first = FrameDecoder().feed(host.recv(65536))
        finally:
            runner.stop()
    assert isinstance(first[0].message, DeviceInfo) and first[0].message.device_id == 0x77
    assert not first[0].message.streaming
    assert not any(isinstance(p.message, Samples) for p in first)
