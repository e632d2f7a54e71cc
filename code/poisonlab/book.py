"""Book helpers: the setup cell of every chapter, number formatting, and Markdown tables.

Every chapter starts with one hidden cell:

    from poisonlab import book
    PROFILE = book.setup("linear-regression")

Numbers in prose go through `fmt`; tables through `markdown_table` (a Markdown display object,
which Quarto and the Jupyter engine both render as a table).
"""
from __future__ import annotations

import math
import numbers
import os
import platform
import re
from pathlib import Path

from . import validate
from .profile import Profile, get_profile

STYLE = Path(__file__).with_name("poisonlab.mplstyle")
CHAPTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_chapter: str | None = None
_styled = False


def setup(chapter: str) -> Profile:
    """Start a chapter: its name for figure files, the figure style, pandas display; the active profile."""
    global _chapter
    if not isinstance(chapter, str) or not CHAPTER.match(chapter):
        raise ValueError(f"chapter must be a name of letters, digits and hyphens (e.g. 'linear-regression'), "
                         f"got {chapter!r}")
    # progress bars belong to terminals, not to rendered pages (tqdm reads this when first imported)
    os.environ.setdefault("TQDM_DISABLE", "1")
    _chapter = chapter
    use_style()
    _pandas_display()
    _quiet_axes_repr()
    return get_profile()


def chapter() -> str | None:
    """The chapter set by `setup` (None before)."""
    return _chapter


def use_style(force: bool = True) -> None:
    """Apply the book's matplotlib style (keeps the figure size and dpi set by the renderer).

    force=False applies it only once per process, leaving later rcParams changes alone.
    """
    global _styled
    if _styled and not force:
        return
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    keep = {k: mpl.rcParams[k] for k in ("figure.figsize", "figure.dpi")}
    plt.style.use(str(STYLE))
    mpl.rcParams.update(keep)
    _styled = True


def _pandas_display() -> None:
    import pandas as pd

    pd.set_option("display.precision", 4)
    pd.set_option("display.max_columns", 20)
    pd.set_option("display.width", 120)


def _quiet_axes_repr() -> None:
    """A cell ending in a plotting call shows the figure, not `<Axes: ...>` too."""
    try:
        from IPython import get_ipython
    except Exception:  # plain Python: nothing to configure
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.axes import Axes

    from .plots import AxesArray

    for kind in (Axes, AxesArray):
        shell.display_formatter.ipython_display_formatter.for_type(kind, lambda axes: None)


# ------------------------------------------------------------------------------------------------
# Numbers and tables
# ------------------------------------------------------------------------------------------------

def _scalar(x):
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu()
        if x.numel() != 1:
            raise ValueError(f"x must be a single number, got a tensor of shape {tuple(x.shape)}")
        return x.item()
    if hasattr(x, "item") and getattr(x, "size", 1) == 1:  # numpy scalars and 1-element arrays
        return x.item()
    return x


MINUS = "\u2212"
TIMES = "\u00d7"
SUPERSCRIPT = str.maketrans("0123456789-", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b")


class Number(str):
    """A number formatted for the page: Markdown that reads the same in prose and inside `$...$` math.

    Its repr is its text, so an inline `{python}` value is inserted as it is: Quarto markdown-escapes a
    plain `str` (its repr is quoted), which turns `0.5` into `0\\.5`, a TeX accent inside math.
    `plain` is the text a reader sees (what `pdftotext` of the PDF finds).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)

    @property
    def plain(self) -> str:
        return str.__str__(self).replace("\\%", "%")


def fmt(x, digits: int = 3, *, percent: bool = False) -> Number:
    """A number for prose and math: `digits` significant digits, a true minus sign, ints plain.

    Scientific when |x| < 1e-3 or >= 1e5, written 1.15 × 10⁻⁴ (Unicode superscripts, which
    unicode-math, MathJax and the PDF's fallback font all show). percent=True prints 100·x with `%`
    (escaped as `\\%`, which is a percent sign both in Markdown and in TeX math).
    """
    digits = validate.positive_int("digits", digits)
    x = _scalar(x)
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ValueError(f"x must be a real number, got {x!r}")
    if percent:
        x = 100 * float(x)
    if isinstance(x, numbers.Integral):
        text = str(int(x))
    else:
        text = _decimal(float(x), digits)
    return Number(text.replace("-", MINUS) + ("\\%" if percent else ""))


def fmt_ci(mean, lo, hi, digits: int = 3, *, write=None) -> str:
    """A value with its interval, "mean [lo, hi]", each number written by `write(x, digits)` (default `fmt`)."""
    write = fmt if write is None else write
    return f"{write(mean, digits)} [{write(lo, digits)}, {write(hi, digits)}]"


def _decimal(x: float, digits: int) -> str:
    if not math.isfinite(x):
        raise ValueError(f"x must be finite, got {x!r}")
    if x == 0:
        return "0"
    if not 1e-3 <= abs(x) < 1e5:
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        power = "10" + str(int(exponent)).translate(SUPERSCRIPT)
        return f"{mantissa} {TIMES} {power}"
    rounded = float(f"{x:.{digits}g}")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


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


def markdown_table(df, floatfmt=None, *, index=None):
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
    # pandoc sizes the columns of a wide table by the dashes of this line: give each column its share
    # of the widest entry (a word or a few digits at least), or narrow text columns wrap letter by letter
    widths = [min(40, max(4, len(h), *(len(r[i]) for r in rows))) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
             "|" + "|".join(("-" * (w - 1) + ":") if n else (":" + "-" * (w - 1))
                            for n, w in zip(numeric, widths)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return Markdown("\n".join(lines) + "\n")


LAW_COLUMNS = ["statement", "predicted", "fitted (95% CI)", "agrees"]


def laws_table(laws):
    """The laws table of a chapter (from `laws.table()` or a list of `laws.Law`) as Markdown."""
    import pandas as pd

    if isinstance(laws, (list, tuple)):
        from . import laws as _laws

        laws = _laws.table(list(laws))
    if not isinstance(laws, pd.DataFrame):
        raise ValueError(f"laws must be the DataFrame of laws.table() or a list of Law, got {type(laws).__name__}")
    missing = [c for c in LAW_COLUMNS if c not in laws.columns]
    if missing:
        raise ValueError(f"laws must have the columns {', '.join(LAW_COLUMNS)}; missing {', '.join(missing)}")
    columns = [c for c in laws.columns if c in (*LAW_COLUMNS, "how")]
    table = laws[columns].copy()
    table["agrees"] = ["yes" if bool(a) else "**no**" for a in table["agrees"]]
    return markdown_table(table, index=False)


# ------------------------------------------------------------------------------------------------
# The environment of a render
# ------------------------------------------------------------------------------------------------

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
    env["repeats"] = profile.repeats
    env["grid points"] = profile.points
    return env


def sizes(profile: Profile | None = None) -> dict:
    """Each chapter's own sweep sizes in `profile` (those that differ from its repeats and grid points)."""
    profile = profile or get_profile()
    out = {}
    for section, values in profile.sections.items():
        own = {k: v for k, v in values.items() if (k, v) not in (("repeats", profile.repeats),
                                                                ("points", profile.points))}
        if own:
            out[section] = ", ".join(f"{k}={v}".replace(" ", "") for k, v in own.items())
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
