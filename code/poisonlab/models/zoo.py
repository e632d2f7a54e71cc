"""Models: linear (regression, logistic, softmax), MLPs and a small CNN, initialised from a seed.

The modules are built on the meta device and then initialised from torch.Generator(seed) only,
so building a model never consumes the global RNG and the same seed gives identical parameters.
The initial distribution is PyTorch's default: weights kaiming-uniform with a = sqrt(5) (i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in))), biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); parameters are
drawn layer by layer, weight before bias.

Logistic regression is kind "linear" with out_dim 1 trained with the "bce" loss (the sigmoid lives
in BCEWithLogits); softmax regression is "linear" with out_dim K and the "ce" loss.
Parameter names (state_dict keys): "linear": weight, bias; "mlp": a Sequential of Linear/ReLU
(0.weight, 0.bias, 2.weight, ...; with in_shape, image inputs are flattened inside forward,
the keys stay the same); "cnn": conv1.*, conv2.*, head.*.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .. import validate
from ..data import generator

__all__ = ["make_model", "MODELS", "MLP", "SmallCNN", "FlatLinear", "init_parameters", "count_parameters"]

MODELS = ("linear", "mlp", "cnn")
CNN_CHANNELS = (16, 32)


class FlatLinear(nn.Linear):
    """nn.Linear that flattens image inputs (..., *in_shape) to (..., prod(in_shape)) first."""

    def __init__(self, in_shape, out_features, **kw):
        super().__init__(math.prod(in_shape), out_features, **kw)
        self.in_shape = tuple(in_shape)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(_flatten(x, self.in_shape))


class MLP(nn.Sequential):
    """Linear -> ReLU per hidden width, then Linear; image inputs are flattened first when in_shape is set."""

    def __init__(self, in_dim: int, hidden, out_dim: int, in_shape=None, **kw):
        widths = [in_dim, *hidden]
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b, **kw), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], out_dim, **kw))
        super().__init__(*layers)
        self.in_shape = None if in_shape is None else tuple(in_shape)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_shape is not None:
            x = _flatten(x, self.in_shape)
        return super().forward(x)


class SmallCNN(nn.Module):
    """conv 3x3 -> ReLU -> max-pool 2 -> conv 3x3 -> ReLU -> global average pool -> Linear."""

    def __init__(self, in_shape, out_dim: int, channels=CNN_CHANNELS, **kw):
        super().__init__()
        C = in_shape[0]
        c1, c2 = channels
        self.in_shape = tuple(in_shape)
        self.conv1 = nn.Conv2d(C, c1, 3, padding=1, **kw)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, **kw)
        self.head = nn.Linear(c2, out_dim, **kw)

    def forward(self, x: Tensor) -> Tensor:
        C, H, W = self.in_shape
        if x.dim() >= 3 and tuple(x.shape[-3:]) == self.in_shape:
            lead = x.shape[:-3]
        elif C == 1 and x.dim() >= 2 and tuple(x.shape[-2:]) == (H, W):
            lead = x.shape[:-2]
        elif x.shape[-1] == C * H * W:
            lead = x.shape[:-1]
        else:
            raise ValueError(f"x must end with the image shape {self.in_shape} or be flat (..., {C * H * W}); "
                             f"got {tuple(x.shape)}")
        x = x.reshape(-1, C, H, W)  # accepts flat rows as well as images
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.relu(self.conv2(x)).mean(dim=(-2, -1))
        return self.head(x).reshape(*lead, -1)


def _flatten(x: Tensor, in_shape) -> Tensor:
    k = len(in_shape)
    if k > 1 and x.dim() >= k and tuple(x.shape[-k:]) == tuple(in_shape):
        return x.flatten(start_dim=x.dim() - k)
    return x


def init_parameters(model: nn.Module, seed) -> nn.Module:
    """(Re)initialise every Linear/Conv layer of `model` in place from torch.Generator(seed)."""
    g = generator(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=g)
                if module.bias is not None:
                    fan_in = module.weight[0].numel()
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(module.bias, -bound, bound, generator=g)
    return model


def _shape(in_shape, in_dim: int) -> tuple:
    try:
        shape = tuple(int(s) for s in in_shape)
    except (TypeError, ValueError):
        raise ValueError(f"in_shape must be a tuple of positive whole numbers (C, H, W), got {in_shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"in_shape must be a tuple of positive whole numbers (C, H, W), got {in_shape!r}")
    if math.prod(shape) != in_dim:
        raise ValueError(f"in_shape {shape} has {math.prod(shape)} entries but in_dim = {in_dim}")
    return shape


def make_model(kind, in_dim, out_dim=1, hidden=(), *, seed, in_shape=None) -> nn.Module:
    """A model of `kind` ("linear" | "mlp" | "cnn") mapping in_dim features to out_dim outputs (logits).

    "linear": nn.Linear (hidden must be empty). "mlp": Linear+ReLU per hidden width, then Linear.
    "cnn": SmallCNN; needs in_shape (C, H, W) (or (H, W) for grey images) with C*H*W = in_dim;
    hidden, if given, is its two channel counts (default (16, 32)).
    in_shape for "linear"/"mlp": image inputs of that shape are flattened inside forward.
    """
    kind = validate.choice("kind", kind, MODELS)
    in_dim = validate.positive_int("in_dim", in_dim)
    out_dim = validate.positive_int("out_dim", out_dim)
    if hidden is None:
        hidden = ()
    if isinstance(hidden, (int, np.integer)):
        hidden = (hidden,)
    hidden = tuple(validate.positive_int("hidden", h) for h in hidden)
    shape = None if in_shape is None else _shape(in_shape, in_dim)
    generator(seed)  # validate the seed before building anything
    with torch.device("meta"):
        if kind == "linear":
            if hidden:
                raise ValueError(f"hidden must be empty for kind='linear', got {hidden}; use kind='mlp'")
            model = nn.Linear(in_dim, out_dim) if shape is None else FlatLinear(shape, out_dim)
        elif kind == "mlp":
            model = MLP(in_dim, hidden, out_dim, in_shape=shape)
        else:
            if shape is None:
                raise ValueError("in_shape must be given for kind='cnn' (C, H, W)")
            if len(shape) == 2:
                shape = (1, *shape)
            if len(shape) != 3 or shape[1] < 2 or shape[2] < 2:
                raise ValueError(f"in_shape must be (C, H, W) with H, W >= 2 for kind='cnn', got {shape}")
            channels = hidden or CNN_CHANNELS
            if len(channels) != 2:
                raise ValueError(f"hidden must be two channel counts for kind='cnn', got {hidden}")
            model = SmallCNN(shape, out_dim, channels)
    model = model.to_empty(device="cpu")
    return init_parameters(model, seed)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
