"""`data.load`: every real data set of the book through one call, offline, checksummed, converted once.

Data sets: digits (scikit-learn's 8x8 UCI digits), mnist, fashion-mnist (28x28 images) and adult (UCI census
income, with sex and race aside). Where the files are looked for, in order: the user's data folder (`data_dir`,
else $POISONLAB_DATA, else ~/.cache/poisonlab/data) holding the official files; the copies installed packages
ship (see data.mnist, data.tabular); a download, only with download=True. Nothing is downloaded by default.
Images are float32 in [0, 1] (uint8 / 255), shape (n, 1, H, W); labels int64 in 0..K-1.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import validate
from . import files, mnist, tabular
from .dataset import Dataset, generator, split as random_split, train_size


@dataclass(frozen=True)
class Info:
    """What a data set is before loading it: classes, input shape, split sizes, provenance and licence."""

    name: str
    classes: tuple
    shape: tuple  # one input's shape
    sizes: dict  # split -> number of examples
    provenance: str
    licence: str
    seeded: bool = False  # the train/test split is drawn from a seed (no official split)

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.classes)


_DIGITS = tuple(str(d) for d in range(10))
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_MNIST_SIZES = {"train": 50_000, "val": 10_000, "trainval": 60_000, "test": 10_000}
_SPLIT_NOTE = ("; train is the first 50,000 images of the official training set and val its last 10,000 (the "
               "split of the classic mnist.pkl.gz), trainval all 60,000")
INFO = {i.name: i for i in (
    Info("digits", _DIGITS, (1, 8, 8), {"all": 1797, "train": train_size(1797), "test": 1797 - train_size(1797)},
         "UCI optical recognition of handwritten digits (Alpaydin and Kaynak, 1998), the 1,797-image test part "
         "shipped with scikit-learn: 32x32 bitmaps from 13 writers, 4x4 blocks counted into 8x8 images of 17 grey "
         "levels; train/test a random 80/20 split drawn from the seed",
         "CC BY 4.0 (UCI Machine Learning Repository); the copy inside scikit-learn (BSD-3-Clause)", seeded=True),
    Info("mnist", _DIGITS, (1, 28, 28), _MNIST_SIZES,
         "MNIST (LeCun, Bottou, Bengio and Haffner, 1998): 70,000 28x28 handwritten digits, official "
         "60,000/10,000 train/test split" + _SPLIT_NOTE,
         "CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)"),
    Info("fashion-mnist", _FASHION, (1, 28, 28), _MNIST_SIZES,
         "Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 70,000 28x28 greyscale Zalando article images, official "
         "60,000/10,000 train/test split" + _SPLIT_NOTE.replace(" (the split of the classic mnist.pkl.gz)", ""),
         "MIT (Zalando SE)"),
    Info("adult", tabular.CLASSES, (84,), {"train": 32_561, "test": 16_281},  # (80,) with missing="drop"
         "UCI Adult census income (Becker and Kohavi, 1996), extracted from the 1994 US Census: 48,842 people, "
         "income >50K or not, the standard adult.data/adult.test split; sex and race kept aside",
         "CC BY 4.0 (UCI Machine Learning Repository)"),
)}
DATASETS = tuple(INFO)
IMAGES = ("digits", "mnist", "fashion-mnist")


@dataclass(frozen=True)
class Split:
    """One split of a data set: inputs X, labels y, and what a chapter needs to say where they come from."""

    X: Tensor
    y: Tensor
    name: str
    split: str
    classes: tuple
    source: str  # where the files were read from
    files: dict = dataclasses.field(default_factory=dict)  # path -> SHA-256 of the file read
    features: tuple | None = None  # tabular: the input columns' names
    sensitive: dict = dataclasses.field(default_factory=dict)  # attribute -> (n,) int64 group codes, not in X
    groups: dict = dataclasses.field(default_factory=dict)  # attribute -> group names, indexed by the codes

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def info(self) -> Info:
        """The data set's Info (provenance, licence, classes)."""
        return INFO[self.name]


def info(name: str) -> Info:
    """The Info of data set `name` (see DATASETS)."""
    return INFO[validate.choice("dataset", name, DATASETS)]


def load(name: str, split: str = "train", *, data_dir=None, download: bool = False, seed: int | None = None,
         n: int | None = None, test_fraction: float = 0.2, missing: str = "category") -> Split:
    """Split `split` of data set `name` (see Info.sizes for the splits), optionally a stratified subset of n.

    digits: train/test is a random `test_fraction` split drawn from `seed`; the others keep their official
    split. n: a stratified random subset of that many examples (needs `seed`). missing: adult only, how "?"
    values are handled ("category" or "drop", see data.tabular).
    """
    spec = info(name)
    split = validate.choice("split", split, tuple(spec.sizes))
    missing = validate.choice("missing", missing, tabular.MISSING)
    if missing != "category" and name != "adult":
        raise ValueError(f"missing is only used with dataset 'adult', got dataset {name!r}")
    if n is not None:
        n = validate.positive_int("n", n)
    g = None
    if (spec.seeded and split != "all") or n is not None:
        if seed is None:
            raise ValueError(f"seed must be given for {'a subset (n)' if n is not None else f'the {name} split'}")
        g = generator(seed)
    key = None if data_dir is None else str(files.data_dir_of(data_dir))
    extra = {}
    if name == "digits":
        X, y = _digits()
        if split != "all":
            if not 0.0 < validate.fraction("test_fraction", test_fraction) < 1.0:
                raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
            X_train, y_train, X_test, y_test = random_split(X, y, test_fraction, generator=g)
            X, y = (X_train, y_train) if split == "train" else (X_test, y_test)
        prov = {"source": "shipped: scikit-learn (sklearn/datasets/data/digits.csv.gz)", "files": {}}
    elif name == "adult":
        arrays, prov = _adult(key, bool(download), missing)
        X, y = arrays[f"X_{split}"], arrays[f"y_{split}"]
        extra = {"features": arrays["features"], "sensitive": {a: arrays[f"{a}_{split}"] for a in tabular.SENSITIVE},
                 "groups": arrays["groups"]}
    else:
        arrays, prov = _images(name, key, bool(download))
        X, y = _image_split(arrays, split)
    if n is not None:
        if n > len(y):
            raise ValueError(f"n must be at most {len(y)} (the {name} {split} split), got {n}")
        keep = _stratified(y, n, g)
        X, y = X[keep], y[keep]
        extra["sensitive"] = {a: v[keep] for a, v in extra.get("sensitive", {}).items()}
    return Split(X=X, y=y, name=name, split=split, classes=spec.classes, source=prov["source"],
                 files=dict(prov["files"]), **extra)


def require(name: str, data_dir=None, download: bool = False) -> None:
    """Raise the one-line error `load` would (unknown name, files missing or corrupt), else return None."""
    if info(name).name != "digits":  # digits ship inside scikit-learn: nothing to look for
        load(name, "test", data_dir=data_dir, download=download)


def stratified_subset(y: Tensor, n: int, *, seed: int) -> Tensor:
    """Sorted indices of n examples of labels y drawn without replacement, each class in proportion to its count."""
    y = torch.as_tensor(y)
    n = validate.positive_int("n", n)
    if n > len(y):
        raise ValueError(f"n must be at most {len(y)} (the number of labels), got {n}")
    return _stratified(y, n, generator(seed))


def train_test(name: str, *, seed: int, n_train: int | None = None, data_dir=None, download: bool = False,
               test_fraction: float = 0.2) -> Dataset:
    """The Dataset an experiment trains and tests on: digits' seeded split, or trainval/test of the others.

    n_train: a stratified random subset of the training part, drawn from `seed`.
    """
    spec = info(name)
    if name == "adult":
        raise ValueError("dataset must be an image data set for train_test; load adult with data.load")
    fit = "train" if spec.seeded else "trainval"
    train = load(name, fit, data_dir=data_dir, download=download, seed=seed, test_fraction=test_fraction)
    test = load(name, "test", data_dir=data_dir, download=download, seed=seed, test_fraction=test_fraction)
    X, y = train.X, train.y
    if n_train is not None:
        n_train = validate.positive_int("n_train", n_train)
        if n_train > len(y):
            raise ValueError(f"n_train must be at most {len(y)} for dataset {name!r}, got {n_train}")
        keep = _stratified(y, n_train, generator(seed + 1))
        X, y = X[keep], y[keep]
    return Dataset(X_train=X, y_train=y, X_test=test.X, y_test=test.y, params={}, mask=None, classes=list(spec.classes))


def _stratified(y: Tensor, n: int, g: torch.Generator) -> Tensor:
    """n indices, per class floor(n p_k) plus one for the largest remainders (ties: lower class), drawn with g."""
    classes, counts = torch.unique(y, return_counts=True)
    exact = counts.double() * n / len(y)
    take = exact.floor().long()
    order = torch.argsort(-(exact - take), stable=True)
    take[order[: n - int(take.sum())]] += 1
    picks = []
    for c, k in zip(classes.tolist(), take.tolist()):
        where = torch.nonzero(y == c).flatten()
        picks.append(where[torch.randperm(len(where), generator=g)[:k]])
    return torch.cat(picks).sort().values


def _image_split(arrays: dict, split: str):
    if split == "test":
        return arrays["X_test"], arrays["y_test"]
    cut = {"train": slice(0, 50_000), "val": slice(50_000, 60_000), "trainval": slice(0, 60_000)}[split]
    return arrays["X_train"][cut], arrays["y_train"][cut]  # views: splits share the loaded tensors


@functools.lru_cache(maxsize=4)  # once per process: every seed and chapter cell shares these tensors
def _images(name: str, data_dir, download: bool):
    arrays, prov = mnist.arrays(name, data_dir, download)
    out = {k: torch.from_numpy(v).unsqueeze(1).float().div_(255.0) if k.startswith("X") else
           torch.from_numpy(v.astype("int64")) for k, v in arrays.items()}
    return out, prov


@functools.lru_cache(maxsize=4)
def _adult(data_dir, download: bool, missing: str):
    arrays, prov = tabular.arrays(data_dir, download, missing)
    out = {k: torch.from_numpy(v) for k, v in arrays.items() if v.dtype.kind in "fi"}
    out["features"] = tuple(str(f) for f in arrays["features"])
    out["groups"] = {a: tuple(str(v) for v in arrays[f"groups_{a}"]) for a in tabular.SENSITIVE}
    return out, prov


@functools.lru_cache(maxsize=1)
def _digits():
    """scikit-learn's 8x8 digits, read from the file inside the installed package."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return X, torch.as_tensor(d.target, dtype=torch.int64)
