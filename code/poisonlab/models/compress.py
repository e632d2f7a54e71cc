"""Compressing a network's weights, and measuring what is left.

Magnitude pruning on Zhu and Gupta's (2017) cubic schedule: at the pruning steps t = t_start + j dt
(j = 0..n) every pruned layer keeps its largest weights in magnitude, the fraction in force being
s_t = s_f + (s_i - s_f)(1 - (t - t_start)/(n dt))^3; between pruning steps the masks hold, and they are
reapplied after every optimiser step (`Pruner`, a step hook of train.train_batched), as
torch.nn.utils.prune applies weight_orig * mask. Tai et al.'s (2016) low-rank convolution: a d x d kernel
W (N, C, d, d) replaced by K vertical d x 1 filters V followed by N horizontal 1 x d filters H; the best
such pair in Frobenius norm comes from the SVD of W reshaped to a (C d) x (N d) matrix (`tai_factors`).
Measures: the fraction of zero weights, the effective rank exp(entropy of the normalised singular values)
(Roy and Vetterli, 2007), the nuclear norm (Langenberg et al.'s regulariser).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import validate

__all__ = ["cubic_sparsity", "pruning_steps", "magnitude_mask", "Pruner", "sparsity", "tai_factors", "tai_kernel",
           "effective_rank", "stable_rank", "nuclear_norm", "near_zero", "as_matrix"]


def _schedule_args(s_f, t_start, every, n, s_i):
    s_f = float(s_f)
    if not 0.0 <= s_f < 1.0:
        raise ValueError(f"s_f must be in [0, 1), got {s_f!r}")
    s_i = float(s_i)
    if not 0.0 <= s_i <= s_f:
        raise ValueError(f"s_i must be in [0, s_f={s_f}], got {s_i!r}")
    return s_f, validate.positive_int("t_start", t_start, minimum=0), validate.positive_int("every", every), \
        validate.positive_int("n", n), s_i



def cubic_sparsity(t: int, s_f: float, t_start: int, every: int, n: int, s_i: float = 0.0) -> float:
    """The sparsity in force after step t: s_i up to t_start, then Zhu and Gupta's value at the last pruning step
    t_start + j every <= t (j <= n), s_f from t_start + n every on."""
    s_f, t_start, every, n, s_i = _schedule_args(s_f, t_start, every, n, s_i)
    if t <= t_start:
        return s_i
    j = min(n, (int(t) - t_start) // every)
    if j == n:
        return s_f  # exactly, not s_f + (s_i - s_f) * 0.0 ** 3 up to rounding
    return s_f + (s_i - s_f) * (1.0 - j / n) ** 3


def pruning_steps(t_start: int, every: int, n: int, s_f: float = 0.5, s_i: float = 0.0) -> dict[int, float]:
    """Step -> the sparsity the masks are set to there: t_start + j every for j = 0..n."""
    _schedule_args(s_f, t_start, every, n, s_i)
    return {t_start + j * every: cubic_sparsity(t_start + j * every, s_f, t_start, every, n, s_i) for j in range(n + 1)}


def magnitude_mask(w: Tensor, sparsity) -> Tensor:
    """Masks (K, ...) of stacked weights w (K, ...): in model k, the round(sparsity_k * size) entries smallest in
    magnitude are 0 (as torch.nn.utils.prune.l1_unstructured(amount=sparsity_k) prunes them), the rest 1."""
    K = w.shape[0]
    s = torch.as_tensor(sparsity, dtype=torch.float64).reshape(-1)
    s = s.expand(K) if len(s) == 1 else s
    if len(s) != K or not bool(((s >= 0) & (s < 1)).all()):
        raise ValueError(f"sparsity must be K={K} values in [0, 1), got {sparsity!r}")
    flat = w.detach().reshape(K, -1).abs()
    size = flat.shape[1]
    mask = torch.ones_like(flat, dtype=w.dtype)
    for k in range(K):  # a selection per model (linear time), not a sort of millions of weights
        pruned = round(float(s[k]) * size)  # Python's round, as torch's prune counts
        if pruned == 0:
            continue
        v = flat[k].kthvalue(pruned).values
        mask[k] = (flat[k] > v).to(w.dtype)
        extra = int(size - mask[k].sum()) - pruned  # ties at the threshold: keep the first of them
        if extra > 0:
            ties = (flat[k] == v).nonzero().flatten()[:extra]
            mask[k, ties] = 1
    return mask.reshape(w.shape)


class Pruner:
    """A step hook for train.train_batched: layer-wise magnitude pruning of the weights `names` of K models.

    steps: step -> (K,) the sparsity each model's layers are pruned to there (Zhu and Gupta's schedule:
    cubic_sparsity at t_start + j dt; one-shot: {t_start: s_f}). At those steps the masks are recomputed from the
    (already masked) weights, so pruned weights stay pruned; after every step they are reapplied, because the
    optimiser's moments move pruned weights off zero.
    """

    def __init__(self, names, steps: dict):
        self.names = list(names)
        self.steps = {int(t): torch.as_tensor(s, dtype=torch.float64).reshape(-1) for t, s in steps.items()}
        self.masks: dict[str, Tensor] = {}

    def __call__(self, step: int, params: dict) -> None:
        if step in self.steps:
            self.masks = {k: magnitude_mask(params[k], self.steps[step]) for k in self.names}
        for k, mask in self.masks.items():
            params[k].mul_(mask)


def sparsity(params: dict, names) -> Tensor:
    """(K,) fraction of exactly zero entries among the weights `names` of K stacked models."""
    names = list(names)
    K = params[names[0]].shape[0]
    zeros = sum((params[k].reshape(K, -1) == 0).sum(1).double() for k in names)
    return zeros / sum(params[k][0].numel() for k in names)


def near_zero(params: dict, names, tol: float = 0.01) -> Tensor:
    """(K,) fraction of the weights `names` of K stacked models at most tol times their layer's largest magnitude:
    the sparsity a network has without being pruned (Langenberg et al. count such weights)."""
    names = list(names)
    K = params[names[0]].shape[0]
    small = sum((params[k].reshape(K, -1).abs() <= tol * params[k].reshape(K, -1).abs().amax(1, keepdim=True)
                 ).sum(1).double() for k in names)
    return small / sum(params[k][0].numel() for k in names)


def as_matrix(w: Tensor) -> Tensor:
    """A weight as the matrix of its linear map's rows: Linear (out, in) as is, a convolution's kernel
    (out, in, kh, kw) as (out, in kh kw). Stacked weights (K, ...) keep their leading K: pass w[k] otherwise."""
    return w.reshape(w.shape[0], -1)


def tai_factors(W: Tensor, K: int) -> tuple[Tensor, Tensor]:
    """The best rank-K pair (V (K, C, d, 1), H (N, K, 1, d)) for a kernel W (N, C, d, d) in Frobenius norm: by
    Tai et al.'s Theorem 1, the truncated SVD of W reshaped to M[(c, i), (n, j)] = W[n, c, i, j]."""
    N, C, d, d2 = W.shape
    if d != d2:
        raise ValueError(f"W must be a square kernel (N, C, d, d), got shape {tuple(W.shape)}")
    K = validate.positive_int("K", K)
    if K > min(C * d, N * d):
        raise ValueError(f"K must be at most min(C d, N d) = {min(C * d, N * d)}, got {K}")
    M = W.permute(1, 2, 0, 3).reshape(C * d, N * d)
    U, s, Vh = torch.linalg.svd(M, full_matrices=False)
    root = s[:K].sqrt()
    V = (U[:, :K] * root).T.reshape(K, C, d, 1)
    H = (root.unsqueeze(1) * Vh[:K]).reshape(K, N, d).permute(1, 0, 2).reshape(N, K, 1, d)
    return V.contiguous(), H.contiguous()


def tai_kernel(V: Tensor, H: Tensor) -> Tensor:
    """The d x d kernel (N, C, d, d) of a vertical conv V (K, C, d, 1) followed by a horizontal conv H (N, K, 1, d):
    W[n, c, i, j] = sum_k H[n, k, 0, j] V[k, c, i, 0]. Stacked factors (B, ...) give stacked kernels."""
    if V.dim() == 5:
        return torch.einsum("bnkj,bkci->bncij", H[..., 0, :], V[..., 0])
    return torch.einsum("nkj,kci->ncij", H[:, :, 0, :], V[..., 0])


def effective_rank(W: Tensor) -> Tensor:
    """exp(entropy of sigma / sum(sigma)) of a matrix (m, n), or of each of stacked matrices (K, m, n): between 1
    (one direction) and min(m, n) (equal singular values). A zero matrix has effective rank 0."""
    s = torch.linalg.svdvals(W.double())
    total = s.sum(-1, keepdim=True)
    p = torch.where(total > 0, s / total.clamp_min(1e-300), torch.zeros_like(s))
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    return torch.where(total[..., 0] > 0, entropy.exp(), torch.zeros_like(entropy))


def nuclear_norm(params: dict, names) -> Tensor:
    """Sum of the nuclear norms (sums of singular values) of the weights `names` of one model, each as a matrix
    (as_matrix): Langenberg et al.'s low-rank regulariser. torch.func-compatible (train.Penalised)."""
    return sum(torch.linalg.svdvals(as_matrix(params[k])).sum() for k in names)


def stable_rank(W: Tensor) -> Tensor:
    """||W||_F^2 / ||W||_2^2, at most rank(W): how much of the Frobenius norm the largest direction carries."""
    s = torch.linalg.svdvals(W.double())
    return (s.square().sum(-1) / s[..., 0].square())

