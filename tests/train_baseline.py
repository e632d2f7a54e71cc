"""Reference runs of train_batched recorded with the closed trainer (train.py before the train/ package).

`python tests/train_baseline.py` rewrites tests/data/train_baseline.pt from the code in place; it was run
once on the commit before the package replaced train.py. test_train_open checks that today's trainer gives
the same tensors bit for bit (torch.equal) on every run below.
"""
from __future__ import annotations

import pathlib

import torch

from poisonlab import train

PATH = pathlib.Path(__file__).parent / "data" / "train_baseline.pt"


def _data(K, n, d, m=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, n, d, generator=g)
    W = torch.randn(K, m, d, generator=g)
    y = X @ W.transpose(1, 2) + 0.5 + 0.3 * torch.randn(K, n, m, generator=g)
    return X, y


def runs() -> dict:
    """name -> (params, history, trajectory or None) of a few train_batched runs covering each path."""
    out = {}
    X, y = _data(5, 47, 4)
    out["linear-mse"] = train.train_batched(X, y, epochs=4, lr=[0.01, 0.05, 0.1, 0.02, 0.03], batch_size=8,
                                            seeds=[0, 1, 2, 1, 7], record_every=5)
    X2, y2 = _data(4, 33, 3, m=2, seed=1)
    out["linear-mixed"] = train.train_batched(X2, y2, loss=["mse", "huber", "l1", "huber"], delta=[1.0, 0.5, 1.0, 2.0],
                                              epochs=3, lr=0.05, batch_size=6, seeds=[3, 4, 5, 6])
    out["linear-generic"] = train.train_batched(X2, y2, loss="huber", epochs=2, lr=0.05, batch_size=6,
                                                seeds=[3, 4, 5, 6], _path="generic")
    yb = (X[..., 0] > 0).float()
    out["logistic"] = train.train_batched(X, yb, loss="bce", epochs=3, lr=0.2, batch_size=10, seeds=[0, 1, 2, 3, 4])
    yc = (X[..., 0] > 0).long() + (X[..., 1] > 0).long()
    out["softmax"] = train.train_batched(X, yc, loss="ce", epochs=3, lr=0.2, batch_size=10, seeds=[0, 1, 2, 3, 4])
    out["linear-median"] = train.train_batched(X, y, aggregate="median", epochs=2, lr=0.05, batch_size=8,
                                               seeds=[0, 1, 2, 3, 4])
    out["linear-trimmed"] = train.train_batched(X, y, aggregate="trimmed-mean", trim=0.2, epochs=2, lr=0.05,
                                                batch_size=8, seeds=[0, 1, 2, 3, 4])
    out["mlp"] = train.train_batched(X, y, model="mlp", hidden=(6, 5), epochs=3, lr=0.05, batch_size=8,
                                     seeds=[0, 1, 2, 3, 4], record_every=7)
    out["mlp-trimmed"] = train.train_batched(X, y, model="mlp", hidden=(6,), aggregate="trimmed-mean", trim=0.1,
                                             epochs=2, lr=0.05, batch_size=8, seeds=[0, 1, 2, 3, 4])
    out["mlp-median-bce"] = train.train_batched(X, yb, model="mlp", hidden=(4,), loss="bce", aggregate="median",
                                                epochs=2, lr=0.1, batch_size=8, seeds=[0, 1, 2, 3, 4])
    g = torch.Generator().manual_seed(2)
    Xi, yi = torch.randn(2, 14, 1, 6, 6, generator=g), torch.randint(0, 3, (2, 14), generator=g)
    out["cnn"] = train.train_batched(Xi, yi, model="cnn", hidden=(3, 4), loss="ce", epochs=2, lr=0.1, batch_size=5,
                                     seeds=[0, 1], out_dim=3)
    out["mlp-images"] = train.train_batched(Xi, yi, model="mlp", hidden=(5,), loss="ce", epochs=2, lr=0.1,
                                            batch_size=5, seeds=[0, 1], out_dim=3)
    first = out["linear-mse"]
    out["linear-continued"] = train.train_batched(X, y + 1, epochs=2, lr=0.05, batch_size=8, seeds=[9, 8, 7, 6, 5],
                                                  init=first)
    return {name: _tensors(fit) for name, fit in out.items()}


def _tensors(fit) -> dict:
    t = {"history": fit.history, **{f"param.{k}": v for k, v in fit.params.items()}}
    if fit.trajectory is not None:
        t.update({f"trajectory.{k}": v for k, v in fit.trajectory.items()})
        t["trajectory_steps"] = fit.trajectory_steps
    return t


if __name__ == "__main__":
    PATH.parent.mkdir(exist_ok=True)
    torch.save(runs(), PATH)
    print(f"wrote {PATH} ({PATH.stat().st_size} bytes)")
