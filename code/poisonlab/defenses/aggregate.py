"""Aggregators: how a minibatch's per-example gradients (K, B, ...) become one step (K, ...) per model.

Mean is the usual minibatch gradient (the trainers then differentiate the mean loss directly, never
forming per-example gradients). Median and TrimmedMean are coordinate-wise robust aggregates of the per-example gradients; WorkerMedian
is Yin et al. (2018)'s setting: the minibatch is split among workers, each reports the mean gradient of its
share, and the coordinate-wise median of those means is the step.
"""
from __future__ import annotations

import math

from torch import Tensor

from .. import validate

__all__ = ["Aggregator", "Mean", "Median", "TrimmedMean", "WorkerMedian", "AGGREGATES", "resolve"]

AGGREGATES = ("mean", "median", "trimmed-mean")


class Aggregator:
    """Reduces per-example gradients (K, B, ...) over the minibatch dimension 1 to (K, ...)."""

    is_mean = False

    def __call__(self, per_example: Tensor) -> Tensor:
        raise NotImplementedError


class Mean(Aggregator):
    is_mean = True

    def __call__(self, per_example):
        return per_example.mean(1)

    def __repr__(self):
        return "Mean()"


class Median(Aggregator):
    """Coordinate-wise median; the midpoint of the two middle values when B is even."""

    def __call__(self, per_example):
        return _aggregate(per_example, "median", 0.0)

    def __repr__(self):
        return "Median()"


class TrimmedMean(Aggregator):
    """Coordinate-wise mean of the values left after dropping floor(trim B) at each end."""

    def __init__(self, trim: float = 0.1):
        trim = validate.non_negative("trim", trim)
        if trim >= 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {trim!r}")
        self.trim = trim

    def __call__(self, per_example):
        return _aggregate(per_example, "trimmed-mean", self.trim)

    def __repr__(self):
        return f"TrimmedMean(trim={self.trim})"


class WorkerMedian(Aggregator):
    """Coordinate-wise median of the mean gradients of `workers` consecutive shares of the minibatch.

    Yin et al. (2018)'s median-of-means setting: the B examples are split into `workers` shares of
    sizes differing by at most one (torch.tensor_split; fewer shares when B < workers), each share's
    mean gradient is one worker's report, and the step is their coordinate-wise median (the midpoint of
    the two middle values for an even count). On clean data a median of means is a far less biased
    estimate of the mean gradient than the median of single examples' gradients: each mean is nearly
    Gaussian, hence symmetric. workers = 1 is the mean, workers = B the per-example Median.
    """

    def __init__(self, workers: int = 8):
        self.workers = validate.positive_int("workers", workers)

    def __call__(self, per_example):
        shares = per_example.tensor_split(min(self.workers, per_example.shape[1]), dim=1)
        means = per_example.new_empty((per_example.shape[0], len(shares), *per_example.shape[2:]))
        for j, share in enumerate(shares):
            means[:, j] = share.mean(1)
        return _aggregate(means, "median", 0.0)

    def __repr__(self):
        return f"WorkerMedian(workers={self.workers})"


def resolve(aggregate, trim) -> Aggregator:
    """The string shorthands ("mean", "median", "trimmed-mean" with `trim`) as objects; objects as they are."""
    if isinstance(aggregate, Aggregator):
        return aggregate
    validate.choice("aggregate", aggregate, AGGREGATES)
    trimmed = TrimmedMean(trim)  # today's checks of trim apply whatever the aggregate
    if aggregate == "mean":
        return Mean()
    return Median() if aggregate == "median" else trimmed


def _aggregate(per_example: Tensor, how: str, trim: float) -> Tensor:
    """Coordinate-wise median or trimmed mean over the minibatch dimension 1 of per-example gradients."""
    B = per_example.shape[1]
    ordered = per_example.sort(dim=1).values
    if how == "median":
        # The midpoint of the two middle values when B is even (the usual median, not torch's lower one).
        return 0.5 * (ordered[:, (B - 1) // 2] + ordered[:, B // 2])
    cut = int(math.floor(trim * B))
    return ordered[:, cut:B - cut].mean(1)
