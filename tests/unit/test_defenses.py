"""Filter defences: exact drop counts, planted label noise, agreement with a brute-force reference."""
import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from poisonlab import attacks, data, defenses


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_loss_filter_drops_the_largest_scores(fraction):
    scores = torch.randn(40, generator=torch.Generator().manual_seed(0))
    keep = defenses.loss_filter(scores, fraction)
    k = round(fraction * 40)
    assert keep.dtype == torch.bool and int((~keep).sum()) == k
    if 0 < k < 40:
        assert scores[~keep].min() > scores[keep].max()


def test_loss_filter_ties_and_batches():
    keep = defenses.loss_filter(torch.tensor([1.0, 5.0, 5.0, 5.0, 0.0]), 0.4)
    assert keep.tolist() == [True, False, False, True, True]  # ties: the earlier index is dropped
    S = torch.randn(3, 20, generator=torch.Generator().manual_seed(1))
    K = defenses.loss_filter(S, 0.2)
    assert K.shape == (3, 20)
    for s, k in zip(S, K):
        assert torch.equal(k, defenses.loss_filter(s, 0.2))
    with pytest.raises(ValueError, match="fraction"):
        defenses.loss_filter(S, 1.5)
    with pytest.raises(ValueError, match="scores"):
        defenses.loss_filter(torch.tensor([1.0, float("nan")]), 0.5)


def test_loss_filter_removes_flipped_points_under_the_true_model():
    # the loss of the TRUE model is large only where the label was flipped
    ds = data.make_binary(300, 2, seed=0)
    p = attacks.flip_binary(ds, 0.1, seed=1)
    margin = (p.X_train @ ds.params["w"] + ds.params["b"])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(10 * margin, p.y_train, reduction="none")
    keep = defenses.loss_filter(loss, 0.1)
    assert torch.equal(~keep, p.mask)


def test_knn_filter_drops_a_planted_mislabelled_point():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(30, 2, generator=g) * 0.3 + torch.tensor([-2.0, 0.0])
    B = torch.randn(30, 2, generator=g) * 0.3 + torch.tensor([2.0, 0.0])
    X = torch.cat([A, B])
    y = torch.cat([torch.zeros(30), torch.ones(30)])
    y[5] = 1.0  # a mislabelled point inside cluster A
    keep = defenses.knn_filter(X, y, k=5)
    assert not keep[5] and int((~keep).sum()) == 1
    # multiclass labels, image-shaped inputs: the same rule on flattened rows
    ym = y.long() * 3
    assert torch.equal(defenses.knn_filter(X.reshape(60, 1, 2, 1), ym, k=5), keep)


def test_knn_disagreement_matches_brute_force():
    X = torch.randn(200, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = torch.randint(0, 3, (200,), generator=torch.Generator().manual_seed(3))
    got = defenses.knn_disagreement(X, y, k=7, chunk=64)  # several chunks
    nn_ = NearestNeighbors(n_neighbors=8).fit(X.numpy())
    idx = nn_.kneighbors(X.numpy(), return_distance=False)[:, 1:]  # drop the point itself
    expected = (y.numpy()[idx] != y.numpy()[:, None]).mean(1)
    np.testing.assert_allclose(got.numpy(), expected)
    keep = defenses.knn_filter(X, y, k=7, threshold=0.5)
    assert torch.equal(keep, torch.from_numpy(expected <= 0.5))


def test_knn_filter_batches_and_bad_input():
    Xs = torch.randn(2, 50, 2, generator=torch.Generator().manual_seed(4))
    ys = (Xs[..., 0] > 0).long()
    keep = defenses.knn_filter(Xs, ys, k=4)
    assert keep.shape == (2, 50)
    assert torch.equal(keep[1], defenses.knn_filter(Xs[1], ys[1], k=4))
    with pytest.raises(ValueError, match="k"):
        defenses.knn_filter(Xs[0], ys[0], k=50)
    with pytest.raises(ValueError, match="k"):
        defenses.knn_filter(Xs[0], ys[0], k=0)
    with pytest.raises(ValueError, match="threshold"):
        defenses.knn_filter(Xs[0], ys[0], threshold=-0.1)
    with pytest.raises(ValueError, match="y"):
        defenses.knn_filter(Xs[0], ys[0][:10])


def test_filter_dataset():
    ds = attacks.flip_binary(data.make_binary(100, 2, seed=0), 0.2, seed=0)
    keep = ~ds.mask
    kept = defenses.filter_dataset(ds, keep)
    assert kept.n_train == 64 and not kept.mask.any()
    assert torch.equal(kept.X_test, ds.X_test)
    with pytest.raises(ValueError, match="keep"):
        defenses.filter_dataset(ds, keep[:5])


def test_filter_masks_matches_the_filters_it_combines():
    g = torch.Generator().manual_seed(3)
    sets = [(torch.randn(30, 4, generator=g), torch.randint(0, 3, (30,), generator=g)) for _ in range(3)]
    fractions = [0.2, 0.0, 0.5]  # the second set has nothing to drop: kept whole and not scored
    asked = []

    def losses(idx):
        asked.append(list(idx))
        return [sets[i][0].sum(1) for i in idx]
    keeps = defenses.filter_masks(sets, "loss-filter", fractions, losses=losses)
    assert asked == [[0, 2]] and bool(keeps[1].all())
    for (X, _), f, keep in zip(sets, fractions, keeps):
        assert torch.equal(keep, defenses.loss_filter(X.sum(1), f))
    keeps = defenses.filter_masks(sets, "knn-filter", fractions, k=5)
    for (X, y), f, keep in zip(sets, fractions, keeps):
        assert torch.equal(keep, defenses.loss_filter(defenses.knn_disagreement(X, y, 5), f))
    keeps = defenses.filter_masks(sets, "knn-filter", fractions, k=5, threshold=0.5)
    for (X, y), keep in zip(sets, keeps):
        assert torch.equal(keep, defenses.knn_filter(X, y, 5, 0.5))
    assert all(bool(k.all()) for k in defenses.filter_masks(sets, "loss-filter", [0.0] * 3, losses=None))


def test_discarded_counts_clean_and_poisoned_apart():
    poisoned = torch.tensor([True, True, False, False, False, False])
    keep = torch.tensor([False, True, False, True, True, True])
    assert defenses.discarded(keep, poisoned) == (0.25, 0.5)
    assert defenses.discarded(keep, torch.zeros(6, dtype=torch.bool)) == (2 / 6, 0.0)
