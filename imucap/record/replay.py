"""``replay:SESSION.mcap``: a recorded session played back as a live device.

The IMU frames come out at the pace they originally arrived (``speed`` scales it), stamped as
if they were happening now, so everything downstream (``imucap stream``, ``imucap view live``,
the sinks, even ``imucap record``) runs on a recording exactly as it would on the hardware.
Options: ``speed`` (default 1), ``loop`` (0 or 1).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from imucap.devices.base import DeviceConfig, ImuDevice, StreamStats, register_device
from imucap.errors import BadDeviceURIError, DeviceError
from imucap.firmware_bridge.protocol import DeviceInfo
from imucap.frames import ImuFrame


@dataclass(kw_only=True)
class ReplayConfig(DeviceConfig):
    """Attributes:
        path: The session file.
        speed: Playback speed (2 plays twice as fast).
        loop: Start again at the end instead of stopping.
    """

    path: str = ""
    speed: float = 1.0
    loop: bool = False


class ReplayDevice(ImuDevice):
    """Plays a session file's IMU frames as a device."""

    type_name = "replay"

    def __init__(self, config: ReplayConfig) -> None:
        super().__init__(config)
        self.config: ReplayConfig = config
        self._frames_list: list[ImuFrame] = []
        self._info: DeviceInfo | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._counts = {"frames": 0, "samples": 0}
        self._rate = (time.monotonic(), 0, 0, 0.0, 0.0)
        self._state = "disconnected"

    @property
    def name(self) -> str:
        return f"replay of {Path(self.config.path).name}"

    @property
    def info(self) -> DeviceInfo | None:
        return self._info

    @property
    def is_connected(self) -> bool:
        return self._thread is not None and self._state != "ended"

    def connect(self) -> None:
        from .session_file import decode_imu, iter_records, read_session

        if self._thread is not None:
            return
        try:
            contents = read_session(self.config.path)
        except Exception as exc:
            raise DeviceError(str(exc)) from None
        if contents.imu.n == 0:
            raise DeviceError(f"{self.config.path} holds no IMU data to replay")
        dev = contents.device
        sites = contents.sites
        self._info = DeviceInfo(
            device_id=int(str(dev.get("device_id", "0")), 16), boot_id=1,
            rate_hz=dev["rate_hz"], accel_range_g=dev["accel_range_g"],
            gyro_range_dps=dev["gyro_range_dps"],
            chip=dev["chip"],
            firmware=f"replay of {Path(self.config.path).name}",
            sites=tuple(sites), streaming=True)
        from mcap.records import Channel, Message

        imu_channel = None
        for record in iter_records(self.config.path):
            if isinstance(record, Channel) and record.topic == "/imu":
                imu_channel = record.id
            elif isinstance(record, Message) and record.channel_id == imu_channel:
                self._frames_list.append(decode_imu(record.data, sites))
        self._stop.clear()
        self._state = "streaming"
        self._thread = threading.Thread(target=self._run, name="imucap-replay", daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._state = "disconnected"

    def _run(self) -> None:
        speed = max(self.config.speed, 1e-3)
        frames = self._frames_list
        while not self._stop.is_set():
            t0_orig = frames[0].arrival_time_s
            t0_now = time.monotonic()
            for f in frames:
                due = t0_now + (f.arrival_time_s - t0_orig) / speed
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
                shift = t0_now - t0_orig
                now = time.monotonic()
                host = t0_now + (f.host_time_s - t0_orig) / speed if speed != 1 else \
                    f.host_time_s + shift
                self._counts["frames"] += 1
                self._counts["samples"] += f.n_samples
                self._deliver(replace(f, host_time_s=np.asarray(host), arrival_time_s=now))
            if not self.config.loop:
                self._state = "ended"
                self._wake_readers()
                return

    def stats(self) -> StreamStats:
        now = time.monotonic()
        t0, f0, s0, fps, sps = self._rate
        if now - t0 >= 1.0:
            dt = now - t0
            fps = (self._counts["frames"] - f0) / dt
            sps = (self._counts["samples"] - s0) / dt
            self._rate = (now, self._counts["frames"], self._counts["samples"], fps, sps)
        return StreamStats(state=self._state, frames=self._counts["frames"],
                           samples=self._counts["samples"], frames_per_s=fps,
                           samples_per_s=sps, queue_drops=self._queue_drops,
                           clock_source="replay")


@register_device("replay")
def _from_uri(target: str, params: dict[str, str]) -> ReplayDevice:
    from imucap.devices.uri import stream_settings, take_options

    if not target:
        raise BadDeviceURIError("replay: give the session file, such as replay:sessions/P07.mcap")
    options = take_options(params, ReplayConfig)
    options.pop("path", None)
    return ReplayDevice(ReplayConfig(path=target, **options, **stream_settings(params)))
