"""The compression chapter's derivations (sympy): Zhu and Gupta's cubic schedule (its values at both ends, its
rate, its monotonicity), the sparsity a schedule would reach if each step pruned a fraction of what is left
(the laws' rival), the linear-model view of FGSM against a sparse weight vector, and the norms of a low-rank
matrix."""
from __future__ import annotations

import math

import sympy as sp

t, t0, dt, n, s_f, s_i = sp.symbols("t t_0 Delta_t n s_f s_i", positive=True)
tau = sp.Symbol("tau", nonnegative=True)  # (t - t_0) / (n dt), the schedule's progress in [0, 1]


def cubic() -> sp.Expr:
    """s(tau) = s_f + (s_i - s_f)(1 - tau)^3."""
    return s_f + (s_i - s_f) * (1 - tau) ** 3


def schedule_facts() -> dict:
    """The schedule's value at both ends, its rate ds/dtau, and where that rate is largest."""
    s = cubic()
    rate = sp.factor(sp.diff(s, tau))
    return {"start": sp.simplify(s.subs(tau, 0)), "end": sp.simplify(s.subs(tau, 1)), "rate": rate,
            "rate_start": sp.simplify(rate.subs(tau, 0)), "rate_end": sp.simplify(rate.subs(tau, 1))}


def compounded(steps: list[float]) -> float:
    """The rival: the sparsity reached if pruning step j removed the fraction s_j of the weights *still left*
    (instead of setting the layer's sparsity to s_j): 1 - prod_j (1 - s_j)."""
    return 1.0 - math.prod(1.0 - s for s in steps)


def fgsm_linear() -> dict:
    """A linear score w.x: FGSM within ||delta||_inf <= eps lowers the margin by eps ||w||_1, so a point of margin
    m falls at eps > m / ||w||_1. With k non-zero weights, ||w||_2 <= ||w||_1 <= sqrt(k) ||w||_2: pruning can only
    shrink the worst-case loss per unit of ||w||_2, and the margins shrink with it."""
    eps, m, k = sp.symbols("epsilon m k", positive=True)
    w1, w2 = sp.symbols("\\|w\\|_1 \\|w\\|_2", positive=True)
    return {"loss": eps * w1, "flip": sp.Eq(eps, m / w1), "bound": sp.sqrt(k) * w2}


def low_rank_norms() -> dict:
    """For a rank-r matrix: ||W||_2 <= ||W||_F <= sqrt(r) ||W||_2 (the singular values: max, root sum of squares)."""
    r = sp.Symbol("r", positive=True, integer=True)
    sigma = sp.Symbol("sigma_1", positive=True)
    return {"frobenius_max": sp.sqrt(r) * sigma}
