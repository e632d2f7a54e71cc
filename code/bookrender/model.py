"""The book model: `_quarto.yml`, its chapters in order and their numbers, the profiles, errors and messages."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from .qmd import Source, chapter_title, read_qmd

PROFILES = ("quick", "full")


def choice(name: str, value, allowed) -> str:
    """`value` if it is one of `allowed`, else ValueError naming the parameter."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


class RenderError(RuntimeError):
    """A chapter could not be rendered; the message names the chapter, the cell and the error."""


def say(message: str) -> None:
    print(f"poisonlab render: {message}", file=sys.stderr, flush=True)


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
