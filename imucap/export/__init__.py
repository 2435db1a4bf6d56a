"""Face tracks to files that animation and analysis tools open.

A :class:`FaceTrack` (the face over time: 52 ARKit weights per frame, AUs, confidence, frame
rate) comes from :func:`imucap.inference.offline.infer_session` (a model run over a recorded or
simulated session) or from a blendshape take (:func:`read_track`), and :func:`write_track`
writes it as:

* a Live Link Face CSV (``.csv``): :func:`write_livelink_csv` / :func:`read_livelink_csv`;
* an OpenFace-style AU CSV (``.au.csv``): :func:`write_openface_csv` / :func:`read_openface_csv`;
* imucap's face-track JSON (``.json``): :func:`write_json_track` / :func:`read_json_track`;
* the rig animated by the track as glTF (``.glb``/``.gltf``): :func:`write_gltf_animation` /
  :func:`read_gltf_track`.

:class:`FaceTrack` is defined in :mod:`imucap.inference.offline`, where tracks are made (a room
never imports one to its right), and is re-exported here.

Errors a user can cause (missing or read-only folder, unknown extension) raise
:class:`ExportError` with one line. ``imucap convert`` is the command line for all of this.

Example:
    >>> from imucap.export import read_track, write_track  # doctest: +SKIP
    >>> track = read_track("take.csv")                       # doctest: +SKIP
    >>> write_track("take.glb", track)                       # doctest: +SKIP
"""

from imucap.inference.offline import FaceTrack

from .au_csv import OpenFaceAus, openface_header, read_openface_csv, write_openface_csv
from .base import ExportError, check_output_path
from .files import FORMATS, output_format, read_track, write_track
from .gltf_anim import glb_document, read_gltf_track, write_gltf_animation
from .json_out import read_json_track, track_to_json, write_json_track
from .livelink_csv import read_livelink_csv, write_livelink_csv

__all__ = [
    "FORMATS",
    "ExportError",
    "FaceTrack",
    "OpenFaceAus",
    "check_output_path",
    "glb_document",
    "openface_header",
    "output_format",
    "read_gltf_track",
    "read_json_track",
    "read_livelink_csv",
    "read_openface_csv",
    "read_track",
    "track_to_json",
    "write_gltf_animation",
    "write_json_track",
    "write_livelink_csv",
    "write_openface_csv",
    "write_track",
]
