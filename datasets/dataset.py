"""The imucap dataset format on disk: writing, validating, loading, windowing and statistics.

A dataset is a directory (layout and every field in ``datasets/README.md``)::

    info.json            DatasetInfo: rates, chip, sites, placement, sessions, splits, stats
    sessions/<id>.npz    one session's arrays: int16 IMU counts and float blendshapes, each on
                         its own time base

Synthetic sessions (:mod:`.synth`) and real recordings write the same format through
:class:`DatasetWriter`. :func:`open_dataset` validates ``info.json`` into a typed
:class:`DatasetInfo` and hands out sessions in SI units; :class:`WindowDataset` cuts the
sessions of one split into fixed-length, normalised training windows (a map-style dataset of
numpy arrays that a torch ``DataLoader`` accepts as it is; torch is never imported here).

Crash safety: session files are written to ``<id>.npz.part`` and renamed; ``info.json`` is
replaced atomically, says ``complete: false`` while sessions are still being written, and
``complete: true`` only once splits and statistics are in. A reader refuses anything that is
not complete, so an interrupted run can never be mistaken for a dataset.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES

from .sensor_model import lsb_si

DATASET_FORMAT = 1
"""The dataset format this imucap writes and reads; any change to the layout bumps it."""

INFO_FILE = "info.json"
SESSIONS_DIR = "sessions"
SOURCES = ("synthetic", "recorded")
SPLITS = ("train", "val", "test")

# Arrays of a session file: name → (dtype, shape with symbolic sizes N, M, S).
SESSION_ARRAYS: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "imu_time_s": ("float64", ("N",)),
    "accel": ("int16", ("N", "S", 3)),
    "gyro": ("int16", ("N", "S", 3)),
    "blendshape_time_s": ("float64", ("M",)),
    "blendshapes": ("float32", ("M", NUM_BLENDSHAPES)),
    "head_rotvec": ("float32", ("M", 3)),
    "head_pos": ("float32", ("M", 3)),
}

# Arrays a session file may also hold: a magnetometer beside each IMU (counts, see
# ``mag_range_ut``), each sensor's on-board orientation (Q14 quaternion counts, world from
# sensor), and the session's audio (mono 16-bit PCM at ``audio_rate_hz``, on the session clock
# from ``audio_start_s``).
OPTIONAL_ARRAYS: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "mag": ("int16", ("N", "S", 3)),
    "quat": ("int16", ("N", "S", 4)),
    "audio": ("int16", ("K",)),
    "audio_rate_hz": ("float64", ()),
    "audio_start_s": ("float64", ()),
}

# Smallest standard deviations used when normalising, so a channel that never moves in the
# training split (an unused blendshape, a gyro axis of a still sensor) divides by something sane.
STD_FLOOR = {"accel": 1e-3, "gyro": 1e-4, "blendshapes": 1e-3}

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same arrays give the same file bytes


class DatasetError(ImucapError):
    """A dataset that cannot be written, opened or read as asked."""


class DatasetFormatError(DatasetError):
    """A dataset written in a format version this imucap does not read."""


# --------------------------------------------------------------------------------------------
# info.json


@dataclass(frozen=True)
class SessionInfo:
    """One session's entry in ``info.json``.

    Attributes:
        id: Session id, also the file's stem (letters, digits, ``_ . -``).
        subject: Subject id; splits are made by subject.
        file: The session file, relative to the dataset directory (``sessions/<id>.npz``).
        duration_s: Length of the time span both streams cover, seconds (windows are cut
            from it).
        n_imu: IMU samples in the file.
        n_blendshape: Blendshape frames in the file.
    """

    id: str
    subject: str
    file: str
    duration_s: float
    n_imu: int
    n_blendshape: int

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object."""
        return {"id": self.id, "subject": self.subject, "file": self.file,
                "duration_s": self.duration_s, "n_imu": self.n_imu,
                "n_blendshape": self.n_blendshape}

    @classmethod
    def from_json(cls, data: Any, where: str) -> SessionInfo:
        """Validate an entry; ``where`` names it in errors (:class:`DatasetError`)."""
        _check_dict(data, where)
        info = cls(id=_get(data, "id", str, where), subject=_get(data, "subject", str, where),
                   file=_get(data, "file", str, where),
                   duration_s=_get(data, "duration_s", float, where),
                   n_imu=_get(data, "n_imu", int, where),
                   n_blendshape=_get(data, "n_blendshape", int, where))
        if not _ID_RE.match(info.id) or not _ID_RE.match(info.subject):
            raise DatasetError(f"{where}: session and subject ids may hold only letters, digits "
                               f"and _ . - (got {info.id!r}, {info.subject!r})")
        if info.file != f"{SESSIONS_DIR}/{info.id}.npz":
            raise DatasetError(f"{where}: file must be '{SESSIONS_DIR}/{info.id}.npz', "
                               f"got {info.file!r}")
        if info.n_imu < 0 or info.n_blendshape < 0 or info.duration_s < 0:
            raise DatasetError(f"{where}: negative sample counts or duration")
        return info


@dataclass(frozen=True, eq=False)
class NormStats:
    """Normalisation statistics of the training split, in SI units.

    Attributes:
        accel_mean: ``(S, 3)`` mean specific force per site and axis, m/s².
        accel_std: ``(S, 3)`` standard deviation, m/s².
        gyro_mean: ``(S, 3)`` mean angular rate, rad/s.
        gyro_std: ``(S, 3)`` standard deviation, rad/s.
        blendshape_mean: ``(52,)`` mean weight of each blendshape (ARKit order).
        blendshape_std: ``(52,)`` standard deviation of each weight.
        n_imu: IMU samples the statistics were computed over.
        n_blendshape: Blendshape frames they were computed over.
        split: The split they come from (always ``"train"`` for a written dataset).
    """

    accel_mean: np.ndarray
    accel_std: np.ndarray
    gyro_mean: np.ndarray
    gyro_std: np.ndarray
    blendshape_mean: np.ndarray
    blendshape_std: np.ndarray
    n_imu: int
    n_blendshape: int
    split: str = "train"

    def normalize_imu(self, accel: np.ndarray, gyro: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(accel, gyro)`` ``(..., S, 3)`` in SI units → zero-mean, unit-variance float32."""
        a = (accel - self.accel_mean) / np.maximum(self.accel_std, STD_FLOOR["accel"])
        g = (gyro - self.gyro_mean) / np.maximum(self.gyro_std, STD_FLOOR["gyro"])
        return a.astype(np.float32), g.astype(np.float32)

    def normalize_blendshapes(self, weights: np.ndarray) -> np.ndarray:
        """Blendshape weights ``(..., 52)`` → zero-mean, unit-variance float32."""
        std = np.maximum(self.blendshape_std, STD_FLOOR["blendshapes"])
        return ((weights - self.blendshape_mean) / std).astype(np.float32)

    def denormalize_blendshapes(self, values: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`normalize_blendshapes`."""
        std = np.maximum(self.blendshape_std, STD_FLOOR["blendshapes"])
        return (values * std + self.blendshape_mean).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        """The statistics as a JSON object of nested lists."""
        return {"split": self.split, "n_imu": self.n_imu, "n_blendshape": self.n_blendshape,
                "accel_mean": self.accel_mean.tolist(), "accel_std": self.accel_std.tolist(),
                "gyro_mean": self.gyro_mean.tolist(), "gyro_std": self.gyro_std.tolist(),
                "blendshape_mean": self.blendshape_mean.tolist(),
                "blendshape_std": self.blendshape_std.tolist()}

    @classmethod
    def from_json(cls, data: Any, where: str, n_sites: int) -> NormStats:
        """Validate statistics for ``n_sites`` sites (:class:`DatasetError` naming ``where``)."""
        _check_dict(data, where)

        def array(key: str, shape: tuple[int, ...]) -> np.ndarray:
            value = _get(data, key, list, where)
            try:
                out = np.array(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise DatasetError(f"{where}.{key}: expected numbers") from None
            if out.shape != shape or not np.all(np.isfinite(out)):
                raise DatasetError(f"{where}.{key}: expected {shape} finite numbers, "
                                   f"got shape {out.shape}")
            return out

        site3 = (n_sites, 3)
        return cls(array("accel_mean", site3), array("accel_std", site3),
                   array("gyro_mean", site3), array("gyro_std", site3),
                   array("blendshape_mean", (NUM_BLENDSHAPES,)),
                   array("blendshape_std", (NUM_BLENDSHAPES,)),
                   _get(data, "n_imu", int, where), _get(data, "n_blendshape", int, where),
                   _get(data, "split", str, where))


@dataclass(frozen=True)
class DatasetInfo:
    """The typed content of ``info.json`` (see ``datasets/README.md`` for each key).

    Attributes:
        format: Format version (:data:`DATASET_FORMAT`).
        name: Dataset name.
        source: ``"synthetic"`` or ``"recorded"``.
        created: When writing started, ISO 8601 with time zone.
        imu_rate_hz: Nominal IMU output rate.
        blendshape_rate_hz: Nominal blendshape rate (windows resample to it).
        chip: IMU chip name.
        accel_range_g: Accelerometer full scale, ±g (sets the count's size).
        gyro_range_dps: Gyroscope full scale, ±°/s.
        mag_range_ut: Magnetometer full scale, ±µT (0: no magnetometer in the sessions).
        sites: Site name of each IMU, the ``S`` axis of the IMU arrays.
        placement: The placement's JSON form (:meth:`Placement.to_json`).
        blendshape_names: The 52 ARKit names, the last axis of ``blendshapes``.
        sessions: Sessions in the dataset (written so far, while incomplete).
        splits: ``train``, ``val`` and ``test`` → subject ids.
        stats: Normalisation statistics of the training split; None while incomplete.
        generator: Free-form description of what made the dataset (seed, command, versions).
        complete: True once every session, the splits and the statistics are written.
    """

    format: int
    name: str
    source: str
    created: str
    imu_rate_hz: float
    blendshape_rate_hz: float
    chip: str
    accel_range_g: int
    gyro_range_dps: int
    sites: tuple[str, ...]
    placement: dict[str, Any]
    blendshape_names: tuple[str, ...] = ARKIT_NAMES
    sessions: tuple[SessionInfo, ...] = ()
    splits: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {name: () for name in SPLITS})
    stats: NormStats | None = None
    generator: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    mag_range_ut: int = 0

    @property
    def subjects(self) -> tuple[str, ...]:
        """Subject ids in the order their first session appears."""
        return tuple(dict.fromkeys(s.subject for s in self.sessions))

    def sessions_of(self, split: str) -> tuple[SessionInfo, ...]:
        """Sessions whose subject is in ``split`` (``"train"``, ``"val"``, ``"test"``)."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        subjects = set(self.splits[split])
        return tuple(s for s in self.sessions if s.subject in subjects)

    def to_json(self) -> dict[str, Any]:
        """The ``info.json`` object."""
        return {
            "format": self.format, "name": self.name, "source": self.source,
            "created": self.created, "imu_rate_hz": self.imu_rate_hz,
            "blendshape_rate_hz": self.blendshape_rate_hz, "chip": self.chip,
            "accel_range_g": self.accel_range_g, "gyro_range_dps": self.gyro_range_dps,
            "sites": list(self.sites), "placement": self.placement,
            "blendshape_names": list(self.blendshape_names),
            "sessions": [s.to_json() for s in self.sessions],
            "splits": {k: list(v) for k, v in self.splits.items()},
            "stats": None if self.stats is None else self.stats.to_json(),
            "generator": self.generator, "complete": self.complete,
            "mag_range_ut": self.mag_range_ut,
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = INFO_FILE) -> DatasetInfo:
        """Validate ``info.json``'s content.

        Raises:
            DatasetFormatError: ``format`` is not :data:`DATASET_FORMAT`.
            DatasetError: A key is missing, has the wrong type or an impossible value.
        """
        where = source
        _check_dict(data, where)
        version = _get(data, "format", int, where)
        if version != DATASET_FORMAT or isinstance(version, bool):
            raise DatasetFormatError(
                f"{where}: dataset format {version!r}; this imucap reads format "
                f"{DATASET_FORMAT}: use the imucap version that wrote it, or re-create the "
                f"dataset with this one")
        src = _get(data, "source", str, where)
        if src not in SOURCES:
            raise DatasetError(f"{where}: source must be one of {', '.join(SOURCES)}, "
                               f"got {src!r}")
        sites = tuple(_get_str_list(data, "sites", where))
        if not sites or len(set(sites)) != len(sites):
            raise DatasetError(f"{where}: sites must be a non-empty list of distinct names")
        names = tuple(_get_str_list(data, "blendshape_names", where))
        if names != ARKIT_NAMES:
            raise DatasetError(f"{where}: blendshape_names must be the 52 ARKit names in ARKit "
                               f"order (imucap.vocab.ARKIT_NAMES)")
        raw_sessions = _get(data, "sessions", list, where)
        sessions = tuple(SessionInfo.from_json(s, f"{where}: sessions[{i}]")
                         for i, s in enumerate(raw_sessions))
        ids = [s.id for s in sessions]
        if len(set(ids)) != len(ids):
            raise DatasetError(f"{where}: session ids repeat")
        splits = _parse_splits(_get(data, "splits", dict, where), where)
        complete = _get(data, "complete", bool, where)
        stats_raw = data.get("stats", _MISSING)
        if stats_raw is _MISSING:
            raise DatasetError(f"{where}: missing key 'stats'")
        stats = None if stats_raw is None else NormStats.from_json(
            stats_raw, f"{where}: stats", len(sites))
        if complete and stats is None:
            raise DatasetError(f"{where}: a complete dataset needs its 'stats'")
        placed = {s for v in splits.values() for s in v}
        unplaced = sorted({s.subject for s in sessions} - placed)
        if complete and unplaced:
            raise DatasetError(f"{where}: subject(s) {', '.join(unplaced)} are in no split")
        rates = (_get(data, "imu_rate_hz", float, where),
                 _get(data, "blendshape_rate_hz", float, where))
        if min(rates) <= 0:
            raise DatasetError(f"{where}: rates must be positive")
        return cls(format=DATASET_FORMAT, name=_get(data, "name", str, where), source=src,
                   created=_get(data, "created", str, where), imu_rate_hz=rates[0],
                   blendshape_rate_hz=rates[1], chip=_get(data, "chip", str, where),
                   accel_range_g=_get(data, "accel_range_g", int, where),
                   gyro_range_dps=_get(data, "gyro_range_dps", int, where), sites=sites,
                   placement=_get(data, "placement", dict, where), blendshape_names=names,
                   sessions=sessions, splits=splits, stats=stats,
                   generator=_get(data, "generator", dict, where), complete=complete,
                   mag_range_ut=_get(data, "mag_range_ut", int, where)
                   if "mag_range_ut" in data else 0)


_MISSING = object()
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "an object"}


def _check_dict(data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(data).__name__}")


def _get(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``data[key]`` checked to be of ``kind`` (ints pass as floats; bools never as numbers)."""
    if key not in data:
        raise DatasetError(f"{where}: missing key {key!r}")
    value = data[key]
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if kind is float and ok and not math.isfinite(value):
        ok = False
    if not ok:
        raise DatasetError(f"{where}: {key!r} must be {_TYPE_NAMES[kind]}, "
                           f"got {json.dumps(value)[:40]}")
    return value


def _get_str_list(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = _get(data, key, list, where)
    if not all(isinstance(v, str) for v in value):
        raise DatasetError(f"{where}: {key!r} must be a list of strings")
    return value


def _parse_splits(data: dict, where: str) -> dict[str, tuple[str, ...]]:
    if set(data) != set(SPLITS):
        raise DatasetError(f"{where}: splits must have exactly the keys "
                           f"{', '.join(SPLITS)}, got {', '.join(sorted(data)) or 'none'}")
    out = {name: tuple(_get_str_list(data, name, f"{where}: splits")) for name in SPLITS}
    seen: dict[str, str] = {}
    for name, subjects in out.items():
        for subject in subjects:
            if subject in seen:
                raise DatasetError(f"{where}: subject {subject!r} is in both the "
                                   f"{seen[subject]} and the {name} split")
            seen[subject] = name
    return out


# --------------------------------------------------------------------------------------------
# Splits


def make_splits(subject_ids: Iterable[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), *,
                seed: int = 0) -> dict[str, tuple[str, ...]]:
    """Assign subjects to train, val and test.

    The subjects (distinct ids, sorted) are shuffled with ``seed`` and cut by ``fractions``,
    so the result depends only on the set of ids, the fractions and the seed. With three or
    more subjects every split with a non-zero fraction gets at least one subject and train
    keeps at least one; with fewer, train is filled first, then val.

    Args:
        subject_ids: Subject ids (repeats are ignored).
        fractions: Shares of train, val and test; non-negative, summing to 1, train > 0.
        seed: Shuffle seed.

    Returns:
        ``{"train": ids, "val": ids, "test": ids}``, each sorted; no subject in two splits.

    Raises:
        DatasetError: Bad fractions or no subjects.
    """
    subjects = sorted(set(subject_ids))
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6 or fr[0] <= 0:
        raise DatasetError(f"split fractions must be three shares (train, val, test) that are "
                           f"not negative and sum to 1 with train > 0, got {tuple(fractions)}")
    n = len(subjects)
    if n == 0:
        raise DatasetError("cannot split a dataset without subjects")
    order = [subjects[i] for i in np.random.default_rng(seed).permutation(n)]
    if n >= 3:
        counts = [0, 0, 0]
        for k in (1, 2):
            if fr[k] > 0:
                counts[k] = max(1, int(round(fr[k] * n)))
        while counts[1] + counts[2] > n - 1:  # train keeps at least one subject
            counts[1 if counts[1] >= counts[2] else 2] -= 1
        counts[0] = n - counts[1] - counts[2]
    else:
        counts = [1, n - 1 if fr[1] > 0 else 0, 0]
        counts[0] = n - counts[1]
    train, val = order[:counts[0]], order[counts[0]:counts[0] + counts[1]]
    test = order[counts[0] + counts[1]:]
    return {"train": tuple(sorted(train)), "val": tuple(sorted(val)), "test": tuple(sorted(test))}


# --------------------------------------------------------------------------------------------
# Session files


@dataclass(frozen=True, eq=False)
class SessionRecord:
    """One session file's arrays as stored: IMU counts and blendshapes on their own clocks.

    Both time bases count seconds on the same session clock; they need not start at zero,
    start together, or share a rate.

    Attributes:
        imu_time_s: ``(N,)`` float64 IMU sample times, strictly increasing, seconds.
        accel: ``(N, S, 3)`` int16 accelerometer counts (see ``accel_range_g``).
        gyro: ``(N, S, 3)`` int16 gyroscope counts (see ``gyro_range_dps``).
        blendshape_time_s: ``(M,)`` float64 blendshape frame times, strictly increasing.
        blendshapes: ``(M, 52)`` float32 ARKit weights in [0, 1].
        head_rotvec: ``(M, 3)`` float32 world-from-head rotation vectors, radians.
        head_pos: ``(M, 3)`` float32 head positions, metres.
        mag: ``(N, S, 3)`` int16 magnetometer counts, or None.
        quat: ``(N, S, 4)`` int16 Q14 orientation counts (world from sensor), or None.
        audio: ``(K,)`` int16 mono PCM, or None.
        audio_rate_hz: 0-d float64 audio sample rate (with ``audio``).
        audio_start_s: 0-d float64 session time of the first audio sample (with ``audio``).
    """

    imu_time_s: np.ndarray
    accel: np.ndarray
    gyro: np.ndarray
    blendshape_time_s: np.ndarray
    blendshapes: np.ndarray
    head_rotvec: np.ndarray
    head_pos: np.ndarray
    mag: np.ndarray | None = None
    quat: np.ndarray | None = None
    audio: np.ndarray | None = None
    audio_rate_hz: np.ndarray | None = None
    audio_start_s: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by their names in the file (optional ones only where present)."""
        out = {name: getattr(self, name) for name in SESSION_ARRAYS}
        out.update({name: getattr(self, name) for name in OPTIONAL_ARRAYS
                    if getattr(self, name) is not None})
        return out

    def check(self, where: str, n_sites: int | None = None) -> None:
        """Raise :class:`DatasetError` (naming ``where``) unless dtypes and shapes fit."""
        arrays = self.arrays()
        sizes: dict[str, int] = {} if n_sites is None else {"S": n_sites}
        audio = [n for n in ("audio", "audio_rate_hz", "audio_start_s") if n in arrays]
        if audio and len(audio) != 3:
            raise DatasetError(f"{where}: audio needs audio, audio_rate_hz and audio_start_s "
                               f"together")
        specs = {**SESSION_ARRAYS, **{k: v for k, v in OPTIONAL_ARRAYS.items() if k in arrays}}
        for name, (dtype, shape) in specs.items():
            a = arrays[name]
            if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype) or \
                    a.ndim != len(shape):
                got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
                raise DatasetError(f"{where}: {name} must be {dtype} with {len(shape)} axes, "
                                   f"got {got}")
            for axis, (want, have) in enumerate(zip(shape, a.shape, strict=True)):
                if isinstance(want, str):
                    want = sizes.setdefault(want, have)
                if want != have:
                    raise DatasetError(f"{where}: {name} axis {axis} has {have} entries where "
                                       f"{want} are expected")
        for name in ("blendshapes", "head_rotvec", "head_pos"):
            if not np.all(np.isfinite(arrays[name])):
                raise DatasetError(f"{where}: {name} holds NaN or infinite values")
        for name in ("imu_time_s", "blendshape_time_s"):
            t = arrays[name]
            if t.size and (not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0)):
                raise DatasetError(f"{where}: {name} must be finite and strictly increasing")
        if audio and not float(arrays["audio_rate_hz"]) > 0:
            raise DatasetError(f"{where}: audio_rate_hz must be positive")

    @property
    def overlap_s(self) -> tuple[float, float]:
        """The time span ``(start, end)`` both streams cover (end < start when they do not)."""
        if not self.imu_time_s.size or not self.blendshape_time_s.size:
            return 0.0, -1.0
        return (max(float(self.imu_time_s[0]), float(self.blendshape_time_s[0])),
                min(float(self.imu_time_s[-1]), float(self.blendshape_time_s[-1])))


@dataclass(frozen=True, eq=False)
class Session:
    """One session in SI units, as :meth:`Dataset.session` returns it.

    Attributes:
        id: Session id.
        subject: Subject id.
        imu_time_s: ``(N,)`` float64 IMU sample times, seconds.
        accel: ``(N, S, 3)`` float32 specific force in each sensor's axes, m/s².
        gyro: ``(N, S, 3)`` float32 angular rate in each sensor's axes, rad/s.
        blendshape_time_s: ``(M,)`` float64 blendshape frame times, seconds.
        blendshapes: ``(M, 52)`` float32 ARKit weights.
        head_rotvec: ``(M, 3)`` float32 world-from-head rotation vectors, radians.
        head_pos: ``(M, 3)`` float32 head positions, metres.
        mag: ``(N, S, 3)`` float32 magnetic field, µT, or None.
        quat: ``(N, S, 4)`` float32 orientation quaternions (w, x, y, z), or None.
        audio: ``(K,)`` float32 mono audio in [-1, 1], or None.
        audio_rate_hz: Audio sample rate (0 without audio).
        audio_start_s: Session time of the first audio sample.
    """

    id: str
    subject: str
    imu_time_s: np.ndarray
    accel: np.ndarray
    gyro: np.ndarray
    blendshape_time_s: np.ndarray
    blendshapes: np.ndarray
    head_rotvec: np.ndarray
    head_pos: np.ndarray
    mag: np.ndarray | None = None
    quat: np.ndarray | None = None
    audio: np.ndarray | None = None
    audio_rate_hz: float = 0.0
    audio_start_s: float = 0.0


def save_session(path: str | Path, record: SessionRecord, *, n_sites: int | None = None
                 ) -> None:
    """Write a session file crash-safely: to ``<path>.part``, flushed to disk, then renamed.

    The file is an ordinary ``.npz`` (``np.load`` reads it) with fixed zip timestamps, so the
    same arrays always give the same bytes.

    Raises:
        DatasetError: Arrays of the wrong dtype or shape (checked before anything is written).
    """
    path = Path(path)
    record.check(f"session {path.name}", n_sites)
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as fh:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in record.arrays().items():
                entry = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
                with zf.open(entry, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.require(array, requirements=["C"]),
                                              allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(part, path)


def load_session_file(path: str | Path, *, n_sites: int | None = None) -> SessionRecord:
    """Read a session file (``allow_pickle=False``) and check its arrays.

    Raises:
        DatasetError: The file is missing, truncated, not an npz, or its arrays do not fit.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in SESSION_ARRAYS if k not in npz.files]
            if missing:
                raise DatasetError(f"session file {path} lacks {', '.join(missing)}: it was not "
                                   f"written by imucap; re-create the dataset")
            arrays = {k: npz[k] for k in SESSION_ARRAYS}
            arrays.update({k: npz[k] for k in OPTIONAL_ARRAYS if k in npz.files})
    except FileNotFoundError:
        raise DatasetError(f"session file {path} is missing: the dataset is damaged; "
                           f"re-create it (or restore the file)") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise DatasetError(f"session file {path} is damaged or truncated ({type(exc).__name__}): "
                           f"re-create the dataset (or restore the file)") from None
    record = SessionRecord(**arrays)
    record.check(f"session file {path}", n_sites)
    return record


# --------------------------------------------------------------------------------------------
# Statistics


class _Moments:
    """Running count, mean and sum of squared deviations (Chan et al.'s parallel update)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | float = 0.0
        self.m2: np.ndarray | float = 0.0

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        values = np.asarray(values, dtype=np.float64)
        n_b = len(values)
        mean_b = values.mean(axis=0)
        m2_b = ((values - mean_b) ** 2).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / n)
        self.n = n

    def result(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if self.n == 0:
            return np.zeros(shape), np.ones(shape)
        return np.asarray(self.mean), np.sqrt(np.asarray(self.m2) / self.n)


def compute_stats(records: Iterable[SessionRecord], *, accel_range_g: float,
                  gyro_range_dps: float, n_sites: int, split: str = "train") -> NormStats:
    """Per-site, per-axis mean and standard deviation of accel and gyro (SI units) and
    per-blendshape mean and standard deviation, over all samples of ``records``.

    With no samples at all the means are 0 and the deviations 1 (normalising does nothing).
    """
    accel_lsb, gyro_lsb = lsb_si(accel_range_g, gyro_range_dps)
    acc, gyr, bs = _Moments(), _Moments(), _Moments()
    for rec in records:
        acc.add(rec.accel.astype(np.float64) * accel_lsb)
        gyr.add(rec.gyro.astype(np.float64) * gyro_lsb)
        bs.add(rec.blendshapes)
    a_mean, a_std = acc.result((n_sites, 3))
    g_mean, g_std = gyr.result((n_sites, 3))
    b_mean, b_std = bs.result((NUM_BLENDSHAPES,))
    return NormStats(a_mean, a_std, g_mean, g_std, b_mean, b_std, acc.n, bs.n, split)


# --------------------------------------------------------------------------------------------
# Writing


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=1) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_info_json(path: Path) -> Any:
    try:
        return json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DatasetError(f"{path / INFO_FILE} is not valid JSON: the dataset is damaged; "
                           f"re-create it") from None


def dataset_state(path: str | Path) -> str:
    """What is at ``path``: ``"absent"``, ``"empty"``, ``"complete"``, ``"partial"`` (an
    interrupted dataset), ``"unreadable"`` (an info.json that cannot be read) or ``"other"``
    (a file, or a folder holding something that is not a dataset)."""
    path = Path(path)
    if not path.exists():
        return "absent"
    if not path.is_dir():
        return "other"
    if not any(path.iterdir()):
        return "empty"
    has_sessions = (path / SESSIONS_DIR).is_dir()
    if (path / INFO_FILE).is_file():
        try:
            data = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            return "unreadable" if has_sessions else "other"
        if isinstance(data, dict) and "format" in data and "sessions" in data:
            return "complete" if data.get("complete") is True else "partial"
        return "other"  # someone else's info.json: not ours to replace
    return "partial" if has_sessions else "other"


def _remove_dataset_files(path: Path) -> None:
    """Delete what a dataset writer put in ``path`` (and nothing else)."""
    for name in (INFO_FILE, INFO_FILE + ".tmp"):
        (path / name).unlink(missing_ok=True)
    sessions = path / SESSIONS_DIR
    if sessions.is_dir():
        for f in sessions.iterdir():
            if f.is_file() and (f.name.endswith(".npz") or f.name.endswith(".npz.part")):
                f.unlink()
        if not any(sessions.iterdir()):
            sessions.rmdir()


class DatasetWriter:
    """Writes a dataset: session files as they come, then splits, statistics and a complete
    ``info.json``.

    Typical use (a recorder writes real sessions the same way)::

        writer = DatasetWriter(path, info=DatasetInfo(...without sessions...))
        for ...:
            writer.add_session(session_id, subject, record)
        writer.finish(seed=0)

    Args:
        path: The dataset directory; created when absent.
        info: The dataset's fixed description (name, source, rates, chip, sites, placement,
            generator). Its ``sessions``, ``splits``, ``stats`` and ``complete`` are ignored.
        overwrite: Replace a dataset (complete or not) already at ``path``.
        resume: Continue an interrupted dataset at ``path``: the sessions its ``info.json``
            lists are kept (files written after the last ``info.json`` update are redone).
            Its fixed description must match ``info`` (``created`` and ``generator["command"]``
            and ``generator["versions"]`` aside).

    Raises:
        DatasetError: ``path`` holds something that is not a dataset, a complete dataset
            (without ``overwrite``), an interrupted one (without ``resume`` or
            ``overwrite``), or, on resume, one written with other settings.
    """

    def __init__(self, path: str | Path, *, info: DatasetInfo, overwrite: bool = False,
                 resume: bool = False) -> None:
        self.path = Path(path)
        _check_fixed_info(info)
        state = dataset_state(self.path)
        sessions: tuple[SessionInfo, ...] = ()
        if state == "other":
            raise DatasetError(f"{self.path} exists and is not a dataset: choose a new or empty "
                               f"folder")
        if state == "complete" and resume and not overwrite:
            raise DatasetError(f"{self.path} already holds a complete dataset: nothing to "
                               f"resume; pass overwrite (--overwrite) to replace it")
        if state in ("complete", "partial", "unreadable") and not (overwrite or resume):
            what = {"complete": "a complete dataset",
                    "partial": "an interrupted (partial) dataset",
                    "unreadable": "a dataset whose info.json cannot be read"}[state]
            hint = "resume it or pass" if state == "partial" else "pass"
            raise DatasetError(f"{self.path} already holds {what}: {hint} overwrite (--overwrite) "
                               f"to replace it")
        if overwrite:
            if state in ("complete", "partial", "unreadable"):
                _remove_dataset_files(self.path)
        elif resume and state == "partial":
            sessions = self._resumable_sessions(info)
        elif resume and state == "unreadable":
            raise DatasetError(f"{self.path}: info.json cannot be read, so the run cannot be "
                               f"resumed: pass overwrite (--overwrite) to start again")
        (self.path / SESSIONS_DIR).mkdir(parents=True, exist_ok=True)
        for stray in (self.path / SESSIONS_DIR).glob("*.npz.part"):
            stray.unlink()
        self._info = _replace(info, sessions=sessions, stats=None, complete=False,
                              splits={name: () for name in SPLITS})
        self._by_id = {s.id: s for s in sessions}
        self._checkpoint()

    @property
    def info(self) -> DatasetInfo:
        """What has been written so far."""
        return self._info

    @property
    def done_ids(self) -> frozenset[str]:
        """Ids of the sessions already written (kept from a resumed run included)."""
        return frozenset(self._by_id)

    def session_path(self, session_id: str) -> Path:
        """Where the session file of ``session_id`` goes."""
        if not _ID_RE.match(session_id):
            raise DatasetError(f"session id {session_id!r} may hold only letters, digits and "
                               f"_ . - (at most 128)")
        return self.path / SESSIONS_DIR / f"{session_id}.npz"

    def add_session(self, session_id: str, subject: str, record: SessionRecord) -> SessionInfo:
        """Write one session's file and list it in the (still incomplete) ``info.json``.

        Raises:
            DatasetError: A bad id, a repeated id, or arrays that do not fit the dataset.
        """
        path = self.session_path(session_id)
        if session_id in self._by_id:
            raise DatasetError(f"session {session_id!r} is already in {self.path}")
        save_session(path, record, n_sites=len(self._info.sites))
        return self.add_written_session(session_info_for(session_id, subject, record))

    def add_written_session(self, entry: SessionInfo) -> SessionInfo:
        """List a session whose file was already saved (by :func:`save_session`, e.g. in a
        worker process) in the (still incomplete) ``info.json``."""
        if not _ID_RE.match(entry.subject):
            raise DatasetError(f"subject id {entry.subject!r} may hold only letters, digits "
                               f"and _ . - (at most 128)")
        if entry.id in self._by_id:
            raise DatasetError(f"session {entry.id!r} is already in {self.path}")
        if not self.session_path(entry.id).is_file():
            raise DatasetError(f"session file {self.session_path(entry.id)} was not written")
        self._by_id[entry.id] = entry
        self._info = _replace(self._info, sessions=self._info.sessions + (entry,))
        self._checkpoint()
        return entry

    def set_generator(self, generator: dict[str, Any]) -> None:
        """Replace the free-form ``generator`` description (what made the dataset), for
        writers that know the whole story only at the end (the recording builder)."""
        self._info = _replace(self._info, generator=dict(generator))
        self._checkpoint()

    def finish(self, *, splits: Mapping[str, Sequence[str]] | None = None, seed: int = 0,
               fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> DatasetInfo:
        """Make the splits (by subject, unless given), compute the training statistics and
        write the complete ``info.json``; sessions are listed sorted by id.

        Raises:
            DatasetError: No sessions, or given splits that overlap or miss subjects.
        """
        sessions = tuple(sorted(self._info.sessions, key=lambda s: s.id))
        if not sessions:
            raise DatasetError(f"{self.path}: no sessions were written, so there is no dataset")
        subjects = sorted({s.subject for s in sessions})
        if splits is None:
            split_map = make_splits(subjects, fractions, seed=seed)
        else:
            split_map = _parse_splits({k: list(v) for k, v in splits.items()}, "splits")
            unplaced = set(subjects) - {s for v in split_map.values() for s in v}
            if unplaced:
                raise DatasetError(f"splits leave out subject(s) {', '.join(sorted(unplaced))}")
        train = set(split_map["train"])
        n_sites = len(self._info.sites)
        records = (load_session_file(self.path / s.file, n_sites=n_sites)
                   for s in sessions if s.subject in train)
        stats = compute_stats(records, accel_range_g=self._info.accel_range_g,
                              gyro_range_dps=self._info.gyro_range_dps, n_sites=n_sites)
        self._info = _replace(self._info, sessions=sessions, splits=split_map, stats=stats,
                              complete=True)
        self._checkpoint()
        return self._info

    def _checkpoint(self) -> None:
        _write_json_atomic(self.path / INFO_FILE, self._info.to_json())

    def _resumable_sessions(self, info: DatasetInfo) -> tuple[SessionInfo, ...]:
        old = DatasetInfo.from_json(_read_info_json(self.path),
                                    source=str(self.path / INFO_FILE))
        mine, theirs = _fixed_part(info), _fixed_part(old)
        differ = sorted(k for k in mine if mine[k] != theirs.get(k))
        if differ:
            raise DatasetError(f"{self.path}: the interrupted dataset was made with other "
                               f"settings ({', '.join(differ)}): use the same settings to "
                               f"resume, or pass overwrite (--overwrite) to start again")
        return tuple(s for s in old.sessions if (self.path / s.file).is_file())


def session_info_for(session_id: str, subject: str, record: SessionRecord) -> SessionInfo:
    """The ``info.json`` entry of a session file holding ``record``."""
    start, end = record.overlap_s
    return SessionInfo(id=session_id, subject=subject, file=f"{SESSIONS_DIR}/{session_id}.npz",
                       duration_s=max(0.0, end - start), n_imu=int(len(record.imu_time_s)),
                       n_blendshape=int(len(record.blendshape_time_s)))


def new_created() -> str:
    """The current time in ISO 8601 with time zone, seconds precision (for ``created``)."""
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _fixed_part(info: DatasetInfo) -> dict[str, Any]:
    data = info.to_json()
    for key in ("created", "sessions", "splits", "stats", "complete"):
        data.pop(key)
    data["generator"] = {k: v for k, v in data["generator"].items()
                         if k not in ("command", "versions")}
    return json.loads(json.dumps(data))  # compare JSON forms (tuples vs lists, ints vs floats)


def _check_fixed_info(info: DatasetInfo) -> None:
    try:
        DatasetInfo.from_json(json.loads(json.dumps(info.to_json())), source="dataset info")
    except DatasetError as exc:
        raise DatasetError(str(exc)) from None


def _replace(info: DatasetInfo, **changes: Any) -> DatasetInfo:
    return replace(info, **changes)


# --------------------------------------------------------------------------------------------
# Reading


class Dataset:
    """An opened, complete dataset (use :func:`open_dataset`).

    Attributes:
        path: The dataset directory.
        info: Its validated ``info.json``.
    """

    def __init__(self, path: Path, info: DatasetInfo) -> None:
        self.path = path
        self.info = info
        self._index = {s.id: i for i, s in enumerate(info.sessions)}
        self.accel_lsb, self.gyro_lsb = lsb_si(info.accel_range_g, info.gyro_range_dps)

    def __len__(self) -> int:
        return len(self.info.sessions)

    def __repr__(self) -> str:
        return (f"Dataset({str(self.path)!r}, {len(self)} sessions, "
                f"{len(self.info.subjects)} subjects, {len(self.info.sites)} sites)")

    def index_of(self, session: int | str) -> int:
        """Position of a session given by position or id."""
        if isinstance(session, str):
            if session not in self._index:
                raise DatasetError(f"no session {session!r} in {self.path}")
            return self._index[session]
        n = len(self)
        if not -n <= session < n:
            raise IndexError(f"session {session} of {n}")
        return session % n

    def record(self, session: int | str) -> SessionRecord:
        """A session's arrays as stored (IMU in counts).

        Raises:
            DatasetError: The file is missing, truncated or does not match ``info.json``.
        """
        entry = self.info.sessions[self.index_of(session)]
        path = self.path / entry.file
        rec = load_session_file(path, n_sites=len(self.info.sites))
        if len(rec.imu_time_s) != entry.n_imu or len(rec.blendshape_time_s) != entry.n_blendshape:
            raise DatasetError(f"session file {path} holds {len(rec.imu_time_s)} IMU samples and "
                               f"{len(rec.blendshape_time_s)} blendshape frames where info.json "
                               f"lists {entry.n_imu} and {entry.n_blendshape}: re-create the "
                               f"dataset")
        return rec

    def session(self, session: int | str) -> Session:
        """A session with its IMU converted to SI units (m/s², rad/s)."""
        entry = self.info.sessions[self.index_of(session)]
        rec = self.record(session)
        mag_lsb = self.info.mag_range_ut / 32768.0
        return Session(
            entry.id, entry.subject, rec.imu_time_s,
            (rec.accel * self.accel_lsb).astype(np.float32),
            (rec.gyro * self.gyro_lsb).astype(np.float32), rec.blendshape_time_s,
            rec.blendshapes, rec.head_rotvec, rec.head_pos,
            mag=None if rec.mag is None else (rec.mag * mag_lsb).astype(np.float32),
            quat=None if rec.quat is None else (rec.quat / 16384.0).astype(np.float32),
            audio=None if rec.audio is None else (rec.audio / 32768.0).astype(np.float32),
            audio_rate_hz=0.0 if rec.audio_rate_hz is None else float(rec.audio_rate_hz),
            audio_start_s=0.0 if rec.audio_start_s is None else float(rec.audio_start_s))

    def split_indices(self, split: str) -> list[int]:
        """Positions of the sessions of a split."""
        ids = {s.id for s in self.info.sessions_of(split)}
        return [i for i, s in enumerate(self.info.sessions) if s.id in ids]

    def compute_stats(self, split: str = "train") -> NormStats:
        """Normalisation statistics recomputed from the session files of ``split``."""
        return compute_stats((self.record(i) for i in self.split_indices(split)),
                             accel_range_g=self.info.accel_range_g,
                             gyro_range_dps=self.info.gyro_range_dps,
                             n_sites=len(self.info.sites), split=split)


def open_dataset(path: str | Path, *, verify: bool = False) -> Dataset:
    """Open a complete dataset.

    Args:
        path: The dataset directory.
        verify: Also read every session file now (otherwise they are read when used).

    Raises:
        DatasetFormatError: The dataset's format version is not :data:`DATASET_FORMAT`.
        DatasetError: No dataset there, an interrupted (partial) one, a damaged ``info.json``,
            or a session file that is missing (or, with ``verify``, truncated).
    """
    path = Path(path)
    state = dataset_state(path)
    if state in ("absent", "empty"):
        raise DatasetError(f"no dataset at {path}" + (" (the folder is empty)"
                                                      if state == "empty" else ""))
    if state == "other":
        raise DatasetError(f"{path} is not an imucap dataset (no {INFO_FILE})")
    if not (path / INFO_FILE).is_file():
        raise DatasetError(f"{path} is an interrupted (partial) dataset: it has session files "
                           f"but no {INFO_FILE}; resume the run that made it or delete the folder")
    info = DatasetInfo.from_json(_read_info_json(path), source=str(path / INFO_FILE))
    if not info.complete:
        raise DatasetError(f"{path} is an interrupted (partial) dataset ({len(info.sessions)} "
                           f"sessions written): resume the run that made it, or delete the "
                           f"folder")
    for entry in info.sessions:
        if not (path / entry.file).is_file():
            raise DatasetError(f"session file {path / entry.file} is missing: the dataset is "
                               f"damaged; re-create it (or restore the file)")
    dataset = Dataset(path, info)
    if verify:
        for i in range(len(dataset)):
            dataset.record(i)
    return dataset


# --------------------------------------------------------------------------------------------
# Windows


def dataset_and_sessions(path: str | Path, session: str | None = None
                         ) -> tuple[Dataset, list[str], bool]:
    """What a command's INPUT names: a dataset folder (all its sessions, or ``session``) or a
    session file inside one.

    Returns:
        The dataset, the session ids, and whether several were meant (a whole folder), so
        outputs should carry the id in their names.

    Raises:
        DatasetError: No such path, an empty dataset, an unknown id, or a session file outside
            its dataset's ``sessions/`` folder.
    """
    path = Path(path)
    if path.is_dir():
        dataset = open_dataset(path)
        if session is not None:
            dataset.index_of(session)  # a clear error for an unknown id
            return dataset, [session], False
        if not len(dataset):
            raise DatasetError(f"dataset {path} has no sessions")
        return dataset, [s.id for s in dataset.info.sessions], True
    root = path.parent.parent
    if path.parent.name != SESSIONS_DIR or not (root / INFO_FILE).is_file():
        raise DatasetError(f"{path}: a session file is read with its dataset (for the sensor "
                           f"sites and ranges); pass the dataset folder {root} with --session "
                           f"{path.stem}, or keep the file in <dataset>/{SESSIONS_DIR}/")
    if session is not None and session != path.stem:
        raise DatasetError(f"--session {session} does not match the session file {path.name}")
    dataset = open_dataset(root)
    dataset.index_of(path.stem)
    return dataset, [path.stem], False


def interp_rows(t_src: np.ndarray, values: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows ``values`` ``(T, ...)`` at times ``t_query`` ``(Q,)``
    (held constant beyond the ends, as ``np.interp``)."""
    t_src = np.asarray(t_src, dtype=np.float64)
    if len(t_src) == 1:
        return np.repeat(values[:1], len(t_query), axis=0)
    i = np.clip(np.searchsorted(t_src, t_query, side="right") - 1, 0, len(t_src) - 2)
    u = np.clip((t_query - t_src[i]) / (t_src[i + 1] - t_src[i]), 0.0, 1.0)
    u = u.reshape(-1, *([1] * (values.ndim - 1)))
    return values[i] * (1.0 - u) + values[i + 1] * u


def window_count(duration_s: float, window_s: float, hop_s: float) -> int:
    """Windows of ``window_s`` every ``hop_s`` that fit in ``duration_s`` (0 if none fits)."""
    if duration_s + 1e-9 < window_s:
        return 0
    return int(math.floor((duration_s - window_s) / hop_s + 1e-9)) + 1


class WindowDataset:
    """Fixed-length windows over the sessions of one split: a map-style dataset of numpy arrays.

    Window ``k`` of a session starts at the first IMU sample at or after ``a + k * hop_s``,
    where ``a`` is the start of the span both streams cover; it holds the ``W = round(window_s
    * imu_rate_hz)`` IMU samples from there and the blendshapes linearly interpolated at
    ``t0 + j / blendshape_rate_hz`` for ``j < Wb = round(window_s * blendshape_rate_hz)``, so
    both cover ``[t0, t0 + window_s)``. A session yields :func:`window_count` windows of its
    ``duration_s``. Session files of the split are read once, at construction, and kept as
    counts.

    Each item is a dict:

    - ``imu``: ``(W, S, 6)`` float32, accel (m/s²) then gyro (rad/s) per site, normalised with
      the training statistics when ``normalize``.
    - ``blendshapes``: ``(Wb, 52)`` float32 weights (normalised when
      ``normalize_blendshapes``).
    - ``session``: the session id (str); ``t0_s``: the window's start on the session clock.

    Args:
        dataset: An opened dataset or its path.
        split: ``"train"``, ``"val"`` or ``"test"``.
        window_s: Window length, seconds.
        hop_s: Step between window starts, seconds.
        normalize: Normalise the IMU channels with ``info.stats``.
        normalize_blendshapes: Normalise the blendshapes too (targets are in [0, 1] otherwise).

    Raises:
        DatasetError: Unknown split, non-positive lengths, or an unreadable session file.
    """

    def __init__(self, dataset: Dataset | str | Path, split: str = "train", *,
                 window_s: float = 2.0, hop_s: float = 1.0, normalize: bool = True,
                 normalize_blendshapes: bool = False) -> None:
        self.dataset = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
        info = self.dataset.info
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        if not (window_s > 0 and hop_s > 0):
            raise DatasetError(f"window_s and hop_s must be positive, got {window_s} and "
                               f"{hop_s}")
        self.split = split
        self.window_s, self.hop_s = float(window_s), float(hop_s)
        self.normalize, self.normalize_blendshapes = normalize, normalize_blendshapes
        self.n_imu = max(1, int(round(window_s * info.imu_rate_hz)))
        self.n_blendshape = max(1, int(round(window_s * info.blendshape_rate_hz)))
        self.stats = info.stats
        self._records: list[SessionRecord] = []
        self._ids: list[str] = []
        starts: list[np.ndarray] = []
        for pos in self.dataset.split_indices(split):
            rec = self.dataset.record(pos)
            start, end = rec.overlap_s
            n = window_count(end - start, self.window_s, self.hop_s)
            t_want = start + np.arange(n) * self.hop_s
            first = np.searchsorted(rec.imu_time_s, t_want - 1e-9, side="left")
            first = np.minimum(first, max(0, len(rec.imu_time_s) - self.n_imu))
            k = len(self._records)
            self._records.append(rec)
            self._ids.append(info.sessions[pos].id)
            starts.append(np.stack([np.full(n, k), first], axis=1))
        self._windows = (np.concatenate(starts) if starts else np.zeros((0, 2), int)
                         ).astype(np.int64)

    def __len__(self) -> int:
        return len(self._windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"window {index} of {n}")
        k, i0 = (int(v) for v in self._windows[index])
        rec = self._records[k]
        accel_lsb, gyro_lsb = self.dataset.accel_lsb, self.dataset.gyro_lsb
        accel = rec.accel[i0:i0 + self.n_imu] * accel_lsb
        gyro = rec.gyro[i0:i0 + self.n_imu] * gyro_lsb
        if self.normalize:
            accel, gyro = self.stats.normalize_imu(accel, gyro)
        imu = np.concatenate([accel, gyro], axis=-1).astype(np.float32)
        t0 = float(rec.imu_time_s[i0])
        t_bs = t0 + np.arange(self.n_blendshape) / self.dataset.info.blendshape_rate_hz
        bs = interp_rows(rec.blendshape_time_s, rec.blendshapes, t_bs)
        bs = (self.stats.normalize_blendshapes(bs) if self.normalize_blendshapes
              else bs.astype(np.float32))
        return {"imu": imu, "blendshapes": bs, "session": self._ids[k], "t0_s": t0}

    def window_session(self, index: int) -> str:
        """The session id of window ``index``."""
        return self._ids[int(self._windows[index][0])]
