"""Audio features on the 60 Hz face clock: frame count and centres as documented, a tone in
the right mel band, silence at the floor, MFCC and deltas as defined, and the streaming form
giving the offline frames whatever the chunking, as early as its stated look-ahead."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from imucap.audio import FeatureConfig, FeatureStream, compute_features, frame_centres, frame_count
from imucap.audio.features import LOG_FLOOR, mel_filterbank
from imucap.errors import ImucapError

RATE = 16000


def slaney_hz_to_mel(f: float) -> float:
    """The Auditory Toolbox's mel scale, written out from its definition."""
    return 3 * f / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)


def slaney_mel_to_hz(m: float) -> float:
    return 200 * m / 3 if m < 15 else 1000 * 6.4 ** ((m - 15) / 27)


def band_centres(cfg: FeatureConfig) -> np.ndarray:
    lo, hi = slaney_hz_to_mel(cfg.fmin), slaney_hz_to_mel(cfg.fmax)
    step = (hi - lo) / (cfg.n_mels + 1)
    return np.array([slaney_mel_to_hz(lo + step * (i + 1)) for i in range(cfg.n_mels)])


def sine(freq: float, seconds: float, amp: float = 0.5, rate: int = RATE) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32)


# --------------------------------------------------------------------------------------------
# The frame clock


def brute_count(n: int, rate: int, fps: Fraction) -> int:
    k = 0
    while n > 0 and round_half_up(Fraction(k * rate) / fps) <= n - 1:
        k += 1
    return k


def round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


@pytest.mark.parametrize("rate,fps", [(16000, 60), (16000, 30), (44100, 60), (16000, 59.94),
                                      (48000, 24)])
def test_frame_count_and_centres_follow_the_formula(rate, fps):
    f = Fraction(fps).limit_denominator(1_000_000)
    for n in [0, 1, 2, 133, 134, 266, 267, 268, 400, 533, 534, 16000, 16001, 12345]:
        t = frame_count(n, rate, fps)
        assert t == brute_count(n, rate, f), n
        if n:
            assert t == math.ceil((Fraction(n) - Fraction(1, 2)) * f / rate)
    c = frame_centres(200, rate, fps)
    assert c.tolist() == [round_half_up(Fraction(k * rate) / f) for k in range(200)]


def test_centres_do_not_drift_over_hours():
    k = 3 * 3600 * 60                              # three hours of 60 Hz frames
    assert int(frame_centres(np.array([k]), RATE, 60)[0]) == k * RATE // 60
    assert frame_centres(np.array([1, 2, 3, 4]), RATE, 60).tolist() == [267, 533, 800, 1067]
    assert frame_count(3 * 3600 * RATE, RATE, 60) == k


def test_output_shape_matches_the_frame_count():
    cfg = FeatureConfig()
    for n in [0, 1, 267, 16000, 16001, 40000]:
        x = np.zeros(n, np.float32)
        out = compute_features(x, RATE, cfg)
        assert out.shape == (frame_count(n, RATE), 80) and out.dtype == np.float32
    assert compute_features(np.zeros(16000), RATE).shape[0] == 60       # one second: 60 frames


def test_an_impulse_lights_exactly_the_frame_centred_on_it():
    """A click at frame 10's centre sample meets the window's peak (weight 1) there: its
    spectrum is flat, so every band holds exactly the sum of its filter. Frames 9 and 11 do
    not reach it; a click one sample past frame 10's window leaves frame 10 at the floor."""
    cfg = FeatureConfig()
    fb = mel_filterbank(RATE, cfg)
    x = np.zeros(RATE, np.float32)
    c10 = int(frame_centres(np.array([10]), RATE, 60)[0])
    x[c10] = 1.0
    out = compute_features(x, RATE, cfg)
    np.testing.assert_allclose(out[10], np.log(fb.sum(axis=1)), rtol=1e-6)
    lit = np.flatnonzero((out > np.log(LOG_FLOOR) + 1e-3).any(axis=1))
    assert lit.tolist() == [10]
    y = np.zeros(RATE, np.float32)
    y[c10 + cfg.window_length(RATE) // 2] = 1.0     # first sample after frame 10's window
    assert (compute_features(y, RATE, cfg)[10] == np.float32(np.log(LOG_FLOOR))).all()


# --------------------------------------------------------------------------------------------
# What the features hold


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6000.0])
def test_a_tone_lights_the_band_centred_on_it(freq):
    cfg = FeatureConfig()
    out = compute_features(sine(freq, 1.0), RATE, cfg)
    mean = out[5:-5].mean(axis=0)
    expected = int(np.argmin(np.abs(band_centres(cfg) - freq)))
    assert abs(int(np.argmax(mean)) - expected) <= 1
    # Far from the tone the bands are at least 40 dB (ln: 9.2) below it.
    far = np.abs(np.arange(cfg.n_mels) - expected) > 12
    assert mean.max() - mean[far].max() > 9.2


def test_filterbank_is_slaney_and_area_normalised():
    cfg = FeatureConfig()
    fb = mel_filterbank(RATE, cfg)
    assert fb.shape == (80, 257)
    freqs = np.arange(257) * RATE / 512
    peaks = freqs[np.argmax(fb, axis=1)]
    # Each triangle peaks at the FFT bin nearest its centre (bins are 31.25 Hz apart).
    assert np.abs(peaks - band_centres(cfg)).max() <= 31.25 / 2 + 1e-9
    # Area normalisation: height 2 / width makes each triangle's area 1 (in Hz), which the
    # weights times the bin spacing approximate once a triangle spans several bins.
    lo, hi = slaney_hz_to_mel(20.0), slaney_hz_to_mel(8000.0)
    edges = np.array([slaney_mel_to_hz(lo + (hi - lo) * i / 81) for i in range(82)])
    area = fb.sum(axis=1) * 31.25
    wide = (edges[2:] - edges[:-2]) > 4 * 31.25
    assert wide.sum() > 30
    np.testing.assert_allclose(area[wide], 1.0, rtol=0.03)
    np.testing.assert_allclose(area, 1.0, rtol=0.15)


def test_silence_gives_the_floor_and_level_shifts_the_log():
    cfg = FeatureConfig(n_mfcc=13)
    out = compute_features(np.zeros(8000, np.float32), RATE, cfg)
    floor = np.float32(np.log(LOG_FLOOR))
    assert (out[:, :80] == floor).all()
    np.testing.assert_allclose(out[:, 80], math.sqrt(80) * np.log(LOG_FLOOR), rtol=1e-6)
    np.testing.assert_allclose(out[:, 81:], 0, atol=1e-5)
    # Twice the amplitude is four times the power: +ln(4) in every band with signal.
    a = compute_features(sine(1000, 0.5, 0.2), RATE)[5:-5]
    b = compute_features(sine(1000, 0.5, 0.4), RATE)[5:-5]
    hot = a > np.log(LOG_FLOOR) + 10
    np.testing.assert_allclose((b - a)[hot], np.log(4.0), atol=1e-4)


def test_mfcc_is_the_orthonormal_dct_of_the_log_mel():
    scipy_fft = pytest.importorskip("scipy.fft")
    x = np.random.default_rng(0).standard_normal(RATE).astype(np.float32) * 0.1
    both = compute_features(x, RATE, FeatureConfig(n_mfcc=13))
    ref = scipy_fft.dct(both[:, :80].astype(np.float64), type=2, norm="ortho", axis=1)[:, :13]
    np.testing.assert_allclose(both[:, 80:], ref, rtol=1e-4, atol=1e-4)
    only = compute_features(x, RATE, FeatureConfig(n_mfcc=13, log_mel=False))
    assert only.shape[1] == 13
    np.testing.assert_array_equal(only, both[:, 80:])


def _deltas(c: np.ndarray) -> np.ndarray:
    """The documented regression, edges repeated."""
    p = np.pad(c.astype(np.float64), ((2, 2), (0, 0)), mode="edge")
    return (1 * (p[3:-1] - p[1:-3]) + 2 * (p[4:] - p[:-4])) / 10


def test_deltas_are_the_documented_regression():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(RATE // 2) * np.linspace(0, 0.5, RATE // 2)).astype(np.float32)
    cfg = FeatureConfig(n_mfcc=13, deltas=2)
    out = compute_features(x, RATE, cfg)
    assert out.shape[1] == cfg.dim == 93 * 3
    static = out[:, :93]
    d1 = _deltas(static)
    np.testing.assert_allclose(out[:, 93:186], d1, atol=2e-5)
    np.testing.assert_allclose(out[:, 186:], _deltas(d1), atol=2e-5)
    # A steady ramp in level gives a steady slope: log power grows by ln(4) per doubling.
    ramp = (np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)
            * np.exp(np.arange(RATE) / RATE * 3)).astype(np.float32) * 0.01
    out = compute_features(ramp, RATE, FeatureConfig(deltas=1))
    per_frame = 2 * 3 / 60                 # d ln(power) per 60 Hz frame
    band = int(np.argmax(out[30, :80]))
    assert out[10:-10, 80 + band] == pytest.approx(per_frame, rel=1e-3)


def test_other_rates_and_bad_settings():
    x8 = sine(1000, 1.0, rate=8000)
    out = compute_features(x8, 8000, FeatureConfig(fmax=4000, n_mels=40))
    assert out.shape == (60, 40)
    with pytest.raises(ImucapError, match=r"fmax=8000 Hz is above the Nyquist frequency of "
                                          r"8000-Hz audio"):
        compute_features(x8, 8000)
    with pytest.raises(ImucapError, match="fall between FFT bins"):
        compute_features(sine(1000, 0.1), RATE, FeatureConfig(n_mels=200))
    with pytest.raises(ImucapError, match="mono samples"):
        compute_features(np.zeros((100, 2)), RATE)
    with pytest.raises(ImucapError, match="deltas must be 0, 1 or 2"):
        FeatureConfig(deltas=3)


# --------------------------------------------------------------------------------------------
# Streaming


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(n_mfcc=13, deltas=1),
                                 FeatureConfig(n_mfcc=13, deltas=2),
                                 FeatureConfig(fps=30, n_mels=40, deltas=2)])
def test_stream_gives_the_offline_frames_in_any_chunks(cfg):
    rng = np.random.default_rng(cfg.dim)
    x = (rng.standard_normal(int(2.3 * RATE)) * 0.1).astype(np.float32)
    x[RATE:RATE + 4000] = 0                        # a silent stretch in the middle
    offline = compute_features(x, RATE, cfg)
    for trial in range(3):
        stream, parts, i = FeatureStream(cfg, RATE), [], 0
        while i < len(x):
            n = int(rng.integers(1, [50, 700, 9000][trial]))
            got = stream.push(x[i:i + n])
            assert got.shape[1] == cfg.dim and got.dtype == np.float32
            parts.append(got)
            i += n
        parts.append(stream.flush())
        online = np.concatenate(parts)
        assert online.shape == offline.shape
        np.testing.assert_allclose(online, offline, rtol=0, atol=1e-5)
    assert stream.flush().shape == (0, cfg.dim)
    with pytest.raises(ImucapError, match="was flushed"):
        stream.push(x[:10])


def test_short_and_empty_streams():
    s = FeatureStream()
    assert s.flush().shape == (0, 80)
    s.reset()
    assert s.push(np.zeros(1)).shape == (0, 80)
    out = s.flush()
    np.testing.assert_array_equal(out, compute_features(np.zeros(1), RATE))


@pytest.mark.parametrize("deltas,ms", [(0, 12.4375), (1, 45.7708), (2, 79.1042)])
def test_frames_leave_as_soon_as_their_lookahead_has_arrived(deltas, ms):
    cfg = FeatureConfig(deltas=deltas)
    stream = FeatureStream(cfg, RATE)
    assert stream.lookahead_ms == pytest.approx(ms, abs=1e-3)
    x = (np.random.default_rng(2).standard_normal(RATE) * 0.1).astype(np.float32)
    k = 20
    # Lookahead in samples: the window's right half (199) plus 2 frames per delta order.
    right = 199
    need = int(frame_centres(np.array([k + 2 * deltas]), RATE, 60)[0]) + right + 1
    got = stream.push(x[:need - 1])
    assert stream.frames_out == k                  # frame k still waits for one sample
    got = stream.push(x[need - 1:need])
    assert stream.frames_out == k + 1 and len(got) == 1
    offline = compute_features(x, RATE, cfg)
    np.testing.assert_allclose(got[0], offline[k], atol=1e-5)
    # The stated look-ahead is that wait, measured from frame k's centre time k / fps.
    assert (need - 1) / RATE - k / 60 == pytest.approx(ms / 1000, abs=0.5 / RATE)
