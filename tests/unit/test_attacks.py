"""Poisoning operators: exact counts, masks, untouched test sets, selection rules, seeds, bad input."""
import math

import pytest
import torch

from poisonlab import attacks, data


@pytest.fixture(scope="module")
def linear():
    return data.make_linear(100, d=3, m=2, seed=0)


@pytest.fixture(scope="module")
def binary():
    return data.make_binary(500, d=2, seed=1)


@pytest.fixture(scope="module")
def multi():
    """Five classes from the first coordinate of a Gaussian sample."""
    ds = data.make_binary(400, d=2, x_dist="gaussian", seed=2)
    label = lambda X: torch.bucketize(X[:, 0].contiguous(), torch.tensor([-1.0, -0.3, 0.3, 1.0]))
    return ds.replace(y_train=label(ds.X_train), y_test=label(ds.X_test), classes=list("abcde"), params={})


def untouched(clean, poisoned):
    """The test set and the training inputs are the clean ones, bit for bit."""
    return (torch.equal(clean.X_test, poisoned.X_test) and torch.equal(clean.y_test, poisoned.y_test)
            and torch.equal(clean.X_train, poisoned.X_train))


def check_mask(clean, poisoned, alpha):
    n = clean.n_train
    mask = poisoned.mask
    assert mask.dtype == torch.bool and mask.shape == (n,)
    assert int(mask.sum()) == round(alpha * n)
    assert untouched(clean, poisoned)
    assert torch.equal(poisoned.y_train[~mask], clean.y_train[~mask])  # exactly the clean y off the mask
    return mask


@pytest.mark.parametrize("alpha", [0.0, 0.0125, 0.03125, 0.33, 1.0])  # 0.03125 * 80 = 2.5 -> round -> 2
def test_gaussian_labels_counts_and_mask(linear, alpha):
    p = attacks.gaussian_labels(linear, alpha, eta_mean=5.0, eta_std=1.0, seed=3)
    mask = check_mask(linear, p, alpha)
    assert (p.y_train[mask] != linear.y_train[mask]).all()
    assert linear.mask is None  # pure: the input is unchanged


def test_gaussian_labels_noise_law():
    # eta on k = 8000 points: SE of the mean = eta_std / sqrt(k); of the variance ratio sqrt(2 / k); 5 SE
    ds = data.make_linear(20000, d=1, m=2, seed=0)
    cov = torch.tensor([[1.0, 0.6], [0.6, 2.0]])
    p = attacks.gaussian_labels(ds, 0.5, eta_mean=[3.0, -1.0], seed=1, eta_cov=cov)
    eta = (p.y_train - ds.y_train)[p.mask].double()
    k = eta.shape[0]
    assert ((eta.mean(0) - torch.tensor([3.0, -1.0], dtype=torch.float64)).abs()
            < 5 * torch.sqrt(torch.diagonal(cov).double() / k)).all()
    C = torch.cov(eta.T)
    assert ((C - cov.double()).abs() < 5 * math.sqrt(2 / k) * 2.0).all()
    p2 = attacks.gaussian_labels(ds, 0.5, eta_mean=2.0, eta_std=0.5, seed=1)
    eta2 = (p2.y_train - ds.y_train)[p2.mask].double()
    assert abs(float(eta2.mean()) - 2.0) < 5 * 0.5 / math.sqrt(eta2.numel())
    assert abs(float(eta2.std()) / 0.5 - 1) < 5 * math.sqrt(1 / (2 * eta2.numel()))


def test_gaussian_labels_seeds_and_nesting(linear):
    a = attacks.gaussian_labels(linear, 0.3, seed=5)
    b = attacks.gaussian_labels(linear, 0.3, seed=5)
    c = attacks.gaussian_labels(linear, 0.3, seed=6)
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.mask, c.mask)
    small = attacks.gaussian_labels(linear, 0.1, seed=5)
    assert (a.mask[small.mask]).all()  # common random numbers: the poisoned set grows with alpha
    torch.testing.assert_close(small.y_train[small.mask], a.y_train[small.mask])


def test_attacks_compose(linear):
    first = attacks.gaussian_labels(linear, 0.2, seed=1)
    second = attacks.gaussian_labels(first, 0.2, seed=2)
    assert torch.equal(second.mask, first.mask | (second.y_train != first.y_train).any(1))


@pytest.mark.parametrize("kwargs, name", [
    (dict(alpha=-0.1), "alpha"), (dict(alpha=1.5), "alpha"), (dict(alpha=float("nan")), "alpha"),
    (dict(eta_std=-1.0), "eta_std"), (dict(eta_mean=[1.0, 2.0, 3.0]), "eta_mean"),
    (dict(eta_cov=[[1.0, 0.0], [0.0, -1.0]]), "eta_cov"), (dict(eta_cov=[[1.0]]), "eta_cov"),
])
def test_gaussian_labels_bad_input(linear, kwargs, name):
    with pytest.raises(ValueError, match=name):
        attacks.gaussian_labels(linear, **(dict(alpha=0.1, seed=0) | kwargs))


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 1.0])
def test_flip_binary_random(binary, alpha):
    p = attacks.flip_binary(binary, alpha, seed=0)
    mask = check_mask(binary, p, alpha)
    assert torch.equal(p.y_train[mask], 1 - binary.y_train[mask])


def test_flip_binary_boundary_selects_within_margin(binary):
    dist = attacks.boundary_distance(binary).abs()
    margin = 0.2
    inside = int((dist < margin).sum())
    alpha = (inside // 2) / binary.n_train
    p = attacks.flip_binary(binary, alpha, how="boundary", margin=margin, seed=1)
    mask = check_mask(binary, p, alpha)
    assert (dist[mask] < margin).all()
    assert torch.equal(p.y_train[mask], 1 - binary.y_train[mask])
    # both sides of the boundary are candidates
    assert set(binary.y_train[mask].tolist()) == {0.0, 1.0}
    # all points inside is allowed; one more is not
    attacks.flip_binary(binary, inside / binary.n_train, how="boundary", margin=margin, seed=1)
    with pytest.raises(ValueError, match="alpha"):
        attacks.flip_binary(binary, (inside + 1) / binary.n_train, how="boundary", margin=margin, seed=1)


def test_flip_binary_one_sided(binary):
    dist = attacks.boundary_distance(binary).abs()
    for side in (0, 1):
        p = attacks.flip_binary(binary, 0.05, how="one-sided", margin=0.3, side=side, seed=2)
        mask = check_mask(binary, p, 0.05)
        assert (binary.y_train[mask] == side).all() and (dist[mask] < 0.3).all()
    default = attacks.flip_binary(binary, 0.05, how="one-sided", margin=0.3, seed=2)
    assert (binary.y_train[default.mask] == 1).all()
    with pytest.raises(ValueError, match="side"):
        attacks.flip_binary(binary, 0.05, how="one-sided", margin=0.3, side=2, seed=2)


def test_flip_binary_margin_errors(binary):
    with pytest.raises(ValueError, match="margin"):
        attacks.flip_binary(binary, 0.1, how="boundary", margin=0.0, seed=0)  # selects no point
    with pytest.raises(ValueError, match="margin"):
        attacks.flip_binary(binary, 0.1, how="boundary", seed=0)  # missing
    with pytest.raises(ValueError, match="margin"):
        attacks.flip_binary(binary, 0.1, how="random", margin=0.1, seed=0)  # not used by random
    with pytest.raises(ValueError, match="margin"):
        attacks.flip_binary(binary, 0.1, how="boundary", margin=-1.0, seed=0)


def test_flip_binary_most_confident_picks_the_top_scores(binary):
    scores = torch.randn(binary.n_train, generator=torch.Generator().manual_seed(0))
    p = attacks.flip_binary(binary, 0.1, how="most-confident", scores=scores, seed=0)
    mask = check_mask(binary, p, 0.1)
    top = set(torch.topk(scores, round(0.1 * binary.n_train)).indices.tolist())
    assert set(mask.nonzero().flatten().tolist()) == top
    with pytest.raises(ValueError, match="scores"):
        attacks.flip_binary(binary, 0.1, how="most-confident", seed=0)
    with pytest.raises(ValueError, match="scores"):
        attacks.flip_binary(binary, 0.1, how="most-confident", scores=scores[:5], seed=0)


def test_flip_binary_seeds_and_bad_input(binary):
    a = attacks.flip_binary(binary, 0.2, seed=4)
    assert torch.equal(a.mask, attacks.flip_binary(binary, 0.2, seed=4).mask)
    assert not torch.equal(a.mask, attacks.flip_binary(binary, 0.2, seed=5).mask)
    with pytest.raises(ValueError, match="how"):
        attacks.flip_binary(binary, 0.2, how="sideways", seed=0)
    with pytest.raises(ValueError, match="alpha"):
        attacks.flip_binary(binary, 1.01, seed=0)
    with pytest.raises(ValueError, match="y_train"):
        attacks.flip_binary(binary.replace(y_train=binary.y_train * 2), 0.1, seed=0)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0])
def test_flip_multiclass_random(multi, alpha):
    p = attacks.flip_multiclass(multi, alpha, seed=0)
    mask = check_mask(multi, p, alpha)
    assert (p.y_train[mask] != multi.y_train[mask]).all()
    assert p.y_train.dtype == multi.y_train.dtype and int(p.y_train.max()) <= 4
    if alpha == 1.0:  # every other class is used as a new label
        assert set(p.y_train.tolist()) == set(range(5))


def test_flip_multiclass_target_class(multi):
    p = attacks.flip_multiclass(multi, 0.2, how="target-class", target=3, seed=0)
    mask = check_mask(multi, p, 0.2)
    assert (p.y_train[mask] == 3).all() and (multi.y_train[mask] != 3).all()
    not_target = int((multi.y_train != 3).sum())
    with pytest.raises(ValueError, match="alpha"):
        attacks.flip_multiclass(multi, (not_target + 1) / multi.n_train, how="target-class", target=3, seed=0)
    for bad in (5, -1, None, 1.5):
        with pytest.raises(ValueError, match="target"):
            attacks.flip_multiclass(multi, 0.2, how="target-class", target=bad, seed=0)


def test_flip_multiclass_pair(multi):
    p = attacks.flip_multiclass(multi, 0.15, how="pair", pair=(1, 3), seed=0)
    mask = check_mask(multi, p, 0.15)
    old, new = multi.y_train[mask], p.y_train[mask]
    assert ((old == 1) & (new == 3) | (old == 3) & (new == 1)).all()
    with pytest.raises(ValueError, match="pair"):
        attacks.flip_multiclass(multi, 0.1, how="pair", pair=(2, 2), seed=0)
    with pytest.raises(ValueError, match="pair"):
        attacks.flip_multiclass(multi, 0.1, how="pair", pair=(0, 9), seed=0)
    with pytest.raises(ValueError, match="alpha"):
        attacks.flip_multiclass(multi, 0.9, how="pair", pair=(0, 4), seed=0)


def test_flip_multiclass_least_confident(multi):
    n = multi.n_train
    probs = torch.softmax(torch.randn(n, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    p = attacks.flip_multiclass(multi, 0.1, how="least-confident", probs=probs, seed=0)
    mask = check_mask(multi, p, 0.1)
    loss = -torch.log(probs[torch.arange(n), multi.y_train])
    assert set(mask.nonzero().flatten().tolist()) == set(torch.topk(loss, round(0.1 * n)).indices.tolist())
    wrong = probs.clone()
    wrong[torch.arange(n), multi.y_train] = -1
    assert torch.equal(p.y_train[mask], wrong.argmax(1)[mask])
    # smallest confidence = largest -confidence, given as scores
    conf = probs.max(1).values
    q = attacks.flip_multiclass(multi, 0.1, how="least-confident", probs=probs, scores=-conf, seed=0)
    assert set(q.mask.nonzero().flatten().tolist()) == set(torch.topk(-conf, round(0.1 * n)).indices.tolist())
    with pytest.raises(ValueError, match="probs"):
        attacks.flip_multiclass(multi, 0.1, how="least-confident", seed=0)
    with pytest.raises(ValueError, match="probs"):
        attacks.flip_multiclass(multi, 0.1, how="least-confident", probs=probs[:, :3], seed=0)


def test_flip_multiclass_seeds_and_bad_input(multi):
    a = attacks.flip_multiclass(multi, 0.3, seed=1)
    assert torch.equal(a.y_train, attacks.flip_multiclass(multi, 0.3, seed=1).y_train)
    assert not torch.equal(a.mask, attacks.flip_multiclass(multi, 0.3, seed=2).mask)
    with pytest.raises(ValueError, match="how"):
        attacks.flip_multiclass(multi, 0.1, how="rotate", seed=0)
    with pytest.raises(ValueError, match="target"):
        attacks.flip_multiclass(multi, 0.1, how="random", target=1, seed=0)
    with pytest.raises(ValueError, match="y_train"):
        attacks.flip_multiclass(multi, 0.1, num_classes=3, seed=0)
    with pytest.raises(ValueError, match="alpha"):
        attacks.flip_multiclass(multi, -0.5, seed=0)


@pytest.mark.parametrize("m", [1, 3, 16])
def test_isotropic_poison_needs_no_identity_and_keeps_its_numbers(m):
    # eta = mean + eta_std z, without the m x m identity (out_dim 1e5 asked for 80 GB): the same numbers
    ds = data.make_linear(300, 2, m, seed=3)
    got = attacks.gaussian_labels(ds, 0.3, 5.0, 4.7, seed=9)
    g = data.generator(9)
    n = ds.n_train
    perm = torch.randperm(n, generator=g)
    z = torch.randn(n, m, generator=g, dtype=torch.float64)
    k = round(0.3 * n)
    eta = 5.0 + z[:k] @ (4.7 * torch.eye(m, dtype=torch.float64)).T  # the former formula
    y = ds.y_train.clone()
    y[perm[:k]] = (y[perm[:k]].double() + eta).to(y.dtype)
    assert torch.equal(got.y_train, y)
