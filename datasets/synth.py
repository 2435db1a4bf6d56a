"""Synthetic datasets: made-up subjects' faces and heads, simulated IMU arrays, one call.

:func:`synthesize` draws a :class:`.motion.SubjectStyle` per subject, cuts each subject's
minutes into sessions of at most :data:`SESSION_MAX_MIN`, generates expressions and head motion
at the IMU rate, simulates the array (:func:`.simulate.simulate_imu`) with the session's own
chip errors and a small random re-mounting of every sensor, keeps blendshapes and head pose at
the blendshape rate on their own clock, and writes everything in the dataset format of
:mod:`.dataset` (splits by subject, training statistics, a complete ``info.json``).

Each session's random numbers come from ``(seed, subject, session)`` alone, so the same seed
gives byte-identical session files whatever the worker count and however often a run was
interrupted and resumed; only ``created`` in ``info.json`` changes.
"""

from __future__ import annotations

import math
import platform
import re
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import imucap
from imucap.rotations import matrix_to_rotvec, rotvec_to_matrix, ypr_to_rotvec

from .chip_specs import MAGNETOMETER
from .dataset import (
    DATASET_FORMAT,
    DatasetError,
    DatasetInfo,
    DatasetWriter,
    SessionInfo,
    SessionRecord,
    new_created,
    save_session,
    session_info_for,
)
from .motion import SubjectStyle, expression_track, head_track
from .placement import PRESETS, Placement, PlacementError, preset
from .rig import Rig
from .sensor_model import SensorConfigError, chip_spec, resolve_ranges
from .simulate import cubic_at, simulate_imu

SESSION_MAX_MIN = 5.0
"""Longest synthetic session, minutes; a subject's minutes are cut into equal sessions."""

MARGIN_S = 0.5
"""Motion simulated before and after each session and dropped (the physics' one-sided
differences at the ends, and room for the cubic resampling of the blendshape stream)."""



@dataclass(frozen=True)
class _Task:
    """One session to make; everything a worker process needs besides the rig and placement."""

    session_id: str
    subject_id: str
    subject_index: int
    session_index: int
    duration_s: float
    seed: int
    imu_rate_hz: float
    blendshape_rate_hz: float
    chip: str
    accel_range_g: int
    gyro_range_dps: int
    mount_jitter_mm: float
    mount_jitter_deg: float
    take: str | None = None  # a blendshape take to replay instead of made-up motion
    with_mag: bool = False
    with_quat: bool = False
    tissue_lag_s: float = 0.0


def synthesize(out_dir: str | Path, *, subjects: int = 0, minutes: float = 0.0,
               placement: str | Path | Placement = "imusic11+head", rig: Rig | None = None,
               chip: str = "ICM-42688-P", imu_rate_hz: float = 200.0,
               blendshape_rate_hz: float = 60.0, accel_range_g: int = 8,
               gyro_range_dps: int | None = None, seed: int = 0,
               progress: Callable[[int, int], None] | None = None, resume: bool = False,
               overwrite: bool = False, workers: int = 1, name: str | None = None,
               mount_jitter_mm: float = 2.0, mount_jitter_deg: float = 3.0,
               split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
               command: str | None = None,
               takes: Sequence[str | Path] | None = None, with_mag: bool = False,
               with_quat: bool = False, tissue_lag_ms: float = 0.0) -> DatasetInfo:
    """Make a synthetic dataset at ``out_dir``, from made-up motion or from real takes.

    Args:
        out_dir: Dataset directory; absent, empty, or (with ``resume``/``overwrite``) a dataset.
        subjects: Number of made-up subjects (ids ``s000``, ``s001`` …).
        minutes: Minutes per subject, cut into sessions of at most :data:`SESSION_MAX_MIN`.
        placement: A placement preset name (:data:`.placement.PRESETS`), a placement file
            path, or a :class:`.placement.Placement`.
        rig: The face rig; None for the built-in one.
        chip: IMU chip (:data:`.chip_specs.CHIPS`).
        imu_rate_hz: IMU output rate; motion is generated at this rate.
        blendshape_rate_hz: Rate of the stored blendshapes and head pose.
        accel_range_g: Accelerometer full scale, one of the chip's ranges.
        gyro_range_dps: Gyroscope full scale; None for 1000 °/s, or the chip's next larger
            range when it has no 1000.
        seed: Seed of everything random; the same seed gives the same session files.
        progress: Called as ``progress(done, total)`` after each session is written (sessions
            kept from an interrupted run count as done). An exception it raises stops the run,
            leaving a partial dataset that ``resume=True`` completes.
        resume: Keep the sessions an interrupted run at ``out_dir`` already wrote (it must
            have been started with the same settings) and make the rest.
        overwrite: Replace whatever dataset is at ``out_dir`` (wins over ``resume``).
        workers: Processes simulating sessions in parallel (1: in this process).
        name: Dataset name; defaults to the folder's name.
        mount_jitter_mm: RMS distance each sensor is moved from its placement point per
            session (re-mounting), millimetres.
        mount_jitter_deg: RMS angle each sensor is turned per session, degrees.
        split_fractions: Shares of subjects in train, val and test.
        command: The command line that asked for the dataset, recorded in ``generator``.
        takes: Real blendshape takes (Live Link Face CSV, blendshape CSV, BEAT-style JSON) to
            simulate IMUs from, one session each, instead of made-up subjects (``subjects``
            and ``minutes`` are then ignored). A take's subject is its folder's name when
            the takes come from several folders, else the file's stem. The take's own frames
            are stored as the truth; head rotation comes from its head yaw, pitch and roll
            where it has them (radians, ARKit's yaw about +y, pitch about +x, roll about +z).
        with_mag: Also simulate a magnetometer beside each IMU (stored as ``mag``).
        with_quat: Also store each sensor's on-board orientation (``quat``).
        tissue_lag_ms: Soft tissue between skin and sensor: the sensor follows the skin with
            this first-order time constant, milliseconds (0: rigidly attached).

    Returns:
        The complete dataset's info.

    Raises:
        DatasetError: Bad arguments, or ``out_dir`` holds something that may not be replaced.
    """
    out_dir = Path(out_dir)
    if takes:
        take_paths = [Path(p) for p in takes]
        for p in take_paths:
            if not p.is_file():
                raise DatasetError(f"take {p} does not exist")
        subjects, minutes = 1, 1.0  # placeholders that pass the checks; the takes decide
    _check_args(subjects, minutes, imu_rate_hz, blendshape_rate_hz, seed, workers,
                mount_jitter_mm, mount_jitter_deg)
    if not isinstance(tissue_lag_ms, (int, float)) or not 0 <= tissue_lag_ms <= 500:
        raise DatasetError(f"tissue_lag_ms must be 0 to 500, got {tissue_lag_ms!r}")
    extras = {"with_mag": bool(with_mag), "with_quat": bool(with_quat),
              "tissue_lag_s": float(tissue_lag_ms) / 1000.0}
    try:
        spec = chip_spec(chip)
        accel_range_g, gyro_range_dps = resolve_ranges(spec, accel_range_g, gyro_range_dps)
    except SensorConfigError as exc:
        raise DatasetError(str(exc)) from None
    if rig is None:
        from .builtin_rig import builtin_rig

        rig = builtin_rig()
    place = _resolve_placement(placement, rig)

    if takes:
        tasks = _take_tasks(take_paths, seed=seed, imu_rate_hz=imu_rate_hz,
                            blendshape_rate_hz=blendshape_rate_hz, chip=chip,
                            accel_range_g=accel_range_g, gyro_range_dps=gyro_range_dps,
                            mount_jitter_mm=mount_jitter_mm, mount_jitter_deg=mount_jitter_deg,
                            **extras)
        return _write(out_dir, tasks, rig, place, name=name, seed=seed, chip=chip,
                      imu_rate_hz=imu_rate_hz, blendshape_rate_hz=blendshape_rate_hz,
                      accel_range_g=accel_range_g, gyro_range_dps=gyro_range_dps,
                      generator={"program": "imucap.datasets.synth", "seed": seed,
                                 "takes": [str(p) for p in take_paths], "rig": rig.name,
                                 "mount_jitter_mm": mount_jitter_mm,
                                 "mount_jitter_deg": mount_jitter_deg, **extras,
                                 "split_fractions": list(split_fractions), "command": command},
                      split_fractions=split_fractions, progress=progress, resume=resume,
                      overwrite=overwrite, workers=workers, source="synthetic")
    sessions_per_subject = max(1, math.ceil(minutes / SESSION_MAX_MIN - 1e-9))
    duration_s = minutes * 60.0 / sessions_per_subject
    tasks = [_Task(session_id=f"s{i:03d}_{k:02d}", subject_id=f"s{i:03d}", subject_index=i,
                   session_index=k, duration_s=duration_s, seed=seed, imu_rate_hz=imu_rate_hz,
                   blendshape_rate_hz=blendshape_rate_hz, chip=chip,
                   accel_range_g=accel_range_g, gyro_range_dps=gyro_range_dps,
                   mount_jitter_mm=mount_jitter_mm, mount_jitter_deg=mount_jitter_deg, **extras)
             for i in range(subjects) for k in range(sessions_per_subject)]

    generator: dict[str, Any] = {
        "program": "imucap.datasets.synth", "seed": seed, "subjects": subjects,
        "minutes_per_subject": minutes, "session_max_minutes": SESSION_MAX_MIN,
        "rig": rig.name, "mount_jitter_mm": mount_jitter_mm,
        "mount_jitter_deg": mount_jitter_deg, "margin_s": MARGIN_S, **extras,
        "split_fractions": list(split_fractions), "command": command,
    }
    return _write(out_dir, tasks, rig, place, name=name, seed=seed, chip=chip,
                  imu_rate_hz=imu_rate_hz, blendshape_rate_hz=blendshape_rate_hz,
                  accel_range_g=accel_range_g, gyro_range_dps=gyro_range_dps,
                  generator=generator, split_fractions=split_fractions, progress=progress,
                  resume=resume, overwrite=overwrite, workers=workers, source="synthetic")


def _write(out_dir: Path, tasks: list[_Task], rig: Rig, place: Placement, *, name: str | None,
           seed: int, chip: str, imu_rate_hz: float, blendshape_rate_hz: float,
           accel_range_g: int, gyro_range_dps: int, generator: dict[str, Any],
           split_fractions: tuple[float, float, float],
           progress: Callable[[int, int], None] | None, resume: bool, overwrite: bool,
           workers: int, source: str) -> DatasetInfo:
    """Simulate ``tasks`` (in worker processes if asked) and write the dataset."""
    generator = {**generator, "versions": {"imucap": imucap.__version__,
                                           "numpy": np.__version__,
                                           "python": platform.python_version()}}
    info = DatasetInfo(format=DATASET_FORMAT, name=name or out_dir.resolve().name,
                       source=source, created=new_created(), imu_rate_hz=float(imu_rate_hz),
                       blendshape_rate_hz=float(blendshape_rate_hz), chip=chip,
                       accel_range_g=accel_range_g, gyro_range_dps=gyro_range_dps,
                       sites=place.sites, placement=place.to_json(), generator=generator,
                       mag_range_ut=MAGNETOMETER.range_ut if tasks and tasks[0].with_mag else 0)
    writer = DatasetWriter(out_dir, info=info, overwrite=overwrite, resume=resume)
    todo = [t for t in tasks if t.session_id not in writer.done_ids]
    total = len(tasks)

    def finished(entry: SessionInfo) -> None:
        writer.add_written_session(entry)
        if progress is not None:
            progress(len(writer.done_ids), total)

    if workers == 1 or len(todo) <= 1:
        for task in todo:
            finished(_make_session(task, rig, place, out_dir))
    else:
        _run_pool(todo, rig, place, out_dir, workers, finished)
    return writer.finish(seed=seed, fractions=split_fractions)


def _check_args(subjects: Any, minutes: Any, imu_rate_hz: Any, blendshape_rate_hz: Any,
                seed: Any, workers: Any, jitter_mm: Any, jitter_deg: Any) -> None:
    def is_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                and math.isfinite(v))

    if not is_int(subjects) or subjects < 1:
        raise DatasetError(f"subjects must be a whole number of at least 1, got {subjects!r}")
    if not is_num(minutes) or minutes <= 0:
        raise DatasetError(f"minutes must be a positive number, got {minutes!r}")
    if minutes * 60.0 < 1.0:
        raise DatasetError(f"minutes={minutes} is under one second per subject: ask for more")
    for label, rate in (("imu_rate_hz", imu_rate_hz), ("blendshape_rate_hz", blendshape_rate_hz)):
        if not is_num(rate) or rate <= 0:
            raise DatasetError(f"{label} must be a positive number, got {rate!r}")
    if not is_num(imu_rate_hz) or imu_rate_hz < 20:
        raise DatasetError(f"imu_rate_hz must be at least 20, got {imu_rate_hz!r}")
    if not is_int(seed) or seed < 0:
        raise DatasetError(f"seed must be a whole number ≥ 0, got {seed!r}")
    if not is_int(workers) or workers < 1:
        raise DatasetError(f"workers must be a whole number of at least 1, got {workers!r}")
    for label, value in (("mount_jitter_mm", jitter_mm), ("mount_jitter_deg", jitter_deg)):
        if not is_num(value) or value < 0:
            raise DatasetError(f"{label} must be a number ≥ 0, got {value!r}")


def _resolve_placement(placement: str | Path | Placement, rig: Rig) -> Placement:
    try:
        if isinstance(placement, Placement):
            place = placement
        elif isinstance(placement, (str, Path)) and str(placement) in PRESETS:
            place = preset(str(placement), rig)
        elif isinstance(placement, (str, Path)) and Path(placement).suffix == ".json":
            place = Placement.load(placement)
        else:
            raise DatasetError(f"unknown placement {str(placement)!r}: use a preset "
                               f"({', '.join(PRESETS)}) or a placement .json file")
        place.attach(rig)  # refuse a placement that does not sit on this rig, before any work
    except PlacementError as exc:
        raise DatasetError(str(exc)) from None
    return place


# --------------------------------------------------------------------------------------------
# One session


def _rng(task: _Task, stream: int, *more: int) -> np.random.Generator:
    """A generator that depends only on the seed, the stream tag and the indices."""
    return np.random.default_rng(np.random.SeedSequence(task.seed, spawn_key=(stream, *more)))


def _jittered(place: Placement, rng: np.random.Generator, jitter_mm: float, jitter_deg: float
              ) -> Placement:
    """The placement with each site moved and turned a little (a fresh mounting)."""
    n = len(place.sites)
    # Per-axis sigma so that the RMS of the 3D offset and of the rotation angle are as asked.
    move = rng.normal(0.0, jitter_mm * 1e-3 / math.sqrt(3.0), (n, 3))
    turn = rng.normal(0.0, math.radians(jitter_deg) / math.sqrt(3.0), (n, 3))
    rot = matrix_to_rotvec(rotvec_to_matrix(np.asarray(place.mount_rotvecs, float))
                           @ rotvec_to_matrix(turn))
    return Placement(place.name, place.sites, np.asarray(place.points, float) + move, rot)


def _sim_extras(task: _Task) -> dict[str, Any]:
    return {"with_mag": task.with_mag, "with_quat": task.with_quat,
            "tissue_lag_s": task.tissue_lag_s}


def _optional_arrays(sim: Any, margin: int, n: int) -> dict[str, np.ndarray]:
    """The magnetometer and orientation arrays of a simulation, cut to the session."""
    out = {}
    for name, array in (("mag", sim.mag_counts), ("quat", sim.quat_counts)):
        if array is not None:
            out[name] = np.ascontiguousarray(array[margin:margin + n])
    return out


def _take_tasks(paths: list[Path], **common: Any) -> list[_Task]:
    """One task per take; subjects by folder when the takes span folders, else by file."""
    by_folder = len({p.resolve().parent for p in paths}) > 1
    subjects = sorted({(p.resolve().parent.name if by_folder else p.stem) for p in paths})
    tasks, seen = [], set()
    for k, p in enumerate(paths):
        subject = p.resolve().parent.name if by_folder else p.stem
        session_id = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{subject}_{p.stem}")[:60]
        if session_id in seen:
            session_id = f"{session_id}_{k}"
        seen.add(session_id)
        tasks.append(_Task(session_id=session_id, subject_id=subject,
                           subject_index=subjects.index(subject), session_index=k,
                           duration_s=0.0, take=str(p), **common))
    return tasks


def _simulate_take(task: _Task, rig: Rig, placement: Placement) -> SessionRecord:
    """Simulate the IMUs of a real take; its own frames are the stored truth."""
    from .takes import TakeError, read_take

    try:
        take = read_take(task.take)
    except TakeError as exc:
        raise DatasetError(str(exc)) from None
    if len(take.time_s) < 4 or not np.all(np.diff(take.time_s) > 0):
        raise DatasetError(f"take {task.take} needs at least 4 frames with rising times")
    rng = _rng(task, 2, task.subject_index, task.session_index)
    rate = task.imu_rate_hz
    sites = _jittered(placement, rng, task.mount_jitter_mm, task.mount_jitter_deg).attach(
        rig, max_distance_m=0.01 + 4e-3 * task.mount_jitter_mm)
    take_rate = take.rate_hz
    # Resample the take onto a uniform grid at its median rate, then to the IMU rate; hold the
    # first and last frames through the margins so the physics has no edge.
    grid = np.arange(int(np.floor(take.time_s[-1] * take_rate)) + 1) / take_rate
    uniform_w = np.stack([np.interp(grid, take.time_s, take.weights[:, j])
                          for j in range(take.weights.shape[1])], axis=1)
    head = ypr_to_rotvec(take.head_ypr) if take.head_ypr is not None else \
        np.zeros((len(take.time_s), 3))
    uniform_h = np.stack([np.interp(grid, take.time_s, head[:, j]) for j in range(3)], axis=1)
    margin = int(round(MARGIN_S * rate))
    n = int(np.floor(grid[-1] * rate)) + 1
    pos = np.clip((np.arange(n + 2 * margin) - margin) / rate * take_rate, 0, len(grid) - 1)
    weights = np.clip(cubic_at(uniform_w, pos), 0.0, 1.0)
    head_rotvec = cubic_at(uniform_h, pos)
    sim = simulate_imu(rig, sites, weights, head_rotvec, np.zeros_like(head_rotvec),
                       rate_hz=rate, chip=task.chip, accel_range_g=task.accel_range_g,
                       gyro_range_dps=task.gyro_range_dps, rng=rng, **_sim_extras(task))
    return SessionRecord(
        imu_time_s=np.arange(n) / rate,
        accel=np.ascontiguousarray(sim.accel_counts[margin:margin + n]),
        gyro=np.ascontiguousarray(sim.gyro_counts[margin:margin + n]),
        blendshape_time_s=np.asarray(take.time_s, np.float64),
        blendshapes=np.asarray(take.weights, np.float32),
        head_rotvec=np.asarray(head, np.float32),
        head_pos=np.zeros((len(take.time_s), 3), np.float32),
        **_optional_arrays(sim, margin, n),
    )


def _simulate_session(task: _Task, rig: Rig, placement: Placement) -> SessionRecord:
    """Simulate one session's arrays (see the module doc)."""
    if task.take is not None:
        return _simulate_take(task, rig, placement)
    style = SubjectStyle.random(_rng(task, 1, task.subject_index))
    rng = _rng(task, 2, task.subject_index, task.session_index)
    rate = task.imu_rate_hz
    sites = _jittered(placement, rng, task.mount_jitter_mm, task.mount_jitter_deg).attach(
        rig, max_distance_m=0.01 + 4e-3 * task.mount_jitter_mm)
    margin = int(round(MARGIN_S * rate))
    n = int(round(task.duration_s * rate))
    total_s = (n + 2 * margin) / rate
    weights = expression_track(total_s, rate, style, rng)
    head_rotvec, head_pos = head_track(total_s, rate, style, rng)
    sim = simulate_imu(rig, sites, weights, head_rotvec, head_pos, rate_hz=rate, chip=task.chip,
                       accel_range_g=task.accel_range_g, gyro_range_dps=task.gyro_range_dps,
                       rng=rng, **_sim_extras(task))
    imu_time_s = np.arange(n) / rate
    # The camera's clock ticks on its own: its first frame falls somewhere in the first period.
    bs_rate = task.blendshape_rate_hz
    offset = float(rng.uniform(0.0, 1.0 / bs_rate))
    m = int(math.floor((imu_time_s[-1] - offset) * bs_rate + 1e-9)) + 1
    bs_time_s = offset + np.arange(m) / bs_rate
    pos = (bs_time_s + MARGIN_S) * rate
    return SessionRecord(
        imu_time_s=imu_time_s,
        accel=np.ascontiguousarray(sim.accel_counts[margin:margin + n]),
        gyro=np.ascontiguousarray(sim.gyro_counts[margin:margin + n]),
        blendshape_time_s=bs_time_s,
        blendshapes=np.clip(cubic_at(weights, pos), 0.0, 1.0).astype(np.float32),
        head_rotvec=cubic_at(head_rotvec, pos).astype(np.float32),
        head_pos=cubic_at(head_pos, pos).astype(np.float32),
        **_optional_arrays(sim, margin, n),
    )


def _make_session(task: _Task, rig: Rig, placement: Placement, out_dir: Path) -> SessionInfo:
    record = _simulate_session(task, rig, placement)
    save_session(out_dir / "sessions" / f"{task.session_id}.npz", record,
                 n_sites=len(placement.sites))
    return session_info_for(task.session_id, task.subject_id, record)


# --------------------------------------------------------------------------------------------
# Worker processes

_WORKER: dict[str, Any] = {}


def _init_worker(rig: Rig, placement: Placement) -> None:
    _WORKER["rig"], _WORKER["placement"] = rig, placement


def _worker_session(task: _Task, out_dir: Path) -> SessionInfo:
    return _make_session(task, _WORKER["rig"], _WORKER["placement"], out_dir)


def _run_pool(todo: list[_Task], rig: Rig, placement: Placement, out_dir: Path, workers: int,
              finished: Callable[[SessionInfo], None]) -> None:
    """Simulate ``todo`` in worker processes; each writes its own file, this process lists it.

    At most two tasks per worker are in flight, so stopping (a progress callback raising, or
    Ctrl-C) waits only for sessions already being simulated.
    """
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), initializer=_init_worker,
                               initargs=(rig, placement))
    pending: set[Future[SessionInfo]] = set()
    queue = list(reversed(todo))
    try:
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                pending.add(pool.submit(_worker_session, queue.pop(), out_dir))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: f.result().id):
                finished(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
