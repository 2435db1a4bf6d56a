"""Animated glTF/GLB: structurally valid glTF 2.0 (checked by a parser written here, apart from
the writer's), ARKit-named morph targets, one LINEAR weights animation that holds the track; and,
where Blender is installed, Blender's own importer plays back the same values."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imucap.datasets.rig import Rig
from imucap.datasets.rig_io import load_rig
from imucap.export import FaceTrack, read_gltf_track, read_track, write_gltf_animation, write_track
from imucap.vocab import ARKIT_NAMES, index_of

HERE = Path(__file__).parent
COMPONENT = {5120: ("<i1", 1), 5121: ("<u1", 1), 5122: ("<i2", 2), 5123: ("<u2", 2),
             5125: ("<u4", 4), 5126: ("<f4", 4)}
WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def make_track(n: int = 90, start_s: float = 42.0) -> FaceTrack:
    rng = np.random.default_rng(1)
    t = start_s + np.arange(n) / 60.0
    w = np.clip(np.abs(np.sin(t[:, None] * rng.uniform(1, 5, 52) + rng.uniform(0, 3, 52))),
                0, 1).astype(np.float32)
    return FaceTrack(times=t, weights=w, fps=60.0, source="test")


def parse_glb(data: bytes) -> tuple[dict, bytes]:
    """GLB container checks (glTF 2.0, section 4.4), then the JSON and BIN chunks."""
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2 and length == len(data) and length % 4 == 0
    json_len, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_len % 4 == 0
    json_bytes = data[20:20 + json_len]
    assert json_bytes.rstrip(b" ") == json_bytes.rstrip()  # padded with spaces only
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
    assert bin_type == 0x004E4942 and bin_len % 4 == 0
    assert 20 + json_len + 8 + bin_len == length
    return json.loads(json_bytes), data[28 + json_len:28 + json_len + bin_len]


def accessor(doc: dict, binary: bytes, index: int) -> np.ndarray:
    """An accessor's values, after checking it lies aligned inside its buffer view."""
    acc = doc["accessors"][index]
    dtype, size = COMPONENT[acc["componentType"]]
    width = WIDTH[acc["type"]]
    if "bufferView" not in acc:
        return np.zeros((acc["count"], width), dtype)
    view = doc["bufferViews"][acc["bufferView"]]
    offset = acc.get("byteOffset", 0)
    assert (view.get("byteOffset", 0) + offset) % size == 0
    assert offset + acc["count"] * width * size <= view["byteLength"]
    start = view.get("byteOffset", 0) + offset
    return np.frombuffer(binary, dtype, acc["count"] * width, start).reshape(-1, width)


def check_document(doc: dict, binary: bytes, track: FaceTrack, n_vertices: int) -> None:
    assert doc["asset"]["version"] == "2.0"
    (buffer,) = doc["buffers"]
    assert len(binary) - 3 <= buffer["byteLength"] <= len(binary)
    for view in doc["bufferViews"]:
        assert view["buffer"] == 0 and view.get("byteOffset", 0) % 4 == 0
        assert view.get("byteOffset", 0) + view["byteLength"] <= buffer["byteLength"]
    for i, acc in enumerate(doc["accessors"]):
        values = accessor(doc, binary, i)
        assert values.shape[0] == acc["count"]
        if "min" in acc:  # min and max, where given, are the data's
            np.testing.assert_allclose(acc["min"], values.min(axis=0), atol=1e-6)
            np.testing.assert_allclose(acc["max"], values.max(axis=0), atol=1e-6)
    (node_index,) = [i for i, n in enumerate(doc["nodes"]) if "mesh" in n]
    mesh = doc["meshes"][doc["nodes"][node_index]["mesh"]]
    assert mesh["extras"]["targetNames"] == list(ARKIT_NAMES)
    (prim,) = mesh["primitives"]
    assert len(prim["targets"]) == 52 and len(mesh["weights"]) == 52
    assert doc["accessors"][prim["attributes"]["POSITION"]]["count"] == n_vertices
    assert all(doc["accessors"][t["POSITION"]]["count"] == n_vertices for t in prim["targets"])

    (anim,) = doc["animations"]
    (channel,) = anim["channels"]
    assert channel["target"] == {"node": node_index, "path": "weights"}
    sampler = anim["samplers"][channel["sampler"]]
    assert sampler["interpolation"] == "LINEAR"
    t_acc, w_acc = doc["accessors"][sampler["input"]], doc["accessors"][sampler["output"]]
    assert t_acc["componentType"] == w_acc["componentType"] == 5126
    assert t_acc["type"] == w_acc["type"] == "SCALAR"
    assert t_acc["count"] == len(track) and w_acc["count"] == len(track) * 52
    assert t_acc["min"] == [0.0]
    assert t_acc["max"][0] == pytest.approx(track.duration_s, abs=1e-5)
    keys = accessor(doc, binary, sampler["input"])[:, 0]
    assert np.all(np.diff(keys) > 0)
    np.testing.assert_allclose(keys, track.times - track.times[0], atol=1e-5)
    values = accessor(doc, binary, sampler["output"]).reshape(len(track), 52)
    np.testing.assert_array_equal(values, track.weights)
    assert anim["extras"]["imucap"]["start_s"] == pytest.approx(track.times[0])


def test_glb_is_valid_gltf_with_arkit_targets_and_a_weights_animation(tmp_path):
    from imucap.datasets.builtin_rig import builtin_rig

    track = make_track()
    path = write_gltf_animation(tmp_path / "face.glb", track)
    doc, binary = parse_glb(path.read_bytes())
    check_document(doc, binary, track, builtin_rig().n_vertices)


def test_gltf_json_embeds_the_same_buffer(tmp_path):
    from imucap.datasets.builtin_rig import builtin_rig

    track = make_track(n=20)
    path = write_track(tmp_path / "face.gltf", track)
    doc = json.loads(path.read_text())
    uri = doc["buffers"][0]["uri"]
    assert uri.startswith("data:application/octet-stream;base64,")
    binary = base64.b64decode(uri.split(",", 1)[1])
    assert len(binary) == doc["buffers"][0]["byteLength"]
    check_document(doc, binary, track, builtin_rig().n_vertices)


def test_animated_glb_reads_back_as_track_and_as_rig(tmp_path):
    from imucap.datasets.builtin_rig import builtin_rig

    track = make_track()
    path = write_track(tmp_path / "face.glb", track)
    back = read_track(path)
    np.testing.assert_allclose(back.times, track.times, atol=1e-5)
    np.testing.assert_array_equal(back.weights, track.weights)
    assert back.fps == 60.0 and back.source == "test"
    # The animation leaves the rig as save_glb wrote it: imucap still loads it as a rig.
    rig = load_rig(path)
    np.testing.assert_allclose(rig.deltas, builtin_rig().deltas, atol=1e-7)


def test_a_rig_of_ones_own_keeps_its_mesh_and_missing_targets(tmp_path):
    neutral = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1]], np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    deltas = np.zeros((52, 4, 3), np.float32)
    deltas[index_of("jawOpen"), 3, 1] = -0.02
    present = np.zeros(52, bool)
    present[index_of("jawOpen")] = True
    rig = Rig(neutral, faces, deltas, present, name="tetra")
    track = make_track(n=10)
    path = write_gltf_animation(tmp_path / "tetra.glb", track, rig=rig)
    doc, binary = parse_glb(path.read_bytes())
    check_document(doc, binary, track, 4)
    assert len(doc["meshes"][0]["extras"]["imucap"]["missing"]) == 51
    assert load_rig(path).present.tolist() == present.tolist()


def test_reading_a_file_without_a_weights_animation_says_so(tmp_path):
    from imucap.datasets.builtin_rig import builtin_rig
    from imucap.datasets.rig_io import save_glb
    from imucap.export import ExportError

    path = save_glb(builtin_rig(), tmp_path / "still.glb")
    with pytest.raises(ExportError, match="no animation of morph target weights"):
        read_gltf_track(path)


# --- Blender, a real client ---

BLENDER = shutil.which("blender")


def blender_env() -> dict[str, str]:
    """The environment without this interpreter's traces.

    A Blender built against the system Python (Debian's) finds its Python by the first
    ``python3.x`` on PATH; run from a pyenv or virtualenv interpreter it would take that one's
    standard library and miss the system's numpy, which its glTF importer needs.
    """
    keep = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("PYENV")}
    keep["PATH"] = os.pathsep.join([os.path.dirname(BLENDER or ""), "/usr/local/bin", "/usr/bin",
                                    "/bin"])
    return keep


@pytest.mark.skipif(BLENDER is None, reason="no blender binary on PATH (Debian/Ubuntu: "
                                            "apt-get install blender python3-numpy)")
def test_blender_imports_52_arkit_shape_keys_playing_our_values(tmp_path):
    track = make_track(n=90)
    path = write_gltf_animation(tmp_path / "face.glb", track)
    # On keyframes, between keyframes, and at the end.
    seconds = [0.0, 10 / 60, 25.5 / 60, 0.7, track.duration_s]
    out = tmp_path / "blender.json"
    cmd = [BLENDER, "-b", "--factory-startup", "--python-exit-code", "1",
           "--python", str(HERE / "blender_check_glb.py"), "--", str(path), str(out),
           *map(str, seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=blender_env())
    assert done.returncode == 0 and out.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    (obj,) = report["objects"]
    assert obj["shape_keys"] == [obj["reference_key"], *ARKIT_NAMES]
    assert obj["action"] is not None and obj["fcurves"] == 52
    expected = track.sample(track.times[0] + np.array(seconds))
    for sample, want in zip(obj["samples"], expected, strict=True):
        got = np.array([sample["values"][name] for name in ARKIT_NAMES])
        np.testing.assert_allclose(got, want, atol=1e-3,
                                   err_msg=f"at {sample['seconds']} s (Blender "
                                           f"{report['blender']})")


def test_blender_script_is_plain_python_for_blender():
    # The script runs inside Blender's own interpreter: it must not import imucap or numpy.
    source = (HERE / "blender_check_glb.py").read_text()
    assert "import imucap" not in source and "import numpy" not in source
    compile(source, "blender_check_glb.py", "exec")
    assert sys.version_info >= (3, 10)
