"""IMU simulator physics on cases with known answers, using a small synthetic rig."""

from __future__ import annotations

import numpy as np
import pytest

from imucap.datasets.imu_sim import (
    GRAVITY_MPS2,
    attach_sites,
    ideal_imu,
    matrix_to_rotvec,
    rotvec_to_matrix,
    site_poses,
)
from imucap.datasets.rig import Rig
from imucap.vocab import index_of

JAW = index_of("jawOpen")


def grid_rig() -> Rig:
    """A 10 cm square of skin facing +z at z = 0.09 m; jawOpen turns the part below y = 0."""
    n = 21
    xs, ys = np.meshgrid(np.linspace(-0.05, 0.05, n), np.linspace(-0.05, 0.05, n))
    neutral = np.stack([xs.ravel(), ys.ravel(), np.full(n * n, 0.09)], axis=1)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [(a, b, d), (a, d, c)]  # counter-clockwise seen from +z
    deltas = np.zeros((52, n * n, 3))
    below = neutral[:, 1] < 0
    pivot = np.array([0.0, 0.0, 0.0])  # the "jaw joint" axis: x through the origin
    turn = rotvec_to_matrix(np.array([0.35, 0.0, 0.0]))  # 20° about +x: chin down and back
    deltas[JAW, below] = (neutral[below] - pivot) @ turn.T + pivot - neutral[below]
    return Rig(neutral.astype(np.float32), np.array(faces, np.int32),
               deltas.astype(np.float32), np.ones(52, bool), name="grid")


SITES = ("forehead", "cheek", "chin")
POINTS = np.array([[0.0, 0.04, 0.09], [0.03, 0.005, 0.09], [0.0, -0.04, 0.09]])


def still_head(t):
    return np.zeros((len(t), 3)), np.broadcast_to(np.eye(3), (len(t), 3, 3))


def test_rotation_helpers_invert_each_other():
    rv = np.random.default_rng(0).normal(0, 0.8, (100, 3))
    assert np.allclose(matrix_to_rotvec(rotvec_to_matrix(rv)), rv, atol=1e-9)


def test_still_head_measures_only_gravity():
    rig = grid_rig()
    sites = attach_sites(rig, SITES, POINTS)
    t = np.arange(200) / 200
    pos, rot = site_poses(rig, sites, np.zeros((len(t), 52)))
    accel, gyro = ideal_imu(*still_head(t), pos, rot, 1 / 200)
    assert np.allclose(np.linalg.norm(accel, axis=-1), GRAVITY_MPS2)
    # Skin facing +z, sensor z out of the skin, x toward the head's +x: gravity is along -y.
    assert np.allclose(accel, [0.0, GRAVITY_MPS2, 0.0], atol=1e-9)
    assert np.allclose(gyro, 0.0)


@pytest.mark.parametrize("axis", [[0, 1, 0], [1, 0, 0], [0.3, -0.5, 0.8]])
def test_pure_head_rotation_reads_its_rate_on_every_gyroscope(axis):
    rig = grid_rig()
    sites = attach_sites(rig, SITES, POINTS)
    rate = 2.0  # rad/s
    axis = np.array(axis, float) / np.linalg.norm(axis)
    t = np.arange(400) / 400
    head_rot = rotvec_to_matrix(rate * t[:, None] * axis)
    pos, rot = site_poses(rig, sites, np.zeros((len(t), 52)))
    accel, gyro = ideal_imu(np.zeros((len(t), 3)), head_rot, pos, rot, 1 / 400)
    inner = slice(1, -1)
    assert np.allclose(np.linalg.norm(gyro[inner], axis=-1), rate, rtol=1e-6)
    world_rot = head_rot[:, None] @ rot
    body = np.einsum("tsji,j->tsi", world_rot, axis * rate)
    assert np.allclose(gyro[inner], body[inner], atol=1e-6)
    # Accelerometer: gravity plus the centripetal pull toward the axis, in sensor axes.
    world_pos = np.einsum("tij,tsj->tsi", head_rot, pos)
    radial = world_pos - np.einsum("tsj,j->ts", world_pos, axis)[..., None] * axis
    expected = -rate**2 * radial + [0.0, GRAVITY_MPS2, 0.0]
    expected = np.einsum("tsji,tsj->tsi", world_rot, expected)
    assert np.allclose(accel[inner], expected[inner], atol=1e-3)


def test_linear_head_acceleration_adds_to_specific_force():
    rig = grid_rig()
    sites = attach_sites(rig, SITES, POINTS)
    t = np.arange(100) / 100
    a = np.array([0.5, -1.0, 2.0])
    head_pos = 0.5 * a * t[:, None] ** 2
    pos, rot = site_poses(rig, sites, np.zeros((len(t), 52)))
    accel, gyro = ideal_imu(head_pos, np.broadcast_to(np.eye(3), (len(t), 3, 3)), pos, rot,
                            1 / 100)
    assert np.allclose(accel, a + [0.0, GRAVITY_MPS2, 0.0], atol=1e-6)
    assert np.allclose(gyro, 0.0)


def test_jaw_opening_moves_only_the_sites_near_the_jaw():
    rig = grid_rig()
    sites = attach_sites(rig, SITES, POINTS)
    t = np.arange(600) / 200
    weights = np.zeros((len(t), 52))
    weights[:, JAW] = 0.5 - 0.5 * np.cos(2 * np.pi * 1.0 * t)  # open and close once a second
    pos, rot = site_poses(rig, sites, weights)
    accel, gyro = ideal_imu(*still_head(t), pos, rot, 1 / 200)
    moving = np.linalg.norm(gyro, axis=-1).max(axis=0)
    assert moving[SITES.index("forehead")] < 1e-9 and moving[SITES.index("cheek")] < 1e-9
    chin = SITES.index("chin")
    # Blendshapes mix corners linearly, so at weight w the chin's skin has turned by
    # atan2(w sin θ, 1 - w + w cos θ), not w θ; its peak rate follows from that closed form.
    theta, w = 0.35, weights[:, JAW]
    angle = np.arctan2(w * np.sin(theta), 1 - w + w * np.cos(theta))
    assert moving[chin] == pytest.approx(np.abs(np.gradient(angle, t)).max(), rel=1e-3)
    gyro_axis = gyro[:, chin] / np.maximum(np.linalg.norm(gyro[:, chin], axis=-1,
                                                              keepdims=True), 1e-12)
    busy = np.linalg.norm(gyro[:, chin], axis=-1) > 0.3
    assert np.allclose(np.abs(gyro_axis[busy, 0]), 1.0, atol=1e-6)  # about the sensor's x
    assert np.allclose(np.linalg.norm(accel[:, :2], axis=-1), GRAVITY_MPS2)


def test_site_off_the_mesh_is_refused_with_its_distance():
    with pytest.raises(ValueError, match=r"'ear' is 6\.0 cm off the rig's surface"):
        attach_sites(grid_rig(), ("ear",), np.array([[0.0, 0.0, 0.15]]))


def test_mounting_rotation_turns_the_sensor_axes():
    rig = grid_rig()
    flat = attach_sites(rig, ("s",), POINTS[:1])
    turned = attach_sites(rig, ("s",), POINTS[:1], mount_rotvecs=np.array([[0, 0, np.pi / 2]]))
    # Turned 90° about its own z: its x axis is the flat sensor's y axis.
    assert np.allclose(turned.head_from_sensor[0][:, 0], flat.head_from_sensor[0][:, 1])


def test_magnetometer_sees_the_earth_field_turn_with_the_head():
    from imucap.datasets.imu_sim import EARTH_FIELD_UT, ideal_mag_quat

    rig = grid_rig()
    sites = attach_sites(rig, SITES, POINTS)
    t = np.arange(200) / 100
    head_rot = rotvec_to_matrix(np.pi / 2 * t[:, None] * np.array([0, 1, 0]))  # yaw 90°/s
    pos, rot = site_poses(rig, sites, np.zeros((len(t), 52)))
    mag, quat = ideal_mag_quat(head_rot, rot)
    assert np.allclose(np.linalg.norm(mag, axis=-1), np.linalg.norm(EARTH_FIELD_UT))
    # Facing +z at first, the field's horizontal part (+z) is along the sensor's z axis;
    # after a quarter turn about the vertical it lies in the skin plane instead.
    assert mag[0, 0, 2] == pytest.approx(25.0) and abs(mag[100, 0, 2]) < 1e-9
    assert mag[0, 0, 1] == pytest.approx(-40.0)  # the field dips down; the sensor's y is up
    w, x, y, z = np.moveaxis(quat, -1, 0)
    assert np.allclose(w**2 + x**2 + y**2 + z**2, 1.0)


def test_quaternion_counts_decode_to_the_sensor_orientation():
    from imucap.datasets.imu_sim import matrix_to_quat
    from imucap.datasets.sensor_model import QUAT_ONE, quat_counts

    r = rotvec_to_matrix(np.random.default_rng(3).normal(0, 1, (50, 3)))
    q = quat_counts(matrix_to_quat(r)).astype(float) / QUAT_ONE
    w, x, y, z = q.T
    back = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)
    assert np.abs(back - r).max() < 5e-4  # Q14 resolution


def test_soft_tissue_lag_delays_and_softens_the_sensor_as_a_first_order_filter():
    from imucap.datasets.imu_sim import lag_poses

    rig = grid_rig()
    sites = attach_sites(rig, SITES, POINTS)
    rate, f, tau = 1000.0, 2.0, 0.02
    t = np.arange(4000) / rate
    weights = np.zeros((len(t), 52))
    weights[:, JAW] = 0.3 + 0.1 * np.sin(2 * np.pi * f * t)
    pos, rot = site_poses(rig, sites, weights)
    head = np.zeros((len(t), 3)), np.broadcast_to(np.eye(3), (len(t), 3, 3))
    _, gyro = ideal_imu(*head, pos, rot, 1 / rate)
    lp, lr = lag_poses(pos, rot, sites.head_from_sensor, tau, 1 / rate)
    _, lagged = ideal_imu(*head, lp, lr, 1 / rate)
    chin = SITES.index("chin")
    steady = slice(1000, 3000)  # four whole cycles after the filter has settled
    phasor = np.exp(-2j * np.pi * f * t[steady])
    a = np.sum(gyro[steady, chin, 0] * phasor)  # the 2 Hz component of each signal
    b = np.sum(lagged[steady, chin, 0] * phasor)
    assert abs(b) / abs(a) == pytest.approx(1 / np.hypot(1, 2 * np.pi * f * tau), rel=0.02)
    delay_s = -np.angle(b / a) / (2 * np.pi * f)
    assert delay_s == pytest.approx(np.arctan(2 * np.pi * f * tau) / (2 * np.pi * f), rel=0.05)
