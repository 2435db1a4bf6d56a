"""Which blendshapes each expression event moves, and how much (FACS-consistent co-activation).

Each event kind lists ARKit blendshapes with their peak weight at full intensity. Left/right
pairs are written once with a ``*`` for the side, and the generator applies the subject's
asymmetry. The combinations follow FACS descriptions of the Action Units involved (given with
each row); magnitudes are the project's own choices for natural-looking, not maximal, motion.
"""

from __future__ import annotations

EVENTS: dict[str, dict[str, float]] = {
    # AU45: the lids close; the lower lid and cheek barely move.
    "blink": {"eyeBlink*": 1.0, "eyeSquint*": 0.1},
    # AU6 + AU12 (Duchenne smile): lip corners up and back, cheeks raised, eyes narrowed.
    "smile": {"mouthSmile*": 0.8, "cheekSquint*": 0.5, "eyeSquint*": 0.3, "mouthDimple*": 0.2},
    # AU12 alone (social smile): lip corners only.
    "social_smile": {"mouthSmile*": 0.5, "mouthDimple*": 0.1},
    # AU6 + AU12 + AU25/26 (laugh): smile with the jaw dropping.
    "laugh": {"mouthSmile*": 1.0, "cheekSquint*": 0.7, "eyeSquint*": 0.5, "jawOpen": 0.4,
              "mouthUpperUp*": 0.2},
    # AU15 + AU17 (sad mouth): lip corners down, chin boss raised.
    "frown": {"mouthFrown*": 0.6, "mouthShrugLower": 0.4, "browInnerUp": 0.3},
    # AU1 + AU2 (brow raise), with AU5 a little.
    "brow_raise": {"browInnerUp": 0.7, "browOuterUp*": 0.7, "eyeWide*": 0.2},
    # AU4 (concentration, anger): brows lowered and drawn together.
    "brow_down": {"browDown*": 0.7, "eyeSquint*": 0.2},
    # AU1 + AU2 + AU5 + AU26 (surprise).
    "surprise": {"browInnerUp": 0.8, "browOuterUp*": 0.8, "eyeWide*": 0.6, "jawOpen": 0.35},
    # AU9 (+AU10): nose wrinkled, upper lip raised.
    "disgust": {"noseSneer*": 0.7, "mouthUpperUp*": 0.4, "browDown*": 0.3,
                "cheekSquint*": 0.3},
    # AU18/AU22 (lips pushed forward), as in a kiss or "oo".
    "pucker": {"mouthPucker": 0.8, "mouthFunnel": 0.2},
    # Cheeks filled with air, lips closed (AU34 in FACS terms).
    "cheek_puff": {"cheekPuff": 0.9, "mouthClose": 0.1},
    # AU24 (lip presser).
    "press": {"mouthPress*": 0.7, "mouthRollLower": 0.2},
    # AU14 on one side (contempt-like): applied to one side only by the generator.
    "smirk": {"mouthDimple*": 0.5, "mouthSmile*": 0.3},
}

# Speech: each syllable opens the jaw and shapes the lips; vowels pick one of these shapes.
SYLLABLES: dict[str, dict[str, float]] = {
    "a": {"jawOpen": 0.45, "mouthLowerDown*": 0.3, "mouthUpperUp*": 0.1},
    "e": {"jawOpen": 0.25, "mouthStretch*": 0.35, "mouthSmile*": 0.1},
    "i": {"jawOpen": 0.15, "mouthStretch*": 0.45, "mouthSmile*": 0.2},
    "o": {"jawOpen": 0.35, "mouthFunnel": 0.5, "mouthPucker": 0.2},
    "u": {"jawOpen": 0.15, "mouthPucker": 0.6, "mouthFunnel": 0.3},
    "m": {"mouthClose": 0.3, "mouthPress*": 0.4, "mouthRollLower": 0.2},  # lips together
    "f": {"jawOpen": 0.1, "mouthRollLower": 0.5, "mouthUpperUp*": 0.2},  # teeth on lower lip
}

# Relative frequency of each event kind in spontaneous behaviour (per minute, before the
# subject's expressiveness scales them).
EVENT_RATES_PER_MIN: dict[str, float] = {
    "smile": 2.0, "social_smile": 3.0, "laugh": 0.5, "frown": 0.8, "brow_raise": 2.0,
    "brow_down": 1.5, "surprise": 0.4, "disgust": 0.3, "pucker": 0.5, "cheek_puff": 0.3,
    "press": 1.0, "smirk": 0.5,
}
