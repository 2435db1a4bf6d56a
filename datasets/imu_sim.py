"""What IMUs on the skin of a rigged face measure: ideal specific force and angular rate.

Each sensor sits on one triangle of the rig (a point given by barycentric coordinates). Its
pose in the head frame follows that triangle as the blendshapes deform it: position by the
barycentric mix of the triangle's corners, orientation by the rotation part (polar factor) of the
triangle's deformation gradient. The head moves in the world (y up, gravity along −y).
The accelerometer measures specific force in its own axes, ``R_ws^T (p̈_ws − g)``, so a still
sensor reads +9.81 m/s² on its upward axis; the gyroscope measures the body angular rate,
``vee(R_ws^T Ṙ_ws)``. Derivatives are central differences of motion sampled on a fine,
uniform grid, so the motion given here must be smooth (sampled from continuous generators or
interpolated with cubic splines).

Chip errors (noise, bias, scale, quantisation, saturation) are added afterwards by the sensor
models; this module is the noise-free physics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imucap.rotations import matrix_to_rotvec, rotvec_to_matrix

from .rig import Rig

GRAVITY_MPS2 = 9.80665
WORLD_GRAVITY = np.array([0.0, -GRAVITY_MPS2, 0.0])
"""Gravity in the world frame, whose +y points up."""

EARTH_FIELD_UT = np.array([0.0, -40.0, 25.0])
"""A typical mid-latitude geomagnetic field in the world frame, µT: 47 µT, dipping 58° below
the horizontal, its horizontal part along +z ("north" is +z in the simulation's world)."""

__all__ = ["GRAVITY_MPS2", "WORLD_GRAVITY", "SiteAttachment", "attach_sites",
           "closest_point_on_triangles", "ideal_imu", "lag_poses", "matrix_to_quat",
           "matrix_to_rotvec", "rotvec_to_matrix", "site_poses"]


def _surface_frame(corners: np.ndarray) -> np.ndarray:
    """A right-handed frame ``(..., 3, 3)`` (columns x, y, z) of triangles ``(..., 3, 3)``.

    z is the outward normal (counter-clockwise corners); x is the first edge's direction.
    """
    e1 = corners[..., 1, :] - corners[..., 0, :]
    e2 = corners[..., 2, :] - corners[..., 0, :]
    z = np.cross(e1, e2)
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    x = e1 / np.linalg.norm(e1, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1)


@dataclass(frozen=True, eq=False)
class SiteAttachment:
    """Where sensors sit on a rig.

    Attributes:
        names: Site name of each sensor.
        triangles: Index of the triangle each sensor sits on, ``(S,)``.
        bary: Barycentric coordinates on that triangle, ``(S, 3)``.
        head_from_sensor: Each sensor's rest orientation in the head frame, ``(S, 3, 3)``
            (columns: the sensor's x, y, z axes); z is the skin's outward normal unless a
            mounting rotation turned it.
    """

    names: tuple[str, ...]
    triangles: np.ndarray
    bary: np.ndarray
    head_from_sensor: np.ndarray


def closest_point_on_triangles(point: np.ndarray, corners: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of each triangle ``(F, 3, 3)`` to ``point``: distances and barycentrics.

    Returns:
        ``(distance (F,), bary (F, 3))``.
    """
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    ab, ac, ap = b - a, c - a, point - a
    d00 = np.einsum("ij,ij->i", ab, ab)
    d01 = np.einsum("ij,ij->i", ab, ac)
    d11 = np.einsum("ij,ij->i", ac, ac)
    d20 = np.einsum("ij,ij->i", ap, ab)
    d21 = np.einsum("ij,ij->i", ap, ac)
    denom = np.where(np.abs(d00 * d11 - d01 * d01) > 1e-20, d00 * d11 - d01 * d01, 1e-20)
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    bary = np.stack([1 - v - w, v, w], axis=-1)
    if np.any(bary < 0):
        # Outside the triangle: clamp by projecting onto each edge and keeping the nearest.
        best = np.full(len(a), np.inf)
        best_bary = bary.copy()
        inside = np.all(bary >= 0, axis=1)
        p_in = np.einsum("fk,fkj->fj", bary, corners)
        best[inside] = np.linalg.norm(p_in[inside] - point, axis=1)
        for i, j in ((0, 1), (1, 2), (2, 0)):
            p0, p1 = corners[:, i], corners[:, j]
            seg = p1 - p0
            t = np.clip(np.einsum("fj,fj->f", point - p0, seg)
                        / np.maximum(np.einsum("fj,fj->f", seg, seg), 1e-20), 0.0, 1.0)
            q = p0 + t[:, None] * seg
            d = np.linalg.norm(q - point, axis=1)
            better = (~inside) & (d < best)
            best[better] = d[better]
            bb = np.zeros((len(a), 3))
            bb[:, i] = 1 - t
            bb[:, j] = t
            best_bary[better] = bb[better]
        return best, best_bary
    p = np.einsum("fk,fkj->fj", bary, corners)
    return np.linalg.norm(p - point, axis=1), bary


def attach_sites(rig: Rig, names: tuple[str, ...], points: np.ndarray,
                 mount_rotvecs: np.ndarray | None = None, *,
                 max_distance_m: float = 0.01) -> SiteAttachment:
    """Put sensors on the rig's surface at the points nearest to ``points`` ``(S, 3)``.

    Args:
        rig: The face rig.
        names: Site names.
        points: Wanted positions in the head frame, metres.
        mount_rotvecs: Rotation of each sensor relative to the surface frame (x along the
            triangle's first edge turned toward +x of the head, z out of the skin), as rotation
            vectors in radians; None for flat, unrotated mounting.
        max_distance_m: A point farther than this from the surface is refused.

    Raises:
        ValueError: A point is off the mesh (the message names it and says how far).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (len(names), 3):
        raise ValueError(f"{len(names)} site names need ({len(names)}, 3) points, "
                         f"got {points.shape}")
    corners = rig.neutral[rig.faces].astype(np.float64)
    tris, barys, frames = [], [], []
    for name, point in zip(names, points, strict=True):
        dist, bary = closest_point_on_triangles(point, corners)
        f = int(np.argmin(dist))
        if dist[f] > max_distance_m:
            raise ValueError(f"site {name!r} is {dist[f] * 100:.1f} cm off the rig's surface "
                             f"(at most {max_distance_m * 100:.1f} cm): move it onto the face")
        tris.append(f)
        barys.append(bary[f])
        frames.append(_site_rest_frame(corners[f]))
    head_from_sensor = np.stack(frames)
    if mount_rotvecs is not None:
        head_from_sensor = head_from_sensor @ rotvec_to_matrix(np.asarray(mount_rotvecs))
    return SiteAttachment(tuple(names), np.array(tris), np.array(barys), head_from_sensor)


def _site_rest_frame(corners: np.ndarray) -> np.ndarray:
    """Sensor axes at rest: z out of the skin, x as close to the head's +x as the skin allows."""
    frame = _surface_frame(corners)
    z = frame[:, 2]
    x = np.array([1.0, 0.0, 0.0]) - z[0] * z
    if np.linalg.norm(x) < 1e-3:  # skin facing sideways: use the head's up direction instead
        x = np.array([0.0, 1.0, 0.0]) - z[1] * z
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=-1)


def site_poses(rig: Rig, sites: SiteAttachment, weights: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Sensor positions ``(T, S, 3)`` and orientations ``(T, S, 3, 3)`` in the head frame.

    Only the sensors' triangles are blended, so this costs little per frame.
    """
    w = np.asarray(weights, dtype=np.float64)
    idx = rig.faces[sites.triangles]  # (S, 3) vertex indices
    rest = rig.neutral[idx].astype(np.float64)  # (S, 3, 3)
    deltas = rig.deltas[:, idx].astype(np.float64).reshape(w.shape[1], -1)  # (52, S*9)
    corners = rest + (w @ deltas).reshape(len(w), *rest.shape)  # (T, S, 3, 3), one product
    pos = np.einsum("sk,tskj->tsj", sites.bary, corners)
    rot = _skin_rotation(rest, corners)  # (T, S, 3, 3)
    return pos, rot @ sites.head_from_sensor


def _skin_rotation(rest: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Rotations ``(T, S, 3, 3)`` of the skin patches from rest to now.

    The rotation is the polar factor of the triangle's deformation gradient, the map that takes
    the rest edges and unit normal onto the current ones: it separates turning from stretching
    exactly, where a least-squares (Kabsch) fit of the corners would tilt a patch that shrinks
    unevenly.
    """
    def basis(tri: np.ndarray) -> np.ndarray:
        e1 = tri[..., 1, :] - tri[..., 0, :]
        e2 = tri[..., 2, :] - tri[..., 0, :]
        n = np.cross(e1, e2)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        return np.stack([e1, e2, n], axis=-1)  # columns

    grad = basis(cur) @ np.linalg.inv(basis(rest))[None]  # (T, S, 3, 3)
    u, _, vt = np.linalg.svd(grad)
    r = u @ vt
    flip = np.linalg.det(r) < 0
    if np.any(flip):  # a reflection would mean an inverted triangle; keep a proper rotation
        u[flip, :, 2] *= -1
        r = u @ vt
    return r


def ideal_imu(head_pos: np.ndarray, head_rot: np.ndarray, site_pos: np.ndarray,
              site_rot: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free accelerometer and gyroscope readings of sensors moving with a head.

    Args:
        head_pos: Head origin in the world, ``(T, 3)`` metres.
        head_rot: World-from-head rotations, ``(T, 3, 3)``.
        site_pos: Sensor positions in the head frame, ``(T, S, 3)``.
        site_rot: Head-from-sensor rotations, ``(T, S, 3, 3)``.
        dt_s: Time step of the uniform grid, seconds.

    Returns:
        ``(accel (T, S, 3) m/s², gyro (T, S, 3) rad/s)`` in each sensor's axes. The first and
        last samples use one-sided differences; simulate a margin and drop it.
    """
    world_pos = head_pos[:, None, :] + np.einsum("tij,tsj->tsi", head_rot, site_pos)
    world_rot = head_rot[:, None] @ site_rot  # (T, S, 3, 3)
    acc_world = np.empty_like(world_pos)
    acc_world[1:-1] = (world_pos[2:] - 2 * world_pos[1:-1] + world_pos[:-2]) / dt_s**2
    acc_world[0], acc_world[-1] = acc_world[1], acc_world[-2]
    specific = acc_world - WORLD_GRAVITY
    accel = np.einsum("tsji,tsj->tsi", world_rot, specific)
    gyro = np.empty_like(world_pos)
    # R(t-1)^T R(t+1) is the body-frame rotation over two steps; its log over 2 dt is the body
    # rate at t to second order (the axis is the same in the frames at t-1 and t+1).
    rel = world_rot[:-2].swapaxes(-1, -2) @ world_rot[2:]
    gyro[1:-1] = matrix_to_rotvec(rel) / (2 * dt_s)
    gyro[0], gyro[-1] = gyro[1], gyro[-2]
    return accel, gyro


def lag_poses(pos: np.ndarray, rot: np.ndarray, rest_rot: np.ndarray, lag_s: float,
              dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Soft tissue between skin and sensor: the sensor follows the skin's pose with a lag.

    A first-order low-pass with time constant ``lag_s`` on each sensor's position and on its
    rotation away from rest (as a rotation vector), in the head frame.

    Args:
        pos: Sensor positions ``(T, S, 3)``.
        rot: Head-from-sensor rotations ``(T, S, 3, 3)``.
        rest_rot: The sensors' rest rotations ``(S, 3, 3)``.
        lag_s: Time constant, seconds (0: no lag).
        dt_s: Time step.
    """
    if lag_s <= 0:
        return pos, rot
    alpha = dt_s / (lag_s + dt_s)
    turn = matrix_to_rotvec(rot @ rest_rot.swapaxes(-1, -2)[None])  # (T, S, 3) from rest
    out_p, out_r = np.empty_like(pos), np.empty_like(turn)
    out_p[0], out_r[0] = pos[0], turn[0]
    for k in range(1, len(pos)):
        out_p[k] = out_p[k - 1] + alpha * (pos[k] - out_p[k - 1])
        out_r[k] = out_r[k - 1] + alpha * (turn[k] - out_r[k - 1])
    return out_p, rotvec_to_matrix(out_r) @ rest_rot[None]


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` (w, x, y, z, with w ≥ 0) of rotation matrices."""
    rv = matrix_to_rotvec(r)
    angle = np.linalg.norm(rv, axis=-1, keepdims=True)
    axis = rv / np.where(angle > 1e-12, angle, 1.0)
    return np.concatenate([np.cos(angle / 2), axis * np.sin(angle / 2)], axis=-1)


def ideal_mag_quat(head_rot: np.ndarray, site_rot: np.ndarray,
                   field_ut: np.ndarray = EARTH_FIELD_UT) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free magnetometer (µT) and orientation (world from sensor) of each sensor.

    Returns:
        ``(mag (T, S, 3), quat (T, S, 4))``: the field in each sensor's axes, and each
        sensor's orientation in the world as an on-board fusion would report it.
    """
    world_rot = head_rot[:, None] @ site_rot
    mag = np.einsum("tsji,j->tsi", world_rot, np.asarray(field_ut, float))
    return mag, matrix_to_quat(world_rot)
