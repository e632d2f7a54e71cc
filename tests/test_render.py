"""The render command: Quarto markdown read and previewed by the Jupyter engine, and the engine choice.

A two-chapter mini-book is rendered once (module fixture) and every feature is checked in its
HTML pages (pandoc's, numbered by crossref.lua). Failures, fallbacks and the Quarto engine get books
of their own; tests/test_engines.py compares the two engines where Quarto is installed.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from bookrender import jupyter_engine, model, notebooks, publish, qmd, render
from poisonlab import cli

pytestmark = pytest.mark.book  # most tests render or execute a small book

QUARTO_YML = """\
project:
  type: book
book:
  title: "Mini book"
  chapters:
    - index.qmd
    - part: "Part one"
      chapters:
        - report/one.qmd
bibliography: report/refs.bib
format:
  html:
    fig-width: 4
    fig-height: 3
"""

INDEX = """\
# Preface {.unnumbered}

See @sec-one-intro, @fig-one-line and [-@tbl-one-table], cited as [@huber1964robust; see @koh2017influence, p. 3].
Link to [the chapter](report/one.qmd).

{{< include report/_part.qmd >}}
"""

PART = """\
| a | b |
|---|---|
| 1 | 2 |

: Included symbols. {#tbl-part}
"""

BIB = """\
@article{huber1964robust,
  author = {Huber, Peter J.},
  title = {Robust Estimation of a Location Parameter},
  journal = {The Annals of Mathematical Statistics},
  year = {1964}
}
@inproceedings{koh2017influence,
  author = "Koh, Pang Wei and Liang, Percy",
  title = {Understanding Black-box Predictions via {Influence} Functions},
  booktitle = {ICML},
  year = 2017
}
"""

ONE = '''\
---
title: "One"
---

```{python}
#| include: false
import os
import warnings
from IPython.display import Markdown
from poisonlab import book
from poisonlab.book import plots
PROFILE = book.setup("one")
answer = 6 * 7
secret_token = "include-false-ran"
```

## Introduction {#sec-one-intro}

The answer is `{python} answer`, bold is `{python} Markdown("**strong-inline**")`, plain is
`{python} "a*b*c"`, and ``{python} answer`` stays code. @huber1964robust says so. See @eq-one-line,
@fig-one-line and @tbl-one-table. Back to [the preface](../index.qmd).

Math: $\\hat\\theta = (X^\\top X)^{-1} X^\\top y$ inline, `$code_math$` in code, and
$$
\\begin{aligned} u &= v + 1 \\\\ w &= 2 u \\end{aligned}
$$
beyond latex2mathml.

$$
y = a x + b
$$ {#eq-one-line}

```{python}
#| echo: false
print("echo-false-output", secret_token)
print("output-math $z_{out}$")
```

```{python}
#| eval: false
never_evaluated_function()
```

```{python}
#| output: false
print("output-false-text")
```

```{python}
#| output: asis
print("**asis-bold** and @fig-one-line")
```

```{python}
print("cwd:", os.path.basename(os.getcwd()), "profile:", os.environ["POISONLAB_PROFILE"],
      "tqdm:", os.environ["TQDM_DISABLE"])
```

```{python}
#| warning: false
warnings.warn("silenced-warning")
```

::: {.callout-note}
## Callout heading
Inside the *callout*.
:::

```{python}
#| label: fig-one-line
#| fig-cap: "A rising line (see @eq-one-line)."
#| fig-alt: "A straight line rising from left to right."
plots.line([0, 1], [0, 1], name="rising")
```

```{python}
#| label: tbl-one-table
#| tbl-cap: "A small table."
import pandas as pd
book.markdown_table(pd.DataFrame({"x": [1, 2], "y": [0.5, 0.25]}))
```

```{python}
#| label: fig-one-grid
#| fig-cap: "A grid of $2^2$ blank images."
#| fig-alt: "Four black squares."
import torch
plots.image_grid(torch.zeros(4, 1, 4, 4), ncols=2)
```

### Details {#sec-one-details}

A worked detail, see @sec-one-details.
'''


def write_book(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if name.endswith(".qmd") else text, encoding="utf-8")
    return root


def xref(href: str, text: str) -> str:
    """A cross-reference as crossref.lua writes it (a no-break space after the kind, as Quarto)."""
    return f'<a href="{href}" class="quarto-xref">{text.replace(" ", chr(160))}</a>'


def render_in(root: Path, argv: list, quarto=None) -> tuple[int, str]:
    """cli.main(argv) run from `root`, with `quarto` as the Quarto found (None: not installed)."""
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(publish, "find_quarto", lambda: quarto)
        with contextlib.redirect_stderr(err):
            code = cli.main(argv)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = write_book(tmp_path_factory.mktemp("mini"), {
        "_quarto.yml": QUARTO_YML, "index.qmd": INDEX, "report/_part.qmd": PART,
        "report/refs.bib": BIB, "report/one.qmd": ONE})
    code, err = render_in(root, ["render", "--engine", "auto", "--profile", "quick"])
    out = root / "_preview-quick"
    return {"root": root, "code": code, "err": err, "out": out,
            "index": (out / "index.html").read_text() if code == 0 else "",
            "one": (out / "report" / "one.html").read_text() if code == 0 else "",
            "nb": nbformat.read(out / "report" / "one.ipynb", 4) if code == 0 else None}


# ---------------------------------------------------------------------------------------------
# Reading .qmd files (no kernel)
# ---------------------------------------------------------------------------------------------

def test_chapters_follow_the_book_order_and_parts(tmp_path):
    write_book(tmp_path, {"_quarto.yml": QUARTO_YML})
    assert model.chapters(tmp_path) == [tmp_path / "index.qmd", tmp_path / "report" / "one.qmd"]


def test_cell_options_and_code_are_split():
    blocks = qmd.split_blocks("text\n```{python}\n#| echo: false\n#| fig-cap: \"a: b\"\nx = 1\n```\nmore", 1)
    assert [b.kind for b in blocks] == ["markdown", "code", "markdown"]
    assert blocks[1].options == {"echo": False, "fig-cap": "a: b"}
    assert blocks[1].text == "x = 1" and blocks[1].line == 2 and blocks[2].line == 7


def test_fenced_examples_of_cells_are_not_executed():
    text = "````markdown\n```{python}\nshown_only()\n```\n````\n\n```python\nalso_shown()\n```\n"
    assert [b.kind for b in qmd.split_blocks(text, 1)] == ["markdown"]


def test_unclosed_cell_is_an_error(tmp_path):
    path = tmp_path / "bad.qmd"
    path.write_text("# T\n\n```{python}\nx = 1\n")
    with pytest.raises(ValueError, match="line 3: code cell opened here is never closed"):
        qmd.read_qmd(path)


def test_included_cells_keep_their_own_file_and_lines(tmp_path):
    (tmp_path / "_part.qmd").write_text("Text.\n\n```{python}\n#| echo: false\nx = 1\n```\n")
    (tmp_path / "c.qmd").write_text("# C\n\n{{< include _part.qmd >}}\n\n```{python}\ny = 2\n```\n")
    source = qmd.read_qmd(tmp_path / "c.qmd")
    code = [b for b in source.blocks if b.kind == "code"]
    assert [(b.file.name, b.line, b.code_line) for b in code] == [("_part.qmd", 3, 5), ("c.qmd", 5, 6)]
    assert source.where(code[1].index).endswith("c.qmd:5")


def test_shortcodes_pagebreak_and_escapes():
    text = jupyter_engine.shortcodes("a {{< pagebreak >}} b {{{< include x.qmd >}}} c {{< var v >}}")
    assert text == "a  b {{< include x.qmd >}} c {{< var v >}}"


def test_inline_expressions_skip_escapes_and_fences():
    text = "a `{python} x + 1` b ``{python} y`` c `code`\n```\n`{python} z`\n```\n`{python} w`"
    assert [e for e, _ in qmd.inline_expressions(text)] == ["x + 1", "w"]
    assert jupyter_engine.substitute_inline(text, ["2", "5"]).startswith("a 2 b ``{python} y``")


def test_plain_inline_values_are_escaped_like_quarto():
    assert notebooks.markdown_of_value({"text/plain": "'a*b_c [x] 1.5'"}) == r"a\*b\_c \[x\] 1\.5"
    assert notebooks.markdown_of_value({"text/plain": "42", "text/markdown": "**b**"}) == "**b**"


def test_bibtex_reader_for_the_lint(tmp_path):
    (tmp_path / "r.bib").write_text(BIB + "@misc{three, author = {A, B and C, D and E, F}, year = {2020}}\n")
    bib = qmd.read_bib(tmp_path / "r.bib")
    assert bib == {"huber1964robust": {"type": "article"}, "koh2017influence": {"type": "inproceedings"},
                   "three": {"type": "misc"}}


def page(markdown: str, number, page="report/two.html", labels=None, tmp_path=None):
    """pandoc + crossref.lua on `markdown` as chapter `number` of a book without a bibliography (no kernel)."""
    chapter = model.Chapter(qmd.Source(tmp_path / "two.qmd", {}, []), page, number, "Two")
    book = model.Book(tmp_path, {}, [chapter], [], "quick")
    return jupyter_engine.page_html(markdown, chapter, book, labels or {})


def test_numbering_references_callouts_and_profiles_without_a_kernel(tmp_path):
    text = textwrap.dedent("""\
        # Two {#sec-two}

        ## First {#sec-first}

        ### Deeper {#sec-deeper}

        ## Unnumbered {.unnumbered}

        ## Second

        $$ a = b $$ {#eq-ab}

        ![A cap](x.png){#fig-x fig-alt="Alt"}

        | a |
        |---|
        | 1 |

        : Tab. {#tbl-t}

        ::: {#tbl-div}
        Any content.

        A div table.
        :::

        ::: {.callout-warning title="Careful *here*"}
        Body.
        :::

        ::: {.content-visible when-profile="full"}
        Full-only text.
        :::

        ::: {.content-hidden when-format="html"}
        Not in HTML.
        :::

        ::: {.content-visible unless-profile="full"}
        Quick text.
        :::

        See @sec-two, @sec-deeper, [-@eq-ab], @Fig-x, @tbl-t, @eq-other, @fig-missing and [a](other.qmd#x).
        """)
    labels = {"eq-other": {"number": "1.3", "kind": "eq", "title": "", "page": "index.html"}}
    html, unresolved = page(text, 2, labels=labels, tmp_path=tmp_path)
    assert '<h2 data-number="2.1" id="sec-first"><span class="header-section-number">2.1</span> First</h2>' in html
    assert '<span class="header-section-number">2.1.1</span> Deeper' in html
    assert '<span class="header-section-number">2.2</span> Second' in html  # the unnumbered one is skipped
    for ref, text_ in [("#sec-two", "Chapter 2"), ("#sec-deeper", "Section 2.1.1"), ("#eq-ab", "2.1"),
                       ("#fig-x", "Figure 2.1"), ("#tbl-t", "Table 2.1"), ("../index.html#eq-other", "Equation 1.3")]:
        assert xref(ref, text_) in html, ref
    assert "<strong>?@fig-missing</strong>" in html and unresolved == ["@fig-missing"]
    assert '<a href="other.html#x">a</a>' in html
    assert "\\qquad(2.1)" in html and '<span id="eq-ab">' in html
    assert "<figcaption>Figure\u00a02.1: A cap</figcaption>" in html and 'alt="Alt"' in html
    assert "<caption>Table\u00a02.1: Tab.</caption>" in html and "<p>Table\u00a02.2: A div table.</p>" in html
    assert '<div class="callout callout-warning">' in html and "<strong>Careful <em>here</em></strong>" in html
    assert "Quick text." in html and "Full-only" not in html and "Not in HTML" not in html


def test_an_unnumbered_chapter_numbers_its_items_alone(tmp_path):
    html, _ = page("# Preface {.unnumbered}\n\n## A {#sec-a}\n\n$$ x $$ {#eq-x}\n\nSee @eq-x.\n", None,
                   page="index.html", tmp_path=tmp_path)
    assert "header-section-number" not in html and xref("#eq-x", "Equation 1") in html


def test_bad_engine_and_profile_name_the_parameter():
    with pytest.raises(ValueError, match="engine"):
        render.main(engine="gpu")
    with pytest.raises(ValueError, match="profile"):
        render.main(engine="jupyter", profile="huge")


# ---------------------------------------------------------------------------------------------
# The mini-book, rendered once by the Jupyter engine
# ---------------------------------------------------------------------------------------------

def test_auto_falls_back_to_jupyter_and_says_how_to_get_quarto(mini):
    assert mini["code"] == 0, mini["err"]
    engine_lines = [line for line in mini["err"].splitlines() if "Quarto" in line]
    assert len(engine_lines) == 1
    assert "Jupyter engine" in engine_lines[0] and "PDF" in engine_lines[0] and publish.QUARTO_URL in engine_lines[0]


def test_pages_notebooks_and_index_are_written(mini):
    out = mini["out"]
    for name in ("index.html", "index.ipynb", "report/one.html", "report/one.ipynb"):
        assert (out / name).is_file(), name
    assert 'href="report/one.html"' in mini["index"]  # the contents
    assert not [p for p in mini["root"].iterdir() if p.name.startswith("._preview")]  # no staging left


def test_echo_false_shows_output_without_code(mini):
    assert "echo-false-output include-false-ran" in mini["one"]
    assert "&quot;echo-false-output&quot;" not in mini["one"]


def test_include_false_runs_but_shows_nothing(mini):
    assert "secret_token" not in mini["one"]
    assert "include-false-ran" in mini["one"]  # its variable was defined


def test_eval_false_shows_code_without_running_it(mini):
    assert "never_evaluated_function" in mini["one"]
    assert "NameError" not in mini["one"]


def test_output_false_hides_output(mini):
    assert mini["one"].count("output-false-text") == 1  # in the code shown, not as output


def test_output_asis_becomes_markdown(mini):
    assert "<strong>asis-bold</strong> and " + xref("#fig-one-line", "Figure 1.1") in mini["one"]


def test_warning_false_drops_warnings(mini):
    assert "silenced-warning" in str([c.get("outputs") for c in mini["nb"].cells])  # the notebook keeps it
    assert "cell-output-stderr" not in mini["one"] and "UserWarning" not in mini["one"]


def test_inline_expressions_are_substituted(mini):
    html = mini["one"]
    assert "The answer is 42, bold is <strong>strong-inline</strong>, plain is a*b*c" in html
    assert "<code>{python} answer</code>" in html


def test_kernel_runs_in_the_chapter_folder_with_the_profile(mini):
    assert "cwd: report profile: quick tqdm: 1" in mini["one"]


def test_sections_equations_and_cross_references_are_numbered(mini):
    html = mini["one"]
    assert '<h1 data-number="1" id="one"><span class="header-section-number">1</span> One</h1>' in html
    assert 'id="sec-one-intro"><span class="header-section-number">1.1</span> Introduction</h2>' in html
    assert 'id="sec-one-details"><span class="header-section-number">1.1.1</span> Details</h3>' in html
    assert '<span id="eq-one-line"><math display="block"' in html and "<mn>1.1</mn>" in html  # y = ax + b  (1.1)
    assert xref("#eq-one-line", "Equation 1.1") in html
    assert xref("#tbl-one-table", "Table 1.1") in html
    assert "see " + xref("#sec-one-details", "Section 1.1.1") in html
    assert '<a href="../index.html">the preface</a>' in html  # links to .qmd files become pages
    index = mini["index"]
    assert '<h1 class="unnumbered" id="preface">Preface</h1>' in index
    assert xref("report/one.html#sec-one-intro", "Introduction") in index  # by title in a preface, as Quarto
    assert xref("report/one.html#fig-one-line", "Figure 1.1") in index
    assert "and " + xref("report/one.html#tbl-one-table", "1.1") in index  # [-@tbl-...]: number only
    assert '<a href="report/one.html">the chapter</a>' in index


def test_figure_has_anchor_alt_text_and_numbered_caption(mini):
    html = mini["one"]
    figure = re.search(r'<figure[^>]*id="fig-one-line"[^>]*>(.*?)</figure>', html, re.S)
    assert figure is not None
    assert re.search(r'<img [^>]*alt="A straight line rising from left to right."', figure.group(1))
    assert 'src="data:image/png;base64,' in figure.group(1)
    assert (f'<figcaption>Figure\u00a01.1: A rising line (see {xref("#eq-one-line", "Equation 1.1")}).'
            f'</figcaption>') in html
    assert "&lt;Axes" not in html and "AxesArray" not in html  # book.setup keeps the repr out of the page
    assert re.search(r"Figure\u00a01.2: A grid of <math display=\"inline\".*?</math> blank images.", html)
    assert (mini["root"] / "figures" / "one" / "rising.png").is_file()


def test_table_caption_and_markdown_table(mini):
    html = mini["one"]
    assert '<table id="tbl-one-table">\n<caption>Table\u00a01.1: A small table.</caption>' in html
    assert '<td style="text-align: right;">0.25</td>' in html


def test_callout_is_a_box_with_its_title(mini):
    html = mini["one"]
    start = html.index('<div class="callout callout-note">')
    box = html[start:html.index("</div>\n</div>", html.index('class="callout-body"', start))]
    assert "<strong>Callout heading</strong>" in box and "<em>callout</em>" in box
    assert "<h2" not in box and ">1.2<" not in html  # a callout's heading is not a section


def test_citations_and_reference_list(mini):
    index = mini["index"]  # pandoc's citeproc, Chicago author-date (Quarto's default style)
    assert '(<a href="#ref-huber1964robust" role="doc-biblioref">Huber 1964</a>; see ' \
           '<a href="#ref-koh2017influence" role="doc-biblioref">Koh and Liang 2017, 3</a>)' in index
    assert 'id="ref-koh2017influence"' in index and "Understanding Black-Box Predictions" in index
    assert 'Huber (<a href="#ref-huber1964robust" role="doc-biblioref">1964</a>)</span> says so' in mini["one"]
    assert "References</h2>" in mini["one"] and 'id="ref-koh2017influence"' not in mini["one"]  # what it cites


def test_include_shortcode_and_included_table_caption(mini):
    assert '<table id="tbl-part">\n<caption>Table\u00a01: Included symbols.</caption>' in mini["index"]


def test_math_is_mathml_even_what_latex2mathml_could_not_convert(mini):
    html = mini["one"]
    inline = re.search(r'<math display="inline"[^>]*>(.*?)</math>', html)
    assert inline and "\u03b8" in inline.group(1) and "\u22a4" in inline.group(1)
    assert not re.search(r"\$\s*<math|</math>\s*\$", html) and "mathjax" not in html.lower()
    assert "<mtable>" in html  # \begin{aligned}: pandoc's texmath converts it
    # code and code outputs keep their dollars; the saved notebook keeps its TeX
    assert "<code>$code_math$</code>" in html and "output-math $z_{out}$" in html
    assert any("y = a x + b" in c.source for c in mini["nb"].cells if c.cell_type == "markdown")


def test_partial_render_keeps_the_other_pages(mini):
    index_before = (mini["out"] / "index.html").read_bytes()
    code, err = render_in(mini["root"], ["render", "--engine", "jupyter", "--profile", "quick",
                                         "--chapters", "report/one.qmd"])
    assert code == 0, err
    assert (mini["out"] / "index.html").read_bytes() == index_before
    assert "report/one.qmd" in err and "index.qmd" not in err.replace("index.html", "")


def test_unknown_chapter_is_a_usage_error(mini):
    code, err = render_in(mini["root"], ["render", "--engine", "jupyter", "--chapters", "report/none.qmd"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "chapters" in err


# ---------------------------------------------------------------------------------------------
# Failures keep the previous output and say where
# ---------------------------------------------------------------------------------------------

def test_failing_cell_names_chapter_cell_and_error_and_keeps_previous_output(tmp_path):
    root = write_book(tmp_path, {
        "_quarto.yml": "project:\n  type: book\nbook:\n  chapters:\n    - index.qmd\n    - report/bad.qmd\n",
        "index.qmd": "# Preface\n\nFine.\n",
        "report/bad.qmd": "# Bad\n\n```{python}\nx = 1\n```\n\nText.\n\n```{python}\n#| echo: true\n"
                          "from poisonlab import book\ny = x + 1\nbook.fmt(y * float('nan'))\n```\n"})
    previous = root / "_preview-quick"
    previous.mkdir()
    (previous / "index.html").write_text("previous good render")
    code, err = render_in(root, ["render", "--engine", "jupyter", "--profile", "quick"])
    assert code == 1
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in err
    # the failing line of the cell, and where in poisonlab the error surfaced
    assert re.search(r"report/bad.qmd:13: cell 2 \(\"book.fmt\(y \* float\('nan'\)\)\"\) raised "
                     r"ValueError: x must be finite, got nan \(at \S+/poisonlab/book/prose.py:\d+\)$", lines[0]), lines[0]
    assert (previous / "index.html").read_text() == "previous good render"
    # no staging folder left (.cache holds the executed notebooks, shared with the Quarto engine)
    assert sorted(p.name for p in root.iterdir() if p.name != ".cache") == \
        ["_preview-quick", "_quarto.yml", "index.qmd", "report"]


def test_failing_inline_expression_is_named_outside_a_book(tmp_path):
    path = tmp_path / "alone.qmd"
    path.write_text("# Alone\n\n```{python}\nx = 1\n```\n\nFirst line.\nValue `{python} undefined_name + x`.\n")
    with pytest.raises(model.RenderError, match=r"alone.qmd:8: inline expression `\{python\} undefined_name \+ x` "
                                                 r"raised NameError: name 'undefined_name' is not defined"):
        render.execute_chapter(path, "quick")


# ---------------------------------------------------------------------------------------------
# The Quarto engine
# ---------------------------------------------------------------------------------------------

def test_engine_quarto_without_quarto_is_one_line_exit_2(tmp_path):
    write_book(tmp_path, {"_quarto.yml": QUARTO_YML})
    code, err = render_in(tmp_path, ["render", "--engine", "quarto"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "quarto is not on PATH" in err and publish.QUARTO_URL in err


def test_engine_quarto_without_quarto_in_a_subprocess(tmp_path):
    write_book(tmp_path, {"_quarto.yml": QUARTO_YML})
    env = {**os.environ, "PATH": str(tmp_path)}  # no quarto there
    proc = subprocess.run([sys.executable, "-m", "poisonlab", "render", "--engine", "quarto"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "engine" in proc.stderr and "quarto" in proc.stderr


def test_auto_uses_quarto_when_installed_with_the_profile(tmp_path):
    write_book(tmp_path, {"_quarto.yml": QUARTO_YML, "index.qmd": INDEX, "report/_part.qmd": PART,
                          "report/refs.bib": BIB, "report/one.qmd": ONE})
    log = tmp_path / "quarto.log"
    fake = tmp_path / "bin" / "quarto"
    fake.parent.mkdir()
    # a stand-in for Quarto: logs how it was called and writes a book where it was told to
    fake.write_text(f'#!/bin/sh\necho "$@ | $POISONLAB_PROFILE $QUARTO_PROFILE $TQDM_DISABLE" > "{log}"\n'
                    f'ls *.ipynb report/*.ipynb >> "{log}"\n'
                    'mkdir -p _bookrender_out && echo book > _bookrender_out/index.html\n')
    fake.chmod(0o755)
    code, err = render_in(tmp_path, ["render", "--profile", "quick"], quarto=str(fake))
    assert code == 0 and "using Quarto" in err, err
    lines = log.read_text().split("\n")
    assert lines[0] == "render --profile quick --output-dir _bookrender_out | quick quick 1"
    assert lines[1:3] == ["index.ipynb", "report/one.ipynb"]  # each chapter executed once, as a notebook
    assert (tmp_path / "_book" / "index.html").read_text() == "book\n"
    assert (tmp_path / "_book" / ".poisonlab-render").is_file()
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


def test_tex_only_outputs_such_as_sympy_become_display_math(tmp_path):
    output = {"output_type": "display_data",
              "data": {"text/latex": "$\\displaystyle \\frac{\\sigma^{2}}{n - d - 1}$", "text/plain": "x"}}
    assert (jupyter_engine.output_markdown(output, {}, tmp_path / "x", None)
            == "$$\\displaystyle \\frac{\\sigma^{2}}{n - d - 1}$$")
    rich = {"output_type": "display_data", "data": {"text/latex": "$x$", "text/html": "<b>x</b>"}}
    assert jupyter_engine.output_markdown(rich, {}, tmp_path / "x", None) == "```{=html}\n<b>x</b>\n```"
    cell = nbformat.v4.new_code_cell("df", outputs=[nbformat.v4.new_output("execute_result", rich["data"])])
    cell.metadata["bookrender"] = {"options": {"label": "tbl-df", "tbl-cap": "A frame.", "echo": False}}
    assert (jupyter_engine.cell_markdown(cell, tmp_path, "c")
            == "::: {#tbl-df}\n\n```{=html}\n<b>x</b>\n```\n\nA frame.\n\n:::")
