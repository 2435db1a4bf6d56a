"""The recording workflow as a user runs it, each step a real ``imucap`` process.

``imucap emulate`` serves an array on a pseudo-terminal and plays the same face as an iPhone
would over Live Link Face (its own clock, latency, jitter, chin taps); ``imucap record`` records
both; ``imucap session info/align`` inspect and re-align; ``imucap dataset build`` makes a
dataset; ``imucap train`` trains on it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from imucap.record.session_file import read_session
from imucap.sync.session_sync import SYNC_METADATA

from emulator_helpers import free_udp_port


def imucap(*args: str, stdin: str | None = None, timeout: float = 120
           ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imucap", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def record_session(folder: Path, subject: str, seconds: float, seed: int) -> Path:
    pty = folder / f"imu-{subject}"
    port = free_udp_port()
    emu = subprocess.Popen(
        [sys.executable, "-m", "imucap", "emulate", "--pty", str(pty), "--seed", str(seed),
         "--phone", f"livelink://127.0.0.1:{port}", "--phone-latency-ms", "70",
         "--phone-drift-ppm", "30", "--taps-every", "6", "--duration", str(seconds + 15)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not pty.exists():
            assert emu.poll() is None, emu.communicate()
            assert time.monotonic() < deadline, "the emulator did not start"
            time.sleep(0.1)
        rec = subprocess.Popen(
            [sys.executable, "-m", "imucap", "record", "--device", f"serial:{pty}",
             "--truth", f"livelink://:{port}", "--subject", subject, "--out", str(folder),
             "--name", f"{subject}_s1", "--notes", "test session"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(seconds / 2)
        rec.stdin.write("m halfway\n")
        rec.stdin.flush()
        time.sleep(seconds / 2)
        out, err = rec.communicate("q\n", timeout=60)
        assert rec.returncode == 0, err
    finally:
        emu.terminate()
        emu.communicate(timeout=20)
    path = folder / f"{subject}_s1.mcap"
    assert out.strip() == str(path), (out, err)
    assert "alignment (tap+xcorr)" in err, err
    return path


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sessions")
    paths = [record_session(folder, "P01", 16.0, seed=1),
             record_session(folder, "P02", 14.0, seed=2)]
    return folder, paths


def test_recorded_session_holds_everything(sessions):
    _, paths = sessions
    c = read_session(paths[0])
    assert c.complete and c.torn_bytes == 0
    s = c.session
    assert s["subject"] == "P01" and s["notes"] == "test session"
    assert s["device"]["chip"] == "ICM-42688-P" and s["device"]["firmware"]
    assert s["truth"]["kind"] == "livelink" and s["truth"]["host"] == "127.0.0.1"
    assert [p["name"] for p in s["placement"]["sites"]] == list(c.sites)
    assert [m["label"] for m in c.markers] == ["halfway"]
    assert c.imu.frames_lost == 0 and c.imu.n > 1200
    assert c.truth.n > 700
    sync = c.metadata[SYNC_METADATA]
    assert sync["alignment"]["residual_ms"] < 2.0
    # The phone's 70 ms latency (plus the smallest jitter) is what the alignment took off.
    assert -0.085 < sync["alignment"]["offset_s"] < -0.065
    # (The phone's 30 ppm drift needs a longer session to measure well: test_record_sync.)
    assert sync["truth_clock"]["source"] == "arrivals"


def test_session_info_and_realign(sessions):
    _, paths = sessions
    info = imucap("session", "info", str(paths[0]))
    assert info.returncode == 0, info.stderr
    assert "subject P01" in info.stdout and "alignment (tap+xcorr)" in info.stdout
    before = read_session(paths[0]).metadata[SYNC_METADATA]["alignment"]["offset_s"]
    again = imucap("session", "align", str(paths[0]))
    assert again.returncode == 0, again.stderr
    c = read_session(paths[0])
    assert c.complete and [m["label"] for m in c.markers] == ["halfway"]
    assert c.metadata[SYNC_METADATA]["alignment"]["offset_s"] == pytest.approx(before, abs=5e-4)


def test_replay_streams_a_session_like_a_device(sessions):
    _, paths = sessions
    run = imucap("stream", "--device", f"replay:{paths[1]}?speed=4", "--print", "--duration",
                 "2")
    assert run.returncode == 0, run.stderr
    assert "replay" in run.stdout


def test_dataset_build_and_train(sessions, tmp_path):
    pytest.importorskip("torch", reason="training needs PyTorch (make test installs it)")
    folder, _ = sessions
    out = tmp_path / "real"
    build = imucap("dataset", "build", str(folder), "--out", str(out))
    assert build.returncode == 0, build.stderr
    assert "P01_s1.mcap: 1 session(s)" in build.stdout, build.stdout
    info = json.loads((out / "info.json").read_text())
    assert info["source"] == "recorded" and info["complete"]
    assert sorted(info["splits"]["train"] + info["splits"]["val"]) == ["P01", "P02"]
    rows = info["generator"]["recordings"]
    assert all(r["residual_ms"] is not None and r["residual_ms"] < 2.0 for r in rows)
    from imucap.datasets.dataset import open_dataset

    ds = open_dataset(out, verify=True)
    s = ds.session(0)
    assert s.accel.shape[1] == 11 and s.blendshapes.shape[1] == 52
    # The dataset trains with no other change.
    run = imucap("train", "experiment=ci_tiny", f"data.path={out}",
                 f"trainer.out_dir={tmp_path / 'run'}", "trainer.max_steps=4",
                 "trainer.epochs=1", timeout=300)
    assert run.returncode == 0, run.stderr
    assert any((tmp_path / "run").rglob("*.safetensors"))


def test_record_refuses_bad_input_in_one_line(tmp_path):
    port = free_udp_port()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", port))
    try:
        busy = imucap("record", "--device", "emulator:imusic11", "--truth",
                      f"livelink://:{port}", "--subject", "P1", "--out", str(tmp_path),
                      "--duration", "1")
    finally:
        blocker.close()
    cases = [
        (busy, f"UDP port {port} is already in use"),
        (imucap("record", "--device", "emulator:imusic11", "--truth", "http://x",
                "--subject", "P1", "--out", str(tmp_path)), "--truth http://x"),
        (imucap("record", "--device", "emulator:imusic11", "--truth", "mediapipe:file:x.mp4",
                "--subject", "P1", "--out", str(tmp_path)), "--model-asset PATH"),
        (imucap("record", "--device", "emulator:imusic11", "--subject", "P 1",
                "--out", str(tmp_path)), "--subject 'P 1'"),
        (imucap("session", "info", str(tmp_path / "none.mcap")), "no session file at"),
        (imucap("dataset", "build", str(tmp_path / "empty"), "--out", str(tmp_path / "d")),
         "no session file or folder at"),
    ]
    for result, message in cases:
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and message in lines[0], result.stderr
    # Nothing half-made was left behind by the refused recordings.
    assert not list(tmp_path.glob("*.mcap"))


def test_read_only_output_folder_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only folders; this check needs an ordinary user")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    result = imucap("record", "--device", "emulator:imusic11", "--subject", "P1",
                    "--out", str(folder), "--duration", "1")
    assert result.returncode == 2 and "not writable" in result.stderr


ASSET = Path(__file__).resolve().parents[2] / "shared" / "assets" / "face_landmarker.task"


def make_video(path: Path, frames: list) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

    h, w = frames[0].shape[:2]
    proc = subprocess.Popen(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt",
         "rgb24", "-s", f"{w}x{h}", "-r", "10", "-i", "-", "-pix_fmt", "yuv420p", "-y",
         str(path)], stdin=subprocess.PIPE)
    proc.communicate(np.ascontiguousarray(np.stack(frames)).tobytes())
    assert proc.returncode == 0


@pytest.mark.skipif(not ASSET.exists(), reason=f"MediaPipe model asset absent ({ASSET})")
def test_record_with_mediapipe_on_a_video(tmp_path):
    pytest.importorskip("mediapipe", reason="the [mediapipe] extra is not installed")
    skimage = pytest.importorskip("skimage.data", reason="scikit-image ships the face photo")
    face = skimage.astronaut()[:320, 80:400]  # 320x320, the face in the middle
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 255, face.shape, dtype=np.uint8) for _ in range(8)]
    make_video(tmp_path / "take.mp4", [np.roll(face, k, axis=1) for k in range(12)] + noise)
    result = imucap("record", "--device", "emulator:imusic11", "--truth",
                    f"mediapipe:file:{tmp_path / 'take.mp4'}", "--model-asset", str(ASSET),
                    "--subject", "P3", "--out", str(tmp_path), "--name", "mp",
                    "--duration", "4")
    assert result.returncode == 0, result.stderr
    c = read_session(tmp_path / "mp.mcap")
    assert c.session["truth"]["kind"] == "mediapipe"
    # MediaPipe has no tongueOut: the session says so, and dataset build leaves it out.
    assert c.session["truth"]["unmeasured"] == [51]
    faces = np.all(np.isfinite(c.truth.weights), axis=1)
    assert c.truth.n == 20 and faces[:12].all() and not faces[12:].any()
    assert np.all(np.diff(c.truth.source_time_s) > 0)
    assert "truth_ended" in [e["kind"] for e in c.events]
    info = imucap("session", "info", str(tmp_path / "mp.mcap"))
    assert "20 frames, 8 without a face" in info.stdout, info.stdout


def test_guided_calibration_is_stored(tmp_path):
    result = imucap("record", "--device", "emulator:imusic11", "--subject", "P4",
                    "--out", str(tmp_path), "--name", "cal", "--calibrate", "--still-s", "1",
                    "--neutral-s", "1", "--duration", "0.5", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Calibration 1/3: still" in result.stderr
    c = read_session(tmp_path / "cal.mcap")
    cal = c.metadata["imucap.calibration"]
    bias = np.asarray(cal["still"]["gyro_bias_rad_s"])
    assert bias.shape == (11, 3) and cal["still"]["samples"] >= 90
    # The emulated face keeps moving, so the still step says the wearer moved.
    assert cal["still"]["still"] is False and "you moved" in result.stderr
    assert np.allclose(np.linalg.norm(cal["neutral"]["gravity_dir"], axis=1), 1.0, atol=1e-5)
    steps = [e.get("step") for e in c.events if e["kind"] == "calibration_step_started"]
    assert steps == ["still", "neutral"]
    assert [m["label"] for m in c.markers] == ["taps"]


def test_render_a_recording(sessions, tmp_path):
    pytest.importorskip("open3d", reason="rendering needs Open3D (pip install 'imucap[viewer]')")
    _, paths = sessions
    out = tmp_path / "rec.mp4"
    result = imucap("render", str(paths[0]), "--no-model", "-o", str(out), "--size", "320x240",
                    "--end", "1", "--png-dir", str(tmp_path / "png"), timeout=180)
    assert result.returncode == 0, result.stderr
    assert "31 frames 320x240 at 30 fps" in result.stdout, result.stdout
    assert out.stat().st_size > 1000 and len(list((tmp_path / "png").iterdir())) == 31
