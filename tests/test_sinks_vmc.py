"""VMC over OSC: a real python-osc server receives the bundles the sender sends."""

from __future__ import annotations

import socket
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("pythonosc", reason="the VMC sink needs python-osc (imucap[live])")

from pythonosc.dispatcher import Dispatcher  # noqa: E402
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder  # noqa: E402
from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402
from pythonosc.osc_server import BlockingOSCUDPServer  # noqa: E402

from imucap.inference.engine import FaceFrame  # noqa: E402
from imucap.sinks import SinkError, VmcSender  # noqa: E402
from imucap.vocab import ARKIT_NAMES  # noqa: E402

TIMEOUT_S = 10.0
# Perfect-sync clip names: ARKit's camelCase with the first letter upper-cased.
PERFECT_SYNC = [name[0].upper() + name[1:] for name in ARKIT_NAMES]


class Recorder:
    """A python-osc server on an ephemeral port that keeps every message in arrival order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple]] = []
        self.applies = 0
        self._cond = threading.Condition()
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._on_message)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _on_message(self, address: str, *args) -> None:
        with self._cond:
            self.messages.append((address, args))
            if address == "/VMC/Ext/Blend/Apply":
                self.applies += 1
                self._cond.notify_all()

    def wait_for_applies(self, n: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.applies >= n, TIMEOUT_S)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def make_frames(n: int) -> list[FaceFrame]:
    rng = np.random.default_rng(7)
    return [FaceFrame(time_s=200.0 + k / 60, weights=rng.random(52, dtype=np.float32),
                      confidence=1.0) for k in range(n)]


def test_receiver_gets_every_blendshape_and_one_apply_per_frame():
    frames = make_frames(12)
    with Recorder() as rx:
        with VmcSender("127.0.0.1", rx.port) as tx:
            for frame in frames:
                tx.send(frame)
            assert rx.wait_for_applies(len(frames)), f"only {rx.applies} Apply messages"
            stats = tx.stats()
        messages = list(rx.messages)
    per_frame = 1 + 1 + 52 + 1
    assert len(messages) == per_frame * len(frames)
    for k, frame in enumerate(frames):
        block = messages[k * per_frame:(k + 1) * per_frame]
        assert block[0] == ("/VMC/Ext/OK", (1,))
        address, (t,) = block[1]
        assert address == "/VMC/Ext/T" and t == pytest.approx(k / 60, abs=1e-4)
        vals = block[2:-1]
        assert all(address == "/VMC/Ext/Blend/Val" for address, _ in vals)
        assert [args[0] for _, args in vals] == PERFECT_SYNC
        np.testing.assert_array_equal(np.float32([args[1] for _, args in vals]), frame.weights)
        assert block[-1] == ("/VMC/Ext/Blend/Apply", ())  # exactly one, after its values
    assert stats.frames_sent == len(frames) and stats.errors == 0
    assert stats.bytes_sent > 52 * 20 * len(frames)


def test_names_include_the_perfect_sync_examples():
    for name in ("EyeBlinkLeft", "JawOpen", "MouthSmileRight", "BrowInnerUp", "TongueOut",
                 "CheekPuff", "NoseSneerLeft"):
        assert name in PERFECT_SYNC


def reference_bundle(time_s: float, weights: np.ndarray) -> bytes:
    """The bundle built message by message with python-osc, the slow obvious way."""
    builder = OscBundleBuilder(IMMEDIATELY)

    def add(address, *args):
        message = OscMessageBuilder(address=address)
        for value, kind in args:
            message.add_arg(value, kind)
        builder.add_content(message.build())

    add("/VMC/Ext/OK", (1, "i"))
    add("/VMC/Ext/T", (time_s, "f"))
    for name, value in zip(PERFECT_SYNC, weights.tolist(), strict=True):
        add("/VMC/Ext/Blend/Val", (name, "s"), (value, "f"))
    add("/VMC/Ext/Blend/Apply")
    return builder.build().dgram


def test_bundle_bytes_equal_those_python_osc_builds_message_by_message():
    frames = make_frames(3)
    with VmcSender("127.0.0.1", 39539) as tx:
        for k, frame in enumerate(frames):
            assert tx.encode(frame) == reference_bundle(np.float32(k / 60), frame.weights)


def test_weights_that_are_not_finite_go_out_as_zero():
    frame = make_frames(1)[0]
    weights = frame.weights.copy()
    weights[[0, 17]] = [np.nan, np.inf]
    with VmcSender() as tx:
        sent = tx.encode(FaceFrame(time_s=0.0, weights=weights, confidence=1.0))
    expected = weights.copy()
    expected[[0, 17]] = 0.0
    assert sent == reference_bundle(0.0, expected)


def test_defaults_and_name():
    sender = VmcSender()
    assert (sender.host, sender.port, sender.name) == ("127.0.0.1", 39539,
                                                       "vmc://127.0.0.1:39539")


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="ECONNREFUSED on a later UDP send is how Linux reports the port")
def test_refused_port_is_counted_never_raised():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with VmcSender("127.0.0.1", port) as tx:
        for frame in make_frames(10):
            tx.send(frame)
        stats = tx.stats()
    assert stats.errors >= 1 and "refused" in stats.last_error.lower()
    assert stats.frames_sent + stats.errors == 10


def test_missing_python_osc_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pythonosc", None)
    with pytest.raises(SinkError) as info:
        VmcSender().open()
    assert "pip install 'imucap[live]'" in str(info.value) and "\n" not in str(info.value)


def test_host_that_does_not_resolve_fails_at_open():
    with pytest.raises(SinkError, match="no-such-host.invalid"):
        VmcSender("no-such-host.invalid").open()
