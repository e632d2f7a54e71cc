"""Profiles: `quick` (tests, seconds) and `full` (the book). Every sweep size lives here, once.

The active profile is read from POISONLAB_PROFILE, else from QUARTO_PROFILE (Quarto's own
`--profile` setting, so that both engines honour one setting), else it is `full`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType

PROFILES = ("quick", "full")

# Sizes per profile. A chapter reads its own section; `common` applies everywhere.
# quick: enough repeats that the statistical tests have a meaningful Monte Carlo error,
# small enough that the whole suite stays within minutes on 2 CPU cores.
SIZES = {
    "quick": {
        "common": {"repeats": 6, "points": 5},
        "engine": {},
        "linear": {},
        "logistic": {},
        "images": {},
    },
    "full": {
        "common": {"repeats": 20, "points": 11},
        "engine": {},
        "linear": {},
        "logistic": {},
        "images": {},
    },
}


@dataclass(frozen=True)
class Profile:
    """The sweep sizes of one profile; `profile.linear["n"]` reads a chapter's own setting."""

    name: str
    repeats: int
    points: int
    sections: MappingProxyType = field(repr=False)

    def __getattr__(self, section):
        try:
            return self.sections[section]
        except KeyError:
            raise AttributeError(section) from None


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


def get_profile(name: str | None = None) -> Profile:
    """The sizes of profile `name` (default: the active one)."""
    name = active_profile_name() if name is None else name
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {name!r}")
    sizes = SIZES[name]
    sections = {k: MappingProxyType({**sizes["common"], **v}) for k, v in sizes.items() if k != "common"}
    return Profile(name=name, repeats=sizes["common"]["repeats"], points=sizes["common"]["points"],
                   sections=MappingProxyType(sections))
