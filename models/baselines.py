"""Baseline regressors from IMU windows to ARKit blendshapes, behind one harness interface.

Every baseline is a :class:`Baseline`: ``fit(train, val=None)`` on window datasets (a
:class:`imucap.datasets.dataset.WindowDataset` or anything with ``len``, indexing to dicts with
``"imu"`` ``(W, S, 6)`` and ``"blendshapes"`` ``(Wb, 52)`` weights in [0, 1], and the rates,
see :func:`window_rates`), ``predict(imu)`` from ``(B, W, S, 6)`` IMU windows to ``(B, Wb, 52)``
weights in [0, 1], and ``save(path)`` / ``Baseline.load(path)`` as a folder holding
``baseline.json`` and ``weights.safetensors`` (no pickle anywhere).

- :class:`MeanBaseline`: the training mean of every blendshape, whatever the IMU says: the
  floor any model must clear.
- :class:`RidgeBaseline`: closed-form ridge regression (numpy) from local IMU features around
  each output frame.
- :class:`GRUBaseline`: a small bidirectional GRU (PyTorch) over the IMU sequence.

Frame ``j`` of a window lies ``j / blendshape_rate_hz`` after the window's first IMU sample
(the window layout of ``datasets/README.md``), so the IMU sample under it is
``j * imu_rate_hz / blendshape_rate_hz``. Baselines take the IMU as the window dataset gives it
(normalised with the dataset's training statistics when ``normalize=True``) and keep no
statistics of their own: feed ``predict`` windows prepared the same way.

torch is imported only inside :class:`GRUBaseline`'s methods, and safetensors only when saving
or loading: importing this module costs numpy alone.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import NUM_BLENDSHAPES

BASELINE_FORMAT = 1
"""Version of the saved baseline folder; a loader refuses any other."""

CONFIG_FILE = "baseline.json"
WEIGHTS_FILE = "weights.safetensors"
IMU_CHANNELS = 6  # accel xyz then gyro xyz per site


class BaselineError(ImucapError, ValueError):
    """A baseline used in a way it cannot be (unfitted, wrong shapes, unreadable folder)."""


# --------------------------------------------------------------------------------------------
# Window datasets


def window_rates(dataset: Any) -> tuple[float, float] | None:
    """``(imu_rate_hz, blendshape_rate_hz)`` of a window dataset, or None if it does not say.

    Read from ``dataset.dataset.info`` (a :class:`~imucap.datasets.dataset.WindowDataset`) or
    from ``imu_rate_hz`` and ``blendshape_rate_hz`` attributes of the dataset itself.
    """
    for holder in (getattr(getattr(dataset, "dataset", None), "info", None), dataset):
        imu_hz = getattr(holder, "imu_rate_hz", None)
        bs_hz = getattr(holder, "blendshape_rate_hz", None)
        if imu_hz is not None and bs_hz is not None:
            return float(imu_hz), float(bs_hz)
    return None


def iter_windows(dataset: Any, batch_size: int = 64, *,
                 indices: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches ``(imu (B, W, S, 6), blendshapes (B, Wb, 52))`` float32 of a window dataset.

    Raises:
        BaselineError: The dataset's targets are normalised (baselines learn weights in
            [0, 1]) or its items have the wrong shapes.
    """
    if getattr(dataset, "normalize_blendshapes", False):
        raise BaselineError("baselines learn blendshape weights in [0, 1]: make the window "
                            "dataset with normalize_blendshapes=False")
    order = range(len(dataset)) if indices is None else indices
    for start in range(0, len(order), batch_size):
        items = [dataset[int(i)] for i in order[start:start + batch_size]]
        imu = np.stack([it["imu"] for it in items]).astype(np.float32)
        bs = np.stack([it["blendshapes"] for it in items]).astype(np.float32)
        _check_imu(imu)
        if bs.ndim != 3 or bs.shape[-1] != NUM_BLENDSHAPES:
            raise BaselineError(f"blendshapes of a window must be (Wb, {NUM_BLENDSHAPES}), got "
                                f"{bs.shape[1:]}")
        yield imu, bs


def _check_imu(imu: np.ndarray, n_sites: int | None = None) -> None:
    if imu.ndim != 4 or imu.shape[-1] != IMU_CHANNELS:
        raise BaselineError(f"IMU windows must be (B, W, S, {IMU_CHANNELS}), got {imu.shape}")
    if n_sites is not None and imu.shape[2] != n_sites:
        raise BaselineError(f"the baseline was fitted on {n_sites} IMU sites, the windows "
                            f"have {imu.shape[2]}")
    if imu.shape[1] == 0:
        raise BaselineError("IMU windows hold no samples")


# --------------------------------------------------------------------------------------------
# The harness interface


class Baseline(ABC):
    """A regressor from IMU windows to blendshape windows that saves without pickle.

    Subclasses set :attr:`kind` (the type name written in ``baseline.json``) and implement
    :meth:`_fit`, :meth:`_predict`, :meth:`_config`, :meth:`_arrays` and :meth:`_restore`.

    Args:
        name: How reports call it (defaults to :attr:`kind`).
        imu_rate_hz: IMU rate of the windows, when the training dataset does not say.
        blendshape_rate_hz: Blendshape rate of the windows, when the dataset does not say.

    Attributes:
        name: How reports call it.
        n_sites: IMU sites the baseline was fitted on (None before :meth:`fit`).
        n_frames: Blendshape frames per training window (``Wb``; None before :meth:`fit`).
        fit_info: What fitting found (e.g. the chosen ridge alpha, loss history), JSON-able.
    """

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Baseline]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Baseline.registry[cls.kind] = cls

    def __init__(self, *, name: str | None = None, imu_rate_hz: float | None = None,
                 blendshape_rate_hz: float | None = None) -> None:
        self.name = name or self.kind
        self.imu_rate_hz = imu_rate_hz
        self.blendshape_rate_hz = blendshape_rate_hz
        self.n_sites: int | None = None
        self.n_frames: int | None = None
        self.fit_info: dict[str, Any] = {}

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "unfitted"
        return f"{type(self).__name__}(name={self.name!r}, {state})"

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has given the baseline its parameters."""
        return self.n_sites is not None

    # -- training and prediction

    def fit(self, train: Any, val: Any | None = None) -> Baseline:
        """Fit on a window dataset; ``val`` (optional) picks hyper-parameters or epochs.

        Returns:
            ``self``.

        Raises:
            BaselineError: An empty dataset, normalised targets, unknown rates, or windows
                that differ in shape.
        """
        if len(train) == 0:
            raise BaselineError("the training split has no windows (is it shorter than one "
                                "window?)")
        rates = window_rates(train)
        if rates is not None:
            self.imu_rate_hz, self.blendshape_rate_hz = rates
        if self.imu_rate_hz is None or self.blendshape_rate_hz is None:
            raise BaselineError("the window dataset does not say its rates: pass imu_rate_hz "
                                "and blendshape_rate_hz to the baseline")
        first = train[0]
        self.n_sites = int(np.shape(first["imu"])[1])
        self.n_frames = int(np.shape(first["blendshapes"])[0])
        if val is not None and len(val) == 0:
            val = None
        self.fit_info = {}
        self._fit(train, val)
        return self

    def predict(self, imu: np.ndarray, *, n_frames: int | None = None) -> np.ndarray:
        """Blendshape weights for IMU windows.

        Args:
            imu: ``(B, W, S, 6)`` IMU windows, prepared as the training windows were
                (normalised the same way).
            n_frames: Blendshape frames to return per window; None for
                ``round(W * blendshape_rate_hz / imu_rate_hz)`` (the training windows' ``Wb``
                when ``W`` is theirs).

        Returns:
            ``(B, n_frames, 52)`` float32 weights in [0, 1].
        """
        if not self.is_fitted:
            raise BaselineError(f"{self.name}: call fit() or load() before predict()")
        arr = np.asarray(imu, dtype=np.float32)
        _check_imu(arr, self.n_sites)
        if n_frames is None:
            n_frames = max(1, int(round(arr.shape[1] * self.blendshape_rate_hz
                                        / self.imu_rate_hz)))
        if n_frames < 1:
            raise BaselineError(f"n_frames must be positive, got {n_frames}")
        out = self._predict(arr, int(n_frames))
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def predict_dataset(self, dataset: Any, *,
                        batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """``(pred, true)``, both ``(N, Wb, 52)``, over every window of a dataset (for
        :func:`imucap.models.metrics.evaluate`)."""
        preds, trues = [], []
        for imu, bs in iter_windows(dataset, batch_size):
            preds.append(self.predict(imu, n_frames=bs.shape[1]))
            trues.append(bs)
        if not preds:
            empty = np.zeros((0, self.n_frames or 0, NUM_BLENDSHAPES), np.float32)
            return empty, empty.copy()
        return np.concatenate(preds), np.concatenate(trues)

    # -- saving

    def save(self, path: str | Path) -> Path:
        """Write the baseline to folder ``path`` (created if needed): ``baseline.json`` with
        its type, settings and fit results, and ``weights.safetensors`` with its arrays."""
        from safetensors.numpy import save_file

        if not self.is_fitted:
            raise BaselineError(f"{self.name}: nothing to save before fit()")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"format": BASELINE_FORMAT, "kind": self.kind, "name": self.name,
               "imu_rate_hz": self.imu_rate_hz, "blendshape_rate_hz": self.blendshape_rate_hz,
               "n_sites": self.n_sites, "n_frames": self.n_frames, "config": self._config(),
               "fit_info": self.fit_info}
        arrays = {k: np.ascontiguousarray(v) for k, v in self._arrays().items()}
        save_file(arrays, str(folder / WEIGHTS_FILE))
        tmp = folder / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        tmp.replace(folder / CONFIG_FILE)
        return folder

    @classmethod
    def load(cls, path: str | Path) -> Baseline:
        """Read a folder written by :meth:`save`.

        Called on :class:`Baseline` it returns whichever kind the folder holds; called on a
        subclass it also checks the kind.

        Raises:
            BaselineError: No baseline there, another format version, or another kind.
        """
        from safetensors.numpy import load_file

        folder = Path(path)
        try:
            doc = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BaselineError(f"no readable baseline at {folder} ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
            raise BaselineError(f"{folder / CONFIG_FILE}: baseline format "
                                f"{doc.get('format') if isinstance(doc, dict) else None!r}; "
                                f"this imucap reads format {BASELINE_FORMAT}")
        target = Baseline.registry.get(doc.get("kind", ""))
        if target is None or not issubclass(target, cls):
            raise BaselineError(f"{folder} holds a {doc.get('kind')!r} baseline, not "
                                f"{cls.kind or 'a known one'!r}")
        try:
            obj = target(**doc["config"], name=doc["name"], imu_rate_hz=doc["imu_rate_hz"],
                         blendshape_rate_hz=doc["blendshape_rate_hz"])
            obj.n_sites, obj.n_frames = int(doc["n_sites"]), int(doc["n_frames"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineError(f"{folder / CONFIG_FILE} is damaged or from another imucap "
                                f"({type(exc).__name__}: {exc}): save the baseline again"
                                ) from None
        obj.fit_info = doc.get("fit_info", {})
        try:
            obj._restore(load_file(str(folder / WEIGHTS_FILE)))
        except BaselineError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors has its own error types
            raise BaselineError(f"{folder / WEIGHTS_FILE} is missing, damaged or does not "
                                f"match {CONFIG_FILE} ({type(exc).__name__}: {exc}): save the "
                                f"baseline again") from None
        return obj

    # -- what subclasses provide

    @abstractmethod
    def _fit(self, train: Any, val: Any | None) -> None:
        """Fit; rates, ``n_sites`` and ``n_frames`` are already set."""

    @abstractmethod
    def _predict(self, imu: np.ndarray, n_frames: int) -> np.ndarray:
        """``(B, W, S, 6)`` float32 → ``(B, n_frames, 52)`` (clipped by the caller)."""

    @abstractmethod
    def _config(self) -> dict[str, Any]:
        """Constructor keyword arguments (JSON-able) that rebuild an unfitted twin."""

    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """The fitted parameters as named numpy arrays."""

    @abstractmethod
    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Take back what :meth:`_arrays` gave."""


# --------------------------------------------------------------------------------------------
# The training mean


def _training_mean(dataset: Any) -> np.ndarray:
    """``(52,)`` float32 mean weight of each blendshape over every frame of a window dataset."""
    total = np.zeros(NUM_BLENDSHAPES)
    count = 0
    for _, bs in iter_windows(dataset):
        total += bs.reshape(-1, NUM_BLENDSHAPES).sum(axis=0, dtype=np.float64)
        count += bs.shape[0] * bs.shape[1]
    return (total / count).astype(np.float32)


class MeanBaseline(Baseline):
    """Predicts every frame as the training split's mean weight of each blendshape."""

    kind = "mean"

    def _fit(self, train: Any, val: Any | None) -> None:
        self.mean = _training_mean(train)

    def _predict(self, imu: np.ndarray, n_frames: int) -> np.ndarray:
        return np.broadcast_to(self.mean, (imu.shape[0], n_frames, NUM_BLENDSHAPES)).copy()

    def _config(self) -> dict[str, Any]:
        return {}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean = arrays["mean"].astype(np.float32)


# --------------------------------------------------------------------------------------------
# Ridge regression


def frame_centres(n_imu: int, n_frames: int, imu_rate_hz: float,
                  blendshape_rate_hz: float) -> np.ndarray:
    """Index of the IMU sample under each blendshape frame of a window (clipped inside it)."""
    idx = np.rint(np.arange(n_frames) * (imu_rate_hz / blendshape_rate_hz)).astype(np.int64)
    return np.clip(idx, 0, n_imu - 1)


class RidgeBaseline(Baseline):
    """Ridge regression from local IMU features around each output frame.

    For a frame over IMU sample ``c``, the features of each of the ``S × 6`` channels are:
    the channel averaged over ``step_s`` at taps ``c + k·step_s`` for ``|k·step_s| ≤
    context_s`` (a downsampled snippet of the ±``context_s`` neighbourhood), and over the
    whole neighbourhood its mean, standard deviation, energy (mean square) and the RMS of its
    sample-to-sample change (the vibration a moving face leaves on the sensor). Windows are
    padded by repeating their first and last sample.

    Features are standardised with the training split's statistics and the weights solved in
    closed form, ``(XᵀX/n + α·I) w = Xᵀy/n`` on centred data (intercept not penalised), so
    ``alpha`` is on the scale of the features' correlation matrix. With a validation split the
    alpha of ``alphas`` with the lowest validation MAE is kept (from one eigendecomposition);
    without one, ``alpha``. Predictions are clipped to [0, 1].

    Args:
        context_s: Half-width of the neighbourhood, seconds (default 0.25).
        step_s: Spacing of the snippet's taps and their averaging length, seconds (0.05).
        alpha: Ridge strength used without a validation split (1.0).
        alphas: Candidates tried on a validation split (1e-3 … 1e3).
        batch_size: Windows featurised at a time (features are never all in memory).
    """

    kind = "ridge"

    def __init__(self, *, context_s: float = 0.25, step_s: float = 0.05, alpha: float = 1.0,
                 alphas: Sequence[float] = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4),
                 batch_size: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not (context_s >= 0 and step_s > 0 and alpha >= 0 and batch_size >= 1):
            raise BaselineError("RidgeBaseline needs context_s >= 0, step_s > 0, alpha >= 0 "
                                "and batch_size >= 1")
        if not alphas or min(alphas) < 0:
            raise BaselineError("RidgeBaseline needs one or more non-negative alphas")
        self.context_s, self.step_s = float(context_s), float(step_s)
        self.alpha = float(alpha)
        self.alphas = tuple(float(a) for a in alphas)
        self.batch_size = int(batch_size)

    # -- features

    def _geometry(self) -> tuple[int, int, np.ndarray]:
        """``(half_width, step)`` in IMU samples and the tap offsets."""
        half = int(round(self.context_s * self.imu_rate_hz))
        step = max(1, int(round(self.step_s * self.imu_rate_hz)))
        k = half // step
        return half, step, np.arange(-k, k + 1) * step

    @property
    def n_features(self) -> int:
        """Features per frame (known once the rates and sites are)."""
        _, _, taps = self._geometry()
        return (len(taps) + 4) * self.n_sites * IMU_CHANNELS

    def features(self, imu: np.ndarray, n_frames: int) -> np.ndarray:
        """``(B, W, S, 6)`` windows → ``(B · n_frames, n_features)`` float64 feature rows."""
        b, w = imu.shape[:2]
        x = imu.reshape(b, w, -1).astype(np.float64)
        half, step, taps = self._geometry()
        pad = half + step
        xp = np.pad(x, ((0, 0), (pad, pad), (0, 0)), mode="edge")
        zero = np.zeros((b, 1, x.shape[2]))
        cum = np.concatenate([zero, np.cumsum(xp, axis=1)], axis=1)
        cum2 = np.concatenate([zero, np.cumsum(xp * xp, axis=1)], axis=1)
        d2 = np.square(np.diff(xp, axis=1))
        cumd = np.concatenate([zero, np.cumsum(d2, axis=1)], axis=1)
        centre = frame_centres(w, n_frames, self.imu_rate_hz, self.blendshape_rate_hz) + pad
        # Snippet: mean over [p - step//2, p - step//2 + step) at each tap p.
        lo = centre[:, None] + taps[None, :] - step // 2
        snippet = (cum[:, lo + step] - cum[:, lo]) / step  # (B, F, K, C)
        a, z = centre - half, centre + half + 1
        n = float(z[0] - a[0])
        mean = (cum[:, z] - cum[:, a]) / n
        energy = (cum2[:, z] - cum2[:, a]) / n
        std = np.sqrt(np.maximum(energy - mean * mean, 0.0))
        # Changes between consecutive samples of [a, z): differences a … z-2 of xp.
        change = np.sqrt(np.maximum(cumd[:, z - 1] - cumd[:, a], 0.0) / max(n - 1.0, 1.0))
        feats = np.concatenate([snippet.reshape(b, n_frames, -1), mean, std, energy, change],
                               axis=2)
        return feats.reshape(b * n_frames, -1)

    # -- fitting

    def _fit(self, train: Any, val: Any | None) -> None:
        d = self.n_features
        n = 0
        sx, sy = np.zeros(d), np.zeros(NUM_BLENDSHAPES)
        sxx, sxy = np.zeros((d, d)), np.zeros((d, NUM_BLENDSHAPES))
        shift = None  # subtract a first guess of the mean so the sums do not cancel badly
        for imu, bs in iter_windows(train, self.batch_size):
            x = self.features(imu, bs.shape[1])
            y = bs.reshape(-1, NUM_BLENDSHAPES).astype(np.float64)
            if shift is None:
                shift = x.mean(axis=0)
            x = x - shift
            n += len(x)
            sx += x.sum(axis=0)
            sy += y.sum(axis=0)
            sxx += x.T @ x
            sxy += x.T @ y
        mx, my = sx / n, sy / n
        cxx = sxx / n - np.outer(mx, mx)
        cxy = sxy / n - np.outer(mx, my)
        scale = np.sqrt(np.maximum(np.diag(cxx), 0.0))
        scale = np.where(scale > 1e-8, scale, 1.0)  # a constant feature gets weight 0 anyway
        corr = cxx / np.outer(scale, scale)
        rhs = cxy / scale[:, None]
        lam, vec = np.linalg.eigh(corr)
        lam = np.maximum(lam, 0.0)
        proj = vec.T @ rhs  # (d, 52)
        x_mean = mx + shift

        if val is None:
            chosen, val_mae = self.alpha, None
        else:
            err = np.zeros(len(self.alphas))
            count = 0
            for imu, bs in iter_windows(val, self.batch_size):
                z = ((self.features(imu, bs.shape[1]) - x_mean) / scale) @ vec
                y = bs.reshape(-1, NUM_BLENDSHAPES)
                for i, alpha in enumerate(self.alphas):
                    pred = np.clip(z @ (proj / (lam + alpha)[:, None]) + my, 0.0, 1.0)
                    err[i] += np.abs(pred - y).sum()
                count += y.size
            val_mae = (err / count).tolist()
            chosen = self.alphas[int(np.argmin(err))]
        self.coef = vec @ (proj / (lam + chosen)[:, None]) / scale[:, None]  # raw features
        self.intercept = my - x_mean @ self.coef
        self.fit_info = {"alpha": chosen, "alphas": list(self.alphas), "val_mae": val_mae,
                         "n_rows": n, "n_features": d}

    def _predict(self, imu: np.ndarray, n_frames: int) -> np.ndarray:
        out = []
        for start in range(0, imu.shape[0], self.batch_size):
            chunk = imu[start:start + self.batch_size]
            y = self.features(chunk, n_frames) @ self.coef + self.intercept
            out.append(y.reshape(chunk.shape[0], n_frames, NUM_BLENDSHAPES))
        return np.concatenate(out)

    # -- saving

    def _config(self) -> dict[str, Any]:
        return {"context_s": self.context_s, "step_s": self.step_s, "alpha": self.alpha,
                "alphas": list(self.alphas), "batch_size": self.batch_size}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": self.intercept}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.coef = arrays["coef"].astype(np.float64)
        self.intercept = arrays["intercept"].astype(np.float64)
        if self.coef.shape != (self.n_features, NUM_BLENDSHAPES):
            raise BaselineError(f"ridge weights have shape {self.coef.shape}, the settings in "
                                f"{CONFIG_FILE} need ({self.n_features}, {NUM_BLENDSHAPES})")


# --------------------------------------------------------------------------------------------
# Bidirectional GRU


def _gru_network(n_sites: int, embed_size: int, hidden_size: int, num_layers: int,
                 stride: int) -> Any:
    """The GRU baseline's torch module (see :class:`GRUBaseline`); a function, so that torch
    is imported only when a GRU baseline is used."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    class GRUNet(nn.Module):
        """Per-sensor embedding → block averages → BiGRU → resampling to frames → sigmoid."""

        def __init__(self) -> None:
            super().__init__()
            bound = 1.0 / math.sqrt(IMU_CHANNELS)
            self.embed_weight = nn.Parameter(
                torch.empty(n_sites, IMU_CHANNELS, embed_size).uniform_(-bound, bound))
            self.embed_bias = nn.Parameter(torch.zeros(n_sites, embed_size))
            self.gru = nn.GRU(n_sites * embed_size, hidden_size, num_layers=num_layers,
                              batch_first=True, bidirectional=True)
            self.head = nn.Linear(2 * hidden_size, NUM_BLENDSHAPES)

        def forward(self, imu: torch.Tensor, n_frames: int) -> torch.Tensor:
            # imu (B, W, S, 6): each sensor its own linear map, so sites keep their identity.
            h = torch.einsum("bwsc,sce->bwse", imu, self.embed_weight) + self.embed_bias
            h = torch.tanh(h).flatten(2)  # (B, W, S·E)
            if stride > 1 and h.shape[1] >= stride:
                h = F.avg_pool1d(h.transpose(1, 2), stride, stride).transpose(1, 2)
            h, _ = self.gru(h)  # (B, W', 2H)
            h = h.transpose(1, 2)
            if h.shape[2] >= n_frames:
                h = F.adaptive_avg_pool1d(h, n_frames)
            else:  # fewer GRU steps than frames: interpolate rather than repeat steps
                h = F.interpolate(h, size=n_frames, mode="linear", align_corners=False)
            return torch.sigmoid(self.head(h.transpose(1, 2)))  # (B, n_frames, 52)

    return GRUNet()


class GRUBaseline(Baseline):
    """A small bidirectional GRU over the IMU sequence (PyTorch, CPU-friendly defaults).

    Each sensor's 6 channels go through their own linear embedding and a tanh; the sites'
    embeddings are concatenated, averaged over blocks of ``step_s`` (fewer GRU steps), run
    through a bidirectional GRU, resampled to the window's ``Wb`` frames (adaptive average
    pooling, or linear interpolation when there are fewer GRU steps than frames), and mapped
    by a linear layer and a sigmoid to 52 weights. The output bias starts at the logit of the
    training mean, so training starts from the mean predictor.

    Trained with Adam on MSE. Each training window gets a random constant offset per channel
    (``offset_std``, in normalised IMU units), as re-mounting a sensor and its turn-on bias
    give every session: with few subjects the network otherwise learns each one's offsets as
    expressions. With a validation split the epoch with the lowest validation MAE is kept.
    Deterministic for a given ``seed``; torch's global CPU random state is left as it was.

    Args:
        hidden_size: GRU units per direction (32).
        embed_size: Embedding size per sensor (8).
        num_layers: Stacked GRU layers (1).
        step_s: Time covered by one GRU step, seconds (0.04: 25 steps per second).
        epochs: Passes over the training windows (10).
        batch_size: Windows per Adam step (16).
        lr: Adam learning rate (3e-3).
        weight_decay: Adam weight decay (0).
        offset_std: Standard deviation of the training offsets, normalised units (0.5).
        seed: Seed of initialisation and shuffling (0).
        device: torch device to train and predict on ("cpu").
    """

    kind = "gru"

    def __init__(self, *, hidden_size: int = 32, embed_size: int = 8, num_layers: int = 1,
                 step_s: float = 0.04, epochs: int = 10, batch_size: int = 16,
                 lr: float = 3e-3, weight_decay: float = 0.0, offset_std: float = 0.5,
                 seed: int = 0, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (min(hidden_size, embed_size, num_layers, batch_size) < 1 or epochs < 0
                or not step_s > 0 or offset_std < 0):
            raise BaselineError("GRUBaseline needs positive sizes, step_s and batch_size, and "
                                "non-negative epochs and offset_std")
        self.hidden_size, self.embed_size = int(hidden_size), int(embed_size)
        self.num_layers, self.step_s = int(num_layers), float(step_s)
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.offset_std = float(offset_std)
        self.seed, self.device = int(seed), str(device)
        self._net: Any = None

    @property
    def stride(self) -> int:
        """IMU samples per GRU step (``step_s`` at the IMU rate, at least 1)."""
        return max(1, int(round(self.step_s * self.imu_rate_hz)))

    def _build(self) -> Any:
        return _gru_network(self.n_sites, self.embed_size, self.hidden_size, self.num_layers,
                            self.stride).to(self.device)

    def _fit(self, train: Any, val: Any | None) -> None:
        import torch

        mean = _training_mean(train).astype(np.float64).clip(1e-4, 1 - 1e-4)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = self._build()
            with torch.no_grad():
                net.head.bias.copy_(torch.from_numpy(np.log(mean / (1 - mean))))
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            shuffle = torch.Generator().manual_seed(self.seed)
            history: list[dict[str, float]] = []
            best_mae, best_epoch, best_state = math.inf, self.epochs, None
            for epoch in range(self.epochs):
                net.train()
                order = torch.randperm(len(train), generator=shuffle).tolist()
                total, count = 0.0, 0
                for imu, bs in iter_windows(train, self.batch_size, indices=order):
                    x = torch.from_numpy(imu).to(self.device)
                    if self.offset_std > 0:
                        # A constant offset per window and channel, as re-mounting and turn-on
                        # bias give each session: the network must not read levels too literally.
                        x = x + self.offset_std * torch.randn(
                            x.shape[0], 1, *x.shape[2:], generator=shuffle).to(self.device)
                    y = torch.from_numpy(bs).to(self.device)
                    loss = torch.mean(torch.square(net(x, y.shape[1]) - y))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(imu)
                    count += len(imu)
                entry = {"epoch": epoch + 1, "train_mse": total / count}
                if val is not None:
                    self._net = net
                    entry["val_mae"] = self._mae(val)
                    if entry["val_mae"] < best_mae:
                        best_mae, best_epoch = entry["val_mae"], epoch + 1
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                history.append(entry)
            if best_state is not None:
                net.load_state_dict(best_state)
        self._net = net.eval()
        self.fit_info = {"history": history, "best_epoch": best_epoch}

    def _mae(self, dataset: Any) -> float:
        err, n = 0.0, 0
        for imu, bs in iter_windows(dataset, 64):
            err += float(np.abs(self._predict(imu, bs.shape[1]) - bs).sum())
            n += bs.size
        return err / n

    def _predict(self, imu: np.ndarray, n_frames: int) -> np.ndarray:
        import torch

        net = self._net.eval()
        out = []
        with torch.no_grad():
            for start in range(0, imu.shape[0], 64):
                x = torch.from_numpy(np.ascontiguousarray(imu[start:start + 64]))
                out.append(net(x.to(self.device), n_frames).cpu().numpy())
        return np.concatenate(out)

    def _config(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "embed_size": self.embed_size,
                "num_layers": self.num_layers, "step_s": self.step_s, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "offset_std": self.offset_std, "seed": self.seed, "device": self.device}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self._net.state_dict().items()}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        with torch.random.fork_rng(devices=[]):  # the discarded initial weights draw numbers
            net = self._build()
        try:
            net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise BaselineError(f"GRU weights do not fit the settings in {CONFIG_FILE}: "
                                f"{first}") from None
        self._net = net.eval()


BASELINES: dict[str, type[Baseline]] = Baseline.registry
"""Baseline kinds by name (``"mean"``, ``"ridge"``, ``"gru"``)."""


def load_baseline(path: str | Path) -> Baseline:
    """Any baseline saved with :meth:`Baseline.save` (same as ``Baseline.load``)."""
    return Baseline.load(path)
