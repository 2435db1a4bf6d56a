"""The built-in face rig: a generated adult head with all 52 ARKit blendshapes, numpy only.

No asset is downloaded. :func:`builtin_rig` casts rays from a point inside the head through a
latitude-longitude grid that crowds toward the face, stops them on a smooth union of
superellipsoids (cranium, jaw, chin), raises facial features along them (brow ridge, eye sockets
and closed lids, nose, lips with a mouth line that runs along one grid row, chin), marks
anatomical regions with smooth falloffs, and composes every ARKit target from moves, turns,
squeezes and bulges of those regions, the jaw turning about the axis through its joints. The
mesh is watertight, outward facing and mirror symmetric; ``...Right`` targets are the mirror
images of ``...Left``. All numbers live in :mod:`imucap.datasets.builtin_rig_shapes`.

``tests/test_builtin_rig.py`` compares every target's motion (where, which way, how much) with
a real ARKit rig.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES

from . import builtin_rig_shapes as tables
from .builtin_rig_shapes import Motion
from .rig import Rig

__all__ = ["REGION_LABELS", "builtin_landmarks", "builtin_region_weights", "builtin_rig"]

_CM = 0.01
_MM = 0.001
_MIRROR = np.array([-1.0, 1.0, 1.0])


def _crowded_samples(
    count: int,
    lo: float,
    hi: float,
    centre: float,
    boost: float,
    width: float,
    *,
    pin: float | None = None,
) -> np.ndarray:
    """``count`` angles in ``[lo, hi]`` (ends excluded) whose density rises by ``1 + boost``
    near ``centre`` (Gaussian ``width``); one sample lands exactly on ``pin`` if given."""
    fine = np.linspace(lo, hi, 4097)
    density = 1.0 + boost * np.exp(-(((fine - centre) / width) ** 2))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(fine))])
    cdf /= cdf[-1]
    steps = np.arange(1, count + 1, dtype=np.float64)
    if pin is not None:
        at = np.interp(pin, fine, cdf) * (count + 1)
        steps += at - np.round(at)
    return np.interp(steps / (count + 1), cdf, fine)


def _elevation(points_cm: np.ndarray) -> np.ndarray:
    """Elevation (rad) of points ``(N, 3)`` seen from the ray origin."""
    rel = np.atleast_2d(points_cm) - np.array(tables.RAY_ORIGIN_CM)
    return np.arctan2(rel[:, 1], np.hypot(rel[:, 0], rel[:, 2]))


def _sphere_grid() -> tuple[np.ndarray, np.ndarray]:
    """Unit directions on a latitude-longitude grid about the vertical axis, crowded toward the
    face, with a row exactly on the mouth line: directions ``(V, 3)`` and triangles ``(F, 3)``,
    counter-clockwise seen from outside."""
    n_lon, n_lat = tables.GRID_LONGITUDES, tables.GRID_LATITUDES
    mouth_elev = _elevation(np.array(tables.LANDMARKS_CM["mouth_centre"]))[0]
    boost, width_deg = tables.GRID_FACE_CROWDING
    half = _crowded_samples(n_lon // 2 - 1, 0.0, np.pi, 0.0, boost, np.radians(width_deg))
    azimuth = np.concatenate([[0.0], half, [np.pi], -half[::-1]])
    elev = _crowded_samples(
        n_lat,
        -np.pi / 2,
        np.pi / 2,
        np.radians(tables.GRID_FACE_ELEVATION_DEG),
        boost,
        np.radians(width_deg),
        pin=mouth_elev,
    )
    el, az = np.meshgrid(elev, azimuth, indexing="ij")
    ring = np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], -1)
    dirs = np.concatenate([[[0.0, -1.0, 0.0]], ring.reshape(-1, 3), [[0.0, 1.0, 0.0]]])
    n_ring = len(azimuth)

    def idx(i: int, k: np.ndarray) -> np.ndarray:
        return 1 + i * n_ring + k % n_ring

    k = np.arange(n_ring)
    k1 = (k + 1) % n_ring
    tris = [np.stack([np.zeros(n_ring, np.int64), idx(0, k1), idx(0, k)], 1)]
    top = len(dirs) - 1
    tris.append(np.stack([np.full(n_ring, top), idx(n_lat - 1, k), idx(n_lat - 1, k1)], 1))
    # Split each quad along the diagonal that mirrors across x = 0, so the mesh is symmetric.
    right_side = np.sin(azimuth[k]) + np.sin(azimuth[k1]) < 0.0
    for i in range(n_lat - 1):
        a, b, c, d = idx(i, k), idx(i, k1), idx(i + 1, k1), idx(i + 1, k)
        first = np.where(right_side[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
        second = np.where(right_side[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
        tris += [first, second]
    return dirs, np.concatenate(tris).astype(np.int64)


def _head_field(points_cm: np.ndarray) -> np.ndarray:
    """Implicit head volume: negative inside, about a signed distance in cm near the surface."""
    values = []
    for centre, axes, exponent in tables.HEAD_VOLUMES_CM:
        q = np.abs((points_cm - np.array(centre)) / np.array(axes))
        level = np.sum(q**exponent, axis=1) ** (1.0 / exponent)
        values.append((level - 1.0) * min(axes))
    k = tables.BLEND_RADIUS_CM
    stacked = np.stack(values)
    low = stacked.min(0)
    return low - k * np.log(np.sum(np.exp(-(stacked - low) / k), axis=0))


def _ray_radius(origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Distance (cm) from ``origin`` along each direction to where the head field crosses zero."""
    lo = np.zeros(len(directions))
    hi = np.full(len(directions), 30.0)
    for _ in range(36):
        mid = 0.5 * (lo + hi)
        inside = _head_field(origin + mid[:, None] * directions) < 0
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    return 0.5 * (lo + hi)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, and the C1 cubic ``3t^2 - 2t^3`` between."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _feature_height(base_cm: np.ndarray) -> np.ndarray:
    """Height (cm) of the facial features above the base surface at base points ``(N, 3)``."""
    x, y, z = base_cm.T
    front = _smoothstep((z + 1.0) / 3.0)
    height = np.zeros(len(base_cm))
    for (cx, cy), (sx, sy), amp, paired in tables.FACE_FEATURES_CM:
        for sign in (1.0, -1.0) if paired else (1.0,):
            height += amp * np.exp(-0.5 * (((x - sign * cx) / sx) ** 2 + ((y - cy) / sy) ** 2))
    # The mouth line follows a grid row (constant elevation), so it is a crease, not a zigzag.
    half_width, depth, sigma = tables.MOUTH_LINE_CM
    across = np.clip((np.abs(x) - half_width) / 0.4, 0.0, None)
    height -= depth * np.exp(-0.5 * (_drop_below_mouth_cm(base_cm) / sigma) ** 2 - across**2)
    nasion_y, tip_y, tip_h, base_y = tables.NOSE_PROFILE_CM
    bridge_w, tip_w = tables.NOSE_WIDTH_CM
    t = np.clip((nasion_y - y) / (nasion_y - tip_y), 0.0, 1.0)
    below = np.clip((tip_y - y) / (tip_y - base_y), 0.0, None)
    profile = tip_h * t**1.4 * np.exp(-2.2 * below**2)
    width = bridge_w + (tip_w - bridge_w) * t
    above = np.clip((y - nasion_y) / 0.6, 0.0, None)
    height += profile * np.exp(-0.5 * (x / width) ** 2) * np.exp(-(above**2))
    return height * front


@functools.lru_cache(maxsize=1)
def _head_mesh() -> tuple[np.ndarray, np.ndarray]:
    """Neutral head vertices ``(V, 3)`` float64 cm and triangles ``(F, 3)``, CCW outward."""
    directions, faces = _sphere_grid()
    origin = np.array(tables.RAY_ORIGIN_CM)
    radius = _ray_radius(origin, directions)
    base = origin + radius[:, None] * directions
    radius = radius + _feature_height(base)
    verts = origin + radius[:, None] * directions
    verts.flags.writeable = False
    faces.flags.writeable = False
    return verts, faces


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals."""
    tri = verts[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(verts)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _landmark(name: str) -> np.ndarray:
    """A landmark in cm; ``_R`` names are the mirrors of the tabled ``_L`` ones."""
    if name.endswith("_R"):
        return np.array(tables.LANDMARKS_CM[_left_name(name)]) * _MIRROR
    return np.array(tables.LANDMARKS_CM[name])


def _falloff(points_cm: np.ndarray, spec: tuple) -> np.ndarray:
    """Weight of a lopsided ellipsoidal region (see ``REGIONS_CM``) at points ``(N, 3)``."""
    centre, rx, ry, rz, plateau, cut = spec
    offset = points_cm - np.array(centre)
    scaled = np.stack(
        [offset[:, k] / np.where(offset[:, k] < 0, r[0], r[1]) for k, r in enumerate((rx, ry, rz))],
        1,
    )
    weight = _smoothstep((1.0 - np.linalg.norm(scaled, axis=1)) / (1.0 - plateau))
    if cut in ("above_mouth", "below_mouth"):
        below = _below_mouth(points_cm)
        weight = weight * (below if cut == "below_mouth" else 1.0 - below)
    elif cut:
        raise ValueError(f"unknown region cut {cut!r}")
    return weight


def _drop_below_mouth_cm(points_cm: np.ndarray) -> np.ndarray:
    """How far (cm, roughly along the surface) each point lies below the mouth line's grid row."""
    rel = points_cm - np.array(tables.RAY_ORIGIN_CM)
    mouth_elev = _elevation(np.array(tables.LANDMARKS_CM["mouth_centre"]))[0]
    return (mouth_elev - _elevation(points_cm)) * np.linalg.norm(rel, axis=1)


def _mouth_sides(points_cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far each point is beside the mouth (0 between the corners, 1 out on the cheek), and
    the sharp below-the-mouth-line step that holds between the corners."""
    start, span = tables.JAW_SIDE_CM
    side = _smoothstep((np.abs(points_cm[:, 0]) - start) / span)
    width = tables.JAW_LIP_WIDTH_CM
    middle = _smoothstep((_drop_below_mouth_cm(points_cm) + 0.5 * width) / width)
    return side, middle


def _below_mouth(points_cm: np.ndarray) -> np.ndarray:
    """1 below the mouth line, 0 above: a sharp step between the corners that widens outside."""
    side, middle = _mouth_sides(points_cm)
    wide = tables.LIP_CUT_SIDE_WIDTH_CM
    soft = _smoothstep((_drop_below_mouth_cm(points_cm) + 0.5 * wide) / wide)
    return (1.0 - side) * middle + side * soft


def _jaw_weight(points_cm: np.ndarray) -> np.ndarray:
    """The lower jaw (see ``JAW_*`` in the tables): 1 below the mouth line, a soft ramp down the
    cheeks beside the mouth, nothing behind the jaw joints."""
    y, z = points_cm[:, 1], points_cm[:, 2]
    side, middle = _mouth_sides(points_cm)
    top, bottom = tables.JAW_CHEEK_CM
    cheeks = tables.JAW_CHEEK_WEIGHT * _smoothstep((top - y) / (top - bottom))
    front, back = tables.JAW_BACK_FADE_CM
    ahead = _smoothstep((z - back) / (front - back))
    return ((1.0 - side) * middle + side * cheeks) * ahead


def _region_weight(name: str, points_cm: np.ndarray) -> np.ndarray:
    """Weight in ``[0, 1]`` of region ``name`` (``_R``: the mirror of ``_L``) at points (cm)."""
    if name == "jaw":
        return _jaw_weight(points_cm)
    if name.endswith("_R"):
        return _falloff(points_cm * _MIRROR, tables.REGIONS_CM[_left_name(name)])
    return _falloff(points_cm, tables.REGIONS_CM[name])


def _rotation(axis: np.ndarray, angles_rad: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(N, 3, 3)`` about one unit ``axis`` by ``angles_rad`` ``(N,)``."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    s = np.sin(angles_rad)[:, None, None]
    c = np.cos(angles_rad)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def _motion_delta(
    motion: Motion,
    points_cm: np.ndarray,
    normals: np.ndarray,
    weight: Callable[[str], np.ndarray],
) -> np.ndarray:
    """Displacement (cm) of every point under one motion, for the face's left side."""
    w = weight(motion.region)
    vec = np.array(motion.vector, dtype=np.float64)
    if motion.kind == "move":
        delta = np.broadcast_to(vec * _MM / _CM, points_cm.shape)
        if motion.slide:
            tangent = delta - np.sum(delta * normals, 1, keepdims=True) * normals
            length = np.linalg.norm(tangent, axis=1, keepdims=True)
            delta = tangent * np.linalg.norm(vec * _MM / _CM) / np.where(length > 0, length, 1.0)
        return w[:, None] * delta
    if motion.kind == "push":
        return (w * motion.amount * _MM / _CM)[:, None] * normals
    if motion.kind == "scale":
        return w[:, None] * vec * (points_cm - _landmark(motion.pivot))
    if motion.kind == "jaw":
        axis, pivot = np.array([1.0, 0.0, 0.0]), _landmark("jaw_joint_L")
    elif motion.kind == "turn":
        axis, pivot = vec / np.linalg.norm(vec), _landmark(motion.pivot)
    else:
        raise ValueError(f"unknown motion kind {motion.kind!r}")
    rot = _rotation(axis, np.radians(motion.amount) * w)
    rel = points_cm - pivot
    return np.einsum("nij,nj->ni", rot, rel) - rel


def _shape_delta(
    motions: tuple[Motion, ...], points_cm: np.ndarray, normals: np.ndarray, *, mirrored: bool
) -> np.ndarray:
    """Displacement (cm) of a shape given for the face's left, or of its mirror image."""
    flip = _MIRROR if mirrored else np.ones(3)
    total = np.zeros_like(points_cm)
    for motion in motions:
        for side in (1.0, -1.0) if motion.both_sides else (1.0,):
            f = flip * (_MIRROR if side < 0 else 1.0)
            p, n = points_cm * f, normals * f
            cache: dict[str, np.ndarray] = {}

            def weight(name: str, p: np.ndarray = p, cache: dict = cache) -> np.ndarray:
                if name not in cache:
                    cache[name] = _region_weight(name, p)
                return cache[name]

            total += _motion_delta(motion, p, n, weight) * f
    return total


def _mirror_name(name: str) -> str | None:
    """The ``...Left`` shape that ``name`` mirrors, if it is a ``...Right`` shape."""
    return name[: -len("Right")] + "Left" if name.endswith("Right") else None


def _left_name(region: str) -> str:
    """The tabled (left) name of a region: ``_R`` names are mirrors of ``_L`` ones."""
    return region[:-2] + "_L" if region.endswith("_R") else region


def _both_sides(regions: tuple[str, ...]) -> tuple[str, ...]:
    """Region names with every ``_L`` followed by its ``_R`` mirror."""
    return tuple(n for r in regions for n in ((r, r[:-2] + "_R") if r.endswith("_L") else (r,)))


#: Every label :func:`builtin_rig` puts on a vertex: the anatomical regions, and ``"head"``.
REGION_LABELS: tuple[str, ...] = (*_both_sides(tables.LABEL_REGIONS), "head")


def _vertex_labels(points_cm: np.ndarray) -> np.ndarray:
    """The region each vertex belongs to most, or ``"head"`` where none reaches it."""
    names = _both_sides(tables.LABEL_REGIONS)
    weights = np.stack([_region_weight(name, points_cm) for name in names])
    # The jaw region spans the lower lip and the chin: let those narrower regions win there.
    priority = np.array([tables.LABEL_PRIORITY.get(_left_name(name), 1.0) for name in names])
    labels = np.array(names)[(weights * priority[:, None]).argmax(0)]
    return np.where(weights.max(0) < tables.LABEL_MIN_WEIGHT, "head", labels)


def builtin_landmarks() -> dict[str, np.ndarray]:
    """Anatomical landmarks of the built-in rig's neutral head, metres, both sides spelled out.

    Returns:
        ``name -> (3,) float64`` position; paired landmarks come as ``..._L`` and ``..._R``.
    """
    out = {}
    for name in tables.LANDMARKS_CM:
        out[name] = _landmark(name) * _CM
        if name.endswith("_L"):
            out[name[:-2] + "_R"] = _landmark(name[:-2] + "_R") * _CM
    return out


def builtin_region_weights() -> dict[str, np.ndarray]:
    """Smooth weights of the built-in rig's anatomical regions on its vertices.

    Returns:
        ``region -> (V,) float64`` in ``[0, 1]``, for every name in :data:`REGION_LABELS` but
        ``"head"``, in the vertex order of :func:`builtin_rig`.
    """
    verts, _ = _head_mesh()
    return {name: _region_weight(name, verts) for name in _both_sides(tables.LABEL_REGIONS)}


@functools.lru_cache(maxsize=1)
def builtin_rig() -> Rig:
    """The generated ARKit-52 head (cached; its arrays are read-only).

    About 5,400 vertices in ARKit's head frame (metres, +x the face's left, +y up, +z out of the
    face), watertight and mirror symmetric, with all 52 targets (``tongueOut`` is a stand-in: the
    mesh has no tongue) and a region label per vertex. Built in well under a second.

    Returns:
        A :class:`~imucap.datasets.rig.Rig` named ``"builtin"``.
    """
    verts, faces = _head_mesh()
    normals = _vertex_normals(verts, faces)
    deltas = np.empty((NUM_BLENDSHAPES, len(verts), 3))
    for k, name in enumerate(ARKIT_NAMES):
        source = _mirror_name(name)
        motions = tables.SHAPE_MOTIONS[source or name]
        deltas[k] = _shape_delta(motions, verts, normals, mirrored=source is not None)
    rig = Rig(
        neutral=(verts * _CM).astype(np.float32),
        faces=faces.astype(np.int32),
        deltas=(deltas * _CM).astype(np.float32),
        present=np.ones(NUM_BLENDSHAPES, dtype=bool),
        name="builtin",
        vertex_labels=_vertex_labels(verts),
    )
    for array in (rig.neutral, rig.faces, rig.deltas, rig.present, rig.vertex_labels):
        array.flags.writeable = False
    return rig
