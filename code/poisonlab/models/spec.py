"""Model specs: a stack of layers, functional over (stacked) parameters, for the batched trainer.

A Spec lists layers (Linear, Conv2d, ReLU, Flatten, Dropout, MaxPool2d, GlobalAvgPool, Unflatten);
`forward(params, x)` applies them to one model's parameters (a dict name -> tensor), so that
`torch.func.vmap` runs K models at once. Parameter names are "<layer name>.weight" and ".bias"
(layer names default to the layer's position, as nn.Sequential names them; a layer named "" gives
plain "weight", "bias"). Initialisation is PyTorch's default drawn from torch.Generator(seed) layer by
layer, weight before bias: exactly models.init_parameters, so that Spec.linear/mlp/cnn start where
models.make_model(kind, ..., seed) does, with the same state-dict keys.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["Spec", "Linear", "Conv2d", "ReLU", "Flatten", "Dropout", "MaxPool2d", "GlobalAvgPool", "Unflatten"]


class Layer:
    name: str | None = None
    shapes: dict = {}

    def __call__(self, params, x, training):
        raise NotImplementedError


class Linear(Layer):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, name: str | None = None):
        self.name, self.in_features, self.out_features = name, int(in_features), int(out_features)
        self.shapes = {"weight": (self.out_features, self.in_features)} | ({"bias": (self.out_features,)} if bias else {})

    def __call__(self, params, x, training):
        return F.linear(x, params["weight"], params.get("bias"))

    def torch(self):
        return nn.Linear(self.in_features, self.out_features, bias="bias" in self.shapes)


class Conv2d(Layer):
    """A convolution; kernel_size k (square) or (kh, kw): Tai et al.'s low-rank layers are k x 1 and 1 x k."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride: int = 1, padding: int = 0,
                 bias: bool = True, name: str | None = None):
        self.name, self.stride, self.padding = name, stride, padding
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.args = (int(in_channels), int(out_channels), (int(kh), int(kw)))
        self.shapes = {"weight": (self.args[1], self.args[0], int(kh), int(kw))} | (
            {"bias": (self.args[1],)} if bias else {})

    def __call__(self, params, x, training):
        return F.conv2d(x, params["weight"], params.get("bias"), self.stride, self.padding)

    def torch(self):
        return nn.Conv2d(*self.args, stride=self.stride, padding=self.padding, bias="bias" in self.shapes)


class ReLU(Layer):
    def __call__(self, params, x, training):
        return torch.relu(x)


class Flatten(Layer):
    """(B, ...) -> (B, prod(...)): image rows to flat rows."""

    def __call__(self, params, x, training):
        return x.flatten(start_dim=1)


class Unflatten(Layer):
    """Rows (flat or images) -> (B, *shape): flat rows to images for convolutions."""

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)

    def __call__(self, params, x, training):
        return x.reshape(-1, *self.shape)


class Dropout(Layer):
    """Zeroes each activation with probability p while training (independently per model); identity otherwise."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p < 1:
            raise ValueError(f"p must be in [0, 1), got {p!r}")
        self.p = float(p)

    def __call__(self, params, x, training):
        return F.dropout(x, self.p, training) if training and self.p else x


class MaxPool2d(Layer):
    def __init__(self, kernel_size: int):
        self.kernel_size = int(kernel_size)

    def __call__(self, params, x, training):
        return torch.max_pool2d(x, self.kernel_size)


class GlobalAvgPool(Layer):
    """(B, C, H, W) -> (B, C): the mean over the image."""

    def __call__(self, params, x, training):
        return x.mean(dim=(-2, -1))


class Spec:
    """A stack of layers, functional over one model's parameters (see the module's docstring)."""

    def __init__(self, layers, *, name: str = "spec"):
        self.layers = list(layers)
        if not self.layers or not all(isinstance(layer, Layer) for layer in self.layers):
            raise ValueError("model must be a Spec of poisonlab.train.spec layers (Linear, Conv2d, ReLU, ...)")
        self.kind = name
        self.prefixes = []
        for i, layer in enumerate(self.layers):
            prefix = str(i) if layer.name is None else layer.name
            self.prefixes.append(f"{prefix}." if prefix else "")
        keys = [p + k for p, layer in zip(self.prefixes, self.layers) for k in layer.shapes]
        if len(set(keys)) != len(keys):
            raise ValueError(f"model's layers must have distinct names, got parameters {keys}")

    def shapes(self) -> dict[str, tuple]:
        """name -> shape of one model's parameters, in initialisation order."""
        return {p + k: s for p, layer in zip(self.prefixes, self.layers) for k, s in layer.shapes.items()}

    def forward(self, params: dict, x: Tensor, training: bool = False) -> Tensor:
        for prefix, layer in zip(self.prefixes, self.layers):
            x = layer({k: params[prefix + k] for k in layer.shapes}, x, training)
        return x

    @property
    def random(self) -> bool:
        """Whether training draws random numbers (dropout): vmap must then draw per model."""
        return any(isinstance(layer, Dropout) and layer.p for layer in self.layers)

    def stacked_init(self, seeds) -> dict[str, Tensor]:
        """(K, ...) parameters: init(seed) for each seed (each distinct seed drawn once)."""
        unique = {s: self.init(s) for s in dict.fromkeys(seeds)}
        return {k: torch.stack([unique[s][k] for s in seeds]) for k in self.shapes()}

    def init(self, seed) -> dict[str, Tensor]:
        """One model's parameters, drawn as models.init_parameters draws them (kaiming-uniform a = sqrt 5)."""
        from ..data import generator

        g = generator(seed)
        out = {}
        with torch.no_grad():
            for prefix, layer in zip(self.prefixes, self.layers):
                if "weight" not in layer.shapes:
                    continue
                w = torch.empty(layer.shapes["weight"])
                nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
                out[prefix + "weight"] = w
                if "bias" in layer.shapes:
                    fan_in = w[0].numel()
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    out[prefix + "bias"] = nn.init.uniform_(torch.empty(layer.shapes["bias"]), -bound, bound,
                                                            generator=g)
        return out

    def sequential(self, params: dict | None = None) -> nn.Sequential:
        """One model as an nn.Sequential of torch layers (nn.Linear, nn.Conv2d, ...; the parameter-free layers
        wrapped), loaded with `params` if given: for code that looks for torch layer types (the Lipschitz
        bound's layer norms, reference libraries). A layer named "" is the child "layer"."""
        values = self.init(0) if params is None else params
        children = {}
        for i, (prefix, layer) in enumerate(zip(self.prefixes, self.layers)):
            name = prefix[:-1] or ("layer" if layer.shapes else str(i))
            if layer.shapes:
                child = layer.torch()
                with torch.no_grad():
                    for k in layer.shapes:
                        getattr(child, k).copy_(values[prefix + k])
            else:
                child = _Call(layer)
            children[name] = child
        return nn.Sequential(OrderedDict(children))

    def module(self, params: dict | None = None) -> nn.Module:
        """One model as an nn.Module (state-dict keys as here), loaded with `params` if given."""
        return SpecModule(self, params)

    def __repr__(self):
        return f"Spec({[type(layer).__name__ for layer in self.layers]})"

    # Today's builders (models.make_model) expressed as specs.

    @classmethod
    def linear(cls, in_dim: int, out_dim: int, in_shape=None) -> Spec:
        flat = [Flatten()] if in_shape is not None and len(in_shape) > 1 else []
        return cls([*flat, Linear(in_dim, out_dim, name="")], name="linear")

    @classmethod
    def mlp(cls, in_dim: int, hidden, out_dim: int, in_shape=None) -> Spec:
        widths = [in_dim, *hidden]
        layers = [Flatten()] if in_shape is not None and len(in_shape) > 1 else []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [Linear(a, b, name=str(2 * i)), ReLU()]
        layers.append(Linear(widths[-1], out_dim, name=str(2 * len(hidden))))
        return cls(layers, name="mlp")

    @classmethod
    def cnn(cls, in_shape, out_dim: int, channels=(16, 32)) -> Spec:
        C = in_shape[0]
        c1, c2 = channels
        return cls([Unflatten(in_shape), Conv2d(C, c1, 3, padding=1, name="conv1"), ReLU(), MaxPool2d(2),
                    Conv2d(c1, c2, 3, padding=1, name="conv2"), ReLU(), GlobalAvgPool(),
                    Linear(c2, out_dim, name="head")], name="cnn")

    @classmethod
    def of(cls, kind: str, in_dim: int, out_dim: int, hidden=(), in_shape=None) -> Spec:
        """The spec of models.make_model(kind, in_dim, out_dim, hidden, in_shape=in_shape)."""
        if kind == "linear":
            return cls.linear(in_dim, out_dim, in_shape)
        if kind == "mlp":
            return cls.mlp(in_dim, hidden, out_dim, in_shape)
        shape = tuple(in_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        return cls.cnn(shape, out_dim, tuple(hidden) or (16, 32))


class _Call(nn.Module):
    """A parameter-free spec layer (ReLU, pooling, reshaping, dropout) as an nn.Module."""

    def __init__(self, layer: Layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer({}, x, self.training)

    def extra_repr(self):
        return type(self.layer).__name__


class SpecModule(nn.Module):
    """A Spec as an nn.Module: parameters registered under the spec's names, forward = spec.forward."""

    def __init__(self, spec: Spec, params: dict | None = None):
        super().__init__()
        self.spec = spec
        values = spec.init(0) if params is None else params
        for key in spec.shapes():
            owner, _, leaf = key.rpartition(".")
            holder = self
            if owner:
                if owner not in self._modules:
                    self.add_module(owner, nn.Module())
                holder = self._modules[owner]
            holder.register_parameter(leaf, nn.Parameter(values[key].detach().clone()))

    def forward(self, x):
        return self.spec.forward(dict(self.named_parameters()), x, self.training)
