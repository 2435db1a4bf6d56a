"""One simulated session: motion in, the counts an IMU array would report out.

Ties the pieces together: blendshape weights and head pose on the device's sample grid →
sensor poses on the rig (:mod:`.imu_sim`) → ideal specific force and angular rate → chip errors
(:mod:`.sensor_model`) → int16 counts. Motion sampled at another rate (a 60 Hz ARKit take) is
resampled to the device rate with a cubic (Catmull-Rom) interpolation first, so its second
derivative stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .imu_sim import (
    SiteAttachment,
    ideal_imu,
    ideal_mag_quat,
    lag_poses,
    rotvec_to_matrix,
    site_poses,
)
from .rig import Rig
from .sensor_model import (
    SensorErrors,
    apply_mag_model,
    apply_sensor_model,
    chip_spec,
    quat_counts,
    resolve_ranges,
)


@dataclass(frozen=True, eq=False)
class SimulatedImu:
    """What the simulated array reported.

    Attributes:
        accel_counts: ``(T, S, 3)`` int16 accelerometer counts.
        gyro_counts: ``(T, S, 3)`` int16 gyroscope counts.
        accel_ideal: ``(T, S, 3)`` noise-free specific force, m/s².
        gyro_ideal: ``(T, S, 3)`` noise-free angular rate, rad/s.
        errors: The session's drawn chip errors.
        mag_counts: ``(T, S, 3)`` int16 magnetometer counts, when asked for.
        quat_counts: ``(T, S, 4)`` int16 Q14 on-board orientation (world from sensor), when
            asked for.
    """

    accel_counts: np.ndarray
    gyro_counts: np.ndarray
    accel_ideal: np.ndarray
    gyro_ideal: np.ndarray
    errors: SensorErrors
    mag_counts: np.ndarray | None = None
    quat_counts: np.ndarray | None = None


def cubic_at(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Catmull-Rom interpolation of uniformly sampled rows ``values`` ``(T, ...)`` at
    fractional sample positions ``pos`` (0 is the first row)."""
    n = values.shape[0]
    i = np.clip(np.floor(pos).astype(int), 0, n - 2)
    u = (pos - i).reshape(-1, *([1] * (values.ndim - 1)))
    p0 = values[np.clip(i - 1, 0, n - 1)]
    p1, p2 = values[i], values[i + 1]
    p3 = values[np.clip(i + 2, 0, n - 1)]
    return 0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * u**3)


def resample_cubic(values: np.ndarray, src_hz: float, dst_hz: float) -> np.ndarray:
    """Resample ``(T, ...)`` uniformly sampled values to another rate (Catmull-Rom spline)."""
    duration = (values.shape[0] - 1) / src_hz
    pos = np.arange(int(np.floor(duration * dst_hz)) + 1) / dst_hz * src_hz
    return cubic_at(values, pos)


def simulate_imu(rig: Rig, sites: SiteAttachment, weights: np.ndarray, head_rotvec: np.ndarray,
                 head_pos: np.ndarray, *, rate_hz: float, chip: str = "ICM-42688-P",
                 accel_range_g: int | None = None, gyro_range_dps: int | None = None,
                 rng: np.random.Generator, errors: SensorErrors | None = None,
                 noise: bool = True, tissue_lag_s: float = 0.0, with_mag: bool = False,
                 with_quat: bool = False) -> SimulatedImu:
    """Simulate an array for motion sampled at the device rate.

    Args:
        rig: The face rig.
        sites: Where the sensors sit on it.
        weights: Blendshape weights ``(T, 52)`` at ``rate_hz``.
        head_rotvec: World-from-head rotation vectors ``(T, 3)`` at ``rate_hz``.
        head_pos: Head positions in the world ``(T, 3)`` metres at ``rate_hz``.
        rate_hz: The device's output rate.
        chip: Chip name (see :data:`.chip_specs.CHIPS`).
        accel_range_g: Accelerometer full scale; None for the chip's preferred one.
        gyro_range_dps: Gyroscope full scale; None for the chip's preferred one.
        rng: Random generator for the chip errors.
        errors: Session errors to reuse; drawn when None.
        noise: Add white noise and bias walk.
        tissue_lag_s: Time constant of the soft tissue between skin and sensor (0: rigid).
        with_mag: Also simulate a magnetometer beside each IMU (the Earth's field).
        with_quat: Also report each sensor's orientation, as an on-board fusion would.
    """
    spec = chip_spec(chip)
    accel_range_g, gyro_range_dps = resolve_ranges(spec, accel_range_g, gyro_range_dps)
    pos, rot = site_poses(rig, sites, weights)
    pos, rot = lag_poses(pos, rot, sites.head_from_sensor, tissue_lag_s, 1.0 / rate_hz)
    head_rot = rotvec_to_matrix(head_rotvec)
    accel, gyro = ideal_imu(np.asarray(head_pos, float), head_rot, pos, rot, 1.0 / rate_hz)
    a, g, errors = apply_sensor_model(accel, gyro, spec=spec, rate_hz=rate_hz,
                                      accel_range_g=accel_range_g,
                                      gyro_range_dps=gyro_range_dps, rng=rng, errors=errors,
                                      noise=noise)
    mag = quat = None
    if with_mag or with_quat:
        mag_ut, q = ideal_mag_quat(head_rot, rot)
        mag = apply_mag_model(mag_ut, rng=rng, noise=noise) if with_mag else None
        quat = quat_counts(q) if with_quat else None
    return SimulatedImu(a, g, accel.astype(np.float32), gyro.astype(np.float32), errors,
                        mag, quat)
