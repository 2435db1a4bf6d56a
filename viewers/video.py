"""Writing rendered frames: MP4 through an ffmpeg binary, or a folder of PNG files.

ffmpeg is looked for in this order: ``$IMUCAP_FFMPEG``, ``ffmpeg`` on the ``PATH``, then the
binary the ``imageio-ffmpeg`` package ships (installed with the ``[viewer]`` extra), so
``imucap render -o clip.mp4`` works on a machine without a system ffmpeg.

The MP4 is H.264 (``yuv420p``, so every player opens it), written to ``<name>.part`` and
renamed when complete: an interrupted render never leaves a half file under the real name.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from imucap.export.base import check_output_path

from .scene import ViewerError


def find_ffmpeg() -> str:
    """Path of an ffmpeg binary (looked for as :func:`imucap.audio.io.find_ffmpeg` does).

    Raises:
        ViewerError: None found (the message says how to get one), or ``$IMUCAP_FFMPEG`` is
            not an executable file.
    """
    from imucap.audio.io import AudioError
    from imucap.audio.io import find_ffmpeg as find

    try:
        found = find()
    except AudioError as exc:
        raise ViewerError(str(exc)) from None
    if found is None:
        raise ViewerError("MP4 output needs ffmpeg, and none was found: pip install "
                          "'imucap[viewer]' (its imageio-ffmpeg ships one), install ffmpeg, or "
                          "write PNG frames with --png-dir")
    return found


class Mp4Writer:
    """Frames ``(height, width, 3)`` uint8 in, an H.264 MP4 out.

    Args:
        path: The ``.mp4`` to write (checked before anything starts).
        width: Frame width (even).
        height: Frame height (even).
        fps: Frames per second.
        crf: x264 quality (lower is better; 18-23 is visually clean).
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: float, *,
                 crf: int = 20) -> None:
        self.path = check_output_path(path)
        if width % 2 or height % 2:
            raise ViewerError(f"MP4 frames need an even width and height, got {width}x{height}")
        self.width, self.height = width, height
        self.part = self.path.with_name(self.path.name + ".part")
        exe = find_ffmpeg()
        cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-",
               "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf),
               "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(self.part)]
        try:
            self._proc: subprocess.Popen | None = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            raise ViewerError(f"cannot run ffmpeg ({exe}): {exc.strerror or exc}") from None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be ({self.height}, {self.width}, 3) uint8, got "
                             f"{frame.shape} {frame.dtype}")
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            self._fail()
        self.frames += 1

    def _fail(self) -> None:
        assert self._proc is not None
        err = self._proc.stderr.read().decode(errors="replace").strip() if self._proc.stderr \
            else ""
        self._proc.wait()
        self._proc = None
        self.part.unlink(missing_ok=True)
        last = err.splitlines()[-1] if err else "no message"
        raise ViewerError(f"ffmpeg failed writing {self.path}: {last}")

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self._proc is None:
            return self.path
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        if self._proc.wait() != 0:
            self._fail()
        self._proc = None
        try:
            os.replace(self.part, self.path)
        except OSError as exc:
            raise ViewerError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        self.part.unlink(missing_ok=True)


class PngWriter:
    """Frames into ``folder/frame_00000.png``, ``frame_00001.png``, …

    The folder is created if its parent exists; PNG files already in it with the same names
    are replaced.
    """

    def __init__(self, folder: str | os.PathLike[str], *, prefix: str = "frame_") -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ViewerError(f"{self.folder} is a file: --png-dir needs a folder")
        # A new folder needs a writable parent; an existing one must itself be writable. The
        # folder is made at the first frame, so a render that fails to start leaves nothing.
        check_output_path(self.folder / f"{prefix}00000.png" if self.folder.exists()
                          else self.folder)
        self.prefix = prefix
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        from PIL import Image

        path = self.folder / f"{self.prefix}{self.frames:05d}.png"
        try:
            if self.frames == 0:
                self.folder.mkdir(exist_ok=True)
            Image.fromarray(frame).save(path, compress_level=1)
        except OSError as exc:
            raise ViewerError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.frames += 1

    def close(self) -> Path:
        return self.folder

    def abort(self) -> None:
        pass
