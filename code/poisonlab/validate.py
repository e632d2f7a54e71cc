"""Checks at the public boundary: each raises ValueError naming the parameter and its allowed range."""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable


def _num(name, value):
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(x):
        raise ValueError(f"{name} must be a number, got NaN")
    return x


def fraction(name: str, value) -> float:
    """A number in [0, 1]."""
    x = _num(name, value)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return x


def non_negative(name: str, value) -> float:
    """A finite number >= 0 (standard deviations, margins)."""
    x = _num(name, value)
    if not (0.0 <= x < math.inf):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return x


def positive(name: str, value) -> float:
    """A finite number > 0 (learning rates, Huber's delta)."""
    x = _num(name, value)
    if not (0.0 < x < math.inf):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return x


def finite(name: str, value) -> float:
    """Any finite number (means, biases)."""
    x = _num(name, value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return x


def positive_int(name: str, value, minimum: int = 1) -> int:
    """A whole number >= minimum (n, d, m, epochs, batch size)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, numbers.Real)) or value != int(value):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def choice(name: str, value, choices: Iterable[str]) -> str:
    """One of a fixed set of names (losses, attacks, models, solvers)."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def finite_array(name: str, values):
    """Tensors, lists and arrays as a float numpy array; NaN or infinity is an error."""
    import numpy as np

    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    try:
        a = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers, got {type(values).__name__}") from None
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got a NaN or infinity")
    return a
