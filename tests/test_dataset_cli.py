"""``imucap dataset synth|info|plot`` as a user runs them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

IMUCAP = [sys.executable, "-m", "imucap"]


def run(*args, timeout=240):
    return subprocess.run([*IMUCAP, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "synth"
    result = run("dataset", "synth", "--subjects", "4", "--minutes", "0.25", "--placement",
                 "imusic11", "--out", str(out), "--rate-hz", "100", "--workers", "2")
    assert result.returncode == 0, result.stderr
    return out, result


def test_synth_writes_a_dataset_the_loader_reads(made):
    out, result = made
    assert "4 sessions" in result.stdout and "100%" in result.stderr
    from imucap.datasets.dataset import WindowDataset, open_dataset

    ds = open_dataset(out)
    assert ds.info.complete and len(ds) == 4 and len(ds.info.sites) == 11
    windows = WindowDataset(ds, split="train", window_s=2.0, hop_s=1.0)
    item = windows[0]
    assert item["imu"].shape == (200, 11, 6) and item["blendshapes"].shape[1] == 52
    assert np.isfinite(item["imu"]).all()


def test_info_says_what_is_inside(made):
    out, _ = made
    result = run("dataset", "info", str(out))
    assert result.returncode == 0, result.stderr
    for text in ("11 sites at 100 Hz", "ICM-42688-P", "4 subjects", "train", "clips:"):
        assert text in result.stdout


def test_plot_writes_a_picture(made, tmp_path):
    out, _ = made
    png = tmp_path / "clip.png"
    result = run("dataset", "plot", str(out), "--clip", "1", "--seconds", "10", "-o", str(png))
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


@pytest.mark.parametrize("args, message", [
    (["dataset", "synth", "--subjects", "0", "--minutes", "1", "--out", "{tmp}/x"], "subjects"),
    (["dataset", "synth", "--subjects", "2", "--minutes", "1", "--out", "{tmp}/x",
      "--chip", "MPU-6050"], "unknown IMU chip"),
    (["dataset", "synth", "--subjects", "2", "--minutes", "1", "--out", "{tmp}/x",
      "--placement", "nowhere"], "unknown placement"),
    (["dataset", "info", "{tmp}/none"], "{tmp}/none"),
    (["dataset", "plot", "{made}", "--clip", "99"], "--clip 99 does not exist"),
])
def test_bad_input_is_one_line(made, tmp_path, args, message):
    out, _ = made
    args = [a.replace("{tmp}", str(tmp_path)).replace("{made}", str(out)) for a in args]
    result = run(*args, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imucap: error:"), result.stderr
    assert message.replace("{tmp}", str(tmp_path)) in lines[0]


def test_synth_from_real_takes_drives_the_imus_from_them(tmp_path):
    from imucap.datasets.dataset import open_dataset
    from imucap.datasets.takes import Take, write_livelink_csv
    from imucap.vocab import index_of

    t = np.arange(600) / 60.0  # 10 s at 60 fps, as the iPhone app records
    jaw = np.zeros((len(t), 52), np.float32)
    jaw[:, index_of("jawOpen")] = 0.5 - 0.5 * np.cos(2 * np.pi * 1.0 * t)
    write_livelink_csv(tmp_path / "jaw.csv", Take(t, jaw))
    head = np.zeros((len(t), 3))
    head[:, 0] = 0.3 * np.sin(2 * np.pi * 0.5 * t)  # yaw, radians
    write_livelink_csv(tmp_path / "turn.csv", Take(t, np.zeros((len(t), 52), np.float32),
                                                   head_ypr=head))
    out = tmp_path / "fromtakes"
    result = run("dataset", "synth", "--takes", str(tmp_path / "jaw.csv"),
                 str(tmp_path / "turn.csv"), "--placement", "imusic11+head", "--out", str(out),
                 "--rate-hz", "200", "--workers", "1")
    assert result.returncode == 0, result.stderr
    ds = open_dataset(out)
    sites = ds.info.sites
    jaw_s = ds.session("jaw_jaw")
    assert np.allclose(jaw_s.blendshapes, jaw, atol=1e-6)  # the take itself is the truth
    motion = np.degrees(np.abs(jaw_s.gyro).mean(axis=(0, 2)))
    chin, brow = motion[sites.index("mentalis")], motion[sites.index("frontalis_l")]
    assert chin > 5 * brow
    turn = ds.session("turn_turn")
    rates = np.linalg.norm(turn.gyro, axis=-1).mean(axis=0)
    assert np.allclose(rates, rates.mean(), rtol=0.1)  # the head turns every sensor alike
    expected = 0.3 * 2 * np.pi * 0.5 * 2 / np.pi  # mean |d yaw/dt| of the sine, rad/s
    assert rates.mean() == pytest.approx(expected, rel=0.1)


def test_synth_with_magnetometer_orientation_and_tissue_lag(tmp_path):
    from imucap.datasets.dataset import open_dataset

    out = tmp_path / "magq"
    result = run("dataset", "synth", "--subjects", "3", "--minutes", "0.1", "--out", str(out),
                 "--rate-hz", "100", "--mag", "--quat", "--tissue-lag-ms", "15",
                 "--workers", "1")
    assert result.returncode == 0, result.stderr
    ds = open_dataset(out)
    assert ds.info.mag_range_ut == 4900 and ds.info.generator["tissue_lag_s"] == 0.015
    s = ds.session(0)
    field = np.linalg.norm(s.mag, axis=-1)
    assert 30 < np.median(field) < 65  # the Earth's 47 µT, give or take hard iron
    assert np.allclose(np.linalg.norm(s.quat, axis=-1), 1.0, atol=2e-4)


def test_session_files_carry_optional_audio(tmp_path):
    from imucap.datasets.dataset import SessionRecord, load_session_file, save_session

    n, m = 100, 30
    rec = SessionRecord(
        imu_time_s=np.arange(n) / 100.0, accel=np.zeros((n, 2, 3), np.int16),
        gyro=np.zeros((n, 2, 3), np.int16), blendshape_time_s=np.arange(m) / 30.0,
        blendshapes=np.zeros((m, 52), np.float32), head_rotvec=np.zeros((m, 3), np.float32),
        head_pos=np.zeros((m, 3), np.float32),
        audio=(np.sin(np.arange(16000) / 10) * 10000).astype(np.int16),
        audio_rate_hz=np.array(16000.0), audio_start_s=np.array(0.05))
    save_session(tmp_path / "a.npz", rec)
    back = load_session_file(tmp_path / "a.npz")
    assert np.array_equal(back.audio, rec.audio) and float(back.audio_rate_hz) == 16000.0
    assert back.mag is None and back.quat is None
    broken = SessionRecord(**{**rec.arrays(), "audio_rate_hz": None})
    from imucap.datasets.dataset import DatasetError

    with pytest.raises(DatasetError, match="audio needs audio, audio_rate_hz and audio_start_s"):
        save_session(tmp_path / "b.npz", broken)


def test_synth_on_your_own_rig_reports_what_it_lacks(tmp_path):
    from pathlib import Path

    from imucap.datasets.builtin_rig import builtin_rig
    from imucap.datasets.rig_io import save_glb

    glb = tmp_path / "avatar.glb"
    save_glb(builtin_rig(), glb)
    result = run("dataset", "synth", "--subjects", "2", "--minutes", "0.05", "--rig", str(glb),
                 "--out", str(tmp_path / "a"), "--rate-hz", "100", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "52 of 52 blendshapes" in result.stdout
    reference = Path(__file__).resolve().parents[2] / "shared" / "assets" / \
        "arkit_reference_blendshapes.zip"
    if not reference.exists():
        pytest.skip("../shared/assets is absent (no real ARKit rig to try)")
    result = run("dataset", "synth", "--subjects", "2", "--minutes", "0.05", "--rig",
                 str(reference), "--out", str(tmp_path / "b"), "--rate-hz", "100",
                 "--workers", "1", "--placement", "imusic11")
    assert result.returncode == 0, result.stderr
    assert "lacks tongueOut" in result.stdout


def test_piping_into_head_is_not_an_error(made):
    out, _ = made
    proc = subprocess.Popen([*IMUCAP, "dataset", "info", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before anything is written, as with `| head -0`
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, stderr
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr
