"""Calibration steps run at the start of a recording; their results go into the session.

- **still**: head and face still for a few seconds. Each gyroscope's mean is its bias (removed
  when the session becomes a dataset); its spread says whether the wearer really kept still.
- **neutral**: a relaxed, neutral face. The truth's mean weights are the wearer's neutral (a
  face at rest rarely reads all zeros), and each sensor's mean acceleration gives its
  orientation against gravity at rest.
- **tap**: the wearer taps the chosen sensor (the chin) a few times: the event that the
  alignment looks for. The step only marks the moment; :mod:`imucap.sync.align` finds the taps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imucap.frames import ImuFrame
from imucap.truth.base import TruthFrame

CALIBRATION_METADATA = "imucap.calibration"
#: Gyroscope spread (°/s RMS, any sensor) above which a "still" period was not still.
STILL_GYRO_RMS_DPS = 3.0


def _stack(frames: list[ImuFrame]) -> tuple[np.ndarray, np.ndarray]:
    if not frames:
        raise ValueError("no IMU data arrived during the step")
    return (np.concatenate([f.accel for f in frames]).astype(np.float64),
            np.concatenate([f.gyro for f in frames]).astype(np.float64))


def still_step(frames: list[ImuFrame]) -> dict[str, Any]:
    """Gyroscope bias and noise from a still period.

    Returns:
        ``gyro_bias_rad_s`` (S, 3), ``gyro_rms_dps`` (S,) about the bias, ``accel_norm_mps2``
        (S,), ``samples``, and ``still``: whether every sensor's spread stayed under
        :data:`STILL_GYRO_RMS_DPS`.
    """
    accel, gyro = _stack(frames)
    bias = gyro.mean(axis=0)
    rms = np.degrees(np.sqrt(((gyro - bias) ** 2).sum(axis=-1).mean(axis=0)))
    return {"gyro_bias_rad_s": bias.round(7).tolist(), "gyro_rms_dps": rms.round(4).tolist(),
            "accel_norm_mps2": np.linalg.norm(accel, axis=-1).mean(axis=0).round(4).tolist(),
            "samples": int(gyro.shape[0]),
            "still": bool(np.all(rms < STILL_GYRO_RMS_DPS))}


def neutral_step(frames: list[ImuFrame], truth: list[TruthFrame]) -> dict[str, Any]:
    """The wearer's neutral face and each sensor's rest orientation against gravity.

    Returns:
        ``accel_mean_mps2`` (S, 3), ``gravity_dir`` (S, 3) unit vectors in each sensor's axes,
        ``blendshapes`` (52,) mean truth weights (None without truth frames with a face),
        ``truth_frames``.
    """
    accel, _ = _stack(frames)
    mean = accel.mean(axis=0)
    norm = np.linalg.norm(mean, axis=-1, keepdims=True)
    faces = [f.weights for f in truth if f.weights is not None]
    return {"accel_mean_mps2": mean.round(5).tolist(),
            "gravity_dir": (mean / np.maximum(norm, 1e-9)).round(6).tolist(),
            "blendshapes": np.mean(faces, axis=0).round(5).tolist() if faces else None,
            "truth_frames": len(faces)}
