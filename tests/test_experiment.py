"""Experiment declarations: resolution, checks, batching keys, divergence reporting."""
import math

import pytest

from poisonlab import validate
from poisonlab.experiment import DivergenceError, Experiment, Param, ParameterError


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
