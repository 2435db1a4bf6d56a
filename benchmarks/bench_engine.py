"""Streaming engine speed on this machine: output frames/s sustained and per-frame latency.

Uses the shipped checkpoint (``imucap.models.pretrained``, the default model everywhere) on a
simulated 11-site IMUSIC session at 100 Hz, with the engine's defaults (a DDIM run per 60 Hz
output frame). Pushes 20 s of IMU data one sample at a time as a device would, and times every
model run. Targets on a two-core CPU: at least 60 output frames/s; p99 latency at most 16 ms.
With a CUDA GPU it reports the same there.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def run(ckpt, session, sites, *, steps: int, device: str) -> None:
    from imucap.inference.engine import EngineConfig, StreamingEngine

    engine = StreamingEngine(ckpt, sites, EngineConfig(steps=steps, device=device))
    frames = 0
    n = min(len(session.imu_time_s), 2000)
    start = time.perf_counter()
    for k in range(n):
        engine.push_samples(session.imu_time_s[k:k + 1], session.accel[k:k + 1],
                            session.gyro[k:k + 1])
        frames += len(engine.pull())
    wall = time.perf_counter() - start
    runs = np.array(engine.run_times_s)[5:] * 1e3  # the first runs warm up the allocator
    print(f"  {device}, {steps} DDIM steps: {frames / wall:6.0f} output frames/s sustained "
          f"({n / 100:.0f} s of data in {wall:.1f} s); model run per frame p50 "
          f"{np.percentile(runs, 50):.1f} ms, p99 {np.percentile(runs, 99):.1f} ms")


def main() -> None:
    import torch

    from imucap.datasets.dataset import open_dataset
    from imucap.datasets.synth import synthesize
    from imucap.models.checkpoint import load_checkpoint
    from imucap.models.pretrained import default_checkpoint

    path = default_checkpoint()
    ckpt = load_checkpoint(path)
    root = Path(tempfile.mkdtemp(prefix="imucap-bench-"))
    synthesize(root / "ds", subjects=1, minutes=0.4, imu_rate_hz=100, placement="imusic11",
               seed=5)
    ds = open_dataset(root / "ds")
    session = ds.session(0)
    n_params = sum(v.numel() for v in ckpt.state.values())
    print(f"imucap streaming engine, shipped checkpoint {path.name} ({n_params / 1e6:.2f} M "
          f"parameters, {ckpt.training.get('window_s')} s window), {len(ds.info.sites)} sites "
          f"at 100 Hz, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for steps in (2, 4):
            run(ckpt, session, ds.info.sites, steps=steps, device=device)
    print("  targets: >= 60 frames/s; p99 latency <= 16 ms (latency = one model run at the "
          "default hop of one frame)")


if __name__ == "__main__":
    main()
