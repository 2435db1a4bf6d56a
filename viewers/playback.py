"""What the session viewer and ``imucap render`` play: faces on one frame grid.

:func:`load_playback` reads any INPUT ``imucap convert`` reads:

- a dataset folder (with ``--session``) or a session file: the truth blendshapes beside the
  model's prediction (run offline now, or read from ``prediction=`` a track file), the
  per-vertex error coloured on the prediction, the sensors where the dataset's placement puts
  them, with their acceleration and rotation rate;
- a recording from ``imucap record`` (``.mcap``): the same, with the streams synchronised as
  for ``imucap dataset build`` (the truth's frames without a face left out);
- a blendshape take (Live Link Face CSV, blendshape CSV, imucap JSON, animated glTF): one face,
  or beside a second track given as ``prediction=``.

Every track is resampled (linearly) to one grid at ``fps`` from the first frame to the last.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from imucap.datasets.dataset import dataset_and_sessions, interp_rows
from imucap.errors import ImucapError
from imucap.vocab import au_intensities

from .scene import ViewerError

WARM_UP_S = 2.0
"""IMU before a cropped span that the model still reads (its window fills up)."""
ACCEL_DETREND_S = 1.0
"""Acceleration vectors show the specific force minus its centred moving average over this
span: gravity and slow head tilts go, skin motion stays."""


@dataclass(frozen=True, eq=False)
class Playback:
    """Faces on a frame grid, ready to show.

    Attributes:
        times: Frame times from the input's start, seconds ``(N,)`` (a cropped playback starts
            later than 0).
        titles: A title per panel.
        weights: Per panel ``(N, 52)`` float32.
        aus: Per panel AU intensities ``(N, 18)`` float32.
        truth: Index of the truth panel (errors are measured against it), or None.
        accel: Sensor acceleration, gravity removed ``(N, S, 3)`` m/s², or None.
        gyro: Sensor rotation rate ``(N, S, 3)`` rad/s, or None.
        sites: Site names of the ``S`` axis.
        placement: The placement's JSON form (where the sensors sit), or None.
        fps: Frame rate of the grid.
        source: What was loaded, for titles and messages.
        duration_s: Length of the whole input, seconds.
    """

    times: np.ndarray
    titles: tuple[str, ...]
    weights: tuple[np.ndarray, ...]
    aus: tuple[np.ndarray, ...]
    truth: int | None
    accel: np.ndarray | None
    gyro: np.ndarray | None
    sites: tuple[str, ...]
    placement: dict[str, Any] | None
    fps: float
    source: str
    duration_s: float = 0.0

    def __len__(self) -> int:
        return len(self.times)

    def frame_mae(self) -> np.ndarray | None:
        """Per-frame mean absolute weight error of the other panel against the truth."""
        if self.truth is None or len(self.weights) != 2:
            return None
        other = 1 - self.truth
        return np.abs(self.weights[other] - self.weights[self.truth]).mean(axis=1)


def _grid(starts: list[float], ends: list[float], fps: float) -> np.ndarray:
    t0, t1 = min(starts), max(ends)
    n = max(1, int(np.floor((t1 - t0) * fps + 1e-6)) + 1)
    return t0 + np.arange(n) / fps


def note(text: str) -> None:
    """Print ``imucap: note: text`` on stderr (something the user should know, not an error)."""
    print(f"imucap: note: {text}", file=sys.stderr, flush=True)


def _detrend(times: np.ndarray, accel: np.ndarray, span_s: float) -> np.ndarray:
    """``accel`` minus its centred moving average over ``span_s`` (cumulative sums)."""
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    k = max(1, int(round(span_s / dt)))
    if len(accel) <= k:
        return accel - accel.mean(axis=0)
    c = np.cumsum(np.concatenate([np.zeros_like(accel[:1]), accel]), axis=0, dtype=np.float64)
    half = k // 2
    idx = np.arange(len(accel))
    lo, hi = np.clip(idx - half, 0, len(accel)), np.clip(idx + half + 1, 0, len(accel))
    mean = (c[hi] - c[lo]) / (hi - lo).reshape(-1, 1, 1)
    return (accel - mean).astype(np.float32)


def _read_track(path: str | Path, fps: float) -> Any:
    from imucap.export import read_track

    return read_track(path)  # Live Link timecodes count at the app's 60 fps, not --fps


def load_playback(path: str | Path, *, fps: float = 30.0, session: str | None = None,
                  model: str | None = None, prediction: str | Path | None = None,
                  no_model: bool = False, steps: int | None = None, seed: int = 0,
                  hop: int | None = None, device: str = "cpu", threads: int = 1,
                  start_s: float | None = None, end_s: float | None = None) -> Playback:
    """Load INPUT for viewing (see the module doc), from ``start_s`` to ``end_s`` seconds
    after its start (the model then runs only over that span, plus :data:`WARM_UP_S`).

    Raises:
        ImucapError: A missing or unreadable input, an unknown session, no model available.
    """
    if not 0 < fps <= 240:
        raise ViewerError(f"--fps must be between 0 and 240, got {fps:g}")
    path = Path(path)
    if not path.exists():
        raise ViewerError(f"{path} does not exist")
    if path.suffix.lower() == ".mcap":
        if session is not None:
            raise ViewerError(f"--session picks a session of a dataset folder; {path} is one "
                              f"recording")
        return _recording_playback(path, fps=fps, model=model, prediction=prediction,
                                   no_model=no_model, steps=steps, seed=seed, hop=hop,
                                   device=device, threads=threads, span=(start_s, end_s))
    if path.is_dir() or path.suffix.lower() == ".npz":
        return _session_playback(path, fps=fps, session=session, model=model,
                                 prediction=prediction, no_model=no_model, steps=steps,
                                 seed=seed, hop=hop, device=device, threads=threads,
                                 span=(start_s, end_s))
    if session is not None:
        raise ViewerError(f"--session picks a session of a dataset folder; {path} is a take")
    take = _read_track(path, fps)
    tracks = [("take", take)]
    if prediction is not None:
        tracks.append(("compared", _read_track(prediction, fps)))
    return _on_grid(tracks, fps=fps, truth=0 if prediction is not None else None, imu=None,
                    sites=(), placement=None, source=path.name, span=(start_s, end_s))


def _session_playback(path: Path, *, fps: float, session: str | None, model: str | None,
                      prediction: str | Path | None, no_model: bool, steps: int | None,
                      seed: int, hop: int | None, device: str, threads: int,
                      span: tuple[float | None, float | None]) -> Playback:
    dataset, ids, several = dataset_and_sessions(path, session)
    if several and len(ids) > 1:
        raise ViewerError(f"{path} holds {len(ids)} sessions: pick one with --session "
                          f"(first ones: {', '.join(ids[:5])})")
    sid = ids[0]
    return _playback_of(dataset.session(sid), dataset.info, sid, f"{dataset.path.name}/{sid}",
                        fps=fps, model=model, prediction=prediction, no_model=no_model,
                        steps=steps, seed=seed, hop=hop, device=device, threads=threads,
                        span=span)


def _recording_playback(path: Path, *, fps: float, model: str | None,
                        prediction: str | Path | None, no_model: bool, steps: int | None,
                        seed: int, hop: int | None, device: str, threads: int,
                        span: tuple[float | None, float | None]) -> Playback:
    """A session file from ``imucap record``: its streams synchronised, the truth's frames
    without a face left out."""
    from types import SimpleNamespace

    from imucap.record.build import recording_streams
    from imucap.record.session_file import read_session

    contents = read_session(path)
    if contents.imu.n == 0:
        raise ViewerError(f"{path} holds no IMU data")
    st = recording_streams(contents)
    face = np.all(np.isfinite(st["weights"]), axis=1)
    if face.sum() < 2:
        raise ViewerError(f"{path} holds no truth frames with a face to show: record with "
                          f"--truth, or import the phone's take with `imucap session align "
                          f"{path} --truth TAKE.csv`")
    dev = contents.device
    info = SimpleNamespace(sites=contents.sites, placement=contents.session.get("placement"),
                           accel_range_g=dev["accel_range_g"],
                           gyro_range_dps=dev["gyro_range_dps"],
                           blendshape_rate_hz=60.0)
    s = SimpleNamespace(imu_time_s=st["imu_time_s"], accel=st["accel"], gyro=st["gyro"],
                        blendshape_time_s=st["truth_time_s"][face],
                        blendshapes=np.clip(st["weights"][face], 0.0, 1.0))
    return _playback_of(s, info, path.stem, path.name, fps=fps, model=model,
                        prediction=prediction, no_model=no_model, steps=steps, seed=seed,
                        hop=hop, device=device, threads=threads, span=span)


def _playback_of(s: Any, info: Any, sid: str, source: str, *, fps: float, model: str | None,
                 prediction: str | Path | None, no_model: bool, steps: int | None, seed: int,
                 hop: int | None, device: str, threads: int,
                 span: tuple[float | None, float | None]) -> Playback:
    from imucap.inference.offline import FaceTrack

    truth = FaceTrack(s.blendshape_time_s, s.blendshapes, fps=info.blendshape_rate_hz,
                      source=source)
    tracks = [("truth", truth)]
    origin = min(float(s.imu_time_s[0]), float(s.blendshape_time_s[0]))
    if prediction is not None:
        tracks.append(("prediction", _read_track(prediction, fps)))
    elif not no_model:
        if span != (None, None):  # run the model over the span only (and a warm-up)
            lo = origin + (span[0] or 0.0) - WARM_UP_S
            hi = origin + span[1] + 1.0 if span[1] is not None else np.inf
            keep = (s.imu_time_s >= lo) & (s.imu_time_s <= hi)
            if keep.sum() >= 2:
                s = _replace_imu(s, keep)
        tracks.append(("prediction", _predict(s, info, model=model, fps=fps, steps=steps,
                                              seed=seed, hop=hop, device=device,
                                              threads=threads, source=f"{sid}")))
    accel = _detrend(s.imu_time_s, s.accel, ACCEL_DETREND_S)
    return _on_grid(tracks, fps=fps, truth=0 if len(tracks) > 1 else None,
                    imu=(s.imu_time_s, accel, s.gyro), sites=info.sites,
                    placement=info.placement, source=source, span=span, origin=origin)


def _replace_imu(s: Any, keep: np.ndarray) -> Any:
    """``s`` with only the IMU samples ``keep`` (a dataset Session or a namespace)."""
    if is_dataclass(s):
        return replace(s, imu_time_s=s.imu_time_s[keep], accel=s.accel[keep],
                       gyro=s.gyro[keep])
    from types import SimpleNamespace

    return SimpleNamespace(**{**vars(s), "imu_time_s": s.imu_time_s[keep],
                              "accel": s.accel[keep], "gyro": s.gyro[keep]})


def _predict(s: Any, info: Any, *, model: str | None, fps: float, steps: int | None,
             seed: int, hop: int | None, device: str, threads: int, source: str) -> Any:
    try:
        from imucap.inference.offline import DEFAULT_HOP_FRAMES, infer_session
        from imucap.models.checkpoint import load_checkpoint
        from imucap.models.pretrained import resolve_checkpoint

        ckpt_path = resolve_checkpoint(model)
        ckpt = load_checkpoint(ckpt_path)  # imports torch and safetensors
    except ImportError:
        raise ImucapError("showing the model's prediction runs the model, which needs the "
                          "[train] extra (pip install 'imucap[train]'); or pass --no-model to "
                          "show the truth alone") from None
    note(f"running {ckpt_path.name} over {source} ({s.imu_time_s[-1] - s.imu_time_s[0]:.1f} s)")
    return infer_session(ckpt, s.imu_time_s, s.accel, s.gyro, info.sites,
                         fps=max(fps, 30.0), steps=steps, seed=seed,
                         hop_frames=hop or DEFAULT_HOP_FRAMES, device=device, threads=threads,
                         accel_range_g=info.accel_range_g, gyro_range_dps=info.gyro_range_dps,
                         source=source)


def _on_grid(tracks: list[tuple[str, Any]], *, fps: float, truth: int | None,
             imu: tuple[np.ndarray, np.ndarray, np.ndarray] | None, sites: tuple[str, ...],
             placement: dict[str, Any] | None, source: str,
             span: tuple[float | None, float | None] = (None, None),
             origin: float | None = None) -> Playback:
    first = tracks[0][1]
    origin = float(first.times[0]) if origin is None else origin
    length = float(first.times[-1]) - origin
    grid = _grid([origin], [float(t.times[-1]) for _, t in tracks], fps)
    lo, hi = span
    keep = np.ones(len(grid), bool)
    if lo is not None:
        keep &= grid - origin >= lo - 1e-9
    if hi is not None:
        keep &= grid - origin <= hi + 1e-9
    if not keep.any():
        raise ViewerError(f"no frames between --start and --end: {source} lasts "
                          f"{length:.2f} s")
    grid = grid[keep]
    weights = tuple(np.clip(interp_rows(t.times, t.weights, grid), 0, 1).astype(np.float32)
                    for _, t in tracks)
    aus = tuple(au_intensities(w).astype(np.float32) for w in weights)
    accel = gyro = None
    if imu is not None:
        t_imu, a, g = imu
        accel = interp_rows(t_imu, a, grid).astype(np.float32)
        gyro = interp_rows(t_imu, g, grid).astype(np.float32)
    return Playback(grid - origin, tuple(n for n, _ in tracks), weights, aus, truth, accel,
                    gyro, tuple(sites), placement, fps, source, length)
