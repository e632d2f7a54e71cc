"""The laws of the linear-regression chapter: each a prediction of theory against a measurement with a
95% interval (`law(name)`, `LAWS`).
"""
from __future__ import annotations

import numpy as np

from ... import stats
from . import theory
from .experiment import EXPERIMENT
from .sweeps import (
    ALPHA, exponent, FAR_MU, grids, jackknife, m_prediction, MU, _N, predict_grid, predicted, CHAPTER,
    setting, SIGMA, _sizes, slope
)
from .studies import forgetting, half_lives, ols_monte_carlo, trimming


def _law(statement, pred, est, how, tol=None, scale=None):
    mean, lo, hi = est[:3]
    return stats.Law(statement, float(pred), float(mean), float(lo), float(hi), tol, how,
                     scale=None if scale is None else float(scale))


def _ratio_to(metric_pred: str, result, x, where):
    """statistic(xs, ys): mean over the grid of measured ys / theory's `metric_pred`, for `jackknife`."""
    configs = {}
    for i in stats.rows_where(result, **where).index:  # rows and configs are in the same order
        configs.setdefault(float(result.configs[i][x]), result.configs[i])
    pred = {k: predicted(metric_pred, v) for k, v in configs.items()}
    return lambda xs, ys: float(np.mean(ys / np.array([pred[float(v)] for v in xs])))


def law(name: str, profile=None):
    """The law `name` of the chapter (see LAWS) as a stats.Law: prediction against measurement with a 95% CI."""
    return CHAPTER.law(name, profile, LAWS, rival)


def verdict_words(law: stats.Law) -> str:
    """The law's verdict as the prose says it: "agrees", "is not resolved" (the interval holds the prediction
    but is too wide, or holds the rival too) or "disagrees"."""
    return {"yes": "agrees", "not resolved": "is not resolved", "no": "disagrees"}[law.verdict]


def _unbiased(profile):
    mc = ols_monte_carlo(profile)
    z = mc["z"].ravel()
    # scale: one standard deviation of the standardised error z (its covariance is I)
    return _law("OLS is unbiased: E[θ̂ − θ] = 0", 0.0, stats.mean_ci(z),
                "mean standardised error over Monte Carlo draws", scale=1.0)


def _covariance(profile):
    mc = ols_monte_carlo(profile)
    q = (mc["z"] ** 2).sum(1) / mc["z"].shape[1]
    return _law("Cov(θ̂) = σ²(X̃ᵀX̃)⁻¹", 1.0, stats.mean_ci(q), "mean ‖z‖²/(d+1) over Monte Carlo draws")


def _floor(profile):
    res = CHAPTER.sweep("floor", profile)
    f = _ratio_to("exact_gap_sq", res, "lr", {})
    est = jackknife(res, "lr", lambda r: r["exact_gap"] ** 2, f)
    return _law("SGD noise floor with reshuffled epochs, eq. (floor)", 1.0, est, "mean of measured/predicted ‖θ_SGD − θ̂‖² over γ")


def _intercept_shift(profile):
    res = CHAPTER.sweep("alpha", profile)
    N = theory.n_train(_sizes(profile).n)
    p_of = lambda xs: theory.poisoned_fraction(xs, N)
    est = jackknife(res, "alpha", "intercept_bias", lambda xs, ys: slope(p_of(xs), ys), where={"solver": "sgd"})
    return _law("the intercept moves by p μ_η", MU, est, "slope of b̂ − b against p (SGD)")


def _noise_variance(profile):
    res = CHAPTER.sweep("alpha", profile)
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
    res = CHAPTER.sweep("mean", profile)
    return _law("ℛ(μ_η) − ℛ(0) ∝ μ_η^β", 2.0, _excess_exponent(res, "eta_mean", {}), "fitted exponent (SGD)")


def _variance_exponent(profile):
    res = CHAPTER.sweep("variance", profile)
    return _law("centred η: ℛ(σ_η) − ℛ(0) ∝ (σ_η²)^β", 1.0,
                _excess_exponent(res, "eta_std", {"eta_mean": 0.0}, lambda s: s**2, xmin=4.0),
                "fitted exponent over σ_η ≥ 4 (SGD)")


def _alpha_exponent(profile):
    res = CHAPTER.sweep("alpha", profile)
    N = theory.n_train(_sizes(profile).n)
    xform = lambda a: theory.poisoned_fraction(a, N)
    est = _excess_exponent(res, "alpha", {"solver": "sgd"}, xform)
    xs = np.array(grids(profile)["alpha"][0]["alpha"])
    ys = predict_grid("excess_risk", "alpha", xs, profile, solver="sgd")
    return _law("ℛ(p) − ℛ(0) ∝ p^β", exponent(xform(xs[1:]), ys[1:] - ys[0]), est,
                "fitted exponent (SGD); prediction: same fit of the theory curve")


def weighted_exponent(xs, ys) -> float:
    """Exponent of ys = c xs^k, points weighted by their degrees of freedom (relative error of a mean of
    a chi-square with ~ m d degrees of freedom: 1/sqrt(d))."""
    return stats.fit_power(xs, ys, sigma=ys / np.sqrt(xs)).params["k"]


def _dimension(profile):
    res = CHAPTER.sweep("dimension", profile)
    sq = lambda r: r["weight_error"] ** 2
    est = jackknife(res, "dim", sq, weighted_exponent, where={"solver": "exact"})
    xs = np.array(grids(profile)["dimension"][0]["dim"], dtype=float)
    ys = predict_grid("weight_error_sq", "dim", [int(v) for v in xs], profile, solver="exact")
    return _law("‖Ŵ − W‖² = m a d/(N−d−2) ∝ d^β", weighted_exponent(xs, ys), est,
                "fitted exponent (exact OLS); prediction: same fit of the theory curve")


def _outputs(profile):
    res = CHAPTER.sweep("outputs", profile)
    est = jackknife(res, "out_dim", lambda r: r["param_error"] ** 2, exponent, where={"solver": "exact"})
    return _law("‖θ̂ − θ‖² ∝ m^β, test MSE flat in m", 1.0, est, "fitted exponent (exact OLS)")


def _little(profile):
    res = CHAPTER.sweep("little", profile)
    d = 10
    # heavy inverse-Wishart tails near N = d + 2 make the mean of a few repeats unreliable: N >= 3d
    where = {"solver": "exact", "n": lambda n: theory.n_train(n) >= 3 * d}
    f = _ratio_to("weight_error_sq", res, "n", where)
    est = jackknife(res, "n", lambda r: r["weight_error"] ** 2, f, where=where)
    return _law("little data: E‖Ŵ − W‖² = m a d/(N−d−2)", 1.0, est, "mean of measured/predicted over N ≥ 3d (exact)")


def _breakdown(loss):
    def f(profile):
        res = CHAPTER.sweep("breakdown", profile)
        pred = m_prediction("bias", "alpha", profile, loss=loss, eta_mean=FAR_MU)
        # a ratio of means: small alpha (tiny bias, same noise) would dominate a mean of ratios
        est = jackknife(res, "alpha", "intercept_bias", lambda xs, ys: float(np.mean(ys) / np.mean(pred(xs))),
                        where={"loss": loss})
        name = {"l1": "L1: bias → √2 σ erf⁻¹(p/(1−p))", "huber": "Huber (δ = 1): bias → root of (1−p)E ψ + pδ = 0"}
        return _law(name[loss], 1.0, est, f"mean measured / mean predicted bias over α (μ = {FAR_MU:g}, exact)")
    return f


def _efficiency(loss):
    def f(profile):
        res = CHAPTER.sweep("efficiency", profile)
        config = EXPERIMENT.resolve(**setting(profile, **grids(profile)["efficiency"][1]))
        N, d = _N(config), config["dim"]
        V = theory.asymptotic_variance(loss, 0.0, 0.0, 0.0, SIGMA, config["huber_delta"])
        pred = V * (N - d - 2) / (N * SIGMA**2)
        rows = res.rows
        num = rows[rows["loss"] == loss].sort_values("seed")["weight_error"].to_numpy() ** 2
        den = rows[rows["loss"] == "l2"].sort_values("seed")["weight_error"].to_numpy() ** 2
        loo = [np.delete(num, j).mean() / np.delete(den, j).mean() for j in range(len(num))]
        est = stats.jackknife_interval(num.mean() / den.mean(), loo)
        label = {"l1": "L1 variance / L2 variance = (π/2)(N−d−2)/N",
                 "huber": "Huber (δ = 1.345σ) variance / L2 = (N−d−2)/(0.95 N)"}[loss]
        return _law(label, pred, est, "ratio of mean ‖Ŵ − W‖² (exact, clean data)")
    return f


def _huber_risk(profile):
    res = CHAPTER.sweep("huber-delta", profile)
    pred = m_prediction("risk", "huber_delta", profile, **grids(profile)["huber-delta"][1])
    est = jackknife(res, "huber_delta", "excess_risk", lambda xs, ys: float(np.mean(ys / pred(xs))))
    return _law("Huber's risk c(δ)² + (d+1)V(δ)/N", 1.0, est, "mean of measured/predicted excess risk over δ (exact)")


def _trimming(profile):
    tab = trimming(profile)  # the chapter's study (memoised): both poison means, the law uses the far one
    tab = tab[tab["eta_mean"] == FAR_MU]
    V = np.stack(tab["values"].to_numpy())  # (trims, repeats)
    diff = V - tab["predicted"].to_numpy()[:, None]
    loo = [float(np.delete(diff, j, axis=1).mean()) for j in range(V.shape[1])]
    est = stats.jackknife_interval(float(diff.mean()), loo)
    # scale: the bias that trimming is there to remove, least squares' p mu
    N = theory.n_train(_sizes(profile).n)
    return _law("trimmed LS reaches its population fixed point", 0.0, est,
                f"mean of measured − predicted bias over trim (μ = {FAR_MU:g})",
                scale=theory.poisoned_fraction(ALPHA, N) * FAR_MU)


def _half_life_level(profile):
    hl = half_lives(forgetting(profile))
    j = int(np.argmax(hl["lr"]))  # the largest lr: where discrete steps and continuous time differ most
    ratio = hl["mean"][j] / hl["predicted"][j]
    est = stats.jackknife_interval(ratio, hl["loo"][:, j] / hl["predicted"][j])
    return _law(f"half-life at γ = {hl['lr'][j]:g}: ln 2 / −ln(1 − 2γ) steps", 1.0, est,
                "measured / predicted half-life (jackknife)")


def _forgetting(profile):
    hl = half_lives(forgetting(profile))
    lrs = hl["lr"]
    est = stats.jackknife_interval(exponent(lrs, hl["mean"]), [exponent(lrs, row) for row in hl["loo"]])
    return _law("forgetting half-life ∝ γ^β", exponent(lrs, hl["predicted"]), est,
                "fitted exponent; prediction: same fit of ln 2 / −ln(1 − 2γ)")


def _leverage(placement):
    def f(profile):
        from . import leverage

        est = leverage.breakdown_fraction(leverage.breakdown_points(profile), "l1", placement)
        if placement == "leverage":
            return _law("LAD slope, poison on the largest |x|: breaks at erfc√ln 2", theory.leverage_breakdown_fraction(),
                        est, "mean breakdown fraction over repeats (exact LAD, bisection on k; jackknife)")
        return _law("LAD slope, poison on random points: breaks at 1/2", 0.5, est,
                    "mean breakdown fraction over repeats (exact LAD, bisection on k; jackknife)")
    return f


def _feature(profile):
    from . import leverage

    rows = leverage.feature_breakdowns(profile)
    est = stats.jackknife(rows, lambda r: float(r["ratio"].mean()))
    # the bisection stops within BISECTION (relative) above the capture leverage: a computed tolerance
    return _law("feature poison: one point at x_P ≥ x_P* = med + Σ|x_i − med| takes the LAD slope", 1.0, est,
                "mean capturing position / x_P* over repeats (bisection on x_P; jackknife)", tol=leverage.BISECTION)


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
    "half-life-level": _half_life_level,
    "leverage-breakdown": _leverage("leverage"),
    "random-breakdown": _leverage("random"),
    "feature-breakdown": _feature,
}

# The exceptions the page reports (tests/laws checks them): laws that fail, and laws whose interval cannot
# resolve the prediction (too wide, or containing the rival).
DISAGREES: dict = {}
UNRESOLVED = {  # in the quick profile (tests/laws); the full profile's repeats resolve some (see the page)
    "floor": "the floor is a small distance between two fits of the same data, a chi-square with few degrees "
             "of freedom per repeat: the quick profile's repeats leave its mean ratio within +-50%",
    "dimension": "a fitted exponent of a squared error whose relative spread is sqrt(2/(m d)), largest at d = 1: "
                 "few repeats leave it within +-25%",
    "outputs": "the same chi-square spread over m = 1, 2, 4 outputs: the quick repeats leave the exponent within "
               "+-15%",
    "l1-efficiency": "a ratio of two mean squared errors over the same repeats: its relative error is about "
                     "sqrt(2 / (R d m)) for each, +-18% with the quick profile's repeats",
    "huber-risk": "measured over predicted excess risk near its minimum is a small chi-square per repeat: "
                  "+-40% with the quick repeats",
}


def _mean_over(values):
    return float(np.mean(values))


def rival(name: str, profile=None) -> float:
    """The value of law `name`'s statistic under a named competing (wrong) theory, which its interval must
    exclude: a law test that could not tell the two apart would be no test (tests/laws)."""
    from . import studies, sweeps

    grids = sweeps.grids(profile)
    N = theory.n_train(_sizes(profile).n)
    P = theory.poisoned_fraction(sweeps.ALPHA, N)
    if name == "unbiased":  # a bias of a fifth of a standard error per coordinate
        return 0.2
    if name == "covariance":  # a covariance 20% too large (e.g. forgetting the design, sigma^2 (d+1)/N)
        return 1.2
    if name == "floor":  # the classical with-replacement floor: measured/predicted would average WR/RR
        cfg = EXPERIMENT.resolve(**sweeps.setting(profile, out_dim=8))
        a = sweeps.predicted("train_mse", cfg)
        lrs = np.array(grids["floor"][0]["lr"])
        wr = theory.sgd_floor(lrs, cfg["batch_size"], N, 1, 8, a, replacement=True)
        rr = theory.sgd_floor(lrs, cfg["batch_size"], N, 1, 8, a)
        return _mean_over(wr / rr)
    if name == "intercept-shift":  # the intercept moving by the poison's mean per *clean* point, p mu/(1-p)
        return sweeps.MU / (1 - P)
    if name == "noise-variance":  # the naive noise variance sigma^2 + p s^2 (no p(1-p) mu^2 term)
        alphas = [a for a in grids["alpha"][0]["alpha"]]
        ratios = []
        for a in alphas:
            p = theory.poisoned_fraction(a, N)
            ratios.append((sweeps.SIGMA**2 + p * sweeps.S**2) / theory.effective_variance(sweeps.SIGMA, p, sweeps.MU, sweeps.S, N))
        return _mean_over(ratios)
    if name == "mu-exponent":  # error linear in the poison's mean
        return 1.0
    if name == "variance-exponent":  # error growing like sigma_eta rather than sigma_eta^2
        return 0.5
    if name == "alpha-exponent":  # error linear in the poisoned fraction
        return 1.0
    if name == "dimension":  # error growing like sqrt(d)
        return 0.5
    if name == "outputs":  # the parameter error not growing with m (as the per-output test MSE)
        return 0.0
    if name == "little-data":  # no finite-sample correction, E||W_hat - W||^2 = m a d / N
        d = 10
        ratios = [(theory.n_train(n) - d - 2) / theory.n_train(n) for n in grids["little"][0]["n"]
                  if theory.n_train(n) >= 3 * d]
        return _mean_over(ratios)
    if name in ("l1-breakdown", "huber-breakdown"):  # the first-order (influence-function) bias p gamma*
        loss = name.split("-")[0]
        alphas = grids["breakdown"][0]["alpha"]
        ps = [theory.poisoned_fraction(a, N) for a in alphas]
        first = [p * theory.gross_error_sensitivity(loss, sweeps.SIGMA, 1.0) for p in ps]
        exact = [theory.m_estimate(loss, p, sweeps.FAR_MU, sweeps.S, sweeps.SIGMA, 1.0) for p in ps]
        return float(np.sum(first) / np.sum(exact))
    if name in ("l1-efficiency", "huber-efficiency"):  # no efficiency loss (Huber) / L1's loss for Huber
        return 1.0 if name == "l1-efficiency" else law("l1-efficiency", profile).predicted
    if name == "huber-risk":  # delta not mattering: every fit as bad as least squares under this poison
        deltas = grids["huber-delta"][0]["huber_delta"]
        changes = grids["huber-delta"][1]
        full = sweeps.m_prediction("risk", "huber_delta", profile, **changes)(deltas)
        p = theory.poisoned_fraction(changes["alpha"], N)
        l2 = theory.m_excess_risk("l2", N, changes["dim"], p, sweeps.MU, sweeps.S, sweeps.SIGMA)
        return _mean_over(l2 / full)
    if name == "trimming":  # trimming without effect: the bias stays p mu, measured - predicted averages
        tab = studies.trimming(profile)
        tab = tab[tab["eta_mean"] == sweeps.FAR_MU]
        return float(np.mean(tab["predicted"] - P * sweeps.FAR_MU))
    if name == "forgetting":  # half-life growing like 1/sqrt(lr)
        return -0.5
    if name == "half-life-level":  # continuous time, ln 2 / (2 gamma) steps, over the discrete prediction
        lr = max(studies.forgetting(profile)["lrs"])
        return float(-np.log1p(-2 * lr) / (2 * lr))
    if name == "leverage-breakdown":  # the location model's breakdown point, one half, whatever the placement
        return 0.5
    if name == "random-breakdown":  # random points breaking as early as the highest-leverage ones
        return theory.leverage_breakdown_fraction()
    if name == "feature-breakdown":  # LAD resisting one point only as much as least squares: x_P ~ sqrt(sum x^2)
        from . import leverage

        return float(leverage.feature_breakdowns(profile)["ls_scale"].mean())
    raise KeyError(name)
