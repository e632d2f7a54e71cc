"""The Quarto engine: each chapter executed once, then Quarto renders HTML and PDF from the notebooks.

`quarto render` executes every chapter once per output format. Here each chapter is executed once in
a Jupyter kernel (`notebooks.build_notebook` + `notebooks.run_notebook`, figures as PNG and PDF, inline
values recorded as Quarto records them: `user_expressions` on the markdown cell), the executed
notebooks are cached (keyed by the chapter's text with its includes, the package source, the
library versions and the profile), and a staged copy of the project whose chapters are these
notebooks is rendered by Quarto to every format of `_quarto.yml` without executing anything.
The output is swapped in only when Quarto succeeded (`outputs`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import nbformat
import yaml

from . import outputs
from .model import Book, Chapter, RenderError, load_book, say
from .notebooks import DEFAULT_TIMEOUT, INLINE_MIME, build_notebook, kernel_env, run_notebook
from .qmd import display_path

FORMATS = ("retina", "pdf")  # image/png for HTML, application/pdf (vector) for LaTeX
OUT = "_bookrender_out"  # Quarto's output folder inside the staged project
ASSETS = {".bib", ".csl", ".css", ".scss", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".lua"}
NOTEBOOK_FORMAT = 1  # bump when the notebook layout changes: old cached notebooks are misses
QUARTO_URL = "https://quarto.org/docs/get-started/"


def find_quarto() -> str | None:
    """The `quarto` executable on PATH, or None."""
    return shutil.which("quarto")


def output_dir(root: Path, profile: str) -> Path:
    """The book's output folder for `profile` (project: output-dir of its profile file, else _book)."""
    for name in (f"_quarto-{profile}.yml", "_quarto.yml"):
        path = root / name
        if path.is_file():
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            folder = (config.get("project") or {}).get("output-dir")
            if folder:
                return root / folder
    return root / "_book"


def figure_options(config: dict) -> dict:
    """fig-width, fig-height, fig-dpi shared by the formats (PDF sizes win: one execution, one size)."""
    formats = config.get("format") if isinstance(config.get("format"), dict) else {}
    pick = {}
    for name in ("html", "pdf"):
        pick.update({k: v for k, v in ((formats.get(name) or {}).items()) if k in ("fig-width", "fig-height")})
    dpi = (formats.get("html") or {}).get("fig-dpi")
    return {**pick, **({"fig-dpi": dpi} if dpi else {})}


def _versions() -> dict:
    out = {}
    for package in ("torch", "numpy", "scipy", "scikit-learn", "matplotlib", "sympy", "pandas", "ipykernel"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def cache_dir(root: Path) -> Path:
    """Executed notebooks: $BOOKRENDER_CACHE, else <root>/.cache/notebooks."""
    folder = os.environ.get("BOOKRENDER_CACHE")
    return Path(folder).expanduser() if folder else Path(root) / ".cache" / "notebooks"


SKIP = {"tests", "benchmarks", "node_modules", "site-packages"}


def code_hash(root: Path) -> str:
    """SHA-256 of the project's Python sources (what the chapters import), this package left out."""
    root, own = Path(root).resolve(), Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if path.is_relative_to(own) or any(p.startswith((".", "_")) or p in SKIP for p in rel.parts[:-1]):
            continue
        h.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def atomic_write(target: Path, text: str) -> None:
    """Write `text` to `target` through a temporary file in its folder: never a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def notebook_key(chapter: Chapter, book: Book, profile: str) -> str:
    """Everything an executed chapter depends on, hashed."""
    files = sorted({str(f) for f, _ in chapter.source.origins} | {str(chapter.source.path)})
    texts = {f: hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files if Path(f).is_file()}
    parts = {"format": NOTEBOOK_FORMAT, "profile": profile, "files": texts, "code": code_hash(book.root),
             "versions": _versions(), "python": sys.version, "figure": figure_options(book.config),
             "formats": FORMATS, "environment": {k: v for k, v in sorted(os.environ.items()) if k.endswith("_DATA")},
             "execute": book.config.get("execute")}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def executed(chapter: Chapter, book: Book, profile: str, timeout: float, use_cache: bool = True):
    """The chapter executed once (from the notebook cache when nothing it depends on changed)."""
    path = cache_dir(book.root) / f"{chapter.source.path.stem}-{notebook_key(chapter, book, profile)}.ipynb"
    if use_cache and path.is_file():
        try:
            return nbformat.read(path, as_version=4), True
        except Exception:  # a damaged file is a miss
            pass
    nb = build_notebook(chapter, book.config, figure=figure_options(book.config), formats=FORMATS)
    run_notebook(nb, chapter.source.path.parent, profile, timeout, chapter.source.path)
    if use_cache:
        atomic_write(path, nbformat.writes(nb))
    return nb, False


def option_lines(options: dict) -> str:
    """Quarto's `#| key: value` lines (values as JSON, which is YAML)."""
    return "".join(f"#| {k}: {json.dumps(v)}\n" for k, v in options.items())


def quarto_notebook(nb, chapter: Chapter) -> nbformat.NotebookNode:
    """An executed notebook as Quarto reads one: options as `#|` lines, inline values as user_expressions."""
    v4 = nbformat.v4
    cells, pending = [], []
    meta = {k: v for k, v in chapter.source.meta.items()}
    if meta:
        cells.append(v4.new_raw_cell("---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---"))
    for cell in nb.cells:
        info = cell.metadata.get("bookrender", {})
        role = info.get("role")
        if role == "title":
            continue  # the raw front matter cell carries the title
        if role == "inline":
            bundle = next(o["data"][INLINE_MIME] for o in cell.outputs
                          if INLINE_MIME in o.get("data", {}))
            pending.append({"expression": info["expr"], "result": {"status": "ok", "data": bundle, "metadata": {}}})
            continue
        if cell.cell_type == "markdown":
            new = v4.new_markdown_cell(cell.source)
            if pending:
                new.metadata["user_expressions"] = pending
                pending = []
            cells.append(new)
            continue
        if role == "setup":
            continue  # it ran; it shows nothing, and a cell before the first heading would hide its classes
        source = cell.source
        options = info.get("own", {})  # the cell's own options; the book's defaults stay in _quarto.yml
        new = v4.new_code_cell(option_lines(options) + source)
        new.outputs = cell.outputs
        new.execution_count = cell.execution_count
        cells.append(new)
    unnumbered_title(cells)
    out = v4.new_notebook(cells=cells)
    out.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}})
    for i, cell in enumerate(out.cells):
        cell["id"] = f"cell-{i}"
    return out


UNNUMBERED = re.compile(r"\A\s*#\s+(.+?\{[^{}]*\.unnumbered[^{}]*\})[ \t]*\n")


def unnumbered_title(cells: list) -> None:
    """An unnumbered chapter (`# Preface {.unnumbered}`) gets that heading as its front-matter title.

    Quarto numbers a book's chapters from each one's title or first heading; in a notebook the
    heading sits inside a cell, where Quarto does not see its classes, so the preface got number 1.
    A front-matter title written as a heading with attributes is what Quarto's book code parses
    (`isNumberedChapter`, `kPandocTitleRegex`); the heading stays in the text.
    """
    first = next((c for c in cells if c.cell_type != "raw"), None)
    if first is None or first.cell_type != "markdown" or not (m := UNNUMBERED.match(first.source)):
        return
    raw = next((c for c in cells if c.cell_type == "raw"), None)
    meta = yaml.safe_load(raw.source.strip("-\n")) if raw is not None else {}
    meta["title"] = "# " + m.group(1)
    front = "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---"
    if raw is not None:
        raw.source = front
    else:
        cells.insert(0, nbformat.v4.new_raw_cell(front))


def stage_project(root: Path, book: Book, project: Path) -> dict:
    """The book's configuration and assets copied to `project`, chapters renamed .ipynb: {chapter: path}."""
    project.mkdir(parents=True, exist_ok=True)
    renamed = {}
    for chapter in book.chapters:
        rel = chapter.source.path.relative_to(root)
        renamed[rel.as_posix()] = rel.with_suffix(".ipynb").as_posix()

    def rename(items):
        out = []
        for item in items or []:
            if isinstance(item, str):
                out.append(renamed.get(item, item))
            elif isinstance(item, dict):
                item = dict(item)
                for key in ("part", "href"):
                    if isinstance(item.get(key), str):
                        item[key] = renamed.get(item[key], item[key])
                if "chapters" in item:
                    item["chapters"] = rename(item["chapters"])
                out.append(item)
        return out

    for path in sorted(root.glob("_quarto*.yml")):
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(config.get("book"), dict):
            for key in ("chapters", "appendices"):
                if key in config["book"]:
                    config["book"][key] = rename(config["book"][key])
        if path.name == "_quarto.yml":
            config.setdefault("execute", {})
            config["execute"] = {**(config["execute"] or {}), "enabled": False, "freeze": False}
        if isinstance(config.get("project"), dict):
            config["project"].pop("output-dir", None)
        (project / path.name).write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                                         encoding="utf-8")
    for name in ("_environment", "_variables.yml"):
        if (root / name).is_file():
            shutil.copy2(root / name, project / name)
    folders = {c.source.path.parent for c in book.chapters}
    for folder in folders:
        for path in folder.iterdir():  # bibliography, styles, images beside the chapters
            if path.is_file() and path.suffix.lower() in ASSETS:
                target = project / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    return renamed


def keep_other_formats(old: Path, new: Path) -> None:
    """A render to one format keeps the other formats' files of the previous book (Quarto alone
    would clean the output folder: `quarto render --to pdf` deletes the HTML book)."""
    def copy_missing(src, dst):
        if not os.path.exists(dst):
            shutil.copy2(src, dst)
        return dst
    shutil.copytree(old, new, dirs_exist_ok=True, copy_function=copy_missing)


def quarto_env(profile: str) -> dict:
    env = kernel_env(profile)
    env.setdefault("QUARTO_PYTHON", sys.executable)
    return env


def render_book(root: Path, profile: str, output=None, timeout: float = DEFAULT_TIMEOUT,
                to=None, use_cache: bool = True) -> Path:
    """Execute every chapter once, render HTML and PDF with Quarto, swap the book in: its folder."""
    quarto = find_quarto()
    if quarto is None:
        raise ValueError(f"engine: quarto is not on PATH; install it ({QUARTO_URL}) or use --engine jupyter")
    book = load_book(root, profile=profile)
    out, stage = outputs.prepare(output if output is not None else output_dir(root, profile), root)
    try:
        project = stage / "project"
        renamed = stage_project(root, book, project)
        for chapter in book.chapters:
            start = time.perf_counter()
            nb, cached = executed(chapter, book, profile, timeout, use_cache)
            rel = chapter.source.path.relative_to(root).as_posix()
            target = project / renamed[rel]
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(quarto_notebook(nb, chapter), target)
            say(f"{display_path(chapter.source.path)} "
                f"({'executed notebook from the cache' if cached else f'{time.perf_counter() - start:.1f} s'})")
        command = [quarto, "render", "--profile", profile, "--output-dir", OUT, *(["--to", to] if to else [])]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=project, env=quarto_env(profile), capture_output=True, text=True)
        if result.returncode:
            log = (result.stdout + result.stderr).strip().splitlines()
            raise RenderError("quarto render failed (exit status %d):\n%s" % (result.returncode, "\n".join(log[-25:])))
        say(f"quarto render ({time.perf_counter() - start:.1f} s)")
        if to and out.is_dir():
            keep_other_formats(out, project / OUT)
        outputs.publish(project / OUT, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out
