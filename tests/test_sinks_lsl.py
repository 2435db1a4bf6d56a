"""Lab Streaming Layer: a real pylsl inlet reads what the sink's outlets send."""

from __future__ import annotations

import sys
import time
import uuid

import numpy as np
import pytest

from imucap.inference.engine import FaceFrame
from imucap.sinks import LslSink, SinkError
from imucap.sinks.lsl import import_pylsl
from imucap.vocab import ARKIT_NAMES, AU_NAMES, au_intensities

TIMEOUT_S = 10.0


def _pylsl_or_reason():
    try:
        return import_pylsl(), ""
    except SinkError as exc:
        return None, str(exc)


pylsl, WHY_NOT = _pylsl_or_reason()
needs_liblsl = pytest.mark.skipif(pylsl is None, reason=f"no usable pylsl/liblsl: {WHY_NOT}")


@pytest.fixture
def sink():
    """An open sink with streams of a name no other run uses."""
    name = f"imucap-test-{uuid.uuid4().hex[:8]}"
    with LslSink(name, rate_hz=60.0, source_id=f"test/{name}") as s:
        yield s


class Inlet:
    """An inlet on one of the sink's streams, found by its source id."""

    def __init__(self, source_id: str) -> None:
        found = pylsl.resolve_byprop("source_id", source_id, 1, TIMEOUT_S)
        assert found, f"no LSL stream with source_id {source_id!r} within {TIMEOUT_S} s"
        self.inlet = pylsl.StreamInlet(found[0], max_buflen=10)
        self.info = self.inlet.info(TIMEOUT_S)
        self.inlet.open_stream(TIMEOUT_S)  # samples pushed from now on are delivered

    def channels(self) -> list[tuple[str, str, str]]:
        out = []
        channel = self.info.desc().child("channels").child("channel")
        while not channel.empty():
            out.append((channel.child_value("label"), channel.child_value("unit"),
                        channel.child_value("type")))
            channel = channel.next_sibling()
        return out

    def pull(self) -> tuple[np.ndarray, float]:
        sample, stamp = self.inlet.pull_sample(TIMEOUT_S)
        assert sample is not None, f"no sample within {TIMEOUT_S} s"
        return np.asarray(sample, np.float32), stamp

    def close(self) -> None:
        self.inlet.close_stream()
        del self.inlet


def frame(weights, time_s=None, aus=None) -> FaceFrame:
    return FaceFrame(time_s=time.monotonic() if time_s is None else time_s,
                     weights=np.asarray(weights, np.float32), confidence=1.0, aus=aus)


@needs_liblsl
def test_stream_descriptions_carry_labels_units_rate_and_source_id(sink):
    blend = Inlet(sink.blendshape_source_id)
    aus = Inlet(sink.au_source_id)
    try:
        assert blend.info.name() == f"{sink.stream_name} blendshapes"
        assert blend.info.type() == "Blendshapes"
        assert blend.info.channel_count() == 52
        assert blend.info.nominal_srate() == 60.0
        assert blend.info.channel_format() == pylsl.cf_float32
        assert blend.info.source_id() == f"test/{sink.stream_name}/blendshapes"
        assert blend.channels() == [(name, "normalized", "Blendshape") for name in ARKIT_NAMES]

        assert aus.info.type() == "ActionUnits" and aus.info.channel_count() == 36
        assert aus.info.nominal_srate() == 60.0
        assert aus.info.source_id() == f"test/{sink.stream_name}/aus"
        # OpenFace's column names: intensities, then presence.
        assert aus.channels() == [(f"{code}_r", "FACS intensity 0-5", "ActionUnit")
                                  for code in AU_NAMES] + [
                                      (f"{code}_c", "presence 0/1", "ActionUnit")
                                      for code in AU_NAMES]
        assert AU_NAMES[0] == "AU01" and len(AU_NAMES) == 18
        assert aus.channels()[0][0] == "AU01_r" and aus.channels()[-1][0] == "AU45_c"
    finally:
        blend.close()
        aus.close()


@needs_liblsl
def test_values_and_time_stamps_on_lsl_clock(sink):
    blend = Inlet(sink.blendshape_source_id)
    aus = Inlet(sink.au_source_id)
    rng = np.random.default_rng(1)
    try:
        for _ in range(5):
            weights = rng.random(52, dtype=np.float32)
            au_values = rng.random(18, dtype=np.float32) * 5
            age_s = 0.25  # the frame's instant was this long before it is sent
            lsl_before = pylsl.local_clock()
            sink.send(frame(weights, time.monotonic() - age_s, au_values))
            lsl_after = pylsl.local_clock()
            got, stamp = blend.pull()
            got_aus, au_stamp = aus.pull()
            np.testing.assert_array_equal(got, weights)
            np.testing.assert_array_equal(got_aus[:18], au_values)
            np.testing.assert_array_equal(got_aus[18:], (au_values >= 1.0).astype(np.float32))
            # The stamp is the frame's time carried onto LSL's clock.
            assert lsl_before - age_s - 0.005 <= stamp <= lsl_after - age_s + 0.005
            assert au_stamp == stamp
    finally:
        blend.close()
        aus.close()
    stats = sink.stats()
    assert stats.frames_sent == 5 and stats.errors == 0
    assert stats.bytes_sent == 5 * (52 + 36) * 4


@needs_liblsl
def test_missing_aus_are_estimated_or_sent_as_nan():
    name = f"imucap-test-{uuid.uuid4().hex[:8]}"
    weights = np.linspace(0.0, 1.0, 52, dtype=np.float32)
    for estimate in (True, False):
        with LslSink(name, estimate_aus=estimate, source_id=f"test/{name}/{estimate}") as s:
            inlet = Inlet(s.au_source_id)
            try:
                s.send(frame(weights))
                got, _ = inlet.pull()
            finally:
                inlet.close()
        if estimate:
            np.testing.assert_array_equal(got[:18], au_intensities(weights))
            np.testing.assert_array_equal(got[18:], au_intensities(weights) >= 1.0)
            assert got.max() > 0 and 0 < got[18:].sum() < 18
        else:
            assert np.isnan(got).all()


@needs_liblsl
def test_presence_threshold_from_the_uri():
    from imucap.sinks import sink_from_uri

    name = f"imucap-test-{uuid.uuid4().hex[:8]}"
    values = np.array([0.5, 1.5, 2.5] + [0.0] * 15, np.float32)
    with sink_from_uri(f"lsl://{name}?presence_threshold=2&source_id=test/{name}") as s:
        inlet = Inlet(s.au_source_id)
        try:
            s.send(frame(np.zeros(52), aus=values))
            got, _ = inlet.pull()
        finally:
            inlet.close()
    np.testing.assert_array_equal(got[18:21], [0.0, 0.0, 1.0])
    with pytest.raises(SinkError, match="presence_threshold"):
        sink_from_uri("lsl://x?presence_threshold=9")


@needs_liblsl
def test_without_action_units_only_the_blendshape_stream_exists():
    name = f"imucap-test-{uuid.uuid4().hex[:8]}"
    with LslSink(name, action_units=False, source_id=f"test/{name}") as s:
        assert s.au_source_id is None
        assert pylsl.resolve_byprop("source_id", f"test/{name}/aus", 1, 0.5) == []
        s.send(frame(np.zeros(52)))
        assert s.stats().bytes_sent == 52 * 4


def test_default_source_id_is_stable_across_runs():
    a, b = LslSink("face"), LslSink("face")
    assert a.blendshape_source_id == b.blendshape_source_id
    assert a.blendshape_source_id != LslSink("other").blendshape_source_id
    assert a.name == "lsl://face"


def test_missing_pylsl_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pylsl", None)
    with pytest.raises(SinkError) as info:
        LslSink("x").open()
    assert "pip install 'imucap[live]'" in str(info.value) and "\n" not in str(info.value)


def test_bad_rate_is_refused_at_once():
    with pytest.raises(SinkError, match="rate_hz"):
        LslSink("x", rate_hz=0)
