"""Checkpoints: safetensors + JSON round trip, and a clear line for each way one can be wrong."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")

from imucap.models.checkpoint import (  # noqa: E402
    Checkpoint,
    CheckpointError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from imucap.models.denoiser import Denoiser, DenoiserConfig  # noqa: E402
from imucap.vocab import ARKIT_NAMES  # noqa: E402

TINY = DenoiserConfig(d_model=32, n_heads=2, n_cond_layers=1, n_layers=1, imu_patch=4,
                      n_sites=8, max_len=64, dropout=0.0)
SITES = ["frontalis_l", "frontalis_r", "mentalis"]


def make(tmp_path):
    torch.manual_seed(1)
    model = Denoiser(TINY).eval()
    ckpt = Checkpoint(TINY.to_dict(), {"num_train_timesteps": 1000}, SITES, list(ARKIT_NAMES),
                      None, {"step": 7}, model.state_dict())
    return model, save_checkpoint(tmp_path / "ckpt", ckpt)


def test_round_trip_gives_the_same_model(tmp_path):
    model, path = make(tmp_path)
    assert not list(path.glob("*.pt")) and not list(path.glob("*.pkl"))
    ckpt = load_checkpoint(path)
    again = build_model(ckpt)
    imu = torch.randn(1, 16, 3, 6)
    sample, step = torch.randn(1, 10, 52), torch.tensor([5])
    ids = torch.tensor(ckpt.site_ids(["frontalis_l", "frontalis_r", "mentalis"]))
    assert torch.equal(model(sample, step, imu, ids), again(sample, step, imu, ids))
    assert ckpt.training["step"] == 7


def test_unknown_site_says_what_to_do(tmp_path):
    _, path = make(tmp_path)
    with pytest.raises(CheckpointError, match="does not know buccinator_l: fine-tune"):
        load_checkpoint(path).site_ids(["frontalis_l", "buccinator_l"])


def test_truncated_weights_are_reported(tmp_path):
    _, path = make(tmp_path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_checkpoint(path)


def test_weights_of_another_model_are_reported(tmp_path):
    _, path = make(tmp_path)
    meta = json.loads((path / "checkpoint.json").read_text())
    meta["model_config"]["d_model"] = 64
    (path / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="of another shape"):
        build_model(load_checkpoint(path))


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format=2), "format 2"),
    (lambda m: m.update(output_names=["a"] * 52), "not the 52 ARKit blendshapes"),
    (lambda m: m.pop("sites"), "lacks 'sites'"),
])
def test_bad_descriptions_are_one_line(tmp_path, change, message):
    _, path = make(tmp_path)
    meta = json.loads((path / "checkpoint.json").read_text())
    change(meta)
    (path / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_missing_or_foreign_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(CheckpointError, match="is not a checkpoint folder"):
        load_checkpoint(tmp_path / "x")
