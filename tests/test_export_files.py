"""Face tracks to files: Live Link Face CSV, OpenFace AU CSV and JSON, read back by readers;
output paths that cannot work fail in one line."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from imucap.errors import ImucapError
from imucap.export import (
    ExportError,
    FaceTrack,
    openface_header,
    output_format,
    read_json_track,
    read_livelink_csv,
    read_openface_csv,
    read_track,
    write_json_track,
    write_livelink_csv,
    write_openface_csv,
    write_track,
)
from imucap.vocab import (
    ARKIT_NAMES,
    AU_NAMES,
    LIVELINK_CSV_COLUMNS,
    au_columns,
    au_intensities,
    index_of,
)

FIXTURE = Path(__file__).parent / "fixtures" / "livelink_face_sample.csv"


def make_track(n: int = 240, *, start_s: float = 100.0, seed: int = 0, **kwargs) -> FaceTrack:
    """A smooth made-up face at 60 fps with one blink (frames 60-74) and a jaw opening."""
    rng = np.random.default_rng(seed)
    t = start_s + np.arange(n) / 60.0
    w = np.clip(0.3 + 0.25 * np.sin(t[:, None] * rng.uniform(0.5, 3, 52)
                                      + rng.uniform(0, 6, 52)), 0, 1).astype(np.float32)
    blink = np.zeros(n)
    blink[60:75] = 0.95
    w[:, index_of("eyeBlinkLeft")] = w[:, index_of("eyeBlinkRight")] = blink
    w[:, index_of("jawOpen")] = np.linspace(0, 0.8, n)
    conf = np.ones(n, np.float32)
    conf[:5] = 0.0  # no usable sensor yet
    return FaceTrack(times=t, weights=w, confidence=conf, fps=60.0, source="made up", **kwargs)


# --- the track type ---


def test_face_track_checks_shapes_and_fills_defaults():
    track = FaceTrack(times=np.arange(3) / 60, weights=np.zeros((3, 52)))
    assert track.confidence.tolist() == [1.0, 1.0, 1.0] and track.fps == 60.0
    assert track.weights.dtype == np.float32 and track.names == ARKIT_NAMES
    assert track.au_intensities().shape == (3, 18)
    with pytest.raises(ValueError, match="52"):
        FaceTrack(times=np.arange(3) / 60, weights=np.zeros((3, 51)))
    with pytest.raises(ValueError, match="increasing"):
        FaceTrack(times=np.array([0.0, 0.0, 1.0]), weights=np.zeros((3, 52)))
    with pytest.raises(ValueError, match="aus"):
        FaceTrack(times=np.arange(3) / 60, weights=np.zeros((3, 52)), aus=np.zeros((3, 17)))


def test_au_presence_takes_au45_from_blink_detection():
    track = make_track()
    presence = track.au_presence()
    au45 = AU_NAMES.index("AU45")
    assert presence[60:75, au45].all() and not presence[:60, au45].any()
    # Eyes held shut for a second are not a blink, although the intensity says closed.
    held = track.weights.copy()
    held[60:120, index_of("eyeBlinkLeft")] = 1.0
    long = FaceTrack(times=track.times, weights=held, fps=60.0)
    assert long.au_intensities()[90, au45] == 5.0
    assert not long.au_presence()[:, au45].any()


# --- Live Link Face CSV ---


def test_livelink_csv_has_the_apps_columns_and_timecodes(tmp_path):
    track = make_track(head_ypr=np.full((240, 3), 0.1, np.float32))
    path = write_livelink_csv(tmp_path / "take.csv", track)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Timecode", "BlendShapeCount", *LIVELINK_CSV_COLUMNS]
    assert len(rows[0]) == 63 and len(LIVELINK_CSV_COLUMNS) == 61
    assert all(len(r) == 63 and r[1] == "61" for r in rows[1:])
    assert len(rows) == 1 + len(track)
    # 100 s at 60 fps: 00:01:40, frame 0; the next rows count frames.
    assert rows[1][0] == "00:01:40:00.000" and rows[2][0] == "00:01:40:01.000"
    assert rows[61][0] == "00:01:41:00.000"
    assert float(rows[1][2 + LIVELINK_CSV_COLUMNS.index("HeadYaw")]) == pytest.approx(0.1)
    assert not list(tmp_path.glob("*.part"))


def test_livelink_csv_round_trips(tmp_path):
    track = make_track()
    back = read_livelink_csv(write_livelink_csv(tmp_path / "take.csv", track))
    assert len(back) == len(track) and back.fps == 60.0
    np.testing.assert_allclose(back.times, track.times - track.times[0], atol=1e-6)
    np.testing.assert_allclose(back.weights, track.weights, atol=1e-5)


def test_livelink_timecodes_read_back_exactly_on_the_frame_grid(tmp_path):
    # k / 60 in floating point is often a hair below frame k: the timecode must still say k.
    times = np.arange(7200) / 60.0
    track = FaceTrack(times=times, weights=np.zeros((len(times), 52)), fps=60.0)
    back = read_livelink_csv(write_livelink_csv(tmp_path / "grid.csv", track))
    np.testing.assert_allclose(back.times, times, atol=1e-7)
    assert ".1000" not in (tmp_path / "grid.csv").read_text()


def test_reads_the_iphone_apps_csv_fixture(tmp_path):
    track = read_track(FIXTURE)
    assert len(track) == 24 and track.fps == 60.0
    np.testing.assert_allclose(track.times, np.arange(24) / 60, atol=1e-6)
    assert track.weights[10, index_of("eyeBlinkLeft")] == pytest.approx(0.94)
    assert track.weights[23, index_of("jawOpen")] == pytest.approx(0.52)
    assert track.head_ypr[0, 0] == pytest.approx(0.05)
    # Through our writer and back: every value and every timecode step survives.
    again = read_track(write_track(tmp_path / "again.csv", track))
    np.testing.assert_allclose(again.weights, track.weights, atol=1e-6)
    np.testing.assert_allclose(again.head_ypr, track.head_ypr, atol=1e-6)
    np.testing.assert_allclose(again.times, track.times, atol=1e-6)


# --- OpenFace AU CSV ---


def test_au_csv_header_is_openfaces(tmp_path):
    path = write_openface_csv(tmp_path / "aus.au.csv", make_track())
    first = path.read_text().splitlines()[0]
    # OpenFace writes ", " between names: the sequence columns, then its AU layout.
    assert first == ", ".join(["frame", "face_id", "timestamp", "confidence", "success",
                               *au_columns()])
    assert openface_header()[5:] == au_columns()
    assert "AU28_r" not in first and "AU28_c" in first
    assert len(au_columns()) == 35


def test_au_csv_round_trips_with_openfaces_number_format(tmp_path):
    track = make_track()
    path = write_openface_csv(tmp_path / "aus.au.csv", track)
    row = path.read_text().splitlines()[10].split(", ")
    assert row[:5] == ["10", "0", "0.150", "1.00", "1"]  # frame from 1, time from 0
    assert all(len(v.split(".")[1]) == 2 for v in row[5:22])  # intensities: 2 decimals
    assert set(row[22:]) <= {"0.0", "1.0"}  # presence: 1 decimal
    aus = read_openface_csv(path)
    assert aus.columns == openface_header()
    np.testing.assert_array_equal(aus.frame, np.arange(1, 241))
    np.testing.assert_allclose(aus.timestamp, track.times - track.times[0], atol=5e-4)
    ok = track.confidence > 0
    assert aus.success.tolist() == ok.tolist()
    expected = au_intensities(track.weights)
    au28 = AU_NAMES.index("AU28")
    others = [k for k in range(18) if k != au28]
    np.testing.assert_allclose(aus.intensities[ok][:, others], expected[ok][:, others],
                               atol=5e-3 + 1e-6)
    assert np.isnan(aus.intensities[:, au28]).all()  # OpenFace has no AU28 intensity
    np.testing.assert_array_equal(aus.presence[ok], track.au_presence()[ok])
    assert not aus.presence[~ok].any() and not np.nan_to_num(aus.intensities[~ok]).any()


def test_reads_openface_csv_with_other_columns(tmp_path):
    # OpenFace's own output carries gaze and pose columns between the sequence and AU columns.
    path = tmp_path / "openface.csv"
    path.write_text("frame, face_id, timestamp, confidence, success, gaze_0_x, pose_Tx, "
                    "AU01_r, AU45_r, AU01_c, AU45_c\n"
                    "1, 0, 0.000, 0.98, 1, 0.1, 12.5, 1.25, 0.00, 1, 0\n"
                    "2, 0, 0.033, 0.97, 1, 0.1, 12.6, 0.50, 3.10, 0, 1\n")
    aus = read_openface_csv(path)
    assert aus.intensities[0, AU_NAMES.index("AU01")] == pytest.approx(1.25)
    assert aus.presence[1].tolist()[AU_NAMES.index("AU45")] == 1
    assert np.isnan(aus.intensities[0, AU_NAMES.index("AU12")])
    with pytest.raises(ExportError, match="Action Unit CSV"):
        read_track(path)  # AUs cannot be turned back into blendshapes


# --- JSON ---


def test_json_follows_the_documented_schema_and_round_trips(tmp_path):
    track = make_track(n=30, head_ypr=np.zeros((30, 3)))
    path = write_json_track(tmp_path / "face.json", track)
    doc = json.loads(path.read_text())
    assert doc["format"] == "imucap-face-track" and doc["version"] == 1
    assert doc["names"] == list(ARKIT_NAMES) and doc["au_names"] == list(AU_NAMES)
    assert doc["fps"] == 60.0 and len(doc["times"]) == 30 and doc["times"][0] == 100.0
    assert np.shape(doc["weights"]) == (30, 52) and np.shape(doc["aus"]) == (30, 18)
    # OpenFace's names for the AU columns, and presence beside intensity.
    assert doc["au_columns"]["aus"][AU_NAMES.index("AU20")] == "AU20_r"
    assert doc["au_columns"]["au_presence"][-1] == "AU45_c"
    np.testing.assert_array_equal(doc["au_presence"], track.au_presence())
    assert 0 < np.sum(doc["au_presence"]) < 30 * 18
    assert np.shape(doc["head_ypr"]) == (30, 3) and "left_eye_ypr" not in doc
    back = read_json_track(path)
    np.testing.assert_allclose(back.times, track.times, atol=1e-6)
    np.testing.assert_allclose(back.weights, track.weights, atol=1e-6)
    np.testing.assert_allclose(back.aus, track.au_intensities(), atol=1e-6)
    np.testing.assert_allclose(back.confidence, track.confidence)
    assert back.source == "made up"
    assert read_track(path).fps == 60.0


def test_json_columns_are_matched_by_name(tmp_path):
    path = tmp_path / "few.json"
    path.write_text(json.dumps({"format": "imucap-face-track", "version": 1, "fps": 30,
                                "names": ["jawOpen", "eyeBlinkLeft"], "times": [0, 0.5],
                                "weights": [[0.5, 0.1], [0.6, 0.2]]}))
    track = read_json_track(path)
    assert track.weights[1, index_of("jawOpen")] == pytest.approx(0.6)
    assert track.weights[1, index_of("eyeBlinkLeft")] == pytest.approx(0.2)
    assert track.aus is None and track.fps == 30


# --- paths and formats ---


@pytest.mark.parametrize("name, fmt", [("a.csv", "livelink"), ("A.CSV", "livelink"),
                                       ("a.au.csv", "au"), ("a.json", "json"),
                                       ("a.glb", "glb"), ("a.gltf", "gltf")])
def test_the_extension_picks_the_format(name, fmt):
    assert output_format(name) == fmt


def test_format_option_and_its_checks():
    assert output_format("aus.csv", "au") == "au"
    with pytest.raises(ExportError, match="writes .glb"):
        output_format("face.csv", "glb")
    with pytest.raises(ExportError, match="unknown format"):
        output_format("face.csv", "fbx")


@pytest.mark.parametrize("name, message", [
    ("face.mp4", "video is rendered, not written from a track: use imucap render"),
    ("face.avi", r"video is written as .mp4 \(H.264\)"),
    ("face.fbx", "cannot tell the format of 'face.fbx'"),
    ("face", "cannot tell the format"),
])
def test_unusable_extensions_fail_in_one_line(tmp_path, name, message):
    with pytest.raises(ExportError, match=message) as info:
        write_track(tmp_path / name, make_track(n=3))
    assert isinstance(info.value, ImucapError) and "\n" not in str(info.value)


def test_missing_or_unusable_output_folders_fail_in_one_line(tmp_path, monkeypatch):
    track = make_track(n=3)
    with pytest.raises(ExportError, match="does not exist: create it first") as info:
        write_track(tmp_path / "nope" / "face.json", track)
    assert "\n" not in str(info.value)
    (tmp_path / "d.json").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        write_track(tmp_path / "d.json", track)
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="is not a folder"):
        write_track(tmp_path / "file" / "face.csv", track)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked
                        else real_access(p, mode))
    with pytest.raises(ExportError, match="is not writable") as info:
        write_track(locked / "face.glb", track)
    assert "\n" not in str(info.value) and not list(locked.iterdir())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permissions do not stop root (the monkeypatched test covers it)")
def test_a_read_only_folder_fails_in_one_line(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="is not writable"):
            write_track(locked / "face.csv", make_track(n=3))
    finally:
        locked.chmod(0o700)


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import imucap.export.base as base

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(base.os, "replace", boom)
    with pytest.raises(ExportError, match="cannot write .*No space left on device"):
        write_track(tmp_path / "face.json", make_track(n=3))
    assert list(tmp_path.iterdir()) == []
