"""Lipschitz bounds (models.lipschitz): each layer's norm against its matrix's largest singular value, and the
bound against what attacks achieve."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from poisonlab import models
from poisonlab.attacks import evasion
from poisonlab.models import lipschitz


def _conv_matrix(conv: nn.Conv2d, shape) -> torch.Tensor:
    """The convolution (no bias) as an explicit matrix: its action on each basis image."""
    n = math.prod(shape)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(basis, conv.weight.double(), None, conv.stride, conv.padding)
    return out.reshape(n, -1).T


@pytest.mark.parametrize("padding, stride", [(1, 1), (0, 1), (1, 2)])
def test_conv_norm_is_the_largest_singular_value_of_its_matrix(padding, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=padding, stride=stride)
    shape = (2, 6, 6)
    ref = float(torch.linalg.svdvals(_conv_matrix(conv, shape))[0])
    assert lipschitz.spectral_norm(conv, shape) == pytest.approx(ref, rel=1e-6)


def test_linear_norm_and_bad_input():
    torch.manual_seed(1)
    lin = nn.Linear(5, 4)
    assert lipschitz.spectral_norm(lin) == pytest.approx(float(torch.linalg.svdvals(lin.weight.detach().double())[0]))
    with pytest.raises(ValueError, match="layer"):
        lipschitz.spectral_norm(nn.ReLU())
    with pytest.raises(ValueError, match="in_shape"):
        lipschitz.spectral_norm(nn.Conv2d(1, 1, 3))
    with pytest.raises(ValueError, match="iters"):
        lipschitz.spectral_norm(lin, iters=0)


@pytest.mark.parametrize("kind, hidden", [("mlp", (16, 8)), ("cnn", (4, 6))])
def test_the_bound_holds_for_attacked_inputs_and_names_every_layer(kind, hidden):
    shape = (1, 8, 8)
    net = models.make_model(kind, 64, 10, hidden, seed=0, in_shape=shape)
    norms = lipschitz.layer_norms(net, shape)
    expected = 3 if kind == "mlp" else 4  # three linear maps; two convolutions, the pool and the head
    assert len(norms) == expected
    bound = lipschitz.lipschitz_bound(net, shape)
    g = torch.Generator().manual_seed(2)
    X = torch.rand(32, *shape, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    adv = evasion.pgd(net, X, y, 0.5, steps=10, step_size=0.1, norm=2)
    observed = lipschitz.sensitivity(net, X, adv)
    assert (observed <= bound * (1 + 1e-6)).all() and observed.max() > 0
    with pytest.raises(ValueError, match="X_adv"):
        lipschitz.sensitivity(net, X, X)
