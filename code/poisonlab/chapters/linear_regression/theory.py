"""Linear regression under label poisoning: the derivations (sympy) and their numeric predictions.

Setting, as in the chapter: x ~ N(0, I_d); y = W x + b + eps with eps ~ N(0, sigma^2 I_m); N training
points of which exactly k = round(alpha N) are poisoned, y <- y + eta with eta ~ N(mu 1_m, s^2 I_m); p = k/N.
Every derivation is a function returning sympy expressions (shown in the chapter; computed once per
process and cached, so treat the returned dicts as read-only); the numeric
predictions below are lambdified from those same expressions, so the overlays, the laws table and
the tests all use the algebra the reader sees. Losses follow PyTorch: MSELoss averages over the m
outputs, HuberLoss is r^2/2 inside |r| <= delta and delta (|r| - delta/2) outside.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp
import sympy.stats as st
from scipy import optimize, special

from ... import data, validate

__all__ = [
    "normal_equations", "normal_equations_matrix", "gauss_markov", "poisoned_population",
    "exact_count_covariance", "ols_risk", "sgd_floor_derivation", "contraction_derivation",
    "influence_functions", "location_moments", "l1_limit_derivation", "huber_limit_equation",
    "n_train", "poisoned_fraction", "effective_variance", "intercept_shift", "ols_excess_risk",
    "ols_weight_error_sq", "ols_test_mse", "sgd_floor", "sgd_test_mse", "contraction", "half_life",
    "sgd_distance", "init_distance_sq", "m_estimate", "limit_bias", "asymptotic_variance",
    "gaussian_efficiency", "m_excess_risk", "gross_error_sensitivity", "partial_moments", "trimmed_fixed_point",
    "leverage_breakdown", "leverage_breakdown_fraction", "sample_breakdown", "feature_breakdown_leverage",
    "median_max_bias", "max_bias", "huber_minimax_equation", "huber_minimax_delta",
]

# One set of symbols for the whole chapter.
N, d, m = sp.symbols("N d m", positive=True)
# names as in the book's notation: poison eta ~ N(mu_eta, sigma_eta^2), learning rate gamma
sigma = sp.symbols("sigma", positive=True)
s, mu = sp.symbols(r"\sigma_\eta \mu_\eta", positive=True)
p = sp.symbols("p", nonnegative=True)
lr, B, T, h = sp.symbols(r"\gamma B J h", positive=True)
delta, tau = sp.symbols("delta tau", positive=True)
c, nu, r = sp.symbols("c nu r", real=True)


def _Phi(z):
    """The standard normal CDF in terms of erf (sympy)."""
    return (1 + sp.erf(z / sp.sqrt(2))) / 2


# ---------------------------------------------------------------- least squares, clean data

@functools.lru_cache(maxsize=None)
def normal_equations() -> dict:
    """One input: the mean squared loss in sample moments, its gradient, and the solution (w, b)."""
    x, y, w, b = sp.symbols("x y w b", real=True)
    Sx, Sy, Sxx, Sxy, Syy = sp.symbols(r"\overline{x} \overline{y} \overline{x^2} \overline{xy} \overline{y^2}",
                                       real=True)
    moments = {x: Sx, y: Sy, x**2: Sxx, x * y: Sxy, y**2: Syy}
    # (1/N) sum (y - w x - b)^2: expand, then replace each monomial in (x, y) by its sample mean
    poly = sp.Poly(sp.expand((y - w * x - b) ** 2), x, y)
    loss = sum(coef * (moments[x**i * y**j] if i + j else 1) for (i, j), coef in poly.terms())
    gradient = [sp.diff(loss, w), sp.diff(loss, b)]
    solution = sp.solve(gradient, [w, b], dict=True)[0]
    return {"loss": loss, "gradient": gradient, "solution": solution, "w": w, "b": b,
            "slope": sp.simplify(solution[w]), "intercept": sp.simplify(solution[b])}


@functools.lru_cache(maxsize=None)
def normal_equations_matrix(n_points: int = 5, n_coef: int = 3) -> dict:
    """Matrix form: d/dtheta ||y - X theta||^2 = -2 X^T (y - X theta), zero at theta = (X^T X)^{-1} X^T y."""
    X = sp.MatrixSymbol("X", n_points, n_coef)
    theta = sp.MatrixSymbol("theta", n_coef, 1)
    y = sp.MatrixSymbol("y", n_points, 1)
    loss = (y - X * theta).T * (y - X * theta)
    gradient = sp.diff(loss, theta)
    return {"loss": loss, "gradient": gradient, "solution": (X.T * X).I * X.T * y}


@functools.lru_cache(maxsize=None)
def gauss_markov(n_points: int = 3) -> dict:
    """OLS on a generic design of n_points: E[theta_hat] - theta and Cov(theta_hat) - sigma^2 (X^T X)^{-1} (both zero)."""
    n_points = validate.positive_int("n_points", n_points, minimum=3)
    xs = sp.symbols(f"x1:{n_points + 1}", real=True)
    es = sp.Matrix(sp.symbols(f"epsilon1:{n_points + 1}", real=True))
    w, b = sp.symbols("w b", real=True)
    X = sp.Matrix([[1, xi] for xi in xs])
    theta = sp.Matrix([b, w])
    A = (X.T * X).inv() * X.T  # theta_hat = A y
    theta_hat = A * (X * theta + es)
    # E[eps] = 0 and theta_hat is linear in eps, so E[theta_hat] = theta_hat at eps = 0
    bias = sp.simplify(theta_hat.subs({e: 0 for e in es}) - theta)
    # Cov(A eps) = A (sigma^2 I) A^T
    covariance = sp.simplify(sigma**2 * A * A.T)
    gap = sp.simplify(covariance - sigma**2 * (X.T * X).inv())
    return {"design": X, "estimator": A, "bias": bias, "covariance": covariance, "covariance_gap": gap}


# ---------------------------------------------------------------- the poisoned population

@functools.lru_cache(maxsize=None)
def poisoned_population() -> dict:
    """Population OLS under y' = w x + b + eps + Z eta, Z ~ Bernoulli(p): slope, intercept, noise variance."""
    w, b = sp.symbols("w b", real=True)
    x = st.Normal("x", 0, 1)
    eps = st.Normal("epsilon", 0, sigma)
    eta = st.Normal("eta", mu, s)
    Z = st.Bernoulli("Z", p)
    y = w * x + b + eps + Z * eta
    # moments written out (E[xy] - E[x]E[y], E[e^2] - E[e]^2): the same algebra, much faster in sympy.stats
    slope = sp.simplify((st.E(x * y) - st.E(x) * st.E(y)) / st.variance(x))
    intercept = sp.simplify(st.E(y) - slope * st.E(x))
    e = eps + Z * eta
    noise = sp.factor_terms(sp.expand(st.E(e**2) - st.E(e) ** 2))
    return {"slope": slope, "intercept": intercept, "intercept_shift": sp.simplify(intercept - b),
            "noise_variance": noise, "w": w, "b": b}


@functools.lru_cache(maxsize=None)
def exact_count_covariance() -> dict:
    """Covariance of the poison Z_i eta_i when exactly k of N points are poisoned (sampling without replacement).

    Returns the diagonal, the off-diagonal, and a_N, the variance that OLS sees (the part orthogonal
    to the constant vector, which the intercept absorbs), all in terms of p = k/N.
    """
    k = sp.symbols("k", positive=True)
    EZ, EZZ = k / N, k * (k - 1) / (N * (N - 1))
    diag = EZ * (s**2 + mu**2) - EZ**2 * mu**2
    off = EZZ * mu**2 - EZ**2 * mu**2
    a_N = sigma**2 + diag - off  # eigenvalue of Cov(e) on the subspace orthogonal to 1
    sub = {k: p * N}
    derived = a_N.subs(sub)
    tidy = sigma**2 + p * s**2 + p * (1 - p) * mu**2 * N / (N - 1)
    if sp.simplify(derived - tidy) != 0:  # the presentable form is the derived one
        raise AssertionError("a_N: tidy form differs from the derivation")
    return {"diagonal": sp.factor(diag.subs(sub)), "off_diagonal": sp.factor(sp.simplify(off.subs(sub))),
            "a_N": tidy, "intercept_noise": sp.simplify((sigma**2 / N + k * s**2 / N**2).subs(sub))}


@functools.lru_cache(maxsize=None)
def ols_risk() -> dict:
    """Expected excess risk per output of poisoned OLS, E||theta_hat - theta||^2 / m, term by term.

    Ingredients: b_hat - b = e_bar - (W_hat - W) x_bar; E(X_c^T X_c)^{-1} = I/(N - d - 2) (inverse Wishart,
    N - 1 degrees of freedom after centring); x_bar ~ N(0, I/N) independent of X_c for Gaussian x.
    """
    a_N = exact_count_covariance()["a_N"]
    weights = a_N * d / (N - d - 2)
    intercept = (p * mu) ** 2 + (sigma**2 + p * s**2) / N + a_N * d / (N * (N - d - 2))
    total = (p * mu) ** 2 + (sigma**2 + p * s**2) / N + a_N * d * (N + 1) / (N * (N - d - 2))
    if sp.simplify(total - weights - intercept) != 0:
        raise AssertionError("ols_risk: tidy total differs from the sum of its terms")
    # exactly pN points are poisoned, so the intercept's noise lacks the binomial term p(1-p)mu^2
    leading = (p * mu) ** 2 + (sigma**2 + p * s**2 + d * (sigma**2 + p * s**2 + p * (1 - p) * mu**2)) / N
    # check: the exact total agrees with the leading-order form up to O(1/N^2)
    t = sp.symbols("t", positive=True)  # t = 1/N
    gap = sp.series(sp.simplify((total - leading).subs(N, 1 / t)), t, 0, 2).removeO()
    return {"a_N": a_N, "weights": weights, "intercept": intercept, "total": total,
            "leading": leading, "leading_gap_order_1_over_N": sp.simplify(gap)}


# ---------------------------------------------------------------- SGD

@functools.lru_cache(maxsize=None)
def sgd_floor_derivation() -> dict:
    """Stationary variance of one coordinate of constant-step SGD on a quadratic, with and without replacement.

    delta_{t+1} = q delta_t - lr xi_t with q = 1 - lr h. With replacement the xi_t are independent
    (variance v): V = lr^2 v / (1 - q^2). Random reshuffling (the DataLoader's epochs): the T batch
    gradients of an epoch sum to zero at the optimum (variance v, covariance -v/(T-1)); at epoch
    ends V = lr^2 v [T/(T-1) S2 - S1^2/(T-1)] / (1 - q^{2T}), S1 = sum q^j, S2 = sum q^{2j}.
    """
    q = sp.symbols("q", positive=True)
    v = sp.symbols("v", positive=True)
    j = sp.symbols("j", integer=True, nonnegative=True)
    V = sp.symbols("V", positive=True)
    with_replacement = sp.solve(sp.Eq(V, q**2 * V + lr**2 * v), V)[0]
    S1 = sp.simplify(sp.summation(q**j, (j, 0, T - 1)))
    S2 = sp.simplify(sp.summation(q ** (2 * j), (j, 0, T - 1)))
    epoch_noise = lr**2 * v * (T / (T - 1) * S2 - S1**2 / (T - 1))
    reshuffled = sp.solve(sp.Eq(V, q ** (2 * T) * V + epoch_noise), V)[0]
    # Mean squared loss over m outputs: Hessian (2/m) I, per-example gradient variance 4 a / m^2 per
    # coordinate; a batch of B drawn without replacement from N divides it by B (N - B)/(N - 1).
    a = sp.symbols("a", positive=True)
    subs = {q: 1 - lr * h, h: 2 / m, v: 4 * a / m**2 * (N - B) / (B * (N - 1))}
    return {"with_replacement": with_replacement, "S1": S1, "S2": S2, "reshuffled": reshuffled,
            "with_replacement_msl": sp.simplify(with_replacement.subs(subs).subs(subs)),
            "q": q, "v": v, "a": a, "substitutions": subs}


@functools.lru_cache(maxsize=None)
def contraction_derivation() -> dict:
    """Mean dynamics of SGD on the mean squared loss: E delta_{t+1} = (1 - 2 lr/m) E delta_t; half-life in steps."""
    t = sp.symbols("t", positive=True)
    q = 1 - 2 * lr / m
    half = sp.solve(sp.Eq(q**t, sp.Rational(1, 2)), t)[0]
    return {"q": q, "half_life": half, "half_life_small_lr": sp.limit(half * lr, lr, 0) / lr}


# ---------------------------------------------------------------- robust losses

@functools.lru_cache(maxsize=None)
def influence_functions() -> dict:
    """psi = rho' for the three losses (per unit residual r), and E psi' under N(0, sigma^2) noise."""
    rho = {"l2": r**2, "l1": sp.Abs(r),
           "huber": sp.Piecewise((r**2 / 2, sp.Abs(r) <= delta), (delta * (sp.Abs(r) - delta / 2), True))}
    psi = {"l2": 2 * r, "l1": sp.sign(r), "huber": sp.Piecewise((-delta, r < -delta), (delta, r > delta), (r, True))}
    for k in rho:  # psi really is the derivative of rho away from the kinks
        for r0 in (sp.Rational(-7, 2), sp.Rational(-1, 3), sp.Rational(1, 5), sp.Rational(5, 2)):
            point = {r: r0, delta: 1}
            assert sp.simplify(sp.diff(rho[k], r).subs(point) - psi[k].subs(point)) == 0
    z = sp.symbols("z", real=True)
    slope_l1 = 2 * sp.exp(0) / (sigma * sp.sqrt(2 * sp.pi))  # E[sign'] = 2 f(0)
    slope_huber = sp.simplify(2 * _Phi(delta / sigma) - 1)  # P(|eps| <= delta)
    IF = {"l2": r, "l1": sp.sign(r) / slope_l1, "huber": psi["huber"] / slope_huber}
    return {"rho": rho, "psi": psi, "influence": IF, "z": z,
            "sensitivity": {"l2": sp.oo, "l1": sp.simplify(1 / slope_l1), "huber": sp.simplify(delta / slope_huber)}}


@functools.lru_cache(maxsize=None)
def location_moments() -> dict:
    """For u ~ N(nu, tau^2): E[psi(u)], E[psi'(u)], E[psi(u)^2] of each loss, in closed form (sympy integrals).

    psi is the score normalised so that psi(u) = u near 0: u (l2), sign(u) (l1), clip(u, -delta, delta)
    (huber). The integrals over |u| <= delta are taken in the standard variable z = (u - nu)/tau.
    """
    z = sp.symbols("z", real=True)
    phi = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)
    z_lo, z_hi = (-delta - nu) / tau, (delta - nu) / tau
    P_in = _Phi(z_hi) - _Phi(z_lo)
    P_hi, P_lo = 1 - _Phi(z_hi), _Phi(z_lo)
    first_in = sp.simplify(sp.integrate((nu + tau * z) * phi, (z, z_lo, z_hi)))
    second_in = sp.integrate((nu + tau * z) ** 2 * phi, (z, z_lo, z_hi))  # unsimplified: stays finite numerically
    huber = {"mean": delta * P_hi - delta * P_lo + first_in, "slope": P_in,
             "square": delta**2 * (P_hi + P_lo) + second_in}
    l1 = {"mean": 1 - 2 * _Phi(-nu / tau), "slope": 2 * phi.subs(z, -nu / tau) / tau, "square": sp.Integer(1)}
    l2 = {"mean": nu, "slope": sp.Integer(1), "square": nu**2 + tau**2}
    return {"l2": l2, "l1": l1, "huber": huber}


@functools.lru_cache(maxsize=None)
def l1_limit_derivation() -> dict:
    """L1 intercept bias as mu -> oo: the median equation (1 - p) Phi(c/sigma) + p Phi((c - mu)/tau) = 1/2."""
    median_eq = (1 - p) * _Phi(c / sigma) + p * _Phi((c - mu) / tau) - sp.Rational(1, 2)
    limit_eq = sp.limit(median_eq, mu, sp.oo)
    solution = sp.solve(sp.Eq(limit_eq, 0), c)
    c_inf = sp.simplify(solution[0])
    return {"equation": median_eq, "limit_equation": limit_eq, "limit": c_inf,
            "breakdown": sp.solve(sp.Eq(p / (1 - p), 1), p)[0],
            "small_p": sp.series(c_inf, p, 0, 3).removeO()}


@functools.lru_cache(maxsize=None)
def huber_limit_equation() -> dict:
    """Huber intercept bias as mu -> oo: (1 - p) E[psi(eps - c)] + p delta = 0 (every poisoned residual clipped)."""
    mean = location_moments()["huber"]["mean"]
    clean = mean.subs({nu: -c, tau: sigma})
    equation = (1 - p) * clean + p * delta
    small_p = -p * delta / location_moments()["huber"]["slope"].subs({nu: 0, tau: sigma})
    return {"equation": equation, "first_order": -sp.simplify(small_p),
            "note": "a root exists iff p delta/(1 - p) < delta, i.e. p < 1/2 (the breakdown point)"}


# ================================================================ numeric predictions

def n_train(n) -> int:
    """Training-set size of make_linear's 80/20 split: n - round(0.2 n)."""
    return data.train_size(validate.positive_int("n", n))


def poisoned_fraction(alpha, N_train):
    """p = round(alpha N)/N, the fraction actually poisoned (the attack poisons exactly round(alpha N) points)."""
    N_train = validate.positive_int("N_train", N_train)
    a = np.asarray(alpha, dtype=float)
    if np.any((a < 0) | (a > 1)) or not np.all(np.isfinite(a)):
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    k = np.vectorize(lambda x: round(float(x) * N_train))(a)
    return k / N_train if np.ndim(a) else float(k) / N_train


def _check_common(N_, d_, sigma_, p_, mu_, s_):
    N_ = validate.positive_int("N", N_)
    d_ = validate.positive_int("d", d_)
    sigma_ = validate.non_negative("sigma", sigma_)
    s_ = np.asarray(s_, dtype=float)
    if np.any(s_ < 0) or not np.all(np.isfinite(s_)):
        raise ValueError(f"s must be finite and >= 0, got {s_!r}")
    p_ = np.asarray(p_, dtype=float)
    if np.any((p_ < 0) | (p_ > 1)) or not np.all(np.isfinite(p_)):
        raise ValueError(f"p must be in [0, 1], got {p_!r}")
    mu_ = np.asarray(mu_, dtype=float)
    if not np.all(np.isfinite(mu_)):
        raise ValueError(f"mu must be finite, got {mu_!r}")
    return N_, d_, sigma_, p_, mu_, s_


@functools.lru_cache(maxsize=None)
def _lambdas():
    risk = ols_risk()
    args = (N, d, sigma, p, mu, s)
    return {
        "a_N": sp.lambdify(args, risk["a_N"], "numpy"),
        "weights": sp.lambdify(args, risk["weights"], "numpy"),
        "total": sp.lambdify(args, risk["total"], "numpy"),
        "population_noise": sp.lambdify((sigma, p, mu, s), poisoned_population()["noise_variance"], "numpy"),
    }


def effective_variance(sigma_, p_, mu_, s_, N_=None):
    """Noise variance seen by OLS: sigma^2 + p s^2 + p(1-p) mu^2 (population) or a_N (exactly p N poisoned of N)."""
    if N_ is None:
        _, _, sigma_, p_, mu_, s_ = _check_common(1, 1, sigma_, p_, mu_, s_)
        return _lambdas()["population_noise"](sigma_, p_, mu_, s_)
    N_, _, sigma_, p_, mu_, s_ = _check_common(N_, 1, sigma_, p_, mu_, s_)
    return _lambdas()["a_N"](N_, 1, sigma_, p_, mu_, s_)


def noise_peak(mu_, s_) -> float:
    """The poisoned fraction p* at which the population noise variance sigma^2 + p s^2 + p(1-p) mu^2 peaks over
    [0, 1]: its derivative s^2 + (1 - 2p) mu^2 vanishes at (s^2 + mu^2)/(2 mu^2), solved by sympy; an interior
    peak only when s < mu, else p* = 1 (the variance rises all the way). mu = 0: no peak but the end, 1."""
    mu_, s_ = validate.finite("mu_", mu_), validate.non_negative("s_", s_)
    if mu_ == 0:
        return 1.0
    (root,) = sp.solve(sp.diff(poisoned_population()["noise_variance"], p), p)
    return float(min(1.0, root.subs({mu: abs(mu_), s: s_})))


def intercept_shift(p_, mu_):
    """b* - b = p mu: the population OLS intercept moves by the mean poison per point; the slope does not move."""
    return np.asarray(p_, dtype=float) * np.asarray(mu_, dtype=float)


def _need_dof(N_, d_):
    if N_ <= d_ + 2:
        raise ValueError(f"N must exceed d + 2 for a finite expected OLS error (inverse Wishart); got N={N_}, d={d_}")


def ols_excess_risk(N_, d_, sigma_, p_=0.0, mu_=0.0, s_=0.0):
    """E||theta_hat - theta||^2 / m for OLS with intercept on N poisoned points (exact; needs N > d + 2)."""
    N_, d_, sigma_, p_, mu_, s_ = _check_common(N_, d_, sigma_, p_, mu_, s_)
    _need_dof(N_, d_)
    return _lambdas()["total"](N_, d_, sigma_, p_, mu_, s_)


def ols_weight_error_sq(N_, d_, m_, sigma_, p_=0.0, mu_=0.0, s_=0.0):
    """E||W_hat - W||_F^2 = m a_N d / (N - d - 2)."""
    m_ = validate.positive_int("m", m_)
    N_, d_, sigma_, p_, mu_, s_ = _check_common(N_, d_, sigma_, p_, mu_, s_)
    _need_dof(N_, d_)
    return m_ * _lambdas()["weights"](N_, d_, sigma_, p_, mu_, s_)


def ols_test_mse(N_, d_, sigma_, p_=0.0, mu_=0.0, s_=0.0):
    """E[test MSE] of poisoned OLS on clean test data: sigma^2 + excess risk (independent of m)."""
    return sigma_**2 + ols_excess_risk(N_, d_, sigma_, p_, mu_, s_)


@functools.lru_cache(maxsize=None)
def _floor_lambdas():
    der = sgd_floor_derivation()
    q, v, a = der["q"], der["v"], der["a"]
    subs = der["substitutions"]
    full = {k: val for k, val in subs.items()}
    rr = der["reshuffled"].subs(q, full[q]).subs(h, full[h]).subs(v, full[v])
    wr = der["with_replacement"].subs(q, full[q]).subs(h, full[h]).subs(v, full[v])
    args = (lr, B, T, N, m, a)
    return {"rr": sp.lambdify(args, rr, "numpy"), "wr": sp.lambdify(args, wr, "numpy")}


def sgd_floor(lr_, batch_size, N_, d_, m_, a_, *, replacement=False):
    """E||theta_SGD - theta_hat||^2 at epoch ends of constant-step SGD on the mean squared loss (all m(d+1) coordinates).

    replacement=False: the DataLoader's reshuffled epochs (needs N divisible by the batch size, T = N/B
    batches per epoch, T >= 2); True: the classical with-replacement (Lyapunov) floor, for comparison.
    a_ is the mean square of the residuals at the optimum (for OLS, a_N (N - d - 1)/N). Leading order in
    lr: the fluctuations of the minibatch Hessians are neglected (relative corrections of order d/N and
    lr d/B, measured in the chapter).
    """
    N_ = validate.positive_int("N", N_)
    d_ = validate.positive_int("d", d_)
    m_ = validate.positive_int("m", m_)
    batch_size = validate.positive_int("batch_size", batch_size)
    a_ = np.asarray(a_, dtype=float)
    lr_ = np.asarray(lr_, dtype=float)
    if np.any(lr_ <= 0) or np.any(lr_ >= m_):
        raise ValueError(f"lr must be in (0, m) = (0, {m_}) for a stable mean-squared SGD, got {lr_!r}")
    if N_ % batch_size:
        raise ValueError(f"batch_size must divide N = {N_} (equal batches), got {batch_size}")
    if batch_size == N_:  # full-batch gradient descent: no noise, no floor
        return np.zeros(np.broadcast(lr_, a_).shape)
    T_ = N_ // batch_size
    if T_ < 2 and not replacement:
        raise ValueError(f"batch_size must be at most N/2 for reshuffled epochs (T >= 2), got {batch_size}")
    f = _floor_lambdas()["wr" if replacement else "rr"]
    return m_ * (d_ + 1) * f(lr_, batch_size, T_, N_, m_, a_)


def sgd_test_mse(lr_, batch_size, N_, d_, m_, sigma_, p_=0.0, mu_=0.0, s_=0.0):
    """E[test MSE] of converged constant-step SGD: OLS's test MSE plus its noise floor per output."""
    a_ = effective_variance(sigma_, p_, mu_, s_, N_)
    return ols_test_mse(N_, d_, sigma_, p_, mu_, s_) + sgd_floor(lr_, batch_size, N_, d_, m_, a_) / m_


def contraction(lr_, m_=1):
    """q = 1 - 2 lr/m, the factor by which one SGD step shrinks E[theta - theta_hat] (mean squared loss)."""
    return 1 - 2 * np.asarray(lr_, dtype=float) / m_


def half_life(lr_, m_=1):
    """Steps for E[theta - theta_hat] to halve: ln 2 / -ln(1 - 2 lr/m)."""
    q = contraction(lr_, m_)
    if np.any((q <= 0) | (q >= 1)):
        raise ValueError(f"lr must be in (0, m/2) for a monotone contraction, got {lr_!r}")
    return math.log(2) / -np.log(q)


def init_distance_sq(d_, m_, p_=0.0, mu_=0.0):
    """E||theta_init - theta_hat||^2: PyTorch's nn.Linear init (U(+-1/sqrt d)) against theta ~ N(0, I) moved by p mu."""
    return m_ * ((d_ + 1) / (3 * d_) + (d_ + 1) + (np.asarray(p_) * np.asarray(mu_)) ** 2)


def sgd_distance(steps, lr_, batch_size, N_, d_, m_, a_, start_sq):
    """E||theta_t - theta_hat||^2 after `steps` SGD steps from distance^2 start_sq: transient q^2t plus the floor's build-up."""
    q2t = contraction(lr_, m_) ** (2 * np.asarray(steps, dtype=float))
    return q2t * start_sq + (1 - q2t) * sgd_floor(lr_, batch_size, N_, d_, m_, a_)


# ---------------------------------------------------------------- M-estimators (L1, Huber) under poisoning

LOSSES = ("l2", "l1", "huber")


@functools.lru_cache(maxsize=None)
def _moment_fns(loss: str):
    mom = location_moments()[loss]
    args = (nu, tau, delta)
    mods = [{"erf": special.erf}, "numpy"]
    return {k: sp.lambdify(args, v, mods) for k, v in mom.items()}


def _mixture(loss, c_, p_, mu_, s_, sigma_, delta_, what):
    """E[psi-moment(Y - c)] under Y ~ (1-p) N(0, sigma^2) + p N(mu, sigma^2 + s^2)."""
    f = _moment_fns(loss)[what]
    tau_p = math.sqrt(sigma_**2 + s_**2)
    return (1 - p_) * f(-c_, sigma_, delta_) + p_ * f(mu_ - c_, tau_p, delta_)


def _check_m(loss, p_, mu_, s_, sigma_, delta_):
    loss = validate.choice("loss", loss, LOSSES)
    p_ = validate.fraction("p", p_)
    mu_ = validate.finite("mu", mu_)
    s_ = validate.non_negative("s", s_)
    sigma_ = validate.positive("sigma", sigma_)
    delta_ = validate.positive("delta", delta_)
    return loss, p_, mu_, s_, sigma_, delta_


def m_estimate(loss, p_, mu_, s_, sigma_, delta_=1.0) -> float:
    """Population intercept bias c of the loss's M-estimator: the root of E[psi(Y - c)] = 0 (the slope is unbiased)."""
    loss, p_, mu_, s_, sigma_, delta_ = _check_m(loss, p_, mu_, s_, sigma_, delta_)
    if loss == "l2":
        return p_ * mu_
    if p_ >= 0.5 and loss == "l1":
        raise ValueError(f"p must be < 1/2 for a unique L1 intercept (breakdown point), got {p_}")
    g = lambda c_: _mixture(loss, c_, p_, mu_, s_, sigma_, delta_, "mean")
    span = abs(mu_) + 10 * (sigma_ + s_) + 10 * delta_
    return float(optimize.brentq(g, -span, span, xtol=1e-12, rtol=1e-12))


def limit_bias(loss, p_, sigma_, delta_=1.0) -> float:
    """lim_{mu -> oo} of the intercept bias: oo for l2; sqrt(2) sigma erfinv(p/(1-p)) for l1; Huber's root."""
    loss = validate.choice("loss", loss, LOSSES)
    p_ = validate.fraction("p", p_)
    sigma_ = validate.positive("sigma", sigma_)
    delta_ = validate.positive("delta", delta_)
    if loss == "l2":
        return math.inf if p_ > 0 else 0.0
    if p_ >= 0.5:
        return math.inf  # beyond the breakdown point the poison wins
    if loss == "l1":
        return float(math.sqrt(2) * sigma_ * special.erfinv(p_ / (1 - p_)))
    f = _moment_fns("huber")["mean"]
    g = lambda c_: (1 - p_) * f(-c_, sigma_, delta_) + p_ * delta_
    hi = sigma_ + delta_
    while g(hi) > 0:
        hi *= 2
    return float(optimize.brentq(g, 0.0, hi, xtol=1e-12, rtol=1e-12))


def asymptotic_variance(loss, p_, mu_, s_, sigma_, delta_=1.0, *, c_=None) -> float:
    """V = E[psi^2] / E[psi']^2 at the root c_ (computed unless given): N Var of each coefficient of the M-estimator."""
    loss, p_, mu_, s_, sigma_, delta_ = _check_m(loss, p_, mu_, s_, sigma_, delta_)
    if c_ is None:
        c_ = m_estimate(loss, p_, mu_, s_, sigma_, delta_)
    if loss == "l2":
        return float(effective_variance(sigma_, p_, mu_, s_))
    sq = _mixture(loss, c_, p_, mu_, s_, sigma_, delta_, "square")
    slope = _mixture(loss, c_, p_, mu_, s_, sigma_, delta_, "slope")
    return float(sq / slope**2)


def gaussian_efficiency(loss, sigma_=1.0, delta_=1.0) -> float:
    """Asymptotic efficiency relative to OLS on clean Gaussian noise: sigma^2 / V (2/pi for l1)."""
    return float(sigma_**2 / asymptotic_variance(loss, 0.0, 0.0, 0.0, sigma_, delta_))


def m_excess_risk(loss, N_, d_, p_, mu_, s_, sigma_, delta_=1.0) -> float:
    """Excess risk per output of the M-estimator, to leading order: c^2 + (d + 1) V / N."""
    N_ = validate.positive_int("N", N_)
    d_ = validate.positive_int("d", d_)
    c_ = m_estimate(loss, p_, mu_, s_, sigma_, delta_)
    return c_**2 + (d_ + 1) * asymptotic_variance(loss, p_, mu_, s_, sigma_, delta_, c_=c_) / N_


def gross_error_sensitivity(loss, sigma_=1.0, delta_=1.0) -> float:
    """sup |IF|: how far one poisoned point can move the intercept per unit of poisoned mass."""
    loss = validate.choice("loss", loss, LOSSES)
    sigma_ = validate.positive("sigma", sigma_)
    delta_ = validate.positive("delta", delta_)
    if loss == "l2":
        return math.inf
    if loss == "l1":
        return sigma_ * math.sqrt(math.pi / 2)
    return delta_ / (2 * special.ndtr(delta_ / sigma_) - 1)


# ---------------------------------------------------------------- data cleaning: iterated trimmed least squares

@functools.lru_cache(maxsize=None)
def partial_moments() -> dict:
    """For Y ~ N(nu, tau^2) and an interval [a, b]: P(a <= Y <= b) and E[Y 1{a <= Y <= b}] (sympy)."""
    y, a, b = sp.symbols("y a b", real=True)
    pdf = sp.exp(-((y - nu) ** 2) / (2 * tau**2)) / (tau * sp.sqrt(2 * sp.pi))
    z = sp.symbols("z", real=True)
    phi = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)
    za, zb = (a - nu) / tau, (b - nu) / tau
    mass = _Phi(zb) - _Phi(za)
    first = sp.simplify(sp.integrate((nu + tau * z) * phi, (z, za, zb)))
    return {"mass": mass, "first": first, "pdf": pdf, "a": a, "b": b}


@functools.lru_cache(maxsize=None)
def _partial_fns():
    pm = partial_moments()
    args = (pm["a"], pm["b"], nu, tau)
    mods = [{"erf": special.erf}, "numpy"]
    return sp.lambdify(args, pm["mass"], mods), sp.lambdify(args, pm["first"], mods)


def trimmed_fixed_point(p_, mu_, s_, sigma_, trim, *, iters: int = 500) -> float:
    """Population intercept bias of iterated trimmed least squares (drop the fraction `trim` of largest |residual|).

    From c_0 = p mu (least squares), repeat: t such that P(|Y - c| <= t) = 1 - trim, then
    c <- E[Y | |Y - c| <= t], under Y ~ (1-p) N(0, sigma^2) + p N(mu, sigma^2 + s^2): the algorithm run
    on the population. Returns the limit c (the slope stays unbiased).
    """
    p_ = validate.fraction("p", p_)
    mu_ = validate.finite("mu", mu_)
    s_ = validate.non_negative("s", s_)
    sigma_ = validate.positive("sigma", sigma_)
    trim = validate.fraction("trim", trim)
    if trim >= 1:
        raise ValueError(f"trim must be < 1, got {trim}")
    iters = validate.positive_int("iters", iters)
    mass, first = _partial_fns()
    comps = [(1 - p_, 0.0, sigma_), (p_, mu_, math.sqrt(sigma_**2 + s_**2))]

    def kept(c_, t_):
        return sum(w * mass(c_ - t_, c_ + t_, m0, sd) for w, m0, sd in comps)

    c_ = p_ * mu_
    if trim == 0:
        return c_
    for _ in range(iters):
        span = abs(mu_) + 20 * (sigma_ + s_)
        t_ = optimize.brentq(lambda t: kept(c_, t) - (1 - trim), 1e-12, span + abs(c_), xtol=1e-13)
        new = sum(w * first(c_ - t_, c_ + t_, m0, sd) for w, m0, sd in comps) / (1 - trim)
        if abs(new - c_) < 1e-12:
            return float(new)
        c_ = new
    return float(c_)


# ---------------------------------------------------------------- leverage: where the poisoned points sit in x

@functools.lru_cache(maxsize=None)
def leverage_breakdown() -> dict:
    """LAD (and Huber) slope against label poison on the points of largest |x|, x ~ N(0, 1).

    As the poison's size grows, a poisoned point pulls the slope with force |x| (its residual's sign is
    fixed, so its term of sum |r| is linear in the slope), a clean point resists with at most |x|. The
    slope stays bounded while the poisoned points carry less than half of E|x| = 2 phi(0): the tail
    |x| > t carries 2 phi(t), which is phi(0) at t = sqrt(2 log 2), a fraction erfc(sqrt(log 2)).
    Poison on random points carries a fraction p of E|x|, so it breaks the slope only at p = 1/2.
    """
    z = sp.symbols("z", real=True)
    t = sp.symbols("t", positive=True)
    phi = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)
    E_abs = sp.simplify(2 * sp.integrate(z * phi, (z, 0, sp.oo)))
    tail = sp.simplify(2 * sp.integrate(z * phi, (z, t, sp.oo)))  # E[|x|; |x| > t]
    t_star = sp.solve(sp.Eq(tail, E_abs / 2), t)[0]
    fraction_of_t = sp.simplify(2 * sp.integrate(phi, (z, t, sp.oo)))  # P(|x| > t)
    p_star = sp.simplify(fraction_of_t.subs(t, t_star))
    return {"t": t, "E_abs": E_abs, "tail": tail, "t_star": t_star, "fraction_of_t": fraction_of_t,
            "p_star": p_star, "value": float(p_star), "random": sp.Rational(1, 2)}


def leverage_breakdown_fraction() -> float:
    """erfc(sqrt(log 2)) = 0.2433...: the fraction of highest-|x| points at which LAD/Huber slopes break."""
    return float(special.erfc(math.sqrt(math.log(2))))


def sample_breakdown(x, order=None) -> float:
    """Finite-sample version for one design x (N values): the smallest k / N such that the first k points of
    `order` (default: decreasing |x|, the leverage attack) carry at least the rest's sum of |x - med|, med
    the rest's median (the intercept's best answer)."""
    x = np.asarray(validate.finite_array("x", x), dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"x must hold at least 2 values, got {x.size}")
    if order is None:
        order = np.argsort(-np.abs(x), kind="stable")
    order = np.asarray(order)
    if sorted(order.tolist()) != list(range(x.size)):
        raise ValueError(f"order must be a permutation of the {x.size} indices of x")

    def breaks(k):
        rest = x[order[k:]]
        med = np.median(rest)
        return np.abs(x[order[:k]] - med).sum() >= np.abs(rest - med).sum()

    lo, hi = 0, x.size  # k = 0 never breaks, k = N always does; the condition is monotone in k: bisection
    while hi - lo > 1:
        k = (lo + hi) // 2
        lo, hi = (lo, k) if breaks(k) else (k, hi)
    return hi / x.size


def feature_breakdown_leverage(x_rest) -> float:
    """One point moved to x = L (its label on an arbitrary line) decides the LAD slope once
    L - med >= sum_i |x_i - med| over the other points (med: their median): the leverage L*."""
    x_rest = np.asarray(validate.finite_array("x_rest", x_rest), dtype=float).ravel()
    if x_rest.size < 1:
        raise ValueError("x_rest must hold at least 1 value")
    med = float(np.median(x_rest))
    return med + float(np.abs(x_rest - med).sum())


# ---------------------------------------------------------------- Huber (1964): the minimax answers

@functools.lru_cache(maxsize=None)
def median_max_bias() -> dict:
    """Max bias of the median over eps-contaminated N(0, 1): the worst contamination sits at +oo, so the
    median b solves (1 - eps) Phi(b) = 1/2, b(eps) = Phi^-1(1 / (2 (1 - eps))), infinite at eps = 1/2."""
    eps, b = sp.symbols("p b", positive=True)  # the chapter's p (Huber's epsilon)
    equation = (1 - eps) * _Phi(b) - sp.Rational(1, 2)
    solution = sp.solve(sp.Eq(equation, 0), b)[0]
    return {"epsilon": eps, "b": b, "equation": equation, "bias": sp.simplify(solution),
            "small_eps": sp.series(solution, eps, 0, 3).removeO()}


def max_bias(eps, sigma_=1.0):
    """b(eps) = sigma Phi^-1(1 / (2 (1 - eps))): the median's (L1 intercept's) max bias, eps in [0, 1/2)."""
    e = np.asarray(eps, dtype=float)
    if np.any((e < 0) | (e >= 0.5)) or not np.all(np.isfinite(e)):
        raise ValueError(f"eps must be in [0, 1/2), got {eps!r}")
    sigma_ = validate.positive("sigma", sigma_)
    out = sigma_ * special.ndtri(1 / (2 * (1 - e)))
    return float(out) if np.ndim(out) == 0 else out


@functools.lru_cache(maxsize=None)
def huber_minimax_equation() -> dict:
    """Huber's least favourable distribution for eps-contaminated N(0, 1): normal inside [-k, k], exponential
    tails beyond, (1 - eps) phi(k) e^{-k(|z| - k)}; its total mass 1 ties k to eps:
    2 phi(k)/k - 2 Phi(-k) = eps / (1 - eps)."""
    z = sp.symbols("z", real=True)
    k = sp.symbols(r"\delta", positive=True)  # the threshold in units of sigma (sigma = 1)
    eps = sp.symbols("p", positive=True)  # the chapter's p (Huber's epsilon)
    phi = lambda v: sp.exp(-v**2 / 2) / sp.sqrt(2 * sp.pi)
    centre = sp.integrate(phi(z), (z, -k, k))
    tails = 2 * sp.integrate(phi(k) * sp.exp(-k * (z - k)), (z, k, sp.oo))
    mass = sp.simplify((1 - eps) * (centre + tails))
    eps_of_k = sp.simplify(sp.solve(sp.Eq(mass, 1), eps)[0])
    return {"k": k, "epsilon": eps, "mass": mass, "eps_of_k": eps_of_k}


def huber_minimax_delta(eps, sigma_=1.0) -> float:
    """Huber's minimax threshold delta = k sigma for contamination eps in (0, 1) (root of huber_minimax_equation)."""
    eps = validate.fraction("eps", eps)
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    sigma_ = validate.positive("sigma", sigma_)
    g = lambda k_: 2 * math.exp(-k_**2 / 2) / (math.sqrt(2 * math.pi) * k_) - 2 * special.ndtr(-k_) - eps / (1 - eps)
    return sigma_ * float(optimize.brentq(g, 1e-9, 40.0, xtol=1e-14))
