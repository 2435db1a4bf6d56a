"""Event alignment of a truth stream (ARKit blendshapes) against the IMU stream.

The truth's times reach the session clock only roughly (network latency of tens to hundreds of
milliseconds is still in them, or, for an offline video, there is no mapping at all). This
module finds what is left, the way the IMUSIC study did:

1. **Tap.** The wearer taps a chosen sensor (the chin). The tap is a sharp spike in that
   sensor's acceleration (:func:`find_taps`) and a sharp twitch of the jaw and mouth
   blendshapes; matching the two gives a coarse offset.
2. **Cross-correlation.** Over the whole overlap, IMU activity (summed gyro magnitude,
   :func:`imu_activity`) is correlated against truth speed (summed blendshape velocity,
   :func:`truth_speed`) within a small window around the coarse offset; the peak, interpolated
   between grid steps, is the offset.
3. **Segments.** The same is done on overlapping segments; their lags give the residual and,
   on request, a clock drift (a robust, correlation-weighted line through the lags).

Both correlated signals are first derivatives of the face's motion (a gyro measures the rate of
skin rotation, the blendshape velocity the rate of expression change), so neither leads the
other and the correlation peak is not biased by a derivative's phase shift.

Sign convention: :attr:`Alignment.offset_s` is *added* to truth times to put them on the IMU
timeline: ``imu_time = truth_time + offset_s + drift_ppm * 1e-6 * (truth_time - ref_s)``
(:meth:`Alignment.apply`). A positive offset means the truth stamps are early, a positive drift
that the truth clock runs slow (one truth second lasts ``1 + drift_ppm * 1e-6`` IMU seconds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import ARKIT_NAMES, index_of

__all__ = [
    "Alignment",
    "AlignmentError",
    "TapEvent",
    "align_truth",
    "find_taps",
    "imu_activity",
    "truth_speed",
    "uniform_grid",
]

MIN_OVERLAP_S = 5.0
"""Shortest overlap of the two streams that is aligned at all, seconds."""
MIN_TAP_MPS2 = 5.0
"""Absolute floor of the tap threshold (high-passed acceleration magnitude), m/s²."""
TAP_MAD_K = 10.0
"""Default tap threshold: median + ``TAP_MAD_K`` · MAD (as σ) of the high-passed magnitude."""
MIN_GYRO_MOTION_RAD_S = 0.02
"""When no sensor's gyro strays this far from its median (99.5th percentile), the IMU is still."""
MIN_TRUTH_SPIKE = 0.1
"""Least twitch (sum over the tap channels of the weight's excess over its 5-frame median)."""
MIN_SEGMENT_CORR = 0.2
"""Segments whose peak correlation is lower than this are left out of the residual and drift."""
GLOBAL_RATE_HZ = 100.0
"""Grid of the search over all lags (``search_s=None``) and of the wide coarse search."""
GLOBAL_TAP_FRACTION = 0.7
"""Without a prior, a tap pairing is used only if it correlates this well relative to the best."""

_HP_BLOCK_S = 0.2  # block of the running-median baseline of the tap detector
_SMOOTH_S = 0.005  # Gaussian σ of the kernel smoothing both correlated signals
_COARSE_SMOOTH_S = 0.05
_GYRO_BASELINE_S = 0.5  # moving average removed from each gyro (head motion, bias)
_HIGHPASS_S = 1.0  # width of the moving average removed from both correlated signals


class AlignmentError(ImucapError):
    """The truth cannot be aligned to the IMU stream (one line: what is wrong, what to do)."""


@dataclass(frozen=True)
class TapEvent:
    """One tap found in one sensor's acceleration.

    Attributes:
        time_s: Time of the peak, interpolated between samples, on the IMU clock.
        peak_mps2: Peak of the high-passed acceleration magnitude, m/s² (limited by sampling).
        sensor: Index of the sensor.
    """

    time_s: float
    peak_mps2: float
    sensor: int


@dataclass(frozen=True)
class Alignment:
    """How truth times map onto the IMU timeline.

    ``imu_time = truth_time + offset_s + drift_ppm * 1e-6 * (truth_time - ref_s)``.

    Attributes:
        offset_s: Offset added to truth times at ``ref_s``, seconds.
        drift_ppm: Rate error of the truth clock: positive when it runs slow, ppm.
        ref_s: Truth time at which ``offset_s`` holds (the middle of the overlap or of the
            segments used), seconds on the truth clock.
        residual_ms: RMS of the segment lags about the fitted line (or about ``offset_s``
            when no drift was fitted), ms; NaN when no segment was good enough.
        correlation: Peak normalised correlation of IMU activity and truth speed over the
            whole overlap, -1 to 1.
        method: How the offset was found: ``"tap+xcorr"``, ``"xcorr"``,
            ``"global+tap+xcorr"`` or ``"global+xcorr"``.
        tap_imu_s: Time of the tap used, IMU clock; None when no tap was used.
        tap_truth_s: Time of the matching twitch, truth clock; None when no tap was used.
        segments: ``(center_s, lag_s, corr)`` per segment: center on the truth clock, the
            segment's lag (offset) in seconds, and its peak correlation.
    """

    offset_s: float
    drift_ppm: float = 0.0
    ref_s: float = 0.0
    residual_ms: float = math.nan
    correlation: float = math.nan
    method: str = "xcorr"
    tap_imu_s: float | None = None
    tap_truth_s: float | None = None
    segments: tuple[tuple[float, float, float], ...] = field(default=())

    def apply(self, t: np.ndarray | float) -> np.ndarray | float:
        """Map truth times onto the IMU timeline.

        Args:
            t: Truth times, seconds on the truth clock.

        Returns:
            ``t + offset_s + drift_ppm * 1e-6 * (t - ref_s)``: IMU-clock seconds, of the same
            shape as ``t``.
        """
        x = np.asarray(t, dtype=np.float64)
        out = x + self.offset_s + self.drift_ppm * 1e-6 * (x - self.ref_s)
        return float(out) if out.ndim == 0 else out

    def to_json(self) -> str:
        """All fields as a JSON object (non-finite numbers as null)."""
        data = asdict(self)
        data["segments"] = [list(s) for s in self.segments]
        for key in ("residual_ms", "correlation"):
            if not math.isfinite(data[key]):
                data[key] = None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | Mapping) -> Alignment:
        """Read what :meth:`to_json` wrote (a JSON string or the parsed object).

        Raises:
            AlignmentError: The text is not an alignment.
        """
        try:
            data = dict(json.loads(text) if isinstance(text, str) else text)
            return cls(
                offset_s=float(data["offset_s"]),
                drift_ppm=float(data.get("drift_ppm", 0.0)),
                ref_s=float(data.get("ref_s", 0.0)),
                residual_ms=_float_or_nan(data.get("residual_ms")),
                correlation=_float_or_nan(data.get("correlation")),
                method=str(data.get("method", "xcorr")),
                tap_imu_s=_float_or_none(data.get("tap_imu_s")),
                tap_truth_s=_float_or_none(data.get("tap_truth_s")),
                segments=tuple(
                    (float(c), float(lag), float(r)) for c, lag, r in data.get("segments", ())
                ),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise AlignmentError(
                f"not an alignment ({exc}): pass what Alignment.to_json wrote"
            ) from exc


def _float_or_nan(value: object) -> float:
    return math.nan if value is None else float(value)


def _float_or_none(value: object) -> float | None:
    return None if value is None else float(value)


# ------------------------------------------------------------------------------------ taps


def find_taps(
    time_s: np.ndarray,
    accel: np.ndarray,
    sensor: int,
    *,
    threshold: float | None = None,
    min_separation_s: float = 1.0,
) -> list[TapEvent]:
    """Find taps: sharp spikes of one sensor's high-passed acceleration.

    The acceleration is high-passed per axis by removing a running-median baseline (medians
    of 0.2 s blocks, interpolated), which follows gravity and slow skin motion but not a
    spike of a few tens of milliseconds; the magnitude of what is left is searched for peaks.

    Args:
        time_s: ``(N,)`` sample times, seconds, increasing.
        accel: ``(N, S, 3)`` specific force, m/s².
        sensor: Index of the tapped sensor.
        threshold: Least peak, m/s²; by default median + 10 · MAD (as σ) of the high-passed
            magnitude, but never below :data:`MIN_TAP_MPS2`, so a still session has no taps.
        min_separation_s: Of peaks closer than this, only the highest is a tap.

    Returns:
        The taps in time order; each time interpolated between samples (parabola through the
        peak and its neighbours).

    Raises:
        AlignmentError: The arrays do not fit together or ``sensor`` is out of range.
    """
    t = np.asarray(time_s, dtype=np.float64)
    a = np.asarray(accel, dtype=np.float64)
    if a.ndim != 3 or a.shape[0] != len(t) or a.shape[2] != 3:
        raise AlignmentError(
            f"accel has shape {a.shape} for {len(t)} times: pass (N, sensors, 3) with one row "
            "per sample time"
        )
    if not 0 <= sensor < a.shape[1]:
        raise AlignmentError(f"tap sensor {sensor} does not exist: use 0 to {a.shape[1] - 1}")
    ok = np.isfinite(t) & np.all(np.isfinite(a[:, sensor]), axis=1)
    t, x = t[ok], a[ok, sensor]
    if len(t) < 5:
        return []
    hp = np.linalg.norm(x - _block_median_baseline(t, x, _HP_BLOCK_S), axis=1)
    if threshold is None:
        med = float(np.median(hp))
        mad = 1.4826 * float(np.median(np.abs(hp - med)))
        threshold = max(med + TAP_MAD_K * mad, MIN_TAP_MPS2)
    inner = np.arange(1, len(hp) - 1)
    is_peak = (hp[inner] >= threshold) & (hp[inner] >= hp[inner - 1]) & (hp[inner] > hp[inner + 1])
    candidates = inner[is_peak]
    chosen: list[int] = []
    for i in candidates[np.argsort(-hp[candidates], kind="stable")]:
        if all(abs(t[i] - t[j]) >= min_separation_s for j in chosen):
            chosen.append(int(i))
    taps = []
    for i in sorted(chosen):
        delta, peak = _parabola(hp[i - 1], hp[i], hp[i + 1])
        step = t[i + 1] - t[i] if delta > 0 else t[i] - t[i - 1]
        taps.append(TapEvent(float(t[i] + delta * step), float(peak), int(sensor)))
    return taps


def _block_median_baseline(t: np.ndarray, x: np.ndarray, block_s: float) -> np.ndarray:
    """Per-column running baseline: medians of blocks of ``block_s``, interpolated linearly."""
    dt = float(np.median(np.diff(t))) if len(t) > 1 else block_s
    size = max(3, int(round(block_s / max(dt, 1e-9))))
    n_blocks = max(1, len(t) // size)
    cut = n_blocks * size
    centers = t[:cut].reshape(n_blocks, size).mean(axis=1)
    med = np.median(x[:cut].reshape(n_blocks, size, -1), axis=1)
    if cut < len(t):  # the tail block
        centers = np.append(centers, t[cut:].mean())
        med = np.vstack([med, np.median(x[cut:], axis=0)])
    return np.stack([np.interp(t, centers, med[:, k]) for k in range(x.shape[1])], axis=1)


def _parabola(y0: float, y1: float, y2: float) -> tuple[float, float]:
    """Vertex of the parabola through (-1, y0), (0, y1), (1, y2): (offset in -0.5..0.5, height)."""
    den = y0 - 2.0 * y1 + y2
    if den >= 0 or not math.isfinite(den):
        return 0.0, float(y1)
    delta = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
    return delta, float(y1 - 0.25 * (y0 - y2) * delta)


# --------------------------------------------------------------------- correlated signals


def uniform_grid(start_s: float, stop_s: float, rate_hz: float) -> np.ndarray:
    """Times ``start_s, start_s + 1/rate_hz, …`` up to ``stop_s`` (included when on the grid)."""
    n = int(math.floor((stop_s - start_s) * rate_hz + 1e-9)) + 1
    return start_s + np.arange(max(n, 0)) / rate_hz


def imu_activity(
    time_s: np.ndarray,
    gyro: np.ndarray,
    grid_s: np.ndarray,
    *,
    baseline_s: float | None = _GYRO_BASELINE_S,
    smooth_s: float = _SMOOTH_S,
    highpass_s: float | None = _HIGHPASS_S,
) -> tuple[np.ndarray, np.ndarray]:
    """IMU activity on a uniform grid: summed magnitude of each sensor's gyro minus its baseline.

    The gyro measures the rate of skin rotation, a first derivative of the face's motion like
    :func:`truth_speed`, so the two are comparable without a phase shift. Each sensor's
    baseline is a centred moving average over ``baseline_s`` (per axis): it removes the gyro
    bias and, more importantly, the slow rotation of the whole head, which every sensor feels
    but the blendshapes do not show (left in, it skews the correlation by about a millisecond).
    The summed magnitude is linearly interpolated onto the grid, smoothed by a Gaussian of
    σ ``smooth_s``, high-passed by removing a moving average of ``highpass_s`` and
    standardised over the valid grid points.

    Args:
        time_s: ``(N,)`` IMU sample times, seconds.
        gyro: ``(N, S, 3)`` angular rate, rad/s; rows with NaN are left out.
        grid_s: Uniform grid, seconds, on the IMU clock.
        baseline_s: Width of the moving average removed from each sensor's gyro, seconds;
            None removes each sensor's median over the whole recording instead.
        smooth_s: σ of the Gaussian smoothing, seconds.
        highpass_s: Width of the moving average removed, seconds; None keeps the slow part.

    Returns:
        ``(activity, valid)``: standardised activity (0 where not valid) and a boolean mask of
        grid points covered by samples (no gap longer than 2.5 sample steps).
    """
    t = np.asarray(time_s, dtype=np.float64)
    g = np.asarray(gyro, dtype=np.float64)
    if g.ndim == 2:
        g = g[:, None, :]
    ok = np.isfinite(t) & np.all(np.isfinite(g), axis=(1, 2))
    t, g = t[ok], g[ok]
    if len(t) < 2:
        n = len(grid_s)
        return np.zeros(n), np.zeros(n, dtype=bool)
    if baseline_s is None:
        base = np.median(g, axis=0)
    else:
        width = max(3, int(round(baseline_s / float(np.median(np.diff(t))))) | 1)
        base = _moving_average(g, width)
    raw = np.linalg.norm(g - base, axis=2).sum(axis=1)
    return _to_grid(t, raw, grid_s, smooth_s, highpass_s)


def truth_speed(
    time_s: np.ndarray,
    weights: np.ndarray,
    grid_s: np.ndarray,
    *,
    channels: Sequence[str | int] | None = None,
    smooth_s: float = _SMOOTH_S,
    highpass_s: float | None = _HIGHPASS_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Truth speed on a uniform grid: summed ``|dw/dt|`` of the blendshape weights.

    Velocities are central differences over each frame's neighbours (using their actual times)
    and only where both neighbours are valid frames close in time; frames with any NaN (no
    face) are left out. Then as :func:`imu_activity`: linear interpolation onto the grid, the
    same Gaussian smoothing and high-pass, standardisation.

    Args:
        time_s: ``(M,)`` truth frame times, seconds (the grid's clock).
        weights: ``(M, C)`` blendshape weights (``C`` = 52 for ARKit order).
        grid_s: Uniform grid, seconds.
        channels: Channels summed, ARKit names or column indices; by default every channel
            that changes over the valid frames.
        smooth_s: σ of the Gaussian smoothing, seconds.
        highpass_s: Width of the moving average removed, seconds; None keeps the slow part.

    Returns:
        ``(speed, valid)`` as for :func:`imu_activity`.
    """
    t, w = _valid_truth(time_s, weights)
    if channels is not None:
        w = w[:, _channel_indices(channels, w.shape[1])]
    n = len(grid_s)
    if len(t) < 3:
        return np.zeros(n), np.zeros(n, dtype=bool)
    w = w[:, np.ptp(w, axis=0) > 1e-9] if channels is None else w
    gap = _max_gap(t)
    dt_prev, dt_next = np.diff(t)[:-1], np.diff(t)[1:]
    good = (dt_prev <= gap) & (dt_next <= gap)
    speed = np.abs((w[2:] - w[:-2]) / (t[2:] - t[:-2])[:, None]).sum(axis=1)
    return _to_grid(t[1:-1][good], speed[good], grid_s, smooth_s, highpass_s, gap=gap)


def _valid_truth(time_s: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time_s, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != len(t):
        raise AlignmentError(
            f"weights have shape {w.shape} for {len(t)} times: pass (M, 52) with one row per time"
        )
    ok = np.isfinite(t) & np.all(np.isfinite(w), axis=1)
    return t[ok], w[ok]


def _channel_indices(channels: Sequence[str | int], width: int) -> np.ndarray:
    out = []
    for c in channels:
        i = index_of(c) if isinstance(c, str) else int(c)
        if not 0 <= i < width:
            raise AlignmentError(f"truth channel {c!r} is not one of the {width} columns")
        out.append(i)
    return np.asarray(out, dtype=int)


def _max_gap(t: np.ndarray) -> float:
    return 2.5 * float(np.median(np.diff(t)))


def _to_grid(
    t: np.ndarray,
    y: np.ndarray,
    grid: np.ndarray,
    smooth_s: float,
    highpass_s: float | None,
    gap: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate, mask gaps, smooth, high-pass and standardise one signal on a grid."""
    grid = np.asarray(grid, dtype=np.float64)
    n = len(grid)
    if len(t) < 2 or n < 2:
        return np.zeros(n), np.zeros(n, dtype=bool)
    gap = _max_gap(t) if gap is None else gap
    values = np.interp(grid, t, y)
    right = np.clip(np.searchsorted(t, grid, side="left"), 1, len(t) - 1)
    valid = (grid >= t[0]) & (grid <= t[-1]) & (t[right] - t[right - 1] <= gap)
    fs = 1.0 / float(grid[1] - grid[0])
    values = np.where(valid, values, 0.0)
    values = _masked_smooth(values, valid, _gaussian(smooth_s * fs))
    if highpass_s is not None:
        box = np.ones(max(1, int(round(highpass_s * fs)) | 1))
        values = values - _masked_smooth(values, valid, box)
    values = np.where(valid, values, 0.0)
    if valid.any():
        values = np.where(valid, values - values[valid].mean(), 0.0)
        sd = float(values[valid].std())
        if sd > 0:
            values /= sd
    return values, valid


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centered moving average along axis 0 over ``width`` (odd) samples, shrinking at the ends."""
    half = width // 2
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    n = len(x)
    hi = np.minimum(np.arange(n) + half + 1, n)
    lo = np.maximum(np.arange(n) - half, 0)
    shape = (n,) + (1,) * (x.ndim - 1)
    return (c[hi] - c[lo]) / (hi - lo).reshape(shape)


def _gaussian(sigma: float) -> np.ndarray:
    if sigma < 0.5:
        return np.ones(1)
    half = int(math.ceil(4 * sigma))
    x = np.arange(-half, half + 1)
    return np.exp(-0.5 * (x / sigma) ** 2)


def _masked_smooth(x: np.ndarray, mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Normalised convolution: smooth ``x`` over the points of ``mask`` only (zero phase)."""
    m = mask.astype(np.float64)
    num = _convolve_same(x * m, kernel)
    den = _convolve_same(m, kernel)
    return np.where(den > 1e-9 * kernel.sum(), num / np.maximum(den, 1e-300), 0.0)


def _convolve_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Centered convolution with an odd, symmetric kernel (FFT when long, direct when short)."""
    k = len(kernel)
    if k == 1:
        return x * kernel[0]
    if k <= 64 or len(x) < 4 * k:
        return np.convolve(x, kernel, mode="same")
    n = _fast_len(len(x) + k - 1)
    full = np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(kernel, n), n)
    start = (k - 1) // 2
    return full[start:start + len(x)]


def _fast_len(n: int) -> int:
    """Smallest 2^a·3^b·5^c ≥ n (a size the FFT handles fast)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


# ----------------------------------------------------------------------- cross-correlation


def _window_xcorr(
    a: np.ndarray, ma: np.ndarray, s: np.ndarray, ms: np.ndarray
) -> np.ndarray:
    """Normalised ``c[q] = Σ_i a[i] s[i + q]`` for q in 0 … len(s) - len(a), masks applied."""
    n_out = len(s) - len(a) + 1
    n = _fast_len(len(s))

    def corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n)), n)[:n_out]

    maf, msf = ma.astype(np.float64), ms.astype(np.float64)
    num = corr(a, s)
    ea = corr(a * a, msf)
    es = corr(maf, s * s)
    ok = (ea > 1e-9 * max(len(a), 1)) & (es > 1e-9 * max(len(a), 1))
    return np.where(ok, num / np.sqrt(np.where(ok, ea * es, 1.0)), 0.0)


def _peak(c: np.ndarray) -> tuple[float, float, bool]:
    """Peak of a correlation: (index interpolated by a parabola, height, whether inside)."""
    q = int(np.argmax(c))
    if 0 < q < len(c) - 1:
        delta, height = _parabola(c[q - 1], c[q], c[q + 1])
        return q + delta, height, True
    return float(q), float(c[q]), False


@dataclass
class _Streams:
    """The inputs, cleaned once."""

    imu_t: np.ndarray
    gyro: np.ndarray
    truth_t: np.ndarray
    weights: np.ndarray  # rows of NaN kept (truth_speed leaves them out)
    imu_ok: np.ndarray  # which input IMU rows were kept

    @property
    def imu_span(self) -> tuple[float, float]:
        return float(self.imu_t[0]), float(self.imu_t[-1])

    @property
    def truth_span(self) -> tuple[float, float]:
        t, _ = _valid_truth(self.truth_t, self.weights)
        return float(t[0]), float(t[-1])


def _overlap(st: _Streams, lag: float, margin: float = 0.0) -> tuple[float, float]:
    (i0, i1), (t0, t1) = st.imu_span, st.truth_span
    return max(i0, t0 + lag - margin), min(i1, t1 + lag + margin)


def _lag_window(
    st: _Streams, center: float, half_s: float, fs: float, smooth_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Activity on the IMU grid over the overlap and truth speed on lag-shifted grid.

    Returns ``(grid, a, ma, s, ms, K)`` with ``s`` covering the grid shifted by ``center``
    and ``K`` extra points on each side, so that ``c[q]`` of :func:`_window_xcorr` is the lag
    ``center + (K - q) / fs``.
    """
    o0, o1 = _overlap(st, center)
    grid = uniform_grid(o0, o1, fs)
    k = int(math.ceil(half_s * fs))
    a, ma = imu_activity(st.imu_t, st.gyro, grid, smooth_s=smooth_s)
    s_grid = grid[0] - center + (np.arange(len(grid) + 2 * k) - k) / fs
    s, ms = truth_speed(st.truth_t, st.weights, s_grid, smooth_s=smooth_s)
    return grid, a, ma, s, ms, k


def _refine(
    st: _Streams, center: float, half_s: float, fs: float, smooth_s: float
) -> tuple[float, float, bool]:
    """Lag of the correlation peak within ``center ± half_s``: (lag, corr, inside window)."""
    _, a, ma, s, ms, k = _lag_window(st, center, half_s, fs, smooth_s)
    c = _window_xcorr(a, ma, s, ms)
    q, height, inside = _peak(c)
    return center + (k - q) / fs, height, inside


def _global_xcorr(st: _Streams) -> tuple[np.ndarray, np.ndarray]:
    """Normalised correlation over all lags that overlap enough: ``(lags_s, corr)``.

    Lags whose overlap is shorter than half the shorter stream (or 5 s) have ``-inf``.
    """
    fs = GLOBAL_RATE_HZ
    ga = uniform_grid(*st.imu_span, fs)
    gt = uniform_grid(*st.truth_span, fs)
    a, ma = imu_activity(st.imu_t, st.gyro, ga, smooth_s=_COARSE_SMOOTH_S)
    s, ms = truth_speed(st.truth_t, st.weights, gt, smooth_s=_COARSE_SMOOTH_S)
    n = _fast_len(len(a) + len(s) - 1)
    fa = {k: np.fft.rfft(v, n) for k, v in (("a", a), ("a2", a * a), ("m", ma * 1.0))}
    fsig = {k: np.fft.rfft(v, n) for k, v in (("s", s), ("s2", s * s), ("m", ms * 1.0))}

    def corr(x: str, y: str) -> np.ndarray:  # Σ_i x[i] y[i - k], k from -(len(s)-1) to len(a)-1
        full = np.fft.irfft(fa[x] * np.conj(fsig[y]), n)
        return np.concatenate([full[n - (len(s) - 1):], full[:len(a)]])

    num, ea, es, overlap = corr("a", "s"), corr("a2", "m"), corr("m", "s2"), corr("m", "m")
    need = max(MIN_OVERLAP_S, 0.5 * min(ga[-1] - ga[0], gt[-1] - gt[0])) * fs
    ok = (overlap >= need - 0.5) & (ea > 1e-9) & (es > 1e-9)
    if not ok.any():
        raise AlignmentError(
            f"the streams are too short to search all lags (need {MIN_OVERLAP_S:g} s of motion "
            "in each): record longer"
        )
    c = np.where(ok, num / np.sqrt(np.where(ok, ea * es, 1.0)), -np.inf)
    lags = ga[0] - gt[0] + (np.arange(len(c)) - (len(s) - 1)) / fs
    return lags, c


@dataclass
class _Twitches:
    """Twitch scores of the truth's tap channels, frame by frame (valid frames only)."""

    t: np.ndarray
    score: np.ndarray  # summed excess of the channels over their 5-frame running median
    isolated: np.ndarray  # how far the score exceeds the highest score 3 frames to 0.25 s away

    @classmethod
    def of(cls, st: _Streams, channels: np.ndarray) -> _Twitches:
        """Score every frame.

        A spike of one to three frames stands out of the running median, while steps and slow
        motion leave nothing. A twitch must also be isolated, so that periodic sharp motion
        (the cusps of fast speech) does not pass for a tap.
        """
        t, w = _valid_truth(st.truth_t, st.weights)
        w = w[:, channels]
        score = np.zeros(len(t))
        if len(t) < 9:
            return cls(t, score, score.copy())
        windows = np.lib.stride_tricks.sliding_window_view(w, 5, axis=0)  # (M-4, C, 5)
        score[2:-2] = np.abs(w[2:-2] - np.median(windows, axis=2)).sum(axis=1)
        gap = 3
        far = max(gap + 3, int(round(0.25 / float(np.median(np.diff(t))))))
        ring = np.lib.stride_tricks.sliding_window_view(np.pad(score, far), 2 * far + 1)
        ring = np.concatenate([ring[:, : far - gap + 1], ring[:, far + gap:]], axis=1)
        return cls(t, score, score - ring.max(axis=1))

    def best(self, lo: float, hi: float) -> float | None:
        """Time of the most isolated twitch within [lo, hi] (truth clock), or None."""
        inside = np.flatnonzero((self.t >= lo) & (self.t <= hi))
        inside = inside[(inside >= 1) & (inside < len(self.t) - 1)]
        if len(inside) == 0:
            return None
        i = int(inside[np.argmax(self.isolated[inside])])
        return self._time(i) if self.isolated[i] >= MIN_TRUTH_SPIKE else None

    def all(self) -> list[float]:
        """Times of every twitch (isolated local maxima at least :data:`MIN_TRUTH_SPIKE`)."""
        iso = self.isolated
        idx = np.flatnonzero(iso[1:-1] >= MIN_TRUTH_SPIKE) + 1
        idx = idx[(iso[idx] >= iso[idx - 1]) & (iso[idx] >= iso[idx + 1])]
        return [self._time(int(i)) for i in idx]

    def _time(self, i: int) -> float:
        delta, _ = _parabola(self.score[i - 1], self.score[i], self.score[i + 1])
        step = self.t[i + 1] - self.t[i] if delta > 0 else self.t[i] - self.t[i - 1]
        return float(self.t[i] + delta * step)


def _match_tap_globally(
    taps: list[TapEvent], twitches: _Twitches, lags: np.ndarray, corr: np.ndarray
) -> tuple[float | None, float | None]:
    """Pair an IMU tap with a truth twitch when nothing is known of the offset.

    Every pairing of a tap with a twitch proposes a lag; the one where the activity and speed
    correlate best wins, provided it correlates at least :data:`GLOBAL_TAP_FRACTION` as well as
    the best lag overall. (The correlation alone can be fooled by a face that repeats itself;
    a tap alone, by a twitch that was no tap.)
    """
    best_c, best = -np.inf, (None, None)
    step = float(lags[1] - lags[0]) if len(lags) > 1 else 1.0
    candidates = twitches.all()
    for tap in taps:
        for twitch in candidates:
            k = int(round((tap.time_s - twitch - lags[0]) / step))
            if not 2 <= k < len(lags) - 2:
                continue
            value = float(corr[k - 2:k + 3].max())  # the twitch time is good to a frame or two
            if value > best_c:
                best_c, best = value, (tap.time_s, twitch)
    top = float(np.max(corr))
    if best[0] is None or not np.isfinite(best_c) or best_c < GLOBAL_TAP_FRACTION * top:
        return None, None
    return best


def _fit_line(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, ref: float
) -> tuple[float, float]:
    """Robust weighted line ``y = b0 + b1 (x - ref)`` (Huber reweighting): (b0, b1)."""
    b0, b1 = float(np.average(y, weights=w)), 0.0
    robust = np.ones_like(w)
    for _ in range(20):
        ww = w * robust
        X = np.stack([np.ones_like(x), x - ref], axis=1) * np.sqrt(ww)[:, None]
        (b0, b1), *_ = np.linalg.lstsq(X, y * np.sqrt(ww), rcond=None)
        r = y - b0 - b1 * (x - ref)
        scale = max(1.4826 * float(np.median(np.abs(r))), 1e-4)
        u = np.abs(r) / (1.345 * scale)
        robust = np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-12))
    return float(b0), float(b1)


def align_truth(
    imu_time_s: np.ndarray,
    accel: np.ndarray,
    gyro: np.ndarray,
    truth_time_s: np.ndarray,
    weights: np.ndarray,
    *,
    tap_sensor: int | None = None,
    truth_channels: Sequence[str | int] | None = None,
    search_s: float | None = 1.0,
    fit_drift: bool = False,
    segment_s: float = 20.0,
    max_lag_s: float = 0.1,
    grid_hz: float = 1000.0,
    smooth_s: float | None = None,
) -> Alignment:
    """Find the offset (and optionally the drift) that puts truth times on the IMU timeline.

    Coarse: the first tap of ``tap_sensor`` in the IMU (:func:`find_taps`) that has a twitch
    of ``truth_channels`` within ``± search_s`` is matched to the most isolated such twitch
    (truth times taken as already roughly on the session clock). With ``search_s=None``
    nothing is assumed: activity and speed are correlated over all lags on a 100 Hz grid, and
    of all pairings of an IMU tap with a truth twitch, the one whose lag correlates best is
    used, if it correlates at least 70 % as well as the best lag (a face that repeats itself
    can fool the correlation alone). Without a tap (``tap_sensor`` None, no tap found, or no
    twitch to match) the coarse lag is the correlation peak within ``± search_s`` (or over all
    lags).

    Fine: IMU activity is correlated against truth speed over the whole overlap on a
    ``grid_hz`` grid within ``± max_lag_s`` of the coarse lag; the peak is interpolated by a
    parabola. Then segments of ``segment_s`` (50 % overlap) give local lags; with
    ``fit_drift`` a robust line through them, weighted by correlation, gives the drift and the
    offset at the middle of the segments.

    Args:
        imu_time_s: ``(N,)`` IMU sample times, seconds on the session clock.
        accel: ``(N, S, 3)`` specific force, m/s² (only the tap sensor's is used).
        gyro: ``(N, S, 3)`` angular rate, rad/s.
        truth_time_s: ``(M,)`` truth frame times, seconds (roughly on the session clock,
            unless ``search_s`` is None).
        weights: ``(M, 52)`` ARKit weights; rows with NaN are frames without a face.
        tap_sensor: Index of the tapped sensor; None to align by cross-correlation only.
        truth_channels: Channels that show the tap in the truth (names or indices); by
            default every ``jaw*`` and ``mouth*`` channel.
        search_s: Largest offset expected, seconds; None when the truth times are on an
            unrelated clock.
        fit_drift: Whether to fit a clock drift.
        segment_s: Length of the segments, seconds.
        max_lag_s: Half-width of the fine search around the coarse lag, seconds.
        grid_hz: Rate of the fine grid.
        smooth_s: σ of the Gaussian smoothing of both correlated signals, seconds. By default
            5 ms for truth at 60 fps or faster, growing by 1.8 ms per ms of frame interval
            beyond 16.7 ms (35 ms at 30 fps): the speed of fast motion (speech) rectified and
            sampled at a low frame rate aliases, and its correlation peaks then mislead.

    Returns:
        The alignment; see :class:`Alignment` for the sign convention.

    Raises:
        AlignmentError: The streams do not overlap (by more than 5 s), one has no motion to
            correlate, or the arrays do not fit together.
    """
    st = _streams(imu_time_s, gyro, truth_time_s, weights)
    if np.shape(accel)[:1] != np.shape(imu_time_s)[:1]:
        raise AlignmentError(
            f"accel has {np.shape(accel)[0]} rows for {len(st.imu_t)} IMU times: pass one per time"
        )
    _check_motion(st)
    if smooth_s is None:
        t_ok, _ = _valid_truth(st.truth_t, st.weights)
        frame_s = float(np.median(np.diff(t_ok)))
        smooth_s = max(_SMOOTH_S, _SMOOTH_S + 1.8 * (frame_s - 1.0 / 60.0))
    if truth_channels is None:
        channels = np.asarray([i for i, n in enumerate(ARKIT_NAMES)
                               if n.startswith(("jaw", "mouth"))])
    else:
        channels = _channel_indices(truth_channels, st.weights.shape[1])

    # Coarse lag.
    if search_s is not None:
        o0, o1 = _overlap(st, 0.0, margin=search_s)
        if o1 - o0 < MIN_OVERLAP_S:
            (i0, i1), (t0, t1) = st.imu_span, st.truth_span
            raise AlignmentError(
                f"truth times {t0:.3f}…{t1:.3f} s overlap the IMU times {i0:.3f}…{i1:.3f} s by "
                f"less than {MIN_OVERLAP_S:g} s: map the truth to the session clock first, or "
                "pass search_s=None to search all offsets"
            )
    taps: list[TapEvent] = []
    if tap_sensor is not None:
        taps = find_taps(st.imu_t, np.asarray(accel, dtype=np.float64)[st.imu_ok], tap_sensor)
    twitches = _Twitches.of(st, channels) if taps else None
    tap_imu = tap_truth = None
    if search_s is not None:
        for tap in taps:
            twitch = twitches.best(tap.time_s - search_s, tap.time_s + search_s)
            if twitch is not None:
                tap_imu, tap_truth = tap.time_s, twitch
                break
        if tap_imu is not None:
            coarse = tap_imu - tap_truth
        else:
            coarse, _, _ = _refine(st, 0.0, search_s, GLOBAL_RATE_HZ, _COARSE_SMOOTH_S)
    else:
        lags, c = _global_xcorr(st)
        coarse = float(lags[int(np.argmax(c))])
        if taps:
            tap_imu, tap_truth = _match_tap_globally(taps, twitches, lags, c)
            if tap_imu is not None:
                coarse = tap_imu - tap_truth
    method = ("" if search_s is not None else "global+") + (
        "tap+xcorr" if tap_imu is not None else "xcorr")

    # Fine lag over the whole overlap.
    o0, o1 = _overlap(st, coarse)
    if o1 - o0 < MIN_OVERLAP_S:
        raise AlignmentError(
            f"at the offset found ({coarse:+.3f} s) the streams overlap for only "
            f"{max(o1 - o0, 0):.1f} s: record at least {MIN_OVERLAP_S:g} s of both"
        )
    lag, corr, _ = _refine(st, coarse, max_lag_s, grid_hz, smooth_s)

    # Segments.
    segments = _segments(st, lag, max_lag_s, grid_hz, segment_s, smooth_s)
    good = [(c, lg, r) for c, lg, r, inside in segments if inside and r >= MIN_SEGMENT_CORR]
    seg_out = tuple((c, lg, r) for c, lg, r, _ in segments)
    o0, o1 = _overlap(st, lag)
    ref = 0.5 * (o0 + o1) - lag  # middle of the overlap, truth clock
    drift_ppm = 0.0
    offset = lag
    if fit_drift:
        if len(good) < 3:
            raise AlignmentError(
                f"only {len(good)} segment(s) of {segment_s:g} s correlate well enough to fit a "
                "drift: record longer, lower segment_s, or pass fit_drift=False"
            )
        x, y, w = (np.array(v) for v in zip(*good, strict=True))
        ref = float(np.average(x, weights=w * w))
        offset, slope = _fit_line(x, y, w * w, ref)
        drift_ppm = slope * 1e6
    if good:
        x, y, _ = (np.array(v) for v in zip(*good, strict=True))
        resid = y - offset - drift_ppm * 1e-6 * (x - ref)
        residual_ms = float(np.sqrt(np.mean(resid**2)) * 1e3)
    else:
        residual_ms = math.nan
    return Alignment(
        offset_s=float(offset),
        drift_ppm=float(drift_ppm),
        ref_s=float(ref),
        residual_ms=residual_ms,
        correlation=float(corr),
        method=method,
        tap_imu_s=tap_imu,
        tap_truth_s=tap_truth,
        segments=seg_out,
    )


def _segments(
    st: _Streams, lag: float, half_s: float, fs: float, segment_s: float, smooth_s: float
) -> list[tuple[float, float, float, bool]]:
    """Local lags of overlapping segments: (center on truth clock, lag, corr, peak inside)."""
    grid, a, ma, s, ms, k = _lag_window(st, lag, half_s, fs, smooth_s)
    n_seg = max(int(round(segment_s * fs)), 2)
    step = max(n_seg // 2, 1)
    starts = list(range(0, max(len(grid) - n_seg, 0) + 1, step)) if len(grid) >= n_seg else [0]
    out = []
    for i0 in starts:
        i1 = min(i0 + n_seg, len(grid))
        if ma[i0:i1].mean() < 0.5:
            continue
        c = _window_xcorr(a[i0:i1], ma[i0:i1], s[i0:i1 + 2 * k], ms[i0:i1 + 2 * k])
        q, height, inside = _peak(c)
        seg_lag = lag + (k - q) / fs
        center = 0.5 * (grid[i0] + grid[i1 - 1]) - seg_lag
        out.append((float(center), float(seg_lag), float(height), inside))
    return out


def _streams(
    imu_time_s: np.ndarray, gyro: np.ndarray, truth_time_s: np.ndarray, weights: np.ndarray
) -> _Streams:
    it = np.asarray(imu_time_s, dtype=np.float64)
    g = np.asarray(gyro, dtype=np.float64)
    if g.ndim != 3 or g.shape[0] != len(it) or g.shape[2] != 3:
        raise AlignmentError(
            f"gyro has shape {g.shape} for {len(it)} IMU times: pass (N, sensors, 3)"
        )
    tt = np.asarray(truth_time_s, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != len(tt):
        raise AlignmentError(
            f"weights have shape {w.shape} for {len(tt)} truth times: pass (M, 52)"
        )
    ok = _first_of_each_time(it)
    keep = _first_of_each_time(tt)
    tt, w = tt[keep], w[keep]
    if ok.sum() < 2 or (np.all(np.isfinite(w), axis=1)).sum() < 3:
        raise AlignmentError("a stream is (nearly) empty: record both IMU and truth first")
    return _Streams(it[ok], g[ok], tt, w, ok)


def _first_of_each_time(t: np.ndarray) -> np.ndarray:
    """Mask of finite times, repeats of the previous time left out.

    Raises:
        AlignmentError: The times go backwards.
    """
    ok = np.isfinite(t)
    finite = t[ok]
    step = np.diff(finite)
    if np.any(step < 0):
        raise AlignmentError("times are not increasing: sort each stream by time first")
    idx = np.flatnonzero(ok)
    ok[idx[1:][step == 0]] = False
    return ok


def _check_motion(st: _Streams) -> None:
    """Raise when either stream is flat (nothing to correlate)."""
    g = st.gyro[np.all(np.isfinite(st.gyro), axis=(1, 2))]
    dev = np.linalg.norm(g - np.median(g, axis=0), axis=2) if len(g) else np.zeros((1, 1))
    if float(np.percentile(dev, 99.5, axis=0).max()) < MIN_GYRO_MOTION_RAD_S:
        raise AlignmentError(
            "the gyros show no motion to correlate: record with the face moving (talk, blink, "
            "smile) and tap the chin sensor"
        )
    t, w = _valid_truth(st.truth_t, st.weights)
    if len(t) < 3 or float(np.ptp(w, axis=0).max()) < 1e-6:
        raise AlignmentError(
            "the truth weights do not change: check that the truth source saw the face"
        )
