"""Helpers for tests: an emulated array served on a real pseudo-terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from imucap.firmware_bridge.emulator import (
    EmulatedArray,
    EmulatorConfig,
    FaultConfig,
    PtyRunner,
)


@contextlib.contextmanager
def served_pty(tmp_path: Path | None = None, **config) -> Iterator[PtyRunner]:
    """An emulated array on a pseudo-terminal; yields the runner (``.port``, ``.array``)."""
    faults = config.pop("faults", None) or FaultConfig()
    array = EmulatedArray(EmulatorConfig(faults=faults, **config))
    path = None if tmp_path is None else tmp_path / "ttyIMU0"
    runner = PtyRunner(array, path)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()
