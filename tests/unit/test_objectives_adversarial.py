"""The adversarial-training and temperature objectives (train.PGD, train.Tempered): their definitions, their
agreement with attacks.evasion and between the two trainers."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from poisonlab import models, train
from poisonlab.attacks import evasion
from poisonlab.train import objectives


def _classes(K=2, n=24, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(K, n, d, generator=g)
    return X, (X[..., 0] > 0.5).long() + (X[..., 1] > 0.7).long()


def _single(net):
    """A model as the objectives see it: K = 1 stacked models, forward(params, buffers, X (1, B, d))."""
    return lambda p, b, x: net(x[0])[None]


def test_pgd_with_one_full_step_is_fgsm():
    X, y = _classes()
    kw = dict(model="mlp", hidden=(5,), loss="ce", out_dim=3, epochs=2, lr=0.1, batch_size=6, seeds=[1, 2])
    pgd = train.train_batched(X, y, objective=objectives.PGD(0.1, 1, 0.1, objectives.ERM("ce"), box=None), **kw)
    fgsm = train.train_batched(X, y, objective=objectives.FGSM(0.1, objectives.ERM("ce")), **kw)
    assert torch.equal(pgd.history, fgsm.history)


def test_pgd_objective_attacks_the_point_attacks_evasion_finds():
    X, y = _classes(K=1)
    net = models.make_model("mlp", 4, 3, (6,), seed=0)
    ours = objectives.PGD(0.2, 5, 0.05, objectives.ERM("ce"))(_single(net), {}, {}, X, y)[0]
    adv = evasion.pgd(net, X[0], y[0], 0.2, steps=5, step_size=0.05)
    with torch.no_grad():
        ref = F.cross_entropy(net(adv), y[0], reduction="none")
    torch.testing.assert_close(ours.detach(), ref, rtol=0, atol=1e-6)
    clean = objectives.ERM("ce")(_single(net), {}, {}, X, y)[0]
    assert ours.mean() > clean.mean()  # the attack raises the loss


def test_pgd_objective_trains_the_same_in_both_trainers():
    X, y = _classes()
    objective = objectives.PGD(0.1, 3, 0.05, objectives.ERM("ce"))
    fit = train.train_batched(X, y, model="mlp", hidden=(5,), loss="ce", out_dim=3, epochs=2, lr=0.1, batch_size=6,
                              seeds=[3, 4], objective=objective)
    for k, seed in enumerate([3, 4]):
        net = models.make_model("mlp", 4, 3, (5,), seed=seed)
        train.train(net, X[k], y[k], loss="ce", epochs=2, lr=0.1, batch_size=6, seed=seed, objective=objective)
        for name, value in net.state_dict().items():
            torch.testing.assert_close(fit.state_dict(k)[name], value, rtol=0, atol=1e-6)


def test_tempered_is_the_loss_of_the_logits_over_T():
    X, y = _classes(K=1)
    net = models.make_model("mlp", 4, 3, (6,), seed=0)
    with torch.no_grad():
        for T in (1.0, 20.0):
            ours = objectives.Tempered(T)(_single(net), {}, {}, X, y)[0]
            torch.testing.assert_close(ours, F.cross_entropy(net(X[0]) / T, y[0], reduction="none"))
        assert torch.equal(objectives.Tempered(1.0)(_single(net), {}, {}, X, y),
                           objectives.ERM("ce")(_single(net), {}, {}, X, y))


def test_bad_parameters_are_named():
    for kw, name in (({"eps": -0.1, "steps": 1}, "eps"), ({"eps": 0.1, "steps": 0}, "steps"),
                     ({"eps": 0.1, "steps": 2, "step_size": 0.0}, "step_size")):
        with pytest.raises(ValueError, match=name):
            objectives.PGD(**kw)
    with pytest.raises(ValueError, match="T"):
        objectives.Tempered(0.0)
    assert objectives.PGD(0.3, 10).step_size == pytest.approx(0.075)  # 2.5 eps / steps
