"""`poisonlab run logistic`: label flipping against logistic regression, and defences.

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
import math

import numpy as np
import torch


from ... import attacks, data, defenses, metrics, solvers, train, validate
from ...train import losses
from ...errors import ParameterError
from ...lab.experiment import Experiment, Param, check_kept, full_batch_note, register, seed_streams

__all__ = ["EXPERIMENT", "PARAMS", "METRICS", "make_data", "poison", "fit", "fit_models", "save_data",
           "seeds_of", "auto_margin", "affine_part", "expected_accuracy", "strip_mass", "DEFENSES", "FLIPS"]

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
    n_train = data.train_size(config["n"])
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
    return seed_streams(seed, 1_000_000_007)


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
    from . import theory

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
    from . import theory

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


def save_data(config: dict, path) -> None:
    """Write one configuration's poisoned training set, clean test set, poison mask and true w, b (.npz)."""
    clean = make_data(config)
    scores = None
    if config["flip"] == "max-loss":
        ref = fit_models([config], [(clean.X_train, clean.y_train, clean.X_test)], aggregate=False)
        scores = _scores_max_loss(ref, 0, clean, config)
    p, margin = poison(config, clean, scores)
    p.save(path, params=("w",), config=config, b=torch.tensor(float(p.params["b"])), margin=margin)


_SIZES = {"n": 1000, "dim": 10, "epochs": 30, "hidden": 128, "knn_k": 10}


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration (trained together)."""
    from ...lab.cost import FLOPS, STEP_SECONDS, Cost, blame

    K, n, d = repeats, config["n"], config["dim"]
    N, H = data.train_size(n), tuple(config["hidden"])
    widths = [d, *H, 1]
    P = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    mixture = config["x_dist"] == "mixture"
    # data and their float64 copies; a mixture draws one d x d factor per point (sample_mixture)
    arrays = 40 * n * d + (8 * n * d * d + 2 * 8 * 4 * d * d if mixture else 0)
    evaluate = 2 * EVAL_POINTS * d * 8 + (8 * EVAL_POINTS * d * d if mixture and H else 0)
    B = min(config["batch_size"], N)
    model = 24 * P + 16 * B * sum(H) + 16 * max(n, EVAL_POINTS) * max((*H, 1))
    knn = 8 * (3 * min(1024, N) * N + N * d) if config["defense"] == "knn-filter" else 0
    total = K * (arrays + model) + max(evaluate, knn)
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
