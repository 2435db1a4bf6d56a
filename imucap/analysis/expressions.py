"""Basic expressions read from FACS Action Units, with the AU evidence behind each reading.

This is a heuristic readout, not a validated emotion classifier. Per frame it scores how well
the Action Units match the prototype of each basic expression as the FACS literature describes
it, and it says which AUs it saw. A face can show an expression without feeling it, and most
everyday faces match no prototype well. Use the readout to browse a session ("where did the
participant smile, and how do I know?"), and check the AUs it names. It is not ground truth.

Prototypes. These are the EMFACS prototypes of Ekman & Friesen as they are usually tabulated
(Ekman, Friesen & Hager, FACS Investigator's Guide, 2002; the emotion criteria of the CK+
data set, Lucey et al., CVPR Workshops 2010). Happiness is 6+12, sadness 1+4+15 (+17),
surprise 1+2+5B+26, fear 1+2+4+5+7+20+26, anger 4+5+7+23, disgust 9+15+16 (10 in its
variants) and contempt R12A+R14A.
Here they are written with the 18 AUs that imucap and OpenFace report:

==========  ==================  ==============  ======  ================
label       core AUs            supporting AUs  share   contradicting
==========  ==================  ==============  ======  ================
happiness   12                  6               0.4     15
sadness     1, 15               4, 17           0.4     12
surprise    1, 2                5, 26           0.6     4, 20
fear        1, 2, 4             5, 7, 20, 26    0.5     12
anger       4, 7                5, 23           0.5     1, 2, 12
disgust     9 or 10             15, 17          0.3     12
contempt    14                  12              0.3     6, 15, 12 above B
==========  ==================  ==============  ======  ================

The core AUs are the ones every EMFACS variant of the expression has, and the ones the CK+
criteria require (happiness needs 12, surprise 1+2, fear 1+2+4, disgust 9 or 10, contempt
14). The supporting AUs complete the full prototype and carry ``share`` of the score. A
contradicting AU is one that the prototype's muscles work against (AU12 lifts the lip corners
that AU15 pulls down) or that points to a neighbouring expression (AU4 with a brow raise
points to fear, not surprise). Departures from the tables, and why:

* AU16 (lower lip depressor) is part of disgust, but OpenFace's set does not have it. The
  stronger of AU9 and AU10 is the core, and 15 and 17 support it. AU27 (mouth stretch) is
  missing too; imucap's AU26 follows ``jawOpen`` and covers it (see
  :mod:`imucap.vocab.au_table`).
* AU23 here comes from ``mouthPress`` (lip pressing, AU24). The EMFACS anger variants take 23
  or 24, so anger accepts it as support. It is not core, because the mapping is a heuristic.
* Sadness's core is 1+15. Sad faces without the brow lowerer are common, so AU4 (with AU17)
  only strengthens the reading.
* Contempt is one-sided (R12A+R14A). imucap, like OpenFace, combines left and right into one
  AU value, so the AUs cannot show the asymmetry. When the frame's blendshape weights are given
  (``weights=``), the readout measures how one-sided the lip corners are (:func:`one_sidedness`).
  A symmetric dimpler then keeps ``1 - ONE_SIDED_SHARE`` (70 %) of its contempt score, because
  the CK+ criteria accept bilateral AU14 too. The evidence line says ``(one-sided)`` when the
  asymmetry is clear. Without weights (an OpenFace CSV) the asymmetry is unknown, and AU14
  reads as contempt whichever side it is on.
* Contempt's AU12 is a trace (grade A). A strong bilateral AU12 with a dimpler is a smile
  held in check (a "dampened" smile), not contempt; EMFACS lists AU12 at C or D alone as
  happiness. So AU12 supports contempt, and from grade B up it also counts against it.

Scores (each between 0 and 1). An intensity first becomes a degree of activation:

    g(I) = clip((I - 0.5) / (3 - 0.5), 0, 1)

Below 0.5 (half of FACS grade A, "trace") an AU counts for nothing, so a tracker's noise on a
resting face raises no rival. Grade C ("marked", 3) is a full match. Above grade C the score
stops rising, so confidence never falls as intensity grows, but it does level off. Then:

    score = core x ((1 - share) + share x support) x product over contradicting AUs of
            (1 - 0.7 g(I - shift))

``core`` is the geometric mean of g over the core AUs. This is a soft AND: each core AU is
needed, and one at 0 gives 0. ``support`` is the mean of g over the supporting AUs. So AU12
alone scores at most 0.6 as happiness, against 1.0 for 6+12. A brow raise (1+2) alone scores
at most 0.4 as surprise. ``shift`` is 0, except for contempt's AU12, where it is 1.5: that
AU12 counts against contempt from grade B (2) up.

*Neutral* scores ``1 - max g2(I)`` over all AUs except 25, 26 and 45, because talking and
blinking are not expressions. It uses ``g2(I) = clip((I - 0.5) / 1.5, 0, 1)``, so any AU at
grade B reads as not neutral.

Label and confidence. The label is the best of the 8 scores. The confidence is that score
times its share of all 8 scores:

    confidence = best x best / sum of scores

It is near 1 when the match is strong and no other expression explains the frame. It is lower
when another expression also explains it, or when the match is weak. It is a match measure,
not a probability. When every score is below :data:`OTHER_BELOW` the label is ``"other"``,
with confidence 0. Such a frame is not neutral: some AU is active (lips pressed alone, AU23),
but it matches no prototype. The evidence is the label's core and supporting AUs at intensity
0.5 or more, with FACS names and intensities. Contradicting AUs at grade A or more are added
in brackets:

    happiness 0.86: AU6 cheek raiser 2.1, AU12 lip corner puller 3.4

Missing values. A frame with ``valid`` False, or with no finite AU at all, has no face. Its
label is :data:`NO_FACE`, and its confidence and scores are NaN. An AU that is NaN in a frame
that has a face was not observed (OpenFace writes no ``AU28_r``; a lab's CSV may hold another
AU set). It is left out, not read as 0:

* An expression with an unobserved core AU cannot be read. It scores NaN and cannot win,
  because its defining action cannot be confirmed (without AU15, brows raised at the centre
  could be sadness or surprise). For alternatives (AU9 or AU10) one observed is enough.
* Unobserved supporting AUs are left out of the mean. If none is observed, the score is the
  core alone: the readout cannot tell a partial prototype from a full one then.
* Unobserved contradicting AUs do not count against.

:func:`unscored_aus` says, per expression, what a source lacks.

Over time. :func:`episodes` merges frames into episodes. It applies hysteresis first: the
current label is kept while its score stays within ``switch_margin`` of the best one. Then
runs shorter than ``min_duration_s`` are merged into a neighbour, so flicker between two close
readings does not make hundreds of episodes. :class:`ExpressionTracker` does the same frame by
frame for a live stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from imucap.vocab import AU_NAMES, NUM_AUS
from imucap.vocab.au_table import ACTION_UNITS
from imucap.vocab.blendshapes import NUM_BLENDSHAPES, index_of

__all__ = [
    "CONTRADICTION_STRENGTH",
    "EXPRESSIONS",
    "NO_FACE",
    "ONE_SIDED_SHARE",
    "OTHER",
    "OTHER_BELOW",
    "PROTOTYPES",
    "Episode",
    "ExpressionReadout",
    "ExpressionTracker",
    "Prototype",
    "Unscored",
    "episodes",
    "evidence_text",
    "label_shares",
    "one_sidedness",
    "read_expressions",
    "unscored_aus",
]

#: Label of a frame without a face (no AU values).
NO_FACE = "no face"
#: Label of a frame whose active AUs match no prototype (every score below :data:`OTHER_BELOW`).
OTHER = "other"
#: Best score under which a frame reads :data:`OTHER`.
OTHER_BELOW = 0.05
#: Intensity at which an AU counts as a full match (FACS grade C, "marked").
FULL_MATCH_INTENSITY = 3.0
#: Intensity under which an AU counts for nothing (half of FACS grade A, "trace").
NOTHING_BELOW = 0.5
#: Intensity at which any AU rules out neutral (FACS grade B, "slight").
NOT_NEUTRAL_INTENSITY = 2.0
#: How much a fully active contradicting AU takes off a score.
CONTRADICTION_STRENGTH = 0.7
#: Share of the contempt score that depends on the lip corners being one-sided.
ONE_SIDED_SHARE = 0.3
#: One-sidedness from which the evidence line says ``(one-sided)``.
ONE_SIDED_SHOWN = 0.5
#: Intensity from which a prototype AU is listed as evidence.
EVIDENCE_MIN_INTENSITY = 0.5
#: Intensity from which a contradicting AU is listed as evidence against.
AGAINST_MIN_INTENSITY = 1.0
#: AUs that do not count against neutral: lips part, jaw drop (talking), blink.
NOT_EXPRESSIVE = ("AU25", "AU26", "AU45")


@dataclass(frozen=True)
class Prototype:
    """The AUs of one basic expression (codes as in :data:`imucap.vocab.AU_NAMES`).

    Attributes:
        label: The expression.
        core: AUs that must all be present. An entry may be a tuple of alternatives, of which
            the strongest counts (disgust's ``("AU09", "AU10")``).
        support: AUs that complete the prototype.
        support_share: Share of the score that the supporting AUs carry.
        against: AUs that argue against the expression. An entry may be ``(code, shift)``:
            the AU counts against only from intensity ``0.5 + shift`` up.
    """

    label: str
    core: tuple[str | tuple[str, ...], ...]
    support: tuple[str, ...]
    support_share: float
    against: tuple[str | tuple[str, float], ...]

    @property
    def against_codes(self) -> tuple[str, ...]:
        """The contradicting AUs' codes, in numeric order."""
        return tuple(sorted({a if isinstance(a, str) else a[0] for a in self.against},
                            key=_number))

    @property
    def codes(self) -> tuple[str, ...]:
        """The core and supporting AUs, in numeric order."""
        out: set[str] = set(self.support)
        for entry in self.core:
            out.update((entry,) if isinstance(entry, str) else entry)
        return tuple(sorted(out, key=_number))


#: The seven expression prototypes (module doc, table), in the column order of the scores.
PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("happiness", ("AU12",), ("AU06",), 0.4, ("AU15",)),
    Prototype("sadness", ("AU01", "AU15"), ("AU04", "AU17"), 0.4, ("AU12",)),
    Prototype("surprise", ("AU01", "AU02"), ("AU05", "AU26"), 0.6, ("AU04", "AU20")),
    Prototype("fear", ("AU01", "AU02", "AU04"), ("AU05", "AU07", "AU20", "AU26"), 0.5,
              ("AU12",)),
    Prototype("anger", ("AU04", "AU07"), ("AU05", "AU23"), 0.5, ("AU01", "AU02", "AU12")),
    Prototype("disgust", (("AU09", "AU10"),), ("AU15", "AU17"), 0.3, ("AU12",)),
    Prototype("contempt", ("AU14",), ("AU12",), 0.3, ("AU06", "AU15", ("AU12", 1.5))),
)

#: The labels, in the column order of :attr:`ExpressionReadout.scores`.
EXPRESSIONS: tuple[str, ...] = tuple(p.label for p in PROTOTYPES) + ("neutral",)
_NEUTRAL = len(PROTOTYPES)
_CONTEMPT = EXPRESSIONS.index("contempt")

_INDEX = {code: i for i, code in enumerate(AU_NAMES)}
_FACS_NAME = {row.code: row.facs_name.lower() for row in ACTION_UNITS}
_EXPRESSIVE = np.array([i for i, code in enumerate(AU_NAMES) if code not in NOT_EXPRESSIVE])
_CORNERS = {side: np.array([index_of(f"mouthSmile{side}"), index_of(f"mouthDimple{side}")])
            for side in ("Left", "Right")}


def _number(code: str) -> int:
    return int(code[2:])


def _short(code: str) -> str:
    """``"AU06"`` -> ``"AU6"``, as FACS writes codes."""
    return f"AU{_number(code)}"


def _g(intensity: np.ndarray, full: float = FULL_MATCH_INTENSITY) -> np.ndarray:
    """Activation in [0, 1] of intensities (NaN stays NaN)."""
    return np.clip((intensity - NOTHING_BELOW) / (full - NOTHING_BELOW), 0.0, 1.0)


def _column(aus: np.ndarray, entry: str | tuple[str, ...]) -> np.ndarray:
    """Intensity of one AU, or the strongest of alternatives (NaN only if all are NaN)."""
    codes = (entry,) if isinstance(entry, str) else entry
    return np.fmax.reduce(aus[:, [_INDEX[c] for c in codes]], axis=1)


def _score(aus: np.ndarray, proto: Prototype) -> np.ndarray:
    """One expression's score per frame (module doc); NaN where no core AU was observed."""
    core = np.stack([_g(_column(aus, c)) for c in proto.core], axis=1)
    seen = np.isfinite(core)
    n_seen = seen.sum(axis=1)
    logs = np.where(seen, np.log(np.maximum(np.nan_to_num(core), 1e-12)), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        gm = np.exp(logs.sum(axis=1) / n_seen)
    gm = np.where(np.all(np.where(seen, core > 0, True), axis=1), gm, 0.0)
    gm[n_seen < core.shape[1]] = np.nan  # a core AU not observed: cannot be read
    support = np.stack([_g(_column(aus, c)) for c in proto.support], axis=1)
    known = np.isfinite(support).any(axis=1)
    with np.errstate(invalid="ignore"):
        mean_support = np.where(known, np.nanmean(np.where(known[:, None], support, 0.0),
                                                  axis=1), 1.0)
    score = gm * ((1.0 - proto.support_share) + proto.support_share * mean_support)
    for entry in proto.against:
        code, shift = (entry, 0.0) if isinstance(entry, str) else entry
        active = np.nan_to_num(_g(_column(aus, code) - shift))
        score = score * (1.0 - CONTRADICTION_STRENGTH * active)
    return score


def _neutral(aus: np.ndarray) -> np.ndarray:
    active = _g(aus[:, _EXPRESSIVE], NOT_NEUTRAL_INTENSITY)
    seen = np.isfinite(active).any(axis=1)
    return np.where(seen, 1.0 - np.nanmax(np.where(seen[:, None], active, 0.0), axis=1),
                    np.nan)


def one_sidedness(weights: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """How one-sided the lip corners are, from blendshape weights: 0 symmetric, 1 one side only.

    The smile and dimple weights are summed on each side. The result is
    ``|left - right| / max(left, right)``, and 0 when neither corner moves. A contempt
    expression (R12A+R14A) is near 1; a smile is near 0.

    Args:
        weights: ``(N, 52)`` or ``(52,)`` ARKit weights; NaN rows give NaN.

    Returns:
        ``(N,)`` float64.

    Raises:
        ValueError: The last axis is not 52 long.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != NUM_BLENDSHAPES:
        raise ValueError(f"expected (N, {NUM_BLENDSHAPES}) blendshape weights, got shape "
                         f"{w.shape}")
    left = np.clip(w[:, _CORNERS["Left"]], 0, 1).sum(axis=1)
    right = np.clip(w[:, _CORNERS["Right"]], 0, 1).sum(axis=1)
    top = np.maximum(left, right)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(top > 0.02, np.abs(left - right) / top, 0.0)


def _confidence_of(scores: np.ndarray, column: int) -> np.ndarray:
    """``score x score / sum of scores`` for one label's column (NaN scores left out)."""
    own = scores[:, column]
    total = np.nansum(scores, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, own * own / total, 0.0)


def _fmt(code: str, value: float) -> str:
    return f"{_short(code)} {_FACS_NAME[code]} {value:.1f}"


def evidence_text(label: str, confidence: float, aus: Sequence[float], *,
                  one_sided: float | None = None) -> str:
    """The readout line of one frame: ``happiness 0.86: AU6 cheek raiser 2.1, ...``.

    Args:
        label: One of :data:`EXPRESSIONS`, :data:`OTHER` or :data:`NO_FACE`.
        confidence: The label's confidence.
        aus: The frame's 18 intensities in :data:`imucap.vocab.AU_NAMES` order.
        one_sided: The frame's :func:`one_sidedness`, if known (contempt only).

    Returns:
        The line. For ``neutral`` it names the strongest expressive AU when that AU reaches
        0.5. For ``other`` it lists the expressive AUs at grade A or more.

    Raises:
        ValueError: An unknown label.
    """
    values = np.asarray(aus, dtype=np.float64)
    if label == NO_FACE:
        return NO_FACE
    if label == OTHER:
        shown = [c for c in AU_NAMES if c not in NOT_EXPRESSIVE
                 and values[_INDEX[c]] >= AGAINST_MIN_INTENSITY]
        return OTHER + (": " + ", ".join(_fmt(c, values[_INDEX[c]]) for c in shown)
                        if shown else "")
    if label not in EXPRESSIONS:
        raise ValueError(f"unknown expression {label!r}; expected one of {EXPRESSIONS}")
    head = f"{label} {confidence:.2f}"
    if label == "neutral":
        expressive = [c for c in AU_NAMES if c not in NOT_EXPRESSIVE
                      and np.isfinite(values[_INDEX[c]])]
        top = max(expressive, key=lambda c: values[_INDEX[c]], default=None)
        if top is None or values[_INDEX[top]] < EVIDENCE_MIN_INTENSITY:
            return head
        return f"{head} (strongest {_fmt(top, values[_INDEX[top]])})"
    proto = PROTOTYPES[EXPRESSIONS.index(label)]
    shown = [c for c in proto.codes if values[_INDEX[c]] >= EVIDENCE_MIN_INTENSITY]
    against = []
    for entry in proto.against:
        code, shift = (entry, 0.0) if isinstance(entry, str) else entry
        if values[_INDEX[code]] >= AGAINST_MIN_INTENSITY + shift and code not in against:
            against.append(code)
    against.sort(key=_number)
    line = head + (": " + ", ".join(_fmt(c, values[_INDEX[c]]) for c in shown) if shown else "")
    if label == "contempt" and one_sided is not None and one_sided >= ONE_SIDED_SHOWN:
        line += " (one-sided)"
    if against:
        line += " (against: " + ", ".join(_fmt(c, values[_INDEX[c]]) for c in against) + ")"
    return line


@dataclass(frozen=True, eq=False)
class ExpressionReadout:
    """Per-frame readout (see the module doc for the formulas).

    Attributes:
        labels: ``(N,)`` object array: one of :data:`EXPRESSIONS`, :data:`OTHER` or
            :data:`NO_FACE` per frame.
        confidence: ``(N,)`` the label's confidence in [0, 1]; 0 for ``other``, NaN without a
            face.
        scores: ``(N, 8)`` in :data:`EXPRESSIONS` order, each in [0, 1]; NaN rows without a
            face, NaN entries for expressions none of whose core AUs were observed.
        aus: ``(N, 18)`` the intensities that were read (NaN kept).
        valid: ``(N,)`` whether the frame has a face.
        one_sided: ``(N,)`` the lip corners' :func:`one_sidedness`, or None without weights.
    """

    labels: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray
    aus: np.ndarray
    valid: np.ndarray
    one_sided: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def confidence_of(self, label: str) -> np.ndarray:
        """``(N,)`` the confidence each frame would have with ``label`` (NaN without a face).

        Raises:
            ValueError: ``label`` is not one of :data:`EXPRESSIONS` or :data:`OTHER`.
        """
        if label == OTHER:
            return np.where(self.valid, 0.0, np.nan)
        if label not in EXPRESSIONS:
            raise ValueError(f"unknown expression {label!r}; expected one of {EXPRESSIONS}")
        conf = _confidence_of(self.scores, EXPRESSIONS.index(label))
        return np.where(self.valid, np.nan_to_num(conf), np.nan)

    def line(self, i: int, label: str | None = None) -> str:
        """The readout line of frame ``i``, for its own label or for ``label``."""
        label = str(self.labels[i]) if label is None else label
        if not self.valid[i]:
            return NO_FACE
        conf = (float(self.confidence[i]) if label == str(self.labels[i])
                else float(self.confidence_of(label)[i]))
        side = None if self.one_sided is None else float(self.one_sided[i])
        return evidence_text(label, conf, self.aus[i], one_sided=side)


def read_expressions(aus: np.ndarray | Sequence[Sequence[float]], *,
                     valid: np.ndarray | Sequence[bool] | None = None,
                     weights: np.ndarray | None = None) -> ExpressionReadout:
    """Scores every frame of AU intensities (0-5, :data:`imucap.vocab.AU_NAMES` order).

    Args:
        aus: ``(N, 18)`` or ``(18,)`` intensities, from :func:`imucap.vocab.au_intensities`,
            an :class:`~imucap.analysis.au_input.AuSeries` or an OpenFace CSV's ``_r`` columns.
            NaN means not observed.
        valid: ``(N,)`` whether each frame has a face. Default: frames with at least one finite
            AU.
        weights: ``(N, 52)`` blendshape weights of the same frames, if known. They let contempt
            see whether the lip corners are one-sided.

    Returns:
        The readout.

    Raises:
        ValueError: Shapes that do not fit (the last axis of ``aus`` is not 18 long, or
            ``valid`` or ``weights`` do not have one row per frame).
    """
    array = np.asarray(aus, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != NUM_AUS:
        raise ValueError(f"expected (N, {NUM_AUS}) AU intensities, got shape {array.shape}")
    n = array.shape[0]
    face = np.isfinite(array).any(axis=1)
    if valid is not None:
        given = np.asarray(valid, dtype=bool).reshape(-1)
        if given.shape != (n,):
            raise ValueError(f"expected {n} validity flags, got shape {given.shape}")
        face &= given
    clipped = np.where(face[:, None], np.clip(array, 0.0, 5.0), np.nan)
    scores = np.stack([_score(clipped, p) for p in PROTOTYPES] + [_neutral(clipped)], axis=1)
    one_sided = None
    if weights is not None:
        one_sided = one_sidedness(weights)
        if one_sided.shape != (n,):
            raise ValueError(f"expected weights for {n} frames, got {one_sided.shape[0]}")
        factor = 1.0 - ONE_SIDED_SHARE * (1.0 - np.nan_to_num(one_sided))
        scores[:, _CONTEMPT] *= factor
    face &= np.isfinite(scores).any(axis=1)
    scores[~face] = np.nan
    best = np.argmax(np.where(np.isfinite(scores), scores, -1.0), axis=1)
    top = scores[np.arange(n), best]
    total = np.nansum(scores, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(total > 0, top * top / total, 0.0)
    labels = np.asarray(EXPRESSIONS, dtype=object)[best]
    unmatched = face & ~(top >= OTHER_BELOW)
    labels[unmatched] = OTHER
    confidence[unmatched] = 0.0
    labels[~face] = NO_FACE
    confidence[~face] = np.nan
    return ExpressionReadout(labels=labels, confidence=confidence, scores=scores,
                             aus=array.astype(np.float32), valid=face, one_sided=one_sided)


class Unscored(NamedTuple):
    """What a source lacks for one expression (AU codes, numeric order)."""

    core: tuple[str, ...]
    """Core AUs not observed: the expression cannot be read at all."""
    other: tuple[str, ...]
    """Supporting or contradicting AUs not observed: it is read without them."""


def unscored_aus(missing: Sequence[str]) -> dict[str, Unscored]:
    """Per expression, the AUs it uses that a source lacks.

    Args:
        missing: OpenFace column names the source lacks (``AuSeries.missing``), e.g.
            ``("AU28_r", "AU06_r")``. Only the intensity (``_r``) columns matter, because the
            readout reads intensities.

    Returns:
        ``{"happiness": Unscored(core=(), other=("AU06",)), ...}`` for the expressions that
        lose something; empty when nothing the readout uses is missing.
    """
    lacking = {name[:-2] for name in missing if name.endswith("_r")}
    out = {}
    for proto in PROTOTYPES:
        core = [c for c in proto.core if all(
            code in lacking for code in ((c,) if isinstance(c, str) else c))]
        core_codes = sorted({code for c in core for code in ((c,) if isinstance(c, str) else c)},
                            key=_number)
        other = sorted((set(proto.codes) | set(proto.against_codes)) & lacking
                       - set(core_codes),
                       key=_number)
        if core_codes or other:
            out[proto.label] = Unscored(tuple(core_codes), tuple(other))
    return out


# --- over time ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """Consecutive frames that read as one expression.

    Attributes:
        label: One of :data:`EXPRESSIONS`, :data:`OTHER` or :data:`NO_FACE`.
        start: First frame.
        stop: One past the last frame.
        start_s: Time of the first frame.
        end_s: Time of the last frame plus one frame period, so that episodes tile the input.
        confidence: Mean confidence of ``label`` over the episode's frames (NaN for
            :data:`NO_FACE`).
        peak: The frame where ``label`` scores highest.
        evidence: The readout line of the peak frame for ``label``.
    """

    label: str
    start: int
    stop: int
    start_s: float
    end_s: float
    confidence: float
    peak: int
    evidence: str

    @property
    def duration_s(self) -> float:
        """How long the episode lasts."""
        return self.end_s - self.start_s

    def to_dict(self, times: np.ndarray | None = None) -> dict:
        """JSON-ready fields (``peak_s`` added when the frame times are given)."""
        out = {"label": self.label, "start_s": round(self.start_s, 4),
               "end_s": round(self.end_s, 4), "start_frame": self.start,
               "stop_frame": self.stop,
               "confidence": None if not np.isfinite(self.confidence)
               else round(self.confidence, 4),
               "peak_frame": self.peak, "evidence": self.evidence}
        if times is not None:
            out["peak_s"] = round(float(times[self.peak]), 4)
        return out


def _label_score(scores: np.ndarray, label: str) -> np.ndarray:
    """Per frame, how strongly ``label`` holds: its score (OTHER: the threshold)."""
    if label == OTHER:
        return np.full(scores.shape[0], OTHER_BELOW)
    return np.nan_to_num(scores[:, EXPRESSIONS.index(label)], nan=-1.0)


def _sticky_labels(readout: ExpressionReadout, switch_margin: float) -> list[str]:
    """Per-frame labels with hysteresis.

    The current label is kept while it still reads (its score is at least
    :data:`OTHER_BELOW`) and is within ``switch_margin`` of the best score. ``other`` is kept
    while the best score stays under ``OTHER_BELOW + switch_margin``. A frame without a face
    always ends the current label.
    """
    out: list[str] = []
    current: str | None = None
    scores = readout.scores
    for i, raw in enumerate(readout.labels):
        label = str(raw)
        if current is None or label == NO_FACE or current == NO_FACE or label == current:
            current = label
        else:
            row = scores[i]
            best = float(np.nanmax(row))
            if current == OTHER:
                keep = best < OTHER_BELOW + switch_margin
            else:
                own = row[EXPRESSIONS.index(current)]
                keep = bool(np.isfinite(own) and own >= OTHER_BELOW
                            and own >= best - switch_margin)
            if not keep:
                current = label
        out.append(current)
    return out


def _runs(labels: Sequence[str]) -> list[list]:
    runs: list[list] = []  # [label, start, stop]
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1][2] = i + 1
        else:
            runs.append([label, i, i + 1])
    return runs


def _merge_short(runs: list[list], t: np.ndarray, step: float, min_s: float,
                 readout: ExpressionReadout) -> list[list]:
    """Merges runs shorter than ``min_s`` into a neighbour, until none is left to merge.

    A short run between two runs of one label joins them. Otherwise it joins the neighbour
    whose label scores better over the short run's frames. :data:`NO_FACE` runs neither merge
    nor absorb: a lost face is a fact, not flicker.
    """
    def short(run: list) -> bool:
        return run[0] != NO_FACE and t[run[2] - 1] - t[run[1]] + step < min_s - 1e-9

    changed = True
    while changed and len(runs) > 1:
        changed = False
        k = 0
        while k < len(runs):
            run = runs[k]
            if not short(run):
                k += 1
                continue
            prev = runs[k - 1] if k > 0 and runs[k - 1][0] != NO_FACE else None
            nxt = runs[k + 1] if k + 1 < len(runs) and runs[k + 1][0] != NO_FACE else None
            if prev is None and nxt is None:
                k += 1
                continue
            if prev is not None and nxt is not None and prev[0] == nxt[0]:
                prev[2] = nxt[2]
                del runs[k:k + 2]
            else:
                if prev is not None and nxt is not None:
                    sl = slice(run[1], run[2])
                    into_prev = (np.mean(_label_score(readout.scores[sl], prev[0]))
                                 >= np.mean(_label_score(readout.scores[sl], nxt[0])))
                else:
                    into_prev = prev is not None
                if into_prev:
                    prev[2] = run[2]
                else:
                    nxt[1] = run[1]
                del runs[k]
            changed = True
    return runs


def episodes(readout: ExpressionReadout, times: np.ndarray | Sequence[float], *,
             min_duration_s: float = 0.3, switch_margin: float = 0.1) -> list[Episode]:
    """Splits a readout into episodes of one label.

    Labels read frame by frame flicker where two expressions score alike. To avoid that, the
    current label is kept while its score stays within ``switch_margin`` of the best one
    (hysteresis). Then each run shorter than ``min_duration_s`` is merged into a neighbour.
    That way a smile that wavers for two frames stays one smile. ``no face`` runs are kept
    whatever their length.

    Args:
        readout: From :func:`read_expressions`.
        times: ``(N,)`` frame times in seconds, increasing.
        min_duration_s: Shortest episode. The default 0.3 s is a little shorter than a posed
            or spontaneous expression, which lasts about 0.5 to 4 s. A micro-expression (under
            about 0.5 s) can survive, and two-frame flicker cannot.
        switch_margin: Score lead another label needs to take over (0 turns hysteresis off).

    Returns:
        The episodes in time order. Together they cover every frame.

    Raises:
        ValueError: ``times`` does not have one entry per frame, or a setting is negative.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.shape != (len(readout),):
        raise ValueError(f"{t.shape[0] if t.ndim else 0} times for {len(readout)} frames")
    if min_duration_s < 0 or switch_margin < 0:
        raise ValueError("min_duration_s and switch_margin must not be negative")
    if not len(readout):
        return []
    step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    labels = _sticky_labels(readout, switch_margin)
    runs = _merge_short(_runs(labels), t, step, min_duration_s, readout)
    out = []
    for label, a, b in runs:
        if label == NO_FACE:
            out.append(Episode(label, a, b, float(t[a]), float(t[b - 1] + step), float("nan"),
                               a, NO_FACE))
            continue
        sl = slice(a, b)
        conf = readout.confidence_of(label)[sl]
        peak = a + int(np.argmax(np.nan_to_num(_label_score(readout.scores[sl], label),
                                               nan=-1.0)))
        mean = float(np.nanmean(conf)) if np.isfinite(conf).any() else float("nan")
        out.append(Episode(label, a, b, float(t[a]), float(t[b - 1] + step), mean, peak,
                           readout.line(peak, label)))
    return out


def label_shares(eps: Sequence[Episode]) -> dict[str, float]:
    """Share of the time each label covers, largest first (``no face`` included)."""
    total = sum(e.duration_s for e in eps)
    shares: dict[str, float] = {}
    for e in eps:
        shares[e.label] = shares.get(e.label, 0.0) + e.duration_s
    if total <= 0:
        return {}
    return dict(sorted(((k, v / total) for k, v in shares.items()), key=lambda kv: -kv[1]))


class ExpressionTracker:
    """The readout frame by frame, for a live stream, without flicker.

    Each frame's AUs (and weights, if given) are smoothed with an exponential moving average
    of time constant ``smoothing_s``, which keeps the readout from following single-frame
    noise. The smoothed frame is read with :func:`read_expressions`. Another label takes over
    only once it has led the current one by ``switch_margin`` for ``min_duration_s``. This is
    the same hysteresis and shortest episode as :func:`episodes`, applied causally. Frames
    without a face (no finite AU) reset the average, and after ``min_duration_s`` the tracker
    reads :data:`NO_FACE`.

    Example:
        >>> tracker = ExpressionTracker(rate_hz=30.0)
        >>> smile = np.zeros(18); smile[[4, 8]] = 2.5, 3.5   # AU6, AU12
        >>> for _ in range(30):
        ...     _ = tracker.update(smile)
        >>> tracker.label
        'happiness'
    """

    def __init__(self, rate_hz: float, *, smoothing_s: float = 0.15,
                 min_duration_s: float = 0.3, switch_margin: float = 0.1) -> None:
        """Creates a tracker.

        Args:
            rate_hz: Rate of the frames fed to :meth:`update`.
            smoothing_s: Time constant of the moving average (0: none).
            min_duration_s: How long a new label must lead before it is shown.
            switch_margin: Score lead a new label needs.

        Raises:
            ValueError: A setting out of range.
        """
        if not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        if smoothing_s < 0 or min_duration_s < 0 or switch_margin < 0:
            raise ValueError("smoothing_s, min_duration_s and switch_margin must not be "
                             "negative")
        self.rate_hz = float(rate_hz)
        self._alpha = 1.0 if smoothing_s == 0 else 1.0 - float(np.exp(-1.0 / (rate_hz *
                                                                                smoothing_s)))
        self._hold = max(1, round(min_duration_s * rate_hz))
        self.switch_margin = float(switch_margin)
        self.reset()

    def reset(self) -> None:
        """Forgets every frame."""
        self._aus: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._readout: ExpressionReadout | None = None
        self.label: str | None = None
        self._pending: str | None = None
        self._pending_frames = 0
        self.frames = 0

    def update(self, aus: np.ndarray | Sequence[float],
               weights: np.ndarray | Sequence[float] | None = None) -> str:
        """Feeds one frame; returns the label now shown.

        Args:
            aus: The frame's 18 intensities (NaN or all-NaN: no face).
            weights: Its 52 blendshape weights, if known (for contempt's one-sidedness).
        """
        a = np.asarray(aus, dtype=np.float64).reshape(NUM_AUS)
        w = None if weights is None else np.asarray(weights, np.float64).reshape(NUM_BLENDSHAPES)
        self.frames += 1
        if not np.isfinite(a).any():
            self._aus = self._weights = None
            readout = read_expressions(np.full((1, NUM_AUS), np.nan))
        else:
            if self._aus is None or np.isnan(self._aus).all():
                self._aus = a.copy()
                self._weights = w
            else:
                self._aus = np.where(np.isfinite(self._aus),
                                     self._aus + self._alpha * (a - self._aus), a)
                if w is not None and self._weights is not None:
                    self._weights = self._weights + self._alpha * (w - self._weights)
                else:
                    self._weights = w
            readout = read_expressions(self._aus[None, :],
                                       weights=None if self._weights is None
                                       else self._weights[None, :])
        self._readout = readout
        self._follow(readout)
        return str(self.label)

    def _follow(self, readout: ExpressionReadout) -> None:
        raw = str(readout.labels[0])
        if self.label is None:
            self.label = raw
            return
        keep = raw == self.label
        if not keep and self.label not in (NO_FACE,) and raw != NO_FACE:
            row = readout.scores[0]
            best = float(np.nanmax(row))
            if self.label == OTHER:
                keep = best < OTHER_BELOW + self.switch_margin
            else:
                own = row[EXPRESSIONS.index(self.label)]
                keep = bool(np.isfinite(own) and own >= OTHER_BELOW
                            and own >= best - self.switch_margin)
        if keep:
            self._pending, self._pending_frames = None, 0
            return
        if raw == self._pending:
            self._pending_frames += 1
        else:
            self._pending, self._pending_frames = raw, 1
        if self._pending_frames >= self._hold:
            self.label = raw
            self._pending, self._pending_frames = None, 0

    def line(self) -> str:
        """The readout line of the label shown, with the smoothed AUs as evidence ("" before the
        first frame)."""
        if self._readout is None or self.label is None:
            return ""
        if self.label == NO_FACE or not self._readout.valid[0]:
            return NO_FACE
        return self._readout.line(0, self.label)
