"""MediaPipe truth on a real photo and real videos: blendshapes by name, times, pacing, errors.

Runs MediaPipe's real Face Landmarker on scikit-image's astronaut photo and on short MP4s made
from it with ffmpeg. Needs the model bundle beside the repository (``../shared/assets/``);
skips with the reason when it or one of the libraries is absent.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from imucap.truth import mediapipe as mpt
from imucap.truth.base import TruthError
from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES

ASSET = Path(__file__).resolve().parents[2] / "shared" / "assets" / "face_landmarker.task"
FPS = 12
SIZE = 192  # pixels; small keeps MediaPipe and ffmpeg fast, the face is still found


@pytest.fixture(scope="module")
def asset() -> Path:
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (imucap[mediapipe])")
    pytest.importorskip("cv2", reason="OpenCV is not installed (comes with mediapipe)")
    if not ASSET.is_file():
        pytest.skip(f"MediaPipe Face Landmarker bundle absent: {ASSET}")
    return ASSET


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """The astronaut photo (a real face), RGB uint8, full size."""
    skdata = pytest.importorskip("skimage.data", reason="scikit-image is not installed")
    return np.ascontiguousarray(skdata.astronaut())


@pytest.fixture(scope="module")
def small_photo(photo, asset) -> np.ndarray:
    import cv2

    return np.ascontiguousarray(cv2.resize(photo, (SIZE, SIZE), interpolation=cv2.INTER_AREA))


def write_video(path: Path, frames: np.ndarray, fps: int = FPS, setpts: str | None = None) -> Path:
    """Encodes RGB frames as H.264 MP4 at ``fps`` (``setpts``: an ffmpeg expression for VFR)."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg is not installed")
    n, h, w, _ = frames.shape
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    if setpts is not None:
        cmd += ["-vf", f"setpts='{setpts}'", "-fps_mode", "passthrough"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, small_photo) -> Path:
    """12 frames, 1 s at 12 fps, of the photo moving 2 px right per frame."""
    frames = np.stack([np.roll(small_photo, 2 * i, axis=1) for i in range(FPS)])
    return write_video(tmp_path_factory.mktemp("video") / "face.mp4", frames)


# Presentation times of the no-face video: 10 fps, then 5 fps (variable frame rate).
NO_FACE_TIMES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0]


@pytest.fixture(scope="module")
def no_face_video(tmp_path_factory, asset) -> Path:
    """Gray noise, no face, with a variable frame rate (times in NO_FACE_TIMES)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(100, 156, size=(len(NO_FACE_TIMES), 96, 96, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("video") / "noise.mp4", frames, fps=10,
                       setpts="if(lt(N,4),N,2*N-4)/(10*TB)")


def read_all(truth: mpt.MediaPipeTruth, timeout_s: float = 20.0) -> list:
    frames = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = truth.read(timeout_s=1.0)
        if frame is None:
            if truth.stats().state == "ended":
                break
            continue
        frames.append(frame)
    return frames


def raw_landmarker(asset: Path):
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(asset)), output_face_blendshapes=True)
    return vision.FaceLandmarker.create_from_options(options)


# -- mapping, without MediaPipe ---------------------------------------------------------------


def test_measured_mask_and_mapping_by_name():
    assert mpt.MEDIAPIPE_MEASURED.shape == (NUM_BLENDSHAPES,)
    assert mpt.MEDIAPIPE_MEASURED.dtype == bool
    assert [ARKIT_NAMES[i] for i in np.flatnonzero(~mpt.MEDIAPIPE_MEASURED)] == ["tongueOut"]
    with pytest.raises(ValueError):
        mpt.MEDIAPIPE_MEASURED[0] = False

    # MediaPipe-style categories in a scrambled order, with _neutral and an unknown name.
    names = [n for n in ARKIT_NAMES if n != "tongueOut"]
    rng = np.random.default_rng(1)
    scores = dict(zip(names, rng.uniform(0.0, 1.0, len(names)), strict=True))
    scores["jawOpen"], scores["eyeBlinkLeft"] = 1.2, -0.1  # clipped
    cats = [SimpleNamespace(category_name=n, score=s) for n, s in scores.items()]
    cats += [SimpleNamespace(category_name="_neutral", score=0.9),
             SimpleNamespace(category_name="notAShape", score=0.5)]
    cats = [cats[i] for i in rng.permutation(len(cats))]
    weights = mpt.blendshapes_to_arkit(cats)
    assert weights.shape == (NUM_BLENDSHAPES,) and weights.dtype == np.float32
    for name in ("browInnerUp", "mouthSmileRight", "cheekPuff", "noseSneerLeft"):
        assert weights[ARKIT_NAMES.index(name)] == pytest.approx(scores[name], abs=1e-6)
    assert weights[ARKIT_NAMES.index("jawOpen")] == 1.0
    assert weights[ARKIT_NAMES.index("eyeBlinkLeft")] == 0.0
    assert weights[ARKIT_NAMES.index("tongueOut")] == 0.0
    assert mpt.blendshapes_to_arkit([]).tolist() == [0.0] * NUM_BLENDSHAPES


def test_import_needs_neither_mediapipe_nor_cv2():
    code = ("import sys, imucap.truth.mediapipe; "
            "sys.exit(int('mediapipe' in sys.modules or 'cv2' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_head_angles_from_matrix():
    def rot(axis: str, a: float) -> np.ndarray:
        c, s = math.cos(a), math.sin(a)
        return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
                "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
                "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]

    m = np.eye(4)
    m[:3, :3] = 2.0 * rot("y", 0.3) @ rot("x", -0.2) @ rot("z", 0.1)  # with a scale
    np.testing.assert_allclose(mpt.head_ypr_from_matrix(m), [0.3, -0.2, 0.1], atol=1e-6)


# -- FaceBlendshapes on the real photo -------------------------------------------------------


def test_photo_gives_52_arkit_weights_by_name(asset, photo):
    with mpt.FaceBlendshapes(mpt.FaceBlendshapesOptions(model_asset_path=asset)) as fb:
        result = fb.detect(photo)
    assert result.face and result.faces == 1 and result.timestamp_ms is None
    w = result.weights
    assert w.shape == (NUM_BLENDSHAPES,) and w.dtype == np.float32
    assert np.all((w >= 0.0) & (w <= 1.0))
    assert w[ARKIT_NAMES.index("tongueOut")] == 0.0
    assert w[mpt.MEDIAPIPE_MEASURED].max() > 0.05  # a real face moves some channels

    # Compare with MediaPipe's own output, category by category, by name.
    import mediapipe as mp

    with raw_landmarker(asset) as raw:
        cats = raw.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=photo)).face_blendshapes
    assert len(cats) == 1 and len(cats[0]) == 52
    mp_names = [c.category_name for c in cats[0]]
    assert mp_names[0] == "_neutral" and "tongueOut" not in mp_names
    # MediaPipe's order is not ARKit's: the test would catch a mapping by position.
    assert mp_names.index("eyeBlinkLeft") != ARKIT_NAMES.index("eyeBlinkLeft")
    for cat in cats[0][1:]:
        assert w[ARKIT_NAMES.index(cat.category_name)] == pytest.approx(cat.score, abs=1e-6)

    yaw, pitch, roll = result.head_ypr
    assert result.head_ypr.dtype == np.float32
    assert abs(yaw) < 0.5 and abs(pitch) < 0.6 and abs(roll) < 0.5  # roughly frontal


def test_head_roll_follows_image_rotation(asset, photo):
    import cv2

    rolls = {}
    with mpt.FaceBlendshapes(mpt.FaceBlendshapesOptions(model_asset_path=asset)) as fb:
        for angle in (20.0, -20.0):  # degrees, counter-clockwise in the image
            m = cv2.getRotationMatrix2D((224.0, 123.0), angle, 1.0)  # about the face
            rotated = cv2.warpAffine(photo, m, photo.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            result = fb.detect(rotated)
            assert result.face
            rolls[angle] = float(result.head_ypr[2])
    assert rolls[20.0] - rolls[-20.0] == pytest.approx(math.radians(40.0), abs=math.radians(12))


def test_no_face_gives_none(asset):
    with mpt.FaceBlendshapes(mpt.FaceBlendshapesOptions(model_asset_path=asset)) as fb:
        result = fb.detect(np.full((128, 128, 3), 127, np.uint8))
    assert not result.face and result.weights is None and result.head_ypr is None
    assert result.faces == 0


def test_video_mode_and_misuse(asset, small_photo):
    options = mpt.FaceBlendshapesOptions(model_asset_path=str(asset), running_mode="video")
    assert options.running_mode is mpt.RunningMode.VIDEO
    fb = mpt.FaceBlendshapes(options)
    try:
        assert fb.detect_for_video(small_photo, 0).timestamp_ms == 0
        assert fb.detect_for_video(small_photo, 40).face
        with pytest.raises(ValueError, match="increase strictly"):
            fb.detect_for_video(small_photo, 40)
        with pytest.raises(ValueError, match="increase strictly"):
            fb.detect_for_video(small_photo, 10)
        with pytest.raises(ValueError, match="call detect_for_video"):
            fb.detect(small_photo)
        with pytest.raises(ValueError, match="LIVE_STREAM"):
            fb.detect_async(small_photo, 100)
        with pytest.raises(ValueError, match="uint8"):
            fb.detect_for_video(small_photo.astype(np.float32), 100)
        with pytest.raises(TypeError):
            fb.detect_for_video(small_photo, 100.5)
        assert fb.detect_for_video(small_photo, 100).face  # still usable after refusals
    finally:
        fb.close()
    fb.close()  # idempotent
    assert fb.closed
    with pytest.raises(ValueError, match="closed"):
        fb.detect_for_video(small_photo, 200)

    with mpt.FaceBlendshapes(mpt.FaceBlendshapesOptions(model_asset_path=asset)) as image_fb:
        with pytest.raises(ValueError, match="call detect\\(\\)"):
            image_fb.detect_for_video(small_photo, 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_faces": 0}, "num_faces"),
    ({"num_faces": True}, "num_faces"),
    ({"min_face_detection_confidence": 1.5}, "min_face_detection_confidence"),
    ({"min_tracking_confidence": "high"}, "min_tracking_confidence"),
    ({"running_mode": "stream"}, "running_mode must be one of IMAGE, VIDEO, LIVE_STREAM"),
    ({"running_mode": "LIVE_STREAM"}, "result_callback is required"),
    ({"result_callback": print}, "only used in LIVE_STREAM"),
    ({"model_asset_path": None}, "model_asset_path"),
])
def test_options_are_checked(kwargs, match):
    kwargs = {"model_asset_path": "face_landmarker.task", **kwargs}
    with pytest.raises(ValueError, match=match):
        mpt.FaceBlendshapesOptions(**kwargs)
    with pytest.raises(TypeError):
        mpt.FaceBlendshapesOptions("face_landmarker.task")  # keyword only


def test_live_stream_delivers_by_callback(asset, small_photo):
    results = []
    done = threading.Event()

    def on_result(result: mpt.FaceResult) -> None:
        results.append(result)
        done.set()

    options = mpt.FaceBlendshapesOptions(model_asset_path=asset, running_mode="LIVE_STREAM",
                                         result_callback=on_result)
    with mpt.FaceBlendshapes(options) as fb:
        with pytest.raises(ValueError, match="call detect_async"):
            fb.detect(small_photo)
        for ts in (0, 100, 200):
            fb.detect_async(small_photo, ts)
            done.wait(5.0)
            time.sleep(0.05)
        with pytest.raises(ValueError, match="increase strictly"):
            fb.detect_async(small_photo, 200)
    assert results, "no LIVE_STREAM result within 5 s"
    stamps = [r.timestamp_ms for r in results]
    assert stamps == sorted(stamps) and set(stamps) <= {0, 100, 200}
    assert all(r.face and r.weights.shape == (NUM_BLENDSHAPES,) for r in results)


# -- MediaPipeTruth on video files -----------------------------------------------------------


def test_video_unpaced_gives_every_frame_at_its_time(asset, face_video):
    truth = mpt.MediaPipeTruth(face_video, model_asset_path=asset, paced=False)
    assert truth.kind == "mediapipe" and truth.measured is mpt.MEDIAPIPE_MEASURED
    assert not truth.live and truth.stats().state == "closed"
    with truth:
        frames = read_all(truth)
        stats = truth.stats()
        meta = truth.metadata()
    assert [f.seq for f in frames] == list(range(FPS))
    times = np.array([f.source_time_s for f in frames])
    np.testing.assert_allclose(times, np.arange(FPS) / FPS, atol=2e-3)
    assert all(math.isnan(f.arrival_time_s) and not f.live for f in frames)
    assert all(f.face for f in frames)
    assert all(f.weights.shape == (NUM_BLENDSHAPES,) and f.head_ypr.shape == (3,)
               for f in frames)
    assert stats.state == "ended" and stats.frames == FPS
    assert stats.no_face == 0 and stats.dropped == 0 and stats.last_error == ""
    assert meta["kind"] == "mediapipe" and meta["live"] is False and meta["unmeasured"] == [
        ARKIT_NAMES.index("tongueOut")]
    assert meta["model_asset_path"] == str(asset) and meta["source"] == str(face_video)
    assert meta["fps"] == pytest.approx(FPS) and meta["paced"] is False
    assert truth.read(timeout_s=0.1) is None and truth.stats().state == "closed"


def test_video_paced_arrives_at_the_frame_rate(asset, face_video):
    with mpt.MediaPipeTruth(face_video, model_asset_path=asset) as truth:
        assert truth.live
        frames = [truth.read(timeout_s=10.0) for _ in range(3)]
        running = truth.stats()
        frames += read_all(truth)
        stats = truth.stats()
    assert [f.seq for f in frames] == list(range(FPS)) and all(f.live for f in frames)
    src = np.array([f.source_time_s for f in frames])
    arr = np.array([f.arrival_time_s for f in frames])
    np.testing.assert_allclose(src, np.arange(FPS) / FPS, atol=2e-3)
    assert np.all(np.diff(arr) > 0)
    # Pacing never releases a frame early; a slow machine only makes frames late.
    assert np.all(arr - arr[0] >= src - src[0] - 2e-3)
    assert arr[-1] - arr[0] < 30.0
    assert stats.frames == FPS and stats.dropped == 0 and stats.state == "ended"
    assert running.state in ("streaming", "gap") and running.frames_per_s >= 1.0


def test_live_queue_drops_oldest_when_reader_lags(asset, face_video):
    with mpt.MediaPipeTruth(face_video, model_asset_path=asset, queue_size=3) as truth:
        deadline = time.monotonic() + 20.0
        while truth.stats().frames < FPS and time.monotonic() < deadline:
            time.sleep(0.05)
        frames = read_all(truth)
        stats = truth.stats()
    assert stats.frames == FPS and stats.dropped == FPS - 3
    assert [f.seq for f in frames] == [FPS - 3, FPS - 2, FPS - 1]


def test_unpaced_queue_waits_for_reader(asset, face_video):
    with mpt.MediaPipeTruth(face_video, model_asset_path=asset, paced=False,
                            queue_size=2) as truth:
        time.sleep(0.3)
        assert truth.stats().frames <= 2  # the reader thread waits, nothing is dropped
        frames = read_all(truth)
        stats = truth.stats()
    assert [f.seq for f in frames] == list(range(FPS)) and stats.dropped == 0


def test_video_without_face_counts_no_face_at_file_times(asset, no_face_video):
    with mpt.MediaPipeTruth(str(no_face_video), model_asset_path=asset, paced=False) as truth:
        frames = read_all(truth)
        stats = truth.stats()
    assert len(frames) == len(NO_FACE_TIMES)
    assert all(f.weights is None and f.head_ypr is None and not f.face for f in frames)
    # Presentation times from the file (variable frame rate), not index / fps.
    np.testing.assert_allclose([f.source_time_s for f in frames], NO_FACE_TIMES, atol=2e-3)
    assert stats.no_face == len(NO_FACE_TIMES) == stats.frames and stats.state == "ended"


def test_reader_thread_failure_ends_stream_with_error(asset, face_video, monkeypatch):
    original = mpt.FaceBlendshapes.detect_for_video
    calls = []

    def failing(self, rgb, timestamp_ms):
        calls.append(timestamp_ms)
        if len(calls) == 4:
            raise RuntimeError("graph broke\non two lines")
        return original(self, rgb, timestamp_ms)

    monkeypatch.setattr(mpt.FaceBlendshapes, "detect_for_video", failing)
    with mpt.MediaPipeTruth(face_video, model_asset_path=asset, paced=False) as truth:
        frames = read_all(truth)
        stats = truth.stats()
        assert truth.read(timeout_s=0.1) is None
    assert len(frames) == 3
    assert stats.state == "ended" and stats.last_error == "RuntimeError: graph broke on two lines"


class _SlowCamera:
    """A video file behind cv2.VideoCapture's camera interface, at about FPS frames/s."""

    def __init__(self, path: Path, pause_before: int, pause_s: float) -> None:
        import cv2

        self._cap = cv2.VideoCapture(str(path))
        self._next = time.monotonic()
        self._grabs = 0
        self._pause_before, self._pause_s = pause_before, pause_s

    def grab(self) -> bool:
        self._grabs += 1  # the first frame was read by open()
        self._next += 1.0 / FPS + (self._pause_s if self._grabs == self._pause_before else 0.0)
        time.sleep(max(0.0, self._next - time.monotonic()))
        return self._cap.grab()

    def __getattr__(self, name: str):
        return getattr(self._cap, name)


def test_camera_path_live_times(asset, face_video, monkeypatch):
    """The webcam path on a video standing in for camera 0 (no camera on test machines)."""
    import cv2

    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda src, *a: (
        _SlowCamera(face_video, pause_before=6, pause_s=1.2) if src == 0 else real(src, *a)))
    monkeypatch.setattr(mpt, "_CAMERA_GIVE_UP_S", 0.3)
    truth = mpt.MediaPipeTruth("0", model_asset_path=asset, latency_s=0.05, gap_timeout_s=0.4)
    assert truth.name == "camera 0" and truth.live
    frames, states = [], set()
    with truth:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            frame = truth.read(timeout_s=0.05)
            states.add(truth.stats().state)
            if frame is not None:
                frames.append(frame)
            elif truth.stats().state == "ended":
                break
        stats = truth.stats()
        meta = truth.metadata()
    assert frames and all(f.live and f.face for f in frames)
    assert len(frames) + stats.dropped == FPS and stats.frames == len(frames)
    src = np.array([f.source_time_s for f in frames])
    arr = np.array([f.arrival_time_s for f in frames])
    assert np.all(np.diff(src) > 0) and np.all(np.diff(arr) > 0)
    assert np.all(arr - src >= 0.05 - 1e-6)  # grabbed, less the latency, before arrival
    assert meta["source"] == 0 and meta["latency_s"] == 0.05 and meta["live"] is True
    # The camera paused for 1.2 s: a gap, seen while it lasted and counted once however often
    # stats() looked (the stall before the camera is given up may count as a second).
    assert "gap" in states and "streaming" in states and 1 <= stats.gaps <= 2
    # The stand-in "camera" runs out: the stream ends and says why.
    assert stats.state == "ended" and "camera 0 gave no frame" in stats.last_error


# -- errors a user can act on ----------------------------------------------------------------


def assert_user_error(excinfo, *needles: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_bad_inputs_raise_truth_error_before_any_thread(asset, face_video, tmp_path):
    garbage = tmp_path / "garbage.task"
    garbage.write_bytes(b"not a zip")
    other = tmp_path / "other.task"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("face_detector.tflite", b"x")
    broken = tmp_path / "broken.task"  # the right names, but no models inside
    with zipfile.ZipFile(broken, "w") as z:
        for member in ("face_detector.tflite", "face_landmarks_detector.tflite",
                       "face_blendshapes.tflite", "geometry_pipeline_metadata_landmarks.binarypb"):
            z.writestr(member, b"not a model")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n")
    cases = [
        (face_video, tmp_path / "missing.task", ("does not exist", mpt.MODEL_URL,
                                                 "--model-asset PATH")),
        (face_video, garbage, ("not a MediaPipe Face Landmarker bundle", mpt.MODEL_URL)),
        (face_video, other, ("lacks face_landmarks_detector.tflite", "--model-asset PATH")),
        (face_video, tmp_path, ("not a MediaPipe Face Landmarker bundle", "directory")),
        (face_video, broken, ("could not load the Face Landmarker bundle", mpt.MODEL_URL)),
        (tmp_path / "missing.mp4", asset, ("video file", "does not exist")),
        (not_video, asset, ("OpenCV cannot decode video file", "ffmpeg")),
        (99, asset, ("cannot open camera 99", "another index")),
    ]
    def ours() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("imucap-mediapipe")]

    for source, model, needles in cases:
        truth = mpt.MediaPipeTruth(source, model_asset_path=model)
        with pytest.raises(TruthError) as excinfo:
            truth.open()
        assert_user_error(excinfo, *needles)
        assert truth.stats().state == "closed" and truth.read(timeout_s=0.0) is None
        assert ours() == []
        truth.close()  # harmless after a failed open

    with pytest.raises(TruthError) as excinfo:
        mpt.FaceBlendshapes(mpt.FaceBlendshapesOptions(model_asset_path=garbage))
    assert_user_error(excinfo, "--model-asset PATH")


@pytest.mark.parametrize("module, needle", [("mediapipe", "MediaPipe is not installed"),
                                            ("cv2", "OpenCV (cv2) is not installed")])
def test_missing_library_says_how_to_install(asset, face_video, monkeypatch, module, needle):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` fail
    with pytest.raises(TruthError) as excinfo:
        mpt.MediaPipeTruth(face_video, model_asset_path=asset).open()
    assert_user_error(excinfo, needle, "pip install 'imucap[mediapipe]'")


@pytest.mark.parametrize("kwargs", [{"queue_size": 0}, {"gap_timeout_s": 0.0},
                                    {"latency_s": -0.1}, {"num_faces": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        mpt.MediaPipeTruth("take.mp4", model_asset_path="face_landmarker.task", **kwargs)
    with pytest.raises(TypeError):
        mpt.MediaPipeTruth(3.5, model_asset_path="face_landmarker.task")
