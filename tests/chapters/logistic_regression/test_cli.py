"""`poisonlab run logistic`: the CLI contract (one JSON object, every parameter, reproducible, bad input -> exit 2)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import clitools
from poisonlab import cli
from poisonlab.chapters.logistic_regression import experiment as L_exp

# small and fast: 200 points, 3 epochs, 3 repeats
FAST = ["--n", "200", "--epochs", "3", "--repeats", "3"]
FLAGS = {"--n", "--dim", "--x-dist", "--near", "--bias", "--alpha", "--flip", "--margin", "--side", "--reference",
         "--defense", "--drop", "--knn-k", "--knn-threshold", "--trim", "--solver", "--l2", "--epochs", "--lr",
         "--batch-size", "--hidden", "--continue-from-clean"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


def run_json(capsys, *args):
    return clitools.run_json(capsys, "logistic", *FAST, *args)


def test_json_record_has_every_parameter_and_metric(capsys):
    record = run_json(capsys)
    clitools.check_record(record, L_exp.EXPERIMENT, repeats=3)
    assert record["params"]["n"] == 200 and record["params"]["epochs"] == 3
    for required in ("test_accuracy", "weight_norm", "angle", "poisoned_fraction"):
        assert required in record["metrics"]


def test_every_flag_is_offered(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "logistic", "--help"])
    text = capsys.readouterr().out
    for flag in FLAGS | {"--repeats", "--seed", "--json", "--save-data", "--no-cache"}:
        assert flag in text, flag


def test_same_flags_give_identical_json(capsys):
    args = ("--alpha", "0.3", "--flip", "one-sided", "--margin", "0.6", "--seed", "5")
    first = run_json(capsys, *args)
    second = run_json(capsys, *args, "--no-cache")  # recomputed, not read back from the cache
    assert first == second


def test_poisoned_fraction_is_exact(capsys):
    record = run_json(capsys, "--alpha", "0.25")
    n_train = 200 - round(0.2 * 200)
    assert record["metrics"]["poisoned_fraction"]["values"] == [round(0.25 * n_train) / n_train] * 3


def test_flags_change_the_result(capsys):
    clean = run_json(capsys, "--alpha", "0", "--epochs", "20")
    reversed_ = run_json(capsys, "--alpha", "1", "--epochs", "20")
    # every label flipped: the classifier is reversed, its accuracy is one minus the clean one's (mirror symmetry)
    assert clean["metrics"]["test_accuracy"]["mean"] > 0.85
    assert reversed_["metrics"]["test_accuracy"]["mean"] < 0.15
    assert reversed_["metrics"]["angle"]["mean"] > 2.5  # near pi: w_hat points the other way


@pytest.mark.parametrize("args", [
    ("--flip", "boundary", "--margin", "0.5"),
    ("--flip", "boundary",),
    ("--flip", "one-sided", "--side", "0", "--margin", "0.6"),
    ("--flip", "most-confident", "--reference", "true"),
    ("--flip", "most-confident",),
    ("--x-dist", "mixture", "--near", "0.3"),
    ("--x-dist", "gaussian", "--dim", "3", "--bias", "0.5", "--solver", "exact"),
    ("--defense", "loss-filter", "--drop", "0.1"),
    ("--defense", "knn-filter", "--knn-k", "5"),
    ("--defense", "knn-filter", "--knn-threshold", "0.5"),
    ("--defense", "median",),
    ("--defense", "trimmed-mean", "--trim", "0.2"),
    ("--hidden", "8", "--batch-size", "25"),
    ("--continue-from-clean",),
    ("--alpha", "0", "--solver", "exact", "--l2", "0.01"),
], ids=lambda a: " ".join(a))
def test_options_run(capsys, args):
    record = run_json(capsys, *args)
    assert all(np.isfinite(m["mean"]) for m in record["metrics"].values())
    if "--margin" in args or args == ("--flip", "boundary"):
        assert record["metrics"]["margin_used"]["mean"] > 0


def test_hidden_layers_are_reported(capsys):
    record = run_json(capsys, "--hidden", "8", "4")
    assert record["params"]["hidden"] == [8, 4]


def test_save_data_writes_the_first_repeat(capsys, tmp_path):
    path = tmp_path / "data.npz"
    run_json(capsys, "--alpha", "0.1", "--flip", "boundary", "--seed", "7", "--save-data", str(path))
    saved = np.load(path)
    assert {"X_train", "y_train", "X_test", "y_test", "mask", "w", "b", "margin", "config"} <= set(saved.files)
    assert saved["X_train"].shape == (160, 2) and saved["y_test"].shape == (40,)
    assert saved["mask"].sum() == round(0.1 * 160)
    # the flipped points are the nearest the boundary: within the margin recorded
    z = np.abs(saved["X_train"] @ saved["w"] + saved["b"])
    assert np.all(z[saved["mask"]] < saved["margin"]) and np.all(z[~saved["mask"]] > saved["margin"] * 0.999)
    config = json.loads(str(saved["config"]))
    clean = L_exp.make_data({**L_exp.EXPERIMENT.resolve(**{k: v for k, v in config.items() if k != "seed"}), "seed": 7})
    flipped = saved["mask"]
    np.testing.assert_array_equal(saved["y_train"][~flipped], clean.y_train.numpy()[~flipped])
    np.testing.assert_array_equal(saved["y_train"][flipped], 1 - clean.y_train.numpy()[flipped])


@pytest.mark.parametrize("args, flag", [
    (("--alpha", "1.5"), "--alpha"),
    (("--alpha", "-0.1"), "--alpha"),
    (("--n", "4"), "--n"),
    (("--n", "ten"), "--n"),
    (("--dim", "0"), "--dim"),
    (("--x-dist", "cauchy"), "--x-dist"),
    (("--bias", "inf"), "--bias"),
    (("--bias", "nan"), "--bias"),
    (("--flip", "nearest"), "--flip"),
    (("--margin", "0.2"), "--margin"),                                    # random flips take no margin
    (("--flip", "most-confident", "--margin", "0.2"), "--margin"),
    (("--flip", "boundary", "--margin", "-1"), "--margin"),
    (("--flip", "boundary", "--margin", "0"), "--margin"),                # a margin that selects no point
    (("--flip", "boundary", "--alpha", "0.5", "--margin", "0.05"), "--alpha"),  # more flips than points within it
    (("--flip", "one-sided", "--alpha", "0.6"), "--alpha"),              # more than the points labelled 1
    (("--flip", "one-sided", "--side", "2"), "--side"),
    (("--side", "1"), "--side"),
    (("--reference", "true"), "--reference"),
    (("--reference", "oracle", "--flip", "most-confident"), "--reference"),
    (("--near", "0.2"), "--near"),
    (("--x-dist", "mixture", "--near", "0"), "--near"),
    (("--defense", "sanitize"), "--defense"),
    (("--drop", "0.1"), "--drop"),
    (("--defense", "loss-filter", "--drop", "1.5"), "--drop"),
    (("--defense", "loss-filter", "--drop", "1"), "--drop"),              # nothing left to train on
    (("--defense", "knn-filter", "--alpha", "1"), "--alpha"),             # drop defaults to alpha
    (("--knn-threshold", "0.5"), "--knn-threshold"),
    (("--defense", "knn-filter", "--knn-k", "500"), "--knn-k"),
    (("--defense", "knn-filter", "--knn-threshold", "0.5", "--drop", "0.1"), "--drop"),
    (("--defense", "trimmed-mean", "--trim", "0.5"), "--trim"),
    (("--defense", "median", "--solver", "exact"), "--defense"),
    (("--hidden", "8", "--solver", "exact"), "--hidden"),
    (("--hidden", "0"), "--hidden"),
    (("--continue-from-clean", "--solver", "exact"), "--continue-from-clean"),
    (("--l2", "0.1"), "--l2"),
    (("--solver", "exact", "--alpha", "0"), "--l2"),                    # separable data: no MLE without a ridge
    (("--solver", "exact", "--l2", "-1"), "--l2"),
    (("--solver", "newton"), "--solver"),
    (("--epochs", "0"), "--epochs"),
    (("--batch-size", "0"), "--batch-size"),
    (("--lr", "0"), "--lr"),
    (("--lr", "-1"), "--lr"),
    (("--repeats", "0"), "repeats"),
], ids=lambda a: " ".join(a) if isinstance(a, tuple) else a)
def test_bad_input_is_one_line_naming_the_flag(capsys, args, flag):
    assert flag in clitools.one_error_line(capsys, ["run", "logistic", *FAST, *args])


# ---------------------------------------------------------------- reliability: bounds, filters, notes

@pytest.mark.parametrize("args, flag", [
    (("--x-dist", "mixture", "--near", "1e300"), "--near"),  # overflowed in the data (OverflowError)
    (("--bias", "1e300"), "--bias"),
    (("--solver", "exact", "--l2", "1e300"), "--l2"),
    (("--lr", "1e39"), "--lr"),
    (("--lr", "1e-300"), "--lr"),
    (("--knn-k", "1000", "--defense", "knn-filter"), "--knn-k"),
    (("--save-data", "/nonexistent/x.npz"), "--save-data"),
], ids=lambda a: " ".join(a) if isinstance(a, tuple) else a)
def test_out_of_range_values_name_their_flag(capsys, args, flag):
    line = clitools.one_error_line(capsys, ["run", "logistic", *FAST, *args])
    assert flag in line and line.startswith("poisonlab: error:")


def test_huge_n_is_refused_before_allocating(capsys, monkeypatch):
    monkeypatch.setenv("POISONLAB_MEMORY_LIMIT", str(2 * 1024**3))
    line = clitools.one_error_line(capsys, ["run", "logistic", "--n", "1000000000"])
    assert "argument --n:" in line and "of memory" in line


def test_a_filter_that_discards_everything_names_its_flag(capsys):
    # threshold 0: every point with a single disagreeing neighbour goes; with half the labels flipped, all do
    line = clitools.one_error_line(capsys, ["run", "logistic", *FAST, "--alpha", "0.5", "--defense", "knn-filter",
                                            "--knn-threshold", "0", "--no-cache"])
    assert "argument --knn-threshold:" in line and "discarded all" in line


def test_poisoned_count_and_notes(capsys):
    record = run_json(capsys, "--alpha", "0.1", "--batch-size", "1000")
    assert record["poisoned_count"] == 16  # round(0.1 x 160)
    assert len(record["notes"]) == 1 and record["notes"][0].startswith("--batch-size")
