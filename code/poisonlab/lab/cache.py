"""The on-disk result cache of the sweep runner: one JSON file per batch of configurations (and, for the
trained models that several studies reuse, one .pt file of tensors per batch: `tensors`).

A batch (the configurations passed to one `experiment.fn` call) is keyed by the experiment name,
its full list of resolved configurations (seeds included), the declared metric names, a hash of
the package source (every .py file under poisonlab that computes results, and the experiment's own chapter
package, by content), the torch, numpy, scipy and
scikit-learn versions, and the resolved user data folder ($POISONLAB_DATA
or its default, see `data_folder`):
editing the code re-runs the sweeps it could affect, and identical work is never repeated.
Writes are atomic (temp file in the same folder, fsync, os.replace), so an interrupted run leaves
either no file or the previous one. A file that cannot be read back exactly is ignored.

Folder: $POISONLAB_CACHE if set, else `<project root>/.cache/poisonlab` where the project root is
the nearest parent of the working directory holding `_quarto.yml`, else `~/.cache/poisonlab`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import warnings
from importlib import metadata
from pathlib import Path

from ..storage import atomic_write, cache_dir

FORMAT = 1  # bump when the file layout changes: old files are then simply misses

_SOURCE_HASH: dict = {}  # experiment name (None: the engine alone) -> its source hash


# Left out of the source hash: what computes no cached result (the command line, the book's figures and
# tables) and the chapters, each of which counts only for its own experiment's results.
LEFT_OUT = ("cli.py", "book/", "chapters/")


def _files_hash(root: Path, files) -> str:
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def source_hash(name: str | None = None) -> str:
    """SHA-256 of the .py files of the installed poisonlab package that compute results (paths and contents),
    and, for the experiment of a chapter (`name`, its CLI name), of that chapter's package and of the chapters
    it declares it uses (USES in its __init__.py); once per process.

    Editing one chapter re-runs none of another chapter's sweeps; editing the engine re-runs them all.
    """
    if name not in _SOURCE_HASH:
        root = Path(__file__).resolve().parents[1]
        files = [p for p in root.rglob("*.py") if "__pycache__" not in p.parts
                 and not p.relative_to(root).as_posix().startswith(LEFT_OUT)]
        module = _chapter_module(name)
        if module is not None:
            package = module.rsplit(".", 1)[0]
            for used in (package, *_uses(package)):  # the chapter and the chapters whose code it runs
                folder = root.joinpath(*used.split(".")[1:])
                files += [p for p in folder.rglob("*.py") if "__pycache__" not in p.parts]
        _SOURCE_HASH[name] = _files_hash(root, files)
    return _SOURCE_HASH[name]


def _uses(package: str) -> list[str]:
    """The packages of the chapters whose code chapter `package` imports (its __init__'s USES, their aliases)."""
    import importlib

    from . import experiment

    aliases = getattr(importlib.import_module(package), "USES", ())
    return [experiment.chapters()[a] for a in aliases]


def _chapter_module(name: str | None) -> str | None:
    if name is None:
        return None
    from . import experiment

    return experiment.modules().get(name)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def plain(value):
    """`value` as JSON-ready Python: tuples -> lists, numpy/torch scalars -> int/float, recursively."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy or torch scalar
        return value.item()
    if hasattr(value, "tolist"):  # numpy array or tensor
        return value.tolist()
    return value


def _canonical(obj) -> str:
    # repr() for anything JSON cannot write: unstable reprs only ever cause misses, never false hits
    return json.dumps(plain(obj), sort_keys=True, separators=(",", ":"), default=repr)


def data_folder() -> str:
    """The resolved user data folder (data.default_data_dir: $POISONLAB_DATA, else ~/.cache/poisonlab/data),
    absolute, so that two spellings of one folder share results."""
    from ..data.files import default_data_dir

    return str(default_data_dir().expanduser().resolve())


def key(name: str, configs: list[dict], metrics) -> str:
    """The cache key (hex SHA-256) of one batch of configurations of experiment `name`."""
    ident = {"format": FORMAT, "experiment": name, "configs": configs, "metrics": list(metrics),
             "source": source_hash(name), "torch": _version("torch"), "numpy": _version("numpy"),
             "scipy": _version("scipy"), "scikit-learn": _version("scikit-learn"), "data": data_folder()}
    return hashlib.sha256(_canonical(ident).encode()).hexdigest()


def path(name: str, configs: list[dict], metrics) -> Path:
    """Where the batch `configs` of experiment `name` is (or would be) cached."""
    folder = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"
    return cache_dir() / folder / f"{key(name, configs, metrics)}.json"


def load(name: str, configs: list[dict], metrics) -> list[dict[str, float]] | None:
    """The cached metrics of this batch (one dict per configuration), or None on a miss.

    Anything unreadable, of another layout, for other configurations or with non-finite
    values counts as a miss: it is recomputed and overwritten, never an error.
    """
    metrics = list(metrics)
    file = path(name, configs, metrics)
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    try:
        if (record["format"] != FORMAT or record["experiment"] != name or record["metrics"] != metrics
                or record["configs"] != json.loads(_canonical(configs))):
            return None
        rows = record["rows"]
        if not isinstance(rows, list) or len(rows) != len(configs):
            return None
        out = []
        for row in rows:
            if not isinstance(row, list) or len(row) != len(metrics):
                return None
            values = [float(v) for v in row]
            if not all(math.isfinite(v) for v in values) or any(isinstance(v, bool) for v in row):
                return None
            out.append(dict(zip(metrics, values)))
        return out
    except (KeyError, TypeError, ValueError):
        return None


def store(name: str, configs: list[dict], metrics, results: list[dict]) -> Path | None:
    """Cache the metrics `results` of this batch (rows as lists, in `metrics` order); None if unwritable.

    A cache that cannot be written (read-only folder, full disk) only costs a recomputation
    later, so it is a warning, not an error.
    """
    metrics = list(metrics)
    record = {"format": FORMAT, "experiment": name, "metrics": metrics, "configs": plain(configs),
              "rows": [[float(r[m]) for m in metrics] for r in results]}
    # allow_nan=False: a non-finite value must never reach the cache
    text = json.dumps(record, allow_nan=False, default=repr, indent=None)
    file = path(name, configs, metrics)
    try:
        atomic_write(file, text + "\n")
    except OSError as e:
        warnings.warn(f"poisonlab cache: could not write {file}: {e}", RuntimeWarning, stacklevel=2)
        return None
    return file


TENSORS = "<tensors>"  # the metric list of a tensor entry's key: it can never clash with a batch of metrics


def tensors(name: str, configs: list[dict], compute, *, cache: bool = True) -> dict:
    """The tensors (name -> Tensor, e.g. the state dicts of trained models) that `compute()` returns for the
    batch `configs` of experiment `name`: read from the cache when a file of the same key holds them, else
    computed and stored (torch.save, atomically). Keyed as a batch of metrics is (configurations, package
    source, library versions, data folder), so that a re-render reuses trained models and an edit of the code
    retrains them. A file that cannot be read back as finite tensors is a miss."""
    import io

    import torch

    file = path(name, configs, [TENSORS]).with_suffix(".pt")
    if cache:
        try:
            found = torch.load(file, map_location="cpu", weights_only=True)
            if (isinstance(found, dict) and found and all(isinstance(v, torch.Tensor) for v in found.values())
                    and all(bool(torch.isfinite(v).all()) for v in found.values() if v.is_floating_point())):
                return found
        except Exception:  # missing, truncated, or of another layout: recompute
            pass
    out = compute()
    if not isinstance(out, dict) or not out or not all(isinstance(v, torch.Tensor) for v in out.values()):
        raise ValueError("compute must return a non-empty dict of name -> Tensor")
    if cache:
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu().contiguous() for k, v in out.items()}, buffer)
        try:
            atomic_write(file, buffer.getvalue())
        except OSError as e:
            warnings.warn(f"poisonlab cache: could not write {file}: {e}", RuntimeWarning, stacklevel=2)
    return out


def clear(name: str | None = None) -> int:
    """Delete the cached results of experiment `name` (all experiments if None); the number of files removed."""
    root = cache_dir()
    folders = [root / re.sub(r"[^A-Za-z0-9_.-]", "_", name)] if name is not None else \
        [p for p in root.glob("*") if p.is_dir()]
    removed = 0
    for folder in folders:
        for file in [*folder.glob("*.json"), *folder.glob("*.pt")]:
            with contextlib.suppress(OSError):
                file.unlink()
                removed += 1
    return removed
