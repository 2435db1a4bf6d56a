"""OpenFace-style Action Unit CSV: the AU part of what OpenFace's FeatureExtraction writes.

Tools built around OpenFace (py-feat, FACS analysis scripts, spreadsheets) read this layout::

    frame, face_id, timestamp, confidence, success, AU01_r, ..., AU45_r, AU01_c, ..., AU45_c

as OpenFace 2 writes it with ``-aus``: the five sequence columns, then the intensity columns
(0-5) and the presence columns (0/1) in :func:`imucap.vocab.au_columns` order (17 ``_r``, no
``AU28_r``, then 18 ``_c``), every name after a comma and a space. Numbers follow OpenFace's
formatting: the frame from 1, ``face_id`` 0, the timestamp with 3 decimals from 0 at the first
frame, the confidence with 2, ``success`` 0/1, intensities with 2 decimals and presence with 1
(``1.0``).

What imucap puts there: intensities from :meth:`FaceTrack.au_intensities`, presence from
:meth:`FaceTrack.au_presence` (AU45 from blink detection, the rest thresholded at FACS grade
A), the track's confidence, and ``success`` 1 where the frame has usable weights and at least
one usable sensor (confidence above 0); a failed frame's AU values are 0, as OpenFace writes
them.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from imucap.inference.offline import FaceTrack
from imucap.vocab import AU_NAMES, NUM_AUS, au_columns, openface_values

from .base import ExportError, write_atomic

__all__ = ["OPENFACE_LEADING_COLUMNS", "OpenFaceAus", "openface_header", "read_openface_csv",
           "write_openface_csv"]

#: The columns OpenFace writes before any feature for a video sequence.
OPENFACE_LEADING_COLUMNS: tuple[str, ...] = ("frame", "face_id", "timestamp", "confidence",
                                             "success")


def openface_header() -> tuple[str, ...]:
    """Every column of the AU CSV, in order (leading columns, then :func:`au_columns`)."""
    return OPENFACE_LEADING_COLUMNS + au_columns()


class OpenFaceAus(NamedTuple):
    """An OpenFace-style AU CSV as arrays.

    Attributes:
        frame: Frame numbers ``(N,)`` int64 (OpenFace counts from 1).
        timestamp: Seconds ``(N,)`` float64.
        confidence: ``(N,)`` float32.
        success: ``(N,)`` bool.
        intensities: ``(N, 18)`` float32 in :data:`imucap.vocab.AU_NAMES` order; NaN for an AU
            without an ``_r`` column (AU28 in OpenFace's layout).
        presence: ``(N, 18)`` uint8; an AU without a ``_c`` column is 0.
        columns: The header as read (names stripped of spaces).
    """

    frame: np.ndarray
    timestamp: np.ndarray
    confidence: np.ndarray
    success: np.ndarray
    intensities: np.ndarray
    presence: np.ndarray
    columns: tuple[str, ...]


def _table(track: FaceTrack, threshold: float) -> np.ndarray:
    n = len(track)
    intensities = track.au_intensities()
    presence = track.au_presence(threshold=threshold)
    ok = (track.confidence > 0) & np.isfinite(track.weights).all(axis=1) \
        & np.isfinite(intensities).all(axis=1)
    values = openface_values(np.nan_to_num(intensities), presence)
    values[~ok] = 0.0
    lead = np.column_stack([np.arange(1, n + 1), np.zeros(n), track.times - track.times[0],
                            np.where(ok, track.confidence, 0.0), ok])
    return np.column_stack([lead, values])


def write_openface_csv(path: str | os.PathLike[str], track: FaceTrack, *,
                       threshold: float = 1.0) -> Path:
    """Write a track's Action Units as an OpenFace-style CSV (module doc: columns, numbers).

    Args:
        path: The file to write; its folder must exist.
        track: The track (AUs are estimated from its weights where it has none).
        threshold: Intensity at which an AU other than AU45 counts as present.

    Raises:
        ExportError: The file cannot be written there.
    """
    table = _table(track, threshold)
    n_r = sum(c.endswith("_r") for c in au_columns())
    fmt = ["%d", "%d", "%.3f", "%.2f", "%d"] + ["%.2f"] * n_r + ["%.1f"] * NUM_AUS

    def write(part: Path) -> None:
        with part.open("w", newline="", encoding="utf-8") as f:
            np.savetxt(f, table, fmt=fmt, delimiter=", ", header=", ".join(openface_header()),
                       comments="")

    return write_atomic(path, write)


def read_openface_csv(path: str | os.PathLike[str]) -> OpenFaceAus:
    """Read the AU columns of an OpenFace CSV (OpenFace's own, with any other columns, or ours).

    Raises:
        ExportError: Missing, not a CSV, no ``timestamp`` or AU columns, or a bad row.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f, skipinitialspace=True) if r]
    except FileNotFoundError:
        raise ExportError(f"{path} does not exist") from None
    except (UnicodeDecodeError, csv.Error):
        raise ExportError(f"{path} is not a text CSV file") from None
    if not rows:
        raise ExportError(f"{path} is empty")
    header = tuple(c.strip() for c in rows[0])
    index = {name: i for i, name in enumerate(header)}
    if "timestamp" not in index or not any(c.startswith("AU") for c in header):
        raise ExportError(f"{path} is not an OpenFace AU CSV: it needs 'timestamp' and "
                          f"AUxx_r / AUxx_c columns")
    try:
        data = np.array([[float(c) for c in r] for r in rows[1:]], dtype=np.float64)
    except ValueError:
        raise ExportError(f"{path} has text where a number belongs") from None
    if data.size == 0:
        data = np.zeros((0, len(header)))
    if data.ndim != 2 or data.shape[1] != len(header):
        raise ExportError(f"{path}: every row needs {len(header)} values, as the header has")

    def column(name: str, default: float) -> np.ndarray:
        return data[:, index[name]] if name in index else np.full(len(data), default)

    intensities = np.full((len(data), NUM_AUS), np.nan, np.float32)
    presence = np.zeros((len(data), NUM_AUS), np.uint8)
    for k, code in enumerate(AU_NAMES):
        if f"{code}_r" in index:
            intensities[:, k] = data[:, index[f"{code}_r"]]
        if f"{code}_c" in index:
            presence[:, k] = data[:, index[f"{code}_c"]] >= 0.5
    return OpenFaceAus(
        frame=column("frame", 0).astype(np.int64),
        timestamp=column("timestamp", 0.0),
        confidence=column("confidence", 1.0).astype(np.float32),
        success=column("success", 1.0) >= 0.5,
        intensities=intensities, presence=presence, columns=header)
