"""Batched models: K models of one architecture with parameters stacked along a leading dimension K."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .checks import _check_index
from ..models.spec import Spec


class BatchedModel:
    """K trained models of one architecture, parameters stacked along a leading dimension K.

    kind: "linear" | "mlp" | "cnn" (models.make_model's) or "spec" with `spec` the Spec trained.
    """

    def __init__(self, kind: str, params: dict, buffers: dict, *, in_dim: int, out_dim: int, hidden: tuple,
                 in_shape, history: Tensor, trajectory: dict | None = None, trajectory_steps: Tensor | None = None,
                 spec: Spec | None = None):
        self.kind, self.in_dim, self.out_dim, self.hidden, self.in_shape = kind, in_dim, out_dim, hidden, in_shape
        if spec is None and kind == "spec":
            raise ValueError("spec must be given for kind='spec'")
        self.spec = spec if kind == "spec" else None
        self.params, self.buffers = params, buffers
        self.history = history  # (K, epochs) mean training loss per epoch
        self.trajectory = trajectory  # name -> (T, K, ...) parameters at trajectory_steps; "W", "b" for linear
        self.trajectory_steps = trajectory_steps  # (T,) steps taken when recorded, 0 = the initial parameters
        self._base = None

    @property
    def K(self) -> int:
        return next(iter(self.params.values())).shape[0]

    @property
    def W(self) -> Tensor:
        """Weights (K, m, d) of linear models."""
        return self.params[self._linear_keys()[0]]

    @property
    def b(self) -> Tensor:
        """Intercepts (K, m) of linear models."""
        key = self._linear_keys()[1]
        if key is None:
            return torch.zeros(self.K, self.out_dim, device=self.W.device)
        return self.params[key]

    def _linear_keys(self):
        if self.kind != "linear":
            raise ValueError(f"W and b are defined for linear models; this is a {self.kind!r} model")
        return _linear_keys(self.params)

    def forward(self, X: Tensor) -> Tensor:
        """Outputs (K, n, out) of the K models on X (K, n, ...), one dataset per model."""
        if not isinstance(X, Tensor) or X.dim() < 3 or X.shape[0] != self.K:
            raise ValueError(f"X must be a tensor of shape (K={self.K}, n, ...)")
        with torch.no_grad():
            if self.kind == "linear":
                Xf = X.reshape(X.shape[0], X.shape[1], -1).to(self.W.dtype)
                return torch.baddbmm(self.b.unsqueeze(1), Xf, self.W.transpose(1, 2))
            if self._base is None:
                self._base = self.spec or Spec.of(self.kind, self.in_dim, self.out_dim, self.hidden, self.in_shape)
            dtype = next(iter(self.params.values())).dtype
            return torch.func.vmap(self._base.forward)(self.params, X.to(dtype))

    __call__ = forward

    def state_dict(self, k: int) -> dict:
        """Model k as a state dict loadable into make_model(...)."""
        k = _check_index(k, self.K)
        state = {name: p[k].detach().clone() for name, p in self.params.items()}
        state.update({name: t[k].detach().clone() for name, t in self.buffers.items()})
        return state

    def module(self, k: int) -> nn.Module:
        """Model k as a stand-alone nn.Module (made by models.make_model, or Spec.module, then loaded)."""
        if self.spec is not None:
            return self.spec.module(self.state_dict(k))
        net = _make(self.kind, self.in_dim, self.out_dim, self.hidden, 0, self.in_shape)
        net.load_state_dict(self.state_dict(k))
        return net

    def __repr__(self):
        return f"BatchedModel(kind={self.kind!r}, K={self.K}, in_dim={self.in_dim}, out_dim={self.out_dim})"


def _linear_keys(params: dict):
    """The names of the weight (2-D per model) and bias (1-D per model, or None) of a linear model."""
    weight = [name for name, p in params.items() if p.dim() == 3]
    bias = [name for name, p in params.items() if p.dim() == 2]
    if len(weight) != 1 or len(bias) > 1:
        raise ValueError(f"init must hold one weight and at most one bias for a linear model, got {list(params)}")
    return weight[0], (bias[0] if bias else None)


def _make(kind, in_dim, out_dim, hidden, seed, in_shape):
    from .. import models  # imported late so that this module loads on its own

    return models.make_model(kind, in_dim, out_dim, tuple(hidden), seed=seed, in_shape=in_shape)


def _base_module(kind, in_dim, out_dim, hidden, in_shape):
    # The architecture only: parameters are supplied by functional_call, so none are allocated.
    return _make(kind, in_dim, out_dim, hidden, 0, in_shape).to("meta")


def _initial(init, kind, in_dim, out_dim, hidden, seeds, in_shape, K, dtype):
    """Stacked initial parameters and buffers: from `init`, else make_model(seed=seeds[k]) for each k."""
    if init is None:
        params, buffers = _initial_state(kind, in_dim, out_dim, hidden, seeds, in_shape)
    elif isinstance(init, BatchedModel):
        if (init.K, init.kind, init.in_dim, init.out_dim, tuple(init.hidden)) != (K, kind, in_dim, out_dim, hidden):
            raise ValueError(f"init must be a BatchedModel of K={K} {kind!r} models with in_dim={in_dim}, "
                             f"out_dim={out_dim}, hidden={hidden}; got {init!r} with hidden={init.hidden}")
        params, buffers = dict(init.params), dict(init.buffers)
    elif isinstance(init, Sequence) and len(init) == K and all(isinstance(s, dict) for s in init):
        keys = list(init[0])
        if any(list(s) != keys for s in init):
            raise ValueError("init must be K state dicts of one architecture (same keys)")
        stacked = {key: torch.stack([torch.as_tensor(s[key]) for s in init]) for key in keys}
        if kind == "linear":
            params, buffers = stacked, {}
        else:
            names = dict(_base_module(kind, in_dim, out_dim, hidden, in_shape).named_parameters())
            params = {k: v for k, v in stacked.items() if k in names}
            buffers = {k: v for k, v in stacked.items() if k not in names}
    else:
        raise ValueError(f"init must be a BatchedModel or a list of K={K} state dicts, got {type(init).__name__}")
    params = {k: v.detach().to(dtype).clone() for k, v in params.items()}
    buffers = {k: v.detach().clone() for k, v in buffers.items()}
    if kind == "linear":
        weight, bias = _linear_keys(params)
        if params[weight].shape[1:] != (out_dim, in_dim):
            raise ValueError(f"init must have weights of shape (out_dim={out_dim}, in_dim={in_dim}), "
                             f"got {tuple(params[weight].shape[1:])}")
    elif init is not None:
        base = _base_module(kind, in_dim, out_dim, hidden, in_shape)
        expected = {k: tuple(v.shape) for k, v in base.named_parameters()}
        if {k: tuple(v.shape[1:]) for k, v in params.items()} != expected:
            raise ValueError(f"init must hold the parameters of this {kind!r} architecture: {expected}")
    return params, buffers


def _initial_state(kind, in_dim, out_dim, hidden, seeds, in_shape):
    """The parameters and buffers of make_model(kind, ..., seed=s) for each seed s, stacked."""
    from .. import models

    reinit = getattr(models, "init_parameters", None)
    if reinit is None:
        return torch.func.stack_module_state([_make(kind, in_dim, out_dim, hidden, s, in_shape) for s in seeds])
    # make_model = build, then init_parameters(seed): re-initialising one built model in place skips
    # the build (most of the cost for small models); tests check that the result equals make_model's.
    unique = list(dict.fromkeys(seeds))
    net = _make(kind, in_dim, out_dim, hidden, unique[0], in_shape)
    snapshots = []
    for i, s in enumerate(unique):
        if i:
            reinit(net, s)
        snapshots.append([p.detach().clone() for p in net.parameters()])
    where = [unique.index(s) for s in seeds] if len(unique) < len(seeds) else None
    params = {name: torch.stack(column) for (name, _), column in zip(net.named_parameters(), zip(*snapshots))}
    if where is not None:
        params = {name: p[where] for name, p in params.items()}
    buffers = {name: b.detach().unsqueeze(0).expand(len(seeds), *b.shape).clone() for name, b in net.named_buffers()}
    return params, buffers




def _initial_spec(init, spec: Spec, seeds, K, dtype):
    """Stacked initial parameters of a Spec: from `init` (a BatchedModel or K state dicts), else spec.init(seed)."""
    shapes = spec.shapes()
    if init is None:
        params = spec.stacked_init(seeds)
    elif isinstance(init, BatchedModel):
        if init.K != K:
            raise ValueError(f"init must be a BatchedModel of K={K} models, got {init!r}")
        params = dict(init.params)
    elif isinstance(init, Sequence) and len(init) == K and all(isinstance(s, dict) for s in init):
        if any(list(s) != list(init[0]) for s in init):
            raise ValueError("init must be K state dicts of one architecture (same keys)")
        params = {key: torch.stack([torch.as_tensor(s[key]) for s in init]) for key in init[0]}
    else:
        raise ValueError(f"init must be a BatchedModel or a list of K={K} state dicts, got {type(init).__name__}")
    if {k: tuple(v.shape[1:]) for k, v in params.items()} != shapes:
        raise ValueError(f"init must hold the parameters of this model spec: {shapes}")
    return {k: v.detach().to(dtype).clone() for k, v in params.items()}, {}
