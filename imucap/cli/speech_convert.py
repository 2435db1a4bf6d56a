"""``imucap convert`` for speech: a sound file through the speech model, or text through the
viseme model (``--text``), to any output ``convert`` writes."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from imucap.errors import ImucapError

#: Inputs read as speech: sound files, and videos whose sound track is the speech.
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac",
                  ".wma", ".aif", ".aiff", ".caf", ".mov", ".mp4", ".m4v", ".mkv", ".webm",
                  ".avi")


def is_speech_input(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


class _Progress:
    """A progress line on stderr: rewritten in place on a terminal, every 10 % elsewhere."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.last = -1.0
        self.start = time.perf_counter()

    def __call__(self, done: float, total: float) -> None:
        if total > 0:
            share = min(1.0, done / total)
            if not self.tty and share < self.last + 0.1 and share < 1.0:
                return
            self.last = share
            bar = "#" * int(share * 30)
            text = f"[{self.what}] {bar:<30} {done:6.1f}/{total:.1f} s"
        else:
            if not self.tty and done < self.last + 30:
                return
            self.last = done
            text = f"[{self.what}] {done:.1f} s"
        if self.tty:
            print("\r" + text, end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and self.last >= 0:
            print(file=sys.stderr, flush=True)


def speech_track(args: argparse.Namespace, path: Path) -> tuple[Any, list[str], str]:
    """The face track of the speech in ``path``, notes to show, and a summary for the line."""
    from imucap.audio.io import iter_audio
    from imucap.inference.speech import infer_speech, load_speech_model

    iter_audio(path).close()  # a file that is not audio fails here, before the model loads
    model = load_speech_model(None if args.model in (None, "default") else args.model,
                              device=args.device, threads=args.threads)
    progress = _Progress("speech")
    try:
        result = infer_speech(path, model, steps=args.steps, seed=args.seed, progress=progress)
    finally:
        progress.close()
    speed = result.duration_s / max(result.wall_s, 1e-9)
    summary = (f"{result.duration_s:.1f} s of speech in {result.wall_s:.1f} s, {speed:.0f}x "
               f"real time")
    return result.track, result.notes, summary


def text_track(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The viseme model's face track of ``--text`` (and the speech it was timed on)."""
    from imucap.audio.visemes import text_to_face
    from imucap.inference.offline import FaceTrack

    text = args.text.strip()
    if not text:
        raise ImucapError("--text is empty: give the words to say")
    speech, weights = text_to_face(text, voice=args.voice, rate_wpm=args.rate_wpm, fps=60.0)
    import numpy as np

    track = FaceTrack(np.arange(len(weights)) / 60.0, weights, fps=60.0,
                      source=f"text ({args.voice})")
    return track, speech, f"{track.duration_s:.1f} s of speech from the text, voice {args.voice}"


def write_speech_audio(path: Path, speech: Any) -> None:
    """The synthesised speech of ``--text`` as a 16-bit WAV (``--audio``)."""
    import wave

    import numpy as np

    pcm = (np.clip(speech.samples, -1.0, 1.0) * 32767.0).astype("<i2")
    tmp = path.with_name(path.name + ".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(speech.rate))
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def render_with_sound(args: argparse.Namespace, track: Any, sound: Path | None,
                      render: Any) -> int:
    """``.mp4`` from a speech track: render the face, then put the sound under it."""
    from imucap.audio.io import find_ffmpeg
    from imucap.export import write_track

    with tempfile.TemporaryDirectory(prefix="imucap-speech-") as tmp:
        take = Path(tmp) / "face.json"
        write_track(take, track, fmt="json")
        silent = Path(tmp) / "face.mp4"
        code = render(argparse.Namespace(**{**vars(args), "input": str(take),
                                             "output": str(silent), "model": None,
                                             "session": None}))
        if code:
            return code
        exe = find_ffmpeg()
        out = Path(args.output)
        if sound is None or exe is None:
            shutil.move(str(silent), out)
            if exe is None:
                print("imucap: note: no ffmpeg found to add the sound: the video is silent "
                      "(pip install 'imucap[audio]')", file=sys.stderr)
            return 0
        part = out.with_name(out.name + ".part.mp4")
        proc = subprocess.run([exe, "-y", "-loglevel", "error", "-i", str(silent), "-i",
                               str(sound), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
                               "-c:a", "aac", "-b:a", "128k", "-shortest", str(part)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            part.unlink(missing_ok=True)
            shutil.move(str(silent), out)
            last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
            print(f"imucap: note: the sound could not be added ({last}): the video is silent",
                  file=sys.stderr)
            return 0
        os.replace(part, out)
    return 0
