"""Convert ARKit blendshape weights between names, MediaPipe scores and Live Link layouts.

imucap's canonical blendshape vector is a float32 array of 52 weights in Apple's documented
``ARFaceAnchor.BlendShapeLocation`` order (:data:`ARKIT_NAMES`). Every conversion here goes by
name through the table in :mod:`imucap.vocab.blendshape_table`, never by assuming that two tools
share an index order (they do not: MediaPipe sorts its names, and the Live Link Face CSV swaps
JawLeft/JawRight and MouthLeft/MouthRight against the Live Link UDP packet).

Array functions accept any leading batch shape: ``(..., 52)`` in, ``(..., 61)`` out, and back.

Example:
    >>> w = dict_to_weights({"jawOpen": 0.8, "eyeBlink_L": 1.0}).weights
    >>> to_livelink_csv_values(w).shape
    (61,)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from imucap.errors import ImucapError
from imucap.vocab.blendshape_table import (
    BLENDSHAPES,
    LIVELINK_CSV_COLUMNS,
    LIVELINK_CSV_HEADER,
    LIVELINK_POSE_NAMES,
    LIVELINK_UDP_NAMES,
    MEDIAPIPE_CATEGORIES,
    MEDIAPIPE_NEUTRAL,
    REGION_ORDER,
)

__all__ = [
    "ARKIT_NAMES",
    "LIVELINK_CSV_COLUMNS",
    "LIVELINK_CSV_HEADER",
    "LIVELINK_POSE_NAMES",
    "LIVELINK_UDP_NAMES",
    "MEDIAPIPE_CATEGORIES",
    "NUM_BLENDSHAPES",
    "NUM_LIVELINK_VALUES",
    "REGIONS",
    "DictWeights",
    "LiveLinkFrame",
    "NameScheme",
    "UnknownBlendshapeError",
    "canonical_name",
    "dict_to_weights",
    "from_livelink",
    "from_livelink_csv_values",
    "from_mediapipe",
    "index_of",
    "names",
    "to_livelink",
    "to_livelink_csv_values",
    "to_mediapipe",
    "weights_to_dict",
]

#: The 52 ARKit blendshape names (camelCase) in Apple's documented order.
ARKIT_NAMES: tuple[str, ...] = tuple(row.arkit for row in BLENDSHAPES)
#: Length of imucap's blendshape vector.
NUM_BLENDSHAPES = 52
#: Values in one Live Link frame: 52 blendshapes and 9 head/eye angles.
NUM_LIVELINK_VALUES = 61
#: Face region -> names of its blendshapes (Apple order within a region).
REGIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {region: tuple(r.arkit for r in BLENDSHAPES if r.region == region) for region in REGION_ORDER}
)


class NameScheme(str, Enum):
    """A way of spelling blendshape names."""

    ARKIT = "arkit"
    """ARKit camelCase (``eyeBlinkLeft``)."""
    PASCAL = "pascal"
    """PascalCase: Live Link Face CSV columns and VRM "perfect sync" clips (``EyeBlinkLeft``)."""
    RAW = "raw"
    """ARKit raw values with ``_L``/``_R`` (``eyeBlink_L``), as on Apple's sample models."""
    MEDIAPIPE = "mediapipe"
    """MediaPipe Face Landmarker categories (ARKit camelCase; no ``tongueOut``)."""


class UnknownBlendshapeError(ImucapError, ValueError):
    """A name that spells none of the 52 blendshapes in any known scheme.

    Attributes:
        name: The name as given.
        suggestion: The closest known spelling, or None when nothing is close.
    """

    def __init__(self, name: str, suggestion: str | None) -> None:
        self.name = name
        self.suggestion = suggestion
        if name.strip() == MEDIAPIPE_NEUTRAL:
            hint = "it is MediaPipe's neutral-face score, not a blendshape"
        elif suggestion is not None:
            hint = f"did you mean {suggestion!r}?"
        else:
            hint = "expected one of the 52 ARKit names, such as 'eyeBlinkLeft' or 'eyeBlink_L'"
        super().__init__(f"unknown blendshape name {name!r}; {hint}")

    def __reduce__(self) -> tuple[type[UnknownBlendshapeError], tuple[str, str | None]]:
        return type(self), (self.name, self.suggestion)


class DictWeights(NamedTuple):
    """Result of :func:`dict_to_weights`: the weights, and what did not match."""

    weights: np.ndarray
    """float32 array of shape ``(..., 52)`` in :data:`ARKIT_NAMES` order."""
    missing: tuple[str, ...]
    """ARKit names that no key supplied (their weights are 0)."""
    unknown: tuple[str, ...]
    """Keys that name no blendshape (ignored unless ``strict=True``)."""


class LiveLinkFrame(NamedTuple):
    """A Live Link frame split into blendshapes and rotations (unpacks like a tuple)."""

    weights: np.ndarray
    """float32 ``(..., 52)`` blendshape weights in :data:`ARKIT_NAMES` order."""
    head_ypr: np.ndarray
    """float32 ``(..., 3)``: HeadYaw, HeadPitch, HeadRoll."""
    left_eye_ypr: np.ndarray
    """float32 ``(..., 3)``: LeftEyeYaw, LeftEyePitch, LeftEyeRoll."""
    right_eye_ypr: np.ndarray
    """float32 ``(..., 3)``: RightEyeYaw, RightEyePitch, RightEyeRoll."""


# --- name lookup ------------------------------------------------------------------------------

_SCHEME_FIELD = {
    NameScheme.ARKIT: "arkit",
    NameScheme.PASCAL: "pascal",
    NameScheme.RAW: "raw",
    NameScheme.MEDIAPIPE: "mediapipe",
}

# Lower-cased spelling -> ARKit name; and lower-cased spelling -> spelling shown in suggestions.
_LOOKUP: dict[str, str] = {}
_DISPLAY: dict[str, str] = {}
for _row in BLENDSHAPES:
    for _spelling in (_row.arkit, _row.pascal, _row.raw, _row.mediapipe):
        if _spelling is not None:
            _LOOKUP.setdefault(_spelling.lower(), _row.arkit)
            _DISPLAY.setdefault(_spelling.lower(), _spelling)
del _row, _spelling

_INDEX = {name: i for i, name in enumerate(ARKIT_NAMES)}


def _strip_prefix(name: str) -> str:
    """Drops a Maya/FBX-style node prefix: ``blendShape1.eyeBlink_L`` -> ``eyeBlink_L``."""
    name = name.strip()
    for sep in (".", ":"):
        name = name.rpartition(sep)[2]
    return name


def canonical_name(name: str) -> str:
    """Returns the ARKit camelCase name for any known spelling of a blendshape.

    Accepted, case-insensitively: ARKit camelCase (``eyeBlinkLeft``), PascalCase
    (``EyeBlinkLeft``), raw ``_L``/``_R`` (``eyeBlink_L``), MediaPipe category names, each
    optionally behind a node prefix such as ``blendShape1.`` or ``ns:``.

    Args:
        name: The name to look up.

    Returns:
        The ARKit name, e.g. ``"eyeBlinkLeft"``.

    Raises:
        UnknownBlendshapeError: If ``name`` spells no blendshape; the message suggests the
            closest known spelling.
    """
    if not isinstance(name, str):
        raise TypeError(f"blendshape names are str, got {type(name).__name__}")
    key = _strip_prefix(name).lower()
    found = _LOOKUP.get(key)
    if found is not None:
        return found
    close = difflib.get_close_matches(key, _LOOKUP.keys(), n=1, cutoff=0.6)
    raise UnknownBlendshapeError(name, _DISPLAY[close[0]] if close else None)


def index_of(name: str) -> int:
    """Returns the position of a blendshape in :data:`ARKIT_NAMES` (any spelling accepted).

    Raises:
        UnknownBlendshapeError: If ``name`` spells no blendshape.
    """
    return _INDEX[canonical_name(name)]


def names(scheme: NameScheme | str = NameScheme.ARKIT) -> tuple[str, ...]:
    """Returns the blendshape names in one scheme, in Apple's order.

    For :attr:`NameScheme.MEDIAPIPE` this is the 51 blendshapes MediaPipe has (no ``tongueOut``),
    still in Apple's order; MediaPipe's own output order is :data:`MEDIAPIPE_CATEGORIES`.

    Args:
        scheme: A :class:`NameScheme` or its value (``"arkit"``, ``"pascal"``, ...).
    """
    field = _SCHEME_FIELD[NameScheme(scheme)]
    return tuple(n for n in (getattr(row, field) for row in BLENDSHAPES) if n is not None)


# --- shape checks -----------------------------------------------------------------------------


def _last_axis(values: ArrayLike, size: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim == 0 or array.shape[-1] != size:
        raise ValueError(f"expected {size} {what} in the last axis, got shape {array.shape}")
    return array


def _weights(weights: ArrayLike) -> np.ndarray:
    return _last_axis(weights, NUM_BLENDSHAPES, "blendshape weights")


def _angles(ypr: ArrayLike, arg: str, batch: tuple[int, ...]) -> np.ndarray:
    array = _last_axis(ypr, 3, f"values (yaw, pitch, roll) of {arg}")
    try:
        return np.broadcast_to(array, batch + (3,))
    except ValueError:
        raise ValueError(
            f"{arg} of shape {array.shape} does not fit weights with batch shape {batch}"
        ) from None


# --- dictionaries -----------------------------------------------------------------------------


def weights_to_dict(
    weights: ArrayLike, scheme: NameScheme | str = NameScheme.ARKIT
) -> dict[str, Any]:
    """Names each weight.

    Args:
        weights: Shape ``(52,)``, or ``(..., 52)`` for a batch, in :data:`ARKIT_NAMES` order.
        scheme: Spelling of the keys. With :attr:`NameScheme.MEDIAPIPE`, ``tongueOut`` (which
            MediaPipe lacks) is left out.

    Returns:
        Name -> float for one frame; name -> array of shape ``weights.shape[:-1]`` for a batch.
        Keys follow Apple's order.

    Raises:
        ValueError: If the last axis is not 52 long.
    """
    array = _weights(weights)
    field = _SCHEME_FIELD[NameScheme(scheme)]
    out: dict[str, Any] = {}
    for i, row in enumerate(BLENDSHAPES):
        key = getattr(row, field)
        if key is not None:
            out[key] = float(array[i]) if array.ndim == 1 else array[..., i].copy()
    return out


def dict_to_weights(mapping: Mapping[str, ArrayLike], *, strict: bool = False) -> DictWeights:
    """Builds the weight vector from a name -> weight mapping, matching keys by name.

    Keys may use any spelling :func:`canonical_name` accepts. MediaPipe's ``_neutral`` is
    ignored. Values may be floats or arrays of one common (broadcastable) batch shape.

    Args:
        mapping: Name -> weight.
        strict: Raise on keys that name no blendshape instead of reporting them.

    Returns:
        A :class:`DictWeights`: ``weights`` (float32 ``(..., 52)``, 0 where missing), plus the
        ``missing`` ARKit names and the ``unknown`` keys so the caller can report them.

    Raises:
        UnknownBlendshapeError: With ``strict=True``, for the first unknown key.
        ValueError: If two keys spell the same blendshape, or values have clashing shapes.
    """
    found: dict[str, tuple[str, np.ndarray]] = {}
    unknown: list[str] = []
    for key, value in mapping.items():
        if isinstance(key, str) and _strip_prefix(key).lower() == MEDIAPIPE_NEUTRAL:
            continue
        try:
            name = canonical_name(key)
        except UnknownBlendshapeError:
            if strict:
                raise
            unknown.append(key)
            continue
        if name in found:
            raise ValueError(f"keys {found[name][0]!r} and {key!r} both name blendshape {name!r}")
        found[name] = (key, np.asarray(value, dtype=np.float32))
    try:
        batch = np.broadcast_shapes(*(v.shape for _, v in found.values()))
    except ValueError:
        raise ValueError("blendshape values have shapes that do not broadcast together") from None
    weights = np.zeros(batch + (NUM_BLENDSHAPES,), dtype=np.float32)
    for name, (_, value) in found.items():
        weights[..., _INDEX[name]] = value
    missing = tuple(n for n in ARKIT_NAMES if n not in found)
    return DictWeights(weights, missing, tuple(unknown))


# --- MediaPipe --------------------------------------------------------------------------------

# For each blendshape MediaPipe has: its index in ARKIT_NAMES and in MEDIAPIPE_CATEGORIES.
_MP_ARKIT_IDX = np.array([i for i, r in enumerate(BLENDSHAPES) if r.mediapipe is not None])
_MP_CAT_IDX = np.array(
    [MEDIAPIPE_CATEGORIES.index(r.mediapipe) for r in BLENDSHAPES if r.mediapipe is not None]
)
_MP_NEUTRAL_IDX = MEDIAPIPE_CATEGORIES.index(MEDIAPIPE_NEUTRAL)


def _is_categories(seq: Any) -> bool:
    return (
        isinstance(seq, (list, tuple))
        and len(seq) > 0
        and all(hasattr(c, "category_name") and hasattr(c, "score") for c in seq)
    )


def from_mediapipe(scores: Any) -> np.ndarray:
    """Converts MediaPipe Face Landmarker blendshape scores to imucap's weight vector.

    Args:
        scores: One of
            * an array or sequence of shape ``(..., 52)`` in MediaPipe's category order
              (:data:`MEDIAPIPE_CATEGORIES`, ``_neutral`` first);
            * a mapping of category name -> score (any spelling; ``_neutral`` ignored);
            * a list of MediaPipe Tasks ``Category`` objects (anything with ``.category_name``
              and ``.score``), e.g. ``result.face_blendshapes[0]``; a list of such lists (one
              per face) gives a batch.

    Returns:
        float32 array ``(..., 52)`` in :data:`ARKIT_NAMES` order; ``tongueOut`` is 0.

    Raises:
        ValueError: If an array's last axis is not 52 long.
        UnknownBlendshapeError: If a mapping or category names no blendshape.
    """
    if isinstance(scores, Mapping):
        return dict_to_weights(scores, strict=True).weights
    if _is_categories(scores):
        return dict_to_weights({c.category_name: c.score for c in scores}, strict=True).weights
    if isinstance(scores, (list, tuple)) and scores and all(_is_categories(s) for s in scores):
        return np.stack([from_mediapipe(face) for face in scores])
    array = _last_axis(scores, len(MEDIAPIPE_CATEGORIES), "MediaPipe blendshape scores")
    weights = np.zeros(array.shape, dtype=np.float32)
    weights[..., _MP_ARKIT_IDX] = array[..., _MP_CAT_IDX]
    return weights


def to_mediapipe(weights: ArrayLike, *, neutral: ArrayLike = 0.0) -> np.ndarray:
    """Lays weights out as MediaPipe's 52 scores (``tongueOut`` is dropped).

    Args:
        weights: float ``(..., 52)`` in :data:`ARKIT_NAMES` order.
        neutral: Value for the ``_neutral`` category (scalar or batch-shaped).

    Returns:
        float32 ``(..., 52)`` in :data:`MEDIAPIPE_CATEGORIES` order.

    Raises:
        ValueError: If the last axis is not 52 long.
    """
    array = _weights(weights)
    out = np.zeros(array.shape, dtype=np.float32)
    out[..., _MP_CAT_IDX] = array[..., _MP_ARKIT_IDX]
    out[..., _MP_NEUTRAL_IDX] = neutral
    return out


# --- Live Link --------------------------------------------------------------------------------


class _Layout(NamedTuple):
    blendshapes: np.ndarray  # position of each ARKit name in the layout
    head: np.ndarray
    left_eye: np.ndarray
    right_eye: np.ndarray


def _layout(columns: tuple[str, ...]) -> _Layout:
    def where(names_: Iterable[str]) -> np.ndarray:
        return np.array([columns.index(n) for n in names_])

    return _Layout(
        where(r.pascal for r in BLENDSHAPES),
        where(LIVELINK_POSE_NAMES[0:3]),
        where(LIVELINK_POSE_NAMES[3:6]),
        where(LIVELINK_POSE_NAMES[6:9]),
    )


_UDP = _layout(LIVELINK_UDP_NAMES)
_CSV = _layout(LIVELINK_CSV_COLUMNS)


def _pack(
    layout: _Layout,
    weights: ArrayLike,
    head_ypr: ArrayLike,
    left_eye_ypr: ArrayLike,
    right_eye_ypr: ArrayLike,
) -> np.ndarray:
    array = _weights(weights)
    batch = array.shape[:-1]
    out = np.zeros(batch + (NUM_LIVELINK_VALUES,), dtype=np.float32)
    out[..., layout.blendshapes] = array
    out[..., layout.head] = _angles(head_ypr, "head_ypr", batch)
    out[..., layout.left_eye] = _angles(left_eye_ypr, "left_eye_ypr", batch)
    out[..., layout.right_eye] = _angles(right_eye_ypr, "right_eye_ypr", batch)
    return out


def _unpack(layout: _Layout, values: ArrayLike) -> LiveLinkFrame:
    array = _last_axis(values, NUM_LIVELINK_VALUES, "Live Link values")
    return LiveLinkFrame(
        array[..., layout.blendshapes],
        array[..., layout.head],
        array[..., layout.left_eye],
        array[..., layout.right_eye],
    )


_ZERO3 = (0.0, 0.0, 0.0)


def to_livelink(
    weights: ArrayLike,
    *,
    head_ypr: ArrayLike = _ZERO3,
    left_eye_ypr: ArrayLike = _ZERO3,
    right_eye_ypr: ArrayLike = _ZERO3,
) -> np.ndarray:
    """Lays weights and rotations out as the 61 values of a Live Link Face UDP packet.

    Args:
        weights: float ``(..., 52)`` in :data:`ARKIT_NAMES` order.
        head_ypr: Head yaw, pitch, roll, shape ``(3,)`` or ``(..., 3)``.
        left_eye_ypr: Left eye yaw, pitch, roll.
        right_eye_ypr: Right eye yaw, pitch, roll.

    Returns:
        float32 ``(..., 61)`` in :data:`LIVELINK_UDP_NAMES` order.

    Raises:
        ValueError: On a wrong last axis, or rotations that do not fit the batch shape.
    """
    return _pack(_UDP, weights, head_ypr, left_eye_ypr, right_eye_ypr)


def from_livelink(values: ArrayLike) -> LiveLinkFrame:
    """Splits the 61 values of a Live Link Face UDP packet (:data:`LIVELINK_UDP_NAMES` order).

    Returns:
        A :class:`LiveLinkFrame` ``(weights, head_ypr, left_eye_ypr, right_eye_ypr)``.

    Raises:
        ValueError: If the last axis is not 61 long.
    """
    return _unpack(_UDP, values)


def to_livelink_csv_values(
    weights: ArrayLike,
    *,
    head_ypr: ArrayLike = _ZERO3,
    left_eye_ypr: ArrayLike = _ZERO3,
    right_eye_ypr: ArrayLike = _ZERO3,
) -> np.ndarray:
    """Lays weights and rotations out as the 61 value columns of a Live Link Face CSV row.

    The caller writes ``Timecode`` and ``BlendShapeCount`` (61) before these values; see
    :data:`LIVELINK_CSV_HEADER`. Arguments are as for :func:`to_livelink`.

    Returns:
        float32 ``(..., 61)`` in :data:`LIVELINK_CSV_COLUMNS` order.

    Raises:
        ValueError: On a wrong last axis, or rotations that do not fit the batch shape.
    """
    return _pack(_CSV, weights, head_ypr, left_eye_ypr, right_eye_ypr)


def from_livelink_csv_values(values: ArrayLike) -> LiveLinkFrame:
    """Splits the 61 value columns of Live Link Face CSV rows (:data:`LIVELINK_CSV_COLUMNS`).

    Pass the row without its ``Timecode`` and ``BlendShapeCount`` columns.

    Returns:
        A :class:`LiveLinkFrame` ``(weights, head_ypr, left_eye_ypr, right_eye_ypr)``.

    Raises:
        ValueError: If the last axis is not 61 long.
    """
    return _unpack(_CSV, values)
