"""Live Link Face UDP: the packet layout byte by byte, real sockets, rejected packets counted."""

from __future__ import annotations

import socket
import struct
import sys
import time

import numpy as np
import pytest

from imucap.errors import ImucapError
from imucap.inference.engine import FaceFrame
from imucap.sinks import (
    LiveLinkPacketError,
    LiveLinkReceiver,
    LiveLinkSender,
    SinkError,
    decode_packet,
    encode_packet,
)
from imucap.vocab import ARKIT_NAMES

from emulator_helpers import free_udp_port

TIMEOUT_S = 10.0

# Positions in the 61 values of the packet, written out from Unreal's EARFaceBlendShape order
# here rather than taken from imucap.vocab, so the test checks the table too.
UDP_POSITION = {
    "eyeBlinkLeft": 0, "eyeLookDownLeft": 1, "eyeWideLeft": 6, "eyeBlinkRight": 7,
    "eyeWideRight": 13, "jawForward": 14, "jawLeft": 15, "jawRight": 16, "jawOpen": 17,
    "mouthClose": 18, "mouthFunnel": 19, "mouthPucker": 20, "mouthLeft": 21, "mouthRight": 22,
    "mouthSmileLeft": 23, "mouthSmileRight": 24, "mouthUpperUpRight": 40, "browDownLeft": 41,
    "browInnerUp": 43, "browOuterUpRight": 45, "cheekPuff": 46, "cheekSquintLeft": 47,
    "cheekSquintRight": 48, "noseSneerLeft": 49, "noseSneerRight": 50, "tongueOut": 51,
}
HEAD, LEFT_EYE, RIGHT_EYE = slice(52, 55), slice(55, 58), slice(58, 61)


def parse(packet: bytes) -> dict:
    """The packet read with struct, following the documented layout and nothing else."""
    pos = 0
    (version,) = struct.unpack_from(">B", packet, pos)
    pos += 1
    (n,) = struct.unpack_from(">i", packet, pos)
    device_id = packet[pos + 4:pos + 4 + n].decode()
    pos += 4 + n
    (n,) = struct.unpack_from(">i", packet, pos)
    subject = packet[pos + 4:pos + 4 + n].decode()
    pos += 4 + n
    frame, subframe, num, den, count = struct.unpack_from(">ifiiB", packet, pos)
    pos += 17
    values = struct.unpack_from(">61f", packet, pos)
    pos += 61 * 4
    return dict(version=version, device_id=device_id, subject=subject, frame=frame,
                subframe=subframe, num=num, den=den, count=count, values=values, end=pos)


def distinct_weights(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.permutation(np.linspace(0.01, 0.99, 52)).astype(np.float32)


def frame_at(time_s: float, weights: np.ndarray) -> FaceFrame:
    return FaceFrame(time_s=time_s, weights=weights, confidence=1.0)


def test_encode_packet_layout_field_by_field():
    w = distinct_weights()
    packet = encode_packet(w, frame_number=123456, subframe=0.25, rate=(30000, 1001),
                           subject="Sübject", device_id="dev-42", head_ypr=(0.1, -0.2, 0.3),
                           left_eye_ypr=(0.4, 0.5, 0.6), right_eye_ypr=(-0.7, -0.8, -0.9))
    p = parse(packet)
    assert p["version"] == 6
    assert p["device_id"] == "dev-42"
    assert p["subject"] == "Sübject"  # byte length, not character length
    assert packet[1:5] == struct.pack(">i", 6)
    assert packet[11:15] == struct.pack(">i", 8)  # "Sübject" is 7 characters, 8 bytes
    assert (p["frame"], p["subframe"], p["num"], p["den"]) == (123456, 0.25, 30000, 1001)
    assert p["count"] == 61
    assert p["end"] == len(packet)  # nothing after the 61 values
    values = np.array(p["values"], np.float32)
    for name, pos in UDP_POSITION.items():
        assert values[pos] == w[ARKIT_NAMES.index(name)], name
    assert sorted(values[:52].tolist()) == sorted(w.tolist())  # each weight exactly once
    np.testing.assert_array_equal(values[HEAD], np.float32([0.1, -0.2, 0.3]))
    np.testing.assert_array_equal(values[LEFT_EYE], np.float32([0.4, 0.5, 0.6]))
    np.testing.assert_array_equal(values[RIGHT_EYE], np.float32([-0.7, -0.8, -0.9]))


def test_sender_frame_number_and_subframe_come_from_frame_time():
    sender = LiveLinkSender(subject="face", device_id="dev", fps=60)
    p = parse(sender.encode(frame_at(100.254, distinct_weights())))
    assert (p["num"], p["den"]) == (60, 1)
    assert p["frame"] == 6015  # floor(100.254 * 60) = floor(6015.24)
    assert p["subframe"] == pytest.approx(0.24, abs=1e-4)
    assert p["subject"] == "face" and p["device_id"] == "dev"
    np.testing.assert_array_equal(np.array(p["values"])[52:], 0.0)  # head and eyes unknown

    ntsc = LiveLinkSender(fps=59.94)
    p = parse(ntsc.encode(frame_at(10.0, distinct_weights())))
    assert (p["num"], p["den"]) == (60000, 1001)
    assert p["frame"] == 599  # 10 s * 59.94 = 599.4
    assert p["subframe"] == pytest.approx(0.4006, abs=1e-3)

    # Times on the frame grid count as their own frame, whatever floating point makes of k / 60.
    grid = [parse(sender.encode(frame_at(k / 60, distinct_weights())))["frame"]
            for k in range(2000)]
    assert grid == list(range(2000))


def test_sender_sends_nan_weights_as_zero_and_keeps_the_rest():
    w = distinct_weights()
    w[ARKIT_NAMES.index("jawOpen")] = np.nan
    values = parse(LiveLinkSender().encode(frame_at(1.0, w)))["values"]
    assert values[UDP_POSITION["jawOpen"]] == 0.0
    assert values[UDP_POSITION["tongueOut"]] == w[ARKIT_NAMES.index("tongueOut")]


def test_default_device_id_is_stable_and_per_subject():
    assert LiveLinkSender(subject="a").device_id == LiveLinkSender(subject="a").device_id
    assert LiveLinkSender(subject="a").device_id != LiveLinkSender(subject="b").device_id


def test_decode_reads_what_encode_wrote():
    w = distinct_weights(3)
    packet = decode_packet(encode_packet(w, frame_number=-5, subframe=0.5, rate=(50, 1),
                                         subject="s", device_id="d", head_ypr=(1, 2, 3)))
    assert (packet.subject, packet.device_id, packet.frame_number) == ("s", "d", -5)
    assert (packet.subframe, packet.rate_numerator, packet.rate_denominator) == (0.5, 50, 1)
    np.testing.assert_array_equal(packet.weights, w)
    np.testing.assert_array_equal(packet.head_ypr, [1, 2, 3])
    assert packet.frame_rate_hz == 50.0 and packet.time_s == pytest.approx(-0.09)


GOOD = encode_packet(distinct_weights(), frame_number=1, subject="s", device_id="d")
BAD_PACKETS = {
    "version": b"\x05" + GOOD[1:],
    "count": GOOD[:-245] + b"\x34" + GOOD[-244:-36],  # 52 values announced and sent
    "short": GOOD[:-3],
    "oversized": GOOD + b"\x00garbage",
    "malformed": b"\x06" + struct.pack(">i", 2) + b"\xff\xfe" + GOOD[6:],
}


@pytest.mark.parametrize("kind", list(BAD_PACKETS))
def test_decode_rejects_each_kind_of_bad_packet(kind):
    with pytest.raises(LiveLinkPacketError) as info:
        decode_packet(BAD_PACKETS[kind])
    assert info.value.kind == kind
    assert "\n" not in str(info.value)


def test_decode_rejects_empty_and_truncated_names():
    for data in (b"", b"\x06", b"\x06\x00\x00\x00\x09abc"):
        with pytest.raises(LiveLinkPacketError) as info:
            decode_packet(data)
        assert info.value.kind == "short"
    with pytest.raises(LiveLinkPacketError) as info:
        decode_packet(b"\x06" + struct.pack(">i", -1) + GOOD[5:])
    assert info.value.kind == "malformed"


# --- real sockets -------------------------------------------------------------------------------


def test_round_trip_through_a_real_udp_socket():
    frames = [frame_at((3000 + k + 0.5) / 60, distinct_weights(k)) for k in range(20)]
    with LiveLinkReceiver(port=0, host="127.0.0.1") as rx:
        port = rx.address[1]
        with LiveLinkSender("127.0.0.1", port, subject="imu", device_id="rig-1") as tx:
            before = time.monotonic()
            for frame in frames:
                tx.send(frame)
            packets = [rx.read(timeout_s=TIMEOUT_S) for _ in frames]
            stats = tx.stats()
        assert rx.stats().packets == len(frames) and rx.stats().rejected == 0
    assert None not in packets
    for k, (packet, frame) in enumerate(zip(packets, frames, strict=True)):
        assert packet.subject == "imu" and packet.device_id == "rig-1"
        assert packet.frame_number == 3000 + k
        assert packet.subframe == pytest.approx(0.5, abs=1e-6)
        assert (packet.rate_numerator, packet.rate_denominator) == (60, 1)
        np.testing.assert_array_equal(packet.weights, frame.weights)
        np.testing.assert_array_equal(packet.head_ypr, 0.0)
        assert before <= packet.arrival_time_s <= time.monotonic()
        assert packet.source[0] == "127.0.0.1"
    assert stats.frames_sent == 20 and stats.errors == 0 and stats.last_error is None
    assert stats.bytes_sent == sum(len(LiveLinkSender("127.0.0.1", port, subject="imu",
                                                      device_id="rig-1").encode(f))
                                   for f in frames)
    assert 0 < stats.mean_send_us <= stats.p99_send_us


def test_receiver_counts_each_kind_of_rejected_packet():
    with LiveLinkReceiver(port=0, host="127.0.0.1") as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        target = ("127.0.0.1", rx.address[1])
        for data in BAD_PACKETS.values():
            raw.sendto(data, target)
        raw.sendto(GOOD, target)  # arrives after the bad ones: once read, they were counted
        packet = rx.read(timeout_s=TIMEOUT_S)
        stats = rx.stats()
    assert packet is not None and packet.frame_number == 1
    assert (stats.wrong_version, stats.wrong_count, stats.short, stats.oversized,
            stats.malformed) == (1, 1, 1, 1, 1)
    assert stats.packets == 1 and stats.rejected == 5
    assert stats.bytes_received == sum(map(len, BAD_PACKETS.values())) + len(GOOD)
    assert stats.last_error is not None


def test_receiver_iterates_until_closed_and_drops_oldest_when_nobody_reads():
    with LiveLinkReceiver(port=0, host="127.0.0.1", queue_size=3) as rx:
        with LiveLinkSender("127.0.0.1", rx.address[1]) as tx:
            for k in range(8):
                tx.send(frame_at(k / 60, distinct_weights()))
            marker = frame_at(100.0, distinct_weights())
            tx.send(marker)
        deadline = time.monotonic() + TIMEOUT_S
        while rx.stats().packets < 9 and time.monotonic() < deadline:
            time.sleep(0.01)  # nothing to wait on: the point is that nobody reads
    assert rx.stats().packets == 9 and rx.stats().queue_drops == 6
    assert [p.frame_number for p in rx] == [6, 7, 6000]


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="ECONNREFUSED on a later UDP send is how Linux reports the port")
def test_refused_port_is_counted_never_raised():
    port = free_udp_port()
    with LiveLinkSender("127.0.0.1", port) as tx:
        for k in range(20):
            tx.send(frame_at(k / 60, distinct_weights()))  # must not raise
        stats = tx.stats()
    assert stats.errors >= 1
    assert "refused" in stats.last_error.lower()
    assert stats.frames_sent + stats.errors == 20


# --- errors a user can cause --------------------------------------------------------------------


def test_host_that_does_not_resolve_fails_at_open_with_one_line():
    sender = LiveLinkSender("no-such-host.invalid", 11111)
    with pytest.raises(SinkError) as info:
        sender.open()
    message = str(info.value)
    assert "no-such-host.invalid" in message and "\n" not in message
    assert isinstance(info.value, ImucapError) and not sender.is_open


@pytest.mark.parametrize("port", [0, 70000, -1, "http"])
def test_bad_port_raises_one_line(port):
    with pytest.raises(SinkError, match="port") as info:
        LiveLinkSender("127.0.0.1", port)
    assert "\n" not in str(info.value)


def test_bad_frame_rate_raises_one_line():
    with pytest.raises(SinkError, match="frame rate"):
        LiveLinkSender(fps=0)


def test_port_in_use_fails_at_open_with_one_line():
    with LiveLinkReceiver(port=0, host="127.0.0.1") as first:
        second = LiveLinkReceiver(port=first.address[1], host="127.0.0.1")
        with pytest.raises(SinkError, match="already in use"):
            second.open()


def test_send_before_open_is_a_mistake_not_a_network_error():
    with pytest.raises(SinkError, match="not open"):
        LiveLinkSender().send(frame_at(0.0, distinct_weights()))
