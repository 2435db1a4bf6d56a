"""Basic expressions read from FACS Action Units, with the AU evidence behind each reading.

A heuristic readout, not a validated classifier: it scores how well the AUs of a frame match
the prototype of each basic expression as the FACS literature describes it, and says which AUs
it saw. Use it to browse a session ("where did the participant smile?"), not as a ground truth.

Prototypes. Ekman & Friesen's EMFACS prototypes, as commonly tabulated (e.g. in the FACS
Investigator's Guide and the papers that test them), written with the 18 AUs imucap reports
(OpenFace's set):

==========  ====================  ==================  ======================================
label       core AUs (all needed)  supporting AUs      contradicting AUs
==========  ====================  ==================  ======================================
happiness   12                    6                   15
sadness     1, 15                 4, 17               12
surprise    1, 2                  5, 26               4, 20
fear        1, 2, 4               5, 7, 20, 26        12
anger       4                     5, 7, 23            1, 2, 12
disgust     9 or 10               15, 17              12
contempt    14                    12                  6, 15
==========  ====================  ==================  ======================================

Departures from the tables, and why:

* Disgust's prototype is 9 + 15 + 16 (and 10 in its variants); AU16 (lower lip depressor) is
  not in OpenFace's set, so the stronger of AU9 and AU10 is the core and 15 and 17 support it.
* Contempt is a *one-sided* lip corner tightening (R12A + R14A). imucap combines left and right
  into one AU value as OpenFace does, so the readout cannot see the asymmetry: it reads AU14 as
  the core, a slight AU12 as support, and a cheek raise (AU6, a smile) against it. A symmetric
  dimpling therefore also reads as contempt; say so when reporting.
* Sadness's prototype is 1 + 4 + 15; sad faces without the brow lowerer are common, so 1 + 15
  is the core and 4 (with 17) only strengthens it.
* Anger's prototype is 4 + 5 + 7 + 23; the brow lowerer alone (concentration) must not be
  confident anger, so 4 is the core and 5, 7 and 23 carry 60 % of the score.
* Surprise needs the brows (1 + 2); the eyes (5) and the dropped jaw (26) carry 60 % of the
  score, so a brow raise alone is a weak surprise. AU4 or AU20 argue for fear instead.

Score of an expression (each in [0, 1]), with ``g(I) = clip((I − 0.5) / 2.5, 0, 1)``: below
0.5 (half of FACS grade A, "trace") an AU counts for nothing, so a tracker's noise on a resting
face raises no rival, and grade C ("marked", 3) is a full match:

    score = core × ((1 − s) + s × support) × Π over contradicting AUs (1 − 0.7 g(I))

where ``core`` is the geometric mean of g over the core AUs (every core AU is needed: one at 0
gives 0), ``support`` the mean of g over the supporting AUs and ``s`` the share they carry.
*Neutral* scores ``1 − max g₂(I)`` over the AUs other than 25, 26 and 45 (talking and blinking
are not expressions), with ``g₂(I) = clip((I − 0.5) / 1.5, 0, 1)``: any AU at grade B reads as
not neutral.

Label and confidence. The label is the best score. The confidence is that score times its
share of all scores, ``best × best / Σ scores``: strong and unrivalled is near 1; a strong
match that another expression also explains, or a weak match, is lower. The evidence is the
label's core and supporting AUs at intensity 0.5 or more, with their FACS names and
intensities: ``happiness 0.86: AU6 cheek raiser 2.1, AU12 lip corner puller 3.4``.

When every score is below 0.05 the frame reads ``"other"``: some AU is active (the face is
not neutral) but matches no prototype, such as lips pressed alone (AU23); its evidence lists
the AUs at grade A or more, and its confidence is 0.

A frame without a face (any NaN intensity) has no label (``"no face"``), NaN confidence and
NaN scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imucap.vocab import AU_NAMES, NUM_AUS
from imucap.vocab.au_table import ACTION_UNITS

__all__ = [
    "EXPRESSIONS",
    "NO_FACE",
    "OTHER",
    "Episode",
    "ExpressionReadout",
    "Prototype",
    "PROTOTYPES",
    "episodes",
    "evidence_text",
    "read_expressions",
]

NO_FACE = "no face"
OTHER = "other"
OTHER_BELOW = 0.05
FULL_MATCH_INTENSITY = 3.0  # FACS grade C
NOTHING_BELOW = 0.5  # half of grade A (trace)
NEUTRAL_INTENSITY = 2.0  # FACS grade B
CONTRADICTION_STRENGTH = 0.7
EVIDENCE_MIN_INTENSITY = 0.5
_NOT_EXPRESSIVE = ("AU25", "AU26", "AU45")


@dataclass(frozen=True)
class Prototype:
    """One expression's AUs (codes as in :data:`imucap.vocab.AU_NAMES`).

    A core entry may be a tuple of alternatives, of which the strongest counts (disgust's
    ``("AU09", "AU10")``).
    """

    label: str
    core: tuple[str | tuple[str, ...], ...]
    support: tuple[str, ...]
    support_share: float
    against: tuple[str, ...]


PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("happiness", ("AU12",), ("AU06",), 0.4, ("AU15",)),
    Prototype("sadness", ("AU01", "AU15"), ("AU04", "AU17"), 0.4, ("AU12",)),
    Prototype("surprise", ("AU01", "AU02"), ("AU05", "AU26"), 0.6, ("AU04", "AU20")),
    Prototype("fear", ("AU01", "AU02", "AU04"), ("AU05", "AU07", "AU20", "AU26"), 0.5,
              ("AU12",)),
    Prototype("anger", ("AU04",), ("AU05", "AU07", "AU23"), 0.6, ("AU01", "AU02", "AU12")),
    Prototype("disgust", (("AU09", "AU10"),), ("AU15", "AU17"), 0.4, ("AU12",)),
    Prototype("contempt", ("AU14",), ("AU12",), 0.3, ("AU06", "AU15")),
)

#: Every label the readout gives, in the column order of :attr:`ExpressionReadout.scores`.
EXPRESSIONS: tuple[str, ...] = tuple(p.label for p in PROTOTYPES) + ("neutral",)

_INDEX = {code: i for i, code in enumerate(AU_NAMES)}
_FACS_NAME = {row.code: row.facs_name.lower() for row in ACTION_UNITS}


def _g(intensity: np.ndarray, full: float = FULL_MATCH_INTENSITY) -> np.ndarray:
    return np.clip((intensity - NOTHING_BELOW) / (full - NOTHING_BELOW), 0.0, 1.0)


def _column(aus: np.ndarray, entry: str | tuple[str, ...]) -> np.ndarray:
    codes = (entry,) if isinstance(entry, str) else entry
    return np.max(aus[:, [_INDEX[c] for c in codes]], axis=1)


def _score(aus: np.ndarray, proto: Prototype) -> np.ndarray:
    core = np.stack([_g(_column(aus, c)) for c in proto.core], axis=1)
    core_gm = np.exp(np.mean(np.log(np.maximum(core, 1e-12)), axis=1)) * (core.min(axis=1) > 0)
    support = np.mean(np.stack([_g(_column(aus, c)) for c in proto.support], axis=1), axis=1)
    score = core_gm * ((1.0 - proto.support_share) + proto.support_share * support)
    for code in proto.against:
        score = score * (1.0 - CONTRADICTION_STRENGTH * _g(_column(aus, code)))
    return score


def _neutral(aus: np.ndarray) -> np.ndarray:
    keep = [i for i, code in enumerate(AU_NAMES) if code not in _NOT_EXPRESSIVE]
    return 1.0 - np.max(_g(aus[:, keep], NEUTRAL_INTENSITY), axis=1)


def _short(code: str) -> str:
    return f"AU{int(code[2:])}"


def evidence_text(label: str, confidence: float, aus: Sequence[float]) -> str:
    """The readout line of one frame: ``happiness 0.86: AU6 cheek raiser 2.1, ...``.

    Args:
        label: An expression of :data:`EXPRESSIONS` (or :data:`NO_FACE`).
        confidence: Its confidence.
        aus: The frame's 18 intensities in :data:`imucap.vocab.AU_NAMES` order.
    """
    if label == NO_FACE:
        return NO_FACE
    values = np.asarray(aus, dtype=np.float64)
    if label == OTHER:
        shown = [c for c in AU_NAMES if c not in _NOT_EXPRESSIVE and values[_INDEX[c]] >= 1.0]
        return OTHER + (": " + ", ".join(f"{_short(c)} {_FACS_NAME[c]} {values[_INDEX[c]]:.1f}"
                                         for c in shown) if shown else "")
    head = f"{label} {confidence:.2f}"
    if label == "neutral":
        return head
    proto = PROTOTYPES[EXPRESSIONS.index(label)]
    codes = []
    for entry in proto.core + proto.support:
        codes.extend((entry,) if isinstance(entry, str) else entry)
    shown = sorted({c for c in codes if values[_INDEX[c]] >= EVIDENCE_MIN_INTENSITY},
                   key=lambda c: int(c[2:]))
    if not shown:
        return head
    return head + ": " + ", ".join(
        f"{_short(c)} {_FACS_NAME[c]} {values[_INDEX[c]]:.1f}" for c in shown)


@dataclass(frozen=True)
class ExpressionReadout:
    """Per-frame readout (see the module doc for the formulas).

    Attributes:
        labels: ``(N,)`` label per frame: one of :data:`EXPRESSIONS`, :data:`OTHER` or
            :data:`NO_FACE`.
        confidence: ``(N,)`` in [0, 1]; NaN without a face.
        scores: ``(N, 8)`` in :data:`EXPRESSIONS` order; NaN rows without a face.
        aus: ``(N, 18)`` the intensities read.
    """

    labels: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray
    aus: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def line(self, i: int) -> str:
        """The readout line of frame ``i``."""
        return evidence_text(str(self.labels[i]), float(self.confidence[i]), self.aus[i])


def read_expressions(aus: np.ndarray | Sequence[Sequence[float]]) -> ExpressionReadout:
    """Scores every frame of AU intensities (0-5, :data:`imucap.vocab.AU_NAMES` order).

    Args:
        aus: ``(N, 18)`` or ``(18,)`` intensities, e.g. from :func:`imucap.vocab.au_intensities`
            or an OpenFace CSV's ``_r`` columns; a row with NaN is a frame without a face.

    Raises:
        ValueError: The last axis is not 18 long.
    """
    array = np.asarray(aus, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != NUM_AUS:
        raise ValueError(f"expected (N, {NUM_AUS}) AU intensities, got shape {array.shape}")
    face = np.all(np.isfinite(array), axis=1)
    safe = np.where(face[:, None], np.clip(array, 0.0, 5.0), 0.0)
    scores = np.stack([_score(safe, p) for p in PROTOTYPES] + [_neutral(safe)], axis=1)
    best = np.argmax(scores, axis=1)
    top = scores[np.arange(len(scores)), best]
    total = scores.sum(axis=1)
    confidence = np.where(total > 0, top * top / np.maximum(total, 1e-12), 0.0)
    labels = np.asarray(EXPRESSIONS, dtype=object)[best]
    unmatched = top < OTHER_BELOW
    labels[unmatched] = OTHER
    confidence[unmatched] = 0.0
    labels[~face] = NO_FACE
    confidence[~face] = np.nan
    scores[~face] = np.nan
    return ExpressionReadout(labels=labels, confidence=confidence, scores=scores,
                             aus=array.astype(np.float32))


@dataclass(frozen=True)
class Episode:
    """Frames ``start`` to ``stop`` (exclusive) that read as one expression."""

    label: str
    start: int
    stop: int
    start_s: float
    end_s: float
    mean_confidence: float
    peak: int  # frame of the highest confidence: its line is the episode's evidence


def episodes(readout: ExpressionReadout, times: np.ndarray, *,
             min_s: float = 0.25) -> list[Episode]:
    """Runs of one label, with runs shorter than ``min_s`` merged into their neighbours.

    Frame-by-frame labels flicker where two expressions score alike; a run shorter than
    ``min_s`` joins the episode before it (the one after, at the start), so a smile that
    wavers for two frames stays one smile. "no face" runs are kept whatever their length: a
    lost face is a fact, not flicker.

    Args:
        readout: From :func:`read_expressions`.
        times: ``(N,)`` frame times, seconds.
        min_s: Shortest episode, seconds.
    """
    labels = [str(x) for x in readout.labels]
    t = np.asarray(times, dtype=np.float64)
    if len(labels) != len(t):
        raise ValueError(f"{len(t)} times for {len(labels)} frames")
    if not labels:
        return []
    step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    runs: list[list] = []  # [label, start, stop]
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1][2] = i + 1
        else:
            runs.append([label, i, i + 1])
    merged: list[list] = []
    for run in runs:
        duration = t[run[2] - 1] - t[run[1]] + step
        if run[0] != NO_FACE and duration < min_s and merged and merged[-1][0] != NO_FACE:
            merged[-1][2] = run[2]
        elif merged and merged[-1][0] == run[0]:
            merged[-1][2] = run[2]
        else:
            merged.append(list(run))
    if len(merged) > 1 and merged[0][0] != NO_FACE and merged[1][0] != NO_FACE and \
            t[merged[0][2] - 1] - t[merged[0][1]] + step < min_s:
        merged[1][1] = merged[0][1]
        merged.pop(0)
    out = []
    for label, a, b in merged:
        conf = readout.confidence[a:b]
        own = np.asarray([str(x) == label for x in readout.labels[a:b]])
        pick = np.where(own & np.isfinite(conf), conf, -1.0)
        peak = a + int(np.argmax(pick))
        mean = float(np.nanmean(np.where(own, conf, np.nan))) if own.any() and \
            np.isfinite(conf[own]).any() else float("nan")
        out.append(Episode(label, a, b, float(t[a]), float(t[b - 1] + step), mean, peak))
    return out
