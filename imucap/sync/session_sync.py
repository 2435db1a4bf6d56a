"""Synchronising a recorded session: every stream on the session clock, and the truth aligned.

Steps (each result is stored in the session's ``imucap.sync`` metadata):

1. the device clock → session clock, per device boot, from the whole session's probes and
   arrivals (:func:`~imucap.sync.clocks.fit_device_clock`);
2. the truth source's clock → session clock from its arrivals' lower envelope (offset and
   drift; still holding the network's or camera's smallest latency);
3. event alignment (:func:`~imucap.sync.align.align_truth`): the tap on the chosen sensor,
   then cross-correlation of IMU activity against blendshape velocity over the whole
   session, which removes the remaining latency; its residual says how well it worked.

A source that did not come in live (an imported take, a video file processed offline) has no
arrival times: its prior is the identity and the alignment searches the whole session.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from imucap.record.session_file import SessionContents
from imucap.vocab import NUM_BLENDSHAPES

from .clocks import ClockFit, fit_arrival_clock, fit_device_clock

SYNC_METADATA = "imucap.sync"


@dataclass(frozen=True)
class SessionSync:
    """Where every stream of a session lies on the session clock.

    Attributes:
        imu_clocks: Device clock fit per boot id (applied to device seconds).
        truth_clock: Truth source clock → session clock before alignment (None: no truth).
        alignment: The event alignment's result as JSON (None when it could not run).
        alignment_error: Why the alignment could not run ("" when it ran).
    """

    imu_clocks: dict[int, ClockFit]
    truth_clock: ClockFit | None
    alignment: dict[str, Any] | None
    alignment_error: str = ""

    def imu_times(self, contents: SessionContents) -> np.ndarray:
        """Session-clock time of every IMU sample."""
        imu = contents.imu
        out = np.empty(imu.n)
        for boot in np.unique(imu.boot_id):
            sel = imu.boot_id == boot
            fit = self.imu_clocks.get(int(boot))
            out[sel] = imu.host_time_s[sel] if fit is None else \
                fit.apply(imu.device_time_us[sel] * 1e-6)
        return out

    def truth_times(self, contents: SessionContents) -> np.ndarray:
        """Session-clock time of every truth frame (aligned when the alignment ran)."""
        t = contents.truth.source_time_s
        if self.truth_clock is not None:
            t = self.truth_clock.apply(t)
        if self.alignment is not None:
            from .align import Alignment

            t = Alignment.from_json(self.alignment).apply(t)
        return np.asarray(t, np.float64)

    @property
    def residual_ms(self) -> float:
        value = self.alignment.get("residual_ms") if self.alignment else None
        return math.nan if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        return {"imu_clocks": {str(k): v.to_json() for k, v in self.imu_clocks.items()},
                "truth_clock": None if self.truth_clock is None else self.truth_clock.to_json(),
                "alignment": self.alignment, "alignment_error": self.alignment_error}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionSync:
        return cls({int(k): ClockFit.from_json(v) for k, v in data["imu_clocks"].items()},
                   None if data.get("truth_clock") is None else
                   ClockFit.from_json(data["truth_clock"]),
                   data.get("alignment"), data.get("alignment_error", ""))


def fit_imu_clocks(contents: SessionContents) -> dict[int, ClockFit]:
    """Device clock fit for each boot of the device in the session."""
    imu = contents.imu
    fits: dict[int, ClockFit] = {}
    probes = contents.probes
    for boot in np.unique(imu.frame_boot):
        sel = imu.frame_boot == boot
        arrivals = imu.frame_arrival_s[sel]
        lo, hi = arrivals.min() - 1.0, arrivals.max() + 1.0
        mine = probes[(probes[:, 3] >= lo) & (probes[:, 3] <= hi)] if len(probes) else probes
        # A probe answered by the previous boot would carry that boot's clock: keep the ones
        # that agree with this boot's device times.
        if len(mine):
            last = imu.frame_last_us[sel]
            mine = mine[(mine[:, 1] >= last.min() - 5e6) & (mine[:, 1] <= last.max() + 5e6)]
        fits[int(boot)] = fit_device_clock(mine, imu.frame_last_us[sel], arrivals)
    return fits


def tap_sensor_index(contents: SessionContents, site: str | None) -> int | None:
    """The sensor a tap is looked for on: ``site`` by name, else a chin (mentalis) site."""
    sites = [s.lower() for s in contents.sites]
    if site is not None:
        if site.lower() not in sites:
            from imucap.errors import ImucapError

            raise ImucapError(f"--tap-site {site}: no such site in this session (sites: "
                              f"{', '.join(contents.sites)})")
        return sites.index(site.lower())
    for key in ("mentalis", "chin"):
        for i, name in enumerate(sites):
            if key in name:
                return i
    return None


def synchronise(contents: SessionContents, *, tap_site: str | None = None,
                search_s: float | None = 1.0) -> SessionSync:
    """Fit every clock of a session and align its truth to its IMUs.

    Args:
        contents: The session, as read.
        tap_site: Site whose tap marks the alignment event (default: the chin, if any).
        search_s: How far the truth may still be off after the clock fit, seconds (None:
            anywhere in the session; used for truth that did not arrive live).
    """
    imu_clocks = fit_imu_clocks(contents) if contents.imu.n else {}
    truth = contents.truth
    if truth.n == 0:
        return SessionSync(imu_clocks, None, None, "no truth in the session")
    source = contents.session.get("truth") or {}
    live = np.isfinite(truth.arrival_time_s)
    if live.sum() >= 10:
        truth_clock = fit_arrival_clock(truth.source_time_s, truth.arrival_time_s,
                                        latency_s=float(source.get("latency_s", 0.0)))
    else:
        truth_clock = ClockFit(0.0, 0.0, 0.0, "none", 0)
        search_s = None
    sync = SessionSync(imu_clocks, truth_clock, None)
    if contents.imu.n == 0:
        return SessionSync(imu_clocks, truth_clock, None, "no IMU data in the session")
    imu_t = sync.imu_times(contents)
    prior_t = truth_clock.apply(truth.source_time_s)
    from .align import AlignmentError, align_truth

    weights = truth.weights.copy()
    unmeasured = source.get("unmeasured") or []
    channels = np.ones(NUM_BLENDSHAPES, bool)
    channels[[int(i) for i in unmeasured]] = False
    weights[:, ~channels] = 0.0
    order = np.argsort(imu_t, kind="stable")
    try:
        alignment = align_truth(imu_t[order], contents.imu.accel[order],
                                contents.imu.gyro[order], prior_t, weights,
                                tap_sensor=tap_sensor_index(contents, tap_site),
                                search_s=search_s,
                                # Without live arrivals, nothing else measures the drift:
                                # shorter segments give the line through the lags more points.
                                fit_drift=search_s is None,
                                segment_s=10.0 if search_s is None else 20.0)
    except AlignmentError as exc:
        return SessionSync(imu_clocks, truth_clock, None, str(exc))
    return SessionSync(imu_clocks, truth_clock, json.loads(alignment.to_json()))
