"""The stages of `run images`: seeds, data, label flips, filters, batched training and the measures of each run."""
from __future__ import annotations

import functools
import math

import pandas as pd
import torch

from ... import attacks, data, defenses, metrics, train
from ...train import losses
from ...errors import ParameterError
from ...lab.experiment import check_kept, filter_drop, seed_streams

HIDDEN = {"linear": (), "mlp": (128,), "cnn": (8, 16)}  # hidden widths / CNN channels when not given
# Parameters recorded along a run for early stopping: at most this many floats (T x K x parameters),
# so that the models of a group are trained in chunks when a trajectory would not fit in ~400 MB.
TRAJECTORY_FLOATS = 100_000_000


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
    """The poisoned Dataset of one configuration (probs: the reference model's class probabilities, for the
    confidence flips)."""
    alpha, how = config["alpha"], config["flip"]
    if attacks.poison_count(alpha, clean.n_train) == 0:
        return clean.replace(mask=clean.poisoned)
    kw = {"target": config["target_class"]} if how == "target-class" else \
        {"pair": tuple(config["pair"])} if how == "pair" else {"probs": probs} if how in attacks.CONFIDENCE_FLIPS else {}
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
    """Class probabilities (n_train, K) of the clean reference model of each confidence-flip configuration."""
    out = [None] * len(configs)
    need = [k for k, c in enumerate(configs)
            if c["flip"] in attacks.CONFIDENCE_FLIPS and attacks.poison_count(c["alpha"], cleans[k].n_train) > 0]
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

    def losses(active):  # each point's loss under a preliminary model trained on the poisoned data
        X = torch.stack([p.X_train for p in poisoned])  # one batched run over every configuration
        y = torch.stack([p.y_train for p in poisoned])
        prelim = _train(configs, X, y, len(poisoned[0].classes))
        scores = _ce(_logits(prelim, X), y)
        return [scores[k] for k in active]
    return defenses.filter_masks([(p.X_train, p.y_train) for p in poisoned], c0["defense"],
                                 [filter_drop(c) for c in configs], k=c0["knn_k"], threshold=c0["knn_threshold"],
                                 losses=losses)


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
        n_flip_fit = int(flipped[k].sum())
        clean_discarded, poison_discarded = defenses.discarded(o.keep, o.poisoned.poisoned)
        o.test_pred = logits_test[k].argmax(-1)
        o.metrics = {
            "test_accuracy": float(acc[k]),
            "flipped_train_fit": float(metrics.flipped_fit(pred_train[k], y[k], flipped[k])) if n_flip_fit else 0.0,
            "poisoned_fraction": n_flip_fit / len(o.fit_idx),
            "test_loss": float(loss[k]),
            "train_accuracy": float((pred_train[k] == y[k]).double().mean()),
            "clean_discarded": clean_discarded,
            "poison_discarded": poison_discarded,
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


def _n_train(config: dict) -> int:
    total = SHAPES[config["dataset"]][1]
    return total if config["n_train"] is None else min(config["n_train"], total)
