"""``imucap view``: interactive Open3D windows for live faces, sessions and sensor placements."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from imucap.errors import ImucapError

from .render_cmd import add_input_options, load_input, load_rig_arg, parse_size

_EPILOG = """\
examples:
  imucap view live --device emulator:imusic11          the shipped model on the emulator
  imucap view live --device serial:/dev/ttyACM0 --no-model    sensors only, no model
  imucap view live --from livelink://:11111            an iPhone running Live Link Face
  imucap view session data/synth --session s000_00     truth beside prediction, timeline
  imucap view placement imusic11                       where the sensors sit, with axes

In the window: drag to orbit, wheel to zoom, double-click to reset the view; for sessions
space plays or pauses and the arrow keys step a frame. Esc or q closes it. Without a
display, use imucap render.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="open a viewer window (live face, session, placement)",
                       description="Interactive Open3D viewers (the [viewer] extra).",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    views = p.add_subparsers(dest="view", metavar="WHAT")
    views.required = True

    live = views.add_parser("live", help="a device through the model, or Live Link packets",
                            description="The face moving in real time, the AU bars, and the "
                                        "sensors with their acceleration (orange) and rotation "
                                        "rate (blue).")
    src = live.add_mutually_exclusive_group(required=True)
    src.add_argument("--device", metavar="URI", help="IMU device URI (see imucap devices)")
    src.add_argument("--from", dest="source", metavar="livelink://[HOST]:PORT",
                     help="show Live Link Face packets arriving on this UDP port")
    live.add_argument("--model", default="default", metavar="CKPT",
                      help="checkpoint for --device (default: the shipped model)")
    live.add_argument("--no-model", action="store_true",
                      help="--device: show the sensors only, on a still face")
    live.add_argument("--steps", type=int, default=None, help="DDIM steps (default: model's)")
    live.add_argument("--rate-hz", type=float, default=None, help="ask the device for this rate")
    live.add_argument("--rig", default=None, metavar="PATH", help="face to show it on")
    _window_options(live, fps=30.0)
    live.set_defaults(run=run_live)

    session = views.add_parser("session", help="play a session or take with a timeline",
                               description="Truth and prediction side by side with the error "
                                           "coloured on the prediction; play, pause, scrub, "
                                           "speed.")
    add_input_options(session)
    _window_options(session, fps=30.0)
    session.set_defaults(run=run_session)

    placement = views.add_parser("placement", help="where each sensor sits, with its axes",
                                 description="The sensor sites of a preset or placement file "
                                             "on the face, with each sensor's axes (x red, y "
                                             "green, z blue, out of the skin).")
    placement.add_argument("placement", metavar="PRESET_OR_FILE",
                           help="a preset name (imusic11, ...) or a placement .json")
    placement.add_argument("--rig", default=None, metavar="PATH", help="face to place them on")
    _window_options(placement, fps=10.0)
    placement.set_defaults(run=run_placement)


def _window_options(p: argparse.ArgumentParser, *, fps: float) -> None:
    p.add_argument("--size", default="1280x720", metavar="WxH", help="picture size")
    p.add_argument("--quit-after", type=float, default=None, metavar="S",
                   help="close the window after S seconds (demos, scripted checks)")
    p.set_defaults(window_fps=fps)


def _window(args: argparse.Namespace, title: str, scene, next_frame, **kw):  # noqa: ANN001, ANN202
    from imucap.viewers.window import FaceWindow

    return FaceWindow(title, scene, next_frame, fps=args.window_fps,
                      size=parse_size(args.size), quit_after_s=args.quit_after, **kw)


def _check_display(what: str) -> None:
    from imucap.viewers.offscreen import import_open3d
    from imucap.viewers.window import require_display

    require_display(what)
    import_open3d()


def run_session(args: argparse.Namespace) -> int:
    _check_display("session")
    from imucap.viewers.look import FaceLook
    from imucap.viewers.render import PlaybackView
    from imucap.viewers.window import PlaybackClock, WindowFrame

    rig = load_rig_arg(args.rig)
    playback = load_input(args)
    view = PlaybackView(playback, FaceLook(rig))
    times = playback.times
    clock = PlaybackClock(float(times[-1]), start_s=float(times[0]))
    last = [-1]
    no_x = [0.0] * len(playback.titles)  # the window places the titles

    def next_frame() -> WindowFrame | None:
        pos = clock.tick(time.monotonic())
        i = int(np.clip(np.searchsorted(times, pos - 0.5 / playback.fps), 0, len(times) - 1))
        if i == last[0]:
            return None
        last[0] = i
        speed = f"{clock.speed:g}x" + ("" if clock.playing else " paused")
        return WindowFrame(view.states(i), view.overlay(i, no_x, speed))

    window = _window(args, f"imucap - {playback.source}", view.scene, next_frame,
                     timeline=clock, step_s=1.0 / playback.fps)
    n = window.run()
    print(f"showed {n} frames of {playback.source}")
    return 0


def run_live(args: argparse.Namespace) -> int:
    _check_display("live")
    from imucap.viewers.glyphs import SiteGlyphs
    from imucap.viewers.live import DeviceLive, LiveLinkLive
    from imucap.viewers.look import FaceLook
    from imucap.viewers.overlay import OverlayState
    from imucap.viewers.scene import PanelState, Scene
    from imucap.viewers.window import WindowFrame

    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise ImucapError(f"--steps must be between 1 and 1000, got {args.steps}")
    rig = load_rig_arg(args.rig)
    look = FaceLook(rig)
    if args.device is not None:
        source = DeviceLive(args.device, model=None if args.no_model else args.model,
                            steps=args.steps, rate_hz=args.rate_hz)
        title = args.device
    else:
        source = LiveLinkLive(args.source)
        title = args.source
    source.start()
    try:
        glyphs = None
        if source.sites:
            from imucap.datasets.placement import PlacementError, sites_placement

            try:
                glyphs = SiteGlyphs(look, sites_placement(source.sites, rig).attach(rig))
            except PlacementError as exc:
                print(f"imucap: note: sensors not shown: {exc}", file=sys.stderr)
        scene = Scene(look, 1, glyphs=glyphs)

        def next_frame() -> WindowFrame:
            st = source.latest()
            return WindowFrame([PanelState(st.weights, accel=st.accel, gyro=st.gyro)],
                               OverlayState(aus=st.aus, time_s=st.time_s, status=st.status))

        window = _window(args, f"imucap - live - {title}", scene, next_frame)
        n = window.run()
    finally:
        source.stop()
    print(f"showed {n} live frames from {title}")
    return 0


def run_placement(args: argparse.Namespace) -> int:
    _check_display("placement")
    from imucap.datasets.placement import PRESETS, Placement, preset
    from imucap.viewers.glyphs import SiteGlyphs
    from imucap.viewers.look import FaceLook
    from imucap.viewers.overlay import OverlayState
    from imucap.viewers.scene import PanelState, Scene
    from imucap.viewers.window import WindowFrame

    rig = load_rig_arg(args.rig)
    if args.placement in PRESETS:
        placement = preset(args.placement, rig)
    elif args.placement.lower().endswith(".json"):
        placement = Placement.load(args.placement)
    else:
        raise ImucapError(f"{args.placement} is neither a placement preset ({', '.join(PRESETS)})"
                          f" nor a placement .json file")
    look = FaceLook(rig)
    scene = Scene(look, 1, glyphs=SiteGlyphs(look, placement.attach(rig), axes=True,
                                              vectors=False))
    sent = [False]

    def next_frame() -> WindowFrame | None:
        if sent[0]:
            return None
        sent[0] = True
        return WindowFrame([PanelState(np.zeros(52, np.float32))], OverlayState(
            status=f"{placement.name}: {len(placement.sites)} sensors  (axes: x red, y green, "
                   f"z blue, out of the skin)"))

    window = _window(args, f"imucap - placement {placement.name}", scene, next_frame,
                     site_labels=tuple(placement.sites), au_panel=False)
    window.run()
    for name, point in zip(placement.sites, placement.points, strict=True):
        print(f"{name:24s} x {point[0] * 100:6.2f} cm  y {point[1] * 100:6.2f} cm  "
              f"z {point[2] * 100:6.2f} cm")
    return 0
