"""`poisonlab run evasion`: the CLI contract (one JSON object, every parameter, reproducible, bad input -> exit 2)."""
from __future__ import annotations

import pytest

import clitools
from poisonlab import cli
from poisonlab.chapters.evasion import experiment as ev_exp

# small and fast: softmax regression on 500 images, 2 repeats, 50 attacked images
FAST = ["--model", "linear", "--epochs", "1", "--n-train", "500", "--n-test", "50", "--budget-images", "5",
        "--repeats", "2"]
FLAGS = {"--model", "--attack", "--norm", "--eps", "--steps", "--step-size", "--restarts", "--temperature",
         "--attacker-temperature", "--train-eps", "--train-steps", "--epochs", "--lr", "--batch-size", "--n-train",
         "--n-test", "--budget-images", "--max-budget"}
CONTRACT_METRICS = {"clean_accuracy", "adversarial_accuracy", "success_rate", "mean_min_budget", "grad_zero_fraction"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


def run_json(capsys, *args):
    return clitools.run_json(capsys, "evasion", *FAST, *args)


def test_json_record_has_every_parameter_and_metric(capsys):
    record = run_json(capsys, "--eps", "0.1")
    clitools.check_record(record, ev_exp.EXPERIMENT, repeats=2)
    assert CONTRACT_METRICS <= set(record["metrics"])
    assert record["poisoned_count"] == 0
    m = record["metrics"]
    assert m["adversarial_accuracy"]["mean"] < m["clean_accuracy"]["mean"]


def test_every_flag_is_offered(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "evasion", "--help"])
    text = capsys.readouterr().out
    for flag in FLAGS | {"--repeats", "--seed", "--json", "--no-cache"}:
        assert flag in text, flag


def test_same_flags_give_identical_json(capsys):
    args = ("--attack", "pgd", "--restarts", "2", "--seed", "5")
    first = run_json(capsys, *args)
    second = run_json(capsys, *args, "--no-cache")
    assert first == second
    third = run_json(capsys, "--attack", "pgd", "--restarts", "2", "--seed", "6", "--no-cache")
    assert third["metrics"]["clean_accuracy"]["values"] != first["metrics"]["clean_accuracy"]["values"]


@pytest.mark.parametrize("args", [
    ("--attack", "fgsm", "--norm", "2", "--eps", "1.0"),
    ("--attack", "pgd", "--norm", "1", "--eps", "5", "--steps", "3"),
    ("--attack", "margin", "--eps", "0.05", "--steps", "3"),
    ("--attack", "lp-descent", "--norm", "inf", "--eps", "0.1", "--steps", "5"),
    ("--temperature", "50", "--attacker-temperature", "ignored"),
    ("--train-eps", "0.1", "--train-steps", "2"),
    ("--model", "mlp-dropout", "--eps", "0.05"),
])
def test_attacks_and_training_settings_run(capsys, args):
    m = run_json(capsys, *args)["metrics"]
    for name in ("clean_accuracy", "adversarial_accuracy", "success_rate", "grad_zero_fraction"):
        assert 0.0 <= m[name]["mean"] <= 1.0
    assert m["mean_min_budget"]["mean"] >= 0.0


def test_an_attacker_who_ignores_the_temperature_meets_zero_gradients(capsys):
    args = ("--temperature", "30", "--epochs", "3", "--lr", "0.1", "--n-train", "2000")  # logits ~30x larger
    ignored = run_json(capsys, *args, "--attacker-temperature", "ignored")
    known = run_json(capsys, *args, "--attacker-temperature", "known")
    assert ignored["metrics"]["grad_zero_fraction"]["mean"] > 0.05
    assert known["metrics"]["grad_zero_fraction"]["mean"] == 0.0
    assert ignored["metrics"]["adversarial_accuracy"]["mean"] > known["metrics"]["adversarial_accuracy"]["mean"]


@pytest.mark.parametrize("argv, flag", [
    (["--eps", "-0.1"], "eps"),
    (["--norm", "3"], "norm"),
    (["--attack", "pgd", "--steps", "0"], "steps"),
    (["--temperature", "0"], "temperature"),
    (["--temperature", "-2"], "temperature"),
    (["--model", "resnet"], "model"),
    (["--attack", "fgsm", "--restarts", "3"], "restarts"),
    (["--n-train", "50000", "--repeats", "400"], "n-train"),  # ~190 GB of stacked training sets: refused
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, flag):
    line = clitools.one_error_line(capsys, ["run", "evasion", *FAST, *argv])
    assert flag in line
