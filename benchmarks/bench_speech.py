"""Speech to face: offline conversion speed and live latency, with the shipped speech model.

1. Offline: about 60 s of speech (espeak-ng, several sentences) converted by
   :func:`imucap.inference.speech.infer_speech` from a WAV file and from an MP3, on 1 and 2
   torch threads: seconds of speech per wall second (the issue's target: at least 100x real
   time on a two-core CPU). Decoding and features are included; loading the model is not.
2. Live: the same speech fed in 10 ms blocks in real time (as a sound card delivers it) to
   :class:`imucap.inference.speech.SpeechStream` at its defaults (80 ms look-ahead, rounded to
   5 frames, and a model run every 2 frames). Latency of each output frame = the wall time it
   came out minus the wall time the sound of its instant arrived; p50 and p99 (target: under
   150 ms including the look-ahead), and the model run time per hop.

Usage: ``python benchmarks/bench_speech.py [--model CKPT] [--seconds 60]``
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import numpy as np


def make_speech(seconds: float, folder: Path) -> tuple[Path, np.ndarray, int]:
    from imucap.audio.espeak import synthesize
    from imucap.datasets.speech_texts import sentences

    parts, rate, total = [], 0, 0.0
    for k, text in enumerate(sentences(400, seed=99)):
        s = synthesize(text, voice=("en-us+m3", "en+f2", "en-gb-x-rp+m1")[k % 3])
        rate = s.rate
        parts += [s.samples, np.zeros(int(0.3 * rate), np.float32)]
        total += s.duration_s + 0.3
        if total >= seconds:
            break
    audio = np.concatenate(parts)
    path = folder / "speech.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path, audio, rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="speech checkpoint (default: the shipped one)")
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()

    from imucap.audio.io import find_ffmpeg, load_audio
    from imucap.inference.speech import SpeechStream, infer_speech, load_speech_model

    with tempfile.TemporaryDirectory() as tmp:
        wav, _, _ = make_speech(args.seconds, Path(tmp))
        files = {"wav": wav}
        exe = find_ffmpeg()
        if exe:
            mp3 = Path(tmp) / "speech.mp3"
            subprocess.run([exe, "-y", "-loglevel", "error", "-i", str(wav), str(mp3)],
                           check=True)
            files["mp3"] = mp3
        print(f"offline: {args.seconds:.0f} s of speech, shipped model unless --model")
        for threads in (1, 2):
            model = load_speech_model(args.model, threads=threads)
            infer_speech(wav, model)  # warm up
            for name, path in files.items():
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    result = infer_speech(path, model)
                    times.append(time.perf_counter() - t0)
                wall = float(np.median(times))
                print(f"  {name:4s} {threads} thread(s): {result.duration_s:.1f} s in "
                      f"{wall:.2f} s = {result.duration_s / wall:6.0f}x real time "
                      f"(median of 3)")

        model = load_speech_model(args.model, threads=1)
        audio = load_audio(wav).samples[: 16000 * 20]
        live = SpeechStream(model)
        block = 160
        start = time.monotonic()
        latencies, frames = [], 0
        for i in range(0, len(audio), block):
            due = start + (i + block) / 16000
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            out = live.push(audio[i:i + block])
            now = time.monotonic()
            for _ in out:
                latencies.append(now - (start + frames / model.fps))
                frames += 1
        lat = np.array(latencies) * 1e3
        runs = np.array(live.run_times_s) * 1e3
        print(f"live (20 s in real time, look-ahead {live.lookahead / model.fps * 1e3:.0f} ms "
              f"+ features {live.latency_s * 1e3 - live.lookahead / model.fps * 1e3:.1f} ms, "
              f"a model run every {live.hop} frames): {frames} frames, latency p50 "
              f"{np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms; model run "
              f"p50 {np.percentile(runs, 50):.1f} ms, p99 {np.percentile(runs, 99):.1f} ms")


if __name__ == "__main__":
    main()
