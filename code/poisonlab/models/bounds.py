"""Certified bounds on a network's outputs over an L_inf ball: interval bound propagation (IBP) and CROWN.

Every function takes one model's parameters (a Spec's dict), so that `torch.func.vmap` runs K stacked models at
once. An input set is a box [lo, hi] (`ball`: the L_inf ball of radius eps around x, clipped to the pixel box
[0, 1], is itself a box). IBP carries the box layer by layer in centre/radius form: an affine map sends centre
c and radius r to W c + b and |W| r (exactly the smallest box around the image of the box), a monotone map
(ReLU, max-pooling) sends the corners to the corners. Gowal et al.'s margin bound folds the last Linear layer
into the specification z_y - z_k, whose row W_y - W_k then meets the box directly: tighter than subtracting
the bounds of z_y and z_k.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .spec import Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool2d, ReLU, Spec, Unflatten

__all__ = ["ball", "interval", "logit_bounds", "margin_bounds", "worst_logits", "certified"]

LAYERS = (Linear, Conv2d, ReLU, Flatten, Unflatten, MaxPool2d, Dropout, GlobalAvgPool)


def ball(x: Tensor, eps, box=(0.0, 1.0)) -> tuple[Tensor, Tensor]:
    """The L_inf ball of radius eps (a number or one per row of x) around x, clipped to `box`: (lo, hi)."""
    eps = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if bool((eps < 0).any()) or not bool(torch.isfinite(eps).all()):
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    if eps.dim():
        eps = eps.reshape(-1, *([1] * (x.dim() - 1)))
    lo, hi = x - eps, x + eps
    if box is not None:
        lo, hi = lo.clamp(*box), hi.clamp(*box)
    return lo, hi


def _check(spec: Spec) -> None:
    for layer in spec.layers:
        if not isinstance(layer, LAYERS):
            raise ValueError(f"model has a {type(layer).__name__} layer, which interval bounds do not support")


def interval(spec: Spec, params: dict, lo: Tensor, hi: Tensor, upto: int | None = None) -> tuple[Tensor, Tensor]:
    """IBP: elementwise bounds (lo, hi) on the output of the spec's first `upto` layers (default all) for every
    input in the box [lo, hi] (B, ...). Dropout is the identity (evaluation)."""
    _check(spec)
    c, r = (hi + lo) / 2, (hi - lo) / 2
    layers = list(zip(spec.prefixes, spec.layers))[:upto]
    for prefix, layer in layers:
        p = {k: params[prefix + k] for k in layer.shapes}
        if isinstance(layer, Linear):
            c, r = layer(p, c, False), r @ p["weight"].abs().T
        elif isinstance(layer, Conv2d):
            c = layer(p, c, False)
            r = torch.nn.functional.conv2d(r, p["weight"].abs(), None, layer.stride, layer.padding)
        elif isinstance(layer, (ReLU, MaxPool2d)):  # monotone: the corners' images bound the image
            lo_, hi_ = layer(p, c - r, False), layer(p, c + r, False)
            c, r = (hi_ + lo_) / 2, (hi_ - lo_) / 2
        elif isinstance(layer, Dropout):
            continue
        else:  # reshaping, averaging: linear with non-negative coefficients
            c, r = layer(p, c, False), layer(p, r, False)
    return c - r, c + r


def logit_bounds(spec: Spec, params: dict, x: Tensor, eps, box=(0.0, 1.0)) -> tuple[Tensor, Tensor]:
    """IBP bounds (lo, hi) (B, classes) on the logits over the clipped L_inf ball of radius eps around x."""
    return interval(spec, params, *ball(x, eps, box))


def margin_bounds(spec: Spec, params: dict, x: Tensor, y: Tensor, eps, box=(0.0, 1.0)) -> Tensor:
    """(B, classes) lower bounds of the margins z_y - z_k over the ball (0 at k = y), the last Linear layer folded
    into the specification (Gowal et al. 2018): the row W_y - W_k meets the box of the layer's input."""
    last = spec.layers[-1]
    if not isinstance(last, Linear):
        raise ValueError("model must end with a Linear layer for the margin bound (the specification folds it in)")
    lo, hi = interval(spec, params, *ball(x, eps, box), upto=len(spec.layers) - 1)
    W, b = params[spec.prefixes[-1] + "weight"], params.get(spec.prefixes[-1] + "bias")
    c, r = (hi + lo) / 2, (hi - lo) / 2
    Wd = W[y].unsqueeze(1) - W.unsqueeze(0)  # (B, classes, d): W_y - W_k
    out = (Wd @ c.unsqueeze(-1)).squeeze(-1) - (Wd.abs() @ r.unsqueeze(-1)).squeeze(-1)
    if b is not None:
        out = out + b[y].unsqueeze(1) - b.unsqueeze(0)
    return out


def worst_logits(spec: Spec, params: dict, x: Tensor, y: Tensor, eps, elide: bool = True, box=(0.0, 1.0)) -> Tensor:
    """The logits of the robust cross-entropy: elided, -margin_bounds (z_y's place 0, z_k's the largest z_k - z_y
    can be); naive (the source's), the lower bound of z_y and the upper bounds of the others."""
    if elide:
        return -margin_bounds(spec, params, x, y, eps, box)
    lo, hi = logit_bounds(spec, params, x, eps, box)
    return torch.where(torch.nn.functional.one_hot(y, hi.shape[-1]).bool(), lo, hi)


def certified(margins: Tensor, y: Tensor) -> Tensor:
    """(B,) whether every margin lower bound but the true class's own is positive: the prediction y holds on the
    whole ball."""
    others = torch.ones_like(margins, dtype=torch.bool).scatter_(-1, y.unsqueeze(-1), False)
    return torch.where(others, margins > 0, True).all(-1)
