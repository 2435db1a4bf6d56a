"""``imucap stream --speech SOURCE``: live speech to face, from a microphone or a sound file
played in real time, to the live sinks (Live Link, VMC, LSL)."""

from __future__ import annotations

import argparse
import queue
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import index_of

JAW = index_of("jawOpen")
BLOCK_S = 0.01
"""Audio arrives in blocks of 10 ms, as sound cards usually deliver it."""


def _file_blocks(path: Path, rate: int, realtime: bool) -> Iterator[tuple[np.ndarray, float]]:
    """Blocks of a sound file with the wall time each one would have arrived from a
    microphone (its last sample's time), paced in real time when ``realtime``."""
    from imucap.audio.io import iter_audio

    n = int(round(BLOCK_S * rate))
    start = time.monotonic()
    done = 0
    with iter_audio(path, rate=rate, chunk_s=1.0) as reader:
        pending = np.zeros(0, np.float32)
        for chunk in reader:
            pending = np.concatenate([pending, chunk])
            while len(pending) >= n:
                block, pending = pending[:n], pending[n:]
                done += n
                due = start + done / rate
                if realtime:
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                yield block, due
        if len(pending):
            done += len(pending)
            yield pending, start + done / rate


def _mic_blocks(spec: str, rate: int) -> Iterator[tuple[np.ndarray, float]]:
    """Blocks from a microphone through PortAudio (the ``sounddevice`` package). The device is
    opened here, before the first block is asked for, so a missing one fails at once."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise ImucapError(f"a microphone needs the sounddevice package and PortAudio "
                          f"({exc}): pip install 'imucap[mic]' (Debian/Ubuntu: apt install "
                          f"libportaudio2)") from None
    _, _, index = spec.partition(":")
    device = int(index) if index.strip().isdigit() else (index or None)
    blocks: queue.Queue = queue.Queue()

    def callback(indata: Any, frames: int, when: Any, status: Any) -> None:
        blocks.put((indata[:, 0].copy(), time.monotonic()))

    try:
        stream = sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=device,
                                blocksize=int(round(BLOCK_S * rate)), callback=callback)
    except Exception as exc:  # PortAudio's errors are plain Exceptions
        raise ImucapError(f"could not open the microphone {index or '(default)'}: {exc}; "
                          f"python -m sounddevice lists the devices") from None

    def read() -> Iterator[tuple[np.ndarray, float]]:
        with stream:
            while True:
                yield blocks.get()

    return read()


def run_speech_stream(args: argparse.Namespace) -> int:
    """Microphone or file → speech model → sinks, with a status line of rates and latency."""
    from imucap.inference.engine import FaceFrame
    from imucap.inference.speech import SpeechStream, load_speech_model
    from imucap.sinks.fanout import FanOut
    from imucap.sinks.uri import sink_from_uri
    from imucap.vocab import au_intensities

    if args.duration is not None and args.duration <= 0:
        raise ImucapError(f"--duration must be positive, got {args.duration}")
    source = args.speech
    is_mic = source == "mic" or source.startswith("mic:")
    if not is_mic and not Path(source).exists():
        raise ImucapError(f"{source} does not exist: give a sound file, or 'mic' (the default "
                          f"microphone) or 'mic:N' (device N)")
    if not is_mic:
        from imucap.audio.io import iter_audio

        iter_audio(source).close()  # not audio: one line now, before the model loads
    sinks = [sink_from_uri(uri, rate_hz=60.0) for uri in args.to]
    if not 0 <= args.lookahead_ms <= 400:
        raise ImucapError(f"--lookahead-ms must be between 0 and 400, got "
                          f"{args.lookahead_ms:g}")
    if args.speech_hop < 1:
        raise ImucapError(f"--speech-hop must be at least 1, got {args.speech_hop}")
    rate = 16000  # the speech models' rate; checked against the model's below
    blocks = _mic_blocks(source, rate) if is_mic else _file_blocks(Path(source), rate, True)
    model = load_speech_model(None if args.model in (None, "default") else args.model,
                              threads=1)
    if model.audio_rate != rate:
        raise ImucapError(f"the speech model reads audio at {model.audio_rate} Hz; live input "
                          f"is read at {rate} Hz: retrain it at 16 kHz")
    live = SpeechStream(model, lookahead_s=args.lookahead_ms / 1000.0, hop=args.speech_hop)
    fan = FanOut(sinks, rate_hz=60.0).open() if sinks else None
    for name, reason in (fan.stats().failed.items() if fan else ()):
        print(f"imucap: {name} left out: {reason}", file=sys.stderr, flush=True)
    latencies: deque[float] = deque(maxlen=600)
    start = None
    frames_out = 0
    next_draw = time.monotonic() + 1.0
    jaw = 0.0
    print(f"speech from {source}: the face trails the sound by about "
          f"{live.latency_s * 1000:.0f} ms of look-ahead plus a model run", flush=True)
    try:
        for block, arrived in blocks:
            if start is None:
                start = arrived - len(block) / rate
            out = live.push(block)
            now = time.monotonic()
            for w in out:
                t = frames_out / model.fps
                latencies.append(now - (start + t))
                frame = FaceFrame(t, w, 1.0, frozenset(), now - arrived,
                                  au_intensities(w).astype(np.float32))
                if fan is not None:
                    fan.send(frame)
                frames_out += 1
                jaw = float(w[JAW])
            if now >= next_draw:
                lat = np.array(latencies or [0.0]) * 1e3
                runs = np.array(live.run_times_s[-200:] or [0.0]) * 1e3
                line = (f"{now - start:6.1f} s  {frames_out / max(now - start, 1e-9):5.1f} "
                        f"frames/s  latency p50 {np.percentile(lat, 50):.0f} ms p99 "
                        f"{np.percentile(lat, 99):.0f} ms  model {np.median(runs):.1f} ms  "
                        f"jawOpen {jaw:.2f}")
                if fan is not None:
                    for name, st in fan.stats().sinks.items():
                        line += f"  {name}: {st.frames_sent} sent"
                print(line, flush=True)
                next_draw = now + 1.0
            if args.duration is not None and now - start >= args.duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if fan is not None:
            fan.close()
    if latencies:
        lat = np.array(latencies) * 1e3
        print(f"{frames_out} frames; latency from sound to face p50 "
              f"{np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms")
    return 0
