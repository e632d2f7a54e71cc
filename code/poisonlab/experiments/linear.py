"""`poisonlab run linear`: label poisoning of linear regression, and the chapter's experiment functions.

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

import json
import math

import numpy as np
import torch

from .. import attacks, data, metrics, solvers, train, validate
from ..experiment import DivergenceError, Experiment, Param, ParameterError, register

__all__ = ["EXPERIMENT", "LOSSES", "METRICS", "PARAMS", "make_data", "fit", "save_data", "seeds_of",
           # the chapter (linear-regression.qmd)
           "setting", "grids", "run_sweep", "rows_where", "summarize", "jackknife", "exponent", "slope",
           "weighted_exponent", "steps_of", "predicted", "predict_grid", "prediction", "m_prediction",
           "ols_monte_carlo", "forgetting", "half_life_of", "half_lives", "trimmed_least_squares", "trimming",
           "law", "LAWS", "loss_fits", "fit_loss", "ellipse", "ci_table"]

# CLI names of the losses -> the engine's (losses.LOSSES)
LOSSES = {"l2": "mse", "l1": "l1", "huber": "huber"}
METRICS = ("test_mse", "excess_risk", "train_mse", "param_error", "weight_error", "intercept_bias", "exact_gap")


def _at_least_3(name, value):
    # 3 points are the fewest that leave one test point and two training points after the 80/20 split
    return validate.positive_int(name, value, minimum=3)


def _widths(name, value):
    return tuple(validate.positive_int(name, v) for v in value)


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
    Param("hidden", (), int, "hidden-layer widths of an MLP (none: a linear model)", _widths, nargs="*",
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
    # distinct streams: the same integer for two draws would correlate them (e.g. W with eta)
    return {"data": seed, "attack": seed + 1_000_000_007, "model": seed + 2_000_000_014}


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
    arrays = {"X_train": poisoned.X_train, "y_train": poisoned.y_train, "X_test": poisoned.X_test,
              "y_test": poisoned.y_test, "mask": poisoned.poisoned, "W": poisoned.params["W"],
              "b": poisoned.params["b"]}
    config_json = json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()})
    with open(path, "wb") as f:  # a file object: numpy would otherwise append .npz to the name
        np.savez(f, **{k: v.numpy() for k, v in arrays.items()}, config=np.array(config_json))


def n_train(n: int) -> int:
    """Training points of a data set of n points (the 80/20 split)."""
    return n - round(0.2 * n)


def _mlp_params(d: int, hidden, m: int) -> int:
    widths = [d, *hidden, m]
    return sum((a + 1) * b for a, b in zip(widths, widths[1:]))


# typical values of the size parameters: the one exceeding its own most is named by a refusal
_SIZES = {"n": 1000, "dim": 10, "out_dim": 10, "epochs": 50, "hidden": 128}


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration (trained together)."""
    from ..experiment import FLOPS, STEP_SECONDS, Cost, blame

    K, n, d, m = repeats, config["n"], config["dim"], config["out_dim"]
    N, H = n_train(n), tuple(config["hidden"])
    # data: X, y, the noise, the split's copies, the poison's float64 draws, the stacked batch and the
    # shuffled table of the trainer; float64 copies of [X, 1] and y in the exact solvers
    data = n * (12 * d + 32 * m) + 8 * N * (d + 1 + m) + 16 * N * (d + 1 + m)
    P = _mlp_params(d, H, m)
    B = min(config["batch_size"], N)
    widest = max((*H, m, d + 1))
    model = 24 * P + 16 * B * sum(H) + 12 * n * widest if H else 48 * m * (d + 1)
    total = K * (data + model + 16 * n)  # + the epoch orders
    steps = config["epochs"] * math.ceil(N / B)
    if config["solver"] == "exact":
        flops = K * (4 * N * (d + 1) ** 2 + 2 * N * (d + 1) * m) * (1 if config["loss"] == "l2" else 20 * m)
        seconds = flops / FLOPS
    else:
        passes = 2 if config["continue_from_clean"] else 1
        flops = passes * K * config["epochs"] * N * 6 * P + K * 4 * N * (d + 1) ** 2  # + W* (least squares)
        seconds = flops / FLOPS + passes * steps * STEP_SECONDS["generic" if H else "fast"]
    sizes = dict(_SIZES)
    if config["solver"] == "exact":
        del sizes["epochs"]
    mem_sizes = {k: v for k, v in sizes.items() if k != "epochs"}
    return Cost(total, seconds, blame(config, sizes), blame(config, mem_sizes))


def poisoned_count(config: dict) -> int:
    """Training labels the attack shifts: round(alpha N_train)."""
    return attacks.poison_count(config["alpha"], n_train(config["n"]))


def notes(config: dict) -> list:
    """What the run does that its flags do not say."""
    out = []
    N = n_train(config["n"])
    if config["solver"] == "sgd" and config["batch_size"] > N:
        out.append(f"--batch-size {config['batch_size']} exceeds the {N} training points: every step is full-batch "
                   f"gradient descent on all {N}")
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


# ================================================================ the chapter (linear-regression.qmd)
# Settings, sweeps, Monte Carlo studies and laws. Sizes come from the profile's "linear" section.

from scipy import stats  # noqa: E402

from .. import defenses, laws, sweep as _sweep  # noqa: E402
from ..profile import get_profile  # noqa: E402
from ..theory import linear as theory  # noqa: E402

# The chapter's poisoned setting: eta biased (mu != 0), of high variance, alpha high.
SIGMA, ALPHA, MU, S = 1.0, 0.3, 5.0, 5.0
FAR_MU = 50.0  # "very far" poison: every poisoned residual is clipped by L1 and Huber


def _sizes(profile=None) -> dict:
    profile = get_profile() if profile is None else (get_profile(profile) if isinstance(profile, str) else profile)
    return dict(profile.linear)


def setting(profile=None, **changes) -> dict:
    """The chapter's configuration (poisoned setting, training sizes of the profile), with `changes`."""
    z = _sizes(profile)
    base = dict(n=z["n"], noise_std=SIGMA, alpha=ALPHA, eta_mean=MU, eta_std=S, epochs=z["epochs"],
                lr=z["lr"], batch_size=z["batch_size"])
    unknown = set(changes) - {p.name for p in PARAMS}
    if unknown:
        raise ValueError(f"changes has unknown parameter {sorted(unknown)[0]!r}")
    return {**base, **changes}


def _geom(lo, hi, k):
    return [float(f"{v:.4g}") for v in np.geomspace(lo, hi, k)]


def _lin(lo, hi, k):
    return [float(f"{v:.4g}") for v in np.linspace(lo, hi, k)]


def grids(profile=None) -> dict:
    """name -> (grid, fixed changes to the setting) of every sweep in the chapter."""
    z = _sizes(profile)
    k = z["points"]
    both = ["sgd", "exact"]
    return {
        "centring": ({"eta_mean": [0.0, MU], "alpha": _lin(0, 0.5, k)}, {}),
        "variance": ({"eta_mean": [0.0, MU], "eta_std": [0.0, *_geom(1, 64, k - 1)]}, {}),
        "alpha": ({"alpha": _lin(0, 1, k), "solver": both}, {}),
        "mean": ({"eta_mean": [0.0, *_geom(2, 64, k - 1)]}, {}),
        "training": ({"epochs": z["epochs_grid"], "lr": [0.002, 0.01, 0.05, 0.2]}, {}),
        # m = 8 outputs average the floor over 8 independent problems; lr/m is each one's step
        "floor": ({"lr": _geom(0.08, 1.6, k)}, {"out_dim": 8}),
        "dimension": ({"dim": z["dims"], "solver": both}, {}),
        "outputs": ({"out_dim": z["out_dims"], "solver": both}, {}),
        "loss": ({"loss": list(LOSSES), "eta_mean": z["loss_mus"], "solver": both}, {}),
        # more Huber thresholds on the same poisoned data (same seeds), delta = 1 being in "loss"
        "huber-thresholds": ({"huber_delta": [0.25, 4.0], "eta_mean": z["loss_mus"], "solver": both},
                             {"loss": "huber"}),
        # light poison, where Huber's delta has an interior optimum; 5 x 2 coefficients per repeat
        "huber-delta": ({"huber_delta": _geom(0.1, 20, k)}, {"loss": "huber", "solver": "exact", "alpha": 0.05,
                                                            "dim": 4, "out_dim": 2}),
        "breakdown": ({"loss": list(LOSSES), "alpha": _lin(0.05, 0.45, k)}, {"eta_mean": FAR_MU, "solver": "exact"}),
        "efficiency": ({"loss": list(LOSSES)}, {"alpha": 0.0, "dim": 8, "out_dim": 4, "huber_delta": 1.345,
                                                "solver": "exact"}),
        "little": ({"n": z["little_n"], "solver": both}, {"dim": 10, "epochs": z["little_epochs"]}),
        "hidden": ({"hidden": [tuple(h) for h in z["hidden"]], "alpha": [0.0, ALPHA]},
                   {"epochs": z["hidden_epochs"], "batch_size": z["hidden_batch"]}),
        "continue": ({"continue_from_clean": [False, True], "epochs": [e for e in z["epochs_grid"] if e <= 10]},
                     {"lr": 0.01}),
    }


def run_sweep(name: str, profile=None, seed: int = 0) -> "_sweep.SweepResult":
    """One of the chapter's sweeps (see `grids`): every grid point x the profile's repeats, cached."""
    table = grids(profile)
    if name not in table:
        raise ValueError(f"name must be one of {', '.join(table)}; got {name!r}")
    grid, changes = table[name]
    fixed = {k: v for k, v in setting(profile, **changes).items() if k not in grid}
    z = _sizes(profile)
    # a sweep may have its own repeats (<name>_repeats): little data is cheap and heavy-tailed
    repeats = z.get(f"{name}_repeats", z["repeats"])
    return _sweep.run(EXPERIMENT, grid=grid, repeats=repeats, seed=seed, fixed=fixed, progress=False)


def _match(value, wanted) -> bool:
    return bool(wanted(value)) if callable(wanted) else value == wanted


def rows_where(result, **where):
    """The rows of a sweep whose parameters match `where`: a value (solver="sgd") or a predicate (n=lambda n: n > 20)."""
    rows = result.rows
    for k, v in where.items():
        rows = rows[rows[k].apply(lambda x, v=v: _match(x, v))]
    return rows


def summarize(result, by, where=None, **derived):
    """Per value of `by`: mean and 95% t-interval of each metric and of each `derived` column (name=f(rows)).

    Columns `<name>_mean`, `<name>_lo`, `<name>_hi` as in SweepResult.summary, for plots.metric_vs.
    """
    rows = rows_where(result, **(where or {})).copy()
    for name, f in derived.items():
        rows[name] = f(rows)
    by = [by] if isinstance(by, str) else list(by)
    names = [*result.metrics, *derived]
    out = []
    for key, group in rows.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for name in names:
            mean, lo, hi = _sweep.mean_ci(group[name].to_numpy())
            row.update({f"{name}_mean": mean, f"{name}_lo": lo, f"{name}_hi": hi})
        row["repeats"] = len(group)
        out.append(row)
    import pandas as pd

    return pd.DataFrame.from_records(out)


def _matrix(rows, x, y):
    """(x values, matrix points x repeats) of metric or derived column `y` (a name or f(rows))."""
    values = y(rows) if callable(y) else rows[y]
    table = rows.assign(_v=np.asarray(values, dtype=float)).pivot_table(index=x, columns="seed", values="_v",
                                                                          aggfunc="mean")
    return table.index.to_numpy(dtype=float), table.to_numpy(dtype=float)


def jackknife(result, x, y, statistic, *, where=None, level=0.95):
    """statistic(xs, mean curve of `y` against `x`) with laws.jackknife's interval: (estimate, lo, hi, se)."""
    rows = rows_where(result, **(where or {}))

    def curve_statistic(rows_):
        xs, M = _matrix(rows_, x, y)
        return statistic(xs, M.mean(1))

    return laws.jackknife(rows, curve_statistic, level)


def exponent(xs, ys) -> float:
    """The log-log slope k of ys = c xs^k (laws.fit_power)."""
    return laws.fit_power(xs, ys).params["k"]


def slope(xs, ys) -> float:
    """The slope b of ys = a + b xs (laws.fit_affine)."""
    return laws.fit_affine(xs, ys).params["b"]


# ---------------------------------------------------------------- predictions in the chapter's terms

def _N(config) -> int:
    return theory.n_train(config["n"])


def steps_of(config: dict) -> int:
    """SGD steps of one configuration: epochs x batches per epoch (the last batch may be short)."""
    N = _N(config)
    return config["epochs"] * -(-N // config["batch_size"])


def predicted(metric: str, config: dict) -> float:
    """Theory's expectation of `metric` for one configuration of a linear model trained with the l2 loss.

    metric: test_mse, excess_risk, intercept_bias, weight_error_sq, param_error_sq, train_mse or
    exact_gap_sq (= E||theta_SGD - theta_hat||^2). For SGD, the mean path after t steps is
    theta_hat + u (theta_0 - theta_hat) with u = q^t (@eq-lin-floor's contraction), around which the
    iterate fluctuates with variance (1 - u^2) x floor. theta_0 is PyTorch's initialisation (independent
    of theta ~ N(0, I)) or, continuing, the clean model (the clean optimum plus its own floor).
    """
    if config["loss"] != "l2" or config["hidden"]:
        raise ValueError("config must describe a linear model trained with the l2 loss (theory for l1/huber: m_prediction)")
    N = _N(config)
    d, m, sigma = config["dim"], config["out_dim"], config["noise_std"]
    p = theory.poisoned_fraction(config["alpha"], N)
    mu, s = config["eta_mean"], config["eta_std"]
    a = float(theory.effective_variance(sigma, p, mu, s, N))
    if metric == "intercept_bias":
        return float(theory.intercept_shift(p, mu))
    if metric == "train_mse":
        return a * (N - d - 1) / N
    R = float(theory.ols_excess_risk(N, d, sigma, p, mu, s))     # per output, all coefficients
    Wsq = float(theory.ols_weight_error_sq(N, d, m, sigma, p, mu, s))
    total, weights, gap = m * R, Wsq, 0.0                        # squared errors against theta
    if config["solver"] == "sgd":
        # the floor is driven by the residuals' mean square a (N - d - 1)/N
        F = float(theory.sgd_floor(config["lr"], config["batch_size"], N, d, m, a * (N - d - 1) / N))
        u = float(theory.contraction(config["lr"], m)) ** steps_of(config)
        wf = d / (d + 1)  # the floor is isotropic over the d + 1 coefficients of each output
        if config["continue_from_clean"]:
            F0 = float(theory.sgd_floor(config["lr"], config["batch_size"], N, d, m, sigma**2 * (N - d - 1) / N))
            Rc, Rp = (float(theory.ols_excess_risk(N, d, *args)) for args in ((sigma, 0, 0, 0), (0.0, p, mu, s)))
            Wc, Wp = (float(theory.ols_weight_error_sq(N, d, m, *args)) for args in ((sigma, 0, 0, 0), (0.0, p, mu, s)))
            fluct = u**2 * F0 + (1 - u**2) * F
            total = m * Rc + (1 - u) ** 2 * m * Rp + fluct
            weights = Wc + (1 - u) ** 2 * Wp + fluct * wf
            gap = u**2 * (m * Rp + F0) + (1 - u**2) * F
        else:
            init_w, init_b = m * d * (1 / (3 * d) + 1), m * (1 / (3 * d) + 1)  # E||theta_0 - theta||^2 parts
            fluct = (1 - u**2) * F
            total = (1 - u) ** 2 * m * R + u**2 * (init_w + init_b) + fluct
            weights = (1 - u) ** 2 * Wsq + u**2 * init_w + fluct * wf
            gap = u**2 * (init_w + init_b + m * R) + fluct
    values = {"exact_gap_sq": gap, "weight_error_sq": weights, "param_error_sq": total,
              "excess_risk": total / m, "test_mse": sigma**2 + total / m}
    if metric not in values:
        raise ValueError(f"metric must be one of test_mse, excess_risk, intercept_bias, weight_error_sq, "
                         f"param_error_sq, train_mse, exact_gap_sq; got {metric!r}")
    return float(values[metric])


def predict_grid(metric: str, x: str, values, profile=None, **changes) -> np.ndarray:
    """Theory's expectation of `metric` at each value of parameter x (the rest: the setting with `changes`)."""
    base = EXPERIMENT.resolve(**setting(profile, **changes))
    return np.array([predicted(metric, {**base, x: v}) for v in values])


def prediction(metric: str, x: str, profile=None, hue: str | None = None, **changes):
    """f(x values[, hue value]) -> theory's expectation of `metric` as parameter x (and `hue`) vary, for plots.metric_vs."""
    base = EXPERIMENT.resolve(**setting(profile, **changes))
    ints = ("n", "dim", "out_dim", "batch_size")  # epochs may be fractional: a smooth curve of steps

    def value(name, v):
        if isinstance(v, (str, bool, np.bool_)):
            return v if isinstance(v, str) else bool(v)
        return int(round(float(v))) if name in ints else float(v)

    def at(values, c):
        return np.array([predicted(metric, {**c, x: value(x, v)}) for v in np.atleast_1d(values)])

    if x in ints:  # a whole-number parameter: predict at the measured rows only (plots calls f(row))
        def per_row(row):
            c = dict(base) if hue is None else {**base, hue: value(hue, row[hue])}
            return predicted(metric, {**c, x: value(x, row[x])})
        return per_row
    if hue is None:
        return lambda values: at(values, base)
    return lambda values, hue_value: at(values, {**base, hue: value(hue, hue_value)})


def m_prediction(what: str, x: str, profile=None, **changes):
    """f(x) -> the M-estimator's population intercept bias ("bias") or excess risk ("risk") for the loss in changes."""
    base = EXPERIMENT.resolve(**setting(profile, **changes))

    def f(values):
        out = []
        for v in np.atleast_1d(values):
            c = {**base, x: float(v)}
            N = _N(c)
            p = theory.poisoned_fraction(c["alpha"], N)
            args = (c["loss"], p, c["eta_mean"], c["eta_std"], c["noise_std"], c["huber_delta"])
            if what == "bias":
                out.append(theory.m_estimate(*args))
            else:
                out.append(theory.m_excess_risk(c["loss"], N, c["dim"], *args[1:]))
        return np.array(out)

    return f


# ---------------------------------------------------------------- studies that are not sweeps

_STUDIES: dict = {}


def _memo(fn):
    """Compute a study once per process for the same sizes, seed and arguments (the laws reuse the chapter's)."""
    import functools

    @functools.wraps(fn)
    def wrapper(profile=None, seed: int = 0, **kw):
        key = (fn.__name__, json.dumps(_sizes(profile), sort_keys=True), seed, json.dumps(kw, sort_keys=True, default=str))
        if key not in _STUDIES:
            _STUDIES[key] = fn(profile, seed, **kw)
        return _STUDIES[key]

    return wrapper


@_memo
def ols_monte_carlo(profile=None, seed: int = 0) -> dict:
    """Fixed design, fresh noise: OLS's standardised errors z = L^{-1}(theta_hat - theta), L L^T = sigma^2 (X~^T X~)^{-1}.

    Unbiasedness: E z = 0; covariance sigma^2 (X~^T X~)^{-1}: E ||z||^2 / (d + 1) = 1. Returns the draws'
    theta_hat, the predicted covariance, and z.
    """
    z = _sizes(profile)
    n, draws, d = z["mc_n"], z["mc_draws"], 2
    ds = data.make_linear(n, d, 1, 0.0, seed=seed, test_fraction=0.0)  # noise-free design and labels
    g = data.generator(seed + 1)
    eps = torch.randn(draws, ds.n_train, 1, generator=g) * SIGMA
    X = ds.X_train.expand(draws, -1, -1)
    W_hat, b_hat = solvers.least_squares(X.double(), (ds.y_train + eps).double())
    theta_hat = torch.cat([W_hat[:, 0, :], b_hat], 1).double()
    theta = torch.cat([ds.params["W"][0], ds.params["b"]]).double()
    A = torch.cat([ds.X_train, torch.ones(ds.n_train, 1)], 1).double()
    cov = SIGMA**2 * torch.linalg.inv(A.T @ A)
    L = torch.linalg.cholesky(cov)
    std = torch.linalg.solve_triangular(L, (theta_hat - theta).T, upper=False).T
    return {"theta_hat": theta_hat.numpy(), "theta": theta.numpy(), "covariance": cov.numpy(),
            "empirical_covariance": np.cov(theta_hat.numpy().T), "z": std.numpy(), "n": n, "d": d}


@_memo
def forgetting(profile=None, seed: int = 0, lrs=(0.005, 0.01, 0.02, 0.05, 0.1)) -> dict:
    """Continue training the clean model theta_0 on the poisoned set; record the intercept every step.

    Returns steps, lrs, and the remaining fraction f[t, lr, repeat] = (b_t - b1*) / (b_0 - b1*) where
    b1* is the exact least-squares intercept on the poisoned set (mean over outputs).
    """
    z = _sizes(profile)
    R, steps = z["repeats"], z["forget_steps"]
    configs = [EXPERIMENT.resolve(**setting(profile, lr=lr), seed=seed + r) for lr in lrs for r in range(R)]
    pairs = [make_data(c) for c in configs]
    X = torch.stack([p.X_train for _, p in pairs])
    kw = dict(loss="mse", lr=torch.tensor([c["lr"] for c in configs]), batch_size=configs[0]["batch_size"],
              seeds=[seeds_of(c["seed"])["model"] for c in configs], configs=configs)
    clean = train.train_batched(X, torch.stack([cl.y_train for cl, _ in pairs]), epochs=configs[0]["epochs"], **kw)
    N = X.shape[1]
    epochs = -(-steps // -(-N // configs[0]["batch_size"]))  # enough epochs to cover `steps`
    poisoned = train.train_batched(X, torch.stack([p.y_train for _, p in pairs]), epochs=epochs, init=clean,
                                   record_every=1, **kw)
    b_traj = poisoned.trajectory["b"][: steps + 1].double().mean(-1)  # (steps + 1, K)
    _, b_star = solvers.least_squares(X, torch.stack([p.y_train for _, p in pairs]))
    b_star = b_star.double().mean(-1)
    frac = (b_traj - b_star) / (b_traj[0] - b_star)
    return {"steps": np.arange(steps + 1), "lrs": np.array(lrs),
            "fraction": frac.numpy().reshape(steps + 1, len(lrs), R), "m": 1}


def half_life_of(steps, fraction, window: int) -> float:
    """ln 2 / r, where exp(-r t) fits the mean remaining fraction over steps 1..window (least squares on log f, through f_0 = 1).

    A fixed window (two predicted half-lives, where f is still far above its noise) keeps the
    estimate a smooth function of the data, as the jackknife needs; a first-crossing time is not.
    """
    steps = np.asarray(steps, dtype=float)
    f = np.asarray(fraction, dtype=float)
    use = (steps >= 1) & (steps <= window)
    if np.any(f[use] <= 0):
        raise ValueError("fraction must stay > 0 within the window (lengthen the recording or shorten the window)")
    t, logf = steps[use], np.log(f[use])
    rate = -float(np.sum(t * logf) / np.sum(t * t))
    return math.log(2) / rate


def half_lives(study: dict, level=0.95) -> dict:
    """Measured half-lives (jackknife over repeats) and predicted ones, per learning rate."""
    steps, F = study["steps"], study["fraction"]
    R = F.shape[2]
    predicted_hl = theory.half_life(study["lrs"], study["m"])
    windows = [int(math.ceil(2 * h)) for h in predicted_hl]
    if max(windows) > steps[-1]:
        raise ValueError(f"the study must record at least {max(windows)} steps, got {steps[-1]}")
    est = np.array([half_life_of(steps, F[:, j].mean(1), w) for j, w in enumerate(windows)])
    loo = np.array([[half_life_of(steps, np.delete(F[:, j], r, axis=1).mean(1), w) for j, w in enumerate(windows)]
                    for r in range(R)])
    se = np.sqrt((R - 1) / R * ((loo - loo.mean(0)) ** 2).sum(0))
    t = stats.t.ppf(0.5 + level / 2, R - 1)
    return {"lr": study["lrs"], "mean": est, "lo": est - t * se, "hi": est + t * se,
            "predicted": predicted_hl, "loo": loo, "windows": np.array(windows)}


def trimmed_least_squares(X, y, trim: float, iters: int = 20):
    """Iterated trimmed least squares: refit on all but the fraction `trim` of largest squared residuals."""
    W, b = solvers.least_squares(X, y)
    for _ in range(validate.positive_int("iters", iters)):
        r2 = ((y - (X @ W.transpose(-1, -2) + b.unsqueeze(-2))) ** 2).sum(-1)
        keep = defenses.loss_filter(r2, trim)
        if X.dim() == 2:
            W, b = solvers.least_squares(X[keep], y[keep])
        else:  # every problem keeps the same number of points: gather them into one batch
            idx = torch.stack([torch.nonzero(k).squeeze(1) for k in keep])
            W, b = solvers.least_squares(torch.gather(X, 1, idx.unsqueeze(-1).expand(-1, -1, X.shape[-1])),
                                         torch.gather(y, 1, idx.unsqueeze(-1).expand(-1, -1, y.shape[-1])))
    return W, b


@_memo
def trimming(profile=None, seed: int = 0, eta_means=(MU, FAR_MU)):
    """Intercept bias of iterated trimmed least squares against the trimmed fraction (mean, 95% CI, prediction)."""
    import pandas as pd

    z = _sizes(profile)
    trims = _lin(0, 0.5, z["points"])
    out = []
    for mu in eta_means:
        configs = [EXPERIMENT.resolve(**setting(profile, eta_mean=mu), seed=seed + r) for r in range(z["repeats"])]
        pairs = [make_data(c) for c in configs]
        X = torch.stack([p.X_train for _, p in pairs])
        Y = torch.stack([p.y_train for _, p in pairs])
        b_true = torch.stack([p.params["b"] for _, p in pairs])
        N = X.shape[1]
        p = theory.poisoned_fraction(ALPHA, N)
        for tr in trims:
            _, b = trimmed_least_squares(X, Y, tr)
            bias = (b - b_true).double().mean(-1).numpy()
            mean, lo, hi = _sweep.mean_ci(bias)
            out.append({"eta_mean": mu, "trim": tr, "intercept_bias_mean": mean, "intercept_bias_lo": lo,
                        "intercept_bias_hi": hi, "predicted": theory.trimmed_fixed_point(p, mu, S, SIGMA, tr),
                        "values": bias})
    return pd.DataFrame.from_records(out)


# ---------------------------------------------------------------- the laws of the chapter

def _law(statement, pred, est, how, tol=None):
    mean, lo, hi = est[:3]
    return laws.Law(statement, float(pred), float(mean), float(lo), float(hi), tol, how)


def _ratio_to(metric_pred: str, result, x, where):
    """statistic(xs, ys): mean over the grid of measured ys / theory's `metric_pred`, for `jackknife`."""
    configs = {}
    for c in result.configs:
        if all(_match(c[k], v) for k, v in where.items()):
            configs.setdefault(float(c[x]), c)
    pred = {k: predicted(metric_pred, v) for k, v in configs.items()}
    return lambda xs, ys: float(np.mean(ys / np.array([pred[float(v)] for v in xs])))


def law(name: str, profile=None):
    """The law `name` of the chapter (see LAWS) as a laws.Law: prediction against measurement with a 95% CI."""
    if name not in LAWS:
        raise ValueError(f"name must be one of {', '.join(LAWS)}; got {name!r}")
    return LAWS[name](profile)


def _unbiased(profile):
    mc = ols_monte_carlo(profile)
    z = mc["z"].ravel()
    return _law("OLS is unbiased: E[θ̂ − θ] = 0", 0.0, _sweep.mean_ci(z),
                "mean standardised error over Monte Carlo draws")


def _covariance(profile):
    mc = ols_monte_carlo(profile)
    q = (mc["z"] ** 2).sum(1) / mc["z"].shape[1]
    return _law("Cov(θ̂) = σ²(X̃ᵀX̃)⁻¹", 1.0, _sweep.mean_ci(q), "mean ‖z‖²/(d+1) over Monte Carlo draws")


def _floor(profile):
    res = run_sweep("floor", profile)
    f = _ratio_to("exact_gap_sq", res, "lr", {})
    est = jackknife(res, "lr", lambda r: r["exact_gap"] ** 2, f)
    return _law("SGD noise floor with reshuffled epochs, eq. (floor)", 1.0, est, "mean of measured/predicted ‖θ_SGD − θ̂‖² over γ")


def _intercept_shift(profile):
    res = run_sweep("alpha", profile)
    N = theory.n_train(_sizes(profile)["n"])
    p_of = lambda xs: theory.poisoned_fraction(xs, N)
    est = jackknife(res, "alpha", "intercept_bias", lambda xs, ys: slope(p_of(xs), ys), where={"solver": "sgd"})
    return _law("the intercept moves by p μ_η", MU, est, "slope of b̂ − b against p (SGD)")


def _noise_variance(profile):
    res = run_sweep("alpha", profile)
    f = _ratio_to("train_mse", res, "alpha", {"solver": "exact"})
    est = jackknife(res, "alpha", "train_mse", f, where={"solver": "exact"})
    return _law("effective noise σ² + p σ_η² + p(1−p) μ_η²", 1.0, est, "mean of measured/predicted training MSE over α")


def _excess_exponent(res, x, where, xform=lambda v: v, xmin=0.0):
    """Exponent k of (R(x) - R(x0)) ~ x^k over the grid points x >= xmin (x0, the first grid point, is the reference)."""
    def stat(xs, ys):
        use = (xs > xs[0]) & (xs >= xmin)
        return exponent(xform(xs[use]), ys[use] - ys[0])
    return jackknife(res, x, "excess_risk", stat, where=where)


def _mu_exponent(profile):
    res = run_sweep("mean", profile)
    return _law("R(μ_η) − R(0) ∝ μ_η^k", 2.0, _excess_exponent(res, "eta_mean", {}), "fitted exponent (SGD)")


def _variance_exponent(profile):
    res = run_sweep("variance", profile)
    return _law("centred η: R(σ_η) − R(0) ∝ (σ_η²)^k", 1.0,
                _excess_exponent(res, "eta_std", {"eta_mean": 0.0}, lambda s: s**2, xmin=4.0),
                "fitted exponent over σ_η ≥ 4 (SGD)")


def _alpha_exponent(profile):
    res = run_sweep("alpha", profile)
    N = theory.n_train(_sizes(profile)["n"])
    xform = lambda a: theory.poisoned_fraction(a, N)
    est = _excess_exponent(res, "alpha", {"solver": "sgd"}, xform)
    xs = np.array(grids(profile)["alpha"][0]["alpha"])
    ys = predict_grid("excess_risk", "alpha", xs, profile, solver="sgd")
    return _law("R(p) − R(0) ∝ p^k", exponent(xform(xs[1:]), ys[1:] - ys[0]), est,
                "fitted exponent (SGD); prediction: same fit of the theory curve")


def weighted_exponent(xs, ys) -> float:
    """Exponent of ys = c xs^k, points weighted by their degrees of freedom (relative error of a mean of
    a chi-square with ~ m d degrees of freedom: 1/sqrt(d))."""
    return laws.fit_power(xs, ys, sigma=ys / np.sqrt(xs)).params["k"]


def _dimension(profile):
    res = run_sweep("dimension", profile)
    sq = lambda r: r["weight_error"] ** 2
    est = jackknife(res, "dim", sq, weighted_exponent, where={"solver": "exact"})
    xs = np.array(grids(profile)["dimension"][0]["dim"], dtype=float)
    ys = predict_grid("weight_error_sq", "dim", [int(v) for v in xs], profile, solver="exact")
    return _law("‖Ŵ − W‖² = m a d/(N−d−2) ∝ d^k", weighted_exponent(xs, ys), est,
                "fitted exponent (exact OLS); prediction: same fit of the theory curve")


def _outputs(profile):
    res = run_sweep("outputs", profile)
    est = jackknife(res, "out_dim", lambda r: r["param_error"] ** 2, exponent, where={"solver": "exact"})
    return _law("‖θ̂ − θ‖² ∝ m^k, test MSE flat in m", 1.0, est, "fitted exponent (exact OLS)")


def _little(profile):
    res = run_sweep("little", profile)
    d = 10
    # heavy inverse-Wishart tails near N = d + 2 make the mean of a few repeats unreliable: N >= 3d
    where = {"solver": "exact", "n": lambda n: theory.n_train(n) >= 3 * d}
    f = _ratio_to("weight_error_sq", res, "n", where)
    est = jackknife(res, "n", lambda r: r["weight_error"] ** 2, f, where=where)
    return _law("little data: E‖Ŵ − W‖² = m a d/(N−d−2)", 1.0, est, "mean of measured/predicted over N ≥ 3d (exact)")


def _breakdown(loss):
    def f(profile):
        res = run_sweep("breakdown", profile)
        pred = m_prediction("bias", "alpha", profile, loss=loss, eta_mean=FAR_MU)
        # a ratio of means: small alpha (tiny bias, same noise) would dominate a mean of ratios
        est = jackknife(res, "alpha", "intercept_bias", lambda xs, ys: float(np.mean(ys) / np.mean(pred(xs))),
                        where={"loss": loss})
        name = {"l1": "L1: bias → √2 σ erf⁻¹(p/(1−p))", "huber": "Huber (δ = 1): bias → root of (1−p)E ψ + pδ = 0"}
        return _law(name[loss], 1.0, est, f"mean measured / mean predicted bias over α (μ = {FAR_MU:g}, exact)")
    return f


def _efficiency(loss):
    def f(profile):
        res = run_sweep("efficiency", profile)
        config = EXPERIMENT.resolve(**setting(profile, **grids(profile)["efficiency"][1]))
        N, d = _N(config), config["dim"]
        V = theory.asymptotic_variance(loss, 0.0, 0.0, 0.0, SIGMA, config["huber_delta"])
        pred = V * (N - d - 2) / (N * SIGMA**2)
        rows = res.rows
        num = rows[rows["loss"] == loss].sort_values("seed")["weight_error"].to_numpy() ** 2
        den = rows[rows["loss"] == "l2"].sort_values("seed")["weight_error"].to_numpy() ** 2
        R = len(num)
        est = num.mean() / den.mean()
        loo = np.array([np.delete(num, j).mean() / np.delete(den, j).mean() for j in range(R)])
        se = np.sqrt((R - 1) / R * ((loo - loo.mean()) ** 2).sum())
        t = stats.t.ppf(0.975, R - 1)
        label = {"l1": "L1 variance / L2 variance = (π/2)(N−d−2)/N",
                 "huber": "Huber (δ = 1.345σ) variance / L2 = (N−d−2)/(0.95 N)"}[loss]
        return _law(label, pred, (est, est - t * se, est + t * se), "ratio of mean ‖Ŵ − W‖² (exact, clean data)")
    return f


def _huber_risk(profile):
    res = run_sweep("huber-delta", profile)
    pred = m_prediction("risk", "huber_delta", profile, **grids(profile)["huber-delta"][1])
    est = jackknife(res, "huber_delta", "excess_risk", lambda xs, ys: float(np.mean(ys / pred(xs))))
    return _law("Huber's risk c(δ)² + (d+1)V(δ)/N", 1.0, est, "mean of measured/predicted excess risk over δ (exact)")


def _trimming(profile):
    tab = trimming(profile)  # the chapter's study (memoised): both poison means, the law uses the far one
    tab = tab[tab["eta_mean"] == FAR_MU]
    V = np.stack(tab["values"].to_numpy())  # (trims, repeats)
    diff = V - tab["predicted"].to_numpy()[:, None]
    stat = lambda M: float(M.mean())
    R = V.shape[1]
    est = stat(diff)
    loo = np.array([stat(np.delete(diff, j, axis=1)) for j in range(R)])
    se = np.sqrt((R - 1) / R * ((loo - loo.mean()) ** 2).sum())
    t = stats.t.ppf(0.975, R - 1)
    return _law("trimmed LS reaches its population fixed point", 0.0, (est, est - t * se, est + t * se),
                f"mean of measured − predicted bias over trim (μ = {FAR_MU:g})")


def _forgetting(profile):
    hl = half_lives(forgetting(profile))
    lrs = hl["lr"]
    R = hl["loo"].shape[0]
    est = exponent(lrs, hl["mean"])
    loo = np.array([exponent(lrs, row) for row in hl["loo"]])
    se = np.sqrt((R - 1) / R * ((loo - loo.mean()) ** 2).sum())
    t = stats.t.ppf(0.975, R - 1)
    return _law("forgetting half-life ∝ γ^k", exponent(lrs, hl["predicted"]), (est, est - t * se, est + t * se),
                "fitted exponent; prediction: same fit of ln 2 / −ln(1 − 2γ)")


LAWS = {
    "unbiased": _unbiased,
    "covariance": _covariance,
    "floor": _floor,
    "intercept-shift": _intercept_shift,
    "noise-variance": _noise_variance,
    "mu-exponent": _mu_exponent,
    "variance-exponent": _variance_exponent,
    "alpha-exponent": _alpha_exponent,
    "dimension": _dimension,
    "outputs": _outputs,
    "little-data": _little,
    "l1-breakdown": _breakdown("l1"),
    "huber-breakdown": _breakdown("huber"),
    "l1-efficiency": _efficiency("l1"),
    "huber-efficiency": _efficiency("huber"),
    "huber-risk": _huber_risk,
    "trimming": _trimming,
    "forgetting": _forgetting,
}


# ---------------------------------------------------------------- small helpers for the chapter's figures and tables

def loss_fits(profile=None):
    """Summary of the loss comparison (sweeps "loss" and "huber-thresholds") per fit, solver and mu_eta.

    Column "fit" names the loss ("l2", "l1", "huber δ=1", ...); use `fit_loss` to read it back.
    """
    import pandas as pd

    loss = summarize(run_sweep("loss", profile), ["loss", "huber_delta", "solver", "eta_mean"])
    more = summarize(run_sweep("huber-thresholds", profile), ["loss", "huber_delta", "solver", "eta_mean"])
    table = pd.concat([loss, more], ignore_index=True)
    table["fit"] = [f"huber δ={dl:g}" if l == "huber" else l for l, dl in zip(table["loss"], table["huber_delta"])]
    return table


def fit_loss(fit: str) -> dict:
    """The loss and Huber delta of a `loss_fits` label: "huber δ=4" -> {"loss": "huber", "huber_delta": 4.0}."""
    if fit.startswith("huber δ="):
        return {"loss": "huber", "huber_delta": float(fit.split("=")[1])}
    return {"loss": fit}


def ellipse(center, cov, level: float = 0.95, points: int = 200):
    """(x, y) of the `level` confidence ellipse of a 2-D Gaussian N(center, cov)."""
    center = np.asarray(center, dtype=float).reshape(2)
    cov = np.asarray(cov, dtype=float).reshape(2, 2)
    level = validate.fraction("level", level)
    radius = math.sqrt(stats.chi2.ppf(level, 2))
    t = np.linspace(0, 2 * math.pi, validate.positive_int("points", points, minimum=3))
    L = np.linalg.cholesky(cov)
    xy = center[:, None] + radius * L @ np.stack([np.cos(t), np.sin(t)])
    return xy[0], xy[1]


def ci_table(summary, by, metrics: dict, fmt=None):
    """A table of `by` columns and 'mean [lo, hi]' strings, one column per metric (name -> column title)."""
    import pandas as pd

    from .. import book

    fmt = fmt or book.fmt
    by = [by] if isinstance(by, str) else list(by)
    out = summary[by].copy()
    for metric, title in metrics.items():
        out[title] = [f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" for m, lo, hi in
                      zip(summary[f"{metric}_mean"], summary[f"{metric}_lo"], summary[f"{metric}_hi"])]
    return pd.DataFrame(out)
