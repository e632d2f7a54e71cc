"""The orders in which DataLoader(shuffle=True) visits the examples, reproduced draw for draw."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .. import validate
from .checks import _check_seeds


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

def _gather(T: Tensor, order: Tensor) -> Tensor:
    """Row order[k] of T[k] for each model k: (K, n, ...) reordered along n."""
    K, n = order.shape
    rows = order + (torch.arange(K, device=order.device) * n).unsqueeze(1)  # one flat lookup: faster than 2-D fancy indexing
    return T.reshape(K * n, *T.shape[2:]).index_select(0, rows.reshape(-1)).reshape(T.shape)


