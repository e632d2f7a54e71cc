"""The image-classification chapter's computations that are not sweeps of the experiment: flipped
examples, confusions, memorisation, the kNN filter's rates, softmax regression and influence.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ... import defenses, metrics, validate
from ...lab.profile import get_profile
from . import theory
from .experiment import EXPERIMENT, make_data, poison, run_detailed, seeds_of
from .pipeline import _reference_probs
from .sweeps import CHAPTER, _resolve, summarize


def flipped_examples(n: int = 8, seed: int = 0, **params) -> dict:
    """The first n flipped training images of one configuration with their true and new labels."""
    n = validate.positive_int("n", n)
    config = _resolve(seed, **params)
    clean = make_data(config)
    probs = _reference_probs([config], [clean])[0]
    p = poison(config, clean, probs)
    idx = p.poisoned.nonzero().flatten()[:n]
    return {"images": p.X_train[idx, 0].numpy(), "old": clean.y_train[idx].tolist(), "new": p.y_train[idx].tolist(),
            "classes": p.classes}


def confusions(seeds, **params) -> np.ndarray:
    """Mean row-normalised test confusion matrix (K, K) over the seeds: row i = true class, column = predicted."""
    configs = [_resolve(int(s), **params) for s in seeds]
    if not configs:
        raise ValueError("seeds must hold at least one seed")
    outcomes = run_detailed(configs)
    K = len(outcomes[0].clean.classes)
    M = torch.stack([metrics.confusion(o.test_pred, o.clean.y_test, K).double() for o in outcomes])
    M = M / M.sum(2, keepdim=True).clamp_min(1)
    return M.mean(0).numpy()


def memorisation(seeds, alphas=None, **params) -> pd.DataFrame:
    """Per epoch: test accuracy, fit to flipped and clean training labels, held-out accuracy (noisy and clean).

    One run per seed and alpha (`alphas`, else the parameter alpha), trained together.

    Held-out accuracies need early_stopping=True (the held-out split); the curves always run to `epochs`.
    Columns: seed, epoch, test_accuracy, flipped_fit, clean_fit, val_accuracy (against the held-out
    points' possibly flipped labels), val_accuracy_clean, val_flipped (the held-out flipped fraction),
    n_val (held-out points), model, alpha, flip.
    """
    alphas = [params.pop("alpha", EXPERIMENT.resolve()["alpha"])] if alphas is None else list(alphas)
    configs = [_resolve(int(s), alpha=a, **params) for a in alphas for s in seeds]  # one batched run
    if not configs:
        raise ValueError("seeds and alphas must hold at least one value each")
    frames = []
    for o in run_detailed(configs, record=True):
        frames.append(o.curves.assign(seed=o.config["seed"], model=o.config["model"], alpha=o.config["alpha"],
                                      flip=o.config["flip"]))
    return pd.concat(frames, ignore_index=True)


def knn_filter_rates(alphas, seeds, k: int = 10, threshold: float = 0.5, **params) -> pd.DataFrame:
    """Measured and predicted k-NN filter rates under random flips: clean points discarded, flipped caught.

    One row per (alpha, seed): measured fractions (the filter on the poisoned labels) and the prediction
    of theory.knn_filter_prediction from the clean labels and the (label-independent) neighbour graph.
    """
    rows = []
    for s in seeds:
        config = _resolve(int(s), **params)
        clean = make_data(config)
        nbrs = theory.neighbours(clean.X_train, k)
        K = len(clean.classes)
        for a in alphas:
            c = {**config, "alpha": float(a), "flip": "random"}
            p = poison(c, clean)
            keep = defenses.knn_filter(p.X_train, p.y_train, k, threshold)
            mask = p.poisoned
            pred = theory.knn_filter_prediction(clean.y_train, nbrs, float(a), K, threshold)
            rows.append({"alpha": float(a), "seed": int(s),
                         "discard_clean": float((~keep & ~mask).sum() / max(int((~mask).sum()), 1)),
                         "catch_flipped": float((~keep & mask).sum() / int(mask.sum())) if mask.any() else math.nan,
                         "discard_clean_pred": pred["discard_clean"], "catch_flipped_pred": pred["catch_flipped"]})
    return pd.DataFrame(rows)


def _softmax_objective(theta, Xa, Y, l2):
    """Mean CE + l2/2 |theta|^2 for G label sets: theta (G, K, D), Y (G, n) -> (G,)."""
    lp = torch.log_softmax(Xa @ theta.transpose(1, 2), -1)
    return -lp.gather(-1, Y.unsqueeze(-1)).squeeze(-1).mean(1) + l2 / 2 * theta.pow(2).sum((1, 2))


def _softmax_grad(theta, Xa, Y, l2):
    """Gradient of _softmax_objective: (softmax - onehot)^T [X, 1] / n + l2 theta, shape (G, K, D)."""
    P = torch.softmax(Xa @ theta.transpose(1, 2), -1) - torch.nn.functional.one_hot(Y, theta.shape[1]).double()
    return P.transpose(1, 2) @ Xa / Xa.shape[0] + l2 * theta


def fit_softmax(X, y, K: int, l2: float, *, tol: float = 1e-9, max_iter: int = 200, theta0=None, H=None):
    """Exact minimiser of mean CE + l2/2 |[W, b]|^2 (softmax regression), float64, to max |grad| < tol.

    Newton's method with backtracking (Armijo) steps; with `H` (a fixed Hessian, e.g. the clean one)
    the direction is H^-1 grad (quasi-Newton: one Cholesky factor, cheap steps). y (n,) or (G, n) for
    G label sets on the same X (solved together). Returns theta = [W, b], (K, d+1) or (G, K, d+1).
    """
    l2 = validate.positive("l2", l2)
    Xa = theory._augment(X)
    Y = torch.as_tensor(y).long()
    single = Y.dim() == 1
    Y = Y.reshape(-1, Xa.shape[0])
    if int(Y.min()) < 0 or int(Y.max()) >= K:
        raise ValueError(f"y must hold class indices in 0..{K - 1}")
    G, D = Y.shape[0], Xa.shape[1]
    theta = torch.zeros(G, K, D, dtype=torch.float64) if theta0 is None else \
        torch.as_tensor(theta0).double().expand(G, K, D).clone()
    L = None if H is None else torch.linalg.cholesky(torch.as_tensor(H).double())
    f = _softmax_objective(theta, Xa, Y, l2)
    for _ in range(max_iter):
        g = _softmax_grad(theta, Xa, Y, l2)
        if float(g.abs().max()) < tol:
            break
        if L is None:
            d = torch.stack([torch.linalg.solve(theory.softmax_hessian(t[:, :-1], t[:, -1], X, l2), gi.reshape(-1))
                             for t, gi in zip(theta, g)]).reshape(theta.shape)
        else:
            d = torch.cholesky_solve(g.reshape(G, -1).T, L).T.reshape(theta.shape)
        slope = (g * d).sum((1, 2))  # > 0: d is a descent direction for -d
        t = torch.ones(G, dtype=torch.float64)
        for _ in range(40):  # halve each set's step until it decreases the objective enough (Armijo)
            new = _softmax_objective(theta - t[:, None, None] * d, Xa, Y, l2)
            bad = new > f - 1e-4 * t * slope
            if not bool(bad.any()):
                break
            t = torch.where(bad, t / 2, t)
        theta = theta - t[:, None, None] * d
        f = _softmax_objective(theta, Xa, Y, l2)
    else:
        raise RuntimeError(f"fit_softmax: no convergence in {max_iter} iterations "
                           f"(max |grad| {float(g.abs().max()):.3g})")
    return theta[0] if single else theta


def _test_loss(theta, X_test, y_test) -> torch.Tensor:
    """Mean test cross-entropy of softmax regression(s) theta (..., K, d+1)."""
    lp = torch.log_softmax(theory._augment(X_test) @ theta.transpose(-1, -2), -1)  # (..., n, K)
    y = torch.as_tensor(y_test).long().expand(lp.shape[:-1])
    return -lp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(-1)


INFLUENCE_L2 = 1e-2  # the ridge penalty of the exact refits: keeps Newton's Hessian invertible


def influence_study(seed: int = 0, sizes=(7, 14, 28), groups: int = 10, l2: float = INFLUENCE_L2, **params) -> pd.DataFrame:
    """Flip groups of training labels of an exactly fitted softmax regression: linearised vs exact refit.

    For each group size m: the "least-confident" group (the m points of largest clean loss, each to its most
    likely wrong class), the "most-confident" group (the m points of smallest clean loss, each to its most
    likely wrong class) and `groups` random groups (m random points, each to a random other class).
    The influence function moves theta by -H^-1 (sum of the flips' gradient changes)/n (first order,
    H the clean Hessian); "predicted" is the test loss / accuracy at those linearised parameters,
    "actual" at the exact refit (quasi-Newton from the clean optimum). One row per group.
    """
    sizes = [validate.positive_int("sizes", m) for m in sizes]
    groups = validate.positive_int("groups", groups)
    config = _resolve(int(seed), **params)
    ds = make_data(config)
    n, K = ds.n_train, len(ds.classes)
    X, y = ds.X_train.reshape(n, -1).double(), ds.y_train
    Xt, yt = ds.X_test.reshape(ds.n_test, -1).double(), ds.y_test
    if max(sizes) > n:
        raise ValueError(f"sizes must be at most n_train = {n}, got {max(sizes)}")
    theta = fit_softmax(X, y, K, l2)
    Xa = theory._augment(X)
    P = torch.softmax(Xa @ theta.T, 1)
    loss = -torch.log(P.gather(1, y[:, None]))[:, 0]
    order = torch.sort(loss, descending=True, stable=True).indices
    wrong = P.clone()
    wrong[torch.arange(n), y] = -1.0
    runner_up = wrong.argmax(1)
    g = torch.Generator().manual_seed(seeds_of(int(seed))["attack"])
    sets, rows = [], []
    for m in sizes:
        for kind, chosen in (("least-confident", order[:m]), ("most-confident", order[n - m:])):
            y_c = y.clone()
            y_c[chosen] = runner_up[chosen]
            sets.append(y_c)
            rows.append({"kind": kind, "m": m})
        for _ in range(groups):
            idx = torch.randperm(n, generator=g)[:m]
            y_r = y.clone()
            y_r[idx] = (y[idx] + torch.randint(1, K, (m,), generator=g)) % K
            sets.append(y_r)
            rows.append({"kind": "random", "m": m})
    Y = torch.stack(sets)  # (G, n)
    H = theory.softmax_hessian(theta[:, :-1], theta[:, -1], X, l2)
    # the gradient of the mean training loss changes by (e_y - e_y') x^T / n per flipped point
    delta = (torch.nn.functional.one_hot(y, K).double()[None] - torch.nn.functional.one_hot(Y, K).double())
    shift = delta.transpose(1, 2) @ Xa / n  # (G, K, D)
    lin = theta - torch.cholesky_solve(shift.reshape(len(Y), -1).T, torch.linalg.cholesky(H)).T.reshape(shift.shape)
    exact = fit_softmax(X, Y, K, l2, theta0=theta, H=H, tol=1e-7, max_iter=500)
    loss0, acc0 = _test_loss(theta, Xt, yt), _accuracy(theta, Xt, yt)
    out = pd.DataFrame(rows).assign(
        seed=int(seed), n=n,
        predicted_loss=(_test_loss(lin, Xt, yt) - loss0).numpy(), actual_loss=(_test_loss(exact, Xt, yt) - loss0).numpy(),
        predicted_accuracy=(_accuracy(lin, Xt, yt) - acc0).numpy(),
        actual_accuracy=(_accuracy(exact, Xt, yt) - acc0).numpy())
    return out


def _accuracy(theta, X_test, y_test) -> torch.Tensor:
    """Test accuracy of softmax regression(s) theta (..., K, d+1)."""
    return (theory._augment(X_test) @ theta.transpose(-1, -2)).argmax(-1).eq(y_test).double().mean(-1)


# What the chapter computes from these studies with its sizes in a profile, once per process: its cells
# and its laws (laws.py) read the same results.


def influence(profile=None) -> pd.DataFrame:
    """influence_study over the chapter's seeds (S.influence_seeds), group sizes and groups."""
    profile, S = get_profile(profile), CHAPTER.sizes(profile)
    return CHAPTER.memo(("influence", profile.name), lambda: pd.concat(
        [influence_study(seed=s, sizes=S.influence_sizes, groups=S.influence_groups)
         for s in range(S.influence_seeds)], ignore_index=True))


def memorisation_runs(profile=None) -> pd.DataFrame:
    """memorisation curves of softmax regression and the over-parameterised MLP (S.memo_*), with the
    poisoned held-out split of early stopping."""
    profile, S = get_profile(profile), CHAPTER.sizes(profile)
    return CHAPTER.memo(("memorisation", profile.name), lambda: pd.concat(
        [memorisation(range(S.memo_seeds), S.memo_alphas, model=m, hidden=h, epochs=S.memo_epochs, lr=S.memo_lr[m],
                      batch_size=S.memo_batch_size, early_stopping=True)
         for m, h in (("linear", None), ("mlp", [S.memo_hidden]))], ignore_index=True))


def knn_summary(profile=None) -> pd.DataFrame:
    """knn_filter_rates over S.knn_alphas and S.knn_seeds, summarised per alpha (means and 95% CIs of the
    measured and predicted rates; no flipped point to catch at alpha = 0 counts as all caught)."""
    profile, S = get_profile(profile), CHAPTER.sizes(profile)
    return CHAPTER.memo(("knn", profile.name), lambda: summarize(
        knn_filter_rates(S.knn_alphas, range(S.knn_seeds), k=S.knn_k).fillna({"catch_flipped": 1.0}), "alpha",
        ["discard_clean", "catch_flipped", "discard_clean_pred", "catch_flipped_pred"]))
