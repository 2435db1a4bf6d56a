"""Speech datasets: audio paired with blendshape curves, for the audio-to-face model.

A speech dataset is a folder:

- ``speech.json``: format and version, the frame rate (60 Hz) and audio rate (16 kHz), one
  entry per clip (id, speaker, text, duration, where it came from), the splits (lists of clip
  ids), the feature statistics of the training split, and how the data was made.
- ``clips/ID.npz``: ``audio`` (int16 mono at 16 kHz), ``weights`` (``(T, 52)`` float32 ARKit
  weights, frame ``k`` at ``k / fps`` s, with ``T`` = :func:`imucap.audio.features.frame_count`
  of the audio), and for synthetic clips the phoneme timeline (``phonemes``, ``starts``,
  ``ends``) and the speaking style that was applied.

Two ways to fill one:

**Made here** (:func:`make_speech_dataset`, ``imucap speech-data make``). Texts come from
:mod:`imucap.datasets.speech_texts`; espeak-ng speaks each one with one of its English accents
and voice variants, at a random rate and pitch; the viseme model
(:mod:`imucap.audio.visemes`) turns the phoneme timeline into mouth curves. A person does not
move exactly as a rule table says, so each *speaker* (an accent, a variant, a pitch and a
speaking style) also gets a style applied to the viseme curves (:class:`SpeakingStyle`): how
wide the jaw opens, how much the lips round and spread, a slight constant smile, and how far
the mouth leads the sound (the visible gesture starts before the acoustic one; 0 to 60 ms here).
Faster speech also undershoots its targets (articulatory undershoot: at 300 words/min the jaw
reaches about 80 % of its opening at 175). The style is what makes the plain viseme model a
fair baseline and not the answer: it reads the text's phonemes with exact timing but knows
nothing of the speaker's style, while the audio model hears the rate and the voice.

Splits are by speaker *and* text: the test and validation speakers use voice variants that no
training speaker uses, and their sentences are drawn apart from the training sentences, so a
held-out score is on new voices saying new things.

**Your own paired data** (:func:`import_paired`, ``imucap speech-data import``): Live Link Face
takes (a folder per take with the CSV and the video whose sound track is the audio) or
BEAT-style folders (an audio file beside a blendshape file of the same name: JSON with per-frame
weights, or any CSV :func:`imucap.export.read_track` reads). The face track is resampled to the
dataset's 60 Hz frames on the audio's clock.

Training reads windows through :class:`SpeechWindows`: the features of a whole clip are
computed once, normalised with the training statistics, and cut into windows; training
windows get random gain (±12 dB) and, half the time, background noise (10-40 dB SNR) added in
the power-spectrum domain, so the model does not learn the synthesiser's level or its silence.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import ARKIT_NAMES, index_of

__all__ = [
    "AUDIO_RATE",
    "FORMAT",
    "INFO_FILE",
    "SpeakingStyle",
    "SpeechClip",
    "SpeechDataset",
    "SpeechDatasetError",
    "SpeechInfo",
    "SpeechStats",
    "SpeechWindows",
    "import_paired",
    "is_speech_dataset",
    "make_speech_dataset",
    "open_speech_dataset",
]

FORMAT = "imucap-speech"
VERSION = 1
INFO_FILE = "speech.json"
AUDIO_RATE = 16000
FPS = 60.0
SPLITS = ("train", "val", "test")


class SpeechDatasetError(ImucapError):
    """A speech dataset that cannot be read or made."""


# --- speaking style -------------------------------------------------------------------------------

#: The channels speech moves: jaw, mouth, cheek puff and tongue (the viseme model's outputs).
MOUTH_CHANNELS = tuple(k for k, n in enumerate(ARKIT_NAMES)
                       if n.startswith(("jaw", "mouth")) or n in ("cheekPuff", "tongueOut"))
_JAW = tuple(index_of(n) for n in ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight"))
_ROUND = tuple(index_of(n) for n in ("mouthFunnel", "mouthPucker"))
_SPREAD = tuple(index_of(n) for n in ("mouthStretchLeft", "mouthStretchRight"))
_SMILE = tuple(index_of(n) for n in ("mouthSmileLeft", "mouthSmileRight"))


@dataclass(frozen=True)
class SpeakingStyle:
    """How one speaker's mouth departs from the viseme model's canonical curves.

    Attributes:
        jaw_gain: Scale of the jaw opening (jawOpen, mouthLowerDown).
        round_gain: Scale of lip rounding (mouthFunnel, mouthPucker).
        spread_gain: Scale of lip spreading (mouthStretch).
        smile: A constant smile added to mouthSmile (0 to 0.15).
        lead_s: How far the mouth moves ahead of the sound, seconds.
    """

    jaw_gain: float = 1.0
    round_gain: float = 1.0
    spread_gain: float = 1.0
    smile: float = 0.0
    lead_s: float = 0.0

    @classmethod
    def draw(cls, rng: random.Random) -> SpeakingStyle:
        """A random speaker's style (the ranges the synthetic dataset uses)."""
        return cls(jaw_gain=rng.uniform(0.7, 1.35), round_gain=rng.uniform(0.7, 1.3),
                   spread_gain=rng.uniform(0.7, 1.3), smile=rng.uniform(0.0, 0.15),
                   lead_s=rng.uniform(0.0, 0.06))


def undershoot(rate_wpm: float) -> float:
    """Share of the canonical amplitude reached at ``rate_wpm`` (1 at 175 words/min)."""
    return float(np.clip(1.0 - 0.2 * (rate_wpm - 175.0) / 125.0, 0.75, 1.12))


def apply_style(weights: np.ndarray, style: SpeakingStyle, rate_wpm: float, fps: float = FPS
                ) -> np.ndarray:
    """The viseme curves ``(T, 52)`` as this speaker moves at this rate (a new array)."""
    out = np.asarray(weights, np.float32).copy()
    if style.lead_s:
        t = np.arange(len(out)) / fps
        src = np.clip(t + style.lead_s, 0.0, t[-1] if len(t) else 0.0)
        out = np.stack([np.interp(src, t, out[:, c]) for c in range(out.shape[1])], axis=1)
    amp = undershoot(rate_wpm)
    out[:, _JAW] *= style.jaw_gain * amp
    out[:, _ROUND] *= style.round_gain * amp
    out[:, _SPREAD] *= style.spread_gain * amp
    out[:, _SMILE] += style.smile
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# --- dataset description --------------------------------------------------------------------------


@dataclass
class SpeechStats:
    """Per-channel mean and standard deviation of the training features (for normalising)."""

    mean: np.ndarray
    std: np.ndarray

    def normalize(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "audio", "feature_mean": [float(v) for v in self.mean],
                "feature_std": [float(v) for v in self.std]}

    @classmethod
    def from_json(cls, data: Any, where: str) -> SpeechStats:
        try:
            mean = np.asarray(data["feature_mean"], np.float32)
            std = np.asarray(data["feature_std"], np.float32)
        except (KeyError, TypeError, ValueError):
            raise SpeechDatasetError(f"{where}: feature statistics are missing or damaged"
                                     ) from None
        if mean.shape != std.shape or mean.ndim != 1 or not np.all(std > 0):
            raise SpeechDatasetError(f"{where}: feature statistics are damaged")
        return cls(mean, std)


@dataclass
class ClipInfo:
    id: str
    speaker: str
    text: str
    duration_s: float
    frames: int
    source: str = "synthetic"


@dataclass
class SpeechInfo:
    """What ``speech.json`` says."""

    fps: float
    audio_rate: int
    features: dict[str, Any]
    clips: list[ClipInfo]
    splits: dict[str, list[str]]
    stats: SpeechStats | None = None
    generator: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    # What the training code reads of any dataset (see models/train.py).
    @property
    def sites(self) -> tuple[str, ...]:
        return ("audio",)

    @property
    def imu_rate_hz(self) -> float:
        return self.fps

    @property
    def blendshape_rate_hz(self) -> float:
        return self.fps

    def feature_config(self) -> Any:
        from imucap.audio.features import FeatureConfig

        return FeatureConfig(**self.features)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "fps": self.fps,
                "audio_rate": self.audio_rate, "features": self.features,
                "clips": [asdict(c) for c in self.clips], "splits": self.splits,
                "stats": self.stats.to_json() if self.stats is not None else None,
                "generator": self.generator, "created": self.created}

    @classmethod
    def from_json(cls, data: Any, where: str) -> SpeechInfo:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SpeechDatasetError(f"{where} is not an imucap speech dataset description")
        if data.get("version") != VERSION:
            raise SpeechDatasetError(f"{where} is version {data.get('version')}; this imucap "
                                     f"reads version {VERSION}: upgrade imucap")
        try:
            clips = [ClipInfo(**c) for c in data["clips"]]
            splits = {k: list(v) for k, v in data["splits"].items()}
            info = cls(float(data["fps"]), int(data["audio_rate"]), dict(data["features"]),
                       clips, splits, None, dict(data.get("generator") or {}),
                       str(data.get("created", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise SpeechDatasetError(f"{where} is damaged ({exc}): make the dataset again"
                                     ) from None
        if data.get("stats"):
            info.stats = SpeechStats.from_json(data["stats"], where)
        return info


@dataclass
class SpeechClip:
    """One clip: audio (float32, 16 kHz), weights ``(T, 52)`` and, if synthetic, phonemes."""

    id: str
    audio: np.ndarray
    weights: np.ndarray
    phonemes: list[tuple[str, float, float]]
    text: str
    style: dict[str, float]
    rate_wpm: float


def is_speech_dataset(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / INFO_FILE).is_file()


class SpeechDataset:
    """An opened speech dataset (see the module docstring)."""

    def __init__(self, path: Path, info: SpeechInfo) -> None:
        self.path = path
        self.info = info
        self._by_id = {c.id: c for c in info.clips}

    def __len__(self) -> int:
        return len(self.info.clips)

    def __repr__(self) -> str:
        return f"SpeechDataset({str(self.path)!r}, {len(self)} clips)"

    def split_ids(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise SpeechDatasetError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        return list(self.info.splits.get(split, []))

    def clip(self, clip_id: str) -> SpeechClip:
        if clip_id not in self._by_id:
            raise SpeechDatasetError(f"{self.path} has no clip {clip_id!r}")
        file = self.path / "clips" / f"{clip_id}.npz"
        try:
            with np.load(file, allow_pickle=False) as z:
                audio = z["audio"].astype(np.float32) / 32768.0
                weights = z["weights"].astype(np.float32)
                phonemes = []
                if "phonemes" in z:
                    phonemes = [(str(s), float(a), float(b)) for s, a, b in
                                zip(z["phonemes"], z["starts"], z["ends"], strict=True)]
                style = json.loads(str(z["style"])) if "style" in z else {}
                rate = float(z["rate_wpm"]) if "rate_wpm" in z else float("nan")
        except FileNotFoundError:
            raise SpeechDatasetError(f"{file} is missing: the dataset is incomplete, make or "
                                     f"import it again") from None
        except (OSError, ValueError, KeyError) as exc:
            raise SpeechDatasetError(f"{file} is damaged ({exc}): make or import it again"
                                     ) from None
        return SpeechClip(clip_id, audio, weights, phonemes, self._by_id[clip_id].text, style,
                          rate)


def open_speech_dataset(path: str | os.PathLike[str]) -> SpeechDataset:
    """Open a speech dataset folder.

    Raises:
        SpeechDatasetError: No dataset there, or a damaged description.
    """
    path = Path(path)
    file = path / INFO_FILE
    if not file.is_file():
        raise SpeechDatasetError(f"{path} is not a speech dataset (no {INFO_FILE}): make one "
                                 f"with 'imucap speech-data make {path}'")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpeechDatasetError(f"{file} cannot be read ({exc}): make the dataset again"
                                 ) from None
    return SpeechDataset(path, SpeechInfo.from_json(data, str(file)))


# --- writing --------------------------------------------------------------------------------------


def _save_clip(folder: Path, clip_id: str, audio: np.ndarray, weights: np.ndarray, *,
               phonemes: Sequence[tuple[str, float, float]] = (),
               style: dict[str, float] | None = None, rate_wpm: float | None = None) -> None:
    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767)
    arrays: dict[str, Any] = {"audio": pcm.astype(np.int16),
                              "weights": np.asarray(weights, np.float32)}
    if phonemes:
        arrays["phonemes"] = np.array([p[0] for p in phonemes])
        arrays["starts"] = np.array([p[1] for p in phonemes], np.float64)
        arrays["ends"] = np.array([p[2] for p in phonemes], np.float64)
    if style is not None:
        arrays["style"] = np.array(json.dumps(style))
    if rate_wpm is not None:
        arrays["rate_wpm"] = np.array(float(rate_wpm))
    tmp = folder / f"{clip_id}.part.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, folder / f"{clip_id}.npz")


def _feature_stats(dataset: SpeechDataset, ids: Iterable[str]) -> SpeechStats:
    from imucap.audio.features import compute_features

    cfg = dataset.info.feature_config()
    total, total_sq, count = None, None, 0
    for cid in ids:
        f = compute_features(dataset.clip(cid).audio, dataset.info.audio_rate, cfg
                             ).astype(np.float64)
        total = f.sum(0) if total is None else total + f.sum(0)
        total_sq = (f ** 2).sum(0) if total_sq is None else total_sq + (f ** 2).sum(0)
        count += len(f)
    if not count:
        raise SpeechDatasetError(f"{dataset.path} has no training clips to take statistics of")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-6))
    return SpeechStats(mean.astype(np.float32), std.astype(np.float32))


def _write_info(path: Path, info: SpeechInfo) -> None:
    tmp = path / (INFO_FILE + ".part")
    tmp.write_text(json.dumps(info.to_json(), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path / INFO_FILE)


def _prepare_folder(path: Path, overwrite: bool) -> Path:
    if path.exists() and not path.is_dir():
        raise SpeechDatasetError(f"{path} is a file: give a folder for the dataset")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise SpeechDatasetError(f"{path} is not empty: choose a new folder, or pass "
                                     f"--overwrite to replace what is there")
        if not is_speech_dataset(path) and not (path / "clips").is_dir():
            raise SpeechDatasetError(f"{path} holds other files: --overwrite replaces only a "
                                     f"speech dataset; choose a new folder")
        for f in (path / "clips").glob("*.npz"):
            f.unlink()
        (path / INFO_FILE).unlink(missing_ok=True)
    if not path.parent.exists():
        raise SpeechDatasetError(f"folder {path.parent} does not exist: create it first")
    (path / "clips").mkdir(parents=True, exist_ok=True)
    return path


DEFAULT_FEATURES = {"n_mels": 80}
#: Voice variants kept for the validation and test speakers (never in training).
VAL_VARIANTS = ("f2", "m5", "Andy", "linda", "david")
TEST_VARIANTS = ("f4", "m7", "Alicia", "max", "quincy", "steph2")
_SKIP_VARIANTS = frozenset({"Demonic", "UniRobot", "anikaRobot", "croak", "whisper", "whisperf",
                            "Storm", "Tweaky"})


@dataclass(frozen=True)
class _Job:
    clip_id: str
    text: str
    voice: str
    rate_wpm: float
    pitch: float
    pitch_range: float
    style: SpeakingStyle
    pad_before_s: float
    pad_after_s: float


def _synth_job(job: _Job) -> tuple[str, np.ndarray, np.ndarray, list, dict, float]:
    from imucap.audio.espeak import synthesize
    from imucap.audio.features import frame_count
    from imucap.audio.io import Resampler
    from imucap.audio.visemes import phonemes_to_blendshapes

    speech = synthesize(job.text, voice=job.voice, rate_wpm=job.rate_wpm, pitch=job.pitch,
                        pitch_range=job.pitch_range)
    if speech.rate != AUDIO_RATE:
        rs = Resampler(speech.rate, AUDIO_RATE)
        audio = np.concatenate([rs.process(speech.samples), rs.flush()])
    else:
        audio = speech.samples.astype(np.float32)
    before = np.zeros(int(round(job.pad_before_s * AUDIO_RATE)), np.float32)
    after = np.zeros(int(round(job.pad_after_s * AUDIO_RATE)), np.float32)
    audio = np.concatenate([before, audio, after])
    shift = len(before) / AUDIO_RATE
    phonemes = [(p.symbol, p.start_s + shift, p.end_s + shift) for p in speech.phonemes]
    frames = frame_count(len(audio), AUDIO_RATE, FPS)
    canonical = phonemes_to_blendshapes(phonemes, len(audio) / AUDIO_RATE, FPS,
                                        n_frames=frames)
    weights = apply_style(canonical, job.style, job.rate_wpm)
    return job.clip_id, audio, weights, phonemes, asdict(job.style), job.rate_wpm


def _speakers(count: int, variants: Sequence[str], rng: random.Random, prefix: str
              ) -> list[dict[str, Any]]:
    from imucap.audio.espeak import voices

    accents = sorted({v.languages[0] for v in voices("en")})
    out = []
    for k in range(count):
        variant = variants[k % len(variants)]
        out.append({"id": f"{prefix}{k:03d}", "voice": f"{rng.choice(accents)}+{variant}",
                    "pitch": rng.uniform(25, 75), "pitch_range": rng.uniform(20, 80),
                    "style": SpeakingStyle.draw(rng)})
    return out


def make_speech_dataset(path: str | os.PathLike[str], *, clips: int = 2000, seed: int = 0,
                        speakers: int = 60, val_fraction: float = 0.05,
                        test_fraction: float = 0.1, workers: int = 1, overwrite: bool = False,
                        progress: Callable[[int, int], None] | None = None) -> SpeechDataset:
    """Make a synthetic speech dataset of ``clips`` utterances (see the module docstring).

    Args:
        path: New folder.
        clips: Utterances in all splits.
        seed: Everything random (texts, speakers, rates) follows from it.
        speakers: Training speakers; validation and test get about a quarter as many each,
            on voice variants training never uses.
        val_fraction, test_fraction: Shares of the clips.
        workers: Processes speaking in parallel.
        overwrite: Replace a speech dataset already in ``path``.
        progress: Called with (done, total) after each clip.

    Raises:
        SpeechDatasetError: A bad folder or setting; ImucapError from espeak-ng when it is not
            installed.
    """
    from imucap.audio.espeak import synthesize, variants
    from imucap.audio.features import FeatureConfig

    from .speech_texts import sentences

    if clips < 3:
        raise SpeechDatasetError(f"clips must be at least 3 (one per split), got {clips}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction
            < 1):
        raise SpeechDatasetError("val_fraction and test_fraction must be between 0 and 1, "
                                 "with room for training")
    synthesize("a", voice="en")  # fails here, in one line, when espeak-ng is missing
    path = _prepare_folder(Path(path), overwrite)
    rng = random.Random(seed)
    held = set(VAL_VARIANTS) | set(TEST_VARIANTS)
    train_vars = [v for v in variants() if v not in held and v not in _SKIP_VARIANTS]
    n_val = max(1, int(round(clips * val_fraction)))
    n_test = max(1, int(round(clips * test_fraction)))
    n_train = clips - n_val - n_test
    groups = {
        "train": (n_train, _speakers(speakers, train_vars, rng, "tr"), seed * 3 + 1),
        "val": (n_val, _speakers(max(2, speakers // 4), VAL_VARIANTS, rng, "va"), seed * 3 + 2),
        "test": (n_test, _speakers(max(2, speakers // 4), TEST_VARIANTS, rng, "te"),
                 seed * 3 + 3),
    }
    jobs: list[_Job] = []
    speaker_of: dict[str, str] = {}
    splits: dict[str, list[str]] = {}
    used: set[str] = set()
    for split, (n, spk, text_seed) in groups.items():
        texts = sentences(n, seed=text_seed, exclude=used)
        used |= set(texts)
        splits[split] = []
        for k, text in enumerate(texts):
            s = spk[k % len(spk)]
            cid = f"{split[:2]}{k:05d}"
            jobs.append(_Job(cid, text, s["voice"], rng.uniform(120, 300), s["pitch"],
                             s["pitch_range"], s["style"], rng.uniform(0.05, 0.5),
                             rng.uniform(0.05, 0.5)))
            speaker_of[cid] = f"{s['id']} ({s['voice']})"
            splits[split].append(cid)
    features = dict(DEFAULT_FEATURES)
    FeatureConfig(**features)  # a bad setting fails before any work
    info = SpeechInfo(FPS, AUDIO_RATE, features, [], splits, None,
                      {"kind": "espeak-ng + viseme model", "seed": seed, "clips": clips,
                       "speakers": speakers, "val_variants": list(VAL_VARIANTS),
                       "test_variants": list(TEST_VARIANTS)},
                      time.strftime("%Y-%m-%dT%H:%M:%S"))
    text_of = {j.clip_id: j.text for j in jobs}
    done: dict[str, ClipInfo] = {}

    def store(result: tuple) -> None:
        cid, audio, weights, phonemes, style, rate = result
        _save_clip(path / "clips", cid, audio, weights, phonemes=phonemes, style=style,
                   rate_wpm=rate)
        done[cid] = ClipInfo(cid, speaker_of[cid], text_of[cid], len(audio) / AUDIO_RATE,
                             len(weights))
        if progress is not None:
            progress(len(done), len(jobs))

    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap_unordered(_synth_job, jobs, chunksize=8):
                store(result)
    else:
        for job in jobs:
            store(_synth_job(job))
    info.clips = [done[j.clip_id] for j in jobs]
    dataset = SpeechDataset(path, info)
    info.stats = _feature_stats(dataset, splits["train"])
    _write_info(path, info)
    return dataset


# --- importing paired data ------------------------------------------------------------------------

_AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".mov", ".mp4",
                   ".mkv", ".webm")


def _pairs_in(folder: Path) -> list[tuple[Path, Path]]:
    """(audio, face) pairs of a take folder or a BEAT-style folder."""
    pairs = []
    faces = {p.stem.lower(): p for p in sorted(folder.iterdir())
             if p.suffix.lower() in (".csv", ".json") and not p.name.lower().endswith(".au.csv")}
    media = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in _AUDIO_SUFFIXES]
    for m in media:
        face = faces.get(m.stem.lower())
        if face is None and len(media) == 1 and len(faces) == 1:
            face = next(iter(faces.values()))  # a Live Link Face take: one video, one CSV
        if face is not None:
            pairs.append((m, face))
    return pairs


def import_paired(inputs: Sequence[str | os.PathLike[str]], path: str | os.PathLike[str], *,
                  test_fraction: float = 0.1, val_fraction: float = 0.1, seed: int = 0,
                  overwrite: bool = False,
                  say: Callable[[str], None] | None = None) -> SpeechDataset:
    """Make a speech dataset from paired audio and blendshape files.

    Each input is a folder: a Live Link Face take (its CSV and its video, whose sound track is
    the audio), a BEAT-style folder (``NAME.wav`` beside ``NAME.json`` or ``NAME.csv``), or a
    folder of such folders. Clips are split at random by file (``seed``).

    Raises:
        SpeechDatasetError: Nothing paired was found, or a file could not be read (the message
            names it).
    """
    from imucap.audio.features import frame_count
    from imucap.audio.io import load_audio
    from imucap.export import read_track

    note = say or (lambda text: None)
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        folder = Path(item)
        if not folder.is_dir():
            raise SpeechDatasetError(f"{folder} is not a folder: give take folders or "
                                     f"folders of audio and blendshape files")
        found = _pairs_in(folder)
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            found += _pairs_in(sub)
        if not found:
            note(f"{folder}: no audio file with a blendshape file of the same name")
        pairs += found
    if not pairs:
        raise SpeechDatasetError("found no paired audio and blendshape files: a take folder "
                                 "needs its video (or audio) and its CSV; a BEAT-style folder "
                                 "NAME.wav beside NAME.json or NAME.csv")
    path = _prepare_folder(Path(path), overwrite)
    clips: list[ClipInfo] = []
    for k, (media, face) in enumerate(pairs):
        clip = load_audio(media, rate=AUDIO_RATE)
        track = read_track(face, fps=FPS)
        frames = frame_count(len(clip.samples), AUDIO_RATE, FPS)
        t = np.arange(frames) / FPS
        tt = np.asarray(track.times, np.float64) - float(track.times[0])
        weights = np.stack([np.interp(t, tt, track.weights[:, c]) for c in
                            range(track.weights.shape[1])], axis=1)
        weights = np.nan_to_num(weights, nan=0.0)
        cid = f"c{k:05d}"
        _save_clip(path / "clips", cid, clip.samples, weights)
        clips.append(ClipInfo(cid, media.parent.name, "", clip.duration_s, frames,
                              str(media)))
        note(f"{media.name} + {face.name}: {clip.duration_s:.1f} s")
    rng = random.Random(seed)
    ids = [c.id for c in clips]
    rng.shuffle(ids)
    n_test = max(1, int(round(len(ids) * test_fraction))) if len(ids) >= 3 else 0
    n_val = max(1, int(round(len(ids) * val_fraction))) if len(ids) >= 3 else 0
    splits = {"test": sorted(ids[:n_test]), "val": sorted(ids[n_test:n_test + n_val]),
              "train": sorted(ids[n_test + n_val:])}
    info = SpeechInfo(FPS, AUDIO_RATE, dict(DEFAULT_FEATURES), clips, splits, None,
                      {"kind": "imported", "inputs": [str(i) for i in inputs]},
                      time.strftime("%Y-%m-%dT%H:%M:%S"))
    dataset = SpeechDataset(path, info)
    info.stats = _feature_stats(dataset, splits["train"])
    _write_info(path, info)
    return dataset


# --- training windows -----------------------------------------------------------------------------


class SpeechWindows:
    """Fixed-length windows over the clips of one split, for training and evaluation.

    Item ``k`` is a dict with ``imu``: the normalised audio features ``(W, 1, F)`` (one
    "sensor", so the IMU model's condition encoder reads them unchanged), and
    ``blendshapes``: ``(W, 52)``. A clip shorter than the window is padded with silence
    (features of digital silence, a neutral face). Windows start every ``hop_s``; with
    ``augment``, each item gets a random gain and, half the time, noise.

    Args:
        dataset: An opened speech dataset or its path.
        split: ``train``, ``val`` or ``test``.
        window_s, hop_s: Window length and step, seconds.
        augment: Random gain and noise (training).
        seed: Seed of the augmentation.
        stats: Normalisation (default the dataset's).
    """

    def __init__(self, dataset: SpeechDataset | str | os.PathLike[str], split: str = "train",
                 *, window_s: float = 2.0, hop_s: float = 1.0, augment: bool = False,
                 seed: int = 0, stats: SpeechStats | None = None) -> None:
        from imucap.audio.features import compute_features

        self.dataset = dataset if isinstance(dataset, SpeechDataset) else \
            open_speech_dataset(dataset)
        info = self.dataset.info
        if not (window_s > 0 and hop_s > 0):
            raise SpeechDatasetError(f"window_s and hop_s must be positive, got {window_s} and "
                                     f"{hop_s}")
        self.stats = stats or info.stats
        if self.stats is None:
            raise SpeechDatasetError(f"{self.dataset.path} has no feature statistics: make or "
                                     f"import it again")
        self.split = split
        self.window_s, self.hop_s = float(window_s), float(hop_s)
        self.n_imu = self.n_blendshape = max(1, int(round(window_s * info.fps)))
        hop = max(1, int(round(hop_s * info.fps)))
        self.augment = augment
        self._rng = np.random.default_rng(seed)
        cfg = info.feature_config()
        self._n_mels = cfg.n_mels if cfg.log_mel and cfg.n_mfcc == 0 and not cfg.deltas else 0
        self._floor = math.log(1e-10)
        self._feats: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []
        self.clip_ids: list[str] = []
        index = []
        w = self.n_imu
        for cid in self.dataset.split_ids(split):
            clip = self.dataset.clip(cid)
            f = compute_features(clip.audio, info.audio_rate, cfg)
            y = clip.weights[:len(f)]
            if len(f) < w:
                pad = w - len(f)
                f = np.concatenate([f, np.full((pad, f.shape[1]), self._floor, f.dtype)])
                y = np.concatenate([y, np.zeros((pad, y.shape[1]), y.dtype)])
            k = len(self._feats)
            self._feats.append(f.astype(np.float32))
            self._weights.append(y.astype(np.float32))
            self.clip_ids.append(cid)
            starts = list(range(0, len(f) - w + 1, hop))
            if starts[-1] != len(f) - w:
                starts.append(len(f) - w)  # the end of the clip too
            index += [(k, s) for s in starts]
        self._index = np.array(index, np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self._index)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Unnormalised features ``(W, F)`` and weights ``(W, 52)`` of window ``index``."""
        k, s = (int(v) for v in self._index[index])
        w = self.n_imu
        return self._feats[k][s:s + w], self._weights[k][s:s + w]

    def _augmented(self, feats: np.ndarray) -> np.ndarray:
        if not self._n_mels:
            return feats
        rng = self._rng
        out = feats + math.log(10.0) * rng.uniform(-12, 12) / 10.0  # gain, dB → ln power
        if rng.random() < 0.5:
            # Noise: a tilted spectrum at a random SNR below the window's mean speech power.
            power = np.exp(out)
            level = power.mean() * 10.0 ** (-rng.uniform(10, 40) / 10.0)
            tilt = np.exp(-rng.uniform(0, 3) * np.linspace(0, 1, out.shape[1]))
            noise = level * tilt / tilt.mean()
            out = np.log(power + noise[None, :])
        return out.astype(np.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"window {index} of {n}")
        feats, weights = self.raw(index)
        if self.augment:
            feats = self._augmented(feats)
        return {"imu": self.stats.normalize(feats)[:, None, :],
                "blendshapes": weights.copy()}

