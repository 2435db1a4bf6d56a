"""Speech audio in: decoding files to 16 kHz mono and computing 60 Hz features for the face.

- :mod:`.io`: :func:`load_audio` / :func:`iter_audio` decode WAV natively and every other
  format (FLAC, MP3, OGG/Opus, M4A/AAC, the sound of a .mov/.mp4) through ffmpeg, streaming,
  mixed to mono and resampled with :class:`Resampler`.
- :mod:`.features`: log-mel / MFCC / delta features on the face's frame clock, offline
  (:func:`compute_features`) or live (:class:`FeatureStream`).
- :mod:`.espeak`: speech synthesis with phoneme timings through libespeak-ng (ctypes; imported
  on its own, it needs the system library).
- :mod:`.visemes`: phoneme timelines to mouth animation (a viseme model with coarticulation).

Only numpy is needed at import; ffmpeg is looked up when a non-WAV file is opened.
"""

from __future__ import annotations

from .features import FeatureConfig, FeatureStream, compute_features, frame_centres, frame_count
from .io import AudioClip, AudioError, AudioReader, AudioWarning, Resampler, iter_audio, load_audio

__all__ = [
    "AudioClip",
    "AudioError",
    "AudioReader",
    "AudioWarning",
    "FeatureConfig",
    "FeatureStream",
    "Resampler",
    "compute_features",
    "frame_centres",
    "frame_count",
    "iter_audio",
    "load_audio",
]
