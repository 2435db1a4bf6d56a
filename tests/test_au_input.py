"""Tests for imucap.analysis.au_input and the OpenFace CSV reader: any input as AU series."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from imucap.analysis.au_input import (
    AuSeries,
    is_openface_csv,
    load_au_series,
    series_from_openface,
    series_from_track,
)
from imucap.errors import ImucapError
from imucap.export import ExportError, FaceTrack, read_openface_csv, write_track
from imucap.vocab import AU_NAMES, au_intensities, dict_to_weights

SESSION = "s000_00"


def weights(**values: float) -> np.ndarray:
    return dict_to_weights(values, strict=True).weights


def k(code: str) -> int:
    return AU_NAMES.index(code)


# --- OpenFace 2's full FeatureExtraction layout ------------------------------------------------


def openface_header(*, drop: tuple[str, ...] = ()) -> list[str]:
    """Every column FeatureExtraction writes, in its order (OpenFace wiki, Output Format)."""
    cols = ["frame", "face_id", "timestamp", "confidence", "success"]
    cols += [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]
    cols += [f"eye_lmk_{a}_{i}" for a in "xyXYZ" for i in range(56)]
    cols += [f"pose_{a}" for a in ("Tx", "Ty", "Tz", "Rx", "Ry", "Rz")]
    cols += [f"{a}_{i}" for a in "xyXYZ" for i in range(68)]
    cols += ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty"] + [f"p_{i}" for i in range(34)]
    cols += [f"{c}_r" for c in AU_NAMES if c != "AU28"] + [f"{c}_c" for c in AU_NAMES]
    return [c for c in cols if c not in drop]


def write_openface(path, rows: list[dict[str, float]], *, drop: tuple[str, ...] = (),
                   header: list[str] | None = None) -> None:
    """An OpenFace-style file: ', ' between names and values, as OpenFace writes them;
    columns not given in a row are 0 (landmarks and the like)."""
    header = header or openface_header(drop=drop)
    lines = [", ".join(header)]
    for r in rows:
        lines.append(", ".join(f"{r.get(c, 0.0):g}" for c in header))
    path.write_text("\n".join(lines) + "\n")


def of_row(i: int, *, fps: float = 30.0, success: int = 1, **aus: float) -> dict[str, float]:
    row = {"frame": i + 1, "face_id": 0, "timestamp": round(i / fps, 3),
           "confidence": 0.98 if success else 0.0, "success": success, "pose_Tz": 400.0}
    row.update(aus)
    return row


def test_reads_openface2_output_with_every_column(tmp_path):
    path = tmp_path / "video.csv"
    rows = [of_row(0, AU12_r=3.4, AU12_c=1, AU06_r=2.1, AU06_c=1),
            of_row(1, success=0),  # OpenFace writes zeros where it lost the face
            of_row(2, AU45_r=1.5, AU45_c=1, AU28_c=1)]
    write_openface(path, rows)
    assert path.read_text().startswith("frame, face_id, timestamp")  # leading spaces
    aus = read_openface_csv(path)
    assert aus.missing == ("AU28_r",)  # OpenFace has no AU28 intensity model
    assert aus.extra == () and not aus.bare_intensity
    assert aus.intensities[0, k("AU12")] == pytest.approx(3.4)
    assert aus.presence[2, k("AU28")] == 1 and np.isnan(aus.intensities[:, k("AU28")]).all()
    assert aus.success.tolist() == [True, False, True]
    assert aus.face_id.tolist() == [0, 0, 0]

    s = series_from_openface(aus, path.name)
    assert s.name == "openface" and s.weights is None and s.missing == ("AU28_r",)
    assert s.valid.tolist() == [True, False, True]
    assert np.isnan(s.intensities[1]).all() and np.isnan(s.presence[1]).all()
    assert s.presence[0, k("AU06")] == 1 and s.presence[0, k("AU45")] == 0
    np.testing.assert_allclose(s.times, [0.0, 0.033, 0.067])
    assert s.fps == pytest.approx(2 / 0.067, abs=1e-3)
    assert s.notes == ()


def test_a_missing_column_is_named_and_its_presence_comes_from_the_intensity(tmp_path):
    path = tmp_path / "partial.csv"
    write_openface(path, [of_row(0, AU12_r=2.5), of_row(1, AU12_r=0.5)],
                   drop=("AU12_c", "AU45_r", "AU45_c"))
    aus = read_openface_csv(path)
    assert aus.missing == ("AU28_r", "AU45_r", "AU12_c", "AU45_c")
    s = series_from_openface(aus, path.name, threshold=1.0)
    assert s.presence[:, k("AU12")].tolist() == [1.0, 0.0]
    assert np.isnan(s.presence[:, k("AU45")]).all()  # neither column: unknown, not absent
    assert np.isnan(s.intensities[:, k("AU45")]).all()
    assert any("no presence column for AU12" in n for n in s.notes)
    s2 = series_from_openface(aus, path.name, threshold=3.0)
    assert s2.presence[:, k("AU12")].tolist() == [0.0, 0.0]


def test_another_tools_au_set_uses_the_overlap(tmp_path):
    # LibreFace / py-feat style: bare AU names, an AU OpenFace lacks (AU27), no presence.
    path = tmp_path / "other.csv"
    path.write_text("frame,timestamp,AU01,AU06,AU12,AU27\n"
                    "0,0.0,0.5,2.0,3.0,1.0\n"
                    "1,0.04,0.0,0.0,1.2,0.0\n")
    aus = read_openface_csv(path)
    assert aus.bare_intensity and aus.extra == ("AU27",)
    assert aus.intensities[0, k("AU06")] == pytest.approx(2.0)
    assert "AU12_c" in aus.missing and "AU12_r" not in aus.missing and "AU02_r" in aus.missing
    s = series_from_openface(aus, path.name)
    assert s.presence[:, k("AU12")].tolist() == [1.0, 1.0]
    assert s.presence[:, k("AU01")].tolist() == [0.0, 0.0]
    assert np.isnan(s.intensities[:, k("AU02")]).all()
    assert any("bare AUxx columns" in n for n in s.notes)
    assert any("AU27" in n for n in s.notes)


def test_bare_columns_beside_suffixed_ones_are_extra(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("timestamp,AU12_r,AU12,AU43_c\n0.0,2.0,0.9,1\n0.1,0.0,0.1,0\n")
    aus = read_openface_csv(path)
    assert aus.extra == ("AU12", "AU43_c") and not aus.bare_intensity
    assert aus.intensities[:, k("AU12")].tolist() == [2.0, 0.0]


@pytest.mark.parametrize(("text", "message"), [
    ("timestamp,AU27_r,AU43_c\n0,1,1\n", "AU27_r, AU43_c"),
    ("timestamp,gaze_0_x\n0,1\n", "needs 'timestamp' and AUxx_r"),
    ("frame,AU12_r\n1,1\n", "needs 'timestamp'"),
    ("timestamp,AU12_r,AU12_r\n0,1,1\n", "appears twice"),
    ("timestamp,AU12_r\n0,1\n0.1\n", "line 3: 1 values where the header names 2"),
    ("timestamp,AU12_r\n0,strong\n", "line 2: text where a number belongs"),
    ("", "is empty"),
])
def test_bad_au_files_give_one_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ExportError, match=message) as info:
        read_openface_csv(path)
    assert "\n" not in str(info.value)


def test_several_faces_use_the_first_and_say_so(tmp_path):
    path = tmp_path / "multi.csv"
    rows = []
    for i in range(4):
        rows.append({**of_row(i, AU12_r=2.0, AU12_c=1), "face_id": 0})
        rows.append({**of_row(i, AU04_r=3.0, AU04_c=1), "face_id": 1})
    write_openface(path, rows)
    s = series_from_openface(read_openface_csv(path), path.name)
    assert len(s) == 4 and s.presence[:, k("AU12")].tolist() == [1.0] * 4
    assert not s.presence[:, k("AU04")].any()
    assert any("2 faces" in n for n in s.notes)


def test_timestamps_must_increase(tmp_path):
    path = tmp_path / "order.csv"
    write_openface(path, [of_row(1), of_row(0)])
    with pytest.raises(ImucapError, match="timestamps do not increase"):
        load_au_series(path)


# --- tracks and takes ---------------------------------------------------------------------------


def make_track(n: int = 120, fps: float = 60.0) -> FaceTrack:
    w = np.zeros((n, 52), np.float32)
    w[10:40] = weights(mouthSmileLeft=0.8, mouthSmileRight=0.8)
    w[50:59] = weights(eyeBlinkLeft=0.9, eyeBlinkRight=0.9)  # a 150 ms blink
    w[80:90] = np.nan  # tracking lost
    conf = np.ones(n, np.float32)
    conf[100:105] = 0.0  # no usable sensor
    return FaceTrack(np.arange(n) / fps + 5.0, w, confidence=conf, fps=fps, source="t")


def test_series_from_track_flags_frames_without_a_face():
    s = series_from_track(make_track(), "take")
    bad = np.zeros(120, bool)
    bad[80:90] = bad[100:105] = True
    assert s.valid.tolist() == (~bad).tolist()
    assert np.isnan(s.intensities[bad]).all() and np.isnan(s.presence[bad]).all()
    assert np.isnan(s.weights[bad]).all()
    assert s.times[0] == 0.0 and s.times[-1] == pytest.approx(119 / 60)
    expected = au_intensities(weights(mouthSmileLeft=0.8, mouthSmileRight=0.8))[k("AU12")]
    assert s.intensities[10:40, k("AU12")] == pytest.approx(np.full(30, expected))
    assert s.presence[:, k("AU45")][~bad].sum() == 9  # blink events, not closed frames
    assert s.missing == () and s.duration_s == pytest.approx(2.0)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_a_take_file_reads_frame_by_frame(tmp_path, suffix):
    path = write_track(tmp_path / f"take{suffix}", make_track())
    (s,) = load_au_series(path)
    assert s.name == "take" and s.source == path.name and len(s) == 120 and s.fps == 60.0
    lost = np.zeros(120, bool)
    lost[80:90] = True
    if suffix == ".json":  # JSON keeps the confidence; Live Link CSV has none
        lost[100:105] = True
    assert (~s.valid).tolist() == lost.tolist()
    assert s.presence[:, k("AU12")][s.valid].sum() == 30


def test_a_take_can_be_resampled(tmp_path):
    path = write_track(tmp_path / "take.json", make_track())
    (s,) = load_au_series(path, fps=30.0)
    assert s.fps == 30.0 and len(s) == 60 and s.times[1] == pytest.approx(1 / 30)
    assert any("resampled" in n for n in s.notes)


def test_openface_csv_is_told_from_a_take_by_its_header(tmp_path):
    take = write_track(tmp_path / "take.csv", make_track())
    au = write_track(tmp_path / "aus.au.csv", make_track())
    assert not is_openface_csv(take) and is_openface_csv(au)
    (s,) = load_au_series(au)
    assert s.name == "openface" and s.missing == ("AU28_r",)
    assert s.valid.sum() == 105  # imucap writes success 0 for lost frames, as OpenFace does


# --- sessions -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from imucap.datasets.synth import synthesize

    path = tmp_path_factory.mktemp("au_input") / "ds"
    synthesize(path, subjects=1, minutes=0.03, imu_rate_hz=100, seed=1)  # 1.8 s
    return path


def test_a_session_without_the_model_gives_the_truth(dataset):
    (s,) = load_au_series(dataset, session=SESSION, no_model=True)
    assert s.name == "truth" and s.fps == 60.0 and s.valid.all()
    assert s.weights.shape == (len(s), 52) and s.source.endswith(SESSION)
    (s30,) = load_au_series(dataset / "sessions" / f"{SESSION}.npz", no_model=True, fps=30)
    assert len(s30) == pytest.approx(len(s) / 2, abs=1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"session": "s999_99"}, "s999_99"),
    ({"session": SESSION, "no_model": True, "model": "default"}, "leave out --model"),
    ({"session": SESSION, "fps": 0}, "--fps must be between"),
    ({"session": SESSION, "steps": 0}, "--steps must be between"),
    ({"session": SESSION, "threshold": 0}, "--threshold must be"),
])
def test_bad_session_options_say_what_is_wrong(dataset, kwargs, message):
    with pytest.raises(ImucapError, match=message):
        load_au_series(dataset, **kwargs)


def test_bad_inputs_say_what_is_wrong(tmp_path):
    with pytest.raises(ImucapError, match="does not exist"):
        load_au_series(tmp_path / "nope.csv")
    take = write_track(tmp_path / "take.csv", make_track())
    with pytest.raises(ImucapError, match="--session picks a session"):
        load_au_series(take, session=SESSION)
    lost = FaceTrack(np.arange(5) / 60, np.full((5, 52), np.nan, np.float32))
    with pytest.raises(ImucapError, match="none of its 5 frames has a face"):
        load_au_series(write_track(tmp_path / "lost.json", lost))
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ImucapError):
        load_au_series(tmp_path / "stuff")
    (tmp_path / "header.csv").write_text("frame, timestamp, AU12_r, AU12_c\n")
    with pytest.raises(ImucapError, match="has a header but no rows"):
        load_au_series(tmp_path / "header.csv")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ImucapError, match="cannot read"):
        load_au_series(tmp_path / "x.txt")


def test_the_series_fields_are_the_documented_ones():
    names = [f for f in AuSeries.__dataclass_fields__]
    assert names[:9] == ["name", "times", "intensities", "presence", "valid", "fps", "source",
                         "missing", "weights"]


def test_importing_it_loads_no_heavy_extra():
    code = ("import sys, imucap.analysis.au_input, imucap.analysis.au_summary, "
            "imucap.cli.au_cmd; print(sorted(m for m in ('torch', 'matplotlib', 'open3d') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_without_torch_a_session_says_which_extra_or_no_model(dataset):
    # As in an install without the [train] extra: the truth alone still works.
    code = ("import sys; sys.modules['torch'] = None\n"
            "from imucap.cli.main import main\n"
            f"a = main(['au', {str(dataset)!r}, '--session', {SESSION!r}])\n"
            f"b = main(['au', {str(dataset)!r}, '--session', {SESSION!r}, '--no-model'])\n"
            "print('codes', a, b)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "codes 2 0" in proc.stdout, proc.stderr
    assert proc.stderr.count("imucap: error:") == 1
    assert "pip install 'imucap[train]'" in proc.stderr and "--no-model" in proc.stderr
