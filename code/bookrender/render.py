"""Render the book: `quarto render` where Quarto is installed, else a Jupyter engine of our own.

The Jupyter engine reads `_quarto.yml`, turns every chapter (.qmd) into a notebook, executes it in a
`python3` kernel with the chapter's folder as working directory (as Quarto does), saves the executed
notebook and exports it to HTML with nbconvert. It previews Quarto's markdown: numbered sections,
figures, tables and equations, cross-references, callouts, citations, `{{< include >}}` and inline
`{python}` expressions. Quarto renders the full book, PDF included.

Pipeline of one chapter: read (`read_qmd`) -> notebook (`build_notebook`) -> execute (`run_notebook`)
-> finish (`finish_notebook`: inline values, numbers, captions, links) -> save .ipynb and .html
(`to_html`: math as MathML where it converts, MathJax from its CDN for the rest).
Reading .qmd files, the bibliography and the markdown transform are in `qmd`; this module holds the
book, the notebooks, their execution, the HTML export and the engines.
"""
from __future__ import annotations

import base64
import copy
import html
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

# the .qmd reader, the bibliography and the markdown transform live in qmd; every name is
# importable from render as before (lint and the tests use render.read_qmd, render.Markdown...)
from .qmd import (  # noqa: F401
    display_path, FENCE, EXECUTABLE, INCLUDE, OPTION, Block, Source, fence_close, split_front_matter,
    include_target, expand_includes, parse_options, split_blocks, read_qmd, BACKTICKS, INLINE_EXPR,
    DISPLAY_MATH, INLINE_MATH, LABELLED_EQ, PLACEHOLDER, code_spans, inline_expressions,
    without_fences, parse_attributes, Protected, unescape_executable, escape_markdown, read_bib,
    clean_tex, surnames, author_year, reference_text, KINDS, KEY, CITATION, BRACKETED, HEADING, DIV,
    DIV_CLOSE, IMAGE_FIG, TABLE_CAPTION, SHORTCODE, QMD_LINK, CALLOUT_TITLES, Target, Counters,
    chapter_title, Markdown, MATHML_ENVIRONMENTS, tex_to_mathml, display_mathml, math_to_mathml,
)

ENGINES = ("auto", "quarto", "jupyter")
PROFILES = ("quick", "full")
QUARTO_URL = "https://quarto.org/docs/get-started/"
INLINE_MIME = "application/vnd.bookrender.inline+json"
DEFAULT_TIMEOUT = 1800  # seconds per cell: a full-profile sweep may run for minutes


def choice(name: str, value, allowed) -> str:
    """`value` if it is one of `allowed`, else ValueError naming the parameter."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


class RenderError(RuntimeError):
    """A chapter could not be rendered; the message names the chapter, the cell and the error."""


# ----------------------------------------------------------------------------------------------
# The project: _quarto.yml and its chapters
# ----------------------------------------------------------------------------------------------

def find_root(start=None) -> Path:
    """The folder holding `_quarto.yml`: `start` (default: the working directory) or a parent."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_quarto.yml").is_file():
            return folder
    raise ValueError(f"no _quarto.yml in {here} or its parents: run from inside the book's folder")


def read_config(root) -> dict:
    """The parsed `_quarto.yml` of the book at `root`."""
    path = Path(root) / "_quarto.yml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return config


def chapter_entries(config: dict) -> list[str]:
    """The files of `book: chapters` (parts flattened) then `book: appendices`, as written."""
    book = config.get("book") or {}
    out: list[str] = []

    def walk(items):
        for item in items or []:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                part = item.get("part")
                if isinstance(part, str) and part.endswith((".qmd", ".md", ".ipynb")):
                    out.append(part)
                walk(item.get("chapters"))
                if isinstance(item.get("href"), str):
                    out.append(item["href"])

    walk(book.get("chapters"))
    walk(book.get("appendices"))
    return out


def chapters(root) -> list[Path]:
    """The chapter files listed in `_quarto.yml`, in book order (absolute paths; may not exist)."""
    root = Path(root).resolve()
    return [root / entry for entry in chapter_entries(read_config(root))]


def find_quarto() -> str | None:
    """The `quarto` executable on PATH, or None."""
    return shutil.which("quarto")




# ----------------------------------------------------------------------------------------------
# The book: chapters, their numbers and every label
# ----------------------------------------------------------------------------------------------

@dataclass
class Chapter:
    """A chapter of the book as the Jupyter engine sees it."""

    source: Source
    page: str  # output page, relative to the output root
    number: int | None
    title: str


@dataclass
class Book:
    root: Path
    config: dict
    chapters: list
    labels: dict
    bib: dict
    profile: str | None = None

    def chapter(self, path) -> Chapter:
        path = Path(path).resolve()
        for c in self.chapters:
            if c.source.path == path:
                return c
        raise ValueError(f"chapters: {path} is not listed in {self.root / '_quarto.yml'}")


def page_of(path: Path, root: Path) -> str:
    """The output page of a chapter, mirroring its place under the root (as Quarto does)."""
    return path.relative_to(root).with_suffix(".html").as_posix()


def load_book(root, only=None, profile: str | None = None, missing_ok: bool = False) -> Book:
    """Read every chapter of the book at `root`, number them and collect their labels.

    `only`: a .qmd outside the book, read as a one-chapter book (tests, single files).
    `profile`: for content shown only in some profiles (when-profile).
    `missing_ok`: skip listed chapters that do not exist yet (they keep their numbers).
    """
    root = Path(root).resolve()
    config = read_config(root) if (root / "_quarto.yml").is_file() else {}
    paths = [Path(only).resolve()] if only is not None else [root / e for e in chapter_entries(config)]
    missing = [p for p in paths if not p.is_file()]
    if missing and not missing_ok:
        raise ValueError(f"chapters: {', '.join(str(p.relative_to(root)) for p in missing)} listed in "
                         f"_quarto.yml but not found")
    bib = {}
    bibliography = config.get("bibliography")
    for name in [bibliography] if isinstance(bibliography, str) else (bibliography or []):
        if not (root / name).is_file():
            raise ValueError(f"bibliography: {name} not found")
        bib.update(read_bib(root / name))
    book, number, labels = [], 0, {}
    for path in paths:
        if path in missing:
            number += 1
            continue
        source = read_qmd(path, root)
        title, numbered = chapter_title(source)
        number = number + 1 if numbered else number
        chapter = Chapter(source, page_of(path, root), number if numbered else None, title)
        collect_labels(chapter, labels, bib, profile)
        book.append(chapter)
    return Book(root, config, book, labels, bib, profile)


def counters_for(chapter: Chapter) -> Counters:
    return Counters(chapter.number, titled=bool(chapter.source.meta.get("title")))


def collect_labels(chapter: Chapter, labels: dict, bib: dict, profile: str | None) -> None:
    """Dry run of the markdown transform over a chapter: its labels and their numbers."""
    md = Markdown(counters_for(chapter), chapter.page, bib=bib, collect=labels, profile=profile)
    for block in chapter.source.blocks:
        if block.kind == "markdown":
            md.block(block.text)
        else:
            md.code_label(block.options)


# ----------------------------------------------------------------------------------------------
# Notebook: build, execute, finish
# ----------------------------------------------------------------------------------------------

def figure_options(config: dict) -> dict:
    """fig-width, fig-height, fig-dpi of the HTML format of `_quarto.yml` (as Quarto applies them)."""
    html_format = ((config.get("format") or {}).get("html") or {}) if isinstance(config.get("format"), dict) else {}
    pick = {k: html_format.get(k, config.get(k)) for k in ("fig-width", "fig-height", "fig-dpi")}
    return {k: v for k, v in pick.items() if v is not None}


def setup_source(figure: dict, formats=("png",)) -> str:
    """The hidden first cell: figure size, resolution and formats, and the inline-expression helper.

    An inline value is shown as Quarto shows it: the kernel's display formatter gives its MIME
    bundle (what a `user_expressions` request returns), and `inline_value` picks from it.
    """
    lines = ["import matplotlib as _plt_mpl"]
    if "fig-width" in figure and "fig-height" in figure:
        lines.append(f"_plt_mpl.rcParams['figure.figsize'] = ({figure['fig-width']}, {figure['fig-height']})")
    if "fig-dpi" in figure:
        lines.append(f"_plt_mpl.rcParams['figure.dpi'] = {figure['fig-dpi']}")
    lines += [
        "from matplotlib_inline.backend_inline import set_matplotlib_formats as _plt_formats",
        f"_plt_formats(*{tuple(formats)!r})",
        "def __bookrender_inline__(value):",
        "    from IPython import get_ipython",
        "    from IPython.display import display",
        "    bundle = get_ipython().display_formatter.format(value)[0]",
        f"    display({{{INLINE_MIME!r}: bundle}}, raw=True)",
        "del _plt_mpl, _plt_formats",
    ]
    return "\n".join(lines)


def code_tags(options: dict) -> list[str]:
    """nbclient/nbconvert tags for Quarto's cell options."""
    tags = []
    if options.get("include") is False:
        tags.append("remove_cell")
    if options.get("echo") is False:
        tags.append("remove_input")
    if options.get("output") is False:
        tags.append("remove_output")
    if options.get("eval") is False:
        tags.append("skip-execution")
    if options.get("error") is True:
        tags.append("raises-exception")
    return tags


def build_notebook(chapter: Chapter, config: dict, figure: dict | None = None,
                   formats=("png",)) -> nbformat.NotebookNode:
    """The chapter as a notebook to execute: hidden setup and inline-expression cells included."""
    v4 = nbformat.v4
    defaults = dict(config.get("execute") or {})
    defaults.update(chapter.source.meta.get("execute") or {})
    figure = figure_options(config) if figure is None else figure
    cells = [v4.new_code_cell(setup_source(figure, formats),
                              metadata={"bookrender": {"role": "setup"}})]
    title = chapter.source.meta.get("title")
    if title:
        cells.append(v4.new_markdown_cell(f"# {title}", metadata={"bookrender": {"role": "title"}}))
    number = 0
    for block in chapter.source.blocks:
        if block.kind == "markdown":
            for expr, offset in inline_expressions(block.text):
                cells.append(v4.new_code_cell(f"__bookrender_inline__(({expr}))", metadata={
                    "bookrender": {"role": "inline", "expr": expr,
                                  "where": chapter.source.where(block.index + offset)}}))
            cells.append(v4.new_markdown_cell(block.text))
            continue
        number += 1
        where = f"{display_path(block.file or chapter.source.path)}:{block.code_line}"
        problem = next((p for p in block.problems if "YAML" in p[1] or "mapping" in p[1]), None)
        if problem:
            raise RenderError(f"{display_path(block.file or chapter.source.path)}:{problem[0]}: {problem[1]}")
        options = {**defaults, **block.options}
        cells.append(v4.new_code_cell(block.text, metadata={
            "tags": code_tags(options),
            "bookrender": {"role": "code", "cell": number, "where": where, "options": options,
                          "own": block.options}}))
    nb = v4.new_notebook(cells=cells)
    nb.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                        "language_info": {"name": "python"}, "title": chapter.title})
    return nb


def kernel_env(profile: str) -> dict:
    """The kernel's environment: the profile (both variables), no progress bars, inline figures."""
    return {**os.environ, "POISONLAB_PROFILE": profile, "QUARTO_PROFILE": profile, "TQDM_DISABLE": "1",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def first_line(source: str) -> str:
    line = next((s.strip() for s in source.split("\n") if s.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def traceback_places(traceback: list[str]) -> tuple[int | None, str | None]:
    """From a kernel traceback: the failing line within the cell, and the deepest frame of the
    project's own code (a file outside Python's libraries and outside this package)."""
    import sysconfig

    text = ANSI.sub("", "\n".join(traceback))
    cell = re.search(r"^Cell In\[\d+\], line (\d+)", text, re.M)
    libraries = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    libraries.add(Path(__file__).resolve().parent)
    frames = re.findall(r"^File (.+?):(\d+)(?:, in |$)", text, re.M)
    ours = []
    for f, n in frames:
        path = Path(os.path.expanduser(f)).resolve()
        if path.is_file() and not any(path.is_relative_to(lib) for lib in libraries):
            ours.append(f"{display_path(path)}:{n}")
    return (int(cell.group(1)) if cell else None), (ours[-1] if ours else None)


def cell_error(nb, chapter_path: Path, fallback: str) -> RenderError:
    """The RenderError of the first cell holding an error output: chapter, cell, line, error."""
    for cell in nb.cells:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        meta = cell.metadata.get("bookrender", {})
        if not errors or "raises-exception" in cell.metadata.get("tags", []):
            continue
        error = f"{errors[0].ename}: {errors[0].evalue}".rstrip(": ")
        offset, package_frame = traceback_places(errors[0].get("traceback", []))
        if package_frame:
            error += f" (at {package_frame})"
        if meta.get("role") == "inline":
            return RenderError(f"{meta['where']}: inline expression `{{python}} {meta['expr']}` raised {error}")
        if meta.get("role") == "setup":
            return RenderError(f"{display_path(chapter_path)}: the engine's setup cell raised {error}")
        file, line = meta["where"].rsplit(":", 1)
        line, source = int(line), cell.source.split("\n")
        if offset and 1 <= offset <= len(source):  # the failing statement, not only the cell's first line
            line, statement = line + offset - 1, source[offset - 1].strip()
        else:
            statement = first_line(cell.source)
        statement = statement if len(statement) <= 60 else statement[:57] + "..."
        return RenderError(f"{file}:{line}: cell {meta['cell']} ({statement!r}) raised {error}")
    return RenderError(f"{display_path(chapter_path)}: {fallback}")


def run_notebook(nb, cwd: Path, profile: str, timeout: float, chapter_path: Path):
    """Execute `nb` in a fresh python3 kernel started in `cwd`; a failing cell raises RenderError."""
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            extra_arguments=quiet_kernel_arguments(),
                            resources={"metadata": {"path": str(cwd)}})
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # the kernel process's own stderr (its log, C libraries) is kept aside: shown only if it dies
    log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
    try:
        try:
            client.execute(env=kernel_env(profile), stderr=log)
        except BaseException:
            # Ctrl-C or SIGTERM: nbclient's own handler shut the kernel down, and what surfaces is its
            # cleanup's error; say what happened
            if getattr(client, "_async_cleanup_kernel_future", None) is not None:
                raise KeyboardInterrupt from None
            raise
        finally:
            for sig, handler in handlers.items():  # nbclient leaves the defaults, not the caller's handlers
                if handler is not None and threading.current_thread() is threading.main_thread():
                    signal.signal(sig, handler)
    except CellTimeoutError:
        running = next((c for c in nb.cells if c.cell_type == "code" and c.get("execution_count") is None
                        and "skip-execution" not in c.metadata.get("tags", [])), None)
        meta = running.metadata.get("bookrender", {}) if running is not None else {}
        raise RenderError(f"{meta.get('where', display_path(chapter_path))}: cell {meta.get('cell', '?')} "
                          f"ran past the timeout of {timeout:g} s per cell") from None
    except CellExecutionError as e:
        raise cell_error(nb, chapter_path, f"{e.ename}: {e.evalue}") from None
    except DeadKernelError as e:
        log.seek(0)
        tail = [line for line in log.read().splitlines() if line.strip()][-5:]
        raise RenderError(f"{display_path(chapter_path)}: the kernel died ({e})"
                          + ("; its last words:\n" + "\n".join(tail) if tail else "")) from None
    except NoSuchKernel:
        raise RenderError("no Jupyter kernel named python3: run `python -m ipykernel install --user` "
                          "in this environment") from None
    except RuntimeError as e:  # the kernel did not start (jupyter_client's "Kernel died before replying")
        raise RenderError(f"{display_path(chapter_path)}: the python3 kernel did not start ({e})") from None
    finally:
        log.close()
    return nb


def quiet_kernel_arguments() -> list[str]:
    """The kernel's own log (its warning about unencrypted local TCP) is not the chapter's output.

    `make install` puts the flag in the kernelspec already (`bookrender.kernelspec`); given twice,
    ipykernel refuses to start.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from .kernelspec import FLAG

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        return []
    return [] if any(a.startswith("--IPKernelApp.log_level") for a in argv) else [FLAG]


def markdown_of_value(bundle: dict) -> str:
    """The markdown Quarto makes of an inline value's MIME bundle (its jupyter-inline.ts rules).

    text/markdown as it is; text/plain as it is, unless it is a quoted string (the repr of a
    `str`), which is unquoted and markdown-escaped: use `book.fmt` for numbers.
    """
    if "text/markdown" in bundle:
        return "".join(bundle["text/markdown"])
    text = "".join(bundle.get("text/plain", ""))
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return re.sub(r"([\\`*_{}\[\]()>#+,\-.!])", r"\\\1", text[1:-1].replace("\\", "\\\\"))
    return text


def inline_value(cell) -> str:
    """The markdown of an inline-expression cell's value, as Quarto makes it."""
    for output in cell.get("outputs", []):
        bundle = output.get("data", {}).get(INLINE_MIME)
        if bundle:
            return markdown_of_value(bundle)
    raise RenderError(f"inline expression `{{python}} {cell.metadata['poisonlab']['expr']}` gave no value")


def substitute_inline(text: str, values: list[str]) -> str:
    """Replace the `{python} expr` spans of `text`, in order, by `values`."""
    values, pieces, pos = list(values), [], 0
    blank = without_fences(text)
    for start, end, content, ticks in code_spans(blank):
        if ticks == 1 and INLINE_EXPR.match(content):
            pieces += [text[pos:start], values.pop(0)]
            pos = end
    return "".join(pieces) + text[pos:]


def image_outputs(cell) -> list[tuple[str, str]]:
    """(mime, data) of the images among a cell's outputs, removing them from the cell."""
    images, kept = [], []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        mime = next((m for m in ("image/png", "image/jpeg", "image/svg+xml") if m in data), None)
        if output.get("output_type") in ("display_data", "execute_result") and mime:
            images.append((mime, data[mime]))
        else:
            kept.append(output)
    cell.outputs = kept
    return images


def figure_cell(label: str, number: str, caption: str, alt: str, images, md: Markdown):
    """A markdown cell holding a numbered figure: images, alt text, caption, anchor."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    tags = []
    for mime, data in images:
        if mime == "image/svg+xml":
            data = base64.b64encode((data if isinstance(data, str) else "".join(data)).encode()).decode()
        src = f"data:{mime};base64,{data.strip() if isinstance(data, str) else ''.join(data)}"
        tags.append(f'<img src="{src}" alt="{html.escape(alt, quote=True)}">')
    caption_html = markdown2html_mistune(math_to_mathml(md.inline(f"Figure {number}: {caption}"))).strip()
    caption_html = re.sub(r"^<p>(.*)</p>$", r"\1", caption_html, flags=re.S).replace("\n\n", "\n")
    body = "\n".join([f'<figure id="{label}" class="pl-figure">', *tags,
                      f"<figcaption>{caption_html}</figcaption>", "</figure>"])
    return nbformat.v4.new_markdown_cell(body, metadata={"bookrender": {"role": "figure"}})


def asis_markdown(cell) -> str:
    """The raw-markdown outputs of an `output: asis` cell (stdout and text/markdown), removed from it."""
    text, kept = [], []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            text.append(output.get("text", ""))
        elif "text/markdown" in output.get("data", {}):
            text.append(output["data"]["text/markdown"] + "\n")
        else:
            kept.append(output)
    cell.outputs = kept
    return "".join(text)


def finish_code(cell, md: Markdown) -> list:
    """A code cell after execution and the cells it becomes (captions, figures, markdown output)."""
    options = cell.metadata["bookrender"]["options"]
    number = md.code_label(options)
    label = str(options.get("label", ""))
    before, after = [], []
    if options.get("warning") is False:
        cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    for output in cell.outputs:
        if "text/markdown" in output.get("data", {}):
            output["data"]["text/markdown"] = md.inline(output["data"]["text/markdown"])
    if options.get("output") == "asis":
        text = asis_markdown(cell)
        if text.strip():
            after.append(nbformat.v4.new_markdown_cell(md.inline(text), metadata={"bookrender": {"role": "asis"}}))
    if number and label.startswith("tbl-"):
        caption = md.inline(str(options.get("tbl-cap", "")))
        before.append(nbformat.v4.new_markdown_cell(
            f'<div id="{label}" class="pl-caption">\n\nTable {number}: {caption}\n\n</div>',
            metadata={"bookrender": {"role": "caption"}}))
    if number and label.startswith("fig-"):
        images = image_outputs(cell)
        if images:
            after.append(figure_cell(label, number, str(options.get("fig-cap", "")),
                                     str(options.get("fig-alt", options.get("fig-cap", ""))), images, md))
    tags = cell.metadata.get("tags", [])
    if "remove_cell" in tags or "remove_output" in tags:
        return [cell]  # include: false and output: false hide everything the cell made
    if "remove_input" in tags and not cell.outputs:
        tags.append("remove_cell")
    return [*before, cell, *after]


IMAGE = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".svg": "image/svg+xml"}


def embed_images(text: str, folder: Path) -> str:
    """Markdown images of local files as data URIs, so that pages work wherever they are written."""
    def embed(m):
        path = folder / m.group(2)
        mime = IMAGE_TYPES.get(path.suffix.lower())
        if "://" in m.group(2) or mime is None or not path.is_file():
            return m.group(0)
        return f"{m.group(1)}data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}{m.group(3)}"
    return IMAGE.sub(embed, text)


def finish_notebook(nb, chapter: Chapter, book: Book) -> tuple[nbformat.NotebookNode, list[str]]:
    """The executed notebook as the book shows it, and the unresolved references it holds."""
    md = Markdown(counters_for(chapter), chapter.page, labels=book.labels, bib=book.bib, profile=book.profile)
    cells, values = [], []
    for cell in nb.cells:
        role = cell.metadata.get("bookrender", {}).get("role")
        if role == "setup":
            continue
        if role == "inline":
            values.append(inline_value(cell))
        elif role == "title":  # the front matter's title: the chapter heading, not a section
            cell.source = f"# {chapter_heading(chapter)}"
            cells.append(cell)
        elif cell.cell_type == "markdown":
            text = substitute_inline(cell.source, values) if values else cell.source
            values = []
            cell.source = embed_images(md.block(text), chapter.source.path.parent)
            cells.append(cell)
        else:
            cells.extend(finish_code(cell, md))
    references = md.bibliography()
    if references:
        cells.append(nbformat.v4.new_markdown_cell(Markdown(Counters(None, True), chapter.page).block(references)))
    nb.cells = cells
    for i, cell in enumerate(nb.cells):  # unique after the cells added above, and reproducible
        cell["id"] = f"cell-{i}"
    nbformat.validate(nb)
    return nb, md.unresolved


def execute_chapter(path, profile: str = "quick", timeout: float = DEFAULT_TIMEOUT, *,
                    book: Book | None = None) -> nbformat.NotebookNode:
    """Execute one chapter in a Jupyter kernel: the finished, executed notebook.

    The chapter's book (the `_quarto.yml` above it) gives its number, labels and bibliography;
    a file outside any book is a book of one chapter. A failing cell raises RenderError.
    """
    path = Path(path).resolve()
    profile = choice("profile", profile, PROFILES)
    if not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not path.is_file():
        raise ValueError(f"path: chapter {path} not found")
    if book is None:
        try:
            root = find_root(path.parent)
        except ValueError:
            root = path.parent
        try:
            book = load_book(root, profile=profile, missing_ok=True)
            chapter = book.chapter(path)
        except ValueError:  # not in the book, or another chapter is broken: a book of this chapter alone
            book = load_book(root, only=path, profile=profile)
            chapter = book.chapters[0]
    else:
        chapter = book.chapter(path)
    nb = build_notebook(chapter, book.config)
    run_notebook(nb, path.parent, profile, timeout, path)
    nb, unresolved = finish_notebook(nb, chapter, book)
    nb.metadata["bookrender"] = {"unresolved": unresolved, "profile": profile}
    return nb


# ----------------------------------------------------------------------------------------------
# HTML: nbconvert, navigation, the index page
# ----------------------------------------------------------------------------------------------

CSS = """<style>
main { max-width: 52rem; margin: 0 auto; }
.pl-nav { display: flex; gap: 1.5rem; padding: 0.6rem 0; border-bottom: 1px solid #ddd;
          font-family: sans-serif; font-size: 0.9rem; }
.callout { border-left: 5px solid #0072B2; background: #f4f8fb; padding: 0.2rem 1rem; margin: 1rem 0; }
.callout-tip { border-color: #009E73; background: #f2faf7; }
.callout-warning, .callout-caution { border-color: #E69F00; background: #fdf8ef; }
.callout-important { border-color: #D55E00; background: #fdf4ef; }
figure.pl-figure { margin: 1rem 0; text-align: center; }
figure.pl-figure img { max-width: 100%; }
figcaption, .pl-caption { font-size: 0.92rem; color: #333; margin: 0.4rem 0; text-align: left; }
.pl-reference { padding-left: 1.5rem; text-indent: -1.5rem; }
math { font-family: "STIX Two Math", "Latin Modern Math", "Cambria Math", "DejaVu Math TeX Gyre", math; }
.pl-equation { display: grid; grid-template-columns: 1fr auto 1fr; align-items: center; margin: 0.8rem 0; }
.pl-equation > math { grid-column: 2; margin: 0; }
.pl-equation-number { grid-column: 3; justify-self: end; padding-left: 1rem; }
</style>
"""


def exporter():
    """nbconvert's HTML exporter: no prompts, Quarto's echo/include/output tags honoured."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = {"remove_cell"}
    config.TagRemovePreprocessor.remove_input_tags = {"remove_input"}
    config.TagRemovePreprocessor.remove_all_outputs_tags = {"remove_output"}
    html_exporter = HTMLExporter(config=config, template_name="lab")
    html_exporter.exclude_input_prompt = True
    html_exporter.exclude_output_prompt = True
    return html_exporter


def navigation(page: str, pages: list[tuple[str, str]]) -> str:
    """Links to the contents, the previous and the next chapter, relative to `page`."""
    here = posixpath.dirname(page) or "."
    rel = lambda p: posixpath.relpath(p, here)  # noqa: E731
    links = [f'<a href="{rel("index.html")}">Contents</a>']
    names = [p for p, _ in pages]
    if page in names:
        i = names.index(page)
        if i > 0:
            links.append(f'<a href="{rel(pages[i - 1][0])}">← {html.escape(pages[i - 1][1])}</a>')
        if i + 1 < len(pages):
            links.append(f'<a href="{rel(pages[i + 1][0])}">{html.escape(pages[i + 1][1])} →</a>')
    return f'<nav class="pl-nav">{" ".join(links)}</nav>'


def latex_output_to_mathml(output) -> None:
    """Give a TeX-only rich output (sympy's `display`) an HTML MathML form, which the page prefers."""
    data = output.get("data", {})
    tex = data.get("text/latex")
    if tex is None or "text/html" in data:
        return
    body = tex.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\[", "\\]")):
        if body.startswith(left) and body.endswith(right) and len(body) > len(left) + len(right):
            body = body[len(left):-len(right)]
            break
    else:
        return
    mathml = tex_to_mathml(body.replace("\\displaystyle", "").strip(), display=True)
    if mathml is not None:
        data["text/html"] = f'<div class="pl-output-math">{mathml}</div>'


def to_html(nb, chapter_dir: Path, nav: str) -> str:
    """The HTML page of an executed chapter notebook.

    The math of its markdown cells becomes MathML, which browsers render offline; what latex2mathml
    cannot convert stays TeX for MathJax, loaded from its CDN. Code and code outputs keep their `$`.
    """
    nb = copy.deepcopy(nb)  # the saved .ipynb keeps its TeX
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.metadata.get("bookrender", {}).get("role") != "figure":
            cell.source = math_to_mathml(cell.source)  # figures: their captions are converted already
        for output in cell.get("outputs", []):
            latex_output_to_mathml(output)
    body, _ = exporter().from_notebook_node(nb, resources={"metadata": {"path": str(chapter_dir),
                                                                        "name": nb.metadata.get("title", "")}})
    body = body.replace("</head>", CSS + "</head>", 1)
    return re.sub(r"<main>", lambda m: m.group(0) + nav, body, count=1)


def chapter_heading(chapter: Chapter) -> str:
    return f"{chapter.number} {chapter.title}" if chapter.number else chapter.title


def contents_markdown(book: Book, page: str) -> str:
    """The table of contents: one link per chapter, relative to `page`."""
    here = posixpath.dirname(page) or "."
    items = [f"- [{chapter_heading(c)}]({posixpath.relpath(c.page, here)})" for c in book.chapters]
    return "## Contents {.unnumbered}\n\n" + "\n".join(items)


def standalone_index(book: Book) -> str:
    """index.html for a book without index.qmd: the title and the contents."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    title = html.escape(str((book.config.get("book") or {}).get("title", "The book")))
    body = markdown2html_mistune(re.sub(r" \{\.unnumbered\}", "", contents_markdown(book, "index.html")))
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title>{CSS}</head>"
            f"<body><main><h1>{title}</h1>{body}</main></body></html>\n")


# ----------------------------------------------------------------------------------------------
# Engines
# ----------------------------------------------------------------------------------------------

def say(message: str) -> None:
    print(f"poisonlab render: {message}", file=sys.stderr, flush=True)


def select_chapters(book: Book, names) -> list[Chapter]:
    """The chapters named on the command line (all when none), in book order."""
    if not names:
        return list(book.chapters)
    wanted = [Path(n).resolve() for n in names]
    for path in wanted:
        book.chapter(path)  # raises ValueError naming `chapters`
    return [c for c in book.chapters if c.source.path in wanted]


def render_chapter(chapter: Chapter, book: Book, out: Path, profile: str, timeout: float,
                   pages: list) -> list[str]:
    """Execute one chapter and write its .ipynb and .html under `out`; its unresolved references."""
    nb = execute_chapter(chapter.source.path, profile, timeout, book=book)
    if chapter.page == "index.html":
        nb.cells.append(nbformat.v4.new_markdown_cell(contents_markdown(book, "index.html").replace(
            " {.unnumbered}", "")))
    target = out / chapter.page
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target.with_suffix(".ipynb"))
    target.write_text(to_html(nb, chapter.source.path.parent, navigation(chapter.page, pages)), encoding="utf-8")
    return nb.metadata["bookrender"]["unresolved"]


def preview_dir(root: Path, profile: str) -> Path:
    """The Jupyter engine's output folder: _preview (full profile) or _preview-quick."""
    return root / ("_preview" if profile == "full" else f"_preview-{profile}")


def render_jupyter(root: Path, profile: str, names=None, output=None, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Render the book with the Jupyter engine into `output` (default: `preview_dir`)."""
    from . import outputs

    book = load_book(root, profile=profile, missing_ok=bool(names))  # a partial render needs only its chapters
    selected = select_chapters(book, names)
    out = outputs.check_target(output if output is not None else preview_dir(root, profile), root)
    try:
        staging = outputs.staging(out)
    except OSError as e:
        raise ValueError(f"--output {out}: cannot write beside it ({e.strerror})") from None
    pages = [(c.page, chapter_heading(c)) for c in book.chapters]
    try:
        if names and out.is_dir():  # a partial render keeps the other chapters' pages
            shutil.copytree(out, staging, dirs_exist_ok=True)
        for chapter in selected:
            start = time.perf_counter()
            unresolved = render_chapter(chapter, book, staging, profile, timeout, pages)
            say(f"{display_path(chapter.source.path)} ({time.perf_counter() - start:.1f} s)")
            for ref in sorted(set(unresolved)):
                say(f"warning: {display_path(chapter.source.path)}: unresolved reference {ref}")
        if not (staging / "index.html").exists():
            (staging / "index.html").write_text(standalone_index(book), encoding="utf-8")
        outputs.publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def main(engine: str = "auto", profile: str = "full", chapters=None, output=None, to=None) -> int:
    """`poisonlab render`: 0 on success, 1 when a chapter fails; bad input raises ValueError."""
    engine = choice("engine", engine, ENGINES)
    profile = choice("profile", profile, PROFILES)
    root = find_root()
    if engine == "auto":
        engine = "quarto" if find_quarto() else "jupyter"
        if engine == "quarto":
            say("using Quarto (HTML and PDF)")
        else:
            say(f"Quarto not found, using the Jupyter engine (HTML preview); Quarto renders the full book, "
                f"PDF included: install it from {QUARTO_URL}")
    if engine == "quarto" and chapters:
        raise ValueError("--chapters is for the jupyter engine: the Quarto engine renders the whole book and "
                         "re-executes only the chapters that changed")
    if engine == "jupyter" and to not in (None, "html"):
        raise ValueError(f"--to {to}: the jupyter engine writes HTML only; PDF needs Quarto ({QUARTO_URL})")
    try:
        if engine == "quarto":
            from . import publish

            out = publish.render_book(root, profile, output, to=to)
            say(f"wrote {display_path(out)}")
            return 0
        out = render_jupyter(root, profile, chapters, output)
    except RenderError as e:
        say(f"error: {e}")
        return 1
    say(f"wrote {display_path(out / 'index.html')}")
    return 0
