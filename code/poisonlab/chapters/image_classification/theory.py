"""Label flipping against K-class image classifiers: sympy derivations and the predictions they give.

Notation: p_j = P(y = j | x) is the clean posterior, alpha the flipped fraction, K the number of
classes. Random flips send a label to a uniformly chosen other class; the noisy posterior is then
an increasing affine function of the clean one exactly when alpha < (K - 1)/K, so the arg-max (the
Bayes classifier) survives up to that threshold. Finite data and capacity enter as a Gaussian
error on each logit (a race of K noisy logits, Thurstone's model): accuracy is a function of the
noisy margin log p~_true - log p~_other, which vanishes exactly at the threshold.
Symbolic functions return dicts of sympy expressions; numeric ones take floats or arrays, validate
their input (ValueError naming the parameter) and never return NaN.
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch
from scipy import stats

from ... import validate

__all__ = [
    # derivations (sympy)
    "random_flip_posterior", "noisy_agreement", "target_class_posterior", "pair_posterior",
    "softmax_flip_gradient", "influence_first_order", "all_flipped_posterior",
    # numeric predictions
    "bayes_all_flipped", "flip_matrix",
    "threshold", "chance", "signal", "noisy_posterior", "noisy_accuracy", "heldout_gap_sd", "target_threshold",
    "pair_threshold", "noisy_margin", "race_win", "random_flip_law", "two_class_law", "neighbours", "knn_filter_prediction",
    "softmax_hessian", "flip_influence",
]

# ---------------------------------------------------------------------------------------------
# Derivations (sympy)


def random_flip_posterior() -> dict:
    """Noisy posterior of class j under random flips: s p_j + alpha/(K-1), s = 1 - alpha K/(K-1)."""
    alpha, p, K = sp.symbols("alpha p_j K", positive=True)
    # label j survives with probability 1 - alpha; a label of another class (total mass 1 - p_j)
    # is flipped with probability alpha and lands on j with probability 1/(K - 1)
    noisy = (1 - alpha) * p + alpha * (1 - p) / (K - 1)
    slope = sp.factor(sp.diff(noisy, p))
    intercept = sp.simplify(noisy.subs(p, 0))
    return {"alpha": alpha, "p": p, "K": K, "noisy": noisy, "collected": sp.collect(sp.expand(noisy), p),
            "slope": slope, "intercept": intercept,
            "threshold": sp.solve(sp.Eq(slope, 0), alpha)[0],
            # at the threshold every class is equally likely whatever x: the labels carry no information
            "at_threshold": sp.simplify(noisy.subs(alpha, (K - 1) / K))}


def noisy_agreement() -> dict:
    """Accuracy against randomly flipped labels of a classifier of clean accuracy a: alpha/(K-1) + s a."""
    alpha, a, K = sp.symbols("alpha a K", positive=True)
    # correct predictions agree with the noisy label when it was not flipped; a wrong prediction j
    # agrees when the label was flipped and landed on j (probability alpha/(K-1))
    noisy = (1 - alpha) * a + alpha / (K - 1) * (1 - a)
    return {"alpha": alpha, "a": a, "K": K, "noisy": noisy,
            "slope": sp.factor(sp.diff(noisy, a)), "intercept": sp.simplify(noisy.subs(a, 0))}


def all_flipped_posterior() -> dict:
    """Every label flipped (alpha = 1): p~_j = (1 - p_j)/(K - 1), decreasing in p_j, so the Bayes classifier of
    the flipped labels predicts the clean *least* likely class, and its clean accuracy min_j p_j is at most
    (1 - max_j p_j)/(K - 1): the smallest of the K - 1 other posteriors is at most their mean."""
    rf = random_flip_posterior()
    at_one = sp.factor(rf["noisy"].subs(rf["alpha"], 1))
    return {"p": rf["p"], "K": rf["K"], "at_one": at_one, "slope": sp.diff(at_one, rf["p"]),
            "bound": sp.Symbol("min_j p_j") <= (1 - sp.Symbol("max_j p_j")) / (rf["K"] - 1)}


def target_class_posterior() -> dict:
    """All flips to class t, chosen among the other classes (mass 1 - pi_t): the arg-max turns to t at alpha = (1 - pi_t)/2."""
    alpha, pi_t = sp.symbols("alpha pi_t", positive=True)
    rate = alpha / (1 - pi_t)  # the fraction of each other class relabelled t
    own, target = 1 - rate, rate  # noisy posterior of a region of class c != t (deterministic labels)
    return {"alpha": alpha, "pi_t": pi_t, "rate": rate, "own": own, "target": target,
            "threshold": sp.solve(sp.Eq(own, target), alpha)[0]}


def pair_posterior() -> dict:
    """Flips a <-> b among the points of classes a and b (mass pi_a + pi_b): the pair swaps at alpha = (pi_a + pi_b)/2."""
    alpha, pi_a, pi_b = sp.symbols("alpha pi_a pi_b", positive=True)
    f = alpha / (pi_a + pi_b)  # fraction of the pair's points flipped
    return {"alpha": alpha, "pi_a": pi_a, "pi_b": pi_b, "f": f, "own": 1 - f, "other": f,
            "threshold": sp.solve(sp.Eq(1 - f, f), alpha)[0]}


def softmax_flip_gradient(K: int = 3) -> dict:
    """d CE / d logits = softmax(z) - e_y: relabelling y -> y' changes the gradient by e_y - e_y', whatever z."""
    K = validate.positive_int("K", K, minimum=2)
    z = sp.Matrix(sp.symbols(f"z1:{K + 1}", real=True))
    soft = sp.Matrix([sp.exp(zi) for zi in z]) / sum(sp.exp(zi) for zi in z)

    def ce(y):  # cross-entropy of label y (0-based) at logits z
        return -sp.log(soft[y])

    grad = {y: sp.simplify(sp.Matrix([sp.diff(ce(y), zi) for zi in z]) - soft) for y in range(K)}
    diff = sp.simplify(sp.Matrix([sp.diff(ce(1) - ce(0), zi) for zi in z]))
    return {"z": z, "softmax": soft, "grad_minus_softmax": grad, "flip_0_to_1": diff}


def influence_first_order() -> dict:
    """Implicit function theorem for theta(eps) = argmin L(theta) + eps delta(theta): d theta/d eps = -H^-1 grad delta."""
    eps, theta = sp.symbols("epsilon theta", real=True)
    a, c, d = sp.symbols("a c d", positive=True)
    # a one-parameter stand-in: L = a (theta - c)^2 / 2 is the training loss near its optimum c, the
    # flip adds eps d theta (a linear change of the gradient, as for the softmax gradient above)
    L = a * (theta - c) ** 2 / 2 + eps * d * theta
    opt = sp.solve(sp.diff(L, theta), theta)[0]
    return {"optimum": opt, "d_theta_d_eps": sp.diff(opt, eps), "hessian": sp.diff(L, theta, 2),
            "exact_is_linear": sp.simplify(opt - (c - eps * d / a)) == 0}


# ---------------------------------------------------------------------------------------------
# Numeric predictions


def _K(K) -> int:
    return validate.positive_int("K", K, minimum=2)


def _alphas(alpha):
    a = np.asarray(alpha, dtype=float)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return a


def threshold(K) -> float:
    """(K - 1)/K: the largest fraction of random flips that keeps the arg-max of the noisy posterior."""
    K = _K(K)
    return (K - 1) / K


def chance(K) -> float:
    """1/K: the expected accuracy of any class-symmetric learner on labels that carry no information."""
    return 1.0 / _K(K)


def signal(alpha, K):
    """s = 1 - alpha K/(K - 1): the slope of the noisy posterior in the clean one (negative past the threshold)."""
    K = _K(K)
    out = 1.0 - _alphas(alpha) * K / (K - 1)
    return float(out) if np.ndim(out) == 0 else out


def noisy_posterior(p, alpha, K):
    """(1 - alpha) p + alpha (1 - p)/(K - 1) for clean posterior p."""
    p = np.asarray(p, dtype=float)
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"p must be probabilities in [0, 1], got {p!r}")
    K = _K(K)
    alpha = _alphas(alpha)
    out = (1 - alpha) * p + alpha * (1 - p) / (K - 1)
    return float(out) if np.ndim(out) == 0 else out


def noisy_accuracy(acc, alpha, K):
    """Expected accuracy against randomly flipped labels of a classifier of clean accuracy acc.

    The same map as the noisy posterior, alpha/(K-1) + s acc: a prediction agrees with a flipped
    label exactly as the true class's probability is carried into the noisy one.
    """
    acc = np.asarray(acc, dtype=float)
    if not np.all(np.isfinite(acc)) or np.any(acc < 0) or np.any(acc > 1):
        raise ValueError(f"acc must be in [0, 1], got {acc!r}")
    return noisy_posterior(acc, alpha, K)


def heldout_gap_sd(acc, alpha, K, n):
    """Sampling SD of (poisoned held-out accuracy - noisy_accuracy(clean accuracy)) on n held-out points.

    The flipped points are a random subset of the held-out split: the covariance of correctness and
    flipping has variance acc(1-acc) alpha(1-alpha)/n and enters with weight K/(K-1); a wrong
    prediction agrees with a flipped label with probability 1/(K-1), a Bernoulli term.
    """
    K = _K(K)
    n = validate.positive_int("n", n)
    acc, alpha = np.asarray(acc, dtype=float), _alphas(alpha)
    if not np.all(np.isfinite(acc)) or np.any(acc < 0) or np.any(acc > 1):
        raise ValueError(f"acc must be in [0, 1], got {acc!r}")
    q = 1.0 / (K - 1)
    var = (K / (K - 1)) ** 2 * acc * (1 - acc) * alpha * (1 - alpha) / n + (1 - acc) * alpha * q * (1 - q) / n
    out = np.sqrt(var)
    return float(out) if np.ndim(out) == 0 else out


def bayes_all_flipped(posteriors) -> dict:
    """The Bayes learner at alpha = 1 on a population of clean posteriors (n, K), each row a distribution:
    its clean accuracy E[min_j p_j] (it predicts the least likely class), the clean Bayes accuracy
    a0 = E[max_j p_j] and the bound (1 - a0)/(K - 1), which the accuracy never exceeds."""
    P = np.asarray(posteriors, dtype=float)
    if P.ndim != 2 or P.shape[1] < 2 or P.shape[0] < 1:
        raise ValueError(f"posteriors must be an (n, K) array with K >= 2, got shape {P.shape}")
    if not np.all(np.isfinite(P)) or (P < 0).any() or not np.allclose(P.sum(1), 1.0, atol=1e-9):
        raise ValueError("posteriors must be finite, >= 0 and sum to 1 in every row")
    K = P.shape[1]
    a0 = float(P.max(1).mean())
    return {"accuracy": float(P.min(1).mean()), "a0": a0, "bound": (1 - a0) / (K - 1)}


def flip_matrix(flip: str, alpha, shares, target: int = 0, pair=(1, 7)) -> np.ndarray:
    """C[i, j] = P(noisy label j | clean label i), the flip matrix of an attack that flips a fraction alpha of the training set,
    from the class shares (K,): random (each label kept with 1 - alpha, else a uniform other class),
    target-class (a fraction rho = alpha/(1 - pi_t) of every other class sent to t) or pair (a fraction
    f = alpha/(pi_a + pi_b) of each of a and b swapped)."""
    alpha = validate.fraction("alpha", alpha)
    pi = np.asarray(shares, dtype=float)
    if pi.ndim != 1 or pi.size < 2 or not np.all(np.isfinite(pi)) or (pi < 0).any() or abs(pi.sum() - 1) > 1e-9:
        raise ValueError("shares must be K >= 2 class shares, >= 0, summing to 1")
    K = pi.size
    if flip == "random":
        return (1 - alpha) * np.eye(K) + alpha / (K - 1) * (np.ones((K, K)) - np.eye(K))
    T = np.eye(K)
    if flip == "target-class":
        rho = alpha / (1 - pi[target])
        if rho > 1:
            raise ValueError(f"alpha must be at most 1 - pi_t = {1 - pi[target]:.4g} for target-class flips")
        for c in range(K):
            if c != target:
                T[c, c], T[c, target] = 1 - rho, rho
        return T
    if flip == "pair":
        a, b = pair
        f = alpha / (pi[a] + pi[b])
        if f > 1:
            raise ValueError(f"alpha must be at most pi_a + pi_b = {pi[a] + pi[b]:.4g} for pair flips")
        T[a, a], T[a, b], T[b, b], T[b, a] = 1 - f, f, 1 - f, f
        return T
    raise ValueError(f"flip must be one of random, target-class, pair; got {flip!r}")


def target_threshold(pi_t) -> float:
    """(1 - pi_t)/2: flipping to one target class of share pi_t takes over every other class there."""
    pi_t = validate.fraction("pi_t", pi_t)
    if pi_t >= 1:
        raise ValueError(f"pi_t must be < 1, got {pi_t!r}")
    return (1 - pi_t) / 2


def pair_threshold(pi_a, pi_b) -> float:
    """(pi_a + pi_b)/2: the pair a <-> b is swapped when half of its points are flipped."""
    pi_a, pi_b = validate.fraction("pi_a", pi_a), validate.fraction("pi_b", pi_b)
    if not 0 < pi_a + pi_b <= 1:
        raise ValueError(f"pi_a + pi_b must be in (0, 1], got {pi_a + pi_b!r}")
    return (pi_a + pi_b) / 2


# Gauss-Hermite nodes for expectations over a standard normal u: E f(u) ~ sum w_i f(sqrt(2) x_i) / sqrt(pi)
_GH_X, _GH_W = np.polynomial.hermite.hermgauss(80)
_GH_U, _GH_W = math.sqrt(2.0) * _GH_X, _GH_W / math.sqrt(math.pi)


def noisy_margin(alpha, K):
    """m = log p~_true - log p~_other = log((1 - alpha)(K - 1)/alpha) under random flips (+inf at 0)."""
    K = _K(K)
    alpha = _alphas(alpha)
    with np.errstate(divide="ignore"):
        out = np.log(np.clip(1 - alpha, 0, None) * (K - 1)) - np.log(alpha)
    return float(out) if np.ndim(out) == 0 else out


def race_win(mu, K):
    """P(mu + u_1 > u_j for all j = 2..K), u iid N(0, 1): the true class wins a race of K noisy logits.

    = E_u Phi(u + mu)^(K-1). Equals 1/K at mu = 0 (symmetry), 1 at +inf, 0 at -inf.
    """
    K = _K(K)
    mu = np.asarray(mu, dtype=float)
    if np.any(np.isnan(mu)):
        raise ValueError("mu must not be NaN")
    flat = np.clip(mu.reshape(-1), -60.0, 60.0)
    out = (stats.norm.cdf(_GH_U[None, :] + flat[:, None]) ** (K - 1) * _GH_W).sum(1)
    out = np.clip(out, 0.0, 1.0).reshape(mu.shape)
    return float(out) if np.ndim(out) == 0 else out


def random_flip_law(alpha, a0, kappa, alpha_c, K=10):
    """Accuracy under random flips: 1/K + (a0 - 1/K)(K V - 1)/(K - 1), V = race_win(kappa m(alpha')).

    Logits = log noisy posterior + N(0, 1/kappa^2) errors (finite data and capacity): m is the
    noisy margin (noisy_margin) at alpha' = alpha (K-1)/(K alpha_c), so that accuracy reaches 1/K at
    alpha_c (predicted: (K-1)/K). a0: accuracy without flips.
    """
    K = _K(K)
    alpha = _alphas(alpha)
    if not (np.isfinite(alpha_c) and alpha_c > 0):
        raise ValueError(f"alpha_c must be a finite number > 0, got {alpha_c!r}")
    scaled = np.clip(alpha * threshold(K) / alpha_c, 0.0, 1.0)
    V = race_win(kappa * noisy_margin(scaled, K), K)
    return 1.0 / K + (a0 - 1.0 / K) * (K * V - 1) / (K - 1)


def two_class_law(alpha, a0, kappa, alpha_c, share):
    """Accuracy a0 [1 - share (1 - Phi(kappa log((1 - rho)/rho)/sqrt 2))] when flips move labels between two classes.

    In each attacked region a fraction rho of the labels becomes one other class (target class t:
    the regions of the other classes, share = 1 - pi_t; pair a <-> b: share = pi_a + pi_b) and the
    region is won by a race of two noisy logits; rho = alpha/(2 alpha_c) so that the attacked
    regions' accuracy halves at alpha_c (predicted: share/2). The other regions keep accuracy a0.
    """
    share = validate.fraction("share", share)
    alpha = _alphas(alpha)
    if not (np.isfinite(alpha_c) and alpha_c > 0):
        raise ValueError(f"alpha_c must be a finite number > 0, got {alpha_c!r}")
    rho = np.clip(alpha / (2 * alpha_c), 1e-12, 1 - 1e-12)
    return (1 - share) * a0 + share * a0 * stats.norm.cdf(kappa * np.log((1 - rho) / rho) / math.sqrt(2))


def neighbours(X, k: int) -> torch.Tensor:
    """(n, k) indices of each row's k nearest other rows (Euclidean distance on flattened X)."""
    k = validate.positive_int("k", k)
    X = torch.as_tensor(X).reshape(len(X), -1).double()
    if k >= len(X):
        raise ValueError(f"k must be below the number of points {len(X)}, got {k}")
    D = torch.cdist(X, X)
    D.fill_diagonal_(math.inf)
    return D.topk(k, largest=False).indices


def _agree_below(n_same, k, alpha, K, cut):
    """P(Bin(n_same, 1 - alpha) + Bin(k - n_same, alpha/(K-1)) < cut) for n_same = 0..k."""
    out = np.zeros(k + 1)
    for m in range(k + 1):
        pmf = np.convolve(stats.binom.pmf(np.arange(m + 1), m, 1 - alpha),
                          stats.binom.pmf(np.arange(k - m + 1), k - m, alpha / (K - 1)))
        out[m] = pmf[: max(int(cut), 0)].sum() if cut > 0 else 0.0
    return out[n_same]


def knn_filter_prediction(y, nbrs, alpha, K, threshold=0.5) -> dict:
    """Expected fractions of clean points discarded and of flipped points caught by the k-NN filter.

    y: clean labels (n,); nbrs: (n, k) neighbour indices (the graph does not change: flips touch
    labels only). A point is discarded when more than `threshold` of its neighbours' labels differ
    from its own. Under random flips each neighbour keeps its label with probability 1 - alpha and
    takes any given other label with probability alpha/(K - 1) (independence between neighbours is
    the only approximation: exactly round(alpha n) points are flipped).
    """
    K = _K(K)
    alpha = validate.fraction("alpha", alpha)
    threshold = validate.fraction("threshold", threshold)
    y = torch.as_tensor(y).long()
    nbrs = torch.as_tensor(nbrs).long()
    if nbrs.dim() != 2 or nbrs.shape[0] != y.shape[0]:
        raise ValueError(f"nbrs must have shape (n, k) with n = {y.shape[0]}, got {tuple(nbrs.shape)}")
    k = nbrs.shape[1]
    # kept iff disagreements <= threshold k, i.e. agreements >= k - floor(threshold k)
    cut = k - math.floor(threshold * k + 1e-9)
    labels = y[nbrs]  # (n, k) clean labels of the neighbours
    same = (labels == y[:, None]).sum(1).numpy()
    discard_clean = _agree_below(same, k, alpha, K, cut).mean()
    # a flipped point carries a uniformly chosen wrong label j: count the neighbours of clean label j
    counts = torch.nn.functional.one_hot(labels, K).sum(1).numpy()  # (n, K)
    caught = _agree_below(counts, k, alpha, K, cut)  # (n, K): caught if flipped to that class
    own = np.eye(K, dtype=bool)[y.numpy()]
    catch_flipped = (np.where(own, 0.0, caught).sum(1) / (K - 1)).mean()
    return {"discard_clean": float(discard_clean), "catch_flipped": float(catch_flipped)}


def _augment(X) -> torch.Tensor:
    X = torch.as_tensor(X).reshape(len(X), -1).double()
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)


def softmax_hessian(W, b, X, l2) -> torch.Tensor:
    """Hessian (K(d+1), K(d+1)) of mean CE + l2/2 |[W, b]|^2 of softmax regression, theta = [W, b] row-major."""
    l2 = validate.non_negative("l2", l2)
    Xa = _augment(X)
    theta = torch.cat([torch.as_tensor(W).double(), torch.as_tensor(b).double()[:, None]], 1)
    P = torch.softmax(Xa @ theta.T, 1)  # (n, K)
    n, D = Xa.shape
    K = theta.shape[0]
    # sum_i (diag p_i - p_i p_i^T) (x) x_i x_i^T, as (K, D, K, D)
    M = torch.diag_embed(P) - P[:, :, None] * P[:, None, :]  # (n, K, K)
    # sum_i M_i[k, l] x_ia x_ib as one matrix product: (D, n) @ (n, D K K) -> [b, a, k, l]
    B = (Xa[:, :, None] * M.reshape(n, 1, K * K)).reshape(n, D * K * K)
    H = (Xa.T @ B).reshape(D, D, K, K).permute(2, 1, 3, 0).reshape(K * D, K * D) / n
    return H + l2 * torch.eye(K * D, dtype=Xa.dtype)


def flip_influence(W, b, X_train, y_train, X_test, y_test, l2) -> torch.Tensor:
    """(n, K) first-order change of the mean test CE when training label i is changed to class j.

    Changing y_i -> j changes the gradient of the mean training loss by (e_{y_i} - e_j) x_i^T / n
    (softmax_flip_gradient), so theta moves by -H^-1 of that and the test loss by
    (V_j - V_{y_i}) . x_i / n, where V = H^-1 grad(test loss) reshaped (K, d+1). Zero at j = y_i.
    """
    Xa, Xt = _augment(X_train), _augment(X_test)
    y_train, y_test = torch.as_tensor(y_train).long(), torch.as_tensor(y_test).long()
    theta = torch.cat([torch.as_tensor(W).double(), torch.as_tensor(b).double()[:, None]], 1)
    K, D = theta.shape
    P = torch.softmax(Xt @ theta.T, 1)
    g = ((P - torch.nn.functional.one_hot(y_test, K).double()).T @ Xt / len(Xt)).reshape(-1)
    V = torch.linalg.solve(softmax_hessian(W, b, X_train, l2), g).reshape(K, D)
    scores = Xa @ V.T  # (n, K): V_j . x_i
    return (scores - scores.gather(1, y_train[:, None])) / len(Xa)
