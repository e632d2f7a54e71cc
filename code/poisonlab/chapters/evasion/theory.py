"""The evasion chapter's analysis: the L_inf attack on a linear model, exactly (with and without the box of
valid pixels), and why a softmax trained at temperature T hides its gradient.

Linear models. For a binary linear classifier with signed margin m(x) = s (w . x + b) (s = +-1 the label),
a perturbation delta lowers the margin by -s w . delta <= eps ||w||_1 over the L_inf ball (Hoelder), with
equality at delta = -s eps sign(w): the FGSM step, since the gradient of the logistic loss at x is a negative
multiple of s w. So FGSM is the optimal L_inf attack on a linear binary model, and a correctly classified
point is flipped iff m(x) <= eps ||w||_1 (box aside). With the box x + delta in [0, 1]^d each coordinate can
move only as far as its room in the harmful direction, min(eps, 1 - x_j) or min(eps, x_j): the reduction is
sum_j |w_j| a_j(eps), still attained by FGSM followed by clipping (the problem separates over coordinates).

Temperature. With p = softmax(z / T_a) the cross-entropy's gradient with respect to the logits is
(p - e_y) / T_a. For a correctly classified point of logit margin Delta = z_y - max_{k != y} z_k, every
component is at most e^{-Delta / T_a} / T_a in size. In float32, p_y rounds to exactly 1 once
sum_k e^{-Delta_k / T_a} < 2^-24 (Delta / T_a > ~16.6), and the other components round to exactly 0 once
e^{-Delta_k / T_a} < 2^-150 (half the smallest subnormal; Delta / T_a > 150 ln 2 = 103.97): the gradient,
and with it FGSM's step, is then exactly zero. A network trained at temperature T learns logits about T
times larger, so an attacker who ignores T (T_a = 1) meets margins T times larger: gradient masking.
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch
from torch import Tensor

from ... import validate


def linf_margin_reduction(X: Tensor, w: Tensor, s: Tensor, eps: float, box=(0.0, 1.0)) -> Tensor:
    """The largest reduction of the signed margin s (w . x + b) over ||delta||_inf <= eps (and x + delta in the
    box): sum_j |w_j| a_j with a_j = eps, or the room of coordinate j in the harmful direction -s sign(w_j)."""
    eps = validate.non_negative("eps", eps)
    X = torch.as_tensor(X, dtype=torch.float64).reshape(len(X), -1)
    w = torch.as_tensor(w, dtype=torch.float64).reshape(-1)
    s = torch.as_tensor(s, dtype=torch.float64).reshape(-1, 1)
    if X.shape[1] != w.numel() or s.shape[0] != X.shape[0]:
        raise ValueError(f"X, w and s must agree: X {tuple(X.shape)}, w {w.numel()}, s {s.shape[0]}")
    if box is None:
        return torch.full((len(X),), eps * float(w.abs().sum()), dtype=torch.float64)
    lo, hi = box
    direction = -s * torch.sign(w)  # where each coordinate must move to lower the margin
    room = torch.where(direction > 0, hi - X, X - lo).clamp_min(0.0)
    return (w.abs() * torch.minimum(room, torch.full_like(room, eps))).sum(1)


def linear_flipped_fraction(X: Tensor, w: Tensor, b: float, s: Tensor, eps_values, box=(0.0, 1.0)) -> np.ndarray:
    """Predicted accuracy-drop of the optimal L_inf attack (= FGSM) on a binary linear model: the fraction of
    the points it classifies correctly whose margin is at most the attainable reduction, per eps."""
    X = torch.as_tensor(X, dtype=torch.float64).reshape(len(X), -1)
    margin = torch.as_tensor(s, dtype=torch.float64).reshape(-1) * (X @ torch.as_tensor(w, dtype=torch.float64)
                                                                     .reshape(-1) + float(b))
    out = []
    for eps in validate.finite_array("eps_values", eps_values).ravel():
        reduction = linf_margin_reduction(X, w, s, float(eps), box)
        out.append(float(((margin > 0) & (margin <= reduction)).double().sum()) / len(X))
    return np.array(out)


def fgsm_linear_loss():
    """sympy: the logistic loss of a linear model at the FGSM point, and its first-order expansion in eps,
    l(m - eps ||w||_1) = l(m) - eps ||w||_1 l'(m) + O(eps^2) (m the margin)."""
    m, eps, w1 = sp.symbols("m epsilon ||w||_1", positive=True)
    loss = sp.log(1 + sp.exp(-m))
    attacked = loss.subs(m, m - eps * w1)
    first = sp.series(attacked, eps, 0, 2).removeO()
    return {"loss": loss, "attacked": attacked, "first_order": sp.simplify(first),
            "slope": sp.simplify(sp.diff(attacked, eps).subs(eps, 0))}


def zero_gradient_margin(dtype=torch.float32) -> float:
    """The margin-over-temperature beyond which the cross-entropy's logit gradient is exactly zero in `dtype`:
    e^{-Delta} below half the smallest subnormal number, Delta > -ln(tiny_subnormal / 2)."""
    tiny = float(torch.finfo(dtype).smallest_normal) * float(torch.finfo(dtype).eps)  # the smallest subnormal
    return -math.log(tiny / 2)


def saturation_margin(dtype=torch.float32) -> float:
    """The margin-over-temperature beyond which p_y rounds to exactly 1 (its gradient component is 0)."""
    return -math.log(float(torch.finfo(dtype).eps) / 2)


def logit_gradient_norm(margin, T: float = 1.0, K: int = 10):
    """||(p - e_y) / T||_2 for logits with y ahead of each of the K - 1 others by `margin` (exact, float64):
    with q = e^{-margin/T} / (1 + (K-1) e^{-margin/T}) it is sqrt((K-1)^2 q^2 + (K-1) q^2) / T."""
    T = validate.positive("T", T)
    if isinstance(K, bool) or int(K) != K or K < 2:
        raise ValueError(f"K must be a whole number >= 2, got {K!r}")
    d = np.asarray(margin, dtype=float) / T
    q = np.exp(-d) / (1 + (K - 1) * np.exp(-d))
    return np.sqrt((K - 1) ** 2 * q ** 2 + (K - 1) * q ** 2) / T


def softmax_optimal_fooled(X: Tensor, y: Tensor, W: Tensor, b: Tensor, eps: float, box=(0.0, 1.0)) -> Tensor:
    """Per point, whether some perturbation ||delta||_inf <= eps (x + delta in the box) makes a softmax regression
    (logits W x + b) misclassify it: for some class k != y the pairwise margin (w_y - w_k) . x + b_y - b_k is at
    most its largest attainable reduction (linf_margin_reduction with w = w_y - w_k), which is exact because
    each pairwise margin is linear and the feasible set separates over coordinates. Points already
    misclassified count as fooled."""
    X = torch.as_tensor(X, dtype=torch.float64).reshape(len(X), -1)
    W = torch.as_tensor(W, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    y = torch.as_tensor(y).long()
    lo, hi = (-math.inf, math.inf) if box is None else box
    eps = validate.non_negative("eps", eps)
    fooled = torch.zeros(len(X), dtype=torch.bool)
    for k in range(W.shape[0]):
        other = y != k
        w = W[y[other]] - W[k]  # (n', d): each point's own pairwise direction, harmful direction -sign(w)
        margin = (X[other] * w).sum(1) + b[y[other]] - b[k]
        room = torch.where(w < 0, hi - X[other], X[other] - lo).clamp_min(0.0)
        reduction = (w.abs() * room.clamp_max(eps)).sum(1)
        fooled[other] |= margin <= reduction
    return fooled
