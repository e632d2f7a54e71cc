"""Render the book: `quarto render` where Quarto is installed, else a Jupyter engine of our own.

The Jupyter engine reads `_quarto.yml`, turns every chapter (.qmd) into a notebook, executes it in a
`python3` kernel with the chapter's folder as working directory (as Quarto does), saves the executed
notebook and exports it to HTML with nbconvert. It previews Quarto's markdown: numbered sections,
figures, tables and equations, cross-references, callouts, citations, `{{< include >}}` and inline
`{python}` expressions. Quarto renders the full book, PDF included.

Pipeline of one chapter: read (`read_qmd`) -> notebook (`build_notebook`) -> execute (`run_notebook`)
-> finish (`finish_notebook`: inline values, numbers, captions, links) -> save .ipynb and .html.
"""
from __future__ import annotations

import base64
import html
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

from . import validate

ENGINES = ("auto", "quarto", "jupyter")
PROFILES = ("quick", "full")
QUARTO_URL = "https://quarto.org/docs/get-started/"
INLINE_MIME = "application/vnd.poisonlab.inline+json"
DEFAULT_TIMEOUT = 1800  # seconds per cell: a full-profile sweep may run for minutes


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
# Reading a .qmd file: front matter, includes, markdown and code blocks, cell options
# ----------------------------------------------------------------------------------------------

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
EXECUTABLE = re.compile(r"^\s*\{\s*python3?\s*(?:[\s,][^}]*)?\}\s*$")
INCLUDE = re.compile(r"^\s*(?<!\{)\{\{<\s*include\s+(\"[^\"]+\"|'[^']+'|\S+)\s*>\}\}\s*$")
OPTION = re.compile(r"^\s*#\s*\|")


@dataclass
class Block:
    """A run of markdown, or one executable code cell (its code without the option lines).

    `line` and `code_line` count in `file`, the file the block was written in (an included file
    keeps its own name and lines); `index` is the block's first line in the chapter as read.
    """

    kind: str  # "markdown" | "code"
    text: str
    line: int  # first line (the opening fence of a code cell), 1-based
    options: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)  # (line, message) found in the option lines
    code_line: int = 0  # line of the first line of code (after the options)
    file: Path | None = None
    index: int = 0


@dataclass
class Source:
    """A parsed .qmd file; `origins[i]` is (file, line) of line i of the text as read."""

    path: Path
    meta: dict
    blocks: list
    origins: list = field(default_factory=list)

    def where(self, index: int) -> str:
        """'file:line' of line `index` of the text as read (includes expanded)."""
        file, line = self.origins[index] if index < len(self.origins) else (self.path, index + 1)
        return f"{display_path(file)}:{line}"


def fence_close(opening: str) -> re.Pattern:
    """The pattern of the line closing a fence opened by `opening` (``` or ~~~, at least as long)."""
    return re.compile(r"^ {0,3}" + re.escape(opening[0]) + "{" + str(len(opening)) + r",}\s*$")


def split_front_matter(text: str, path) -> tuple[dict, str, int]:
    """(metadata, body, line number of the body's first line)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text, 1
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            try:
                meta = yaml.safe_load("\n".join(lines[1:i])) or {}
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: front matter is not valid YAML: {e}") from None
            if not isinstance(meta, dict):
                raise ValueError(f"{path}: front matter must be a YAML mapping")
            return meta, "\n".join(lines[i + 1:]), i + 2
    raise ValueError(f"{path}: front matter opened by --- on line 1 is never closed")


def include_target(argument: str, path: Path, root: Path) -> Path:
    """The file an include shortcode names: relative to the including file, or to the root with /."""
    name = argument.strip("\"'")
    return (root / name.lstrip("/")) if name.startswith("/") else (path.parent / name)


def expand_includes(text: str, path: Path, root: Path, first_line: int = 1, seen=()) -> tuple[list, list]:
    """The lines of `text` with each `{{< include file >}}` line (outside code fences) replaced by
    the file's lines, and the (file, line) each line comes from."""
    lines, origins, fence = [], [], None
    for number, line in enumerate(text.split("\n"), start=first_line):
        if fence is not None:
            fence = None if fence.match(line) else fence
        elif (m := FENCE.match(line)):
            fence = fence_close(m.group(1))
        elif (m := INCLUDE.match(line)):
            target = include_target(m.group(1), path, root).resolve()
            if target in seen:
                raise ValueError(f"{path}:{number}: include of {target.name} is circular")
            if not target.is_file():
                raise ValueError(f"{path}:{number}: included file {m.group(1)} not found")
            included = target.read_text(encoding="utf-8").replace("\r\n", "\n").rstrip("\n")
            more, where = expand_includes(included, target, root, 1, (*seen, path.resolve(), target))
            lines += more
            origins += where
            continue
        lines.append(line)
        origins.append((path, number))
    return lines, origins


def parse_options(lines: list[str], first_line: int) -> tuple[dict, int, list]:
    """Cell options from the leading `#| key: value` lines: (options, count of option lines, problems).

    Problems (for the lint): `# |` typos, `#|key` without a space, invalid YAML, a non-mapping.
    """
    problems, yaml_lines, count = [], [], 0
    for i, line in enumerate(lines):
        if not OPTION.match(line):
            break
        count += 1
        stripped = line.strip()
        if not stripped.startswith("#|"):
            problems.append((first_line + i, f"option line {stripped!r} must start with '#|' (no space)"))
            continue
        rest = stripped[2:]
        if rest and not rest.startswith(" "):
            problems.append((first_line + i, f"option line {stripped!r} needs a space after '#|'"))
        yaml_lines.append(line.split("#|", 1)[1][1:] if rest.startswith(" ") else rest)
    options = {}
    if yaml_lines:
        try:
            parsed = yaml.safe_load("\n".join(yaml_lines))
        except yaml.YAMLError as e:
            problems.append((first_line, f"cell options are not valid YAML: {str(e).splitlines()[0]}"))
            parsed = {}
        if parsed is None:
            parsed = {}
        if not isinstance(parsed, dict):
            problems.append((first_line, "cell options must be 'key: value' lines"))
            parsed = {}
        options = parsed
    return options, count, problems


def split_blocks(body, first_line: int = 1, origins=None) -> list[Block]:
    """Markdown runs and executable ```{python} cells, in order.

    body: text or lines; origins: (file, line) of each line (default: lines from `first_line`).
    """
    lines = body.split("\n") if isinstance(body, str) else list(body)
    origins = origins or [(None, first_line + i) for i in range(len(lines))]
    line_of = lambda i: origins[min(i, len(origins) - 1)][1] if origins else first_line  # noqa: E731
    blocks, markdown, start = [], [], 0
    i, fence = 0, None
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line) if fence is None else None
        if fence is not None:
            fence = None if fence.match(line) else fence
        elif m and m.group(1)[0] == "`" and EXECUTABLE.match(m.group(2)):
            close = fence_close(m.group(1))
            end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), None)
            if end is None:
                raise ValueError(f"line {line_of(i)}: code cell opened here is never closed")
            if markdown:
                blocks.append(Block("markdown", "\n".join(markdown), line_of(start), file=origins[start][0],
                                    index=start))
            cell = lines[i + 1:end]
            options, count, problems = parse_options(cell, line_of(i) + 1)
            code = cell[count:]
            blank = next((k for k, c in enumerate(code) if c.strip()), 0)
            blocks.append(Block("code", "\n".join(code).strip("\n"), line_of(i), options, problems,
                                line_of(i) + 1 + count + blank, origins[i][0], i))
            markdown, start, i = [], end + 1, end + 1
            continue
        elif m:
            fence = fence_close(m.group(1))
        markdown.append(line)
        i += 1
    if markdown:
        blocks.append(Block("markdown", "\n".join(markdown), line_of(start), file=origins[start][0], index=start))
    return [b for b in blocks if b.kind == "code" or b.text.strip()]


def read_qmd(path, root=None, *, includes: bool = True) -> Source:
    """Parse a .qmd file (includes expanded unless `includes=False`)."""
    path = Path(path).resolve()
    root = Path(root).resolve() if root is not None else path.parent
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    meta, body, first = split_front_matter(text, path)
    if includes:
        lines, origins = expand_includes(body, path, root, first)
    else:
        lines = body.split("\n")
        origins = [(path, first + i) for i in range(len(lines))]
    try:
        blocks = split_blocks(lines, first, origins)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return Source(path, meta, blocks, origins)


# ----------------------------------------------------------------------------------------------
# Markdown: protected spans, attributes, inline expressions
# ----------------------------------------------------------------------------------------------

BACKTICKS = re.compile(r"`+")
INLINE_EXPR = re.compile(r"^\{python3?\}\s+(.+?)\s*$", re.S)
DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?![\s$])(?:\\\$|[^$\n])*?(?<![\s\\])\$(?!\d)")
LABELLED_EQ = re.compile(r"\$\$(.+?)\$\$[ \t]*\{#(eq-[^\s}]+)\}", re.S)
PLACEHOLDER = re.compile(r"\x00(\d+)\x00")


def code_spans(text: str) -> Iterator[tuple[int, int, str, int]]:
    """(start, end, content, backticks) of each inline code span (CommonMark backtick runs)."""
    pos = 0
    while (m := BACKTICKS.search(text, pos)):
        run = m.group(0)
        close = re.compile(r"(?<!`)" + run + r"(?!`)")
        end = close.search(text, m.end())
        if end is None:
            pos = m.end()
            continue
        yield m.start(), end.end(), text[m.end():end.start()], len(run)
        pos = end.end()


def inline_expressions(text: str) -> list[tuple[str, int]]:
    """(expression, line offset) of the `{python} expr` spans of a markdown text, in order.

    Only single-backtick spans run: ``{python} x`` (two backticks) is Quarto's way to show one.
    """
    return [(m.group(1), text.count("\n", 0, start)) for start, _, content, ticks in code_spans(without_fences(text))
            if ticks == 1 and (m := INLINE_EXPR.match(content))]


def without_fences(text: str) -> str:
    """`text` with the lines of fenced code blocks blanked (same length, same line numbers)."""
    out, fence = [], None
    for line in text.split("\n"):
        if fence is not None:
            fence = None if fence.match(line) else fence
            out.append("")
        elif (m := FENCE.match(line)):
            fence = fence_close(m.group(1))
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def parse_attributes(text: str) -> tuple[str | None, list[str], dict]:
    """Pandoc attributes `#id .class key="value"` (braces optional): (id, classes, key-values)."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    ident, classes, values = None, [], {}
    for m in re.finditer(r"""(#[^\s}]+)|(\.[^\s}]+)|([\w-]+)=("[^"]*"|'[^']*'|\S+)|(\S+)""", text):
        if m.group(1):
            ident = m.group(1)[1:]
        elif m.group(2):
            classes.append(m.group(2)[1:])
        elif m.group(3):
            values[m.group(3)] = m.group(4).strip("\"'")
        elif m.group(5) == "-":
            classes.append("unnumbered")
        elif m.group(5):
            classes.append(m.group(5))
    return ident, classes, values


class Protected:
    """Stores spans that the markdown transforms must not touch, behind \\x00n\\x00 placeholders."""

    def __init__(self):
        self.spans: list[str] = []

    def hide(self, text: str) -> str:
        self.spans.append(text)
        return f"\x00{len(self.spans) - 1}\x00"

    def restore(self, text: str) -> str:
        while PLACEHOLDER.search(text):
            text = PLACEHOLDER.sub(lambda m: self.spans[int(m.group(1))], text)
        return text

    def fences(self, text: str) -> str:
        out, block, fence = [], [], None
        for line in text.split("\n"):
            if fence is not None:
                block.append(line)
                if fence.match(line):
                    fence = None
                    out.append(self.hide(unescape_executable("\n".join(block))))
                    block = []
            elif (m := FENCE.match(line)):
                fence, block = fence_close(m.group(1)), [line]
            else:
                out.append(line)
        if block:
            out.append(self.hide("\n".join(block)))
        return "\n".join(out)

    def code(self, text: str) -> str:
        pieces, pos = [], 0
        for start, end, _, _ in code_spans(text):
            pieces += [text[pos:start], self.hide(unescape_executable(text[start:end]))]
            pos = end
        return "".join(pieces) + text[pos:]

    def math(self, text: str) -> str:
        text = DISPLAY_MATH.sub(lambda m: self.hide(m.group(0)), text)
        return INLINE_MATH.sub(lambda m: self.hide(m.group(0)), text)


def unescape_executable(text: str) -> str:
    """Quarto's escape for showing executable syntax: {{python}} displays as {python}."""
    return text.replace("{{python}}", "{python}").replace("{{python3}}", "{python3}")


def escape_markdown(text: str) -> str:
    """Plain text made safe as markdown (Quarto escapes inline-expression results the same way)."""
    return re.sub(r"([\\`*_\[\]<>$@|~#])", r"\\\1", text)


# ----------------------------------------------------------------------------------------------
# Bibliography: a small BibTeX reader and author-year citations
# ----------------------------------------------------------------------------------------------

def _bib_value(text: str, i: int) -> tuple[str, int]:
    """The field value starting at text[i] ({...}, "..." or a bare word) and the index after it."""
    if text[i] == "{":
        depth, j = 0, i
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                return text[i + 1:j], j + 1
            j += 1
        raise ValueError("unbalanced braces")
    if text[i] == '"':
        j = text.index('"', i + 1)
        return text[i + 1:j], j + 1
    m = re.compile(r"[^,}\s]+").match(text, i)
    return m.group(0), m.end()


def read_bib(path) -> dict[str, dict]:
    """Entries of a BibTeX file: {key: {"type": ..., field: value}} (fields lower-case)."""
    text = Path(path).read_text(encoding="utf-8")
    entries = {}
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        kind = m.group(1).lower()
        if kind in ("comment", "string", "preamble"):
            continue
        entry, i = {"type": kind}, m.end()
        while True:
            f = re.compile(r"\s*(?:,\s*)?([\w-]+)\s*=\s*").match(text, i)
            if not f:
                break
            try:
                value, i = _bib_value(text, f.end())
            except ValueError:
                raise ValueError(f"{path}: entry {m.group(2)}: unbalanced braces") from None
            entry[f.group(1).lower()] = clean_tex(value)
        entries[m.group(2)] = entry
    return entries


def clean_tex(text: str) -> str:
    """BibTeX text as plain text: braces and simple accent commands dropped, whitespace collapsed."""
    text = re.sub(r"\\[`'^\"~=.uvHckrb]\s*\{?(\w)\}?", r"\1", text)
    text = re.sub(r"\\(&|%|\$|_)", r"\1", text)
    text = text.replace("--", "–").replace("{", "").replace("}", "")
    return re.sub(r"\s+", " ", text).strip()


def surnames(entry: dict) -> list[str]:
    """The authors' (or editors') surnames of a bibliography entry."""
    people = entry.get("author") or entry.get("editor") or entry.get("organization") or "Anonymous"
    out = []
    for name in re.split(r"\s+and\s+", people):
        name = name.strip()
        out.append(name.split(",")[0].strip() if "," in name else name.split()[-1])
    return out


def author_year(entry: dict) -> tuple[str, str]:
    """('Biggio et al.', '2012') for an entry."""
    names = surnames(entry)
    who = names[0] if len(names) == 1 else (f"{names[0]} and {names[1]}" if len(names) == 2
                                            else f"{names[0]} et al.")
    return who, entry.get("year", "n.d.")


def reference_text(entry: dict) -> str:
    """One entry of a chapter's reference list, as markdown."""
    names = surnames(entry)
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    where = entry.get("journal") or entry.get("booktitle") or entry.get("publisher") or entry.get("howpublished", "")
    out = f"{who} ({entry.get('year', 'n.d.')}). {entry.get('title', '').rstrip('.')}."
    if where:
        out += f" *{where}*."
    if entry.get("doi"):
        out += f" <https://doi.org/{entry['doi']}>"
    elif entry.get("url"):
        out += f" <{entry['url']}>"
    return out


# ----------------------------------------------------------------------------------------------
# Numbers and cross-references
# ----------------------------------------------------------------------------------------------

KINDS = {"fig": "Figure", "tbl": "Table", "eq": "Equation", "sec": "Section"}
KEY = r"[A-Za-z0-9_](?:[\w:.#$%&+?<>~/-]*[\w])?"
CITATION = re.compile(r"(?<![\w\\@])(-?)@(" + KEY + ")")
BRACKETED = re.compile(r"\[([^\[\]]*?@[^\[\]]*)\](?![(\[{])")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)(?:[ \t]+(\{[^{}]*\}))?[ \t]*#*[ \t]*$")
DIV = re.compile(r"^(:{3,})[ \t]*(\{[^{}]*\}|[\w.-]+)[ \t]*:*[ \t]*$")
DIV_CLOSE = re.compile(r"^:{3,}[ \t]*$")
IMAGE_FIG = re.compile(r"!\[(.*?)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)\{([^{}]*#fig-[^{}]*)\}")
TABLE_CAPTION = re.compile(r"^(?:Table)?:[ \t]+(.*?)[ \t]*\{([^{}]*#tbl-[^{}]*)\}[ \t]*$")
SHORTCODE = re.compile(r"(\{?)\{\{<\s*([\w-]+)([^>]*?)\s*>\}\}(\}?)")
QMD_LINK = re.compile(r"\]\((?![a-z]+://)([^)\s#]+)\.qmd(#[^)\s]*)?\)")
CALLOUT_TITLES = {"note": "Note", "tip": "Tip", "warning": "Warning", "caution": "Caution",
                  "important": "Important"}


@dataclass(frozen=True)
class Target:
    """Where a label points: its kind, its number, the output page holding it, a title (sections)."""

    kind: str
    number: str
    page: str  # output file relative to the output root, e.g. "report/linear-regression.html"
    title: str = ""


class Counters:
    """Numbers of sections, figures, tables and equations in one chapter, in order of appearance."""

    def __init__(self, chapter: int | None, titled: bool):
        self.chapter = chapter  # None: an unnumbered chapter (e.g. the preface)
        self.titled = titled  # the front matter gives the title, so every heading is a section
        self.sections: list[int] = []
        self.items = {k: 0 for k in KINDS}

    def heading(self, level: int, classes: list[str]) -> str:
        """The number of a heading ('' for the chapter title and unnumbered headings)."""
        if level == 1 and not self.titled:
            self.titled = True  # the first H1 is the chapter title
            return "" if self.chapter is None else str(self.chapter)
        if self.chapter is None or "unnumbered" in classes:
            return ""
        depth = max(level - 1, 1)
        self.sections = (self.sections + [0] * depth)[:depth]
        self.sections[-1] += 1
        return ".".join(map(str, [self.chapter, *self.sections]))

    def item(self, kind: str) -> str:
        self.items[kind] += 1
        return f"{self.chapter}.{self.items[kind]}" if self.chapter else str(self.items[kind])


def chapter_title(source: Source) -> tuple[str, bool]:
    """(title, numbered) of a chapter: the front matter's title or the first H1."""
    numbered = source.meta.get("number-sections", True) is not False
    if source.meta.get("title"):
        return str(source.meta["title"]), numbered
    for block in source.blocks:
        if block.kind != "markdown":
            continue
        for line in without_fences(block.text).split("\n"):
            if (m := HEADING.match(line)) and len(m.group(1)) == 1:
                classes = parse_attributes(m.group(3) or "")[1]
                return m.group(2), numbered and "unnumbered" not in classes
    return source.path.stem.replace("-", " ").capitalize(), numbered


class Markdown:
    """Quarto markdown of one chapter -> the markdown nbconvert renders: numbers, ids, links.

    Call `block` on the markdown cells and `code_label` on the code cells in document order;
    the same sequence gives the same numbers, so a dry run over a chapter collects its labels.
    """

    def __init__(self, counters: Counters, page: str, labels: dict | None = None,
                 bib: dict | None = None, collect: dict | None = None, profile: str | None = None):
        self.counters = counters
        self.profile = profile  # for content-visible/hidden when-profile
        self.page = page
        self.labels = labels if labels is not None else {}
        self.bib = bib or {}
        self.collect = collect  # a dict: dry run, record label -> Target here
        self.cited: list[str] = []
        self.unresolved: list[str] = []
        self.callout_title: str | None = None  # the default title of a callout still untitled

    # numbering -------------------------------------------------------------------------------
    def register(self, label: str, number: str, title: str = "") -> None:
        if self.collect is not None:
            self.collect.setdefault(label, Target(label.split("-")[0], number, self.page, title))

    def code_label(self, options: dict) -> str | None:
        """The number of a code cell's fig-/tbl- label (None when unlabelled)."""
        label = str(options.get("label", ""))
        kind = label.split("-")[0]
        if kind not in ("fig", "tbl"):
            return None
        number = self.counters.item(kind)
        self.register(label, number)
        return number

    # references ------------------------------------------------------------------------------
    def href(self, label: str) -> str:
        target = self.labels[label]
        if target.page == self.page:
            return f"#{label}"
        return posixpath.relpath(target.page, posixpath.dirname(self.page) or ".") + f"#{label}"

    def reference(self, label: str, prefix: bool = True, capital: bool = False) -> str:
        if label not in self.labels:
            if self.collect is None:
                self.unresolved.append(f"@{label}")
            return f"**?@{label}**"
        target = self.labels[label]
        text = target.number or target.title
        if prefix:
            text = f"{KINDS[target.kind]} {text}".strip()
        return f"[{text}]({self.href(label)})"

    def citation(self, key: str, in_text: bool, suppress: bool = False) -> str:
        if key not in self.bib:
            if self.collect is None:
                self.unresolved.append(f"@{key}")
            return f"**?{key}**"
        if key not in self.cited:
            self.cited.append(key)
        who, year = author_year(self.bib[key])
        year = f"[{year}](#ref-{key})"
        return year if suppress else (f"{who} ({year})" if in_text else f"{who}, {year}")

    def is_crossref(self, key: str) -> bool:
        kind = key.split("-")[0].lower()
        return kind in KINDS and "-" in key

    def bracketed(self, m: re.Match) -> str:
        items = [s.strip() for s in m.group(1).split(";")]
        if not all(CITATION.search(s) for s in items):
            return m.group(0)
        refs, cites = [], []
        for item in items:
            c = CITATION.search(item)
            key, before, after = c.group(2), item[:c.start()].strip(), item[c.end():].strip()
            if self.is_crossref(key):
                refs.append(" ".join(filter(None, [before, self.reference(
                    key[0].lower() + key[1:], prefix=not c.group(1)), after])))
            else:
                cited = self.citation(key, in_text=False, suppress=bool(c.group(1)))
                sep = "" if after.startswith((",", ";", ".")) else " "
                cites.append(" ".join(filter(None, [before, cited])) + (sep + after if after else ""))
        out = "; ".join(refs)
        if cites:
            out += (" " if out else "") + "(" + "; ".join(cites) + ")"
        return out

    def in_text(self, m: re.Match) -> str:
        key = m.group(2)
        if self.is_crossref(key):
            return self.reference(key[0].lower() + key[1:], prefix=not m.group(1))
        if self.bib:  # as in pandoc, @word is a citation wherever a bibliography is configured
            return self.citation(key, in_text=True, suppress=bool(m.group(1)))
        return m.group(0)

    def references(self, text: str) -> str:
        """Cross-references, citations, and links to .qmd files made links to their pages."""
        text = QMD_LINK.sub(r"](\1.html\2)", text)
        text = BRACKETED.sub(self.bracketed, text)
        return CITATION.sub(self.in_text, text)

    # structure -------------------------------------------------------------------------------
    def equation(self, m: re.Match, store: Protected) -> str:
        label, number = m.group(2), self.counters.item("eq")
        self.register(label, number)
        math = f"$$\n{m.group(1).strip()}\n\\tag{{{number}}}\n$$"
        return f'<span id="{label}"></span>\n\n' + store.hide(math)

    def heading(self, m: re.Match) -> str:
        hashes, title = m.group(1), m.group(2)
        ident, classes, _ = parse_attributes(m.group(3) or "")
        if self.callout_title:  # a heading opening a callout is its title
            self.callout_title = None
            return f"**{title}**\n"
        number = self.counters.heading(len(hashes), classes)
        if ident:
            self.register(ident, number, title)
        anchor = f'<span id="{ident}"></span>' if ident else ""
        return f"{hashes} {anchor}{number + ' ' if number else ''}{title}"

    def figure_image(self, m: re.Match) -> str:
        ident, _, values = parse_attributes(m.group(3))
        number = self.counters.item("fig")
        self.register(ident, number)
        alt = values.get("fig-alt", m.group(1))
        return (f'<div id="{ident}" class="pl-figure">\n\n![{alt}]({m.group(2)})\n\n'
                f'<div class="pl-caption">\n\nFigure {number}: {m.group(1)}\n\n</div>\n</div>')

    def table_caption(self, m: re.Match) -> str:
        ident = parse_attributes(m.group(2))[0]
        number = self.counters.item("tbl")
        self.register(ident, number)
        return f'<div id="{ident}" class="pl-caption">\n\nTable {number}: {m.group(1)}\n\n</div>'

    def open_div(self, attributes: str) -> str:
        ident, classes, values = parse_attributes(attributes)
        callout = next((c[len("callout-"):] for c in classes if c.startswith("callout-")), None)
        if callout:
            default = CALLOUT_TITLES.get(callout, callout.capitalize())
            self.callout_title = None if "title" in values else default  # until a heading gives one
            head = f"**{values['title']}**\n" if "title" in values else ""
            return f'<div class="callout callout-{callout}">\n\n{head}'
        if ident and ident.split("-")[0] in ("fig", "tbl"):
            self.register(ident, self.counters.item(ident.split("-")[0]))
        ident_attr = f' id="{ident}"' if ident else ""
        return f'<div{ident_attr} class="{" ".join(["pl-div", *classes])}">\n'

    def hidden(self, attributes: str) -> bool:
        """Content that this page does not show (content-visible/-hidden by format or profile)."""
        _, classes, values = parse_attributes(attributes)
        if not {"content-visible", "content-hidden"} & set(classes):
            return False
        active = {"when-format": {"html", "html5"}, "when-profile": {self.profile}}
        conditions = []
        for key, current in active.items():
            unless = key.replace("when", "unless")
            if key in values:
                conditions.append(bool(set(re.split(r"[,\s]+", values[key])) & current))
            if unless in values:
                conditions.append(not set(re.split(r"[,\s]+", values[unless])) & current)
        matches = all(conditions)  # no condition: the class alone decides
        return not matches if "content-visible" in classes else matches

    def structure(self, text: str, store: Protected) -> str:
        """Divs, callouts, headings, figure images and table captions, line by line."""
        out, stack, skip = [], [], 0
        for line in text.split("\n"):
            if (m := DIV.match(line)):
                if skip or self.hidden(m.group(2)):
                    skip += 1
                    continue
                stack.append(m.group(1))
                out.append(self.open_div(m.group(2)))
                continue
            if DIV_CLOSE.match(line) and (skip or stack):
                if skip:
                    skip -= 1
                else:
                    stack.pop()
                    if self.callout_title:
                        out.append(f"**{self.callout_title}**\n")
                        self.callout_title = None
                    out.append("\n</div>\n")
                continue
            if skip:
                continue
            if (m := HEADING.match(line)):
                out.append(self.heading(m))
                continue
            if line.strip() and self.callout_title:  # no heading: the callout's default title
                out.append(f"**{self.callout_title}**\n")
                self.callout_title = None
            line = IMAGE_FIG.sub(self.figure_image, line)
            line = TABLE_CAPTION.sub(self.table_caption, line)
            out.append(line)
        return "\n".join(out)

    @staticmethod
    def shortcodes(text: str) -> str:
        """{{< pagebreak >}} dropped, escaped {{{< x >}}} shown as {{< x >}} (includes are read earlier)."""
        def shortcode(m):
            if m.group(1) and m.group(4):
                return "{{< " + (m.group(2) + m.group(3)).strip() + " >}}"
            return "" if m.group(2) == "pagebreak" else m.group(0)
        return SHORTCODE.sub(shortcode, text)

    def block(self, text: str) -> str:
        """A markdown cell of the chapter (inline values already substituted)."""
        store = Protected()
        text = self.shortcodes(store.code(store.fences(text)))
        text = LABELLED_EQ.sub(lambda m: self.equation(m, store), text)
        text = self.structure(store.math(text), store)
        return store.restore(self.references(text))

    def inline(self, text: str) -> str:
        """References and citations only (captions, markdown outputs of cells)."""
        store = Protected()
        text = store.math(store.code(store.fences(text)))
        return store.restore(self.references(text))

    def bibliography(self) -> str | None:
        """The chapter's reference list (markdown), or None when it cites nothing."""
        if not self.cited:
            return None
        items = sorted(self.cited, key=lambda k: (surnames(self.bib[k])[0], self.bib[k].get("year", "")))
        lines = [f'<div id="ref-{k}" class="pl-reference">\n\n{reference_text(self.bib[k])}\n\n</div>\n'
                 for k in items]
        return "## References {.unnumbered}\n\n" + "\n".join(lines)


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


def setup_source(figure: dict) -> str:
    """The hidden first cell: figure size and resolution, and the inline-expression helper."""
    lines = ["import matplotlib as _plt_mpl"]
    if "fig-width" in figure and "fig-height" in figure:
        lines.append(f"_plt_mpl.rcParams['figure.figsize'] = ({figure['fig-width']}, {figure['fig-height']})")
    if "fig-dpi" in figure:
        lines.append(f"_plt_mpl.rcParams['figure.dpi'] = {figure['fig-dpi']}")
    lines += [
        "def __poisonlab_inline__(value):",
        "    from IPython.display import display",
        "    markdown = getattr(value, '_repr_markdown_', None)",
        "    item = ['markdown', markdown()] if markdown is not None else ['text', str(value)]",
        f"    display({{{INLINE_MIME!r}: item}}, raw=True)",
        "del _plt_mpl",
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


def build_notebook(chapter: Chapter, config: dict) -> nbformat.NotebookNode:
    """The chapter as a notebook to execute: hidden setup and inline-expression cells included."""
    v4 = nbformat.v4
    defaults = dict(config.get("execute") or {})
    defaults.update(chapter.source.meta.get("execute") or {})
    cells = [v4.new_code_cell(setup_source(figure_options(config)),
                              metadata={"poisonlab": {"role": "setup"}})]
    title = chapter.source.meta.get("title")
    if title:
        cells.append(v4.new_markdown_cell(f"# {title}", metadata={"poisonlab": {"role": "title"}}))
    number = 0
    for block in chapter.source.blocks:
        if block.kind == "markdown":
            for expr, offset in inline_expressions(block.text):
                cells.append(v4.new_code_cell(f"__poisonlab_inline__(({expr}))", metadata={
                    "poisonlab": {"role": "inline", "expr": expr,
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
            "poisonlab": {"role": "code", "cell": number, "where": where, "options": options}}))
    nb = v4.new_notebook(cells=cells)
    nb.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                        "language_info": {"name": "python"}, "title": chapter.title})
    return nb


def kernel_env(profile: str) -> dict:
    """The kernel's environment: the profile (both variables), no progress bars, inline figures."""
    return {**os.environ, "POISONLAB_PROFILE": profile, "QUARTO_PROFILE": profile, "TQDM_DISABLE": "1",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def display_path(path: Path) -> str:
    """`path` relative to the working directory when inside it (messages name files as typed)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def first_line(source: str) -> str:
    line = next((s.strip() for s in source.split("\n") if s.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def traceback_places(traceback: list[str]) -> tuple[int | None, str | None]:
    """From a kernel traceback: the failing line within the cell, and the deepest poisonlab frame."""
    text = ANSI.sub("", "\n".join(traceback))
    cell = re.search(r"^Cell In\[\d+\], line (\d+)", text, re.M)
    package = Path(__file__).resolve().parent
    frames = re.findall(r"^File (.+?):(\d+)(?:, in |$)", text, re.M)
    ours = [f"{display_path(Path(os.path.expanduser(f)))}:{n}" for f, n in frames
            if Path(os.path.expanduser(f)).resolve().is_relative_to(package)]
    return (int(cell.group(1)) if cell else None), (ours[-1] if ours else None)


def cell_error(nb, chapter_path: Path, fallback: str) -> RenderError:
    """The RenderError of the first cell holding an error output: chapter, cell, line, error."""
    for cell in nb.cells:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        meta = cell.metadata.get("poisonlab", {})
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

    # the kernel's own log (e.g. its warning about unencrypted local TCP) is not the chapter's output
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute(env=kernel_env(profile))
    except CellTimeoutError:
        running = next((c for c in nb.cells if c.cell_type == "code" and c.get("execution_count") is None
                        and "skip-execution" not in c.metadata.get("tags", [])), None)
        meta = running.metadata.get("poisonlab", {}) if running is not None else {}
        raise RenderError(f"{meta.get('where', display_path(chapter_path))}: cell {meta.get('cell', '?')} "
                          f"ran past the timeout of {timeout:g} s per cell") from None
    except CellExecutionError as e:
        raise cell_error(nb, chapter_path, f"{e.ename}: {e.evalue}") from None
    except DeadKernelError as e:
        raise RenderError(f"{display_path(chapter_path)}: the kernel died ({e})") from None
    except NoSuchKernel:
        raise RenderError("no Jupyter kernel named python3: run `python -m ipykernel install --user` "
                          "in the environment of poisonlab") from None
    return nb


def inline_value(cell) -> str:
    """The markdown of an inline-expression cell's value (plain text escaped, as Quarto does)."""
    for output in cell.get("outputs", []):
        item = output.get("data", {}).get(INLINE_MIME)
        if item:
            kind, value = item
            return value if kind == "markdown" else escape_markdown(value)
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
    caption_html = markdown2html_mistune(md.inline(f"Figure {number}: {caption}")).strip()
    caption_html = re.sub(r"^<p>(.*)</p>$", r"\1", caption_html, flags=re.S).replace("\n\n", "\n")
    body = "\n".join([f'<figure id="{label}" class="pl-figure">', *tags,
                      f"<figcaption>{caption_html}</figcaption>", "</figure>"])
    return nbformat.v4.new_markdown_cell(body, metadata={"poisonlab": {"role": "figure"}})


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
    options = cell.metadata["poisonlab"]["options"]
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
            after.append(nbformat.v4.new_markdown_cell(md.inline(text), metadata={"poisonlab": {"role": "asis"}}))
    if number and label.startswith("tbl-"):
        caption = md.inline(str(options.get("tbl-cap", "")))
        before.append(nbformat.v4.new_markdown_cell(
            f'<div id="{label}" class="pl-caption">\n\nTable {number}: {caption}\n\n</div>',
            metadata={"poisonlab": {"role": "caption"}}))
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
        role = cell.metadata.get("poisonlab", {}).get("role")
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
    profile = validate.choice("profile", profile, PROFILES)
    timeout = validate.positive("timeout", timeout)
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
    nb.metadata["poisonlab"] = {"unresolved": unresolved, "profile": profile}
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


def to_html(nb, chapter_dir: Path, nav: str) -> str:
    """The HTML page of an executed chapter notebook."""
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
    return nb.metadata["poisonlab"]["unresolved"]


def replace_dir(new: Path, old: Path) -> None:
    """Put `new` where `old` was, the previous content removed only once the new one is in place."""
    backup = None
    if old.exists():
        backup = old.with_name(f".{old.name}.previous-{os.getpid()}")
        os.rename(old, backup)
    os.rename(new, old)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def render_jupyter(root: Path, profile: str, names=None, output=None, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Render the book with the Jupyter engine into `output` (default: <root>/_preview)."""
    book = load_book(root, profile=profile, missing_ok=bool(names))  # a partial render needs only its chapters
    selected = select_chapters(book, names)
    out = Path(output).resolve() if output else root / "_preview"
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
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
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def render_quarto(root: Path, profile: str, names=None, output=None) -> int:
    """`quarto render` of the book (or of the named chapters) in `profile`: its exit status."""
    quarto = find_quarto()
    if quarto is None:
        raise ValueError(f"engine: quarto is not on PATH; install it ({QUARTO_URL}) or use --engine jupyter")
    extra = ["--profile", profile] + (["--output-dir", str(Path(output).resolve())] if output else [])
    targets = [str(Path(n).resolve()) for n in names] if names else [None]  # quarto renders one input a call
    for target in targets:
        status = subprocess.call([quarto, "render", *([target] if target else []), *extra], cwd=root,
                                 env=kernel_env(profile))
        if status:
            return status
    return 0


def main(engine: str = "auto", profile: str = "full", chapters=None, output=None) -> int:
    """`poisonlab render`: 0 on success, 1 when a chapter fails; bad input raises ValueError."""
    engine = validate.choice("engine", engine, ENGINES)
    profile = validate.choice("profile", profile, PROFILES)
    root = find_root()
    if engine == "auto":
        engine = "quarto" if find_quarto() else "jupyter"
        if engine == "quarto":
            say("using Quarto (HTML and PDF)")
        else:
            say(f"Quarto not found, using the Jupyter engine (HTML preview); Quarto renders the full book, "
                f"PDF included: install it from {QUARTO_URL}")
    if engine == "quarto":
        return render_quarto(root, profile, chapters, output)
    try:
        out = render_jupyter(root, profile, chapters, output)
    except RenderError as e:
        say(f"error: {e}")
        return 1
    say(f"wrote {display_path(out / 'index.html')}")
    return 0
