"""Experiments: a named function of many configurations, with declared and checked parameters.

An `Experiment` turns one list of configurations (dicts of resolved parameters, each with a
`seed`) into one dict of metrics per configuration. It trains all configurations of the list at
once (the batched engine), so the sweep runner hands it groups of configurations that may share
one tensor program: those that agree on every parameter declared `batch=False`.
The CLI (`poisonlab run <name>`) builds one flag per parameter from the same declaration.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DivergenceError, ParameterError

if TYPE_CHECKING:
    from .cost import Cost


@dataclass(frozen=True)
class Param:
    """One parameter: default, type, check (raises ValueError naming it), CLI help."""

    name: str
    default: Any
    type: type = float
    help: str = ""
    check: Callable[[str, Any], Any] | None = None
    choices: tuple | None = None
    nargs: Any = None  # "*" for a list (e.g. hidden widths), 2 for a pair
    batch: bool = True  # may differ between models trained together

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def resolve(self, value):
        if value is None and self.default is None:
            return None
        if self.nargs is not None:
            value = tuple(value)
        if self.choices is not None:
            for v in (value if self.nargs is not None else (value,)):
                if v not in self.choices:
                    raise ParameterError(self.name, f"{self.name} must be one of "
                                         f"{', '.join(map(str, self.choices))}; got {v!r}")
        if self.check is not None:
            value = self.check(self.name, value)
        return value


@dataclass
class Experiment:
    """A named experiment: `fn(configs) -> [metrics]`, with declared parameters and metric names."""

    name: str
    fn: Callable[[list[dict]], list[dict]]
    params: Sequence[Param]
    metrics: Sequence[str]
    help: str = ""
    check: Callable[[dict], None] | None = None  # cross-parameter checks; raises ParameterError
    save_data: Callable[[dict, str], None] | None = None  # writes one configuration's data (CLI --save-data)
    max_batch: int | None = None  # most configurations trained in one call (memory bound), None: no limit
    # cost(config, repeats) -> Cost: memory and time of one CLI run, estimated before anything is allocated
    cost: Callable[[dict, int], "Cost"] | None = None
    # poisoned(config) -> the number of training points the attack poisons (round(alpha n_train))
    poisoned: Callable[[dict], int] | None = None
    # notes(config) -> lines saying what the run does differently from what its flags suggest
    notes: Callable[[dict], list] | None = None
    # metric -> (lo, hi): the range of its values (intervals are clipped to it); absent: unbounded
    ranges: dict = field(default_factory=dict)
    _by_name: dict = field(init=False, repr=False)

    def __post_init__(self):
        self._by_name = {p.name: p for p in self.params}

    def resolve(self, **overrides) -> dict:
        """Defaults updated by `overrides`, every value checked; unknown names rejected."""
        unknown = set(overrides) - set(self._by_name) - {"seed"}
        if unknown:
            name = sorted(unknown)[0]
            raise ParameterError(name, f"{self.name} has no parameter {name!r}; parameters: "
                                 f"{', '.join(self._by_name)}")
        config = {}
        for p in self.params:
            try:
                config[p.name] = p.resolve(overrides.get(p.name, p.default))
            except ParameterError:
                raise
            except ValueError as e:
                raise ParameterError(p.name, str(e)) from None
        if self.check is not None:
            self.check(config)
        if "seed" in overrides:
            config["seed"] = int(overrides["seed"])
        return config

    def batch_key(self, config: dict) -> tuple:
        """Configurations with equal keys may be trained together."""
        return tuple((p.name, _hashable(config[p.name])) for p in self.params if not p.batch)

    def __call__(self, seed: int = 0, **params) -> dict:
        """One configuration, one seed: its metrics. Non-finite metrics are an error."""
        config = self.resolve(**params, seed=seed)
        (metrics,) = self.fn([config])
        check_finite(self.name, config, metrics)
        return metrics


def seed_streams(seed: int, step: int, names=("data", "attack", "model")) -> dict:
    """Independent seeds of one repeat `seed`, one per random stream: names[i] -> seed + i * step.

    Distinct streams: the same integer for two draws would correlate them (e.g. the data with the
    poison); `step` larger than any repeat index keeps the streams of different repeats apart.
    """
    return {name: seed + i * step for i, name in enumerate(names)}


FILTERS = ("loss-filter", "knn-filter")  # the defences that discard training points before training


def filter_drop(config: dict) -> float:
    """The fraction of training points a filter discards: `drop`, by default alpha."""
    return config["alpha"] if config["drop"] is None else config["drop"]


def check_filter_flags(config: dict) -> None:
    """drop and knn_threshold only with the filters that use them, and not both (ParameterError naming the flag)."""
    defense = config["defense"]
    if config["drop"] is not None and defense not in FILTERS:
        raise ParameterError("drop", f"drop is only used with --defense loss-filter or knn-filter, "
                             f"got defense {defense}")
    if config["knn_threshold"] is not None and defense != "knn-filter":
        raise ParameterError("knn_threshold", f"knn_threshold is only used with --defense knn-filter, "
                             f"got defense {defense}")
    if config["knn_threshold"] is not None and config["drop"] is not None:
        raise ParameterError("drop", "give either drop (a budget) or knn_threshold, not both")


def check_filter_size(config: dict, n_train: int) -> None:
    """A filter's budget leaves training points, and the kNN filter has more points than neighbours."""
    if config["defense"] in FILTERS and config["knn_threshold"] is None:
        drop = filter_drop(config)
        if round(drop * n_train) >= n_train:
            name = "alpha" if config["drop"] is None else "drop"
            raise ParameterError(name, f"the filter would drop every training point ({name} = {drop}, drop defaults "
                                 "to alpha); give a smaller --drop")
    if config["defense"] == "knn-filter" and config["knn_k"] >= n_train:
        raise ParameterError("knn_k", f"knn_k must be smaller than the number of training points "
                             f"{n_train}, got {config['knn_k']}")


def check_kept(configs, keeps) -> None:
    """A filter (the defence of configs[k], keeps[k] its mask of kept training points, None: no filter) that
    discards every training point leaves nothing to train on: a ParameterError naming the flag that did it."""
    for c, keep in zip(configs, keeps):
        if keep is not None and not bool(keep.any()):
            if c["knn_threshold"] is not None:
                raise ParameterError("knn_threshold", f"the knn-filter discarded all {keep.numel()} training points "
                                     f"(every label disagrees with more than knn_threshold = {c['knn_threshold']} of "
                                     f"its {c['knn_k']} neighbours); raise --knn-threshold")
            name = "alpha" if c["drop"] is None else "drop"
            raise ParameterError(name, f"the {c['defense']} discarded all {keep.numel()} training points "
                                 f"({name} = {c[name]}); give a smaller --drop")


def by_training(configs: list[dict], run: Callable[[list[dict]], list[dict]], varying=("eps", "seed")) -> list[dict]:
    """Metrics of every configuration, `run` called once per group of configurations equal in everything but
    `varying` (what models trained together, or one trained model attacked at many budgets, may differ in)."""
    groups: dict = {}
    for i, c in enumerate(configs):
        groups.setdefault(tuple((k, _hashable(v)) for k, v in c.items() if k not in varying), []).append(i)
    out: list = [None] * len(configs)
    for members in groups.values():
        for i, metrics in zip(members, run([configs[i] for i in members])):
            out[i] = metrics
    return out


def check_finite(name: str, config: dict, metrics: dict) -> None:
    bad = [k for k, v in metrics.items() if not math.isfinite(float(v))]
    if bad:
        raise DivergenceError(f"{name}: non-finite {', '.join(bad)} for configuration {config}", [config])


def _hashable(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


# Each chapter package (poisonlab/chapters/<slug>/) names its experiment in its __init__.py: ALIAS, the
# name `poisonlab run <alias>` takes. Its experiment module registers the experiment when imported, which
# happens only when it is run (importing it imports torch; `poisonlab --help` stays fast).
_REGISTRY: dict[str, Experiment] = {}
_CHAPTERS: dict[str, str] | None = None


def register(experiment: Experiment) -> Experiment:
    _REGISTRY[experiment.name] = experiment
    return experiment


def chapters() -> dict[str, str]:
    """Short name (ALIAS) -> package of every chapter under poisonlab/chapters, in the order of the names."""
    global _CHAPTERS
    if _CHAPTERS is None:
        import pkgutil
        from pathlib import Path

        # by path and by name: the lab finds the chapters without depending on them
        found = {}
        for info in pkgutil.iter_modules([str(Path(__file__).resolve().parents[1] / "chapters")]):
            package = f"poisonlab.chapters.{info.name}"
            alias = getattr(importlib.import_module(package), "ALIAS", None)
            if alias in found:
                raise RuntimeError(f"two chapters take the name {alias!r}: {found[alias]} and {package}")
            if alias:
                found[alias] = package
        _CHAPTERS = dict(sorted(found.items()))
    return _CHAPTERS


def modules() -> dict[str, str]:
    """CLI name -> experiment module of every chapter package that has one."""
    return {alias: f"{package}.experiment" for alias, package in chapters().items()
            if importlib.util.find_spec(f"{package}.experiment") is not None}


def available() -> list[str]:
    """Names of the experiments of this installation's chapters."""
    return list(modules())


def get(name: str) -> Experiment:
    """The registered experiment `name` (imports its module on first use)."""
    if name not in _REGISTRY:
        if name not in available():
            raise ValueError(f"experiment must be one of {', '.join(available())}; got {name!r}")
        importlib.import_module(modules()[name])
    return _REGISTRY[name]


def full_batch_note(batch_size: int, n_train: int) -> list[str]:
    """The note of a run whose minibatches are the whole training set (argparse cannot see it)."""
    if batch_size > n_train:
        return [f"--batch-size {batch_size} exceeds the {n_train} training points: every step is full-batch "
                f"gradient descent on all of them"]
    return []
