"""Certified bounds on a ReLU network's outputs over a box by CROWN (Zhang et al. 2018): linear bounds passed
backwards through the network.

IBP (models.bounds) forgets, layer by layer, how the units of a layer depend on one another: each box it carries
is the smallest around the image of the previous box, and the slack compounds with depth. CROWN keeps a linear
function of the input instead. To bound S z (z the logits, S a row of specification coefficients) from below, it
walks back from the output: a Linear layer is exact (S W on its input, S b into the constant); a ReLU is
replaced by a line below or above it, whichever keeps the bound valid given the sign of the coefficient that
meets it. A unit whose pre-activation bounds l, u do not straddle 0 is linear (identity or zero) and exact; an
unstable one (l < 0 < u) is bounded above by the chord u (z - l) / (u - l) and below by z (slope 1) if u >= -l,
else by 0 (CROWN-Ada's choice of the lower slope with the smaller area between line and ReLU). At the input the
bound is a linear function A x + const of x, whose minimum over the box [lo, hi] is A c - |A| r (centre c,
radius r), attained at a corner.

The lines of an unstable unit need its l and u: these come from the same backward pass run for every unit of
every earlier layer (full CROWN, as in the paper), layer by layer, each with the bounds of the layers below it
(the first layer's are exact: a linear map of a box). That is quadratic in depth, and each hidden layer after
the first costs a (2 units x input size) matrix per row: the products with the first layer's weight dominate
(about 70 MFLOP a row for 784-100-100-100-10, some 6 s for 10,000 rows on 2 cores), and are done in blocks of
rows so that their results stay in cache.

CROWN is not always tighter than IBP (the lower line z of a unit with u >= -l goes below the 0 IBP keeps), but it
is on average, and by a wide margin for deeper nets (a random 784-100-100-100-10 net at eps = 0.05: mean margin
bound -1.4 against IBP's -8.6). The functions take one model's parameters (a Spec's dict), and support networks
of an optional leading Flatten, then (Linear, ReLU)* and a final Linear.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .bounds import ball
from .spec import Flatten, Linear, ReLU, Spec

__all__ = ["crown_bounds", "crown_margins", "crown_logit_bounds"]

# Rows (row x specification) per product with the first layer's weight: the (rows x input size) result is
# taken in absolute value and reduced at once, so it should stay in the core's cache (for 784 inputs, 256 rows
# are 0.8 MB). On 2 cores larger blocks were up to twice as slow overall; below a row's own specifications
# (e.g. 200 for a 100-unit layer) the products would get too small to run at full speed.
_BLOCK = 256
# Rows of the batch bounded together: the per-row (specifications x units) tensors of a chunk of 64 rows are
# about 5 MB for 100-unit layers; chunks of 1000 were 1.4 times slower (allocation and cache misses).
CHUNK = 64


def _mlp(spec: Spec, params: dict, what: str = "CROWN") -> tuple[bool, list[tuple[Tensor, Tensor | None]]]:
    """(whether the spec starts with a Flatten, [(weight, bias) of each Linear layer]), or ValueError."""
    layers = list(spec.layers)
    flat = bool(layers) and isinstance(layers[0], Flatten)
    body = layers[1:] if flat else layers
    kinds = [Linear if i % 2 == 0 else ReLU for i in range(len(body))]
    ok = len(body) % 2 == 1 and all(isinstance(layer, kind) for layer, kind in zip(body, kinds))
    if not ok:
        names = [type(layer).__name__ for layer in layers]
        raise ValueError(f"model must be an optional leading Flatten, then (Linear, ReLU)* and a final Linear: "
                         f"{what} here supports Flatten/Linear/ReLU networks, got {names}")
    prefixes = spec.prefixes[1:] if flat else spec.prefixes
    out = [(params[p + "weight"], params.get(p + "bias")) for p in prefixes[0::2]]
    return flat, out


def _rows(lo: Tensor, hi: Tensor, flat: bool, d: int) -> tuple[Tensor, Tensor]:
    """The box as flat rows (B, d), checked."""
    if lo.shape != hi.shape:
        raise ValueError(f"lo and hi must have the same shape, got {tuple(lo.shape)} and {tuple(hi.shape)}")
    if lo.dim() < 2:
        raise ValueError(f"lo and hi must be batched (B, ...), got shape {tuple(lo.shape)}")
    if lo.dim() > 2 and not flat:
        raise ValueError(f"model has no leading Flatten, so its inputs must be flat rows (B, d), got "
                         f"{tuple(lo.shape)}")
    lo, hi = lo.reshape(len(lo), -1), hi.reshape(len(hi), -1)
    if lo.shape[1] != d:
        raise ValueError(f"inputs have {lo.shape[1]} features, the model's first Linear layer takes {d}")
    if bool((lo > hi).any()):
        raise ValueError("the box must have lo <= hi")
    return lo, hi


def _relaxation(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(lower slope, upper slope, upper intercept) of the lines around relu on [l, u], per unit (B, n)."""
    unstable = (l < 0) & (u > 0)
    active = l >= 0
    one, zero = torch.ones_like(l), torch.zeros_like(l)
    width = torch.where(unstable, u - l, one)
    upper = torch.where(unstable, u / width, torch.where(active, one, zero))
    intercept = torch.where(unstable, -u * l / width, zero)
    lower = torch.where(unstable, (u >= -l).to(l.dtype), torch.where(active, one, zero))
    return lower, upper, intercept


def _concretise(A: Tensor, const: Tensor, W0: Tensor, b0: Tensor | None, c: Tensor, r: Tensor) -> Tensor:
    """Minimum over the box (centre c, radius r: (B, d)) of A (W0 x + b0) + const, A (B or 1, m, n0): (B, m).
    A W0 c is A (W0 c), cheap; only the radius term needs the (m x d) matrix A W0 of each row."""
    centre = c @ W0.T if b0 is None else torch.addmm(b0, c, W0.T)
    out = const + torch.linalg.vecdot(A, centre.unsqueeze(1))
    B, m = out.shape
    if A.shape[0] == 1:  # shared by every row (no ReLU in between): one product
        return out - r @ (A[0] @ W0).abs().T
    step = max(1, _BLOCK // max(m, 1))
    parts = []
    for i in range(0, B, step):
        P = A[i:i + step] @ W0
        P = P.abs() if P.requires_grad else P.abs_()
        parts.append((P @ r[i:i + step].unsqueeze(-1)).squeeze(-1))
    return out - torch.cat(parts)


def _lower(layers, relax, c: Tensor, r: Tensor, S: Tensor | None) -> Tensor:
    """(B, m) lower bounds of S z_k over the box, z_k the output of Linear layer k = len(relax), relax the ReLU
    lines of the layers below it. S is (B, m, n_k), or None for [I; -I] (the lower bounds of z_k, then of -z_k)."""
    k = len(relax)
    W, b = layers[k]
    if k == 0:
        if S is None:  # the first layer's image of the box is exact: z = W c + b -/+ |W| r
            mid = c @ W.T if b is None else torch.addmm(b, c, W.T)
            rad = r @ W.abs().T
            return torch.cat([mid - rad, -mid - rad], dim=1)
        return _concretise(S, torch.zeros(S.shape[:2], dtype=c.dtype, device=c.device), W, b, c, r)
    if S is None:
        A = torch.cat([W, -W]).unsqueeze(0)  # (1, 2 n_k, n_{k-1}): shared until a ReLU makes it per row
        const = torch.zeros(2 * W.shape[0], dtype=c.dtype, device=c.device) if b is None else torch.cat([b, -b])
        const = const.expand(len(c), -1)
    else:
        A = S @ W
        const = torch.zeros(S.shape[:2], dtype=c.dtype, device=c.device) if b is None else S @ b
    for j in range(k - 1, -1, -1):
        # A meets a_j = relu(z_j): a positive coefficient takes the line below relu, a negative one the line
        # above, so that A a_j >= (the result) for every z_j in [l_j, u_j]
        lower, upper, intercept = relax[j]
        neg = A.clamp(max=0)
        # A lower + min(A, 0) (upper - lower): A lower where A >= 0, A upper where A < 0 (torch.where with
        # broadcast operands is an order of magnitude slower). In place where A is this function's own per-row
        # tensor and no gradient is recorded: fresh allocations of this size cost more than the arithmetic.
        taped = torch.is_grad_enabled() and any(t.requires_grad for t in (A, lower, upper, intercept))
        inplace = A.shape[0] == len(c) and not taped
        A = A.mul_(lower.unsqueeze(1)) if inplace else A * lower.unsqueeze(1)
        A = A.addcmul_(neg, (upper - lower).unsqueeze(1))
        const = const + (neg.mul_(intercept.unsqueeze(1)) if inplace else neg * intercept.unsqueeze(1)).sum(-1)
        if j == 0:
            break
        W, b = layers[j]
        if b is not None:
            const = const + A @ b
        A = A @ W
    return _concretise(A, const, *layers[0], c, r)


def _chunk_bounds(layers, lo: Tensor, hi: Tensor, S: Tensor | None) -> Tensor:
    """Lower bounds of S z (the logits) over the box, every ReLU's pre-activation bounds by CROWN first."""
    c, r = (hi + lo) / 2, (hi - lo) / 2
    relax = []
    for _ in range(len(layers) - 1):
        both = _lower(layers, relax, c, r, None)
        n = both.shape[1] // 2
        relax.append(_relaxation(both[:, :n], -both[:, n:]))
    return _lower(layers, relax, c, r, S)


def _prepare(spec: Spec, params: dict, lo: Tensor, hi: Tensor, chunk):
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a whole number >= 1, got {chunk!r}")
    flat, layers = _mlp(spec, params)
    layers = [(W.to(lo.dtype), None if b is None else b.to(lo.dtype)) for W, b in layers]
    lo, hi = _rows(lo, hi, flat, layers[0][0].shape[1])
    return layers, lo, hi


def crown_bounds(spec: Spec, params: dict, lo: Tensor, hi: Tensor, C: Tensor | None = None, *,
                 chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
    """CROWN bounds (lower, upper) (B, m) of C z over the box [lo, hi] (B, d) (images are flattened), z the
    logits; C (B, m, classes), or None for the logits themselves (m = classes). Rows are done `chunk` at a time.
    Computed in lo's dtype."""
    layers, lo, hi = _prepare(spec, params, lo, hi, chunk)
    classes = layers[-1][0].shape[0]
    if C is not None:
        C = C.to(lo.dtype)
        if C.dim() != 3 or C.shape[0] != len(lo) or C.shape[2] != classes:
            raise ValueError(f"C must be (B, m, classes) = ({len(lo)}, m, {classes}), got {tuple(C.shape)}")
    lows, highs = [], []
    for i in range(0, len(lo), chunk):
        S = None if C is None else torch.cat([C[i:i + chunk], -C[i:i + chunk]], dim=1)
        both = _chunk_bounds(layers, lo[i:i + chunk], hi[i:i + chunk], S)
        m = both.shape[1] // 2
        lows.append(both[:, :m])
        highs.append(-both[:, m:])
    return torch.cat(lows), torch.cat(highs)


def crown_margins(spec: Spec, params: dict, x: Tensor, y: Tensor, eps, box=(0.0, 1.0), *,
                  chunk: int = CHUNK) -> Tensor:
    """(B, classes) CROWN lower bounds of the margins z_y - z_k over the clipped L_inf ball of radius eps around x
    (0 at k = y): the specification C = e_y - e_k, whose last layer folds in as in models.bounds.margin_bounds."""
    layers, lo, hi = _prepare(spec, params, *ball(x, eps, box), chunk)
    classes = layers[-1][0].shape[0]
    y = torch.as_tensor(y, device=lo.device).long().reshape(-1)
    if len(y) != len(lo) or bool(((y < 0) | (y >= classes)).any()):
        raise ValueError(f"y must hold one class in [0, {classes}) per row of x")
    eye = torch.eye(classes, dtype=lo.dtype, device=lo.device)
    parts = []
    for i in range(0, len(lo), chunk):
        yi = y[i:i + chunk]
        C = eye[yi].unsqueeze(1) - eye.unsqueeze(0)  # (b, classes, classes): row k is e_y - e_k
        out = _chunk_bounds(layers, lo[i:i + chunk], hi[i:i + chunk], C)
        parts.append(out.scatter(1, yi.unsqueeze(1), 0.0))  # the row e_y - e_y = 0 bounds 0 exactly already
    return torch.cat(parts)


def crown_logit_bounds(spec: Spec, params: dict, x: Tensor, eps, box=(0.0, 1.0), *,
                       chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
    """CROWN bounds (lo, hi) (B, classes) on the logits over the clipped L_inf ball of radius eps around x."""
    return crown_bounds(spec, params, *ball(x, eps, box), chunk=chunk)
