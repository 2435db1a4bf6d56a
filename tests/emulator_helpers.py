"""Helpers for tests: an emulated array on a real pseudo-terminal, reading frames, free ports."""

from __future__ import annotations

import contextlib
import socket
import time
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


def free_udp_port() -> int:
    """A UDP port on loopback that nothing uses right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def collect(dev, seconds: float) -> list:
    """Every frame a device delivers within ``seconds``."""
    frames, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            frames.append(dev.read(timeout_s=0.2))
        except TimeoutError:
            pass
    return frames


def wire_frames(frames) -> list[tuple[int, int, int]]:
    """``(boot_id, seq, t0_us)`` of every wire frame inside the received batches."""
    out = []
    for f in frames:
        per = f.n_samples // f.wire_frames
        for i in range(f.wire_frames):
            out.append((f.boot_id, (f.seq + i) & 0xFFFF, int(f.device_time_us[i * per])))
    return out
