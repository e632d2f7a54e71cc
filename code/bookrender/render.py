"""Render the book: `quarto render` where Quarto is installed, else a Jupyter engine of our own.

Both engines execute each chapter once (`publish.executed`: `notebooks.build_notebook` +
`notebooks.run_notebook`, in a `python3` kernel started in the chapter's folder, cached). The
Quarto engine is `publish`; the Jupyter engine, for machines without Quarto, is `jupyter_engine`
(pandoc markdown of each executed notebook, then HTML by pandoc). The book is read by `model` and
`qmd`. This module holds the entry points: `main` (`poisonlab render`) and `execute_chapter`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat

from . import publish
from .jupyter_engine import chapter_markdown, collect_labels, page_html, render_jupyter
from .model import PROFILES, Book, RenderError, choice, find_root, load_book, say
from .notebooks import DEFAULT_TIMEOUT
from .qmd import display_path

ENGINES = ("auto", "quarto", "jupyter")


def execute_chapter(path, profile: str = "quick", timeout: float = DEFAULT_TIMEOUT, *,
                    book: Book | None = None, use_cache: bool = False) -> nbformat.NotebookNode:
    """Execute one chapter in a Jupyter kernel: the executed notebook, with its unresolved references
    in `metadata["bookrender"]["unresolved"]`.

    The chapter's book (the `_quarto.yml` above it) gives its number and labels; a file outside any
    book is a book of one chapter. A failing cell raises RenderError.
    """
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


def main(engine: str = "auto", profile: str = "full", chapters=None, output=None, to=None) -> int:
    """`poisonlab render`: 0 on success, 1 when a chapter fails; bad input raises ValueError."""
    engine = choice("engine", engine, ENGINES)
    profile = choice("profile", profile, PROFILES)
    root = find_root()
    if engine == "auto":
        engine = "quarto" if publish.find_quarto() else "jupyter"
        if engine == "quarto":
            say("using Quarto (HTML and PDF)")
        else:
            say(f"Quarto not found, using the Jupyter engine (HTML preview); Quarto renders the full book, "
                f"PDF included: install it from {publish.QUARTO_URL}")
    if engine == "quarto" and chapters:
        raise ValueError("--chapters is for the jupyter engine: the Quarto engine renders the whole book and "
                         "re-executes only the chapters that changed")
    if engine == "jupyter" and to not in (None, "html"):
        raise ValueError(f"--to {to}: the jupyter engine writes HTML only; PDF needs Quarto ({publish.QUARTO_URL})")
    try:
        if engine == "quarto":
            out = publish.render_book(root, profile, output, to=to)
            say(f"wrote {display_path(out)}")
            return 0
        out = render_jupyter(root, profile, chapters, output)
    except RenderError as e:
        say(f"error: {e}")
        return 1
    say(f"wrote {display_path(out / 'index.html')}")
    return 0
