"""The dataset's windows in a real PyTorch DataLoader (torch is in the test environment)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from imucap.datasets.synth import synthesize

    out = tmp_path_factory.mktemp("torchds") / "d"
    synthesize(out, subjects=4, minutes=0.2, imu_rate_hz=100, placement="face6", seed=1)
    return out


def test_dataloader_batches_windows_as_tensors(dataset):
    from imucap.datasets.dataset import WindowDataset

    windows = WindowDataset(dataset, split="train", window_s=2.0, hop_s=1.0)
    loader = torch.utils.data.DataLoader(windows, batch_size=4, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    seen = 0
    for batch in loader:
        imu, bs = batch["imu"], batch["blendshapes"]
        assert imu.dtype == torch.float32 and imu.shape[1:] == (200, 6, 6)
        assert bs.shape[0] == imu.shape[0] and bs.shape[2] == 52
        assert torch.isfinite(imu).all()
        seen += imu.shape[0]
    assert seen == len(windows) > 0
    # Normalised with the training statistics: about zero mean and unit spread.
    stacked = torch.cat([b["imu"] for b in loader]).numpy()
    assert abs(stacked.mean()) < 0.3 and 0.5 < stacked.std() < 2.0
    assert np.isfinite(stacked).all()
