"""The libespeak-ng binding, against the real library: audio, phoneme timings, voices, state."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from imucap.audio import espeak
from imucap.errors import ImucapError

pytestmark = pytest.mark.skipif(
    not espeak.library_available(),
    reason="libespeak-ng is not installed (Debian/Ubuntu: libespeak-ng1 espeak-ng-data; "
           "scripts/install_system_packages.sh installs them)")

SENTENCE = "The quick brown fox jumps over the lazy dog."


def _symbols(speech: espeak.Speech) -> list[str]:
    return [p.symbol for p in speech.phonemes]


def _spoken(speech: espeak.Speech) -> list[str]:
    # Pause events come and go with espeak-ng's state between calls; the speech does not.
    return [p for p in _symbols(speech) if not espeak.is_pause(p)]


def _speak_in_worker(text: str) -> list[str]:
    return _spoken(espeak.synthesize(text))


def test_speech_audio_and_contiguous_timeline() -> None:
    espeak.synthesize("Guten Tag", voice="de")  # a voice change first (once added a stray word)
    s = espeak.synthesize(SENTENCE)
    assert s.rate == espeak.sample_rate() == 22050
    assert s.samples.dtype == np.float32 and s.samples.ndim == 1
    assert 1.5 < s.duration_s < 4.0
    assert np.abs(s.samples).max() <= 1.0 and np.sqrt(np.mean(s.samples ** 2)) > 0.01
    ph = s.phonemes
    assert len(ph) > 25
    assert ph[0].start_s >= 0.0 and ph[-1].end_s <= s.duration_s + 1e-9
    for a, b in zip(ph, ph[1:], strict=False):
        assert a.start_s < a.end_s
        assert b.start_s == pytest.approx(a.end_s, abs=1e-9)  # contiguous, ordered
    assert [w.text for w in s.words] == SENTENCE.rstrip(".").split()
    starts = [w.start_s for w in s.words]
    assert starts == sorted(starts) and starts[-1] < s.duration_s
    # "fox" is spoken as f 0 k s: its word event lands on the f.
    fox = s.words[3]
    f = min(ph, key=lambda p: abs(p.start_s - fox.start_s))
    assert f.symbol == "f"


def test_raw_events_are_monotone_and_inside_the_audio() -> None:
    s = espeak.synthesize("Hello there, how are you today? Fine, thanks.")
    n = len(s.samples)
    samples = [e.sample for e in s.events if e.kind == "phoneme"]
    assert samples == sorted(samples)
    assert all(0 <= e.sample <= n for e in s.events)
    kinds = {e.kind for e in s.events}
    assert {"phoneme", "word", "sentence"} <= kinds


def _silent(x: np.ndarray, level: float = 16 / 32768.0) -> np.ndarray:
    return np.abs(x) <= level


@pytest.mark.parametrize("voice", ["en-us", "en-us+f2"])
def test_stop_closure_and_vowel_energy_line_up_with_the_audio(voice: str) -> None:
    s = espeak.synthesize("a papa, a tatty cat kicked a top coat", voice=voice)
    x, rate = s.samples, s.rate
    # en-us closures are digital silence; the breathy f2 variant keeps a little noise in them.
    level = 16 / 32768.0 if voice == "en-us" else 0.04 * float(np.abs(x).max())
    raw = [e for e in s.events if e.kind == "phoneme"]
    stops = [p for p in s.phonemes if p.symbol in ("p", "t", "k")]
    assert len(stops) >= 8
    for p in stops:
        a, b = int(round(p.start_s * rate)), int(round(p.end_s * rate))
        # The aligned span starts with the closure (at most the last 4 ms of the vowel's fade
        # first): 15 ms of silence.
        win = int(0.015 * rate)
        quiet = np.convolve(_silent(x[a:b], level), np.ones(win) / win, mode="valid") > 0.95
        assert quiet.any() and int(np.argmax(quiet)) < int(0.004 * rate), p
        # ...and ends with the release: the burst is inside the span, where espeak's raw
        # event is (the raw event position sits at the burst onset).
        burst = next(e.sample for e in raw if e.value == p.symbol and a < e.sample < b)
        assert _silent(x[burst - int(0.01 * rate):burst], level).mean() > 0.95
        assert not _silent(x[burst:burst + int(0.005 * rate)], level).all()
    overall = np.sqrt(np.mean(x ** 2))
    vowels = [p for p in s.phonemes if p.symbol in ("A:", "a", "@", "0", "oU", "I", "i")]
    assert len(vowels) >= 8
    for p in vowels:
        seg = x[int(p.start_s * rate):int(p.end_s * rate)]
        assert _silent(seg).mean() < 0.05, p  # a vowel's span is voiced throughout
        assert np.sqrt(np.mean(seg ** 2)) > 0.5 * overall, p


def test_without_alignment_the_raw_event_positions_are_kept() -> None:
    raw = espeak.synthesize("papa", align_closures=False)
    aligned = espeak.synthesize("papa")
    events = {e.sample for e in raw.events if e.kind == "phoneme"}
    assert all(round(p.start_s * raw.rate) in events for p in raw.phonemes)
    # The first p's closure is the leading silence; alignment gives it to the p.
    assert raw.phonemes[0].start_s > 0.03 and aligned.phonemes[0].start_s == 0.0
    assert _spoken(raw) == _spoken(aligned)


def test_rate_changes_timing_and_voices_change_sound() -> None:
    slow = espeak.synthesize(SENTENCE, rate_wpm=110)
    fast = espeak.synthesize(SENTENCE, rate_wpm=330)
    assert _spoken(slow) == _spoken(fast)
    assert slow.duration_s / fast.duration_s > 2.0
    speech = [p for p in slow.phonemes if not espeak.is_pause(p.symbol)]
    quick = [p for p in fast.phonemes if not espeak.is_pause(p.symbol)]
    assert sum(p.end_s - p.start_s for p in speech) > 2.0 * sum(p.end_s - p.start_s
                                                              for p in quick)
    assert slow.words[-1].start_s > 2.0 * fast.words[-1].start_s

    base = espeak.synthesize("bath time")
    female = espeak.synthesize("bath time", voice="en-us+f2")
    high = espeak.synthesize("bath time", pitch=90)
    assert _symbols(base)[:4] == _symbols(female)[:4]
    assert not np.array_equal(base.samples[:2000], female.samples[:2000])
    # Higher pitch: more zero crossings per second in the vowels' voicing.
    def crossings(s: espeak.Speech) -> float:
        v = next(p for p in s.phonemes if p.symbol in ("aa", "a"))
        seg = s.samples[int(v.start_s * s.rate):int(v.end_s * s.rate)]
        return float(np.mean(np.abs(np.diff(np.sign(seg))) > 0))
    assert crossings(high) > crossings(base)
    # Another accent is another phoneme set: American "water" has the flap, British a plain t.
    assert _symbols(espeak.synthesize("water"))[:4] == ["w", "O:", "t#", "3"]
    assert _symbols(espeak.synthesize("water", voice="en-gb"))[:4] == ["w", "O:", "t", "3"]


def test_voices_and_variants_are_listed() -> None:
    langs = {v.language for v in espeak.voices()}
    assert {"en-us", "en-gb", "de", "fr-fr"} <= langs
    english = espeak.voices("en")
    assert english and all(any(lg.startswith("en") for lg in v.languages) for v in english)
    var = espeak.variants()
    assert {"m3", "f2"} <= set(var)
    assert espeak.espeak_version()[:1].isdigit()


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"text": "   "}, "nothing to speak"),
    ({"text": "hi", "voice": "xx-nope"}, "no voice 'xx-nope'"),
    ({"text": "hi", "voice": "en-us+nope"}, "no voice variant 'nope'"),
    ({"text": "hi", "rate_wpm": 20}, "rate_wpm must be from 80 to 450"),
    ({"text": "hi", "pitch": "high"}, "pitch must be a number"),
    ({"text": 5}, "must be a string"),
])
def test_bad_input_is_one_clear_line(kwargs: dict, words: str) -> None:
    with pytest.raises(ImucapError) as err:
        espeak.synthesize(**kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)
    # The library is still usable afterwards.
    assert _spoken(espeak.synthesize("hi")) == ["h", "aI"]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_hundreds_of_calls_do_not_leak_or_drift() -> None:
    voices = ["en-us", "en-us+m3", "en+f2", "en-gb"]
    first = {v: _spoken(espeak.synthesize("Hi there, Bob.", voice=v)) for v in voices}
    for i in range(20):
        espeak.synthesize("Hi there, Bob.", voice=voices[i % 4])
    before = _rss_mb()
    for i in range(300):
        v = voices[i % 4]
        s = espeak.synthesize("Hi there, Bob.", voice=v, rate_wpm=150 + i % 50)
        assert _spoken(s) == first[v]
    assert _rss_mb() - before < 15.0


def test_threads_share_the_library_safely() -> None:
    expected = {t: _spoken(espeak.synthesize(t)) for t in ("one two three", "four five six")}
    failures: list[str] = []

    def work(text: str) -> None:
        for _ in range(15):
            got = _spoken(espeak.synthesize(text))
            if got != expected[text]:
                failures.append(f"{text}: {got}")

    threads = [threading.Thread(target=work, args=(t,)) for t in expected for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes(method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    texts = ["good morning", "see you soon", "five thin things"]
    expected = [_speak_in_worker(t) for t in texts]  # initialises the parent's library first
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        assert list(pool.map(_speak_in_worker, texts * 2)) == expected * 2


def test_missing_library_is_one_line_naming_the_package() -> None:
    code = ("import imucap.audio.espeak as e\n"
            "e._candidates = lambda: ['libespeak-ng-missing.so.9']\n"
            "from imucap.errors import ImucapError\n"
            "try:\n    e.synthesize('hi')\n"
            "except ImucapError as err:\n    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert "libespeak-ng" in out and "install" in out and "\n" not in out
