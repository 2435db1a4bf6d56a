"""``imucap stream``: open a device by URI and show its live frames and link health."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import deque
from typing import TextIO

from imucap.devices import open_device
from imucap.errors import ImucapError

from .live_table import SignalWindow, render, status_line


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream", help="stream a device (or speech: --speech) and show live rates, loss and "
                       "signals; --to drives live sinks",
        description="Stream frames from a device. URIs: serial:/dev/ttyACM0, serial:VID:PID, "
                    "tcp://HOST:PORT, ble:NAME_OR_ADDRESS, udp://0.0.0.0:9000[?device_id=ID], "
                    "array:left=URI,right=URI, replay:SESSION.mcap, "
                    "emulator:[PRESET][?drop=0.01&corrupt=0.01&...].")
    p.add_argument("--device", default=None, metavar="URI",
                   help="device URI, for example serial:/dev/ttyACM0 or emulator:imusic11")
    p.add_argument("--speech", default=None, metavar="SOURCE",
                   help="instead of a device: speech from 'mic' (the default microphone), "
                        "'mic:N' (device N; needs the [mic] extra) or a sound file played in "
                        "real time, through the speech model (--model: a speech checkpoint)")
    p.add_argument("--lookahead-ms", type=float, default=80.0, metavar="MS",
                   help="--speech: audio the model hears after each frame it outputs "
                        "(default 80, rounded to whole 60 Hz frames; less is sooner and "
                        "rougher)")
    p.add_argument("--speech-hop", type=int, default=2, metavar="FRAMES",
                   help="--speech: output frames per model run (default 2)")
    p.add_argument("--print", dest="show", action="store_true",
                   help="show a live table (a status line per second when not on a terminal)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--rate-hz", type=int, default=None, help="ask the device for this rate")
    p.add_argument("--model", default=None, metavar="CKPT",
                   help="run a model on the stream: a checkpoint folder or 'default' (the "
                        "shipped one; implied by --to)")
    p.add_argument("--to", action="append", default=[], metavar="URI",
                   help="send the face frames to livelink://HOST:PORT (Unreal Live Link Face), "
                        "vmc://HOST:PORT (VSeeFace and other VMC receivers) or lsl[://NAME] "
                        "(Lab Streaming Layer); repeat for several")
    p.add_argument("--fps", type=float, default=60.0, help="output frame rate of the model")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps per frame")
    p.add_argument("--smooth-ms", type=float, default=None, metavar="MS",
                   help="sigma of the model's output filter (default: the checkpoint's, 50 for "
                        "the shipped model; 0 for none)")
    p.add_argument("--expression", action="store_true",
                   help="show the basic expression the face reads as, with its confidence and "
                        "AU evidence, on stderr (runs the model; see imucap expression)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.speech is not None:
        if args.device is not None:
            raise ImucapError("give either --device or --speech, not both")
        from .speech_stream import run_speech_stream

        return run_speech_stream(args)
    if args.device is None:
        raise ImucapError("nothing to stream: give --device URI (a sensor array) or --speech "
                          "SOURCE (a microphone or sound file)")
    if args.model is not None or args.to or args.expression:
        return run_face(args)
    if not args.show:
        raise ImucapError("nothing to show: add --print to see the live stream, or --to URI "
                          "to drive an animation tool")
    if args.duration is not None and args.duration <= 0:
        raise ImucapError(f"--duration must be positive, got {args.duration}")
    device = open_device(args.device)
    if args.rate_hz is not None:
        device.config.rate_hz = args.rate_hz
    tty = sys.stdout.isatty()
    window = SignalWindow(1.0)
    injected = getattr(device, "injected", None)
    device.connect()
    start = time.monotonic()
    next_draw = start
    interrupted = False
    try:
        while args.duration is None or time.monotonic() - start < args.duration:
            try:
                window.add(device.read(timeout_s=0.1))
            except TimeoutError:
                pass
            now = time.monotonic()
            if now >= next_draw:
                stats = device.stats()
                if tty:
                    table = render(device.name, device.info, stats, window, now - start,
                                   injected, _parts(device))
                    sys.stdout.write("\x1b[H\x1b[J" + table + "\n")
                    sys.stdout.flush()
                    next_draw = now + 0.5
                else:
                    print(status_line(stats, now - start), flush=True)
                    next_draw = now + 1.0
    except KeyboardInterrupt:
        interrupted = True
    finally:
        device.disconnect()
    stats = device.stats()
    print(render(device.name, device.info, stats, window, time.monotonic() - start, injected,
                 _parts(device)))
    return 130 if interrupted else 0


def _parts(device: object) -> dict | None:
    """An array's parts' statistics (None for a single device)."""
    part_stats = getattr(device, "part_stats", None)
    return part_stats() if part_stats is not None else None


class ExpressionPanel:
    """The live expression readout of ``stream --expression``, on stderr.

    Face frames go through an :class:`~imucap.analysis.expressions.ExpressionTracker`, which
    smooths the AUs and holds a label until another one clearly takes over. What is shown
    depends on the stream. On a terminal, one line is rewritten in place, at most
    ``1 / PERIOD_S`` (5) times a second; the status line printed on stdout every second
    clears it first and redraws it after. Elsewhere (a log file, a pipe) a line with the time
    is printed each time the expression changes, also at most 5 times a second, so a log reads
    as a list of episodes.

    Args:
        rate_hz: Rate of the face frames.
        stream: Where to write (default stderr).
    """

    PERIOD_S = 0.2

    def __init__(self, rate_hz: float, stream: TextIO | None = None) -> None:
        from imucap.analysis.expressions import ExpressionTracker

        self.tracker = ExpressionTracker(rate_hz)
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if isatty is not None else False
        self._next = float("-inf")
        self._drawn = ""
        self._logged: str | None = None

    def add(self, frame: object) -> None:
        """Feeds one :class:`~imucap.inference.engine.FaceFrame`. A frame with no usable sensor
        (confidence 0) counts as a frame without a face."""
        import numpy as np

        from imucap.vocab import au_intensities

        weights = np.asarray(frame.weights, dtype=np.float64)
        if frame.confidence <= 0:
            self.tracker.update(np.full(18, np.nan))
            return
        aus = frame.aus if frame.aus is not None else au_intensities(weights)
        self.tracker.update(aus, weights)

    def text(self) -> str:
        """The line shown now: ``expression  happiness 0.86: AU6 cheek raiser 2.1, ...``."""
        line = self.tracker.line()
        return f"expression  {line}" if line else ""

    def draw(self, now: float, elapsed_s: float, *, force: bool = False) -> None:
        """Shows the readout if ``PERIOD_S`` has passed since the last time (or ``force``)."""
        if now < self._next and not force:
            return
        self._next = now + self.PERIOD_S
        text = self.text()
        if not text:
            return
        if self.tty:
            width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
            self.stream.write("\r\x1b[K" + text[:width])
            self.stream.flush()
            self._drawn = text
        elif self.tracker.label != self._logged:
            self._logged = self.tracker.label
            print(f"{elapsed_s:6.1f} s  {text}", file=self.stream, flush=True)

    def clear(self) -> None:
        """Removes the in-place line (terminal only) so that another line can be printed."""
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        """Ends the in-place line (terminal only), leaving the last readout visible."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = ""


def run_face(args: argparse.Namespace) -> int:
    """Device → streaming engine → sinks, with a status line of rates and latency."""
    import numpy as np

    try:
        from imucap.inference.engine import EngineConfig, StreamingEngine
        from imucap.models.pretrained import resolve_checkpoint
    except ImportError:
        raise ImucapError("running a model needs the [train] extra (PyTorch): pip install "
                          "'imucap[train]'") from None
    from imucap.sinks.fanout import FanOut
    from imucap.sinks.uri import sink_from_uri

    if args.duration is not None and args.duration <= 0:
        raise ImucapError(f"--duration must be positive, got {args.duration}")
    if not 1 <= args.fps <= 240:
        raise ImucapError(f"--fps must be between 1 and 240, got {args.fps:g}")
    sinks = [sink_from_uri(uri, rate_hz=args.fps) for uri in args.to]  # bad URIs fail here
    from imucap.models.checkpoint import load_checkpoint

    # Load the model (and PyTorch) before the device starts streaming, so no backlog of IMU
    # frames builds up while it loads.
    checkpoint = load_checkpoint(resolve_checkpoint(args.model))
    device = open_device(args.device)
    if args.rate_hz is not None:
        device.config.rate_hz = args.rate_hz
    device.connect()
    fan = None
    try:
        info = device.info
        config = EngineConfig(output_rate_hz=args.fps)
        if args.steps is not None:
            config.steps = args.steps
        if args.smooth_ms is not None:
            config.smoothing_s = args.smooth_ms / 1000.0
        engine = StreamingEngine(checkpoint, tuple(info.sites), config,
                                 accel_range_g=info.accel_range_g,
                                 gyro_range_dps=info.gyro_range_dps)
        fan = FanOut(sinks, rate_hz=args.fps).open() if sinks else None
        for name, reason in (fan.stats().failed.items() if fan else ()):
            print(f"imucap: {name} left out: {reason}", file=sys.stderr, flush=True)
        panel = ExpressionPanel(args.fps) if args.expression else None
        start = time.monotonic()
        next_draw = start + 1.0
        out, last_out = 0, 0
        latencies: deque[float] = deque(maxlen=600)  # the last 10 s at 60 Hz
        last: object = None
        while args.duration is None or time.monotonic() - start < args.duration:
            try:
                engine.push(device.read(timeout_s=0.1))
            except TimeoutError:
                pass
            for frame in engine.pull():
                if fan is not None:
                    fan.send(frame)
                out += 1
                last = frame
                latencies.append(frame.latency_s)
                if panel is not None:
                    panel.add(frame)
            now = time.monotonic()
            if panel is not None:
                panel.draw(now, now - start)
            if now >= next_draw:
                lat = np.array(latencies or [0.0]) * 1e3
                runs = np.array(list(engine.run_times_s)[-600:] or [0.0]) * 1e3
                line = (f"{now - start:6.1f} s  face {out - last_out:3d} frames/s  latency "
                        f"p50 {np.percentile(lat, 50):5.1f} ms p99 {np.percentile(lat, 99):5.1f}"
                        f" ms  model p99 {np.percentile(runs, 99):5.1f} ms")
                if last is not None:
                    line += f"  confidence {last.confidence:.2f}"
                    flags = sorted(last.flags)
                    if flags:
                        line += f"  [{', '.join(flags)}]"
                if fan is not None:
                    for name, st in fan.stats().sinks.items():
                        line += f"  {name}: {st.frames_sent} sent"
                        if st.frames_dropped or st.errors:
                            line += f", {st.frames_dropped} dropped, {st.errors} errors"
                if panel is not None:
                    panel.clear()
                print(line, flush=True)
                if panel is not None:
                    panel.draw(now, now - start, force=True)
                last_out = out
                next_draw = now + 1.0
    except KeyboardInterrupt:
        return 130
    finally:
        if panel is not None:
            panel.close()
        if fan is not None:
            fan.close()
        device.disconnect()
    if fan is not None:
        for name, st in fan.stats().sinks.items():
            err = f", last error: {st.last_error}" if st.last_error else ""
            print(f"{name}: {st.frames_sent} frames sent, {st.frames_dropped} dropped, "
                  f"{st.errors} errors{err}")
    print(f"{out} face frames in {time.monotonic() - start:.1f} s")
    return 0
