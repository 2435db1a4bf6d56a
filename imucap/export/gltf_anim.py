"""An animated glTF 2.0 face: the rig with ARKit-named morph targets, keyed by a face track.

Blender, Maya (with a glTF importer), Unity, Unreal, three.js and Babylon.js open it and play
the face. The file is the rig as :func:`imucap.datasets.rig_io.save_glb` writes it (one node,
one mesh with 52 morph targets in ARKit order named in ``mesh.extras.targetNames``, which
Blender turns into shape keys of those names) plus one animation:

* one channel targeting the mesh node's ``weights`` path;
* its sampler: ``input`` the keyframe times in seconds from the track's first frame (float
  ``SCALAR`` accessor with ``min``/``max``, as glTF 2.0 section 3.11 requires), ``output`` the
  weights, keyframes × 52 floats, ``LINEAR`` interpolation;
* ``animations[0].extras.imucap``: ``start_s`` (the first frame's time on the track's clock,
  which the keyframe times leave out), ``fps`` and ``source``.

``.glb`` is one binary file; ``.gltf`` is JSON with the buffer embedded as a base64 data URI,
so either way a single file travels. The rig's bytes come from ``save_glb`` itself; this module
only splits the GLB it writes, appends the animation data to its buffer and joins it again.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from imucap.datasets.rig import Rig
from imucap.datasets.rig_io import save_glb
from imucap.inference.offline import FaceTrack
from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES, UnknownBlendshapeError, index_of

from .base import ExportError, write_atomic

__all__ = ["ANIMATION_NAME", "glb_document", "read_gltf_track", "write_gltf_animation"]

ANIMATION_NAME = "face"

_MAGIC = b"glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_FLOAT = 5126
_DATA_URI = "data:application/octet-stream;base64,"


def _pad(data: bytes | bytearray, fill: bytes) -> bytes:
    return bytes(data) + fill * (-len(data) % 4)


def _split_glb(data: bytes, source: str) -> tuple[dict[str, Any], bytes]:
    """The JSON document and the BIN chunk of a GLB file (glTF 2.0, section 4.4)."""
    if len(data) < 20 or data[:4] != _MAGIC:
        raise ExportError(f"{source} is not a GLB file")
    _, version, length = struct.unpack_from("<4sII", data, 0)
    if version != 2 or length > len(data):
        raise ExportError(f"{source}: GLB version {version} or a truncated file")
    offset, doc, binary = 12, None, b""
    while offset + 8 <= length:
        size, kind = struct.unpack_from("<II", data, offset)
        chunk = data[offset + 8: offset + 8 + size]
        if kind == _CHUNK_JSON and doc is None:
            try:
                doc = json.loads(chunk.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise ExportError(f"{source}: its JSON chunk is damaged") from None
        elif kind == _CHUNK_BIN and not binary:
            binary = bytes(chunk)
        offset += 8 + size
    if not isinstance(doc, dict):
        raise ExportError(f"{source} has no glTF JSON chunk")
    return doc, binary


def _join_glb(doc: dict[str, Any], binary: bytes) -> bytes:
    json_chunk = _pad(json.dumps(doc, separators=(",", ":")).encode("utf-8"), b" ")
    bin_chunk = _pad(binary, b"\x00")
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return b"".join((struct.pack("<4sII", _MAGIC, 2, total),
                     struct.pack("<II", len(json_chunk), _CHUNK_JSON), json_chunk,
                     struct.pack("<II", len(bin_chunk), _CHUNK_BIN), bin_chunk))


def _rig_document(rig: Rig) -> tuple[dict[str, Any], bytearray]:
    with tempfile.TemporaryDirectory(prefix="imucap-rig-") as tmp:
        data = save_glb(rig, Path(tmp) / "rig.glb").read_bytes()
    doc, binary = _split_glb(data, f"the GLB of rig {rig.name}")
    return doc, bytearray(binary)


def _animated_node(doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    for i, node in enumerate(doc.get("nodes") or []):
        if "mesh" in node:
            return i, doc["meshes"][node["mesh"]]
    raise ExportError("the rig's glTF has no mesh node")  # save_glb always writes one


def _keyframes(track: FaceTrack) -> np.ndarray:
    keys = (track.times - track.times[0]).astype("<f4")
    if keys.size > 1 and np.any(np.diff(keys) <= 0):
        raise ExportError(f"{track.source or 'the track'}: frame times too close together "
                          f"to keep apart as 32-bit floats; resample the track")
    return keys


def _add_animation(doc: dict[str, Any], binary: bytearray, track: FaceTrack, name: str) -> None:
    node_index, mesh = _animated_node(doc)
    names = list((mesh.get("extras") or {}).get("targetNames") or ARKIT_NAMES)
    columns = [index_of(n) for n in names]
    keys = _keyframes(track)
    values = np.ascontiguousarray(np.nan_to_num(track.weights[:, columns]), dtype="<f4")
    views, accessors = doc.setdefault("bufferViews", []), doc.setdefault("accessors", [])

    def add(data: bytes, accessor: dict[str, Any]) -> int:
        binary.extend(b"\x00" * (-len(binary) % 4))
        views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(data)})
        binary.extend(data)
        accessors.append({"bufferView": len(views) - 1, "componentType": _FLOAT,
                          "type": "SCALAR", **accessor})
        return len(accessors) - 1

    times_acc = add(keys.tobytes(), {"count": int(keys.size), "min": [float(keys[0])],
                                     "max": [float(keys[-1])]})
    values_acc = add(values.tobytes(), {"count": int(values.size)})
    doc["buffers"] = [{"byteLength": len(binary)}]
    doc["animations"] = [{
        "name": name,
        "channels": [{"sampler": 0, "target": {"node": node_index, "path": "weights"}}],
        "samplers": [{"input": times_acc, "output": values_acc, "interpolation": "LINEAR"}],
        "extras": {"imucap": {"start_s": float(track.times[0]), "fps": track.fps,
                              "source": track.source}},
    }]


def glb_document(track: FaceTrack, *, rig: Rig | None = None,
                 name: str = ANIMATION_NAME) -> tuple[dict[str, Any], bytes]:
    """The glTF JSON document and binary buffer of the animated rig (not yet a file).

    Args:
        track: The face track to key.
        rig: The rig; None for the built-in head.
        name: The animation's name (Blender names the action after it).
    """
    if rig is None:
        from imucap.datasets.builtin_rig import builtin_rig

        rig = builtin_rig()
    doc, binary = _rig_document(rig)
    _add_animation(doc, binary, track, name)
    return doc, bytes(binary)


def write_gltf_animation(path: str | os.PathLike[str], track: FaceTrack, *,
                         rig: Rig | None = None, binary: bool | None = None,
                         name: str = ANIMATION_NAME) -> Path:
    """Write the rig animated by a track as ``.glb`` or ``.gltf`` (module doc: layout).

    Args:
        path: The file to write; its folder must exist.
        track: The face track.
        rig: The rig; None for the built-in head (:func:`imucap.datasets.builtin_rig.builtin_rig`).
        binary: GLB (True) or JSON with an embedded buffer (False); default from the suffix
            (``.gltf`` is JSON, anything else GLB).
        name: The animation's name.

    Raises:
        ExportError: The file cannot be written there.
        RigError: The rig cannot be written (no vertices).
    """
    out = Path(path)
    if binary is None:
        binary = out.suffix.lower() != ".gltf"
    doc, data = glb_document(track, rig=rig, name=name)
    if binary:
        blob = _join_glb(doc, data)
    else:
        padded = _pad(data, b"\x00")
        doc["buffers"] = [{"byteLength": len(padded),
                           "uri": _DATA_URI + base64.b64encode(padded).decode("ascii")}]
        blob = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    return write_atomic(out, lambda part: part.write_bytes(blob))


# --- reading back -----------------------------------------------------------------------------


def _load(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ExportError(f"{path} does not exist") from None
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data[:4] == _MAGIC:
        return _split_glb(data, str(path))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ExportError(f"{path} is neither GLB nor glTF JSON") from None
    buffers = doc.get("buffers") or [{}]
    uri = buffers[0].get("uri", "")
    if uri.startswith("data:"):
        try:
            binary = base64.b64decode(uri.split(",", 1)[1])
        except (IndexError, ValueError):
            raise ExportError(f"{path}: its embedded buffer is damaged") from None
    elif uri:
        try:
            binary = (path.parent / unquote(uri)).read_bytes()
        except OSError:
            raise ExportError(f"{path}: its buffer file {uri} cannot be read") from None
    else:
        binary = b""
    return doc, binary


def _floats(doc: dict[str, Any], binary: bytes, index: int, where: str) -> np.ndarray:
    acc = doc["accessors"][index]
    if acc.get("componentType") != _FLOAT or "bufferView" not in acc:
        raise ExportError(f"{where}: animation accessor {index} is not stored 32-bit floats")
    view = doc["bufferViews"][acc["bufferView"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[acc["type"]]
    count = int(acc["count"]) * width
    stride = view.get("byteStride")
    if stride not in (None, 4 * width):
        raise ExportError(f"{where}: interleaved animation data is not supported")
    start = int(view.get("byteOffset", 0)) + int(acc.get("byteOffset", 0))
    if start + 4 * count > len(binary):
        raise ExportError(f"{where}: accessor {index} runs past the end of its buffer")
    return np.frombuffer(binary, dtype="<f4", count=count, offset=start).astype(np.float64)


def read_gltf_track(path: str | os.PathLike[str], *, fps: float | None = None) -> FaceTrack:
    """Read the morph-weight animation of a glTF/GLB back as a track (ours, or any file whose
    animated mesh names its targets in ``extras.targetNames``).

    Args:
        path: A ``.glb`` or ``.gltf`` file.
        fps: The nominal frame rate; default the file's (ours), else from its keyframes.

    Raises:
        ExportError: No weights animation, unnamed targets, or damaged data.
    """
    path = Path(path)
    where = str(path)
    doc, binary = _load(path)
    try:
        for animation in doc.get("animations") or []:
            for channel in animation.get("channels") or []:
                target = channel.get("target") or {}
                if target.get("path") == "weights" and "node" in target:
                    return _track_of(doc, binary, animation, channel, fps, where)
    except (KeyError, IndexError, TypeError) as exc:
        raise ExportError(f"{where} is not a valid glTF 2.0 file ({type(exc).__name__}: "
                          f"{exc})") from None
    raise ExportError(f"{where} has no animation of morph target weights")


def _track_of(doc: dict[str, Any], binary: bytes, animation: dict[str, Any],
              channel: dict[str, Any], fps: float | None, where: str) -> FaceTrack:
    mesh = doc["meshes"][doc["nodes"][channel["target"]["node"]]["mesh"]]
    names = (mesh.get("extras") or {}).get("targetNames")
    if names is None:
        names = ((mesh["primitives"][0].get("extras") or {}).get("targetNames"))
    if not names:
        raise ExportError(f"{where}: the animated mesh does not name its morph targets "
                          f"(extras.targetNames)")
    sampler = animation["samplers"][channel["sampler"]]
    keys = _floats(doc, binary, sampler["input"], where)
    values = _floats(doc, binary, sampler["output"], where)
    per_key = len(names) * (3 if sampler.get("interpolation") == "CUBICSPLINE" else 1)
    if values.size != keys.size * per_key:
        raise ExportError(f"{where}: {values.size} weights for {keys.size} keyframes of "
                          f"{len(names)} targets")
    # CUBICSPLINE keys hold in-tangents, values, out-tangents: keep the values.
    values = values.reshape(keys.size, -1, len(names))
    values = values[:, 1] if values.shape[1] == 3 else values[:, 0]
    weights = np.zeros((keys.size, NUM_BLENDSHAPES), np.float32)
    for j, name in enumerate(names):
        try:
            weights[:, index_of(str(name))] = values[:, j]
        except UnknownBlendshapeError:
            continue
    extras = (animation.get("extras") or {}).get("imucap") or {}
    if fps is None:
        fps = float(extras.get("fps") or (1.0 / np.median(np.diff(keys)) if keys.size > 1
                                          else 60.0))
    return FaceTrack(times=keys + float(extras.get("start_s", 0.0)), weights=weights, fps=fps,
                     source=str(extras.get("source") or where))
