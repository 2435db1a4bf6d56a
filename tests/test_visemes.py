"""The viseme model, driven by real espeak-ng speech: closures, rounding, spreading, pauses."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from imucap.audio import espeak, visemes
from imucap.errors import ImucapError
from imucap.vocab import index_of, names

needs_espeak = pytest.mark.skipif(
    not espeak.library_available(),
    reason="libespeak-ng is not installed (Debian/Ubuntu: libespeak-ng1 espeak-ng-data; "
           "scripts/install_system_packages.sh installs them)")

FPS = 60.0
JAW, CLOSE, PRESS = index_of("jawOpen"), index_of("mouthClose"), index_of("mouthPressLeft")
FUNNEL, PUCKER = index_of("mouthFunnel"), index_of("mouthPucker")
STRETCH, SMILE = index_of("mouthStretchLeft"), index_of("mouthSmileLeft")
ROLL_LOWER, UPPER_UP = index_of("mouthRollLower"), index_of("mouthUpperUpLeft")
TONGUE = index_of("tongueOut")
MOVING = {index_of(n) for n in visemes.CHANNEL_GROUPS}

# Every symbol en-us produced over ~6,800 distinct English words (espeak-ng 1.51).
EN_US_SYMBOLS = ("_: _ _! s n t k d I E r p l @ m z eI f a i: 3 I# aI b oU N V g v 0 t# I2 u: "
                 "@L S i w j a# dZ 3: A@ ; tS T h o@ aU O: aa O@ e@ O2 U i@3 t2 i@ OI D @- aI3 "
                 "Z n- ? r- A: U@ aI@ x @2 u").split()
COVERAGE_TEXT = (
    "Pie, buy my fie; vie thigh thy tie die nigh lie. Sue, zoo shoe measure chew jaw key guy "
    "sing loch row you woo high. Uh-oh! Beet bit bait bet bat bath pot but put boot boat bout "
    "bite boy bird butter city button bottle little. Car core care cure ear fire hour, father, "
    "sofa, roses, the apple, to eat, an idea. Another purse, pure tour, we're here, they're "
    "there, poor, sure, year, hiring, science, our hour, flour, mountain, Bach.")


def _frames(speech: espeak.Speech, symbol: str, part: tuple[float, float] = (0.0, 1.0),
            fps: float = FPS) -> list[np.ndarray]:
    """Frame indices inside each occurrence of ``symbol`` (a fraction of its span)."""
    out = []
    for p in speech.phonemes:
        if p.symbol == symbol:
            a = p.start_s + part[0] * (p.end_s - p.start_s)
            b = p.start_s + part[1] * (p.end_s - p.start_s)
            k = np.arange(math.ceil(a * fps - 1e-9), math.ceil(b * fps - 1e-9))
            if len(k):
                out.append(k)
    return out


@needs_espeak
def test_shape_range_and_columns() -> None:
    speech, w = visemes.text_to_face("Hello, world.")
    assert w.dtype == np.float32 and w.shape == (math.ceil(speech.duration_s * FPS), 52)
    assert w.min() >= 0.0 and w.max() <= 1.0
    still = [i for i in range(52) if i not in MOVING]
    assert not w[:, still].any()  # eyes, brows, cheeks, nose: untouched
    assert len(names()) == 52 and w[:, JAW].max() > 0.2
    w30 = visemes.phonemes_to_blendshapes(speech.phonemes, speech.duration_s, fps=30)
    assert w30.shape[0] == math.ceil(speech.duration_s * 30)
    # A given frame count (another stream's) is honoured; the frames are the same instants.
    longer = visemes.phonemes_to_blendshapes(speech.phonemes, speech.duration_s,
                                             n_frames=len(w) + 5)
    assert longer.shape == (len(w) + 5, 52)
    assert np.allclose(longer[: len(w) - 4], w[:-4], atol=1e-6)  # (smoothing edge aside)


@needs_espeak
@pytest.mark.parametrize("rate", [130, 175, 300])
def test_bilabials_close_the_lips_and_vowels_open_the_jaw(rate: int) -> None:
    for text, stops in (("mama", ("m",)), ("papa", ("p",)), ("Maybe a bumpy map, mom.",
                                                            ("m", "b", "p"))):
        speech, w = visemes.text_to_face(text, rate_wpm=rate)
        spans = 0
        for s in stops:
            # A stop's aligned span is closure then release: test its first half.
            part = (0.0, 0.5) if s in "pb" else (0.0, 1.0)
            for k in _frames(speech, s, part):
                spans += 1
                assert w[k, CLOSE].max() > 0.9, (text, s, rate)
                assert w[k, PRESS].max() > 0.4
                assert w[k, JAW].min() < 0.1
        assert spans >= len(stops) * 2 - 1
    speech, w = visemes.text_to_face("papa mama", rate_wpm=rate)
    vowel = _frames(speech, "A:")
    assert len(vowel) == 2
    # At 300 words/min a vowel lasts ~50 ms: the mouth opens less between closures.
    assert all(w[k, JAW].max() > (0.5 if rate < 200 else 0.3) for k in vowel)
    assert all(w[k, CLOSE].min() < (0.1 if rate < 200 else 0.6) for k in vowel)


@needs_espeak
def test_rounding_spreading_labiodental_dental() -> None:
    for text in ("who", "you", "do"):
        speech, w = visemes.text_to_face(text)
        (k,) = _frames(speech, "u:")
        assert w[k, PUCKER].max() > 0.7 and w[k, FUNNEL].max() > 0.4, text
        assert w[k, STRETCH].max() < 0.15
    speech, w = visemes.text_to_face("see")
    (k,) = _frames(speech, "i:")
    assert w[k, STRETCH].max() > 0.3 and w[k, SMILE].max() > 0.15
    assert w[:, PUCKER].max() < 0.05 and w[:, FUNNEL].max() < 0.05
    speech, w = visemes.text_to_face("five")
    for s in ("f", "v"):
        (k,) = _frames(speech, s, (0.25, 0.75))
        assert w[k, ROLL_LOWER].max() > 0.5 and w[k, UPPER_UP].max() > 0.2, s
        assert w[k, JAW].max() < 0.15 and w[k, CLOSE].max() < 0.05
    (k,) = _frames(speech, "aI", (0.2, 0.5))
    assert w[k, JAW].max() > 0.5 and w[k, ROLL_LOWER].min() < 0.1
    speech, w = visemes.text_to_face("thin")
    (k,) = _frames(speech, "T")
    assert w[k, TONGUE].max() > 0.3 and 0.1 < w[k, JAW].max() < 0.25
    (k,) = _frames(speech, "n")
    assert w[k, TONGUE].max() < 0.05


@needs_espeak
def test_rounding_is_anticipated_over_the_consonants_before_it() -> None:
    round_, spread = visemes.text_to_face("a stoop")[0:2], visemes.text_to_face("a steep")[0:2]
    (k_round,) = _frames(round_[0], "t")
    (k_spread,) = _frames(spread[0], "t")
    assert round_[1][k_round, PUCKER].mean() > 0.3  # lips round already during s-t
    assert spread[1][k_spread, PUCKER].max() < 0.05
    (s_round,) = _frames(round_[0], "s", (0.5, 1.0))
    assert round_[1][s_round, PUCKER].mean() > 0.1


@needs_espeak
def test_curves_are_continuous() -> None:
    speech, w = visemes.text_to_face(COVERAGE_TEXT)
    step = np.abs(np.diff(w, axis=0))
    assert step.max() < 0.45  # at 60 Hz: no frame-to-frame jumps
    # Second differences stay small too: no corners where segments meet.
    assert np.abs(np.diff(w, n=2, axis=0)).max() < 0.5
    assert np.percentile(step[:, JAW], 99) < 0.2


@needs_espeak
def test_pauses_and_edges_go_neutral() -> None:
    speech, w = visemes.text_to_face("Who is it? It is Bob. Maybe not!")
    pauses = [p for p in speech.phonemes if espeak.is_pause(p.symbol) and p.end_s - p.start_s
              > 0.2]
    assert len(pauses) >= 2
    for p in pauses:
        mid = (p.start_s + p.end_s) / 2
        k = np.arange(math.ceil((mid - 0.04) * FPS), math.ceil((mid + 0.04) * FPS))
        assert w[k].max() < 0.06, p
    # Long silence before and after (word gaps too) is neutral; speech in between is not.
    phon = [("_", 0.0, 1.0), ("m", 1.0, 1.1), ("A:", 1.1, 1.3), ("_:", 1.3, 2.5)]
    w = visemes.phonemes_to_blendshapes(phon, 2.5)
    assert w[:30].max() < 0.01 and w[-30:].max() < 0.01 and w[:, JAW].max() > 0.5
    assert not visemes.phonemes_to_blendshapes([], 1.0).any()


@needs_espeak
def test_timing_follows_the_rate() -> None:
    slow, ws = visemes.text_to_face("a map", rate_wpm=100)
    fast, wf = visemes.text_to_face("a map", rate_wpm=300)
    assert ws.shape[0] > 2 * wf.shape[0]
    closed_s = np.flatnonzero(ws[:, CLOSE] > 0.9)
    closed_f = np.flatnonzero(wf[:, CLOSE] > 0.9)
    m_slow = next(p for p in slow.phonemes if p.symbol == "m")
    m_fast = next(p for p in fast.phonemes if p.symbol == "m")
    assert m_slow.start_s <= closed_s[0] / FPS <= m_slow.end_s
    assert m_fast.start_s <= closed_f[0] / FPS <= m_fast.end_s
    assert closed_s[0] > 2 * closed_f[0] and len(closed_s) > 2 * len(closed_f)


@needs_espeak
def test_every_en_us_symbol_is_known() -> None:
    seen: Counter[str] = Counter()
    speech, _ = visemes.text_to_face(COVERAGE_TEXT)
    visemes.phonemes_to_blendshapes(speech.phonemes, speech.duration_s, unknown=seen)
    assert not seen
    assert len({p.symbol for p in speech.phonemes}) > 55
    for s in EN_US_SYMBOLS:
        assert "OTHER" not in visemes.visemes_of(s), s
    for parts in visemes.PHONEME_VISEMES.values():
        assert all(name in visemes.VISEMES for name, _, _ in parts)
    for name in visemes.VISEMES:
        assert name == "OTHER" or f"``{name}``" in (visemes.__doc__ or "")


@needs_espeak
def test_other_languages_mostly_map_and_unknowns_are_counted() -> None:
    speech = espeak.synthesize("Guten Morgen, ich möchte fünf Brötchen.", voice="de")
    seen: Counter[str] = Counter()
    w = visemes.phonemes_to_blendshapes(speech.phonemes, speech.duration_s, unknown=seen)
    assert not seen and w[:, PUCKER].max() > 0.5  # ü, ö round via the base-sound table
    visemes.reset_unknown_symbols()
    phon = [("m", 0.0, 0.1), ("H", 0.1, 0.2), ("A:", 0.2, 0.4), ("H", 0.4, 0.5)]
    seen = Counter()
    w = visemes.phonemes_to_blendshapes(phon, 0.5, unknown=seen)
    assert seen == {"H": 2} and visemes.unknown_symbols() == {"H": 2}
    k = np.arange(8, 11)  # middle of the first unknown segment: a weak, slightly open mouth
    assert 0.05 < w[k, JAW].mean() < 0.4 and np.isfinite(w).all()
    assert visemes.visemes_of("H") == ("OTHER",) and visemes.visemes_of("(en)") == ()


@pytest.mark.parametrize(("args", "words"), [
    (([("m", 0, 0.1)], 1.0, 0), "frame rate must be a positive"),
    (([("m", 0, 0.1)], -1.0), "duration must be a non-negative"),
    (([("m", 0.2, 0.1)], 1.0), "bad span"),
    (([("m", 0.1)], 1.0), "must be (symbol, start_s, end_s)"),
    (([(3, 0.0, 0.1)], 1.0), "symbol must be a non-empty string"),
    (([("m", 0.0, 0.1)], 1.0, 60.0, {"n_frames": 0}), "n_frames must be a positive whole"),
])
def test_bad_input_is_one_clear_line(args: tuple, words: str) -> None:
    kwargs = args[-1] if isinstance(args[-1], dict) else {}
    args = args[:-1] if kwargs else args
    with pytest.raises(ImucapError) as err:
        visemes.phonemes_to_blendshapes(*args, **kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)
