"""Mapping a device's microsecond clock onto the host's monotonic clock: offset and drift.

Two kinds of observation feed one :class:`ClockMapper`:

- **arrivals**: a frame whose last sample the device stamped ``d`` arrived at host time ``h``.
  Transport delay only ever adds, so ``h - d`` is an upper bound of the true offset, tight for
  the least-delayed frames. The mapper keeps the minimum of each short window (the lower
  envelope) and fits a line through the minima, which gives the drift well and the offset
  plus the link's smallest latency.
- **probes** (PING/PONG, NTP-style): the host sent at ``t1``, the device received at ``d2`` and
  answered at ``d3``, the host received at ``t4``. The midpoint estimate
  ``(t1 + t4)/2 - (d2 + d3)/2`` is off by at most half the round trip, so only the probes with
  the shortest round trips are kept (as Lab Streaming Layer does).

When enough short-round-trip probes span a few seconds, their line is used (no latency bias);
before that, the arrival envelope is. The fit is refreshed whenever a window closes, so the
mapping is refined continuously; outliers (windows inside a stall) are rejected with a
median-absolute-deviation rule.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def _robust_line(x: np.ndarray, y: np.ndarray, *, envelope: bool) -> tuple[float, float]:
    """Line ``y = a + b x`` through observations, robust to outliers and to noise.

    Points far above a first least-squares fit are dropped (delays only add, so outliers lie
    above). The slope is then shrunk toward zero by its own uncertainty,
    ``b · b² / (b² + se²)``: over a short span, timing noise cannot masquerade as drift, and a
    well-determined drift passes almost unchanged. With ``envelope`` the errors are one-sided,
    so the line is lowered until it touches the lowest kept point; otherwise the intercept is
    the median.
    """
    a, b = _line(x, y)
    resid = y - (a + b * x)
    mad = float(np.median(np.abs(resid - np.median(resid))))
    keep = resid <= np.median(resid) + max(3.0 * 1.4826 * mad, 2e-4)
    if 3 <= keep.sum() < len(x):
        x, y = x[keep], y[keep]
        a, b = _line(x, y)
    resid = y - (a + b * x)
    se2 = float(np.sum(resid**2) / max(len(x) - 2, 1) / np.sum((x - x.mean()) ** 2))
    b *= b * b / (b * b + se2) if b * b + se2 > 0 else 0.0
    rest = y - b * x
    a = float(np.min(rest)) if envelope else float(np.median(rest))
    return a, b


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    xm, ym = x.mean(), y.mean()
    b = float(np.sum((x - xm) * (y - ym)) / np.sum((x - xm) ** 2))
    return float(ym - b * xm), b


class ClockMapper:
    """Online estimate of ``host_s = device_s + offset(device_s)`` with a linear offset.

    Drift is fitted once three observations span ``min_drift_span_s``, and the fitted slope
    is shrunk toward zero by its standard error, so that early on, when timing noise is as
    large as the drift it would imply (0.5 ms of jitter over 5 s reads as 100 ppm), the clocks
    are taken to run at the same rate, and the drift comes in as the evidence grows.

    Args:
        window_s: Length of the arrival windows whose minimum delay is kept, seconds.
        history_s: How far back observations are used, seconds of device time.
        min_probes: Short-round-trip probes needed before probes take over from arrivals.
        min_probe_span_s: Time the kept probes must span before they take over, seconds.
        min_drift_span_s: Time the observations must span before drift is fitted at all.
    """

    def __init__(self, *, window_s: float = 0.5, history_s: float = 60.0, min_probes: int = 4,
                 min_probe_span_s: float = 3.0, min_drift_span_s: float = 1.0) -> None:
        self.window_s = window_s
        self.min_drift_span_s = min_drift_span_s
        self.history_s = history_s
        self.min_probes = min_probes
        self.min_probe_span_s = min_probe_span_s
        self.reset()

    def reset(self) -> None:
        """Forget everything (the device restarted, or a new session began)."""
        self._windows: deque[tuple[float, float]] = deque()  # closed windows: (device_s, offset)
        self._current: tuple[int, float, float] | None = None  # window index, device_s, offset
        self._probes: deque[tuple[float, float, float]] = deque()  # device_s, offset, rtt
        #: Every probe as observed, ``(host_t1_s, device_rx_us, device_tx_us, host_t4_s)``,
        #: newest last, for a recorder to drain and store (bounded: the oldest fall off).
        self.probe_log: deque[tuple[float, int, int, float]] = deque(maxlen=4096)
        self._a = 0.0
        self._b = 0.0
        self._ref = 0.0
        self._ready = False
        self.source = "none"

    # ------------------------------------------------------------------ observations

    def add_arrival(self, device_us: int, host_s: float) -> None:
        """A frame stamped ``device_us`` (its last sample) arrived at host time ``host_s``."""
        d = device_us * 1e-6
        off = host_s - d
        index = int(d // self.window_s)
        cur = self._current
        if cur is None or index != cur[0]:
            if cur is not None:
                self._windows.append((cur[1], cur[2]))
                self._trim(self._windows, d)
                self._current = (index, d, off)
                self._refit()
            else:
                self._current = (index, d, off)
                self._ref = d
                self._a, self._b, self._ready, self.source = off, 0.0, True, "arrivals"
        elif off < cur[2]:
            self._current = (index, d, off)
        if not self._windows and off < self._a:
            self._a = off  # until the first window closes, track the running minimum

    def add_probe(self, host_t1_s: float, device_rx_us: int, device_tx_us: int,
                  host_t4_s: float) -> None:
        """A PING sent at ``host_t1_s`` was answered with a PONG received at ``host_t4_s``."""
        self.probe_log.append((host_t1_s, device_rx_us, device_tx_us, host_t4_s))
        d_mid = (device_rx_us + device_tx_us) * 0.5e-6
        rtt = (host_t4_s - host_t1_s) - (device_tx_us - device_rx_us) * 1e-6
        if rtt < 0:
            return
        self._probes.append((d_mid, (host_t1_s + host_t4_s) * 0.5 - d_mid, rtt))
        self._trim(self._probes, d_mid)
        self._refit()

    def _trim(self, items: deque, now_device_s: float) -> None:
        while items and items[0][0] < now_device_s - self.history_s:
            items.popleft()

    def _refit(self) -> None:
        probes = self._good_probes()
        if probes is not None:
            x, y = probes
            self.source, envelope = "probes", False
        elif self._windows:
            pts = np.array(self._windows)
            x, y = pts[:, 0], pts[:, 1]
            self.source, envelope = "arrivals", True
        else:
            return
        self._ref = float(x[-1])
        if len(x) >= 3 and np.ptp(x) >= self.min_drift_span_s:
            self._a, self._b = _robust_line(x - self._ref, y, envelope=envelope)
        else:
            self._a, self._b = (float(np.min(y)) if envelope else float(np.median(y))), 0.0
        self._ready = True

    def _good_probes(self) -> tuple[np.ndarray, np.ndarray] | None:
        if len(self._probes) < self.min_probes:
            return None
        pts = np.array(self._probes)
        rtt = pts[:, 2]
        keep = rtt <= max(np.quantile(rtt, 0.5), rtt.min() * 1.5)
        pts = pts[keep]
        if len(pts) < self.min_probes or np.ptp(pts[:, 0]) < self.min_probe_span_s:
            return None
        return pts[:, 0], pts[:, 1]

    # ------------------------------------------------------------------ mapping

    @property
    def ready(self) -> bool:
        """Whether at least one observation has been made."""
        return self._ready

    def to_host(self, device_us: int | np.ndarray) -> float | np.ndarray:
        """Host time (seconds, monotonic clock) of device time(s) ``device_us``."""
        if isinstance(device_us, np.ndarray):
            d = device_us * 1e-6
            return d * (1.0 + self._b) + (self._a - self._b * self._ref)
        d = device_us * 1e-6
        return d + self._a + self._b * (d - self._ref)

    def offset_s(self, device_us: int | None = None) -> float:
        """Host minus device time at ``device_us`` (at the latest observation by default)."""
        d = self._ref if device_us is None else device_us * 1e-6
        return self._a + self._b * (d - self._ref)

    @property
    def drift_ppm(self) -> float:
        """How much faster the device's clock runs than the host's, parts per million."""
        return -self._b / (1.0 + self._b) * 1e6

    @property
    def best_rtt_s(self) -> float | None:
        """Shortest probe round trip among the kept probes, seconds; None without probes."""
        return min(p[2] for p in self._probes) if self._probes else None
