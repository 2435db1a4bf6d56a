"""``imucap render``: a session or take to MP4 and/or PNG frames, without a display."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from imucap.errors import ImucapError

_EPILOG = """\
INPUT is what imucap convert reads:
  a dataset folder        with --session ID: truth beside the model's prediction, the error
                          coloured on the prediction, the sensors with their vectors
  a session file          sessions/<id>.npz inside a dataset folder (the same)
  a recording             a .mcap file from imucap record (the same, streams synchronised)
  a blendshape take       Live Link Face CSV, blendshape CSV, imucap JSON or animated .glb:
                          one face (or beside --prediction TRACK)

Rendering needs no display and no GPU (Open3D draws offscreen with Mesa). MP4 needs ffmpeg:
the [viewer] extra installs one (imageio-ffmpeg), or set IMUCAP_FFMPEG.

examples:
  imucap render data/synth --session s000_00 -o s000.mp4
  imucap render take.csv -o take.mp4 --rig avatar.glb --size 1280x720
  imucap render data/synth --session s000_00 --png-dir frames/ --start 2 --end 4
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="render a session or take to MP4 or PNG frames (no display needed)",
        description="Draw the face (truth beside prediction for sessions), the AU bars, the "
                    "sensors and a timeline into a video or a folder of PNG images.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_options(p)
    p.add_argument("-o", "--output", default=None, metavar="CLIP.mp4",
                   help="MP4 video to write")
    p.add_argument("--png-dir", default=None, metavar="DIR",
                   help="also (or instead) write frame_00000.png, ... into DIR")
    p.add_argument("--size", default="960x540", metavar="WxH",
                   help="frame size in pixels, even numbers (default 960x540)")
    p.add_argument("--no-aus", action="store_true", help="leave out the AU bars")
    p.set_defaults(run=run)


def add_input_options(p: argparse.ArgumentParser) -> None:
    """The options ``render`` and ``view session`` share."""
    p.add_argument("input", metavar="INPUT",
                   help="dataset folder, session file, recording (.mcap) or take")
    p.add_argument("--session", default=None, metavar="ID",
                   help="the session of a dataset folder to show")
    p.add_argument("--model", default=None, metavar="CKPT",
                   help="checkpoint for the prediction ('default': the shipped model)")
    p.add_argument("--prediction", default=None, metavar="TRACK",
                   help="show this track (CSV/JSON/glTF, e.g. from imucap convert) as the "
                        "prediction instead of running the model")
    p.add_argument("--no-model", action="store_true",
                   help="sessions: show the truth alone (no model run)")
    p.add_argument("--rig", default=None, metavar="PATH",
                   help="face to show (.glb/.gltf/.vrm, or a folder/zip of OBJ targets); the "
                        "built-in head by default")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model's sampling noise")
    p.add_argument("--start", type=float, default=None, metavar="S",
                   help="first second to show (from the start of the input)")
    p.add_argument("--end", type=float, default=None, metavar="S", help="last second to show")


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not m:
        raise ImucapError(f"--size {text!r}: give WIDTHxHEIGHT, such as 960x540")
    w, h = int(m.group(1)), int(m.group(2))
    if not (64 <= w <= 7680 and 64 <= h <= 4320):
        raise ImucapError(f"--size {w}x{h}: each side must be 64 to 7680 pixels")
    if w % 2 or h % 2:
        raise ImucapError(f"--size {w}x{h}: video needs even sides, e.g. {w + w % 2}x"
                          f"{h + h % 2}")
    return w, h


def load_rig_arg(path: str | None):  # noqa: ANN201 - a Rig
    """The rig named by ``--rig`` (a note lists targets it lacks), or the built-in head."""
    if path is None:
        from imucap.datasets.builtin_rig import builtin_rig

        return builtin_rig()
    from imucap.datasets.rig_io import load_rig_with_report

    loaded = load_rig_with_report(path)
    if loaded.rig.missing:
        print(f"imucap: note: {loaded.report.summary()}", file=sys.stderr)
    return loaded.rig


def load_input(args: argparse.Namespace):  # noqa: ANN201 - a Playback
    from imucap.viewers.playback import load_playback

    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise ImucapError(f"--steps must be between 1 and 1000, got {args.steps}")
    if args.start is not None and args.end is not None and args.end < args.start:
        raise ImucapError(f"--end {args.end:g} must not come before --start {args.start:g}")
    if args.no_model and (args.prediction or args.model):
        raise ImucapError("--no-model shows the truth alone; leave out --model/--prediction")
    return load_playback(args.input, fps=args.fps, session=args.session, model=args.model,
                         prediction=args.prediction, no_model=args.no_model, steps=args.steps,
                         seed=args.seed, start_s=args.start, end_s=args.end)


def run(args: argparse.Namespace) -> int:
    from imucap.export.base import check_output_path

    if args.output is None and args.png_dir is None:
        raise ImucapError("say where to render: -o clip.mp4 and/or --png-dir DIR")
    if args.output is not None:
        if Path(args.output).suffix.lower() != ".mp4":
            raise ImucapError(f"{args.output}: imucap render writes .mp4 video (or PNG frames "
                              f"with --png-dir)")
        check_output_path(args.output)
    width, height = parse_size(args.size)
    from imucap.viewers.offscreen import import_open3d
    from imucap.viewers.video import Mp4Writer, PngWriter, find_ffmpeg

    # Everything that can fail fails before the input is loaded (a model run can take minutes).
    import_open3d()
    if args.output is not None:
        find_ffmpeg()
    writers: list = [PngWriter(args.png_dir)] if args.png_dir is not None else []
    rig = load_rig_arg(args.rig)
    playback = load_input(args)
    from imucap.viewers.render import PlaybackFrames, Progress, render_playback

    if args.output is not None:
        writers.append(Mp4Writer(args.output, width, height, playback.fps))
    frames = PlaybackFrames(playback, rig, width, height, au_panel=not args.no_aus)
    start = time.perf_counter()
    progress = Progress(len(playback))
    try:
        n = render_playback(frames, writers, progress=progress.update)
    except KeyboardInterrupt:
        print("imucap: render interrupted; nothing written to the video", file=sys.stderr)
        return 130
    finally:
        frames.close()
    wall = time.perf_counter() - start
    where = " and ".join(str(p) for p in ([args.output] if args.output else [])
                         + ([f"{args.png_dir}/"] if args.png_dir else []))
    print(f"wrote {where}: {n} frames {width}x{height} at {playback.fps:g} fps "
          f"({n / playback.fps:.1f} s) in {wall:.1f} s, {n / max(wall, 1e-9):.1f} frames/s")
    return 0
