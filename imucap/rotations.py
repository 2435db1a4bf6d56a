"""Rotation helpers shared by the emulator and the simulator: rotation vectors and matrices."""

from __future__ import annotations

import numpy as np


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` from rotation vectors ``(..., 3)`` (Rodrigues)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    theta = np.linalg.norm(rotvec, axis=-1)[..., None, None]
    k = _skew(rotvec)
    safe = np.where(theta > 1e-12, theta, 1.0)
    a = np.where(theta > 1e-12, np.sin(theta) / safe, 1.0)
    b = np.where(theta > 1e-12, (1.0 - np.cos(theta)) / safe**2, 0.5)
    return np.eye(3) + a * k + b * (k @ k)


def matrix_to_rotvec(r: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(..., 3)`` of rotation matrices ``(..., 3, 3)`` (the log map)."""
    cos = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)
    vee = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0],
                    r[..., 1, 0] - r[..., 0, 1]], axis=-1)
    sin = np.sin(theta)
    scale = np.where(sin > 1e-9, theta / (2.0 * np.where(sin > 1e-9, sin, 1.0)), 0.5)
    # Near 180° the formula above loses precision; face and head motion between two samples
    # never comes close, so no special case is needed here.
    return vee * scale[..., None]


def _skew(v: np.ndarray) -> np.ndarray:
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = np.zeros_like(x)
    return np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1),
                     np.stack([-y, x, zero], -1)], -2)


def ypr_to_rotvec(ypr: np.ndarray) -> np.ndarray:
    """Rotation vectors of head yaw (about +y), pitch (about +x) and roll (about +z), applied
    in that order (as Live Link Face and ARKit report a head), ``(T, 3)`` radians."""
    ypr = np.asarray(ypr, dtype=np.float64)
    yaw = rotvec_to_matrix(ypr[:, 0:1] * np.array([0.0, 1.0, 0.0]))
    pitch = rotvec_to_matrix(ypr[:, 1:2] * np.array([1.0, 0.0, 0.0]))
    roll = rotvec_to_matrix(ypr[:, 2:3] * np.array([0.0, 0.0, 1.0]))
    return matrix_to_rotvec(yaw @ pitch @ roll)
