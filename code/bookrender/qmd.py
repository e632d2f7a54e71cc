"""Quarto markdown for the Jupyter engine: the .qmd reader, the bibliography, the markdown transform.

- Reading (`read_qmd`): front matter, `{{< include >}}`, markdown runs and executable ```{python}
  cells with their `#|` options, each line traced back to the file and line it was written on.
- Bibliography (`read_bib`): a small BibTeX reader and author-year citations.
- Markdown (`Markdown`): Quarto's numbering, cross-references, callouts and citations turned into the
  markdown nbconvert renders; `math_to_mathml` turns `$...$` and `$$...$$` math into MathML for the
  HTML pages (browsers render it without MathJax), leaving what latex2mathml cannot convert as TeX.

`render` builds the book, the notebooks and the pages on top of this module.
"""
from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

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
# Markdown: protected spans, attributes, inline expressions
# ----------------------------------------------------------------------------------------------

BACKTICKS = re.compile(r"`+")
INLINE_EXPR = re.compile(r"^\{python3?\}\s+(.+?)\s*$", re.S)
DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
# $...$ as pandoc reads it: no space inside the dollars, no digit after, across lines but not a blank one
INLINE_MATH = re.compile(r"(?<![\\$])\$(?![\s$])(?:\\\$|[^$\n]|\n(?![ \t]*\n))*?(?<![\s\\])\$(?!\d)")
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

    def fences(self, text: str, unescape: bool = True) -> str:
        keep = unescape_executable if unescape else (lambda s: s)
        out, block, fence = [], [], None
        for line in text.split("\n"):
            if fence is not None:
                block.append(line)
                if fence.match(line):
                    fence = None
                    out.append(self.hide(keep("\n".join(block))))
                    block = []
            elif (m := FENCE.match(line)):
                fence, block = fence_close(m.group(1)), [line]
            else:
                out.append(line)
        if block:
            out.append(self.hide("\n".join(block)))
        return "\n".join(out)

    def code(self, text: str, unescape: bool = True) -> str:
        keep = unescape_executable if unescape else (lambda s: s)
        pieces, pos = [], 0
        for start, end, _, _ in code_spans(text):
            pieces += [text[pos:start], self.hide(keep(text[start:end]))]
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
# Math: TeX -> MathML for the HTML pages; what latex2mathml cannot convert stays TeX for MathJax
# ----------------------------------------------------------------------------------------------

# environments latex2mathml turns into MathML Core tables (aligned, gathered, align... it does not)
MATHML_ENVIRONMENTS = frozenset({"matrix", "pmatrix", "bmatrix", "Bmatrix", "vmatrix", "Vmatrix",
                                 "smallmatrix", "cases", "array"})
ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*\{([^{}]*)\}")
TAG = re.compile(r"\\tag\*?\s*\{([^{}]*)\}")
ROMAN_LETTER = re.compile(r"\\mathrm\s*\{\s*([A-Za-z])\s*\}")  # latex2mathml drops \mathrm of one letter
ARG = re.compile(r"\\arg(?![A-Za-z])")  # unknown to latex2mathml
TOKENS = {"mi", "mo", "mn", "mtext", "ms"}
ACCENTS = {"^": "\u02c6", "~": "\u02dc"}  # ASCII ^ and ~ over a letter sit too high in browsers
AS_OPERATOR = {"~": "\u223c", "\u00b1": "\u00b1", "\u2213": "\u2213", "\u27c2": "\u27c2", "\u27f8": "\u27f8",
               "\u27f9": "\u27f9", "\u27fa": "\u27fa"}  # written <mi> (\sim as '~'), spaced <mo> in TeX
# \big\lVert and the like: latex2mathml sizes the delimiter but leaves its command as text
BIG_DELIMITERS = {"\\|": "\u2016", "\\lVert": "\u2016", "\\rVert": "\u2016", "\\Vert": "\u2016", "\\lvert": "|",
                  "\\rvert": "|", "\\vert": "|", "\\{": "{", "\\}": "}", "\\lbrace": "{", "\\rbrace": "}",
                  "\\langle": "\u27e8", "\\rangle": "\u27e9", "\\lfloor": "\u230a", "\\rfloor": "\u230b",
                  "\\lceil": "\u2308", "\\rceil": "\u2309"}
ORDINARY = {"|", "\u2016"}  # |x|, \|x\|: no operator spacing, as in TeX
LIMITS = {"min", "max", "sup", "inf", "lim", "liminf", "limsup", "det", "Pr", "gcd", "argmin", "argmax"}
# browsers ignore mathvariant (but "normal"): the letters become Unicode's mathematical alphanumerics,
# from these starts of A, a, 0, capital Alpha, small alpha (None: no such letters)
ALPHABETS = {
    "bold": (0x1D400, 0x1D41A, 0x1D7CE, 0x1D6A8, 0x1D6C2),
    "italic": (0x1D434, 0x1D44E, None, 0x1D6E2, 0x1D6FC),
    "bold-italic": (0x1D468, 0x1D482, None, 0x1D71C, 0x1D736),
    "script": (0x1D49C, 0x1D4B6, None, None, None),
    "bold-script": (0x1D4D0, 0x1D4EA, None, None, None),
    "fraktur": (0x1D504, 0x1D51E, None, None, None),
    "bold-fraktur": (0x1D56C, 0x1D586, None, None, None),
    "double-struck": (0x1D538, 0x1D552, 0x1D7D8, None, None),
    "sans-serif": (0x1D5A0, 0x1D5BA, 0x1D7E2, None, None),
    "bold-sans-serif": (0x1D5D4, 0x1D5EE, 0x1D7EC, 0x1D756, 0x1D770),
    "sans-serif-italic": (0x1D608, 0x1D622, None, None, None),
    "sans-serif-bold-italic": (0x1D63C, 0x1D656, None, 0x1D790, 0x1D7AA),
    "monospace": (0x1D670, 0x1D68A, 0x1D7F6, None, None),
}
# letters encoded before the mathematical block (its slots for them are empty)
LETTERLIKE = {0x1D455: 0x210E, 0x1D49D: 0x212C, 0x1D4A0: 0x2130, 0x1D4A1: 0x2131, 0x1D4A3: 0x210B,
              0x1D4A4: 0x2110, 0x1D4A7: 0x2112, 0x1D4A8: 0x2133, 0x1D4AD: 0x211B, 0x1D4BA: 0x212F,
              0x1D4BC: 0x210A, 0x1D4C4: 0x2134, 0x1D506: 0x212D, 0x1D50B: 0x210C, 0x1D50C: 0x2111,
              0x1D515: 0x211C, 0x1D51D: 0x2128, 0x1D53A: 0x2102, 0x1D53F: 0x210D, 0x1D545: 0x2115,
              0x1D547: 0x2119, 0x1D548: 0x211A, 0x1D549: 0x211D, 0x1D551: 0x2124}
GREEK_SYMBOLS = {0x2202: 25, 0x3F5: 26, 0x3D1: 27, 0x3F0: 28, 0x3D5: 29, 0x3F1: 30, 0x3D6: 31}  # after omega
MATHML_TEXT = re.compile(r">([^<]+)<")
MARKDOWN_CHAR = re.compile(r"&#?\w+;|[\\`*_\[\]$|~#@!^{}]")  # entities kept, markdown syntax escaped


def balanced_braces(tex: str) -> bool:
    """Whether the unescaped braces of `tex` are balanced (latex2mathml closes missing ones silently)."""
    depth = 0
    for m in re.finditer(r"\\.|[{}]", tex, re.S):
        depth += {"{": 1, "}": -1}.get(m.group(0), 0)
        if depth < 0:
            return False
    return depth == 0


def math_letter(char: str, variant: str) -> str:
    """`char` in the mathematical alphabet `variant` (bold, double-struck...); unchanged when it has none."""
    starts, c = ALPHABETS.get(variant), ord(char)
    if starts is None:
        return char
    upper, lower, digit, capital, small = starts
    for first, last, start in ((0x41, 0x5A, upper), (0x61, 0x7A, lower), (0x30, 0x39, digit),
                               (0x391, 0x3A9, capital), (0x3B1, 0x3C9, small)):
        if start is not None and first <= c <= last:
            return chr(LETTERLIKE.get(start + c - first, start + c - first))
    if small is not None and c in GREEK_SYMBOLS:
        return chr(small + GREEK_SYMBOLS[c])
    return char


def _mathml_like_tex(root: ElementTree.Element, display: bool) -> bool:
    """Bring latex2mathml's MathML closer to TeX in place; False where it cannot be trusted."""
    for el in root.iter():
        text = el.text or ""
        if el.tag == "mo" and el.get("minsize") is not None and text in BIG_DELIMITERS:
            el.text = text = BIG_DELIMITERS[text]
        if "\\" in text or el.get("linebreak") == "newline":  # an unknown command; \\ outside a table
            return False
        if el.tag in TOKENS and len(el):  # e.g. \mathop{...}: a token holding elements
            return False
        if el.tag in TOKENS and el.get("mathvariant", "normal") != "normal":  # \boldsymbol, \mathbb E
            variant = el.attrib.pop("mathvariant")
            el.text = text = "".join(math_letter(c, variant) for c in text)
        if el.tag == "mi" and text in AS_OPERATOR:
            el.tag, el.text = "mo", AS_OPERATOR[text]
        elif el.tag in ("mi", "mo") and len(text) > 1 and text.isascii() and text.isalpha():
            el.tag = "mo"  # an operator name (\log, \operatorname{round}): upright, thin space after
            el.set("lspace", "0em")
            el.set("rspace", "0.167em")
        elif el.tag == "mo" and text in ORDINARY and el.get("fence") != "true":
            el.set("lspace", "0em")
            el.set("rspace", "0em")
            if el.get("minsize") is None:  # \lVert: as tall as the text, not as the row (\big sizes it)
                el.set("stretchy", "false")
        if el.tag == "mover" and len(el) == 2 and el[1].tag == "mo" and el[1].text in ACCENTS:
            el[1].text = ACCENTS[el[1].text]
        if display and el.tag in ("msub", "msubsup") and len(el) and el[0].tag == "mo" and el[0].text in LIMITS:
            el.tag = {"msub": "munder", "msubsup": "munderover"}[el.tag]  # limits below, as TeX displays
    return True


def tex_to_mathml(tex: str, display: bool = False) -> str | None:
    """The MathML of TeX math (without its $ delimiters), or None where it would not be faithful.

    None when latex2mathml is missing or raises, and for what it converts wrongly: unknown commands
    (they come out as `\\name`), environments other than MATHML_ENVIRONMENTS, line breaks `\\\\`
    outside a table, `\\tag`, unbalanced braces, MathML that is not well-formed. The text of the
    MathML is escaped (entities) so that markdown leaves it alone.
    """
    if not tex.strip() or "\\tag" in tex or not balanced_braces(tex):
        return None
    if set(ENVIRONMENT.findall(tex)) - MATHML_ENVIRONMENTS:
        return None
    tex = ARG.sub(r"\\operatorname{arg}", ROMAN_LETTER.sub(r"\\text{\1}", tex))
    try:
        from latex2mathml.converter import convert

        out = convert(tex, display="block" if display else "inline")
        root = ElementTree.fromstring(out.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "", 1))
    except Exception:  # noqa: BLE001 -- not installed, a parse error, not well-formed ('&' of aligned)
        return None
    if not _mathml_like_tex(root, display):
        return None
    if "$" in "".join(root.itertext()):  # keep MathJax (online) from pairing this dollar with another
        root.set("class", "tex2jax_ignore")
    out = ElementTree.tostring(root, encoding="unicode", short_empty_elements=False)
    escape = lambda m: m.group(0) if m.group(0).startswith("&") else f"&#{ord(m.group(0))};"  # noqa: E731
    return MATHML_TEXT.sub(lambda m: ">" + MARKDOWN_CHAR.sub(escape, m.group(1)) + "<", out)


def display_mathml(tex: str) -> str | None:
    """Display math as one line of HTML: the MathML block and its number `(N)` from `\\tag{N}`."""
    tags = TAG.findall(tex)
    if len(tags) > 1:
        return None
    math = tex_to_mathml(TAG.sub("", tex), display=True)
    if math is None:
        return None
    number = f'<span class="pl-equation-number">({html.escape(tags[0].strip())})</span>' if tags else ""
    return f'<span class="pl-equation">{math}{number}</span>'


def math_to_mathml(text: str) -> str:
    """Markdown with its `$...$` and `$$...$$` math as MathML wherever latex2mathml converts it.

    Code spans and fenced code are left alone; math that does not convert stays as written.
    """
    store = Protected()
    text = store.code(store.fences(text, unescape=False), unescape=False)

    def convert(m: re.Match, display: bool) -> str:
        math = display_mathml(m.group(0)[2:-2]) if display else tex_to_mathml(m.group(0)[1:-1])
        return store.hide(m.group(0) if math is None else math)

    text = DISPLAY_MATH.sub(lambda m: convert(m, True), text)
    text = INLINE_MATH.sub(lambda m: convert(m, False), text)
    return store.restore(text)
