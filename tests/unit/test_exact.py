"""Exact worst-case margins by MILP (models.exact): equal to enumerating the ReLU activation patterns with one LP
each, no larger than the minimum over a dense grid and within its resolution, and above IBP's and CROWN's lower
bounds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from poisonlab.models import bounds, exact
from poisonlab.models.crown import crown_logit_bounds, crown_margins
from poisonlab.models.exact import exact_logit_bounds, exact_margins
from poisonlab.models.spec import Conv2d, Flatten, Linear, ReLU, Spec, Unflatten

EPS = 0.3
X = torch.tensor([[0.3, 0.6], [0.55, 0.45], [0.9, 0.05]], dtype=torch.float64)  # the last ball is clipped


def net(hidden, classes, seed, factor=2.0):
    """A 2-input MLP, spec.init(seed) times `factor` in float64: larger weights put more of the units' kinks in
    the ball."""
    spec = Spec.mlp(2, hidden, classes)
    return spec, {k: v.double() * factor for k, v in spec.init(seed).items()}


NETS = [((8, 8), 2, 0), ((16,), 3, 3), ((32,), 3, 1)]  # 4 to 36 linear pieces in each ball


def _layers(params, n):
    return ([params[f"{2 * i}.weight"].numpy() for i in range(n)], [params[f"{2 * i}.bias"].numpy() for i in range(n)])


def enumerate_minima(Ws, bs, lo, hi, objectives):
    """min over the box [lo, hi] of c . z for each row c of `objectives`, by enumerating the activation patterns:
    depth first over the hidden units, each phase kept only if the region so far stays non-empty (an LP), and on
    each complete pattern, where the network is affine, one LP per objective."""
    box = list(zip(lo, hi))
    best = np.full(len(objectives), np.inf)
    counts = {"regions": 0}

    def lp(c, A, b):
        res = linprog(c, A_ub=np.array(A) if A else None, b_ub=np.array(b) if b else None, bounds=box,
                      method="highs")
        return res

    def visit(layer, M, v, phases, A, b):
        # the pre-activations of hidden layer `layer` are M x + v on the region {A x <= b}; `phases` fixes the
        # first units' signs
        if len(phases) == len(v):
            D = np.array(phases, dtype=float)
            M2, v2 = Ws[layer + 1] @ (D[:, None] * M), Ws[layer + 1] @ (D * v) + bs[layer + 1]
            if layer + 1 < len(Ws) - 1:
                visit(layer + 1, M2, v2, [], A, b)
                return
            counts["regions"] += 1
            for j, c in enumerate(objectives):
                res = lp(c @ M2, A, b)
                assert res.status == 0
                best[j] = min(best[j], res.fun + c @ v2)
            return
        i = len(phases)
        for phase, row, rhs in ((1, -M[i], v[i]), (0, M[i], -v[i])):  # z_i >= 0, z_i <= 0
            if lp(np.zeros(len(lo)), A + [row], b + [rhs]).status == 0:
                visit(layer, M, v, phases + [phase], A + [row], b + [rhs])

    visit(0, Ws[0], bs[0], [], [], [])
    return best, counts["regions"]


@pytest.mark.parametrize("hidden, classes, seed", NETS)
def test_equals_the_enumeration_of_activation_patterns(hidden, classes, seed):
    spec, params = net(hidden, classes, seed)
    y = torch.tensor([0, 1, classes - 1])
    got = exact_margins(spec, params, X, y, EPS)
    assert got.dtype == np.float64 and got.shape == (3, classes)
    Ws, bs = _layers(params, len(hidden) + 1)
    lo, hi = bounds.ball(X, EPS)
    eye = np.eye(classes)
    for i in range(3):
        ref, regions = enumerate_minima(Ws, bs, lo[i].numpy(), hi[i].numpy(), eye[int(y[i])] - eye)
        assert regions >= 4  # the ball holds several linear pieces: the check is not of a linear function
        np.testing.assert_allclose(got[i], ref, atol=1e-6, rtol=0)


def _grid(lo, hi, n=201):
    """(n * n, 2) points of a grid over the box, and the largest distance per coordinate from any point of the
    box to the nearest grid point (half the spacing)."""
    a = torch.linspace(float(lo[0]), float(hi[0]), n, dtype=torch.float64)
    b = torch.linspace(float(lo[1]), float(hi[1]), n, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2)
    return pts, ((hi - lo) / (n - 1) / 2).numpy()


def _lipschitz(Ws, c):
    """Per input coordinate, a bound on |d(c . z)/dx_i| over all inputs: |c| |W_L| ... |W_1| (a ReLU's slope is
    in [0, 1])."""
    out = np.abs(c)
    for W in reversed(Ws):
        out = out @ np.abs(W)
    return out


@pytest.mark.parametrize("hidden, classes, seed", NETS)
def test_below_a_dense_grid_and_within_its_resolution(hidden, classes, seed):
    spec, params = net(hidden, classes, seed)
    y = torch.tensor([1, 0, 0])
    got = exact_margins(spec, params, X, y, EPS)
    e_lo, e_hi = exact_logit_bounds(spec, params, X, EPS)
    Ws, _ = _layers(params, len(hidden) + 1)
    lo, hi = bounds.ball(X, EPS)
    eye = np.eye(classes)
    for i in range(3):
        pts, half = _grid(lo[i], hi[i])
        z = spec.forward(params, pts).numpy()
        grid_margins = z[:, int(y[i])][:, None] - z
        for k in range(classes):
            if k == int(y[i]):
                assert got[i, k] == 0
                continue
            # any point of the box is within `half` of a grid point, so the grid's minimum exceeds the true one
            # by at most that distance times the margin's Lipschitz constants
            tol = float(_lipschitz(Ws, eye[int(y[i])] - eye[k]) @ half)
            spread = grid_margins[:, k].max() - grid_margins[:, k].min()
            assert tol < 0.2 * spread  # the grid resolves the margin's variation over the ball
            assert got[i, k] <= grid_margins[:, k].min() + 1e-9
            assert got[i, k] >= grid_margins[:, k].min() - tol
        for k in range(classes):
            tol = float(_lipschitz(Ws, eye[k]) @ half)
            assert z[:, k].min() - tol <= e_lo[i, k] <= z[:, k].min() + 1e-9
            assert z[:, k].max() - 1e-9 <= e_hi[i, k] <= z[:, k].max() + tol


@pytest.mark.parametrize("hidden, classes, seed", NETS)
def test_ibp_and_crown_are_lower_bounds_of_the_exact_margins(hidden, classes, seed):
    spec, params = net(hidden, classes, seed)
    y = torch.tensor([0, 1, 0])
    got = exact_margins(spec, params, X, y, EPS)
    ibp = bounds.margin_bounds(spec, params, X, y, EPS).numpy()
    crown = crown_margins(spec, params, X, y, EPS).numpy()
    assert (ibp <= got + 1e-6).all() and (crown <= got + 1e-6).all()
    assert (ibp < got - 1e-3).any() and (crown < got - 1e-3).any()  # neither is exact here: the check has teeth
    c_lo, c_hi = crown_logit_bounds(spec, params, X, EPS)
    e_lo, e_hi = exact_logit_bounds(spec, params, X, EPS)
    assert (c_lo.numpy() <= e_lo + 1e-6).all() and (c_hi.numpy() >= e_hi - 1e-6).all()


def test_zero_radius_gives_the_margins_of_the_point():
    spec, params = net((8, 8), 2, 0)
    y = torch.tensor([0, 1, 1])
    z = spec.forward(params, X)
    np.testing.assert_allclose(exact_margins(spec, params, X, y, 0.0), (z.gather(1, y[:, None]) - z).numpy(),
                               atol=1e-9, rtol=0)


def test_one_hidden_layer_on_images():
    spec = Spec([Flatten(), Linear(784, 16, name="fc1"), ReLU(), Linear(16, 3, name="fc2")])
    params = spec.init(3)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 28, 28, generator=g)
    y = torch.tensor([2])
    got = exact_margins(spec, params, x, y, 0.05)
    assert (bounds.margin_bounds(spec, params, x, y, 0.05).numpy() <= got + 1e-5).all()
    assert (crown_margins(spec, params, x, y, 0.05).numpy() <= got + 1e-5).all()
    lo, hi = bounds.ball(x.double(), 0.05)
    pts = torch.where(torch.rand(2000, 1, 1, 28, 28, generator=g, dtype=torch.float64) < 0.5, lo, hi)
    z = spec.forward({k: v.double() for k, v in params.items()}, pts.reshape(2000, 1, 28, 28)).numpy()
    assert (got <= (z[:, 2:3] - z).min(0) + 1e-9).all()


def test_bad_input_and_unsolved_programs(monkeypatch):
    spec, params = net((8, 8), 2, 0)
    y = torch.tensor([0, 1, 1])
    conv = Spec([Unflatten((1, 4, 4)), Conv2d(1, 2, 3, name="c"), ReLU(), Flatten(), Linear(8, 2, name="fc")])
    with pytest.raises(ValueError, match="model"):
        exact_margins(conv, conv.init(0), torch.rand(1, 16), torch.tensor([0]), EPS)
    with pytest.raises(ValueError, match="eps"):
        exact_margins(spec, params, X, y, -0.1)
    with pytest.raises(ValueError, match="y"):
        exact_margins(spec, params, X, torch.tensor([0, 1, 2]), EPS)

    class Unsolved:
        status, fun, message = 1, None, "Iteration or time limit reached."

    monkeypatch.setattr(exact, "milp", lambda *args, **kwargs: Unsolved())
    with pytest.raises(ValueError, match="row 0 .*did not solve to optimality"):
        exact_margins(spec, params, X, y, EPS)
