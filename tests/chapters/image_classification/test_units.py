"""Unit tests of the image chapter's package code: the loader, the theory module, the experiment's functions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from poisonlab import attacks, data, defenses
from poisonlab.chapters.image_classification import (
    experiment as img_exp, studies as img_studies, sweeps as img,
)
from poisonlab.chapters.image_classification import pipeline as img_pipe, theory as T


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits():
    return data.train_test("digits", seed=0)


# ---------------------------------------------------------------------------------------------
# The loader


def test_digits_load_offline_with_shapes_labels_and_classes(digits, monkeypatch):
    # no network: any socket use would raise
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the default dataset must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    ds = data.train_test("digits", seed=3)
    assert ds.X_train.shape == (1438, 1, 8, 8) and ds.X_test.shape == (359, 1, 8, 8)
    assert ds.X_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert float(ds.X_train.min()) == 0.0 and float(ds.X_train.max()) == 1.0
    assert ds.classes == [str(c) for c in range(10)] and ds.mask is None
    labels = torch.cat([ds.y_train, ds.y_test])
    assert labels.min() == 0 and labels.max() == 9
    # every image appears once: the split is a partition of the 1,797 images, balanced classes
    assert torch.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # pixel values are counts of ink pixels in 4x4 blocks divided by 16: multiples of 1/16
    assert torch.equal(ds.X_train * 16, (ds.X_train * 16).round())


def test_split_depends_on_the_seed_only(digits):
    again = data.train_test("digits", seed=0)
    other = data.train_test("digits", seed=1)
    assert torch.equal(again.X_train, digits.X_train) and torch.equal(again.y_test, digits.y_test)
    assert not torch.equal(other.y_train, digits.y_train)


def test_subsample_keeps_n_train_points(digits):
    ds = data.train_test("digits", seed=0, n_train=100)
    assert ds.n_train == 100 and ds.n_test == digits.n_test
    # the subset is made of training images of the full split
    rows = {tuple(x.flatten().tolist()) for x in digits.X_train}
    assert all(tuple(x.flatten().tolist()) in rows for x in ds.X_train)
    with pytest.raises(ValueError, match="n_train"):
        data.train_test("digits", seed=0, n_train=5000)


@pytest.mark.parametrize("name", ["svhn", "", None])
def test_unknown_dataset_names_the_parameter(name):
    with pytest.raises(ValueError, match="dataset"):
        data.train_test(name, seed=0)


# ---------------------------------------------------------------------------------------------
# Theory: derivations and predictions


def test_random_flip_posterior_threshold_and_chance():
    d = T.random_flip_posterior()
    K = d["K"]
    assert sp.simplify(d["threshold"] - (K - 1) / K) == 0
    assert sp.simplify(d["at_threshold"] - 1 / K) == 0
    assert sp.simplify(d["noisy"] - (d["slope"] * d["p"] + d["intercept"])) == 0
    assert T.threshold(10) == pytest.approx(0.9) and T.chance(10) == pytest.approx(0.1)
    # a posterior's arg-max survives below the threshold and is reversed above it
    p = np.array([0.5, 0.3, 0.2])
    assert np.argmax(T.noisy_posterior(p, 0.6, 3)) == 0 and np.argmin(T.noisy_posterior(p, 0.7, 3)) == 0
    assert T.noisy_posterior(p, 0.6, 3).sum() == pytest.approx(1.0)


def test_noisy_accuracy_against_simulation():
    # a classifier of accuracy a = 0.8 on 200,000 points, labels flipped at random with alpha = 0.3
    g = np.random.default_rng(0)
    n, K, a, alpha = 200_000, 10, 0.8, 0.3
    y = g.integers(0, K, n)
    pred = np.where(g.random(n) < a, y, (y + g.integers(1, K, n)) % K)
    flip = g.random(n) < alpha
    noisy = np.where(flip, (y + g.integers(1, K, n)) % K, y)
    measured = (pred == noisy).mean()
    # binomial standard error sqrt(p (1-p)/n) ~ 0.0011; 4 SE
    assert measured == pytest.approx(T.noisy_accuracy(a, alpha, K), abs=0.0045)
    # the same slope s(alpha) as the noisy posterior's
    assert sp.simplify(T.noisy_agreement()["slope"] - T.random_flip_posterior()["slope"]) == 0


def test_target_and_pair_thresholds():
    assert sp.simplify(T.target_class_posterior()["threshold"] - (1 - sp.Symbol("pi_t", positive=True)) / 2) == 0
    assert T.target_threshold(0.1) == pytest.approx(0.45) and T.pair_threshold(0.1, 0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="pi_t"):
        T.target_threshold(1.0)
    with pytest.raises(ValueError, match="pi_a"):
        T.pair_threshold(-0.1, 0.2)


def test_race_win_symmetry_limits_and_simulation():
    assert T.race_win(0.0, 10) == pytest.approx(0.1, abs=1e-10)
    assert T.race_win(0.0, 2) == pytest.approx(0.5, abs=1e-10)
    assert T.race_win(50.0, 10) == pytest.approx(1.0) and T.race_win(-50.0, 10) == pytest.approx(0.0, abs=1e-12)
    # K = 2: P(mu + u1 > u2) = Phi(mu / sqrt 2)
    assert T.race_win(1.3, 2) == pytest.approx(float(0.5 * math.erfc(-1.3 / 2)), abs=1e-8)
    g = np.random.default_rng(1)
    u = g.standard_normal((400_000, 10))
    mu = 1.2
    measured = ((u[:, 0] + mu)[:, None] > u[:, 1:]).all(1).mean()
    assert measured == pytest.approx(T.race_win(mu, 10), abs=0.003)  # 4 binomial SE
    with pytest.raises(ValueError, match="mu"):
        T.race_win(float("nan"), 10)


def test_random_flip_law_fixed_points():
    a0, kappa = 0.96, 1.5
    law = lambda a: T.random_flip_law(a, a0, kappa, 0.9, 10)  # noqa: E731
    assert law(0.0) == pytest.approx(a0)
    assert law(0.9) == pytest.approx(0.1, abs=1e-9)
    assert law(1.0) == pytest.approx((1 - a0) / 9, abs=1e-9)
    # a free crossing moves the point of chance
    assert T.random_flip_law(0.8, a0, kappa, 0.8, 10) == pytest.approx(0.1, abs=1e-9)
    with pytest.raises(ValueError, match="alpha"):
        T.random_flip_law(1.2, a0, kappa, 0.9, 10)


def test_two_class_law_halves_at_alpha_c():
    share, a0 = 0.9, 0.95
    assert T.two_class_law(0.0, a0, 2.0, 0.45, share) == pytest.approx(a0, abs=1e-6)
    assert T.two_class_law(0.45, a0, 2.0, 0.45, share) == pytest.approx(a0 * (1 - share / 2))
    assert T.two_class_law(0.9, a0, 2.0, 0.45, share) == pytest.approx(a0 * (1 - share), abs=1e-6)


def test_knn_prediction_matches_a_simulation(digits):
    # 40 random flips of the labels, then the filter itself, against the binomial prediction
    K, k, alpha = 10, 10, 0.3
    nbrs = T.neighbours(digits.X_train, k)
    pred = T.knn_filter_prediction(digits.y_train, nbrs, alpha, K)
    discard, catch = [], []
    for s in range(40):
        p = attacks.flip_multiclass(digits, alpha, how="random", seed=s)
        # the inputs do not change with the flips, so neither do the neighbours: the filter's own answer
        # (checked on the first draw) is the neighbours' vote, without 40 distance computations
        keep = (p.y_train[nbrs] != p.y_train[:, None]).double().mean(1) <= 0.5
        if s == 0:
            assert torch.equal(keep, defenses.knn_filter(p.X_train, p.y_train, k, 0.5))
        discard.append(float((~keep & ~p.mask).sum() / (~p.mask).sum()))
        catch.append(float((~keep & p.mask).sum() / p.mask.sum()))
    se = np.std(discard, ddof=1) / np.sqrt(len(discard))
    assert np.mean(discard) == pytest.approx(pred["discard_clean"], abs=4 * se + 0.003)
    assert np.mean(catch) == pytest.approx(pred["catch_flipped"], abs=0.01)
    # at alpha = 0 the prediction is the exact fraction of points outvoted by their neighbours
    exact = float((defenses.knn_disagreement(digits.X_train, digits.y_train, k) > 0.5).double().mean())
    assert T.knn_filter_prediction(digits.y_train, nbrs, 0.0, K)["discard_clean"] == pytest.approx(exact, abs=2e-3)
    with pytest.raises(ValueError, match="nbrs"):
        T.knn_filter_prediction(digits.y_train, nbrs[:10], alpha, K)


def test_softmax_hessian_against_autograd():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 3, generator=g, dtype=torch.float64)
    W, b = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (30,), generator=g)

    def objective(theta):
        th = theta.reshape(4, 4)
        logits = torch.cat([X, torch.ones(30, 1, dtype=X.dtype)], 1) @ th.T
        return torch.nn.functional.cross_entropy(logits, y) + 0.05 * th.pow(2).sum()

    theta = torch.cat([W, b[:, None]], 1).reshape(-1)
    H = torch.autograd.functional.hessian(objective, theta)
    assert torch.allclose(T.softmax_hessian(W, b, X, 0.1), H, atol=1e-12)


def test_fit_softmax_against_scikit_learn(digits):
    from sklearn.linear_model import LogisticRegression

    n = 300
    X = digits.X_train[:n].reshape(n, -1).double()
    y = digits.y_train[:n]
    l2 = 1e-2
    theta = img_studies.fit_softmax(X, y, 10, l2)
    # scikit-learn minimises C sum CE + |W|^2/2; with the intercept as a penalised feature and
    # C = 1/(n l2) that is n/l2... times our objective: the same minimiser
    Xa = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], 1).numpy()
    ref = LogisticRegression(C=1 / (n * l2), fit_intercept=False, tol=1e-12, max_iter=10_000).fit(Xa, y.numpy())
    assert np.allclose(theta.numpy(), ref.coef_, atol=1e-4)


def test_influence_is_the_derivative_of_the_refit(digits):
    # a single flip: first-order prediction of the test-loss change against the exact refit
    n = 400
    X, y = digits.X_train[:n].reshape(n, -1).double(), digits.y_train[:n]
    Xt, yt = digits.X_test.reshape(len(digits.X_test), -1).double(), digits.y_test
    l2 = 1e-2
    theta = img_studies.fit_softmax(X, y, 10, l2)
    infl = T.flip_influence(theta[:, :-1], theta[:, -1], X, y, Xt, yt, l2)
    assert torch.all(infl.gather(1, y[:, None]) == 0)
    i, j = 17, int((y[17] + 3) % 10)
    y2 = y.clone()
    y2[i] = j
    refit = img_studies.fit_softmax(X, y2, 10, l2, theta0=theta)
    actual = float(img_studies._test_loss(refit, Xt, yt) - img_studies._test_loss(theta, Xt, yt))
    # second-order terms: (1/n)^2 relative to the first-order (1/n) term, a few per cent here
    assert actual == pytest.approx(float(infl[i, j]), rel=0.05, abs=1e-6)


def test_influence_study_rows(digits):
    df = img_studies.influence_study(seed=0, sizes=(1, 4), groups=3)
    assert list(df.kind) == ["least-confident", "most-confident", "random", "random", "random"] * 2
    assert set(df.m) == {1, 4}
    # single flips: the linearised parameters give the refit's loss change to a few per cent
    single = df[df.m == 1]
    assert np.allclose(single.predicted_loss, single.actual_loss, rtol=0.1, atol=2e-5)
    with pytest.raises(ValueError, match="sizes"):
        img_studies.influence_study(seed=0, sizes=(0,))


# ---------------------------------------------------------------------------------------------
# The experiment's operators and functions


def config(**kw):
    return img_exp.EXPERIMENT.resolve(seed=kw.pop("seed", 0), **kw)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.37])
def test_random_flips_exact_count_and_other_class(alpha):
    c = config(alpha=alpha, flip="random")
    clean = img_exp.make_data(c)
    p = img_exp.poison(c, clean)
    k = round(alpha * clean.n_train)
    assert int(p.poisoned.sum()) == k
    assert (p.y_train[p.poisoned] != clean.y_train[p.poisoned]).all()
    assert (p.y_train[~p.poisoned] == clean.y_train[~p.poisoned]).all()
    assert torch.equal(p.X_test, clean.X_test) and torch.equal(p.y_test, clean.y_test)


def test_target_class_and_pair_semantics():
    c = config(alpha=0.3, flip="target-class", target_class=4)
    clean = img_exp.make_data(c)
    p = img_exp.poison(c, clean)
    assert int(p.poisoned.sum()) == round(0.3 * clean.n_train)
    assert (p.y_train[p.poisoned] == 4).all() and (clean.y_train[p.poisoned] != 4).all()
    c = config(alpha=0.1, flip="pair", pair=(3, 8))
    p = img_exp.poison(c, clean)
    old, new = clean.y_train[p.poisoned], p.y_train[p.poisoned]
    assert int(p.poisoned.sum()) == round(0.1 * clean.n_train)
    assert ((old == 3) & (new == 8) | (old == 8) & (new == 3)).all()


@pytest.mark.parametrize("flip", ["least-confident", "most-confident"])
def test_confidence_flips_take_the_top_k_by_loss_to_the_runner_up(flip):
    c = config(alpha=0.05, flip=flip)
    clean = img_exp.make_data(c)
    probs = img_pipe._reference_probs([c], [clean])[0]
    p = img_exp.poison(c, clean, probs)
    loss = -torch.log(probs[torch.arange(clean.n_train), clean.y_train])
    k = round(0.05 * clean.n_train)
    top = set(torch.topk(loss if flip == "least-confident" else -loss, k).indices.tolist())
    assert set(p.poisoned.nonzero().flatten().tolist()) == top
    wrong = probs.clone()
    wrong[torch.arange(clean.n_train), clean.y_train] = -1
    assert torch.equal(p.y_train[p.poisoned], wrong.argmax(1)[p.poisoned])


def test_defence_keep_masks():
    configs = [config(alpha=0.2, defense=d, seed=s) for d in ("loss-filter",) for s in (0, 1)]
    cleans = [img_exp.make_data(c) for c in configs]
    poisoned = [img_exp.poison(c, ds) for c, ds in zip(configs, cleans)]
    for keep, p in zip(img_pipe._keeps(configs, poisoned), poisoned):
        assert int((~keep).sum()) == round(0.2 * p.n_train)   # the budget alpha
        assert float((~keep & p.mask).sum() / p.mask.sum()) > 0.6   # most random flips have large loss
    knn = [config(alpha=0.2, defense="knn-filter", seed=0, drop=0.1)]
    (keep,) = img_pipe._keeps(knn, poisoned[:1])
    assert int((~keep).sum()) == round(0.1 * poisoned[0].n_train)


def test_fit_is_deterministic_and_metrics_are_consistent():
    configs = [config(alpha=a, flip=f, epochs=3) for a in (0.0, 0.15) for f in ("random", "pair")]
    first, second = img_exp.fit(configs), img_exp.fit(configs)
    assert first == second
    for c, m in zip(configs, first):
        assert set(m) == set(img_exp.METRICS)
        assert m["poisoned_fraction"] == pytest.approx(round(c["alpha"] * 1438) / 1438)
        assert m["flipped_train_fit"] == 0.0 if c["alpha"] == 0 else 0.0 <= m["flipped_train_fit"] <= 1.0
        assert m["stop_epoch"] == 3


def test_early_stopping_and_memorisation_curves():
    curves = img_studies.memorisation([0], model="linear", alpha=0.3, epochs=4, early_stopping=True)
    assert list(curves.epoch) == list(range(5))
    assert (curves.val_flipped.between(0.2, 0.4)).all()
    es = img.early_stopping_summary(curves)
    assert len(es) == 1 and 1 <= es.es_epoch.iloc[0] <= 4
    (m,) = img_exp.fit([config(alpha=0.3, epochs=4, early_stopping=True)])
    # the experiment keeps the same epoch as the summary of the same run
    assert m["stop_epoch"] == es.es_epoch.iloc[0]
    assert m["test_accuracy"] == pytest.approx(es.es_accuracy.iloc[0], abs=1e-6)


def test_pair_alphas_are_feasible_for_every_seed():
    alphas = img.pair_alphas([0.0, 0.5, 0.99], range(3))
    assert alphas[0] == 0.0 and alphas[1] < alphas[2] < 0.25
    for s in range(3):
        ds = img_exp.make_data(config(seed=s))
        eligible = int(((ds.y_train == 1) | (ds.y_train == 7)).sum())
        assert round(alphas[2] * ds.n_train) <= eligible


def test_summarize_gives_t_intervals():
    import pandas as pd

    rows = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 4, "v": [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]})
    s = img.summarize(rows, "g", "v").set_index("g")
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2  # t(3) quantile
    assert s.loc["a", "v_mean"] == 2.5 and s.loc["a", "v_hi"] - 2.5 == pytest.approx(half)
    assert s.loc["b", "v_lo"] == s.loc["b", "v_hi"] == 0.0


def test_heldout_gap_sd_against_simulation():
    # a fixed classifier (correct on 90% of 288 held-out points), the held-out labels flipped at random
    g = np.random.default_rng(2)
    n, K, alpha = 288, 10, 0.3
    correct = np.zeros(n, dtype=bool)
    correct[: int(0.9 * n)] = True
    gaps = []
    for _ in range(4000):
        flipped = np.zeros(n, dtype=bool)
        flipped[g.choice(n, round(alpha * n), replace=False)] = True
        # a wrong prediction agrees with a flipped label with probability 1/(K-1)
        agree = np.where(flipped, ~correct & (g.random(n) < 1 / (K - 1)), correct)
        a_v = flipped.mean()
        gaps.append(agree.mean() - (a_v / (K - 1) + (1 - a_v * K / (K - 1)) * correct.mean()))
    # the SD of 4000 draws is known to about 1.1%; the formula ignores the finite-population factor
    assert np.mean(gaps) == pytest.approx(0.0, abs=3 * np.std(gaps) / np.sqrt(4000))
    assert np.std(gaps) == pytest.approx(T.heldout_gap_sd(0.9, alpha, K, n), rel=0.05)
