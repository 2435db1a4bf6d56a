"""Decoding audio files: WAV of every sample format parsed natively, FLAC/MP3/OGG/M4A and video
sound tracks encoded and decoded by a real ffmpeg, the resampler, streaming in bounded memory,
and one clear line for each kind of bad input."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tracemalloc
import wave
from pathlib import Path

import numpy as np
import pytest

from imucap.audio import AudioError, AudioWarning, Resampler, iter_audio, load_audio
from imucap.audio.io import find_ffmpeg
from imucap.errors import ImucapError

# --------------------------------------------------------------------------------------------
# Helpers: our own WAV writer (every format the decoder claims), tones, measurements

_KINDS = {   # kind: (format tag, bytes per sample, numpy dtype, scale of full scale)
    "pcm8": (1, 1, np.uint8, 128),
    "pcm16": (1, 2, "<i2", 32768),
    "pcm24": (1, 3, None, 2 ** 23),
    "pcm32": (1, 4, "<i4", 2 ** 31),
    "float32": (3, 4, "<f4", 1.0),
    "float64": (3, 8, "<f8", 1.0),
}


def encode_pcm(x: np.ndarray, kind: str) -> bytes:
    """Float frames (n, ch) in [-1, 1] to interleaved little-endian bytes of ``kind``."""
    tag, width, dtype, scale = _KINDS[kind]
    flat = np.asarray(x, np.float64).reshape(-1)
    if tag == 3:
        return flat.astype(dtype).tobytes()
    hi = scale - 1
    q = np.clip(np.round(flat * scale), -scale, hi).astype(np.int64)
    if kind == "pcm8":
        return (q + 128).astype(np.uint8).tobytes()
    if kind == "pcm24":
        u = (q & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3]
        return u.tobytes()
    return q.astype(dtype).tobytes()


def wav_header(kind: str, rate: int, channels: int, data_bytes: int, *,
               extensible: bool = False, riff_size: int | None = None) -> bytes:
    tag, width, _, _ = _KINDS[kind]
    align = width * channels
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align,
                          8 * width, 22, 8 * width, (1 << channels) - 1)
        fmt += struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, 8 * width)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    # A LIST chunk before the data, as many recorders write: the parser has to skip it.
    info = b"INFOISFT" + struct.pack("<I", 6) + b"imucap"
    body += b"LIST" + struct.pack("<I", len(info)) + info
    body += b"data" + struct.pack("<I", data_bytes)
    size = len(body) + data_bytes if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", size) + body


def write_wav(path: Path, x: np.ndarray, rate: int, kind: str = "pcm16", *,
              extensible: bool = False) -> Path:
    x = np.asarray(x)
    x = x[:, None] if x.ndim == 1 else x
    data = encode_pcm(x, kind)
    path.write_bytes(wav_header(kind, rate, x.shape[1], len(data), extensible=extensible)
                     + data + (b"\x00" if len(data) % 2 else b""))
    return path


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(round(seconds * rate))) / rate)


def amplitude_at(y: np.ndarray, freq: float, rate: int) -> float:
    """Amplitude of the ``freq`` component of ``y`` (a whole number of cycles fits)."""
    t = np.arange(len(y)) / rate
    return float(2 * abs(np.dot(y.astype(np.float64), np.exp(-2j * np.pi * freq * t))) / len(y))


def middle(y: np.ndarray, rate: int, seconds: float = 0.5) -> np.ndarray:
    """A whole number of seconds' worth (at 1 kHz: whole cycles) from the middle of ``y``."""
    n = int(seconds * rate)
    a = (len(y) - n) // 2
    return y[a:a + n]


def check_tone(y: np.ndarray, freq: float, amp: float, rate: int = 16000, *,
               rel: float = 0.01, purity: float = 0.999) -> None:
    """``y`` is a sine of ``freq`` and ``amp``: the amplitude matches and nearly all of the
    energy is at that frequency (so the frequency is right, and nothing else got in)."""
    seg = middle(y, rate)
    a = amplitude_at(seg, freq, rate)
    assert a == pytest.approx(amp, rel=rel)
    assert (a ** 2 / 2) / np.mean(seg.astype(np.float64) ** 2) > purity


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    exe = find_ffmpeg()
    if exe is None:
        pytest.skip("no ffmpeg: neither on PATH nor from imageio-ffmpeg (pip install "
                    "'imucap[audio]')")
    return exe


def run_ffmpeg(exe: str, *args: str) -> None:
    res = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise AssertionError(f"ffmpeg failed: {res.stderr.strip()}")


def has_encoder(exe: str, name: str) -> bool:
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True,
                         timeout=60).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


# --------------------------------------------------------------------------------------------
# WAV, natively


@pytest.mark.parametrize("kind,rate,channels,extensible", [
    ("pcm16", 44100, 1, False),
    ("pcm16", 48000, 2, False),
    ("pcm24", 48000, 2, False),
    ("pcm24", 44100, 6, True),
    ("pcm32", 16000, 1, False),
    ("pcm8", 8000, 1, False),
    ("float32", 44100, 2, False),
    ("float32", 22050, 1, True),
    ("float64", 16000, 1, False),
])
def test_wav_formats_decode_to_the_same_tone(tmp_path, kind, rate, channels, extensible):
    x = np.repeat(tone(1000, 1.0, rate, 0.5)[:, None], channels, axis=1)
    path = write_wav(tmp_path / "t.wav", x, rate, kind, extensible=extensible)
    clip = load_audio(path)
    assert clip.rate == 16000 and clip.samples.dtype == np.float32
    assert clip.samples.ndim == 1 and len(clip.samples) == 16000
    assert clip.duration_s == pytest.approx(1.0)
    assert (clip.source_rate, clip.source_channels, clip.container) == (rate, channels, "wav")
    width = _KINDS[kind][1]
    assert clip.codec == {"pcm8": "pcm_u8", "float32": "pcm_f32le", "float64": "pcm_f64le"}.get(
        kind, f"pcm_s{8 * width}le")
    check_tone(clip.samples, 1000, 0.5, rel=0.02 if kind == "pcm8" else 0.002,
               purity=0.99 if kind == "pcm8" else 0.9999)
    assert clip.peak == pytest.approx(0.5, abs=0.01)
    assert clip.rms_db == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert clip.clipped_fraction == 0 and not clip.silent and not clip.truncated


def test_stdlib_wave_file_and_stereo_mixdown(tmp_path):
    rate = 44100
    left, right = tone(1000, 1.0, rate, 0.6), tone(3000, 1.0, rate, 0.2)
    q = np.round(np.stack([left, right], axis=1) * 32767).astype("<i2")
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(q.tobytes())
    clip = load_audio(path)
    assert clip.source_channels == 2 and clip.source_rate == rate
    seg = middle(clip.samples, 16000)
    # The mean of the channels: each tone at half its amplitude.
    assert amplitude_at(seg, 1000, 16000) == pytest.approx(0.3, rel=0.005)
    assert amplitude_at(seg, 3000, 16000) == pytest.approx(0.1, rel=0.005)
    assert clip.peak == pytest.approx(0.6, abs=1e-3)


def test_silence_and_cancelling_channels_are_reported_not_errors(tmp_path):
    quiet = load_audio(write_wav(tmp_path / "zero.wav", np.zeros(8000), 16000))
    assert quiet.silent and quiet.rms_db == pytest.approx(-200) and quiet.peak == 0
    assert len(quiet.samples) == 8000 and not quiet.samples.any()
    x = tone(440, 0.5, 16000, 0.5)
    opposite = load_audio(write_wav(tmp_path / "opp.wav", np.stack([x, -x], 1), 16000))
    assert opposite.silent and opposite.peak == pytest.approx(0.5, abs=1e-3)
    faint = load_audio(write_wav(tmp_path / "faint.wav", tone(440, 0.5, 16000, 1e-4), 16000,
                                 "float32"))
    assert faint.silent and faint.rms_db == pytest.approx(-83.0, abs=0.2)


def test_clipping_is_counted_per_channel_before_mixing(tmp_path):
    rate, n = 16000, 16000
    left = tone(50, 1.0, rate, 0.2)
    left[:1600:2], left[1:1600:2] = 1.0, -1.0          # 10 % of the left channel at full scale
    right = np.zeros(n)
    clip = load_audio(write_wav(tmp_path / "clip.wav", np.stack([left, right], 1), rate))
    # 1600 of 32000 source samples; the mono mix never reaches full scale.
    assert clip.clipped_fraction == pytest.approx(1600 / 32000)
    assert np.abs(clip.samples).max() < 0.55 and clip.peak == pytest.approx(1.0, abs=1e-4)
    hot = tone(1000, 1.0, rate, 1.5).clip(-1, 1)     # a sine driven into the rails, float WAV
    clip = load_audio(write_wav(tmp_path / "hot.wav", hot, rate, "float32"))
    assert clip.clipped_fraction == pytest.approx(np.mean(np.abs(hot) >= 1.0))
    assert 0.4 < clip.clipped_fraction < 0.7


def test_truncated_wav_decodes_what_is_there_and_warns(tmp_path):
    path = write_wav(tmp_path / "cut.wav", tone(1000, 1.0, 16000), 16000)
    data = path.read_bytes()
    cut = len(data) // 2 + 1                          # mid-frame, as a crash would
    path.write_bytes(data[:cut])
    whole_frames = (cut - len(wav_header("pcm16", 16000, 1, 0))) // 2
    with pytest.warns(AudioWarning, match=r"truncated: its header promises 1\.00 s of audio "
                                          r"but the file holds 0\.50 s"):
        clip = load_audio(path)
    assert clip.truncated and len(clip.samples) == whole_frames
    check_tone(clip.samples, 1000, 0.5)


def test_streamed_wav_without_sizes_reads_to_the_end(tmp_path, recwarn):
    # Writers that cannot seek back leave 0xFFFFFFFF in the sizes: not truncation.
    x = tone(1000, 0.75, 16000)
    data = encode_pcm(x[:, None], "pcm16")
    head = wav_header("pcm16", 16000, 1, 0xFFFFFFFF, riff_size=0xFFFFFFFF)
    path = tmp_path / "pipe.wav"
    path.write_bytes(head + data)
    clip = load_audio(path)
    assert len(clip.samples) == 12000 and not clip.truncated
    assert not [w for w in recwarn if issubclass(w.category, AudioWarning)]


def test_iter_audio_chunks_equal_load_audio(tmp_path):
    rate = 44100
    rng = np.random.default_rng(3)
    x = np.stack([tone(700, 3.0, rate, 0.3) + 0.05 * rng.standard_normal(3 * rate),
                  tone(2100, 3.0, rate, 0.3)], 1)
    path = write_wav(tmp_path / "n.wav", x, rate, "float32")
    reader = iter_audio(path, chunk_s=0.37)
    assert (reader.source_rate, reader.source_channels, reader.codec) == (rate, 2, "pcm_f32le")
    chunks = list(reader)
    assert len(chunks) >= 8 and max(len(c) for c in chunks) <= 0.37 * 16000 + 1
    whole = load_audio(path)
    np.testing.assert_allclose(np.concatenate(chunks), whole.samples, rtol=0, atol=1e-6)
    assert reader.n_samples == len(whole.samples) == 48000
    assert reader.rms_db == pytest.approx(whole.rms_db, abs=1e-6)


def test_other_output_rates(tmp_path):
    path = write_wav(tmp_path / "t.wav", tone(1000, 1.0, 48000), 48000, "pcm24")
    clip = load_audio(path, rate=22050)
    assert clip.rate == 22050 and len(clip.samples) == 22050
    check_tone(clip.samples, 1000, 0.5, rate=22050)


def test_long_wav_streams_in_bounded_memory(tmp_path):
    """A 30-minute WAV (57.6 MB), written and decoded a block at a time: Python's peak
    allocation while decoding stays a small fraction of the file."""
    rate, minutes = 16000, 30
    n = rate * 60 * minutes
    path = tmp_path / "long.wav"
    with open(path, "wb") as f:
        f.write(wav_header("pcm16", rate, 1, 2 * n))
        for m in range(minutes):
            t = (m * 60 * rate + np.arange(60 * rate)) / rate
            f.write(np.round(0.25 * np.sin(2 * np.pi * 250 * t) * 32767).astype("<i2").tobytes())
    size = path.stat().st_size
    assert size > 57_000_000
    tracemalloc.start()
    try:
        total, sumsq = 0, 0.0
        reader = iter_audio(path, chunk_s=5.0)
        for chunk in reader:
            total += len(chunk)
            sumsq += float(np.dot(chunk, chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == n and reader.duration_s == 60 * minutes
    assert np.sqrt(sumsq / total) == pytest.approx(0.25 / np.sqrt(2), rel=1e-3)
    assert peak < 0.05 * size, f"peak Python allocation {peak / 1e6:.1f} MB"


# --------------------------------------------------------------------------------------------
# The resampler


def _resample(r: Resampler, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    r.reset()
    if rng is None:
        return np.concatenate([r.process(x), r.flush()])
    parts, i = [], 0
    while i < len(x):
        k = int(rng.integers(1, 4000))
        parts.append(r.process(x[i:i + k]))
        i += k
    parts.append(r.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("source", [44100, 48000, 8000, 22050, 44101])
def test_resampler_chunked_equals_whole(source):
    r = Resampler(source, 16000)
    x = np.random.default_rng(source).uniform(-1, 1, source // 2).astype(np.float32)
    whole = _resample(r, x)
    assert len(whole) == -(-len(x) * 16000 // source)
    chunked = _resample(r, x, np.random.default_rng(1))
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=2e-6)


@pytest.mark.parametrize("source", [44100, 48000, 8000, 22050])
def test_resampler_keeps_a_tone_and_rejects_what_would_alias(source):
    r = Resampler(source, 16000)
    y = _resample(r, tone(1000, 2.0, source, 0.5).astype(np.float32))
    check_tone(y, 1000, 0.5, rel=1e-3, purity=0.99999)
    for f in (8300, 9000, 12000, 20000):      # above the new Nyquist: must not fold back
        if f >= source / 2:
            continue
        y = _resample(r, tone(f, 2.0, source, 0.5).astype(np.float32))
        level = np.sqrt(np.mean(middle(y, 16000, 1.0).astype(np.float64) ** 2)) / (0.5 / 2 ** .5)
        assert 20 * np.log10(level + 1e-12) < -40, f"{f} Hz from {source} Hz"


# --------------------------------------------------------------------------------------------
# Through ffmpeg


def test_flac_decodes_to_the_same_samples_as_its_wav(tmp_path, ffmpeg):
    rate = 44100
    rng = np.random.default_rng(5)
    x = np.stack([tone(440, 2.0, rate, 0.4), 0.1 * rng.uniform(-1, 1, 2 * rate)], 1)
    wav = write_wav(tmp_path / "src.wav", x, rate, "pcm16")
    flac = tmp_path / "src.flac"
    run_ffmpeg(ffmpeg, "-i", str(wav), "-c:a", "flac", str(flac))
    odd = tmp_path / "-take:1.flac"                 # not an option, not a protocol
    odd.write_bytes(flac.read_bytes())
    a, b = load_audio(wav), load_audio(odd)
    assert (b.codec, b.container, b.source_rate, b.source_channels) == ("flac", "flac", rate, 2)
    np.testing.assert_array_equal(a.samples, b.samples)     # lossless, one pipeline
    assert a.peak == b.peak and a.clipped_fraction == b.clipped_fraction


def test_clipped_flac_is_counted_at_its_own_bit_depth(tmp_path, ffmpeg):
    x = tone(200, 1.0, 16000, 2.0).clip(-1, 1)
    wav = write_wav(tmp_path / "hot.wav", x, 16000, "pcm24")
    flac = tmp_path / "hot.flac"
    run_ffmpeg(ffmpeg, "-i", str(wav), "-c:a", "flac", str(flac))
    a, b = load_audio(wav), load_audio(flac)
    assert b.clipped_fraction == pytest.approx(a.clipped_fraction) and a.clipped_fraction > 0.6


@pytest.mark.parametrize("suffix,codec_args,codec,encoder", [
    (".mp3", ["-c:a", "libmp3lame", "-b:a", "256k"], "mp3", "libmp3lame"),
    (".ogg", ["-c:a", "libvorbis"], "vorbis", "libvorbis"),
    (".opus", ["-c:a", "libopus", "-b:a", "96k"], "opus", "libopus"),
    (".m4a", ["-c:a", "aac", "-b:a", "128k"], "aac", "aac"),
])
def test_compressed_formats(tmp_path, ffmpeg, suffix, codec_args, codec, encoder):
    if not has_encoder(ffmpeg, encoder):
        pytest.skip(f"this ffmpeg has no {encoder} encoder to make the test file")
    wav = write_wav(tmp_path / "src.wav", np.stack([tone(1000, 2.0, 44100, 0.5)] * 2, 1), 44100)
    out = tmp_path / f"enc{suffix}"
    run_ffmpeg(ffmpeg, "-i", str(wav), *codec_args, str(out))
    clip = load_audio(out)
    assert clip.codec == codec and clip.source_channels == 2 and clip.rate == 16000
    assert clip.source_rate == (48000 if codec == "opus" else 44100)
    assert clip.duration_s == pytest.approx(2.0, abs=0.06)   # codec priming/padding
    check_tone(clip.samples, 1000, 0.5, rel=0.03, purity=0.995)


def test_video_sound_track(tmp_path, ffmpeg):
    """As an iPhone take: a .mov with a video stream first and AAC sound second."""
    wav = write_wav(tmp_path / "voice.wav", tone(1000, 1.5, 48000, 0.4), 48000)
    mov = tmp_path / "take.mov"
    run_ffmpeg(ffmpeg, "-f", "lavfi", "-i", "testsrc=size=64x48:rate=30:duration=1.5",
               "-i", str(wav), "-map", "0:v", "-map", "1:a", "-c:v", "mpeg4", "-c:a", "aac",
               "-shortest", str(mov))
    clip = load_audio(mov)
    assert clip.codec == "aac" and "mov" in clip.container and clip.source_rate == 48000
    assert clip.duration_s == pytest.approx(1.5, abs=0.1)
    check_tone(clip.samples, 1000, 0.4, rel=0.03, purity=0.995)


def test_wav_codec_we_do_not_parse_goes_through_ffmpeg(tmp_path, ffmpeg):
    wav = write_wav(tmp_path / "src.wav", tone(1000, 1.0, 8000, 0.5), 8000)
    ulaw = tmp_path / "ulaw.wav"
    run_ffmpeg(ffmpeg, "-i", str(wav), "-c:a", "pcm_mulaw", str(ulaw))
    clip = load_audio(ulaw)
    assert clip.codec == "pcm_mulaw" and clip.source_rate == 8000
    check_tone(clip.samples, 1000, 0.5, rel=0.02, purity=0.99)


def test_stopping_early_kills_ffmpeg(tmp_path, ffmpeg):
    wav = write_wav(tmp_path / "src.wav", tone(300, 30.0, 44100, 0.3), 44100)
    flac = tmp_path / "long.flac"
    run_ffmpeg(ffmpeg, "-i", str(wav), str(flac))

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    with iter_audio(flac, chunk_s=0.5) as reader:
        pid = reader._proc.pid
        first = next(reader)
        assert len(first) > 0 and not gone(pid)
    assert gone(pid)                       # killed and reaped, not left as a zombie

    reader = iter_audio(flac, chunk_s=0.5)
    pid = reader._proc.pid
    for _ in reader:
        break
    del reader                             # a consumer that just walks away
    assert gone(pid)


# --------------------------------------------------------------------------------------------
# Bad input: one line each, saying what is wrong and what to do


def _message(path, **kw) -> str:
    with pytest.raises(AudioError) as info:
        load_audio(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, ImucapError)
    return msg


def test_missing_file(tmp_path):
    assert _message(tmp_path / "nope.wav") == (f"audio file not found: {tmp_path / 'nope.wav'}: "
                                                "check the path (and the folder you run from)")


def test_empty_file_and_empty_wav(tmp_path):
    (tmp_path / "e.mp3").write_bytes(b"")
    assert "is empty (0 bytes): record or export the audio again" in _message(tmp_path / "e.mp3")
    path = write_wav(tmp_path / "nodata.wav", np.zeros((0, 1)), 16000)
    assert "holds no audio samples (an empty WAV)" in _message(path)


def test_text_renamed_to_wav(tmp_path):
    path = tmp_path / "blendshapes.wav"
    path.write_text("Timecode,BlendShapeCount,EyeBlinkLeft\n00:00:00:00.000,61,0.1\n")
    msg = _message(path)
    assert msg.startswith(f"{path} is not audio (it holds text, such as CSV): pass a WAV, FLAC")


def test_binary_junk_is_not_audio(tmp_path, ffmpeg):
    path = tmp_path / "junk.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    msg = _message(path)
    assert "is not an audio or video file ffmpeg can read" in msg and "pass a WAV" in msg


def test_video_without_sound(tmp_path, ffmpeg):
    mp4 = tmp_path / "silent_take.mp4"
    run_ffmpeg(ffmpeg, "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=0.5",
               "-c:v", "mpeg4", str(mp4))
    assert _message(mp4) == (f"{mp4} has no audio track (it holds: video mpeg4): record with "
                             f"sound, or pass the audio file itself")


def test_unfinished_mov(tmp_path, ffmpeg):
    wav = write_wav(tmp_path / "v.wav", tone(1000, 1.0, 48000), 48000)
    mov = tmp_path / "take.mov"
    run_ffmpeg(ffmpeg, "-i", str(wav), "-c:a", "aac", str(mov))
    data = mov.read_bytes()
    mov.write_bytes(data[:len(data) // 2])
    assert "is an unfinished MP4/MOV" in _message(mov)


def test_no_ffmpeg_anywhere(tmp_path, monkeypatch, ffmpeg):
    flac = tmp_path / "a.flac"
    run_ffmpeg(ffmpeg, "-f", "lavfi", "-i", "sine=frequency=440:duration=0.2", str(flac))
    wav = write_wav(tmp_path / "a.wav", tone(440, 0.2, 16000), 16000)
    # A machine with no ffmpeg: nothing on PATH, no imageio-ffmpeg, no IMUCAP_FFMPEG.
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("IMUCAP_FFMPEG", raising=False)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    assert find_ffmpeg() is None
    assert _message(flac) == (f"{flac} is FLAC audio, which needs ffmpeg to decode, and none was "
                              f"found: pip install 'imucap[audio]' (its imageio-ffmpeg ships "
                              f"one) or install ffmpeg (PCM and float WAV files need no ffmpeg)")
    assert len(load_audio(wav).samples) == 3200          # WAV needs nothing
    junk = tmp_path / "take.dat"
    junk.write_bytes(bytes(range(256)) * 4)
    assert _message(junk).startswith(f"{junk} is not a WAV file, and anything else needs "
                                     f"ffmpeg to decode, and none was found: pip install")
    monkeypatch.setenv("IMUCAP_FFMPEG", str(tmp_path / "not-ffmpeg"))
    assert _message(flac).startswith(f"IMUCAP_FFMPEG={tmp_path / 'not-ffmpeg'} is not an "
                                     f"executable file")
