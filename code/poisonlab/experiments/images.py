"""`poisonlab run images`: label flipping against image classifiers, defences, and the chapter's functions.

One configuration: an image data set (vision.load_dataset; the default is scikit-learn's 8x8 digits
with a random 80/20 split drawn from the repeat's seed), a fraction alpha of the training labels
relabelled (attacks.flip_multiclass: random other class, one target class, a class pair a <-> b, or
the points of largest loss under a clean reference model, each moved to its most likely wrong class),
an optional filter defence, and a classifier without final activation trained with the cross-entropy
loss by minibatch SGD (train.train_batched): softmax regression ("linear"), an MLP or a small CNN.

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
import json
import math
import os

import numpy as np
import pandas as pd
import torch

from .. import attacks, defenses, losses, metrics, train, validate, vision
from ..experiment import Experiment, Param, ParameterError, register
from ..theory import images as theory

__all__ = ["EXPERIMENT", "PARAMS", "METRICS", "FLIPS", "MODELS", "DEFENSES", "HIDDEN", "seeds_of",
           "make_data", "hidden_of", "poison", "fit", "run_detailed", "Outcome", "flipped_examples",
           "confusions", "memorisation", "knn_filter_rates", "fit_softmax", "influence_study", "save_data",
           "class_share", "pair_alphas", "attack_sweeps", "defense_sweeps", "summarize", "damage_per_label",
           "at_alpha", "law_chance", "law_all_flipped", "fit_random_law", "fit_two_class_law", "law_points",
           "early_stopping_summary", "noisy_heldout_gap", "heldout_gap_law"]

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
    Param("dataset", "digits", str, "image data: digits (8x8, shipped with scikit-learn, offline), or mnist, "
          "fashion-mnist, cifar10 through torchvision (files in --data-dir, or --download)",
          choices=vision.DATASETS, batch=False),
    Param("data_dir", None, str, "folder of the torchvision data sets (default: $POISONLAB_DATA or "
          "~/.cache/poisonlab/data)", batch=False),
    Param("download", False, bool, "let torchvision download a missing data set", batch=False),
    Param("n_train", None, int, "train on a random subset of this many training images (default: all)",
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
    K = vision.NUM_CLASSES[config["dataset"]]
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
    if config["dataset"] in vision.SHIPPED:
        for name in ("data_dir", "download"):
            if config[name]:
                raise ParameterError(name, f"{name} is only used with the torchvision data sets "
                                     f"({', '.join(vision.TORCHVISION)}), got dataset {config['dataset']}")
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
        vision.require(config["dataset"], config["data_dir"], config["download"])
    except ValueError as e:
        raise ParameterError("dataset", str(e)) from None


def seeds_of(seed: int) -> dict:
    """Independent seeds of one repeat: data split, attack, models (initialisation, shuffles), held-out split."""
    return {"data": seed, "attack": seed + 1_000_003, "model": seed + 2_000_006, "split": seed + 3_000_009}


@functools.lru_cache(maxsize=32)
def _load(dataset, data_dir, download, seed, n_train):
    return vision.load_dataset(dataset, data_dir, download, seed=seed, n_train=n_train)


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


def _kept_some(configs, keeps) -> None:
    """A filter that discards every training point leaves nothing to train on: name the flag that did it."""
    for c, keep in zip(configs, keeps):
        if not bool(keep.any()):
            if c["knn_threshold"] is not None:
                raise ParameterError("knn_threshold", f"the knn-filter discarded all {keep.numel()} training points "
                                     f"(every label disagrees with more than knn_threshold = {c['knn_threshold']} of "
                                     f"its {c['knn_k']} neighbours); raise --knn-threshold")
            name = "alpha" if c["drop"] is None else "drop"
            raise ParameterError(name, f"the {c['defense']} discarded all {keep.numel()} training points "
                                 f"({name} = {c[name]}); give a smaller --drop")


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
    from .. import models
    net = models.make_model(c0["model"], math.prod(ds.X_train.shape[1:]), len(ds.classes), hidden_of(c0), seed=0,
                            in_shape=tuple(ds.X_train.shape[1:]))
    return models.count_parameters(net)


def run_detailed(configs: list[dict], record: bool = False) -> list[Outcome]:
    """Attack, defend, train and measure every configuration; record=True adds per-epoch curves."""
    cleans = [make_data(c) for c in configs]
    probs = _reference_probs(configs, cleans)
    poisoned = [poison(c, ds, p) for c, ds, p in zip(configs, cleans, probs)]
    keeps = _keeps(configs, poisoned)
    _kept_some(configs, keeps)
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


# ---------------------------------------------------------------------------------------------
# Chapter-specific computations (not sweeps of the experiment)


def _resolve(seed=0, **params) -> dict:
    return EXPERIMENT.resolve(**params, seed=seed)


def flipped_examples(n: int = 8, seed: int = 0, **params) -> dict:
    """The first n flipped training images of one configuration with their true and new labels."""
    n = validate.positive_int("n", n)
    config = _resolve(seed, **params)
    clean = make_data(config)
    probs = _reference_probs([config], [clean])[0]
    p = poison(config, clean, probs)
    idx = p.poisoned.nonzero().flatten()[:n]
    return {"images": p.X_train[idx, 0].numpy(), "old": clean.y_train[idx].tolist(), "new": p.y_train[idx].tolist(),
            "classes": p.classes}


def confusions(seeds, **params) -> np.ndarray:
    """Mean row-normalised test confusion matrix (K, K) over the seeds: row i = true class, column = predicted."""
    configs = [_resolve(int(s), **params) for s in seeds]
    if not configs:
        raise ValueError("seeds must hold at least one seed")
    outcomes = run_detailed(configs)
    K = len(outcomes[0].clean.classes)
    M = torch.stack([metrics.confusion(o.test_pred, o.clean.y_test, K).double() for o in outcomes])
    M = M / M.sum(2, keepdim=True).clamp_min(1)
    return M.mean(0).numpy()


def memorisation(seeds, alphas=None, **params) -> pd.DataFrame:
    """Per epoch: test accuracy, fit to flipped and clean training labels, held-out accuracy (noisy and clean).

    One run per seed and alpha (`alphas`, else the parameter alpha), trained together.

    Held-out accuracies need early_stopping=True (the held-out split); the curves always run to `epochs`.
    Columns: seed, epoch, test_accuracy, flipped_fit, clean_fit, val_accuracy (against the held-out
    points' possibly flipped labels), val_accuracy_clean, val_flipped (the held-out flipped fraction),
    n_val (held-out points), model, alpha, flip.
    """
    alphas = [params.pop("alpha", EXPERIMENT.resolve()["alpha"])] if alphas is None else list(alphas)
    configs = [_resolve(int(s), alpha=a, **params) for a in alphas for s in seeds]  # one batched run
    if not configs:
        raise ValueError("seeds and alphas must hold at least one value each")
    frames = []
    for o in run_detailed(configs, record=True):
        frames.append(o.curves.assign(seed=o.config["seed"], model=o.config["model"], alpha=o.config["alpha"],
                                      flip=o.config["flip"]))
    return pd.concat(frames, ignore_index=True)


def knn_filter_rates(alphas, seeds, k: int = 10, threshold: float = 0.5, **params) -> pd.DataFrame:
    """Measured and predicted k-NN filter rates under random flips: clean points discarded, flipped caught.

    One row per (alpha, seed): measured fractions (the filter on the poisoned labels) and the prediction
    of theory.knn_filter_prediction from the clean labels and the (label-independent) neighbour graph.
    """
    rows = []
    for s in seeds:
        config = _resolve(int(s), **params)
        clean = make_data(config)
        nbrs = theory.neighbours(clean.X_train, k)
        K = len(clean.classes)
        for a in alphas:
            c = {**config, "alpha": float(a), "flip": "random"}
            p = poison(c, clean)
            keep = defenses.knn_filter(p.X_train, p.y_train, k, threshold)
            mask = p.poisoned
            pred = theory.knn_filter_prediction(clean.y_train, nbrs, float(a), K, threshold)
            rows.append({"alpha": float(a), "seed": int(s),
                         "discard_clean": float((~keep & ~mask).sum() / max(int((~mask).sum()), 1)),
                         "catch_flipped": float((~keep & mask).sum() / int(mask.sum())) if mask.any() else math.nan,
                         "discard_clean_pred": pred["discard_clean"], "catch_flipped_pred": pred["catch_flipped"]})
    return pd.DataFrame(rows)


def _softmax_objective(theta, Xa, Y, l2):
    """Mean CE + l2/2 |theta|^2 for G label sets: theta (G, K, D), Y (G, n) -> (G,)."""
    lp = torch.log_softmax(Xa @ theta.transpose(1, 2), -1)
    return -lp.gather(-1, Y.unsqueeze(-1)).squeeze(-1).mean(1) + l2 / 2 * theta.pow(2).sum((1, 2))


def _softmax_grad(theta, Xa, Y, l2):
    """Gradient of _softmax_objective: (softmax - onehot)^T [X, 1] / n + l2 theta, shape (G, K, D)."""
    P = torch.softmax(Xa @ theta.transpose(1, 2), -1) - torch.nn.functional.one_hot(Y, theta.shape[1]).double()
    return P.transpose(1, 2) @ Xa / Xa.shape[0] + l2 * theta


def fit_softmax(X, y, K: int, l2: float, *, tol: float = 1e-9, max_iter: int = 200, theta0=None, H=None):
    """Exact minimiser of mean CE + l2/2 |[W, b]|^2 (softmax regression), float64, to max |grad| < tol.

    Newton's method with backtracking (Armijo) steps; with `H` (a fixed Hessian, e.g. the clean one)
    the direction is H^-1 grad (quasi-Newton: one Cholesky factor, cheap steps). y (n,) or (G, n) for
    G label sets on the same X (solved together). Returns theta = [W, b], (K, d+1) or (G, K, d+1).
    """
    l2 = validate.positive("l2", l2)
    Xa = theory._augment(X)
    Y = torch.as_tensor(y).long()
    single = Y.dim() == 1
    Y = Y.reshape(-1, Xa.shape[0])
    if int(Y.min()) < 0 or int(Y.max()) >= K:
        raise ValueError(f"y must hold class indices in 0..{K - 1}")
    G, D = Y.shape[0], Xa.shape[1]
    theta = torch.zeros(G, K, D, dtype=torch.float64) if theta0 is None else \
        torch.as_tensor(theta0).double().expand(G, K, D).clone()
    L = None if H is None else torch.linalg.cholesky(torch.as_tensor(H).double())
    f = _softmax_objective(theta, Xa, Y, l2)
    for _ in range(max_iter):
        g = _softmax_grad(theta, Xa, Y, l2)
        if float(g.abs().max()) < tol:
            break
        if L is None:
            d = torch.stack([torch.linalg.solve(theory.softmax_hessian(t[:, :-1], t[:, -1], X, l2), gi.reshape(-1))
                             for t, gi in zip(theta, g)]).reshape(theta.shape)
        else:
            d = torch.cholesky_solve(g.reshape(G, -1).T, L).T.reshape(theta.shape)
        slope = (g * d).sum((1, 2))  # > 0: d is a descent direction for -d
        t = torch.ones(G, dtype=torch.float64)
        for _ in range(40):  # halve each set's step until it decreases the objective enough (Armijo)
            new = _softmax_objective(theta - t[:, None, None] * d, Xa, Y, l2)
            bad = new > f - 1e-4 * t * slope
            if not bool(bad.any()):
                break
            t = torch.where(bad, t / 2, t)
        theta = theta - t[:, None, None] * d
        f = _softmax_objective(theta, Xa, Y, l2)
    else:
        raise RuntimeError(f"fit_softmax: no convergence in {max_iter} iterations "
                           f"(max |grad| {float(g.abs().max()):.3g})")
    return theta[0] if single else theta


def _test_loss(theta, X_test, y_test) -> torch.Tensor:
    """Mean test cross-entropy of softmax regression(s) theta (..., K, d+1)."""
    lp = torch.log_softmax(theory._augment(X_test) @ theta.transpose(-1, -2), -1)  # (..., n, K)
    y = torch.as_tensor(y_test).long().expand(lp.shape[:-1])
    return -lp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(-1)


def influence_study(seed: int = 0, sizes=(7, 14, 28), groups: int = 10, l2: float = 1e-2, **params) -> pd.DataFrame:
    """Flip groups of training labels of an exactly fitted softmax regression: linearised vs exact refit.

    For each group size m: the "max-loss" group (the m points of largest clean loss, each to its most
    likely wrong class) and `groups` random groups (m random points, each to a random other class).
    The influence function moves theta by -H^-1 (sum of the flips' gradient changes)/n (first order,
    H the clean Hessian); "predicted" is the test loss / accuracy at those linearised parameters,
    "actual" at the exact refit (quasi-Newton from the clean optimum). One row per group.
    """
    sizes = [validate.positive_int("sizes", m) for m in sizes]
    groups = validate.positive_int("groups", groups)
    config = _resolve(int(seed), **params)
    ds = make_data(config)
    n, K = ds.n_train, len(ds.classes)
    X, y = ds.X_train.reshape(n, -1).double(), ds.y_train
    Xt, yt = ds.X_test.reshape(ds.n_test, -1).double(), ds.y_test
    if max(sizes) > n:
        raise ValueError(f"sizes must be at most n_train = {n}, got {max(sizes)}")
    theta = fit_softmax(X, y, K, l2)
    Xa = theory._augment(X)
    P = torch.softmax(Xa @ theta.T, 1)
    loss = -torch.log(P.gather(1, y[:, None]))[:, 0]
    order = torch.sort(loss, descending=True, stable=True).indices
    wrong = P.clone()
    wrong[torch.arange(n), y] = -1.0
    runner_up = wrong.argmax(1)
    g = torch.Generator().manual_seed(seeds_of(int(seed))["attack"])
    sets, rows = [], []
    for m in sizes:
        y_ml = y.clone()
        y_ml[order[:m]] = runner_up[order[:m]]
        sets.append(y_ml)
        rows.append({"kind": "max-loss", "m": m})
        for _ in range(groups):
            idx = torch.randperm(n, generator=g)[:m]
            y_r = y.clone()
            y_r[idx] = (y[idx] + torch.randint(1, K, (m,), generator=g)) % K
            sets.append(y_r)
            rows.append({"kind": "random", "m": m})
    Y = torch.stack(sets)  # (G, n)
    H = theory.softmax_hessian(theta[:, :-1], theta[:, -1], X, l2)
    # the gradient of the mean training loss changes by (e_y - e_y') x^T / n per flipped point
    delta = (torch.nn.functional.one_hot(y, K).double()[None] - torch.nn.functional.one_hot(Y, K).double())
    shift = delta.transpose(1, 2) @ Xa / n  # (G, K, D)
    lin = theta - torch.cholesky_solve(shift.reshape(len(Y), -1).T, torch.linalg.cholesky(H)).T.reshape(shift.shape)
    exact = fit_softmax(X, Y, K, l2, theta0=theta, H=H, tol=1e-7, max_iter=500)
    loss0, acc0 = _test_loss(theta, Xt, yt), _accuracy(theta, Xt, yt)
    out = pd.DataFrame(rows).assign(
        seed=int(seed), n=n,
        predicted_loss=(_test_loss(lin, Xt, yt) - loss0).numpy(), actual_loss=(_test_loss(exact, Xt, yt) - loss0).numpy(),
        predicted_accuracy=(_accuracy(lin, Xt, yt) - acc0).numpy(),
        actual_accuracy=(_accuracy(exact, Xt, yt) - acc0).numpy())
    return out


def _accuracy(theta, X_test, y_test) -> torch.Tensor:
    """Test accuracy of softmax regression(s) theta (..., K, d+1)."""
    return (theory._augment(X_test) @ theta.transpose(-1, -2)).argmax(-1).eq(y_test).double().mean(-1)


# ---------------------------------------------------------------------------------------------
# Sweeps and laws of the chapter (shared with its tests)


def class_share(classes, seeds, reduce: str = "min", **params) -> float:
    """The share of the training points whose class is in `classes`: smallest ("min") or mean over the seeds."""
    reduce = validate.choice("reduce", reduce, ("min", "mean"))
    shares = []
    for s in seeds:
        ds = make_data(_resolve(int(s), **params))
        shares.append(float(sum((ds.y_train == c).sum() for c in classes)) / ds.n_train)
    if not shares:
        raise ValueError("seeds must hold at least one seed")
    return min(shares) if reduce == "min" else float(np.mean(shares))


def pair_alphas(fractions, seeds, pair=(1, 7), **params) -> list:
    """Fractions f of the pair's points as fractions alpha of the training set, feasible for every seed."""
    share = class_share(pair, seeds, **params)
    return [math.floor(validate.fraction("fractions", f) * share * 1e4) / 1e4 for f in fractions]


def attack_sweeps(model: str, S, seed: int = 0, cache: bool = True) -> dict:
    """The four attacks' alpha sweeps of one model with the chapter's sizes S (profile section): flip -> SweepResult."""
    from .. import sweep

    R = S["sweep_repeats"][model]
    stride = S["alpha_stride"][model]
    fixed = {"model": model, "epochs": S["epochs"][model], "batch_size": S["batch_size"][model]}
    seeds = range(seed, seed + R)
    grids = {"random": S["random_alphas"], "max-loss": S["maxloss_alphas"], "target-class": S["target_alphas"],
             "pair": pair_alphas(S["pair_fractions"], seeds)}
    # thinning keeps the points the chapter reads: no flips, the random-flip threshold, alpha = 1 and
    # the small alpha at which random and max-loss flips are compared per label
    keep = {"random": {0.0, theory.threshold(10), 1.0, S["damage_alpha"]}, "max-loss": {0.0, S["damage_alpha"]}}
    grids = {flip: [a for i, a in enumerate(alphas) if i % stride == 0 or a in keep.get(flip, {0.0})]
             for flip, alphas in grids.items()}
    return {flip: sweep.run(EXPERIMENT, grid={"alpha": alphas}, repeats=R, seed=seed,
                            fixed={**fixed, "flip": flip}, cache=cache, progress=False)
            for flip, alphas in grids.items()}


def summarize(rows: pd.DataFrame, by, metrics) -> pd.DataFrame:
    """Means with 95% t-intervals (columns m_mean, m_lo, m_hi) of `metrics` per group of `by` columns."""
    from .. import sweep

    by = [by] if isinstance(by, str) else list(by)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    out = []
    for key, g in rows.groupby(by, sort=True):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for m in metrics:
            row.update(zip((f"{m}_mean", f"{m}_lo", f"{m}_hi"), sweep.mean_ci(g[m])))
        row["n"] = len(g)
        out.append(row)
    return pd.DataFrame(out)


def damage_per_label(sweeps: dict, alpha: float) -> pd.DataFrame:
    """Test accuracy lost per flipped label at `alpha`, paired by seed with alpha = 0, for each attack."""
    out = []
    for flip, res in sweeps.items():
        rows = res.rows
        if not np.isclose(rows["alpha"], alpha).any():
            continue
        base = rows[rows.alpha == 0].set_index("seed")["test_accuracy"]
        at = rows[np.isclose(rows.alpha, alpha)].set_index("seed")
        first = rows.iloc[0]
        data_params = {k: (None if pd.isna(first[k]) else first[k]) for k in ("dataset", "data_dir", "n_train")}
        flips = attacks.poison_count(alpha, make_data(_resolve(int(at.index[0]), **data_params)).n_train)
        out.append(pd.DataFrame({"flip": flip, "seed": at.index,
                                 "per_label": (base.loc[at.index].to_numpy() - at["test_accuracy"].to_numpy()) / flips}))
    return summarize(pd.concat(out, ignore_index=True), "flip", "per_label")


def defense_sweeps(S, seed: int = 0, cache: bool = True) -> pd.DataFrame:
    """Rows of every defence x attack x alpha x repeat for the models of S["defense_alphas"] (pair: alpha
    capped at 90% of the pair's share), each with the undefended run's accuracy of the same seed."""
    from .. import sweep

    R = S["defense_repeats"]
    pair_max = 0.9 * class_share((1, 7), range(seed, seed + R))
    frames = []
    for model, alphas in S["defense_alphas"].items():
        fixed = {"model": model, "epochs": S["epochs"][model], "batch_size": S["batch_size"][model]}
        for flip in FLIPS:
            grid_alphas = sorted({round(min(a, pair_max), 4) for a in alphas}) if flip == "pair" else list(alphas)
            res = sweep.run(EXPERIMENT, grid={"defense": list(DEFENSES), "alpha": grid_alphas}, repeats=R, seed=seed,
                            fixed={**fixed, "flip": flip}, cache=cache, progress=False)
            frames.append(res.rows)
    rows = pd.concat(frames, ignore_index=True)
    base = rows[rows.defense == "none"].set_index(["model", "flip", "alpha", "seed"])["test_accuracy"]
    rows["recovered"] = rows["test_accuracy"].to_numpy() - base.loc[
        list(zip(rows.model, rows.flip, rows.alpha, rows.seed))].to_numpy()
    return rows


def at_alpha(rows: pd.DataFrame, alpha: float, metric: str = "test_accuracy") -> tuple:
    """(mean, lo, hi) of a metric over the repeats at one alpha (95% t-interval)."""
    from .. import sweep

    values = rows.loc[np.isclose(rows["alpha"], alpha), metric]
    if values.empty:
        raise ValueError(f"alpha = {alpha} was not measured; measured: {sorted(rows['alpha'].unique())}")
    return sweep.mean_ci(values)


def law_chance(rows: pd.DataFrame, K: int = 10, label: str = ""):
    """Random flips: the accuracy at alpha = (K-1)/K is 1/K (labels independent of x, class symmetry)."""
    from .. import laws

    mean, lo, hi = at_alpha(rows, theory.threshold(K))
    return laws.Law(f"random flips{label}: accuracy 1/K at alpha = (K-1)/K", theory.chance(K), mean, lo, hi,
                    how=f"mean at alpha = {theory.threshold(K):.2f}")


def law_all_flipped(rows: pd.DataFrame, K: int = 10, label: str = ""):
    """Random flips: the accuracy at alpha = 1 lies in [0, (1 - a0)/(K - 1)], a0 the accuracy without flips.

    A test point the clean model gets right is always wrong at alpha = 1. One it misclassifies as c'
    gets its true class back with probability 1/(K-1) if it lies inside the region of c' (all classes
    but c' are equally labelled there), and with probability 0 if it lies between its own class and c'
    (both are then excluded): the truth lies between the two cases.
    """
    from .. import laws

    a0 = at_alpha(rows, 0.0)[0]
    upper = (1 - a0) / (K - 1)
    mean, lo, hi = at_alpha(rows, 1.0)
    return laws.Law(f"random flips{label}: accuracy in [0, (1 - a0)/(K - 1)] at alpha = 1", upper / 2, mean, lo, hi,
                    tol=upper / 2, how="mean at alpha = 1; predicted: the interval's middle, tol: its half-width")


def _by_alpha(rows: pd.DataFrame):
    means = rows.groupby("alpha", sort=True)["test_accuracy"].mean()
    return means.index.to_numpy(dtype=float), means.to_numpy()


def fit_random_law(rows: pd.DataFrame, K: int = 10):
    """Fit theory.random_flip_law (a0, kappa, alpha_c) to the mean accuracy at each alpha under random flips.

    Fitting the means (not the repeats) lets the residual scatter, misfit included, set the intervals;
    the repeats of one seed are correlated across alpha (common random numbers), so they are not
    independent points.
    """
    from .. import laws

    x, y = _by_alpha(rows)
    return laws.fit_curve(lambda a, a0, kappa, alpha_c: theory.random_flip_law(a, a0, kappa, alpha_c, K), x, y,
                          p0=[0.95, 1.5, theory.threshold(K)], names=["a0", "kappa", "alpha_c"],
                          bounds=([0, 0.05, 0.3], [1, 20, 1]))


def fit_two_class_law(rows: pd.DataFrame, share: float):
    """Fit theory.two_class_law (a0, kappa, alpha_c) to the mean accuracy at each alpha (target class or pair)."""
    from .. import laws

    x, y = _by_alpha(rows)
    return laws.fit_curve(lambda a, a0, kappa, alpha_c: theory.two_class_law(a, a0, kappa, alpha_c, share), x, y,
                          p0=[0.95, 1.5, share / 2], names=["a0", "kappa", "alpha_c"],
                          bounds=([0, 0.05, 0.01], [1, 20, 1]))


def law_points(model: str, S, seed: int = 1000, cache: bool = True):
    """Random flips at alpha = 0, (K-1)/K and 1 with S["law_repeats"][model] fresh seeds: the points of the exact laws."""
    from .. import sweep

    return sweep.run(EXPERIMENT, grid={"alpha": [0.0, theory.threshold(10), 1.0]}, repeats=S["law_repeats"][model],
                     seed=seed, fixed={"model": model, "epochs": S["epochs"][model],
                                       "batch_size": S["batch_size"][model], "flip": "random"},
                     cache=cache, progress=False)


def early_stopping_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run (model, alpha, seed): test accuracy and flipped fit at the end, at the epoch of best
    poisoned held-out accuracy (what a defender can do) and at that of best clean held-out accuracy."""
    rows = []
    for key, c in curves.groupby(["model", "alpha", "seed"], sort=True):
        c = c[c.epoch >= 1].reset_index(drop=True)
        last, es, oracle = c.iloc[-1], c.iloc[int(c.val_accuracy.argmax())], c.iloc[int(c.val_accuracy_clean.argmax())]
        rows.append({"model": key[0], "alpha": key[1], "seed": key[2], "final_accuracy": last.test_accuracy,
                     "es_accuracy": es.test_accuracy, "oracle_accuracy": oracle.test_accuracy,
                     "es_epoch": int(es.epoch), "final_fit": last.flipped_fit, "es_fit": es.flipped_fit})
    return pd.DataFrame(rows)


def noisy_heldout_gap(curves: pd.DataFrame, K: int = 10) -> pd.DataFrame:
    """Per seed: mean over runs and epochs of the measured poisoned held-out accuracy minus its prediction
    from the clean one, alpha_v/(K-1) + s(alpha_v) acc_clean, alpha_v the held-out split's flipped fraction.

    Runs of one seed share the data split and (nested) flips, so the seed is the independent unit. Column
    sd: the sampling SD of a run's gap (theory.heldout_gap_sd), averaged over the seed's runs (no credit
    for averaging runs that share one held-out split).
    """
    c = curves[curves.epoch >= 1]
    pred = c.val_flipped / (K - 1) + (1 - c.val_flipped * K / (K - 1)) * c.val_accuracy_clean
    c = c.assign(gap=c.val_accuracy - pred,
                 sd=theory.heldout_gap_sd(c.val_accuracy_clean.to_numpy(), c.val_flipped.to_numpy(), K, c.n_val.iloc[0]))
    return c.groupby("seed", as_index=False)[["gap", "sd"]].mean()


def heldout_gap_law(curves: pd.DataFrame, K: int = 10, level: float = 0.95):
    """Law: the mean per-seed gap of noisy_heldout_gap is 0, with the interval from its sampling SD."""
    from scipy import stats

    from .. import laws

    gap = noisy_heldout_gap(curves, K)
    mean = float(gap.gap.mean())
    half = float(stats.norm.ppf(0.5 + level / 2)) * float(np.sqrt((gap.sd ** 2).mean() / len(gap)))
    return laws.Law("poisoned held-out accuracy = alpha/(K-1) + s(alpha) x clean (mean gap 0)", 0.0, mean,
                    mean - half, mean + half, how="mean gap over seeds, sampling interval")


def save_data(config: dict, path) -> None:
    """Write one configuration's poisoned training set, clean test set and poison mask (.npz)."""
    clean = make_data(config)
    probs = _reference_probs([config], [clean])[0]
    p = poison(config, clean, probs)
    config_json = json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()})
    with open(path, "wb") as f:  # a file object: numpy would otherwise append .npz to the name
        np.savez(f, X_train=p.X_train.numpy(), y_train=p.y_train.numpy(), X_test=p.X_test.numpy(),
                 y_test=p.y_test.numpy(), mask=p.poisoned.numpy(), y_clean=clean.y_train.numpy(),
                 classes=np.array(p.classes), config=np.array(config_json))


# (all images, training images, image shape) of each data set (digits: its random 80/20 split)
SHAPES = {"digits": (1797, 1797 - round(0.2 * 1797), (1, 8, 8)), "mnist": (70000, 60000, (1, 28, 28)),
          "fashion-mnist": (70000, 60000, (1, 28, 28)), "cifar10": (60000, 50000, (3, 32, 32))}
_SIZES = {"n_train": 1438, "epochs": 30, "hidden": 128, "knn_k": 10}


def _n_train(config: dict) -> int:
    total = SHAPES[config["dataset"]][1]
    return total if config["n_train"] is None else min(config["n_train"], total)


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration (trained in chunks of max_batch)."""
    from ..experiment import FLOPS, STEP_SECONDS, Cost, blame

    K = repeats
    n_all, _, (C, Hh, Ww) = SHAPES[config["dataset"]]
    N, F, classes = _n_train(config), C * Hh * Ww, vision.NUM_CLASSES[config["dataset"]]
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
    data = 4 * n_all * F * 2 * K + 3 * 4 * N * F * chunk  # each repeat's split (cached), stacked and shuffled
    T = config["epochs"] + 1 if config["early_stopping"] else 0
    model = chunk * (4 * P * (6 + T) + 4 * 4 * B * act + 4 * 4096 * act)
    knn = 8 * (3 * min(1024, N) * N + N * F) if config["defense"] == "knn-filter" else 0
    total = data + model + knn
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
    N = _n_train(config)
    if config["batch_size"] > N:
        return [f"--batch-size {config['batch_size']} exceeds the {N} training points: every step is full-batch "
                f"gradient descent on all of them"]
    return []


_UNIT = (0.0, 1.0)
EXPERIMENT = register(Experiment(
    "images", fit, PARAMS, METRICS,
    help="Flip a fraction alpha of an image classifier's training labels, defend, and measure test accuracy.",
    check=_check, save_data=save_data, max_batch=256,  # 256 digit training sets stacked: ~100 MB
    cost=cost, poisoned=poisoned_count, notes=notes,
    ranges={"test_accuracy": _UNIT, "flipped_train_fit": _UNIT, "poisoned_fraction": _UNIT, "test_loss": (0.0, math.inf),
            "train_accuracy": _UNIT, "clean_discarded": _UNIT, "poison_discarded": _UNIT,
            "stop_epoch": (0.0, math.inf)}))
