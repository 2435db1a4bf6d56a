"""Live Link Face CSV: the file the iPhone app exports, which Unreal and Blender add-ons import.

``Timecode,BlendShapeCount,`` then the app's 61 PascalCase columns (52 blendshapes, then head and
eye yaw, pitch, roll) in the app's order; each row's timecode is ``HH:MM:SS:FF.fff`` counting
frames at the track's frame rate. The writing and reading are those of
:mod:`imucap.datasets.takes` (``write_livelink_csv``, ``read_livelink_csv``); this module moves
:class:`~imucap.inference.offline.FaceTrack` objects through them.

The timecode is the track's own time (a session's clock), as the app writes the time of day;
readers take times relative to the first row. Weights are written with six significant digits.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from imucap.datasets import takes
from imucap.inference.offline import FaceTrack

from .base import write_atomic

__all__ = ["read_livelink_csv", "write_livelink_csv"]


def write_livelink_csv(path: str | os.PathLike[str], track: FaceTrack, *,
                       fps: float | None = None) -> Path:
    """Write a track as a Live Link Face CSV.

    Args:
        path: The file to write; its folder must exist.
        track: The track. Head and eye angles it lacks are written as zeros.
        fps: Frame rate the timecodes count; default the track's.

    Raises:
        ExportError: The file cannot be written there.
    """
    rate = float(fps if fps is not None else track.fps)
    take = dataclasses.replace(track.to_take(), time_s=_printable_times(track.times, rate))
    return write_atomic(path, lambda part: takes.write_livelink_csv(part, take, fps=rate))


def _printable_times(times: np.ndarray, fps: float) -> np.ndarray:
    """Times that ``takes.format_timecode`` prints as the timecode they are.

    It rounds the sub-frame to three decimals without carrying a rounded 1000 into the frame,
    so a time a hair below a frame boundary (``k / 60`` in floating point often is) would print
    as ``FF.1000``, which reads back a frame early. Snapping each time to the timecode's
    resolution (a thousandth of a frame) and nudging it up by a millionth of a frame keeps the
    product with ``fps`` on the right side of the boundary.
    """
    frames = np.round(np.asarray(times, dtype=np.float64) * fps * 1000.0) / 1000.0
    return (frames + 1e-6) / fps


def read_livelink_csv(path: str | os.PathLike[str], *, fps: float = 60.0) -> FaceTrack:
    """Read a Live Link Face CSV (the app's, or ours) as a track starting at time 0.

    Args:
        path: The CSV file.
        fps: Frame rate its timecodes count (the app records at 60 by default).

    Raises:
        TakeError: Not a Live Link Face CSV, unknown columns, a bad timecode or row.
    """
    return FaceTrack.from_take(takes.read_livelink_csv(path, fps=fps), fps=fps)
