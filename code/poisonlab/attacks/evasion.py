"""Evasion: perturb a test input x within a budget ||delta||_p <= eps (and the box [0, 1]) so that a trained
model misclassifies it.

FGSM is the first-order solution of max_{||delta||_inf <= eps} L(x + delta): delta = eps sign(grad_x L).
PGD repeats small steps and projects back onto the ball, in the standard order (step, project onto the
ball around x, clip to the box) of Madry et al. and of torchattacks/foolbox, which the tests compare with.
`lp_descent` is the attack of the book's evasion source: gradient steps on r with ||r||_p held *at* the
budget (radial projection onto the sphere), stopping per image once its prediction changes.
`min_budget` finds, per image, the smallest budget at which an attack succeeds, by bisection.

Inputs are batches of any shape (B, ...); norms are taken per example over everything but the first axis.
The model is put in eval mode for the attack (dropout off) and restored afterwards.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import metrics, validate

NORMS = ("inf", "2", "1")
LOSSES = ("ce", "margin")
BOX = (0.0, 1.0)
_DIVISION = 1e-10  # as torchattacks' eps_for_division: a zero gradient gives a zero step, not NaN


def check_norm(norm) -> str:
    """"inf", "2" or "1" from any of inf, 2, 1 or their strings; else a ValueError naming norm."""
    key = str(norm).strip().lower()
    key = {"infinity": "inf", "linf": "inf", "l2": "2", "l1": "1", "2.0": "2", "1.0": "1"}.get(key, key)
    if key not in NORMS:
        raise ValueError(f"norm must be one of inf, 2, 1; got {norm!r}")
    return key


def _eps(eps, X: Tensor) -> Tensor:
    """eps as a tensor broadcastable against X: a number, or one budget per example (shape (B,))."""
    e = torch.as_tensor(eps, dtype=X.dtype, device=X.device)
    if not torch.all(torch.isfinite(e)) or torch.any(e < 0):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    if e.ndim == 0:
        return e
    if e.shape != X.shape[:1]:
        raise ValueError(f"eps must be a number or hold one budget per example ({X.shape[0]}), got shape "
                         f"{tuple(e.shape)}")
    return _per_example(e, X)


def _per_example(v: Tensor, X: Tensor) -> Tensor:
    return v.reshape(-1, *([1] * (X.ndim - 1)))


def _norms(v: Tensor, p: str) -> Tensor:
    flat = v.reshape(v.shape[0], -1)
    return {"inf": lambda: flat.abs().amax(1), "2": lambda: torch.norm(flat, p=2, dim=1),
            "1": lambda: flat.abs().sum(1)}[p]()


def _check(X, y) -> tuple[Tensor, Tensor]:
    if not isinstance(X, Tensor) or not X.is_floating_point() or X.ndim < 2:
        raise ValueError("X must be a floating-point tensor of shape (B, ...)")
    if not isinstance(y, Tensor) or y.dtype != torch.long or y.shape != X.shape[:1]:
        raise ValueError(f"y must be a long tensor of shape ({X.shape[0]},)")
    if not torch.all(torch.isfinite(X)):
        raise ValueError("X must be finite")
    return X.detach(), y.detach()


@contextlib.contextmanager
def _eval(model: nn.Module):
    """Eval mode (dropout off) with gradients on, even inside a caller's torch.no_grad(); restored after."""
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        model.train(was)


def attack_loss(logits: Tensor, y: Tensor, loss: str = "ce", temperature: float = 1.0,
                reduction: str = "mean") -> Tensor:
    """The loss an untargeted attack ascends. "ce": cross-entropy of logits/T (T = the attacker's belief of
    the training temperature); "margin": Carlini and Wagner's max_{k != y} z_k - z_y, which does not
    saturate (and is unchanged by T up to scale)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")
    T = validate.positive("temperature", temperature)
    if loss == "ce":
        return F.cross_entropy(logits / T, y, reduction=reduction)
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), -math.inf).amax(1)
    per = (other - true) / T
    return per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per


def input_gradient(model: nn.Module, X: Tensor, y: Tensor, loss: str = "ce", temperature: float = 1.0) -> Tensor:
    """d loss / d X of the batch-summed attack loss: each row is its own example's gradient, unscaled by the
    batch size (a mean would divide tiny gradients towards float underflow, so that whether a gradient is
    exactly zero would depend on how many images are attacked together; the attacks use only signs and
    directions, which the scale does not change)."""
    X, y = _check(X, y)
    with _eval(model):
        Xg = X.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(attack_loss(model(Xg), y, loss, temperature, reduction="sum"), Xg)
    return g


def _step(g: Tensor, p: str) -> Tensor:
    """The steepest-ascent direction of unit p-norm for gradient g: sign (inf), g/||g||_2 (2), and for p = 1
    all the budget on the largest |g_j| (the vertex of the L1 ball that maximises <g, delta>)."""
    if p == "inf":
        return g.sign()
    if p == "2":
        return g / _per_example(_norms(g, "2") + _DIVISION, g)
    flat = g.reshape(g.shape[0], -1)
    out = torch.zeros_like(flat)
    j = flat.abs().argmax(1, keepdim=True)
    out.scatter_(1, j, flat.gather(1, j).sign())
    return out.reshape(g.shape)


def project(delta: Tensor, eps, norm="inf") -> Tensor:
    """The closest point to delta (per example) in the ball ||.||_p <= eps: clamp (inf), rescale (2), and the
    sort-based Euclidean projection onto the L1 ball (Duchi et al. 2008) for p = 1."""
    p = check_norm(norm)
    e = _eps(eps, delta)
    if p == "inf":
        return torch.maximum(torch.minimum(delta, e), -e)
    if p == "2":
        n = _per_example(_norms(delta, "2"), delta)
        return delta * torch.minimum(e / n.clamp_min(1e-30), torch.ones_like(n))
    B = delta.shape[0]
    flat = delta.reshape(B, -1)
    radius = e.reshape(-1) if e.ndim else e.expand(B)
    a = flat.abs()
    inside = a.sum(1) <= radius
    u, _ = torch.sort(a, dim=1, descending=True)
    css = u.cumsum(1) - radius[:, None]
    k = torch.arange(1, a.shape[1] + 1, device=a.device, dtype=a.dtype)
    rho = ((u - css / k) > 0).to(a.dtype).mul(k).argmax(1)  # the last index where the condition holds
    theta = css.gather(1, rho[:, None]) / (rho[:, None] + 1).to(a.dtype)
    out = flat.sign() * (a - theta).clamp_min(0)
    out = torch.where(inside[:, None], flat, out)
    return out.reshape(delta.shape)


def fgsm(model: nn.Module, X: Tensor, y: Tensor, eps, *, norm="inf", loss: str = "ce", temperature: float = 1.0,
         box=BOX) -> Tensor:
    """x + eps * the steepest-ascent direction of unit p-norm at x, clipped to the box (torchattacks.FGSM for
    p = inf)."""
    X, y = _check(X, y)
    p = check_norm(norm)
    e = _eps(eps, X)
    g = input_gradient(model, X, y, loss, temperature)
    return _clip(X + e * _step(g, p), box)


def _clip(X: Tensor, box) -> Tensor:
    if box is None:
        return X.detach()
    lo, hi = box
    return torch.clamp(X, min=lo, max=hi).detach()


def accuracy(model: nn.Module, X: Tensor, y: Tensor, chunk: int = 4096) -> float:
    """metrics.accuracy of the model's outputs on X (eval mode, no gradients, in chunks)."""
    X, y = _check(X, y)
    with _eval(model), torch.no_grad():
        logits = torch.cat([model(X[i:i + chunk]) for i in range(0, len(X), chunk)])
    return float(metrics.accuracy(logits, y))


def _fgsm_direction(model, X, y, eps_values, norm, loss, temperature):
    """The checked inputs, the budgets as an array and FGSM's direction (of unit p-norm) at X."""
    X, y = _check(X, y)
    p = check_norm(norm)
    eps_values = validate.finite_array("eps_values", eps_values).ravel()
    if eps_values.size == 0 or (eps_values < 0).any():
        raise ValueError("eps_values must hold at least one budget, each >= 0")
    return X, y, eps_values, _step(input_gradient(model, X, y, loss, temperature), p)


def fgsm_budgets(model: nn.Module, X: Tensor, y: Tensor, eps_values, *, norm="inf", loss: str = "ce",
                 temperature: float = 1.0, box=BOX) -> Tensor:
    """FGSM at every eps of `eps_values` from one input gradient (the direction does not depend on eps):
    adversarial inputs of shape (len(eps_values), B, ...), row e equal to fgsm(..., eps_values[e])."""
    X, y, eps_values, direction = _fgsm_direction(model, X, y, eps_values, norm, loss, temperature)
    return torch.stack([_clip(X + _eps(float(e), X) * direction, box) for e in eps_values])


def fgsm_curve(model: nn.Module, X: Tensor, y: Tensor, eps_values, *, norm="inf", loss: str = "ce",
               temperature: float = 1.0, box=BOX) -> Tensor:
    """Accuracy under FGSM at each eps of `eps_values`: one input gradient serves every eps, so the cost is
    one backward pass and one forward pass per eps (the budgets' inputs are made one at a time: stacking
    them all would only add memory traffic)."""
    X, y, eps_values, direction = _fgsm_direction(model, X, y, eps_values, norm, loss, temperature)
    return torch.tensor([accuracy(model, _clip(X + _eps(float(e), X) * direction, box), y) for e in eps_values],
                        dtype=torch.float64)


def pgd(model: nn.Module, X: Tensor, y: Tensor, eps, *, steps: int, step_size, norm="inf",
        random_start: bool = False, restarts: int = 1, seed: int | None = None, loss: str = "ce",
        temperature: float = 1.0, box=BOX) -> Tensor:
    """Projected gradient ascent of the attack loss: each step x <- x + step_size * direction, then the
    projection of x - x0 onto the eps-ball, then the box (torchattacks.PGD / PGDL2 with random_start=False
    give the same iterates). `eps` and `step_size` may hold one value per example (curves over eps as one
    batch). With `restarts` > 1 (random starts, seeded) each example keeps the restart that fools the model,
    else the one of largest loss."""
    X, y = _check(X, y)
    p = check_norm(norm)
    steps = validate.positive_int("steps", steps)
    restarts = validate.positive_int("restarts", restarts)
    e = _eps(eps, X)
    if isinstance(step_size, (int, float)):
        a = validate.positive("step_size", step_size)
    else:  # one step per example (curves over eps as one batch)
        a = _eps(step_size, X)
    if restarts > 1 and not random_start:
        raise ValueError("restarts > 1 needs random_start=True (equal starts give equal iterates)")
    if random_start and seed is None:
        raise ValueError("seed must be given with random_start=True (same seed, same attack)")
    g = torch.Generator(device=X.device)
    if seed is not None:
        g.manual_seed(int(seed))
    best, best_loss, best_fooled = None, None, None
    with _eval(model):
        for _ in range(restarts):
            adv = X.clone()
            if random_start:
                adv = _clip(adv + _random_start(X, e, p, g), box)
            for _ in range(steps):
                adv.requires_grad_(True)
                (grad,) = torch.autograd.grad(attack_loss(model(adv), y, loss, temperature, "sum"), adv)
                adv = adv.detach() + a * _step(grad, p)
                adv = _clip(X + project(adv - X, e if e.ndim == 0 else e.reshape(-1), p), box)
            with torch.no_grad():
                logits = model(adv)
                per = attack_loss(logits, y, loss, temperature, reduction="none")
                fooled = logits.argmax(1) != y
            if best is None:
                best, best_loss, best_fooled = adv, per, fooled
            else:
                better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (per > best_loss))
                best = torch.where(_per_example(better, X), adv, best)
                best_loss, best_fooled = torch.where(better, per, best_loss), best_fooled | fooled
    return best.detach()


def _random_start(X: Tensor, e: Tensor, p: str, g: torch.Generator) -> Tensor:
    """A uniform point of the eps-ball (inf: the cube; 2 and 1: a random direction at a uniform radius
    fraction, as torchattacks' PGDL2 does for 2)."""
    if p == "inf":
        return (torch.rand(X.shape, generator=g, dtype=X.dtype, device=X.device) * 2 - 1) * e
    d = torch.randn(X.shape, generator=g, dtype=X.dtype, device=X.device)
    if p == "1":  # Laplace coordinates: their direction is uniform on the L1 sphere
        d = d.sign() * torch.empty_like(d).exponential_(generator=g)
    r = torch.rand(X.shape[0], generator=g, dtype=X.dtype, device=X.device)
    return d / _per_example(_norms(d, p), X) * _per_example(r, X) * e


def lp_descent(model: nn.Module, X: Tensor, y: Tensor, budget, *, norm="2", steps: int = 100, step_size=0.1,
               box=BOX, loss: str = "ce") -> tuple[Tensor, Tensor]:
    """The source's attack: r starts at budget * (a signed unit vector along the gradient), then gradient
    steps on r with r held on the sphere ||r||_p = budget (radial rescaling after each step) and x + r kept in
    the box; an image stops as soon as its prediction changes. Returns (adversarial X, success mask).

    The box can shorten r (clipping at 0 or 1 removes part of it), so ||r||_p <= budget at the end."""
    X, y = _check(X, y)
    p = check_norm(norm)
    steps = validate.positive_int("steps", steps)
    step_size = validate.positive("step_size", step_size)
    b = _eps(budget, X)
    with _eval(model):
        g = input_gradient(model, X, y, loss)
        r = _sphere(_step(g, p), b, p)
        adv = _clip(X + r, box)
        done = torch.zeros(len(X), dtype=torch.bool, device=X.device)
        for _ in range(steps):
            with torch.no_grad():
                done |= model(adv).argmax(1) != y
            if bool(done.all()):
                break
            adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(attack_loss(model(adv), y, loss, reduction="sum"), adv)
            r = _sphere((adv.detach() - X) + step_size * _step(grad, p), b, p)
            new = _clip(X + r, box)
            adv = torch.where(_per_example(done, X), adv.detach(), new)
        with torch.no_grad():
            done |= model(adv).argmax(1) != y
    return adv.detach(), done


def _sphere(r: Tensor, b: Tensor, p: str) -> Tensor:
    """r rescaled radially onto ||r||_p = b (a zero r stays zero)."""
    n = _per_example(_norms(r, p), r)
    return torch.where(n > 0, r * b / n.clamp_min(1e-30), r)


def min_budget(attack, X: Tensor, y: Tensor, hi: float, *, iters: int = 12) -> Tensor:
    """Per image, the smallest budget at which `attack(X, y, budget_per_example) -> success mask` succeeds,
    by bisection on [0, hi] to within hi / 2^iters (success assumed monotone in the budget); inf where it
    fails even at hi."""
    X, y = _check(X, y)
    hi = validate.positive("hi", hi)
    iters = validate.positive_int("iters", iters)
    lo_b = torch.zeros(len(X), dtype=torch.float64)
    hi_b = torch.full((len(X),), hi, dtype=torch.float64)
    ok_hi = attack(X, y, hi_b.to(X.dtype)).cpu()
    for _ in range(iters):
        mid = (lo_b + hi_b) / 2
        ok = attack(X, y, mid.to(X.dtype)).cpu()
        hi_b = torch.where(ok, mid, hi_b)
        lo_b = torch.where(ok, lo_b, mid)
    return torch.where(ok_hi, hi_b, torch.full_like(hi_b, math.inf))
