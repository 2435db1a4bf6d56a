"""A simulated session end to end on the built-in rig, and the cubic resampler."""

from __future__ import annotations

import numpy as np
import pytest

from imucap.datasets.builtin_rig import builtin_rig
from imucap.datasets.imu_sim import GRAVITY_MPS2
from imucap.datasets.motion import SubjectStyle, expression_track, head_track
from imucap.datasets.placement import preset
from imucap.datasets.sensor_model import lsb_si
from imucap.datasets.simulate import resample_cubic, simulate_imu


def test_resample_cubic_passes_through_samples_and_follows_smooth_curves():
    src = 60.0
    t = np.arange(120) / src
    values = np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t)], axis=1)
    up = resample_cubic(values, src, 240.0)
    assert up.shape == (477, 2)
    assert np.allclose(up[::4], values[: len(up[::4])])
    tt = np.arange(len(up)) / 240.0
    truth = np.stack([np.sin(2 * np.pi * 1.3 * tt), np.cos(2 * np.pi * 0.7 * tt)], axis=1)
    assert np.abs(up - truth)[8:-8].max() < 2e-3


@pytest.fixture(scope="module")
def session():
    rig = builtin_rig()
    sites = preset("imusic11+head", rig).attach(rig)
    rng = np.random.default_rng(0)
    style = SubjectStyle(talk_fraction=0.5, expressiveness=1.5)
    weights = expression_track(20.0, 200.0, style, rng)
    rotvec, pos = head_track(20.0, 200.0, style, rng)
    return rig, sites, weights, rotvec, pos


def test_still_neutral_face_reads_gravity_in_counts(session):
    rig, sites, weights, rotvec, pos = session
    still = np.zeros_like(weights)
    out = simulate_imu(rig, sites, still, np.zeros_like(rotvec), np.zeros_like(pos),
                       rate_hz=200.0, rng=np.random.default_rng(1))
    accel = out.accel_counts.astype(float) * lsb_si(8, 1000)[0]
    assert out.accel_counts.dtype == np.int16
    assert np.allclose(np.linalg.norm(out.accel_ideal, axis=-1), GRAVITY_MPS2, rtol=1e-5)
    # The mean reading is the session's own gain and bias applied to gravity (noise averages).
    err = out.errors
    expected = np.einsum("sij,sj->si", err.accel_gain, out.accel_ideal[0]) + err.accel_bias
    assert np.allclose(accel.mean(axis=0), expected, atol=0.02)
    gyro = out.gyro_counts.astype(float) * lsb_si(8, 1000)[1]
    assert np.abs(gyro.mean(axis=0)).max() < np.deg2rad(3.0)  # turn-on bias only


def test_expressions_move_the_sites_where_the_muscles_are(session):
    rig, sites, weights, rotvec, pos = session
    out = simulate_imu(rig, sites, weights, np.zeros_like(rotvec), np.zeros_like(pos),
                       rate_hz=200.0, rng=np.random.default_rng(2), noise=False)
    energy = dict(zip(sites.names, np.abs(out.gyro_ideal).mean(axis=(0, 2)), strict=True))
    assert energy["head_ref"] < 0.1 * energy["mentalis"]
    assert energy["mentalis"] > 0.02 and energy["zygomaticus_major_l"] > 0.005


def test_head_motion_reaches_every_sensor_alike(session):
    rig, sites, weights, rotvec, pos = session
    out = simulate_imu(rig, sites, np.zeros_like(weights), rotvec, pos, rate_hz=200.0,
                       rng=np.random.default_rng(3), noise=False)
    rates = np.linalg.norm(out.gyro_ideal, axis=-1)[1:-1]
    assert np.allclose(rates, rates[:, :1], rtol=1e-6, atol=1e-9)  # one rigid body
