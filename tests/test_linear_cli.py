"""`poisonlab run linear`: the CLI contract (one JSON object, every parameter, reproducible, bad input -> exit 2)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import clitools
from poisonlab import cli
from poisonlab.experiments import linear as lin

# small and fast: 100 points, 2 epochs
FAST = ["--n", "100", "--epochs", "2", "--repeats", "3"]
FLAGS = {"--n", "--dim", "--out-dim", "--noise-std", "--alpha", "--eta-mean", "--eta-std", "--loss",
         "--huber-delta", "--solver", "--epochs", "--lr", "--batch-size", "--hidden", "--continue-from-clean"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


def run_json(capsys, *args):
    return clitools.run_json(capsys, "linear", *FAST, *args)


def test_json_record_has_every_parameter_and_metric(capsys):
    record = run_json(capsys)
    clitools.check_record(record, lin.EXPERIMENT, repeats=3)
    assert record["params"]["n"] == 100 and record["params"]["epochs"] == 2


def test_every_flag_is_offered(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "linear", "--help"])
    text = capsys.readouterr().out
    for flag in FLAGS | {"--repeats", "--seed", "--json", "--save-data"}:
        assert flag in text, flag


def test_same_flags_give_identical_json(capsys):
    args = ("--alpha", "0.3", "--eta-mean", "2", "--seed", "5")
    first = run_json(capsys, *args)
    second = run_json(capsys, *args, "--no-cache")  # recomputed, not read back from the cache
    assert first == second


def test_flags_change_the_result(capsys):
    clean = run_json(capsys, "--alpha", "0", "--solver", "exact")
    poisoned = run_json(capsys, "--alpha", "0.5", "--eta-mean", "10", "--eta-std", "0", "--solver", "exact")
    # half the labels shifted by 10: the intercept moves by about 5, far beyond the clean run's noise
    assert abs(clean["metrics"]["intercept_bias"]["mean"]) < 1
    assert poisoned["metrics"]["intercept_bias"]["mean"] == pytest.approx(5, abs=1)
    assert poisoned["params"]["alpha"] == 0.5


@pytest.mark.parametrize("args", [
    ("--loss", "l1", "--solver", "exact"),
    ("--loss", "huber", "--huber-delta", "2"),
    ("--hidden", "8", "--batch-size", "25"),
    ("--continue-from-clean",),
    ("--dim", "3", "--out-dim", "2", "--solver", "exact"),
], ids=lambda a: " ".join(a))
def test_options_run(capsys, args):
    record = run_json(capsys, *args)
    assert all(np.isfinite(m["mean"]) for m in record["metrics"].values())
    if "exact" in args:
        assert record["metrics"]["exact_gap"]["mean"] == 0  # the exact solver is its own optimum


def test_hidden_layers_are_reported(capsys):
    record = run_json(capsys, "--hidden", "8", "4")
    assert record["params"]["hidden"] == [8, 4]


def test_save_data_writes_the_first_repeat(capsys, tmp_path):
    path = tmp_path / "data.npz"
    run_json(capsys, "--dim", "2", "--seed", "7", "--save-data", str(path))
    saved = np.load(path)
    assert {"X_train", "y_train", "X_test", "y_test", "mask", "W", "b", "config"} <= set(saved.files)
    assert saved["X_train"].shape == (80, 2) and saved["y_test"].shape == (20, 1)
    assert saved["mask"].sum() == round(0.2 * 80)  # the default alpha
    config = json.loads(str(saved["config"]))
    _, poisoned = lin.make_data({**lin.EXPERIMENT.resolve(**{k: v for k, v in config.items() if k != "seed"}),
                                 "seed": 7})
    np.testing.assert_array_equal(saved["y_train"], poisoned.y_train.numpy())  # same seed -> same data


@pytest.mark.parametrize("args, flag", [
    (("--alpha", "1.5"), "--alpha"),
    (("--alpha", "-0.1"), "--alpha"),
    (("--eta-std", "-1"), "--eta-std"),
    (("--noise-std", "-0.5"), "--noise-std"),
    (("--n", "0"), "--n"),
    (("--n", "2"), "--n"),
    (("--dim", "0"), "--dim"),
    (("--out-dim", "-1"), "--out-dim"),
    (("--epochs", "0"), "--epochs"),
    (("--batch-size", "0"), "--batch-size"),
    (("--lr", "0"), "--lr"),
    (("--huber-delta", "0"), "--huber-delta"),
    (("--loss", "l3"), "--loss"),
    (("--solver", "newton"), "--solver"),
    (("--hidden", "0"), "--hidden"),
    (("--hidden", "8", "--solver", "exact"), "--hidden"),
    (("--continue-from-clean", "--solver", "exact"), "--continue-from-clean"),
    (("--eta-mean", "nan"), "--eta-mean"),
    (("--n", "ten"), "--n"),
], ids=lambda a: " ".join(a) if isinstance(a, tuple) else a)
def test_bad_input_is_one_line_naming_the_flag(capsys, args, flag):
    assert cli.main(["run", "linear", *FAST, *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert flag in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
