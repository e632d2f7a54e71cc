"""The exact worst case of a small ReLU network over a box, by mixed-integer linear programming: the reference
that IBP and CROWN (models.bounds, models.crown) bound from below.

relu is piecewise linear, so min over the box of c . z (z the logits) is a MILP (Tjeng et al. 2019): the input x
and every hidden unit's output a are variables, each Linear layer a linear equation, and a ReLU a = relu(z) whose
pre-activation can take both signs (l < 0 < u) gets a binary d, the unit's phase, with
    a >= 0,  a >= z,  a <= u d,  a <= z - l (1 - d)
(the big-M formulation: d = 1 forces a = z >= 0, d = 0 forces a = 0 >= z). The Ms l, u are IBP's bounds of the
pre-activation over the box: any valid bounds make the formulation exact, tighter ones only make it faster. A
unit IBP proves stable is linear (a = z, or a = 0) and needs no binary. Everything is solved in float64 by HiGHS
(scipy.optimize.milp) with a zero relative gap, one MILP per row and class; the cost is exponential in the
number of unstable units in the worst case, so this is for small nets (two inputs and a few dozen hidden units,
or one hidden layer of a few dozen units).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import Tensor

from .bounds import ball, interval
from .crown import _mlp
from .spec import Spec

__all__ = ["exact_margins", "exact_logit_bounds"]


def _widen(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IBP's bounds, a hair wider: rounding could leave a float bound inside the true range and cut the optimum
    off; a wider M only loosens the relaxation of the binaries, never the MILP's optimum."""
    pad = 1e-9 * (1 + np.maximum(np.abs(lo), np.abs(hi)))
    return lo - pad, hi + pad


class _Program:
    """The MILP's variables and constraints for one row's box: x, then each hidden layer's a, then the binaries;
    `solve(c, const)` minimises c . (the last hidden layer's a, or x) + const."""

    def __init__(self, layers, pre, lo: np.ndarray, hi: np.ndarray):
        d = len(lo)
        sizes = [W.shape[0] for W, _ in layers[:-1]]
        unstable = [(l < 0) & (u > 0) for l, u in pre]
        n_var = d + sum(sizes) + sum(int(s.sum()) for s in unstable)
        var_lo, var_hi = np.zeros(n_var), np.zeros(n_var)
        var_lo[:d], var_hi[:d] = lo, hi
        integrality = np.zeros(n_var)
        rows, row_lo, row_hi = [], [], []

        def add(row, low, high):
            rows.append(row)
            row_lo.append(low)
            row_hi.append(high)

        prev = slice(0, d)
        start, binary = d, d + sum(sizes)
        for (W, b), (l, u), unst in zip(layers[:-1], pre, unstable):
            here = slice(start, start + W.shape[0])
            var_hi[here] = np.maximum(u, 0)
            for i in range(W.shape[0]):
                a = start + i
                if u[i] <= 0:  # inactive on the whole box: a = 0 (its bounds say so)
                    continue
                z = np.zeros(n_var)
                z[prev] = -W[i]
                z[a] = 1.0  # this row is a - W_i . prev, to be compared with b_i
                if l[i] >= 0:  # active: a = z
                    add(z, b[i], b[i])
                    continue
                add(z, b[i], np.inf)  # a >= z
                dz = z.copy()
                dz[binary] = -l[i]
                add(dz, -np.inf, b[i] - l[i])  # a <= z - l (1 - d)
                du = np.zeros(n_var)
                du[a], du[binary] = 1.0, -u[i]
                add(du, -np.inf, 0.0)  # a <= u d
                var_hi[binary], integrality[binary] = 1.0, 1
                binary += 1
            prev, start = here, start + W.shape[0]
        self.n_var, self.last = n_var, prev
        self.layers, self.lo, self.hi = layers, lo, hi
        self.bounds, self.integrality = Bounds(var_lo, var_hi), integrality
        self.constraints = [LinearConstraint(np.array(rows), row_lo, row_hi)] if rows else []

    def solve(self, c: np.ndarray, const: float, row: int, what: str) -> float:
        obj = np.zeros(self.n_var)
        obj[self.last] = c
        res = milp(obj, integrality=self.integrality, bounds=self.bounds, constraints=self.constraints,
                   options={"mip_rel_gap": 0.0})
        if res.status != 0 or res.fun is None:
            raise ValueError(f"the MILP of row {row} ({what}) did not solve to optimality: status {res.status}, "
                             f"{res.message}")
        # The value is the network's own at the optimal input: the solver meets the equations only to its
        # feasibility tolerance (1e-7), so its objective can sit a little off any value the network takes; this
        # one is attained (>= the minimum) and exact for a zero radius.
        a = np.clip(res.x[:len(self.lo)], self.lo, self.hi)
        for W, b in self.layers[:-1]:
            a = np.maximum(W @ a + b, 0.0)
        value = float(c @ a)
        if abs(value - res.fun) > 1e-6 * (1 + abs(value)):
            raise ValueError(f"the MILP of row {row} ({what}) is numerically unreliable: objective {res.fun}, "
                             f"network's value at its solution {value}")
        return value + const


def _programs(spec: Spec, params: dict, x: Tensor, eps, box):
    """The float64 layers and one _Program per row of x."""
    flat, layers = _mlp(spec, params, "exact margins")
    params64 = {k: v.detach().double() for k, v in params.items()}
    lo, hi = ball(torch.as_tensor(x).detach().double(), eps, box)
    if lo.dim() > 2 and not flat:
        raise ValueError(f"model has no leading Flatten, so its inputs must be flat rows (B, d), got "
                         f"{tuple(lo.shape)}")
    lo, hi = lo.reshape(len(lo), -1), hi.reshape(len(hi), -1)
    if lo.shape[1] != layers[0][0].shape[1]:
        raise ValueError(f"inputs have {lo.shape[1]} features, the model's first Linear layer takes "
                         f"{layers[0][0].shape[1]}")
    # the spec's position of each hidden Linear layer: interval(..., upto=position + 1) bounds its output
    first = 1 if flat else 0
    pre = [interval(spec, params64, lo, hi, upto=first + 2 * j + 1) for j in range(len(layers) - 1)]
    np_layers = [(W.detach().double().numpy(),
                  np.zeros(W.shape[0]) if b is None else b.detach().double().numpy()) for W, b in layers]
    lo_np, hi_np = lo.numpy(), hi.numpy()
    programs = []
    for i in range(len(lo_np)):
        pre_i = [_widen(pl[i].numpy(), pu[i].numpy()) for pl, pu in pre]
        programs.append(_Program(np_layers, pre_i, lo_np[i], hi_np[i]))
    return np_layers, programs


def exact_margins(spec: Spec, params: dict, x: Tensor, y: Tensor, eps, box=(0.0, 1.0)) -> np.ndarray:
    """(B, classes) float64: min of z_y - z_k over the clipped L_inf ball of radius eps around x (0 at k = y), one
    MILP per row and k != y. ValueError if a MILP does not solve to optimality."""
    layers, programs = _programs(spec, params, x, eps, box)
    W, b = layers[-1]
    y = np.asarray(torch.as_tensor(y).reshape(-1).long())
    if len(y) != len(programs) or ((y < 0) | (y >= W.shape[0])).any():
        raise ValueError(f"y must hold one class in [0, {W.shape[0]}) per row of x")
    out = np.zeros((len(programs), W.shape[0]))
    for i, (program, yi) in enumerate(zip(programs, y)):
        for k in range(W.shape[0]):
            if k != yi:
                out[i, k] = program.solve(W[yi] - W[k], b[yi] - b[k], i, f"margin of class {yi} over {k}")
    return out


def exact_logit_bounds(spec: Spec, params: dict, x: Tensor, eps, box=(0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) (B, classes) float64: the exact range of each logit over the clipped L_inf ball of radius eps
    around x, two MILPs per row and class."""
    layers, programs = _programs(spec, params, x, eps, box)
    W, b = layers[-1]
    lo, hi = np.zeros((len(programs), W.shape[0])), np.zeros((len(programs), W.shape[0]))
    for i, program in enumerate(programs):
        for k in range(W.shape[0]):
            lo[i, k] = program.solve(W[k], b[k], i, f"min of logit {k}")
            hi[i, k] = -program.solve(-W[k], -b[k], i, f"max of logit {k}")
    return lo, hi
