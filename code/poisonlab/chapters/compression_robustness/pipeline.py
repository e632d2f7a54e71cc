"""The stages of `run compression`: the two architectures (the source's fully connected FC5 and the evasion
chapter's CNN) dense, pruned on a schedule, factorised to low rank or regularised by the nuclear norm; their
cached batched training; what their weights have become (sparsity, effective rank, Lipschitz product)."""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from ... import train
from ...lab import cache
from ...models import compress
from ...models.lipschitz import spectral_norm
from ...models.spec import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Spec, Unflatten
from ..evasion.pipeline import CHANNELS, CLASSES, IN_SHAPE, Stacked, predictions, repeat, seeds_of, split, train_subset

MODELS = ("fc5", "cnn")
WIDTHS = (784, 1344, 672, 588, 294, 10)  # the source's FC5
KERNEL = 5  # the CNN's two convolutions are 5 x 5 (evasion chapter)
# Tai et al.'s rank K per convolution (CNN) and the rank r of each factorised hidden layer W = U V (FC5); the
# source's second schedule halves the first. conv1 (1 -> 8 channels) has at most min(C d, N d) = 5 directions.
RANKS = {"cnn": {"lr1": (4, 16), "lr2": (2, 8)}, "fc5": {"lr1": 64, "lr2": 32}}
RANK_SCHEDULES = ("none", "lr1", "lr2")
SCHEDULES = ("cubic", "oneshot")
# what a trained model depends on (the cache key of its parameters); the sparsity is one of them but models that
# differ only in it (and the seed) are trained together: masks differ, shapes do not
TRAINING = ("dataset", "model", "sparsity", "schedule", "prune_start", "prune_every", "prune_steps", "rank_schedule",
            "nuclear_weight", "train_eps", "train_steps", "epochs", "lr", "batch_size", "n_train", "n_clean", "seed")
TRAIN_ACCURACY_IMAGES = 1000  # the training accuracy is measured on each model's first images (forward passes cost)


def spec_of(model: str, rank_schedule: str = "none") -> Spec:
    """The architecture `model` (MODELS) as a Spec, its hidden layers factorised by `rank_schedule` (lr1, lr2)."""
    low = rank_schedule != "none"
    if model == "fc5":
        layers = [Flatten()]
        for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:]), start=1):
            last = i == len(WIDTHS) - 1
            if low and not last:  # W = U V: a -> r (no bias) -> b
                r = RANKS["fc5"][rank_schedule]
                layers += [Linear(a, r, bias=False, name=f"fc{i}v"), Linear(r, b, name=f"fc{i}u")]
            else:
                layers.append(Linear(a, b, name=f"fc{i}"))
            if not last:
                layers.append(ReLU())
        return Spec(layers, name=f"fc5-{rank_schedule}" if low else "fc5")
    c1, c2 = CHANNELS
    side = ((IN_SHAPE[1] - 4) // 2 - 4) // 2

    def conv(i, c_in, c_out):
        if not low:
            return [Conv2d(c_in, c_out, KERNEL, name=f"conv{i}")]
        K = RANKS["cnn"][rank_schedule][i - 1]  # Tai et al.: K vertical d x 1 filters, then c_out horizontal 1 x d
        return [Conv2d(c_in, K, (KERNEL, 1), bias=False, name=f"conv{i}v"), Conv2d(K, c_out, (1, KERNEL), name=f"conv{i}h")]

    return Spec([Unflatten(IN_SHAPE), *conv(1, 1, c1), ReLU(), MaxPool2d(2), *conv(2, c1, c2), ReLU(), MaxPool2d(2),
                 Flatten(), Linear(c2 * side * side, CLASSES, name="fc")], name=f"cnn-{rank_schedule}" if low else "cnn")


def weight_names(spec: Spec) -> list[str]:
    """The weights (not biases) of a spec's Linear and Conv2d layers: what pruning and the penalty act on."""
    return [k for k in spec.shapes() if k.endswith("weight")]


def parameters(model: str, rank_schedule: str = "none") -> int:
    """The number of trained parameters of an architecture."""
    return sum(math.prod(s) for s in spec_of(model, rank_schedule).shapes().values())


def maps(spec: Spec, params: dict) -> list[tuple[str, Tensor, tuple | None]]:
    """The network's linear maps as trained, factors multiplied out: (name, weight (K, ...), input shape of a
    convolution or None). A factorised layer W = U V or a Tai pair counts as the one map it computes."""
    out, shapes = [], _conv_inputs(spec)
    names = weight_names(spec)
    i = 0
    while i < len(names):
        key = names[i]
        W = params[key]
        layer = key.rsplit(".", 1)[0]
        if layer.endswith("v") and i + 1 < len(names):  # a factor pair: v first, then u (FC5) or h (Tai)
            W2 = params[names[i + 1]]
            W = torch.bmm(W2, W) if W.dim() == 3 else compress.tai_kernel(W, W2)
            layer, i = layer[:-1], i + 1
        out.append((layer, W, shapes.get(layer)))
        i += 1
    return out


def _conv_inputs(spec: Spec) -> dict[str, tuple]:
    """Input shape (C, H, W) of each convolution (a Tai pair under its base name) from one forward pass."""
    shapes, x = {}, torch.zeros(1, *IN_SHAPE)
    params = spec.init(0)
    for prefix, layer in zip(spec.prefixes, spec.layers):
        if isinstance(layer, Conv2d):
            shapes.setdefault(prefix[:-1].rstrip("vh"), tuple(x.shape[1:]))  # a Tai pair: its first conv's input
        x = layer({k: params[prefix + k] for k in layer.shapes}, x, False)
    return shapes


def measures(spec: Spec, params: dict, prune_names=None) -> dict[str, Tensor]:
    """(K,) per model: the fraction of zero weights (over `prune_names`, default every weight), the mean over the
    maps of the effective rank relative to the largest possible (min(m, n)), the fraction of near-zero weights
    (compress.near_zero), the product of the maps' spectral
    norms (an L2 Lipschitz bound: ReLU and max-pooling are 1-Lipschitz), and per map its own sparsity."""
    names = prune_names or weight_names(spec)
    found = maps(spec, params)
    K = found[0][1].shape[0]
    ranks, norms, layers = [], [], {}
    for name, W, shape in found:
        M = W.reshape(K, W.shape[1], -1)  # each model's map as a matrix (compress.as_matrix)
        s = torch.linalg.svdvals(M.double())
        ranks.append(compress.effective_rank(M) / min(M.shape[1:]))
        layers[f"sparsity.{name}"] = (W.reshape(K, -1) == 0).double().mean(1)
        if shape is None:
            norms.append(s[:, 0])
        else:
            norms.append(torch.tensor([_conv_norm(W[k], shape) for k in range(K)], dtype=torch.float64))
    return {"sparsity": compress.sparsity(params, names), "near_zero": compress.near_zero(params, names),
            "effective_rank": torch.stack(ranks).mean(0),
            "lipschitz_product": torch.stack(norms).prod(0), **layers}


def _conv_norm(W: Tensor, shape) -> float:
    conv = torch.nn.Conv2d(W.shape[1], W.shape[0], tuple(W.shape[2:]), bias=False)
    with torch.no_grad():
        conv.weight.copy_(W)
    return spectral_norm(conv, shape, iters=100)


def pruner(configs: list[dict], steps_per_epoch: int, names) -> compress.Pruner | None:
    """The step hook that prunes the K models of `configs` (each to its own sparsity) on their schedule."""
    sparsity = [c["sparsity"] for c in configs]
    if not any(sparsity):
        return None
    start, every, n = schedule_of(configs[0], steps_per_epoch)
    if configs[0]["schedule"] == "oneshot":
        return compress.Pruner(names, {start: torch.tensor(sparsity, dtype=torch.float64)})
    at = [start + j * every for j in range(n + 1)]
    return compress.Pruner(names, {t: torch.tensor([compress.cubic_sparsity(t, s, start, every, n) for s in sparsity],
                                                   dtype=torch.float64) for t in at})


def schedule_of(config: dict, steps_per_epoch: int) -> tuple[int, int, int]:
    """(t_start, dt, n) of the pruning schedule in optimiser steps: --prune-start (default a tenth of the training
    steps), --prune-every (default: the n pruning steps spread over the next 40%, so that the last half of
    training recovers from them), --prune-steps n."""
    total = config["epochs"] * steps_per_epoch
    start = config["prune_start"] if config["prune_start"] is not None else max(1, round(total / 10))
    n = config["prune_steps"]
    every = config["prune_every"] if config["prune_every"] is not None else max(1, (2 * total // 5) // n)
    return start, every, n


def steps_per_epoch(config: dict) -> int:
    return math.ceil((config["n_train"] or 50_000) / config["batch_size"])


def objective(config: dict, spec: Spec):
    """Cross-entropy; at PGD points (train_eps > 0); plus nuclear_weight times the weights' nuclear norms."""
    if config["train_eps"] > 0:
        return train.PGD(config["train_eps"], config["train_steps"], base=train.ERM("ce"))
    if config["nuclear_weight"] > 0:
        names = weight_names(spec)
        return train.Penalised(config["nuclear_weight"], lambda p: compress.nuclear_norm(p, names),
                               base=train.ERM("ce"))
    return None


class Trained:
    """K models of one architecture trained together: stacked parameters, training time, accuracies (train,
    test) and what their weights have become (`measures`)."""

    def __init__(self, spec: Spec, params: dict, seconds_per_epoch: float, accuracy: dict, measured: dict):
        self.spec, self.params, self.seconds_per_epoch = spec, params, seconds_per_epoch
        self.accuracy, self.measured = accuracy, measured

    def module(self, ks=None) -> Stacked:
        ks = list(range(next(iter(self.params.values())).shape[0])) if ks is None else list(ks)
        return Stacked(self.spec, {k: v[ks] for k, v in self.params.items()})


def train_models(configs: list[dict]) -> Trained:
    """The models of `configs` (equal in everything but the sparsity and the seed), trained as one batch; cached
    by their training settings and the source."""
    keys = [{k: c[k] for k in TRAINING} for c in configs]
    c0 = configs[0]
    spec = spec_of(c0["model"], c0["rank_schedule"])
    dataset = c0["dataset"]

    def compute():
        subsets = [train_subset(c["n_train"], c["seed"], dataset) for c in configs]
        X, y = torch.stack([s[0] for s in subsets]), torch.stack([s[1] for s in subsets])
        spe = steps_per_epoch(c0)
        hook = pruner(configs, spe, weight_names(spec))
        start = time.perf_counter()
        model = train.train_batched(
            X, y, model=spec, loss="ce", epochs=c0["epochs"], lr=c0["lr"], batch_size=c0["batch_size"],
            seeds=[seeds_of(c["seed"])["model"] for c in configs], out_dim=CLASSES, optimizer=train.Adam(),
            objective=objective(c0, spec), configs=configs, step_hook=hook)
        seconds = (time.perf_counter() - start) / c0["epochs"]
        module = Stacked(spec, model.params)
        b = TRAIN_ACCURACY_IMAGES
        X_test, y_test = split("test", dataset)
        accuracy = {"train": torch.stack([_accuracy(Stacked(spec, {k: v[i:i + 1] for k, v in model.params.items()}),
                                                    X[i, :b], y[i, :b])[0] for i in range(len(configs))]),
                    "test": _accuracy(module, X_test[:c0["n_clean"]], y_test[:c0["n_clean"]])}
        measured = measures(spec, model.params)
        return {**{f"param.{k}": v for k, v in model.params.items()},
                **{f"accuracy.{k}": v for k, v in accuracy.items()},
                **{f"measure.{k}": v for k, v in measured.items()},
                "seconds_per_epoch": torch.tensor([seconds], dtype=torch.float64)}

    state = cache.tensors("compression", keys, compute)

    def part(prefix):
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    return Trained(spec, part("param."), float(state["seconds_per_epoch"][0]), part("accuracy."), part("measure."))


def _accuracy(module, X, y) -> Tensor:
    """(K,) accuracy of each model of a Stacked module on X (n, ...), y (n,)."""
    K = module.K
    return (predictions(module, repeat(X, K)).reshape(K, -1) == y).double().mean(1)

