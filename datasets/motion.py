"""Made-up face and head motion: blendshape curves and head poses for the IMU simulator.

:func:`expression_track` places events on a timeline (blinks with realistic timing, gaze
saccades, smiles, frowns, brow raises, cheek puffs, speech-like syllables …) and sums their
FACS-consistent blendshape patterns (:mod:`.expression_table`); :func:`head_track` makes head
rotation and position (slow sway, nods, shakes, turns, and a walking bounce). Every curve is
built from minimum-jerk ramps, so it is smooth to the second derivative, which the
accelerometer model needs. A :class:`SubjectStyle` gives each made-up subject their own
blink rate, expressiveness, asymmetry and talkativeness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imucap.vocab import NUM_BLENDSHAPES, index_of

from .expression_table import EVENT_RATES_PER_MIN, EVENTS, SYLLABLES

_EYE_LOOK = {d: (index_of(f"eyeLook{d}Left"), index_of(f"eyeLook{d}Right"))
             for d in ("Up", "Down", "In", "Out")}


@dataclass(frozen=True)
class SubjectStyle:
    """How one made-up subject moves.

    Attributes:
        blink_rate_per_min: Spontaneous blinks per minute (people: about 8 to 25 at rest).
        expressiveness: Multiplies event rates and intensities (1 is average).
        asymmetry: Typical left/right difference of an expression, fraction of its intensity.
        talk_fraction: Share of the time spent speaking.
        head_activity: Multiplies head motion amplitudes and rates (1 is average).
        walking: Whether the head bounces as in walking.
    """

    blink_rate_per_min: float = 15.0
    expressiveness: float = 1.0
    asymmetry: float = 0.1
    talk_fraction: float = 0.3
    head_activity: float = 1.0
    walking: bool = False

    @classmethod
    def random(cls, rng: np.random.Generator) -> SubjectStyle:
        """A plausible subject drawn at random."""
        return cls(
            blink_rate_per_min=float(np.clip(rng.normal(15.0, 5.0), 6.0, 30.0)),
            expressiveness=float(np.clip(rng.lognormal(0.0, 0.35), 0.4, 2.2)),
            asymmetry=float(rng.uniform(0.0, 0.25)),
            talk_fraction=float(rng.uniform(0.0, 0.6)),
            head_activity=float(np.clip(rng.lognormal(0.0, 0.4), 0.3, 2.5)),
            walking=bool(rng.random() < 0.15),
        )


def min_jerk(x: np.ndarray) -> np.ndarray:
    """Minimum-jerk ramp from 0 (x ≤ 0) to 1 (x ≥ 1): ``10x³ − 15x⁴ + 6x⁵``, C² smooth."""
    x = np.clip(x, 0.0, 1.0)
    return x**3 * (10.0 + x * (-15.0 + 6.0 * x))


def pulse(t: np.ndarray, start: float, attack: float, hold: float, release: float
          ) -> np.ndarray:
    """A smooth bump: rises over ``attack``, holds, falls over ``release`` (seconds)."""
    up = min_jerk((t - start) / attack)
    down = 1.0 - min_jerk((t - start - attack - hold) / release)
    return up * down


def _sides(pattern: dict[str, float], left: float, right: float) -> list[tuple[int, float]]:
    """Expand ``name*`` entries into their Left and Right blendshapes with side gains."""
    out = []
    for name, weight in pattern.items():
        if name.endswith("*"):
            out.append((index_of(name[:-1] + "Left"), weight * left))
            out.append((index_of(name[:-1] + "Right"), weight * right))
        else:
            out.append((index_of(name), weight * (left + right) / 2))
    return out


def _poisson_times(rng: np.random.Generator, rate_per_s: float, duration_s: float,
                   min_gap_s: float = 0.0) -> np.ndarray:
    times, t = [], 0.0
    while rate_per_s > 0:
        t += min_gap_s + rng.exponential(1.0 / rate_per_s)
        if t >= duration_s:
            break
        times.append(t)
    return np.array(times)


def _span(n: int, rate_hz: float, start_s: float, length_s: float) -> slice:
    """The samples an event starting at ``start_s`` and lasting ``length_s`` can touch."""
    return slice(max(0, int(np.floor(start_s * rate_hz))),
                 min(n, int(np.ceil((start_s + length_s) * rate_hz)) + 1))


def expression_track(duration_s: float, rate_hz: float, style: SubjectStyle,
                     rng: np.random.Generator) -> np.ndarray:
    """Blendshape weights ``(T, 52)`` in [0, 1] sampled at ``rate_hz`` for ``duration_s``.

    Each event is evaluated only over the samples it spans, so the cost grows with the
    duration, not its square.
    """
    n = int(round(duration_s * rate_hz))
    t = np.arange(n) / rate_hz
    w = np.zeros((n, NUM_BLENDSHAPES))

    def add(pattern: dict[str, float], start: float, attack: float, hold: float,
            release: float, intensity: float, one_side: str | None = None) -> None:
        tilt = rng.normal(0.0, style.asymmetry)
        left, right = 1.0 + tilt, 1.0 - tilt
        if one_side == "left":
            right = 0.0
        elif one_side == "right":
            left = 0.0
        rows = _span(n, rate_hz, start, attack + hold + release)
        env = pulse(t[rows], start, attack, hold, release)
        for idx, weight in _sides(pattern, left, right):
            w[rows, idx] += intensity * weight * env

    # Blinks: closing takes about 75-100 ms, opening about twice that (a real blink's shape);
    # intervals are irregular with a short refractory gap.
    for start in _poisson_times(rng, style.blink_rate_per_min / 60.0, duration_s, 0.8):
        close = rng.uniform(0.07, 0.1)
        add(EVENTS["blink"], start, close, rng.uniform(0.0, 0.05), close * 2.0, 1.0)

    # Expression events.
    for kind, per_min in EVENT_RATES_PER_MIN.items():
        for start in _poisson_times(rng, per_min * style.expressiveness / 60.0, duration_s):
            attack, hold = rng.uniform(0.2, 0.6), rng.uniform(0.3, 2.5)
            release = rng.uniform(0.3, 0.9)
            intensity = float(np.clip(rng.normal(0.7, 0.2) * style.expressiveness, 0.15, 1.0))
            side = rng.choice(["left", "right"]) if kind == "smirk" else None
            add(EVENTS[kind], start, attack, hold, release, intensity, side)

    # Speech: utterances of syllables at 4-6 per second.
    talk_rate = style.talk_fraction / 3.0  # utterances last about 3 s on average
    for start in _poisson_times(rng, talk_rate, duration_s):
        length = rng.uniform(1.0, 5.0)
        syllable_s = 1.0 / rng.uniform(4.0, 6.0)
        s = start
        while s < min(start + length, duration_s):
            vowel = SYLLABLES[rng.choice(list(SYLLABLES))]
            add(vowel, s, syllable_s * 0.4, 0.0, syllable_s * 0.6, float(rng.uniform(0.5, 1.0)))
            s += syllable_s

    # Gaze: saccades (about 40 ms) between fixations of 0.3-3 s.
    s = 0.0
    target = np.zeros(2)  # horizontal (+ toward the face's left), vertical (+ up)
    while s < duration_s:
        new = rng.normal(0.0, [0.35, 0.25])
        hold = rng.uniform(0.3, 3.0)
        rows = slice(int(np.ceil(s * rate_hz)), min(n, int(np.ceil((s + hold) * rate_hz))))
        ramp = min_jerk((t[rows] - s) / 0.04)[:, None]
        _set_gaze(w, target + (new - target) * ramp, rows)
        target = new
        s += hold

    return np.clip(w, 0.0, 1.0)


def _set_gaze(w: np.ndarray, gaze: np.ndarray, rows: slice) -> None:
    """Write eyeLook weights for gaze angles ``(len(rows), 2)`` (horizontal toward the face's
    left, vertical up) into the given rows."""
    h, v = gaze[:, 0], gaze[:, 1]
    left_eye_out = np.clip(h, 0, None)  # looking to the face's left: left eye out, right eye in
    left_eye_in = np.clip(-h, 0, None)
    w[rows, _EYE_LOOK["Out"][0]] = left_eye_out
    w[rows, _EYE_LOOK["In"][1]] = left_eye_out
    w[rows, _EYE_LOOK["In"][0]] = left_eye_in
    w[rows, _EYE_LOOK["Out"][1]] = left_eye_in
    for side in (0, 1):
        w[rows, _EYE_LOOK["Up"][side]] = np.clip(v, 0, None)
        w[rows, _EYE_LOOK["Down"][side]] = np.clip(-v, 0, None)


def head_track(duration_s: float, rate_hz: float, style: SubjectStyle,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Head rotation vectors ``(T, 3)`` (radians, world from head) and positions ``(T, 3)`` m.

    Axes as the head frame at rest: x toward the face's left, y up, z forward. Pitch (nodding)
    is about x, yaw (turning, shaking) about y, roll about z.
    """
    t = np.arange(int(round(duration_s * rate_hz))) / rate_hz
    a = style.head_activity
    rot = np.zeros((len(t), 3))
    pos = np.zeros((len(t), 3))
    # Slow sway: a few degrees over several seconds.
    for axis, amp_deg in ((0, 3.0), (1, 4.0), (2, 2.0)):
        for _ in range(3):
            freq = rng.uniform(0.03, 0.3)
            rot[:, axis] += np.deg2rad(amp_deg * a / 3) * np.sin(
                2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    # Nods (pitch down and back up) and shakes (yaw oscillation).
    n = len(t)
    for start in _poisson_times(rng, 3.0 * a / 60.0, duration_s):
        cycles, freq = rng.integers(1, 4), rng.uniform(1.5, 3.0)
        rows = _span(n, rate_hz, start, 0.3 + cycles / freq)
        env = pulse(t[rows], start, 0.15, cycles / freq, 0.15)
        rot[rows, 0] += np.deg2rad(rng.uniform(5, 15) * a) * env * \
            np.sin(2 * np.pi * freq * (t[rows] - start)) ** 2
    for start in _poisson_times(rng, 1.5 * a / 60.0, duration_s):
        cycles, freq = rng.integers(2, 5), rng.uniform(2.0, 3.5)
        rows = _span(n, rate_hz, start, 0.3 + cycles / freq)
        env = pulse(t[rows], start, 0.15, cycles / freq, 0.15)
        rot[rows, 1] += np.deg2rad(rng.uniform(8, 20) * a) * env * \
            np.sin(2 * np.pi * freq * (t[rows] - start))
    # Turns: look aside for a while and come back.
    for start in _poisson_times(rng, 2.0 * a / 60.0, duration_s):
        amp = np.deg2rad(rng.uniform(-40, 40) * a)
        attack, hold, release = rng.uniform(0.3, 0.8), rng.uniform(0.5, 4.0), \
            rng.uniform(0.3, 0.8)
        rows = _span(n, rate_hz, start, attack + hold + release)
        rot[rows, 1] += amp * pulse(t[rows], start, attack, hold, release)
    # Small translations of the head with the body; a walking bounce when walking.
    for axis in range(3):
        pos[:, axis] += 0.01 * a * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t
                                          + rng.uniform(0, 2 * np.pi))
    if style.walking:
        step_hz = rng.uniform(1.6, 2.1)
        pos[:, 1] += 0.02 * np.sin(2 * np.pi * step_hz * t)  # up and down once per step
        pos[:, 0] += 0.015 * np.sin(np.pi * step_hz * t)  # side to side once per stride
        rot[:, 2] += np.deg2rad(2.0) * np.sin(np.pi * step_hz * t)
    return rot, pos

