"""Where sensors sit on the face: placement presets, placement files, and fitting them to a rig.

A :class:`Placement` is data: per site a name, a surface point in the head frame (metres) and
a mounting rotation (radians, about the sensor's own axes: z out of the skin, x toward the
head's +x). It is saved with every dataset so an experiment knows where each signal came from.

Presets (:data:`PRESETS`) describe sites anatomically, as a ray into the head: it passes through
the point ``(x, y, 0)`` (inside the head) and arrives from the direction given by a yaw (from
the face's left for positive angles) and a pitch (from above for positive angles); the site is
where the ray first meets the skin. So one preset fits any rig in ARKit's head frame, the
built-in head as well as a user's avatar.

The IMUSIC-like 11-site preset covers frontalis, orbicularis oculi, zygomaticus (major and minor,
where the muscles are dense), buccinator and mentalis, left and right where there are two; the
smaller presets take subsets, and ``+head`` adds a reference sensor on the bridge of the nose,
which moves with the skull and not with expressions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imucap.errors import ImucapError
from imucap.firmware_bridge.sites import HEAD_REF_SITE, SITE_PRESETS

from .imu_sim import SiteAttachment, attach_sites
from .rig import Rig

PLACEMENT_FORMAT = 1

# site name: (x, y) the ray passes through at z = 0 (m), yaw and pitch it comes from (degrees)
SITE_RAYS: dict[str, tuple[float, float, float, float]] = {
    "frontalis_l": (0.030, 0.065, 10.0, 10.0),
    "frontalis_r": (-0.030, 0.065, -10.0, 10.0),
    "orbicularis_oculi_l": (0.040, 0.012, 35.0, 0.0),
    "orbicularis_oculi_r": (-0.040, 0.012, -35.0, 0.0),
    "zygomaticus_major_l": (0.045, -0.018, 35.0, 0.0),
    "zygomaticus_major_r": (-0.045, -0.018, -35.0, 0.0),
    "zygomaticus_minor_l": (0.028, -0.008, 20.0, 0.0),
    "zygomaticus_minor_r": (-0.028, -0.008, -20.0, 0.0),
    "buccinator_l": (0.045, -0.045, 50.0, 0.0),
    "buccinator_r": (-0.045, -0.045, -50.0, 0.0),
    "mentalis": (0.0, -0.066, 0.0, -5.0),
    HEAD_REF_SITE: (0.0, 0.030, 0.0, 0.0),
}

PRESETS: dict[str, tuple[str, ...]] = dict(SITE_PRESETS)


class PlacementError(ImucapError):
    """A placement file or preset that cannot be used."""


@dataclass(frozen=True, eq=False)
class Placement:
    """Sensor sites on a face.

    Attributes:
        name: The placement's name (a preset name or the file's).
        sites: Site names.
        points: Surface point of each site, ``(S, 3)`` metres, head frame.
        mount_rotvecs: Mounting rotation of each site, ``(S, 3)`` radians.
    """

    name: str
    sites: tuple[str, ...]
    points: np.ndarray
    mount_rotvecs: np.ndarray

    def attach(self, rig: Rig, *, max_distance_m: float = 0.01) -> SiteAttachment:
        """Put the sensors on ``rig``.

        Raises:
            PlacementError: A site is farther than ``max_distance_m`` from the rig's skin.
        """
        try:
            return attach_sites(rig, self.sites, self.points, self.mount_rotvecs,
                                max_distance_m=max_distance_m)
        except ValueError as exc:
            raise PlacementError(f"placement {self.name!r} on rig {rig.name!r}: {exc}") from None

    def to_json(self) -> dict:
        return {
            "format": PLACEMENT_FORMAT,
            "name": self.name,
            "sites": [{"name": n, "point_m": [round(float(v), 6) for v in p],
                       "mount_rotvec_rad": [round(float(v), 6) for v in r]}
                      for n, p, r in zip(self.sites, self.points, self.mount_rotvecs,
                                         strict=True)],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, data: dict, *, source: str = "placement") -> Placement:
        """Read a placement from its JSON form, with one clear error for each mistake."""
        if not isinstance(data, dict) or "sites" not in data:
            raise PlacementError(f"{source}: not a placement (no 'sites' list)")
        version = data.get("format", PLACEMENT_FORMAT)
        if version != PLACEMENT_FORMAT:
            raise PlacementError(f"{source}: placement format {version}; this imucap reads "
                                 f"format {PLACEMENT_FORMAT}: upgrade imucap")
        names, points, rots = [], [], []
        for i, site in enumerate(data["sites"]):
            try:
                names.append(str(site["name"]))
                point = [float(v) for v in site["point_m"]]
                rot = [float(v) for v in site.get("mount_rotvec_rad", [0.0, 0.0, 0.0])]
            except (KeyError, TypeError, ValueError):
                raise PlacementError(f"{source}: site {i + 1} needs 'name' and 'point_m' "
                                     f"[x, y, z] in metres") from None
            if len(point) != 3 or len(rot) != 3:
                raise PlacementError(f"{source}: site {names[-1]!r} needs 3 numbers in "
                                     f"'point_m' and 'mount_rotvec_rad'")
            points.append(point)
            rots.append(rot)
        if not names:
            raise PlacementError(f"{source}: the placement has no sites")
        if len(set(names)) != len(names):
            raise PlacementError(f"{source}: site names repeat")
        return cls(str(data.get("name", source)), tuple(names), np.array(points),
                   np.array(rots))

    @classmethod
    def load(cls, path: str | Path) -> Placement:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PlacementError(f"placement file {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PlacementError(f"{path} is not a placement file (not JSON)") from None
        return cls.from_json(data, source=str(path))


def _ray_hit(rig: Rig, origin: np.ndarray, direction: np.ndarray) -> np.ndarray | None:
    """First point where a ray meets the rig's triangles (Möller–Trumbore), or None."""
    tri = rig.neutral[rig.faces].astype(np.float64)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = np.cross(direction, e2)
    det = np.einsum("ij,ij->i", e1, p)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origin - tri[:, 0]
    u = np.einsum("ij,ij->i", s, p) * inv
    q = np.cross(s, e1)
    v = (q @ direction) * inv
    t = np.einsum("ij,ij->i", e2, q) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    if not hit.any():
        return None
    return origin + t[hit].min() * direction


def preset(name: str, rig: Rig) -> Placement:
    """The preset's sites placed on ``rig``'s skin.

    Raises:
        PlacementError: Unknown preset, or a site's ray misses the rig.
    """
    if name not in PRESETS:
        raise PlacementError(f"unknown placement preset {name!r}: use one of "
                             f"{', '.join(PRESETS)}, or a placement file")
    return sites_placement(PRESETS[name], rig, name=name)


def sites_placement(sites: tuple[str, ...] | list[str], rig: Rig, *,
                    name: str = "sites") -> Placement:
    """Named sites (any of :data:`SITE_RAYS`, as a device reports them) placed on ``rig``.

    Raises:
        PlacementError: A site this toolkit has no anatomical position for, or a site's ray
            misses the rig.
    """
    unknown = [s for s in sites if s not in SITE_RAYS]
    if unknown:
        raise PlacementError(f"no known position for site {', '.join(map(repr, unknown))}: "
                             f"known sites are {', '.join(SITE_RAYS)}; give a placement file")
    points = []
    for site in sites:
        x, y, yaw, pitch = SITE_RAYS[site]
        yaw, pitch = np.deg2rad(yaw), np.deg2rad(pitch)
        toward = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch),
                           np.cos(yaw) * np.cos(pitch)])
        hit = _ray_hit(rig, np.array([x, y, 0.0]) + 0.5 * toward, -toward)
        if hit is None:
            raise PlacementError(f"{name}: site {site!r} does not meet the skin of "
                                 f"rig {rig.name!r}: is the rig in ARKit's head frame, in metres?")
        points.append(hit)
    return Placement(name, tuple(sites), np.array(points), np.zeros((len(points), 3)))
