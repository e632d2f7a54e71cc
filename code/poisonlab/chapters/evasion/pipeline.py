"""The stages of `run evasion`: MNIST subsets, the five architectures, cached batched training (clean, at a
temperature, or adversarial), the K trained models as one module, and the attacks with their measures."""
from __future__ import annotations

import functools
import math
import time

import torch
from torch import Tensor, nn

from ... import data, train
from ...attacks import evasion
from ...lab import cache
from ...lab.experiment import seed_streams
from ...models.spec import Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Spec, Unflatten

IN_SHAPE = (1, 28, 28)
CLASSES = 10
HIDDEN = 128  # the MLPs' hidden width
CHANNELS = (8, 16)  # the CNNs' two 5 x 5 convolutions (LeNet's shape, narrower)
DROPOUT = 0.5
MODELS = ("linear", "mlp", "mlp-dropout", "cnn", "cnn-dropout")
ATTACKS = ("fgsm", "pgd", "lp-descent", "margin")
MAX_BUDGET = {"inf": 0.5, "2": 10.0, "1": 100.0}  # the bisection's upper end when --max-budget is not given
# attacked rows (models x budgets x images) per pass: bounds the CNNs' activations in memory; on 2 CPU cores PGD on
# 40,000 rows at once took twice as long as on 10,000 rows four times (the tensors of a large batch outgrow the
# caches; benchmarks/bench_evasion.py)
CHUNK = 10_000
# what a trained model depends on (the cache key of its parameters)
TRAINING = ("model", "temperature", "train_eps", "train_steps", "epochs", "lr", "batch_size", "n_train", "seed")


def spec_of(model: str) -> Spec:
    """The architecture `model` (MODELS) as a Spec for the batched trainer."""
    d = math.prod(IN_SHAPE)
    if model == "linear":
        return Spec.linear(d, CLASSES, IN_SHAPE)
    if model.startswith("mlp"):
        drop = [Dropout(DROPOUT)] if model.endswith("dropout") else []
        return Spec([Flatten(), Linear(d, HIDDEN, name="fc1"), ReLU(), *drop, Linear(HIDDEN, CLASSES, name="fc2")],
                    name=model)
    c1, c2 = CHANNELS
    side = ((IN_SHAPE[1] - 4) // 2 - 4) // 2
    drop = [Dropout(DROPOUT)] if model.endswith("dropout") else []
    return Spec([Unflatten(IN_SHAPE), Conv2d(1, c1, 5, name="conv1"), ReLU(), MaxPool2d(2),
                 Conv2d(c1, c2, 5, name="conv2"), ReLU(), MaxPool2d(2), Flatten(), *drop,
                 Linear(c2 * side * side, CLASSES, name="fc")], name=model)


def parameters(model: str) -> int:
    """The number of trained parameters of architecture `model`."""
    return sum(math.prod(s) for s in spec_of(model).shapes().values())


def seeds_of(seed: int) -> dict:
    """Independent seeds of one repeat: the training subset, the model (initialisation, shuffles, dropout),
    the attack's random starts."""
    return seed_streams(seed, 1_000_003, ("data", "model", "attack"))


@functools.lru_cache(maxsize=8)
def split(part: str, dataset: str = "mnist") -> tuple[Tensor, Tensor]:
    """MNIST's (or Fashion-MNIST's) part "train" (the first 50,000 official training images), "val" (the last
    10,000) or "test"."""
    ds = data.load(dataset, part)
    return ds.X, ds.y


@functools.lru_cache(maxsize=16)
def train_subset(n_train: int | None, seed: int, dataset: str = "mnist") -> tuple[Tensor, Tensor]:
    """The training images of one repeat: all 50,000, or a stratified subset of n_train drawn from its seed."""
    X, y = split("train", dataset)
    if n_train is None or n_train == len(y):
        return X, y
    keep = data.stratified_subset(y, n_train, seed=seeds_of(seed)["data"])
    return X[keep], y[keep]


def objective(config: dict):
    """The training objective: cross-entropy, of logits / T (Tempered), or at PGD points (train_eps > 0)."""
    if config["train_eps"] > 0:
        return train.PGD(config["train_eps"], config["train_steps"], base=train.ERM("ce"))
    if config["temperature"] != 1.0:
        return train.Tempered(config["temperature"])
    return None


class Trained:
    """K models of one architecture trained together: their stacked parameters, the time it took and their
    accuracies on the images trained on, the held-out images and the test set."""

    def __init__(self, spec: Spec, params: dict, seconds_per_epoch: float, history: Tensor, accuracy: dict):
        self.spec, self.params, self.seconds_per_epoch, self.history = spec, params, seconds_per_epoch, history
        self.accuracy = accuracy  # "train", "val", "test" -> (K,) accuracy of each model

    @property
    def K(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def module(self, ks=None) -> Stacked:
        """Models ks (default all) as one nn.Module over stacked inputs (Stacked)."""
        ks = list(range(self.K)) if ks is None else list(ks)
        return Stacked(self.spec, {k: v[ks] for k, v in self.params.items()})

    def single(self, k: int) -> nn.Module:
        """Model k as an nn.Module (Spec.module): for the Lipschitz bound, reference libraries and plots."""
        return self.spec.module({name: v[k] for name, v in self.params.items()})


class Stacked(nn.Module):
    """K models as one module: an input batch of K * n rows is K blocks of n, block k goes through model k.

    Every attack of attacks.evasion then runs on all K models at once: each example's loss depends on its own
    model only, and the attacks' steps are per example."""

    def __init__(self, spec: Spec, params: dict):
        super().__init__()
        self.spec, self.params = spec, {k: v.detach() for k, v in params.items()}
        self.K = next(iter(self.params.values())).shape[0]
        self._forward = torch.func.vmap(lambda p, x: spec.forward(p, x, False))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] % self.K:
            raise ValueError(f"x must hold K={self.K} blocks of equal size, got {x.shape[0]} rows")
        out = self._forward(self.params, x.reshape(self.K, -1, *x.shape[1:]))
        return out.reshape(-1, out.shape[-1])


def train_models(configs: list[dict]) -> Trained:
    """The models of `configs` (equal in everything but the seed), trained as one batch; cached by their
    training settings and the source, so that a re-render or another attack does not retrain them."""
    keys = [{k: c[k] for k in TRAINING} for c in configs]
    c0 = configs[0]
    spec = spec_of(c0["model"])

    def compute():
        subsets = [train_subset(c["n_train"], c["seed"]) for c in configs]
        X = torch.stack([s[0] for s in subsets])
        y = torch.stack([s[1] for s in subsets])
        start = time.perf_counter()
        model = train.train_batched(
            X, y, model=spec, loss="ce", epochs=c0["epochs"], lr=c0["lr"], batch_size=c0["batch_size"],
            seeds=[seeds_of(c["seed"])["model"] for c in configs], out_dim=CLASSES, optimizer=train.Adam(),
            objective=objective(c0), configs=configs)
        seconds = (time.perf_counter() - start) / c0["epochs"]
        module = Stacked(spec, model.params)
        accuracy = {"train": torch.stack([_accuracy(Stacked(spec, {k: v[i:i + 1] for k, v in model.params.items()}),
                                                    X[i], y[i])[0] for i in range(len(configs))]),
                    "val": _accuracy(module, *split("val")), "test": _accuracy(module, *split("test"))}
        return {**{f"param.{k}": v for k, v in model.params.items()},
                **{f"accuracy.{k}": v for k, v in accuracy.items()},
                "seconds_per_epoch": torch.tensor([seconds], dtype=torch.float64),
                "history": model.history.double()}

    state = cache.tensors("evasion", keys, compute)
    params = {k[len("param."):]: v for k, v in state.items() if k.startswith("param.")}
    accuracy = {k[len("accuracy."):]: v for k, v in state.items() if k.startswith("accuracy.")}
    return Trained(spec, params, float(state["seconds_per_epoch"][0]), state["history"], accuracy)


def _accuracy(module, X, y) -> Tensor:
    """(K,) accuracy of each model of a Stacked module on X (n, ...), y (n,)."""
    K = module.K
    return (predictions(module, repeat(X, K)).reshape(K, -1) == y).double().mean(1)


def predictions(module: nn.Module, X: Tensor, chunk: int = 2048) -> Tensor:
    """Predicted classes of a Stacked module on X (K * n, ...) in chunks of whole blocks."""
    K = module.K
    blocks = X.reshape(K, -1, *X.shape[1:])
    n = blocks.shape[1]
    step = max(1, chunk // K)
    out = []
    with torch.no_grad():
        for s in range(0, n, step):
            part = blocks[:, s:s + step]
            out.append(module(part.reshape(-1, *X.shape[1:])).argmax(1).reshape(K, -1))
    return torch.cat(out, 1).reshape(-1)


def repeat(X: Tensor, K: int) -> Tensor:
    """X (n, ...) as K blocks (K * n, ...)."""
    return X.unsqueeze(0).expand(K, *X.shape).reshape(-1, *X.shape[1:])


def attacker_temperature(config: dict) -> float:
    """The temperature the attacker divides the logits by: the training one if known, else 1."""
    return config["temperature"] if config["attacker_temperature"] == "known" else 1.0


def step_size(config: dict, eps):
    """PGD's step: --step-size, or 2.5 eps / steps (Madry et al.'s rule, so curves over eps stay comparable)."""
    return config["step_size"] if config["step_size"] is not None else 2.5 * eps / config["steps"]


def adversarial(module: nn.Module, X: Tensor, y: Tensor, eps: Tensor, config: dict, seed: int | None = None) -> Tensor:
    """The attack of `config` on X (B, ...) at per-example budgets eps (B,): the adversarial inputs."""
    how, p, T = config["attack"], config["norm"], attacker_temperature(config)
    if how == "fgsm":
        return evasion.fgsm(module, X, y, eps, norm=p, temperature=T)
    if how == "lp-descent":
        return evasion.lp_descent(module, X, y, eps, norm=p, steps=config["steps"],
                                  step_size=config["step_size"] or 0.1)[0]
    restarts = config["restarts"]
    return evasion.pgd(module, X, y, eps, steps=config["steps"], step_size=step_size(config, eps), norm=p,
                       random_start=restarts > 1, restarts=restarts, seed=seed if restarts > 1 else None,
                       loss="margin" if how == "margin" else "ce", temperature=T)


def zero_gradients(module: nn.Module, X: Tensor, y: Tensor, config: dict) -> Tensor:
    """Per example, whether the attack loss's input gradient is exactly zero (float32): the attack then has no
    direction at all."""
    loss = "margin" if config["attack"] == "margin" else "ce"
    g = evasion.input_gradient(module, X, y, loss, attacker_temperature(config))
    return (g.reshape(len(g), -1) == 0).all(1)


def attack_grid(module, X, y, eps_values, config, seeds) -> torch.Tensor:
    """Predicted classes (K, E, n) of each model of a Stacked module on its adversarial images at each budget
    (the attack of `config`, see `adversarial`): the K models, E budgets and n images as one batch of rows (in
    chunks of CHUNK rows), or model by model with random restarts (each repeat's own seeded starts)."""
    K, E, n = module.K, len(eps_values), len(X)
    out = torch.empty(K, E, n, dtype=torch.long)
    if K > 1 and config["restarts"] > 1 and config["attack"] in ("pgd", "margin"):
        return torch.stack([attack_grid(one(module, k), X, y, eps_values, config, seeds[k:k + 1])[0]
                            for k in range(K)])
    if config["attack"] == "fgsm":  # one input gradient per image serves every budget
        step = max(1, CHUNK // (K * max(E, 2)))
        for s in range(0, n, step):
            rows, labels = repeat(X[s:s + step], K), y[s:s + step].repeat(K)
            advs = evasion.fgsm_budgets(module, rows, labels, eps_values, norm=config["norm"],
                                        temperature=attacker_temperature(config))
            out[:, :, s:s + step] = torch.stack([predictions(module, a).reshape(K, -1) for a in advs], 1)
        return out
    eps = torch.tensor(eps_values, dtype=X.dtype)
    step = max(1, CHUNK // (K * E))
    for s in range(0, n, step):
        Xc, yc = X[s:s + step], y[s:s + step]
        c = len(yc)
        rows = Xc.unsqueeze(0).unsqueeze(0).expand(K, E, *Xc.shape).reshape(-1, *X.shape[1:])
        labels = yc.expand(K, E, c).reshape(-1)
        budgets = eps.reshape(1, E, 1).expand(K, E, c).reshape(-1)
        adv = adversarial(module, rows, labels, budgets, config, seed=seeds[0])
        out[:, :, s:s + c] = predictions(module, adv).reshape(K, E, c)
    return out


def one(module: Stacked, k: int) -> Stacked:
    """Model k of a Stacked module, as a Stacked module of one."""
    return Stacked(module.spec, {name: v[k:k + 1] for name, v in module.params.items()})
