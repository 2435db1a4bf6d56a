"""The ``imucap`` command as a user runs it: real processes, real pseudo-terminals and sockets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

IMUCAP = [sys.executable, "-m", "imucap"]


def run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([*IMUCAP, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def number(pattern: str, text: str) -> int:
    """The last match in ``text``: the final table comes after the per-second status lines."""
    found = re.findall(pattern, text)
    assert found, f"{pattern!r} not in output:\n{text}"
    return int(found[-1])


def test_version_and_help():
    assert run("--version").stdout.startswith("imucap ")
    out = run("--help").stdout
    for command in ("devices", "stream", "emulate"):
        assert command in out


def test_devices_lists_ports_and_the_emulator_hint():
    result = run("devices")
    assert result.returncode == 0
    assert "emulator:imusic11" in result.stdout


def test_stream_emulator_11_sensors_100hz_zero_loss():
    result = run("stream", "--device", "emulator:imusic11", "--print", "--duration", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "x11 @ 100 Hz" in out
    for site in ("frontalis_l", "orbicularis_oculi_r", "mentalis"):
        assert site in out
    assert number(r"frames lost (\d+)", out) == 0
    assert number(r"samples lost (\d+)", out) == 0
    assert number(r"bad frames (\d+)", out) == 0
    rates = [float(r) for r in re.findall(r"^[a-z_]+_[lr]\s+(\d+\.\d)\s|^mentalis\s+(\d+\.\d)",
                                          out, re.MULTILINE) for r in r if r]
    assert len(rates) == 11 and all(90 < r < 110 for r in rates), rates
    assert number(r"total (\d+) frames", out) > 250


def test_stream_with_faults_shows_injected_counts():
    uri = "emulator:imusic11?drop=0.05&corrupt=0.05&garbage=0.05&seed=2"
    result = run("stream", "--device", uri, "--print", "--duration", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    dropped = number(r"injected: dropped (\d+)", out)
    corrupted = number(r"corrupted (\d+) \(", out)
    garbage = number(r"garbage (\d+) \(", out)
    assert dropped and corrupted and garbage
    lost = number(r"frames lost (\d+)", out)
    # A loss in the very last frame before the stop cannot show: nothing after it arrives.
    assert dropped + corrupted - 1 <= lost <= dropped + corrupted
    assert number(r"bad frames (\d+)", out) in (corrupted + garbage, corrupted + garbage - 1)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*IMUCAP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)


def test_emulate_on_a_pty_path_then_stream_it(tmp_path):
    port = tmp_path / "ttyIMU0"
    emu = _start(["emulate", "--pty", str(port), "--sites", "face6", "--rate-hz", "200",
                  "--duration", "8"])
    try:
        deadline = time.monotonic() + 10
        while not port.exists():
            assert time.monotonic() < deadline and emu.poll() is None, emu.stderr.read()
            time.sleep(0.05)
        result = run("stream", "--device", f"serial:{port}", "--print", "--duration", "2")
    finally:
        emu.terminate()
        out, _ = emu.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    assert "x6 @ 200 Hz" in result.stdout
    assert number(r"frames lost (\d+)", result.stdout) == 0
    assert f"imucap stream --device serial:{port} --print" in out


def test_emulate_over_tcp_then_stream_it():
    emu = _start(["emulate", "--tcp", "127.0.0.1:0", "--duration", "8"])
    try:
        line = ""
        while "TCP:" not in line:
            line = emu.stdout.readline()
            assert line, emu.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        result = run("stream", "--device", f"tcp://127.0.0.1:{port}", "--print",
                     "--duration", "2")
    finally:
        emu.terminate()
        emu.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    assert "x11 @ 100 Hz" in result.stdout
    assert number(r"frames lost (\d+)", result.stdout) == 0


@pytest.mark.parametrize("args, message", [
    (["stream", "--device", "serial:/dev/ttyNOPE0", "--print"], "does not exist"),
    (["stream", "--device", "bogus:thing", "--print"], "unknown device scheme"),
    (["stream", "--device", "emulator:?drop=2", "--print"], "not a probability"),
    (["stream", "--device", "emulator:?speed=fast", "--print"], "unknown device option speed"),
    (["stream", "--device", "emulator:nosuchpreset", "--print"], "unknown site preset"),
    (["stream", "--device", "tcp://127.0.0.1:1", "--print"], "nothing listens"),
    (["stream", "--device", "tcp://no-such-host.invalid:7000", "--print"], "cannot resolve"),
    (["stream", "--device", "emulator:"], "add --print"),
    (["emulate", "--rate-hz", "5000"], "rate_hz must be 1 to 1000"),
    (["emulate", "--tcp", "nowhere"], "needs HOST:PORT"),
])
def test_bad_input_is_one_clear_line(args, message):
    result = run(*args, timeout=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imucap: error: "), result.stderr
    assert message in lines[0]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to drop to an unprivileged user")
def test_permission_denied_says_how_to_fix(tmp_path):
    import serial  # noqa: F401  (loaded before the fork: the child may not read site-packages)

    from imucap.devices.serial import SerialConfig, SerialDevice

    port = tmp_path / "ttyIMU0"
    emu = _start(["emulate", "--pty", str(port), "--duration", "20"])
    try:
        while not port.exists():
            assert emu.poll() is None
            time.sleep(0.05)
        os.chmod(tmp_path, 0o755)  # the link is reachable; the terminal itself is root's
        os.chmod(os.path.realpath(port), 0o600)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child becomes 'nobody' and tries to open the port
            try:
                os.setgid(65534)
                os.setuid(65534)
                SerialDevice(SerialConfig(port=str(port))).connect()
                message = "opened"
            except Exception as exc:  # the message is what the test checks
                message = f"{type(exc).__name__}: {exc}"
            os.write(write_end, message.encode())
            os._exit(0)
        os.close(write_end)
        message = os.read(read_end, 4096).decode()
        os.waitpid(pid, 0)
        os.close(read_end)
    finally:
        emu.terminate()
        emu.communicate(timeout=10)
    assert message.startswith("DevicePermissionError: permission denied on"), message
    assert "dialout" in message


def test_wheel_claims_only_the_imucap_import_name(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(repo)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("imucap-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"imucap", next(t for t in tops if t.endswith(".dist-info"))}
    for module in ("imucap/firmware_bridge/codec.py", "imucap/firmware_bridge/PROTOCOL.md",
                   "imucap/datasets/__init__.py", "imucap/models/__init__.py",
                   "imucap/viewers/__init__.py", "imucap/vocab/blendshapes.py",
                   "imucap/firmware_bridge/vectors/v1.json"):
        assert module in names


def test_core_import_is_light():
    code = ("import sys, time; t = time.perf_counter(); import imucap.devices, imucap.vocab; "
            "print(time.perf_counter() - t); "
            "print(sorted(m for m in ('torch', 'open3d', 'mediapipe', 'bleak', 'serial') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout.split("\n")
    assert out[1] == "[]"  # pyserial too loads only when a port is opened
