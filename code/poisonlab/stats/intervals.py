"""Intervals: the Student-t interval of a mean and the delete-one-repeat jackknife of any statistic."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .. import validate


def mean_ci(values, level: float = 0.95, bounds=None) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (lo, hi) of `values`; one value gives [mean, mean].

    `bounds` = (low, high), the range of the metric: with both ends finite (an accuracy, a fraction) the
    t-interval is built on the logit scale of (mean - low)/(high - low) and mapped back (the delta method),
    so it stays inside the range and is asymmetric near an end; with one end infinite (an MSE, a norm) the
    t-interval is clipped to the range. A mean at an end of the range has no spread: [mean, mean].
    """
    level = validate.fraction("level", level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("values must hold at least one number, got none")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite, got a NaN or infinity")
    low, high = _bounds(bounds)
    if np.any(x < low) or np.any(x > high):
        raise ValueError(f"values must lie in bounds [{low}, {high}], got {x.min()} to {x.max()}")
    mean = float(x.mean())
    if x.size == 1:  # one repeat: no estimate of the spread, so no interval
        return mean, mean, mean
    t = float(stats.t.ppf(0.5 + level / 2, x.size - 1))
    se = float(x.std(ddof=1) / math.sqrt(x.size))
    if math.isfinite(low) and math.isfinite(high):
        u = (mean - low) / (high - low)
        if u <= 0.0 or u >= 1.0 or se == 0.0:
            return mean, mean, mean
        half = t * se / (high - low) / (u * (1 - u))  # d logit(u)/du = 1/(u(1-u))
        centre = math.log(u / (1 - u))
        lo_u, hi_u = (1 / (1 + math.exp(-(centre + s * half))) for s in (-1, 1))
        return mean, low + (high - low) * lo_u, low + (high - low) * hi_u
    return mean, max(mean - t * se, low), min(mean + t * se, high)


def _bounds(bounds) -> tuple[float, float]:
    if bounds is None:
        return -math.inf, math.inf
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be a pair (low, high), got {bounds!r}") from None
    if math.isnan(low) or math.isnan(high) or not low < high:
        raise ValueError(f"bounds must be a pair (low, high) with low < high, got {bounds!r}")
    return low, high


def jackknife(rows, statistic, level: float = 0.95):
    """statistic(rows) with a delete-one-repeat jackknife t-interval: (estimate, lo, hi, se).

    `rows` is a sweep's tidy table (a `seed` column). Repeats (seeds) are independent; the grid
    points of one repeat are not (common random numbers), so the interval leaves out whole repeats,
    never single points.
    """
    seeds = np.unique(rows["seed"].to_numpy())
    R = len(seeds)
    if R < 2:
        raise ValueError(f"rows must hold at least 2 repeats for a jackknife interval, got {R}")
    est = float(statistic(rows))
    loo = np.array([statistic(rows[rows["seed"] != s]) for s in seeds], dtype=float)
    est, lo, hi, se = jackknife_interval(est, loo, level)
    return est, float(lo), float(hi), float(se)


def jackknife_interval(estimate, leave_one_out, level: float = 0.95):
    """The delete-one-repeat jackknife t-interval of `estimate` from its values with each of the R repeats
    left out in turn (`leave_one_out`, repeats along its first axis; an estimate per column when it is 2-D):
    (estimate, lo, hi, se)."""
    loo = np.asarray(leave_one_out, dtype=float)
    R = loo.shape[0]
    if R < 2:
        raise ValueError(f"leave_one_out must hold at least 2 repeats for a jackknife interval, got {R}")
    se = np.sqrt((R - 1) / R * ((loo - loo.mean(0)) ** 2).sum(0))
    t = stats.t.ppf(0.5 + level / 2, R - 1)
    return estimate, estimate - t * se, estimate + t * se, se
