"""The noise scheduler on its own: schedules, noising, DDIM steps, guidance, config files.

No network anywhere: stand-in functions (oracles that know the true x₀ or ε, constants, simple
closed forms) play the denoiser, as in diffusers' scheduler tests.
"""

from __future__ import annotations

import doctest
import json
import math

import pytest

torch = pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")

from imucap.models import scheduler as scheduler_module  # noqa: E402
from imucap.models.scheduler import (  # noqa: E402
    DiffusionScheduler,
    SchedulerConfig,
    SchedulerConfigError,
    StepOutput,
)

SHAPE = (3, 16, 52)  # (B, T, C): a small window of blendshape frames
STEP_COUNTS = (1, 2, 4, 8)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x0(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A clean sample in blendshape range [0, 1], not centred (a harder target than zeros)."""
    return torch.rand(SHAPE, generator=_gen(1), dtype=dtype)


def _noise(dtype: torch.dtype = torch.float32, seed: int = 2) -> torch.Tensor:
    return torch.randn(SHAPE, generator=_gen(seed), dtype=dtype)


def _sample(scheduler: DiffusionScheduler, predict, x_T: torch.Tensor, steps: int):
    """The few-step sampling loop as the model writes it, with ``predict`` for the network."""
    x = x_T
    for t in scheduler.set_timesteps(steps):
        x = scheduler.step(predict(x, t), t, x).prev_sample
    return x


# ---------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("num_steps", [50, 1000])
def test_alphas_cumprod_decrease_strictly_inside_zero_one(schedule, num_steps):
    s = DiffusionScheduler(SchedulerConfig(num_train_timesteps=num_steps, beta_schedule=schedule))
    ab = s.alphas_cumprod
    assert ab.shape == (num_steps,) and ab.dtype == torch.float64
    assert bool((ab > 0).all()) and bool((ab < 1).all())
    assert bool((ab[1:] < ab[:-1]).all())
    assert ab[0] > 0.99  # almost clean at t = 0
    assert ab[-1] < 1e-3  # almost pure noise at t = T − 1
    assert bool((s.betas > 0).all()) and bool((s.betas <= 0.999).all())
    assert torch.allclose(torch.cumprod(1 - s.betas, 0), ab, rtol=0, atol=0)


def test_cosine_schedule_follows_the_closed_form_and_is_clipped_only_at_the_end():
    s = DiffusionScheduler(SchedulerConfig(beta_schedule="cosine"))
    T, off = 1000, 0.008
    f = lambda u: math.cos((u + off) / (1 + off) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 1, 10, 250, 500, 750, 990):
        # ᾱ_t = f((t+1)/T) / f(0) (Nichol & Dhariwal 2021, eq. 17; index t counts from 0).
        assert s.alphas_cumprod[t].item() == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert s.betas[-1].item() == pytest.approx(0.999)
    assert bool((s.betas[:-1] < 0.999).all())
    assert s.alphas_cumprod[499].item() == pytest.approx(0.4938, abs=1e-3)


def test_linear_schedule_has_ho_betas_scaled_by_the_step_count():
    s = DiffusionScheduler(SchedulerConfig(beta_schedule="linear"))
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(s.betas[1:] - s.betas[:-1], torch.full((999,), 0.0199 / 999,
                          dtype=torch.float64))
    half = DiffusionScheduler(SchedulerConfig(num_train_timesteps=500, beta_schedule="linear"))
    assert half.betas[0].item() == pytest.approx(2e-4)
    assert half.betas[-1].item() == pytest.approx(0.04)
    # Scaling keeps the total noise comparable: the end points agree within a factor of ~2.
    assert 0.5 < half.alphas_cumprod[-1].item() / s.alphas_cumprod[-1].item() < 2


def test_cosine_keeps_more_signal_than_linear_in_the_middle_and_less_at_the_start():
    cos = DiffusionScheduler(SchedulerConfig(beta_schedule="cosine")).alphas_cumprod
    lin = DiffusionScheduler(SchedulerConfig(beta_schedule="linear")).alphas_cumprod
    # Nichol & Dhariwal 2021, fig. 5: linear destroys information much faster mid-way.
    for t in (250, 500, 750):
        assert cos[t] > lin[t] + 0.1
    # Cosine's ᾱ is nearly linear in t in the middle; linear's is convex (decays like exp(−t²)).
    assert (cos[250] - cos[500]).item() == pytest.approx((cos[500] - cos[750]).item(), rel=0.1)
    assert (lin[250] - lin[500]) > 2 * (lin[500] - lin[750])
    # Both end near zero, cosine much nearer (the clipped last step).
    assert cos[-1] < 1e-6 < lin[-1] < 1e-3


# ---------------------------------------------------------------------------- add_noise


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_add_noise_moments_match_the_forward_process(schedule):
    s = DiffusionScheduler(SchedulerConfig(beta_schedule=schedule))
    n = 200_000
    x0 = 3.0 + 2.0 * torch.randn(n, generator=_gen(3), dtype=torch.float64)  # mean 3, var 4
    for t in (0, 100, 500, 900, 999):
        xt = s.add_noise(x0, torch.randn(n, generator=_gen(t + 10), dtype=torch.float64),
                         torch.full((n,), t))
        ab = s.alphas_cumprod[t].item()
        assert xt.mean().item() == pytest.approx(math.sqrt(ab) * x0.mean().item(), abs=0.02)
        # var(x_t) = ᾱ·var(x₀) + (1 − ᾱ) for noise independent of x₀.
        expected = ab * x0.var().item() + (1 - ab)
        assert xt.var().item() == pytest.approx(expected, rel=0.02)


def test_add_noise_broadcasts_one_timestep_per_example():
    s = DiffusionScheduler()
    x0, noise = _x0(), _noise()
    t = torch.tensor([0, 500, 999])
    xt = s.add_noise(x0, noise, t)
    assert xt.shape == SHAPE and xt.dtype == torch.float32
    for b in range(3):
        ab = s.alphas_cumprod[t[b]].item()
        expected = math.sqrt(ab) * x0[b] + math.sqrt(1 - ab) * noise[b]
        torch.testing.assert_close(xt[b], expected)
        one = s.add_noise(x0[b : b + 1], noise[b : b + 1], t[b : b + 1])
        torch.testing.assert_close(one[0], xt[b])
    # A 0-d timestep applies to the whole batch; 2-D (B, C) input broadcasts too.
    torch.testing.assert_close(s.add_noise(x0, noise, torch.tensor(500)),
                               s.add_noise(x0, noise, torch.full((3,), 500)))
    flat = s.add_noise(x0[:, 0], noise[:, 0], t)
    torch.testing.assert_close(flat, xt[:, 0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_add_noise_follows_the_input_dtype(dtype):
    s = DiffusionScheduler()
    xt = s.add_noise(_x0(dtype), _noise(dtype), torch.tensor([1, 2, 3]))
    assert xt.dtype == dtype and xt.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_add_noise_and_step_stay_on_the_input_device():
    s = DiffusionScheduler()
    x0, noise = _x0().cuda(), _noise().cuda()
    t = s.sample_timesteps(3, device="cuda")
    xt = s.add_noise(x0, noise, t)
    assert xt.device == x0.device
    for step_t in s.set_timesteps(2, device="cuda"):
        out = s.step(x0, step_t, xt)
        assert out.prev_sample.device == x0.device
    torch.testing.assert_close(out.prev_sample, x0)


def test_add_noise_rejects_bad_timesteps():
    s = DiffusionScheduler()
    x0, noise = _x0(), _noise()
    with pytest.raises(ValueError, match="0 … 999"):
        s.add_noise(x0, noise, torch.tensor([0, 1, 1000]))
    with pytest.raises(ValueError, match="0 … 999"):
        s.add_noise(x0, noise, torch.tensor([-1, 1, 2]))
    with pytest.raises(ValueError, match="integer"):
        s.add_noise(x0, noise, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        s.add_noise(x0, noise, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="noise shape"):
        s.add_noise(x0, noise[:, :1], torch.tensor([0, 1, 2]))


def test_sample_timesteps_are_uniform_reproducible_and_in_range():
    s = DiffusionScheduler()
    t = s.sample_timesteps(20_000, generator=_gen(5))
    assert t.dtype == torch.long and t.shape == (20_000,)
    assert 0 <= t.min().item() and t.max().item() <= 999
    assert t.float().mean().item() == pytest.approx(499.5, abs=10)
    assert torch.equal(t, s.sample_timesteps(20_000, generator=_gen(5)))
    assert s.sample_timesteps(0).shape == (0,)


# ---------------------------------------------------------------------------- set_timesteps


@pytest.mark.parametrize(
    "num_train, steps",
    [(T, n) for T in (1000, 50, 7) for n in (1, 2, 3, 4, 7, 8, 50, 1000) if n <= T],
)
def test_set_timesteps_trailing_starts_at_the_last_step_and_strictly_decreases(num_train, steps):
    s = DiffusionScheduler(SchedulerConfig(num_train_timesteps=num_train))
    ts = s.set_timesteps(steps)
    assert ts.dtype == torch.long and ts.shape == (steps,)
    assert ts[0].item() == num_train - 1
    assert bool((ts[1:] < ts[:-1]).all())
    assert ts[-1].item() >= 0
    assert torch.equal(s.timesteps, ts) and s.num_inference_steps == steps
    if steps == num_train:
        assert ts.tolist() == list(range(num_train - 1, -1, -1))


def test_set_timesteps_matches_trailing_spacing_of_lin_et_al():
    s = DiffusionScheduler()
    # diffusers' "trailing": round(arange(T, 0, −T/n)) − 1.
    assert s.set_timesteps(1).tolist() == [999]
    assert s.set_timesteps(2).tolist() == [999, 499]
    assert s.set_timesteps(3).tolist() == [999, 666, 332]
    assert s.set_timesteps(4).tolist() == [999, 749, 499, 249]
    assert s.set_timesteps(8).tolist() == [999, 874, 749, 624, 499, 374, 249, 124]


@pytest.mark.parametrize("bad", [0, -1, 1001, 2.0, True, "4"])
def test_set_timesteps_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="num_inference_steps"):
        DiffusionScheduler().set_timesteps(bad)


# ---------------------------------------------------------------------------- DDIM step


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_oracle_x0_predictor_recovers_x0_from_pure_noise(schedule, steps):
    s = DiffusionScheduler(SchedulerConfig(beta_schedule=schedule, prediction_type="sample"))
    x0, x_T = _x0(), _noise()
    calls = []

    def oracle(x, t):
        calls.append(int(t))
        return x0

    out = _sample(s, oracle, x_T, steps)
    assert calls == s.timesteps.tolist()
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_oracle_x0_trajectory_stays_on_the_ddim_line(steps):
    """η = 0 keeps the implied ε fixed: every x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε with one ε."""
    s = DiffusionScheduler()
    x0, x_T = _x0(torch.float64), _noise(torch.float64)
    ab_T = s.alphas_cumprod[-1].item()
    eps = (x_T - math.sqrt(ab_T) * x0) / math.sqrt(1 - ab_T)
    x = x_T
    ts = s.set_timesteps(steps).tolist()
    for t, t_prev in zip(ts, ts[1:] + [-1], strict=True):
        x = s.step(x0, t, x).prev_sample
        expected = x0 if t_prev < 0 else s.add_noise(x0, eps, torch.tensor(t_prev))
        torch.testing.assert_close(x, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_oracle_epsilon_predictor_recovers_x0_from_pure_noise(schedule, steps):
    s = DiffusionScheduler(SchedulerConfig(beta_schedule=schedule, prediction_type="epsilon"))
    # float64: at the cosine schedule's last step √ᾱ ≈ 5e-5, and recovering x₀ from ε divides
    # by it (the ill-conditioning that Lin et al. 2024 point out for ε-prediction there).
    x0, x_T = _x0(torch.float64), _noise(torch.float64)

    def oracle(x, t):  # the true ε that, added to x₀ at t, gives x
        ab = s.alphas_cumprod[int(t)].item()
        return (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)

    out = _sample(s, oracle, x_T, steps)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-9)


def test_oracle_epsilon_in_float32_is_close_but_amplifies_rounding_at_the_last_step():
    s = DiffusionScheduler(SchedulerConfig(prediction_type="epsilon"))
    x0, x_T = _x0(), _noise()

    def oracle(x, t):
        ab = s.alphas_cumprod[int(t)].item()
        return (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)

    torch.testing.assert_close(_sample(s, oracle, x_T, 4), x0, rtol=0, atol=2e-2)


@pytest.mark.parametrize("steps", STEP_COUNTS)
@pytest.mark.parametrize("c", [0.0, 0.37, -2.5])
def test_constant_x0_predictor_gives_the_constant(steps, c):
    s = DiffusionScheduler()
    out = _sample(s, lambda x, t: torch.full_like(x, c), _noise(), steps)
    torch.testing.assert_close(out, torch.full(SHAPE, c), rtol=0, atol=1e-6)


def test_step_is_ddim_eta_zero_for_an_epsilon_predictor():
    """Against eq. 12 of Song et al. 2021 written out, with a nonlinear stand-in for ε."""
    s = DiffusionScheduler(SchedulerConfig(beta_schedule="linear", prediction_type="epsilon"))
    x = _noise(torch.float64)
    eps_fn = lambda x, t: 0.5 * x + torch.sin(x) * t / 1000  # noqa: E731
    ts = s.set_timesteps(5).tolist()
    for t, t_prev in zip(ts, ts[1:] + [-1], strict=True):
        e = eps_fn(x, t)
        a = s.alphas_cumprod[t].item()
        a_prev = 1.0 if t_prev < 0 else s.alphas_cumprod[t_prev].item()
        x0 = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
        expected = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * e
        out = s.step(e, t, x)
        torch.testing.assert_close(out.pred_original_sample, x0, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out.prev_sample, expected, rtol=1e-12, atol=1e-12)
        x = out.prev_sample


def test_sample_and_epsilon_prediction_agree_for_equivalent_predictors():
    """An x₀ predictor f and the ε predictor it implies take the same DDIM path."""
    cfg = dict(beta_schedule="cosine")
    s_x0 = DiffusionScheduler(SchedulerConfig(prediction_type="sample", **cfg))
    s_eps = DiffusionScheduler(SchedulerConfig(prediction_type="epsilon", **cfg))
    f = lambda x, t: torch.tanh(x) * 0.3 + 0.1  # noqa: E731

    def eps_of_f(x, t):
        ab = s_eps.alphas_cumprod[int(t)].item()
        return (x - math.sqrt(ab) * f(x, t)) / math.sqrt(1 - ab)

    x_T = _noise(torch.float64)
    a = _sample(s_x0, f, x_T, 6)
    b = _sample(s_eps, eps_of_f, x_T, 6)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-8)


def test_sampling_is_deterministic_and_step_mutates_nothing():
    s = DiffusionScheduler()
    f = lambda x, t: torch.sigmoid(x + t / 1000)  # noqa: E731
    a = _sample(s, f, _noise(seed=7), 4)
    b = _sample(s, f, _noise(seed=7), 4)
    assert torch.equal(a, b)
    assert not torch.equal(a, _sample(s, f, _noise(seed=8), 4))
    # The same step twice gives the same answer and leaves the scheduler as it was.
    ts = s.set_timesteps(4).clone()
    x = _noise()
    first = s.step(f(x, 999), ts[0], x)
    second = s.step(f(x, 999), ts[0], x)
    assert torch.equal(first.prev_sample, second.prev_sample)
    assert torch.equal(s.timesteps, ts) and repr(s).endswith("num_inference_steps=4)")
    assert isinstance(first, StepOutput)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_step_follows_the_sample_dtype(dtype):
    s = DiffusionScheduler()
    out = _sample(s, lambda x, t: torch.zeros_like(x), _noise(dtype), 2)
    assert out.dtype == dtype


def test_step_with_explicit_prev_timestep_needs_no_set_timesteps():
    s = DiffusionScheduler()
    x0, x = _x0(torch.float64), _noise(torch.float64)
    stateless = s.step(x0, 999, x, prev_timestep=499).prev_sample
    assert s.timesteps is None
    s.set_timesteps(2)
    torch.testing.assert_close(s.step(x0, 999, x).prev_sample, stateless, rtol=0, atol=0)
    torch.testing.assert_close(s.step(x0, torch.tensor(999), x).prev_sample, stateless)


def test_step_rejects_misuse():
    s = DiffusionScheduler()
    x = _noise()
    with pytest.raises(ValueError, match="set_timesteps"):
        s.step(x, 999, x)
    s.set_timesteps(4)
    with pytest.raises(ValueError, match="set_timesteps"):
        s.step(x, 500, x)  # not one of 999, 749, 499, 249
    with pytest.raises(ValueError, match="shape"):
        s.step(x[:1], 999, x)
    with pytest.raises(ValueError, match="one integer timestep"):
        s.step(x, torch.tensor([999, 999, 999]), x)
    with pytest.raises(ValueError, match="0 … 999"):
        s.step(x, 1000, x, prev_timestep=0)
    with pytest.raises(ValueError, match="prev_timestep"):
        s.step(x, 500, x, prev_timestep=500)


def test_clip_sample_clamps_the_predicted_x0():
    s = DiffusionScheduler(SchedulerConfig(clip_sample=1.0))
    x = _noise()
    s.set_timesteps(2)
    out = s.step(torch.full_like(x, 5.0), 999, x)
    assert torch.equal(out.pred_original_sample, torch.ones_like(x))
    torch.testing.assert_close(_sample(s, lambda x, t: torch.full_like(x, -3.0), x, 4),
                               torch.full_like(x, -1.0))
    # For ε-prediction the clamped x₀ and the ε it implies are used together.
    se = DiffusionScheduler(SchedulerConfig(prediction_type="epsilon", clip_sample=0.5))
    se.set_timesteps(1)
    assert _sample(se, lambda x, t: torch.zeros_like(x), x, 1).abs().max().item() <= 0.5


# ---------------------------------------------------------------------------- guidance


def test_guidance_combines_cond_and_uncond():
    cond, uncond = _x0(), _noise()
    assert torch.equal(DiffusionScheduler.guided(cond, uncond, 1.0), cond)
    assert torch.equal(DiffusionScheduler.guided(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(DiffusionScheduler.guided(cond, uncond, 3.0),
                               3 * cond - 2 * uncond)
    torch.testing.assert_close(DiffusionScheduler().guided(cond, uncond, 0.5),
                               (cond + uncond) / 2)


# ---------------------------------------------------------------------------- config and files


def test_config_round_trips_through_dict_and_json_file(tmp_path):
    cfg = SchedulerConfig(num_train_timesteps=500, beta_schedule="linear",
                          prediction_type="epsilon", clip_sample=1.5)
    assert SchedulerConfig.from_dict(cfg.to_dict()) == cfg
    assert SchedulerConfig.from_dict({}) == SchedulerConfig()
    s = DiffusionScheduler(cfg)
    path = s.save(tmp_path / "scheduler.json")
    data = json.loads(path.read_text())  # plain JSON, no pickle
    assert data["beta_schedule"] == "linear" and data["_class_name"] == "DiffusionScheduler"
    loaded = DiffusionScheduler.load(path)
    assert loaded.config == cfg
    assert torch.equal(loaded.alphas_cumprod, s.alphas_cumprod)
    assert repr(loaded) == repr(s) == (
        "DiffusionScheduler(num_train_timesteps=500, beta_schedule='linear', "
        "prediction_type='epsilon', clip_sample=1.5, num_inference_steps=None)"
    )


def test_clip_sample_integer_becomes_float():
    assert SchedulerConfig(clip_sample=1).clip_sample == 1.0
    assert isinstance(SchedulerConfig.from_dict({"clip_sample": 2}).clip_sample, float)


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"num_train_timesteps": 0}, "num_train_timesteps"),
        ({"num_train_timesteps": 1}, "num_train_timesteps"),
        ({"num_train_timesteps": 10.0}, "num_train_timesteps"),
        ({"num_train_timesteps": "1000"}, "num_train_timesteps"),
        ({"num_train_timesteps": True}, "num_train_timesteps"),
        ({"num_train_timesteps": 20, "beta_schedule": "linear"}, "> 20"),
        ({"beta_schedule": "quadratic"}, "beta_schedule"),
        ({"prediction_type": "v_prediction"}, "prediction_type"),
        ({"clip_sample": 0}, "clip_sample"),
        ({"clip_sample": -1.0}, "clip_sample"),
        ({"clip_sample": float("nan")}, "clip_sample"),
        ({"clip_sample": float("inf")}, "clip_sample"),
        ({"clip_sample": "1"}, "clip_sample"),
        ({"clip_sample": True}, "clip_sample"),
        ({"num_steps": 1000}, "unknown scheduler config key"),
    ],
)
def test_bad_configs_raise_one_line_value_errors(bad, words):
    with pytest.raises(ValueError, match=words) as info:
        SchedulerConfig.from_dict(bad)
    assert isinstance(info.value, SchedulerConfigError)
    assert "\n" not in str(info.value) and str(info.value)


def test_from_dict_rejects_a_non_mapping():
    with pytest.raises(ValueError, match="mapping"):
        SchedulerConfig.from_dict([("beta_schedule", "cosine")])


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a DiffusionScheduler"),
        ('{"beta_schedule": "cosine"}', "not a DiffusionScheduler"),
        ('{"_class_name": "DiffusionScheduler", "_format_version": 99}', "version 99"),
        ('{"_class_name": "DiffusionScheduler", "_format_version": 1, "beta_schedule": "x"}',
         "beta_schedule"),
    ],
)
def test_load_rejects_bad_files_in_one_line(tmp_path, text, words):
    path = tmp_path / "scheduler.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=words) as info:
        DiffusionScheduler.load(path)
    assert "\n" not in str(info.value)


def test_load_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no scheduler config"):
        DiffusionScheduler.load(tmp_path / "missing.json")


def test_module_docstring_sampling_loop_runs():
    result = doctest.testmod(scheduler_module, verbose=False)
    assert result.attempted >= 5 and result.failed == 0
