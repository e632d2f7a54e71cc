"""`poisonlab run linear`: the CLI contract (one JSON object, every parameter, reproducible, bad input -> exit 2)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import clitools
from poisonlab import cli
from poisonlab.chapters.linear_regression import experiment as lin_exp

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
    clitools.check_record(record, lin_exp.EXPERIMENT, repeats=3)
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
    _, poisoned = lin_exp.make_data({**lin_exp.EXPERIMENT.resolve(**{k: v for k, v in config.items() if k != "seed"}),
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
    assert flag in clitools.one_error_line(capsys, ["run", "linear", *FAST, *args])


# ---------------------------------------------------------------- reliability: bounds, divergence, notes

@pytest.mark.parametrize("args, flag", [
    (("--noise-std", "1e300"), "--noise-std"),  # valid float64, inf in float32
    (("--eta-mean", "1e300"), "--eta-mean"),
    (("--eta-mean", "1e20", "--solver", "exact"), "--eta-mean"),  # squares overflow float32: not "diverged"
    (("--lr", "1e-300"), "--lr"),  # 0 in float32
    (("--lr", "1e39"), "--lr"),  # inf in float32
    (("--huber-delta", "1e-300"), "--huber-delta"),
    (("--seed", "99999999999999999999"), "--seed"),
    (("--seed", "-1"), "--seed"),
    (("--save-data", "/nonexistent/x.npz"), "--save-data"),  # checked before the run, not after it
    (("--save-data", "/"), "--save-data"),  # a folder
    (("--rep", "2"), "--rep"),  # abbreviations are not accepted
], ids=lambda a: " ".join(a) if isinstance(a, tuple) else a)
def test_out_of_range_values_name_their_flag(capsys, args, flag):
    line = clitools.one_error_line(capsys, ["run", "linear", *FAST, *args])
    assert flag in line and line.startswith("poisonlab: error:")


@pytest.mark.parametrize("args, flag", [
    (("--out-dim", "100000"), "--out-dim"),
    (("--hidden", "100000", "100000"), "--hidden"),
    (("--n", "1000000000"), "--n"),
], ids=lambda a: " ".join(a) if isinstance(a, tuple) else a)
def test_runs_too_big_for_memory_are_refused_before_allocating(capsys, monkeypatch, args, flag):
    monkeypatch.setenv("POISONLAB_MEMORY_LIMIT", str(2 * 1024**3))  # a 2 GB machine
    line = clitools.one_error_line(capsys, ["run", "linear", *args])  # the defaults otherwise (n = 1000)
    assert f"argument {flag}:" in line and "GB of memory" in line


def test_memory_limit_follows_the_machine(capsys, monkeypatch):
    monkeypatch.setenv("POISONLAB_MEMORY_LIMIT", "1000")  # 1000 bytes: even the smallest run is too big
    line = clitools.one_error_line(capsys, ["run", "linear", *FAST])
    assert "of memory" in line


def test_long_runs_need_yes(capsys, monkeypatch):
    line = clitools.one_error_line(capsys, ["run", "linear", "--epochs", "10000000"])
    assert "argument --epochs:" in line and "hours" in line and "--yes" in line
    monkeypatch.setenv("POISONLAB_TIME_LIMIT", "1e-9")  # every run is too long now
    assert "--yes" in clitools.one_error_line(capsys, ["run", "linear", *FAST])
    record = run_json(capsys, "--yes")
    assert record["params"]["n"] == 100


def test_divergence_names_lr_and_the_stable_step(capsys):
    line = clitools.one_error_line(capsys, ["run", "linear", "--n", "100", "--epochs", "5", "--lr", "1.5",
                                            "--repeats", "2", "--no-cache"], code=1)
    assert line.startswith("poisonlab: error: argument --lr: --lr 1.5 diverged (loss grew from ")
    assert "stable for lr < 2/lambda_max = " in line
    bound = float(line.rsplit("= ", 1)[1].split()[0])
    assert 0.5 < bound < 1.5  # m / lambda_max([x, 1]^T [x, 1] / N) with x ~ N(0, 1): about 1
    assert line.count("diverged") == 1


def test_poisoned_count_is_recorded_and_zero_is_warned(capsys):
    assert run_json(capsys, "--alpha", "0.2")["poisoned_count"] == 16  # round(0.2 x 80)
    capsys.readouterr()
    assert cli.main(["run", "linear", "--json", *FAST, "--alpha", "0.006"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["poisoned_count"] == 0  # round(0.006 x 80) = 0: the same run as alpha = 0
    (line,) = captured.err.strip().splitlines()
    assert "--alpha 0.006" in line and "0 training points" in line
    assert record["notes"] == [line.split("note: ", 1)[1]]


@pytest.mark.parametrize("args, flag", [
    (("--batch-size", "500"), "--batch-size"),  # 80 training points: full batch
    (("--dim", "90", "--solver", "exact"), "--dim"),  # 91 coefficients, 80 points: minimum-norm fit
], ids=lambda a: " ".join(a))
def test_silent_changes_are_noted(capsys, args, flag):
    assert cli.main(["run", "linear", "--json", *FAST, *args]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert len(record["notes"]) == 1 and record["notes"][0].startswith(flag)
    assert flag in captured.err


def test_intervals_stay_in_the_metrics_range(capsys):
    record = run_json(capsys, "--repeats", "2", "--n", "20")
    clitools.check_record(record, lin_exp.EXPERIMENT, repeats=2)  # clipped: no negative MSE
    assert all(record["metrics"][m]["ci95"][0] >= 0 for m in ("test_mse", "train_mse", "excess_risk"))
