"""Exact solvers against numpy / scikit-learn references and their optimality conditions.

Tolerances: least squares and the LP agree with the references to rounding (1e-8); HuberRegressor
and LogisticRegression stop L-BFGS at a gradient tolerance, which leaves ~1e-5 of error in the
coefficients, so the comparisons with them use 1e-4 and the optimality of our solution is checked
separately (gradient ~ 0, objective no larger than the reference's).
"""
import numpy as np
import pytest
import torch
from sklearn.linear_model import HuberRegressor, LogisticRegression, QuantileRegressor

from poisonlab import attacks, data, solvers


def design(n=120, d=3, m=2, seed=0, K=None):
    ds = data.make_linear(n, d, m, noise_std=1.0, seed=seed)
    return ds.X_train.double(), ds.y_train.double()


def lstsq_ref(X, y):
    A = np.c_[X, np.ones(len(X))]
    theta = np.linalg.lstsq(A, y, rcond=None)[0]
    return theta[:-1].T, theta[-1]


def test_least_squares_matches_numpy():
    X, y = design()
    W, b = solvers.least_squares(X, y)
    W_ref, b_ref = lstsq_ref(X.numpy(), y.numpy())
    np.testing.assert_allclose(W.numpy(), W_ref, atol=1e-10)
    np.testing.assert_allclose(b.numpy(), b_ref, atol=1e-10)
    # float32 in -> float32 out; a 1-D y is one output
    W1, b1 = solvers.least_squares(X.float(), y[:, 0].float())
    assert W1.dtype == torch.float32 and W1.shape == (1, 3) and b1.shape == (1,)
    np.testing.assert_allclose(W1[0].numpy(), W_ref[0], atol=1e-5)
    W0, b0 = solvers.least_squares(X, y, intercept=False)
    assert (b0 == 0).all()
    np.testing.assert_allclose(W0.numpy(), np.linalg.lstsq(X.numpy(), y.numpy(), rcond=None)[0].T, atol=1e-10)


def test_least_squares_batched_and_rank_deficient():
    Xs = torch.stack([design(seed=s)[0] for s in range(4)])
    ys = torch.stack([design(seed=s)[1] for s in range(4)])
    W, b = solvers.least_squares(Xs, ys)
    assert W.shape == (4, 2, 3) and b.shape == (4, 2)
    for k in range(4):
        W_ref, b_ref = lstsq_ref(Xs[k].numpy(), ys[k].numpy())
        np.testing.assert_allclose(W[k].numpy(), W_ref, atol=1e-10)
        np.testing.assert_allclose(b[k].numpy(), b_ref, atol=1e-10)
    # more parameters than points: the minimum-norm solution, as numpy's
    X, y = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    W, b = solvers.least_squares(X, y)
    W_ref, b_ref = lstsq_ref(X.numpy(), y.numpy())
    np.testing.assert_allclose(W.numpy(), W_ref, atol=1e-10)


def test_l1_matches_quantile_regressor():
    X, y = design(n=150)
    y = y.clone()
    y[:10] += 30.0  # outliers: LAD ignores their size
    W, b = solvers.l1(X, y)
    for j in range(2):
        q = QuantileRegressor(quantile=0.5, alpha=0, solver="highs").fit(X.numpy(), y[:, j].numpy())
        np.testing.assert_allclose(W[j].numpy(), q.coef_, atol=1e-8)
        assert abs(float(b[j]) - q.intercept_) < 1e-8
    # optimality: no other point of a small random cloud does better
    A = np.c_[X.numpy(), np.ones(len(X))]
    theta = np.r_[W[0].numpy(), b[0].item()]
    best = np.abs(y[:, 0].numpy() - A @ theta).sum()
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert np.abs(y[:, 0].numpy() - A @ (theta + 1e-3 * rng.standard_normal(4))).sum() >= best - 1e-9
    Wb, bb = solvers.l1(torch.stack([X, X]), torch.stack([y, y]))
    assert Wb.shape == (2, 2, 3) and torch.equal(Wb[1], W)


def test_huber_matches_huber_regressor():
    X, y = design(n=200, m=1)
    y = y[:, 0].clone()
    y[:20] += 15.0
    h = HuberRegressor(epsilon=1.35, alpha=0, tol=1e-12, max_iter=10000).fit(X.numpy(), y.numpy())
    delta = 1.35 * h.scale_  # HuberRegressor's rho at its fitted scale sigma is ours with delta = epsilon sigma
    W, b = solvers.huber(X, y, delta)
    np.testing.assert_allclose(W[0].numpy(), h.coef_, atol=1e-4)
    assert abs(float(b[0]) - h.intercept_) < 1e-4

    def objective(w, c):
        return float(solvers.huber_loss(y - X @ torch.as_tensor(w, dtype=torch.float64) - c, delta).sum())

    assert objective(W[0], b[0]) <= objective(h.coef_, h.intercept_) + 1e-9
    # first-order condition of the convex objective: sum_i psi(r_i) a_i = 0
    r = y - X @ W[0] - b[0]
    psi = r.clamp(-delta, delta)
    A = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
    assert float((A.T @ psi).abs().max()) < 1e-8 * delta * len(X)


def test_huber_limits_and_batches():
    X, y = design(n=100, m=2)
    W_ls, b_ls = solvers.least_squares(X, y)
    W, b = solvers.huber(X, y, delta=1e6)  # no residual reaches delta: least squares
    np.testing.assert_allclose(W.numpy(), W_ls.numpy(), atol=1e-10)
    Wb, bb = solvers.huber(torch.stack([X, X * 2]), torch.stack([y, y]), delta=0.5)
    W0, b0 = solvers.huber(X, y, delta=0.5)
    assert Wb.shape == (2, 2, 3)
    np.testing.assert_allclose(Wb[0].numpy(), W0.numpy(), atol=1e-12)
    np.testing.assert_allclose(Wb[1].numpy() * 2, W0.numpy(), atol=1e-8)  # scaling X scales W back
    # a tiny delta (almost every residual an outlier) still converges to the optimum
    Wt, bt = solvers.huber(X, y, delta=1e-3)
    Wl, bl = solvers.l1(X, y)
    np.testing.assert_allclose(Wt.numpy(), Wl.numpy(), atol=0.05)


def flipped(n=400, d=3, alpha=0.2, seed=0):
    ds = data.make_binary(n, d, seed=seed)
    p = attacks.flip_binary(ds, alpha, seed=seed + 1)
    return ds, p.X_train.double(), p.y_train.double()


def test_logistic_matches_sklearn_unpenalised():
    _, X, y = flipped()
    w, b = solvers.logistic(X, y)
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(w.numpy(), lr.coef_[0], atol=1e-4)
    assert abs(float(b) - lr.intercept_[0]) < 1e-4
    # Newton converged: the gradient of the mean log-loss vanishes
    z = X @ w + b
    resid = torch.sigmoid(z) - y
    assert float((X.T @ resid).abs().max()) < 1e-8 * len(y) and abs(float(resid.sum())) < 1e-8 * len(y)


def test_logistic_l2_matches_sklearn_c():
    ds, X, y = flipped(alpha=0.0)  # clean, separable: needs l2 > 0
    n, l2 = len(y), 0.01
    w, b = solvers.logistic(X, y, l2=l2)
    lr = LogisticRegression(C=1 / (n * l2), tol=1e-12, max_iter=10000).fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(w.numpy(), lr.coef_[0], atol=1e-4)
    assert abs(float(b) - lr.intercept_[0]) < 1e-4


def test_logistic_separable_without_l2_is_an_error():
    ds, X, y = flipped(alpha=0.0)
    assert solvers.is_separable(X, y)
    with pytest.raises(ValueError, match="l2"):
        solvers.logistic(X, y)
    # one class only is (trivially) separable as well
    with pytest.raises(ValueError, match="l2"):
        solvers.logistic(X, torch.ones(len(y), dtype=torch.float64))
    _, Xp, yp = flipped(alpha=0.2)
    assert not solvers.is_separable(Xp, yp)


def test_logistic_batched():
    _, X1, y1 = flipped(seed=0)
    _, X2, y2 = flipped(seed=5)
    w, b = solvers.logistic(torch.stack([X1, X2]), torch.stack([y1, y2]))
    assert w.shape == (2, 3) and b.shape == (2,)
    w2, b2 = solvers.logistic(X2, y2)
    torch.testing.assert_close(w[1], w2)
    torch.testing.assert_close(b[1], b2)


@pytest.mark.parametrize("call, name", [
    (lambda X, y: solvers.huber(X, y, delta=0.0), "delta"),
    (lambda X, y: solvers.huber(X, y, delta=-1.0), "delta"),
    (lambda X, y: solvers.logistic(X, (y[:, 0] > 0).double(), l2=-1.0), "l2"),
    (lambda X, y: solvers.logistic(X, y[:, 0]), "y"),
    (lambda X, y: solvers.least_squares(X, y[:10]), "y"),
    (lambda X, y: solvers.least_squares(X[0], y), "X"),
    (lambda X, y: solvers.l1(X.masked_fill(X > 1, float("nan")), y), "X"),
    (lambda X, y: solvers.least_squares(X, y.masked_fill(y > 1, float("inf"))), "y"),
])
def test_bad_input(call, name):
    X, y = design(n=50)
    with pytest.raises(ValueError, match=name):
        call(X, y)


def test_logistic_with_a_tiny_ridge_converges_to_the_unpenalised_fit():
    # found by the logistic chapter: a ridge of 1e-9 kept the Newton decrement at ~1e-19, above an
    # absolute stopping threshold, and the solver wrongly reported separable data
    ds = data.make_binary(4000, 2, x_dist="gaussian", seed=9)
    ds = attacks.flip_binary(ds, 0.03, seed=9)
    w0, b0 = solvers.logistic(ds.X_train, ds.y_train, l2=0.0)
    w1, b1 = solvers.logistic(ds.X_train, ds.y_train, l2=1e-9)
    torch.testing.assert_close(w1, w0, rtol=1e-4, atol=1e-5)
    assert abs(float(b1) - float(b0)) < 1e-4
