"""Poisoning operators: pure functions of a Dataset that return the poisoned copy and its mask.

The test set is never touched. Each operator poisons exactly k = round(alpha * n_train) training
points (Python's `round`: ties go to the even integer, e.g. round(2.5) = 2) and returns a Dataset
whose `mask` marks them (OR-ed with the mask of an already poisoned input, so attacks compose).
Random choices come from torch.Generator(seed): the points are taken in the order of one random
permutation of the candidates, so for one seed the poisoned set at a smaller alpha is contained in
the set at a larger alpha (common random numbers across a sweep over alpha).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import validate
from ..data import Dataset, generator

__all__ = ["gaussian_labels", "flip_binary", "flip_multiclass", "poison_count", "boundary_distance",
           "BINARY_FLIPS", "MULTICLASS_FLIPS", "CONFIDENCE_FLIPS"]

BINARY_FLIPS = ("random", "boundary", "one-sided", "most-confident")
# named for what they select: "least-confident" (largest loss under the label: the points the reference model
# is least sure of) and "most-confident" (the points it is surest of; for K = 2 the binary "most-confident")
MULTICLASS_FLIPS = ("random", "target-class", "pair", "least-confident", "most-confident")
CONFIDENCE_FLIPS = ("least-confident", "most-confident")  # the flips that need `probs`


def poison_count(alpha, n) -> int:
    """k = round(alpha * n), the number of points poisoned at fraction alpha of n."""
    alpha = validate.fraction("alpha", alpha)
    return round(alpha * int(n))


def _check_dataset(ds) -> None:
    if not isinstance(ds, Dataset):
        raise ValueError(f"ds must be a Dataset, got {type(ds).__name__}")


def _poisoned(ds: Dataset, y_train: Tensor, idx: Tensor) -> Dataset:
    """The dataset with new training labels and the poisoned indices added to its mask."""
    mask = ds.poisoned.clone()
    mask[idx] = True
    return ds.replace(y_train=y_train, mask=mask)


def _pick(candidates: Tensor, k: int, g: torch.Generator) -> Tensor:
    """k of the candidate indices, in the order of a random permutation of all n points."""
    n = candidates.shape[0]
    perm = torch.randperm(n, generator=g)
    return perm[candidates[perm]][:k]


def _scores(name: str, scores, n: int) -> Tensor:
    if scores is None:
        raise ValueError(f"{name} must be given for how='most-confident' (one score per training point)")
    s = torch.as_tensor(scores).detach().reshape(-1).to(torch.float64)
    if s.shape[0] != n:
        raise ValueError(f"{name} must have one entry per training point ({n}), got {s.shape[0]}")
    if not torch.isfinite(s).all():
        raise ValueError(f"{name} must be finite")
    return s


def _top(scores: Tensor, k: int) -> Tensor:
    """Indices of the k largest scores (ties broken by index: a stable sort)."""
    return torch.sort(scores, descending=True, stable=True).indices[:k]


def gaussian_labels(ds: Dataset, alpha, eta_mean=0.0, eta_std=1.0, *, seed, eta_cov=None) -> Dataset:
    """y <- y + eta on round(alpha n) random training points; eta ~ N(eta_mean 1_m, eta_std^2 I_m) or N(eta_mean, eta_cov).

    eta_mean is a number or a vector of m entries. eta_cov (m, m), when given, replaces eta_std^2 I.
    One noise vector is drawn for every training point (in permutation order) so that the noise of
    a point does not depend on alpha.
    """
    _check_dataset(ds)
    alpha = validate.fraction("alpha", alpha)
    eta_std = validate.non_negative("eta_std", eta_std)
    y = ds.y_train
    if not torch.is_floating_point(y):
        raise ValueError("ds.y_train must be real-valued (regression targets) for gaussian_labels")
    y2 = y.reshape(y.shape[0], -1)
    n, m = y2.shape
    mean = torch.as_tensor(eta_mean, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(mean).all():
        raise ValueError(f"eta_mean must be finite, got {eta_mean!r}")
    if mean.shape[0] not in (1, m):
        raise ValueError(f"eta_mean must be a number or a vector of m = {m} entries, got {mean.shape[0]}")
    if eta_cov is None:
        L = None  # isotropic: eta_std z, no m x m identity (z @ (eta_std I)^T gives the same numbers)
    else:
        S = torch.as_tensor(eta_cov, dtype=torch.float64)
        if S.dim() == 0 and m == 1:
            S = S.reshape(1, 1)
        if S.shape != (m, m):
            raise ValueError(f"eta_cov must have shape (m, m) = ({m}, {m}), got {tuple(S.shape)}")
        if not torch.isfinite(S).all() or not torch.allclose(S, S.T, atol=1e-10, rtol=1e-8):
            raise ValueError("eta_cov must be a finite symmetric matrix")
        lam, V = torch.linalg.eigh(S)
        if float(lam.min()) < -1e-9 * max(1.0, float(lam.abs().max())):
            raise ValueError("eta_cov must be positive semi-definite")
        L = V * lam.clamp_min(0).sqrt()
    k = round(alpha * n)
    g = generator(seed)
    perm = torch.randperm(n, generator=g)
    z = torch.randn(n, m, generator=g, dtype=torch.float64)
    idx = perm[:k]
    eta = mean + (z[:k] * eta_std if L is None else z[:k] @ L.T)
    y_new = y2.clone()
    y_new[idx] = (y2[idx].double() + eta).to(y.dtype)
    return _poisoned(ds, y_new.reshape(y.shape), idx)


def _binary_labels(y: Tensor) -> None:
    if not ((y == 0) | (y == 1)).all():
        raise ValueError("ds.y_train must hold binary labels 0/1 for flip_binary")


def flip_binary(ds: Dataset, alpha, *, how="random", margin=None, side=None, scores=None, seed,
                w=None, b=None) -> Dataset:
    """Flip y <- 1 - y on round(alpha n) training points chosen by `how`.

    "random": uniformly among all points. "boundary": at random among points with
    |w.x + b| / |w| < margin (both sides). "one-sided": the same, only points with y == side
    (side in {0, 1}; default 1). "most-confident": the points of largest `scores` (the loss their
    flipped label has under a reference model: the points it is surest of). The hyperplane is the true one (ds.params "w", "b") unless w, b are given.
    """
    _check_dataset(ds)
    alpha = validate.fraction("alpha", alpha)
    how = validate.choice("how", how, BINARY_FLIPS)
    y = ds.y_train
    _binary_labels(y)
    n = y.shape[0]
    k = round(alpha * n)
    if margin is not None and how not in ("boundary", "one-sided"):
        raise ValueError(f"margin is only used with how='boundary' or 'one-sided', got how={how!r}")
    if side is not None and how != "one-sided":
        raise ValueError(f"side is only used with how='one-sided', got how={how!r}")
    if scores is not None and how != "most-confident":
        raise ValueError(f"scores is only used with how='most-confident', got how={how!r}")
    g = generator(seed)
    if how == "random":
        idx = torch.randperm(n, generator=g)[:k]
    elif how == "most-confident":
        idx = _top(_scores("scores", scores, n), k)
    else:
        if margin is None:
            raise ValueError(f"margin must be given for how={how!r} (a distance >= 0 to the boundary)")
        margin = validate.non_negative("margin", margin)
        dist = boundary_distance(ds, w=w, b=b).abs()
        selected = dist < margin
        what = "within the margin"
        if how == "one-sided":
            side = 1 if side is None else side
            if side not in (0, 1):
                raise ValueError(f"side must be 0 or 1, got {side!r}")
            selected &= y == side
            what = f"within the margin with y == {side}"
        s = int(selected.sum())
        if s == 0:
            raise ValueError(f"margin={margin} selects no training point {what}; increase margin")
        if k > s:
            raise ValueError(f"alpha={alpha} asks for {k} flips but only {s} training points lie {what}; "
                             f"alpha must be <= {s}/{n} = {s / n:.4g} (or increase margin)")
        idx = _pick(selected, k, g)
    y_new = y.clone()
    y_new[idx] = 1 - y[idx]
    return _poisoned(ds, y_new, idx)


def boundary_distance(ds: Dataset, *, w=None, b=None, part="train") -> Tensor:
    """Signed distance (w.x + b) / |w| of each point (part "train" or "test") to a hyperplane (the true one unless given)."""
    part = validate.choice("part", part, ("train", "test"))
    w = ds.params.get("w") if w is None else w
    b = ds.params.get("b", 0.0) if b is None else b
    if w is None:
        raise ValueError("w must be given (ds.params has no true 'w')")
    w = torch.as_tensor(w, dtype=torch.float64).reshape(-1)
    b = float(torch.as_tensor(b, dtype=torch.float64).reshape(-1)[0]) if torch.as_tensor(b).numel() else 0.0
    norm = float(w.norm())
    if norm == 0.0 or not torch.isfinite(w).all():
        raise ValueError("w must be a finite non-zero vector")
    X = ds.X_train if part == "train" else ds.X_test
    X = X.reshape(X.shape[0], -1).double()
    if X.shape[1] != w.shape[0]:
        raise ValueError(f"w must have d = {X.shape[1]} entries, got {w.shape[0]}")
    return (X @ w + b) / norm


def flip_multiclass(ds: Dataset, alpha, *, how="random", num_classes=None, target=None, pair=None,
                    scores=None, probs=None, seed) -> Dataset:
    """Relabel round(alpha n) training points of a K-class problem (labels 0..K-1) chosen by `how`.

    "random": each chosen point gets a uniformly chosen other class. "target-class": points not of
    class `target`, at random, all relabelled `target`. "pair" (pair=(a, b)): points of class a or b,
    at random, a <-> b. "least-confident": the points of largest `scores`
    (default: -log probs[y], the cross-entropy under the reference model whose class probabilities are
    `probs` (n, K): the points it is least sure of), each relabelled to its most likely wrong class under
    `probs`; for the points of smallest confidence pass scores = -probs.max(1).values.
    "most-confident": the opposite choice, the points of smallest -log probs[y] (largest `scores` when
    given), relabelled the same way: for K = 2 the points the model is surest of, flipped.
    K = num_classes, else len(ds.classes), else 1 + the largest label in the data set.
    """
    _check_dataset(ds)
    alpha = validate.fraction("alpha", alpha)
    how = validate.choice("how", how, MULTICLASS_FLIPS)
    y = ds.y_train
    if torch.is_floating_point(y) and not (y == y.round()).all():
        raise ValueError("ds.y_train must hold integer class labels for flip_multiclass")
    y_long = y.reshape(-1).long()
    n = y_long.shape[0]
    if num_classes is None:
        if ds.classes is not None:
            num_classes = len(ds.classes)
        else:
            labels = torch.cat([y_long, ds.y_test.reshape(-1).long()])
            num_classes = int(labels.max()) + 1
    K = validate.positive_int("num_classes", num_classes, minimum=2)
    if int(y_long.min()) < 0 or int(y_long.max()) >= K:
        raise ValueError(f"ds.y_train labels must lie in 0..{K - 1} (num_classes = {K})")
    for name, value, used in (("target", target, "target-class"), ("pair", pair, "pair"),
                              ("scores", scores, CONFIDENCE_FLIPS), ("probs", probs, CONFIDENCE_FLIPS)):
        if value is not None and how not in (used if isinstance(used, tuple) else (used,)):
            raise ValueError(f"{name} is only used with how in {used!r}, got how={how!r}")
    k = round(alpha * n)
    g = generator(seed)
    y_new = y_long.clone()
    if how == "random":
        perm = torch.randperm(n, generator=g)
        shift = torch.randint(1, K, (n,), generator=g)
        idx = perm[:k]
        y_new[idx] = (y_long[idx] + shift[:k]) % K
    elif how == "target-class":
        target = _class("target", target, K)
        eligible = y_long != target
        _enough(alpha, k, int(eligible.sum()), n, f"not of class {target}")
        idx = _pick(eligible, k, g)
        y_new[idx] = target
    elif how == "pair":
        if pair is None or len(tuple(pair)) != 2:
            raise ValueError(f"pair must be two classes (a, b), got {pair!r}")
        a, b_ = (_class("pair", c, K) for c in pair)
        if a == b_:
            raise ValueError(f"pair must name two different classes, got ({a}, {b_})")
        eligible = (y_long == a) | (y_long == b_)
        _enough(alpha, k, int(eligible.sum()), n, f"of class {a} or {b_}")
        idx = _pick(eligible, k, g)
        y_new[idx] = torch.where(y_long[idx] == a, b_, a)
    else:
        if probs is None:
            raise ValueError(f"probs must be given for how={how!r} (class probabilities (n, K) of a reference model)")
        P = torch.as_tensor(probs).detach().to(torch.float64)
        if P.shape != (n, K):
            raise ValueError(f"probs must have shape (n, K) = ({n}, {K}), got {tuple(P.shape)}")
        if not torch.isfinite(P).all() or (P < 0).any():
            raise ValueError("probs must be finite and >= 0")
        p_true = P.gather(1, y_long[:, None]).squeeze(1)
        # most-confident ranks by -loss = log p_true: its largest scores are the points of smallest loss
        default = torch.log(p_true) if how == "most-confident" else -torch.log(p_true)
        s = default if scores is None else _scores("scores", scores, n)
        if not torch.isfinite(s).all():
            raise ValueError("probs must be > 0 at the true labels when scores are not given (the loss is infinite)")
        idx = _top(s, k)
        wrong = P.clone()
        wrong[torch.arange(n), y_long] = -torch.inf
        y_new[idx] = wrong[idx].argmax(dim=1)
    return _poisoned(ds, y_new.to(y.dtype).reshape(y.shape), idx)


def _class(name: str, value, K: int) -> int:
    try:
        ok = not isinstance(value, bool) and int(value) == value and 0 <= int(value) < K
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a class in 0..{K - 1}, got {value!r}")
    return int(value)


def _enough(alpha: float, k: int, s: int, n: int, what: str) -> None:
    if k > s:
        raise ValueError(f"alpha={alpha} asks for {k} flips but only {s} training points are {what}; "
                         f"alpha must be <= {s}/{n} = {s / n:.4g}")
