"""``imucap stream --model … --to …``: the emulator through the serial-free driver, the model and
all three live sinks at once, each received by a real client."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="make test installs PyTorch's CPU build")
pytest.importorskip("hydra", reason="make test installs hydra-core")
osc_server = pytest.importorskip("pythonosc.osc_server", reason="make test installs python-osc")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from imucap.datasets.synth import synthesize
    from imucap.models.config import compose_config
    from imucap.models.train import train

    root = tmp_path_factory.mktemp("stream")
    synthesize(root / "ds", subjects=3, minutes=0.2, imu_rate_hz=100, placement="face6", seed=4)
    run = train(compose_config(["experiment=ci_tiny", f"data.path={root / 'ds'}",
                                f"trainer.out_dir={root / 'run'}", "trainer.max_steps=4",
                                "trainer.epochs=1"]))
    return run / "best"


def test_stream_drives_livelink_vmc_and_lsl_at_once(checkpoint):
    from pythonosc.dispatcher import Dispatcher

    from imucap.sinks.livelink import LiveLinkReceiver
    from imucap.sinks.lsl import import_pylsl

    pylsl = import_pylsl()
    applies, vals = [], []
    dispatcher = Dispatcher()
    dispatcher.map("/VMC/Ext/Blend/Apply", lambda *a: applies.append(1))
    dispatcher.map("/VMC/Ext/Blend/Val", lambda addr, name, value: vals.append((name, value)))
    server = osc_server.ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = f"imucap-test-{os.getpid()}"
    with LiveLinkReceiver(port=0, host="127.0.0.1") as receiver:
        port = receiver.address[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "imucap", "stream", "--device", "emulator:face6",
             "--model", str(checkpoint), "--duration", "8",
             "--to", f"livelink://127.0.0.1:{port}",
             "--to", f"vmc://127.0.0.1:{server.server_address[1]}", "--to", f"lsl://{name}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            streams = pylsl.resolve_byprop("name", f"{name} blendshapes", timeout=30)
            assert streams, "no LSL blendshape stream appeared"
            inlet = pylsl.StreamInlet(streams[0])
            samples = []
            packets = []
            while len(samples) < 60 or len(packets) < 60:
                chunk, _ = inlet.pull_chunk(timeout=0.2)
                samples += chunk
                while (packet := receiver.read(timeout_s=0.01)) is not None:
                    packets.append(packet)
                if proc.poll() is not None:
                    break
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        while (packet := receiver.read(timeout_s=0.2)) is not None:
            packets.append(packet)
    server.shutdown()
    assert proc.returncode == 0, err
    assert len(packets) >= 60 and len(samples) >= 60 and len(applies) >= 60, (out, err)
    # Live Link: consecutive 60 Hz frame numbers from one subject, weights in [0, 1].
    numbers = np.array([p.frame_number for p in packets])
    assert np.median(np.diff(numbers)) == 1 and packets[0].frame_rate_hz == 60
    assert all(0 <= p.weights.min() and p.weights.max() <= 1 for p in packets)
    # VMC: 52 named values per Apply; LSL: 52 channels.
    assert len(vals) >= 52 * len(applies) - 52 and "JawOpen" in {n for n, _ in vals}
    assert len(samples[0]) == 52
    assert "face" in out and "frames/s" in out and "livelink" in out


def test_stream_bad_destination_is_one_line(checkpoint):
    result = subprocess.run([sys.executable, "-m", "imucap", "stream", "--device",
                             "emulator:face6", "--model", str(checkpoint), "--to",
                             "osc://127.0.0.1:9000", "--duration", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown sink 'osc'" in lines[0], result.stderr
