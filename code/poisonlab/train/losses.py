"""Losses per example, their gradients with respect to the prediction, and the matching torch.nn modules.

Conventions follow torch.nn with reduction="mean": averaging `per_example` over the examples gives
MSELoss, L1Loss, HuberLoss(delta), BCEWithLogitsLoss (on logits) and CrossEntropyLoss (on logits).
Shapes: for "mse", "l1", "huber", "bce" a prediction (..., n, m) has m outputs per example and the
loss of an example is the mean over its m outputs; a 1-D prediction (n,) holds n scalar outputs.
For "ce" the prediction holds logits (..., n, C) and the target class indices (..., n).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import validate

LOSSES = ("mse", "l1", "huber", "bce", "ce")


def module(name: str, delta: float = 1.0) -> nn.Module:
    """The torch.nn loss (reduction="mean") that `per_example(name, ...)` averages to."""
    validate.choice("loss", name, LOSSES)
    if name == "mse":
        return nn.MSELoss()
    if name == "l1":
        return nn.L1Loss()
    if name == "huber":
        return nn.HuberLoss(delta=validate.positive("delta", delta))
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    return nn.CrossEntropyLoss()


def per_example(name: str, pred: Tensor, target: Tensor, delta=1.0) -> Tensor:
    """The loss of each example, no reduction: (..., n, m) -> (..., n); "ce": logits (..., n, C) -> (..., n)."""
    target = _checked(name, pred, target, delta)
    return _per_example(name, pred, target, delta)


def grad_pred(name: str, pred: Tensor, target: Tensor, delta=1.0) -> Tensor:
    """d per_example / d pred, per example (the shape of pred); the 1/m of the mean over outputs included."""
    target = _checked(name, pred, target, delta)
    return _grad_pred(name, pred, target, delta)


# The unchecked versions below serve the batched trainer's inner loop, which validates once up front.
# Targets there already have the prediction's shape ("ce": integer indices of shape pred.shape[:-1]).

def _per_example(name: str, pred: Tensor, target: Tensor, delta=1.0) -> Tensor:
    if name == "ce":
        C = pred.shape[-1]
        return F.cross_entropy(pred.reshape(-1, C), target.reshape(-1), reduction="none").reshape(target.shape)
    if name == "mse":
        elementwise = (pred - target).square_()
    elif name == "l1":
        elementwise = (pred - target).abs_()
    elif name == "huber":
        r = (pred - target).abs_()
        # torch's HuberLoss: r^2/2 inside the band |r| < delta, delta (|r| - delta/2) outside.
        elementwise = torch.where(r < delta, 0.5 * r.square(), delta * (r - 0.5 * delta))
    else:
        elementwise = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    return elementwise.mean(-1) if pred.dim() >= 2 else elementwise


def _grad_pred(name: str, pred: Tensor, target: Tensor, delta=1.0) -> Tensor:
    if name == "ce":
        return torch.softmax(pred, -1).sub_(F.one_hot(target, pred.shape[-1]).to(pred.dtype))
    m = pred.shape[-1] if pred.dim() >= 2 else 1
    if name == "mse":
        g = (pred - target).mul_(2.0 / m)
    elif name == "l1":
        g = (pred - target).sign_()  # autograd's subgradient of |r| at 0 is 0, as here
        if m != 1:
            g.div_(m)
    elif name == "huber":
        g = torch.clamp(pred - target, -delta, delta)
        if m != 1:
            g.div_(m)
    else:
        g = torch.sigmoid(pred).sub_(target)
        if m != 1:
            g.div_(m)
    return g


def _checked(name: str, pred: Tensor, target: Tensor, delta) -> Tensor:
    """The target in the form the unchecked functions expect; ValueError naming what is wrong."""
    validate.choice("loss", name, LOSSES)
    if not isinstance(pred, Tensor) or not pred.dtype.is_floating_point:
        raise ValueError("pred must be a floating-point tensor")
    if name == "ce":
        return _class_target(pred, target)
    _check_delta(name, delta)
    return _same_shape(pred, target)


def _check_delta(name: str, delta) -> None:
    if name != "huber":
        return
    if isinstance(delta, Tensor):
        if not bool(torch.all(torch.isfinite(delta) & (delta > 0))):
            raise ValueError("delta must be a finite number > 0 (every entry)")
    else:
        validate.positive("delta", delta)


def _same_shape(pred: Tensor, target: Tensor) -> Tensor:
    """The target in the prediction's shape; (..., n) targets for (..., n, 1) predictions are accepted."""
    if target.shape == pred.shape:
        return target.to(pred.dtype)
    if pred.dim() >= 1 and pred.shape[-1] == 1 and target.shape == pred.shape[:-1]:
        return target.to(pred.dtype).unsqueeze(-1)
    # Broadcasting (n, 1) against (n,) would silently give an (n, n) loss: refuse it.
    raise ValueError(f"target must have the prediction's shape {tuple(pred.shape)}, got {tuple(target.shape)}")


def _class_target(pred: Tensor, target: Tensor) -> Tensor:
    if pred.dim() < 2 or target.shape != pred.shape[:-1]:
        raise ValueError(f"target must have shape {tuple(pred.shape[:-1])} (class indices) for logits "
                         f"{tuple(pred.shape)}, got {tuple(target.shape)}")
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        if not bool(torch.all(target == target.round())):
            raise ValueError("target must hold integer class indices for the ce loss")
        target = target.long()
    if target.numel() and not (0 <= int(target.min()) and int(target.max()) < pred.shape[-1]):
        raise ValueError(f"target must hold class indices in [0, {pred.shape[-1] - 1}]")
    return target


def unbiased_bce(pred: Tensor, target: Tensor, rho0, rho1=None) -> Tensor:
    """Natarajan et al. (2013)'s unbiased estimator of the BCE under class-conditional label flips.

    rho0 = P(flipped | true label 0), rho1 = P(flipped | true label 1) (default rho1 = rho0, symmetric
    flips), rho0 + rho1 < 1. For an observed label y in {0, 1} and logit t,
        l~(t, y) = [(1 - rho_{1-y}) l(t, y) - rho_y l(t, 1 - y)] / (1 - rho0 - rho1),
    whose expectation over the flips is the clean loss l(t, y_clean): its empirical risk is an unbiased
    estimate of the clean risk. Shapes as per_example("bce", ...): (..., n, m) -> (..., n); rho0, rho1
    numbers or tensors broadcasting against pred.
    """
    rho1 = rho0 if rho1 is None else rho1
    for name, rho in (("rho0", rho0), ("rho1", rho1)):
        r = torch.as_tensor(rho, dtype=torch.float64)
        if not bool(torch.all(torch.isfinite(r) & (r >= 0) & (r < 1))):
            raise ValueError(f"{name} must be in [0, 1) (every entry), got {rho!r}")
    if not bool(torch.all(torch.as_tensor(rho0, dtype=torch.float64) + torch.as_tensor(rho1, dtype=torch.float64)
                          < 1)):
        raise ValueError(f"rho0 + rho1 must be < 1 (the flipped labels must still carry information), "
                         f"got rho0 = {rho0!r}, rho1 = {rho1!r}")
    target = _checked("bce", pred, target, 1.0)
    return _unbiased_bce(pred, target, rho0, rho1)


def _unbiased_bce(pred: Tensor, target: Tensor, rho0, rho1) -> Tensor:
    """unbiased_bce without the checks (target already in pred's shape)."""
    loss_y = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    loss_other = F.binary_cross_entropy_with_logits(pred, 1 - target, reduction="none")
    rho_y = target * rho1 + (1 - target) * rho0          # the flip rate of the class the label names
    rho_other = target * rho0 + (1 - target) * rho1
    elementwise = ((1 - rho_other) * loss_y - rho_y * loss_other) / (1 - rho0 - rho1)
    return elementwise.mean(-1) if pred.dim() >= 2 else elementwise


def forward_corrected_ce(logits: Tensor, target: Tensor, C) -> Tensor:
    """Patrini et al.'s forward-corrected cross-entropy per example, -log (softmax(logits) C)_target: the model's
    clean posterior pushed through the flip matrix C (C[i, j] = P(noisy label j | clean label i), rows summing
    to 1; their T) before it meets the noisy label. Logits (..., n, K), target (..., n) -> (..., n); differentiable."""
    if not isinstance(logits, Tensor) or not logits.dtype.is_floating_point:
        raise ValueError("logits must be a floating-point tensor")
    target = _class_target(logits, target)
    K = logits.shape[-1]
    C = torch.as_tensor(C, dtype=logits.dtype)
    if C.shape != (K, K):
        raise ValueError(f"C must be a ({K}, {K}) matrix for {K} classes, got shape {tuple(C.shape)}")
    if not bool(torch.all(torch.isfinite(C))) or bool((C < 0).any()) or \
            not torch.allclose(C.sum(1), torch.ones(K, dtype=C.dtype), atol=1e-6):
        raise ValueError("C must be finite, >= 0, and each row must sum to 1 (a row-stochastic flip matrix)")
    # log(softmax(z) C) computed as logsumexp(log_softmax(z) + log C) for stability (log 0 = -inf is fine)
    log_noisy = torch.logsumexp(torch.log_softmax(logits, -1).unsqueeze(-1) + torch.log(C), dim=-2)
    return -log_noisy.gather(-1, target.unsqueeze(-1)).squeeze(-1)
