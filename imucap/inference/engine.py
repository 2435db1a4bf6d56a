"""The streaming engine: IMU frames in as they arrive, blendshape frames out at a fixed rate.

IMU samples are kept in a ring on the model's own sample grid (resampled by time when the
device runs at another rate) and normalised with the checkpoint's statistics. Every hop the
model reads the newest window (few-step DDIM). The sampling noise is tied to absolute time:
the noise of each output instant is drawn once, from the seed and the instant's index, so
windows that overlap see the same noise where they overlap and agree there, and the output is
deterministic under a seed and the engine emits every output frame whose time the window now
covers, on a fixed grid (60 Hz by default) whatever the input rate.

Seams: consecutive windows do not agree exactly where they meet, so the offset between the
last frame emitted and the new window at that time is carried into the new frames and decays
with a time constant of ``seam_s``: the output is continuous and follows the newest window.

Drop policy: the engine always reads the newest window. If a run takes longer than a hop, the
hops in between are not computed; their frames are interpolated from the newest window and
flagged ``catching_up``, so the output rate never drops.

Degradation instead of crashes: a sensor that is silent for longer than ``stale_s``, or whose
samples are NaN, is masked out of the model (which tolerates a missing sensor); a sample at
the chip's full scale is flagged ``saturated``. Every frame carries ``confidence``, the share of
the placement's sensors that were usable, and its flags.

Latency: a frame for time t leaves once the IMU sample at t has arrived and the window ending
there has been read, so its latency is the model's run time plus the wait for the next hop;
with the default hop of one output frame it is one model run.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imucap.errors import ImucapError
from imucap.frames import ImuFrame
from imucap.vocab import au_intensities


@dataclass(kw_only=True)
class EngineConfig:
    """How the engine runs.

    Attributes:
        output_rate_hz: Rate of the output frames.
        steps: DDIM steps per window.
        guidance_scale: Classifier-free guidance (1: none).
        hop_frames: Output frames between model runs (1: a run per frame).
        seam_s: Time constant over which a seam between windows fades.
        lookahead_s: Emit frames this long behind the newest IMU sample; each frame is then
            the average of every window that covered it (steadier output, more latency).
        stale_s: A sensor silent for longer than this is treated as missing.
        device: ``cpu`` or ``cuda``.
        seed: Seed of the sampling noise.
        threads: Torch threads on the CPU (0: torch's default).
        smoothing_s: Sigma (seconds) of the Gaussian filter over each sampled window; None
            for the checkpoint's own (``output_smoothing_s``), 0 for none.
    """

    output_rate_hz: float = 60.0
    steps: int = 2
    guidance_scale: float = 1.0
    hop_frames: int = 1
    seam_s: float = 0.1
    lookahead_s: float = 0.0
    stale_s: float = 0.25
    device: str = "cpu"
    seed: int = 0
    threads: int = 0
    smoothing_s: float | None = None


@dataclass(frozen=True)
class FaceFrame:
    """One output frame.

    Attributes:
        time_s: The frame's time on the IMU's host clock (``ImuFrame.host_time_s``).
        weights: The 52 ARKit weights, ARKit order, float32 in [0, 1].
        confidence: Share of the placement's sensors that were usable, 0 to 1.
        flags: Conditions of this frame: ``warming_up``, ``missing:<site>``, ``saturated``,
            ``catching_up``.
        latency_s: From the arrival of the IMU data that completed this frame to its emission.
        aus: FACS Action Unit intensities 0-5 in ``imucap.vocab.AU_NAMES`` order (OpenFace's).
    """

    time_s: float
    weights: np.ndarray
    confidence: float
    flags: frozenset[str] = field(default_factory=frozenset)
    latency_s: float = 0.0
    aus: np.ndarray | None = None


class StreamingEngine:
    """Runs a trained model on a live IMU stream.

    Args:
        checkpoint: A checkpoint folder (or a loaded :class:`~imucap.models.checkpoint.Checkpoint`).
        sites: The device's site names, in sensor order.
        config: How to run.
        accel_range_g: The device's accelerometer full scale (to flag saturation).
        gyro_range_dps: The device's gyroscope full scale.

    Raises:
        CheckpointError: The checkpoint is unusable or does not know these sites.
    """

    def __init__(self, checkpoint, sites: tuple[str, ...], config: EngineConfig | None = None,
                 *, accel_range_g: float | None = None,
                 gyro_range_dps: float | None = None) -> None:
        import torch

        from imucap.models.checkpoint import build_model, load_checkpoint
        from imucap.models.scheduler import DiffusionScheduler, SchedulerConfig

        self.config = config or EngineConfig()
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        ckpt = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
        self.sites = tuple(sites)
        self._torch = torch
        self._device = torch.device(cfg.device)
        self.model = build_model(ckpt).to(self._device)
        self.scheduler = DiffusionScheduler(SchedulerConfig.from_dict(
            ckpt.scheduler_config or {}))
        self._site_ids = torch.tensor(ckpt.site_ids(self.sites), device=self._device)
        training = ckpt.training
        self.imu_rate_hz = float(training.get("imu_rate_hz", 100.0))
        self.window_s = float(training.get("window_s", 2.0))
        self.bs_rate_hz = float(training.get("blendshape_rate_hz", 60.0))
        self._n_in = int(round(self.window_s * self.imu_rate_hz))
        self._n_out = int(round(self.window_s * self.bs_rate_hz))
        # The checkpoint's output filter, in frames of this engine's output grid.
        smooth_s = cfg.smoothing_s if cfg.smoothing_s is not None else \
            float(training.get("output_smoothing_s", 0.0))
        if not (math.isfinite(smooth_s) and 0 <= smooth_s <= 1):
            raise ImucapError(f"output smoothing must be 0 to 1 s, got {smooth_s}")
        self._smooth = smooth_s * self.bs_rate_hz
        if ckpt.stats is None:
            raise ImucapError("the checkpoint has no normalisation statistics: re-train it")
        self._norm = self._stats_for_sites(ckpt)
        self._full_scale = (None if accel_range_g is None else accel_range_g * 9.80665 * 0.999,
                            None if gyro_range_dps is None else np.deg2rad(gyro_range_dps) * 0.999)
        s = len(self.sites)
        self._ring = np.zeros((self._n_in, s, 6), np.float32)
        self._ring_valid = np.zeros((self._n_in, s), bool)
        self._grid_t: float | None = None  # time of the newest grid sample in the ring
        self._last_seen = np.full(s, -np.inf)
        self._pending: deque[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]] = \
            deque()
        self._prev_t: float | None = None
        self._prev_out: np.ndarray | None = None
        self._next_k: int | None = None  # next output instant to emit (index at output rate)
        self._last_run_k: int | None = None
        self._acc: dict[int, tuple[np.ndarray, int]] = {}
        self._saturated = False
        self._samples_seen = 0
        self._noise: dict[int, np.ndarray] = {}
        self._last_arrival = 0.0
        self.run_times_s: deque[float] = deque(maxlen=1000)

    def _stats_for_sites(self, ckpt) -> tuple[np.ndarray, np.ndarray]:
        """Per-site mean and std (S, 6) of the training data, matched by site name."""
        from imucap.datasets.dataset import STD_FLOOR

        stats = ckpt.norm_stats(self.sites)
        m = np.concatenate([stats.accel_mean, stats.gyro_mean], axis=-1)
        d = np.concatenate([stats.accel_std, stats.gyro_std], axis=-1)
        # The same floors as training's normalisation, so live inputs scale identically.
        floor = np.array([STD_FLOOR["accel"]] * 3 + [STD_FLOOR["gyro"]] * 3)
        return m.astype(np.float32), np.maximum(d, floor).astype(np.float32)

    # ------------------------------------------------------------------ input

    def push(self, frame: ImuFrame) -> None:
        """Take a device frame (SI units, host times)."""
        self.push_samples(frame.host_time_s, frame.accel, frame.gyro, frame.sensor_ok,
                          arrival_s=frame.arrival_time_s)

    def push_samples(self, t_s: np.ndarray, accel: np.ndarray, gyro: np.ndarray,
                     sensor_ok: np.ndarray | None = None, *,
                     arrival_s: float | None = None) -> None:
        """Take samples ``(n, S, 3)`` at host times ``t_s`` (n,)."""
        accel = np.asarray(accel, np.float32)
        gyro = np.asarray(gyro, np.float32)
        if accel.shape[1] != len(self.sites):
            raise ImucapError(f"the engine expects {len(self.sites)} sensors, got "
                              f"{accel.shape[1]}")
        ok = np.ones(accel.shape[1], bool) if sensor_ok is None else np.asarray(sensor_ok, bool)
        x = np.concatenate([accel, gyro], axis=-1)
        finite = np.isfinite(x).all(axis=-1) & ok[None]
        a_fs, g_fs = self._full_scale
        if a_fs is not None and np.any(np.abs(accel) >= a_fs):
            self._saturated = True
        if g_fs is not None and np.any(np.abs(gyro) >= g_fs):
            self._saturated = True
        self._pending.append((np.asarray(t_s, float), np.where(finite[..., None], x, 0.0),
                              finite, ok, time.monotonic() if arrival_s is None else arrival_s))
        self._ingest()

    def _ingest(self) -> None:
        """Move pending samples onto the model's grid (linear interpolation in time)."""
        dt = 1.0 / self.imu_rate_hz
        while self._pending:
            t, x, valid, _, arrival = self._pending.popleft()
            self._last_arrival = arrival
            for k in range(len(t)):
                seen = valid[k]
                self._last_seen[seen] = t[k]
                if self._grid_t is None:
                    self._grid_t = t[k]
                    self._push_grid(x[k], seen)
                    self._last_sample = (t[k], x[k], seen)
                    continue
                t0, x0, v0 = self._last_sample
                while self._grid_t + dt <= t[k] + 1e-9:
                    g = self._grid_t + dt
                    w = (g - t0) / (t[k] - t0) if t[k] > t0 else 1.0
                    self._push_grid((1 - w) * x0 + w * x[k], v0 & seen)
                    self._grid_t = g
                self._last_sample = (t[k], x[k], seen)
                self._samples_seen += 1

    def _push_grid(self, x: np.ndarray, valid: np.ndarray) -> None:
        self._ring = np.roll(self._ring, -1, axis=0)
        self._ring_valid = np.roll(self._ring_valid, -1, axis=0)
        self._ring[-1] = (x - self._norm[0]) / self._norm[1]
        self._ring_valid[-1] = valid

    # ------------------------------------------------------------------ output

    def pull(self) -> list[FaceFrame]:
        """Frames that can be emitted now, in time order (maybe none)."""
        if self._grid_t is None:
            return []
        cfg = self.config
        rate = cfg.output_rate_hz
        t_end = self._grid_t
        newest = int(np.floor(t_end * rate + 1e-9))  # newest output instant covered
        if self._next_k is None:
            self._next_k = newest - int(round(cfg.lookahead_s * rate))  # start at the present
        if self._last_run_k is not None and newest - self._last_run_k < cfg.hop_frames:
            return []
        catching_up = self._last_run_k is not None and \
            newest - self._last_run_k > cfg.hop_frames
        start = time.monotonic()
        window = self._run(t_end)
        self.run_times_s.append(time.monotonic() - start)
        self._last_run_k = newest
        # Add this window's prediction to every pending instant it covers.
        win_t = t_end - self.window_s + (np.arange(self._n_out) + 1) / self.bs_rate_hz
        first = max(self._next_k, int(np.ceil(win_t[0] * rate)))
        ks = np.arange(first, newest + 1)
        if len(ks):
            pred = np.stack([np.interp(ks / rate, win_t, window[:, j])
                             for j in range(window.shape[1])], axis=1)
            for k, p in zip(ks, pred, strict=True):
                total, count = self._acc.get(int(k), (0.0, 0))
                self._acc[int(k)] = (total + p, count + 1)
        last_k = newest - int(round(cfg.lookahead_s * rate))
        due = [k for k in range(self._next_k, last_k + 1)]
        if not due:
            return []
        values = []
        for k in due:
            total, count = self._acc.pop(k, (None, 0))
            values.append(total / count if count else window[-1])
        new = np.stack(values)
        times = np.array(due, float) / rate
        if self._prev_out is not None:
            # Carry the last frame's offset into the new ones, fading: no seam between runs.
            seam = self._prev_out - new[0]
            new = new + seam[None] * np.exp(-(times - self._prev_t) / cfg.seam_s)[:, None]
        new = np.clip(new, 0.0, 1.0).astype(np.float32)
        for k in [k for k in self._acc if k < last_k - 4 * self._n_out]:
            del self._acc[k]
        present = self._present(t_end)
        confidence = float(present.mean())
        flags = {f"missing:{s}" for s, p in zip(self.sites, present, strict=True) if not p}
        if self._samples_seen < self._n_in:
            flags.add("warming_up")
        if self._saturated:
            flags.add("saturated")
            self._saturated = False
        if catching_up:
            flags.add("catching_up")
        latency = time.monotonic() - self._last_arrival
        aus = au_intensities(new)
        frames = [FaceFrame(float(t), w, confidence, frozenset(flags), latency_s=latency,
                            aus=a) for t, w, a in zip(times, new, aus, strict=True)]
        self._next_k = last_k + 1
        self._prev_t = float(times[-1])
        self._prev_out = new[-1].astype(np.float64)
        return frames

    def _noise_at(self, index: int) -> np.ndarray:
        """The sampling noise of output instant ``index`` (drawn once, from seed and index)."""
        noise = self._noise.get(index)
        if noise is None:
            rng = np.random.default_rng([self.config.seed, index & 0x7FFFFFFFFFFFFFFF])
            noise = rng.standard_normal(self.model.config.out_channels).astype(np.float32)
            self._noise[index] = noise
            if len(self._noise) > 4 * self._n_out:
                for old in sorted(self._noise)[: len(self._noise) - 2 * self._n_out]:
                    del self._noise[old]
        return noise

    def _present(self, t_end: float) -> np.ndarray:
        return (t_end - self._last_seen) <= self.config.stale_s

    def _run(self, t_end: float) -> np.ndarray:
        torch = self._torch
        from imucap.models.train import sample

        present = self._present(t_end) & self._ring_valid[-1]
        imu = torch.from_numpy(self._ring.copy())[None].to(self._device)
        mask = torch.from_numpy(present)[None].to(self._device)
        first = int(round((t_end - self.window_s) * self.bs_rate_hz)) + 1
        noise = torch.from_numpy(np.stack([self._noise_at(k) for k in
                                           range(first, first + self._n_out)]))
        noise = noise[None].to(self._device)
        with torch.inference_mode():
            out = sample(self.model, self.scheduler, imu, self._site_ids, self._n_out,
                         steps=self.config.steps, guidance_scale=self.config.guidance_scale,
                         sensor_mask=mask, noise=noise, smooth=self._smooth)
        return out[0, :, :52].float().cpu().numpy()
