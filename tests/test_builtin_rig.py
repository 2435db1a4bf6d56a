"""Tests for the built-in ARKit-52 face rig: its mesh, known-answer motions, and agreement with a
real ARKit rig's targets (skipped where that rig is not beside the project)."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from imucap.datasets import builtin_rig as builtin_rig_module
from imucap.datasets.builtin_rig import (
    REGION_LABELS,
    builtin_landmarks,
    builtin_region_weights,
    builtin_rig,
)
from imucap.datasets.builtin_rig_shapes import SHAPE_MOTIONS
from imucap.vocab import ARKIT_NAMES

SHARED_ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"
REFERENCE_ZIP = SHARED_ASSETS / "arkit_reference_blendshapes.zip"
MIRROR = np.array([-1.0, 1.0, 1.0])

# Shapes named ...Left/...Right that shift a whole midline structure sideways rather than act on
# one side: their side is the direction they move, not where they move.
SIDEWAYS_SHIFTS = ("jawLeft", "jawRight", "mouthLeft", "mouthRight")


@pytest.fixture(scope="module")
def rig():
    return builtin_rig()


def _k(name: str) -> int:
    return ARKIT_NAMES.index(name)


def _mirror_index(points: np.ndarray) -> np.ndarray:
    """Index of each point's mirror image across x = 0 (within 1 µm), -1 where there is none."""
    keys = np.round(np.asarray(points, dtype=np.float64) * 1e6).astype(np.int64)
    lookup = {tuple(key): i for i, key in enumerate(keys)}
    return np.array([lookup.get((-key[0], key[1], key[2]), -1) for key in keys])


def _vertex_areas(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    out = np.zeros(len(verts))
    for k in range(3):
        np.add.at(out, faces[:, k], area / 3.0)
    return out


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, q * cumulative[-1])])


def _motion_summary(verts: np.ndarray, faces: np.ndarray, delta: np.ndarray) -> dict:
    """Mesh-independent summary of one target's motion.

    Every vertex stands for its share of the surface (a third of its triangles' area), so two
    meshes of different density and extent compare: ``centroid`` is where the motion is (the
    mean position weighted by area x displacement), ``direction`` the unit mean displacement
    (area-weighted), ``magnitude`` the 95th percentile of ``|delta|`` over the moving surface
    (weighted by area x displacement: a robust peak that still-standing vertices do not dilute).
    """
    area = _vertex_areas(verts, faces)
    size = np.linalg.norm(delta, axis=1)
    moving = area * size
    resultant = (area[:, None] * delta).sum(0)
    return {
        "centroid": (moving[:, None] * verts).sum(0) / moving.sum(),
        "direction": resultant / np.linalg.norm(resultant),
        "magnitude": _weighted_quantile(size, moving, 0.95),
    }


# --- the mesh -----------------------------------------------------------------------------------


def test_builds_quickly_with_a_few_thousand_vertices():
    builtin_rig.cache_clear()
    builtin_rig_module._head_mesh.cache_clear()
    start = time.perf_counter()
    fresh = builtin_rig()
    elapsed_s = time.perf_counter() - start
    assert elapsed_s < 2.0, f"building the rig took {elapsed_s:.2f} s"
    assert 2000 <= fresh.n_vertices <= 8000
    assert len(fresh.faces) == 2 * fresh.n_vertices - 4  # a closed genus-0 triangulation
    assert fresh.name == "builtin"
    assert fresh.present.all() and fresh.missing == ()
    assert fresh.neutral.dtype == np.float32 and fresh.deltas.dtype == np.float32
    assert fresh.deltas.shape == (52, fresh.n_vertices, 3)
    assert np.isfinite(fresh.deltas).all()


def test_is_cached_deterministic_and_read_only(rig):
    assert builtin_rig() is rig
    neutral, deltas = rig.neutral.copy(), rig.deltas.copy()
    builtin_rig.cache_clear()
    builtin_rig_module._head_mesh.cache_clear()
    again = builtin_rig()
    np.testing.assert_array_equal(again.neutral, neutral)
    np.testing.assert_array_equal(again.deltas, deltas)
    np.testing.assert_array_equal(again.faces, rig.faces)
    with pytest.raises(ValueError):
        again.deltas[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        again.neutral[0, 0] = 1.0


def test_mesh_is_watertight_and_faces_outward(rig):
    faces = rig.faces.astype(np.int64)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    # consistently oriented closed manifold: each directed edge once, and its reverse once
    assert len(np.unique(directed, axis=0)) == len(directed)
    forward = {tuple(e) for e in directed}
    assert all((b, a) in forward for a, b in directed)
    n_edges = len(directed) // 2
    assert rig.n_vertices - n_edges + len(faces) == 2  # Euler characteristic of a sphere

    verts = rig.neutral.astype(np.float64)
    tri = verts[faces]
    volume_l = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6 * 1e3
    assert 3.0 < volume_l < 6.5, f"head volume {volume_l:.2f} l (positive: normals face out)"

    normals = rig.vertex_normals()
    face_vertices = (verts[:, 2] > 0.02) & (np.abs(verts[:, 0]) < 0.045)
    face_vertices &= (verts[:, 1] > -0.075) & (verts[:, 1] < 0.08)
    assert face_vertices.sum() > 500
    assert (normals[face_vertices, 2] > 0).mean() > 0.97
    assert normals[face_vertices, 2].mean() > 0.7


def test_head_is_adult_sized(rig):
    verts = rig.neutral.astype(np.float64)
    marks = builtin_landmarks()
    extent_cm = (verts.max(0) - verts.min(0)) * 100
    assert 13.5 < extent_cm[0] < 16.0  # head / face width
    assert 20.0 < extent_cm[1] < 25.0  # crown to chin
    assert 18.0 < extent_cm[2] < 23.5  # nose tip to back of the head
    face_length_cm = (marks["hairline"][1] - marks["menton"][1]) * 100
    assert 17.0 < face_length_cm < 20.5
    eyes_cm = np.linalg.norm(marks["eye_centre_L"] - marks["eye_centre_R"]) * 100
    assert 5.8 < eyes_cm < 7.2
    mouth_cm = np.linalg.norm(marks["mouth_corner_L"] - marks["mouth_corner_R"]) * 100
    assert 4.0 < mouth_cm < 6.0
    # the nose tip is the front-most point, and landmarks sit on the skin
    assert np.linalg.norm(verts[verts[:, 2].argmax()] - marks["nose_tip"]) < 0.005
    for name, point in marks.items():
        gap_m = np.linalg.norm(verts - point, axis=1).min()
        if name.startswith(("eye_centre", "jaw_joint")):
            assert 0.005 < gap_m < 0.02, name  # under the skin
        else:
            assert gap_m < 0.004, name


def test_vertex_labels_name_anatomical_regions_on_the_right_side(rig):
    labels = rig.vertex_labels
    assert labels.shape == (rig.n_vertices,)
    assert set(labels) == set(REGION_LABELS)
    verts = rig.neutral.astype(np.float64)
    mean = {name: verts[labels == name].mean(0) for name in REGION_LABELS}
    for name in REGION_LABELS:
        if name.endswith("_L"):
            assert mean[name][0] > 0.005 and mean[name[:-2] + "_R"][0] < -0.005, name
    top_to_bottom = ["forehead", "brow_inner_L", "upper_lid_L", "lower_lid_L", "nose_side_L",
                     "upper_lip", "lower_lip", "chin"]  # fmt: skip
    heights = [mean[name][1] for name in top_to_bottom]
    assert heights == sorted(heights, reverse=True)
    mirror = _mirror_index(rig.neutral)
    swapped = np.array([n[:-2] + "_R" if n.endswith("_L") else
                        n[:-2] + "_L" if n.endswith("_R") else n for n in labels])  # fmt: skip
    np.testing.assert_array_equal(labels[mirror], swapped)


def test_region_weights_are_smooth_falloffs(rig):
    weights = builtin_region_weights()
    assert set(weights) == set(REGION_LABELS) - {"head"}
    for name, w in weights.items():
        assert w.shape == (rig.n_vertices,)
        assert w.min() >= 0.0 and w.max() <= 1.0 + 1e-12, name
        assert w.max() > 0.75, name
        # a falloff, not a switch: most of the region is partial weight
        assert ((w > 0.01) & (w < 0.99)).sum() > 0.3 * (w > 0.01).sum(), name


# --- known-answer motions -----------------------------------------------------------------------


def test_all_weights_zero_give_the_neutral(rig):
    np.testing.assert_array_equal(rig.blend(np.zeros(52)), rig.neutral)
    batch = rig.blend(np.zeros((4, 3, 52)))
    assert batch.shape == (4, 3, rig.n_vertices, 3)
    np.testing.assert_array_equal(batch[2, 1], rig.neutral)
    one = np.zeros(52)
    one[_k("jawOpen")] = 1.0
    np.testing.assert_allclose(rig.blend(one), rig.neutral + rig.deltas[_k("jawOpen")], atol=1e-7)


def test_every_target_is_defined_and_moves_a_realistic_amount(rig):
    assert set(SHAPE_MOTIONS) == {n for n in ARKIT_NAMES if not n.endswith("Right")}
    peaks_mm = np.linalg.norm(rig.deltas, axis=2).max(1) * 1000
    for name, peak_mm in zip(ARKIT_NAMES, peaks_mm, strict=True):
        assert 2.0 < peak_mm < 45.0, f"{name} moves at most {peak_mm:.1f} mm"


def test_no_target_turns_a_triangle_inside_out(rig):
    def normals(verts: np.ndarray) -> np.ndarray:
        tri = verts[rig.faces].astype(np.float64)
        return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])

    rest = normals(rig.neutral)
    poses = list(np.eye(52))
    both = np.zeros(52)
    both[[_k("jawOpen"), _k("mouthClose")]] = 1.0  # mouthClose is meant to ride on jawOpen
    poses.append(both)
    for weights in poses:
        flipped = np.einsum("ij,ij->i", rest, normals(rig.blend(weights))) <= 0
        names = [ARKIT_NAMES[k] for k in np.flatnonzero(weights)]
        assert not flipped.any(), f"{names} turns {flipped.sum()} triangles inside out"


def test_jaw_open_turns_only_the_jaw_about_the_joint_axis(rig):
    verts = rig.neutral.astype(np.float64)
    delta = rig.deltas[_k("jawOpen")].astype(np.float64)
    size = np.linalg.norm(delta, axis=1)
    marks = builtin_landmarks()
    joint = marks["jaw_joint_L"]
    np.testing.assert_allclose(marks["jaw_joint_R"], joint * MIRROR)

    # the upper face stands still; only the lower face moves
    still = ("forehead", "brow_inner", "brow_outer", "upper_lid", "lower_lid", "eye_", "nose",
             "temple")  # fmt: skip
    upper = np.array([label.startswith(still) for label in rig.vertex_labels])
    assert size[upper].max() < 1e-5
    # the upper lip stays too, but for the skin beside it that the cheeks drag a little
    assert size[rig.vertex_labels == "upper_lip"].max() < 0.001
    moving = size > 1e-5
    assert verts[moving, 1].max() < joint[1] + 0.012  # nothing above the cheeks
    assert (size[rig.vertex_labels == "chin"] > 0.02).all()

    # a rotation about the left-right axis through the joints: no motion along the axis, and
    # every point keeps its distance from the axis
    assert np.abs(delta[:, 0]).max() < 1e-6
    before = np.hypot(verts[:, 1] - joint[1], verts[:, 2] - joint[2])
    after = np.hypot(verts[:, 1] + delta[:, 1] - joint[1], verts[:, 2] + delta[:, 2] - joint[2])
    np.testing.assert_allclose(after, before, atol=2e-6)

    # where the jaw weighs fully, all turn by one angle, so farther points move more
    full = builtin_region_weights()["jaw"] > 0.999
    assert full.sum() > 100
    angle_deg = np.degrees(2 * np.arcsin(size[full] / (2 * before[full])))
    assert 20.0 < angle_deg.mean() < 25.0
    assert np.ptp(angle_deg) < 0.05
    order = np.argsort(before[full])
    assert np.all(np.diff(size[full][order]) > -1e-6)

    # the chin swings down and back by a few centimetres
    chin = np.linalg.norm(verts - marks["chin"], axis=1).argmin()
    assert delta[chin, 1] < 0 and delta[chin, 2] < 0
    assert 0.025 < size[chin] < 0.045


def test_right_targets_mirror_the_left_ones(rig):
    mirror = _mirror_index(rig.neutral)
    assert (mirror >= 0).all(), "the neutral is not mirror symmetric"
    np.testing.assert_allclose(rig.neutral[mirror] * MIRROR, rig.neutral, atol=1e-6)
    mirrored_faces = {tuple(np.roll(f, -np.argmin(f))) for f in mirror[rig.faces][:, ::-1]}
    assert mirrored_faces == {tuple(np.roll(f, -np.argmin(f))) for f in rig.faces}
    for name in ARKIT_NAMES:
        delta = rig.deltas[_k(name)]
        if name.endswith("Left"):
            twin = rig.deltas[_k(name[: -len("Left")] + "Right")]
            np.testing.assert_allclose(twin, delta[mirror] * MIRROR, atol=1e-6, err_msg=name)
        elif not name.endswith("Right"):
            np.testing.assert_allclose(delta, delta[mirror] * MIRROR, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", [n for n in ARKIT_NAMES if n.endswith(("Left", "Right"))])
def test_sided_targets_act_on_their_own_side(rig, name):
    sign = 1.0 if name.endswith("Left") else -1.0
    delta = rig.deltas[_k(name)].astype(np.float64)
    summary = _motion_summary(rig.neutral.astype(np.float64), rig.faces, delta)
    if name in SIDEWAYS_SHIFTS:
        assert sign * summary["direction"][0] > 0.5
    else:
        assert sign * summary["centroid"][0] > 0.005
        # the other half of the face barely moves
        other = sign * rig.neutral[:, 0] < -0.01
        assert np.linalg.norm(delta[other], axis=1).max() < 0.25 * np.abs(delta).max()


# (target, region label, axis, sign): which way the region's mean displacement points.
FACS_MOTIONS = [
    ("eyeBlinkLeft", "upper_lid_L", 1, -1), ("eyeWideLeft", "upper_lid_L", 1, +1),
    ("eyeSquintLeft", "lower_lid_L", 1, +1), ("eyeLookUpLeft", "eye_L", 1, +1),
    ("eyeLookDownLeft", "eye_L", 1, -1), ("eyeLookInLeft", "eye_L", 0, -1),
    ("eyeLookOutLeft", "eye_L", 0, +1), ("eyeLookInRight", "eye_R", 0, +1),
    ("eyeLookOutRight", "eye_R", 0, -1),
    ("browDownLeft", "brow_inner_L", 1, -1), ("browDownLeft", "brow_inner_L", 0, -1),
    ("browInnerUp", "brow_inner_L", 1, +1), ("browInnerUp", "brow_inner_R", 1, +1),
    ("browOuterUpLeft", "brow_outer_L", 1, +1),
    ("cheekPuff", "mouth_corner_L", 0, +1), ("cheekPuff", "mouth_corner_R", 0, -1),
    ("cheekSquintLeft", "cheek_L", 1, +1), ("noseSneerLeft", "nose_side_L", 1, +1),
    ("jawOpen", "chin", 1, -1), ("jawForward", "chin", 2, +1), ("jawLeft", "chin", 0, +1),
    ("jawRight", "chin", 0, -1),
    ("mouthClose", "lower_lip", 1, +1), ("mouthClose", "upper_lip", 1, -1),
    ("mouthFunnel", "lower_lip", 2, +1), ("mouthFunnel", "mouth_corner_L", 0, -1),
    ("mouthPucker", "upper_lip", 2, +1), ("mouthPucker", "mouth_corner_L", 0, -1),
    ("mouthLeft", "upper_lip", 0, +1), ("mouthRight", "lower_lip", 0, -1),
    ("mouthSmileLeft", "mouth_corner_L", 1, +1), ("mouthSmileLeft", "mouth_corner_L", 0, +1),
    ("mouthSmileLeft", "mouth_corner_L", 2, -1), ("mouthFrownLeft", "mouth_corner_L", 1, -1),
    ("mouthDimpleLeft", "mouth_corner_L", 2, -1), ("mouthStretchLeft", "mouth_corner_L", 0, +1),
    ("mouthStretchLeft", "mouth_corner_L", 1, -1),
    ("mouthRollLower", "lower_lip", 1, +1), ("mouthRollUpper", "upper_lip", 2, -1),
    ("mouthShrugLower", "chin", 1, +1), ("mouthShrugUpper", "upper_lip", 1, +1),
    ("mouthPressLeft", "lower_lip", 1, +1), ("mouthLowerDownLeft", "lower_lip", 1, -1),
    ("mouthUpperUpLeft", "upper_lip", 1, +1), ("tongueOut", "lower_lip", 2, +1),
]  # fmt: skip


@pytest.mark.parametrize(("name", "region", "axis", "sign"), FACS_MOTIONS)
def test_targets_move_the_region_facs_describes(rig, name, region, axis, sign):
    where = rig.vertex_labels == region
    if name.endswith(("Left", "Right")) and not region.endswith(("_L", "_R")):
        where &= np.sign(rig.neutral[:, 0]) == (1 if name.endswith("Left") else -1)
    mean = rig.deltas[_k(name)][where].mean(0)
    assert sign * mean[axis] > 0.001, f"{name} moves {region} by {mean * 1000} mm"


# --- agreement with a real ARKit rig ------------------------------------------------------------


def _read_obj(text: str) -> tuple[np.ndarray, np.ndarray]:
    verts, faces = [], []
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "v":
            verts.append([float(v) for v in parts[1:4]])
        elif parts and parts[0] == "f":
            ids = [int(p.split("/")[0]) - 1 for p in parts[1:]]
            faces += [[ids[0], ids[i], ids[i + 1]] for i in range(1, len(ids) - 1)]
    return np.array(verts), np.array(faces, dtype=np.int64)


@pytest.fixture(scope="module")
def reference():
    """The reference rig's neutral, faces and targets (as offsets), in its own frame."""
    if not REFERENCE_ZIP.is_file():
        pytest.skip(f"no reference ARKit rig at {REFERENCE_ZIP} (outside the project)")
    with zipfile.ZipFile(REFERENCE_ZIP) as archive:
        files = {Path(n).stem: n for n in archive.namelist() if n.endswith(".obj")}
        neutral, faces = _read_obj(archive.read(files["Neutral"]).decode())
        targets = {
            name: _read_obj(archive.read(files[name]).decode())[0] - neutral
            for name in ARKIT_NAMES
            if name in files
        }
    assert len(targets) == 51 and "tongueOut" not in targets
    return neutral, faces, targets


def _reference_in_our_frame(reference) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
    """Check the reference's axes from its anatomy, flip any that disagree with ours, and move
    its origin onto ours by matching nose tips. Returns neutral, faces, targets, axis signs."""
    neutral, faces, targets = reference
    summary = {n: _motion_summary(neutral, faces, targets[n]) for n in ("eyeBlinkLeft", "jawOpen")}
    signs = np.array([
        # +x is the face's own left: the left eye's blink happens there
        np.sign(summary["eyeBlinkLeft"]["centroid"][0]),
        # +y is up: the eyes are above the jaw, and the jaw opens downward
        np.sign(summary["eyeBlinkLeft"]["centroid"][1] - summary["jawOpen"]["centroid"][1]),
        # +z is out of the face: the midline stands in front of the sides of the face
        np.sign(neutral[np.abs(neutral[:, 0]) < 0.01, 2].mean()
                - neutral[np.abs(neutral[:, 0]) > 0.06, 2].mean()),
    ])  # fmt: skip
    assert np.sign(summary["jawOpen"]["direction"][1] * signs[1]) < 0
    neutral = neutral * signs
    targets = {name: delta * signs for name, delta in targets.items()}
    if np.prod(signs) < 0:  # an odd number of flips turns the triangles inside out
        faces = faces[:, ::-1]
    return neutral, faces, targets, signs


def _nose_tip(verts: np.ndarray) -> np.ndarray:
    midline = verts[np.abs(verts[:, 0]) < 0.01]
    return midline[midline[:, 2].argmax()]


def test_reference_frame_matches_arkit_convention(reference, rig):
    _, _, _, signs = _reference_in_our_frame(reference)
    offset_cm = (_nose_tip(rig.neutral) - _nose_tip(reference[0])) * 100
    print(f"\nreference axis signs (x, y, z) = {signs.astype(int)}; "
          f"nose-tip offset (built-in - reference) = {np.round(offset_cm, 2)} cm")  # fmt: skip
    # The reference is in ARKit's documented frame, and its origin is where ours is.
    np.testing.assert_array_equal(signs, [1, 1, 1])
    assert np.linalg.norm(offset_cm) < 1.0


def test_face_surface_is_close_to_the_reference(reference, rig):
    neutral, _, _, _ = _reference_in_our_frame(reference)
    ours = rig.neutral.astype(np.float64)
    neutral = neutral + (_nose_tip(ours) - _nose_tip(neutral))
    gaps_mm = np.array([np.linalg.norm(ours - p, axis=1).min() for p in neutral]) * 1000
    print(
        f"\nreference vertices to the built-in surface: mean {gaps_mm.mean():.1f} mm, "
        f"90% {np.percentile(gaps_mm, 90):.1f} mm, max {gaps_mm.max():.1f} mm"
    )
    assert gaps_mm.mean() < 4.0
    assert np.percentile(gaps_mm, 90) < 7.0


def test_targets_agree_with_the_reference_rig(reference, rig):
    """Each of the reference's 51 targets against ours, as region-level summaries (the meshes
    differ): where the motion is (centroid distance), which way it goes (cosine of the mean
    displacements) and how far (ratio of the robust peaks)."""
    neutral, faces, targets, _ = _reference_in_our_frame(reference)
    ours = rig.neutral.astype(np.float64)
    neutral = neutral + (_nose_tip(ours) - _nose_tip(neutral))

    rows = []
    for name in ARKIT_NAMES:
        if name not in targets:
            continue
        theirs = _motion_summary(neutral, faces, targets[name])
        mine = _motion_summary(ours, rig.faces, rig.deltas[_k(name)].astype(np.float64))
        distance_cm = np.linalg.norm(mine["centroid"] - theirs["centroid"]) * 100
        cosine = float(mine["direction"] @ theirs["direction"])
        ratio = mine["magnitude"] / theirs["magnitude"]
        side_ok = True
        if name.endswith(("Left", "Right")):
            sign = 1.0 if name.endswith("Left") else -1.0
            axis_value = (mine["direction"] if name in SIDEWAYS_SHIFTS else mine["centroid"])[0]
            side_ok = sign * axis_value > 0
        rows.append((name, distance_cm, cosine, ratio, theirs["magnitude"] * 1000, side_ok))

    print(f"\n{'target':<20} {'centroid cm':>11} {'cosine':>7} {'ratio':>6} {'ref mm':>7}  ok")
    passed = []
    for name, distance_cm, cosine, ratio, ref_mm, side_ok in rows:
        good = distance_cm < 3.0 and cosine > 0.7 and 1 / 3 <= ratio <= 3 and side_ok
        passed.append(good)
        print(f"{name:<20} {distance_cm:11.2f} {cosine:7.2f} {ratio:6.2f} {ref_mm:7.1f}  "
              f"{'yes' if good else 'NO'}")  # fmt: skip
    distance = np.array([r[1] for r in rows])
    cosine = np.array([r[2] for r in rows])
    ratio = np.array([r[3] for r in rows])
    print(
        f"centroid < 3 cm: {(distance < 3).sum()}/51 (worst {rows[distance.argmax()][0]} "
        f"{distance.max():.2f} cm); cosine > 0.7: {(cosine > 0.7).sum()}/51 (worst "
        f"{rows[cosine.argmin()][0]} {cosine.min():.2f}); ratio in [1/3, 3]: "
        f"{((ratio >= 1 / 3) & (ratio <= 3)).sum()}/51 (range {ratio.min():.2f}-"
        f"{ratio.max():.2f}); all three: {sum(passed)}/51"
    )

    assert all(r[5] for r in rows), [r[0] for r in rows if not r[5]]
    assert sum(passed) >= 45
    # and no target misses badly
    assert distance.max() < 4.0
    assert (ratio > 0.25).all() and (ratio < 4.0).all()
