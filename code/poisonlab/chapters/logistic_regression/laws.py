"""The laws of the logistic-regression chapter: each a prediction of theory against a measurement with
a 95% interval (`law(name)`, `LAWS`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import binom

from ... import stats
from .sweeps import (
    ALPHA1, CHAPTER, _curve, _exponent, jackknife, _per_seed, _slope, _with_error
)
from .studies import default_population, evasion_study, knn_study


def symmetry_law(result, metric: str = "expected_accuracy") -> stats.Law:
    """acc(alpha) + acc(1 - alpha) = 1: the mean over the grid's pairs, per repeat, with a t-CI over repeats."""
    values = []
    for _, g in _per_seed(result, {}).items():
        acc = dict(zip(np.round(g["alpha"].to_numpy(), 9), g[metric].to_numpy()))
        pairs = [acc[a] + acc[round(1 - a, 9)] for a in acc if a <= 0.5 and round(1 - a, 9) in acc]
        if not pairs:
            raise ValueError("result must hold pairs alpha, 1 - alpha")
        values.append(float(np.mean(pairs)))
    mean, lo, hi = stats.mean_ci(values)
    return stats.Law("acc(α) + acc(1 − α) = 1 (label-mirror symmetry)", 1.0, mean, lo, hi,
                    how="mean over α pairs, t-CI over repeats")


def norm_ratio_law(result) -> stats.Law:
    """|w_hat| / a*(alpha) = 1 (random flips, Gaussian x): the mean ratio over the grid per repeat."""
    from . import theory

    rows = result.rows
    ratio = rows["weight_norm"].to_numpy() / theory.flip_weight_norm(rows["alpha"].to_numpy())
    per_seed = pd.Series(ratio).groupby(rows["seed"].to_numpy()).mean().to_numpy()
    mean, lo, hi = stats.mean_ci(per_seed)
    return stats.Law("‖ŵ‖ = a*(α), with a* E[Λ′(a* z)] = (1 − 2α) φ(0)", 1.0, mean, lo, hi,
                    how="mean of ‖ŵ‖ / a*(α) over α, t-CI over repeats")


def norm_exponent_law(result, alphas) -> stats.Law:
    """The power-law exponent of |w_hat| against alpha over small alphas, against that of a*(alpha)."""
    from . import theory

    rows = result.rows[result.rows["alpha"].isin(list(alphas))]
    est = jackknife(rows, lambda r: _exponent(*_curve(r, "alpha", "weight_norm")))
    a = np.array(sorted(set(rows["alpha"])), dtype=float)
    predicted = theory.rate_exponent(a, theory.flip_weight_norm(a))
    return stats.Law("‖ŵ‖ ∝ α^β at small α (β → −1/2: a* ≈ π/√(12α))", predicted, *est,
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


def crossing_law(result, predicted: float, statement: str, metric: str = "expected_accuracy", **where) -> stats.Law:
    """The alpha at which the accuracy crosses 1/2 (reversal), mean and t-CI over repeats, against a prediction."""
    mean, lo, hi = stats.mean_ci(crossings(result, metric, **where))
    return stats.Law(statement, predicted, mean, lo, hi, how="α where accuracy crosses 1/2, t-CI over repeats")


def point_law(result, predicted: float, statement: str, metric: str = "expected_accuracy", **where) -> stats.Law:
    """The mean of `metric` at one grid point (`where`: parameter values) against a prediction."""
    rows = stats.rows_where(result, **where)
    mean, lo, hi = stats.mean_ci(rows[metric])
    at = ", ".join(f"{k} = {v}" for k, v in where.items())
    return stats.Law(statement, predicted, mean, lo, hi, how=f"mean {metric.replace('_', ' ')} at {at}")


def _law_mirror(profile):
    return symmetry_law(CHAPTER.sweep("alpha", profile))


def _law_norm(profile):
    return norm_ratio_law(CHAPTER.sweep("norm", profile))


def _law_norm_exponent(profile):
    S = CHAPTER.sizes(profile)
    return norm_exponent_law(CHAPTER.sweep("norm", profile), S.norm_small)


def _law_mixture(profile):
    from . import theory

    mixture, w = default_population()
    pop = float(theory.population_curve("random", [ALPHA1], mixture, w)[0][0])
    S = CHAPTER.sizes(profile)
    return point_law(CHAPTER.sweep("mixture-law", profile), pop,
                     f"mixture, random flips: accuracy = population fit's (n = {S.mixture_law_n})", alpha=ALPHA1)


def _law_strip(profile):
    rows = _with_error(CHAPTER.sweep("strip-law", profile).rows)
    est = jackknife(rows, lambda r: _slope(*(lambda g: (g["strip_mass"], g["error"]))(
        r.groupby("alpha")[["strip_mass", "error"]].mean())))
    return stats.Law("one-sided strip flips: error = strip mass M (square)", 1.0, *est,
                    how="fitted slope of error against M, jackknife over repeats")


def _law_reversal_confident(profile):
    from . import theory

    return crossing_law(CHAPTER.sweep("reversal-most-confident", profile), theory.reversal_alpha("most-confident"),
                        "Gaussian, most-confident flips reverse at erfc(√log 2)")


def _law_reversal_boundary(profile):
    from . import theory

    S = CHAPTER.sizes(profile)
    return crossing_law(CHAPTER.sweep("reversal-boundary", profile), theory.reversal_alpha("boundary", S.gauss_margin),
                        f"Gaussian, both-sided flips within ρ = {S.gauss_margin} reverse at α_rev(ρ)")


def _law_reversal_mixture(profile):
    from . import theory

    mixture, w = default_population()
    return crossing_law(CHAPTER.sweep("most-confident", profile), theory.population_reversal("most-confident", mixture, w),
                        "mixture, most-confident flips reverse where the population fit does", reference="true")


def _law_evasion(profile):
    from . import theory

    study = evasion_study(profile)
    mass = np.array([theory.evasion_error(theory.gaussian_mixture_of(2), [1.0, 0.0], 0.0, e) for e in study["eps"]])
    err = study["error"]["gaussian"]  # (repeats, eps)
    rows = pd.DataFrame([{"seed": r, "mass": m, "error": err[r, j]} for r in range(err.shape[0])
                         for j, m in enumerate(mass)])
    est = jackknife(rows, lambda r: _slope(*(lambda g: (g.index, g.to_numpy()))(r.groupby("mass")["error"].mean())))
    return stats.Law("evasion error at budget ε = P(|z| < ε) (Gaussian, clean model)", 1.0, *est,
                    how="fitted slope of evasion error against the mass within ε, jackknife over repeats")


def _law_rate_n(profile):
    rows = _with_error(CHAPTER.sweep("n-exact", profile).rows)
    est = jackknife(rows, lambda r: _exponent(*_curve(r, "n_train", "error")))
    return stats.Law("random flips: error ∝ n^(−1/2) (Gaussian, MLE)", -0.5, *est,
                    how="fitted log-log exponent, jackknife over repeats")


def _law_rate_d(profile):
    from . import theory

    S = CHAPTER.sizes(profile)
    rows = _with_error(CHAPTER.sweep("dim-exact", profile).rows)
    est = jackknife(rows, lambda r: _exponent(*_curve(r, "dim", "error")))
    predicted = theory.rate_exponent(S.dims, theory.dimension_factor(S.dims))
    return stats.Law("random flips: error ∝ h(d) ≈ √d (Gaussian, MLE)", predicted, *est,
                    how="fitted log-log exponent (prediction: slope of h(d) on the grid), jackknife over repeats")


def _law_rate_constant(profile):
    from . import theory

    S = CHAPTER.sizes(profile)
    rows = pd.concat([_with_error(CHAPTER.sweep(name, profile).rows) for name in ("n-exact", "dim-exact")],
                     ignore_index=True)
    rows = rows.assign(predicted=theory.predicted_error(S.rate_alpha, rows["n_train"].to_numpy(),
                                                        rows["dim"].to_numpy()))

    def ratio(r):
        g = r.groupby(["n", "dim"])[["error", "predicted"]].mean()
        return float(np.mean(g["error"] / g["predicted"]))
    return stats.Law("random flips: error = C(α) h(d) / √n (Gaussian, MLE)", 1.0, *jackknife(rows, ratio),
                    how="mean ratio measured / predicted over the n and d grids, jackknife over repeats")


def _density_rows(profile):
    """The density sweep's rows with the error, f(0) and the predicted error of each separation."""
    from . import theory

    S = CHAPTER.sizes(profile)
    rows = _with_error(CHAPTER.sweep("density", profile).rows)
    seps = sorted(set(rows["separation"]))
    pred = dict(zip(seps, np.atleast_1d(theory.predicted_error_separated(S.rate_alpha, rows["n_train"].iloc[0], 2,
                                                                       seps))))
    return rows.assign(f0=theory.boundary_density(rows["separation"].to_numpy()),
                       predicted=rows["separation"].map(pred))


def density_exponent(rows) -> float:
    """The log-log slope of the mean error over its predicted spread factor (predicted error / f(0))
    against f(0): 1 if the error is proportional to the density at the boundary."""
    g = rows.groupby("f0")[["error", "predicted"]].mean()
    return _exponent(g.index.to_numpy(), (g["error"] / (g["predicted"] / g.index)).to_numpy())


def _law_density(profile):
    est = jackknife(_density_rows(profile), density_exponent)
    return stats.Law("random flips: error ∝ f(0), the density at the boundary (two Gaussians at ±μ, MLE)", 1.0,
                    *est, how="log-log slope of error / (its predicted spread factor) against f(0), jackknife "
                              "over repeats")


def _law_density_level(profile):
    def ratio(r):
        g = r.groupby("separation")[["error", "predicted"]].mean()
        return float(np.mean(g["error"] / g["predicted"]))
    return stats.Law("random flips: error = f(0) √(2/π) h(d) √V / (H a* √n) (two Gaussians at ±μ, MLE)", 1.0,
                    *jackknife(_density_rows(profile), ratio),
                    how="mean ratio measured / predicted over the separations, jackknife over repeats")


def _angle_rows(profile):
    from . import theory

    S = CHAPTER.sizes(profile)
    rows = CHAPTER.sweep("n-exact", profile).rows
    rows = rows.assign(n_train=rows["n"] - (0.2 * rows["n"]).round())
    return rows.assign(predicted=[theory.angle_spread(S.rate_alpha, n) for n in rows["n_train"]])


def _law_gauss_angle(profile):
    def ratio(r):
        g = r.groupby("n_train")[["angle", "predicted"]].mean()
        return float(np.mean(g["angle"] / g["predicted"]))
    return stats.Law("Gaussian x, random flips: no tilt, the angle of ŵ is sampling spread √(2π) C(α) / √n",
                    1.0, *jackknife(_angle_rows(profile), ratio),
                    how="mean ratio measured / predicted angle over the n grid, jackknife over repeats")


def mixture_angle_rise(result, alphas) -> np.ndarray:
    """Per repeat, the angle at the largest alpha minus that at the smallest (the rise of the tilt)."""
    lo, hi = min(alphas), max(alphas)
    out = []
    for _, g in _per_seed(result, {}).items():
        angle = dict(zip(np.round(g["alpha"].to_numpy(), 9), g["angle"].to_numpy()))
        out.append(angle[round(hi, 9)] - angle[round(lo, 9)])
    return np.array(out)


def _law_mixture_angle(profile):
    from . import theory

    S = CHAPTER.sizes(profile)
    mixture, w = default_population()
    lo, hi = min(S.mixture_angle_alphas), max(S.mixture_angle_alphas)
    pop = theory.population_curve("random", [lo, hi], mixture, w)[2]
    mean, low, high = stats.mean_ci(mixture_angle_rise(CHAPTER.sweep("mixture-law", profile), [lo, hi]))
    return stats.Law(f"mixture, random flips: the tilt rises from α = {lo} to {hi} as the population fit's "
                     f"(n = {S.mixture_law_n})", float(pop[1] - pop[0]), mean, low, high,
                     how="per-repeat angle difference, t-CI over repeats")


def _law_knn(flipped: bool):
    def law(profile):
        from . import theory

        S = CHAPTER.sizes(profile)
        a = max(S.knn_alphas)
        col = "flipped_far" if flipped else "clean_far"
        study = knn_study(profile)
        mean, lo, hi = stats.mean_ci(study.loc[np.isclose(study["alpha"], a), col])
        what = "flipped points dropped = P(Bin(k, 1−α) > k/2)" if flipped else "clean points dropped = P(Bin(k, α) > k/2)"
        return stats.Law(f"kNN filter far from the boundary: {what}",
                        theory.knn_flag_probability(a, S.knn_k, 0.5, flipped), mean, lo, hi,
                        how=f"mean at α = {a}, t-CI over repeats")
    return law


DISAGREES = {
    "rate-constant": "the measured error exceeds the first-order prediction K(α) h(d)/√n by a few per cent over the "
                     "n and d grids (measured/predicted per grid point in the chapter); the next-order terms (the "
                     "spread of ŵ along w, the MLE's finite-n bias) are not computed",
}
UNRESOLVED = {
    "rate-n": "the jackknife interval of the n-exponent is wider than ±10% of 1/2 at 60 repeats: it excludes the "
              "rival −1, not a deviation of 0.05",
    "mixture-angle": "the rise of the tilt is resolved from zero (the rival) but its size only to about ±40%: "
                     "at n = 8000 the angle still wobbles from repeat to repeat",
}

LAWS = {
    "mirror": _law_mirror, "norm": _law_norm, "norm-exponent": _law_norm_exponent, "mixture": _law_mixture,
    "strip": _law_strip, "reversal-most-confident": _law_reversal_confident, "reversal-boundary": _law_reversal_boundary,
    "reversal-mixture": _law_reversal_mixture, "evasion": _law_evasion, "rate-n": _law_rate_n,
    "rate-d": _law_rate_d, "rate-constant": _law_rate_constant, "density": _law_density,
    "density-level": _law_density_level, "gauss-angle": _law_gauss_angle, "mixture-angle": _law_mixture_angle,
    "knn-flipped": _law_knn(True), "knn-clean": _law_knn(False),
}


def law(name: str, profile=None) -> stats.Law:
    """The law `name` of the chapter (see LAWS): prediction against measurement with a 95% CI."""
    return CHAPTER.law(name, profile, LAWS, rival)


def _mean_chi(k):
    return math.sqrt(2) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2))


def rival(name: str, profile=None) -> float:
    """The value of law `name`'s statistic under a named competing (wrong) theory, which its interval must
    exclude: a law test that could not tell the two apart would be no test (tests/laws)."""
    from . import theory

    S = CHAPTER.sizes(profile)
    if name == "mirror":  # no reversal above 1/2: acc(alpha) + acc(1 - alpha) ~ 2 acc(0) ~ 2
        return 2.0
    if name == "norm":  # the small-alpha asymptote pi / sqrt(12 alpha) taken as the norm at every alpha
        a = np.array(S.norm_alphas)
        return float(np.mean(theory.weight_norm_asymptote(a) / theory.flip_weight_norm(a)))
    if name == "norm-exponent":  # the asymptote's exponent -1/2 taken as exact on the grid
        return -0.5
    if name == "mixture":  # random flips leave the boundary exactly in place: accuracy 1
        return 1.0
    if name == "strip":  # the boundary moving only halfway across the flipped strip
        return 0.5
    if name in ("reversal-most-confident", "reversal-boundary"):  # reversal at 1/2, as for random flips
        return 0.5
    if name == "reversal-mixture":  # the Gaussian threshold erfc(sqrt(log 2)) carried over to the mixture
        return theory.reversal_alpha("most-confident")
    if name == "evasion":  # evasion that can only push points of one side across
        return 0.5
    if name == "rate-n":  # the fast rate d/n of separable (noise-free) data
        return -1.0
    if name == "rate-d":  # an error growing linearly with the dimension
        return 1.0
    if name == "rate-constant":  # the error of the tilt alone, (1/pi) E[angle], forgetting the intercept
        dims = [2] * len(S.ns) + list(S.dims)
        return float(np.mean([theory.dimension_factor(d) / _mean_chi(d - 1) for d in dims]))
    if name == "density":  # the error independent of the density at the boundary (only the spread counts)
        return 0.0
    if name == "density-level":  # eq-log-rate's Gaussian constant K(alpha) carried over to every separation
        rows = _density_rows(profile)
        g = rows.groupby("separation")["predicted"].mean()
        gauss = theory.predicted_error(S.rate_alpha, rows["n_train"].iloc[0], 2)
        return float(np.mean(gauss / g.to_numpy()))
    if name == "gauss-angle":  # a population tilt as large as the mixture's at this alpha, whatever n
        from .studies import default_population as pop
        tilt = float(theory.population_curve("random", [S.rate_alpha], *pop())[2][0])
        return float(np.mean(tilt / _angle_rows(profile).groupby("n_train")["predicted"].mean()))
    if name == "mixture-angle":  # "the tilt is the same whatever alpha"
        return 0.0
    if name in ("knn-flipped", "knn-clean"):  # "at least half" instead of "more than half" of the neighbours
        a, k = max(S.knn_alphas), S.knn_k
        p = 1 - a if name == "knn-flipped" else a
        return float(binom.sf(math.ceil(k / 2) - 1, k, p))
    raise KeyError(name)
