"""Any input a user has, as Action Unit series: the common front end of the AU analyses.

Researchers arrive with different things: a dataset session or an ``imucap record`` recording
(truth blendshapes from the phone, and the model's prediction from the IMUs), a blendshape take
(Live Link Face CSV, blendshape CSV, imucap JSON, animated glTF), or OpenFace's output on the
session's video. :func:`load_au_series` reads all of them into :class:`AuSeries`, one per track
of the input, so an analysis is written once against the 18 OpenFace AUs
(:data:`imucap.vocab.AU_NAMES`) in OpenFace's units:

- intensity 0-5 (``AUxx_r``) and presence 0/1 (``AUxx_c``) per frame;
- frames without a face flagged (``valid`` False) and their values NaN, never 0, so a lost face
  does not read as a neutral one;
- AUs the source does not report NaN, and their OpenFace column names in ``missing``.

How each input is read:

- Sessions and recordings go through :func:`imucap.viewers.playback.load_playback`, as
  ``imucap render`` shows them: the truth and (unless ``no_model``) the model's prediction,
  resampled to one frame grid at ``fps`` (default 60, the phone's rate), times from the start of
  the input. A recording's truth frames without a face are flagged on that grid.
- Takes are read frame by frame as the file has them (no resampling, confidence kept), unless
  ``fps`` is given; then they are resampled as for sessions.
- An OpenFace-style AU CSV (recognised by its header: ``timestamp`` and ``AUxx_r`` / ``AUxx_c``
  columns) is read with :func:`imucap.export.read_openface_csv`; rows with ``success`` 0 are
  frames without a face.

AUs from blendshapes follow :mod:`imucap.vocab.aus` (the fixed mapping): AU45 presence comes
from blink events, the other AUs are present from ``threshold`` (FACS grade A, 1.0) up.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import AU_NAMES, au_columns, au_presence

if TYPE_CHECKING:
    from imucap.export import OpenFaceAus
    from imucap.inference.offline import FaceTrack

__all__ = ["AuInputError", "AuSeries", "is_openface_csv", "load_au_series",
           "series_from_openface", "series_from_track"]

#: Frame rate of session and recording grids when none is asked for: the phone's (Live Link
#: Face's) rate, so the truth is not resampled.
DEFAULT_SESSION_FPS = 60.0
#: Tracks an input can hold, as :attr:`AuSeries.name` says.
SERIES_NAMES = ("truth", "prediction", "take", "openface")


class AuInputError(ImucapError):
    """An input that cannot be read as Action Units."""


@dataclass(frozen=True, eq=False)
class AuSeries:
    """One track of an input as OpenFace-style Action Units over time.

    Attributes:
        name: Which track: ``"truth"``, ``"prediction"``, ``"take"`` or ``"openface"``.
        times: ``(N,)`` float64 seconds from the start of the input, increasing.
        intensities: ``(N, 18)`` float32 in :data:`~imucap.vocab.AU_NAMES` order, 0-5; NaN
            where the frame has no face or the source lacks that AU's intensity.
        presence: ``(N, 18)`` float32 0/1; NaN likewise.
        valid: ``(N,)`` bool: the frame has a face (usable values).
        fps: Frame rate (nominal for a grid, the median rate for a file's own frames).
        source: What was read, for messages (a file name, ``dataset/session``).
        missing: OpenFace column names the source does not provide, e.g. ``("AU28_r",)``.
        weights: ``(N, 52)`` ARKit blendshape weights when the source has them (None for an
            OpenFace CSV); NaN rows where there is no face.
        notes: Things a user should know about how the input was read (one line each).
    """

    name: str
    times: np.ndarray
    intensities: np.ndarray
    presence: np.ndarray
    valid: np.ndarray
    fps: float
    source: str
    missing: tuple[str, ...]
    weights: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.times.size)

    @property
    def duration_s(self) -> float:
        """Time from the first frame to the last, plus one frame period (the span covered)."""
        if not len(self):
            return 0.0
        return float(self.times[-1] - self.times[0]) + 1.0 / self.fps

    @property
    def label(self) -> str:
        """``"truth of data/synth/s000_00"`` and the like, for report headings."""
        return f"{self.name} of {self.source}"


def _invalid_rows(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.array(values, dtype=np.float32, copy=True)
    out[~valid] = np.nan
    return out


def series_from_track(track: FaceTrack, name: str, *, threshold: float = 1.0,
                      times: np.ndarray | None = None, valid: np.ndarray | None = None,
                      notes: tuple[str, ...] = ()) -> AuSeries:
    """AUs of a face track by the fixed mapping (:mod:`imucap.vocab.aus`).

    A frame has no face when any of its weights is not finite (lost tracking) or its confidence
    is 0 (no usable sensor); its intensities and presence are then NaN. AU45 presence comes from
    blink detection at the track's ``fps`` (lost frames count as open eyes).

    Args:
        track: The track (its ``aus`` if set, else AUs estimated from its weights).
        name: The series name (:data:`SERIES_NAMES`).
        threshold: Intensity from which an AU other than AU45 counts as present.
        times: Frame times to report instead of the track's own minus its first (a grid's times
            from the start of the input).
        valid: Frames known to have a face, ANDed with the track's own test.
        notes: Passed on to the series.

    Returns:
        The series; ``missing`` is empty (imucap estimates all 18 AUs, AU28 included).
    """
    ok = np.isfinite(track.weights).all(axis=1) & (track.confidence > 0)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    intensities = _invalid_rows(track.au_intensities(), ok)
    ok &= np.isfinite(intensities).all(axis=1)
    presence = _invalid_rows(track.au_presence(threshold=threshold), ok)
    intensities[~ok] = np.nan
    weights = np.array(track.weights, dtype=np.float32, copy=True)
    weights[~ok] = np.nan
    t = track.times - track.times[0] if times is None else np.asarray(times, np.float64)
    return AuSeries(name=name, times=t, intensities=intensities, presence=presence, valid=ok,
                    fps=float(track.fps), source=track.source or name, missing=(),
                    weights=weights, notes=tuple(notes))


def series_from_openface(aus: OpenFaceAus, source: str, *,
                         threshold: float = 1.0) -> AuSeries:
    """AUs of an OpenFace-style CSV (:func:`imucap.export.read_openface_csv`).

    Rows with ``success`` 0 are frames without a face: invalid, their values NaN (OpenFace
    writes zeros there, which would read as a neutral face). An AU without an ``_r`` column has
    NaN intensities. An AU without a ``_c`` column but with an ``_r`` column gets its presence
    from the intensity at ``threshold`` (as imucap's own presence; noted); with neither, NaN.

    Args:
        aus: The CSV's columns.
        source: For messages (the file name).
        threshold: Intensity from which an AU counts as present when the file has no ``_c``
            column for it.

    Returns:
        The series, times from the first row, ``missing`` as the file's.

    Raises:
        AuInputError: No rows, or timestamps that do not increase (within the face read: the
            lowest ``face_id`` when the file tracks several, which a note says).
    """
    n = len(aus.timestamp)
    if n == 0:
        raise AuInputError(f"{source} has a header but no rows")
    notes: list[str] = []
    keep = np.ones(n, bool)
    face_id = aus.face_id if aus.face_id is not None else np.zeros(n, np.int64)
    faces = np.unique(face_id)
    if len(faces) > 1:
        first = int(faces[0])
        keep = face_id == first
        notes.append(f"{source} tracks {len(faces)} faces (face_id "
                     f"{', '.join(map(str, faces[:6].tolist()))}); using face_id {first}")
    t = np.asarray(aus.timestamp, np.float64)[keep]
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise AuInputError(f"{source}: the timestamps do not increase row by row; give one "
                           f"face's rows in time order")
    valid = np.asarray(aus.success, bool)[keep]
    intensities = np.array(aus.intensities[keep], dtype=np.float32)
    presence = aus.presence[keep].astype(np.float32)
    has_c = {c[:-2] for c in au_columns() if c.endswith("_c") and c not in aus.missing}
    has_r = [f"{code}_r" not in aus.missing for code in AU_NAMES]
    derived = []
    for k, code in enumerate(AU_NAMES):
        if code in has_c:
            continue
        if has_r[k]:
            presence[:, k] = au_presence(np.nan_to_num(intensities), threshold=threshold)[:, k]
            presence[np.isnan(intensities[:, k]), k] = np.nan
            derived.append(code)
        else:
            presence[:, k] = np.nan
    if derived:
        notes.append(f"{source} has no presence column for {', '.join(derived)}: present "
                     f"where the intensity is at least {threshold:g}")
    if aus.bare_intensity:
        notes.append(f"{source}: read its bare AUxx columns as 0-5 intensities; if they are "
                     f"probabilities of presence, rename them AUxx_c")
    if aus.extra:
        notes.append(f"{source}: ignored AU columns outside OpenFace's 18 AUs: "
                     f"{', '.join(aus.extra[:8])}{' ...' if len(aus.extra) > 8 else ''}")
    intensities[~valid] = np.nan
    presence[~valid] = np.nan
    # The mean period, not the median step: OpenFace rounds timestamps to the millisecond, so
    # at 30 fps every step reads 0.033 or 0.034 s and the median is off by 1%.
    fps = float((len(t) - 1) / (t[-1] - t[0])) if len(t) > 1 else 30.0
    return AuSeries(name="openface", times=t - t[0], intensities=intensities,
                    presence=presence, valid=valid, fps=round(fps, 3), source=source,
                    missing=tuple(aus.missing), weights=None, notes=tuple(notes))


def is_openface_csv(path: str | os.PathLike[str]) -> bool:
    """Whether a file is an AU CSV by its header: a ``timestamp`` column and an ``AU...``
    column (suffixed ``_r`` / ``_c`` or bare). False for anything unreadable."""
    p = Path(path)
    if p.suffix.lower() != ".csv" or not p.is_file():
        return False
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            header = [c.strip() for c in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "timestamp" in header and any(h.upper().startswith("AU") for h in header)


def _recording_face(path: Path, grid_s: np.ndarray) -> np.ndarray | None:
    """For a recording: whether the truth had a face at each grid time (from the start of the
    input), judged by the nearest truth frame; None when it cannot be told."""
    from imucap.record.build import recording_streams
    from imucap.record.session_file import read_session

    try:
        st = recording_streams(read_session(path))
    except ImucapError:
        return None
    t = np.asarray(st["truth_time_s"], np.float64)
    face = np.isfinite(st["weights"]).all(axis=1)
    if len(t) < 2:
        return None
    origin = min(float(st["imu_time_s"][0]), float(t[0]))
    at = grid_s + origin
    i = np.clip(np.searchsorted(t, at), 1, len(t) - 1)
    nearest = np.where(np.abs(at - t[i - 1]) <= np.abs(t[i] - at), i - 1, i)
    period = float(np.median(np.diff(t)))
    inside = (at >= t[0] - period) & (at <= t[-1] + period)
    return face[nearest] & inside


def _playback_series(path: Path, *, session: str | None, model: str | None, no_model: bool,
                     fps: float, steps: int | None, seed: int, threshold: float
                     ) -> list[AuSeries]:
    from imucap.inference.offline import FaceTrack
    from imucap.viewers.playback import load_playback

    pb = load_playback(path, fps=fps, session=session, model=model, no_model=no_model,
                       steps=steps, seed=seed)
    # The loader leaves a recording's truth frames without a face out and bridges them: flag
    # the grid frames whose nearest truth frame had no face.
    face = _recording_face(path, pb.times) if path.suffix.lower() == ".mcap" else None
    out = []
    for k, (title, weights) in enumerate(zip(pb.titles, pb.weights, strict=True)):
        name = title if title in SERIES_NAMES else "prediction"
        track = FaceTrack(pb.times, weights, fps=pb.fps, source=pb.source)
        out.append(series_from_track(track, name, threshold=threshold, times=pb.times,
                                     valid=face if k == 0 else None))
    return out


def _need_torch() -> None:
    """The model's prediction needs torch: say so in one line before anything is loaded (the
    checkpoint loader would otherwise fail deep inside with a bare ImportError)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise AuInputError("a session's prediction runs the model, which needs the [train] "
                           "extra (pip install 'imucap[train]'); or pass --no-model for the "
                           "truth alone") from None


def _check_options(fps: float | None, steps: int | None, threshold: float) -> None:
    if fps is not None and not 0 < fps <= 240:
        raise AuInputError(f"--fps must be between 0 and 240, got {fps:g}")
    if steps is not None and not 1 <= steps <= 1000:
        raise AuInputError(f"--steps must be between 1 and 1000, got {steps}")
    if not 0 < threshold <= 5:
        raise AuInputError(f"--threshold must be in (0, 5] (FACS grade A is 1), got "
                           f"{threshold:g}")


def load_au_series(path: str | os.PathLike[str], *, session: str | None = None,
                   model: str | None = None, no_model: bool = False, fps: float | None = None,
                   steps: int | None = None, seed: int = 0,
                   threshold: float = 1.0) -> list[AuSeries]:
    """Read any input as Action Unit series (see the module doc for what is read and how).

    Args:
        path: A dataset folder (with ``session``), a session file, a recording (``.mcap``), a
            blendshape take, or an OpenFace-style AU CSV.
        session: The session of a dataset folder.
        model: Checkpoint for the prediction of a session (None: the shipped model).
        no_model: Sessions: the truth alone, without running the model (no [train] extra
            needed).
        fps: Frame grid rate for sessions and recordings (default 60); for a take, resample
            to this rate (default: its own frames). Not used for an AU CSV.
        steps: The model's DDIM steps (default: the checkpoint's).
        seed: Seed of the model's sampling noise.
        threshold: Intensity from which an AU other than AU45 counts as present.

    Returns:
        One series per track: ``[truth, prediction]`` for a session or recording (``[truth]``
        with ``no_model``), ``[take]`` for a take, ``[openface]`` for an AU CSV.

    Raises:
        ImucapError: A missing or unreadable input, an unknown format or session, options out
            of range or that do not fit the input, no model available, or an input with no frame
            with a face.
    """
    _check_options(fps, steps, threshold)
    p = Path(path)
    if not p.exists():
        raise AuInputError(f"{p} does not exist")
    is_session = p.is_dir() or p.suffix.lower() in (".npz", ".mcap")
    if not is_session and session is not None:
        raise AuInputError(f"--session picks a session of a dataset folder; {p.name} is a file "
                           f"of one take")
    if is_session:
        if no_model and model is not None:
            raise AuInputError("--no-model reads the truth alone; leave out --model")
        if not no_model:
            _need_torch()
        series = _playback_series(p, session=session, model=model, no_model=no_model,
                                  fps=fps or DEFAULT_SESSION_FPS, steps=steps, seed=seed,
                                  threshold=threshold)
    elif is_openface_csv(p):
        from imucap.export import read_openface_csv

        series = [series_from_openface(read_openface_csv(p), p.name, threshold=threshold)]
    else:
        series = [_take_series(p, fps=fps, threshold=threshold)]
    if not any(s.valid.any() for s in series):
        n = len(series[0])
        raise AuInputError(f"{p.name}: none of its {n} frames has a face (all lack usable "
                           f"weights or AU values), so there are no Action Units to read")
    return series


def _take_series(path: Path, *, fps: float | None, threshold: float) -> AuSeries:
    from imucap.export import read_track

    if path.is_dir():
        raise AuInputError(f"{path} is a folder but not a dataset")
    if fps is None:
        track = replace(read_track(path), source=path.name)
        return series_from_track(track, "take", threshold=threshold)
    from imucap.inference.offline import FaceTrack
    from imucap.viewers.playback import load_playback

    pb = load_playback(path, fps=fps)
    track = FaceTrack(pb.times, pb.weights[0], fps=pb.fps, source=pb.source)
    return series_from_track(track, "take", threshold=threshold, times=pb.times,
                             notes=(f"resampled {path.name} to {fps:g} fps",))
