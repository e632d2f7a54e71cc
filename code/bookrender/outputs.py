"""Output folders of a render: which may be replaced, staging beside them, and the swap.

A render writes into a staging folder beside its output and swaps it in only once everything
succeeded, so a failed or interrupted render leaves the previous book as it was. It replaces only
a folder that a render made: one holding the stamp file `.poisonlab-render`, or a default output
folder of the book (`_book`, `_book-quick`, `_preview`, `_preview-quick`) holding an `index.html`
(a book made by `quarto render` itself). Anything else, and any folder that holds the project, its
sources, `.git`, the home folder or `/`, is refused with a ValueError naming `--output`.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

STAMP = ".poisonlab-render"
DEFAULTS = ("_book", "_book-quick", "_preview", "_preview-quick")
SOURCES = (".git", "code", "report", "tests", "benchmarks", ".ci", ".venv")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_target(out, root) -> Path:
    """`out` resolved, if a render may write there; else ValueError naming --output."""
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise ValueError(f"--output must be a folder path, got {out!r}")
    out, root = Path(out).expanduser().resolve(), Path(root).resolve()
    if out in (Path.home().resolve(), Path("/")) or root.is_relative_to(out):
        raise ValueError(f"--output {out} holds the project (or is the home folder or /): a render "
                         f"replaces its output folder, so give a new folder such as {root / '_book'}")
    if out.is_relative_to(root) and out != root:
        top = root / out.relative_to(root).parts[0]
        if top.is_file():
            raise ValueError(f"--output {out}: {top} is a file, not a folder")
        if out != top and top.name in SOURCES:
            raise ValueError(f"--output {out} lies inside the project's sources ({top.name}/): give a new folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file, not a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--output {out}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"--output {out}: {parent} is not writable")
            break
    if out.is_dir() and any(out.iterdir()) and not replaceable(out):
        raise ValueError(f"--output {out} is a folder that no render made (no {STAMP} file in it): "
                         f"a render replaces its output folder whole, so give a new or empty folder")
    return out


def replaceable(folder: Path) -> bool:
    """Made by a render: the stamp, or a default output folder holding a rendered book."""
    folder = Path(folder)
    if (folder / STAMP).is_file():
        return True
    return folder.name in DEFAULTS and (folder / "index.html").is_file()


def staging(out: Path) -> Path:
    """A new empty folder beside `out` (same file system, so the swap is a rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    # mkdtemp makes it 0700; the book is shared like any folder the user makes
    os.chmod(stage, (stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO) & ~_umask())
    return stage


def prepare(out, root) -> tuple[Path, Path]:
    """`out` checked (`check_target`) and a staging folder beside it; ValueError naming --output."""
    out = check_target(out, root)
    try:
        return out, staging(out)
    except OSError as e:
        raise ValueError(f"--output {out}: cannot write beside it ({e.strerror})") from None


def publish(new: Path, out: Path) -> None:
    """Stamp `new` and put it where `out` was; the previous output is removed only after the swap."""
    (new / STAMP).write_text("made by poisonlab render; a later render may replace this folder\n",
                             encoding="utf-8")
    os.chmod(new, (stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO) & ~_umask())
    backup = None
    if out.exists():
        if not replaceable(out) and any(out.iterdir()):
            raise ValueError(f"--output {out} is a folder that no render made: not replaced")
        backup = out.with_name(f".{out.name}.previous-{os.getpid()}")
        os.rename(out, backup)
    os.rename(new, out)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
