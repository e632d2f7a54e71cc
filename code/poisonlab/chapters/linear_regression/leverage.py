"""Poison placed by leverage: the LAD and Huber slopes against an attacker who chooses the points of
largest |x| (label poison, breakdown at erfc(sqrt(log 2))) or moves one x itself (feature poison, 1/n).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ... import data, solvers, stats, validate
from . import theory
from .studies import _memo
from .sweeps import SIGMA, _lin, _sizes

PLACEMENTS = ("leverage", "random")
FITS = ("l1", "huber")
SHIFT = 1000.0  # the poison's size: far enough that every poisoned residual keeps its sign
BISECTION = 1e-6  # relative resolution of the capture leverage
FEATURE_TARGET = SHIFT  # feature poison: the moved point's label lies on a line of slope w - SHIFT, far away


def poisoned_points(x, k: int, placement: str, seed: int) -> np.ndarray:
    """Indices of the k points to poison: the k largest |x| ("leverage") or k random ones ("random").

    Both are nested in k (a prefix of one fixed order), so brokenness is monotone in k.
    """
    x = np.asarray(validate.finite_array("x", x), dtype=float).ravel()
    placement = validate.choice("placement", placement, PLACEMENTS)
    if not 0 <= int(k) <= x.size:
        raise ValueError(f"k must be in [0, {x.size}], got {k!r}")
    if placement == "leverage":
        order = np.argsort(-np.abs(x), kind="stable")
    else:
        order = np.random.default_rng(seed).permutation(x.size)
    return order[: int(k)]


def tilt_labels(x, y, idx, shift: float) -> np.ndarray:
    """y <- y + shift sign(x) on the points idx: the poison pulls the slope up, not the intercept."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(validate.finite_array("y", y), dtype=float).ravel()
    if y.shape != x.shape:
        raise ValueError(f"y must have the shape of x {x.shape}, got {y.shape}")
    shift = validate.finite("shift", shift)
    out = y.copy()
    out[idx] += shift * np.sign(x[idx])
    return out


def slope(x, y, fit: str, delta: float = 1.0) -> float:
    """The exact LAD ("l1") or Huber slope of y on x (with an intercept)."""
    fit = validate.choice("fit", fit, FITS)
    X = torch.as_tensor(np.asarray(x, dtype=float)).reshape(-1, 1)
    Y = torch.as_tensor(np.asarray(y, dtype=float)).reshape(-1, 1)
    W, _ = solvers.l1(X, Y) if fit == "l1" else solvers.huber(X, Y, delta)
    return float(W.reshape(-1)[0])


def broken(x, y, idx, fit: str) -> bool:
    """Whether the slope follows the poison: doubling the poison's size moves the slope.

    Below the breakdown the poisoned residuals keep their sign, their terms are linear in the slope and
    the fit does not depend on the size at all (to the solver's rounding); beyond it the slope error grows
    in proportion to the size, by SHIFT / max|x| or more when the size doubles.
    """
    w1 = slope(x, tilt_labels(x, y, idx, SHIFT), fit)
    w2 = slope(x, tilt_labels(x, y, idx, 2 * SHIFT), fit)
    return abs(w2 - w1) > 1e-3 * SHIFT


def breakdown_count(x, y, placement: str, fit: str, seed: int) -> int:
    """The smallest number of poisoned points that breaks the slope (bisection: brokenness is monotone)."""
    lo, hi = 0, x.size  # lo never breaks (no poison); hi always does (every label follows the poison)
    while hi - lo > 1:
        k = (lo + hi) // 2
        if broken(x, y, poisoned_points(x, k, placement, seed), fit):
            hi = k
        else:
            lo = k
    return hi


def _design(profile, r: int):
    ds = data.make_linear(_sizes(profile).n, 1, 1, SIGMA, seed=r)
    return ds.X_train.double().numpy().ravel(), ds.y_train.double().numpy().ravel(), float(ds.params["W"])


@_memo
def breakdown_points(profile=None, seed: int = 0) -> pd.DataFrame:
    """Per repeat, fit and placement: the breakdown fraction k/N measured on the exact fits, and the
    sample condition's prediction (theory.sample_breakdown) for that design."""
    rows = []
    for r in range(_sizes(profile).leverage_repeats):
        x, y, _ = _design(profile, seed + r)
        for placement in PLACEMENTS:
            predicted = theory.sample_breakdown(x, poisoned_points(x, x.size, placement, seed + r))
            for fit in FITS:
                k = breakdown_count(x, y, placement, fit, seed + r)
                # the sample condition is exact for the leverage order (the slope direction binds), not for
                # a random set, where the intercept's direction mixes in
                rows.append({"seed": seed + r, "placement": placement, "fit": fit, "breakdown": k / x.size,
                             "sample_prediction": predicted if placement == "leverage" else np.nan})
    return pd.DataFrame.from_records(rows)


def breakdown_fraction(points: pd.DataFrame, fit: str, placement: str = "leverage", level: float = 0.95):
    """Mean breakdown fraction over repeats with its jackknife interval: (estimate, lo, hi, se)."""
    rows = points[(points["fit"] == fit) & (points["placement"] == placement)]
    return stats.jackknife(rows, lambda r: float(r["breakdown"].mean()), level)


def alphas(profile=None) -> list:
    """The fractions of the slope-error curve: fine enough to resolve both breakdowns."""
    z = _sizes(profile)
    return _lin(0.02, 0.6, 30 if z.leverage_repeats >= 20 else 12)


@_memo
def slope_errors(profile=None, seed: int = 0, shift: float = 50.0) -> pd.DataFrame:
    """Tidy rows (seed, placement, fit, alpha, slope_error) of the exact LAD and Huber fits under poison
    of size `shift` on the highest-|x| or on random points, alpha over `alphas(profile)`."""
    rows = []
    for r in range(_sizes(profile).leverage_repeats):
        x, y, w = _design(profile, seed + r)
        for placement in PLACEMENTS:
            for a in alphas(profile):
                idx = poisoned_points(x, round(a * x.size), placement, seed + r)
                y_p = tilt_labels(x, y, idx, shift)
                for fit in FITS:
                    rows.append({"seed": seed + r, "placement": placement, "fit": fit, "alpha": a,
                                 "slope_error": slope(x, y_p, fit) - w})
    return pd.DataFrame.from_records(rows)


@_memo
def feature_poisoning(profile=None, seed: int = 0, ratios=tuple(np.geomspace(0.05, 5, 25))) -> pd.DataFrame:
    """One training point moved to x = L = ratio x L* (theory.feature_breakdown_leverage of the others), its
    label on the line of slope w - SHIFT: how far each fit's slope moves towards w - SHIFT, (w_hat - w) / -SHIFT."""
    rows = []
    for r in range(_sizes(profile).leverage_repeats):
        x, y, w = _design(profile, seed + r)
        L_star = theory.feature_breakdown_leverage(x[1:])
        for ratio in ratios:
            x_p, y_p = _moved_point(x, y, w, ratio * L_star)
            ls = float(solvers.least_squares(torch.as_tensor(x_p).reshape(-1, 1),
                                             torch.as_tensor(y_p).reshape(-1, 1))[0].reshape(-1)[0])
            # (no Huber: with labels of size SHIFT * L its Newton solver needs more than its 500 steps)
            for fit, w_hat in (("l2", ls), ("l1", slope(x_p, y_p, "l1"))):
                rows.append({"seed": seed + r, "fit": fit, "ratio": float(ratio),
                             "moved": (w_hat - w) / -FEATURE_TARGET})
    return pd.DataFrame.from_records(rows)


def _moved_point(x, y, w: float, L: float):
    """The design with point 0 moved to x = L, its label on the attacker's line of slope w - SHIFT."""
    x_p, y_p = x.copy(), y.copy()
    x_p[0] = L
    y_p[0] = float(np.median(y - w * x)) + (w - FEATURE_TARGET) * L  # the line through the data's centre
    return x_p, y_p


def captured(x, y, w: float, L: float) -> bool:
    """Whether the moved point has taken the LAD fit: the fit passes through it (to rounding), so its slope
    is the attacker's w - SHIFT up to O(1/L)."""
    x_p, y_p = _moved_point(x, y, w, L)
    W, b = solvers.l1(torch.as_tensor(x_p).reshape(-1, 1), torch.as_tensor(y_p).reshape(-1, 1))
    return abs(y_p[0] - float(W.reshape(-1)[0]) * L - float(b.reshape(-1)[0])) < 1e-9 * abs(y_p[0])


@_memo
def feature_breakdowns(profile=None, seed: int = 0) -> pd.DataFrame:
    """Per repeat: the smallest leverage L that hands the LAD slope to one moved point (bisection on log L,
    to 1e-6 relative), over its prediction L* (theory.feature_breakdown_leverage of the other points)."""
    rows = []
    for r in range(_sizes(profile).leverage_repeats):
        x, y, w = _design(profile, seed + r)
        L_star = theory.feature_breakdown_leverage(x[1:])
        lo, hi = 0.1 * L_star, 10 * L_star
        if captured(x, y, w, lo) or not captured(x, y, w, hi):
            raise RuntimeError("the capture leverage must lie within [L*/10, 10 L*]")
        while hi / lo > 1 + BISECTION:
            mid = float(np.sqrt(lo * hi))
            lo, hi = (lo, mid) if captured(x, y, w, mid) else (mid, hi)
        rows.append({"seed": seed + r, "L": hi, "L_star": L_star, "ratio": hi / L_star,
                     "ls_scale": float(np.sqrt((x[1:] ** 2).sum())) / L_star})
    return pd.DataFrame.from_records(rows)


_FIT_NAMES = {"l1": "LAD", "huber": "Huber", "l2": "least squares"}
_PLACEMENT_NAMES = {"leverage": "largest |x|", "random": "random points"}


def slope_summary(profile=None) -> pd.DataFrame:
    """Mean |w_hat - w| with its 95% t-interval over repeats, per poison ("LAD, largest |x|", ...) and alpha."""
    rows = slope_errors(profile).copy()
    rows["abs_slope_error"] = rows["slope_error"].abs()
    rows["poison"] = [f"{_FIT_NAMES[f]}, {_PLACEMENT_NAMES[p]}" for f, p in zip(rows["fit"], rows["placement"])]
    return stats.summarize(rows, ["poison", "alpha"], ["abs_slope_error"], count="repeats",
                           ranges={"abs_slope_error": (0.0, np.inf)})


def feature_summary(profile=None) -> pd.DataFrame:
    """Mean fraction of the way to the attacker's slope with its 95% t-interval, per fit and L / L*."""
    rows = feature_poisoning(profile).copy()
    rows["fit"] = [_FIT_NAMES[f] for f in rows["fit"]]
    return stats.summarize(rows, ["fit", "ratio"], ["moved"], count="repeats")


def agreement(points: pd.DataFrame) -> dict:
    """How often (out of the repeats) LAD and Huber broke at the same k, and LAD at the sample condition's k."""
    lev = points[points["placement"] == "leverage"].pivot_table(index="seed", columns="fit", values="breakdown")
    pred = points[(points["placement"] == "leverage") & (points["fit"] == "l1")].set_index("seed")["sample_prediction"]
    return {"repeats": len(lev), "same": int((lev["l1"] == lev["huber"]).sum()),
            "sample": int(np.isclose(lev["l1"], pred.loc[lev.index]).sum())}
