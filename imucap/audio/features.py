"""Speech features on the face's frame clock: log-mel filterbank, MFCC and deltas at 60 Hz.

Everything is computed here with numpy (no downloaded encoder), one feature vector per output
frame of the face track, so audio frame ``k`` lines up with face frame ``k`` with no
interpolation.

Framing (``fps`` = 60, ``rate`` = 16 kHz unless configured):

- Frame ``k`` is centred on source sample ``c_k = round(k * rate / fps)`` (halves round up),
  i.e. on time ``k / fps`` to the nearest sample. At 16 kHz and 60 fps the spacing is
  266.67 samples, so the centres go 0, 267, 533, 800, ...: computed from ``k`` each time, never
  by adding an integer hop, so they do not drift over a long take.
- Each frame is a 25 ms periodic Hann window (400 samples at 16 kHz). With ``W`` samples the
  window covers ``c_k - W//2 .. c_k + W - 1 - W//2`` and peaks at ``c_k``. Samples outside the
  signal count as zeros.
- **Frame count**: ``T = ceil((N - 1/2) * fps / rate)`` for ``N >= 1`` samples (0 for none):
  every frame whose centre sample is a sample of the signal (``c_k <= N - 1``). One second at
  16 kHz gives 60 frames (centres up to 15,733); one sample gives 1. :func:`frame_count` and
  :func:`frame_centres` compute both.

Features per frame, in this order (``FeatureConfig.dim`` in all):

- Log-mel (``n_mels`` = 80): the power spectrum ``|rfft|^2`` (``n_fft`` = the next power of two
  at or above the window, 512 at 16 kHz) through triangular filters from ``fmin`` = 20 Hz to
  ``fmax`` = 8 kHz, then ``ln(max(energy, 1e-10))``: so digital silence reads exactly
  ln(1e-10) = -23.03. The mel scale is **Slaney's** (the Auditory Toolbox's): linear below
  1 kHz (200/3 Hz per mel), logarithmic above (a factor of 6.4 every 27 mels), and each
  triangle is area-normalised (peak ``2 / (f_hi - f_lo)``, so its area in Hz is 1): a band's
  energy is a density, and the wide high bands are not favoured. Samples are full scale
  [-1, 1]. Audio resampled from 44.1/48 kHz has nothing above 8 kHz and is -6 dB at 7.6 kHz
  (see :class:`~imucap.audio.io.Resampler`), so the top two or three bands read lower than
  they would from a native 16 kHz recording.
- MFCC (``n_mfcc``, 0 = off; 13 is usual): the orthonormal DCT-II of the log-mel vector, first
  ``n_mfcc`` coefficients.
- Deltas (``deltas`` = 0, 1 or 2): the regression slope over +-2 frames,
  ``d_t = sum_{n=1..2} n (c_{t+n} - c_{t-n}) / 10``, of the static features (log-mel and/or
  MFCC), and for 2 the same slope of the deltas. Frames past either end repeat the edge frame
  (at each stage: delta-deltas repeat the edge delta).

Streaming (:class:`FeatureStream`) gives exactly these frames from a signal that arrives in
pieces. Its look-ahead, the time from a frame's centre to the last sample it needs, is the
right half of the window plus 2 frames per delta order:
``(W - 1 - W//2) / rate + 2 * deltas / fps`` = **12.4 ms** with no deltas, 45.8 ms with
deltas, 79.1 ms with delta-deltas (16 kHz, 60 fps). A live microphone's feature latency is
that plus the audio driver's buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from imucap.errors import ImucapError

__all__ = [
    "FeatureConfig",
    "FeatureStream",
    "compute_features",
    "frame_centres",
    "frame_count",
    "mel_filterbank",
]

LOG_FLOOR = 1e-10
"""Energies below this read as it before the log (silence: ln(1e-10) = -23.03)."""


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the audio features; see the module docstring for what each one does.

    Attributes:
        fps: Output frame rate (Hz): one feature vector per face frame.
        n_mels: Mel bands (0 leaves the log-mel out of the vector; MFCCs still use them).
        fmin: Lowest filter edge (Hz).
        fmax: Highest filter edge (Hz); at most half the sample rate.
        win_ms: Analysis window length (ms); a periodic Hann window.
        n_fft: FFT size; None: the next power of two at or above the window.
        n_mfcc: MFCCs after the log-mel (0: none).
        log_mel: Put the log-mel bands themselves in the vector.
        deltas: 0, 1 (slopes) or 2 (slopes and slopes of slopes) over +-2 frames.
    """

    fps: float = 60.0
    n_mels: int = 80
    fmin: float = 20.0
    fmax: float = 8000.0
    win_ms: float = 25.0
    n_fft: int | None = None
    n_mfcc: int = 0
    log_mel: bool = True
    deltas: int = 0

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ImucapError(f"feature fps must be positive, got {self.fps}")
        if self.n_mels < 1:
            raise ImucapError(f"n_mels must be at least 1, got {self.n_mels}")
        if not 0 <= self.fmin < self.fmax:
            raise ImucapError(f"need 0 <= fmin < fmax, got fmin={self.fmin} fmax={self.fmax}")
        if not self.win_ms > 0:
            raise ImucapError(f"win_ms must be positive, got {self.win_ms}")
        if not 0 <= self.n_mfcc <= self.n_mels:
            raise ImucapError(f"n_mfcc must be between 0 and n_mels ({self.n_mels}), got "
                              f"{self.n_mfcc}")
        if not self.log_mel and self.n_mfcc == 0:
            raise ImucapError("the feature vector would be empty: keep log_mel or set n_mfcc")
        if self.deltas not in (0, 1, 2):
            raise ImucapError(f"deltas must be 0, 1 or 2, got {self.deltas}")

    @property
    def static_dim(self) -> int:
        """Length of the static part (log-mel and/or MFCC), before deltas."""
        return (self.n_mels if self.log_mel else 0) + self.n_mfcc

    @property
    def dim(self) -> int:
        """Length of one feature vector."""
        return self.static_dim * (1 + self.deltas)

    def window_length(self, rate: int) -> int:
        """Window length in samples at ``rate``."""
        return max(1, int(round(self.win_ms * 1e-3 * rate)))

    def fft_size(self, rate: int) -> int:
        w = self.window_length(rate)
        n = self.n_fft if self.n_fft is not None else 1 << (w - 1).bit_length()
        if n < w:
            raise ImucapError(f"n_fft={n} is shorter than the {w}-sample window: use at "
                              f"least {w}, or leave n_fft unset")
        return n

    def lookahead_s(self, rate: int) -> float:
        """Seconds from a frame's centre to the last sample it needs (window half + deltas)."""
        w = self.window_length(rate)
        return (w - 1 - w // 2) / rate + 2 * self.deltas / self.fps


# --------------------------------------------------------------------------------------------
# Frame clock


@lru_cache(maxsize=64)
def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1_000_000)


def frame_count(n_samples: int, rate: int, fps: float = 60.0) -> int:
    """Frames covering ``n_samples``: ``ceil((n_samples - 1/2) * fps / rate)``, 0 for none.

    That is every ``k`` with ``round(k * rate / fps) <= n_samples - 1``: frames whose centre
    is a sample of the signal.
    """
    if n_samples <= 0:
        return 0
    f = _fps_fraction(fps)
    num = f.numerator * (2 * n_samples - 1)
    den = 2 * rate * f.denominator
    return -(-num // den)


def frame_centres(n_frames: int | np.ndarray, rate: int, fps: float = 60.0,
                  start: int = 0) -> np.ndarray:
    """Centre samples ``round(k * rate / fps)`` (halves up) of frames ``start .. n_frames-1``.

    Exact integer arithmetic, so there is no drift at any length. ``n_frames`` may also be an
    array of frame indices, whose centres are returned.
    """
    f = _fps_fraction(fps)
    if isinstance(n_frames, np.ndarray):
        k = n_frames.astype(np.int64)
    else:
        k = np.arange(start, n_frames, dtype=np.int64)
    return (2 * k * rate * f.denominator + f.numerator) // (2 * f.numerator)


# --------------------------------------------------------------------------------------------
# Filters


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: 3 mels per 200 Hz below 1 kHz, log spacing (6.4x per 27 mels) above."""
    f = np.asarray(f, np.float64)
    lin = f * 3.0 / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    lin = m * 200.0 / 3.0
    log = 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0)
    return np.where(m >= 15.0, log, lin)


@lru_cache(maxsize=16)
def _mel_filterbank_cached(rate: int, n_fft: int, n_mels: int, fmin: float,
                           fmax: float) -> np.ndarray:
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lo) / (mid - lo)
    falling = (hi - freqs[None, :]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(rising, falling))
    fb *= (2.0 / (hi - lo))                      # area normalisation (Slaney)
    empty = np.flatnonzero(fb.sum(axis=1) == 0)
    if len(empty):
        raise ImucapError(f"{len(empty)} of the {n_mels} mel bands between {fmin:g} and "
                          f"{fmax:g} Hz fall between FFT bins ({rate / n_fft:.1f} Hz apart): "
                          f"use fewer mels, a higher fmin, or a larger n_fft")
    fb.setflags(write=False)
    return fb


def mel_filterbank(rate: int, config: FeatureConfig | None = None) -> np.ndarray:
    """The ``(n_mels, n_fft // 2 + 1)`` Slaney mel filter matrix used for ``rate``."""
    config = config or FeatureConfig()
    if config.fmax > rate / 2:
        raise ImucapError(f"fmax={config.fmax:g} Hz is above the Nyquist frequency of "
                          f"{rate}-Hz audio: resample to at least {2 * config.fmax:g} Hz "
                          f"(load_audio does, to 16 kHz) or lower fmax")
    return _mel_filterbank_cached(int(rate), config.fft_size(rate), config.n_mels,
                                  float(config.fmin), float(config.fmax))


@lru_cache(maxsize=16)
def _dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """Orthonormal DCT-II rows 0..n_mfcc-1 for vectors of length n_mels, shape (n_mels, n_mfcc)."""
    n = np.arange(n_mels)
    k = np.arange(n_mfcc)[:, None]
    d = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * math.sqrt(2.0 / n_mels)
    d[0] /= math.sqrt(2.0)
    d = np.ascontiguousarray(d.T)
    d.setflags(write=False)
    return d


class _Analyzer:
    """The per-frame part: windowed frames to static feature vectors (float64)."""

    def __init__(self, config: FeatureConfig, rate: int) -> None:
        if int(rate) != rate or rate <= 0:
            raise ImucapError(f"the sample rate must be a positive whole number of Hz, got "
                              f"{rate}")
        self.config, self.rate = config, int(rate)
        self.win = config.window_length(self.rate)
        self.left = self.win // 2                 # samples before the centre
        self.right = self.win - 1 - self.left     # samples after it
        self.n_fft = config.fft_size(self.rate)
        self.fb_t = np.ascontiguousarray(mel_filterbank(self.rate, config).T)
        n = np.arange(self.win)
        self.window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.win)   # periodic Hann
        self.dct = _dct_matrix(config.n_mels, config.n_mfcc) if config.n_mfcc else None
        self._taps = np.arange(self.win)
        f = _fps_fraction(config.fps)
        self._num, self._den = f.numerator, f.denominator

    def centre(self, k: int) -> int:
        """Centre sample of frame ``k`` (as :func:`frame_centres`, for one frame)."""
        return (2 * k * self.rate * self._den + self._num) // (2 * self._num)

    def count(self, n_samples: int) -> int:
        """:func:`frame_count` of ``n_samples`` at this rate and fps."""
        if n_samples <= 0:
            return 0
        return -(-self._num * (2 * n_samples - 1) // (2 * self.rate * self._den))

    def static(self, frames: np.ndarray) -> np.ndarray:
        """``(T, win)`` samples to ``(T, static_dim)`` static features."""
        spec = np.fft.rfft(frames * self.window, n=self.n_fft, axis=1)
        power = spec.real ** 2 + spec.imag ** 2
        logmel = np.log(np.maximum(power @ self.fb_t, LOG_FLOOR))
        parts = []
        if self.config.log_mel:
            parts.append(logmel)
        if self.dct is not None:
            parts.append(logmel @ self.dct)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def frames(self, buf: np.ndarray, buf_start: int, k0: int, k1: int) -> np.ndarray:
        """Windows of frames ``k0 .. k1-1`` from ``buf``, which holds samples from ``buf_start``
        on and covers every window (callers pad it)."""
        k = np.arange(k0, k1, dtype=np.int64)
        starts = (2 * k * self.rate * self._den + self._num) // (2 * self._num) \
            - self.left - buf_start
        return buf[starts[:, None] + self._taps]


def _regress(buf: np.ndarray, buf_start: int, i0: int, i1: int, last: int | None) -> np.ndarray:
    """Delta regression over +-2 for rows ``i0 .. i1-1`` of a sequence held in ``buf`` (global
    rows ``buf_start ..``), rows outside ``0 .. last`` replaced by the edge row."""
    lo, hi = i0 - 2, i1 + 2
    if lo >= 0 and (last is None or hi - 1 <= last):
        e = buf[lo - buf_start:hi - buf_start]
    else:
        idx = np.arange(lo, hi)
        e = buf[np.clip(idx, 0, last if last is not None else hi - 1) - buf_start]
    return ((e[3:-1] - e[1:-3]) + 2.0 * (e[4:] - e[:-4])) / 10.0


_BLOCK_FRAMES = 1024   # frames windowed at once: bounds the (frames, window) temporary


def compute_features(samples: np.ndarray, rate: int = 16000,
                     config: FeatureConfig | None = None) -> np.ndarray:
    """Features of a whole mono signal: ``(frame_count(len(samples)), config.dim)`` float32.

    Args:
        samples: Mono samples, full scale [-1, 1] (e.g. ``load_audio(path).samples``).
        rate: Their sample rate (Hz); at least ``2 * fmax``.
        config: Settings (defaults: 60 fps, 80 log-mel bands, no MFCC, no deltas).
    """
    config = config or FeatureConfig()
    an = _Analyzer(config, rate)
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ImucapError(f"compute_features takes mono samples (one dimension), got shape "
                          f"{x.shape}: mix the channels first (load_audio does)")
    n = len(x)
    T = frame_count(n, an.rate, config.fps)
    static = np.empty((T, config.static_dim), np.float64)
    for k0 in range(0, T, _BLOCK_FRAMES):
        k1 = min(T, k0 + _BLOCK_FRAMES)
        c = frame_centres(np.array([k0, k1 - 1]), an.rate, config.fps)
        a, b = int(c[0]) - an.left, int(c[1]) + an.right + 1    # samples [a, b) of this block
        seg = np.zeros(b - a, np.float64)
        lo, hi = max(a, 0), min(b, n)
        seg[lo - a:hi - a] = x[lo:hi]
        static[k0:k1] = an.static(an.frames(seg, a, k0, k1))
    parts = [static]
    if config.deltas >= 1 and T:
        parts.append(_regress(static, 0, 0, T, T - 1))
    if config.deltas >= 2 and T:
        parts.append(_regress(parts[1], 0, 0, T, T - 1))
    if not T:
        return np.zeros((0, config.dim), np.float32)
    return np.concatenate(parts, axis=1).astype(np.float32)


class FeatureStream:
    """:func:`compute_features` for a signal that arrives in pieces (a microphone, a decoder).

    :meth:`push` takes the next samples and returns every frame that is now complete: frame
    ``k`` leaves as soon as the samples up to ``lookahead_s`` after its centre have arrived
    (the window's right half, plus 2 frames per delta order). :meth:`flush` ends the signal and
    returns the rest (the edge frames, whose windows and deltas run past the end). Together the
    returned frames equal ``compute_features`` on the whole signal, in any split.

    Memory stays bounded: only the samples and frames that later frames still need are kept.

    Args:
        config: Settings (defaults as :func:`compute_features`).
        rate: Sample rate of the pushed samples (Hz).
    """

    def __init__(self, config: FeatureConfig | None = None, rate: int = 16000) -> None:
        self.config = config or FeatureConfig()
        self._an = _Analyzer(self.config, rate)
        self.rate = self._an.rate
        self.dim = self.config.dim
        self.reset()

    @property
    def lookahead_s(self) -> float:
        """Seconds from a frame's centre to the last sample it waits for."""
        return self.config.lookahead_s(self.rate)

    @property
    def lookahead_ms(self) -> float:
        """``lookahead_s`` in milliseconds (12.4 ms at 16 kHz without deltas)."""
        return 1000.0 * self.lookahead_s

    def reset(self) -> None:
        """Start a new signal."""
        an = self._an
        self._x = np.zeros(an.left, np.float64)   # samples from global index _x0 on
        self._x0 = -an.left
        self._n = 0                                # samples received
        self._k = 0                                # next static frame to compute
        d = self.config.static_dim
        self._s = np.zeros((0, d))                 # static frames from _s0 on
        self._s0 = 0
        self._d1 = np.zeros((0, d))                # deltas from _d10 on
        self._d10 = 0
        self._out = 0                              # next frame to emit
        self._n_d1 = 0                             # deltas computed
        self._ended = False

    @property
    def frames_out(self) -> int:
        """Frames returned so far."""
        return self._out

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add mono samples; returns the newly complete frames ``(n_new, dim)`` float32."""
        if self._ended:
            raise ImucapError("this FeatureStream was flushed: reset() it to start a new signal")
        x = np.asarray(chunk, np.float64).reshape(-1)
        if len(x):
            self._x = np.concatenate([self._x, x])
            self._n += len(x)
        an = self._an
        # Frames whose window ends at or before the last received sample.
        ready = an.count(self._n - an.right)
        self._add_static(ready)
        return self._emit(final=False)

    def flush(self) -> np.ndarray:
        """End the signal; returns the remaining frames (edges padded as compute_features)."""
        if self._ended:
            return np.zeros((0, self.dim), np.float32)
        an = self._an
        total = an.count(self._n)
        self._x = np.concatenate([self._x, np.zeros(an.right + 1, np.float64)])
        self._add_static(total)
        out = self._emit(final=True, total=total)
        self._ended = True
        return out

    def _add_static(self, upto: int) -> None:
        an = self._an
        if upto <= self._k:
            return
        blocks = []
        for k0 in range(self._k, upto, _BLOCK_FRAMES):
            k1 = min(upto, k0 + _BLOCK_FRAMES)
            blocks.append(an.static(an.frames(self._x, self._x0, k0, k1)))
        self._s = np.concatenate([self._s] + blocks)
        self._k = upto
        # Keep the samples from the next frame's window start on.
        keep = an.centre(upto) - an.left
        # (Frames further apart than a window: the next one may start past what has arrived.)
        drop = min(keep - self._x0, len(self._x))
        if drop > 0:
            self._x = self._x[drop:].copy()
            self._x0 += drop

    def _emit(self, final: bool, total: int | None = None) -> np.ndarray:
        nd = self.config.deltas
        n_static = self._k
        last = total - 1 if final else None
        if nd == 0:
            upto = n_static
        else:
            # Deltas of rows whose +2 neighbour exists (or all, at the end).
            d1_upto = n_static if final else max(0, n_static - 2)
            if d1_upto > self._n_d1:
                new = _regress(self._s, self._s0, self._n_d1, d1_upto, last)
                self._d1 = np.concatenate([self._d1, new])
                self._n_d1 = d1_upto
            upto = self._n_d1 if (nd == 1 or final) else max(0, self._n_d1 - 2)
        if upto <= self._out:
            return np.zeros((0, self.dim), np.float32)
        i0, i1 = self._out, upto
        parts = [self._s[i0 - self._s0:i1 - self._s0]]
        if nd >= 1:
            parts.append(self._d1[i0 - self._d10:i1 - self._d10])
        if nd >= 2:
            parts.append(_regress(self._d1, self._d10, i0, i1, last))
        self._out = upto
        # Forget rows no later output or delta reads (two before the next one).
        keep_s = max(0, min(self._out, self._n_d1) - 2) if nd else self._out
        if keep_s > self._s0:
            self._s = self._s[keep_s - self._s0:]
            self._s0 = keep_s
        keep_d = max(0, self._out - 2)
        if nd and keep_d > self._d10:
            self._d1 = self._d1[keep_d - self._d10:]
            self._d10 = keep_d
        return np.concatenate(parts, axis=1).astype(np.float32)
