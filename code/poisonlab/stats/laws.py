"""Laws: one quantitative claim each, a predicted value against a fitted one with its interval, and
the laws table of a chapter."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

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

    def __post_init__(self):
        if not isinstance(self.statement, str) or not self.statement:
            raise ValueError("statement must be a non-empty string")
        for name in ("predicted", "fitted", "lo", "hi"):
            object.__setattr__(self, name, validate.finite(name, getattr(self, name)))
        if self.lo > self.hi:
            raise ValueError(f"lo must be <= hi, got lo = {self.lo}, hi = {self.hi}")
        if self.tol is not None:
            object.__setattr__(self, "tol", validate.non_negative("tol", self.tol))

    @property
    def agrees(self) -> bool:
        """predicted within [lo, hi], or within tol of fitted."""
        return agreement(self.predicted, self.fitted, self.lo, self.hi, self.tol)

    @classmethod
    def from_fit(cls, statement: str, predicted: float, fit: Fit, param: str, tol=None, how=None) -> "Law":
        """The law `param` of `fit` = `predicted`."""
        if param not in fit.params:
            raise ValueError(f"param must be one of {', '.join(fit.params)}; got {param!r}")
        lo, hi = fit.ci[param]
        return cls(statement, predicted, fit.params[param], lo, hi, tol,
                   how if how is not None else f"fitted {param} ({fit.model})")


COLUMNS = ["statement", "how", "predicted", "fitted", "lo", "hi", "tol", "agrees"]


def table(laws: Sequence[Law]) -> pd.DataFrame:
    """The laws of a chapter as numbers, one row per law: statement | how | predicted | fitted | lo | hi | tol |
    agrees (`book.laws_table` writes it for the page)."""
    laws = list(laws)
    if not all(isinstance(law, Law) for law in laws):
        raise ValueError("laws must be a list of Law")
    rows = [{"statement": law.statement, "how": law.how, "predicted": law.predicted, "fitted": law.fitted,
             "lo": law.lo, "hi": law.hi, "tol": law.tol, "agrees": law.agrees} for law in laws]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)
