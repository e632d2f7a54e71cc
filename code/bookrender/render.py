"""Render the book: `quarto render` where Quarto is installed, else a Jupyter engine of our own.

Both engines execute each chapter once (`publish.executed`: `build_notebook` + `run_notebook`, in a
`python3` kernel started in the chapter's folder, cached). The Jupyter engine, for machines without
Quarto, turns each executed notebook into pandoc markdown (`chapter_markdown`: inline values, code,
outputs, figures and table captions) and pandoc into an HTML page (`page_html`: citations with
citeproc, math as MathML, Quarto's numbering, cross-references and callouts by `crossref.lua`).
Reading .qmd files is in `qmd`; this module holds the book, the notebooks, the pages and the engines.
"""
from __future__ import annotations

import base64
import html
import json
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

# the .qmd reader lives in qmd; lint and the tests use these names through render
from .qmd import (  # noqa: F401
    CITATION, DISPLAY_MATH, INCLUDE, INLINE_EXPR, INLINE_MATH, Block, Source, chapter_title, code_spans, display_path,
    include_target, inline_expressions, read_bib, read_qmd, split_blocks, without_fences,
)

ENGINES = ("auto", "quarto", "jupyter")
PROFILES = ("quick", "full")
QUARTO_URL = "https://quarto.org/docs/get-started/"
INLINE_MIME = "application/vnd.bookrender.inline+json"
DEFAULT_TIMEOUT = 1800  # seconds per cell: a full-profile sweep may run for minutes
FILTER = Path(__file__).with_name("crossref.lua")


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
# The book: chapters and their numbers
# ----------------------------------------------------------------------------------------------

@dataclass
class Chapter:
    """A chapter of the book."""

    source: Source
    page: str  # output page, relative to the output root
    number: int | None
    title: str


@dataclass
class Book:
    root: Path
    config: dict
    chapters: list
    bibliography: list  # the .bib files (absolute paths)
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
    """Read every chapter of the book at `root` and number them.

    `only`: a .qmd outside the book, read as a one-chapter book (tests, single files).
    `missing_ok`: skip listed chapters that do not exist yet (they keep their numbers).
    """
    root = Path(root).resolve()
    config = read_config(root) if (root / "_quarto.yml").is_file() else {}
    paths = [Path(only).resolve()] if only is not None else [root / e for e in chapter_entries(config)]
    missing = [p for p in paths if not p.is_file()]
    if missing and not missing_ok:
        raise ValueError(f"chapters: {', '.join(str(p.relative_to(root)) for p in missing)} listed in "
                         f"_quarto.yml but not found")
    bibliography = config.get("bibliography")
    bibliography = [root / n for n in ([bibliography] if isinstance(bibliography, str) else bibliography or [])]
    for path in bibliography:
        if not path.is_file():
            raise ValueError(f"bibliography: {path.relative_to(root)} not found")
    book, number = [], 0
    for path in paths:
        if path in missing:
            number += 1
            continue
        source = read_qmd(path, root)
        title, numbered = chapter_title(source)
        number = number + 1 if numbered else number
        book.append(Chapter(source, page_of(path, root), number if numbered else None, title))
    return Book(root, config, book, bibliography, profile)


# ----------------------------------------------------------------------------------------------
# Notebook: build, execute, inline values
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
    """Tags of Quarto's cell options: nbclient's (eval: false, error: true) and the hiding ones."""
    tags = {"include": (False, "remove_cell"), "echo": (False, "remove_input"), "output": (False, "remove_output"),
            "eval": (False, "skip-execution"), "error": (True, "raises-exception")}
    return [tag for key, (value, tag) in tags.items() if options.get(key) is value]


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
    raise RenderError(f"inline expression `{{python}} {cell.metadata['bookrender']['expr']}` gave no value")


def substitute_inline(text: str, values: list[str]) -> str:
    """Replace the `{python} expr` spans of `text`, in order, by `values`."""
    values, pieces, pos = list(values), [], 0
    blank = without_fences(text)
    for start, end, content, ticks in code_spans(blank):
        if ticks == 1 and INLINE_EXPR.match(content):
            pieces += [text[pos:start], values.pop(0)]
            pos = end
    return "".join(pieces) + text[pos:]


def execute_chapter(path, profile: str = "quick", timeout: float = DEFAULT_TIMEOUT, *,
                    book: Book | None = None, use_cache: bool = False) -> nbformat.NotebookNode:
    """Execute one chapter in a Jupyter kernel: the executed notebook, with its unresolved references
    in `metadata["bookrender"]["unresolved"]`.

    The chapter's book (the `_quarto.yml` above it) gives its number and labels; a file outside any
    book is a book of one chapter. A failing cell raises RenderError.
    """
    from . import publish

    path, profile = Path(path).resolve(), choice("profile", profile, PROFILES)
    if not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not path.is_file():
        raise ValueError(f"path: chapter {path} not found")
    if book is None:
        root = next((f for f in path.parents if (f / "_quarto.yml").is_file()), path.parent)
        try:
            book = load_book(root, profile=profile, missing_ok=True)
            book.chapter(path)
        except ValueError:  # not in the book, or another chapter is broken: a book of this chapter alone
            book = load_book(root, only=path, profile=profile)
    chapter = book.chapter(path)
    nb, _ = publish.executed(chapter, book, profile, timeout, use_cache)
    with tempfile.TemporaryDirectory() as tmp:
        _, unresolved = page_html(chapter_markdown(nb, chapter, Path(tmp)), chapter, book, collect_labels(book))
    nb.metadata["bookrender"] = {"unresolved": unresolved, "profile": profile}
    return nb


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
# Engines
# ----------------------------------------------------------------------------------------------

def say(message: str) -> None:
    print(f"poisonlab render: {message}", file=sys.stderr, flush=True)


def select_chapters(book: Book, names) -> list[Chapter]:
    """The chapters named on the command line (all when none), in book order."""
    wanted = [book.chapter(n).source.path for n in names or []]  # book.chapter raises naming `chapters`
    return [c for c in book.chapters if not names or c.source.path in wanted]


def render_chapter(chapter: Chapter, book: Book, out: Path, profile: str, timeout: float, labels: dict,
                   pages: list) -> tuple[list[str], bool]:
    """Write the chapter's .ipynb and .html under `out`: its unresolved references, whether cached."""
    from . import publish

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
