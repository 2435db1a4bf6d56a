"""FanOut (a slow sink never holds up the others or the caller), rate thinning, sink URIs."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from imucap.inference.engine import FaceFrame
from imucap.sinks import (
    FanOut,
    LiveLinkReceiver,
    LiveLinkSender,
    LslSink,
    Sink,
    SinkError,
    VmcSender,
    open_sink,
    sink_from_uri,
)

TIMEOUT_S = 10.0


class RecordingSink(Sink):
    """Keeps every frame it is sent, with the host time it got it."""

    def __init__(self, name: str = "memory://fast") -> None:
        super().__init__(name)
        self.frames: list[FaceFrame] = []
        self.arrivals: list[float] = []

    def _open(self) -> None:
        pass

    def _send(self, frame: FaceFrame) -> int:
        self.arrivals.append(time.monotonic())
        self.frames.append(frame)
        return 0

    def _close(self) -> None:
        pass


class SlowSink(RecordingSink):
    """Takes ``delay_s`` per frame, or blocks until ``release`` is set."""

    def __init__(self, delay_s: float | None = None) -> None:
        super().__init__("memory://slow")
        self.delay_s = delay_s
        self.release = threading.Event()

    def _send(self, frame: FaceFrame) -> int:
        if self.delay_s is None:
            # Blocks until released; should the wait time out (the caller was stuck behind
            # this sink), stop blocking so the test fails on its timings instead of hanging.
            if not self.release.wait(TIMEOUT_S):
                self.release.set()
        else:
            time.sleep(self.delay_s)
        return super()._send(frame)


class FailingOpenSink(RecordingSink):
    def _open(self) -> None:
        raise SinkError("cannot reach the moon: try again tomorrow")


class BuggySink(RecordingSink):
    def _send(self, frame: FaceFrame) -> int:
        if len(self.frames) == 0 and not getattr(self, "failed", False):
            self.failed = True
            raise ValueError("a bug in a sink")
        return super()._send(frame)


def frame_at(time_s: float) -> FaceFrame:
    return FaceFrame(time_s=time_s, weights=np.full(52, 0.5, np.float32), confidence=1.0)


def paced_send(out: FanOut, n: int, rate_hz: float = 60.0) -> tuple[list[float], list[float]]:
    """Sends ``n`` frames stamped with the host clock, one every 1/rate_hz s like an engine.

    Returns the time each ``send`` was called and how long it took.
    """
    start = time.monotonic()
    sent_at, costs = [], []
    for k in range(n):
        due = start + k / rate_hz
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # the frame clock of a 60 Hz producer, not synchronisation
        now = time.monotonic()
        out.send(frame_at(now))
        sent_at.append(now)
        costs.append(time.monotonic() - now)
    return sent_at, costs


# --- a slow sink ---------------------------------------------------------------------------------


def test_a_blocked_sink_holds_up_neither_the_caller_nor_a_real_udp_sink():
    n, queue_size = 60, 8
    slow = SlowSink()  # blocks inside send() until released
    with LiveLinkReceiver(port=0, host="127.0.0.1") as rx:
        fast = LiveLinkSender("127.0.0.1", rx.address[1], subject="fast")
        out = FanOut([slow, fast], rate_hz=60, queue_size=queue_size).open()
        try:
            sent_at, costs = paced_send(out, n)
            packets = []
            while len(packets) < n and (packet := rx.read(timeout_s=TIMEOUT_S)) is not None:
                packets.append(packet)
        finally:
            slow.release.set()
            out.close()
    assert len(packets) == n, f"the fast sink delivered {len(packets)} of {n} frames"
    expected = [int(np.floor(t * 60)) for t in sent_at]
    assert [p.frame_number for p in packets] == expected
    lateness = [p.arrival_time_s - t for p, t in zip(packets, sent_at, strict=True)]
    assert max(lateness) < 0.5, f"fast sink late by up to {max(lateness):.3f} s"
    assert max(costs) < 0.1, f"send() took up to {max(costs):.3f} s"

    stats = out.stats()
    assert stats.frames_in == n and stats.frames_thinned == 0
    fast_stats = stats.sinks[f"livelink://127.0.0.1:{fast.port}"]
    slow_stats = stats.sinks["memory://slow"]
    assert (fast_stats.frames_sent, fast_stats.frames_dropped) == (n, 0)
    # Blocked the whole time: it took one frame, kept a queue's worth, lost the rest.
    assert slow_stats.frames_dropped >= n - queue_size - 1
    assert slow_stats.frames_sent + slow_stats.frames_dropped == n
    assert not slow.is_open and not fast.is_open


def test_a_50ms_sink_counts_drops_while_the_fast_one_gets_every_frame_on_time():
    n = 30
    slow, fast = SlowSink(delay_s=0.05), RecordingSink()
    with FanOut([slow, fast], rate_hz=60) as out:
        loop_start = time.monotonic()
        sent_at, _ = paced_send(out, n)
        loop_s = time.monotonic() - loop_start
    # A caller waiting on the slow sink would need n * 50 ms = 1.5 s; paced, it needs 0.5 s.
    assert loop_s < n / 60 + 0.5, f"the caller was held up: {loop_s:.2f} s for {n} frames"
    assert [f.time_s for f in fast.frames] == sent_at
    lateness = np.array(fast.arrivals) - np.array(sent_at)
    assert lateness.max() < 0.3, f"fast sink late by up to {lateness.max():.3f} s"
    stats = out.stats()
    assert stats.sinks["memory://fast"].frames_dropped == 0
    slow_stats = stats.sinks["memory://slow"]
    assert slow_stats.frames_dropped > 0
    assert slow_stats.frames_sent + slow_stats.frames_dropped == n
    assert slow_stats.frames_sent == len(slow.frames)
    assert slow_stats.mean_send_us > 40_000


# --- rate thinning -------------------------------------------------------------------------------


def thin(times_s, rate_hz) -> tuple[list[float], int]:
    sink = RecordingSink()
    with FanOut([sink], rate_hz=rate_hz, queue_size=10_000) as out:
        for t in times_s:
            out.send(frame_at(t))
    return [f.time_s for f in sink.frames], out.stats().frames_thinned


def test_frames_faster_than_the_rate_are_thinned_and_counted():
    times = [100.0 + k / 120 for k in range(120)]
    kept, thinned = thin(times, 60)
    assert kept == times[::2] and thinned == 60


def test_thinning_keeps_the_average_rate_of_an_uneven_stream():
    kept, thinned = thin([k / 90 for k in range(900)], 60)  # 10 s at 90 Hz
    assert len(kept) == pytest.approx(600, abs=2) and thinned == 900 - len(kept)
    assert np.diff(kept).max() < 2.5 / 60


def test_jittered_frames_at_the_rate_are_all_kept_and_a_pause_lets_no_burst_through():
    rng = np.random.default_rng(0)
    times = list(np.arange(300) / 60 + rng.uniform(-0.003, 0.003, 300))
    kept, thinned = thin(times, 60)
    assert thinned == 0 and len(kept) == 300
    # After a 5 s pause, 200 Hz frames: due times restart at 5 s, not at 1/60 s (which would
    # let every frame through to catch up); a frame may be a quarter period early.
    burst_after_pause = [0.0, 5.0] + [5.0 + k / 200 for k in range(1, 11)]
    kept, _ = thin(burst_after_pause, 60)
    assert kept == [0.0, 5.0, 5.0 + 3 / 200, 5.0 + 6 / 200, 5.0 + 10 / 200]


def test_no_rate_means_no_thinning():
    kept, thinned = thin([1.0] * 5, None)
    assert len(kept) == 5 and thinned == 0


# --- failures ------------------------------------------------------------------------------------


def test_a_sink_that_fails_to_open_is_reported_and_left_out(caplog):
    good = RecordingSink()
    with caplog.at_level(logging.WARNING, logger="imucap.sinks.fanout"):
        out = FanOut([LiveLinkSender("no-such-host.invalid"), FailingOpenSink("memory://moon"),
                      good], rate_hz=60, queue_size=100).open()
    for k in range(5):
        out.send(frame_at(k / 60))
    out.close()
    stats = out.stats()
    assert set(stats.failed) == {"livelink://no-such-host.invalid:11111", "memory://moon"}
    assert "cannot resolve" in stats.failed["livelink://no-such-host.invalid:11111"]
    assert list(stats.sinks) == ["memory://fast"] and len(good.frames) == 5
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("\n" not in w and "left out" in w for w in warnings)


def test_when_every_sink_fails_to_open_fanout_raises_one_line():
    out = FanOut([FailingOpenSink("memory://a"), FailingOpenSink("memory://b")])
    with pytest.raises(SinkError, match="no sink could be opened") as info:
        out.open()
    assert "memory://a" in str(info.value) and "\n" not in str(info.value)


def test_a_sink_that_raises_is_counted_and_keeps_its_thread():
    buggy = BuggySink("memory://buggy")
    with FanOut([buggy], rate_hz=None, queue_size=100) as out:
        for k in range(3):
            out.send(frame_at(k))
    stats = out.stats().sinks["memory://buggy"]
    assert stats.errors == 1 and "a bug in a sink" in stats.last_error
    assert len(buggy.frames) == 2


def test_sinks_with_the_same_name_get_their_own_stats():
    a, b = RecordingSink(), RecordingSink()
    with FanOut([a, b], rate_hz=None) as out:
        out.send(frame_at(0.0))
    assert set(out.stats().sinks) == {"memory://fast", "memory://fast#2"}


def test_send_before_open_is_refused():
    with pytest.raises(SinkError, match="not open"):
        FanOut([RecordingSink()]).send(frame_at(0.0))


# --- URIs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri, kind, host, port", [
    ("livelink://10.0.0.5:9000", LiveLinkSender, "10.0.0.5", 9000),
    ("livelink://10.0.0.5", LiveLinkSender, "10.0.0.5", 11111),
    ("livelink://", LiveLinkSender, "127.0.0.1", 11111),
    ("vmc://studio.local:39540", VmcSender, "studio.local", 39540),
    ("vmc://[::1]", VmcSender, "::1", 39539),
    ("VMC://host", VmcSender, "host", 39539),
])
def test_udp_uris(uri, kind, host, port):
    sink = sink_from_uri(uri)
    assert type(sink) is kind and (sink.host, sink.port) == (host, port)
    assert not sink.is_open


def test_livelink_uri_options():
    sink = sink_from_uri("livelink://127.0.0.1?subject=face&fps=30", rate_hz=60)
    assert sink.subject == "face" and sink.rate == (30, 1)
    assert sink_from_uri("livelink://127.0.0.1", rate_hz=50).rate == (50, 1)


def test_lsl_uris():
    plain = sink_from_uri("lsl")
    assert isinstance(plain, LslSink) and plain.stream_name == "imucap"
    named = sink_from_uri("lsl://face?action_units=0", rate_hz=30)
    assert (named.stream_name, named.rate_hz, named.au_source_id) == ("face", 30.0, None)
    assert sink_from_uri("lsl://face?rate_hz=90", rate_hz=30).rate_hz == 90.0


@pytest.mark.parametrize("uri, message", [
    ("osc://127.0.0.1", "unknown sink 'osc' in 'osc://127.0.0.1': use one of "
                        "livelink://HOST:PORT, vmc://HOST:PORT, lsl://NAME"),
    ("", "empty sink URI: use one of livelink://HOST:PORT, vmc://HOST:PORT, lsl://NAME"),
    ("vmc://host:70000", "port 70000 in 'vmc://host:70000' is out of range: give a UDP port "
                         "from 1 to 65535"),
    ("livelink://host:0", "port 0 in 'livelink://host:0' is out of range: give a UDP port "
                          "from 1 to 65535"),
    ("vmc://host:abc", "port 'abc' in 'vmc://host:abc' is not a number: give a UDP port from "
                       "1 to 65535"),
    ("livelink://host?subjekt=x", "unknown option 'subjekt' in 'livelink://host?subjekt=x': "
                                  "livelink sinks take subject, device_id, fps"),
    ("vmc://host?x=1", "unknown option 'x' in 'vmc://host?x=1': vmc sinks take none"),
    ("lsl://face?rate_hz=fast", "option rate_hz='fast' in 'lsl://face?rate_hz=fast' is not a "
                                "valid number"),
])
def test_uri_mistakes_are_one_clear_line(uri, message):
    with pytest.raises(SinkError) as info:
        sink_from_uri(uri)
    assert str(info.value) == message


def test_open_sink_opens_and_reports_a_host_that_does_not_resolve():
    with open_sink("vmc://127.0.0.1:39539") as sink:
        assert sink.is_open
    assert not sink.is_open
    with pytest.raises(SinkError, match="cannot resolve host 'no-such-host.invalid'"):
        open_sink("livelink://no-such-host.invalid")


def test_fanout_takes_uris():
    out = FanOut(["vmc://127.0.0.1:39539", "livelink://127.0.0.1:11111"], rate_hz=30)
    assert [s.name for s in out.sinks] == ["vmc://127.0.0.1:39539",
                                           "livelink://127.0.0.1:11111"]
    assert out.sinks[1].rate == (30, 1)


def test_importing_sinks_loads_neither_python_osc_nor_pylsl():
    code = ("import sys, imucap.sinks; "
            "print(sorted(m for m in ('pythonosc', 'pylsl', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
