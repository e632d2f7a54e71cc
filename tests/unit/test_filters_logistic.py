"""defenses.centroid_scores: the sphere and slab outlier scores of Steinhardt, Koh and Liang (2017)."""
import pytest
import torch

from poisonlab import defenses


def test_sphere_and_slab_scores_against_direct_formulas():
    X = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0], [5.0, 5.0], [7.0, 5.0], [6.0, -1.0]])
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    mu0, mu1 = X[:3].mean(0), X[3:].mean(0)
    mu = torch.stack([mu0 if c == 0 else mu1 for c in y.tolist()])
    sphere = defenses.centroid_scores(X, y, "sphere")
    assert torch.allclose(sphere.float(), (X - mu).norm(dim=1), atol=1e-5)
    u = (mu1 - mu0) / (mu1 - mu0).norm()
    assert torch.allclose(defenses.centroid_scores(X, y, "slab").float(), ((X - mu) @ u).abs(), atol=1e-5)


def test_a_flipped_far_point_is_the_sphere_outlier():
    gen = torch.Generator().manual_seed(0)
    X = torch.cat([torch.randn(50, 2, generator=gen) - 3, torch.randn(50, 2, generator=gen) + 3])
    y = torch.cat([torch.zeros(50), torch.ones(50)])
    y[0] = 1                                              # a point deep in class 0, labelled 1
    keep = defenses.loss_filter(defenses.centroid_scores(X, y, "sphere"), 0.01)
    assert not keep[0] and int(keep.sum()) == 99


@pytest.mark.parametrize("X, y, how, name", [
    (torch.zeros(3, 2), torch.tensor([0, 1, 1]), "ball", "how"),
    (torch.zeros(3, 2), torch.tensor([0, 1]), "sphere", "y"),
    (torch.zeros(3, 2), torch.tensor([1, 1, 1]), "sphere", "y"),
    (torch.zeros(3, 2), torch.tensor([0, 2, 1]), "slab", "y"),
    (torch.tensor([[0.0, float("nan")], [1.0, 1.0], [2.0, 2.0]]), torch.tensor([0, 1, 1]), "sphere", "X")])
def test_bad_input_is_named(X, y, how, name):
    with pytest.raises(ValueError, match=name):
        defenses.centroid_scores(X, y, how)
