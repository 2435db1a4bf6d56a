"""``imucap train``: train the IMU-to-face model with Hydra overrides (``key=value`` …)."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the diffusion model (Hydra overrides: experiment=… data.path=…)",
        description="Train the IMU-to-face diffusion model, or the speech-to-face one on a "
                    "speech dataset (imucap speech-data). Settings are Hydra overrides, e.g. "
                    "'imucap train experiment=imu2face data.path=data/synth'; groups: "
                    "model=tiny|small|base|large, trainer=cpu|gpu, experiment=prior|imu2face|"
                    "ship_prior|ship|ci_tiny|audio_prior|audio2face. Several GPUs: "
                    "torchrun --nproc_per_node=N -m imucap train trainer=gpu …")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Hydra overrides")
    p.add_argument("--show", action="store_true", help="print the composed settings and stop")
    p.set_defaults(run=run)


def compose_or_explain(overrides: list[str]):
    """The composed training settings, or one line saying what is wrong with the overrides."""
    from imucap.errors import ImucapError

    try:
        from hydra.errors import ConfigCompositionException

        from imucap.models.config import compose_config
    except ImportError:
        raise ImucapError("training needs the [train] extra: pip install 'imucap[train]'") \
            from None
    try:
        return compose_config(overrides)
    except ConfigCompositionException as exc:
        first = str(exc).strip().splitlines()[0]
        raise ImucapError(f"{first} ('imucap train --help' lists the groups)") from None


def check_complete(cfg) -> None:
    """One line naming a setting that is still missing (``???``)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    from imucap.errors import ImucapError

    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        raise ImucapError(f"setting {exc.full_key} is missing: add {exc.full_key}=… "
                          f"(for example data.path=data/synth)") from None


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    cfg = compose_or_explain(args.overrides)
    check_complete(cfg)
    if args.show:
        print(OmegaConf.to_yaml(cfg, resolve=True))
        return 0
    from imucap.models.train import train

    out = train(cfg, progress=lambda text: print(text, flush=True))
    print(f"checkpoints in {out}/best and {out}/last", file=sys.stdout)
    return 0
