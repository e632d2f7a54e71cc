"""losses.unbiased_bce (Natarajan et al. 2013) against its formula and its defining property."""
import math

import pytest
import torch

from poisonlab.train import losses


def _bce(t, y):
    return math.log1p(math.exp(-t)) if y == 1 else math.log1p(math.exp(t))


@pytest.mark.parametrize("rho0, rho1", [(0.2, 0.2), (0.1, 0.3), (0.0, 0.4)])
def test_unbiased_bce_is_the_formula(rho0, rho1):
    t = torch.tensor([-2.0, -0.3, 0.0, 0.7, 3.0], dtype=torch.float64)
    for y in (0, 1):
        got = losses.unbiased_bce(t, torch.full_like(t, y), rho0, rho1)
        rho_y, rho_other = (rho1, rho0) if y == 1 else (rho0, rho1)
        want = [((1 - rho_other) * _bce(float(ti), y) - rho_y * _bce(float(ti), 1 - y)) / (1 - rho0 - rho1)
                for ti in t]
        assert got.tolist() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("rho0, rho1", [(0.2, 0.2), (0.1, 0.35)])
def test_its_expectation_over_the_flips_is_the_clean_loss(rho0, rho1):
    t = torch.linspace(-4, 4, 9, dtype=torch.float64)
    for y, rho in ((1, rho1), (0, rho0)):   # observed y kept w.p. 1 - rho, flipped w.p. rho
        expected = (1 - rho) * losses.unbiased_bce(t, torch.full_like(t, y), rho0, rho1) \
            + rho * losses.unbiased_bce(t, torch.full_like(t, 1 - y), rho0, rho1)
        clean = losses.per_example("bce", t, torch.full_like(t, y))
        assert torch.allclose(expected, clean, atol=1e-12)


def test_zero_rates_give_the_bce_and_shapes_follow_per_example():
    pred = torch.randn(3, 5, 1, generator=torch.Generator().manual_seed(0))
    y = (torch.rand(3, 5, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    assert torch.allclose(losses.unbiased_bce(pred, y, 0.0), losses.per_example("bce", pred, y))
    rho = torch.tensor([0.1, 0.2, 0.3]).reshape(3, 1, 1)      # one rate per model, broadcast
    assert losses.unbiased_bce(pred, y, rho).shape == (3, 5)


@pytest.mark.parametrize("rho0, rho1, name", [(-0.1, None, "rho0"), (1.0, None, "rho0"), (0.2, math.nan, "rho1"),
                                              (0.5, 0.5, "rho0 \\+ rho1"), (0.6, None, "rho0 \\+ rho1")])
def test_bad_rates_name_the_parameter(rho0, rho1, name):
    with pytest.raises(ValueError, match=name):
        losses.unbiased_bce(torch.zeros(3), torch.ones(3), rho0, rho1)


def test_bad_targets_are_refused():
    with pytest.raises(ValueError, match="target"):
        losses.unbiased_bce(torch.zeros(3, 1), torch.ones(4), 0.1)
