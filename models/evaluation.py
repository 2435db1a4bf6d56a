"""``imucap eval``: a checkpoint against baselines on one split of a dataset, with plots.

:func:`evaluate_checkpoint` scores the model on the windows of a split (held-out subjects by
default: the ``test`` split), and beside it every baseline it is given:

- baselines fitted here on the same dataset's training split (``mean``, ``ridge``, ``gru``;
  ``mean`` and ``ridge`` take seconds, ``gru`` minutes);
- saved ones: a baseline folder (:meth:`imucap.models.baselines.Baseline.save`) or a
  checkpoint of the Transformer regressor (``model.diffusion=false``). A checkpoint that ships
  its baselines in ``baselines/`` brings them along.

It also drops one site at a time (the per-sensor ablation) and reports how much the MAE grows.
Every model sees the IMU windows normalised with the checkpoint's own statistics, and the
dataset's rates and sites must be the checkpoint's (checked first, with one clear message).

Written to the output folder: ``metrics.json`` (every model's :func:`~.metrics.evaluate` dict,
the ablation and what was run), ``report.txt`` (the side-by-side table) and, with matplotlib,
``error_per_blendshape.png``, ``curves.png`` (predicted against true curves for a clip) and
``ablation.png``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import ARKIT_NAMES

from .metrics import evaluate, format_report

FIT_KINDS = ("mean", "ridge", "gru")
"""Baselines :func:`evaluate_checkpoint` can fit on the spot."""

CURVE_NAMES = ("jawOpen", "eyeBlinkLeft", "browInnerUp", "mouthSmileLeft", "mouthPucker",
               "cheekPuff")
"""Blendshapes drawn in ``curves.png``."""


@dataclass
class EvalReport:
    """What :func:`evaluate_checkpoint` found.

    Attributes:
        metrics: Model name → :func:`~.metrics.evaluate` dict; the checkpoint comes first.
        ablation: Site → MAE with that site dropped (empty when not run).
        report: The plain-text table.
        files: Paths written.
        predictions: Model name → ``(N, Wb, 52)`` predictions (for plots and tests).
        truth: ``(N, Wb, 52)`` true weights.
    """

    metrics: dict[str, dict[str, Any]]
    ablation: dict[str, float]
    report: str
    files: list[Path] = field(default_factory=list)
    predictions: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    truth: np.ndarray | None = field(default=None, repr=False)


def check_compatible(ckpt: Any, info: Any, where: str, *, sites: bool = True) -> list[int]:
    """The checkpoint's vocabulary rows of the dataset's sites, after checking its rates.

    With ``sites=False`` only the rates are checked (fine-tuning may add sites) and the
    result is empty.

    Raises:
        ImucapError: Another IMU or blendshape rate, or sites the model never saw.
    """
    from .checkpoint import CheckpointError

    t = ckpt.training
    for key, have, what in (("imu_rate_hz", info.imu_rate_hz, "IMU"),
                            ("blendshape_rate_hz", info.blendshape_rate_hz, "blendshape")):
        want = t.get(key)
        if want is not None and abs(float(want) - float(have)) > 1e-6:
            raise ImucapError(f"{where} has {what} data at {have:g} Hz; the model was trained at "
                              f"{float(want):g} Hz: make or record the data at {float(want):g} Hz "
                              f"(imucap dataset synth --rate-hz …) or train a model for it")
    if not sites:
        return []
    try:
        return ckpt.site_ids(list(info.sites))
    except CheckpointError as exc:
        raise ImucapError(f"{where}: {exc}") from None


def _windows(dataset: Any, split: str, window_s: float, hop_s: float, stats: Any) -> Any:
    from imucap.datasets.dataset import WindowDataset

    windows = WindowDataset(dataset, split=split, window_s=window_s, hop_s=hop_s)
    if stats is not None:
        windows.stats = stats
    return windows


def _predict_checkpoint(ckpt: Any, windows: Any, site_ids: list[int], *, steps: int,
                        guidance_scale: float, seed: int,
                        sensor_mask: np.ndarray | None = None,
                        model: Any = None) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from .checkpoint import build_model
    from .scheduler import DiffusionScheduler, SchedulerConfig
    from .train import predict_windows

    model = model if model is not None else build_model(ckpt)
    scheduler = DiffusionScheduler(SchedulerConfig.from_dict(ckpt.scheduler_config or {}))
    mask = None if sensor_mask is None else torch.from_numpy(sensor_mask)
    t = ckpt.training
    smooth = float(t.get("output_smoothing_s", 0.0)) * float(t.get("blendshape_rate_hz", 60.0))
    return predict_windows(model, scheduler, windows, torch.tensor(site_ids), steps=steps,
                           guidance_scale=guidance_scale, device=torch.device("cpu"),
                           seed=seed, sensor_mask=mask, smooth=smooth)


def _label(path: Path, ckpt: Any) -> str:
    kind = "transformer" if not ckpt.model_config.get("diffusion", True) else "diffusion"
    return kind if path.parent.name == "baselines" else f"{kind}:{path.name}"


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, *, split: str = "test",
                        out_dir: str | Path | None = None, steps: int | None = None,
                        guidance_scale: float | None = None,
                        fit: Sequence[str] = ("mean", "ridge"),
                        compare: Sequence[str | Path] = (), shipped_baselines: bool = True,
                        ablation: bool = True, seed: int = 0, plots: bool = True,
                        save_fitted: str | Path | None = None,
                        progress: Callable[[str], None] | None = None) -> EvalReport:
    """Score a checkpoint and baselines on one split; write the report to ``out_dir``.

    Args:
        checkpoint: The model's checkpoint folder.
        data: A dataset folder (``imucap dataset synth`` or recorded sessions).
        split: Split to score (``test``: the held-out subjects).
        out_dir: Where to write ``metrics.json``, ``report.txt`` and plots (None: nowhere).
        steps: DDIM steps (default: the checkpoint's).
        guidance_scale: Classifier-free guidance (default: the checkpoint's).
        fit: Baselines to fit on the dataset's training split (:data:`FIT_KINDS`).
        compare: Saved baselines or regressor checkpoints to score too.
        shipped_baselines: Also score the baselines stored in the checkpoint's ``baselines/``.
        ablation: Drop each site in turn and score again.
        seed: Sampling noise seed.
        plots: Draw the PNGs (needs matplotlib).
        save_fitted: Save the baselines fitted here in this folder (one subfolder each), e.g.
            a checkpoint's ``baselines/`` so later evaluations bring them along.
        progress: Called with a line of text as work advances.

    Raises:
        ImucapError: Unusable checkpoint or data, or a split without windows.
    """
    from imucap.datasets.dataset import open_dataset

    from .baselines import GRUBaseline, MeanBaseline, RidgeBaseline, load_baseline
    from .checkpoint import build_model, load_checkpoint

    say = progress or (lambda _text: None)
    unknown = [k for k in fit if k not in FIT_KINDS]
    if unknown:
        raise ImucapError(f"cannot fit baseline {', '.join(unknown)}: choose from "
                          f"{', '.join(FIT_KINDS)}")
    ckpt_path = Path(checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    dataset = open_dataset(data)
    info = dataset.info
    site_ids = check_compatible(ckpt, info, str(data))
    stats = ckpt.norm_stats(info.sites, info.stats) or info.stats
    t = ckpt.training
    window_s = float(t.get("window_s", 2.0))
    steps = int(steps if steps is not None else t.get("inference_steps", 4))
    guidance = float(guidance_scale if guidance_scale is not None else
                     t.get("guidance_scale", 1.0))
    windows = _windows(dataset, split, window_s, window_s, stats)
    if len(windows) == 0:
        raise ImucapError(f"{data} has no {window_s:g} s windows in its {split!r} split: pick "
                          f"another split (--split) or use a larger dataset")
    diffusion = ckpt.model_config.get("diffusion", True)
    name = f"diffusion ({steps} steps)" if diffusion else "transformer"
    say(f"scoring {ckpt_path} on {len(windows)} {split} windows of {window_s:g} s")
    model = build_model(ckpt)
    t0 = time.perf_counter()
    pred, true = _predict_checkpoint(ckpt, windows, site_ids, steps=steps,
                                     guidance_scale=guidance, seed=seed, model=model)
    predictions = {name: pred}
    metrics = {name: evaluate(pred, true, info.blendshape_rate_hz)}
    timing = {name: time.perf_counter() - t0}

    # Saved baselines: folders and regressor checkpoints.
    saved = [Path(p) for p in compare]
    shipped = ckpt_path / "baselines"
    if shipped_baselines and shipped.is_dir():
        saved += sorted(p for p in shipped.iterdir() if p.is_dir())
    for path in saved:
        t0 = time.perf_counter()
        if (path / "checkpoint.json").exists():
            other = load_checkpoint(path)
            ids = check_compatible(other, info, str(data))
            other_windows = windows
            if abs(float(other.training.get("window_s", window_s)) - window_s) > 1e-9:
                w = float(other.training["window_s"])
                other_windows = _windows(dataset, split, w, w, stats)
            label = _label(path, other)
            p, tr = _predict_checkpoint(other, other_windows, ids, steps=steps,
                                        guidance_scale=1.0, seed=seed)
        else:
            base = load_baseline(path)
            if base.n_sites != len(info.sites):
                raise ImucapError(f"baseline {path} was fitted on {base.n_sites} sites; "
                                  f"{data} has {len(info.sites)}")
            label = base.name
            p, tr = base.predict_dataset(windows)
        while label in metrics:
            label += "'"
        say(f"scoring {label} ({path})")
        predictions[label] = p
        metrics[label] = evaluate(p, tr, info.blendshape_rate_hz)
        timing[label] = time.perf_counter() - t0

    # Baselines fitted here.
    if fit:
        train_w = _windows(dataset, "train", window_s, window_s / 2, stats)
        val_w = _windows(dataset, "val", window_s, window_s, stats)
        makers = {"mean": MeanBaseline, "ridge": RidgeBaseline, "gru": GRUBaseline}
        for kind in fit:
            if kind in metrics:
                continue
            say(f"fitting the {kind} baseline on {len(train_w)} training windows")
            t0 = time.perf_counter()
            base = makers[kind]().fit(train_w, val_w)
            if save_fitted is not None:
                base.save(Path(save_fitted) / kind)
            p, tr = base.predict_dataset(windows)
            predictions[kind] = p
            metrics[kind] = evaluate(p, tr, info.blendshape_rate_hz)
            timing[kind] = time.perf_counter() - t0

    drops: dict[str, float] = {}
    if ablation and len(info.sites) > 1:
        for k, site in enumerate(info.sites):
            mask = np.ones((len(windows), len(info.sites)), bool)
            mask[:, k] = False
            say(f"ablation: without {site}")
            p, tr = _predict_checkpoint(ckpt, windows, site_ids, steps=steps,
                                        guidance_scale=guidance, seed=seed, sensor_mask=mask,
                                        model=model)
            drops[site] = float(np.abs(p - tr).mean())

    report = format_report(metrics)
    if drops:
        full = metrics[name]["mae"]
        lines = ["", f"per-sensor ablation ({name}): MAE with one site dropped"]
        for site, mae in sorted(drops.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {site:24s} {mae:.4f}  ({mae - full:+.4f})")
        report += "\n" + "\n".join(lines)
    result = EvalReport(metrics, drops, report, predictions=predictions, truth=true)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        doc = {"checkpoint": str(ckpt_path), "data": str(data), "split": split,
               "windows": len(windows), "window_s": window_s, "steps": steps,
               "guidance_scale": guidance, "seed": seed, "model": name,
               "seconds": timing, "metrics": metrics, "ablation_mae": drops}
        (out / "metrics.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        (out / "report.txt").write_text(report + "\n", encoding="utf-8")
        result.files += [out / "metrics.json", out / "report.txt"]
        if plots:
            result.files += draw_plots(result, out, windows, info.blendshape_rate_hz)
    return result


def draw_plots(result: EvalReport, out: Path, windows: Any, rate_hz: float) -> list[Path]:
    """``error_per_blendshape.png``, ``curves.png`` and (with an ablation) ``ablation.png``.

    Raises:
        ImucapError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImucapError("plots need matplotlib: pip install 'imucap[plot]' (or pass "
                          "--no-plots)") from None
    files = []
    names = list(result.metrics)
    x = np.arange(len(ARKIT_NAMES))
    fig, ax = plt.subplots(figsize=(16, 5))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        per = result.metrics[name]["mae_per_blendshape"]
        ax.bar(x + k * width, [per[n] for n in ARKIT_NAMES], width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, ARKIT_NAMES, rotation=90, fontsize=7)
    ax.set_ylabel("MAE (weight)")
    ax.set_title("Error per blendshape")
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(out / "error_per_blendshape.png")
    fig.savefig(files[-1], dpi=90)
    plt.close(fig)

    # A clip: the consecutive windows of the first session, end to end.
    first = windows.window_session(0)
    n = 1
    while n < len(windows) and windows.window_session(n) == first and n < 10:
        n += 1
    truth = result.truth[:n].reshape(-1, len(ARKIT_NAMES))
    t = np.arange(len(truth)) / rate_hz
    fig, axes = plt.subplots(len(CURVE_NAMES), 1, figsize=(12, 2 * len(CURVE_NAMES)),
                             sharex=True)
    for ax, bs in zip(axes, CURVE_NAMES, strict=True):
        col = ARKIT_NAMES.index(bs)
        ax.plot(t, truth[:, col], "k", lw=2, label="truth")
        for name in names[:3]:
            pred = result.predictions[name][:n].reshape(-1, len(ARKIT_NAMES))
            ax.plot(t, pred[:, col], lw=1, label=name)
        ax.set_ylabel(bs, fontsize=8)
        ax.set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1].set_xlabel(f"time (s), session {first}")
    fig.suptitle("Predicted against true")
    fig.tight_layout()
    files.append(out / "curves.png")
    fig.savefig(files[-1], dpi=90)
    plt.close(fig)

    if result.ablation:
        full = result.metrics[names[0]]["mae"]
        sites = sorted(result.ablation, key=lambda s: -result.ablation[s])
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(sites) + 1.5))
        ax.barh(sites[::-1], [result.ablation[s] - full for s in sites[::-1]])
        ax.set_xlabel("MAE increase when the site is dropped")
        ax.set_title(f"Per-sensor ablation (full MAE {full:.4f})")
        fig.tight_layout()
        files.append(out / "ablation.png")
        fig.savefig(files[-1], dpi=90)
        plt.close(fig)
    return files
