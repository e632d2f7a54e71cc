"""Image datasets as tensors with class names: real digits shipped offline, torchvision sets on request.

The default, ``digits``, is scikit-learn's copy of the UCI optical-recognition handwritten digits
(Alpaydin and Kaynak 1998): 1,797 images of 8x8 pixels with 17 grey levels, written by 13 people,
read from a file inside the installed scikit-learn (no network). MNIST, Fashion-MNIST and CIFAR-10
come through torchvision, only when it imports and the files are in `data_dir` (or `download=True`).
Images are float32 in [0, 1], shape (n, C, H, W); labels int64 in 0..K-1.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from .. import validate

SHIPPED = ("digits",)
TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
DATASETS = SHIPPED + tuple(TORCHVISION)
NUM_CLASSES = {"digits": 10, "mnist": 10, "fashion-mnist": 10, "cifar10": 10}

PROVENANCE = {
    "digits": "UCI optical recognition of handwritten digits (Alpaydin and Kaynak, 1998), the 1,797-image "
              "test part shipped with scikit-learn: 32x32 bitmaps from 13 writers, 4x4 blocks counted "
              "into 8x8 images of 17 grey levels",
    "mnist": "MNIST (LeCun et al., 1998): 70,000 28x28 handwritten digits, official 60,000/10,000 split",
    "fashion-mnist": "Fashion-MNIST (Xiao et al., 2017): 70,000 28x28 clothing images, 60,000/10,000 split",
    "cifar10": "CIFAR-10 (Krizhevsky, 2009): 60,000 32x32 colour images, official 50,000/10,000 split",
}


def default_data_dir() -> Path:
    """Where torchvision datasets are looked for: $POISONLAB_DATA, else ~/.cache/poisonlab/data."""
    return Path(os.environ.get("POISONLAB_DATA") or Path.home() / ".cache" / "poisonlab" / "data")


def require(name: str, data_dir=None, download: bool = False) -> None:
    """Raise a one-line ValueError naming the dataset unless `name` can be loaded here."""
    validate.choice("dataset", name, DATASETS)
    if name not in SHIPPED:
        _torchvision(name, None if data_dir is None else str(data_dir), bool(download))


def load_dataset(name: str = "digits", data_dir=None, download: bool = False, *, seed: int,
                 n_train: int | None = None, test_fraction: float = 0.2):
    """Train/test tensors and class names of image dataset `name` (see DATASETS).

    digits: a random `test_fraction` split drawn from torch.Generator(seed); torchvision sets keep
    their official split. `n_train`: keep a random subset of that many training images.
    """
    validate.choice("dataset", name, DATASETS)
    from .dataset import Dataset

    if name == "digits":
        X, y, classes = _digits()
        from .dataset import split
        test_fraction = validate.fraction("test_fraction", test_fraction)
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        X_train, y_train, X_test, y_test = split(X, y, test_fraction,
                                                 generator=torch.Generator().manual_seed(int(seed)))
    else:
        X_train, y_train, X_test, y_test, classes = _torchvision(name, None if data_dir is None else str(data_dir),
                                                                 bool(download))
    if n_train is not None:
        n_train = validate.positive_int("n_train", n_train)
        if n_train > len(y_train):
            raise ValueError(f"n_train must be at most {len(y_train)} for dataset {name!r}, got {n_train}")
        keep = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(int(seed) + 1))[:n_train]
        X_train, y_train = X_train[keep.sort().values], y_train[keep.sort().values]
    return Dataset(X_train=X_train, y_train=y_train.long(), X_test=X_test, y_test=y_test.long(),
                   params={}, mask=None, classes=list(classes))


@functools.lru_cache(maxsize=1)
def _digits():
    """scikit-learn's 8x8 digits, read from the file inside the installed package."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.as_tensor(d.target, dtype=torch.int64)
    return X, y, tuple(str(c) for c in d.target_names)


@functools.lru_cache(maxsize=4)
def _torchvision(name: str, data_dir, download: bool):
    """An official torchvision split, as float tensors in [0, 1]; failures become one-line ValueErrors."""
    try:  # torchvision is optional and may be installed against another torch build
        import torchvision  # noqa: F401
        from torchvision import datasets
    except Exception as e:  # noqa: BLE001 -- any import failure means "not available here"
        raise ValueError(f"dataset {name!r} needs torchvision, which cannot be imported here "
                         f"({type(e).__name__}); use --dataset digits (shipped offline)") from None
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    cls = getattr(datasets, TORCHVISION[name])
    try:
        train = cls(root=str(root), train=True, download=download)
        test = cls(root=str(root), train=False, download=download)
    except Exception as e:  # noqa: BLE001 -- missing files, failed download: one line for the user
        how = "and the download failed" if download else "(pass download=True / --download to fetch it)"
        raise ValueError(f"dataset {name!r} not found in {root} {how}: {str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                         f"use --dataset digits (shipped offline) or --data-dir") from None
    return (*_as_tensors(train), *_as_tensors(test), tuple(train.classes))


def _as_tensors(ds):
    """(X (n, C, H, W) float32 in [0, 1], y int64) from a torchvision dataset's raw arrays."""
    X = torch.as_tensor(ds.data)
    if X.ndim == 3:  # MNIST-like: (n, H, W) uint8
        X = X.unsqueeze(1)
    else:  # CIFAR: (n, H, W, C) uint8
        X = X.permute(0, 3, 1, 2)
    return X.float() / 255.0, torch.as_tensor(ds.targets, dtype=torch.int64)
