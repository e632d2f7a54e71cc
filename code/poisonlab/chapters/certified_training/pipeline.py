"""The stages of `run certified`: the source's fully connected network (784-100-100-100-10, its depth and width
open) and the evasion chapter's CNN; their cached batched training (normal, PGD adversarial, interval bound
propagation on a warm-up and ramp of eps); certified bounds (IBP, CROWN) and the PGD attack on the same images."""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from ... import train
from ...lab import cache
from ...models import bounds
from ...models.spec import Flatten, Linear, ReLU, Spec
from ..evasion.pipeline import CLASSES, Stacked, predictions, repeat, seeds_of, split, train_subset
from ..evasion.pipeline import spec_of as evasion_spec

MODELS = ("mlp4", "cnn")
TRAININGS = ("normal", "pgd", "ibp")
BOUNDS = ("ibp", "crown")
DEPTH, WIDTH = 3, 100  # the source's hidden layers: 784-100-100-100-10
# what a trained model depends on (the cache key of its parameters)
TRAINING = ("model", "depth", "width", "train", "eps_train", "warmup", "rampup", "kappa", "robust_logits",
            "train_steps", "epochs", "lr", "batch_size", "n_train", "seed")
CHUNK = 2000  # rows per bound pass: the CNN's interval activations of K models stay within memory


def spec_of(model: str, depth: int = DEPTH, width: int = WIDTH) -> Spec:
    """mlp4: 784, then `depth` hidden ReLU layers of `width` units, then 10 (the source's 784-100-100-100-10 by
    default); cnn: the evasion chapter's (two 5 x 5 convolutions, max-pooling)."""
    if model == "cnn":
        return evasion_spec("cnn")
    widths = [784, *[width] * depth, CLASSES]
    layers = [Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        layers.append(Linear(a, b, name=f"fc{i}"))
        if i < len(widths) - 1:
            layers.append(ReLU())
    return Spec(layers, name=f"mlp{depth + 1}-{width}")


def steps_per_epoch(config: dict) -> int:
    return math.ceil((config["n_train"] or 50_000) / config["batch_size"])


def objective(config: dict, spec: Spec):
    """Cross-entropy (normal), at PGD points (pgd), or IBP's mix of the cross-entropy and the robust one (ibp), with
    the step hook that ramps IBP's eps (train.Ramp: `warmup` epochs at 0, then linear over `rampup` epochs)."""
    if config["train"] == "pgd":
        return train.PGD(config["eps_train"], config["train_steps"], base=train.ERM("ce")), None
    if config["train"] == "ibp":
        ibp = train.IBP(spec, config["eps_train"], kappa=config["kappa"], elide=config["robust_logits"] == "elided")
        spe = steps_per_epoch(config)
        return ibp, train.Ramp(ibp, config["eps_train"], config["warmup"] * spe, config["rampup"] * spe)
    return None, None


class Trained:
    """K models of one architecture trained together: stacked parameters, the time per epoch, clean test accuracy."""

    def __init__(self, spec: Spec, params: dict, seconds_per_epoch: float, history: Tensor):
        self.spec, self.params, self.seconds_per_epoch, self.history = spec, params, seconds_per_epoch, history

    @property
    def K(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def module(self) -> Stacked:
        return Stacked(self.spec, self.params)

    def one(self, k: int) -> dict:
        return {name: v[k] for name, v in self.params.items()}


def train_models(configs: list[dict]) -> Trained:
    """The models of `configs` (equal in everything but the seed), trained as one batch; cached by their training
    settings and the source."""
    keys = [{k: c[k] for k in TRAINING} for c in configs]
    c0 = configs[0]
    spec = spec_of(c0["model"], c0["depth"], c0["width"])

    def compute():
        subsets = [train_subset(c["n_train"], c["seed"]) for c in configs]
        X, y = torch.stack([s[0] for s in subsets]), torch.stack([s[1] for s in subsets])
        goal, hook = objective(c0, spec)
        start = time.perf_counter()
        model = train.train_batched(
            X, y, model=spec, loss="ce", epochs=c0["epochs"], lr=c0["lr"], batch_size=c0["batch_size"],
            seeds=[seeds_of(c["seed"])["model"] for c in configs], out_dim=CLASSES, optimizer=train.Adam(),
            objective=goal, configs=configs, step_hook=hook)
        seconds = (time.perf_counter() - start) / c0["epochs"]
        return {**{f"param.{k}": v for k, v in model.params.items()},
                "seconds_per_epoch": torch.tensor([seconds], dtype=torch.float64), "history": model.history.double()}

    state = cache.tensors("certified", keys, compute)
    params = {k[len("param."):]: v for k, v in state.items() if k.startswith("param.")}
    return Trained(spec, params, float(state["seconds_per_epoch"][0]), state["history"])


def margins(trained: Trained, X: Tensor, y: Tensor, eps: float, bound: str = "ibp") -> Tensor:
    """(K, n, classes) lower bounds of z_y - z_k of each model over the clipped L_inf ball of radius eps around
    each image: IBP with the last layer folded in (Gowal et al.), or CROWN (Flatten/Linear/ReLU networks)."""
    out = []
    for s in range(0, len(y), CHUNK):
        Xc, yc = X[s:s + CHUNK], y[s:s + CHUNK]
        with torch.no_grad():
            if bound == "ibp":
                m = torch.func.vmap(lambda p: bounds.margin_bounds(trained.spec, p, Xc, yc, eps))(trained.params)
            else:
                from ...models import crown

                m = torch.stack([crown.crown_margins(trained.spec, trained.one(k), Xc, yc, eps)
                                 for k in range(trained.K)])
        out.append(m)
    return torch.cat(out, 1)


def logit_width(trained: Trained, X: Tensor, eps: float, bound: str = "ibp") -> Tensor:
    """(K,) mean over images and classes of the width hi - lo of each model's logit bounds over the ball."""
    out = []
    for s in range(0, len(X), CHUNK):
        Xc = X[s:s + CHUNK]
        with torch.no_grad():
            if bound == "ibp":
                lo, hi = torch.func.vmap(lambda p: bounds.logit_bounds(trained.spec, p, Xc, eps))(trained.params)
            else:
                from ...models import crown

                lo, hi = (torch.stack(t) for t in zip(*[crown.crown_logit_bounds(trained.spec, trained.one(k), Xc, eps)
                                                        for k in range(trained.K)]))
        out.append((hi - lo).double().mean(-1))
    return torch.cat(out, 1).mean(1)


def clean_accuracy(trained: Trained, X: Tensor, y: Tensor) -> Tensor:
    """(K,) accuracy of each model on X, y."""
    K = trained.K
    return (predictions(trained.module(), repeat(X, K)).reshape(K, -1) == y).double().mean(1)


def test_images(n: int) -> tuple[Tensor, Tensor]:
    X, y = split("test")
    return X[:n], y[:n]
