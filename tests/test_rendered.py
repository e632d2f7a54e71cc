"""The rendered book, as readers get it: Quarto's HTML and PDF of the quick profile.

CI renders it first (`poisonlab render --engine quarto --profile quick`); without a rendered book
these tests are skipped with the reason. POISONLAB_RENDERED names another output folder.
"""
from __future__ import annotations

import importlib

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bookrender import model, notebooks, publish

pytestmark = [pytest.mark.book, pytest.mark.rendered]  # reads the rendered book (and executes chapters whose notebook is not cached)

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("POISONLAB_RENDERED", ROOT / "_book-quick"))
PROFILE = os.environ.get("POISONLAB_RENDERED_PROFILE", "quick")
SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789−")


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian: poppler-utils)")
    return path


@pytest.fixture(scope="module")
def pdf() -> Path:
    pdfs = sorted(OUT.glob("*.pdf")) if OUT.is_dir() else []
    if not pdfs:
        pytest.skip(f"no rendered PDF in {OUT}: run `poisonlab render --engine quarto --profile quick` first")
    return pdfs[0]


@pytest.fixture(scope="module")
def pdf_text(pdf) -> str:
    text = subprocess.run([_need("pdftotext"), "-enc", "UTF-8", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    return text


def flat(text: str) -> str:
    """Whitespace folded, hyphenation at line ends joined, superscripts as digits (math and prose alike)."""
    text = re.sub(r"(\d)-\n(\d)", r"\1\2", text)
    return re.sub(r"\s+", " ", text.translate(SUPERSCRIPTS))


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    if not (OUT / "index.html").is_file():
        pytest.skip(f"no rendered HTML in {OUT}: run `poisonlab render --engine quarto --profile quick` first")
    return {p.relative_to(OUT).as_posix(): p.read_text(encoding="utf-8") for p in OUT.rglob("*.html")
            if "site_libs" not in p.parts}


def test_the_pdf_has_no_escaped_or_unresolved_text(pdf_text):
    for bad in ("\\.", "\\-", "??", "?@"):
        where = pdf_text.find(bad)
        assert where < 0, f"{bad!r} in the PDF: ...{pdf_text[max(0, where - 80):where + 40]}..."


def inline_numbers(chapter) -> list[str]:
    """The text a reader sees of each numeric inline value of a chapter, from its executed notebook."""
    book = model.load_book(ROOT, profile=PROFILE)
    nb, _ = publish.executed(book.chapter(chapter), book, PROFILE, notebooks.DEFAULT_TIMEOUT)
    values = []
    for cell in nb.cells:
        if cell.metadata.get("bookrender", {}).get("role") != "inline":
            continue
        bundle = next(o["data"][notebooks.INLINE_MIME] for o in cell.outputs
                      if notebooks.INLINE_MIME in o.get("data", {}))
        text = notebooks.markdown_of_value(bundle).replace("\\%", "%")
        if re.search(r"\d", text) and "|" not in text and "\n" not in text and "\\" not in text:
            values.append(text)
    return values


CHAPTERS = [str(p.relative_to(ROOT)) for p in model.chapters(ROOT)]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_computed_number_appears_in_the_pdf_as_formatted(chapter, pdf_text):
    values = inline_numbers(ROOT / chapter)
    text = flat(pdf_text)
    missing = [v for v in values if flat(v) not in text]
    assert not missing, f"{chapter}: {len(missing)} of {len(values)} inline values not in the PDF: {missing[:8]}"


def visible(page: str) -> str:
    """The text a reader sees of an HTML page (MathML's TeX annotations and tags left out), folded."""
    page = re.sub(r"<annotation\b.*?</annotation>|<script\b.*?</script>|<style\b.*?</style>", "", page, flags=re.S)
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]+>", "", page)).translate(SUPERSCRIPTS))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_computed_number_appears_in_the_html_as_formatted(chapter, pages):
    page = visible(pages[Path(chapter).with_suffix(".html").as_posix()])
    values = inline_numbers(ROOT / chapter)
    missing = [v for v in values if re.sub(r"\s+", "", v.translate(SUPERSCRIPTS)) not in page]
    assert not missing, f"{chapter}: {len(missing)} of {len(values)} inline values not in the HTML: {missing[:8]}"


def laws_numbers(chapter) -> list[str]:
    """The predicted and fitted entries of a chapter's laws tables, as its executed notebook shows them."""
    book = model.load_book(ROOT, profile=PROFILE)
    nb, _ = publish.executed(book.chapter(chapter), book, PROFILE, notebooks.DEFAULT_TIMEOUT)
    values = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = "".join(output.get("data", {}).get("text/markdown", ""))
            lines = [line for line in text.splitlines() if line.startswith("|")]
            if not lines or "fitted (95% CI)" not in lines[0]:
                continue
            cells = lambda line: [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]  # noqa: E731
            header = cells(lines[0])
            for line in lines[2:]:
                row = dict(zip(header, cells(line)))
                values += [row["predicted"], row["fitted (95% CI)"]]
    return values


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c != "index.qmd"])
def test_every_laws_table_entry_appears_in_the_pdf(chapter, pdf_text):
    values = laws_numbers(ROOT / chapter)
    laws = importlib.import_module(f"poisonlab.chapters.{Path(chapter).stem.replace('-', '_')}.laws").LAWS
    # the closing table shows each law once (some chapters show partial tables before it)
    assert len(values) >= 2 * len(laws) > 0, f"{chapter}: its laws table (predicted, fitted per law) not found whole"
    text = flat(pdf_text)
    missing = [v for v in values if flat(v) not in text]
    assert not missing, f"{chapter}: {len(missing)} of {len(values)} laws-table entries not in the PDF: {missing[:6]}"


def test_the_numbers_quarto_once_mangled_are_intact(pdf_text):
    # rendered as a plain str, 0.0632 became "00632" and -0.293 lost its sign; the PDF must hold the
    # chapter's decimals and negative numbers as computed, and not their mangled forms
    values = [v for v in inline_numbers(ROOT / "report/linear-regression.qmd") if re.fullmatch(r"−?\d+\.\d+", v)]
    assert any(v.startswith("−") for v in values) and len(values) >= 10
    text = flat(pdf_text)
    mangled = [v for v in values if f" {v.replace('.', '').lstrip('−')} " in text and f"{v}" not in text]
    assert not mangled, mangled


def test_html_pages_have_no_unresolved_reference_error_output_or_escaped_math(pages):
    for name, page in pages.items():
        assert "quarto-unresolved-ref" not in page, f"{name}: unresolved cross-reference"
        assert "cell-output-error" not in page and "cell-output-stderr" not in page, f"{name}: error output"
        maths = re.findall(r'<span class="math (?:inline|display)">(.*?)</span>', page, re.S)
        maths += re.findall(r"<math\b.*?</math>", page, re.S)
        for math in maths:
            math = html.unescape(math)
            assert "\\." not in math and "\\-" not in math, f"{name}: escaped number in math {math[:80]!r}"


def test_every_html_figure_has_alt_text(pages):
    figures = 0
    for name, page in pages.items():
        for img in re.findall(r"<img\b[^>]*>", page):
            if "figure-img" not in img:
                continue
            figures += 1
            alt = re.search(r'alt="([^"]*)"', img)
            assert alt and alt.group(1).strip(), f"{name}: a figure without alt text: {img[:120]}"
    assert figures >= 10


def test_pdf_figures_are_vector(pdf):
    listing = subprocess.run([_need("pdfimages"), "-list", str(pdf)], check=True, capture_output=True,
                             text=True).stdout.splitlines()[2:]
    # a figure drawn as PNG is one raster as wide as the figure (about 6 in on the page); the only
    # rasters allowed are images that a vector figure shows (imshow panels), each a few cm wide
    inches = [int(line.split()[3]) / int(line.split()[12]) for line in listing if line.strip()]
    assert all(w < 3 for w in inches), f"full-width raster figures in the PDF: {sorted(inches)[-3:]} in"
