"""Book hygiene: each lint rule fires on a bad example and stays quiet on a clean book; the real book is clean."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bookrender import lint

QUARTO = """\
project:
  type: book
book:
  chapters:
    - index.qmd
    - report/a.qmd
bibliography: report/refs.bib
"""
BIB = "@book{hastie2009elements, author = {Hastie, Trevor}, title = {ESL}, year = {2009}}\n"
INDEX = "# Preface {.unnumbered}\n\nSee @sec-a-intro and @fig-a-line [@hastie2009elements].\n"
CHAPTER = '''\
# A

## Intro {#sec-a-intro}

$$
y = x
$$ {#eq-a-line}

As in @eq-a-line and Figure [-@fig-a-line]; `@fig-not-a-reference` is code.

```{python}
#| label: fig-a-line
#| fig-cap: "A line."
#| fig-alt: "A rising line."
x = 1
```

```{python}
#| label: tbl-a-table
#| tbl-cap: "A table."
x
```
'''


def make_book(root: Path, **changes) -> Path:
    """A clean two-chapter book, with `changes` ({relative path: text, or None to delete}) applied."""
    files = {"_quarto.yml": QUARTO, "report/refs.bib": BIB, "index.qmd": INDEX, "report/a.qmd": CHAPTER}
    files.update({k.replace("__", "/").replace("_dot_", "."): v for k, v in changes.items()})
    for name, text in files.items():
        if text is None:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def chapter_with(old: str, new: str) -> str:
    assert old in CHAPTER
    return CHAPTER.replace(old, new)


def test_clean_book_has_no_problems(tmp_path):
    assert lint.check_book(make_book(tmp_path)) == []


CASES = {
    "listed chapter missing": (dict(report__a_dot_qmd=None), "_quarto.yml: chapter report/a.qmd does not exist"),
    "chapter not listed": (dict(report__b_dot_qmd="# B\n"), "report/b.qmd: not listed in _quarto.yml"),
    "include missing": (dict(index_dot_qmd=INDEX + "\n{{< include report/_none.qmd >}}\n"),
                        "index.qmd:5: included file report/_none.qmd not found"),
    "bibliography missing": (dict(report__refs_dot_bib=None), "bibliography report/refs.bib not found"),
    "duplicate bibliography key": (dict(report__refs_dot_bib=BIB + BIB), "key 'hastie2009elements' is defined 2 times"),
    "space in '# |'": (dict(report__a_dot_qmd=chapter_with('#| fig-cap: "A line."', '# | fig-cap: "A line."')),
                       "report/a.qmd:13: option line '# | fig-cap: \"A line.\"' must start with '#|'"),
    "no space after '#|'": (dict(report__a_dot_qmd=chapter_with("#| tbl-cap:", "#|tbl-cap:")),
                            "report/a.qmd:20: option line '#|tbl-cap: \"A table.\"' needs a space after '#|'"),
    "option YAML invalid": (dict(report__a_dot_qmd=chapter_with('#| fig-cap: "A line."', '#| fig-cap: "A line.')),
                            "report/a.qmd:12: cell options are not valid YAML"),
    "figure without fig-cap": (dict(report__a_dot_qmd=chapter_with('#| fig-cap: "A line."\n', "")),
                               "report/a.qmd:11: figure cell fig-a-line has no fig-cap"),
    "figure without fig-alt": (dict(report__a_dot_qmd=chapter_with('#| fig-alt: "A rising line."\n', "")),
                               "figure cell fig-a-line has no fig-alt"),
    "table without tbl-cap": (dict(report__a_dot_qmd=chapter_with('#| tbl-cap: "A table."\n', "")),
                              "report/a.qmd:18: table cell tbl-a-table has no tbl-cap"),
    "underscore in a cell label": (dict(report__a_dot_qmd=chapter_with("tbl-a-table", "tbl-a_table")),
                                   "label 'tbl-a_table' has an underscore"),
    "underscore in a markdown label": (dict(report__a_dot_qmd=chapter_with("{#eq-a-line}", "{#eq-a_line}")),
                                       "report/a.qmd:7: label 'eq-a_line' has an underscore"),
    "duplicate label": (dict(index_dot_qmd=INDEX + "\n## Again {#sec-a-intro}\n"),
                        "label sec-a-intro is defined 2 times"),
    "reference without label": (dict(index_dot_qmd=INDEX + "\nAnd @tbl-nowhere.\n"),
                                "index.qmd:5: reference @tbl-nowhere has no matching label"),
    "doubled prefix": (dict(index_dot_qmd=INDEX + "\nAs Figure @fig-a-line shows.\n"),
                       "index.qmd:5: doubled prefix 'Figure @fig-'"),
    "unknown citation": (dict(index_dot_qmd=INDEX + "\nAs shown [@nobody2020].\n"),
                         "index.qmd:5: citation @nobody2020 is not in the bibliography"),
    "inline expression opens a line": (dict(index_dot_qmd=INDEX + "\nThe count is\n`{python} 1`. Then more.\n"),
                                       "index.qmd:6: inline `{python}` expression at the start of a line"),
    "control character": (dict(index_dot_qmd=INDEX + "\nA fraction $\x07lpha$ of the data.\n"),
                          "index.qmd:5: control character in the text"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rule_fires(tmp_path, case):
    changes, expected = CASES[case]
    problems = lint.check_book(make_book(tmp_path, **changes))
    assert any(expected in p for p in problems), problems


def test_references_in_code_and_math_are_ignored(tmp_path):
    extra = "\nCode `@fig-none` and `Figure @fig-none`; math $a@b$.\n\n```\n@tbl-none\n```\n"
    assert lint.check_book(make_book(tmp_path, index_dot_qmd=INDEX + extra)) == []


def test_included_files_are_checked(tmp_path):
    book = make_book(tmp_path, index_dot_qmd=INDEX + "\n{{< include report/_part.qmd >}}\n",
                     report___part_dot_qmd="See @fig-missing.\n")
    assert lint.check_book(book) == ["report/_part.qmd:1: reference @fig-missing has no matching label"]


def test_cli_exit_status(tmp_path, capsys):
    assert lint.main([str(make_book(tmp_path))]) == 0
    (tmp_path / "report" / "a.qmd").write_text(chapter_with("{#eq-a-line}", "{#eq-a_line}"))
    assert lint.main([str(tmp_path)]) == 1
    assert "underscore" in capsys.readouterr().out


def test_the_book_is_clean(repo_root):
    problems = lint.check_book(repo_root)
    assert problems == [], "\n".join(problems)


def test_inline_value_inside_math_must_go_through_fmt(tmp_path):
    chapter = CHAPTER + "\nThe slope is $w = `{python} w`$ and $b = `{python} book.fmt(b)`$; prose `{python} n`.\n"
    problems = lint.check_book(make_book(tmp_path, report__a_dot_qmd=chapter))
    assert len(problems) == 1 and "`{python} w` inside math" in problems[0] and "book.fmt(w)" in problems[0]
    assert problems[0].startswith(f"report/a.qmd:{CHAPTER.count(chr(10)) + 2}:"), problems


def test_lint_command_line(tmp_path, capsys):
    assert lint.main(["--help"]) == 0 and "Book hygiene" in capsys.readouterr().out
    assert lint.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no _quarto.yml" in err
    assert lint.main(["--bogus"]) == 2
    assert lint.main([str(make_book(tmp_path))]) == 0


def test_math_closed_right_before_a_value_is_caught(tmp_path):
    # pandoc reads "$\pm$1.5" as no math at all: the page shows "$$1.5"
    chapter = CHAPTER + "\nAt distance $\\pm$`{python} book.fmt(d)` and ($2/\\pi$ for L1), $x$ 3.\n"
    problems = lint.check_book(make_book(tmp_path, report__a_dot_qmd=chapter))
    assert len(problems) == 1 and "closed right before a number" in problems[0]
