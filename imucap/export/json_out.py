"""A face track as a small JSON document, for scripts, web players and other languages.

Schema (``format`` ``"imucap-face-track"``, ``version`` 1)::

    {
      "format": "imucap-face-track",
      "version": 1,
      "fps": 60.0,                      # nominal frame rate
      "names": ["eyeBlinkLeft", ...],   # the 52 ARKit names: the columns of "weights"
      "times": [12.0, 12.0167, ...],    # N frame times, seconds, on the source's clock
      "weights": [[0.0, ...], ...],     # N rows of 52 weights in 0-1
      "confidence": [1.0, ...],         # N values in 0-1
      "au_names": ["AU01", ...],        # the 18 OpenFace AU codes: the columns of "aus"
      "aus": [[0.0, ...], ...],         # N rows of 18 intensities in 0-5
      "au_columns": {                   # OpenFace's CSV column names of the two AU tables
        "aus": ["AU01_r", ...],         #   intensity ("aus")
        "au_presence": ["AU01_c", ...]  #   presence ("au_presence")
      },
      "au_presence": [[0, 1, ...], ...],  # N rows of 18 presence flags (0/1)
      "source": "sessions/s000_00"      # where the track came from
    }

Presence is as in the OpenFace-style AU CSV (:mod:`imucap.export.au_csv`): intensity at FACS
grade A or more, and AU45 from blink events. ``au_columns`` lets a script written for OpenFace
output find a column by its OpenFace name (``AU12_r``, ``AU45_c``); there is an ``AU28_r``
(imucap's heuristic AU28 intensity), which OpenFace's CSV lacks.

``head_ypr``, ``left_eye_ypr`` and ``right_eye_ypr`` (N rows of yaw, pitch, roll in radians)
appear where the track has them. Values are rounded to 6 decimals (weights, AUs, confidence)
and times to the microsecond. Readers should look columns up by name in ``names`` and
``au_names`` rather than assume the order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from imucap.inference.offline import FaceTrack
from imucap.vocab import ARKIT_NAMES, AU_NAMES, UnknownBlendshapeError, index_of

from .base import ExportError, write_atomic

__all__ = ["JSON_FORMAT", "JSON_VERSION", "is_track_json", "read_json_track",
           "track_to_json", "write_json_track"]

JSON_FORMAT = "imucap-face-track"
JSON_VERSION = 1
_POSES = ("head_ypr", "left_eye_ypr", "right_eye_ypr")


def _rows(array: np.ndarray, decimals: int) -> list[Any]:
    return np.round(array.astype(np.float64), decimals).tolist()


def track_to_json(track: FaceTrack) -> dict[str, Any]:
    """The track as the JSON object of the module's schema."""
    doc: dict[str, Any] = {
        "format": JSON_FORMAT, "version": JSON_VERSION, "fps": track.fps,
        "names": list(ARKIT_NAMES), "times": _rows(track.times, 6),
        "weights": _rows(track.weights, 6), "confidence": _rows(track.confidence, 6),
        "au_names": list(AU_NAMES), "aus": _rows(track.au_intensities(), 6),
        "au_columns": {"aus": [f"{code}_r" for code in AU_NAMES],
                       "au_presence": [f"{code}_c" for code in AU_NAMES]},
        "au_presence": track.au_presence().astype(int).tolist(),
        "source": track.source,
    }
    for name in _POSES:
        value = getattr(track, name)
        if value is not None:
            doc[name] = _rows(value, 6)
    return doc


def write_json_track(path: str | os.PathLike[str], track: FaceTrack) -> Path:
    """Write a track as JSON (module doc: schema).

    Raises:
        ExportError: The file cannot be written there.
    """
    text = json.dumps(track_to_json(track), separators=(",", ":"))
    return write_atomic(path, lambda part: part.write_text(text + "\n", encoding="utf-8"))


def is_track_json(doc: Any) -> bool:
    """Whether a parsed JSON value is a face track of this module's format."""
    return isinstance(doc, dict) and doc.get("format") == JSON_FORMAT


def _array(doc: dict[str, Any], key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        out = np.asarray(doc[key], dtype=np.float64)
    except KeyError:
        raise ExportError(f"{where}: '{key}' is missing") from None
    except (TypeError, ValueError):
        raise ExportError(f"{where}: '{key}' must hold numbers only") from None
    if out.shape != shape:
        raise ExportError(f"{where}: '{key}' has shape {out.shape}, expected {shape}")
    return out


def read_json_track(path: str | os.PathLike[str]) -> FaceTrack:
    """Read a face track written by :func:`write_json_track` (columns matched by name).

    Raises:
        ExportError: Missing, not JSON, another format or version, or arrays that do not fit.
    """
    path = Path(path)
    where = str(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ExportError(f"{path} is not JSON") from None
    if not is_track_json(doc):
        raise ExportError(f"{path} is not an imucap face track (no \"format\": "
                          f"\"{JSON_FORMAT}\")")
    if doc.get("version") != JSON_VERSION:
        raise ExportError(f"{path}: face track version {doc.get('version')!r}; this imucap "
                          f"reads version {JSON_VERSION}")
    names = doc.get("names")
    if not isinstance(names, list):
        raise ExportError(f"{where}: 'names' must list the weight columns")
    try:
        columns = [index_of(str(n)) for n in names]
    except UnknownBlendshapeError as exc:
        raise ExportError(f"{where}: {exc}") from None
    if not isinstance(doc.get("times"), list):
        raise ExportError(f"{where}: 'times' must list the frame times")
    times = _array(doc, "times", (len(doc["times"]),), where)
    n = times.size
    if n == 0:
        raise ExportError(f"{where} has no frames")
    weights = np.zeros((n, len(ARKIT_NAMES)), np.float32)
    weights[:, columns] = _array(doc, "weights", (n, len(names)), where)
    aus = None
    if doc.get("aus") is not None:
        au_names = list(doc.get("au_names") or AU_NAMES)
        unknown = [a for a in au_names if a not in AU_NAMES]
        if unknown:
            raise ExportError(f"{where}: unknown AU names {', '.join(map(str, unknown))}")
        aus = np.zeros((n, len(AU_NAMES)), np.float32)
        aus[:, [AU_NAMES.index(a) for a in au_names]] = _array(doc, "aus", (n, len(au_names)),
                                                               where)
    conf = _array(doc, "confidence", (n,), where) if "confidence" in doc else None
    poses = {k: _array(doc, k, (n, 3), where) for k in _POSES if doc.get(k) is not None}
    try:
        fps = float(doc.get("fps", 60.0))
        return FaceTrack(times=times, weights=weights, aus=aus, confidence=conf, fps=fps,
                         source=str(doc.get("source") or path), **poses)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{where}: {exc}") from None
