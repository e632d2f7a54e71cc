"""The setup cell of every chapter: its name for figure files, the figure style, pandas display, the profile."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..lab.profile import Profile, get_profile

STYLE = Path(__file__).with_name("poisonlab.mplstyle")
CHAPTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_chapter: str | None = None
_styled = False


class AxesArray(np.ndarray):
    """A grid of Axes (what book.plots.figure returns for several panels); a cell ending with one shows the
    figure only."""


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

    for kind in (Axes, AxesArray):
        shell.display_formatter.ipython_display_formatter.for_type(kind, lambda axes: None)
