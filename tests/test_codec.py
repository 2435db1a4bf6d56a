"""Protocol v1 codec: COBS, CRC, message layouts, and the streaming decoder's accounting."""

from __future__ import annotations

import random

import numpy as np
import pytest

from imucap.firmware_bridge import cobs
from imucap.firmware_bridge.codec import (
    MAX_ENCODED_SIZE,
    FrameDecoder,
    crc32,
    encode_body,
    encode_frame,
)
from imucap.firmware_bridge.protocol import (
    Ack,
    Content,
    DeviceInfo,
    GetInfo,
    Log,
    Ping,
    Pong,
    ProtocolVersionError,
    Samples,
    SetRate,
    Start,
    Stop,
)

SITES = tuple(f"site_{i}" for i in range(11))


def samples(n=2, sensors=11, content=Content.ACCEL | Content.GYRO, seed=0) -> Samples:
    rng = np.random.default_rng(seed)
    vals = 6 + (3 if content & Content.MAG else 0) + (4 if content & Content.QUAT else 0)
    data = rng.integers(-32768, 32768, (n, sensors, vals)).astype(np.int16)
    return Samples(123_456_789_012, 10_000, content, (1 << sensors) - 1, data)


def test_cobs_known_vectors():
    assert cobs.encode(b"") == b"\x01"
    assert cobs.encode(b"\x00") == b"\x01\x01"
    assert cobs.encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs.encode(bytes(range(1, 255))) == b"\xff" + bytes(range(1, 255))
    assert cobs.encode(bytes(range(0, 255))) == b"\x01\xff" + bytes(range(1, 255))
    assert cobs.encode(bytes(range(1, 256))) == b"\xff" + bytes(range(1, 255)) + b"\x02\xff"


def test_cobs_round_trip_random():
    rng = random.Random(7)
    for n in list(range(0, 600, 7)) + [253, 254, 255, 508, 509, 4000]:
        for zeros in (0.0, 0.05, 0.5, 1.0):
            data = bytes(0 if rng.random() < zeros else rng.randrange(1, 256) for _ in range(n))
            enc = cobs.encode(data)
            assert 0 not in enc
            assert len(enc) <= n + 1 + n // 254
            assert cobs.decode(enc) == data


@pytest.mark.parametrize("bad", [b"", b"\x00\x01", b"\x05\x01\x02", b"\x02\x01\x00"])
def test_cobs_rejects_malformed(bad):
    with pytest.raises(cobs.CobsError):
        cobs.decode(bad)


def test_crc_check_value():
    assert crc32(b"123456789") == 0xCBF43926


@pytest.mark.parametrize("msg", [
    DeviceInfo(device_id=1, boot_id=2, rate_hz=200, samples_per_frame=2, chip="BMI270",
               firmware="fw 1.2.3", sites=SITES, mag_range_ut=4900, streaming=True),
    Pong(9, 1_000_000, 2_000_000, 2_000_050),
    Ack(17, 0x82, 0),
    Log(2, "IMU 3 not answering: check its wiring"),
    GetInfo(), Start(), Stop(), SetRate(500, 5), Ping(0xDEADBEEF, 123456789),
])
def test_messages_round_trip(msg):
    packets = FrameDecoder().feed(encode_frame(msg, 65535))
    assert len(packets) == 1
    assert packets[0].seq == 65535
    assert packets[0].message == msg


@pytest.mark.parametrize("content", [Content.ACCEL | Content.GYRO,
                                     Content.ACCEL | Content.GYRO | Content.MAG | Content.QUAT])
def test_samples_round_trip_and_blocks(content):
    msg = samples(n=5, sensors=16, content=content)  # 10 would exceed the 4096-byte frame
    (packet,) = FrameDecoder().feed(encode_frame(msg, 3))
    got = packet.message
    assert np.array_equal(got.data, msg.data)
    assert np.array_equal(got.block(Content.GYRO), msg.data[:, :, 3:6])
    if content & Content.QUAT:
        assert np.array_equal(got.block(Content.QUAT), msg.data[:, :, 9:13])
    else:
        assert got.block(Content.MAG) is None
    assert list(got.timestamps_us()[:3]) == [123_456_789_012, 123_456_799_012, 123_456_809_012]


def test_decoder_any_chunking_and_accounting():
    frames = [encode_frame(samples(seed=i), i) for i in range(20)]
    garbage = b"\x13\x37" * 10
    stream = b"".join(frames[:5]) + garbage + b"\x00" + b"".join(frames[5:])
    rng = random.Random(1)
    for _ in range(20):
        dec = FrameDecoder()
        out, i = [], 0
        while i < len(stream):
            step = rng.randint(1, 300)
            out += dec.feed(stream[i:i + step])
            i += step
        assert [p.seq for p in out] == list(range(20))
        c = dec.counters
        assert (c.frames_ok, c.bad_frames, c.bytes_discarded, c.resyncs) == (20, 1, 20, 1)
        assert c.bytes_in == len(stream)


def test_decoder_counts_each_kind_of_damage():
    good = encode_frame(samples(), 1)
    body = encode_body(samples(), 2)
    bad_crc = cobs.encode(body[:-1] + bytes([body[-1] ^ 0xFF])) + b"\x00"
    short = cobs.encode(b"\x10\x02\x00") + b"\x00"
    truncated = good[: len(good) // 2]  # the rest never came: runs into the next frame
    oversize = b"\x01" * (MAX_ENCODED_SIZE + 10) + b"\x00"
    dec = FrameDecoder()
    out = dec.feed(bad_crc + short + truncated + good + oversize + good)
    assert [p.seq for p in out] == [1]  # the truncated frame swallowed the first good one
    c = dec.counters
    assert c.crc_errors == 1
    assert c.short_frames == 1
    assert c.oversize_frames == 1
    assert c.cobs_errors + c.crc_errors == 2  # the truncated+good concatenation fails one way
    assert c.bytes_discarded == (len(bad_crc) - 1) + (len(short) - 1) + len(truncated) + \
        (len(good) - 1) + (len(oversize) - 1)
    assert c.resyncs == 1  # one run of damage, ended by the one good frame


def test_oversize_frame_fed_in_pieces_is_dropped_and_counted():
    dec = FrameDecoder()
    for _ in range(10):
        assert dec.feed(b"\x01" * 1000) == []
    out = dec.feed(b"\x00" + encode_frame(Stop(), 4))
    assert [p.seq for p in out] == [4]
    assert dec.counters.oversize_frames == 1
    assert dec.counters.bytes_discarded == 10_000


def test_encoder_refuses_frames_over_the_limit():
    with pytest.raises(ValueError, match="exceeds 4096"):
        encode_frame(samples(n=10, sensors=16, content=Content(15)), 0)


def test_body_over_the_limit_is_oversize_even_if_encoding_fits():
    body = b"\x10\x05\x00\x00" + b"\x01" * 4102
    body += crc32(body).to_bytes(4, "little")
    assert len(body) == 4110
    dec = FrameDecoder()
    assert dec.feed(cobs.encode(body) + b"\x00") == []
    assert dec.counters.oversize_frames == 1


@pytest.mark.parametrize("bad", [
    dict(data=np.zeros((0, 11, 6), np.int16)),
    dict(data=np.zeros((1, 17, 6), np.int16)),
    dict(data=np.zeros((1, 11, 0), np.int16), content=0),
    dict(data=np.zeros((1, 11, 6), np.int16), content=0x13),
    dict(data=np.full((1, 11, 6), 40000, np.int32)),
])
def test_samples_encoder_refuses_what_decoders_refuse(bad):
    kw = dict(t0_us=0, dt_us=10_000, content=Content.ACCEL | Content.GYRO, sensor_ok=0) | bad
    with pytest.raises(ValueError):
        Samples(**kw).encode_payload()


def test_strings_over_32_bytes_are_refused():
    with pytest.raises(ValueError, match="allows 32"):
        DeviceInfo(sites=("x" * 33,)).encode_payload()


def test_unknown_type_is_skipped_and_counted():
    class Future:
        TYPE = 0x42

        def encode_payload(self):
            return b"from the future"

    dec = FrameDecoder()
    out = dec.feed(encode_frame(Future(), 1) + encode_frame(Stop(), 2))
    assert [(p.seq, p.message) for p in out] == [(1, None), (2, Stop())]
    assert dec.counters.unknown_types == 1
    assert dec.counters.bad_frames == 0


def test_newer_minor_version_with_appended_fields_is_accepted():
    class PongV13(Pong):
        def encode_payload(self):
            return super().encode_payload() + b"\x01\x02\x03 new fields"

    msg = PongV13(1, 2, 3, 4)
    (packet,) = FrameDecoder().feed(encode_frame(msg, 5, minor=3))
    assert packet.minor == 3
    assert packet.message == Pong(1, 2, 3, 4)


def test_other_major_version_is_counted_kept_and_refused_with_advice():
    dec = FrameDecoder()
    out = dec.feed(encode_frame(Stop(), 1) + encode_frame(Stop(), 2, major=2, minor=0)
                   + encode_frame(Start(), 3))
    assert [p.seq for p in out] == [1, 3]  # frames around it are not lost
    assert dec.counters.version_errors == 1
    with pytest.raises(ProtocolVersionError, match=r"protocol 2\.0.*upgrade imucap"):
        dec.check_peer_version()
    old = FrameDecoder()
    old.feed(encode_frame(Stop(), 1, major=0, minor=9))
    with pytest.raises(ProtocolVersionError, match=r"older.*update the device's firmware"):
        old.check_peer_version()
    FrameDecoder().check_peer_version()  # nothing refused: no error


def test_truncated_payload_is_a_payload_error_not_a_crash():
    body = encode_body(samples(n=3), 1)
    # Re-seal a body whose SAMPLES payload claims more values than it carries.
    cut = body[:-4][:-20]
    frame = cobs.encode(cut + crc32(cut).to_bytes(4, "little")) + b"\x00"
    dec = FrameDecoder()
    assert dec.feed(frame) == []
    assert dec.counters.payload_errors == 1
