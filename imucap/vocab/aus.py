"""Estimate FACS Action Units, OpenFace style, from ARKit blendshape weights.

imucap reports, for every frame, the 18 Action Units that OpenFace 2 reports (:data:`AU_NAMES`):
an intensity from 0 to 5 and a presence flag. They are estimated from the 52 ARKit blendshape
weights through the table in :mod:`imucap.vocab.au_table`, which says for each AU which
blendshapes it comes from, whether the correspondence is ``direct`` or a ``heuristic``, and why.

Raw value. For each AU the table's terms are evaluated (each term: the **max** of its
blendshapes, so the stronger of left and right carries the AU, as FACS scores a one-sided action
at the intensity of the side that moves), weighted and summed, then clipped to ``[0, 1]``.

Intensity calibration. OpenFace's ``AUxx_r`` regresses the FACS intensity grades A (trace),
B (slight), C (marked), D (severe), E (maximum) mapped to 1-5, with 0 meaning absent. A blendshape
weight is 0 (neutral) to 1 (the shape's full extent). imucap maps one to the other with the
monotonic ramp

    intensity = 5 * clip((w - floor) / (1 - floor), 0, 1),    floor = INTENSITY_FLOOR = 0.05

so the small weights a tracker reports on a neutral face read as exactly 0, and a fully formed
shape reads as E. The ramp is linear because nothing better is known: the FACS grades are ordinal,
not equal steps, and no paired ARKit/FACS-coded data set was available to fit a curve. Treat
values as ordinal, comparable within imucap, not as calibrated FACS scores.

Presence. ``AUxx_c`` is 1 when the intensity is at least :data:`PRESENCE_THRESHOLD` (1.0), i.e.
at least grade A: on OpenFace's own scale 1 means "present at minimum intensity", so this is the
threshold the scale itself defines (a blendshape weight of 0.24 with the default floor). It is a
choice: OpenFace's ``_c`` comes from separately trained classifiers, not from its ``_r``, and
AU-detection benchmarks on DISFA often count only grade B and up (intensity >= 2) as present;
pass ``threshold=2.0`` for that convention.

Blinks. AU45's per-frame intensity follows ``eyeBlink`` (max of both eyes), which is eye closure
at that instant. A blink is an event in time (close and reopen within about half a second); eyes
held shut are AU43, which OpenFace does not report. :class:`BlinkDetector` finds blinks in a
stream of eyeBlink weights, and its per-frame presence replaces the thresholded AU45 presence
(``au_presence(..., blink_presence=...)``).

OpenFace CSV layout. OpenFace's FeatureExtraction writes the intensity columns of its sorted AU
names, then the presence columns (``RecorderCSV::Open`` sorts both lists; zero-padded names sort
numerically). It has no AU28 intensity model, so there is no ``AU28_r``: 17 ``_r`` columns, then
18 ``_c`` columns. :func:`au_columns` gives exactly that; ``include_au28_r=True`` adds imucap's own
AU28 intensity in its numeric place.

Example:
    >>> from imucap.vocab import dict_to_weights
    >>> w = dict_to_weights({"mouthSmileLeft": 1.0, "mouthSmileRight": 0.6}).weights
    >>> float(au_intensities(w)[AU_NAMES.index("AU12")])
    5.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from imucap.errors import ImucapError
from imucap.vocab.au_table import ACTION_UNITS, DIRECT, HEURISTIC, KINDS, AuRow, AuTerm
from imucap.vocab.blendshapes import NUM_BLENDSHAPES, index_of

__all__ = [
    "AU_NAMES",
    "DIRECT",
    "HEURISTIC",
    "INTENSITY_FLOOR",
    "KINDS",
    "MAX_INTENSITY",
    "NUM_AUS",
    "PRESENCE_THRESHOLD",
    "ActionUnitError",
    "AuRow",
    "AuTerm",
    "BlinkDetector",
    "BlinkEvent",
    "BlinkStep",
    "BlinkTrack",
    "UnknownActionUnitError",
    "au_columns",
    "au_index",
    "au_intensities",
    "au_presence",
    "au_row",
    "describe_au",
    "detect_blinks",
    "eye_blink",
    "openface_values",
]

#: The 18 AU codes OpenFace 2 reports, in its order (``AU01`` ... ``AU45``).
AU_NAMES: tuple[str, ...] = tuple(row.code for row in ACTION_UNITS)
#: Number of Action Units in an intensity or presence vector.
NUM_AUS = len(AU_NAMES)
#: Blendshape weight below which an AU reads as 0 (tracker noise on a neutral face).
INTENSITY_FLOOR = 0.05
#: Top of the intensity scale (FACS grade E).
MAX_INTENSITY = 5.0
#: Intensity at which an AU counts as present (FACS grade A, "trace").
PRESENCE_THRESHOLD = 1.0

_INDEX = MappingProxyType({code: i for i, code in enumerate(AU_NAMES)})
_AU45 = _INDEX["AU45"]
# "AU01", "AU1", "au 01", "1", "AU01_r", "AU01_c" -> the number.
_CODE = re.compile(r"^\s*(?:AU)?\s*0*(\d{1,2})(?:_[RC])?\s*$", re.IGNORECASE)


class ActionUnitError(ImucapError, ValueError):
    """An Action Unit setting or argument that cannot be used."""


class UnknownActionUnitError(ActionUnitError):
    """A code that names none of the 18 Action Units imucap reports.

    Attributes:
        code: The code as given.
    """

    def __init__(self, code: object) -> None:
        self.code = code
        match = _CODE.match(code) if isinstance(code, str) else None
        if match is not None:
            what = f"AU{int(match.group(1)):02d} is not among the Action Units imucap reports"
        else:
            what = f"unknown Action Unit {code!r}; expected a code such as 'AU12'"
        super().__init__(f"{what} (the OpenFace set: {', '.join(AU_NAMES)})")

    def __reduce__(self) -> tuple[type[UnknownActionUnitError], tuple[object]]:
        return type(self), (self.code,)


# --- the table, compiled ----------------------------------------------------------------------


class _CompiledTerm(NamedTuple):
    indices: np.ndarray
    weight: float


def _compile(row: AuRow) -> tuple[_CompiledTerm, ...]:
    if row.kind not in KINDS:
        raise ValueError(f"{row.code}: kind {row.kind!r} is not one of {KINDS}")
    terms = []
    for term in row.terms:
        names = [index_of(name) for name in term.blendshapes]
        terms.append(_CompiledTerm(np.array(names, dtype=np.intp), float(term.weight)))
    return tuple(terms)


_COMPILED: tuple[tuple[_CompiledTerm, ...], ...] = tuple(_compile(r) for r in ACTION_UNITS)


def _raw_values(weights: np.ndarray) -> np.ndarray:
    """Per-AU raw values in [0, 1]: weighted sums of max-combined terms."""
    w = np.clip(weights, 0.0, 1.0)
    out = np.zeros(w.shape[:-1] + (NUM_AUS,), dtype=np.float32)
    for i, terms in enumerate(_COMPILED):
        total = np.zeros(w.shape[:-1], dtype=np.float32)
        for term in terms:
            total = total + term.weight * np.max(w[..., term.indices], axis=-1)
        out[..., i] = total
    return np.clip(out, 0.0, 1.0)


# --- codes --------------------------------------------------------------------------------------


def au_index(code: str | int) -> int:
    """Returns the position of an Action Unit in :data:`AU_NAMES`.

    Args:
        code: ``"AU01"``, ``"AU1"``, ``"au01"``, ``"1"``, ``1``, or an OpenFace column name such
            as ``"AU01_r"``.

    Raises:
        UnknownActionUnitError: If the code names none of the 18 reported AUs.
    """
    if isinstance(code, bool) or not isinstance(code, (str, int, np.integer)):
        raise UnknownActionUnitError(code)
    match = _CODE.match(str(int(code)) if not isinstance(code, str) else code)
    if match is None:
        raise UnknownActionUnitError(code)
    found = _INDEX.get(f"AU{int(match.group(1)):02d}")
    if found is None:
        raise UnknownActionUnitError(code)
    return found


def au_row(code: str | int) -> AuRow:
    """Returns the table row of an Action Unit: blendshapes, kind and source.

    Raises:
        UnknownActionUnitError: If the code names none of the 18 reported AUs.
    """
    return ACTION_UNITS[au_index(code)]


def describe_au(code: str | int) -> str:
    """Returns the FACS name of an Action Unit, e.g. ``"Inner Brow Raiser"`` for ``"AU01"``.

    Raises:
        UnknownActionUnitError: If the code names none of the 18 reported AUs.
    """
    return au_row(code).facs_name


# --- intensities and presence -------------------------------------------------------------------


def au_intensities(weights: ArrayLike, *, floor: float = INTENSITY_FLOOR) -> np.ndarray:
    """Estimates Action Unit intensities on OpenFace's 0-5 scale from blendshape weights.

    Args:
        weights: Blendshape weights, shape ``(..., 52)`` in ARKit order (see
            :data:`imucap.vocab.ARKIT_NAMES`); values outside [0, 1] are clipped. NaN (lost
            tracking) gives NaN for the AUs that use it.
        floor: Raw value that maps to 0; must be in [0, 1).

    Returns:
        float32 ``(..., 18)`` in :data:`AU_NAMES` order, each in [0, 5].

    Raises:
        ValueError: If the last axis is not 52 long.
        ActionUnitError: If ``floor`` is outside [0, 1).
    """
    array = np.asarray(weights, dtype=np.float32)
    if array.ndim == 0 or array.shape[-1] != NUM_BLENDSHAPES:
        raise ValueError(
            f"expected {NUM_BLENDSHAPES} blendshape weights in the last axis, got shape "
            f"{array.shape}"
        )
    if not 0.0 <= floor < 1.0:
        raise ActionUnitError(f"intensity floor must be in [0, 1), got {floor}")
    raw = _raw_values(array)
    scaled = np.clip((raw - floor) / (1.0 - floor), 0.0, 1.0) * MAX_INTENSITY
    return scaled.astype(np.float32, copy=False)


def au_presence(
    intensities: ArrayLike,
    *,
    threshold: float = PRESENCE_THRESHOLD,
    blink_presence: ArrayLike | None = None,
) -> np.ndarray:
    """Turns intensities into OpenFace-style presence flags.

    Args:
        intensities: ``(..., 18)`` from :func:`au_intensities`.
        threshold: Intensity at which an AU counts as present; 1.0 is FACS grade A.
        blink_presence: AU45 presence from :class:`BlinkDetector`, shape ``intensities.shape[:-1]``
            (or broadcastable to it). When given it replaces the thresholded AU45 column, which
            otherwise only says the eyes are closed at that frame.

    Returns:
        uint8 ``(..., 18)`` of 0 and 1. NaN intensities give 0.

    Raises:
        ValueError: If the last axis is not 18 long, or ``blink_presence`` does not fit.
        ActionUnitError: If ``threshold`` is not in (0, 5].
    """
    array = np.asarray(intensities, dtype=np.float32)
    if array.ndim == 0 or array.shape[-1] != NUM_AUS:
        raise ValueError(f"expected {NUM_AUS} AU intensities in the last axis, got {array.shape}")
    if not 0.0 < threshold <= MAX_INTENSITY:
        raise ActionUnitError(f"presence threshold must be in (0, 5], got {threshold}")
    with np.errstate(invalid="ignore"):
        present = (array >= threshold).astype(np.uint8)
    if blink_presence is not None:
        blinks = np.asarray(blink_presence)
        try:
            present[..., _AU45] = np.broadcast_to(blinks != 0, array.shape[:-1])
        except ValueError:
            raise ValueError(
                f"blink_presence of shape {blinks.shape} does not fit intensities of shape "
                f"{array.shape}"
            ) from None
    return present


def eye_blink(weights: ArrayLike) -> np.ndarray:
    """Returns the eye-closure signal AU45 is built from: max of eyeBlinkLeft and eyeBlinkRight.

    Feed it, frame by frame, to :class:`BlinkDetector`.

    Args:
        weights: Blendshape weights, shape ``(..., 52)``.

    Returns:
        float32 of shape ``weights.shape[:-1]``, in [0, 1].

    Raises:
        ValueError: If the last axis is not 52 long.
    """
    array = np.asarray(weights, dtype=np.float32)
    if array.ndim == 0 or array.shape[-1] != NUM_BLENDSHAPES:
        raise ValueError(
            f"expected {NUM_BLENDSHAPES} blendshape weights in the last axis, got shape "
            f"{array.shape}"
        )
    return _raw_values(array)[..., _AU45]


# --- OpenFace columns ---------------------------------------------------------------------------


def au_columns(*, include_au28_r: bool = False) -> tuple[str, ...]:
    """Returns the AU column names of an OpenFace FeatureExtraction CSV, in its order.

    The intensity columns (``AU01_r`` ... ``AU45_r``) come first, then the presence columns
    (``AU01_c`` ... ``AU45_c``), each in numeric AU order. OpenFace writes no ``AU28_r``.

    Args:
        include_au28_r: Also list ``AU28_r`` (imucap has a heuristic AU28 intensity), between
            ``AU26_r`` and ``AU45_r``. The result then no longer matches OpenFace's layout.

    Returns:
        35 names (36 with ``include_au28_r``).
    """
    reg = tuple(f"{row.code}_r" for row in ACTION_UNITS if row.openface_intensity or include_au28_r)
    return reg + tuple(f"{row.code}_c" for row in ACTION_UNITS)


def openface_values(
    intensities: ArrayLike,
    presence: ArrayLike | None = None,
    *,
    include_au28_r: bool = False,
) -> np.ndarray:
    """Lays intensities and presence out in :func:`au_columns` order, as an OpenFace CSV row.

    Args:
        intensities: ``(..., 18)`` from :func:`au_intensities`.
        presence: ``(..., 18)`` from :func:`au_presence`; computed with default settings when
            None.
        include_au28_r: As for :func:`au_columns`.

    Returns:
        float32 ``(..., 35)`` (or ``(..., 36)``).

    Raises:
        ValueError: If an input's last axis is not 18 long or the shapes differ.
    """
    inten = np.asarray(intensities, dtype=np.float32)
    pres = au_presence(inten) if presence is None else np.asarray(presence, dtype=np.float32)
    if inten.ndim == 0 or inten.shape[-1] != NUM_AUS or pres.shape != inten.shape:
        raise ValueError(
            f"expected intensities and presence of one shape (..., {NUM_AUS}), got "
            f"{inten.shape} and {pres.shape}"
        )
    keep = [i for i, row in enumerate(ACTION_UNITS) if row.openface_intensity or include_au28_r]
    return np.concatenate([inten[..., keep], pres.astype(np.float32)], axis=-1)


# --- blinks -------------------------------------------------------------------------------------


class BlinkEvent(NamedTuple):
    """One detected blink. Frames count from the detector's first sample (frame 0 at 0 s)."""

    start_frame: int
    """First frame at or above the closed threshold."""
    peak_frame: int
    """Frame of greatest closure (the first, if several tie)."""
    end_frame: int
    """Last frame before the eye reopened (inclusive)."""
    peak_value: float
    """eyeBlink weight at the peak."""
    rate_hz: float
    """Sample rate the frames are counted at."""

    @property
    def start_s(self) -> float:
        """Time of :attr:`start_frame`, in seconds."""
        return self.start_frame / self.rate_hz

    @property
    def peak_s(self) -> float:
        """Time of :attr:`peak_frame`, in seconds."""
        return self.peak_frame / self.rate_hz

    @property
    def end_s(self) -> float:
        """Time of :attr:`end_frame`, in seconds."""
        return self.end_frame / self.rate_hz

    @property
    def duration_s(self) -> float:
        """Time the eye was closed: the number of closed frames times the sample period."""
        return (self.end_frame - self.start_frame + 1) / self.rate_hz


class BlinkStep(NamedTuple):
    """What one :meth:`BlinkDetector.update` settled."""

    events: tuple[BlinkEvent, ...]
    """Blinks that ended with this sample (at most one)."""
    first_frame: int
    """Frame index of ``presence[0]``."""
    presence: np.ndarray
    """uint8 AU45 presence of frames whose status became final with this sample, in order."""


_IDLE, _CLOSING, _HELD = 0, 1, 2


class BlinkDetector:
    """Finds blinks (AU45) in a stream of eyeBlink weights sampled at a fixed rate.

    A blink starts when the weight reaches ``closed_threshold`` and ends when it falls below
    ``open_threshold`` (hysteresis, so noise near one threshold cannot split a blink). It counts
    as a blink only if the eye stayed closed for ``min_duration_ms`` to ``max_duration_ms``
    (default 50-500 ms): shorter closures are tracking glitches, longer ones are eyes held shut
    (AU43) or drowsiness, not blinks. Spontaneous blinks take 100-400 ms in all, and at most
    about 500 ms (Stern, Walrath & Goldstein 1984); the time above half closure is shorter.

    AU45 presence is 1 on the frames of an accepted blink and 0 elsewhere. A frame's presence is
    known only once its closure has ended or grown too long, so it arrives late by up to
    ``max_duration_ms``: :meth:`update` returns the frames settled by each sample. Per-frame AU45
    *intensity* does not wait: it is :func:`au_intensities`, which follows eyeBlink.

    Use :func:`eye_blink` to get the signal from blendshape weights. NaN samples (lost tracking)
    count as open eyes. A wink (one eye) is not told apart from a blink when fed the max of both
    eyes.

    Example:
        >>> det = BlinkDetector(rate_hz=60.0)
        >>> steps = [det.update(v) for v in [0.0] * 5 + [0.9] * 9 + [0.0] * 5]
        >>> [round(e.duration_s, 3) for s in steps for e in s.events]
        [0.15]
    """

    def __init__(
        self,
        rate_hz: float,
        *,
        closed_threshold: float = 0.5,
        open_threshold: float = 0.4,
        min_duration_ms: float = 50.0,
        max_duration_ms: float = 500.0,
    ) -> None:
        """Creates a detector.

        Args:
            rate_hz: Sample rate of the eyeBlink stream. Below about 20 Hz a single glitch frame
                lasts longer than ``min_duration_ms`` and can no longer be rejected.
            closed_threshold: eyeBlink weight at which the eye counts as closed.
            open_threshold: Weight below which a closed eye counts as open again; at most
                ``closed_threshold``.
            min_duration_ms: Shortest accepted closure.
            max_duration_ms: Longest accepted closure.

        Raises:
            ActionUnitError: If a setting is out of range.
        """
        if not np.isfinite(rate_hz) or rate_hz <= 0:
            raise ActionUnitError(f"blink detector rate_hz must be positive, got {rate_hz}")
        if not 0.0 < open_threshold <= closed_threshold <= 1.0:
            raise ActionUnitError(
                "blink thresholds need 0 < open_threshold <= closed_threshold <= 1, got "
                f"open {open_threshold} and closed {closed_threshold}"
            )
        if not 0.0 <= min_duration_ms < max_duration_ms:
            raise ActionUnitError(
                "blink durations need 0 <= min_duration_ms < max_duration_ms, got "
                f"{min_duration_ms} and {max_duration_ms}"
            )
        self.rate_hz = float(rate_hz)
        self.closed_threshold = float(closed_threshold)
        self.open_threshold = float(open_threshold)
        self.min_duration_ms = float(min_duration_ms)
        self.max_duration_ms = float(max_duration_ms)
        self.reset()

    def reset(self) -> None:
        """Forgets all samples; the next one is frame 0."""
        self._frame = 0  # index of the next sample
        self._settled = 0  # frames [0, _settled) have final presence
        self._state = _IDLE
        self._start = 0
        self._peak_frame = 0
        self._peak_value = 0.0

    @property
    def frames_seen(self) -> int:
        """Number of samples fed since the last reset."""
        return self._frame

    @property
    def frames_settled(self) -> int:
        """Number of frames whose AU45 presence is final."""
        return self._settled

    def _duration_ms(self, n_frames: int) -> float:
        return 1000.0 * n_frames / self.rate_hz

    def _settle(self, upto: int, value: int) -> BlinkStep:
        first = self._settled
        presence = np.full(upto - first, value, dtype=np.uint8)
        self._settled = upto
        return BlinkStep((), first, presence)

    def update(self, eye_blink: float) -> BlinkStep:
        """Feeds one sample.

        Args:
            eye_blink: eyeBlink weight of the next frame (0 open, 1 closed).

        Returns:
            The blink that ended with this sample, if any, and the AU45 presence of every
            frame that became final.
        """
        value = float(eye_blink)
        closed = value >= self.closed_threshold  # False for NaN
        opened = not value >= self.open_threshold  # True for NaN
        frame = self._frame
        self._frame += 1

        if self._state == _IDLE:
            if not closed:
                return self._settle(frame + 1, 0)
            self._state = _CLOSING
            self._start = frame
            self._peak_frame, self._peak_value = frame, value
            return self._settle(frame, 0)

        if self._state == _HELD:
            if opened:
                self._state = _IDLE
            return self._settle(frame + 1, 0)

        # _CLOSING: frames [_start, frame) are closed and unsettled.
        if not opened:
            if value > self._peak_value:
                self._peak_frame, self._peak_value = frame, value
            if self._duration_ms(frame + 1 - self._start) > self.max_duration_ms:
                self._state = _HELD
                return self._settle(frame + 1, 0)
            return self._settle(self._settled, 0)

        self._state = _IDLE
        n_closed = frame - self._start
        if self._duration_ms(n_closed) < self.min_duration_ms:
            return self._settle(frame + 1, 0)
        event = BlinkEvent(self._start, self._peak_frame, frame - 1, self._peak_value, self.rate_hz)
        blink = self._settle(frame, 1)
        tail = self._settle(frame + 1, 0)
        return BlinkStep(
            (event,), blink.first_frame, np.concatenate([blink.presence, tail.presence])
        )

    def flush(self) -> BlinkStep:
        """Settles every pending frame at the end of a stream.

        A closure still in progress cannot be told from eyes held shut, so it is not a blink.

        Returns:
            The pending frames' presence (all 0); no events.
        """
        self._state = _IDLE
        return self._settle(self._frame, 0)


class BlinkTrack(NamedTuple):
    """Result of :func:`detect_blinks`."""

    events: tuple[BlinkEvent, ...]
    """Accepted blinks, in time order."""
    presence: np.ndarray
    """uint8 AU45 presence per frame, same length as the input."""


def detect_blinks(
    eye_blink_values: Sequence[float] | ArrayLike, rate_hz: float, **kwargs: float
) -> BlinkTrack:
    """Runs a :class:`BlinkDetector` over a whole recording.

    Args:
        eye_blink_values: 1-D eyeBlink weights, one per frame (see :func:`eye_blink`).
        rate_hz: Sample rate.
        **kwargs: Settings passed to :class:`BlinkDetector`.

    Returns:
        A :class:`BlinkTrack` with the blinks and the per-frame AU45 presence.

    Raises:
        ValueError: If the values are not 1-D.
        ActionUnitError: If a setting is out of range.
    """
    values = np.asarray(eye_blink_values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-D series of eyeBlink weights, got shape {values.shape}")
    detector = BlinkDetector(rate_hz, **kwargs)
    presence = np.zeros(values.shape[0], dtype=np.uint8)
    events: list[BlinkEvent] = []
    for step in [detector.update(v) for v in values] + [detector.flush()]:
        events.extend(step.events)
        presence[step.first_frame : step.first_frame + len(step.presence)] = step.presence
    return BlinkTrack(tuple(events), presence)
