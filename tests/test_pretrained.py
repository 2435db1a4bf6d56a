"""The shipped checkpoint: present, small, complete, the default, and it streams."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")


def test_the_shipped_checkpoint_is_small_complete_and_the_default():
    from imucap.firmware_bridge.sites import site_preset
    from imucap.models.checkpoint import build_model, load_checkpoint
    from imucap.models.pretrained import default_checkpoint, resolve_checkpoint

    path = default_checkpoint()
    assert resolve_checkpoint(None) == path == resolve_checkpoint("default")
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size < 16e6, f"{size / 1e6:.1f} MB is too big to keep in the repository"
    ckpt = load_checkpoint(path)
    assert tuple(ckpt.training["sites"]) == tuple(site_preset("imusic11"))
    assert ckpt.model_config["diffusion"] and ckpt.stats is not None
    assert ckpt.training["stage"] == "conditional"
    build_model(ckpt)
    # It was compared with every baseline kind, and they ship with it.
    kinds = {p.name for p in (path / "baselines").iterdir()}
    assert kinds >= {"mean", "ridge", "gru", "transformer"}
    metrics = json.loads((path / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "test" and len(metrics["metrics"]) >= 5


def test_the_shipped_checkpoint_streams_from_an_emulated_imusic_array():
    from imucap.devices import open_device
    from imucap.inference.engine import StreamingEngine
    from imucap.models.pretrained import default_checkpoint

    frames = []
    with open_device("emulator:imusic11") as device:
        engine = StreamingEngine(default_checkpoint(), tuple(device.info.sites),
                                 accel_range_g=device.info.accel_range_g)
        end = time.monotonic() + 60
        while len(frames) < 90 and time.monotonic() < end:
            try:
                engine.push(device.read(timeout_s=0.2))
            except TimeoutError:
                continue
            frames += engine.pull()
    assert len(frames) >= 90
    w = np.stack([f.weights for f in frames])
    assert np.isfinite(w).all() and w.min() >= 0 and w.max() <= 1
    assert frames[-1].confidence == 1.0 and frames[-1].aus.shape == (18,)


def test_eval_defaults_to_the_shipped_checkpoint(tmp_path):
    from imucap.datasets.synth import synthesize

    data = tmp_path / "ds"
    synthesize(data, subjects=3, minutes=0.1, imu_rate_hz=100, placement="imusic11", seed=3)
    result = subprocess.run([sys.executable, "-m", "imucap", "eval", "--data", str(data),
                             "--split", "train", "--fit", "none", "--no-ablation",
                             "--no-plots", "--no-shipped-baselines", "--out",
                             str(tmp_path / "ev")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert doc["checkpoint"].endswith("imusic11")
