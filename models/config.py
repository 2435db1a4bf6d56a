"""Training configuration: structured schemas for Hydra, so a typo fails before any work.

The values live in YAML groups shipped in :mod:`imucap.models.conf` (``model/``, ``data/``,
``trainer/``, ``experiment/``); the dataclasses here are their schemas, registered in Hydra's
ConfigStore. Compose a configuration in code with :func:`compose_config` (tests do), or on the
command line with ``imucap train experiment=imu2face data.path=…``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, get_type_hints

from omegaconf import MISSING

from .denoiser import DenoiserConfig
from .scheduler import SchedulerConfig


def _schema_from(cls: type, name: str, extra: list[tuple[str, type, Any]]) -> type:
    """A mutable Hydra schema with ``cls``'s fields and defaults, plus ``extra`` fields.

    The model's and the scheduler's own dataclasses stay the single source of their settings;
    the schema only adds what Hydra needs (a group name, sampling options).
    """
    hints = get_type_hints(cls)
    own = [(f.name, hints[f.name], field(default=f.default)) for f in fields(cls)]
    return make_dataclass(name, [*extra, *own])


ModelSchema = _schema_from(DenoiserConfig, "ModelSchema", [("name", str, "small")])
"""Denoiser sizes (the fields of :class:`~imucap.models.denoiser.DenoiserConfig`) and a name."""

SchedulerSchema = _schema_from(SchedulerConfig, "SchedulerSchema", [
    ("inference_steps", int, 4), ("guidance_scale", float, 1.0),
    ("output_smoothing_s", float, 0.0)])
"""The noise schedule (:class:`~imucap.models.scheduler.SchedulerConfig`) and sampling options:
steps, guidance, and the sigma in seconds of the Gaussian filter over each sampled window
(:func:`~imucap.models.train.smooth_frames`; 0 for none), kept in the checkpoint."""


@dataclass
class DataSchema:
    """Which dataset and how to cut it into windows."""

    name: str = "synth"
    path: str = MISSING
    window_s: float = 2.0
    hop_s: float = 0.5
    num_workers: int = 0


@dataclass
class TrainerSchema:
    """How to train."""

    name: str = "cpu"
    stage: str = "conditional"  # "prior" (blendshapes alone) or "conditional" (IMU to face)
    epochs: int = 10
    max_steps: int = 0  # 0: no limit besides epochs
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    grad_clip: float = 1.0
    sensor_drop_prob: float = 0.1  # chance a sensor is masked out of a training window
    device: str = "auto"  # "auto", "cpu", "cuda"
    precision: str = "fp32"  # "fp32" or "bf16" (autocast on GPU)
    seed: int = 0
    log_every: int = 50
    eval_every_epochs: int = 1
    out_dir: str = "runs/${now:%Y%m%d-%H%M%S}"
    init_from: str | None = None  # a checkpoint to start from (stage 2, fine-tuning); 'default'
    # or 'speech' for a shipped one
    resume: str | None = None  # a run folder to resume


@dataclass
class TrainConfig:
    """Everything one training run needs."""

    model: ModelSchema = field(default_factory=ModelSchema)
    scheduler: SchedulerSchema = field(default_factory=SchedulerSchema)
    data: DataSchema = field(default_factory=DataSchema)
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    experiment: Any = None


def register() -> None:
    """Register the schemas in Hydra's ConfigStore (safe to call twice)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="model", name="model_schema", node=ModelSchema)
    cs.store(group="data", name="data_schema", node=DataSchema)
    cs.store(group="trainer", name="trainer_schema", node=TrainerSchema)


def compose_config(overrides: list[str] | None = None):
    """Compose the training configuration from the shipped YAML groups and ``overrides``.

    Raises:
        omegaconf.errors.ConfigKeyError: An override names a key the schemas do not have.
    """
    from hydra import compose, initialize_config_module

    register()
    with initialize_config_module(config_module="imucap.models.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []))
