"""The live table of ``imucap stream --print``: per-sensor rates and signals, link health."""

from __future__ import annotations

from collections import deque

import numpy as np

from imucap.devices.base import StreamStats
from imucap.firmware_bridge.emulator import FaultReport
from imucap.firmware_bridge.protocol import DeviceInfo
from imucap.frames import ImuFrame


class SignalWindow:
    """The last ``seconds`` of samples, for a short per-sensor signal summary."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self._frames: deque[ImuFrame] = deque()

    def add(self, frame: ImuFrame) -> None:
        self._frames.append(frame)
        while self._frames and frame.arrival_time_s - self._frames[0].arrival_time_s > \
                self.seconds:
            self._frames.popleft()

    def summary(self) -> dict[str, np.ndarray] | None:
        """Per sensor: mean acceleration (m/s²), its norm, and gyro RMS (°/s)."""
        if not self._frames:
            return None
        accel = np.concatenate([f.accel for f in self._frames])
        gyro = np.concatenate([f.gyro for f in self._frames])
        ok = np.stack([f.sensor_ok for f in self._frames]).any(axis=0)
        mean = accel.mean(axis=0)
        return {
            "accel_mean": mean,
            "accel_norm": np.linalg.norm(accel, axis=-1).mean(axis=0),
            "gyro_rms_dps": np.degrees(np.sqrt((gyro ** 2).sum(axis=-1).mean(axis=0))),
            "ok": ok,
        }


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def render(name: str, info: DeviceInfo | None, stats: StreamStats, window: SignalWindow,
           elapsed_s: float, injected: FaultReport | None = None,
           parts: dict[str, StreamStats] | None = None) -> str:
    """The whole table as text; ``parts`` are an array's parts, each with its own line."""
    lines = []
    if info:
        lines.append(f"imucap stream  {name}  {info.chip or 'IMU'} x{info.sensor_count} @ "
                     f"{info.rate_hz} Hz  firmware {info.firmware or '?'}  boot {info.boot_id:08x}")
    else:
        lines.append(f"imucap stream  {name}")
    lines.append(f"elapsed {elapsed_s:6.1f} s   state {stats.state}")
    lines.append("")
    summary = window.summary()
    lines.append(f"{'site':<22}{'rate Hz':>8}{'|a| m/s2':>10}{'ax':>8}{'ay':>8}{'az':>8}"
                 f"{'gyro rms deg/s':>16}")
    if info:
        for i, site in enumerate(info.sites):
            rate = stats.sensor_rates_hz[i] if i < len(stats.sensor_rates_hz) else 0.0
            if summary is None or i >= len(summary["ok"]):
                lines.append(f"{site:<22}{rate:8.1f}")
                continue
            if not summary["ok"][i]:
                lines.append(f"{site:<22}{rate:8.1f}   no valid data (sensor reports a fault)")
                continue
            ax, ay, az = summary["accel_mean"][i]
            lines.append(f"{site:<22}{rate:8.1f}{summary['accel_norm'][i]:10.2f}{ax:8.2f}"
                         f"{ay:8.2f}{az:8.2f}{summary['gyro_rms_dps'][i]:16.2f}")
    lines.append("")
    lines.append(f"link    {stats.frames_per_s:7.1f} frames/s  {stats.samples_per_s:7.1f} "
                 f"samples/s  {_fmt_bytes(stats.bytes_per_s)}/s  total {stats.frames} frames, "
                 f"{_fmt_bytes(stats.bytes)}")
    lines.append(f"loss    frames lost {stats.frames_lost} in {stats.seq_gaps} gaps   samples "
                 f"lost {stats.samples_lost} ({100 * stats.loss_ratio:.2f} %)   out of order "
                 f"{stats.out_of_order}   duplicates {stats.duplicates}"
                 + (f"   foreign datagrams {stats.foreign_packets}"
                    if stats.foreign_packets else ""))
    lines.append(f"errors  bad frames {stats.bad_frames} (crc {stats.crc_errors}, cobs "
                 f"{stats.cobs_errors}, short {stats.short_frames}, oversize "
                 f"{stats.oversize_frames}, payload {stats.payload_errors})   resyncs "
                 f"{stats.resyncs}   discarded {_fmt_bytes(stats.bytes_discarded)}   unknown "
                 f"types {stats.unknown_types}")
    lines.append(f"events  stalls {stats.stalls}   reconnects {stats.reconnects} (attempts "
                 f"{stats.reconnect_attempts})   host queue drops {stats.queue_drops}")
    rtt = "-" if stats.clock_rtt_ms is None else f"{stats.clock_rtt_ms:.2f} ms"
    lines.append(f"clock   offset {stats.clock_offset_s:+.6f} s   drift "
                 f"{stats.clock_drift_ppm:+.1f} ppm   best rtt {rtt}   from {stats.clock_source}")
    if parts:
        lines.append(f"array   {stats.partial_samples} samples partial (a part missing)")
        for part, ps in parts.items():
            lines.append(f"  {part:<10}{ps.state:<13}{ps.samples_per_s:7.1f} samples/s   lost "
                         f"{ps.samples_lost}   reconnects {ps.reconnects}   clock "
                         f"{ps.clock_drift_ppm:+.1f} ppm, rtt "
                         f"{'-' if ps.clock_rtt_ms is None else f'{ps.clock_rtt_ms:.2f} ms'}")
    if injected is not None:
        lines.append(
            f"emulator injected: dropped {injected.dropped_frames}   corrupted "
            f"{injected.corrupted_frames} ({_fmt_bytes(injected.corrupted_bytes)})   garbage "
            f"{injected.garbage_chunks} ({_fmt_bytes(injected.garbage_bytes)})   unknown "
            f"{injected.unknown_messages}   stalls {injected.stalls}   disconnects "
            f"{injected.disconnects}   (sent {injected.frames_sent} intact frames)")
    if stats.last_error:
        lines.append(f"last    {stats.last_error}")
    return "\n".join(lines)


def status_line(stats: StreamStats, elapsed_s: float) -> str:
    """One line for logs (when the output is not a terminal)."""
    return (f"[{elapsed_s:6.1f} s] {stats.state}: {stats.frames_per_s:.1f} frames/s, "
            f"{stats.samples_per_s:.1f} samples/s, lost {stats.samples_lost} samples "
            f"({100 * stats.loss_ratio:.2f} %), bad frames {stats.bad_frames}, "
            f"stalls {stats.stalls}, reconnects {stats.reconnects}")
