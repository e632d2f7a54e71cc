"""The laws of image-classification.qmd, asserted in the quick profile with Monte Carlo tolerances.

Each test computes the law with the chapter's own functions and sizes (profile "quick"). Tolerance:
a 99% Student-t band of the measurement, t(0.995, dof) x SE, with SE the standard error over the
independent repeats (or the fit's standard error for fitted parameters). The chapter's table shows
95% intervals; the tests use 99% so that a correct law fails for sampling reasons in about 1 case in
100 (seeds are fixed, so a test either always passes or always fails). Every test also checks that a
wrong prediction, one a plausible mistake would give, falls outside the same band: the test can fail.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy import stats as sps

from poisonlab.chapters.image_classification import laws as I_laws, studies as I_studies, sweeps as I
from poisonlab.chapters.image_classification import theory as T

pytestmark = [pytest.mark.book, pytest.mark.laws]

S = I.CHAPTER.sizes("quick")
K = 10


def t99(dof: int) -> float:
    return float(sps.t.ppf(0.995, dof))


def band(values) -> tuple[float, float]:
    """Mean and the 99% t half-width of the mean of independent repeats."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), t99(v.size - 1) * float(v.std(ddof=1)) / np.sqrt(v.size)


@pytest.fixture(scope="module")
def linear():
    return I.attack_sweeps("linear", S, cache=False)


@pytest.fixture(scope="module")
def seeds():
    return range(S.sweep_repeats["linear"])


def at(rows, alpha):
    return rows.loc[np.isclose(rows.alpha, alpha), "test_accuracy"].to_numpy()


# ---------------------------------------------------------------------------------------------
# Random flips


@pytest.fixture(scope="module")
def points():
    return I_laws.law_points("linear", S, cache=False).rows


def test_chance_at_the_threshold(points):
    rows = points
    mean, tol = band(at(rows, T.threshold(K)))
    law = I_laws.law_chance(rows, K)
    assert law.fitted == pytest.approx(mean) and law.predicted == pytest.approx(0.1)
    assert abs(mean - T.chance(K)) <= tol
    assert abs(mean - 2 * T.chance(K)) > tol   # wrong: twice chance


def test_accuracy_with_every_label_flipped(points):
    rows = points
    a0 = at(rows, 0.0).mean()
    mean, tol = band(at(rows, 1.0))
    upper = (1 - a0) / (K - 1)
    law = I_laws.law_all_flipped(rows, K)
    assert law.predicted == pytest.approx(upper / 2) and law.tol == pytest.approx(upper / 2)
    # a0 is itself a mean over repeats: its standard error, divided by K - 1, widens the band
    tol += t99(len(at(rows, 0.0)) - 1) * at(rows, 0.0).std(ddof=1) / np.sqrt(len(at(rows, 0.0))) / (K - 1)
    # the mean lies in [0, upper] up to the sampling band (with the full profile's 30 repeats softmax
    # regression lies slightly above upper, a capacity effect the chapter reports; the MLP within)
    assert -tol <= mean <= upper + tol
    assert abs(mean - T.chance(K)) > tol       # wrong: chance, as if the labels were merely uninformative


def test_race_law_crosses_chance_at_the_threshold(linear):
    fit = I_laws.fit_random_law(linear["random"].rows, K)
    tol = t99(fit.n - 3) * fit.se["alpha_c"]
    assert abs(fit.params["alpha_c"] - T.threshold(K)) <= tol
    assert abs(fit.params["alpha_c"] - T.threshold(5)) > tol   # wrong: the threshold of K = 5 classes, 0.8
    assert fit.r2 > 0.95


# ---------------------------------------------------------------------------------------------
# Targeted flips


def test_pair_flips_swap_at_half_the_pair(linear, seeds):
    share = I.class_share((1, 7), seeds, reduce="mean")
    fit = I_laws.fit_two_class_law(linear["pair"].rows, share)
    tol = t99(fit.n - 3) * fit.se["alpha_c"]
    assert abs(fit.params["alpha_c"] - share / 2) <= tol
    assert abs(fit.params["alpha_c"] - share) > tol            # wrong: only when the whole pair is swapped


def test_target_class_flips_cross_before_the_consistent_threshold(linear, seeds):
    # the chapter's finding: shrinkage toward the shifted label marginal moves the crossing earlier
    share = 1 - I.class_share((0,), seeds, reduce="mean")
    fit = I_laws.fit_two_class_law(linear["target-class"].rows, share)
    tol = t99(fit.n - 3) * fit.se["alpha_c"]
    assert fit.params["alpha_c"] + tol < share / 2
    rho_c = fit.params["alpha_c"] / share
    lam = (1 - 2 * rho_c) / (1 - rho_c)
    assert 0 < lam < 1
    # the shrinkage model's crossing for that lambda is the measured one (sympy solution of the chapter)
    lam_s, rho = sp.symbols("lambda rho", positive=True)
    crossing = sp.solve(sp.Eq((1 - lam_s) * (2 * rho - 1) + lam_s * rho, 0), rho)[0]
    assert float(crossing.subs(lam_s, lam)) == pytest.approx(rho_c)


# ---------------------------------------------------------------------------------------------
# Influence


@pytest.fixture(scope="module")
def influence():
    import pandas as pd

    return pd.concat([I_studies.influence_study(seed=s, sizes=S.influence_sizes, groups=S.influence_groups)
                      for s in range(S.influence_seeds)], ignore_index=True)


def test_single_label_influence_is_exact_to_first_order(influence):
    from poisonlab import stats

    small = influence[influence.m <= 4]
    fit = stats.fit_affine(small.predicted_loss, small.actual_loss)
    # the fit's sampling band, or the second-order remainder the chapter allows (0.02: the relative
    # size of a single image's leverage), whichever is larger
    tol = max(t99(fit.n - 2) * fit.se["b"], 0.02)
    assert abs(fit.params["b"] - 1.0) <= tol
    assert abs(fit.params["b"] - 0.9) > tol    # wrong: a 10% first-order error


def test_linearised_refit_predicts_the_accuracy_change(influence):
    # the accuracy moves in steps of one test point; the differences refit - prediction are mostly 0,
    # and their mean is 0 within its 99% band (at least one step, 1/359, when every difference is 0)
    diff = influence.actual_accuracy - influence.predicted_accuracy
    mean, tol = band(diff)
    tol = max(tol, 1 / 359 / len(diff))
    assert abs(mean) <= tol
    # wrong: "a handful of flips does not change decisions": the max-loss groups' accuracy changes
    biggest = influence[(influence.m == max(S.influence_sizes)) & (influence.kind == "max-loss")]
    assert abs(biggest.actual_accuracy.mean()) > tol


def test_max_loss_flips_cost_more_accuracy_and_less_loss_per_label(influence):
    m = max(S.influence_sizes)
    per = influence[influence.m == m].groupby(["seed", "kind"])[["actual_accuracy", "actual_loss"]].mean().unstack()
    # the loss: paired by seed, every seed shows the ordering; the accuracy moves in steps of one test
    # point (1/359), so its ordering is asserted on the mean over seeds
    assert (per["actual_loss"]["max-loss"] < per["actual_loss"]["random"]).all()
    assert per["actual_accuracy"]["max-loss"].mean() < per["actual_accuracy"]["random"].mean()


# ---------------------------------------------------------------------------------------------
# k-NN filter


@pytest.fixture(scope="module")
def knn():
    return I_studies.knn_filter_rates(S.knn_alphas, range(S.knn_seeds), k=S.knn_k)


def test_knn_filter_discards_clean_points_as_predicted(knn):
    a = max(S.knn_alphas)
    rows = knn[np.isclose(knn.alpha, a)]
    mean, tol = band(rows.discard_clean)
    predicted = rows.discard_clean_pred.mean()
    assert abs(mean - predicted) <= tol
    wrong = knn[np.isclose(knn.alpha, sorted(S.knn_alphas)[-2])].discard_clean_pred.mean()
    assert abs(mean - wrong) > tol             # wrong: the prediction of a smaller alpha


def test_knn_filter_catches_flipped_points_as_predicted(knn):
    a = max(S.knn_alphas)
    rows = knn[np.isclose(knn.alpha, a)]
    mean, tol = band(rows.catch_flipped)
    # the catch rate is close to 1, where the spread over seeds can be 0: one flipped point of a
    # seed's flipped set is the resolution of the measurement (as in the chapter's table)
    tol = max(tol, 1 / round(a * 1438))
    assert abs(mean - rows.catch_flipped_pred.mean()) <= tol
    assert abs(mean - (1 - a)) > tol           # wrong: caught only as often as a neighbour is unflipped


# ---------------------------------------------------------------------------------------------
# Memorisation and early stopping


@pytest.fixture(scope="module")
def memo():
    import pandas as pd

    return pd.concat([I_studies.memorisation(range(S.memo_seeds), S.memo_alphas, model=m, hidden=h,
                                     epochs=S.memo_epochs, lr=S.memo_lr[m], batch_size=S.memo_batch_size,
                                     early_stopping=True)
                      for m, h in (("linear", None), ("mlp", [S.memo_hidden]))], ignore_index=True)


def test_poisoned_heldout_accuracy_is_affine_in_the_clean_one(memo):
    # runs of one seed share its split and nested flips: the seed is the independent unit. With three
    # seeds a t band from their spread is erratic, so the tolerance is the gap's sampling SD from
    # theory (the chance correlation of flipped and correct on the held-out split), 99%: z = 2.576
    gap = I.noisy_heldout_gap(memo, K)
    mean = float(gap.gap.mean())
    tol = sps.norm.ppf(0.995) * float(np.sqrt((gap.sd ** 2).mean() / len(gap)))
    assert abs(mean) <= tol
    law = I_laws.heldout_gap_law(memo, K)
    assert law.fitted == pytest.approx(mean) and law.agrees
    # wrong: reading the poisoned held-out accuracy as if it were the clean one
    c = memo[memo.epoch >= 1]
    raw = float((c.val_accuracy - c.val_accuracy_clean).mean())
    assert abs(raw - 0.0) > tol


def test_early_stopping_on_poisoned_labels_matches_clean_labels(memo):
    es = I.early_stopping_summary(memo)
    mean, tol = band((es.es_accuracy - es.oracle_accuracy).groupby(es.seed).mean())
    assert abs(mean) <= tol + 1e-12
    # the MLP memorises flipped labels late in training, softmax regression does not
    mlp, lin = es[es.model == "mlp"], es[es.model == "linear"]
    assert mlp.final_fit.mean() > 2 * lin.final_fit.mean()
    assert (mlp.final_fit >= mlp.es_fit).all()
