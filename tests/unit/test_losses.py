"""Losses against torch.nn (reduction="mean") and their gradients against autograd."""
import pytest
import torch
from torch import nn

from poisonlab.train import losses

REAL = ("mse", "l1", "huber", "bce")


def _data(name, shape=(7, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = 2 * torch.randn(*shape, generator=g, dtype=torch.float64)
    if name == "bce":
        target = (torch.rand(*shape, generator=g, dtype=torch.float64) > 0.5).to(torch.float64)
    elif name == "ce":
        target = torch.randint(0, shape[-1], shape[:-1], generator=g)
    else:
        target = 2 * torch.randn(*shape, generator=g, dtype=torch.float64)
    return pred, target


REFERENCE = {
    "mse": lambda d: nn.MSELoss(), "l1": lambda d: nn.L1Loss(), "huber": lambda d: nn.HuberLoss(delta=d),
    "bce": lambda d: nn.BCEWithLogitsLoss(), "ce": lambda d: nn.CrossEntropyLoss(),
}


@pytest.mark.parametrize("name", losses.LOSSES)
@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_mean_of_per_example_is_torch_nn_loss(name, delta):
    pred, target = _data(name, (9, 4))
    per = losses.per_example(name, pred, target, delta)
    assert per.shape == (9,)
    # float64: agreement to rounding error
    assert torch.allclose(per.mean(), REFERENCE[name](delta)(pred, target), rtol=1e-12, atol=1e-12)
    assert torch.allclose(per.mean(), losses.module(name, delta)(pred, target), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", losses.LOSSES)
def test_grad_pred_is_autograd(name):
    pred, target = _data(name, (2, 6, 3))  # a leading batch dimension K = 2
    pred.requires_grad_(True)
    per = losses.per_example(name, pred, target, 0.7)
    assert per.shape == (2, 6)
    (auto,) = torch.autograd.grad(per.sum(), pred)
    assert torch.allclose(losses.grad_pred(name, pred.detach(), target, 0.7), auto, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", REAL)
def test_scalar_outputs_and_column_predictions(name):
    pred, target = _data(name, (8,))
    per = losses.per_example(name, pred, target)
    assert per.shape == (8,)
    # an (n, 1) prediction against (n,) labels is one output per example, not an (n, n) broadcast
    assert torch.allclose(losses.per_example(name, pred.unsqueeze(1), target), per)
    assert losses.grad_pred(name, pred.unsqueeze(1), target).shape == (8, 1)


def test_huber_delta_per_model():
    pred, target = _data("huber", (3, 5, 2))
    delta = torch.tensor([0.2, 1.0, 4.0], dtype=torch.float64).reshape(3, 1, 1)
    per = losses.per_example("huber", pred, target, delta)
    g = losses.grad_pred("huber", pred, target, delta)
    for k, dk in enumerate([0.2, 1.0, 4.0]):
        assert torch.allclose(per[k], losses.per_example("huber", pred[k], target[k], dk))
        assert torch.allclose(g[k], losses.grad_pred("huber", pred[k], target[k], dk))


def test_huber_limits():
    r = torch.tensor([[-3.0], [-0.5], [0.0], [0.5], [3.0]], dtype=torch.float64)
    zero = torch.zeros_like(r)
    # inside the band: r^2 / 2; outside: delta (|r| - delta / 2)
    assert torch.allclose(losses.per_example("huber", r, zero, 1.0),
                          torch.tensor([2.5, 0.125, 0.0, 0.125, 2.5], dtype=torch.float64))
    assert torch.allclose(losses.grad_pred("huber", r, zero, 1.0).flatten(),
                          torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64))


def test_bce_stable_for_large_logits():
    pred = torch.tensor([[-200.0], [200.0]])
    target = torch.tensor([[1.0], [0.0]])
    per = losses.per_example("bce", pred, target)
    assert torch.isfinite(per).all() and torch.allclose(per, torch.tensor([200.0, 200.0]))


@pytest.mark.parametrize("bad, match", [
    (dict(name="hinge"), "loss"),
    (dict(delta=0.0), "delta"),
    (dict(delta=float("nan")), "delta"),
    (dict(delta=torch.tensor([1.0, -1.0])), "delta"),
    (dict(target=torch.zeros(5, 5)), "target"),
    (dict(target=torch.zeros(4)), "target"),
])
def test_bad_input_real(bad, match):
    args = dict(name="huber", pred=torch.zeros(5, 1), target=torch.zeros(5, 1), delta=1.0)
    args.update(bad)
    for fn in (losses.per_example, losses.grad_pred):
        with pytest.raises(ValueError, match=match):
            fn(args["name"], args["pred"], args["target"], args["delta"])


@pytest.mark.parametrize("target", [torch.tensor([0, 3]), torch.tensor([-1, 0]), torch.tensor([0.5, 1.0]),
                                    torch.tensor([[0], [1]])])
def test_bad_class_targets(target):
    with pytest.raises(ValueError, match="target"):
        losses.per_example("ce", torch.zeros(2, 3), target)
    with pytest.raises(ValueError, match="target"):
        losses.grad_pred("ce", torch.zeros(2, 3), target)


def test_module_validates():
    with pytest.raises(ValueError, match="loss"):
        losses.module("hinge")
    with pytest.raises(ValueError, match="delta"):
        losses.module("huber", -1.0)
