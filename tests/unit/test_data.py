"""Data generators: shapes, the generating law, seeds, splits, mixtures and bad input."""
import math

import pytest
import torch

from poisonlab import data


def test_linear_shapes_and_split_sizes():
    ds = data.make_linear(100, d=3, m=2, noise_std=0.5, seed=0)
    assert ds.X_train.shape == (80, 3) and ds.y_train.shape == (80, 2)
    assert ds.X_test.shape == (20, 3) and ds.y_test.shape == (20, 2)
    assert ds.params["W"].shape == (2, 3) and ds.params["b"].shape == (2,)
    assert ds.mask is None and ds.X_train.dtype == torch.float32
    # y is 2-D even for m = 1; n_test = round(0.2 n) with Python's round
    assert data.make_linear(10, seed=0).y_train.shape == (8, 1)
    for n in (3, 7, 13, 37, 101):
        assert data.make_linear(n, seed=1).n_test == round(0.2 * n)


def test_linear_follows_its_law_exactly_without_noise():
    ds = data.make_linear(200, d=4, m=3, noise_std=0.0, seed=3)
    W, b = ds.params["W"], ds.params["b"]
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        torch.testing.assert_close(y, X @ W.T + b)


def test_linear_noise_has_the_requested_std():
    # residual variance s^2 has relative standard error sqrt(2 / N); N = 16000 * 2 -> 0.008; allow 5 SE
    sigma = 0.7
    ds = data.make_linear(20000, d=2, m=2, noise_std=sigma, seed=5)
    eps = ds.y_train - ds.X_train @ ds.params["W"].T - ds.params["b"]
    N = eps.numel()
    assert abs(float(eps.var()) / sigma**2 - 1) < 5 * math.sqrt(2 / N)
    assert abs(float(eps.mean())) < 5 * sigma / math.sqrt(N)
    x_var = ds.X_train.var(0)
    assert (x_var - 1).abs().max() < 5 * math.sqrt(2 / ds.n_train)


def test_linear_seeds():
    a, b = data.make_linear(50, 2, seed=1), data.make_linear(50, 2, seed=1)
    c = data.make_linear(50, 2, seed=2)
    for name in ("X_train", "y_train", "X_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name))
        assert not torch.equal(getattr(a, name), getattr(c, name))
    assert torch.equal(a.params["W"], b.params["W"]) and not torch.equal(a.params["W"], c.params["W"])


def test_linear_given_parameters_keep_the_same_x_and_noise():
    # W, b are drawn even when given, so X and eps are common random numbers across W, b, sigma
    base = data.make_linear(60, 2, 1, noise_std=1.0, seed=4)
    given = data.make_linear(60, 2, 1, noise_std=1.0, seed=4, W=[[2.0, -1.0]], b=[0.5])
    assert torch.equal(given.params["W"], torch.tensor([[2.0, -1.0]]))
    assert torch.equal(base.X_train, given.X_train)
    eps_base = base.y_train - base.X_train @ base.params["W"].T - base.params["b"]
    eps_given = given.y_train - given.X_train @ given.params["W"].T - given.params["b"]
    torch.testing.assert_close(eps_base, eps_given)


def test_no_global_rng():
    state = torch.random.get_rng_state()
    data.make_linear(30, 2, seed=0)
    data.make_binary(30, 2, x_dist="mixture", seed=0)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0), "n"), (dict(n=2), "n"), (dict(n=-5), "n"), (dict(n=10.5), "n"), (dict(d=0), "d"),
    (dict(m=0), "m"), (dict(noise_std=-1.0), "noise_std"), (dict(noise_std=float("nan")), "noise_std"),
    (dict(W=[[1.0, 2.0]]), "W"), (dict(b=[1.0, 2.0]), "b"), (dict(seed=1.5), "seed"),
])
def test_linear_bad_input(kwargs, name):
    args = dict(n=20, d=1, m=1, noise_std=1.0, seed=0) | kwargs
    with pytest.raises(ValueError, match=name):
        data.make_linear(**args)


@pytest.mark.parametrize("x_dist", ["uniform", "gaussian", "mixture"])
def test_binary_labels_follow_the_true_boundary(x_dist):
    ds = data.make_binary(500, d=3, x_dist=x_dist, bias=0.2, seed=7)
    w, b = ds.params["w"], ds.params["b"]
    assert ds.y_train.shape == (400,) and ds.X_train.shape == (400, 3)
    assert abs(float(w.norm()) - 1) < 1e-6 and b == 0.2
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        expected = ((X.double() @ w.double() + b) > 0).float()
        assert torch.equal(y, expected)
        assert set(y.unique().tolist()) == {0.0, 1.0}
    if x_dist == "uniform":
        assert ds.X_train.abs().max() <= 1
    if x_dist == "mixture":
        assert ds.params["component_train"].shape == (400,)


def test_binary_given_w_is_normalised_and_seeds_matter():
    ds = data.make_binary(100, 2, w=[3.0, 4.0], seed=0)
    torch.testing.assert_close(ds.params["w"], torch.tensor([0.6, 0.8]))
    a, b = data.make_binary(100, 2, seed=1), data.make_binary(100, 2, seed=1)
    c = data.make_binary(100, 2, seed=2)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.X_train, c.X_train)


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0), "n"), (dict(d=0), "d"), (dict(x_dist="cauchy"), "x_dist"), (dict(bias=float("inf")), "bias"),
    (dict(w=[0.0, 0.0]), "w"), (dict(w=[1.0, 0.0, 0.0]), "w"),
    (dict(x_dist="gaussian", mixture=data.default_mixture(2)), "mixture"),
    (dict(x_dist="mixture", mixture=data.default_mixture(3)), "mixture"),
])
def test_binary_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        data.make_binary(**(dict(n=50, d=2, seed=0) | kwargs))


def test_mixture_validation():
    I = torch.eye(2)
    ok = data.gaussian_mixture([0.5, 0.5], [[0, 0], [1, 1]], torch.stack([I, I]))
    assert ok.k == 2 and ok.d == 2
    with pytest.raises(ValueError, match="weights"):
        data.gaussian_mixture([0.5, 0.6], [[0, 0], [1, 1]], torch.stack([I, I]))
    with pytest.raises(ValueError, match="weights"):
        data.gaussian_mixture([1.5, -0.5], [[0, 0], [1, 1]], torch.stack([I, I]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        data.gaussian_mixture([0.5, 0.5], [[0, 0], [1, 1]], torch.stack([I, -I]))
    with pytest.raises(ValueError, match="symmetric"):
        data.gaussian_mixture([1.0], [[0, 0]], [[[1.0, 0.5], [0.0, 1.0]]])
    with pytest.raises(ValueError, match="means"):
        data.gaussian_mixture([0.5, 0.5], [[0, 0]], torch.stack([I, I]))
    with pytest.raises(ValueError, match="covs"):
        data.gaussian_mixture([0.5, 0.5], [[0, 0], [1, 1]], torch.stack([torch.eye(3)] * 2))


def test_sample_mixture_moments():
    # a singular covariance is allowed: that component lies on the line x2 = x1
    S0 = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    S1 = torch.tensor([[0.25, 0.0], [0.0, 0.04]])
    mix = data.gaussian_mixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], torch.stack([S0, S1]))
    N = 20000
    X, comp = data.sample_mixture(mix, N, generator=torch.Generator().manual_seed(0))
    # component frequency: binomial SE sqrt(p (1 - p) / N) = 0.0032; allow 5 SE
    assert abs(float((comp == 0).double().mean()) - 0.3) < 5 * math.sqrt(0.21 / N)
    X0, X1 = X[comp == 0].double(), X[comp == 1].double()
    torch.testing.assert_close(X0[:, 1] - X0[:, 0], torch.full((len(X0),), 2.0, dtype=torch.float64), atol=1e-5, rtol=0)
    se = 5 * torch.sqrt(torch.diagonal(S1).double() / len(X1))
    assert ((X1.mean(0) - torch.tensor([2.0, 1.0], dtype=torch.float64)).abs() < se).all()
    assert (X1.var(0) / torch.diagonal(S1).double() - 1).abs().max() < 5 * math.sqrt(2 / len(X1))


def test_cluster_at_distance():
    w, b = torch.tensor([3.0, 4.0]), 1.0
    for dist in (-0.5, 0.0, 0.15, 2.0):
        mean, cov = data.cluster_at_distance(w, b, dist, along=1.7, spread=0.2)
        assert abs(float((w.double() @ mean + b) / w.norm()) - dist) < 1e-12
        torch.testing.assert_close(cov, 0.04 * torch.eye(2, dtype=torch.float64))
    # `along` moves the mean parallel to the boundary only
    m0, _ = data.cluster_at_distance(w, b, 1.0)
    m1, _ = data.cluster_at_distance(w, b, 1.0, along=[1.0, 1.0])
    assert abs(float(w.double() @ (m1 - m0))) < 1e-12 and float((m1 - m0).norm()) > 0
    w3 = torch.tensor([0.0, 0.0, 2.0])
    m3, _ = data.cluster_at_distance(w3, 0.0, -1.0, along=2.0, d=3)
    assert abs(float(m3[2]) + 1) < 1e-12 and abs(float(m3[:2].norm()) - 2) < 1e-12
    with pytest.raises(ValueError, match="w"):
        data.cluster_at_distance([0.0, 0.0], 0.0, 1.0)
    with pytest.raises(ValueError, match="spread"):
        data.cluster_at_distance(w, b, 1.0, spread=-1)
    with pytest.raises(ValueError, match="d"):
        data.cluster_at_distance(w, b, 1.0, d=3)


def test_default_mixture_has_a_cluster_near_the_boundary():
    for d in (1, 2, 5):
        mix = data.default_mixture(d, near=0.15)
        dist = mix.means[:, 0]  # the boundary is x1 = 0 by default
        assert mix.k >= 3 and float(dist.abs().min()) == pytest.approx(0.15)
        assert abs(float(mix.weights.sum()) - 1) < 1e-12
    with pytest.raises(ValueError, match="near"):
        data.default_mixture(2, near=0)


def test_split_and_stack():
    X, y = torch.arange(50.0)[:, None], torch.arange(50)
    Xtr, ytr, Xte, yte = data.split(X, y, 0.3, generator=torch.Generator().manual_seed(0))
    assert len(Xte) == 15 and len(Xtr) == 35
    assert sorted(torch.cat([ytr, yte]).tolist()) == list(range(50))
    assert torch.equal(Xtr[:, 0].long(), ytr)
    with pytest.raises(ValueError, match="test_fraction"):
        data.split(X, y, 1.2, generator=torch.Generator())
    dss = [data.make_linear(40, 3, 2, seed=s) for s in range(4)]
    Xs, ys = data.stack(dss)
    assert Xs.shape == (4, 32, 3) and ys.shape == (4, 32, 2)
    assert torch.equal(Xs[2], dss[2].X_train)
    with pytest.raises(ValueError, match="same shapes"):
        data.stack([dss[0], data.make_linear(50, 3, 2, seed=0)])
    with pytest.raises(ValueError, match="datasets"):
        data.stack([])


def test_save_npz(tmp_path):
    import numpy as np
    from poisonlab import attacks
    ds = attacks.gaussian_labels(data.make_linear(30, 2, 1, seed=0), 0.2, seed=1)
    ds.save(tmp_path / "d.npz")
    z = np.load(tmp_path / "d.npz")
    assert np.array_equal(z["y_train"], ds.y_train.numpy()) and np.array_equal(z["mask"], ds.mask.numpy())
    assert np.array_equal(z["param_W"], ds.params["W"].numpy()) and float(z["param_noise_std"]) == 1.0


def test_save_named_params_config_and_extra_arrays(tmp_path):
    import json

    import numpy as np
    from poisonlab import attacks
    ds = attacks.gaussian_labels(data.make_linear(30, 2, 1, seed=0), 0.2, seed=1)
    path = tmp_path / "run.data"  # no .npz suffix: the name is kept as given
    ds.save(path, params=("W", "b"), config={"hidden": (4, 2), "alpha": 0.2}, margin=0.5, y_clean=ds.y_train)
    z = np.load(path)
    assert set(z.files) == {"X_train", "y_train", "X_test", "y_test", "mask", "W", "b", "margin", "y_clean",
                            "config"}
    assert np.array_equal(z["W"], ds.params["W"].numpy()) and float(z["margin"]) == 0.5
    assert json.loads(str(z["config"])) == {"hidden": [4, 2], "alpha": 0.2}


def test_train_size_is_the_training_part_of_split():
    for n in (5, 10, 99, 1797):
        assert data.train_size(n) == data.make_linear(n, seed=0).n_train == n - round(0.2 * n)
    assert data.train_size(10, 0.5) == 5
