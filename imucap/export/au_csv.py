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
import re
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
        presence: ``(N, 18)`` uint8; an AU without a ``_c`` column is 0 (see ``missing`` to
            tell "absent" from "not reported").
        columns: The header as read (names stripped of spaces).
        missing: AU columns of the 18 AUs that the file lacks, in OpenFace's order
            (:func:`imucap.vocab.au_columns` with ``include_au28_r=True``), e.g.
            ``("AU28_r",)`` for OpenFace's own output, which has no AU28 intensity model.
        extra: AU columns the file has that name none of the 18 OpenFace AUs (``"AU27_r"``,
            ``"AU43_c"`` from another tool), or bare columns next to suffixed ones; ignored.
        bare_intensity: True when the file had no ``AUxx_r`` / ``AUxx_c`` columns and its bare
            ``AUxx`` columns were read as intensities (see :func:`read_openface_csv`).
        face_id: OpenFace's ``face_id`` ``(N,)`` int64 (0 when the column is absent).
    """

    frame: np.ndarray
    timestamp: np.ndarray
    confidence: np.ndarray
    success: np.ndarray
    intensities: np.ndarray
    presence: np.ndarray
    columns: tuple[str, ...]
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    bare_intensity: bool = False
    face_id: np.ndarray | None = None


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


# "AU01_r", "AU1_c", "au12", " AU45_r" -> number and suffix ("" for a bare column).
_AU_COLUMN = re.compile(r"^AU0*(\d{1,2})(?:_([RC]))?$", re.IGNORECASE)


def _au_column(name: str) -> tuple[str, str] | None:
    """``(code, kind)`` of an AU column name: kind ``"r"``, ``"c"`` or ``""`` (bare)."""
    match = _AU_COLUMN.match(name)
    if match is None:
        return None
    return f"AU{int(match.group(1)):02d}", (match.group(2) or "").lower()


def _listing(names: list[str] | tuple[str, ...], limit: int = 8) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def read_openface_csv(path: str | os.PathLike[str]) -> OpenFaceAus:
    """Read the AU columns of an OpenFace CSV (OpenFace's own, with any other columns, or ours).

    What is read, and what is left:

    - Columns are found by name, with the spaces OpenFace puts before each name stripped, so
      OpenFace 2's full FeatureExtraction output (gaze, pose, landmarks ``x_0``..., shape
      parameters ``p_0``..., then the AUs) reads as well as an AU-only file. Only the sequence
      and AU columns are converted to numbers.
    - ``AUxx_r`` is an intensity (0-5), ``AUxx_c`` a presence flag (0/1; 0.5 and up counts as
      present, so a probability column named ``_c`` works too). AU numbers may be written
      without the zero (``AU1_r``).
    - The 18 AUs OpenFace reports are used where the file has them; the others are listed in
      ``missing`` (OpenFace's own files lack ``AU28_r``). AU columns of other AUs (another
      tool's ``AU27_r``, ``AU43_c``) are listed in ``extra`` and ignored.
    - Bare ``AUxx`` columns, as LibreFace- and py-feat-style tables name them, are read as
      intensities on the 0-5 scale when the file has no suffixed AU column at all
      (``bare_intensity`` is then True); next to suffixed columns they are ``extra``. A tool
      whose bare columns are probabilities of presence (0-1) should have them renamed
      ``AUxx_c`` before reading, since a number alone does not say which scale it is on.
    - ``frame``, ``face_id``, ``confidence`` and ``success`` default to 0, 0, 1 and 1 when
      absent; ``timestamp`` is required (AU statistics need time).

    Args:
        path: The CSV file.

    Returns:
        The AU columns as :class:`OpenFaceAus` arrays.

    Raises:
        ExportError: Missing, not a CSV, no ``timestamp`` column, no AU column of the 18
            OpenFace AUs (the message names the AU columns it found), a duplicate column, or
            a row that is short or has text where a number belongs.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f, skipinitialspace=True) if r and any(r)]
    except FileNotFoundError:
        raise ExportError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ExportError(f"{path} is a folder, not an AU CSV file") from None
    except (UnicodeDecodeError, csv.Error):
        raise ExportError(f"{path} is not a text CSV file") from None
    if not rows:
        raise ExportError(f"{path} is empty")
    header = tuple(c.strip() for c in rows[0])
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in index and (name in OPENFACE_LEADING_COLUMNS or _au_column(name)):
            raise ExportError(f"{path}: column {name!r} appears twice in the header")
        index.setdefault(name, i)
    au_cols = {name: parsed for name in header if (parsed := _au_column(name)) is not None}
    if "timestamp" not in index or not au_cols:
        raise ExportError(f"{path} is not an OpenFace AU CSV: it needs 'timestamp' and "
                          f"AUxx_r / AUxx_c columns")
    suffixed = any(kind for _, kind in au_cols.values())
    wanted: dict[tuple[str, str], str] = {}  # (code, "r"/"c") -> column name
    extra: list[str] = []
    for name, (code, kind) in au_cols.items():
        if code not in AU_NAMES or (kind == "" and suffixed):
            extra.append(name)
            continue
        key = (code, kind or "r")
        if key in wanted:
            raise ExportError(f"{path}: columns {wanted[key]!r} and {name!r} both give "
                              f"{code}_{key[1]}")
        wanted[key] = name
    if not wanted:
        raise ExportError(f"{path} has AU columns ({_listing(list(au_cols))}) but none of the 18 "
                          f"OpenFace reports ({', '.join(AU_NAMES)}): nothing to read")
    missing = tuple(c for c in au_columns(include_au28_r=True)
                    if (c[:-2], c[-1]) not in wanted)

    used = [i for i in (index.get(c) for c in OPENFACE_LEADING_COLUMNS) if i is not None]
    used += [index[name] for name in wanted.values()]
    position = {col: k for k, col in enumerate(used)}
    data = np.empty((len(rows) - 1, len(used)), np.float64)
    for r, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise ExportError(f"{path}, line {r + 2}: {len(row)} values where the header names "
                              f"{len(header)} (a truncated or hand-edited file?)")
        try:
            data[r] = [float(row[i]) for i in used]
        except ValueError:
            raise ExportError(f"{path}, line {r + 2}: text where a number belongs in an AU or "
                              f"sequence column") from None

    def column(name: str, default: float) -> np.ndarray:
        if name not in index:
            return np.full(len(data), default)
        return data[:, position[index[name]]]

    intensities = np.full((len(data), NUM_AUS), np.nan, np.float32)
    presence = np.zeros((len(data), NUM_AUS), np.uint8)
    for k, code in enumerate(AU_NAMES):
        if (code, "r") in wanted:
            intensities[:, k] = column(wanted[(code, "r")], np.nan)
        if (code, "c") in wanted:
            presence[:, k] = column(wanted[(code, "c")], 0.0) >= 0.5
    return OpenFaceAus(
        frame=column("frame", 0).astype(np.int64),
        timestamp=column("timestamp", 0.0),
        confidence=column("confidence", 1.0).astype(np.float32),
        success=column("success", 1.0) >= 0.5,
        intensities=intensities, presence=presence, columns=header, missing=missing,
        extra=tuple(extra), bare_intensity=not suffixed,
        face_id=column("face_id", 0).astype(np.int64))
