"""The resources of a run: its estimated memory and time, checked against the machine before it starts."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..errors import ParameterError
from .experiment import Experiment

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


def mlp_params(widths) -> int:
    """Weights and biases of a fully connected network with these layer widths (input, hidden..., output)."""
    return sum((a + 1) * b for a, b in zip(widths, widths[1:]))


def sgd_steps(epochs: int, n: int, batch_size: int) -> int:
    """Minibatch steps of `epochs` epochs over n points."""
    return epochs * math.ceil(n / batch_size)


def run_seconds(flops: float, steps: int = 0, kind: str = "fast") -> float:
    """Time of `flops` operations at FLOPS plus `steps` SGD steps of the trainer `kind` (STEP_SECONDS)."""
    return flops / FLOPS + steps * STEP_SECONDS[kind]


def knn_bytes(n: int, d: int) -> int:
    """Memory of knn_disagreement over n points of d features (float64 distance blocks of 1024 rows)."""
    return 8 * (3 * min(1024, n) * n + n * d)


def blamed_cost(config: dict, total: float, seconds: float, sizes: dict, applies: dict | None = None) -> Cost:
    """The Cost of `total` bytes and `seconds`, blamed on the size parameter that exceeds its typical value
    the most (sizes: name -> typical value; applies: name -> False for one that this run does not use);
    memory is not blamed on epochs."""
    sizes = {k: v for k, v in sizes.items() if (applies or {}).get(k, True)}
    return Cost(total, seconds, blame(config, sizes), blame(config, {k: v for k, v in sizes.items() if k != "epochs"}))
