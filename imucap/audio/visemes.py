"""Phoneme timeline -> 52 ARKit blendshape curves: a rule-based viseme model with coarticulation.

This turns the phonemes espeak-ng spoke (:mod:`imucap.audio.espeak`) into mouth animation, to
pair synthetic speech with face curves for training, and to serve as a text-to-face baseline.
Only the mouth, jaw and tongue move; eyes, brows, cheeks and nose stay at 0 (an idle blink or
brow layer is deliberately left out, so the curves carry speech and nothing else).

Viseme classes
--------------
Each phoneme maps to one viseme class (a diphthong to two or three in sequence over its span).
The grouping follows the usual visual-phoneme sets (the MPEG-4 viseme list and the animators'
Preston Blair mouth chart both separate bilabials, labiodentals, dentals, alveolars, velars,
postalveolars, /r/ and /w/ and the open, spread and rounded vowels); the targets are our own
choices in ARKit terms. Values are the target weights (Left/Right pairs move together):

====================  ==========================================  ==============================
class                 phonemes (espeak-ng mnemonics)              targets
====================  ==========================================  ==============================
``SIL``               pauses ``_ _: _! _|``, uncovered time       all 0 (neutral face)
``BILABIAL``          p b m                                       mouthClose 1, mouthPress .5,
                                                                  mouthRollLower .15,
                                                                  mouthRollUpper .1, jawOpen .05
``LABIODENTAL``       f v                                         mouthRollLower .6,
                                                                  mouthUpperUp .25,
                                                                  mouthPress .1, jawOpen .08
``DENTAL``            T D (th)                                    tongueOut .35, jawOpen .15,
                                                                  mouthLowerDown .1
``ALVEOLAR``          t d n l, t# (flap), n- (syllabic n)         jawOpen .12
``SIBILANT``          s z                                         jawOpen .05, mouthStretch .15,
                                                                  mouthSmile .05
``POSTALVEOLAR``      S Z tS dZ (sh, zh, ch, j)                   mouthFunnel .4, mouthPucker .25,
                                                                  mouthShrugUpper/Lower .1,
                                                                  jawOpen .07
``VELAR``             k g N (ng) x                                jawOpen .18
``RHOTIC``            r r- (and r-coloured vowel ends)            mouthFunnel .3, mouthPucker .3,
                                                                  jawOpen .12
``ROUND_GLIDE``       w                                           mouthPucker .8, mouthFunnel .4,
                                                                  jawOpen .08
``PALATAL``           j ;                                         mouthStretch .25,
                                                                  mouthSmile .15, jawOpen .08
``GLOTTAL``           h ?                                         jawOpen .2 (weak: takes the
                                                                  neighbours' shape)
``CLOSE_SPREAD``      i: i                                        mouthStretch .35, mouthSmile .2,
                                                                  jawOpen .12
``NEAR_CLOSE``        I I2 I#                                     mouthStretch .22, mouthSmile
                                                                  .12, jawOpen .16
``MID_FRONT``         E e (and eI, e@ starts)                     jawOpen .32, mouthStretch .2,
                                                                  mouthSmile .1,
                                                                  mouthLowerDown .15
``OPEN_FRONT``        a aa (trap, bath)                           jawOpen .48, mouthStretch .18,
                                                                  mouthLowerDown .25,
                                                                  mouthUpperUp .1
``OPEN_BACK``         A: 0 (father, lot; aI, aU starts)           jawOpen .62, mouthLowerDown .2
``OPEN_MID``          V (strut)                                   jawOpen .42, mouthLowerDown .12
``SCHWA``             @ a# @2 @- (unstressed)                     jawOpen .24, mouthLowerDown .05
``RHOTIC_VOWEL``      3 3: (er, bird)                             jawOpen .22, mouthFunnel .25,
                                                                  mouthPucker .2
``OPEN_ROUND``        O: O O2 (thought; o@, O@, OI starts)        jawOpen .42, mouthFunnel .4,
                                                                  mouthPucker .25
``MID_ROUND``         o (oU start)                                jawOpen .3, mouthFunnel .45,
                                                                  mouthPucker .35
``NEAR_CLOSE_ROUND``  U (foot; oU, aU ends)                       mouthPucker .55, mouthFunnel
                                                                  .4, jawOpen .15
``CLOSE_ROUND``       u: u (goose)                                mouthPucker .85, mouthFunnel
                                                                  .5, jawOpen .1
====================  ==========================================  ==============================

Diphthongs: ``eI`` MID_FRONT->NEAR_CLOSE, ``aI`` OPEN_BACK->NEAR_CLOSE, ``OI`` OPEN_ROUND->
NEAR_CLOSE, ``aU`` OPEN_BACK->NEAR_CLOSE_ROUND, ``oU`` MID_ROUND->NEAR_CLOSE_ROUND; the
r-coloured en-us vowels ``A@ O@ o@ e@ i@3 U@ aI3 aU@`` end in RHOTIC_VOWEL, ``i@ aI@`` in
SCHWA, and ``@L`` (syllabic l) is SCHWA->ALVEOLAR. :data:`PHONEME_VISEMES` holds the full
table; other languages' symbols are tried without their modifier marks (``t;`` -> ``t``,
``A~`` -> ``A``, ``y:`` -> ``y``) against a small table of common base sounds. A symbol that
still matches nothing becomes an ``OTHER`` segment (a weak, slightly open consonant) and is
counted (the ``unknown`` argument and :func:`unknown_symbols`).

Note on ``mouthClose``: ARKit defines it as lip closure *against an open jaw* and captured
faces seldom show it above ``jawOpen``. Here a bilabial drives it to 1 with the jaw nearly shut,
which reads as firmly pressed lips on most rigs; scale the column if a rig overshoots.

Coarticulation
--------------
Targets are blended with dominance functions in the spirit of Cohen & Massaro (M. M. Cohen and
D. W. Massaro, "Modeling coarticulation in synthetic visual speech", in *Models and Techniques
in Computer Animation*, Springer, 1993): every
segment has, for each articulator group (jaw; lips; lip shape, i.e. rounding and spreading;
tongue), a dominance ``alpha * exp(-theta * tau)`` where ``tau`` is the time (s) outside the
segment's core interval (0 inside it), with separate rates before (anticipatory) and after
(carry-over) the core. Each blendshape is the dominance-weighted mean of the targets of all
segments at that instant, plus a faint neutral background. Consequences, by construction:

* bilabial closure and labiodental contact have lip and jaw dominance 12 and 15 against the
  vowels' 1 to 1.5, so they are reached (mouthClose > 0.9 inside every p/b/m closure from
  130 to 300 words/min) while the transitions stay logistic-shaped over ~50 ms rather than
  steps (largest change between 60 Hz frames about 0.4, on mouthClose at a release); short
  vowels between closures open less (at 300 words/min "papa" opens the jaw to ~0.35);
* consonants barely constrain lip shape (dominance 0.1 to 0.6), so a rounded vowel's rounding
  (slow anticipatory rate, 8/s) spreads over the consonants before it ("stew", "school");
* /w/, /r/, /j/ and the postalveolars do constrain lip shape; /s/, /z/ and the dentals
  constrain the jaw (close teeth), /t d n k g/ let the vowels' jaw show through;
* pauses pull every group to 0 with a dominance that grows with the pause's length, so a
  sentence break goes neutral while a 10 ms word-gap pause does not flicker the face.

Stops: the span of ``p b t d k g`` (closure-aligned, as :func:`imucap.audio.espeak.synthesize`
returns it) holds the closure first and the release at its end, so their core is its first half.

The blend is evaluated on a grid of at least 240 Hz, smoothed with a Gaussian of 12 ms standard
deviation (removes the corners where cores begin and end), sampled at the output rate and
clipped to [0, 1]. Frame ``k`` of the result shows the face at ``k / fps`` seconds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import index_of, names

if TYPE_CHECKING:
    from imucap.audio.espeak import Speech

__all__ = [
    "PHONEME_VISEMES",
    "VISEMES",
    "Viseme",
    "phonemes_to_blendshapes",
    "reset_unknown_symbols",
    "text_to_face",
    "unknown_symbols",
    "visemes_of",
]

GROUPS = ("jaw", "lips", "shape", "tongue")

#: The blendshapes this model drives, with the articulator group whose dominance blends them.
CHANNEL_GROUPS: dict[str, str] = {
    "jawOpen": "jaw",
    "mouthClose": "lips", "mouthPressLeft": "lips", "mouthPressRight": "lips",
    "mouthRollLower": "lips", "mouthRollUpper": "lips",
    "mouthUpperUpLeft": "lips", "mouthUpperUpRight": "lips",
    "mouthLowerDownLeft": "lips", "mouthLowerDownRight": "lips",
    "mouthShrugUpper": "lips", "mouthShrugLower": "lips",
    "mouthFunnel": "shape", "mouthPucker": "shape",
    "mouthStretchLeft": "shape", "mouthStretchRight": "shape",
    "mouthSmileLeft": "shape", "mouthSmileRight": "shape",
    "tongueOut": "tongue",
}
_PAIRED = ("mouthPress", "mouthUpperUp", "mouthLowerDown", "mouthStretch", "mouthSmile")

#: Output grid (Hz) the blend is evaluated on before sampling at the frame rate, at least.
_INTERNAL_HZ = 240.0
#: Gaussian smoothing of the blended curves, standard deviation in seconds.
_SMOOTH_S = 0.012
#: Dominance of the neutral background everywhere (keeps the blend defined far from speech).
_BACKGROUND = 1e-3
#: A pause reaches its full dominance when it lasts this long (s); shorter ones count less.
_PAUSE_FULL_S = 0.25


@dataclass(frozen=True)
class Viseme:
    """One viseme class: targets, per-group dominance and decay, and core interval.

    ``alpha``/``theta_in``/``theta_out`` are per group (jaw, lips, shape, tongue); ``theta_*``
    in 1/s (``theta_in`` before the core: anticipation; ``theta_out`` after it: carry-over).
    ``core`` is the fraction of the segment's span over which the dominance is at its maximum.
    """

    name: str
    targets: Mapping[str, float]
    alpha: tuple[float, float, float, float]
    theta_in: tuple[float, float, float, float] = (55.0, 60.0, 30.0, 60.0)
    theta_out: tuple[float, float, float, float] = (55.0, 60.0, 30.0, 60.0)
    core: tuple[float, float] = (0.2, 0.8)


def _t(**kw: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in kw.items():
        if key in _PAIRED:
            out[key + "Left"] = value
            out[key + "Right"] = value
        else:
            out[key] = value
    return out


_VOWEL_ALPHA = (1.5, 1.0, 1.0, 1.0)
_ROUND_IN = (55.0, 60.0, 8.0, 60.0)     # rounding anticipates over preceding consonants
_ROUND_OUT = (55.0, 60.0, 14.0, 60.0)

VISEMES: dict[str, Viseme] = {v.name: v for v in (
    Viseme("SIL", _t(), (3.0, 3.0, 3.0, 3.0), (40.0,) * 4, (40.0,) * 4, (0.0, 1.0)),
    Viseme("BILABIAL", _t(mouthClose=1.0, mouthPress=0.5, mouthRollLower=0.15,
                          mouthRollUpper=0.1, jawOpen=0.05),
           (12.0, 12.0, 0.3, 1.0), (90.0, 100.0, 30.0, 60.0), (90.0, 100.0, 30.0, 60.0),
           (0.15, 0.85)),
    Viseme("LABIODENTAL", _t(mouthRollLower=0.6, mouthUpperUp=0.25, mouthPress=0.1,
                             jawOpen=0.08),
           (15.0, 15.0, 0.3, 1.0), (70.0, 75.0, 30.0, 60.0), (70.0, 75.0, 30.0, 60.0),
           (0.15, 0.85)),
    Viseme("DENTAL", _t(tongueOut=0.35, jawOpen=0.15, mouthLowerDown=0.1),
           (6.0, 2.0, 0.3, 10.0), core=(0.2, 0.8)),
    Viseme("ALVEOLAR", _t(jawOpen=0.12), (1.0, 0.5, 0.15, 1.0)),
    Viseme("SIBILANT", _t(jawOpen=0.05, mouthStretch=0.15, mouthSmile=0.05),
           (6.0, 1.0, 0.5, 1.0)),
    Viseme("POSTALVEOLAR", _t(mouthFunnel=0.4, mouthPucker=0.25, mouthShrugUpper=0.1,
                              mouthShrugLower=0.1, jawOpen=0.07),
           (5.0, 1.0, 3.0, 1.0)),
    Viseme("VELAR", _t(jawOpen=0.18), (0.8, 0.3, 0.1, 1.0)),
    Viseme("RHOTIC", _t(mouthFunnel=0.3, mouthPucker=0.3, jawOpen=0.12), (2.0, 0.5, 2.0, 1.0)),
    Viseme("ROUND_GLIDE", _t(mouthPucker=0.8, mouthFunnel=0.4, jawOpen=0.08),
           (3.0, 1.0, 6.0, 1.0), (55.0, 60.0, 20.0, 60.0)),
    Viseme("PALATAL", _t(mouthStretch=0.25, mouthSmile=0.15, jawOpen=0.08),
           (2.0, 0.5, 2.0, 1.0)),
    Viseme("GLOTTAL", _t(jawOpen=0.2), (0.3, 0.2, 0.1, 0.5)),
    Viseme("OTHER", _t(jawOpen=0.15), (1.0, 0.5, 0.3, 1.0)),
    Viseme("CLOSE_SPREAD", _t(mouthStretch=0.35, mouthSmile=0.2, jawOpen=0.12), _VOWEL_ALPHA),
    Viseme("NEAR_CLOSE", _t(mouthStretch=0.22, mouthSmile=0.12, jawOpen=0.16), _VOWEL_ALPHA),
    Viseme("MID_FRONT", _t(jawOpen=0.32, mouthStretch=0.2, mouthSmile=0.1,
                           mouthLowerDown=0.15), _VOWEL_ALPHA),
    Viseme("OPEN_FRONT", _t(jawOpen=0.48, mouthStretch=0.18, mouthLowerDown=0.25,
                            mouthUpperUp=0.1), _VOWEL_ALPHA),
    Viseme("OPEN_BACK", _t(jawOpen=0.62, mouthLowerDown=0.2), _VOWEL_ALPHA),
    Viseme("OPEN_MID", _t(jawOpen=0.42, mouthLowerDown=0.12), _VOWEL_ALPHA),
    Viseme("SCHWA", _t(jawOpen=0.24, mouthLowerDown=0.05), (0.8, 0.8, 0.5, 0.8)),
    Viseme("RHOTIC_VOWEL", _t(jawOpen=0.22, mouthFunnel=0.25, mouthPucker=0.2), _VOWEL_ALPHA),
    Viseme("OPEN_ROUND", _t(jawOpen=0.42, mouthFunnel=0.4, mouthPucker=0.25,
                            mouthLowerDown=0.1), _VOWEL_ALPHA, _ROUND_IN, _ROUND_OUT),
    Viseme("MID_ROUND", _t(jawOpen=0.3, mouthFunnel=0.45, mouthPucker=0.35),
           _VOWEL_ALPHA, _ROUND_IN, _ROUND_OUT),
    Viseme("NEAR_CLOSE_ROUND", _t(mouthPucker=0.55, mouthFunnel=0.4, jawOpen=0.15),
           _VOWEL_ALPHA, _ROUND_IN, _ROUND_OUT),
    Viseme("CLOSE_ROUND", _t(mouthPucker=0.85, mouthFunnel=0.5, jawOpen=0.1),
           _VOWEL_ALPHA, _ROUND_IN, _ROUND_OUT),
)}

# A phoneme is one or more (class, start fraction, end fraction) parts; stops add a core.
_Part = tuple[str, float, float]
_STOP_CORE = (0.0, 0.5)


def _one(name: str) -> tuple[_Part, ...]:
    return ((name, 0.0, 1.0),)


def _two(a: str, b: str, split: float = 0.5) -> tuple[_Part, ...]:
    return ((a, 0.0, split), (b, split, 1.0))


def _three(a: str, b: str, c: str) -> tuple[_Part, ...]:
    return ((a, 0.0, 0.4), (b, 0.4, 0.7), (c, 0.7, 1.0))


_EN: dict[str, tuple[_Part, ...]] = {}
for _names, _cls in (
    ("p b m", "BILABIAL"), ("f v", "LABIODENTAL"), ("T D", "DENTAL"),
    ("t d n l t# t2 d# n- l/ l/2 L", "ALVEOLAR"), ("s z z# z/2", "SIBILANT"),
    ("S Z tS dZ", "POSTALVEOLAR"), ("k g N x", "VELAR"), ("r r- r/", "RHOTIC"),
    ("w w#", "ROUND_GLIDE"), ("j ;", "PALATAL"), ("h ?", "GLOTTAL"),
    ("i: i", "CLOSE_SPREAD"), ("I I2 I# I2#", "NEAR_CLOSE"), ("E e E2 E# e# e:", "MID_FRONT"),
    ("a aa a2 a#2", "OPEN_FRONT"), ("A: 0 A# 0#", "OPEN_BACK"), ("V 02", "OPEN_MID"),
    ("@ a# @2 @5 @- @#", "SCHWA"), ("3 3:", "RHOTIC_VOWEL"), ("O: O O2", "OPEN_ROUND"),
    ("o o:", "MID_ROUND"), ("U", "NEAR_CLOSE_ROUND"), ("u: u", "CLOSE_ROUND"),
):
    for _s in _names.split():
        _EN[_s] = _one(_cls)
_EN.update({
    "eI": _two("MID_FRONT", "NEAR_CLOSE"), "aI": _two("OPEN_BACK", "NEAR_CLOSE"),
    "OI": _two("OPEN_ROUND", "NEAR_CLOSE"), "aU": _two("OPEN_BACK", "NEAR_CLOSE_ROUND"),
    "oU": _two("MID_ROUND", "NEAR_CLOSE_ROUND"), "oU#": _two("MID_ROUND", "NEAR_CLOSE_ROUND"),
    "A@": _two("OPEN_BACK", "RHOTIC_VOWEL", 0.6), "O@": _two("OPEN_ROUND", "RHOTIC_VOWEL", 0.6),
    "o@": _two("OPEN_ROUND", "RHOTIC_VOWEL", 0.6), "e@": _two("MID_FRONT", "RHOTIC_VOWEL", 0.6),
    "i@3": _two("NEAR_CLOSE", "RHOTIC_VOWEL", 0.6), "U@": _two("NEAR_CLOSE_ROUND",
                                                              "RHOTIC_VOWEL", 0.6),
    "i@": _two("NEAR_CLOSE", "SCHWA", 0.6), "@L": _two("SCHWA", "ALVEOLAR", 0.5),
    "aI@": _three("OPEN_BACK", "NEAR_CLOSE", "SCHWA"),
    "aI3": _three("OPEN_BACK", "NEAR_CLOSE", "RHOTIC_VOWEL"),
    "aU@": _three("OPEN_BACK", "NEAR_CLOSE_ROUND", "RHOTIC_VOWEL"),
    "IR": _two("SCHWA", "RHOTIC_VOWEL"), "VR": _two("OPEN_MID", "RHOTIC_VOWEL"),
    "A~": _one("OPEN_BACK"), "O~": _one("OPEN_ROUND"),
})

#: Base sounds of other languages' espeak-ng symbols, tried after stripping modifier marks.
_BASE: dict[str, tuple[_Part, ...]] = {
    "B": _one("BILABIAL"), "pf": _one("LABIODENTAL"), "ts": _one("SIBILANT"),
    "dz": _one("SIBILANT"), "R": _one("VELAR"), "*": _one("ALVEOLAR"), "J": _one("PALATAL"),
    "C": _one("PALATAL"), "c": _one("VELAR"), "q": _one("VELAR"), "G": _one("VELAR"),
    "X": _one("VELAR"), "Q": _one("VELAR"), "y": _one("CLOSE_ROUND"),
    "Y": _one("NEAR_CLOSE_ROUND"), "2": _one("MID_ROUND"), "9": _one("OPEN_ROUND"),
    "W": _one("OPEN_ROUND"), "8": _one("MID_ROUND"), "&": _one("OPEN_FRONT"),
    "&U": _two("OPEN_FRONT", "NEAR_CLOSE_ROUND"), "A": _one("OPEN_BACK"),
}

#: Every espeak-ng mnemonic this model knows, with its viseme class parts.
PHONEME_VISEMES: dict[str, tuple[_Part, ...]] = {**_BASE, **_EN}

_MODIFIERS = "#:;'\"~-/^.!*0123456789"
_UNKNOWN: Counter[str] = Counter()


def _parts_of(symbol: str) -> tuple[_Part, ...] | None:
    parts = PHONEME_VISEMES.get(symbol)
    if parts is not None:
        return parts
    base = symbol
    while len(base) > 1 and base[-1] in _MODIFIERS:
        base = base[:-1]
        if base in PHONEME_VISEMES:
            return PHONEME_VISEMES[base]
    if len(base) > 1 and base[0] in PHONEME_VISEMES:
        return PHONEME_VISEMES[base[0]]
    return None


def _is_pause(symbol: str) -> bool:
    return symbol.startswith("_")


def _is_marker(symbol: str) -> bool:
    # espeak-ng's language-switch markers such as "(en)": no articulation of their own.
    return symbol.startswith("(") and symbol.endswith(")")


def visemes_of(symbol: str) -> tuple[str, ...]:
    """The viseme class names ``symbol`` maps to (``("SIL",)`` for pauses, ``("OTHER",)`` for
    an unknown symbol, ``()`` for a language-switch marker)."""
    if _is_pause(symbol):
        return ("SIL",)
    if _is_marker(symbol):
        return ()
    parts = _parts_of(symbol)
    return tuple(p[0] for p in parts) if parts else ("OTHER",)


def unknown_symbols() -> dict[str, int]:
    """Symbols that fell back to ``OTHER`` in this process so far, with their counts."""
    return dict(_UNKNOWN)


def reset_unknown_symbols() -> None:
    _UNKNOWN.clear()


_NAMES = names()
_CHANNELS = list(CHANNEL_GROUPS)
_CH_INDEX = {name: i for i, name in enumerate(_CHANNELS)}
_GROUP_CHANNELS = [np.array([_CH_INDEX[c] for c in _CHANNELS if CHANNEL_GROUPS[c] == g])
                   for g in GROUPS]
_OUT_COLUMNS = np.array([index_of(c) for c in _CHANNELS])


def _target_vectors(v: Viseme) -> list[np.ndarray]:
    stray = [k for k in v.targets if k not in CHANNEL_GROUPS]
    if stray:  # a table error, caught at import
        raise ValueError(f"viseme {v.name}: {stray} are not channels this model drives")
    return [np.array([v.targets.get(_CHANNELS[k], 0.0) for k in chans])
            for chans in _GROUP_CHANNELS]


_TARGETS = {name: _target_vectors(v) for name, v in VISEMES.items()}


def _check_phonemes(phonemes: Iterable[Any]) -> list[tuple[str, float, float]]:
    out = []
    for item in phonemes:
        try:
            symbol, start, end = item[0], float(item[1]), float(item[2])
        except (TypeError, ValueError, IndexError):
            raise ImucapError(f"a phoneme must be (symbol, start_s, end_s), not {item!r}") from None
        if not isinstance(symbol, str) or not symbol:
            raise ImucapError(f"a phoneme symbol must be a non-empty string, not {symbol!r}")
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ImucapError(f"phoneme {symbol!r} has a bad span {start}..{end} s "
                              "(needs finite times with start <= end)")
        out.append((symbol, start, end))
    out.sort(key=lambda p: p[1])
    return out


_STOPS = frozenset("p b t d k g t2 d# c q".split())


def _base(symbol: str) -> str:
    while len(symbol) > 1 and symbol[-1] in _MODIFIERS and symbol not in PHONEME_VISEMES:
        symbol = symbol[:-1]
    return symbol


def _segments(phonemes: list[tuple[str, float, float]], duration_s: float,
              unknown: Counter[str] | None) -> list[tuple[str, float, float, float]]:
    """(class, core start, core end, dominance scale) for every part and every pause."""
    # Intervals: speech phonemes as they are; pauses, uncovered time (before, between, after,
    # one second beyond each end) merged into single neutral intervals.
    spoken: list[tuple[str, float, float]] = []
    quiet: list[list[float]] = []

    def add_quiet(a: float, b: float) -> None:
        if b <= a:
            return
        if quiet and a <= quiet[-1][1] + 1e-9:
            quiet[-1][1] = max(quiet[-1][1], b)
        else:
            quiet.append([a, b])

    cursor = -1.0
    for symbol, start, end in phonemes:
        if _is_marker(symbol):
            continue
        if _is_pause(symbol):
            add_quiet(min(cursor, start), end)
        else:
            add_quiet(cursor, start)
            if end > start:
                spoken.append((symbol, start, end))
        cursor = max(cursor, end)
    add_quiet(cursor, duration_s + 1.0)

    segs: list[tuple[str, float, float, float]] = []
    for a, b in quiet:
        d = b - a
        shrink = min(0.03, 0.25 * d)
        segs.append(("SIL", a + shrink, b - shrink, min(1.0, d / _PAUSE_FULL_S)))
    for symbol, start, end in spoken:
        parts = _parts_of(symbol)
        if parts is None:
            _UNKNOWN[symbol] += 1
            if unknown is not None:
                unknown[symbol] += 1
            parts = (("OTHER", 0.0, 1.0),)
        stop = _base(symbol) in _STOPS
        d = end - start
        for name, fa, fb in parts:
            a, b = start + fa * d, start + fb * d
            ca, cb = _STOP_CORE if stop else VISEMES[name].core
            segs.append((name, a + ca * (b - a), a + cb * (b - a), 1.0))
    return segs


def _smooth(x: np.ndarray, sigma_samples: float) -> np.ndarray:
    if sigma_samples < 0.3 or x.shape[1] < 3:
        return x
    radius = max(1, int(math.ceil(3 * sigma_samples)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_samples) ** 2)
    k /= k.sum()
    padded = np.pad(x, ((0, 0), (radius, radius)), mode="edge")
    out = np.empty_like(x)
    for c in range(x.shape[0]):
        out[c] = np.convolve(padded[c], k, mode="valid")
    return out


def phonemes_to_blendshapes(phonemes: Sequence[Any], duration_s: float, fps: float = 60.0, *,
                            n_frames: int | None = None,
                            unknown: Counter[str] | None = None) -> np.ndarray:
    """Mouth animation for a phoneme timeline: ``(T, 52)`` float32 in [0, 1], ARKit order.

    ``phonemes``: (symbol, start_s, end_s) items, espeak-ng mnemonics (``Speech.phonemes``);
    ``duration_s``: length of the audio (s); ``fps``: output frame rate (Hz).
    ``T = ceil(duration_s * fps)`` (at least 1), or ``n_frames`` when given (to match another
    stream frame for frame, e.g. :func:`imucap.audio.features.frame_count` of the resampled
    audio); frame ``k`` is the face at ``k / fps`` s.
    Columns follow :func:`imucap.vocab.names`; only jaw, mouth and tongue columns move.
    ``unknown``: a Counter that receives symbols the table did not know (they also go to the
    process-wide :func:`unknown_symbols`).
    """
    try:
        fps = float(fps)
        duration_s = float(duration_s)
    except (TypeError, ValueError):
        raise ImucapError("fps and duration_s must be numbers") from None
    if not math.isfinite(fps) or fps <= 0:
        raise ImucapError(f"the frame rate must be a positive number of Hz, not {fps}")
    if not math.isfinite(duration_s) or duration_s < 0:
        raise ImucapError(f"the duration must be a non-negative number of seconds, not "
                          f"{duration_s}")
    ph = _check_phonemes(phonemes)
    if n_frames is None:
        frames = max(1, int(math.ceil(duration_s * fps - 1e-9)))
    elif isinstance(n_frames, (int, np.integer)) and not isinstance(n_frames, bool) \
            and n_frames >= 1:
        frames = int(n_frames)
    else:
        raise ImucapError(f"n_frames must be a positive whole number, not {n_frames!r}")
    sub = max(1, int(math.ceil(_INTERNAL_HZ / fps)))
    step = 1.0 / (fps * sub)
    n = (frames - 1) * sub + 1
    t = np.arange(n) * step

    num = np.zeros((len(_CHANNELS), n))
    den = np.full((len(GROUPS), n), _BACKGROUND)
    for name, ca, cb, scale in _segments(ph, duration_s, unknown):
        v = VISEMES[name]
        targets = _TARGETS[name]
        for g in range(len(GROUPS)):
            alpha = v.alpha[g] * scale
            if alpha <= 1e-6:
                continue
            ti, to = v.theta_in[g], v.theta_out[g]
            reach = math.log(alpha / (1e-4 * _BACKGROUND) + 1.0)
            i0 = max(0, int(math.floor((ca - reach / ti) / step)))
            i1 = min(n, int(math.ceil((cb + reach / to) / step)) + 1)
            if i1 <= i0:
                continue
            tt = t[i0:i1]
            d = alpha * np.exp(-ti * np.clip(ca - tt, 0.0, None) - to * np.clip(tt - cb, 0.0, None))
            den[g, i0:i1] += d
            chans = _GROUP_CHANNELS[g]
            num[chans, i0:i1] += targets[g][:, None] * d[None, :]
    group_of = np.array([GROUPS.index(CHANNEL_GROUPS[c]) for c in _CHANNELS])
    curves = num / den[group_of]
    curves = _smooth(curves, _SMOOTH_S / step)[:, ::sub]
    out = np.zeros((frames, len(_NAMES)), np.float32)
    out[:, _OUT_COLUMNS] = np.clip(curves.T[:frames], 0.0, 1.0)
    return out


def text_to_face(text: str, voice: str = "en-us", rate_wpm: float = 175, fps: float = 60.0,
                 **synth_options: Any) -> tuple[Speech, np.ndarray]:
    """Speak ``text`` with espeak-ng and animate it: ``(Speech, (T, 52) weights)``.

    ``synth_options`` go to :func:`imucap.audio.espeak.synthesize` (pitch, pitch_range, ...);
    the weights cover the whole audio at ``fps``.
    """
    from imucap.audio.espeak import synthesize

    speech = synthesize(text, voice=voice, rate_wpm=rate_wpm, **synth_options)
    return speech, phonemes_to_blendshapes(speech.phonemes, speech.duration_s, fps)
