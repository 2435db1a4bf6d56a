"""Baseline regressors: training on a tiny synthetic dataset, shapes, saving, lazy torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from imucap.models.baselines import (
    Baseline,
    BaselineError,
    GRUBaseline,
    MeanBaseline,
    RidgeBaseline,
    load_baseline,
)

# 10 subjects × 1 min (6 train, 2 val, 2 test) at 100 Hz on the 11-site placement. Smaller
# sets (e.g. 6 × 0.5 min, 4 training subjects) leave "beats the mean" to chance: with so few
# sessions each one's mounting and chip offsets look like expressions to a model.
SYNTH = {"subjects": 10, "minutes": 1.0, "imu_rate_hz": 100.0, "placement": "imusic11",
         "seed": 0, "split_fractions": (0.6, 0.2, 0.2), "workers": 2}
WINDOW = {"window_s": 2.0, "hop_s": 1.0}
GRU_FAST = {"epochs": 10, "hidden_size": 32, "seed": 0}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    from imucap.datasets.dataset import WindowDataset
    from imucap.datasets.synth import synthesize

    path = tmp_path_factory.mktemp("baselines") / "ds"
    synthesize(path, **SYNTH)
    return {name: WindowDataset(path, name, **WINDOW) for name in ("train", "val", "test")}


@pytest.fixture(scope="module")
def fitted(splits):
    """Each baseline fitted once on the train split, with val for its choices."""
    pytest.importorskip("torch", reason="the GRU baseline needs PyTorch (make test installs it)")
    return {b.name: b.fit(splits["train"], splits["val"])
            for b in (MeanBaseline(), RidgeBaseline(), GRUBaseline(**GRU_FAST))}


def _mae(baseline: Baseline, dataset) -> float:
    pred, true = baseline.predict_dataset(dataset)
    return float(np.abs(pred - true).mean())


def test_baselines_predict_windows_of_weights(splits, fitted):
    item = splits["test"][0]
    imu = np.stack([splits["test"][i]["imu"] for i in range(3)])
    wb = item["blendshapes"].shape[0]
    for baseline in fitted.values():
        assert baseline.n_frames == wb and baseline.n_sites == imu.shape[2]
        pred = baseline.predict(imu)
        assert pred.shape == (3, wb, 52) and pred.dtype == np.float32
        assert np.all((pred >= 0.0) & (pred <= 1.0))
        # Another frame count on request (e.g. a model at another blendshape rate).
        assert baseline.predict(imu, n_frames=50).shape == (3, 50, 52)
        assert baseline.predict(imu[:, :100]).shape == (3, wb // 2, 52)


def test_baselines_beat_the_training_mean_on_held_out_subjects(splits, fitted):
    mean_mae = _mae(fitted["mean"], splits["test"])
    maes = {name: _mae(b, splits["test"]) for name, b in fitted.items()}
    print("test MAE:", {k: round(v, 4) for k, v in maes.items()})
    assert maes["ridge"] < 0.95 * mean_mae
    assert maes["gru"] < 0.95 * mean_mae
    # The mean baseline really is the training mean.
    train_bs = np.stack([splits["train"][i]["blendshapes"] for i in range(len(splits["train"]))])
    assert np.allclose(fitted["mean"].mean, train_bs.mean(axis=(0, 1), dtype=np.float64),
                       atol=1e-6)


def test_ridge_alpha_is_chosen_on_val(fitted):
    info = fitted["ridge"].fit_info
    assert info["alpha"] in info["alphas"]
    assert len(info["val_mae"]) == len(info["alphas"])
    assert info["val_mae"][info["alphas"].index(info["alpha"])] == min(info["val_mae"])


@pytest.mark.parametrize("name", ["mean", "ridge", "gru"])
def test_save_load_round_trip_predicts_identically(name, fitted, splits, tmp_path):
    baseline = fitted[name]
    folder = baseline.save(tmp_path / name)
    assert sorted(p.name for p in folder.iterdir()) == ["baseline.json", "weights.safetensors"]
    doc = json.loads((folder / "baseline.json").read_text())
    assert doc["kind"] == name and doc["format"] == 1
    imu = np.stack([splits["val"][i]["imu"] for i in range(4)])
    for loaded in (Baseline.load(folder), type(baseline).load(folder), load_baseline(folder)):
        assert type(loaded) is type(baseline) and loaded.name == baseline.name
        np.testing.assert_array_equal(loaded.predict(imu), baseline.predict(imu))


def test_load_refuses_another_kind_and_damaged_folders(fitted, tmp_path):
    folder = fitted["mean"].save(tmp_path / "mean")
    with pytest.raises(BaselineError, match="'mean' baseline"):
        RidgeBaseline.load(folder)
    with pytest.raises(BaselineError, match="no readable baseline"):
        Baseline.load(tmp_path / "nothing")
    doc = json.loads((folder / "baseline.json").read_text())
    (folder / "baseline.json").write_text(json.dumps({**doc, "format": 99}))
    with pytest.raises(BaselineError, match="format 99"):
        Baseline.load(folder)
    folder = fitted["ridge"].save(tmp_path / "ridge")
    (folder / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BaselineError, match="save the baseline again") as exc:
        Baseline.load(folder)
    assert "\n" not in str(exc.value)


def test_gru_is_deterministic_under_a_seed(splits, tmp_path):
    pytest.importorskip("torch", reason="the GRU baseline needs PyTorch (make test installs it)")
    import torch

    imu = np.stack([splits["val"][i]["imu"] for i in range(4)])
    state = torch.random.get_rng_state()
    gru = [GRUBaseline(epochs=1, hidden_size=8, seed=seed).fit(splits["train"])
           for seed in (3, 3, 4)]
    runs = [g.predict(imu) for g in gru]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    GRUBaseline.load(gru[0].save(tmp_path / "gru"))
    assert torch.equal(torch.random.get_rng_state(), state)  # global random state untouched


class _ConstantWindows:
    """A window dataset (by duck typing) whose IMU is constant in each window and whose
    targets are a known linear function of it."""

    imu_rate_hz, blendshape_rate_hz = 100.0, 50.0

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.levels = rng.normal(0.0, 1.0, (n, 2, 6)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.levels)

    def __getitem__(self, i: int) -> dict:
        c = self.levels[i]
        y = np.full((25, 52), 0.5, np.float32)
        y[:, 0] = 0.5 + 0.1 * c[0, 0] - 0.05 * c[1, 4]
        y[:, 7] = 0.3 + 0.02 * c[1, 2]
        return {"imu": np.broadcast_to(c, (50, 2, 6)).copy(), "blendshapes": y}


def test_ridge_recovers_a_linear_relation():
    train, val = _ConstantWindows(80, 0), _ConstantWindows(20, 1)
    ridge = RidgeBaseline(alphas=(1e-6, 1.0, 100.0)).fit(train, val)
    assert ridge.fit_info["alpha"] == 1e-6  # val prefers the least shrinkage on exact data
    pred, true = ridge.predict_dataset(val)
    assert np.abs(pred - true).max() < 1e-3
    mean_err = np.abs(MeanBaseline().fit(train).predict_dataset(val)[0] - true).max()
    assert mean_err > 0.05


def test_ridge_features_of_a_constant_window():
    ridge = RidgeBaseline(context_s=0.2, step_s=0.05, imu_rate_hz=100.0,
                          blendshape_rate_hz=50.0)
    ridge.n_sites = 1
    imu = np.full((2, 40, 1, 6), 3.0, np.float32)
    feats = ridge.features(imu, 20)
    taps = 2 * (20 // 5) + 1  # ±0.2 s in steps of 0.05 s
    assert ridge.n_features == (taps + 4) * 6 == feats.shape[1]
    assert feats.shape[0] == 2 * 20
    snippet, mean, std, energy, change = np.split(feats, np.cumsum([taps * 6, 6, 6, 6]), axis=1)
    np.testing.assert_allclose(snippet, 3.0)
    np.testing.assert_allclose(mean, 3.0)
    np.testing.assert_allclose(std, 0.0, atol=1e-6)
    np.testing.assert_allclose(energy, 9.0)
    np.testing.assert_allclose(change, 0.0, atol=1e-6)


def test_misuse_is_refused_with_one_line(splits, fitted):
    imu = np.stack([splits["val"][0]["imu"]])
    with pytest.raises(BaselineError, match="fit"):
        RidgeBaseline().predict(imu)
    with pytest.raises(BaselineError, match="sites"):
        fitted["ridge"].predict(imu[:, :, :5])
    with pytest.raises(BaselineError, match=r"\(B, W, S, 6\)"):
        fitted["mean"].predict(imu[0])
    with pytest.raises(BaselineError, match="rates"):
        MeanBaseline().fit([{"imu": imu[0], "blendshapes": np.zeros((120, 52))}])
    from imucap.datasets.dataset import WindowDataset

    normalised = WindowDataset(splits["train"].dataset, "train", normalize_blendshapes=True,
                               **WINDOW)
    with pytest.raises(BaselineError, match="normalize_blendshapes=False") as exc:
        MeanBaseline().fit(normalised)
    assert "\n" not in str(exc.value)


def test_importing_baselines_does_not_import_torch():
    code = ("import sys, imucap.models.baselines, imucap.models.metrics; "
            "print(sorted(m for m in ('torch', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
