"""The logistic-regression chapter's sweeps: every sweep by name (CHAPTER.spec, CHAPTER.sweep), their rows,
curves and summaries, the cost of the defences. Sizes: sizes.py.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import book, stats
from ...lab.chapter import Chapter, SweepSpec
from .experiment import DEFENSES, EXPERIMENT, FLIPS
from .sizes import SIZES


ALPHA1 = 0.2        # the chapter's running example of a poisoned fraction
CONT_ALPHA = 0.3    # most-confident flips past the mixture's reversal, for the continued-training study
# ten distinguishable colours (matplotlib's tab10), for the defence figure's nine curves per panel
DISTINCT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf")


def _sweeps(S) -> dict[str, SweepSpec]:
    """Every sweep of the chapter: grid, fixed settings, repeats and base seed, from its sizes S."""
    R, bonus, dfn, rsgd, Rx = S.repeats, S.bonus_repeats, S.defense_repeats, S.rate_sgd_repeats, S.exact_repeats
    mix = {"x_dist": "mixture"}
    # a small step: constant-step SGD is biased by O(lr) where the loss is flat, as it is near a reversal
    gauss_rev = {"x_dist": "gaussian", "n": S.reversal_n, "lr": S.rate_lr}
    rate = {"alpha": S.rate_alpha}
    return {name: SweepSpec(grid, fixed, repeats, seed) for name, (grid, fixed, repeats, seed) in {
        "alpha": ({"alpha": S.alphas}, {}, R, 0),
        "norm": ({"alpha": S.norm_alphas}, {"x_dist": "gaussian", "n": S.norm_n, "solver": "exact"}, R, 1),
        "mixture": ({"alpha": S.mixture_alphas}, mix, R, 2),
        "mixture-law": ({"alpha": sorted({ALPHA1, *S.mixture_angle_alphas})}, {**mix, "n": S.mixture_law_n}, R, 2),
        "near": ({"flip": ["boundary", "one-sided"], "alpha": S.margin_alphas}, {**mix, "margin": S.margin},
                 R, 3),
        "near-random": ({"alpha": S.margin_alphas}, mix, R, 3),
        "strip": ({"flip": ["one-sided", "boundary"], "x_dist": ["uniform", "mixture"], "alpha": S.strip_alphas},
                  {}, R, 4),
        "strip-law": ({"alpha": S.strip_alphas}, {"flip": "one-sided", "n": S.strip_n}, R, 4),
        "most-confident": ({"reference": ["clean", "true"], "alpha": S.confident_alphas}, {**mix, "flip": "most-confident"}, R, 5),
        "reversal-most-confident": ({"alpha": S.confident_reversal}, {**gauss_rev, "flip": "most-confident", "reference": "true"},
                             R, 6),
        "reversal-boundary": ({"alpha": S.boundary_reversal},
                              {**gauss_rev, "flip": "boundary", "margin": S.gauss_margin}, R, 6),
        "dim-exact": ({"dim": S.dims}, {**rate, "n": S.dim_n, "x_dist": "gaussian", "solver": "exact"}, Rx, 8),
        "dim-sgd": ({"dim": S.dims, "x_dist": ["gaussian", "mixture"]}, {**rate, "n": S.dim_n, "lr": S.rate_lr},
                    rsgd, 8),
        "n-exact": ({"n": S.ns}, {**rate, "x_dist": "gaussian", "solver": "exact"}, Rx, 9),
        "n-sgd": ({"n": S.ns, "x_dist": ["gaussian", "mixture"]}, {**rate, "lr": S.rate_lr}, rsgd, 9),
        "density": ({"separation": S.separations},
                    {**rate, "n": S.density_n, "x_dist": "gaussian", "solver": "exact"}, S.density_repeats, 15),
        "hidden": ({"hidden": [(), tuple(S.hidden)], "flip": ["random", "most-confident"], "alpha": S.hidden_alphas},
                   mix, bonus, 10),
        "little": ({"n": S.little_ns, "alpha": [0.0, ALPHA1]}, mix, bonus, 11),
        "continue": ({"continue_from_clean": [False, True], "flip": ["random", "most-confident"]},
                     {**mix, "alpha": CONT_ALPHA}, bonus, 12),
        "defense": ({"defense": list(DEFENSES), "flip": list(FLIPS), "alpha": S.defense_alphas}, mix, dfn, 13),
        "cost-filters": ({"defense": ["loss-filter", "knn-filter"], "drop": [0.05, 0.2]}, {**mix, "alpha": 0.0},
                         dfn, 14),
        "cost-plain": ({"defense": ["none", "median", "trimmed-mean", "worker-median"]}, {**mix, "alpha": 0.0},
                       dfn, 14),
    }.items()}


CHAPTER = Chapter(EXPERIMENT, SIZES, _sweeps)


def jackknife(rows: pd.DataFrame, statistic, level: float = 0.95):
    """stats.jackknife without its standard error: (estimate, lo, hi)."""
    return stats.jackknife(rows, statistic, level)[:3]


def _curve(rows, x, y):
    g = rows.groupby(x)[y].mean()
    return g.index.to_numpy(dtype=float), g.to_numpy(dtype=float)


def _slope(x, y):
    return float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])


def _exponent(x, y):
    return _slope(np.log(x), np.log(y))


def _per_seed(result, where: dict):
    """The selected rows as {seed: DataFrame sorted by alpha}."""
    rows = stats.rows_where(result, **where).sort_values(["seed", "alpha"])
    return {seed: g for seed, g in rows.groupby("seed", sort=True)}


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
        mean, lo, hi = stats.mean_ci(g[metric].to_numpy() - base.loc[g["seed"]].to_numpy())
        out.append({"defence": defense, "drop": "" if drop < 0 else drop,
                    "accuracy change": book.fmt_ci(mean, lo, hi)})
    return pd.DataFrame(out)


def attack_table(summary: pd.DataFrame, metric: str = "expected_accuracy") -> pd.DataFrame:
    """A summary's `metric` as mean [95% CI], one row per alpha and one column per attack (readable names)."""
    cells = summary.assign(cell=[book.fmt_ci(m, lo, hi) for m, lo, hi in
                                 zip(summary[f"{metric}_mean"], summary[f"{metric}_lo"], summary[f"{metric}_hi"])])
    table = cells.pivot(index="alpha", columns="flip", values="cell")
    return table[[f for f in FLIPS if f in table.columns]].reset_index().rename(columns={"alpha": "α"})


def first_alpha(strongest: pd.Series, attack: str) -> float:
    """The smallest alpha from which on `attack` is the strongest (strongest: alpha -> attack); NaN if never."""
    alphas = list(strongest.index)
    for i, a in enumerate(alphas):
        if all(strongest.loc[b] == attack for b in alphas[i:]):
            return float(a)
    return float("nan")


def accuracy_at(summary: pd.DataFrame, flip: str, alpha: float, metric: str = "expected_accuracy") -> float:
    """The mean `metric` of one attack at one alpha in a summary."""
    rows = summary[(summary["flip"] == flip) & np.isclose(summary["alpha"], alpha)]
    if len(rows) != 1:
        raise ValueError(f"flip {flip!r} and alpha {alpha} must select one row, got {len(rows)}")
    return float(rows[f"{metric}_mean"].iloc[0])


def share_size(config: dict) -> int:
    """Examples per worker in the workers' median: the minibatch size over the number of workers (rounded down)."""
    return max(1, config["batch_size"] // config["shares"])


def exponent_ci(result, x: str, x_of=None, level: float = 0.95, **where):
    """The log-log slope of the mean error (1 - expected accuracy) against x over a sweep's grid, with its
    leave-one-seed-out jackknife interval: (estimate, lo, hi). x_of maps the grid values of x to the
    abscissa (e.g. a separation to the density at the boundary); `where` selects rows."""
    rows = _with_error(stats.rows_where(result, **where) if where else result.rows)
    if x_of is not None:
        rows = rows.assign(**{x: x_of(rows[x].to_numpy())})
    return jackknife(rows, lambda r: _exponent(*_curve(r, x, "error")), level)


def rate_ratios(n_result, dim_result, alpha: float) -> pd.DataFrame:
    """Measured over predicted error (theory.predicted_error) at each point of the n and d grids of the
    exact MLE: columns n, d, training points, measured, predicted, measured / predicted."""
    from . import theory

    rows = pd.concat([_with_error(r.rows) for r in (n_result, dim_result)], ignore_index=True)
    g = rows.groupby(["n", "dim"], as_index=False).agg(n_train=("n_train", "first"), measured=("error", "mean"))
    g["predicted"] = theory.predicted_error(alpha, g["n_train"].to_numpy(), g["dim"].to_numpy())
    g["measured / predicted"] = g["measured"] / g["predicted"]
    return g.rename(columns={"dim": "d", "n_train": "training points"})


def log_ticks(*axes):
    """Ticks at 1, 2 and 5 times each power of ten on the log axes of `axes`, labelled as plain numbers
    (0.02, 0.05, 0.1), without minor labels (3 x 10^-2 and 4 x 10^-2 overlap on a short axis); the first Axes."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for ax in axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                axis.set_minor_formatter(NullFormatter())
    return axes[0]
