"""Recorded sessions → the dataset format the simulator writes (``imucap dataset build``).

Per session file: the clocks are fitted and the truth aligned (the stored ``imucap.sync`` is
used when present, otherwise :func:`~imucap.sync.session_sync.synchronise` runs now), both
streams are put on the session clock, the still step's gyroscope bias is removed, and the
recording is cut at gaps (lost IMU data or truth without a face for longer than ``max_gap_s``)
into dataset sessions of at least ``min_segment_s``. The alignment residual of each recording
is kept in the dataset's ``generator`` section so that a bad recording can be found and left
out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imucap.datasets.dataset import (
    DATASET_FORMAT,
    DatasetError,
    DatasetInfo,
    DatasetWriter,
    SessionRecord,
    new_created,
)
from imucap.datasets.sensor_model import lsb_si
from imucap.errors import ImucapError
from imucap.rotations import ypr_to_rotvec
from imucap.vocab import NUM_BLENDSHAPES

from .calibrate import CALIBRATION_METADATA
from .session_file import SUFFIX, SessionContents, read_session


@dataclass
class BuildReport:
    """What :func:`build_dataset` made.

    Attributes:
        info: The complete dataset's description.
        recordings: Per session file: name, segments written, seconds kept, residual_ms,
            and why anything was left out.
        skipped: ``(file, reason)`` for recordings that gave nothing.
    """

    info: DatasetInfo
    recordings: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def session_files(paths: Sequence[str | Path]) -> list[Path]:
    """The ``.mcap`` session files named, or found (recursively) in the folders named."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.rglob(f"*{SUFFIX}")))
        elif p.is_file():
            out.append(p)
        else:
            raise ImucapError(f"no session file or folder at {p}")
    if not out:
        raise ImucapError(f"no {SUFFIX} session files in {', '.join(map(str, paths))}: record "
                          f"some with `imucap record`")
    return out


def _segments(mask_t: np.ndarray, gap_s: float) -> list[tuple[float, float]]:
    """Spans of a sorted time array without a step longer than ``gap_s``."""
    if len(mask_t) < 2:
        return []
    breaks = np.flatnonzero(np.diff(mask_t) > gap_s)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(mask_t) - 1]])
    return [(float(mask_t[a]), float(mask_t[b])) for a, b in zip(starts, ends, strict=True)]


def _spans_overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]
                   ) -> list[tuple[float, float]]:
    out = []
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0, b0), min(a1, b1)
            if hi > lo:
                out.append((lo, hi))
    return sorted(out)


def recording_streams(contents: SessionContents, *, tap_site: str | None = None
                      ) -> dict[str, Any]:
    """A recording's streams on the session clock, gyroscope bias removed.

    Returns:
        ``imu_time_s``, ``accel``, ``gyro`` (sorted, duplicates dropped), ``truth_time_s``,
        ``weights`` (NaN rows without a face), ``head_ypr``, ``sync`` (JSON) and
        ``residual_ms``.
    """
    from imucap.sync.session_sync import SYNC_METADATA, SessionSync, synchronise

    stored = contents.metadata.get(SYNC_METADATA)
    if stored and stored.get("alignment") is not None and tap_site is None:
        sync = SessionSync.from_json(stored)
    else:
        sync = synchronise(contents, tap_site=tap_site)
    imu_t = sync.imu_times(contents)
    order = np.argsort(imu_t, kind="stable")
    imu_t = imu_t[order]
    keep = np.concatenate([[True], np.diff(imu_t) > 0])
    accel = contents.imu.accel[order][keep]
    gyro = contents.imu.gyro[order][keep].astype(np.float32)
    calib = contents.metadata.get(CALIBRATION_METADATA) or {}
    still = calib.get("still")
    if still and still.get("still"):
        bias = np.asarray(still["gyro_bias_rad_s"], np.float32)
        if bias.shape == gyro.shape[1:]:
            gyro = gyro - bias
    truth_t = sync.truth_times(contents)
    t_order = np.argsort(truth_t, kind="stable")
    return {"imu_time_s": imu_t[keep], "accel": accel, "gyro": gyro,
            "truth_time_s": truth_t[t_order], "weights": contents.truth.weights[t_order],
            "head_ypr": contents.truth.head_ypr[t_order], "sync": sync.to_json(),
            "residual_ms": sync.residual_ms, "alignment_error": sync.alignment_error}


def build_dataset(paths: Sequence[str | Path], out: str | Path, *, name: str | None = None,
                  min_segment_s: float = 5.0, max_gap_s: float = 0.25,
                  overwrite: bool = False, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> BuildReport:
    """Turn session files into a dataset at ``out``.

    Raises:
        ImucapError: No sessions, sessions that disagree (sites, chip, ranges, rate), or none
            with usable paired data.
    """
    files = session_files(paths)
    first = None
    report_rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    writer: DatasetWriter | None = None
    for index, path in enumerate(files):
        try:
            contents = read_session(path)
        except ImucapError as exc:
            skipped.append((str(path), str(exc)))
            continue
        meta = contents.session
        device = contents.device
        fixed = {"sites": list(contents.sites), "chip": device["chip"],
                 "accel_range_g": device["accel_range_g"],
                 "gyro_range_dps": device["gyro_range_dps"],
                 "imu_rate_hz": float(device["rate_hz"])}
        if first is None:
            first = fixed
            info = DatasetInfo(
                format=DATASET_FORMAT, name=name or Path(out).name, source="recorded",
                created=new_created(), imu_rate_hz=fixed["imu_rate_hz"],
                blendshape_rate_hz=60.0, chip=fixed["chip"],
                accel_range_g=fixed["accel_range_g"], gyro_range_dps=fixed["gyro_range_dps"],
                sites=tuple(fixed["sites"]),
                # Sites without a known position keep their names (a placement file can be
                # given to the simulator later); the model itself uses the site names.
                placement=meta.get("placement") or {"name": "unknown", "sites": [
                    {"name": n} for n in fixed["sites"]]},
                generator={"command": "imucap dataset build", "recordings": []})
            try:
                writer = DatasetWriter(out, info=info, overwrite=overwrite)
            except DatasetError as exc:
                raise ImucapError(str(exc)) from None
        elif fixed != first:
            differ = ", ".join(k for k in fixed if fixed[k] != first[k])
            skipped.append((str(path), f"its {differ} differ from the first session's"))
            continue
        assert writer is not None
        row = _add_recording(writer, contents, fixed, min_segment_s, max_gap_s, skipped)
        if row is not None:
            report_rows.append(row)
        if progress is not None:
            progress(index + 1, len(files))
    if writer is None or not writer.info.sessions:
        reasons = "; ".join(f"{Path(f).name}: {r}" for f, r in skipped) or "nothing usable"
        raise ImucapError(f"no dataset sessions could be made ({reasons})")
    generator = dict(writer.info.generator, recordings=report_rows,
                     skipped=[{"file": f, "reason": r} for f, r in skipped])
    writer.set_generator(generator)
    info = writer.finish(seed=seed)
    return BuildReport(info, report_rows, skipped)


def _add_recording(writer: DatasetWriter, contents: SessionContents, fixed: dict[str, Any],
                   min_segment_s: float, max_gap_s: float,
                   skipped: list[tuple[str, str]]) -> dict[str, Any] | None:
    meta = contents.session
    base = str(meta.get("session") or contents.path.stem)
    subject = str(meta.get("subject") or "unknown")
    if contents.imu.n == 0 or contents.truth.n == 0:
        skipped.append((str(contents.path), "no IMU data" if contents.imu.n == 0 else
                        "no truth frames"))
        return None
    s = recording_streams(contents)
    face = np.all(np.isfinite(s["weights"]), axis=1)
    truth_t = s["truth_time_s"][face]
    spans = _spans_overlap(_segments(s["imu_time_s"], max_gap_s),
                           _segments(truth_t, max_gap_s))
    spans = [(a, b) for a, b in spans if b - a >= min_segment_s]
    if not spans:
        skipped.append((str(contents.path), f"no stretch of {min_segment_s:g} s with both "
                                            f"IMU data and a face in the truth"))
        return None
    accel_lsb, gyro_lsb = lsb_si(fixed["accel_range_g"], fixed["gyro_range_dps"])
    unmeasured = [int(i) for i in ((meta.get("truth") or {}).get("unmeasured") or [])]
    kept = 0.0
    ids = []
    for k, (a, b) in enumerate(spans):
        imu_sel = (s["imu_time_s"] >= a) & (s["imu_time_s"] <= b)
        tr_sel = face & (s["truth_time_s"] >= a) & (s["truth_time_s"] <= b)
        weights = np.clip(s["weights"][tr_sel], 0.0, 1.0).astype(np.float32)
        weights[:, unmeasured] = 0.0
        ypr = s["head_ypr"][tr_sel]
        ypr = np.where(np.isfinite(ypr), ypr, 0.0).astype(np.float32)
        record = SessionRecord(
            imu_time_s=s["imu_time_s"][imu_sel],
            accel=np.clip(np.round(s["accel"][imu_sel] / accel_lsb), -32768, 32767
                          ).astype(np.int16),
            gyro=np.clip(np.round(s["gyro"][imu_sel] / gyro_lsb), -32768, 32767
                         ).astype(np.int16),
            blendshape_time_s=s["truth_time_s"][tr_sel], blendshapes=weights,
            head_rotvec=ypr_to_rotvec(ypr).astype(np.float32),
            head_pos=np.zeros((len(weights), 3), np.float32))
        sid = base if len(spans) == 1 else f"{base}-{k + 1}"
        try:
            writer.add_session(sid, subject, record)
        except DatasetError as exc:
            skipped.append((str(contents.path), str(exc)))
            continue
        ids.append(sid)
        kept += b - a
    residual = s["residual_ms"]
    return {"file": contents.path.name, "subject": subject, "sessions": ids,
            "seconds": round(kept, 3), "residual_ms": None if not math.isfinite(residual)
            else round(residual, 3), "alignment_error": s["alignment_error"],
            "unmeasured": unmeasured, "blendshape_channels": NUM_BLENDSHAPES}
