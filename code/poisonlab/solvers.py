"""Exact solvers (float64 inside, the input's float dtype out): the optima SGD approximates.

Every solver fits an intercept by augmenting X with a column of ones, and accepts one problem
X (n, d), y (n, m) or (n,), or a batch X (K, n, d), y (K, n, m) or (K, n) (solved one by one). Regression solvers return (W (m, d), b (m,)) (with a
leading K for a batch); a 1-D y counts as m = 1.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special
import scipy.sparse
import torch
from torch import Tensor

from . import validate

__all__ = ["least_squares", "l1", "huber", "logistic", "huber_loss", "is_separable"]


def _prepare(X, y, y_kind="regression"):
    """X as float64 (K, n, d), y as float64 (K, n, m), whether batched, whether y was 1-D, out dtype."""
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    dtype = X.dtype if X.is_floating_point() else torch.float32
    X, y = X.detach().double(), y.detach().double()
    if X.dim() not in (2, 3):
        raise ValueError(f"X must have shape (n, d) or (K, n, d), got {tuple(X.shape)}")
    batched = X.dim() == 3
    Xb = X if batched else X[None]
    K, n, d = Xb.shape
    yb = y if batched else y[None]
    vector = yb.dim() == 2
    if vector:
        yb = yb[..., None]
    if yb.dim() != 3 or yb.shape[:2] != (K, n):
        raise ValueError(f"y must have shape {'(K, n[, m])' if batched else '(n[, m])'} matching X "
                         f"{tuple(X.shape)}, got {tuple(y.shape)}")
    if n == 0 or d == 0:
        raise ValueError(f"X must have at least one row and one column, got {tuple(X.shape)}")
    if not torch.isfinite(Xb).all():
        raise ValueError("X must be finite")
    if not torch.isfinite(yb).all():
        raise ValueError("y must be finite")
    return Xb, yb, batched, vector, dtype


def _augment(X: Tensor) -> Tensor:
    return torch.cat([X, torch.ones(*X.shape[:-1], 1, dtype=X.dtype)], dim=-1)


def _split(theta: Tensor, batched: bool, dtype):
    """theta (K, m, d + 1) -> W (K, m, d), b (K, m) (without K for one problem)."""
    W, b = theta[..., :-1].to(dtype), theta[..., -1].to(dtype)
    return (W, b) if batched else (W[0], b[0])


def least_squares(X, y, *, intercept=True):
    """Ordinary least squares min ||y - X W^T - b||^2 (minimum-norm solution when rank-deficient)."""
    Xb, yb, batched, _, dtype = _prepare(X, y)
    A = (_augment(Xb) if intercept else Xb).numpy()
    Y = yb.numpy()
    # numpy's SVD-based lstsq (gelsd), one problem at a time: on CPU this is much faster than
    # torch.linalg.lstsq for these small, tall systems, and gives the minimum-norm solution
    theta = np.stack([np.linalg.lstsq(A[k], Y[k], rcond=None)[0].T for k in range(A.shape[0])])
    theta = torch.from_numpy(theta)
    if not intercept:
        theta = torch.cat([theta, torch.zeros(*theta.shape[:-1], 1, dtype=theta.dtype)], dim=-1)
    return _split(theta, batched, dtype)


def _lad(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """min_theta sum |y - A theta|, through its dual LP max y.u s.t. A^T u = 0, |u_i| <= 1.

    The dual has p equality constraints instead of n (an order of magnitude faster with HiGHS);
    theta is the multiplier of A^T u = 0 (scipy reports d(objective)/d(b_eq) for min -y.u).
    """
    p = A.shape[1]
    res = scipy.optimize.linprog(-y, A_eq=A.T, b_eq=np.zeros(p), bounds=(-1, 1), method="highs")
    if res.status != 0:
        raise RuntimeError(f"L1 regression: the linear programme failed ({res.message})")
    return -res.eqlin.marginals


def l1(X, y):
    """Least absolute deviations min sum_i ||y_i - W x_i - b||_1, exactly, by linear programming (HiGHS).

    Each output is solved separately (the problem separates). The optimum may not be unique
    (e.g. an even number of points in one dimension); HiGHS returns a vertex of the optimal set.
    """
    Xb, yb, batched, _, dtype = _prepare(X, y)
    A = _augment(Xb).numpy()
    Y = yb.numpy()
    K, n, m = Y.shape
    theta = np.stack([np.stack([_lad(A[k], Y[k, :, j]) for j in range(m)]) for k in range(K)])
    return _split(torch.from_numpy(theta), batched, dtype)


def huber_loss(r, delta: float):
    """Huber's rho: r^2 / 2 for |r| <= delta, delta (|r| - delta / 2) beyond (tensor or array)."""
    if isinstance(r, Tensor):
        a = r.abs()
        return torch.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def _solve_psd(H: np.ndarray, g: np.ndarray):
    """H^{-1} g for a positive definite H, or None when H is (numerically) singular."""
    # numpy/scipy here: for these tiny systems torch's LAPACK calls cost milliseconds each
    try:
        c, low = scipy.linalg.cho_factor(H)
    except np.linalg.LinAlgError:
        return None
    diag = np.abs(np.diag(c))
    if diag.min() <= 1e-10 * diag.max():
        return None
    return scipy.linalg.cho_solve((c, low), g)


def _huber_one(A: np.ndarray, y: np.ndarray, delta: float, max_iter: int = 500) -> np.ndarray:
    """Minimise sum_i rho(y_i - a_i theta): Newton steps on the active set of inliers, IRLS when
    that system is singular, each with an Armijo line search; the objective is convex and piecewise
    quadratic, so once the inlier set is right the full Newton step lands on the optimum."""
    g_scale = delta * np.abs(A).sum(0).max()

    def f(t):
        return huber_loss(y - A @ t, delta).sum()

    # start from the better of the two limits, least squares (delta -> inf) and LAD (delta -> 0):
    # from LAD, p residuals are zero, so the inlier system is non-singular and Newton applies at once
    starts = [np.linalg.lstsq(A, y, rcond=None)[0], _lad(A, y)]
    theta = min(starts, key=f)
    fval = f(theta)
    # rounding floor of the gradient: residuals carry an error of about eps * (|y| + |A theta|)
    eps = np.finfo(np.float64).eps
    for _ in range(max_iter):
        r = y - A @ theta
        grad = -(A.T @ np.clip(r, -delta, delta))
        floor = 64 * eps * (np.abs(y).max() + np.abs(A @ theta).max()) * np.abs(A).sum(0).max()
        if np.abs(grad).max() <= 1e-11 * g_scale + floor:
            return theta
        inl = np.abs(r) < delta
        pattern = np.where(inl, 0, np.sign(r))
        newton = True
        step = _solve_psd(A[inl].T @ A[inl], -grad) if inl.sum() >= A.shape[1] else None
        if step is None:  # IRLS: weights min(1, delta/|r|) give the curvature of a majoriser
            newton = False
            w = np.minimum(delta / np.maximum(np.abs(r), 1e-300), 1.0)
            H = A.T @ (w[:, None] * A)
            step = _solve_psd(H, -grad)
            if step is None:
                step = np.linalg.lstsq(H, -grad, rcond=None)[0]
        slope = grad @ step
        t = 1.0
        while t > 1e-12:
            new = theta + t * step
            f_new = f(new)
            if f_new <= fval + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            return theta  # no further decrease possible in floating point: at the optimum
        theta, fval = new, f_new
        if newton and t == 1.0:
            r = y - A @ theta
            if np.array_equal(np.where(np.abs(r) < delta, 0, np.sign(r)), pattern):
                # same inliers and outlier signs: the full step minimised the exact quadratic piece
                return theta
    raise RuntimeError(f"Huber regression did not converge in {max_iter} iterations")


def huber(X, y, delta=1.0):
    """Huber regression min sum_i rho_delta(y_i - W x_i - b) exactly (Newton/IRLS to machine precision).

    Per output (the problem separates over outputs). Equivalent to scikit-learn's HuberRegressor
    with epsilon = delta / sigma at its fitted scale sigma.
    """
    delta = validate.positive("delta", delta)
    Xb, yb, batched, _, dtype = _prepare(X, y)
    A = _augment(Xb).numpy()
    Y = yb.numpy()
    K, n, m = Y.shape
    theta = np.stack([np.stack([_huber_one(A[k], Y[k, :, j], delta) for j in range(m)]) for k in range(K)])
    return _split(torch.from_numpy(theta), batched, dtype)


def is_separable(X, y) -> bool:
    """Whether the labelled points are (quasi-)separable by an affine hyperplane, when the logistic
    MLE does not exist: max sum_i s_i a_i.theta s.t. s_i a_i.theta >= 0, |theta_j| <= 1, is > 0
    (s_i = 2 y_i - 1, a_i = [x_i, 1]; Konis' linear programme)."""
    Xb, yb, batched, _, _ = _prepare(X, y)
    if batched:
        raise ValueError("X must be one problem (n, d) for is_separable")
    return _separable(_augment(Xb[0]).numpy(), yb[0, :, 0].numpy())


def _separable(A: np.ndarray, y: np.ndarray) -> bool:
    A = A / np.maximum(np.abs(A).max(axis=0), 1e-300)  # scaling columns does not change separability
    SA = (2 * y - 1)[:, None] * A
    res = scipy.optimize.linprog(-SA.sum(0), A_ub=-SA, b_ub=np.zeros(len(y)), bounds=[(-1, 1)] * A.shape[1],
                                 method="highs")
    if res.status != 0:
        raise RuntimeError(f"separability check: the linear programme failed ({res.message})")
    return -res.fun > 1e-6 * len(y)


def _logistic_one(A: np.ndarray, y: np.ndarray, l2: float, max_iter: int = 100) -> np.ndarray:
    n, p = A.shape
    pen = np.full(p, l2)
    pen[-1] = 0.0  # the intercept is not penalised

    def F(t):
        z = A @ t
        return (np.logaddexp(0.0, z) - y * z).mean() + 0.5 * (pen * t**2).sum()

    theta = np.zeros(p)
    fval = F(theta)
    for _ in range(max_iter):
        prob = scipy.special.expit(A @ theta)
        grad = A.T @ (prob - y) / n + pen * theta
        H = A.T @ ((prob * (1 - prob))[:, None] * A) / n + np.diag(pen)
        step = _solve_psd(H, -grad)
        if step is None:
            raise ValueError("X must have linearly independent columns (with the intercept) for the logistic "
                             "MLE to be unique; use l2 > 0")
        decrement = -(grad @ step)  # the Newton decrement squared: twice the predicted decrease of F
        # converged once the predicted decrease is lost in F's rounding; a ridge keeps the decrement
        # there (about 1e-19) rather than letting it reach an absolute threshold
        if decrement <= 4 * np.finfo(float).eps * max(1.0, abs(fval)) or np.abs(grad).max() <= 1e-13:
            return theta + step  # the last Newton step is exact to second order
        t = 1.0
        while t > 1e-12:
            new = theta + t * step
            f_new = F(new)
            if f_new <= fval - 1e-4 * t * decrement:
                break
            t *= 0.5
        else:
            return theta
        theta, fval = new, f_new
        if np.abs(theta).max() > 1e8:
            break
    raise ValueError("the logistic MLE did not converge: the data are (nearly) separable; use l2 > 0")


def logistic(X, y, l2=0.0):
    """Logistic regression: min mean_i BCE(y_i, sigmoid(w.x_i + b)) + (l2 / 2) |w|^2 by Newton with
    line search to convergence. Returns (w (d,), b ()) (or (K, d), (K,)).

    With l2 = 0 on (quasi-)separable data the maximum-likelihood estimate does not exist (the
    likelihood grows without bound along the separating direction): ValueError naming l2.
    scikit-learn's LogisticRegression(C=C) solves the same problem with l2 = 1 / (n C).
    """
    l2 = validate.non_negative("l2", l2)
    Xb, yb, batched, vector, dtype = _prepare(X, y)
    if yb.shape[-1] != 1:
        raise ValueError(f"y must hold one binary label per point, got shape {tuple(torch.as_tensor(y).shape)}")
    if not ((yb == 0) | (yb == 1)).all():
        raise ValueError("y must hold binary labels 0/1")
    A, Y = _augment(Xb).numpy(), yb[..., 0].numpy()
    thetas = []
    for k in range(A.shape[0]):
        if l2 == 0.0 and _separable(A[k], Y[k]):
            raise ValueError("l2 must be > 0 here: the data are linearly separable"
                             f"{f' (problem {k})' if batched else ''}, so the logistic MLE does not exist "
                             "(the likelihood grows without bound along the separating direction)")
        thetas.append(_logistic_one(A[k], Y[k], l2))
    theta = torch.from_numpy(np.stack(thetas))
    w, b = theta[:, :-1].to(dtype), theta[:, -1].to(dtype)
    return (w, b) if batched else (w[0], b[0])
