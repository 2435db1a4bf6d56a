"""Checkpoints that ship with imucap.

``imusic11/`` is the default model everywhere one is needed: the small diffusion model for the
11-site IMUSIC placement, trained by ``make checkpoint`` (see ``README.md`` in this folder for
the exact commands and its scores). Beside its weights, ``imusic11/baselines/`` holds the
baselines it was compared with, so ``imucap eval`` shows them side by side.
"""

from __future__ import annotations

from pathlib import Path

from imucap.errors import ImucapError

HERE = Path(__file__).resolve().parent
DEFAULT_NAME = "imusic11"


def default_checkpoint() -> Path:
    """The shipped checkpoint's folder.

    Raises:
        ImucapError: The package was installed without it.
    """
    path = HERE / DEFAULT_NAME
    if not (path / "checkpoint.json").exists():
        raise ImucapError(f"the shipped checkpoint is missing from {path}: reinstall imucap, "
                          f"or pass a checkpoint folder of your own")
    return path


def resolve_checkpoint(value: str | Path | None) -> Path:
    """A checkpoint folder from a user's argument: None or ``default`` is the shipped one."""
    if value is None or str(value) == "default":
        return default_checkpoint()
    return Path(value)
