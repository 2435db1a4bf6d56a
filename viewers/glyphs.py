"""Sensor glyphs: a small box where each IMU sits on the skin, its axes, and its live vectors.

Pure NumPy; the renderers only receive the arrays. A glyph follows the skin: its pose comes
from :func:`imucap.datasets.imu_sim.site_poses` for the frame's blendshape weights, so a sensor
on the cheek rises with a smile as the real one would.

Vectors are drawn from each sensor's centre in the head frame:

- acceleration (orange): the part of the specific force that changes, in m/s² (the caller
  removes gravity and bias, say by subtracting a running mean), 1 cm per m/s², at most 4 cm;
- rotation rate (blue): rad/s, 2 cm per rad/s, at most 4 cm;
- the sensor's axes (x red, y green, z blue: z out of the skin), 12 mm, when asked for.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from imucap.datasets.imu_sim import SiteAttachment, site_poses

from .look import FaceLook

BOX_HALF_M = np.array([0.004, 0.004, 0.0012], dtype=np.float32)
"""Half size of the sensor box (8 × 8 × 2.4 mm, about a breakout board's IMU package)."""
BOX_COLOUR = np.array([0.18, 0.22, 0.30])
AXIS_LENGTH_M = 0.012
ACCEL_M_PER_MPS2 = 0.01
GYRO_M_PER_RADPS = 0.02
VECTOR_MAX_M = 0.04
ACCEL_COLOUR = np.array([1.0, 0.50, 0.0])
GYRO_COLOUR = np.array([0.10, 0.55, 0.95])
AXIS_COLOURS = np.array([[0.9, 0.1, 0.1], [0.1, 0.7, 0.1], [0.1, 0.2, 0.9]])

_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)],
                    dtype=np.float32)
# 12 triangles, counter-clockwise seen from outside.
_BOX_TRIS = np.array([
    [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5],  # x- and x+
    [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],  # y- and y+
    [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],  # z- and z+
], dtype=np.int32)


class GlyphGeometry(NamedTuple):
    """Glyph arrays of one face, in the view frame."""

    box_vertices: np.ndarray
    """``(S*8, 3)`` float64 box corners."""
    box_triangles: np.ndarray
    """``(S*12, 3)`` int32."""
    box_colours: np.ndarray
    """``(S*8, 3)`` float64."""
    line_points: np.ndarray
    """``(L*2, 3)`` float64: line ``i`` runs from point ``2i`` to ``2i+1``."""
    line_colours: np.ndarray
    """``(L, 3)`` float64."""
    centres: np.ndarray
    """``(S, 3)`` float64 sensor centres (for labels)."""


def _clip_length(vectors: np.ndarray, scale: float) -> np.ndarray:
    v = np.nan_to_num(np.asarray(vectors, dtype=np.float64)) * scale
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v * np.minimum(1.0, VECTOR_MAX_M / np.where(n > 0, n, 1.0))


class SiteGlyphs:
    """Glyphs of the sensors of ``attachment`` on the rig of ``look``.

    Args:
        look: The face being drawn.
        attachment: Where the sensors sit (:meth:`imucap.datasets.placement.Placement.attach`).
        axes: Draw each sensor's axes.
        vectors: Draw acceleration and rotation-rate vectors (when the frame gives them).
    """

    def __init__(self, look: FaceLook, attachment: SiteAttachment, *, axes: bool = False,
                 vectors: bool = True) -> None:
        self.look = look
        self.attachment = attachment
        self.axes = axes
        self.vectors = vectors
        s = len(attachment.names)
        self.n_sites = s
        self.box_triangles = (_BOX_TRIS[None] + 8 * np.arange(s)[:, None, None]).reshape(-1, 3)
        self.n_lines = s * ((3 if axes else 0) + (2 if vectors else 0))
        corners = _CORNERS * BOX_HALF_M
        corners[:, 2] += BOX_HALF_M[2]  # the box sits on the skin, not half inside it
        self._corners = corners

    @property
    def names(self) -> tuple[str, ...]:
        return self.attachment.names

    def geometry(self, weights: np.ndarray, *, offset_x: float = 0.0,
                 accel: np.ndarray | None = None, gyro: np.ndarray | None = None
                 ) -> GlyphGeometry:
        """The glyphs for blendshape ``weights`` ``(52,)``.

        ``accel`` and ``gyro`` are ``(S, 3)`` in each sensor's axes (m/s² with gravity
        removed, rad/s); None draws zero-length vectors.
        """
        pos, rot = site_poses(self.look.rig, self.attachment,
                              np.asarray(weights, dtype=np.float64)[None])
        pos, rot = pos[0], rot[0]  # (S, 3), (S, 3, 3): head from sensor
        boxes = pos[:, None, :] + np.einsum("sij,kj->ski", rot, self._corners)
        box_view = self.look.to_view(boxes.reshape(-1, 3), offset_x).astype(np.float64)
        shade = 0.75 + 0.25 * np.tile(np.linspace(0.6, 1.0, 8), self.n_sites)
        box_colours = BOX_COLOUR[None] * shade[:, None]
        segments, colours = [], []
        centre = pos + rot[:, :, 2] * BOX_HALF_M[2] * 2  # top of the box
        if self.axes:
            for k in range(3):
                segments.append(np.stack([centre, centre + rot[:, :, k] * AXIS_LENGTH_M], 1))
                colours.append(np.repeat(AXIS_COLOURS[k][None], self.n_sites, 0))
        if self.vectors:
            zero = np.zeros((self.n_sites, 3))
            a = zero if accel is None else np.einsum("sij,sj->si", rot, _clip_length(
                accel, ACCEL_M_PER_MPS2))
            g = zero if gyro is None else np.einsum("sij,sj->si", rot, _clip_length(
                gyro, GYRO_M_PER_RADPS))
            segments += [np.stack([centre, centre + a], 1), np.stack([centre, centre + g], 1)]
            colours += [np.repeat(ACCEL_COLOUR[None], self.n_sites, 0),
                        np.repeat(GYRO_COLOUR[None], self.n_sites, 0)]
        if segments:
            pts = np.concatenate(segments).reshape(-1, 3)
            line_points = self.look.to_view(pts, offset_x).astype(np.float64)
            line_colours = np.concatenate(colours)
        else:
            line_points, line_colours = np.zeros((0, 3)), np.zeros((0, 3))
        return GlyphGeometry(box_view, self.box_triangles, box_colours, line_points,
                             line_colours,
                             self.look.to_view(centre, offset_x).astype(np.float64))
