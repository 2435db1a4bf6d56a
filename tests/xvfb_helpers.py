"""A virtual screen for window tests: Xvfb with its framebuffer in a file we can read.

``Xvfb -fbdir DIR`` keeps the screen's pixels in ``DIR/Xvfb_screen0`` (XWD format), so a test
sees exactly what a person at the screen would, without a screenshot tool.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def read_xwd(path: str | os.PathLike[str]) -> np.ndarray:
    """The screen in an XWD file as ``(H, W, 3)`` uint8 RGB (24/32-bit TrueColor only)."""
    data = Path(path).read_bytes()
    fields = struct.unpack(">25I", data[:100])
    header_size, _, _, depth, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    ncolors = fields[19]
    if bits_per_pixel != 32 or depth < 24:
        raise ValueError(f"XWD with {bits_per_pixel} bits per pixel, depth {depth}")
    offset = header_size + 12 * ncolors
    raw = np.frombuffer(data, np.uint8, count=bytes_per_line * height, offset=offset)
    pix = raw.reshape(height, bytes_per_line)[:, :width * 4].reshape(height, width, 4)
    return pix[..., [2, 1, 0]] if byte_order == 0 else pix[..., [1, 2, 3]]


@contextmanager
def virtual_screen(tmp: Path, size: str = "1280x800x24") -> Iterator[tuple[str, Path]]:
    """Start Xvfb; yields ``(display, framebuffer file)``; stops it afterwards."""
    exe = shutil.which("Xvfb")
    if exe is None:
        raise FileNotFoundError("Xvfb")
    fbdir = tmp / "fb"
    fbdir.mkdir(exist_ok=True)
    for number in range(90, 140):
        if Path(f"/tmp/.X{number}-lock").exists():
            continue
        proc = subprocess.Popen([exe, f":{number}", "-screen", "0", size, "-fbdir", str(fbdir),
                                 "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if Path(f"/tmp/.X11-unix/X{number}").exists() and (fbdir / "Xvfb_screen0").exists():
                break
            time.sleep(0.05)
        if proc.poll() is None:
            try:
                yield f":{number}", fbdir / "Xvfb_screen0"
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            return
    raise RuntimeError("no free X display number for Xvfb")


def wait_for_screen(framebuffer: str | os.PathLike[str], looks_right, *, timeout_s: float = 60.0,
                    proc: subprocess.Popen | None = None, every_s: float = 0.2) -> np.ndarray:
    """Screenshots until ``looks_right(screen)`` holds; returns that screen, or the last one
    taken when ``timeout_s`` passes or ``proc`` ends first (the caller's assertion then says
    what is missing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        screen = read_xwd(framebuffer)
        if looks_right(screen) or time.monotonic() > deadline or (
                proc is not None and proc.poll() is not None):
            return screen
        time.sleep(every_s)
