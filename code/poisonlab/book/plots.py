"""Figures: one-line helpers that draw what the rest of the package computed.

Each helper takes `ax=None` (a new styled figure) and returns the Axes; `name=` also saves the
figure under figures/<chapter>/<name>.pdf and .png (`save`). Nothing here computes a result, and
nothing opens a window: inside Jupyter or Quarto the figure is shown inline at the end of the cell.
"""
from __future__ import annotations

import inspect
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from .. import validate
from . import context as book
from .context import AxesArray

POISON = {"color": "#D55E00", "marker": "x", "s": 36, "linewidths": 1.5, "label": "poisoned", "zorder": 3}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _pyplot():
    import matplotlib.pyplot as plt

    return plt




def _axes(ax):
    return figure()[1] if ax is None else ax


def _label(column: str) -> str:
    return column.replace("_", " ")


# ------------------------------------------------------------------------------------------------
# Figures and files
# ------------------------------------------------------------------------------------------------

def figure(ncols: int = 1, nrows: int = 1, **kw):
    """A styled figure and its Axes (an array of Axes for a grid); wider and taller for grids."""
    ncols, nrows = validate.positive_int("ncols", ncols), validate.positive_int("nrows", nrows)
    plt = _pyplot()
    book.use_style(force=False)
    width, height = plt.rcParams["figure.figsize"]
    kw.setdefault("figsize", (width * (0.45 + 0.55 * ncols), height * (0.2 + 0.8 * nrows)))
    kw.setdefault("layout", "constrained")
    fig, ax = plt.subplots(nrows, ncols, **kw)
    return fig, (ax.view(AxesArray) if isinstance(ax, np.ndarray) else ax)


# Matplotlib subsets fonts into the PDF through fontTools, which warns on every save that the
# DejaVu fonts' 'created' date is "very low": noise in every chapter's output, not a problem.
logging.getLogger("fontTools.ttLib.tables._h_e_a_d").setLevel(logging.ERROR)


def project_root(start=None) -> Path:
    """The book's root (the folder of `_quarto.yml`) above `start` (default: the working directory).

    Outside a book (a reader's own notebook) it is the working directory itself.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_quarto.yml").is_file():
            return folder
    return here


class SavedPaths(list):
    """The files `save` wrote; a cell that ends on `plots.save(...)` shows its figure, not this list."""

    def _ipython_display_(self):
        pass


def check_figure(fig, name: str = "figure") -> None:
    """Refuse a figure a reader would misread: a logarithmic axis over less than a decade (its ticks then say
    little and its curvature misleads), or tick labels drawn over one another. A ValueError naming the
    figure, the panel and the axis."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for i, ax in enumerate(fig.axes, start=1):
        for which, axis, lim in (("x", ax.xaxis, ax.get_xlim()), ("y", ax.yaxis, ax.get_ylim())):
            if axis.get_scale() == "log":
                lo, hi = sorted(lim)
                if lo > 0 and hi / lo < 10:
                    raise ValueError(f"figure {name}: the {which} axis of panel {i} is logarithmic over less than a "
                                     f"decade ({lo:.3g} to {hi:.3g}); use a linear axis")
            labels = [t for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text().strip()]
            boxes = [t.get_window_extent(renderer).padded(-0.5) for t in labels]
            for a in range(len(boxes)):
                for b in range(a + 1, len(boxes)):
                    if boxes[a].overlaps(boxes[b]):
                        raise ValueError(f"figure {name}: tick labels {labels[a].get_text()!r} and "
                                         f"{labels[b].get_text()!r} of the {which} axis of panel {i} overlap")


def save(fig, name: str) -> SavedPaths:
    """Write `fig` to figures/<chapter>/<name>.pdf and .png (chapter from `book.setup`); the paths."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"name must be a file name of letters, digits, '.', '-' and '_', got {name!r}")
    chapter = book.chapter()
    if chapter is None:
        raise ValueError("chapter: call book.setup(<chapter>) before saving figures")
    check_figure(fig, name)
    folder = project_root() / "figures" / chapter
    folder.mkdir(parents=True, exist_ok=True)
    paths = SavedPaths()
    # no dates or versions in the files: the same numbers give the same bytes
    for suffix, metadata in ((".pdf", {"CreationDate": None, "Producer": None, "Creator": None}),
                             (".png", {"Software": None})):
        path = folder / f"{name}{suffix}"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder)
        os.close(fd)
        try:
            fig.savefig(tmp, metadata=metadata)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(path)
    return paths


def _finish(ax, name, legend: bool = True):
    if legend and any(not h.get_label().startswith("_") for h in ax.get_legend_handles_labels()[0]):
        ax.legend()
    if name is not None:
        save(ax.figure, name)
    return ax


# ------------------------------------------------------------------------------------------------
# Measured metrics against a parameter
# ------------------------------------------------------------------------------------------------

def _summary(summary, x: str, y: str, hue):
    import pandas as pd

    if hasattr(summary, "summary") and callable(summary.summary):  # a SweepResult
        summary = summary.summary()
    if not isinstance(summary, pd.DataFrame):
        raise ValueError(f"summary must be a DataFrame (or a SweepResult), got {type(summary).__name__}")
    if x not in summary.columns:
        raise ValueError(f"x must be a column of the summary ({', '.join(map(str, summary.columns))}); got {x!r}")
    need = [f"{y}_mean", f"{y}_lo", f"{y}_hi"]
    if any(c not in summary.columns for c in need):
        metrics = sorted({c[:-5] for c in summary.columns if str(c).endswith("_mean")})
        raise ValueError(f"y must be a metric of the summary ({', '.join(metrics)}); got {y!r}")
    if hue is not None and hue not in summary.columns:
        raise ValueError(f"hue must be a column of the summary; got {hue!r}")
    return summary


def _errorbars(ax, rows, x: str, y: str, label, color=None):
    rows = rows.sort_values(x)
    xs = validate.finite_array(x, rows[x])
    mean, lo, hi = (validate.finite_array(y, rows[f"{y}_{s}"]) for s in ("mean", "lo", "hi"))
    if np.any(lo > mean + 1e-12 * np.abs(mean)) or np.any(hi < mean - 1e-12 * np.abs(mean)):
        raise ValueError(f"y: {y}_lo <= {y}_mean <= {y}_hi must hold in every row")
    yerr = np.clip(np.stack([mean - lo, hi - mean]), 0.0, None)
    bars = ax.errorbar(xs, mean, yerr=yerr, fmt="o-", label=label, color=color)
    return bars[0].get_color()


def _positional(f) -> int:
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


def _prediction(ax, f, rows, x: str, hue, value, logx: bool, color, label):
    """Draw `f` over the x range: f(x) on a fine grid, f(x, hue value), or f(row) per summary row."""
    xs = validate.finite_array(x, rows[x])
    lo, hi = float(xs.min()), float(xs.max())
    grid = np.geomspace(lo, hi, 200) if logx and lo > 0 else np.linspace(lo, hi, 200)
    args = (grid,) if hue is None else (grid, value)
    try:
        if hue is not None and _positional(f) < 2:
            raise TypeError("a function of the row")
        ys = np.broadcast_to(np.asarray(f(*args), dtype=float), grid.shape)
        xs_line = grid
    except (TypeError, AttributeError, KeyError, IndexError):
        ordered = rows.sort_values(x)  # a function of the summary row: one value per measured x
        xs_line = validate.finite_array(x, ordered[x])
        ys = np.array([float(f(row)) for _, row in ordered.iterrows()])
    if not np.all(np.isfinite(ys)):
        raise ValueError("prediction must be finite over the measured range of x")
    ax.plot(xs_line, ys, "--", color=color, label=label, zorder=1)


def metric_vs(summary, x: str, y: str, *, hue=None, prediction=None, ax=None, label=None,
              logx: bool = False, logy: bool = False, name=None):
    """Means of metric `y` with 95% CI error bars against parameter `x`, one line per `hue` value.

    summary: `SweepResult.summary()` (columns x, y_mean, y_lo, y_hi) or the SweepResult itself.
    prediction: drawn dashed; called as f(x) on a grid, f(x, hue_value) with `hue`, or else
    f(row) for each summary row.
    """
    summary = _summary(summary, x, y, hue)
    ax = _axes(ax)
    groups = [(None, summary)] if hue is None else list(summary.groupby(hue, sort=True))
    for value, rows in groups:
        series = label if hue is None else f"{_label(hue)} = {value}"
        color = _errorbars(ax, rows, x, y, series)
        if prediction is not None:
            pred_label = "prediction" if hue is None else None
            _prediction(ax, prediction, rows, x, hue, value, logx, color, pred_label)
    if hue is not None and prediction is not None:
        ax.plot([], [], "--", color="0.4", label="prediction")
    ax.set(xlabel=_label(x), ylabel=_label(y))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    return _finish(ax, name)


# ------------------------------------------------------------------------------------------------
# Data, models, training
# ------------------------------------------------------------------------------------------------

def scatter_data(X, y, *, mask=None, ax=None, feature: int = 0, s: float = 12, alpha: float = 0.7,
                 classes=None, name=None):
    """Training data with the poisoned points (`mask`) marked by crosses.

    One feature (or `feature` of several) with real targets: y against x. Two features with
    class labels: the plane, coloured by class.
    """
    X, y = validate.finite_array("X", X), validate.finite_array("y", y)
    X = X[:, None] if X.ndim == 1 else X
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {X.shape}")
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have one value per row of X ({X.shape[0]}), got shape {y.shape}")
    if mask is not None:
        mask = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask, dtype=bool)
        if mask.shape != (X.shape[0],):
            raise ValueError(f"mask must have shape ({X.shape[0]},), got {mask.shape}")
    else:
        mask = np.zeros(X.shape[0], dtype=bool)
    ax = _axes(ax)
    labels = np.unique(y)
    is_classes = X.shape[1] == 2 and labels.size <= 20 and np.all(labels == np.round(labels))
    if is_classes:
        for i, k in enumerate(labels):
            pick = (y == k) & ~mask
            text = classes[int(k)] if classes is not None else f"y = {int(k)}"
            ax.scatter(X[pick, 0], X[pick, 1], s=s, alpha=alpha, color=f"C{i}", label=text)
        ax.scatter(X[mask, 0], X[mask, 1], **POISON)
        ax.set(xlabel="$x_1$", ylabel="$x_2$")
    else:
        feature = validate.positive_int("feature", feature, minimum=0)
        if feature >= X.shape[1]:
            raise ValueError(f"feature must be in [0, {X.shape[1] - 1}], got {feature}")
        ax.scatter(X[~mask, feature], y[~mask], s=s, alpha=alpha, color="C0", label="clean")
        ax.scatter(X[mask, feature], y[mask], **POISON)
        ax.set(xlabel="$x$" if X.shape[1] == 1 else f"$x_{feature + 1}$", ylabel="$y$")
    if not mask.any():
        ax.collections[-1].set_label("_poisoned")
    return _finish(ax, name)


def boundary(w, b, *, ax=None, label=None, name=None, **kw):
    """The line w·x + b = 0 across the current limits of a 2-D plot."""
    w = validate.finite_array("w", w).ravel()
    b = float(validate.finite_array("b", b).ravel()[0])
    if w.size != 2:
        raise ValueError(f"w must have 2 components, got {w.size}")
    if not np.any(w):
        raise ValueError("w must not be zero: w·x + b = 0 is then no line")
    ax = _axes(ax)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    kw.setdefault("color", "0.15")
    if abs(w[1]) >= abs(w[0]):
        xs = np.array([x0, x1])
        ax.plot(xs, -(w[0] * xs + b) / w[1], label=label, **kw)
    else:
        ys = np.array([y0, y1])
        ax.plot(-(w[1] * ys + b) / w[0], ys, label=label, **kw)
    ax.set(xlim=(x0, x1), ylim=(y0, y1))
    return _finish(ax, name)


def line(x, y, *, ax=None, label=None, style: str = "-", name=None, **kw):
    """A curve y(x) (sorted by x)."""
    x, y = validate.finite_array("x", x).ravel(), validate.finite_array("y", y).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    order = np.argsort(x, kind="stable")
    ax = _axes(ax)
    ax.plot(x[order], y[order], style, label=label, **kw)
    return _finish(ax, name)


def regression_line(w, b, *, ax=None, label=None, style: str = "-", name=None, **kw):
    """The fitted line y = w x + b across the current x limits (one feature, one output)."""
    w, b = validate.finite_array("w", w).ravel(), validate.finite_array("b", b).ravel()
    if w.size != 1 or b.size != 1:
        raise ValueError(f"w and b must be single numbers (one feature, one output), got sizes {w.size}, {b.size}")
    ax = _axes(ax)
    xlim = ax.get_xlim()
    xs = np.linspace(*xlim, 2)
    ax.plot(xs, w[0] * xs + b[0], style, label=label, **kw)
    ax.set_xlim(xlim)
    return _finish(ax, name)


def curve(values, *, ax=None, label=None, xlabel: str = "epoch", ylabel: str = "training loss",
          logy: bool = False, name=None):
    """A loss curve per epoch; for several runs (K, epochs), their mean with a 95% CI band."""
    from scipy import stats

    v = validate.finite_array("values", values)
    if v.ndim not in (1, 2) or v.shape[-1] == 0:
        raise ValueError(f"values must have shape (epochs,) or (runs, epochs), got {v.shape}")
    ax = _axes(ax)
    epochs = np.arange(1, v.shape[-1] + 1)
    if v.ndim == 1 or v.shape[0] == 1:
        ax.plot(epochs, v.reshape(-1), label=label)
    else:
        mean = v.mean(axis=0)
        half = stats.t.ppf(0.975, v.shape[0] - 1) * v.std(axis=0, ddof=1) / np.sqrt(v.shape[0])
        (drawn,) = ax.plot(epochs, mean, label=label)
        ax.fill_between(epochs, mean - half, mean + half, color=drawn.get_color(), alpha=0.25, linewidth=0)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
    return _finish(ax, name)


def confusion(M, classes=None, *, ax=None, normalize: bool = False, name=None):
    """A confusion matrix (rows: true class, columns: predicted) as an annotated heatmap."""
    M = validate.finite_array("M", M)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"M must be a square matrix, got shape {M.shape}")
    K = M.shape[0]
    classes = [str(c) for c in (classes if classes is not None else range(K))]
    if len(classes) != K:
        raise ValueError(f"classes must name the {K} classes, got {len(classes)}")
    if normalize:
        totals = M.sum(axis=1, keepdims=True)
        M = np.divide(M, totals, out=np.zeros_like(M), where=totals > 0)
    ax = _axes(ax)
    image = ax.imshow(M, cmap="Blues")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set(xticks=range(K), yticks=range(K), xticklabels=classes, yticklabels=classes,
           xlabel="predicted class", ylabel="true class")
    ax.grid(False)
    if K <= 12:
        threshold = M.max() / 2 if M.size else 0
        for i in range(K):
            for j in range(K):
                text = f"{M[i, j]:.2f}" if normalize else f"{M[i, j]:.0f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if M[i, j] > threshold else "black")
    return _finish(ax, name, legend=False)


def image_grid(images, titles=None, *, ncols: int = 8, cmap: str = "gray", name=None):
    """Images (N, C, H, W) or (N, H, W) in a grid, each scaled to [0, 1]; returns the Axes array."""
    x = validate.finite_array("images", images)
    if x.ndim == 4:
        if x.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels (N, C, H, W), got shape {x.shape}")
        x = x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)
    elif x.ndim != 3:
        raise ValueError(f"images must have shape (N, C, H, W) or (N, H, W), got {x.shape}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("images must hold at least one image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must give one title per image ({n}), got {len(titles)}")
    ncols = min(validate.positive_int("ncols", ncols), n)
    nrows = -(-n // ncols)
    plt = _pyplot()
    book.use_style(force=False)
    size = 1.1
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * (titles is not None)),
                             squeeze=False, layout="constrained")
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        img = x[k]
        lo, hi = img.min(), img.max()
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=8)
    if name is not None:
        save(fig, name)
    return axes.view(AxesArray)
