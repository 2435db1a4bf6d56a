"""Text to speech with phoneme timings, through libespeak-ng (a ctypes binding, no CLI).

:func:`synthesize` turns text into mono speech (``Speech.samples``, float32 in [-1, 1] at
espeak-ng's own rate, 22050 Hz for its standard voices) together with the timeline of the
phonemes it spoke (``Speech.phonemes``: espeak-ng mnemonics such as ``"p"``, ``"A:"``, ``"oU"``,
with start and end in seconds). That pairing is what the speech-to-face data generator needs:
the audio is the model input and the phoneme timeline drives the viseme curves of
:mod:`imucap.audio.visemes`.

How the timings are obtained. The library is initialised once per process in synchronous
retrieval mode (``AUDIO_OUTPUT_SYNCHRONOUS``: ``espeak_Synth`` returns when the whole text has
been synthesised and every buffer went through our callback, on the calling thread) with
phoneme events turned on (``espeakINITIALIZE_PHONEME_EVENTS``). Each ``espeakEVENT_PHONEME``
carries the phoneme's mnemonic and its position in the output as a sample index (the ``sample``
field; ``audio_position`` is the same in whole milliseconds). A phoneme ends where the next one
starts; the last ends with the audio.

Closure alignment (``align_closures=True``, the default). Measured on espeak-ng 1.51: for a
voiceless stop or affricate (p, t, k, tS ...) the event sits at the *release burst*; the
closure before it, exact digital silence, is emitted before the event and so falls inside the
previous phoneme's span (after a pause, inside the pause). Voiced stops put their event at the
start of the voice bar instead. For a face that is backwards: the lips of a /p/ are shut during
that silence and open at the burst. Pause events can likewise come up to ~40 ms after the
silence has begun. So each phoneme or pause whose event is preceded by a run of silence
(digital silence, or for breathy variants such as ``+f2`` that leave faint noise in closures,
1 ms blocks under 4 % of the utterance's peak) takes that run over: inside speech the run is
moved from the end of the previous phoneme (which keeps at least two thirds of its span); a
stop after a pause or at the very start takes at most 80 ms at 175 words/min (scaled with the
rate) of the pause's silence. The raw event positions stay available in ``Speech.events``.

Repeatability: espeak-ng keeps state between utterances, so the same text can come out with
clause pauses a few tens of milliseconds longer or shorter (the first utterance of a process
usually has the shorter ones) and sample positions that differ by well under a millisecond;
the phoneme sequence is the same and the timeline always follows the audio it came with.

Global state. libespeak-ng keeps one synthesiser per process; every call here holds a module
lock, the library is initialised on first use only, the voice is changed only when it differs
from the last call's, and the lock is renewed in a forked child (``os.register_at_fork``), so
the functions are safe from threads, from hundreds of calls in a row, and from worker
processes (fork or spawn).

Parameters (espeak-ng's own units): ``rate_wpm`` 80-450 words per minute (175 normal);
``pitch`` and ``pitch_range`` 0-100 (50 normal; range 0 is a monotone); ``volume`` 0-200
(100 normal); ``word_gap_ms`` extra pause between words (espeak counts it in 10 ms units at the
normal rate). Voices are language codes with an optional variant: ``"en-us"``, ``"en+f2"``,
``"en-us+m3"``; :func:`voices` and :func:`variants` list what is installed.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from imucap.errors import ImucapError

__all__ = [
    "Event",
    "Phoneme",
    "Speech",
    "Voice",
    "Word",
    "espeak_version",
    "is_pause",
    "library_available",
    "sample_rate",
    "synthesize",
    "variants",
    "voices",
]

# speak_lib.h constants (espeak-ng 1.49 .. 1.52 keep these values).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK, _EE_INTERNAL_ERROR, _EE_BUFFER_FULL, _EE_NOT_FOUND = 0, -1, 1, 2
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7
_EVENT_NAMES = {1: "word", 2: "sentence", 3: "mark", 4: "play", 5: "end",
                6: "msg_terminated", 7: "phoneme", 8: "samplerate"}
_EV_WORD, _EV_PHONEME = 1, 7

#: Silence of a pause or a stop closure: 1 ms blocks whose peak is at most _SILENT_INT16 (int16
#: units; most voices write exact zeros there), or, where there is no such run, at most this
#: fraction of the utterance's peak (breathy variants such as f2 leave noise at 1-4 %).
_QUIET_FRACTION = 0.04
_SILENT_INT16 = 16
#: Longest stop closure taken out of a preceding pause, seconds at 175 words/min.
_MAX_CLOSURE_S = 0.080
#: Symbols whose event marks a release rather than an onset: oral stops, affricates and the
#: glottal stop of espeak-ng's tables (first letter), as in p, b, t#, tS, dZ, k, g, c, q, ?.
_STOP_INITIALS = frozenset("pbtdkgcq?")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h (40 bytes on LP64)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


class _Voice(ctypes.Structure):
    """``espeak_VOICE`` of speak_lib.h."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
                ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


class Phoneme(NamedTuple):
    """One phoneme of the timeline: espeak-ng mnemonic, start and end in seconds."""

    symbol: str
    start_s: float
    end_s: float


class Word(NamedTuple):
    """A word event: the word as written, where it starts in the audio, and in the text."""

    text: str
    start_s: float
    char_offset: int


class Event(NamedTuple):
    """A raw espeak-ng event: kind (``"phoneme"``, ``"word"``, ...), phoneme mnemonic or word
    number as text, position in samples, 0-based character offset in the text."""

    kind: str
    value: str
    sample: int
    char_offset: int


class Voice(NamedTuple):
    """An installed voice: ``language`` (what :func:`synthesize` takes, e.g. ``"en-us"``), the
    voice's display name, its file identifier, every language it serves, and its gender
    (``"male"``, ``"female"`` or ``""``)."""

    language: str
    name: str
    identifier: str
    languages: tuple[str, ...]
    gender: str


@dataclass
class Speech:
    """Synthesised speech with its phoneme timeline.

    ``samples`` float32 mono in [-1, 1]; ``rate`` samples per second; ``phonemes`` contiguous,
    time-ordered, non-empty segments covering the speech (pauses are segments too, with
    symbols starting with ``_``), closure-aligned unless asked otherwise; ``words`` the word
    events; ``events`` every raw event with its sample position.
    """

    samples: np.ndarray
    rate: int
    phonemes: list[Phoneme]
    words: list[Word] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    text: str = ""
    voice: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.rate)


def is_pause(symbol: str) -> bool:
    """True for espeak-ng's pause mnemonics (``_``, ``_:``, ``_!``, ``_|`` ...)."""
    return symbol.startswith("_")


class _State:
    lib: Any = None
    rate: int = 0
    voice: str | None = None
    params: dict[int, int] = {}
    callback: Any = None
    samples: list[np.ndarray] | None = None
    events: list[tuple[int, str, int, int, int]] | None = None
    lock = threading.Lock()


def _renew_lock() -> None:
    _State.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_lock)


def _install_hint() -> str:
    if sys.platform == "darwin":
        return "install it with 'brew install espeak-ng'"
    if sys.platform == "win32":
        return "install espeak-ng from its releases page and put libespeak-ng.dll on PATH"
    return ("install the Debian/Ubuntu packages libespeak-ng1 and espeak-ng-data "
            "(Fedora: espeak-ng)")


def _candidates() -> list[str]:
    names = []
    found = ctypes.util.find_library("espeak-ng")
    if found:
        names.append(found)
    names += ["libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.1.dylib",
              "libespeak-ng.dylib", "/opt/homebrew/lib/libespeak-ng.dylib",
              "/usr/local/lib/libespeak-ng.dylib", "libespeak-ng.dll", "espeak-ng.dll"]
    return names


def _load() -> Any:
    for name in _candidates():
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise ImucapError(f"speech synthesis needs the libespeak-ng library, which was not found: "
                      f"{_install_hint()}")


def library_available() -> bool:
    """Whether libespeak-ng can be loaded and initialised (for skipping, not for control flow)."""
    try:
        _library()
    except ImucapError:
        return False
    return True


def _on_synth(wav: Any, count: int, events: Any) -> int:
    # Runs inside espeak_Synth on the calling thread, under the module lock. Keep it cheap and
    # never raise: an exception here cannot cross the C boundary.
    samples, out = _State.samples, _State.events
    if samples is None or out is None:
        return 0
    if wav and count > 0:
        samples.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
    if events:
        i = 0
        while True:
            ev = events[i]
            kind = ev.type
            if kind == 0:
                break
            if kind == _EV_PHONEME:
                value = ev.id.string.decode("utf-8", "replace")
            else:
                value = str(ev.id.number)
            out.append((kind, value, ev.sample, ev.text_position, ev.length))
            i += 1
    return 0


def _library() -> Any:
    if _State.lib is not None:
        return _State.lib
    with _State.lock:
        if _State.lib is not None:
            return _State.lib
        lib = _load()
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        # Buffers of 200 ms: fewer callbacks than the 60 ms default, same result.
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, None,
                                     _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if rate <= 0:
            raise ImucapError("libespeak-ng is installed but could not start (its voice data is "
                              "missing?): install the espeak-ng-data package")
        _State.callback = _CALLBACK(_on_synth)  # kept referenced for the library's lifetime
        lib.espeak_SetSynthCallback(_State.callback)
        _State.rate = int(rate)
        _State.lib = lib
        return lib


def sample_rate() -> int:
    """espeak-ng's output rate in Hz (22050 for its standard voices)."""
    _library()
    return _State.rate


def espeak_version() -> str:
    """The library's version string, e.g. ``"1.51"``."""
    lib = _library()
    with _State.lock:
        return (lib.espeak_Info(None) or b"").decode("utf-8", "replace")


def _parse_languages(ptr: int | None) -> tuple[str, ...]:
    # A sequence of (priority byte, NUL-terminated name), ended by a zero priority byte.
    out: list[str] = []
    if not ptr:
        return ()
    pos = ptr
    while True:
        priority = ctypes.string_at(pos, 1)
        if priority == b"\0":
            break
        name = ctypes.string_at(pos + 1)
        out.append(name.decode("utf-8", "replace"))
        pos += 2 + len(name)
    return tuple(out)


def _list_locked(spec: _Voice | None) -> list[tuple[str, tuple[str, ...], str, int]]:
    arr = _State.lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
    out = []
    i = 0
    while arr and arr[i]:
        v = arr[i].contents
        out.append(((v.name or b"").decode("utf-8", "replace"), _parse_languages(v.languages),
                    (v.identifier or b"").decode("utf-8", "replace"), int(v.gender)))
        i += 1
    return out


def _list(spec: _Voice | None) -> list[tuple[str, tuple[str, ...], str, int]]:
    _library()
    with _State.lock:
        return _list_locked(spec)


def voices(language: str | None = None) -> list[Voice]:
    """Installed voices (languages), optionally only those serving ``language`` (e.g. "en").

    Pass ``Voice.language`` to :func:`synthesize`, alone or with a variant: ``"en-us+f2"``.
    """
    out = []
    for name, langs, ident, gender in _list(None):
        if not langs:
            continue
        if language and not any(lang == language or lang.startswith(language + "-")
                                for lang in langs):
            continue
        out.append(Voice(langs[0], name, ident, langs,
                         {1: "male", 2: "female"}.get(gender, "")))
    return sorted(out, key=lambda v: v.language)


def variants() -> list[str]:
    """Installed voice variants (``"m3"``, ``"f2"``, ``"klatt"`` ...), to append as ``+name``."""
    spec = _Voice()
    spec.languages = ctypes.cast(ctypes.c_char_p(b"variant"), ctypes.c_void_p)
    names = []
    for _, _, ident, _ in _list(spec):
        base = ident.replace("\\", "/").rsplit("/", 1)[-1]
        if base:
            names.append(base)
    return sorted(set(names))


_RESOLVED: dict[str, bytes] = {}


def _resolve_voice(voice: str) -> bytes:
    """The name ``espeak_SetVoiceByName`` accepts for ``voice`` ("language[+variant]").

    espeak-ng finds a voice by its file name or display name, which for most languages is the
    language code ("en-us", "de") but not for all ("en-gb" lives in the file "gmw/en"), and it
    silently ignores a variant it does not have; so both parts are checked against the installed
    lists here. Called with the module lock held.
    """
    if voice in _RESOLVED:
        return _RESOLVED[voice]
    base, _, variant = voice.strip().partition("+")
    lib = _State.lib
    name = base
    if lib.espeak_SetVoiceByName(base.encode("utf-8")) != _EE_OK:
        _State.voice = None
        wanted = base.lower()
        match = [ident for _, langs, ident, _ in _list_locked(None)
                 if any(lang.lower() == wanted for lang in langs)]
        if not match:
            raise ImucapError(f"espeak-ng has no voice {base!r}: use a language code such as "
                              f"'en-us', 'en-gb' or 'de', optionally with a variant ('en-us+f2'); "
                              f"imucap.audio.espeak.voices() lists them")
        name = match[0]
    if variant:
        spec = _Voice()
        spec.languages = ctypes.cast(ctypes.c_char_p(b"variant"), ctypes.c_void_p)
        known = {ident.replace("\\", "/").rsplit("/", 1)[-1]: ident
                 for _, _, ident, _ in _list_locked(spec)}
        exact = {k.lower(): k for k in known}
        if variant.lower() not in exact:
            raise ImucapError(f"espeak-ng has no voice variant {variant!r}: use one of "
                              f"imucap.audio.espeak.variants(), e.g. m3 or f2")
        name = f"{name}+{exact[variant.lower()]}"
    _RESOLVED[voice] = name.encode("utf-8")
    return _RESOLVED[voice]


def _check_range(what: str, value: float, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ImucapError(f"{what} must be a number from {lo} to {hi}, not {value!r}")
    if not np.isfinite(value) or not lo <= value <= hi:
        raise ImucapError(f"{what} must be from {lo} to {hi}, not {value}")
    return int(round(float(value)))


def synthesize(text: str, voice: str = "en-us", rate_wpm: float = 175, pitch: float = 50,
               pitch_range: float = 50, volume: float = 100, word_gap_ms: float = 0,
               align_closures: bool = True) -> Speech:
    """Speak ``text`` with espeak-ng; return the audio and its phoneme timeline.

    ``voice``: a language code with an optional ``+variant`` (see module docstring);
    ``rate_wpm`` 80-450; ``pitch`` and ``pitch_range`` 0-100; ``volume`` 0-200;
    ``word_gap_ms`` 0-2000 extra silence between words; ``align_closures``: move stop
    closures onto the stop (see module docstring), else keep espeak-ng's raw event positions.
    """
    if not isinstance(text, str):
        raise ImucapError(f"the text to speak must be a string, not {type(text).__name__}")
    if not text.strip():
        raise ImucapError("nothing to speak: the text is empty")
    if not isinstance(voice, str) or not voice.strip():
        raise ImucapError("the voice must be a name such as 'en-us' or 'en+f2'")
    params = {
        _PARAM_RATE: _check_range("rate_wpm", rate_wpm, 80, 450),
        _PARAM_PITCH: _check_range("pitch", pitch, 0, 100),
        _PARAM_RANGE: _check_range("pitch_range", pitch_range, 0, 100),
        _PARAM_VOLUME: _check_range("volume", volume, 0, 200),
        _PARAM_WORDGAP: int(round(_check_range("word_gap_ms", word_gap_ms, 0, 2000) / 10.0)),
    }
    lib = _library()
    data = text.encode("utf-8") + b"\0"
    with _State.lock:
        if _State.voice != voice:
            err = lib.espeak_SetVoiceByName(_resolve_voice(voice))
            if err != _EE_OK:
                _State.voice = None
                raise ImucapError(f"espeak-ng could not load voice {voice!r} (error {err})")
            _State.voice = voice
            _State.params = {}
        for key, value in params.items():
            # Setting a voice resets the parameters; otherwise only changed ones are sent.
            if _State.params.get(key) != value:
                lib.espeak_SetParameter(key, value, 0)
                _State.params[key] = value
        _State.samples, _State.events = [], []
        try:
            err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None,
                                   None)
            chunks, raw = _State.samples, _State.events
        finally:
            _State.samples, _State.events = None, None
        rate = _State.rate
    if err != _EE_OK:
        raise ImucapError(f"espeak-ng could not speak the text (error {err})")
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return _build(text, voice, pcm, rate, raw, params[_PARAM_RATE], align_closures)


def _build(text: str, voice: str, pcm: np.ndarray, rate: int,
           raw: list[tuple[int, str, int, int, int]], rate_wpm: int, align: bool) -> Speech:
    n = len(pcm)
    events = [Event(_EVENT_NAMES.get(kind, str(kind)), value, int(min(max(smp, 0), n)),
                    max(pos - 1, 0)) for kind, value, smp, pos, _ in raw]
    ph_raw = [(e.value, e.sample) for e in events if e.kind == "phoneme" and e.value]
    starts = [s for _, s in ph_raw]
    if align and ph_raw:
        starts = _aligned_starts(ph_raw, pcm, rate, rate_wpm)
    # A phoneme ends where the next (possibly moved) start is: the minimum of all later ones.
    ends = [n] * len(ph_raw)
    for i in range(len(ph_raw) - 2, -1, -1):
        ends[i] = min(ends[i + 1], starts[i + 1])
    phonemes = [Phoneme(sym, starts[i] / rate, min(ends[i], n) / rate)
                for i, (sym, _) in enumerate(ph_raw) if min(ends[i], n) > starts[i]]
    spoken = [(s, starts[i]) for i, (sym, s) in enumerate(ph_raw) if not is_pause(sym)]
    spoken_raw = [s for s, _ in spoken]
    words = []
    for kind, _, smp, pos, length in raw:
        if kind != _EV_WORD or length <= 0 or pos <= 0:
            continue  # (espeak-ng sometimes adds an empty word event after a voice change)
        offset = pos - 1
        start = int(min(max(smp, 0), n))
        # The word starts where its first phoneme's (possibly closure-aligned) span does.
        j = bisect.bisect_left(spoken_raw, start)
        if j < len(spoken):
            start = min(start, spoken[j][1])
        words.append(Word(text[offset:offset + length], start / rate, offset))
    samples = (pcm.astype(np.float32) / 32768.0) if n else np.zeros(0, np.float32)
    return Speech(samples=samples, rate=rate, phonemes=phonemes, words=words, events=events,
                  text=text, voice=voice)


def _quiet_run_start(quiet: np.ndarray, b0: int, b1: int) -> int | None:
    """First block of the quiet run that ends at block ``b1`` (exclusive), searching from b0."""
    window = quiet[b0:b1]
    if window.size == 0 or not window[-1]:
        return None
    loud = np.flatnonzero(~window)
    return b0 + (int(loud[-1]) + 1 if loud.size else 0)


def _aligned_starts(ph: list[tuple[str, int]], pcm: np.ndarray, rate: int,
                    rate_wpm: int) -> list[int]:
    # 1 ms blocks. Most voices write exact zeros in closures and pauses, so a run of those (at
    # least 8 ms) is looked for first; breathy variants (f2, f4) leave a little noise there
    # instead, so failing that, blocks below _QUIET_FRACTION of the utterance's peak count.
    hop = max(1, rate // 1000)
    blocks = len(pcm) // hop
    if blocks == 0:
        return [s for _, s in ph]
    peak = np.abs(pcm[: blocks * hop].astype(np.int32)).reshape(blocks, hop).max(axis=1)
    exact = peak <= _SILENT_INT16
    faint = peak <= max(_SILENT_INT16, _QUIET_FRACTION * float(peak.max()))
    cap = int(round(_MAX_CLOSURE_S * 175.0 / rate_wpm * rate))
    starts = [s for _, s in ph]
    out = list(starts)
    for i, (sym, s) in enumerate(ph):
        if s <= 0 or s > len(pcm):
            continue
        prev_speech = i > 0 and not is_pause(ph[i - 1][0]) and starts[i - 1] < s
        if prev_speech:
            lo = starts[i - 1] + (s - starts[i - 1]) // 3
        elif not is_pause(sym) and sym[0] in _STOP_INITIALS:
            lo = max(0, s - cap)
        else:
            continue
        # Whole blocks between lo and the event; the run must reach the event's block.
        b0, b1 = -(-lo // hop), min(s // hop, blocks)
        run = _quiet_run_start(exact, b0, b1)
        if run is None or s - run * hop < 8 * hop:  # no closure of digital silence: faint?
            run = _quiet_run_start(faint, b0, b1)
        if run is not None and s - run * hop >= 2 * hop:  # at least 2 ms of silence
            out[i] = run * hop
    return out
