"""The portable C protocol code against the Python codec, both directions, byte for byte.

``firmware_bridge/firmware/protocol/imucap_proto.c`` and the host harness
``firmware_bridge/firmware/host_test/harness.c`` are compiled with the system C compiler; the
harness reads one command per line and answers one line each (protocol at the top of
harness.c). Every vector of ``vectors/v1.json`` is encoded by C from its fields (must equal the
Python bytes) and decoded by C from the Python bytes (must give the fields back); then random
COBS buffers, corrupted frames and the version rule are checked against the Python codec. The
packet cutting for Bluetooth LE notifications and UDP datagrams (PROTOCOL.md sections 5 and 6) is
checked against ``firmware_bridge/transport.py`` on random frame streams.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imucap.firmware_bridge import cobs, codec, transport
from imucap.firmware_bridge.codec import FrameDecoder
from imucap.firmware_bridge.protocol import DeviceInfo, Log, MsgType

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware_bridge" / "firmware"
PROTO_DIR = FIRMWARE / "protocol"
PROTO_C = PROTO_DIR / "imucap_proto.c"
PROTO_H = PROTO_DIR / "imucap_proto.h"
HARNESS_C = FIRMWARE / "host_test" / "harness.c"
CASES: list[dict[str, Any]] = json.loads(
    (REPO / "firmware_bridge" / "vectors" / "v1.json").read_text(encoding="utf-8"))["cases"]

CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1"]
# Extra warnings the portable code also stays clean of (cheap insurance for other toolchains).
STRICT_FLAGS = ["-Wshadow", "-Wconversion", "-Wsign-conversion", "-Wcast-qual",
                "-Wstrict-prototypes", "-Wmissing-prototypes"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer"]
HOST_TYPES = {int(t) for t in (MsgType.GET_INFO, MsgType.START, MsgType.STOP,
                               MsgType.SET_RATE, MsgType.PING)}
MAX_ENCODED = codec.MAX_ENCODED_SIZE  # 4113


def _compiler() -> str | None:
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


CC = _compiler()


def _compile(out: Path, sources: list[Path], flags: list[str]) -> subprocess.CompletedProcess:
    cmd = [CC, *flags, "-I", str(PROTO_DIR), "-o", str(out), *map(str, sources)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@dataclass
class Harness:
    exe: Path
    sanitized: bool

    def run(self, lines: list[str]) -> list[str]:
        """Feed all lines to one harness process; one answer line per command line."""
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="halt_on_error=1")
        result = subprocess.run([str(self.exe)], input="\n".join(lines) + "\n",
                                capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, f"harness failed ({result.returncode}): {result.stderr}"
        out = result.stdout.splitlines()
        assert len(out) == len(lines), result.stderr
        return out


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    if CC is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH")
    tmp = tmp_path_factory.mktemp("imucap_c")
    plain = tmp / "harness"
    result = _compile(plain, [HARNESS_C, PROTO_C], CFLAGS)
    assert result.returncode == 0, f"compiling the C harness failed:\n{result.stderr}"
    # Prefer a build with AddressSanitizer/UBSan where the toolchain has them: out-of-bounds
    # reads in the decoder then fail the test instead of passing silently.
    checked = tmp / "harness_sanitized"
    if _compile(checked, [HARNESS_C, PROTO_C], CFLAGS + SANITIZE).returncode == 0:
        candidate = Harness(checked, sanitized=True)
        try:
            if candidate.run(["crc 313233343536373839"]) == ["cbf43926"]:
                return candidate
        except (AssertionError, OSError, subprocess.SubprocessError):
            pass
    return Harness(plain, sanitized=False)


# ---------------------------------------------------------------- fields <-> harness tokens


def _hex(raw: bytes) -> str:
    return raw.hex() or "-"


def _text(value: str) -> str:
    return _hex(value.encode("utf-8"))


def field_tokens(type_id: int, f: dict[str, Any]) -> list[str]:
    """A message's fields in the harness's order (the same for enc input and dec output)."""
    if type_id == MsgType.DEVICE_INFO:
        values = [f["proto_major"], f["proto_minor"], f["device_id"], f["boot_id"], f["rate_hz"],
                  f["samples_per_frame"], f["content"], f["accel_range_g"], f["gyro_range_dps"],
                  f["mag_range_ut"], int(f["streaming"])]
        return ([str(v) for v in values] + [_text(f["chip"]), _text(f["firmware"]),
                                            str(len(f["sites"]))]
                + [_text(s) for s in f["sites"]])
    if type_id == MsgType.SAMPLES:
        head = [f["t0_us"], f["dt_us"], f["content"], f["sensor_ok"], f["n_samples"],
                f["n_sensors"]]
        flat = [v for sample in f["data"] for record in sample for v in record]
        return [str(v) for v in head + flat]
    if type_id == MsgType.PONG:
        return [str(f[k]) for k in ("nonce", "host_time_us", "device_rx_us", "device_tx_us")]
    if type_id == MsgType.ACK:
        return [str(f[k]) for k in ("command_seq", "command_type", "status")]
    if type_id == MsgType.LOG:
        return [str(f["level"]), _text(f["text"])]
    if type_id == MsgType.SET_RATE:
        return [str(f["rate_hz"]), str(f["samples_per_frame"])]
    if type_id == MsgType.PING:
        return [str(f["nonce"]), str(f["host_time_us"])]
    return []  # GET_INFO, START, STOP, unknown types


def header_tokens(case: dict[str, Any]) -> list[str]:
    return [str(case[k]) for k in ("type_id", "seq", "major", "minor")]


def enc_line(case: dict[str, Any]) -> str:
    return " ".join(["enc", *header_tokens(case), _hex(bytes.fromhex(case["extra_hex"])),
                     *field_tokens(case["type_id"], case["fields"])])


def expected_dec(case: dict[str, Any]) -> str:
    if case["expect"] == "reject_version":
        return "err version"
    if case["expect"] == "unknown_type":
        return " ".join(["unknown", *header_tokens(case)])
    return " ".join(["ok", *header_tokens(case), *field_tokens(case["type_id"], case["fields"])])


def expected_rx_event(case: dict[str, Any]) -> str:
    """What the C receiver reports for a case's frame (device types are not commands)."""
    head = ":".join(header_tokens(case))
    if case["expect"] == "reject_version":
        return f"version:{head}"
    if case["expect"] == "unknown_type" or case["type_id"] not in HOST_TYPES:
        return f"ignored:{head}"
    return ":".join([f"cmd:{head}", *field_tokens(case["type_id"], case["fields"])])


def parse_rx(line: str) -> tuple[list[str], dict[str, int]]:
    events, _, counters = line.partition(" ; ")
    words = events.split()
    assert words[0] == "events", line
    return words[1:], {k: int(v) for k, v in (kv.split("=") for kv in counters.split())}


# ---------------------------------------------------------------- build


def test_portable_code_is_strictly_warning_free(tmp_path: Path) -> None:
    if CC is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH")
    result = _compile(tmp_path / "imucap_proto.o", [PROTO_C], CFLAGS + STRICT_FLAGS + ["-c"])
    assert result.returncode == 0, result.stderr


def test_portable_code_uses_no_platform_headers_or_heap() -> None:
    allowed = {"<stdint.h>", "<stddef.h>", "<stdbool.h>", "<string.h>", '"imucap_proto.h"'}
    for path in (PROTO_C, PROTO_H):
        source = path.read_text(encoding="utf-8")
        includes = set(re.findall(r'^\s*#\s*include\s+([<"][^>"]+[>"])', source, re.M))
        assert includes <= allowed, (path.name, includes - allowed)
        code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
        assert not re.search(r"\b(malloc|calloc|realloc|free)\s*\(", code), path.name


def test_harness_build(harness: Harness) -> None:
    assert harness.exe.exists()
    assert harness.run(["crc 313233343536373839", "crc -"]) == ["cbf43926", "00000000"]


# ---------------------------------------------------------------- both directions, every vector


def test_c_encodes_every_vector_like_python(harness: Harness) -> None:
    """(a) C encodes each vector from its fields: the same bytes as the Python codec."""
    out = harness.run([enc_line(c) for c in CASES])
    wrong = [(c["name"], got) for c, got in zip(CASES, out, strict=True) if got != c["frame_hex"]]
    assert not wrong, wrong[:3]


def test_c_decodes_every_python_frame(harness: Harness) -> None:
    """(b) C decodes the Python bytes back to the vector's fields (or refuses them)."""
    out = harness.run(["dec " + c["frame_hex"] for c in CASES])
    wrong = [(c["name"], got[:200])
             for c, got in zip(CASES, out, strict=True) if got != expected_dec(c)]
    assert not wrong, wrong[:3]


def test_c_receiver_takes_python_frames_byte_by_byte(harness: Harness) -> None:
    """Every vector through imucap_rx_push: host commands come out, the rest is skipped."""
    lines = ["rxinit 4113"] + ["rx " + c["frame_hex"] for c in CASES]
    out = harness.run(lines)
    for case, line in zip(CASES, out[1:], strict=True):
        events, _ = parse_rx(line)
        assert events == [expected_rx_event(case)], case["name"]
    _, counters = parse_rx(out[-1])
    assert counters["bad"] == 0
    assert counters["version"] == sum(c["expect"] == "reject_version" for c in CASES)
    assert counters["ok"] == len(CASES) - counters["version"]
    assert counters["unknown"] == sum(c["expect"] != "reject_version" and (
        c["expect"] == "unknown_type" or c["type_id"] not in HOST_TYPES) for c in CASES)
    assert counters["bytes"] == sum(len(c["frame_hex"]) // 2 for c in CASES)


def test_c_receiver_stream_split_anywhere(harness: Harness) -> None:
    """Host commands back to back, cut at odd places, with extra delimiters and boot noise."""
    commands = [c for c in CASES if c["type_id"] in HOST_TYPES and c["expect"] == "ok"]
    stream = bytes.fromhex("5a5aff13") + b"\x00\x00" + b"".join(
        bytes.fromhex(c["frame_hex"]) + b"\x00" for c in commands)
    chunks = [stream[i:i + 5] for i in range(0, len(stream), 5)]
    out = harness.run(["rxinit 64"] + ["rx " + chunk.hex() for chunk in chunks])
    events = [e for line in out[1:] for e in parse_rx(line)[0]]
    assert events == ["bad"] + [expected_rx_event(c) for c in commands]
    _, counters = parse_rx(out[-1])
    assert counters["ok"] == len(commands)
    assert counters["bytes"] == len(stream)


def test_c_device_sized_receiver_drops_long_frames(harness: Harness) -> None:
    info = next(c for c in CASES if c["name"] == "device_info_11_sites")
    get_info = next(c for c in CASES if c["name"] == "get_info")
    out = harness.run(["rxinit 64", "rx " + info["frame_hex"], "rx " + get_info["frame_hex"]])
    assert parse_rx(out[1])[0] == ["bad"]
    events, counters = parse_rx(out[2])
    assert events == [expected_rx_event(get_info)]
    assert counters["oversize"] == 1 and counters["bad"] == 1 and counters["ok"] == 1


def test_c_rejects_other_major_versions(harness: Harness) -> None:
    rejected = [c for c in CASES if c["expect"] == "reject_version"]
    assert any(c["major"] == 2 for c in rejected)
    out = harness.run(["rxinit 4113"] + [f"rx {c['frame_hex']}" for c in rejected]
                      + [f"dec {c['frame_hex']}" for c in rejected])
    for case, line in zip(rejected, out[1:len(rejected) + 1], strict=True):
        assert parse_rx(line)[0] == [expected_rx_event(case)]
    _, counters = parse_rx(out[len(rejected)])
    assert counters["version"] == len(rejected)
    assert counters["ok"] == 0 and counters["bad"] == 0
    assert out[len(rejected) + 1:] == ["err version"] * len(rejected)


# ---------------------------------------------------------------- fuzz-ish checks


def _random_buffers(rng: random.Random) -> list[bytes]:
    edge = [0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 762, 1016, 1017]
    lengths = edge + [rng.randint(0, 1100) for _ in range(350)]
    buffers = []
    for i, n in enumerate(lengths):
        mode = i % 4
        if mode == 0:  # uniform bytes
            buf = bytes(rng.getrandbits(8) for _ in range(n))
        elif mode == 1:  # no zeros at all: full 0xFF blocks
            buf = bytes(rng.randint(1, 255) for _ in range(n))
        elif mode == 2:  # mostly zeros
            buf = bytes(rng.randint(1, 255) if rng.random() < 0.1 else 0 for _ in range(n))
        else:  # long non-zero runs ended by a zero, sometimes exactly at 254
            out = bytearray()
            while len(out) < n:
                run = rng.choice([253, 254, 255, rng.randint(0, 600)])
                out += bytes(rng.randint(1, 255) for _ in range(run)) + b"\x00"
            buf = bytes(out[:n])
        buffers.append(buf)
    return buffers


def test_c_cobs_and_crc_match_python_on_random_buffers(harness: Harness) -> None:
    """Hundreds of random buffers in one harness run: encode, decode, CRC, garbage input."""
    rng = random.Random(0x1C0B5)
    buffers = _random_buffers(rng)
    garbage = [bytes(rng.randint(1, 255) if rng.random() < 0.9 else rng.randint(1, 8)
                     for _ in range(rng.randint(0, 300))) for _ in range(50)]
    for buf in buffers[:150]:  # valid encodings with one byte changed or the end cut off
        mutated = bytearray(cobs.encode(buf))
        if rng.random() < 0.5:
            mutated[rng.randrange(len(mutated))] = rng.randint(1, 255)
        else:
            del mutated[rng.randrange(len(mutated) + 1):]
        garbage.append(bytes(mutated))
    lines: list[str] = []
    expected: list[str] = []
    for buf in buffers:
        encoded = cobs.encode(buf)
        lines += [f"cobs {_hex(buf)}", f"uncobs {encoded.hex()}", f"crc {_hex(buf)}"]
        expected += [f"{encoded.hex()} ok", f"ok {_hex(buf)}",
                     f"{zlib.crc32(buf) & 0xFFFFFFFF:08x}"]
    for junk in garbage:
        try:
            want = f"ok {_hex(cobs.decode(junk))}"
        except cobs.CobsError:
            want = "err"
        lines.append(f"uncobs {_hex(junk)}")
        expected.append(want)
    assert len(lines) > 1000
    out = harness.run(lines)
    wrong = [(line[:60], want[:60], got[:60])
             for line, want, got in zip(lines, expected, out, strict=True) if got != want]
    assert not wrong, wrong[:5]
    assert any(w == "err" for w in expected[-len(garbage):])
    assert any(w.startswith("ok") for w in expected[-len(garbage):])


@dataclass(frozen=True)
class _RawPayload:
    """Any type with any payload bytes, framed by the Python codec (valid COBS and CRC)."""

    TYPE: int
    payload: bytes

    def encode_payload(self) -> bytes:
        return self.payload


def _corrupt(frame: bytes, rng: random.Random) -> bytes:
    """A damaged copy of a frame (delimiter kept): a changed byte, a cut, or an inserted zero."""
    body = bytearray(frame[:-1])
    kind = rng.randrange(3)
    if kind == 0:
        i = rng.randrange(len(body))
        body[i] = rng.choice([b for b in range(1, 256) if b != body[i]])
    elif kind == 1:
        del body[rng.randrange(1, len(body)):]
    else:
        body.insert(rng.randrange(1, len(body)), 0)
    return bytes(body) + b"\x00"


def test_c_receiver_counts_corrupted_frames_like_python(harness: Harness) -> None:
    rng = random.Random(4242)
    commands = [bytes.fromhex(c["frame_hex"]) for c in CASES
                if c["type_id"] in HOST_TYPES and c["expect"] == "ok"]
    stream = bytearray()
    good = 0
    for _ in range(40):
        for frame in commands:
            stream += _corrupt(frame, rng)
        frame = rng.choice(commands)
        stream += frame
        good += 1
    # A SET_RATE whose payload is too short: a payload error on both sides.
    stream += codec.encode_frame(_RawPayload(MsgType.SET_RATE, b"\xe8\x03"), 77)
    stream += b"\x01" * 5000 + b"\x00"  # longer than any frame: oversize on both sides
    out = harness.run(["rxinit 4113", "rx " + bytes(stream).hex()])
    events, c_counts = parse_rx(out[1])

    py = FrameDecoder(peer="host")
    packets = py.feed(bytes(stream))
    p_counts = py.counters
    assert sum(e.startswith("cmd:") for e in events) == good == len(packets)
    assert c_counts["ok"] == p_counts.frames_ok
    assert c_counts["crc"] == p_counts.crc_errors
    assert c_counts["cobs"] == p_counts.cobs_errors
    assert c_counts["short"] == p_counts.short_frames
    assert c_counts["payload"] == p_counts.payload_errors == 1
    assert c_counts["oversize"] == p_counts.oversize_frames == 1
    assert c_counts["bad"] == p_counts.bad_frames == events.count("bad")
    assert c_counts["bad"] >= 40 * len(commands)
    assert c_counts["version"] == 0


def test_c_payload_checks_match_python(harness: Harness) -> None:
    """Cut payloads (with a valid CRC): C refuses exactly those Python refuses."""
    frames = []
    for case in CASES:
        if case["expect"] != "ok" or case["extra_hex"]:
            continue
        payload = bytes.fromhex(case["body_hex"])[4:-4]
        cuts = {0, 1, len(payload) // 2, len(payload) - 1, len(payload) - 2, 17, 21, 22, 23}
        for cut in sorted(c for c in cuts if 0 <= c < len(payload)):
            frames.append(codec.encode_frame(_RawPayload(case["type_id"], payload[:cut]), 3))
    out = harness.run([f"dec {frame.hex()}" for frame in frames])
    refused = 0
    for frame, got in zip(frames, out, strict=True):
        decoder = FrameDecoder()
        packets = decoder.feed(frame)
        if decoder.counters.payload_errors:
            assert got == "err payload", (frame.hex(), got)
            refused += 1
        else:
            assert len(packets) == 1
            assert got.startswith(f"ok {packets[0].type} "), (frame.hex(), got)
    assert refused > 20


def test_c_body_size_limit_matches_python(harness: Harness) -> None:
    """4096 bytes of body is the most either side encodes."""
    longest = Log(1, "x" * (codec.MAX_BODY_SIZE - 4 - 1 - 4))
    frame = codec.encode_frame(longest, 9)
    with pytest.raises(ValueError):
        codec.encode_frame(Log(1, "x" * (codec.MAX_BODY_SIZE - 4 - 1 - 4 + 1)), 9)
    text = longest.text.encode()
    out = harness.run([f"enc 5 9 1 0 - 1 {text.hex()}", f"enc 5 9 1 0 - 1 {(text + b'x').hex()}",
                       f"dec {frame.hex()}"])
    assert out[0] == frame.hex()
    assert out[1] == "err encode"
    assert out[2] == f"ok 5 9 1 0 1 {text.hex()}"
    assert len(frame) - 1 <= MAX_ENCODED


def test_c_refuses_invalid_messages(harness: Harness) -> None:
    site = _text("frontalis_l")
    out = harness.run([
        # DEVICE_INFO without sensors, SAMPLES without samples / content / with 17 sensors.
        "enc 1 0 1 0 - 1 0 1 2 100 1 3 8 1000 0 0 - - 0",
        "enc 2 0 1 0 - 0 1000 3 1 0 1",
        "enc 2 0 1 0 - 0 1000 0 1 1 1",
        "enc 2 0 1 0 - 0 1000 1 1 1 17 " + " ".join(["0"] * 51),
        f"enc 1 0 1 0 - 1 0 1 2 100 1 3 8 1000 0 0 - - 1 {site}",
    ])
    assert out[:4] == ["err encode"] * 4
    expected = codec.encode_frame(DeviceInfo(device_id=1, boot_id=2, sites=("frontalis_l",)), 0)
    assert out[4] == expected.hex()


# ---------------------------------------------------------------- packet links: BLE and UDP


def _random_frame(rng: random.Random, seq: int, big: bool = True) -> bytes:
    """One encoded frame (valid COBS and CRC) of a random type and payload length."""
    kind = rng.random()
    if kind < 0.45:
        n = rng.randint(0, 40)  # commands, ACK, PONG, LOG-sized
    elif kind < 0.85 or not big:
        n = rng.randint(100, 300)  # SAMPLES of one sample, DEVICE_INFO
    else:
        n = rng.choice([rng.randint(1300, 1600), rng.randint(2000, codec.MAX_BODY_SIZE - 8)])
    payload = bytes(rng.getrandbits(8) if rng.random() < 0.8 else 0 for _ in range(n))
    return codec.encode_frame(_RawPayload(rng.choice([1, 2, 3, 4, 5, 0x42]), payload),
                              seq & 0xFFFF)


def _random_bursts(rng: random.Random, count: int, max_frames: int,
                   big: bool = True) -> list[list[bytes]]:
    seq = rng.randrange(65536)
    bursts = []
    for _ in range(count):
        frames = []
        for _ in range(rng.randint(1, max_frames)):
            frames.append(_random_frame(rng, seq, big))
            seq += 1
        bursts.append(frames)
    return bursts


def _random_cuts(rng: random.Random, data: bytes) -> list[bytes]:
    """Pieces of a burst as the firmware might write them: per frame or cut anywhere."""
    if rng.random() < 0.5:
        frames = transport.split_frames(data)
        assert b"".join(frames) == data
        return frames
    pieces, i = [], 0
    while i < len(data):
        n = rng.choice([0, 1, 2, 19, 20, 21, rng.randint(1, 600)])
        pieces.append(data[i:i + n])
        i += n
    return pieces


def _tok(piece: bytes) -> str:
    return piece.hex() or "-"


def parse_emits(line: str, word: str) -> tuple[list[tuple[int, bytes, bool]], dict[str, int]]:
    """`word I:HEX[:x]... ; k=v ...` -> [(token index, bytes, refused)], counters."""
    emits_part, _, counters = line.partition(" ; ")
    words = emits_part.split()
    assert words and words[0] == word, line[:200]
    emits = []
    for item in words[1:]:
        parts = item.split(":")
        raw = b"" if parts[1] == "-" else bytes.fromhex(parts[1])
        emits.append((int(parts[0]), raw, len(parts) > 2 and parts[2] == "x"))
    return emits, {k: int(v) for k, v in (kv.split("=") for kv in counters.split())}


def chunker_timing(tokens: list[str], size: int) -> list[int]:
    """Token index of every value the chunker emits: full ones during the write that fills
    them, the partial one at the flush."""
    held, out = 0, []
    for i, tok in enumerate(tokens):
        if tok == ".":
            if held:
                out.append(i)
            held = 0
        else:
            n = 0 if tok == "-" else len(tok) // 2
            out += [i] * ((held + n) // size)
            held = (held + n) % size
    return out


def packer_timing(tokens: list[str], max_size: int) -> list[int]:
    """Token index of every datagram the packer emits: when the next frame does not fit, when a
    datagram is exactly full, a too-long frame at once, the partial one at the flush."""
    held, out = 0, []
    for i, tok in enumerate(tokens):
        if tok == ".":
            if held:
                out.append(i)
            held = 0
            continue
        for frame in transport.split_frames(b"" if tok == "-" else bytes.fromhex(tok)):
            if held and held + len(frame) > max_size:
                out.append(i)
                held = 0
            if len(frame) > max_size:
                out.append(i)
                continue
            held += len(frame)
            if held == max_size:
                out.append(i)
                held = 0
    return out


BLE_MTUS = [23, 24, 27, 50, 100, 185, 247, 251, 512, 515]


def test_c_chunker_matches_python_notification_chunks(harness: Harness) -> None:
    """Random frame streams cut into notification values: C equals notification_chunks()."""
    rng = random.Random(0xB1E)
    lines, expected = [], []
    for mtu in BLE_MTUS:
        for _ in range(4):
            tokens: list[str] = []
            values: list[bytes] = []
            for burst in _random_bursts(rng, rng.randint(1, 6), 10):
                stream = b"".join(burst)
                tokens += [_tok(p) for p in _random_cuts(rng, stream)] + ["."]
                if rng.random() < 0.2:
                    tokens.append(".")  # a flush with nothing held sends nothing
                values += transport.notification_chunks(stream, mtu)
            lines.append(" ".join(["chunk", str(mtu), "512", *tokens]))
            expected.append((mtu, tokens, values))
    out = harness.run(lines)
    total = 0
    for (mtu, tokens, values), line in zip(expected, out, strict=True):
        emits, counters = parse_emits(line, "values")
        assert [raw for _, raw, _ in emits] == values, (mtu, line[:200])
        assert [i for i, _, _ in emits] == chunker_timing(tokens, mtu - 3), mtu
        assert all(len(raw) == mtu - 3 for i, raw, _ in emits if tokens[i] != "."), mtu
        assert counters == {"sent": len(values), "dropped": 0, "pending": 0}
        total += len(values)
    assert total > 1000


def test_c_chunker_edges(harness: Harness) -> None:
    ping = bytes.fromhex(next(c["frame_hex"] for c in CASES if c["name"] == "ping"))
    twenty = bytes(range(1, 21))
    long_frame = bytes((i % 255) + 1 for i in range(610)) + b"\x00"
    out = harness.run([
        "chunk 23 512 . .",                       # empty flushes
        "chunk 23 512 - .",                       # an empty write
        f"chunk 23 512 {twenty.hex()} .",         # exactly one value: sent at once
        f"chunk 23 20 {(twenty * 2).hex()} {twenty[:5].hex()} .",  # buffer = value size
        f"chunk 23 512 {long_frame.hex()} .",     # a frame over many values
        f"chunk 23 512 {ping.hex()} .",           # PING: two writes at MTU 23
        f"chunk 247 512 {bytes(30).hex()} m23 {bytes(15).hex()} .",  # MTU exchange mid-way
        f"chunk 23 512 {bytes(10).hex()} m247 {bytes(300).hex()} .",
        f"chunk 517 512 {bytes(1030).hex()} .",   # values are at most 512 bytes
        f"chunk 23 512 ! {twenty.hex()} {twenty.hex()} .",  # a refused value is counted
        "chunk 22 512 .",                         # below the minimum ATT_MTU
        "chunk 247 243 .",                        # buffer smaller than a value
        "chunk 247 512 m22 .",
        "chunk 247 244 m248 .",
    ])
    assert out[0] == "values ; sent=0 dropped=0 pending=0"
    assert out[1] == "values ; sent=0 dropped=0 pending=0"
    assert out[2] == f"values 0:{twenty.hex()} ; sent=1 dropped=0 pending=0"
    assert out[3] == (f"values 0:{twenty.hex()} 0:{twenty.hex()} 2:{twenty[:5].hex()} ; "
                      "sent=3 dropped=0 pending=0")
    emits, _ = parse_emits(out[4], "values")
    assert [raw for _, raw, _ in emits] == transport.notification_chunks(long_frame, 23)
    assert [i for i, _, _ in emits] == [0] * 30 + [1]
    assert len(ping) == 22  # PROTOCOL.md: "A PING frame is 22 bytes ... takes two writes"
    emits, _ = parse_emits(out[5], "values")
    assert [raw for _, raw, _ in emits] == transport.notification_chunks(ping, 23)
    assert [(i, len(raw)) for i, raw, _ in emits] == [(0, 20), (1, 2)]
    # 30 bytes held at MTU 247; at MTU 23 one value of 20 goes at once, 10 stay.
    emits, _ = parse_emits(out[6], "values")
    assert [(i, len(raw)) for i, raw, _ in emits] == [(1, 20), (2, 20), (3, 5)]
    assert b"".join(raw for _, raw, _ in emits) == bytes(45)
    emits, _ = parse_emits(out[7], "values")
    assert [(i, len(raw)) for i, raw, _ in emits] == [(2, 244), (3, 66)]
    emits, _ = parse_emits(out[8], "values")
    assert [(i, len(raw)) for i, raw, _ in emits] == [(0, 512), (0, 512), (1, 6)]
    emits, counters = parse_emits(out[9], "values")
    assert [(i, refused) for i, _, refused in emits] == [(1, True), (2, False)]
    assert counters == {"sent": 1, "dropped": 1, "pending": 0}
    assert out[10:] == ["err init", "err init", "err mtu", "err mtu"]


MAX_SIZES = [transport.UDP_MAX_DATAGRAM, 0, 1, 2, 7, 16, 64, 300, 1000, 4200]


def test_c_packer_matches_python_pack_datagrams(harness: Harness) -> None:
    """Random frame streams packed into datagrams: C equals pack_datagrams()."""
    rng = random.Random(0x0D9)
    lines, expected = [], []
    for max_size in MAX_SIZES:
        for _ in range(4):
            tokens: list[str] = []
            datagrams: list[bytes] = []
            for burst in _random_bursts(rng, rng.randint(1, 6), 14):
                pieces, i = [], 0
                while i < len(burst):  # one or more whole frames per write
                    n = rng.choice([1, 1, 1, 2, 3])
                    piece = b"".join(burst[i:i + n])
                    if rng.random() < 0.15:
                        piece = b"\x00" + piece if rng.random() < 0.5 else piece + b"\x00"
                    pieces.append(piece)
                    i += n
                tokens += [_tok(p) for p in pieces] + ["."]
                if rng.random() < 0.2:
                    tokens.append(".")
                datagrams += transport.pack_datagrams(b"".join(pieces), max_size)
            lines.append(" ".join(["pack", str(max_size), "8192", *tokens]))
            expected.append((max_size, tokens, datagrams))
    out = harness.run(lines)
    total = 0
    for (max_size, tokens, datagrams), line in zip(expected, out, strict=True):
        emits, counters = parse_emits(line, "datagrams")
        got = [raw for _, raw, _ in emits]
        assert got == datagrams, (max_size, line[:200])
        assert [i for i, _, _ in emits] == packer_timing(tokens, max_size), max_size
        for raw in got:  # whole frames only; over max_size only as a lone frame
            assert raw.endswith(b"\x00") and b"\x00\x00" not in raw
            assert len(raw) <= max_size or len(transport.split_frames(raw)) == 1
        assert counters == {"sent": len(datagrams), "dropped": 0, "pending": 0,
                            "discarded": 0}
        total += len(datagrams)
    assert total > 500


def test_c_packer_edges(harness: Harness) -> None:
    a = bytes([1, 2, 3]) + b"\x00"            # 4 bytes
    b = bytes([4] * 5) + b"\x00"              # 6 bytes
    big = bytes((i % 255) + 1 for i in range(1472)) + b"\x00"  # 1473: over 1472
    exact = bytes((i % 255) + 1 for i in range(1471)) + b"\x00"  # 1472: exactly one datagram
    tail = b"\xaa\xbb"                         # a partial frame: no delimiter
    samples = [_random_frame(random.Random(k), k, big=False) for k in range(40)]
    sample_stream = b"".join(samples)
    out = harness.run([
        "pack 1472 1472 . .",                          # empty flushes
        "pack 1472 1472 00 0000 - .",                  # only empty frames: nothing
        f"pack 10 10 {a.hex()} {b.hex()} .",           # 4 + 6 = 10: sent when full
        f"pack 1472 1472 {exact.hex()} .",             # one frame of exactly max_size
        f"pack 1472 1472 {a.hex()} {big.hex()} {a.hex()} .",  # over max_size: alone
        f"pack 9 9 {a.hex()} {b.hex()} .",             # 4 + 6 > 9: two datagrams
        f"pack 1472 1472 {(a + tail).hex()} .",        # bytes after the last 0x00
        f"pack 1472 1472 ! {a.hex()} . {b.hex()} .",   # a refused datagram is counted
        f"pack 1472 1472 {sample_stream.hex()} .",
        "pack 1472 1471 .",                            # buffer smaller than max_size
    ])
    assert out[0] == "datagrams ; sent=0 dropped=0 pending=0 discarded=0"
    assert out[1] == "datagrams ; sent=0 dropped=0 pending=0 discarded=0"
    assert out[2] == f"datagrams 1:{(a + b).hex()} ; sent=1 dropped=0 pending=0 discarded=0"
    assert out[3] == f"datagrams 0:{exact.hex()} ; sent=1 dropped=0 pending=0 discarded=0"
    emits, _ = parse_emits(out[4], "datagrams")
    assert [(i, raw) for i, raw, _ in emits] == [(1, a), (1, big), (3, a)]
    assert [raw for _, raw, _ in emits] == transport.pack_datagrams(a + big + a)
    emits, _ = parse_emits(out[5], "datagrams")
    assert [(i, raw) for i, raw, _ in emits] == [(1, a), (2, b)]
    emits, counters = parse_emits(out[6], "datagrams")
    assert [raw for _, raw, _ in emits] == [a] == transport.pack_datagrams(a + tail)
    assert counters["discarded"] == 2
    emits, counters = parse_emits(out[7], "datagrams")
    assert [(i, raw, refused) for i, raw, refused in emits] == [(2, a, True), (4, b, False)]
    assert counters == {"sent": 1, "dropped": 1, "pending": 0, "discarded": 0}
    emits, _ = parse_emits(out[8], "datagrams")
    assert [raw for _, raw, _ in emits] == transport.pack_datagrams(sample_stream)
    assert len(emits) > 1 and all(len(raw) <= 1472 for _, raw, _ in emits)
    assert out[9] == "err init"


def test_c_ble_names_and_uuids_match_python(harness: Harness) -> None:
    ids = [0, 1, 0x1A2B, 0xDEADBEEF, 0xFFFFFFFF, 0x12340000]
    out = harness.run([f"blename {i}" for i in ids] + ["uuid 1", "uuid 2", "uuid 3"])
    assert out[:len(ids)] == [f"{transport.ble_name(i)} {i:08x}" for i in ids]
    # 128-bit UUIDs go over the air least significant byte first (NimBLE's BLE_UUID128_INIT).
    uuids = [transport.SERVICE_UUID, transport.FRAMES_UUID, transport.COMMANDS_UUID]
    assert out[len(ids):] == [uuid.UUID(u).bytes[::-1].hex() for u in uuids]


def test_c_link_constants_match_python() -> None:
    header = PROTO_H.read_text(encoding="utf-8")

    def define(name: str) -> int:
        match = re.search(rf"#define {name} (0x[0-9A-Fa-f]+|\d+)u", header)
        assert match, name
        return int(match.group(1), 0)

    assert define("IMUCAP_UDP_DEFAULT_PORT") == transport.UDP_DEFAULT_PORT
    assert define("IMUCAP_UDP_MAX_DATAGRAM") == transport.UDP_MAX_DATAGRAM
    assert define("IMUCAP_UDP_ANNOUNCE_MS") == round(transport.UDP_ANNOUNCE_S * 1000)
    assert define("IMUCAP_UDP_HOST_TIMEOUT_MS") == round(transport.UDP_HOST_TIMEOUT_S * 1000)
    assert define("IMUCAP_BLE_ATT_HEADER") == transport.ATT_HEADER
    assert define("IMUCAP_BLE_DEFAULT_ATT_MTU") == transport.DEFAULT_ATT_MTU
    assert define("IMUCAP_BLE_PREFERRED_ATT_MTU") == transport.PREFERRED_ATT_MTU
    for name, full in [("DEVICE_INFORMATION", transport.DEVICE_INFORMATION_UUID),
                       ("MANUFACTURER_NAME", transport.MANUFACTURER_NAME_UUID),
                       ("MODEL_NUMBER", transport.MODEL_NUMBER_UUID),
                       ("SERIAL_NUMBER", transport.SERIAL_NUMBER_UUID),
                       ("FIRMWARE_REVISION", transport.FIRMWARE_REVISION_UUID)]:
        assert f"{define('IMUCAP_BLE_UUID16_' + name):08x}-0000-1000-8000-00805f9b34fb" == full


# ---------------------------------------------------------------- board firmware (not built)

BOARD_MAIN = FIRMWARE / "esp32s3" / "main"


def test_board_kconfig_defines_every_option_the_code_uses() -> None:
    """The ESP32-S3 code is not compiled here; at least its CONFIG_IMUCAP_* names must exist."""
    kconfig = (BOARD_MAIN / "Kconfig.projbuild").read_text(encoding="utf-8")
    defined = set(re.findall(r"^\s*config\s+(IMUCAP_\w+)", kconfig, re.M))
    used = set()
    for path in BOARD_MAIN.glob("*.[ch]"):
        used |= set(re.findall(r"\bCONFIG_(IMUCAP_\w+)", path.read_text(encoding="utf-8")))
    assert used, "the board code reads no imucap option"
    assert used <= defined, sorted(used - defined)
    for name in ("IMUCAP_LINK_USB", "IMUCAP_LINK_BLE", "IMUCAP_LINK_UDP"):
        assert name in defined
    sources = (BOARD_MAIN / "CMakeLists.txt").read_text(encoding="utf-8")
    for name in ("main.c", "link_usb.c", "link_ble.c", "link_udp.c", "icm42688.c"):
        assert f'"{name}"' in sources and (BOARD_MAIN / name).exists(), name
