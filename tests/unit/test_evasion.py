"""Evasion attacks (attacks.evasion) against the reference implementations torchattacks 3.5.1 and foolbox
3.3.4 on the same model and inputs (L_inf bit for bit, L2 within 1e-6), and against their definitions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from poisonlab.attacks import evasion


def _model(seed=0, dropout=False):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers, nn.Linear(16, 10))


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    X = torch.rand(64, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    return X, y


def test_fgsm_equals_torchattacks_bit_for_bit(batch):
    torchattacks = pytest.importorskip("torchattacks")
    X, y = batch
    model = _model()
    for eps in (0.0, 0.03, 0.3):
        ours = evasion.fgsm(model, X, y, eps)
        ref = torchattacks.FGSM(model, eps=eps)(X, y)
        assert torch.equal(ours, ref), eps


@pytest.mark.parametrize("eps, steps, step_size", [(0.1, 10, 0.02), (0.3, 5, 0.1)])
def test_pgd_linf_equals_torchattacks_and_foolbox_bit_for_bit(batch, eps, steps, step_size):
    torchattacks = pytest.importorskip("torchattacks")
    fb = pytest.importorskip("foolbox")
    X, y = batch
    model = _model(dropout=True)  # dropout is switched off for the attack by both
    model.train()
    ours = evasion.pgd(model, X, y, eps, steps=steps, step_size=step_size)
    assert model.training  # restored
    ref = torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, random_start=False)(X, y)
    assert torch.equal(ours, ref)
    model.eval()
    attack = fb.attacks.LinfPGD(abs_stepsize=step_size, steps=steps, random_start=False)
    _, clipped, _ = attack(fb.PyTorchModel(model, bounds=(0, 1)), X, y, epsilons=eps)
    assert torch.equal(ours, clipped)


def test_pgd_l2_equals_torchattacks_and_foolbox_within_1e6(batch):
    torchattacks = pytest.importorskip("torchattacks")
    fb = pytest.importorskip("foolbox")
    X, y = batch
    model = _model()
    ours = evasion.pgd(model, X, y, 1.0, steps=10, step_size=0.2, norm=2)
    ref = torchattacks.PGDL2(model, eps=1.0, alpha=0.2, steps=10, random_start=False)(X, y)
    assert (ours - ref).abs().max() <= 1e-6
    attack = fb.attacks.L2PGD(abs_stepsize=0.2, steps=10, random_start=False)
    _, clipped, _ = attack(fb.PyTorchModel(model.eval(), bounds=(0, 1)), X, y, epsilons=1.0)
    assert (ours - clipped).abs().max() <= 1e-6
    assert evasion._norms(ours - X, "2").max() <= 1.0 + 1e-6


def test_fgsm_is_pgd_first_step_and_pgd_is_stronger(batch):
    X, y = batch
    model = _model()
    assert torch.equal(evasion.fgsm(model, X, y, 0.1), evasion.pgd(model, X, y, 0.1, steps=1, step_size=0.1))
    clean = evasion.accuracy(model, X, y)
    with torch.no_grad():  # an attack inside a caller's no_grad still differentiates
        one = evasion.accuracy(model, evasion.fgsm(model, X, y, 0.1), y)
    many = evasion.accuracy(model, evasion.pgd(model, X, y, 0.1, steps=20, step_size=0.02), y)
    restarts = evasion.accuracy(model, evasion.pgd(model, X, y, 0.1, steps=20, step_size=0.02, random_start=True,
                                                   restarts=4, seed=0), y)
    assert clean >= one >= many >= restarts and clean > restarts


def test_fgsm_curve_is_fgsm_at_each_eps(batch):
    X, y = batch
    model = _model()
    eps = [0.0, 0.05, 0.1, 0.2]
    curve = evasion.fgsm_curve(model, X, y, eps)
    assert curve.tolist() == [evasion.accuracy(model, evasion.fgsm(model, X, y, e), y) for e in eps]
    assert curve[0] == evasion.accuracy(model, X, y)


def test_pgd_with_one_budget_per_example_is_the_batch_of_separate_runs(batch):
    X, y = batch
    model = _model()
    eps = torch.tensor([0.05, 0.2]).repeat_interleave(len(X))
    both = evasion.pgd(model, X.repeat(2, 1, 1, 1), y.repeat(2), eps, steps=5, step_size=0.02)
    for k, e in enumerate((0.05, 0.2)):
        alone = evasion.pgd(model, X, y, e, steps=5, step_size=0.02)
        assert (both[k * len(X):(k + 1) * len(X)] - alone).abs().max() <= 1e-6


def test_projections_land_in_the_ball_and_match_their_definitions():
    g = torch.Generator().manual_seed(3)
    d = torch.randn(16, 1, 5, 5, generator=g)
    for p, eps in (("inf", 0.3), ("2", 1.5), ("1", 2.0)):
        out = evasion.project(d, eps, p)
        assert (evasion._norms(out, p) <= eps + 1e-5).all(), p
    # L1: the Euclidean projection is the soft threshold at the theta where sum(max(|v| - theta, 0)) = eps
    # (the KKT conditions); theta found here by scipy's root finder, not by our sort
    from scipy.optimize import brentq

    v = d[0].reshape(-1).double().numpy()
    theta = brentq(lambda t: np.maximum(np.abs(v) - t, 0).sum() - 2.0, 0.0, np.abs(v).max())
    ref = np.sign(v) * np.maximum(np.abs(v) - theta, 0)
    ours = evasion.project(d[:1].double(), 2.0, 1).reshape(-1).numpy()
    assert np.abs(ours - ref).max() < 1e-12
    inside = 0.01 * d
    assert torch.equal(evasion.project(inside, 10.0, 1), inside)  # points of the ball stay put


def test_lp_descent_keeps_the_budget_and_stops_on_success(batch):
    X, y = batch
    model = _model()
    for p, budget in (("2", 2.0), ("inf", 0.2), ("1", 8.0)):
        adv, ok = evasion.lp_descent(model, X, y, budget, norm=p, steps=30, step_size=0.05)
        assert (evasion._norms(adv - X, p) <= budget + 1e-5).all()
        assert ((adv >= 0) & (adv <= 1)).all()
        with torch.no_grad():
            assert torch.equal(ok, model(adv).argmax(1) != y)
    # the model already wrong on an image: success at once, the image untouched
    with torch.no_grad():
        wrong = model(X).argmax(1) != y
    adv, ok = evasion.lp_descent(model, X, y, 2.0, norm="2", steps=1)
    assert ok[wrong].all()


def test_min_budget_bisection_finds_the_threshold_of_a_monotone_attack():
    X = torch.zeros(5, 3)
    y = torch.zeros(5, dtype=torch.long)
    truth = torch.tensor([0.1, 0.35, 0.5, 0.9, 2.0], dtype=torch.float64)

    def attack(X, y, budget):
        return budget.double() >= truth

    found = evasion.min_budget(attack, X, y, hi=1.0, iters=20)
    assert torch.allclose(found[:4], truth[:4], atol=1e-5) and math.isinf(found[4])


def test_margin_loss_does_not_saturate_with_temperature(batch):
    X, y = batch
    model = _model()
    for T in (1.0, 100.0):
        g = evasion.input_gradient(model, X, y, loss="margin", temperature=T)
        assert torch.equal(g.sign(), evasion.input_gradient(model, X, y, loss="margin").sign())
    # a model sure of its (right) answers, logits x 1e5: the softmax saturates in float32 and the
    # cross-entropy's gradient is exactly zero for most images, the margin's is not (gradient masking)
    with torch.no_grad():
        right = model(X).argmax(1)
    zero = lambda g: (g.reshape(len(g), -1).abs().amax(1) == 0).float().mean()  # noqa: E731
    assert zero(evasion.input_gradient(model, X, right, loss="ce", temperature=1e-5)) > 0.5
    assert zero(evasion.input_gradient(model, X, right, loss="margin", temperature=1e-5)) == 0


def test_bad_input_names_the_parameter(batch):
    X, y = batch
    model = _model()
    with pytest.raises(ValueError, match="eps"):
        evasion.fgsm(model, X, y, -0.1)
    with pytest.raises(ValueError, match="eps"):
        evasion.fgsm(model, X, y, math.nan)
    with pytest.raises(ValueError, match="norm"):
        evasion.fgsm(model, X, y, 0.1, norm=3)
    with pytest.raises(ValueError, match="steps"):
        evasion.pgd(model, X, y, 0.1, steps=0, step_size=0.01)
    with pytest.raises(ValueError, match="step_size"):
        evasion.pgd(model, X, y, 0.1, steps=1, step_size=0.0)
    with pytest.raises(ValueError, match="temperature"):
        evasion.fgsm(model, X, y, 0.1, temperature=0.0)
    with pytest.raises(ValueError, match="loss"):
        evasion.fgsm(model, X, y, 0.1, loss="hinge")
    with pytest.raises(ValueError, match="restarts"):
        evasion.pgd(model, X, y, 0.1, steps=1, step_size=0.01, restarts=2)
    with pytest.raises(ValueError, match="seed"):
        evasion.pgd(model, X, y, 0.1, steps=1, step_size=0.01, random_start=True)
    with pytest.raises(ValueError, match="y must"):
        evasion.fgsm(model, X, y.float(), 0.1)
    with pytest.raises(ValueError, match="X must"):
        evasion.fgsm(model, X.long(), y, 0.1)
    with pytest.raises(ValueError, match="eps"):
        evasion.pgd(model, X, y, torch.ones(3), steps=1, step_size=0.01)
