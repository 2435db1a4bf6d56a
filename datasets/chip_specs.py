"""Error figures of the IMU chips the simulator models, one table row per chip.

``source`` says where each row's figures come from. Noise densities are datasheet figures.
Where a datasheet gives no figure for a term (bias random walk, misalignment) or where we could
not confirm it, the row says ``assumed`` and uses a value typical of consumer MEMS IMUs; treat
those as placeholders to refine against measurements of real boards.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChipSpec:
    """Error model parameters of one IMU part (one sigma unless stated).

    Attributes:
        name: Part number as devices announce it.
        accel_noise_ug_rthz: Accelerometer white-noise density, µg/√Hz.
        gyro_noise_mdps_rthz: Gyroscope white-noise density, mdps/√Hz.
        accel_offset_mg: Turn-on accelerometer bias, mg.
        gyro_offset_dps: Turn-on gyroscope bias (zero-rate offset), °/s.
        accel_bias_walk_ug_rts: Accelerometer bias random walk, µg/√s.
        gyro_bias_walk_dps_rts: Gyroscope bias random walk, °/s/√s.
        accel_scale_error: Accelerometer sensitivity error, fraction.
        gyro_scale_error: Gyroscope sensitivity error, fraction.
        misalignment_deg: Axis misalignment (cross-axis), degrees.
        accel_ranges_g: Selectable accelerometer full scales, ±g.
        gyro_ranges_dps: Selectable gyroscope full scales, ±°/s.
        source: Where the figures come from.
    """

    name: str
    accel_noise_ug_rthz: float
    gyro_noise_mdps_rthz: float
    accel_offset_mg: float
    gyro_offset_dps: float
    accel_bias_walk_ug_rts: float
    gyro_bias_walk_dps_rts: float
    accel_scale_error: float
    gyro_scale_error: float
    misalignment_deg: float
    accel_ranges_g: tuple[int, ...]
    gyro_ranges_dps: tuple[int, ...]
    source: str


CHIPS: dict[str, ChipSpec] = {
    "ICM-42688-P": ChipSpec(
        name="ICM-42688-P", accel_noise_ug_rthz=70.0, gyro_noise_mdps_rthz=2.8,
        accel_offset_mg=20.0, gyro_offset_dps=0.5, accel_bias_walk_ug_rts=10.0,
        gyro_bias_walk_dps_rts=0.002, accel_scale_error=0.005, gyro_scale_error=0.005,
        misalignment_deg=0.5, accel_ranges_g=(2, 4, 8, 16),
        gyro_ranges_dps=(16, 31, 62, 125, 250, 500, 1000, 2000),
        source="noise densities and ranges: TDK DS-000347 features list; offsets, scale, "
               "misalignment and bias walks: assumed"),
    "BMI270": ChipSpec(
        name="BMI270", accel_noise_ug_rthz=160.0, gyro_noise_mdps_rthz=7.0,
        accel_offset_mg=20.0, gyro_offset_dps=0.5, accel_bias_walk_ug_rts=15.0,
        gyro_bias_walk_dps_rts=0.003, accel_scale_error=0.005, gyro_scale_error=0.005,
        misalignment_deg=0.5, accel_ranges_g=(2, 4, 8, 16),
        gyro_ranges_dps=(125, 250, 500, 1000, 2000),
        source="noise densities (gyro in performance mode), ranges and the ±0.5 dps zero-rate "
               "offset: Bosch BST-BMI270-DS000; accel offset, scale, misalignment and bias "
               "walks: assumed"),
    "QMI8658": ChipSpec(
        name="QMI8658", accel_noise_ug_rthz=150.0, gyro_noise_mdps_rthz=15.0,
        accel_offset_mg=30.0, gyro_offset_dps=1.0, accel_bias_walk_ug_rts=20.0,
        gyro_bias_walk_dps_rts=0.005, accel_scale_error=0.01, gyro_scale_error=0.03,
        misalignment_deg=1.0, accel_ranges_g=(2, 4, 8, 16),
        gyro_ranges_dps=(16, 32, 64, 128, 256, 512, 1024),
        source="noise densities, ranges and ±3 % board-level gyro sensitivity: QST QMI8658C "
               "datasheet rev A; offsets, accel scale, misalignment and bias walks: assumed"),
}


@dataclass(frozen=True)
class MagSpec:
    """Error figures of a magnetometer (the modelled IMUs have none: it is a separate part).

    Attributes:
        name: Part name.
        noise_ut: White noise, µT RMS at the output rate.
        hard_iron_ut: Constant offset (chip offset plus nearby magnetised parts), µT.
        soft_iron: Scale and cross-axis error (nearby soft iron and the chip), fraction.
        range_ut: Full scale, ±µT; one count is ``range_ut / 32768``.
        source: Where the figures come from.
    """

    name: str
    noise_ut: float
    hard_iron_ut: float
    soft_iron: float
    range_ut: int
    source: str


MAGNETOMETER = MagSpec(
    name="generic-magnetometer", noise_ut=0.3, hard_iron_ut=5.0, soft_iron=0.02, range_ut=4900,
    source="assumed values typical of small consumer magnetometers (±4900 µT range, 0.15 µT "
           "counts); refine against the part on your board")
