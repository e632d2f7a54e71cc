"""Profiles: `quick` (tests, seconds) and `full` (the book). Each chapter keeps its own sizes, one typed
`Sizes` per profile, in chapters/<slug>/sizes.py; `sizes(SIZES, profile)` picks the active one.

The active profile is read from POISONLAB_PROFILE, else from QUARTO_PROFILE (Quarto's own
`--profile` setting, so that both engines honour one setting), else it is `full`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

PROFILES = ("quick", "full")
# the repeats and grid points of a typical sweep in each profile (the preface's example); a chapter's own
# sizes may differ, and say so in its sizes.py
TYPICAL = {"quick": (6, 5), "full": (20, 11)}
T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    """A profile by name, with the repeats and grid points of a typical sweep; a chapter's own sizes in it
    are `sizes(SIZES, profile)`."""

    name: str

    def __post_init__(self):
        if self.name not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {self.name!r}")

    @property
    def repeats(self) -> int:
        return TYPICAL[self.name][0]

    @property
    def points(self) -> int:
        return TYPICAL[self.name][1]


def active_profile_name() -> str:
    """The name of the active profile (see module docstring)."""
    name = os.environ.get("POISONLAB_PROFILE")
    if not name:
        # QUARTO_PROFILE may list several profiles separated by commas.
        quarto = [p.strip() for p in os.environ.get("QUARTO_PROFILE", "").split(",")]
        name = next((p for p in quarto if p in PROFILES), "full")
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {name!r}")
    return name


def get_profile(name: str | Profile | None = None) -> Profile:
    """The profile `name` (default: the active one)."""
    if isinstance(name, Profile):
        return name
    return Profile(active_profile_name() if name is None else name)


def sizes(by_profile: Mapping[str, T], profile: str | Profile | None = None) -> T:
    """A chapter's sizes in `profile` (default: the active one), from its {"quick": ..., "full": ...}."""
    missing = [p for p in PROFILES if p not in by_profile]
    if missing:
        raise ValueError(f"by_profile must give the sizes of every profile; missing {', '.join(missing)}")
    return by_profile[get_profile(profile).name]
