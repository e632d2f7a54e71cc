"""Models: output shapes, seeded initialisation, the batched (vmap) use, bad input."""
import copy
import math

import pytest
import torch
from torch import nn

from poisonlab import models


def same_parameters(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kind, in_dim, out_dim, hidden, in_shape, x_shape", [
    ("linear", 3, 1, (), None, (7, 3)),
    ("linear", 5, 2, (), None, (4, 7, 5)),                 # any leading dims
    ("linear", 64, 10, (), (1, 8, 8), (7, 1, 8, 8)),       # softmax regression on images
    ("mlp", 3, 1, (16, 8), None, (7, 3)),
    ("mlp", 64, 10, (32,), (1, 8, 8), (7, 1, 8, 8)),
    ("mlp", 4, 2, (), None, (7, 4)),
    ("cnn", 64, 10, (), (1, 8, 8), (7, 1, 8, 8)),
    ("cnn", 64, 10, (), (1, 8, 8), (7, 64)),               # flat rows
    ("cnn", 784, 10, (), (1, 28, 28), (3, 1, 28, 28)),
    ("cnn", 3 * 32 * 32, 10, (8, 16), (3, 32, 32), (2, 3, 32, 32)),
])
def test_output_shapes(kind, in_dim, out_dim, hidden, in_shape, x_shape):
    model = models.make_model(kind, in_dim, out_dim, hidden, seed=0, in_shape=in_shape)
    lead = x_shape[:-1] if in_shape is None or len(x_shape) == 2 else x_shape[:-len(in_shape)]
    out = model(torch.randn(x_shape))
    assert out.shape == (*lead, out_dim)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("kind, hidden, in_shape", [("linear", (), None), ("mlp", (8, 4), None), ("cnn", (), (1, 8, 8))])
def test_same_seed_same_init(kind, hidden, in_shape):
    state = torch.random.get_rng_state()
    a = models.make_model(kind, 64, 3, hidden, seed=11, in_shape=in_shape)
    b = models.make_model(kind, 64, 3, hidden, seed=11, in_shape=in_shape)
    c = models.make_model(kind, 64, 3, hidden, seed=12, in_shape=in_shape)
    assert same_parameters(a, b) and not same_parameters(a, c)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is never touched
    for p in a.parameters():  # materialised from the meta device, trainable
        assert p.device.type == "cpu" and p.requires_grad


def test_init_bounds_and_parameter_names():
    model = models.make_model("mlp", 10, 2, (20,), seed=0)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for layer in (model[0], model[2]):
        bound = 1 / math.sqrt(layer.in_features)
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
        # uniform on [-bound, bound]: the spread is not degenerate
        assert layer.weight.abs().max() > 0.5 * bound
    assert models.count_parameters(model) == 10 * 20 + 20 + 20 * 2 + 2
    lin = models.make_model("linear", 3, 1, seed=0)
    assert type(lin) is nn.Linear and list(lin.state_dict()) == ["weight", "bias"]
    cnn = models.make_model("cnn", 64, 10, seed=0, in_shape=(8, 8))
    assert list(cnn.state_dict()) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                      "head.weight", "head.bias"]
    assert models.make_model("linear", 3, 1, seed=0, in_shape=(3,)).in_shape == (3,)


def test_logistic_regression_is_linear_plus_bce():
    # the readable chapter form nn.Sequential(Linear, Sigmoid) + BCELoss equals Linear + BCEWithLogits
    lin = models.make_model("linear", 2, 1, seed=3)
    readable = nn.Sequential(copy.deepcopy(lin), nn.Sigmoid())
    X, y = torch.randn(50, 2), (torch.rand(50) > 0.5).float()
    a = nn.BCELoss()(readable(X)[:, 0], y)
    b = nn.BCEWithLogitsLoss()(lin(X)[:, 0], y)
    torch.testing.assert_close(a, b)


def test_works_under_vmap_with_stacked_parameters():
    # the batched trainer stacks K models (torch.func.stack_module_state) and calls them with vmap
    from torch.func import functional_call, stack_module_state, vmap
    for kind, hidden, shape in (("mlp", (8,), (1, 8, 8)), ("cnn", (), (1, 8, 8))):
        ms = [models.make_model(kind, 64, 10, hidden, seed=s, in_shape=shape) for s in range(3)]
        params, buffers = stack_module_state(ms)
        base = copy.deepcopy(ms[0]).to("meta")
        X = torch.randn(3, 5, 1, 8, 8)
        out = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))(params, buffers, X)
        expected = torch.stack([m(x) for m, x in zip(ms, X)])
        torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("args, kwargs, name", [
    (("tree", 3), {}, "kind"),
    (("linear", 0), {}, "in_dim"),
    (("linear", 3, 0), {}, "out_dim"),
    (("linear", 3, 1, (4,)), {}, "hidden"),
    (("mlp", 3, 1, (4, 0)), {}, "hidden"),
    (("cnn", 64, 10), {}, "in_shape"),
    (("cnn", 64, 10), {"in_shape": (1, 8, 7)}, "in_shape"),
    (("cnn", 64, 10, (4,)), {"in_shape": (1, 8, 8)}, "hidden"),
    (("mlp", 64, 10), {"in_shape": (1, 0, 8)}, "in_shape"),
    (("linear", 3, 1), {"seed": "x"}, "seed"),
])
def test_bad_input(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        models.make_model(*args, **({"seed": 0} | kwargs))


def test_cnn_rejects_wrong_image_shape():
    cnn = models.make_model("cnn", 64, 10, seed=0, in_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="x"):
        cnn(torch.randn(4, 1, 9, 9))
