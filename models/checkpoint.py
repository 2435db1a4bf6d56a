"""Model checkpoints: safetensors weights and a JSON description, never pickle.

A checkpoint is a folder with ``model.safetensors`` (the weights) and ``checkpoint.json``:
format version, the denoiser's and the scheduler's configs, the site vocabulary (which site
name each embedding row stands for), the blendshape names of the output channels, the
normalisation statistics of the training data, and free training information (step, metrics,
the command that made it). Loading checks everything a user could get wrong and says what does
not match, in one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imucap.errors import ImucapError
from imucap.vocab import ARKIT_NAMES

CHECKPOINT_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "checkpoint.json"


class CheckpointError(ImucapError):
    """A checkpoint that cannot be used here."""


@dataclass
class Checkpoint:
    """Everything needed to run a trained model.

    Attributes:
        model_config: The denoiser's config (``DenoiserConfig.to_dict()``).
        scheduler_config: The noise scheduler's config (None for a regressor).
        sites: Site name of each row of the site vocabulary.
        output_names: Names of the output channels (the 52 ARKit names, maybe head angles).
        stats: Normalisation statistics (``NormStats.to_json()``) the model was trained with.
        training: Free-form: step, epoch, metrics, command, versions.
        state: The weights, name → tensor.
    """

    model_config: dict[str, Any]
    scheduler_config: dict[str, Any] | None
    sites: list[str]
    output_names: list[str]
    stats: dict[str, Any] | None
    training: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict, repr=False)

    def site_ids(self, sites: tuple[str, ...] | list[str]) -> list[int]:
        """Vocabulary rows of a device's sites.

        Raises:
            CheckpointError: A site the model never saw (the message lists them).
        """
        if input_kind(self) == "audio" and "audio" not in sites:
            raise CheckpointError(
                "this is a speech-to-face model, which reads audio, not IMU signals: use it "
                "with 'imucap convert SPEECH.wav --model …', or pick an IMU model")
        unknown = [s for s in sites if s not in self.sites]
        if unknown:
            raise CheckpointError(
                f"the model was trained for sites {', '.join(self.sites)}; it does not know "
                f"{', '.join(unknown)}: fine-tune it on data from this placement "
                f"('imucap finetune') or use a matching checkpoint")
        return [self.sites.index(s) for s in sites]


    def norm_stats(self, sites: Sequence[str], fallback: Any = None) -> Any:
        """The normalisation statistics (a ``NormStats``) for ``sites``, matched by site name.

        A site the training data did not have takes its row from ``fallback`` (a
        ``NormStats`` of the same sites, e.g. a new dataset's) or else the mean over the
        trained sites. None when the checkpoint has no statistics.
        """
        import numpy as np

        from imucap.datasets.dataset import NormStats

        if not self.stats:
            return None
        n_rows = len(self.stats.get("accel_mean", ()))
        trained = list(self.training.get("sites") or self.sites[:n_rows])
        own = NormStats.from_json(self.stats, "checkpoint stats", len(trained))
        rows = {}
        for key in ("accel_mean", "accel_std", "gyro_mean", "gyro_std"):
            have = getattr(own, key)
            rows[key] = np.stack([
                have[trained.index(site)] if site in trained
                else getattr(fallback, key)[k] if fallback is not None
                else have.mean(axis=0)
                for k, site in enumerate(sites)])
        return NormStats(rows["accel_mean"], rows["accel_std"], rows["gyro_mean"],
                         rows["gyro_std"], own.blendshape_mean, own.blendshape_std, own.n_imu,
                         own.n_blendshape, own.split)


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write a checkpoint folder (weights first, then the description, each atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (WEIGHTS_FILE + ".part")
    save_file({k: v.detach().contiguous().cpu() for k, v in ckpt.state.items()}, str(tmp))
    os.replace(tmp, path / WEIGHTS_FILE)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "model_config": ckpt.model_config,
        "scheduler_config": ckpt.scheduler_config,
        "sites": list(ckpt.sites),
        "output_names": list(ckpt.output_names),
        "stats": ckpt.stats,
        "training": ckpt.training,
    }
    tmp = path / (META_FILE + ".part")
    tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path / META_FILE)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint folder.

    Raises:
        CheckpointError: Missing, truncated or corrupt files; another format version; output
            channels that are not ARKit blendshapes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS_FILE, META_FILE):
        path = path.parent
    meta_path, weights_path = path / META_FILE, path / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not meta_path.exists() or not weights_path.exists():
        raise CheckpointError(f"{path} is not a checkpoint folder: it needs {META_FILE} and "
                              f"{WEIGHTS_FILE}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{meta_path} is damaged (not JSON): re-download or re-train "
                              f"the checkpoint") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path} is not a checkpoint description")
    version = meta.get("format")
    if version != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {version!r}; this imucap reads format "
                              f"{CHECKPOINT_FORMAT}: use the imucap version that wrote it")
    for key in ("model_config", "sites", "output_names"):
        if key not in meta:
            raise CheckpointError(f"{meta_path} lacks {key!r}: the checkpoint is damaged")
    names = meta["output_names"]
    if list(names[:52]) != list(ARKIT_NAMES):
        raise CheckpointError(f"{path}: its outputs are not the 52 ARKit blendshapes in ARKit "
                              f"order; this imucap cannot use it")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path} is damaged or truncated ({exc}): re-download or "
                              f"re-train the checkpoint") from None
    return Checkpoint(meta["model_config"], meta.get("scheduler_config"), list(meta["sites"]),
                      list(names), meta.get("stats"), meta.get("training", {}), state)


def build_model(ckpt: Checkpoint):
    """The denoiser of a checkpoint with its weights loaded, in eval mode.

    Raises:
        CheckpointError: The weights do not fit the described model (names or shapes).
    """
    from .denoiser import Denoiser, DenoiserConfig

    try:
        config = DenoiserConfig.from_dict(ckpt.model_config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint's model settings are not valid here: {exc}") \
            from None
    model = Denoiser(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ckpt.state))
    unexpected = sorted(set(ckpt.state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(ckpt.state)
                   if tuple(expected[k].shape) != tuple(ckpt.state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} weights (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown weights (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: "
                         f"{tuple(ckpt.state[k].shape)} vs {tuple(expected[k].shape)})")
        raise CheckpointError("the checkpoint's weights do not fit its model: "
                              + "; ".join(parts))
    model.load_state_dict(ckpt.state)
    return model.eval()


def input_kind(ckpt: Checkpoint) -> str:
    """What the model reads: ``"imu"`` (face IMU signals) or ``"audio"`` (speech features)."""
    return str(ckpt.training.get("input", "imu"))


def transfer_weights(model: Any, state: dict[str, Any]) -> int:
    """Load the tensors of ``state`` whose names and shapes match ``model``'s; the rest keep
    their initial values. Returns how many were loaded.

    This starts a model for another input (the audio model) from one trained on blendshapes
    (the shared stage-1 prior): the decoder and the condition encoder carry over, the input
    projection does not.
    """
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) ==
            tuple(v.shape)}
    model.load_state_dict(fits, strict=False)
    return len(fits)
