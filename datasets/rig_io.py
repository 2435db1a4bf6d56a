"""Read face rigs from OBJ folders, zips of them and glTF 2.0 files; write rigs as GLB.

Three sources become one :class:`~imucap.datasets.rig.Rig`:

* a folder of OBJ files: ``Neutral.obj`` (any case) and one OBJ per blendshape named after it
  (``eyeBlinkLeft.obj``, ``eyeBlink_L.obj``, ``EyeBlinkLeft.obj``, ...), all with the neutral's
  vertices in the same order; the neutral's faces are the rig's faces. The neutral may also sit
  one or more folders down, as it does when a folder is zipped with its parent;
* a ``.zip`` of such a folder, unpacked into a temporary directory;
* a glTF 2.0 file, binary (``.glb``, or anything that starts with the GLB magic, such as VRM)
  or JSON (``.gltf`` with base64 data URIs or relative ``.bin`` files). The mesh whose morph
  target names match the most ARKit blendshapes is used; names come from
  ``mesh.extras.targetNames`` or else ``primitives[0].extras.targetNames``.

Coordinates are taken as stored: OBJ values unscaled, glTF vertices in mesh-local coordinates
(node transforms are not applied; the report says when they would have mattered). A rig built
for ARKit is already in metres in ARKit's head frame; anything else may need converting by the
caller. Names go through :func:`imucap.vocab.canonical_name`; targets that name no blendshape
are ignored and listed in the :class:`RigReport`, blendshapes that no target supplies get zero
offsets and ``present=False``.

:func:`save_glb` writes a minimal GLB: one mesh, its triangles and all 52 morph targets in ARKit
order, named in ``mesh.extras.targetNames``. Blendshapes the rig lacks are written as targets
without data (zeros) and listed in ``mesh.extras.imucap.missing``, which :func:`load_rig` honours
so that presence survives a round trip.

Example:
    >>> loaded = load_rig_with_report("arkit_reference_blendshapes.zip")  # doctest: +SKIP
    >>> loaded.report.summary()  # doctest: +SKIP
    'rig arkit_reference_blendshapes.zip: 51 of 52 blendshapes; lacks tongueOut'
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, unquote_to_bytes

import numpy as np

from imucap.datasets.rig import Rig
from imucap.errors import ImucapError
from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES, UnknownBlendshapeError, canonical_name

__all__ = ["LoadedRig", "RigError", "RigReport", "load_rig", "load_rig_with_report", "save_glb"]

ACCEPTED_FORMS = (
    "a folder holding Neutral.obj and one OBJ file per blendshape, a .zip of such a folder, "
    "or a .glb/.gltf file"
)

_INDEX = {name: i for i, name in enumerate(ARKIT_NAMES)}

# glTF constants (glTF 2.0 specification, sections 3.6.2 and 4.4).
_GLB_MAGIC = b"glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_COMPONENT_DTYPES: dict[int, str] = {
    5120: "<i1",
    5121: "<u1",
    5122: "<i2",
    5123: "<u2",
    5125: "<u4",
    5126: "<f4",
}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_INDEX_COMPONENTS = (5121, 5123, 5125)
_POINTS, _LINES, _LINE_LOOP, _LINE_STRIP, _TRIANGLES, _TRIANGLE_STRIP, _TRIANGLE_FAN = range(7)
# Extensions that change how vertex data is stored; a file that requires one cannot be read here.
_GEOMETRY_EXTENSIONS = (
    "KHR_draco_mesh_compression",
    "EXT_meshopt_compression",
    "KHR_mesh_quantization",
)


class RigError(ImucapError):
    """A rig file or folder could not be read, or it holds no usable blendshape targets."""


@dataclass(frozen=True)
class RigReport:
    """What loading a rig found besides the rig itself, for messages.

    Attributes:
        source: The path as the caller gave it.
        kind: ``"obj folder"``, ``"obj zip"``, ``"glb"`` or ``"gltf"``.
        missing: ARKit names that no target supplied (zero offsets, ``present=False``).
        ignored: Targets that name no blendshape, as the source spells them (OBJ file names,
            glTF target names).
        notes: Anything else worth telling a user (which glTF mesh was used, what was skipped).
    """

    source: str
    kind: str
    missing: tuple[str, ...]
    ignored: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def n_present(self) -> int:
        """How many of the 52 blendshapes the rig has."""
        return NUM_BLENDSHAPES - len(self.missing)

    def summary(self) -> str:
        """One line: how many blendshapes, which are missing, which targets were ignored."""
        parts = [f"rig {self.source}: {self.n_present} of {NUM_BLENDSHAPES} blendshapes"]
        if self.missing:
            parts.append("lacks " + ", ".join(self.missing))
        if self.ignored:
            parts.append("ignored targets: " + ", ".join(self.ignored))
        return "; ".join(parts)


class LoadedRig(NamedTuple):
    """Result of :func:`load_rig_with_report`."""

    rig: Rig
    """The rig, targets in ARKit order."""
    report: RigReport
    """Missing blendshapes, ignored targets and notes."""


# --- entry points -----------------------------------------------------------------------------


def load_rig(path: str | os.PathLike[str], *, mesh: int | str | None = None) -> Rig:
    """Loads a rig from an OBJ folder, a zip of one, or a glTF 2.0 file.

    See the module docstring for the accepted layouts and conventions;
    :func:`load_rig_with_report` also returns what was missing or ignored.

    Args:
        path: A folder, ``.zip``, ``.glb`` or ``.gltf`` path.
        mesh: glTF only: the mesh to use, by index or name. Default: the mesh whose morph
            target names match the most ARKit blendshapes.

    Returns:
        The rig; its ``name`` is ``path`` as given.

    Raises:
        RigError: If the path is none of the accepted forms, cannot be read, or holds no
            target named after an ARKit blendshape.
    """
    return load_rig_with_report(path, mesh=mesh).rig


def load_rig_with_report(
    path: str | os.PathLike[str], *, mesh: int | str | None = None
) -> LoadedRig:
    """Loads a rig like :func:`load_rig` and reports what the source lacked or had extra.

    Args:
        path: A folder, ``.zip``, ``.glb`` or ``.gltf`` path.
        mesh: glTF only: the mesh to use, by index or name.

    Returns:
        A :class:`LoadedRig` ``(rig, report)``; ``report.summary()`` is a line for a CLI.

    Raises:
        RigError: If the path is none of the accepted forms, cannot be read, or holds no
            target named after an ARKit blendshape.
    """
    source = os.fspath(path)
    p = Path(source)
    if p.is_dir():
        _no_mesh_option(mesh, source)
        return _load_obj_folder(p, source=source, kind="obj folder", label=str)
    if not p.is_file():
        raise RigError(f"{source} does not exist; expected {ACCEPTED_FORMS}")
    suffix = p.suffix.lower()
    try:
        with p.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise RigError(f"cannot read {source}: {exc.strerror or exc}") from exc
    if head == _GLB_MAGIC or suffix in (".glb", ".vrm"):
        return _load_gltf(p, source=source, binary=True, mesh=mesh)
    if suffix == ".gltf":
        return _load_gltf(p, source=source, binary=False, mesh=mesh)
    if suffix == ".zip":
        _no_mesh_option(mesh, source)
        return _load_obj_zip(p, source=source)
    if suffix == ".obj":
        raise RigError(
            f"{source} is a single OBJ file; pass the folder that holds Neutral.obj and the "
            "blendshape OBJ files (or a .zip of it)"
        )
    raise RigError(f"{source} is not a rig; expected {ACCEPTED_FORMS}")


def _no_mesh_option(mesh: int | str | None, source: str) -> None:
    if mesh is not None:
        raise RigError(f"mesh= picks a mesh in a glTF file, but {source} is an OBJ rig")


# --- shared assembly --------------------------------------------------------------------------


def _list_some(items: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def _map_names(
    names: Sequence[str], *, source: str, what: str
) -> tuple[dict[int, int], tuple[str, ...]]:
    """Source position -> ARKit index for names that spell a blendshape, and the others.

    Raises:
        RigError: If two names spell the same blendshape, or none spells one.
    """
    mapping: dict[int, int] = {}
    first: dict[int, str] = {}
    ignored: list[str] = []
    for pos, raw in enumerate(names):
        try:
            k = _INDEX[canonical_name(raw)]
        except UnknownBlendshapeError:
            ignored.append(raw)
            continue
        if k in first:
            raise RigError(
                f"{what} {first[k]!r} and {raw!r} in {source} both name blendshape "
                f"{ARKIT_NAMES[k]!r}; remove or rename one"
            )
        first[k] = raw
        mapping[pos] = k
    if not mapping:
        found = _list_some(list(names)) if names else "none"
        raise RigError(
            f"no {what} in {source} is named after an ARKit blendshape (found: {found}); "
            "name targets like eyeBlinkLeft, eyeBlink_L or EyeBlinkLeft"
        )
    return mapping, tuple(ignored)


def _check_geometry(neutral: np.ndarray, faces: np.ndarray, source: str) -> None:
    if neutral.shape[0] == 0:
        raise RigError(f"{source} has no vertices")
    if not np.isfinite(neutral).all():
        raise RigError(f"{source} has vertex positions that are not finite numbers")
    if faces.size and (faces.min() < 0 or faces.max() >= neutral.shape[0]):
        raise RigError(f"{source} has faces that refer to vertices it does not have")


def _finish(
    *,
    source: str,
    kind: str,
    neutral: np.ndarray,
    faces: np.ndarray,
    deltas: np.ndarray,
    present: np.ndarray,
    ignored: tuple[str, ...],
    notes: Sequence[str] = (),
) -> LoadedRig:
    if not np.isfinite(deltas).all():
        raise RigError(f"{source} has blendshape offsets that are not finite numbers")
    rig = Rig(
        neutral=np.ascontiguousarray(neutral, dtype=np.float32),
        faces=np.ascontiguousarray(faces, dtype=np.int32).reshape(-1, 3),
        deltas=np.ascontiguousarray(deltas, dtype=np.float32),
        present=present.astype(bool),
        name=source,
    )
    report = RigReport(
        source=source, kind=kind, missing=rig.missing, ignored=ignored, notes=tuple(notes)
    )
    return LoadedRig(rig, report)


# --- OBJ --------------------------------------------------------------------------------------


class _Obj(NamedTuple):
    vertices: np.ndarray  # (V, 3) float64, as written
    faces: np.ndarray  # (F, 3) int32, zero-based, polygons fanned into triangles


def _read_obj(path: Path, *, label: str, with_faces: bool) -> _Obj:
    """Reads ``v`` and (optionally) ``f`` lines of a Wavefront OBJ file."""
    vertices: list[tuple[float, float, float]] = []
    faces: list[tuple[int, int, int]] = []
    try:
        fh = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise RigError(f"cannot read {label}: {exc.strerror or exc}") from exc
    with fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            tag = parts[0]
            if tag == "v":
                try:
                    x, y, z = (float(s) for s in parts[1:4])
                except ValueError:
                    raise RigError(
                        f"{label} line {lineno}: a vertex needs three numbers, got {line.strip()!r}"
                    ) from None
                vertices.append((x, y, z))
            elif tag == "f" and with_faces:
                n_so_far = len(vertices)
                try:
                    idx = [int(tok.split("/", 1)[0]) for tok in parts[1:]]
                except ValueError:
                    raise RigError(
                        f"{label} line {lineno}: cannot read face {line.strip()!r}"
                    ) from None
                if len(idx) < 3 or 0 in idx:
                    raise RigError(
                        f"{label} line {lineno}: a face needs three or more vertex numbers "
                        f"counted from 1, got {line.strip()!r}"
                    )
                idx = [i - 1 if i > 0 else n_so_far + i for i in idx]
                faces.extend((idx[0], idx[j], idx[j + 1]) for j in range(1, len(idx) - 1))
    verts = np.array(vertices, dtype=np.float64).reshape(-1, 3)
    tris = np.array(faces, dtype=np.int64).reshape(-1, 3)
    if tris.size and (tris.min() < 0 or tris.max() >= len(verts)):
        raise RigError(f"{label} has faces that refer to vertices it does not have")
    return _Obj(verts, tris.astype(np.int32))


def _is_junk(rel: Path) -> bool:
    """Hidden files and the ``__MACOSX``/``._name`` litter of zips made on macOS."""
    return any(part == "__MACOSX" or part.startswith(".") for part in rel.parts)


def _obj_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() == ".obj" and p.is_file() and not _is_junk(Path(p.name))
    )


def _find_neutral(folder: Path, *, source: str, label: Callable[[Path], str]) -> Path:
    def neutral_in(paths: Sequence[Path]) -> list[Path]:
        return [p for p in paths if p.stem.lower() == "neutral"]

    found = neutral_in(_obj_files(folder))
    if not found:
        deeper = sorted(
            p
            for p in folder.rglob("*")
            if p.suffix.lower() == ".obj" and p.is_file() and not _is_junk(p.relative_to(folder))
        )
        found = neutral_in(deeper)
    if len(found) > 1:
        names = ", ".join(label(p) for p in found)
        raise RigError(f"{source} holds more than one neutral mesh ({names}); keep one")
    if not found:
        raise RigError(
            f"{source} has no Neutral.obj; an OBJ rig is a folder holding Neutral.obj and one "
            "OBJ file per blendshape, named like eyeBlinkLeft.obj"
        )
    return found[0]


def _load_obj_folder(
    folder: Path, *, source: str, kind: str, label: Callable[[Path], str]
) -> LoadedRig:
    neutral_path = _find_neutral(folder, source=source, label=label)
    base = _read_obj(neutral_path, label=label(neutral_path), with_faces=True)
    _check_geometry(base.vertices, base.faces, label(neutral_path))
    if base.faces.size == 0:
        raise RigError(f"{label(neutral_path)} has no faces ('f' lines)")
    targets = [p for p in _obj_files(neutral_path.parent) if p != neutral_path]
    mapping, _ = _map_names([p.stem for p in targets], source=source, what="OBJ file")
    ignored_files = tuple(p.name for i, p in enumerate(targets) if i not in mapping)
    n = len(base.vertices)
    deltas = np.zeros((NUM_BLENDSHAPES, n, 3), dtype=np.float32)
    present = np.zeros(NUM_BLENDSHAPES, dtype=bool)
    for pos, k in mapping.items():
        target = _read_obj(targets[pos], label=label(targets[pos]), with_faces=False)
        if len(target.vertices) != n:
            raise RigError(
                f"{label(targets[pos])} has {len(target.vertices)} vertices but "
                f"{neutral_path.name} has {n}; every blendshape OBJ must have the neutral's "
                "vertices in the same order"
            )
        deltas[k] = target.vertices - base.vertices
        present[k] = True
    return _finish(
        source=source,
        kind=kind,
        neutral=base.vertices,
        faces=base.faces,
        deltas=deltas,
        present=present,
        ignored=ignored_files,
    )


def _load_obj_zip(path: Path, *, source: str) -> LoadedRig:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RigError(f"{source} is not a readable zip file ({exc})") from exc
    with archive, tempfile.TemporaryDirectory(prefix="imucap-rig-") as tmp:
        members = [
            m
            for m in archive.infolist()
            if not m.is_dir()
            and m.filename.lower().endswith(".obj")
            and not _is_junk(Path(m.filename))
        ]
        if not members:
            raise RigError(
                f"{source} holds no OBJ files; expected Neutral.obj and one OBJ file per blendshape"
            )
        try:
            for member in members:
                archive.extract(member, tmp)  # extract() strips absolute and '..' parts
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error) as exc:
            raise RigError(f"cannot unpack {source}: {exc}") from exc
        root = Path(tmp)

        def label(p: Path) -> str:
            return f"{p.relative_to(root).as_posix()} in {source}"

        return _load_obj_folder(root, source=source, kind="obj zip", label=label)


# --- glTF -------------------------------------------------------------------------------------


def _parse_glb(data: bytes, source: str) -> tuple[Any, bytes | None]:
    """Splits a GLB container into its JSON document and its BIN chunk (glTF 2.0, 4.4)."""
    if len(data) < 12:
        raise RigError(f"{source} is truncated: {len(data)} bytes, a GLB header alone is 12")
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if magic != _GLB_MAGIC:
        raise RigError(f"{source} is not a GLB file (it does not start with 'glTF')")
    if version != 2:
        raise RigError(f"{source} is GLB version {version}; imucap reads glTF 2.0")
    if length > len(data):
        raise RigError(
            f"{source} is truncated: its header says {length} bytes, the file has {len(data)}"
        )
    doc_bytes: bytes | None = None
    bin_chunk: bytes | None = None
    pos = 12
    while pos + 8 <= length:
        chunk_length, chunk_type = struct.unpack_from("<II", data, pos)
        start, end = pos + 8, pos + 8 + chunk_length
        if end > length:
            raise RigError(f"{source} is truncated: a chunk runs past the end of the file")
        if doc_bytes is None:
            if chunk_type != _CHUNK_JSON:
                raise RigError(f"{source} is not a valid GLB file: its first chunk is not JSON")
            doc_bytes = data[start:end]
        elif chunk_type == _CHUNK_BIN and bin_chunk is None:
            bin_chunk = data[start:end]
        pos = end
    if doc_bytes is None:
        raise RigError(f"{source} is truncated: it has no JSON chunk")
    return _parse_json(doc_bytes, source), bin_chunk


def _parse_json(text: bytes, source: str) -> Any:
    try:
        doc = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise RigError(f"{source} is not a glTF file: its JSON is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RigError(
            f"{source} is not a glTF file: invalid JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    if not isinstance(doc, dict):
        raise RigError(f"{source} is not a glTF file: its JSON is not an object")
    version = str(doc.get("asset", {}).get("version", "2.0"))
    if not version.startswith("2."):
        raise RigError(f"{source} is glTF {version}; imucap reads glTF 2.0")
    return doc


class _Gltf:
    """Buffers and accessors of one glTF document, read on demand."""

    def __init__(
        self, doc: dict[str, Any], *, source: str, base_dir: Path, glb_bin: bytes | None
    ) -> None:
        self.doc = doc
        self.source = source
        self.base_dir = base_dir
        self.glb_bin = glb_bin
        self._buffers: dict[int, bytes] = {}

    def item(self, kind: str, index: Any) -> dict[str, Any]:
        items = self.doc.get(kind, [])
        if not isinstance(index, int) or not 0 <= index < len(items):
            raise RigError(f"{self.source} refers to {kind}[{index}], which it does not have")
        return items[index]

    def buffer(self, index: int) -> bytes:
        if index in self._buffers:
            return self._buffers[index]
        buf = self.item("buffers", index)
        uri = buf.get("uri")
        where = f"buffer {index} of {self.source}"
        if uri is None:
            if self.glb_bin is None or index != 0:
                raise RigError(f"{where} has no data (no uri, and no GLB binary chunk)")
            data = self.glb_bin
        elif uri.startswith("data:"):
            header, comma, payload = uri.partition(",")
            if not comma:
                raise RigError(f"{where} has a data URI without a ',' before its data")
            try:
                if header.endswith(";base64"):
                    data = base64.b64decode(payload)
                else:
                    data = unquote_to_bytes(payload)
            except (binascii.Error, ValueError):
                raise RigError(f"{where} has a data URI that is not valid base64") from None
        elif "://" in uri:
            raise RigError(f"{where} is at {uri!r}; download it and refer to it by file name")
        else:
            file = self.base_dir / unquote(uri)
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise RigError(
                    f"{where} is the file {uri!r}, which cannot be read "
                    f"({exc.strerror or exc}); keep it beside the .gltf file"
                ) from exc
        declared = buf.get("byteLength", 0)
        if len(data) < declared:
            raise RigError(
                f"{where} has {len(data)} bytes but declares {declared}; the file is truncated"
            )
        self._buffers[index] = data
        return data

    def _view_array(
        self,
        view_index: Any,
        byte_offset: int,
        dtype: np.dtype[Any],
        ncomp: int,
        count: int,
        what: str,
        *,
        strided: bool,
    ) -> np.ndarray:
        view = self.item("bufferViews", view_index)
        data = self.buffer(view.get("buffer"))
        view_offset = int(view.get("byteOffset", 0))
        view_length = int(view["byteLength"])
        if view_offset + view_length > len(data):
            raise RigError(
                f"bufferViews[{view_index}] of {self.source} runs past the end of its buffer; "
                "the file is truncated or damaged"
            )
        element = dtype.itemsize * ncomp
        stride = int(view.get("byteStride") or element) if strided else element
        if count == 0:
            return np.zeros((0, ncomp), dtype=dtype)
        if stride < element or byte_offset + stride * (count - 1) + element > view_length:
            raise RigError(f"{what} of {self.source} reads past the end of its buffer view")
        return np.ndarray(
            (count, ncomp),
            dtype=dtype,
            buffer=data,
            offset=view_offset + byte_offset,
            strides=(stride, dtype.itemsize),
        ).copy()

    def accessor(self, index: Any, *, float_out: bool) -> np.ndarray:
        """Returns accessor data as ``(count, n)`` (``(count,)`` for SCALAR)."""
        acc = self.item("accessors", index)
        what = f"accessors[{index}]"
        component = acc.get("componentType")
        if component not in _COMPONENT_DTYPES or acc.get("type") not in _TYPE_SIZES:
            raise RigError(
                f"{what} of {self.source} has component type {component} and type "
                f"{acc.get('type')!r}, which imucap does not read"
            )
        dtype = np.dtype(_COMPONENT_DTYPES[component])
        ncomp = _TYPE_SIZES[acc["type"]]
        count = int(acc["count"])
        if "bufferView" in acc:
            out = self._view_array(
                acc["bufferView"],
                int(acc.get("byteOffset", 0)),
                dtype,
                ncomp,
                count,
                what,
                strided=True,
            )
        else:  # glTF 2.0, 3.6.2.1: an accessor without a buffer view holds zeros
            out = np.zeros((count, ncomp), dtype=dtype)
        sparse = acc.get("sparse")
        if sparse:
            n = int(sparse["count"])
            idx_spec, val_spec = sparse["indices"], sparse["values"]
            if idx_spec.get("componentType") not in _INDEX_COMPONENTS:
                raise RigError(f"{what} of {self.source} has sparse indices of a bad type")
            rows = self._view_array(
                idx_spec["bufferView"],
                int(idx_spec.get("byteOffset", 0)),
                np.dtype(_COMPONENT_DTYPES[idx_spec["componentType"]]),
                1,
                n,
                what,
                strided=False,
            )[:, 0].astype(np.int64)
            values = self._view_array(
                val_spec["bufferView"],
                int(val_spec.get("byteOffset", 0)),
                dtype,
                ncomp,
                n,
                what,
                strided=False,
            )
            if rows.size and (rows.min() < 0 or rows.max() >= count):
                raise RigError(f"{what} of {self.source} has sparse indices out of range")
            out[rows] = values
        if float_out:
            out = self._to_float(out, normalized=bool(acc.get("normalized", False)))
        return out[:, 0] if ncomp == 1 else out

    @staticmethod
    def _to_float(values: np.ndarray, *, normalized: bool) -> np.ndarray:
        if values.dtype.kind == "f" or not normalized:
            return values.astype(np.float32)
        # glTF 2.0, 3.11: normalized integers map to [0, 1] or [-1, 1].
        scale = float(np.iinfo(values.dtype).max)
        return np.maximum(values.astype(np.float64) / scale, -1.0).astype(np.float32)


def _target_names(mesh: dict[str, Any]) -> list[str] | None:
    for holder in (mesh, *(mesh.get("primitives") or [{}])[:1]):
        names = (holder.get("extras") or {}).get("targetNames")
        if isinstance(names, list):
            return [str(n) for n in names]
    return None


def _n_targets(mesh: dict[str, Any]) -> int:
    primitives = mesh.get("primitives") or []
    return len(primitives[0].get("targets") or []) if primitives else 0


def _mesh_label(doc: dict[str, Any], index: int) -> str:
    name = doc["meshes"][index].get("name")
    return f"mesh {index} ({name!r})" if name else f"mesh {index}"


def _arkit_matches(names: Sequence[str] | None) -> int:
    count = 0
    for name in names or ():
        try:
            canonical_name(name)
        except UnknownBlendshapeError:
            continue
        count += 1
    return count


def _choose_mesh(doc: dict[str, Any], requested: int | str | None, source: str) -> int:
    meshes = doc.get("meshes") or []
    if requested is not None:
        if isinstance(requested, int):
            if not 0 <= requested < len(meshes):
                raise RigError(f"{source} has {len(meshes)} meshes; there is no mesh {requested}")
            return requested
        for i, m in enumerate(meshes):
            if m.get("name") == requested:
                return i
        known = _list_some([str(m.get("name")) for m in meshes])
        raise RigError(f"{source} has no mesh named {requested!r} (meshes: {known})")
    candidates = [i for i, m in enumerate(meshes) if _n_targets(m) > 0]
    if not candidates:
        raise RigError(
            f"{source} has no mesh with morph targets; a rig needs one target per blendshape, "
            "named in mesh.extras.targetNames"
        )
    # Most ARKit names first, then most targets; ties go to the earlier mesh.
    return max(
        candidates,
        key=lambda i: (_arkit_matches(_target_names(meshes[i])), _n_targets(meshes[i]), -i),
    )


def _is_identity_node(node: dict[str, Any]) -> bool:
    matrix = node.get("matrix")
    if matrix is not None and not np.allclose(np.reshape(matrix, -1), np.eye(4).reshape(-1)):
        return False
    return (
        np.allclose(node.get("translation", (0, 0, 0)), 0)
        and np.allclose(node.get("rotation", (0, 0, 0, 1)), (0, 0, 0, 1))
        and np.allclose(node.get("scale", (1, 1, 1)), 1)
    )


def _transform_note(doc: dict[str, Any], mesh_index: int) -> str | None:
    nodes = doc.get("nodes") or []
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}
    for i, node in enumerate(nodes):
        if node.get("mesh") != mesh_index:
            continue
        chain, j = [], i
        while j is not None and j not in chain:
            chain.append(j)
            j = parent.get(j)
        if not all(_is_identity_node(nodes[k]) for k in chain if 0 <= k < len(nodes)):
            return (
                "node transforms were not applied: the rig is in the mesh's own coordinates, "
                "which differ from where the scene places it"
            )
    return None


def _triangles(indices: np.ndarray, mode: int) -> np.ndarray:
    if mode == _TRIANGLES:
        whole = len(indices) - len(indices) % 3
        return indices[:whole].reshape(-1, 3)
    n = len(indices) - 2
    if n <= 0:
        return np.zeros((0, 3), dtype=np.int64)
    i = np.arange(n)
    if mode == _TRIANGLE_STRIP:  # glTF 2.0, 3.7.2.1: keep the winding of every triangle
        tris = np.stack([indices[i], indices[i + 1 + i % 2], indices[i + 2 - i % 2]], axis=1)
    else:  # _TRIANGLE_FAN
        tris = np.stack([indices[i + 1], indices[i + 2], np.full(n, indices[0])], axis=1)
    keep = (tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])
    return tris[keep]


def _load_gltf(path: Path, *, source: str, binary: bool, mesh: int | str | None) -> LoadedRig:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RigError(f"cannot read {source}: {exc.strerror or exc}") from exc
    if binary:
        doc, glb_bin = _parse_glb(data, source)
    else:
        doc, glb_bin = _parse_json(data, source), None
    gltf = _Gltf(doc, source=source, base_dir=path.parent, glb_bin=glb_bin)
    try:
        return _read_gltf_rig(gltf, mesh=mesh, kind="glb" if binary else "gltf")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise RigError(
            f"{source} is not a valid glTF 2.0 file ({type(exc).__name__}: {exc})"
        ) from exc


def _read_gltf_rig(gltf: _Gltf, *, mesh: int | str | None, kind: str) -> LoadedRig:
    doc, source = gltf.doc, gltf.source
    required = [e for e in doc.get("extensionsRequired", []) if e in _GEOMETRY_EXTENSIONS]
    if required:
        raise RigError(
            f"{source} stores its vertices with {', '.join(required)}, which imucap cannot "
            "read; export it again without mesh compression or quantization"
        )
    mesh_index = _choose_mesh(doc, mesh, source)
    mesh_doc = doc["meshes"][mesh_index]
    label = _mesh_label(doc, mesh_index)
    primitives = mesh_doc.get("primitives") or []
    n_targets = _n_targets(mesh_doc)
    if n_targets == 0:
        raise RigError(f"{label} of {source} has no morph targets")
    names = _target_names(mesh_doc)
    if names is None:
        raise RigError(
            f"{label} of {source} has {n_targets} morph targets but no names "
            "(mesh.extras.targetNames); imucap matches targets to blendshapes by name"
        )
    if len(names) != n_targets:
        raise RigError(
            f"{label} of {source} has {n_targets} morph targets but {len(names)} targetNames"
        )
    mapping, ignored = _map_names(names, source=source, what="morph target")
    notes = [f"used {label}"]

    positions: list[np.ndarray] = []
    target_deltas: list[dict[int, np.ndarray]] = []
    face_blocks: list[np.ndarray] = []
    offsets: dict[tuple[Any, ...], int] = {}
    total = 0
    for p_index, prim in enumerate(primitives):
        where = f"primitive {p_index} of {label} in {source}"
        targets = prim.get("targets") or []
        if len(targets) != n_targets:
            raise RigError(
                f"{where} has {len(targets)} morph targets, primitive 0 has {n_targets}; "
                "glTF requires the same number in every primitive"
            )
        attributes = prim.get("attributes") or {}
        if "POSITION" not in attributes:
            notes.append(f"skipped primitive {p_index}: it has no POSITION")
            continue
        # Primitives that share one vertex buffer (one per material) share their vertices.
        key = (attributes["POSITION"], *(t.get("POSITION") for t in targets))
        if key in offsets:
            offset = offsets[key]
            n = len(positions[list(offsets).index(key)])
        else:
            pos = gltf.accessor(attributes["POSITION"], float_out=True)
            if pos.ndim != 2 or pos.shape[1] != 3:
                raise RigError(f"{where}: POSITION is not a VEC3 accessor")
            n = len(pos)
            deltas_here: dict[int, np.ndarray] = {}
            for t_index, k in mapping.items():
                acc = targets[t_index].get("POSITION")
                if acc is None:
                    continue
                d = gltf.accessor(acc, float_out=True)
                if d.shape != (n, 3):
                    raise RigError(
                        f"{where}: morph target {names[t_index]!r} has {len(d)} positions, "
                        f"the primitive has {n}"
                    )
                deltas_here[k] = d
            offset = total
            offsets[key] = offset
            positions.append(pos)
            target_deltas.append(deltas_here)
            total += n
        mode = int(prim.get("mode", _TRIANGLES))
        if mode not in (_TRIANGLES, _TRIANGLE_STRIP, _TRIANGLE_FAN):
            notes.append(f"primitive {p_index} draws points or lines: its vertices have no faces")
            continue
        if "indices" in prim:
            acc = gltf.item("accessors", prim["indices"])
            if acc.get("componentType") not in _INDEX_COMPONENTS:
                raise RigError(f"{where}: indices must be unsigned byte, short or int")
            indices = gltf.accessor(prim["indices"], float_out=False).astype(np.int64)
        else:
            indices = np.arange(n, dtype=np.int64)
        if indices.size and indices.max() >= n:
            raise RigError(f"{where}: indices refer to vertices the primitive does not have")
        face_blocks.append(_triangles(indices, mode) + offset)

    if not positions:
        raise RigError(f"{label} of {source} has no primitive with vertex positions")
    neutral = np.concatenate(positions)
    faces = np.concatenate(face_blocks) if face_blocks else np.zeros((0, 3), dtype=np.int64)
    _check_geometry(neutral, faces, f"{label} of {source}")

    deltas = np.zeros((NUM_BLENDSHAPES, total, 3), dtype=np.float32)
    present = np.zeros(NUM_BLENDSHAPES, dtype=bool)
    present[list(mapping.values())] = True
    start = 0
    for pos, block in zip(positions, target_deltas, strict=True):
        for k, d in block.items():
            deltas[k, start : start + len(pos)] = d
        start += len(pos)

    # Our own writer lists the blendshapes it wrote as empty targets (see save_glb).
    ours = ((mesh_doc.get("extras") or {}).get("imucap") or {}).get("missing") or []
    for name in ours:
        try:
            present[_INDEX[canonical_name(str(name))]] = False
        except UnknownBlendshapeError:
            continue

    note = _transform_note(doc, mesh_index)
    if note:
        notes.append(note)
    return _finish(
        source=source,
        kind=kind,
        neutral=neutral,
        faces=faces,
        deltas=deltas,
        present=present,
        ignored=ignored,
        notes=notes,
    )


# --- GLB writer -------------------------------------------------------------------------------


def _pad(data: bytes | bytearray, fill: bytes) -> bytes:
    return bytes(data) + fill * (-len(data) % 4)


def save_glb(rig: Rig, path: str | os.PathLike[str]) -> Path:
    """Writes a rig as a minimal glTF 2.0 binary file.

    The file holds one node, one mesh with one triangle primitive (``POSITION`` and indices)
    and 52 morph targets in ARKit order, named in ``mesh.extras.targetNames``, with
    ``mesh.weights`` all zero. Blendshapes the rig lacks are written as targets without data
    (zeros, in no bytes) and listed in ``mesh.extras.imucap.missing``. Vertex labels are not
    written.

    Args:
        rig: The rig to write.
        path: Where to write; the folder must exist. Conventionally ends in ``.glb``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        RigError: If the rig has no vertices or the file cannot be written.
    """
    out = Path(path)
    n = rig.n_vertices
    if n == 0:
        raise RigError(f"rig {rig.name} has no vertices; there is nothing to write")
    binary = bytearray()
    views: list[dict[str, Any]] = []
    accessors: list[dict[str, Any]] = []

    def add_view(data: bytes, target: int) -> int:
        binary.extend(b"\x00" * (-len(binary) % 4))
        views.append(
            {"buffer": 0, "byteOffset": len(binary), "byteLength": len(data), "target": target}
        )
        binary.extend(data)
        return len(views) - 1

    def add_vec3(values: np.ndarray | None) -> int:
        acc: dict[str, Any] = {"componentType": 5126, "count": n, "type": "VEC3"}
        if values is None:
            acc["min"] = acc["max"] = [0.0, 0.0, 0.0]
        else:
            v = np.ascontiguousarray(values, dtype="<f4")
            acc["bufferView"] = add_view(v.tobytes(), _ARRAY_BUFFER)
            acc["min"] = [float(x) for x in v.min(axis=0)]
            acc["max"] = [float(x) for x in v.max(axis=0)]
        accessors.append(acc)
        return len(accessors) - 1

    primitive: dict[str, Any] = {"attributes": {"POSITION": add_vec3(rig.neutral)}}
    faces = np.asarray(rig.faces)
    if faces.size:
        # An index may not be the type's largest value (glTF 2.0, 3.7.2.1).
        index_type = (5123, "<u2") if n <= 0xFFFF else (5125, "<u4")
        flat = np.ascontiguousarray(faces.reshape(-1), dtype=index_type[1])
        accessors.append(
            {
                "bufferView": add_view(flat.tobytes(), _ELEMENT_ARRAY_BUFFER),
                "componentType": index_type[0],
                "count": int(flat.size),
                "type": "SCALAR",
            }
        )
        primitive["indices"] = len(accessors) - 1
        primitive["mode"] = _TRIANGLES
    else:
        primitive["mode"] = _POINTS
    primitive["targets"] = [
        {"POSITION": add_vec3(rig.deltas[k] if rig.present[k] else None)}
        for k in range(NUM_BLENDSHAPES)
    ]

    doc: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "imucap"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": rig.name}],
        "meshes": [
            {
                "name": rig.name,
                "primitives": [primitive],
                "weights": [0.0] * NUM_BLENDSHAPES,
                "extras": {
                    "targetNames": list(ARKIT_NAMES),
                    "imucap": {"missing": list(rig.missing)},
                },
            }
        ],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    json_chunk = _pad(json.dumps(doc, separators=(",", ":")).encode("utf-8"), b" ")
    bin_chunk = _pad(binary, b"\x00")
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    blob = b"".join(
        (
            struct.pack("<4sII", _GLB_MAGIC, 2, total),
            struct.pack("<II", len(json_chunk), _CHUNK_JSON),
            json_chunk,
            struct.pack("<II", len(bin_chunk), _CHUNK_BIN),
            bin_chunk,
        )
    )
    try:
        out.write_bytes(blob)
    except OSError as exc:
        raise RigError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out
