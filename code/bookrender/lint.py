"""Book hygiene: `check_book(root)` lists what would break or mislead in the rendered book.

Rules: `_quarto.yml` lists only existing files (and every chapter .qmd is listed); includes and
the bibliography exist; cell options are well-formed `#| key: value` YAML; labels are unique
across the book and have no underscores; figure cells have `fig-cap` and `fig-alt`, table cells
`tbl-cap`; every `@fig-`/`@tbl-`/`@eq-`/`@sec-` reference has exactly one label; no doubled
prefix ("Figure @fig-x" reads "Figure Figure 1"); every citation is in the bibliography.
Run it as `python -m bookrender.lint [ROOT]`.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import model, qmd

LABEL = re.compile(r"\{[^{}\n]*?#([^\s{}]+)[^{}\n]*\}")
DOUBLED = re.compile(r"\b(Figures?|Fig\.|Tables?|Tab\.|Equations?|Eqs?\.|Sections?|Sec\.)\s+\[?@(fig|tbl|eq|sec)-",
                     re.IGNORECASE)
CROSSREF = ("fig", "tbl", "eq", "sec")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SKIP_DIRS = {"_preview", "_book", "_freeze", ".venv", "node_modules", "site-packages"}


@dataclass
class Findings:
    """What the files of the book define and use, with where."""

    problems: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)  # label -> [where]
    refs: list = field(default_factory=list)  # (label, where)
    cites: list = field(default_factory=list)  # (key, where)
    includes: list = field(default_factory=list)  # Paths

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")


def blank(text: str) -> str:
    """`text` with fenced code, inline code and math replaced by spaces (newlines kept)."""
    text = qmd.without_fences(text)
    spans = [(s, e) for s, e, _, _ in qmd.code_spans(text)]
    chars = list(text)
    for start, end in spans:
        chars[start:end] = [c if c == "\n" else " " for c in text[start:end]]
    text = "".join(chars)
    for pattern in (qmd.DISPLAY_MATH, qmd.INLINE_MATH):
        text = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return text


def check_label(label, where: str, found: Findings) -> None:
    if not isinstance(label, str) or not label:
        found.add(where, f"label must be a non-empty string, got {label!r}")
        return
    if "_" in label:
        found.add(where, f"label {label!r} has an underscore (use hyphens: {label.replace('_', '-')!r})")
    found.labels.setdefault(label, []).append(where)


def check_code(block: qmd.Block, rel: str, found: Findings) -> None:
    """Option syntax and the label and captions of one code cell."""
    for line, message in block.problems:
        found.add(f"{rel}:{line}", message)
    options, where = block.options, f"{rel}:{block.line}"
    if "label" not in options:
        return
    label = options["label"]
    check_label(label, where, found)
    label = str(label)
    if label.startswith("fig-"):
        for key in ("fig-cap", "fig-alt"):
            if not options.get(key):
                found.add(where, f"figure cell {label} has no {key}")
    if label.startswith("tbl-") and not options.get("tbl-cap"):
        found.add(where, f"table cell {label} has no tbl-cap")


INLINE_AT_START = re.compile(r"^\s*`\{python\}")
FORMATTED = re.compile(r"^(book\.)?fmt\(")


# Quarto's inline math, but also when a digit follows: pandoc does not read that as math
MATH_ANY_END = re.compile(qmd.INLINE_MATH.pattern.replace("(?!\\d)", ""))


def digit_after_math(text: str) -> list[int]:
    """Line offsets where `$...$` closes right before a digit once inline values are in ($\\pm$1.5)."""
    text = qmd.without_fences(text)
    spans = [(s, e) for s, e, content, ticks in qmd.code_spans(text) if ticks == 1 and qmd.INLINE_EXPR.match(content)]
    for start, end in reversed(spans):  # an inline value prints digits: stand it in as one
        text = text[:start] + "1" + "\n" * text.count("\n", start, end) + text[end:]
    return [text.count("\n", 0, m.end()) for m in MATH_ANY_END.finditer(text) if text[m.end():m.end() + 1].isdigit()]


def unformatted_in_math(text: str) -> list[tuple[str, int]]:
    """(expression, line offset) of inline values inside `$...$`/`$$...$$` that skip `book.fmt`.

    Quarto inserts a plain `str` value markdown-escaped (`0\\.5`), a TeX accent inside math; `fmt`
    returns a `book.Number`, inserted as it is.
    """
    text, out = qmd.without_fences(text), []
    for pattern in (qmd.DISPLAY_MATH, qmd.INLINE_MATH):
        for m in pattern.finditer(text):
            out += [(expr, text.count("\n", 0, m.start()) + line)
                    for expr, line in qmd.inline_expressions(m.group(0)) if not FORMATTED.match(expr)]
    return out


def check_markdown(block: qmd.Block, path: Path, root: Path, rel: str, found: Findings) -> None:
    """Labels, references, citations, doubled prefixes and includes of one markdown run."""
    for offset, line in enumerate(block.text.split("\n")):
        if (m := qmd.INCLUDE.match(line)):
            target = qmd.include_target(m.group(1), path, root)
            if target.is_file():
                found.includes.append(target.resolve())
            else:
                found.add(f"{rel}:{block.line + offset}", f"included file {m.group(1)} not found")
    for offset, line in enumerate(block.text.split("\n")):
        if CONTROL.search(line):  # e.g. "\a" of "\alpha" written through a Python string: TeX stops on it
            found.add(f"{rel}:{block.line + offset}", "control character in the text (a backslash escape "
                                                       "that a program turned into a character?)")
        if INLINE_AT_START.match(line):
            # a value such as "1" followed by ". " would turn the line into a list item, in Quarto too
            found.add(f"{rel}:{block.line + offset}", "inline `{python}` expression at the start of a line: "
                                                       "move a word before it")
    for offset in digit_after_math(block.text):
        found.add(f"{rel}:{block.line + offset}", "inline math closed right before a number or an inline "
                                                   "value ($\\pm$`{python} x`): pandoc then reads no math; "
                                                   "write the symbol in plain text (±) or put the value inside")
    for expr, offset in unformatted_in_math(block.text):
        found.add(f"{rel}:{block.line + offset}", f"inline value `{{python}} {expr}` inside math: "
                                                   f"write `{{python}} book.fmt({expr})`")
    for offset, line in enumerate(blank(block.text).split("\n")):
        where = f"{rel}:{block.line + offset}"
        for m in LABEL.finditer(line):
            check_label(m.group(1), where, found)
        for m in DOUBLED.finditer(line):
            found.add(where, f"doubled prefix {m.group(0)!r}: Quarto writes the word itself "
                             f"(write @{m.group(2)}-..., or {m.group(1)} [-@{m.group(2)}-...])")
        for m in qmd.CITATION.finditer(line):
            key = m.group(2)
            kind = key.split("-")[0].lower()
            if kind in CROSSREF and "-" in key:
                found.refs.append((kind + key[len(kind):], where))
            else:
                found.cites.append((key, where))


def check_file(path: Path, root: Path, found: Findings) -> None:
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        source = qmd.read_qmd(path, root, includes=False)
    except (ValueError, OSError) as e:
        found.add(rel, str(e).replace(f"{path}: ", ""))
        return
    for block in source.blocks:
        if block.kind == "code":
            check_code(block, rel, found)
        else:
            check_markdown(block, path, root, rel, found)


def bibliography(config: dict, root: Path, found: Findings) -> dict | None:
    """The bibliography's entries (None when the book has none); missing files and duplicate keys."""
    names = config.get("bibliography")
    if not names:
        return None
    entries = {}
    for name in [names] if isinstance(names, str) else names:
        path = root / name
        if not path.is_file():
            found.add("_quarto.yml", f"bibliography {name} not found")
            continue
        keys = re.findall(r"@(?!comment|string|preamble)\w+\s*\{\s*([^,\s]+)\s*,", path.read_text(encoding="utf-8"),
                          flags=re.IGNORECASE)
        for key in sorted({k for k in keys if keys.count(k) > 1}):
            found.add(name, f"bibliography key {key!r} is defined {keys.count(key)} times")
        try:
            entries.update(qmd.read_bib(path))
        except ValueError as e:
            found.add(name, str(e))
    return entries


def unlisted(root: Path, files: list[Path]) -> list[Path]:
    """.qmd files of the project that are neither chapters nor included (underscore files are partials)."""
    out = []
    for path in sorted(root.rglob("*.qmd")):
        parts = path.relative_to(root).parts
        if any(p in SKIP_DIRS or p.startswith(".") for p in parts) or path.name.startswith("_"):
            continue
        if path.resolve() not in files:
            out.append(path)
    return out


def check_book(root) -> list[str]:
    """Every hygiene problem of the book at `root` (empty when clean), as 'file:line: message'."""
    root = Path(root).resolve()
    found = Findings()
    try:
        config = model.read_config(root)
    except (ValueError, OSError) as e:
        return [f"_quarto.yml: {e}"]
    entries = model.chapter_entries(config)
    if not entries:
        found.add("_quarto.yml", "book: chapters lists no file")
    files = []
    for entry in entries:
        path = (root / entry).resolve()
        if not path.is_file():
            found.add("_quarto.yml", f"chapter {entry} does not exist")
        elif path not in files:
            files.append(path)
    bib = bibliography(config, root, found)
    i = 0
    while i < len(files):  # includes found on the way are checked too
        check_file(files[i], root, found)
        files += [p for p in found.includes if p not in files]
        i += 1
    for path in unlisted(root, files):
        found.add(path.relative_to(root).as_posix(), "not listed in _quarto.yml (nor included)")
    for label, places in found.labels.items():
        if len(places) > 1:
            found.add(places[1], f"label {label} is defined {len(places)} times (also at {places[0]})")
    for label, where in found.refs:
        if label not in found.labels:
            found.add(where, f"reference @{label} has no matching label")
    if bib is not None:
        for key, where in found.cites:
            if key not in bib:
                found.add(where, f"citation @{key} is not in the bibliography")
    return found.problems


def main(argv=None) -> int:
    """`python -m bookrender.lint [ROOT]`: the problems, one a line; exit 1 when there are any."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(f"lint: error: usage: python -m bookrender.lint [ROOT], got {' '.join(args)}", file=sys.stderr)
        return 2
    try:
        root = Path(args[0]) if args else model.find_root()
        if not (root / "_quarto.yml").is_file():
            raise ValueError(f"no _quarto.yml in {root}: give the book's folder")
    except ValueError as e:
        print(f"lint: error: {e}", file=sys.stderr)
        return 2
    problems = check_book(root)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
