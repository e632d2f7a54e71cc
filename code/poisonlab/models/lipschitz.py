"""Lipschitz bounds of a network: the spectral norm of each linear map and their product.

For f = W_L o psi o ... o psi o W_1 with 1-Lipschitz activations psi (ReLU, max-pooling over disjoint
windows, dropout at test time), ||f(x + delta) - f(x)||_2 <= ||delta||_2 prod_i ||W_i||_2: the product of
the layers' spectral norms bounds the network's L2 sensitivity. A convolution is a linear map of its input
image, so its norm depends on the input's size: it is found by power iteration on the operator and its
adjoint (the input shapes are read from one forward pass). Global average pooling over h x w positions has
norm 1/sqrt(h w), which the bound takes into account.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import validate

__all__ = ["spectral_norm", "layer_norms", "lipschitz_bound", "sensitivity"]


def spectral_norm(layer: nn.Module, in_shape=None, *, iters: int = 200, seed: int = 0) -> float:
    """The operator 2-norm of a Linear layer's weight, or of a Conv2d as a map of images of `in_shape` (C, H, W):
    the largest singular value, by power iteration on A^T A (the bias does not count)."""
    iters = validate.positive_int("iters", iters)
    if isinstance(layer, nn.Linear):
        return float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2))
    if not isinstance(layer, nn.Conv2d):
        raise ValueError(f"layer must be nn.Linear or nn.Conv2d, got {type(layer).__name__}")
    if in_shape is None or len(tuple(in_shape)) != 3:
        raise ValueError(f"in_shape must be the (C, H, W) of the convolution's input, got {in_shape!r}")
    W = layer.weight.detach().double()

    def A(v):
        return F.conv2d(v, W, None, layer.stride, layer.padding, layer.dilation, layer.groups)

    g = torch.Generator().manual_seed(seed)
    v = torch.randn(1, *tuple(in_shape), generator=g, dtype=torch.float64)
    v = v / v.norm()
    sigma = 0.0
    for _ in range(iters):
        u, adjoint = torch.func.vjp(A, v)
        (w,) = adjoint(u)  # A^T A v
        norm = float(w.norm())
        if norm == 0.0:
            return 0.0
        v = w / norm
        sigma = math.sqrt(norm)  # ||A^T A v|| -> sigma^2 for the top singular vector
    return sigma


def layer_norms(model: nn.Module, in_shape, *, iters: int = 200) -> list[tuple[str, float]]:
    """(name, norm) of every linear map of `model` in the order the forward pass meets them: Linear and
    Conv2d layers (their spectral norms at the shapes they see) and global average pooling (1/sqrt(h w)).
    Any other layer must be 1-Lipschitz (ReLU, max-pooling, flattening, dropout in eval mode)."""
    shapes: dict = {}

    def record(name):
        def hook(module, inputs, output):  # returns None: the output is left as it is
            shapes.setdefault(name, tuple(inputs[0].shape[1:]))
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
             if isinstance(m, (nn.Linear, nn.Conv2d))]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *tuple(in_shape)))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    modules = dict(model.named_modules())
    out = []
    for name, shape in shapes.items():
        layer = modules[name]
        out.append((name, spectral_norm(layer, shape if isinstance(layer, nn.Conv2d) else None, iters=iters)))
    pool = _global_pool_norm(model, in_shape)
    if pool is not None:
        out.append(("global average pool", pool))
    return out


def _global_pool_norm(model: nn.Module, in_shape):
    """1/sqrt(h w) if the model ends its convolutions with a global average over h x w (models.SmallCNN)."""
    from .zoo import SmallCNN

    if not isinstance(model, SmallCNN):
        return None
    _, H, W = model.in_shape
    h, w = H // 2, W // 2  # one 2 x 2 max-pool before the second convolution (padding keeps the size)
    return 1.0 / math.sqrt(h * w)


def lipschitz_bound(model: nn.Module, in_shape, *, iters: int = 200) -> float:
    """prod_i ||W_i||_2 over layer_norms: an upper bound on ||f(x') - f(x)||_2 / ||x' - x||_2."""
    return float(math.prod(norm for _, norm in layer_norms(model, in_shape, iters=iters)))


def sensitivity(model: nn.Module, X: Tensor, X_adv: Tensor) -> Tensor:
    """||f(x') - f(x)||_2 / ||x' - x||_2 per example (eval mode): what an attack actually achieved, to read
    against lipschitz_bound."""
    if X.shape != X_adv.shape:
        raise ValueError(f"X_adv must have the shape of X {tuple(X.shape)}, got {tuple(X_adv.shape)}")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            num = (model(X_adv) - model(X)).reshape(len(X), -1).norm(dim=1)
    finally:
        model.train(was)
    den = (X_adv - X).reshape(len(X), -1).norm(dim=1)
    if bool((den == 0).any()):
        raise ValueError("X_adv must differ from X in every example (a zero perturbation has no ratio)")
    return num / den
