"""The logistic-regression chapter's computations that are not sweeps of the experiment: continued
training, distances to the boundary and evasion, the mass near the boundary, the kNN filter's rates.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ... import attacks, data, defenses, train, validate
from ...lab.profile import get_profile
from .experiment import EXPERIMENT, FILTERS, _side
from .pipeline import _filter, fit_models, make_data, poison, _scores_most_confident, _sgd_kw
from .sweeps import CHAPTER


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
    scores = _scores_most_confident(ref, 0, clean, config) if config["flip"] == "most-confident" else None
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
    if c["flip"] == "most-confident" or c["continue_from_clean"]:
        reference = fit_models([c], [(clean.X_train, clean.y_train, clean.X_test)], aggregate=False)
    scores = _scores_most_confident(reference, 0, clean, c) if c["flip"] == "most-confident" else None
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
    if config["flip"] == "most-confident" and config["reference"] != "true":
        raise ValueError("knn_rates needs an attack without a trained reference (flip most-confident: reference true)")
    clean = make_data(config)
    scores = attacks.boundary_distance(clean).abs() if config["flip"] == "most-confident" else None
    p, _ = poison(config, clean, scores)
    threshold = 0.5 if config["knn_threshold"] is None else config["knn_threshold"]
    dropped = ~defenses.knn_filter(p.X_train, p.y_train, config["knn_k"], threshold)
    is_far = attacks.boundary_distance(p).abs() > validate.non_negative("far", far)
    mask = p.poisoned
    rate = lambda sel: float(dropped[sel].float().mean()) if bool(sel.any()) else 0.0  # noqa: E731
    return {"flipped_far": rate(mask & is_far), "clean_far": rate(~mask & is_far),
            "flipped": rate(mask), "clean": rate(~mask), "far_fraction": float(is_far.float().mean())}


def default_population():
    """(mixture, w): the default mixture around w = e_1 (the population only depends on the geometry
    relative to w, so e_1 stands for every draw of the true w)."""
    W1 = np.array([1.0, 0.0])
    return data.default_mixture(2, w=torch.tensor(W1)), W1


def evasion_study(profile=None) -> dict:
    """Clean models on Gaussian and mixture data, one per repeat: the signed distances of the test points
    to the learned boundary, and the evasion error at each budget eps (per repeat)."""
    profile, S = get_profile(profile), CHAPTER.sizes(profile)

    def compute():
        eps = np.array(S.evasion_eps, dtype=float)
        dists = {x: [boundary_distances({"x_dist": x, "alpha": 0.0, "seed": r}) for r in range(S.repeats)]
                 for x in ("gaussian", "mixture")}
        return {"eps": eps, "distances": dists,
                "error": {x: np.array([evasion_error(d, eps) for d in ds]) for x, ds in dists.items()}}
    return CHAPTER.memo(("evasion", profile.name), compute)


def knn_study(profile=None) -> pd.DataFrame:
    """knn_rates of random flips on the mixture, per alpha and repeat."""
    profile, S = get_profile(profile), CHAPTER.sizes(profile)
    return CHAPTER.memo(("knn", profile.name), lambda: pd.DataFrame([
        {**knn_rates({"x_dist": "mixture", "alpha": a, "defense": "knn-filter", "seed": r}, S.knn_far),
         "alpha": a, "seed": r} for a in S.knn_alphas for r in range(S.knn_repeats)]))


def aggregate_bias(config: dict, aggregates: dict, batch_size: int = 64, shuffles: int = 20) -> dict:
    """How far each aggregator's expected minibatch step is from the mean gradient, on one training set.

    At theta_0 (plain SGD on the configuration's training set) the per-example gradients of the BCE are
    formed, the set is cut into minibatches of `batch_size` over `shuffles` random orders, and each
    aggregator (name -> defenses.Aggregator) reduces every minibatch. Returns name -> |E[agg] - E[mean]| /
    the norm of the minibatch mean's standard deviation: the bias in units of SGD's own noise.
    """
    config = EXPERIMENT.resolve(**{k: v for k, v in config.items() if k != "seed"}, seed=config.get("seed", 0))
    clean = make_data(config)
    p, _ = poison(config, clean, None)
    model = fit_models([config], [(p.X_train, p.y_train, p.X_test)], aggregate=False)
    X1 = torch.cat([p.X_train.double(), torch.ones(p.n_train, 1, dtype=torch.float64)], 1)
    theta = torch.cat([model.w[0].reshape(-1).double(), torch.tensor([float(model.b[0])], dtype=torch.float64)])
    G = (torch.sigmoid(X1 @ theta) - p.y_train.double())[:, None] * X1      # (n, d + 1) per-example gradients
    nb = p.n_train // batch_size
    gen = data.generator(config["seed"])
    batches = torch.cat([G[torch.randperm(p.n_train, generator=gen)[:nb * batch_size]].reshape(nb, batch_size, -1)
                         for _ in range(shuffles)])
    mean = defenses.Mean()(batches)
    noise = float(mean.std(0).norm())
    return {name: float((agg(batches).mean(0) - mean.mean(0)).norm()) / noise for name, agg in aggregates.items()}


def aggregate_bias_study(profile=None) -> pd.DataFrame:
    """aggregate_bias on the clean mixture, per repeat: the per-example median and the workers' median."""
    profile, S = get_profile(profile), CHAPTER.sizes(profile)
    workers = EXPERIMENT.resolve()["shares"]
    aggs = {"median": defenses.Median(), f"worker-median ({workers} workers)": defenses.WorkerMedian(workers),
            "trimmed-mean": defenses.TrimmedMean(EXPERIMENT.resolve()["trim"])}
    return CHAPTER.memo(("aggregate-bias", profile.name), lambda: pd.DataFrame([
        {"seed": r, "aggregate": name, "bias": b}
        for r in range(S.defense_repeats)
        for name, b in aggregate_bias({"x_dist": "mixture", "alpha": 0.0, "seed": r}, aggs).items()]))


JAILBREAK_ATTACKS = {"clean": {"alpha": 0.0}, "random flips": {"alpha": 0.2},
                     "one-sided flips": {"flip": "one-sided", "alpha": 0.1}}


def jailbreak_study(profile=None) -> dict:
    """Distances of the label-1 test points (the class a safety filter must flag) to the learned boundary of a
    model trained on the mixture, clean or poisoned (JAILBREAK_ATTACKS), per repeat: the L2 change of the
    input a jailbreak needs to have a point let through (negative: already let through)."""
    profile, S = get_profile(profile), CHAPTER.sizes(profile)

    def compute():
        out = {}
        for name, attack in JAILBREAK_ATTACKS.items():
            dists = []
            for r in range(S.repeats):
                config = {"x_dist": "mixture", **attack, "seed": r}
                y1 = make_data(EXPERIMENT.resolve(**{k: v for k, v in config.items() if k != "seed"},
                                                  seed=r)).y_test == 1
                dists.append(boundary_distances(config)[y1.numpy()])
            out[name] = dists
        return out
    return CHAPTER.memo(("jailbreak", profile.name), compute)
