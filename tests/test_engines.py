"""The two engines agree: one small book rendered by Quarto and by the Jupyter engine (pandoc).

Numbers of sections, figures, tables and equations, the text of each cross-reference and of each
citation are read from both HTML books and compared; names with accents print in both.
Skipped where Quarto is not installed.
"""
from __future__ import annotations

import html
import re
import shutil
import textwrap

import pytest

from bookrender import jupyter_engine, publish

pytestmark = pytest.mark.book  # each test renders a small book

QUARTO_YML = """\
project:
  type: book
book:
  title: "Two engines"
  chapters:
    - index.qmd
    - report/alpha.qmd
    - report/beta.qmd
bibliography: report/refs.bib
number-sections: true
lang: en-GB
crossref:
  chapters: true
format:
  html:
    html-math-method: mathml
"""

BIB = r"""@article{frenay2014classification,
  author = {Fr{\'e}nay, Beno{\^{i}}t and Verleysen, Michel},
  title = {Classification in the Presence of Label Noise: A Survey},
  journal = {IEEE Transactions on Neural Networks and Learning Systems},
  year = {2014}
}
@inproceedings{munoz2017towards,
  author = {Mu{\~n}oz-Gonz{\'a}lez, Luis and Biggio, Battista},
  title = {Towards Poisoning of Deep Learning Algorithms},
  booktitle = {AISec},
  year = {2017}
}
@inproceedings{madry2018towards,
  author = {M{\k{a}}dry, Aleksander and Makelov, Aleksandar},
  title = {Towards Deep Learning Models Resistant to Adversarial Attacks},
  booktitle = {ICLR},
  year = {2018}
}
"""

FILES = {
    "_quarto.yml": QUARTO_YML,
    "report/refs.bib": BIB,
    "index.qmd": """\
        # Preface {.unnumbered}

        This book starts in @sec-alpha (@sec-alpha-setup, @fig-line), after @frenay2014classification.
        """,
    "report/alpha.qmd": '''\
        # Alpha {#sec-alpha}

        ## Setup {#sec-alpha-setup}

        Label noise [@frenay2014classification; @munoz2017towards] and robustness [@madry2018towards].

        $$
        y = a x + b
        $$ {#eq-line}

        ```{python}
        #| label: fig-line
        #| fig-cap: "A line."
        import matplotlib.pyplot as plt
        plt.plot([0, 1], [0, 1]);
        ```

        ```{python}
        #| label: tbl-small
        #| tbl-cap: "A table."
        from IPython.display import Markdown
        Markdown("| x | y |\\n|---|---|\\n| 1 | 2 |")
        ```

        ## Results {#sec-alpha-results}

        See @fig-line, @tbl-small, @eq-line and @sec-alpha-setup.
        ''',
    "report/beta.qmd": """\
        # Beta {#sec-beta}

        ## More {#sec-beta-more}

        $$
        z = 1
        $$ {#eq-beta}

        As in @fig-line and @eq-line of @sec-alpha, see @sec-alpha-results, @tbl-small and @eq-beta.

        ```{python}
        from poisonlab import book
        b, tiny, share, gap, n = -0.293, 1.15e-4, 0.1234, 0.0632, -7
        ```

        In prose: b = `{python} book.fmt(b)`, tiny = `{python} book.fmt(tiny)`, share =
        `{python} book.fmt(share, percent=True)`, gap = `{python} book.fmt(gap)`, n = `{python} book.fmt(n)`.
        In math: $b = `{python} book.fmt(b)`$, $t = `{python} book.fmt(tiny)`$,
        $s = `{python} book.fmt(share, percent=True)`$, $g = `{python} book.fmt(gap)`$, $n = `{python} book.fmt(n)`$.
        """,
}


def text(fragment: str) -> str:
    """Visible text of an HTML fragment, spaces normalised."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", fragment)).replace("\u00a0", " ")).strip()


def facts(page: str) -> dict:
    """What both engines must agree on, read from one HTML page."""
    return {
        "chapter": re.findall(r'<h1[^>]*>(?:<span[^>]*>)*<span class="(?:chapter|header-section)-number">(\d+)<', page),
        "sections": re.findall(r'<h[2-6][^>]*><span class="header-section-number">([\d.]+)</span>', page),
        "captions": [text(m) for m in re.findall(r"<(?:fig)?caption[^>]*>(.*?)</(?:fig)?caption>", page, re.S)],
        "equations": re.findall(r"\\qquad\s*\(([\d.]+)\)", page),
        "references": [(href, text(body)) for href, body in
                       re.findall(r'<a href="([^"]*)" class="quarto-xref">(.*?)</a>', page, re.S)],
        "citations": [text(m) for m in re.findall(r'<span class="citation"[^>]*>(.*?)</span>', page, re.S)],
    }


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    if shutil.which("quarto") is None:
        pytest.skip("quarto is not on PATH: the comparison of the two engines needs Quarto")
    root = tmp_path_factory.mktemp("engines")
    for name, body in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(body), encoding="utf-8")
    quarto = publish.render_book(root, "quick", root / "_quarto-out")
    jupyter = jupyter_engine.render_jupyter(root, "quick", None, root / "_jupyter-out")
    return quarto, jupyter


@pytest.mark.parametrize("page", ["index.html", "report/alpha.html", "report/beta.html"])
def test_both_engines_number_and_refer_alike(books, page):
    quarto, jupyter = (facts((out / page).read_text(encoding="utf-8")) for out in books)
    assert jupyter == quarto


def test_the_expected_numbers_and_accents(books, capsys):
    quarto, jupyter = books
    for out in books:
        alpha = facts((out / "report/alpha.html").read_text(encoding="utf-8"))
        assert alpha["chapter"] == ["1"] and alpha["sections"] == ["1.1", "1.2"] and alpha["equations"] == ["1.1"]
        assert alpha["captions"] == ["Figure 1.1: A line.", "Table 1.1: A table."]
        beta = facts((out / "report/beta.html").read_text(encoding="utf-8"))
        assert ("alpha.html", "Chapter 1") in beta["references"]
        assert ("alpha.html#fig-line", "Figure 1.1") in beta["references"]
        assert beta["equations"] == ["2.1"]
        page = (out / "report/alpha.html").read_text(encoding="utf-8")
        for name in ("Frénay", "Muñoz-González", "Mądry"):
            assert name in html.unescape(page), (out, name)
    index = facts((jupyter / "index.html").read_text(encoding="utf-8"))
    assert index["references"] == [("report/alpha.html", "1 Alpha"), ("report/alpha.html#sec-alpha-setup", "Setup"),
                                   ("report/alpha.html#fig-line", "Figure 1.1")]  # sections by title in a preface
    assert index["citations"] == ["Frénay and Verleysen (2014)"]


def test_the_jupyter_engine_reuses_the_executed_notebooks(books, capsys):
    root = books[0].parent
    jupyter_engine.render_jupyter(root, "quick", None, root / "_jupyter-out")
    err = capsys.readouterr().err
    assert err.count("executed notebook from the cache") == 3, err


def test_numbers_read_alike_in_prose_and_math_in_both_engines(books):
    from poisonlab import book

    expected = [book.fmt(v).plain for v in (-0.293, 1.15e-4, 0.0632, -7)] + [book.fmt(0.1234, percent=True).plain]
    flat = lambda t: re.sub(r"\s+", "", t.translate(str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789−")))  # noqa: E731
    for out in books:
        page = (out / "report/beta.html").read_text(encoding="utf-8")
        body = flat(text(re.sub(r"<annotation\b.*?</annotation>", "", page, flags=re.S)))
        for value in expected:  # once in prose, once in math
            assert body.count(flat(value)) >= 2, (out.name, value)
        assert "\\." not in page and "\\-" not in page, out.name
