"""Visual truth from MediaPipe's Face Landmarker: ARKit blendshapes from a camera or a video file.

Three layers, each usable on its own:

- :func:`blendshapes_to_arkit` maps one face's MediaPipe categories, by name, onto imucap's
  52-weight ARKit vector (:data:`MEDIAPIPE_MEASURED` says which channels MediaPipe really
  measures: all but ``tongueOut``);
- :class:`FaceBlendshapes` wraps the Face Landmarker in one of its three running modes and
  returns a :class:`FaceResult` (weights and head yaw/pitch/roll, or None for both when no face
  was found);
- :class:`MediaPipeTruth` is a :class:`~imucap.truth.base.TruthSource` that reads a webcam or a
  video file with OpenCV on a background thread and hands out :class:`TruthFrame` s.

MediaPipe and OpenCV are imported only when a landmarker or a source is opened, so importing this
module is cheap and works without them (``pip install 'imucap[mediapipe]'`` installs both).

Times and queues of :class:`MediaPipeTruth`:

- video file, ``paced=True``: ``source_time_s`` is the frame's presentation time in the file;
  each frame is released when it is due at the file's own rate, counted from the first frame,
  as if it came from a camera (``arrival_time_s`` is ``time.monotonic()`` at release). When
  MediaPipe is slower than the file, frames are released late, none skipped.
- video file, ``paced=False``: frames are released as fast as MediaPipe runs, with NaN arrival
  times (not live). Nothing is dropped: when the queue is full the reader waits for the consumer.
- webcam: a grabber thread reads the camera continuously and stamps each frame with
  ``time.monotonic()`` when it was grabbed; ``source_time_s`` is that time minus the camera's
  latency (``latency_s``, 0.05 s unless given): when the face was seen, on the host clock. The
  source keeps ``latency_s`` too, as :class:`~imucap.truth.base.TruthSource` asks, for the
  arrival-time clock fit, which a constant shift of ``source_time_s`` does not affect, so the
  latency is not counted twice. MediaPipe takes the newest grabbed frame; frames grabbed while
  it was busy with an older one are dropped (counted in ``stats().dropped``) so that no frame
  is stale.
- live sources (webcam, paced file): when the consumer falls behind, the bounded queue
  (``queue_size``) drops its oldest frame and counts it in ``stats().dropped``. Frame ``seq``
  numbers count every frame run through MediaPipe, so dropped frames leave gaps in them.

Frames in which MediaPipe found no face are delivered with ``weights=None`` and counted in
``stats().no_face``. An exception on the reader thread ends the stream: ``read`` returns None
once the frames already queued are consumed, and ``stats()`` shows state ``"ended"`` with
``last_error`` set (the exception is also logged).

Head angles (:func:`head_ypr_from_matrix`) come from MediaPipe's facial transformation matrix,
the rotation of the canonical face in the camera's frame (x to the image's right, y up, z
towards the camera), decomposed as ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``: positive yaw turns
the face towards the image's right (the subject's left), positive pitch tilts it down, positive
roll turns it counter-clockwise in the image (towards the subject's right shoulder). All in
radians.

Example:
    >>> with MediaPipeTruth("take1.mp4", model_asset_path="face_landmarker.task",
    ...                     paced=False) as truth:                      # doctest: +SKIP
    ...     while (frame := truth.read(timeout_s=5.0)) is not None:
    ...         print(frame.source_time_s, frame.face)
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
import os
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from imucap.truth.base import TruthError, TruthFrame, TruthSource, TruthStats
from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES
from imucap.vocab.blendshape_table import BLENDSHAPES, MEDIAPIPE_NEUTRAL

__all__ = [
    "MEDIAPIPE_MEASURED",
    "MODEL_URL",
    "FaceBlendshapes",
    "FaceBlendshapesOptions",
    "FaceResult",
    "MediaPipeTruth",
    "RunningMode",
    "blendshapes_to_arkit",
    "check_model_asset",
    "head_ypr_from_matrix",
]

logger = logging.getLogger(__name__)

MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/"
    "float16/1/face_landmarker.task"
)
"""Where to download the Face Landmarker bundle (float16, v1)."""

_GET_MODEL = f"download {MODEL_URL} and pass --model-asset PATH"
_INSTALL = "pip install 'imucap[mediapipe]'"
# Members of a Face Landmarker bundle that can give blendshapes and head pose.
_BUNDLE_MEMBERS = ("face_detector.tflite", "face_landmarks_detector.tflite",
                   "face_blendshapes.tflite", "geometry_pipeline_metadata_landmarks.binarypb")

# MediaPipe category name -> index in ARKIT_NAMES (by name, never by position).
_MP_TO_ARKIT: dict[str, int] = {
    r.mediapipe: ARKIT_NAMES.index(r.arkit) for r in BLENDSHAPES if r.mediapipe is not None
}

MEDIAPIPE_MEASURED: np.ndarray = np.zeros(NUM_BLENDSHAPES, dtype=bool)
"""``(52,)`` bool over :data:`~imucap.vocab.ARKIT_NAMES`: False where MediaPipe has no output."""
MEDIAPIPE_MEASURED[list(_MP_TO_ARKIT.values())] = True
MEDIAPIPE_MEASURED.setflags(write=False)

_DEFAULT_CAMERA_LATENCY_S = 0.05
# A camera that gives no frame for this long has stopped for good.
_CAMERA_GIVE_UP_S = 2.0
# How long close() waits for each thread.
_JOIN_TIMEOUT_S = 5.0


def blendshapes_to_arkit(categories: Iterable[Any]) -> np.ndarray:
    """Maps one face's MediaPipe blendshape categories onto the ARKit weight vector, by name.

    Args:
        categories: MediaPipe ``Category`` objects (anything with ``.category_name`` and
            ``.score``), e.g. ``result.face_blendshapes[0]``, in any order. ``_neutral`` and
            names that are not ARKit blendshapes are ignored.

    Returns:
        float32 ``(52,)`` in :data:`~imucap.vocab.ARKIT_NAMES` order, clipped to [0, 1]; channels
        MediaPipe does not measure (``tongueOut``, see :data:`MEDIAPIPE_MEASURED`) are 0.
    """
    weights = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
    for category in categories:
        index = _MP_TO_ARKIT.get(category.category_name)
        if index is not None:
            weights[index] = category.score
    return np.clip(weights, 0.0, 1.0, out=weights)


def head_ypr_from_matrix(matrix: Any) -> np.ndarray:
    """Head yaw, pitch and roll from a MediaPipe facial transformation matrix.

    Args:
        matrix: ``(4, 4)`` (or ``(3, 3)``) pose of the canonical face in camera coordinates
            (x right, y up, z towards the camera); any scale is removed.

    Returns:
        float32 ``(3,)`` yaw, pitch, roll in radians, with ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``
        (see the module docstring for which way each is positive).
    """
    r = np.asarray(matrix, dtype=np.float64)[:3, :3]
    r = r / np.linalg.norm(r, axis=0, keepdims=True)
    yaw = math.atan2(r[0, 2], r[2, 2])
    pitch = math.asin(float(np.clip(-r[1, 2], -1.0, 1.0)))
    roll = math.atan2(r[1, 0], r[1, 1])
    return np.array([yaw, pitch, roll], dtype=np.float32)


def _import_mediapipe() -> tuple[Any, Any, Any]:
    """MediaPipe's top-level module, ``vision`` and ``BaseOptions``, or a TruthError."""
    try:
        import mediapipe
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:
        raise TruthError(f"MediaPipe is not installed ({exc}); MediaPipe truth needs it: "
                         f"{_INSTALL}") from None
    return mediapipe, vision, BaseOptions


def _import_cv2() -> Any:
    """OpenCV, or a TruthError."""
    try:
        import cv2
    except ImportError as exc:
        raise TruthError(f"OpenCV (cv2) is not installed ({exc}); MediaPipe truth reads cameras "
                         f"and videos with it: {_INSTALL}") from None
    return cv2


def check_model_asset(path: str | os.PathLike[str]) -> Path:
    """Checks that ``path`` is a Face Landmarker bundle (without loading it).

    Args:
        path: The ``face_landmarker.task`` file.

    Returns:
        The path, user-expanded.

    Raises:
        TruthError: If the file is missing, not a zip, or lacks the blendshape model.
    """
    asset = Path(path).expanduser()
    if not asset.exists():
        raise TruthError(f"MediaPipe model asset {asset} does not exist: {_GET_MODEL}")
    not_bundle = f"{asset} is not a MediaPipe Face Landmarker bundle"
    if not asset.is_file():
        raise TruthError(f"{not_bundle} (it is a directory): {_GET_MODEL}")
    try:
        with zipfile.ZipFile(asset) as bundle:
            members = set(bundle.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise TruthError(f"{not_bundle} (not a .task zip: {exc}): {_GET_MODEL}") from None
    missing = [m for m in _BUNDLE_MEMBERS if m not in members]
    if missing:
        raise TruthError(f"{not_bundle} (it lacks {', '.join(missing)}): {_GET_MODEL}")
    return asset


class RunningMode(str, Enum):
    """How a :class:`FaceBlendshapes` is fed, as MediaPipe's ``VisionTaskRunningMode``."""

    IMAGE = "IMAGE"
    """Independent images: :meth:`FaceBlendshapes.detect`."""
    VIDEO = "VIDEO"
    """Frames of one video, timestamps increasing: :meth:`FaceBlendshapes.detect_for_video`."""
    LIVE_STREAM = "LIVE_STREAM"
    """Asynchronous frames, results by callback: :meth:`FaceBlendshapes.detect_async`."""

    @classmethod
    def _missing_(cls, value: object) -> RunningMode | None:
        if isinstance(value, str):
            key = value.strip().upper().replace("-", "_")
            return cls.__members__.get(key)
        return None


@dataclass(frozen=True, eq=False)
class FaceResult:
    """What the landmarker found in one image.

    Attributes:
        weights: float32 ``(52,)`` ARKit weights (:func:`blendshapes_to_arkit`), or None when no
            face was found.
        head_ypr: float32 ``(3,)`` head yaw, pitch, roll in radians, or None when no face was
            found (or MediaPipe gave no transformation matrix).
        timestamp_ms: The image's timestamp (None in IMAGE mode).
        faces: How many faces MediaPipe found (the largest one is reported).
    """

    weights: np.ndarray | None
    head_ypr: np.ndarray | None
    timestamp_ms: int | None = None
    faces: int = 0

    @property
    def face(self) -> bool:
        """Whether a face was found."""
        return self.weights is not None


def _unit_interval(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {number}")
    return number


@dataclass(frozen=True, kw_only=True)
class FaceBlendshapesOptions:
    """Settings of a :class:`FaceBlendshapes`, checked when made (ValueError when wrong).

    Attributes:
        model_asset_path: The Face Landmarker bundle (``face_landmarker.task``).
        running_mode: :class:`RunningMode` (or its name, any case).
        num_faces: Most faces to look for; the largest one found is reported.
        min_face_detection_confidence: Face detector score needed to report a face.
        min_face_presence_confidence: Landmark model's face-presence score needed.
        min_tracking_confidence: Tracking score below which VIDEO and LIVE_STREAM modes run the
            detector again.
        result_callback: Called with each :class:`FaceResult` in LIVE_STREAM mode (required
            there, refused elsewhere). It runs on MediaPipe's thread; an exception it raises is
            logged and swallowed.
    """

    model_asset_path: str | os.PathLike[str]
    running_mode: RunningMode | str = RunningMode.IMAGE
    num_faces: int = 1
    min_face_detection_confidence: float = 0.5
    min_face_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    result_callback: Callable[[FaceResult], None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model_asset_path, (str, os.PathLike)):
            raise ValueError(f"model_asset_path must be a path, got {self.model_asset_path!r}")
        object.__setattr__(self, "model_asset_path", Path(self.model_asset_path).expanduser())
        mode = getattr(self.running_mode, "value", self.running_mode)  # MediaPipe's enum too
        try:
            object.__setattr__(self, "running_mode", RunningMode(mode))
        except ValueError:
            choices = ", ".join(m.value for m in RunningMode)
            raise ValueError(f"running_mode must be one of {choices}, "
                             f"got {self.running_mode!r}") from None
        if (isinstance(self.num_faces, bool) or not isinstance(self.num_faces, (int, np.integer))
                or self.num_faces < 1):
            raise ValueError(f"num_faces must be an integer >= 1, got {self.num_faces!r}")
        for name in ("min_face_detection_confidence", "min_face_presence_confidence",
                     "min_tracking_confidence"):
            object.__setattr__(self, name, _unit_interval(name, getattr(self, name)))
        live = self.running_mode is RunningMode.LIVE_STREAM
        if live and self.result_callback is None:
            raise ValueError("result_callback is required in LIVE_STREAM mode")
        if not live and self.result_callback is not None:
            raise ValueError(f"result_callback is only used in LIVE_STREAM mode, not in "
                             f"{self.running_mode.value}")
        if self.result_callback is not None and not callable(self.result_callback):
            raise ValueError(f"result_callback must be callable, got {self.result_callback!r}")


class FaceBlendshapes:
    """MediaPipe's Face Landmarker, giving ARKit weights and head angles for one face.

    Use one method per running mode: :meth:`detect` (IMAGE), :meth:`detect_for_video` (VIDEO)
    or :meth:`detect_async` (LIVE_STREAM; results go to the options' ``result_callback``, and
    MediaPipe skips frames that come while it is busy). Timestamps must increase strictly.
    Close it (or use it as a context manager): MediaPipe complains at exit about landmarkers
    left to the garbage collector. Not thread-safe: call it from one thread.

    Args:
        options: The settings.

    Raises:
        TruthError: MediaPipe is not installed, or the model asset is missing or unusable.
    """

    def __init__(self, options: FaceBlendshapesOptions) -> None:
        if not isinstance(options, FaceBlendshapesOptions):
            raise TypeError(f"options must be FaceBlendshapesOptions, got {type(options)}")
        self.options = options
        self._landmarker: Any = None
        self._last_timestamp_ms: int | None = None
        self._unknown_warned = False
        mediapipe, vision, base_options = _import_mediapipe()
        self._mp = mediapipe
        asset = check_model_asset(options.model_asset_path)
        mp_options = vision.FaceLandmarkerOptions(
            base_options=base_options(model_asset_path=str(asset)),
            running_mode=getattr(vision.RunningMode, options.running_mode.value),
            num_faces=int(options.num_faces),
            min_face_detection_confidence=options.min_face_detection_confidence,
            min_face_presence_confidence=options.min_face_presence_confidence,
            min_tracking_confidence=options.min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
            result_callback=(self._on_async_result
                             if options.running_mode is RunningMode.LIVE_STREAM else None),
        )
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(mp_options)
        except Exception as exc:  # MediaPipe raises RuntimeError, ValueError, FileNotFoundError
            reason = " ".join(str(exc).split())
            raise TruthError(f"MediaPipe could not load the Face Landmarker bundle {asset} "
                             f"({reason}): {_GET_MODEL}") from None

    @property
    def running_mode(self) -> RunningMode:
        """The running mode this landmarker was made for."""
        return RunningMode(self.options.running_mode)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._landmarker is None

    def detect(self, rgb: np.ndarray) -> FaceResult:
        """Finds the face in one image (IMAGE mode).

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB image (``(H, W, 4)`` RGBA also accepted).

        Returns:
            The :class:`FaceResult`; its weights and head_ypr are None when no face was found.

        Raises:
            ValueError: In another running mode, after close, or for a malformed image.
        """
        self._check_mode(RunningMode.IMAGE, "detect")
        return self._convert(self._landmarker.detect(self._image(rgb)), None)

    def detect_for_video(self, rgb: np.ndarray, timestamp_ms: int) -> FaceResult:
        """Finds the face in the next frame of a video (VIDEO mode).

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB frame.
            timestamp_ms: The frame's time in milliseconds, greater than the previous one.

        Returns:
            The :class:`FaceResult` (weights and head_ypr None when no face was found).

        Raises:
            ValueError: In another running mode, after close, for a malformed image, or when
                the timestamp does not increase.
        """
        self._check_mode(RunningMode.VIDEO, "detect_for_video")
        image = self._image(rgb)
        timestamp_ms = self._next_timestamp(timestamp_ms)
        return self._convert(self._landmarker.detect_for_video(image, timestamp_ms), timestamp_ms)

    def detect_async(self, rgb: np.ndarray, timestamp_ms: int) -> None:
        """Sends a live frame (LIVE_STREAM mode); the result goes to ``result_callback``.

        MediaPipe skips frames sent while it is still busy with an earlier one (no callback for
        those).

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB frame.
            timestamp_ms: The frame's time in milliseconds, greater than the previous one.

        Raises:
            ValueError: In another running mode, after close, for a malformed image, or when
                the timestamp does not increase.
        """
        self._check_mode(RunningMode.LIVE_STREAM, "detect_async")
        image = self._image(rgb)
        self._landmarker.detect_async(image, self._next_timestamp(timestamp_ms))

    def close(self) -> None:
        """Releases MediaPipe's graph (idempotent; waits for pending LIVE_STREAM results)."""
        landmarker, self._landmarker = self._landmarker, None
        if landmarker is not None:
            landmarker.close()

    def __enter__(self) -> FaceBlendshapes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_mode(self, mode: RunningMode, method: str) -> None:
        if self._landmarker is None:
            raise ValueError("FaceBlendshapes is closed")
        if self.options.running_mode is not mode:
            right = {RunningMode.IMAGE: "detect", RunningMode.VIDEO: "detect_for_video",
                     RunningMode.LIVE_STREAM: "detect_async"}[self.running_mode]
            raise ValueError(f"{method}() needs running_mode {mode.value}; this landmarker "
                             f"runs in {self.running_mode.value} mode: call {right}()")

    def _next_timestamp(self, timestamp_ms: int) -> int:
        timestamp_ms = operator.index(timestamp_ms)
        last = self._last_timestamp_ms
        if last is not None and timestamp_ms <= last:
            raise ValueError(f"timestamp_ms must increase strictly: got {timestamp_ms} after "
                             f"{last}")
        self._last_timestamp_ms = timestamp_ms
        return timestamp_ms

    def _image(self, rgb: np.ndarray) -> Any:
        array = np.asarray(rgb)
        if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {array.shape} "
                             f"dtype {array.dtype}")
        if array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(f"image is empty: shape {array.shape}")
        fmt = self._mp.ImageFormat.SRGB if array.shape[2] == 3 else self._mp.ImageFormat.SRGBA
        return self._mp.Image(image_format=fmt, data=np.ascontiguousarray(array))

    def _convert(self, result: Any, timestamp_ms: int | None) -> FaceResult:
        faces = len(result.face_blendshapes)
        if faces == 0:
            return FaceResult(None, None, timestamp_ms, 0)
        index = _largest_face(result.face_landmarks) if faces > 1 else 0
        categories = result.face_blendshapes[index]
        if not self._unknown_warned:
            unknown = {c.category_name for c in categories} - set(_MP_TO_ARKIT)
            unknown.discard(MEDIAPIPE_NEUTRAL)
            if unknown:
                self._unknown_warned = True
                logger.warning("MediaPipe blendshapes with no ARKit name ignored: %s",
                               ", ".join(sorted(unknown)))
        weights = blendshapes_to_arkit(categories)
        matrices = result.facial_transformation_matrixes or []
        head = head_ypr_from_matrix(matrices[index]) if index < len(matrices) else None
        return FaceResult(weights, head, timestamp_ms, faces)

    def _on_async_result(self, result: Any, image: Any, timestamp_ms: int) -> None:
        del image
        callback = self.options.result_callback
        try:
            if callback is not None:
                callback(self._convert(result, int(timestamp_ms)))
        except Exception:
            logger.exception("FaceBlendshapes result_callback failed")


def _largest_face(face_landmarks: list[Any]) -> int:
    """Index of the face whose landmarks span the largest box."""
    areas = []
    for landmarks in face_landmarks:
        xs = [p.x for p in landmarks] or [0.0]
        ys = [p.y for p in landmarks] or [0.0]
        areas.append((max(xs) - min(xs)) * (max(ys) - min(ys)))
    return int(np.argmax(areas)) if areas else 0


class MediaPipeTruth(TruthSource):
    """Visual truth from a webcam or a video file, through MediaPipe's Face Landmarker.

    See the module docstring for the times, pacing and drop policy. Everything that can be
    checked is checked in :meth:`open`, before any thread starts.

    Args:
        source: A webcam index (an int, or a string of digits that names no file), or the path
            of a video file.
        model_asset_path: The Face Landmarker bundle (``face_landmarker.task``).
        paced: For a video file: release frames at the file's rate as if from a camera (live),
            or, when False, as fast as MediaPipe runs (not live). Ignored for a webcam.
        latency_s: A webcam's delay from exposure to the grab, subtracted from the grab time to
            give ``source_time_s``; None means 0.05 s for a webcam, 0 for a file.
        queue_size: Frames held for :meth:`read`.
        gap_timeout_s: A live stream with no frame for this long is in a gap.
        num_faces: Most faces to look for; the largest is reported.
        min_face_detection_confidence: See :class:`FaceBlendshapesOptions`.
        min_face_presence_confidence: See :class:`FaceBlendshapesOptions`.
        min_tracking_confidence: See :class:`FaceBlendshapesOptions`.

    Attributes:
        latency_s: The camera latency in use (0 for a file). It is subtracted from a webcam
            frame's grab time to give ``source_time_s`` and is also left on the source for the
            arrival-time clock fit (:func:`imucap.sync.clocks.fit_arrival_clock`), which must take
            it off again: a constant shift of ``source_time_s`` cancels out of that fit.
    """

    kind = "mediapipe"
    measured = MEDIAPIPE_MEASURED

    def __init__(
        self,
        source: int | str | os.PathLike[str],
        *,
        model_asset_path: str | os.PathLike[str],
        paced: bool = True,
        latency_s: float | None = None,
        queue_size: int = 256,
        gap_timeout_s: float = 0.5,
        num_faces: int = 1,
        min_face_detection_confidence: float = 0.5,
        min_face_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        self._camera: int | None = None
        self._path: Path | None = None
        if isinstance(source, bool):
            raise TypeError(f"source must be a webcam index or a video path, got {source!r}")
        if isinstance(source, (int, np.integer)):
            self._camera = int(source)
        elif isinstance(source, str) and source.strip().isdigit() and not Path(source).exists():
            self._camera = int(source.strip())
        elif isinstance(source, (str, os.PathLike)):
            self._path = Path(source).expanduser()
        else:
            raise TypeError(f"source must be a webcam index or a video path, got {source!r}")
        if self._camera is not None and self._camera < 0:
            raise ValueError(f"webcam index must be >= 0, got {self._camera}")
        if latency_s is None:
            latency_s = _DEFAULT_CAMERA_LATENCY_S if self._camera is not None else 0.0
        if not (math.isfinite(latency_s) and latency_s >= 0.0):
            raise ValueError(f"latency_s must be a finite number >= 0, got {latency_s}")
        if isinstance(queue_size, bool) or int(queue_size) != queue_size or queue_size < 1:
            raise ValueError(f"queue_size must be an integer >= 1, got {queue_size!r}")
        if not (math.isfinite(gap_timeout_s) and gap_timeout_s > 0.0):
            raise ValueError(f"gap_timeout_s must be a positive number, got {gap_timeout_s}")
        # Checked now (ValueError); the asset itself is checked in open().
        self._options = FaceBlendshapesOptions(
            model_asset_path=model_asset_path, running_mode=RunningMode.VIDEO,
            num_faces=num_faces, min_face_detection_confidence=min_face_detection_confidence,
            min_face_presence_confidence=min_face_presence_confidence,
            min_tracking_confidence=min_tracking_confidence)
        self.paced = bool(paced)
        self.latency_s = float(latency_s)
        self.queue_size = int(queue_size)
        self.gap_timeout_s = float(gap_timeout_s)
        self._fps: float | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reset()

    def _reset(self) -> None:
        self._opened = False
        self._done = False
        self._queue: deque[TruthFrame] = deque()
        self._recent: deque[float] = deque()
        self._frames = 0
        self._no_face = 0
        self._dropped = 0
        self._gaps = 0
        self._in_gap = False
        self._last_release = math.nan
        self._last_error = ""
        # Webcam: the newest grabbed frame (BGR, grab time) waiting for MediaPipe.
        self._slot: tuple[np.ndarray, float] | None = None
        self._grab_done = False
        self._grab_error = ""

    @property
    def name(self) -> str:
        """``camera N`` or the video file's path."""
        return f"camera {self._camera}" if self._camera is not None else str(self._path)

    @property
    def live(self) -> bool:
        """True for a webcam or a paced file; False for a file read as fast as possible."""
        return self._camera is not None or self.paced

    @property
    def model_asset_path(self) -> Path:
        """The Face Landmarker bundle."""
        return Path(self._options.model_asset_path)

    def open(self) -> MediaPipeTruth:
        """Checks everything, opens the source and starts reading.

        Returns:
            self.

        Raises:
            TruthError: MediaPipe or OpenCV missing, model asset unusable, video file missing or
                undecodable, or webcam that cannot be opened or gives no frame.
        """
        if self._opened:
            return self
        _import_mediapipe()
        cv2 = _import_cv2()
        check_model_asset(self._options.model_asset_path)
        capture, first = self._open_capture(cv2)
        try:
            landmarker = FaceBlendshapes(self._options)
        except BaseException:
            capture.release()
            raise
        self._reset()
        self._stop.clear()
        self._opened = True
        if self._camera is not None:
            self._slot = first
            grabber = threading.Thread(target=self._grab_camera, args=(capture,),
                                       name=f"imucap-mediapipe-grab-{self._camera}", daemon=True)
            worker = threading.Thread(target=self._run_camera, args=(cv2, landmarker),
                                      name=f"imucap-mediapipe-{self._camera}", daemon=True)
            self._threads = [grabber, worker]
        else:
            worker = threading.Thread(target=self._run_file, args=(cv2, capture, landmarker, first),
                                      name="imucap-mediapipe-file", daemon=True)
            self._threads = [worker]
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stops the threads and releases the source and MediaPipe (idempotent)."""
        with self._cond:
            if not self._opened:
                return
            self._stop.set()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():
                logger.warning("%s did not stop within %.0f s", thread.name, _JOIN_TIMEOUT_S)
        with self._cond:
            self._threads = []
            self._opened = False
            self._done = True
            self._queue.clear()
            self._cond.notify_all()

    def read(self, timeout_s: float | None = None) -> TruthFrame | None:
        """The next frame, oldest first.

        Args:
            timeout_s: Longest wait; None waits until a frame comes or the stream ends.

        Returns:
            The frame, or None on timeout, once the stream has ended and its frames are
            consumed, or when the source is not open.
        """
        deadline = None if timeout_s is None else time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                if self._queue:
                    frame = self._queue.popleft()
                    self._cond.notify_all()  # a waiting unpaced reader may go on
                    return frame
                if not self._opened or self._done:
                    return None
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0.0:
                    return None
                self._cond.wait(remaining)

    def stats(self) -> TruthStats:
        """Current counters (callable from any thread)."""
        now = time.monotonic()
        with self._cond:
            self._check_gap(now)
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if not self._opened:
                state = "closed"
            elif self._done and not self._queue:
                state = "ended"
            elif self._frames == 0:
                state = "waiting"
            elif self._in_gap:
                state = "gap"
            else:
                state = "streaming"
            return TruthStats(state=state, frames=self._frames,
                              frames_per_s=float(len(self._recent)), no_face=self._no_face,
                              gaps=self._gaps, dropped=self._dropped, last_error=self._last_error)

    def metadata(self) -> dict[str, object]:
        """Base metadata plus the model asset, source, frame rate and pacing."""
        meta = super().metadata()
        meta.update({
            "model_asset_path": str(self.model_asset_path),
            "source": self._camera if self._camera is not None else str(self._path),
            "source_type": "camera" if self._camera is not None else "file",
            "fps": self._fps,
            "paced": self.paced if self._camera is None else True,
        })
        return meta

    # -- opening -----------------------------------------------------------------------------

    def _open_capture(self, cv2: Any) -> tuple[Any, Any]:
        """Opens the source and reads its first frame; (capture, first) or a TruthError."""
        if self._camera is not None:
            capture = cv2.VideoCapture(self._camera)
            if not capture.isOpened():
                capture.release()
                raise TruthError(f"cannot open camera {self._camera}: check that it is connected "
                                 f"and not in use by another program, or pick another index")
            with contextlib.suppress(Exception):  # fewer stale frames, where supported
                capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            ok, bgr = capture.read()
            grabbed = time.monotonic()
            if not ok or bgr is None:
                capture.release()
                raise TruthError(f"camera {self._camera} opened but gave no frame: check that "
                                 f"it is not in use by another program, or pick another index")
            self._fps = _finite_positive(capture.get(cv2.CAP_PROP_FPS))
            return capture, (bgr, grabbed)
        path = self._path
        assert path is not None
        if not path.exists():
            raise TruthError(f"video file {path} does not exist: check the path")
        if not path.is_file():
            raise TruthError(f"video file {path} is not a file: pass the path of a video")
        undecodable = (f"OpenCV cannot decode video file {path}: check that it is a complete "
                       f"video, or convert it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            capture.release()
            raise TruthError(undecodable)
        ok, bgr = capture.read()
        if not ok or bgr is None:
            capture.release()
            raise TruthError(undecodable)
        self._fps = _finite_positive(capture.get(cv2.CAP_PROP_FPS))
        return capture, (bgr, capture.get(cv2.CAP_PROP_POS_MSEC))

    # -- threads -----------------------------------------------------------------------------

    def _run_file(self, cv2: Any, capture: Any, landmarker: FaceBlendshapes,
                  first: tuple[np.ndarray, float]) -> None:
        """Reader thread for a video file."""
        try:
            with landmarker:
                bgr, pos_ms = first
                index = 0
                prev_time = -math.inf
                last_ms: int | None = None
                start_wall = start_time = math.nan
                while not self._stop.is_set():
                    t = self._frame_time(pos_ms, index, prev_time)
                    ms = round(t * 1000.0)
                    if last_ms is not None and ms <= last_ms:
                        ms = last_ms + 1
                    result = landmarker.detect_for_video(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ms)
                    if self.paced:  # never before the frame is due, counted from the first
                        arrival = time.monotonic()
                        if math.isnan(start_wall):
                            start_wall, start_time = arrival, t
                        due = start_wall + (t - start_time)
                        while arrival < due and not self._stop.wait(due - arrival):
                            arrival = time.monotonic()
                        if self._stop.is_set():
                            break
                    else:
                        arrival = math.nan
                    self._publish(index, t, arrival, result)
                    prev_time, last_ms, index = t, ms, index + 1
                    ok, bgr = capture.read()
                    if not ok or bgr is None:
                        break
                    pos_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
        except Exception as exc:
            self._fail(exc)
        finally:
            capture.release()
            self._finish()

    def _frame_time(self, pos_ms: float, index: int, prev_time: float) -> float:
        """A file frame's presentation time: OpenCV's position, else index / fps; increasing."""
        t = pos_ms / 1000.0 if pos_ms is not None and math.isfinite(pos_ms) else math.nan
        if not (t > prev_time) and self._fps:
            t = index / self._fps
        if not (t > prev_time):
            t = prev_time + 1e-3 if math.isfinite(prev_time) else 0.0
        return t

    def _grab_camera(self, capture: Any) -> None:
        """Grabber thread: keeps the newest camera frame and the time it was grabbed."""
        try:
            failing_since = math.nan
            while not self._stop.is_set():
                ok = capture.grab()
                grabbed = time.monotonic()
                bgr = None
                if ok:
                    ok, bgr = capture.retrieve()
                if not ok or bgr is None:
                    if math.isnan(failing_since):
                        failing_since = grabbed
                    elif grabbed - failing_since > _CAMERA_GIVE_UP_S:
                        raise TruthError(f"camera {self._camera} gave no frame for "
                                         f"{_CAMERA_GIVE_UP_S:g} s: check its cable, or that "
                                         f"no other program took it")
                    self._stop.wait(0.01)
                    continue
                failing_since = math.nan
                with self._cond:
                    if self._slot is not None:
                        self._dropped += 1  # MediaPipe was busy: the older frame goes
                    self._slot = (bgr, grabbed)
                    self._cond.notify_all()
        except Exception as exc:
            with self._cond:
                self._grab_error = _one_line(exc)
        finally:
            capture.release()
            with self._cond:
                self._grab_done = True
                self._cond.notify_all()

    def _run_camera(self, cv2: Any, landmarker: FaceBlendshapes) -> None:
        """Worker thread for a webcam: MediaPipe on the newest grabbed frame."""
        try:
            with landmarker:
                seq = 0
                last_ms: int | None = None
                while True:
                    with self._cond:
                        while (self._slot is None and not self._grab_done
                               and not self._stop.is_set()):
                            self._cond.wait()
                        if self._stop.is_set() or self._slot is None:
                            if self._grab_error:
                                self._last_error = self._grab_error
                            break
                        bgr, grabbed = self._slot
                        self._slot = None
                    ms = round(grabbed * 1000.0)
                    if last_ms is not None and ms <= last_ms:
                        ms = last_ms + 1
                    result = landmarker.detect_for_video(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ms)
                    self._publish(seq, grabbed - self.latency_s, time.monotonic(), result)
                    seq, last_ms = seq + 1, ms
        except Exception as exc:
            self._fail(exc)
        finally:
            self._stop.set()  # the grabber stops too
            self._finish()

    def _publish(self, seq: int, source_time_s: float, arrival_time_s: float,
                 result: FaceResult) -> None:
        frame = TruthFrame(seq=seq, source_time_s=float(source_time_s),
                           arrival_time_s=float(arrival_time_s), weights=result.weights,
                           head_ypr=result.head_ypr)
        with self._cond:
            if self.live:
                if len(self._queue) >= self.queue_size:
                    self._queue.popleft()
                    self._dropped += 1
            else:
                while len(self._queue) >= self.queue_size and not self._stop.is_set():
                    self._cond.wait(0.1)
                if self._stop.is_set():
                    return
            now = time.monotonic()
            self._check_gap(now)
            self._in_gap = False
            self._queue.append(frame)
            self._frames += 1
            self._no_face += frame.weights is None
            self._recent.append(now)
            self._last_release = now
            self._cond.notify_all()

    def _check_gap(self, now: float) -> None:
        """Marks (and counts, once) a gap in a live stream; call with the lock held."""
        if (self.live and self._opened and not self._done and not self._in_gap
                and now - self._last_release > self.gap_timeout_s):
            self._in_gap = True
            self._gaps += 1

    def _fail(self, exc: BaseException) -> None:
        logger.error("MediaPipe truth %s failed", self.name, exc_info=exc)
        with self._cond:
            self._last_error = _one_line(exc)

    def _finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, TruthError) else f"{type(exc).__name__}: {text}"


def _finite_positive(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) and value > 0 else None
