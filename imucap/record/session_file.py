"""The session file: one append-only MCAP file per recording, readable after a crash.

Why MCAP: it is append-only and chunked (a crash can only tear the chunk being written), every
record is length-prefixed and every chunk carries a CRC (a torn tail is detected, not misread),
its index lives at the end and can be rebuilt from the data (``imucap session recover``), and
common robotics tools (Foxglove, Lichtblick, the ``mcap`` CLI) open it, so a lab can inspect a
recording without imucap. The ``mcap`` package is pure Python.

Layout (channels; times in messages are seconds on the session clock, which is the recording
host's ``time.monotonic()``; each message's MCAP log time is the same instant as Unix
nanoseconds, using the ``time_base`` stored in the session metadata):

=================  ===============  =========================================================
topic              encoding         content
=================  ===============  =========================================================
``/imu``           imucap.imu.v1    one :class:`~imucap.frames.ImuFrame` (binary, below)
``/truth``         json             one truth frame: seq, source_time_s, arrival_time_s, face,
                                    weights (52, ARKit order), head_ypr
``/clock/probes``  json             device clock probes ``[[t1_s, rx_us, tx_us, t4_s], ...]``
``/markers``       json             a marker: label, time_s, index
``/events``        json             anything that happened: gaps, reconnects, calibration
                                    steps, errors (kind, time_s, detail)
``/status``        json             once a second: device and truth statistics
=================  ===============  =========================================================

Metadata records (each ``{"json": <text>}``): ``imucap.session`` (written first: subject,
device, sites, placement, truth source, time base), then any of ``imucap.calibration``,
``imucap.sync``, ``imucap.notes`` (a later record of the same name replaces an earlier one).

``imucap.imu.v1`` (little-endian): a header ``<IIHHHHId`` (seq, boot_id, samples n, sensors s,
flags, wire_frames, lost_before, arrival_time_s), then ``device_time_us`` int64[n],
``host_time_s`` float64[n], ``accel`` float32[n,s,3] (m/s²), ``gyro`` float32[n,s,3] (rad/s),
``sensor_ok`` uint8[s], and ``mag`` float32[n,s,3] (µT) when flags bit 0 is set, ``quat``
float32[n,s,4] when bit 1 is set.

Crash safety: the writer closes a chunk at least every ``flush_interval_s`` and calls
``fsync`` every ``fsync_interval_s``; after SIGKILL, only what was not yet flushed is lost, and
:func:`read_session` reads every complete chunk of a file that never got its summary.
"""

from __future__ import annotations

import errno
import json
import math
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imucap.errors import ImucapError
from imucap.frames import ImuFrame
from imucap.vocab import NUM_BLENDSHAPES

SESSION_FORMAT = 1
"""Version of the session layout above; stored in ``imucap.session`` and checked on reading."""
PROFILE = "imucap"
IMU_ENCODING = "imucap.imu.v1"
SUFFIX = ".mcap"
TOPICS = ("/imu", "/truth", "/clock/probes", "/markers", "/events", "/status")

_IMU_HEADER = struct.Struct("<IIHHHHId")
_MAGIC = b"\x89MCAP0\r\n"
_FLAG_MAG, _FLAG_QUAT = 1, 2

_TRUTH_SCHEMA = {
    "title": "imucap.TruthFrame", "type": "object",
    "properties": {
        "seq": {"type": "integer"}, "source_time_s": {"type": "number"},
        "arrival_time_s": {"type": ["number", "null"]}, "face": {"type": "boolean"},
        "weights": {"type": ["array", "null"], "items": {"type": "number"}},
        "head_ypr": {"type": ["array", "null"], "items": {"type": "number"}},
    },
}
_GENERIC_SCHEMA = {"type": "object"}


class SessionFileError(ImucapError):
    """A session file is missing, not a session, damaged beyond reading, or unwritable."""


class DiskWriteError(SessionFileError):
    """Writing failed (disk full, read-only, permission): the recording stopped cleanly."""


def describe_os_error(exc: OSError, path: Path) -> str:
    """One line for an OSError met while writing ``path``, with what to do."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        what = "the disk is full" if code != errno.EFBIG else "the file size limit was reached"
        return (f"{what} while writing {path}: everything up to the last second is saved; "
                f"free some space, then run `imucap session recover {path}`")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {path} ({os.strerror(code)}): record to a writable folder "
                f"with --out")
    return f"cannot write {path} ({exc.strerror or exc}): check the disk and the folder"


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# --------------------------------------------------------------------------------------------
# IMU message codec


def encode_imu(frame: ImuFrame) -> bytes:
    """The ``imucap.imu.v1`` bytes of one frame."""
    n, s = frame.n_samples, frame.n_sensors
    flags = (_FLAG_MAG if frame.mag is not None else 0) | (_FLAG_QUAT if frame.quat is not None
                                                           else 0)
    parts = [
        _IMU_HEADER.pack(frame.seq & 0xFFFFFFFF, frame.boot_id & 0xFFFFFFFF, n, s, flags,
                         frame.wire_frames, frame.lost_before, frame.arrival_time_s),
        np.ascontiguousarray(frame.device_time_us, "<i8").tobytes(),
        np.ascontiguousarray(frame.host_time_s, "<f8").tobytes(),
        np.ascontiguousarray(frame.accel, "<f4").tobytes(),
        np.ascontiguousarray(frame.gyro, "<f4").tobytes(),
        np.ascontiguousarray(frame.sensor_ok, np.uint8).tobytes(),
    ]
    if frame.mag is not None:
        parts.append(np.ascontiguousarray(frame.mag, "<f4").tobytes())
    if frame.quat is not None:
        parts.append(np.ascontiguousarray(frame.quat, "<f4").tobytes())
    return b"".join(parts)


def decode_imu(data: bytes, sites: tuple[str, ...]) -> ImuFrame:
    """Inverse of :func:`encode_imu`; raises ValueError on bytes of the wrong size."""
    seq, boot, n, s, flags, wire, lost, arrival = _IMU_HEADER.unpack_from(data, 0)
    pos = _IMU_HEADER.size

    def take(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        nonlocal pos
        count = int(np.prod(shape))
        out = np.frombuffer(data, dtype=dtype, count=count, offset=pos).reshape(shape)
        pos += out.nbytes
        return out.astype(out.dtype.newbyteorder("="))

    t_us = take("<i8", (n,))
    host = take("<f8", (n,))
    accel = take("<f4", (n, s, 3))
    gyro = take("<f4", (n, s, 3))
    ok = take("u1", (s,)).astype(bool)
    mag = take("<f4", (n, s, 3)) if flags & _FLAG_MAG else None
    quat = take("<f4", (n, s, 4)) if flags & _FLAG_QUAT else None
    if pos != len(data):
        raise ValueError(f"IMU message of {len(data)} bytes, {pos} expected")
    return ImuFrame(seq=seq, boot_id=boot, device_time_us=t_us, host_time_s=host,
                    arrival_time_s=arrival, accel=accel, gyro=gyro, mag=mag, quat=quat,
                    sensor_ok=ok, sites=sites[:s] if len(sites) >= s else
                    tuple(f"sensor{i}" for i in range(s)), lost_before=lost, wire_frames=wire)


def truth_message(frame: Any) -> tuple[bytes, float]:
    """The ``/truth`` JSON of a :class:`~imucap.truth.TruthFrame`, and the session time to log
    it at (its arrival, or its source time when it did not come in live)."""
    weights = None if frame.weights is None else [round(float(v), 6) for v in frame.weights]
    head = None if frame.head_ypr is None else [round(float(v), 6) for v in frame.head_ypr]
    msg = {"seq": int(frame.seq), "source_time_s": float(frame.source_time_s),
           "arrival_time_s": _finite(frame.arrival_time_s), "face": weights is not None,
           "weights": weights, "head_ypr": head}
    t = frame.arrival_time_s if math.isfinite(frame.arrival_time_s) else frame.source_time_s
    return _json_bytes(msg), t


def _register_truth_channel(writer: Any) -> int:
    """The ``/truth`` channel (JSON, with its JSON schema so that tools can plot it)."""
    schema = writer.register_schema("imucap.TruthFrame", "jsonschema",
                                    _json_bytes(_TRUTH_SCHEMA))
    return writer.register_channel("/truth", "json", schema)


# --------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class TimeBase:
    """Ties the session clock (host monotonic seconds) to Unix time, for MCAP log times."""

    monotonic_s: float
    unix_s: float

    @classmethod
    def now(cls) -> TimeBase:
        return cls(time.monotonic(), time.time())

    def to_ns(self, session_s: float) -> int:
        if not math.isfinite(session_s):
            session_s = self.monotonic_s
        return max(0, int(round((session_s - self.monotonic_s + self.unix_s) * 1e9)))


class SessionWriter:
    """Writes one session file. Not thread-safe: one thread writes (the recorder's writer).

    The file is created exclusively (an existing file is never overwritten). Every write may
    raise :class:`DiskWriteError`; after that the writer is closed and the file holds
    everything flushed before the error.

    Args:
        path: The ``.mcap`` file to create.
        session: The ``imucap.session`` metadata (JSON-serialisable); ``format``, ``sites`` and
            ``time_base`` are added.
        sites: Site name of each IMU sensor, in sensor order.
        flush_interval_s: Longest time data waits in memory before its chunk is written.
        fsync_interval_s: Longest time written data waits before ``fsync`` (0: never fsync).
        compression: ``"zstd"``, ``"lz4"`` or ``""``.
        time_base: The session clock's tie to Unix time (default: now).
    """

    def __init__(self, path: str | os.PathLike[str], *, session: dict[str, Any],
                 sites: tuple[str, ...], flush_interval_s: float = 0.25,
                 fsync_interval_s: float = 1.0, compression: str = "zstd",
                 time_base: TimeBase | None = None) -> None:
        from mcap.writer import CompressionType, Writer

        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.fsync_interval_s = fsync_interval_s
        self.time_base = time_base or TimeBase.now()
        self.sites = tuple(sites)
        self.closed = False
        self.bytes_written = 0
        self.messages = 0
        try:
            self._fh = open(self.path, "xb")  # noqa: SIM115 - closed in close()
        except FileExistsError:
            raise SessionFileError(f"{self.path} already exists: pick another --out or "
                                   f"session name (imucap never overwrites a recording)") from None
        except OSError as exc:
            raise DiskWriteError(describe_os_error(exc, self.path)) from None
        kind = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                "": CompressionType.NONE}[compression]
        from imucap import __version__

        self._writer = Writer(self._fh, compression=kind, chunk_size=4 * 1024 * 1024)
        self._seq: dict[int, int] = {}
        now = time.monotonic()
        self._last_flush = self._last_fsync = now
        meta = dict(session)
        meta.update(format=SESSION_FORMAT, sites=list(self.sites),
                    time_base={"monotonic_s": self.time_base.monotonic_s,
                               "unix_s": self.time_base.unix_s})
        try:
            self._start(f"imucap {__version__}", meta)
        except OSError as exc:
            # Nothing was recorded yet: leave no stub behind (it would block the name).
            self._abandon()
            self.path.unlink(missing_ok=True)
            raise DiskWriteError(f"cannot create {self.path} ({exc.strerror or exc}): free some "
                                 f"space or record elsewhere with --out") from None
        self._lock()

    def _lock(self) -> None:
        """Hold an exclusive lock while recording, so that ``recover`` cannot rewrite a file
        that is still being written (the kernel drops it if the process dies)."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; recover checks completeness only
            return
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass

    def _start(self, library: str, meta: dict[str, Any]) -> None:
        w = self._writer
        w.start(profile=PROFILE, library=library)
        generic = w.register_schema("imucap.Record", "jsonschema", _json_bytes(_GENERIC_SCHEMA))
        self._channels = {
            "/imu": w.register_channel("/imu", IMU_ENCODING, 0,
                                       {"sites": ",".join(self.sites)}),
            "/truth": _register_truth_channel(w),
        }
        for topic in TOPICS[2:]:
            self._channels[topic] = w.register_channel(topic, "json", generic)
        w.add_metadata("imucap.session", {"json": json.dumps(meta)})
        self._fh.flush()

    # ------------------------------------------------------------------ error handling

    def _guard(self, fn: Any, *args: Any) -> Any:
        if self.closed:
            raise SessionFileError(f"{self.path} is closed")
        try:
            return fn(*args)
        except OSError as exc:
            self._abandon()
            raise DiskWriteError(describe_os_error(exc, self.path)) from None

    def _abandon(self) -> None:
        """After a write error: stop writing, keep what is on disk, release the file."""
        self.closed = True
        try:
            self._fh.close()
        except OSError:
            pass

    # ------------------------------------------------------------------ writes

    def _add(self, topic: str, time_s: float, data: bytes, publish_s: float | None = None
             ) -> None:
        channel = self._channels[topic]
        seq = self._seq.get(channel, 0)
        self._seq[channel] = seq + 1
        log_ns = self.time_base.to_ns(time_s)
        pub_ns = log_ns if publish_s is None else self.time_base.to_ns(publish_s)
        self._guard(self._writer.add_message, channel, log_ns, data, pub_ns, seq)
        self.messages += 1
        self.bytes_written += len(data)

    def write_imu(self, frame: ImuFrame) -> None:
        """One IMU frame (logged at its first sample's session time)."""
        t = float(frame.host_time_s[0]) if frame.n_samples else frame.arrival_time_s
        self._add("/imu", t, encode_imu(frame), frame.arrival_time_s)

    def write_truth(self, frame: Any) -> None:
        """One :class:`~imucap.truth.TruthFrame`; logged at its arrival time (or its source
        time when it did not come in live)."""
        data, t = truth_message(frame)
        self._add("/truth", t, data)

    def write_probes(self, probes: list[tuple[float, int, int, float]]) -> None:
        """Device clock probes (PING sent, device received, device answered, PONG back)."""
        if probes:
            self._add("/clock/probes", probes[-1][3],
                      _json_bytes([[p[0], int(p[1]), int(p[2]), p[3]] for p in probes]))

    def write_marker(self, label: str, time_s: float, index: int) -> None:
        self._add("/markers", time_s, _json_bytes({"label": label, "time_s": time_s,
                                                   "index": index}))

    def write_event(self, kind: str, time_s: float, **detail: Any) -> None:
        self._add("/events", time_s, _json_bytes({"kind": kind, "time_s": time_s, **detail}))

    def write_status(self, time_s: float, status: dict[str, Any]) -> None:
        self._add("/status", time_s, _json_bytes({"time_s": time_s, **status}))

    def add_metadata(self, name: str, value: dict[str, Any]) -> None:
        """A metadata record (``imucap.calibration``, ``imucap.sync``, ``imucap.notes``)."""
        self._guard(self._writer.add_metadata, name, {"json": json.dumps(value)})

    # ------------------------------------------------------------------ durability

    def maybe_flush(self, now: float | None = None) -> None:
        """Close the chunk and fsync when the policy says so; call this often."""
        now = time.monotonic() if now is None else now
        if now - self._last_flush >= self.flush_interval_s:
            self.flush(fsync=self.fsync_interval_s > 0 and
                       now - self._last_fsync >= self.fsync_interval_s, now=now)

    def flush(self, *, fsync: bool = True, now: float | None = None) -> None:
        """Write the chunk in progress; with ``fsync``, make it durable."""
        def run() -> None:
            self._writer.flush()
            if fsync:
                os.fsync(self._fh.fileno())
        self._guard(run)
        now = time.monotonic() if now is None else now
        self._last_flush = now
        if fsync:
            self._last_fsync = now

    def close(self) -> None:
        """Write the summary (index and statistics), fsync and close. Idempotent."""
        if self.closed:
            return

        def run() -> None:
            self._writer.finish()
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        self._guard(run)
        self.closed = True


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class ImuTable:
    """All IMU samples of a session, concatenated (frames in arrival order)."""

    device_time_us: np.ndarray  # (N,) int64
    host_time_s: np.ndarray  # (N,) float64, as mapped live
    accel: np.ndarray  # (N, S, 3) float32
    gyro: np.ndarray  # (N, S, 3) float32
    boot_id: np.ndarray  # (N,) uint32
    frame_arrival_s: np.ndarray  # (F,) float64, arrival of each frame
    frame_last_us: np.ndarray  # (F,) int64, device time of each frame's last sample
    frame_boot: np.ndarray  # (F,) uint32
    frames_lost: int
    sensor_ok: np.ndarray  # (S,) bool, whether each sensor was ever valid

    @property
    def n(self) -> int:
        return int(self.device_time_us.shape[0])


@dataclass
class TruthTable:
    """All truth frames of a session; rows without a face hold NaN weights."""

    seq: np.ndarray  # (M,) int64
    source_time_s: np.ndarray  # (M,) float64
    arrival_time_s: np.ndarray  # (M,) float64, NaN when not live
    weights: np.ndarray  # (M, 52) float32, NaN rows without a face
    head_ypr: np.ndarray  # (M, 3) float32, NaN when absent

    @property
    def n(self) -> int:
        return int(self.seq.shape[0])

    @classmethod
    def empty(cls) -> TruthTable:
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                   np.zeros((0, NUM_BLENDSHAPES), np.float32), np.zeros((0, 3), np.float32))

    @classmethod
    def from_frames(cls, frames: list[Any]) -> TruthTable:
        """From :class:`~imucap.truth.TruthFrame` s."""
        if not frames:
            return cls.empty()
        nan52 = np.full(NUM_BLENDSHAPES, np.nan, np.float32)
        nan3 = np.full(3, np.nan, np.float32)
        return cls(np.array([f.seq for f in frames], np.int64),
                   np.array([f.source_time_s for f in frames], np.float64),
                   np.array([f.arrival_time_s for f in frames], np.float64),
                   np.stack([nan52 if f.weights is None else f.weights for f in frames]
                            ).astype(np.float32),
                   np.stack([nan3 if f.head_ypr is None else f.head_ypr for f in frames]
                            ).astype(np.float32))


@dataclass
class SessionContents:
    """Everything read back from a session file.

    Attributes:
        path: The file.
        metadata: Metadata records by name (the latest of each name), decoded from JSON.
        imu: The IMU samples.
        truth: The truth frames.
        probes: ``(K, 4)`` device clock probes ``(t1_s, rx_us, tx_us, t4_s)``.
        markers: Marker dicts (label, time_s, index), in order.
        events: Event dicts (kind, time_s, ...), in order.
        status: Status dicts, in order.
        complete: Whether the file was closed properly (has its summary and footer).
        torn_bytes: Bytes at the end that could not be read (a crash's torn chunk).
        messages: Messages read.
    """

    path: Path
    metadata: dict[str, dict[str, Any]]
    imu: ImuTable
    truth: TruthTable
    probes: np.ndarray
    markers: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    status: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True
    torn_bytes: int = 0
    messages: int = 0

    @property
    def session(self) -> dict[str, Any]:
        return self.metadata.get("imucap.session", {})

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.session.get("sites", ()))

    @property
    def device(self) -> dict[str, Any]:
        """The recorded device's description, with the values every reader needs filled in
        (``rate_hz``, ``accel_range_g``, ``gyro_range_dps``, ``chip``) when it did not say."""
        dev = dict(self.session.get("device") or {})
        dev["rate_hz"] = int(dev.get("rate_hz", 100))
        dev["accel_range_g"] = int(dev.get("accel_range_g", 16))
        dev["gyro_range_dps"] = int(dev.get("gyro_range_dps", 2000))
        dev["chip"] = str(dev.get("chip", "unknown"))
        return dev


def _open_for_reading(path: Path) -> Any:
    if not path.exists():
        raise SessionFileError(f"no session file at {path}")
    if path.is_dir():
        raise SessionFileError(f"{path} is a folder: give a session's .mcap file")
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise SessionFileError(f"cannot read {path} ({exc.strerror})") from None


def iter_records(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Every MCAP record of a session file in order, stopping quietly at a torn tail.

    After the iteration, the generator's return value (``StopIteration.value``) is the number
    of bytes at the end that could not be read (0 for a whole file).
    """
    from mcap.exceptions import McapError
    from mcap.stream_reader import StreamReader

    path = Path(path)
    fh = _open_for_reading(path)
    size = path.stat().st_size
    if size < len(_MAGIC):
        fh.close()
        raise SessionFileError(f"{path} is empty or not an MCAP session file ({size} bytes)")
    good_end = 0
    with fh:
        reader = StreamReader(fh, validate_crcs=True, record_size_limit=1 << 30)
        try:
            for record in reader.records:
                good_end = fh.tell()
                yield record
            good_end = size
        except McapError as exc:
            if good_end == 0 and "magic" in type(exc).__name__.lower():
                raise SessionFileError(f"{path} is not an MCAP session file") from None
        except (ValueError, struct.error, EOFError, MemoryError, UnicodeDecodeError,
                KeyError, OSError):
            pass
        except Exception as exc:  # a damaged chunk's decompressor errors have varied types
            if "zstd" not in type(exc).__module__ and "lz4" not in type(exc).__module__:
                raise
    return max(0, size - good_end)


def read_session(path: str | os.PathLike[str]) -> SessionContents:
    """Read a session file, complete or cut short by a crash.

    Raises:
        SessionFileError: No such file, not an MCAP file, not an imucap session, or a session
            of a newer format.
    """
    from mcap.records import Channel, Footer, Message, Metadata

    path = Path(path)
    channels: dict[int, str] = {}
    metadata: dict[str, dict[str, Any]] = {}
    imu_frames: list[ImuFrame] = []
    truth_rows: list[dict[str, Any]] = []
    probes: list[list[float]] = []
    lists: dict[str, list[dict[str, Any]]] = {"/markers": [], "/events": [], "/status": []}
    complete = False
    messages = 0
    sites: tuple[str, ...] = ()
    records = iter_records(path)
    torn = 0
    while True:
        try:
            record = next(records)
        except StopIteration as stop:
            torn = int(stop.value or 0)
            break
        if isinstance(record, Message):
            topic = channels.get(record.channel_id)
            messages += 1
            if topic == "/imu":
                try:
                    imu_frames.append(decode_imu(record.data, sites))
                except (ValueError, struct.error):
                    continue
            elif topic is not None:
                try:
                    obj = json.loads(record.data)
                except ValueError:
                    continue
                if topic == "/truth":
                    truth_rows.append(obj)
                elif topic == "/clock/probes":
                    probes.extend(obj)
                elif topic in lists:
                    lists[topic].append(obj)
        elif isinstance(record, Channel):
            channels[record.id] = record.topic
        elif isinstance(record, Metadata):
            try:
                value = json.loads(record.metadata.get("json", "{}"))
            except ValueError:
                continue
            metadata[record.name] = value
            if record.name == "imucap.session":
                sites = tuple(value.get("sites", ()))
        elif isinstance(record, Footer):
            complete = True
    if complete:  # a footer is not enough: the closing magic must be there too
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - len(_MAGIC)))
            complete = fh.read() == _MAGIC
    session = metadata.get("imucap.session")
    if session is None:
        raise SessionFileError(f"{path} is an MCAP file but not an imucap session (no "
                               f"imucap.session metadata)")
    version = session.get("format")
    if version != SESSION_FORMAT:
        raise SessionFileError(f"{path}: session format {version!r}; this imucap reads format "
                               f"{SESSION_FORMAT}: use the imucap version that recorded it")
    return SessionContents(
        path=path, metadata=metadata, imu=_imu_table(imu_frames, len(sites)),
        truth=_truth_table(truth_rows),
        probes=np.array(probes, np.float64).reshape(-1, 4), markers=lists["/markers"],
        events=lists["/events"], status=lists["/status"], complete=complete, torn_bytes=torn,
        messages=messages)


def _imu_table(frames: list[ImuFrame], n_sites: int) -> ImuTable:
    if not frames:
        z = np.zeros((0, n_sites, 3), np.float32)
        return ImuTable(np.zeros(0, np.int64), np.zeros(0), z, z.copy(),
                        np.zeros(0, np.uint32), np.zeros(0), np.zeros(0, np.int64),
                        np.zeros(0, np.uint32), 0, np.zeros(n_sites, bool))
    counts = [f.n_samples for f in frames]
    return ImuTable(
        device_time_us=np.concatenate([f.device_time_us for f in frames]),
        host_time_s=np.concatenate([f.host_time_s for f in frames]),
        accel=np.concatenate([f.accel for f in frames]),
        gyro=np.concatenate([f.gyro for f in frames]),
        boot_id=np.repeat(np.array([f.boot_id for f in frames], np.uint32), counts),
        frame_arrival_s=np.array([f.arrival_time_s for f in frames]),
        frame_last_us=np.array([f.device_time_us[-1] for f in frames], np.int64),
        frame_boot=np.array([f.boot_id for f in frames], np.uint32),
        frames_lost=sum(f.lost_before for f in frames),
        sensor_ok=np.any(np.stack([f.sensor_ok for f in frames]), axis=0))


def _truth_table(rows: list[dict[str, Any]]) -> TruthTable:
    if not rows:
        return TruthTable.empty()
    m = len(rows)
    weights = np.full((m, NUM_BLENDSHAPES), np.nan, np.float32)
    head = np.full((m, 3), np.nan, np.float32)
    for i, row in enumerate(rows):
        if row.get("weights") is not None:
            weights[i] = row["weights"]
        if row.get("head_ypr") is not None:
            head[i] = row["head_ypr"]
    arrival = [np.nan if r.get("arrival_time_s") is None else r["arrival_time_s"] for r in rows]
    return TruthTable(np.array([r["seq"] for r in rows], np.int64),
                      np.array([r["source_time_s"] for r in rows], np.float64),
                      np.array(arrival, np.float64), weights, head)


# --------------------------------------------------------------------------------------------
# Recovery and rewriting


@dataclass(frozen=True)
class RecoverReport:
    """What :func:`recover_session` did."""

    path: Path
    messages: int
    torn_bytes: int
    was_complete: bool


def rewrite_session(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                    metadata: dict[str, dict[str, Any]] | None = None,
                    replace_truth: list[Any] | None = None) -> int:
    """Copy every readable record of ``src`` into a new, properly closed file ``dst``.

    Args:
        metadata: Metadata records to add (replacing any of the same name).
        replace_truth: Truth frames to write instead of ``src``'s ``/truth`` messages.

    Returns:
        The number of messages written.
    """
    from mcap.records import Channel, Message, Metadata, Schema
    from mcap.writer import CompressionType, Writer

    from imucap import __version__

    metadata = dict(metadata or {})
    dst = Path(dst)
    count = 0
    with open(dst, "xb") as fh:
        w = Writer(fh, compression=CompressionType.ZSTD)
        w.start(profile=PROFILE, library=f"imucap {__version__}")
        schema_map: dict[int, int] = {0: 0}
        channel_map: dict[int, int] = {}
        topics: dict[int, str] = {}
        old_metadata: list[Any] = []
        truth_channel = None
        records = iter_records(src)
        for record in records:
            if isinstance(record, Schema) and record.id not in schema_map:
                schema_map[record.id] = w.register_schema(record.name, record.encoding,
                                                          record.data)
            elif isinstance(record, Channel) and record.id not in channel_map:
                channel_map[record.id] = w.register_channel(
                    record.topic, record.message_encoding, schema_map.get(record.schema_id, 0),
                    dict(record.metadata))
                topics[record.id] = record.topic
                if record.topic == "/truth":
                    truth_channel = channel_map[record.id]
            elif isinstance(record, Message) and record.channel_id in channel_map:
                if replace_truth is not None and topics[record.channel_id] == "/truth":
                    continue
                w.add_message(channel_map[record.channel_id], record.log_time, record.data,
                              record.publish_time, record.sequence)
                count += 1
            elif isinstance(record, Metadata):
                if record.name == "imucap.session" and not old_metadata:
                    w.add_metadata(record.name, dict(record.metadata))
                old_metadata.append(record)
        for record in old_metadata[1:]:
            if record.name not in metadata:
                w.add_metadata(record.name, dict(record.metadata))
        if replace_truth is not None:
            if truth_channel is None:
                truth_channel = _register_truth_channel(w)
            base = _time_base_of(old_metadata)
            for i, frame in enumerate(replace_truth):
                data, t = truth_message(frame)
                ns = base.to_ns(t)
                w.add_message(truth_channel, ns, data, ns, i)
                count += 1
        for name, value in metadata.items():
            w.add_metadata(name, {"json": json.dumps(value)})
        w.finish()
        fh.flush()
        os.fsync(fh.fileno())
    return count


def _time_base_of(metadata_records: list[Any]) -> TimeBase:
    for record in metadata_records:
        if record.name == "imucap.session":
            tb = json.loads(record.metadata.get("json", "{}")).get("time_base", {})
            return TimeBase(float(tb.get("monotonic_s", 0.0)), float(tb.get("unix_s", 0.0)))
    return TimeBase(0.0, 0.0)


def check_not_recording(path: str | os.PathLike[str]) -> None:
    """Raise :class:`SessionFileError` when another process is still recording ``path``."""
    try:
        import fcntl
    except ImportError:
        return
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise SessionFileError(f"{path} is still being recorded: stop that recording "
                                   f"first") from None
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def replace_session(path: str | os.PathLike[str], **changes: Any) -> int:
    """Rewrite ``path`` in place through :func:`rewrite_session` (``.part`` file, fsync,
    atomic rename); the original stays untouched if anything fails."""
    path = Path(path)
    check_not_recording(path)
    part = path.with_name(path.name + ".part")
    part.unlink(missing_ok=True)
    try:
        count = rewrite_session(path, part, **changes)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise DiskWriteError(describe_os_error(exc, part)) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)
    return count


def recover_session(path: str | os.PathLike[str]) -> RecoverReport:
    """Give a session file cut short by a crash its summary and index, in place.

    Every complete chunk is kept; the torn tail (at most the last second of the recording)
    is dropped. A file that is already complete is left alone.
    """
    contents = read_session(path)  # validates that it is a session
    if contents.complete:
        return RecoverReport(Path(path), contents.messages, 0, True)
    count = replace_session(path)
    return RecoverReport(Path(path), count, contents.torn_bytes, False)
