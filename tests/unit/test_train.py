"""The trainers: train_batched equals K runs of the tutorial-style train(), aggregation, divergence, bad input.

Tolerances: both trainers do the same float32 arithmetic in a different order (batched matmuls, the
1/B applied before or after the product), so they agree to a few float32 ulps per step; over the
tens of steps here that stays below rtol 1e-5 (observed: ~1e-7).
"""
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from poisonlab import models, train
from poisonlab.defenses import aggregate
from poisonlab.train import perms, stacked
from poisonlab.errors import DivergenceError

RTOL, ATOL = 1e-5, 1e-6


def _close(a, b):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                          rtol=RTOL, atol=ATOL)


def _regression(K=4, n=45, d=3, m=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, n, d, generator=g)
    W = torch.randn(K, m, d, generator=g)
    y = X @ W.transpose(1, 2) + 0.5 + 0.3 * torch.randn(K, n, m, generator=g)
    return X, y


def _binary(K=4, n=45, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, n, d, generator=g)
    y = (X[..., 0] + 0.5 * torch.randn(K, n, generator=g) > 0).float()  # (K, n) labels in {0, 1}
    return X, y


def _reference(kind, X, y, *, losses, lrs, seeds, epochs, batch_size, hidden=(), out_dim=1, delta=1.0,
               in_shape=None):
    """K independent runs of train(), each from make_model(seed=seeds[k])."""
    nets, hists = [], []
    for k in range(X.shape[0]):
        net = models.make_model(kind, math.prod(X.shape[2:]), out_dim, hidden, seed=seeds[k], in_shape=in_shape)
        d_k = float(delta[k]) if isinstance(delta, (list, torch.Tensor)) else delta
        h = train.train(net, X[k], y[k], loss=losses[k], epochs=epochs, lr=lrs[k], batch_size=batch_size,
                        seed=seeds[k], delta=d_k)
        nets.append(net)
        hists.append(h.losses)
    return nets, torch.tensor(hists)


def _assert_same(fit, nets, hists):
    for k, net in enumerate(nets):
        state = fit.state_dict(k)
        for name, value in net.state_dict().items():
            assert _close(state[name], value), (k, name)
    assert _close(fit.history, hists)


# --------------------------------------------------------------------------------------------------
# Shuffles


@pytest.mark.parametrize("n, batch_size, seed", [(37, 8, 5), (32, 8, 0), (10, 32, 123), (1, 1, 7)])
def test_epoch_permutations_are_dataloaders(n, batch_size, seed):
    loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    expected = torch.stack([torch.cat([b for (b,) in loader]) for _ in range(4)])
    perms = train.epoch_permutations([seed, seed + 1, seed], n, 4)
    assert perms.shape == (4, 3, n)
    assert torch.equal(perms[:, 0], expected) and torch.equal(perms[:, 2], expected)
    assert not torch.equal(perms[:, 1], expected) or n == 1


# --------------------------------------------------------------------------------------------------
# Batched = K single runs


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_linear_regression_matches_single_runs(loss):
    X, y = _regression(K=4, n=45, m=2)  # 45 = 5 batches of 8 + a last batch of 5
    lrs, seeds = [0.01, 0.05, 0.1, 0.02], [3, 1, 4, 1]
    fit = train.train_batched(X, y, loss=loss, delta=0.7, epochs=3, lr=lrs, batch_size=8, seeds=seeds)
    nets, hists = _reference("linear", X, y, losses=[loss] * 4, lrs=lrs, seeds=seeds, epochs=3, batch_size=8,
                             out_dim=2, delta=0.7)
    _assert_same(fit, nets, hists)
    assert fit.W.shape == (4, 2, 3) and fit.b.shape == (4, 2) and fit.history.shape == (4, 3)


def test_logistic_regression_matches_single_runs():
    X, y = _binary()
    lrs, seeds = [0.1, 0.5, 1.0, 0.3], [0, 1, 2, 3]
    fit = train.train_batched(X, y, loss="bce", epochs=4, lr=torch.tensor(lrs), batch_size=10, seeds=seeds)
    nets, hists = _reference("linear", X, y, losses=["bce"] * 4, lrs=lrs, seeds=seeds, epochs=4, batch_size=10)
    _assert_same(fit, nets, hists)


def test_softmax_regression_matches_single_runs():
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(3, 40, 4, generator=g), torch.randint(0, 3, (3, 40), generator=g)
    fit = train.train_batched(X, y, loss="ce", epochs=3, lr=0.2, batch_size=7, seeds=[5, 6, 7], out_dim=3)
    nets, hists = _reference("linear", X, y, losses=["ce"] * 3, lrs=[0.2] * 3, seeds=[5, 6, 7], epochs=3,
                             batch_size=7, out_dim=3)
    _assert_same(fit, nets, hists)


def test_per_model_losses_and_deltas():
    X, y = _binary(K=5)
    names = ["mse", "l1", "huber", "bce", "huber"]
    delta = torch.tensor([1.0, 1.0, 0.2, 1.0, 3.0])
    lrs, seeds = [0.05, 0.1, 0.1, 0.5, 0.05], [0, 1, 2, 3, 4]
    fit = train.train_batched(X, y, loss=names, delta=delta, epochs=3, lr=lrs, batch_size=8, seeds=seeds)
    nets, hists = _reference("linear", X, y, losses=names, lrs=lrs, seeds=seeds, epochs=3, batch_size=8,
                             delta=delta)
    _assert_same(fit, nets, hists)
    generic = train.train_batched(X, y, loss=names, delta=delta, epochs=3, lr=lrs, batch_size=8, seeds=seeds,
                                  _path="generic")
    _assert_same(generic, nets, hists)


def test_mlp_matches_single_runs():
    X, y = _regression(K=3, n=30, d=4)
    lrs, seeds = [0.05, 0.02, 0.1], [0, 1, 2]
    fit = train.train_batched(X, y, model="mlp", hidden=(8, 5), epochs=3, lr=lrs, batch_size=8, seeds=seeds)
    nets, hists = _reference("mlp", X, y, losses=["mse"] * 3, lrs=lrs, seeds=seeds, epochs=3, batch_size=8,
                             hidden=(8, 5))
    _assert_same(fit, nets, hists)
    for k in range(3):
        with torch.no_grad():
            assert _close(fit.forward(X)[k], nets[k](X[k]))
        assert _close(fit.module(k)(X[k]).detach(), nets[k](X[k]).detach())


def test_cnn_matches_single_runs():
    g = torch.Generator().manual_seed(2)
    X, y = torch.randn(2, 12, 1, 6, 6, generator=g), torch.randint(0, 3, (2, 12), generator=g)
    fit = train.train_batched(X, y, model="cnn", hidden=(3, 4), loss="ce", epochs=2, lr=0.1, batch_size=5,
                              seeds=[0, 1], out_dim=3)
    nets, hists = _reference("cnn", X, y, losses=["ce"] * 2, lrs=[0.1] * 2, seeds=[0, 1], epochs=2, batch_size=5,
                             hidden=(3, 4), out_dim=3, in_shape=(1, 6, 6))
    _assert_same(fit, nets, hists)
    assert fit.forward(X).shape == (2, 12, 3)


@pytest.mark.parametrize("kind, hidden, in_shape", [("linear", (), None), ("mlp", (6,), None),
                                                    ("cnn", (2, 3), (1, 4, 4))])
def test_initial_parameters_are_make_models(kind, hidden, in_shape):
    seeds = [4, 9, 4]
    params, _ = stacked._initial_state(kind, 16, 2, hidden, seeds, in_shape)
    for k, s in enumerate(seeds):
        for name, value in models.make_model(kind, 16, 2, hidden, seed=s, in_shape=in_shape).state_dict().items():
            assert torch.equal(params[name][k], value)


def test_fast_and_generic_linear_paths_agree():
    X, y = _regression(K=3, n=29, m=2)
    runs = [train.train_batched(X, y, loss="huber", epochs=2, lr=[0.1, 0.2, 0.3], batch_size=6, seeds=[0, 1, 2],
                                _path=path) for path in ("fast", "generic")]
    assert _close(runs[0].W, runs[1].W) and _close(runs[0].b, runs[1].b)
    assert _close(runs[0].history, runs[1].history)


def test_same_seed_same_numbers():
    X, y = _regression()
    a = train.train_batched(X, y, epochs=2, lr=0.05, batch_size=8, seeds=[0, 1, 2, 3])
    b = train.train_batched(X, y, epochs=2, lr=0.05, batch_size=8, seeds=[0, 1, 2, 3])
    assert torch.equal(a.W, b.W) and torch.equal(a.history, b.history)
    c = train.train_batched(X, y, epochs=2, lr=0.05, batch_size=8, seeds=[0, 1, 2, 4])
    assert torch.equal(a.W[:3], c.W[:3]) and not torch.equal(a.W[3], c.W[3])


# --------------------------------------------------------------------------------------------------
# Continue training, trajectories


@pytest.mark.parametrize("kind, hidden", [("linear", ()), ("mlp", (5,))])
def test_continue_from_init(kind, hidden):
    X, y = _regression(K=3, n=24, seed=1)
    X2, y2 = _regression(K=3, n=24, seed=2)  # new (e.g. poisoned) data for the second phase
    seeds, lrs = [0, 1, 2], [0.05, 0.1, 0.02]
    first = train.train_batched(X, y, model=kind, hidden=hidden, epochs=2, lr=lrs, batch_size=6, seeds=seeds)
    second = train.train_batched(X2, y2, model=kind, hidden=hidden, epochs=3, lr=lrs, batch_size=6,
                                 seeds=[10, 11, 12], init=first, record_every=4)
    from_dicts = train.train_batched(X2, y2, model=kind, hidden=hidden, epochs=3, lr=lrs, batch_size=6,
                                     seeds=[10, 11, 12], init=[first.state_dict(k) for k in range(3)])
    nets, _ = _reference(kind, X, y, losses=["mse"] * 3, lrs=lrs, seeds=seeds, epochs=2, batch_size=6, hidden=hidden)
    for k, net in enumerate(nets):
        h = train.train(net, X2[k], y2[k], epochs=3, lr=lrs[k], batch_size=6, seed=10 + k, record_every=4)
        for name, value in net.state_dict().items():
            assert _close(second.state_dict(k)[name], value)
            assert _close(from_dicts.state_dict(k)[name], value)
            # trajectories: steps 0, 4, 8, 12 (3 epochs x 4 steps), step 0 = the initial (clean) model
            assert second.trajectory_steps.tolist() == h.trajectory_steps == [0, 4, 8, 12]
            assert _close(second.trajectory[name][:, k], torch.stack([s[name] for s in h.trajectory]))
        assert _close(second.history[k], h.losses)
    # the first model is left untouched by continuing from it
    assert not torch.equal(first.params[next(iter(first.params))], second.params[next(iter(second.params))])
    if kind == "linear":
        assert torch.equal(second.trajectory["W"][0], first.W) and torch.equal(second.trajectory["W"][-1], second.W)


# --------------------------------------------------------------------------------------------------
# Robust aggregation


@pytest.mark.parametrize("aggregate", ["median", "trimmed-mean"])
def test_aggregate_equals_mean_on_identical_points(aggregate):
    x = torch.tensor([0.5, -1.0, 2.0])
    X = x.expand(2, 16, 3).clone()
    y = torch.full((2, 16, 1), 3.0)
    kw = dict(epochs=3, lr=[0.05, 0.1], batch_size=5, seeds=[0, 1])
    mean = train.train_batched(X, y, **kw)
    robust = train.train_batched(X, y, aggregate=aggregate, trim=0.2, **kw)
    assert _close(robust.W, mean.W) and _close(robust.b, mean.b)
    generic = train.train_batched(X, y, aggregate=aggregate, trim=0.2, _path="generic", **kw)
    assert _close(generic.W, mean.W)


def test_aggregate_bounded_by_the_honest_gradients():
    g = torch.Generator().manual_seed(0)
    honest = torch.randn(3, 20, 2, 4, generator=g)
    grads = honest.clone()
    grads[:, :6] = 1e6  # 30% of the per-example gradients are huge
    lo, hi = honest.amin(1), honest.amax(1)
    for how, trim in [("median", 0.1), ("trimmed-mean", 0.35)]:
        agg = aggregate._aggregate(grads, how, trim)
        assert agg.shape == (3, 2, 4)
        assert bool(((agg >= lo) & (agg <= hi)).all()), how
    assert aggregate._aggregate(grads, "trimmed-mean", 0.1).abs().max() > 1e4  # trimming too little does not help
    # the median of an even count is the midpoint of the two middle values
    v = torch.tensor([4.0, 1.0, 3.0, 2.0]).reshape(1, 4, 1)
    assert aggregate._aggregate(v, "median", 0.0).item() == 2.5
    assert aggregate._aggregate(v, "trimmed-mean", 0.25).item() == 2.5


def test_median_resists_huge_labels():
    X, y = _regression(K=2, n=60, seed=3)
    y[:, :6] = 1e4  # 10% of labels moved far away: at most 6 in a batch of 20, whatever the shuffle
    kw = dict(epochs=10, lr=0.05, batch_size=20, seeds=[0, 1])
    clean = train.train_batched(X[:, 6:], y[:, 6:], **kw)
    for how in ("median", "trimmed-mean"):
        robust = train.train_batched(X, y, aggregate=how, trim=0.4, **kw)  # 8 cut at each end
        assert (robust.b - clean.b).abs().max() < 1.0, how
    mean = train.train_batched(X, y, **kw)
    assert (mean.b - clean.b).abs().min() > 100.0


# --------------------------------------------------------------------------------------------------
# Divergence


def test_divergence_names_the_configs():
    X, y = _regression(K=3)
    y = y * 100
    configs = [{"alpha": 0.0, "seed": 0}, {"alpha": 0.5, "seed": 1}, {"alpha": 1.0, "seed": 2}]
    for path in ("fast", "generic"):
        with pytest.raises(DivergenceError, match="alpha") as info:
            train.train_batched(X, y, epochs=20, lr=[0.01, 1e3, 0.01], batch_size=8, seeds=[0, 1, 2],
                                configs=configs, _path=path)
        assert info.value.configs == [configs[1]]
    with pytest.raises(DivergenceError, match="lr") as info:
        train.train_batched(X, y, epochs=20, lr=[1e3, 0.01, 1e3], batch_size=8, seeds=[5, 6, 7])
    assert [c["seed"] for c in info.value.configs] == [5, 7]


def test_single_trainer_divergence():
    X, y = _regression(K=1)
    net = models.make_model("linear", 3, 1, seed=0)
    with pytest.raises(DivergenceError, match="seed"):
        train.train(net, X[0], 100 * y[0], epochs=20, lr=1e3, batch_size=8, seed=0)


# --------------------------------------------------------------------------------------------------
# Bad input


def _kw(**changes):
    X, y = _regression(K=2, n=10)
    kw = dict(X=X, y=y, epochs=1, lr=0.1, batch_size=4, seeds=[0, 1])
    kw.update(changes)
    return kw


@pytest.mark.parametrize("changes, name", [
    (dict(epochs=0), "epochs"), (dict(epochs=1.5), "epochs"), (dict(batch_size=0), "batch_size"),
    (dict(lr=0.0), "lr"), (dict(lr=-1.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(lr=[0.1]), "lr"),
    (dict(lr=[0.1, -0.1]), "lr"), (dict(loss="hinge"), "loss"), (dict(loss=["mse"]), "loss"),
    (dict(loss=["mse", "ce"]), "loss"), (dict(loss="huber", delta=0.0), "delta"),
    (dict(delta=[1.0, float("inf")]), "delta"), (dict(aggregate="mode"), "aggregate"),
    (dict(trim=0.5), "trim"), (dict(trim=-0.1), "trim"), (dict(seeds=[0]), "seeds"), (dict(seeds=0), "seeds"),
    (dict(seeds=[0, 1.5]), "seeds"), (dict(model="rnn"), "model"), (dict(hidden=(4,)), "hidden"),
    (dict(model="mlp", hidden=(0,)), "hidden"), (dict(record_every=0), "record_every"),
    (dict(configs=[{}]), "configs"), (dict(init=[{}]), "init"), (dict(out_dim=3), "out_dim"),
    (dict(X=torch.zeros(2, 10)), "X"), (dict(X=torch.zeros(2, 10, 3, dtype=torch.long)), "X"),
    (dict(X=torch.full((2, 10, 3), float("nan"))), "X"), (dict(y=torch.zeros(2, 9, 1)), "y"),
    (dict(y=torch.full((2, 10, 1), float("inf"))), "y"), (dict(y=torch.zeros(2, 10, 1, 1)), "y"),
    (dict(loss="bce", y=torch.full((2, 10), 2.0)), "y"), (dict(loss="ce", y=torch.full((2, 10), 0.5)), "y"),
    (dict(loss="ce", y=torch.full((2, 10), -1)), "y"), (dict(loss="ce", y=torch.zeros(2, 10, 1)), "y"),
])
def test_batched_bad_input(changes, name):
    with pytest.raises(ValueError, match=name):
        train.train_batched(**_kw(**changes))


def test_init_must_fit():
    X, y = _regression(K=2, n=10)
    other = train.train_batched(X[..., :2], y, epochs=1, lr=0.1, batch_size=4, seeds=[0, 1])
    with pytest.raises(ValueError, match="init"):
        train.train_batched(**_kw(init=other))
    three = train.train_batched(*_regression(K=3, n=10), epochs=1, lr=0.1, batch_size=4, seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="init"):
        train.train_batched(**_kw(init=three))
    with pytest.raises(ValueError, match="k"):
        three.state_dict(3)
    mlp = train.train_batched(**_kw(model="mlp", hidden=(3,)))
    with pytest.raises(ValueError, match="linear"):
        mlp.W
    for init in (mlp, [mlp.state_dict(0), mlp.state_dict(1)]):
        with pytest.raises(ValueError, match="init"):
            train.train_batched(**_kw(model="mlp", hidden=(4,), init=init))


@pytest.mark.parametrize("changes, name", [
    (dict(epochs=0), "epochs"), (dict(lr=0), "lr"), (dict(batch_size=-2), "batch_size"), (dict(loss="x"), "loss"),
    (dict(delta=-1.0), "delta"), (dict(seed=1.5), "seed"), (dict(y=torch.zeros(9, 1)), "y"),
    (dict(X=torch.zeros(10, 3, dtype=torch.long)), "X"), (dict(model="not a module"), "model"),
    (dict(record_every=0), "record_every"), (dict(loss="ce", y=torch.full((10,), 0.5)), "y"),
    (dict(loss="ce", y=torch.full((10,), -1)), "y"), (dict(X=torch.full((10, 3), float("nan"))), "X"),
])
def test_single_bad_input(changes, name):
    X, y = _regression(K=1, n=10)
    kw = dict(model=models.make_model("linear", 3, 1, seed=0), X=X[0], y=y[0], epochs=1, lr=0.1, batch_size=4,
              seed=0)
    kw.update(changes)
    with pytest.raises(ValueError, match=name):
        train.train(kw.pop("model"), kw.pop("X"), kw.pop("y"), **kw)


def test_single_trainer_history_and_integral_float_labels():
    g = torch.Generator().manual_seed(3)
    X, y = torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g)
    runs = []
    for labels in (y, y.float()):
        net = models.make_model("linear", 4, 3, seed=0)
        runs.append((net, train.train(net, X, labels, loss="ce", epochs=3, lr=0.1, batch_size=6, seed=1)))
    assert torch.equal(runs[0][0].weight, runs[1][0].weight)
    h = runs[0][1]
    assert len(h.losses) == 3 and h.steps == 3 * 4 and h.trajectory == []
    assert h.losses[-1] < h.losses[0]  # SGD on a convex loss from a random start: the loss falls


def test_threads_restored():
    before = torch.get_num_threads()
    X, y = _regression(K=2, n=10)
    train.train_batched(X, y, epochs=1, lr=0.1, batch_size=4, seeds=[0, 1])
    with pytest.raises(ValueError):
        train.train_batched(X, y, epochs=0, lr=0.1, batch_size=4, seeds=[0, 1])
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- reliability

def _tabulated(seeds, n, epochs):
    """The former table of every epoch's order, drawn seed by seed (the reference for the lazy draws)."""
    out = torch.empty(epochs, len(seeds), n, dtype=torch.int64)
    for k, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(seed)
        for e in range(epochs):
            torch.empty((), dtype=torch.int64).random_(generator=g)
            out[e, k] = torch.randperm(n, generator=g)
            if e < epochs - 1:
                torch.randperm(n, generator=g)
    return out


def test_lazy_permutations_equal_the_table_and_hold_one_epoch():
    seeds, n, epochs = [3, 4, 3, 9], 13, 6
    lazy = perms._permutations(seeds, n, epochs)
    table = _tabulated(seeds, n, epochs)
    for e in range(epochs):
        torch.testing.assert_close(perms._epoch_order(lazy, e), table[e])
        torch.testing.assert_close(perms._epoch_order(lazy, e), table[e])  # asked twice: same epoch
        assert lazy.current.numel() == 3 * n  # one epoch of the distinct seeds, never epochs x n
    with pytest.raises(ValueError, match="in order"):
        perms._epoch_order(lazy, 0)


def test_growing_loss_is_divergence_before_overflow():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 80, 1, generator=g)
    y = 2 * X[..., 0] + 1
    with pytest.raises(DivergenceError) as err:  # lr 1.5 > 2/lambda_max ~ 1: grows ~1e11 in 5 epochs, finite
        train.train_batched(X, y, epochs=5, lr=1.5, batch_size=20, seeds=[0, 1])
    e = err.value
    assert e.name == "lr" and e.lr == 1.5 and math.isfinite(e.final)
    assert e.final > train.GROWTH * e.start
    assert e.line().startswith("--lr 1.5 diverged (loss grew from ")
    train.train_batched(X, y, epochs=5, lr=0.5, batch_size=20, seeds=[0, 1])  # stable: no error


def test_generic_path_detects_growth_too():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(1, 60, 4, generator=g)
    y = (X.sum(-1) > 0).long()
    with pytest.raises(DivergenceError, match="diverged"):
        train.train_batched(X, y, model="mlp", hidden=(8,), loss="ce", epochs=2, lr=1e30, batch_size=20, seeds=[0])


def test_single_model_trainer_reports_growth_too():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(80, 1, generator=g)
    y = 2 * X[:, 0] + 1
    net = models.make_model("linear", 1, 1, (), seed=0)
    with pytest.raises(DivergenceError) as err:
        train.train(net, X, y, epochs=5, lr=1.5, batch_size=20, seed=0)
    assert err.value.name == "lr" and math.isfinite(err.value.final)
