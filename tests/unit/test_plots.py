"""Figures: files under figures/<chapter>/, Axes returned, CI bars and predictions drawn where they belong."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection

from poisonlab import book
from poisonlab.book import plots


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A book root (with _quarto.yml) as working directory, chapter 'demo' set up."""
    (tmp_path / "_quarto.yml").write_text("project:\n  type: book\n")
    (tmp_path / "report").mkdir()
    monkeypatch.chdir(tmp_path / "report")  # chapters run in their folder; figures go to the root
    book.setup("demo")
    return tmp_path


def summary(hue=False):
    rows = []
    for h in ([1, 2] if hue else [None]):
        for a in (0.0, 0.1, 0.2, 0.4):
            mean = 1 + 10 * a * (h or 1)
            rows.append({"alpha": a, **({"d": h} if hue else {}), "mse_mean": mean, "mse_lo": mean - 0.1,
                         "mse_hi": mean + 0.2, "n": 5})
    return pd.DataFrame(rows)


def errorbar_segments(ax):
    """(x, lo, hi) of every vertical error bar drawn on `ax`."""
    out = []
    for container in ax.containers:
        for collection in container.lines[2]:
            for seg in collection.get_segments():
                out.append((seg[0][0], min(seg[0][1], seg[1][1]), max(seg[0][1], seg[1][1])))
    return sorted(out)


def test_save_writes_pdf_and_png_under_the_chapter(project):
    fig, ax = plots.figure()
    ax.plot([0, 1], [0, 1])
    paths = plots.save(fig, "line")
    assert paths == [project / "figures" / "demo" / "line.pdf", project / "figures" / "demo" / "line.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    first = [p.read_bytes() for p in paths]
    plots.save(fig, "line")
    assert [p.read_bytes() for p in paths] == first  # same figure, same bytes (no dates in the files)


def test_save_checks_name_and_needs_a_chapter(project, monkeypatch):
    fig, _ = plots.figure()
    with pytest.raises(ValueError, match="name"):
        plots.save(fig, "../escape")
    monkeypatch.setattr(book.context, "_chapter", None)
    with pytest.raises(ValueError, match="chapter"):
        plots.save(fig, "ok")


def test_figure_is_styled_and_grids_grow(project):
    fig, ax = plots.figure()
    assert isinstance(ax, Axes) and matplotlib.rcParams["axes.spines.top"] is False
    wide, axes = plots.figure(ncols=2)
    assert axes.shape == (2,) and wide.get_figwidth() > fig.get_figwidth()
    with pytest.raises(ValueError, match="ncols"):
        plots.figure(ncols=0)


def test_metric_vs_draws_means_with_ci_bars(project):
    df = summary()
    ax = plots.metric_vs(df, x="alpha", y="mse", name="sweep")
    assert isinstance(ax, Axes)
    line = ax.containers[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), df["alpha"])
    np.testing.assert_allclose(line.get_ydata(), df["mse_mean"])
    np.testing.assert_allclose(errorbar_segments(ax), list(zip(df["alpha"], df["mse_lo"], df["mse_hi"])))
    assert ax.get_xlabel() == "alpha" and ax.get_ylabel() == "mse"
    assert (project / "figures" / "demo" / "sweep.png").is_file()


def test_metric_vs_overlays_a_prediction_of_x(project):
    ax = plots.metric_vs(summary(), x="alpha", y="mse", prediction=lambda a: 1 + 10 * a)
    (pred,) = [line for line in ax.get_lines() if line.get_label() == "prediction"]
    np.testing.assert_allclose(pred.get_ydata(), 1 + 10 * pred.get_xdata())
    assert pred.get_xdata().min() == 0.0 and pred.get_xdata().max() == 0.4


def test_metric_vs_prediction_of_the_row(project):
    ax = plots.metric_vs(summary(), x="alpha", y="mse", prediction=lambda row: 2 * row["alpha"])
    (pred,) = [line for line in ax.get_lines() if line.get_label() == "prediction"]
    np.testing.assert_allclose(pred.get_ydata(), 2 * np.array([0.0, 0.1, 0.2, 0.4]))


def test_metric_vs_one_line_per_hue_value(project):
    df = summary(hue=True)
    ax = plots.metric_vs(df, x="alpha", y="mse", hue="d", prediction=lambda a, d: 1 + 10 * a * d)
    assert len(ax.containers) == 2
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["d = 1", "d = 2", "prediction"]
    assert len(errorbar_segments(ax)) == 8


def test_metric_vs_accepts_a_sweep_result(project):
    class Result:
        def summary(self):
            return summary()

    assert len(plots.metric_vs(Result(), x="alpha", y="mse").containers) == 1


@pytest.mark.parametrize("kw, name", [(dict(x="beta", y="mse"), "x"), (dict(x="alpha", y="acc"), "y"),
                                      (dict(x="alpha", y="mse", hue="d"), "hue")])
def test_metric_vs_bad_columns_name_the_parameter(project, kw, name):
    with pytest.raises(ValueError, match=f"^{name} must"):
        plots.metric_vs(summary(), **kw)


def test_metric_vs_rejects_inverted_intervals(project):
    df = summary()
    df.loc[0, "mse_lo"] = df.loc[0, "mse_mean"] + 1
    with pytest.raises(ValueError, match="^y:"):
        plots.metric_vs(df, x="alpha", y="mse")


def test_scatter_data_marks_the_poisoned_points(project):
    X = torch.linspace(-1, 1, 20)[:, None]
    y = 2 * X
    mask = torch.zeros(20, dtype=torch.bool)
    mask[:3] = True
    ax = plots.scatter_data(X, y, mask=mask)
    clean, poisoned = ax.collections
    assert poisoned.get_label() == "poisoned" and len(poisoned.get_offsets()) == 3
    assert len(clean.get_offsets()) == 17
    with pytest.raises(ValueError, match="mask"):
        plots.scatter_data(X, y, mask=mask[:5])


def test_scatter_data_classes_in_the_plane(project):
    X = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, -1.0], [1.0, 0.0]])
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    ax = plots.scatter_data(X, y, mask=torch.tensor([False, True, False, False]))
    sizes = [len(c.get_offsets()) for c in ax.collections]
    assert sizes == [2, 1, 1]  # class 0, class 1 (clean), poisoned


def test_boundary_lies_on_the_hyperplane(project):
    fig, ax = plots.figure()
    ax.set(xlim=(-2, 2), ylim=(-2, 2))
    w, b = torch.tensor([1.0, 2.0]), 0.5
    plots.boundary(w, b, ax=ax)
    x, y = ax.get_lines()[-1].get_data()
    np.testing.assert_allclose(1.0 * np.asarray(x) + 2.0 * np.asarray(y) + 0.5, 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="w must not be zero"):
        plots.boundary([0.0, 0.0], 1.0, ax=ax)


def test_curve_draws_mean_and_band(project):
    runs = np.array([[3.0, 2.0, 1.0], [5.0, 2.0, 1.0], [4.0, 2.0, 1.0]])
    ax = plots.curve(runs, label="sgd")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), runs.mean(axis=0))
    assert any(isinstance(c, PolyCollection) for c in ax.collections)
    assert len(plots.curve([1.0, 0.5]).get_lines()) == 1


def test_confusion_shows_the_matrix(project):
    M = np.array([[5, 1], [2, 7]])
    ax = plots.confusion(M, ["cat", "dog"])
    np.testing.assert_array_equal(ax.images[0].get_array(), M)
    assert [t.get_text() for t in ax.texts] == ["5", "1", "2", "7"]
    with pytest.raises(ValueError, match="classes"):
        plots.confusion(M, ["cat"])


def test_image_grid_lays_out_images(project):
    axes = plots.image_grid(torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                            titles=list("abcde"), ncols=3, name="grid")
    assert axes.shape == (2, 3) and axes[0, 0].get_title() == "a"
    assert (project / "figures" / "demo" / "grid.pdf").is_file()
    with pytest.raises(ValueError, match="images"):
        plots.image_grid(torch.zeros(2, 2, 8, 8))


def test_line_and_regression_line(project):
    ax = plots.line([2.0, 0.0, 1.0], [4.0, 0.0, 2.0], label="y = 2x")
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0.0, 1.0, 2.0])
    plots.regression_line(torch.tensor([[2.0]]), torch.tensor([1.0]), ax=ax)
    x, y = ax.get_lines()[-1].get_data()
    np.testing.assert_allclose(y, 2 * np.asarray(x) + 1)
    assert not any(isinstance(c, LineCollection) for c in ax.collections)


def test_saved_paths_show_nothing_at_the_end_of_a_cell():
    # a chapter cell ending on plots.save(fig, ...) must show the figure only, not a list of paths
    from IPython.core.formatters import DisplayFormatter

    paths = plots.SavedPaths(["figures/x/a.pdf"])
    assert paths == ["figures/x/a.pdf"]
    assert DisplayFormatter().format(paths) == ({}, {})


def test_save_refuses_a_log_axis_under_a_decade_and_overlapping_tick_labels(project):
    fig, ax = plots.figure()
    ax.plot([1, 5], [1, 2])
    ax.set_xscale("log")
    with pytest.raises(ValueError, match="figure short-log: the x axis of panel 1 is logarithmic over less than a decade"):
        plots.save(fig, "short-log")
    ax.set_xlim(1, 100)  # two decades: fine
    plots.save(fig, "long-log")
    fig, axes = plots.figure(ncols=2)
    axes[1].plot([0, 1], [0, 1])
    axes[1].set_xticks(np.linspace(0, 1, 40), [f"label {i}" for i in range(40)])
    with pytest.raises(ValueError, match="tick labels 'label 0' and 'label 1' of the x axis of panel 2 overlap"):
        plots.save(fig, "crowded")
    assert not (project / "figures" / "demo" / "crowded.png").exists()  # nothing written
