"""The evasion chapter's computations that are not sweeps of the experiment: the binary linear model's exact
attack, the optimal attack on softmax regression, the minimal budgets, examples, Lipschitz bounds and what
temperature does to the gradient."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ... import data, train
from ...attacks import evasion
from ...lab.profile import get_profile
from ...models import lipschitz
from . import theory
from .experiment import EXPERIMENT, min_budgets
from .pipeline import IN_SHAPE, MODELS, predictions, repeat, seeds_of, split, train_models
from .sweeps import CHAPTER, base, sweep

PAIR = (3, 7)  # the binary task of the exact law


def configs_of(name: str, profile=None, **where) -> list[dict]:
    """The configurations of sweep `name` at one grid point (`where`, e.g. eps=0.1), one per seed."""
    result = sweep(name, profile)
    return [c for c in result.configs if all(c[k] == v for k, v in where.items())]


def trained(name: str, profile=None, **where):
    """pipeline.Trained: the models of sweep `name` at one grid point (one per seed), from the cache."""
    return train_models(configs_of(name, profile, **where) or _missing(name, where))


def _missing(name, where):
    raise ValueError(f"sweep {name} has no configuration with {where}")


def attacked(profile=None, model: str = "mlp"):
    """The attacked test images (X, y) of `model`'s sweeps: the first n_test of MNIST's test set."""
    n = CHAPTER.sizes(profile).n_test[model]
    X, y = split("test")
    return X[:n], y[:n]


class _Binary(nn.Module):
    """A binary linear model z = w . x + b as the two logits (0, z): cross-entropy is then the logistic loss, and
    attacks.evasion attacks it unchanged."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w.reshape(-1), b.reshape(())

    def forward(self, x):
        z = x.reshape(len(x), -1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


def _binary_data(seed: int, n_train: int):
    X, y = split("train")
    keep = (y == PAIR[0]) | (y == PAIR[1])
    X, y = X[keep], (y[keep] == PAIR[1]).long()
    idx = data.stratified_subset(y, n_train, seed=seeds_of(seed)["data"])
    return X[idx], y[idx]


def binary_linear(profile=None) -> pd.DataFrame:
    """Logistic regression of 3 vs 7 (R repeats on stratified subsets, SGD), attacked by FGSM on every 3 and 7 of
    the test set: per repeat and eps the measured accuracy drop, the predicted one (theory.linear_flipped_fraction
    with the box) and the rival's (without the box: a point falls iff its margin < eps ||w||_1)."""
    profile = get_profile(profile)
    S = CHAPTER.sizes(profile)

    def compute():
        R = S.repeats
        sets = [_binary_data(s, S.binary_n_train) for s in range(R)]
        X = torch.stack([s[0] for s in sets])
        y = torch.stack([s[1] for s in sets]).unsqueeze(-1).float()
        model = train.train_batched(X, y, model="linear", loss="bce", epochs=10, lr=0.1, batch_size=64,
                                    seeds=[seeds_of(s)["model"] for s in range(R)], out_dim=1, in_shape=IN_SHAPE)
        Xt, yt = split("test")
        keep = (yt == PAIR[0]) | (yt == PAIR[1])
        Xt, yt = Xt[keep], (yt[keep] == PAIR[1]).long()
        sign = 2.0 * yt - 1
        rows = []
        for k in range(R):
            w, b = model.W[k, 0], model.b[k, 0]
            net = _Binary(w, b)
            acc0 = evasion.accuracy(net, Xt, yt)
            advs = evasion.fgsm_budgets(net, Xt, yt, S.eps_inf)
            predicted = theory.linear_flipped_fraction(Xt, w, b, sign, S.eps_inf)
            rival = theory.linear_flipped_fraction(Xt, w, b, sign, S.eps_inf, box=None)
            for e, eps in enumerate(S.eps_inf):
                rows.append({"seed": k, "eps": eps, "clean_accuracy": acc0,
                             "drop": acc0 - evasion.accuracy(net, advs[e], yt),
                             "predicted": predicted[e], "no_box": rival[e], "w_l1": float(w.abs().sum())})
        return pd.DataFrame(rows)
    return CHAPTER.memo(("binary-linear", profile.name), compute)


def softmax_optimal(profile=None) -> pd.DataFrame:
    """Softmax regression (the fgsm-linear sweep's models): per repeat and eps, the fraction of attacked images
    FGSM fools (among all attacked) against the fraction the optimal L_inf attack fools
    (theory.softmax_optimal_fooled, exact for a linear model)."""
    profile = get_profile(profile)

    def compute():
        S = CHAPTER.sizes(profile)
        runs = sweep("fgsm-linear", profile).rows
        model = trained("fgsm-linear", profile, eps=S.eps_inf[0])
        X, y = attacked(profile, "linear")
        rows = []
        for k in range(model.K):
            W, b = model.params["weight"][k], model.params["bias"][k]
            seed = sorted(runs.seed.unique())[k]
            for eps in S.eps_inf:
                run = runs[(runs.seed == seed) & (runs.eps == eps)].iloc[0]
                optimal = theory.softmax_optimal_fooled(X, y, W, b, eps)
                rows.append({"seed": seed, "eps": eps, "fgsm": 1 - run.adversarial_accuracy,
                             "optimal": float(optimal.double().mean())})
        return pd.DataFrame(rows)
    return CHAPTER.memo(("softmax-optimal", profile.name), compute)


def budgets(model: str, norm: str, profile=None) -> np.ndarray:
    """The minimal budgets (pooled over repeats; inf: not fooled within max_budget) of the source's attack on
    `model` in norm p, over the first budget_images test images classified correctly."""
    configs = configs_of(f"lp{norm}-{model}", profile)
    first = [c for c in configs if c["eps"] == configs[0]["eps"]]
    found = min_budgets(first)
    X, y = split("test")
    module = train_models(first).module()
    b = first[0]["budget_images"]
    right = predictions(module, repeat(X[:b], module.K)).reshape(module.K, -1) == y[:b]
    return found[right].numpy()


def examples(model: str = "cnn", norm: str = "2", budget: float = 2.0, n: int = 6, profile=None) -> dict:
    """The source's attack on the first n correctly classified test images of `model` (its first repeat):
    images, perturbations, adversarial images, old and new labels, success."""
    S = CHAPTER.sizes(profile)
    config = EXPERIMENT.resolve(**base(S, model), attack="lp-descent", norm=norm, eps=budget, steps=50, seed=0)
    net = train_models([config]).module()
    X, y = split("test")
    X, y = X[:200], y[:200]
    right = predictions(net, X) == y
    X, y = X[right][:n], y[right][:n]
    adv, ok = evasion.lp_descent(net, X, y, budget, norm=norm, steps=50)
    return {"X": X[:, 0].numpy(), "delta": (adv - X)[:, 0].numpy(), "adv": adv[:, 0].numpy(), "old": y.tolist(),
            "new": predictions(net, adv).tolist(), "success": ok.tolist()}


def lipschitz_table(profile=None) -> pd.DataFrame:
    """Per model and repeat: the product of the layers' spectral norms (the L2 Lipschitz bound) against the
    largest ratio ||f(x') - f(x)||_2 / ||x' - x||_2 that PGD-L2 points x' (eps = 1, 10 steps) reach over the
    first lipschitz_images test images, and their ratio (how loose the bound is)."""
    profile = get_profile(profile)

    def compute():
        S = CHAPTER.sizes(profile)
        X, y = split("test")
        X, y = X[:S.lipschitz_images], y[:S.lipschitz_images]
        rows = []
        for m in MODELS:
            model = trained(f"fgsm-{m}", profile, eps=S.eps_inf[0])
            for k in range(model.K):
                net = model.spec.sequential({n: v[k] for n, v in model.params.items()}).eval()
                adv = evasion.pgd(net, X, y, 1.0, steps=10, step_size=0.25, norm="2")
                moved = (adv - X).reshape(len(X), -1).norm(dim=1) > 0
                observed = float(lipschitz.sensitivity(net, X[moved], adv[moved]).max())
                bound = lipschitz.lipschitz_bound(net, IN_SHAPE, iters=100)
                depth = sum(1 for _ in lipschitz.layer_norms(net, IN_SHAPE, iters=5))
                rows.append({"model": m, "seed": k, "layers": depth, "bound": bound, "observed": observed,
                             "looseness": bound / observed})
        return pd.DataFrame(rows)
    return CHAPTER.memo(("lipschitz", profile.name), compute)


def gradients(profile=None) -> pd.DataFrame:
    """Per training temperature and repeat (the temperature sweep's MLPs, attacker ignoring T): the fraction of
    attacked images whose input gradient is exactly zero, measured (the sweep's metric) and predicted from the
    logit gaps (theory: zero iff every gap z_y - z_k exceeds zero_gradient_margin, y predicted), with the
    median logit gap."""
    profile = get_profile(profile)

    def compute():
        S = CHAPTER.sizes(profile)
        runs = sweep("temperature-fgsm-ignored", profile).rows
        X, y = attacked(profile, "mlp")
        rows = []
        for T in S.temperatures:
            model = trained("temperature-fgsm-ignored", profile, temperature=T)
            module = model.module()
            with torch.no_grad():
                z = module(repeat(X, model.K)).double().reshape(model.K, len(X), -1)
            top = z.gather(2, y.reshape(1, -1, 1).expand(model.K, -1, 1))
            gaps = (top - z).masked_fill(torch.nn.functional.one_hot(y, z.shape[-1]).bool(), float("inf"))
            smallest = gaps.amin(2)  # (K, n): the margin of the true class (negative: misclassified)
            predicted = (smallest > theory.zero_gradient_margin()).double().mean(1)
            seeds = sorted(runs.seed.unique())
            for k in range(model.K):
                run = runs[(runs.seed == seeds[k]) & (runs.temperature == T)].iloc[0]
                rows.append({"temperature": T, "seed": seeds[k], "measured": run.grad_zero_fraction,
                             "predicted": float(predicted[k]), "median_margin": float(smallest[k].median())})
        return pd.DataFrame(rows)
    return CHAPTER.memo(("gradients", profile.name), compute)
