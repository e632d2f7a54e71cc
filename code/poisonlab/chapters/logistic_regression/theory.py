"""Logistic regression under label flipping: sympy derivations and the numeric predictions they give.

Notation: z = w.x + b is the signed distance of x to the true boundary (|w| = 1), y = 1{z > 0}, and
q(z) = P(y~ = 1 | z) is the probability of label 1 after the attack (a "flip profile"). The
population logistic fit is the minimiser (v, c) of E[ l(y~, v.x + c) ], l the logistic loss; a
symmetric profile (q(-z) = 1 - q(z)) keeps c = 0 and, for Gaussian x, v parallel to w, so that a
single number a = v.w (the norm, signed) describes it. Symbolic functions return dicts of sympy
expressions; numeric ones take floats or arrays and never return NaN (bad input: ValueError).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch
from scipy import integrate, optimize, special, stats

from ... import validate

__all__ = [
    # derivations (sympy)
    "flipped_posterior", "flipped_logit", "lda_log_odds", "logistic_score", "norm_equation",
    "reversal_moment", "most_confident_reversal", "boundary_reversal", "one_sided_full_strip", "rate_factors",
    "separated_density", "unbiased_loss",
    # numeric predictions
    "flip_weight_norm", "weight_norm_asymptote", "reversal_alpha", "Profile", "profile",
    "gaussian_fit", "error_constant", "dimension_factor", "predicted_error", "rate_exponent",
    "strip_mass", "population_fit", "population_accuracy", "population_curve", "population_reversal",
    "gaussian_mixture_of", "evasion_error", "knn_flag_probability", "strip_margin",
    "boundary_density", "separated_fit", "predicted_error_separated", "angle_spread", "density_second_order",
]

ATTACKS = ("random", "boundary", "one-sided", "most-confident")
PHI0 = 1.0 / math.sqrt(2.0 * math.pi)  # the standard normal density at 0

# ---------------------------------------------------------------------------------------------
# Derivations (sympy)


def _phi(z):
    return sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)


def flipped_posterior() -> dict:
    """P(y~=1|x) after flipping each label with probability alpha, and where it crosses 1/2."""
    alpha, eta = sp.symbols("alpha eta", real=True)
    eta_t = sp.expand(alpha * (1 - eta) + (1 - alpha) * eta)
    margin = sp.factor(eta_t - sp.Rational(1, 2))
    threshold = sp.solve(sp.Eq(eta_t, sp.Rational(1, 2)), eta)
    return {"alpha": alpha, "eta": eta, "eta_tilde": eta_t, "margin": margin, "threshold": threshold,
            "at_half": sp.simplify(eta_t.subs(alpha, sp.Rational(1, 2)))}


def flipped_logit() -> dict:
    """The logit of the flipped posterior when the clean one is sigma(t): bounded by log((1-alpha)/alpha)."""
    alpha = sp.symbols("alpha", positive=True)
    t = sp.symbols("t", real=True)
    sigma = 1 / (1 + sp.exp(-t))
    eta_t = alpha + (1 - 2 * alpha) * sigma
    logit = sp.simplify(sp.log(eta_t / (1 - eta_t)))
    sup = sp.simplify(sp.limit(logit, t, sp.oo))
    return {"alpha": alpha, "t": t, "logit": logit, "sup": sup,
            "slope_at_0": sp.simplify(sp.diff(logit, t).subs(t, 0))}


def lda_log_odds() -> dict:
    """Two Gaussian classes with a shared covariance (2-D): the log-odds is affine, w = S^-1 (mu1 - mu0)."""
    x = sp.Matrix(sp.symbols("x1 x2", real=True))
    mu0 = sp.Matrix(sp.symbols("mu0_1 mu0_2", real=True))
    mu1 = sp.Matrix(sp.symbols("mu1_1 mu1_2", real=True))
    s11, s22 = sp.symbols("s11 s22", positive=True)
    s12 = sp.symbols("s12", real=True)
    pi1 = sp.symbols("pi1", positive=True)
    S = sp.Matrix([[s11, s12], [s12, s22]])
    Si = S.inv()
    # log pi1 N(x; mu1, S) - log pi0 N(x; mu0, S): the normalising constants cancel (shared S)
    quad = lambda mu: ((x - mu).T * Si * (x - mu))[0, 0]  # noqa: E731
    log_odds = sp.expand(-quad(mu1) / 2 + quad(mu0) / 2 + sp.log(pi1 / (1 - pi1)))
    poly = sp.Poly(log_odds, *x)
    w = sp.Matrix([poly.coeff_monomial(x[0]), poly.coeff_monomial(x[1])])
    b = poly.coeff_monomial(1)
    w_lda = Si * (mu1 - mu0)
    b_lda = -((mu1.T * Si * mu1)[0, 0] - (mu0.T * Si * mu0)[0, 0]) / 2 + sp.log(pi1 / (1 - pi1))
    return {"log_odds": log_odds, "degree": poly.total_degree(), "w": sp.simplify(w), "b": sp.simplify(b),
            "w_check": sp.simplify(w - w_lda), "b_check": sp.simplify(b - b_lda), "S": S, "mu0": mu0, "mu1": mu1}


def logistic_score() -> dict:
    """Gradient and Hessian of one example's logistic loss in theta = (w, b): (s - y) x~ and s(1 - s) x~ x~^T."""
    w1, w2, b, x1, x2, y = sp.symbols("w1 w2 b x1 x2 y", real=True)
    theta = sp.Matrix([w1, w2, b])
    xt = sp.Matrix([x1, x2, 1])
    f = (theta.T * xt)[0, 0]
    s = 1 / (1 + sp.exp(-f))
    loss = -(y * sp.log(s) + (1 - y) * sp.log(1 - s))
    grad = sp.Matrix([sp.diff(loss, v) for v in theta])
    hess = sp.hessian(loss, theta)
    return {"loss": loss, "grad_check": sp.simplify(grad - (s - y) * xt),
            "hess_check": sp.simplify(hess - s * (1 - s) * xt * xt.T), "f": f}


def norm_equation() -> dict:
    """The population norm a of the fit under random flips (Gaussian x): a I(a) = (1 - 2 alpha) phi(0).

    With I(a) = E[sigma'(a z)] and Stein's identity E[z g(z)] = E[g'(z)] (phi' = -z phi). For small
    alpha, a I(a) = phi(0) (1 - pi^2 / (6 a^2) + ...) gives a = pi / sqrt(12 alpha).
    """
    alpha, a = sp.symbols("alpha a", positive=True)
    z, u = sp.symbols("z u", real=True)
    k = sp.symbols("k", integer=True, positive=True)
    stein_check = sp.simplify(sp.diff(_phi(z), z) + z * _phi(z))  # 0: integrate E[z g] by parts
    # E[z q(z)] for q = alpha + (1 - 2 alpha) 1{z > 0}
    rhs = sp.simplify((1 - 2 * alpha) * sp.integrate(z * _phi(z), (z, 0, sp.oo)))
    # int u^2 sigma'(u) du over R: sigma'(u) = sum_k (-1)^(k+1) k e^(-k|u|), int_0^oo u^2 k e^(-k u) = 2/k^2
    second_moment = sp.simplify(2 * sp.summation((-1)**(k + 1) * 2 / k**2, (k, 1, sp.oo)))
    # a I(a) = int sigma'(u) phi(u/a) du = phi(0) (1 - second_moment / (2 a^2) + O(a^-4))
    expansion = sp.series(_phi(u / a) / _phi(0), a, sp.oo, 4).removeO()
    lhs_large_a = sp.expand(_phi(0) * (1 - second_moment / (2 * a**2)))
    asymptote = sp.solve(sp.Eq(lhs_large_a, rhs), a)
    return {"alpha": alpha, "a": a, "stein_check": stein_check, "rhs": rhs, "second_moment": second_moment,
            "expansion": expansion, "lhs_large_a": lhs_large_a, "asymptote": sp.simplify(asymptote[0])}


def reversal_moment() -> dict:
    """E[z q(z)] = phi(0) - E[|z|; F] for a symmetric flipped set F (Gaussian z): the fit reverses
    when the flipped points carry more than half of E|z| = 2 phi(0)."""
    z = sp.symbols("z", real=True)
    half_abs = sp.integrate(z * _phi(z), (z, 0, sp.oo))
    return {"E_abs_z": sp.simplify(2 * half_abs), "E_z_clean": sp.simplify(half_abs)}


def most_confident_reversal() -> dict:
    """Flipping the points farthest from the boundary (|z| > t): E[z q] = phi(0) - 2 phi(t); reversal at
    t = sqrt(2 log 2), alpha = erfc(sqrt(log 2))."""
    z = sp.symbols("z", real=True)
    t = sp.symbols("t", positive=True)
    # q = 1 on (0, t) and on (-oo, -t): labels kept near the boundary, flipped beyond t
    E_zq = sp.simplify(sp.integrate(z * _phi(z), (z, 0, t)) + sp.integrate(z * _phi(z), (z, -sp.oo, -t)))
    t_star = sp.solve(sp.Eq(E_zq, 0), t)[0]
    alpha_of_t = sp.simplify(2 * sp.integrate(_phi(z), (z, t, sp.oo)))
    alpha_star = sp.simplify(alpha_of_t.subs(t, t_star))
    return {"t": t, "E_zq": E_zq, "t_star": t_star, "alpha_of_t": alpha_of_t, "alpha_star": alpha_star,
            "value": float(alpha_star)}


def boundary_reversal() -> dict:
    """Flipping a fraction f = alpha / p(m) of the strip |z| < m: reversal at alpha = p(m) / (2 (1 - e^{-m^2/2})),
    possible (alpha <= p(m)) only when m >= sqrt(2 log 2)."""
    z = sp.symbols("z", real=True)
    m, alpha = sp.symbols("m alpha", positive=True)
    p = sp.simplify(sp.integrate(_phi(z), (z, -m, m)))  # erf(m / sqrt 2)
    strip_abs = sp.simplify(2 * sp.integrate(z * _phi(z), (z, 0, m)))  # E[|z|; |z| < m]
    E_zq = sp.simplify(_phi(0) - alpha / p * strip_abs)
    alpha_rev = sp.simplify(sp.solve(sp.Eq(E_zq, 0), alpha)[0])
    m_min = sp.solve(sp.Eq(alpha_rev, p), m)
    return {"m": m, "alpha": alpha, "p": p, "E_zq": E_zq, "alpha_rev": alpha_rev, "m_min": m_min,
            "m_min_value": [float(v) for v in m_min]}


def one_sided_full_strip() -> dict:
    """Flipping every label-1 point with 0 < z < m makes the data separable at z = m: error = alpha = P(0 < z < m)."""
    z = sp.symbols("z", real=True)
    m = sp.symbols("m", positive=True)
    mass = sp.simplify(sp.integrate(_phi(z), (z, 0, m)))
    return {"m": m, "alpha": mass, "error": mass, "error_minus_alpha": sp.simplify(mass - mass)}


def rate_factors() -> dict:
    """E chi_d = sqrt(2) Gamma((d+1)/2) / Gamma(d/2) (~ sqrt(d) by Stirling), and the exponents of sqrt(d / n)."""
    d = sp.symbols("d", positive=True)
    r = sp.symbols("r", positive=True)
    density = r**(d - 1) * sp.exp(-r**2 / 2) / (2**(d / 2 - 1) * sp.gamma(d / 2))
    mean_chi = sp.simplify(sp.integrate(r * density, (r, 0, sp.oo)))
    n = sp.symbols("n", positive=True)
    err = sp.sqrt(d / n)
    return {"d": d, "mean_chi": mean_chi,
            "n_exponent": sp.simplify(n / err * sp.diff(err, n)),
            "d_exponent": sp.simplify(d / err * sp.diff(err, d))}


# ---------------------------------------------------------------------------------------------
# Gaussian x, symmetric profiles: the 1-D population problem along w


def _sigmoid(x):
    return special.expit(x)


def _alpha_array(alpha, name="alpha"):
    a = np.asarray(alpha, dtype=float)
    for v in a.ravel():
        validate.fraction(name, v)
    return a


def _g(a: float) -> float:
    """E[z sigma(a z)] = a E[sigma'(a z)] = int sigma'(u) phi(u / a) du (Stein), for a > 0."""
    if a == 0.0:
        return 0.0
    f = lambda u: special.expit(u) * special.expit(-u) * math.exp(-0.5 * (u / a) ** 2)  # noqa: E731
    val = 2 * integrate.quad(f, 0, np.inf, limit=200)[0] * PHI0
    return math.copysign(val, a)


def _solve_norm(target: float) -> float:
    """The a with E[z sigma(a z)] = target (|target| < phi(0))."""
    if target == 0.0:
        return 0.0
    if abs(target) >= PHI0:
        return math.copysign(math.inf, target)
    hi = 1.0
    while _g(hi) < abs(target):
        hi *= 2.0
    return math.copysign(optimize.brentq(lambda a: _g(a) - abs(target), 0.0, hi, xtol=1e-12), target)


def flip_weight_norm(alpha):
    """The norm a*(alpha) of the population logistic fit under random flips, Gaussian x, b = 0.

    Signed: negative above 1/2 (the fit is reversed), 0 at 1/2, infinite at 0 (separable data).
    """
    a = _alpha_array(alpha)
    out = np.vectorize(lambda al: _solve_norm((1 - 2 * al) * PHI0), otypes=[float])(a)
    return float(out) if out.ndim == 0 else out


def weight_norm_asymptote(alpha):
    """pi / sqrt(12 alpha): the small-alpha limit of flip_weight_norm."""
    a = _alpha_array(alpha)
    if np.any(a <= 0):
        raise ValueError("alpha must be in (0, 1] for the asymptote, got 0")
    out = math.pi / np.sqrt(12 * a)
    return float(out) if out.ndim == 0 else out


def reversal_alpha(attack: str, margin=None) -> float:
    """The alpha at which the population fit reverses (Gaussian x, b = 0); inf when it cannot.

    random: 1/2; most-confident (the farthest points): erfc(sqrt(log 2)); boundary with margin m:
    p(m) / (2 (1 - exp(-m^2/2))), inf when that exceeds p(m) (m < sqrt(2 log 2)); one-sided: inf
    (the profile is not symmetric: the boundary shifts by at most m and never reverses).
    """
    attack = validate.choice("attack", attack, ATTACKS)
    if attack == "random":
        return 0.5
    if attack == "most-confident":
        return float(special.erfc(math.sqrt(math.log(2))))
    if margin is None:
        raise ValueError(f"margin must be given for attack={attack!r}")
    margin = validate.positive("margin", margin)
    if attack == "one-sided":
        return math.inf
    p = math.erf(margin / math.sqrt(2))
    alpha = p / (2 * (1 - math.exp(-margin**2 / 2)))
    return alpha if alpha <= p else math.inf


# ---------------------------------------------------------------------------------------------
# Flip profiles: q(z) piecewise constant in the signed distance z


@dataclass(frozen=True)
class Profile:
    """q(z) = values[i] on (breaks[i-1], breaks[i]) (breaks sorted, values one longer)."""

    breaks: tuple
    values: tuple

    def __call__(self, z):
        z = np.asarray(z, dtype=float)
        return np.asarray(self.values)[np.searchsorted(np.asarray(self.breaks), z, side="right")]

    @property
    def separable(self) -> bool:
        """True when q only takes the values 0 and 1 and is monotone: separable data (clean, or all flipped)."""
        vals = np.asarray(self.values)
        steps = np.diff(vals)
        return bool(np.all((vals == 0) | (vals == 1)) and (np.all(steps >= 0) or np.all(steps <= 0)))


def _z_components(mixture, w, b):
    """Means and standard deviations of z = w.x + b in each mixture component."""
    w = np.asarray(torch.as_tensor(w, dtype=torch.float64).reshape(-1))
    w = w / np.linalg.norm(w)
    means = np.asarray(mixture.means, dtype=float) @ w + float(b)
    sds = np.sqrt(np.einsum("i,kij,j->k", w, np.asarray(mixture.covs, dtype=float), w))
    return np.asarray(mixture.weights, dtype=float), means, sds


def _z_cdf(mixture, w, b, z):
    pi, mu, sd = _z_components(mixture, w, b)
    return float(np.sum(pi * stats.norm.cdf((z - mu) / sd)))


def strip_mass(mixture, w, b, margin, side=None) -> float:
    """P(|z| < margin) (side None), P(0 < z < margin) (side 1) or P(-margin < z < 0) (side 0)."""
    margin = validate.non_negative("margin", margin)
    lo = -margin if side in (None, 0) else 0.0
    hi = margin if side in (None, 1) else 0.0
    if side not in (None, 0, 1):
        raise ValueError(f"side must be None, 0 or 1, got {side!r}")
    return _z_cdf(mixture, w, b, hi) - _z_cdf(mixture, w, b, lo)


def profile(attack: str, alpha, *, mixture=None, w=None, b=0.0, margin=None, side=None) -> Profile:
    """The flip profile q(z) of an attack at fraction alpha on the population (mixture, w, b).

    boundary / one-sided flip the fraction alpha / (selected mass) of the points in the strip;
    most-confident flips every point with |z| > t, P(|z| > t) = alpha (the farthest points: the largest
    loss of the flipped label under a model close to the true one).
    """
    attack = validate.choice("attack", attack, ATTACKS)
    alpha = validate.fraction("alpha", alpha)
    if attack == "random":
        return Profile((0.0,), (alpha, 1 - alpha))
    if mixture is None or w is None:
        mixture, w = gaussian_mixture_of(1), [1.0]
    if attack == "most-confident":
        if alpha == 0:
            return Profile((0.0,), (0.0, 1.0))
        # P(|z| > t) = alpha; monotone in t
        tail = lambda t: 1 - (_z_cdf(mixture, w, b, t) - _z_cdf(mixture, w, b, -t)) - alpha  # noqa: E731
        hi = 1.0
        while tail(hi) > 0:
            hi *= 2
        t = optimize.brentq(tail, 0.0, hi, xtol=1e-12) if tail(0.0) > 0 else 0.0
        return Profile((-t, 0.0, t), (1.0, 0.0, 1.0, 0.0))
    if margin is None:
        raise ValueError(f"margin must be given for attack={attack!r}")
    margin = validate.positive("margin", margin)
    if attack == "one-sided":
        side = 1 if side is None else side
        mass = strip_mass(mixture, w, b, margin, side=side)
        f = _strip_fraction(alpha, mass, margin)
        if side == 1:
            return Profile((0.0, margin), (0.0, 1 - f, 1.0))
        return Profile((-margin, 0.0), (0.0, f, 1.0))
    mass = strip_mass(mixture, w, b, margin)
    f = _strip_fraction(alpha, mass, margin)
    return Profile((-margin, 0.0, margin), (0.0, f, 1 - f, 1.0))


def _strip_fraction(alpha, mass, margin):
    if mass <= 0:
        raise ValueError(f"margin={margin} selects no probability mass")
    if alpha > mass * (1 + 1e-9):
        raise ValueError(f"alpha={alpha} exceeds the mass {mass:.4g} selected by margin={margin}")
    return min(alpha / mass, 1.0)


def gaussian_mixture_of(d: int):
    """N(0, I_d) as a one-component Mixture (the x_dist='gaussian' population)."""
    from ...data import gaussian_mixture

    d = validate.positive_int("d", d)
    return gaussian_mixture([1.0], torch.zeros(1, d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)[None])


def _phi_np(z):
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _expect(fun, prof: Profile, lo=-12.0, hi=12.0) -> float:
    """E[fun(z, q(z))] for z ~ N(0, 1), integrating piece by piece of the profile."""
    pts = [lo] + [x for x in prof.breaks if lo < x < hi] + [hi]
    total = 0.0
    for x0, x1 in zip(pts[:-1], pts[1:]):
        q = float(prof(0.5 * (x0 + x1)))
        total += integrate.quad(lambda z: fun(z, q) * _phi_np(z), x0, x1, limit=200)[0]
    return total


def gaussian_fit(prof: Profile) -> dict:
    """The population fit along w for a symmetric profile and z ~ N(0, 1): a, I = E[sigma'(a z)],
    J = E[(sigma(a z) - y~)^2] (the sandwich terms of every coordinate orthogonal to w and of the intercept)."""
    if not np.allclose(prof(np.array([-0.7, -2.1])), 1 - prof(np.array([0.7, 2.1]))):
        raise ValueError("the profile must be symmetric, q(-z) = 1 - q(z)")
    target = _expect(lambda z, q: z * q, prof)
    a = _solve_norm(target)
    if not math.isfinite(a):
        raise ValueError("the population fit does not exist (separable profile: alpha = 0)")
    I = _expect(lambda z, q: _sigmoid(a * z) * _sigmoid(-a * z), prof)
    J = _expect(lambda z, q: _sigmoid(a * z) ** 2 - 2 * _sigmoid(a * z) * q + q, prof)
    return {"a": a, "I": I, "J": J, "E_zq": target}


def error_constant(alpha, attack="random", margin=None) -> float:
    """C with E[test error] = C h(d) / sqrt(n_train): (1/pi) sqrt(J) / (I |a|) (Gaussian x, b = 0)."""
    fit = gaussian_fit(profile(attack, alpha, margin=margin))
    return math.sqrt(fit["J"]) / (fit["I"] * abs(fit["a"])) / math.pi


def dimension_factor(d):
    """h(d) = E sqrt(1 + chi^2_{d-1}): the intercept and the d - 1 directions orthogonal to w."""
    dd = np.asarray(d, dtype=float)
    if np.any(dd < 1) or np.any(dd != np.round(dd)):
        raise ValueError(f"d must be whole numbers >= 1, got {d!r}")

    def h(k):
        if k == 1:
            return 1.0
        return integrate.quad(lambda s: math.sqrt(1 + s) * stats.chi2.pdf(s, k - 1), 0, np.inf, limit=200)[0]

    out = np.vectorize(h, otypes=[float])(dd)
    return float(out) if out.ndim == 0 else out


def predicted_error(alpha, n_train, d, attack="random", margin=None):
    """Asymptotic mean test error of the logistic MLE on flipped Gaussian data: C(alpha) h(d) / sqrt(n_train)."""
    n = np.asarray(n_train, dtype=float)
    if np.any(n < 1):
        raise ValueError(f"n_train must be >= 1, got {n_train!r}")
    out = error_constant(alpha, attack, margin) * dimension_factor(d) / np.sqrt(n)
    return float(out) if np.ndim(out) == 0 else out


def rate_exponent(x, y) -> float:
    """The slope of log y against log x by least squares (the exponent a power law fitted to y would have)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must hold at least two positive values")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def evasion_error(mixture, w, b, eps) -> float:
    """Test error of the true boundary when every test point may move by eps toward it: P(|z| < eps)."""
    return strip_mass(mixture, w, b, validate.non_negative("eps", eps))


# ---------------------------------------------------------------------------------------------
# The population logistic fit on a Gaussian mixture, any profile (numerical quadrature)

_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(40)  # probabilists': weight exp(-x^2/2)
_GH_W = _GH_W / math.sqrt(2 * math.pi)


def _nodes(mixture, w, b, breaks):
    """Per component k: z nodes, quadrature weights (incl. pi_k phi_k(z)), and the component index."""
    pi, mu, sd = _z_components(mixture, w, b)
    zs, ws, ks = [], [], []
    for k in range(len(pi)):
        lo, hi = mu[k] - 10 * sd[k], mu[k] + 10 * sd[k]
        pts = [lo] + [x for x in breaks if lo < x < hi] + [hi]
        for x0, x1 in zip(pts[:-1], pts[1:]):
            z = 0.5 * (x1 - x0) * _GL_X + 0.5 * (x1 + x0)
            wt = 0.5 * (x1 - x0) * _GL_W * pi[k] * _phi_np((z - mu[k]) / sd[k]) / sd[k]
            zs.append(z)
            ws.append(wt)
            ks.append(np.full(z.shape, k))
    return np.concatenate(zs), np.concatenate(ws), np.concatenate(ks)


class _Components:
    """Per-component geometry of z = w.x + b and s = v.x + c: x = mu_k + L_k eps, L_k L_k^T = Sigma_k."""

    def __init__(self, mixture, w, b):
        self.d = mixture.d
        w = np.asarray(w, float) / np.linalg.norm(w)
        self.mu = np.asarray(mixture.means, float)
        lam, V = np.linalg.eigh(np.asarray(mixture.covs, float))
        self.L = V * np.sqrt(np.clip(lam, 0, None))[:, None, :]
        a = np.einsum("kij,i->kj", self.L, w)  # z = m_k + a_k . eps
        self.a_norm = np.linalg.norm(a, axis=1)
        self.u = a / self.a_norm[:, None]
        self.m_z = self.mu @ w + b
        self.Lu = np.einsum("kij,kj->ki", self.L, self.u)  # L_k u_k

    def conditional(self, v, c, z, k):
        """Mean and sd of s given z (per node), and the pieces of their gradients."""
        t = np.einsum("kij,i->kj", self.L, v)  # s = v.mu_k + c + t_k . eps
        tu = np.sum(t * self.u, axis=1)
        r = t - tu[:, None] * self.u  # the part of s independent of z: its norm is computed directly
        sd = np.linalg.norm(r, axis=1)
        dz = (z - self.m_z[k]) / self.a_norm[k]
        mean = (self.mu @ v + c)[k] + tu[k] * dz
        # d sd / d v = L_k r_k / |r_k|; at r = 0 the (even) risk has zero slope in sd, so 0 is exact
        g_sd = np.einsum("kij,kj->ki", self.L, r / np.where(sd > 0, sd, 1.0)[:, None])
        return mean, sd[k], dz, g_sd


def _risk(theta, comps, nodes, q, l2):
    """The population logistic risk and its gradient in theta = (v, c) (Gauss-Legendre x Gauss-Hermite)."""
    z, wt, k = nodes
    d = comps.d
    v, c = theta[:d], theta[d]
    mean, sd, dz, g_sd = comps.conditional(v, c, z, k)
    S = mean[:, None] + sd[:, None] * _GH_X[None]
    qq = q[:, None]
    loss = qq * np.logaddexp(0, -S) + (1 - qq) * np.logaddexp(0, S)
    resid = special.expit(S) - qq  # d loss / d s
    value = float(wt @ (loss @ _GH_W)) + 0.5 * l2 * float(v @ v)
    G_m = wt * (resid @ _GH_W)
    G_s = wt * (resid @ (_GH_W * _GH_X))
    K = comps.mu.shape[0]
    sum_m = np.bincount(k, G_m, minlength=K)
    sum_mdz = np.bincount(k, G_m * dz, minlength=K)
    sum_s = np.bincount(k, G_s, minlength=K)
    grad_v = sum_m @ comps.mu + sum_mdz @ comps.Lu + sum_s @ g_sd + l2 * v
    return value, np.concatenate([grad_v, [G_m.sum()]])


def population_fit(prof: Profile, mixture, w, b=0.0, *, l2=0.0):
    """The minimiser (v, c) of the population logistic risk E[l(y~, v.x + c)] under profile q (BFGS)."""
    if prof.separable and l2 == 0:
        raise ValueError("the population fit does not exist for a separable profile (alpha = 0 or 1); give l2 > 0")
    w = np.asarray(torch.as_tensor(w, dtype=torch.float64).reshape(-1))
    nodes = _nodes(mixture, w, float(b), prof.breaks)
    q = prof(nodes[0])
    comps = _Components(mixture, w, float(b))
    res = optimize.minimize(_risk, np.zeros(mixture.d + 1), args=(comps, nodes, q, float(l2)), jac=True,
                            method="BFGS", options={"gtol": 1e-10, "maxiter": 1000})
    if not np.all(np.isfinite(res.x)):
        raise ValueError("the population fit diverges (a separable profile)")
    return res.x[:mixture.d], float(res.x[mixture.d])


def population_accuracy(v, c, mixture, w, b=0.0) -> float:
    """P(sign(v.x + c) = sign(w.x + b)) under the mixture: the test accuracy of (v, c) on clean labels."""
    w = np.asarray(torch.as_tensor(w, dtype=torch.float64).reshape(-1))
    v = np.asarray(v, float)
    comps = _Components(mixture, w, float(b))
    # P(s > 0 | z) switches where E[s | z] = 0, over a width sd / slope: break the z-integral there
    k_all = np.arange(comps.mu.shape[0])
    mean0, sd, _, _ = comps.conditional(v, float(c), comps.m_z, k_all)
    t = np.einsum("kij,i->kj", comps.L, v)
    slope = np.sum(t * comps.u, axis=1) / comps.a_norm
    breaks = [0.0]
    for k in k_all:
        if abs(slope[k]) > 0:
            z0, width = comps.m_z[k] - mean0[k] / slope[k], sd[k] / abs(slope[k])
            breaks += [z0 + j * width for j in (-8, -3, -1, 0, 1, 3, 8)]
    breaks = np.unique(np.round(np.asarray(breaks, dtype=float), 12))  # near-duplicates: one break
    z, wt, k = _nodes(mixture, w, float(b), tuple(breaks))
    mean, sd, _, _ = comps.conditional(v, float(c), z, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        # sd = 0: s is determined by z (a step); exactly on the learned boundary, count half
        step = np.where(mean > 0, 1.0, np.where(mean < 0, 0.0, 0.5))
        p_pos = np.where(sd > 0, special.ndtr(mean / np.where(sd > 0, sd, 1.0)), step)  # P(s > 0 | z)
    correct = np.where(z > 0, p_pos, 1 - p_pos)
    return float(np.sum(wt * correct))


def population_curve(attack, alphas, mixture, w, b=0.0, *, margin=None, side=None):
    """(accuracy, norm, angle) of the population fit at each alpha (separable profiles: norm inf, angle 0 or pi)."""
    w_unit = np.asarray(w, float) / np.linalg.norm(w)
    acc, norm, ang = [], [], []
    for alpha in np.atleast_1d(alphas):
        prof = profile(attack, float(alpha), mixture=mixture, w=w, b=b, margin=margin, side=side)
        if prof.separable:  # the fit diverges towards the hard classifier of the profile's one step t
            up = prof.values[0] == 0
            t = float(prof.breaks[int(np.argmax(np.diff(prof.values) != 0))])
            between = abs(_z_cdf(mixture, w, b, t) - _z_cdf(mixture, w, b, 0.0))  # mass between 0 and t
            acc.append(1.0 - between if up else between)
            norm.append(math.inf), ang.append(0.0 if up else math.pi)
            continue
        v, c = population_fit(prof, mixture, w, b)
        acc.append(population_accuracy(v, c, mixture, w, b))
        nv = float(np.linalg.norm(v))
        norm.append(nv)
        ang.append(float(np.arccos(np.clip(v @ w_unit / nv, -1, 1))) if nv > 0 else math.pi / 2)
    return np.array(acc), np.array(norm), np.array(ang)


def population_reversal(attack, mixture, w, b=0.0, *, margin=None, side=None, hi=None) -> float:
    """The alpha at which the population accuracy crosses 1/2 (inf when it stays above on (0, hi])."""
    attack = validate.choice("attack", attack, ATTACKS)
    if hi is None:
        side = (1 if side is None else side) if attack == "one-sided" else None
        hi = 1.0 if attack in ("random", "most-confident") else strip_mass(mixture, w, b, margin, side=side)
    f = lambda al: population_curve(attack, [al], mixture, w, b, margin=margin, side=side)[0][0] - 0.5  # noqa: E731
    lo = 1e-3
    if f(hi) > 0:
        return math.inf
    return float(optimize.brentq(f, lo, hi, xtol=1e-6))


# ---------------------------------------------------------------------------------------------
# The kNN filter far from the boundary


def knn_flag_probability(alpha, k, threshold, flipped: bool) -> float:
    """P(a point is dropped by the kNN filter) when its k neighbours share its clean label and each is
    flipped independently with probability alpha: a flipped point disagrees with each unflipped
    neighbour, P(Bin(k, 1 - alpha) > k threshold); a clean point with each flipped one, P(Bin(k, alpha) > k threshold)."""
    alpha = validate.fraction("alpha", alpha)
    k = validate.positive_int("k", k)
    threshold = validate.fraction("threshold", threshold)
    p = 1 - alpha if flipped else alpha
    # disagreement fraction j / k > threshold  <=>  j > floor(k threshold)
    return float(stats.binom.sf(math.floor(k * threshold + 1e-12), k, p))


def strip_margin(mixture, w, b, mass, side=None) -> float:
    """The margin m whose strip holds probability `mass` (strip_mass(mixture, w, b, m, side) = mass)."""
    mass = validate.fraction("mass", mass)
    top = strip_mass(mixture, w, b, 1e6, side=side)
    if mass >= top:
        raise ValueError(f"mass must be below the strip's total {top:.4g}, got {mass}")
    if mass == 0:
        return 0.0
    hi = 1.0
    while strip_mass(mixture, w, b, hi, side=side) < mass:
        hi *= 2
    return float(optimize.brentq(lambda m: strip_mass(mixture, w, b, m, side=side) - mass, 0.0, hi, xtol=1e-12))


# ---------------------------------------------------------------------------------------------
# The density at the boundary: two Gaussian classes moved apart (x ~ (N(mu w, I) + N(-mu w, I)) / 2)


def separated_density() -> dict:
    """The density of z for two unit Gaussians at +-mu: its value at the boundary, phi(mu), and the relative
    curvature f''(0)/f(0) = mu^2 - 1 that sets the second-order term of the error's linearisation,
    int_0^delta f = f(0) delta (1 + (mu^2 - 1) delta^2 / 6 + O(delta^4))."""
    z, mu, delta = sp.symbols("z mu delta", real=True)
    f = (_phi(z - mu) + _phi(z + mu)) / 2
    f0 = sp.simplify(f.subs(z, 0))
    curvature = sp.simplify(sp.diff(f, z, 2).subs(z, 0) / f0)
    mass = sp.series(sp.integrate(sp.series(f, z, 0, 4).removeO(), (z, 0, delta)), delta, 0, 4).removeO()
    return {"f0": f0, "f0_check": sp.simplify(f0 - _phi(mu)), "curvature": sp.expand(curvature),
            "mass": sp.simplify(mass / (f0 * delta))}


def boundary_density(separation):
    """f(0) = phi(mu): the density of z = w.x at the boundary for two unit Gaussians at +-mu (mu >= 0)."""
    mu = np.asarray(separation, dtype=float)
    if np.any(~np.isfinite(mu)) or np.any(mu < 0):
        raise ValueError(f"separation must be finite and >= 0, got {separation!r}")
    out = _phi_np(mu)
    return float(out) if out.ndim == 0 else out


def separated_fit(alpha: float, separation: float) -> dict:
    """The population fit under random flips at rate alpha for z ~ (N(mu, 1) + N(-mu, 1)) / 2, x_perp ~ N(0, I):
    a (its norm, along w), I = E[sigma'(a z)], J = E[(sigma(a z) - y~)^2] and f0 = phi(mu).

    The first-order condition E[z (sigma(a z) - q(z))] = 0 is solved by quadrature (Stein's identity, which
    gave eq-log-norm, holds for mu = 0 only); by symmetry the intercept and the directions orthogonal to w
    are 0 and decouple, each with the sandwich variance J / (n I^2), as in the Gaussian case.
    """
    alpha = validate.fraction("alpha", alpha)
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 1/2) (a finite fit, not reversed), got {alpha!r}")
    mu = validate.non_negative("separation", separation)
    dens = lambda z: 0.5 * (_phi_np(z - mu) + _phi_np(z + mu))  # noqa: E731

    def expect(fun):
        lo, hi = -12.0 - mu, 12.0 + mu
        return (integrate.quad(lambda z: fun(z, alpha) * dens(z), lo, 0.0, limit=200)[0]
                + integrate.quad(lambda z: fun(z, 1 - alpha) * dens(z), 0.0, hi, limit=200)[0])

    foc = lambda a: expect(lambda z, q: z * (_sigmoid(a * z) - q))  # noqa: E731
    hi = 1.0
    while foc(hi) < 0:
        hi *= 2.0
    a = optimize.brentq(foc, 1e-9, hi, xtol=1e-12)
    I = expect(lambda z, q: _sigmoid(a * z) * _sigmoid(-a * z))
    J = expect(lambda z, q: _sigmoid(a * z) ** 2 - 2 * _sigmoid(a * z) * q + q)
    return {"a": a, "I": I, "J": J, "f0": float(_phi_np(mu))}


def predicted_error_separated(alpha, n_train, d, separation):
    """Mean test error of the logistic MLE under random flips for two unit Gaussians at +-separation:
    f(0) sqrt(2/pi) h(d) sqrt(J) / (I a sqrt(n_train)), eq-log-rate with phi(0) replaced by f(0).
    Arrays of separation give arrays."""
    seps = np.atleast_1d(np.asarray(separation, dtype=float))
    n = np.asarray(n_train, dtype=float)
    if np.any(n < 1):
        raise ValueError(f"n_train must be >= 1, got {n_train!r}")
    out = []
    for mu in seps:
        fit = separated_fit(alpha, mu)
        out.append(fit["f0"] * math.sqrt(2 / math.pi) * math.sqrt(fit["J"]) / (fit["I"] * fit["a"]))
    out = np.array(out) * dimension_factor(d) / np.sqrt(n)
    return float(out[0]) if np.ndim(separation) == 0 and out.size == 1 else out


def angle_spread(alpha, n_train) -> float:
    """E[angle] between w_hat and w for Gaussian x in d = 2 under random flips: the population fit is a* w
    (no tilt), and the angle is the sampling spread of the orthogonal weight, E|w_perp| / a*
    = sqrt(2/pi) sqrt(J) / (I a* sqrt(n_train)) = sqrt(2 pi) C(alpha) / sqrt(n_train)."""
    n = validate.positive("n_train", n_train)
    return math.sqrt(2 * math.pi) * error_constant(alpha) / math.sqrt(n)


def unbiased_loss() -> dict:
    """Natarajan et al.'s unbiased loss for symmetric flips at rate r: its expectation over the flips is the
    clean loss, and for the logistic loss it is the loss minus r/(1 - 2r) (2y - 1) t. Checks are 0."""
    t, r = sp.symbols("t r", real=True)
    loss = {1: sp.log(1 + sp.exp(-t)), 0: sp.log(1 + sp.exp(t))}          # BCE of logit t, label 1 or 0
    tilde = {y: ((1 - r) * loss[y] - r * loss[1 - y]) / (1 - 2 * r) for y in (0, 1)}
    expectation = [sp.simplify((1 - r) * tilde[y] + r * tilde[1 - y] - loss[y]) for y in (0, 1)]
    linear = [sp.simplify(sp.expand_log(tilde[y] - (loss[y] - r / (1 - 2 * r) * (2 * y - 1) * t), force=True))
              for y in (0, 1)]
    return {"tilde": tilde, "expectation_check": expectation, "linear_check": linear}


def density_second_order(alpha: float, n_train, separation: float) -> float:
    """The relative second-order term of eq-log-density in d = 2: the swept mass is
    f(0) E[|delta| + (mu^2 - 1) |delta|^3 / 6], with delta | x_perp ~ N(0, t^2 (1 + x_perp^2)), t = s / a*, so
    the term is (mu^2 - 1) t^2 E(1 + x^2)^(3/2) / (3 E(1 + x^2)^(1/2)) (x ~ N(0, 1), Gaussian moments)."""
    n = validate.positive("n_train", n_train)
    fit = separated_fit(alpha, separation)
    t2 = fit["J"] / (n * fit["I"] ** 2) / fit["a"] ** 2
    m = [integrate.quad(lambda x: (1 + x * x) ** (k / 2) * _phi_np(x), -np.inf, np.inf)[0] for k in (1, 3)]
    return float((separation ** 2 - 1) * t2 * m[1] / (3 * m[0]))
