"""Made-up face and head motion: ranges, timing, co-activation, smoothness, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from imucap.datasets.motion import SubjectStyle, expression_track, head_track, min_jerk
from imucap.vocab import index_of

RATE = 60.0


def track(seconds=600.0, seed=0, **style):
    return expression_track(seconds, RATE, SubjectStyle(**style), np.random.default_rng(seed))


def blinks(weights):
    closed = weights[:, index_of("eyeBlinkLeft")] > 0.5
    starts = np.flatnonzero(closed[1:] & ~closed[:-1])
    ends = np.flatnonzero(~closed[1:] & closed[:-1])
    return starts, ends


def test_min_jerk_is_a_smooth_ramp():
    x = np.linspace(-0.5, 1.5, 2001)
    y = min_jerk(x)
    assert y[0] == 0 and y[-1] == 1 and np.all(np.diff(y) >= 0)
    d1 = np.gradient(y, x)
    d2 = np.gradient(d1, x)
    assert abs(d1[x < -0.01].max()) < 1e-9 and abs(d2[np.abs(x - 1) < 0.004]).max() < 0.5


def test_weights_are_in_range_and_deterministic():
    a, b = track(60, seed=3), track(60, seed=3)
    assert a.shape == (3600, 52)
    assert a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, b)
    assert not np.array_equal(a, track(60, seed=4))


@pytest.mark.parametrize("rate", [8.0, 15.0, 25.0])
def test_blink_rate_and_duration_are_realistic(rate):
    w = track(600, seed=1, blink_rate_per_min=rate, expressiveness=0.0, talk_fraction=0.0)
    starts, ends = blinks(w)
    per_min = len(starts) / 10.0
    # The 0.8 s refractory gap lowers the rate slightly: λ / (1 + 0.8 λ).
    expected = rate / (1 + 0.8 * rate / 60)
    assert per_min == pytest.approx(expected, rel=0.25)
    closed_s = (ends[: len(starts)] - starts[: len(ends)]) / RATE
    assert 0.05 < np.median(closed_s) < 0.3  # lids below half-closed for about 0.1-0.2 s


def test_smiles_raise_the_cheeks_too():
    w = track(600, seed=2, talk_fraction=0.0, expressiveness=1.5)
    smile = w[:, index_of("mouthSmileLeft")]
    cheek = w[:, index_of("cheekSquintLeft")]
    assert np.corrcoef(smile, cheek)[0, 1] > 0.6


def test_left_and_right_move_together_but_not_identically():
    w = track(300, seed=5, asymmetry=0.2)
    left, right = w[:, index_of("mouthSmileLeft")], w[:, index_of("mouthSmileRight")]
    assert np.corrcoef(left, right)[0, 1] > 0.7
    assert not np.allclose(left, right)


def test_speech_moves_the_jaw_at_syllable_rate():
    w = track(300, seed=6, talk_fraction=0.6, expressiveness=0.0, blink_rate_per_min=0.0)
    jaw = w[:, index_of("jawOpen")] - w[:, index_of("jawOpen")].mean()
    spectrum = np.abs(np.fft.rfft(jaw))
    freqs = np.fft.rfftfreq(len(jaw), 1 / RATE)
    peak = freqs[np.argmax(spectrum * (freqs > 1.0))]
    assert 3.5 <= peak <= 6.5


def test_curves_are_smooth_enough_for_an_accelerometer():
    w = track(120, seed=7)
    second = np.diff(w, 2, axis=0) * RATE**2
    assert np.abs(second).max() < 5000  # 1/s²: a 70 ms min-jerk blink peaks near 1200


def test_head_motion_stays_in_human_ranges_and_walking_bounces():
    style = SubjectStyle(head_activity=1.0, walking=True)
    rot, pos = head_track(300, 100.0, style, np.random.default_rng(8))
    assert np.abs(np.rad2deg(rot[:, 0])).max() < 45  # pitch
    assert np.abs(np.rad2deg(rot[:, 1])).max() < 80  # yaw
    assert np.abs(pos).max() < 0.1
    vertical = pos[:, 1] - pos[:, 1].mean()
    freqs = np.fft.rfftfreq(len(vertical), 1 / 100.0)
    peak = freqs[np.argmax(np.abs(np.fft.rfft(vertical)) * (freqs > 1.0))]
    assert 1.5 <= peak <= 2.2
