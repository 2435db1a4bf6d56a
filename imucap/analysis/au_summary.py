"""A session's Action Units in numbers: what ``imucap au`` reports.

For each :class:`~imucap.analysis.au_input.AuSeries` of an input (the truth and the model's
prediction of a session, a take, or OpenFace's output), :func:`summarise` computes what
researchers first look at in OpenFace output:

- **Frames**: how many, over what span, and how many had no face. Those frames are left out of
  every statistic below (they are flagged, not counted as a neutral face).
- **Occurrence rate** per AU: the share of frames with a face in which the AU is present
  (``AUxx_c`` = 1), and the **mean intensity** (``AUxx_r``) over those frames.
- **Intensity histogram** per AU: frames with a face by intensity bin ``[0, 1)``, ``[1, 2)``,
  ``[2, 3)``, ``[3, 4)``, ``[4, 5]``, as counts and as shares. The first bin is below FACS grade
  A (absent at the default threshold); the others are roughly grades A to E.
- **Co-occurrence**: ``P(column AU present | row AU present)``, the share of the frames in which
  the row AU is present where the column AU is present too. It is asymmetric on purpose: AU6
  (cheek raiser) with AU12 (lip corner puller) is a Duchenne smile, and "how often does AU6
  come with AU12" differs from "how often does AU12 come with AU6" (a polite smile has AU12
  without AU6). The joint frame counts are given as well, so a symmetric measure (Jaccard, phi)
  can be computed from the JSON.
- **Blink rate**: AU45 events per minute of time with a face. With blendshapes, blinks are the
  events :func:`imucap.vocab.detect_blinks` finds in the eyeBlink weights (closures of 50-500
  ms); for an OpenFace CSV, the onsets of ``AU45_c`` (each run of present frames is one blink).
  A rate needs at least :data:`MIN_BLINK_SPAN_S` of face time; shorter inputs get the count and
  a reason instead of a rate.

:func:`format_report` renders a readable text report, :func:`summary_json` the machine-readable
form, and :func:`plot_summaries` the PNG figures (needs the [plot] extra).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import AU_NAMES, NUM_AUS, describe_au, detect_blinks, eye_blink

from .au_input import AuSeries

__all__ = ["HISTOGRAM_EDGES", "MIN_BLINK_SPAN_S", "SUMMARY_FORMAT", "AuStats", "BlinkStats",
           "SeriesSummary", "format_report", "plot_summaries", "summarise", "summary_json"]

#: Intensity bin edges of the histograms: ``[0, 1), [1, 2), [2, 3), [3, 4), [4, 5]``.
HISTOGRAM_EDGES: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
#: Face time a blink rate needs, in seconds. Resting spontaneous blink rates are about 15-20 per
#: minute (Bentivoglio et al. 1997 report a mean of 17/min at rest), and blinks come irregularly,
#: so a count of ``n`` blinks is uncertain by about ``sqrt(n)``: one minute holds ~17 blinks
#: (about 25% uncertainty), half a minute ~8 (35%), and a few seconds say nothing. Blink-rate
#: studies accordingly count over one minute or more.
MIN_BLINK_SPAN_S = 60.0
#: ``format`` of the JSON summary.
SUMMARY_FORMAT = "imucap-au-summary"
_AU45 = AU_NAMES.index("AU45")


@dataclass(frozen=True)
class AuStats:
    """One Action Unit over the frames with a face.

    Attributes:
        code: ``"AU12"``.
        name: FACS name, ``"Lip Corner Puller"``.
        frames: Frames with a face and a known presence for this AU (the denominator).
        present_frames: Of those, frames where it is present.
        occurrence: ``present_frames / frames``; None when the source lacks the AU.
        mean_intensity_present: Mean intensity over the present frames; None when it is never
            present or the source has no intensity for it.
        mean_intensity: Mean intensity over all frames with a face; None without intensities.
        histogram: Frames per :data:`HISTOGRAM_EDGES` bin (5 counts; all 0 without intensities).
    """

    code: str
    name: str
    frames: int
    present_frames: int
    occurrence: float | None
    mean_intensity_present: float | None
    mean_intensity: float | None
    histogram: tuple[int, ...]

    @property
    def histogram_shares(self) -> tuple[float, ...]:
        """The histogram as shares of the frames with an intensity (0s when there are none)."""
        total = sum(self.histogram)
        return tuple(c / total if total else 0.0 for c in self.histogram)


@dataclass(frozen=True)
class BlinkStats:
    """Blinks (AU45 events) of a series.

    Attributes:
        count: Blinks found (None when the source has no AU45 at all).
        face_time_s: Time with a face, seconds (valid frames times the frame period).
        rate_per_min: ``count / face_time_s * 60``; None when the face time is under
            :data:`MIN_BLINK_SPAN_S` or there is no AU45.
        method: ``"eyeBlink events"`` or ``"AU45_c onsets"``.
        note: Why there is no rate, or empty.
    """

    count: int | None
    face_time_s: float
    rate_per_min: float | None
    method: str
    note: str


@dataclass(frozen=True)
class SeriesSummary:
    """What :func:`summarise` found in one series.

    Attributes:
        name: The series name (``truth``, ``prediction``, ``take``, ``openface``).
        source: What was read.
        frames: All frames.
        face_frames: Frames with a face (used by every statistic).
        duration_s: Span of the series, seconds (first to last frame plus one period).
        fps: Frame rate.
        threshold: Presence threshold used for AUs derived from intensities.
        missing: OpenFace columns the source lacks.
        aus: Per AU, in :data:`~imucap.vocab.AU_NAMES` order.
        cooccurrence: ``(18, 18)`` ``P(column present | row present)``; NaN where the row AU is
            never present or either AU is unknown.
        joint_frames: ``(18, 18)`` frames where both are present (the diagonal: each AU's own).
        blinks: Blink statistics.
        notes: How the input was read (from the series) and caveats.
    """

    name: str
    source: str
    frames: int
    face_frames: int
    duration_s: float
    fps: float
    threshold: float
    missing: tuple[str, ...]
    aus: tuple[AuStats, ...]
    cooccurrence: np.ndarray
    joint_frames: np.ndarray
    blinks: BlinkStats
    notes: tuple[str, ...]

    @property
    def no_face_frames(self) -> int:
        """Frames without a face (left out of the statistics)."""
        return self.frames - self.face_frames


def _mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def _au_stats(k: int, inten: np.ndarray, pres: np.ndarray) -> AuStats:
    known = np.isfinite(pres)
    present = known & (pres > 0.5)
    finite = inten[np.isfinite(inten)]
    counts, _ = np.histogram(np.clip(finite, 0.0, 5.0), bins=HISTOGRAM_EDGES)
    n = int(known.sum())
    code = AU_NAMES[k]
    return AuStats(code=code, name=describe_au(code), frames=n,
                   present_frames=int(present.sum()),
                   occurrence=float(present.sum() / n) if n else None,
                   mean_intensity_present=_mean(inten[present]),
                   mean_intensity=_mean(inten),
                   histogram=tuple(int(c) for c in counts))


def _blink_stats(series: AuSeries, face_time_s: float) -> BlinkStats:
    if series.weights is not None:
        method = "eyeBlink events"
        blinks = detect_blinks(eye_blink(np.nan_to_num(series.weights)), series.fps)
        count: int | None = len(blinks.events)
    else:
        method = "AU45_c onsets"
        col = series.presence[:, _AU45]
        if not np.isfinite(col).any():
            return BlinkStats(None, face_time_s, None, method,
                              f"{series.source} has no AU45 column: no blink rate")
        on = np.nan_to_num(col) > 0.5
        count = int(on[0]) + int(np.count_nonzero(on[1:] & ~on[:-1]))
    if face_time_s < MIN_BLINK_SPAN_S:
        note = (f"too short for a blink rate (needs at least {MIN_BLINK_SPAN_S:g} s with a "
                f"face, has {face_time_s:.1f} s)")
        return BlinkStats(count, face_time_s, None, method, note)
    return BlinkStats(count, face_time_s, count / face_time_s * 60.0, method, "")


def summarise(series: AuSeries, *, threshold: float = 1.0) -> SeriesSummary:
    """Summarise one series (module doc: what each number means).

    Args:
        series: The series, from :func:`~imucap.analysis.au_input.load_au_series`.
        threshold: The presence threshold the series was read with (reported, not applied).

    Returns:
        The summary.

    Raises:
        ImucapError: The series has no frame with a face.
    """
    valid = np.asarray(series.valid, bool)
    n_face = int(valid.sum())
    if n_face == 0:
        raise ImucapError(f"{series.label}: none of its {len(series)} frames has a face, so "
                          f"there is nothing to summarise")
    inten = series.intensities[valid]
    pres = series.presence[valid]
    aus = tuple(_au_stats(k, inten[:, k], pres[:, k]) for k in range(NUM_AUS))

    known = np.isfinite(pres)
    on = (np.nan_to_num(pres) > 0.5).astype(np.int64)
    joint = on.T @ on
    both_known = known.astype(np.int64).T @ known.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = joint / np.diag(joint)[:, None]
    cond = np.where((np.diag(joint)[:, None] > 0) & (both_known > 0), cond, np.nan)
    unknown = ~known.any(axis=0)
    cond[unknown, :] = np.nan
    cond[:, unknown] = np.nan

    face_time = n_face / series.fps
    notes = list(series.notes)
    if n_face < len(series):
        notes.append(f"{len(series) - n_face} of {len(series)} frames have no face and are "
                     f"left out")
    return SeriesSummary(
        name=series.name, source=series.source, frames=len(series), face_frames=n_face,
        duration_s=series.duration_s, fps=series.fps, threshold=threshold,
        missing=tuple(series.missing), aus=aus, cooccurrence=cond.astype(np.float64),
        joint_frames=joint, blinks=_blink_stats(series, face_time), notes=tuple(notes))


# --- output ---------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _summary_dict(s: SeriesSummary) -> dict[str, Any]:
    return {
        "name": s.name, "source": s.source, "frames": s.frames, "face_frames": s.face_frames,
        "no_face_frames": s.no_face_frames, "duration_s": _num(s.duration_s),
        "fps": _num(s.fps), "presence_threshold": s.threshold, "missing": list(s.missing),
        "aus": [{
            "au": a.code, "name": a.name, "intensity_column": f"{a.code}_r",
            "presence_column": f"{a.code}_c", "frames": a.frames,
            "present_frames": a.present_frames, "occurrence": _num(a.occurrence),
            "mean_intensity_present": _num(a.mean_intensity_present),
            "mean_intensity": _num(a.mean_intensity),
            "histogram": list(a.histogram),
            "histogram_shares": [_num(v) for v in a.histogram_shares],
        } for a in s.aus],
        "cooccurrence": {
            "measure": "P(column AU present | row AU present) over frames with a face",
            "aus": list(AU_NAMES),
            "matrix": [[_num(v) for v in row] for row in s.cooccurrence],
            "joint_frames": s.joint_frames.astype(int).tolist(),
        },
        "blinks": {"count": s.blinks.count, "rate_per_min": _num(s.blinks.rate_per_min, 3),
                   "face_time_s": _num(s.blinks.face_time_s, 3), "method": s.blinks.method,
                   "min_face_time_s": MIN_BLINK_SPAN_S, "note": s.blinks.note},
        "notes": list(s.notes),
    }


def summary_json(summaries: Sequence[SeriesSummary], *, input_path: str = "") -> dict[str, Any]:
    """The summaries as one JSON object (``format`` :data:`SUMMARY_FORMAT`, version 1).

    Histogram bins are :data:`HISTOGRAM_EDGES`; values that do not exist (an AU never present,
    a rate of too short a session) are ``null``.
    """
    return {"format": SUMMARY_FORMAT, "version": 1, "input": input_path,
            "histogram_edges": list(HISTOGRAM_EDGES),
            "series": [_summary_dict(s) for s in summaries]}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:5.1f}%"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _report_one(s: SeriesSummary) -> list[str]:
    lines = [f"== {s.name}: {s.source} ==",
             f"frames: {s.frames} over {s.duration_s:.2f} s at {s.fps:g} fps; "
             + (f"{s.no_face_frames} without a face ({100 * s.no_face_frames / s.frames:.1f}%),"
                f" left out" if s.no_face_frames else "all with a face")]
    if s.missing:
        lines.append(f"not in the source: {', '.join(s.missing)}")
    lines.append("")
    bins = "".join(f"{f'{lo:g}-{hi:g}':>6}" for lo, hi in
                   zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:], strict=True))
    lines.append(f"{'AU':<5} {'name':<22} {'occurs':>7} {'mean_r':>7}  |{bins}  (share of "
                 f"frames by intensity)")
    for a in s.aus:
        shares = "".join(f"{v:6.2f}" for v in a.histogram_shares) if sum(a.histogram) \
            else "  (no intensity in the source)"
        lines.append(f"{a.code:<5} {a.name[:22]:<22} {_pct(a.occurrence):>7} "
                     f"{_fmt(a.mean_intensity_present):>7}  |{shares}")
    lines.append("(occurs: share of frames with a face where AUxx_c = 1; mean_r: mean AUxx_r "
                 "over those frames)")
    lines.append("")
    seen = [k for k, a in enumerate(s.aus) if a.present_frames]
    if len(seen) >= 2:
        lines.append("co-occurrence: P(column AU present | row AU present)")
        lines.append("      " + " ".join(f"{AU_NAMES[k][2:]:>4}" for k in seen))
        for i in seen:
            cells = " ".join("   -" if not np.isfinite(s.cooccurrence[i, j])
                             else f"{s.cooccurrence[i, j]:4.2f}" for j in seen)
            lines.append(f"{AU_NAMES[i]:<5} {cells}")
    else:
        lines.append("co-occurrence: fewer than two AUs occur, nothing to pair")
    lines.append("")
    b = s.blinks
    if b.count is None:
        lines.append(f"blinks: {b.note}")
    elif b.rate_per_min is None:
        lines.append(f"blinks: {b.count} ({b.method}); {b.note}")
    else:
        lines.append(f"blinks: {b.count} in {b.face_time_s:.1f} s with a face = "
                     f"{b.rate_per_min:.1f} per minute ({b.method})")
    lines.extend(f"note: {n}" for n in s.notes)
    return lines


def format_report(summaries: Sequence[SeriesSummary]) -> str:
    """A readable report of each summary, one after the other, each headed by its name."""
    parts = ["\n".join(_report_one(s)) for s in summaries]
    return "\n\n".join(parts) + "\n"


def plot_summaries(summaries: Sequence[SeriesSummary], folder: str | Path) -> list[Path]:
    """Write ``<name>_histograms.png`` (a grid of the 18 intensity histograms, as shares of the
    frames with a face) and ``<name>_cooccurrence.png`` (the conditional co-occurrence as a
    heatmap) for each summary.

    Returns:
        The files written.

    Raises:
        ImucapError: matplotlib is not installed, or the folder cannot be made or written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImucapError("--plot needs matplotlib: pip install 'imucap[plot]'") from None
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImucapError(f"cannot make the plot folder {out}: {exc.strerror}") from None
    written = []
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:],
                                                   strict=True)]
    for s in summaries:
        fig, axes = plt.subplots(3, 6, figsize=(15, 7.5), sharey=True)
        for a, ax in zip(s.aus, axes.ravel(), strict=True):
            ax.bar(range(len(labels)), a.histogram_shares, color="#4c72b0")
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
            ax.set_title(f"{a.code} {a.name}", fontsize=8)
            ax.set_ylim(0, 1)
        for ax in axes[:, 0]:
            ax.set_ylabel("share of face frames", fontsize=8)
        fig.suptitle(f"AU intensity histograms: {s.name} of {s.source}")
        fig.tight_layout()
        written.append(_save(fig, out / f"{s.name}_histograms.png", plt))

        fig, ax = plt.subplots(figsize=(8, 7))
        image = ax.imshow(np.ma.masked_invalid(s.cooccurrence), vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(NUM_AUS), [c[2:] for c in AU_NAMES], fontsize=8)
        ax.set_yticks(range(NUM_AUS), list(AU_NAMES), fontsize=8)
        ax.set_xlabel("column AU present")
        ax.set_ylabel("given row AU present")
        fig.colorbar(image, ax=ax, label="P(column | row)")
        ax.set_title(f"AU co-occurrence: {s.name} of {s.source}")
        fig.tight_layout()
        written.append(_save(fig, out / f"{s.name}_cooccurrence.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise ImucapError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
    return path
