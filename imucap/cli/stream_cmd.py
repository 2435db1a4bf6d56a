"""``imucap stream``: open a device by URI and show its live frames and link health."""

from __future__ import annotations

import argparse
import sys
import time

from imucap.devices import open_device
from imucap.errors import ImucapError

from .live_table import SignalWindow, render, status_line


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream", help="stream a device and show live rates, loss and signals",
        description="Stream frames from a device. URIs: serial:/dev/ttyACM0, serial:VID:PID, "
                    "tcp://HOST:PORT, emulator:[PRESET][?drop=0.01&corrupt=0.01&...].")
    p.add_argument("--device", required=True, metavar="URI",
                   help="device URI, for example serial:/dev/ttyACM0 or emulator:imusic11")
    p.add_argument("--print", dest="show", action="store_true",
                   help="show a live table (a status line per second when not on a terminal)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--rate-hz", type=int, default=None, help="ask the device for this rate")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.show:
        raise ImucapError("nothing to show: add --print to see the live stream")
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
                                   injected)
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
    print(render(device.name, device.info, stats, window, time.monotonic() - start, injected))
    return 130 if interrupted else 0
