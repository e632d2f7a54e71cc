"""`poisonlab run linear`: label poisoning of linear regression.

One configuration: data y = W x + b + eps (data.make_linear, n points before the 80/20 split), a
fraction alpha of the training labels shifted by eta ~ N(eta_mean, eta_std^2) (attacks.gaussian_labels),
a model fitted on the poisoned training set (SGD with the batched trainer, or the exact minimiser of
the loss), and its errors on the clean test set and against the true parameters.

Metrics: test_mse (clean test set); excess_risk = E_x ||f_hat(x) - f(x)||^2 / m, the noise-free part of
the test error (for a linear model exactly ||[W_hat, b_hat] - [W, b]||_F^2 / m since x ~ N(0, I); for an
MLP its average over the test inputs); train_mse (on the poisoned training set); param_error = ||[W_hat, b_hat] - [W, b]||_F; weight_error =
||W_hat - W||_F; intercept_bias = mean over outputs of b_hat - b; exact_gap = ||[W_hat, b_hat] -
[W*, b*]||_F, the distance to the exact minimiser of the same loss on the same poisoned data (0 for
solver "exact"; SGD's optimisation error, e.g. its noise floor at a constant step).
With hidden layers (an MLP) there are no W and b: W_hat, b_hat are then the affine part of the
learned function, the least-squares affine fit of the network's outputs on the test inputs (for a
linear model this is the model itself), so every metric keeps its meaning of "how far the learned
input-output map is from the true one", and exact_gap compares that affine part with least squares.
"""
from __future__ import annotations

import math

import torch

from ... import attacks, data, metrics, solvers, train, validate
from ...errors import DivergenceError, ParameterError
from ...lab.experiment import Experiment, Param, full_batch_note, register, seed_streams

__all__ = ["EXPERIMENT", "LOSSES", "METRICS", "PARAMS", "make_data", "fit", "save_data", "seeds_of"]

# CLI names of the losses -> the engine's (losses.LOSSES)
LOSSES = {"l2": "mse", "l1": "l1", "huber": "huber"}
METRICS = ("test_mse", "excess_risk", "train_mse", "param_error", "weight_error", "intercept_bias", "exact_gap")


def _at_least_3(name, value):
    # 3 points are the fewest that leave one test point and two training points after the 80/20 split
    return validate.positive_int(name, value, minimum=3)


PARAMS = (
    Param("n", 1000, int, "data set size before the 80/20 train/test split", _at_least_3, batch=False),
    Param("dim", 1, int, "dimension d of x", validate.positive_int, batch=False),
    Param("out_dim", 1, int, "dimension m of y", validate.positive_int, batch=False),
    Param("noise_std", 1.0, float, "standard deviation sigma of the label noise eps", validate.non_negative_scale),
    Param("alpha", 0.2, float, "fraction of training points poisoned, in [0, 1]", validate.fraction),
    Param("eta_mean", 5.0, float, "mean mu of the poison eta added to the labels", validate.scale),
    Param("eta_std", 5.0, float, "standard deviation s of the poison eta", validate.non_negative_scale),
    Param("loss", "l2", str, "training loss: l2 (MSE), l1 or huber", choices=tuple(LOSSES)),
    Param("huber_delta", 1.0, float, "Huber's delta (quadratic inside |r| < delta)", validate.positive32),
    Param("solver", "sgd", str, "sgd (the batched trainer) or exact (the loss's exact minimiser)",
          choices=("sgd", "exact"), batch=False),
    Param("epochs", 50, int, "SGD epochs", validate.positive_int, batch=False),
    Param("lr", 0.05, float, "SGD learning rate (constant step)", validate.positive32),
    Param("batch_size", 20, int, "SGD minibatch size", validate.positive_int, batch=False),
    Param("hidden", (), int, "hidden-layer widths of an MLP (none: a linear model)", validate.widths, nargs="*",
          batch=False),
    Param("continue_from_clean", False, bool, "first train on the clean training set, then continue on the "
          "poisoned one (instead of a fresh model)", batch=False),
)


def _check(config: dict) -> None:
    """Cross-parameter checks (the CLI turns them into one line naming the flag)."""
    if config["solver"] == "exact" and config["hidden"]:
        raise ParameterError("hidden", f"hidden layers need --solver sgd (the exact solvers fit linear models); "
                             f"got hidden={list(config['hidden'])} with solver exact")
    if config["solver"] == "exact" and config["continue_from_clean"]:
        raise ParameterError("continue_from_clean", "continue_from_clean needs --solver sgd (exact solutions "
                             "have no training to continue)")


def seeds_of(seed: int) -> dict:
    """Independent seeds for the data, the attack and the model (initialisation and shuffles) of one repeat."""
    return seed_streams(seed, 1_000_000_007)


def make_data(config: dict):
    """(clean, poisoned) Datasets of one configuration (its `seed` included)."""
    s = seeds_of(config["seed"])
    clean = data.make_linear(config["n"], config["dim"], config["out_dim"], config["noise_std"], seed=s["data"])
    poisoned = attacks.gaussian_labels(clean, config["alpha"], config["eta_mean"], config["eta_std"],
                                       seed=s["attack"])
    return clean, poisoned


def _exact(X, y, loss: str, delta: float):
    """The loss's exact minimiser for one problem or a batch (W, b)."""
    if loss == "l2":
        return solvers.least_squares(X, y)
    if loss == "l1":
        return solvers.l1(X, y)
    return solvers.huber(X, y, delta)


# The data of a configuration are fixed by these parameters and its seed (see make_data).
DATA_KEYS = ("n", "dim", "out_dim", "noise_std", "alpha", "eta_mean", "eta_std")
_SOLVED: dict = {}  # L1/Huber optima already computed in this process (SGD's exact_gap needs them again)


def _exact_one(X, y, config):
    """The exact minimiser of one configuration's loss on its poisoned training set (L1/Huber remembered)."""
    loss = config["loss"]
    if loss == "l2":
        return _exact(X, y, loss, 1.0)
    key = (*(config[k] for k in DATA_KEYS), config["seed"], loss, config["huber_delta"] if loss == "huber" else None)
    if key not in _SOLVED:
        if len(_SOLVED) > 10_000:
            _SOLVED.clear()
        _SOLVED[key] = _exact(X, y, loss, config["huber_delta"])
    return _SOLVED[key]


def _exact_batch(X, y, configs):
    """Exact minimisers for K problems whose losses may differ: W (K, m, d), b (K, m)."""
    K = len(configs)
    W = torch.empty(K, y.shape[-1], X.shape[-1])
    b = torch.empty(K, y.shape[-1])
    l2 = [k for k, c in enumerate(configs) if c["loss"] == "l2"]
    if l2:  # least squares is batched natively
        W[l2], b[l2] = _exact(X[l2], y[l2], "l2", 1.0)
    for k, c in enumerate(configs):
        if c["loss"] != "l2":
            W[k], b[k] = _exact_one(X[k], y[k], c)
    return W, b


def fit(configs: list[dict]) -> list[dict]:
    """Train every configuration (one batched SGD run, or the exact solvers) and measure it."""
    c0 = configs[0]
    pairs = [make_data(c) for c in configs]
    X = torch.stack([p.X_train for _, p in pairs])
    Y = torch.stack([p.y_train for _, p in pairs])
    X_test = torch.stack([p.X_test for _, p in pairs])
    if c0["solver"] == "exact":
        W_hat, b_hat = _exact_batch(X, Y, configs)
        pred = torch.baddbmm(b_hat.unsqueeze(1), X_test, W_hat.transpose(1, 2))
        fitted = torch.baddbmm(b_hat.unsqueeze(1), X, W_hat.transpose(1, 2))
        W_star, b_star = W_hat, b_hat
    else:
        hidden = tuple(c0["hidden"])
        kw = dict(model="mlp" if hidden else "linear", hidden=hidden,
                  loss=[LOSSES[c["loss"]] for c in configs],
                  delta=torch.tensor([c["huber_delta"] for c in configs]),
                  epochs=c0["epochs"], lr=torch.tensor([c["lr"] for c in configs]), batch_size=c0["batch_size"],
                  seeds=[seeds_of(c["seed"])["model"] for c in configs], configs=configs)
        init = None
        try:
            if c0["continue_from_clean"]:
                init = train.train_batched(X, torch.stack([cl.y_train for cl, _ in pairs]), **kw)
            model = train.train_batched(X, Y, init=init, **kw)
        except DivergenceError as e:
            _explain_divergence(e, X, configs)
            raise
        pred = model.forward(X_test)
        fitted = model.forward(X)
        if hidden:  # the affine part of the network's function (see the module docstring)
            W_hat, b_hat = solvers.least_squares(X_test, pred)
        else:
            W_hat, b_hat = model.W.detach(), model.b.detach()
        W_star, b_star = _exact_batch(X, Y, configs)
    nonlinear = bool(c0["hidden"]) and c0["solver"] == "sgd"
    out = []
    for k, (clean, poisoned) in enumerate(pairs):
        W, b = poisoned.params["W"], poisoned.params["b"]
        param_error = float(metrics.param_error(W_hat[k], b_hat[k], W, b))
        if nonlinear:  # the network against the true map, on the test inputs
            excess = float(metrics.mse(pred[k], poisoned.X_test @ W.T + b))
        else:
            excess = param_error**2 / W.shape[0]
        out.append({
            "test_mse": float(metrics.mse(pred[k], poisoned.y_test)),
            "excess_risk": excess,
            "train_mse": float(metrics.mse(fitted[k], poisoned.y_train)),
            "param_error": param_error,
            "weight_error": float(metrics.weight_error(W_hat[k], W)),
            "intercept_bias": float(metrics.intercept_bias(b_hat[k], b)),
            "exact_gap": float(metrics.param_error(W_hat[k], b_hat[k], W_star[k], b_star[k])),
        })
    return out


def stable_lr(X, loss: str, m: int) -> float | None:
    """The step-size stability bound 2/lambda_max of gradient descent on a linear model's loss, or None.

    The loss is the mean over examples and the m outputs: for l2 its Hessian in each output's
    parameters [W_j, b_j] is (2/m) A, A = [X, 1]^T [X, 1] / N, so lr < m / lambda_max(A); for Huber
    (r^2/2 inside the band, the curvature there) lr < 2 m / lambda_max(A). L1 has no curvature: None.
    """
    if loss not in ("l2", "huber"):
        return None
    A = solvers._augment(torch.as_tensor(X).double())
    lam = float(torch.linalg.eigvalsh(A.T @ A / A.shape[0])[-1])
    return (m if loss == "l2" else 2 * m) / lam


def _explain_divergence(e: DivergenceError, X, configs) -> None:
    """Add to a divergence of linear models the learning rate below which least squares is stable."""
    if not e.configs or configs[0]["hidden"]:
        return
    k = next((i for i, c in enumerate(configs) if c == e.configs[0]), None)
    if k is None:
        return
    c = configs[k]
    bound = stable_lr(X[k], c["loss"], c["out_dim"])
    if bound is not None:
        what = "least squares" if c["loss"] == "l2" else "Huber's loss (in its quadratic band)"
        e.hint = f"{what} is stable for lr < 2/lambda_max = {bound:.3g} on this training set"


def save_data(config: dict, path) -> None:
    """Write one configuration's poisoned training set, clean test set, poison mask and true parameters (.npz)."""
    _, poisoned = make_data(config)
    poisoned.save(path, params=("W", "b"), config=config)


# typical values of the size parameters: the one exceeding its own most is named by a refusal
_SIZES = {"n": 1000, "dim": 10, "out_dim": 10, "epochs": 50, "hidden": 128}


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration (trained together)."""
    from ...lab.cost import blamed_cost, mlp_params, run_seconds, sgd_steps

    K, n, d, m = repeats, config["n"], config["dim"], config["out_dim"]
    N, H = data.train_size(n), tuple(config["hidden"])
    # arrays: X, y, the noise, the split's copies, the poison's float64 draws, the stacked batch and the
    # shuffled table of the trainer; float64 copies of [X, 1] and y in the exact solvers
    arrays = n * (12 * d + 32 * m) + 8 * N * (d + 1 + m) + 16 * N * (d + 1 + m)
    P = mlp_params([d, *H, m])
    B = min(config["batch_size"], N)
    widest = max((*H, m, d + 1))
    model = 24 * P + 16 * B * sum(H) + 12 * n * widest if H else 48 * m * (d + 1)
    total = K * (arrays + model + 16 * n)  # + the epoch orders
    steps = sgd_steps(config["epochs"], N, B)
    if config["solver"] == "exact":
        flops = K * (4 * N * (d + 1) ** 2 + 2 * N * (d + 1) * m) * (1 if config["loss"] == "l2" else 20 * m)
        seconds = run_seconds(flops)
    else:
        passes = 2 if config["continue_from_clean"] else 1
        flops = passes * K * config["epochs"] * N * 6 * P + K * 4 * N * (d + 1) ** 2  # + W* (least squares)
        seconds = run_seconds(flops, passes * steps, "generic" if H else "fast")
    return blamed_cost(config, total, seconds, _SIZES, {"epochs": config["solver"] == "sgd"})


def poisoned_count(config: dict) -> int:
    """Training labels the attack shifts: round(alpha N_train)."""
    return attacks.poison_count(config["alpha"], data.train_size(config["n"]))


def notes(config: dict) -> list:
    """What the run does that its flags do not say."""
    N = data.train_size(config["n"])
    out = full_batch_note(config["batch_size"], N) if config["solver"] == "sgd" else []
    if config["solver"] == "exact" and config["dim"] + 1 > N:
        which = "the minimum-norm one" if config["loss"] == "l2" else "one of them (a vertex or a solver's pick)"
        out.append(f"--dim {config['dim']} with {N} training points: {config['dim'] + 1} coefficients (with the "
                   f"intercept) exceed the points, so the fit is not unique; the exact solver returns {which}")
    return out


EXPERIMENT = register(Experiment(
    "linear", fit, PARAMS, METRICS,
    help="Poison a fraction alpha of a linear-regression training set with y <- y + eta and measure the fit.",
    check=_check, save_data=save_data, cost=cost, poisoned=poisoned_count, notes=notes,
    ranges={"test_mse": (0.0, math.inf), "excess_risk": (0.0, math.inf), "train_mse": (0.0, math.inf),
            "param_error": (0.0, math.inf), "weight_error": (0.0, math.inf), "exact_gap": (0.0, math.inf)}))
