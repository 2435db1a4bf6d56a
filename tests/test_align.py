"""Aligning a blendshape truth stream to the IMU stream: chin taps, cross-correlation, drift.

The synthetic face of the emulator gives both streams: ``sample(t)`` what the sensors measure
(100 Hz, with noise) and ``blendshapes(t)`` the ARKit weights of the same motion (60 fps).
The truth's times are then shifted (and stretched, for drift) by a known amount and jittered.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from imucap.errors import ImucapError
from imucap.firmware_bridge.emulator.motion import TAP_PEAK_MPS2, SyntheticMotion
from imucap.firmware_bridge.sites import IMUSIC11_SITES
from imucap.sync.align import (
    Alignment,
    AlignmentError,
    TapEvent,
    align_truth,
    find_taps,
    imu_activity,
    truth_speed,
    uniform_grid,
)
from imucap.vocab import ARKIT_NAMES, index_of

IMU_HZ = 100.0
FPS = 60.0
CHIN = IMUSIC11_SITES.index("mentalis")
EYES = [IMUSIC11_SITES.index("orbicularis_oculi_l"), IMUSIC11_SITES.index("orbicularis_oculi_r")]
# Speech and jaw bursts are off for 1.67 s around 2.5 s + k·3.33 s: taps there, face at rest.
TAPS = (2.5, 62.5 + 0.004)


def face(seed: int = 0, taps: tuple[float, ...] = TAPS) -> SyntheticMotion:
    return SyntheticMotion(IMUSIC11_SITES, rate_hz=IMU_HZ, seed=seed, taps_s=taps,
                           smooth_onsets=True)


def session(
    offset_s: float,
    *,
    seconds: float = 90.0,
    drift_ppm: float = 0.0,
    ref_s: float = 0.0,
    fps: float = FPS,
    seed: int = 0,
    taps: tuple[float, ...] = TAPS,
    jitter_s: float = 0.002,
):
    """IMU on the session clock; truth stamped ``true - offset - drift·(true - ref)`` + jitter.

    Returns ``(imu_t, accel, gyro, truth_t, weights, truth_true_t, truth_nominal_t)``: the
    last two are the true session times of the truth frames and their stamps without jitter.
    """
    motion = face(seed, taps)
    imu_t = np.arange(0.0, seconds, 1.0 / IMU_HZ)
    accel, gyro = motion.sample(imu_t)
    true_t = 0.3 + np.arange(0.0, seconds - 0.6, 1.0 / fps)
    weights = motion.blendshapes(true_t)
    nominal = true_t - offset_s - drift_ppm * 1e-6 * (true_t - ref_s)
    jitter = np.random.default_rng(seed + 100).uniform(-jitter_s, jitter_s, len(true_t))
    return imu_t, accel, gyro, nominal + jitter, weights, true_t, nominal


# ------------------------------------------------------------------ the synthetic face


def test_blendshapes_are_52_arkit_weights_in_range():
    motion = face()
    t = np.arange(0.0, 30.0, 1 / 240)
    w = motion.blendshapes(t)
    assert w.shape == (len(t), len(ARKIT_NAMES)) == (len(t), 52)
    assert w.dtype == np.float32
    assert w.min() >= 0.0 and w.max() <= 1.0
    for name in ("eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "browInnerUp", "jawOpen",
                 "mouthFunnel", "mouthClose"):
        assert w[:, index_of(name)].max() > 0.3, name
    assert np.array_equal(w, motion.blendshapes(t))  # deterministic, no noise


def test_blinks_in_the_truth_are_the_eye_gyro_bursts():
    motion = face(seed=3)
    t = np.arange(0.0, 40.0, 1e-3)
    _, gyro = motion.sample(t)
    blink = motion.blendshapes(t)[:, index_of("eyeBlinkLeft")].astype(np.float64)
    peaks = np.flatnonzero((blink[1:-1] > 0.99) & (blink[1:-1] >= blink[:-2])
                           & (blink[1:-1] > blink[2:])) + 1
    assert len(peaks) >= 6
    eyes = gyro[:, EYES]
    # The skin rate of a blink, without the slow head sway (the median rate around it).
    for p in peaks:
        if p < 300 or p > len(t) - 300:
            continue
        window = slice(p - 250, p + 251)
        rate = np.linalg.norm(eyes[window] - np.median(eyes[window], axis=0), axis=2).sum(axis=1)
        energy = rate**2
        centroid = float(np.sum(t[window] * energy) / np.sum(energy))
        assert centroid == pytest.approx(t[p], abs=0.003)  # the burst is centred on the blink
        assert rate[:150].max() < 0.2 * rate.max()  # and quiet 100 ms before it starts


def test_taps_are_sharp_and_simultaneous_in_both_streams():
    motion = face()
    t = np.arange(0.0, 10.0, 1e-4)
    accel, _ = motion.sample(t)
    still, _ = face(taps=()).sample(t)
    spike = np.linalg.norm(accel[:, CHIN] - still[:, CHIN], axis=1)
    assert t[np.argmax(spike)] == pytest.approx(TAPS[0], abs=2e-4)
    assert 15.0 <= spike.max() <= 30.0 and spike.max() == pytest.approx(TAP_PEAK_MPS2, rel=0.05)
    assert np.all(spike[np.abs(t - TAPS[0]) > 0.06] < 0.5)  # about 50 ms long
    twitch = motion.blendshapes(t)[:, [index_of("jawOpen"), index_of("mouthClose")]]
    rest = face(taps=()).blendshapes(t)[:, [index_of("jawOpen"), index_of("mouthClose")]]
    bump = (twitch - rest).sum(axis=1)
    assert t[np.argmax(bump)] == pytest.approx(TAPS[0], abs=2e-4)
    assert np.all(bump[np.abs(t - TAPS[0]) > 0.04] < 0.05)


def test_taps_change_nothing_but_the_tapped_sensor_near_the_taps():
    t = np.arange(0.0, 20.0, 0.01)
    a_tap, g_tap = SyntheticMotion(IMUSIC11_SITES, seed=5, taps_s=(7.0,)).sample(t)
    a_none, g_none = SyntheticMotion(IMUSIC11_SITES, seed=5).sample(t)
    others = [i for i in range(len(IMUSIC11_SITES)) if i != CHIN]
    assert np.array_equal(a_tap[:, others], a_none[:, others])
    assert np.array_equal(g_tap[:, others], g_none[:, others])
    far = np.abs(t - 7.0) > 0.2
    assert np.allclose(a_tap[far, CHIN], a_none[far, CHIN], atol=1e-9)
    assert np.allclose(g_tap[far, CHIN], g_none[far, CHIN], atol=1e-9)


def test_tap_site_defaults_to_the_chin_and_must_exist():
    assert SyntheticMotion(IMUSIC11_SITES, taps_s=(1.0,)).tap_sensor == CHIN
    assert SyntheticMotion(("a", "b", "c"), taps_s=(1.0,)).tap_sensor == 2
    assert SyntheticMotion(("a", "chin", "c")).tap_sensor == 1
    assert SyntheticMotion(IMUSIC11_SITES, tap_site="frontalis_l").tap_sensor == 0
    with pytest.raises(ValueError, match="frontalis_x"):
        SyntheticMotion(IMUSIC11_SITES, tap_site="frontalis_x")


# ------------------------------------------------------------------------------ taps


def test_find_taps_finds_each_tap_within_one_sample():
    imu_t, accel, _, _, _, _, _ = session(0.0)
    taps = find_taps(imu_t, accel, CHIN)
    assert [tap.sensor for tap in taps] == [CHIN, CHIN]
    for tap, true in zip(taps, TAPS, strict=True):
        assert isinstance(tap, TapEvent)
        assert abs(tap.time_s - true) <= 1.0 / IMU_HZ
        assert tap.peak_mps2 > 10.0
    assert find_taps(imu_t, accel, EYES[0]) == []  # the other sensors feel no tap


def test_a_still_session_has_no_taps():
    t = np.arange(0.0, 30.0, 0.01)
    accel, _ = SyntheticMotion(("s00", "s01"), seed=2).sample(t)  # head sway only
    assert find_taps(t, accel, 0) == []
    assert find_taps(t, accel, 1, threshold=100.0) == []


def test_find_taps_keeps_the_highest_of_close_peaks():
    t = np.arange(0.0, 20.0, 0.01)
    accel, _ = SyntheticMotion(IMUSIC11_SITES, seed=1, taps_s=(5.0, 5.4, 12.0)).sample(t)
    assert len(find_taps(t, accel, CHIN)) == 2
    assert len(find_taps(t, accel, CHIN, min_separation_s=0.2)) == 3


# --------------------------------------------------------------------------- alignment


def test_offset_from_tap_and_cross_correlation():
    offset = 0.137
    imu_t, accel, gyro, truth_t, w, true_t, nominal = session(offset)
    al = align_truth(imu_t, accel, gyro, truth_t, w, tap_sensor=CHIN)
    assert al.method == "tap+xcorr"
    assert al.offset_s == pytest.approx(offset, abs=0.002)
    assert np.abs(al.apply(nominal) - true_t).max() < 0.002
    assert al.tap_imu_s == pytest.approx(TAPS[0], abs=1.0 / IMU_HZ)
    assert al.tap_truth_s == pytest.approx(TAPS[0] - offset, abs=1.5 / FPS)
    assert al.correlation > 0.5
    assert al.drift_ppm == 0.0
    assert len(al.segments) >= 5 and al.residual_ms < 2.0
    for center, lag, corr in al.segments:
        assert 0.0 < center < 90.0 and lag == pytest.approx(offset, abs=0.003) and corr > 0.2


def test_drift_is_fitted_from_the_segments():
    offset, drift = 0.137, 50.0
    imu_t, accel, gyro, truth_t, w, true_t, nominal = session(
        offset, seconds=120.0, drift_ppm=drift, ref_s=60.0)
    al = align_truth(imu_t, accel, gyro, truth_t, w, tap_sensor=CHIN, fit_drift=True)
    assert al.drift_ppm == pytest.approx(drift, abs=10.0)
    assert np.abs(al.apply(nominal) - true_t).max() < 0.002
    assert al.residual_ms < 2.0
    # Without the drift fit the constant offset is off by up to 3 ms at the ends.
    flat = align_truth(imu_t, accel, gyro, truth_t, w, tap_sensor=CHIN)
    assert flat.drift_ppm == 0.0
    assert np.abs(flat.apply(nominal) - true_t).max() > 0.002


def test_global_search_without_any_prior():
    offset = -4.71  # several seconds: outside any search window
    imu_t, accel, gyro, truth_t, w, true_t, nominal = session(offset, seed=2)
    assert align_truth(imu_t, accel, gyro, truth_t, w, tap_sensor=CHIN).offset_s != \
        pytest.approx(offset, abs=0.01)
    al = align_truth(imu_t, accel, gyro, truth_t, w, tap_sensor=CHIN, search_s=None)
    assert al.method == "global+tap+xcorr"
    assert al.offset_s == pytest.approx(offset, abs=0.002)
    assert al.tap_truth_s == pytest.approx(TAPS[0] - offset, abs=1.5 / FPS)


def test_global_search_uses_the_tap_when_the_face_repeats_itself():
    """The IMU shows the same minute twice, tapped (and noisier) the second time: the truth's."""
    plain, tapped = face(seed=6, taps=()), face(seed=6, taps=(22.5,))
    t = np.arange(0.0, 60.0, 0.01)
    (a0, g0), (a1, g1) = plain.sample(t), tapped.sample(t)
    g1 = g1 + np.random.default_rng(1).normal(0.0, 0.1, g1.shape)
    imu_t = np.arange(0.0, 120.0, 0.01)
    accel, gyro = np.concatenate([a0, a1]), np.concatenate([g0, g1])
    truth_t = 0.3 + np.arange(0.0, 59.4, 1 / FPS)
    w = tapped.blendshapes(truth_t)
    fooled = align_truth(imu_t, accel, gyro, truth_t, w, search_s=None)
    assert fooled.method == "global+xcorr" and abs(fooled.offset_s) < 0.01  # the first minute
    al = align_truth(imu_t, accel, gyro, truth_t, w, tap_sensor=CHIN, search_s=None)
    assert al.method == "global+tap+xcorr"
    assert al.offset_s == pytest.approx(60.0, abs=0.002)


def test_offline_video_clock_and_no_face_gaps():
    """Truth from t = 0 on its own clock, covering 60 s inside the session, 5 s without face."""
    motion = face(seed=4, taps=(22.5,))
    imu_t = 1000.0 + np.arange(0.0, 100.0, 0.01)
    accel, gyro = motion.sample(imu_t - 1000.0)
    true_t = np.arange(20.0, 80.0, 1 / FPS)
    w = motion.blendshapes(true_t).astype(np.float64)
    w[1500:1800] = np.nan  # the face was lost for 5 s
    al = align_truth(imu_t, accel, gyro, true_t - 20.0, w, tap_sensor=CHIN, search_s=None)
    assert al.method == "global+tap+xcorr"
    assert al.offset_s == pytest.approx(1020.0, abs=0.002)


def test_without_a_tap_cross_correlation_alone():
    offset = 0.137
    imu_t, accel, gyro, truth_t, w, _, _ = session(offset, seed=1)
    al = align_truth(imu_t, accel, gyro, truth_t, w)  # no tap sensor named
    assert al.method == "xcorr" and al.tap_imu_s is None and al.tap_truth_s is None
    assert al.offset_s == pytest.approx(offset, abs=0.002)
    imu_t, accel, gyro, truth_t, w, _, _ = session(-0.3, seed=1, taps=())
    al = align_truth(imu_t, accel, gyro, truth_t, w, tap_sensor=CHIN)  # no tap in the session
    assert al.method == "xcorr" and al.tap_imu_s is None
    assert al.offset_s == pytest.approx(-0.3, abs=0.002)


def test_truth_at_30_fps():
    offset = 0.137
    imu_t, accel, gyro, truth_t, w, _, _ = session(offset, fps=30.0)
    al = align_truth(imu_t, accel, gyro, truth_t, w, tap_sensor=CHIN)
    assert al.method == "tap+xcorr"
    assert al.offset_s == pytest.approx(offset, abs=0.003)


# ------------------------------------------------------------------------------ errors


def test_streams_that_do_not_overlap():
    imu_t, accel, gyro, truth_t, w, _, _ = session(0.0, seconds=30.0)
    with pytest.raises(AlignmentError, match="overlap") as info:
        align_truth(imu_t, accel, gyro, truth_t + 100.0, w, tap_sensor=CHIN)
    assert isinstance(info.value, ImucapError) and "\n" not in str(info.value)
    with pytest.raises(AlignmentError, match="overlap"):
        align_truth(imu_t, accel, gyro, truth_t + 27.0, w)  # 2.4 s in common: too short


def test_streams_too_short_for_a_global_search():
    imu_t, accel, gyro, truth_t, w, _, _ = session(0.0, seconds=4.0)
    with pytest.raises(AlignmentError, match="short"):
        align_truth(imu_t, accel, gyro, truth_t, w, search_s=None)


def test_flat_signals_are_refused():
    imu_t, accel, gyro, truth_t, w, _, _ = session(0.0, seconds=30.0)
    flat_w = np.tile(w[:1], (len(w), 1))
    with pytest.raises(AlignmentError, match="truth weights do not change"):
        align_truth(imu_t, accel, gyro, truth_t, flat_w, tap_sensor=CHIN)
    still = np.full_like(gyro, 0.01) + np.random.default_rng(0).normal(0, 1e-4, gyro.shape)
    with pytest.raises(AlignmentError, match="no motion"):
        align_truth(imu_t, accel, still, truth_t, w, tap_sensor=CHIN)


def test_fitting_drift_needs_enough_segments():
    imu_t, accel, gyro, truth_t, w, _, _ = session(0.0, seconds=25.0)
    with pytest.raises(AlignmentError, match="segment"):
        align_truth(imu_t, accel, gyro, truth_t, w, fit_drift=True)


def test_mismatched_arrays_are_refused():
    imu_t, accel, gyro, truth_t, w, _, _ = session(0.0, seconds=10.0)
    with pytest.raises(AlignmentError, match="gyro"):
        align_truth(imu_t, accel, gyro[:-1], truth_t, w)
    with pytest.raises(AlignmentError, match="weights"):
        align_truth(imu_t, accel, gyro, truth_t[:-1], w)
    with pytest.raises(AlignmentError, match="tap sensor"):
        find_taps(imu_t, accel, 99)
    with pytest.raises(AlignmentError, match="not increasing"):
        align_truth(imu_t[::-1], accel, gyro, truth_t, w)


def test_repeated_and_missing_times_are_left_out():
    imu_t, accel, gyro, truth_t, w, _, _ = session(0.137, seed=3)
    imu_t, truth_t, w = imu_t.copy(), truth_t.copy(), w.astype(np.float64)
    imu_t[500] = imu_t[499]  # a repeated IMU stamp
    imu_t[800] = np.nan
    truth_t[300] = truth_t[299]
    truth_t[400] = np.nan
    w[1000:1010] = np.nan  # no face for a sixth of a second
    al = align_truth(imu_t, accel, gyro, truth_t, w, tap_sensor=CHIN)
    assert al.method == "tap+xcorr"
    assert al.offset_s == pytest.approx(0.137, abs=0.002)


# ----------------------------------------------------------------- signals and results


def test_activity_and_speed_are_standardised_on_a_common_grid():
    imu_t, _, gyro, truth_t, w, _, _ = session(0.0, seconds=30.0, jitter_s=0.0)
    w = w.astype(np.float64)
    w[600:700] = np.nan
    grid = uniform_grid(1.0, 29.0, 1000.0)
    assert grid[1] - grid[0] == pytest.approx(1e-3) and grid[-1] == pytest.approx(29.0)
    a, ma = imu_activity(imu_t, gyro, grid)
    s, ms = truth_speed(truth_t, w, grid)
    assert a.shape == s.shape == ma.shape == ms.shape == grid.shape
    assert ma.all()
    gap = (grid > truth_t[602]) & (grid < truth_t[697])
    assert not ms[gap].any() and ms[~gap & (grid < 10)].all()
    for x, m in ((a, ma), (s, ms)):
        assert x[m].mean() == pytest.approx(0.0, abs=1e-9)
        assert x[m].std() == pytest.approx(1.0)
        assert np.all(x[~m] == 0.0)
    assert float(np.mean(a * s)) > 0.5  # the same motion


def test_apply_and_json_round_trip():
    al = Alignment(offset_s=0.137, drift_ppm=50.0, ref_s=60.0, residual_ms=0.3,
                   correlation=0.8, method="tap+xcorr", tap_imu_s=2.5, tap_truth_s=2.363,
                   segments=((10.0, 0.137, 0.8), (20.0, 0.1375, 0.7)))
    assert al.apply(60.0) == pytest.approx(60.137)
    assert al.apply(160.0) == pytest.approx(160.0 + 0.137 + 0.005)
    assert isinstance(al.apply(1.0), float)
    np.testing.assert_allclose(al.apply(np.array([60.0, 160.0])), [60.137, 160.142])
    text = al.to_json()
    assert json.loads(text)["offset_s"] == 0.137
    assert Alignment.from_json(text) == al
    assert Alignment.from_json(json.loads(text)) == al
    bare = Alignment(offset_s=-1.0)
    back = Alignment.from_json(bare.to_json())
    assert back.offset_s == -1.0 and math.isnan(back.residual_ms) and back.tap_imu_s is None
    with pytest.raises(AlignmentError):
        Alignment.from_json('{"drift_ppm": 3}')
