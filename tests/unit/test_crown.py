"""CROWN (models.crown): sound on sampled points of the ball, the same numbers as a plain per-unit reference of
the algorithm (and not those of CROWN on IBP's intermediate bounds), tighter than IBP on average, exact without
hidden layers or perturbation, independent of the chunking."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from boxes import forward_many, images, mlp, others, samples
from poisonlab.models import bounds
from poisonlab.models.crown import crown_bounds, crown_logit_bounds, crown_margins
from poisonlab.models.spec import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Spec, Unflatten

EPS = 0.05
TOL = 1e-5  # float32 bounds against float32 forward passes of the sampled points


def scaled(spec: Spec, seed: int, factor: float) -> dict:
    """spec.init(seed) with every parameter times `factor`: more units straddle 0, so the ReLU relaxations
    matter."""
    return {k: v * factor for k, v in spec.init(seed).items()}


def test_sampled_logits_margins_and_specifications_lie_within_the_bounds():
    spec = mlp()
    params = spec.init(0)
    x = images(6, 1)
    y = torch.arange(6) % 10
    lo, hi = crown_logit_bounds(spec, params, x, EPS)
    margins = crown_margins(spec, params, x, y, EPS)
    g = torch.Generator().manual_seed(3)
    C = torch.randn(6, 4, 10, generator=g)
    c_lo, c_hi = crown_bounds(spec, params, *bounds.ball(x, EPS), C)
    z = forward_many(spec, params, samples(*bounds.ball(x, EPS), 600, 2))
    assert (z >= lo - TOL).all() and (z <= hi + TOL).all()
    sampled = z.gather(2, y.view(1, -1, 1).expand(z.shape[0], -1, 1)) - z
    assert (sampled >= margins - TOL).all()
    assert (margins[~others(y, 10)] == 0).all()
    cz = torch.einsum("bmk,sbk->sbm", C, z)
    assert (cz >= c_lo - 1e-4).all() and (cz <= c_hi + 1e-4).all()


def test_deep_net_on_a_wider_box_is_sound():
    spec = Spec.mlp(12, (16, 16, 16), 5)
    params = scaled(spec, 4, 2.0)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(5, 12, generator=g) * 2 - 1
    y = torch.tensor([0, 1, 2, 3, 4])
    box = (-1.0, 1.0)
    margins = crown_margins(spec, params, x, y, 0.3, box)
    lo, hi = crown_logit_bounds(spec, params, x, 0.3, box)
    z = forward_many(spec, params, samples(*bounds.ball(x, 0.3, box), 4000, 6))
    assert (z >= lo - TOL).all() and (z <= hi + TOL).all()
    sampled = z.gather(2, y.view(1, -1, 1).expand(z.shape[0], -1, 1)) - z
    assert (sampled >= margins - TOL).all()


def _reference(Ws, bs, lo, hi, S, intermediate="crown"):
    """CROWN for one row, written out unit by unit in float64 numpy: lower bounds of S z (S (m, classes)) over
    the box [lo, hi]. The final bound is the minimum over the box's corners of the linear bound, coordinate by
    coordinate; the pre-activation bounds of every ReLU come from the same routine ("crown") or from IBP
    ("ibp")."""
    pre = []

    def lower(k, s):
        a, const = s @ Ws[k], float(s @ bs[k])
        for j in range(k - 1, -1, -1):
            l, u = pre[j]
            a = a.copy()
            for i in range(len(a)):
                if l[i] >= 0:
                    slope_lo = slope_up = 1.0
                    icpt = 0.0
                elif u[i] <= 0:
                    slope_lo = slope_up = icpt = 0.0
                else:
                    slope_up, icpt = u[i] / (u[i] - l[i]), -u[i] * l[i] / (u[i] - l[i])
                    slope_lo = 1.0 if u[i] >= -l[i] else 0.0
                if a[i] >= 0:
                    a[i] *= slope_lo
                else:
                    const += a[i] * icpt
                    a[i] *= slope_up
            const += float(a @ bs[j])
            a = a @ Ws[j]
        return const + float(np.minimum(a * lo, a * hi).sum())

    c, r = (hi + lo) / 2, (hi - lo) / 2
    for k in range(len(Ws) - 1):
        if intermediate == "crown":
            eye = np.eye(Ws[k].shape[0])
            pre.append((np.array([lower(k, e) for e in eye]), np.array([-lower(k, -e) for e in eye])))
        else:  # IBP: the box through each layer
            mid, rad = Ws[k] @ c + bs[k], np.abs(Ws[k]) @ r
            pre.append((mid - rad, mid + rad))
            c, r = (np.maximum(mid + rad, 0) + np.maximum(mid - rad, 0)) / 2, \
                (np.maximum(mid + rad, 0) - np.maximum(mid - rad, 0)) / 2
    return np.array([lower(len(Ws) - 1, s) for s in S])


def test_matches_a_unit_by_unit_reference_and_not_crown_on_ibp_bounds():
    spec = Spec.mlp(6, (8, 8, 8), 4)
    params = {k: v.double() for k, v in scaled(spec, 7, 2.5).items()}
    g = torch.Generator().manual_seed(8)
    x = torch.rand(4, 6, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    lo, hi = bounds.ball(x, 0.2)
    got = crown_margins(spec, params, x, y, 0.2)
    assert got.dtype == torch.float64
    Ws = [params[f"{2 * i}.weight"].numpy() for i in range(4)]
    bs = [params[f"{2 * i}.bias"].numpy() for i in range(4)]
    eye = np.eye(4)
    ref = np.stack([_reference(Ws, bs, lo[i].numpy(), hi[i].numpy(), eye[int(y[i])] - eye)
                    for i in range(4)])
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-9, rtol=0)
    on_ibp = np.stack([_reference(Ws, bs, lo[i].numpy(), hi[i].numpy(), eye[int(y[i])] - eye, "ibp")
                       for i in range(4)])
    # the reference with IBP's pre-activation bounds gives other numbers: the check above tells them apart
    assert np.abs(on_ibp - ref).max() > 1e-2
    # and the logit bounds are the two sides of the identity specification
    l_lo, l_hi = crown_logit_bounds(spec, params, x, 0.2)
    ref_lo = np.stack([_reference(Ws, bs, lo[i].numpy(), hi[i].numpy(), eye) for i in range(4)])
    ref_hi = -np.stack([_reference(Ws, bs, lo[i].numpy(), hi[i].numpy(), -eye) for i in range(4)])
    np.testing.assert_allclose(l_lo.numpy(), ref_lo, atol=1e-9, rtol=0)
    np.testing.assert_allclose(l_hi.numpy(), ref_hi, atol=1e-9, rtol=0)


@pytest.mark.parametrize("seed, hidden", [(0, (50, 50)), (1, (100, 100, 100))])
def test_tighter_than_ibp_on_average(seed, hidden):
    spec = Spec.mlp(784, hidden, 10, in_shape=(1, 28, 28))
    params = spec.init(seed)
    x = images(20, seed + 10)
    y = torch.arange(20) % 10
    mask = others(y, 10)
    gain = crown_margins(spec, params, x, y, EPS)[mask] - bounds.margin_bounds(spec, params, x, y, EPS)[mask]
    assert float(gain.mean()) > 0
    lo, hi = crown_logit_bounds(spec, params, x, EPS)
    ilo, ihi = bounds.logit_bounds(spec, params, x, EPS)
    assert float((hi - lo).mean()) < float((ihi - ilo).mean())


def test_without_hidden_layers_it_is_exact_and_equals_ibp():
    spec = Spec([Flatten(), Linear(784, 10, name="fc")])
    params = spec.init(2)
    x = images(4, 3)
    y = torch.tensor([1, 5, 0, 9])
    margins = crown_margins(spec, params, x, y, EPS)
    torch.testing.assert_close(margins, bounds.margin_bounds(spec, params, x, y, EPS), atol=TOL, rtol=0)
    lo, hi = bounds.ball(x, EPS)
    W = params["fc.weight"]
    diff = (W[y].unsqueeze(1) - W.unsqueeze(0)).view(4, 10, 1, 28, 28)  # (B, k, ...): W_y - W_k
    worst = torch.where(diff > 0, lo.unsqueeze(1), hi.unsqueeze(1))  # the corner minimising z_y - z_k
    z = spec.forward(params, worst.reshape(40, 1, 28, 28)).view(4, 10, 10)
    attained = z.gather(2, y.view(4, 1, 1).expand(4, 10, 1)).squeeze(2) - z.diagonal(dim1=1, dim2=2)
    torch.testing.assert_close(margins, attained, atol=TOL, rtol=0)
    l_lo, l_hi = crown_logit_bounds(spec, params, x, EPS)
    i_lo, i_hi = bounds.logit_bounds(spec, params, x, EPS)
    torch.testing.assert_close(l_lo, i_lo, atol=TOL, rtol=0)
    torch.testing.assert_close(l_hi, i_hi, atol=TOL, rtol=0)


def test_zero_radius_gives_the_logits():
    spec = mlp()
    params = spec.init(4)
    x = images(5, 5)
    y = torch.tensor([0, 2, 4, 6, 8])
    z = spec.forward(params, x)
    torch.testing.assert_close(crown_margins(spec, params, x, y, 0.0), z.gather(1, y.unsqueeze(1)) - z,
                               atol=TOL, rtol=0)
    lo, hi = crown_logit_bounds(spec, params, x, 0.0)
    torch.testing.assert_close(lo, z, atol=TOL, rtol=0)
    torch.testing.assert_close(hi, z, atol=TOL, rtol=0)


def test_chunking_does_not_change_the_bounds():
    spec = mlp()
    params = spec.init(6)
    x = images(11, 7)
    y = torch.arange(11) % 10
    whole = crown_margins(spec, params, x, y, EPS)
    torch.testing.assert_close(crown_margins(spec, params, x, y, EPS, chunk=3), whole, atol=1e-6, rtol=0)
    lo, hi = crown_logit_bounds(spec, params, x, EPS)
    lo3, hi3 = crown_logit_bounds(spec, params, x, EPS, chunk=4)
    torch.testing.assert_close(lo3, lo, atol=1e-6, rtol=0)
    torch.testing.assert_close(hi3, hi, atol=1e-6, rtol=0)


def test_bad_input():
    x = images(2, 0)
    y = torch.tensor([0, 1])
    conv = Spec([Unflatten((1, 28, 28)), Conv2d(1, 2, 3, name="c"), ReLU(), Flatten(),
                 Linear(2 * 26 * 26, 10, name="fc")])
    with pytest.raises(ValueError, match="model.*CROWN here supports Flatten/Linear/ReLU networks"):
        crown_margins(conv, conv.init(0), x, y, EPS)
    pooled = Spec([Unflatten((1, 28, 28)), MaxPool2d(2), Flatten(), Linear(196, 10, name="fc")])
    headless = Spec([Flatten(), Linear(784, 10, name="fc"), ReLU()])
    doubled = Spec([Flatten(), Linear(784, 10, name="a"), Linear(10, 10, name="b")])
    for spec in (pooled, headless, doubled):
        with pytest.raises(ValueError, match="model"):
            crown_logit_bounds(spec, spec.init(0), x, EPS)
    spec = mlp()
    params = spec.init(0)
    with pytest.raises(ValueError, match="eps"):
        crown_margins(spec, params, x, y, -0.1)
    with pytest.raises(ValueError, match="chunk"):
        crown_margins(spec, params, x, y, EPS, chunk=0)
    with pytest.raises(ValueError, match="y"):
        crown_margins(spec, params, x, torch.tensor([0, 10]), EPS)
    with pytest.raises(ValueError, match="C"):
        crown_bounds(spec, params, *bounds.ball(x, EPS), torch.ones(2, 3, 9))
    flat = Spec.mlp(784, (8,), 10)  # no leading Flatten: images are not its rows
    with pytest.raises(ValueError, match="Flatten"):
        crown_margins(flat, flat.init(0), x, y, EPS)
    with pytest.raises(ValueError, match="features"):
        crown_margins(flat, flat.init(0), x.reshape(2, -1)[:, :700], y, EPS)
