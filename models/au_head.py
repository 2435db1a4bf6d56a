"""A learned AU head: ARKit blendshapes to OpenFace's 18 Action Units, trained on a lab's labels.

Why. :func:`imucap.vocab.au_intensities` (the *fixed mapping*) turns blendshape weights into
AU intensities with a hand-made table and a linear 0-5 ramp. A lab whose sessions were also
filmed has its own AU labels for the same moments (OpenFace's FeatureExtraction output on the
video, or human FACS coding written in OpenFace's CSV layout), and those labels differ from the
fixed mapping in two ways a table cannot follow: each AU has its own calibration (a coder's
"B" is not a blendshape weight of 0.4), and AUs depend on one another (a coder scores AU6 in a
smile but not when the cheek rises in disgust; AU7 narrowing is given to AU6 in a Duchenne
smile). This module learns a head from such labels and reports how it compares with the fixed
mapping on frames it did not train on.

Input. Per label frame, the 52 ARKit weights of the track at that instant and at ``context``
instants either side, ``context_step_s`` apart (default ±2 at 1/30 s: ±67 ms), plus the fixed
mapping's 18 intensities of the centre frame. The context makes the head tolerant of timing
differences between a video and its track: in the benchmark (``benchmarks/bench_au_head.py``),
with labels whose video started 0.1 s later than the offset said, held-out mean MAE was 0.12
with the context and 0.18 without (F1 0.75 and 0.64); with exact timing the two were equal.

Structure (:class:`AuHead`). The idea follows graph-based AU relation learning, in particular
the multi-dimensional edge features of ME-GraphAU (Luo et al., "Learning Multi-dimensional Edge
Feature-based AU Relation Graph for Facial Action Unit Recognition", IJCAI 2022); the layers
here are our own and much smaller:

1. A face encoder (a two-layer MLP) turns the input into a face vector ``g``: the whole face.
2. Each AU is a node. Its starting feature is its own projection of ``g``, plus a learned AU
   embedding, plus a learned vector scaled by the fixed mapping's intensity for that AU.
3. The relation module. For every ordered pair ``(i, j)`` it computes an ``edge_dim``-
   dimensional edge feature from node ``i``, node ``j`` *and* ``g`` (an MLP on the sum of three
   projections), so a relation depends on the expression: AU6 and AU12 may pull together in a
   smile while AU6 and AU9 do not in disgust. The edges are computed once per face and serve
   ``rounds`` rounds of message passing (default 2): each edge dimension gates (sigmoid) one
   slice of node ``j``'s message to ``i``; the gated messages and a projection of the edge
   features themselves are averaged over ``j != i`` and update node ``i`` through a residual
   MLP and a layer norm. ``rounds=0`` leaves the relation module out (the ablation the
   benchmark measures).
4. Per-AU heads read each node: an intensity *correction* and a presence logit.

What the parts bring, measured with ``benchmarks/bench_au_head.py`` (labels from the synthetic
coder of ``tests/test_au_head.py``: per-AU calibration curves and relation rules such as "AU6
only with a smile" and "AU7 not in a smile"; scored on 3 held-out faces; 2 CPU threads). With 6
training pairs (12,800 label frames) held-out mean MAE / F1 were 0.090 / 0.79 for this head,
0.095 / 0.79 without the relation module (``rounds=0``: nodes still from the whole face),
0.141 / 0.72 for a per-AU MLP that sees only its own AU's fixed-mapping value (AU7 F1 0.00:
it cannot know about the smile), and 0.187 / 0.62 for the fixed mapping; with 1 pair,
0.113 and 0.119 with and without the relation module. So relations between AUs matter a
great deal, and the graph adds a small but consistent gain (MAE, ICC) over a face encoder that
already sees every blendshape, at about 7 times the training cost. On 51,000 label frames
training took 21 s (4 epochs, about 7,000 frames/s) and reached MAE 0.085 / F1 0.80 (fixed
mapping 0.187 / 0.62).

Residual start. The intensity is ``fixed + correction`` and the presence logit is
``s_i * (fixed - 1) + correction`` (``s_i`` learned, 2 at the start), with the correction
layers initialised to zero. An untrained head therefore *is* the fixed mapping (presence at
FACS grade A, as :func:`imucap.vocab.au_presence`), and training learns departures from it:
with little data it stays near a sensible answer instead of starting from noise, and an AU
without labels keeps exactly the fixed mapping's intensity and presence (its readout weights
get no gradient and stay at zero).

Labels and loss. Labels are OpenFace-format AU CSVs (:func:`imucap.export.read_openface_csv`).
A column the file lacks (OpenFace never writes ``AU28_r``) masks that AU's target; rows with
``success`` 0 (OpenFace found no face) are skipped; label frames outside the track, or where the
track has no face (weights not finite or confidence 0), are dropped; when OpenFace tracked
several faces (``face_id``), the face seen in most rows is used. The loss is a masked Huber
loss (delta 1) on intensity plus a masked binary cross-entropy on presence, each positive
weighted by ``sqrt(negatives / positives)`` of its AU (at most 10) so rare AUs are not ignored.

Validation. Neighbouring video frames are near duplicates, so random frames would leak the
training set into the validation set. :func:`split_blocks` holds out whole contiguous blocks
of time (about 10 s, chosen at random with the seed, from all pairs) and drops a guard band
of training frames next to each held-out block. The head kept is the epoch with the lowest
validation loss.

Metrics (:func:`compare`), each per AU and averaged over the AUs where both have a value, for
the head and the fixed mapping side by side: intensity MAE; Pearson r; ICC(3,1), the
consistency form of the intraclass correlation (Shrout & Fleiss 1979) that AU-intensity
benchmarks on DISFA and BP4D/FERA report; presence F1 (the fixed mapping's presence is its
intensity thresholded at 1.0, grade A). An AU whose labels never vary has no r or ICC; one that
is never present and never predicted has no F1 (shown as "-").

Using a head. :meth:`TrainedAuHead.apply` puts the head's intensities into a
:class:`~imucap.inference.offline.FaceTrack` (``imucap convert ... --au-head DIR``), NaN where
the track has no face. A track carries intensities only, so the presence columns written from
it are those intensities thresholded at grade A (AU45 from blink detection), as for any
track, not the head's presence classifier; :meth:`TrainedAuHead.predict_track` gives both.

Files. A head is a folder with ``au_head.safetensors`` (weights; never pickle) and
``au_head.json`` (format, the config, AU names, input description, training summary and its
comparison report); :func:`load_au_head` checks everything and says what is wrong in one line.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import imucap
from imucap.errors import ImucapError
from imucap.inference.offline import FaceTrack
from imucap.vocab import ARKIT_NAMES, NUM_BLENDSHAPES
from imucap.vocab.aus import (
    AU_NAMES,
    MAX_INTENSITY,
    NUM_AUS,
    PRESENCE_THRESHOLD,
    au_columns,
    au_intensities,
    describe_au,
)

__all__ = [
    "HEAD_FORMAT",
    "META_FILE",
    "WEIGHTS_FILE",
    "AuHead",
    "AuHeadConfig",
    "AuHeadError",
    "AuPair",
    "TrainedAuHead",
    "compare",
    "describe_counts",
    "face_features",
    "format_report",
    "icc_3_1",
    "load_au_head",
    "load_pair",
    "pair_from_arrays",
    "save_au_head",
    "split_blocks",
    "train_au_head",
]

HEAD_FORMAT = 1
HEAD_KIND = "imucap-au-head"
WEIGHTS_FILE = "au_head.safetensors"
META_FILE = "au_head.json"
#: Longest validation block, seconds (shorter when the data are short; see split_blocks).
BLOCK_S = 10.0
#: Optimiser steps :func:`train_au_head` aims at when not told the number of epochs.
AUTO_STEPS = 600
#: Largest weight of a positive presence label relative to a negative one.
MAX_POS_WEIGHT = 10.0


class AuHeadError(ImucapError):
    """An AU head or its training data that cannot be used as asked."""


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuHeadConfig:
    """Sizes and input of an :class:`AuHead` (module doc: structure).

    Attributes:
        context: Track instants used either side of the labelled one (0: that instant only).
        context_step_s: Time between context instants, seconds.
        d_face: Width of the face vector.
        d_node: Width of each AU node's feature; a multiple of ``edge_dim``.
        edge_dim: Dimensions of each edge feature (each gates one slice of a message).
        edge_hidden: Width of the hidden layer that computes an edge feature.
        rounds: Message-passing rounds of the relation module; 0 leaves it out.
    """

    context: int = 2
    context_step_s: float = 1.0 / 30.0
    d_face: int = 96
    d_node: int = 32
    edge_dim: int = 8
    edge_hidden: int = 16
    rounds: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
        if not 0 <= self.context <= 15:
            raise ValueError(f"context must be 0 to 15 instants either side, got {self.context}")
        if not 0.0 < self.context_step_s <= 1.0:
            raise ValueError(f"context_step_s must be in (0, 1] s, got {self.context_step_s}")
        if not 0 <= self.rounds <= 4:
            raise ValueError(f"rounds must be 0 to 4, got {self.rounds}")
        for name in ("d_face", "d_node", "edge_dim", "edge_hidden"):
            if not 1 <= getattr(self, name) <= 1024:
                raise ValueError(f"{name} must be 1 to 1024, got {getattr(self, name)}")
        if self.d_node % self.edge_dim:
            raise ValueError(f"d_node {self.d_node} must be a multiple of edge_dim "
                             f"{self.edge_dim}")

    @property
    def n_instants(self) -> int:
        """Track instants per input: the labelled one and ``context`` either side."""
        return 2 * self.context + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuHeadConfig:
        """The config from :meth:`to_dict` output.

        Raises:
            ValueError: Unknown keys or bad values.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown AU head settings {', '.join(unknown)}")
        return cls(**data)


# --- the module ----------------------------------------------------------------------------------


class RelationModule(nn.Module):
    """The relation module: expression-conditioned edge features, then gated message passing.

    For nodes ``h`` ``(B, A, d)`` and the face vector ``g`` ``(B, d_face)``, the edge feature of
    the ordered pair ``(i, j)`` (``i`` receives from ``j``) is
    ``E(relu(P_i h_i + P_j h_j + P_g g))`` with ``edge_dim`` outputs. The sum inside is computed
    per node and broadcast over pairs, so the cost per pair is one small linear layer; the edges
    are computed once from the starting nodes and serve every round (as the edge features of
    ME-GraphAU are computed once per face), which halves the cost of two rounds. Self-pairs are
    masked out.
    """

    def __init__(self, n_nodes: int, d_node: int, d_face: int, edge_dim: int,
                 edge_hidden: int, rounds: int) -> None:
        super().__init__()
        self.to_i = nn.Linear(d_node, edge_hidden, bias=False)
        self.to_j = nn.Linear(d_node, edge_hidden, bias=False)
        self.from_face = nn.Linear(d_face, edge_hidden)
        self.edge = nn.Linear(edge_hidden, edge_dim)
        self.rounds = nn.ModuleList(MessageRound(d_node, edge_dim) for _ in range(rounds))
        self.register_buffer("others", 1.0 - torch.eye(n_nodes), persistent=False)

    def edges(self, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Edge features ``(B, A, A, edge_dim)`` (row i receives from column j)."""
        pre = (self.to_i(h)[:, :, None, :] + self.to_j(h)[:, None, :, :]
               + self.from_face(g)[:, None, None, :])
        return self.edge(F.relu(pre))

    def forward(self, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        e = self.edges(h, g)
        others = self.others[None, :, :, None]
        n_others = max(h.shape[1] - 1, 1)
        gate = torch.sigmoid(e) * others
        summary = (F.relu(e) * others).sum(dim=2) / n_others
        for layer in self.rounds:
            h = layer(h, gate, summary)
        return h


class MessageRound(nn.Module):
    """One round of message passing: each edge dimension gates one slice of the sender's
    message; messages and a summary of the receiver's edges update the node (residual MLP and
    layer norm)."""

    def __init__(self, d_node: int, edge_dim: int) -> None:
        super().__init__()
        self.edge_dim = edge_dim
        self.value = nn.Linear(d_node, d_node)
        self.edge_message = nn.Linear(edge_dim, d_node)
        self.update = nn.Sequential(nn.Linear(2 * d_node, d_node), nn.GELU(),
                                    nn.Linear(d_node, d_node))
        self.norm = nn.LayerNorm(d_node)

    def forward(self, h: torch.Tensor, gate: torch.Tensor, summary: torch.Tensor
                ) -> torch.Tensor:
        b, a, d = h.shape
        values = self.value(h).view(b, a, self.edge_dim, d // self.edge_dim)
        message = torch.einsum("bijk,bjkc->bikc", gate, values).reshape(b, a, d) / max(a - 1, 1)
        message = message + self.edge_message(summary)
        return self.norm(h + self.update(torch.cat([h, message], dim=-1)))


class AuHead(nn.Module):
    """Blendshape frames and the fixed mapping's AUs → AU intensities and presence logits.

    See the module doc for the structure and the residual start.
    """

    def __init__(self, config: AuHeadConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AuHeadConfig()
        n_in = config.n_instants * NUM_BLENDSHAPES + NUM_AUS
        d, n = config.d_node, NUM_AUS
        self.encoder = nn.Sequential(
            nn.Linear(n_in, config.d_face), nn.GELU(),
            nn.Linear(config.d_face, config.d_face), nn.GELU(), nn.LayerNorm(config.d_face))
        self.node_from_face = nn.Linear(config.d_face, n * d)
        self.au_embedding = nn.Parameter(torch.randn(n, d) * 0.1)
        self.fixed_embedding = nn.Parameter(torch.randn(n, d) * 0.1)
        self.node_norm = nn.LayerNorm(d)
        self.relations = (RelationModule(n, d, config.d_face, config.edge_dim,
                                         config.edge_hidden, config.rounds)
                          if config.rounds else None)
        # Per-AU readouts; the corrections start at zero so the head starts at the fixed mapping.
        self.intensity_w = nn.Parameter(torch.zeros(n, d))
        self.intensity_b = nn.Parameter(torch.zeros(n))
        self.presence_w = nn.Parameter(torch.zeros(n, d))
        self.presence_b = nn.Parameter(torch.zeros(n))
        self.presence_scale = nn.Parameter(torch.full((n,), 2.0))

    def nodes(self, frames: torch.Tensor, fixed: torch.Tensor) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
        """Node features after the relation module ``(B, 18, d_node)`` and the face vector."""
        b = frames.shape[0]
        scaled = fixed / MAX_INTENSITY
        g = self.encoder(torch.cat([frames.reshape(b, -1), scaled], dim=-1))
        h = (self.node_from_face(g).view(b, NUM_AUS, -1) + self.au_embedding
             + scaled[:, :, None] * self.fixed_embedding)
        h = self.node_norm(h)
        if self.relations is not None:
            h = self.relations(h, g)
        return h, g

    def forward(self, frames: torch.Tensor, fixed: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicts AUs.

        Args:
            frames: Blendshape weights ``(B, n_instants, 52)``.
            fixed: The fixed mapping's intensities of the labelled instant ``(B, 18)``.

        Returns:
            Intensities ``(B, 18)`` (not clipped; :meth:`TrainedAuHead.predict` clips to 0-5)
            and presence logits ``(B, 18)``.
        """
        h, _ = self.nodes(frames, fixed)
        intensity = fixed + (h * self.intensity_w).sum(-1) + self.intensity_b
        logits = ((h * self.presence_w).sum(-1) + self.presence_b
                  + self.presence_scale * (fixed - PRESENCE_THRESHOLD))
        return intensity, logits


# --- inputs from a track -------------------------------------------------------------------------


def _face_ok(track: FaceTrack) -> np.ndarray:
    return np.isfinite(track.weights).all(axis=1) & (track.confidence > 0)


def face_features(track: FaceTrack, times: np.ndarray | Sequence[float],
                  config: AuHeadConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The head's input at given instants of a track.

    Args:
        track: The face track.
        times: Instants on the track's clock ``(K,)``; weights are interpolated linearly
            (held at the ends).
        config: Gives the context instants.

    Returns:
        ``frames`` float32 ``(K, n_instants, 52)``, ``fixed`` float32 ``(K, 18)`` (the fixed
        mapping at each instant) and ``ok`` bool ``(K,)``: False where the track has no face at
        that instant (a neighbouring frame's weights are not finite or its confidence is 0).
        Rows that are not ok hold zeros; a context instant without a face repeats the centre.
    """
    t = np.asarray(times, dtype=np.float64)
    ok = np.interp(t, track.times, _face_ok(track).astype(np.float64)) >= 1.0 - 1e-9
    centre = track.sample(t)
    ok &= np.isfinite(centre).all(axis=1)
    frames = np.empty((t.size, config.n_instants, NUM_BLENDSHAPES), np.float32)
    for k in range(config.n_instants):
        offset = (k - config.context) * config.context_step_s
        w = centre if offset == 0 else track.sample(t + offset)
        frames[:, k] = np.where(np.isfinite(w), w, centre)
    frames[~ok] = 0.0
    fixed = au_intensities(np.where(ok[:, None], centre, 0.0))
    return np.clip(frames, 0.0, 1.0), fixed.astype(np.float32), ok


# --- training data -------------------------------------------------------------------------------


class AuPair(NamedTuple):
    """Label frames of one (track, labels) pair, aligned and ready to train or score on.

    Attributes:
        name: ``track + labels`` file names, for messages.
        times: Label timestamps ``(N,)``, seconds from the labels' first video frame.
        frames: Head input ``(N, n_instants, 52)`` float32.
        fixed: Fixed-mapping intensities ``(N, 18)`` float32.
        intensity: Label intensities ``(N, 18)`` float32; NaN where there is no label.
        presence: Label presence ``(N, 18)`` float32 0/1; NaN where there is no label.
        counts: ``rows`` in the label file, ``other_face`` (rows of another ``face_id`` when
            OpenFace tracked several faces: the face seen most often is used),
            ``no_success`` (skipped: success 0), ``outside`` (beyond the track), ``no_face``
            (the track has no face there), ``used``.
        missing: OpenFace AU columns the label file lacks (``AU28_r`` for OpenFace's own).
        ignored: AU columns in the label file that are not in OpenFace's set (not used).
    """

    name: str
    times: np.ndarray
    frames: np.ndarray
    fixed: np.ndarray
    intensity: np.ndarray
    presence: np.ndarray
    counts: dict[str, int]
    missing: tuple[str, ...]
    ignored: tuple[str, ...]

    def subset(self, keep: np.ndarray) -> AuPair:
        """The pair restricted to the frames where ``keep`` is True."""
        return self._replace(times=self.times[keep], frames=self.frames[keep],
                             fixed=self.fixed[keep], intensity=self.intensity[keep],
                             presence=self.presence[keep])


_ALL_COLUMNS = au_columns(include_au28_r=True)


def _label_columns(labels: Any) -> tuple[np.ndarray, np.ndarray, tuple[str, ...],
                                          tuple[str, ...]]:
    """Which AUs a label file gives intensity and presence for; its missing and other AUs.

    An AU has intensity labels where its intensities are not all NaN (the reader's NaN for a
    missing ``_r``, or bare ``AUxx`` columns read as intensities), presence labels unless the
    reader lists its ``_c`` column as missing.
    """
    lacking = set(getattr(labels, "missing", ()) or ())
    has_r = np.isfinite(np.asarray(labels.intensities)).any(axis=0)
    has_c = np.array([f"{code}_c" not in lacking for code in AU_NAMES])
    missing = tuple(c for c in _ALL_COLUMNS
                    if not (has_r if c.endswith("_r") else has_c)[AU_NAMES.index(c[:4])])
    return has_r, has_c, missing, tuple(getattr(labels, "extra", ()) or ())


def _main_face(labels: Any) -> np.ndarray:
    """Rows of the face most often seen, when OpenFace tracked several (``face_id``)."""
    face_id = getattr(labels, "face_id", None)
    n = len(labels.timestamp)
    if face_id is None or len(np.unique(face_id)) < 2:
        return np.ones(n, bool)
    ids, counts = np.unique(face_id, return_counts=True)
    return np.asarray(face_id) == ids[np.argmax(counts)]


def pair_from_arrays(track: FaceTrack, labels: Any, config: AuHeadConfig, *,
                     offset_s: float = 0.0, name: str = "pair") -> AuPair:
    """Aligns one label table with its track.

    The labels' ``timestamp`` counts from their video's first frame; the track's times from its
    own first frame. A label at ``timestamp`` is taken to show the track at
    ``track.times[0] + offset_s + timestamp`` (``offset_s``: where on the track the video
    starts; negative if the video started first).

    Args:
        track: The face track.
        labels: An :class:`imucap.export.OpenFaceAus`.
        config: The head's config (for the context instants).
        offset_s: See above.
        name: For messages.

    Raises:
        AuHeadError: The labels have none of OpenFace's AUs, or no label frame falls on the
            track with a face.
    """
    has_r, has_c, missing, ignored = _label_columns(labels)
    if not has_r.any() and not has_c.any():
        found = [c for c in labels.columns if c.strip().upper().startswith("AU")]
        raise AuHeadError(f"{name}: the labels have none of OpenFace's AU columns (AU01_r ... "
                          f"AU45_r, AU01_c ... AU45_c); found {', '.join(found) or 'none'}")
    main_face = _main_face(labels)
    stamps = np.asarray(labels.timestamp, dtype=np.float64)
    success = np.asarray(labels.success, dtype=bool) & main_face
    at = track.times[0] + offset_s + stamps
    inside = (at >= track.times[0] - 1e-6) & (at <= track.times[-1] + 1e-6) \
        & np.isfinite(at)
    rows = success & inside
    frames, fixed, ok = face_features(track, at[rows], config)
    keep = np.zeros(len(stamps), bool)
    keep[np.flatnonzero(rows)[ok]] = True
    counts = {"rows": int(len(stamps)), "other_face": int((~main_face).sum()),
              "no_success": int((~success & main_face).sum()),
              "outside": int((success & ~inside).sum()), "no_face": int((~ok).sum()),
              "used": int(keep.sum())}
    if counts["used"] == 0:
        span = (f"{stamps.min():.2f}-{stamps.max():.2f} s" if len(stamps) else "no rows")
        raise AuHeadError(
            f"{name}: no usable label frame ({counts['rows']} rows, {counts['no_success']} "
            f"with success 0, {counts['outside']} outside the track, {counts['no_face']} "
            f"where the track has no face); the labels cover {span}, the track "
            f"{track.duration_s:.2f} s from its start with --offset {offset_s:g}: check the "
            f"files and the offset")
    intensity = np.asarray(labels.intensities, np.float32)[keep].copy()
    intensity[:, ~has_r] = np.nan
    presence = np.asarray(labels.presence, np.float32)[keep].copy()
    presence[:, ~has_c] = np.nan
    return AuPair(name=name, times=stamps[keep], frames=frames[ok], fixed=fixed[ok],
                  intensity=intensity, presence=presence, counts=counts, missing=missing,
                  ignored=ignored)


def load_pair(track_path: str | os.PathLike[str], labels_path: str | os.PathLike[str],
              config: AuHeadConfig, *, offset_s: float = 0.0, fps: float = 60.0) -> AuPair:
    """Reads a face track and its OpenFace-format AU labels and aligns them.

    Args:
        track_path: Any take :func:`imucap.export.read_track` reads (Live Link Face CSV of the
            iPhone take or of the model's output, imucap face-track JSON, glTF ...).
        labels_path: An OpenFace AU CSV (OpenFace's own, with any other columns, or
            imucap's ``.au.csv``).
        config: The head's config.
        offset_s: Where on the track the labels' video starts (:func:`pair_from_arrays`).
        fps: The rate Live Link timecodes count.

    Raises:
        ImucapError: A file that cannot be read, labels without OpenFace AUs, no overlap.
    """
    from imucap.export import read_openface_csv, read_track

    track = read_track(track_path, fps=fps)
    labels = read_openface_csv(labels_path)
    name = f"{Path(track_path).name} + {Path(labels_path).name}"
    return pair_from_arrays(track, labels, config, offset_s=offset_s, name=name)


def split_blocks(pairs: Sequence[AuPair], val_fraction: float, seed: int
                 ) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Holds out contiguous blocks of time for validation (module doc: why not random frames).

    Every pair's timeline is cut into blocks of ``min(10 s, total labelled time / 10)``; a
    random ``val_fraction`` of all blocks (at least one) is held out, and training frames
    within a quarter block (at most 1 s) of a held-out block are dropped.

    Returns:
        Per pair, the training mask and the validation mask, and the block length in seconds.

    Raises:
        AuHeadError: ``val_fraction`` outside [0, 0.5], or too little data to hold any out.
    """
    if not 0.0 <= val_fraction <= 0.5:
        raise AuHeadError(f"--val-fraction must be between 0 and 0.5, got {val_fraction:g}")
    spans = [float(p.times[-1] - p.times[0]) for p in pairs]
    block_s = max(min(BLOCK_S, sum(spans) / 10.0), 1e-3)
    if val_fraction == 0:
        return [np.ones(len(p.times), bool) for p in pairs], \
            [np.zeros(len(p.times), bool) for p in pairs], block_s
    blocks = [np.floor((p.times - p.times[0]) / block_s).astype(np.int64) for p in pairs]
    pool = [(i, b) for i, ids in enumerate(blocks) for b in np.unique(ids)]
    if len(pool) < 2:
        raise AuHeadError("too little labelled time to hold out a validation block: give "
                          "more or longer pairs, or --val-fraction 0")
    n_val = min(max(1, round(val_fraction * len(pool))), len(pool) - 1)
    rng = np.random.default_rng(seed)
    chosen = {pool[k] for k in rng.choice(len(pool), size=n_val, replace=False)}
    guard = min(1.0, block_s / 4)
    train, val = [], []
    for i, (pair, ids) in enumerate(zip(pairs, blocks, strict=True)):
        v = np.array([(i, b) in chosen for b in ids], dtype=bool)
        t = ~v
        if v.any() and t.any():
            vt = pair.times[v]
            pos = np.searchsorted(vt, pair.times)
            left, right = np.clip(pos - 1, 0, len(vt) - 1), np.clip(pos, 0, len(vt) - 1)
            near = np.minimum(np.abs(pair.times - vt[left]), np.abs(pair.times - vt[right]))
            t &= near > guard
        train.append(t)
        val.append(v)
    return train, val, block_s


# --- metrics -------------------------------------------------------------------------------------


def icc_3_1(a: np.ndarray, b: np.ndarray) -> float:
    """ICC(3,1) of two raters over the same targets (Shrout & Fleiss 1979, two-way mixed,
    consistency, single rater): ``(BMS - EMS) / (BMS + EMS)`` for two raters.

    Returns NaN for fewer than two targets or when nothing varies.
    """
    y = np.stack([np.asarray(a, np.float64), np.asarray(b, np.float64)], axis=1)
    n, k = y.shape
    if n < 2:
        return math.nan
    grand = y.mean()
    ss_rows = k * ((y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((y.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((y - grand) ** 2).sum() - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    denominator = bms + (k - 1) * ems
    return float((bms - ems) / denominator) if denominator > 1e-12 else math.nan


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) < 1e-6 or np.std(b) < 1e-6:
        return math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        r = float(np.corrcoef(a, b)[0, 1])
    return r if math.isfinite(r) else math.nan


def _f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    tp = float(np.sum(truth & predicted))
    wrong = float(np.sum(truth != predicted))
    return tp / (tp + 0.5 * wrong) if tp + wrong > 0 else math.nan


def _scores(pred_int: np.ndarray, pred_pres: np.ndarray, y_int: np.ndarray,
            y_pres: np.ndarray) -> dict[str, float]:
    m = np.isfinite(y_int)
    p = np.isfinite(y_pres)
    out = {"mae": math.nan, "r": math.nan, "icc": math.nan, "f1": math.nan}
    if m.any():
        out["mae"] = float(np.mean(np.abs(pred_int[m] - y_int[m])))
        out["r"] = _pearson(pred_int[m], y_int[m])
        out["icc"] = icc_3_1(pred_int[m], y_int[m])
    if p.any():
        out["f1"] = _f1(y_pres[p] >= 0.5, pred_pres[p])
    return out


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


# --- a trained head ------------------------------------------------------------------------------


@dataclass
class TrainedAuHead:
    """A head with its weights, ready to predict, plus what its training recorded.

    Attributes:
        model: The module, in eval mode.
        training: The training summary (pairs, frames, epochs, comparison report ...).
    """

    model: AuHead
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> AuHeadConfig:
        return self.model.config

    def predict(self, frames: np.ndarray, fixed: np.ndarray, *, batch: int = 2048
                ) -> tuple[np.ndarray, np.ndarray]:
        """Intensities clipped to 0-5 ``(N, 18)`` and presence probabilities ``(N, 18)``."""
        self.model.eval()
        out_i, out_p = [], []
        with torch.no_grad():
            for s in range(0, len(frames), batch):
                i, logit = self.model(torch.from_numpy(np.ascontiguousarray(frames[s:s + batch])),
                                      torch.from_numpy(np.ascontiguousarray(fixed[s:s + batch])))
                out_i.append(i.clamp(0.0, MAX_INTENSITY).numpy())
                out_p.append(torch.sigmoid(logit).numpy())
        if not out_i:
            return np.zeros((0, NUM_AUS), np.float32), np.zeros((0, NUM_AUS), np.float32)
        return np.concatenate(out_i), np.concatenate(out_p)

    def predict_track(self, track: FaceTrack) -> tuple[np.ndarray, np.ndarray]:
        """The head's AUs at every frame of a track.

        Returns:
            Intensities float32 ``(N, 18)`` in 0-5, NaN where the track has no face, and
            presence uint8 ``(N, 18)`` (probability at least 0.5; 0 without a face).
        """
        frames, fixed, ok = face_features(track, track.times, self.config)
        intensity, prob = self.predict(frames, fixed)
        intensity[~ok] = np.nan
        presence = ((prob >= 0.5) & ok[:, None]).astype(np.uint8)
        return intensity.astype(np.float32), presence

    def apply(self, track: FaceTrack) -> FaceTrack:
        """The track with its ``aus`` replaced by the head's intensities (NaN without a face)."""
        intensity, _ = self.predict_track(track)
        return replace(track, aus=intensity)


def compare(head: TrainedAuHead, pairs: Sequence[AuPair], *, subset: str = "all frames"
            ) -> dict[str, Any]:
    """Scores the head and the fixed mapping on the same label frames (module doc: metrics).

    Args:
        head: The trained head.
        pairs: Aligned label frames (e.g. the validation part of :func:`split_blocks`, or
            held-out pairs).
        subset: What the frames are, for the report.

    Returns:
        A JSON-ready dict: ``subset``, ``frames``, ``pairs`` (name and counts), ``aus`` (per
        AU: code, name, labelled frames, share present, and ``head`` / ``fixed`` scores
        ``mae``, ``r``, ``icc``, ``f1``), ``mean`` (``head`` / ``fixed``, each score averaged
        over the AUs where both have it), ``no_labels`` (AUs without intensity or presence
        labels in these pairs) and ``ignored_columns``. NaN scores are None.
    """
    frames = [p for p in pairs if len(p.times)]
    if not frames:
        raise AuHeadError("no label frames to compare on")
    y_int = np.concatenate([p.intensity for p in frames])
    y_pres = np.concatenate([p.presence for p in frames])
    fixed = np.concatenate([p.fixed for p in frames])
    h_int, h_prob = head.predict(np.concatenate([p.frames for p in frames]), fixed)
    h_pres = h_prob >= 0.5
    f_pres = fixed >= PRESENCE_THRESHOLD
    rows = []
    for k, code in enumerate(AU_NAMES):
        h = _scores(h_int[:, k], h_pres[:, k], y_int[:, k], y_pres[:, k])
        f = _scores(fixed[:, k], f_pres[:, k], y_int[:, k], y_pres[:, k])
        labelled = np.isfinite(y_pres[:, k])
        rows.append({
            "au": code, "name": describe_au(code),
            "intensity_frames": int(np.isfinite(y_int[:, k]).sum()),
            "presence_frames": int(labelled.sum()),
            "present_share": (float(np.mean(y_pres[labelled, k])) if labelled.any() else None),
            "head": h, "fixed": f})
    # Each mean over the AUs where both have the score, so the two columns compare like with like.
    both = {m: [r for r in rows if np.isfinite(r["head"][m]) and np.isfinite(r["fixed"][m])]
            for m in ("mae", "r", "icc", "f1")}
    mean = {who: {m: _nanmean([r[who][m] for r in both[m]]) for m in both}
            for who in ("head", "fixed")}
    report = {
        "subset": subset, "frames": int(len(y_int)),
        "pairs": [{"name": p.name, **p.counts} for p in pairs],
        "aus": rows, "mean": mean,
        "no_labels": {"intensity": [r["au"] for r in rows if r["intensity_frames"] == 0],
                      "presence": [r["au"] for r in rows if r["presence_frames"] == 0]},
        "ignored_columns": sorted({c for p in pairs for c in p.ignored}),
    }
    return _json_ready(report)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_report(report: dict[str, Any]) -> str:
    """The comparison as a text table: per AU and mean, head beside fixed mapping."""
    lines = [f"AU head vs fixed mapping on {report['frames']} label frames ({report['subset']})",
             f"{'AU':<5} {'name':<22} {'frames':>6}  {'MAE head/fixed':>14}  "
             f"{'r head/fixed':>12}  {'ICC head/fixed':>14}  {'F1 head/fixed':>13}"]

    def pair(row: dict[str, Any], metric: str) -> str:
        return f"{_cell(row['head'][metric])}/{_cell(row['fixed'][metric])}"

    for row in report["aus"]:
        n = max(row["intensity_frames"], row["presence_frames"])
        lines.append(f"{row['au']:<5} {row['name'][:22]:<22} {n:>6}  {pair(row, 'mae'):>14}  "
                     f"{pair(row, 'r'):>12}  {pair(row, 'icc'):>14}  {pair(row, 'f1'):>13}")
    mean = report["mean"]
    lines.append(f"{'mean':<5} {'':<22} {'':>6}  {pair(mean, 'mae'):>14}  {pair(mean, 'r'):>12}"
                 f"  {pair(mean, 'icc'):>14}  {pair(mean, 'f1'):>13}")
    gone = report["no_labels"]
    if gone["intensity"]:
        lines.append(f"no intensity labels for {', '.join(gone['intensity'])}: not trained or "
                     f"scored on intensity (the head keeps the fixed mapping's)")
    if gone["presence"]:
        lines.append(f"no presence labels for {', '.join(gone['presence'])}: not scored on "
                     f"presence")
    if report["ignored_columns"]:
        lines.append(f"ignored AU columns outside OpenFace's set: "
                     f"{', '.join(report['ignored_columns'])}")
    for p in report["pairs"]:
        lines.append(f"{p['name']}: {describe_counts(p)}")
    return "\n".join(lines)


def describe_counts(counts: dict[str, int]) -> str:
    """``"2135 of 2249 label frames used (skipped 114 with success 0)"`` from
    :attr:`AuPair.counts`."""
    skipped = [f"{counts[k]} {what}" for k, what in (
        ("other_face", "of another face"), ("no_success", "with success 0"),
        ("outside", "outside the track"), ("no_face", "where the track has no face"))
        if counts.get(k)]
    return (f"{counts['used']} of {counts['rows']} label frames used"
            + (f" (skipped {', '.join(skipped)})" if skipped else ""))


# --- training ------------------------------------------------------------------------------------


def _stack(pairs: Sequence[AuPair]) -> tuple[torch.Tensor, ...]:
    frames = torch.from_numpy(np.concatenate([p.frames for p in pairs]))
    fixed = torch.from_numpy(np.concatenate([p.fixed for p in pairs]))
    y_int = np.concatenate([p.intensity for p in pairs])
    y_pres = np.concatenate([p.presence for p in pairs])
    m_int, m_pres = np.isfinite(y_int), np.isfinite(y_pres)
    return (frames, fixed, torch.from_numpy(np.nan_to_num(y_int)),
            torch.from_numpy(m_int.astype(np.float32)),
            torch.from_numpy(np.nan_to_num(y_pres)), torch.from_numpy(m_pres.astype(np.float32)))


def _loss(model: AuHead, batch: Sequence[torch.Tensor], pos_weight: torch.Tensor
          ) -> torch.Tensor:
    frames, fixed, y_int, m_int, y_pres, m_pres = batch
    intensity, logits = model(frames, fixed)
    huber = F.huber_loss(intensity, y_int, reduction="none", delta=1.0) * m_int
    bce = F.binary_cross_entropy_with_logits(logits, y_pres, reduction="none",
                                             pos_weight=pos_weight) * m_pres
    return huber.sum() / m_int.sum().clamp_min(1.0) + bce.sum() / m_pres.sum().clamp_min(1.0)


def _pos_weight(y_pres: torch.Tensor, m_pres: torch.Tensor) -> torch.Tensor:
    pos = (y_pres * m_pres).sum(0)
    neg = ((1 - y_pres) * m_pres).sum(0)
    ratio = torch.where(pos > 0, neg / pos.clamp_min(1.0), torch.ones_like(pos))
    return ratio.sqrt().clamp(1.0, MAX_POS_WEIGHT)


def train_au_head(pairs: Sequence[AuPair], *, config: AuHeadConfig | None = None,
                  epochs: int | None = None, seed: int = 0, val_fraction: float = 0.2,
                  batch_size: int = 256, lr: float = 3e-3, threads: int = 0,
                  progress: Callable[[str], None] | None = None,
                  model: nn.Module | None = None) -> TrainedAuHead:
    """Trains a head on aligned label frames and compares it with the fixed mapping.

    Args:
        pairs: From :func:`load_pair` (all made with the same ``config``).
        config: The head's sizes and input; the default :class:`AuHeadConfig`.
        epochs: Passes over the training frames; None for enough to make about
            :data:`AUTO_STEPS` optimiser steps (2 to 30 epochs: 15 for 10,000 training frames,
            4 for 40,000), which the validation loss has settled by on the data tried.
        seed: Seeds the validation split, the initial weights and the batch order.
        val_fraction: Share of time held out in blocks (:func:`split_blocks`); 0 trains on
            everything and the report is then on the training frames.
        batch_size: Frames per step.
        lr: Peak learning rate of AdamW (cosine decay after a short warm-up).
        threads: Torch CPU threads; 0 leaves torch's setting.
        progress: Called with one line per epoch.
        model: A module to train instead of a fresh ``AuHead(config)``, for comparisons (the
            benchmark's per-AU baseline): it must take ``(frames, fixed)`` and return
            ``(intensity, logits)`` as :class:`AuHead` does, and have a ``config``.

    Returns:
        The head (the epoch with the lowest validation loss) with ``training`` holding the
        summary and the comparison ``report``.

    Raises:
        AuHeadError: Bad settings, no data, or data made with another config.
    """
    config = config or AuHeadConfig()
    if not pairs:
        raise AuHeadError("no training pairs: give --pair TRACK LABELS.csv at least once")
    if epochs is not None and not 1 <= epochs <= 10000:
        raise AuHeadError(f"--epochs must be 1 to 10000, got {epochs}")
    if any(p.frames.shape[1] != config.n_instants for p in pairs):
        raise AuHeadError("the pairs were aligned with another context setting than the head's")
    if threads:
        torch.set_num_threads(threads)
    started = time.monotonic()
    train_masks, val_masks, block_s = split_blocks(pairs, val_fraction, seed)
    train_pairs = [p.subset(m) for p, m in zip(pairs, train_masks, strict=True)]
    val_pairs = [p.subset(m) for p, m in zip(pairs, val_masks, strict=True)]
    data = _stack(train_pairs)
    n = len(data[0])
    if n == 0:
        raise AuHeadError("no training frames left after holding out validation blocks")
    has_val = sum(len(p.times) for p in val_pairs) > 0
    val_data = _stack(val_pairs) if has_val else None
    torch.manual_seed(seed)
    model = AuHead(config) if model is None else model
    pos_weight = _pos_weight(data[4], data[5])
    decay = [p for name, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in name]
    rest = [p for name, p in model.named_parameters() if p.ndim < 2 or "embedding" in name]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4},
                                   {"params": rest, "weight_decay": 0.0}], lr=lr)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    if epochs is None:
        epochs = max(2, min(30, math.ceil(AUTO_STEPS / steps_per_epoch)))
    total = epochs * steps_per_epoch
    warmup = min(100, total // 10 + 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup)
        * 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))
    generator = torch.Generator().manual_seed(seed)
    best_state, best_loss, best_epoch = copy.deepcopy(model.state_dict()), math.inf, 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        running = 0.0
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            loss = _loss(model, [t[idx] for t in data], pos_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            running += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = float(_loss(model, val_data, pos_weight)) if val_data else math.nan
        score = val_loss if val_data else running / n
        if score < best_loss:
            best_loss, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        if progress:
            progress(f"epoch {epoch}/{epochs}  train loss {running / n:.4f}"
                     + (f"  validation loss {val_loss:.4f}" if val_data else ""))
    model.load_state_dict(best_state)
    model.eval()
    head = TrainedAuHead(model)
    report = compare(head, val_pairs if has_val else list(pairs),
                     subset=(f"validation: {val_fraction:.0%} of the time held out in "
                             f"{block_s:.1f} s blocks" if has_val
                             else "the training frames themselves (--val-fraction 0)"))
    head.training = {
        "imucap_version": imucap.__version__,
        "pairs": [{"name": p.name, **p.counts, "missing": list(p.missing),
                   "ignored": list(p.ignored)} for p in pairs],
        "train_frames": int(n),
        "val_frames": int(sum(len(p.times) for p in val_pairs)),
        "epochs": epochs, "best_epoch": best_epoch, "seed": seed,
        "val_fraction": val_fraction, "block_s": block_s, "batch_size": batch_size, "lr": lr,
        "seconds": round(time.monotonic() - started, 2),
        "report": report,
    }
    return head


# --- files ---------------------------------------------------------------------------------------


def save_au_head(path: str | os.PathLike[str], head: TrainedAuHead) -> Path:
    """Writes a head folder: ``au_head.safetensors`` then ``au_head.json``, each atomically."""
    from safetensors.torch import save_file

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise AuHeadError(f"{out} is a file; give a folder for the AU head")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / (WEIGHTS_FILE + ".part")
        save_file({k: v.detach().contiguous().cpu() for k, v in head.model.state_dict().items()},
                  str(tmp))
        os.replace(tmp, out / WEIGHTS_FILE)
        meta = {
            "format": HEAD_FORMAT, "kind": HEAD_KIND, "imucap_version": imucap.__version__,
            "config": head.config.to_dict(), "au_names": list(AU_NAMES),
            "input": {"blendshapes": list(ARKIT_NAMES), "instants": head.config.n_instants,
                      "step_s": head.config.context_step_s,
                      "fixed_mapping": "imucap.vocab.au_intensities"},
            "training": _json_ready(head.training),
        }
        tmp = out / (META_FILE + ".part")
        tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, out / META_FILE)
    except OSError as exc:
        raise AuHeadError(f"cannot write the AU head to {out}: {exc.strerror or exc}") from None
    return out


def load_au_head(path: str | os.PathLike[str]) -> TrainedAuHead:
    """Reads a head folder written by :func:`save_au_head`.

    Raises:
        AuHeadError: Missing, damaged or truncated files, another format, a model checkpoint
            instead of a head, AU names or weights that do not fit.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    if folder.is_file() and folder.name in (WEIGHTS_FILE, META_FILE):
        folder = folder.parent
    if not folder.exists():
        raise AuHeadError(f"AU head {folder} does not exist")
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        what = ("a model checkpoint, not an AU head" if (folder / "checkpoint.json").exists()
                else f"not an AU head folder: it needs {META_FILE} and {WEIGHTS_FILE}")
        raise AuHeadError(f"{folder} is {what} (train one with imucap au-head train)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AuHeadError(f"{meta_path} is damaged (not JSON): train the head again") from None
    if not isinstance(meta, dict) or meta.get("kind") != HEAD_KIND:
        raise AuHeadError(f"{meta_path} is not an AU head description")
    if meta.get("format") != HEAD_FORMAT:
        raise AuHeadError(f"{folder}: AU head format {meta.get('format')!r}; this imucap reads "
                          f"format {HEAD_FORMAT}: use the imucap version that wrote it")
    if meta.get("au_names") != list(AU_NAMES):
        raise AuHeadError(f"{folder}: its AUs are not OpenFace's 18 in imucap's order; this "
                          f"imucap cannot use it")
    if (meta.get("input") or {}).get("blendshapes") != list(ARKIT_NAMES):
        raise AuHeadError(f"{folder}: its input is not the 52 ARKit blendshapes in ARKit order")
    try:
        config = AuHeadConfig.from_dict(dict(meta.get("config") or {}))
    except (TypeError, ValueError) as exc:
        raise AuHeadError(f"{meta_path}: the head's settings are not valid here: {exc}") \
            from None
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise AuHeadError(f"{weights_path} is damaged or truncated ({exc}): train the head "
                          f"again") from None
    model = AuHead(config)
    expected = model.state_dict()
    wrong = sorted(set(expected) ^ set(state)) or sorted(
        k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape))
    if wrong:
        raise AuHeadError(f"{weights_path}: the weights do not fit the head its "
                          f"{META_FILE} describes (e.g. {wrong[0]}): train the head again")
    model.load_state_dict(state)
    return TrainedAuHead(model.eval(), dict(meta.get("training") or {}))
