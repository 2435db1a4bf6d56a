"""Data: the 52 ARKit blendshapes, their spellings in other tools, and the Live Link layouts.

This module only holds tables; :mod:`imucap.vocab.blendshapes` is the API built on them.

Sources each order was checked against (facts only, nothing copied):

* ``BLENDSHAPES`` row order and camelCase names: Apple's documentation page for
  ``ARFaceAnchor.BlendShapeLocation`` (topic groups Left Eye, Right Eye, Mouth and Jaw,
  Eyebrows/Cheeks/Nose, Tongue; "Mouth and Jaw" lists jawForward, jawLeft, jawRight, jawOpen,
  mouthClose, mouthFunnel, mouthPucker, mouthLeft, mouthRight, mouthSmileLeft, ...), read in a
  mirror of Apple's docs and in a cutsceneartist.com list compiled from them.
* Raw ``_L``/``_R`` names: the ``rawValue`` strings of ``ARFaceAnchor.BlendShapeLocation``, as
  listed by Unity's old ARKit plugin (``UnityEngine.XR.iOS.ARBlendShapeLocation`` constants) and
  by rawValue dumps of ``ARFaceAnchor.blendShapes``; names without a side stay unchanged.
* MediaPipe: ``kBlendshapeNames`` in google-ai-edge/mediapipe
  ``mediapipe/tasks/cc/vision/face_landmarker/face_blendshapes_graph.cc`` (52 labels, ``_neutral``
  first, then the other names in alphabetical order; no ``tongueOut``).
* Live Link UDP order: Unreal's ``EARFaceBlendShape`` enum, as mirrored by think-biq/LLV
  ``src/llv/gesicht.py``, JimWest/PyLiveLinkFace ``pylivelinkface/pylivelinkface.py`` and the
  MediaPipe4U plugin's ``ARKitBlendShape.h``: Apple's order (JawLeft before JawRight, MouthLeft
  before MouthRight), then HeadYaw, HeadPitch, HeadRoll and the left/right eye yaw/pitch/roll.
* Live Link Face CSV order: the header row of takes recorded by the app
  (alexdjulin/LiveLinkFace-CSV-Retarget-For-Motionbuilder ``anim/S07-001.csv``, and the same
  header in several Blender importers): ``Timecode,BlendShapeCount,...`` with **JawRight before
  JawLeft** and **MouthRight before MouthLeft**, otherwise the UDP order. One project quotes the
  second column as ``BlendshapeCount``; readers should match header names case-insensitively.
"""

from __future__ import annotations

from typing import NamedTuple


class BlendshapeRow(NamedTuple):
    """One ARKit blendshape spelled in every naming scheme."""

    arkit: str
    """ARKit camelCase, as in ``ARFaceAnchor.BlendShapeLocation`` (``eyeBlinkLeft``)."""
    pascal: str
    """PascalCase: Live Link Face CSV column and VRM "perfect sync" clip (``EyeBlinkLeft``)."""
    raw: str
    """ARKit raw value with ``_L``/``_R`` (``eyeBlink_L``), used by Apple's sample models."""
    mediapipe: str | None
    """MediaPipe Face Landmarker category name, or None where MediaPipe has none."""
    region: str
    """Face region: brows, eyes, cheeks, nose, mouth, jaw or tongue."""


_R = BlendshapeRow

#: The 52 blendshapes in Apple's documented order.
BLENDSHAPES: tuple[BlendshapeRow, ...] = (
    # Left eye
    _R("eyeBlinkLeft", "EyeBlinkLeft", "eyeBlink_L", "eyeBlinkLeft", "eyes"),
    _R("eyeLookDownLeft", "EyeLookDownLeft", "eyeLookDown_L", "eyeLookDownLeft", "eyes"),
    _R("eyeLookInLeft", "EyeLookInLeft", "eyeLookIn_L", "eyeLookInLeft", "eyes"),
    _R("eyeLookOutLeft", "EyeLookOutLeft", "eyeLookOut_L", "eyeLookOutLeft", "eyes"),
    _R("eyeLookUpLeft", "EyeLookUpLeft", "eyeLookUp_L", "eyeLookUpLeft", "eyes"),
    _R("eyeSquintLeft", "EyeSquintLeft", "eyeSquint_L", "eyeSquintLeft", "eyes"),
    _R("eyeWideLeft", "EyeWideLeft", "eyeWide_L", "eyeWideLeft", "eyes"),
    # Right eye
    _R("eyeBlinkRight", "EyeBlinkRight", "eyeBlink_R", "eyeBlinkRight", "eyes"),
    _R("eyeLookDownRight", "EyeLookDownRight", "eyeLookDown_R", "eyeLookDownRight", "eyes"),
    _R("eyeLookInRight", "EyeLookInRight", "eyeLookIn_R", "eyeLookInRight", "eyes"),
    _R("eyeLookOutRight", "EyeLookOutRight", "eyeLookOut_R", "eyeLookOutRight", "eyes"),
    _R("eyeLookUpRight", "EyeLookUpRight", "eyeLookUp_R", "eyeLookUpRight", "eyes"),
    _R("eyeSquintRight", "EyeSquintRight", "eyeSquint_R", "eyeSquintRight", "eyes"),
    _R("eyeWideRight", "EyeWideRight", "eyeWide_R", "eyeWideRight", "eyes"),
    # Mouth and jaw
    _R("jawForward", "JawForward", "jawForward", "jawForward", "jaw"),
    _R("jawLeft", "JawLeft", "jawLeft", "jawLeft", "jaw"),
    _R("jawRight", "JawRight", "jawRight", "jawRight", "jaw"),
    _R("jawOpen", "JawOpen", "jawOpen", "jawOpen", "jaw"),
    _R("mouthClose", "MouthClose", "mouthClose", "mouthClose", "mouth"),
    _R("mouthFunnel", "MouthFunnel", "mouthFunnel", "mouthFunnel", "mouth"),
    _R("mouthPucker", "MouthPucker", "mouthPucker", "mouthPucker", "mouth"),
    _R("mouthLeft", "MouthLeft", "mouthLeft", "mouthLeft", "mouth"),
    _R("mouthRight", "MouthRight", "mouthRight", "mouthRight", "mouth"),
    _R("mouthSmileLeft", "MouthSmileLeft", "mouthSmile_L", "mouthSmileLeft", "mouth"),
    _R("mouthSmileRight", "MouthSmileRight", "mouthSmile_R", "mouthSmileRight", "mouth"),
    _R("mouthFrownLeft", "MouthFrownLeft", "mouthFrown_L", "mouthFrownLeft", "mouth"),
    _R("mouthFrownRight", "MouthFrownRight", "mouthFrown_R", "mouthFrownRight", "mouth"),
    _R("mouthDimpleLeft", "MouthDimpleLeft", "mouthDimple_L", "mouthDimpleLeft", "mouth"),
    _R("mouthDimpleRight", "MouthDimpleRight", "mouthDimple_R", "mouthDimpleRight", "mouth"),
    _R("mouthStretchLeft", "MouthStretchLeft", "mouthStretch_L", "mouthStretchLeft", "mouth"),
    _R("mouthStretchRight", "MouthStretchRight", "mouthStretch_R", "mouthStretchRight", "mouth"),
    _R("mouthRollLower", "MouthRollLower", "mouthRollLower", "mouthRollLower", "mouth"),
    _R("mouthRollUpper", "MouthRollUpper", "mouthRollUpper", "mouthRollUpper", "mouth"),
    _R("mouthShrugLower", "MouthShrugLower", "mouthShrugLower", "mouthShrugLower", "mouth"),
    _R("mouthShrugUpper", "MouthShrugUpper", "mouthShrugUpper", "mouthShrugUpper", "mouth"),
    _R("mouthPressLeft", "MouthPressLeft", "mouthPress_L", "mouthPressLeft", "mouth"),
    _R("mouthPressRight", "MouthPressRight", "mouthPress_R", "mouthPressRight", "mouth"),
    _R("mouthLowerDownLeft", "MouthLowerDownLeft", "mouthLowerDown_L", "mouthLowerDownLeft",
       "mouth"),
    _R("mouthLowerDownRight", "MouthLowerDownRight", "mouthLowerDown_R", "mouthLowerDownRight",
       "mouth"),
    _R("mouthUpperUpLeft", "MouthUpperUpLeft", "mouthUpperUp_L", "mouthUpperUpLeft", "mouth"),
    _R("mouthUpperUpRight", "MouthUpperUpRight", "mouthUpperUp_R", "mouthUpperUpRight", "mouth"),
    # Eyebrows, cheeks and nose
    _R("browDownLeft", "BrowDownLeft", "browDown_L", "browDownLeft", "brows"),
    _R("browDownRight", "BrowDownRight", "browDown_R", "browDownRight", "brows"),
    _R("browInnerUp", "BrowInnerUp", "browInnerUp", "browInnerUp", "brows"),
    _R("browOuterUpLeft", "BrowOuterUpLeft", "browOuterUp_L", "browOuterUpLeft", "brows"),
    _R("browOuterUpRight", "BrowOuterUpRight", "browOuterUp_R", "browOuterUpRight", "brows"),
    _R("cheekPuff", "CheekPuff", "cheekPuff", "cheekPuff", "cheeks"),
    _R("cheekSquintLeft", "CheekSquintLeft", "cheekSquint_L", "cheekSquintLeft", "cheeks"),
    _R("cheekSquintRight", "CheekSquintRight", "cheekSquint_R", "cheekSquintRight", "cheeks"),
    _R("noseSneerLeft", "NoseSneerLeft", "noseSneer_L", "noseSneerLeft", "nose"),
    _R("noseSneerRight", "NoseSneerRight", "noseSneer_R", "noseSneerRight", "nose"),
    # Tongue (MediaPipe does not estimate it)
    _R("tongueOut", "TongueOut", "tongueOut", None, "tongue"),
)

del _R

#: Face regions, in the order :data:`imucap.vocab.blendshapes.REGIONS` lists them.
REGION_ORDER: tuple[str, ...] = ("brows", "eyes", "cheeks", "nose", "mouth", "jaw", "tongue")

#: MediaPipe Face Landmarker's 52 blendshape categories, in its output order.
MEDIAPIPE_CATEGORIES: tuple[str, ...] = (
    "_neutral",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
    "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)

#: MediaPipe's extra category: a "neutral face" score, not a blendshape.
MEDIAPIPE_NEUTRAL = "_neutral"

#: The nine head and eye rotation values that follow the 52 blendshapes in both Live Link layouts.
LIVELINK_POSE_NAMES: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)

#: The 61 float values of a Live Link Face UDP packet (Unreal's EARFaceBlendShape order).
LIVELINK_UDP_NAMES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft",
    "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight",
    "JawForward", "JawLeft", "JawRight", "JawOpen",
    "MouthClose", "MouthFunnel", "MouthPucker", "MouthLeft", "MouthRight",
    "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight",
    "MouthUpperUpLeft", "MouthUpperUpRight",
    "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight",
    "NoseSneerLeft", "NoseSneerRight",
    "TongueOut",
) + LIVELINK_POSE_NAMES

#: The 61 value columns of a Live Link Face CSV take, in file order (after Timecode and
#: BlendShapeCount). Note JawRight/JawLeft and MouthRight/MouthLeft, swapped against the UDP order.
LIVELINK_CSV_COLUMNS: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft",
    "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight",
    "JawForward", "JawRight", "JawLeft", "JawOpen",
    "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight", "MouthLeft",
    "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight",
    "MouthUpperUpLeft", "MouthUpperUpRight",
    "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight",
    "NoseSneerLeft", "NoseSneerRight",
    "TongueOut",
) + LIVELINK_POSE_NAMES

#: The full Live Link Face CSV header row: Timecode, BlendShapeCount, then the 61 value columns.
LIVELINK_CSV_HEADER: tuple[str, ...] = ("Timecode", "BlendShapeCount") + LIVELINK_CSV_COLUMNS
