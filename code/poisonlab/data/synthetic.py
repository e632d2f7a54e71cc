"""Synthetic data with known true parameters: linear regression, binary classification, mixtures.

Every function that draws takes `seed` (or a `torch.Generator`) and never touches the global RNG.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .. import validate
from .dataset import Dataset, _tensor, generator, split


@dataclass
class Mixture:
    """A Gaussian mixture: weights (k,), means (k, d), covariances (k, d, d), float64."""

    weights: Tensor
    means: Tensor
    covs: Tensor

    @property
    def k(self) -> int:
        """Number of components."""
        return int(self.weights.shape[0])

    @property
    def d(self) -> int:
        """Dimension of x."""
        return int(self.means.shape[1])


def make_linear(n, d=1, m=1, noise_std=1.0, *, seed, W=None, b=None, test_fraction=0.2) -> Dataset:
    """Linear data y = x W^T + b + eps, x ~ N(0, I_d), eps ~ N(0, noise_std^2 I_m); W, b ~ N(0, I) unless given.

    y has shape (n, m) always. The draws happen in a fixed order (W, b, X, eps, split) and W, b are
    drawn even when given, so the same seed gives the same X and eps whatever W, b or noise_std are.
    """
    n = validate.positive_int("n", n)
    d = validate.positive_int("d", d)
    m = validate.positive_int("m", m)
    noise_std = validate.non_negative("noise_std", noise_std)
    g = generator(seed)
    W_draw = torch.randn(m, d, generator=g)
    b_draw = torch.randn(m, generator=g)
    if W is not None:
        W_draw = _tensor("W", W)
        if W_draw.shape != (m, d):
            raise ValueError(f"W must have shape (m, d) = ({m}, {d}), got {tuple(W_draw.shape)}")
    if b is not None:
        b_draw = _tensor("b", b).reshape(-1)
        if b_draw.shape != (m,):
            raise ValueError(f"b must have shape (m,) = ({m},), got {tuple(_tensor('b', b).shape)}")
    X = torch.randn(n, d, generator=g)
    eps = torch.randn(n, m, generator=g) * noise_std
    y = X @ W_draw.T + b_draw + eps
    X_train, y_train, X_test, y_test = split(X, y, test_fraction, generator=g)
    return Dataset(X_train, y_train, X_test, y_test,
                   params={"W": W_draw, "b": b_draw, "noise_std": noise_std})


# ---------------------------------------------------------------------------------------------
# Gaussian mixtures


def gaussian_mixture(weights, means, covs) -> Mixture:
    """A validated Gaussian mixture: weights >= 0 summing to 1, means (k, d), PSD covariances (k, d, d)."""
    w = _tensor("weights", weights, torch.float64).reshape(-1)
    mu = _tensor("means", means, torch.float64)
    S = _tensor("covs", covs, torch.float64)
    k = w.shape[0]
    if k < 1:
        raise ValueError("weights must have at least one component")
    if (w < 0).any() or abs(float(w.sum()) - 1.0) > 1e-6:
        raise ValueError(f"weights must be >= 0 and sum to 1, got {w.tolist()} (sum {float(w.sum()):.6g})")
    if mu.dim() == 1 and k == 1:
        mu = mu[None]
    if mu.dim() != 2 or mu.shape[0] != k:
        raise ValueError(f"means must have shape (k, d) with k = {k} components, got {tuple(mu.shape)}")
    d = mu.shape[1]
    if S.dim() == 2 and k == 1:
        S = S[None]
    if S.shape != (k, d, d):
        raise ValueError(f"covs must have shape (k, d, d) = ({k}, {d}, {d}), got {tuple(S.shape)}")
    if not torch.allclose(S, S.transpose(1, 2), atol=1e-10, rtol=1e-8):
        raise ValueError("covs must be symmetric")
    eig = torch.linalg.eigvalsh(S)
    scale = eig.abs().amax(dim=1).clamp_min(1.0)
    bad = (eig.amin(dim=1) < -1e-9 * scale).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"covs must be positive semi-definite; component(s) {bad} have negative eigenvalues")
    return Mixture(w, mu, S)


def _sqrt_psd(S: Tensor) -> Tensor:
    """A square root L with L L^T = S for each PSD matrix (eigendecomposition: singular S allowed)."""
    lam, V = torch.linalg.eigh(S)
    return V * lam.clamp_min(0).sqrt().unsqueeze(-2)


def sample_mixture(mixture: Mixture, n, *, generator: torch.Generator):
    """n points from the mixture: (X (n, d) float32, component (n,) long)."""
    n = validate.positive_int("n", n)
    if not isinstance(mixture, Mixture):
        raise ValueError(f"mixture must be a Mixture (see gaussian_mixture), got {type(mixture).__name__}")
    component = torch.multinomial(mixture.weights, n, replacement=True, generator=generator)
    z = torch.randn(n, mixture.d, generator=generator, dtype=torch.float64)
    L = _sqrt_psd(mixture.covs)
    X = mixture.means[component] + torch.einsum("nij,nj->ni", L[component], z)
    return X.to(torch.float32), component


def _unit(name: str, w) -> Tensor:
    w = _tensor(name, w, torch.float64).reshape(-1)
    norm = float(w.norm())
    if norm == 0.0:
        raise ValueError(f"{name} must be a non-zero vector")
    return w / norm


def _tangent(w_unit: Tensor) -> Tensor:
    """A unit vector orthogonal to w_unit (in 2-D: w rotated by +90 degrees)."""
    d = w_unit.shape[0]
    if d == 1:
        raise ValueError("along must be None when d = 1 (the boundary is a point)")
    if d == 2:
        return torch.stack([-w_unit[1], w_unit[0]])
    e = torch.zeros(d, dtype=w_unit.dtype)
    e[int(w_unit.abs().argmin())] = 1.0
    t = e - (e @ w_unit) * w_unit
    return t / t.norm()


def cluster_at_distance(w, b, distance, *, along=None, spread=0.1, d=None):
    """(mean, cov) of a cluster whose mean lies at signed distance `distance` from w.x + b = 0.

    Positive distances are on the side w.x + b > 0 (label 1). `along` moves the mean parallel to the
    boundary: a vector (its component along w is removed) or a number (a step along a fixed tangent
    direction; in 2-D, w rotated by +90 degrees). cov = spread^2 I_d.
    """
    w_unit = _unit("w", w)
    if d is not None:
        d = validate.positive_int("d", d)
        if w_unit.shape[0] != d:
            raise ValueError(f"w must have d = {d} entries, got {w_unit.shape[0]}")
    d = w_unit.shape[0]
    w_norm = float(_tensor("w", w, torch.float64).reshape(-1).norm())
    b = validate.finite("b", b) / w_norm
    distance = validate.finite("distance", distance)
    spread = validate.non_negative("spread", spread)
    mean = (distance - b) * w_unit  # w_unit . mean + b = distance
    if along is not None:
        a = _tensor("along", along, torch.float64)
        if a.dim() == 0:
            mean = mean + float(a) * _tangent(w_unit)
        else:
            a = a.reshape(-1)
            if a.shape[0] != d:
                raise ValueError(f"along must be a number or a vector of d = {d} entries, got {a.shape[0]}")
            mean = mean + a - (a @ w_unit) * w_unit
    return mean, spread**2 * torch.eye(d, dtype=torch.float64)


def default_mixture(d=2, *, near=0.15, w=None, b=0.0) -> Mixture:
    """Four clusters around the boundary w.x + b = 0 (w = e_1 unless given).

    Two broad clusters (weight 0.35 each, spread 0.3) at distance +-1 and two tight ones (weight
    0.15 each, spread near/3, so almost all of each stays on its side) at distance +-near, shifted
    by -+1 along the boundary: points close to the boundary, where label flips move it most.
    """
    d = validate.positive_int("d", d)
    near = validate.positive("near", near)
    w = torch.eye(d, dtype=torch.float64)[0] if w is None else w
    spec = [(0.35, 1.0, 0.0, 0.3), (0.35, -1.0, 0.0, 0.3),
            (0.15, near, -1.0, near / 3), (0.15, -near, 1.0, near / 3)]
    means, covs = [], []
    for _, dist, shift, spread in spec:
        mean, cov = cluster_at_distance(w, b, dist, along=shift if d > 1 else None, spread=spread, d=d)
        means.append(mean)
        covs.append(cov)
    return gaussian_mixture([s[0] for s in spec], torch.stack(means), torch.stack(covs))


def make_binary(n, d=2, *, x_dist="uniform", bias=0.0, mixture=None, seed, w=None,
                test_fraction=0.2) -> Dataset:
    """Binary labels y = 1{w.x + b > 0} (float 0./1., shape (n,)) with |w| = 1 and b = `bias`.

    x_dist: "uniform" (the box [-1, 1]^d), "gaussian" (N(0, I_d)) or "mixture" (`mixture`; when it
    is None, `default_mixture(d, w=w, b=bias)` around the true boundary). w is random (uniform on the
    sphere) unless given; a given w is normalised to unit norm (b is the bias for the unit w).
    For mixtures, params also holds the component of each point ("component_train", "component_test").
    """
    n = validate.positive_int("n", n)
    d = validate.positive_int("d", d)
    x_dist = validate.choice("x_dist", x_dist, ("uniform", "gaussian", "mixture"))
    bias = validate.finite("bias", bias)
    if mixture is not None and x_dist != "mixture":
        raise ValueError(f"mixture is only used with x_dist='mixture', got x_dist={x_dist!r}")
    g = generator(seed)
    w_draw = torch.randn(d, generator=g, dtype=torch.float64)
    if w is not None:
        w_draw = _tensor("w", w, torch.float64).reshape(-1)
        if w_draw.shape != (d,):
            raise ValueError(f"w must have d = {d} entries, got {w_draw.shape[0]}")
    w_unit = _unit("w", w_draw)
    component = None
    if x_dist == "uniform":
        X = torch.rand(n, d, generator=g) * 2 - 1
    elif x_dist == "gaussian":
        X = torch.randn(n, d, generator=g)
    else:
        if mixture is None:
            mixture = default_mixture(d, w=w_unit, b=bias)
        if not isinstance(mixture, Mixture):
            raise ValueError(f"mixture must be a Mixture (see gaussian_mixture), got {type(mixture).__name__}")
        if mixture.d != d:
            raise ValueError(f"mixture must have dimension d = {d}, got {mixture.d}")
        X, component = sample_mixture(mixture, n, generator=g)
    # the labels use float64 so that points within float32 rounding of the boundary are labelled consistently
    y = ((X.double() @ w_unit + bias) > 0).to(torch.float32)
    idx = torch.arange(n)
    tr_idx, _, te_idx, _ = split(idx, idx, test_fraction, generator=g)
    params = {"w": w_unit.to(torch.float32), "b": bias, "x_dist": x_dist}
    if component is not None:
        params.update(mixture=mixture, component_train=component[tr_idx], component_test=component[te_idx])
    return Dataset(X[tr_idx], y[tr_idx], X[te_idx], y[te_idx], params=params)
