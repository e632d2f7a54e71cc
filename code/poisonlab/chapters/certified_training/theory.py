"""The certified-training chapter's derivations (sympy): the interval of an affine map in centre/radius form,
the growth of IBP's radius through a stack of layers, and the robust cross-entropy at eps = 0."""
from __future__ import annotations

import sympy as sp


def affine_interval() -> dict:
    """For x_i in [c_i - r_i, c_i + r_i], w.x + b ranges over w.c + b -/+ sum |w_i| r_i: each term w_i x_i is
    largest at the end of its interval that the sign of w_i picks. Checked on two inputs and every sign."""
    c1, c2, b = sp.symbols("c_1 c_2 b", real=True)
    r1, r2 = sp.symbols("r_1 r_2", nonnegative=True)
    out = {}
    for s1 in (1, -1):
        for s2 in (1, -1):
            w1, w2 = s1 * sp.Symbol("a_1", positive=True), s2 * sp.Symbol("a_2", positive=True)
            corners = [w1 * (c1 + e1 * r1) + w2 * (c2 + e2 * r2) + b for e1 in (1, -1) for e2 in (1, -1)]
            upper = w1 * c1 + w2 * c2 + b + sp.Abs(w1) * r1 + sp.Abs(w2) * r2
            # the claimed upper end is one of the corners, and no corner exceeds it
            out[(s1, s2)] = (any(sp.simplify(k - upper) == 0 for k in corners),
                             all(sp.simplify(upper - k).is_nonnegative for k in corners))
    return out


def depth_growth() -> sp.Expr:
    """With every unit active, L layers of n inputs each and |W_ij| = a: the radius grows as (n a)^L r, i.e. by
    ||  |W|  ||_inf = n a per layer: the product of the norms the chapter's bound multiplies."""
    n, a, r, L = sp.symbols("n a r L", positive=True)
    return (n * a) ** L * r


def robust_ce_at_zero() -> sp.Expr:
    """At eps = 0 the elided worst-case logits are z_k - z_y (z_y's own 0): their cross-entropy minus the plain
    cross-entropy of z, for three classes and y = 1, simplifies to 0."""
    z1, z2, z3 = sp.symbols("z_1 z_2 z_3", real=True)
    plain = -z1 + sp.log(sp.exp(z1) + sp.exp(z2) + sp.exp(z3))
    robust = -0 + sp.log(sp.exp(0) + sp.exp(z2 - z1) + sp.exp(z3 - z1))
    return sp.simplify(sp.expand_log(robust - plain, force=True))
