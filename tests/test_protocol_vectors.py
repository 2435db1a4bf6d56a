"""Protocol v1 test vectors: up to date with the Python codec, and decoded by it to their fields.

``firmware_bridge/vectors/v1.json`` is what firmware authors test against, so it must be
exactly what ``scripts/make_protocol_vectors.py`` writes today, and every frame in it must
decode (or be refused) as the case says.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from imucap.firmware_bridge import cobs, codec
from imucap.firmware_bridge.codec import FrameDecoder
from imucap.firmware_bridge.protocol import (
    MESSAGE_CLASSES,
    MsgType,
    ProtocolVersionError,
    Samples,
)

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO / "firmware_bridge" / "vectors" / "v1.json"
GENERATOR = REPO / "scripts" / "make_protocol_vectors.py"
CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
HOST_COMMANDS = {MsgType.GET_INFO, MsgType.START, MsgType.STOP, MsgType.SET_RATE, MsgType.PING}


def load_generator() -> ModuleType:
    """Import scripts/make_protocol_vectors.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_protocol_vectors", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


def test_crc32_check_value() -> None:
    assert codec.crc32(b"123456789") == 0xCBF43926
    assert codec.crc32(b"") == 0


def test_vectors_file_is_what_the_generator_writes(generator: ModuleType) -> None:
    text = generator.render(generator.build_document())
    committed = VECTORS.read_text(encoding="utf-8")
    # Compare the data first for a readable diff, then the exact bytes (formatting included).
    assert json.loads(committed) == json.loads(text), (
        "vectors/v1.json is stale: run python3 scripts/make_protocol_vectors.py")
    assert committed == text


def test_generator_is_deterministic(generator: ModuleType) -> None:
    assert generator.render(generator.build_document()) == generator.render(
        generator.build_document())


def test_generator_check_mode_passes_on_committed_file() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_generator_check_mode_fails_on_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "v1.json"
    stale.write_text(VECTORS.read_text(encoding="utf-8").replace('"seq": 0', '"seq": 9', 1),
                     encoding="utf-8")
    result = subprocess.run([sys.executable, str(GENERATOR), "--check", "--out", str(stale)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1


def _cobs_codes(encoded: bytes) -> list[int]:
    codes, i = [], 0
    while i < len(encoded):
        codes.append(encoded[i])
        i += encoded[i]
    return codes


def _by_type(name: str) -> list[dict[str, Any]]:
    return [c for c in CASES if c["type"] == name and c["expect"] == "ok"]


def test_vectors_cover_what_firmware_must_get_right() -> None:
    bodies = {c["name"]: bytes.fromhex(c["body_hex"]) for c in CASES}
    assert any(len(c["fields"]["sites"]) == 11 for c in _by_type("DEVICE_INFO"))
    samples = _by_type("SAMPLES")
    shapes = {(c["fields"]["n_samples"], c["fields"]["n_sensors"], c["fields"]["content"])
              for c in samples}
    assert (1, 11, 0x03) in shapes
    assert (10, 16, 0x03) in shapes
    assert any(c["fields"]["content"] & 0x0C == 0x0C for c in samples)  # mag and quat
    values = {v for c in samples for s in c["fields"]["data"] for r in s for v in r}
    assert {-32768, 32767, 0} <= values
    # COBS: a body over 254 bytes without any zero (0xFF blocks), one that ends exactly after
    # a full block, and one with many zeros.
    assert any(len(b) > 254 and 0 not in b for b in bodies.values())
    assert any(len(b) % 254 == 0 and 0 not in b for b in bodies.values())
    assert any(b.count(0) > len(b) // 2 for b in bodies.values())
    assert any(0xFF in _cobs_codes(bytes.fromhex(c["frame_hex"])[:-1]) for c in samples)
    for name in ("PONG", "ACK", "LOG"):
        assert _by_type(name), name
    for command in HOST_COMMANDS:
        assert _by_type(command.name), command.name
    assert any(c["major"] == 1 and c["minor"] == 1 and c["expect"] == "ok" for c in CASES)
    assert any(c["major"] == 2 and c["expect"] == "reject_version" for c in CASES)
    assert any(c["extra_hex"] and c["expect"] == "ok" for c in CASES)
    assert any(c["expect"] == "unknown_type" for c in CASES)
    assert len({c["name"] for c in CASES}) == len(CASES)


def _assert_fields(message: Any, fields: dict[str, Any]) -> None:
    """Compare a decoded message with a case's fields, independently of the generator."""
    if isinstance(message, Samples):
        assert set(fields) == {"t0_us", "dt_us", "content", "sensor_ok", "n_samples",
                               "n_sensors", "data"}
        assert message.t0_us == fields["t0_us"]
        assert message.dt_us == fields["dt_us"]
        assert message.content == fields["content"]
        assert message.sensor_ok == fields["sensor_ok"]
        assert message.data.shape[:2] == (fields["n_samples"], fields["n_sensors"])
        np.testing.assert_array_equal(message.data, np.asarray(fields["data"], dtype=np.int16))
        return
    assert set(fields) == {f.name for f in dataclasses.fields(message)}
    for name, value in fields.items():
        got = getattr(message, name)
        if isinstance(got, tuple):
            got = list(got)
        assert got == value, name
        if isinstance(got, bool):
            assert isinstance(value, bool), name


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_frame_matches_its_body(case: dict[str, Any]) -> None:
    body = bytes.fromhex(case["body_hex"])
    frame = bytes.fromhex(case["frame_hex"])
    assert frame == cobs.encode(body) + b"\x00"
    assert 0 not in frame[:-1]
    assert cobs.decode(frame[:-1]) == body
    assert zlib.crc32(body[:-4]) == int.from_bytes(body[-4:], "little")
    assert body[0] == (case["major"] << 4) | case["minor"]
    assert body[1] == case["type_id"]
    assert int.from_bytes(body[2:4], "little") == case["seq"]
    assert body[4:-4].endswith(bytes.fromhex(case["extra_hex"]))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_decodes_in_python(case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["frame_hex"])
    decoder = FrameDecoder()
    if case["expect"] == "reject_version":
        assert decoder.feed(frame) == []
        assert decoder.counters.version_errors == 1
        with pytest.raises(ProtocolVersionError):
            decoder.check_peer_version()
        return
    packets = decoder.feed(frame)
    assert len(packets) == 1
    packet = packets[0]
    assert (packet.type, packet.seq, packet.minor) == (case["type_id"], case["seq"],
                                                       case["minor"])
    assert packet.size == len(frame)
    assert decoder.counters.bad_frames == 0
    if case["expect"] == "unknown_type":
        assert packet.message is None
        assert case["type_id"] not in MESSAGE_CLASSES
        assert decoder.counters.unknown_types == 1
        return
    assert case["expect"] == "ok"
    assert isinstance(packet.message, MESSAGE_CLASSES[case["type_id"]])
    _assert_fields(packet.message, case["fields"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_encodes_in_python_from_its_fields(case: dict[str, Any],
                                                  generator: ModuleType) -> None:
    extra = bytes.fromhex(case["extra_hex"])
    if case["type_id"] in MESSAGE_CLASSES:
        msg = generator.message_from_fields(case["type"], case["fields"])
        if extra:
            msg = generator.Appended(msg, extra)
    else:
        msg = generator.Unknown(case["type_id"], extra)
    frame = codec.encode_frame(msg, case["seq"], major=case["major"], minor=case["minor"])
    assert frame.hex() == case["frame_hex"]


def test_all_vectors_as_one_stream() -> None:
    """Back to back, split into odd chunks, the accepted frames all come out in order."""
    accepted = [c for c in CASES if c["expect"] != "reject_version"]
    stream = b"\x00" + b"".join(bytes.fromhex(c["frame_hex"]) for c in accepted)
    decoder = FrameDecoder()
    packets = []
    for i in range(0, len(stream), 97):
        packets += decoder.feed(stream[i:i + 97])
    assert [(p.type, p.seq) for p in packets] == [(c["type_id"], c["seq"]) for c in accepted]
    assert decoder.counters.bad_frames == 0
