"""IMU simulator speed: sensor-seconds generated per wall-second, 12 sensors at 200 Hz, one core.

Times the whole chain for one subject-minute: made-up expressions and head motion at the
device rate, sensor poses on the built-in rig, ideal physics, and the chip model. Target: at
least 500 sensor-seconds per second (500x real time per sensor), which makes 400
subject-minutes of a 12-sensor array take well under ten minutes on two cores.
"""

from __future__ import annotations

import time

import numpy as np

from imucap.datasets.builtin_rig import builtin_rig
from imucap.datasets.motion import SubjectStyle, expression_track, head_track
from imucap.datasets.placement import preset
from imucap.datasets.simulate import simulate_imu

TARGET_X = 500.0


def main() -> None:
    rig = builtin_rig()
    sites = preset("imusic11+head", rig).attach(rig)
    rate, seconds = 200.0, 60.0
    timings = {"motion": [], "physics+chip": []}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        style = SubjectStyle.random(rng)
        t0 = time.perf_counter()
        weights = expression_track(seconds, rate, style, rng)
        rotvec, pos = head_track(seconds, rate, style, rng)
        t1 = time.perf_counter()
        simulate_imu(rig, sites, weights, rotvec, pos, rate_hz=rate, rng=rng)
        t2 = time.perf_counter()
        timings["motion"].append(t1 - t0)
        timings["physics+chip"].append(t2 - t1)
    motion = float(np.median(timings["motion"]))
    physics = float(np.median(timings["physics+chip"]))
    total = motion + physics
    print(f"imucap simulator: {len(sites.names)} sensors at {rate:.0f} Hz, one subject-minute, "
          f"median of 3")
    print(f"  motion generation  {motion * 1e3:8.1f} ms")
    print(f"  physics + chip     {physics * 1e3:8.1f} ms")
    sessions_per_s = seconds / total
    sensor_speed = sessions_per_s * len(sites.names)
    verdict = "meets" if sensor_speed >= TARGET_X else "MISSES"
    print(f"  {sensor_speed:.0f} sensor-seconds per second ({sessions_per_s:.0f}x real time for "
          f"the whole array), {verdict} the {TARGET_X:.0f} target; 400 subject-minutes take "
          f"{400 * 60 / sessions_per_s / 60:.1f} min on one core, "
          f"{400 * 60 / sessions_per_s / 120:.1f} min on two")


if __name__ == "__main__":
    main()
