"""Reading Quarto markdown: the .qmd reader, code spans and math, the bibliography's keys.

- Reading (`read_qmd`): front matter, `{{< include >}}`, markdown runs and executable ```{python}
  cells with their `#|` options, each line traced back to the file and line it was written on.
- Spans (`code_spans`, `inline_expressions`, `DISPLAY_MATH`, `INLINE_MATH`): for the inline values
  and the lint.
- Bibliography (`read_bib`): a small BibTeX reader (the lint checks cited keys; pandoc formats them).

`model`, `notebooks` and `jupyter_engine` build the book, the notebooks and the pages on top of this module.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def display_path(path: Path) -> str:
    """`path` relative to the working directory when inside it (messages name files as typed)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


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
# Markdown: code spans, math, attributes, inline expressions
# ----------------------------------------------------------------------------------------------

BACKTICKS = re.compile(r"`+")
INLINE_EXPR = re.compile(r"^\{python3?\}\s+(.+?)\s*$", re.S)
DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
# $...$ as pandoc reads it: no space inside the dollars, no digit after, across lines but not a blank one
INLINE_MATH = re.compile(r"(?<![\\$])\$(?![\s$])(?:\\\$|[^$\n]|\n(?![ \t]*\n))*?(?<![\s\\])\$(?!\d)")


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


# ----------------------------------------------------------------------------------------------
# Chapters, citations and the bibliography's keys (pandoc reads and formats the bibliography)
# ----------------------------------------------------------------------------------------------

KEY = r"[A-Za-z0-9_](?:[\w:.#$%&+?<>~/-]*[\w])?"
CITATION = re.compile(r"(?<![\w\\@])(-?)@(" + KEY + ")")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)(?:[ \t]+(\{[^{}]*\}))?[ \t]*#*[ \t]*$")
BIB_ENTRY = re.compile(r"@(\w+)\s*\{\s*([^,\s]+)\s*,")


def read_bib(path) -> dict[str, dict]:
    """The entries of a BibTeX file, by key: {key: {"type": entry type}} (for the lint)."""
    found = BIB_ENTRY.finditer(Path(path).read_text(encoding="utf-8"))
    return {m.group(2): {"type": m.group(1).lower()} for m in found
            if m.group(1).lower() not in ("comment", "string", "preamble")}


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
                unnumbered = re.search(r"(^|[{\s])(\.unnumbered|-)([}\s]|$)", m.group(3) or "")
                return m.group(2), numbered and not unnumbered
    return source.path.stem.replace("-", " ").capitalize(), numbered
