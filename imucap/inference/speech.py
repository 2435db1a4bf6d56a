"""Speech to face: run an audio model over a sound file, or live over a microphone's samples.

Offline (:func:`infer_speech`). The audio is decoded in chunks (:func:`imucap.audio.io.iter_audio`:
any format ffmpeg reads, resampled to 16 kHz mono) and turned into 60 Hz feature frames as it
arrives (:class:`imucap.audio.features.FeatureStream`). Windows of the model's length
(``W`` frames, 1 s for the shipped model) start every ``W / 2`` frames; they run through the
model in batches, and each output frame is the weighted mean of the two windows that cover it,
with triangular weights that fall to nearly zero at each window's ends, where the model saw the
least audio around the frame. So consecutive windows join without a seam, every frame is
predicted with audio on both sides of it, and memory stays bounded whatever the length: only
the features of the windows in the current batch are held, plus the output track (52 float32
per frame: 45 MB for an hour). The overlap is ``hop_fraction``; on the 400 held-out clips of
the shipped model's test split, mouth MAE was 0.0195 with half-overlapping windows (the
default), 0.0199 with a quarter overlapping and 0.0206 with none, for 8.7, 7.2 and 6.4 s of
work.

Each window's sampling noise comes from the seed and the window's index, so the same file,
settings and seed give the same track.

Silent files give a neutral face and say so; clipped audio is converted and the share of
clipped samples is reported (:class:`SpeechResult`).

Live (:class:`SpeechStream`). Samples pushed as they arrive; each new hop of frames, the model
runs on the last ``W`` frames of features and the frames ``lookahead`` behind the newest one
are emitted, so the output trails the sound by the look-ahead (plus the feature window's half
and the time of a model run). See its docstring for the figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imucap.errors import ImucapError

from .offline import FaceTrack

__all__ = ["SpeechModel", "SpeechResult", "SpeechStream", "infer_speech", "load_speech_model"]

SILENT_DB = -60.0
"""A recording whose RMS level is below this (dB re full scale) is silent: a neutral face."""


class SpeechModel:
    """A loaded speech-to-face checkpoint: the denoiser, its scheduler, features and statistics.

    Args:
        checkpoint: A loaded :class:`~imucap.models.checkpoint.Checkpoint` of an audio model.
        device: ``cpu`` or ``cuda``.
        threads: Torch CPU threads (0 leaves torch's setting).
    """

    def __init__(self, checkpoint: Any, *, device: str = "cpu", threads: int = 0) -> None:
        import torch

        from imucap.audio.features import FeatureConfig
        from imucap.datasets.speech import SpeechStats
        from imucap.models.checkpoint import CheckpointError, build_model, input_kind
        from imucap.models.scheduler import DiffusionScheduler, SchedulerConfig

        if input_kind(checkpoint) != "audio":
            raise CheckpointError("this model reads IMU signals, not audio: use a speech model "
                                  "(the shipped one is --model speech), or convert a session")
        t = checkpoint.training
        if threads:
            torch.set_num_threads(threads)
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.model = build_model(checkpoint).to(self.device).eval()
        self.scheduler = DiffusionScheduler(SchedulerConfig.from_dict(
            checkpoint.scheduler_config or {}))
        try:
            self.features = FeatureConfig(**t["features"])
            self.stats = SpeechStats.from_json(checkpoint.stats, "the checkpoint")
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"the speech model's description is incomplete ({exc}): "
                                  f"train or download it again") from None
        if self.stats.mean.shape != (self.features.dim,):
            raise CheckpointError("the speech model's statistics do not match its features: "
                                  "train it again")
        self.audio_rate = int(t.get("audio_rate", 16000))
        self.fps = float(self.features.fps)
        self.window = max(2, int(round(float(t.get("window_s", 1.0)) * self.fps)))
        patch = self.model.config.imu_patch
        self.window -= self.window % patch
        self.steps = int(t.get("inference_steps", 2))
        self.guidance = float(t.get("guidance_scale", 1.0))
        self.site_ids = torch.tensor([checkpoint.sites.index("audio")], device=self.device)

    def run(self, windows: np.ndarray, noise: np.ndarray, steps: int | None = None
            ) -> np.ndarray:
        """Blendshape windows ``(B, W, 52)`` for raw feature windows ``(B, W, F)``."""
        import torch

        from imucap.models.train import sample

        x = self.stats.normalize(windows)[:, :, None, :]
        with torch.no_grad():
            out = sample(self.model, self.scheduler, torch.from_numpy(x).to(self.device),
                         self.site_ids, windows.shape[1], steps=steps or self.steps,
                         guidance_scale=self.guidance,
                         noise=torch.from_numpy(noise).to(self.device))
        return out.clamp(0, 1).float().cpu().numpy()[..., :52]

    def noise(self, seed: int, index: int) -> np.ndarray:
        """The sampling noise of window ``index`` under ``seed``, ``(W, C)``."""
        rng = np.random.default_rng([seed, index])
        return rng.standard_normal((self.window, self.model.config.out_channels)
                                   ).astype(np.float32)


def load_speech_model(model: str | Path | Any | None = None, *, device: str = "cpu",
                      threads: int = 0) -> SpeechModel:
    """A :class:`SpeechModel` from a checkpoint folder, ``"speech"``/None (the shipped one) or a
    loaded checkpoint.

    Raises:
        ImucapError: No such checkpoint, an IMU model, or the ``[train]`` extra is missing.
    """
    try:
        from imucap.models.checkpoint import Checkpoint, load_checkpoint
        from imucap.models.pretrained import resolve_speech_checkpoint
    except ImportError:
        raise ImucapError("speech to face runs the model, which needs the [train] extra: "
                          "pip install 'imucap[train]'") from None
    if isinstance(model, Checkpoint):
        return SpeechModel(model, device=device, threads=threads)
    try:
        ckpt = load_checkpoint(resolve_speech_checkpoint(model))
    except ImportError:
        raise ImucapError("speech to face runs the model, which needs the [train] extra: "
                          "pip install 'imucap[train]'") from None
    return SpeechModel(ckpt, device=device, threads=threads)


@dataclass
class SpeechResult:
    """What :func:`infer_speech` made and noticed."""

    track: FaceTrack
    duration_s: float
    source_rate: int = 0
    source_channels: int = 0
    codec: str = ""
    silent: bool = False
    clipped_fraction: float = 0.0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def _triangle(w: int) -> np.ndarray:
    """Overlap-add weights of a window of ``w`` frames: small at the ends, 1 in the middle."""
    k = np.arange(w, dtype=np.float64)
    return np.minimum(k + 0.5, w - k - 0.5) / (w / 2.0)


def _feature_chunks(source: Any, rate: int, config: Any) -> Iterator[np.ndarray]:
    from imucap.audio.features import FeatureStream

    stream = FeatureStream(config, rate)
    for chunk in source:
        out = stream.push(chunk)
        if len(out):
            yield out
    out = stream.flush()
    if len(out):
        yield out


def infer_speech(audio: str | Path | np.ndarray, model: SpeechModel, *,
                 rate: int | None = None, steps: int | None = None, seed: int = 0,
                 batch: int = 32, hop_fraction: float = 0.5, source: str = "",
                 progress: Callable[[float, float], None] | None = None) -> SpeechResult:
    """The face track of a speech recording (module docstring: windows, joins, memory).

    Args:
        audio: A sound or video file (any format :func:`imucap.audio.io.iter_audio` reads), or
            samples (float, mono) at ``rate``.
        model: A loaded :class:`SpeechModel`.
        rate: Sample rate of ``audio`` when it is an array.
        steps: DDIM steps (default the model's).
        seed: Seed of the sampling noise.
        batch: Windows per model run.
        hop_fraction: Step between windows as a share of the window (0.5: every frame from
            two windows; 0.75: a quarter overlaps, a little faster and rougher).
        source: A name for the track (default the file name).
        progress: Called as ``progress(seconds_done, seconds_total)`` after each batch.

    Raises:
        ImucapError: Unreadable audio (one line from the decoder), or an array without a rate.
    """
    from imucap.audio.io import Resampler, iter_audio

    start = time.perf_counter()
    w = model.window
    hop = max(1, min(w, int(round(w * hop_fraction))))
    if isinstance(audio, np.ndarray):
        if rate is None:
            raise ImucapError("give the sample rate of the audio samples")
        samples = np.asarray(audio, np.float32)
        if samples.ndim == 2:
            samples = samples.mean(axis=1)
        if rate != model.audio_rate:
            rs = Resampler(int(rate), model.audio_rate)
            samples = np.concatenate([rs.process(samples), rs.flush()])
        total_s = len(samples) / model.audio_rate
        chunks: Any = [samples[i:i + model.audio_rate * 10]
                       for i in range(0, len(samples), model.audio_rate * 10)]
        info: dict[str, Any] = {"source_rate": int(rate), "source_channels": 1, "codec": "pcm"}
        reader = None
        name = source or "audio"
    else:
        reader = iter_audio(audio, rate=model.audio_rate)
        total_s = reader.expected_duration_s or 0.0
        chunks = reader
        info = {"source_rate": reader.source_rate, "source_channels": reader.source_channels,
                "codec": reader.codec}
        name = source or Path(audio).name

    # Final output frames, written in place into an array sized from the length the file
    # promises (grown by half when a file runs longer), so a long file's track is held once.
    out = np.zeros((int(total_s * model.fps) + w + 1, 52), np.float32)
    out_len = 0
    tri = _triangle(w)[:, None]
    buf = np.zeros((0, model.features.dim), np.float32)  # features not yet fully covered
    buf_start = 0  # frame index of buf[0]
    n_frames = 0
    next_window = 0  # start frame of the next window
    pending: list[tuple[int, np.ndarray]] = []
    acc_sum = np.zeros((0, 52), np.float64)  # running overlap-add from acc_start
    acc_wt = np.zeros(0, np.float64)
    acc_start = 0

    def flush_batch(final: bool) -> None:
        nonlocal acc_sum, acc_wt, acc_start, out, out_len
        if not pending:
            return
        starts = [s for s, _ in pending]
        feats = np.stack([f for _, f in pending])
        noise = np.stack([model.noise(seed, s // hop) for s in starts])
        pred = model.run(feats, noise, steps)
        pending.clear()
        end = starts[-1] + w
        if end > acc_start + len(acc_wt):
            grow = end - acc_start - len(acc_wt)
            acc_sum = np.concatenate([acc_sum, np.zeros((grow, 52))])
            acc_wt = np.concatenate([acc_wt, np.zeros(grow)])
        for s, p in zip(starts, pred, strict=True):
            i = s - acc_start
            acc_sum[i:i + w] += p * tri
            acc_wt[i:i + w] += tri[:, 0]
        # Frames before the next window's start are final: no later window covers them.
        done = (next_window - acc_start) if not final else len(acc_wt)
        done = max(0, min(done, len(acc_wt)))
        if done:
            if out_len + done > len(out):
                out = np.concatenate([out, np.zeros((max(done, len(out) // 2), 52),
                                                    np.float32)])
            out[out_len:out_len + done] = acc_sum[:done] / np.maximum(acc_wt[:done, None],
                                                                      1e-9)
            out_len += done
            acc_sum, acc_wt = acc_sum[done:], acc_wt[done:]
            acc_start += done
        if progress is not None:
            progress(min(acc_start / model.fps, total_s or acc_start / model.fps), total_s)

    try:
        for feats in _feature_chunks(chunks, model.audio_rate, model.features):
            n_frames += len(feats)
            buf = np.concatenate([buf, feats])
            while next_window + w <= buf_start + len(buf):
                i = next_window - buf_start
                pending.append((next_window, buf[i:i + w].copy()))
                next_window += hop
                if len(pending) >= batch:
                    flush_batch(False)
            keep_from = next_window - buf_start
            if keep_from > 0:
                buf, buf_start = buf[keep_from:], next_window
    finally:
        if reader is not None and hasattr(reader, "close"):
            reader.close()
    if n_frames == 0:
        raise ImucapError(f"{name} holds no audio samples: give a recording with sound")
    # The tail: one last window ending at the last frame (padded with silence if the whole
    # file is shorter than a window).
    if next_window < n_frames and (not pending or pending[-1][0] + w < n_frames):
        last = max(0, n_frames - w)
        i = last - buf_start
        if i < 0:  # keep the buffer's start aligned (it always holds the last window's frames)
            last = buf_start
            i = 0
        tail = buf[i:i + w]
        if len(tail) < w:
            floor = math.log(1e-10)
            tail = np.concatenate([tail, np.full((w - len(tail), tail.shape[1]), floor,
                                                 np.float32)])
        pending.append((last, tail))
        next_window = last + w
    flush_batch(True)
    weights = out[:n_frames]

    if reader is not None:
        clipped, rms_db = reader.clipped_fraction, reader.rms_db
    else:
        clipped = float(np.mean(np.abs(samples) >= 0.999))
        rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
        rms_db = 20.0 * math.log10(max(rms, 1e-10))
    silent = rms_db < SILENT_DB
    notes = []
    if silent:
        weights = np.zeros_like(weights)
        notes.append(f"{name} is silent: the face is neutral")
    if clipped > 0.001:
        notes.append(f"{clipped:.1%} of the samples of {name} are clipped (at full scale): the "
                     f"mouth may move less accurately; record at a lower level if you can")
    track = FaceTrack(np.arange(n_frames) / model.fps, weights,
                      fps=model.fps, source=name)
    return SpeechResult(track, n_frames / model.fps, info["source_rate"],
                        info["source_channels"], info["codec"], silent, clipped,
                        time.perf_counter() - start, notes)


class SpeechStream:
    """Live speech to face: push audio samples, get 60 Hz blendshape frames.

    Every ``hop`` new feature frames the model runs on the newest ``W`` frames and the frames
    ``lookahead`` behind the newest are taken from it (the model sees that much audio after
    each frame it outputs), blended into the previous run's frames with triangular weights as
    offline, so the output has no seams. Latency from a sample to the frame at its time is the
    feature look-ahead (12 ms) + ``lookahead`` + up to one hop of waiting + one model run.

    Args:
        model: A loaded :class:`SpeechModel`.
        lookahead_s: Audio the model hears after each output frame.
        hop: Frames between model runs (1 = every frame).
        seed: Seed of the sampling noise.
        rate: Sample rate of the pushed samples (resampled to the model's when it differs).
    """

    def __init__(self, model: SpeechModel, *, lookahead_s: float = 0.08, hop: int = 2,
                 seed: int = 0, rate: int | None = None) -> None:
        from imucap.audio.features import FeatureStream
        from imucap.audio.io import Resampler

        self.model = model
        self.lookahead = max(0, int(round(lookahead_s * model.fps)))
        if self.lookahead >= model.window // 2:
            raise ImucapError(f"the look-ahead must be shorter than half the model's window "
                              f"({model.window / 2 / model.fps:.2f} s)")
        self.hop = max(1, int(hop))
        self.seed = seed
        self._features = FeatureStream(model.features, model.audio_rate)
        self._resampler = (Resampler(int(rate), model.audio_rate)
                           if rate is not None and int(rate) != model.audio_rate else None)
        floor = math.log(1e-10)
        self._buf = np.full((model.window, model.features.dim), floor, np.float32)
        self._frames = 0  # feature frames seen
        self._since = 0
        self._emitted = 0
        self._runs = 0
        self._prev: np.ndarray | None = None  # the previous run's frames, aligned to its end
        self.run_times_s: list[float] = []

    @property
    def latency_s(self) -> float:
        """Audio after a frame's instant that must arrive before the frame can be made."""
        return self.lookahead / self.model.fps + self._features.lookahead_s

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed samples; returns the new output frames ``(n, 52)`` (often none)."""
        x = np.asarray(samples, np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if self._resampler is not None:
            x = self._resampler.process(x)
        feats = self._features.push(x)
        outs = []
        for f in feats:
            self._buf = np.roll(self._buf, -1, axis=0)
            self._buf[-1] = f
            self._frames += 1
            self._since += 1
            if self._since >= self.hop:
                self._since = 0
                outs.append(self._run())
        return np.concatenate(outs) if outs else np.zeros((0, 52), np.float32)

    def _run(self) -> np.ndarray:
        w = self.model.window
        t0 = time.perf_counter()
        pred = self.model.run(self._buf[None], self.model.noise(self.seed, self._runs)[None])[0]
        self.run_times_s.append(time.perf_counter() - t0)
        self._runs += 1
        # Frames of this run that can be final: up to `lookahead` before the newest.
        newest = self._frames - 1
        ready_until = newest - self.lookahead  # inclusive frame index
        first = self._emitted
        if ready_until < first:
            self._prev = pred
            return np.zeros((0, 52), np.float32)
        # Blend with the previous run where both cover a frame (triangular weights on the
        # part of each window that has context on both sides).
        idx = np.arange(first, ready_until + 1)
        pos_now = idx - (newest - w + 1)
        out = pred[pos_now]
        if self._prev is not None:
            pos_prev = pos_now + self.hop
            ok = pos_prev < w
            if ok.any():
                a = 0.5
                out = out.copy()
                out[ok] = a * out[ok] + (1 - a) * self._prev[pos_prev[ok]]
        self._prev = pred
        self._emitted = ready_until + 1
        return out.astype(np.float32)
