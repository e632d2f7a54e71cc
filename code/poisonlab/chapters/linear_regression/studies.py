"""The linear-regression chapter's studies that are not sweeps: Monte Carlo of least squares, forgetting
of the poison by continued training, trimmed least squares.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import torch

from ... import data, defenses, stats, solvers, train, validate
from . import theory
from .experiment import EXPERIMENT, make_data, seeds_of
from .sweeps import ALPHA, MU, S, SIGMA, _lin, _sizes, FAR_MU, setting


_STUDIES: dict = {}


def _memo(fn):
    """Compute a study once per process for the same sizes, seed and arguments (the laws reuse the chapter's)."""
    import functools

    @functools.wraps(fn)
    def wrapper(profile=None, seed: int = 0, **kw):
        key = (fn.__name__, json.dumps(dataclasses.asdict(_sizes(profile)), sort_keys=True), seed, json.dumps(kw, sort_keys=True, default=str))
        if key not in _STUDIES:
            _STUDIES[key] = fn(profile, seed, **kw)
        return _STUDIES[key]

    return wrapper


@_memo
def ols_monte_carlo(profile=None, seed: int = 0) -> dict:
    """Fixed design, fresh noise: OLS's standardised errors z = L^{-1}(theta_hat - theta), L L^T = sigma^2 (X~^T X~)^{-1}.

    Unbiasedness: E z = 0; covariance sigma^2 (X~^T X~)^{-1}: E ||z||^2 / (d + 1) = 1. Returns the draws'
    theta_hat, the predicted covariance, and z.
    """
    z = _sizes(profile)
    n, draws, d = z.mc_n, z.mc_draws, 2
    ds = data.make_linear(n, d, 1, 0.0, seed=seed, test_fraction=0.0)  # noise-free design and labels
    g = data.generator(seed + 1)
    eps = torch.randn(draws, ds.n_train, 1, generator=g) * SIGMA
    X = ds.X_train.expand(draws, -1, -1)
    W_hat, b_hat = solvers.least_squares(X.double(), (ds.y_train + eps).double())
    theta_hat = torch.cat([W_hat[:, 0, :], b_hat], 1).double()
    theta = torch.cat([ds.params["W"][0], ds.params["b"]]).double()
    A = torch.cat([ds.X_train, torch.ones(ds.n_train, 1)], 1).double()
    cov = SIGMA**2 * torch.linalg.inv(A.T @ A)
    L = torch.linalg.cholesky(cov)
    std = torch.linalg.solve_triangular(L, (theta_hat - theta).T, upper=False).T
    return {"theta_hat": theta_hat.numpy(), "theta": theta.numpy(), "covariance": cov.numpy(),
            "empirical_covariance": np.cov(theta_hat.numpy().T), "z": std.numpy(), "n": n, "d": d}


@_memo
def forgetting(profile=None, seed: int = 0, lrs=(0.005, 0.01, 0.02, 0.05, 0.1)) -> dict:
    """Continue training the clean model theta_0 on the poisoned set; record the intercept every step.

    Returns steps, lrs, and the remaining fraction f[t, lr, repeat] = (b_t - b1*) / (b_0 - b1*) where
    b1* is the exact least-squares intercept on the poisoned set (mean over outputs).
    """
    z = _sizes(profile)
    # many repeats: the half-life at the largest lr rests on a window of a few minibatches per repeat
    R, steps = z.forget_repeats, z.forget_steps
    configs = [EXPERIMENT.resolve(**setting(profile, lr=lr), seed=seed + r) for lr in lrs for r in range(R)]
    pairs = [make_data(c) for c in configs]
    X = torch.stack([p.X_train for _, p in pairs])
    kw = dict(loss="mse", lr=torch.tensor([c["lr"] for c in configs]), batch_size=configs[0]["batch_size"],
              seeds=[seeds_of(c["seed"])["model"] for c in configs], configs=configs)
    clean = train.train_batched(X, torch.stack([cl.y_train for cl, _ in pairs]), epochs=configs[0]["epochs"], **kw)
    N = X.shape[1]
    epochs = -(-steps // -(-N // configs[0]["batch_size"]))  # enough epochs to cover `steps`
    poisoned = train.train_batched(X, torch.stack([p.y_train for _, p in pairs]), epochs=epochs, init=clean,
                                   record_every=1, **kw)
    b_traj = poisoned.trajectory["b"][: steps + 1].double().mean(-1)  # (steps + 1, K)
    _, b_star = solvers.least_squares(X, torch.stack([p.y_train for _, p in pairs]))
    b_star = b_star.double().mean(-1)
    frac = (b_traj - b_star) / (b_traj[0] - b_star)
    return {"steps": np.arange(steps + 1), "lrs": np.array(lrs),
            "fraction": frac.numpy().reshape(steps + 1, len(lrs), R), "m": 1}


def half_life_of(steps, fraction, window: int) -> float:
    """ln 2 / r, where exp(-r t) fits the mean remaining fraction over steps 1..window (least squares on log f, through f_0 = 1).

    A fixed window (two predicted half-lives, where f is still far above its noise) keeps the
    estimate a smooth function of the data, as the jackknife needs; a first-crossing time is not.
    """
    steps = np.asarray(steps, dtype=float)
    f = np.asarray(fraction, dtype=float)
    use = (steps >= 1) & (steps <= window)
    if np.any(f[use] <= 0):
        raise ValueError("fraction must stay > 0 within the window (lengthen the recording or shorten the window)")
    t, logf = steps[use], np.log(f[use])
    rate = -float(np.sum(t * logf) / np.sum(t * t))
    return math.log(2) / rate


def half_lives(study: dict, level=0.95) -> dict:
    """Measured half-lives (jackknife over repeats) and predicted ones, per learning rate."""
    steps, F = study["steps"], study["fraction"]
    R = F.shape[2]
    predicted_hl = theory.half_life(study["lrs"], study["m"])
    windows = [int(math.ceil(2 * h)) for h in predicted_hl]
    if max(windows) > steps[-1]:
        raise ValueError(f"the study must record at least {max(windows)} steps, got {steps[-1]}")
    est = np.array([half_life_of(steps, F[:, j].mean(1), w) for j, w in enumerate(windows)])
    loo = np.array([[half_life_of(steps, np.delete(F[:, j], r, axis=1).mean(1), w) for j, w in enumerate(windows)]
                    for r in range(R)])
    _, lo, hi, _ = stats.jackknife_interval(est, loo, level)
    return {"lr": study["lrs"], "mean": est, "lo": lo, "hi": hi,
            "predicted": predicted_hl, "loo": loo, "windows": np.array(windows)}


def trimmed_least_squares(X, y, trim: float, iters: int = 20):
    """Iterated trimmed least squares: refit on all but the fraction `trim` of largest squared residuals."""
    W, b = solvers.least_squares(X, y)
    for _ in range(validate.positive_int("iters", iters)):
        r2 = ((y - (X @ W.transpose(-1, -2) + b.unsqueeze(-2))) ** 2).sum(-1)
        keep = defenses.loss_filter(r2, trim)
        if X.dim() == 2:
            W, b = solvers.least_squares(X[keep], y[keep])
        else:  # every problem keeps the same number of points: gather them into one batch
            idx = torch.stack([torch.nonzero(k).squeeze(1) for k in keep])
            W, b = solvers.least_squares(torch.gather(X, 1, idx.unsqueeze(-1).expand(-1, -1, X.shape[-1])),
                                         torch.gather(y, 1, idx.unsqueeze(-1).expand(-1, -1, y.shape[-1])))
    return W, b


@_memo
def trimming(profile=None, seed: int = 0, eta_means=(MU, FAR_MU)):
    """Intercept bias of iterated trimmed least squares against the trimmed fraction (mean, 95% CI, prediction)."""
    import pandas as pd

    z = _sizes(profile)
    trims = _lin(0, 0.5, z.points)
    out = []
    for mu in eta_means:
        configs = [EXPERIMENT.resolve(**setting(profile, eta_mean=mu), seed=seed + r) for r in range(z.repeats)]
        pairs = [make_data(c) for c in configs]
        X = torch.stack([p.X_train for _, p in pairs])
        Y = torch.stack([p.y_train for _, p in pairs])
        b_true = torch.stack([p.params["b"] for _, p in pairs])
        N = X.shape[1]
        p = theory.poisoned_fraction(ALPHA, N)
        for tr in trims:
            _, b = trimmed_least_squares(X, Y, tr)
            bias = (b - b_true).double().mean(-1).numpy()
            mean, lo, hi = stats.mean_ci(bias)
            out.append({"eta_mean": mu, "trim": tr, "intercept_bias_mean": mean, "intercept_bias_lo": lo,
                        "intercept_bias_hi": hi, "predicted": theory.trimmed_fixed_point(p, mu, S, SIGMA, tr),
                        "values": bias})
    return pd.DataFrame.from_records(out)
