"""What every file writer shares: the error type, output checks and crash-safe writing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from imucap.errors import ImucapError

__all__ = ["ExportError", "check_output_path", "write_atomic"]


class ExportError(ImucapError):
    """A track that cannot be written or read as asked (bad path, format or file)."""


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Check that a file can be written at ``path`` before any work is done.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ExportError: The folder is missing, is not a folder or is not writable, or ``path`` is
            a folder.
    """
    out = Path(path)
    folder = out.parent
    if out.is_dir():
        raise ExportError(f"{out} is a folder: give a file name, such as {out / 'take.glb'}")
    if not folder.exists():
        raise ExportError(f"output folder {folder} does not exist: create it first "
                          f"(mkdir -p {folder})")
    if not folder.is_dir():
        raise ExportError(f"{folder} is not a folder, so {out.name} cannot be written in it")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"output folder {folder} is not writable: choose another output "
                          f"path or change the folder's permissions")
    return out


@contextmanager
def _replacing(out: Path) -> Iterator[Path]:
    part = out.with_name(out.name + ".part")
    try:
        yield part
        os.replace(part, out)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if part.exists():
            try:
                part.unlink()
            except OSError:
                pass


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write a file crash-safely: ``write(part_path)`` fills ``<path>.part``, then it replaces
    ``path``, so a reader never sees half a file and a failed run leaves the old one.

    Raises:
        ExportError: The folder is unusable (see :func:`check_output_path`) or writing failed.
    """
    out = check_output_path(path)
    with _replacing(out) as part:
        write(part)
    return out
