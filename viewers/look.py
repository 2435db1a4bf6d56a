"""How a face is shown: blending, normals, lighting and the camera, on the CPU with NumPy.

Every viewer (the live window, playback, ``imucap render``) draws faces the same way, so a
frame rendered headless for a report looks like the one on screen:

- **Blending** is one matrix product per frame, ``neutral + weights @ deltas``
  (:meth:`FaceLook.vertices`).
- **Normals** are recomputed per frame from the blended vertices: triangle normals gathered
  to vertices with one pre-sorted ``np.add.reduceat`` (no Python loop, no ``np.add.at``).
- **Lighting** is baked into vertex colours on the CPU: a soft key light from the camera's
  upper left, a dimmer fill from the right, a little rim and ambient light
  (:meth:`FaceLook.shade`). The GPU renderer draws the colours unlit, so every backend shows
  identical shading, and it receives only new vertices and colours each frame.
- **The view** is a front three-quarter turn (the face turned 25° toward the camera's left,
  tipped 6° down) applied to the geometry; the camera itself looks straight down ``-z``
  (:class:`Camera`). Several faces sit side by side along ``x`` (truth beside prediction).

Head frame (the rig's, ARKit's): metres, +x toward the face's own left, +y up, +z out of the
face. Seen from the camera the face's left is on the image's right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imucap.datasets.rig import Rig
from imucap.vocab import NUM_BLENDSHAPES

SKIN = np.array([0.80, 0.63, 0.53], dtype=np.float32)
"""Albedo of the face (linear RGB, 0-1)."""
ERROR_COLOUR = np.array([0.86, 0.10, 0.08], dtype=np.float32)
"""Colour of the largest shown error."""
BACKGROUND = np.array([0.93, 0.93, 0.94], dtype=np.float64)
"""Background of every view."""

DEFAULT_YAW_DEG = 25.0
DEFAULT_PITCH_DEG = 6.0
DEFAULT_ERROR_SCALE_MM = 4.0
"""Per-vertex error (mm) shown as full :data:`ERROR_COLOUR`."""


def view_rotation(yaw_deg: float = DEFAULT_YAW_DEG, pitch_deg: float = DEFAULT_PITCH_DEG
                  ) -> np.ndarray:
    """Rotation ``(3, 3)`` that turns the face by ``yaw_deg`` about +y (its left side toward
    the camera for positive angles) and tips it ``pitch_deg`` forward (chin down)."""
    y, p = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    ry = np.array([[np.cos(y), 0.0, -np.sin(y)], [0.0, 1.0, 0.0], [np.sin(y), 0.0, np.cos(y)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(p), -np.sin(p)], [0.0, np.sin(p), np.cos(p)]])
    return rx @ ry


# Light directions in the view frame (toward the light), and their strengths.
_KEY = np.array([-0.55, 0.55, 0.63])
_FILL = np.array([0.75, 0.05, 0.66])
_RIM = np.array([0.0, 0.5, -0.86])
_KEY = (_KEY / np.linalg.norm(_KEY)).astype(np.float32)
_FILL = (_FILL / np.linalg.norm(_FILL)).astype(np.float32)
_RIM = (_RIM / np.linalg.norm(_RIM)).astype(np.float32)


class FaceLook:
    """A rig prepared for drawing: blend, recompute normals, shade, place in the view.

    Args:
        rig: The face rig.
        yaw_deg: Turn of the face toward the camera's left (three-quarter view).
        pitch_deg: Forward tip of the face.
    """

    def __init__(self, rig: Rig, *, yaw_deg: float = DEFAULT_YAW_DEG,
                 pitch_deg: float = DEFAULT_PITCH_DEG) -> None:
        self.rig = rig
        self.rotation = view_rotation(yaw_deg, pitch_deg).astype(np.float32)
        self.faces = np.array(rig.faces, dtype=np.int32)  # a writable copy (Open3D wants one)
        self._neutral = np.ascontiguousarray(rig.neutral.reshape(-1), dtype=np.float32)
        self._deltas = np.ascontiguousarray(rig.deltas.reshape(NUM_BLENDSHAPES, -1),
                                            dtype=np.float32)
        corners = self.faces.reshape(-1)
        order = np.argsort(corners, kind="stable")
        ordered = corners[order]
        self._face_of_corner = (order // 3).astype(np.int64)
        self._starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self._used = ordered[self._starts]
        # The blended face always lies within the neutral's bounds widened by each target.
        neutral = rig.neutral.astype(np.float32)
        lo, hi = neutral.min(axis=0), neutral.max(axis=0)
        if len(neutral):
            ext = neutral[None] + rig.deltas
            lo = np.minimum(lo, ext.min(axis=(0, 1)))
            hi = np.maximum(hi, ext.max(axis=(0, 1)))
        self.bounds = (lo, hi)

    @property
    def n_vertices(self) -> int:
        return self.rig.n_vertices

    def set_view(self, yaw_deg: float, pitch_deg: float) -> None:
        """Turn the faces to a new view (an orbiting viewer calls this); the lights stay
        where they are relative to the camera."""
        self.rotation = view_rotation(yaw_deg, pitch_deg).astype(np.float32)

    def vertices(self, weights: np.ndarray) -> np.ndarray:
        """Blended vertices ``(V, 3)`` float32 in the head frame: one matrix product."""
        w = np.asarray(weights, dtype=np.float32).reshape(NUM_BLENDSHAPES)
        # einsum, not BLAS: a BLAS product this small may be split over threads, and then
        # takes 100x longer whenever the other cores are busy (ffmpeg, the model).
        return (self._neutral + np.einsum("k,kn->n", w, self._deltas)).reshape(-1, 3)

    def normals(self, vertices: np.ndarray) -> np.ndarray:
        """Unit area-weighted vertex normals ``(V, 3)`` float32 of ``vertices``."""
        v = np.asarray(vertices, dtype=np.float32)
        tri = v[self.faces]
        face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        out = np.zeros_like(v)
        if len(self._used):
            out[self._used] = np.add.reduceat(face_n[self._face_of_corner], self._starts, axis=0)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norm > 0, norm, 1.0)

    def to_view(self, points: np.ndarray, offset_x: float = 0.0) -> np.ndarray:
        """Head-frame points ``(..., 3)`` turned into the three-quarter view, shifted by
        ``offset_x`` metres along the camera's x."""
        out = np.asarray(points, dtype=np.float32) @ self.rotation.T
        if offset_x:
            out = out + np.array([offset_x, 0.0, 0.0], dtype=np.float32)
        return out

    def directions_to_view(self, vectors: np.ndarray) -> np.ndarray:
        """Head-frame directions ``(..., 3)`` turned into the view (no shift)."""
        return np.asarray(vectors, dtype=np.float32) @ self.rotation.T

    @staticmethod
    def shade(view_normals: np.ndarray, albedo: np.ndarray | None = None) -> np.ndarray:
        """Vertex colours ``(V, 3)`` float64 in [0, 1], lighting baked in (view-frame normals).

        ``albedo`` is one colour ``(3,)`` or one per vertex ``(V, 3)``; skin by default.
        """
        n = np.asarray(view_normals, dtype=np.float32)
        wrap = 0.35  # wrapped diffuse: a soft terminator instead of a hard one
        key = np.clip((n @ _KEY + wrap) / (1 + wrap), 0.0, 1.0)
        fill = np.clip(n @ _FILL, 0.0, 1.0)
        rim = np.clip(n @ _RIM, 0.0, 1.0) ** 2
        light = 0.22 + 0.72 * key + 0.22 * fill + 0.18 * rim
        base = SKIN if albedo is None else np.asarray(albedo, dtype=np.float32)
        colour = base * light[:, None]
        return np.clip(colour, 0.0, 1.0).astype(np.float64)

    def frame(self, weights: np.ndarray, *, offset_x: float = 0.0,
              albedo: np.ndarray | None = None, head: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One face ready to draw: view-frame vertices ``(V, 3)`` float64, shaded colours
        ``(V, 3)`` float64, and the head-frame vertices ``(V, 3)`` float32 (``head``, when the
        caller blended them already)."""
        head = self.vertices(weights) if head is None else head
        normals = self.directions_to_view(self.normals(head))
        return (self.to_view(head, offset_x).astype(np.float64), self.shade(normals, albedo),
                head)

    def bound_corners(self) -> np.ndarray:
        """The 8 corners ``(8, 3)`` of :attr:`bounds`, head frame."""
        lo, hi = self.bounds
        return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                         for z in (lo[2], hi[2])], dtype=np.float32)

    def panel_width(self) -> float:
        """Spacing (metres) of faces side by side in the view."""
        view = self.to_view(self.bound_corners())
        return float(view[:, 0].max() - view[:, 0].min()) * 1.12


def error_albedo(error_m: np.ndarray, scale_mm: float = DEFAULT_ERROR_SCALE_MM) -> np.ndarray:
    """Per-vertex albedo ``(V, 3)`` from per-vertex error (metres): skin at 0 through orange to
    :data:`ERROR_COLOUR` at ``scale_mm`` and above."""
    t = np.clip(np.asarray(error_m, dtype=np.float32) * 1000.0 / scale_mm, 0.0, 1.0)[:, None]
    mid = np.array([0.95, 0.62, 0.20], dtype=np.float32)
    low = np.clip(t * 2.0, 0.0, 1.0)
    high = np.clip(t * 2.0 - 1.0, 0.0, 1.0)
    return SKIN * (1 - low) + mid * low * (1 - high) + ERROR_COLOUR * high


def vertex_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance per vertex ``(V,)`` between two blended faces, metres."""
    return np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32), axis=1)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at ``(cx, cy, distance)`` looking down ``-z`` at the view.

    Attributes:
        width: Image width, pixels.
        height: Image height, pixels.
        fov_y_deg: Vertical field of view.
        centre: ``(x, y)`` of the view the camera is centred on, metres.
        distance: Camera z, metres (the faces sit around z = 0).
    """

    width: int
    height: int
    fov_y_deg: float
    centre: tuple[float, float]
    distance: float

    @property
    def focal_px(self) -> float:
        return 0.5 * self.height / np.tan(np.deg2rad(self.fov_y_deg) / 2)

    def intrinsic(self) -> np.ndarray:
        """3×3 intrinsic matrix (pixel centres at half-integers, Open3D's convention)."""
        f = self.focal_px
        return np.array([[f, 0.0, self.width / 2 - 0.5], [0.0, f, self.height / 2 - 0.5],
                         [0.0, 0.0, 1.0]])

    def extrinsic(self) -> np.ndarray:
        """World-to-camera 4×4 (camera x right, y down, z forward, as Open3D expects)."""
        cx, cy = self.centre
        return np.array([[1.0, 0.0, 0.0, -cx], [0.0, -1.0, 0.0, cy],
                         [0.0, 0.0, -1.0, self.distance], [0.0, 0.0, 0.0, 1.0]])

    def project(self, points: np.ndarray) -> np.ndarray:
        """View-frame points ``(..., 3)`` → pixel coordinates ``(..., 2)``."""
        p = np.asarray(points, dtype=np.float64)
        cx, cy = self.centre
        depth = self.distance - p[..., 2]
        f = self.focal_px
        u = (p[..., 0] - cx) * f / depth + self.width / 2
        v = -(p[..., 1] - cy) * f / depth + self.height / 2
        return np.stack([u, v], axis=-1)


def frame_camera(look: FaceLook, n_panels: int, width: int, height: int, *,
                 fov_y_deg: float = 22.0, margin: float = 1.10) -> Camera:
    """A camera that shows ``n_panels`` faces side by side (at :func:`panel_offsets`) whole,
    with ``margin`` around them, in a ``width`` × ``height`` image."""
    corners = look.bound_corners()
    offsets = panel_offsets(look, n_panels)
    pts = np.concatenate([look.to_view(corners, dx) for dx in offsets])
    pmin, pmax = pts.min(axis=0), pts.max(axis=0)
    centre = ((pmin[0] + pmax[0]) / 2, (pmin[1] + pmax[1]) / 2)
    half_w, half_h = (pmax[0] - pmin[0]) / 2 * margin, (pmax[1] - pmin[1]) / 2 * margin
    tan_y = np.tan(np.deg2rad(fov_y_deg) / 2)
    tan_x = tan_y * width / height
    distance = float(pmax[2] + max(half_w / tan_x, half_h / tan_y))
    return Camera(width, height, fov_y_deg, (float(centre[0]), float(centre[1])), distance)


def panel_offsets(look: FaceLook, n_panels: int) -> list[float]:
    """x offsets (metres) of ``n_panels`` faces side by side, centred on 0."""
    step = look.panel_width()
    return [(i - (n_panels - 1) / 2) * step for i in range(n_panels)]
