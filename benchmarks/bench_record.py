"""Recorder throughput: the heaviest array (16 sensors × 1 kHz) and 60 Hz truth into a session.

Builds ``--seconds`` of simulated recording (default 60): IMU frames of 10 samples at 100
frames/s from the synthetic face motion, quantised to the sensors' int16 steps the way real
data is (so compression sees realistic bytes), interleaved in time with 60 Hz truth frames
(52 weights and head angles) and a status record once a second, as the recorder writes them.
Then, on one thread, it writes them through :class:`SessionWriter` as fast as it can, closing
a chunk every 0.25 s and calling fsync every 1 s *of recording* (the default policy, applied on
the simulated clock, so the chunks and fsyncs per second of data are those of a live
recording), and again with an fsync after every chunk, without fsync, without compression, and
only encoding (no file). For each it prints frames/s and samples/s written, the multiple of
the real-time load, MB/s to disk, bytes on disk per second of recording, the compression ratio
(message bytes over file bytes) and the CPU time per second of recording. It then times
``read_session`` over the default file.

Last, unless ``--recorder-seconds 0``, it runs the full :class:`Recorder` on an emulated 16 ×
1 kHz array (``emulator:sensors16``, in this process, so it runs in real time) and reports its
steady-state backlog, drops, loss, and the CPU of its writer thread and of the whole process
(emulator and serial driver included).

Target: at least 10× real time on one core for the default policy.

Run: ``python benchmarks/bench_record.py [--seconds S] [--recorder-seconds S]``.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imucap.firmware_bridge.emulator import SyntheticMotion
from imucap.firmware_bridge.protocol import DeviceInfo
from imucap.firmware_bridge.sites import site_preset
from imucap.frames import ImuFrame
from imucap.record.session_file import SessionWriter, encode_imu, read_session
from imucap.truth.base import TruthFrame

TARGET_X = 10.0
SENSORS = 16
RATE_HZ = 1000
SPF = 10  # samples per frame: 100 frames/s
TRUTH_HZ = 60.0
POOL_S = 10.0  # distinct motion generated; longer runs cycle it with advancing clocks


@dataclass
class Load:
    """The simulated recording: items in time order and what they amount to."""

    items: list[tuple[float, str, object]]
    seconds: float
    imu_frames: int
    imu_samples: int
    truth_frames: int
    sites: tuple[str, ...]


def make_load(seconds: float) -> Load:
    sites = site_preset(f"sensors{SENSORS}")
    info = DeviceInfo(sites=sites, rate_hz=RATE_HZ)
    motion = SyntheticMotion(sites, rate_hz=RATE_HZ, seed=1)
    pool_frames = int(min(seconds, POOL_S) * RATE_HZ / SPF)
    t = np.arange(pool_frames * SPF) / RATE_HZ
    accel, gyro = motion.sample(t)
    accel = (np.round(accel / info.accel_scale) * info.accel_scale).astype(np.float32)
    gyro = (np.round(gyro / info.gyro_scale) * info.gyro_scale).astype(np.float32)
    accel = accel.reshape(pool_frames, SPF, SENSORS, 3)
    gyro = gyro.reshape(pool_frames, SPF, SENSORS, 3)
    ok = np.ones(SENSORS, bool)

    t0 = 1000.0  # session clock (host monotonic seconds) of the first sample
    n_frames = int(seconds * RATE_HZ / SPF)
    items: list[tuple[float, str, object]] = []
    for k in range(n_frames):
        t_us = (k * SPF + np.arange(SPF, dtype=np.int64)) * (1_000_000 // RATE_HZ)
        host = t0 + t_us * 1e-6
        arrival = float(host[-1]) + 0.003
        frame = ImuFrame(seq=k, boot_id=0x5EED, device_time_us=t_us, host_time_s=host,
                         arrival_time_s=arrival, accel=accel[k % pool_frames],
                         gyro=gyro[k % pool_frames], mag=None, quat=None, sensor_ok=ok,
                         sites=sites)
        items.append((arrival, "imu", frame))

    rng = np.random.default_rng(2)
    n_truth = int(seconds * TRUTH_HZ)
    base = rng.random(52).astype(np.float32)
    for j in range(n_truth):
        ts = j / TRUTH_HZ
        weights = np.clip(base + 0.2 * np.sin(ts * (1 + np.arange(52) / 10)), 0, 1)
        head = np.array([0.1 * math.sin(ts), 0.05 * math.cos(ts), 0.0], np.float32)
        items.append((t0 + ts + 0.040, "truth",
                      TruthFrame(j, 500.0 + ts, t0 + ts + 0.040, weights.astype(np.float32),
                                 head)))
    for s in range(1, int(seconds) + 1):
        items.append((t0 + s, "status", None))
    items.sort(key=lambda item: item[0])
    return Load(items, n_frames * SPF / RATE_HZ, n_frames, n_frames * SPF, n_truth, sites)


def _status(t: float, frames: int, truth: int) -> dict:
    """A status record like the recorder's, so the file holds what a live one does."""
    return {"imu": {"state": "streaming", "frames": frames, "samples": frames * SPF,
                    "samples_per_s": float(RATE_HZ), "frames_lost": 0, "samples_lost": 0,
                    "bad_frames": 0, "reconnects": 0, "clock_offset_s": 12.5,
                    "clock_drift_ppm": 0.1, "clock_rtt_ms": 0.4, "last_error": ""},
            "written": {"imu_frames": frames, "truth_frames": truth, "dropped": 0},
            "truth": {"state": "streaming", "frames": truth, "frames_per_s": TRUTH_HZ,
                      "no_face": 0, "rejected": 0, "strangers": 0, "gaps": 0,
                      "last_error": ""}}


@dataclass
class Result:
    wall_s: float
    cpu_s: float
    file_bytes: int
    message_bytes: int
    chunks: int
    fsyncs: int


def write_case(load: Load, path: Path | None, *, compression: str = "zstd",
               flush_s: float = 0.25, fsync_s: float | None = 1.0,
               fsync_every_flush: bool = False) -> Result:
    """Writes the load as fast as possible; chunks and fsyncs follow the simulated clock.

    ``path=None`` only encodes the messages (no file, no compression).
    """
    if path is None:
        import json

        t0, c0 = time.perf_counter(), time.process_time()
        total = 0
        for _, kind, obj in load.items:
            if kind == "imu":
                total += len(encode_imu(obj))
            elif kind == "truth":
                total += len(json.dumps({"seq": obj.seq, "weights": obj.weights.tolist(),
                                         "head_ypr": obj.head_ypr.tolist()}))
        return Result(time.perf_counter() - t0, time.process_time() - c0, 0, total, 0, 0)

    writer = SessionWriter(path, session={"subject": "BENCH", "device": {"name": "bench"}},
                           sites=load.sites, compression=compression,
                           fsync_interval_s=0.0 if fsync_s is None else fsync_s)
    first_t = load.items[0][0]
    next_flush, next_fsync = first_t + flush_s, first_t + (fsync_s or math.inf)
    frames = truth = chunks = fsyncs = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for t, kind, obj in load.items:
        if kind == "imu":
            writer.write_imu(obj)
            frames += 1
        elif kind == "truth":
            writer.write_truth(obj)
            truth += 1
        else:
            writer.write_status(t, _status(t, frames, truth))
        if t >= next_flush:
            sync = fsync_s is not None and (fsync_every_flush or t >= next_fsync)
            writer.flush(fsync=sync)
            chunks += 1
            next_flush += flush_s
            if sync:
                fsyncs += 1
                next_fsync = t + fsync_s
    writer.close()  # the summary and the final fsync are part of the cost
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Result(wall, cpu, path.stat().st_size, writer.bytes_written, chunks + 1, fsyncs + 1)


def _thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds of one thread of this process (Linux /proc); NaN elsewhere."""
    if native_id is None:
        return math.nan
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def recorder_case(seconds: float, folder: Path) -> None:
    """The full recorder on an emulated 16 × 1 kHz array, in real time."""
    from imucap.devices import open_device
    from imucap.record.recorder import Recorder

    device = open_device(f"emulator:sensors{SENSORS}?emu_rate_hz={RATE_HZ}")
    device.connect()
    try:
        writer = SessionWriter(folder / "recorder.mcap", session={"subject": "BENCH"},
                               sites=tuple(device.info.sites) if device.info else ())
        recorder = Recorder(device, writer).start()
        writer_thread = recorder._threads[0]
        warmup = min(2.0, seconds / 4)
        time.sleep(warmup)
        cpu0, wcpu0 = time.process_time(), _thread_cpu_s(writer_thread.native_id)
        status0 = recorder.status()
        t0 = time.monotonic()
        backlogs = []
        while time.monotonic() - t0 < seconds:
            time.sleep(0.1)
            backlogs.append(recorder.status().backlog)
        elapsed = time.monotonic() - t0
        cpu, wcpu = time.process_time() - cpu0, _thread_cpu_s(writer_thread.native_id) - wcpu0
        status = recorder.status()
        recorder.stop()
        writer.close()
    finally:
        device.disconnect()
    samples = status.imu_samples - status0.imu_samples
    frames = status.imu_frames - status0.imu_frames
    print(f"full Recorder, emulator:sensors{SENSORS} at {RATE_HZ} Hz in this process, "
          f"{elapsed:.1f} s after {warmup:.1f} s warm-up (real time):")
    print(f"  written {frames / elapsed:.0f} frames/s, {samples / elapsed:.0f} samples/s "
          f"({samples * SENSORS / elapsed:.3g} sensor-samples/s); backlog p50 "
          f"{np.median(backlogs):.0f}, max {max(backlogs)} items; dropped {status.dropped}; "
          f"device loss {100 * status.imu.loss_ratio:.2f}%")
    print(f"  CPU per second of recording: writer thread {1e3 * wcpu / elapsed:.1f} ms, "
          f"whole process {1e3 * cpu / elapsed:.1f} ms (emulator, serial driver and "
          f"recorder together); file {status.file_bytes / (status.elapsed_s or 1) / 1e3:.0f} "
          f"kB per second of recording")
    if status.error:
        print(f"  error: {status.error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="seconds of simulated recording written per case (default 60)")
    parser.add_argument("--recorder-seconds", type=float, default=10.0,
                        help="seconds of the real-time Recorder run (0 skips it; default 10)")
    parser.add_argument("--dir", default=None,
                        help="folder for the files (default: a temporary folder; its disk "
                             "decides what fsync costs)")
    args = parser.parse_args()

    load = make_load(args.seconds)
    print(f"imucap session recording throughput: {SENSORS} sensors × {RATE_HZ} Hz "
          f"({SPF} samples/frame, {RATE_HZ // SPF} frames/s) + {TRUTH_HZ:.0f} Hz truth, "
          f"{load.seconds:.0f} s of recording per case, one thread")
    cases = [
        ("default: chunk 0.25 s, fsync 1 s", dict()),
        ("fsync every chunk (0.25 s)", dict(fsync_every_flush=True)),
        ("no fsync", dict(fsync_s=None)),
        ("no compression, default fsync", dict(compression="")),
        ("encode only (no file)", None),
    ]
    header = (f"{'case':<34}{'frames/s':>10}{'samples/s':>11}{'x real':>8}{'MB/s':>7}"
              f"{'kB/s rec':>9}{'ratio':>7}{'CPU ms/s':>9}{'fsyncs':>7}")
    print(header)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        default_file = folder / "case0.mcap"
        default_x = math.nan
        for i, (label, options) in enumerate(cases):
            path = None if options is None else folder / f"case{i}.mcap"
            r = write_case(load, path, **(options or {}))
            x = load.seconds / r.wall_s
            if i == 0:
                default_x = x
            disk = (f"{r.file_bytes / r.wall_s / 1e6:7.1f}"
                    f"{r.file_bytes / load.seconds / 1e3:9.0f}"
                    f"{r.message_bytes / r.file_bytes:7.2f}") if r.file_bytes else \
                f"{'-':>7}{'-':>9}{'-':>7}"
            print(f"{label:<34}{load.imu_frames / r.wall_s:10.0f}"
                  f"{load.imu_samples / r.wall_s:11.0f}{x:8.1f}{disk}"
                  f"{1e3 * r.cpu_s / load.seconds:9.1f}"
                  f"{r.fsyncs if r.file_bytes else '-':>7}")
        print(f"(samples are instants of all {SENSORS} sensors; x real = seconds of recording "
              f"written per wall second; ratio = message bytes / file bytes; CPU ms/s = CPU "
              f"per second of recording)")

        t0, c0 = time.perf_counter(), time.process_time()
        contents = read_session(default_file)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        size = default_file.stat().st_size
        assert contents.imu.n == load.imu_samples and contents.truth.n == load.truth_frames
        print(f"read_session of the default file ({size / 1e6:.1f} MB): {wall:.2f} s, "
              f"{contents.imu.n / wall:.0f} samples/s, {size / wall / 1e6:.1f} MB/s, "
              f"{load.seconds / wall:.1f}x real time, CPU {1e3 * cpu / load.seconds:.1f} ms "
              f"per second of recording")

        verdict = "met" if default_x >= TARGET_X else "NOT met"
        print(f"target: default policy ≥ {TARGET_X:.0f}x real time on one core -> "
              f"{default_x:.1f}x ({verdict})")

        if args.recorder_seconds > 0:
            try:
                recorder_case(args.recorder_seconds, folder)
            except Exception as exc:  # a benchmark reports, it does not fail
                print(f"full Recorder: skipped ({type(exc).__name__}: {exc})")


if __name__ == "__main__":
    main()
