"""Laws: one quantitative claim each, a predicted value against a fitted one with its interval, and
the laws table of a chapter.

A law's verdict is one of three. "no": the prediction lies outside the interval (and beyond any
tolerance). "not resolved": it lies inside, but the interval cannot tell: its half-width exceeds
RESOLUTION (10%) of the law's scale (by default |predicted|), or it also contains the value of the
law's named rival theory. "yes": otherwise. Every law also reports the smallest deviation from its
prediction that its test detects with 80% power (`detectable`) and a p-value, which `table` corrects
for the number of laws of a chapter by Holm's step-down method.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from .. import validate
from .fits import Fit


def agreement(predicted, measured_mean, measured_lo, measured_hi, tol=None):
    """Whether `predicted` lies in [lo, hi] or within `tol` of the mean; a bool, or an array for arrays."""
    p = validate.finite_array("predicted", predicted)
    mean = validate.finite_array("measured_mean", measured_mean)
    lo, hi = validate.finite_array("measured_lo", measured_lo), validate.finite_array("measured_hi", measured_hi)
    if np.any(lo > hi):
        raise ValueError("measured_lo must be <= measured_hi")
    ok = (lo <= p) & (p <= hi)
    if tol is not None:
        ok = ok | (np.abs(mean - p) <= validate.non_negative("tol", tol))
    return bool(ok) if np.ndim(ok) == 0 else ok


RESOLUTION = 0.10  # an interval wider than +-10% of the law's scale cannot confirm it
POWER = 0.80  # the power at which `detectable` is stated
VERDICTS = ("yes", "no", "not resolved")


@dataclass(frozen=True)
class Law:
    """One quantitative claim: a predicted value against a fitted one with its CI [lo, hi]."""

    statement: str
    predicted: float
    fitted: float
    lo: float
    hi: float
    tol: float | None = None  # agreement also when |fitted - predicted| <= tol
    how: str = ""  # how `fitted` was measured, e.g. "fitted exponent", "slope", "mean at alpha = 0.1"
    scale: float | None = None  # the size resolution is judged against; None: |predicted|
    rival: float | None = None  # the statistic's value under a named wrong theory
    level: float = 0.95  # the level of [lo, hi]

    def __post_init__(self):
        if not isinstance(self.statement, str) or not self.statement:
            raise ValueError("statement must be a non-empty string")
        for name in ("predicted", "fitted", "lo", "hi"):
            object.__setattr__(self, name, validate.finite(name, getattr(self, name)))
        if self.lo > self.hi:
            raise ValueError(f"lo must be <= hi, got lo = {self.lo}, hi = {self.hi}")
        if self.tol is not None:
            object.__setattr__(self, "tol", validate.non_negative("tol", self.tol))
        if self.scale is not None:
            object.__setattr__(self, "scale", validate.non_negative("scale", self.scale))
        if self.rival is not None:
            object.__setattr__(self, "rival", validate.finite("rival", self.rival))
        level = validate.fraction("level", self.level)
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level!r}")

    @property
    def agrees(self) -> bool:
        """predicted within [lo, hi], or within tol of fitted."""
        return agreement(self.predicted, self.fitted, self.lo, self.hi, self.tol)

    @property
    def se(self) -> float:
        """The standard error behind the interval, on the side that faces the prediction (intervals of
        ratios and of bounded metrics are not symmetric): the normal approximation to the interval."""
        z = float(sps.norm.ppf(0.5 + self.level / 2))
        side = self.hi - self.fitted if self.predicted >= self.fitted else self.fitted - self.lo
        return side / z

    @property
    def p_value(self) -> float:
        """Two-sided p-value of "the law holds" (deviation beyond tol, normal approximation)."""
        dev = abs(self.fitted - self.predicted) - (self.tol or 0.0)
        if dev <= 0:
            return 1.0
        se = self.se
        return 0.0 if se == 0 else float(2 * sps.norm.sf(dev / se))

    @property
    def detectable(self) -> float:
        """The smallest |true - predicted| the test detects with probability POWER (at its level): the
        test's power, to read next to a "yes"."""
        z = float(sps.norm.ppf(0.5 + self.level / 2)) + float(sps.norm.ppf(POWER))
        return (self.tol or 0.0) + z * (self.hi - self.lo) / 2 / float(sps.norm.ppf(0.5 + self.level / 2))

    @property
    def resolved(self) -> bool:
        """The interval is narrow enough to confirm the law: half-width <= RESOLUTION x scale, and the
        rival's value (if known) outside it."""
        scale = abs(self.predicted) if self.scale is None else self.scale
        wide = scale > 0 and (self.hi - self.lo) / 2 > RESOLUTION * scale
        return not wide and not (self.rival is not None and self.lo <= self.rival <= self.hi)

    @property
    def verdict(self) -> str:
        """"yes", "no" or "not resolved" (see the module's docstring)."""
        if not self.agrees:
            return "no"
        return "yes" if self.resolved else "not resolved"

    @classmethod
    def from_fit(cls, statement: str, predicted: float, fit: Fit, param: str, tol=None, how=None) -> "Law":
        """The law `param` of `fit` = `predicted`."""
        if param not in fit.params:
            raise ValueError(f"param must be one of {', '.join(fit.params)}; got {param!r}")
        lo, hi = fit.ci[param]
        return cls(statement, predicted, fit.params[param], lo, hi, tol,
                   how if how is not None else f"fitted {param} ({fit.model})")


COLUMNS = ["statement", "how", "predicted", "fitted", "lo", "hi", "tol", "agrees", "detectable", "p", "p_holm",
           "verdict"]


def exceptions(laws: dict, reasons: dict) -> pd.DataFrame:
    """The laws (name -> Law) whose verdict is not "yes", with the reason a chapter declares for each (its
    DISAGREES and UNRESOLVED, merged in `reasons`): the table beside a chapter's laws table."""
    rows = [{"law": name, "verdict": found.verdict, "why": reasons.get(name, "(no reason declared)")}
            for name, found in laws.items() if found.verdict != "yes"]
    return pd.DataFrame(rows, columns=["law", "verdict", "why"])


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values: rejecting where they are < a keeps the chance of any false
    rejection among all the laws <= a."""
    p = validate.finite_array("p", p).ravel()
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p must be p-values in [0, 1]")
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order]).clip(max=1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def table(laws: Sequence[Law]) -> pd.DataFrame:
    """The laws of a chapter as numbers, one row per law: statement | how | predicted | fitted | lo | hi | tol |
    agrees | detectable | p | p_holm | verdict (`book.laws_table` writes it for the page)."""
    laws = list(laws)
    if not all(isinstance(law, Law) for law in laws):
        raise ValueError("laws must be a list of Law")
    p = np.array([law.p_value for law in laws])
    p_holm = holm(p) if laws else p
    rows = [{"statement": law.statement, "how": law.how, "predicted": law.predicted, "fitted": law.fitted,
             "lo": law.lo, "hi": law.hi, "tol": law.tol, "agrees": law.agrees, "detectable": law.detectable,
             "p": law.p_value, "p_holm": float(q), "verdict": law.verdict} for law, q in zip(laws, p_holm)]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def counts(laws) -> dict:
    """How a chapter's laws came out: n, yes, no, not resolved, no after Holm (p_holm < 1 - level), and the
    disagreements expected by chance alone if every law held ((1 - level) n), for the page's prose."""
    t = laws if isinstance(laws, pd.DataFrame) else table(list(laws))
    level = 0.95
    return {"n": len(t), "yes": int((t.verdict == "yes").sum()), "no": int((t.verdict == "no").sum()),
            "not resolved": int((t.verdict == "not resolved").sum()),
            "no after Holm": int(((t.verdict == "no") & (t.p_holm < 1 - level)).sum()),
            "expected by chance": (1 - level) * len(t)}
