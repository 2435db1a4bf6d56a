"""Data: the FACS Action Units imucap reports, and the ARKit blendshapes each is estimated from.

This module only holds the table; :mod:`imucap.vocab.aus` is the API built on it (combination
rule, 0-5 calibration, presence, OpenFace columns, blink detection).

How a row is read. Each :class:`AuTerm` names one or more blendshapes whose weights are combined
by **max** (a left/right pair, or alternatives such as ``mouthRollLower``/``mouthRollUpper``);
the AU's raw value is the weighted sum of its terms, clipped to ``[0, 1]``. OpenFace reports one
value per AU for the whole face, and FACS scores an action whether it is made on one side or both
(a one-sided action is coded with an ``L``/``R`` prefix, at the intensity of the side that moves),
so the stronger side carries the AU: a one-sided smile at full strength reads as a full AU12, where
averaging the sides would halve it. Negative weights subtract (AU25 only).

``kind`` is ``"direct"`` where one blendshape (pair) is described by Apple as the very motion FACS
defines for the AU, and ``"heuristic"`` where ARKit has no such shape and the row is an
approximation that needs care when interpreted.

Sources, checked for facts (no text copied):

* Apple, ``ARFaceAnchor.BlendShapeLocation`` reference: the per-blendshape motion descriptions
  (read on developer.apple.com for ``jawOpen``/``mouthClose`` and, for the rest, in Unity's
  ``Unity.LiveCapture.ARKitFaceCapture.FaceBlendShape`` and ``ARKitBlendShapeLocation`` reference
  pages, which restate Apple's descriptions).
* P. Ekman, W. V. Friesen & J. C. Hager, *Facial Action Coding System* (Manual, 2002): AU names,
  muscular basis and appearance changes (names and muscles cross-checked against the AU tables in
  PMC7264164 and Molecular Autism 12:430 (2021), table 2).
* M. Ozel, "ARKit to FACS cheat sheet" (melindaozel.com): consulted, but only the page's
  introduction could be read here, so no row rests on it; her article "Lip Tightener (AU23) and
  Why Everyone Gets It Wrong": other lip actions, pressing among them, pass for AU23.
* VRCFaceTracking "Unified Expressions" ARKit compatibility table (docs.vrcft.io): FACS-style
  names for ARKit shapes, e.g. ``mouthRollUpper``/``mouthRollLower`` = LipSuck Upper/Lower,
  ``mouthShrugLower``/``mouthShrugUpper`` = MouthRaiser Lower/Upper (mentalis, chin raiser).
* OpenFace 2 wiki "Action Units" (TadasBaltrusaitis/OpenFace): the 18 AUs it reports, intensity
  0 (absent) to 5 (maximum); issue #885: no AU28 intensity model, only presence.
* Blink timing for AU45: Stern, Walrath & Goldstein (1984) (lid closing about 100 ms, closure at
  most about 300 ms, reopening about 100 ms: at most about 500 ms in all); 100-400 ms in the
  Harvard BioNumbers database.

AU27 (Mouth Stretch) is not in OpenFace's set and is not reported. It shares ``jawOpen`` with
AU26: FACS separates a relaxed jaw drop (26) from a jaw actively pulled wide open (27), which a
blendshape weight cannot tell apart; ``jawOpen`` beyond a large threshold (roughly 0.7) is where
a coder would start to consider 27 rather than 26 (an unvalidated guess; nothing here uses it).
"""

from __future__ import annotations

from typing import NamedTuple

#: Value of :attr:`AuRow.kind` for a one-to-one blendshape correspondence.
DIRECT = "direct"
#: Value of :attr:`AuRow.kind` for an approximation built from related blendshapes.
HEURISTIC = "heuristic"
#: The allowed kinds.
KINDS: tuple[str, ...] = (DIRECT, HEURISTIC)


class AuTerm(NamedTuple):
    """Blendshapes combined by max, and the weight of that maximum in the AU's raw value."""

    blendshapes: tuple[str, ...]
    """ARKit camelCase names (a left/right pair, or alternatives)."""
    weight: float
    """Multiplier of the combined weight; negative to subtract."""


class AuRow(NamedTuple):
    """One FACS Action Unit and how it is estimated from ARKit blendshapes."""

    code: str
    """OpenFace's name (``AU01``); its CSV columns are ``AU01_r`` and ``AU01_c``."""
    facs_name: str
    """Name in the FACS Manual (``Inner Brow Raiser``)."""
    terms: tuple[AuTerm, ...]
    """Weighted terms; the raw value is their sum, clipped to [0, 1]."""
    kind: str
    """``"direct"`` or ``"heuristic"``."""
    source: str
    """Where the correspondence comes from."""
    openface_intensity: bool = True
    """Whether OpenFace writes an ``_r`` (intensity) column for this AU (AU28 has none)."""


_T = AuTerm
_R = AuRow

_APPLE = "Apple ARFaceAnchor.BlendShapeLocation"
_FACS = "FACS Manual (Ekman, Friesen & Hager 2002)"

#: The 18 Action Units OpenFace 2 reports, in its (numeric) order.
ACTION_UNITS: tuple[AuRow, ...] = (
    _R("AU01", "Inner Brow Raiser",
       (_T(("browInnerUp",), 1.0),),
       DIRECT,
       f"{_APPLE}: browInnerUp lifts the inner ends of both brows; {_FACS}: AU1, frontalis "
       "pars medialis, raises the inner brow."),
    _R("AU02", "Outer Brow Raiser",
       (_T(("browOuterUpLeft", "browOuterUpRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: browOuterUp* lifts the outer part of one brow; {_FACS}: AU2, frontalis "
       "pars lateralis, raises the outer brow."),
    _R("AU04", "Brow Lowerer",
       (_T(("browDownLeft", "browDownRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: browDown* moves a brow down; {_FACS}: AU4, corrugator/depressor supercilii "
       "and procerus, lower the brows and draw them together."),
    _R("AU05", "Upper Lid Raiser",
       (_T(("eyeWideLeft", "eyeWideRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: eyeWide* widens the eyelid opening; {_FACS}: AU5, levator palpebrae "
       "superioris, raises the upper lid and widens the eye aperture."),
    _R("AU06", "Cheek Raiser",
       (_T(("cheekSquintLeft", "cheekSquintRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: cheekSquint* lifts the cheek around and below the eye; {_FACS}: AU6, "
       "orbicularis oculi pars orbitalis, raises the cheek and bags the skin below the eye."),
    _R("AU07", "Lid Tightener",
       (_T(("eyeSquintLeft", "eyeSquintRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: eyeSquint* contracts the face around the eye; {_FACS}: AU7, orbicularis "
       "oculi pars palpebralis, tightens and narrows the lids (the orbital part is AU6, "
       "cheekSquint)."),
    _R("AU09", "Nose Wrinkler",
       (_T(("noseSneerLeft", "noseSneerRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: noseSneer* raises the side of the nose around the nostril; {_FACS}: AU9, "
       "levator labii superioris alaeque nasi, wrinkles the nose and raises the nostril wing."),
    _R("AU10", "Upper Lip Raiser",
       (_T(("mouthUpperUpLeft", "mouthUpperUpRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: mouthUpperUp* raises the upper lip on one side; {_FACS}: AU10, levator "
       "labii superioris, raises the upper lip."),
    _R("AU12", "Lip Corner Puller",
       (_T(("mouthSmileLeft", "mouthSmileRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: mouthSmile* moves a mouth corner up; {_FACS}: AU12, zygomaticus major, "
       "pulls the lip corner up and back."),
    _R("AU14", "Dimpler",
       (_T(("mouthDimpleLeft", "mouthDimpleRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: mouthDimple* moves a mouth corner backward; {_FACS}: AU14, buccinator, "
       "tightens the lip corner and pulls it inward, dimpling the cheek."),
    _R("AU15", "Lip Corner Depressor",
       (_T(("mouthFrownLeft", "mouthFrownRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: mouthFrown* moves a mouth corner down; {_FACS}: AU15, depressor anguli "
       "oris (triangularis), pulls the lip corner down."),
    _R("AU17", "Chin Raiser",
       (_T(("mouthShrugLower",), 1.0), _T(("mouthShrugUpper",), 0.3)),
       DIRECT,
       f"{_APPLE}: mouthShrugLower pushes the lower lip outward (mouthShrugUpper, the upper "
       f"lip); {_FACS}: AU17, mentalis, pushes the chin boss and lower lip up, which can push "
       "the upper lip up too; VRCFT Unified Expressions names these MouthRaiserLower/Upper."),
    _R("AU20", "Lip Stretcher",
       (_T(("mouthStretchLeft", "mouthStretchRight"), 1.0),),
       DIRECT,
       f"{_APPLE}: mouthStretch* pulls a mouth corner sideways; {_FACS}: AU20, risorius with "
       "platysma, stretches the lips horizontally."),
    _R("AU23", "Lip Tightener",
       (_T(("mouthPressLeft", "mouthPressRight"), 1.0),
        _T(("mouthRollLower", "mouthRollUpper"), 0.2)),
       HEURISTIC,
       f"No ARKit shape tightens the lips. {_FACS}: AU23 (orbicularis oris) narrows and "
       "tightens the red of the lips; pressing (AU24) and sucking (AU28) use the same muscle. "
       f"{_APPLE}: mouthPress* compresses the lower lip upward, the nearest shape; Ozel notes "
       "AU23 is widely confused with pressing. Rolling the lips in adds a little; alone it "
       "stays under presence."),
    _R("AU25", "Lips Part",
       (_T(("jawOpen",), 1.0), _T(("mouthClose",), -1.0),
        _T(("mouthLowerDownLeft", "mouthLowerDownRight"), 0.5)),
       HEURISTIC,
       f"{_APPLE}: jawOpen opens the jaw and mouthClose closes the lips whatever the jaw does, "
       "so with sealed lips the tracker reports mouthClose about equal to jawOpen: the lips "
       f"are apart by jawOpen - mouthClose; mouthLowerDown* lowers the lower lip. {_FACS}: "
       "AU25 is any parting of the lips (jaw, AU16 or relaxed mentalis), scored with or "
       "without 26."),
    # AU27 (Mouth Stretch) is not in OpenFace's set: it would be jawOpen beyond a large
    # threshold, where the jaw is pulled open rather than dropped; see the module docstring.
    _R("AU26", "Jaw Drop",
       (_T(("jawOpen",), 1.0),),
       HEURISTIC,
       f"{_APPLE}: jawOpen opens the lower jaw; {_FACS}: AU26 is a relaxed jaw drop and AU27 "
       "an actively stretched-open mouth; jawOpen covers both, so large values may be 27."),
    _R("AU28", "Lip Suck",
       (_T(("mouthRollLower", "mouthRollUpper"), 1.0),),
       HEURISTIC,
       f"{_APPLE}: mouthRollLower/Upper moves one lip toward the inside of the mouth; "
       f"{_FACS}: AU28 (orbicularis oris) sucks the lips in over the teeth, one or both lips; "
       "VRCFT Unified Expressions names these LipSuckLower/Upper. A partial roll is not a "
       "full suck.",
       # OpenFace has no intensity model for AU28 (issue #885): its CSV has AU28_c, no AU28_r.
       openface_intensity=False),
    _R("AU45", "Blink",
       (_T(("eyeBlinkLeft", "eyeBlinkRight"), 1.0),),
       HEURISTIC,
       f"{_APPLE}: eyeBlink* closes the eyelids over one eye; {_FACS}: AU45 is a blink, a "
       "brief close-and-open event, unlike AU43 (eyes held closed). The per-frame intensity "
       "follows eyeBlink; presence needs the temporal detector (closure 50-500 ms: Stern, "
       "Walrath & Goldstein 1984). A wink (AU46) is not told apart."),
)

del _T, _R
