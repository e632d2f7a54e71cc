"""The evasion chapter's stages: the architectures, the K models as one module, the cached training and the
minimal budgets, each against a direct computation."""
from __future__ import annotations

import math

import pytest
import torch

from poisonlab import train
from poisonlab.attacks import evasion
from poisonlab.chapters.evasion import experiment as ev_exp
from poisonlab.chapters.evasion import pipeline as P
from poisonlab.models import lipschitz


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("model", P.MODELS)
def test_architectures_count_their_parameters_and_give_ten_logits(model):
    spec = P.spec_of(model)
    net = spec.module(spec.init(0))
    assert sum(p.numel() for p in net.parameters()) == P.parameters(model)
    assert net.eval()(torch.rand(3, *P.IN_SHAPE)).shape == (3, P.CLASSES)
    seq = spec.sequential(spec.init(0)).eval()  # torch layers: what the Lipschitz bound reads
    x = torch.rand(4, *P.IN_SHAPE)
    assert torch.equal(seq(x), net(x))
    assert len(lipschitz.layer_norms(seq, P.IN_SHAPE, iters=3)) == {"linear": 1, "mlp": 2, "cnn": 3}[model.split("-")[0]]


def _stacked(model="mlp", K=3):
    spec = P.spec_of(model)
    params = spec.stacked_init([5, 6, 7][:K])
    return spec, params, P.Stacked(spec, params)


@pytest.mark.parametrize("model", ["linear", "cnn-dropout"])
def test_stacked_module_is_each_model_on_its_block(model):
    spec, params, stacked = _stacked(model)
    X = torch.rand(4, *P.IN_SHAPE)
    out = stacked(P.repeat(X, 3)).reshape(3, 4, -1)
    for k in range(3):
        single = spec.module({n: v[k] for n, v in params.items()}).eval()
        assert torch.allclose(out[k], single(X), atol=1e-6)
    with pytest.raises(ValueError, match="blocks"):
        stacked(torch.rand(4, *P.IN_SHAPE))


def test_attacks_on_the_stacked_module_are_each_models_own():
    """FGSM and PGD on K models at once equal the attacks on each model alone (each example's loss is its
    own model's; the summed gradient is unscaled)."""
    spec, params, stacked = _stacked("mlp")
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(5, *P.IN_SHAPE, generator=g), torch.randint(0, 10, (5,), generator=g)
    together = evasion.pgd(stacked, P.repeat(X, 3), y.repeat(3), 0.1, steps=3, step_size=0.03).reshape(3, 5, -1)
    for k in range(3):
        single = spec.module({n: v[k] for n, v in params.items()})
        alone = evasion.pgd(single, X, y, 0.1, steps=3, step_size=0.03).reshape(5, -1)
        assert torch.allclose(together[k], alone, atol=1e-6)


def test_fgsm_over_budgets_is_fgsm_at_each_budget():
    _, _, stacked = _stacked("mlp")
    X, y = torch.rand(6, *P.IN_SHAPE), torch.arange(6)
    rows, labels = P.repeat(X, 3), y.repeat(3)
    advs = evasion.fgsm_budgets(stacked, rows, labels, [0.0, 0.05, 0.2])
    for adv, eps in zip(advs, (0.0, 0.05, 0.2)):
        assert torch.equal(adv, evasion.fgsm(stacked, rows, labels, eps))


def _config(**kw):
    base = dict(model="linear", epochs=1, n_train=200, n_test=20, budget_images=5, lr=0.01, batch_size=50)
    return ev_exp.EXPERIMENT.resolve(**{**base, **kw})


def test_training_is_cached_and_reproducible():
    configs = [{**_config(), "seed": s} for s in (0, 1)]
    first = P.train_models(configs)
    again = P.train_models(configs)  # read back from the cache
    assert all(torch.equal(first.params[k], again.params[k]) for k in first.params)
    assert set(first.accuracy) == {"train", "val", "test"}
    assert not torch.equal(first.params["weight"][0], first.params["weight"][1])
    tempered = P.train_models([{**c, "temperature": 5.0} for c in configs])  # another setting, another model
    assert not torch.equal(tempered.params["weight"], first.params["weight"])


def test_training_objectives_follow_the_configuration():
    assert P.objective(_config()) is None
    assert isinstance(P.objective(_config(temperature=20.0)), train.Tempered)
    pgd = P.objective(_config(train_eps=0.1, train_steps=3))
    assert isinstance(pgd, train.PGD) and pgd.steps == 3 and pgd.base.names == ["ce"]


def test_minimal_budgets_are_the_smallest_that_fool():
    """Bisection's budget fools each image and a budget below it (by the bisection's width) does not."""
    configs = [{**_config(model="linear", epochs=2, n_train=500), "seed": 0}]
    found = ev_exp.min_budgets(configs)[0]
    net = P.train_models(configs).single(0).eval()
    X, y = P.split("test")
    X, y = X[:5], y[:5]
    width = P.MAX_BUDGET["inf"] / 2 ** ev_exp.BISECTION
    for i in range(5):
        if not math.isfinite(float(found[i])) or float(found[i]) <= width:
            continue
        at = evasion.fgsm(net, X[i:i + 1], y[i:i + 1], float(found[i]))
        below = evasion.fgsm(net, X[i:i + 1], y[i:i + 1], float(found[i]) - width)
        assert net(at).argmax(1) != y[i:i + 1]
        assert net(below).argmax(1) == y[i:i + 1]


@pytest.mark.parametrize("bad, match", [
    (dict(attack="fgsm", steps=5), "steps"),
    (dict(attack="fgsm", step_size=0.1), "step_size"),
    (dict(attack="lp-descent", restarts=3), "restarts"),
    (dict(train_steps=3), "train_steps"),
    (dict(train_eps=0.1, temperature=5.0), "temperature"),
    (dict(budget_images=50, n_test=20), "budget_images"),
    (dict(n_train=60_000), "n_train"),
    (dict(n_test=20_000), "n_test"),
])
def test_parameters_that_would_be_ignored_or_out_of_range_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        _config(**bad)
