"""Whole frames of a playback (faces, glyphs, AU bars, timeline), and rendering them to files.

:class:`PlaybackFrames` draws frame ``i`` of a :class:`~imucap.viewers.playback.Playback` with
the offscreen renderer and the overlay; :func:`render_playback` writes every frame to MP4
and/or PNG writers. The session window (:mod:`imucap.viewers.window`) uses the same pieces.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from imucap.datasets.rig import Rig

from .glyphs import SiteGlyphs
from .look import DEFAULT_ERROR_SCALE_MM, FaceLook, error_albedo, vertex_error
from .offscreen import OffscreenRenderer
from .overlay import Layout, OverlayState, compose
from .playback import Playback, note
from .scene import PanelState, Scene


def attach_placement(rig: Rig, placement: dict[str, Any] | None, sites: Sequence[str]
                     ) -> Any:
    """The sensors of a dataset's placement on ``rig``, or None (with a note) when they do not
    fit it."""
    if not placement:
        return None
    from imucap.datasets.placement import Placement, PlacementError

    try:
        attached = Placement.from_json(placement, source="the dataset's placement").attach(rig)
    except PlacementError as exc:
        note(f"sensors not shown: {exc}")
        return None
    if tuple(attached.names) != tuple(sites):
        note("sensors not shown: the placement's sites differ from the IMU data's")
        return None
    return attached


def playback_scene(playback: Playback, look: FaceLook) -> Scene:
    """The scene of a playback: one panel per track, sensors on the truth (or only) face."""
    attachment = attach_placement(look.rig, playback.placement, playback.sites)
    glyphs = SiteGlyphs(look, attachment) if attachment is not None else None
    panel = playback.truth if playback.truth is not None else 0
    return Scene(look, len(playback.titles), glyphs=glyphs, glyph_panels=(panel,))


class PlaybackView:
    """What frame ``i`` of a playback shows, as panel states and overlay (no renderer): the
    offscreen frames and the session window share it.

    Args:
        playback: What to show.
        look: The face to show it on.
        error_scale_mm: Error shown as full red.
    """

    def __init__(self, playback: Playback, look: FaceLook, *,
                 error_scale_mm: float = DEFAULT_ERROR_SCALE_MM) -> None:
        self.playback = playback
        self.look = look
        self.scene = playback_scene(playback, look)
        self.error_scale_mm = error_scale_mm
        self._mae = playback.frame_mae()

    def states(self, i: int) -> list[PanelState]:
        pb = self.playback
        truth = pb.truth
        heads = [self.look.vertices(w[i]) for w in pb.weights]  # each face blended once
        out = []
        for p, w in enumerate(pb.weights):
            albedo = None
            if truth is not None and p != truth:
                albedo = error_albedo(vertex_error(heads[p], heads[truth]), self.error_scale_mm)
            glyph = self.scene.has_glyphs(p) and pb.accel is not None
            out.append(PanelState(w[i], albedo=albedo,
                                  accel=pb.accel[i] if glyph and pb.accel is not None else None,
                                  gyro=pb.gyro[i] if glyph and pb.gyro is not None else None,
                                  head=heads[p]))
        return out

    def shown_panel(self) -> int:
        """The panel whose AUs the bars show (the prediction when there is a truth)."""
        pb = self.playback
        return 1 - pb.truth if pb.truth is not None and len(pb.aus) == 2 else 0

    def status(self, i: int) -> str:
        return f"MAE {self._mae[i]:.3f}" if self._mae is not None else ""

    def overlay(self, i: int, title_x: list[float], status: str = "") -> OverlayState:
        pb = self.playback
        shown = self.shown_panel()
        parts = [p for p in (self.status(i), status) if p]
        return OverlayState(
            titles=list(zip(pb.titles, title_x, strict=True)), aus=pb.aus[shown][i],
            au_truth=pb.aus[pb.truth][i] if pb.truth is not None and shown != pb.truth else None,
            time_s=float(pb.times[i]), duration_s=pb.duration_s, status="  ".join(parts),
            error_scale_mm=self.error_scale_mm if pb.truth is not None else None)


class PlaybackFrames:
    """Frame ``i`` of a playback as a ``(height, width, 3)`` uint8 image.

    Args:
        playback: What to show.
        rig: The face to show it on.
        width: Frame width.
        height: Frame height.
        au_panel: Draw the AU bars.
        error_scale_mm: Error shown as full red.
        yaw_deg: Turn of the faces (default: the three-quarter view).
    """

    def __init__(self, playback: Playback, rig: Rig, width: int, height: int, *,
                 au_panel: bool = True, error_scale_mm: float = DEFAULT_ERROR_SCALE_MM,
                 yaw_deg: float | None = None) -> None:
        self.playback = playback
        self.look = FaceLook(rig) if yaw_deg is None else FaceLook(rig, yaw_deg=yaw_deg)
        self.view = PlaybackView(playback, self.look, error_scale_mm=error_scale_mm)
        self.scene = self.view.scene
        self.layout = Layout(width, height, au_panel=au_panel)
        fw, fh = self.layout.face_size
        self.renderer = OffscreenRenderer(self.scene, fw, fh)
        cam = self.renderer.camera
        top = float(self.look.bounds[1][1])
        self._title_x = [float(cam.project(np.array([dx, top, 0.0]))[0])
                         for dx in self.scene.offsets]

    def states(self, i: int) -> list[PanelState]:
        return self.view.states(i)

    def overlay(self, i: int, status: str = "") -> OverlayState:
        return self.view.overlay(i, self._title_x, status)

    def frame(self, i: int, status: str = "") -> np.ndarray:
        faces = self.renderer.render(self.states(i))
        return compose(faces, self.layout, self.overlay(i, status))

    def close(self) -> None:
        self.renderer.close()


class Progress:
    """A progress line on stderr: redrawn in place on a terminal, every 10 % otherwise."""

    def __init__(self, total: int, what: str = "frames") -> None:
        self.total, self.what = total, what
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self._last_decile = -1
        self._last_draw = 0.0

    def update(self, done: int) -> None:
        now = time.perf_counter()
        frac = done / self.total if self.total else 1.0
        decile = int(frac * 10)
        if self.tty:
            if now - self._last_draw < 0.1 and done < self.total:
                return
        elif decile == self._last_decile and done < self.total:
            return
        self._last_draw, self._last_decile = now, decile
        rate = done / max(now - self.start, 1e-9)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        line = f"[{bar}] {done}/{self.total} {self.what} {frac * 100:3.0f}%  {rate:5.1f}/s"
        if self.tty:
            print("\r" + line, end="\n" if done >= self.total else "", file=sys.stderr,
                  flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def render_playback(frames: PlaybackFrames, writers: Sequence[Any], *,
                    progress: Callable[[int], None] | None = None) -> int:
    """Draw every frame into every writer; returns the frame count.

    On any error the writers are aborted (no partial MP4 is left under the real name).
    """
    n = 0
    try:
        for i in range(len(frames.playback)):
            image = frames.frame(i)
            for w in writers:
                w.write(image)
            n += 1
            if progress is not None:
                progress(n)
        for w in writers:
            w.close()
    except BaseException:
        for w in writers:
            w.abort()
        raise
    return n
