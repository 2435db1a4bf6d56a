"""Per-frame cost of the live sinks at 60 Hz: Live Link, VMC, LSL, and all three in a FanOut.

Sends engine-like frames (52 weights and 18 AU intensities) at 60 Hz, paced on the host clock
as the streaming engine emits them, to UDP ports on 127.0.0.1 that hold a socket (so no send is
refused) and to LSL outlets with no inlet connected. For each case it prints the cost of the
caller's ``send()`` (mean, median, p99 in microseconds), the CPU time of the whole process
per frame, worker threads included (for the FanOut, the sinks' own sends run on its threads,
so the caller's cost alone would flatter it), and, as "hot", the mean cost of back-to-back
sends with warm caches. Paced sends cost several times the hot figure: between frames the
caches go cold and the thread sleeps.

Target: all sinks together under 1 ms per frame.

Run: ``python benchmarks/bench_sinks.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
import uuid

import numpy as np

from imucap.inference.engine import FaceFrame
from imucap.sinks import FanOut, LiveLinkSender, LslSink, SinkError, VmcSender
from imucap.vocab import au_intensities

TARGET_US = 1000.0
RATE_HZ = 60.0


def make_frames(n: int, start_s: float) -> list[FaceFrame]:
    rng = np.random.default_rng(0)
    weights = rng.random((n, 52), dtype=np.float32)
    aus = au_intensities(weights)
    return [FaceFrame(time_s=start_s + k / RATE_HZ, weights=weights[k], confidence=1.0,
                      aus=aus[k]) for k in range(n)]


def run(send, n: int, *, warmup: int = 30) -> tuple[list[float], float]:
    """Calls ``send(frame)`` at 60 Hz, ``warmup`` times unmeasured then n times.

    Returns each measured call's cost in µs and the process's CPU µs per measured frame.
    """
    start = time.monotonic()
    frames = make_frames(warmup + n, start)
    costs = []
    cpu0 = 0.0
    for k, frame in enumerate(frames):
        if k == warmup:
            cpu0 = time.process_time()
        pause = start + k / RATE_HZ - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        t0 = time.perf_counter()
        send(frame)
        costs.append((time.perf_counter() - t0) * 1e6)
    return costs[warmup:], (time.process_time() - cpu0) * 1e6 / n


def hot(send, n: int = 2000) -> float:
    """Mean µs per call back to back, caches warm: the sink's own cost without the pacing."""
    frames = make_frames(n, time.monotonic())
    t0 = time.perf_counter()
    for frame in frames:
        send(frame)
    return (time.perf_counter() - t0) * 1e6 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each case")
    args = parser.parse_args()
    n = max(10, int(args.seconds * RATE_HZ))

    # Sockets that exist but are never read: the kernel drops what overflows, silently.
    holders = []
    for _ in range(2):
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.1", 0))
        holders.append(holder)
    ll_port, vmc_port = (h.getsockname()[1] for h in holders)
    lsl_name = f"imucap-bench-{uuid.uuid4().hex[:6]}"

    def sinks():
        return {
            "livelink": LiveLinkSender("127.0.0.1", ll_port),
            "vmc": VmcSender("127.0.0.1", vmc_port),
            "lsl": LslSink(lsl_name, rate_hz=RATE_HZ),
        }

    print(f"imucap sink cost per frame at {RATE_HZ:.0f} Hz ({n} frames each, 127.0.0.1, "
          f"no LSL inlet)")
    print(f"{'sink':<26}{'mean µs':>10}{'p50 µs':>10}{'p99 µs':>10}{'CPU µs/frame':>15}"
          f"{'hot µs':>10}")
    cpu_per_frame = {}
    for name, sink in sinks().items():
        try:
            sink.open()
        except SinkError as exc:
            print(f"{name:<26}skipped: {exc}")
            continue
        try:
            costs, cpu = run(sink.send, n)
            back_to_back = hot(sink.send)
        finally:
            sink.close()
        cpu_per_frame[name] = cpu
        _row(name, costs, cpu, back_to_back)
        if sink.stats().errors:
            print(f"{'':<26}{sink.stats().errors} errors, last: {sink.stats().last_error}")

    fan = FanOut(list(sinks().values()), rate_hz=RATE_HZ)
    with fan:
        costs, cpu = run(fan.send, n)
    stats = fan.stats()  # after close(): every queued frame has been sent
    _row("all three via FanOut", costs, cpu, note="(send() is the caller's cost)")
    worker_us = sum(s.mean_send_us for s in stats.sinks.values())
    print(f"{'  sinks on their threads':<26}{worker_us:>10.1f}{'':>45} (sum of their mean "
          f"send())")
    drops = sum(s.frames_dropped for s in stats.sinks.values())
    print(f"{'  dropped / thinned':<26}{drops:>10}{stats.frames_thinned:>10}")
    for holder in holders:
        holder.close()

    total = cpu
    verdict = "met" if total < TARGET_US else "NOT met"
    print(f"target: all sinks together under {TARGET_US:.0f} µs (1 ms) per frame -> "
          f"{total:.0f} µs CPU per frame through FanOut ({verdict}); "
          f"sum of the sinks alone {sum(cpu_per_frame.values()):.0f} µs")


def _row(name: str, costs: list[float], cpu: float, back_to_back: float | None = None,
         note: str = "") -> None:
    p99 = float(np.percentile(costs, 99))
    hot_text = f"{back_to_back:>10.1f}" if back_to_back is not None else f"{'':>10}"
    print(f"{name:<26}{statistics.fmean(costs):>10.1f}{statistics.median(costs):>10.1f}"
          f"{p99:>10.1f}{cpu:>15.1f}{hot_text} {note}".rstrip())


if __name__ == "__main__":
    main()
