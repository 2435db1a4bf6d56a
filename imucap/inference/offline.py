"""Offline inference: a whole recorded or simulated session through the engine, as a FaceTrack.

:func:`infer_session` feeds a session's IMU samples to a
:class:`~imucap.inference.engine.StreamingEngine` as fast as the model runs (no waiting for a
clock) and collects every output frame into a :class:`FaceTrack`: the face over time, which
:mod:`imucap.export` writes as Live Link Face CSV, OpenFace AU CSV, JSON or an animated glTF.
The output is the one a live stream of the same samples would have produced with the same
settings, so a file converted offline matches what a viewer showed live.

Hop and speed. One model run reads a whole window (1-2 s) and predicts all of it; with
``hop_frames=1`` (the engine's live default) the engine runs the model once per output frame
and keeps only the newest frame of each run. ``hop_frames=H`` runs the model once per ``H``
frames and takes the ``H`` newest frames of each run: about ``H`` times faster, since model
runs are nearly all the cost. The price is smoothness, not accuracy: every ``H`` frames the
output switches to a new window whose values at the seam differ a little from the previous
one's (the engine fades that offset out over ``seam_s``, 0.1 s). Measured on 60 s of a
simulated IMUSIC-11 session with a tiny model (one CPU thread): hop 1, 2, 4, 8, 15 took 29,
14, 7.2, 4.5, 2.6 s, the error against the truth stayed at 0.045-0.046 MAE throughout, and the
mean frame-to-frame change grew from 0.0017 to 0.0027, 0.0031, 0.0034, 0.0040 (the truth's:
0.0008). :data:`DEFAULT_HOP_FRAMES` is 4, below ``seam_s``; ``hop_frames=1`` gives the
smoothest output, as the live engine does at its defaults.

Threads: a batch of one small window gains little from many threads, and on a machine whose
cores are busy with other work torch's thread pool can slow it down by an order of magnitude;
``threads=1`` is then much faster (run several conversions side by side for throughput).

Determinism: the engine draws each output instant's sampling noise from the seed and the
instant's index, so the same inputs, settings and seed give the same track, bit for bit, on the
same machine and torch build.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import (
    ARKIT_NAMES,
    NUM_AUS,
    NUM_BLENDSHAPES,
    au_intensities,
    au_presence,
    detect_blinks,
    eye_blink,
)

__all__ = ["DEFAULT_HOP_FRAMES", "FaceTrack", "infer_session"]

#: Output frames per model run in :func:`infer_session` (see the module doc for the trade-off).
DEFAULT_HOP_FRAMES = 4


def _pose(value: Any, n: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float32)
    if array.shape != (n, 3):
        raise ValueError(f"FaceTrack.{name} must be ({n}, 3), got {array.shape}")
    return array


@dataclass(frozen=True, eq=False)
class FaceTrack:
    """The face over time: ARKit weights per frame, with AUs, confidence and head pose if known.

    Attributes:
        times: Frame times, seconds, ``(N,)`` float64, strictly increasing. On the clock of the
            source (a session's clock, a take's timecode), not necessarily starting at 0.
        weights: The 52 ARKit weights in ARKit order (:data:`imucap.vocab.ARKIT_NAMES`),
            ``(N, 52)`` float32.
        aus: FACS Action Unit intensities 0-5 in :data:`imucap.vocab.AU_NAMES` order,
            ``(N, 18)`` float32, or None (then :meth:`au_intensities` computes them from the
            weights).
        confidence: Per-frame confidence 0-1, ``(N,)`` float32 (the share of usable sensors for
            a model's output; 1 for a take). None means all ones.
        fps: Nominal frame rate: the rate of the frame grid, the rate Live Link timecodes count
            and the rate blinks are detected at.
        head_ypr: Head yaw, pitch, roll (radians) ``(N, 3)``, or None.
        left_eye_ypr: Left eye yaw, pitch, roll ``(N, 3)``, or None.
        right_eye_ypr: Right eye yaw, pitch, roll ``(N, 3)``, or None.
        source: Where the track came from, for messages and file metadata.

    Raises:
        ValueError: Arrays of the wrong shape, times that do not increase, a bad fps.
    """

    times: np.ndarray
    weights: np.ndarray
    aus: np.ndarray | None = None
    confidence: np.ndarray | None = None
    fps: float = 60.0
    head_ypr: np.ndarray | None = None
    left_eye_ypr: np.ndarray | None = None
    right_eye_ypr: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=np.float64)
        if times.ndim != 1 or times.size == 0:
            raise ValueError(f"FaceTrack.times must be a non-empty 1-D array, got {times.shape}")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise ValueError("FaceTrack.times must be finite and strictly increasing")
        n = times.size
        weights = np.asarray(self.weights, dtype=np.float32)
        if weights.shape != (n, NUM_BLENDSHAPES):
            raise ValueError(f"FaceTrack.weights must be ({n}, {NUM_BLENDSHAPES}), got "
                             f"{weights.shape}")
        aus = None if self.aus is None else np.asarray(self.aus, dtype=np.float32)
        if aus is not None and aus.shape != (n, NUM_AUS):
            raise ValueError(f"FaceTrack.aus must be ({n}, {NUM_AUS}), got {aus.shape}")
        conf = (np.ones(n, np.float32) if self.confidence is None
                else np.asarray(self.confidence, dtype=np.float32))
        if conf.shape != (n,):
            raise ValueError(f"FaceTrack.confidence must be ({n},), got {conf.shape}")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"FaceTrack.fps must be positive, got {self.fps}")
        set_ = object.__setattr__
        set_(self, "times", times)
        set_(self, "weights", weights)
        set_(self, "aus", aus)
        set_(self, "confidence", conf)
        set_(self, "fps", float(self.fps))
        for name in ("head_ypr", "left_eye_ypr", "right_eye_ypr"):
            set_(self, name, _pose(getattr(self, name), n, name))

    def __len__(self) -> int:
        return int(self.times.size)

    def __repr__(self) -> str:
        return (f"FaceTrack({len(self)} frames, {self.duration_s:.2f} s at {self.fps:g} fps"
                + (f", from {self.source}" if self.source else "") + ")")

    @property
    def names(self) -> tuple[str, ...]:
        """The blendshape name of each weight column (the ARKit names)."""
        return ARKIT_NAMES

    @property
    def duration_s(self) -> float:
        """Time from the first frame to the last."""
        return float(self.times[-1] - self.times[0])

    # ---------------------------------------------------------------- conversions

    @classmethod
    def from_frames(cls, frames: Sequence[Any], *, fps: float, source: str = "") -> FaceTrack:
        """A track from the engine's :class:`~imucap.inference.engine.FaceFrame` objects.

        Raises:
            ImucapError: No frames (the session was too short to give any).
        """
        if not frames:
            raise ImucapError(f"{source or 'the session'} gave no output frames: it is too "
                              f"short for the model")
        aus = [f.aus for f in frames]
        return cls(times=np.array([f.time_s for f in frames]),
                   weights=np.stack([f.weights for f in frames]),
                   aus=None if any(a is None for a in aus) else np.stack(aus),
                   confidence=np.array([f.confidence for f in frames], np.float32),
                   fps=fps, source=source)

    @classmethod
    def from_take(cls, take: Any, *, fps: float | None = None) -> FaceTrack:
        """A track from a :class:`imucap.datasets.takes.Take` (no model involved).

        Args:
            take: The take.
            fps: The nominal frame rate; default the take's own median rate (60 for a take of
                a single frame).
        """
        rate = fps if fps is not None else (round(take.rate_hz, 3) or 60.0)
        return cls(times=take.time_s, weights=take.weights, fps=rate,
                   head_ypr=take.head_ypr, left_eye_ypr=take.left_eye_ypr,
                   right_eye_ypr=take.right_eye_ypr, source=take.source)

    def to_take(self) -> Any:
        """The track as a :class:`imucap.datasets.takes.Take` (weights and poses)."""
        from imucap.datasets.takes import Take

        return Take(self.times, self.weights, self.head_ypr, self.left_eye_ypr,
                    self.right_eye_ypr, source=self.source or "track")

    # ---------------------------------------------------------------- derived values

    def au_intensities(self) -> np.ndarray:
        """AU intensities ``(N, 18)``: :attr:`aus`, or estimated from the weights."""
        return self.aus if self.aus is not None else au_intensities(self.weights)

    def au_presence(self, *, threshold: float = 1.0) -> np.ndarray:
        """OpenFace-style AU presence ``(N, 18)`` uint8, AU45 from blink detection.

        AU45 is 1 on the frames of a blink found by :class:`imucap.vocab.BlinkDetector` in
        the eyeBlink weights at :attr:`fps` (not merely closed eyes); the other AUs are present
        where their intensity reaches ``threshold`` (FACS grade A by default).
        """
        blinks = detect_blinks(eye_blink(self.weights), self.fps).presence
        return au_presence(self.au_intensities(), threshold=threshold, blink_presence=blinks)

    def sample(self, times: np.ndarray | Sequence[float]) -> np.ndarray:
        """Weights at arbitrary times ``(K,)`` → ``(K, 52)``, linearly interpolated (held at the
        ends), as an animation tool plays the track's keyframes."""
        t = np.asarray(times, dtype=np.float64)
        return np.stack([np.interp(t, self.times, self.weights[:, j])
                         for j in range(NUM_BLENDSHAPES)], axis=-1).astype(np.float32)


def _check_inputs(times: Any, accel: Any, gyro: Any, sites: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=np.float64)
    a = np.asarray(accel, dtype=np.float32)
    g = np.asarray(gyro, dtype=np.float32)
    if t.ndim != 1 or t.size < 2:
        raise ImucapError(f"a session needs at least two IMU samples, got times of shape "
                          f"{t.shape}")
    if a.shape != (t.size, len(sites), 3) or g.shape != a.shape:
        raise ImucapError(f"expected accel and gyro of shape ({t.size}, {len(sites)}, 3) for "
                          f"{len(sites)} sites, got {a.shape} and {g.shape}")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ImucapError("IMU sample times must be finite and strictly increasing")
    return t, a, g


def infer_session(checkpoint: str | Path | Any, times: Any, accel: Any, gyro: Any,
                  sites: Sequence[str], *, fps: float = 60.0, steps: int | None = None,
                  seed: int = 0, hop_frames: int = DEFAULT_HOP_FRAMES,
                  guidance_scale: float | None = None, smoothing_s: float | None = None,
                  device: str = "cpu",
                  threads: int = 0, accel_range_g: float | None = None,
                  gyro_range_dps: float | None = None, source: str = "",
                  progress: Callable[[float, float], None] | None = None) -> FaceTrack:
    """Run a trained model over a whole session as fast as it goes; collect the face track.

    Args:
        checkpoint: A checkpoint folder or a loaded :class:`~imucap.models.checkpoint.Checkpoint`
            (:func:`imucap.models.pretrained.resolve_checkpoint` gives the shipped one).
        times: IMU sample times, seconds, ``(N,)``, strictly increasing.
        accel: Specific force, m/s², ``(N, S, 3)`` in each sensor's axes.
        gyro: Angular rate, rad/s, ``(N, S, 3)``.
        sites: Site name of each of the ``S`` sensors (the model must know them).
        fps: Output frame rate.
        steps: DDIM steps per window; None for the checkpoint's own (``inference_steps``).
        seed: Seed of the sampling noise; the same seed gives the same track.
        hop_frames: Output frames per model run (module doc: speed against seams).
        guidance_scale: Classifier-free guidance; None for the checkpoint's.
        smoothing_s: Output filter sigma, seconds; None for the checkpoint's, 0 for none.
        device: ``cpu`` or ``cuda``.
        threads: Torch threads on the CPU (0: leave torch's setting); see the module doc.
        accel_range_g: Accelerometer full scale, to flag saturation (optional).
        gyro_range_dps: Gyroscope full scale (optional).
        source: Name of the session, kept in the track.
        progress: Called now and then as ``progress(seconds_done, seconds_total)``.

    Returns:
        A :class:`FaceTrack` at ``fps`` from the first sample's time (the first window's worth
        of frames is the model warming up on a partly empty window) to the last.

    Raises:
        ImucapError: Bad arrays, a bad setting, or a checkpoint that cannot run here (unknown
            sites, missing statistics, missing files).
    """
    from imucap.inference.engine import EngineConfig, StreamingEngine
    from imucap.models.checkpoint import load_checkpoint

    t, a, g = _check_inputs(times, accel, gyro, sites)
    if not (np.isfinite(fps) and fps > 0):
        raise ImucapError(f"fps must be positive, got {fps}")
    if isinstance(hop_frames, bool) or not isinstance(hop_frames, (int, np.integer)) \
            or hop_frames < 1:
        raise ImucapError(f"hop_frames must be a positive whole number, got {hop_frames!r}")
    ckpt = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    training = ckpt.training or {}
    steps = int(steps if steps is not None else training.get("inference_steps",
                                                              EngineConfig().steps))
    if not 1 <= steps <= 1000:
        raise ImucapError(f"steps must be between 1 and 1000, got {steps}")
    guidance = float(guidance_scale if guidance_scale is not None
                     else training.get("guidance_scale", 1.0))
    config = EngineConfig(output_rate_hz=float(fps), steps=steps, guidance_scale=guidance,
                          hop_frames=int(hop_frames), device=device, seed=int(seed),
                          threads=int(threads), smoothing_s=smoothing_s)
    engine = StreamingEngine(ckpt, tuple(sites), config, accel_range_g=accel_range_g,
                             gyro_range_dps=gyro_range_dps)
    frames: list[Any] = []
    total = float(t[-1] - t[0])
    every = max(1, t.size // 100)
    # One sample per push, as a device delivers them: the engine then runs exactly once per
    # hop (a bigger push could skip a run and flag the frames in between as catching up).
    for k in range(t.size):
        engine.push_samples(t[k:k + 1], a[k:k + 1], g[k:k + 1])
        frames.extend(engine.pull())
        if progress is not None and k % every == 0:
            progress(float(t[k] - t[0]), total)
    # The last frames since the last run wait for a run that no sample will trigger now: one
    # more run, allowed by a hop of one, emits them (the session ends at its last sample).
    engine.config.hop_frames = 1
    frames.extend(engine.pull())
    if progress is not None:
        progress(total, total)
    return FaceTrack.from_frames(frames, fps=fps, source=source)
