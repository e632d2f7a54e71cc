"""Unit tests of poisonlab.chapters.linear_regression: its theory and its sweeps and studies.

Derivations are checked against independent references (numpy least squares, scipy integration and
root finding, closed forms) and, where they are statements about expectations, against Monte Carlo
with a tolerance of a few standard errors (the standard error is computed, not guessed).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import integrate, optimize, special, stats

from poisonlab.chapters.linear_regression import experiment as lin_exp, studies as lin_studies, sweeps as lin
from poisonlab.chapters.linear_regression import theory


# ---------------------------------------------------------------- derivations (sympy)

def test_normal_equations_match_numpy_least_squares():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = 1.5 * x - 0.3 + rng.normal(size=40)
    ne = theory.normal_equations()
    moments = dict(zip(sp.symbols(r"\overline{x} \overline{y} \overline{x^2} \overline{xy} \overline{y^2}", real=True),
                       (x.mean(), y.mean(), (x**2).mean(), (x * y).mean(), (y**2).mean())))
    w, b = float(ne["slope"].subs(moments)), float(ne["intercept"].subs(moments))
    ref = np.linalg.lstsq(np.column_stack([x, np.ones_like(x)]), y, rcond=None)[0]
    assert (w, b) == pytest.approx(tuple(ref), rel=1e-10)
    # the loss in moments is the mean squared error
    loss = float(ne["loss"].subs({**moments, ne["w"]: w, ne["b"]: b}))
    assert loss == pytest.approx(np.mean((y - w * x - b) ** 2), rel=1e-10)


def test_gauss_markov_differences_are_zero():
    gm = theory.gauss_markov(3)
    assert gm["bias"] == sp.zeros(2, 1)
    assert gm["covariance_gap"] == sp.zeros(2, 2)
    with pytest.raises(ValueError, match="n_points"):
        theory.gauss_markov(2)


def test_poisoned_population():
    pop = theory.poisoned_population()
    assert pop["slope"] == pop["w"]
    assert sp.simplify(pop["intercept_shift"] - theory.p * theory.mu) == 0
    expected = theory.sigma**2 + theory.p * theory.s**2 + theory.p * (1 - theory.p) * theory.mu**2
    assert sp.simplify(pop["noise_variance"] - expected) == 0


def test_exact_count_variance_by_monte_carlo():
    # Cov of Z o eta with exactly k of N poisoned, projected orthogonally to 1: eigenvalue a_N - sigma^2
    N, k, mu, s = 12, 4, 3.0, 0.5
    rng = np.random.default_rng(1)
    draws = 200_000
    Z = np.zeros((draws, N))
    idx = np.argsort(rng.random((draws, N)), axis=1)[:, :k]
    np.put_along_axis(Z, idx, 1.0, axis=1)
    e = Z * rng.normal(mu, s, size=(draws, N))
    e_perp = e - e.mean(1, keepdims=True)  # the part the intercept does not absorb
    measured = (e_perp**2).sum(1) / (N - 1)  # mean square per dimension of the (N-1)-dim complement
    predicted = theory.effective_variance(0.0, k / N, mu, s, N)
    se = measured.std() / math.sqrt(draws)
    assert abs(measured.mean() - predicted) < 4 * se


def test_ols_risk_by_monte_carlo():
    # E||theta_hat - theta||^2 / m for poisoned OLS, against fresh draws of everything (batched lstsq)
    N, d, m, sigma, alpha, mu, s = 30, 3, 2, 1.0, 0.3, 2.0, 1.5
    k = round(alpha * N)
    g = torch.Generator().manual_seed(0)
    draws = 20_000
    X = torch.randn(draws, N, d, generator=g, dtype=torch.float64)
    E = sigma * torch.randn(draws, N, m, generator=g, dtype=torch.float64)
    mask = torch.argsort(torch.rand(draws, N, generator=g), dim=1) < k
    E = E + mask.unsqueeze(-1) * (mu + s * torch.randn(draws, N, m, generator=g, dtype=torch.float64))
    A = torch.cat([X, torch.ones(draws, N, 1, dtype=torch.float64)], 2)
    err = torch.linalg.lstsq(A, E).solution  # theta_hat - theta (the truth is 0 without loss of generality)
    sq = (err**2).sum((1, 2)) / m
    predicted = theory.ols_excess_risk(N, d, sigma, k / N, mu, s)
    se = float(sq.std()) / math.sqrt(draws)
    assert abs(float(sq.mean()) - predicted) < 4 * se
    w_sq = (err[:, :d] ** 2).sum((1, 2))
    assert abs(float(w_sq.mean()) - theory.ols_weight_error_sq(N, d, m, sigma, k / N, mu, s)) < 4 * float(w_sq.std()) / math.sqrt(draws)


def test_risk_leading_order_agrees_to_first_order():
    risk = theory.ols_risk()
    assert risk["leading_gap_order_1_over_N"] == 0
    exact = theory.ols_excess_risk(10_000, 3, 1.0, 0.2, 4.0, 2.0)
    lead = float(risk["leading"].subs({theory.N: 10_000, theory.d: 3, theory.sigma: 1.0, theory.p: 0.2,
                                       theory.mu: 4.0, theory.s: 2.0}))
    assert exact == pytest.approx(lead, rel=1e-5)


def test_sgd_floor_limits():
    # with replacement: gamma a (N-B) / (B (N-1) m (1 - gamma/m)) per coefficient and output, m (d+1) of them
    lr, B, N, d, m, a = 0.05, 20, 400, 2, 3, 1.7
    wr = theory.sgd_floor(lr, B, N, d, m, a, replacement=True)
    assert wr == pytest.approx(m * (d + 1) * lr * a * (N - B) / (B * (N - 1) * m * (1 - lr / m)), rel=1e-10)
    # reshuffling removes noise: below the with-replacement floor, and close to it when one epoch
    # spans many half-lives (gamma h T large)
    assert theory.sgd_floor(lr, B, N, d, m, a) < wr
    assert theory.sgd_floor(0.9, 4, N, d, 2, a) == pytest.approx(theory.sgd_floor(0.9, 4, N, d, 2, a, replacement=True),
                                                                 rel=0.02)
    assert theory.sgd_floor(lr, N, N, d, m, a) == 0  # full batch: no noise
    with pytest.raises(ValueError, match="lr"):
        theory.sgd_floor(3.0, B, N, d, m, a)
    with pytest.raises(ValueError, match="batch_size"):
        theory.sgd_floor(lr, 30, N, d, m, a)


def test_sgd_floor_by_simulation():
    # reshuffled minibatch SGD on a fixed least-squares problem, from its optimum: E||theta - theta_hat||^2
    rng = np.random.default_rng(3)
    N, B, lr, reps = 200, 10, 0.1, 300
    X = np.column_stack([rng.normal(size=N), np.ones(N)])
    y = X @ np.array([1.0, -2.0]) + rng.normal(size=N)
    theta_hat = np.linalg.lstsq(X, y, rcond=None)[0]
    a = np.mean((y - X @ theta_hat) ** 2)
    gaps = []
    for _ in range(reps):
        theta = theta_hat.copy()
        for _epoch in range(6):
            order = rng.permutation(N)
            for t in range(N // B):
                i = order[t * B:(t + 1) * B]
                theta -= lr * 2 / B * X[i].T @ (X[i] @ theta - y[i])
        gaps.append(np.sum((theta - theta_hat) ** 2))
    gaps = np.array(gaps)
    predicted = theory.sgd_floor(lr, B, N, 1, 1, a)
    # leading order in gamma: allow the Monte Carlo error and 15% for the neglected Hessian fluctuations
    assert abs(gaps.mean() - predicted) < 4 * gaps.std() / math.sqrt(reps) + 0.15 * predicted


def test_contraction_and_half_life():
    der = theory.contraction_derivation()
    assert sp.simplify(der["half_life_small_lr"] - theory.m * sp.log(2) / (2 * theory.lr)) == 0
    assert theory.half_life(0.1) == pytest.approx(math.log(2) / -math.log(0.8))
    assert (1 - 2 * 0.1) ** theory.half_life(0.1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="lr"):
        theory.half_life(0.6)


# ---------------------------------------------------------------- robust losses

@pytest.mark.parametrize("nu, tau, delta", [(0.3, 1.0, 1.0), (-2.0, 1.5, 0.5), (40.0, 5.0, 1.345)])
def test_huber_moments_against_quadrature(nu, tau, delta):
    f = theory._moment_fns("huber")
    pdf = stats.norm(nu, tau).pdf
    psi = lambda u: np.clip(u, -delta, delta)  # noqa: E731
    lo, hi = nu - 12 * tau, nu + 12 * tau
    pts = [p for p in (-delta, delta) if lo < p < hi]
    mean = integrate.quad(lambda u: psi(u) * pdf(u), lo, hi, points=pts)[0]
    square = integrate.quad(lambda u: psi(u) ** 2 * pdf(u), lo, hi, points=pts)[0]
    slope = stats.norm(nu, tau).cdf(delta) - stats.norm(nu, tau).cdf(-delta)
    assert float(f["mean"](nu, tau, delta)) == pytest.approx(mean, abs=1e-9)
    assert float(f["square"](nu, tau, delta)) == pytest.approx(square, abs=1e-9)
    assert float(f["slope"](nu, tau, delta)) == pytest.approx(slope, abs=1e-12)


def test_l1_bias_is_the_median_of_the_contaminated_noise():
    p, mu, s, sigma = 0.3, 2.0, 1.0, 1.0
    tau = math.hypot(sigma, s)
    cdf = lambda c: (1 - p) * stats.norm.cdf(c / sigma) + p * stats.norm.cdf((c - mu) / tau) - 0.5  # noqa: E731
    assert theory.m_estimate("l1", p, mu, s, sigma) == pytest.approx(optimize.brentq(cdf, -10, 10), abs=1e-9)


def test_limits():
    for p in (0.05, 0.2, 0.45):  # two forms of the same L1 limit
        assert theory.limit_bias("l1", p, 2.0) == pytest.approx(2.0 * special.ndtri(1 / (2 * (1 - p))), rel=1e-10)
        # far poison: the finite-mu bias has reached the limit
        assert theory.m_estimate("l1", p, 200.0, 1.0, 2.0) == pytest.approx(theory.limit_bias("l1", p, 2.0), rel=1e-6)
        assert theory.m_estimate("huber", p, 200.0, 1.0, 2.0, 1.0) == pytest.approx(
            theory.limit_bias("huber", p, 2.0, 1.0), rel=1e-6)
    assert theory.limit_bias("l1", 0.5, 1.0) == math.inf and theory.limit_bias("l2", 0.1, 1.0) == math.inf
    l1 = theory.l1_limit_derivation()
    assert l1["breakdown"] == sp.Rational(1, 2)
    # Huber's limit lies between L1's (delta -> 0, scaled) and least squares'
    assert theory.limit_bias("huber", 0.3, 1.0, 1e-4) == pytest.approx(theory.limit_bias("l1", 0.3, 1.0), rel=1e-3)


def test_efficiencies():
    assert theory.gaussian_efficiency("l1") == pytest.approx(2 / math.pi, rel=1e-9)
    assert theory.gaussian_efficiency("huber", 1.0, 1.345) == pytest.approx(0.95, abs=5e-4)  # Huber's classic choice
    assert theory.gaussian_efficiency("l2") == 1.0
    assert theory.gross_error_sensitivity("l1", 1.0) == pytest.approx(math.sqrt(math.pi / 2))
    # under contamination least squares' variance is the mixture's
    assert theory.asymptotic_variance("l2", 0.3, 2.0, 1.0, 1.0) == pytest.approx(1 + 0.3 + 0.21 * 4)


def test_trimmed_fixed_point():
    assert theory.trimmed_fixed_point(0.3, 5.0, 1.0, 1.0, 0.0) == pytest.approx(1.5)
    assert abs(theory.trimmed_fixed_point(0.3, 50.0, 1.0, 1.0, 0.35)) < 1e-6  # far poison, all trimmed
    assert theory.trimmed_fixed_point(0.3, 50.0, 1.0, 1.0, 0.1) > 5  # not enough trimmed
    with pytest.raises(ValueError, match="trim"):
        theory.trimmed_fixed_point(0.3, 5.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("call, name", [
    (lambda: theory.ols_excess_risk(5, 3, 1.0), "N"),
    (lambda: theory.ols_excess_risk(50, 3, -1.0), "sigma"),
    (lambda: theory.ols_excess_risk(50, 3, 1.0, p_=1.5), "p"),
    (lambda: theory.m_estimate("l3", 0.1, 1, 1, 1), "loss"),
    (lambda: theory.m_estimate("l1", 0.6, 1, 1, 1), "p"),
    (lambda: theory.m_estimate("huber", 0.1, 1, 1, 1, 0.0), "delta"),
    (lambda: theory.poisoned_fraction(1.2, 10), "alpha"),
    (lambda: theory.n_train(0), "n"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------- the experiment and the chapter's helpers

def test_fit_is_deterministic_and_consistent():
    configs = [lin_exp.EXPERIMENT.resolve(n=200, epochs=3, seed=s) for s in (0, 1)]
    first, second = lin_exp.fit(configs), lin_exp.fit([dict(c) for c in configs])
    assert first == second
    for m in first:
        assert m["param_error"] ** 2 == pytest.approx(m["weight_error"] ** 2 + (m["intercept_bias"]) ** 2, rel=1e-5)
        assert m["excess_risk"] == pytest.approx(m["param_error"] ** 2, rel=1e-5)


def test_exact_solver_and_mlp_metrics():
    exact = lin_exp.fit([lin_exp.EXPERIMENT.resolve(n=200, solver="exact", seed=0)])[0]
    assert exact["exact_gap"] == 0
    ref = lin_exp.make_data({**lin_exp.EXPERIMENT.resolve(n=200), "seed": 0})[1]
    X = np.column_stack([ref.X_train.numpy(), np.ones(ref.n_train)])
    theta = np.linalg.lstsq(X, ref.y_train.numpy(), rcond=None)[0]
    assert exact["intercept_bias"] == pytest.approx(theta[1, 0] - ref.params["b"].item(), abs=1e-4)
    mlp = lin_exp.fit([lin_exp.EXPERIMENT.resolve(n=200, hidden=(8,), epochs=3, seed=0)])[0]
    assert all(math.isfinite(v) for v in mlp.values())


def test_predicted_matches_theory_for_the_exact_solver():
    c = lin_exp.EXPERIMENT.resolve(**lin.setting("quick", solver="exact"))
    N = theory.n_train(c["n"])
    p = theory.poisoned_fraction(c["alpha"], N)
    assert lin.predicted("excess_risk", c) == pytest.approx(theory.ols_excess_risk(N, 1, 1.0, p, c["eta_mean"], c["eta_std"]))
    assert lin.predicted("exact_gap_sq", c) == 0
    with pytest.raises(ValueError, match="config"):
        lin.predicted("test_mse", {**c, "loss": "l1"})
    with pytest.raises(ValueError, match="metric"):
        lin.predicted("accuracy", c)


def test_jackknife_covers_a_known_slope():
    # a synthetic sweep: y = 2 x + noise per repeat; the jackknife interval of the slope contains 2
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = pd.DataFrame([{"x": x, "seed": r, "y": 2 * x + rng.normal()} for r in range(30) for x in range(5)])
    fake = type("R", (), {"rows": rows})()
    est, lo, hi, se = lin.jackknife(fake, "x", "y", lin.slope)
    assert lo < 2 < hi and se > 0
    assert est == pytest.approx(np.polyfit(range(5), rows.groupby("x")["y"].mean(), 1)[0])


def test_half_life_of_an_exact_exponential():
    steps = np.arange(100)
    f = 0.9**steps
    assert lin_studies.half_life_of(steps, f, 20) == pytest.approx(math.log(2) / -math.log(0.9))
    with pytest.raises(ValueError, match="fraction"):
        lin_studies.half_life_of(steps, f - 0.5, 20)


def test_trimmed_least_squares_removes_far_outliers():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 1, generator=g)
    y = 2 * X + 1 + 0.1 * torch.randn(300, 1, generator=g)
    y[:30] += 100
    W, b = lin_studies.trimmed_least_squares(X, y, trim=0.15)
    assert W.item() == pytest.approx(2, abs=0.05) and b.item() == pytest.approx(1, abs=0.05)
    Wb, bb = lin_studies.trimmed_least_squares(X.expand(3, -1, -1), y.expand(3, -1, -1), trim=0.15)  # batched
    assert torch.allclose(bb[:, 0], b.expand(3), atol=1e-5)


def test_ellipse_is_the_level_set():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    x, y = lin.ellipse([1.0, -1.0], cov, level=0.9)
    v = np.stack([x - 1.0, y + 1.0])
    q = np.einsum("in,ij,jn->n", v, np.linalg.inv(cov), v)
    assert np.allclose(q, stats.chi2.ppf(0.9, 2))


@pytest.mark.parametrize("mu, s", [(5.0, 5.0), (5.0, 2.0), (5.0, 0.0), (3.0, 4.0), (-5.0, 2.0)])
def test_noise_peak_is_the_argmax_of_the_noise_variance(mu, s):
    ps = np.linspace(0.0, 1.0, 100_001)
    a = theory.effective_variance(1.0, ps, mu, s)
    assert theory.noise_peak(mu, s) == pytest.approx(ps[int(np.argmax(a))], abs=1e-4)


def test_the_chapter_poison_has_no_interior_peak():
    # sigma_eta = mu_eta: the training MSE rises to alpha = 1; "falls again as p -> 1" would need s < mu
    assert theory.noise_peak(lin.MU, lin.S) == 1.0
    a = theory.effective_variance(lin.SIGMA, np.array([0.6, 0.8, 1.0]), lin.MU, lin.S)
    assert a[0] < a[1] < a[2]
    assert theory.noise_peak(lin.MU, 0.5 * lin.MU) < 1.0
    with pytest.raises(ValueError, match="s_"):
        theory.noise_peak(1.0, -1.0)
