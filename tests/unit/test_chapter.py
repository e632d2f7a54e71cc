"""lab.Chapter: a chapter's typed sizes per profile, its named sweeps run once, its sweeps table."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from poisonlab import validate
from poisonlab.lab import chapter as lab_chapter
from poisonlab.lab.experiment import Experiment, Param


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


@dataclass(frozen=True)
class Sizes:
    repeats: int
    alphas: list


SIZES = {"quick": Sizes(2, [0.1, 0.2]), "full": Sizes(3, [0.1, 0.2, 0.3])}


def make_chapter(calls):
    def fn(configs):
        calls.append(len(configs))
        return [{"m": c["alpha"] * c["n"] + 1e-3 * c["seed"]} for c in configs]

    exp = Experiment("toy-chapter", fn, [Param("alpha", 0.1, check=validate.fraction),
                                         Param("n", 10, type=int, check=validate.positive_int, batch=False)], ["m"])
    return lab_chapter.Chapter(exp, SIZES, lambda S: {
        "alpha": lab_chapter.SweepSpec({"alpha": S.alphas}, {"n": 10}, S.repeats),
        "n": lab_chapter.SweepSpec({"n": [5, 20]}, {"alpha": 0.5}, S.repeats, seed=7)})


def test_sizes_and_specs_follow_the_profile():
    ch = make_chapter([])
    assert ch.sizes("quick") == SIZES["quick"] and ch.sizes("full").repeats == 3
    assert list(ch.specs("full")) == ["alpha", "n"] and ch.spec("alpha", "full").grid == {"alpha": [0.1, 0.2, 0.3]}
    assert ch.spec("n", "quick").runs == 2 * 2 and ch.spec("n", "quick").seed == 7
    with pytest.raises(ValueError, match="name must be one of alpha, n; got 'beta'"):
        ch.spec("beta", "quick")
    with pytest.raises(ValueError, match="missing full"):
        lab_chapter.Chapter(ch.experiment, {"quick": SIZES["quick"]})


def test_a_sweep_runs_once_per_process_and_profile():
    calls = []
    ch = make_chapter(calls)
    first = ch.sweep("n", "quick")
    assert ch.sweep("n", "quick") is first and len(calls) == 2  # one call per batch (n is batch=False)
    assert sorted(first.rows["seed"].unique()) == [7, 8]  # the spec's seed and repeats
    assert len(ch.sweep("n", "full").rows) == 2 * 3
    assert ch.memo("k", lambda: 1) == 1 and ch.memo("k", lambda: 2) == 1


def test_sweeps_table_names_grid_fixed_repeats_runs():
    t = make_chapter([]).sweeps_table("quick", base={"n": 10})
    assert t.to_dict("records") == [
        {"sweep": "alpha", "grid": "alpha (2)", "fixed": "", "repeats": 2, "runs": 4},
        {"sweep": "n", "grid": "n (2)", "fixed": "alpha=0.5", "repeats": 2, "runs": 4}]
    assert make_chapter([]).sweeps_table("quick").loc[0, "fixed"] == "n=10"
