"""Training configuration composed with Hydra in code: groups, experiments, early typo errors."""

from __future__ import annotations

import pytest

pytest.importorskip("hydra", reason="make test installs hydra-core")

from omegaconf import OmegaConf  # noqa: E402
from omegaconf.errors import MissingMandatoryValue  # noqa: E402

from imucap.models.config import compose_config  # noqa: E402
from imucap.models.denoiser import DenoiserConfig  # noqa: E402


def test_default_composition_and_the_mandatory_data_path():
    cfg = compose_config(["data.path=/data/synth"])
    assert cfg.model.name == "small" and cfg.trainer.name == "cpu"
    assert cfg.data.path == "/data/synth"
    with pytest.raises(MissingMandatoryValue):
        _ = compose_config().data.path


@pytest.mark.parametrize("experiment, stage, model", [
    ("imu2face", "conditional", "small"), ("prior", "prior", "small"), ("ci_tiny", "conditional",
                                                                        "tiny")])
def test_experiments_set_their_stage_and_model(experiment, stage, model):
    cfg = compose_config([f"experiment={experiment}", "data.path=x"])
    assert cfg.trainer.stage == stage and cfg.model.name == model


@pytest.mark.parametrize("size", ["tiny", "small", "base", "large"])
def test_every_model_size_builds_a_denoiser_config(size):
    cfg = compose_config([f"model={size}", "data.path=x"])
    params = OmegaConf.to_container(cfg.model)
    params.pop("name")
    DenoiserConfig.from_dict(params)


def test_gpu_trainer_composes():
    cfg = compose_config(["trainer=gpu", "data.path=x"])
    assert cfg.trainer.precision == "bf16" and cfg.trainer.device == "cuda"


def test_a_typo_fails_early():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="model.d_modle"):
        compose_config(["data.path=x", "model.d_modle=3"])
    with pytest.raises(Exception, match="d_model"):
        compose_config(["data.path=x", "model.d_model=wide"])
