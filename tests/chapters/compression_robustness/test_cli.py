"""`poisonlab run compression`: the CLI contract (one JSON object, every parameter, reproducible, bad input ->
exit 2 with one line naming the parameter)."""
from __future__ import annotations

import pytest

import clitools
from poisonlab import cli
from poisonlab.chapters.compression_robustness import experiment as cx
from poisonlab.chapters.compression_robustness.laws import expected_sparsity

FAST = ["--model", "cnn", "--epochs", "2", "--n-train", "300", "--batch-size", "32", "--n-test", "40", "--repeats", "2"]
FLAGS = {"--dataset", "--model", "--sparsity", "--schedule", "--prune-start", "--prune-every", "--prune-steps",
         "--rank-schedule", "--nuclear-weight", "--train-eps", "--train-steps", "--attack", "--eps", "--steps",
         "--epochs", "--lr", "--batch-size", "--n-train", "--n-test"}
CONTRACT_METRICS = {"clean_accuracy", "adversarial_accuracy", "measured_sparsity", "effective_rank",
                    "lipschitz_product"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


def run_json(capsys, *args):
    return clitools.run_json(capsys, "compression", *FAST, *args)


def test_json_record_has_every_parameter_and_metric(capsys):
    record = run_json(capsys, "--sparsity", "0.9", "--eps", "0.2")
    clitools.check_record(record, cx.EXPERIMENT, repeats=2)
    assert CONTRACT_METRICS <= set(record["metrics"])
    m = record["metrics"]
    assert m["measured_sparsity"]["values"] == [expected_sparsity("cnn", 0.9)] * 2  # exactly, in every repeat


def test_every_flag_is_offered(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "compression", "--help"])
    text = capsys.readouterr().out
    for flag in FLAGS | {"--repeats", "--seed", "--json", "--no-cache"}:
        assert flag in text, flag


def test_same_flags_give_identical_json(capsys):
    args = ("--sparsity", "0.5", "--attack", "pgd", "--steps", "3", "--seed", "4")
    first = run_json(capsys, *args)
    assert first == run_json(capsys, *args, "--no-cache")
    other = run_json(capsys, "--sparsity", "0.5", "--attack", "pgd", "--steps", "3", "--seed", "5", "--no-cache")
    assert other["metrics"]["clean_accuracy"]["values"] != first["metrics"]["clean_accuracy"]["values"]


@pytest.mark.parametrize("args", [
    ("--schedule", "oneshot", "--sparsity", "0.8"),
    ("--sparsity", "0.5", "--prune-start", "1", "--prune-every", "1", "--prune-steps", "2"),
    ("--rank-schedule", "lr2",),
    ("--nuclear-weight", "0.01",),
    ("--train-eps", "0.1", "--train-steps", "2"),
    ("--model", "fc5", "--rank-schedule", "lr1", "--n-train", "200"),
    ("--batch-size", "16",),
])
def test_methods_run_and_keep_their_metrics_in_range(capsys, args):
    m = run_json(capsys, *args)["metrics"]
    for name in ("clean_accuracy", "adversarial_accuracy", "measured_sparsity", "near_zero", "effective_rank"):
        assert 0.0 <= m[name]["mean"] <= 1.0
    assert m["lipschitz_product"]["mean"] > 0


@pytest.mark.parametrize("argv, flag", [
    (["--sparsity", "1"], "sparsity"),
    (["--sparsity", "-0.2"], "sparsity"),
    (["--schedule", "zigzag"], "schedule"),
    (["--rank-schedule", "lr3"], "rank_schedule"),
    (["--nuclear-weight", "-1"], "nuclear_weight"),
    (["--sparsity", "0.5", "--rank-schedule", "lr1"], "rank_schedule"),
    (["--train-eps", "0.1", "--nuclear-weight", "0.1"], "train_eps"),
    (["--steps", "3"], "steps"),
    (["--train-steps", "3"], "train_steps"),
    (["--schedule", "oneshot", "--prune-every", "2"], "prune_every"),
    (["--sparsity", "0.5", "--prune-steps", "50"], "prune_steps"),
    (["--sparsity", "0.5", "--prune-start", "500"], "prune_start"),
    (["--n-train", "60000"], "n_train"),
    (["--dataset", "cifar"], "dataset"),
])
def test_bad_input_exits_2_with_one_line_naming_the_parameter(capsys, argv, flag):
    line = clitools.one_error_line(capsys, ["run", "compression", *FAST, *argv])
    assert flag in line or flag.replace("_", "-") in line, line
