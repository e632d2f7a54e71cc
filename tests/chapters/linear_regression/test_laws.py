"""The laws of the linear-regression chapter, in the quick profile: prediction against measurement.

Each law's interval is a 95% interval from the Monte Carlo error: a Student-t interval over
independent repeats (or Monte Carlo draws), or a delete-one-repeat jackknife t-interval when the
statistic is a function of a whole curve (a fitted exponent, a ratio pooled over a grid; repeats are
independent, grid points of one repeat are not). `Law.agrees` means: the prediction lies in it.
A test that cannot fail is a defect, so every law is also checked against a plausible *wrong*
prediction, the value its statistic would have if a named competing theory were true; that value
must fall outside the interval. (At 95% each true law fails with probability ~5% for an unlucky
seed; the seeds are fixed, so the suite is deterministic.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from poisonlab.chapters.linear_regression import (
    experiment as lin_exp, laws as lin_laws, studies as lin_studies, sweeps as lin,
)
from poisonlab.lab.profile import get_profile
from poisonlab.chapters.linear_regression import theory

PROFILE = get_profile("quick")
Z = lin._sizes(PROFILE)
N = theory.n_train(Z.n)
P = theory.poisoned_fraction(lin.ALPHA, N)


@pytest.fixture(scope="module")
def laws():
    return {name: lin_laws.law(name, PROFILE) for name in lin_laws.LAWS}


def _mean_over(values):
    return float(np.mean(values))


def wrong(name: str, laws: dict) -> float:
    """The value of law `name`'s statistic under a competing (wrong) theory."""
    grids = lin.grids(PROFILE)
    if name == "unbiased":  # a bias of a fifth of a standard error per coordinate
        return 0.2
    if name == "covariance":  # a covariance 20% too large (e.g. forgetting the design, sigma^2 (d+1)/N)
        return 1.2
    if name == "floor":  # the classical with-replacement floor: measured/predicted would average WR/RR
        cfg = lin_exp.EXPERIMENT.resolve(**lin.setting(PROFILE, out_dim=8))
        a = lin.predicted("train_mse", cfg)
        lrs = np.array(grids["floor"][0]["lr"])
        wr = theory.sgd_floor(lrs, cfg["batch_size"], N, 1, 8, a, replacement=True)
        rr = theory.sgd_floor(lrs, cfg["batch_size"], N, 1, 8, a)
        return _mean_over(wr / rr)
    if name == "intercept-shift":  # the intercept moving by the poison's mean per *clean* point, p mu/(1-p)
        return lin.MU / (1 - P)
    if name == "noise-variance":  # the naive noise variance sigma^2 + p s^2 (no p(1-p) mu^2 term)
        alphas = [a for a in grids["alpha"][0]["alpha"]]
        ratios = []
        for a in alphas:
            p = theory.poisoned_fraction(a, N)
            ratios.append((lin.SIGMA**2 + p * lin.S**2) / theory.effective_variance(lin.SIGMA, p, lin.MU, lin.S, N))
        return _mean_over(ratios)
    if name == "mu-exponent":  # error linear in the poison's mean
        return 1.0
    if name == "variance-exponent":  # error growing like sigma_eta rather than sigma_eta^2
        return 0.5
    if name == "alpha-exponent":  # error linear in the poisoned fraction
        return 1.0
    if name == "dimension":  # error growing like sqrt(d)
        return 0.5
    if name == "outputs":  # the parameter error not growing with m (as the per-output test MSE)
        return 0.0
    if name == "little-data":  # no finite-sample correction, E||W_hat - W||^2 = m a d / N
        d = 10
        ratios = [(theory.n_train(n) - d - 2) / theory.n_train(n) for n in grids["little"][0]["n"]
                  if theory.n_train(n) >= 3 * d]
        return _mean_over(ratios)
    if name in ("l1-breakdown", "huber-breakdown"):  # the first-order (influence-function) bias p gamma*
        loss = name.split("-")[0]
        alphas = grids["breakdown"][0]["alpha"]
        ps = [theory.poisoned_fraction(a, N) for a in alphas]
        first = [p * theory.gross_error_sensitivity(loss, lin.SIGMA, 1.0) for p in ps]
        exact = [theory.m_estimate(loss, p, lin.FAR_MU, lin.S, lin.SIGMA, 1.0) for p in ps]
        return float(np.sum(first) / np.sum(exact))
    if name in ("l1-efficiency", "huber-efficiency"):  # no efficiency loss (Huber) / L1's loss for Huber
        return 1.0 if name == "l1-efficiency" else laws["l1-efficiency"].predicted
    if name == "huber-risk":  # delta not mattering: every fit as bad as least squares under this poison
        deltas = grids["huber-delta"][0]["huber_delta"]
        changes = grids["huber-delta"][1]
        full = lin.m_prediction("risk", "huber_delta", PROFILE, **changes)(deltas)
        p = theory.poisoned_fraction(changes["alpha"], N)
        l2 = theory.m_excess_risk("l2", N, changes["dim"], p, lin.MU, lin.S, lin.SIGMA)
        return _mean_over(l2 / full)
    if name == "trimming":  # trimming without effect: the bias stays p mu, measured - predicted averages
        tab = lin_studies.trimming(PROFILE)
        tab = tab[tab["eta_mean"] == lin.FAR_MU]
        return float(np.mean(tab["predicted"] - P * lin.FAR_MU))
    if name == "forgetting":  # half-life growing like 1/sqrt(lr)
        return -0.5
    raise KeyError(name)


@pytest.mark.parametrize("name", list(lin_laws.LAWS))
def test_law_agrees(laws, name):
    law = laws[name]
    assert math.isfinite(law.fitted) and law.lo <= law.fitted <= law.hi
    assert law.agrees, f"{name}: predicted {law.predicted} outside [{law.lo}, {law.hi}] (fitted {law.fitted})"


@pytest.mark.parametrize("name", list(lin_laws.LAWS))
def test_law_rejects_a_wrong_prediction(laws, name):
    law = laws[name]
    alternative = wrong(name, laws)
    assert not (law.lo <= alternative <= law.hi), (
        f"{name}: the interval [{law.lo}, {law.hi}] also admits the wrong prediction {alternative}: "
        f"the test could not tell the law from it")


def test_laws_table_lists_every_law(laws):
    from poisonlab import stats as stats_module

    table = stats_module.table(list(laws.values()))
    assert len(table) == len(lin_laws.LAWS) and table["agrees"].all()

