"""Text -> speech + viseme curves: synthesis speed, curve speed, paired utterances per hour.

Times :func:`imucap.audio.espeak.synthesize` (libespeak-ng through ctypes) on a set of English
sentences, with one voice and with the voice changing at every utterance (the data generator's
case: several voices, variants and rates), then :func:`imucap.audio.visemes.
phonemes_to_blendshapes` on the resulting timelines at 60 Hz, all on one core (espeak-ng is
single-threaded and the curve model is numpy on small arrays). "x real time" is seconds of
speech (or of face) made per wall second; "utterances/hour" is how many paired samples (audio
and its 52-channel curves) one core makes per hour at that mix, files not included.

Usage: ``python benchmarks/bench_visemes.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import time

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Who would have thought that five thin things could weigh so much?",
    "Please pass me the map, mom; maybe the bumpy path is shorter.",
    "She sells sea shells by the sea shore, and the shells she sells are surely seashells.",
    "We were away a week, and when we came back the weather was warmer.",
    "Could you measure the beige garage before Thursday's judge arrives?",
    "I see you, too. Oh no! Why now, of all the hours of the day?",
    "Numbers like 1999 and 42 are read out in full, as are dates like March 3rd.",
]
MIX = [("en-us", 175), ("en-us+m3", 150), ("en+f2", 200), ("en-gb", 165),
       ("en-us+f4", 220), ("en-gb-x-rp+m1", 140)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="passes over the sentences")
    args = parser.parse_args()

    from imucap.audio import espeak
    from imucap.audio.visemes import phonemes_to_blendshapes
    from imucap.errors import ImucapError

    try:
        t0 = time.perf_counter()
        espeak.synthesize("warm up")
        first = time.perf_counter() - t0
    except ImucapError as err:
        print(f"skipped: {err}")
        return
    print(f"libespeak-ng {espeak.espeak_version()}, {espeak.sample_rate()} Hz; "
          f"first call (load + initialise + voice): {first * 1e3:.1f} ms")

    def run(mixed: bool) -> tuple[float, float, list]:
        speech_s = wall = 0.0
        made = []
        for r in range(args.repeat):
            for i, text in enumerate(SENTENCES):
                voice, rate = MIX[(i + r) % len(MIX)] if mixed else ("en-us", 175)
                t = time.perf_counter()
                s = espeak.synthesize(text, voice=voice, rate_wpm=rate)
                wall += time.perf_counter() - t
                speech_s += s.duration_s
                made.append(s)
        return speech_s, wall, made

    speech_s, wall, made = run(mixed=False)
    n = len(made)
    print(f"synthesis, one voice (en-us, 175 wpm): {speech_s / wall:7.0f}x real time, "
          f"{wall / n * 1e3:.1f} ms per utterance ({speech_s / n:.2f} s mean)")
    speech_m, wall_m, made_m = run(mixed=True)
    print(f"synthesis, voice and rate change every utterance ({len(MIX)} voices): "
          f"{speech_m / wall_m:7.0f}x real time, {wall_m / len(made_m) * 1e3:.1f} ms per "
          f"utterance ({speech_m / len(made_m):.2f} s mean)")

    curve_wall = 0.0
    frames = 0
    for s in made_m:
        t = time.perf_counter()
        w = phonemes_to_blendshapes(s.phonemes, s.duration_s, fps=60)
        curve_wall += time.perf_counter() - t
        frames += w.shape[0]
    print(f"viseme curves at 60 Hz: {speech_m / curve_wall:7.0f}x real time, "
          f"{curve_wall / len(made_m) * 1e3:.2f} ms per utterance, "
          f"{frames / curve_wall:,.0f} frames/s")

    per_utt = (wall_m + curve_wall) / len(made_m)
    print(f"paired data (mixed voices, audio + curves) on one core: "
          f"{3600 / per_utt:,.0f} utterances/hour, "
          f"{speech_m / (wall_m + curve_wall):,.0f} hours of speech per hour")


if __name__ == "__main__":
    main()
