"""Input checks and divergence reports shared by the two trainers."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .. import validate
from ..errors import DivergenceError
from . import losses

# Divergence: training that ends with a mean epoch loss above GROWTH times the loss at its start (the
# first minibatch's, at the initial parameters) has diverged, even while every number is still finite.
GROWTH = 1e3


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


def _check_index(k, K):
    if isinstance(k, bool) or not hasattr(k, "__index__") or not -K <= int(k) < K:
        raise ValueError(f"k must be a model index in [0, {K - 1}], got {k!r}")
    return int(k)


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
    if model in ("linear", "spec") and hidden:
        raise ValueError(f"hidden must be () for the {'linear model' if model == 'linear' else 'model spec (its layers say)'}"
                         f", got {hidden!r}")
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


