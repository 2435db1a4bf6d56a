"""Decoding audio files to mono float32 at one rate (16 kHz by default), in bounded memory.

Two decoders, picked by the file's content rather than its name:

- **WAV** (RIFF/WAVE: PCM 8/16/24/32-bit, IEEE float 32/64, plain or WAVE_FORMAT_EXTENSIBLE) is
  parsed here with :mod:`struct` and needs nothing beyond numpy.
- **Everything else** (FLAC, MP3, OGG Vorbis/Opus, M4A/AAC, AIFF, and the sound track of a video
  such as an iPhone Live Link Face ``.mov``/``.mp4``), and WAV codecs we do not parse (ADPCM,
  mu-law, ...), goes through an ffmpeg binary: ``$IMUCAP_FFMPEG``, then ``ffmpeg`` on the
  ``PATH``, then the one the ``imageio-ffmpeg`` package ships (``pip install 'imucap[audio]'``).

Both decoders hand over the source's own channels at the source's own rate; mixing (the plain
average of the channels) and resampling (:class:`Resampler`, an anti-aliased polyphase
windowed-sinc filter) happen here, the same way for every format. That costs ffmpeg no more
(it only decodes) and buys three things: a lossless file decodes to the same samples whether
it is WAV or FLAC; full-scale (clipped) samples are counted per channel, before mixing can hide
them; and chunk boundaries leave no seams, because the resampler carries its state.

Everything streams: :func:`iter_audio` reads a block, yields its samples and forgets them, and
the ffmpeg subprocess writes raw float32 to a pipe that is read a block at a time, so a 3-hour
take decodes in a few megabytes. :func:`load_audio` collects the blocks into one
:class:`AudioClip` (which then holds the whole signal: 4 bytes per sample, 230 MB per hour at
16 kHz).

Silence and clipping are not errors: :class:`AudioClip` reports them (``silent``,
``clipped_fraction``, ``peak``, ``rms_db``) so a caller can tell the user. A WAV that is shorter
than its header says (a recording cut off mid-write) is decoded as far as it goes, with an
:class:`AudioWarning` and ``truncated=True``; so is a compressed file whose decoding ffmpeg
had to stop early. Everything a user can get wrong (a missing file, a text file named ``.wav``,
a video without sound, an empty file, no ffmpeg for a format that needs one) raises
:class:`AudioError`, an :class:`~imucap.errors.ImucapError` with one line that says what to do.
"""

from __future__ import annotations

import collections
import math
import os
import re
import shutil
import struct
import subprocess
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imucap.errors import ImucapError

__all__ = [
    "AudioClip",
    "AudioError",
    "AudioReader",
    "AudioWarning",
    "Resampler",
    "find_ffmpeg",
    "iter_audio",
    "load_audio",
]

DEFAULT_RATE = 16000
"""Output sample rate (Hz) unless a caller asks for another."""

SILENT_DBFS = -60.0
"""A clip whose RMS is below this (dB relative to full scale 1.0) counts as silent."""

_FORMATS_HINT = "pass a WAV, FLAC, MP3, OGG/Opus or M4A file, or a video with a sound track"
_INSTALL_HINT = "pip install 'imucap[audio]' (its imageio-ffmpeg ships one) or install ffmpeg"


class AudioError(ImucapError):
    """An audio file that cannot be decoded; the message says what is wrong and what to do."""


class AudioWarning(UserWarning):
    """Audio was decoded, but not all of it (a truncated file); the message says how much."""


# --------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True)
class AudioClip:
    """A decoded, mixed-down, resampled clip and what was learned about its source.

    Attributes:
        samples: Mono float32 samples, in [-1, 1] (values beyond, which float sources and lossy
            decoders can produce, are clipped to it after mixing and resampling).
        rate: Sample rate of ``samples`` (Hz).
        source_rate: Sample rate of the file (Hz).
        source_channels: Channels in the file (0 if ffmpeg named a layout we do not know; it
            was then mixed to mono by ffmpeg).
        duration_s: ``len(samples) / rate`` (seconds).
        clipped_fraction: Fraction of the source's samples (every channel, before mixing) at
            digital full scale: the largest or smallest code of an integer format, or
            ``|x| >= 1`` for float data. For lossy codecs the decoder's ringing around a
            clipped stretch makes this an underestimate.
        peak: Largest ``|x|`` in the source, every channel, before mixing (1.0 = full scale).
        rms_db: RMS level of ``samples`` in dB relative to full scale 1.0 (a full-scale sine is
            -3.0 dB; digital silence is -200 dB, the floor).
        codec: Codec name in ffmpeg's words (``pcm_s16le``, ``pcm_f32le``, ``flac``, ``mp3``,
            ``aac``, ``opus``, ...).
        container: Container name (``wav``, or ffmpeg's demuxer name such as ``flac``, ``mp3``,
            ``ogg``, ``mov,mp4,m4a,3gp,3g2,mj2``).
        truncated: The file ended before its own header said it would, or ffmpeg stopped
            decoding early; ``samples`` hold what could be decoded (an AudioWarning said so).
    """

    samples: np.ndarray
    rate: int
    source_rate: int
    source_channels: int
    duration_s: float
    clipped_fraction: float
    peak: float
    rms_db: float
    codec: str
    container: str
    truncated: bool = False

    @property
    def silent(self) -> bool:
        """True when the clip's RMS is below -60 dBFS (:data:`SILENT_DBFS`)."""
        return self.rms_db < SILENT_DBFS

    @property
    def peak_db(self) -> float:
        """``peak`` in dB relative to full scale (-200 dB for digital silence)."""
        return 20.0 * math.log10(max(self.peak, 1e-10))


# --------------------------------------------------------------------------------------------
# Resampling


def _bessel_i0(x: np.ndarray | float) -> np.ndarray:
    """Modified Bessel function I0 by its power series, sum of ((x/2)^k / k!)^2, to float64
    rounding for the |x| <= 20 a Kaiser window uses; a few times faster than np.i0."""
    q = (np.asarray(x, np.float64) / 2.0) ** 2
    term = np.ones_like(q)
    total = np.ones_like(q)
    for k in range(1, 100):
        term *= q / (k * k)
        total += term
        if k * k > q.max() and term.max() < 1e-17:   # terms only shrink from here
            break
    return total


class Resampler:
    """Rational-ratio polyphase resampler with a Kaiser-windowed sinc, streaming.

    The ratio ``target / source`` is reduced to ``L / M``; output sample ``n`` sits at source
    time ``t = n * M / L`` (in source samples, the first sample at ``t = 0``) and is a weighted
    sum of the source samples around it. The weights are a windowed sinc evaluated at the
    distances to those samples: one filter per distinct fractional position, so at most ``L``
    filters, computed once.

    Filter design (the usual Kaiser-window recipe): the stop band starts at the lower of the
    two Nyquist frequencies; the transition band below it is ``transition`` (10 %) of that
    frequency wide; Kaiser ``beta`` = 8 gives about 80 dB of stop-band rejection, so content
    above the new Nyquist does not fold back into the band (aliasing), and upsampling leaves no
    images of the old spectrum. Each filter is normalised to unit sum, so DC passes exactly.
    To 16 kHz (from 44.1 or 48 kHz: 282 or 308 taps) the response is flat within 0.001 dB to
    7.2 kHz, -6 dB at 7.6 kHz and below -80 dB from 8 kHz on.

    Speed: every run of ``Lb`` consecutive outputs (``Lb`` = ``L``, or a multiple of it of at
    least 64) reads one stretch of input that starts ``Mb`` samples after the previous one, so
    a strided view of the input times one matrix (the ``Lb`` filters at their offsets) gives
    them all in a single BLAS call. Ratios with a huge ``L`` (odd rates such as 44,101 Hz)
    fall back to one call per filter.

    Samples before the first and after the last are taken as zero. :meth:`process` keeps the
    samples that later outputs still need, so feeding a signal in any chunks gives the same
    output (to float32 rounding) as feeding it whole; :meth:`flush` ends the signal. The output
    has ``ceil(n_in * L / M)`` samples: one for every output time before the end of the input.

    Args:
        source_rate: Input rate (Hz).
        target_rate: Output rate (Hz).
        transition: Transition-band width as a fraction of the lower Nyquist frequency.
        beta: Kaiser window shape (larger: more rejection, wider filter).
    """

    _DENSE_LIMIT = 1 << 22     # entries of the dense filter matrix before falling back
    _BLOCK_FLOATS = 1 << 18    # input floats copied per BLAS call (1 MiB)

    def __init__(self, source_rate: int, target_rate: int, *, transition: float = 0.1,
                 beta: float = 8.0) -> None:
        if int(source_rate) != source_rate or int(target_rate) != target_rate \
                or source_rate <= 0 or target_rate <= 0:
            raise ValueError(f"sample rates must be positive integers, got {source_rate} and "
                             f"{target_rate}")
        self.source_rate, self.target_rate = int(source_rate), int(target_rate)
        g = math.gcd(self.source_rate, self.target_rate)
        self.up, self.down = self.target_rate // g, self.source_rate // g   # L, M
        L, M = self.up, self.down
        nyq = 0.5 * min(1.0, L / M)                           # cycles per source sample
        fc = nyq * (1.0 - 0.5 * transition)                  # cutoff: mid-transition
        dw = 2.0 * math.pi * nyq * transition                 # transition width, rad/sample
        atten = beta / 0.1102 + 8.7                           # Kaiser's beta <-> dB relation
        half = max(1.0, (atten - 8.0) / (2.285 * dw) / 2.0)   # half-width in source samples
        self.half_taps = K = int(math.ceil(half))
        self.taps = 2 * K
        r = np.arange(L)
        frac = (r * M % L) / L                                # t - floor(t) for each phase
        d = frac[:, None] + (K - 1 - np.arange(2 * K))[None, :]   # t - k, shape (L, 2K)
        arg = np.clip(1.0 - (d / half) ** 2, 0.0, 1.0)
        window = np.where(np.abs(d) < half, _bessel_i0(beta * np.sqrt(arg)) / _bessel_i0(beta),
                          0.0)
        h = 2.0 * fc * np.sinc(2.0 * fc * d) * window
        h /= h.sum(axis=1, keepdims=True)
        self._table = h.astype(np.float32)                    # (L, 2K): filter of each phase
        self._offset = (r * M) // L                           # floor(t) - q*M for each phase
        # Dense form: Lb outputs per row of input, rows Mb samples apart.
        group = max(1, -(-64 // L))
        self._lb, self._mb = L * group, M * group
        self._width = self._mb + 2 * K - 1
        self._dense: np.ndarray | None = None
        if self._width * self._lb <= self._DENSE_LIMIT:
            w = np.zeros((self._width, self._lb), np.float32)
            for rb in range(self._lb):
                off = (rb * M) // L
                w[off:off + 2 * K, rb] = self._table[rb % L]
            self._dense = w
        self.reset()

    def reset(self) -> None:
        """Forget everything fed so far; the next sample is the first of a new signal."""
        K = self.half_taps
        self._buf = np.zeros(K - 1, np.float32)   # holds source samples from index _b0 on
        self._b0 = -(K - 1)
        self._n_in = 0
        self._n_out = 0

    def _count_until(self, last_input: int) -> int:
        """Number of outputs whose last tap is at or before source index ``last_input``."""
        span = (last_input - self.half_taps + 1) * self.up    # floor(n*M/L) + K <= last_input
        return 0 if span <= 0 else (span - 1) // self.down + 1

    def _total_out(self) -> int:
        span = self._n_in * self.up
        return 0 if span <= 0 else (span - 1) // self.down + 1

    def _run(self, n1: int) -> np.ndarray:
        """Compute outputs ``_n_out .. n1-1`` and drop the input no later output needs."""
        n0 = self._n_out
        if n1 <= n0:
            return np.zeros(0, np.float32)
        out = self._run_dense(n0, n1) if self._dense is not None else self._run_phases(n0, n1)
        self._n_out = n1
        if self._dense is not None:
            keep_from = (n1 // self._lb) * self._mb - self.half_taps + 1
        else:
            keep_from = (n1 * self.down) // self.up - self.half_taps + 1
        drop = min(keep_from - self._b0, len(self._buf))
        if drop > 0:
            self._buf = self._buf[drop:].copy()
            self._b0 += drop
        return out

    def _run_dense(self, n0: int, n1: int) -> np.ndarray:
        lb, mb, width, K = self._lb, self._mb, self._width, self.half_taps
        q_lo, q_hi = n0 // lb, -(-n1 // lb)
        first = q_lo * mb - K + 1 - self._b0               # buffer index where row q_lo starts
        need = first + (q_hi - q_lo - 1) * mb + width
        buf = self._buf
        if need > len(buf):   # rows past the input: only outputs we discard read the zeros
            buf = np.concatenate([buf, np.zeros(need - len(buf), np.float32)])
        step = buf.strides[0]
        rows_per_call = max(1, self._BLOCK_FLOATS // width)
        parts = []
        for q in range(q_lo, q_hi, rows_per_call):
            rows = min(rows_per_call, q_hi - q)
            start = first + (q - q_lo) * mb
            view = np.lib.stride_tricks.as_strided(buf[start:], shape=(rows, width),
                                                   strides=(mb * step, step), writeable=False)
            parts.append((np.ascontiguousarray(view) @ self._dense).reshape(-1))
        y = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return y[n0 - q_lo * lb:n1 - q_lo * lb]

    def _run_phases(self, n0: int, n1: int) -> np.ndarray:
        L, M, K = self.up, self.down, self.half_taps
        out = np.empty(n1 - n0, np.float32)
        buf = self._buf
        step = buf.strides[0]
        for r in {(n0 + i) % L for i in range(min(L, n1 - n0))}:
            q_lo = -((r - n0) // L)                         # ceil((n0 - r) / L)
            q_hi = -((r - n1) // L)
            cnt = q_hi - q_lo
            start = q_lo * M + int(self._offset[r]) - K + 1 - self._b0
            view = np.lib.stride_tricks.as_strided(buf[start:], shape=(cnt, 2 * K),
                                                   strides=(M * step, step), writeable=False)
            first = q_lo * L + r - n0
            out[first:first + (cnt - 1) * L + 1:L] = np.ascontiguousarray(view) @ self._table[r]
        return out

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed mono samples; returns the output samples that are now complete."""
        x = np.asarray(x, np.float32).reshape(-1)
        if len(x):
            self._buf = np.concatenate([self._buf, x])
            self._n_in += len(x)
        return self._run(min(self._count_until(self._n_in - 1), self._total_out()))

    def flush(self) -> np.ndarray:
        """End the signal (zeros after it) and return the remaining output samples."""
        self._buf = np.concatenate([self._buf, np.zeros(self.half_taps + 1, np.float32)])
        return self._run(self._total_out())


# --------------------------------------------------------------------------------------------
# Finding and asking ffmpeg


def find_ffmpeg() -> str | None:
    """Path of an ffmpeg binary, or None when there is none.

    Looked for in this order: ``$IMUCAP_FFMPEG``, ``ffmpeg`` on the ``PATH``, the binary of the
    ``imageio-ffmpeg`` package (the ``[audio]`` extra).

    Raises:
        AudioError: ``$IMUCAP_FFMPEG`` is set but is not an executable file.
    """
    env = os.environ.get("IMUCAP_FFMPEG")
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise AudioError(f"IMUCAP_FFMPEG={env} is not an executable file: point it at an "
                             f"ffmpeg binary, or unset it")
        return env
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


@dataclass(frozen=True)
class _Probe:
    container: str
    codec: str
    rate: int
    channels: int           # 0: unknown layout
    bits: int | None        # integer sample width of the decoder's output, None for float
    duration_s: float | None = None  # as the container says (an estimate for some formats)


_STREAM_RE = re.compile(r"^\s*Stream #0:\d+\S*: (?P<kind>\w+): (?P<rest>.*)$")
_AUDIO_RE = re.compile(r"^(?P<codec>.*?), (?P<rate>\d+) Hz, (?P<layout>[^,]+), "
                       r"(?P<fmt>[a-z0-9]+)(?: \((?P<bits>\d+) bit\))?")
_INPUT_RE = re.compile(r"^Input #0, (?P<container>.+?), from ")
_DURATION_RE = re.compile(r"^\s*Duration: (?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)")
_NAMED_LAYOUTS = {"mono": 1, "stereo": 2, "downmix": 2, "binaural": 2, "quad": 4,
                  "hexagonal": 6, "octagonal": 8, "cube": 8, "hexadecagonal": 16}


def _layout_channels(layout: str) -> int:
    """Channel count of one of ffmpeg's layout names (0 when it is not one we know)."""
    layout = layout.strip()
    m = re.match(r"^(\d+) channels", layout)
    if m:
        return int(m.group(1))
    base = layout.split("(")[0]
    if base in _NAMED_LAYOUTS:
        return _NAMED_LAYOUTS[base]
    m = re.match(r"^(\d+)\.(\d+)$", base)   # 5.1 -> 6, 7.1 -> 8, 22.2 -> 24
    return int(m.group(1)) + int(m.group(2)) if m else 0


def _ffmpeg_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "Error opening input:" in ln:
            return ln.split("Error opening input:", 1)[1].strip()
    return re.sub(r"^\[[^\]]*\]\s*", "", lines[-1]) if lines else "no message"


def _ffmpeg_url(path: Path) -> str:
    """The path as ffmpeg's ``file:`` URL, so a name with a colon or a leading dash is not
    taken for a protocol or an option."""
    return "file:" + str(path.resolve())


def _probe(exe: str, path: Path) -> _Probe:
    """What ffmpeg says about the file's first audio stream (running ``ffmpeg -i``)."""
    try:
        res = subprocess.run([exe, "-hide_banner", "-nostdin", "-i", _ffmpeg_url(path)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, timeout=60)
    except OSError as exc:
        raise AudioError(f"cannot run ffmpeg ({exe}): {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise AudioError(f"ffmpeg took over a minute to open {path}: is it on a network drive "
                         f"that stopped answering? Copy it to a local disk") from None
    text = res.stderr.decode("utf-8", "replace")
    container = None
    duration = None
    others = []
    for line in text.splitlines():
        d = _DURATION_RE.match(line)
        if d:
            duration = int(d.group("h")) * 3600 + int(d.group("m")) * 60 + float(d.group("s"))
            continue
        m = _INPUT_RE.match(line)
        if m:
            container = m.group("container")
            continue
        m = _STREAM_RE.match(line)
        if not m:
            continue
        if m.group("kind") != "Audio":
            others.append(f"{m.group('kind').lower()} {m.group('rest').split(' ')[0]}")
            continue
        a = _AUDIO_RE.match(m.group("rest"))
        if a is None:
            raise AudioError(f"ffmpeg cannot tell the sample rate or channels of the audio in "
                             f"{path} ({m.group('rest')}): convert it to WAV or FLAC first")
        fmt, bits = a.group("fmt").rstrip("p"), a.group("bits")
        width = {"u8": 8, "s16": 16, "s32": 32, "s64": 64}.get(fmt)
        return _Probe(container=container or "unknown", codec=a.group("codec").split(" ")[0],
                      rate=int(a.group("rate")), channels=_layout_channels(a.group("layout")),
                      bits=int(bits) if bits else width, duration_s=duration)
    if container is None:
        if "moov atom not found" in text:
            raise AudioError(f"{path} is an unfinished MP4/MOV (its index, the moov atom, is "
                             f"missing: the recording stopped before the file was closed): "
                             f"recover it with a repair tool, or record again")
        reason = _ffmpeg_error_line(text)
        raise AudioError(f"{path} is not an audio or video file ffmpeg can read ({reason}): "
                         f"{_FORMATS_HINT}")
    holds = ", ".join(others) if others else "no streams at all"
    raise AudioError(f"{path} has no audio track (it holds: {holds}): record with sound, or "
                     f"pass the audio file itself")


# --------------------------------------------------------------------------------------------
# WAV


_WAV_FORMATS = {1: "pcm", 3: "float", 6: "pcm_alaw", 7: "pcm_mulaw", 2: "adpcm_ms",
                17: "adpcm_ima_wav", 0x55: "mp3"}


@dataclass(frozen=True)
class _WavInfo:
    tag: int
    channels: int
    rate: int
    block_align: int
    bits: int               # valid bits per sample
    data_offset: int
    data_bytes: int         # as present in the file (whole frames only)
    promised_bytes: int     # as the header says (equal unless truncated)

    @property
    def width(self) -> int:
        return self.block_align // self.channels

    @property
    def codec(self) -> str:
        if self.tag == 3:
            return f"pcm_f{8 * self.width}le"
        if self.tag == 1:
            return "pcm_u8" if self.width == 1 else f"pcm_s{8 * self.width}le"
        return _WAV_FORMATS.get(self.tag, f"wav format 0x{self.tag:04x}")

    @property
    def supported(self) -> bool:
        return (self.tag == 1 and self.width in (1, 2, 3, 4)) or \
            (self.tag == 3 and self.width in (4, 8))


def _parse_wav(f, path: Path, file_size: int) -> _WavInfo:
    """Walk the RIFF chunks of an open WAV file (positioned after the 12-byte header)."""
    fmt = None
    data = None   # (offset, promised size)
    while True:
        head = f.read(8)
        if len(head) < 8:
            break
        cid, size = head[:4], struct.unpack("<I", head[4:])[0]
        pos = f.tell()
        if cid == b"fmt ":
            body = f.read(min(size, 64))
            if len(body) < 16:
                raise AudioError(f"{path} has a broken WAV header (fmt chunk of {len(body)} "
                                 f"bytes): export the audio again")
            tag, ch, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 40:   # WAVE_FORMAT_EXTENSIBLE
                valid = struct.unpack("<H", body[18:20])[0]
                tag = struct.unpack("<H", body[24:26])[0]   # first two bytes of SubFormat
                bits = valid or bits
            fmt = (tag, ch, rate, align, bits)
        elif cid == b"data":
            # Streaming writers leave 0 or 0xFFFFFFFF when they cannot go back to fill it in:
            # the data then runs to the end of the file.
            data = (pos, None if size in (0, 0xFFFFFFFF) else size)
            if fmt is not None or data[1] is None:
                break
        f.seek(pos + size + (size & 1))
    if fmt is None:
        raise AudioError(f"{path} is a RIFF/WAVE file without a format chunk (a broken or "
                         f"unfinished recording): export the audio again")
    tag, ch, rate, align, bits = fmt
    if ch == 0 or rate == 0 or align == 0 or align % ch:
        raise AudioError(f"{path} has a broken WAV header ({ch} channels, {rate} Hz, "
                         f"{align}-byte frames): export the audio again")
    if data is None:
        raise AudioError(f"{path} holds no audio samples (a WAV without a data chunk): "
                         f"record or export the audio again")
    offset, promised = data
    present = max(0, file_size - offset)
    promised = present if promised is None else promised
    usable = min(promised, present)
    usable -= usable % align
    return _WavInfo(tag=tag, channels=ch, rate=rate, block_align=align, bits=bits or 8 * align,
                    data_offset=offset, data_bytes=usable, promised_bytes=promised)


def _wav_to_float(raw: bytes, info: _WavInfo) -> np.ndarray:
    """Interleaved little-endian frames to float32 (frames, channels) in [-1, 1]."""
    w = info.width
    if info.tag == 3:
        x = np.frombuffer(raw, "<f4" if w == 4 else "<f8").astype(np.float32)
    elif w == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) * (1.0 / 128)
    elif w == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) * (1.0 / 32768)
    elif w == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        wide = np.zeros((len(b), 4), np.uint8)
        wide[:, 1:] = b                                  # the 24 bits at the top of an int32
        x = wide.view("<i4").reshape(-1).astype(np.float32) * (1.0 / 2 ** 31)
    else:
        x = np.frombuffer(raw, "<i4").astype(np.float32) * (1.0 / 2 ** 31)
    return x.reshape(-1, info.channels)


def _full_scale(bits: int | None) -> np.float32:
    """The smallest ``|x|`` that counts as full scale for samples of this integer width."""
    if bits is None:
        return np.float32(1.0)
    return np.float32((2 ** (bits - 1) - 1) / 2 ** (bits - 1))


# --------------------------------------------------------------------------------------------
# Sniffing


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        s = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:   # not just a character cut at the end of the sample
            return False
        s = head[:exc.start].decode("utf-8")
    if not s:
        return False
    good = sum(ch.isprintable() or ch in "\t\r\n" for ch in s)
    return good >= 0.95 * len(s)


def _describe(head: bytes) -> str | None:
    """A short name for a file's format from its first bytes (for messages), if we know it."""
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    if head[:4] == b"OggS":
        return "OGG"
    if head[4:8] == b"ftyp":
        return "MP4/MOV/M4A"
    if head[:4] == b"FORM":
        return "AIFF"
    if head[:4] == b"RIFF":
        return "RIFF (AVI?)"
    return None


# --------------------------------------------------------------------------------------------
# Reading


def _drain(pipe, keep: collections.deque) -> None:
    """Read a pipe to its end, keeping its last lines (ffmpeg's stderr)."""
    try:
        for line in pipe:
            keep.append(line.decode("utf-8", "replace").rstrip())
    except (OSError, ValueError):
        pass


class AudioReader:
    """An open audio file, yielding mono float32 chunks at ``rate``; see :func:`iter_audio`.

    What is known at once (the file was checked when this was made): ``path``, ``rate``,
    ``source_rate``, ``source_channels``, ``codec``, ``container``, ``decoder`` (``"wav"`` or
    ``"ffmpeg"``). What accumulates as chunks are read (final after the last one):
    ``n_samples`` (output samples so far), ``clipped_fraction``, ``peak``, ``rms_db``,
    ``truncated``.

    Close it (or use it as a context manager) to stop early: an ffmpeg subprocess is killed and
    reaped at once. Dropping the last reference does the same.
    """

    def __init__(self, path: str | os.PathLike[str], rate: int = DEFAULT_RATE,
                 chunk_s: float = 10.0) -> None:
        self._proc: subprocess.Popen | None = None
        self._file = None
        self._done = False
        if int(rate) != rate or rate <= 0:
            raise AudioError(f"the output sample rate must be a positive whole number of Hz, "
                             f"got {rate}")
        if not chunk_s > 0:
            raise AudioError(f"chunk_s must be positive, got {chunk_s}")
        self.path = Path(path)
        self.rate = int(rate)
        self.chunk_s = float(chunk_s)
        self.truncated = False
        #: Length the file's header or container promises, seconds (None when unknown; an
        #: estimate for some compressed formats). For progress; ``duration_s`` is what came.
        self.expected_duration_s: float | None = None
        self.n_samples = 0
        self._n_source = 0
        self._n_clipped = 0
        self.peak = 0.0
        self._sumsq = 0.0
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        self._res = None if self.source_rate == self.rate else \
            Resampler(self.source_rate, self.rate)

    # ---- opening

    def _open(self) -> None:
        path = self.path
        if not path.exists():
            raise AudioError(f"audio file not found: {path}: check the path (and the folder "
                             f"you run from)")
        if path.is_dir():
            raise AudioError(f"{path} is a folder, not an audio file: {_FORMATS_HINT}")
        try:
            f = open(path, "rb")   # held while reading; close() closes it
        except PermissionError:
            raise AudioError(f"cannot read {path}: permission denied") from None
        except OSError as exc:
            raise AudioError(f"cannot read {path}: {exc.strerror or exc}") from None
        self._file = f
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise AudioError(f"{path} is empty (0 bytes): record or export the audio again")
        head = f.read(4096)
        if _looks_like_text(head):
            raise AudioError(f"{path} is not audio (it holds text, such as CSV): "
                             f"{_FORMATS_HINT}")
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            f.seek(12)
            info = _parse_wav(f, path, size)
            if info.supported:
                self._open_wav(info)
                return
            what = f"is a WAV with {info.codec} audio, which needs"
        else:
            kind = _describe(head)
            what = f"is {kind} audio, which needs" if kind else \
                "is not a WAV file, and anything else needs"
        self._release()
        exe = find_ffmpeg()
        if exe is None:
            raise AudioError(f"{path} {what} ffmpeg to decode, and none was found: "
                             f"{_INSTALL_HINT} (PCM and float WAV files need no ffmpeg)")
        self._open_ffmpeg(exe)

    def _open_wav(self, info: _WavInfo) -> None:
        self.decoder = "wav"
        self.container = "wav"
        self.codec = info.codec
        self.source_rate = info.rate
        self.source_channels = info.channels
        self.expected_duration_s = info.data_bytes / info.block_align / info.rate
        if info.data_bytes == 0:
            raise AudioError(f"{self.path} holds no audio samples (an empty WAV): record or "
                             f"export the audio again")
        if info.data_bytes < info.promised_bytes:
            self.truncated = True
            have = info.data_bytes / info.block_align / info.rate
            want = info.promised_bytes / info.block_align / info.rate
            warnings.warn(f"{self.path} is truncated: its header promises {want:.2f} s of "
                          f"audio but the file holds {have:.2f} s (a recording cut off?); "
                          f"decoding what is there", AudioWarning, stacklevel=5)
        self._info = info
        self._wav_left = info.data_bytes
        self._file.seek(info.data_offset)
        self._threshold = _full_scale(None if info.tag == 3 else info.bits)

    def _open_ffmpeg(self, exe: str) -> None:
        self.decoder = "ffmpeg"
        probe = _probe(exe, self.path)
        self.container, self.codec = probe.container, probe.codec
        self.source_rate = probe.rate
        self.source_channels = probe.channels
        self.expected_duration_s = probe.duration_s
        self._threshold = _full_scale(probe.bits)
        out_channels = probe.channels or 1
        # -ac/-ar repeat the source's own layout and rate: no remixing or resampling in
        # ffmpeg, but a stream that changes them midway still arrives in one shape.
        cmd = [exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
               "-i", _ffmpeg_url(self.path), "-map", "0:a:0", "-ac", str(out_channels),
               "-ar", str(probe.rate), "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE)
        except OSError as exc:
            raise AudioError(f"cannot run ffmpeg ({exe}): {exc.strerror or exc}") from None
        # Drain stderr on a thread, so a decoder that complains a lot cannot fill the pipe and
        # stall; keep its last lines for messages. (A plain function: a thread holding this
        # reader would keep a dropped reader, and its ffmpeg, alive.)
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_thread = threading.Thread(target=_drain,
                                               args=(self._proc.stderr, self._stderr),
                                               daemon=True)
        self._stderr_thread.start()
        self._exe = exe
        self._out_channels = out_channels

    # ---- decoding

    def _block_frames(self) -> int:
        return max(1, int(round(self.chunk_s * self.source_rate)))

    def _read_block(self) -> np.ndarray | None:
        """The next block of source frames, float32 (frames, channels); None at the end."""
        if self.decoder == "wav":
            info = self._info
            want = min(self._block_frames() * info.block_align, self._wav_left)
            raw = self._file.read(want) if want > 0 else b""
            raw = raw[:len(raw) - len(raw) % info.block_align]
            if not raw:
                return None
            self._wav_left -= len(raw)
            return _wav_to_float(raw, info)
        frame = 4 * self._out_channels
        raw = self._proc.stdout.read(self._block_frames() * frame)
        raw = raw[:len(raw) - len(raw) % frame]
        if not raw:
            return None
        return np.frombuffer(raw, "<f4").reshape(-1, self._out_channels)

    def _end_of_source(self) -> None:
        """Check how ffmpeg ended (nothing to check for WAV)."""
        if self.decoder != "ffmpeg":
            return
        rc = self._proc.wait()
        self._stderr_thread.join(timeout=5)
        if rc == 0:
            return
        reason = _ffmpeg_error_line("\n".join(self._stderr))
        if "decoder" in reason.lower() and "not found" in reason.lower():
            raise AudioError(f"this ffmpeg ({self._exe}) cannot decode {self.codec} audio in "
                             f"{self.path}: install a full ffmpeg build, or "
                             f"pip install 'imucap[audio]'")
        if self._n_source == 0:
            raise AudioError(f"ffmpeg could not decode {self.path} ({reason}): "
                             f"{_FORMATS_HINT}")
        self.truncated = True
        warnings.warn(f"ffmpeg stopped decoding {self.path} early ({reason}); kept the first "
                      f"{self._n_source / max(1, self.source_channels) / self.source_rate:.2f} s",
                      AudioWarning, stacklevel=3)

    def __next__(self) -> np.ndarray:
        try:
            while not self._done:
                block = self._read_block()
                if block is None:
                    self._done = True
                    self._end_of_source()
                    out = self._res.flush() if self._res is not None else None
                    self.close()
                    if out is not None and len(out):
                        return self._account_output(out)
                    if self.n_samples == 0:
                        raise AudioError(f"{self.path} holds no audio samples: record or "
                                         f"export the audio again")
                    break
                self._account_source(block)
                mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1,
                                                                          dtype=np.float32)
                out = mono if self._res is None else self._res.process(mono)
                if len(out):
                    return self._account_output(out)
        except BaseException:
            self._done = True
            self.close()
            raise
        raise StopIteration

    def _account_source(self, block: np.ndarray) -> None:
        a = np.abs(block)
        self._n_source += block.size
        self._n_clipped += int(np.count_nonzero(a >= self._threshold))
        if a.size:
            self.peak = max(self.peak, float(a.max()))

    def _account_output(self, out: np.ndarray) -> np.ndarray:
        out = np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)
        self.n_samples += len(out)
        out64 = out.astype(np.float64)
        self._sumsq += float(np.dot(out64, out64))
        return out

    # ---- results

    @property
    def clipped_fraction(self) -> float:
        return self._n_clipped / self._n_source if self._n_source else 0.0

    @property
    def rms_db(self) -> float:
        rms = math.sqrt(self._sumsq / self.n_samples) if self.n_samples else 0.0
        return 20.0 * math.log10(max(rms, 1e-10))

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate

    # ---- iteration and closing

    def __iter__(self) -> AudioReader:
        return self

    def close(self) -> None:
        """Stop: kill and reap ffmpeg if it runs, close the file. Safe to call twice."""
        self._done = True
        self._release()

    def _release(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            thread = getattr(self, "_stderr_thread", None)
            if thread is not None:
                thread.join(timeout=5)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self._done = True
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown: nothing left to report to)
            pass


def iter_audio(path: str | os.PathLike[str], rate: int = DEFAULT_RATE,
               chunk_s: float = 10.0) -> AudioReader:
    """Decode an audio (or video) file as a stream of mono float32 chunks at ``rate`` Hz.

    Memory stays bounded by the chunk size whatever the file's length: each chunk covers about
    ``chunk_s`` seconds of the source (the resampler holds back a few milliseconds between
    chunks; the last chunk is shorter). Concatenated, the chunks equal :func:`load_audio`'s
    samples.

    The file is opened and checked before this returns, so a bad file raises here, not at the
    first chunk. The returned :class:`AudioReader` is the iterator; it also carries the
    source's properties and, once exhausted, the clip's statistics.

    Raises:
        AudioError: The file is missing, empty, not audio, has no audio track, needs an ffmpeg
            that is not there, or holds no samples (raised when iteration ends with none).
    """
    return AudioReader(path, rate=rate, chunk_s=chunk_s)


def load_audio(path: str | os.PathLike[str], rate: int = DEFAULT_RATE) -> AudioClip:
    """Decode a whole audio (or video) file to one mono float32 :class:`AudioClip` at ``rate``.

    See the module docstring for formats and :func:`iter_audio` for files too long to hold.

    Raises:
        AudioError: See :func:`iter_audio`.
    """
    with AudioReader(path, rate=rate) as reader:
        chunks = list(reader)
    samples = np.concatenate(chunks)
    return AudioClip(samples=samples, rate=reader.rate, source_rate=reader.source_rate,
                     source_channels=reader.source_channels, duration_s=reader.duration_s,
                     clipped_fraction=reader.clipped_fraction, peak=reader.peak,
                     rms_db=reader.rms_db, codec=reader.codec, container=reader.container,
                     truncated=reader.truncated)
