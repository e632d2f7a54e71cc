"""The Dataset container, seeded generators and the train/test split shared by every data source.

Sizes: `n` is the size of the whole data set; the split keeps n_test = round(test_fraction * n)
points for testing (Python's `round`, so ties go to the even integer) and n_train = n - n_test.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .. import validate


@dataclass
class Dataset:
    """A train/test split with the true parameters that generated it and the poison mask."""

    X_train: Tensor
    y_train: Tensor
    X_test: Tensor
    y_test: Tensor
    params: dict = dataclasses.field(default_factory=dict)
    mask: Tensor | None = None  # bool (n_train,), True where poisoned; None when clean
    classes: list[str] | None = None

    def replace(self, **changes) -> "Dataset":
        """A copy with some fields replaced (the tensors themselves are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def save(self, path, *, params=None, config: dict | None = None, **extra) -> None:
        """Write the tensors, the mask and the numeric true parameters to a .npz file named `path` as given.

        Keys X_train, y_train, X_test, y_test, mask; param_<name> for each tensor/number in params, or,
        with `params` (names), those parameters under their own names; classes (when known); `config`
        (a dict, e.g. the CLI run's parameters) as JSON under "config"; each of `extra` (tensors, arrays
        or numbers) under its own name.
        """
        arrays = {name: getattr(self, name).detach().cpu().numpy()
                  for name in ("X_train", "y_train", "X_test", "y_test")}
        arrays["mask"] = self.poisoned.cpu().numpy()
        names = {key: f"param_{key}" for key in self.params} if params is None else {key: key for key in params}
        for key, name in names.items():
            value = self.params[key]
            if isinstance(value, Tensor):
                arrays[name] = value.detach().cpu().numpy()
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                arrays[name] = np.asarray(value)
        if self.classes is not None:
            arrays["classes"] = np.asarray(self.classes, dtype=str)
        for key, value in extra.items():
            arrays[key] = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        if config is not None:
            arrays["config"] = np.array(json.dumps({k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in config.items()}))
        with open(path, "wb") as f:  # a file object: numpy would otherwise append .npz to the name
            np.savez(f, **arrays)

    @property
    def n_train(self) -> int:
        """Number of training points."""
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test points."""
        return int(self.X_test.shape[0])

    @property
    def poisoned(self) -> Tensor:
        """The poison mask, all False for a clean data set."""
        if self.mask is None:
            return torch.zeros(self.n_train, dtype=torch.bool)
        return self.mask





def generator(seed) -> torch.Generator:
    """A CPU generator seeded with `seed` (a whole number, numpy integers included)."""
    if isinstance(seed, np.integer):
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be a whole number, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def _tensor(name: str, value, dtype=torch.float32) -> Tensor:
    """`value` as a finite tensor of `dtype`, or a ValueError naming `name`."""
    try:
        t = torch.as_tensor(value, dtype=dtype).clone()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be numeric (array-like), got {value!r}") from None
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must contain finite numbers only")
    return t


def train_size(n: int, test_fraction: float = 0.2) -> int:
    """Training points of a data set of n points split by `split`: n - round(test_fraction * n)."""
    return n - round(test_fraction * n)


def _test_size(n: int, test_fraction: float) -> int:
    """round(test_fraction * n), the number of test points; both parts must be non-empty."""
    n_test = round(test_fraction * n)
    if n - n_test < 1 or (test_fraction > 0 and n_test < 1):
        raise ValueError(f"n must be large enough that train and test sets are non-empty "
                         f"(test_fraction={test_fraction}); got n={n}")
    return n_test


def split(X: Tensor, y: Tensor, test_fraction: float = 0.2, *, generator: torch.Generator):
    """A random split into (X_train, y_train, X_test, y_test) with round(test_fraction * n) test points."""
    test_fraction = validate.fraction("test_fraction", test_fraction)
    if test_fraction == 1.0:
        raise ValueError("test_fraction must be in [0, 1), got 1.0")
    n = int(X.shape[0])
    if int(y.shape[0]) != n:
        raise ValueError(f"y must have as many rows as X ({n}), got {int(y.shape[0])}")
    n_test = _test_size(n, test_fraction)
    perm = torch.randperm(n, generator=generator)
    train, test = perm[: n - n_test], perm[n - n_test:]
    return X[train], y[train], X[test], y[test]


def stack(datasets, part="train"):
    """The training sets (or `part="test"`) of K data sets as X (K, n, ...), y (K, n, ...); same n required."""
    part = validate.choice("part", part, ("train", "test"))
    datasets = list(datasets)
    if not datasets:
        raise ValueError("datasets must be a non-empty list of Dataset")
    Xs = [getattr(ds, f"X_{part}") for ds in datasets]
    ys = [getattr(ds, f"y_{part}") for ds in datasets]
    shapes = {(tuple(X.shape), tuple(y.shape)) for X, y in zip(Xs, ys)}
    if len(shapes) != 1:
        raise ValueError(f"datasets must all have the same shapes (same n); got {sorted(shapes)}")
    return torch.stack(Xs), torch.stack(ys)
