"""Face tracks to and from files, the format chosen by the file name.

==========  ===============  ===============================================================
format      extension        what opens it
==========  ===============  ===============================================================
livelink    ``.csv``         Live Link Face CSV (Unreal's importers, Blender add-ons, scripts)
au          ``.au.csv``      OpenFace-style Action Unit CSV (py-feat, FACS analyses)
json        ``.json``        imucap's small face-track JSON (scripts, web players)
glb         ``.glb``         the rig with ARKit morph targets, animated (Blender, Unity, ...)
gltf        ``.gltf``        the same as glTF JSON with the buffer embedded
==========  ===============  ===============================================================

A ``.csv`` is written as AUs with ``fmt="au"``. Video (``.mp4``) is rendered, not written
here: :mod:`imucap.viewers.render` (``imucap render``, or ``imucap convert … -o clip.mp4``).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from imucap.datasets.rig import Rig
from imucap.inference.offline import FaceTrack

from .au_csv import write_openface_csv
from .base import ExportError, check_output_path
from .gltf_anim import read_gltf_track, write_gltf_animation
from .json_out import is_track_json, read_json_track, write_json_track
from .livelink_csv import write_livelink_csv

__all__ = ["FORMATS", "VIDEO_SUFFIXES", "output_format", "read_track", "write_track"]

#: Format name → (extension, description).
FORMATS: dict[str, tuple[str, str]] = {
    "livelink": (".csv", "Live Link Face CSV"),
    "au": (".au.csv", "OpenFace-style Action Unit CSV"),
    "json": (".json", "imucap face-track JSON"),
    "glb": (".glb", "animated glTF binary with the rig"),
    "gltf": (".gltf", "animated glTF JSON with the rig"),
}
#: Extensions of video files, which are not written yet.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif")

_ACCEPTS = {"livelink": (".csv",), "au": (".csv",), "json": (".json",), "glb": (".glb",),
            "gltf": (".gltf",)}


def _video_error(path: Path) -> ExportError:
    if path.suffix.lower() == ".mp4":
        return ExportError(f"{path.name}: video is rendered, not written from a track: use "
                           f"imucap render INPUT -o {path.name} (imucap.viewers.render)")
    return ExportError(f"{path.name}: video is written as .mp4 (H.264): imucap render INPUT "
                       f"-o {path.stem}.mp4")


def output_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The format a file name asks for (module doc's table), or ``fmt`` checked against it.

    Raises:
        ExportError: A video or unknown extension, an unknown ``fmt``, or a ``fmt`` whose files
            have another extension.
    """
    p = Path(path)
    name, suffix = p.name.lower(), p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        raise _video_error(p)
    if fmt is not None:
        if fmt not in FORMATS:
            raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        if suffix not in _ACCEPTS[fmt]:
            raise ExportError(f"format {fmt} writes {' or '.join(_ACCEPTS[fmt])} files, not "
                              f"{p.name!r}")
        return fmt
    if name.endswith(".au.csv"):
        return "au"
    for key, (ext, _) in FORMATS.items():
        if suffix == ext:
            return key
    known = ", ".join(f"{ext} ({desc})" for ext, desc in
                      (FORMATS[k] for k in ("livelink", "au", "json", "glb", "gltf")))
    raise ExportError(f"cannot tell the format of {p.name!r} from its extension: use {known}")


def write_track(path: str | os.PathLike[str], track: FaceTrack, *, fmt: str | None = None,
                rig: Rig | None = None, fps: float | None = None) -> Path:
    """Write a track in the format its file name (or ``fmt``) asks for.

    Args:
        path: The file; its folder must exist.
        track: The face track.
        fmt: A name from :data:`FORMATS`; default from the extension.
        rig: glTF only: the rig to animate; None for the built-in head.
        fps: Live Link CSV only: the rate its timecodes count; default the track's.

    Raises:
        ExportError: Unknown or video extension, or the folder is missing or not writable.
    """
    kind = output_format(path, fmt)
    check_output_path(path)
    if kind == "livelink":
        return write_livelink_csv(path, track, fps=fps)
    if kind == "au":
        return write_openface_csv(path, track)
    if kind == "json":
        return write_json_track(path, track)
    return write_gltf_animation(path, track, rig=rig, binary=kind == "glb")


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [c.strip() for c in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def read_track(path: str | os.PathLike[str], *, fps: float = 60.0) -> FaceTrack:
    """Read a face track from a blendshape file, without a model.

    Reads a Live Link Face CSV, a blendshape CSV (a time column and named blendshape columns,
    as MediaPipe scripts write), imucap's face-track JSON, BEAT-style JSON, or a ``.glb`` /
    ``.gltf`` whose morph weights are animated (as :func:`write_track` writes them).

    Args:
        path: The file.
        fps: The frame rate Live Link timecodes count (the app's default is 60).

    Raises:
        ExportError: An AU CSV (AUs cannot be turned back into blendshapes), or a file of no
            known kind.
        TakeError: A take that cannot be read (bad columns, rows or timecodes).
    """
    from imucap.datasets.takes import read_livelink_csv, read_take

    p = Path(path)
    if not p.is_file():
        raise ExportError(f"{p} does not exist" if not p.exists() else f"{p} is not a file")
    suffix = p.suffix.lower()
    if suffix in (".glb", ".gltf"):
        return read_gltf_track(p)
    if suffix == ".json":
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ExportError(f"{p} is not JSON") from None
        if is_track_json(doc):
            return read_json_track(p)
        return FaceTrack.from_take(read_take(p))
    if suffix == ".csv":
        header = _csv_header(p)
        if "timestamp" in header and any(h.startswith("AU") for h in header):
            raise ExportError(f"{p} is an Action Unit CSV: AUs cannot be turned back into "
                              f"blendshapes; convert the take or session it was made from")
        if header and header[0].lower() == "timecode":
            return FaceTrack.from_take(read_livelink_csv(p, fps=fps), fps=fps)
        return FaceTrack.from_take(read_take(p))
    raise ExportError(f"cannot read {p.name!r} as a face track: use a Live Link Face or "
                      f"blendshape .csv, a face-track or BEAT .json, or an animated .glb/.gltf")
