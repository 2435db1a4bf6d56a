"""``imucap record``: record an IMU array with its visual truth into one session file.

While recording, a panel (one line per second off a terminal) shows rates, loss, clock offset
and drift, the truth's state, elapsed time and disk use. Keys: ``m`` sets a marker, ``q`` (or
Ctrl-C) stops. Off a terminal, lines on stdin do the same (``m [label]``, ``q``), which is how
scripts drive it. On stop, the clocks are fitted over the whole session, the truth is aligned
to the IMUs (a tap on the chin sensor, then cross-correlation), and the result and its residual
are stored in the file and printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import re
import select
import socket
import sys
import time
from pathlib import Path
from typing import Any

from imucap.errors import ImucapError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record", help="record IMUs with ARKit or MediaPipe truth into a session file",
        description="Record an IMU array and its visual truth (an iPhone's Live Link Face "
                    "stream, or MediaPipe on a webcam or video) into one crash-safe session "
                    "file (MCAP). Keys while recording: m = marker, q or Ctrl-C = stop.")
    p.add_argument("--device", required=True, metavar="URI",
                   help="IMU array: serial:/dev/ttyACM0, tcp://HOST:PORT, ble:NAME, "
                        "udp://0.0.0.0:9000, array:left=URI,right=URI, emulator:imusic11, "
                        "replay:SESSION.mcap")
    p.add_argument("--truth", default=None, metavar="URI",
                   help="livelink://[HOST][:PORT] (loopback unless HOST is given: "
                        "livelink://0.0.0.0:11111 hears a phone on the network), "
                        "mediapipe:webcam:INDEX or mediapipe:file:VIDEO (default: IMUs only)")
    p.add_argument("--model-asset", default=None, metavar="PATH",
                   help="MediaPipe Face Landmarker model (face_landmarker.task)")
    p.add_argument("--camera-latency-ms", type=float, default=None,
                   help="a webcam's capture latency to subtract (default 50)")
    p.add_argument("--subject", required=True, help="subject id, such as P07")
    p.add_argument("--out", default="sessions", metavar="DIR",
                   help="folder for the session file (created if missing; default sessions/)")
    p.add_argument("--name", default=None,
                   help="session name (default SUBJECT_YYYYMMDD-HHMMSS)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: until q or Ctrl-C)")
    p.add_argument("--calibrate", action="store_true",
                   help="run the guided calibration steps first (still, neutral face, taps)")
    p.add_argument("--still-s", type=float, default=5.0, help="length of the still step")
    p.add_argument("--neutral-s", type=float, default=3.0, help="length of the neutral step")
    p.add_argument("--tap-site", default=None,
                   help="site tapped for alignment (default: the chin/mentalis site)")
    p.add_argument("--notes", default="", help="free text stored with the session")
    p.add_argument("--fsync-interval-s", type=float, default=1.0,
                   help="longest time recorded data waits before fsync (default 1)")
    p.set_defaults(run=run)


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def panel_line(status: Any) -> str:
    """One line of the live panel."""
    imu = status.imu
    loss = 100.0 * imu.loss_ratio
    parts = [f"{status.elapsed_s:7.1f} s",
             f"IMU {imu.samples_per_s:6.0f} samples/s loss {loss:.2f}%",
             f"clock {imu.clock_offset_s * 1e3:+.2f} ms {imu.clock_drift_ppm:+.1f} ppm"]
    truth = status.truth
    if truth is not None:
        text = f"truth {truth.state} {truth.frames_per_s:4.0f} fps"
        if truth.no_face:
            text += f" no-face {truth.no_face}"
        if truth.gaps:
            text += f" gaps {truth.gaps}"
        if math.isfinite(status.truth_drift_ppm):
            text += f" drift {status.truth_drift_ppm:+.1f} ppm"
        parts.append(text)
    if math.isfinite(status.sync_residual_ms):
        parts.append(f"sync residual {status.sync_residual_ms:.2f} ms")
    parts.append(f"markers {status.markers}")
    parts.append(f"file {_human_bytes(status.file_bytes)} "
                 f"(free {_human_bytes(status.disk_free_bytes)})")
    if truth is not None and truth.last_error:
        parts.append(f"truth: {truth.last_error}")
    return " | ".join(parts)


class _Keys:
    """Key presses on a terminal (cbreak mode), or lines on a pipe."""

    def __init__(self) -> None:
        self.tty = sys.stdin.isatty()
        self._saved = None
        self._buffer = ""
        self.closed = False
        if self.tty:
            import termios
            import tty

            fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)

    def restore(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def poll(self, timeout_s: float) -> list[str]:
        """Commands typed since the last poll: ``"m"``, ``"m label"`` or ``"q"``."""
        if self.closed:
            time.sleep(timeout_s)
            return []
        try:
            ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
        except (OSError, ValueError):
            self.closed = True
            return []
        if not ready:
            return []
        data = os.read(sys.stdin.fileno(), 1024).decode(errors="replace")
        if not data:
            self.closed = True  # end of input: keep recording until told otherwise
            return []
        if self.tty:
            return [c for c in data.lower() if c in "mq"]
        self._buffer += data
        *lines, self._buffer = self._buffer.split("\n")
        return [line.strip() for line in lines if line.strip()]


def _session_name(args: argparse.Namespace) -> str:
    if not _NAME_RE.match(args.subject):
        raise ImucapError(f"--subject {args.subject!r}: use letters, digits, '_', '-' or '.'")
    name = args.name or f"{args.subject}_{dt.datetime.now():%Y%m%d-%H%M%S}"
    if not _NAME_RE.match(name):
        raise ImucapError(f"--name {name!r}: use letters, digits, '_', '-' or '.'")
    return name


def _out_dir(path: str) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ImucapError(f"--out {out} is a file: give a folder") from None
    except OSError as exc:
        raise ImucapError(f"cannot create the output folder {out} ({exc.strerror}): pick a "
                          f"writable place with --out") from None
    if not os.access(out, os.W_OK):
        raise ImucapError(f"the output folder {out} is not writable: pick another with --out")
    return out


def session_metadata(args: argparse.Namespace, device: Any, truth: Any) -> dict[str, Any]:
    """The ``imucap.session`` record: who, what hardware, which truth."""
    from imucap import __version__

    info = device.info
    meta: dict[str, Any] = {
        "subject": args.subject, "session": args.session_name,
        "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(), "imucap": __version__, "notes": args.notes,
        "device": {"uri": args.device, "name": device.name},
        "truth": truth.metadata() if truth is not None else None,
        "tap_site": args.tap_site,
    }
    if info is not None:
        meta["device"].update(
            chip=info.chip, firmware=info.firmware, device_id=f"{info.device_id:08x}",
            protocol=f"{info.proto_major}.{info.proto_minor}", rate_hz=info.rate_hz,
            accel_range_g=info.accel_range_g, gyro_range_dps=info.gyro_range_dps,
            mag_range_ut=info.mag_range_ut)
        meta["placement"] = _placement_json(tuple(info.sites))
    return meta


def _placement_json(sites: tuple[str, ...]) -> dict[str, Any] | None:
    """The device's sites placed on the built-in head (None for sites without a known
    position; ``dataset build --placement`` then takes a placement file)."""
    from imucap.datasets.builtin_rig import builtin_rig
    from imucap.datasets.placement import PlacementError, sites_placement

    try:
        return sites_placement(sites, builtin_rig(), name="device").to_json()
    except PlacementError:
        return None


def _calibrate(recorder: Any, args: argparse.Namespace, keys: _Keys, say: Any) -> None:
    from imucap.record.calibrate import CALIBRATION_METADATA, neutral_step, still_step

    def step(number: int, total: int, text: str, seconds: float) -> float:
        say(f"Calibration {number}/{total}: {text}")
        if keys.tty:
            say("  press Enter (or any key) to begin")
            while not keys.poll(0.2) and not keys.closed:
                pass
        else:
            say(f"  starting in 2 s, for {seconds:.0f} s")
            time.sleep(2.0)
        start = time.monotonic()
        recorder.event("calibration_step_started", start, step=text.split(":")[0])
        time.sleep(seconds)
        recorder.event("calibration_step_ended", time.monotonic(), step=text.split(":")[0])
        return start

    result: dict[str, Any] = {}
    t = step(1, 3, "still: keep your head and face completely still", args.still_s)
    imu, _ = recorder.recent(t)
    try:
        result["still"] = still_step(imu)
    except ValueError as exc:
        raise ImucapError(f"calibration failed: {exc}; check the device") from None
    if not result["still"]["still"]:
        say("  you moved during the still step: the gyroscope bias may be off (stored anyway)")
    t = step(2, 3, "neutral: relax your face, look ahead, mouth closed", args.neutral_s)
    imu, truth = recorder.recent(t)
    result["neutral"] = neutral_step(imu, truth)
    if recorder.truth is not None and not result["neutral"]["truth_frames"]:
        say("  no face in the truth during the neutral step (stored without it)")
    say("Calibration 3/3: tap the chin sensor firmly three times, about a second apart")
    recorder.event("calibration_taps", time.monotonic())
    recorder.mark("taps")
    time.sleep(4.0)
    recorder.add_metadata(CALIBRATION_METADATA, result)
    say("Calibration stored; recording goes on.")


def run(args: argparse.Namespace) -> int:
    from imucap.devices import open_device
    from imucap.record.recorder import Recorder
    from imucap.record.session_file import SUFFIX, SessionWriter
    from imucap.truth import open_truth

    if args.duration is not None and args.duration <= 0:
        raise ImucapError(f"--duration must be positive, got {args.duration}")
    args.session_name = _session_name(args)
    out = _out_dir(args.out)
    path = out / f"{args.session_name}{SUFFIX}"
    if path.exists():
        raise ImucapError(f"{path} already exists: give another --name (imucap never "
                          f"overwrites a recording)")
    device = open_device(args.device)
    truth = None
    if args.truth is not None:
        truth = open_truth(args.truth, model_asset=args.model_asset,
                           camera_latency_s=None if args.camera_latency_ms is None else
                           args.camera_latency_ms / 1e3)
    say = _printer()
    with contextlib.ExitStack() as stack:
        if truth is not None:
            truth.open()  # a port in use fails here, before the device starts
            stack.callback(truth.close)
        device.connect()
        stack.callback(device.disconnect)
        writer = SessionWriter(path, session=session_metadata(args, device, truth),
                               sites=tuple(device.info.sites) if device.info else (),
                               fsync_interval_s=args.fsync_interval_s)
        recorder = Recorder(device, writer, truth=truth).start()
        say(f"recording {path} (m = marker, q or Ctrl-C = stop)")
        keys = _Keys()
        stopped_by = "duration"
        try:
            if args.calibrate:
                _calibrate(recorder, args, keys, say)
            stopped_by = _loop(recorder, args, keys, say)
        except KeyboardInterrupt:
            stopped_by = "Ctrl-C"
        finally:
            keys.restore()
            recorder.stop()
        return _finish(recorder, writer, args, say, stopped_by)


def _printer() -> Any:
    def say(text: str) -> None:
        sys.stderr.write(("\r\x1b[2K" if sys.stderr.isatty() else "") + text + "\n")
        sys.stderr.flush()
    return say


def live_sync(recorder: Any, seconds: float = 30.0) -> None:
    """Align the last ``seconds`` of truth to the IMUs, for the panel's sync residual.

    Uses the live clock mappings; the stored result is computed after the recording, over the
    whole session. Leaves the residual as it was when there is too little to go on.
    """
    import numpy as np

    from imucap.sync.align import AlignmentError, align_truth

    imu, truth = recorder.recent(time.monotonic() - seconds)
    faces = [f for f in truth if f.weights is not None]
    if len(imu) < 50 or len(faces) < 60 or not recorder.truth_clock.ready:
        return
    t = np.concatenate([f.host_time_s for f in imu])
    order = np.argsort(t, kind="stable")
    source_us = np.array([round(f.source_time_s * 1e6) for f in faces], np.int64)
    truth_t = recorder.truth_clock.to_host(source_us)
    weights = np.stack([f.weights for f in faces])
    try:
        result = align_truth(t[order], np.concatenate([f.accel for f in imu])[order],
                             np.concatenate([f.gyro for f in imu])[order], truth_t, weights,
                             search_s=0.5)
    except AlignmentError:
        return
    recorder.sync_residual_ms = float(result.residual_ms)


def _loop(recorder: Any, args: argparse.Namespace, keys: _Keys, say: Any) -> str:
    import threading

    start = time.monotonic()
    tty = sys.stderr.isatty()
    next_line = start
    next_sync = start + 20.0
    sync_thread: threading.Thread | None = None
    while True:
        now = time.monotonic()
        if recorder.truth is not None and now >= next_sync and \
                (sync_thread is None or not sync_thread.is_alive()):
            sync_thread = threading.Thread(target=live_sync, args=(recorder,), daemon=True,
                                           name="imucap-live-sync")
            sync_thread.start()
            next_sync = now + 10.0
        for command in keys.poll(0.1):
            verb, _, label = command.partition(" ")
            if verb == "q":
                return "q"
            if verb == "m":
                index = recorder.mark(label.strip())
                say(f"marker {index} {label.strip()}".rstrip())
        status = recorder.status()
        if status.error:
            return "error"
        now = time.monotonic()
        if now >= next_line:
            line = panel_line(status)
            if tty:
                sys.stderr.write("\r\x1b[2K" + line[:os.get_terminal_size(2).columns - 1])
                sys.stderr.flush()
                next_line = now + 0.5
            else:
                say(line)
                next_line = now + 5.0
        if args.duration is not None and now - start >= args.duration:
            return "duration"


def _finish(recorder: Any, writer: Any, args: argparse.Namespace, say: Any,
            stopped_by: str) -> int:
    from imucap.record.session_file import read_session
    from imucap.sync.session_sync import SYNC_METADATA, synchronise

    status = recorder.status()
    if recorder.error:
        if not writer.closed:  # an internal error: the file itself is fine, close it
            with contextlib.suppress(ImucapError):
                writer.close()
        raise ImucapError(recorder.error)
    say(f"stopped ({stopped_by}) after {status.elapsed_s:.1f} s: {status.imu_samples} IMU "
        f"samples, {status.truth_frames} truth frames, {status.markers} markers")
    try:
        contents = read_session(writer.path)
        sync = synchronise(contents, tap_site=args.tap_site)
        writer.add_metadata(SYNC_METADATA, sync.to_json())
        writer.close()
    except ImucapError as exc:
        with contextlib.suppress(ImucapError):
            writer.close()
        raise ImucapError(f"{exc} (the recording itself is saved in {writer.path})") from None
    say(sync_summary(sync))
    print(writer.path)
    return 0


def sync_summary(sync: Any) -> str:
    """What the synchronisation found, in one or two lines."""
    lines = []
    for boot, fit in sync.imu_clocks.items():
        lines.append(f"IMU clock (boot {boot:08x}): offset {fit.offset_s:+.6f} s, drift "
                     f"{fit.drift_ppm:+.1f} ppm from {fit.source}")
    if sync.truth_clock is not None and sync.truth_clock.source != "none":
        lines.append(f"truth clock: drift {sync.truth_clock.drift_ppm:+.1f} ppm from arrivals")
    if sync.alignment is not None:
        a = sync.alignment
        lines.append(f"alignment ({a['method']}): truth shifted {a['offset_s'] * 1e3:+.1f} ms, "
                     f"residual {a['residual_ms']:.2f} ms")
    elif sync.alignment_error:
        lines.append(f"alignment not done: {sync.alignment_error}")
    return "\n".join(lines)
