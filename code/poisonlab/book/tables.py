"""Markdown tables for the page: any DataFrame, a chapter's laws, the environment and sizes of a render."""
from __future__ import annotations

import numbers
import os
import platform

from .. import validate
from ..lab.profile import Profile, get_profile
from .prose import _scalar, fmt, fmt_ci


def _cell(value, floatfmt) -> str:
    """One table cell as Markdown text."""
    value = _scalar(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        if callable(floatfmt):
            text = floatfmt(value)
        elif isinstance(floatfmt, str):
            text = format(value, floatfmt)
        else:
            text = fmt(value, 3 if floatfmt is None else floatfmt)
    elif isinstance(value, (tuple, list)):
        text = ", ".join(_cell(v, floatfmt) for v in value)
    elif value is None:
        text = ""
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


TEXT_WIDTH = 14  # the share, in characters, of a wrapping text column in the dashes that size a table


def _longest_token(cells) -> int:
    return max((len(t) for c in cells for t in str(c).split()), default=1)


def markdown_table(df, floatfmt=None, *, index=None, nowrap=()):
    """A DataFrame as a Markdown table (IPython Markdown): numbers through `fmt` (or `floatfmt`).

    floatfmt: None (3 significant digits), an int (significant digits), a format spec (".2f")
    or a callable. index: show the index (default: when it is not a plain 0..n-1 range).
    """
    import pandas as pd
    from IPython.display import Markdown

    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if floatfmt is not None and not (callable(floatfmt) or isinstance(floatfmt, (str, int))):
        raise ValueError(f"floatfmt must be None, an int, a format string or a callable, got {floatfmt!r}")
    if isinstance(floatfmt, int):
        validate.positive_int("floatfmt", floatfmt)
    if index is None:
        index = not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1)
    table = df.reset_index() if index else df
    header = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
               for c in table.columns]
    rows = [[_cell(v, floatfmt) for v in row] for row in table.itertuples(index=False)]
    # pandoc sizes the columns of a wide table by the dashes of this line (HTML and PDF alike). A column
    # needs at least its longest unbreakable token (a number, a word), or the PDF prints it over its
    # neighbour; beyond that a text column wraps, so its share is capped and numbers keep theirs
    # (`nowrap`: columns of numbers with their intervals, kept on one line up to 40 characters)
    widths = [max(_longest_token([h, *(r[i] for r in rows)]),
                  min(40 if h in nowrap else TEXT_WIDTH, max(4, len(h), *(len(r[i]) for r in rows))))
              for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
             "|" + "|".join(("-" * (w - 1) + ":") if n else (":" + "-" * (w - 1))
                            for n, w in zip(numeric, widths)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return Markdown("\n".join(lines) + "\n")


def laws_table(laws, digits: int = 3):
    """The laws table of a chapter (a list of `stats.Law`, or `stats.table` of one) as Markdown:
    statement | how | predicted | fitted (95% CI) | detectable | verdict, numbers written by `fmt`.

    detectable: the smallest deviation from the prediction the test detects with 80% power. verdict: yes,
    **no** (a disagreement that survives Holm's correction for the chapter's number of laws), "no, not
    after Holm" (one that a family of this many true laws could show by chance), or "not resolved" (the
    interval is too wide to confirm the law, or also holds its rival)."""
    import pandas as pd

    from ..stats import laws as _laws

    if isinstance(laws, (list, tuple)):
        laws = _laws.table(list(laws))
    if not isinstance(laws, pd.DataFrame):
        raise ValueError(f"laws must be a list of Law or the DataFrame of stats.table(), got {type(laws).__name__}")
    missing = [c for c in _laws.COLUMNS if c not in laws.columns]
    if missing:
        raise ValueError(f"laws must have the columns of stats.table(); missing {', '.join(missing)}")

    def verdict(r):
        if r.verdict != "no":
            return r.verdict
        return "**no**" if r.p_holm < 0.05 else "no, not after Holm"

    rows = [{"statement": r.statement, "how": r.how, "predicted": fmt(r.predicted, digits),
             "fitted (95% CI)": fmt_ci(r.fitted, r.lo, r.hi, digits)
                                + (f" (tol {fmt(r.tol, digits)})" if pd.notna(r.tol) else ""),
             "detectable": fmt(r.detectable, 2), "verdict": verdict(r)} for r in laws.itertuples()]
    return markdown_table(pd.DataFrame.from_records(
        rows, columns=["statement", "how", "predicted", "fitted (95% CI)", "detectable", "verdict"]), index=False,
        nowrap=("predicted", "fitted (95% CI)", "detectable"))


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


def environment(profile: Profile | None = None) -> dict:
    """What produced the numbers: versions, threads, device, and the sizes of the profile."""
    import torch

    profile = profile or get_profile()
    env = {"python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}"}
    for package in ("poisonlab", "torch", "numpy", "scipy", "sympy", "pandas", "matplotlib"):
        env[package] = _version(package)
    env["torch threads"] = torch.get_num_threads()
    env["CPU cores"] = os.cpu_count()
    env["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    env["profile"] = profile.name
    env["repeats (typical sweep)"] = profile.repeats
    env["grid points (typical sweep)"] = profile.points
    return env


def sizes(profile: Profile | None = None) -> dict:
    """Each chapter's own sweep sizes in `profile` (chapters/<slug>/sizes.py), by the chapter's short name."""
    import dataclasses
    import importlib.util

    from ..lab import experiment
    from ..lab.profile import sizes as sizes_in

    profile = profile or get_profile()
    out = {}
    for alias, package in experiment.chapters().items():
        if importlib.util.find_spec(f"{package}.sizes") is not None:
            values = dataclasses.asdict(sizes_in(importlib.import_module(f"{package}.sizes").SIZES, profile))
            out[alias] = ", ".join(f"{k}={v}".replace(" ", "") for k, v in values.items())
    return out


def sizes_table(profile: Profile | None = None):
    """`sizes()` as a two-column Markdown table (chapter, sizes)."""
    import pandas as pd

    rows = sizes(profile)
    return markdown_table(pd.DataFrame({"chapter": list(rows), "sweep sizes": list(rows.values())}))


def environment_table(profile: Profile | None = None):
    """`environment()` as a two-column Markdown table."""
    import pandas as pd

    env = environment(profile)
    return markdown_table(pd.DataFrame({"setting": list(env), "value": [str(v) for v in env.values()]}))
