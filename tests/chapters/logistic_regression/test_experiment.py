"""poisonlab.chapters.logistic_regression: the attack operators as the experiment uses them, the
defences, the chapter's study functions, and their bad input."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from poisonlab import attacks, stats, train
from poisonlab.errors import ParameterError
from poisonlab.chapters.logistic_regression import (
    experiment as L_exp, laws as L_laws, studies as L_studies, sweeps as L,
)


def config(**changes):
    return L_exp.EXPERIMENT.resolve(**{"n": 400, "epochs": 5, **changes}, seed=changes.pop("seed", 3))


# ------------------------------------------------------------------ attack operators


@pytest.mark.parametrize("flip, extra", [("random", {}), ("boundary", {}), ("boundary", {"margin": 0.5}),
                                         ("one-sided", {}), ("one-sided", {"side": 0, "margin": 0.6}),
                                         ("most-confident", {"reference": "true"})])
@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.2])
def test_exactly_round_alpha_n_labels_are_flipped(flip, extra, alpha):
    c = config(flip=flip, alpha=alpha, **extra)
    clean = L_exp.make_data(c)
    scores = attacks.boundary_distance(clean).abs() if flip == "most-confident" else None
    p, _ = L_exp.poison(c, clean, scores)
    changed = p.y_train != clean.y_train
    assert int(changed.sum()) == round(alpha * clean.n_train)
    assert torch.equal(changed, p.poisoned)
    assert torch.equal(p.y_test, clean.y_test) and torch.equal(p.X_train, clean.X_train)


def test_margin_and_side_select_the_flipped_points():
    c = config(flip="one-sided", side=0, margin=0.6, alpha=0.1)
    clean = L_exp.make_data(c)
    p, margin = L_exp.poison(c, clean)
    z = attacks.boundary_distance(clean)
    assert margin == 0.6
    assert bool((z[p.poisoned].abs() < 0.6).all())
    assert bool((clean.y_train[p.poisoned] == 0).all())  # only the side asked for


def test_auto_margin_flips_exactly_the_nearest_points():
    for flip, side in (("boundary", None), ("one-sided", 1)):
        c = config(flip=flip, alpha=0.15)
        clean = L_exp.make_data(c)
        p, margin = L_exp.poison(c, clean)
        z = attacks.boundary_distance(clean).abs()
        eligible = torch.ones_like(z, dtype=torch.bool) if side is None else clean.y_train == side
        k = round(0.15 * clean.n_train)
        nearest = torch.sort(torch.where(eligible, z, torch.inf)).indices[:k]
        assert set(nearest.tolist()) == set(torch.nonzero(p.poisoned).flatten().tolist())
        assert float(z[p.poisoned].max()) < margin < float(z[eligible & ~p.poisoned].min())


def test_most_confident_with_the_true_reference_flips_the_farthest_points():
    c = config(flip="most-confident", reference="true", alpha=0.1)
    clean = L_exp.make_data(c)
    p, _ = L_exp.poison(c, clean, attacks.boundary_distance(clean).abs())
    z = attacks.boundary_distance(clean).abs()
    assert float(z[p.poisoned].min()) >= float(z[~p.poisoned].max())


def test_most_confident_with_the_clean_model_flips_the_points_it_is_surest_of():
    c = config(flip="most-confident", alpha=0.1)
    clean = L_exp.make_data(c)
    ref = L_exp.fit_models([c], [(clean.X_train, clean.y_train, clean.X_test)], aggregate=False)
    p, _ = L_exp.poison(c, clean, L_exp._scores_most_confident(ref, 0, clean, c))
    margin = (2 * clean.y_train - 1) * ref.logit[0](clean.X_train)  # the clean model's signed confidence
    assert float(margin[p.poisoned].min()) >= float(margin[~p.poisoned].max())


# ------------------------------------------------------------------ defences


def _xy(K=3, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, n, 2, generator=g)
    return X, (X[..., 0] > 0).float()


@pytest.mark.parametrize("aggregate", ["median", "trimmed-mean"])
def test_robust_aggregation_equals_the_mean_when_gradients_agree(aggregate):
    # every point of every minibatch identical: every per-example gradient is the same vector
    X = torch.ones(2, 40, 2) * torch.tensor([0.5, -1.0])
    y = torch.ones(2, 40)
    kw = dict(model="linear", loss="bce", epochs=3, lr=0.5, batch_size=8, seeds=[1, 2])
    mean = train.train_batched(X, y, aggregate="mean", **kw)
    robust = train.train_batched(X, y, aggregate=aggregate, **kw)
    torch.testing.assert_close(robust.W, mean.W, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(robust.b, mean.b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("aggregate", ["median", "trimmed-mean"])
def test_robust_aggregation_stays_bounded_when_a_fraction_is_poisoned(aggregate):
    X, y = _xy(K=3, n=200)
    bad = torch.arange(200) % 10 == 0  # 10% of the points: huge inputs with flipped labels
    Xp, yp = X.clone(), y.clone()
    Xp[:, bad] *= 1e3
    yp[:, bad] = 1 - yp[:, bad]
    kw = dict(model="linear", loss="bce", epochs=5, lr=0.5, batch_size=50, seeds=[1, 2, 3],
              trim=0.2)
    clean = train.train_batched(X, y, **kw)
    mean = train.train_batched(Xp, yp, aggregate="mean", **kw)
    robust = train.train_batched(Xp, yp, aggregate=aggregate, **kw)
    size = lambda m: float(m.W.abs().max())  # noqa: E731
    # the mean follows the poison's gradients (steps of order 1e3); the robust aggregate ignores them
    assert size(mean) > 10 * size(clean)
    assert size(robust) < 3 * size(clean)


def test_filters_catch_random_flips_and_report_what_they_drop():
    c = config(defense="loss-filter", alpha=0.2, n=1000, epochs=20, x_dist="mixture")
    m = L_exp.EXPERIMENT(seed=c["seed"], **{k: v for k, v in c.items() if k != "seed"})
    assert m["poison_discarded"] > 0.9 and m["clean_discarded"] < 0.05
    k = L_exp.EXPERIMENT(seed=c["seed"], **{**{k: v for k, v in c.items() if k != "seed"}, "defense": "knn-filter"})
    assert k["poison_discarded"] > 0.8 and k["clean_discarded"] < 0.1
    # with drop = alpha both filters discard exactly round(alpha n) points
    n_train = 800
    for r in (m, k):
        dropped = r["poison_discarded"] * 160 + r["clean_discarded"] * 640
        assert dropped == pytest.approx(round(0.2 * n_train), abs=1e-6)
    none = L_exp.EXPERIMENT(seed=c["seed"], **{**{k: v for k, v in c.items() if k != "seed"}, "defense": "none"})
    assert none["poison_discarded"] == 0 and none["clean_discarded"] == 0


def test_knn_rates_match_the_filter():
    r = L_studies.knn_rates({"x_dist": "mixture", "alpha": 0.2, "defense": "knn-filter", "seed": 0}, far=0.0)
    assert 0 <= r["clean"] <= r["flipped"] <= 1
    assert r["far_fraction"] == pytest.approx(1.0)
    assert r["flipped_far"] == pytest.approx(r["flipped"])
    with pytest.raises(ValueError, match="reference"):
        L_studies.knn_rates({"flip": "most-confident", "alpha": 0.1, "defense": "knn-filter"}, far=0.5)


# ------------------------------------------------------------------ metrics and reproducibility


def test_same_seed_same_metrics_and_seeds_matter():
    a = L_exp.EXPERIMENT(seed=4, n=300, epochs=5, alpha=0.1)
    assert a == L_exp.EXPERIMENT(seed=4, n=300, epochs=5, alpha=0.1)
    assert a != L_exp.EXPERIMENT(seed=5, n=300, epochs=5, alpha=0.1)


def test_expected_accuracy_agrees_with_a_large_test_set():
    for x_dist in ("uniform", "gaussian", "mixture"):
        m = L_exp.EXPERIMENT(seed=1, n=20000, epochs=3, alpha=0.1, x_dist=x_dist)
        se = math.sqrt(m["test_accuracy"] * (1 - m["test_accuracy"]) / 4000)
        assert m["expected_accuracy"] == pytest.approx(m["test_accuracy"], abs=4 * se + 1e-3)


def test_strip_mass_metric_is_the_flipped_fraction_for_full_strips():
    m = L_exp.EXPERIMENT(seed=2, n=4000, epochs=2, alpha=0.2, flip="one-sided")
    assert m["strip_mass"] == pytest.approx(0.2, abs=0.02)
    assert L_exp.EXPERIMENT(seed=2, n=400, epochs=2, alpha=0.2)["strip_mass"] == 0.0


def test_mlp_metrics_are_finite_and_its_affine_part_is_reported():
    m = L_exp.EXPERIMENT(seed=0, n=300, epochs=5, alpha=0.1, hidden=(8,))
    assert all(math.isfinite(v) for v in m.values()) and m["weight_norm"] > 0


def test_trajectory_starts_at_theta0_and_moves():
    steps, acc, norm, angle = L_studies.trajectory({"x_dist": "mixture", "flip": "random", "alpha": 0.2, "epochs": 4,
                                            "seed": 0}, 5)
    assert steps[0] == 0 and np.all(np.diff(steps) == 5)
    assert len(steps) == len(acc) == len(norm) == len(angle)
    assert norm[-1] < norm[0]  # random flips shrink the clean model's norm
    with pytest.raises(ValueError, match="record_every"):
        L_studies.trajectory({"seed": 0}, 0)


def test_evasion_error_is_the_mass_within_eps():
    d = np.array([-0.1, 0.05, 0.2, 0.5, 1.0])
    np.testing.assert_allclose(L_studies.evasion_error(d, [0.0, 0.1, 0.6]), [0.2, 0.4, 0.8])
    with pytest.raises(ValueError, match="eps"):
        L_studies.evasion_error(d, [-1.0])
    dist = L_studies.boundary_distances({"x_dist": "gaussian", "alpha": 0.0, "n": 500, "seed": 0})
    assert dist.shape == (100,) and np.mean(dist > 0) > 0.9


# ------------------------------------------------------------------ study functions


class _Result:
    def __init__(self, rows):
        self.rows = pd.DataFrame(rows)


def test_crossings_interpolate_per_repeat():
    rows = [{"seed": s, "alpha": a, "expected_accuracy": acc}
            for s, curve in ((0, [0.9, 0.7, 0.3]), (1, [0.9, 0.8, 0.4]))
            for a, acc in zip([0.1, 0.2, 0.3], curve)]
    np.testing.assert_allclose(L_laws.crossings(_Result(rows)), [0.25, 0.275])
    with pytest.raises(ValueError, match="fall below"):
        L_laws.crossings(_Result([{"seed": 0, "alpha": a, "expected_accuracy": 0.9} for a in (0.1, 0.2)]))


def test_symmetry_law_on_a_symmetric_curve():
    rows = [{"seed": s, "alpha": a, "expected_accuracy": 1 - a + 0.01 * s * (a - 0.5)}
            for s in range(4) for a in (0.0, 0.25, 0.5, 0.75, 1.0)]
    law = L_laws.symmetry_law(_Result(rows))
    assert law.fitted == pytest.approx(1.0) and law.agrees


def test_jackknife_of_a_mean_is_the_t_interval():
    rows = pd.DataFrame({"seed": np.arange(6), "x": [1.0, 2.0, 4.0, 3.0, 5.0, 2.5]})
    est = L.jackknife(rows, lambda r: r["x"].mean())
    np.testing.assert_allclose(est, stats.mean_ci(rows["x"]))
    with pytest.raises(ValueError, match="repeats"):
        L.jackknife(rows.iloc[:1], lambda r: r["x"].mean())


def test_specs_cover_the_sweeps_and_resolve():
    for name in L.CHAPTER.specs("quick"):
        sp = L.CHAPTER.spec(name, "quick")
        assert sp.repeats >= 2 and sp.runs == sp.repeats * int(np.prod([len(v) for v in sp.grid.values()]))
        L_exp.EXPERIMENT.resolve(**sp.fixed, **{k: v[0] for k, v in sp.grid.items()})
    assert len(L.CHAPTER.sweeps_table("quick")) == len(L.CHAPTER.specs("quick"))
    with pytest.raises(ValueError, match="name"):
        L.CHAPTER.spec("no-such-sweep")


@pytest.mark.parametrize("changes, name", [
    ({"margin": 0.3}, "margin"), ({"side": 1}, "side"), ({"near": 0.2}, "near"), ({"drop": 0.1}, "drop"),
    ({"reference": "true"}, "reference"), ({"l2": 0.1}, "l2"), ({"knn_threshold": 0.5}, "knn_threshold"),
    ({"solver": "exact", "hidden": (4,)}, "hidden"), ({"solver": "exact", "defense": "median"}, "defense"),
    ({"solver": "exact", "continue_from_clean": True}, "continue_from_clean"),
    ({"defense": "knn-filter", "knn_k": 1000}, "knn_k"), ({"trim": 0.5}, "trim"), ({"n": 4}, "n"),
])
def test_bad_configurations_name_the_parameter(changes, name):
    with pytest.raises(ParameterError) as err:
        L_exp.EXPERIMENT.resolve(**changes)
    assert err.value.name == name
