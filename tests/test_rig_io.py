"""Tests for imucap.datasets.rig_io: OBJ folders, zips, glTF/GLB rigs and the GLB writer."""

from __future__ import annotations

import base64
import json
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imucap.datasets.rig import Rig
from imucap.datasets.rig_io import (
    LoadedRig,
    RigError,
    load_rig,
    load_rig_with_report,
    save_glb,
)
from imucap.errors import ImucapError
from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES

SHARED_ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"
REFERENCE_ZIP = SHARED_ASSETS / "arkit_reference_blendshapes.zip"
IDX = {name: i for i, name in enumerate(ARKIT_NAMES)}


def one_line_error(exc_info: pytest.ExceptionInfo[RigError]) -> str:
    message = str(exc_info.value)
    assert isinstance(exc_info.value, ImucapError)
    assert message and "\n" not in message
    return message


# --- synthetic geometry -----------------------------------------------------------------------


def icosphere(subdivisions: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A unit icosphere: float32 vertices and outward, counter-clockwise int32 triangles."""
    t = (1.0 + 5.0**0.5) / 2.0
    verts = [
        (-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0),
        (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
        (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1),
    ]  # fmt: skip
    faces = [
        (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11),
        (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
        (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
        (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
    ]  # fmt: skip
    pts = [np.array(v, dtype=np.float64) / np.linalg.norm(v) for v in verts]
    cache: dict[tuple[int, int], int] = {}

    def mid(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in cache:
            m = pts[a] + pts[b]
            pts.append(m / np.linalg.norm(m))
            cache[key] = len(pts) - 1
        return cache[key]

    for _ in range(subdivisions):
        cache.clear()
        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(pts, dtype=np.float32) * 0.08, np.array(faces, dtype=np.int32)


def synthetic_rig(
    present_names: tuple[str, ...] = ("jawOpen", "eyeBlinkLeft", "mouthSmileRight", "tongueOut"),
    seed: int = 3,
) -> Rig:
    neutral, faces = icosphere(1)
    rng = np.random.default_rng(seed)
    deltas = np.zeros((NUM_BLENDSHAPES, len(neutral), 3), dtype=np.float32)
    present = np.zeros(NUM_BLENDSHAPES, dtype=bool)
    for name in present_names:
        deltas[IDX[name]] = rng.normal(scale=0.01, size=(len(neutral), 3)).astype(np.float32)
        present[IDX[name]] = True
    return Rig(neutral=neutral, faces=faces, deltas=deltas, present=present, name="synthetic")


def assert_same_rig(a: Rig, b: Rig) -> None:
    assert a.neutral.dtype == b.neutral.dtype == np.float32
    assert a.deltas.dtype == b.deltas.dtype == np.float32
    assert a.faces.dtype == b.faces.dtype == np.int32
    np.testing.assert_array_equal(a.neutral, b.neutral)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_array_equal(a.deltas, b.deltas)
    np.testing.assert_array_equal(a.present, b.present)


# --- hand-made glTF -------------------------------------------------------------------------


class GltfBuilder:
    """Builds glTF documents by hand, independently of :func:`save_glb`."""

    def __init__(self) -> None:
        self.binary = bytearray()
        self.doc: dict[str, Any] = {
            "asset": {"version": "2.0"},
            "meshes": [],
            "accessors": [],
            "bufferViews": [],
            "buffers": [],
        }

    def view(self, data: bytes, *, stride: int | None = None) -> int:
        self.binary.extend(b"\x00" * (-len(self.binary) % 4))
        view: dict[str, Any] = {
            "buffer": 0,
            "byteOffset": len(self.binary),
            "byteLength": len(data),
        }
        if stride is not None:
            view["byteStride"] = stride
        self.binary.extend(data)
        self.doc["bufferViews"].append(view)
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, array: np.ndarray, **extra: Any) -> int:
        array = np.asarray(array)
        component = {"float32": 5126, "uint8": 5121, "uint16": 5123, "uint32": 5125}
        acc = {
            "componentType": component[array.dtype.name],
            "count": int(array.shape[0]),
            "type": "SCALAR" if array.ndim == 1 else "VEC3",
        }
        if "bufferView" not in extra and "sparse" not in extra:
            acc["bufferView"] = self.view(np.ascontiguousarray(array).tobytes())
        acc.update(extra)
        if array.ndim == 2:
            acc["min"] = array.min(axis=0).tolist()
            acc["max"] = array.max(axis=0).tolist()
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def mesh(self, primitives: list[dict[str, Any]], names: list[str] | None, **extra: Any) -> int:
        mesh: dict[str, Any] = {"primitives": primitives, **extra}
        if names is not None:
            mesh["extras"] = {"targetNames": names}
        self.doc["meshes"].append(mesh)
        return len(self.doc["meshes"]) - 1

    def simple_mesh(
        self, positions: np.ndarray, faces: np.ndarray, targets: list[np.ndarray],
        names: list[str] | None, **extra: Any,
    ) -> int:  # fmt: skip
        prim = {
            "attributes": {"POSITION": self.accessor(positions)},
            "indices": self.accessor(faces.reshape(-1).astype(np.uint16)),
            "targets": [{"POSITION": self.accessor(t)} for t in targets],
        }
        return self.mesh([prim], names, **extra)

    def write_gltf(self, path: Path, *, external: str | None = None) -> Path:
        data = bytes(self.binary)
        if external is None:
            uri = "data:application/octet-stream;base64," + base64.b64encode(data).decode()
        else:
            (path.parent / external).write_bytes(data)
            uri = external.replace(" ", "%20")
        self.doc["buffers"] = [{"byteLength": len(data), "uri": uri}]
        path.write_text(json.dumps(self.doc))
        return path

    def write_glb(self, path: Path) -> Path:
        self.doc["buffers"] = [{"byteLength": len(self.binary)}]
        text = json.dumps(self.doc).encode()
        text += b" " * (-len(text) % 4)
        binary = bytes(self.binary) + b"\x00" * (-len(self.binary) % 4)
        total = 12 + 8 + len(text) + 8 + len(binary)
        path.write_bytes(
            struct.pack("<4sII", b"glTF", 2, total)
            + struct.pack("<II", len(text), 0x4E4F534A) + text
            + struct.pack("<II", len(binary), 0x004E4942) + binary
        )  # fmt: skip
        return path


TETRA = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
TETRA_FACES = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int32)


def tetra_targets(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(n)]


# --- the real ARKit reference rig -------------------------------------------------------------

needs_reference = pytest.mark.skipif(
    not REFERENCE_ZIP.is_file(),
    reason=f"ARKit reference rig not found at {REFERENCE_ZIP} (an asset outside the project)",
)


@pytest.fixture(scope="module")
def reference() -> LoadedRig:
    return load_rig_with_report(REFERENCE_ZIP)


@needs_reference
def test_reference_zip_loads_with_its_documented_size(reference: LoadedRig) -> None:
    rig, report = reference
    assert rig.n_vertices == 1220
    assert rig.faces.shape == (2304, 3)
    assert int(rig.present.sum()) == 51
    assert rig.missing == ("tongueOut",)
    assert report.missing == ("tongueOut",)
    assert report.ignored == ()
    assert report.kind == "obj zip"
    assert rig.name == str(REFERENCE_ZIP)
    assert report.summary().endswith("51 of 52 blendshapes; lacks tongueOut")
    assert not rig.deltas[IDX["tongueOut"]].any()
    assert all(rig.deltas[k].any() for k in range(NUM_BLENDSHAPES) if rig.present[k])


@needs_reference
def test_reference_folder_loads_like_the_zip(reference: LoadedRig, tmp_path: Path) -> None:
    with zipfile.ZipFile(REFERENCE_ZIP) as archive:
        archive.extractall(tmp_path)
    folder = tmp_path / "ARKit_blendshapes"
    assert (folder / "Neutral.obj").is_file()
    direct = load_rig_with_report(folder)
    assert direct.report.kind == "obj folder"
    assert direct.rig.name == str(folder)
    assert_same_rig(direct.rig, reference.rig)
    # The neutral may sit one folder down, as it does in the zip.
    assert_same_rig(load_rig(tmp_path), reference.rig)


@needs_reference
def test_reference_is_in_the_documented_head_frame(reference: LoadedRig) -> None:
    rig = reference.rig
    v = rig.neutral.astype(np.float64)
    centroid = v.mean(axis=0)
    # Metres: a face mask about 14.5 cm wide and 18 cm tall.
    width, height, _ = v.max(axis=0) - v.min(axis=0)
    assert 0.10 < width < 0.25 and 0.12 < height < 0.30
    # +z out of the face: the most forward vertex (nose tip) is on the midline.
    tip = v[np.argmax(v[:, 2])]
    assert abs(tip[0]) < 1e-3 and tip[2] - centroid[2] > 0.02

    # +y up: jawOpen's largest motion is below the mouth and points down.
    jaw = rig.deltas[IDX["jawOpen"]].astype(np.float64)
    k = np.argmax(np.linalg.norm(jaw, axis=1))
    assert v[k, 1] - centroid[1] < -0.02
    assert jaw[k, 1] < -0.02

    # +x toward the face's own left: eyeBlinkLeft moves the +x side, and the lid comes down.
    blink = np.linalg.norm(rig.deltas[IDX["eyeBlinkLeft"]], axis=1)
    left, right = blink[v[:, 0] > 1e-6].sum(), blink[v[:, 0] < -1e-6].sum()
    assert left > 0.1 and right < 0.01 * left
    k = np.argmax(blink)
    assert v[k, 0] > 0.02 and rig.deltas[IDX["eyeBlinkLeft"], k, 1] < -0.005
    mirror = np.linalg.norm(rig.deltas[IDX["eyeBlinkRight"]], axis=1)
    assert mirror[v[:, 0] < -1e-6].sum() > 100 * mirror[v[:, 0] > 1e-6].sum()
    # A face's left is the viewer's right: jawLeft moves the chin toward +x.
    assert rig.deltas[IDX["jawLeft"]][:, 0].mean() > 0
    # cheekPuff pushes the cheeks out of the face (+z).
    assert rig.deltas[IDX["cheekPuff"]][:, 2].mean() > 0

    # Triangles are counter-clockwise seen from outside: by area, nearly all normals point
    # away from the centroid (0.95 measured; clockwise winding would give about 0.05).
    tri = v[rig.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(normals, axis=1)
    outward = np.einsum("ij,ij->i", normals, tri.mean(axis=1) - centroid) > 0
    assert area[outward].sum() > 0.9 * area.sum()


@needs_reference
def test_reference_survives_a_glb_round_trip(reference: LoadedRig, tmp_path: Path) -> None:
    loaded = load_rig_with_report(save_glb(reference.rig, tmp_path / "arkit.glb"))
    assert_same_rig(loaded.rig, reference.rig)
    assert loaded.report.missing == ("tongueOut",)
    assert loaded.report.ignored == ()


# --- GLB writer and round trip ----------------------------------------------------------------


def read_glb_json(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_len % 4 == 0
    text = data[20 : 20 + json_len]
    assert text == text.rstrip(b" ") + b" " * (len(text) - len(text.rstrip(b" ")))
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
    assert bin_type == 0x004E4942 and bin_len % 4 == 0
    assert 20 + json_len + 8 + bin_len == len(data)
    return json.loads(text), data[28 + json_len :]


def test_save_glb_writes_a_spec_shaped_file(tmp_path: Path) -> None:
    rig = synthetic_rig()
    doc, binary = read_glb_json(save_glb(rig, tmp_path / "rig.glb"))
    assert doc["asset"]["version"] == "2.0"
    mesh = doc["meshes"][0]
    assert mesh["extras"]["targetNames"] == list(ARKIT_NAMES)
    assert mesh["weights"] == [0.0] * NUM_BLENDSHAPES
    assert mesh["extras"]["imucap"]["missing"] == list(rig.missing)
    prim = mesh["primitives"][0]
    assert len(prim["targets"]) == NUM_BLENDSHAPES and prim["mode"] == 4
    assert doc["buffers"][0]["byteLength"] <= len(binary)
    for attr in [prim["attributes"], *prim["targets"]]:
        acc = doc["accessors"][attr["POSITION"]]
        assert acc["componentType"] == 5126 and acc["type"] == "VEC3"
        assert acc["count"] == rig.n_vertices
        assert len(acc["min"]) == len(acc["max"]) == 3
    pos = doc["accessors"][prim["attributes"]["POSITION"]]
    np.testing.assert_array_equal(pos["min"], rig.neutral.min(axis=0))
    np.testing.assert_array_equal(pos["max"], rig.neutral.max(axis=0))
    jaw = doc["accessors"][prim["targets"][IDX["jawOpen"]]["POSITION"]]
    np.testing.assert_array_equal(jaw["max"], rig.deltas[IDX["jawOpen"]].max(axis=0))
    for view in doc["bufferViews"]:
        assert view["byteOffset"] % 4 == 0
    indices = doc["accessors"][prim["indices"]]
    assert indices["componentType"] == 5123 and indices["count"] == rig.faces.size


def test_glb_round_trip_is_exact(tmp_path: Path) -> None:
    rig = synthetic_rig()
    loaded = load_rig_with_report(save_glb(rig, tmp_path / "rig.glb"))
    assert_same_rig(loaded.rig, rig)
    assert loaded.rig.name == str(tmp_path / "rig.glb")
    assert loaded.report.kind == "glb"
    assert loaded.report.missing == rig.missing
    assert len(loaded.report.missing) == NUM_BLENDSHAPES - 4
    assert loaded.report.ignored == ()


def test_glb_round_trip_with_32_bit_indices(tmp_path: Path) -> None:
    n = 70_000
    rng = np.random.default_rng(1)
    neutral = rng.normal(size=(n, 3)).astype(np.float32)
    faces = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.full(n - 2, n - 1)], axis=1)
    deltas = np.zeros((NUM_BLENDSHAPES, n, 3), dtype=np.float32)
    deltas[IDX["jawOpen"]] = rng.normal(size=(n, 3))
    present = np.zeros(NUM_BLENDSHAPES, dtype=bool)
    present[IDX["jawOpen"]] = True
    rig = Rig(neutral=neutral, faces=faces.astype(np.int32), deltas=deltas, present=present)
    path = save_glb(rig, tmp_path / "big.glb")
    doc, _ = read_glb_json(path)
    assert doc["accessors"][doc["meshes"][0]["primitives"][0]["indices"]]["componentType"] == 5125
    assert_same_rig(load_rig(path), rig)


def test_save_glb_into_a_missing_folder_is_a_rig_error(tmp_path: Path) -> None:
    with pytest.raises(RigError, match="cannot write") as info:
        save_glb(synthetic_rig(), tmp_path / "no such folder" / "rig.glb")
    one_line_error(info)


# --- hand-made glTF files ---------------------------------------------------------------------


def test_gltf_with_data_uri_maps_raw_and_prefixed_names(tmp_path: Path) -> None:
    targets = tetra_targets(4)
    names = ["eyeBlink_L", "blendShape1.jawOpen", "mySpecialSmile", "EyeBlinkRight"]
    builder = GltfBuilder()
    builder.simple_mesh(TETRA, TETRA_FACES, targets, names)
    path = builder.write_gltf(tmp_path / "face.gltf")
    assert "data:application/octet-stream;base64," in path.read_text()
    rig, report = load_rig_with_report(path)
    np.testing.assert_array_equal(rig.neutral, TETRA)
    np.testing.assert_array_equal(rig.faces, TETRA_FACES)
    np.testing.assert_array_equal(rig.deltas[IDX["eyeBlinkLeft"]], targets[0])
    np.testing.assert_array_equal(rig.deltas[IDX["jawOpen"]], targets[1])
    np.testing.assert_array_equal(rig.deltas[IDX["eyeBlinkRight"]], targets[3])
    assert set(np.flatnonzero(rig.present)) == {
        IDX[n] for n in ("eyeBlinkLeft", "jawOpen", "eyeBlinkRight")
    }
    assert report.ignored == ("mySpecialSmile",)
    assert report.kind == "gltf"
    assert report.summary().startswith(f"rig {path}: 3 of 52 blendshapes; lacks eyeLookDownLeft")
    assert report.summary().endswith("tongueOut; ignored targets: mySpecialSmile")


def test_gltf_with_external_bin_strided_sparse_and_two_primitives(tmp_path: Path) -> None:
    builder = GltfBuilder()
    # Primitive 0: interleaved POSITION/NORMAL (byteStride 24), primitive-level target names.
    interleaved = np.concatenate([TETRA, np.ones_like(TETRA)], axis=1).astype("<f4")
    view = builder.view(interleaved.tobytes(), stride=24)
    pos0 = builder.accessor(TETRA, bufferView=view, byteOffset=0)
    jaw0 = tetra_targets(1, seed=5)[0]
    # A sparse target: zeros except vertex 2.
    sparse_value = np.array([[0.0, -0.5, 0.25]], dtype="<f4")
    sparse = {
        "count": 1,
        "indices": {"bufferView": builder.view(np.array([2], "<u2").tobytes()),
                    "componentType": 5123},
        "values": {"bufferView": builder.view(sparse_value.tobytes())},
    }  # fmt: skip
    blink0 = builder.accessor(np.zeros((4, 3), np.float32), sparse=sparse)
    prim0 = {
        "attributes": {"POSITION": pos0},
        "indices": builder.accessor(TETRA_FACES.reshape(-1).astype(np.uint8)),
        "targets": [{"POSITION": builder.accessor(jaw0)}, {"POSITION": blink0}],
        "extras": {"targetNames": ["JawOpen", "EyeBlinkLeft"]},
    }
    # Primitive 1: a triangle without indices; its second target has no POSITION (zeros).
    tri = np.array([[2, 0, 0], [3, 0, 0], [2, 1, 0]], dtype=np.float32)
    jaw1 = np.full((3, 3), 0.125, dtype=np.float32)
    prim1 = {
        "attributes": {"POSITION": builder.accessor(tri)},
        "targets": [{"POSITION": builder.accessor(jaw1)}, {}],
    }
    builder.mesh([prim0, prim1], names=None)
    path = builder.write_gltf(tmp_path / "two parts.gltf", external="two parts.bin")
    rig, report = load_rig_with_report(path)
    np.testing.assert_array_equal(rig.neutral, np.concatenate([TETRA, tri]))
    np.testing.assert_array_equal(rig.faces, np.concatenate([TETRA_FACES, [[4, 5, 6]]]))
    np.testing.assert_array_equal(rig.deltas[IDX["jawOpen"]], np.concatenate([jaw0, jaw1]))
    blink = np.zeros((7, 3), np.float32)
    blink[2] = sparse_value[0]
    np.testing.assert_array_equal(rig.deltas[IDX["eyeBlinkLeft"]], blink)
    assert int(rig.present.sum()) == 2
    assert report.ignored == ()


def test_shared_vertex_buffers_strips_and_fans(tmp_path: Path) -> None:
    builder = GltfBuilder()
    grid = np.array([[x, y, 0] for y in (0, 1) for x in (0, 1, 2, 3)], dtype=np.float32)
    jaw = tetra_targets(2, seed=9)[0].repeat(2, axis=0)
    pos, jaw_acc = builder.accessor(grid), builder.accessor(jaw)

    def primitive(indices: list[int], mode: int) -> dict[str, Any]:
        return {
            "attributes": {"POSITION": pos},
            "indices": builder.accessor(np.array(indices, dtype=np.uint16)),
            "mode": mode,
            "targets": [{"POSITION": jaw_acc}],
        }

    # Two materials over one vertex buffer: a strip with a degenerate join, and a fan.
    strip = primitive([0, 4, 1, 5, 5, 2, 2, 6, 3, 7], mode=5)
    fan = primitive([2, 3, 7, 6], mode=6)
    builder.mesh([strip, fan], ["jawOpen"])
    rig = load_rig(builder.write_glb(tmp_path / "strips.glb"))
    np.testing.assert_array_equal(rig.neutral, grid)  # shared, not duplicated
    np.testing.assert_array_equal(rig.deltas[IDX["jawOpen"]], jaw)
    # glTF 2.0, 3.7.2.1: odd strip triangles swap two corners to keep the winding.
    expected = [[0, 4, 1], [4, 5, 1], [2, 6, 3], [6, 7, 3]] + [[3, 7, 2], [7, 6, 2]]
    np.testing.assert_array_equal(rig.faces, expected)


def test_glb_mesh_choice_and_override(tmp_path: Path) -> None:
    builder = GltfBuilder()
    builder.simple_mesh(TETRA, TETRA_FACES, tetra_targets(2), ["eyeBlink_L", "foo"], name="Teeth")
    builder.simple_mesh(
        TETRA * 2,
        TETRA_FACES,
        tetra_targets(3),
        ["jawOpen", "mouthClose", "eyeBlinkLeft"],
        name="Head",
    )
    path = builder.write_glb(tmp_path / "avatar.glb")
    rig, report = load_rig_with_report(path)
    np.testing.assert_array_equal(rig.neutral, TETRA * 2)
    assert int(rig.present.sum()) == 3
    assert any("Head" in note for note in report.notes)
    teeth = load_rig_with_report(path, mesh="Teeth")
    np.testing.assert_array_equal(teeth.rig.neutral, TETRA)
    assert teeth.report.ignored == ("foo",)
    assert_same_rig(load_rig(path, mesh=0), teeth.rig)
    with pytest.raises(RigError, match="no mesh named 'Body'") as info:
        load_rig(path, mesh="Body")
    one_line_error(info)


def test_node_transform_is_reported_not_applied(tmp_path: Path) -> None:
    builder = GltfBuilder()
    builder.simple_mesh(TETRA, TETRA_FACES, tetra_targets(1), ["jawOpen"])
    builder.doc["nodes"] = [{"children": [1], "scale": [0.01, 0.01, 0.01]}, {"mesh": 0}]
    rig, report = load_rig_with_report(builder.write_glb(tmp_path / "cm.glb"))
    np.testing.assert_array_equal(rig.neutral, TETRA)
    assert any("not applied" in note for note in report.notes)

    plain = GltfBuilder()
    plain.simple_mesh(TETRA, TETRA_FACES, tetra_targets(1), ["jawOpen"])
    plain.doc["nodes"] = [{"mesh": 0, "translation": [0, 0, 0]}]
    _, report = load_rig_with_report(plain.write_glb(tmp_path / "m.glb"))
    assert not any("not applied" in note for note in report.notes)


def test_gltf_with_only_unknown_names_lists_them(tmp_path: Path) -> None:
    names = [f"shape{i:02d}" for i in range(12)]
    builder = GltfBuilder()
    builder.simple_mesh(TETRA, TETRA_FACES, tetra_targets(12), names)
    with pytest.raises(RigError) as info:
        load_rig(builder.write_gltf(tmp_path / "unknown.gltf"))
    message = one_line_error(info)
    assert "no morph target" in message and "ARKit blendshape" in message
    assert "shape00, shape01" in message and "shape09" in message
    assert "shape10" not in message and "(and 2 more)" in message


def test_gltf_without_names_or_targets_is_a_clear_error(tmp_path: Path) -> None:
    builder = GltfBuilder()
    builder.simple_mesh(TETRA, TETRA_FACES, tetra_targets(2), None)
    with pytest.raises(RigError, match="no names") as info:
        load_rig(builder.write_glb(tmp_path / "unnamed.glb"))
    one_line_error(info)
    builder = GltfBuilder()
    builder.simple_mesh(TETRA, TETRA_FACES, [], None)
    with pytest.raises(RigError, match="no mesh with morph targets") as info:
        load_rig(builder.write_glb(tmp_path / "static.glb"))
    one_line_error(info)


def test_two_targets_for_one_blendshape_are_refused(tmp_path: Path) -> None:
    builder = GltfBuilder()
    builder.simple_mesh(TETRA, TETRA_FACES, tetra_targets(2), ["eyeBlinkLeft", "EyeBlink_L"])
    with pytest.raises(RigError, match="both name blendshape 'eyeBlinkLeft'") as info:
        load_rig(builder.write_gltf(tmp_path / "dup.gltf"))
    one_line_error(info)


def test_compressed_gltf_is_refused_by_name(tmp_path: Path) -> None:
    builder = GltfBuilder()
    builder.simple_mesh(TETRA, TETRA_FACES, tetra_targets(1), ["jawOpen"])
    builder.doc["extensionsRequired"] = ["KHR_draco_mesh_compression"]
    with pytest.raises(RigError, match="KHR_draco_mesh_compression") as info:
        load_rig(builder.write_glb(tmp_path / "draco.glb"))
    one_line_error(info)


# --- damaged and foreign files ----------------------------------------------------------------


def test_truncated_glb_is_a_one_line_error(tmp_path: Path) -> None:
    data = save_glb(synthetic_rig(), tmp_path / "whole.glb").read_bytes()
    for size in (len(data) // 2, len(data) - 1, 30, 8):
        cut = tmp_path / f"cut{size}.glb"
        cut.write_bytes(data[:size])
        with pytest.raises(RigError, match="truncated") as info:
            load_rig(cut)
        one_line_error(info)


def test_gltf_with_a_missing_bin_file_or_short_buffer(tmp_path: Path) -> None:
    builder = GltfBuilder()
    builder.simple_mesh(TETRA, TETRA_FACES, tetra_targets(1), ["jawOpen"])
    path = builder.write_gltf(tmp_path / "face.gltf", external="face.bin")
    (tmp_path / "face.bin").unlink()
    with pytest.raises(RigError, match="'face.bin'") as info:
        load_rig(path)
    one_line_error(info)
    (tmp_path / "face.bin").write_bytes(bytes(builder.binary[:20]))
    with pytest.raises(RigError, match="truncated") as info:
        load_rig(path)
    one_line_error(info)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.txt", b"hello", "is not a rig; expected a folder holding Neutral.obj"),
        ("fake.glb", b"this is not binary glTF at all", "not a GLB file"),
        ("fake.gltf", b"{not json", "invalid JSON"),
        ("old.gltf", b'{"asset": {"version": "1.0"}}', "glTF 1.0"),
        ("fake.zip", b"PK but not really", "not a readable zip"),
        ("Neutral.obj", b"v 0 0 0\n", "single OBJ file"),
        ("broken.gltf", b'{"asset": {"version": "2.0"}, "meshes": [{"primitives": 3}]}',
         "not a valid glTF"),
    ],
)  # fmt: skip
def test_foreign_files_are_one_line_errors(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RigError) as info:
        load_rig(path)
    assert expected in one_line_error(info)


def test_missing_path_says_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(RigError, match="does not exist; expected a folder") as info:
        load_rig(tmp_path / "nowhere")
    one_line_error(info)


# --- OBJ folders ------------------------------------------------------------------------------


def write_obj(path: Path, vertices: np.ndarray, face_lines: Sequence[str] = ()) -> None:
    lines = ["# made by a test", "o thing"]
    lines += [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in np.asarray(vertices, np.float64)]
    lines += ["vt 0 0", "vn 0 0 1", "s off", *face_lines]
    path.write_text("\n".join(lines) + "\n")


SQUARE = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], dtype=np.float32)
SQUARE_FACES = ["f 1/1/1 2/1/1 3/1/1 4/1/1", "f -4//1 -1//1 -3//1"]  # a quad and a negative tri


def obj_folder(root: Path, *, neutral_name: str = "neutral.obj") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_obj(root / neutral_name, SQUARE, SQUARE_FACES)
    write_obj(root / "jawOpen.obj", SQUARE + [0, -0.25, 0])
    write_obj(root / "eyeBlink_L.obj", SQUARE + [0, 0, 0.5])
    write_obj(root / "EyeBlinkRight.OBJ", SQUARE * 2)
    write_obj(root / "Basis.obj", SQUARE)
    (root / "readme.txt").write_text("not a target")
    return root


def test_obj_folder_reads_polygons_negative_indices_and_names(tmp_path: Path) -> None:
    folder = obj_folder(tmp_path / "rig")
    rig, report = load_rig_with_report(folder)
    np.testing.assert_array_equal(rig.neutral, SQUARE)
    # The quad is fanned from its first corner; "-4 -1 -3" after 5 vertices is 2, 5, 3.
    np.testing.assert_array_equal(rig.faces, [[0, 1, 2], [0, 2, 3], [1, 4, 2]])
    np.testing.assert_allclose(rig.deltas[IDX["jawOpen"]], np.tile([0, -0.25, 0], (5, 1)))
    np.testing.assert_allclose(rig.deltas[IDX["eyeBlinkLeft"]], np.tile([0, 0, 0.5], (5, 1)))
    np.testing.assert_allclose(rig.deltas[IDX["eyeBlinkRight"]], SQUARE)
    assert int(rig.present.sum()) == 3
    assert report.ignored == ("Basis.obj",)
    assert report.kind == "obj folder"
    assert len(report.missing) == NUM_BLENDSHAPES - 3


def test_obj_target_with_wrong_vertex_count_names_the_file(tmp_path: Path) -> None:
    folder = obj_folder(tmp_path / "rig", neutral_name="Neutral.obj")
    write_obj(folder / "mouthFunnel.obj", SQUARE[:4])
    with pytest.raises(RigError) as info:
        load_rig(folder)
    message = one_line_error(info)
    assert "mouthFunnel.obj" in message and "4 vertices" in message and "5" in message


def test_obj_folder_without_neutral_or_targets(tmp_path: Path) -> None:
    folder = tmp_path / "rig"
    folder.mkdir()
    write_obj(folder / "jawOpen.obj", SQUARE)
    with pytest.raises(RigError, match="has no Neutral.obj") as info:
        load_rig(folder)
    one_line_error(info)
    (folder / "jawOpen.obj").unlink()
    write_obj(folder / "NEUTRAL.obj", SQUARE, SQUARE_FACES)
    write_obj(folder / "smile.obj", SQUARE)
    with pytest.raises(RigError, match=r"no OBJ file .* \(found: smile\)") as info:
        load_rig(folder)
    one_line_error(info)


def test_obj_face_with_a_bad_index_names_file_and_line(tmp_path: Path) -> None:
    folder = obj_folder(tmp_path / "rig")
    write_obj(folder / "neutral.obj", SQUARE, ["f 1 2 9"])
    with pytest.raises(RigError, match="neutral.obj has faces that refer") as info:
        load_rig(folder)
    one_line_error(info)
    write_obj(folder / "neutral.obj", SQUARE, ["f 1 2"])
    with pytest.raises(RigError, match="neutral.obj line 11: a face needs three") as info:
        load_rig(folder)
    one_line_error(info)


def test_obj_zip_with_a_nested_folder_and_macos_litter(tmp_path: Path) -> None:
    folder = obj_folder(tmp_path / "src" / "MyRig")
    archive_path = tmp_path / "rig.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, f"MyRig/{file.name}")
        archive.writestr("__MACOSX/MyRig/._neutral.obj", b"\x00\x05\x16\x07 junk")
        archive.writestr("MyRig/._jawOpen.obj", b"\x00\x05\x16\x07 junk")
    zipped = load_rig_with_report(archive_path)
    assert zipped.report.kind == "obj zip"
    assert zipped.rig.name == str(archive_path)
    assert_same_rig(zipped.rig, load_rig(folder))
    with zipfile.ZipFile(archive_path, "a") as archive:
        archive.writestr("MyRig/mouthClose.obj", "v 0 0 0\n")
    with pytest.raises(RigError) as info:
        load_rig(archive_path)
    message = one_line_error(info)
    assert f"MyRig/mouthClose.obj in {archive_path}" in message
    assert "imucap-rig-" not in message


def test_mesh_option_is_for_gltf_only(tmp_path: Path) -> None:
    with pytest.raises(RigError, match="mesh= picks a mesh in a glTF file") as info:
        load_rig(obj_folder(tmp_path / "rig"), mesh=0)
    one_line_error(info)
