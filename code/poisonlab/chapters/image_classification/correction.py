"""Patrini et al.'s forward loss correction against target-class and pair flips, on softmax regression: the
same SGD as the chapter's sweeps (zero start, constant step, shuffled minibatches), with the cross-entropy of
the noisy labels taken through the flip matrix C, known (the attack's definition) or estimated from anchor
points of the uncorrected model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ... import defenses, validate
from ...lab.profile import get_profile
from ...train import losses
from . import theory
from .pipeline import make_data, poison, seeds_of
from .sweeps import CHAPTER, _resolve, class_share, summarize

CORRECTIONS = ("none", "known C", "anchor C")


def train_softmax(X, Y, K: int, C=None, *, epochs: int, lr: float, batch_size: int, seeds) -> torch.Tensor:
    """G softmax regressions trained together by minibatch SGD from zero: X (G, n, d), Y (G, n) noisy labels,
    C None (plain cross-entropy) or (G, K, K) flip matrices (forward-corrected); one shuffle generator per
    model from `seeds`. Returns theta = [W, b], (G, K, d + 1)."""
    epochs, batch_size = validate.positive_int("epochs", epochs), validate.positive_int("batch_size", batch_size)
    lr = validate.positive("lr", lr)
    X = torch.as_tensor(X, dtype=torch.float64)
    Y = torch.as_tensor(Y).long()
    G, n, d = X.shape
    if Y.shape != (G, n):
        raise ValueError(f"Y must have shape (G, n) = ({G}, {n}), got {tuple(Y.shape)}")
    seeds = list(seeds)
    if len(seeds) != G:
        raise ValueError(f"seeds must hold one seed per model ({G}), got {len(seeds)}")
    Xa = torch.cat([X, torch.ones(G, n, 1, dtype=X.dtype)], -1)
    theta = torch.zeros(G, K, d + 1, dtype=X.dtype, requires_grad=True)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    rows = torch.arange(G)[:, None]
    for _ in range(epochs):
        perm = torch.stack([torch.randperm(n, generator=g) for g in gens])
        for start in range(0, n, batch_size):
            idx = perm[:, start:start + batch_size]
            logits = Xa[rows, idx] @ theta.transpose(1, 2)
            if C is None:
                loss = losses.per_example("ce", logits, Y[rows, idx])
            else:
                loss = torch.stack([losses.forward_corrected_ce(logits[g], Y[g, idx[g]], C[g]) for g in range(G)])
            grad, = torch.autograd.grad(loss.mean(1).sum(), theta)
            with torch.no_grad():
                theta -= lr * grad
    return theta.detach()


def _accuracy(theta, X, y) -> np.ndarray:
    Xa = torch.cat([X, torch.ones(*X.shape[:-1], 1, dtype=X.dtype)], -1)
    return (Xa @ theta.transpose(1, 2)).argmax(-1).eq(y).double().mean(1).numpy()


def correction_runs(flips, alphas, seeds, *, epochs: int, lr: float, batch_size: int,
                    quantile: float = 0.97) -> pd.DataFrame:
    """Per (flip, alpha, seed, correction): test accuracy, accuracy recovered against no correction (same seed),
    and the largest entry error max |C_used - C_known| of the flip matrix used. Pair flips: alpha capped at 90%
    of the pair's smallest share over the seeds, as in the defences' sweeps."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    pair_max = 0.9 * class_share((1, 7), seeds)
    cases = [(f, round(min(a, pair_max), 4) if f == "pair" else float(a), s)
             for f in flips for a in sorted(set(alphas)) for s in seeds]
    X, Y, Xt, yt, C_known = [], [], [], [], []
    for flip, alpha, s in cases:
        config = _resolve(s, flip=flip, alpha=alpha)
        clean = make_data(config)
        noisy = poison(config, clean)
        K = len(clean.classes)
        shares = torch.bincount(clean.y_train, minlength=K).double() / clean.n_train
        X.append(noisy.X_train.reshape(clean.n_train, -1).double())
        Y.append(noisy.y_train)
        Xt.append(clean.X_test.reshape(clean.n_test, -1).double())
        yt.append(clean.y_test)
        C_known.append(torch.as_tensor(theory.flip_matrix(flip, alpha, shares.numpy(), config["target_class"],
                                                          tuple(config["pair"]))))
    X, Y, Xt, yt, C_known = map(torch.stack, (X, Y, Xt, yt, C_known))
    kw = dict(epochs=epochs, lr=lr, batch_size=batch_size, seeds=[seeds_of(s)["model"] for _, _, s in cases])
    plain = train_softmax(X, Y, K, **kw)
    noisy_probs = torch.softmax(torch.cat([X, torch.ones(*X.shape[:-1], 1, dtype=X.dtype)], -1)
                                @ plain.transpose(1, 2), -1)
    C_anchor = torch.stack([defenses.anchor_flip_matrix(p, quantile) for p in noisy_probs])
    used = {"none": torch.eye(K, dtype=X.dtype).expand_as(C_known), "known C": C_known, "anchor C": C_anchor}
    thetas = {"none": plain, "known C": train_softmax(X, Y, K, C_known, **kw),
              "anchor C": train_softmax(X, Y, K, C_anchor, **kw)}
    frames = []
    base = _accuracy(plain, Xt, yt)
    for name in CORRECTIONS:
        acc = _accuracy(thetas[name], Xt, yt)
        err = (used[name] - C_known).abs().amax((1, 2)).numpy()
        frames.append(pd.DataFrame({"flip": [c[0] for c in cases], "alpha": [c[1] for c in cases],
                                    "seed": [c[2] for c in cases], "correction": name, "test_accuracy": acc,
                                    "recovered": acc - base, "C_error": err}))
    return pd.concat(frames, ignore_index=True)


def correction_summary(profile=None) -> pd.DataFrame:
    """correction_runs against target-class and pair flips at the defences' alphas and repeats (softmax
    regression, the sweeps' epochs, step and batch size), summarised per flip, alpha and correction."""
    profile, S = get_profile(profile), CHAPTER.sizes(profile)
    HP = _resolve()

    def compute():
        runs = correction_runs(("target-class", "pair"), S.defense_alphas["linear"], range(S.defense_repeats),
                               epochs=S.epochs["linear"], lr=HP["lr"], batch_size=S.batch_size["linear"])
        return summarize(runs, ["flip", "alpha", "correction"], ["test_accuracy", "recovered", "C_error"])
    return CHAPTER.memo(("correction", profile.name), compute)
