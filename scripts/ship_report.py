"""Write the shipped checkpoint's README from its evaluation (``make checkpoint``'s last step).

Usage: python scripts/ship_report.py models/pretrained/imusic11
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str) -> None:
    path = Path(folder)
    doc = json.loads((path / "eval" / "metrics.json").read_text(encoding="utf-8"))
    ckpt = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    metrics = doc["metrics"]
    model = doc["model"]
    baselines = [name for name in metrics if name != model]
    mae = {n: metrics[n]["mae"] for n in metrics}
    jit = {n: metrics[n]["jitter"]["error_per_s2"] for n in metrics}
    best_mae = min(baselines, key=lambda n: mae[n])
    # The training mean never moves, so its jitter of error is the truth's own: the floor of
    # any prediction that moves. The jitter margin is taken against the baselines that move.
    moving = [n for n in baselines if n != "mean"] or baselines
    best_jit = min(moving, key=lambda n: jit[n])
    t = ckpt["training"]
    weights = path / "model.safetensors"
    lines = [
        "# imusic11: the shipped checkpoint",
        "",
        f"The default model of imucap: the `small` diffusion denoiser for the 11-site IMUSIC "
        f"placement ({', '.join(t['sites'])}), IMU at {t['imu_rate_hz']:g} Hz, "
        f"{t['window_s']:g} s windows, {t['inference_steps']} DDIM steps by default. "
        f"Weights: {weights.stat().st_size / 1e6:.1f} MB of safetensors.",
        "",
        "Made by `make checkpoint` (`scripts/make_checkpoint.sh`): a synthetic dataset of 24 "
        "made-up subjects × 5 min (`imucap dataset synth --subjects 24 --minutes 5 --rate-hz 100 "
        "--seed 0`), stage 1 `experiment=ship_prior`, stage 2 `experiment=ship` from it, the "
        "Transformer regressor `experiment=ship model.diffusion=false`, then `imucap eval` on "
        "the two held-out test subjects with the ridge and GRU baselines fitted on the 20 "
        "training subjects. The baselines are kept in `baselines/`, so `imucap eval` on this "
        "checkpoint always shows them side by side.",
        "",
        f"## Held-out subjects ({doc['windows']} windows of {doc['window_s']:g} s, seed "
        f"{doc['seed']})",
        "",
        "| model | MAE | RMSE | jitter of error (1/s²) | jitter pred/true | blink F1 | jawOpen r |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(v, d):
        return "n/a" if v is None else f"{v:.{d}f}"

    for name in metrics:
        m = metrics[name]
        lines.append(f"| {name} | {fmt(m['mae'], 4)} | {fmt(m['rmse'], 4)} | "
                     f"{fmt(m['jitter']['error_per_s2'], 2)} | {fmt(m['jitter']['ratio'], 2)} | "
                     f"{fmt(m['blink']['f1'], 3)} | {fmt(m['jaw']['r'], 3)} |")
    d_mae = mae[best_mae] - mae[model]
    d_jit = jit[best_jit] - jit[model]
    lines += [
        "",
        f"MAE: {model} {mae[model]:.4f} against the best baseline ({best_mae}) "
        f"{mae[best_mae]:.4f}: margin {d_mae:+.4f} ({100 * d_mae / mae[best_mae]:+.1f} %; "
        f"positive means the diffusion model is ahead).",
        f"Jitter of the error: {model} {jit[model]:.2f} against the best baseline that moves "
        f"({best_jit}) {jit[best_jit]:.2f} 1/s²: margin {d_jit:+.2f} "
        f"({100 * d_jit / jit[best_jit]:+.1f} %)"
        + (f"; the training mean, which never moves, has the truth's own "
           f"{jit['mean']:.2f}." if "mean" in jit else "."),
        "",
        "Per-sensor ablation (MAE with one site dropped): " + ", ".join(
            f"{s} {v:.4f}" for s, v in sorted(doc["ablation_mae"].items(),
                                              key=lambda kv: -kv[1])) + ".",
        "",
        "The full table is `eval/report.txt`; `eval/metrics.json` has every figure.",
        "",
    ]
    notes = path / "NOTES.md"  # hand-written notes kept across `make checkpoint`
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8").rstrip(), ""]
    (path / "README.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
