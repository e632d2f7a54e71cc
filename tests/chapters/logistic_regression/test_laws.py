"""The laws of the logistic-regression chapter, in the quick profile: prediction against measurement.

Each law's interval is the 95% interval of its Monte Carlo error, computed exactly as in the
chapter's laws table (`L_laws.law`): a Student-t interval over independent repeats for a mean, or a
delete-one-repeat jackknife t-interval for a statistic of a whole curve (a fitted slope or exponent,
a ratio pooled over a grid), because repeats are independent and the grid points of one repeat are
not (common random numbers). `Law.agrees` means the prediction lies in that interval.
A test that cannot fail is a defect, so every law is also checked against a plausible *wrong*
prediction, the value its statistic would take under a named competing theory; that value must lie
outside the interval. (At 95% a true law misses its interval for about one seed in twenty; the seeds
are fixed, so the suite is deterministic.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from poisonlab.chapters.logistic_regression import laws as L_laws
from poisonlab.lab.profile import get_profile
from poisonlab.chapters.logistic_regression import theory as T

PROFILE = get_profile("quick")
S = L_laws.CHAPTER.sizes(PROFILE)


@pytest.fixture(scope="module")
def laws():
    return {name: L_laws.law(name, PROFILE) for name in L_laws.LAWS}


def _mean_chi(k):
    return math.sqrt(2) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2))


def wrong(name: str) -> float:
    """The value of law `name`'s statistic under a competing (wrong) theory."""
    if name == "mirror":  # no reversal above 1/2: acc(alpha) + acc(1 - alpha) ~ 2 acc(0) ~ 2
        return 2.0
    if name == "norm":  # the small-alpha asymptote pi / sqrt(12 alpha) taken as the norm at every alpha
        a = np.array(S.norm_alphas)
        return float(np.mean(T.weight_norm_asymptote(a) / T.flip_weight_norm(a)))
    if name == "norm-exponent":  # the asymptote's exponent -1/2 taken as exact on the grid
        return -0.5
    if name == "mixture":  # random flips leave the boundary exactly in place: accuracy 1
        return 1.0
    if name == "strip":  # the boundary moving only halfway across the flipped strip
        return 0.5
    if name in ("reversal-maxloss", "reversal-boundary"):  # reversal at 1/2, as for random flips
        return 0.5
    if name == "reversal-mixture":  # the Gaussian threshold erfc(sqrt(log 2)) carried over to the mixture
        return T.reversal_alpha("max-loss")
    if name == "evasion":  # evasion that can only push points of one side across
        return 0.5
    if name == "rate-n":  # the fast rate d/n of separable (noise-free) data
        return -1.0
    if name == "rate-d":  # an error growing linearly with the dimension
        return 1.0
    if name == "rate-constant":  # the error of the tilt alone, (1/pi) E[angle], forgetting the intercept
        dims = [2] * len(S.ns) + list(S.dims)
        return float(np.mean([T.dimension_factor(d) / _mean_chi(d - 1) for d in dims]))
    if name in ("knn-flipped", "knn-clean"):  # "at least half" instead of "more than half" of the neighbours
        a, k = max(S.knn_alphas), S.knn_k
        p = 1 - a if name == "knn-flipped" else a
        return float(sps.binom.sf(math.ceil(k / 2) - 1, k, p))
    raise KeyError(name)


@pytest.mark.parametrize("name", list(L_laws.LAWS))
def test_law_agrees(laws, name):
    law = laws[name]
    assert math.isfinite(law.fitted) and law.lo <= law.fitted <= law.hi
    assert law.agrees, f"{name}: predicted {law.predicted} outside [{law.lo}, {law.hi}] (fitted {law.fitted})"


@pytest.mark.parametrize("name", list(L_laws.LAWS))
def test_law_rejects_a_wrong_prediction(laws, name):
    law = laws[name]
    alternative = wrong(name)
    assert not (law.lo <= alternative <= law.hi), (
        f"{name}: the interval [{law.lo}, {law.hi}] also admits the wrong prediction {alternative}: "
        f"the test could not tell the law from it")


def test_laws_table_lists_every_law(laws):
    from poisonlab import stats as stats_module

    table = stats_module.table(list(laws.values()))
    assert len(table) == len(L_laws.LAWS) and table["agrees"].all()


def test_law_is_memoised_and_named():
    with pytest.raises(ValueError, match="name"):
        L_laws.law("no-such-law", PROFILE)
    assert L_laws.law("mirror", PROFILE) is L_laws.law("mirror", PROFILE)
