"""Unit tests of the leverage section (theory.leverage_*, sample_breakdown, feature_breakdown_leverage,
the Huber-1964 minimax functions, and the leverage module), against scipy and direct computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from poisonlab.chapters.linear_regression import leverage, theory


def test_leverage_breakdown_is_erfc_sqrt_log2_and_the_tail_carries_half_of_E_abs_x():
    lb = theory.leverage_breakdown()
    assert lb["value"] == pytest.approx(special.erfc(math.sqrt(math.log(2))), rel=1e-12)
    assert theory.leverage_breakdown_fraction() == pytest.approx(lb["value"], rel=1e-12)
    t = float(lb["t_star"])
    assert t == pytest.approx(math.sqrt(2 * math.log(2)), rel=1e-12)
    tail = 2 * integrate.quad(lambda z: z * stats.norm.pdf(z), t, np.inf)[0]
    assert tail == pytest.approx(0.5 * math.sqrt(2 / math.pi), rel=1e-9)  # half of E|x|
    assert 2 * stats.norm.sf(t) == pytest.approx(lb["value"], rel=1e-9)


def test_sample_breakdown_of_a_large_gaussian_design_approaches_the_population_fraction():
    x = np.random.default_rng(1).standard_normal(200_000)
    assert theory.sample_breakdown(x) == pytest.approx(theory.leverage_breakdown_fraction(), abs=0.003)


def test_sample_breakdown_by_hand_and_bad_input():
    # the largest point alone outweighs the other points, measured from their median (sum |x - med|)
    assert theory.sample_breakdown([10.0, 1.0, -1.0, 1.0, -1.0]) == pytest.approx(1 / 5)
    assert theory.sample_breakdown([5.0, -1.0, 1.0, -1.0, 1.0, 0.5]) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="x"):
        theory.sample_breakdown([1.0, np.nan])
    with pytest.raises(ValueError, match="x"):
        theory.sample_breakdown([1.0])
    with pytest.raises(ValueError, match="order"):
        theory.sample_breakdown([1.0, 2.0, 3.0], order=[0, 0, 1])


def test_feature_breakdown_leverage_and_bad_input():
    assert theory.feature_breakdown_leverage([-1.0, 0.0, 2.0]) == pytest.approx(0.0 + 3.0)
    with pytest.raises(ValueError, match="x_rest"):
        theory.feature_breakdown_leverage([np.inf])


def test_median_max_bias_matches_the_l1_limit_and_the_contaminated_median():
    mb = theory.median_max_bias()
    for eps in (0.05, 0.2, 0.4):
        sym = float(mb["bias"].subs(mb["epsilon"], eps))
        assert sym == pytest.approx(theory.max_bias(eps), rel=1e-10)
        assert theory.max_bias(eps) == pytest.approx(theory.limit_bias("l1", eps, 1.0), rel=1e-10)
        # the median of (1 - eps) N(0, 1) + eps delta_{+oo}
        assert (1 - eps) * stats.norm.cdf(theory.max_bias(eps)) == pytest.approx(0.5, rel=1e-12)
    assert theory.max_bias(np.array([0.0, 0.1])).shape == (2,)
    with pytest.raises(ValueError, match="eps"):
        theory.max_bias(0.5)
    with pytest.raises(ValueError, match="sigma"):
        theory.max_bias(0.1, -1.0)


def test_huber_minimax_threshold_matches_huber_1964_and_its_own_mass_equation():
    # Huber (1964), table: eps = 0.05 -> k = 1.399, eps = 0.01 -> k = 1.945, eps = 0.1 -> k = 1.140
    for eps, k in ((0.01, 1.945), (0.05, 1.399), (0.1, 1.140)):
        assert theory.huber_minimax_delta(eps) == pytest.approx(k, abs=1e-3)
    eq = theory.huber_minimax_equation()
    k = theory.huber_minimax_delta(0.05)
    assert float(eq["eps_of_k"].subs(eq["k"], k)) == pytest.approx(0.05, rel=1e-9)
    assert float(eq["mass"].subs({eq["k"]: k, eq["epsilon"]: 0.05})) == pytest.approx(1.0, rel=1e-9)
    assert theory.huber_minimax_delta(0.05, 2.0) == pytest.approx(2 * k)
    with pytest.raises(ValueError, match="eps"):
        theory.huber_minimax_delta(0.0)


def test_poisoned_points_are_nested_and_pick_the_largest_abs_x():
    x = np.array([0.1, -3.0, 2.0, -0.5, 1.0])
    assert list(leverage.poisoned_points(x, 2, "leverage", 0)) == [1, 2]
    small, big = leverage.poisoned_points(x, 2, "random", 7), leverage.poisoned_points(x, 4, "random", 7)
    assert list(big[:2]) == list(small)
    with pytest.raises(ValueError, match="placement"):
        leverage.poisoned_points(x, 2, "nearest", 0)
    with pytest.raises(ValueError, match="k"):
        leverage.poisoned_points(x, 6, "leverage", 0)


def test_tilt_labels_and_bad_input():
    x, y = np.array([-2.0, 1.0, 3.0]), np.zeros(3)
    assert list(leverage.tilt_labels(x, y, [0, 2], 5.0)) == [-5.0, 0.0, 5.0]
    with pytest.raises(ValueError, match="y"):
        leverage.tilt_labels(x, np.zeros(2), [0], 1.0)
    with pytest.raises(ValueError, match="shift"):
        leverage.tilt_labels(x, y, [0], np.nan)
    with pytest.raises(ValueError, match="fit"):
        leverage.slope(x, y, "l2")


@pytest.mark.parametrize("fit", ["l1", "huber"])
def test_exact_fits_break_where_the_sample_condition_says(fit):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(120)
    y = 0.7 * x + 0.2 + rng.standard_normal(120)
    k = leverage.breakdown_count(x, y, "leverage", fit, 0)
    assert k / x.size == pytest.approx(theory.sample_breakdown(x), abs=1e-12)
    # one point fewer holds; the random placement needs far more points
    assert not leverage.broken(x, y, leverage.poisoned_points(x, k - 1, "leverage", 0), fit)
    assert leverage.breakdown_count(x, y, "random", fit, 0) > 1.5 * k


def test_one_moved_point_takes_the_lad_slope_at_the_predicted_leverage():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(100)
    y = -0.4 * x + rng.standard_normal(100)
    L_star = theory.feature_breakdown_leverage(x[1:])
    assert leverage.captured(x, y, -0.4, 1.001 * L_star)
    assert not leverage.captured(x, y, -0.4, 0.99 * L_star)


# ---------------------------------------------------------------- the chapter's small helpers

def test_risk_ratio_is_a_paired_jackknife_of_the_mean_ratio():
    import pandas as pd

    from poisonlab.chapters.linear_regression import sweeps as lin

    rng = np.random.default_rng(5)
    seeds = np.arange(12)
    linear = 1.0 + 0.1 * rng.standard_normal(12)
    rows = pd.DataFrame({"seed": np.r_[seeds, seeds], "alpha": 0.3, "hidden": [()] * 12 + [(16,)] * 12,
                         "excess_risk": np.r_[linear, 1.5 * linear]})
    est, lo, hi, _ = lin.risk_ratio(rows, (16,), 0.3)
    assert est == pytest.approx(1.5) and lo == pytest.approx(1.5) and hi == pytest.approx(1.5)  # exactly paired
    with pytest.raises(ValueError, match="where"):
        lin.risk_ratio(rows.drop(columns="alpha"), (16,), 0.3)


def test_log_ticks_writes_plain_labels_at_the_given_values():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from poisonlab.chapters.linear_regression import sweeps as lin

    fig, ax = plt.subplots()
    ax.plot([1, 32], [1, 2])
    ax.set_xscale("log")
    lin.log_ticks(ax, [1, 2, 4, 32])
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "32"]
    assert all(t.get_text() == "" for t in ax.xaxis.get_minorticklabels())
    plt.close(fig)


def test_verdict_words_follow_the_verdict():
    from poisonlab import stats
    from poisonlab.chapters.linear_regression import laws

    assert laws.verdict_words(stats.Law("x", 1.0, 1.0, 0.99, 1.01)) == "agrees"
    assert laws.verdict_words(stats.Law("x", 1.0, 1.0, 0.5, 1.5)) == "is not resolved"
    assert laws.verdict_words(stats.Law("x", 1.0, 2.0, 1.9, 2.1)) == "disagrees"


def test_agreement_counts_repeats_where_the_fits_and_the_sample_condition_agree():
    import pandas as pd

    rows = pd.DataFrame({"seed": [0, 0, 1, 1], "placement": "leverage", "fit": ["l1", "huber"] * 2,
                         "breakdown": [0.25, 0.25, 0.24, 0.23], "sample_prediction": [0.25, 0.25, 0.2, 0.2]})
    assert leverage.agreement(rows) == {"repeats": 2, "same": 1, "sample": 1}
