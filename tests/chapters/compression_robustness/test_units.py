"""The compression chapter's stages against references: the cubic schedule's properties, magnitude masks against
torch.nn.utils.prune, pruning inside the batched trainer, Tai et al.'s layers against the dense convolution
with the reconstructed kernel and against Eckart and Young, the measures against direct computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import prune

from poisonlab import train
from poisonlab.chapters.compression_robustness import experiment as cx, pipeline as P
from poisonlab.chapters.compression_robustness.laws import expected_sparsity
from poisonlab.models import compress, lipschitz


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


# --- the schedule -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("s_f, t0, dt, n", [(0.9, 10, 5, 4), (0.5, 0, 1, 1), (0.98, 3, 7, 12), (0.0, 2, 2, 3)])
def test_cubic_schedule_is_constant_before_monotone_and_exact_at_the_end(s_f, t0, dt, n):
    values = [compress.cubic_sparsity(t, s_f, t0, dt, n) for t in range(0, t0 + (n + 3) * dt)]
    assert all(v == 0.0 for v in values[:t0 + 1])  # s_i up to and at t_start
    assert all(b >= a for a, b in zip(values, values[1:]))  # never decreasing
    assert values[t0 + n * dt] == s_f and values[-1] == s_f  # exactly s_f, not up to rounding
    # between pruning steps it holds the value of the last one
    for j in range(n):
        held = {compress.cubic_sparsity(t0 + j * dt + r, s_f, t0, dt, n) for r in range(dt)}
        assert len(held) == 1


def test_cubic_schedule_matches_the_formula_at_the_pruning_steps():
    s_f, s_i, t0, dt, n = 0.8, 0.1, 4, 3, 5
    for j in range(n + 1):
        expected = s_f + (s_i - s_f) * (1 - j / n) ** 3
        assert compress.cubic_sparsity(t0 + j * dt, s_f, t0, dt, n, s_i) == pytest.approx(expected, abs=1e-15)
    assert list(compress.pruning_steps(t0, dt, n, s_f, s_i)) == [t0 + j * dt for j in range(n + 1)]


@pytest.mark.parametrize("kwargs, name", [({"s_f": 1.0}, "s_f"), ({"s_f": -0.1}, "s_f"), ({"n": 0}, "n"),
                                          ({"every": 0}, "every"), ({"t_start": -1}, "t_start"),
                                          ({"s_i": 0.95}, "s_i")])
def test_cubic_schedule_refuses_bad_arguments_by_name(kwargs, name):
    args = {"t": 5, "s_f": 0.9, "t_start": 1, "every": 2, "n": 3} | kwargs
    with pytest.raises(ValueError, match=name):
        compress.cubic_sparsity(**args)


# --- masks --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.8, 0.9, 0.95, 0.98])
@pytest.mark.parametrize("layer", [lambda: nn.Linear(37, 23), lambda: nn.Conv2d(3, 8, 5)])
def test_magnitude_mask_equals_torch_prune_l1_unstructured(amount, layer):
    torch.manual_seed(int(amount * 100))
    module = layer()
    w = module.weight.detach().clone()
    ours = compress.magnitude_mask(w.unsqueeze(0), amount)[0]
    prune.l1_unstructured(module, "weight", amount=amount)
    assert torch.equal(ours, module.weight_mask)


def test_magnitude_mask_per_model_and_ties_at_zero():
    w = torch.zeros(2, 10)
    w[0, :5] = torch.arange(1.0, 6.0)  # five zeros, five positive weights
    mask = compress.magnitude_mask(w, [0.3, 0.5])
    assert mask.sum(1).tolist() == [7.0, 5.0]  # exactly round(s n) pruned in each model
    assert mask[0, :5].eq(1).all()  # the zeros go first
    with pytest.raises(ValueError, match="sparsity"):
        compress.magnitude_mask(w, [0.3, 1.0])


def test_pruning_inside_the_trainer_keeps_pruned_weights_at_zero():
    spec = P.spec_of("cnn")
    X, y = torch.rand(2, 256, 784), torch.randint(0, 10, (2, 256))
    names = P.weight_names(spec)
    config = {"sparsity": 0.9, "schedule": "cubic", "epochs": 3, "prune_start": 2, "prune_every": 2,
              "prune_steps": 4}
    hook = P.pruner([config, {**config, "sparsity": 0.5}], 8, names)
    seen = []

    def watch(step, params):
        hook(step, params)
        if hook.masks:  # once pruned, every masked weight is zero after every step
            seen.append(all(bool((params[k][hook.masks[k] == 0] == 0).all()) for k in names))

    model = train.train_batched(X, y, model=spec, loss="ce", epochs=3, lr=1e-2, batch_size=32, seeds=[0, 1],
                                out_dim=10, optimizer=train.Adam(), step_hook=watch)
    assert seen and all(seen)
    measured = compress.sparsity(model.params, names)
    sizes = [math.prod(spec.shapes()[k]) for k in names]
    for k, s in enumerate((0.9, 0.5)):
        assert float(measured[k]) == sum(round(s * n) for n in sizes) / sum(sizes)


def test_step_hook_is_called_once_per_step_and_checked():
    X, y = torch.rand(1, 50, 4), torch.randint(0, 2, (1, 50))
    steps = []
    train.train_batched(X, y, model=P.Spec.linear(4, 2), loss="ce", epochs=2, lr=0.1, batch_size=16, seeds=[0],
                        out_dim=2, step_hook=lambda t, p: steps.append(t))
    assert steps == list(range(1, 2 * math.ceil(50 / 16) + 1))
    with pytest.raises(ValueError, match="step_hook"):
        train.train_batched(X, y, model="linear", loss="ce", epochs=1, lr=0.1, batch_size=16, seeds=[0],
                            out_dim=2, step_hook=3)


# --- low rank -----------------------------------------------------------------------------------------------

def test_tai_pair_equals_the_dense_convolution_with_the_reconstructed_kernel():
    g = torch.Generator().manual_seed(0)
    V, H = torch.randn(4, 3, 5, 1, generator=g), torch.randn(8, 4, 1, 5, generator=g)
    x = torch.randn(2, 3, 12, 12, generator=g)
    W = compress.tai_kernel(V, H)
    torch.testing.assert_close(F.conv2d(F.conv2d(x, V), H), F.conv2d(x, W), rtol=1e-5, atol=1e-5)


def test_low_rank_cnn_spec_computes_the_cnn_with_reconstructed_kernels():
    low, dense = P.spec_of("cnn", "lr1"), P.spec_of("cnn")
    p = low.init(3)
    q = {"conv1.weight": compress.tai_kernel(p["conv1v.weight"], p["conv1h.weight"]), "conv1.bias": p["conv1h.bias"],
         "conv2.weight": compress.tai_kernel(p["conv2v.weight"], p["conv2h.weight"]), "conv2.bias": p["conv2h.bias"],
         "fc.weight": p["fc.weight"], "fc.bias": p["fc.bias"]}
    x = torch.rand(5, 784)
    torch.testing.assert_close(low.forward(p, x), dense.forward(q, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("K", [1, 4, 8, 40])
def test_tai_factors_meet_eckart_young(K):
    W = torch.randn(16, 8, 5, 5, generator=torch.Generator().manual_seed(K), dtype=torch.float64)
    V, H = compress.tai_factors(W, K)
    s = torch.linalg.svdvals(W.permute(1, 2, 0, 3).reshape(40, 80))
    error = float((compress.tai_kernel(V, H) - W).norm())
    assert error == pytest.approx(float(s[K:].square().sum().sqrt()), abs=1e-10)
    # and nearby pairs of the same rank do worse (a minimum, as the theorem says)
    g = torch.Generator().manual_seed(99)
    for _ in range(5):
        dV = 1e-3 * torch.randn(V.shape, generator=g, dtype=V.dtype)
        dH = 1e-3 * torch.randn(H.shape, generator=g, dtype=H.dtype)
        assert float((compress.tai_kernel(V + dV, H + dH) - W).norm()) >= error - 1e-12


def test_tai_factors_refuse_bad_ranks():
    with pytest.raises(ValueError, match="K"):
        compress.tai_factors(torch.randn(8, 1, 5, 5), 6)  # min(C d, N d) = 5
    with pytest.raises(ValueError, match="W"):
        compress.tai_factors(torch.randn(8, 1, 5, 3), 2)


def test_fc5_low_rank_maps_are_the_products_of_their_factors():
    spec = P.spec_of("fc5", "lr2")
    p = spec.stacked_init([0, 1])
    maps = P.maps(spec, p)
    assert [name for name, _, _ in maps] == ["fc1", "fc2", "fc3", "fc4", "fc5"]
    torch.testing.assert_close(maps[0][1], p["fc1u.weight"] @ p["fc1v.weight"])
    assert torch.linalg.matrix_rank(maps[1][1][0]).item() == P.RANKS["fc5"]["lr2"]
    assert P.parameters("fc5") == sum(a * b + b for a, b in zip(P.WIDTHS[:-1], P.WIDTHS[1:]))


# --- measures -----------------------------------------------------------------------------------------------

def test_effective_rank_against_direct_computations():
    assert float(compress.effective_rank(torch.eye(6))) == pytest.approx(6.0)
    assert float(compress.effective_rank(torch.outer(torch.arange(1.0, 5.0), torch.ones(3)))) == pytest.approx(1.0)
    A = np.random.default_rng(0).normal(size=(7, 5))
    s = np.linalg.svd(A, compute_uv=False)
    p = s / s.sum()
    assert float(compress.effective_rank(torch.tensor(A))) == pytest.approx(float(np.exp(-(p * np.log(p)).sum())))
    assert float(compress.effective_rank(torch.zeros(3, 3))) == 0.0


def test_nuclear_norm_and_the_penalised_objective():
    g = torch.Generator().manual_seed(1)
    params = {"a.weight": torch.randn(6, 4, generator=g), "b.weight": torch.randn(3, 2, 5, 5, generator=g)}
    expected = sum(float(torch.linalg.matrix_norm(compress.as_matrix(w), ord="nuc")) for w in params.values())
    assert float(compress.nuclear_norm(params, list(params))) == pytest.approx(expected, rel=1e-5)
    spec = P.Spec.linear(4, 3)
    stacked = spec.stacked_init([0, 1])
    X, Y = torch.rand(2, 5, 4), torch.randint(0, 3, (2, 5))
    forward = torch.func.vmap(lambda p, b, x: spec.forward(p, x))
    base = train.ERM("ce")(forward, stacked, {}, X, Y)
    pen = train.Penalised(0.5, lambda p: compress.nuclear_norm(p, ["weight"]), base=train.ERM("ce"))
    added = pen(forward, stacked, {}, X, Y) - base
    for k in range(2):
        nuc = float(torch.linalg.matrix_norm(stacked["weight"][k], ord="nuc"))
        assert torch.allclose(added[k], torch.full((5,), 0.5 * nuc), atol=1e-5)
    with pytest.raises(ValueError, match="weight"):
        train.Penalised(-1.0, lambda p: 0.0)


def test_measures_of_a_dense_cnn_match_the_lipschitz_module_and_count_zeros():
    spec = P.spec_of("cnn")
    params = spec.stacked_init([0, 1])
    params["fc.weight"][0, :, :128] = 0.0  # half the last layer of model 0
    found = P.measures(spec, params)
    for k in range(2):
        net = spec.sequential({n: v[k] for n, v in params.items()})
        # the same power iteration (100 steps, seed 0) on the same operators: equal up to float64 rounding
        assert float(found["lipschitz_product"][k]) == pytest.approx(
            lipschitz.lipschitz_bound(net, P.IN_SHAPE, iters=100), rel=1e-9)
        # and power iteration approaches the norm from below: more steps never give less
        assert float(found["lipschitz_product"][k]) <= lipschitz.lipschitz_bound(net, P.IN_SHAPE, iters=300) * (1 + 1e-9)
    total = sum(math.prod(s) for n, s in spec.shapes().items() if n.endswith("weight"))
    assert float(found["sparsity"][0]) == pytest.approx(10 * 128 / total)
    assert float(found["sparsity.fc"][0]) == 0.5 and float(found["sparsity"][1]) == 0.0
    assert 0 < float(found["effective_rank"][1]) <= 1


def test_near_zero_counts_weights_small_against_their_layer():
    params = {"w": torch.tensor([[[1.0, 0.005, 0.5, -0.01]]])}
    assert float(compress.near_zero(params, ["w"])) == 0.5


# --- the experiment -----------------------------------------------------------------------------------------

def test_same_seed_same_numbers_and_sparsities_batched():
    configs = [{**cx.EXPERIMENT.resolve(model="cnn", sparsity=s, n_train=300, batch_size=32, epochs=2, n_test=40, eps=0.1),
                "seed": 3} for s in (0.0, 0.8)]
    first = cx.fit(configs)
    again = cx.fit(configs)
    assert first == again
    assert first[0]["measured_sparsity"] == 0.0
    assert first[1]["measured_sparsity"] == expected_sparsity("cnn", 0.8)  # round(0.8 n_l) zeros in every layer
