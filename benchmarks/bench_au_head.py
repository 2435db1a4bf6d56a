"""The learned AU head: training speed on about 50,000 label frames, and what its parts bring.

There is no OpenFace-coded video here, so the labels come from the synthetic coder of
``tests/test_au_head.py`` (per-AU calibration curves, relation rules such as "AU6 only with a
smile", "AU7 not in a smile", "AU25 whenever the lips part", no AU28_r, success-0 frames,
label noise; see that file's docstring), on made-up expressive faces. Every figure is on
held-out pairs (other faces than the training ones), head beside the fixed mapping.

1. Speed: ``imucap au-head train`` defaults (automatic epochs) on about 50,000 label frames
   (24 pairs of 75 s at 30 fps), wall time and training frames per second.
2. Ablations on 6 training pairs (about 13,000 frames), 2 seeds each:
   the head as shipped (relation module, 2 rounds, context ±2); ``rounds=0`` (no relation
   module: each AU node still sees the whole face through its projection of the face vector);
   ``context=0`` (the labelled instant only); and a per-AU MLP without edges or face: each AU
   from its own fixed-mapping intensity only (calibration, but no relations).
3. Few data: 1 training pair, the head with and without the relation module.
4. A video that starts 0.1 s (3 video frames) later than ``--offset`` says, in training and
   held-out pairs alike: context ±2 against context 0.

Usage: ``python benchmarks/bench_au_head.py [--threads 2] [--quick]``
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from imucap.models import au_head as ah
from imucap.vocab import NUM_AUS

RELATION_AUS = ("AU06", "AU07", "AU25")


def coder_module():
    """tests/test_au_head.py, for its synthetic coder and file writers."""
    path = Path(__file__).resolve().parents[1] / "tests" / "test_au_head.py"
    spec = importlib.util.spec_from_file_location("au_head_coder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PerAuMlp(nn.Module):
    """Each AU from its own fixed-mapping intensity: a 1-16-2 MLP per AU, residual start."""

    def __init__(self, config: ah.AuHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.w1 = nn.Parameter(torch.randn(NUM_AUS, 16) * 0.5)
        self.b1 = nn.Parameter(torch.zeros(NUM_AUS, 16))
        self.w2 = nn.Parameter(torch.zeros(NUM_AUS, 16, 2))
        self.b2 = nn.Parameter(torch.zeros(NUM_AUS, 2))
        self.scale = nn.Parameter(torch.full((NUM_AUS,), 2.0))

    def forward(self, frames: torch.Tensor, fixed: torch.Tensor):
        hidden = torch.relu(fixed[:, :, None] / 5 * self.w1 + self.b1)
        out = torch.einsum("bah,aho->bao", hidden, self.w2) + self.b2
        return fixed + out[..., 0], out[..., 1] + self.scale * (fixed - 1.0)


def load(coder, folder: Path, seeds, config: ah.AuHeadConfig):
    """Pairs of the synthetic coder on disk (written once), read and aligned for ``config``."""
    pairs = []
    for seed in seeds:
        track, labels = folder / f"take{seed}.csv", folder / f"take{seed}_openface.csv"
        if not labels.exists():
            track, labels = coder.write_pair(folder, seed)
        pairs.append(ah.load_pair(track, labels, config))
    return pairs


def summary(report: dict) -> str:
    mean = report["mean"]
    rows = {r["au"]: r for r in report["aus"]}
    rel = "  ".join(f"{code} F1 {rows[code]['head']['f1']:.2f}" for code in RELATION_AUS)
    return (f"MAE {mean['head']['mae']:.3f} (fixed {mean['fixed']['mae']:.3f})  "
            f"F1 {mean['head']['f1']:.3f} (fixed {mean['fixed']['f1']:.3f})  "
            f"ICC {mean['head']['icc']:.3f} (fixed {mean['fixed']['icc']:.3f})  {rel}")


def run_variant(name: str, train, held, config, seeds, make_model=None, epochs=None) -> None:
    results = []
    for seed in seeds:
        start = time.monotonic()
        head = ah.train_au_head(train, config=config, seed=seed, epochs=epochs,
                                model=make_model(config) if make_model else None)
        seconds = time.monotonic() - start
        report = ah.compare(head, held, subset="held out")
        results.append(report)
        print(f"  {name:<32} seed {seed}: {summary(report)}  [{seconds:.1f} s, "
              f"{head.training['epochs']} epochs]", flush=True)
    mae = np.mean([r["mean"]["head"]["mae"] for r in results])
    f1 = np.mean([r["mean"]["head"]["f1"] for r in results])
    print(f"  {name:<32} mean over seeds: MAE {mae:.3f}  F1 {f1:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="one seed, skip the 50k run")
    parser.add_argument("--skip-speed", action="store_true", help="skip the 50k run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    coder = coder_module()
    config = ah.AuHeadConfig()
    seeds = (0,) if args.quick else (0, 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        held = load(coder, folder, range(100, 103), config)
        print(f"held out: {len(held)} pairs, {sum(len(p.times) for p in held)} label frames")

        if not (args.quick or args.skip_speed):
            big = load(coder, folder, range(200, 224), config)
            n = sum(len(p.times) for p in big)
            print(f"\n1. speed: {len(big)} pairs, {n} label frames (80 % trained on), "
                  f"{args.threads} threads")
            start = time.monotonic()
            head = ah.train_au_head(big, config=config, seed=0)
            seconds = time.monotonic() - start
            t = head.training
            print(f"  trained in {seconds:.1f} s: {t['epochs']} epochs of {t['train_frames']} "
                  f"frames, {t['epochs'] * t['train_frames'] / seconds:,.0f} frames/s "
                  f"(validation included)")
            print(f"  held out: {summary(ah.compare(head, held, subset='held out'))}")

        train = load(coder, folder, range(6), config)
        print(f"\n2. ablations: 6 pairs, {sum(len(p.times) for p in train)} label frames")
        run_variant("head (relations, context 2)", train, held, config, seeds)
        run_variant("no relation module (rounds 0)", train, held,
                    ah.AuHeadConfig(rounds=0), seeds)
        no_context = ah.AuHeadConfig(context=0)
        run_variant("no context (context 0)", load(coder, folder, range(6), no_context),
                    load(coder, folder, range(100, 103), no_context), no_context, seeds)
        run_variant("per-AU MLP, no edges, no face", train, held, config, seeds,
                    make_model=PerAuMlp)

        print("\n3. few data: 1 training pair")
        run_variant("head (relations)", train[:1], held, config, seeds)
        run_variant("no relation module (rounds 0)", train[:1], held,
                    ah.AuHeadConfig(rounds=0), seeds)

        print("\n4. the video starts 0.1 s later than the offset given (6 pairs)")
        late = folder / "late"
        late.mkdir()
        paths = [coder.write_pair(late, seed, offset_s=0.1) for seed in (*range(6), 100, 101,
                                                                          102)]
        for context in (2, 0):
            shifted = ah.AuHeadConfig(context=context)
            pairs = [ah.load_pair(t, lab, shifted) for t, lab in paths]
            run_variant(f"context {context}", pairs[:6], pairs[6:], shifted, seeds)


if __name__ == "__main__":
    main()
