"""``imucap emulate``: serve a virtual face-IMU array on a serial-port path or a socket."""

from __future__ import annotations

import argparse
import shlex
import time

from imucap.errors import ImucapError
from imucap.firmware_bridge.emulator import (
    DatagramFaults,
    EmulatedArray,
    EmulatorConfig,
    FaultConfig,
    PtyRunner,
    SyntheticMotion,
    TcpRunner,
    UdpRunner,
)
from imucap.firmware_bridge.sites import site_preset


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulate", help="serve a virtual sensor array on a pseudo-terminal or a socket",
        description="Serve an emulated face-IMU array speaking protocol v1, for development "
                    "without hardware. By default on a pseudo-terminal (a serial-port path).")
    p.add_argument("--sites", default="imusic11",
                   help="site preset: imusic11, imusic11+head, face6, face4 (default imusic11)")
    p.add_argument("--sensors", type=int, default=None, help="N generic sensors instead (1-16)")
    p.add_argument("--rate-hz", type=int, default=100, help="output rate, 1 to 1000 Hz")
    p.add_argument("--samples-per-frame", type=int, default=0,
                   help="samples per frame (0: about 100 frames/s)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pty", metavar="PATH", default=None,
                       help="serial-port path to create (a link to a pseudo-terminal)")
    where.add_argument("--tcp", metavar="HOST:PORT", default=None, help="serve over TCP")
    where.add_argument("--udp", metavar="HOST:PORT", default=None,
                       help="serve over UDP, waiting to be contacted (udp://…?peer=HOST:PORT)")
    where.add_argument("--udp-to", metavar="HOST:PORT", default=None,
                       help="send UDP to a host like a Wi-Fi board: announce there once a "
                            "second until it answers (read with udp://0.0.0.0:PORT)")
    p.add_argument("--device-id", default=None, metavar="ID",
                   help="board id in DEVICE_INFO, e.g. 0x2 (tell two emulators apart)")
    p.add_argument("--seed", type=int, default=0, help="seed of the motion and the faults")
    p.add_argument("--clock-drift-ppm", type=float, default=0.0,
                   help="make the device clock run fast (or slow) by this much")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S s")
    ph = p.add_argument_group("an emulated iPhone (Live Link Face) filming the same face")
    ph.add_argument("--phone", default=None, metavar="livelink://HOST:PORT",
                    help="also send the face the sensors feel as Live Link Face packets, as "
                         "an iPhone would (try `imucap record --truth livelink://:PORT`)")
    ph.add_argument("--phone-latency-ms", type=float, default=60.0,
                    help="delay from the face moving to the packet leaving")
    ph.add_argument("--phone-drift-ppm", type=float, default=0.0,
                    help="make the phone's clock run fast (or slow) by this much")
    ph.add_argument("--phone-jitter-ms", type=float, default=3.0, help="mean extra delay")
    ph.add_argument("--taps-every", type=float, default=0.0, metavar="S",
                    help="the wearer taps the chin sensor every S seconds, from 3 s in "
                         "(the alignment event)")
    f = p.add_argument_group("faults (each off by default)")
    f.add_argument("--drop", type=float, default=0.0, help="chance a frame is lost")
    f.add_argument("--corrupt", type=float, default=0.0, help="chance a frame has a bad byte")
    f.add_argument("--garbage", type=float, default=0.0,
                   help="chance random bytes follow a frame")
    f.add_argument("--unknown", type=float, default=0.0,
                   help="chance a message of an unknown type follows a frame")
    f.add_argument("--stall-every", type=float, default=0.0, metavar="S",
                   help="mean seconds between stalls")
    f.add_argument("--stall-s", type=float, default=0.5, help="stall length")
    f.add_argument("--disconnect-every", type=float, default=0.0, metavar="S",
                   help="mean seconds between disconnects")
    f.add_argument("--disconnect-s", type=float, default=1.0, help="time away when disconnected")
    f.add_argument("--udp-loss", type=float, default=0.0, help="chance a datagram is lost")
    f.add_argument("--udp-duplicate", type=float, default=0.0,
                   help="chance a datagram arrives twice")
    f.add_argument("--udp-reorder", type=float, default=0.0,
                   help="chance a datagram arrives after the next one")
    p.set_defaults(run=run)


def _host_port(text: str, flag: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ImucapError(f"{flag} needs HOST:PORT, got {text!r}")
    return host, int(port)


def _free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def _phone(args: argparse.Namespace, array: EmulatedArray) -> object:
    """The emulated phone: what it films is what the array's sensors feel at that moment."""
    import numpy as np

    from imucap.truth.emulated_phone import EmulatedPhone
    from imucap.truth.livelink import parse_livelink_uri

    host, port = parse_livelink_uri(args.phone, option="--phone")
    motion = array.motion
    if not hasattr(motion, "blendshapes"):
        raise ImucapError("--phone needs the synthetic face motion")

    def face(host_s: float) -> np.ndarray:
        return motion.blendshapes(np.array([array.device_time_us(host_s) * 1e-6]))[0]

    return EmulatedPhone(face, host=host, port=port, latency_s=args.phone_latency_ms / 1e3,
                         clock_drift_ppm=args.phone_drift_ppm,
                         jitter_s=args.phone_jitter_ms / 1e3, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    try:
        sites = site_preset(f"sensors{args.sensors}" if args.sensors else args.sites)
    except ValueError as exc:
        raise ImucapError(str(exc)) from None
    try:
        faults = FaultConfig(drop=args.drop, corrupt=args.corrupt, garbage=args.garbage,
                             unknown=args.unknown, stall_every_s=args.stall_every,
                             stall_s=args.stall_s, disconnect_every_s=args.disconnect_every,
                             disconnect_s=args.disconnect_s, seed=args.seed)
        ident = {} if args.device_id is None else {"device_id": int(args.device_id, 0)}
        config = EmulatorConfig(sites=sites, rate_hz=args.rate_hz,
                                samples_per_frame=args.samples_per_frame, seed=args.seed,
                                clock_drift_ppm=args.clock_drift_ppm, faults=faults, **ident)
        net = DatagramFaults(loss=args.udp_loss, duplicate=args.udp_duplicate,
                             reorder=args.udp_reorder, seed=args.seed)
    except ValueError as exc:
        raise ImucapError(str(exc)) from None
    motion = SyntheticMotion(sites, rate_hz=args.rate_hz, seed=args.seed,
                             smooth_onsets=True) if args.phone else None
    if args.taps_every < 0:
        raise ImucapError("--taps-every must not be negative")
    if args.taps_every:
        span_s = (args.duration or 7 * 86400.0) + 10.0
        taps = tuple(config.clock_offset_s + 3.0 + k * args.taps_every
                     for k in range(int(span_s / args.taps_every) + 1))
        motion = SyntheticMotion(sites, rate_hz=args.rate_hz, seed=args.seed, taps_s=taps,
                                 smooth_onsets=args.phone is not None)
    array = EmulatedArray(config, motion=motion)
    phone = _phone(args, array) if args.phone else None
    if args.tcp:
        runner = TcpRunner(array, *_host_port(args.tcp, "--tcp"))
    elif args.udp:
        runner = UdpRunner(array, *_host_port(args.udp, "--udp"), faults=net)
    elif args.udp_to:
        runner = UdpRunner(array, "0.0.0.0", 0, send_to=_host_port(args.udp_to, "--udp-to"),
                           faults=net)
    else:
        runner = PtyRunner(array, args.pty)
    try:
        runner.start()
    except OSError as exc:
        raise ImucapError(f"cannot serve the emulator: {exc.strerror or exc}") from None
    print(f"imucap emulator: {len(sites)} sensors at {args.rate_hz} Hz "
          f"({array.samples_per_frame} samples/frame), chip {config.chip}")
    if isinstance(runner, PtyRunner):
        uri = f"serial:{runner.port}"
        print(f"  serial port: {runner.port}")
    elif isinstance(runner, TcpRunner):
        uri = f"tcp://{runner.address[0]}:{runner.address[1]}"
        print(f"  TCP: {runner.address[0]}:{runner.address[1]}")
    elif runner.send_to is not None:
        host, port = runner.send_to
        uri = f"udp://0.0.0.0:{port}?device_id={config.device_id:#x}"
        print(f"  UDP: announcing board {config.device_id:#x} to {host}:{port} from port "
              f"{runner.address[1]}")
    else:
        host, port = runner.address
        uri = f"udp://0.0.0.0:{_free_udp_port()}?peer={host}:{port}"
        print(f"  UDP: {host}:{port}, waiting to be contacted (frames go to the last sender)")
    print(f"  read it with: imucap stream --device {shlex.quote(uri)} --print")
    if faults.any():
        print("  faults on: " + ", ".join(f"{k}={v}" for k, v in vars(faults).items()
                                          if v and k not in ("seed", "stall_s", "disconnect_s")))
    if phone is not None:
        phone.start()
        print(f"  emulated iPhone: Live Link Face to {args.phone} (latency "
              f"{args.phone_latency_ms:g} ms, clock drift {args.phone_drift_ppm:+g} ppm)")
    print("Ctrl-C stops.", flush=True)
    start = time.monotonic()
    try:
        while args.duration is None or time.monotonic() - start < args.duration:
            time.sleep(0.1)
            if runner.error is not None:
                raise ImucapError(f"the emulator stopped: {runner.error}")
    except KeyboardInterrupt:
        pass
    finally:
        if phone is not None:
            phone.stop()
        runner.stop()
    rep = array.report
    if isinstance(runner, UdpRunner) and (net.loss or net.duplicate or net.reorder):
        n = runner.net
        print(f"network: {n.datagrams} datagrams, lost {n.lost} ({n.frames_lost} frames), "
              f"duplicated {n.duplicated}, reordered {n.reordered}")
    print(f"sent {rep.frames_sent} intact frames ({rep.samples_sent} samples); injected: "
          f"dropped {rep.dropped_frames}, corrupted {rep.corrupted_frames}, garbage "
          f"{rep.garbage_chunks}, unknown {rep.unknown_messages}, stalls {rep.stalls}, "
          f"disconnects {rep.disconnects}")
    return 0
