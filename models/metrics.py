"""Evaluation metrics for predicted ARKit blendshape sequences (numpy only).

Every metric takes a prediction and the truth as arrays of blendshape weights, either one
sequence ``(T, 52)`` or a batch of sequences ``(N, T, 52)`` (e.g. the windows of a
:class:`imucap.datasets.dataset.WindowDataset`), sampled at ``rate_hz`` frames per second, in
ARKit order (:data:`imucap.vocab.ARKIT_NAMES`). Sequences in a batch are independent: second
differences and blink events never run across two of them (so with overlapping windows a blink
is counted once per window that holds it).

:func:`evaluate` gathers everything into one JSON-serialisable dict and :func:`format_report`
prints several models' dicts side by side (give it the baselines as well as the model, so a
number is always read next to what a trivial predictor scores).

Units: weights are dimensionless in [0, 1]. Jitter is reported in weight per frame² (the raw
second difference between consecutive frames) and in weight per s² (the same times
``rate_hz²``), for the prediction and for the truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES, REGIONS, index_of

BLINK_NAMES: tuple[str, ...] = ("eyeBlinkLeft", "eyeBlinkRight")
"""The channels whose events :func:`blink_metrics` scores (each eye on its own)."""

JAW_NAME = "jawOpen"
"""The channel :func:`jaw_metrics` scores."""

BLINK_THRESHOLD = 0.5
"""A blink is an eyeBlink weight strictly above this …"""

BLINK_MIN_FRAMES = 2
"""… for at least this many consecutive frames."""

BLINK_TOLERANCE_S = 0.1
"""A predicted blink matches a true one whose centre is within this many seconds of its own."""

_NO_JITTER = 1e-12  # weight / frame²: what a straight line leaves after rounding


def as_sequences(values: np.ndarray, *, what: str = "array") -> np.ndarray:
    """A ``(T, 52)`` or ``(N, T, 52)`` array as float64 ``(N, T, 52)``.

    Raises:
        ValueError: Another shape, or values that are not finite.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[-1] != NUM_BLENDSHAPES:
        raise ValueError(f"{what} must have shape (T, {NUM_BLENDSHAPES}) or "
                         f"(N, T, {NUM_BLENDSHAPES}), got {np.shape(values)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} holds NaN or infinite values")
    return arr


def _pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = as_sequences(pred, what="pred"), as_sequences(true, what="true")
    if p.shape != t.shape:
        raise ValueError(f"pred and true must have the same shape, got {np.shape(pred)} and "
                         f"{np.shape(true)}")
    if p.shape[1] == 0:
        raise ValueError("pred and true hold no frames")
    return p, t


def _check_rate(rate_hz: float) -> float:
    rate = float(rate_hz)
    if not (np.isfinite(rate) and rate > 0):
        raise ValueError(f"rate_hz must be a positive number of frames per second, got {rate_hz}")
    return rate


# --------------------------------------------------------------------------------------------
# Errors


def error_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    """MAE and RMSE overall, per blendshape and per face region.

    Args:
        pred: Predicted weights, ``(T, 52)`` or ``(N, T, 52)``.
        true: True weights, same shape.

    Returns:
        ``mae``, ``rmse`` (floats over every frame and blendshape); ``mae_per_blendshape``,
        ``rmse_per_blendshape`` (ARKit name → float); ``mae_per_region``,
        ``rmse_per_region`` (region of :data:`imucap.vocab.REGIONS` → float, over the region's
        blendshapes pooled; regions without blendshapes are left out).
    """
    p, t = _pair(pred, true)
    err = (p - t).reshape(-1, NUM_BLENDSHAPES)
    abs_per = np.abs(err).mean(axis=0)
    sq_per = np.square(err).mean(axis=0)
    mae_region: dict[str, float] = {}
    rmse_region: dict[str, float] = {}
    for region, names in REGIONS.items():
        if not names:
            continue
        cols = [index_of(n) for n in names]
        mae_region[region] = float(abs_per[cols].mean())
        rmse_region[region] = float(np.sqrt(sq_per[cols].mean()))
    return {
        "mae": float(abs_per.mean()),
        "rmse": float(np.sqrt(sq_per.mean())),
        "mae_per_blendshape": {n: float(v) for n, v in zip(ARKIT_NAMES, abs_per, strict=True)},
        "rmse_per_blendshape": {n: float(np.sqrt(v)) for n, v in
                                zip(ARKIT_NAMES, sq_per, strict=True)},
        "mae_per_region": mae_region,
        "rmse_per_region": rmse_region,
    }


# --------------------------------------------------------------------------------------------
# Jitter


def mean_abs_second_difference(values: np.ndarray) -> float | None:
    """Mean of ``|x[t+1] - 2 x[t] + x[t-1]|`` over sequences, frames and blendshapes.

    Args:
        values: ``(T, 52)`` or ``(N, T, 52)`` weights.

    Returns:
        Weight per frame²; None when sequences are shorter than 3 frames.
    """
    x = as_sequences(values)
    if x.shape[1] < 3:
        return None
    return float(np.abs(np.diff(x, n=2, axis=1)).mean())


def jitter_metrics(pred: np.ndarray, true: np.ndarray, rate_hz: float) -> dict[str, Any]:
    """Temporal jitter of the prediction next to the truth's own.

    Jitter is the mean absolute second difference (:func:`mean_abs_second_difference`): zero
    for a sequence that changes at a constant rate, large for one that shakes frame to frame.

    The single figure to compare models by is ``error_per_s2``, the jitter of the error
    (``pred - true``): zero when the prediction moves frame to frame exactly as the truth
    does; shaking the truth lacks raises it, and so does smoothing away motion the truth has
    (the training mean scores the truth's own jitter).

    Returns:
        ``pred_per_frame2``, ``true_per_frame2``, ``error_per_frame2`` (weight / frame²),
        ``pred_per_s2``, ``true_per_s2``, ``error_per_s2`` (weight / s², the former times
        ``rate_hz²``) and ``ratio`` (pred / true); values are None for sequences under 3
        frames, ``ratio`` also when the truth has no jitter (below 1e-12 per frame², rounding
        error of a straight line).
    """
    p, t = _pair(pred, true)
    rate = _check_rate(rate_hz)
    jp, jt = mean_abs_second_difference(p), mean_abs_second_difference(t)
    je = mean_abs_second_difference(p - t)
    per_s2 = rate * rate
    return {
        "error_per_frame2": je,
        "error_per_s2": None if je is None else je * per_s2,
        "pred_per_frame2": jp,
        "true_per_frame2": jt,
        "pred_per_s2": None if jp is None else jp * per_s2,
        "true_per_s2": None if jt is None else jt * per_s2,
        "ratio": None if jp is None or jt is None or jt < _NO_JITTER else jp / jt,
    }


# --------------------------------------------------------------------------------------------
# Blinks


def blink_events(weights: np.ndarray, *, threshold: float = BLINK_THRESHOLD,
                 min_frames: int = BLINK_MIN_FRAMES) -> list[tuple[int, int]]:
    """Runs of a 1-D weight sequence strictly above ``threshold`` lasting ``min_frames`` or more.

    Returns:
        ``(start, stop)`` frame indices of each event (``stop`` exclusive), in time order.
    """
    above = np.asarray(weights, dtype=np.float64).reshape(-1) > threshold
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b - a >= min_frames]


def match_events(pred_times_s: np.ndarray, true_times_s: np.ndarray, tolerance_s: float) -> int:
    """Largest number of one-to-one pairs of predicted and true event times within tolerance.

    A sweep in time order (each true event takes the earliest free prediction that is not too
    early) gives a maximum matching on a line.
    """
    p = np.sort(np.asarray(pred_times_s, dtype=np.float64))
    t = np.sort(np.asarray(true_times_s, dtype=np.float64))
    tol = tolerance_s + 1e-9  # an offset of exactly the tolerance counts, despite rounding
    i = matched = 0
    for time in t:
        while i < len(p) and p[i] < time - tol:
            i += 1
        if i < len(p) and p[i] <= time + tol:
            matched += 1
            i += 1
    return matched


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def blink_metrics(pred: np.ndarray, true: np.ndarray, rate_hz: float, *,
                  threshold: float = BLINK_THRESHOLD, min_frames: int = BLINK_MIN_FRAMES,
                  tolerance_s: float = BLINK_TOLERANCE_S) -> dict[str, Any]:
    """Eye-blink detection scores and the error of the eyeBlink channels.

    Events are found in ``eyeBlinkLeft`` and ``eyeBlinkRight`` separately
    (:func:`blink_events`, per sequence); an event's time is its centre. A predicted event
    matches at most one true event of the same eye and sequence whose centre is within
    ``tolerance_s`` (:func:`match_events`); counts are pooled over both eyes.

    Precision is matched / predicted events, recall matched / true events and F1 ``2 matched /
    (predicted + true)`` (their harmonic mean); each is None (undefined) when its denominator
    is 0: precision with no predicted blinks, recall with no true ones, F1 with neither.

    Returns:
        ``precision``, ``recall``, ``f1``, ``n_pred``, ``n_true``, ``n_matched``,
        ``mae`` (MAE over the two eyeBlink channels), ``threshold``, ``min_frames``,
        ``tolerance_s``.
    """
    p, t = _pair(pred, true)
    rate = _check_rate(rate_hz)
    cols = [index_of(n) for n in BLINK_NAMES]
    n_pred = n_true = n_matched = 0
    for seq in range(p.shape[0]):
        for col in cols:
            found = [blink_events(x[seq, :, col], threshold=threshold, min_frames=min_frames)
                     for x in (p, t)]
            centres = [np.array([(a + b - 1) / 2.0 / rate for a, b in ev]) for ev in found]
            n_pred += len(found[0])
            n_true += len(found[1])
            n_matched += match_events(centres[0], centres[1], tolerance_s)
    return {
        "precision": _ratio(n_matched, n_pred),
        "recall": _ratio(n_matched, n_true),
        "f1": _ratio(2 * n_matched, n_pred + n_true),
        "n_pred": n_pred,
        "n_true": n_true,
        "n_matched": n_matched,
        "mae": float(np.abs(p[..., cols] - t[..., cols]).mean()),
        "threshold": float(threshold),
        "min_frames": int(min_frames),
        "tolerance_s": float(tolerance_s),
    }


# --------------------------------------------------------------------------------------------
# Jaw


def pearson_r(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two equally long sequences; None when either is constant."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt(np.dot(x, x) * np.dot(y, y))
    if not den > 0:
        return None
    return float(np.clip(np.dot(x, y) / den, -1.0, 1.0))


def jaw_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    """MAE and Pearson correlation (``r``, None if either side is constant) of ``jawOpen``
    over every frame of every sequence."""
    p, t = _pair(pred, true)
    col = index_of(JAW_NAME)
    return {"mae": float(np.abs(p[..., col] - t[..., col]).mean()),
            "r": pearson_r(p[..., col], t[..., col])}


# --------------------------------------------------------------------------------------------
# Everything


def evaluate(pred: np.ndarray, true: np.ndarray, rate_hz: float) -> dict[str, Any]:
    """Every metric of this module for one model's predictions.

    Args:
        pred: Predicted weights, ``(T, 52)`` or ``(N, T, 52)``, ARKit order.
        true: True weights, same shape.
        rate_hz: Frame rate of both, frames per second.

    Returns:
        A JSON-serialisable dict (floats, ints, None, nested dicts): ``n_sequences``,
        ``n_frames`` (per sequence), ``rate_hz``, the keys of :func:`error_metrics`, and
        ``jitter`` (:func:`jitter_metrics`), ``blink`` (:func:`blink_metrics`), ``jaw``
        (:func:`jaw_metrics`).

    Raises:
        ValueError: Shapes that differ or are not ``(…, T, 52)``, non-finite values, or a
            non-positive rate.
    """
    p, t = _pair(pred, true)
    rate = _check_rate(rate_hz)
    out: dict[str, Any] = {"n_sequences": int(p.shape[0]), "n_frames": int(p.shape[1]),
                           "rate_hz": rate}
    out.update(error_metrics(p, t))
    out["jitter"] = jitter_metrics(p, t, rate)
    out["blink"] = blink_metrics(p, t, rate)
    out["jaw"] = jaw_metrics(p, t)
    return out


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def _get(metrics: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = metrics
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


_REPORT_ROWS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("MAE", ("mae",), 4),
    ("RMSE", ("rmse",), 4),
    *((f"  MAE {region}", ("mae_per_region", region), 4) for region in REGIONS if REGIONS[region]),
    ("jitter pred (1/s²)", ("jitter", "pred_per_s2"), 2),
    ("jitter true (1/s²)", ("jitter", "true_per_s2"), 2),
    ("jitter pred/true", ("jitter", "ratio"), 2),
    ("jitter of error (1/s²)", ("jitter", "error_per_s2"), 2),
    ("blink F1", ("blink", "f1"), 3),
    ("blink precision", ("blink", "precision"), 3),
    ("blink recall", ("blink", "recall"), 3),
    ("blink events pred", ("blink", "n_pred"), 0),
    ("blink events true", ("blink", "n_true"), 0),
    ("eyeBlink MAE", ("blink", "mae"), 4),
    ("jawOpen MAE", ("jaw", "mae"), 4),
    ("jawOpen r", ("jaw", "r"), 3),
)


def format_report(metrics_by_model: Mapping[str, Mapping[str, Any]]) -> str:
    """A plain-text table of several models' :func:`evaluate` dicts, one column per model.

    Put the baselines in ``metrics_by_model`` next to the model (its order is the column
    order). Jitter is in weight per s²; a missing or undefined value prints as ``n/a``.

    Raises:
        ValueError: No models given.
    """
    if not metrics_by_model:
        raise ValueError("format_report needs at least one model's metrics")
    models = list(metrics_by_model)
    cells = [[_fmt(_get(metrics_by_model[m], path), digits) for m in models]
             for _, path, digits in _REPORT_ROWS]
    label_w = max(len(label) for label, _, _ in _REPORT_ROWS)
    widths = [max(len(m), *(len(row[i]) for row in cells)) for i, m in enumerate(models)]

    def line(label: str, row: list[str]) -> str:
        return "  ".join([label.ljust(label_w)]
                         + [c.rjust(w) for c, w in zip(row, widths, strict=True)])

    lines = [line("", models)]
    lines += [line(label, row) for (label, _, _), row in zip(_REPORT_ROWS, cells, strict=True)]
    first = metrics_by_model[models[0]]
    shape = [_get(first, (k,)) for k in ("n_sequences", "n_frames", "rate_hz")]
    tolerance_s = _get(first, ("blink", "tolerance_s"))
    if None not in shape and tolerance_s is not None:
        lines.append(f"({shape[0]} sequences × {shape[1]} frames at {shape[2]:g} Hz; blink "
                     f"events matched within ±{1000 * tolerance_s:.0f} ms)")
    return "\n".join(lines)
