"""Motion sources for the emulator: what each virtual sensor measures at given device times.

A motion source maps sample times to specific force (m/s², gravity included) and angular rate
(rad/s) in each sensor's frame. :class:`SyntheticMotion` is a light, deterministic stand-in for
a face: slow head sway under gravity plus blink-, smile- and speech-like skin motion on the
sites where those muscles are. The rig-based IMU simulator plugs in through the same protocol.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from imucap.rotations import rotvec_to_matrix

GRAVITY_MPS2 = 9.80665


class MotionSource(Protocol):
    """Anything that says what the sensors measure at given times."""

    def sample(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(accel, gyro)``, each ``(len(t_s), n_sensors, 3)``: m/s² and rad/s."""
        ...


# Which skin motion each site name shows most: substring of the site name → pattern.
_SITE_PATTERNS = (
    ("frontalis", "brow"),
    ("brow", "brow"),
    ("oculi", "blink"),
    ("eye", "blink"),
    ("zygomatic", "smile"),
    ("cheek", "smile"),
    ("buccinator", "speech"),
    ("mouth", "speech"),
    ("mentalis", "jaw"),
    ("chin", "jaw"),
    ("jaw", "jaw"),
)


class SyntheticMotion:
    """Deterministic face-like motion for ``n_sensors`` sensors.

    The head sways slowly (a few degrees at 0.1 to 0.4 Hz) under gravity; each sensor sits at
    a fixed random mounting tilt; skin motion is added per site: blinks (short pulses every 2
    to 6 s), smiles and brow raises (slow bumps), speech (4 to 6 Hz syllables) and jaw opening.
    Angular rate is the time derivative of the rotation vector, which is exact for rotations
    about a fixed axis and close for the small angles used here. White noise is added at
    roughly datasheet levels (ICM-42688-P class: 70 µg/√Hz, 0.0028 °/s/√Hz) for ``rate_hz``.

    Args:
        sites: Site names, one per sensor; they choose each sensor's skin-motion pattern.
        rate_hz: Sample rate, used to scale the white noise.
        seed: Seed of everything random; the same seed gives the same signals.
    """

    def __init__(self, sites: tuple[str, ...], *, rate_hz: float = 100.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.sites = tuple(sites)
        n = len(sites)
        self._rng = np.random.default_rng(seed + 1)
        self._mount = rotvec_to_matrix(rng.normal(0.0, 0.35, (n, 3)))  # sensor tilt on skin
        self._head_amp = np.deg2rad(rng.uniform(2.0, 6.0, 3))
        self._head_freq = rng.uniform(0.1, 0.4, 3)
        self._head_phase = rng.uniform(0, 2 * np.pi, 3)
        self._skin_axis = rng.normal(size=(n, 3))
        self._skin_axis /= np.linalg.norm(self._skin_axis, axis=1, keepdims=True)
        self._pattern = []
        for name in self.sites:
            low = name.lower()
            self._pattern.append(next((p for key, p in _SITE_PATTERNS if key in low), "still"))
        self._blink_period = rng.uniform(2.0, 6.0)
        self._accel_noise = 70e-6 * GRAVITY_MPS2 * np.sqrt(rate_hz / 2)
        self._gyro_noise = np.deg2rad(0.0028) * np.sqrt(rate_hz / 2)

    def _skin_angle(self, pattern: str, t: np.ndarray) -> np.ndarray:
        """Small skin rotation angle (rad) over time for one motion pattern."""
        if pattern == "blink":
            phase = np.mod(t, self._blink_period) / 0.15  # a blink lasts about 150 ms
            return np.where(phase < 1.0, 0.12 * np.sin(np.pi * np.clip(phase, 0, 1)) ** 2, 0.0)
        if pattern == "smile":
            return 0.08 * np.sin(2 * np.pi * 0.15 * t) ** 2
        if pattern == "brow":
            return 0.05 * np.sin(2 * np.pi * 0.2 * t + 1.0) ** 4
        if pattern == "speech":
            return 0.04 * np.sin(2 * np.pi * 5.0 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
        if pattern == "jaw":
            return 0.10 * np.sin(2 * np.pi * 2.5 * t) ** 2 * (np.sin(2 * np.pi * 0.3 * t) > 0)
        return np.zeros_like(t)

    def sample(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(t_s, dtype=np.float64)
        w = 2 * np.pi * self._head_freq
        head_rv = self._head_amp * np.sin(w * t[:, None] + self._head_phase)  # (n, 3)
        head_w = self._head_amp * w * np.cos(w * t[:, None] + self._head_phase)
        world_from_head = rotvec_to_matrix(head_rv)  # (T, 3, 3)
        gravity_in_head = np.einsum("tji,j->ti", world_from_head, [0.0, 0.0, GRAVITY_MPS2])
        n_t, n_s = len(t), len(self.sites)
        accel = np.empty((n_t, n_s, 3))
        gyro = np.empty((n_t, n_s, 3))
        dt = 1e-3
        for i, pattern in enumerate(self._pattern):
            angle = self._skin_angle(pattern, t)
            rate = (self._skin_angle(pattern, t + dt) - angle) / dt
            skin = rotvec_to_matrix(angle[:, None] * self._skin_axis[i])  # (T, 3, 3)
            head_from_sensor = skin @ self._mount[i]
            accel[:, i] = np.einsum("tji,tj->ti", head_from_sensor, gravity_in_head)
            body_rate = head_w + rate[:, None] * self._skin_axis[i]
            gyro[:, i] = np.einsum("tji,tj->ti", head_from_sensor, body_rate)
            # Skin moving along the circle of its own rotation adds a little linear acceleration.
            accel[:, i] += 0.02 * np.gradient(rate, axis=0)[:, None] * self._skin_axis[i] \
                if n_t > 1 else 0.0
        accel += self._rng.normal(0.0, self._accel_noise, accel.shape)
        gyro += self._rng.normal(0.0, self._gyro_noise, gyro.shape)
        return accel, gyro
