"""Blendshape takes on disk: Live Link Face CSV, generic blendshape CSV (MediaPipe), BEAT JSON.

A :class:`Take` is a timed sequence of the 52 ARKit weights, with head and eye rotations where
the source has them. Users with real ARKit takes load them here and simulate IMUs from them.

- **Live Link Face CSV** (the iPhone app's export): ``Timecode,BlendShapeCount,`` then 61
  PascalCase columns in the app's order; the timecode is ``HH:MM:SS:FF.fff`` (frame and
  sub-frame at the take's frame rate, 60 by default). Header names are matched by name, any
  case, so other column orders read the same.
- **Blendshape CSV**: a time column (``time_s``, ``timestamp_s`` or ``timestamp_ms``) and one
  column per blendshape in any naming scheme (camelCase, PascalCase, ``_L/_R``, MediaPipe's
  with ``_neutral``), as MediaPipe Face Landmarker scripts commonly write them.
- **BEAT-style JSON**: ``{"names": [...], "frames": [{"time": t, "weights": [...]}, ...]}``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import (
    ARKIT_NAMES,
    LIVELINK_CSV_COLUMNS,
    NUM_BLENDSHAPES,
    canonical_name,
    from_livelink_csv_values,
    index_of,
    to_livelink_csv_values,
)
from imucap.vocab.blendshapes import UnknownBlendshapeError

TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2})[:;](\d+)(?:\.(\d+))?$")
_TIME_COLUMNS = {"time_s": 1.0, "timestamp_s": 1.0, "time": 1.0, "timestamp_ms": 1e-3}
_IGNORED = {"_neutral", "frame", "frame_index"}


class TakeError(ImucapError):
    """A blendshape file that cannot be read."""


@dataclass(frozen=True, eq=False)
class Take:
    """A timed blendshape sequence.

    Attributes:
        time_s: Sample times, seconds from the take's start, ``(M,)``.
        weights: ARKit weights in ARKit order, ``(M, 52)`` float32.
        head_ypr: Head yaw, pitch, roll (radians), ``(M, 3)``, or None.
        left_eye_ypr: Left eye yaw, pitch, roll, ``(M, 3)``, or None.
        right_eye_ypr: Right eye yaw, pitch, roll, ``(M, 3)``, or None.
        source: Where it came from.
        missing: ARKit names the file did not have (their weights are zero).
    """

    time_s: np.ndarray
    weights: np.ndarray
    head_ypr: np.ndarray | None = None
    left_eye_ypr: np.ndarray | None = None
    right_eye_ypr: np.ndarray | None = None
    source: str = "take"
    missing: tuple[str, ...] = ()

    @property
    def rate_hz(self) -> float:
        """Median sample rate."""
        return float(1.0 / np.median(np.diff(self.time_s))) if len(self.time_s) > 1 else 0.0


def parse_timecode(text: str, fps: float) -> float:
    """Seconds of a ``HH:MM:SS:FF.fff`` timecode at ``fps`` frames per second.

    Raises:
        ValueError: The text is not a timecode.
    """
    match = TIMECODE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a HH:MM:SS:FF.fff timecode")
    h, m, s, frame, sub = match.groups()
    frames = int(frame) + (float(f"0.{sub}") if sub else 0.0)
    return int(h) * 3600 + int(m) * 60 + int(s) + frames / fps


def format_timecode(seconds: float, fps: float) -> str:
    """``HH:MM:SS:FF.fff`` for a time in seconds (the sub-frame with three decimals)."""
    whole_s = int(seconds)
    # Round once, in thousandths of a frame, so a sub-frame of .9996 carries into the frame
    # (and a last frame into the seconds) instead of printing as ".1000".
    milli = round((seconds * fps - whole_s * fps) * 1000)
    if milli >= round(fps * 1000):
        whole_s += 1
        milli = 0
    frame, sub = divmod(milli, 1000)
    h, rem = divmod(whole_s, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{frame:02d}.{sub:03d}"


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if row and any(c.strip() for c in row)]
    except FileNotFoundError:
        raise TakeError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise TakeError(f"{path} is not a text CSV file") from None
    if len(rows) < 2:
        raise TakeError(f"{path} has no data rows")
    return [c.strip() for c in rows[0]], rows[1:]


def _floats(row: list[str], cols: list[int], path: Path, line: int) -> list[float]:
    try:
        return [float(row[c]) for c in cols]
    except (IndexError, ValueError):
        raise TakeError(f"{path}, line {line}: expected {len(cols)} numbers; the row is "
                        f"short or has text where a number belongs (truncated file?)") from None


def _unknown_columns(path: Path, names: list[str]) -> TakeError:
    hints = []
    for name in names[:5]:
        try:
            canonical_name(name)
        except UnknownBlendshapeError as exc:
            hints.append(exc.suggestion and f"{name!r} (did you mean {exc.suggestion!r}?)"
                         or repr(name))
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return TakeError(f"{path}: unknown columns {', '.join(hints)}{more}: rename them to "
                     f"blendshape names, or remove them")


def read_livelink_csv(path: str | Path, *, fps: float = 60.0) -> Take:
    """Read a Live Link Face CSV take.

    Args:
        path: The CSV file.
        fps: The take's frame rate (the timecode counts frames at this rate).

    Raises:
        TakeError: Not a Live Link Face CSV, unknown columns, a bad timecode or row.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    lower = [h.lower() for h in header]
    if not lower or lower[0] != "timecode":
        raise TakeError(f"{path} is not a Live Link Face CSV: its first column is "
                        f"{header[0]!r}, not 'Timecode'")
    by_name = {c.lower(): i for i, c in enumerate(LIVELINK_CSV_COLUMNS)}
    cols = [None] * len(LIVELINK_CSV_COLUMNS)
    unknown = []
    for i, name in enumerate(lower[1:], start=1):
        if name in ("blendshapecount",):
            continue
        if name in by_name:
            cols[by_name[name]] = i
        else:
            unknown.append(header[i])
    if unknown:
        raise _unknown_columns(path, unknown)
    present = [c for c in cols if c is not None]
    values = np.zeros((len(rows), len(LIVELINK_CSV_COLUMNS)), np.float32)
    times = np.empty(len(rows))
    for r, row in enumerate(rows):
        try:
            times[r] = parse_timecode(row[0], fps)
        except ValueError as exc:
            raise TakeError(f"{path}, line {r + 2}: {exc}") from None
        nums = _floats(row, present, path, r + 2)
        for c, v in zip((j for j, c in enumerate(cols) if c is not None), nums, strict=True):
            values[r, c] = v
    frame = from_livelink_csv_values(values)
    missing = tuple(LIVELINK_CSV_COLUMNS[j] for j, c in enumerate(cols) if c is None)
    arkit_missing = tuple(canonical_name(n) for n in missing if not n.startswith(
        ("Head", "LeftEye", "RightEye")))
    return Take(times - times[0], frame.weights.astype(np.float32), frame.head_ypr,
                frame.left_eye_ypr, frame.right_eye_ypr, str(path), arkit_missing)


def write_livelink_csv(path: str | Path, take: Take, *, fps: float = 60.0) -> None:
    """Write a take as a Live Link Face CSV (the app's columns, order and timecode)."""
    n = len(take.time_s)
    zeros = np.zeros((n, 3))
    values = to_livelink_csv_values(
        take.weights,
        head_ypr=take.head_ypr if take.head_ypr is not None else zeros,
        left_eye_ypr=take.left_eye_ypr if take.left_eye_ypr is not None else zeros,
        right_eye_ypr=take.right_eye_ypr if take.right_eye_ypr is not None else zeros)
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Timecode", "BlendShapeCount", *LIVELINK_CSV_COLUMNS])
        for t, row in zip(take.time_s, values, strict=True):
            writer.writerow([format_timecode(float(t), fps), len(LIVELINK_CSV_COLUMNS),
                             *(f"{v:.6g}" for v in row)])


def read_blendshape_csv(path: str | Path) -> Take:
    """Read a CSV with a time column and blendshape columns in any naming scheme.

    Raises:
        TakeError: No time column, unknown columns, or a bad row.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    time_col = next((i for i, h in enumerate(header) if h.lower() in _TIME_COLUMNS), None)
    if time_col is None:
        raise TakeError(f"{path}: no time column; name one of {', '.join(_TIME_COLUMNS)}")
    scale = _TIME_COLUMNS[header[time_col].lower()]
    mapping, unknown = {}, []
    for i, name in enumerate(header):
        if i == time_col or name.lower() in _IGNORED:
            continue
        try:
            mapping[i] = canonical_name(name)
        except UnknownBlendshapeError:
            unknown.append(name)
    if unknown:
        raise _unknown_columns(path, unknown)
    cols = list(mapping)
    times = np.empty(len(rows))
    weights = np.zeros((len(rows), NUM_BLENDSHAPES), np.float32)
    targets = [index_of(mapping[c]) for c in cols]
    for r, row in enumerate(rows):
        nums = _floats(row, [time_col, *cols], path, r + 2)
        times[r] = nums[0] * scale
        weights[r, targets] = nums[1:]
    missing = tuple(n for n in ARKIT_NAMES if n not in set(mapping.values()))
    return Take(times - times[0], weights, source=str(path), missing=missing)


def read_beat_json(path: str | Path) -> Take:
    """Read a BEAT-style JSON take: ``names`` and ``frames`` of ``time`` and ``weights``.

    Raises:
        TakeError: Not such a file, unknown names, or frames of the wrong length.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TakeError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TakeError(f"{path} is not JSON") from None
    if not isinstance(data, dict) or "names" not in data or "frames" not in data:
        raise TakeError(f"{path}: expected an object with 'names' and 'frames'")
    names = list(data["names"])
    unknown = []
    index = []
    for name in names:
        try:
            index.append(index_of(name))
        except UnknownBlendshapeError:
            unknown.append(name)
    if unknown:
        raise _unknown_columns(path, unknown)
    frames = data["frames"]
    times = np.empty(len(frames))
    weights = np.zeros((len(frames), NUM_BLENDSHAPES), np.float32)
    for k, frame in enumerate(frames):
        try:
            w = [float(v) for v in frame["weights"]]
            times[k] = float(frame["time"])
        except (KeyError, TypeError, ValueError):
            raise TakeError(f"{path}: frame {k} needs 'time' and numeric 'weights'") from None
        if len(w) != len(names):
            raise TakeError(f"{path}: frame {k} has {len(w)} weights for {len(names)} names")
        weights[k, index] = w
    if not len(frames):
        raise TakeError(f"{path} has no frames")
    missing = tuple(n for i, n in enumerate(ARKIT_NAMES) if i not in set(index))
    return Take(times - times[0], weights, source=str(path), missing=missing)


def read_take(path: str | Path, *, fps: float = 60.0) -> Take:
    """Read any supported take, choosing the reader from the file's content."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return read_beat_json(path)
    if path.suffix.lower() != ".csv":
        raise TakeError(f"{path}: read .csv (Live Link Face or blendshape columns) or .json "
                        f"(BEAT-style) takes")
    header, _ = _read_rows(path)
    if header and header[0].lower() == "timecode":
        return read_livelink_csv(path, fps=fps)
    return read_blendshape_csv(path)
