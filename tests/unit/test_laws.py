"""Law fitting against scipy and known truths: CI coverage, references, agreement, the laws table."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats as sps

from poisonlab import stats

TRIALS = 200


def coverage_bounds_ok(hits: int) -> bool:
    # 200 trials of a 95% interval: hits/200 has standard deviation sqrt(.95 * .05 / 200) = 0.015,
    # so [0.9, 0.99] is about -3.2 to +2.6 standard deviations around 0.95
    return 0.9 <= hits / TRIALS <= 0.99


def test_power_law_exponent_ci_covers_the_truth():
    c, k = 2.5, -1.5
    x = np.geomspace(0.05, 0.8, 8)
    hits_k = hits_c = 0
    for seed in range(TRIALS):
        rng = np.random.default_rng(seed)
        y = c * x**k * np.exp(rng.normal(0.0, 0.1, x.size))  # log-normal noise: OLS on logs is exact
        fit = stats.fit_power(x, y)
        hits_k += fit.ci["k"][0] <= k <= fit.ci["k"][1]
        hits_c += fit.ci["c"][0] <= c <= fit.ci["c"][1]
    assert coverage_bounds_ok(hits_k), hits_k
    assert coverage_bounds_ok(hits_c), hits_c


def test_power_law_matches_linregress_on_logs():
    rng = np.random.default_rng(1)
    x = np.geomspace(1, 100, 12)
    y = 0.3 * x**0.5 * np.exp(rng.normal(0, 0.05, x.size))
    fit = stats.fit_power(x, y)
    ref = sps.linregress(np.log(x), np.log(y))
    t = sps.t.ppf(0.975, x.size - 2)
    assert fit.params["k"] == pytest.approx(ref.slope, rel=1e-10)
    assert fit.params["c"] == pytest.approx(math.exp(ref.intercept), rel=1e-10)
    assert fit.ci["k"] == pytest.approx((ref.slope - t * ref.stderr, ref.slope + t * ref.stderr), rel=1e-9)
    lo, hi = fit.ci["c"]
    assert (math.log(lo), math.log(hi)) == pytest.approx(
        (ref.intercept - t * ref.intercept_stderr, ref.intercept + t * ref.intercept_stderr), rel=1e-9)
    assert fit.r2 == pytest.approx(ref.rvalue**2, rel=1e-10)
    assert fit.n == 12 and fit.level == 0.95
    assert fit.predict(4.0) == pytest.approx(fit.params["c"] * 4.0 ** fit.params["k"])
    assert isinstance(fit.predict(4.0), float)
    assert fit.predict([1.0, 4.0]).shape == (2,)
    assert "k = " in str(fit)


def test_exact_power_law_is_recovered_exactly():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    fit = stats.fit_power(x, 3.0 * x**2)
    assert fit.params["k"] == pytest.approx(2.0, abs=1e-12)
    assert fit.params["c"] == pytest.approx(3.0, rel=1e-12)
    assert fit.ci["k"] == pytest.approx((2.0, 2.0), abs=1e-6)
    assert fit.r2 == 1.0


def test_weighted_power_law_matches_curve_fit_on_logs():
    rng = np.random.default_rng(2)
    x = np.geomspace(1, 10, 9)
    y = 2.0 * x**1.3 * np.exp(rng.normal(0, 0.05, x.size))
    sigma = 0.02 * y * np.linspace(1, 4, x.size)
    fit = stats.fit_power(x, y, sigma=sigma)
    popt, pcov = optimize.curve_fit(lambda u, a, b: a + b * u, np.log(x), np.log(y), sigma=sigma / y)
    assert fit.params["k"] == pytest.approx(popt[1], rel=1e-8)
    assert fit.se["k"] == pytest.approx(math.sqrt(pcov[1, 1]), rel=1e-6)
    # weights matter: the unweighted exponent differs
    assert stats.fit_power(x, y).params["k"] != pytest.approx(fit.params["k"], rel=1e-6)


@pytest.mark.parametrize("x, y, match", [
    ([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], "x must be > 0"),
    ([-1.0, 1.0, 2.0], [1.0, 2.0, 3.0], "x must be > 0"),
    ([1.0, 2.0, 3.0], [1.0, 0.0, 3.0], "y must be > 0"),
    ([1.0, 2.0, 3.0], [1.0, -2.0, 3.0], "y must be > 0"),
    ([1.0, 2.0, math.nan], [1.0, 2.0, 3.0], "x must be finite"),
    ([1.0, 2.0, 3.0], [1.0, math.inf, 3.0], "y must be finite"),
    ([1.0, 2.0, 3.0], [1.0, 2.0], "same length"),
    ([1.0, 2.0], [1.0, 2.0], "at least 3"),
    ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "x must take"),
    (["a", "b", "c"], [1.0, 2.0, 3.0], "x must be"),
])
def test_power_law_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        stats.fit_power(x, y)


def test_bad_sigma_and_level():
    x, y = [1.0, 2.0, 3.0, 4.0], [1.0, 2.1, 2.9, 4.2]
    for sigma in ([1.0, 0.0, 1.0, 1.0], [1.0, -1.0, 1.0, 1.0], [1.0, 1.0], [1.0, math.nan, 1.0, 1.0]):
        with pytest.raises(ValueError, match="sigma"):
            stats.fit_affine(x, y, sigma=sigma)
    for level in (0.0, 1.0, 2.0):
        with pytest.raises(ValueError, match="level"):
            stats.fit_affine(x, y, level=level)
    assert stats.fit_affine(x, y, sigma=0.5).params == stats.fit_affine(x, y).params  # a scalar sigma


def test_affine_matches_linregress_and_covers():
    x = np.linspace(0, 1, 10)
    ref_data = 1.0 - 2.0 * x + np.random.default_rng(4).normal(0, 0.1, x.size)
    fit = stats.fit_affine(x, ref_data)
    ref = sps.linregress(x, ref_data)
    t = sps.t.ppf(0.975, x.size - 2)
    assert fit.params == pytest.approx({"a": ref.intercept, "b": ref.slope}, rel=1e-10)
    assert fit.ci["b"] == pytest.approx((ref.slope - t * ref.stderr, ref.slope + t * ref.stderr), rel=1e-9)
    assert fit.ci["a"] == pytest.approx(
        (ref.intercept - t * ref.intercept_stderr, ref.intercept + t * ref.intercept_stderr), rel=1e-9)
    assert fit.r2 == pytest.approx(ref.rvalue**2, rel=1e-10)
    assert fit.predict(0.5) == pytest.approx(ref.intercept + 0.5 * ref.slope)
    hits = 0
    for seed in range(TRIALS):
        y = 1.0 - 2.0 * x + np.random.default_rng(seed).normal(0, 0.1, x.size)
        lo, hi = stats.fit_affine(x, y).ci["b"]
        hits += lo <= -2.0 <= hi
    assert coverage_bounds_ok(hits), hits


def test_weighted_affine_matches_curve_fit():
    rng = np.random.default_rng(5)
    x = np.linspace(0, 2, 11)
    sigma = np.linspace(0.05, 0.5, x.size)
    y = 0.5 + 1.5 * x + rng.normal(0, sigma)
    fit = stats.fit_affine(x, y, sigma=sigma)
    popt, pcov = optimize.curve_fit(lambda u, a, b: a + b * u, x, y, sigma=sigma)
    assert [fit.params["a"], fit.params["b"]] == pytest.approx(popt, rel=1e-8)
    assert [fit.se["a"], fit.se["b"]] == pytest.approx(np.sqrt(np.diag(pcov)), rel=1e-6)


def decay(x, a, b):
    return a * np.exp(-b * x)


def test_curve_fit_known_model_and_its_cis():
    x = np.linspace(0, 2, 15)
    y = decay(x, 2.0, 1.5) + np.random.default_rng(6).normal(0, 0.02, x.size)
    fit = stats.fit_curve(decay, x, y, p0=[1.0, 1.0], names=["a", "b"])
    popt, pcov = optimize.curve_fit(decay, x, y, p0=[1.0, 1.0])
    t = sps.t.ppf(0.975, x.size - 2)
    assert [fit.params["a"], fit.params["b"]] == pytest.approx(popt, rel=1e-8)
    for i, name in enumerate(["a", "b"]):
        half = t * math.sqrt(pcov[i, i])
        assert fit.ci[name] == pytest.approx((popt[i] - half, popt[i] + half), rel=1e-6)
    assert fit.params["a"] == pytest.approx(2.0, abs=0.05) and fit.params["b"] == pytest.approx(1.5, abs=0.1)
    assert fit.r2 > 0.99
    assert fit.predict(1.0) == pytest.approx(decay(1.0, *popt))
    assert "decay" in fit.model


def test_curve_fit_ci_covers_the_truth():
    x = np.linspace(0, 2, 12)
    hits = 0
    for seed in range(TRIALS):
        y = decay(x, 2.0, 1.5) + np.random.default_rng(seed).normal(0, 0.05, x.size)
        lo, hi = stats.fit_curve(decay, x, y, p0=[1.0, 1.0], names=["a", "b"]).ci["b"]
        hits += lo <= 1.5 <= hi
    assert coverage_bounds_ok(hits), hits


def test_curve_fit_with_several_inputs():
    rng = np.random.default_rng(7)
    X = rng.uniform(0.1, 1.0, size=(2, 20))
    y = 0.5 * X[0] ** 2 / X[1] * np.exp(rng.normal(0, 0.01, 20))
    fit = stats.fit_curve(lambda X, c, k: c * X[0] ** k / X[1], X, y, p0=[1.0, 1.0], names=["c", "k"])
    assert fit.params["k"] == pytest.approx(2.0, abs=0.05)
    assert abs(fit.params["k"] - 2.0) < 4 * fit.se["k"]  # a 4-standard-error band: fails ~1 seed in 10^4
    assert fit.predict(X).shape == (20,)


def test_curve_fit_bad_input():
    x = np.linspace(0, 1, 6)
    y = 2 * x + 1
    with pytest.raises(ValueError, match="names"):
        stats.fit_curve(lambda u, a, b: a + b * u, x, y, p0=[1, 1], names=["a"])
    with pytest.raises(ValueError, match="names"):
        stats.fit_curve(lambda u, a, b: a + b * u, x, y, p0=[1, 1], names=["a", "a"])
    with pytest.raises(ValueError, match="at least 3"):
        stats.fit_curve(lambda u, a, b: a + b * u, x[:2], y[:2], p0=[1, 1], names=["a", "b"])
    with pytest.raises(ValueError, match="x must have one value"):
        stats.fit_curve(lambda u, a, b: a + b * u, x[:5], y, p0=[1, 1], names=["a", "b"])
    with pytest.raises(ValueError, match="y must be finite"):
        stats.fit_curve(lambda u, a, b: a + b * u, x, np.r_[y[:-1], np.nan], p0=[1, 1], names=["a", "b"])
    # only a + b is identifiable: a singular covariance is an error, not an infinite CI
    with pytest.raises(ValueError, match="identified"):
        stats.fit_curve(lambda u, a, b: (a + b) * u, x, y, p0=[1, 1], names=["a", "b"])


def test_law_agrees_both_ways():
    inside = stats.Law("slope is 2", predicted=2.0, fitted=2.1, lo=1.9, hi=2.3, how="slope")
    assert inside.agrees is True
    outside = stats.Law("slope is 2", predicted=2.0, fitted=2.6, lo=2.4, hi=2.8)
    assert outside.agrees is False
    assert stats.Law("slope is 2", 2.0, 2.6, 2.4, 2.8, tol=0.7).agrees is True
    assert stats.Law("slope is 2", 2.0, 2.6, 2.4, 2.8, tol=0.5).agrees is False
    assert stats.Law("edge", 2.4, 2.6, 2.4, 2.8).agrees is True  # the CI is closed


def test_law_from_fit_and_bad_laws():
    x = np.geomspace(1, 10, 6)
    fit = stats.fit_power(x, 2 * x**-1.0 * np.exp(np.random.default_rng(8).normal(0, 0.01, 6)))
    law = stats.Law.from_fit("error falls as 1/n", -1.0, fit, "k", how="fitted exponent")
    assert (law.fitted, (law.lo, law.hi)) == (fit.params["k"], fit.ci["k"])
    assert law.agrees == (fit.ci["k"][0] <= -1.0 <= fit.ci["k"][1]) and law.how == "fitted exponent"
    assert stats.Law.from_fit("c", 2.0, fit, "c").how.startswith("fitted c")
    with pytest.raises(ValueError, match="param"):
        stats.Law.from_fit("x", 1.0, fit, "slope")
    with pytest.raises(ValueError, match="lo"):
        stats.Law("s", 1.0, 1.0, 2.0, 0.5)
    with pytest.raises(ValueError, match="predicted"):
        stats.Law("s", math.nan, 1.0, 0.5, 2.0)
    with pytest.raises(ValueError, match="fitted"):
        stats.Law("s", 1.0, math.inf, 0.5, 2.0)
    with pytest.raises(ValueError, match="tol"):
        stats.Law("s", 1.0, 1.0, 0.5, 2.0, tol=-0.1)
    with pytest.raises(ValueError, match="statement"):
        stats.Law("", 1.0, 1.0, 0.5, 2.0)


def test_verdict_yes_no_and_not_resolved():
    assert stats.Law("slope 2", 2.0, 2.1, 1.95, 2.25).verdict == "yes"  # half-width 0.15 <= 0.2
    assert stats.Law("slope 2", 2.0, 2.6, 2.4, 2.8).verdict == "no"
    wide = stats.Law("slope 2", 2.0, 2.1, 1.7, 2.5)  # half-width 0.4 > 10% of 2: cannot confirm
    assert wide.agrees and not wide.resolved and wide.verdict == "not resolved"
    # the scale replaces |predicted|, which is 0 for "no difference" laws
    assert stats.Law("gap 0", 0.0, 0.01, -0.02, 0.04, scale=1.0).verdict == "yes"
    assert stats.Law("gap 0", 0.0, 0.01, -0.02, 0.04, scale=0.1).verdict == "not resolved"
    # an interval that also holds the rival theory's value cannot tell the two apart
    assert stats.Law("slope 2", 2.0, 2.1, 1.95, 2.25, rival=2.2).verdict == "not resolved"
    assert stats.Law("slope 2", 2.0, 2.1, 1.95, 2.25, rival=2.5).verdict == "yes"
    with pytest.raises(ValueError, match="scale"):
        stats.Law("s", 1.0, 1.0, 0.5, 2.0, scale=-1.0)
    with pytest.raises(ValueError, match="rival"):
        stats.Law("s", 1.0, 1.0, 0.5, 2.0, rival=math.nan)
    with pytest.raises(ValueError, match="level"):
        stats.Law("s", 1.0, 1.0, 0.5, 2.0, level=1.0)


def test_p_value_and_detectable_deviation_follow_the_normal_approximation():
    z = sps.norm.ppf(0.975)
    law = stats.Law("mean 0", 0.0, 0.3, 0.3 - 0.2 * z, 0.3 + 0.2 * z)  # se = 0.2
    assert law.se == pytest.approx(0.2) and law.p_value == pytest.approx(2 * sps.norm.sf(1.5))
    # 80% power at 5%: a true deviation of (z_0.975 + z_0.8) se is detected 80% of the time
    assert law.detectable == pytest.approx((z + sps.norm.ppf(0.8)) * 0.2)
    rng = np.random.default_rng(0)
    estimates = law.detectable + 0.2 * rng.standard_normal(20000)
    assert np.mean(np.abs(estimates) > z * 0.2) == pytest.approx(0.8, abs=0.01)
    # a tolerance is a deviation the test forgives: p = 1 inside it, and it adds to what is detectable
    tol = stats.Law("mean 0", 0.0, 0.3, 0.3 - 0.2 * z, 0.3 + 0.2 * z, tol=0.5)
    assert tol.p_value == 1.0 and tol.detectable == pytest.approx(law.detectable + 0.5)
    # an asymmetric interval: the side facing the prediction sets the standard error
    ratio = stats.Law("ratio 1", 1.0, 1.5, 1.1, 2.5)
    assert ratio.se == pytest.approx(0.4 / z)


def test_holm_matches_the_step_down_procedure():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    m = len(p)
    order = np.argsort(p)
    ref = np.empty(m)
    running = 0.0
    for i, j in enumerate(order):  # Holm 1979: p_(i) (m - i), made monotone
        running = max(running, min(1.0, (m - i) * p[j]))
        ref[j] = running
    assert stats.holm(p).tolist() == pytest.approx(ref.tolist())
    assert stats.holm(p).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])
    with pytest.raises(ValueError, match="p"):
        stats.holm([0.5, 1.5])


def test_counts_of_a_laws_table():
    laws = [stats.Law("a", 1.0, 1.0, 0.99, 1.01), stats.Law("b", 1.0, 2.0, 1.9, 2.1),
            stats.Law("c", 1.0, 1.0, 0.5, 1.5), stats.Law("d", 1.0, 1.03, 1.001, 1.059)]
    c = stats.counts(laws)
    assert (c["n"], c["yes"], c["no"], c["not resolved"]) == (4, 1, 2, 1)
    assert c["no after Holm"] == 1 and c["expected by chance"] == pytest.approx(0.2)


def test_agreement_scalars_and_arrays():
    assert stats.agreement(1.0, 1.1, 0.9, 1.3) is True
    assert stats.agreement(1.5, 1.1, 0.9, 1.3) is False
    assert stats.agreement(1.5, 1.1, 0.9, 1.3, tol=0.4) is True
    ok = stats.agreement([1.0, 1.5, 2.0], [1.1, 1.1, 2.0], [0.9, 0.9, 1.9], [1.3, 1.3, 2.1])
    assert ok.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="measured_lo"):
        stats.agreement(1.0, 1.0, 2.0, 0.5)
    with pytest.raises(ValueError, match="predicted"):
        stats.agreement(math.nan, 1.0, 0.5, 2.0)
    with pytest.raises(ValueError, match="tol"):
        stats.agreement(1.0, 1.0, 0.5, 2.0, tol=-1)


def test_table_holds_the_laws_as_numbers():
    rows = [stats.Law("MSE grows as alpha^2", 2.0, 2.04, 1.9, 2.2, how="fitted exponent"),
            stats.Law("bias equals alpha eta", 0.5, 0.62, 0.58, 0.66, tol=0.05, how="slope")]
    t = stats.table(rows)
    assert list(t.columns) == ["statement", "how", "predicted", "fitted", "lo", "hi", "tol", "agrees", "detectable",
                               "p", "p_holm", "verdict"]
    assert t["statement"].tolist() == ["MSE grows as alpha^2", "bias equals alpha eta"]
    assert t["predicted"].tolist() == [2.0, 0.5] and t["fitted"].tolist() == [2.04, 0.62]
    assert t["lo"].tolist() == [1.9, 0.58] and t["hi"].tolist() == [2.2, 0.66]
    assert t["tol"].isna().tolist() == [True, False] and t["tol"][1] == 0.05
    assert t["agrees"].tolist() == [True, False] and t["verdict"].tolist() == ["yes", "no"]
    assert t["p_holm"].tolist() == pytest.approx(stats.holm(t["p"]).tolist())
    assert list(stats.table([]).columns) == list(t.columns)
    with pytest.raises(ValueError, match="laws"):
        stats.table([("not", "a", "law")])


def test_sigma_from_ci_inverts_the_sweep_interval():
    x = np.random.default_rng(9).normal(1.0, 0.3, size=7)
    _, lo, hi = stats.mean_ci(x)
    assert stats.sigma_from_ci(lo, hi, 7) == pytest.approx(sps.sem(x), rel=1e-12)
    both = stats.sigma_from_ci([lo, lo], [hi, hi], [7, 7])
    assert both == pytest.approx([sps.sem(x)] * 2, rel=1e-12)
    for bad in ({"n": 1}, {"n": 2.5}, {"lo": 2.0}):
        args = {"lo": lo, "hi": hi, "n": 7, **bad}
        with pytest.raises(ValueError, match="n|lo"):
            stats.sigma_from_ci(**args)


def test_sweep_to_law_pipeline(tmp_path, monkeypatch):
    # the chapter pattern: sweep -> summary -> weighted power fit -> Law in the laws table
    from poisonlab.lab import sweep
    from poisonlab.lab.experiment import Experiment, Param

    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path))

    def fn(configs):
        def z(c):  # noise of one configuration, independent of how configurations are batched
            return np.random.default_rng([c["seed"], round(c["alpha"] * 1e6)]).standard_normal()
        return [{"mse": 3.0 * c["alpha"] ** 2 * math.exp(0.1 * z(c))} for c in configs]

    exp = Experiment("pipeline", fn, [Param("alpha", 0.1)], ["mse"])
    summary = sweep.run(exp, {"alpha": [0.05, 0.1, 0.2, 0.4, 0.8]}, repeats=10).summary()
    sigma = stats.sigma_from_ci(summary["mse_lo"], summary["mse_hi"], summary["count"])
    fit = stats.fit_power(summary["alpha"], summary["mse_mean"], sigma=sigma)
    law = stats.Law.from_fit("MSE grows as alpha^2", 2.0, fit, "k", how="fitted exponent")
    assert law.agrees and abs(law.fitted - 2.0) < 0.05
    assert stats.Law.from_fit("wrong exponent", 1.8, fit, "k").agrees is False
    assert stats.table([law])["agrees"].tolist() == [True]


def test_jackknife_of_a_mean_is_the_t_interval_of_the_repeat_means():
    # for a statistic linear in the data the jackknife is exact: the mean over seeds of per-seed means
    import pandas as pd
    from scipy import stats as st

    rng = np.random.default_rng(3)
    rows = pd.DataFrame({"seed": np.repeat(np.arange(6), 4), "x": np.tile(np.arange(4.0), 6),
                         "m": rng.normal(size=24)})
    est, lo, hi, se = stats.jackknife(rows, lambda r: r["m"].mean())
    per_seed = rows.groupby("seed")["m"].mean().to_numpy()
    assert est == pytest.approx(per_seed.mean())
    assert se == pytest.approx(per_seed.std(ddof=1) / np.sqrt(6))
    assert hi - est == pytest.approx(st.t.ppf(0.975, 5) * se)
    with pytest.raises(ValueError, match="at least 2 repeats"):
        stats.jackknife(rows[rows["seed"] == 0], lambda r: r["m"].mean())


def test_jackknife_interval_of_leave_one_out_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    loo = [np.delete(x, j).mean() for j in range(x.size)]
    est, lo, hi, se = stats.jackknife_interval(x.mean(), loo, 0.9)
    # the jackknife of the mean is the classical standard error
    assert se == pytest.approx(x.std(ddof=1) / math.sqrt(x.size))
    assert hi - est == pytest.approx(est - lo) == pytest.approx(sps.t.ppf(0.95, 11) * se)
    # one estimate per column: repeats along the first axis
    M = rng.normal(size=(12, 3))
    loo2 = np.stack([np.delete(M, j, axis=0).mean(0) for j in range(12)])
    _, lo2, hi2, se2 = stats.jackknife_interval(M.mean(0), loo2)
    assert se2 == pytest.approx(M.std(0, ddof=1) / math.sqrt(12)) and np.all(lo2 < hi2)
    with pytest.raises(ValueError, match="at least 2"):
        stats.jackknife_interval(1.0, [1.0])
