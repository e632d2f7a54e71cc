"""Metrics of a trained model, for one model or for K models at once (a leading batch dimension K).

Batching is read from the shapes. Parameter metrics compare with the true parameters: an estimate
with one more dimension than the truth (or K times as many entries) is a batch of K estimates.
Prediction metrics: `pred` with one more dimension than `y` is K models against one shared y;
3-D `pred` is always batched; pass `batched=True` for 2-D predictions against 2-D per-model y.
Results are float tensors: a 0-d tensor for one model, shape (K,) for K models.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import validate


__all__ = ["mse", "accuracy", "predict_labels", "param_error", "weight_error", "intercept_bias", "angle",
           "weight_norm", "confusion", "flipped_fit"]


def _t(name: str, x) -> Tensor:
    t = torch.as_tensor(x).detach()
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite (a diverged model?)")
    return t


def _pred_batched(pred: Tensor, y: Tensor, batched, unbatched_dims: int) -> bool:
    if batched is not None:
        return bool(batched)
    return pred.dim() == y.dim() + 1 or pred.dim() > unbatched_dims


def mse(pred, y, *, batched=None) -> Tensor:
    """Mean squared error over all points and outputs (nn.MSELoss), per model when batched."""
    pred, y = _t("pred", pred), _t("y", y)
    b = _pred_batched(pred, y, batched, 2)
    target_shape = pred.shape[1:] if b else pred.shape
    if y.shape != target_shape and not (b and y.shape == pred.shape):
        raise ValueError(f"y must have shape {tuple(target_shape)} to match pred {tuple(pred.shape)}, got {tuple(y.shape)}")
    sq = (pred.double() - y.double()) ** 2
    if pred.numel() == 0:
        raise ValueError("pred must not be empty")
    return (sq.flatten(1).mean(1) if b else sq.mean()).float()


def predict_labels(out, *, probs=False) -> Tensor:
    """Class labels from model outputs: argmax over a last dimension C > 1; a threshold for (..., 1)
    or 1-D binary outputs (logits: 0, unless probs=True: 0.5); integer outputs are labels already."""
    out = _t("out", out)
    if not out.is_floating_point():
        return out.long()
    if out.dim() == 1:
        return _binary_labels(out, probs)
    if out.shape[-1] == 1:
        return _binary_labels(out[..., 0], probs)
    return out.argmax(dim=-1)


def _binary_labels(scores: Tensor, probs: bool) -> Tensor:
    # never guessed from the values: logits of an untrained model may all lie in [0, 1]
    return (scores > (0.5 if probs else 0.0)).long()


def accuracy(logits_or_probs, y, *, probs=False, batched=None) -> Tensor:
    """Fraction of correct labels: argmax over a class dimension, or a threshold for binary outputs.

    Shapes: y (n,) (or (K, n) per model); outputs (n,), (n, 1), (n, C) for one model and
    (K, n), (K, n, 1), (K, n, C) for K models. Binary outputs are logits (threshold 0) unless
    probs=True (threshold 0.5).
    Integer outputs are taken as predicted labels.
    """
    out, y = _t("logits_or_probs", logits_or_probs), _t("y", y)
    if y.dim() == 2 and y.shape[-1] == 1:
        y = y[:, 0]
    if y.dim() not in (1, 2):
        raise ValueError(f"y must have shape (n,) or (K, n), got {tuple(y.shape)}")
    n = y.shape[-1]
    if batched is None:
        if y.dim() == 2 or out.dim() == 3:
            batched = True
        elif out.dim() == 2:
            batched = out.shape[0] != n and out.shape[1] == n
        else:
            batched = False
    if batched:
        if out.dim() == 2:
            out = out[..., None]
        if out.dim() != 3 or out.shape[1] != n:
            raise ValueError(f"logits_or_probs must have shape (K, n[, C]) with n = {n}, got {tuple(out.shape)}")
    else:
        if out.dim() == 1:
            out = out[:, None]
        if out.dim() != 2 or out.shape[0] != n or y.dim() != 1:
            raise ValueError(f"logits_or_probs must have shape (n[, C]) with n = {n}, got {tuple(out.shape)}")
    if n == 0:
        raise ValueError("y must not be empty")
    if not out.is_floating_point():
        labels = out[..., 0].long()
    elif out.shape[-1] == 1:
        labels = _binary_labels(out[..., 0], probs)
    else:
        labels = out.argmax(dim=-1)
    correct = (labels == y.long()).double()
    return correct.mean(-1).float()


def _flat(name: str, est, true):
    """est as (K, p) and true as (p,), and whether est is a batch."""
    est, true = _t(name, est).double(), _t("true", true).double()
    p = true.numel()
    if est.numel() == p and est.dim() <= max(true.dim(), 1):
        return est.reshape(1, p), true.reshape(p), False
    if est.dim() >= 1 and est.shape[0] > 0 and est[0].numel() == p:
        return est.reshape(est.shape[0], p), true.reshape(p), True
    raise ValueError(f"{name} must have the shape of the true parameter {tuple(true.shape)} "
                     f"(or a leading batch dimension), got {tuple(est.shape)}")


def _out(values: Tensor, batched: bool) -> Tensor:
    return (values if batched else values[0]).float()


def weight_error(W_hat, W) -> Tensor:
    """||W_hat - W||_F."""
    E, T, b = _flat("W_hat", W_hat, W)
    return _out((E - T).norm(dim=1), b)


def param_error(W_hat, b_hat, W, b) -> Tensor:
    """||[W_hat, b_hat] - [W, b]||_F (weights and intercepts together)."""
    EW, TW, bw = _flat("W_hat", W_hat, W)
    Eb, Tb, bb = _flat("b_hat", b_hat, b)
    if bw != bb or EW.shape[0] != Eb.shape[0]:
        raise ValueError(f"W_hat and b_hat must describe the same number of models, got {tuple(W_hat.shape)} "
                         f"and {tuple(torch.as_tensor(b_hat).shape)}")
    sq = ((EW - TW) ** 2).sum(1) + ((Eb - Tb) ** 2).sum(1)
    return _out(sq.sqrt(), bw)


def intercept_bias(b_hat, b) -> Tensor:
    """Mean over outputs of b_hat - b."""
    E, T, batched = _flat("b_hat", b_hat, b)
    return _out((E - T).mean(1), batched)


def angle(w_hat, w) -> Tensor:
    """Angle in radians between w_hat and w (in [0, pi]), computed stably as 2 atan2(|u - v|, |u + v|)."""
    E, T, batched = _flat("w_hat", w_hat, w)
    nE, nT = E.norm(dim=1, keepdim=True), T.norm()
    if float(nT) == 0.0:
        raise ValueError("w must be non-zero for an angle")
    if (nE == 0).any():
        raise ValueError("w_hat must be non-zero for an angle (a zero weight vector has no direction)")
    u, v = E / nE, T / nT
    return _out(2 * torch.atan2((u - v).norm(dim=1), (u + v).norm(dim=1)), batched)


def weight_norm(w_hat, *, batched=None) -> Tensor:
    """||w_hat||_F; a 1-D w_hat is one model, a 2-D or 3-D one a batch over its first dimension
    (pass batched=False for a single weight matrix (m, d))."""
    E = _t("w_hat", w_hat).double()
    if batched is None:
        batched = E.dim() >= 2
    if batched:
        if E.dim() < 1 or E.shape[0] == 0:
            raise ValueError(f"w_hat must have a leading batch dimension, got {tuple(E.shape)}")
        return E.reshape(E.shape[0], -1).norm(dim=1).float()
    return E.norm().float()


def confusion(pred_labels, y, K) -> Tensor:
    """Counts M[i, j] of points of true class i predicted j, shape (K, K) (or (B, K, K) for B models)."""
    K = validate.positive_int("K", K)
    pred, y = _t("pred_labels", pred_labels).long(), _t("y", y).reshape(-1).long()
    n = y.shape[0]
    batched = pred.dim() == 2
    P = pred.reshape(-1, n) if pred.numel() and pred.shape[-1] == n else None
    if P is None or pred.dim() > 2:
        raise ValueError(f"pred_labels must have shape (n,) or (B, n) with n = {n}, got {tuple(pred.shape)}")
    if ((y < 0) | (y >= K)).any() or ((P < 0) | (P >= K)).any():
        raise ValueError(f"labels must lie in 0..{K - 1} (K = {K})")
    flat = (y * K)[None] + P
    M = torch.zeros(P.shape[0], K * K, dtype=torch.long)
    M.scatter_add_(1, flat, torch.ones_like(flat))
    M = M.reshape(P.shape[0], K, K)
    return M if batched else M[0]


def flipped_fit(pred_labels, y_poisoned, mask) -> Tensor:
    """Fraction of poisoned training points predicted with their poisoned label (memorisation)."""
    pred = _t("pred_labels", pred_labels).long()
    y, mask = _t("y_poisoned", y_poisoned).reshape(-1).long(), _t("mask", mask).reshape(-1).bool()
    if int(mask.sum()) == 0:
        raise ValueError("mask must mark at least one poisoned point")
    if pred.shape[-1] != y.shape[0] or pred.dim() > 2:
        raise ValueError(f"pred_labels must have shape (n,) or (K, n) with n = {y.shape[0]}, got {tuple(pred.shape)}")
    hit = (pred[..., mask] == y[mask]).double()
    return hit.mean(-1).float()
