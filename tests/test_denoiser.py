"""The Transformer denoiser: shapes, sensor masking, guidance's null condition, the regressor."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")

from imucap.models.denoiser import Denoiser, DenoiserConfig  # noqa: E402

TINY = DenoiserConfig(d_model=32, n_heads=2, n_cond_layers=1, n_layers=2, imu_patch=4,
                      n_sites=16, max_len=128, dropout=0.0)


def inputs(b=2, t_in=64, s=5, t_out=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, t_out, 52, generator=g), torch.randint(0, 1000, (b,), generator=g),
            torch.randn(b, t_in, s, 6, generator=g), torch.arange(s))


def test_shapes_and_determinism():
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    sample, step, imu, sites = inputs()
    out = model(sample, step, imu, sites)
    assert out.shape == (2, 30, 52)
    assert torch.equal(out, model(sample, step, imu, sites))


def test_golden_output_slice():
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    sample, step, imu, sites = inputs()
    got = model(sample, step, imu, sites)[0, :2, :4]
    golden = torch.tensor(GOLDEN)
    assert torch.allclose(got, golden, atol=1e-4), got


def test_a_masked_sensor_has_no_influence_and_never_makes_nan():
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    sample, step, imu, sites = inputs()
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[:, 2] = False
    changed = imu.clone()
    changed[:, :, 2] = 1000.0  # garbage on the missing sensor
    a = model(sample, step, imu, sites, mask)
    b = model(sample, step, changed, sites, mask)
    assert torch.allclose(a, b, atol=1e-5)
    none = model(sample, step, imu, sites, torch.zeros(2, 5, dtype=torch.bool))
    assert torch.isfinite(none).all()


def test_the_null_condition_ignores_the_imu():
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    sample, step, imu, sites = inputs()
    drop = torch.tensor([True, True])
    a = model(sample, step, imu, sites, drop_cond=drop)
    b = model(sample, step, torch.randn_like(imu), sites, drop_cond=drop)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, model(sample, step, imu, sites), atol=1e-3)


def test_site_identity_matters():
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    sample, step, imu, sites = inputs()
    other = torch.tensor([5, 6, 7, 8, 9])
    assert not torch.allclose(model(sample, step, imu, sites), model(sample, step, imu, other))


def test_regressor_variant_needs_no_noise():
    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig(**{**TINY.to_dict(), "diffusion": False})).eval()
    _, _, imu, sites = inputs()
    assert model(None, None, imu, sites, out_frames=30).shape == (2, 30, 52)


def test_config_round_trip_and_errors():
    assert DenoiserConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="unknown denoiser settings depth"):
        DenoiserConfig.from_dict({"depth": 3})
    with pytest.raises(ValueError, match="must divide"):
        DenoiserConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="fewer than one patch"):
        Denoiser(TINY)(*inputs(t_in=3))


# Recorded from this implementation (torch 2.13 CPU); an intended change of the architecture or
# its initialisation updates it.
GOLDEN = [[0.10068, -0.92533, -0.71998, -0.67919], [-0.53717, -0.49497, -1.06295, -0.96494]]
