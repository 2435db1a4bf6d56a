"""Training: the denoiser on a dataset's windows, in two stages, on CPU, one GPU or several.

Stage 1 (``trainer.stage=prior``) learns a blendshape motion prior: the condition is always
the null token, so the model learns what face motion looks like from blendshape sequences
alone. Stage 2 (``trainer.stage=conditional``) learns to read the IMUs, starting from a prior
(``trainer.init_from=…``); the condition is still dropped with probability
``model.cond_drop_prob`` so classifier-free guidance stays possible, and each sensor is masked
out of a window with probability ``trainer.sensor_drop_prob`` so the model learns to do
without one that goes silent. Fine-tuning to a new
wearer is stage 2 again from a trained checkpoint with a small learning rate.

Each step draws a diffusion step t, noises the clean window, and regresses the clean window
(x₀ prediction) with a mean-squared error plus a small velocity term that keeps motion smooth.
Under ``torchrun`` the model is wrapped in DistributedDataParallel and every process sees its
share of the windows; on a GPU ``trainer.precision=bf16`` runs the forward pass under
autocast.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import imucap
from imucap.datasets.dataset import WindowDataset, open_dataset
from imucap.datasets.speech import (
    SpeechStats,
    SpeechWindows,
    is_speech_dataset,
    open_speech_dataset,
)
from imucap.errors import ImucapError
from imucap.vocab import ARKIT_NAMES

from .checkpoint import (
    Checkpoint,
    build_model,
    input_kind,
    load_checkpoint,
    save_checkpoint,
    transfer_weights,
)
from .denoiser import Denoiser, DenoiserConfig
from .evaluation import check_compatible
from .metrics import evaluate
from .scheduler import DiffusionScheduler, SchedulerConfig

log = logging.getLogger(__name__)

VELOCITY_WEIGHT = 0.5
SCHEDULER_KEYS = ("num_train_timesteps", "beta_schedule", "prediction_type", "clip_sample")


def smooth_frames(x: torch.Tensor, sigma_frames: float) -> torch.Tensor:
    """``x`` ``(B, T, C)`` filtered along time with a Gaussian of ``sigma_frames`` frames.

    The window's ends are mirrored (reflect padding), so the newest frame of a window, which the
    live engine emits, is a one-sided average of the frames before it: no added latency. A
    sigma of 0 returns ``x`` itself.
    """
    if sigma_frames <= 0 or x.shape[1] < 2:
        return x
    radius = min(int(math.ceil(3.0 * sigma_frames)), x.shape[1] - 1)
    k = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-0.5 * (k / sigma_frames) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    c = x.shape[2]
    padded = torch.nn.functional.pad(x.transpose(1, 2), (radius, radius), mode="reflect")
    out = torch.nn.functional.conv1d(padded, kernel.view(1, 1, -1).expand(c, 1, -1), groups=c)
    return out.transpose(1, 2)


def sample(model: Denoiser, scheduler: DiffusionScheduler, imu: torch.Tensor,
           site_ids: torch.Tensor, out_frames: int, *, steps: int = 4,
           guidance_scale: float = 1.0, sensor_mask: torch.Tensor | None = None,
           generator: torch.Generator | None = None,
           noise: torch.Tensor | None = None, smooth: float = 0.0) -> torch.Tensor:
    """Few-step deterministic (DDIM) sampling of clean frames ``(B, out_frames, C)``.

    With ``guidance_scale`` ≠ 1 each step also runs the null condition and mixes the two
    predictions (classifier-free guidance). ``smooth`` (frames) is the sigma of the output
    filter (:func:`smooth_frames`; a checkpoint's ``output_smoothing_s``), 0 for none.
    """
    b = imu.shape[0]
    c = model.config.out_channels
    if not model.config.diffusion:
        return smooth_frames(model(None, None, imu, site_ids, sensor_mask,
                                   out_frames=out_frames), smooth)
    x = noise if noise is not None else torch.randn(
        b, out_frames, c, generator=generator, device=imu.device)
    cond = model.encode(imu, site_ids, sensor_mask)  # the condition, once per window
    null = torch.ones(b, dtype=torch.bool, device=imu.device)
    for t in scheduler.set_timesteps(steps, device=imu.device):
        step = torch.full((b,), int(t), device=imu.device, dtype=torch.long)
        pred = model.decode(x, step, cond)
        if guidance_scale != 1.0:
            uncond = model.decode(x, step, cond, drop_cond=null)
            pred = scheduler.guided(pred, uncond, guidance_scale)
        x = scheduler.step(pred, t, x).prev_sample
    return smooth_frames(x, smooth)


def _collate(items: list[dict]) -> dict[str, torch.Tensor]:
    return {"imu": torch.from_numpy(np.stack([i["imu"] for i in items])),
            "blendshapes": torch.from_numpy(np.stack([i["blendshapes"] for i in items]))}


def resolve_init(value: str) -> Path:
    """``trainer.init_from``: a checkpoint folder, or ``default`` (the shipped IMU model) or
    ``speech`` (the shipped speech model), wherever imucap is installed."""
    from .pretrained import default_checkpoint, speech_checkpoint

    if value == "default":
        return default_checkpoint()
    if value == "speech":
        return speech_checkpoint()
    return Path(value)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ImucapError("trainer.device=cuda but no CUDA GPU is available: use "
                          "trainer=cpu (or trainer.device=auto)")
    return torch.device(name)


def _lr_at(step: int, total: int, cfg: DictConfig) -> float:
    warm = max(1, cfg.trainer.warmup_steps)
    if step < warm:
        return cfg.trainer.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.trainer.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def model_config_from(cfg: DictConfig, n_sites: int) -> DenoiserConfig:
    """The denoiser config of a training configuration."""
    params = OmegaConf.to_container(cfg.model, resolve=True)
    params.pop("name", None)
    params["n_sites"] = max(params.get("n_sites", 0), n_sites)
    return DenoiserConfig.from_dict(params)


def scheduler_config_from(cfg: DictConfig) -> SchedulerConfig:
    params = OmegaConf.to_container(cfg.scheduler, resolve=True)
    return SchedulerConfig.from_dict({k: params[k] for k in SCHEDULER_KEYS if k in params})


def predict_windows(model: Denoiser, scheduler: DiffusionScheduler, windows: WindowDataset,
                    site_ids: torch.Tensor, *, steps: int, guidance_scale: float,
                    device: torch.device, batch_size: int = 64, seed: int = 0,
                    max_windows: int | None = None,
                    sensor_mask: torch.Tensor | None = None,
                    smooth: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(pred, true)`` weights ``(N, Wb, 52)`` over a split's windows (few-step sampling,
    noise from ``seed``); ``sensor_mask`` ``(N, S)`` drops sensors where False."""
    model.eval()
    preds, trues = [], []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    n = len(windows) if max_windows is None else min(len(windows), max_windows)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            batch = _collate([windows[i] for i in range(start, stop)])
            imu = batch["imu"].to(device)
            true = batch["blendshapes"]
            noise = torch.randn(true.shape, generator=gen).to(device)
            mask = None if sensor_mask is None else sensor_mask[start:stop].to(device)
            out = sample(model, scheduler, imu, site_ids, true.shape[1], steps=steps,
                         guidance_scale=guidance_scale, noise=noise, sensor_mask=mask,
                         smooth=smooth)
            preds.append(out.clamp(0, 1).float().cpu().numpy()[..., :52])
            trues.append(true.numpy())
    if not preds:
        empty = np.zeros((0, windows.n_blendshape, 52), np.float32)
        return empty, empty.copy()
    return np.concatenate(preds), np.concatenate(trues)


def evaluate_model(model: Denoiser, scheduler: DiffusionScheduler, windows: WindowDataset,
                   site_ids: torch.Tensor, *, steps: int, guidance_scale: float,
                   device: torch.device, batch_size: int = 64, seed: int = 0,
                   max_windows: int | None = None, smooth: float = 0.0) -> dict[str, Any]:
    """Metrics of the model on a split's windows (few-step sampling, fixed noise seed)."""
    pred, true = predict_windows(model, scheduler, windows, site_ids, steps=steps,
                                 guidance_scale=guidance_scale, device=device,
                                 batch_size=batch_size, seed=seed, max_windows=max_windows,
                                 smooth=smooth)
    return evaluate(pred, true, windows.dataset.info.blendshape_rate_hz)


def train(cfg: DictConfig, *, progress: Callable[[str], None] | None = None) -> Path:
    """Train as ``cfg`` says; returns the run folder (with ``best/`` and ``last/`` checkpoints).

    Raises:
        ImucapError: A dataset, checkpoint or device the run cannot use.
    """
    say = progress or (lambda text: log.info(text))
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = torch.distributed.get_rank()
    device = _device(cfg.trainer.device)
    if distributed and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.trainer.seed + rank)

    speech = is_speech_dataset(cfg.data.path)
    if speech:
        # Speech to face: the audio features are one "sensor" whose channels are the feature
        # vector; the denoiser, scheduler and loss are the IMU model's.
        dataset = open_speech_dataset(cfg.data.path)
        train_w = SpeechWindows(dataset, "train", window_s=cfg.data.window_s,
                                hop_s=cfg.data.hop_s, augment=True, seed=cfg.trainer.seed)
        val_w = SpeechWindows(dataset, "val", window_s=cfg.data.window_s,
                              hop_s=cfg.data.window_s)
        input_channels = dataset.info.feature_config().dim
    else:
        dataset = open_dataset(cfg.data.path)
        train_w = WindowDataset(dataset, split="train", window_s=cfg.data.window_s,
                                hop_s=cfg.data.hop_s)
        val_w = WindowDataset(dataset, split="val", window_s=cfg.data.window_s,
                              hop_s=cfg.data.window_s)
        input_channels = 6
    sites = list(dataset.info.sites)
    if len(train_w) == 0:
        raise ImucapError(f"{cfg.data.path} has no training windows of {cfg.data.window_s} s: "
                          f"use shorter windows (data.window_s) or a larger dataset")

    init = None
    if cfg.trainer.init_from:
        init = load_checkpoint(resolve_init(cfg.trainer.init_from))
        vocab = list(init.sites) + [s for s in sites if s not in init.sites]
        model_cfg = DenoiserConfig.from_dict(init.model_config)
        if len(vocab) > model_cfg.n_sites:
            raise ImucapError(f"{cfg.trainer.init_from} has room for {model_cfg.n_sites} sites; "
                              f"this dataset would need {len(vocab)}")
        sched_cfg = SchedulerConfig.from_dict(init.scheduler_config or {})
        same_input = input_kind(init) == ("audio" if speech else "imu")
        if same_input and model_cfg.imu_channels == input_channels:
            model = build_model(init).train()
            if init.training.get("imu_rate_hz") is not None:
                check_compatible(init, dataset.info, str(cfg.data.path), sites=False)
            if init.stats and speech:
                train_w.stats = val_w.stats = SpeechStats.from_json(init.stats, "checkpoint")
            elif init.stats:
                # Keep the statistics the model learnt with: new data is normalised like the
                # old.
                stats = init.norm_stats(sites, dataset.info.stats)
                train_w.stats = val_w.stats = stats
        else:
            # Another input (the shared motion prior under an audio model): the decoder and
            # the condition encoder's layers carry over; the input projection is new.
            model_cfg = replace(model_cfg, imu_channels=input_channels,
                                imu_patch=int(cfg.model.imu_patch))
            model = Denoiser(model_cfg)
            carried = transfer_weights(model, init.state)
            say(f"started from {cfg.trainer.init_from}: {carried} of "
                f"{len(model.state_dict())} weight tensors carried over")
            model.train()
    else:
        vocab = sites
        model_cfg = replace(model_config_from(cfg, len(vocab)), imu_channels=input_channels)
        model = Denoiser(model_cfg)
        sched_cfg = scheduler_config_from(cfg)
    scheduler = DiffusionScheduler(sched_cfg)
    model.to(device)
    site_ids = torch.tensor([vocab.index(s) for s in sites], device=device)

    sampler = None
    if distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(train_w, seed=cfg.trainer.seed)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    core = model.module if distributed else model
    loader = torch.utils.data.DataLoader(
        train_w, batch_size=cfg.trainer.batch_size, shuffle=sampler is None, sampler=sampler,
        collate_fn=_collate, num_workers=cfg.data.num_workers, drop_last=len(train_w) >
        cfg.trainer.batch_size, generator=torch.Generator().manual_seed(cfg.trainer.seed))
    opt = torch.optim.AdamW(core.parameters(), lr=cfg.trainer.lr,
                            weight_decay=cfg.trainer.weight_decay)
    total_steps = cfg.trainer.epochs * len(loader)
    if cfg.trainer.max_steps:
        total_steps = min(total_steps, cfg.trainer.max_steps)

    out_dir = Path(cfg.trainer.out_dir)
    start_epoch, step, best = 0, 0, float("inf")
    if cfg.trainer.resume:
        start_epoch, step, best = _resume(Path(cfg.trainer.resume), core, opt)
        out_dir = Path(cfg.trainer.resume)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    autocast = cfg.trainer.precision == "bf16" and device.type == "cuda"
    prior = cfg.trainer.stage == "prior"
    if prior and not core.config.diffusion:
        raise ImucapError("the Transformer regressor (model.diffusion=false) has no motion "
                          "prior: train it with trainer.stage=conditional")
    history: list[dict[str, Any]] = []
    say(f"training {sum(p.numel() for p in core.parameters()) / 1e6:.2f} M parameters on "
        f"{device} ({'prior' if prior else 'speech to face' if speech else 'IMU to face'}), "
        f"{len(train_w)} windows, "
        f"{total_steps} steps")

    for epoch in range(start_epoch, cfg.trainer.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        t0, seen, losses = time.monotonic(), 0, []
        for batch in loader:
            if cfg.trainer.max_steps and step >= cfg.trainer.max_steps:
                break
            imu = batch["imu"].to(device, non_blocking=True)
            x0 = batch["blendshapes"].to(device, non_blocking=True)
            b = x0.shape[0]
            t = scheduler.sample_timesteps(b, device=device)
            noise = torch.randn_like(x0)
            x_t = scheduler.add_noise(x0, noise, t)
            if not core.config.diffusion:
                drop = None  # the regressor baseline always reads the IMUs
            elif prior:
                drop = torch.ones(b, dtype=torch.bool, device=device)
            else:
                drop = torch.rand(b, device=device) < core.config.cond_drop_prob
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total_steps, cfg)
            mask = None
            if not prior and cfg.trainer.sensor_drop_prob > 0:
                # Teach the model to do without a sensor: mask some at random (never all).
                mask = torch.rand(b, imu.shape[2], device=device) >= \
                    cfg.trainer.sensor_drop_prob
                mask[mask.sum(dim=1) == 0, 0] = True
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                pred = model(x_t, t, imu, site_ids, mask, drop_cond=drop)
            pred = pred.float()
            loss = torch.nn.functional.mse_loss(pred, x0)
            loss = loss + VELOCITY_WEIGHT * torch.nn.functional.mse_loss(
                pred[:, 1:] - pred[:, :-1], x0[:, 1:] - x0[:, :-1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(core.parameters(), cfg.trainer.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
            seen += b
            step += 1
            if rank == 0 and step % cfg.trainer.log_every == 0:
                say(f"epoch {epoch + 1} step {step}/{total_steps} loss "
                    f"{np.mean(losses[-cfg.trainer.log_every:]):.5f} lr "
                    f"{opt.param_groups[0]['lr']:.2e} "
                    f"{seen / (time.monotonic() - t0):.0f} windows/s")
        record = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses))
                  if losses else None,
                  "windows_per_s": seen / max(time.monotonic() - t0, 1e-9)}
        if rank == 0 and len(val_w) and (epoch + 1) % cfg.trainer.eval_every_epochs == 0:
            metrics = evaluate_model(core, scheduler, val_w, site_ids,
                                     steps=cfg.scheduler.inference_steps,
                                     guidance_scale=cfg.scheduler.guidance_scale,
                                     device=device, max_windows=256,
                                     smooth=cfg.scheduler.output_smoothing_s
                                     * dataset.info.blendshape_rate_hz)
            record["val_mae"] = metrics["mae"]
            say(f"epoch {epoch + 1}: val MAE {metrics['mae']:.4f}, RMSE {metrics['rmse']:.4f}")
        history.append(record)
        if rank == 0:
            _save(out_dir / "last", core, opt, sched_cfg, vocab, dataset, train_w.stats, cfg,
                  record, history, epoch + 1, step, best)
            score = record.get("val_mae", record["train_loss"] or float("inf"))
            if score is not None and score <= best:
                best = score
                _save(out_dir / "best", core, None, sched_cfg, vocab, dataset, train_w.stats,
                      cfg, record, history, epoch + 1, step, best)
        if cfg.trainer.max_steps and step >= cfg.trainer.max_steps:
            break
    if distributed:
        torch.distributed.destroy_process_group()
    return out_dir


def _save(path: Path, model: Denoiser, opt: torch.optim.Optimizer | None,
          sched_cfg: SchedulerConfig, vocab: list[str], dataset: Any, stats: Any,
          cfg: DictConfig, record: dict, history: list, epoch: int, step: int,
          best: float) -> None:
    speech = hasattr(dataset.info, "audio_rate")
    training = {"epoch": epoch, "step": step, "best": best, "last": record,
                "input": "audio" if speech else "imu",
                "history": history, "dataset": str(cfg.data.path),
                "stage": cfg.trainer.stage, "window_s": cfg.data.window_s,
                "sites": list(dataset.info.sites),
                "imu_rate_hz": dataset.info.imu_rate_hz,
                "blendshape_rate_hz": dataset.info.blendshape_rate_hz,
                "inference_steps": cfg.scheduler.inference_steps,
                "guidance_scale": cfg.scheduler.guidance_scale,
                "output_smoothing_s": cfg.scheduler.output_smoothing_s,
                "versions": {"imucap": imucap.__version__, "torch": torch.__version__}}
    if speech:
        training["audio_rate"] = dataset.info.audio_rate
        training["features"] = dict(dataset.info.features)
    save_checkpoint(path, Checkpoint(model.config.to_dict(), sched_cfg.to_dict(), vocab,
                                     list(ARKIT_NAMES), stats.to_json()
                                     if stats is not None else None, training,
                                     model.state_dict()))
    if opt is not None:
        _save_optimizer(path / "optimizer.safetensors", opt)


def _save_optimizer(path: Path, opt: torch.optim.Optimizer) -> None:
    """Optimizer state as safetensors (tensors) and JSON (the rest): resumable, no pickle."""
    from safetensors.torch import save_file

    state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    save_file(tensors, str(path))
    path.with_suffix(".json").write_text(json.dumps(
        {"scalars": scalars, "param_groups": state["param_groups"]}), encoding="utf-8")


def _resume(run: Path, model: Denoiser, opt: torch.optim.Optimizer) -> tuple[int, int, float]:
    from safetensors.torch import load_file

    last = run / "last"
    ckpt = load_checkpoint(last)
    model.load_state_dict(ckpt.state)
    tensors = load_file(str(last / "optimizer.safetensors"))
    extra = json.loads((last / "optimizer.json").read_text(encoding="utf-8"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in extra["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": extra["param_groups"]})
    t = ckpt.training
    return int(t["epoch"]), int(t["step"]), float(t.get("best", float("inf")))


def finetune_config(cfg: DictConfig, checkpoint: str | Path, data: str | Path, *,
                    out_dir: str | Path, epochs: int = 10, lr: float = 1e-4,
                    keep: set[str] | frozenset[str] = frozenset()) -> DictConfig:
    """A training configuration that fine-tunes ``checkpoint`` on ``data``: stage 2 from the
    checkpoint, its window length and sampling settings, a small learning rate, a short warm-up
    and windows every quarter window (a few minutes of data go a long way).

    ``keep`` names settings (``trainer.lr`` …) the user set and that must stay as they are.

    Raises:
        CheckpointError: The checkpoint is unusable.
    """
    ckpt = load_checkpoint(checkpoint)
    t = ckpt.training
    window_s = float(t.get("window_s", cfg.data.window_s))
    wanted = {
        "data.path": str(data), "data.window_s": window_s, "data.hop_s": window_s / 4,
        "trainer.stage": "conditional", "trainer.init_from": str(checkpoint),
        "trainer.out_dir": str(out_dir), "trainer.epochs": int(epochs), "trainer.lr": float(lr),
        "trainer.warmup_steps": min(int(cfg.trainer.warmup_steps), 20),
        "scheduler.inference_steps": int(t.get("inference_steps",
                                                cfg.scheduler.inference_steps)),
        "scheduler.guidance_scale": float(t.get("guidance_scale",
                                                cfg.scheduler.guidance_scale)),
    }
    for key, value in wanted.items():
        if key not in keep:
            OmegaConf.update(cfg, key, value)
    return cfg
