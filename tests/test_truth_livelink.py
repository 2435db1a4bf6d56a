"""Live Link Face as the truth source: frames, strangers, other versions, gaps in a recording."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from imucap.devices import open_device
from imucap.record.recorder import Recorder
from imucap.record.session_file import SessionWriter, read_session
from imucap.sinks.livelink import encode_packet
from imucap.truth import TruthError, open_truth
from imucap.truth.emulated_phone import EmulatedPhone
from imucap.truth.livelink import LiveLinkTruth


def send(port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, ("127.0.0.1", port))


def read_all(truth: LiveLinkTruth, n: int, timeout_s: float = 3.0) -> list:
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        frame = truth.read(0.1)
        if frame is not None:
            out.append(frame)
    return out


def test_frames_carry_the_phone_timecode_and_arrival():
    weights = np.linspace(0, 1, 52, dtype=np.float32)
    with LiveLinkTruth("127.0.0.1", 0) as truth:
        port = truth.address[1]
        for k in range(3):
            send(port, encode_packet(weights, frame_number=600 + k, subframe=0.5,
                                     rate=(60, 1), device_id="phone-A"))
        frames = read_all(truth, 3)
        assert [f.seq for f in frames] == [0, 1, 2]
        assert [f.source_time_s for f in frames] == pytest.approx(
            [(600.5 + k) / 60 for k in range(3)])
        assert all(f.live and f.face for f in frames)
        np.testing.assert_allclose(frames[0].weights, weights, atol=1e-6)
        assert truth.stats().state == "streaming"
        assert truth.metadata()["sender"] == "phone-A"


def test_other_senders_and_other_versions_are_counted_not_recorded():
    w = np.zeros(52, np.float32)
    with LiveLinkTruth("127.0.0.1", 0) as truth:
        port = truth.address[1]
        send(port, encode_packet(w, frame_number=1, device_id="phone-A"))
        send(port, encode_packet(w, frame_number=2, device_id="phone-B"))  # a stranger
        old = bytearray(encode_packet(w, frame_number=3, device_id="phone-A"))
        old[0] = 5  # a phone running another Live Link version
        send(port, bytes(old))
        send(port, encode_packet(w, frame_number=4, device_id="phone-A"))
        frames = read_all(truth, 2)
        time.sleep(0.2)
        stats = truth.stats()
    assert [round(f.source_time_s * 60) for f in frames] == [1, 4]
    assert stats.strangers == 1 and stats.rejected == 1
    assert "another Live Link version" in stats.last_error
    assert "update the app" in stats.last_error


def test_a_truth_stream_that_stops_is_a_gap_and_the_recording_goes_on(tmp_path):
    device = open_device("emulator:face4")
    truth = LiveLinkTruth("127.0.0.1", 0, gap_timeout_s=0.3).open()
    device.connect()
    writer = SessionWriter(tmp_path / "gap.mcap", session={"subject": "P1"},
                           sites=tuple(device.info.sites))
    rec = Recorder(device, writer, truth=truth, status_interval_s=0.2).start()
    try:
        face = lambda h: np.full(52, 0.2, np.float32)  # noqa: E731
        with EmulatedPhone(face, port=truth.address[1], latency_s=0.01):
            time.sleep(1.0)
        time.sleep(1.5)  # the phone is gone: a gap; the IMUs keep coming
        with EmulatedPhone(face, port=truth.address[1], latency_s=0.01,
                           clock_offset_s=1002.6):
            time.sleep(1.0)
    finally:
        rec.stop()
        writer.close()
        device.disconnect()
        truth.close()
    c = read_session(tmp_path / "gap.mcap")
    kinds = [e["kind"] for e in c.events]
    assert "truth_gap" in kinds and "truth_resumed" in kinds
    assert kinds.index("truth_gap") < kinds.index("truth_resumed")
    gap = next(e for e in c.events if e["kind"] == "truth_gap")
    during = (c.imu.host_time_s > gap["time_s"]) & (c.imu.host_time_s < gap["time_s"] + 1.0)
    assert during.sum() > 50  # the IMUs were recorded all through the gap
    assert c.imu.frames_lost == 0 and c.truth.n > 80


@pytest.mark.parametrize("uri, message", [
    ("livelink://host:notaport", "the port must be a number"),
    ("udp://x:1", "use livelink://"),
    ("mediapipe:camera:0", "expected mediapipe:webcam:INDEX or mediapipe:file:PATH"),
    ("mediapipe:webcam:front", "the webcam index must be a number"),
])
def test_bad_truth_uris(uri, message):
    with pytest.raises(TruthError, match=message):
        open_truth(uri, model_asset="x.task")


def test_a_second_recorder_on_the_same_port_is_refused():
    with LiveLinkTruth("127.0.0.1", 0) as first:
        second = LiveLinkTruth("127.0.0.1", first.address[1])
        with pytest.raises(TruthError, match="already in use"):
            second.open()


def test_default_listens_on_loopback_only():
    truth = open_truth("livelink://")
    assert truth.address == ("127.0.0.1", 11111)
