"""Decoded, time-stamped IMU frames in SI units: what every transport hands on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ImuFrame:
    """One batch of samples from every sensor of an array, in SI units.

    A batch holds the samples of one or more consecutive wire frames that arrived together
    (``wire_frames`` of them, sequence numbers ``seq`` onwards); a batch never spans a loss,
    so ``lost_before`` tells exactly where data is missing.

    Attributes:
        seq: The device's sequence number of the first wire frame in the batch.
        boot_id: The device's boot id; it changes when the device restarts.
        device_time_us: Device clock of each sample, microseconds, ``(n,)`` int64.
        host_time_s: The same instants on the host's monotonic clock (``time.monotonic``), as
            mapped by the stream's clock estimate when the frame arrived, ``(n,)`` float64.
        arrival_time_s: Host monotonic time at which the frame was decoded.
        accel: Specific force, m/s², ``(n, sensors, 3)`` float32, in each sensor's own axes.
        gyro: Angular rate, rad/s, ``(n, sensors, 3)`` float32.
        mag: Magnetic field, µT, ``(n, sensors, 3)``, or None.
        quat: On-board orientation quaternion (w, x, y, z), ``(n, sensors, 4)``, or None.
        sensor_ok: Whether each sensor delivered valid data, ``(sensors,)`` bool.
        sites: Placement site name of each sensor.
        lost_before: Device frames lost between the previous batch and this one.
        wire_frames: Number of wire frames merged into this batch.
    """

    seq: int
    boot_id: int
    device_time_us: np.ndarray
    host_time_s: np.ndarray
    arrival_time_s: float
    accel: np.ndarray
    gyro: np.ndarray
    mag: np.ndarray | None
    quat: np.ndarray | None
    sensor_ok: np.ndarray
    sites: tuple[str, ...]
    lost_before: int = 0
    wire_frames: int = 1

    @property
    def n_samples(self) -> int:
        return int(self.accel.shape[0])

    @property
    def n_sensors(self) -> int:
        return int(self.accel.shape[1])
