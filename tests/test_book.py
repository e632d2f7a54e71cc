"""The book: every chapter listed in _quarto.yml executes (quick profile), and the book helpers.

Chapter tests are marked `book` (slow: each starts a kernel and runs the chapter's sweeps);
`pytest -m "not book"` skips them.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bookrender import model, render
from poisonlab import book
from poisonlab.lab.profile import get_profile

REPO = Path(__file__).resolve().parents[1]

CHAPTERS = model.chapter_entries(model.read_config(REPO))
_executed: dict = {}


def executed(entry: str):
    """The chapter executed once per test session (several tests read it)."""
    path = REPO / entry
    if not path.is_file():
        pytest.fail(f"chapter {entry} is listed in _quarto.yml but does not exist")
    if entry not in _executed:
        try:
            _executed[entry] = render.execute_chapter(path, profile="quick")
        except model.RenderError as e:
            _executed[entry] = e
    if isinstance(_executed[entry], model.RenderError):
        pytest.fail(str(_executed[entry]), pytrace=False)
    return _executed[entry]


@pytest.mark.book
@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_executes(entry):
    nb = executed(entry)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
              and "raises-exception" not in c.metadata.get("tags", [])]
    assert not errors


@pytest.mark.book
@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_shows_no_warnings(entry):
    nb = executed(entry)
    options = lambda c: c.metadata.get("bookrender", {}).get("options", {})  # noqa: E731
    shown = [o["text"] for c in nb.cells for o in c.get("outputs", [])
             if o.get("output_type") == "stream" and o.get("name") == "stderr"
             and all(options(c).get(k) is not False for k in ("warning", "output", "include"))]
    assert not shown, "warnings in the rendered chapter:\n" + "".join(shown)


@pytest.mark.book
@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_references_resolve(entry):
    nb = executed(entry)
    assert nb.metadata["bookrender"]["unresolved"] == []


def test_the_book_lists_the_preface_first():
    assert CHAPTERS[0] == "index.qmd"


# ---------------------------------------------------------------------------------------------
# book helpers
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x, digits, text", [
    (0.123456, 3, "0.123"), (12.3456, 3, "12.3"), (1234.56, 3, "1230"), (0.5, 3, "0.5"),
    (2.0, 3, "2"), (0.001234, 2, "0.0012"), (0.000123456, 3, "1.23 × 10⁻⁴"), (1.5e7, 3, "1.5 × 10⁷"),
    (-0.04567, 2, "−0.046"), (-1.15e-4, 3, "−1.15 × 10⁻⁴"), (-3, 3, "−3"), (0.0, 3, "0"), (42, 3, "42"), (123456789, 2, "123456789"),
    (np.float32(0.25), 3, "0.25"), (np.int64(7), 3, "7"), (torch.tensor(3.14159), 4, "3.142"),
])
def test_fmt(x, digits, text):
    assert book.fmt(x, digits) == text


def quarto_inline(text_plain: str) -> str:
    """What Quarto's jupyter-inline.ts does with a text/plain inline value (asEscapedMarkdown)."""
    if len(text_plain) >= 2 and text_plain[0] == text_plain[-1] and text_plain[0] in "'\"":
        return re.sub(r"([\\`*_{}\[\]()>#+\-.!])", r"\\\1", text_plain[1:-1].replace("\\", "\\\\"))
    return text_plain


@pytest.mark.parametrize("x", [0.0632, -0.293, 1.15e-4, -7, 0.5])
def test_fmt_is_inserted_verbatim_by_quarto(x):
    # a plain str would come back as 0\.0632: a TeX accent inside $...$ math
    assert quarto_inline(repr(book.fmt(x))) == book.fmt(x)
    assert quarto_inline(repr(str(book.fmt(x)))) != book.fmt(x) or "." not in book.fmt(x) and "-" not in book.fmt(x)


def test_fmt_percent_reads_as_percent_in_markdown_and_tex():
    p = book.fmt(0.1234, percent=True)
    assert p == "12.3\\%" and p.plain == "12.3%"


@pytest.mark.parametrize("x, name", [(math.nan, "x"), (math.inf, "x"), ("1", "x"), (True, "x"),
                                     (torch.ones(2), "x")])
def test_fmt_rejects_non_numbers(x, name):
    with pytest.raises(ValueError, match=f"^{name} must"):
        book.fmt(x)


def test_fmt_rejects_bad_digits():
    with pytest.raises(ValueError, match="digits"):
        book.fmt(1.0, 0)


def test_markdown_table_formats_numbers_and_escapes():
    df = pd.DataFrame({"name": ["a|b", "c"], "value": [0.123456, 2.0], "ok": [True, False], "k": [1, 2]})
    text = book.markdown_table(df).data
    assert text.splitlines() == ["| name | value | ok | k |", "|:---|----:|:---|---:|",
                                 "| a\\|b | 0.123 | yes | 1 |", "| c | 2 | no | 2 |"]
    # pandoc sizes wide tables by the dashes: a text column that wraps gets a capped share, a column
    # gets at least its longest unbreakable token (or the PDF prints it over its neighbour)
    words = book.markdown_table(pd.DataFrame({"statement": [" ".join(["word"] * 15)], "v": [1.5]})).data
    assert words.splitlines()[1] == "|:" + "-" * (book.tables.TEXT_WIDTH - 1) + "|---:|"
    token = book.markdown_table(pd.DataFrame({"statement": ["x" * 60], "v": [1.5]})).data
    assert token.splitlines()[1] == "|:" + "-" * 59 + "|---:|"
    assert "0.12" in book.markdown_table(df, floatfmt=".2f").data
    assert "| 0.1235 |" in book.markdown_table(df, floatfmt=4).data
    with pytest.raises(ValueError, match="df"):
        book.markdown_table([1, 2])


def test_markdown_table_shows_a_named_index():
    df = pd.DataFrame({"v": [1.5]}, index=pd.Index(["row"], name="key"))
    assert book.markdown_table(df).data.splitlines()[0] == "| key | v |"


def test_laws_table_writes_the_numbers_verdicts_and_power():
    from poisonlab import stats

    laws = [stats.Law("slope is 1", 1.0, 1.01, 0.98, 1.04, how="slope"),
            stats.Law("exponent is 2", 2.0, 2.5, 2.4, 2.6, tol=0.01, how="fitted exponent"),
            stats.Law("threshold is 0.45", 0.45, 0.41, 0.36, 0.46, how="jackknife"),
            stats.Law("gap is 0", 0.0, 0.031, 0.001, 0.061, scale=1.0, how="mean")]
    lines = book.laws_table(laws).data.splitlines()
    assert lines[0].split("|")[1:-1] == [" statement ", " how ", " predicted ", " fitted (95% CI) ", " detectable ",
                                         " verdict "]
    assert lines[2].endswith("| 1.01 [0.98, 1.04] | 0.043 | yes |") and "| slope |" in lines[2]
    assert lines[3].endswith("| 2.5 [2.4, 2.6] (tol 0.01) | 0.15 | **no** |")  # p ~ 1e-22: survives Holm
    assert lines[4].endswith("| not resolved |")  # half-width 0.05 > 10% of 0.45
    assert lines[5].endswith("| no, not after Holm |")  # p = 0.04, times 3 by Holm
    assert book.laws_table(stats.table(laws)).data == book.laws_table(laws).data
    with pytest.raises(ValueError, match="laws must have the columns"):
        book.laws_table(stats.table(laws).drop(columns="verdict"))
    with pytest.raises(ValueError, match="laws must be a list of Law"):
        book.laws_table("slope is 1")


def test_setup_returns_the_active_profile_and_checks_the_chapter(monkeypatch):
    monkeypatch.setenv("POISONLAB_PROFILE", "quick")
    assert book.setup("some-chapter") == get_profile("quick")
    assert book.chapter() == "some-chapter"
    with pytest.raises(ValueError, match="chapter"):
        book.setup("bad/name")


def test_environment_table_lists_versions_and_profile():
    text = book.environment_table(get_profile("quick")).data
    for key in ("| python |", "| torch |", "| numpy |", "| torch threads |", "| profile | quick |",
                f"| repeats (typical sweep) | {get_profile('quick').repeats} |"):
        assert key in text


def test_fmt_ci_writes_a_value_and_its_interval():
    assert book.fmt_ci(0.12345, -0.5, 2e-4) == "0.123 [\u22120.5, 2 \u00d7 10\u207b\u2074]"
    assert book.fmt_ci(1.0, 0.5, 1.5, 2, write=lambda x, d: f"{x:.{d}f}") == "1.00 [0.50, 1.50]"
