"""The render command: Quarto markdown read and previewed by the Jupyter engine, and the engine choice.

A two-chapter mini-book is rendered once (module fixture) and every feature is checked in its
executed notebooks and HTML pages. Failures, fallbacks and the Quarto engine get books of their own.
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

from bookrender import render
from poisonlab import cli

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
from poisonlab import book, plots
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


def tag(html: str, name: str, ident: str, cls: str) -> bool:
    """Whether `html` has <name id=ident class=cls> (attributes in any order: nbconvert reorders them)."""
    return any(f'id="{ident}"' in m and f'class="{cls}"' in m for m in re.findall(rf"<{name}\b[^>]*>", html))


def render_in(root: Path, argv: list, quarto=None) -> tuple[int, str]:
    """cli.main(argv) run from `root`, with `quarto` as the Quarto found (None: not installed)."""
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(render, "find_quarto", lambda: quarto)
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
    assert render.chapters(tmp_path) == [tmp_path / "index.qmd", tmp_path / "report" / "one.qmd"]


def test_cell_options_and_code_are_split():
    blocks = render.split_blocks("text\n```{python}\n#| echo: false\n#| fig-cap: \"a: b\"\nx = 1\n```\nmore", 1)
    assert [b.kind for b in blocks] == ["markdown", "code", "markdown"]
    assert blocks[1].options == {"echo": False, "fig-cap": "a: b"}
    assert blocks[1].text == "x = 1" and blocks[1].line == 2 and blocks[2].line == 7


def test_fenced_examples_of_cells_are_not_executed():
    text = "````markdown\n```{python}\nshown_only()\n```\n````\n\n```python\nalso_shown()\n```\n"
    assert [b.kind for b in render.split_blocks(text, 1)] == ["markdown"]


def test_unclosed_cell_is_an_error(tmp_path):
    path = tmp_path / "bad.qmd"
    path.write_text("# T\n\n```{python}\nx = 1\n")
    with pytest.raises(ValueError, match="line 3: code cell opened here is never closed"):
        render.read_qmd(path)


def test_included_cells_keep_their_own_file_and_lines(tmp_path):
    (tmp_path / "_part.qmd").write_text("Text.\n\n```{python}\n#| echo: false\nx = 1\n```\n")
    (tmp_path / "c.qmd").write_text("# C\n\n{{< include _part.qmd >}}\n\n```{python}\ny = 2\n```\n")
    source = render.read_qmd(tmp_path / "c.qmd")
    code = [b for b in source.blocks if b.kind == "code"]
    assert [(b.file.name, b.line, b.code_line) for b in code] == [("_part.qmd", 3, 5), ("c.qmd", 5, 6)]
    assert source.where(code[1].index).endswith("c.qmd:5")


def test_shortcodes_pagebreak_and_escapes():
    text = render.Markdown.shortcodes("a {{< pagebreak >}} b {{{< include x.qmd >}}} c {{< var v >}}")
    assert text == "a  b {{< include x.qmd >}} c {{< var v >}}"


def test_inline_expressions_skip_escapes_and_fences():
    text = "a `{python} x + 1` b ``{python} y`` c `code`\n```\n`{python} z`\n```\n`{python} w`"
    assert [e for e, _ in render.inline_expressions(text)] == ["x + 1", "w"]
    assert render.substitute_inline(text, ["2", "5"]).startswith("a 2 b ``{python} y``")


def test_plain_inline_values_are_escaped_like_quarto():
    assert render.escape_markdown("a*b_c [x] @k $1") == r"a\*b\_c \[x\] \@k \$1"


def test_bibtex_reader_and_author_year(tmp_path):
    (tmp_path / "r.bib").write_text(BIB + "@misc{three, author = {A, B and C, D and E, F}, year = {2020}}\n")
    bib = render.read_bib(tmp_path / "r.bib")
    assert bib["koh2017influence"]["title"] == "Understanding Black-box Predictions via Influence Functions"
    assert render.author_year(bib["huber1964robust"]) == ("Huber", "1964")
    assert render.author_year(bib["koh2017influence"]) == ("Koh and Liang", "2017")
    assert render.author_year(bib["three"]) == ("A et al.", "2020")


def test_counters_number_sections_figures_and_unnumbered_chapters():
    c = render.Counters(2, titled=True)
    assert [c.heading(2, []), c.heading(3, []), c.heading(2, []), c.heading(2, ["unnumbered"])] == \
        ["2.1", "2.1.1", "2.2", ""]
    assert [c.item("fig"), c.item("fig"), c.item("tbl")] == ["2.1", "2.2", "2.1"]
    preface = render.Counters(None, titled=False)
    assert preface.heading(1, []) == "" and preface.item("tbl") == "1"


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
    assert "Jupyter engine" in engine_lines[0] and "PDF" in engine_lines[0] and render.QUARTO_URL in engine_lines[0]


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
    assert "<strong>asis-bold</strong>" in mini["one"]
    assert '<a href="#fig-one-line">Figure 1.1</a>' in mini["one"]


def test_warning_false_drops_warnings(mini):
    assert "silenced-warning" not in str([c.get("outputs") for c in mini["nb"].cells])


def test_inline_expressions_are_substituted(mini):
    html = mini["one"]
    assert "The answer is 42, bold is <strong>strong-inline</strong>, plain is\na*b*c" in html
    assert "<code>{python} answer</code>" in html


def test_kernel_runs_in_the_chapter_folder_with_the_profile(mini):
    assert "cwd: report profile: quick tqdm: 1" in mini["one"]


def test_sections_equations_and_cross_references_are_numbered(mini):
    html = mini["one"]
    assert '<span id="sec-one-intro"></span>1.1 Introduction' in html
    assert '<span id="sec-one-details"></span>1.1.1 Details' in html
    assert '<span id="eq-one-line"></span>' in html and '<span class="pl-equation-number">(1.1)</span>' in html
    assert '<a href="#eq-one-line">Equation 1.1</a>' in html
    assert '<a href="#tbl-one-table">Table 1.1</a>' in html
    assert 'see <a href="#sec-one-details">Section 1.1.1</a>' in html
    assert '<a href="../index.html">the preface</a>' in html  # links to .qmd files become pages
    index = mini["index"]
    assert '<a href="report/one.html#sec-one-intro">Section 1.1</a>' in index
    assert '<a href="report/one.html#fig-one-line">Figure 1.1</a>' in index
    assert '<a href="report/one.html#tbl-one-table">1.1</a>' in index  # [-@tbl-...]: number only
    assert '<a href="report/one.html">the chapter</a>' in index


def test_figure_has_anchor_alt_text_and_numbered_caption(mini):
    html = mini["one"]
    figure = re.search(r'<figure[^>]*id="fig-one-line"[^>]*>(.*?)</figure>', html, re.S)
    assert figure is not None
    assert re.search(r'<img [^>]*alt="A straight line rising from left to right."', figure.group(1))
    assert 'src="data:image/png;base64,' in figure.group(1)
    assert '<figcaption>Figure 1.1: A rising line (see <a href="#eq-one-line">Equation 1.1</a>).</figcaption>' in html
    assert "&lt;Axes" not in html and "AxesArray" not in html  # book.setup keeps the repr out of the page
    assert re.search(r"Figure 1.2: A grid of <math display=\"inline\">.*?</math> blank images.", html)
    assert (mini["root"] / "figures" / "one" / "rising.png").is_file()


def test_table_caption_and_markdown_table(mini):
    html = mini["one"]
    assert tag(html, "div", "tbl-one-table", "pl-caption") and "Table 1.1: A small table." in html
    assert "<td>0.25</td>" in html or '<td style="text-align:right">0.25</td>' in html


def test_callout_is_a_box_with_its_title(mini):
    html = mini["one"]
    start = html.index('<div class="callout callout-note">')
    box = html[start:html.index("</div>", start)]
    assert "<strong>Callout heading</strong>" in box and "<em>callout</em>" in box
    assert "1.2 Callout heading" not in html  # a callout's heading is not a section


def test_citations_and_reference_list(mini):
    index = mini["index"]
    assert '(Huber, <a href="#ref-huber1964robust">1964</a>; see Koh and Liang, ' \
           '<a href="#ref-koh2017influence">2017</a>, p. 3)' in index
    assert 'id="ref-koh2017influence"' in index and "Understanding Black-box Predictions" in index
    assert 'Huber (<a href="#ref-huber1964robust">1964</a>) says so' in mini["one"]


def test_include_shortcode_and_included_table_caption(mini):
    assert tag(mini["index"], "div", "tbl-part", "pl-caption") and "Table 1: Included symbols." in mini["index"]


def test_math_is_mathml_and_mathjax_keeps_the_rest(mini):
    html = mini["one"]
    # inline math: MathML, no $ left around it
    inline = re.search(r'<math display="inline">(.*?)</math>', html)
    assert inline and "\u03b8" in inline.group(1) and "\u22a4" in inline.group(1)
    assert not re.search(r"\$\s*<math|</math>\s*\$", html) and "\\hat" not in html
    # the numbered equation: a MathML block, its number on the right, its anchor just before it
    anchor = html.index('<span id="eq-one-line"></span>')
    equation = re.search(r'<span class="pl-equation"><math display="block">(.*?)</math>'
                         r'<span class="pl-equation-number">\(1\.1\)</span></span>', html[anchor:])
    assert equation and "<mi>y</mi>" in equation.group(1) and "\\tag" not in html
    # what latex2mathml cannot convert stays TeX, and MathJax still loads for it
    assert "\\begin{aligned} u &amp;= v + 1" in html and "mathjax" in html.lower()
    # code and code outputs keep their dollars; the saved notebook keeps its TeX
    assert "<code>$code_math$</code>" in html and "output-math $z_{out}$" in html
    assert any("\\tag{1.1}" in c.source for c in mini["nb"].cells if c.cell_type == "markdown")


@pytest.mark.parametrize("tex", [
    r"\hat\theta", r"\tilde{x}", r"\mathbb{E}[X]", r"\boldsymbol{\theta}", r"X^\top X", r"\lVert w \rVert_2",
    r"\operatorname{Var}(x)", r"\arg\min_w f", r"\text{if } x > 0", r"\tfrac{1}{2}", r"\underbrace{a + b}_{n}", r"x \sim p",
    r"\begin{cases} 1 & x > 0 \\ 0 & \text{else} \end{cases}", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}"])
def test_supported_tex_becomes_mathml(tex):
    out = render.tex_to_mathml(tex)
    assert out.startswith('<math display="inline">') and out.endswith("</math>") and "\\" not in out


@pytest.mark.parametrize("tex", [
    r"\begin{aligned} a &= b \\ c &= d \end{aligned}", r"\begin{align} a \end{align}", r"a \\ b",
    r"\foo x", r"\label{eq-x} x", r"\frac{a}{b", r"x^", r"\text{a<b}", r"\mathop{\mathrm{argmin}}_w", ""])
def test_unsupported_tex_is_left_to_mathjax(tex):
    assert render.tex_to_mathml(tex) is None


def test_mathml_follows_tex_spacing_and_accents():
    assert "<mo>\u223c</mo>" in render.tex_to_mathml(r"x \sim p")  # not latex2mathml's '~'
    assert "<mo>\u02c6</mo>" in render.tex_to_mathml(r"\hat\theta")  # a hat that sits on the letter
    assert '<mo lspace="0em" rspace="0.167em">log</mo>' in render.tex_to_mathml(r"\log x")
    assert "<munder>" in render.tex_to_mathml(r"\min_w f", display=True)  # limits below in display
    assert "<msub>" in render.tex_to_mathml(r"\min_w f")
    assert render.tex_to_mathml(r"\$5").startswith('<math display="inline" class="tex2jax_ignore">')
    # browsers ignore mathvariant: bold and blackboard letters become Unicode's mathematical letters
    assert render.tex_to_mathml(r"\boldsymbol{\theta} + \mathbb E + \mathbb 1") == (
        '<math display="inline"><mrow><mrow><mi>\U0001d73d</mi></mrow><mo>+</mo><mi>\U0001d53c</mi><mo>+</mo>'
        '<mn>\U0001d7d9</mn></mrow></math>')
    # \lVert does not stretch to a fraction's height; \big sizes it
    assert '<mo lspace="0em" rspace="0em" stretchy="false">\u2016</mo>' in render.tex_to_mathml(r"\lVert x \rVert")
    assert '<mo minsize="1.2em" maxsize="1.2em" lspace="0em" rspace="0em">\u2016</mo>' in \
        render.tex_to_mathml(r"\big\lVert x \big\rVert")


def test_math_to_mathml_converts_math_only_outside_code():
    text = ("Cost \\$5, $\\text{_a_} E[X]$(b) and $\\foo_x$ in `$c$`.\n\n"
            "```python\nx = '$d$'\n```\n\n$$\ny = x\n\\tag{2.3}\n$$\n")
    out = render.math_to_mathml(text)
    # markdown syntax inside the MathML is escaped: no emphasis, no link
    assert out.startswith('Cost \\$5, <math display="inline"><mrow><mtext>&#95;a&#95;</mtext><mi>E</mi>'
                          '<mo stretchy="false">&#91;</mo><mi>X</mi><mo stretchy="false">&#93;</mo></mrow></math>(b)')
    assert " and $\\foo_x$ in `$c$`." in out and "x = '$d$'" in out
    assert out.rstrip().endswith('<span class="pl-equation-number">(2.3)</span></span>')
    assert "$$" not in out and "tag" not in out


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
                     r"ValueError: x must be finite, got nan \(at \S+/poisonlab/book.py:\d+\)$", lines[0]), lines[0]
    assert (previous / "index.html").read_text() == "previous good render"
    assert sorted(p.name for p in root.iterdir()) == ["_preview-quick", "_quarto.yml", "index.qmd", "report"]


def test_failing_inline_expression_is_named_outside_a_book(tmp_path):
    path = tmp_path / "alone.qmd"
    path.write_text("# Alone\n\n```{python}\nx = 1\n```\n\nFirst line.\nValue `{python} undefined_name + x`.\n")
    with pytest.raises(render.RenderError, match=r"alone.qmd:8: inline expression `\{python\} undefined_name \+ x` "
                                                 r"raised NameError: name 'undefined_name' is not defined"):
        render.execute_chapter(path, "quick")


# ---------------------------------------------------------------------------------------------
# The Quarto engine
# ---------------------------------------------------------------------------------------------

def test_engine_quarto_without_quarto_is_one_line_exit_2(tmp_path):
    write_book(tmp_path, {"_quarto.yml": QUARTO_YML})
    code, err = render_in(tmp_path, ["render", "--engine", "quarto"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "quarto is not on PATH" in err and render.QUARTO_URL in err


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


def test_tex_only_outputs_such_as_sympy_get_a_mathml_form():
    from bookrender import render

    output = {"output_type": "display_data",
              "data": {"text/latex": "$\\displaystyle \\frac{\\sigma^{2}}{n - d - 1}$", "text/plain": "x"}}
    render.latex_output_to_mathml(output)
    assert "<math" in output["data"]["text/html"] and "<mfrac>" in output["data"]["text/html"]
    rich = {"output_type": "display_data", "data": {"text/latex": "$x$", "text/html": "<b>x</b>"}}
    render.latex_output_to_mathml(rich)
    assert rich["data"]["text/html"] == "<b>x</b>"  # an output's own HTML is left as it is
