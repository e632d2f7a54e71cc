"""poisonlab.chapters.logistic_regression.theory: the sympy derivations and the numeric predictions,
against references.

References: closed forms, scipy quadrature, and Monte Carlo with a tolerance of 4 standard errors
(binomial or sample standard error of the draws), so that a wrong formula fails and a right one
passes for any seed.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import integrate, special, stats

from poisonlab import data
from poisonlab.chapters.logistic_regression import theory as T

W1 = np.array([1.0, 0.0])


@pytest.fixture(scope="module")
def mixture():
    return data.default_mixture(2, w=torch.tensor(W1))


# ------------------------------------------------------------------ derivations


def test_flipped_posterior_keeps_the_bayes_rule_below_one_half():
    d = T.flipped_posterior()
    alpha, eta = d["alpha"], d["eta"]
    assert d["threshold"] == [sp.Rational(1, 2)]
    assert sp.simplify(d["margin"] - (1 - 2 * alpha) * (eta - sp.Rational(1, 2))) == 0
    assert d["at_half"] == sp.Rational(1, 2)


def test_flipped_logit_is_bounded():
    d = T.flipped_logit()
    assert sp.simplify(d["sup"] - sp.log((1 - d["alpha"]) / d["alpha"])) == 0
    assert sp.simplify(d["slope_at_0"] - (1 - 2 * d["alpha"])) == 0


def test_lda_and_logistic_score_checks_vanish():
    lda = T.lda_log_odds()
    assert lda["degree"] == 1 and lda["w_check"] == sp.zeros(2, 1) and lda["b_check"] == 0
    score = T.logistic_score()
    assert score["grad_check"] == sp.zeros(3, 1) and score["hess_check"] == sp.zeros(3, 3)


def test_norm_equation_pieces():
    d = T.norm_equation()
    assert d["stein_check"] == 0
    assert d["second_moment"] == sp.pi**2 / 3
    # the second moment of sigma' by quadrature
    quad = integrate.quad(lambda u: u * u * special.expit(u) * special.expit(-u), -np.inf, np.inf)[0]
    assert quad == pytest.approx(math.pi**2 / 3, rel=1e-9)
    a = d["asymptote"].subs(d["alpha"], sp.Rational(1, 100))
    assert float(a) == pytest.approx(math.pi / math.sqrt(12 * 0.01), rel=1e-12)


def test_reversal_thresholds():
    ml = T.most_confident_reversal()
    assert float(ml["t_star"]) == pytest.approx(math.sqrt(2 * math.log(2)))
    assert ml["value"] == pytest.approx(special.erfc(math.sqrt(math.log(2))), rel=1e-12)
    br = T.boundary_reversal()
    assert br["m_min_value"][0] == pytest.approx(math.sqrt(2 * math.log(2)))
    m = 1.5
    assert float(br["alpha_rev"].subs(br["m"], m)) == pytest.approx(T.reversal_alpha("boundary", m), rel=1e-12)
    assert T.reversal_moment()["E_abs_z"] == sp.sqrt(2) / sp.sqrt(sp.pi)


def test_rate_factors():
    r = T.rate_factors()
    for k in (1, 2, 5, 30):
        mc = float(r["mean_chi"].subs(r["d"], k))
        assert mc == pytest.approx(stats.chi(k).mean(), rel=1e-12)
    assert r["n_exponent"] == -sp.Rational(1, 2) and r["d_exponent"] == sp.Rational(1, 2)


# ------------------------------------------------------------------ numeric predictions


def test_weight_norm_solves_its_equation_and_is_antisymmetric():
    alphas = np.array([0.01, 0.1, 0.3, 0.45])
    a = T.flip_weight_norm(alphas)
    for al, ai in zip(alphas, a):  # E[z sigma(a z)] = (1 - 2 alpha) phi(0), by direct quadrature
        lhs = integrate.quad(lambda z: z * special.expit(ai * z) * stats.norm.pdf(z), -40, 40, limit=200)[0]
        assert lhs == pytest.approx((1 - 2 * al) * T.PHI0, rel=1e-8)
    assert T.flip_weight_norm(0.5) == 0.0
    np.testing.assert_allclose(T.flip_weight_norm(1 - alphas), -a, rtol=1e-10)
    assert math.isinf(T.flip_weight_norm(0.0))
    # the small-alpha asymptote: the relative error vanishes like alpha
    assert T.flip_weight_norm(1e-4) / T.weight_norm_asymptote(1e-4) == pytest.approx(1, abs=2e-3)
    assert abs(T.flip_weight_norm(0.3) / T.weight_norm_asymptote(0.3) - 1) > 0.2


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_alpha_is_named(bad):
    with pytest.raises(ValueError, match="alpha"):
        T.flip_weight_norm(bad)


def test_population_fit_reproduces_the_one_dimensional_norm():
    G = T.gaussian_mixture_of(3)
    w = np.array([0.6, 0.0, 0.8])
    for alpha in (0.1, 0.3):
        v, c = T.population_fit(T.profile("random", alpha), G, w)
        assert np.linalg.norm(v) == pytest.approx(T.flip_weight_norm(alpha), rel=1e-6)
        assert abs(c) < 1e-8 and np.arccos(v @ w / np.linalg.norm(v)) < 1e-5


def test_population_reversals_match_the_closed_forms():
    G = T.gaussian_mixture_of(2)
    assert T.population_reversal("most-confident", G, W1) == pytest.approx(T.reversal_alpha("most-confident"), abs=1e-5)
    assert T.population_reversal("boundary", G, W1, margin=1.5) == pytest.approx(T.reversal_alpha("boundary", 1.5),
                                                                                   abs=1e-5)
    assert math.isinf(T.population_reversal("boundary", G, W1, margin=0.8))  # below sqrt(2 log 2): never
    assert math.isinf(T.reversal_alpha("boundary", 0.8))


def test_population_risk_gradient_matches_finite_differences(mixture):
    prof = T.profile("most-confident", 0.25, mixture=mixture, w=W1)
    comps = T._Components(mixture, W1, 0.0)
    nodes = T._nodes(mixture, W1, 0.0, prof.breaks)
    q = prof(nodes[0])
    for theta in (np.array([1.0, 1.2, 0.1]), np.array([-0.3, 0.2, -0.5]), np.array([2.0, 0.0, 0.0])):
        _, g = T._risk(theta, comps, nodes, q, 0.0)
        h = 1e-6
        num = [(T._risk(theta + h * e, comps, nodes, q, 0.0)[0] - T._risk(theta - h * e, comps, nodes, q, 0.0)[0])
               / (2 * h) for e in np.eye(3)]
        np.testing.assert_allclose(g, num, atol=1e-7)


def test_population_accuracy_against_monte_carlo(mixture):
    v, c = np.array([1.5, 0.9]), 0.2
    X, _ = data.sample_mixture(mixture, 200_000, generator=torch.Generator().manual_seed(3))
    X = X.double().numpy()
    mc = np.mean(np.sign(X @ v + c) == np.sign(X @ W1))
    se = math.sqrt(mc * (1 - mc) / len(X))
    assert T.population_accuracy(v, c, mixture, W1) == pytest.approx(mc, abs=4 * se)


def test_strip_mass_against_monte_carlo(mixture):
    X, _ = data.sample_mixture(mixture, 200_000, generator=torch.Generator().manual_seed(4))
    z = X.double().numpy() @ W1
    for side, sel in ((None, np.abs(z) < 0.3), (1, (z > 0) & (z < 0.3)), (0, (z < 0) & (z > -0.3))):
        p = sel.mean()
        assert T.strip_mass(mixture, W1, 0.0, 0.3, side=side) == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / len(z)))


def test_profiles():
    prof = T.profile("random", 0.2)
    np.testing.assert_allclose(prof(np.array([-1.0, 1.0])), [0.2, 0.8])
    G = T.gaussian_mixture_of(1)
    ml = T.profile("most-confident", 0.3, mixture=G, w=[1.0])
    t = ml.breaks[-1]
    assert 2 * stats.norm.sf(t) == pytest.approx(0.3)  # the flipped tail holds alpha
    assert T.profile("random", 0.0).separable and T.profile("random", 1.0).separable
    assert not T.profile("one-sided", 0.1, mixture=G, w=[1.0], margin=0.5).separable
    with pytest.raises(ValueError, match="alpha"):
        T.profile("one-sided", 0.4, mixture=G, w=[1.0], margin=0.5)  # the strip holds only 0.19
    with pytest.raises(ValueError, match="margin"):
        T.profile("boundary", 0.1)
    with pytest.raises(ValueError, match="attack"):
        T.profile("sideways", 0.1)


def test_strip_margin_inverts_strip_mass(mixture):
    for side in (None, 1):
        m = T.strip_margin(mixture, W1, 0.0, 0.12, side=side)
        assert T.strip_mass(mixture, W1, 0.0, m, side=side) == pytest.approx(0.12, abs=1e-9)
    with pytest.raises(ValueError, match="mass"):
        T.strip_margin(mixture, W1, 0.0, 0.6, side=1)


def test_both_sided_full_strip_rotates_the_mixture_fit(mixture):
    # the tight clusters sit at opposite ends of the boundary: a rotated line separates a flipped strip
    m = T.strip_margin(mixture, W1, 0.0, 0.2)
    acc, _, angle = T.population_curve("boundary", [0.2], mixture, W1, margin=m)
    assert 1 - acc[0] == pytest.approx(0.2, abs=1e-3) and angle[0] > 0.1


def test_one_sided_full_strip_population_error_is_the_strip_mass(mixture):
    mass = T.strip_mass(mixture, W1, 0.0, 0.5, side=1)
    acc = T.population_curve("one-sided", [mass], mixture, W1, margin=0.5)[0][0]
    assert 1 - acc == pytest.approx(mass, rel=1e-9)


def test_error_constant_and_dimension_factor():
    assert T.dimension_factor(1) == 1.0
    rng = np.random.default_rng(0)
    for d in (2, 8):
        draws = np.sqrt(1 + rng.chisquare(d - 1, 400_000))
        assert T.dimension_factor(d) == pytest.approx(draws.mean(), abs=4 * draws.std() / math.sqrt(draws.size))
    K = [T.error_constant(a) for a in (0.1, 0.2, 0.3, 0.4)]
    assert all(np.diff(K) > 0)  # more flips, flatter likelihood, noisier boundary
    assert T.predicted_error(0.2, 400, 2) == pytest.approx(T.error_constant(0.2) * T.dimension_factor(2) / 20)
    with pytest.raises(ValueError, match="d"):
        T.dimension_factor(0)


def test_predicted_error_against_a_simulated_mle():
    """The asymptotic error K h(d)/sqrt(n) against the exact MLE on simulated flipped Gaussian data."""
    from poisonlab import solvers

    rng = torch.Generator().manual_seed(0)
    n, d, alpha, K = 3000, 3, 0.2, 40
    errs = []
    G = T.gaussian_mixture_of(d)
    w = np.array([1.0, 0.0, 0.0])
    X = torch.randn(K, n, d, generator=rng, dtype=torch.float64)
    y = (X[..., 0] > 0).double()
    flip = torch.rand(K, n, generator=rng, dtype=torch.float64) < alpha
    y = torch.where(flip, 1 - y, y)
    W, b = solvers.logistic(X, y)
    for k in range(K):
        errs.append(1 - T.population_accuracy(W[k].numpy(), float(b[k]), G, w))
    errs = np.array(errs)
    assert errs.mean() == pytest.approx(T.predicted_error(alpha, n, d), abs=4 * errs.std(ddof=1) / math.sqrt(K))


def test_knn_flag_probability():
    assert T.knn_flag_probability(0.2, 10, 0.5, True) == pytest.approx(stats.binom.sf(5, 10, 0.8))
    assert T.knn_flag_probability(0.2, 10, 0.5, False) == pytest.approx(stats.binom.sf(5, 10, 0.2))
    assert T.knn_flag_probability(0.0, 10, 0.5, False) == 0.0
    with pytest.raises(ValueError, match="k"):
        T.knn_flag_probability(0.2, 0, 0.5, True)


def test_rate_exponent():
    x = np.array([1.0, 2.0, 4.0])
    assert T.rate_exponent(x, 3 * x**-0.5) == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        T.rate_exponent([1.0], [2.0])


def test_population_accuracy_in_one_dimension_has_no_nan():
    # d = 1: s is a deterministic function of z (sd = 0), and the learned boundary sits on a node
    M = data.default_mixture(1, w=torch.tensor([1.0], dtype=torch.float64))
    for v, c in ((2.0, 0.1), (1.0, 0.0), (-1.0, 0.3)):
        acc = T.population_accuracy(np.array([v]), c, M, np.array([1.0]))
        X, _ = data.sample_mixture(M, 200_000, generator=torch.Generator().manual_seed(5))
        x = X.double().numpy()[:, 0]
        mc = np.mean(np.sign(v * x + c) == np.sign(x))
        assert math.isfinite(acc) and acc == pytest.approx(mc, abs=4 * math.sqrt(mc * (1 - mc) / len(x)) + 1e-9)
