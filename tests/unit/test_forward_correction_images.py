"""Patrini et al.'s forward loss correction: train.losses.forward_corrected_ce against the direct formula
-log(sum_i softmax(z)_i T[i, y]), and defenses.anchor_flip_matrix on posteriors with known anchors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from poisonlab import defenses
from poisonlab.train import losses


def _stochastic(K, seed):
    g = torch.Generator().manual_seed(seed)
    T = torch.rand(K, K, generator=g, dtype=torch.float64) + torch.eye(K, dtype=torch.float64) * 3
    return T / T.sum(1, keepdim=True)


def test_forward_corrected_ce_is_the_direct_formula():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 7, 4, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 4, (2, 7), generator=g)
    T = _stochastic(4, 1)
    got = losses.forward_corrected_ce(z, y, T)
    p = np.exp(z.numpy()) / np.exp(z.numpy()).sum(-1, keepdims=True)
    noisy = p @ T.numpy()                          # P(noisy = j | x) = sum_i p_i T[i, j]
    want = -np.log(np.take_along_axis(noisy, y.numpy()[..., None], -1)[..., 0])
    assert got.shape == (2, 7)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_identity_flip_matrix_gives_the_cross_entropy_and_gradients_flow():
    z = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 1, 0])
    got = losses.forward_corrected_ce(z, y, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(got, losses.per_example("ce", z, y))
    got.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_zero_entries_of_T_are_allowed():
    T = torch.tensor([[1.0, 0.0], [0.3, 0.7]], dtype=torch.float64)
    z = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    p = torch.softmax(z, -1)
    got = losses.forward_corrected_ce(z, torch.tensor([1]), T)
    assert float(got) == pytest.approx(-float(torch.log(p[0, 1] * 0.7)))


@pytest.mark.parametrize("T, match", [(torch.eye(4), "C"), (torch.full((3, 3), 0.5), "C"),
                                      (torch.tensor([[1.5, -0.5], [0.0, 1.0]]), "C")])
def test_forward_corrected_ce_refuses_a_bad_flip_matrix(T, match):
    z = torch.zeros(4, 3) if T.shape[0] != 2 else torch.zeros(4, 2)
    with pytest.raises(ValueError, match=match):
        losses.forward_corrected_ce(z, torch.zeros(4, dtype=torch.long), T)


def test_forward_corrected_ce_refuses_bad_targets_and_logits():
    with pytest.raises(ValueError, match="target"):
        losses.forward_corrected_ce(torch.zeros(4, 3), torch.full((4,), 3), torch.eye(3))
    with pytest.raises(ValueError, match="logits"):
        losses.forward_corrected_ce(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long),
                                    torch.eye(3))


def test_anchor_flip_matrix_recovers_T_from_anchor_points():
    # posteriors of the noisy label: clean one-hot rows pushed through T (the anchors), plus mixtures
    T = _stochastic(3, 2)
    clean = torch.distributions.Dirichlet(torch.full((3,), 0.5, dtype=torch.float64)).sample((200,))
    P = torch.cat([clean @ T, T])                  # the last three rows are the anchors e_i T
    got = defenses.anchor_flip_matrix(P, quantile=1.0)
    torch.testing.assert_close(got, T)


def test_anchor_flip_matrix_refuses_bad_input():
    with pytest.raises(ValueError, match="noisy_probs"):
        defenses.anchor_flip_matrix(torch.ones(5, 3))
    with pytest.raises(ValueError, match="noisy_probs"):
        defenses.anchor_flip_matrix(torch.ones(5))
    with pytest.raises(ValueError, match="quantile"):
        defenses.anchor_flip_matrix(torch.full((5, 2), 0.5), quantile=1.5)
