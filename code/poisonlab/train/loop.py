"""The readable trainer: one model, the loop of the PyTorch optimisation tutorial (DataLoader, optimiser, loss).

The objective and optimiser objects of the batched trainer plug in here too: an objective sees this
model as K = 1 stacked model (inputs (1, B, ...)), an optimiser gives its torch.optim namesake.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from . import losses
from ..errors import DivergenceError
from . import optim
from .checks import GROWTH, _check_single, _diverged_single


@dataclass
class History:
    """What `train` records: mean training loss per epoch, steps taken, optional parameter snapshots."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    trajectory: list[dict] = field(default_factory=list)  # state dicts at trajectory_steps
    trajectory_steps: list[int] = field(default_factory=list)


def train(model: nn.Module, X: Tensor, y: Tensor, *, loss: str = "mse", epochs: int, lr: float,
          batch_size: int, seed: int, delta: float = 1.0, record_every: int | None = None,
          objective=None, optimizer=None, callback=None) -> History:
    """Train `model` in place by minibatch SGD, as in the PyTorch optimisation tutorial.

    objective(forward, params, buffers, Xb, Yb) -> (1, B) replaces the loss (see objectives.py);
    optimizer: optim.SGD() (default), optim.SGD(momentum=...), optim.Adam(...);
    callback(epoch, params, history) after each epoch; a truthy return stops training.
    """
    y = _check_single(model, X, y, loss, epochs, lr, batch_size, seed, delta, record_every)
    dataset = TensorDataset(X, y)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    loss_fn = losses.module(loss, delta)  # e.g. nn.MSELoss()
    optimizer = optim.resolve(optimizer).torch(model.parameters(), lr)  # e.g. torch.optim.SGD(..., lr=lr)
    history = History()
    if record_every:
        history.trajectory.append(_snapshot(model))
        history.trajectory_steps.append(0)

    model.train()
    for epoch in range(epochs):
        total = 0.0
        for Xb, yb in loader:
            if objective is None:
                pred = model(Xb)
                if loss != "ce":
                    pred = pred.reshape(yb.shape)  # (B, 1) outputs against (B,) labels
                batch_loss = loss_fn(pred, yb)
            else:
                batch_loss = _objective_loss(objective, model, Xb, yb, loss)

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
        if callback is not None:
            with torch.no_grad():
                if callback(epoch, dict(model.named_parameters()), history):
                    break

    if not all(torch.isfinite(p).all() for p in model.parameters()):
        _diverged_single(loss, lr, seed, batch_size, epochs - 1, history.steps)
    floor = 1e-6 if loss in ("ce", "bce") else 1e-6 * (1.0 + float(y.double().square().mean()))
    if history.losses[-1] > GROWTH * max(start, floor):
        config = {"loss": loss, "lr": lr, "seed": seed, "batch_size": batch_size}
        raise DivergenceError(f"training diverged at lr {lr:g} (loss grew from {start:.3g} to "
                              f"{history.losses[-1]:.3g}, more than {GROWTH:g} times): {config}", [config],
                              name="lr", lr=float(lr), start=start, final=history.losses[-1])
    return history


def _objective_loss(objective, model, Xb, yb, loss):
    """The mean over the minibatch of objective(...) with this model seen as K = 1 stacked model."""
    params = {k: p.unsqueeze(0) for k, p in model.named_parameters()}
    buffers = {k: b.unsqueeze(0) for k, b in model.named_buffers()}

    def forward(p, b, x):
        out = torch.func.functional_call(model, ({k: v[0] for k, v in p.items()}, {k: v[0] for k, v in b.items()}),
                                         (x[0],)).unsqueeze(0)
        return out.unsqueeze(-1) if out.dim() == 2 else out

    Yb = yb[None] if loss == "ce" else yb.reshape(1, len(yb), -1)
    return objective(forward, params, buffers, Xb[None], Yb).mean()


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


