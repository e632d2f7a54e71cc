"""The result cache: hits, misses on source/config change, atomic writes, corrupt files, its folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from poisonlab import storage
from poisonlab.lab import cache
from poisonlab.lab import sweep
from poisonlab.lab.experiment import Experiment, Param


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("POISONLAB_CACHE", str(root))
    return root


def make_counted(name="counted"):
    """An experiment that counts calls of fn; n is not batched, so each n is its own batch."""
    calls = []

    def fn(configs):
        calls.append(len(configs))
        return [{"m": c["a"] * c["n"] + float(np.random.default_rng(c["seed"]).standard_normal())}
                for c in configs]

    exp = Experiment(name, fn, [Param("a", 1.0), Param("n", 4, type=int, batch=False),
                                Param("hidden", (), type=int, nargs="*")], ["m"])
    return exp, calls


GRID = {"a": [0.5, 1.5], "n": [2, 3]}


def files(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


def test_hit_on_identical_config_and_source(folder):
    exp, calls = make_counted()
    first = sweep.run(exp, GRID, repeats=3, seed=5)
    assert calls == [6, 6] and first.cached == 0
    assert len(list(folder.rglob("*.json"))) == 2  # one file per batch
    second = sweep.run(exp, GRID, repeats=3, seed=5)
    assert calls == [6, 6]  # fn not called again
    assert second.cached == 2
    assert second.rows.equals(first.rows)  # floats survive the JSON round trip exactly
    # a batch shared with another sweep is reused as well
    sweep.run(exp, {"a": [0.5, 1.5], "n": [3]}, repeats=3, seed=5)
    assert calls == [6, 6]


def test_tuple_parameters_hit_too(folder):
    exp, calls = make_counted()
    a = sweep.run(exp, {"a": [1.0]}, repeats=2, fixed={"hidden": [8, 4]})
    b = sweep.run(exp, {"a": [1.0]}, repeats=2, fixed={"hidden": (8, 4)})
    assert calls == [2] and b.cached == 1
    assert b.rows["hidden"][0] == (8, 4) and b.rows.equals(a.rows)


def test_miss_after_source_change(folder, monkeypatch):
    exp, calls = make_counted()
    sweep.run(exp, GRID, repeats=2)
    monkeypatch.setattr(cache, "source_hash", lambda name=None: "0" * 64)
    res = sweep.run(exp, GRID, repeats=2)
    assert calls == [4, 4, 4, 4] and res.cached == 0
    sweep.run(exp, GRID, repeats=2)  # the edited source is now cached in turn
    assert len(calls) == 4


@pytest.mark.parametrize("change", [
    {"grid": {"a": [0.5, 1.25], "n": [2, 3]}},  # one value
    {"grid": {"a": [0.5, 1.5], "n": [2, 3]}, "seed": 1},  # the seeds
    {"grid": {"a": [0.5, 1.5], "n": [2, 3]}, "repeats": 3},  # the number of repeats
    {"grid": {"a": [0.5, 1.5], "n": [2, 3]}, "fixed": {"hidden": [2]}},  # a fixed parameter
])
def test_miss_after_config_change(folder, change):
    exp, calls = make_counted()
    sweep.run(exp, GRID, repeats=2)
    assert len(calls) == 2
    res = sweep.run(exp, change["grid"], repeats=change.get("repeats", 2), seed=change.get("seed", 0),
                    fixed=change.get("fixed"))
    assert len(calls) == 4 and res.cached == 0


def test_other_experiment_name_is_a_miss(folder):
    exp, calls = make_counted("one")
    other, other_calls = make_counted("two")
    sweep.run(exp, GRID, repeats=1)
    sweep.run(other, GRID, repeats=1)
    assert len(calls) == 2 and len(other_calls) == 2


def test_no_cache_neither_reads_nor_writes(folder):
    exp, calls = make_counted()
    sweep.run(exp, GRID, repeats=1, cache=False)
    assert files(folder) == []
    sweep.run(exp, GRID, repeats=1)
    sweep.run(exp, GRID, repeats=1, cache=False)
    assert len(calls) == 6


def test_file_is_plain_json_with_rows_as_lists(folder):
    exp, _ = make_counted()
    res = sweep.run(exp, {"a": [2.0]}, repeats=3, fixed={"hidden": [5]})
    (file,) = folder.rglob("*.json")
    record = json.loads(file.read_text())
    assert record["experiment"] == "counted" and record["metrics"] == ["m"]
    assert record["rows"] == [[v] for v in res.rows["m"]]
    assert [c["seed"] for c in record["configs"]] == [0, 1, 2]
    assert record["configs"][0]["hidden"] == [5]
    assert file.parent.name == "counted"


def test_interrupted_write_leaves_no_partial_file(folder, monkeypatch):
    target = folder / "x" / "result.json"

    class Crash(Exception):
        pass

    def crash(fd):
        raise Crash("power cut")

    monkeypatch.setattr(storage.os, "fsync", crash)
    with pytest.raises(Crash):
        cache.atomic_write(target, '{"complete": false}')
    assert files(folder / "x") == []  # neither the file nor a temp file

    monkeypatch.undo()
    cache.atomic_write(target, '{"complete": true}')
    monkeypatch.setattr(storage.os, "fsync", crash)
    with pytest.raises(Crash):
        cache.atomic_write(target, '{"complete": false}')
    assert files(folder / "x") == [target]  # the previous file, intact
    assert json.loads(target.read_text()) == {"complete": True}


def test_interrupted_sweep_recovers(folder, monkeypatch):
    exp, calls = make_counted()
    real = os.replace

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(storage.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(exp, GRID, repeats=2)
    assert [p for p in folder.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(storage.os, "replace", real)
    res = sweep.run(exp, GRID, repeats=2)
    assert res.cached == 0 and len(res.rows) == 8


@pytest.mark.parametrize("garbage", [
    "",  # empty (e.g. a disk filled up before the atomic writer existed)
    "{\"format\": 1, \"rows\": [[1.0",  # truncated
    b"\xff\xfe\x00 not UTF-8",
    "[1, 2, 3]",  # JSON, wrong shape
    None,  # the right layout with a NaN in it
    "wrong-length",  # the right layout, one row missing
    "other-configs",  # the right layout for other configurations
])
def test_corrupt_file_is_ignored_and_replaced(folder, garbage):
    exp, calls = make_counted()
    first = sweep.run(exp, {"a": [1.0]}, repeats=2)
    (file,) = folder.rglob("*.json")
    good = json.loads(file.read_text())
    if garbage is None:
        text = file.read_text().replace(str(good["rows"][0][0]), "NaN")
    elif garbage == "wrong-length":
        text = json.dumps({**good, "rows": good["rows"][:1]})
    elif garbage == "other-configs":
        text = json.dumps({**good, "configs": [{**c, "a": 9.0} for c in good["configs"]]})
    else:
        text = garbage
    file.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    again = sweep.run(exp, {"a": [1.0]}, repeats=2)
    assert calls == [2, 2] and again.cached == 0
    assert again.rows.equals(first.rows)
    assert json.loads(file.read_text()) == good  # rewritten whole
    assert sweep.run(exp, {"a": [1.0]}, repeats=2).cached == 1


def test_unwritable_cache_warns_and_still_returns(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("POISONLAB_CACHE", str(blocker / "cache"))
    exp, calls = make_counted()
    with pytest.warns(RuntimeWarning, match="could not write"):
        res = sweep.run(exp, {"a": [1.0]}, repeats=2)
    assert len(res.rows) == 2 and calls == [2]


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "env"))
    assert cache.cache_dir() == tmp_path / "env"
    monkeypatch.delenv("POISONLAB_CACHE")
    project = tmp_path / "book"
    deep = project / "report" / "sub"
    deep.mkdir(parents=True)
    (project / "_quarto.yml").write_text("project: {type: book}\n")
    monkeypatch.chdir(deep)
    assert cache.cache_dir() == project.resolve() / ".cache" / "poisonlab"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "poisonlab"


def test_source_hash_covers_the_package_once_per_process(monkeypatch):
    h = cache.source_hash()
    assert len(h) == 64 and int(h, 16) >= 0
    monkeypatch.setattr(cache, "_SOURCE_HASH", {})
    assert cache.source_hash() == h  # deterministic: same files, same hash
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real(self))
    monkeypatch.setattr(cache, "_SOURCE_HASH", {})
    cache.source_hash()
    assert {"sweep.py", "cache.py", "laws.py", "experiment.py", "__init__.py", "batched.py"} <= set(reads)
    assert not {"plots.py", "cli.py", "theory.py"} & set(reads)  # figures, command line, chapters: not the engine
    assert all(name.endswith(".py") for name in reads)
    reads.clear()
    cache.source_hash()
    assert reads == []  # computed once, then remembered


def test_key_depends_on_every_part():
    configs = [{"a": 1.0, "seed": 0}, {"a": 1.0, "seed": 1}]
    k = cache.key("e", configs, ["m"])
    assert k == cache.key("e", [dict(c) for c in configs], ["m"])
    assert k == cache.key("e", [{"seed": 0, "a": 1.0}, {"seed": 1, "a": 1.0}], ["m"])  # key order is no part
    assert k != cache.key("f", configs, ["m"])
    assert k != cache.key("e", configs[::-1], ["m"])
    assert k != cache.key("e", configs, ["m", "n"])
    assert k != cache.key("e", [{"a": 1.0 + 1e-15, "seed": 0}, configs[1]], ["m"])


def test_clear(folder):
    exp, calls = make_counted()
    sweep.run(exp, GRID, repeats=1)
    assert cache.clear("counted") == 2
    sweep.run(exp, GRID, repeats=1)
    assert len(calls) == 4


def test_source_hash_leaves_out_the_command_line_and_the_book(tmp_path, monkeypatch):
    # editing the command line or a figure helper must not re-run every sweep; editing the engine must
    package = Path(cache.__file__).resolve().parents[1]
    fake = tmp_path / "poisonlab"
    for name in ("lab/cache.py", "cli.py", "train/batched.py", "book/plots.py"):
        (fake / name).parent.mkdir(parents=True, exist_ok=True)
        (fake / name).write_text((package / name).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(cache, "__file__", str(fake / "lab" / "cache.py"))

    def fresh():
        monkeypatch.setattr(cache, "_SOURCE_HASH", {})
        return cache.source_hash()

    before = fresh()
    (fake / "cli.py").write_text("# edited\n", encoding="utf-8")
    (fake / "book" / "plots.py").write_text("# edited\n", encoding="utf-8")
    assert fresh() == before
    (fake / "train" / "batched.py").write_text("# edited\n", encoding="utf-8")  # a subpackage counts too
    assert fresh() != before


def test_source_hash_of_a_chapter_counts_its_own_package_only(monkeypatch):
    # the chapters' experiments: each hash covers the engine and its own chapter, not the others
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.as_posix()) or real(self))
    monkeypatch.setattr(cache, "_SOURCE_HASH", {})
    hashes = {name: cache.source_hash(name) for name in ("linear", "logistic")}
    assert hashes["linear"] != hashes["logistic"] != cache.source_hash()
    assert any("/chapters/linear_regression/" in r for r in reads)
    assert any("/chapters/logistic_regression/" in r for r in reads)
    assert not any("/chapters/image_classification/" in r for r in reads)


def test_key_covers_scipy_sklearn_and_the_data_folder(monkeypatch, tmp_path):
    configs = [{"a": 1.0, "seed": 0}]
    monkeypatch.setenv("POISONLAB_DATA", str(tmp_path / "data"))
    k = cache.key("e", configs, ["m"])
    monkeypatch.setenv("POISONLAB_DATA", str(tmp_path / "data" / ".." / "data"))  # another spelling, same folder
    assert cache.key("e", configs, ["m"]) == k
    monkeypatch.setenv("POISONLAB_DATA", str(tmp_path / "other"))
    assert cache.key("e", configs, ["m"]) != k
    monkeypatch.delenv("POISONLAB_DATA")
    assert cache.data_folder() == str((Path.home() / ".cache" / "poisonlab" / "data").resolve())  # not None
    monkeypatch.setenv("POISONLAB_DATA", str(tmp_path / "data"))
    real = cache._version
    for package in ("scipy", "scikit-learn", "torch", "numpy"):
        monkeypatch.setattr(cache, "_version", lambda p, package=package: "0.0" if p == package else real(p))
        assert cache.key("e", configs, ["m"]) != k, package


def test_tensors_are_computed_once_then_read_and_a_bad_file_is_a_miss(folder):
    import torch

    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(6.0).reshape(2, 3), "steps": torch.tensor([3, 4])}

    configs = [{"a": 1.0, "seed": 0}]
    first = cache.tensors("trained", configs, compute)
    again = cache.tensors("trained", configs, compute)
    assert len(calls) == 1 and torch.equal(first["w"], again["w"]) and torch.equal(again["steps"], first["steps"])
    cache.tensors("trained", [{"a": 2.0, "seed": 0}], compute)  # another configuration: another entry
    assert len(calls) == 2
    file = cache.path("trained", configs, [cache.TENSORS]).with_suffix(".pt")
    file.write_bytes(file.read_bytes()[:20])  # truncated: recomputed, never an error
    assert torch.equal(cache.tensors("trained", configs, compute)["w"], first["w"]) and len(calls) == 3
    cache.tensors("trained", configs, compute, cache=False)
    assert len(calls) == 4
    with pytest.raises(ValueError, match="compute must return"):
        cache.tensors("trained", [{"a": 3.0}], lambda: {"w": [1, 2]})
    assert cache.clear("trained") == 2


def test_a_chapter_key_covers_the_chapters_whose_code_it_runs():
    """The compression chapter runs the evasion chapter's models and attacks (USES): an edit there must re-run
    its sweeps, so the evasion package is part of its source hash, and no other chapter's package is."""
    from poisonlab.lab import cache as lab_cache

    assert lab_cache._uses("poisonlab.chapters.compression_robustness") == ["poisonlab.chapters.evasion"]
    assert lab_cache._uses("poisonlab.chapters.linear_regression") == []
