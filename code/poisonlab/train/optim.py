"""Optimisers on stacked parameters: K models' tensors (K, ...) updated at once, each with its own lr.

Each optimiser does for every model k what its torch.optim namesake does for that model alone
(`torch(parameters, lr)` builds that namesake, which the readable trainer uses):
SGD (constant step, optionally momentum, dampening, Nesterov, weight decay) and Adam.
The trainers call `start(params, lr)` once, then `step(params, grads)` per minibatch, in place under
no_grad. `lr` is a (K,) tensor after `start`: a per-epoch callback may change it (a schedule).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import validate

__all__ = ["SGD", "Adam", "Optimizer"]


class Optimizer:
    """The interface: start(params, lr) once, then step(params, grads) per minibatch (in place)."""

    lr: Tensor | None = None

    def start(self, params: dict[str, Tensor], lr: Tensor) -> None:
        self.lr = lr
        self._lrs = None

    def _lr_like(self, p: Tensor) -> Tensor:
        return self.lr.to(p.device).reshape(-1, *([1] * (p.dim() - 1)))

    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def torch(self, parameters, lr: float) -> torch.optim.Optimizer:
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * g; with momentum: buf = momentum buf + (1 - dampening) g (buf = g at the first step)."""

    def __init__(self, momentum: float = 0.0, *, dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        self.momentum = validate.non_negative("momentum", momentum)
        self.dampening = validate.non_negative("dampening", dampening)
        self.weight_decay = validate.non_negative("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening 0")

    @property
    def plain(self) -> bool:
        """Constant-step SGD, no momentum or weight decay (the fast linear path's update)."""
        return self.momentum == 0 and self.weight_decay == 0

    def start(self, params, lr):
        super().start(params, lr)
        self.buffers = {}

    def step(self, params, grads):
        for name, p in params.items():
            g = grads[name]
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            if self.momentum:
                buf = self.buffers.get(name)
                if buf is None:
                    buf = self.buffers[name] = g.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(g, alpha=1 - self.dampening)
                g = g.add(buf, alpha=self.momentum) if self.nesterov else buf
            p.sub_(self._lr_like(p) * g)

    def torch(self, parameters, lr):
        return torch.optim.SGD(parameters, lr=lr, momentum=self.momentum, dampening=self.dampening,
                               nesterov=self.nesterov, weight_decay=self.weight_decay)

    def __repr__(self):
        return (f"SGD(momentum={self.momentum}, dampening={self.dampening}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay})")


class Adam(Optimizer):
    """Adam (Kingma and Ba), as torch.optim.Adam: bias-corrected first and second moments."""

    def __init__(self, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, *, weight_decay: float = 0.0):
        b1, b2 = betas
        for name, b in (("betas[0]", b1), ("betas[1]", b2)):
            if not isinstance(b, (int, float)) or not 0 <= b < 1:
                raise ValueError(f"{name} must be in [0, 1), got {b!r}")
        self.betas = (float(b1), float(b2))
        self.eps = validate.positive("eps", eps)
        self.weight_decay = validate.non_negative("weight_decay", weight_decay)

    def start(self, params, lr):
        super().start(params, lr)
        self.t = 0
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads):
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1 - b1 ** self.t, math.sqrt(1 - b2 ** self.t)
        for name, p in params.items():
            g = grads[name]
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            m, v = self.m[name], self.v[name]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            # the same operations as p -= (lr / c1) * m / (sqrt(v) / c2 + eps), with two temporaries instead of
            # four: on millions of weights per model the allocations cost more than the arithmetic
            denom = v.sqrt().div_(c2).add_(self.eps)
            p.sub_(torch.mul(self._lr_like(p) / c1, m).div_(denom))

    def torch(self, parameters, lr):
        return torch.optim.Adam(parameters, lr=lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)

    def __repr__(self):
        return f"Adam(betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay})"


def resolve(optimizer) -> Optimizer:
    """None -> SGD() (today's constant step); an Optimizer as is; anything else is a ValueError."""
    if optimizer is None:
        return SGD()
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer must be a poisonlab.train optimiser (SGD, Adam), got {optimizer!r}")
    return optimizer
