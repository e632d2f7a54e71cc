"""Filter defences: which training points to keep before (re)training. Each returns a bool keep-mask.

loss_filter drops the points of largest loss (under a model trained on the poisoned data, or a
clean reference); knn_filter drops points whose label disagrees with their nearest neighbours'.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import validate

__all__ = ["loss_filter", "knn_filter", "knn_disagreement", "filter_masks", "discarded", "filter_dataset",
           "centroid_scores"]


def loss_filter(scores, fraction) -> Tensor:
    """Keep-mask dropping the round(fraction * n) points of largest score (ties: the later index is kept).

    scores (n,) or (K, n) for K models at once (each row filtered on its own).
    """
    fraction = validate.fraction("fraction", fraction)
    s = torch.as_tensor(scores).detach()
    if s.dim() not in (1, 2) or s.shape[-1] == 0:
        raise ValueError(f"scores must have shape (n,) or (K, n) with n >= 1, got {tuple(s.shape)}")
    if not torch.isfinite(s).all():
        raise ValueError("scores must be finite")
    n = s.shape[-1]
    k = round(fraction * n)
    order = torch.sort(s.double(), dim=-1, descending=True, stable=True).indices
    keep = torch.ones(s.shape, dtype=torch.bool)
    keep.scatter_(-1, order[..., :k], False)
    return keep


def _rows(X, y) -> tuple[Tensor, Tensor]:
    """X (n, ...) flattened to finite float64 rows, and y as one label per row (a column (n, 1) accepted)."""
    X = torch.as_tensor(X).detach()
    y = torch.as_tensor(y).detach()
    n = X.shape[0] if X.dim() else 0
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise ValueError(f"y must hold one label per row of X ({n}), got shape {tuple(y.shape)}")
    Z = X.reshape(n, -1).double()
    if not torch.isfinite(Z).all():
        raise ValueError("X must be finite")
    return Z, y


def knn_disagreement(X, y, k=10, *, chunk=1024) -> Tensor:
    """Fraction of each point's k nearest neighbours (Euclidean, the point itself excluded) whose
    label differs from its own; X (n, ...) is flattened to rows."""
    k = validate.positive_int("k", k)
    Z, y = _rows(X, y)
    n = len(y)
    if k >= n:
        raise ValueError(f"k must be smaller than the number of points ({n}), got {k}")
    out = torch.empty(n, dtype=torch.float64)
    sq = (Z * Z).sum(1)
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        # squared distances by one matrix product: an order of magnitude faster than cdist here
        D = sq[rows, None] + sq[None, :] - 2.0 * Z[rows] @ Z.T
        D[torch.arange(len(rows)), rows] = torch.inf  # a point is not its own neighbour
        nb = torch.topk(D, k, dim=1, largest=False, sorted=False).indices
        out[rows] = (y[nb] != y[rows, None]).double().mean(1)
    return out


def centroid_scores(X, y, how: str = "sphere") -> Tensor:
    """The outlier scores of the sphere and slab defences (Steinhardt, Koh and Liang 2017), binary labels.

    With mu_c the centroid of the points labelled c: "sphere" scores |x - mu_y|, the distance to the centroid
    of the point's own label; "slab" scores |(x - mu_y) . (mu_1 - mu_0)| / |mu_1 - mu_0|, the distance along
    the line joining the centroids. Points of largest score are the outliers (loss_filter(scores, drop)
    drops them). X (n, ...) is flattened to rows; y holds labels 0 and 1, both present.
    """
    validate.choice("how", how, ("sphere", "slab"))
    Z, y = _rows(X, y)
    if not bool(((y == 0) | (y == 1)).all()) or not bool((y == 0).any()) or not bool((y == 1).any()):
        raise ValueError("y must hold binary labels 0 and 1, both present")
    mu = torch.stack([Z[y == 0].mean(0), Z[y == 1].mean(0)])
    R = Z - mu[y.long()]
    if how == "sphere":
        return R.norm(dim=1)
    u = mu[1] - mu[0]
    return (R @ u).abs() / u.norm().clamp_min(1e-300)


def knn_filter(X, y, k=10, threshold=0.5) -> Tensor:
    """Keep-mask dropping points whose label disagrees with more than `threshold` of their k nearest
    neighbours' labels. X (n, ...) and y (n,), or a batch X (K, n, ...) with y (K, n)."""
    threshold = validate.fraction("threshold", threshold)
    y = torch.as_tensor(y)
    if y.dim() == 2 and y.shape[1] != 1:
        X = torch.as_tensor(X)
        if X.shape[:2] != y.shape:
            raise ValueError(f"X must have shape (K, n, ...) matching y {tuple(y.shape)}, got {tuple(X.shape)}")
        return torch.stack([knn_disagreement(X[i], y[i], k) <= threshold for i in range(y.shape[0])])
    return knn_disagreement(X, y, k) <= threshold


def filter_masks(sets, defense: str, fractions, *, k: int = 10, threshold=None, losses=None) -> list[Tensor]:
    """Keep-masks of the filter `defense` ("loss-filter" or "knn-filter") over training sets sets[i] = (X, y).

    "knn-filter" with a threshold: knn_filter. Else each set drops the round(fractions[i] * n) points of
    largest score (loss_filter): their knn_disagreement ("knn-filter"), or for "loss-filter" their loss
    under a preliminary model, losses(idx) -> one per-example loss tensor per set of the list idx. A set
    with nothing to drop is kept whole and not scored.
    """
    if defense == "knn-filter" and threshold is not None:
        return [knn_filter(X, y, k, threshold) for X, y in sets]
    keeps = [torch.ones(X.shape[0], dtype=torch.bool) for X, _ in sets]
    active = [i for i, ((X, _), f) in enumerate(zip(sets, fractions)) if round(f * X.shape[0]) > 0]
    if not active:  # nothing to drop: no scores needed
        return keeps
    if defense == "loss-filter":
        scores = dict(zip(active, losses(active)))
    else:
        scores = {i: knn_disagreement(*sets[i], k) for i in active}
    for i in active:
        keeps[i] = loss_filter(scores[i], fractions[i])
    return keeps


def discarded(keep: Tensor, poisoned: Tensor) -> tuple[float, float]:
    """Fractions of the clean and of the poisoned training points (poisoned: the poison mask) that a filter's
    keep-mask discards; 0 where there are none."""
    n_poison, n_clean = int(poisoned.sum()), int((~poisoned).sum())
    return (float((~keep & ~poisoned).sum()) / n_clean if n_clean else 0.0,
            float((~keep & poisoned).sum()) / n_poison if n_poison else 0.0)


def filter_dataset(ds, keep: Tensor):
    """The data set restricted to the kept training points (mask restricted alike; test set unchanged)."""
    keep = torch.as_tensor(keep, dtype=torch.bool)
    if keep.shape != (ds.n_train,):
        raise ValueError(f"keep must be a bool mask of shape ({ds.n_train},), got {tuple(keep.shape)}")
    mask = None if ds.mask is None else ds.mask[keep]
    return ds.replace(X_train=ds.X_train[keep], y_train=ds.y_train[keep], mask=mask)
