"""The output filter over each sampled window (``output_smoothing_s``): what it does to a
signal, that the settings reach the checkpoint, the evaluation and the engine, and that it
calms a jittery model."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")
pytest.importorskip("hydra", reason="make test installs hydra-core")

from imucap.models.train import smooth_frames  # noqa: E402


def test_the_filter_is_a_gaussian_that_keeps_level_and_mirrors_the_ends():
    t = torch.zeros(1, 41, 2)
    t[0, 20, 0] = 1.0
    t[0, :, 1] = 0.7
    out = smooth_frames(t, 3.0)
    k = np.arange(-9, 10)
    want = np.exp(-0.5 * (k / 3.0) ** 2)
    want /= want.sum()
    np.testing.assert_allclose(out[0, 11:30, 0].numpy(), want, atol=1e-6)  # impulse response
    np.testing.assert_allclose(out[0, :, 1].numpy(), 0.7, atol=1e-6)  # a level stays put
    assert torch.equal(smooth_frames(t, 0.0), t)
    # The newest frame depends only on the window's own frames (mirrored at the end): a step
    # after it cannot leak in, so the live engine adds no latency.
    ramp = torch.linspace(0, 1, 30).view(1, 30, 1)
    assert smooth_frames(ramp, 2.0)[0, -1, 0] < 1.0
    # Short windows: the radius shrinks to fit.
    assert smooth_frames(torch.rand(2, 3, 4), 5.0).shape == (2, 3, 4)


def test_the_setting_is_checked_by_the_schema_and_saved_with_the_model(tmp_path):
    from imucap.datasets.synth import synthesize
    from imucap.models.checkpoint import load_checkpoint
    from imucap.models.config import compose_config
    from imucap.models.train import train

    synthesize(tmp_path / "ds", subjects=3, minutes=0.1, imu_rate_hz=100, placement="face6",
               seed=1)
    cfg = compose_config(["experiment=ci_tiny", f"data.path={tmp_path / 'ds'}",
                          f"trainer.out_dir={tmp_path / 'run'}", "trainer.max_steps=3",
                          "scheduler.output_smoothing_s=0.04"])
    run = train(cfg)
    ckpt = load_checkpoint(run / "last")
    assert ckpt.training["output_smoothing_s"] == pytest.approx(0.04)
    shipped = json.loads((__import__("imucap.models.pretrained", fromlist=["x"])
                          .default_checkpoint() / "checkpoint.json").read_text())
    assert shipped["training"]["output_smoothing_s"] == pytest.approx(0.05)
    with pytest.raises(Exception, match="output_smoothing_s"):  # a float, checked early
        compose_config(["scheduler.output_smoothing_s=soft"])


def test_the_engine_uses_the_checkpoints_filter_unless_told_otherwise(tmp_path):
    from imucap.datasets.dataset import open_dataset
    from imucap.datasets.synth import synthesize
    from imucap.errors import ImucapError
    from imucap.inference.offline import infer_session
    from imucap.models.checkpoint import load_checkpoint
    from imucap.models.config import compose_config
    from imucap.models.train import train

    synthesize(tmp_path / "ds", subjects=3, minutes=0.1, imu_rate_hz=100, placement="face6",
               seed=2)
    run = train(compose_config(["experiment=ci_tiny", f"data.path={tmp_path / 'ds'}",
                                f"trainer.out_dir={tmp_path / 'run'}", "trainer.max_steps=20",
                                "scheduler.output_smoothing_s=0.05"]))
    ckpt = load_checkpoint(run / "last")
    ds = open_dataset(tmp_path / "ds")
    s = ds.session(0)

    def jitter(smoothing_s):
        track = infer_session(ckpt, s.imu_time_s, s.accel, s.gyro, ds.info.sites,
                              hop_frames=4, smoothing_s=smoothing_s, threads=1)
        return track.weights, np.abs(np.diff(track.weights, n=2, axis=0)).mean()

    own, j_own = jitter(None)
    off, j_off = jitter(0.0)
    same, _ = jitter(0.05)
    np.testing.assert_array_equal(own, same)  # None: the checkpoint's 50 ms
    assert j_own < 0.5 * j_off  # a barely trained model shakes; the filter calms it
    with pytest.raises(ImucapError, match="output smoothing"):
        jitter(-1.0)
