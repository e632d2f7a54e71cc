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


def widths(name: str, value) -> tuple:
    """Layer widths (hidden layers, CNN channels): whole numbers >= 1, as a tuple (empty: none)."""
    return tuple(positive_int(name, v) for v in value)


def optional(check):
    """The check `check` letting None (a parameter's 'not given') through."""
    return lambda name, value: None if value is None else check(name, value)


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


# Training runs in float32: a valid float64 value may overflow to inf or underflow to 0 there.
F32_MAX = 3.4028234663852886e38  # numpy.finfo(float32).max
F32_TINY = 1.1754943508222875e-38  # numpy.finfo(float32).tiny, the smallest normal number
# Scales of data (label noise, poison, intercepts, distances) enter squared losses in float32: at most
# SCALE_MAX in magnitude keeps a square (1e30) and sums of up to 1e8 squares finite.
SCALE_MAX = 1e15


def positive32(name: str, value) -> float:
    """A number > 0 that float32 represents as a normal number: in [1.2e-38, 3.4e38] (learning rates, delta)."""
    x = positive(name, value)
    if not F32_TINY <= x <= F32_MAX:
        raise ValueError(f"{name} must be in [{F32_TINY:.2g}, {F32_MAX:.2g}] (float32, the dtype of training), "
                         f"got {value!r}")
    return x


def _scaled(name: str, x: float, value) -> float:
    if abs(x) > SCALE_MAX:
        raise ValueError(f"{name} must be at most {SCALE_MAX:g} in magnitude (its square must stay finite in "
                         f"float32, the dtype of training), got {value!r}")
    return x


def scale(name: str, value) -> float:
    """A finite number of magnitude <= SCALE_MAX (means, intercepts)."""
    return _scaled(name, finite(name, value), value)


def non_negative_scale(name: str, value) -> float:
    """A number in [0, SCALE_MAX] (standard deviations, penalties)."""
    return _scaled(name, non_negative(name, value), value)


def positive_scale(name: str, value) -> float:
    """A number in (0, SCALE_MAX] (distances)."""
    return _scaled(name, positive(name, value), value)
