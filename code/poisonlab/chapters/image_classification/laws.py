"""The laws of the image-classification chapter: the exact laws of random flips, the fitted flip laws
and the held-out gap, each a prediction against a measurement with an interval.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import theory
from .experiment import EXPERIMENT
from .sweeps import at_alpha, noisy_heldout_gap


def law_chance(rows: pd.DataFrame, K: int = 10, label: str = ""):
    """Random flips: the accuracy at alpha = (K-1)/K is 1/K (labels independent of x, class symmetry)."""
    from ... import stats

    mean, lo, hi = at_alpha(rows, theory.threshold(K))
    return stats.Law(f"random flips{label}: accuracy 1/K at alpha = (K-1)/K", theory.chance(K), mean, lo, hi,
                    how=f"mean at alpha = {theory.threshold(K):.2f}")


def law_all_flipped(rows: pd.DataFrame, K: int = 10, label: str = ""):
    """Random flips: the accuracy at alpha = 1 lies in [0, (1 - a0)/(K - 1)], a0 the accuracy without flips.

    A test point the clean model gets right is always wrong at alpha = 1. One it misclassifies as c'
    gets its true class back with probability 1/(K-1) if it lies inside the region of c' (all classes
    but c' are equally labelled there), and with probability 0 if it lies between its own class and c'
    (both are then excluded): the truth lies between the two cases.
    """
    from ... import stats

    a0 = at_alpha(rows, 0.0)[0]
    upper = (1 - a0) / (K - 1)
    mean, lo, hi = at_alpha(rows, 1.0)
    return stats.Law(f"random flips{label}: accuracy in [0, (1 - a0)/(K - 1)] at alpha = 1", upper / 2, mean, lo, hi,
                    tol=upper / 2, how="mean at alpha = 1; predicted: the interval's middle, tol: its half-width")


def _by_alpha(rows: pd.DataFrame):
    means = rows.groupby("alpha", sort=True)["test_accuracy"].mean()
    return means.index.to_numpy(dtype=float), means.to_numpy()


def fit_random_law(rows: pd.DataFrame, K: int = 10):
    """Fit theory.random_flip_law (a0, kappa, alpha_c) to the mean accuracy at each alpha under random flips.

    Fitting the means (not the repeats) lets the residual scatter, misfit included, set the intervals;
    the repeats of one seed are correlated across alpha (common random numbers), so they are not
    independent points.
    """
    from ... import stats

    x, y = _by_alpha(rows)
    return stats.fit_curve(lambda a, a0, kappa, alpha_c: theory.random_flip_law(a, a0, kappa, alpha_c, K), x, y,
                          p0=[0.95, 1.5, theory.threshold(K)], names=["a0", "kappa", "alpha_c"],
                          bounds=([0, 0.05, 0.3], [1, 20, 1]))


def fit_two_class_law(rows: pd.DataFrame, share: float):
    """Fit theory.two_class_law (a0, kappa, alpha_c) to the mean accuracy at each alpha (target class or pair)."""
    from ... import stats

    x, y = _by_alpha(rows)
    return stats.fit_curve(lambda a, a0, kappa, alpha_c: theory.two_class_law(a, a0, kappa, alpha_c, share), x, y,
                          p0=[0.95, 1.5, share / 2], names=["a0", "kappa", "alpha_c"],
                          bounds=([0, 0.05, 0.01], [1, 20, 1]))


def law_points(model: str, S, seed: int = 1000, cache: bool = True):
    """Random flips at alpha = 0, (K-1)/K and 1 with S.law_repeats[model] fresh seeds: the points of the exact laws."""
    from ...lab import sweep

    return sweep.run(EXPERIMENT, grid={"alpha": [0.0, theory.threshold(10), 1.0]}, repeats=S.law_repeats[model],
                     seed=seed, fixed={"model": model, "epochs": S.epochs[model],
                                       "batch_size": S.batch_size[model], "flip": "random"},
                     cache=cache, progress=False)


def heldout_gap_law(curves: pd.DataFrame, K: int = 10, level: float = 0.95):
    """Law: the mean per-seed gap of noisy_heldout_gap is 0, with the interval from its sampling SD."""
    from scipy import stats as sps

    from ... import stats

    gap = noisy_heldout_gap(curves, K)
    mean = float(gap.gap.mean())
    half = float(sps.norm.ppf(0.5 + level / 2)) * float(np.sqrt((gap.sd ** 2).mean() / len(gap)))
    return stats.Law("poisoned held-out accuracy = alpha/(K-1) + s(alpha) x clean (mean gap 0)", 0.0, mean,
                    mean - half, mean + half, how="mean gap over seeds, sampling interval")
