"""Placement site names that devices announce on the wire, and the presets of the emulator.

Sites are matched by name, never by position. The 11-site preset follows the anatomy of the
IMUSIC study's array: frontalis, orbicularis oculi, zygomaticus (major and minor, where the
muscles are dense), buccinator and mentalis, left and right where the face has two.
"""

from __future__ import annotations

IMUSIC11_SITES: tuple[str, ...] = (
    "frontalis_l",
    "frontalis_r",
    "orbicularis_oculi_l",
    "orbicularis_oculi_r",
    "zygomaticus_major_l",
    "zygomaticus_major_r",
    "zygomaticus_minor_l",
    "zygomaticus_minor_r",
    "buccinator_l",
    "buccinator_r",
    "mentalis",
)
HEAD_REF_SITE = "head_ref"
"""A sensor on a rigid part of the head (the bridge of the nose or behind the ear)."""

SITE_PRESETS: dict[str, tuple[str, ...]] = {
    "imusic11": IMUSIC11_SITES,
    "imusic11+head": IMUSIC11_SITES + (HEAD_REF_SITE,),
    "face6": ("frontalis_l", "frontalis_r", "zygomaticus_major_l", "zygomaticus_major_r",
              "buccinator_l", "mentalis"),
    "face4": ("frontalis_l", "zygomaticus_major_l", "zygomaticus_major_r", "mentalis"),
}


def site_preset(name: str) -> tuple[str, ...]:
    """The site names of a preset; ``sensorsN`` gives N generic names (``s00`` …).

    Raises:
        ValueError: The preset is unknown (the message lists the known ones).
    """
    if name in SITE_PRESETS:
        return SITE_PRESETS[name]
    if name.startswith("sensors") and name[7:].isdigit() and 1 <= int(name[7:]) <= 16:
        return tuple(f"s{i:02d}" for i in range(int(name[7:])))
    known = ", ".join(list(SITE_PRESETS) + ["sensors1 … sensors16"])
    raise ValueError(f"unknown site preset {name!r}: use one of {known}")
