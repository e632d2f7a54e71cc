"""Fits of power, affine and arbitrary laws to measurements, with t intervals on their parameters.

Every fit returns its parameters with confidence intervals from the t distribution (n - p degrees
of freedom) and R². `sigma` gives per-point standard deviations (e.g. the half-widths of sweep
CIs): points are weighted by 1/sigma², and, as in `scipy.optimize.curve_fit` by default, the
parameter covariance is rescaled by the residual scatter, so sigma sets only relative weights.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from .. import validate


@dataclass(frozen=True)
class Fit:
    """A fitted law: params, their CIs, standard errors, R² and `predict(x)`."""

    model: str  # e.g. "y = c x^k"
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    se: dict[str, float]
    r2: float
    n: int
    level: float
    _predict: Callable = field(repr=False, compare=False)

    def predict(self, x):
        """The fitted law at `x` (a float for a scalar x, else an array)."""
        out = self._predict(np.asarray(x, dtype=float))
        return float(out) if np.ndim(out) == 0 else np.asarray(out, dtype=float)

    def __str__(self) -> str:
        lo = int(round(100 * self.level))
        parts = [f"{k} = {v:.4g} [{self.ci[k][0]:.4g}, {self.ci[k][1]:.4g}]" for k, v in self.params.items()]
        return f"{self.model}: {', '.join(parts)} ({lo}% CI), R² = {self.r2:.4f}, n = {self.n}"




def _xy(x, y, sigma, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    x, y = validate.finite_array("x", x).ravel(), validate.finite_array("y", y).ravel()
    if x.size != y.size:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if y.size < p + 1:  # p parameters need p + 1 points for any error estimate
        raise ValueError(f"y must hold at least {p + 1} points to fit {p} parameters with a CI, got {y.size}")
    return x, y, _sigma(sigma, y.size)


def _sigma(sigma, n: int) -> np.ndarray | None:
    if sigma is None:
        return None
    s = validate.finite_array("sigma", sigma).ravel()
    if s.size == 1:
        s = np.full(n, float(s[0]))
    if s.size != n:
        raise ValueError(f"sigma must have one value per point ({n}), got {s.size}")
    if np.any(s <= 0):
        raise ValueError("sigma must be > 0 everywhere (standard deviations of y)")
    return s


def _level(level) -> float:
    level = validate.fraction("level", level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return level


def _r2(y, yhat, w) -> float:
    """(Weighted) R²; like scikit-learn, 1 for a perfect fit and 0 when y does not vary."""
    w = np.ones_like(y) if w is None else w
    ybar = np.sum(w * y) / np.sum(w)
    ss_res = float(np.sum(w * (y - yhat) ** 2))
    ss_tot = float(np.sum(w * (y - ybar) ** 2))
    scale = float(np.sum(w * y**2))  # rounding noise in ss_res is relative to this
    if ss_res <= 1e-24 * scale:
        return 1.0
    return 1.0 - ss_res / ss_tot if ss_tot > 1e-24 * scale else 0.0


def _linear(u, v, s, level):
    """Weighted least squares v = a + b u: (a, b), standard errors, t quantile, fitted v."""
    w = np.ones_like(v) if s is None else 1.0 / s**2
    if np.ptp(u) == 0:
        raise ValueError("x must take at least two distinct values to fit a slope")
    A = np.column_stack([np.ones_like(u), u])
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(A * sw[:, None], v * sw, rcond=None)
    vhat = A @ coef
    dof = v.size - 2
    s2 = float(np.sum(w * (v - vhat) ** 2)) / dof
    cov = s2 * np.linalg.inv((A * w[:, None]).T @ A)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return coef, se, float(stats.t.ppf(0.5 + level / 2, dof)), vhat, w


def fit_power(x, y, sigma=None, level: float = 0.95) -> Fit:
    """y = c x^k by least squares on log y = log c + k log x; params "c", "k"; R² of the log-log fit.

    sigma (standard deviations of y) becomes sigma/y on the log scale (the delta method).
    The CI of c is exp of the CI of log c, so it is not symmetric about c.
    """
    level = _level(level)
    x, y, s = _xy(x, y, sigma, 2)
    if np.any(x <= 0):
        raise ValueError("x must be > 0 for a power law (it is fitted on a log scale)")
    if np.any(y <= 0):
        raise ValueError("y must be > 0 for a power law (it is fitted on a log scale)")
    u, v = np.log(x), np.log(y)
    (logc, k), (se_logc, se_k), t, vhat, w = _linear(u, v, None if s is None else s / y, level)
    c = math.exp(logc)
    return Fit(model="y = c x^k", params={"c": c, "k": float(k)},
               ci={"c": (math.exp(logc - t * se_logc), math.exp(logc + t * se_logc)),
                   "k": (float(k - t * se_k), float(k + t * se_k))},
               se={"c": c * float(se_logc), "k": float(se_k)},  # delta method for c
               r2=_r2(v, vhat, w), n=int(y.size), level=level,
               _predict=lambda xs: c * np.power(xs, k))


def fit_affine(x, y, sigma=None, level: float = 0.95) -> Fit:
    """y = a + b x by (weighted) least squares; params "a" (intercept), "b" (slope)."""
    level = _level(level)
    x, y, s = _xy(x, y, sigma, 2)
    (a, b), (se_a, se_b), t, yhat, w = _linear(x, y, s, level)
    a, b = float(a), float(b)
    return Fit(model="y = a + b x", params={"a": a, "b": b},
               ci={"a": (a - t * se_a, a + t * se_a), "b": (b - t * se_b, b + t * se_b)},
               se={"a": float(se_a), "b": float(se_b)}, r2=_r2(y, yhat, w), n=int(y.size), level=level,
               _predict=lambda xs: a + b * xs)


def fit_curve(f: Callable, x, y, p0: Sequence[float], names: Sequence[str], sigma=None,
              level: float = 0.95, bounds=None, absolute_sigma: bool = False) -> Fit:
    """y = f(x, *params) by scipy.optimize.curve_fit; CIs from its covariance and t(n - p).

    x may be any array f accepts (e.g. shape (k, n) for k inputs); y has one value per point.
    """
    level = _level(level)
    names = list(names)
    p0 = validate.finite_array("p0", p0).ravel()
    if len(names) != p0.size or len(set(names)) != len(names):
        raise ValueError(f"names must give one distinct name per entry of p0 ({p0.size}), got {names}")
    y = validate.finite_array("y", y).ravel()
    x = validate.finite_array("x", x)
    if y.size < p0.size + 1:
        raise ValueError(f"y must hold at least {p0.size + 1} points to fit {p0.size} parameters with a CI, "
                         f"got {y.size}")
    if x.ndim == 0 or x.shape[-1] != y.size:
        raise ValueError(f"x must have one value per point of y ({y.size}) along its last axis, got shape {x.shape}")
    s = _sigma(sigma, y.size)
    kw = {} if bounds is None else {"bounds": bounds}
    with warnings.catch_warnings():
        warnings.simplefilter("error", optimize.OptimizeWarning)
        try:
            popt, pcov = optimize.curve_fit(f, x, y, p0=p0, sigma=s, absolute_sigma=absolute_sigma, **kw)
        except optimize.OptimizeWarning:
            raise ValueError(f"names: the parameters {names} cannot all be identified from these x "
                             f"(singular covariance)") from None
    yhat = np.asarray(f(x, *popt), dtype=float)
    if not np.all(np.isfinite(popt)) or not np.all(np.isfinite(pcov)) or not np.all(np.isfinite(yhat)):
        raise ValueError(f"names: the fit of {names} did not give finite parameters and covariance")
    se = np.sqrt(np.clip(np.diag(pcov), 0.0, None))
    # curve_fit inverts a rank-deficient Jacobian with a pseudo-inverse and returns huge but finite
    # variances; parameters it cannot tell apart show as (almost) perfectly correlated
    if p0.size > 1 and np.all(se > 0):
        corr = pcov / np.outer(se, se)
        if not np.isfinite(np.linalg.cond(corr)) or np.linalg.cond(corr) > 1e10:
            raise ValueError(f"names: the parameters {names} cannot all be identified from these x "
                             f"(their estimates are perfectly correlated)")
    t = float(stats.t.ppf(0.5 + level / 2, y.size - p0.size))
    params = {k: float(v) for k, v in zip(names, popt)}
    return Fit(model=f"y = {getattr(f, '__name__', 'f')}(x, {', '.join(names)})", params=params,
               ci={k: (float(v - t * e), float(v + t * e)) for k, v, e in zip(names, popt, se)},
               se={k: float(e) for k, e in zip(names, se)},
               r2=_r2(y, yhat, None if s is None else 1.0 / s**2), n=int(y.size), level=level,
               _predict=lambda xs: f(xs, *popt))


def sigma_from_ci(lo, hi, n, level: float = 0.95):
    """Standard errors behind Student-t intervals [lo, hi] of means of n values: the `sigma` of a fit."""
    level = _level(level)
    lo, hi = validate.finite_array("lo", lo), validate.finite_array("hi", hi)
    n = validate.finite_array("n", n)
    if np.any(lo > hi):
        raise ValueError("lo must be <= hi")
    if np.any(n < 2) or np.any(n != np.round(n)):
        raise ValueError("n must be a whole number >= 2 (one value has no error estimate)")
    se = (hi - lo) / 2 / stats.t.ppf(0.5 + level / 2, n - 1)
    return float(se) if np.ndim(se) == 0 else se
