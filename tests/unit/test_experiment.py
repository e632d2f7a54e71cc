"""Experiment declarations: resolution, checks, batching keys, divergence reporting."""
import math

import pytest

from poisonlab import validate
from poisonlab.errors import DivergenceError, ParameterError
from poisonlab.lab.experiment import Experiment, Param


def _fn(configs):
    return [{"value": c["alpha"] * c["scale"] + c["seed"]} for c in configs]


EXP = Experiment(
    name="toy",
    fn=_fn,
    params=[
        Param("alpha", 0.1, float, "poisoned fraction", check=validate.fraction),
        Param("scale", 2.0, float, "scale", check=validate.positive),
        Param("hidden", (), int, "widths", nargs="*", batch=False),
        Param("loss", "l2", str, "loss", choices=("l1", "l2"), batch=False),
    ],
    metrics=["value"],
)


def test_resolve_fills_defaults_and_checks():
    c = EXP.resolve(alpha=0.5)
    assert c == {"alpha": 0.5, "scale": 2.0, "hidden": (), "loss": "l2"}
    with pytest.raises(ParameterError, match="alpha must be in") as e:
        EXP.resolve(alpha=2.0)
    assert e.value.name == "alpha"
    with pytest.raises(ParameterError, match="loss must be one of"):
        EXP.resolve(loss="l3")
    with pytest.raises(ParameterError, match="no parameter 'beta'"):
        EXP.resolve(beta=1)


def test_batch_key_separates_shape_parameters_only():
    a, b = EXP.resolve(alpha=0.1), EXP.resolve(alpha=0.9, scale=3.0)
    assert EXP.batch_key(a) == EXP.batch_key(b)
    assert EXP.batch_key(a) != EXP.batch_key(EXP.resolve(hidden=[4]))


def test_call_runs_one_configuration():
    assert EXP(seed=3, alpha=0.5) == {"value": 4.0}


def test_non_finite_metric_is_an_error_with_its_configuration():
    bad = Experiment("nan", lambda cs: [{"m": math.nan} for _ in cs], [Param("alpha", 0.1)], ["m"])
    with pytest.raises(DivergenceError, match="non-finite m") as e:
        bad(seed=1)
    assert e.value.configs[0]["seed"] == 1


# ---------------------------------------------------------------- resources: memory and time of a run

from poisonlab.lab import cost, experiment as _exp


def _costly(bytes_, seconds):
    return Experiment("costly", _fn, [Param("n", 10, int, check=validate.positive_int),
                                      Param("epochs", 5, int, check=validate.positive_int)], ["m"],
                      cost=lambda config, repeats: cost.Cost(bytes_ * repeats, seconds, "epochs", "n"))


def test_memory_beyond_the_limit_is_refused_naming_its_parameter(monkeypatch):
    monkeypatch.setenv(cost.MEMORY_ENV, str(1e9))
    exp = _costly(6e8, 1.0)
    assert cost.check_cost(exp, exp.resolve(), repeats=1).bytes == 6e8
    with pytest.raises(ParameterError, match="needs about 1.12 GB of memory, more than the 0.931 GB") as err:
        cost.check_cost(exp, exp.resolve(), repeats=2)
    assert err.value.name == "n"  # the memory's parameter


def test_time_beyond_the_limit_needs_yes(monkeypatch):
    monkeypatch.setenv(cost.MEMORY_ENV, str(1e12))
    monkeypatch.setenv(cost.TIME_ENV, "60")
    exp = _costly(1.0, 7200.0)
    with pytest.raises(ParameterError, match="about 2 hours .*--yes") as err:
        cost.check_cost(exp, exp.resolve(), repeats=1)
    assert err.value.name == "epochs"
    assert cost.check_cost(exp, exp.resolve(), repeats=1, yes=True).seconds == 7200.0


def test_available_memory_reads_the_machine(monkeypatch):
    monkeypatch.delenv(cost.MEMORY_ENV, raising=False)
    assert 0 < cost.available_memory() < math.inf
    monkeypatch.setenv(cost.MEMORY_ENV, "12345")
    assert cost.available_memory() == 12345.0


def test_blame_names_the_parameter_most_above_its_typical_value():
    sizes = {"n": 1000, "dim": 10, "hidden": 128}
    assert cost.blame({"n": 2000, "dim": 10, "hidden": ()}, sizes) == "n"
    assert cost.blame({"n": 2000, "dim": 10, "hidden": (1000, 1000)}, sizes) == "hidden"


@pytest.mark.parametrize("name", ["linear", "logistic", "images"])
def test_every_experiment_estimates_its_defaults_as_small(name):
    exp = _exp.get(name)
    cost = exp.cost(exp.resolve(), 5)
    assert 0 < cost.bytes < 2 * 1024**3 and 0 < cost.seconds < 60
    assert exp.poisoned(exp.resolve()) > 0 and exp.notes(exp.resolve()) == []


def test_seed_streams_are_distinct_per_stream_and_repeat():
    s = _exp.seed_streams(3, 1_000_003, ("data", "attack", "model", "split"))
    assert s == {"data": 3, "attack": 1_000_006, "model": 2_000_009, "split": 3_000_012}
    assert _exp.seed_streams(0, 10) == {"data": 0, "attack": 10, "model": 20}
