"""Data files on disk: the user's data folder, files shipped inside installed packages, checksums, the array cache.

A converted data set is cached once as an uncompressed .npz under `<cache_dir()>/data/`, named by the SHA-256
of the source files it came from: a changed source file is a new name, so a stale conversion is never read.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import warnings
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

FORMAT = 1  # bump when what a cached .npz holds changes: old files are then simply misses


def default_data_dir() -> Path:
    """The user's data folder: $POISONLAB_DATA, else ~/.cache/poisonlab/data."""
    return Path(os.environ.get("POISONLAB_DATA") or Path.home() / ".cache" / "poisonlab" / "data")


def data_dir_of(data_dir) -> Path:
    """`data_dir` as a Path (None: the default folder)."""
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ValueError(f"data_dir must be a folder path, got {data_dir!r}")
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def package_file(distribution: str, relative: str) -> Path | None:
    """A file shipped inside an installed distribution, found from its file list without importing it."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.as_posix() == relative:
            path = Path(f.locate())
            return path if path.is_file() else None
    return None


def find(folders, name: str) -> Path | None:
    """The first of `folder/name` or `folder/name.gz` that exists, over `folders` in order."""
    for folder in folders:
        for candidate in (Path(folder) / name, Path(folder) / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read(path: Path) -> bytes:
    """The bytes of `path`, uncompressed when it ends in .gz."""
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if str(path).endswith(".gz") else raw


def md5(content: bytes) -> str:
    """Hex MD5 of `content` (the checksum the IDX files are published with)."""
    return hashlib.md5(content).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes as stored (computed once per process while the file is unchanged)."""
    st = os.stat(path)
    return _sha256(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def check(label: str, got: str, expected: str, where, hint: str) -> None:
    """A one-line ValueError unless checksum `got` is `expected`."""
    if got != expected:
        raise ValueError(f"{label} in {where} fails its checksum ({got[:12]}... != {expected[:12]}...): "
                         f"the file is corrupt or not the official one; {hint}")


def cached(tag: str, sources, build) -> dict:
    """The arrays `build()` returns, cached by `tag` and the SHA-256 of the files `sources`."""
    h = hashlib.sha256(f"{FORMAT}:{tag}".encode())
    for path in sources:
        h.update(sha256_file(path).encode())
    return _cached(tag, h.hexdigest()[:32], build)


def _cached(tag: str, digest: str, build) -> dict:
    from ..storage import atomic_write, cache_dir

    file = cache_dir() / "data" / f"{tag}-{digest}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache file is rebuilt, never trusted
    arrays = build()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write(file, buf.getvalue())
    except OSError as e:
        warnings.warn(f"poisonlab data cache: could not write {file}: {e}", RuntimeWarning, stacklevel=3)
    return arrays
