"""`poisonlab run logistic`: label flipping against logistic regression, and defences.

One configuration: binary data y = 1{w.x + b > 0} with |w| = 1 (data.make_binary; n points before the
80/20 split; x uniform in [-1, 1]^d, Gaussian, or the default Gaussian mixture with two tight clusters
at distance `near` from the boundary), a fraction alpha of the training labels flipped
(attacks.flip_binary: random, near the boundary on both sides, near the boundary on one side, or the
points the clean model is most confident of), an optional defence, and a logistic regression (or an MLP)
fitted on what is left: SGD with the batched trainer, or the exact minimiser (Newton, solvers.logistic).

The most-confident attacker ranks the points by the loss their flipped label would have under a model
trained on the clean data (theta_0, the same trainer): the points the clean model is most confident of
(attacks.flip_binary's "most-confident"; the image chapter's "least-confident" attack, the largest loss of
the current label, is its opposite).
With no margin, "boundary" and "one-sided" flip exactly the round(alpha n) eligible points nearest the
boundary (the margin is set between the k-th and (k+1)-th smallest distance).
Defences: "loss-filter" drops the fraction `drop` of training points of largest loss under a
preliminary model trained on the poisoned data, "sphere-filter" and "slab-filter" the fraction alpha farthest
from the centroid of their label (along the line joining the two centroids for the slab; Steinhardt et al.
2017's outlier removal, defenses.centroid_scores), "knn-filter" the fraction `drop` whose label
disagrees most with their k nearest neighbours (or, with knn_threshold, every point disagreeing with
more than that fraction, defenses.knn_filter), then a fresh model is trained on the rest; "median"
and "trimmed-mean" replace the minibatch mean of the per-example gradients inside SGD; "worker-median"
replaces it by the coordinate-wise median of the mean gradients of `shares` equal shares of the
minibatch, one per worker (Yin et al. 2018's setting, defenses.WorkerMedian); "unbiased-loss" trains on Natarajan et al. 2013's
unbiased BCE for symmetric flips at the rate `flip_rate` (losses.unbiased_bce). drop defaults
to alpha (a defender who knows the poisoning budget, the optimistic case).

Metrics: test_accuracy (clean test labels); expected_accuracy (the accuracy under the data
distribution itself, free of the test set's sampling noise: exact quadrature for Gaussian and mixture
data with a linear model, theory.population_accuracy; else 2^14 scrambled Sobol points for uniform x,
or 2^14 points drawn with a fixed seed from the Gaussian or mixture); weight_norm |w_hat|; angle between w_hat and w (radians);
poisoned_fraction (flipped / n_train); clean_discarded and poison_discarded (fractions of the clean and
of the flipped training points the filter dropped; 0 without a filter or without flips);
train_accuracy (on the labels trained on); margin_used (the margin of boundary/one-sided flips, else 0);
strip_mass (the probability mass of the strip of those flips under the distribution of x, on the side
attacked for one-sided flips; 0 for the other attacks).
With hidden layers, w_hat and b_hat are the affine part of the network: the least-squares affine fit
of its logits on the test inputs (the model itself for a linear model), as in the linear chapter.

This module declares the experiment (its parameters, checks, metrics and `fit`); the stages `fit` calls are
in pipeline.py, the cost estimate in cost.py.
"""
from __future__ import annotations

import math

import torch

from ... import attacks, data, defenses, metrics, validate
from ...errors import ParameterError
from ...lab.experiment import (
    FILTERS, Experiment, Param, check_filter_flags, check_filter_size, check_kept, full_batch_note, register,
)
from .cost import cost
from .pipeline import (
    _filter, _scores_most_confident, _uses_clean_model, affine_part, auto_margin, expected_accuracy, fit_models,
    make_data, poison, save_data, seeds_of, strip_mass,
)

__all__ = ["EXPERIMENT", "PARAMS", "METRICS", "make_data", "poison", "fit", "fit_models", "save_data",
           "seeds_of", "auto_margin", "affine_part", "expected_accuracy", "strip_mass", "DEFENSES", "FLIPS"]

# the last one flips the points theta_0 is most confident of (the largest loss of the flipped label)
FLIPS = ("random", "boundary", "one-sided", "most-confident")
DEFENSES = ("none", "loss-filter", "knn-filter", "sphere-filter", "slab-filter", "median", "trimmed-mean",
            "worker-median", "unbiased-loss")
CENTROID_FILTERS = ("sphere-filter", "slab-filter")  # Steinhardt et al.'s outlier removal, budget drop = alpha
METRICS = ("test_accuracy", "expected_accuracy", "weight_norm", "angle", "poisoned_fraction", "clean_discarded",
           "poison_discarded", "train_accuracy", "margin_used", "strip_mass")


def _n(name, value):
    # 5 points leave one test point and four training points after the 80/20 split
    return validate.positive_int(name, value, minimum=5)


def _side(name, value):
    if value not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return int(value)


def _trim(name, value):
    value = validate.non_negative(name, value)
    if value >= 0.5:
        raise ValueError(f"{name} must be in [0, 0.5), got {value!r}")
    return value


def _rate(name, value):
    value = validate.fraction(name, value)
    if value >= 0.5:
        raise ValueError(f"{name} must be in [0, 0.5), got {value!r}")
    return value


PARAMS = (
    Param("n", 1000, int, "data set size before the 80/20 train/test split", _n, batch=False),
    Param("dim", 2, int, "dimension d of x", validate.positive_int, batch=False),
    Param("x_dist", "uniform", str, "distribution of x: uniform ([-1, 1]^d), gaussian (N(0, I)) or mixture "
          "(Gaussian clusters, two of them close to the boundary)", choices=("uniform", "gaussian", "mixture")),
    Param("near", None, float, "mixture only: distance of the two tight clusters to the boundary "
          "(default 0.15)", validate.optional(validate.positive_scale)),
    Param("separation", None, float, "gaussian only: x ~ (N(mu w, I) + N(-mu w, I)) / 2 with mu = separation, "
          "the classes moved apart (density phi(mu) at the boundary instead of phi(0))",
          validate.optional(validate.non_negative), batch=False),
    Param("bias", 0.0, float, "the true intercept b (w has unit norm)", validate.scale),
    Param("alpha", 0.1, float, "fraction of training labels flipped, in [0, 1]", validate.fraction),
    Param("flip", "random", str, "which labels are flipped: random, boundary (within the margin, both "
          "sides), one-sided (within the margin, label `side` only) or most-confident", choices=FLIPS),
    Param("margin", None, float, "boundary/one-sided: distance to the true boundary within which points are "
          "flipped (default: the smallest margin holding round(alpha n) eligible points)",
          validate.optional(validate.non_negative)),
    Param("side", None, int, "one-sided: the label of the points flipped, 0 or 1 (default 1)",
          validate.optional(_side)),
    Param("reference", None, str, "most-confident: the model whose loss ranks the points, clean (theta_0 trained on "
          "the clean data; default) or true (the true boundary: the farthest points first)",
          choices=("clean", "true")),
    Param("defense", "none", str, "defence: none, loss-filter, knn-filter, sphere-filter, slab-filter, median, trimmed-mean (of "
          "per-example gradients), "
          "worker-median (of the workers' mean gradients) or unbiased-loss",
          choices=DEFENSES, batch=False),
    Param("drop", None, float, "filters: fraction of training points discarded (default: alpha)",
          validate.optional(validate.fraction)),
    Param("knn_k", 10, int, "knn-filter: number of neighbours k", validate.positive_int, batch=False),
    Param("knn_threshold", None, float, "knn-filter: drop every point whose label disagrees with more than this "
          "fraction of its neighbours (instead of a budget `drop`)", validate.optional(validate.fraction), batch=False),
    Param("trim", 0.1, float, "trimmed-mean: fraction cut at each end of each minibatch coordinate", _trim,
          batch=False),
    Param("shares", 8, int, "worker-median: number of workers, each given an equal share of every minibatch",
          validate.positive_int, batch=False),
    Param("flip_rate", None, float, "unbiased-loss: the flip rate the defender assumes, in [0, 1/2) (default: "
          "alpha, a defender who knows it)", validate.optional(_rate)),
    Param("solver", "sgd", str, "sgd (the batched trainer) or exact (Newton's method to convergence)",
          choices=("sgd", "exact"), batch=False),
    Param("l2", None, float, "exact solver: ridge penalty (l2/2)|w|^2 (needed on separable data; default 0)",
          validate.optional(validate.non_negative_scale), batch=False),
    Param("epochs", 30, int, "SGD epochs", validate.positive_int, batch=False),
    Param("lr", 1.0, float, "SGD learning rate (constant step)", validate.positive32),
    Param("batch_size", 64, int, "SGD minibatch size", validate.positive_int, batch=False),
    Param("hidden", (), int, "hidden-layer widths of an MLP (none: logistic regression)", validate.widths, nargs="*",
          batch=False),
    Param("continue_from_clean", False, bool, "train theta_0 on the clean data first, then continue training "
          "it on the poisoned data (instead of a fresh model)", batch=False),
)


def _check(config: dict) -> None:
    """Cross-parameter checks (the CLI turns them into one line naming the flag)."""
    flip, defense, solver = config["flip"], config["defense"], config["solver"]
    if config["margin"] is not None and flip not in ("boundary", "one-sided"):
        raise ParameterError("margin", f"margin is only used with --flip boundary or one-sided, got flip {flip}")
    if config["side"] is not None and flip != "one-sided":
        raise ParameterError("side", f"side is only used with --flip one-sided, got flip {flip}")
    if config["reference"] is not None and flip != "most-confident":
        raise ParameterError("reference", f"reference is only used with --flip most-confident, got flip {flip}")
    if config["near"] is not None and config["x_dist"] != "mixture":
        raise ParameterError("near", f"near is only used with --x-dist mixture, got x_dist {config['x_dist']}")
    if config["separation"] is not None and config["x_dist"] != "gaussian":
        raise ParameterError("separation", f"separation is only used with --x-dist gaussian, got x_dist "
                             f"{config['x_dist']}")
    check_filter_flags(config)
    if solver == "exact":
        if config["hidden"]:
            raise ParameterError("hidden", "hidden layers need --solver sgd (the exact solver fits a "
                                 f"logistic regression); got hidden={list(config['hidden'])}")
        if config["continue_from_clean"]:
            raise ParameterError("continue_from_clean", "continue_from_clean needs --solver sgd (an exact "
                                 "solution has no training to continue)")
        if defense in ("median", "trimmed-mean", "worker-median", "unbiased-loss"):
            raise ParameterError("defense", f"defense {defense} acts inside SGD (its minibatch gradients or its loss): it needs "
                                 "--solver sgd")
    if defense in CENTROID_FILTERS and attacks.poison_count(config["alpha"], data.train_size(config["n"])) >= \
            data.train_size(config["n"]):
        raise ParameterError("alpha", f"{defense} drops a fraction alpha of the training points: alpha={config['alpha']} "
                             "would drop them all")
    if config["flip_rate"] is not None and defense != "unbiased-loss":
        raise ParameterError("flip_rate", f"flip_rate is only used with --defense unbiased-loss, got defense {defense}")
    if defense == "unbiased-loss" and config["flip_rate"] is None and config["alpha"] >= 0.5:
        raise ParameterError("alpha", f"unbiased-loss assumes the flip rate alpha, which must be < 1/2; got "
                             f"alpha={config['alpha']} (give --flip-rate)")
    if config["l2"] is not None and solver != "exact":
        raise ParameterError("l2", "l2 is only used with --solver exact")
    check_filter_size(config, data.train_size(config["n"]))


def fit(configs: list[dict]) -> list[dict]:
    """Attack, defend, train and measure every configuration (one batched run per training-set size)."""
    c0 = configs[0]
    K = len(configs)
    cleans = [make_data(c) for c in configs]
    need_ref = c0["continue_from_clean"] or any(_uses_clean_model(c) for c in configs)
    reference = None
    if need_ref:  # theta_0: trained on the clean data (the most-confident attacker's model; the continued start)
        ref_configs = configs
        if c0["solver"] == "exact":  # separable clean data: the attacker's exact model needs a ridge
            ref_configs = [{**c, "l2": max(c["l2"] or 0.0, 1e-3)} for c in configs]
        reference = fit_models(ref_configs, [(ds.X_train, ds.y_train, ds.X_test) for ds in cleans],
                               aggregate=False)
    poisoned, margins = [], []
    for k, (c, ds) in enumerate(zip(configs, cleans)):
        scores = _scores_most_confident(reference, k, ds, c) if c["flip"] == "most-confident" else None
        p, m = poison(c, ds, scores)
        poisoned.append(p)
        margins.append(m)
    init = reference.state if c0["continue_from_clean"] else None
    if c0["defense"] in FILTERS + CENTROID_FILTERS:
        keeps = (_filter(configs, poisoned, init) if c0["defense"] in FILTERS else
                 [defenses.loss_filter(defenses.centroid_scores(p.X_train, p.y_train, c["defense"].split("-")[0]),
                                       c["alpha"]) for c, p in zip(configs, poisoned)])
        check_kept(configs, keeps)
        sets = [(p.X_train[keep], p.y_train[keep], p.X_test) for p, keep in zip(poisoned, keeps)]
    else:
        keeps = [None] * K
        sets = [(p.X_train, p.y_train, p.X_test) for p in poisoned]
    final = fit_models(configs, sets, init)
    out = []
    for k, (c, p) in enumerate(zip(configs, poisoned)):
        w_true = p.params["w"]
        w_hat = final.w[k].reshape(-1)
        test_logits = final.logit[k](p.X_test)
        mask, keep = p.poisoned, keeps[k]
        if keep is None:
            keep = torch.ones_like(mask)
        clean_discarded, poison_discarded = defenses.discarded(keep, mask)
        out.append({
            "test_accuracy": float(metrics.accuracy(test_logits, p.y_test, probs=False)),
            "expected_accuracy": expected_accuracy(c, p, final, k),
            "weight_norm": float(w_hat.norm()),
            "angle": float(metrics.angle(w_hat, w_true)) if float(w_hat.norm()) > 0 else math.pi / 2,
            "poisoned_fraction": int(mask.sum()) / p.n_train,
            "clean_discarded": clean_discarded,
            "poison_discarded": poison_discarded,
            "train_accuracy": float(metrics.accuracy(final.logit[k](sets[k][0]), sets[k][1], probs=False)),
            "margin_used": margins[k],
            "strip_mass": strip_mass(c, p, margins[k]),
        })
    return out


def poisoned_count(config: dict) -> int:
    """Training labels the attack flips: round(alpha n_train)."""
    return attacks.poison_count(config["alpha"], data.train_size(config["n"]))


def notes(config: dict) -> list:
    """What the run does that its flags do not say."""
    if config["solver"] != "sgd":
        return []
    return full_batch_note(config["batch_size"], data.train_size(config["n"]))


_UNIT = (0.0, 1.0)
EXPERIMENT = register(Experiment(
    "logistic", fit, PARAMS, METRICS,
    help="Flip a fraction alpha of a logistic-regression training set's labels, defend, and measure the fit.",
    check=_check, save_data=save_data, cost=cost, poisoned=poisoned_count, notes=notes,
    ranges={"test_accuracy": _UNIT, "expected_accuracy": _UNIT, "weight_norm": (0.0, math.inf),
            "angle": (0.0, math.pi), "poisoned_fraction": _UNIT, "clean_discarded": _UNIT, "poison_discarded": _UNIT,
            "train_accuracy": _UNIT, "margin_used": (0.0, math.inf), "strip_mass": _UNIT}))
