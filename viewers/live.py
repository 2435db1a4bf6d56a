"""Live sources for the live viewer: a device (through the model, or sensors only) or Live Link
Face packets arriving over UDP (an iPhone, or ``imucap stream --to livelink://``).

Each source runs its own thread and keeps the newest state; the viewer asks for it at its own
frame rate (:meth:`latest`), so a slow window never holds up the device, and a stalled source
never freezes the window. Errors in the thread end the source and show in :attr:`LiveState.
status`; nothing is raised into the window.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import NUM_BLENDSHAPES, au_intensities

ACCEL_TAU_S = 1.0
"""Time constant of the running mean taken off the acceleration (gravity, slow tilts)."""


@dataclass
class LiveState:
    """The newest face and sensor readings.

    Attributes:
        weights: ARKit weights ``(52,)``.
        aus: AU intensities ``(18,)``.
        accel: Acceleration with gravity removed ``(S, 3)`` m/s², sensor axes, or None.
        gyro: Rotation rate ``(S, 3)`` rad/s, or None.
        time_s: Seconds since the source started.
        status: One line of rates, latency, confidence and flags (or the error that ended it).
        ended: The source stopped (error or end of stream).
    """

    weights: np.ndarray = field(default_factory=lambda: np.zeros(NUM_BLENDSHAPES, np.float32))
    aus: np.ndarray = field(default_factory=lambda: au_intensities(
        np.zeros(NUM_BLENDSHAPES, np.float32)))
    accel: np.ndarray | None = None
    gyro: np.ndarray | None = None
    time_s: float = 0.0
    status: str = "starting"
    ended: bool = False


class _Rate:
    """Events per second over the last second."""

    def __init__(self) -> None:
        self._times: deque[float] = deque(maxlen=2000)

    def tick(self, now: float) -> None:
        self._times.append(now)

    def per_s(self, now: float) -> int:
        while self._times and self._times[0] < now - 1.0:
            self._times.popleft()
        return len(self._times)


class LiveSource(ABC):
    """Base: a thread that fills the state :meth:`latest` returns, until :meth:`stop`."""

    sites: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = LiveState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    def start(self) -> LiveSource:
        self._open()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._guarded, name=type(self).__name__,
                                        daemon=True)
        self._thread.start()
        return self

    @abstractmethod
    def _open(self) -> None:
        """Connect; runs in the caller, so an error here is the user's to see."""

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - shown in the window, the source ends
            with self._lock:
                self._state.status = f"stopped: {exc}"
                self._state.ended = True
        finally:
            self._close()

    @abstractmethod
    def _run(self) -> None:
        """The thread's work: read the source and :meth:`_publish` until ``_stop`` is set."""

    @abstractmethod
    def _close(self) -> None:
        """Release what :meth:`_open` took; runs when the thread ends."""

    def _publish(self, **changes: Any) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(self._state, k, v)
            self._state.time_s = time.monotonic() - self._t0

    def latest(self) -> LiveState:
        with self._lock:
            s = self._state
            return LiveState(s.weights.copy(), s.aus.copy(),
                             None if s.accel is None else s.accel.copy(),
                             None if s.gyro is None else s.gyro.copy(),
                             time.monotonic() - self._t0, s.status, s.ended)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> LiveSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DeviceLive(LiveSource):
    """An IMU device, through the streaming engine unless ``model`` is None.

    The device and the model run in a child process (started with ``spawn``): the window's
    drawing then never competes with them for Python's interpreter lock, so the engine keeps
    its real-time latency while the window draws. The child sends the newest state at most
    ``fps`` times a second.

    Args:
        uri: Device URI (``emulator:imusic11``, ``serial:/dev/ttyACM0``, ``tcp://…``).
        model: Checkpoint folder or ``"default"``; None shows the sensors on a still face.
        fps: Face frames per second from the engine.
        steps: DDIM steps (None: the model's).
        rate_hz: Ask the device for this IMU rate.
        start_timeout_s: How long loading the model and connecting may take.
    """

    def __init__(self, uri: str, *, model: str | None = "default", fps: float = 60.0,
                 steps: int | None = None, rate_hz: float | None = None,
                 start_timeout_s: float = 180.0) -> None:
        super().__init__()
        self.uri, self.model, self.fps, self.steps, self.rate_hz = uri, model, fps, steps, rate_hz
        self.start_timeout_s = start_timeout_s
        self._proc: Any = None
        self._conn: Any = None

    def _open(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_device_worker, name="imucap-live-device",
                                 args=(child, self.uri, self.model, self.fps, self.steps,
                                       self.rate_hz), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if parent.poll(0.2):
                try:
                    kind, payload = parent.recv()
                except EOFError:
                    break
                if kind == "ready":
                    self.sites = tuple(payload)
                    return
                self._close()
                raise ImucapError(str(payload))
            if not self._proc.is_alive():
                break
        self._close()
        raise ImucapError(f"{self.uri}: the device process did not start (no answer in "
                          f"{self.start_timeout_s:.0f} s); try imucap stream --device "
                          f"{self.uri} --print to see what the device does")

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._conn.poll(0.1):
                if not self._proc.is_alive():
                    raise RuntimeError("the device process ended")
                continue
            try:
                kind, payload = self._conn.recv()
            except EOFError:
                raise RuntimeError("the device process ended") from None
            if kind == "state":
                self._publish(**payload)
            elif kind == "error":
                raise RuntimeError(payload)

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(("stop", None))
            except (OSError, BrokenPipeError):
                pass
        if self._proc is not None:
            self._proc.join(timeout=5.0)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout=5.0)
            self._proc = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _device_worker(conn: Any, uri: str, model: str | None, fps: float, steps: int | None,
                   rate_hz: float | None) -> None:
    """Child process of :class:`DeviceLive`: device → engine, newest state → ``conn``."""
    try:
        loop = _DeviceLoop(uri, model, fps, steps, rate_hz)
    except ImucapError as exc:
        conn.send(("error", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the window's process
        conn.send(("error", f"{uri}: {type(exc).__name__}: {exc}"))
        return
    try:
        conn.send(("ready", loop.sites))
        loop.run(conn)
    except Exception as exc:  # noqa: BLE001
        try:
            conn.send(("error", str(exc)))
        except (OSError, BrokenPipeError):
            pass
    finally:
        loop.device.disconnect()


class _DeviceLoop:
    """Reads the device, runs the engine, keeps the newest readings."""

    def __init__(self, uri: str, model: str | None, fps: float, steps: int | None,
                 rate_hz: float | None) -> None:
        from imucap.devices import open_device

        checkpoint = None
        if model is not None:
            try:
                from imucap.models.checkpoint import load_checkpoint
                from imucap.models.pretrained import resolve_checkpoint
            except ImportError:
                raise ImucapError("the live face runs the model, which needs the [train] extra "
                                  "(pip install 'imucap[train]'); or pass --no-model to see the "
                                  "sensors alone") from None
            checkpoint = load_checkpoint(resolve_checkpoint(model))
        device = open_device(uri)
        if rate_hz is not None:
            device.config.rate_hz = rate_hz
        device.connect()
        self.device = device
        self.fps = fps
        info = device.info
        self.sites = tuple(info.sites)
        self.engine = None
        if checkpoint is not None:
            from imucap.inference.engine import EngineConfig, StreamingEngine

            # One torch thread: the window draws on the other core, and torch's threads slow
            # down many times over when they must share a core with other work.
            config = EngineConfig(output_rate_hz=fps, threads=1)
            if steps is not None:
                config.steps = steps
            try:
                self.engine = StreamingEngine(checkpoint, self.sites, config,
                                              accel_range_g=info.accel_range_g,
                                              gyro_range_dps=info.gyro_range_dps)
            except BaseException:
                device.disconnect()
                raise

    def _read_all(self) -> list[Any]:
        """Every frame waiting (at least one, or none after 0.1 s)."""
        out = []
        try:
            out.append(self.device.read(timeout_s=0.1))
            while len(out) < 1000:
                out.append(self.device.read(timeout_s=0.0))
        except TimeoutError:
            pass
        return out

    def run(self, conn: Any) -> None:
        mean: np.ndarray | None = None
        last_t: float | None = None
        imu_rate, face_rate = _Rate(), _Rate()
        latencies: deque[float] = deque(maxlen=120)
        face = None
        next_status = next_send = 0.0
        changes: dict[str, Any] = {}
        while True:
            if conn.poll():
                kind, _ = conn.recv()
                if kind == "stop":
                    return
            frames = self._read_all()
            if not frames:
                continue
            now = time.monotonic()
            for frame in frames:
                for _ in range(len(frame.accel)):
                    imu_rate.tick(now)
                t = float(frame.host_time_s[-1])
                if mean is None:
                    mean = frame.accel.mean(axis=0).astype(np.float64)
                else:
                    dt = max(0.0, t - (last_t if last_t is not None else t))
                    mean += (1.0 - math.exp(-dt / ACCEL_TAU_S)) * (frame.accel.mean(axis=0)
                                                                    - mean)
                last_t = t
                if self.engine is not None:
                    self.engine.push(frame)
            changes["accel"] = (frames[-1].accel[-1] - mean).astype(np.float32)
            changes["gyro"] = frames[-1].gyro[-1].astype(np.float32)
            if self.engine is not None:
                # One model run for everything that arrived: the engine reads the newest
                # window, so a busy machine costs frames marked catching_up, not latency.
                for face in self.engine.pull():
                    face_rate.tick(now)
                    latencies.append(face.latency_s)
                if face is not None:
                    changes["weights"] = face.weights
                    changes["aus"] = (face.aus if face.aus is not None
                                      else au_intensities(face.weights))
            if now >= next_status:
                parts = [f"IMU {imu_rate.per_s(now)}/s"]
                if self.engine is not None:
                    lat = np.array(latencies or [0.0]) * 1e3
                    parts.append(f"face {face_rate.per_s(now)}/s  latency p50 "
                                 f"{np.percentile(lat, 50):.0f} ms")
                    if face is not None:
                        parts.append(f"confidence {face.confidence:.2f}")
                        flags = sorted(face.flags)
                        if flags:
                            parts.append("[" + ", ".join(flags) + "]")
                else:
                    parts.append("sensors only (no model)")
                changes["status"] = "  ".join(parts)
                next_status = now + 0.5
            if now >= next_send:
                conn.send(("state", changes))
                changes = {}
                next_send = now + 1.0 / self.fps


class LiveLinkLive(LiveSource):
    """Live Link Face packets (version 6) arriving on a UDP port."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        from imucap.truth.livelink import parse_livelink_uri

        self.host, self.port = parse_livelink_uri(uri, option="--from")
        self._receiver: Any = None

    def _open(self) -> None:
        from imucap.sinks.livelink import LiveLinkReceiver

        self._receiver = LiveLinkReceiver(self.port, self.host).open()

    def _run(self) -> None:
        rate = _Rate()
        next_status = 0.0
        last_packet = None
        self._publish(status=f"listening on UDP {self.host}:{self.port}")
        while not self._stop.is_set():
            packet = self._receiver.read(timeout_s=0.1)
            now = time.monotonic()
            changes: dict[str, Any] = {}
            if packet is not None:
                rate.tick(now)
                last_packet = packet
                changes = {"weights": packet.weights, "aus": au_intensities(packet.weights)}
            if now >= next_status:
                stats = self._receiver.stats()
                if last_packet is None:
                    text = f"listening on UDP {self.host}:{self.port}: no packets yet"
                else:
                    text = (f"Live Link {rate.per_s(now)} packets/s from "
                            f"{last_packet.subject or last_packet.device_id}")
                if stats.rejected:
                    text += f"  ({stats.rejected} rejected)"
                changes["status"] = text
                next_status = now + 0.5
            if changes:
                self._publish(**changes)

    def _close(self) -> None:
        if self._receiver is not None:
            self._receiver.close()
            self._receiver = None
