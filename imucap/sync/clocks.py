"""Whole-session clock fits: every source's own clock mapped onto the session clock.

The session clock is the recording host's monotonic clock. Live, each stream's mapping is
refined online (:class:`imucap.clock.ClockMapper`); after the recording the same estimator runs
once more over the whole session, so the mapping of the first minute uses the evidence of the
last (offset and drift from probes, or from the arrivals' lower envelope, as Lab Streaming
Layer does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imucap.clock import ClockMapper


@dataclass(frozen=True)
class ClockFit:
    """``session_s = x + offset_s + slope · (x − ref_s)`` for a source time ``x`` in seconds.

    Attributes:
        offset_s: Session minus source time at ``ref_s``.
        slope: Rate difference (session seconds per source second, minus 1).
        ref_s: Source time the offset refers to.
        source: What the fit used: ``"probes"``, ``"arrivals"`` or ``"none"``.
        observations: How many observations went in.
    """

    offset_s: float
    slope: float
    ref_s: float
    source: str = "none"
    observations: int = 0

    @property
    def drift_ppm(self) -> float:
        """How much faster the source's clock runs than the session clock, ppm."""
        return -self.slope / (1.0 + self.slope) * 1e6

    def apply(self, x_s: np.ndarray | float) -> np.ndarray | float:
        return x_s + self.offset_s + self.slope * (np.asarray(x_s) - self.ref_s) \
            if isinstance(x_s, np.ndarray) else \
            x_s + self.offset_s + self.slope * (x_s - self.ref_s)

    def to_json(self) -> dict[str, Any]:
        return {"offset_s": self.offset_s, "slope": self.slope, "ref_s": self.ref_s,
                "drift_ppm": self.drift_ppm, "source": self.source,
                "observations": self.observations}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClockFit:
        return cls(float(data["offset_s"]), float(data["slope"]), float(data["ref_s"]),
                   str(data.get("source", "none")), int(data.get("observations", 0)))

    @classmethod
    def of(cls, mapper: ClockMapper, observations: int) -> ClockFit:
        ref = mapper._ref  # the fit's own reference keeps the numbers well conditioned
        return cls(mapper.offset_s(int(round(ref * 1e6))), mapper._b, ref, mapper.source,
                   observations)


def fit_device_clock(probes: np.ndarray, frame_last_us: np.ndarray,
                     frame_arrival_s: np.ndarray) -> ClockFit:
    """Device microseconds → session seconds, from a whole session's probes and arrivals.

    Args:
        probes: ``(K, 4)`` ``(t1_s, rx_us, tx_us, t4_s)`` as the driver measured them.
        frame_last_us: Device time of each frame's last sample.
        frame_arrival_s: Host time each frame arrived.

    The fit is in seconds of device time: apply it to ``device_time_us * 1e-6``.
    """
    mapper = ClockMapper(history_s=1e12, min_probe_span_s=3.0)
    order = np.argsort(frame_last_us, kind="stable")
    for d, h in zip(frame_last_us[order], frame_arrival_s[order], strict=True):
        mapper.add_arrival(int(d), float(h))
    for t1, rx, tx, t4 in probes:
        mapper.add_probe(float(t1), int(rx), int(tx), float(t4))
    return ClockFit.of(mapper, len(probes) + len(frame_last_us))


def fit_arrival_clock(source_time_s: np.ndarray, arrival_s: np.ndarray, *,
                      latency_s: float = 0.0) -> ClockFit:
    """A source's clock → session seconds from its frames' arrival times alone.

    The lower envelope of ``arrival − source time`` is the offset plus the link's smallest
    latency; ``latency_s`` (a camera's known delay) is taken off. What remains of the latency is
    found by event alignment (:func:`imucap.sync.align.align_truth`).
    """
    keep = np.isfinite(source_time_s) & np.isfinite(arrival_s)
    mapper = ClockMapper(history_s=1e12)
    order = np.argsort(source_time_s[keep], kind="stable")
    for x, h in zip(source_time_s[keep][order], arrival_s[keep][order], strict=True):
        mapper.add_arrival(int(round(x * 1e6)), float(h) - latency_s)
    if not mapper.ready:
        return ClockFit(0.0, 0.0, 0.0, "none", 0)
    return ClockFit.of(mapper, int(keep.sum()))
