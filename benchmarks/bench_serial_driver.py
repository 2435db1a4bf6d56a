"""The serial driver's CPU share streaming 16 sensors x 1 kHz over a pseudo-terminal.

The emulator runs in its own process (``imucap emulate``), so this process's CPU time is the
driver's alone: the reader thread (read, decode, accounting, clock, SI conversion) plus a
consumer that takes every frame with ``read()``. Prints CPU time over wall time, in percent of
one core, for two batchings, and the loss seen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imucap.devices.serial import SerialConfig, SerialDevice

TARGET_PERCENT = 10.0


def measure(samples_per_frame: int, seconds: float = 10.0) -> dict[str, float]:
    path = Path(tempfile.mkdtemp(prefix="imucap-bench-")) / "ttyIMU0"
    emu = subprocess.Popen(
        [sys.executable, "-m", "imucap", "emulate", "--sensors", "16", "--rate-hz", "1000",
         "--samples-per-frame", str(samples_per_frame), "--pty", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            if time.monotonic() > deadline or emu.poll() is not None:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.05)
        dev = SerialDevice(SerialConfig(port=str(path)))
        with dev:
            dev.read(timeout_s=3.0)
            time.sleep(0.5)
            while True:  # start from an empty queue
                try:
                    dev.read(timeout_s=0)
                except TimeoutError:
                    break
            stats0 = dev.stats()
            cpu0, wall0 = time.process_time(), time.monotonic()
            frames = 0
            while time.monotonic() - wall0 < seconds:
                try:
                    dev.read(timeout_s=0.5)
                    frames += 1
                except TimeoutError:
                    pass
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            stats = dev.stats()
    finally:
        emu.terminate()
        emu.wait(5)
    samples = stats.samples - stats0.samples
    return {
        "cpu_percent": 100 * cpu / wall,
        "frames_per_s": frames / wall,
        "samples_per_s": samples / wall,
        "sensor_samples_per_s": samples * 16 / wall,
        "lost": stats.samples_lost - stats0.samples_lost,
        "bad": stats.bad_frames - stats0.bad_frames,
    }


def main() -> None:
    print(f"imucap serial driver CPU share, 16 sensors x 1 kHz over a pty "
          f"({os.cpu_count()} cores; emulator in another process)")
    print(f"{'batching':<22}{'CPU % of a core':>17}{'frames/s':>10}{'samples/s':>11}"
          f"{'lost':>6}{'bad':>5}")
    worst = 0.0
    for spf in (10, 1):
        r = measure(spf)
        worst = max(worst, r["cpu_percent"])
        print(f"{spf:>2} samples/frame      {r['cpu_percent']:17.1f}{r['frames_per_s']:10.0f}"
              f"{r['samples_per_s']:11.0f}{r['lost']:6d}{r['bad']:5d}")
    verdict = "meets" if worst < TARGET_PERCENT else "MISSES"
    print(f"highest: {worst:.1f} % of one core, {verdict} the {TARGET_PERCENT:.0f} % target")


if __name__ == "__main__":
    main()
