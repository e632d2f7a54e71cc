"""Sweeps: an experiment over a grid of parameters and repeats, as a tidy table with 95% CIs.

Every configuration is resolved (checked) before anything runs, so a bad grid value fails at
once with the parameter named. Repeat r of every grid point uses seed `seed + r` (common random
numbers: grid points differ only in their parameters, which sharpens comparisons between them).
Configurations that agree on every `batch=False` parameter are trained together in one call of
`experiment.fn`; each such batch is cached on disk (`poisonlab.cache`).
"""
from __future__ import annotations

import functools
import itertools
import math
import os
import sys
from collections.abc import Mapping

import numpy as np
import pandas as pd

from . import cache as _cache
from . import executor as _executor
from .. import validate
from ..stats.intervals import mean_ci
from ..stats.summary import _intervals
from ..errors import DivergenceError
from .experiment import Experiment

__all__ = ["run", "SweepResult"]


class SweepResult:
    """The outcome of `run`: `rows` (one per configuration x repeat), `summary()`, `record()`."""

    def __init__(self, experiment: str, params: list[str], grid: list[str], metrics: list[str],
                 configs: list[dict], results: list[dict], points: list[int], cached: int = 0,
                 batches: int = 0, ranges=None):
        self.experiment = experiment
        self.params = params  # every declared parameter, in declaration order
        self.grid = grid  # the parameters varied by the grid, in grid order
        self.metrics = metrics
        self.ranges = dict(ranges or {})  # metric -> (low, high): its intervals stay inside (mean_ci's bounds)
        self.configs = configs  # resolved configurations (with "seed"), in row order
        self.points = points  # grid-point index of each row
        self.cached = cached  # batches read from the cache
        self.batches = batches  # batches in all (calls of experiment.fn without a cache)
        records = [{**{p: c[p] for p in params}, "seed": c["seed"], **{m: r[m] for m in metrics}}
                   for c, r in zip(configs, results)]
        self.rows = pd.DataFrame.from_records(records, columns=[*params, "seed", *metrics])

    def __repr__(self) -> str:
        return (f"SweepResult({self.experiment!r}, {len(set(self.points))} grid points, "
                f"{len(self.rows)} rows, metrics {self.metrics})")

    def summary(self, by=None, level: float = 0.95) -> pd.DataFrame:
        """Per grid point (or per distinct value of the columns `by`): params, m_mean, m_lo, m_hi, count.

        count is the number of rows pooled (the repeats, unless `by` pools several grid points).
        With `by`, rows that agree on those columns are pooled (whatever else differs), in order
        of first appearance. lo and hi bound the Student-t `level` interval of the mean, inside the
        metric's range (the experiment's `ranges`: logit scale for a bounded metric, see `mean_ci`); with
        one row per group there is no error estimate and lo = hi = mean.
        """
        if by is None:
            keys, columns = self.points, list(self.params)
        else:
            columns = [by] if isinstance(by, str) else list(by)
            if not columns:
                raise ValueError("by must name at least one column")
            unknown = [c for c in columns if c not in self.rows.columns or c in self.metrics]
            if unknown:
                raise ValueError(f"by must name parameter columns ({', '.join([*self.params, 'seed'])}); "
                                 f"got {unknown[0]!r}")
            keys = [tuple(_hashable(c[col]) for col in columns) for c in self.configs]
        groups: dict = {}
        for i, k in enumerate(keys):
            groups.setdefault(k, []).append(i)
        out = []
        for members in groups.values():
            first = self.configs[members[0]]
            row = {col: first[col] for col in columns}
            row.update(_intervals({m: self.rows[m].to_numpy()[members] for m in self.metrics}, level,
                                   self.ranges))
            row["count"] = len(members)
            out.append(row)
        stat_cols = [f"{m}_{s}" for m in self.metrics for s in ("mean", "lo", "hi")]
        return pd.DataFrame.from_records(out, columns=[*columns, *stat_cols, "count"])

    def record(self, ranges=None) -> dict:
        """The CLI's JSON record of a one-point sweep: experiment, params, metrics (mean, ci95, values).

        With one repeat, ci95 is [mean, mean]: a single run carries no estimate of its error.
        `ranges` (metric -> (lo, hi); by default the experiment's) keeps each interval inside its metric's
        range (`mean_ci`'s bounds): a raw t-interval of few repeats may reach a negative MSE or an accuracy
        above 1.
        """
        ranges = self.ranges if ranges is None else ranges
        if len(set(self.points)) != 1:
            raise ValueError(f"record needs a one-point grid; this sweep has {len(set(self.points))} points")
        first = self.configs[0]
        metrics = {}
        for m in self.metrics:
            values = [float(v) for v in self.rows[m]]
            mean, lo, hi = mean_ci(values, bounds=ranges.get(m))
            metrics[m] = {"mean": mean, "ci95": [lo, hi], "values": values}
        return {"experiment": self.experiment,
                "params": {p: _cache.plain(first[p]) for p in self.params},
                "metrics": metrics}


def run(experiment: Experiment, grid: Mapping, repeats: int, seed: int = 0, *, fixed=None,
        cache: bool = True, progress: bool = True, executor: str | None = None,
        workers: int | None = None) -> SweepResult:
    """Every combination of `grid` (param -> values) x `repeats` seeds (seed + r) of `experiment`.

    `executor` ("local" or "dask"; default POISONLAB_EXECUTOR, else "local") says where the batches that
    the cache does not hold are trained, `workers` how many processes a local Dask cluster starts (see
    `lab.executor`); the table is the same either way.
    """
    if not isinstance(experiment, Experiment):
        raise ValueError(f"experiment must be an Experiment, got {type(experiment).__name__}")
    repeats = validate.positive_int("repeats", repeats)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    seed = int(seed)
    names = [p.name for p in experiment.params]
    clash = [m for m in experiment.metrics if m in names or m == "seed"]
    if clash:
        raise ValueError(f"experiment {experiment.name!r} names {clash[0]!r} both a metric and a parameter")
    grid = _check_grid(grid, names)
    fixed = {} if fixed is None else fixed
    if not isinstance(fixed, Mapping):
        raise ValueError(f"fixed must be a dict of parameter values, got {type(fixed).__name__}")
    fixed = {k: _python(v) for k, v in fixed.items()}
    for k in fixed:
        if k == "seed":
            raise ValueError("fixed must not set seed: repeat r uses seed + r (pass seed=)")
        if k in grid:
            raise ValueError(f"fixed and grid both set {k!r}: give it in one of them")
    executor = _executor.resolve(executor)
    if executor == "dask":
        workers = _executor.workers(workers)

    # Resolve everything first: a bad value anywhere fails before any training.
    configs, points = [], []
    for i, values in enumerate(itertools.product(*grid.values())):
        point = dict(zip(grid, values))
        for r in range(repeats):
            config = experiment.resolve(**fixed, **point, seed=seed + r)
            configs.append({k: _tuples(_cache.plain(v)) for k, v in config.items()})
            points.append(i)

    batches: dict = {}
    for i, config in enumerate(configs):
        batches.setdefault(experiment.batch_key(config), []).append(i)
    if experiment.max_batch is not None:  # memory: split each group into chunks trained one after another
        size = experiment.max_batch
        batches = {(key, j): members[j:j + size] for key, members in batches.items()
                   for j in range(0, len(members), size)}

    results: list = [None] * len(configs)
    hits = 0
    bar = _progress(len(batches), experiment.name, progress, "batch" if executor == "local" else "task")
    try:
        todo = []  # the batches the cache does not hold
        for members in batches.values():
            group = [dict(configs[i]) for i in members]  # copies: fn may not alter our configs
            metrics = _cache.load(experiment.name, group, experiment.metrics) if cache else None
            if metrics is None:
                todo.append((members, group))
                continue
            hits += 1
            for i, m in zip(members, metrics):
                results[i] = m
            if bar is not None:
                bar.update(1)
        # each result is stored as it arrives: an interrupted sweep resumes from the batches it finished
        call = functools.partial(_call, experiment)
        for k, metrics in _executor.as_completed(call, [g for _, g in todo], executor, workers):
            members, group = todo[k]
            if cache:
                _cache.store(experiment.name, group, experiment.metrics, metrics)
            for i, m in zip(members, metrics):
                results[i] = m
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return SweepResult(experiment.name, names, list(grid), list(experiment.metrics), configs, results,
                       points, cached=hits, batches=len(batches), ranges=experiment.ranges)


def _check_grid(grid, names: list[str]) -> dict:
    if not isinstance(grid, Mapping):
        raise ValueError(f"grid must be a dict of parameter -> list of values, got {type(grid).__name__}")
    if not grid:
        raise ValueError("grid must vary at least one parameter; got an empty grid "
                         "(for a single configuration use grid={name: [value]})")
    out = {}
    for k, values in grid.items():
        if k == "seed":
            raise ValueError("grid must not contain seed: repeat r uses seed + r (use repeats= and seed=)")
        if k not in names:
            raise ValueError(f"grid has unknown parameter {k!r}; parameters: {', '.join(names)}")
        if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
            raise ValueError(f"grid[{k!r}] must be a list of values, got {values!r}")
        values = [_python(v) for v in values]
        if not values:
            raise ValueError(f"grid[{k!r}] must hold at least one value, got an empty list")
        out[k] = values
    return out


def _call(experiment: Experiment, group: list[dict]) -> list[dict]:
    """experiment.fn on one batch, checked: one finite dict of every metric per configuration."""
    out = experiment.fn([dict(c) for c in group])
    out = list(out) if out is not None else []
    if len(out) != len(group):
        raise RuntimeError(f"{experiment.name}: fn returned {len(out)} results for {len(group)} configurations")
    results, diverged = [], []
    for config, metrics in zip(group, out):
        row = {}
        for m in experiment.metrics:
            if m not in metrics:
                raise RuntimeError(f"{experiment.name}: fn returned no metric {m!r} for configuration {config}")
            try:
                row[m] = float(metrics[m])
            except (TypeError, ValueError):
                raise RuntimeError(f"{experiment.name}: metric {m!r} is not a number: {metrics[m]!r}") from None
        if not all(math.isfinite(v) for v in row.values()):
            diverged.append((config, [m for m, v in row.items() if not math.isfinite(v)]))
        results.append(row)
    if diverged:
        config, bad = diverged[0]
        more = f" (and {len(diverged) - 1} more configurations)" if len(diverged) > 1 else ""
        raise DivergenceError(f"{experiment.name}: non-finite {', '.join(bad)} for configuration {config}{more}",
                              [c for c, _ in diverged])
    return results


def _progress(total: int, name: str, progress: bool, unit: str = "batch"):
    """A tqdm bar over batches (or a cluster's tasks), or None: off with progress=False, TQDM_DISABLE, or a non-terminal stderr."""
    if not progress or os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no"):
        return None
    from tqdm import tqdm

    # disable=None: tqdm stays silent when stderr is not a terminal (notebooks being rendered, logs);
    # delay: short sweeps never draw a bar; leave=False: a finished bar leaves no trace.
    return tqdm(total=total, desc=name, unit=unit, disable=None, delay=2.0, leave=False, file=sys.stderr)


def _python(v):
    """numpy/torch scalars and arrays as Python numbers and lists; tuples stay tuples (choices may hold them)."""
    if isinstance(v, tuple):
        return tuple(_python(x) for x in v)
    if isinstance(v, list):
        return [_python(x) for x in v]
    return _cache.plain(v)


def _hashable(v):
    return tuple(_hashable(x) for x in v) if isinstance(v, (list, tuple)) else v


def _tuples(v):
    # parameters given as lists (nargs) are tuples once resolved; keep them so after JSON round trips
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v
