"""Checkpoints that ship with imucap.

``speech_en/`` is the speech-to-face model (``make speech-checkpoint``).

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


def _shipped(name: str, what: str) -> Path:
    path = HERE / name
    if not (path / "checkpoint.json").exists():
        raise ImucapError(f"{what} is missing from {path}: reinstall imucap, or pass a "
                          f"checkpoint folder of your own")
    return path


def default_checkpoint() -> Path:
    """The shipped checkpoint's folder.

    Raises:
        ImucapError: The package was installed without it.
    """
    return _shipped(DEFAULT_NAME, "the shipped checkpoint")


def resolve_checkpoint(value: str | Path | None) -> Path:
    """A checkpoint folder from a user's argument: None or ``default`` is the shipped one."""
    if value is None or str(value) == "default":
        return default_checkpoint()
    return Path(value)


SPEECH_NAME = "speech_en"


def speech_checkpoint() -> Path:
    """The shipped speech-to-face checkpoint's folder (``make speech-checkpoint`` makes it).

    Raises:
        ImucapError: The package was installed without it.
    """
    return _shipped(SPEECH_NAME, "the shipped speech model")


def resolve_speech_checkpoint(value: str | Path | None) -> Path:
    """A speech checkpoint folder: None, ``default`` or ``speech`` is the shipped one."""
    if value is None or str(value) in ("default", "speech"):
        return speech_checkpoint()
    return Path(value)
