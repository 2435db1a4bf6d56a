"""Shared fixtures: emulated arrays served on real pseudo-terminals."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator_helpers import served_pty

SHARED_ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"


@pytest.fixture
def pty_emulator(tmp_path):
    """A clean 11-sensor, 100 Hz emulated array on a pseudo-terminal, keeping what it sent."""
    with served_pty(tmp_path, keep_sent=True) as runner:
        yield runner
