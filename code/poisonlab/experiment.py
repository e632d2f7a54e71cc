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
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class ParameterError(ValueError):
    """A bad value for one named parameter."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


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


class DivergenceError(RuntimeError):
    """Training diverged (its loss grew by train.GROWTH or became non-finite) or a metric is non-finite.

    Carries the offending configurations and, when known, the parameter to blame (`name`, e.g. "lr")
    with the learning rate and the losses at the start and the end of training.
    """

    def __init__(self, message: str, configs: list[dict] | None = None, *, name: str | None = None,
                 lr: float | None = None, start: float | None = None, final: float | None = None):
        super().__init__(message)
        self.configs = configs or []
        self.name, self.lr, self.start, self.final = name, lr, start, final
        self.hint: str | None = None  # what would be stable, where an experiment knows it

    def line(self) -> str:
        """One line for the command line: the learning rate, how the loss grew, what would be stable."""
        if self.lr is None:
            return str(self).splitlines()[0] if str(self) else "training diverged"
        if self.start is not None and self.final is not None and math.isfinite(self.final):
            how = f"loss grew from {self.start:.3g} to {self.final:.3g}"
        else:
            how = "loss or parameters became non-finite"
        flag = "--" + (self.name or "lr").replace("_", "-")
        return f"{flag} {self.lr:g} diverged ({how})" + (f"; {self.hint}" if self.hint else "")


def check_finite(name: str, config: dict, metrics: dict) -> None:
    bad = [k for k, v in metrics.items() if not math.isfinite(float(v))]
    if bad:
        raise DivergenceError(f"{name}: non-finite {', '.join(bad)} for configuration {config}", [config])


# ---------------------------------------------------------------- resources: memory and time of a run

MEMORY_ENV = "POISONLAB_MEMORY_LIMIT"  # bytes a run may use (default: the memory available now)
TIME_ENV = "POISONLAB_TIME_LIMIT"  # seconds a run may take without --yes (default: TIME_LIMIT)
TIME_LIMIT = 3600.0
GB = 1024.0**3


@dataclass(frozen=True)
class Cost:
    """Estimated peak memory (bytes) and time (seconds) of a run, and the parameter that drives them.

    Estimates are deliberately rough: memory counts the largest arrays (data, their float64 copies,
    parameters, activations, distance blocks) with generous factors; time assumes a fast machine
    (1e10 floating-point operations per second and a small fixed cost per SGD step), so that a run
    refused for time would really take longer than the limit.
    """

    bytes: float
    seconds: float
    blame: str  # the parameter (name) that makes the run big
    memory_blame: str | None = None  # where memory and time are driven by different parameters


def available_memory() -> float:
    """Bytes a run may allocate: $POISONLAB_MEMORY_LIMIT, else MemAvailable (/proc/meminfo), else
    the free physical pages (os.sysconf), else infinity (unknown)."""
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        return float(env)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES")) * float(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def time_limit() -> float:
    """Seconds a run may take without --yes: $POISONLAB_TIME_LIMIT, else TIME_LIMIT (one hour)."""
    env = os.environ.get(TIME_ENV, "").strip()
    return float(env) if env else TIME_LIMIT


def _human_bytes(b: float) -> str:
    return f"{b / GB:.3g} GB" if b >= 0.1 * GB else f"{b / 1024**2:.3g} MB"


def _human_time(s: float) -> str:
    return f"{s / 3600:.3g} hours" if s >= 3600 else f"{s / 60:.3g} minutes" if s >= 60 else f"{s:.3g} s"


def check_cost(experiment: Experiment, config: dict, repeats: int, yes: bool = False) -> Cost | None:
    """Refuse (ParameterError naming the parameter) a run whose estimated memory exceeds what the machine
    has, or whose estimated time exceeds the time limit unless `yes`."""
    if experiment.cost is None:
        return None
    cost = experiment.cost(config, repeats)
    limit = available_memory()
    if cost.bytes > limit:
        name = cost.memory_blame or cost.blame
        raise ParameterError(name, f"this run needs about {_human_bytes(cost.bytes)} of memory, more than the "
                                   f"{_human_bytes(limit)} available ({name} = {_plain(config[name])}); "
                                   f"make it smaller")
    if not yes and cost.seconds > time_limit():
        raise ParameterError(cost.blame, f"this run would take about {_human_time(cost.seconds)} (at least; "
                                         f"limit {_human_time(time_limit())}, {cost.blame} = "
                                         f"{_plain(config[cost.blame])}); make it smaller or pass --yes to run it")
    return cost


def _plain(v):
    return " ".join(map(str, v)) if isinstance(v, (list, tuple)) else v


def blame(config: dict, defaults: dict) -> str:
    """The size parameter whose value exceeds its typical value (`defaults`: name -> value) the most."""
    def ratio(name):
        v, d = config.get(name), defaults[name]
        if v is None:
            return 0.0
        if isinstance(v, (list, tuple)):
            v = math.prod(v) if v else 1
        return float(v) / float(d)
    return max(defaults, key=ratio)


# Rough speed of the machine (optimistic: time estimates are lower bounds)
FLOPS = 1e10
STEP_SECONDS = {"fast": 1e-5, "generic": 2e-4}


def _hashable(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


# The CLI name of each experiment -> its module, poisonlab.chapters.<chapter>.experiment, which registers it on
# import (imported only when the experiment is run: `poisonlab --help` stays fast).
MODULES = {"linear": "poisonlab.chapters.linear_regression.experiment",
           "logistic": "poisonlab.chapters.logistic_regression.experiment",
           "images": "poisonlab.chapters.image_classification.experiment"}
KNOWN = tuple(MODULES)
_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    _REGISTRY[experiment.name] = experiment
    return experiment


def available() -> list[str]:
    """Names of the experiments whose module exists in this installation."""
    return [n for n in KNOWN if _installed(MODULES[n])]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def get(name: str) -> Experiment:
    """The registered experiment `name` (imports its module on first use)."""
    if name not in _REGISTRY:
        if name not in available():
            raise ValueError(f"experiment must be one of {', '.join(available())}; got {name!r}")
        importlib.import_module(MODULES[name])
    return _REGISTRY[name]


def full_batch_note(batch_size: int, n_train: int) -> list[str]:
    """The note of a run whose minibatches are the whole training set (argparse cannot see it)."""
    if batch_size > n_train:
        return [f"--batch-size {batch_size} exceeds the {n_train} training points: every step is full-batch "
                f"gradient descent on all of them"]
    return []
