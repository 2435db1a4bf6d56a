"""Sensor placements: presets fitted to rigs by anatomy, placement files, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imucap.datasets.placement import PRESETS, Placement, PlacementError, preset
from imucap.datasets.rig import Rig

ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"
REFERENCE = ASSETS / "arkit_reference_blendshapes.zip"


def sphere_head(radius=0.09, n_lat=40, n_lon=80) -> Rig:
    """A ball head with outward-facing triangles, in ARKit's frame."""
    lat = np.linspace(0, np.pi, n_lat)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    pts = np.stack([np.sin(la) * np.sin(lo), np.cos(la), np.sin(la) * np.cos(lo)], -1)
    verts = (radius * pts).reshape(-1, 3)
    faces = []
    for i in range(n_lat - 1):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            faces += [(a, c, b), (b, c, d)]
    return Rig(verts.astype(np.float32), np.array(faces, np.int32),
               np.zeros((52, len(verts), 3), np.float32), np.zeros(52, bool), name="ball")


def check_anatomy(p: Placement) -> None:
    pts = dict(zip(p.sites, p.points, strict=True))
    for site, point in pts.items():
        if site.endswith("_l"):
            assert point[0] > 0.01, site  # the face's left is +x
            mirror = pts.get(site[:-2] + "_r")
            if mirror is not None:
                assert np.allclose(point * [-1, 1, 1], mirror, atol=0.01)
    order = ["frontalis_l", "orbicularis_oculi_l", "zygomaticus_minor_l", "buccinator_l",
             "mentalis"]
    heights = [pts[s][1] for s in order if s in pts]
    assert heights == sorted(heights, reverse=True)  # brow above eye above cheek above chin


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_fit_a_simple_head(name):
    rig = sphere_head()
    p = preset(name, rig)
    assert p.sites == PRESETS[name]
    assert np.allclose(np.linalg.norm(p.points, axis=1), 0.09, atol=0.002)  # on the skin
    check_anatomy(p)
    attached = p.attach(rig)
    normals = attached.head_from_sensor[:, :, 2]
    radial = p.points / np.linalg.norm(p.points, axis=1, keepdims=True)
    assert np.all(np.einsum("ij,ij->i", normals, radial) > 0.95)  # sensor z out of the skin


@pytest.mark.skipif(not REFERENCE.exists(), reason="../shared/assets is absent (no real rig)")
def test_presets_fit_the_real_arkit_rig():
    from imucap.datasets.rig_io import load_rig

    rig = load_rig(REFERENCE)
    p = preset("imusic11+head", rig)
    check_anatomy(p)
    p.attach(rig, max_distance_m=1e-4)


def test_placement_file_round_trip(tmp_path):
    rig = sphere_head()
    p = preset("face6", rig)
    path = tmp_path / "mine.json"
    p.save(path)
    back = Placement.load(path)
    assert back.sites == p.sites
    assert np.allclose(back.points, p.points, atol=1e-6)
    assert json.loads(path.read_text())["format"] == 1


def test_user_site_off_the_mesh_names_it(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "sites": [
        {"name": "nose", "point_m": [0.0, 0.0, 0.09]},
        {"name": "floating", "point_m": [0.0, 0.0, 0.15]}]}))
    with pytest.raises(PlacementError, match=r"'floating' is 6\.0 cm off the rig's surface"):
        Placement.load(path).attach(sphere_head())


@pytest.mark.parametrize("content, message", [
    ("not json", "not a placement file"),
    ('{"format": 2, "sites": []}', "format 2"),
    ('{"sites": [{"name": "a"}]}', "needs 'name' and 'point_m'"),
    ('{"sites": []}', "no sites"),
    ('{"sites": [{"name": "a", "point_m": [0,0,0]}, {"name": "a", "point_m": [0,0,0]}]}',
     "repeat"),
])
def test_bad_placement_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(PlacementError, match=message):
        Placement.load(path)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(PlacementError, match="imusic11"):
        preset("everywhere", sphere_head())


def test_presets_fit_the_builtin_rig_and_jaw_opening_moves_only_jaw_sites():
    from imucap.datasets.builtin_rig import builtin_rig
    from imucap.datasets.imu_sim import ideal_imu, site_poses
    from imucap.vocab import index_of

    rig = builtin_rig()
    p = preset("imusic11+head", rig)
    check_anatomy(p)
    sites = p.attach(rig, max_distance_m=1e-4)
    t = np.arange(400) / 200.0
    weights = np.zeros((len(t), 52))
    weights[:, index_of("jawOpen")] = 0.5 - 0.5 * np.cos(2 * np.pi * t)
    pos, rot = site_poses(rig, sites, weights)
    head = np.zeros((len(t), 3)), np.broadcast_to(np.eye(3), (len(t), 3, 3))
    accel, gyro = ideal_imu(*head, pos, rot, 1 / 200.0)
    motion = dict(zip(p.sites, np.abs(gyro).max(axis=(0, 2)), strict=True))
    for site in ("frontalis_l", "frontalis_r", "orbicularis_oculi_l", "head_ref"):
        assert motion[site] < 1e-6, site
    assert motion["mentalis"] > 0.5  # rad/s: the chin turns with the jaw
    assert motion["mentalis"] > 5 * motion["zygomaticus_minor_l"]
