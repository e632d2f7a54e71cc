"""The boundary checks: each accepts its range and names the parameter when it refuses."""
import math

import pytest

from poisonlab import validate


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 1, 1.0])
def test_fraction_accepts_unit_interval(value):
    assert validate.fraction("alpha", value) == float(value)


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, math.inf, "x", None])
def test_fraction_rejects_and_names_parameter(value):
    with pytest.raises(ValueError, match="alpha"):
        validate.fraction("alpha", value)


@pytest.mark.parametrize("check,good,bad", [
    (validate.non_negative, [0, 2.5], [-1e-9, math.inf, math.nan]),
    (validate.positive, [1e-9, 3], [0, -1, math.inf]),
    (validate.finite, [-5, 0, 7.5], [math.inf, -math.inf, math.nan]),
])
def test_number_checks(check, good, bad):
    for v in good:
        assert check("sigma", v) == float(v)
    for v in bad:
        with pytest.raises(ValueError, match="sigma"):
            check("sigma", v)


def test_positive_int():
    assert validate.positive_int("n", 3) == 3
    assert validate.positive_int("n", 3.0) == 3
    for bad in (0, -2, 2.5, True, "3", None):
        with pytest.raises(ValueError, match="n must be a whole number >= 1"):
            validate.positive_int("n", bad)
    with pytest.raises(ValueError, match=">= 2"):
        validate.positive_int("n", 1, minimum=2)


def test_choice():
    assert validate.choice("loss", "l1", ("l1", "l2")) == "l1"
    with pytest.raises(ValueError, match="loss must be one of l1, l2"):
        validate.choice("loss", "l3", ("l1", "l2"))


def test_positive_int_accepts_numpy_integers():
    import numpy as np

    assert validate.positive_int("n", np.int64(5)) == 5
    assert validate.positive_int("n", np.float64(4.0)) == 4
    with pytest.raises(ValueError, match="n must be"):
        validate.positive_int("n", np.float64(4.5))


def test_finite_array_takes_tensors_and_lists_and_refuses_nan():
    import numpy as np
    import torch

    np.testing.assert_array_equal(validate.finite_array("x", torch.tensor([1.0, 2.0])), [1.0, 2.0])
    np.testing.assert_array_equal(validate.finite_array("x", [3, 4]), [3.0, 4.0])
    with pytest.raises(ValueError, match="x must be finite"):
        validate.finite_array("x", [1.0, math.nan])
    with pytest.raises(ValueError, match="x must be an array of numbers"):
        validate.finite_array("x", ["a"])


@pytest.mark.parametrize("value", [1e-300, 1e-39, 1e39, 1e300])
def test_positive32_refuses_what_float32_rounds_to_0_or_inf(value):
    with pytest.raises(ValueError, match="lr must be in .*float32"):
        validate.positive32("lr", value)


def test_positive32_keeps_float32_normals():
    assert validate.positive32("lr", 1e-30) == 1e-30 and validate.positive32("lr", 1e38) == 1e38


@pytest.mark.parametrize("check", [validate.scale, validate.non_negative_scale, validate.positive_scale])
def test_scales_must_square_finitely_in_float32(check):
    assert check("x", 1e15) == 1e15
    with pytest.raises(ValueError, match="x must be at most 1e\\+15"):
        check("x", 1e16)


def test_widths_and_optional():
    assert validate.widths("hidden", [3, 4]) == (3, 4) and validate.widths("hidden", []) == ()
    with pytest.raises(ValueError, match="hidden"):
        validate.widths("hidden", [3, 0])
    check = validate.optional(validate.fraction)
    assert check("drop", None) is None and check("drop", 0.5) == 0.5
    with pytest.raises(ValueError, match="drop"):
        check("drop", 2)
