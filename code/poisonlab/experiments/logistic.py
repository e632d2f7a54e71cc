"""`poisonlab run logistic`: label flipping against logistic regression, defences, and the chapter's functions.

One configuration: binary data y = 1{w.x + b > 0} with |w| = 1 (data.make_binary; n points before the
80/20 split; x uniform in [-1, 1]^d, Gaussian, or the default Gaussian mixture with two tight clusters
at distance `near` from the boundary), a fraction alpha of the training labels flipped
(attacks.flip_binary: random, near the boundary on both sides, near the boundary on one side, or the
points of largest loss), an optional defence, and a logistic regression (or an MLP) fitted on what is
left: SGD with the batched trainer, or the exact minimiser (Newton, solvers.logistic).

The max-loss attacker ranks the points by the loss their flipped label would have under a model
trained on the clean data (theta_0, the same trainer): the points the clean model is most sure of.
With no margin, "boundary" and "one-sided" flip exactly the round(alpha n) eligible points nearest the
boundary (the margin is set between the k-th and (k+1)-th smallest distance).
Defences: "loss-filter" drops the fraction `drop` of training points of largest loss under a
preliminary model trained on the poisoned data, "knn-filter" the fraction `drop` whose label
disagrees most with their k nearest neighbours (or, with knn_threshold, every point disagreeing with
more than that fraction, defenses.knn_filter), then a fresh model is trained on the rest; "median"
and "trimmed-mean" replace the minibatch mean of the per-example gradients inside SGD. drop defaults
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
"""
from __future__ import annotations

import functools
import json
import math

import numpy as np
import pandas as pd
import torch


from .. import attacks, data, defenses, laws, losses, metrics, solvers, sweep, train, validate
from ..experiment import Experiment, Param, ParameterError, register

__all__ = ["EXPERIMENT", "PARAMS", "METRICS", "make_data", "poison", "fit", "fit_models", "save_data",
           "seeds_of", "auto_margin", "trajectory", "boundary_distances", "evasion_error", "mass_within",
           "affine_part", "expected_accuracy", "strip_mass", "knn_rates", "spec", "run_sweep", "sweeps_table",
           "jackknife", "symmetry_law", "norm_ratio_law", "norm_exponent_law", "crossings", "crossing_law",
           "point_law", "error_summary", "defense_costs", "default_population", "evasion_study", "knn_study",
           "law", "LAWS", "SWEEPS", "ALPHA1", "CONT_ALPHA", "DEFENSES", "FLIPS"]

FLIPS = attacks.BINARY_FLIPS  # random, boundary, one-sided, max-loss
DEFENSES = ("none", "loss-filter", "knn-filter", "median", "trimmed-mean")
FILTERS = ("loss-filter", "knn-filter")
METRICS = ("test_accuracy", "expected_accuracy", "weight_norm", "angle", "poisoned_fraction", "clean_discarded",
           "poison_discarded", "train_accuracy", "margin_used", "strip_mass")
EVAL_POINTS = 2**14  # quasi-random points for the expected accuracy where no quadrature applies


def _n(name, value):
    # 5 points leave one test point and four training points after the 80/20 split
    return validate.positive_int(name, value, minimum=5)


def _widths(name, value):
    return tuple(validate.positive_int(name, v) for v in value)


def _side(name, value):
    if value not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return int(value)


def _trim(name, value):
    value = validate.non_negative(name, value)
    if value >= 0.5:
        raise ValueError(f"{name} must be in [0, 0.5), got {value!r}")
    return value


def _opt(check):
    """A check that lets None (the parameter's 'not given') through."""
    return lambda name, value: None if value is None else check(name, value)


PARAMS = (
    Param("n", 1000, int, "data set size before the 80/20 train/test split", _n, batch=False),
    Param("dim", 2, int, "dimension d of x", validate.positive_int, batch=False),
    Param("x_dist", "uniform", str, "distribution of x: uniform ([-1, 1]^d), gaussian (N(0, I)) or mixture "
          "(Gaussian clusters, two of them close to the boundary)", choices=("uniform", "gaussian", "mixture")),
    Param("near", None, float, "mixture only: distance of the two tight clusters to the boundary "
          "(default 0.15)", _opt(validate.positive_scale)),
    Param("bias", 0.0, float, "the true intercept b (w has unit norm)", validate.scale),
    Param("alpha", 0.1, float, "fraction of training labels flipped, in [0, 1]", validate.fraction),
    Param("flip", "random", str, "which labels are flipped: random, boundary (within the margin, both "
          "sides), one-sided (within the margin, label `side` only) or max-loss", choices=FLIPS),
    Param("margin", None, float, "boundary/one-sided: distance to the true boundary within which points are "
          "flipped (default: the smallest margin holding round(alpha n) eligible points)",
          _opt(validate.non_negative)),
    Param("side", None, int, "one-sided: the label of the points flipped, 0 or 1 (default 1)", _opt(_side)),
    Param("reference", None, str, "max-loss: the model whose loss ranks the points, clean (theta_0 trained on "
          "the clean data; default) or true (the true boundary: the farthest points first)",
          choices=("clean", "true")),
    Param("defense", "none", str, "defence: none, loss-filter, knn-filter, median or trimmed-mean",
          choices=DEFENSES, batch=False),
    Param("drop", None, float, "filters: fraction of training points discarded (default: alpha)",
          _opt(validate.fraction)),
    Param("knn_k", 10, int, "knn-filter: number of neighbours k", validate.positive_int, batch=False),
    Param("knn_threshold", None, float, "knn-filter: drop every point whose label disagrees with more than this "
          "fraction of its neighbours (instead of a budget `drop`)", _opt(validate.fraction), batch=False),
    Param("trim", 0.1, float, "trimmed-mean: fraction cut at each end of each minibatch coordinate", _trim,
          batch=False),
    Param("solver", "sgd", str, "sgd (the batched trainer) or exact (Newton's method to convergence)",
          choices=("sgd", "exact"), batch=False),
    Param("l2", None, float, "exact solver: ridge penalty (l2/2)|w|^2 (needed on separable data; default 0)",
          _opt(validate.non_negative_scale), batch=False),
    Param("epochs", 30, int, "SGD epochs", validate.positive_int, batch=False),
    Param("lr", 1.0, float, "SGD learning rate (constant step)", validate.positive32),
    Param("batch_size", 64, int, "SGD minibatch size", validate.positive_int, batch=False),
    Param("hidden", (), int, "hidden-layer widths of an MLP (none: logistic regression)", _widths, nargs="*",
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
    if config["reference"] is not None and flip != "max-loss":
        raise ParameterError("reference", f"reference is only used with --flip max-loss, got flip {flip}")
    if config["near"] is not None and config["x_dist"] != "mixture":
        raise ParameterError("near", f"near is only used with --x-dist mixture, got x_dist {config['x_dist']}")
    if config["drop"] is not None and defense not in FILTERS:
        raise ParameterError("drop", f"drop is only used with --defense loss-filter or knn-filter, got {defense}")
    if config["knn_threshold"] is not None and defense != "knn-filter":
        raise ParameterError("knn_threshold", f"knn_threshold is only used with --defense knn-filter, got {defense}")
    if config["knn_threshold"] is not None and config["drop"] is not None:
        raise ParameterError("drop", "give either drop (a budget) or knn_threshold, not both")
    if solver == "exact":
        if config["hidden"]:
            raise ParameterError("hidden", "hidden layers need --solver sgd (the exact solver fits a "
                                 f"logistic regression); got hidden={list(config['hidden'])}")
        if config["continue_from_clean"]:
            raise ParameterError("continue_from_clean", "continue_from_clean needs --solver sgd (an exact "
                                 "solution has no training to continue)")
        if defense in ("median", "trimmed-mean"):
            raise ParameterError("defense", f"defense {defense} aggregates SGD minibatch gradients: it needs "
                                 "--solver sgd")
    elif config["l2"] is not None:
        raise ParameterError("l2", "l2 is only used with --solver exact")
    n_train = config["n"] - round(0.2 * config["n"])
    if defense in FILTERS and config["knn_threshold"] is None:
        drop = config["alpha"] if config["drop"] is None else config["drop"]
        if round(drop * n_train) >= n_train:
            name = "alpha" if config["drop"] is None else "drop"
            raise ParameterError(name, f"the filter would drop every training point ({name} = {drop}, drop defaults "
                                 "to alpha); give a smaller --drop")
    if config["defense"] == "knn-filter" and config["knn_k"] >= n_train:
        raise ParameterError("knn_k", f"knn_k must be smaller than the number of training points "
                             f"{n_train}, got {config['knn_k']}")


def seeds_of(seed: int) -> dict:
    """Independent seeds for the data, the attack and the models (initialisation and shuffles) of one repeat."""
    return {"data": seed, "attack": seed + 1_000_000_007, "model": seed + 2_000_000_014}


def make_data(config: dict) -> data.Dataset:
    """The clean Dataset of one configuration (its `seed` included)."""
    seed = seeds_of(config["seed"])["data"]
    mixture, w = None, None
    if config["x_dist"] == "mixture":
        # the w make_binary would draw first, so that the mixture sits around the true boundary
        w = torch.randn(config["dim"], generator=data.generator(seed), dtype=torch.float64)
        near = 0.15 if config["near"] is None else config["near"]
        mixture = data.default_mixture(config["dim"], near=near, w=w, b=config["bias"])
    return data.make_binary(config["n"], config["dim"], x_dist=config["x_dist"], bias=config["bias"],
                            mixture=mixture, w=w, seed=seed)


def auto_margin(ds: data.Dataset, alpha: float, side=None) -> float:
    """The margin selecting exactly the round(alpha n) eligible training points nearest the true boundary."""
    dist = attacks.boundary_distance(ds).abs()
    if side is not None:
        dist = dist[ds.y_train == side]
    k = attacks.poison_count(alpha, ds.n_train)
    if k > dist.numel():
        raise ParameterError("alpha", f"alpha={alpha} asks for {k} flips but only {dist.numel()} training points "
                             f"are eligible{'' if side is None else f' (label {side})'}")
    d = torch.sort(dist).values
    if k == 0:
        return float(d[0]) / 2
    upper = float(d[k]) if k < d.numel() else float(d[k - 1]) + 1.0
    return 0.5 * (float(d[k - 1]) + upper)


def poison(config: dict, clean: data.Dataset, scores=None) -> tuple[data.Dataset, float]:
    """The poisoned Dataset of one configuration and the margin used (0 unless boundary/one-sided)."""
    flip, alpha = config["flip"], config["alpha"]
    margin, side = config["margin"], config["side"]
    k = attacks.poison_count(alpha, clean.n_train)
    if flip in ("boundary", "one-sided"):
        if flip == "one-sided":
            side = 1 if side is None else side
        if margin is None:
            if k == 0:
                return clean.replace(mask=clean.poisoned), 0.0
            margin = auto_margin(clean, alpha, side)
    elif k == 0:
        return clean.replace(mask=clean.poisoned), 0.0
    try:
        ds = attacks.flip_binary(clean, alpha, how=flip, margin=margin, side=side if flip == "one-sided" else None,
                                 scores=scores, seed=seeds_of(config["seed"])["attack"])
    except ParameterError:
        raise
    except ValueError as e:  # the data decide whether the margin holds enough points: name the flag
        raise ParameterError("margin" if "selects no" in str(e) else "alpha", str(e)) from None
    return ds, 0.0 if margin is None else float(margin)


def affine_part(model: train.BatchedModel, k: int, X_test: torch.Tensor):
    """(w_hat (d,), b_hat) of model k: its weights for a linear model, else the least-squares affine fit
    of its logits on the test inputs."""
    if model.kind == "linear":
        return model.W[k, 0].detach(), float(model.b[k, 0])
    logits = model.forward(X_test[None].expand(model.K, *X_test.shape))[k]
    W, b = solvers.least_squares(X_test, logits)
    return W[0], float(b[0])


class _Fitted:
    """K fitted models, each given by a logit function and its affine part (w_hat, b_hat)."""

    def __init__(self, K):
        self.w = [None] * K
        self.b = [None] * K
        self.state = [None] * K  # SGD: state dicts (for continued training); exact: None
        self.logit = [None] * K  # k -> function X (n, d) -> logits (n,)


def _sgd_kw(configs):
    c0 = configs[0]
    hidden = tuple(c0["hidden"])
    aggregate = c0["defense"] if c0["defense"] in ("median", "trimmed-mean") else "mean"
    return dict(model="mlp" if hidden else "linear", hidden=hidden, loss="bce", epochs=c0["epochs"],
                lr=torch.tensor([c["lr"] for c in configs]), batch_size=c0["batch_size"],
                seeds=[seeds_of(c["seed"])["model"] for c in configs], aggregate=aggregate, trim=c0["trim"],
                configs=configs)


def fit_models(configs: list[dict], sets: list[tuple], init=None, *, aggregate=True) -> _Fitted:
    """Fit one model per configuration on its training set sets[k] = (X (n_k, d), y (n_k,), X_test).

    Sets of equal size are trained together (one batched SGD run, or the exact solver); `init` holds
    state dicts to continue from (SGD). aggregate=False uses the plain mean whatever the defence
    (the preliminary and reference models of the filters and of the max-loss attacker).
    """
    K = len(configs)
    out = _Fitted(K)
    c0 = configs[0]
    groups: dict = {}
    for k, (X, _, _) in enumerate(sets):
        groups.setdefault(int(X.shape[0]), []).append(k)
    for idx in groups.values():
        X = torch.stack([sets[k][0] for k in idx])
        y = torch.stack([sets[k][1] for k in idx])
        sub = [configs[k] for k in idx]
        if c0["solver"] == "exact":
            l2 = 0.0 if c0["l2"] is None else c0["l2"]
            try:
                w, b = solvers.logistic(X, y, l2=l2)
            except ValueError as e:  # separable data: the MLE does not exist without a ridge
                raise ParameterError("l2", str(e)) from None
            for j, k in enumerate(idx):
                out.w[k], out.b[k] = w[j].detach(), float(b[j])
                out.logit[k] = (lambda X_, w_=w[j], b_=float(b[j]): X_ @ w_ + b_)
            continue
        kw = _sgd_kw(sub)
        if not aggregate:
            kw["aggregate"] = "mean"
        start = None if init is None else [init[k] for k in idx]
        model = train.train_batched(X, y, init=start, **kw)
        for j, k in enumerate(idx):
            out.w[k], out.b[k] = affine_part(model, j, sets[k][2])
            out.state[k] = model.state_dict(j)
            out.logit[k] = _logit_fn(model, j)
    return out


def _logit_fn(model: train.BatchedModel, k: int):
    if model.kind == "linear":
        w, b = model.W[k, 0].detach().clone(), float(model.b[k, 0])
        return lambda X: X @ w + b
    net = model.module(k)
    net.eval()

    def logit(X):
        with torch.no_grad():
            return net(X)[..., 0]
    return logit


def _bce(logits, y):
    return losses.per_example("bce", logits[:, None], y[:, None])


def _uses_clean_model(config):
    return config["flip"] == "max-loss" and config["alpha"] > 0 and config["reference"] in (None, "clean")


def _scores_max_loss(reference: _Fitted, k: int, clean: data.Dataset, config: dict):
    """The loss of each training point's flipped label under the clean reference model, or, for
    reference "true", the distance to the true boundary (the same order as that loss under the true model)."""
    if config["reference"] == "true":
        return attacks.boundary_distance(clean).abs()
    return _bce(reference.logit[k](clean.X_train), 1 - clean.y_train)


def fit(configs: list[dict]) -> list[dict]:
    """Attack, defend, train and measure every configuration (one batched run per training-set size)."""
    c0 = configs[0]
    K = len(configs)
    cleans = [make_data(c) for c in configs]
    need_ref = c0["continue_from_clean"] or any(_uses_clean_model(c) for c in configs)
    reference = None
    if need_ref:  # theta_0: trained on the clean data (the max-loss attacker's model; the continued start)
        ref_configs = configs
        if c0["solver"] == "exact":  # separable clean data: the attacker's exact model needs a ridge
            ref_configs = [{**c, "l2": max(c["l2"] or 0.0, 1e-3)} for c in configs]
        reference = fit_models(ref_configs, [(ds.X_train, ds.y_train, ds.X_test) for ds in cleans],
                               aggregate=False)
    poisoned, margins = [], []
    for k, (c, ds) in enumerate(zip(configs, cleans)):
        scores = _scores_max_loss(reference, k, ds, c) if c["flip"] == "max-loss" else None
        p, m = poison(c, ds, scores)
        poisoned.append(p)
        margins.append(m)
    init = reference.state if c0["continue_from_clean"] else None
    if c0["defense"] in FILTERS:
        keeps = _filter(configs, poisoned, init)
        _kept_some(configs, keeps)
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
        n_poison, n_clean = int(mask.sum()), int((~mask).sum())
        out.append({
            "test_accuracy": float(metrics.accuracy(test_logits, p.y_test, probs=False)),
            "expected_accuracy": expected_accuracy(c, p, final, k),
            "weight_norm": float(w_hat.norm()),
            "angle": float(metrics.angle(w_hat, w_true)) if float(w_hat.norm()) > 0 else math.pi / 2,
            "poisoned_fraction": n_poison / p.n_train,
            "clean_discarded": float((~keep & ~mask).sum()) / n_clean if n_clean else 0.0,
            "poison_discarded": float((~keep & mask).sum()) / n_poison if n_poison else 0.0,
            "train_accuracy": float(metrics.accuracy(final.logit[k](sets[k][0]), sets[k][1], probs=False)),
            "margin_used": margins[k],
            "strip_mass": strip_mass(c, p, margins[k]),
        })
    return out


def expected_accuracy(config: dict, ds: data.Dataset, fitted: _Fitted, k: int) -> float:
    """Accuracy of fitted model k under the distribution of x (see the module docstring)."""
    from ..theory import logistic as theory

    w, b = ds.params["w"].double(), float(ds.params["b"])
    dist = config["x_dist"]
    if not config["hidden"] and dist in ("gaussian", "mixture"):
        mixture = ds.params["mixture"] if dist == "mixture" else theory.gaussian_mixture_of(config["dim"])
        w_hat = fitted.w[k].reshape(-1).double().numpy()
        if not np.any(w_hat):
            return 0.5
        return theory.population_accuracy(w_hat, fitted.b[k], mixture, w.numpy(), b)
    X, X64 = _eval_points(config, ds)
    y = X64 @ w + b > 0
    return float(((fitted.logit[k](X) > 0) == y).float().mean())


def strip_mass(config: dict, ds: data.Dataset, margin: float) -> float:
    """Probability mass of the strip the attack flipped from: |z| < margin (boundary) or 0 < z < margin
    on the side attacked (one-sided), under the distribution of x; 0 for the other attacks."""
    from ..theory import logistic as theory

    flip = config["flip"]
    if flip not in ("boundary", "one-sided") or margin == 0.0:
        return 0.0
    side = None if flip == "boundary" else (1 if config["side"] is None else config["side"])
    w, b = ds.params["w"].double(), float(ds.params["b"])
    if config["x_dist"] == "uniform":
        z = _fixed_points("uniform", config["dim"])[1] @ w + b
        inside = z.abs() < margin
        if side is not None:
            inside &= (z > 0) if side == 1 else (z <= 0)
        return float(inside.double().mean())
    mixture = ds.params["mixture"] if config["x_dist"] == "mixture" else theory.gaussian_mixture_of(config["dim"])
    return theory.strip_mass(mixture, w.numpy(), b, margin, side=side)


def _eval_points(config: dict, ds: data.Dataset):
    """(X float32, X float64): the points the expected accuracy is averaged over."""
    if config["x_dist"] == "mixture":
        X = data.sample_mixture(ds.params["mixture"], EVAL_POINTS, generator=data.generator(0))[0]
        return X, X.double()
    return _fixed_points(config["x_dist"], config["dim"])


@functools.lru_cache(maxsize=16)
def _fixed_points(x_dist: str, d: int):
    """The evaluation points of the square (scrambled Sobol) or of N(0, I) (seed 0), once per d, as
    (float32, float64)."""
    if x_dist == "uniform":
        X = torch.quasirandom.SobolEngine(d, scramble=True, seed=0).draw(EVAL_POINTS) * 2 - 1
    else:
        X = torch.randn(EVAL_POINTS, d, generator=data.generator(0))
    return X, X.double()


def _kept_some(configs, keeps) -> None:
    """A filter that discards every training point leaves nothing to train on: name the flag that did it."""
    for c, keep in zip(configs, keeps):
        if keep is not None and not bool(keep.any()):
            if c["knn_threshold"] is not None:
                raise ParameterError("knn_threshold", f"the knn-filter discarded all {keep.numel()} training points "
                                     f"(every label disagrees with more than knn_threshold = {c['knn_threshold']} of "
                                     f"its {c['knn_k']} neighbours); raise --knn-threshold")
            name = "alpha" if c["drop"] is None else "drop"
            raise ParameterError(name, f"the {c['defense']} discarded all {keep.numel()} training points "
                                 f"({name} = {c[name]}); give a smaller --drop")


def _filter(configs, poisoned, init):
    """Keep-masks of the loss or kNN filter for each configuration."""
    c0 = configs[0]
    if c0["defense"] == "knn-filter" and c0["knn_threshold"] is not None:
        return [defenses.knn_filter(p.X_train, p.y_train, c0["knn_k"], c0["knn_threshold"]) for p in poisoned]
    drops = [c["alpha"] if c["drop"] is None else c["drop"] for c in configs]
    keeps = [torch.ones(p.n_train, dtype=torch.bool) for p in poisoned]
    active = [k for k, (f, p) in enumerate(zip(drops, poisoned)) if round(f * p.n_train) > 0]
    if not active:  # nothing to drop: no scores needed
        return keeps
    if c0["defense"] == "loss-filter":
        prelim = fit_models([configs[k] for k in active],
                            [(poisoned[k].X_train, poisoned[k].y_train, poisoned[k].X_test) for k in active],
                            None if init is None else [init[k] for k in active], aggregate=False)
        scores = {k: _bce(prelim.logit[j](poisoned[k].X_train), poisoned[k].y_train) for j, k in enumerate(active)}
    else:
        scores = {k: defenses.knn_disagreement(poisoned[k].X_train, poisoned[k].y_train, c0["knn_k"]) for k in active}
    for k in active:
        keeps[k] = defenses.loss_filter(scores[k], drops[k])
    return keeps


# ---------------------------------------------------------------------------------------------
# Chapter-specific computations (not sweeps of the experiment)


def trajectory(config: dict, record_every: int):
    """Continue training theta_0 on the poisoned data: (steps, test accuracy, |w_hat|, angle) along the way.

    theta_0 is trained on the clean data first (as with continue_from_clean); the parameters are
    recorded every `record_every` steps of the continued run, step 0 being theta_0 itself.
    """
    record_every = validate.positive_int("record_every", record_every)
    config = EXPERIMENT.resolve(**{k: v for k, v in config.items() if k != "seed"},
                                continue_from_clean=True, seed=config.get("seed", 0))
    if config["solver"] != "sgd" or config["hidden"] or config["defense"] != "none":
        raise ValueError("trajectory needs solver sgd, a linear model and no defence")
    clean = make_data(config)
    ref = fit_models([config], [(clean.X_train, clean.y_train, clean.X_test)], aggregate=False)
    scores = _scores_max_loss(ref, 0, clean, config) if config["flip"] == "max-loss" else None
    poisoned, _ = poison(config, clean, scores)
    model = train.train_batched(poisoned.X_train[None], poisoned.y_train[None], init=ref.state,
                                record_every=record_every, **_sgd_kw([config]))
    W = model.trajectory["W"][:, 0, 0]  # (T, d)
    b = model.trajectory["b"][:, 0, 0]
    logits = poisoned.X_test @ W.T + b  # (n_test, T)
    acc = ((logits > 0).float() == poisoned.y_test[:, None]).float().mean(0)
    w = poisoned.params["w"]
    norms = W.norm(dim=1)
    angles = torch.arccos((W @ w / norms).clamp(-1, 1))
    return (model.trajectory_steps.numpy(), acc.numpy(), norms.detach().numpy(), angles.detach().numpy())


def boundary_distances(config: dict):
    """Signed distances of the clean test points to the learned boundary (positive: correctly classified)."""
    config = EXPERIMENT.resolve(**{k: v for k, v in config.items() if k != "seed"}, seed=config.get("seed", 0))
    if config["hidden"]:
        raise ValueError("boundary_distances needs a linear model (hidden = ())")
    clean = make_data(config)
    c = dict(config)
    reference = None
    if c["flip"] == "max-loss" or c["continue_from_clean"]:
        reference = fit_models([c], [(clean.X_train, clean.y_train, clean.X_test)], aggregate=False)
    scores = _scores_max_loss(reference, 0, clean, c) if c["flip"] == "max-loss" else None
    p, _ = poison(c, clean, scores)
    keep = _filter([c], [p], None if reference is None or not c["continue_from_clean"] else reference.state)[0] \
        if c["defense"] in FILTERS else torch.ones(p.n_train, dtype=torch.bool)
    init = reference.state if c["continue_from_clean"] else None
    model = fit_models([c], [(p.X_train[keep], p.y_train[keep], p.X_test)], init)
    w_hat, b_hat = model.w[0].reshape(-1), model.b[0]
    s = 2 * p.y_test - 1
    return (s * (p.X_test @ w_hat + b_hat) / w_hat.norm()).numpy()


def evasion_error(distances, eps):
    """Test error when every test point may move a distance eps toward the boundary: P(signed distance < eps)."""
    d = np.asarray(distances, dtype=float)
    eps = np.atleast_1d(np.asarray(eps, dtype=float))
    if np.any(eps < 0) or not np.all(np.isfinite(eps)):
        raise ValueError("eps must be finite and >= 0")
    return (d[None, :] < eps[:, None]).mean(1)


def mass_within(config: dict, margin, side=None) -> float:
    """Fraction of the clean training points within `margin` of the true boundary (side: only label side)."""
    config = EXPERIMENT.resolve(**{k: v for k, v in config.items() if k != "seed"}, seed=config.get("seed", 0))
    ds = make_data(config)
    dist = attacks.boundary_distance(ds)
    sel = dist.abs() < validate.non_negative("margin", margin)
    if side is not None:
        sel &= ds.y_train == _side("side", side)
    return float(sel.float().mean())


def knn_rates(config: dict, far: float) -> dict:
    """kNN filter (threshold rule) on the poisoned training set of one configuration, no training:
    the fractions of flipped and of clean points dropped, among points farther than `far` from the
    true boundary ("*_far") and among all points."""
    config = EXPERIMENT.resolve(**{k: v for k, v in config.items() if k != "seed"}, seed=config.get("seed", 0))
    if config["flip"] == "max-loss" and config["reference"] != "true":
        raise ValueError("knn_rates needs an attack without a trained reference (flip max-loss: reference true)")
    clean = make_data(config)
    scores = attacks.boundary_distance(clean).abs() if config["flip"] == "max-loss" else None
    p, _ = poison(config, clean, scores)
    threshold = 0.5 if config["knn_threshold"] is None else config["knn_threshold"]
    dropped = ~defenses.knn_filter(p.X_train, p.y_train, config["knn_k"], threshold)
    is_far = attacks.boundary_distance(p).abs() > validate.non_negative("far", far)
    mask = p.poisoned
    rate = lambda sel: float(dropped[sel].float().mean()) if bool(sel.any()) else 0.0  # noqa: E731
    return {"flipped_far": rate(mask & is_far), "clean_far": rate(~mask & is_far),
            "flipped": rate(mask), "clean": rate(~mask), "far_fraction": float(is_far.float().mean())}


# ---------------------------------------------------------------------------------------------
# The chapter's studies: every sweep (by name) and the laws measured on them

ALPHA1 = 0.2        # the chapter's running example of a poisoned fraction
CONT_ALPHA = 0.3    # max-loss flips past the mixture's reversal, for the continued-training study


def _sizes(profile=None):
    from ..profile import get_profile

    if profile is None or isinstance(profile, str):
        profile = get_profile(profile)
    return profile, profile.logistic


def spec(name: str, profile=None) -> dict:
    """The sweep `name` of the chapter: sweep.run's grid, fixed, repeats and seed (sizes from the profile)."""
    _, S = _sizes(profile)
    R, bonus, dfn, rsgd = S["repeats"], S["bonus_repeats"], S["defense_repeats"], S["rate_sgd_repeats"]
    mix = {"x_dist": "mixture"}
    # a small step: constant-step SGD is biased by O(lr) where the loss is flat, as it is near a reversal
    gauss_rev = {"x_dist": "gaussian", "n": S["reversal_n"], "lr": S["rate_lr"]}
    rate = {"alpha": S["rate_alpha"]}
    specs = {
        "alpha": ({"alpha": S["alphas"]}, {}, R, 0),
        "norm": ({"alpha": S["norm_alphas"]}, {"x_dist": "gaussian", "n": S["norm_n"], "solver": "exact"}, R, 1),
        "mixture": ({"alpha": S["mixture_alphas"]}, mix, R, 2),
        "mixture-law": ({"alpha": [ALPHA1]}, {**mix, "n": S["mixture_law_n"]}, R, 2),
        "near": ({"flip": ["boundary", "one-sided"], "alpha": S["margin_alphas"]}, {**mix, "margin": S["margin"]},
                 R, 3),
        "near-random": ({"alpha": S["margin_alphas"]}, mix, R, 3),
        "strip": ({"flip": ["one-sided", "boundary"], "x_dist": ["uniform", "mixture"], "alpha": S["strip_alphas"]},
                  {}, R, 4),
        "strip-law": ({"alpha": S["strip_alphas"]}, {"flip": "one-sided", "n": S["strip_n"]}, R, 4),
        "maxloss": ({"reference": ["clean", "true"], "alpha": S["maxloss_alphas"]}, {**mix, "flip": "max-loss"}, R, 5),
        "reversal-maxloss": ({"alpha": S["maxloss_reversal"]}, {**gauss_rev, "flip": "max-loss", "reference": "true"},
                             R, 6),
        "reversal-boundary": ({"alpha": S["boundary_reversal"]},
                              {**gauss_rev, "flip": "boundary", "margin": S["gauss_margin"]}, R, 6),
        "dim-exact": ({"dim": S["dims"]}, {**rate, "n": S["dim_n"], "x_dist": "gaussian", "solver": "exact"}, R, 8),
        "dim-sgd": ({"dim": S["dims"], "x_dist": ["gaussian", "mixture"]}, {**rate, "n": S["dim_n"], "lr": S["rate_lr"]},
                    rsgd, 8),
        "n-exact": ({"n": S["ns"]}, {**rate, "x_dist": "gaussian", "solver": "exact"}, R, 9),
        "n-sgd": ({"n": S["ns"], "x_dist": ["gaussian", "mixture"]}, {**rate, "lr": S["rate_lr"]}, rsgd, 9),
        "hidden": ({"hidden": [(), tuple(S["hidden"])], "flip": ["random", "max-loss"], "alpha": S["hidden_alphas"]},
                   mix, bonus, 10),
        "little": ({"n": S["little_ns"], "alpha": [0.0, ALPHA1]}, mix, bonus, 11),
        "continue": ({"continue_from_clean": [False, True], "flip": ["random", "max-loss"]},
                     {**mix, "alpha": CONT_ALPHA}, bonus, 12),
        "defense": ({"defense": list(DEFENSES), "flip": list(FLIPS), "alpha": S["defense_alphas"]}, mix, dfn, 13),
        "cost-filters": ({"defense": ["loss-filter", "knn-filter"], "drop": [0.05, 0.2]}, {**mix, "alpha": 0.0},
                         dfn, 14),
        "cost-plain": ({"defense": ["none", "median", "trimmed-mean"]}, {**mix, "alpha": 0.0}, dfn, 14),
    }
    if name not in specs:
        raise ValueError(f"name must be one of {', '.join(specs)}; got {name!r}")
    grid, fixed, repeats, seed = specs[name]
    return {"grid": grid, "fixed": fixed, "repeats": repeats, "seed": seed}


SWEEPS = ("alpha", "norm", "mixture", "mixture-law", "near", "near-random", "strip", "strip-law", "maxloss", "reversal-maxloss",
          "reversal-boundary", "dim-exact", "dim-sgd", "n-exact", "n-sgd", "hidden", "little", "continue", "defense",
          "cost-filters", "cost-plain")
_MEMO: dict = {}


def _memo(key, compute):
    """Results computed once per process (the chapter's cells and its laws table share them)."""
    if key not in _MEMO:
        _MEMO[key] = compute()
    return _MEMO[key]


def run_sweep(name: str, profile=None):
    """sweep.run of the chapter's sweep `name` (on-disk cache as always; once per process)."""
    profile, _ = _sizes(profile)
    return _memo(("sweep", name, profile.name), lambda: sweep.run(EXPERIMENT, **spec(name, profile), progress=False))


def sweeps_table(profile=None) -> pd.DataFrame:
    """One row per sweep of the chapter: what varies, what is fixed, repeats, configurations."""
    rows = []
    for name in SWEEPS:
        sp = spec(name, profile)
        points = int(np.prod([len(v) for v in sp["grid"].values()]))
        rows.append({"sweep": name, "grid": "; ".join(f"{k} ({len(v)})" for k, v in sp["grid"].items()),
                     "fixed": ", ".join(f"{k}={v}" for k, v in sp["fixed"].items()),
                     "repeats": sp["repeats"], "runs": points * sp["repeats"]})
    return pd.DataFrame(rows)


def _rows(result, where: dict):
    """The rows of a sweep whose parameters equal `where` (all rows for an empty `where`)."""
    rows = result.rows
    for k, v in where.items():
        if k not in rows.columns:
            raise ValueError(f"where: {k!r} is not a column of the sweep")
        rows = rows[np.isclose(rows[k].astype(float), v)] if isinstance(v, float) else rows[rows[k] == v]
    if rows.empty:
        raise ValueError(f"where: no rows with {where}")
    return rows


def jackknife(rows: pd.DataFrame, statistic, level: float = 0.95):
    """laws.jackknife without its standard error: (estimate, lo, hi)."""
    return laws.jackknife(rows, statistic, level)[:3]


def _curve(rows, x, y):
    g = rows.groupby(x)[y].mean()
    return g.index.to_numpy(dtype=float), g.to_numpy(dtype=float)


def _slope(x, y):
    return float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])


def _exponent(x, y):
    return _slope(np.log(x), np.log(y))


def _per_seed(result, where: dict):
    """The selected rows as {seed: DataFrame sorted by alpha}."""
    rows = _rows(result, where).sort_values(["seed", "alpha"])
    return {seed: g for seed, g in rows.groupby("seed", sort=True)}


def symmetry_law(result, metric: str = "expected_accuracy") -> laws.Law:
    """acc(alpha) + acc(1 - alpha) = 1: the mean over the grid's pairs, per repeat, with a t-CI over repeats."""
    values = []
    for _, g in _per_seed(result, {}).items():
        acc = dict(zip(np.round(g["alpha"].to_numpy(), 9), g[metric].to_numpy()))
        pairs = [acc[a] + acc[round(1 - a, 9)] for a in acc if a <= 0.5 and round(1 - a, 9) in acc]
        if not pairs:
            raise ValueError("result must hold pairs alpha, 1 - alpha")
        values.append(float(np.mean(pairs)))
    mean, lo, hi = sweep.mean_ci(values)
    return laws.Law("acc(α) + acc(1 − α) = 1 (label-mirror symmetry)", 1.0, mean, lo, hi,
                    how="mean over α pairs, t-CI over repeats")


def norm_ratio_law(result) -> laws.Law:
    """|w_hat| / a*(alpha) = 1 (random flips, Gaussian x): the mean ratio over the grid per repeat."""
    from ..theory import logistic as theory

    rows = result.rows
    ratio = rows["weight_norm"].to_numpy() / theory.flip_weight_norm(rows["alpha"].to_numpy())
    per_seed = pd.Series(ratio).groupby(rows["seed"].to_numpy()).mean().to_numpy()
    mean, lo, hi = sweep.mean_ci(per_seed)
    return laws.Law("‖ŵ‖ = a*(α), with a* I(a*) = (1 − 2α) φ(0)", 1.0, mean, lo, hi,
                    how="mean of ‖ŵ‖ / a*(α) over α, t-CI over repeats")


def norm_exponent_law(result, alphas) -> laws.Law:
    """The power-law exponent of |w_hat| against alpha over small alphas, against that of a*(alpha)."""
    from ..theory import logistic as theory

    rows = result.rows[result.rows["alpha"].isin(list(alphas))]
    est = jackknife(rows, lambda r: _exponent(*_curve(r, "alpha", "weight_norm")))
    a = np.array(sorted(set(rows["alpha"])), dtype=float)
    predicted = theory.rate_exponent(a, theory.flip_weight_norm(a))
    return laws.Law("‖ŵ‖ ∝ α^k at small α (k → −1/2: a* ≈ π/√(12α))", predicted, *est,
                    how="fitted log-log exponent, jackknife over repeats")


def crossings(result, metric: str = "expected_accuracy", level: float = 0.5, **where):
    """Per repeat, the alpha at which `metric` first falls below `level` (linear interpolation);
    `where` selects rows by parameter values (e.g. reference="true")."""
    out = []
    for seed, g in _per_seed(result, where).items():
        a, m = g["alpha"].to_numpy(), g[metric].to_numpy()
        below = np.nonzero(m < level)[0]
        if below.size == 0 or below[0] == 0:
            raise ValueError(f"{metric} must start above {level} and fall below it within the grid (seed {seed})")
        i = below[0]
        out.append(float(a[i - 1] + (a[i] - a[i - 1]) * (m[i - 1] - level) / (m[i - 1] - m[i])))
    return np.array(out)


def crossing_law(result, predicted: float, statement: str, metric: str = "expected_accuracy", **where) -> laws.Law:
    """The alpha at which the accuracy crosses 1/2 (reversal), mean and t-CI over repeats, against a prediction."""
    mean, lo, hi = sweep.mean_ci(crossings(result, metric, **where))
    return laws.Law(statement, predicted, mean, lo, hi, how="α where accuracy crosses 1/2, t-CI over repeats")


def point_law(result, predicted: float, statement: str, metric: str = "expected_accuracy", **where) -> laws.Law:
    """The mean of `metric` at one grid point (`where`: parameter values) against a prediction."""
    rows = _rows(result, where)
    mean, lo, hi = sweep.mean_ci(rows[metric])
    at = ", ".join(f"{k} = {v}" for k, v in where.items())
    return laws.Law(statement, predicted, mean, lo, hi, how=f"mean {metric.replace('_', ' ')} at {at}")


def error_summary(result) -> pd.DataFrame:
    """A sweep's summary with the test error 1 - expected accuracy (error_mean, error_lo, error_hi) and n_train."""
    s = result.summary()
    return s.assign(n_train=s["n"] - (0.2 * s["n"]).round().astype(int), error_mean=1 - s["expected_accuracy_mean"],
                    error_lo=1 - s["expected_accuracy_hi"], error_hi=1 - s["expected_accuracy_lo"])


def _with_error(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(error=1 - rows["expected_accuracy"], n_train=rows["n"] - (0.2 * rows["n"]).round())


def defense_costs(defended, plain, metric: str = "expected_accuracy") -> pd.DataFrame:
    """Accuracy of each defence minus that of plain SGD ("none") on the same seeds: mean [95% CI].

    `plain` holds the defence "none" (and possibly others); both sweeps must use the same seeds and data.
    """
    rows = pd.concat([defended.rows, plain.rows], ignore_index=True)
    base = rows[rows["defense"] == "none"].set_index("seed")[metric]
    out = []
    for (defense, drop), g in rows[rows["defense"] != "none"].groupby(["defense", rows["drop"].fillna(-1)],
                                                                       sort=False):
        mean, lo, hi = sweep.mean_ci(g[metric].to_numpy() - base.loc[g["seed"]].to_numpy())
        out.append({"defence": defense, "drop": "" if drop < 0 else drop,
                    "accuracy change": f"{_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]"})
    return pd.DataFrame(out)


def _fmt(x):
    from .. import book

    return book.fmt(x)


def default_population():
    """(mixture, w): the default mixture around w = e_1 (the population only depends on the geometry
    relative to w, so e_1 stands for every draw of the true w)."""
    W1 = np.array([1.0, 0.0])
    return data.default_mixture(2, w=torch.tensor(W1)), W1


def evasion_study(profile=None) -> dict:
    """Clean models on Gaussian and mixture data, one per repeat: the signed distances of the test points
    to the learned boundary, and the evasion error at each budget eps (per repeat)."""
    profile, S = _sizes(profile)

    def compute():
        eps = np.array(S["evasion_eps"], dtype=float)
        dists = {x: [boundary_distances({"x_dist": x, "alpha": 0.0, "seed": r}) for r in range(S["repeats"])]
                 for x in ("gaussian", "mixture")}
        return {"eps": eps, "distances": dists,
                "error": {x: np.array([evasion_error(d, eps) for d in ds]) for x, ds in dists.items()}}
    return _memo(("evasion", profile.name), compute)


def knn_study(profile=None) -> pd.DataFrame:
    """knn_rates of random flips on the mixture, per alpha and repeat."""
    profile, S = _sizes(profile)
    return _memo(("knn", profile.name), lambda: pd.DataFrame([
        {**knn_rates({"x_dist": "mixture", "alpha": a, "defense": "knn-filter", "seed": r}, S["knn_far"]),
         "alpha": a, "seed": r} for a in S["knn_alphas"] for r in range(S["knn_repeats"])]))


def _law_mirror(profile):
    return symmetry_law(run_sweep("alpha", profile))


def _law_norm(profile):
    return norm_ratio_law(run_sweep("norm", profile))


def _law_norm_exponent(profile):
    _, S = _sizes(profile)
    return norm_exponent_law(run_sweep("norm", profile), S["norm_small"])


def _law_mixture(profile):
    from ..theory import logistic as theory

    mixture, w = default_population()
    pop = float(theory.population_curve("random", [ALPHA1], mixture, w)[0][0])
    _, S = _sizes(profile)
    return point_law(run_sweep("mixture-law", profile), pop,
                     f"mixture, random flips: accuracy = population fit's (n = {S['mixture_law_n']})", alpha=ALPHA1)


def _law_strip(profile):
    rows = _with_error(run_sweep("strip-law", profile).rows)
    est = jackknife(rows, lambda r: _slope(*(lambda g: (g["strip_mass"], g["error"]))(
        r.groupby("alpha")[["strip_mass", "error"]].mean())))
    return laws.Law("one-sided strip flips: error = strip mass M (square)", 1.0, *est,
                    how="fitted slope of error against M, jackknife over repeats")


def _law_reversal_maxloss(profile):
    from ..theory import logistic as theory

    return crossing_law(run_sweep("reversal-maxloss", profile), theory.reversal_alpha("max-loss"),
                        "Gaussian, max-loss flips reverse at erfc(√log 2)")


def _law_reversal_boundary(profile):
    from ..theory import logistic as theory

    _, S = _sizes(profile)
    return crossing_law(run_sweep("reversal-boundary", profile), theory.reversal_alpha("boundary", S["gauss_margin"]),
                        f"Gaussian, both-sided flips within m = {S['gauss_margin']} reverse at α_rev(m)")


def _law_reversal_mixture(profile):
    from ..theory import logistic as theory

    mixture, w = default_population()
    return crossing_law(run_sweep("maxloss", profile), theory.population_reversal("max-loss", mixture, w),
                        "mixture, max-loss flips reverse where the population fit does", reference="true")


def _law_evasion(profile):
    from ..theory import logistic as theory

    study = evasion_study(profile)
    mass = np.array([theory.evasion_error(theory.gaussian_mixture_of(2), [1.0, 0.0], 0.0, e) for e in study["eps"]])
    err = study["error"]["gaussian"]  # (repeats, eps)
    rows = pd.DataFrame([{"seed": r, "mass": m, "error": err[r, j]} for r in range(err.shape[0])
                         for j, m in enumerate(mass)])
    est = jackknife(rows, lambda r: _slope(*(lambda g: (g.index, g.to_numpy()))(r.groupby("mass")["error"].mean())))
    return laws.Law("evasion error at budget ε = P(|z| < ε) (Gaussian, clean model)", 1.0, *est,
                    how="fitted slope of evasion error against the mass within ε, jackknife over repeats")


def _law_rate_n(profile):
    rows = _with_error(run_sweep("n-exact", profile).rows)
    est = jackknife(rows, lambda r: _exponent(*_curve(r, "n_train", "error")))
    return laws.Law("random flips: error ∝ n^(−1/2) (Gaussian, MLE)", -0.5, *est,
                    how="fitted log-log exponent, jackknife over repeats")


def _law_rate_d(profile):
    from ..theory import logistic as theory

    _, S = _sizes(profile)
    rows = _with_error(run_sweep("dim-exact", profile).rows)
    est = jackknife(rows, lambda r: _exponent(*_curve(r, "dim", "error")))
    predicted = theory.rate_exponent(S["dims"], theory.dimension_factor(S["dims"]))
    return laws.Law("random flips: error ∝ h(d) ≈ √d (Gaussian, MLE)", predicted, *est,
                    how="fitted log-log exponent (prediction: slope of h(d) on the grid), jackknife over repeats")


def _law_rate_constant(profile):
    from ..theory import logistic as theory

    _, S = _sizes(profile)
    rows = pd.concat([_with_error(run_sweep(name, profile).rows) for name in ("n-exact", "dim-exact")],
                     ignore_index=True)
    rows = rows.assign(predicted=theory.predicted_error(S["rate_alpha"], rows["n_train"].to_numpy(),
                                                        rows["dim"].to_numpy()))

    def ratio(r):
        g = r.groupby(["n", "dim"])[["error", "predicted"]].mean()
        return float(np.mean(g["error"] / g["predicted"]))
    return laws.Law("random flips: error = K(α) h(d) / √n (Gaussian, MLE)", 1.0, *jackknife(rows, ratio),
                    how="mean ratio measured / predicted over the n and d grids, jackknife over repeats")


def _law_knn(flipped: bool):
    def law(profile):
        from ..theory import logistic as theory

        _, S = _sizes(profile)
        a = max(S["knn_alphas"])
        col = "flipped_far" if flipped else "clean_far"
        study = knn_study(profile)
        mean, lo, hi = sweep.mean_ci(study.loc[np.isclose(study["alpha"], a), col])
        what = "flipped points dropped = P(Bin(k, 1−α) > k/2)" if flipped else "clean points dropped = P(Bin(k, α) > k/2)"
        return laws.Law(f"kNN filter far from the boundary: {what}",
                        theory.knn_flag_probability(a, S["knn_k"], 0.5, flipped), mean, lo, hi,
                        how=f"mean at α = {a}, t-CI over repeats")
    return law


LAWS = {
    "mirror": _law_mirror, "norm": _law_norm, "norm-exponent": _law_norm_exponent, "mixture": _law_mixture,
    "strip": _law_strip, "reversal-maxloss": _law_reversal_maxloss, "reversal-boundary": _law_reversal_boundary,
    "reversal-mixture": _law_reversal_mixture, "evasion": _law_evasion, "rate-n": _law_rate_n,
    "rate-d": _law_rate_d, "rate-constant": _law_rate_constant, "knn-flipped": _law_knn(True),
    "knn-clean": _law_knn(False),
}


def law(name: str, profile=None) -> laws.Law:
    """The law `name` of the chapter (see LAWS): prediction against measurement with a 95% CI."""
    if name not in LAWS:
        raise ValueError(f"name must be one of {', '.join(LAWS)}; got {name!r}")
    profile, _ = _sizes(profile)
    return _memo(("law", name, profile.name), lambda: LAWS[name](profile))


def save_data(config: dict, path) -> None:
    """Write one configuration's poisoned training set, clean test set, poison mask and true w, b (.npz)."""
    clean = make_data(config)
    scores = None
    if config["flip"] == "max-loss":
        ref = fit_models([config], [(clean.X_train, clean.y_train, clean.X_test)], aggregate=False)
        scores = _scores_max_loss(ref, 0, clean, config)
    p, margin = poison(config, clean, scores)
    arrays = {"X_train": p.X_train, "y_train": p.y_train, "X_test": p.X_test, "y_test": p.y_test,
              "mask": p.poisoned, "w": p.params["w"], "b": torch.tensor(float(p.params["b"]))}
    config_json = json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()})
    with open(path, "wb") as f:  # a file object: numpy would otherwise append .npz to the name
        np.savez(f, **{k: v.numpy() for k, v in arrays.items()}, margin=np.array(margin),
                 config=np.array(config_json))


def _n_train(n: int) -> int:
    return n - round(0.2 * n)


_SIZES = {"n": 1000, "dim": 10, "epochs": 30, "hidden": 128, "knn_k": 10}


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration (trained together)."""
    from ..experiment import FLOPS, STEP_SECONDS, Cost, blame

    K, n, d = repeats, config["n"], config["dim"]
    N, H = _n_train(n), tuple(config["hidden"])
    widths = [d, *H, 1]
    P = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    mixture = config["x_dist"] == "mixture"
    # data and their float64 copies; a mixture draws one d x d factor per point (sample_mixture)
    data = 40 * n * d + (8 * n * d * d + 2 * 8 * 4 * d * d if mixture else 0)
    evaluate = 2 * EVAL_POINTS * d * 8 + (8 * EVAL_POINTS * d * d if mixture and H else 0)
    B = min(config["batch_size"], N)
    model = 24 * P + 16 * B * sum(H) + 16 * max(n, EVAL_POINTS) * max((*H, 1))
    knn = 8 * (3 * min(1024, N) * N + N * d) if config["defense"] == "knn-filter" else 0
    total = K * (data + model) + max(evaluate, knn)
    passes = 1 + (config["defense"] == "loss-filter") + (config["continue_from_clean"] or config["flip"] == "max-loss")
    flops = K * (2 * N * N * d if config["defense"] == "knn-filter" else 0) + (K * 8 * d**3 if mixture else 0)
    if config["solver"] == "exact":
        flops += passes * K * 50 * (2 * N * (d + 1) ** 2 + (d + 1) ** 3)
        seconds = flops / FLOPS
    else:
        steps = config["epochs"] * math.ceil(N / B)
        flops += passes * K * config["epochs"] * N * 6 * P
        seconds = flops / FLOPS + passes * steps * STEP_SECONDS["generic" if H else "fast"]
    sizes = dict(_SIZES)
    if config["defense"] != "knn-filter":
        del sizes["knn_k"]
    if config["solver"] == "exact":
        del sizes["epochs"]
    return Cost(total, seconds, blame(config, sizes), blame(config, {k: v for k, v in sizes.items() if k != "epochs"}))


def poisoned_count(config: dict) -> int:
    """Training labels the attack flips: round(alpha n_train)."""
    return attacks.poison_count(config["alpha"], _n_train(config["n"]))


def notes(config: dict) -> list:
    """What the run does that its flags do not say."""
    N = _n_train(config["n"])
    if config["solver"] == "sgd" and config["batch_size"] > N:
        return [f"--batch-size {config['batch_size']} exceeds the {N} training points: every step is full-batch "
                f"gradient descent on all of them"]
    return []


_UNIT = (0.0, 1.0)
EXPERIMENT = register(Experiment(
    "logistic", fit, PARAMS, METRICS,
    help="Flip a fraction alpha of a logistic-regression training set's labels, defend, and measure the fit.",
    check=_check, save_data=save_data, cost=cost, poisoned=poisoned_count, notes=notes,
    ranges={"test_accuracy": _UNIT, "expected_accuracy": _UNIT, "weight_norm": (0.0, math.inf),
            "angle": (0.0, math.pi), "poisoned_fraction": _UNIT, "clean_discarded": _UNIT, "poison_discarded": _UNIT,
            "train_accuracy": _UNIT, "margin_used": (0.0, math.inf), "strip_mass": _UNIT}))
