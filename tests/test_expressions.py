"""The expression readout on constructed faces whose labels follow from the FACS descriptions.

Every face here is built from ARKit blendshapes and read through imucap's real AU mapping, so
the tests cover the whole path a session takes: blendshapes -> AUs -> expression.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from imucap.analysis.expressions import (
    EXPRESSIONS,
    NO_FACE,
    OTHER,
    episodes,
    read_expressions,
)
from imucap.vocab import au_intensities, dict_to_weights


def face(**shapes: float) -> np.ndarray:
    """AU intensities of one frame; ``name_`` sets both sides of ``nameLeft``/``nameRight``."""
    full = {}
    for name, value in shapes.items():
        if name.endswith("_"):
            full[name[:-1] + "Left"] = full[name[:-1] + "Right"] = value
        else:
            full[name] = value
    return au_intensities(dict_to_weights(full).weights)


# What FACS / EMFACS describe for each basic expression, as ARKit shapes.
FACES = {
    # AU6 + AU12: the Duchenne smile.
    "happiness": dict(mouthSmile_=0.8, cheekSquint_=0.6),
    # AU1 + AU4 + AU15 (+ AU17).
    "sadness": dict(browInnerUp=0.7, browDown_=0.3, mouthFrown_=0.7, mouthShrugLower=0.4),
    # AU1 + AU2 + AU5 + AU26.
    "surprise": dict(browInnerUp=0.8, browOuterUp_=0.8, eyeWide_=0.7, jawOpen=0.6),
    # AU1 + AU2 + AU4 + AU5 + AU20 + AU26.
    "fear": dict(browInnerUp=0.7, browOuterUp_=0.6, browDown_=0.5, eyeWide_=0.7,
                 mouthStretch_=0.6, jawOpen=0.3),
    # AU4 + AU5 + AU7 + AU23.
    "anger": dict(browDown_=0.8, eyeWide_=0.3, eyeSquint_=0.6, mouthPress_=0.7),
    # AU9 + AU10 (+ AU17).
    "disgust": dict(noseSneer_=0.8, mouthUpperUp_=0.5, mouthShrugLower=0.3),
    # R12A + R14A: one-sided dimpling with a trace of smile.
    "contempt": dict(mouthDimpleLeft=0.7, mouthSmileLeft=0.25),
    "neutral": {},
}


@pytest.mark.parametrize("label", list(FACES))
def test_each_prototype_reads_as_its_expression(label):
    r = read_expressions(face(**FACES[label]))
    assert r.labels[0] == label, r.line(0)
    assert r.confidence[0] > 0.5, r.line(0)
    assert r.scores.shape == (1, len(EXPRESSIONS))


def test_tracker_noise_on_a_resting_face_is_neutral():
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.0, 0.08, (50, 52)).astype(np.float32)
    r = read_expressions(au_intensities(weights))
    assert set(r.labels) == {"neutral"} and r.confidence.min() > 0.9


def test_a_brow_raise_alone_is_no_confident_surprise():
    brows = read_expressions(face(browInnerUp=0.8, browOuterUp_=0.8))
    full = read_expressions(face(**FACES["surprise"]))
    assert brows.labels[0] == "surprise"
    assert brows.confidence[0] < 0.5 < full.confidence[0]


def test_a_smile_without_the_cheek_raise_is_weaker_happiness():
    social = read_expressions(face(mouthSmile_=0.8))
    duchenne = read_expressions(face(mouthSmile_=0.8, cheekSquint_=0.6))
    assert social.labels[0] == duchenne.labels[0] == "happiness"
    assert social.confidence[0] < duchenne.confidence[0] - 0.2


def test_the_brow_lowerer_tells_fear_from_surprise():
    without = dict(FACES["fear"])
    del without["browDown_"]
    without.pop("mouthStretch_")
    assert read_expressions(face(**without)).labels[0] == "surprise"
    assert read_expressions(face(**FACES["fear"])).labels[0] == "fear"


def test_a_smile_argues_against_sadness():
    sad = read_expressions(face(**FACES["sadness"]))
    mixed = read_expressions(face(**FACES["sadness"], mouthSmile_=0.9))
    assert mixed.scores[0, EXPRESSIONS.index("sadness")] < \
        0.4 * sad.scores[0, EXPRESSIONS.index("sadness")]
    assert mixed.confidence[0] < 0.5 < sad.confidence[0]


def test_confidence_grows_with_intensity():
    levels = np.linspace(0.1, 1.0, 10)
    conf = [read_expressions(face(mouthSmile_=a, cheekSquint_=0.7 * a)).confidence[0]
            for a in levels]
    labels = [read_expressions(face(mouthSmile_=a, cheekSquint_=0.7 * a)).labels[0]
              for a in levels]
    assert labels[-1] == "happiness" and labels[0] == "neutral"
    happy = [c for c, lab in zip(conf, labels, strict=True) if lab == "happiness"]
    assert len(happy) >= 6 and np.all(np.diff(happy) >= -1e-9)


def test_the_evidence_line_names_the_aus_and_their_intensities():
    aus = np.zeros(18)
    aus[4], aus[8] = 2.1, 3.4  # AU06, AU12
    line = read_expressions(aus).line(0)
    assert line.startswith("happiness ")
    conf = float(line.split()[1].rstrip(":"))
    assert 0.5 < conf <= 1.0
    assert line.endswith(": AU6 cheek raiser 2.1, AU12 lip corner puller 3.4")


def test_active_aus_that_match_no_prototype_read_as_other():
    r = read_expressions(face(mouthPress_=0.9))
    assert r.labels[0] == OTHER and r.confidence[0] == 0.0
    assert r.line(0) == "other: AU23 lip tightener 4.5"  # 5 * (0.9 - 0.05) / 0.95 + 0.2 * 0


def test_frames_without_a_face_get_no_label():
    aus = np.stack([face(**FACES["happiness"]), np.full(18, np.nan), face()])
    r = read_expressions(aus)
    assert list(r.labels) == ["happiness", NO_FACE, "neutral"]
    assert np.isnan(r.confidence[1]) and np.isnan(r.scores[1]).all()
    assert r.line(1) == NO_FACE


def test_synthetic_expression_events_read_as_the_expression_they_stand_for():
    """The dataset generator's expression events are built from FACS co-activations too."""
    from imucap.datasets.expression_table import EVENTS

    expected = {"smile": "happiness", "laugh": "happiness", "surprise": "surprise",
                "disgust": "disgust", "frown": "sadness", "blink": "neutral"}
    for event, label in expected.items():
        shapes = {(k[:-1] + "_" if k.endswith("*") else k): v for k, v in EVENTS[event].items()}
        r = read_expressions(face(**shapes))
        assert r.labels[0] == label, (event, r.line(0))


def test_episodes_merge_flicker_and_keep_lost_faces():
    fps = 60.0
    happy, neutral = face(**FACES["happiness"]), face()
    rows = [neutral] * 60 + [happy] * 50 + [neutral] * 3 + [happy] * 50 + \
        [np.full(18, np.nan)] * 2 + [neutral] * 60
    t = np.arange(len(rows)) / fps
    eps = episodes(read_expressions(np.stack(rows)), t, min_s=0.25)
    assert [e.label for e in eps] == ["neutral", "happiness", NO_FACE, "neutral"]
    smile = eps[1]
    assert smile.start == 60 and smile.stop == 163
    assert smile.start_s == pytest.approx(1.0) and smile.end_s == pytest.approx(163 / fps)
    assert smile.mean_confidence > 0.9 and 60 <= smile.peak < 163
    assert eps[2].stop - eps[2].start == 2


def test_the_readout_rejects_the_wrong_width():
    with pytest.raises(ValueError, match="18"):
        read_expressions(np.zeros((3, 17)))


def test_json_safe():
    r = read_expressions(np.stack([face(**FACES["anger"]), face()]))
    json.dumps([str(x) for x in r.labels] + r.confidence.tolist())
