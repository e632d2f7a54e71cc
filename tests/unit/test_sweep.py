"""sweep.run against tiny closed-form experiments: order, seeds, batching, CIs, the CLI record, bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from poisonlab import stats, validate
from poisonlab.lab import sweep
from poisonlab.errors import DivergenceError, ParameterError
from poisonlab.lab.experiment import Experiment, Param


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # every test gets its own cache folder: no test sees another's results
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


def noise(config) -> float:
    """Seeded standard normal noise that depends on the seed only (common random numbers)."""
    return float(np.random.default_rng(config["seed"]).standard_normal())


def closed_form(config) -> dict:
    # a known function of the parameters plus seeded noise
    return {"mse": config["alpha"] ** 2 * config["n"] + 0.1 * noise(config),
            "acc": 1.0 - config["alpha"]}


def make_toy(fn=None, calls=None, name="toy", metrics=("mse", "acc")):
    """alpha (batched), n (not batched: one fn call per n), hidden (a tuple parameter)."""
    def default_fn(configs):
        if calls is not None:
            calls.append([dict(c) for c in configs])
        return [closed_form(c) for c in configs]

    params = [Param("alpha", 0.1, check=validate.fraction),
              Param("n", 10, type=int, check=validate.positive_int, batch=False),
              Param("hidden", (), type=int, nargs="*")]
    return Experiment(name, fn or default_fn, params, list(metrics))


def test_rows_in_grid_times_repeat_order_with_seeds():
    exp = make_toy()
    res = sweep.run(exp, {"alpha": [0.0, 0.2, 0.4], "n": [10, 20]}, repeats=3, seed=7, cache=False)
    rows = res.rows
    assert list(rows.columns) == ["alpha", "n", "hidden", "seed", "mse", "acc"]
    assert len(rows) == 3 * 2 * 3
    expected = [(a, n, 7 + r) for a in (0.0, 0.2, 0.4) for n in (10, 20) for r in range(3)]
    assert list(zip(rows["alpha"], rows["n"], rows["seed"])) == expected
    assert all(h == () for h in rows["hidden"])
    # metrics reassembled onto the right rows although fn saw them grouped by n
    for _, row in rows.iterrows():
        want = closed_form({"alpha": row["alpha"], "n": row["n"], "seed": row["seed"]})
        assert row["mse"] == want["mse"] and row["acc"] == want["acc"]


def test_one_fn_call_per_batch_key_group():
    calls = []
    exp = make_toy(calls=calls)
    res = sweep.run(exp, {"alpha": [0.0, 0.2, 0.4], "n": [10, 20, 30]}, repeats=2, cache=False)
    assert len(calls) == 3 == res.batches  # three values of the batch=False parameter n
    for group in calls:
        assert len(group) == 3 * 2
        assert len({c["n"] for c in group}) == 1
        # grid order within a group
        assert [(c["alpha"], c["seed"]) for c in group] == [(a, s) for a in (0.0, 0.2, 0.4) for s in (0, 1)]
    assert [g[0]["n"] for g in calls] == [10, 20, 30]
    # only batched parameters varying: a single call for the whole sweep
    calls.clear()
    sweep.run(exp, {"alpha": [0.0, 0.1, 0.2, 0.3]}, repeats=4, cache=False)
    assert len(calls) == 1 and len(calls[0]) == 16


def test_every_config_is_resolved_and_complete():
    calls = []
    exp = make_toy(calls=calls)
    sweep.run(exp, {"alpha": np.linspace(0, 0.5, 2)}, repeats=1, fixed={"hidden": [8, 4]}, cache=False)
    for c in calls[0]:
        assert set(c) == {"alpha", "n", "hidden", "seed"}
        assert c["n"] == 10 and c["hidden"] == (8, 4)
        assert type(c["alpha"]) is float  # numpy scalars from linspace arrive as Python floats


def test_fn_cannot_alter_the_recorded_configs():
    def fn(configs):
        out = [closed_form(c) for c in configs]
        for c in configs:
            c["alpha"] = 99.0
        return out

    res = sweep.run(make_toy(fn), {"alpha": [0.1, 0.2]}, repeats=2, cache=False)
    assert list(res.rows["alpha"]) == [0.1, 0.1, 0.2, 0.2]


def test_summary_matches_scipy_t_intervals():
    res = sweep.run(make_toy(), {"alpha": [0.1, 0.3], "n": [10, 50]}, repeats=5, cache=False)
    summary = res.summary()
    assert list(summary.columns) == ["alpha", "n", "hidden", "mse_mean", "mse_lo", "mse_hi",
                                     "acc_mean", "acc_lo", "acc_hi", "count"]
    assert len(summary) == 4
    for _, point in summary.iterrows():
        values = res.rows[(res.rows["alpha"] == point["alpha"]) & (res.rows["n"] == point["n"])]["mse"]
        lo, hi = sps.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=sps.sem(values))
        assert point["mse_mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert point["mse_lo"] == pytest.approx(lo, rel=1e-12)
        assert point["mse_hi"] == pytest.approx(hi, rel=1e-12)
        assert point["count"] == 5
        # a metric with no spread: a zero-width interval, not NaN
        assert point["acc_lo"] == point["acc_hi"] == pytest.approx(1 - point["alpha"])


def test_summary_by_pools_rows_and_counts_them():
    exp = Experiment("plain", lambda cs: [{"m": c["a"] + noise(c)} for c in cs],
                     [Param("a", 0.0), Param("b", 0.0)], ["m"])
    res = sweep.run(exp, {"a": [1.0, 2.0], "b": [0.0, 1.0, 2.0]}, repeats=4, cache=False)
    assert list(res.summary()["count"]) == [4] * 6
    pooled = res.summary(by="a")
    assert list(pooled.columns) == ["a", "m_mean", "m_lo", "m_hi", "count"]
    assert list(pooled["a"]) == [1.0, 2.0] and list(pooled["count"]) == [12, 12]
    values = res.rows[res.rows["a"] == 2.0]["m"]
    assert pooled["m_mean"][1] == pytest.approx(values.mean())
    assert len(res.summary(by=["a", "b"])) == 6
    with pytest.raises(ValueError, match="by"):
        res.summary(by="m")
    with pytest.raises(ValueError, match="by"):
        res.summary(by="nope")


def test_mean_ci_is_the_student_t_interval():
    x = np.random.default_rng(3).normal(2.0, 0.5, size=9)
    mean, lo, hi = stats.mean_ci(x)
    ref = sps.t.interval(0.95, 8, loc=x.mean(), scale=sps.sem(x))
    assert (mean, lo, hi) == pytest.approx((x.mean(), *ref), rel=1e-12)
    ref90 = sps.t.interval(0.9, 8, loc=x.mean(), scale=sps.sem(x))
    assert stats.mean_ci(x, level=0.9)[1:] == pytest.approx(ref90, rel=1e-12)
    assert stats.mean_ci([4.5]) == (4.5, 4.5, 4.5)  # one value: no error estimate, no NaN
    for bad in ([], [1.0, math.nan], [1.0, math.inf]):
        with pytest.raises(ValueError, match="values"):
            stats.mean_ci(bad)
    for level in (0.0, 1.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="level"):
            stats.mean_ci(x, level=level)


def test_mean_ci_with_bounds_is_the_logit_interval_inside_the_range():
    x = np.array([0.9, 0.97, 0.99, 1.0, 0.95])
    mean, lo, hi = stats.mean_ci(x, bounds=(0, 1))
    # reference: the t-interval of the mean on the logit scale, the delta method's standard error
    u = x.mean()
    half = sps.t.ppf(0.975, 4) * sps.sem(x) / (u * (1 - u))
    ref = sps.logistic.cdf(sps.logistic.ppf(u) + np.array([-half, half]))
    assert mean == pytest.approx(u) and (lo, hi) == pytest.approx(tuple(ref), rel=1e-12)
    assert 0 < lo < mean < hi < 1 and stats.mean_ci(x)[2] > 1  # the plain t-interval leaves the range
    # an affine range maps to the same interval
    assert stats.mean_ci(100 * x, bounds=(0, 100))[1:] == pytest.approx((100 * lo, 100 * hi), rel=1e-12)
    assert stats.mean_ci([1.0, 1.0, 1.0], bounds=(0, 1)) == (1.0, 1.0, 1.0)  # no spread at the end
    # a half-bounded range clips the t-interval
    assert stats.mean_ci([0.0, 0.0, 3.0], bounds=(0, math.inf))[1] == 0.0
    for bad in ((1, 0), (0,), "ab", (math.nan, 1)):
        with pytest.raises(ValueError, match="bounds"):
            stats.mean_ci(x, bounds=bad)
    with pytest.raises(ValueError, match="bounds"):
        stats.mean_ci([0.5, 1.5], bounds=(0, 1))  # a value outside the range is a bug upstream, not clipped


def test_record_schema_for_the_cli():
    res = sweep.run(make_toy(), {"alpha": [0.25]}, repeats=4, seed=3, fixed={"hidden": (16, 8)}, cache=False)
    record = res.record()
    assert set(record) == {"experiment", "params", "metrics"}
    assert record["experiment"] == "toy"
    assert record["params"] == {"alpha": 0.25, "n": 10, "hidden": [16, 8]}
    assert set(record["metrics"]) == {"mse", "acc"}
    for name, m in record["metrics"].items():
        assert set(m) == {"mean", "ci95", "values"}
        assert len(m["values"]) == 4 and all(type(v) is float for v in m["values"])
        assert m["values"] == list(res.rows[name])
        mean, lo, hi = stats.mean_ci(m["values"])
        assert (m["mean"], m["ci95"]) == (mean, [lo, hi])
    # exactly JSON, no NaN anywhere
    assert json.loads(json.dumps(record, allow_nan=False)) == record

    one = sweep.run(make_toy(), {"alpha": [0.25]}, repeats=1, cache=False).record()
    m = one["metrics"]["mse"]
    assert m["ci95"] == [m["mean"], m["mean"]] and len(m["values"]) == 1

    many = sweep.run(make_toy(), {"alpha": [0.1, 0.2]}, repeats=2, cache=False)
    with pytest.raises(ValueError, match="one-point"):
        many.record()


def test_same_seed_same_rows_other_seed_other_rows():
    grid = {"alpha": [0.1, 0.3], "n": [5, 9]}
    a = sweep.run(make_toy(), grid, repeats=3, seed=11, cache=False).rows
    b = sweep.run(make_toy(), grid, repeats=3, seed=11, cache=False).rows
    c = sweep.run(make_toy(), grid, repeats=3, seed=12, cache=False).rows
    assert a.equals(b)
    assert not a["mse"].equals(c["mse"])
    # seed + r: repeats overlap between base seeds 11 and 12
    assert list(c["seed"][:3]) == [12, 13, 14]
    assert a["mse"][1] == c["mse"][0]


def test_bad_value_fails_before_anything_runs():
    calls = []
    exp = make_toy(calls=calls)
    with pytest.raises(ParameterError, match="alpha") as err:
        sweep.run(exp, {"alpha": [0.1, 0.2, 1.5]}, repeats=2, cache=False)
    assert err.value.name == "alpha"
    with pytest.raises(ParameterError, match="n must be") as err:
        sweep.run(exp, {"alpha": [0.1], "n": [10, 0]}, repeats=2, cache=False)
    assert err.value.name == "n"
    with pytest.raises(ParameterError, match="bogus"):
        sweep.run(exp, {"alpha": [0.1]}, repeats=1, fixed={"bogus": 1}, cache=False)
    assert calls == []


@pytest.mark.parametrize("grid, match", [
    ({}, "grid"),
    ({"alpha": []}, r"grid\['alpha'\]"),
    ({"alpha": np.array([])}, r"grid\['alpha'\]"),
    ({"beta": [0.1]}, "grid.*beta"),
    ({"seed": [1, 2]}, "grid.*seed"),
    ({"alpha": 0.1}, r"grid\['alpha'\]"),
    ({"alpha": "0.1"}, r"grid\['alpha'\]"),
    ([("alpha", [0.1])], "grid"),
])
def test_bad_grid(grid, match):
    with pytest.raises(ValueError, match=match):
        sweep.run(make_toy(), grid, repeats=1, cache=False)


@pytest.mark.parametrize("kw, match", [
    ({"repeats": 0}, "repeats"), ({"repeats": -2}, "repeats"), ({"repeats": 1.5}, "repeats"),
    ({"repeats": True}, "repeats"), ({"repeats": "3"}, "repeats"),
    ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": "0"}, "seed"),
    ({"fixed": {"alpha": 0.2}}, "alpha"), ({"fixed": {"seed": 3}}, "seed"), ({"fixed": [1]}, "fixed"),
])
def test_bad_arguments(kw, match):
    args = {"repeats": 2, **kw}
    with pytest.raises(ValueError, match=match):
        sweep.run(make_toy(), {"alpha": [0.1]}, cache=False, **args)


def test_experiment_must_be_an_experiment():
    with pytest.raises(ValueError, match="experiment"):
        sweep.run("toy", {"alpha": [0.1]}, repeats=1)


def test_metric_named_like_a_parameter_is_rejected():
    exp = Experiment("clash", lambda cs: [{"a": 1.0} for _ in cs], [Param("a", 0.0)], ["a"])
    with pytest.raises(ValueError, match="'a'"):
        sweep.run(exp, {"a": [1.0]}, repeats=1, cache=False)


def test_non_finite_metric_is_a_divergence_error(tmp_path):
    def fn(configs):
        return [{"mse": math.inf if c["alpha"] > 0.3 else 1.0, "acc": 0.5} for c in configs]

    with pytest.raises(DivergenceError, match="mse") as err:
        sweep.run(make_toy(fn), {"alpha": [0.1, 0.4, 0.5]}, repeats=2)
    assert len(err.value.configs) == 4
    assert {c["alpha"] for c in err.value.configs} == {0.4, 0.5}
    assert not list((tmp_path / "cache").rglob("*.json"))  # nothing cached for a failed batch

    nan = make_toy(lambda cs: [{"mse": 1.0, "acc": float("nan")} for _ in cs])
    with pytest.raises(DivergenceError, match="acc"):
        sweep.run(nan, {"alpha": [0.1]}, repeats=1, cache=False)


def test_bad_fn_output_is_reported():
    short = make_toy(lambda cs: [closed_form(c) for c in cs[:-1]])
    with pytest.raises(RuntimeError, match="1 results for 2"):
        sweep.run(short, {"alpha": [0.1]}, repeats=2, cache=False)
    missing = make_toy(lambda cs: [{"mse": 1.0} for _ in cs])
    with pytest.raises(RuntimeError, match="acc"):
        sweep.run(missing, {"alpha": [0.1]}, repeats=2, cache=False)
    text = make_toy(lambda cs: [{"mse": "high", "acc": 1.0} for _ in cs])
    with pytest.raises(RuntimeError, match="mse"):
        sweep.run(text, {"alpha": [0.1]}, repeats=1, cache=False)


def test_tensor_and_numpy_metrics_become_floats():
    torch = pytest.importorskip("torch")
    exp = make_toy(lambda cs: [{"mse": torch.tensor(2.5), "acc": np.float32(0.5)} for _ in cs])
    res = sweep.run(exp, {"alpha": [0.1]}, repeats=2, cache=False)
    assert res.rows["mse"].dtype == float and list(res.rows["mse"]) == [2.5, 2.5]
    json.dumps(res.record(), allow_nan=False)


def test_progress_bar_stays_out_of_output(capsys, monkeypatch):
    made = []

    class Spy:
        def __init__(self, *a, **kw):
            made.append(kw)

        def update(self, k):
            pass

        def close(self):
            pass

    import tqdm
    monkeypatch.setattr(tqdm, "tqdm", Spy)
    grid = {"alpha": [0.1], "n": [1, 2, 3]}
    sweep.run(make_toy(), grid, repeats=1, cache=False, progress=False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    sweep.run(make_toy(), grid, repeats=1, cache=False)
    assert made == []
    monkeypatch.delenv("TQDM_DISABLE")
    sweep.run(make_toy(), grid, repeats=1, cache=False)
    # the bar counts batches and disables itself where stderr is not a terminal (rendered notebooks)
    assert len(made) == 1 and made[0]["total"] == 3 and made[0]["disable"] is None
    monkeypatch.undo()
    monkeypatch.setenv("POISONLAB_CACHE", "/nonexistent-unused")
    sweep.run(make_toy(), grid, repeats=1, cache=False)  # the real tqdm, stderr not a terminal
    assert capsys.readouterr().err == ""


def full_toy(pair_choices=(0, 1, 2, 3)):
    """Parameters of every kind the CLI passes as a one-point grid: None, bool, choices, tuples."""
    params = [Param("alpha", 0.1, check=validate.fraction),
              Param("n", 10, type=int, check=validate.positive_int, batch=False),
              Param("hidden", (), type=int, nargs="*"),
              Param("pair", (0, 1), type=int, nargs=2, choices=pair_choices),
              Param("loss", "mse", type=str, choices=("mse", "l1")),
              Param("margin", None),
              Param("clean", False, type=bool)]
    return Experiment("full", lambda cs: [closed_form(c) for c in cs], params, ["mse", "acc"])


def test_one_point_grid_of_every_parameter_like_the_cli():
    exp = full_toy()
    params = exp.resolve(alpha=0.3, pair=(2, 3), hidden=[4], margin=0.5)
    res = sweep.run(exp, grid={k: [v] for k, v in params.items()}, repeats=3, seed=2)
    record = res.record()
    assert record["params"] == {"alpha": 0.3, "n": 10, "hidden": [4], "pair": [2, 3], "loss": "mse",
                                "margin": 0.5, "clean": False}
    assert [round(v, 12) for v in record["metrics"]["mse"]["values"]] == \
        [round(closed_form({"alpha": 0.3, "n": 10, "seed": s})["mse"], 12) for s in (2, 3, 4)]
    again = sweep.run(exp, grid={k: [v] for k, v in params.items()}, repeats=3, seed=2)
    assert again.cached == 1 and again.record() == record
    res = sweep.run(exp, grid={"margin": [None]}, repeats=1)
    assert res.rows["margin"][0] is None and res.record()["params"]["margin"] is None


def test_cli_run_prints_the_record(monkeypatch, capsys):
    from poisonlab import cli
    from poisonlab.lab import experiment

    exp = full_toy()  # choices of a nargs parameter apply to each element, as in argparse
    monkeypatch.setattr(experiment, "available", lambda: ["full"])
    monkeypatch.setattr(experiment, "get", lambda name: exp)
    assert cli.main(["run", "full", "--alpha", "0.2", "--pair", "2", "3", "--repeats", "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["params"]["pair"] == [2, 3] and record["params"]["alpha"] == 0.2
    assert len(record["metrics"]["mse"]["values"]) == 2
    assert cli.main(["run", "full", "--alpha", "1.5", "--json"]) == 2
    assert "--alpha" in capsys.readouterr().err
    assert cli.main(["run", "full", "--seed", "-1", "--json"]) == 2
    assert "seed" in capsys.readouterr().err


def test_max_batch_splits_groups_into_chunks():
    calls = []

    def fn(configs):
        calls.append(len(configs))
        return [{"m": c["a"]} for c in configs]

    exp = Experiment("chunked", fn, [Param("a", 0.0)], ["m"], max_batch=4)
    res = sweep.run(exp, {"a": [1.0, 2.0, 3.0]}, repeats=3, cache=False)
    assert calls == [4, 4, 1]
    assert list(res.rows["m"]) == [1.0] * 3 + [2.0] * 3 + [3.0] * 3


def test_intervals_stay_in_the_metric_range():
    exp = Experiment("clip", lambda cs: [{"m": 0.01 if c["seed"] == 0 else 1.0} for c in cs],
                     [Param("a", 1.0)], ["m"], ranges={"m": (0.0, 1.0)})
    res = sweep.run(exp, {"a": [1.0]}, repeats=2, cache=False, progress=False)
    assert res.record(ranges={})["metrics"]["m"]["ci95"][0] < 0  # the raw t-interval of 2 repeats leaves [0, 1]
    lo, hi = res.record()["metrics"]["m"]["ci95"]  # the experiment's ranges by default: the logit interval
    assert 0.0 < lo < 0.505 < hi < 1.0
    row = res.summary().iloc[0]
    assert (row.m_lo, row.m_hi) == (lo, hi)


def test_rows_where_values_floats_and_predicates():
    import pandas as pd

    rows = pd.DataFrame({"solver": ["sgd", "exact", "sgd", "sgd"], "alpha": [0.1, 0.1, 0.1 + 1e-12, 0.3],
                         "n": [10, 10, 20, 40], "seed": [0, 0, 1, 1]})
    assert list(stats.rows_where(rows, solver="sgd", alpha=0.1).index) == [0, 2]  # floats by np.isclose
    assert list(stats.rows_where(rows, n=lambda n: n > 15).index) == [2, 3]
    assert stats.rows_where(rows).equals(rows)
    with pytest.raises(ValueError, match="'loss' is not a column"):
        stats.rows_where(rows, loss="l1")
    with pytest.raises(ValueError, match="no rows"):
        stats.rows_where(rows, solver="exact", n=40)


def test_summarize_groups_with_t_intervals_in_order_or_sorted():
    import pandas as pd

    rows = pd.DataFrame({"g": ["b"] * 3 + ["a"] * 2, "v": [1.0, 2.0, 6.0, 4.0, 4.0]})
    s = stats.summarize(rows, "g", "v")
    assert list(s["g"]) == ["b", "a"] and list(s["count"]) == [3, 2]  # first appearance
    assert (s.loc[0, "v_mean"], s.loc[0, "v_lo"], s.loc[0, "v_hi"]) == stats.mean_ci([1.0, 2.0, 6.0])
    assert s.loc[1, "v_lo"] == s.loc[1, "v_hi"] == 4.0  # no spread
    t = stats.summarize(rows, ["g"], ["v"], sort=True, count="n", level=0.5)
    assert list(t["g"]) == ["a", "b"] and list(t["n"]) == [2, 3]
    assert t.loc[1, "v_hi"] == pytest.approx(stats.mean_ci([1.0, 2.0, 6.0], 0.5)[2])
