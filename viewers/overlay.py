"""The 2-D parts of a rendered frame, drawn with Pillow: panel titles, AU bars, the timeline
strip with the error legend, sensor labels.

A frame is laid out as::

    +---------------------------+--------+
    |  faces (3-D render)       |  AU    |
    |  title      title         |  bars  |
    +---------------------------+--------+
    |  timeline strip: time, progress, status, legend |
    +------------------------------------+
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from imucap.vocab import AU_NAMES
from imucap.vocab.aus import MAX_INTENSITY, au_row

from .look import ERROR_COLOUR, SKIN, error_albedo

_TEXT = (40, 42, 48)
_MUTED = (120, 124, 132)
_BAR_BG = (222, 223, 228)
_BAR = (52, 110, 200)
_BAR_TRUTH = (70, 70, 76)
_STRIP_BG = (246, 246, 248)


@lru_cache(maxsize=8)
def _font(size: int):  # noqa: ANN202 - a PIL font
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


@dataclass(frozen=True)
class Layout:
    """Where the parts of a ``width`` × ``height`` frame go."""

    width: int
    height: int
    au_panel: bool = True
    timeline: bool = True

    @property
    def au_width(self) -> int:
        return min(240, self.width // 3) if self.au_panel else 0

    @property
    def strip_height(self) -> int:
        return 34 if self.timeline else 0

    @property
    def face_size(self) -> tuple[int, int]:
        """``(width, height)`` of the 3-D render."""
        return self.width - self.au_width, self.height - self.strip_height


@dataclass
class OverlayState:
    """What the 2-D overlay shows on one frame.

    Attributes:
        titles: ``(text, x_pixel)`` above each face.
        aus: AU intensities 0-5 ``(18,)`` shown as bars (the prediction, or the only track).
        au_truth: Truth AU intensities ``(18,)``: thin dark bars under the others.
        time_s: Time of the frame from the start, seconds.
        duration_s: Length of what is played (None live: no progress bar).
        status: Text at the right of the strip (errors, confidence, speed, flags).
        error_scale_mm: Show the error colour legend up to this many millimetres.
        labels: ``(text, x, y)`` pixel labels (sensor names).
    """

    titles: list[tuple[str, float]] = field(default_factory=list)
    aus: np.ndarray | None = None
    au_truth: np.ndarray | None = None
    time_s: float = 0.0
    duration_s: float | None = None
    status: str = ""
    error_scale_mm: float | None = None
    labels: list[tuple[str, float, float]] = field(default_factory=list)


def _fit(draw, text: str, font, width: float) -> str:  # noqa: ANN001
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def compose(faces: np.ndarray, layout: Layout, state: OverlayState) -> np.ndarray:
    """The whole frame ``(height, width, 3)`` uint8: the 3-D render ``faces`` (sized
    :attr:`Layout.face_size`) with the overlay drawn around and on it."""
    from PIL import Image, ImageDraw

    fw, fh = layout.face_size
    if faces.shape[:2] != (fh, fw):
        raise ValueError(f"face render is {faces.shape[1]}x{faces.shape[0]}, layout wants "
                         f"{fw}x{fh}")
    canvas = Image.new("RGB", (layout.width, layout.height), (255, 255, 255))
    canvas.paste(Image.fromarray(faces), (0, 0))
    draw = ImageDraw.Draw(canvas)
    title_font = _font(15)
    for text, x in state.titles:
        w = draw.textlength(text, font=title_font)
        draw.text((x - w / 2, 8), text, fill=_TEXT, font=title_font)
    small = _font(10)
    for text, x, y in state.labels:
        draw.text((x + 5, y - 6), text, fill=_TEXT, font=small)
    if layout.au_panel:
        _au_panel(canvas, draw, layout, state)
    if layout.timeline:
        _strip(draw, layout, state)
    return np.asarray(canvas)


class _AuRows(NamedTuple):
    top: float
    row: float
    bar_x0: float
    bar_x1: float


def _au_rows(layout: Layout) -> _AuRows:
    h = layout.height - layout.strip_height
    top = 36
    row = (h - top - 4) / len(AU_NAMES)
    x0, w = layout.width - layout.au_width, layout.au_width
    return _AuRows(top, row, x0 + 8 + w * 0.56, layout.width - 8)


@lru_cache(maxsize=8)
def _au_panel_static(layout: Layout, with_truth: bool):  # noqa: ANN202 - a PIL image
    """The AU panel without its bars' values (drawn once per layout: text is slow)."""
    from PIL import Image, ImageDraw

    w, h = layout.au_width, layout.height - layout.strip_height
    panel = Image.new("RGB", (w, h), (250, 250, 251))
    draw = ImageDraw.Draw(panel)
    draw.line([0, 0, 0, h], fill=_BAR_BG)
    draw.text((8, 6), "Action Units (0-5)", fill=_TEXT, font=_font(12))
    if with_truth:
        draw.text((8, 21), "bar: shown face   line: truth", fill=_MUTED, font=_font(9))
    rows = _au_rows(layout)
    x0 = layout.width - w
    font = _font(max(8, min(11, int(rows.row * 0.55))))
    label_w = w * 0.56
    for i, code in enumerate(AU_NAMES):
        y = rows.top + i * rows.row
        label = _fit(draw, f"{code}  {au_row(code).facs_name}", font, label_w - 4)
        draw.text((8, y + rows.row * 0.15), label, fill=_TEXT, font=font)
        draw.rectangle([rows.bar_x0 - x0, y + rows.row * 0.2, rows.bar_x1 - x0,
                        y + rows.row * 0.8], fill=_BAR_BG)
    return panel


def _au_panel(canvas, draw, layout: Layout, state: OverlayState) -> None:  # noqa: ANN001
    canvas.paste(_au_panel_static(layout, state.au_truth is not None),
                 (layout.width - layout.au_width, 0))
    rows = _au_rows(layout)
    bar_x0, bar_x1 = rows.bar_x0, rows.bar_x1
    for i in range(len(AU_NAMES)):
        y = rows.top + i * rows.row
        by0, by1 = y + rows.row * 0.2, y + rows.row * 0.8
        if state.aus is not None:
            v = float(np.clip(np.nan_to_num(state.aus[i]), 0, MAX_INTENSITY)) / MAX_INTENSITY
            if v > 0:
                draw.rectangle([bar_x0, by0, bar_x0 + v * (bar_x1 - bar_x0), by1], fill=_BAR)
        if state.au_truth is not None:
            v = float(np.clip(np.nan_to_num(state.au_truth[i]), 0, MAX_INTENSITY))
            x = bar_x0 + v / MAX_INTENSITY * (bar_x1 - bar_x0)
            draw.rectangle([x - 1, by0 - 2, x + 1, by1 + 2], fill=_BAR_TRUTH)


def _strip(draw, layout: Layout, state: OverlayState) -> None:  # noqa: ANN001
    y0 = layout.height - layout.strip_height
    draw.rectangle([0, y0, layout.width, layout.height], fill=_STRIP_BG)
    draw.line([0, y0, layout.width, y0], fill=_BAR_BG)
    font = _font(12)
    if state.duration_s is not None:
        text = f"{state.time_s:6.2f} / {state.duration_s:.2f} s"
    else:
        text = f"{state.time_s:7.2f} s"
    draw.text((8, y0 + 10), text, fill=_TEXT, font=font)
    x = 8 + draw.textlength(text, font=font) + 12
    legend_w = 150 if state.error_scale_mm is not None else 0
    status_w = draw.textlength(state.status, font=font) if state.status else 0
    right = layout.width - 8 - legend_w - (status_w + 12 if status_w else 0)
    if state.duration_s and right - x > 40:
        draw.rectangle([x, y0 + 14, right, y0 + 20], fill=_BAR_BG)
        frac = float(np.clip(state.time_s / state.duration_s, 0.0, 1.0))
        draw.rectangle([x, y0 + 14, x + frac * (right - x), y0 + 20], fill=_BAR)
    if state.status:
        draw.text((layout.width - 8 - legend_w - status_w, y0 + 10), state.status, fill=_TEXT,
                  font=font)
    if state.error_scale_mm is not None:
        lx0, lx1 = layout.width - legend_w + 4, layout.width - 46
        ramp = error_albedo(np.linspace(0, state.error_scale_mm / 1000, 32),
                            state.error_scale_mm)
        step = (lx1 - lx0) / len(ramp)
        for k, c in enumerate(ramp):
            draw.rectangle([lx0 + k * step, y0 + 12, lx0 + (k + 1) * step, y0 + 22],
                           fill=tuple(int(v * 255) for v in c))
        draw.text((lx0, y0 + 1), "error", fill=_MUTED, font=_font(9))
        draw.text((lx1 + 4, y0 + 10), f"{state.error_scale_mm:g} mm", fill=_TEXT, font=font)


__all__ = ["ERROR_COLOUR", "SKIN", "Layout", "OverlayState", "compose"]
