"""The open batched trainer: today's results bit for bit, optimisers, objectives, aggregators, callbacks, device."""
import pytest
import torch

import train_baseline


@pytest.fixture(scope="module")
def recorded():
    return torch.load(train_baseline.PATH)


@pytest.fixture(scope="module")
def today():
    return train_baseline.runs()


@pytest.mark.parametrize("name", sorted(torch.load(train_baseline.PATH)))
def test_train_batched_bit_identical_to_the_closed_trainer(name, recorded, today):
    """Runs recorded with train.py before the train/ package (tests/train_baseline.py): equal bit for bit."""
    assert sorted(today[name]) == sorted(recorded[name])
    for key, value in recorded[name].items():
        assert torch.equal(today[name][key], value), (name, key)


# --------------------------------------------------------------------------------------------------
# Helpers


from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from poisonlab import models, train  # noqa: E402
from poisonlab.defenses import aggregate as agg  # noqa: E402
from poisonlab.train import objectives, optim  # noqa: E402


def _regression(K=3, n=29, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, n, d, generator=g)
    y = X @ torch.randn(K, 1, d, generator=g).transpose(1, 2) + 0.3 * torch.randn(K, n, 1, generator=g)
    return X, y


def _classes(K=2, n=26, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, n, d, generator=g)
    return X, (X[..., 0] > 0).long() + (X[..., 1] > 0.5).long()


def _nets(kind, X, seeds, hidden=(), out_dim=1):
    return [models.make_model(kind, X.shape[-1], out_dim, hidden, seed=s) for s in seeds]


def _assert_params(fit, nets, atol=1e-6):
    for k, net in enumerate(nets):
        for name, value in net.state_dict().items():
            torch.testing.assert_close(fit.state_dict(k)[name], value, rtol=0, atol=atol)


# --------------------------------------------------------------------------------------------------
# Optimisers against torch.optim


@pytest.mark.parametrize("opt", [optim.SGD(momentum=0.9), optim.SGD(momentum=0.5, nesterov=True, weight_decay=0.01),
                                 optim.SGD(momentum=0.8, dampening=0.3), optim.Adam(),
                                 optim.Adam(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)], ids=repr)
@pytest.mark.parametrize("kind, hidden", [("linear", ()), ("mlp", (6, 5))])
def test_optimisers_match_torch_optim(opt, kind, hidden):
    """Each model of the batched run = torch.optim's namesake on that model alone, same minibatches."""
    X, y = _regression()
    lrs, seeds = [0.01, 0.03, 0.02], [0, 1, 2]
    fit = train.train_batched(X, y, model=kind, hidden=hidden, epochs=3, lr=lrs, batch_size=7, seeds=seeds,
                              optimizer=opt)
    nets = _nets(kind, X, seeds, hidden)
    for k, net in enumerate(nets):  # the tutorial loop, written out, with torch.optim
        loader = DataLoader(TensorDataset(X[k], y[k]), batch_size=7, shuffle=True,
                            generator=torch.Generator().manual_seed(seeds[k]))
        torch_opt = opt.torch(net.parameters(), lrs[k])
        assert type(torch_opt).__name__ == type(opt).__name__
        for _ in range(3):
            for Xb, yb in loader:
                loss = torch.nn.functional.mse_loss(net(Xb), yb)
                torch_opt.zero_grad()
                loss.backward()
                torch_opt.step()
    _assert_params(fit, nets)
    # the readable trainer takes the same object (and so builds the same torch.optim)
    singles = _nets(kind, X, seeds, hidden)
    for k, net in enumerate(singles):
        train.train(net, X[k], y[k], epochs=3, lr=lrs[k], batch_size=7, seed=seeds[k], optimizer=opt)
    _assert_params(fit, singles)


def test_plain_sgd_object_is_todays_sgd(recorded):
    X, y = train_baseline._data(5, 47, 4)
    fit = train.train_batched(X, y, epochs=4, lr=[0.01, 0.05, 0.1, 0.02, 0.03], batch_size=8, seeds=[0, 1, 2, 1, 7],
                              record_every=5, optimizer=optim.SGD())
    assert torch.equal(fit.params["weight"], recorded["linear-mse"]["param.weight"])
    with pytest.raises(ValueError, match="optimizer"):
        train.train_batched(X, y, epochs=1, lr=0.1, batch_size=8, seeds=range(5), optimizer=torch.optim.SGD)


# --------------------------------------------------------------------------------------------------
# Objectives


def _fgsm_by_hand(net, X, y, *, eps, lr, epochs, batch_size, seed, schedule=None):
    """Adversarial training written out: the loss at x + eps sign(grad_x loss), then an SGD step."""
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    for epoch in range(epochs):
        if schedule is not None:
            eps = schedule[epoch]
        for Xb, yb in loader:
            Xa = Xb.clone().requires_grad_(True)
            (gx,) = torch.autograd.grad(torch.nn.functional.cross_entropy(net(Xa), yb, reduction="sum"), Xa)
            loss = torch.nn.functional.cross_entropy(net(Xb + eps * gx.sign()), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.mark.parametrize("kind, hidden", [("linear", ()), ("mlp", (7,))])
def test_fgsm_objective_in_both_trainers_matches_a_hand_written_loop(kind, hidden):
    X, y = _classes()
    seeds = [3, 4]
    objective = objectives.FGSM(0.1, objectives.ERM("ce"))
    fit = train.train_batched(X, y, model=kind, hidden=hidden, loss="ce", out_dim=3, epochs=3, lr=0.1, batch_size=6,
                              seeds=seeds, objective=objective)
    plain = train.train_batched(X, y, model=kind, hidden=hidden, loss="ce", out_dim=3, epochs=3, lr=0.1,
                                batch_size=6, seeds=seeds)
    assert not torch.allclose(fit.history, plain.history)  # the objective is used
    by_hand, loop = _nets(kind, X, seeds, hidden, 3), _nets(kind, X, seeds, hidden, 3)
    for k in range(2):
        _fgsm_by_hand(by_hand[k], X[k], y[k], eps=0.1, lr=0.1, epochs=3, batch_size=6, seed=seeds[k])
        train.train(loop[k], X[k], y[k], loss="ce", epochs=3, lr=0.1, batch_size=6, seed=seeds[k],
                    objective=objective)
    _assert_params(fit, by_hand)
    _assert_params(fit, loop)


def test_custom_objective_with_robust_aggregators():
    """Any torch.func-compatible objective gets per-example gradients: ERM written by hand = the default."""
    X, y = _regression(K=3, n=20)

    def squared(forward, params, buffers, Xb, Yb):
        return (forward(params, buffers, Xb) - Yb).square().mean(-1)

    for how in ("median", "trimmed-mean"):
        kw = dict(model="mlp", hidden=(5,), epochs=2, lr=0.05, batch_size=6, seeds=[0, 1, 2], aggregate=how, trim=0.2)
        a = train.train_batched(X, y, objective=squared, **kw)
        b = train.train_batched(X, y, **kw)
        for name in b.params:
            torch.testing.assert_close(a.params[name], b.params[name], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Aggregator objects


@pytest.mark.parametrize("name, aggregator", [
    ("linear-median", agg.Median()), ("linear-trimmed", agg.TrimmedMean(0.2)), ("mlp-trimmed", agg.TrimmedMean(0.1)),
    ("mlp-median-bce", agg.Median())])
def test_aggregator_objects_reproduce_the_strings(name, aggregator, recorded):
    X, y = train_baseline._data(5, 47, 4)
    kw = dict(epochs=2, batch_size=8, seeds=[0, 1, 2, 3, 4], aggregate=aggregator)
    if name.startswith("linear"):
        fit = train.train_batched(X, y, lr=0.05, **kw)
    elif name == "mlp-trimmed":
        fit = train.train_batched(X, y, model="mlp", hidden=(6,), lr=0.05, **kw)
    else:
        fit = train.train_batched(X, (X[..., 0] > 0).float(), model="mlp", hidden=(4,), loss="bce", lr=0.1, **kw)
    for key, value in recorded[name].items():
        if key.startswith("param."):
            assert torch.equal(fit.params[key[6:]], value), key
    assert torch.equal(fit.history, recorded[name]["history"])


def test_aggregator_objects_check_trim():
    with pytest.raises(ValueError, match="trim"):
        agg.TrimmedMean(0.5)
    v = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    assert agg.Median()(v).item() == 2.5 and agg.Mean()(v).item() == 26.5
    assert agg.TrimmedMean(0.25)(v).item() == 2.5


# --------------------------------------------------------------------------------------------------
# Per-epoch callback: early stopping, schedules, masks


@pytest.mark.parametrize("path", ["fast", "generic"])
def test_callback_stops_early(path):
    X, y = _regression()
    seen = []

    def stop_after_two(epoch, params, history):
        seen.append((epoch, tuple(history.shape), sorted(params)))
        return epoch == 1

    fit = train.train_batched(X, y, epochs=5, lr=0.05, batch_size=7, seeds=[0, 1, 2], callback=stop_after_two,
                              _path=path)
    two = train.train_batched(X, y, epochs=2, lr=0.05, batch_size=7, seeds=[0, 1, 2], _path=path)
    assert seen == [(0, (3, 1), ["bias", "weight"]), (1, (3, 2), ["bias", "weight"])]
    assert fit.history.shape == (3, 2) and torch.equal(fit.history, two.history)
    assert torch.equal(fit.W, two.W) and torch.equal(fit.b, two.b)
    net = _nets("linear", X, [0])[0]
    h = train.train(net, X[0], y[0], epochs=5, lr=0.05, batch_size=7, seed=0, callback=lambda e, p, h: e == 1)
    assert len(h.losses) == 2


def test_callback_epsilon_schedule_in_both_trainers():
    X, y = _classes()
    schedule = [0.0, 0.05, 0.1, 0.2]
    objective = objectives.FGSM(schedule[0], objectives.ERM("ce"))

    def ramp(epoch, params, history):
        if epoch + 1 < len(schedule):
            objective.eps = schedule[epoch + 1]

    fit = train.train_batched(X, y, loss="ce", out_dim=3, epochs=4, lr=0.1, batch_size=6, seeds=[3, 4],
                              objective=objective, callback=ramp)
    assert objective.eps == 0.2
    by_hand, loop = _nets("linear", X, [3, 4], (), 3), _nets("linear", X, [3, 4], (), 3)
    for k in range(2):
        _fgsm_by_hand(by_hand[k], X[k], y[k], eps=None, lr=0.1, epochs=4, batch_size=6, seed=3 + k, schedule=schedule)
        objective.eps = schedule[0]
        train.train(loop[k], X[k], y[k], loss="ce", epochs=4, lr=0.1, batch_size=6, seed=3 + k, objective=objective,
                    callback=ramp)
    _assert_params(fit, by_hand)
    _assert_params(fit, loop)


def test_callback_learning_rate_schedule_and_masks():
    """The callback may change the optimiser's lr (both paths read it per epoch) and edit parameters."""
    X, y = _regression()
    fits = []
    for path in ("fast", "generic"):
        opt = optim.SGD()

        def halve_and_prune(epoch, params, history, opt=opt):
            opt.lr = opt.lr / 2
            params["weight"][:, :, 0] = 0.0  # a pruning mask: feature 0 off

        fits.append(train.train_batched(X, y, epochs=3, lr=0.1, batch_size=7, seeds=[0, 1, 2], optimizer=opt,
                                        callback=halve_and_prune, _path=path))
        assert torch.equal(opt.lr, torch.full((3,), 0.0125))
    assert torch.equal(fits[0].W[:, :, 0], torch.zeros(3, 1))
    torch.testing.assert_close(fits[0].W, fits[1].W, rtol=0, atol=1e-6)
    torch.testing.assert_close(fits[0].history, fits[1].history, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Device


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_cuda_without_cuda_is_a_value_error_naming_device():
    X, y = _regression()
    with pytest.raises(ValueError, match="device"):
        train.train_batched(X, y, epochs=1, lr=0.1, batch_size=7, seeds=[0, 1, 2], device="cuda")


@pytest.mark.parametrize("device", ["tpu", "nonsense", 3.5])
def test_unknown_device_is_a_value_error(device):
    X, y = _regression()
    with pytest.raises(ValueError, match="device"):
        train.train_batched(X, y, epochs=1, lr=0.1, batch_size=7, seeds=[0, 1, 2], device=device)


def test_cpu_device_is_todays_result(recorded):
    X, y = train_baseline._data(5, 47, 4)
    fit = train.train_batched(X, y, model="mlp", hidden=(6, 5), epochs=3, lr=0.05, batch_size=8,
                              seeds=[0, 1, 2, 3, 4], record_every=7, device="cpu")
    for key, value in recorded["mlp"].items():
        if key.startswith("param."):
            assert torch.equal(fit.params[key[6:]], value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind, hidden", [("linear", ()), ("mlp", (6,))])
def test_cuda_matches_cpu(kind, hidden):
    X, y = _regression()
    kw = dict(model=kind, hidden=hidden, epochs=3, lr=0.05, batch_size=7, seeds=[0, 1, 2])
    cpu, gpu = train.train_batched(X, y, **kw), train.train_batched(X, y, device="cuda", **kw)
    assert next(iter(gpu.params.values())).is_cuda
    for name in cpu.params:
        torch.testing.assert_close(gpu.params[name].cpu(), cpu.params[name], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Model specs

from poisonlab.models import spec as S  # noqa: E402


@pytest.mark.parametrize("kind, in_dim, hidden, in_shape", [
    ("linear", 5, (), None), ("linear", 9, (), (1, 3, 3)), ("mlp", 5, (4, 3), None), ("mlp", 9, (4,), (1, 3, 3)),
    ("cnn", 16, (2, 3), (1, 4, 4)), ("cnn", 32, (), (2, 4, 4))])
def test_todays_builders_as_specs(kind, in_dim, hidden, in_shape):
    """Spec.of(kind, ...) = models.make_model(kind, ...): same keys, same initial numbers, same outputs."""
    spec = S.Spec.of(kind, in_dim, 3, hidden, in_shape)
    for seed in (0, 5):
        net = models.make_model(kind, in_dim, 3, hidden, seed=seed, in_shape=in_shape)
        params = spec.init(seed)
        assert list(params) == list(net.state_dict())
        assert all(torch.equal(params[k], v) for k, v in net.state_dict().items())
        x = torch.randn(7, *(in_shape or (in_dim,)))
        assert torch.equal(spec.forward(params, x), net(x))
        assert torch.equal(spec.module(params)(x), net(x))


def _conv_spec(dropout=0.0):
    return S.Spec([S.Unflatten((1, 5, 5)), S.Conv2d(1, 2, 3, name="conv"), S.ReLU(), S.Flatten(),
                   S.Dropout(dropout), S.Linear(18, 3, name="out")])


def test_a_custom_spec_trains_as_the_readable_trainer():
    g = torch.Generator().manual_seed(4)
    X, y = torch.randn(2, 20, 1, 5, 5, generator=g), torch.randint(0, 3, (2, 20), generator=g)
    spec = _conv_spec()
    for opt in (None, optim.Adam()):
        fit = train.train_batched(X, y, model=spec, loss="ce", epochs=2, lr=0.05, batch_size=6, seeds=[1, 2],
                                  optimizer=opt)
        assert fit.kind == "spec" and list(fit.params) == ["conv.weight", "conv.bias", "out.weight", "out.bias"]
        nets = [spec.module(spec.init(s)) for s in (1, 2)]
        for k, net in enumerate(nets):
            train.train(net, X[k], y[k], loss="ce", epochs=2, lr=0.05, batch_size=6, seed=1 + k, optimizer=opt)
        _assert_params(fit, nets)
        for k in range(2):
            torch.testing.assert_close(fit.forward(X)[k], fit.module(k)(X[k]).detach())
    again = train.train_batched(X, y, model=spec, loss="ce", epochs=1, lr=0.05, batch_size=6, seeds=[1, 2], init=fit)
    assert again.history.shape == (2, 1)
    with pytest.raises(ValueError, match="hidden"):
        train.train_batched(X, y, model=spec, hidden=(3,), loss="ce", epochs=1, lr=0.05, batch_size=6, seeds=[1, 2])
    with pytest.raises(ValueError, match="init"):
        train.train_batched(X, y, model=spec, loss="ce", epochs=1, lr=0.05, batch_size=6, seeds=[1, 2],
                            init=[{"w": torch.zeros(1)}] * 2)


def test_dropout_spec_trains_and_is_off_at_evaluation():
    g = torch.Generator().manual_seed(4)
    X, y = torch.randn(2, 20, 25, generator=g), torch.randint(0, 3, (2, 20), generator=g)
    kw = dict(loss="ce", epochs=2, lr=0.05, batch_size=6, seeds=[1, 2])
    off = train.train_batched(X, y, model=_conv_spec(0.0), **kw)
    on = train.train_batched(X, y, model=_conv_spec(0.5), **kw)
    assert not torch.equal(off.params["out.weight"], on.params["out.weight"])  # masks were drawn
    assert torch.equal(on.forward(X), on.forward(X))  # evaluation: no dropout
    with pytest.raises(ValueError, match="model"):
        S.Spec([torch.nn.Linear(2, 2)])
