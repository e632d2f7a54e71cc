"""Where the package keeps what it computes (the cache folder), and how it writes a file so that a reader
never sees half of it. Folder: $POISONLAB_CACHE if set, else `<project root>/.cache/poisonlab` where the
project root is the nearest parent of the working directory holding `_quarto.yml`, else
`~/.cache/poisonlab`."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder (see module docstring); not created until something is written."""
    env = os.environ.get("POISONLAB_CACHE")
    if env:
        return Path(env).expanduser()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "_quarto.yml").is_file():
            return folder / ".cache" / "poisonlab"
    return Path.home() / ".cache" / "poisonlab"


def atomic_write(target: Path, text: str | bytes) -> None:
    """Write `text` (str, or bytes as given) to `target` atomically: temp file in its folder, fsync, os.replace."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8")) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache may be shared
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # make the rename itself durable; not every platform can open a folder
    with contextlib.suppress(OSError):
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
