"""The emulator over TCP and UDP sockets on loopback, read by the TCP device and a raw client."""

from __future__ import annotations

import socket
import time

import numpy as np

from imucap.devices import open_device
from imucap.devices.tcp import TcpConfig, TcpDevice
from imucap.firmware_bridge.codec import FrameDecoder, encode_frame
from imucap.firmware_bridge.emulator import (
    EmulatedArray,
    EmulatorConfig,
    FaultConfig,
    TcpRunner,
    UdpRunner,
)
from imucap.firmware_bridge.protocol import Ack, DeviceInfo, GetInfo, Samples, Start


def test_tcp_device_streams_and_reconnects_after_disconnects():
    faults = FaultConfig(disconnect_every_s=1.5, disconnect_s=0.4, drop=0.05, seed=4)
    array = EmulatedArray(EmulatorConfig(faults=faults, keep_sent=True))
    with TcpRunner(array) as runner:
        host, port = runner.address
        dev = TcpDevice(TcpConfig(host=host, port=port, reconnect_max_backoff_s=0.2))
        frames = []
        with dev:
            end = time.monotonic() + 4.5
            while time.monotonic() < end:
                try:
                    frames.append(dev.read(timeout_s=0.2))
                except TimeoutError:
                    pass
            array.stop_faults()
            time.sleep(0.5)
            stats = dev.stats()
    rep = array.report
    assert rep.disconnects >= 1  # the schedule is random; one is enough to prove it
    assert stats.reconnects == rep.disconnects
    assert stats.frames_lost == rep.dropped_frames
    assert len({f.boot_id for f in frames}) == rep.disconnects + 1


def test_tcp_uri_opens_the_same_device():
    with TcpRunner(EmulatedArray(EmulatorConfig())) as runner:
        host, port = runner.address
        with open_device(f"tcp://{host}:{port}") as dev:
            frame = dev.read(timeout_s=2.0)
    assert frame.accel.shape == (1, 11, 3)


def test_udp_emulator_sends_whole_frames_per_datagram_to_the_commander():
    array = EmulatedArray(EmulatorConfig(rate_hz=1000, sites=tuple(f"s{i}" for i in range(16))))
    with UdpRunner(array) as runner:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(2.0)
        sock.sendto(encode_frame(GetInfo(), 0) + encode_frame(Start(), 1), runner.address)
        decoder = FrameDecoder()
        packets = []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            datagram = sock.recv(65536)
            assert datagram.endswith(b"\x00")  # datagrams never split a frame
            # Frames are packed up to the size limit; a larger frame travels alone.
            assert len(datagram) <= runner.max_datagram or datagram.count(b"\x00") == 1
            packets += decoder.feed(datagram)
        sock.close()
    assert isinstance(packets[0].message, DeviceInfo)
    assert isinstance(packets[1].message, Ack)
    samples = [p.message for p in packets if isinstance(p.message, Samples)]
    assert len(samples) > 50
    t = np.concatenate([s.timestamps_us() for s in samples])
    assert np.all(np.diff(t) == 1000)  # loopback: nothing lost, 1 kHz
    assert decoder.counters.bad_frames == 0
