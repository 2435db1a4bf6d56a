"""Offline conversion speed: seconds of face track made or written per second of wall time.

Simulates a 60 s IMUSIC-11 session at 100 Hz, runs the model over it with
:func:`imucap.inference.offline.infer_session` (hop 1, as the live engine does, and the
offline default hop of 4; torch's default thread count and one thread), then times each writer
of :mod:`imucap.export` on the resulting 60 Hz track. The model is the shipped checkpoint, or
with ``--checkpoint PATH`` one of yours; when none is installed yet a model of the shipped size
(``experiment=ship``: ``model=small``, 1 s windows) trained for two steps stands in: its speed
does not depend on its training. Figures above 1x are faster than real time.

Usage: ``python benchmarks/bench_convert.py [--checkpoint PATH] [--seconds 60]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def stand_in_checkpoint(root: Path) -> Path:
    from imucap.datasets.synth import synthesize
    from imucap.models.config import compose_config
    from imucap.models.train import train

    synthesize(root / "train", subjects=3, minutes=0.25, imu_rate_hz=100, placement="imusic11",
               seed=1)
    run = train(compose_config(["experiment=ship", f"data.path={root / 'train'}",
                                f"trainer.out_dir={root / 'run'}", "trainer.max_steps=2",
                                "trainer.epochs=1", "trainer.batch_size=8"]),
                progress=lambda _: None)
    return run / "best"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: shipped)")
    parser.add_argument("--seconds", type=float, default=60.0, help="session length")
    args = parser.parse_args()

    import torch

    from imucap.datasets.dataset import open_dataset
    from imucap.datasets.synth import synthesize
    from imucap.errors import ImucapError
    from imucap.export import write_track
    from imucap.inference.offline import infer_session
    from imucap.models.checkpoint import load_checkpoint
    from imucap.models.pretrained import resolve_checkpoint

    root = Path(tempfile.mkdtemp(prefix="imucap-bench-convert-"))
    try:
        path = resolve_checkpoint(args.checkpoint)
        label = str(path)
    except ImucapError:
        path = stand_in_checkpoint(root)
        label = "stand-in (experiment=ship, model=small, 2 training steps; no shipped one yet)"
    ckpt = load_checkpoint(path)
    synthesize(root / "ds", subjects=1, minutes=args.seconds / 60, imu_rate_hz=100,
               placement="imusic11", seed=5)
    ds = open_dataset(root / "ds")
    s = ds.session(0)
    n_params = sum(v.numel() for v in ckpt.state.values())
    default_threads = torch.get_num_threads()
    print(f"imucap offline conversion, {s.imu_time_s[-1] - s.imu_time_s[0]:.0f} s simulated "
          f"IMUSIC-11 session at 100 Hz, {os.cpu_count()} cores")
    print(f"  model: {label} ({n_params / 1e6:.2f} M parameters, "
          f"{ckpt.training.get('window_s')} s window, "
          f"{ckpt.training.get('inference_steps')} DDIM steps)")

    track = None
    for threads in (default_threads, 1):
        for hop in (1, 4):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            track = infer_session(ckpt, s.imu_time_s, s.accel, s.gyro, ds.info.sites,
                                  hop_frames=hop, threads=threads)
            wall = time.perf_counter() - start
            print(f"  inference, hop {hop}, {threads} torch thread{'s' * (threads > 1)}: "
                  f"{track.duration_s / wall:7.1f} s of face per s ({wall:.1f} s wall)",
                  flush=True)
    assert track is not None
    for name in ("face.csv", "face.au.csv", "face.json", "face.glb", "face.gltf"):
        start = time.perf_counter()
        out = write_track(root / name, track)
        wall = time.perf_counter() - start
        print(f"  writer {name:12s}: {track.duration_s / wall:9.0f} s of face per s "
              f"({wall * 1e3:6.0f} ms, {out.stat().st_size / 1e6:5.1f} MB)", flush=True)
    print(f"  files in {root}")


if __name__ == "__main__":
    main()
