"""The linear-regression chapter's sweeps: its poisoned setting, the grid of every sweep, their
summaries and fitted statistics, theory's predictions in the sweeps' terms, the tables and
ellipses of its figures. Sizes come from the profile's "linear" section.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from ... import stats, validate
from ...lab.chapter import Chapter, SweepSpec
from ...lab.profile import sizes
from . import theory
from .sizes import SIZES, Sizes
from .experiment import EXPERIMENT, LOSSES, PARAMS


# The chapter's poisoned setting: eta biased (mu != 0), of high variance, alpha high.
SIGMA, ALPHA, MU, S = 1.0, 0.3, 5.0, 5.0
FAR_MU = 50.0  # "very far" poison: every poisoned residual is clipped by L1 and Huber


def _sizes(profile=None) -> Sizes:
    return sizes(SIZES, profile)


def setting(profile=None, **changes) -> dict:
    """The chapter's configuration (poisoned setting, training sizes of the profile), with `changes`."""
    return _setting(_sizes(profile), **changes)


def _setting(z: Sizes, **changes) -> dict:
    base = dict(n=z.n, noise_std=SIGMA, alpha=ALPHA, eta_mean=MU, eta_std=S, epochs=z.epochs,
                lr=z.lr, batch_size=z.batch_size)
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
    return _grids(_sizes(profile))


def _grids(z: Sizes) -> dict:
    k = z.points
    both = ["sgd", "exact"]
    return {
        "centring": ({"eta_mean": [0.0, MU], "alpha": _lin(0, 0.5, k)}, {}),
        "variance": ({"eta_mean": [0.0, MU], "eta_std": [0.0, *_geom(1, 64, k - 1)]}, {}),
        "alpha": ({"alpha": _lin(0, 1, k), "solver": both}, {}),
        "mean": ({"eta_mean": [0.0, *_geom(2, 64, k - 1)]}, {}),
        "training": ({"epochs": z.epochs_grid, "lr": [0.002, 0.01, 0.05, 0.2]}, {}),
        # m = 8 outputs average the floor over 8 independent problems; lr/m is each one's step
        "floor": ({"lr": _geom(0.08, 1.6, k)}, {"out_dim": 8}),
        "dimension": ({"dim": z.dims, "solver": both}, {}),
        "outputs": ({"out_dim": z.out_dims, "solver": both}, {}),
        "loss": ({"loss": list(LOSSES), "eta_mean": z.loss_mus, "solver": both}, {}),
        # more Huber thresholds on the same poisoned data (same seeds), delta = 1 being in "loss"
        "huber-thresholds": ({"huber_delta": [0.25, 4.0], "eta_mean": z.loss_mus, "solver": both},
                             {"loss": "huber"}),
        # light poison, where Huber's delta has an interior optimum; 5 x 2 coefficients per repeat
        "huber-delta": ({"huber_delta": _geom(0.1, 20, k)}, {"loss": "huber", "solver": "exact", "alpha": 0.05,
                                                            "dim": 4, "out_dim": 2}),
        "breakdown": ({"loss": list(LOSSES), "alpha": _lin(0.05, 0.45, k)}, {"eta_mean": FAR_MU, "solver": "exact"}),
        "efficiency": ({"loss": list(LOSSES)}, {"alpha": 0.0, "dim": 8, "out_dim": 4, "huber_delta": 1.345,
                                                "solver": "exact"}),
        "little": ({"n": z.little_n, "solver": both}, {"dim": 10, "epochs": z.little_epochs}),
        "hidden": ({"hidden": [tuple(h) for h in z.hidden], "alpha": [0.0, ALPHA]},
                   {"epochs": z.hidden_epochs, "batch_size": z.hidden_batch}),
        "continue": ({"continue_from_clean": [False, True], "epochs": [e for e in z.epochs_grid if e <= 10]},
                     {"lr": 0.01}),
    }


def _sweeps(z: Sizes) -> dict[str, SweepSpec]:
    """Every sweep of the chapter (see `grids`) with the setting it fixes and its repeats."""
    out = {}
    for name, (grid, changes) in _grids(z).items():
        fixed = {k: v for k, v in _setting(z, **changes).items() if k not in grid}
        # a sweep may have its own repeats (<name>_repeats): little data is cheap and heavy-tailed
        out[name] = SweepSpec(grid, fixed, getattr(z, f"{name.replace('-', '_')}_repeats", z.repeats))
    return out


CHAPTER = Chapter(EXPERIMENT, SIZES, _sweeps)


def dimension_table(d_table, profile=None):
    """Per input dimension d: what depends on d (the squared weight error, the clean-variance term
    m a d/(N-d-2)) and what does not (the intercept's poisoning bias p mu), measured (mean [95% CI]) against
    predicted, for exact least squares; and SGD's squared weight error over its prediction."""
    import pandas as pd

    from ... import book

    out = []
    for d in sorted(d_table["dim"].unique()):
        row = {}
        for solver in ("exact", "sgd"):
            r = d_table[(d_table["dim"] == d) & (d_table["solver"] == solver)].iloc[0]
            row[solver] = r
        cfg = lambda solver: EXPERIMENT.resolve(**setting(profile, dim=int(d), solver=solver))
        ex, sg = row["exact"], row["sgd"]
        out.append({"d": int(d),
                    "b̂ − b (exact)": book.fmt_ci(ex["intercept_bias_mean"], ex["intercept_bias_lo"], ex["intercept_bias_hi"]),
                    "p μ_η": predicted("intercept_bias", cfg("exact")),
                    "‖Ŵ − W‖² (exact)": book.fmt_ci(ex["w_sq_mean"], ex["w_sq_lo"], ex["w_sq_hi"]),
                    "m a_N d/(N−d−2)": predicted("weight_error_sq", cfg("exact")),
                    "SGD measured / predicted": book.fmt_ci(*(sg[f"w_sq_{k}"] / predicted("weight_error_sq", cfg("sgd"))
                                                             for k in ("mean", "lo", "hi")))})
    return pd.DataFrame(out)


def dimension_facts(d_table, m_table, profile=None) -> dict:
    """What the dimension section quotes from its two summaries: the range over d of exact least squares'
    intercept bias (the poisoning bias, flat in d) and its weight error's growth; SGD's squared weight error
    over its prediction at every d, its smallest and largest (and where), and at how many d its 95% interval
    holds 1; the range of exact least squares' test MSE over m."""
    exact = d_table[d_table["solver"] == "exact"].sort_values("dim")
    sgd = d_table[d_table["solver"] == "sgd"].sort_values("dim")
    ratios = np.array([r / predicted("weight_error_sq", EXPERIMENT.resolve(**setting(profile, dim=int(d))))
                       for d, r in zip(sgd["dim"], sgd["w_sq_mean"])])
    pred = ratios / sgd["w_sq_mean"].to_numpy()  # 1 / prediction at each d
    holds = int(np.sum((sgd["w_sq_lo"].to_numpy() * pred <= 1) & (1 <= sgd["w_sq_hi"].to_numpy() * pred)))
    lo, hi = int(np.argmin(ratios)), int(np.argmax(ratios))
    mse = m_table[m_table["solver"] == "exact"]["test_mse_mean"]
    return {"d_min": int(exact["dim"].min()), "d_max": int(exact["dim"].max()),
            "bias_min": float(exact["intercept_bias_mean"].min()), "bias_max": float(exact["intercept_bias_mean"].max()),
            "w_growth": float(exact["w_sq_mean"].iloc[-1] / exact["w_sq_mean"].iloc[0]),
            "sgd_ratios": ratios, "sgd_min": float(ratios[lo]), "d_sgd_min": int(sgd["dim"].iloc[lo]),
            "sgd_max": float(ratios[hi]), "d_sgd_max": int(sgd["dim"].iloc[hi]), "sgd_holds_1": holds,
            "mse_min": float(mse.min()), "mse_max": float(mse.max())}


def worst_exact(table) -> dict:
    """Where exact least squares' squared weight error peaks over N (a little-data summary), with SGD's there."""
    exact = table[table["solver"] == "exact"]
    worst = exact.loc[exact["w_sq_mean"].idxmax()]
    sgd = table[(table["solver"] == "sgd") & (table["N"] == worst["N"])]["w_sq_mean"].item()
    return {"N": int(worst["N"]), "exact": float(worst["w_sq_mean"]), "sgd": float(sgd)}


def summarize(result, by, where=None, **derived):
    """Per value of `by`: mean and 95% t-interval of each metric and of each `derived` column (name=f(rows)).

    Columns `<name>_mean`, `<name>_lo`, `<name>_hi` as in SweepResult.summary, for plots.metric_vs.
    """
    rows = stats.rows_where(result, **(where or {})).copy()
    for name, f in derived.items():
        rows[name] = f(rows)
    # a derived column that is never negative (a squared error) keeps its interval at or above 0
    ranges = {**EXPERIMENT.ranges, **{n: (0.0, math.inf) for n in derived if bool((rows[n] >= 0).all())}}
    return stats.summarize(rows, by, [*result.metrics, *derived], count="repeats", ranges=ranges)


def _matrix(rows, x, y):
    """(x values, matrix points x repeats) of metric or derived column `y` (a name or f(rows))."""
    values = y(rows) if callable(y) else rows[y]
    table = rows.assign(_v=np.asarray(values, dtype=float)).pivot_table(index=x, columns="seed", values="_v",
                                                                          aggfunc="mean")
    return table.index.to_numpy(dtype=float), table.to_numpy(dtype=float)


def jackknife(result, x, y, statistic, *, where=None, level=0.95):
    """statistic(xs, mean curve of `y` against `x`) with stats.jackknife's interval: (estimate, lo, hi, se)."""
    rows = stats.rows_where(result, **(where or {}))

    def curve_statistic(rows_):
        xs, M = _matrix(rows_, x, y)
        return statistic(xs, M.mean(1))

    return stats.jackknife(rows, curve_statistic, level)


def exponent(xs, ys) -> float:
    """The log-log slope k of ys = c xs^k (stats.fit_power)."""
    return stats.fit_power(xs, ys).params["k"]


def slope(xs, ys) -> float:
    """The slope b of ys = a + b xs (stats.fit_affine)."""
    return stats.fit_affine(xs, ys).params["b"]


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


# ---------------------------------------------------------------- small helpers for the chapter's figures and tables

def loss_fits(profile=None):
    """Summary of the loss comparison (sweeps "loss" and "huber-thresholds") per fit, solver and mu_eta.

    Column "fit" names the loss ("l2", "l1", "huber δ=1", ...); use `fit_loss` to read it back.
    """
    import pandas as pd

    loss = summarize(CHAPTER.sweep("loss", profile), ["loss", "huber_delta", "solver", "eta_mean"])
    more = summarize(CHAPTER.sweep("huber-thresholds", profile), ["loss", "huber_delta", "solver", "eta_mean"])
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
    radius = math.sqrt(sps.chi2.ppf(level, 2))
    t = np.linspace(0, 2 * math.pi, validate.positive_int("points", points, minimum=3))
    L = np.linalg.cholesky(cov)
    xy = center[:, None] + radius * L @ np.stack([np.cos(t), np.sin(t)])
    return xy[0], xy[1]


def ci_table(summary, by, metrics: dict):
    """A table of `by` columns and 'mean [lo, hi]' strings, one column per metric (name -> column title)."""
    import pandas as pd

    from ... import book

    by = [by] if isinstance(by, str) else list(by)
    out = summary[by].copy()
    for metric, title in metrics.items():
        out[title] = [book.fmt_ci(m, lo, hi) for m, lo, hi in
                      zip(summary[f"{metric}_mean"], summary[f"{metric}_lo"], summary[f"{metric}_hi"])]
    return pd.DataFrame(out)


def risk_ratio(result, hidden, alpha, level: float = 0.95):
    """Mean excess risk of the MLP with widths `hidden` over the linear model's at `alpha`, with the
    leave-one-seed-out jackknife interval (both models see the same seeds: the ratio is paired)."""
    rows = stats.rows_where(result, alpha=alpha)
    widths = rows["hidden"].map(lambda v: tuple(v))

    def ratio(r):
        w = widths.loc[r.index]
        return float(r[w == tuple(hidden)]["excess_risk"].mean() / r[w == ()]["excess_risk"].mean())

    return stats.jackknife(rows, ratio, level)


def log_ticks(ax, values=None, axis: str = "x"):
    """Plain tick labels on a log axis ("0.01", "32", not "3 x 10^0"), at `values` when given, and no minor
    labels: matplotlib labels the minor ticks of a short log axis, and they overlap."""
    from matplotlib import ticker

    which = ax.xaxis if axis == "x" else ax.yaxis
    if values is not None:
        which.set_major_locator(ticker.FixedLocator([float(v) for v in values]))
    which.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    which.set_minor_formatter(ticker.NullFormatter())
    return ax


def plain_logs(fig):
    """`log_ticks` on every logarithmic axis of `fig` (no fixed tick positions); returns the figure."""
    for ax in fig.axes:
        for axis in ("x", "y"):
            if (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "log":
                log_ticks(ax, axis=axis)
    return fig
