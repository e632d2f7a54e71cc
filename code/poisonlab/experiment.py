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


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or metric; carries the offending configurations."""

    def __init__(self, message: str, configs: list[dict] | None = None):
        super().__init__(message)
        self.configs = configs or []


def check_finite(name: str, config: dict, metrics: dict) -> None:
    bad = [k for k, v in metrics.items() if not math.isfinite(float(v))]
    if bad:
        raise DivergenceError(f"{name}: non-finite {', '.join(bad)} for configuration {config}", [config])


def _hashable(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


# Experiments live in poisonlab.experiments.<name>, each registering itself on import.
KNOWN = ("linear", "logistic", "images")
_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    _REGISTRY[experiment.name] = experiment
    return experiment


def available() -> list[str]:
    """Names of the experiments whose module exists in this installation."""
    return [n for n in KNOWN if importlib.util.find_spec(f"poisonlab.experiments.{n}") is not None]


def get(name: str) -> Experiment:
    """The registered experiment `name` (imports its module on first use)."""
    if name not in _REGISTRY:
        if name not in available():
            raise ValueError(f"experiment must be one of {', '.join(available())}; got {name!r}")
        importlib.import_module(f"poisonlab.experiments.{name}")
    return _REGISTRY[name]
