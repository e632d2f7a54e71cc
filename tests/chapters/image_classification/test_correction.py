"""The image chapter's additions for issue #12: the Bayes learner's bound at alpha = 1, the attacks' flip
matrices, and forward-corrected softmax regression (which can fail: a wrong T must not help)."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from poisonlab.chapters.image_classification import correction as C, theory as T


def test_all_flipped_posterior_is_decreasing_in_the_clean_one():
    d = T.all_flipped_posterior()
    assert sp.simplify(d["at_one"] - (1 - d["p"]) / (d["K"] - 1)) == 0
    assert sp.simplify(d["slope"] + 1 / (d["K"] - 1)) == 0


def test_bayes_learner_at_alpha_one_stays_within_the_bound():
    rng = np.random.default_rng(0)
    for conc in (0.1, 1.0, 10.0):
        out = T.bayes_all_flipped(rng.dirichlet(np.full(10, conc), 2000))
        assert 0 <= out["accuracy"] <= out["bound"]
    # equality when the K - 1 other posteriors are equal
    p = np.full((1, 4), 0.1)
    p[0, 0] = 0.7
    out = T.bayes_all_flipped(p)
    assert out["accuracy"] == pytest.approx(out["bound"])
    with pytest.raises(ValueError, match="posteriors"):
        T.bayes_all_flipped(np.ones((3, 4)))


def test_flip_matrices_are_stochastic_and_move_the_expected_mass():
    shares = np.full(10, 0.1)
    for flip in ("random", "target-class", "pair"):
        M = T.flip_matrix(flip, 0.2, shares)
        np.testing.assert_allclose(M.sum(1), 1.0)
        # the flipped fraction of the training set: sum_i pi_i (1 - T_ii) = alpha
        assert float(shares @ (1 - np.diag(M))) == pytest.approx(0.2)
    assert T.flip_matrix("target-class", 0.45, shares)[3, 0] == pytest.approx(0.5)
    assert T.flip_matrix("pair", 0.1, shares)[1, 7] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="alpha"):
        T.flip_matrix("pair", 0.3, shares)
    with pytest.raises(ValueError, match="flip"):
        T.flip_matrix("max-loss", 0.1, shares)
    with pytest.raises(ValueError, match="shares"):
        T.flip_matrix("random", 0.1, [0.5, 0.6])


def test_train_softmax_with_identity_T_is_plain_training_and_refuses_bad_input():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 60, 3, generator=g, dtype=torch.float64)
    Y = (X[..., 0] > 0).long()
    kw = dict(epochs=3, lr=0.5, batch_size=16, seeds=[1, 2])
    plain = C.train_softmax(X, Y, 2, **kw)
    eye = C.train_softmax(X, Y, 2, torch.eye(2, dtype=torch.float64).expand(2, 2, 2), **kw)
    torch.testing.assert_close(plain, eye)
    with pytest.raises(ValueError, match="Y"):
        C.train_softmax(X, Y[:, :10], 2, **kw)
    with pytest.raises(ValueError, match="seeds"):
        C.train_softmax(X, Y, 2, epochs=3, lr=0.5, batch_size=16, seeds=[1])
    with pytest.raises(ValueError, match="lr"):
        C.train_softmax(X, Y, 2, epochs=3, lr=-1.0, batch_size=16, seeds=[1, 2])


def test_forward_correction_with_the_known_T_recovers_a_swapped_pair_and_anchors_cannot():
    runs = C.correction_runs(("pair",), [0.2], range(2), epochs=10, lr=0.5, batch_size=64)
    mean = runs.groupby("correction").test_accuracy.mean()
    # past half the pair swapped, the known C undoes the swap; anchors of the noisy model see no swap
    assert mean["known C"] > mean["none"] + 0.1
    assert abs(mean["anchor C"] - mean["none"]) < 0.05
