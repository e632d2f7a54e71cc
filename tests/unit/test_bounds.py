"""Interval bound propagation (models.bounds): sound on sampled points of the ball, exact where it must be (no
perturbation, one Linear layer), the folded margin at least the naive one, and the same intervals as ART's."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from boxes import forward_many, images, mlp, others, samples
from poisonlab.models import bounds
from poisonlab.models.spec import Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, Spec, Unflatten

EPS = 0.05
# float32 bounds and float32 forward passes add the same numbers in different orders
TOL = 1e-5


def cnn() -> Spec:
    return Spec([Unflatten((1, 28, 28)), Conv2d(1, 4, 3, padding=1, name="conv1"), ReLU(), MaxPool2d(2),
                 Conv2d(4, 8, 3, padding=1, name="conv2"), ReLU(), MaxPool2d(2), Flatten(),
                 Linear(8 * 7 * 7, 10, name="fc")])


@pytest.mark.parametrize("make", [mlp, cnn])
def test_sampled_logits_and_margins_lie_within_the_bounds(make):
    spec = make()
    params = spec.init(0)
    x = images(6, 1)
    y = torch.arange(6) % 10
    lo, hi = bounds.logit_bounds(spec, params, x, EPS)
    margins = bounds.margin_bounds(spec, params, x, y, EPS)
    z = forward_many(spec, params, samples(*bounds.ball(x, EPS), 600, 2))
    assert (z >= lo - TOL).all() and (z <= hi + TOL).all()
    sampled = z.gather(2, y.view(1, -1, 1).expand(z.shape[0], -1, 1)) - z
    assert (sampled >= margins - TOL).all()
    assert (margins[~others(y, 10)] == 0).all()


@pytest.mark.parametrize("make", [mlp, cnn])
def test_folded_margin_is_at_least_the_difference_of_logit_bounds(make):
    spec = make()
    params = spec.init(3)
    x = images(8, 4)
    y = torch.arange(8) % 10
    lo, hi = bounds.logit_bounds(spec, params, x, EPS)
    naive = lo.gather(1, y.unsqueeze(1)) - hi
    margins = bounds.margin_bounds(spec, params, x, y, EPS)
    mask = others(y, 10)
    # (W_y - W_k) c - |W_y - W_k| r >= (W_y c - |W_y| r) - (W_k c + |W_k| r), strictly where signs agree
    assert (margins[mask] > naive[mask]).all()
    assert bounds.worst_logits(spec, params, x, y, EPS, elide=False).gather(1, y.unsqueeze(1)).squeeze(1).equal(
        lo.gather(1, y.unsqueeze(1)).squeeze(1))
    assert torch.equal(bounds.worst_logits(spec, params, x, y, EPS), -margins)


@pytest.mark.parametrize("make", [mlp, cnn])
def test_zero_radius_gives_the_logits(make):
    spec = make()
    params = spec.init(5)
    x = images(4, 6)
    y = torch.tensor([0, 3, 7, 9])
    z = spec.forward(params, x)
    lo, hi = bounds.logit_bounds(spec, params, x, 0.0)
    torch.testing.assert_close(lo, z, atol=1e-6, rtol=0)
    torch.testing.assert_close(hi, z, atol=1e-6, rtol=0)
    torch.testing.assert_close(bounds.margin_bounds(spec, params, x, y, 0.0), z.gather(1, y.unsqueeze(1)) - z,
                               atol=TOL, rtol=0)
    assert bounds.certified(bounds.margin_bounds(spec, params, x, z.argmax(1), 0.0), z.argmax(1)).all()


def test_one_linear_layer_bounds_are_attained_at_corners():
    spec = Spec([Flatten(), Linear(784, 10, name="fc")])
    params = spec.init(7)
    x = images(3, 8)
    lo, hi = bounds.ball(x, EPS)
    low, high = bounds.logit_bounds(spec, params, x, EPS)
    W = params["fc.weight"].view(10, 1, 1, 28, 28)
    at_low = torch.where(W > 0, lo, hi)  # (10, B, ...): the corner minimising logit k
    at_high = torch.where(W > 0, hi, lo)
    z_low = forward_many(spec, params, at_low)  # (10, B, 10)
    z_high = forward_many(spec, params, at_high)
    k = torch.arange(10)
    torch.testing.assert_close(z_low[k, :, k].T, low, atol=TOL, rtol=0)
    torch.testing.assert_close(z_high[k, :, k].T, high, atol=TOL, rtol=0)


def test_ball_clips_and_takes_one_radius_per_row():
    x = torch.tensor([[0.0, 0.5, 1.0], [0.02, 0.5, 0.99], [0.3, 0.3, 0.3]])
    lo, hi = bounds.ball(x, torch.tensor([0.0, 0.1, 0.2]))
    torch.testing.assert_close(lo, torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.4, 0.89], [0.1, 0.1, 0.1]]))
    torch.testing.assert_close(hi, torch.tensor([[0.0, 0.5, 1.0], [0.12, 0.6, 1.0], [0.5, 0.5, 0.5]]))
    lo, hi = bounds.ball(x, 2.0, box=None)
    torch.testing.assert_close(hi - lo, torch.full_like(x, 4.0))


class _ArtNet(nn.Module):
    """The spec's layers for ART: its converter hooks the direct children and accepts only Conv2d, Linear and
    ReLU modules, so the reshaping layers run inside forward without being children (ART infers the flatten
    between the convolutions and the dense layer itself)."""

    def __init__(self, spec: Spec, params: dict):
        super().__init__()
        self.steps = []
        for i, child in enumerate(spec.sequential(params)):
            layer = getattr(child, "layer", None)
            if isinstance(layer, ReLU):
                child = nn.ReLU()
            if isinstance(child, (nn.Linear, nn.Conv2d, nn.ReLU)):
                self.add_module(f"m{i}", child)
            self.steps.append(child)

    def forward(self, x):
        for step in self.steps:
            x = step(x)
        return x


def art_cnn() -> Spec:
    """A CNN within ART's support (no pooling: strided convolutions)."""
    return Spec([Unflatten((1, 28, 28)), Conv2d(1, 4, 3, stride=2, padding=1, name="conv1"), ReLU(),
                 Conv2d(4, 8, 3, stride=2, padding=1, name="conv2"), ReLU(), Flatten(),
                 Linear(8 * 7 * 7, 10, name="fc")])


@pytest.mark.parametrize("make, shape", [(mlp, (784,)), (art_cnn, (1, 28, 28))])
def test_interval_matches_art(make, shape):
    from art.estimators.certification.interval import PyTorchIBPClassifier

    spec = make()
    params = spec.init(11)
    x = images(5, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ART warns that it infers the reshape before the dense layer
        art = PyTorchIBPClassifier(model=_ArtNet(spec, params), loss=nn.CrossEntropyLoss(), input_shape=shape,
                                   nb_classes=10, device_type="cpu")
    x_art = x.reshape(len(x), *shape).numpy()
    # ART's default concrete_to_interval clips x -/+ eps to `limits` exactly as bounds.ball clips to the box
    out = art.predict_intervals(x_art, bounds=EPS, limits=[0.0, 1.0])  # (B, 2, classes): lower, upper
    lo, hi = bounds.logit_bounds(spec, params, x, EPS)
    np.testing.assert_allclose(out[:, 0], lo.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(out[:, 1], hi.numpy(), atol=1e-5, rtol=0)
    assert float((hi - lo).min()) > 1e-2  # the intervals compared are not degenerate


class _Square(Layer):
    def __call__(self, params, x, training):
        return x * x


def test_bad_input():
    spec = mlp()
    params = spec.init(0)
    x = images(2, 0)
    with pytest.raises(ValueError, match="eps"):
        bounds.logit_bounds(spec, params, x, -0.1)
    with pytest.raises(ValueError, match="eps"):
        bounds.ball(x, float("nan"))
    with pytest.raises(ValueError, match="eps"):
        bounds.ball(x, torch.tensor([0.1, -0.1]))
    odd = Spec([Flatten(), Linear(784, 5, name="fc"), _Square(), Linear(5, 10, name="out")])
    with pytest.raises(ValueError, match="model has a _Square layer"):
        bounds.logit_bounds(odd, odd.init(0), x, EPS)
    headless = Spec([Flatten(), Linear(784, 10, name="fc"), ReLU()])
    with pytest.raises(ValueError, match="Linear"):
        bounds.margin_bounds(headless, headless.init(0), x, torch.tensor([0, 1]), EPS)
