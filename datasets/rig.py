"""A face rig: a neutral mesh and the 52 ARKit blendshape targets as vertex offsets.

Every rig source (the built-in generated head, a glTF/GLB avatar, a folder of OBJ targets)
becomes a :class:`Rig` in one convention, the head frame of ARKit's face anchor: metres,
+x toward the face's own left, +y up, +z out of the face (toward a camera looking at it),
origin near the centre of the head. Targets are in ARKit order; a source that lacks some has
them as zero offsets and says which in :attr:`Rig.missing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES


@dataclass(frozen=True, eq=False)
class Rig:
    """A mesh with ARKit-52 blendshape targets.

    Attributes:
        neutral: Rest positions, ``(V, 3)`` float32, metres, head frame (see module doc).
        faces: Triangles, ``(F, 3)`` int32 vertex indices, counter-clockwise seen from outside.
        deltas: Offset of every vertex at weight 1 of each blendshape, ``(52, V, 3)`` float32,
            in ARKit order (:data:`imucap.vocab.ARKIT_NAMES`).
        present: Which of the 52 targets the source defined, ``(52,)`` bool.
        name: Where the rig came from, for messages.
        vertex_labels: Optional per-vertex region labels (``(V,)`` str), for rigs that have them.
    """

    neutral: np.ndarray
    faces: np.ndarray
    deltas: np.ndarray
    present: np.ndarray
    name: str = "rig"
    vertex_labels: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        v = self.neutral.shape[0]
        if self.neutral.shape != (v, 3):
            raise ValueError(f"neutral must be (V, 3), got {self.neutral.shape}")
        if self.deltas.shape != (NUM_BLENDSHAPES, v, 3):
            raise ValueError(f"deltas must be (52, {v}, 3), got {self.deltas.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {self.faces.shape}")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= v):
            raise ValueError("faces index vertices that do not exist")
        if self.present.shape != (NUM_BLENDSHAPES,):
            raise ValueError(f"present must be (52,), got {self.present.shape}")

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def missing(self) -> tuple[str, ...]:
        """ARKit names the source did not define (their offsets are zero)."""
        return tuple(n for n, ok in zip(ARKIT_NAMES, self.present, strict=True) if not ok)

    def blend(self, weights: np.ndarray) -> np.ndarray:
        """Vertex positions for blendshape weights ``(..., 52)`` → ``(..., V, 3)`` float32.

        One matrix product: ``neutral + weights @ deltas``.
        """
        w = np.asarray(weights, dtype=np.float32)
        if w.shape[-1] != NUM_BLENDSHAPES:
            raise ValueError(f"expected 52 blendshape weights in the last axis, got {w.shape}")
        flat = self.deltas.reshape(NUM_BLENDSHAPES, -1)
        out = w.reshape(-1, NUM_BLENDSHAPES) @ flat
        return (out.reshape(*w.shape[:-1], self.n_vertices, 3) + self.neutral).astype(np.float32)

    def vertex_normals(self, vertices: np.ndarray | None = None) -> np.ndarray:
        """Unit vertex normals (area-weighted face normals) of ``vertices`` ``(V, 3)``, or the
        neutral's."""
        v = np.asarray(self.neutral if vertices is None else vertices, dtype=np.float64)
        tri = v[self.faces]
        face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals = np.zeros_like(v)
        for k in range(3):
            np.add.at(normals, self.faces[:, k], face_normals)
        norm = np.linalg.norm(normals, axis=-1, keepdims=True)
        return normals / np.where(norm > 0, norm, 1.0)
