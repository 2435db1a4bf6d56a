"""Chip error models: noise level from the datasheet density, biases, saturation, quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from imucap.datasets.chip_specs import CHIPS
from imucap.datasets.imu_sim import GRAVITY_MPS2
from imucap.datasets.sensor_model import (
    SensorErrors,
    apply_sensor_model,
    chip_spec,
    lsb_si,
)


def still(t=20_000, s=4):
    accel = np.zeros((t, s, 3))
    accel[..., 2] = GRAVITY_MPS2
    return accel, np.zeros((t, s, 3))


@pytest.mark.parametrize("chip", sorted(CHIPS))
def test_white_noise_matches_the_datasheet_density(chip):
    spec = chip_spec(chip)
    rate = 200.0
    accel, gyro = still()
    g_range = min(r for r in spec.gyro_ranges_dps if r >= 125)  # fine resolution
    a, g, _ = apply_sensor_model(accel, gyro, spec=spec, rate_hz=rate, accel_range_g=2,
                                 gyro_range_dps=g_range, rng=np.random.default_rng(1))
    a_lsb, g_lsb = lsb_si(2, g_range)
    # First differences cancel bias and slow walk; white noise doubles in variance.
    a_sigma = np.std(np.diff(a.astype(float) * a_lsb, axis=0)) / np.sqrt(2)
    g_sigma = np.std(np.diff(g.astype(float) * g_lsb, axis=0)) / np.sqrt(2)
    want_a = spec.accel_noise_ug_rthz * 1e-6 * GRAVITY_MPS2 * np.sqrt(rate / 2)
    want_g = np.deg2rad(spec.gyro_noise_mdps_rthz * 1e-3) * np.sqrt(rate / 2)
    quant_a, quant_g = a_lsb / np.sqrt(12), g_lsb / np.sqrt(12)
    assert a_sigma == pytest.approx(np.hypot(want_a, quant_a), rel=0.05)
    assert g_sigma == pytest.approx(np.hypot(want_g, quant_g), rel=0.05)


def test_without_errors_counts_are_the_rounded_truth():
    rng = np.random.default_rng(0)
    accel = rng.normal(0, 20, (500, 3, 3))
    gyro = rng.normal(0, 3, (500, 3, 3))
    a, g, _ = apply_sensor_model(accel, gyro, spec=chip_spec("BMI270"), rate_hz=100,
                                 accel_range_g=16, gyro_range_dps=2000, rng=rng,
                                 errors=SensorErrors.none(3), noise=False)
    a_lsb, g_lsb = lsb_si(16, 2000)
    assert np.array_equal(a, np.round(accel / a_lsb).astype(np.int16))
    assert np.array_equal(g, np.round(gyro / g_lsb).astype(np.int16))


def test_readings_beyond_full_scale_saturate():
    accel = np.full((10, 1, 3), 3 * GRAVITY_MPS2)
    gyro = np.full((10, 1, 3), -np.deg2rad(300.0))
    a, g, _ = apply_sensor_model(accel, gyro, spec=chip_spec("ICM-42688-P"), rate_hz=100,
                                 accel_range_g=2, gyro_range_dps=250,
                                 rng=np.random.default_rng(0))
    assert np.all(a == 32767) and np.all(g == -32768)


def test_turn_on_bias_is_constant_in_a_session_and_differs_between_sessions():
    accel, gyro = still(t=5000, s=3)
    spec = chip_spec("QMI8658")
    runs = []
    for seed in (1, 2):
        a, g, err = apply_sensor_model(accel, gyro, spec=spec, rate_hz=100, accel_range_g=2,
                                       gyro_range_dps=128, rng=np.random.default_rng(seed))
        g_lsb = lsb_si(2, 128)[1]
        measured = g.astype(float).mean(axis=0) * g_lsb
        # Mean reading = gain·0 + bias (+ a little walk): the drawn bias shows through.
        assert np.allclose(measured, err.gyro_bias, atol=np.deg2rad(0.05))
        runs.append(err.gyro_bias)
    assert not np.allclose(runs[0], runs[1])


def test_same_seed_same_session():
    accel, gyro = still(t=100, s=2)
    out = [apply_sensor_model(accel, gyro, spec=chip_spec("BMI270"), rate_hz=100,
                              accel_range_g=4, gyro_range_dps=500,
                              rng=np.random.default_rng(7))[:2] for _ in range(2)]
    assert all(np.array_equal(x, y) for x, y in zip(out[0], out[1], strict=True))


def test_unknown_chip_names_the_known_ones():
    with pytest.raises(ValueError, match="ICM-42688-P, BMI270, QMI8658"):
        chip_spec("MPU-6050")


def test_ranges_the_chip_lacks_are_refused_and_defaults_fit_the_chip():
    from imucap.datasets.sensor_model import SensorConfigError, resolve_ranges

    with pytest.raises(SensorConfigError, match="QMI8658 has no ±1000 °/s range"):
        resolve_ranges(chip_spec("QMI8658"), 8, 1000)
    assert resolve_ranges(chip_spec("QMI8658")) == (8, 1024)
    assert resolve_ranges(chip_spec("ICM-42688-P")) == (8, 1000)
