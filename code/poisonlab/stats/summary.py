"""Tidy tables of sweeps: rows selected by their columns, groups summarised by mean and interval."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .intervals import mean_ci


def rows_where(rows, **where) -> pd.DataFrame:
    """The rows of a sweep (a SweepResult or its `rows` table) whose columns match `where`: a value
    (solver="sgd"; a float is compared with np.isclose) or a predicate (n=lambda n: n > 20).

    A column that is not in the table, or no matching row, is a ValueError.
    """
    rows = getattr(rows, "rows", rows)
    for k, v in where.items():
        if k not in rows.columns:
            raise ValueError(f"where: {k!r} is not a column of the sweep")
        if callable(v):
            rows = rows[rows[k].apply(lambda x, v=v: bool(v(x)))]
        elif isinstance(v, float):
            rows = rows[np.isclose(rows[k].astype(float), v)]
        else:
            rows = rows[rows[k] == v]
    if rows.empty:
        raise ValueError(f"where: no rows with {where}")
    return rows


def summarize(rows: pd.DataFrame, by, metrics, *, level: float = 0.95, sort: bool = False,
              count: str = "count", ranges=None) -> pd.DataFrame:
    """Per group of the columns `by` of a tidy table (in order of first appearance, or sorted): the mean and
    Student-t `level` interval of each of `metrics` (columns m_mean, m_lo, m_hi, as SweepResult.summary, for
    plots.metric_vs) and the number of rows pooled (column `count`). `ranges` (metric -> (low, high), e.g. an
    experiment's `ranges`) keeps each metric's interval inside its range (`mean_ci`'s bounds)."""
    by = [by] if isinstance(by, str) else list(by)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    out = []
    for key, group in rows.groupby(by, sort=sort):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update(_intervals({m: group[m].to_numpy() for m in metrics}, level, ranges))
        row[count] = len(group)
        out.append(row)
    return pd.DataFrame.from_records(out)


def _intervals(values: dict, level: float, ranges=None) -> dict:
    """metric -> values: the columns m_mean, m_lo, m_hi of a summary row (mean_ci of each, inside the
    metric's range where `ranges` gives one)."""
    row = {}
    for m, v in values.items():
        mean, lo, hi = mean_ci(v, level, (ranges or {}).get(m))
        row.update({f"{m}_mean": mean, f"{m}_lo": lo, f"{m}_hi": hi})
    return row
