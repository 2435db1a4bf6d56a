"""Speech audio in: decoding and feature speed as multiples of real time, on one core.

Makes a 60 s speech-like clip (a gliding harmonic voice with syllable-rate bursts and a little
noise), writes it as WAV (44.1 kHz stereo 16-bit, 48 kHz 24-bit, 16 kHz mono) and, when an
ffmpeg is found, as FLAC and MP3, then times:

- ``load_audio`` per file: decode + mix to mono + resample to 16 kHz (ffmpeg runs in its own
  process; its time is in the wall clock);
- the resampler alone;
- ``compute_features`` (80 log-mel; and 80 log-mel + 13 MFCC with deltas and delta-deltas);
- ``FeatureStream`` fed 10 ms blocks, as a microphone would;

and prints the FeatureStream look-ahead, from which the live latency is quoted. BLAS and
OpenMP are held to one thread. Medians of 3 runs. Target: features far above 100x real time.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from imucap.audio import (  # noqa: E402
    FeatureConfig,
    FeatureStream,
    Resampler,
    compute_features,
    load_audio,
)
from imucap.audio.io import find_ffmpeg  # noqa: E402

SECONDS = 60.0
TARGET_X = 100.0


def speechlike(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A voice-like test signal: harmonics of a gliding 100-220 Hz pitch, gated at about 4
    syllables per second, plus faint noise; peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 160 + 60 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(h * phase) / h for h in range(1, 30) if h * 220 < rate / 2)
    gate = np.clip(np.sin(2 * np.pi * 4 * t) * 2, 0, 1)
    x = 0.25 * voice * gate + 0.01 * rng.standard_normal(len(t))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, rate: int, width: int) -> Path:
    x = x[:, None] if x.ndim == 1 else x
    scale = 2 ** (8 * width - 1)
    q = np.clip(np.round(x.astype(np.float64) * scale), -scale, scale - 1).astype(np.int64)
    if width == 2:
        data = q.astype("<i2").tobytes()
    else:
        data = (q.reshape(-1) & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3]
        data = data.tobytes()
    ch, align = x.shape[1], width * x.shape[1]
    fmt = (1).to_bytes(2, "little") + ch.to_bytes(2, "little") + rate.to_bytes(4, "little") \
        + (rate * align).to_bytes(4, "little") + align.to_bytes(2, "little") \
        + (8 * width).to_bytes(2, "little")
    body = b"WAVEfmt " + len(fmt).to_bytes(4, "little") + fmt + b"data" \
        + len(data).to_bytes(4, "little") + data
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    return path


def timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(name: str, seconds: float, audio_s: float = SECONDS) -> None:
    print(f"  {name:<52}{seconds * 1e3:>9.1f} ms{audio_s / seconds:>10.0f}x")


def main() -> None:
    print(f"imucap audio: decode and features, {SECONDS:.0f} s clip, one thread, median of 3")
    print(f"  {'':<52}{'time':>12}{'real time':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src44 = speechlike(SECONDS, 44100)
        stereo = np.stack([src44, 0.8 * src44], axis=1)
        files = [("WAV 44.1 kHz stereo 16-bit", write_wav(d / "a44.wav", stereo, 44100, 2)),
                 ("WAV 48 kHz mono 24-bit", write_wav(d / "a48.wav",
                                                       speechlike(SECONDS, 48000), 48000, 3)),
                 ("WAV 16 kHz mono 16-bit (no resampling)",
                  write_wav(d / "a16.wav", speechlike(SECONDS, 16000), 16000, 2))]
        exe = find_ffmpeg()
        if exe is None:
            print("  (no ffmpeg: FLAC and MP3 skipped; pip install 'imucap[audio]')")
        else:
            for name, suffix, args in [("FLAC 44.1 kHz stereo", ".flac", ["-c:a", "flac"]),
                                       ("MP3 44.1 kHz stereo 192 kb/s", ".mp3",
                                        ["-c:a", "libmp3lame", "-b:a", "192k"])]:
                out = d / f"a{suffix}"
                res = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", "-i",
                                      str(files[0][1]), *args, str(out)], capture_output=True)
                if res.returncode == 0:
                    files.append((name, out))
                else:
                    print(f"  ({name}: this ffmpeg cannot encode it)")
        print("decode to 16 kHz mono (load_audio)")
        for name, path in files:
            row(name, timed(lambda p=path: load_audio(p)))

        print("resampler alone")
        for rate, x in [(44100, src44), (48000, speechlike(SECONDS, 48000))]:
            r = Resampler(rate, 16000)
            row(f"{rate / 1000:g} kHz -> 16 kHz ({r.taps} taps)",
                timed(lambda r=r, x=x: (r.reset(), r.process(x), r.flush())))

        x16 = load_audio(files[0][1]).samples
        print("features at 60 fps from 16 kHz")
        for name, cfg in [("log-mel 80", FeatureConfig()),
                          ("279-dim (mel+MFCC 13, deltas x2)",
                           FeatureConfig(n_mfcc=13, deltas=2))]:
            row(f"compute_features: {name}", timed(lambda c=cfg: compute_features(x16, 16000, c)))
        for name, cfg in [("log-mel 80", FeatureConfig()),
                          ("279-dim with deltas", FeatureConfig(n_mfcc=13, deltas=2))]:
            def stream(cfg=cfg) -> None:
                s = FeatureStream(cfg)
                for i in range(0, len(x16), 160):
                    s.push(x16[i:i + 160])
                s.flush()
            row(f"FeatureStream, 10 ms pushes: {name}", timed(stream))

        print("FeatureStream look-ahead (frame centre to the last sample it waits for)")
        for deltas in (0, 1, 2):
            s = FeatureStream(FeatureConfig(deltas=deltas))
            print(f"  deltas={deltas}: {s.lookahead_ms:.2f} ms "
                  f"(window right half {(s._an.right / 16000) * 1e3:.2f} ms "
                  f"+ {2 * deltas} frames)")
        print(f"target: features >= {TARGET_X:.0f}x real time on one core")


if __name__ == "__main__":
    main()
