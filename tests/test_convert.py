"""Offline inference over whole sessions, and ``imucap convert`` end to end: sessions through a
tiny model, takes between formats without one, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imucap.cli.main import main
from imucap.vocab import ARKIT_NAMES, au_intensities, index_of

FIXTURE = Path(__file__).parent / "fixtures" / "livelink_face_sample.csv"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from imucap.datasets.synth import synthesize

    path = tmp_path_factory.mktemp("convert") / "ds"
    synthesize(path, subjects=3, minutes=0.1, imu_rate_hz=100, placement="face6", seed=4)
    return path


@pytest.fixture(scope="module")
def ckpt(data, tmp_path_factory):
    pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")
    pytest.importorskip("hydra", reason="make test installs hydra-core")
    from imucap.models.config import compose_config
    from imucap.models.train import train

    out = tmp_path_factory.mktemp("convert") / "run"
    run = train(compose_config(["experiment=ci_tiny", f"data.path={data}",
                                f"trainer.out_dir={out}", "trainer.max_steps=6",
                                "trainer.epochs=1"]))
    return run / "best"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["convert", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def session_of(data, index=0):
    from imucap.datasets.dataset import open_dataset

    ds = open_dataset(data)
    return ds, ds.session(index)


# --- infer_session --------------------------------------------------------------------------------


def test_infer_session_covers_the_session_on_a_fixed_grid(data, ckpt):
    from imucap.inference.offline import FaceTrack, infer_session

    ds, s = session_of(data)
    seen = []
    track = infer_session(ckpt, s.imu_time_s, s.accel, s.gyro, ds.info.sites, threads=1,
                          source="s0", progress=lambda done, total: seen.append(done / total))
    assert isinstance(track, FaceTrack) and track.fps == 60.0 and track.source == "s0"
    np.testing.assert_allclose(np.diff(track.times), 1 / 60, atol=1e-9)
    assert abs(track.times[0] - s.imu_time_s[0]) <= 1 / 60
    assert abs(track.times[-1] - s.imu_time_s[-1]) <= 1 / 60 + 1 / 100  # the last IMU step
    assert track.weights.min() >= 0 and track.weights.max() <= 1
    assert track.aus.shape == (len(track), 18) and np.all(track.confidence == 1)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    slow = infer_session(ckpt, s.imu_time_s, s.accel, s.gyro, ds.info.sites, fps=30,
                         hop_frames=1, threads=1)
    np.testing.assert_allclose(np.diff(slow.times), 1 / 30, atol=1e-9)


def test_infer_session_is_deterministic_under_a_seed(data, ckpt):
    from imucap.inference.offline import infer_session

    ds, s = session_of(data, 1)
    n = 300  # 3 s
    args = (ckpt, s.imu_time_s[:n], s.accel[:n], s.gyro[:n], ds.info.sites)
    a = infer_session(*args, seed=3, threads=1)
    b = infer_session(*args, seed=3, threads=1)
    c = infer_session(*args, seed=4, threads=1)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.times, b.times)
    assert not np.array_equal(a.weights, c.weights)


def test_infer_session_refuses_bad_input_in_one_line(data, ckpt):
    from imucap.errors import ImucapError
    from imucap.inference.offline import infer_session

    ds, s = session_of(data)
    sites = ds.info.sites
    with pytest.raises(ImucapError, match="expected accel and gyro of shape"):
        infer_session(ckpt, s.imu_time_s, s.accel[:, :3], s.gyro, sites)
    with pytest.raises(ImucapError, match="strictly increasing"):
        infer_session(ckpt, s.imu_time_s[::-1], s.accel, s.gyro, sites)
    with pytest.raises(ImucapError, match="hop_frames"):
        infer_session(ckpt, s.imu_time_s, s.accel, s.gyro, sites, hop_frames=0)
    renamed = ("nose_tip",) + tuple(sites[1:])
    with pytest.raises(ImucapError, match="does not know nose_tip") as info:
        infer_session(ckpt, s.imu_time_s, s.accel, s.gyro, renamed)
    assert "\n" not in str(info.value)


# --- convert: sessions through the model ----------------------------------------------------------


def test_convert_one_session_matches_infer_session(data, ckpt, tmp_path, capsys):
    from imucap.export import read_json_track
    from imucap.inference.offline import infer_session

    out = tmp_path / "s.json"
    code, text, err = cli(capsys, data, "--session", "s001_00", "-o", out, "--model", ckpt,
                          "--threads", "1", "--seed", "2")
    assert code == 0, err
    assert f"wrote {out}" in text and list(tmp_path.iterdir()) == [out]
    ds, s = session_of(data, "s001_00")
    want = infer_session(ckpt, s.imu_time_s, s.accel, s.gyro, ds.info.sites, seed=2, threads=1)
    got = read_json_track(out)
    np.testing.assert_allclose(got.weights, want.weights, atol=1e-6)
    np.testing.assert_allclose(got.times, want.times, atol=1e-6)
    assert got.source == "ds/s001_00"


def test_convert_a_dataset_writes_one_file_per_session(data, ckpt, tmp_path, capsys):
    from imucap.export import read_gltf_track, read_openface_csv

    code, text, err = cli(capsys, data, "-o", tmp_path / "face.au.csv", "--model", ckpt,
                          "--threads", "1", "--hop", "8")
    assert code == 0, err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["face_s000_00.au.csv", "face_s001_00.au.csv", "face_s002_00.au.csv"]
    assert text.count("wrote ") == 3
    aus = read_openface_csv(tmp_path / "face_s002_00.au.csv")
    assert aus.frame[0] == 1 and len(aus.frame) > 300
    # A session file inside its dataset converts the same way, here to an animated GLB.
    code, _, err = cli(capsys, data / "sessions" / "s000_00.npz", "-o", tmp_path / "s0.glb",
                       "--model", ckpt, "--threads", "1", "--hop", "8")
    assert code == 0, err
    track = read_gltf_track(tmp_path / "s0.glb")
    assert len(track) > 300 and track.weights.shape[1] == 52


def test_convert_smooth_ms_sets_the_output_filter(data, ckpt, tmp_path, capsys):
    from imucap.export import read_json_track

    tracks = {}
    for ms in ("0", "80"):
        out = tmp_path / f"s{ms}.json"
        code, _, err = cli(capsys, data, "--session", "s000_00", "-o", out, "--model", ckpt,
                           "--smooth-ms", ms)
        assert code == 0, err
        tracks[ms] = read_json_track(out).weights
    jitter = {ms: np.abs(np.diff(w, n=2, axis=0)).mean() for ms, w in tracks.items()}
    assert jitter["80"] < 0.5 * jitter["0"]
    code, _, err = cli(capsys, data, "-o", tmp_path / "x.json", "--model", ckpt,
                       "--smooth-ms", "-5")
    assert code == 2 and "--smooth-ms" in err and err.count("\n") == 1


def test_convert_session_errors_are_one_line(data, ckpt, tmp_path, capsys):
    stray = tmp_path / "loose.npz"
    stray.write_bytes((data / "sessions" / "s000_00.npz").read_bytes())
    cases = [
        ((data, "--session", "nope", "-o", tmp_path / "x.csv", "--model", ckpt),
         "no session 'nope'"),
        ((stray, "-o", tmp_path / "x.csv", "--model", ckpt), "read with its dataset"),
        ((data, "-o", tmp_path / "x.csv", "--model", tmp_path / "none"), "does not exist"),
        ((data, "-o", tmp_path / "x.csv", "--model", ckpt, "--hop", "0"), "--hop"),
    ]
    for argv, message in cases:
        code, _, err = cli(capsys, *argv)
        assert code == 2 and message in err, err
        assert err.count("\n") == 1 and err.startswith("imucap: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loose.npz"]


# --- convert: takes, no model ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["take.glb", "take.gltf", "take.json", "take.au.csv",
                                  "take.csv"])
def test_convert_the_apps_csv_to_every_format(tmp_path, capsys, name):
    from imucap.export import read_openface_csv, read_track

    code, text, err = cli(capsys, FIXTURE, "-o", tmp_path / name)
    assert code == 0, err
    assert "24 frames" in text
    source = read_track(FIXTURE)
    if name.endswith(".au.csv"):
        aus = read_openface_csv(tmp_path / name)
        assert len(aus.frame) == 24
        return
    back = read_track(tmp_path / name)
    np.testing.assert_allclose(back.weights, source.weights, atol=1e-5)
    np.testing.assert_allclose(back.times - back.times[0], source.times, atol=1e-5)
    written = sorted(p.name for p in tmp_path.iterdir())
    if name.endswith(".json"):  # the JSON track carries its AUs itself
        assert written == [name]
        return
    # Live Link CSV and glTF have no room for AUs: they go beside, in OpenFace's columns.
    assert written == sorted([name, "take.au.csv"]) and "AUs in take.au.csv" in text
    aus = read_openface_csv(tmp_path / "take.au.csv")
    keep = np.isfinite(aus.intensities[0])  # all but AU28_r, which OpenFace never writes
    assert keep.sum() == 17
    np.testing.assert_allclose(aus.intensities[:, keep], au_intensities(source.weights)[:, keep],
                               atol=0.006)


def test_convert_without_aus_writes_only_the_file_asked_for(tmp_path, capsys):
    code, text, err = cli(capsys, FIXTURE, "-o", tmp_path / "take.glb", "--no-aus")
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["take.glb"] and "AUs in" not in text


def test_convert_a_blendshape_csv_and_the_format_option(tmp_path, capsys):
    path = tmp_path / "mediapipe.csv"
    rows = ["timestamp_ms,_neutral,jawOpen,eyeBlinkLeft"] + \
        [f"{k * 33.333:.3f},0.9,{k / 20:.3f},0.1" for k in range(20)]
    path.write_text("\n".join(rows) + "\n")
    code, _, err = cli(capsys, path, "-o", tmp_path / "ll.csv", "--model", "ignored")
    assert code == 0 and "--model is not used" in err
    header = (tmp_path / "ll.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and len(header) == 63
    code, _, err = cli(capsys, path, "-o", tmp_path / "aus.csv", "--format", "au")
    assert code == 0, err
    assert (tmp_path / "aus.csv").read_text().startswith("frame, face_id, timestamp")
    doc_code, _, _ = cli(capsys, path, "-o", tmp_path / "t.json")
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc_code == 0 and doc["fps"] == pytest.approx(30.0, abs=0.01)
    assert doc["weights"][19][ARKIT_NAMES.index("jawOpen")] == pytest.approx(0.95)
    assert doc["weights"][0][index_of("eyeBlinkLeft")] == pytest.approx(0.1)


def test_convert_with_a_rig_of_ones_own(tmp_path, capsys):
    from imucap.datasets.builtin_rig import builtin_rig
    from imucap.datasets.rig import Rig
    from imucap.datasets.rig_io import load_rig, save_glb

    full = builtin_rig()
    present = full.present.copy()
    present[index_of("tongueOut")] = False
    deltas = full.deltas.copy()
    deltas[index_of("tongueOut")] = 0
    save_glb(Rig(full.neutral, full.faces, deltas, present, name="avatar"),
             tmp_path / "avatar.glb")
    code, _, err = cli(capsys, FIXTURE, "-o", tmp_path / "out.glb", "--rig",
                       tmp_path / "avatar.glb")
    assert code == 0, err
    assert "lacks tongueOut" in err  # the rig's report, as a note
    assert load_rig(tmp_path / "out.glb").missing == ("tongueOut",)


@pytest.mark.parametrize("output, message", [
    ("face.avi", "video is written as .mp4 (H.264)"),
    ("face.fbx", "cannot tell the format of 'face.fbx'"),
    ("missing/face.glb", "does not exist: create it first"),
])
def test_convert_output_errors_are_one_line(tmp_path, capsys, output, message):
    code, _, err = cli(capsys, FIXTURE, "-o", tmp_path / output)
    assert code == 2 and message in err
    assert err.count("\n") == 1 and err.startswith("imucap: error: ")
    assert not list(tmp_path.iterdir())


def test_convert_input_errors_are_one_line(tmp_path, capsys):
    au = tmp_path / "aus.csv"
    au.write_text("frame, face_id, timestamp, confidence, success, AU01_r, AU01_c\n"
                  "1, 0, 0.0, 0.9, 1, 1.0, 1\n")
    for argv, message in [
        ((tmp_path / "none.csv", "-o", tmp_path / "x.glb"), "does not exist"),
        ((au, "-o", tmp_path / "x.glb"), "AUs cannot be turned back into blendshapes"),
        ((FIXTURE, "--session", "s1", "-o", tmp_path / "x.glb"), "is a take"),
        ((FIXTURE, "-o", tmp_path / "x.glb", "--fps", "-1"), "--fps"),
    ]:
        code, _, err = cli(capsys, *argv)
        assert code == 2 and message in err, err
        assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aus.csv"]


def test_convert_is_registered_with_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", "--help"])
    assert info.value.code == 0
    assert ".au.csv" in capsys.readouterr().out


def test_convert_to_mp4_renders_the_take(tmp_path, capsys):
    pytest.importorskip("open3d", reason="video needs the [viewer] extra (Open3D)")
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    code, out, err = cli(capsys, FIXTURE, "-o", tmp_path / "take.mp4", "--fps", "10")
    assert code == 0, err
    assert "wrote" in out and "take.mp4" in out
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "take.mp4"))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(540, 960, 3) for f in reader]
    assert meta["size"] == (960, 540) and len(frames) >= 2
    # a face, not a blank frame: skin-coloured pixels in the middle of the picture
    middle = frames[0][100:400, 100:600].reshape(-1, 3).astype(int)
    skin = (middle[:, 0] > middle[:, 2] + 30) & (middle[:, 0] > 120)
    assert skin.mean() > 0.1
    assert not (tmp_path / "take.mp4.part").exists()
