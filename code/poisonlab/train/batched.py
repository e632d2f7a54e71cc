"""The batched trainer: K independent models trained at once, as K runs of the readable `train`.

Model k sees exactly the minibatches that `train` would show it for seed k (the same DataLoader
shuffles, reproduced draw for draw), starts from the same initial parameters and takes the same steps.
What is trained and how is open: the objective (per-example losses, ERM by default), the optimiser
(SGD by default, momentum, Adam), the aggregator of per-example gradients (mean by default), the
device and a per-epoch callback. Linear models with the defaults (ERM, plain SGD) take a fast path
without autograd (the gradient of a linear model is g^T [X, 1]); everything else stacks parameters
and use `torch.func.vmap` over a model spec's functional forward (spec.py).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .. import validate
from ..defenses import aggregate as aggregators
from . import optim
from .checks import (GROWTH, _check_hidden, _check_loss, _check_seeds, _check_tensors, _diverged, _loss_floor,
                     _per_model, _targets)
from .objectives import ERM, _groups, _loss_and_grad, _per_example_grad_fn
from .perms import _epoch_order, _gather, _permutations
from ..models.spec import Spec
from .stacked import BatchedModel, _initial, _initial_spec, _linear_keys

MODELS = ("linear", "mlp", "cnn")
# torch threads used by train_batched (restored afterwards). SGD is a long chain of small tensor ops,
# mostly below what torch splits between threads anyway; on shared cores a second OpenMP thread that
# must wait for a busy core made steps 10-20x slower (measured: linear, MLP and CNN alike).
THREADS = 1


def train_batched(X: Tensor, y: Tensor, *, model: str | Spec = "linear", hidden=(), loss="mse", delta=1.0,
                  epochs: int, lr, batch_size: int, seeds, init=None, in_shape=None, out_dim=None,
                  aggregate="mean", trim: float = 0.1, record_every: int | None = None,
                  configs: list[dict] | None = None, objective=None, optimizer=None, device=None,
                  callback=None, step_hook=None, _path: str | None = None) -> BatchedModel:
    """Train K independent models on X (K, n, ...), y (K, n, ...) by minibatch SGD, as K runs of `train`.

    model: "linear" | "mlp" (with hidden widths) | "cnn" (hidden: its two channel counts), the shorthands
    of Spec.linear/mlp/cnn (models.make_model's architectures), or any spec.Spec (a stack of layers).

    objective: objective(forward, params, buffers, Xb, Yb) -> per-example losses (K, B); default
    ERM(loss, delta). `loss` also says how y is read (class indices for "ce") and the divergence floor.
    optimizer: optim.SGD() (default: constant step lr), optim.SGD(momentum=...), optim.Adam(...).
    aggregate: "mean" | "median" | "trimmed-mean" (with trim) or an aggregate.Aggregator object.
    device: where to train (default "cpu"); "cuda" needs CUDA. The result lives there.
    callback: callback(epoch, params, history) after each epoch, params the (K, ...) tensors (changes
    to them, under no_grad, are kept: masks), history (K, epoch + 1) the losses so far; a truthy
    return stops training (history then has the epochs run).
    """
    if not isinstance(model, Spec):
        validate.choice("model", model, MODELS)
    fast = (_path or ("fast" if model == "linear" else "generic")) == "fast"
    with _threads(THREADS):
        return _train_batched(X, y, model=model, hidden=hidden, loss=loss, delta=delta, epochs=epochs, lr=lr,
                              batch_size=batch_size, seeds=seeds, init=init, in_shape=in_shape, out_dim=out_dim,
                              aggregate=aggregate, trim=trim, record_every=record_every, configs=configs,
                              fast=fast, objective=objective, optimizer=optimizer, device=device,
                              callback=callback, step_hook=step_hook)


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


def check_device(device) -> torch.device:
    """None -> cpu; a torch device that exists here, else a ValueError naming `device`."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return dev


def _train_batched(X, y, *, model, hidden, loss, delta, epochs, lr, batch_size, seeds, init, in_shape, out_dim,
                   aggregate, trim, record_every, configs, fast, objective, optimizer, device,
                   callback, step_hook) -> BatchedModel:
    spec = model if isinstance(model, Spec) else None
    if spec is not None:
        model, fast = "spec", False
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
    agg = aggregators.resolve(aggregate, trim)
    if record_every is not None:
        record_every = validate.positive_int("record_every", record_every)
    if configs is not None and (not isinstance(configs, Sequence) or len(configs) != K):
        raise ValueError(f"configs must be a list of K={K} dicts, one per model")
    if objective is not None and not callable(objective):
        raise ValueError(f"objective must be callable (forward, params, buffers, Xb, Yb) -> (K, B), got {objective!r}")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable (epoch, params, history), got {callback!r}")
    if step_hook is not None and not callable(step_hook):
        raise ValueError(f"step_hook must be callable (step, params), got {step_hook!r}")
    opt = optim.resolve(optimizer)
    dev = check_device(device)

    Y, out_dim = _targets(y, names, out_dim)
    in_dim = math.prod(X.shape[2:])
    if in_shape is None and X.dim() > 3:
        in_shape = tuple(X.shape[2:])
    if spec is None:
        params, buffers = _initial(init, model, in_dim, out_dim, hidden, seeds, in_shape, K, X.dtype)
    else:
        params, buffers = _initial_spec(init, spec, seeds, K, X.dtype)
    perms = _permutations(seeds, n, epochs)
    X, Y, lr, delta = X.to(dev), Y.to(dev), lr.to(dev), delta.to(dev)
    params = {k: v.to(dev) for k, v in params.items()}
    buffers = {k: v.to(dev) for k, v in buffers.items()}
    run = dict(lr=lr, epochs=epochs, batch_size=batch_size, perms=perms, aggregate=agg,
               record_every=record_every, optimizer=opt, callback=callback, step_hook=step_hook)
    if fast and objective is None and isinstance(opt, optim.SGD) and opt.plain:
        params, history, trajectory, steps, start = _fast_linear(X.reshape(K, n, in_dim), Y, params, names=names,
                                                                 delta=delta, **run)
    else:
        objective = ERM(names, delta) if objective is None else objective
        erm = None if not isinstance(objective, ERM) or objective.names != names else objective
        base = spec or Spec.of(model, in_dim, out_dim, hidden, in_shape)
        params, history, trajectory, steps, start = _generic(X, Y, params, buffers, base, objective=objective,
                                                             erm=erm, names=names, delta=delta, **run)

    bad = ~torch.isfinite(history).all(1)
    for p in params.values():
        bad |= ~torch.isfinite(p.reshape(K, -1)).all(1)
    floor = _loss_floor(names, Y).to(start.dtype).to(dev)
    grew = ~bad & (history[:, -1] > GROWTH * torch.maximum(start, floor))
    if bad.any() or grew.any():
        _diverged(bad.cpu() | grew.cpu(), names, lr.cpu(), seeds, configs, start.cpu(), history[:, -1].cpu())
    result = BatchedModel(model, params, buffers, in_dim=in_dim, out_dim=out_dim, hidden=hidden, in_shape=in_shape,
                          history=history, trajectory=trajectory, trajectory_steps=steps, spec=spec)
    if trajectory is not None and model == "linear":
        weight, bias = _linear_keys(params)
        trajectory["W"] = trajectory[weight]
        if bias is not None:
            trajectory["b"] = trajectory[bias]
    return result


def _stop(callback, e, params, history) -> bool:
    """Call the per-epoch callback (under no_grad); a truthy answer stops training."""
    if callback is None:
        return False
    with torch.no_grad():
        return bool(callback(e, params, history[:, :e + 1]))


def _fast_linear(X, Y, params, *, names, delta, lr, epochs, batch_size, perms, aggregate, record_every,
                 optimizer, callback, step_hook):
    """SGD on K linear models without autograd: pred = [x, 1] theta^T, grad theta = g^T [x, 1] / B."""
    K, n, d = X.shape
    dev = X.device
    weight, bias = _linear_keys(params)
    ce = names[0] == "ce"
    # theta = [W, b] acts on rows [x, 1], so that one bmm gives the gradient of both. The rows of all
    # models, with their targets appended, form one table Z (K n rows) to shuffle in one lookup.
    p = d + (1 if bias else 0)
    theta = torch.cat([params[weight], params[bias].unsqueeze(2)], 2) if bias else params[weight].clone()
    columns = [X] + ([torch.ones(K, n, 1, dtype=X.dtype, device=dev)] if bias else []) + [
        Y.unsqueeze(2).to(X.dtype) if ce else Y]
    Z = torch.cat(columns, 2).reshape(K * n, -1)
    offsets = (torch.arange(K, device=dev) * n).unsqueeze(1)  # model k's rows in Z start at k n
    m = theta.shape[1]
    groups = _groups(names, theta)
    delta = delta.reshape(K, 1, 1) if "huber" in names and bool((delta != delta[0]).any()) else float(delta[0])
    mean = aggregate.is_mean
    fused_mse = mean and len(groups) == 1 and groups[0][0] == "mse"
    starts = range(0, n, batch_size)
    sizes = {min(batch_size, n - s) for s in starts}
    optimizer.start({"theta": theta}, lr)
    history = torch.zeros(K, epochs, dtype=X.dtype, device=dev)
    record = [theta.clone()] if record_every else None
    view = {weight: theta[:, :, :d]} | ({bias: theta[:, :, d]} if bias else {})  # what the callback sees
    step, ran = 0, epochs

    for e in range(epochs):
        lr3 = optimizer.lr.reshape(K, 1, 1)  # read each epoch: a callback may change it (a schedule)
        # the step theta -= lr/B g^T x folded into one scale per model; MSE's 2/m folded in as well
        scale = {B: -lr3 / B * (2.0 / m if fused_mse else 1.0) for B in sizes}
        # this epoch's rows in visiting order, in one lookup: each minibatch is then a view
        Ze = Z.index_select(0, _epoch_order(perms, e).to(dev).add(offsets).reshape(-1)).reshape(K, n, -1)
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
            if mean:
                if not fused_mse:
                    g.mul_(scale[Xb.shape[1]])
                theta.baddbmm_(g.transpose(1, 2), Xb)
            else:
                # per-example gradients g_i (x) [x_i, 1]: (K, B, m, p), aggregated over B coordinate-wise
                G = aggregate(g.unsqueeze(3) * Xb.unsqueeze(2))
                theta.sub_(lr3 * G)
            if step == 0:  # the loss at the starting parameters (first minibatch): divergence's reference
                start = total / (Xb.shape[1] * (m if fused_mse else 1))
            step += 1
            if step_hook is not None:
                step_hook(step, view)
            if record is not None and step % record_every == 0:
                record.append(theta.clone())
        total.div_(n * m if fused_mse else n)
        if not bool(torch.isfinite(total).all()):
            break  # stop early: the caller reports the diverged models (the others never do)
        if _stop(callback, e, view, history):
            ran = e + 1
            break

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
    return out, (history if ran == epochs else history[:, :ran].clone()), trajectory, steps, start


def _generic(X, Y, params, buffers, base, *, objective, erm, names, delta, lr, epochs, batch_size, perms, aggregate,
             record_every, optimizer, callback, step_hook):
    """K stacked models of any Spec: vmap over the spec's forward, autograd, the optimiser's step in place."""
    K, n = X.shape[:2]
    params = {k: v.requires_grad_(True) for k, v in params.items()}

    def forward(p, b, x):
        return base.forward(p, x, training=True)

    randomness = "different" if base.random else "error"  # dropout: each model draws its own masks
    batched = torch.func.vmap(forward, randomness=randomness)

    def batched_forward(p, b, x):
        pred = batched(p, b, x)
        return pred.unsqueeze(-1) if pred.dim() == 2 else pred

    per_example_grads = None
    if not aggregate.is_mean:
        per_example_grads = (_per_example_grad_fn(forward, names, delta) if erm is not None
                             else _objective_grad_fn(forward, objective, randomness))
    optimizer.start(params, lr)
    history = torch.zeros(K, epochs, dtype=X.dtype, device=X.device)
    record = [] if record_every else None
    step, ran = 0, epochs
    if record is not None:
        record.append({k: v.detach().clone() for k, v in params.items()})

    for e in range(epochs):
        order = _epoch_order(perms, e).to(X.device)
        Xe, Ye = _gather(X, order), _gather(Y, order)
        total = history[:, e]
        for s in range(0, n, batch_size):
            Xb, Yb = Xe[:, s:s + batch_size], Ye[:, s:s + batch_size]
            per = objective(batched_forward, params, buffers, Xb, Yb)
            # Models are independent: the gradient of the sum of their mean losses is each one's own.
            if per_example_grads is None:
                grads = dict(zip(params, torch.autograd.grad(per.mean(1).sum(), list(params.values()))))
            else:
                detached = {k: v.detach() for k, v in params.items()}
                G = per_example_grads(detached, buffers, Xb, Yb)
                grads = {k: aggregate(G[k]) for k in params}
            with torch.no_grad():
                optimizer.step(params, grads)
                total += per.detach().sum(1)
            if step == 0:  # the loss at the starting parameters (first minibatch): divergence's reference
                start = total / Xb.shape[1]
            step += 1
            if step_hook is not None:
                with torch.no_grad():
                    step_hook(step, params)
            if record is not None and step % record_every == 0:
                record.append({k: v.detach().clone() for k, v in params.items()})
        total.div_(n)
        if not bool(torch.isfinite(total).all()):
            break  # stop early: the caller reports the diverged models (the others never do)
        if _stop(callback, e, params, history):
            ran = e + 1
            break

    params = {k: v.detach() for k, v in params.items()}
    trajectory = steps = None
    if record is not None:
        trajectory = {k: torch.stack([r[k] for r in record]) for k in params}
        steps = torch.arange(len(record)) * record_every
    return params, (history if ran == epochs else history[:, :ran].clone()), trajectory, steps, start


def _objective_grad_fn(forward, objective, randomness="error"):
    """Per-example gradients (K, B, ...) of any torch.func-compatible objective: vmap(vmap(grad))."""
    batched = torch.func.vmap(forward, randomness=randomness)

    def batched_forward(p, b, x):
        pred = batched(p, b, x)
        return pred.unsqueeze(-1) if pred.dim() == 2 else pred

    def one(p, b, x, t):
        lift = lambda d: {k: v.unsqueeze(0) for k, v in d.items()}  # noqa: E731 (a model of K = 1)
        return objective(batched_forward, lift(p), lift(b), x[None, None], t[None, None]).sum()

    per_model = torch.func.vmap(torch.func.grad(one), in_dims=(None, None, 0, 0), randomness=randomness)
    return torch.func.vmap(per_model, in_dims=(0, 0, 0, 0), randomness=randomness)
