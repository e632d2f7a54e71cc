"""The evasion chapter's theory against direct computation: the optimal L_inf attack on a linear model is
FGSM (box included), and where float32 zeroes the cross-entropy's gradient."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from torch import nn

from poisonlab.attacks import evasion
from poisonlab.chapters.evasion import theory


def _binary(d=20, n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    b = -float(X.mean(0) @ w)
    y = ((X @ w + b) > 0).long()
    flip = torch.rand(n, generator=g) < 0.1  # some points misclassified
    return X, w, b, torch.where(flip, 1 - y, y)


def _two_logit_model(w, b):
    """Logits (0, w . x + b): class 1 iff w . x + b > 0; the cross-entropy's input gradient is a multiple of w."""
    net = nn.Linear(len(w), 2, dtype=torch.float64)
    with torch.no_grad():
        net.weight.copy_(torch.stack([torch.zeros_like(w), w]))
        net.bias.copy_(torch.tensor([0.0, b]))
    return net


@pytest.mark.parametrize("box", [(0.0, 1.0), None])
def test_fgsm_attains_the_margin_reduction_and_the_flipped_fraction(box):
    X, w, b, y = _binary()
    s = 2.0 * y.double() - 1
    net = _two_logit_model(w, b)
    for eps in (0.01, 0.05, 0.2):
        adv = evasion.fgsm(net, X, y, eps, box=box)
        reduction = s * ((X - adv) @ w)
        torch.testing.assert_close(reduction, theory.linf_margin_reduction(X, w, s, eps, box), rtol=1e-12, atol=1e-12)
    eps = np.array([0.0, 0.01, 0.03, 0.1])
    with torch.no_grad():
        right = (net(X).argmax(1) == y).double()
        drop = [float((right * (net(evasion.fgsm(net, X, y, e, box=box)).argmax(1) != y)).mean()) for e in eps]
    assert theory.linear_flipped_fraction(X, w, b, s, eps, box) == pytest.approx(drop, abs=1e-12)
    assert drop[-1] > 0


def test_the_box_only_shrinks_the_attack():
    X, w, b, y = _binary()
    s = 2.0 * y.double() - 1
    boxed = theory.linear_flipped_fraction(X, w, b, s, [0.05, 0.2])
    free = theory.linear_flipped_fraction(X, w, b, s, [0.05, 0.2], box=None)
    assert (boxed <= free).all() and (boxed < free).any()


def test_first_order_loss_of_the_fgsm_point():
    r = theory.fgsm_linear_loss()
    m, eps, w1 = sp.symbols("m epsilon ||w||_1", positive=True)
    assert sp.simplify(r["slope"] - w1 / (1 + sp.exp(m))) == 0


def test_cross_entropy_gradient_is_exactly_zero_beyond_the_predicted_margin():
    limit, sat = theory.zero_gradient_margin(), theory.saturation_margin()
    assert limit == pytest.approx(150 * math.log(2)) and sat == pytest.approx(24 * math.log(2))

    def grad(margin, K=3):
        z = torch.tensor([[margin] + [0.0] * (K - 1)], requires_grad=True)
        F.cross_entropy(z, torch.tensor([0])).backward()
        return z.grad[0]

    assert grad(limit - 0.1).abs().max() > 0 and grad(limit + 0.1).abs().max() == 0
    assert grad(sat + 0.1)[0] == 0 and grad(sat - 1.0)[0] != 0  # p_y rounds to 1


def test_logit_gradient_norm_is_the_autograd_norm():
    for margin, T, K in ((2.0, 1.0, 10), (30.0, 20.0, 10), (5.0, 0.5, 3)):
        z = torch.tensor([[margin] + [0.0] * (K - 1)], dtype=torch.float64, requires_grad=True)
        F.cross_entropy(z / T, torch.tensor([0])).backward()
        assert theory.logit_gradient_norm(margin, T, K) == pytest.approx(float(z.grad.norm()), rel=1e-12)
    with pytest.raises(ValueError, match="T"):
        theory.logit_gradient_norm(1.0, 0.0)
    with pytest.raises(ValueError, match="K"):
        theory.logit_gradient_norm(1.0, 1.0, 1)


def _vertex_search(x, y, W, b, eps, box=(0.0, 1.0)):
    """Brute force: a linear function's minimum over the box (ball intersected with [0, 1]^d) is at a vertex,
    so try every vertex and every class."""
    import itertools

    lo = np.maximum(x - eps, box[0])
    hi = np.minimum(x + eps, box[1])
    for corner in itertools.product(*zip(lo, hi)):
        z = W @ np.array(corner) + b
        if any(z[k] >= z[y] for k in range(len(z)) if k != y):
            return True
    return False


def test_softmax_optimal_attack_matches_a_vertex_search():
    g = torch.Generator().manual_seed(3)
    d, K, n = 6, 4, 60
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    W = torch.randn(K, d, generator=g, dtype=torch.float64)
    b = torch.randn(K, generator=g, dtype=torch.float64) * 0.3
    y = (X @ W.T + b).argmax(1)
    y[:5] = (y[:5] + 1) % K  # some misclassified: fooled already
    for eps in (0.0, 0.05, 0.2, 0.6):
        got = theory.softmax_optimal_fooled(X, y, W, b, eps)
        want = [_vertex_search(X[i].numpy(), int(y[i]), W.numpy(), b.numpy(), eps) for i in range(n)]
        assert got.tolist() == want, eps
    assert theory.softmax_optimal_fooled(X, y, W, b, 0.6).sum() > theory.softmax_optimal_fooled(X, y, W, b, 0.05).sum()


def test_softmax_optimal_attack_is_the_binary_law_for_two_classes():
    X, w, b, y = _binary()
    W = torch.stack([torch.zeros_like(w), w])
    B = torch.tensor([0.0, b], dtype=torch.float64)
    s = 2.0 * y - 1
    for eps in (0.01, 0.05, 0.1):
        fooled = theory.softmax_optimal_fooled(X, y, W, B, eps)
        right = (s * (X @ w + b)) > 0
        predicted = theory.linear_flipped_fraction(X, w, b, s, [eps])[0]
        assert float((fooled & right).double().mean()) == pytest.approx(predicted)


def test_softmax_optimal_attack_refuses_a_negative_budget():
    X, w, b, y = _binary()
    with pytest.raises(ValueError, match="eps"):
        theory.softmax_optimal_fooled(X, y, torch.stack([w, -w]), torch.zeros(2), -0.1)
