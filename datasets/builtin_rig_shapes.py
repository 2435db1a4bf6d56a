"""Constant tables of the built-in face rig: head shape, landmarks, regions, blendshape motions.

Everything here is data; :mod:`imucap.datasets.builtin_rig` turns it into a mesh and 52 targets.
Tables named ``..._CM`` are in centimetres and ``..._DEG`` in degrees; the blendshape motions
give displacements in millimetres and turns in degrees. All are in ARKit's head frame: +x toward
the face's own left, +y up, +z out of the face, origin where ARKit's face anchor puts it (level
with the nose tip, about 8 cm behind it). Where features come in pairs, tables give the face's
left side (+x) and the right side is its mirror image.

The head is an average adult's: face about 14.6 cm wide, hairline to chin about 18.5 cm, crown
to chin about 23 cm, eyes 6.7 cm apart, mouth 4.4 cm wide. Its shape numbers were tuned (by
measuring, not by copying vertices) until the face lies within a few millimetres of a real
ARKit-topology neutral face, and the motions until each target moves the same region, the same
way and by about the same amount as that rig's (``tests/test_builtin_rig.py`` keeps checking).
"""

from __future__ import annotations

from dataclasses import dataclass

# --- Head surface -------------------------------------------------------------------------------

#: Every vertex lies on a ray from this point (the head surface is star-shaped around it).
RAY_ORIGIN_CM = (0.0, 1.0, -3.5)

#: Latitude-longitude grid the mesh is cut from (about the vertical axis through the ray origin).
GRID_LONGITUDES = 100
GRID_LATITUDES = 54
#: Extra vertex density toward the face: ``(boost, width in degrees)`` of a Gaussian bump.
GRID_FACE_CROWDING = (2.2, 38.0)
#: Elevation the latitude crowding centres on (the middle of the face, seen from the ray origin).
GRID_FACE_ELEVATION_DEG = -10.0

#: Smooth union radius of the volumes below.
BLEND_RADIUS_CM = 1.2

#: The skull and lower face as superellipsoids: ``(centre, semi-axes, exponent)``.
HEAD_VOLUMES_CM = (
    # cranium and forehead
    ((0.0, 4.43, -4.3), (7.24, 9.33, 9.83), 2.14),
    # cheeks, maxilla and jaw
    ((0.0, -2.78, -1.51), (6.04, 5.16, 5.89), 2.61),
    # chin
    ((0.0, -5.11, 0.96), (2.5, 2.5, 4.05), 1.71),
)

#: Surface features as bumps along the rays: ``(centre (x, y), sigma (x, y), height, paired)``.
#: A paired feature is given for the face's left and mirrored.
FACE_FEATURES_CM = (
    # brow ridge
    ((3.15, 3.93), (1.46, 0.89), 1.72, True),
    # eye socket, and the closed lids over the eyeball in it
    ((2.86, 2.69), (1.23, 1.22), -3.65, True),
    ((3.24, 2.34), (0.87, 0.8), 2.2, True),
    # nasal alae
    ((1.21, -0.72), (0.3, 0.35), 0.81, True),
    # upper lip and philtrum, lower lip
    ((0.0, -2.97), (2.0, 0.69), 0.9, False),
    ((0.0, -4.61), (1.57, 0.51), 0.1, False),
    # mentolabial sulcus and chin
    ((0.0, -5.92), (1.12, 0.49), -0.97, False),
    ((0.0, -7.16), (2.5, 1.03), 1.63, False),
)

#: The mouth line (a crease along one grid row): ``(half width, depth, sigma across)``.
MOUTH_LINE_CM = (2.0, 0.6, 0.12)

#: Nose: ridge from the nasion to the tip, ``(nasion y, tip y, tip height, base y)``.
NOSE_PROFILE_CM = (3.45, 0.0, 2.45, -2.2)
#: Nose half-widths (Gaussian sigma) at the bridge and at the tip.
NOSE_WIDTH_CM = (1.0, 0.7)

# --- Landmarks ----------------------------------------------------------------------------------

#: Anatomical landmarks on (or, for the eyeball centre and the jaw joint, under) the generated
#: surface. ``_L`` points are on the face's left (+x); their ``_R`` mirrors are implied.
LANDMARKS_CM = {
    "hairline": (0.0, 9.5, 4.35),  # trichion, where the forehead ends
    "eye_centre_L": (3.35, 2.3, 2.75),  # centre of the eyeball, ~1.3 cm behind the closed lids
    "eye_surface_L": (3.35, 2.3, 4.1),
    "brow_inner_L": (1.7, 4.5, 5.45),
    "brow_outer_L": (4.6, 4.6, 4.3),
    "cheek_L": (4.2, -0.8, 4.15),
    "nose_side_L": (1.35, -0.9, 6.45),
    "nose_tip": (0.0, -0.45, 7.84),
    "mouth_corner_L": (2.2, -4.0, 5.1),
    "upper_lip_centre": (0.0, -3.4, 6.35),
    "lower_lip_centre": (0.0, -4.6, 6.05),
    "mouth_centre": (0.0, -4.02, 5.65),
    "chin": (0.0, -7.6, 5.8),
    "menton": (0.0, -8.9, 3.6),  # lowest point of the chin
    "jaw_joint_L": (5.6, -2.3, -2.7),  # mandibular condyle, just in front of the ear's tragus
}

# --- Regions ------------------------------------------------------------------------------------

#: Regions as smooth, lopsided ellipsoidal falloffs: ``centre, (x-, x+), (y-, y+), (z-, z+) radii,
#: plateau, cut`` (weight 1 out to ``plateau`` of the way to the edge, then a smoothstep to 0;
#: ``cut`` keeps only the part above or below the mouth line: ``"above_mouth"``,
#: ``"below_mouth"``). Falloffs are wide, as muscles drag the skin around them. The first block
#: are the anatomical regions that the vertex labels name, the second only helps compose motions
#: and the third only labels. ``jaw`` is built from the jaw joints and the mouth line instead
#: (see ``JAW_*``).
REGIONS_CM = {
    "brow_inner_L": ((1.8, 4.7, 5.4), (1.8, 2.0), (1.6, 2.4), (3.0, 3.0), 0.1, ""),
    "brow_outer_L": ((4.7, 4.7, 4.0), (2.0, 2.4), (1.6, 2.4), (3.0, 3.0), 0.1, ""),
    "upper_lid_L": ((3.35, 2.8, 4.1), (1.9, 1.9), (1.2, 1.7), (2.5, 2.5), 0.0, ""),
    "lower_lid_L": ((3.35, 1.7, 4.0), (1.9, 1.9), (1.6, 0.6), (2.5, 2.5), 0.1, ""),
    "eye_L": ((3.35, 2.3, 4.1), (2.6, 2.6), (2.0, 2.0), (2.5, 2.5), 0.2, ""),
    "cheek_L": ((4.8, -0.8, 3.4), (2.6, 2.6), (2.8, 2.4), (3.5, 3.5), 0.1, ""),
    "nose_side_L": ((1.3, -0.5, 6.4), (1.2, 1.6), (1.6, 2.4), (2.5, 2.5), 0.1, ""),
    "upper_lip": ((0.0, -3.3, 6.3), (3.4, 3.4), (1.0, 1.8), (3.0, 3.0), 0.2, "above_mouth"),
    "lower_lip": ((0.0, -4.6, 6.0), (3.2, 3.2), (1.6, 1.0), (3.0, 3.0), 0.2, "below_mouth"),
    "mouth_corner_L": ((2.3, -4.0, 5.0), (1.8, 2.8), (2.0, 2.0), (3.5, 3.5), 0.1, ""),
    "chin": ((0.0, -7.3, 5.5), (3.0, 3.0), (2.2, 2.0), (3.5, 3.5), 0.1, ""),
    # helpers
    "eye_area_L": ((3.35, 2.3, 4.1), (2.4, 2.6), (1.8, 1.8), (2.5, 2.5), 0.1, ""),
    "nasolabial_L": ((2.2, -0.3, 5.2), (1.6, 2.4), (2.6, 2.6), (3.0, 3.0), 0.1, ""),
    "mouth_area": ((0.0, -4.0, 5.6), (5.0, 5.0), (3.2, 3.2), (4.5, 4.5), 0.1, ""),
    "mouth_side_L": ((2.8, -4.1, 4.7), (2.2, 3.2), (2.6, 2.6), (3.5, 3.5), 0.1, ""),
    "lips": ((0.0, -4.0, 5.8), (3.4, 3.4), (1.9, 1.7), (3.0, 3.0), 0.2, ""),
    "upper_lip_side_L": ((1.6, -2.9, 5.9), (1.9, 2.4), (1.1, 2.2), (3.0, 3.0), 0.1, "above_mouth"),
    "lower_lip_side_L": ((1.3, -5.0, 5.8), (1.9, 2.2), (2.2, 1.0), (3.0, 3.0), 0.1, "below_mouth"),
    "lower_face": ((0.0, -6.0, 5.2), (4.2, 4.2), (2.8, 2.0), (4.0, 4.0), 0.1, "below_mouth"),
    "lower_face_L": ((2.2, -5.4, 5.0), (2.4, 3.2), (2.6, 2.0), (3.5, 3.5), 0.1, "below_mouth"),
    "cheek_lower_L": ((3.8, -3.4, 4.0), (2.4, 2.6), (2.6, 2.6), (3.5, 3.5), 0.1, ""),
    # labels only
    "forehead": ((0.0, 7.2, 5.0), (5.5, 5.5), (2.0, 3.5), (4.0, 4.0), 0.3, ""),
    "nose": ((0.0, 1.0, 6.6), (1.2, 1.2), (2.4, 2.7), (2.5, 2.5), 0.2, ""),
    "temple_L": ((6.4, 3.3, 1.0), (1.3, 1.5), (2.0, 2.2), (2.5, 2.5), 0.2, ""),
}

#: Beside the mouth corners the cut between upper and lower lip regions softens to this width.
LIP_CUT_SIDE_WIDTH_CM = 2.0

#: Regions that name vertices in :attr:`Rig.vertex_labels` (``_L`` ones come with their ``_R``
#: mirror); a vertex takes the region of largest weight, or ``"head"`` where all are below
#: ``LABEL_MIN_WEIGHT``. Broad regions count for less (``LABEL_PRIORITY``) so that the narrower
#: ones inside them keep their labels: the lower lip and chin in the jaw, the lids around the eye.
LABEL_REGIONS = (
    "brow_inner_L", "brow_outer_L", "upper_lid_L", "lower_lid_L", "eye_L", "cheek_L",
    "nose_side_L", "upper_lip", "lower_lip", "mouth_corner_L", "chin", "jaw", "forehead",
    "nose", "temple_L",
)  # fmt: skip
LABEL_MIN_WEIGHT = 0.25
LABEL_PRIORITY = {"jaw": 0.3, "eye_L": 0.7}

#: The lower jaw's weight. Between the mouth corners it switches from 0 to 1 across the mouth
#: line (over ``JAW_LIP_WIDTH_CM``); outside them, over ``JAW_SIDE_CM`` = ``(start, width)`` of
#: ``|x|``, it becomes a soft ramp down the cheeks from 0 at ``JAW_CHEEK_CM[0]`` to
#: ``JAW_CHEEK_WEIGHT`` at ``JAW_CHEEK_CM[1]`` (heights y): the skin over the masseter follows the
#: mandible only in part. Front to back, everything fades out across ``JAW_BACK_FADE_CM`` (z, from
#: full to none): slowly enough that the skin under the jaw, which the opening jaw swings
#: backward, does not fold over itself.
JAW_LIP_WIDTH_CM = 0.4
JAW_SIDE_CM = (1.6, 1.4)
JAW_CHEEK_CM = (-1.5, -6.5)
JAW_CHEEK_WEIGHT = 0.8
JAW_BACK_FADE_CM = (0.5, -3.5)

# --- Blendshape motions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Motion:
    """What one region does at blendshape weight 1.

    Attributes:
        kind: ``"move"`` (translate by ``vector`` mm), ``"turn"`` (rotate ``amount`` degrees
            about ``vector`` through landmark ``pivot``), ``"jaw"`` (rotate ``amount`` degrees
            about the axis through the jaw joints), ``"scale"`` (move by ``vector`` times the
            offset from ``pivot``: a fraction per axis) or ``"push"`` (``amount`` mm along the
            outward normal).
        region: Region whose weight scales the motion (the angle, for turns).
        vector: Displacement (mm), rotation axis or scale factors, for the face's left side.
        amount: Degrees for turns, millimetres for pushes.
        pivot: Landmark a turn or scale is about.
        slide: Keep a move in the skin's tangent plane (same length): skin slides over tissue.
        both_sides: Also apply the mirror image (for one-region motions in symmetric shapes).
    """

    kind: str
    region: str
    vector: tuple[float, float, float] = (0.0, 0.0, 0.0)
    amount: float = 0.0
    pivot: str = ""
    slide: bool = False
    both_sides: bool = False


def move(
    region: str, dx: float, dy: float, dz: float, *, slide: bool = False, both_sides: bool = False
) -> Motion:
    """A translation of ``region`` by ``(dx, dy, dz)`` mm."""
    return Motion("move", region, (dx, dy, dz), slide=slide, both_sides=both_sides)


def turn(
    region: str,
    pivot: str,
    axis: tuple[float, float, float],
    degrees: float,
    *,
    both_sides: bool = False,
) -> Motion:
    """A rotation of ``region`` by ``degrees`` about ``axis`` through landmark ``pivot``."""
    return Motion("turn", region, axis, degrees, pivot, both_sides=both_sides)


def jaw(region: str, degrees: float) -> Motion:
    """A rotation of ``region`` about the jaw joints' axis (positive opens the mouth)."""
    return Motion("jaw", region, amount=degrees)


def scale(
    region: str, pivot: str, fx: float, fy: float, fz: float, *, both_sides: bool = False
) -> Motion:
    """A stretch (positive) or squeeze (negative) of ``region`` about landmark ``pivot``."""
    return Motion("scale", region, (fx, fy, fz), pivot=pivot, both_sides=both_sides)


def push(region: str, mm: float, *, both_sides: bool = False) -> Motion:
    """An outward bulge of ``region`` by ``mm`` along the surface normal."""
    return Motion("push", region, amount=mm, both_sides=both_sides)


#: Every ARKit target but the ``...Right`` ones, which are the mirror images of ``...Left``.
#: Regions, directions and sizes are anatomical, then tuned against a real ARKit rig's targets
#: (see ``tests/test_builtin_rig.py``).
SHAPE_MOTIONS: dict[str, tuple[Motion, ...]] = {
    # Eyes. The upper lid turns down about the eyeball (the lid squeezes the closed eye's surface
    # against the lower lid) while the orbicularis drags the skin around the eye medially.
    "eyeBlinkLeft": (
        turn("upper_lid_L", "eye_centre_L", (1.0, 0.0, 0.0), 36.0),
        move("eye_area_L", -2.0, 0.0, 0.5, slide=True),
    ),
    # gaze: the lids and the skin around the eye follow the eyeball
    "eyeLookDownLeft": (move("eye_L", 0.0, -3.8, -2.0),),
    "eyeLookInLeft": (move("eye_L", -3.3, 0.0, 0.0, slide=True),),
    "eyeLookOutLeft": (move("eye_L", 3.3, -0.2, -1.5),),
    "eyeLookUpLeft": (move("eye_L", 0.0, 3.3, -1.0),),
    "eyeSquintLeft": (move("lower_lid_L", -3.5, 3.0, 0.8), move("cheek_L", -1.0, 1.0, 0.3)),
    "eyeWideLeft": (move("upper_lid_L", 0.2, 2.2, -2.6),),
    # Jaw: hinge about the condyles, protrusion, and lateral excursion (a shift, with a small turn
    # about the working-side condyle that brings the other side forward).
    "jawForward": (move("jaw", 0.0, 0.0, 8.0),),
    "jawLeft": (move("jaw", 5.0, 0.5, 0.0), turn("jaw", "jaw_joint_L", (0.0, 1.0, 0.0), 2.5)),
    "jawOpen": (jaw("jaw", 23.0),),
    # Mouth. mouthClose is meant to ride on jawOpen: it brings the lips back together.
    "mouthClose": (
        move("lower_lip", 0.0, 17.0, 10.0),
        move("chin", 0.0, 8.0, 6.0),
        move("upper_lip", 0.0, -6.0, -0.5),
    ),
    "mouthFunnel": (
        move("lips", 0.0, 0.0, 9.0),
        scale("lips", "mouth_centre", -0.15, 0.25, 0.0),
        move("mouth_area", 0.0, 2.5, 4.0),
        scale("mouth_area", "mouth_centre", -0.08, 0.0, 0.0),
    ),
    "mouthPucker": (
        move("lips", 0.0, 1.0, 8.0),
        scale("lips", "mouth_centre", -0.3, 0.0, 0.0),
        move("mouth_area", 0.0, 0.0, 2.5),
        scale("mouth_area", "mouth_centre", -0.08, 0.0, 0.0),
    ),
    "mouthLeft": (move("lips", 6.0, 1.5, 0.0), move("mouth_area", 5.0, 2.0, 1.5)),
    "mouthSmileLeft": (move("mouth_corner_L", 7.0, 9.0, -3.0), move("cheek_L", 1.0, 4.0, 0.5)),
    "mouthFrownLeft": (move("mouth_side_L", 2.0, -6.0, 1.5),),
    "mouthDimpleLeft": (move("mouth_side_L", 4.0, 6.0, -3.0),),
    "mouthStretchLeft": (move("mouth_side_L", 6.0, -3.0, -8.5),),
    "mouthRollLower": (move("lower_lip", 0.0, 6.5, 0.0), move("chin", 0.0, 6.0, 3.5)),
    # ARKit's own mouthRollUpper also lifts the skin around the lip a little, so its mean motion
    # is nearly nothing; here the lip rolls in (down and back) and the skin beside it bulges.
    "mouthRollUpper": (
        move("upper_lip", 0.0, -6.0, -3.5),
        move("nasolabial_L", 0.0, 0.5, 1.0, both_sides=True),
    ),
    "mouthShrugLower": (move("lower_face", 0.0, 6.5, 1.5),),
    "mouthShrugUpper": (move("upper_lip", 0.0, 4.5, -1.8),),
    "mouthPressLeft": (move("lower_face_L", 2.0, 8.0, 2.5),),
    "mouthLowerDownLeft": (move("lower_lip_side_L", 1.0, -6.5, -2.0),),
    "mouthUpperUpLeft": (move("upper_lip_side_L", 0.3, 8.0, -1.0),),
    # brows
    "browDownLeft": (move("brow_inner_L", -3.5, -7.0, 3.0), move("brow_outer_L", -2.5, -4.5, 3.5)),
    "browInnerUp": (move("brow_inner_L", 0.0, 11.0, -2.0, both_sides=True),),
    "browOuterUpLeft": (move("brow_outer_L", 1.0, 11.0, -4.0, slide=True),),
    # cheeks and nose; a puff also pushes the lips forward
    "cheekPuff": (push("cheek_lower_L", 9.0, both_sides=True), move("lips", 0.0, 0.5, 6.5)),
    "cheekSquintLeft": (move("cheek_L", 0.0, 7.0, 2.0),),
    "noseSneerLeft": (move("nose_side_L", -1.0, 4.0, 2.0), move("nasolabial_L", -0.5, 3.0, 1.5)),
    # No tongue geometry: a stand-in where the jaw drops a little and the tongue pushes the lower
    # lip forward.
    "tongueOut": (jaw("jaw", 6.0), move("lower_lip", 0.0, -2.0, 8.0)),
}
