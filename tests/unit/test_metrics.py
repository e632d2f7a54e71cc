"""Metrics against direct formulas and references, one model and a batch of K models."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from poisonlab import metrics

g = torch.Generator().manual_seed(0)


def test_mse_matches_mseloss_and_batches():
    pred, y = torch.randn(4, 30, 2, generator=g), torch.randn(30, 2, generator=g)
    torch.testing.assert_close(metrics.mse(pred[0], y), torch.nn.MSELoss()(pred[0], y))
    batch = metrics.mse(pred, y)
    assert batch.shape == (4,)
    torch.testing.assert_close(batch, torch.stack([torch.nn.MSELoss()(p, y) for p in pred]))
    ys = torch.randn(4, 30, 2, generator=g)  # per-model targets
    torch.testing.assert_close(metrics.mse(pred, ys), ((pred - ys) ** 2).mean((1, 2)))
    torch.testing.assert_close(metrics.mse(pred[:, :, 0], ys[:, :, 0], batched=True), ((pred - ys)[..., 0] ** 2).mean(1))
    with pytest.raises(ValueError, match="y"):
        metrics.mse(pred[0], y[:10])
    with pytest.raises(ValueError, match="pred"):
        metrics.mse(torch.full((30, 2), float("nan")), y)


def test_accuracy_binary_and_multiclass():
    y = torch.tensor([1, 0, 1, 1, 0])
    logits = torch.tensor([2.0, -1.0, -0.5, 3.0, 0.2])
    assert float(metrics.accuracy(logits, y)) == pytest.approx(0.6)
    assert float(metrics.accuracy(logits[:, None], y.float())) == pytest.approx(0.6)
    probs = torch.sigmoid(logits)  # thresholds 0 on logits and 0.5 on probabilities agree
    assert float(metrics.accuracy(probs, y, probs=True)) == pytest.approx(0.6)
    # outputs are logits unless told otherwise, even when they all lie in [0, 1]
    assert float(metrics.accuracy(probs, y)) == pytest.approx(float((y == 1).double().mean()))
    assert float(metrics.accuracy(torch.tensor([0.3, 0.2, 0.9, 0.8, 0.1]), y, probs=False)) == pytest.approx(0.6)
    multi = torch.randn(5, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0])
    assert float(metrics.accuracy(multi, labels)) == pytest.approx(float((multi.argmax(1) == labels).double().mean()))
    assert float(metrics.accuracy(multi.argmax(1), labels)) == float(metrics.accuracy(multi, labels))


def test_accuracy_batched():
    y = (torch.rand(40, generator=g) > 0.5).long()
    out = torch.randn(3, 40, generator=g)
    expected = torch.stack([metrics.accuracy(o, y) for o in out])
    torch.testing.assert_close(metrics.accuracy(out, y), expected)
    torch.testing.assert_close(metrics.accuracy(out[..., None], y), expected)
    multi = torch.randn(3, 40, 5, generator=g)
    labels = torch.randint(0, 5, (40,), generator=g)
    torch.testing.assert_close(metrics.accuracy(multi, labels), torch.stack([metrics.accuracy(m, labels) for m in multi]))
    with pytest.raises(ValueError, match="logits_or_probs"):
        metrics.accuracy(torch.randn(3, 39), y)


def test_parameter_errors():
    W, b = torch.randn(2, 3, generator=g), torch.randn(2, generator=g)
    W_hat, b_hat = torch.randn(5, 2, 3, generator=g), torch.randn(5, 2, generator=g)
    expected = torch.stack([torch.cat([(Wh - W).flatten(), bh - b]).norm() for Wh, bh in zip(W_hat, b_hat)])
    torch.testing.assert_close(metrics.param_error(W_hat, b_hat, W, b), expected)
    torch.testing.assert_close(metrics.param_error(W_hat[0], b_hat[0], W, b), expected[0])
    torch.testing.assert_close(metrics.weight_error(W_hat, W), (W_hat - W).flatten(1).norm(dim=1))
    torch.testing.assert_close(metrics.intercept_bias(b_hat, b), (b_hat - b).mean(1))
    assert metrics.intercept_bias(torch.tensor([1.5]), torch.tensor([1.0])).shape == ()
    # a scalar true intercept (binary data) against a batch of K intercepts, (K,) or (K, 1)
    torch.testing.assert_close(metrics.intercept_bias(torch.tensor([1.0, 2.0, 4.0]), 1.0), torch.tensor([0.0, 1.0, 3.0]))
    torch.testing.assert_close(metrics.intercept_bias(torch.tensor([[1.0], [2.0]]), 1.0), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="W_hat"):
        metrics.weight_error(torch.randn(4, 4), W)


def test_angle():
    w = torch.tensor([1.0, 0.0])
    cases = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [1.0, 1.0], [math.cos(1e-6), math.sin(1e-6)]])
    expected = torch.tensor([0.0, math.pi / 2, math.pi, math.pi / 4, 1e-6])
    got = metrics.angle(cases, w)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    # agrees with arccos of the cosine away from 0 and pi
    a, b = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    cos = (a @ b) / (a.norm(dim=1) * b.norm())
    torch.testing.assert_close(metrics.angle(a, b), torch.arccos(cos).float())
    # nn.Linear weights (K, 1, d) against w (d,)
    assert metrics.angle(a[:, None, :], b).shape == (6,)
    with pytest.raises(ValueError, match="w_hat"):
        metrics.angle(torch.zeros(2), w)


def test_weight_norm_and_confusion():
    assert float(metrics.weight_norm(torch.tensor([3.0, 4.0]))) == pytest.approx(5.0)
    torch.testing.assert_close(metrics.weight_norm(torch.tensor([[[3.0, 4.0]], [[0.0, 1.0]]])), torch.tensor([5.0, 1.0]))
    assert metrics.weight_norm(torch.ones(2, 2), batched=False).shape == ()
    y = torch.randint(0, 4, (60,), generator=g)
    pred = torch.randint(0, 4, (3, 60), generator=g)
    M = metrics.confusion(pred, y, 4)
    assert M.shape == (3, 4, 4)
    for k in range(3):
        assert np.array_equal(M[k].numpy(), confusion_matrix(y.numpy(), pred[k].numpy(), labels=range(4)))
    assert torch.equal(metrics.confusion(pred[0], y, 4), M[0])
    with pytest.raises(ValueError, match="labels"):
        metrics.confusion(pred, y, 3)
    with pytest.raises(ValueError, match="K"):
        metrics.confusion(pred, y, 0)


def test_flipped_fit_and_predict_labels():
    y_poisoned = torch.tensor([0, 1, 2, 2, 1])
    mask = torch.tensor([True, True, False, True, False])
    pred = torch.tensor([[0, 0, 2, 2, 1], [1, 1, 1, 1, 1]])
    torch.testing.assert_close(metrics.flipped_fit(pred, y_poisoned, mask), torch.tensor([2 / 3, 1 / 3]))
    assert torch.equal(metrics.predict_labels(torch.tensor([[0.1, 0.9], [2.0, -1.0]])), torch.tensor([1, 0]))
    assert torch.equal(metrics.predict_labels(torch.tensor([[-0.3], [0.4]])), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="mask"):
        metrics.flipped_fit(pred, y_poisoned, torch.zeros(5, dtype=torch.bool))
