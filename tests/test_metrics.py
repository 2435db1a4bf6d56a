"""Evaluation metrics on hand-made sequences whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imucap.models.metrics import (
    blink_events,
    blink_metrics,
    error_metrics,
    evaluate,
    format_report,
    jaw_metrics,
    jitter_metrics,
    match_events,
    mean_abs_second_difference,
    pearson_r,
)
from imucap.vocab import ARKIT_NAMES, REGIONS, index_of

RATE_HZ = 60.0
T = 120
BLINK_L, BLINK_R = index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")
JAW = index_of("jawOpen")


def _truth(n_seq: int = 2) -> np.ndarray:
    """Sequences with a blink on both eyes at frames 30-35, a moving jaw and a smile ramp."""
    rng = np.random.default_rng(0)
    y = rng.uniform(0.0, 0.3, (n_seq, T, 52))
    y[:, :, [BLINK_L, BLINK_R]] = 0.05
    y[:, 30:36, BLINK_L] = 0.9
    y[:, 30:36, BLINK_R] = 0.9
    y[:, :, JAW] = 0.3 + 0.2 * np.sin(np.arange(T) / 7.0)
    return y


def _blink_track(start: int, length: int = 6, n: int = T) -> np.ndarray:
    """``(n, 52)`` zeros with a blink (0.9 on both eyes) over ``start … start + length``."""
    y = np.zeros((n, 52))
    y[start:start + length, [BLINK_L, BLINK_R]] = 0.9
    return y


def test_perfect_prediction_scores_zero_error_and_full_blink_f1():
    y = _truth()
    m = evaluate(y.copy(), y, RATE_HZ)
    assert m["mae"] == 0.0 and m["rmse"] == 0.0
    assert set(m["mae_per_blendshape"]) == set(ARKIT_NAMES)
    assert all(v == 0.0 for v in m["mae_per_blendshape"].values())
    assert all(v == 0.0 for v in m["rmse_per_region"].values())
    assert m["blink"]["f1"] == 1.0 and m["blink"]["precision"] == 1.0
    assert m["blink"]["recall"] == 1.0
    assert m["blink"]["n_true"] == m["blink"]["n_pred"] == m["blink"]["n_matched"] == 4
    assert m["blink"]["mae"] == 0.0
    assert m["jaw"]["mae"] == 0.0 and m["jaw"]["r"] == pytest.approx(1.0)
    assert m["jitter"]["pred_per_frame2"] == m["jitter"]["true_per_frame2"] > 0
    assert m["jitter"]["ratio"] == pytest.approx(1.0)
    assert m["n_sequences"] == 2 and m["n_frames"] == T and m["rate_hz"] == RATE_HZ


def test_constant_offset_gives_that_mae_everywhere():
    y = _truth() * 0.5
    m = evaluate(y + 0.1, y, RATE_HZ)
    assert m["mae"] == pytest.approx(0.1) and m["rmse"] == pytest.approx(0.1)
    assert all(v == pytest.approx(0.1) for v in m["mae_per_blendshape"].values())
    assert all(v == pytest.approx(0.1) for v in m["mae_per_region"].values())
    assert m["jaw"]["mae"] == pytest.approx(0.1)
    assert m["jaw"]["r"] == pytest.approx(1.0)  # an offset does not change the correlation
    assert m["blink"]["mae"] == pytest.approx(0.1)
    # A shift leaves the second differences alone.
    assert m["jitter"]["pred_per_frame2"] == pytest.approx(m["jitter"]["true_per_frame2"])


def test_rmse_weighs_large_errors_more_than_mae():
    y = np.zeros((10, 52))
    pred = y.copy()
    pred[0, 0] = 1.0  # one error of 1 among 520 values
    m = error_metrics(pred, y)
    assert m["mae"] == pytest.approx(1 / 520)
    assert m["rmse"] == pytest.approx(np.sqrt(1 / 520))
    assert m["mae_per_blendshape"][ARKIT_NAMES[0]] == pytest.approx(0.1)


def test_regions_aggregate_their_own_blendshapes():
    named = [n for names in REGIONS.values() for n in names]
    assert sorted(named) == sorted(ARKIT_NAMES)  # every blendshape in exactly one region
    y = np.zeros((T, 52))
    pred = y.copy()
    pred[:, index_of("jawOpen")] = 0.4
    pred[:, index_of("cheekPuff")] = 0.3
    m = error_metrics(pred, y)
    assert set(m["mae_per_region"]) == {r for r, names in REGIONS.items() if names}
    assert "tongue" in m["mae_per_region"]
    assert m["mae_per_region"]["jaw"] == pytest.approx(0.4 / len(REGIONS["jaw"]))
    assert m["mae_per_region"]["cheeks"] == pytest.approx(0.3 / len(REGIONS["cheeks"]))
    assert m["rmse_per_region"]["jaw"] == pytest.approx(np.sqrt(0.16 / len(REGIONS["jaw"])))
    for region in ("brows", "eyes", "nose", "mouth", "tongue"):
        assert m["mae_per_region"][region] == 0.0


def test_jitter_of_a_straight_line_is_zero_and_of_a_parabola_known():
    t = np.arange(T, dtype=np.float64)
    line = np.repeat((0.1 + 0.005 * t)[:, None], 52, axis=1)
    assert mean_abs_second_difference(line) == pytest.approx(0.0, abs=1e-12)
    a = 1e-4
    parabola = np.repeat((a * t**2)[:, None], 52, axis=1)  # x'' = 2a per frame²
    j = jitter_metrics(parabola, line, RATE_HZ)
    assert j["pred_per_frame2"] == pytest.approx(2 * a)
    assert j["pred_per_s2"] == pytest.approx(2 * a * RATE_HZ**2)
    assert j["true_per_frame2"] == pytest.approx(0.0, abs=1e-12)
    assert j["ratio"] is None  # the truth has no jitter to compare with
    # Frame-to-frame zigzag of ±d: |x[t+1] - 2x[t] + x[t-1]| = 4d.
    zigzag = np.repeat((0.5 + 0.01 * (-1.0) ** t)[:, None], 52, axis=1)
    j = jitter_metrics(zigzag, parabola, RATE_HZ)
    assert j["pred_per_frame2"] == pytest.approx(0.04)
    assert j["ratio"] == pytest.approx(0.04 / (2 * a))
    # The error's jitter: zigzag minus parabola = ±d zigzag minus 2a curvature, so 4d - 2a
    # where the zigzag bends against the parabola and 4d + 2a where with it.
    assert j["error_per_frame2"] == pytest.approx(0.04, abs=2 * a + 1e-12)
    assert j["error_per_s2"] == pytest.approx(j["error_per_frame2"] * RATE_HZ**2)


def test_error_jitter_is_zero_for_a_shifted_truth_and_the_truths_own_for_a_constant():
    t = np.arange(T, dtype=np.float64)
    wave = np.repeat((0.5 + 0.3 * np.sin(t / 5))[:, None], 52, axis=1)
    j = jitter_metrics(wave + 0.1, wave, RATE_HZ)  # an offset moves exactly as the truth
    assert j["error_per_frame2"] == pytest.approx(0.0, abs=1e-12)
    j = jitter_metrics(np.full_like(wave, 0.5), wave, RATE_HZ)  # the training mean's case
    assert j["error_per_frame2"] == pytest.approx(j["true_per_frame2"])


def test_jitter_never_spans_two_sequences():
    y = np.zeros((2, 10, 52))
    y[1] = 1.0  # a jump between the sequences, none inside them
    assert mean_abs_second_difference(y) == 0.0
    assert mean_abs_second_difference(np.zeros((2, 52))) is None


def test_blink_events_need_two_frames_strictly_above_half():
    x = np.zeros(40)
    x[5] = 0.9  # one frame: not a blink
    x[10:12] = 0.6  # two frames: a blink
    x[20:25] = 0.5  # at the threshold, not above it
    x[30:34] = 0.8
    assert blink_events(x) == [(10, 12), (30, 34)]
    assert blink_events(x, min_frames=3) == [(30, 34)]
    x[38:] = 0.7  # running to the end of the sequence still counts
    assert blink_events(x)[-1] == (38, 40)


@pytest.mark.parametrize(("shift", "matched"), [(0, True), (3, True), (5, True), (6, True),
                                                (-6, True), (7, False), (-8, False),
                                                (20, False)])
def test_shifted_blink_matches_only_within_100_ms(shift, matched):
    # 6 frames at 60 Hz is exactly 100 ms: still a match; 7 frames (117 ms) is a miss.
    true = _blink_track(50)
    pred = _blink_track(50 + shift)
    b = blink_metrics(pred, true, RATE_HZ)
    assert b["n_true"] == b["n_pred"] == 2  # one event per eye
    expected = 1.0 if matched else 0.0
    assert b["f1"] == expected and b["precision"] == expected and b["recall"] == expected
    assert b["n_matched"] == (2 if matched else 0)


def test_blink_precision_and_recall_count_false_alarms_and_misses():
    true = _blink_track(20) + _blink_track(80)
    pred = _blink_track(21) + _blink_track(50) + _blink_track(100)  # 1 hit, 2 false alarms
    b = blink_metrics(pred, true, RATE_HZ)
    assert (b["n_pred"], b["n_true"], b["n_matched"]) == (6, 4, 2)
    assert b["precision"] == pytest.approx(2 / 6)
    assert b["recall"] == pytest.approx(2 / 4)
    assert b["f1"] == pytest.approx(2 * 2 / (6 + 4))
    # No predicted blinks: precision is undefined, everything is missed.
    none = blink_metrics(np.zeros((T, 52)), true, RATE_HZ)
    assert none["precision"] is None and none["recall"] == 0.0 and none["f1"] == 0.0
    # Only false alarms: recall is undefined.
    false = blink_metrics(true, np.zeros((T, 52)), RATE_HZ)
    assert false["precision"] == 0.0 and false["recall"] is None and false["f1"] == 0.0
    # No blinks anywhere: nothing to score.
    empty = blink_metrics(np.zeros((T, 52)), np.zeros((T, 52)), RATE_HZ)
    assert empty["f1"] is None and empty["n_true"] == empty["n_pred"] == 0


def test_blink_eyes_are_scored_separately():
    true = _blink_track(40)
    pred = np.zeros((T, 52))
    pred[40:46, BLINK_L] = 0.9  # only the left eye closes
    b = blink_metrics(pred, true, RATE_HZ)
    assert (b["n_pred"], b["n_true"], b["n_matched"]) == (1, 2, 1)
    assert b["precision"] == 1.0 and b["recall"] == 0.5
    assert b["mae"] == pytest.approx(0.9 * 6 / (2 * T))


def test_event_matching_is_one_to_one_and_maximal():
    assert match_events(np.array([0.0]), np.array([0.05, -0.05]), 0.1) == 1
    # Nearest-first would pair 0.09 with 0.1 and leave 0.0 and 0.19 apart; the maximum is 2.
    assert match_events(np.array([0.09, 0.19]), np.array([0.0, 0.1]), 0.1) == 2
    assert match_events(np.array([]), np.array([1.0]), 0.1) == 0


def test_jaw_accuracy_mae_and_correlation():
    y = np.zeros((T, 52))
    y[:, JAW] = 0.5 + 0.3 * np.sin(np.arange(T) / 5.0)
    pred = y.copy()
    pred[:, JAW] = 1.0 - y[:, JAW]  # mirror image: r = -1
    j = jaw_metrics(pred, y)
    assert j["r"] == pytest.approx(-1.0)
    assert j["mae"] == pytest.approx(np.abs(1.0 - 2 * y[:, JAW]).mean())
    pred[:, JAW] = 0.5
    assert jaw_metrics(pred, y)["r"] is None  # a constant has no correlation
    assert pearson_r(np.arange(5.0), 2 * np.arange(5.0) + 1) == pytest.approx(1.0)


def test_single_sequence_and_batch_of_one_agree_and_are_json():
    y = _truth(1)
    pred = np.clip(y + 0.05 * np.cos(np.arange(T))[None, :, None], 0, 1)
    one, batch = evaluate(pred[0], y[0], RATE_HZ), evaluate(pred, y, RATE_HZ)
    assert one == batch
    text = json.dumps(batch, allow_nan=False)  # strict JSON: no NaN, no numpy types
    assert json.loads(text) == batch


def test_bad_inputs_are_refused_with_one_line():
    y = np.zeros((T, 52))
    for pred, true, rate in ((np.zeros((T, 51)), np.zeros((T, 51)), RATE_HZ),
                             (np.zeros((T - 1, 52)), y, RATE_HZ),
                             (y, y, 0.0),
                             (np.full((T, 52), np.nan), y, RATE_HZ)):
        with pytest.raises(ValueError) as exc:
            evaluate(pred, true, rate)
        assert "\n" not in str(exc.value)


def test_report_puts_models_side_by_side():
    y = _truth()
    metrics = {"model": evaluate(y, y, RATE_HZ),
               "mean": evaluate(np.broadcast_to(y.mean(axis=(0, 1)), y.shape), y, RATE_HZ)}
    report = format_report(metrics)
    lines = report.splitlines()
    header = lines[0].split()
    assert header == ["model", "mean"]  # columns in the order given
    rows = {line[:20].strip(): line[20:].split() for line in lines[1:] if line[:1] != "("}
    assert rows["MAE"][0] == "0.0000" and float(rows["MAE"][1]) > 0
    assert rows["blink F1"] == ["1.000", "0.000"]
    assert rows["jawOpen r"] == ["1.000", "n/a"]  # a constant prediction has no correlation
    for label in ("RMSE", "jitter pred (1/s²)", "jitter true (1/s²)"):
        assert label in rows
    assert "±100 ms" in lines[-1]
    with pytest.raises(ValueError):
        format_report({})
