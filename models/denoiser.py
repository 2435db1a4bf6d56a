"""The Transformer denoiser: noisy blendshape frames + diffusion step + IMU window → clean frames.

The IMU window ``(B, T_in, S, 6)`` becomes tokens: each sensor's samples are cut into patches
of ``imu_patch`` samples along time, embedded linearly, and tagged with a learned embedding of
the sensor's *site* (its placement identity, from a site vocabulary) and a sinusoidal time
position. A Transformer encoder mixes them; a sensor that is absent or silent is masked out
of attention, so one model serves several placements and tolerates a missing sensor.

The denoiser is a Transformer decoder over the output frames ``(B, T_out, C)``: each noisy frame
is embedded, the diffusion step is added through a sinusoidal embedding and an MLP (as in
DDPM, Ho et al. 2020), and the frames cross-attend to the IMU tokens. It predicts the clean
sample x₀. For classifier-free guidance (Ho & Salimans 2022) the condition is replaced, during
training with probability ``cond_drop_prob`` and at sampling time on request, by one learned
"no condition" token.

With ``diffusion=False`` the same backbone is the Transformer *regressor* baseline: learned
queries instead of noisy frames and no diffusion step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
from torch import nn


@dataclass(frozen=True)
class DenoiserConfig:
    """Sizes of the denoiser; tiny for CPU tests, larger for GPUs (configs, not code).

    Attributes:
        out_channels: Channels per output frame (52 blendshapes, plus 3 for head rotation).
        imu_channels: Channels per IMU sample (accel xyz, gyro xyz).
        n_sites: Size of the site vocabulary (learned site embeddings).
        d_model: Width of every token.
        n_heads: Attention heads.
        n_cond_layers: Encoder layers over the IMU tokens.
        n_layers: Decoder layers over the output frames.
        ff_mult: Feed-forward width as a multiple of ``d_model``.
        dropout: Dropout in attention and feed-forward blocks.
        imu_patch: IMU samples per token (per sensor).
        max_len: Longest sequence of patches or frames the positions cover.
        cond_drop_prob: Chance, in training, that the condition is replaced by the null token.
        diffusion: False for the regressor baseline (same backbone, no noise).
    """

    out_channels: int = 52
    imu_channels: int = 6
    n_sites: int = 64
    d_model: int = 128
    n_heads: int = 4
    n_cond_layers: int = 2
    n_layers: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    imu_patch: int = 8
    max_len: int = 1024
    cond_drop_prob: float = 0.1
    diffusion: bool = True

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must divide by n_heads {self.n_heads}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{f.name} must not be negative, got {value}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DenoiserConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown denoiser settings {', '.join(unknown)}")
        return cls(**data)


class Condition(NamedTuple):
    """The IMU window encoded once, for every denoising step.

    Attributes:
        memory: IMU tokens ``(B, P·S, d)`` for cross-attention.
        pad: ``(B, P·S)`` True where a token belongs to an absent sensor.
        frames: ``(B, P, d)`` the tokens pooled over the present sensors at each patch time,
            resampled onto the output frames and added to them (frame-aligned evidence).
    """

    memory: torch.Tensor
    pad: torch.Tensor
    frames: torch.Tensor


POSITION_SCALE = 100.0
"""IMU patches and output frames are placed by time, as a share of the window times this, so
a frame and the IMU patch under it get the same position whatever the two rates are (and
cross-attention can find the IMU data of its own instant)."""


def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embeddings ``(..., dim)`` of positions or steps (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device,
                                                        dtype=torch.float32) / half)
    angles = positions.float()[..., None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Denoiser(nn.Module):
    """Predicts clean blendshape frames from noisy ones and an IMU window.

    Args:
        config: Sizes and options.
    """

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.imu_in = nn.Linear(config.imu_channels * config.imu_patch, d)
        self.site_embed = nn.Embedding(config.n_sites, d)
        self.null_cond = nn.Parameter(torch.zeros(1, 1, d))
        enc_layer = nn.TransformerEncoderLayer(d, config.n_heads, d * config.ff_mult,
                                               config.dropout, batch_first=True,
                                               norm_first=True)
        self.encoder = nn.TransformerEncoder(enc_layer, config.n_cond_layers,
                                             enable_nested_tensor=False)
        self.frame_in = nn.Linear(config.out_channels, d)
        self.frame_cond = nn.Linear(d, d)
        self.step_mlp = nn.Sequential(nn.Linear(d, d * 2), nn.SiLU(), nn.Linear(d * 2, d))
        self.query = nn.Parameter(torch.zeros(1, config.max_len, d))
        dec_layer = nn.TransformerDecoderLayer(d, config.n_heads, d * config.ff_mult,
                                               config.dropout, batch_first=True,
                                               norm_first=True)
        self.decoder = nn.TransformerDecoder(dec_layer, config.n_layers)
        self.out_norm = nn.LayerNorm(d)
        self.frame_out = nn.Linear(d, config.out_channels)
        nn.init.normal_(self.query, std=0.02)
        nn.init.normal_(self.null_cond, std=0.02)

    def encode(self, imu: torch.Tensor, site_ids: torch.Tensor,
               sensor_mask: torch.Tensor | None = None) -> Condition:
        """The :class:`Condition`: IMU tokens ``(B, P·S, d)``, their padding mask (True where
        a sensor is absent) and the tokens pooled over sensors per patch time.

        Args:
            imu: ``(B, T_in, S, imu_channels)``; T_in is cut to a multiple of ``imu_patch``.
            site_ids: ``(B, S)`` or ``(S,)`` indices into the site vocabulary.
            sensor_mask: ``(B, S)`` True where the sensor is present and valid (default all).
        """
        b, t_in, s, c = imu.shape
        p = self.config.imu_patch
        n_patch = t_in // p
        if n_patch == 0:
            raise ValueError(f"the IMU window has {t_in} samples, fewer than one patch ({p})")
        x = imu[:, : n_patch * p].reshape(b, n_patch, p, s, c).permute(0, 1, 3, 2, 4)
        tokens = self.imu_in(x.reshape(b, n_patch, s, p * c))  # (B, P, S, d)
        if site_ids.dim() == 1:
            site_ids = site_ids.expand(b, -1)
        tokens = tokens + self.site_embed(site_ids)[:, None]
        # Positions in time, as a share of the window: a patch sits at its centre sample.
        centre = (torch.arange(n_patch, device=imu.device) * p + (p - 1) / 2) / t_in
        pos = sinusoidal(centre * POSITION_SCALE, self.config.d_model)
        tokens = tokens + pos[None, :, None]
        tokens = tokens.reshape(b, n_patch * s, -1)
        if sensor_mask is None:
            sensor_mask = torch.ones(b, s, dtype=torch.bool, device=imu.device)
        pad = (~sensor_mask)[:, None].expand(b, n_patch, s).reshape(b, n_patch * s)
        # Every sensor missing would leave attention with nothing: keep one token visible (its
        # values are meaningless, and training teaches the model what an empty array means).
        all_pad = pad.all(dim=1)
        if all_pad.any():
            pad = pad.clone()
            pad[all_pad, 0] = False
        memory = self.encoder(tokens, src_key_padding_mask=pad)
        keep = (~pad).view(b, n_patch, s, 1).to(memory.dtype)
        pooled = (memory.view(b, n_patch, s, -1) * keep).sum(dim=2) / keep.sum(dim=2).clamp(min=1)
        return Condition(memory, pad, pooled)

    def forward(self, sample: torch.Tensor | None, step: torch.Tensor | None,
                imu: torch.Tensor, site_ids: torch.Tensor,
                sensor_mask: torch.Tensor | None = None, *, out_frames: int | None = None,
                drop_cond: torch.Tensor | None = None) -> torch.Tensor:
        """Predict clean frames ``(B, T_out, out_channels)``.

        Args:
            sample: Noisy frames ``(B, T_out, C)`` (None for the regressor).
            step: Diffusion steps ``(B,)`` (None for the regressor).
            imu: IMU window ``(B, T_in, S, imu_channels)``, normalised.
            site_ids: Site vocabulary indices ``(B, S)`` or ``(S,)``.
            sensor_mask: ``(B, S)`` True where a sensor is present.
            out_frames: Output frames (the regressor's length; else ``sample``'s).
            drop_cond: ``(B,)`` True to replace the condition by the null token (guidance).
        """
        cond = self.encode(imu, site_ids, sensor_mask)
        return self.decode(sample, step, cond, out_frames=out_frames, drop_cond=drop_cond)

    def decode(self, sample: torch.Tensor | None, step: torch.Tensor | None, cond: Condition,
               *, out_frames: int | None = None,
               drop_cond: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder half of :meth:`forward`, on the :class:`Condition` from :meth:`encode`.

        Sampling encodes the IMU window once and decodes at every diffusion step.
        """
        memory, pad, frames = cond
        b = memory.shape[0]
        if drop_cond is not None and drop_cond.any():
            null = self.null_cond.expand(b, memory.shape[1], -1)
            memory = torch.where(drop_cond[:, None, None], null, memory)
            keep_one = torch.zeros_like(pad)
            keep_one[:, 0] = True
            pad = torch.where(drop_cond[:, None], ~keep_one, pad)
            frames = torch.where(drop_cond[:, None, None],
                                 self.null_cond.expand(b, frames.shape[1], -1), frames)
        if self.config.diffusion:
            if sample is None or step is None:
                raise ValueError("the diffusion denoiser needs a noisy sample and a step")
            t_out = sample.shape[1]
            x = self.frame_in(sample)
            x = x + self.step_mlp(sinusoidal(step, self.config.d_model))[:, None]
        else:
            t_out = out_frames if out_frames is not None else sample.shape[1]
            x = self.query[:, :t_out].expand(b, -1, -1)
        if t_out > self.config.max_len:
            raise ValueError(f"{t_out} output frames exceed max_len {self.config.max_len}")
        frac = torch.arange(t_out, device=x.device) / t_out  # the same time axis as the IMU
        x = x + sinusoidal(frac * POSITION_SCALE, self.config.d_model)[None]
        # Frame-aligned evidence: the pooled IMU tokens, linearly resampled to the frames.
        aligned = nn.functional.interpolate(frames.transpose(1, 2), size=t_out, mode="linear",
                                            align_corners=False).transpose(1, 2)
        x = x + self.frame_cond(aligned)
        x = self.decoder(x, memory, memory_key_padding_mask=pad)
        return self.frame_out(self.out_norm(x))
