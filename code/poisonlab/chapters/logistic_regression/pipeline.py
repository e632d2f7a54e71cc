"""The stages of `run logistic`: seeds, data, label flips, filters, fits and the measures of the fitted models."""
from __future__ import annotations

import functools

import numpy as np
import torch

from ... import attacks, data, defenses, solvers, train
from ...train import losses
from ...errors import ParameterError
from ...lab.experiment import filter_drop, seed_streams

EVAL_POINTS = 2**14  # quasi-random points for the expected accuracy where no quadrature applies


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
    elif config["x_dist"] == "gaussian" and config["separation"] is not None:
        # two unit Gaussians at +-separation along w: x_perp stays N(0, I), the density at the boundary drops
        w = torch.randn(config["dim"], generator=data.generator(seed), dtype=torch.float64)
        mu = config["separation"] * w / w.norm()
        mixture = data.gaussian_mixture([0.5, 0.5], torch.stack([mu, -mu]),
                                        torch.eye(config["dim"], dtype=torch.float64).expand(2, -1, -1))
        return data.make_binary(config["n"], config["dim"], x_dist="mixture", bias=config["bias"],
                                mixture=mixture, w=w, seed=seed)
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


class UnbiasedBCE:
    """The objective of the "unbiased-loss" defence: Natarajan et al.'s unbiased BCE (losses.unbiased_bce)
    for symmetric flips at rate rho[k] for model k (torch.func-compatible: no checks inside)."""

    def __init__(self, rho):
        self.rho = torch.as_tensor(rho, dtype=torch.float32).reshape(-1, 1, 1)

    def __call__(self, forward, params, buffers, Xb, Yb):
        pred = forward(params, buffers, Xb)
        rho = self.rho.to(pred.device, pred.dtype)
        return losses._unbiased_bce(pred, Yb.reshape(pred.shape).to(pred.dtype), rho, rho)

    def __repr__(self):
        return f"UnbiasedBCE(rho={self.rho.flatten().tolist()})"


def _sgd_kw(configs):
    c0 = configs[0]
    hidden = tuple(c0["hidden"])
    aggregate = c0["defense"] if c0["defense"] in ("median", "trimmed-mean") else "mean"
    if c0["defense"] == "worker-median":
        aggregate = defenses.WorkerMedian(c0["shares"])
    objective = None
    if c0["defense"] == "unbiased-loss":
        objective = UnbiasedBCE([c["alpha"] if c["flip_rate"] is None else c["flip_rate"] for c in configs])
    return dict(objective=objective, model="mlp" if hidden else "linear", hidden=hidden, loss="bce", epochs=c0["epochs"],
                lr=torch.tensor([c["lr"] for c in configs]), batch_size=c0["batch_size"],
                seeds=[seeds_of(c["seed"])["model"] for c in configs], aggregate=aggregate, trim=c0["trim"],
                configs=configs)


def fit_models(configs: list[dict], sets: list[tuple], init=None, *, aggregate=True) -> _Fitted:
    """Fit one model per configuration on its training set sets[k] = (X (n_k, d), y (n_k,), X_test).

    Sets of equal size are trained together (one batched SGD run, or the exact solver); `init` holds
    state dicts to continue from (SGD). aggregate=False uses the plain mean whatever the defence
    (the preliminary and reference models of the filters and of the most-confident attacker).
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
        if not aggregate:  # the plain model: mean gradient of the plain BCE
            kw["aggregate"], kw["objective"] = "mean", None
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
    return config["flip"] == "most-confident" and config["alpha"] > 0 and config["reference"] in (None, "clean")


def _scores_most_confident(reference: _Fitted, k: int, clean: data.Dataset, config: dict):
    """The loss of each training point's flipped label under the clean reference model, or, for
    reference "true", the distance to the true boundary (the same order as that loss under the true model)."""
    if config["reference"] == "true":
        return attacks.boundary_distance(clean).abs()
    return _bce(reference.logit[k](clean.X_train), 1 - clean.y_train)


def expected_accuracy(config: dict, ds: data.Dataset, fitted: _Fitted, k: int) -> float:
    """Accuracy of fitted model k under the distribution of x (see experiment.py's docstring)."""
    from . import theory

    w, b = ds.params["w"].double(), float(ds.params["b"])
    dist = config["x_dist"]
    if not config["hidden"] and dist in ("gaussian", "mixture"):
        mixture = _population(config, ds)
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
    mixture = _population(config, ds)
    return theory.strip_mass(mixture, w.numpy(), b, margin, side=side)


def _population(config: dict, ds: data.Dataset):
    """The distribution of x as a Mixture (Gaussian and mixture data): the one drawn from, else N(0, I)."""
    from . import theory

    mixture = ds.params.get("mixture")
    return theory.gaussian_mixture_of(config["dim"]) if mixture is None else mixture


def _eval_points(config: dict, ds: data.Dataset):
    """(X float32, X float64): the points the expected accuracy is averaged over."""
    if "mixture" in ds.params:
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

    def losses(active):  # each point's loss under a preliminary model trained on the poisoned data
        prelim = fit_models([configs[k] for k in active],
                            [(poisoned[k].X_train, poisoned[k].y_train, poisoned[k].X_test) for k in active],
                            None if init is None else [init[k] for k in active], aggregate=False)
        return [_bce(prelim.logit[j](poisoned[k].X_train), poisoned[k].y_train) for j, k in enumerate(active)]
    return defenses.filter_masks([(p.X_train, p.y_train) for p in poisoned], c0["defense"],
                                 [filter_drop(c) for c in configs], k=c0["knn_k"], threshold=c0["knn_threshold"],
                                 losses=losses)


def save_data(config: dict, path) -> None:
    """Write one configuration's poisoned training set, clean test set, poison mask and true w, b (.npz)."""
    clean = make_data(config)
    scores = None
    if config["flip"] == "most-confident":
        ref = fit_models([config], [(clean.X_train, clean.y_train, clean.X_test)], aggregate=False)
        scores = _scores_most_confident(ref, 0, clean, config)
    p, margin = poison(config, clean, scores)
    p.save(path, params=("w",), config=config, b=torch.tensor(float(p.params["b"])), margin=margin)
