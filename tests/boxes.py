"""Boxes around MNIST-like inputs for the tests of the certified bounds (models.bounds, models.crown): a small
fully connected spec, images clipped on both sides, points sampled in a box, many forward passes at once."""
from __future__ import annotations

import torch

from poisonlab.models.spec import Flatten, Linear, ReLU, Spec


def mlp() -> Spec:
    return Spec([Flatten(), Linear(784, 50, name="fc1"), ReLU(), Linear(50, 50, name="fc2"), ReLU(),
                 Linear(50, 10, name="fc3")])


def images(n: int, seed: int) -> torch.Tensor:
    """MNIST-like rows in [0, 1]: many pixels exactly 0 or 1, so that the ball is clipped on both sides."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    x = torch.where(x < 0.5, torch.zeros_like(x), x)
    return torch.where(x > 0.9, torch.ones_like(x), x)


def samples(lo: torch.Tensor, hi: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """(n, *lo.shape) points of the box: half random corners (where ReLU networks take their extremes), half
    uniform."""
    g = torch.Generator().manual_seed(seed)
    corner = torch.where(torch.rand(n // 2, *lo.shape, generator=g) < 0.5, lo, hi)
    inside = lo + (hi - lo) * torch.rand(n - n // 2, *lo.shape, generator=g)
    return torch.cat([corner, inside])


def forward_many(spec: Spec, params: dict, pts: torch.Tensor) -> torch.Tensor:
    """Logits (S, B, classes) of points (S, B, ...)."""
    with torch.no_grad():
        return spec.forward(params, pts.reshape(-1, *pts.shape[2:])).reshape(*pts.shape[:2], -1)


def others(y: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.ones(len(y), classes, dtype=torch.bool).scatter_(1, y.unsqueeze(1), False)
