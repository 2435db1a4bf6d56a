"""The expression readout, tested on faces whose labels follow from the FACS descriptions.

Every face is built from ARKit blendshapes and read through imucap's real AU mapping
(:func:`imucap.vocab.au_intensities`), so the tests cover the whole path a session takes:
blendshapes, then AUs, then the expression. The expected labels come from the EMFACS
prototypes (Ekman & Friesen) and not from the readout's own output: happiness 6+12, sadness
1+4+15 (+17), surprise 1+2+5B+26, fear 1+2+4+5+20+26, anger 4+5+7+23, disgust 9+10,
contempt R12A+R14A.
"""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest

from imucap.analysis.expressions import (
    EXPRESSIONS,
    NO_FACE,
    OTHER,
    Episode,
    ExpressionTracker,
    episodes,
    evidence_text,
    label_shares,
    one_sidedness,
    read_expressions,
    unscored_aus,
)
from imucap.cli.main import main
from imucap.vocab import AU_NAMES, au_intensities, dict_to_weights

FPS = 60.0


def shapes(**values: float) -> dict[str, float]:
    """ARKit weights by name; ``name_`` sets both ``nameLeft`` and ``nameRight``."""
    full = {}
    for name, value in values.items():
        if name.endswith("_"):
            full[name[:-1] + "Left"] = full[name[:-1] + "Right"] = value
        else:
            full[name] = value
    return full


def weights(**values: float) -> np.ndarray:
    return dict_to_weights(shapes(**values), strict=True).weights


def face(**values: float) -> np.ndarray:
    """The 18 AU intensities of one frame with these blendshapes."""
    return au_intensities(weights(**values))


def read(**values: float):
    w = weights(**values)
    return read_expressions(au_intensities(w), weights=w)


def au(code: str) -> int:
    return AU_NAMES.index(code)


# Each basic expression as FACS describes it, written as the ARKit shapes of its AUs
# (imucap/vocab/au_table.py says which blendshape carries which AU).
FACES = {
    # AU6 (cheekSquint) + AU12 (mouthSmile): the Duchenne smile.
    "happiness": dict(mouthSmile_=0.8, cheekSquint_=0.6),
    # AU1 (browInnerUp) + AU4 (browDown) + AU15 (mouthFrown) + AU17 (mouthShrugLower).
    "sadness": dict(browInnerUp=0.7, browDown_=0.3, mouthFrown_=0.7, mouthShrugLower=0.4),
    # AU1 + AU2 (browOuterUp) + AU5B (eyeWide, slight) + AU26 (jawOpen).
    "surprise": dict(browInnerUp=0.8, browOuterUp_=0.8, eyeWide_=0.5, jawOpen=0.5),
    # AU1 + AU2 + AU4 + AU5 + AU7 (eyeSquint) + AU20 (mouthStretch) + AU26.
    "fear": dict(browInnerUp=0.7, browOuterUp_=0.6, browDown_=0.5, eyeWide_=0.7,
                 eyeSquint_=0.2, mouthStretch_=0.6, jawOpen=0.3),
    # AU4 + AU5 + AU7 + AU23 (mouthPress, imucap's lip tightener).
    "anger": dict(browDown_=0.8, eyeWide_=0.3, eyeSquint_=0.6, mouthPress_=0.7),
    # AU9 (noseSneer) + AU10 (mouthUpperUp).
    "disgust": dict(noseSneer_=0.8, mouthUpperUp_=0.5),
    # R12A + R14A: dimpler (mouthDimple) and a trace of smile, on one side only.
    "contempt": dict(mouthDimpleLeft=0.7, mouthSmileLeft=0.3),
    "neutral": {},
}


# --- single frames ----------------------------------------------------------------------------


@pytest.mark.parametrize("label", list(FACES))
def test_each_prototype_reads_as_its_expression(label):
    r = read(**FACES[label])
    assert r.labels[0] == label, r.line(0)
    assert r.confidence[0] > 0.5, r.line(0)
    assert r.scores.shape == (1, len(EXPRESSIONS))
    assert np.all((r.scores >= 0) & (r.scores <= 1))
    # The winner's confidence is the best score times its share of all scores.
    best = r.scores[0].max()
    assert r.confidence[0] == pytest.approx(best * best / r.scores[0].sum())


def test_tracker_noise_on_a_resting_face_is_neutral():
    rng = np.random.default_rng(0)
    noise = rng.uniform(0.0, 0.08, (50, 52)).astype(np.float32)
    r = read_expressions(au_intensities(noise), weights=noise)
    assert set(r.labels) == {"neutral"} and r.confidence.min() > 0.9


def test_talking_and_blinking_are_not_expressions():
    for frame in (dict(jawOpen=0.45, mouthLowerDown_=0.3), dict(eyeBlink_=1.0)):
        r = read(**frame)
        assert r.labels[0] == "neutral", r.line(0)


def test_a_brow_raise_alone_is_no_confident_surprise():
    brows = read(browInnerUp=0.8, browOuterUp_=0.8)
    full = read(**FACES["surprise"])
    assert brows.labels[0] == "surprise"
    assert brows.confidence[0] < 0.5 < full.confidence[0]


def test_a_smile_without_the_cheek_raise_is_weaker_happiness():
    social = read(mouthSmile_=0.8)
    duchenne = read(mouthSmile_=0.8, cheekSquint_=0.6)
    assert social.labels[0] == duchenne.labels[0] == "happiness"
    assert social.confidence[0] < duchenne.confidence[0] - 0.2
    assert social.line(0) == f"happiness {social.confidence[0]:.2f}: AU12 lip corner puller 3.9"


def test_the_brow_lowerer_and_lip_stretcher_tell_fear_from_surprise():
    fear = dict(FACES["fear"])
    assert read(**fear).labels[0] == "fear"
    del fear["browDown_"], fear["mouthStretch_"]
    assert read(**fear).labels[0] == "surprise"


def test_the_brow_lowerer_alone_is_not_anger():
    """Concentration: AU4 without the lid tightener and lip tightener of anger."""
    r = read(browDown_=0.7)
    assert r.labels[0] != "anger" or r.confidence[0] < 0.3, r.line(0)


def test_a_smile_argues_against_sadness():
    sad = read(**FACES["sadness"])
    mixed = read(**FACES["sadness"], mouthSmile_=0.9)
    k = EXPRESSIONS.index("sadness")
    assert mixed.scores[0, k] < 0.4 * sad.scores[0, k]
    assert mixed.confidence[0] < 0.5 < sad.confidence[0]
    assert "(against: AU12 lip corner puller" in mixed.line(0, "sadness")


def test_confidence_grows_with_intensity():
    levels = np.linspace(0.05, 1.0, 20)
    readouts = [read(mouthSmile_=a, cheekSquint_=0.7 * a) for a in levels]
    labels = [r.labels[0] for r in readouts]
    conf = np.array([r.confidence_of("happiness")[0] for r in readouts])
    assert labels[0] == "neutral" and labels[-1] == "happiness"
    assert np.all(np.diff(conf) >= -1e-12)
    assert conf[-1] > conf[len(conf) // 4] + 0.5
    # Once happiness wins it never gives way to neutral again as the smile grows.
    first = labels.index("happiness")
    assert set(labels[first:]) == {"happiness"}


def test_the_evidence_line_names_the_aus_and_their_intensities():
    aus = np.zeros(18)
    aus[au("AU06")], aus[au("AU12")] = 2.1, 3.4
    r = read_expressions(aus)
    line = r.line(0)
    assert re.fullmatch(r"happiness 0\.\d\d: AU6 cheek raiser 2\.1, AU12 lip corner puller 3\.4",
                        line), line
    assert float(line.split()[1].rstrip(":")) == pytest.approx(r.confidence[0], abs=0.005)
    assert evidence_text("happiness", 0.86, aus) == \
        "happiness 0.86: AU6 cheek raiser 2.1, AU12 lip corner puller 3.4"


def test_active_aus_that_match_no_prototype_read_as_other():
    r = read(mouthPress_=0.9)
    assert r.labels[0] == OTHER and r.confidence[0] == 0.0
    assert r.line(0) == "other: AU23 lip tightener 4.5"  # 5 * (0.9 - 0.05) / 0.95


def test_contempt_needs_one_sided_lip_corners_when_weights_show_them():
    one = read(mouthDimpleLeft=0.7, mouthSmileLeft=0.3)
    both = read(mouthDimple_=0.7, mouthSmile_=0.3)
    k = EXPRESSIONS.index("contempt")
    assert one.scores[0, k] > both.scores[0, k]
    assert one.line(0).endswith("(one-sided)")
    assert "one-sided" not in both.line(0, "contempt")
    # The AUs alone combine the sides, so without weights the two read the same.
    assert read_expressions(face(mouthDimpleLeft=0.7)).scores[0, k] == \
        pytest.approx(read_expressions(face(mouthDimple_=0.7)).scores[0, k])
    assert one_sidedness(weights(mouthDimpleLeft=0.7, mouthSmileLeft=0.3))[0] == 1.0
    assert one_sidedness(weights(mouthSmile_=0.5))[0] == 0.0


def test_frames_without_a_face_get_no_label():
    aus = np.stack([face(**FACES["happiness"]), np.full(18, np.nan), face(), face()])
    r = read_expressions(aus, valid=[True, True, True, False])
    assert list(r.labels) == ["happiness", NO_FACE, "neutral", NO_FACE]
    assert np.isnan(r.confidence[[1, 3]]).all() and np.isnan(r.scores[[1, 3]]).all()
    assert list(r.valid) == [True, False, True, False]
    assert r.line(1) == NO_FACE


def test_aus_a_source_lacks_are_left_out_not_read_as_zero():
    """OpenFace has no AU28 intensity; a lab's CSV may lack more (here AU06)."""
    aus = face(**FACES["happiness"])
    aus[au("AU28")] = np.nan
    r = read_expressions(aus)
    assert r.labels[0] == "happiness" and r.confidence[0] > 0.9
    aus[au("AU06")] = np.nan  # the support is unknown: the score rests on AU12
    r = read_expressions(aus)
    assert r.labels[0] == "happiness" and r.scores[0, 0] > 0.9
    only_brows = np.full(18, np.nan)
    only_brows[[au("AU01"), au("AU02")]] = 3.5
    r = read_expressions(only_brows)
    # Without AU15 the brows could be sadness's as well: only surprise can be read.
    assert r.labels[0] == "surprise"
    assert np.isfinite(r.scores[0]).tolist() == [x in ("surprise", "neutral")
                                                  for x in EXPRESSIONS]
    assert unscored_aus(("AU28_r", "AU06_r", "AU06_c")) == {
        "happiness": ((), ("AU06",)), "contempt": ((), ("AU06",))}
    assert unscored_aus(("AU28_r",)) == {}
    lack = unscored_aus(("AU09_r", "AU15_r"))
    assert lack["sadness"] == (("AU15",), ())  # its core: sadness cannot be read
    assert lack["disgust"] == ((), ("AU09", "AU15"))  # AU10 still reads the core


def test_synthetic_expression_events_read_as_the_expression_they_stand_for():
    """The dataset generator's expression events are FACS co-activations too."""
    from imucap.datasets.expression_table import EVENTS

    expected = {"smile": "happiness", "social_smile": "happiness", "laugh": "happiness",
                "surprise": "surprise", "disgust": "disgust", "frown": "sadness",
                "smirk": "contempt", "blink": "neutral"}
    for event, label in expected.items():
        side = "Left" if event == "smirk" else "_"  # the generator makes a smirk one-sided
        values = {(k[:-1] + side if k.endswith("*") else k): v for k, v in EVENTS[event].items()}
        r = read(**values)
        assert r.labels[0] == label, (event, r.line(0))


def test_the_readout_rejects_shapes_that_do_not_fit():
    with pytest.raises(ValueError, match="18"):
        read_expressions(np.zeros((3, 17)))
    with pytest.raises(ValueError, match="validity"):
        read_expressions(np.zeros((3, 18)), valid=[True])
    with pytest.raises(ValueError, match="weights"):
        read_expressions(np.zeros((3, 18)), weights=np.zeros((2, 52)))


# --- over time --------------------------------------------------------------------------------


def frames(*parts: tuple[np.ndarray, int]) -> np.ndarray:
    return np.concatenate([np.repeat(row[None, :], n, axis=0) for row, n in parts])


def test_episodes_merge_flicker_and_keep_lost_faces():
    happy, neutral, lost = face(**FACES["happiness"]), face(), np.full(18, np.nan)
    aus = frames((neutral, 60), (happy, 50), (neutral, 3), (happy, 50), (lost, 2),
                 (neutral, 60))
    t = np.arange(len(aus)) / FPS
    eps = episodes(read_expressions(aus), t, min_duration_s=0.25)
    assert [e.label for e in eps] == ["neutral", "happiness", NO_FACE, "neutral"]
    smile = eps[1]
    assert (smile.start, smile.stop) == (60, 163)
    assert smile.start_s == pytest.approx(1.0) and smile.end_s == pytest.approx(163 / FPS)
    assert smile.confidence > 0.9 and 60 <= smile.peak < 163
    assert smile.evidence.startswith("happiness 0.9") and "AU12 lip corner puller" in smile.evidence
    assert eps[2].stop - eps[2].start == 2 and np.isnan(eps[2].confidence)
    # Episodes tile the input.
    assert eps[0].start_s == 0.0 and eps[-1].end_s == pytest.approx(len(aus) / FPS)
    assert all(a.end_s == pytest.approx(b.start_s) for a, b in zip(eps, eps[1:], strict=False))
    shares = label_shares(eps)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["happiness"] == pytest.approx(103 / len(aus))


def test_hysteresis_keeps_a_label_through_a_close_rival():
    """A smile that wavers: for 0.5 s a dimpler makes contempt score a little above."""
    smile = face(mouthSmile_=0.65)
    wavering = face(mouthSmile_=0.65, mouthDimple_=0.6)
    r = read_expressions(frames((smile, 60), (wavering, 30), (smile, 60)))
    raw = list(r.labels)
    assert raw[70] == "contempt"  # frame by frame, the rival wins
    k, c = EXPRESSIONS.index("happiness"), EXPRESSIONS.index("contempt")
    assert 0 < r.scores[70, c] - r.scores[70, k] < 0.1
    t = np.arange(len(raw)) / FPS
    assert [e.label for e in episodes(r, t, min_duration_s=0.0)] == ["happiness"]
    assert [e.label for e in episodes(r, t, min_duration_s=0.0, switch_margin=0.0)] == \
        ["happiness", "contempt", "happiness"]


def test_a_short_run_joins_the_neighbour_that_explains_it_better():
    happy, surprise = face(**FACES["happiness"]), face(**FACES["surprise"])
    blend = face(mouthSmile_=0.5, browInnerUp=0.8, browOuterUp_=0.8, eyeWide_=0.5)
    r = read_expressions(frames((happy, 40), (blend, 6), (surprise, 40)))
    t = np.arange(len(r)) / FPS
    eps = episodes(r, t, min_duration_s=0.3, switch_margin=0.0)
    assert [e.label for e in eps] == ["happiness", "surprise"]
    k = EXPRESSIONS.index("surprise")
    expected = 40 if r.scores[40, k] > r.scores[40, 0] else 46
    assert eps[1].start == expected


def test_episode_settings_are_checked():
    r = read_expressions(np.zeros((3, 18)))
    with pytest.raises(ValueError, match="times"):
        episodes(r, np.arange(2) / FPS)
    with pytest.raises(ValueError, match="negative"):
        episodes(r, np.arange(3) / FPS, min_duration_s=-1)
    assert episodes(read_expressions(np.zeros((0, 18))), np.zeros(0)) == []


def test_the_live_tracker_holds_a_label_until_another_one_lasts():
    tracker = ExpressionTracker(rate_hz=30.0, min_duration_s=0.3)
    happy, surprise = face(**FACES["happiness"]), face(**FACES["surprise"])
    shown = [tracker.update(a) for a in frames((happy, 30), (surprise, 3), (happy, 30))]
    assert set(shown) == {"happiness"}  # a 0.1 s blip does not show
    shown = [tracker.update(a) for a in frames((surprise, 30))]
    assert shown[0] == "happiness" and shown[-1] == "surprise"
    assert 9 <= shown.index("surprise") <= 20  # 0.3 s hold after the average has turned
    assert tracker.line().startswith("surprise 0.") and "AU2 outer brow raiser" in tracker.line()
    shown = [tracker.update(np.full(18, np.nan)) for _ in range(12)]
    assert shown[0] == "surprise" and shown[-1] == NO_FACE and tracker.line() == NO_FACE


# --- imucap expression ------------------------------------------------------------------------


def write_take(path, segments, *, fps=FPS):
    """A face track with known expression segments ``[(blendshapes, seconds), ...]``, written
    with imucap's own writer; NaN weights are frames where the tracker lost the face."""
    from imucap.export import FaceTrack, write_track

    rows = []
    for values, seconds in segments:
        w = np.full(52, np.nan, np.float32) if values is None else weights(**values)
        rows.extend([w] * round(seconds * fps))
    track = FaceTrack(np.arange(len(rows)) / fps, np.stack(rows), fps=fps, source="test take")
    write_track(path, track)
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["expression", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_expression_command_lists_episodes_and_writes_csv_and_json(tmp_path, capsys):
    take = write_take(tmp_path / "take.json", [
        ({}, 1.0), (FACES["happiness"], 1.5), ({}, 1.0), (FACES["surprise"], 1.5),
        (FACES["contempt"], 1.0), ({}, 0.5)])
    code, out, err = run_cli(capsys, take, "--csv", tmp_path / "f.csv", "--json",
                             tmp_path / "e.json")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "take of take.json: 390 frames, 6.5 s at 60 fps"
    episodes_shown = [ln for ln in lines if re.match(r"^\s*\d+\.\d\d-\s*\d+\.\d\d s  ", ln)]
    assert [re.sub(r"^\s*", "", ln)[:13] for ln in episodes_shown] == [
        "0.00-   1.00 ", "1.00-   2.50 ", "2.50-   3.50 ", "3.50-   5.00 ", "5.00-   6.00 ",
        "6.00-   6.50 "]
    assert "s  happiness 0.98: AU6 cheek raiser 2.9, AU12 lip corner puller 3.9" in \
        episodes_shown[1]
    assert "s  surprise " in episodes_shown[3] and "AU26 jaw drop 2.4" in episodes_shown[3]
    assert episodes_shown[4].endswith("(one-sided)")
    assert "time share: neutral 38 %, happiness 23 %, surprise 23 %, contempt 15 %" in out

    with open(tmp_path / "f.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["series", "timestamp", "label", "confidence", *EXPRESSIONS]
    assert len(rows) == 390 and rows[0]["series"] == "take"
    assert rows[90]["label"] == "happiness" and float(rows[90]["timestamp"]) == pytest.approx(1.5)
    assert float(rows[90]["happiness"]) > 0.9 and float(rows[90]["sadness"]) == 0.0

    doc = json.loads((tmp_path / "e.json").read_text())
    (series,) = doc["series"]
    assert series["name"] == "take" and series["frames"] == 390
    assert [e["label"] for e in series["episodes"]] == [
        "neutral", "happiness", "neutral", "surprise", "contempt", "neutral"]
    smile = series["episodes"][1]
    assert smile["start_s"] == 1.0 and smile["end_s"] == 2.5 and smile["confidence"] > 0.9
    assert smile["evidence"].startswith("happiness 0.98: AU6 cheek raiser")


def test_expression_command_flags_frames_without_a_face(tmp_path, capsys):
    take = write_take(tmp_path / "lost.csv", [
        (FACES["sadness"], 1.0), (None, 0.5), (FACES["sadness"], 1.0)])
    code, out, err = run_cli(capsys, take, "--json", tmp_path / "e.json")
    assert code == 0, err
    assert "150 frames, 2.5 s at 60 fps, 30 without a face" in out
    doc = json.loads((tmp_path / "e.json").read_text())
    eps = doc["series"][0]["episodes"]
    assert [e["label"] for e in eps] == ["sadness", NO_FACE, "sadness"]
    assert eps[1]["confidence"] is None and eps[1]["start_s"] == 1.0
    assert doc["series"][0]["frames_without_face"] == 30


OPENFACE_R = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14",
              "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45")


def test_expression_command_reads_openface_csv_and_says_what_it_lacks(tmp_path, capsys):
    """A CSV in OpenFace 2's layout (leading spaces, no AU28_r) whose lab left out AU06."""
    r_cols = [c for c in OPENFACE_R if c != "AU06"]
    header = ["frame", "face_id", "timestamp", "confidence", "success",
              *(f"{c}_r" for c in r_cols), *(f"{c}_c" for c in AU_NAMES)]
    lines = [", ".join(header)]
    for k in range(90):
        smiling = 30 <= k < 60
        success = 0 if k in (75, 76) else 1
        r = {c: 0.0 for c in r_cols}
        if smiling:
            r["AU12"] = 3.0
        c = {code: 1.0 if smiling and code == "AU12" else 0.0 for code in AU_NAMES}
        lines.append(", ".join([str(k + 1), "0", f"{k / 30:.3f}", "0.98", str(success),
                                *(f"{r[x]:.2f}" for x in r_cols),
                                *(f"{c[x]:.0f}" for x in AU_NAMES)]))
    path = tmp_path / "openface.csv"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(capsys, path, "--json", tmp_path / "e.json")
    assert code == 0, err
    assert "openface of openface.csv: 90 frames" in out and "2 without a face" in out
    assert "note: happiness is scored without AU06 (not in openface.csv)" in out
    doc = json.loads((tmp_path / "e.json").read_text())
    eps = doc["series"][0]["episodes"]
    assert [e["label"] for e in eps] == ["neutral", "happiness", "neutral", NO_FACE, "neutral"]
    assert eps[1]["start_s"] == 1.0 and eps[1]["end_s"] == 2.0
    assert eps[1]["evidence"].endswith(": AU12 lip corner puller 3.0")
    assert "AU06_r" in doc["series"][0]["missing"]


def test_expression_command_reads_a_dataset_session(tmp_path, capsys):
    from imucap.datasets.synth import synthesize

    synthesize(tmp_path / "ds", subjects=1, minutes=0.25, imu_rate_hz=100, placement="face6",
               seed=4)
    code, out, err = run_cli(capsys, tmp_path / "ds", "--session", "s000_00", "--no-model",
                             "--json", tmp_path / "e.json")
    assert code == 0, err
    assert out.startswith("truth of ")
    doc = json.loads((tmp_path / "e.json").read_text())
    assert [s["name"] for s in doc["series"]] == ["truth"]
    eps = doc["series"][0]["episodes"]
    assert eps and eps[0]["start_s"] == 0.0
    assert eps[-1]["end_s"] == pytest.approx(doc["series"][0]["duration_s"], abs=1e-3)


@pytest.mark.parametrize(("argv", "message"), [
    (["{tmp}/nope.csv"], "does not exist"),
    (["{take}", "--min-duration", "-1"], "--min-duration must be"),
    (["{take}", "--margin", "2"], "--margin"),
    (["{take}", "--csv", "{tmp}/no/such/dir/f.csv"], "does not exist"),
    (["{take}", "--csv", "{tmp}/same.txt", "--json", "{tmp}/same.txt"], "give two files"),
    (["{take}", "--session", "s000_00"], "--session"),
])
def test_expression_command_bad_input_is_one_line(tmp_path, capsys, argv, message):
    take = write_take(tmp_path / "take.json", [({}, 0.5)])
    args = [a.format(tmp=tmp_path, take=take) for a in argv]
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imucap: error: ") and message in lines[0], err


# --- stream --expression ----------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def face_frame(t: float, **values: float):
    from imucap.inference.engine import FaceFrame

    w = weights(**values)
    return FaceFrame(time_s=t, weights=w, confidence=1.0, aus=au_intensities(w))


def test_the_live_panel_logs_changes_and_redraws_a_terminal_at_most_5_times_a_second():
    from imucap.cli.stream_cmd import ExpressionPanel

    log, term = io.StringIO(), _Terminal()
    panels = [ExpressionPanel(30.0, stream=log), ExpressionPanel(30.0, stream=term)]
    script = [{}] * 30 + [FACES["happiness"]] * 60
    for k, values in enumerate(script):  # 3 s at 30 frames/s, drawn after every frame
        for panel in panels:
            panel.add(face_frame(k / 30, **values))
            panel.draw(k / 30, k / 30)
    for panel in panels:
        panel.close()
    logged = log.getvalue().splitlines()
    assert len(logged) == 2
    assert re.fullmatch(r"\s+0\.0 s  expression  neutral 1\.00", logged[0]), logged
    # The panel shows the moving average's AUs, just short of the smile's 2.9 and 3.9.
    assert re.fullmatch(r"\s+1\.\d s  expression  happiness 0\.\d\d: AU6 cheek raiser 2\.\d, "
                        r"AU12 lip corner puller 3\.\d", logged[1]), logged
    drawn = term.getvalue()
    assert 10 <= drawn.count("\r\x1b[K") <= 16  # 3 s at no more than 5 redraws a second
    assert drawn.endswith("\n") and drawn.rstrip("\n").rsplit("\r\x1b[K", 1)[1].startswith(
        "expression  happiness 0.")
    assert "\n" not in drawn.rstrip("\n")  # one line, rewritten in place


def test_stream_with_expression_shows_the_readout(capsys):
    pytest.importorskip("torch", reason="the [train] extra runs the model")
    code = main(["stream", "--device", "emulator:imusic11", "--expression", "--duration", "3",
                 "--steps", "1", "--fps", "30"])
    out, err = capsys.readouterr()
    assert code == 0, err
    shown = [ln for ln in err.splitlines() if "expression  " in ln]
    assert shown, err
    label = "|".join(re.escape(x) for x in (*EXPRESSIONS, OTHER, NO_FACE))
    assert all(re.match(rf"^\s*\d+\.\d s  expression  ({label})", ln) for ln in shown), shown
    assert "face frames in" in out


def test_episode_is_json_ready():
    e = Episode("happiness", 0, 3, 0.0, 0.05, 0.5, 1, "happiness 0.50")
    assert json.loads(json.dumps(e.to_dict(np.arange(3) / FPS)))["peak_s"] == \
        pytest.approx(1 / FPS, abs=1e-4)
