"""``imucap eval`` and ``imucap finetune`` end to end on a tiny model and tiny datasets."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")
pytest.importorskip("hydra", reason="make test installs hydra-core")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from imucap.datasets.synth import synthesize

    path = tmp_path_factory.mktemp("eval") / "ds"
    synthesize(path, subjects=5, minutes=0.25, imu_rate_hz=100, placement="face6", seed=2)
    return path


def _train(data, out, *extra):
    from imucap.models.config import compose_config
    from imucap.models.train import train

    return train(compose_config(["experiment=ci_tiny", f"data.path={data}",
                                 f"trainer.out_dir={out}", "trainer.max_steps=6",
                                 "trainer.epochs=1", *extra]))


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    return _train(data, tmp_path_factory.mktemp("eval") / "run")


def test_eval_scores_model_and_baselines_side_by_side(data, run, tmp_path):
    from imucap.models.evaluation import evaluate_checkpoint

    regressor = _train(data, tmp_path / "reg", "model.diffusion=false")
    report = evaluate_checkpoint(run / "best", data, out_dir=tmp_path / "ev",
                                 fit=("mean", "ridge"), compare=[regressor / "best"], steps=2)
    names = list(report.metrics)
    assert names == ["diffusion (2 steps)", "transformer:best", "mean", "ridge"]
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert doc["split"] == "test" and doc["steps"] == 2 and set(doc["metrics"]) == set(names)
    for name in names:
        m = doc["metrics"][name]
        assert 0 <= m["mae"] <= 1 and "jitter" in m and "blink" in m and "jaw" in m
        assert set(m["mae_per_region"]) >= {"brows", "eyes", "mouth", "jaw"}
    # The mean baseline predicts one value per blendshape: no jitter at all.
    assert doc["metrics"]["mean"]["jitter"]["pred_per_s2"] == pytest.approx(0, abs=1e-9)
    # Per-sensor ablation: each of the six sites, and dropping one changes the predictions.
    assert len(report.ablation) == 6
    full = report.metrics[names[0]]["mae"]
    assert any(abs(v - full) > 1e-6 for v in report.ablation.values())
    text = (tmp_path / "ev" / "report.txt").read_text()
    assert "ridge" in text and "per-sensor ablation" in text
    for png in ("error_per_blendshape.png", "curves.png", "ablation.png"):
        assert (tmp_path / "ev" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_is_deterministic_under_a_seed(data, run):
    from imucap.models.evaluation import evaluate_checkpoint

    a = evaluate_checkpoint(run / "best", data, fit=(), ablation=False, steps=2, seed=3)
    b = evaluate_checkpoint(run / "best", data, fit=(), ablation=False, steps=2, seed=3)
    c = evaluate_checkpoint(run / "best", data, fit=(), ablation=False, steps=2, seed=4)
    key = "diffusion (2 steps)"
    np.testing.assert_array_equal(a.predictions[key], b.predictions[key])
    assert not np.array_equal(a.predictions[key], c.predictions[key])


def test_eval_refuses_data_of_another_rate_or_placement(run, tmp_path):
    from imucap.datasets.synth import synthesize

    slow = tmp_path / "slow"
    synthesize(slow, subjects=3, minutes=0.1, imu_rate_hz=50, placement="face6", seed=1)
    other = tmp_path / "other"
    synthesize(other, subjects=3, minutes=0.1, imu_rate_hz=100, placement="imusic11", seed=1)
    for path, message in ((slow, "IMU data at 50 Hz; the model was trained at 100 Hz"),
                          (other, "it does not know")):
        result = subprocess.run([sys.executable, "-m", "imucap", "eval", str(run / "best"),
                                 "--data", str(path), "--out", str(tmp_path / "e")],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr


def test_eval_command_writes_the_report(data, run, tmp_path):
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "imucap", "eval", str(run / "best"),
                             "--data", str(data), "--out", str(out), "--steps", "2",
                             "--fit", "mean", "--no-ablation", "--no-plots"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "MAE" in result.stdout and "mean" in result.stdout
    assert (out / "metrics.json").exists() and not (out / "curves.png").exists()


def test_finetune_starts_from_the_checkpoint_and_keeps_its_statistics(run, tmp_path):
    from imucap.datasets.synth import synthesize
    from imucap.models.checkpoint import load_checkpoint

    wearer = tmp_path / "wearer"
    synthesize(wearer, subjects=1, minutes=0.5, imu_rate_hz=100, placement="face6", seed=9)
    out = tmp_path / "ft"
    result = subprocess.run([sys.executable, "-m", "imucap", "finetune", str(run / "best"),
                             "--data", str(wearer), "--out", str(out), "--epochs", "1",
                             "trainer.max_steps=3", "trainer.batch_size=8"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    base, tuned = load_checkpoint(run / "best"), load_checkpoint(out / "last")
    t = tuned.training
    assert t["stage"] == "conditional" and t["step"] == 3
    cfg = (out / "config.yaml").read_text()
    assert f"init_from: {run / 'best'}" in cfg and "lr: 0.0001" in cfg
    # The wearer's data is normalised like the original training data, not by its own stats.
    assert tuned.stats["accel_mean"] == base.stats["accel_mean"]
    assert tuned.model_config == base.model_config
    moved = [k for k in base.state if not torch.equal(base.state[k], tuned.state[k])]
    assert moved, "fine-tuning changed no weight"


def test_finetune_bad_arguments_are_one_line(run, tmp_path):
    for args, message in ((["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
                           "no dataset at"),
                          (["--data", "x", "--out", "o", "--lr", "0"], "--lr must be positive"),
                          (["--data", "x", "--out", "o", "trainer.bogus=1"], "trainer.bogus")):
        result = subprocess.run([sys.executable, "-m", "imucap", "finetune", str(run / "best"),
                                 *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr
