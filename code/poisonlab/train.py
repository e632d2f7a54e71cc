"""Training by minibatch SGD: a readable single-model trainer and a batched one for K models at once.

`train` is the loop of the PyTorch optimisation tutorial (DataLoader, SGD, loss), shown in the chapters.
`train_batched` runs K independent copies of that loop as one tensor program: model k sees exactly the
minibatches that `train` would show it for seed k (the same DataLoader shuffles, reproduced draw for
draw), starts from the same initial parameters and takes the same SGD steps. Linear models take a
fast path without autograd (the gradient of a linear model is g^T [X, 1]); other models stack their
parameters and use `torch.func.vmap` over `functional_call`.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from . import losses, validate
from .experiment import DivergenceError

MODELS = ("linear", "mlp", "cnn")
AGGREGATES = ("mean", "median", "trimmed-mean")
# torch threads used by train_batched (restored afterwards). SGD is a long chain of small tensor ops,
# mostly below what torch splits between threads anyway; on shared cores a second OpenMP thread that
# must wait for a busy core made steps 10-20x slower (measured: linear, MLP and CNN alike).
THREADS = 1
# Divergence: training that ends with a mean epoch loss above GROWTH times the loss at its start (the
# first minibatch's, at the initial parameters) has diverged, even while every number is still finite.
GROWTH = 1e3


@dataclass
class History:
    """What `train` records: mean training loss per epoch, steps taken, optional parameter snapshots."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    trajectory: list[dict] = field(default_factory=list)  # state dicts at trajectory_steps
    trajectory_steps: list[int] = field(default_factory=list)


def train(model: nn.Module, X: Tensor, y: Tensor, *, loss: str = "mse", epochs: int, lr: float,
          batch_size: int, seed: int, delta: float = 1.0, record_every: int | None = None) -> History:
    """Train `model` in place by minibatch SGD, as in the PyTorch optimisation tutorial."""
    y = _check_single(model, X, y, loss, epochs, lr, batch_size, seed, delta, record_every)
    dataset = TensorDataset(X, y)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    loss_fn = losses.module(loss, delta)  # e.g. nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    history = History()
    if record_every:
        history.trajectory.append(_snapshot(model))
        history.trajectory_steps.append(0)

    model.train()
    for epoch in range(epochs):
        total = 0.0
        for Xb, yb in loader:
            pred = model(Xb)
            if loss != "ce":
                pred = pred.reshape(yb.shape)  # (B, 1) outputs against (B,) labels
            batch_loss = loss_fn(pred, yb)

            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()

            total += batch_loss.item() * len(Xb)
            if history.steps == 0:  # the loss at the initial parameters: divergence's reference
                start = batch_loss.item()
            history.steps += 1
            if not math.isfinite(total):
                _diverged_single(loss, lr, seed, batch_size, epoch, history.steps)
            if record_every and history.steps % record_every == 0:
                history.trajectory.append(_snapshot(model))
                history.trajectory_steps.append(history.steps)
        history.losses.append(total / len(dataset))

    if not all(torch.isfinite(p).all() for p in model.parameters()):
        _diverged_single(loss, lr, seed, batch_size, epochs - 1, history.steps)
    floor = 1e-6 if loss in ("ce", "bce") else 1e-6 * (1.0 + float(y.double().square().mean()))
    if history.losses[-1] > GROWTH * max(start, floor):
        config = {"loss": loss, "lr": lr, "seed": seed, "batch_size": batch_size}
        raise DivergenceError(f"training diverged at lr {lr:g} (loss grew from {start:.3g} to "
                              f"{history.losses[-1]:.3g}, more than {GROWTH:g} times): {config}", [config],
                              name="lr", lr=float(lr), start=start, final=history.losses[-1])
    return history


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _diverged_single(loss, lr, seed, batch_size, epoch, step):
    config = {"loss": loss, "lr": lr, "seed": seed, "batch_size": batch_size}
    raise DivergenceError(f"training diverged (non-finite loss or parameters) at epoch {epoch}, "
                          f"step {step}: {config}", [config])


def _check_single(model, X, y, loss, epochs, lr, batch_size, seed, delta, record_every):
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_tensors(X, y, loss, leading=1)
    validate.choice("loss", loss, losses.LOSSES)
    validate.positive_int("epochs", epochs)
    validate.positive("lr", lr)
    validate.positive_int("batch_size", batch_size)
    validate.positive("delta", delta)
    _check_seed("seed", seed)
    if record_every is not None:
        validate.positive_int("record_every", record_every)
    return _class_labels(y) if loss == "ce" else y


def _class_labels(y: Tensor) -> Tensor:
    """Integer class indices >= 0 (integral floats accepted) for the ce loss."""
    if y.dtype.is_floating_point and not bool((y == y.round()).all()):
        raise ValueError("y must hold integer class indices for the ce loss")
    y = y.long()
    if y.numel() and int(y.min()) < 0:
        raise ValueError("y must hold class indices >= 0 for the ce loss")
    return y


def _check_seed(name, seed):
    if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(seed, "__index__"):
        raise ValueError(f"{name} must be an integer, got {seed!r}")
    return int(seed)


def _check_tensors(X, y, loss, leading):
    """X (lead..., n, features...) float and finite; y (lead..., n, ...) with the same leading sizes."""
    what = "(K, n, ...)" if leading == 2 else "(n, ...)"
    if not isinstance(X, Tensor) or not X.dtype.is_floating_point or X.dim() < leading + 1:
        raise ValueError(f"X must be a floating-point tensor of shape {what} with features")
    if not isinstance(y, Tensor) or y.dim() < leading or tuple(y.shape[:leading]) != tuple(X.shape[:leading]):
        raise ValueError(f"y must be a tensor whose leading dimensions {what[:-6]}) match X's "
                         f"{tuple(X.shape[:leading])}, got {tuple(y.shape) if isinstance(y, Tensor) else y!r}")
    if X.shape[leading - 1] == 0:
        raise ValueError("X must hold at least one example (n >= 1)")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("X must be finite (no NaN or inf)")
    if y.dtype.is_floating_point and not bool(torch.isfinite(y).all()):
        raise ValueError("y must be finite (no NaN or inf)")
    if loss == "ce" and y.dim() != leading:
        raise ValueError(f"y must hold class indices of shape {what[:-6]}) for the ce loss, got {tuple(y.shape)}")


# ----------------------------------------------------------------------------------------------------
# The batched trainer


class BatchedModel:
    """K trained models of one architecture, parameters stacked along a leading dimension K."""

    def __init__(self, kind: str, params: dict, buffers: dict, *, in_dim: int, out_dim: int, hidden: tuple,
                 in_shape, history: Tensor, trajectory: dict | None = None, trajectory_steps: Tensor | None = None):
        self.kind, self.in_dim, self.out_dim, self.hidden, self.in_shape = kind, in_dim, out_dim, hidden, in_shape
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
            return torch.zeros(self.K, self.out_dim)
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
            if self._base is None:  # built outside vmap, which forbids the random initialisation
                self._base = _base_module(self.kind, self.in_dim, self.out_dim, self.hidden, self.in_shape)
            dtype = next(iter(self.params.values())).dtype
            return torch.func.vmap(self._call)(self.params, self.buffers, X.to(dtype))

    __call__ = forward

    def _call(self, params, buffers, x):
        return torch.func.functional_call(self._base, (params, buffers), (x,))

    def state_dict(self, k: int) -> dict:
        """Model k as a state dict loadable into make_model(...)."""
        k = _check_index(k, self.K)
        state = {name: p[k].detach().clone() for name, p in self.params.items()}
        state.update({name: t[k].detach().clone() for name, t in self.buffers.items()})
        return state

    def module(self, k: int) -> nn.Module:
        """Model k as a stand-alone nn.Module (made by models.make_model, then loaded)."""
        net = _make(self.kind, self.in_dim, self.out_dim, self.hidden, 0, self.in_shape)
        net.load_state_dict(self.state_dict(k))
        return net

    def __repr__(self):
        return f"BatchedModel(kind={self.kind!r}, K={self.K}, in_dim={self.in_dim}, out_dim={self.out_dim})"


def _check_index(k, K):
    if isinstance(k, bool) or not hasattr(k, "__index__") or not -K <= int(k) < K:
        raise ValueError(f"k must be a model index in [0, {K - 1}], got {k!r}")
    return int(k)


def _linear_keys(params: dict):
    """The names of the weight (2-D per model) and bias (1-D per model, or None) of a linear model."""
    weight = [name for name, p in params.items() if p.dim() == 3]
    bias = [name for name, p in params.items() if p.dim() == 2]
    if len(weight) != 1 or len(bias) > 1:
        raise ValueError(f"init must hold one weight and at most one bias for a linear model, got {list(params)}")
    return weight[0], (bias[0] if bias else None)


def _make(kind, in_dim, out_dim, hidden, seed, in_shape):
    from . import models  # written alongside; imported late so that this module loads on its own

    return models.make_model(kind, in_dim, out_dim, tuple(hidden), seed=seed, in_shape=in_shape)


def _base_module(kind, in_dim, out_dim, hidden, in_shape):
    # The architecture only: parameters are supplied by functional_call, so none are allocated.
    return _make(kind, in_dim, out_dim, hidden, 0, in_shape).to("meta")


def epoch_permutations(seeds: Sequence[int], n: int, epochs: int) -> Tensor:
    """(epochs, K, n) orders in which DataLoader(shuffle=True, generator=Generator().manual_seed(seed)) visits."""
    if isinstance(seeds, (int, str)) or not hasattr(seeds, "__len__"):
        raise ValueError(f"seeds must be a list of integers, got {seeds!r}")
    seeds = _check_seeds(seeds, len(seeds))
    n, epochs = validate.positive_int("n", n), validate.positive_int("epochs", epochs)
    perms = _permutations(seeds, n, epochs)
    return torch.stack([_epoch_order(perms, e) for e in range(epochs)])


class _Permutations:
    """The epoch orders of the U distinct seeds, drawn lazily epoch by epoch (never tabulated).

    Each seed keeps its own generator, which draws exactly what DataLoader's does, in the same order:
    memory is U n indices whatever the number of epochs. Epochs must be asked for in order 0, 1, ...
    """

    def __init__(self, seeds: list[int], n: int, epochs: int):
        unique = list(dict.fromkeys(seeds))  # sweeps repeat seeds across grid points: draw each once
        self.n, self.epochs = n, epochs
        self.generators = [torch.Generator().manual_seed(seed) for seed in unique]
        self.where = None
        if len(unique) != len(seeds):
            index = {seed: k for k, seed in enumerate(unique)}
            self.where = torch.tensor([index[s] for s in seeds])
        self.next = 0
        self.current = torch.empty(len(unique), n, dtype=torch.int64)
        self._draw, self._spare = torch.empty((), dtype=torch.int64), torch.empty(n, dtype=torch.int64)

    def epoch(self, e: int) -> Tensor:
        """(U, n): the order of epoch e of each distinct seed (e = the last epoch drawn, or the next one)."""
        if e == self.next - 1:
            return self.current
        if e != self.next or e >= self.epochs:
            raise ValueError(f"epochs must be drawn in order: expected epoch {self.next}, got {e}")
        for k, generator in enumerate(self.generators):
            # Each epoch's DataLoader iterator first draws a base seed for its workers (even with none);
            # then RandomSampler yields one permutation of range(n) and, exhausted, draws a second one
            # for the (empty) remainder num_samples % n before it stops. (The last one is never used.)
            self._draw.random_(generator=generator)
            torch.randperm(self.n, generator=generator, out=self.current[k])
            if e < self.epochs - 1:
                torch.randperm(self.n, generator=generator, out=self._spare)
        self.next = e + 1
        return self.current


def _permutations(seeds: list[int], n: int, epochs: int) -> _Permutations:
    """The epoch orders of every model, drawn lazily (see `_Permutations`)."""
    return _Permutations(seeds, n, epochs)


def _epoch_order(perms: _Permutations, e: int) -> Tensor:
    """(K, n): the order of epoch e for every model."""
    unique = perms.epoch(e)
    return unique if perms.where is None else unique.index_select(0, perms.where)


def train_batched(X: Tensor, y: Tensor, *, model: str = "linear", hidden=(), loss="mse", delta=1.0,
                  epochs: int, lr, batch_size: int, seeds, init=None, in_shape=None, out_dim=None,
                  aggregate: str = "mean", trim: float = 0.1, record_every: int | None = None,
                  configs: list[dict] | None = None, _path: str | None = None) -> BatchedModel:
    """Train K independent models on X (K, n, ...), y (K, n, ...) by minibatch SGD, as K runs of `train`."""
    validate.choice("model", model, MODELS)
    fast = (_path or ("fast" if model == "linear" else "generic")) == "fast"
    with _threads(THREADS):
        return _train_batched(X, y, model=model, hidden=hidden, loss=loss, delta=delta, epochs=epochs, lr=lr,
                              batch_size=batch_size, seeds=seeds, init=init, in_shape=in_shape, out_dim=out_dim,
                              aggregate=aggregate, trim=trim, record_every=record_every, configs=configs,
                              fast=fast)


@contextlib.contextmanager
def _threads(count: int):
    before = torch.get_num_threads()
    if count < before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _train_batched(X, y, *, model, hidden, loss, delta, epochs, lr, batch_size, seeds, init, in_shape, out_dim,
                   aggregate, trim, record_every, configs, fast) -> BatchedModel:
    hidden = _check_hidden(hidden, model)
    if not isinstance(X, Tensor) or X.dim() < 3:
        raise ValueError("X must be a floating-point tensor of shape (K, n, features...)")
    K, n = X.shape[0], X.shape[1]
    if K == 0:
        raise ValueError("X must hold at least one model's data (K >= 1)")
    names = _check_loss(loss, K)
    _check_tensors(X, y, names[0], leading=2)
    epochs = validate.positive_int("epochs", epochs)
    batch_size = validate.positive_int("batch_size", batch_size)
    lr = _per_model("lr", lr, K, X.dtype)
    delta = _per_model("delta", delta, K, X.dtype)
    seeds = _check_seeds(seeds, K)
    validate.choice("aggregate", aggregate, AGGREGATES)
    trim = validate.non_negative("trim", trim)
    if trim >= 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim!r}")
    if record_every is not None:
        record_every = validate.positive_int("record_every", record_every)
    if configs is not None and (not isinstance(configs, Sequence) or len(configs) != K):
        raise ValueError(f"configs must be a list of K={K} dicts, one per model")

    Y, out_dim = _targets(y, names, out_dim)
    in_dim = math.prod(X.shape[2:])
    if in_shape is None and X.dim() > 3:
        in_shape = tuple(X.shape[2:])
    params, buffers = _initial(init, model, in_dim, out_dim, hidden, seeds, in_shape, K, X.dtype)
    perms = _permutations(seeds, n, epochs)
    run = dict(names=names, delta=delta, lr=lr, epochs=epochs, batch_size=batch_size, perms=perms,
               aggregate=aggregate, trim=trim, record_every=record_every)
    if fast:
        params, history, trajectory, steps, start = _fast_linear(X.reshape(K, n, in_dim), Y, params, **run)
    else:
        params, history, trajectory, steps, start = _generic(X, Y, params, buffers, model, in_dim, out_dim, hidden,
                                                      in_shape, **run)

    bad = ~torch.isfinite(history).all(1)
    for p in params.values():
        bad |= ~torch.isfinite(p.reshape(K, -1)).all(1)
    grew = ~bad & (history[:, -1] > GROWTH * torch.maximum(start, _loss_floor(names, Y).to(start.dtype)))
    if bad.any() or grew.any():
        _diverged(bad | grew, names, lr, seeds, configs, start, history[:, -1])
    result = BatchedModel(model, params, buffers, in_dim=in_dim, out_dim=out_dim, hidden=hidden,
                          in_shape=in_shape, history=history, trajectory=trajectory, trajectory_steps=steps)
    if trajectory is not None and model == "linear":
        weight, bias = _linear_keys(params)
        trajectory["W"] = trajectory[weight]
        if bias is not None:
            trajectory["b"] = trajectory[bias]
    return result


def _loss_floor(names, Y: Tensor) -> Tensor:
    """(K,) the smallest reference loss of the divergence rule: a start at (almost) zero loss must not
    make every later rounding error look like growth. 1e-6 of the zero predictor's MSE (regression)."""
    if names[0] == "ce" or "bce" in names:
        return torch.full((Y.shape[0],), 1e-6, dtype=torch.float64)
    return 1e-6 * (1.0 + Y.double().square().reshape(Y.shape[0], -1).mean(1))


def _diverged(bad: Tensor, names, lr, seeds, configs, start=None, final=None):
    ks = bad.nonzero().flatten().tolist()
    if configs is not None:
        which = [configs[k] for k in ks]
    else:
        which = [{"model": k, "loss": names[k], "lr": float(lr[k]), "seed": seeds[k]} for k in ks]
    shown = "; ".join(map(str, which[:5])) + (f"; ... ({len(which) - 5} more)" if len(which) > 5 else "")
    k0 = ks[0]
    how = "non-finite loss or parameters"
    if start is not None and math.isfinite(float(final[k0])):
        how = f"loss grew from {float(start[k0]):.3g} to {float(final[k0]):.3g}, more than {GROWTH:g} times"
    raise DivergenceError(f"training diverged at lr {float(lr[k0]):g} ({how}) for {len(ks)} of {len(bad)} "
                          f"models: {shown}", which, name="lr", lr=float(lr[k0]),
                          start=None if start is None else float(start[k0]),
                          final=None if final is None else float(final[k0]))


def _check_hidden(hidden, model):
    if hidden is None:
        hidden = ()
    if isinstance(hidden, int):
        hidden = (hidden,)
    try:
        hidden = tuple(validate.positive_int("hidden", h) for h in hidden)
    except TypeError:
        raise ValueError(f"hidden must be a list of positive layer widths, got {hidden!r}") from None
    if model == "linear" and hidden:
        raise ValueError(f"hidden must be () for the linear model, got {hidden!r}")
    return hidden


def _check_loss(loss, K):
    names = [loss] * K if isinstance(loss, str) else list(loss) if isinstance(loss, Sequence) else None
    if names is None or len(names) != K:
        raise ValueError(f"loss must be one of {', '.join(losses.LOSSES)} or a list of K={K} of them, got {loss!r}")
    for name in set(names):
        validate.choice("loss", name, losses.LOSSES)
    if "ce" in names and set(names) != {"ce"}:
        # Class indices and real-valued targets cannot share one target tensor.
        raise ValueError("loss must not mix 'ce' with other losses in one batched run")
    return names


def _per_model(name, value, K, dtype):
    """A float or K values, each finite and > 0, as a (K,) tensor."""
    if getattr(value, "ndim", None) == 0:  # 0-d tensors and numpy arrays
        value = float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.full((K,), validate.positive(name, value), dtype=dtype)
    try:
        values = [validate.positive(name, v) for v in (value.tolist() if isinstance(value, Tensor) else value)]
    except TypeError:
        raise ValueError(f"{name} must be a number > 0 or K={K} of them, got {value!r}") from None
    if len(values) != K:
        raise ValueError(f"{name} must be a number > 0 or K={K} of them, got {len(values)} values")
    return torch.tensor(values, dtype=dtype)


def _check_seeds(seeds, K):
    if isinstance(seeds, (int, str)) or not hasattr(seeds, "__len__") or len(seeds) != K:
        raise ValueError(f"seeds must be a list of K={K} integers, one per model, got {seeds!r}")
    return [_check_seed("seeds", s) for s in (seeds.tolist() if isinstance(seeds, Tensor) else seeds)]


def _targets(y: Tensor, names, out_dim):
    """Targets (K, n, m) for regression/bce (m outputs) or (K, n) class indices for ce; and out_dim."""
    if names[0] == "ce":
        Y = _class_labels(y)
        classes = int(Y.max()) + 1
        if out_dim is None:
            out_dim = classes
        out_dim = validate.positive_int("out_dim", out_dim)
        if classes > out_dim:
            raise ValueError(f"out_dim must exceed every class index in y; got out_dim={out_dim}, "
                             f"max class {classes - 1}")
        return Y, out_dim
    if y.dim() == 2:
        Y = y.unsqueeze(-1)
    elif y.dim() == 3:
        Y = y
    else:
        raise ValueError(f"y must have shape (K, n) or (K, n, m), got {tuple(y.shape)}")
    if out_dim is not None and validate.positive_int("out_dim", out_dim) != Y.shape[-1]:
        raise ValueError(f"out_dim must equal the number of targets per example {Y.shape[-1]}, got {out_dim}")
    if "bce" in names and not bool(((Y >= 0) & (Y <= 1)).all()):
        raise ValueError("y must lie in [0, 1] for the bce loss")
    return Y, Y.shape[-1]


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
    from . import models

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


def _gather(T: Tensor, order: Tensor) -> Tensor:
    """Row order[k] of T[k] for each model k: (K, n, ...) reordered along n."""
    K, n = order.shape
    rows = order + (torch.arange(K) * n).unsqueeze(1)  # one flat lookup: faster than 2-D fancy indexing
    return T.reshape(K * n, *T.shape[2:]).index_select(0, rows.reshape(-1)).reshape(T.shape)


def _aggregate(per_example: Tensor, how: str, trim: float) -> Tensor:
    """Coordinate-wise median or trimmed mean over the minibatch dimension 1 of per-example gradients."""
    B = per_example.shape[1]
    ordered = per_example.sort(dim=1).values
    if how == "median":
        # The midpoint of the two middle values when B is even (the usual median, not torch's lower one).
        return 0.5 * (ordered[:, (B - 1) // 2] + ordered[:, B // 2])
    cut = int(math.floor(trim * B))
    return ordered[:, cut:B - cut].mean(1)


def _groups(names, like: Tensor):
    """(name, mask (K, 1, 1)) for each loss used; a single loss needs no mask."""
    unique = list(dict.fromkeys(names))
    if len(unique) == 1:
        return [(unique[0], None)]
    return [(u, torch.tensor([x == u for x in names]).reshape(-1, 1, 1)) for u in unique]


def _loss_and_grad(groups, pred, target, delta):
    """Per-example losses (K, B) and d loss / d pred (K, B, m) with each model's own loss."""
    if len(groups) == 1:
        name = groups[0][0]
        return losses._per_example(name, pred, target, delta), losses._grad_pred(name, pred, target, delta)
    per, grad = torch.zeros(pred.shape[:2], dtype=pred.dtype), torch.zeros_like(pred)
    for name, mask in groups:
        per = torch.where(mask[..., 0], losses._per_example(name, pred, target, delta), per)
        grad = torch.where(mask, losses._grad_pred(name, pred, target, delta), grad)
    return per, grad


def _fast_linear(X, Y, params, *, names, delta, lr, epochs, batch_size, perms, aggregate, trim, record_every):
    """SGD on K linear models without autograd: pred = [x, 1] theta^T, grad theta = g^T [x, 1] / B."""
    K, n, d = X.shape
    weight, bias = _linear_keys(params)
    ce = names[0] == "ce"
    # theta = [W, b] acts on rows [x, 1], so that one bmm gives the gradient of both. The rows of all
    # models, with their targets appended, form one table Z (K n rows) to shuffle in one lookup.
    p = d + (1 if bias else 0)
    theta = torch.cat([params[weight], params[bias].unsqueeze(2)], 2) if bias else params[weight].clone()
    columns = [X] + ([torch.ones(K, n, 1, dtype=X.dtype)] if bias else []) + [Y.unsqueeze(2).to(X.dtype) if ce else Y]
    Z = torch.cat(columns, 2).reshape(K * n, -1)
    offsets = (torch.arange(K) * n).unsqueeze(1)  # model k's rows in Z start at k n
    m = theta.shape[1]
    groups = _groups(names, theta)
    delta = delta.reshape(K, 1, 1) if "huber" in names and bool((delta != delta[0]).any()) else float(delta[0])
    lr3 = lr.reshape(K, 1, 1)
    fused_mse = aggregate == "mean" and len(groups) == 1 and groups[0][0] == "mse"
    starts = range(0, n, batch_size)
    sizes = {min(batch_size, n - s) for s in starts}
    # the step theta -= lr/B g^T x folded into one scale per model; MSE's 2/m folded in as well
    scale = {B: -lr3 / B * (2.0 / m if fused_mse else 1.0) for B in sizes}
    history = torch.zeros(K, epochs, dtype=X.dtype)
    record = [theta.clone()] if record_every else None
    step = 0

    for e in range(epochs):
        # this epoch's rows in visiting order, in one lookup: each minibatch is then a view
        Ze = Z.index_select(0, _epoch_order(perms, e).add(offsets).reshape(-1)).reshape(K, n, -1)
        Xe, Ye = Ze[..., :p], (Ze[..., p].long() if ce else Ze[..., p:])
        total = history[:, e]
        for s in starts:
            Xb, Yb = Xe[:, s:s + batch_size], Ye[:, s:s + batch_size]
            pred = torch.bmm(Xb, theta.transpose(1, 2))
            if fused_mse:
                r = pred.sub_(Yb)
                total += r.square().sum((1, 2))  # m times the summed per-example losses
                g = r.mul_(scale[Xb.shape[1]])
            else:
                per, g = _loss_and_grad(groups, pred, Yb, delta)
                total += per.sum(1)
            if aggregate == "mean":
                if not fused_mse:
                    g.mul_(scale[Xb.shape[1]])
                theta.baddbmm_(g.transpose(1, 2), Xb)
            else:
                # per-example gradients g_i (x) [x_i, 1]: (K, B, m, p), aggregated over B coordinate-wise
                G = _aggregate(g.unsqueeze(3) * Xb.unsqueeze(2), aggregate, trim)
                theta.sub_(lr3 * G)
            if step == 0:  # the loss at the starting parameters (first minibatch): divergence's reference
                start = total / (Xb.shape[1] * (m if fused_mse else 1))
            step += 1
            if record is not None and step % record_every == 0:
                record.append(theta.clone())
        total.div_(n * m if fused_mse else n)
        if not bool(torch.isfinite(total).all()):
            break  # stop early: the caller reports the diverged models (the others never do)

    out = {weight: theta[:, :, :d].contiguous()}
    if bias:
        out[bias] = theta[:, :, d].contiguous()
    trajectory = steps = None
    if record is not None:
        T = torch.stack(record)
        trajectory = {weight: T[:, :, :, :d].contiguous()}
        if bias:
            trajectory[bias] = T[:, :, :, d].contiguous()
        steps = torch.arange(len(record)) * record_every
    return out, history, trajectory, steps, start


def _generic(X, Y, params, buffers, kind, in_dim, out_dim, hidden, in_shape, *, names, delta, lr, epochs,
             batch_size, perms, aggregate, trim, record_every):
    """SGD on K stacked models of any architecture: vmap(functional_call), autograd, in-place update."""
    K, n = X.shape[:2]
    base = _base_module(kind, in_dim, out_dim, hidden, in_shape)
    params = {k: v.requires_grad_(True) for k, v in params.items()}

    def forward(p, b, x):
        return torch.func.functional_call(base, (p, b), (x,))

    batched = torch.func.vmap(forward)
    groups = _groups(names, Y)
    delta_k = delta.reshape(K, 1, 1) if "huber" in names and bool((delta != delta[0]).any()) else float(delta[0])
    lrs = {k: lr.reshape(K, *([1] * (v.dim() - 1))) for k, v in params.items()}
    per_example_grads = _per_example_grad_fn(forward, names, delta) if aggregate != "mean" else None
    history = torch.zeros(K, epochs, dtype=X.dtype)
    record = [] if record_every else None
    step = 0
    if record is not None:
        record.append({k: v.detach().clone() for k, v in params.items()})

    for e in range(epochs):
        order = _epoch_order(perms, e)
        Xe, Ye = _gather(X, order), _gather(Y, order)
        total = history[:, e]
        for s in range(0, n, batch_size):
            Xb, Yb = Xe[:, s:s + batch_size], Ye[:, s:s + batch_size]
            pred = batched(params, buffers, Xb)
            if pred.dim() == 2:
                pred = pred.unsqueeze(-1)
            if names[0] == "ce":
                per = losses._per_example("ce", pred, Yb)
            else:
                per = _loss_only(groups, pred, Yb, delta_k)
            # Models are independent: the gradient of the sum of their mean losses is each one's own.
            if per_example_grads is None:
                grads = torch.autograd.grad(per.mean(1).sum(), list(params.values()))
            else:
                detached = {k: v.detach() for k, v in params.items()}
                G = per_example_grads(detached, buffers, Xb, Yb)
                grads = [_aggregate(G[k], aggregate, trim) for k in params]
            with torch.no_grad():
                for (name, p), g in zip(params.items(), grads):
                    p.sub_(lrs[name] * g)
                total += per.detach().sum(1)
            if step == 0:  # the loss at the starting parameters (first minibatch): divergence's reference
                start = total / Xb.shape[1]
            step += 1
            if record is not None and step % record_every == 0:
                record.append({k: v.detach().clone() for k, v in params.items()})
        total.div_(n)
        if not bool(torch.isfinite(total).all()):
            break  # stop early: the caller reports the diverged models (the others never do)

    params = {k: v.detach() for k, v in params.items()}
    trajectory = steps = None
    if record is not None:
        trajectory = {k: torch.stack([r[k] for r in record]) for k in params}
        steps = torch.arange(len(record)) * record_every
    return params, history, trajectory, steps, start


def _loss_only(groups, pred, target, delta):
    if len(groups) == 1:
        return losses._per_example(groups[0][0], pred, target, delta)
    per = torch.zeros(pred.shape[:2], dtype=pred.dtype)
    for name, mask in groups:
        per = torch.where(mask[..., 0], losses._per_example(name, pred, target, delta), per)
    return per


def _per_example_grad_fn(forward, names, delta):
    """vmap over models of vmap over examples of grad: per-example gradients (K, B, *param shape)."""
    codes = torch.tensor([losses.LOSSES.index(u) for u in names])

    def one(p, b, x, t, code, dlt):
        pred = forward(p, b, x.unsqueeze(0))
        if pred.dim() == 1:
            pred = pred.unsqueeze(-1)
        if names[0] == "ce":
            return losses._per_example("ce", pred, t.unsqueeze(0)).sum()
        value = torch.zeros(())
        for u in dict.fromkeys(names):
            # Data-dependent control flow is not allowed under vmap: select each loss arithmetically.
            value = value + (code == losses.LOSSES.index(u)) * losses._per_example(u, pred, t.unsqueeze(0), dlt).sum()
        return value

    per_model = torch.func.vmap(torch.func.grad(one), in_dims=(None, None, 0, 0, None, None))
    over_models = torch.func.vmap(per_model, in_dims=(0, 0, 0, 0, 0, 0))
    return lambda p, b, Xb, Yb: over_models(p, b, Xb, Yb, codes, delta)
