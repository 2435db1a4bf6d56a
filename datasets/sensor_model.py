"""Chip errors on ideal IMU signals: bias, bias walk, scale, misalignment, noise, quantisation.

The result is int16 counts, the form the wire protocol carries, so simulated data can be
streamed by the emulator or written to a dataset exactly as a real array would produce it.
White noise is the chip's noise density over a noise bandwidth of half the output rate (the
chip's low-pass filter set to its Nyquist frequency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imucap.errors import ImucapError

from .chip_specs import CHIPS, MAGNETOMETER, ChipSpec, MagSpec
from .imu_sim import GRAVITY_MPS2, rotvec_to_matrix

DEFAULT_ACCEL_RANGE_G = 8
DEFAULT_GYRO_RANGE_DPS = 1000
"""Preferred full scales: face motion stays well inside them with fine resolution."""


class SensorConfigError(ImucapError, ValueError):
    """An unknown chip, or a full scale the chip does not have."""


@dataclass(frozen=True, eq=False)
class SensorErrors:
    """One session's errors for each sensor, drawn at power-up and constant through it.

    Attributes:
        accel_bias: Turn-on accelerometer bias, ``(S, 3)`` m/s².
        gyro_bias: Turn-on gyroscope bias, ``(S, 3)`` rad/s.
        accel_gain: Scale and misalignment of the accelerometer, ``(S, 3, 3)``.
        gyro_gain: Scale and misalignment of the gyroscope, ``(S, 3, 3)``.
    """

    accel_bias: np.ndarray
    gyro_bias: np.ndarray
    accel_gain: np.ndarray
    gyro_gain: np.ndarray

    @classmethod
    def none(cls, n_sensors: int) -> SensorErrors:
        """No errors at all (for tests and for an ideal reference)."""
        eye = np.broadcast_to(np.eye(3), (n_sensors, 3, 3)).copy()
        zero = np.zeros((n_sensors, 3))
        return cls(zero, zero.copy(), eye, eye.copy())


def chip_spec(name: str) -> ChipSpec:
    """The spec of a chip by name.

    Raises:
        SensorConfigError: Unknown chip (the message lists the known ones).
    """
    if name not in CHIPS:
        raise SensorConfigError(f"unknown IMU chip {name!r}: use one of {', '.join(CHIPS)}")
    return CHIPS[name]


def resolve_ranges(spec: ChipSpec, accel_range_g: int | None = None,
                   gyro_range_dps: int | None = None) -> tuple[int, int]:
    """Full scales to use: the given ones if the chip has them, else the chip's defaults.

    A None range picks the preferred one (±8 g, ±1000 °/s) or, where the chip lacks it, its
    next larger range (the QMI8658 has ±1024 °/s).

    Raises:
        SensorConfigError: A given range does not exist on the chip.
    """
    def pick(given: int | None, have: tuple[int, ...], preferred: int, unit: str) -> int:
        if given is None:
            return min((r for r in have if r >= preferred), default=max(have))
        if given not in have:
            raise SensorConfigError(f"{spec.name} has no ±{given} {unit} range: use one of "
                                    f"{', '.join(map(str, have))}")
        return given

    return (pick(accel_range_g, spec.accel_ranges_g, DEFAULT_ACCEL_RANGE_G, "g"),
            pick(gyro_range_dps, spec.gyro_ranges_dps, DEFAULT_GYRO_RANGE_DPS, "°/s"))


def draw_errors(spec: ChipSpec, n_sensors: int, rng: np.random.Generator) -> SensorErrors:
    """Draw one session's turn-on biases, scale errors and misalignments."""

    def gain(scale_error: float) -> np.ndarray:
        scale = 1.0 + rng.normal(0.0, scale_error, (n_sensors, 3))
        tilt = rotvec_to_matrix(rng.normal(0.0, np.deg2rad(spec.misalignment_deg),
                                           (n_sensors, 3)))
        return tilt * scale[:, None, :]

    return SensorErrors(
        accel_bias=rng.normal(0.0, spec.accel_offset_mg * 1e-3 * GRAVITY_MPS2, (n_sensors, 3)),
        gyro_bias=rng.normal(0.0, np.deg2rad(spec.gyro_offset_dps), (n_sensors, 3)),
        accel_gain=gain(spec.accel_scale_error),
        gyro_gain=gain(spec.gyro_scale_error),
    )


def lsb_si(accel_range_g: float, gyro_range_dps: float) -> tuple[float, float]:
    """One count of the accelerometer (m/s²) and of the gyroscope (rad/s) at these ranges."""
    return accel_range_g * GRAVITY_MPS2 / 32768.0, float(np.deg2rad(gyro_range_dps / 32768.0))


def apply_sensor_model(accel: np.ndarray, gyro: np.ndarray, *, spec: ChipSpec, rate_hz: float,
                       accel_range_g: int, gyro_range_dps: int, rng: np.random.Generator,
                       errors: SensorErrors | None = None, noise: bool = True
                       ) -> tuple[np.ndarray, np.ndarray, SensorErrors]:
    """What the chips report for ideal signals, as int16 counts.

    Args:
        accel: Ideal specific force, ``(T, S, 3)`` m/s².
        gyro: Ideal angular rate, ``(T, S, 3)`` rad/s.
        spec: The chip's error figures.
        rate_hz: Output rate; sets the white-noise bandwidth (half of it).
        accel_range_g: Accelerometer full scale; readings beyond it saturate.
        gyro_range_dps: Gyroscope full scale.
        rng: Random generator (the same seed gives the same session).
        errors: Session errors to use; drawn from ``spec`` when None.
        noise: Add white noise and bias random walk.

    Returns:
        ``(accel_counts, gyro_counts, errors)``; counts are int16 ``(T, S, 3)``.
    """
    t, s, _ = accel.shape
    resolve_ranges(spec, accel_range_g, gyro_range_dps)  # refuse ranges the chip lacks
    if errors is None:
        errors = draw_errors(spec, s, rng)
    a = np.einsum("sij,tsj->tsi", errors.accel_gain, accel) + errors.accel_bias
    g = np.einsum("sij,tsj->tsi", errors.gyro_gain, gyro) + errors.gyro_bias
    if noise:
        dt = 1.0 / rate_hz
        bandwidth = rate_hz / 2.0
        a = a + rng.normal(0.0, spec.accel_noise_ug_rthz * 1e-6 * GRAVITY_MPS2
                           * np.sqrt(bandwidth), a.shape)
        g = g + rng.normal(0.0, np.deg2rad(spec.gyro_noise_mdps_rthz * 1e-3)
                           * np.sqrt(bandwidth), g.shape)
        a = a + np.cumsum(rng.normal(0.0, spec.accel_bias_walk_ug_rts * 1e-6 * GRAVITY_MPS2
                                     * np.sqrt(dt), a.shape), axis=0)
        g = g + np.cumsum(rng.normal(0.0, np.deg2rad(spec.gyro_bias_walk_dps_rts)
                                     * np.sqrt(dt), g.shape), axis=0)
    accel_lsb, gyro_lsb = lsb_si(accel_range_g, gyro_range_dps)
    a_counts = np.clip(np.round(a / accel_lsb), -32768, 32767).astype(np.int16)
    g_counts = np.clip(np.round(g / gyro_lsb), -32768, 32767).astype(np.int16)
    return a_counts, g_counts, errors


QUAT_ONE = 16384
"""Q14 fixed point of orientation quaternions, as the wire protocol carries them."""


def apply_mag_model(mag_ut: np.ndarray, *, rng: np.random.Generator,
                    spec: MagSpec = MAGNETOMETER, noise: bool = True) -> np.ndarray:
    """Magnetometer counts ``(T, S, 3)`` int16 for the field in each sensor's axes (µT).

    One session's hard-iron offset and soft-iron matrix are drawn per sensor.
    """
    s = mag_ut.shape[1]
    soft = np.eye(3) + rng.normal(0.0, spec.soft_iron, (s, 3, 3))
    out = np.einsum("sij,tsj->tsi", soft, mag_ut) + rng.normal(0.0, spec.hard_iron_ut, (s, 3))
    if noise:
        out = out + rng.normal(0.0, spec.noise_ut, out.shape)
    lsb = spec.range_ut / 32768.0
    return np.clip(np.round(out / lsb), -32768, 32767).astype(np.int16)


def quat_counts(quat: np.ndarray) -> np.ndarray:
    """Q14 int16 counts of unit quaternions ``(..., 4)``."""
    return np.clip(np.round(np.asarray(quat) * QUAT_ONE), -32768, 32767).astype(np.int16)
