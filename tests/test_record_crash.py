"""Session files survive what a recording meets: SIGKILL, a full disk, refusals, torn files.

The crash tests run ``imucap record`` as a user does, in a real process, on an emulated array
at 1 kHz, and kill it with SIGKILL at random moments: the file must open, hold every sample up
to the last second before the kill without a hole, and ``imucap session recover`` must close
it. The recorder stamps samples with the host's ``time.monotonic()`` (CLOCK_MONOTONIC, one
clock for every process on Linux), so the kill instant taken here compares with the sample
times in the file. No assertion depends on how fast the machine is, beyond the one-second
durability window the file format promises.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from imucap.frames import ImuFrame
from imucap.record import session_file as sf
from imucap.record.session_file import (
    DiskWriteError,
    SessionFileError,
    SessionWriter,
    read_session,
)
from imucap.truth.base import TruthFrame

IMUCAP = [sys.executable, "-m", "imucap"]
DEVICE_1KHZ = "emulator:imusic11?emu_rate_hz=1000"
SAMPLE_US = 1000  # 1 kHz
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="SIGKILL, RLIMIT_FSIZE and a system-wide "
                                       "CLOCK_MONOTONIC are Linux behaviour")


# --------------------------------------------------------------------------------------------
# Helpers


def _wait_for_growth(path: Path, proc: subprocess.Popen, stderr_file: Path,
                     timeout_s: float = 30.0) -> None:
    """Polls until ``path`` exists and has grown past its first size (a chunk was written)."""
    deadline = time.monotonic() + timeout_s
    first = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"imucap record exited early ({proc.returncode}):\n"
                        f"{stderr_file.read_text(errors='replace')}")
        if path.exists():
            size = path.stat().st_size
            if first is None:
                first = size
            elif size > first:
                return
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    pytest.fail(f"{path} did not appear or grow within {timeout_s} s:\n"
                f"{stderr_file.read_text(errors='replace')}")


def _start_record(out: Path, name: str, *extra: str, **popen: object) -> subprocess.Popen:
    return subprocess.Popen(
        [*IMUCAP, "record", "--device", DEVICE_1KHZ, "--subject", "P01", "--out", str(out),
         "--name", name, *extra], stdin=subprocess.PIPE, cwd=REPO, **popen)


def _assert_contiguous(contents: sf.SessionContents, what: str) -> None:
    """Every sample from the first to the last is there, one per millisecond."""
    imu = contents.imu
    assert imu.n > 0, f"{what}: no IMU samples"
    steps = np.unique(np.diff(imu.device_time_us))
    assert steps.tolist() == [SAMPLE_US], f"{what}: device time steps {steps[:10]} (µs)"
    assert imu.frames_lost == 0, f"{what}: {imu.frames_lost} frames lost"
    assert len(np.unique(imu.boot_id)) == 1, f"{what}: the device restarted"


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("imucap: error:")]


SITES4 = ("s00", "s01", "s02", "s03")


def _imu_frame(k: int, *, spf: int = 10, sites: tuple[str, ...] = SITES4,
               t0_s: float = 1000.0) -> ImuFrame:
    """Frame ``k`` of a deterministic 1 kHz stream (random, poorly compressible data)."""
    rng = np.random.default_rng(k)
    t_us = (k * spf + np.arange(spf, dtype=np.int64)) * SAMPLE_US
    host = t0_s + t_us * 1e-6
    shape = (spf, len(sites), 3)
    return ImuFrame(seq=k, boot_id=0xB007, device_time_us=t_us, host_time_s=host,
                    arrival_time_s=float(host[-1] + 0.002),
                    accel=rng.standard_normal(shape).astype(np.float32),
                    gyro=rng.standard_normal(shape).astype(np.float32), mag=None, quat=None,
                    sensor_ok=np.ones(len(sites), bool), sites=sites)


def _truth_frame(j: int, t0_s: float = 1000.0) -> TruthFrame:
    rng = np.random.default_rng(10_000 + j)
    face = j % 7 != 3  # some frames without a face
    return TruthFrame(seq=j, source_time_s=50.0 + j / 60.0, arrival_time_s=t0_s + j / 60.0,
                      weights=rng.random(52).astype(np.float32) if face else None,
                      head_ypr=rng.standard_normal(3).astype(np.float32) if face else None)


def _write_session(path: Path, frames: int, *, flush_every: int = 5,
                   truth: bool = True) -> int:
    """A closed session of ``frames`` IMU frames (10 ms each) and 60 Hz truth, with a chunk
    closed every ``flush_every`` frames; returns the file size right after the writer opened
    (header and session metadata)."""
    writer = SessionWriter(path, session={"subject": "T01"}, sites=SITES4,
                           fsync_interval_s=0.0)
    start_size = path.stat().st_size
    j = 0
    for k in range(frames):
        writer.write_imu(_imu_frame(k))
        while truth and j / 60.0 <= (k + 1) * 0.010:
            writer.write_truth(_truth_frame(j))
            j += 1
        if (k + 1) % flush_every == 0:
            writer.flush(fsync=False)
    writer.write_marker("end", 1000.0 + frames * 0.010, 1)
    writer.close()
    return start_size


def _assert_prefix(part: sf.SessionContents, whole: sf.SessionContents, what: str) -> None:
    """``part`` holds the first samples and truth frames of ``whole``, exactly."""
    n, m = part.imu.n, part.truth.n
    assert n <= whole.imu.n and m <= whole.truth.n, what
    a, b = part.imu, whole.imu
    np.testing.assert_array_equal(a.device_time_us, b.device_time_us[:n], err_msg=what)
    np.testing.assert_array_equal(a.host_time_s, b.host_time_s[:n], err_msg=what)
    np.testing.assert_array_equal(a.accel, b.accel[:n], err_msg=what)
    np.testing.assert_array_equal(a.gyro, b.gyro[:n], err_msg=what)
    np.testing.assert_array_equal(a.boot_id, b.boot_id[:n], err_msg=what)
    f = a.frame_last_us.shape[0]
    np.testing.assert_array_equal(a.frame_last_us, b.frame_last_us[:f], err_msg=what)
    np.testing.assert_array_equal(a.frame_arrival_s, b.frame_arrival_s[:f], err_msg=what)
    np.testing.assert_array_equal(part.truth.seq, whole.truth.seq[:m], err_msg=what)
    np.testing.assert_array_equal(part.truth.source_time_s, whole.truth.source_time_s[:m],
                                  err_msg=what)
    np.testing.assert_array_equal(part.truth.weights, whole.truth.weights[:m], err_msg=what)
    np.testing.assert_array_equal(part.truth.head_ypr, whole.truth.head_ypr[:m], err_msg=what)
    assert part.markers == whole.markers[:len(part.markers)], what


# --------------------------------------------------------------------------------------------
# SIGKILL at random moments


def test_sigkill_at_random_moments_loses_at_most_the_last_second(tmp_path):
    rng = random.Random(20240611)
    out = tmp_path / "sessions"
    for k in range(4):
        name = f"run{k}"
        path = out / f"{name}.mcap"
        stdout, stderr = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with open(stdout, "wb") as so, open(stderr, "wb") as se:
            proc = _start_record(out, name, stdout=so, stderr=se)
            try:
                _wait_for_growth(path, proc, stderr)
                time.sleep(rng.uniform(1.0, 3.5))
                killed_at = time.monotonic()
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdin.close()
        assert proc.returncode == -signal.SIGKILL
        what = f"{name} (killed {killed_at:.3f})"

        contents = read_session(path)
        assert not contents.complete, what
        assert contents.session["subject"] == "P01"
        _assert_contiguous(contents, what)
        last = float(contents.imu.host_time_s[-1])
        assert last <= killed_at, f"{what}: a sample after the kill ({last:.3f})"
        assert killed_at - last <= 1.0, f"{what}: the last {killed_at - last:.3f} s are missing"
        started = [e["time_s"] for e in contents.events if e["kind"] == "recording_started"]
        assert started, what
        first = float(contents.imu.host_time_s[0])
        assert abs(first - started[0]) <= 1.0, f"{what}: the start is missing"

        recovered = subprocess.run([*IMUCAP, "session", "recover", str(path)],
                                   capture_output=True, text=True, timeout=60, cwd=REPO,
                                   stdin=subprocess.DEVNULL)
        assert recovered.returncode == 0, recovered.stderr
        assert "recovered" in recovered.stdout, recovered.stdout
        fixed = read_session(path)
        assert fixed.complete and fixed.torn_bytes == 0, what
        assert fixed.imu.n == contents.imu.n, what
        np.testing.assert_array_equal(fixed.imu.device_time_us, contents.imu.device_time_us)
        assert not path.with_name(path.name + ".part").exists()

        again = subprocess.run([*IMUCAP, "session", "recover", str(path)],
                               capture_output=True, text=True, timeout=60, cwd=REPO,
                               stdin=subprocess.DEVNULL)
        assert again.returncode == 0, again.stderr
        assert "nothing to recover" in again.stdout, again.stdout
        assert read_session(path).imu.n == contents.imu.n


# --------------------------------------------------------------------------------------------
# A full disk (the file size limit stands in for it: the same failed write, EFBIG)


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_record_cli_stops_cleanly_when_the_file_size_limit_is_hit(tmp_path):
    limit = 300_000  # about 1.5 s of 11 sensors at 1 kHz
    out = tmp_path / "sessions"
    path = out / "full.mcap"
    # stdout and stderr are pipes: a file here would be under the size limit too.
    proc = _start_record(out, "full", "--duration", "60", stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=_limit_file_size(limit))
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stderr_text = stderr.decode(errors="replace")
    assert proc.returncode == 2, stderr_text
    assert "Traceback" not in stderr_text and "Exception" not in stderr_text, stderr_text
    errors = _error_lines(stderr_text)
    assert len(errors) == 1, stderr_text
    line = errors[0]
    assert "file size limit" in line, line
    assert f"imucap session recover {path}" in line, line
    assert str(path) not in stdout.decode(), "a failed recording printed its path as done"

    assert path.stat().st_size <= limit
    contents = read_session(path)
    assert not contents.complete
    _assert_contiguous(contents, "file size limit")
    # The limit (300 kB) holds over a second of data; the last second may be torn off.
    assert contents.imu.host_time_s[-1] - contents.imu.host_time_s[0] > 0.25


_WRITER_UNDER_LIMIT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from test_record_crash import _imu_frame
    from imucap.record.session_file import DiskWriteError, SessionWriter

    writer = SessionWriter({path!r}, session={{"subject": "T01"}},
                           sites=("s00", "s01", "s02", "s03"), fsync_interval_s=0.0)
    flushed = written = 0
    try:
        for k in range(1_000_000):
            writer.write_imu(_imu_frame(k))
            written = k + 1
            if written % 5 == 0:
                writer.flush(fsync=False)
                flushed = written
        error = ""
    except DiskWriteError as exc:
        error = str(exc)
    print(json.dumps({{"flushed": flushed, "written": written, "error": error,
                      "closed": writer.closed}}))
""")


def test_session_writer_under_a_file_size_limit_raises_disk_write_error(tmp_path):
    limit = 120_000
    path = tmp_path / "limited.mcap"
    code = _WRITER_UNDER_LIMIT.format(tests=str(Path(__file__).parent), path=str(path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=REPO, stdin=subprocess.DEVNULL,
                            preexec_fn=_limit_file_size(limit))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["closed"] is True
    assert "file size limit" in report["error"], report
    assert "imucap session recover" in report["error"], report
    assert "\n" not in report["error"]
    assert 0 < report["flushed"] <= report["written"]

    contents = read_session(path)
    assert not contents.complete
    frames = contents.imu.frame_last_us.shape[0]
    assert report["flushed"] <= frames <= report["written"], (frames, report)
    expected = [_imu_frame(k) for k in range(frames)]
    np.testing.assert_array_equal(contents.imu.accel,
                                  np.concatenate([f.accel for f in expected]))
    np.testing.assert_array_equal(contents.imu.device_time_us,
                                  np.concatenate([f.device_time_us for f in expected]))


class _FillingDisk:
    """A file whose disk fills after ``room`` bytes: the write that overflows writes what
    fits, then fails with ENOSPC, as a real file system does."""

    def __init__(self, fh, room: int) -> None:
        self._fh = fh
        self.room = room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self._fh.write(data[:self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name: str):
        return getattr(self._fh, name)


def test_session_writer_on_a_full_disk_keeps_what_it_flushed(tmp_path, monkeypatch):
    path = tmp_path / "enospc.mcap"

    def fake_open(file, mode="r", *args, **kwargs):
        fh = builtins.open(file, mode, *args, **kwargs)
        return _FillingDisk(fh, 60_000) if mode == "xb" else fh

    monkeypatch.setattr(sf, "open", fake_open, raising=False)
    writer = SessionWriter(path, session={"subject": "T01"}, sites=SITES4,
                           fsync_interval_s=0.0)
    monkeypatch.undo()
    flushed = written = 0
    with pytest.raises(DiskWriteError) as info:
        for k in range(10_000):
            writer.write_imu(_imu_frame(k))
            written = k + 1
            if written % 5 == 0:
                writer.flush(fsync=False)
                flushed = written
    message = str(info.value)
    assert "the disk is full" in message and f"imucap session recover {path}" in message
    assert "\n" not in message
    assert writer.closed
    with pytest.raises(SessionFileError, match="closed"):
        writer.write_imu(_imu_frame(written))
    writer.close()  # idempotent after the error

    contents = read_session(path)
    assert not contents.complete and contents.torn_bytes > 0
    frames = contents.imu.frame_last_us.shape[0]
    assert 0 < flushed <= frames <= written
    np.testing.assert_array_equal(
        contents.imu.gyro, np.concatenate([_imu_frame(k).gyro for k in range(frames)]))


# --------------------------------------------------------------------------------------------
# Refusals


def test_a_second_writer_on_an_existing_file_is_refused_and_the_first_file_survives(tmp_path):
    path = tmp_path / "taken.mcap"
    first = SessionWriter(path, session={"subject": "T01"}, sites=SITES4)
    for k in range(20):
        first.write_imu(_imu_frame(k))
    first.flush()
    with pytest.raises(SessionFileError, match="already exists") as info:
        SessionWriter(path, session={"subject": "T02"}, sites=SITES4)
    assert not isinstance(info.value, DiskWriteError)
    assert "\n" not in str(info.value)
    for k in range(20, 40):
        first.write_imu(_imu_frame(k))
    first.close()
    contents = read_session(path)
    assert contents.complete
    assert contents.session["subject"] == "T01"
    assert contents.imu.n == 40 * 10
    np.testing.assert_array_equal(contents.imu.device_time_us, np.arange(400) * SAMPLE_US)


def _one_line_session_error(path: Path) -> str:
    with pytest.raises(SessionFileError) as info:
        read_session(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_read_session_refuses_what_is_not_a_session(tmp_path):
    assert "no session file" in _one_line_session_error(tmp_path / "missing.mcap")
    assert "folder" in _one_line_session_error(tmp_path)

    text = tmp_path / "notes.mcap"
    text.write_text("this is a text file, not a recording\n" * 50)
    assert "not an MCAP" in _one_line_session_error(text)

    from mcap.writer import Writer

    other = tmp_path / "other.mcap"
    with open(other, "wb") as fh:
        w = Writer(fh)
        w.start(profile="", library="someone else")
        schema = w.register_schema("Blob", "jsonschema", b'{"type": "object"}')
        channel = w.register_channel("/blob", "json", schema)
        for i in range(10):
            w.add_message(channel, i, b'{"x": 1}', i)
        w.add_metadata("something", {"a": "b"})
        w.finish()
    assert "not an imucap session" in _one_line_session_error(other)

    newer = tmp_path / "newer.mcap"
    with open(newer, "wb") as fh:
        w = Writer(fh)
        w.start(profile="imucap", library="imucap 99")
        w.add_metadata("imucap.session", {"json": json.dumps({"format": 99})})
        w.finish()
    assert "format 99" in _one_line_session_error(newer)


def test_a_file_cut_anywhere_opens_and_yields_a_prefix_of_the_frames(tmp_path):
    original = tmp_path / "whole.mcap"
    start_size = _write_session(original, frames=300)  # 3 s, a chunk every 50 ms
    whole = read_session(original)
    assert whole.complete and whole.imu.n == 3000 and whole.truth.n > 150
    size = original.stat().st_size
    data = original.read_bytes()

    rng = random.Random(7)
    # Up to the footer: a cut in the last 8 bytes (the closing magic) is tested below.
    offsets = sorted({*(rng.randrange(start_size, size - 8) for _ in range(25)),
                      start_size, size // 2, size - 9})
    seen = set()
    for offset in offsets:
        cut = tmp_path / f"cut{offset}.mcap"
        cut.write_bytes(data[:offset])
        part = read_session(cut)
        what = f"cut at {offset} of {size}"
        assert not part.complete, what
        assert part.torn_bytes <= offset, what
        _assert_prefix(part, whole, what)
        seen.add(part.imu.n)
    # The cuts land in different places: a real spread of prefixes, from short to whole.
    assert len(seen) >= 10, sorted(seen)
    assert max(seen) == whole.imu.n

    # Cut inside the header or the session metadata: not a session yet, said in one line.
    for offset in (0, 4, 8, start_size // 2, start_size - 1):
        cut = tmp_path / f"head{offset}.mcap"
        cut.write_bytes(data[:offset])
        _one_line_session_error(cut)

    # A truncated file can be recovered, and the result holds the same prefix.
    cut = tmp_path / "to_recover.mcap"
    cut.write_bytes(data[:offsets[len(offsets) // 2]])
    before = read_session(cut)
    report = sf.recover_session(cut)
    assert not report.was_complete
    after = read_session(cut)
    assert after.complete and after.imu.n == before.imu.n
    _assert_prefix(after, whole, "recovered")


@pytest.mark.parametrize("missing", [1, 8])
def test_a_file_missing_its_closing_magic_is_not_complete(tmp_path, missing):
    original = tmp_path / "whole.mcap"
    _write_session(original, frames=50)
    whole = read_session(original)
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(original.read_bytes()[:-missing])
    part = read_session(cut)
    _assert_prefix(part, whole, f"{missing} bytes cut")
    assert part.imu.n == whole.imu.n
    assert not part.complete
    assert not sf.recover_session(cut).was_complete
    assert read_session(cut).complete


def test_recover_refuses_a_file_that_is_still_being_recorded(tmp_path):
    path = tmp_path / "live.mcap"
    writer = SessionWriter(path, session={"subject": "T01"}, sites=SITES4)
    try:
        for k in range(50):
            writer.write_imu(_imu_frame(k))
        writer.flush()
        with pytest.raises(SessionFileError):
            sf.recover_session(path)
    finally:
        for k in range(50, 100):
            writer.write_imu(_imu_frame(k))
        writer.close()
    assert read_session(path).imu.n == 100 * 10


def test_a_file_copied_while_being_written_opens_as_a_prefix(tmp_path):
    """A copy taken mid-recording (a backup, or what a crash leaves) reads like a cut file."""
    path = tmp_path / "live.mcap"
    writer = SessionWriter(path, session={"subject": "T01"}, sites=SITES4,
                           fsync_interval_s=0.0)
    copies = []
    for k in range(60):
        writer.write_imu(_imu_frame(k))
        if (k + 1) % 10 == 0:
            writer.flush(fsync=False)
            copy = tmp_path / f"copy{k}.mcap"
            shutil.copyfile(path, copy)
            copies.append((copy, k + 1))
    writer.close()
    whole = read_session(path)
    for copy, frames in copies:
        part = read_session(copy)
        assert part.imu.n == frames * 10
        _assert_prefix(part, whole, str(copy))


# --------------------------------------------------------------------------------------------
# Markers from stdin


def test_record_cli_markers_from_stdin_then_q(tmp_path):
    out = tmp_path / "sessions"
    path = out / "marked.mcap"
    stderr_file = tmp_path / "marked.err"
    with open(tmp_path / "marked.out", "wb") as so, open(stderr_file, "wb") as se:
        proc = _start_record(out, "marked", "--duration", "120", stdout=so, stderr=se)
        try:
            _wait_for_growth(path, proc, stderr_file)
            proc.stdin.write(b"m first\n")
            proc.stdin.flush()
            time.sleep(0.3)
            proc.stdin.write(b"m\n")
            proc.stdin.flush()
            time.sleep(0.3)
            proc.stdin.write(b"q\n")
            proc.stdin.flush()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdin.close()
    stderr = stderr_file.read_text(errors="replace")
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and not _error_lines(stderr), stderr
    assert "stopped (q)" in stderr, stderr
    assert (tmp_path / "marked.out").read_text().strip() == str(path)

    contents = read_session(path)
    assert contents.complete and contents.torn_bytes == 0
    assert [m["label"] for m in contents.markers] == ["first", "marker 2"]
    assert [m["index"] for m in contents.markers] == [1, 2]
    times = [m["time_s"] for m in contents.markers]
    assert times[0] < times[1]
    _assert_contiguous(contents, "markers")
    kinds = [e["kind"] for e in contents.events]
    assert kinds[0] == "recording_started" and "recording_stopped" in kinds
