"""Blendshape takes: Live Link Face CSV, blendshape CSV (MediaPipe style), BEAT-style JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imucap.datasets.takes import (
    Take,
    TakeError,
    format_timecode,
    parse_timecode,
    read_take,
    write_livelink_csv,
)
from imucap.vocab import ARKIT_NAMES, LIVELINK_CSV_COLUMNS, index_of

# The first lines of a take as the Live Link Face app writes it (built by hand from the
# documented format: Timecode, BlendshapeCount, then 61 PascalCase columns; JawRight before
# JawLeft and MouthRight before MouthLeft, as the app orders them).
APP_HEADER = "Timecode,BlendshapeCount," + ",".join(LIVELINK_CSV_COLUMNS)


def app_row(timecode: str, values: dict[str, float]) -> str:
    cells = [f"{values.get(c, 0.0):.8f}" for c in LIVELINK_CSV_COLUMNS]
    return f"{timecode},61," + ",".join(cells)


def test_timecodes_round_trip():
    assert parse_timecode("01:02:03:30.500", 60) == pytest.approx(3723 + 30.5 / 60)
    for t in (0.0, 0.0167, 1.5, 59.99, 3600.25):
        assert parse_timecode(format_timecode(t, 60), 60) == pytest.approx(t, abs=1e-3 / 60)
    with pytest.raises(ValueError):
        parse_timecode("12.5", 60)


def test_reads_the_app_csv_by_column_name(tmp_path):
    path = tmp_path / "take.csv"
    lines = [APP_HEADER,
             app_row("10:20:30:00.000", {"JawLeft": 0.7, "MouthRight": 0.3, "HeadYaw": 0.1}),
             app_row("10:20:30:01.000", {"EyeBlinkLeft": 1.0}),
             app_row("10:20:30:02.000", {})]
    path.write_text("\n".join(lines) + "\n")
    take = read_take(path)
    assert np.allclose(take.time_s, [0, 1 / 60, 2 / 60])
    assert take.weights[0, index_of("jawLeft")] == pytest.approx(0.7)
    assert take.weights[0, index_of("jawRight")] == 0.0
    assert take.weights[0, index_of("mouthRight")] == pytest.approx(0.3)
    assert take.weights[1, index_of("eyeBlinkLeft")] == 1.0
    assert take.head_ypr[0, 0] == pytest.approx(0.1)
    assert take.missing == ()
    assert take.rate_hz == pytest.approx(60.0)


def test_livelink_csv_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    take = Take(np.arange(50) / 60.0, rng.uniform(0, 1, (50, 52)).astype(np.float32),
                head_ypr=rng.normal(0, 0.2, (50, 3)))
    path = tmp_path / "out.csv"
    write_livelink_csv(path, take)
    back = read_take(path)
    assert np.allclose(back.time_s, take.time_s, atol=1e-5)
    assert np.allclose(back.weights, take.weights, atol=1e-5)
    assert np.allclose(back.head_ypr, take.head_ypr, atol=1e-5)
    header = path.read_text().splitlines()[0].split(",")
    assert header[2:] == list(LIVELINK_CSV_COLUMNS)


def test_mediapipe_style_csv(tmp_path):
    names = ["_neutral", "browDownLeft", "eyeBlink_L", "JawOpen"]
    path = tmp_path / "mp.csv"
    path.write_text("timestamp_ms," + ",".join(names) + "\n0,0.9,0.1,0.2,0.3\n33.3,0.8,0.2,0.9,"
                    "0.4\n")
    take = read_take(path)
    assert np.allclose(take.time_s, [0, 0.0333])
    assert take.weights[1, index_of("eyeBlinkLeft")] == pytest.approx(0.9)
    assert take.weights[1, index_of("jawOpen")] == pytest.approx(0.4)
    assert "tongueOut" in take.missing and "jawOpen" not in take.missing


def test_beat_json(tmp_path):
    path = tmp_path / "beat.json"
    frames = [{"time": k / 30, "weights": [k / 10] * 52} for k in range(5)]
    path.write_text(json.dumps({"names": list(ARKIT_NAMES), "frames": frames}))
    take = read_take(path)
    assert take.weights.shape == (5, 52) and take.weights[4, 0] == pytest.approx(0.4)
    assert take.missing == ()


@pytest.mark.parametrize("name, content, message", [
    ("a.csv", APP_HEADER.replace("JawOpen", "JawOpne") + "\n" + app_row("00:00:00:00.000", {}),
     "unknown columns 'JawOpne' (did you mean 'jawOpen'?)"),
    ("b.csv", APP_HEADER + "\n" + app_row("00:00:00:00.000", {})[:60], "line 2"),
    ("c.csv", APP_HEADER + "\n" + app_row("yesterday", {}), "line 2: 'yesterday'"),
    ("d.csv", "frame,jawOpen\n1,0.2\n", "no time column"),
    ("e.json", '{"names": ["jawOpen"], "frames": [{"time": 0, "weights": [1, 2]}]}',
     "frame 0 has 2 weights for 1 names"),
    ("f.json", "[1, 2]", "expected an object"),
    ("g.txt", "hello", "read .csv"),
    ("h.csv", "Timecode,BlendShapeCount\n", "no data rows"),
])
def test_bad_takes_get_one_clear_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TakeError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")) as info:
        read_take(path)
    assert "\n" not in str(info.value)


def test_timecodes_of_every_frame_time_read_back_exactly():
    # Sub-frames that round to .1000 must carry into the frame, not print as "02.1000".
    for k in range(7200):
        text = format_timecode(k / 60, 60)
        assert len(text.rsplit(".", 1)[1]) == 3, text
        assert parse_timecode(text, 60) == pytest.approx(k / 60, abs=1e-9), text
