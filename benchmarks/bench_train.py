"""Training throughput: windows/s of the shipped model size (``experiment=ship``) on the CPU,
and on a CUDA GPU (bf16) when one is available.

Synthesises a small 11-site dataset, then times 30 training steps after 5 warm-up steps.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def main() -> None:
    import torch

    from imucap.datasets.synth import synthesize
    from imucap.models.config import compose_config
    from imucap.models.train import train

    root = Path(tempfile.mkdtemp(prefix="imucap-bench-train-"))
    synthesize(root / "ds", subjects=4, minutes=0.5, imu_rate_hz=100, placement="imusic11",
               seed=0)
    print(f"imucap training throughput, experiment=ship (model=small), 11 sites at 100 Hz, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores")
    trainers = ["cpu"] + (["gpu"] if torch.cuda.is_available() else [])
    for trainer in trainers:
        for stage in ("prior", "conditional"):
            lines: list[str] = []
            train(compose_config([
                "experiment=ship", f"trainer={trainer}", f"data.path={root / 'ds'}",
                f"trainer.out_dir={root / (trainer + stage)}", f"trainer.stage={stage}",
                "trainer.max_steps=35", "trainer.epochs=100", "trainer.log_every=35",
                "trainer.batch_size=32", "trainer.eval_every_epochs=1000"]),
                progress=lines.append)
            rate = [ln for ln in lines if "windows/s" in ln][-1].rsplit(" ", 2)[-2]
            print(f"  {trainer:4s} {stage:12s}: {rate} windows/s (batch 32, 1 s windows)")


if __name__ == "__main__":
    main()
