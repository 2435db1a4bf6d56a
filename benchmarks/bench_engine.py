"""Streaming engine speed on the CPU: output frames/s it can sustain, and per-frame latency.

Uses a model of the shipped size (``model=small``; its speed does not depend on training, so a
two-step training run on a small synthetic dataset stands in until a checkpoint ships), an
11-site array at 100 Hz, and the engine's defaults (a 2-step DDIM run per 60 Hz output frame).
Pushes 20 s of IMU data in 10 ms chunks as a device would, and times every model run. Targets:
at least 60 output frames/s; p99 latency at most 16 ms.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import torch

    from imucap.datasets.dataset import open_dataset
    from imucap.datasets.synth import synthesize
    from imucap.inference.engine import EngineConfig, StreamingEngine
    from imucap.models.config import compose_config
    from imucap.models.train import train

    root = Path(tempfile.mkdtemp(prefix="imucap-bench-"))
    synthesize(root / "ds", subjects=3, minutes=0.5, imu_rate_hz=100, placement="imusic11",
               seed=0)
    run = train(compose_config([f"data.path={root / 'ds'}", f"trainer.out_dir={root / 'run'}",
                                "trainer.max_steps=2", "trainer.epochs=1", "model=small",
                                "trainer.batch_size=8"]), progress=lambda _: None)
    ds = open_dataset(root / "ds")
    session = ds.session(0)
    print(f"imucap streaming engine, model=small, {len(ds.info.sites)} sites at 100 Hz, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores")
    for steps in (2, 4):
        engine = StreamingEngine(run / "best", ds.info.sites, EngineConfig(steps=steps))
        frames = 0
        start = time.perf_counter()
        n = min(len(session.imu_time_s), 2000)
        for k in range(0, n, 1):
            engine.push_samples(session.imu_time_s[k:k + 1], session.accel[k:k + 1],
                                session.gyro[k:k + 1])
            frames += len(engine.pull())
        wall = time.perf_counter() - start
        runs = np.array(engine.run_times_s) * 1e3
        print(f"  {steps} DDIM steps: {frames / wall:6.0f} output frames/s sustained "
              f"(for {n / 100:.0f} s of data in {wall:.1f} s), model run per frame "
              f"p50 {np.percentile(runs, 50):.1f} ms, p99 {np.percentile(runs, 99):.1f} ms")
    print("  targets: ≥ 60 frames/s; p99 latency ≤ 16 ms (latency = one model run at the "
          "default hop of one frame)")


if __name__ == "__main__":
    main()
