"""The certified-training chapter's parts: the IBP objective and its ramp, the architectures, the sampling rival
and the two-input study's bounds against the exact worst case."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from poisonlab import train
from poisonlab.chapters.certified_training import studies, theory
from poisonlab.chapters.certified_training.pipeline import spec_of
from poisonlab.models import bounds
from poisonlab.train import losses


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


def _stacked(spec, K=2):
    return spec.stacked_init(list(range(K)))


def _forward(spec):
    vm = torch.func.vmap(lambda p, x: spec.forward(p, x))
    return lambda p, b, x: vm(p, x)


@pytest.mark.parametrize("elide", [True, False])
def test_robust_cross_entropy_at_eps_zero_is_the_cross_entropy(elide):
    spec = spec_of("mlp4", depth=2, width=30)
    params = _stacked(spec)
    g = torch.Generator().manual_seed(0)
    X, Y = torch.rand(2, 16, 784, generator=g), torch.randint(0, 10, (2, 16), generator=g)
    robust = train.IBP(spec, 0.0, elide=elide)(_forward(spec), params, None, X, Y)
    plain = losses._per_example("ce", _forward(spec)(params, None, X), Y)
    torch.testing.assert_close(robust, plain, rtol=1e-5, atol=1e-6)
    # and a positive budget raises every example's loss: the worst case is at least the clean one
    assert bool((train.IBP(spec, 0.05, elide=elide)(_forward(spec), params, None, X, Y) >= plain - 1e-6).all())


def test_elided_margins_are_never_looser_than_the_naive_logits():
    spec = spec_of("mlp4", depth=2, width=30)
    p = spec.init(3)
    X, y = torch.rand(32, 784, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 10
    naive = bounds.worst_logits(spec, p, X, y, 0.02, elide=False)
    naive = naive - naive.gather(1, y[:, None])  # upper bounds of z_k - z_y from the naive logits
    elided = bounds.worst_logits(spec, p, X, y, 0.02, elide=True)
    assert bool((elided <= naive + 1e-5).all()) and bool((elided < naive - 1e-3).any())


def test_ramp_follows_its_schedule_exactly():
    ibp = train.IBP(spec_of("mlp4"), 0.3)
    ramp = train.Ramp(ibp, 0.1, warmup=4, ramp=5)
    assert ibp.eps == 0.0  # set for the first step at construction
    values = [ramp.at(t) for t in range(12)]
    assert values[:4] == [0.0] * 4
    assert values[4:9] == [0.1 * min(1.0, k / 5) for k in range(1, 6)]  # the documented formula, term by term
    assert values[9:] == [0.1] * 3
    ramp(6, None)
    assert ibp.eps == ramp.at(6)
    assert train.Ramp(ibp, 0.1, warmup=2, ramp=0).at(2) == 0.1


def test_ramp_reaches_its_budget_in_training():
    spec = spec_of("mlp4", depth=1, width=10)
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(1, 64, 784, generator=g), torch.randint(0, 10, (1, 64), generator=g)
    ibp = train.IBP(spec, 0.05)
    seen = []
    ramp = train.Ramp(ibp, 0.05, warmup=2, ramp=4)
    train.train_batched(X, y, model=spec, loss="ce", epochs=2, lr=1e-3, batch_size=16, seeds=[0], out_dim=10,
                        optimizer=train.Adam(), objective=ibp, step_hook=lambda t, p: (ramp(t, p), seen.append(ibp.eps)))
    assert seen == [ramp.at(t) for t in range(1, 9)] and seen[-1] == 0.05


@pytest.mark.parametrize("bad", [dict(eps=-1.0), dict(eps=0.1, kappa=1.5), dict(eps=0.1, kappa=-0.1)])
def test_ibp_refuses_bad_input(bad):
    with pytest.raises(ValueError, match="eps|kappa"):
        train.IBP(spec_of("mlp4"), **bad)


def test_ramp_refuses_negative_lengths():
    with pytest.raises(ValueError, match="warmup"):
        train.Ramp(train.IBP(spec_of("mlp4"), 0.1), 0.1, warmup=-1, ramp=2)


def test_the_source_architecture():
    shapes = spec_of("mlp4").shapes()
    assert [s for k, s in shapes.items() if k.endswith("weight")] == [(100, 784), (100, 100), (100, 100), (10, 100)]
    assert sum(math.prod(s) for s in shapes.values()) == 99_710


def test_theory():
    assert all(a and b for a, b in theory.affine_interval().values())
    assert theory.robust_ce_at_zero() == 0


def test_a_certified_image_is_never_broken_by_sampling():
    """The rival (random search) declares robust every image IBP certifies: a certificate covers every sample."""
    spec = spec_of("mlp4", depth=1, width=20)
    params = _stacked(spec, 2)

    class Models:
        K = 2

        def module(self):
            from poisonlab.chapters.evasion.pipeline import Stacked
            return Stacked(spec, params)

    X, _ = studies.test_images(100)
    y = torch.stack([spec.forward({k: v[0] for k, v in params.items()}, X).argmax(1)])[0]
    cert = bounds.certified(bounds.margin_bounds(spec, {k: v[0] for k, v in params.items()}, X, y, 0.002), y)
    ok = studies.sampled_robust(Models(), X, y, 0.002, samples=20, seed=0)[0]
    assert bool(cert.any()) and bool((ok | ~cert).all())


def test_toy_bounds_lie_below_the_exact_worst_case():
    rows = studies.toy_margins("quick")
    assert len(rows) > 0
    for bound in ("ibp", "crown"):
        assert bool((rows[bound] <= rows.exact + 1e-5).all()), bound
    # IBP training makes IBP tighter on average (the chapter's claim, here in the quick profile's networks)
    loose = studies.toy_looseness("quick").set_index(["training", "bound"]).looseness
    assert loose[("ibp", "ibp")] < loose[("normal", "ibp")]
    assert np.isfinite(loose.to_numpy()).all()
