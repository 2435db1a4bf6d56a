"""UDP over loopback and the multi-device merge: throughput, merge cost, and added latency.

1. **UDP**: an emulated Wi-Fi board in its own process (``imucap emulate --udp-to``) sends
   16 sensors at 1 kHz to this process, which decodes every frame through
   :class:`~imucap.devices.udp.UdpDevice`. Printed: decoded frames/s and samples/s, this
   process's CPU share, and the loss seen.
2. **Merge cost**: :class:`~imucap.devices.array.ArrayMerger` alone, two parts of 6 and 5
   sensors at 100 Hz, one array frame per pop as when streaming live: microseconds per array
   frame.
3. **Latency added by the merge**: two emulated boards (separate processes) stream 100 Hz over
   UDP; for the array and for one of its parts alone, the time from a sample's instant (on the
   host clock) to the frame being handed to the reader. The array's figure minus the part's is
   what the merge adds (about half a sample period: an instant waits for the sample after it,
   to interpolate).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

import numpy as np

from imucap.devices import open_device
from imucap.devices.array import ArrayMerger
from imucap.frames import ImuFrame


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _emulator(port: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "imucap", "emulate", "--udp-to",
                             f"127.0.0.1:{port}", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _drain(dev) -> None:
    while True:
        try:
            dev.read(timeout_s=0)
        except TimeoutError:
            return


def udp_throughput(seconds: float, samples_per_frame: int) -> dict[str, float]:
    port = _free_port()
    emu = _emulator(port, "--sensors", "16", "--rate-hz", "1000", "--samples-per-frame",
                    str(samples_per_frame))
    try:
        dev = open_device(f"udp://127.0.0.1:{port}?handshake_timeout_s=10")
        with dev:
            dev.read(timeout_s=3.0)
            time.sleep(0.5)
            _drain(dev)
            s0 = dev.stats()
            cpu0, wall0 = time.process_time(), time.monotonic()
            while time.monotonic() - wall0 < seconds:
                try:
                    dev.read(timeout_s=0.5)
                except TimeoutError:
                    pass
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            s1 = dev.stats()
    finally:
        emu.terminate()
        emu.wait(5)
    return {"frames_per_s": (s1.frames - s0.frames) / wall,
            "samples_per_s": (s1.samples - s0.samples) / wall,
            "cpu_percent": 100 * cpu / wall,
            "lost": s1.samples_lost - s0.samples_lost}


def merge_cost(n: int = 20000) -> float:
    """Microseconds per array frame, two parts at 100 Hz, one instant per pop."""
    left = tuple(f"l{i}" for i in range(6))
    right = tuple(f"r{i}" for i in range(5))
    m = ArrayMerger([("left", left, 100.0), ("right", right, 100.0)], 100.0, 0.1)
    rng = np.random.default_rng(0)

    def part(t: float, sites: tuple[str, ...]) -> ImuFrame:
        a = rng.normal(size=(1, len(sites), 3)).astype(np.float32)
        return ImuFrame(seq=0, boot_id=1, device_time_us=np.array([int(t * 1e6)]),
                        host_time_s=np.array([t]), arrival_time_s=t, accel=a, gyro=a,
                        mag=None, quat=None, sensor_ok=np.ones(len(sites), bool),
                        sites=sites)

    start = time.perf_counter()
    out = 0
    for k in range(n):
        t = 100.0 + 0.01 * k
        m.add(0, part(t, left))
        m.add(1, part(t + 0.0043, right))
        out += len(m.pop(t + 0.005))
    elapsed = time.perf_counter() - start
    return elapsed / max(out, 1) * 1e6


def added_latency(seconds: float) -> tuple[float, float, float, float]:
    port = _free_port()
    emus = [_emulator(port, "--sites", "face4", "--device-id", "0x1"),
            _emulator(port, "--sensors", "3", "--device-id", "0x2")]
    try:
        def latencies(uri: str) -> np.ndarray:
            dev = open_device(uri)
            out = []
            with dev:
                dev.read(timeout_s=5.0)
                _drain(dev)
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    f = dev.read(timeout_s=1.0)
                    out.extend(f.arrival_time_s - f.host_time_s)
            return np.asarray(out) * 1e3

        single = latencies(f"udp://127.0.0.1:{port}?device_id=0x1&handshake_timeout_s=10")
        array = latencies(f"array:a=udp://127.0.0.1:{port}?device_id=0x1&handshake_timeout_s=10,"
                          f"b=udp://127.0.0.1:{port}?device_id=0x2&handshake_timeout_s=10")
    finally:
        for emu in emus:
            emu.terminate()
            emu.wait(5)
    return (float(np.median(single)), float(np.percentile(single, 99)),
            float(np.median(array)), float(np.percentile(array, 99)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=4, help="latency runs")
    args = parser.parse_args()
    print("UDP over loopback, 16 sensors x 1 kHz, emulator in its own process")
    print(f"{'samples/frame':>14}{'frames/s':>10}{'samples/s':>11}{'CPU %':>8}{'lost':>6}")
    for spf in (1, 10):
        r = udp_throughput(args.seconds, spf)
        print(f"{spf:14d}{r['frames_per_s']:10.0f}{r['samples_per_s']:11.0f}"
              f"{r['cpu_percent']:8.1f}{r['lost']:6d}")
    print(f"\nmerge cost: {merge_cost():.1f} us per array frame (6 + 5 sensors, 100 Hz)")
    print("\nsample instant -> frame handed to the reader, two boards at 100 Hz over UDP")
    print("(each run starts the boards afresh: their relative phase, hence the wait, differs)")
    print(f"{'run':>4}{'one board p50':>15}{'p99':>8}{'array p50':>11}{'p99':>8}"
          f"{'added p50':>11}")
    added = []
    for run in range(args.runs):
        s50, s99, a50, a99 = added_latency(args.seconds / 2)
        added.append(a50 - s50)
        print(f"{run + 1:4d}{s50:12.2f} ms{s99:8.2f}{a50:8.2f} ms{a99:8.2f}{a50 - s50:8.2f} ms")
    print(f"added by the merge: {np.mean(added):.2f} ms mean over {args.runs} runs "
          f"(between 0 and one 10 ms period)")


if __name__ == "__main__":
    main()
