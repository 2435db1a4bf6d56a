"""What every truth source hands on: blendshape frames stamped with their source's clock.

A truth source is the visual ground truth recorded beside the IMUs: an iPhone running Live
Link Face, or MediaPipe's Face Landmarker on a camera or a video file. Each frame carries two
times, because the two clocks are reconciled later (:mod:`imucap.sync`):

- ``source_time_s``: the moment the face was seen, on the source's own clock (the phone's
  timecode, the video's presentation time, the camera's capture time);
- ``arrival_time_s``: when the frame reached this host (``time.monotonic()``), or NaN for a
  source that is not live (a file processed faster than real time).

A frame with ``weights is None`` says that the source saw no face at that moment (the frame is
kept, marked, so that gaps are visible in the recording).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from imucap.errors import ImucapError
from imucap.vocab import NUM_BLENDSHAPES


class TruthError(ImucapError):
    """A truth source could not be opened or failed for good (one line, what to do)."""


@dataclass(frozen=True, eq=False)
class TruthFrame:
    """One frame of visual truth.

    Attributes:
        seq: Running frame count of this source, from 0.
        source_time_s: When the face was seen, on the source's own clock, seconds.
        arrival_time_s: Host monotonic time at which the frame arrived; NaN when not live.
        weights: ``(52,)`` float32 ARKit weights in :data:`imucap.vocab.ARKIT_NAMES` order,
            or None when the source saw no face.
        head_ypr: ``(3,)`` float32 head yaw, pitch, roll in radians, or None.
    """

    seq: int
    source_time_s: float
    arrival_time_s: float
    weights: np.ndarray | None
    head_ypr: np.ndarray | None = None

    @property
    def face(self) -> bool:
        """Whether the source saw a face in this frame."""
        return self.weights is not None

    @property
    def live(self) -> bool:
        """Whether the frame came in live (its arrival time means something)."""
        return not math.isnan(self.arrival_time_s)


@dataclass(frozen=True)
class TruthStats:
    """A snapshot of a truth source's health. Rates are over the last second.

    Attributes:
        state: ``"closed"``, ``"waiting"`` (open, nothing yet), ``"streaming"``, ``"gap"``
            (nothing for longer than the gap timeout) or ``"ended"`` (a file ran out).
        frames: Frames delivered (with or without a face).
        frames_per_s: Frames per second over the last second.
        no_face: Frames in which no face was found.
        rejected: Input that was not a usable frame (a packet of another version, ...).
        strangers: Frames from another sender than the one being recorded, ignored.
        gaps: Times the stream stopped for longer than the gap timeout.
        dropped: Frames lost because the reader fell behind.
        last_error: The latest problem, one line ("" when none).
    """

    state: str = "closed"
    frames: int = 0
    frames_per_s: float = 0.0
    no_face: int = 0
    rejected: int = 0
    strangers: int = 0
    gaps: int = 0
    dropped: int = 0
    last_error: str = ""


class TruthSource(ABC):
    """A stream of :class:`TruthFrame` s; open it, read until done, close it.

    Subclasses set :attr:`kind` and :attr:`measured`. ``read`` is called from one thread;
    ``stats`` may be called from any.

    Attributes:
        kind: Short type name (``"livelink"``, ``"mediapipe"``).
        measured: ``(52,)`` bool, which ARKit channels the source really measures (MediaPipe
            has no ``tongueOut``; its weight is always 0 and must not be trained on).
        latency_s: Known delay between the face moving and ``source_time_s`` (a camera's
            exposure-to-timestamp latency); subtracted when the clocks are mapped.
    """

    kind: str = "truth"
    measured: np.ndarray = np.ones(NUM_BLENDSHAPES, dtype=bool)
    latency_s: float = 0.0

    @property
    @abstractmethod
    def name(self) -> str:
        """What to call the source in messages and session metadata."""

    @property
    def live(self) -> bool:
        """Whether frames arrive in real time (their arrival times can be used for sync)."""
        return True

    @abstractmethod
    def open(self) -> TruthSource:
        """Start receiving; raise :class:`TruthError` with a one-line explanation on failure."""

    @abstractmethod
    def close(self) -> None:
        """Stop and release everything (idempotent)."""

    @abstractmethod
    def read(self, timeout_s: float | None = None) -> TruthFrame | None:
        """The next frame; None after ``timeout_s`` without one, or once a file has ended."""

    @abstractmethod
    def stats(self) -> TruthStats:
        """Current counters."""

    def metadata(self) -> dict[str, object]:
        """What to store about the source in a session (JSON-serialisable)."""
        return {"kind": self.kind, "name": self.name, "live": self.live,
                "latency_s": self.latency_s,
                "unmeasured": [int(i) for i in np.flatnonzero(~self.measured)]}

    def __enter__(self) -> TruthSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
