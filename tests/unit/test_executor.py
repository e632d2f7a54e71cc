"""Sweeps on a Dask cluster (lab.executor): the same table as a local run, the same cache, a worker lost
mid-sweep, and no Dask at all unless asked for."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from poisonlab.errors import DivergenceError, ParameterError
from poisonlab.lab import executor, sweep
from poisonlab.lab.experiment import Experiment, Param

ROOT = Path(__file__).resolve().parents[2]


def _toy(configs):
    """Metrics from each configuration's own seeded stream; `b` is not batched, so each b is a batch."""
    time.sleep(0.05)
    out = []
    for c in configs:
        if c["b"] < 0:
            return [{"m": float("nan")} for _ in configs]
        if c["die"] and c["b"] == 2 and not os.path.exists(c["die"]):
            Path(c["die"]).touch()
            os._exit(1)  # the worker process dies holding this batch; Dask must rerun it elsewhere
        rng = np.random.default_rng([c["seed"], int(c["b"]), int(1000 * c["a"])])
        out.append({"m": float(c["a"] * c["b"] + rng.standard_normal())})
    return out


TOY = Experiment("toy-executor", _toy, [Param("a", 0.1), Param("b", 1, int, batch=False),
                                         Param("die", "", str, batch=False)], ["m"])
GRID = {"a": [0.1, 0.5], "b": [1, 2, 3, 4]}


@pytest.fixture(scope="module")
def dask():
    pytest.importorskip("dask.distributed")
    yield
    executor.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _files(folder: Path) -> list:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_executor_and_workers_are_checked(monkeypatch):
    monkeypatch.delenv("POISONLAB_EXECUTOR", raising=False)
    assert executor.resolve(None) == "local" and executor.resolve("dask") == "dask"
    monkeypatch.setenv("POISONLAB_EXECUTOR", "dask")
    assert executor.resolve(None) == "dask"
    monkeypatch.setenv("POISONLAB_EXECUTOR", "spark")
    with pytest.raises(ParameterError, match="POISONLAB_EXECUTOR must be one of local, dask"):
        executor.resolve(None)
    with pytest.raises(ParameterError, match="executor must be one of"):
        sweep.run(TOY, GRID, repeats=1, executor="threads", cache=False)
    assert executor.workers(3) == 3
    monkeypatch.setenv("POISONLAB_DASK_WORKERS", "2")
    assert executor.workers(None) == 2
    monkeypatch.setenv("POISONLAB_DASK_WORKERS", "two")
    with pytest.raises(ParameterError, match="POISONLAB_DASK_WORKERS must be a whole number"):
        executor.workers(None)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="workers"):
            executor.workers(bad)


def test_a_local_sweep_never_imports_dask():
    code = ("import sys; from poisonlab.lab import sweep; from poisonlab.chapters.linear_regression.experiment "
            "import EXPERIMENT as E; sweep.run(E, {'alpha': [0.0, 0.1]}, repeats=1, cache=False, progress=False); "
            "print(any(m == 'dask' or m.startswith(('dask.', 'distributed')) for m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "code")}
    env.pop("POISONLAB_EXECUTOR", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_dask_gives_the_local_table_and_the_same_cache(dask, cache):
    local = sweep.run(TOY, GRID, repeats=3, cache=False, progress=False)
    remote = sweep.run(TOY, GRID, repeats=3, progress=False, executor="dask", workers=2)
    assert remote.batches == 4 and remote.cached == 0
    assert remote.rows.equals(local.rows)  # bit for bit: same seeds, same batches
    stored = _files(cache)
    assert len(stored) == 4  # one entry per batch, under the keys of a local run
    again = sweep.run(TOY, GRID, repeats=3, progress=False)  # local, from the cache the cluster filled
    assert again.cached == 4 and again.rows.equals(local.rows) and _files(cache) == stored


def test_a_partly_cached_sweep_resumes(dask, cache):
    sweep.run(TOY, {"a": [0.1, 0.5], "b": [1, 2]}, repeats=2, progress=False)  # half the batches
    rest = sweep.run(TOY, {"a": [0.1, 0.5], "b": [1, 2, 3, 4]}, repeats=2, progress=False, executor="dask",
                     workers=2)
    assert (rest.cached, rest.batches) == (2, 4)
    assert rest.rows.equals(sweep.run(TOY, {"a": [0.1, 0.5], "b": [1, 2, 3, 4]}, repeats=2, cache=False,
                                      progress=False).rows)


def test_a_worker_lost_mid_sweep_loses_and_duplicates_nothing(dask, cache, tmp_path):
    flag = str(tmp_path / "died")
    local = sweep.run(TOY, GRID, repeats=2, cache=False, progress=False)  # die = "": nobody dies
    remote = sweep.run(TOY, GRID, repeats=2, progress=False, executor="dask", workers=2, fixed={"die": flag})
    assert os.path.exists(flag)  # a worker did die on batch b = 2
    assert remote.rows.drop(columns="die").equals(local.rows.drop(columns="die"))
    assert len(_files(cache)) == remote.batches == 4


def test_an_error_in_a_task_reaches_the_caller(dask, cache):
    with pytest.raises(DivergenceError, match="non-finite m") as e:
        sweep.run(TOY, {"a": [0.1], "b": [1, -1]}, repeats=2, progress=False, executor="dask", workers=2)
    assert [c["b"] for c in e.value.configs] == [-1, -1]  # the offending configurations travel back
    assert len(_files(cache)) == 1  # the batch that finished is kept


def test_a_chapter_experiment_on_dask_is_bit_identical(dask, cache):
    from poisonlab.chapters.image_classification.experiment import EXPERIMENT

    grid = {"model": ["linear", "mlp"], "alpha": [0.0, 0.3]}
    fixed = {"epochs": 2}
    local = sweep.run(EXPERIMENT, grid, repeats=2, cache=False, progress=False, fixed=fixed)
    remote = sweep.run(EXPERIMENT, grid, repeats=2, cache=False, progress=False, fixed=fixed, executor="dask",
                       workers=2)
    assert remote.batches >= 2 and remote.rows.equals(local.rows)


def test_cli_executor_flags(dask, cache, capsys):
    from poisonlab import cli

    for argv, message in ((["--executor", "spark"], "argument --executor: executor must be one of local, dask"),
                          (["--executor", "dask", "--workers", "0"], "argument --workers: workers must be a whole")):
        assert cli.main(["run", "linear", "--repeats", "2", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"poisonlab: error: {message}") and err.count("\n") == 1
    runs = []
    for argv in ([], ["--executor", "dask", "--workers", "2"]):
        assert cli.main(["run", "logistic", "--repeats", "3", "--json", "--no-cache", *argv]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1]  # the same JSON, bit for bit
