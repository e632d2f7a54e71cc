"""The logistic chapter's additions for issue 12: the density at the boundary (two Gaussian classes at
+-mu), the angle's sampling spread, the unbiased loss, the workers' median and unbiased-loss defences,
the most-confident attack's name, and the helpers the chapter's tables use; with their bad input."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, special

from poisonlab import attacks, defenses
from poisonlab.chapters.logistic_regression import experiment as L_exp, studies as L_studies, sweeps as L
from poisonlab.chapters.logistic_regression import theory as T


def config(**changes):
    return L_exp.EXPERIMENT.resolve(**{"n": 400, "epochs": 5, **changes}, seed=changes.pop("seed", 3))


# ------------------------------------------------------------------ theory: density at the boundary


def test_separated_fit_at_mu_0_is_the_gaussian_fit():
    g = T.gaussian_fit(T.profile("random", 0.2))
    s = T.separated_fit(0.2, 0.0)
    assert s["a"] == pytest.approx(g["a"], rel=1e-6)
    assert (s["I"], s["J"]) == pytest.approx((g["I"], g["J"]), rel=1e-6)
    assert T.predicted_error_separated(0.2, 1600, 2, 0.0) == pytest.approx(T.predicted_error(0.2, 1600, 2), rel=1e-6)


@pytest.mark.parametrize("mu", [0.7, 2.0])
def test_separated_fit_solves_its_first_order_condition(mu):
    s = T.separated_fit(0.3, mu)
    f = lambda z: 0.5 * (math.exp(-0.5 * (z - mu) ** 2) + math.exp(-0.5 * (z + mu) ** 2)) / math.sqrt(2 * math.pi)  # noqa: E731
    foc = integrate.quad(lambda z: z * (special.expit(s["a"] * z) - (0.7 if z > 0 else 0.3)) * f(z), -15, 15,
                         points=[0.0], limit=200)[0]
    assert abs(foc) < 1e-7
    assert s["f0"] == pytest.approx(f(0.0))


def test_density_falls_faster_than_the_predicted_error():
    mus = np.array([0.0, 1.0, 2.0])
    err = T.predicted_error_separated(0.2, 1600, 2, mus)
    f0 = T.boundary_density(mus)
    assert np.all(np.diff(err) < 0) and np.all(np.diff(f0) < 0)
    # the wobble grows as the classes separate: the error falls more slowly than f(0)
    assert np.all(np.diff(np.log(err)) > np.diff(np.log(f0)))


def test_separated_density_and_second_order_term():
    sep = T.separated_density()
    assert sep["f0_check"] == 0
    mu = sep["curvature"].free_symbols.pop()
    assert sep["curvature"].subs(mu, 2) == 3
    assert T.density_second_order(0.2, 6400, 1.0) == 0.0          # mu = 1: no curvature at 0
    assert T.density_second_order(0.2, 6400, 2.5) > 0 > T.density_second_order(0.2, 6400, 0.0)


def test_angle_spread_is_the_error_constant_rescaled():
    assert T.angle_spread(0.2, 800) == pytest.approx(math.sqrt(2 * math.pi) * T.error_constant(0.2) / math.sqrt(800))


def test_unbiased_loss_checks_vanish():
    u = T.unbiased_loss()
    assert u["expectation_check"] == [0, 0] and u["linear_check"] == [0, 0]


@pytest.mark.parametrize("call, name", [
    (lambda: T.boundary_density(-1.0), "separation"), (lambda: T.separated_fit(0.6, 1.0), "alpha"),
    (lambda: T.separated_fit(0.2, -1.0), "separation"), (lambda: T.predicted_error_separated(0.2, 0, 2, 1.0), "n_train"),
    (lambda: T.angle_spread(0.2, 0), "n_train"), (lambda: T.density_second_order(0.2, -5, 1.0), "n_train")])
def test_bad_input_is_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ------------------------------------------------------------------ the experiment's new parameters


def test_separation_moves_the_classes_apart():
    ds = L_exp.make_data(config(x_dist="gaussian", separation=2.0, n=4000))
    z = (ds.X_train.double() @ ds.params["w"].double()).numpy()
    assert np.mean(np.abs(z) < 0.25) < 0.1                 # few points at the boundary (phi(2) = 0.054)
    assert np.std(z) == pytest.approx(math.sqrt(5.0), rel=0.1)
    r = L_exp.EXPERIMENT(**{k: v for k, v in config(x_dist="gaussian", separation=1.0, solver="exact", alpha=0.2,
                                                      n=2000).items() if k != "seed"}, seed=0)
    assert 0.9 < r["expected_accuracy"] < 1.0


def test_most_confident_is_the_attack_librarys_most_confident():
    c = config(flip="most-confident", reference="true", alpha=0.1)
    clean = L_exp.make_data(c)
    scores = attacks.boundary_distance(clean).abs()
    p, _ = L_exp.poison(c, clean, scores)
    q = attacks.flip_binary(clean, 0.1, how="most-confident", scores=scores, seed=L_exp.seeds_of(c["seed"])["attack"])
    assert torch.equal(p.y_train, q.y_train)
    assert "max-loss" not in L_exp.FLIPS


@pytest.mark.parametrize("defense", ["worker-median", "unbiased-loss", "sphere-filter", "slab-filter"])
def test_the_new_defences_run_and_help_or_cost_little_on_random_flips(defense):
    base = {k: v for k, v in config(x_dist="gaussian", alpha=0.2, n=1000, epochs=10, defense=defense).items()
            if k != "seed"}
    r = L_exp.EXPERIMENT(**base, seed=1)
    assert r["expected_accuracy"] > 0.85


def test_unbiased_loss_with_a_known_rate_recovers_the_clean_direction_on_average():
    # random flips on the square: the unbiased loss is an unbiased clean risk, its fit close to the truth
    rows = [L_exp.EXPERIMENT(n=2000, alpha=0.3, defense="unbiased-loss", epochs=20, seed=s) for s in range(4)]
    assert np.mean([r["expected_accuracy"] for r in rows]) > 0.9


@pytest.mark.parametrize("changes, name", [
    ({"separation": 1.0}, "separation"),                                   # uniform x
    ({"flip_rate": 0.1}, "flip_rate"),                                     # no unbiased-loss
    ({"defense": "unbiased-loss", "alpha": 0.6}, "alpha"),
    ({"defense": "unbiased-loss", "flip_rate": 0.5}, "flip_rate"),
    ({"defense": "worker-median", "solver": "exact", "x_dist": "gaussian", "alpha": 0.2}, "defense"),
    ({"defense": "worker-median", "shares": 0}, "shares"),
    ({"defense": "sphere-filter", "alpha": 1.0}, "alpha")])
def test_bad_new_parameters_are_named(changes, name):
    with pytest.raises(ValueError, match=name):
        L_exp.EXPERIMENT(**changes, seed=0)


# ------------------------------------------------------------------ studies and table helpers


def test_the_workers_median_is_less_biased_than_the_per_example_median_on_clean_data():
    b = L_studies.aggregate_bias({"x_dist": "mixture", "alpha": 0.0, "seed": 0, "epochs": 5},
                                 {"median": defenses.Median(), "workers": defenses.WorkerMedian(8),
                                  "mean": defenses.Mean()})
    assert b["mean"] == pytest.approx(0.0, abs=1e-9)
    assert b["workers"] < b["median"]


def test_attack_table_first_alpha_and_accuracy_at():
    summary = pd.DataFrame({"alpha": [0.1, 0.1, 0.2, 0.2, 0.3, 0.3], "flip": ["random", "one-sided"] * 3,
                            "expected_accuracy_mean": [0.99, 0.8, 0.9, 0.95, 0.5, 0.7],
                            "expected_accuracy_lo": [0.98, 0.7, 0.85, 0.9, 0.4, 0.6],
                            "expected_accuracy_hi": [1.0, 0.9, 0.95, 0.99, 0.6, 0.8]})
    table = L.attack_table(summary)
    assert list(table.columns) == ["α", "random", "one-sided"] and len(table) == 3
    strongest = pd.Series({0.1: "one-sided", 0.2: "random", 0.3: "random"})
    assert L.first_alpha(strongest, "random") == 0.2
    assert math.isnan(L.first_alpha(pd.Series({0.1: "random", 0.2: "one-sided"}), "random"))
    assert L.accuracy_at(summary, "one-sided", 0.2) == 0.95
    with pytest.raises(ValueError, match="flip"):
        L.accuracy_at(summary, "boundary", 0.2)


def test_share_size():
    assert L.share_size({"batch_size": 64, "shares": 8}) == 8
    assert L.share_size({"batch_size": 4, "shares": 8}) == 1


def test_the_sphere_filter_drops_most_confident_flips():
    # far flipped points sit deep inside the other class: the sphere filter catches most of them
    c = {k: v for k, v in config(x_dist="mixture", flip="most-confident", reference="true", alpha=0.2,
                                 defense="sphere-filter").items() if k != "seed"}
    r = L_exp.EXPERIMENT(**c, seed=0)
    assert r["poison_discarded"] > 0.7 and r["clean_discarded"] < 0.1
