"""A chapter's study in one object: its sizes per profile, its named sweeps, what it computes once."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import sweep as _sweep
from .experiment import Experiment
from .profile import Profile, get_profile, sizes as _sizes


@dataclass(frozen=True)
class SweepSpec:
    """One named sweep: the grid it varies, what it fixes, its repeats and base seed (sweep.run's arguments)."""

    grid: dict
    fixed: dict = field(default_factory=dict)
    repeats: int = 1
    seed: int = 0

    @property
    def runs(self) -> int:
        """Configurations x repeats: the models the sweep trains."""
        return int(np.prod([len(v) for v in self.grid.values()])) * self.repeats


class Chapter:
    """The study behind one chapter: `sizes(profile)` (its own typed sizes), `sweep(name)` (each of its named
    sweeps run once per process, on top of the on-disk cache), `memo(key, compute)` for anything else it
    computes once, and `sweeps_table()` for the page.

    `sweeps(S)` maps the chapter's sizes S in a profile to its sweeps, {name: SweepSpec}.
    """

    def __init__(self, experiment: Experiment, sizes: Mapping[str, Any],
                 sweeps: Callable[[Any], Mapping[str, SweepSpec]] | None = None):
        self.experiment = experiment
        self._by_profile = sizes
        self._sweeps = sweeps
        self._memo: dict = {}
        _sizes(sizes)  # every profile present, checked once here

    def sizes(self, profile: str | Profile | None = None):
        """The chapter's sizes in `profile` (default: the active one)."""
        return _sizes(self._by_profile, profile)

    def memo(self, key, compute: Callable[[], Any]):
        """compute() once per process for `key` (the chapter's cells and its laws share the result)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def law(self, name: str, profile, laws: dict, rival: Callable):
        """The law `name` of the chapter in `profile`, computed once per process: `laws[name](profile)` (a
        stats.Law) with its `rival` attached (rival(name, profile): the value of its statistic under a named
        wrong theory), so that its verdict knows whether the interval can tell the two apart."""
        if name not in laws:
            raise ValueError(f"name must be one of {', '.join(laws)}; got {name!r}")
        profile = get_profile(profile)
        return self.memo(("law", name, profile.name),
                         lambda: dataclasses.replace(laws[name](profile), rival=float(rival(name, profile))))

    def specs(self, profile: str | Profile | None = None) -> dict[str, SweepSpec]:
        """Every named sweep of the chapter in `profile`."""
        if self._sweeps is None:
            return {}
        return dict(self._sweeps(self.sizes(profile)))

    def spec(self, name: str, profile: str | Profile | None = None) -> SweepSpec:
        """The sweep `name` in `profile`."""
        specs = self.specs(profile)
        if name not in specs:
            raise ValueError(f"name must be one of {', '.join(specs)}; got {name!r}")
        return specs[name]

    def sweep(self, name: str, profile: str | Profile | None = None) -> _sweep.SweepResult:
        """The sweep `name` run in `profile` (cached on disk as every sweep; once per process)."""
        profile = get_profile(profile)
        spec = self.spec(name, profile)
        return self.memo(("sweep", name, profile.name), lambda: _sweep.run(
            self.experiment, grid=spec.grid, repeats=spec.repeats, seed=spec.seed, fixed=spec.fixed,
            progress=False))

    def sweeps_table(self, profile: str | Profile | None = None, base: Mapping | None = None) -> pd.DataFrame:
        """One row per sweep: what varies (values per parameter), what is fixed (leaving out what equals `base`,
        e.g. the chapter's running setting), repeats, models trained."""
        base = base or {}
        rows = [{"sweep": name, "grid": "; ".join(f"{k} ({len(v)})" for k, v in s.grid.items()),
                 "fixed": ", ".join(f"{k}={v}" for k, v in s.fixed.items() if k not in base or base[k] != v),
                 "repeats": s.repeats, "runs": s.runs}
                for name, s in self.specs(profile).items()]
        return pd.DataFrame(rows, columns=["sweep", "grid", "fixed", "repeats", "runs"])
