"""Tests for imucap.analysis.au_summary and ``imucap au``: numbers checked against takes whose
AU content is known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imucap.analysis.au_input import load_au_series
from imucap.analysis.au_summary import (
    HISTOGRAM_EDGES,
    MIN_BLINK_SPAN_S,
    format_report,
    summarise,
)
from imucap.cli.main import main
from imucap.export import FaceTrack, write_track
from imucap.vocab import AU_NAMES, au_intensities, dict_to_weights

FPS = 60.0
SMILE = dict(mouthSmileLeft=0.8, mouthSmileRight=0.8)
CHEEK = dict(cheekSquintLeft=0.6, cheekSquintRight=0.6)
BLINK = dict(eyeBlinkLeft=0.9, eyeBlinkRight=0.9)
BLINK_FRAMES = 9  # 150 ms at 60 fps: a blink by the detector's 50-500 ms rule


def weights(**values: float) -> np.ndarray:
    return dict_to_weights(values, strict=True).weights


def k(code: str) -> int:
    return AU_NAMES.index(code)


def intensity(code: str, **values: float) -> float:
    return float(au_intensities(weights(**values))[k(code)])


class Known:
    """A take whose AUs are known: a smile (AU12) over one span, cheeks raised (AU6) inside
    part of it, blinks at known frames, and a span without a face."""

    def __init__(self, seconds: float, blinks: int, lost: tuple[int, int]) -> None:
        n = int(seconds * FPS)
        self.n = n
        w = np.zeros((n, 52), np.float32)
        self.smile = (int(5 * FPS), int(25 * FPS))
        self.cheek = (int(10 * FPS), int(15 * FPS))
        w[slice(*self.smile)] += weights(**SMILE)
        w[slice(*self.cheek)] += weights(**CHEEK)
        # Blinks every 4 s from 2 s on, where nothing else moves the eyes.
        self.blink_starts = [int((2 + 4 * i) * FPS) for i in range(blinks)]
        for s in self.blink_starts:
            w[s:s + BLINK_FRAMES] = np.maximum(w[s:s + BLINK_FRAMES], weights(**BLINK))
        self.lost = lost
        w[slice(*lost)] = np.nan
        self.weights = w
        self.face = n - (lost[1] - lost[0])

    def track(self) -> FaceTrack:
        return FaceTrack(np.arange(self.n) / FPS, self.weights, fps=FPS, source="known")


@pytest.fixture(scope="module")
def long_take(tmp_path_factory):
    # 70 s (a blink rate needs 60 s with a face), 17 blinks, 1 s lost at 40-41 s.
    known = Known(70.0, blinks=17, lost=(int(40 * FPS), int(41 * FPS)))
    folder = tmp_path_factory.mktemp("au_summary")
    return known, write_track(folder / "long.json", known.track())


def run_au(capsys, *argv) -> tuple[int, str, str]:
    code = main(["au", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_numbers_follow_from_the_take(long_take, tmp_path, capsys):
    known, path = long_take
    out_json = tmp_path / "summary.json"
    code, out, err = run_au(capsys, path, "--json", out_json)
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["format"] == "imucap-au-summary" and doc["histogram_edges"] == [0, 1, 2, 3, 4, 5]
    (s,) = doc["series"]
    assert s["name"] == "take" and s["frames"] == known.n
    assert s["face_frames"] == known.face and s["no_face_frames"] == 60
    aus = {a["au"]: a for a in s["aus"]}
    assert aus["AU12"]["intensity_column"] == "AU12_r"
    assert aus["AU45"]["presence_column"] == "AU45_c"

    n_smile = known.smile[1] - known.smile[0]
    n_cheek = known.cheek[1] - known.cheek[0]
    n_blink = BLINK_FRAMES * len(known.blink_starts)
    assert aus["AU12"]["present_frames"] == n_smile
    assert aus["AU12"]["occurrence"] == pytest.approx(n_smile / known.face, abs=1e-4)
    assert aus["AU06"]["occurrence"] == pytest.approx(n_cheek / known.face, abs=1e-4)
    assert aus["AU45"]["present_frames"] == n_blink
    assert aus["AU01"]["occurrence"] == 0 and aus["AU01"]["mean_intensity_present"] is None
    assert aus["AU12"]["mean_intensity_present"] == pytest.approx(intensity("AU12", **SMILE),
                                                                  abs=1e-4)
    # Histogram: the smile's frames in the bin of its intensity, the rest below grade A.
    bin12 = int(np.digitize(intensity("AU12", **SMILE), HISTOGRAM_EDGES[1:-1]))
    expected = [0] * 5
    expected[0] = known.face - n_smile
    expected[bin12] = n_smile
    assert aus["AU12"]["histogram"] == expected
    assert sum(aus["AU45"]["histogram"][1:]) == n_blink  # closed frames are AU45 grade A+

    co = s["cooccurrence"]
    assert co["measure"].startswith("P(column AU present | row AU present)")
    m = np.array([[np.nan if v is None else v for v in row] for row in co["matrix"]])
    assert m[k("AU06"), k("AU12")] == pytest.approx(1.0)  # the cheeks rise only in the smile
    assert m[k("AU12"), k("AU06")] == pytest.approx(n_cheek / n_smile, abs=1e-4)
    blinks_in_smile = sum(known.smile[0] <= b < known.smile[1] for b in known.blink_starts)
    assert m[k("AU12"), k("AU45")] == pytest.approx(
        blinks_in_smile * BLINK_FRAMES / n_smile, abs=1e-4)
    assert np.isnan(m[k("AU01")]).all()  # never present: no row
    assert co["joint_frames"][k("AU06")][k("AU12")] == n_cheek

    b = s["blinks"]
    assert b["count"] == 17 and b["method"] == "eyeBlink events"
    assert b["face_time_s"] == pytest.approx(known.face / FPS)
    assert b["rate_per_min"] == pytest.approx(17 / (known.face / FPS) * 60, abs=1e-3)
    assert b["note"] == ""

    # The text report says the same, labelled.
    assert out.startswith(f"== take: {path.name} ==")
    assert "60 without a face" in out and "left out" in out
    assert f"blinks: 17 in {known.face / FPS:.1f} s with a face = " \
           f"{17 / (known.face / FPS) * 60:.1f} per minute" in out
    line12 = next(line for line in out.splitlines() if line.startswith("AU12 "))
    assert "Lip Corner Puller" in line12 and f"{100 * n_smile / known.face:.1f}%" in line12


def test_the_presence_threshold_is_an_option(long_take, capsys, tmp_path):
    _, path = long_take
    out_json = tmp_path / "t.json"
    # The cheeks (AU6) reach about grade B-C, the smile (AU12) grade D: at 3.5 only the smile.
    assert 1.0 < intensity("AU06", **CHEEK) < 3.5 < intensity("AU12", **SMILE)
    code, _, err = run_au(capsys, path, "--threshold", "3.5", "--json", out_json)
    assert code == 0, err
    aus = {a["au"]: a for a in json.loads(out_json.read_text())["series"][0]["aus"]}
    assert aus["AU06"]["present_frames"] == 0 and aus["AU12"]["present_frames"] > 0


def test_a_short_take_has_no_blink_rate_and_says_why(tmp_path, capsys):
    known = Known(30.0, blinks=5, lost=(0, 0))
    path = write_track(tmp_path / "short.csv", known.track())
    out_json = tmp_path / "s.json"
    code, out, err = run_au(capsys, path, "--json", out_json)
    assert code == 0, err
    b = json.loads(out_json.read_text())["series"][0]["blinks"]
    assert b["count"] == 5 and b["rate_per_min"] is None
    assert f"needs at least {MIN_BLINK_SPAN_S:g} s" in b["note"]
    assert "too short for a blink rate (needs at least 60 s with a face, has 30.0 s)" in out
    assert "all with a face" in out


def openface_file(path, *, seconds: float, fps: float, blink_at_s: list[float],
                  smile: tuple[float, float], lost: tuple[float, float]) -> dict[str, int]:
    """An OpenFace-layout CSV (AU part, with OpenFace's spaces and a gaze column in between):
    AU45_c runs of 4 frames at the blinks, AU12 over ``smile``, success 0 over ``lost``."""
    r_cols = [f"{c}_r" for c in AU_NAMES if c != "AU28"]
    c_cols = [f"{c}_c" for c in AU_NAMES]
    header = ["frame", "face_id", "timestamp", "confidence", "success", "gaze_0_x"] \
        + r_cols + c_cols
    n = int(seconds * fps)
    lines = [", ".join(header)]
    counts = {"smile": 0, "lost": 0, "blink": 0}
    for i in range(n):
        t = i / fps
        ok = not lost[0] <= t < lost[1]
        vals = dict.fromkeys(r_cols + c_cols, 0.0)
        if ok and smile[0] <= t < smile[1]:
            vals["AU12_r"], vals["AU12_c"] = 3.4, 1.0
            counts["smile"] += 1
        if ok and any(b <= t < b + 4 / fps - 1e-9 for b in blink_at_s):
            vals["AU45_r"], vals["AU45_c"] = 2.5, 1.0
            counts["blink"] += 1
        counts["lost"] += not ok
        lines.append(", ".join([str(i + 1), "0", f"{t:.3f}", "0.98" if ok else "0.00",
                                "1" if ok else "0", "0.1"]
                               + [f"{vals[c]:.2f}" for c in r_cols]
                               + [f"{vals[c]:.1f}" for c in c_cols]))
    path.write_text("\n".join(lines) + "\n")
    return counts


def test_openface_csv_blinks_are_au45_onsets(tmp_path, capsys):
    path = tmp_path / "video.csv"
    blinks = [3.0 + 5.0 * i for i in range(14)]  # 14 blinks in 70 s
    counts = openface_file(path, seconds=70.0, fps=30.0, blink_at_s=blinks, smile=(10.0, 20.0),
                           lost=(50.0, 52.0))
    out_json = tmp_path / "of.json"
    code, out, err = run_au(capsys, path, "--json", out_json)
    assert code == 0, err
    (s,) = json.loads(out_json.read_text())["series"]
    assert s["name"] == "openface" and s["missing"] == ["AU28_r"]
    assert s["no_face_frames"] == counts["lost"] == 60
    face = 2100 - 60
    aus = {a["au"]: a for a in s["aus"]}
    assert aus["AU12"]["present_frames"] == counts["smile"] == 300
    assert aus["AU12"]["mean_intensity_present"] == pytest.approx(3.4)
    assert aus["AU28"]["mean_intensity"] is None and aus["AU28"]["histogram"] == [0] * 5
    assert aus["AU28"]["occurrence"] == 0  # its presence column is there
    assert s["blinks"]["method"] == "AU45_c onsets"
    assert s["blinks"]["count"] == 14
    assert s["blinks"]["rate_per_min"] == pytest.approx(14 / (face / 30.0) * 60, abs=1e-3)
    assert "not in the source: AU28_r" in out
    assert "AU28  Lip Suck" in out and "(no intensity in the source)" in out


def test_a_session_summarises_truth_and_prediction(tmp_path_factory, capsys):
    from imucap.datasets.synth import synthesize

    path = tmp_path_factory.mktemp("au_session") / "ds"
    # The shipped model's placement, so it runs; 2 DDIM steps keep it quick.
    synthesize(path, subjects=1, minutes=0.03, imu_rate_hz=100, placement="imusic11", seed=2)
    out_json = path.parent / "sess.json"
    code, out, err = run_au(capsys, path, "--session", "s000_00", "--steps", "2",
                            "--json", out_json)
    if code == 2 and "[train]" in err:
        pytest.skip("the model needs the [train] extra")
    assert code == 0, err
    series = json.loads(out_json.read_text())["series"]
    assert [s["name"] for s in series] == ["truth", "prediction"]
    assert series[0]["frames"] == series[1]["frames"]
    assert "== truth: ds/s000_00 ==" in out and "== prediction: ds/s000_00 ==" in out
    code, out, err = run_au(capsys, path, "--session", "s000_00", "--no-model")
    assert code == 0, err
    assert "== truth:" in out and "== prediction:" not in out


def test_plots_are_written(long_take, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _, path = long_take
    code, out, err = run_au(capsys, path, "--plot", tmp_path / "figs")
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert files == ["take_cooccurrence.png", "take_histograms.png"]
    assert all((tmp_path / "figs" / f).read_bytes()[:4] == b"\x89PNG" for f in files)
    assert "wrote" in out


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "does not exist"),
    ("empty", "no data rows"),
    ("no_face", "none of its 30 frames has a face"),
    ("json_folder", "output folder"),
    ("threshold", "--threshold must be in (0, 5]"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, setup, message):
    path = tmp_path / "take.csv"
    extra: list[str] = []
    if setup == "empty":
        path.write_text("")
    elif setup == "no_face":
        path = write_track(tmp_path / "lost.json", FaceTrack(
            np.arange(30) / FPS, np.full((30, 52), np.nan, np.float32), fps=FPS))
    elif setup in ("json_folder", "threshold"):
        path = write_track(path, Known(2.0, blinks=0, lost=(0, 0)).track())
        extra = (["--json", str(tmp_path / "nope" / "s.json")] if setup == "json_folder"
                 else ["--threshold", "0"])
    code, out, err = run_au(capsys, path, *extra)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("imucap: error: ") and message in err


def test_summarise_refuses_a_series_without_a_face():
    from imucap.analysis.au_input import series_from_track
    from imucap.errors import ImucapError

    track = FaceTrack(np.arange(4) / FPS, np.zeros((4, 52), np.float32),
                      confidence=np.zeros(4, np.float32), fps=FPS)
    with pytest.raises(ImucapError, match="nothing to summarise"):
        summarise(series_from_track(track, "take"))


def test_report_of_a_summary_object(long_take):
    _, path = long_take
    (series,) = load_au_series(path)
    text = format_report([summarise(series)])
    assert text.count("== ") == 1 and "co-occurrence: P(column AU present | row AU present)" \
        in text
