"""Tests for imucap.vocab.aus: FACS Action Units from ARKit blendshapes, and blink detection."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import imucap.vocab as vocab
from imucap.errors import ImucapError
from imucap.vocab import ARKIT_NAMES, dict_to_weights
from imucap.vocab import aus as aus_module
from imucap.vocab.au_table import ACTION_UNITS, DIRECT, HEURISTIC
from imucap.vocab.aus import (
    AU_NAMES,
    INTENSITY_FLOOR,
    NUM_AUS,
    ActionUnitError,
    BlinkDetector,
    UnknownActionUnitError,
    au_columns,
    au_index,
    au_intensities,
    au_presence,
    au_row,
    describe_au,
    detect_blinks,
    eye_blink,
    openface_values,
)

RNG = np.random.default_rng(11)
RATE_HZ = 60.0

# The OpenFace 2 AU set, and the AU columns of a FeatureExtraction CSV as its RecorderCSV writes
# them (sorted intensity names, then sorted presence names; no AU28_r).
OPENFACE_AUS = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU28", "AU45",
)  # fmt: skip
OPENFACE_COLUMNS = (
    "AU01_r", "AU02_r", "AU04_r", "AU05_r", "AU06_r", "AU07_r", "AU09_r", "AU10_r", "AU12_r",
    "AU14_r", "AU15_r", "AU17_r", "AU20_r", "AU23_r", "AU25_r", "AU26_r", "AU45_r",
    "AU01_c", "AU02_c", "AU04_c", "AU05_c", "AU06_c", "AU07_c", "AU09_c", "AU10_c", "AU12_c",
    "AU14_c", "AU15_c", "AU17_c", "AU20_c", "AU23_c", "AU25_c", "AU26_c", "AU28_c", "AU45_c",
)  # fmt: skip


def weights(**values: float) -> np.ndarray:
    """A 52-weight frame with the named blendshapes set and the rest 0."""
    return dict_to_weights(values, strict=True).weights


def au(intensities: np.ndarray, code: str) -> float:
    return float(intensities[..., AU_NAMES.index(code)])


def positive_blendshapes(row) -> set[str]:
    return {name for term in row.terms if term.weight > 0 for name in term.blendshapes}


def all_blendshapes(row) -> set[str]:
    return {name for term in row.terms for name in term.blendshapes}


# --- the table --------------------------------------------------------------------------------


def test_au_names_follow_openface_order():
    assert AU_NAMES == OPENFACE_AUS
    assert NUM_AUS == 18
    assert tuple(row.code for row in ACTION_UNITS) == OPENFACE_AUS


@pytest.mark.parametrize("row", ACTION_UNITS, ids=lambda r: r.code)
def test_every_row_is_sourced_and_well_formed(row):
    assert row.kind in {DIRECT, HEURISTIC}
    assert row.source.strip()
    assert row.facs_name.strip()
    assert row.terms
    for term in row.terms:
        assert term.blendshapes
        assert term.weight != 0
        for name in term.blendshapes:
            assert name in ARKIT_NAMES, f"{row.code}: {name!r} is not a canonical ARKit name"


@pytest.mark.parametrize("code", ["AU23", "AU25", "AU26", "AU28", "AU45"])
def test_approximate_rows_are_marked_heuristic(code):
    assert au_row(code).kind == HEURISTIC


def test_only_au28_lacks_an_openface_intensity_column():
    assert [row.code for row in ACTION_UNITS if not row.openface_intensity] == ["AU28"]


# --- each AU responds to its blendshapes and to nothing else ----------------------------------


@pytest.mark.parametrize("row", ACTION_UNITS, ids=lambda r: r.code)
def test_au_rises_with_each_of_its_blendshapes(row):
    i = AU_NAMES.index(row.code)
    for name in sorted(positive_blendshapes(row)):
        assert au_intensities(weights(**{name: 1.0}))[i] > 0, f"{row.code} ignores {name}"


@pytest.mark.parametrize("row", ACTION_UNITS, ids=lambda r: r.code)
def test_au_ignores_unrelated_blendshapes(row):
    i = AU_NAMES.index(row.code)
    unrelated = [n for n in ARKIT_NAMES if n not in all_blendshapes(row)]
    frames = np.eye(len(ARKIT_NAMES), dtype=np.float32)[[ARKIT_NAMES.index(n) for n in unrelated]]
    values = au_intensities(frames)[:, i]
    assert np.all(values == 0), dict(zip(unrelated, values, strict=True))


def test_smile_drives_au12_and_brow_raise_does_not():
    assert au(au_intensities(weights(mouthSmileLeft=0.7, mouthSmileRight=0.7)), "AU12") > 3
    assert au(au_intensities(weights(browInnerUp=1.0)), "AU12") == 0
    assert au(au_intensities(weights(browInnerUp=1.0)), "AU01") == 5


def test_intensity_grows_with_weight():
    levels = np.linspace(0, 1, 21, dtype=np.float32)
    frames = np.zeros((21, 52), dtype=np.float32)
    frames[:, ARKIT_NAMES.index("mouthSmileLeft")] = levels
    values = au_intensities(frames)[:, AU_NAMES.index("AU12")]
    assert np.all(np.diff(values) >= 0)
    assert values[0] == 0 and values[-1] == 5


# --- left/right combination: the stronger side carries the AU ---------------------------------


def test_one_sided_action_reads_at_full_strength():
    left = au_intensities(weights(mouthSmileLeft=1.0))
    right = au_intensities(weights(mouthSmileRight=1.0))
    both = au_intensities(weights(mouthSmileLeft=1.0, mouthSmileRight=1.0))
    assert au(left, "AU12") == au(right, "AU12") == au(both, "AU12") == 5


def test_sides_combine_by_max_not_mean():
    uneven = au_intensities(weights(browDownLeft=0.6, browDownRight=0.2))
    strong_side_only = au_intensities(weights(browDownLeft=0.6))
    assert au(uneven, "AU04") == pytest.approx(au(strong_side_only, "AU04"))
    assert au(uneven, "AU04") > au(au_intensities(weights(browDownLeft=0.4)), "AU04")


def test_mirroring_the_face_leaves_every_au_unchanged():
    frames = RNG.uniform(0, 1, size=(50, 52)).astype(np.float32)
    swap = list(range(52))
    for i, name in enumerate(ARKIT_NAMES):
        for a, b in (("Left", "Right"), ("Right", "Left")):
            if name.endswith(a):
                swap[i] = ARKIT_NAMES.index(name[: -len(a)] + b)
    mirrored = frames[:, swap]
    assert not np.array_equal(mirrored, frames)
    np.testing.assert_array_equal(au_intensities(mirrored), au_intensities(frames))


# --- calibration and presence -----------------------------------------------------------------


def test_intensities_stay_in_range_for_any_input():
    frames = RNG.uniform(-0.5, 1.5, size=(4, 7, 52)).astype(np.float32)
    values = au_intensities(frames)
    assert values.shape == (4, 7, NUM_AUS)
    assert values.dtype == np.float32
    assert values.min() >= 0 and values.max() <= 5


def test_calibration_ramp():
    def au01(w: float) -> float:
        return au(au_intensities(weights(browInnerUp=w)), "AU01")

    assert au01(0.0) == 0
    assert au01(INTENSITY_FLOOR) == 0  # tracker noise on a neutral face reads as absent
    assert au01(1.0) == 5
    trace = INTENSITY_FLOOR + (1 - INTENSITY_FLOOR) / 5  # grade A
    assert au01(trace) == pytest.approx(1.0, abs=1e-5)
    assert au01(0.5) == pytest.approx(5 * (0.5 - INTENSITY_FLOOR) / (1 - INTENSITY_FLOOR))
    assert au(au_intensities(weights(browInnerUp=0.5), floor=0.0), "AU01") == pytest.approx(2.5)


def test_presence_means_at_least_grade_a():
    values = np.zeros(NUM_AUS, dtype=np.float32)
    values[:4] = [0.999, 1.0, 2.5, 5.0]
    assert au_presence(values)[:5].tolist() == [0, 1, 1, 1, 0]
    assert au_presence(values, threshold=2.0)[:4].tolist() == [0, 0, 1, 1]
    assert au_presence(values).dtype == np.uint8


def test_presence_of_lost_frames_is_zero():
    values = np.full((2, NUM_AUS), np.nan, dtype=np.float32)
    assert not au_presence(values).any()
    frame = np.full(52, np.nan, dtype=np.float32)
    assert np.isnan(au_intensities(frame)).all()


def test_blink_presence_replaces_thresholded_au45():
    closed = au_intensities(np.stack([weights(eyeBlinkLeft=1.0, eyeBlinkRight=1.0)] * 3))
    assert au_presence(closed)[:, AU_NAMES.index("AU45")].tolist() == [1, 1, 1]
    blinks = au_presence(closed, blink_presence=[0, 1, 0])
    assert blinks[:, AU_NAMES.index("AU45")].tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="does not fit"):
        au_presence(closed, blink_presence=[0, 1])


def test_bad_settings_and_shapes():
    with pytest.raises(ValueError, match="52"):
        au_intensities(np.zeros(51))
    with pytest.raises(ValueError, match="18"):
        au_presence(np.zeros(17))
    with pytest.raises(ActionUnitError):
        au_intensities(np.zeros(52), floor=1.0)
    with pytest.raises(ActionUnitError):
        au_presence(np.zeros(18), threshold=0.0)


# --- AU25 lips part, AU26 jaw drop ------------------------------------------------------------


def test_au25_is_zero_with_lips_sealed_over_an_open_jaw():
    sealed = au_intensities(weights(jawOpen=0.8, mouthClose=0.8))
    assert au(sealed, "AU25") == 0
    assert au(sealed, "AU26") > 3  # the jaw still drops


def test_au25_rises_when_the_jaw_opens_with_lips_apart():
    assert au(au_intensities(weights(jawOpen=0.6)), "AU25") > 0
    partly = au(au_intensities(weights(jawOpen=0.6, mouthClose=0.3)), "AU25")
    apart = au(au_intensities(weights(jawOpen=0.6)), "AU25")
    assert 0 < partly < apart


def test_au25_from_lower_lip_without_jaw():
    lip_down = au_intensities(weights(mouthLowerDownLeft=0.8, mouthLowerDownRight=0.8))
    assert au(lip_down, "AU25") > 0
    assert au(lip_down, "AU26") == 0


def test_mouth_close_alone_parts_nothing():
    assert au(au_intensities(weights(mouthClose=1.0)), "AU25") == 0


# --- OpenFace columns -------------------------------------------------------------------------


def test_columns_match_openface_featureextraction():
    assert au_columns() == OPENFACE_COLUMNS
    assert len(au_columns()) == 35
    with_28 = au_columns(include_au28_r=True)
    assert len(with_28) == 36
    assert with_28[with_28.index("AU26_r") + 1] == "AU28_r"


def test_openface_values_follow_the_columns():
    frame = weights(mouthRollLower=1.0, mouthSmileRight=1.0)
    inten = au_intensities(frame)
    row = dict(zip(au_columns(), openface_values(inten), strict=True))
    assert row["AU12_r"] == 5 and row["AU12_c"] == 1
    assert row["AU28_c"] == 1 and "AU28_r" not in row
    values28 = openface_values(inten, include_au28_r=True)
    row28 = dict(zip(au_columns(include_au28_r=True), values28, strict=True))
    assert row28["AU28_r"] == 5
    batch = openface_values(np.stack([inten, inten]))
    assert batch.shape == (2, 35)


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("AU01", "Inner Brow Raiser"),
        ("AU1", "Inner Brow Raiser"),
        ("au12", "Lip Corner Puller"),
        (12, "Lip Corner Puller"),
        ("AU25_c", "Lips Part"),
        ("AU26", "Jaw Drop"),
        ("AU28", "Lip Suck"),
        ("AU45", "Blink"),
    ],
)
def test_describe_au(code, name):
    assert describe_au(code) == name


@pytest.mark.parametrize("code", ["AU27", "AU03", "AU100", "smile", "", None, True])
def test_unknown_codes_fail_in_one_line(code):
    with pytest.raises(UnknownActionUnitError) as info:
        describe_au(code)
    assert isinstance(info.value, ImucapError)
    assert "\n" not in str(info.value)
    assert "AU45" in str(info.value)


def test_au_index_round_trips():
    assert [au_index(code) for code in AU_NAMES] == list(range(NUM_AUS))


# --- blinks -----------------------------------------------------------------------------------


def blink_shape(close_ms: float, hold_ms: float, open_ms: float) -> np.ndarray:
    """eyeBlink weights of one blink at RATE_HZ: raised-cosine closing, hold, slower reopening."""

    def ramp(ms: float) -> np.ndarray:
        n = max(1, round(ms * RATE_HZ / 1000))
        return 0.5 - 0.5 * np.cos(np.pi * np.arange(1, n + 1) / n)

    return np.concatenate([ramp(close_ms), np.ones(round(hold_ms * RATE_HZ / 1000)),
                           ramp(open_ms)[::-1]])  # fmt: skip


def synthetic_recording() -> tuple[np.ndarray, list[tuple[int, int]], list[int], tuple[int, int]]:
    """20 s at 60 Hz: realistic blinks, one during downward gaze, glitches and a 2 s closure.

    Returns:
        The signal, the (start, stop) frame span of each real blink, the glitch frames, and the
        span of the long closure.
    """
    n = int(20 * RATE_HZ)
    signal = np.clip(0.06 + 0.03 * RNG.standard_normal(n), 0, 1)
    blinks = []
    for start_s, (close, hold, reopen) in [
        (1.0, (80, 50, 150)),
        (3.2, (100, 30, 200)),
        (5.0, (70, 0, 120)),
        (11.5, (90, 120, 180)),
        (17.0, (100, 60, 160)),
    ]:
        shape = blink_shape(close, hold, reopen)
        i = int(start_s * RATE_HZ)
        signal[i : i + len(shape)] = np.maximum(signal[i : i + len(shape)], shape)
        blinks.append((i, i + len(shape)))
    # Looking down lowers the lids (eyeBlink about 0.35) for 2 s, with one blink inside.
    signal[int(13.5 * RATE_HZ) : int(15.5 * RATE_HZ)] += 0.3
    shape = blink_shape(80, 40, 150)
    i = int(14.5 * RATE_HZ)
    signal[i : i + len(shape)] = np.maximum(signal[i : i + len(shape)], shape)
    blinks.append((i, i + len(shape)))
    blinks.sort()
    glitches = [int(2.5 * RATE_HZ), int(6.3 * RATE_HZ), int(16.2 * RATE_HZ)]
    signal[glitches] = 1.0
    long_start = int(7.5 * RATE_HZ)
    long_closure = blink_shape(100, 2000, 150)
    signal[long_start : long_start + len(long_closure)] = long_closure
    return signal, blinks, glitches, (long_start, long_start + len(long_closure))


def test_blink_detector_finds_realistic_blinks_and_rejects_the_rest():
    signal, blinks, glitches, (long_start, long_stop) = synthetic_recording()
    track = detect_blinks(signal, RATE_HZ)

    assert len(track.events) == len(blinks)
    for event, (start, stop) in zip(track.events, blinks, strict=True):
        assert start <= event.start_frame <= event.peak_frame <= event.end_frame < stop
        assert 0.05 <= event.duration_s <= 0.5
        assert event.peak_value == pytest.approx(1.0)
        assert event.start_s == pytest.approx(event.start_frame / RATE_HZ)

    assert track.presence.shape == signal.shape
    expected = np.zeros_like(track.presence)
    for event in track.events:
        expected[event.start_frame : event.end_frame + 1] = 1
    np.testing.assert_array_equal(track.presence, expected)
    assert not track.presence[glitches].any()
    assert not track.presence[long_start:long_stop].any()
    # The eyes were closed there frame by frame, so per-frame AU45 intensity does show it.
    assert (signal[long_start + 30 : long_stop - 30] >= 0.5).all()


def test_streaming_settles_every_frame_once_in_order_and_soon():
    signal, *_ = synthetic_recording()
    detector = BlinkDetector(RATE_HZ)
    settled = []
    max_lag = 0
    for frame, value in enumerate(signal):
        step = detector.update(value)
        assert step.first_frame == len(settled)
        settled.extend(step.presence.tolist())
        max_lag = max(max_lag, frame + 1 - detector.frames_settled)
    settled.extend(detector.flush().presence.tolist())
    assert len(settled) == len(signal) == detector.frames_seen
    np.testing.assert_array_equal(settled, detect_blinks(signal, RATE_HZ).presence)
    assert max_lag <= round(detector.max_duration_ms * RATE_HZ / 1000) + 1


def test_blink_duration_limits_are_inclusive():
    def closed_for(frames: int) -> int:
        values = np.r_[np.zeros(5), np.ones(frames), np.zeros(5)]
        return len(detect_blinks(values, RATE_HZ).events)

    assert closed_for(1) == 0 and closed_for(2) == 0  # 17 and 33 ms: glitches
    assert closed_for(3) == 1  # 50 ms
    assert closed_for(30) == 1  # 500 ms
    assert closed_for(31) == 0  # held shut
    assert closed_for(120) == 0  # 2 s


def test_hysteresis_keeps_a_noisy_blink_whole():
    values = np.r_[np.zeros(5), [0.9, 0.45, 0.9, 0.42, 0.9, 0.9, 0.8], np.zeros(5)]
    events = detect_blinks(values, RATE_HZ).events
    assert len(events) == 1
    assert events[0].duration_s == pytest.approx(7 / RATE_HZ)


def test_blink_at_end_of_stream_is_not_counted_and_nan_reopens():
    track = detect_blinks(np.r_[np.zeros(5), np.ones(10)], RATE_HZ)
    assert track.events == () and not track.presence.any()
    track = detect_blinks(np.r_[np.zeros(5), np.ones(10), np.nan, np.zeros(3)], RATE_HZ)
    assert len(track.events) == 1


def test_eye_blink_signal_takes_the_more_closed_eye():
    frames = np.stack([weights(eyeBlinkLeft=0.9, eyeBlinkRight=0.2), weights(eyeBlinkRight=0.4)])
    np.testing.assert_allclose(eye_blink(frames), [0.9, 0.4])
    intensity = au_intensities(frames)[:, AU_NAMES.index("AU45")]
    assert intensity[0] > intensity[1] > 0


@pytest.mark.parametrize(
    "settings",
    [
        {"rate_hz": 0.0},
        {"rate_hz": 60.0, "closed_threshold": 0.3, "open_threshold": 0.5},
        {"rate_hz": 60.0, "min_duration_ms": 500.0, "max_duration_ms": 50.0},
    ],
)
def test_blink_detector_rejects_bad_settings(settings):
    with pytest.raises(ActionUnitError) as info:
        BlinkDetector(**settings)
    assert isinstance(info.value, ImucapError)


# --- package surface --------------------------------------------------------------------------


def test_exported_from_vocab():
    for name in ("AU_NAMES", "au_intensities", "au_presence", "au_columns", "BlinkDetector",
                 "describe_au"):  # fmt: skip
        assert name in vocab.__all__
        assert getattr(vocab, name) is getattr(aus_module, name)


def test_docstring_examples_run():
    result = doctest.testmod(aus_module)
    assert result.attempted > 0 and result.failed == 0
