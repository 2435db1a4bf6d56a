"""``imucap convert``: sessions (through the model) and blendshape takes to animation files."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from imucap.errors import ImucapError

_EPILOG = """\
INPUT is one of:
  a dataset folder        every session through the model, one output each with the session
                          id in its name (out.glb -> out_<id>.glb), or only --session ID
  a session file          sessions/<id>.npz inside a dataset folder
  a blendshape take       Live Link Face CSV, blendshape CSV, BEAT-style or imucap JSON, or an
                          animated .glb/.gltf: converted as it is, no model involved
  speech                  a sound file (WAV, FLAC, MP3, OGG, M4A, ...) or a video's sound
                          track, through the speech model (the shipped one, or --model)
  --text "..."            no INPUT: the words spoken by espeak-ng and animated by the viseme
                          model (--voice, --rate-wpm; --audio OUT.wav keeps the speech)

OUTPUT's extension picks the format:
  .csv      Live Link Face CSV (Timecode, BlendShapeCount, 61 values)
  .au.csv   OpenFace-style Action Unit CSV (or any .csv with --format au)
  .json     imucap face-track JSON (names, fps, times, weights, aus)
  .glb      the rig (built-in head, or --rig) with ARKit shape keys, animated
  .gltf     the same as glTF JSON with the buffer embedded
  .mp4      a rendered video (as imucap render INPUT -o OUTPUT; one session at a time)

examples:
  imucap convert data/synth --session s000_00 -o s000.glb
  imucap convert data/synth -o out/face.csv --model runs/imu2face/best
  imucap convert take.csv -o take.glb --rig avatar.glb
  imucap convert take.csv -o take.au.csv --au-head runs/au_head
  imucap convert speech.wav -o face.csv
  imucap convert interview.mp3 -o face.mp4            # the face, with the sound under it
  imucap convert --text "Pass the pepper, please." -o line.glb --audio line.wav
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert a session, take or speech to animation files (CSV, JSON, "
                        "glTF, MP4)",
        description="Turn a recorded or simulated session into a face track with the model, "
                    "speech (a sound file, or --text) into one with the speech model, or "
                    "convert a blendshape take between formats, and write files that animation "
                    "and analysis tools open.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", nargs="?", default=None,
                   help="dataset folder, session file, take or speech (sound file)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="file to write; its extension picks the format")
    p.add_argument("--format", default=None, dest="fmt",
                   choices=("livelink", "au", "json", "glb", "gltf"),
                   help="write this format whatever the extension says (au for a .csv)")
    p.add_argument("--model", default=None, metavar="CKPT",
                   help="checkpoint folder for sessions ('default': the shipped model)")
    p.add_argument("--rig", default=None, metavar="PATH",
                   help="rig for .glb/.gltf (.glb/.gltf, or a folder/zip of OBJ targets); "
                        "built-in head by default")
    p.add_argument("--fps", type=float, default=None,
                   help="sessions: output frame rate (default 60); Live Link CSV input: the "
                        "rate its timecodes count (default 60)")
    p.add_argument("--session", default=None, metavar="ID",
                   help="only this session of a dataset folder")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    p.add_argument("--hop", type=int, default=None, metavar="FRAMES",
                   help="output frames per model run (default 4; 1 runs the model every "
                        "frame as the live engine does: smoothest, about 4x slower)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model's sampling noise")
    p.add_argument("--smooth-ms", type=float, default=None, metavar="MS",
                   help="sessions: sigma of the model's output filter (default: the "
                        "checkpoint's, 50 for the shipped model; 0 for none)")
    p.add_argument("--au-head", default=None, metavar="DIR",
                   help="AUs from a head trained on your labels (imucap au-head train) instead "
                        "of the fixed mapping; used by .au.csv and .json output")
    p.add_argument("--no-aus", action="store_true",
                   help="do not write the Action Unit file beside a Live Link CSV or glTF "
                        "output (NAME.au.csv, OpenFace's columns); for .mp4, no AU panel")
    p.add_argument("--text", default=None, metavar="TEXT",
                   help="instead of INPUT: words to say, animated by the viseme model")
    p.add_argument("--voice", default="en-us",
                   help="--text: espeak-ng voice, with a variant after + (en-us, en+f2, ...)")
    p.add_argument("--rate-wpm", type=float, default=175.0, metavar="WPM",
                   help="--text: speaking rate in words per minute (default 175)")
    p.add_argument("--audio", default=None, metavar="OUT.wav",
                   help="--text: also write the synthesised speech")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: a model run on one window gains little "
                        "from more, and loses much when other work keeps the cores busy; 0 for "
                        "torch's default)")
    p.set_defaults(run=run)


def _note(text: str) -> None:
    print(f"imucap: note: {text}", file=sys.stderr)


def _session_output(output: Path, session_id: str) -> Path:
    """``out/face.au.csv`` → ``out/face_<id>.au.csv``."""
    name = output.name
    suffix = ".au.csv" if name.lower().endswith(".au.csv") else output.suffix
    stem = name[: len(name) - len(suffix)] if suffix else name
    return output.with_name(f"{stem}_{session_id}{suffix}")


def _load_rig(path: str | None, fmt: str) -> Any:
    if path is None:
        return None
    if fmt not in ("glb", "gltf"):
        _note("--rig is used only for .glb/.gltf output")
        return None
    from imucap.datasets.rig_io import load_rig_with_report

    loaded = load_rig_with_report(path)
    if loaded.rig.missing:
        _note(loaded.report.summary())
    return loaded.rig


#: Formats with no place for AUs: their Action Units go to a NAME.au.csv beside them.
SIDECAR_FORMATS = ("livelink", "glb", "gltf")


def au_sidecar(target: Path, fmt: str, args: argparse.Namespace) -> Path | None:
    """The OpenFace-style AU file written beside ``target``, or None.

    Live Link Face CSV and glTF have no room for Action Units that their own readers would
    accept (Unreal's importer expects exactly the Live Link columns), so the AUs of those
    outputs go to ``NAME.au.csv`` beside them: ``face.csv`` gets ``face.au.csv``, ``face.glb``
    gets ``face.au.csv``. ``--no-aus`` leaves it out.
    """
    if fmt not in SIDECAR_FORMATS or getattr(args, "no_aus", False):
        return None
    return target.with_name(target.stem + ".au.csv")


def _load_au_head(path: str | None, fmt: str, args: argparse.Namespace) -> Any:
    """The trained AU head of ``--au-head``, loaded before any work; None without one."""
    if path is None:
        return None
    if fmt not in ("au", "json") and au_sidecar(Path(args.output), fmt, args) is None:
        _note(f"--au-head is used only for AU output (.au.csv, .json, or the .au.csv beside a "
              f"Live Link CSV or glTF); {fmt} output with --no-aus carries no AUs")
        return None
    try:
        from imucap.models.au_head import load_au_head
    except ImportError:
        raise ImucapError("--au-head needs the [train] extra (torch, safetensors): "
                          "pip install 'imucap[train]'") from None
    return load_au_head(path)


def _smoothing_s(args: argparse.Namespace) -> float | None:
    ms = getattr(args, "smooth_ms", None)
    if ms is None:
        return None
    if not 0 <= ms <= 1000:
        raise ImucapError(f"--smooth-ms must be between 0 and 1000, got {ms:g}")
    return ms / 1000.0


def _with_head(track: Any, head: Any) -> Any:
    """The track with its AU intensities from the head (NaN, so flagged, without a face)."""
    return track if head is None else head.apply(track)


def _convert_sessions(args: argparse.Namespace, path: Path, fmt: str, rig: Any,
                      head: Any = None) -> int:
    from imucap.datasets.dataset import dataset_and_sessions
    from imucap.export import check_output_path, write_track

    dataset, ids, name_by_id = dataset_and_sessions(path, args.session)
    output = Path(args.output)
    targets = [(sid, _session_output(output, sid) if name_by_id else output) for sid in ids]
    for _, target in targets:  # every output checked before the first model run
        check_output_path(target)
        sidecar = au_sidecar(target, fmt, args)
        if sidecar is not None:
            check_output_path(sidecar)
    try:
        from imucap.inference.offline import DEFAULT_HOP_FRAMES, infer_session
        from imucap.models.checkpoint import load_checkpoint
        from imucap.models.pretrained import resolve_checkpoint

        ckpt_path = resolve_checkpoint(args.model)
        ckpt = load_checkpoint(ckpt_path)
    except ImportError:
        raise ImucapError("converting IMU sessions runs the model, which needs the [train] "
                          "extra: pip install 'imucap[train]'") from None
    fps = args.fps if args.fps is not None else 60.0
    hop = args.hop if args.hop is not None else DEFAULT_HOP_FRAMES
    info = dataset.info
    for sid, target in targets:
        session = dataset.session(sid)
        start = time.perf_counter()
        track = infer_session(ckpt, session.imu_time_s, session.accel, session.gyro, info.sites,
                              fps=fps, steps=args.steps, seed=args.seed, hop_frames=hop,
                              smoothing_s=_smoothing_s(args),
                              device=args.device, threads=args.threads,
                              accel_range_g=info.accel_range_g,
                              gyro_range_dps=info.gyro_range_dps,
                              source=f"{dataset.path.name}/{sid}")
        track = _with_head(track, head)
        write_track(target, track, fmt=fmt, rig=rig)
        sidecar = au_sidecar(target, fmt, args)
        if sidecar is not None:
            write_track(sidecar, track, fmt="au")
        wall = time.perf_counter() - start
        print(f"wrote {target} ({len(track)} frames, {track.duration_s:.1f} s of face in "
              f"{wall:.1f} s, model {ckpt_path}"
              + (f"; AUs in {sidecar.name}" if sidecar is not None else "")
              + (f", AUs from the head {args.au_head}" if head is not None else "") + ")",
              flush=True)
    return 0


def _convert_take(args: argparse.Namespace, path: Path, fmt: str, rig: Any,
                  head: Any = None) -> int:
    from imucap.export import read_track, write_track

    if args.session is not None:
        raise ImucapError(f"--session picks a session of a dataset folder; {path} is a take")
    if args.model is not None:
        _note(f"--model is not used: {path.name} holds blendshapes already")
    track = _with_head(read_track(path, fps=args.fps if args.fps is not None else 60.0), head)
    out = write_track(args.output, track, fmt=fmt, rig=rig)
    sidecar = au_sidecar(Path(out), fmt, args)
    if sidecar is not None:
        write_track(sidecar, track, fmt="au")
    print(f"wrote {out} ({len(track)} frames, {track.duration_s:.1f} s, from {path.name}"
          + (f"; AUs in {sidecar.name}" if sidecar is not None else "")
          + (f", AUs from the head {args.au_head}" if head is not None else "") + ")")
    return 0


def _render(args: argparse.Namespace) -> int:
    """``.mp4``: the same as ``imucap render INPUT -o OUTPUT``."""
    from . import render_cmd

    if args.hop is not None or args.fmt is not None:
        _note("--hop and --format do not apply to video; see imucap render --help")
    if getattr(args, "au_head", None) is not None:
        _note("--au-head does not apply to video; the panel shows the fixed mapping's AUs")
    render_args = argparse.Namespace(
        input=args.input, output=args.output, png_dir=None, size="960x540", start=None,
        end=None, no_aus=args.no_aus, session=args.session, model=args.model, prediction=None,
        no_model=False, rig=args.rig, fps=args.fps if args.fps is not None else 30.0,
        steps=args.steps, seed=args.seed)
    return render_cmd.run(render_args)


def _convert_speech(args: argparse.Namespace, path: Path | None) -> int:
    """Speech (a sound file) or ``--text`` to any output, ``.mp4`` with the sound under it."""
    from imucap.export import check_output_path, output_format, write_track

    from . import speech_convert

    video = str(args.output).lower().endswith(".mp4")
    fmt = "mp4" if video else output_format(args.output, args.fmt)
    check_output_path(args.output)
    sidecar = None if video else au_sidecar(Path(args.output), fmt, args)
    if sidecar is not None:
        check_output_path(sidecar)
    if args.audio is not None:
        if args.text is None:
            _note("--audio is used only with --text (the sound file is the speech already)")
        else:
            check_output_path(args.audio)
    if args.session is not None or args.hop is not None:
        _note("--session and --hop do not apply to speech")
    rig = None if video else _load_rig(args.rig, fmt)
    head = None if video else _load_au_head(getattr(args, "au_head", None), fmt, args)
    sound: Path | None = path
    if args.text is not None:
        if args.model is not None:
            _note("--model is not used with --text: the viseme model animates the words")
        track, speech, summary = speech_convert.text_track(args)
        notes: list[str] = []
        if args.audio is not None:
            speech_convert.write_speech_audio(Path(args.audio), speech)
            sound = Path(args.audio)
    else:
        track, notes, summary = speech_convert.speech_track(args, path)
    for text in notes:
        _note(text)
    if video:
        if args.text is not None and sound is None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="imucap-text-") as tmp:
                wav = Path(tmp) / "speech.wav"
                speech_convert.write_speech_audio(wav, speech)
                code = speech_convert.render_with_sound(args, track, wav, _render)
        else:
            code = speech_convert.render_with_sound(args, track, sound, _render)
        if code == 0:
            print(f"wrote {args.output} ({len(track)} frames, {summary})")
        return code
    track = _with_head(track, head)
    out = write_track(args.output, track, fmt=fmt, rig=rig)
    if sidecar is not None:
        write_track(sidecar, track, fmt="au")
    print(f"wrote {out} ({len(track)} frames, {summary}"
          + (f"; AUs in {sidecar.name}" if sidecar is not None else "")
          + (f", AUs from the head {args.au_head}" if head is not None else "")
          + (f"; speech in {args.audio}" if args.text is not None and args.audio else "")
          + ")")
    return 0


def run(args: argparse.Namespace) -> int:
    from imucap.export import check_output_path, output_format

    from .speech_convert import is_speech_input

    text = getattr(args, "text", None)
    if text is not None and args.input is not None:
        raise ImucapError("give either INPUT or --text, not both")
    if text is None and args.input is None:
        raise ImucapError("nothing to convert: give an INPUT (a session, take or sound file) "
                          "or --text \"words to say\"")
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise ImucapError(f"--steps must be between 1 and 1000, got {args.steps}")
    if args.threads < 0:
        raise ImucapError(f"--threads must be 0 (torch's default) or more, got {args.threads}")
    if text is not None:
        return _convert_speech(args, None)
    if is_speech_input(Path(args.input)):
        if not Path(args.input).exists():
            raise ImucapError(f"{args.input} does not exist")
        return _convert_speech(args, Path(args.input))
    if str(args.output).lower().endswith(".mp4"):
        return _render(args)
    fmt = output_format(args.output, args.fmt)  # a bad extension fails before any work
    check_output_path(args.output)
    sidecar = au_sidecar(Path(args.output), fmt, args)
    if sidecar is not None:
        check_output_path(sidecar)
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise ImucapError(f"--fps must be between 0 and 1000, got {args.fps:g}")
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise ImucapError(f"--steps must be between 1 and 1000, got {args.steps}")
    if args.hop is not None and args.hop < 1:
        raise ImucapError(f"--hop must be at least 1, got {args.hop}")
    if args.threads < 0:
        raise ImucapError(f"--threads must be 0 (torch's default) or more, got {args.threads}")
    path = Path(args.input)
    if not path.exists():
        raise ImucapError(f"{path} does not exist")
    rig = _load_rig(args.rig, fmt)
    head = _load_au_head(getattr(args, "au_head", None), fmt, args)
    if path.is_dir() or path.suffix.lower() == ".npz":
        return _convert_sessions(args, path, fmt, rig, head)
    return _convert_take(args, path, fmt, rig, head)
