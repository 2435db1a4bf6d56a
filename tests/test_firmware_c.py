"""The portable C protocol code against the Python codec, both directions, byte for byte.

``firmware_bridge/firmware/protocol/imucap_proto.c`` and the host harness
``firmware_bridge/firmware/host_test/harness.c`` are compiled with the system C compiler; the
harness reads one command per line and answers one line each (protocol at the top of
harness.c). Every vector of ``vectors/v1.json`` is encoded by C from its fields (must equal the
Python bytes) and decoded by C from the Python bytes (must give the fields back); then random
COBS buffers, corrupted frames and the version rule are checked against the Python codec.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imucap.firmware_bridge import cobs, codec
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
