"""Scoring speech-to-face models on held-out voices and texts, beside their baselines.

What is compared, on every clip of a split (the ``test`` split: voices and sentences that no
training clip has):

- the **model** (:func:`imucap.inference.speech.infer_speech` over the whole clip, exactly as
  ``imucap convert speech.wav`` runs it);
- the **viseme model** (:mod:`imucap.audio.visemes`) on the clip's own phoneme timeline, as
  ``imucap convert --text`` animates: it knows the words and their exact timing, which the
  audio model must hear, but not the speaker's style (see :mod:`imucap.datasets.speech`);
  only synthetic clips have phonemes, so imported data has no viseme row;
- **ridge regression** from the audio features of ±``RIDGE_CONTEXT`` frames around each frame
  (fitted here on the training split; the regression baseline the issue asks for);
- the **mean** face of the training split.

Metrics, each a mean over frames of all clips:

- MAE over the mouth and jaw (the 29 channels that speech moves: ``jaw*``, ``mouth*``,
  ``cheekPuff``, ``tongueOut``) and over all 52;
- MAE of the lip-related shapes one by one: jawOpen, mouthClose, mouthFunnel, mouthPucker,
  mouthPress (left and right averaged), mouthSmile (left and right averaged);
- **lip vertex error** (LVE, as the speech-driven animation literature uses it, e.g. VOCA and
  FaceFormer): per frame, the largest distance between predicted and true positions over the
  lip vertices of the built-in rig (upper and lower lip and mouth corners, region weight > 0.5),
  in millimetres, averaged over frames;
- jitter: mean absolute second difference of the mouth channels (per s², at 60 Hz), and the
  truth's, so a smoothing model and a jittery one can be told apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from imucap.datasets.speech import MOUTH_CHANNELS
from imucap.vocab import index_of

RIDGE_CONTEXT = 6
RIDGE_ALPHA = 10.0
LIP_SHAPES = {
    "jawOpen": ("jawOpen",),
    "mouthClose": ("mouthClose",),
    "mouthFunnel": ("mouthFunnel",),
    "mouthPucker": ("mouthPucker",),
    "mouthPress": ("mouthPressLeft", "mouthPressRight"),
    "mouthSmile": ("mouthSmileLeft", "mouthSmileRight"),
}
MOUTH = MOUTH_CHANNELS


def _stack_context(features: np.ndarray, k: int) -> np.ndarray:
    """``(T, F)`` → ``(T, (2k+1)·F)``: each frame with its ``k`` neighbours each side."""
    padded = np.concatenate([np.repeat(features[:1], k, 0), features,
                             np.repeat(features[-1:], k, 0)])
    return np.concatenate([padded[i:i + len(features)] for i in range(2 * k + 1)], axis=1)


class RidgeBaseline:
    """Ridge regression from stacked, normalised audio features to the 52 weights."""

    def __init__(self, stats: Any, context: int = RIDGE_CONTEXT, alpha: float = RIDGE_ALPHA
                 ) -> None:
        self.stats, self.context, self.alpha = stats, context, alpha
        self.coef: np.ndarray | None = None

    def _design(self, features: np.ndarray) -> np.ndarray:
        x = _stack_context(self.stats.normalize(features), self.context)
        return np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1)

    def fit(self, pairs: list[tuple[np.ndarray, np.ndarray]], stride: int = 2) -> RidgeBaseline:
        xtx, xty = None, None
        for feats, weights in pairs:
            x = self._design(feats)[::stride].astype(np.float64)
            y = weights[: len(feats)][::stride].astype(np.float64)
            xtx = x.T @ x if xtx is None else xtx + x.T @ x
            xty = x.T @ y if xty is None else xty + x.T @ y
        reg = self.alpha * np.eye(len(xtx))
        reg[-1, -1] = 0.0
        self.coef = np.linalg.solve(xtx + reg, xty).astype(np.float32)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.clip(self._design(features) @ self.coef, 0.0, 1.0)


def lip_vertices() -> tuple[np.ndarray, np.ndarray]:
    """The built-in rig's lip vertex indices and their deltas ``(52, L, 3)`` in metres."""
    from imucap.datasets.builtin_rig import builtin_region_weights, builtin_rig

    rig = builtin_rig()
    regions = builtin_region_weights()
    lips = np.zeros(rig.n_vertices, bool)
    for name in ("upper_lip", "lower_lip", "mouth_corner_L", "mouth_corner_R"):
        lips |= regions[name] > 0.5
    idx = np.flatnonzero(lips)
    return idx, rig.deltas[:, idx]


def lip_vertex_error_mm(pred: np.ndarray, true: np.ndarray, deltas: np.ndarray) -> float:
    """Mean over frames of the largest lip vertex distance (mm) between two weight tracks."""
    diff = (np.asarray(pred, np.float32) - np.asarray(true, np.float32)) @ \
        deltas.reshape(52, -1)
    dist = np.linalg.norm(diff.reshape(len(diff), -1, 3), axis=2)
    return float(dist.max(axis=1).mean() * 1000.0)


def score(pred: np.ndarray, true: np.ndarray, deltas: np.ndarray, fps: float) -> dict[str, Any]:
    """The metrics of the module docstring for one method over all frames."""
    err = np.abs(pred - true)
    lips = {name: float(err[:, [index_of(c) for c in cols]].mean())
            for name, cols in LIP_SHAPES.items()}
    return {"mouth_mae": float(err[:, MOUTH].mean()), "mae": float(err.mean()),
            "lip_mae": lips, "lve_mm": lip_vertex_error_mm(pred, true, deltas)}


def _jitter(tracks: list[np.ndarray], fps: float) -> float:
    acc = [np.abs(np.diff(t[:, MOUTH], n=2, axis=0)).mean() * fps * fps for t in tracks
           if len(t) > 2]
    return float(np.mean(acc)) if acc else float("nan")


def evaluate_speech(model: Any, dataset: Any, *, split: str = "test", steps: int | None = None,
                    seed: int = 0, max_clips: int | None = None,
                    say: Any = None) -> dict[str, Any]:
    """Score ``model`` (a :class:`~imucap.inference.speech.SpeechModel`) and the baselines on
    a split of a speech dataset. Returns the metrics dict (see the module docstring) plus the
    per-clip predictions of the first clip, for plotting."""
    from imucap.audio.features import compute_features
    from imucap.audio.visemes import phonemes_to_blendshapes
    from imucap.inference.speech import infer_speech

    note = say or (lambda text: None)
    info = dataset.info
    cfg = info.feature_config()
    ids = dataset.split_ids(split)[: max_clips or None]
    if not ids:
        raise ValueError(f"the {split} split of {dataset.path} is empty")
    note(f"fitting ridge regression on the training clips ({len(dataset.split_ids('train'))})")
    train_pairs = []
    for cid in dataset.split_ids("train"):
        clip = dataset.clip(cid)
        train_pairs.append((compute_features(clip.audio, info.audio_rate, cfg), clip.weights))
    ridge = RidgeBaseline(info.stats).fit(train_pairs)
    mean_face = np.concatenate([w for _, w in train_pairs]).mean(axis=0)
    del train_pairs
    _, deltas = lip_vertices()
    preds: dict[str, list[np.ndarray]] = {"model": [], "ridge": [], "mean": [], "visemes": []}
    trues: list[np.ndarray] = []
    with_phonemes: list[bool] = []
    seconds, wall = 0.0, 0.0
    for n, cid in enumerate(ids):
        clip = dataset.clip(cid)
        true = clip.weights
        result = infer_speech(clip.audio, model, rate=info.audio_rate, steps=steps, seed=seed)
        wall += result.wall_s
        seconds += result.duration_s
        t = min(len(true), len(result.track))
        trues.append(true[:t])
        preds["model"].append(result.track.weights[:t])
        preds["ridge"].append(ridge.predict(compute_features(clip.audio, info.audio_rate,
                                                             cfg))[:t])
        preds["mean"].append(np.repeat(mean_face[None], t, 0))
        if clip.phonemes:
            preds["visemes"].append(phonemes_to_blendshapes(
                clip.phonemes, len(clip.audio) / info.audio_rate, info.fps, n_frames=t))
        with_phonemes.append(bool(clip.phonemes))
        if (n + 1) % 50 == 0:
            note(f"{n + 1}/{len(ids)} clips")
    true_all = np.concatenate(trues)
    methods: dict[str, Any] = {}
    for name, tracks in preds.items():
        if not tracks:
            continue
        if name == "visemes":
            truth = np.concatenate([t for t, ok in zip(trues, with_phonemes, strict=True) if ok])
        else:
            truth = true_all
        methods[name] = score(np.concatenate(tracks), truth, deltas, info.fps)
        methods[name]["jitter"] = _jitter(tracks, info.fps)
    return {
        "split": split, "clips": len(ids), "seconds": seconds, "frames": int(len(true_all)),
        "speed_x_realtime": seconds / max(wall, 1e-9),
        "truth_jitter": _jitter(trues, info.fps), "methods": methods,
        "example": {"clip": ids[0], "text": dataset.info.clips[
            [c.id for c in dataset.info.clips].index(ids[0])].text,
                    "true": trues[0].tolist(),
                    **{k: v[0].tolist() for k, v in preds.items() if v}},
    }


def report_text(metrics: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_speech`'s metrics."""
    lines = [f"{metrics['clips']} clips, {metrics['seconds']:.0f} s of speech ({metrics['split']} "
             f"split: held-out voices and sentences); model at "
             f"{metrics['speed_x_realtime']:.0f}x real time",
             "",
             f"{'method':<10} {'mouth MAE':>9} {'all MAE':>8} {'LVE mm':>7} {'jitter':>7}  "
             + " ".join(f"{k:>11}" for k in LIP_SHAPES)]
    for name, m in metrics["methods"].items():
        lines.append(f"{name:<10} {m['mouth_mae']:9.4f} {m['mae']:8.4f} {m['lve_mm']:7.2f} "
                     f"{m['jitter']:7.2f}  "
                     + " ".join(f"{m['lip_mae'][k]:11.4f}" for k in LIP_SHAPES))
    lines.append(f"{'truth':<10} {'':>9} {'':>8} {'':>7} {metrics['truth_jitter']:7.2f}")
    return "\n".join(lines) + "\n"


def write_report(metrics: dict[str, Any], out: Path, *, plots: bool = True) -> list[Path]:
    """``metrics.json``, ``report.txt`` and, with matplotlib and ``plots``, ``curves.png``."""
    out.mkdir(parents=True, exist_ok=True)
    example = metrics.get("example", {})
    slim = {k: v for k, v in metrics.items() if k != "example"}
    slim["example_clip"] = {k: example.get(k) for k in ("clip", "text")}
    written = [out / "metrics.json", out / "report.txt"]
    written[0].write_text(json.dumps(slim, indent=1) + "\n", encoding="utf-8")
    written[1].write_text(report_text(metrics), encoding="utf-8")
    if not plots:
        return written
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    shapes = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker")
    fig, axes = plt.subplots(len(shapes), 1, figsize=(10, 8), sharex=True)
    true = np.asarray(example["true"])
    t = np.arange(len(true)) / 60.0
    for ax, shape in zip(axes, shapes, strict=True):
        c = index_of(shape)
        ax.plot(t, true[:, c], "k", lw=2, label="truth")
        for name, style in (("model", "C0"), ("visemes", "C2--"), ("ridge", "C1:")):
            if name in example:
                ax.plot(t, np.asarray(example[name])[:, c], style, label=name)
        ax.set_ylabel(shape)
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(loc="upper right", ncol=4, fontsize=8)
    axes[0].set_title(f"{example.get('clip')}: {example.get('text')}", fontsize=9)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    png = out / "curves.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    written.append(png)
    return written
