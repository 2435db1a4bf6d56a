"""A scene of faces side by side, as arrays any renderer can draw (no Open3D here).

:class:`Scene` turns one :class:`PanelState` per face (weights, optional error colouring and
sensor vectors) into view-frame vertices, baked colours and glyph geometry. The offscreen
renderer (:mod:`imucap.viewers.offscreen`) and the windowed viewer
(:mod:`imucap.viewers.window`) draw exactly these arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from imucap.errors import ImucapError

from .glyphs import GlyphGeometry, SiteGlyphs
from .look import FaceLook, panel_offsets


class ViewerError(ImucapError):
    """A viewer or renderer that cannot run as asked (no display, no extra, bad input)."""


@dataclass
class PanelState:
    """What one face shows on one frame.

    Attributes:
        weights: ARKit weights ``(52,)``.
        albedo: Per-vertex albedo ``(V, 3)`` (error colouring), or None for skin.
        accel: Per-sensor acceleration with gravity removed ``(S, 3)``, m/s², sensor axes.
        gyro: Per-sensor rotation rate ``(S, 3)``, rad/s, sensor axes.
        head: The blended head-frame vertices ``(V, 3)`` of ``weights``, if already computed.
    """

    weights: np.ndarray
    albedo: np.ndarray | None = None
    accel: np.ndarray | None = None
    gyro: np.ndarray | None = None
    head: np.ndarray | None = None


class PanelArrays(NamedTuple):
    """One face ready to draw (view frame)."""

    vertices: np.ndarray
    """``(V, 3)`` float64."""
    colours: np.ndarray
    """``(V, 3)`` float64 in [0, 1], lighting baked in."""
    head_vertices: np.ndarray
    """``(V, 3)`` float32 blended vertices in the head frame (for errors)."""
    glyphs: GlyphGeometry | None


class Scene:
    """``n_panels`` faces of one rig side by side, with sensor glyphs on the panels in
    ``glyph_panels`` (all by default) when ``glyphs`` is given."""

    def __init__(self, look: FaceLook, n_panels: int = 1, *, glyphs: SiteGlyphs | None = None,
                 glyph_panels: tuple[int, ...] | None = None) -> None:
        if n_panels < 1:
            raise ValueError("a scene needs at least one panel")
        self.look = look
        self.n_panels = n_panels
        self.glyphs = glyphs
        self.glyph_panels = tuple(range(n_panels)) if glyph_panels is None else glyph_panels
        self.offsets = panel_offsets(look, n_panels)

    def has_glyphs(self, panel: int) -> bool:
        return self.glyphs is not None and panel in self.glyph_panels

    def arrays(self, panel: int, state: PanelState) -> PanelArrays:
        dx = self.offsets[panel]
        vertices, colours, head = self.look.frame(state.weights, offset_x=dx,
                                                  albedo=state.albedo, head=state.head)
        glyph = None
        if self.has_glyphs(panel):
            assert self.glyphs is not None
            glyph = self.glyphs.geometry(state.weights, offset_x=dx, accel=state.accel,
                                         gyro=state.gyro)
        return PanelArrays(vertices, colours, head, glyph)
