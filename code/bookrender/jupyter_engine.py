"""The Jupyter engine (no Quarto): executed chapters to pandoc markdown, then to HTML pages by pandoc.

Each executed notebook becomes pandoc markdown (`chapter_markdown`: inline values, code, outputs,
figures and table captions) and pandoc makes it an HTML page (`page_html`: citations with citeproc,
math as MathML, Quarto's numbering, cross-references and callouts by `crossref.lua`).
"""
from __future__ import annotations

import base64
import html
import json
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat

from . import outputs, publish
from .model import Book, Chapter, RenderError, load_book, say
from .notebooks import ANSI, DEFAULT_TIMEOUT, inline_value
from .qmd import INLINE_EXPR, Source, code_spans, display_path, inline_expressions, without_fences

FILTER = Path(__file__).with_name("crossref.lua")


def substitute_inline(text: str, values: list[str]) -> str:
    """Replace the `{python} expr` spans of `text`, in order, by `values`."""
    values, pieces, pos = list(values), [], 0
    blank = without_fences(text)
    for start, end, content, ticks in code_spans(blank):
        if ticks == 1 and INLINE_EXPR.match(content):
            pieces += [text[pos:start], values.pop(0)]
            pos = end
    return "".join(pieces) + text[pos:]


# ----------------------------------------------------------------------------------------------
# Pandoc markdown of an executed chapter
# ----------------------------------------------------------------------------------------------

SHORTCODE = re.compile(r"(\{?)\{\{<\s*([\w-]+)([^>]*?)\s*>\}\}(\}?)")
IMAGES = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}


def shortcodes(text: str) -> str:
    """{{< pagebreak >}} dropped, escaped {{{< x >}}} shown as {{< x >}} (includes are read earlier)."""
    return SHORTCODE.sub(lambda m: "{{< " + (m.group(2) + m.group(3)).strip() + " >}}" if m.group(1) and m.group(4)
                         else "" if m.group(2) == "pagebreak" else m.group(0), text)


def fence(text: str, attributes: str) -> str:
    """`text` as a fenced code block, its fence longer than any backtick run inside it."""
    ticks = "`" * max(3, 1 + max(map(len, re.findall(r"`+", text)), default=0))
    return f"{ticks}{attributes}\n{text.rstrip()}\n{ticks}"


def output_markdown(output, options: dict, image: Path, figure: str | None) -> str:
    """One output of a code cell as markdown; an image is written to `image` (its suffix set here)."""
    kind, data = output.get("output_type"), output.get("data", {})
    if kind == "stream":
        name, text = output.get("name"), ANSI.sub("", output.get("text", ""))
        if name == "stderr" and options.get("warning") is False:
            return ""
        return text if name == "stdout" and options.get("output") == "asis" else fence(text, f"{{.cell-output-{name}}}")
    if kind == "error":
        return fence(ANSI.sub("", "\n".join(output.get("traceback", []))), "{.cell-output-error}")
    if "text/markdown" in data:
        return "".join(data["text/markdown"])
    if (mime := next((m for m in IMAGES if m in data), None)):
        payload, image = "".join(data[mime]), image.with_suffix("." + IMAGES[mime])
        image.write_bytes(payload.encode() if mime == "image/svg+xml" else base64.b64decode(payload))
        width = (output.get("metadata", {}).get(mime) or {}).get("width")
        alt = str(options.get("fig-alt", options.get("fig-cap", ""))).replace("\\", "\\\\").replace('"', '\\"')
        attributes = ([f'#{figure} fig-alt="{alt}"'] if figure else []) + ([f"width={width}"] if width else [])
        return f"![{options.get('fig-cap', '') if figure else ''}]({image.as_posix()}){{{' '.join(attributes)}}}"
    if "text/html" in data:
        return fence("".join(data["text/html"]), "{=html}")
    if (m := re.fullmatch(r"\$\$?(.+?)\$?\$", "".join(data.get("text/latex", "")).strip(), re.S)):
        return f"$${m.group(1).strip()}$$"  # sympy's display: math for pandoc's MathML
    text = "".join(data.get("text/plain", ""))
    return fence(text, "{.cell-output-display}") if text else ""


def cell_markdown(cell, folder: Path, name: str) -> str:
    """A code cell as Quarto shows it: its code (unless echo: false) and its outputs."""
    options = cell.metadata["bookrender"]["options"]
    if options.get("include") is False:
        return ""
    label, shown = str(options.get("label", "")), []
    code = [fence(cell.source, "{.python .cell-code}")] if options.get("echo") is not False else []
    if options.get("output") is not False:
        figure = label if label.startswith("fig-") else None
        for k, output in enumerate(cell.get("outputs", [])):
            shown.append(output_markdown(output, options, folder / f"{name}-{k}", figure))
            figure = None if shown[-1].startswith("![") else figure  # the first image is the figure
        markdown = any("text/markdown" in o.get("data", {}) for o in cell.get("outputs", []))
        if label.startswith("tbl-") and markdown:  # a pipe table: pandoc's caption, with its label
            shown.append(f": {options.get('tbl-cap', '')} {{#{label}}}")
        elif label.startswith("tbl-"):  # any other output: Quarto's table div, its caption last
            shown = [f"::: {{#{label}}}", *shown, str(options.get("tbl-cap", "")), ":::"]
    return "\n\n".join(p.strip("\n") for p in code + shown if p.strip())


def chapter_markdown(nb, chapter: Chapter, folder: Path) -> str:
    """The executed chapter as one pandoc markdown document; its images are written to `folder`."""
    parts, values = [], []
    for i, cell in enumerate(nb.cells):
        role = cell.metadata.get("bookrender", {}).get("role")
        if role == "inline":
            values.append(inline_value(cell))
        elif role == "title":  # the front matter's title: the chapter heading
            parts.append(f"# {chapter.title}")
        elif cell.cell_type == "markdown":
            parts.append(shortcodes(substitute_inline(cell.source, values)))
            values = []
        elif role == "code":
            parts.append(cell_markdown(cell, folder, f"cell-{i}"))
    return "\n\n".join(p for p in parts if p.strip()) + "\n"


def skeleton(chapter: Chapter) -> str:
    """The chapter unexecuted, enough for its labels: headings, equations, figures and tables."""
    parts = [f"# {chapter.title}"] if chapter.source.meta.get("title") else []
    for block in chapter.source.blocks:
        label, shown = str(block.options.get("label", "")), False not in (block.options.get("include"),
                                                                         block.options.get("output"))
        if block.kind == "markdown":
            parts.append(shortcodes(substitute_inline(block.text, ["0"] * len(inline_expressions(block.text)))))
        elif shown and label.startswith("fig-"):
            parts.append(f"![figure](figure.png){{#{label}}}")
        elif shown and label.startswith("tbl-"):
            parts.append(f"| x |\n|---|\n| 0 |\n\n: table {{#{label}}}")
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------
# HTML: pandoc, labels, navigation
# ----------------------------------------------------------------------------------------------

CSS = """<style>
body { max-width: 52rem; }
.pl-nav { display: flex; gap: 1.5rem; padding: 0.6rem 0; border-bottom: 1px solid #ddd; font-size: 0.9rem; }
.callout { border-left: 5px solid #0072B2; background: #f4f8fb; padding: 0.2rem 1rem; margin: 1rem 0; }
.callout-tip { border-color: #009E73; background: #f2faf7; }
.callout-warning, .callout-caution { border-color: #E69F00; background: #fdf8ef; }
.callout-important { border-color: #D55E00; background: #fdf4ef; }
figure { text-align: center; } figure img { max-width: 100%; height: auto; }
figcaption, caption { font-size: 0.92rem; text-align: left; }
pre > code.sourceCode, pre > code { white-space: pre-wrap; }  /* code-overflow: wrap */
math { font-family: "STIX Two Math", "Latin Modern Math", "Cambria Math", math; }
</style>"""


def pandoc(markdown: str, chapter: Chapter, book: Book, args: list, report: Path) -> tuple[dict, list, str]:
    """pandoc + crossref.lua on `markdown`, in the chapter's folder: (labels found, unresolved, stderr)."""
    try:
        import pypandoc
        command = [pypandoc.get_pandoc_path(), "-f", "markdown", "--lua-filter", str(FILTER), "-M",
                   f"bookrender-page={chapter.page}", "-M", f"bookrender-profile={book.profile or ''}",
                   "-M", f"bookrender-report={report}", *args]
    except (ImportError, OSError) as e:
        raise RenderError(f"pandoc not found ({e}): pip install pypandoc-binary") from None
    command += ["-M", f"bookrender-chapter={chapter.number}"] if chapter.number else []
    result = subprocess.run(command, input=markdown, cwd=chapter.source.path.parent, capture_output=True,
                            text=True, encoding="utf-8")
    if result.returncode:
        raise RenderError(f"{display_path(chapter.source.path)}: pandoc failed: {result.stderr.strip()}")
    found = json.loads(report.read_text(encoding="utf-8"))
    return found["labels"] or {}, found["unresolved"] or [], result.stderr


def collect_labels(book: Book) -> dict:
    """Every label of the book: {label: {number, kind, title, page}}, read from unexecuted chapters."""
    labels = {}
    with tempfile.TemporaryDirectory() as tmp:
        for chapter in book.chapters:
            found, _, _ = pandoc(skeleton(chapter), chapter, book, ["-t", "json", "-o", os.devnull],
                                 Path(tmp) / "report.json")
            labels.update({k: {**v, "page": chapter.page} for k, v in found.items() if k not in labels})
    return labels


def page_html(markdown: str, chapter: Chapter, book: Book, labels: dict, before: str = "",
              after: str = "") -> tuple[str, list[str]]:
    """The HTML page of a chapter's markdown, and the references it could not resolve."""
    here = posixpath.dirname(chapter.page) or "."
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        hrefs = {k: {**t, "href": f"#{k}" if t["page"] == chapter.page else posixpath.relpath(t["page"], here)
                     + ("" if t["kind"] == "chapter" else f"#{k}")} for k, t in labels.items()}  # as Quarto links
        (tmp / "labels.json").write_text(json.dumps(hrefs), encoding="utf-8")
        args = ["-t", "html5", "--standalone", "--embed-resources", "--mathml", "--wrap=none", "-o",
                str(tmp / "page.html"), "-M", f"bookrender-labels={tmp / 'labels.json'}", "-M",
                f"pagetitle={chapter_heading(chapter)}", "-M", "link-citations=true", "-V", f"header-includes={CSS}",
                "-V", f"include-before={before}", "-V", f"include-after={after}"]
        args += ["-M", f"lang={book.config['lang']}"] if book.config.get("lang") else []
        args += ["--number-sections", f"--number-offset={chapter.number - 1}"] if chapter.number else []
        if book.bibliography:
            args += ["--citeproc", *(f"--bibliography={p}" for p in book.bibliography)]
            args += [f"--csl={book.root / book.config['csl']}"] if book.config.get("csl") else []
        _, unresolved, stderr = pandoc(markdown, chapter, book, args, tmp / "report.json")
        missing = [f"@{key}" for key in re.findall(r"[Cc]itation (\S+) not found", stderr)]
        return (tmp / "page.html").read_text(encoding="utf-8"), unresolved + missing


def navigation(page: str, pages: list[tuple[str, str]]) -> str:
    """Links to the contents, the previous and the next chapter, relative to `page`."""
    rel = lambda p: posixpath.relpath(p, posixpath.dirname(page) or ".")  # noqa: E731
    links, names = [f'<a href="{rel("index.html")}">Contents</a>'], [p for p, _ in pages]
    i = names.index(page) if page in names else None
    if i:
        links.append(f'<a href="{rel(pages[i - 1][0])}">← {html.escape(pages[i - 1][1])}</a>')
    if i is not None and i + 1 < len(pages):
        links.append(f'<a href="{rel(pages[i + 1][0])}">{html.escape(pages[i + 1][1])} →</a>')
    return f'<nav class="pl-nav">{" ".join(links)}</nav>'


def chapter_heading(chapter: Chapter) -> str:
    return f"{chapter.number} {chapter.title}" if chapter.number else chapter.title


def contents_markdown(book: Book) -> str:
    """The table of contents of index.html: one link per chapter."""
    return "## Contents {.unnumbered}\n\n" + "".join(f"- [{chapter_heading(c)}]({c.page})\n" for c in book.chapters)


# ----------------------------------------------------------------------------------------------
# The engine: the book's pages
# ----------------------------------------------------------------------------------------------

def select_chapters(book: Book, names) -> list[Chapter]:
    """The chapters named on the command line (all when none), in book order."""
    wanted = [book.chapter(n).source.path for n in names or []]  # book.chapter raises naming `chapters`
    return [c for c in book.chapters if not names or c.source.path in wanted]


def render_chapter(chapter: Chapter, book: Book, out: Path, profile: str, timeout: float, labels: dict,
                   pages: list) -> tuple[list[str], bool]:
    """Write the chapter's .ipynb and .html under `out`: its unresolved references, whether cached."""
    nb, cached = publish.executed(chapter, book, profile, timeout)
    with tempfile.TemporaryDirectory() as tmp:
        markdown = chapter_markdown(nb, chapter, Path(tmp))
        markdown += "\n" + contents_markdown(book) if chapter.page == "index.html" else ""
        nav = navigation(chapter.page, pages)
        page, unresolved = page_html(markdown, chapter, book, labels, nav, nav)
    (out / chapter.page).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, (out / chapter.page).with_suffix(".ipynb"))
    (out / chapter.page).write_text(page, encoding="utf-8")
    return unresolved, cached


def preview_dir(root: Path, profile: str) -> Path:
    """The Jupyter engine's output folder: _preview (full profile) or _preview-quick."""
    return root / ("_preview" if profile == "full" else f"_preview-{profile}")


def render_jupyter(root: Path, profile: str, names=None, output=None, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Render the book with the Jupyter engine into `output` (default: `preview_dir`)."""
    book = load_book(root, profile=profile, missing_ok=bool(names))  # a partial render needs only its chapters
    selected = select_chapters(book, names)
    out, staging = outputs.prepare(output if output is not None else preview_dir(root, profile), root)
    pages = [(c.page, chapter_heading(c)) for c in book.chapters]
    try:
        labels = collect_labels(book)
        if names and out.is_dir():  # a partial render keeps the other chapters' pages
            shutil.copytree(out, staging, dirs_exist_ok=True)
        for chapter in selected:
            start = time.perf_counter()
            unresolved, cached = render_chapter(chapter, book, staging, profile, timeout, labels, pages)
            took = "executed notebook from the cache" if cached else f"{time.perf_counter() - start:.1f} s"
            say(f"{display_path(chapter.source.path)} ({took})")
            for ref in sorted(set(unresolved)):
                say(f"warning: {display_path(chapter.source.path)}: unresolved reference {ref}")
        if not (staging / "index.html").exists():  # a book without index.qmd: the title and the contents
            title = str((book.config.get("book") or {}).get("title", "The book"))
            index = Chapter(Source(book.root / "index.qmd", {}, []), "index.html", None, title)
            page, _ = page_html(f"# {title} {{.unnumbered}}\n\n{contents_markdown(book)}", index, book, labels)
            (staging / "index.html").write_text(page, encoding="utf-8")
        outputs.publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
