"""Visual truth recorded beside the IMUs: an iPhone's Live Link Face stream, or MediaPipe's
Face Landmarker on a webcam or a video file. :func:`open_truth` turns a ``--truth`` URI into a
:class:`TruthSource`:

- ``livelink://[HOST][:PORT]``: Live Link Face packets (listens on loopback unless HOST is
  given; ``livelink://0.0.0.0:11111`` hears a phone on the network);
- ``mediapipe:webcam:INDEX``: a camera, through MediaPipe (needs ``--model-asset``);
- ``mediapipe:file:PATH``: a video file, played at its frame rate as if it were a camera.
"""

from __future__ import annotations

from pathlib import Path

from .base import TruthError, TruthFrame, TruthSource, TruthStats

__all__ = ["TruthError", "TruthFrame", "TruthSource", "TruthStats", "open_truth"]


def open_truth(uri: str, *, model_asset: str | Path | None = None,
               camera_latency_s: float | None = None) -> TruthSource:
    """Build (not open) the truth source a URI names.

    Raises:
        TruthError: A URI that is not understood, or MediaPipe without a model asset.
    """
    if uri.startswith("livelink:"):
        from .livelink import LiveLinkTruth, parse_livelink_uri

        host, port = parse_livelink_uri(uri)
        return LiveLinkTruth(host, port)
    if uri.startswith("mediapipe:"):
        kind, _, target = uri[len("mediapipe:"):].partition(":")
        if kind not in ("webcam", "file") or not target:
            raise TruthError(f"--truth {uri}: expected mediapipe:webcam:INDEX or "
                             f"mediapipe:file:PATH")
        if model_asset is None:
            raise TruthError("MediaPipe needs its Face Landmarker model: download "
                             "face_landmarker.task (https://storage.googleapis.com/"
                             "mediapipe-models/face_landmarker/face_landmarker/float16/1/"
                             "face_landmarker.task) and pass --model-asset PATH")
        from .mediapipe import MediaPipeTruth

        if kind == "webcam":
            try:
                source: int | Path = int(target)
            except ValueError:
                raise TruthError(f"--truth {uri}: the webcam index must be a number, such as "
                                 f"mediapipe:webcam:0") from None
        else:
            source = Path(target)
        return MediaPipeTruth(source, model_asset_path=model_asset, paced=True,
                              latency_s=camera_latency_s)
    raise TruthError(f"--truth {uri}: use livelink://[HOST][:PORT], mediapipe:webcam:INDEX or "
                     f"mediapipe:file:PATH")
