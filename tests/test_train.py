"""A tiny end-to-end training run on CPU: train, save, load, resume, sample."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")
pytest.importorskip("hydra", reason="make test installs hydra-core")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from imucap.datasets.synth import synthesize

    path = tmp_path_factory.mktemp("train") / "ds"
    synthesize(path, subjects=5, minutes=0.25, imu_rate_hz=100, placement="face6", seed=2)
    return path


def config(data, out, *extra):
    from imucap.models.config import compose_config

    return compose_config(["experiment=ci_tiny", f"data.path={data}", f"trainer.out_dir={out}",
                           "trainer.max_steps=8", "trainer.epochs=2", *extra])


def test_train_save_load_and_sample(data, tmp_path):
    from imucap.models.checkpoint import build_model, load_checkpoint
    from imucap.models.scheduler import DiffusionScheduler, SchedulerConfig
    from imucap.models.train import sample, train

    run = train(config(data, tmp_path / "run"))
    ckpt = load_checkpoint(run / "best")
    assert ckpt.training["step"] > 0 and ckpt.stats is not None
    assert ckpt.sites[:6] == ["frontalis_l", "frontalis_r", "zygomaticus_major_l",
                              "zygomaticus_major_r", "buccinator_l", "mentalis"]
    model = build_model(ckpt)
    sched = DiffusionScheduler(SchedulerConfig.from_dict(ckpt.scheduler_config))
    imu = torch.randn(2, 100, 6, 6)
    ids = torch.tensor(ckpt.site_ids(ckpt.sites[:6]))
    out = sample(model, sched, imu, ids, 60, steps=2, guidance_scale=1.5,
                 generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 60, 52) and torch.isfinite(out).all()


def test_resume_continues_from_the_last_step(data, tmp_path):
    from imucap.models.checkpoint import load_checkpoint
    from imucap.models.train import train

    run = train(config(data, tmp_path / "r", "trainer.max_steps=4", "trainer.epochs=1"))
    first = load_checkpoint(run / "last").training["step"]
    train(config(data, tmp_path / "r", "trainer.max_steps=8", "trainer.epochs=2",
                 f"trainer.resume={run}"))
    assert load_checkpoint(run / "last").training["step"] > first


def test_stage_two_starts_from_a_prior(data, tmp_path):
    from imucap.models.checkpoint import load_checkpoint
    from imucap.models.train import train

    prior = train(config(data, tmp_path / "prior", "trainer.stage=prior"))
    run = train(config(data, tmp_path / "cond", f"trainer.init_from={prior / 'best'}"))
    assert load_checkpoint(run / "best").training["stage"] == "conditional"


@pytest.mark.parametrize("args, message", [
    ([], "setting data.path is missing"),
    (["data.path=x", "model.d_modle=3"], "Could not override 'model.d_modle'"),
    (["data.path=/nonexistent/ds"], "no dataset at /nonexistent/ds"),
    (["data.path=x", "trainer=tpu"], "trainer"),
])
def test_train_command_bad_settings_are_one_line(args, message):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "imucap", "train", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
