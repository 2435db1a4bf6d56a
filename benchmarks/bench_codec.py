"""Decoding throughput of the host codec on one core: MB/s and sensor-samples/s.

Encodes realistic IMU batches (face motion quantised to int16, so the bytes hold zeros the way
real data does), concatenates them into one stream, and times FrameDecoder.feed over it in
4 KiB reads, as a serial port delivers them. Prints the median of several runs.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from imucap.firmware_bridge.codec import FrameDecoder, encode_frame
from imucap.firmware_bridge.emulator import SyntheticMotion
from imucap.firmware_bridge.protocol import Content, DeviceInfo, Samples
from imucap.firmware_bridge.sites import site_preset

TARGET_MB_S = 10.0


def make_stream(sensors: int, rate_hz: int, samples_per_frame: int, seconds: float) -> bytes:
    info = DeviceInfo(sites=site_preset(f"sensors{sensors}"), rate_hz=rate_hz)
    motion = SyntheticMotion(info.sites, rate_hz=rate_hz, seed=1)
    n_frames = int(seconds * rate_hz / samples_per_frame)
    dt_us = round(1e6 / rate_hz)
    chunks = []
    for k in range(n_frames):
        t_us = (k * samples_per_frame + np.arange(samples_per_frame)) * dt_us
        accel, gyro = motion.sample(t_us * 1e-6)
        raw = np.concatenate([np.round(accel / info.accel_scale),
                              np.round(gyro / info.gyro_scale)], axis=-1).astype(np.int16)
        msg = Samples(int(t_us[0]), dt_us, Content.ACCEL | Content.GYRO, (1 << sensors) - 1, raw)
        chunks.append(encode_frame(msg, k))
    return b"".join(chunks)


def time_decode(stream: bytes, read_size: int = 4096, repeats: int = 5) -> tuple[float, int]:
    times = []
    for _ in range(repeats):
        dec = FrameDecoder()
        frames = 0
        start = time.perf_counter()
        for i in range(0, len(stream), read_size):
            frames += len(dec.feed(stream[i:i + read_size]))
        times.append(time.perf_counter() - start)
        assert dec.counters.bad_frames == 0
    return statistics.median(times), frames


def main() -> None:
    print("imucap codec decode throughput (one core, median of 5 runs, 4 KiB reads)")
    print(f"{'shape':<34}{'frame B':>9}{'MB/s':>9}{'frames/s':>12}{'samples/s':>14}")
    cases = [
        ("11 sensors, 100 Hz, 1 sample/frame", 11, 100, 1),
        ("16 sensors, 1 kHz, 1 sample/frame", 16, 1000, 1),
        ("16 sensors, 1 kHz, 10 samples/frame", 16, 1000, 10),
        ("16 sensors, 1 kHz, 20 samples/frame", 16, 1000, 20),
    ]
    worst = float("inf")
    for label, sensors, rate, spf in cases:
        stream = make_stream(sensors, rate, spf, seconds=20.0 if rate == 100 else 4.0)
        seconds, frames = time_decode(stream)
        mb_s = len(stream) / seconds / 1e6
        worst = min(worst, mb_s)
        sensor_samples = frames * spf * sensors / seconds
        print(f"{label:<34}{len(stream) / frames:9.0f}{mb_s:9.1f}{frames / seconds:12.0f}"
              f"{sensor_samples:14.3g}")
    verdict = "meets" if worst >= TARGET_MB_S else "MISSES"
    print(f"slowest shape: {worst:.1f} MB/s, {verdict} the {TARGET_MB_S:.0f} MB/s target "
          f"({worst / 1.0:.0f}x a 1 MB/s USB full-speed serial link)")


if __name__ == "__main__":
    main()
