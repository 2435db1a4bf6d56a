"""Motion sources for the emulator: what each virtual sensor measures at given device times.

A motion source maps sample times to specific force (m/s², gravity included) and angular rate
(rad/s) in each sensor's frame. :class:`SyntheticMotion` is a light, deterministic stand-in for
a face: slow head sway under gravity plus blink-, smile- and speech-like skin motion on the
sites where those muscles are, and optional chin taps (the event used to align a truth stream).
:meth:`SyntheticMotion.blendshapes` gives the ARKit weights of the same face motion, so that a
truth stream sampled from it and the IMU stream describe the same face at the same times. The
rig-based IMU simulator plugs in through the same protocol.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from imucap.rotations import rotvec_to_matrix
from imucap.vocab import NUM_BLENDSHAPES, index_of

GRAVITY_MPS2 = 9.80665

TAP_WIDTH_S = 0.010
"""Time scale σ of a tap: the skin is pushed along a Gaussian bump exp(-t²/2σ²) and springs back.

The acceleration is the bump's second derivative: a main lobe 2σ = 20 ms wide with two
opposite side lobes of 45 %, the whole event lasting about 60 ms."""
TAP_PEAK_MPS2 = 25.0
"""Peak of a tap's acceleration (main lobe), along the tapped sensor's skin axis: a 2.5 mm push."""
TAP_ANGLE_RAD = 0.01
"""Skin rotation of the tapped site at the top of the push (its gyro sees the bump's derivative)."""
TAP_JAW_OPEN = 0.3
"""How far a tap twitches ``jawOpen`` (the same Gaussian bump as the push, peaking at the tap)."""
TAP_MOUTH_CLOSE = 0.5
"""How far a tap twitches ``mouthClose``."""

# Range of each pattern's skin angle (rad), the divisor that maps it onto a [0, 1] weight.
_PATTERN_RANGE = {"blink": 0.12, "smile": 0.08, "brow": 0.05, "speech": 0.04, "jaw": 0.10}


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
    about a fixed axis and close for the small angles used here (a forward difference over
    1 ms: the skin rate at ``t`` is that of ``t + 0.5 ms``, so the gyro leads
    :meth:`blendshapes` by half a millisecond). White noise is added at
    roughly datasheet levels (ICM-42688-P class: 70 µg/√Hz, 0.0028 °/s/√Hz) for ``rate_hz``.

    Taps: at each time in ``taps_s`` the wearer taps the ``tap_site`` sensor. Its skin is pushed
    2.5 mm along its skin axis and springs back (a Gaussian bump of σ = :data:`TAP_WIDTH_S`), so
    its accelerometer sees the bump's second derivative, peaking at :data:`TAP_PEAK_MPS2` exactly
    at the tap time and well above everything else the face does, and the site's skin rotates
    by up to :data:`TAP_ANGLE_RAD` along the same bump. :meth:`blendshapes` shows the same bump
    as a ``jawOpen`` / ``mouthClose`` twitch peaking at the same time. Without taps every signal
    is exactly what it was before taps existed.

    Args:
        sites: Site names, one per sensor; they choose each sensor's skin-motion pattern.
        rate_hz: Sample rate, used to scale the white noise.
        seed: Seed of everything random; the same seed gives the same signals.
        taps_s: Times of chin taps, seconds on the same clock as the sample times.
        tap_site: Name of the tapped site; by default the first site whose name contains
            ``"mentalis"`` or ``"chin"``, else the last site.
        smooth_onsets: Let speech and jaw bursts fade in and out over about 0.2 s. Without
            it they switch on and off at once: the skin angle jumps, a step whose rate the
            sampled gyro never sees but a truth stream does. It biases an alignment of
            :meth:`blendshapes` against the gyro by about 0.3 ms at 60 fps and 6 ms at 30 fps
            on average, and by up to 5 ms at 60 fps in single 30 s takes, depending on where
            the frames fall (with smooth onsets: within 1.5 ms).

    Raises:
        ValueError: ``tap_site`` is not one of ``sites``.
    """

    def __init__(
        self,
        sites: tuple[str, ...],
        *,
        rate_hz: float = 100.0,
        seed: int = 0,
        taps_s: tuple[float, ...] = (),
        tap_site: str | None = None,
        smooth_onsets: bool = False,
    ) -> None:
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
        self.taps_s = tuple(float(t) for t in taps_s)
        self._tap_array = np.sort(np.asarray(self.taps_s, dtype=np.float64))
        self.smooth_onsets = bool(smooth_onsets)
        if tap_site is None:
            chin = [i for i, name in enumerate(self.sites)
                    if "mentalis" in name.lower() or "chin" in name.lower()]
            self.tap_sensor = chin[0] if chin else n - 1
        elif tap_site in self.sites:
            self.tap_sensor = self.sites.index(tap_site)
        else:
            raise ValueError(f"tap_site {tap_site!r} is not a site: use one of {self.sites}")

    def _taps_near(self, t: np.ndarray) -> np.ndarray:
        """The taps close enough to the times ``t`` to matter (beyond 20 σ a tap is 0)."""
        if not len(t):
            return self._tap_array[:0]
        reach = 20 * TAP_WIDTH_S
        lo, hi = np.searchsorted(self._tap_array, [float(np.min(t)) - reach,
                                                   float(np.max(t)) + reach])
        return self._tap_array[lo:hi]

    def _tap_bump(self, t: np.ndarray) -> np.ndarray:
        """Sum over taps of exp(-x²/2), x = (t - tap) / σ: the push, 0 to 1 at each tap."""
        bump = np.zeros_like(t)
        for tap in self._taps_near(t):
            x = (t - tap) / TAP_WIDTH_S
            bump += np.exp(-0.5 * np.minimum(x * x, 200.0))
        return bump

    def _tap_accel(self, t: np.ndarray) -> np.ndarray:
        """Sum over taps of the push's acceleration along the skin axis, m/s² (main lobe < 0)."""
        accel = np.zeros_like(t)
        for tap in self._taps_near(t):
            x2 = np.minimum(((t - tap) / TAP_WIDTH_S) ** 2, 200.0)
            accel += TAP_PEAK_MPS2 * (x2 - 1.0) * np.exp(-0.5 * x2)
        return accel

    def _burst(self, t: np.ndarray) -> np.ndarray:
        """Envelope of speech and jaw bursts: on while sin(2π·0.3 t) > 0 (smoothed on request)."""
        wave = np.sin(2 * np.pi * 0.3 * t)
        if not self.smooth_onsets:
            return wave > 0
        x = np.clip(0.5 + wave / 0.4, 0.0, 1.0)  # ramps while |wave| < 0.2: about 0.2 s
        return x * x * (3.0 - 2.0 * x)

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
            return 0.04 * np.sin(2 * np.pi * 5.0 * t) * self._burst(t)
        if pattern == "jaw":
            return 0.10 * np.sin(2 * np.pi * 2.5 * t) ** 2 * self._burst(t)
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
            tapped = bool(self.taps_s) and i == self.tap_sensor
            if tapped:
                bump = self._tap_bump(t)
                rate = rate + TAP_ANGLE_RAD * (self._tap_bump(t + dt) - bump) / dt
                angle = angle + TAP_ANGLE_RAD * bump
            skin = rotvec_to_matrix(angle[:, None] * self._skin_axis[i])  # (T, 3, 3)
            head_from_sensor = skin @ self._mount[i]
            accel[:, i] = np.einsum("tji,tj->ti", head_from_sensor, gravity_in_head)
            body_rate = head_w + rate[:, None] * self._skin_axis[i]
            gyro[:, i] = np.einsum("tji,tj->ti", head_from_sensor, body_rate)
            # Skin moving along the circle of its own rotation adds a little linear acceleration.
            accel[:, i] += 0.02 * np.gradient(rate, axis=0)[:, None] * self._skin_axis[i] \
                if n_t > 1 else 0.0
            if tapped:
                accel[:, i] += self._tap_accel(t)[:, None] * self._skin_axis[i]
        accel += self._rng.normal(0.0, self._accel_noise, accel.shape)
        gyro += self._rng.normal(0.0, self._gyro_noise, gyro.shape)
        return accel, gyro

    def blendshapes(self, t_s: np.ndarray) -> np.ndarray:
        """ARKit weights of the same face motion that :meth:`sample` measures, without noise.

        The face performs every pattern whichever sites carry sensors: each pattern's skin angle
        is scaled into [0, 1] by its range and drives the blendshapes of that muscle: blink →
        ``eyeBlinkLeft/Right``; smile → ``mouthSmileLeft/Right`` (and half as much
        ``cheekSquintLeft/Right``); brow → ``browInnerUp`` and ``browOuterUpLeft/Right``;
        speech → ``mouthFunnel`` and ``mouthLowerDownLeft/Right`` from the magnitude of the
        speech angle; jaw → ``jawOpen``. Each pattern drives channels of its own: speech and
        jaw run at locked phases, and mixing them inside one channel would give that channel's
        velocity a shape (and a timing) that no sensor's rotation rate has. A tap twitches
        ``jawOpen`` and ``mouthClose`` along the same bump as the push the tapped sensor feels.

        Args:
            t_s: Times, seconds, on the clock of :meth:`sample`.

        Returns:
            ``(len(t_s), 52)`` float32 weights in :data:`imucap.vocab.ARKIT_NAMES` order,
            each in [0, 1].
        """
        t = np.asarray(t_s, dtype=np.float64)
        level = {p: self._skin_angle(p, t) / r for p, r in _PATTERN_RANGE.items()}
        speech = np.abs(level["speech"])
        w = np.zeros((len(t), NUM_BLENDSHAPES))
        for name, value in (
            ("eyeBlinkLeft", level["blink"]),
            ("eyeBlinkRight", level["blink"]),
            ("mouthSmileLeft", level["smile"]),
            ("mouthSmileRight", level["smile"]),
            ("cheekSquintLeft", 0.5 * level["smile"]),
            ("cheekSquintRight", 0.5 * level["smile"]),
            ("browInnerUp", level["brow"]),
            ("browOuterUpLeft", 0.8 * level["brow"]),
            ("browOuterUpRight", 0.8 * level["brow"]),
            ("jawOpen", 0.7 * level["jaw"]),
            ("mouthFunnel", 0.5 * speech),
            ("mouthLowerDownLeft", 0.3 * speech),
            ("mouthLowerDownRight", 0.3 * speech),
        ):
            w[:, index_of(name)] = value
        if self.taps_s:
            bump = self._tap_bump(t)
            w[:, index_of("jawOpen")] += TAP_JAW_OPEN * bump
            w[:, index_of("mouthClose")] += TAP_MOUTH_CLOSE * bump
        return np.clip(w, 0.0, 1.0).astype(np.float32)
