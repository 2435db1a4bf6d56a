"""``imucap eval``: score a checkpoint against baselines on held-out data; metrics and plots."""

from __future__ import annotations

import argparse

from imucap.errors import ImucapError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="score a checkpoint and baselines on a dataset split (metrics + plots)",
        description="Score a checkpoint on a split of a dataset (the held-out test subjects by "
                    "default) next to baselines, drop each sensor in turn, and write "
                    "metrics.json, report.txt and PNG plots.")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="checkpoint folder (default: the shipped model)")
    p.add_argument("--data", required=True, metavar="PATH", help="dataset folder")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write the report (default: eval-<split>)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance")
    p.add_argument("--fit", default="mean,ridge", metavar="KINDS",
                   help="baselines to fit on the dataset's training split: mean, ridge, gru "
                        "(comma-separated; 'none' for none)")
    p.add_argument("--compare", nargs="*", default=[], metavar="PATH",
                   help="saved baselines or regressor checkpoints to score too")
    p.add_argument("--no-shipped-baselines", action="store_true",
                   help="leave out the baselines stored with the checkpoint")
    p.add_argument("--no-ablation", action="store_true", help="skip the per-sensor ablation")
    p.add_argument("--no-plots", action="store_true", help="write no PNGs")
    p.add_argument("--save-baselines", default=None, metavar="DIR",
                   help="keep the baselines fitted here (one folder each) for later runs")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from imucap.models.evaluation import evaluate_checkpoint
        from imucap.models.pretrained import resolve_checkpoint
    except ImportError:
        raise ImucapError("evaluation needs the [train] extra: pip install 'imucap[train]'") \
            from None
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise ImucapError(f"--steps must be between 1 and 1000, got {args.steps}")
    from imucap.datasets.speech import is_speech_dataset

    if is_speech_dataset(args.data):
        return _run_speech(args)
    fit = [] if args.fit.strip().lower() == "none" else \
        [k.strip() for k in args.fit.split(",") if k.strip()]
    out = args.out or f"eval-{args.split}"
    report = evaluate_checkpoint(
        resolve_checkpoint(args.checkpoint), args.data, split=args.split, out_dir=out,
        steps=args.steps, guidance_scale=args.guidance, fit=fit, compare=args.compare,
        shipped_baselines=not args.no_shipped_baselines, ablation=not args.no_ablation,
        seed=args.seed, plots=not args.no_plots, save_fitted=args.save_baselines,
        progress=lambda text: print(text, flush=True))
    print(report.report)
    print(f"wrote {', '.join(str(f) for f in report.files)}")
    return 0


def _run_speech(args: argparse.Namespace) -> int:
    """A speech model on a speech dataset: the model beside the viseme model, ridge
    regression and the mean face (see :mod:`imucap.models.speech_eval`)."""
    from pathlib import Path

    from imucap.datasets.speech import open_speech_dataset
    from imucap.inference.speech import load_speech_model
    from imucap.models.speech_eval import evaluate_speech, write_report

    model = load_speech_model(args.checkpoint, threads=1)
    dataset = open_speech_dataset(args.data)
    metrics = evaluate_speech(model, dataset, split=args.split, steps=args.steps,
                              seed=args.seed, say=lambda text: print(text, flush=True))
    out = Path(args.out or f"eval-{args.split}")
    files = write_report(metrics, out, plots=not args.no_plots)
    print((out / "report.txt").read_text(encoding="utf-8"), end="")
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0
