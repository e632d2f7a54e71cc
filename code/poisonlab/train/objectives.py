"""Objectives: what a trainer minimises, as per-example losses (K, B) of K models on a minibatch.

An objective is any callable `objective(forward, params, buffers, Xb, Yb) -> (K, B)` where
`forward(params, buffers, X)` gives the K models' outputs (K, B, out) on inputs X (K, B, ...) and
Xb, Yb are the minibatch (K, B, ...), (K, B, m) for regression and bce, (K, B) class indices for ce.
The trainers minimise the mean over B (or aggregate per-example gradients, see aggregate.py).
ERM with the usual losses is the default. FGSM is a small adversarial objective: the loss at inputs
moved by eps times the sign of the input gradient (eps may change between epochs: a schedule); PGD
(Madry et al.'s adversarial training) the loss at the end of projected steps inside the L_inf ball;
Tempered the base objective on the outputs divided by a temperature T (training at temperature).
Objectives used with a robust aggregator are differentiated per example by torch.func (vmap, grad):
they must then be written in torch.func-compatible operations (no torch.autograd.grad inside).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import validate
from . import losses

__all__ = ["ERM", "FGSM", "PGD", "Tempered", "Penalised", "IBP", "Ramp"]


class ERM:
    """Empirical risk: the loss of each example, model k with its own loss name and Huber delta.

    loss: a name of losses.LOSSES or K of them; delta: a number or (K,) values (for "huber").
    """

    def __init__(self, loss="mse", delta=1.0):
        names = [loss] if isinstance(loss, str) else list(loss)
        for name in set(names):
            validate.choice("loss", name, losses.LOSSES)
        if "ce" in names and set(names) != {"ce"}:
            raise ValueError("loss must not mix 'ce' with other losses in one batched run")
        self.names = names
        self.delta = delta if isinstance(delta, Tensor) else torch.as_tensor(delta, dtype=torch.float32)
        self._groups = None

    def loss(self, pred: Tensor, Yb: Tensor) -> Tensor:
        """Per-example losses (K, B) of predictions (K, B, out) or (K, B) against targets."""
        if pred.dim() == 2:
            pred = pred.unsqueeze(-1)
        if self.names[0] == "ce":
            return losses._per_example("ce", pred, Yb)
        if self._groups is None or self._groups[1] != pred.device:
            names = self.names * pred.shape[0] if len(self.names) == 1 else self.names
            self._groups = (_groups(names, pred), pred.device)
        delta = self.delta.to(pred.device)
        if delta.dim() and delta.numel() > 1 and bool((delta != delta[0]).any()):
            delta = delta.reshape(-1, 1, 1).to(pred.dtype)
        else:
            delta = float(delta.reshape(-1)[0])
        return _loss_only(self._groups[0], pred, Yb, delta)

    def __call__(self, forward, params, buffers, Xb, Yb):
        return self.loss(forward(params, buffers, Xb), Yb)

    def __repr__(self):
        return f"ERM(loss={self.names if len(self.names) > 1 else self.names[0]!r})"


class FGSM:
    """Adversarial training's simplest inner step: the loss at Xb + eps sign(grad_X loss) (per example).

    The perturbation is a constant for the outer gradient (no second-order terms). `eps` is an attribute:
    a per-epoch callback may set it (an epsilon schedule). `base` is the loss objective (default ERM()).
    """

    def __init__(self, eps: float, base=None):
        self.eps = validate.non_negative("eps", eps)
        self.base = ERM() if base is None else base

    def __call__(self, forward, params, buffers, Xb, Yb):
        X = Xb.detach().requires_grad_(True)
        inner = self.base(forward, params, buffers, X, Yb).sum()
        (g,) = torch.autograd.grad(inner, X)
        return self.base(forward, params, buffers, Xb + self.eps * g.sign(), Yb)

    def __repr__(self):
        return f"FGSM(eps={self.eps}, base={self.base!r})"


class PGD:
    """Adversarial training (Madry et al. 2018): the loss at the point that `steps` projected sign-gradient
    steps of size `step_size` reach inside the L_inf ball of radius eps around each input, clipped to `box`
    (the order of attacks.evasion.pgd: step, project, clip). The start is the input itself (no random start:
    the same seed, the same models). The point is a constant for the outer gradient, as in FGSM.
    """

    def __init__(self, eps: float, steps: int, step_size: float | None = None, base=None, box=(0.0, 1.0)):
        self.eps = validate.non_negative("eps", eps)
        self.steps = validate.positive_int("steps", steps)
        self.step_size = (2.5 * self.eps / self.steps if step_size is None  # Madry et al.'s choice
                          else validate.positive("step_size", step_size))
        self.base = ERM() if base is None else base
        self.box = box

    def __call__(self, forward, params, buffers, Xb, Yb):
        X0 = Xb.detach()
        X = X0
        for _ in range(self.steps):
            X = X.detach().requires_grad_(True)
            inner = self.base(forward, params, buffers, X, Yb).sum()  # models and examples are independent
            (g,) = torch.autograd.grad(inner, X)
            X = X.detach() + self.step_size * g.sign()
            X = torch.minimum(torch.maximum(X, X0 - self.eps), X0 + self.eps)
            if self.box is not None:
                X = X.clamp(*self.box)
        return self.base(forward, params, buffers, X.detach(), Yb)

    def __repr__(self):
        return f"PGD(eps={self.eps}, steps={self.steps}, step_size={self.step_size}, base={self.base!r})"


class Tempered:
    """The base objective on the models' outputs divided by T: training at temperature T (T > 1 softens the
    softmax during training; at test time the logits are used as they are, i.e. at T = 1)."""

    def __init__(self, T: float, base=None):
        self.T = validate.positive("T", T)
        self.base = ERM("ce") if base is None else base

    def __call__(self, forward, params, buffers, Xb, Yb):
        return self.base(lambda p, b, x: forward(p, b, x) / self.T, params, buffers, Xb, Yb)

    def __repr__(self):
        return f"Tempered(T={self.T}, base={self.base!r})"


class Penalised:
    """A base objective plus weight * penalty(params): penalty maps one model's parameters (a dict) to a scalar,
    and each example's loss carries it, so that the minibatch mean is the base mean plus weight * penalty
    (Langenberg et al.'s nuclear-norm regulariser: models.compress.nuclear_norm)."""

    def __init__(self, weight: float, penalty, base=None):
        self.weight = validate.non_negative("weight", weight)
        if not callable(penalty):
            raise ValueError(f"penalty must be callable (params) -> scalar, got {penalty!r}")
        self.penalty, self.base = penalty, (ERM() if base is None else base)
        self._batched = torch.func.vmap(penalty)

    def __call__(self, forward, params, buffers, Xb, Yb):
        per = self.base(forward, params, buffers, Xb, Yb)
        return per + self.weight * self._batched(params).unsqueeze(1)

    def __repr__(self):
        return f"Penalised(weight={self.weight}, penalty={getattr(self.penalty, '__name__', self.penalty)!r}, base={self.base!r})"


class IBP:
    """Certified training by interval bound propagation (Gowal et al. 2018): kappa times the cross-entropy of the
    logits plus (1 - kappa) times the robust cross-entropy, the cross-entropy of the worst logits over the L_inf
    ball of radius eps around each input, clipped to `box` (models.bounds.worst_logits: elided, Gowal's margin
    bound; naive, the lower bound of z_y and the upper bounds of the others, as the source's tutorial).

    The bound is an upper bound of the loss any perturbation in the ball can reach, so that minimising it
    minimises a certificate. `eps` and `kappa` are attributes: a step hook (Ramp) may change them. At eps = 0 the
    worst logits are the logits (naive) or the logits minus z_y (elided): either way the robust cross-entropy is
    the cross-entropy, so a warm-up at eps = 0 is ordinary training.
    """

    def __init__(self, spec, eps: float, kappa: float = 0.0, elide: bool = True, box=(0.0, 1.0)):
        from ..models import bounds

        self.spec, self.eps, self.elide, self.box = spec, validate.non_negative("eps", eps), bool(elide), box
        kappa = validate.non_negative("kappa", kappa)
        if kappa > 1:
            raise ValueError(f"kappa must be in [0, 1] (the weight of the clean cross-entropy), got {kappa!r}")
        self.kappa = kappa
        self._worst = torch.func.vmap(lambda p, x, y, eps: bounds.worst_logits(spec, p, x, y, eps, self.elide, box),
                                      in_dims=(0, 0, 0, None))

    def __call__(self, forward, params, buffers, Xb, Yb):
        robust = losses._per_example("ce", self._worst(params, Xb, Yb, self.eps), Yb)
        if self.kappa == 0:
            return robust
        return self.kappa * losses._per_example("ce", forward(params, buffers, Xb), Yb) + (1 - self.kappa) * robust

    def __repr__(self):
        return f"IBP(eps={self.eps}, kappa={self.kappa}, elide={self.elide})"


class Ramp:
    """A step hook for train.train_batched that sets `target.eps` before each optimiser step t (counted from 0):
    0 for the first `warmup` steps, then rising linearly to `eps` over `ramp` steps, then `eps`
    (eps_t = eps min(1, max(0, (t - warmup + 1) / ramp))): Gowal et al.'s schedule, the source's warm-up and ramp.
    """

    def __init__(self, target, eps: float, warmup: int, ramp: int):
        self.target, self.eps = target, validate.non_negative("eps", eps)
        self.warmup = validate.positive_int("warmup", warmup, minimum=0)
        self.ramp = validate.positive_int("ramp", ramp, minimum=0)
        self(0, None)

    def at(self, t: int) -> float:
        """eps of optimiser step t (0-based)."""
        if t < self.warmup:
            return 0.0
        if self.ramp == 0:
            return self.eps
        return self.eps * min(1.0, (t - self.warmup + 1) / self.ramp)

    def __call__(self, step: int, params) -> None:
        self.target.eps = self.at(step)  # train_batched calls it after `step` steps: the next step's value


def _groups(names, like: Tensor):
    """(name, mask (K, 1, 1)) for each loss used; a single loss needs no mask."""
    unique = list(dict.fromkeys(names))
    if len(unique) == 1:
        return [(unique[0], None)]
    return [(u, torch.tensor([x == u for x in names], device=like.device).reshape(-1, 1, 1)) for u in unique]


def _loss_and_grad(groups, pred, target, delta):
    """Per-example losses (K, B) and d loss / d pred (K, B, m) with each model's own loss."""
    if len(groups) == 1:
        name = groups[0][0]
        return losses._per_example(name, pred, target, delta), losses._grad_pred(name, pred, target, delta)
    per, grad = torch.zeros(pred.shape[:2], dtype=pred.dtype, device=pred.device), torch.zeros_like(pred)
    for name, mask in groups:
        per = torch.where(mask[..., 0], losses._per_example(name, pred, target, delta), per)
        grad = torch.where(mask, losses._grad_pred(name, pred, target, delta), grad)
    return per, grad




def _loss_only(groups, pred, target, delta):
    if len(groups) == 1:
        return losses._per_example(groups[0][0], pred, target, delta)
    per = torch.zeros(pred.shape[:2], dtype=pred.dtype, device=pred.device)
    for name, mask in groups:
        per = torch.where(mask[..., 0], losses._per_example(name, pred, target, delta), per)
    return per


def _per_example_grad_fn(forward, names, delta):
    """vmap over models of vmap over examples of grad: per-example gradients (K, B, *param shape)."""
    codes = torch.tensor([losses.LOSSES.index(u) for u in names], device=delta.device)

    def one(p, b, x, t, code, dlt):
        pred = forward(p, b, x.unsqueeze(0))
        if pred.dim() == 1:
            pred = pred.unsqueeze(-1)
        if names[0] == "ce":
            return losses._per_example("ce", pred, t.unsqueeze(0)).sum()
        value = torch.zeros((), device=x.device)
        for u in dict.fromkeys(names):
            # Data-dependent control flow is not allowed under vmap: select each loss arithmetically.
            value = value + (code == losses.LOSSES.index(u)) * losses._per_example(u, pred, t.unsqueeze(0), dlt).sum()
        return value

    per_model = torch.func.vmap(torch.func.grad(one), in_dims=(None, None, 0, 0, None, None))
    over_models = torch.func.vmap(per_model, in_dims=(0, 0, 0, 0, 0, 0))
    return lambda p, b, Xb, Yb: over_models(p, b, Xb, Yb, codes, delta)
