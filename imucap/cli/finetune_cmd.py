"""``imucap finetune``: adapt a trained model to a new wearer from a few minutes of paired data."""

from __future__ import annotations

import argparse

from imucap.errors import ImucapError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="adapt a model to a new wearer from paired IMU + blendshape data",
        description="Fine-tune a checkpoint on a dataset of your own sessions (stage-2 training "
                    "from the checkpoint with a small learning rate). Extra Hydra overrides "
                    "may follow, e.g. trainer.batch_size=8.")
    p.add_argument("--data", required=True, metavar="PATH", help="dataset folder of your sessions")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder to write")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (small: adapt, "
                                                          "do not forget)")
    p.add_argument("args", nargs="*", metavar="[CHECKPOINT] [KEY=VALUE ...]",
                   help="checkpoint to start from (default: the shipped model), then Hydra "
                        "overrides")
    p.set_defaults(run=run, trailing="args")


def run(args: argparse.Namespace) -> int:
    from .train_cmd import check_complete, compose_or_explain

    try:
        from imucap.models.pretrained import resolve_checkpoint
        from imucap.models.train import finetune_config, train
    except ImportError:
        raise ImucapError("fine-tuning needs the [train] extra: pip install 'imucap[train]'") \
            from None
    if args.epochs < 1:
        raise ImucapError(f"--epochs must be at least 1, got {args.epochs}")
    if not args.lr > 0:
        raise ImucapError(f"--lr must be positive, got {args.lr}")
    # argparse cannot split two optional positionals: a word without '=' is the checkpoint.
    paths = [a for a in args.args if "=" not in a]
    overrides = [a for a in args.args if "=" in a]
    if len(paths) > 1:
        raise ImucapError(f"one checkpoint at a time, got {', '.join(paths)}; settings are "
                          f"KEY=VALUE")
    args.checkpoint, args.overrides = (paths[0] if paths else None), overrides
    keep = {o.split("=", 1)[0].lstrip("+~") for o in args.overrides}
    cfg = compose_or_explain(["experiment=imu2face", *args.overrides])
    cfg = finetune_config(cfg, resolve_checkpoint(args.checkpoint), args.data, out_dir=args.out,
                          epochs=args.epochs, lr=args.lr, keep=keep)
    check_complete(cfg)
    out = train(cfg, progress=lambda text: print(text, flush=True))
    print(f"fine-tuned checkpoints in {out}/best and {out}/last; score them with "
          f"'imucap eval {out}/best --data {args.data}'")
    return 0
