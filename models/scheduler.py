"""The diffusion noise scheduler: noise schedule, forward noising and deterministic DDIM steps.

The scheduler knows nothing about the network (the diffusers split): the denoiser maps
``(x_t, t, condition)`` to a prediction, and this module owns everything else about noise —
the schedule of ᾱ_t (``alphas_cumprod``), :meth:`DiffusionScheduler.add_noise` for training,
:meth:`DiffusionScheduler.set_timesteps` and :meth:`DiffusionScheduler.step` for sampling,
classifier-free guidance, and a JSON config that travels with a checkpoint.

Training draws ``t = scheduler.sample_timesteps(B)`` and ``noise = torch.randn_like(x0)``,
feeds ``scheduler.add_noise(x0, noise, t)`` to the network and regresses x₀ (or ε). Sampling is
a short loop written out where it is used (with the model, not here); with a stand-in for the
network it reads:

>>> import torch
>>> from imucap.models.scheduler import DiffusionScheduler
>>> scheduler = DiffusionScheduler()  # cosine schedule, x₀ prediction
>>> denoiser = lambda x_t, t, condition: torch.zeros_like(x_t)  # stands in for the network
>>> x = torch.randn(2, 60, 52, generator=torch.Generator().manual_seed(0))
>>> for t in scheduler.set_timesteps(4):
...     x0_hat = denoiser(x, t.expand(len(x)), condition=None)
...     x = scheduler.step(x0_hat, t, x).prev_sample
>>> x.abs().max().item()
0.0

For classifier-free guidance the prediction line becomes
``x0_hat = scheduler.guided(denoiser(x, tt, cond), denoiser(x, tt, None), scale=2.0)``.

Timesteps are integers ``0 … num_train_timesteps − 1``; the last step of every sampling run goes
to ᾱ = 1 (no noise), so its ``prev_sample`` is the model's final x₀ estimate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from imucap.errors import ImucapError

__all__ = [
    "BETA_SCHEDULES",
    "PREDICTION_TYPES",
    "DiffusionScheduler",
    "SchedulerConfig",
    "SchedulerConfigError",
    "StepOutput",
]

BETA_SCHEDULES = ("cosine", "linear")
PREDICTION_TYPES = ("sample", "epsilon")

#: Offset s of the cosine schedule (Nichol & Dhariwal 2021, eq. 17).
COSINE_S = 0.008
#: Upper bound on β_t in the cosine schedule, which keeps the last step finite
#: (Nichol & Dhariwal 2021, sec. 3.2).
MAX_BETA = 0.999
#: β_1 and β_T of the linear schedule for T = 1000 (Ho et al. 2020, sec. 4).
LINEAR_BETA_START = 1e-4
LINEAR_BETA_END = 0.02

_FILE_CLASS_NAME = "DiffusionScheduler"
_FILE_VERSION = 1


class SchedulerConfigError(ImucapError, ValueError):
    """A scheduler config or config file is invalid; the message says which value and why."""


def _fail(message: str) -> SchedulerConfigError:
    return SchedulerConfigError(" ".join(message.split()))


@dataclass(frozen=True)
class SchedulerConfig:
    """What defines a noise schedule; saved next to a checkpoint as JSON.

    Attributes:
        num_train_timesteps: Number T of diffusion steps in training (int, default 1000).
        beta_schedule: ``"cosine"`` (Nichol & Dhariwal 2021, "Improved Denoising Diffusion
            Probabilistic Models", eq. 17, s = 0.008, β clipped at 0.999) or ``"linear"``
            (Ho et al. 2020, "Denoising Diffusion Probabilistic Models": β from 1e-4 to 0.02,
            both scaled by 1000 / T as in Nichol & Dhariwal's code). Default ``"cosine"``.
        prediction_type: What the network predicts: ``"sample"`` (the clean x₀, imucap's
            model) or ``"epsilon"`` (the added noise ε, Ho et al. 2020). Default ``"sample"``.
        clip_sample: If set, the predicted x₀ is clamped to ``[-clip_sample, clip_sample]``
            in every step (float > 0 or None, default None).

    Raises:
        SchedulerConfigError: (a ``ValueError``) for a value out of range, in one line.
    """

    num_train_timesteps: int = 1000
    beta_schedule: str = "cosine"
    prediction_type: str = "sample"
    clip_sample: float | None = None

    def __post_init__(self) -> None:
        n = self.num_train_timesteps
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise _fail(f"num_train_timesteps must be an integer >= 2, got {n!r}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise _fail(
                f"beta_schedule must be one of {', '.join(map(repr, BETA_SCHEDULES))}, "
                f"got {self.beta_schedule!r}"
            )
        if self.beta_schedule == "linear" and LINEAR_BETA_END * 1000 / n >= 1:
            raise _fail(
                f"beta_schedule 'linear' needs num_train_timesteps > 20 (its last beta is "
                f"20 / num_train_timesteps), got {n}; use more steps or 'cosine'"
            )
        if self.prediction_type not in PREDICTION_TYPES:
            raise _fail(
                f"prediction_type must be one of {', '.join(map(repr, PREDICTION_TYPES))}, "
                f"got {self.prediction_type!r}"
            )
        clip = self.clip_sample
        if clip is not None:
            if (
                isinstance(clip, bool)
                or not isinstance(clip, (int, float))
                or not math.isfinite(clip)
                or clip <= 0
            ):
                raise _fail(f"clip_sample must be a finite number > 0 or None, got {clip!r}")
            object.__setattr__(self, "clip_sample", float(clip))

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain, JSON-ready dict (every field, defaults included)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SchedulerConfig:
        """Build a config from a dict such as :meth:`to_dict` wrote; missing keys take defaults.

        Raises:
            SchedulerConfigError: For a non-mapping, an unknown key or a bad value.
        """
        if not isinstance(data, Mapping):
            raise _fail(f"a scheduler config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise _fail(
                f"unknown scheduler config key(s) {', '.join(unknown)}; "
                f"known keys are {', '.join(sorted(known))}"
            )
        return cls(**dict(data))


@dataclass(frozen=True)
class StepOutput:
    """What one :meth:`DiffusionScheduler.step` returns.

    Attributes:
        prev_sample: x at the previous (less noisy) timestep; same shape, dtype and device
            as the ``sample`` given to ``step``. After the last step it is the final x₀.
        pred_original_sample: The step's estimate of the clean sample x₀ (clipped if the
            config says so).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def _cosine_betas(num_steps: int) -> torch.Tensor:
    """β_t of the cosine schedule, float64 (Nichol & Dhariwal 2021, eq. 17 and sec. 3.2).

    f(u) = cos(((u + s) / (1 + s)) · π/2)², β_t = min(1 − f((t+1)/T) / f(t/T), 0.999) and
    ᾱ_t = Π_{i≤t} (1 − β_i), t = 0 … T−1. The clipping only bites at the very end, where
    f reaches 0; it keeps the last ᾱ tiny but positive.
    """
    u = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((u + COSINE_S) / (1 + COSINE_S) * (math.pi / 2)) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=MAX_BETA)


def _linear_betas(num_steps: int) -> torch.Tensor:
    """β_t of the linear schedule, float64 (Ho et al. 2020, sec. 4).

    β runs linearly from 1e-4 to 0.02 for T = 1000; for other T both ends are scaled by
    1000 / T (Nichol & Dhariwal 2021, ``get_named_beta_schedule``) so the total noise stays
    comparable.
    """
    scale = 1000 / num_steps
    return torch.linspace(
        LINEAR_BETA_START * scale, LINEAR_BETA_END * scale, num_steps, dtype=torch.float64
    )


def _as_timestep(timestep: int | torch.Tensor, name: str) -> int:
    if isinstance(timestep, torch.Tensor):
        if timestep.numel() != 1 or timestep.is_floating_point() or timestep.is_complex():
            raise ValueError(
                f"{name} must be one integer timestep for the whole batch, got a "
                f"{timestep.dtype} tensor of shape {tuple(timestep.shape)}"
            )
        return int(timestep.item())
    if isinstance(timestep, bool) or not isinstance(timestep, int):
        raise ValueError(f"{name} must be an int or a one-element integer tensor, got {timestep!r}")
    return timestep


class DiffusionScheduler:
    """Noise schedule, forward noising and deterministic DDIM sampling steps.

    Holds ᾱ_t for t = 0 … T−1 in float64 on the CPU; every method returns tensors in the
    dtype and on the device of its inputs. :meth:`step` mutates nothing: the only state is
    the inference timesteps chosen by :meth:`set_timesteps`.

    Args:
        config: The schedule (default: ``SchedulerConfig()``, cosine with x₀ prediction).

    Attributes:
        config: The frozen :class:`SchedulerConfig`.
        alphas_cumprod: ᾱ_t, float64 tensor of shape (T,), strictly decreasing in (0, 1).
        betas: β_t, float64 tensor of shape (T,); ᾱ_t = Π_{i≤t} (1 − β_i).
        timesteps: Descending int64 inference timesteps, or None before :meth:`set_timesteps`.
    """

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        if config is None:
            config = SchedulerConfig()
        if not isinstance(config, SchedulerConfig):
            raise TypeError(f"config must be a SchedulerConfig, got {type(config).__name__}")
        self.config = config
        n = config.num_train_timesteps
        self.betas = _cosine_betas(n) if config.beta_schedule == "cosine" else _linear_betas(n)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)
        # √ᾱ and √(1−ᾱ) per timestep, for add_noise; copies per (dtype, device) are cached.
        self._noise_coefs = torch.stack(
            [self.alphas_cumprod.sqrt(), (1 - self.alphas_cumprod).sqrt()], dim=1
        )
        self._coef_cache: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
        self.timesteps: torch.Tensor | None = None
        self._prev_timestep: dict[int, int] = {}

    # ------------------------------------------------------------------ training side

    @property
    def num_train_timesteps(self) -> int:
        """T, the number of training timesteps."""
        return self.config.num_train_timesteps

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    def sample_timesteps(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draw training timesteps uniformly from ``0 … T−1`` (Ho et al. 2020, Algorithm 1).

        Args:
            batch: Number of timesteps (one per example).
            generator: Random generator for reproducible draws (default None: global RNG).
                The draw happens on the generator's device and is then moved to ``device``.
            device: Device of the result (default: the generator's device, else the CPU).

        Returns:
            int64 tensor of shape (batch,).
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
            raise ValueError(f"batch must be an integer >= 0, got {batch!r}")
        draw_device = generator.device if generator is not None else device
        t = torch.randint(
            0, self.num_train_timesteps, (batch,), generator=generator, device=draw_device
        )
        return t if device is None else t.to(device)

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """Noise clean samples: x_t = √ᾱ_t · x₀ + √(1−ᾱ_t) · ε (Ho et al. 2020, eq. 4).

        Args:
            original_samples: Clean x₀, floating point, shape (B, ...), e.g. (B, T, C).
            noise: ε, same shape as ``original_samples`` (usually standard normal).
            timesteps: Integer tensor of shape (B,) — one timestep per example, broadcast
                over the remaining dims — or a 0-d tensor for the whole batch.

        Returns:
            x_t in the dtype and on the device of ``original_samples``.

        Raises:
            ValueError: For mismatched shapes, a non-integer ``timesteps`` or one out of
                ``0 … T−1``.
        """
        x0 = original_samples
        if not x0.is_floating_point():
            raise ValueError(f"original_samples must be floating point, got {x0.dtype}")
        if noise.shape != x0.shape:
            raise ValueError(
                f"noise shape {tuple(noise.shape)} differs from original_samples shape "
                f"{tuple(x0.shape)}"
            )
        t = timesteps
        if not isinstance(t, torch.Tensor) or t.is_floating_point() or t.is_complex():
            raise ValueError("timesteps must be an integer tensor (torch.long), one per example")
        if t.dim() > 1 or (t.dim() == 1 and (x0.dim() == 0 or t.shape[0] != x0.shape[0])):
            raise ValueError(
                f"timesteps must have shape (B,) = ({x0.shape[0] if x0.dim() else '-'},) or (), "
                f"got {tuple(t.shape)}"
            )
        t = t.to(device=x0.device, dtype=torch.long)
        if bool(((t < 0) | (t >= self.num_train_timesteps)).any()):
            raise ValueError(f"timesteps must lie in 0 … {self.num_train_timesteps - 1}")
        coefs = self._coefs_for(x0.dtype, x0.device)[t]  # (B, 2) or (2,)
        shape = (-1,) + (1,) * (x0.dim() - 1) if t.dim() == 1 else ()
        sqrt_ab = coefs[..., 0].reshape(shape)
        sqrt_one_minus_ab = coefs[..., 1].reshape(shape)
        return sqrt_ab * x0 + sqrt_one_minus_ab * noise.to(dtype=x0.dtype)

    def _coefs_for(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (dtype, device)
        if key not in self._coef_cache:
            # Cast on the CPU first: some backends (MPS) have no float64.
            self._coef_cache[key] = self._noise_coefs.to(dtype=dtype).to(device=device)
        return self._coef_cache[key]

    # ------------------------------------------------------------------ sampling side

    @property
    def num_inference_steps(self) -> int | None:
        """Number of sampling steps chosen by :meth:`set_timesteps`, or None before."""
        return None if self.timesteps is None else len(self.timesteps)

    def set_timesteps(
        self, num_inference_steps: int, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Choose the sampling timesteps: "trailing" spacing (Lin et al. 2024, table 2).

        "Common Diffusion Noise Schedules and Sample Steps are Flawed" (Lin et al., WACV 2024)
        shows that sampling must start from the last training timestep, T−1, or the model is
        asked to denoise a noise level it never saw at the start of sampling. Trailing
        spacing takes t_i = round(T − i·T/n) − 1 for i = 0 … n−1, so 1-step sampling uses
        T−1 and n = T gives every timestep.

        Args:
            num_inference_steps: n, the number of denoising steps (1 ≤ n ≤ T).
            device: Device of the stored and returned timesteps (default CPU).

        Returns:
            The n strictly decreasing int64 timesteps (also kept in :attr:`timesteps`).
        """
        n, total = num_inference_steps, self.num_train_timesteps
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total:
            raise ValueError(
                f"num_inference_steps must be an integer in 1 … {total}, got {n!r}"
            )
        # round(total · (n − i) / n) − 1 in exact integer arithmetic (halves round up).
        steps = [(2 * total * (n - i) + n) // (2 * n) - 1 for i in range(n)]
        self.timesteps = torch.tensor(steps, dtype=torch.long, device=device)
        self._prev_timestep = dict(zip(steps, steps[1:] + [-1], strict=True))
        return self.timesteps

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        *,
        prev_timestep: int | torch.Tensor | None = None,
    ) -> StepOutput:
        """One deterministic DDIM step from t to the previous timestep (Song et al. 2021, η = 0).

        "Denoising Diffusion Implicit Models" (Song, Meng & Ermon, ICLR 2021), eq. 12 with η = 0:
        x̂₀ is the network's x₀ (``"sample"``) or (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t (``"epsilon"``),
        ε̂ = (x_t − √ᾱ_t x̂₀) / √(1−ᾱ_t) for x₀ prediction, and
        x_prev = √ᾱ_prev · x̂₀ + √(1−ᾱ_prev) · ε̂, with ᾱ_prev = 1 after the last timestep.
        If ``clip_sample`` is set, x̂₀ is clamped first and ε̂ recomputed from the clamped x̂₀.

        Args:
            model_output: The network's prediction (x₀ or ε), same shape as ``sample``.
            timestep: The current timestep t (int or one-element integer tensor), one for the
                whole batch.
            sample: x_t, floating point.
            prev_timestep: Where to step to (−1 for "clean"). Default: the timestep after
                ``timestep`` in :attr:`timesteps` (from :meth:`set_timesteps`); pass it to use
                the scheduler without :meth:`set_timesteps`.

        Returns:
            :class:`StepOutput` in the dtype and on the device of ``sample``.

        Raises:
            ValueError: For mismatched shapes, a timestep out of range, or a timestep not in
                :attr:`timesteps` when ``prev_timestep`` is not given.
        """
        if not sample.is_floating_point():
            raise ValueError(f"sample must be floating point, got {sample.dtype}")
        if model_output.shape != sample.shape:
            raise ValueError(
                f"model_output shape {tuple(model_output.shape)} differs from sample shape "
                f"{tuple(sample.shape)}"
            )
        t = _as_timestep(timestep, "timestep")
        if not 0 <= t < self.num_train_timesteps:
            raise ValueError(f"timestep must lie in 0 … {self.num_train_timesteps - 1}, got {t}")
        if prev_timestep is None:
            if t not in self._prev_timestep:
                raise ValueError(
                    f"timestep {t} is not one of the inference timesteps; call "
                    f"set_timesteps(n) first or pass prev_timestep="
                )
            t_prev = self._prev_timestep[t]
        else:
            t_prev = _as_timestep(prev_timestep, "prev_timestep")
            if not -1 <= t_prev < t:
                raise ValueError(f"prev_timestep must lie in -1 … {t - 1}, got {t_prev}")

        # Scalars in float64 Python floats; tensors stay in the sample's dtype.
        ab_t = float(self.alphas_cumprod[t])
        ab_prev = 1.0 if t_prev < 0 else float(self.alphas_cumprod[t_prev])
        a_t, b_t = math.sqrt(ab_t), math.sqrt(1 - ab_t)
        a_prev, b_prev = math.sqrt(ab_prev), math.sqrt(1 - ab_prev)

        output = model_output.to(dtype=sample.dtype)
        if self.config.prediction_type == "sample":
            pred_x0 = output
        else:
            pred_x0 = (sample - b_t * output) / a_t
        clip = self.config.clip_sample
        if clip is not None:
            pred_x0 = pred_x0.clamp(-clip, clip)

        if self.config.prediction_type == "epsilon" and clip is None:
            prev = a_prev * pred_x0 + b_prev * output
        else:
            # ε̂ = (x_t − a_t x̂₀) / b_t folded into two coefficients.
            ratio = b_prev / b_t
            prev = ratio * sample + (a_prev - a_t * ratio) * pred_x0
        return StepOutput(prev_sample=prev, pred_original_sample=pred_x0)

    @staticmethod
    def guided(
        cond_output: torch.Tensor, uncond_output: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """Classifier-free guidance: uncond + scale · (cond − uncond) (Ho & Salimans 2022, eq. 6).

        "Classifier-Free Diffusion Guidance" (Ho & Salimans 2022) writes it as
        (1 + w) · cond − w · uncond; here ``scale`` = 1 + w, so 1 gives ``cond`` (no guidance)
        and 0 gives ``uncond``. Works on x₀ and ε predictions alike.

        Args:
            cond_output: The prediction with the condition.
            uncond_output: The prediction with the "no condition" token.
            scale: Guidance scale (float; 1 = conditional prediction unchanged).

        Returns:
            The guided prediction. ``torch.lerp`` computes it, so scale 1 returns ``cond``
            and scale 0 returns ``uncond`` bit for bit (unguided runs stay reproducible).
        """
        return torch.lerp(uncond_output, cond_output, float(scale))

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the config to ``path`` as JSON (never pickle); returns the path."""
        path = Path(path)
        payload = {
            "_class_name": _FILE_CLASS_NAME,
            "_format_version": _FILE_VERSION,
            **self.config.to_dict(),
        }
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> DiffusionScheduler:
        """Read a scheduler written by :meth:`save`.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            SchedulerConfigError: For a file that is not a scheduler config, in one line.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no scheduler config at {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _fail(f"{path} is not JSON ({exc}); expected a file from save()") from None
        if not isinstance(data, dict) or data.get("_class_name") != _FILE_CLASS_NAME:
            raise _fail(f"{path} is not a {_FILE_CLASS_NAME} config (no matching _class_name)")
        version = data.get("_format_version")
        if version != _FILE_VERSION:
            raise _fail(
                f"{path} has scheduler format version {version!r}; this imucap reads "
                f"version {_FILE_VERSION}"
            )
        config = {k: v for k, v in data.items() if not k.startswith("_")}
        try:
            return cls(SchedulerConfig.from_dict(config))
        except SchedulerConfigError as exc:
            raise _fail(f"{path}: {exc}") from None

    def __repr__(self) -> str:
        fields_text = ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())
        return (
            f"{type(self).__name__}({fields_text}, "
            f"num_inference_steps={self.num_inference_steps})"
        )
