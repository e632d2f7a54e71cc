"""`poisonlab run certified`: the CLI contract (one JSON object, every parameter, reproducible, bad input -> exit 2
with one line naming the parameter)."""
from __future__ import annotations

import pytest

import clitools
from poisonlab import cli
from poisonlab.chapters.certified_training import experiment as cx

FAST = ["--epochs", "2", "--n-train", "300", "--batch-size", "32", "--n-test", "40",
        "--n-clean", "200", "--steps", "3", "--repeats", "2"]
FLAGS = {"--model", "--depth", "--width", "--train", "--eps-train", "--warmup", "--rampup", "--kappa",
         "--robust-logits", "--train-steps", "--eps", "--bound", "--steps", "--epochs", "--lr", "--batch-size",
         "--n-train", "--n-test", "--n-clean"}
CONTRACT_METRICS = {"clean_accuracy", "pgd_accuracy", "certified_accuracy", "mean_bound_width"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


def _ramp(args) -> list:
    """IBP (the default training) warms up and ramps within FAST's two epochs."""
    other = "--train" in args and args[list(args).index("--train") + 1] != "ibp"
    return [] if other else ["--warmup", "1", "--rampup", "1"]


def run_json(capsys, *args):
    return clitools.run_json(capsys, "certified", *FAST, *_ramp(args), *args)


def test_json_record_has_every_parameter_and_metric(capsys):
    record = run_json(capsys, "--eps", "0.02")
    clitools.check_record(record, cx.EXPERIMENT, repeats=2)
    assert CONTRACT_METRICS <= set(record["metrics"])
    m = record["metrics"]
    for k in range(2):  # a certificate is a lower bound of what PGD leaves
        assert m["certified_accuracy"]["values"][k] <= m["pgd_accuracy"]["values"][k]
    assert m["certified_but_broken"]["values"] == [0.0, 0.0]


def test_every_flag_is_offered(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "certified", "--help"])
    text = capsys.readouterr().out
    for flag in FLAGS | {"--repeats", "--seed", "--json", "--no-cache"}:
        assert flag in text, flag


def test_same_flags_give_identical_json(capsys):
    args = ("--eps", "0.01", "--seed", "4")
    first = run_json(capsys, *args)
    assert first == run_json(capsys, *args, "--no-cache")
    other = run_json(capsys, "--eps", "0.01", "--seed", "5", "--no-cache")
    assert other["metrics"]["clean_accuracy"]["values"] != first["metrics"]["clean_accuracy"]["values"]


def test_at_eps_zero_every_correct_image_is_certified(capsys):
    m = run_json(capsys, "--eps", "0")["metrics"]
    assert m["certified_accuracy"]["values"] == m["pgd_accuracy"]["values"]
    assert m["mean_bound_width"]["values"] == [0.0, 0.0]


@pytest.mark.parametrize("args", [
    ("--train", "normal"),
    ("--train", "pgd", "--eps-train", "0.1", "--train-steps", "2"),
    ("--kappa", "0.5", "--robust-logits", "elided", "--eps-train", "0.1"),
    ("--bound", "crown",),
    ("--depth", "1", "--width", "20"),
    ("--model", "cnn", "--n-train", "100"),
])
def test_trainings_and_bounds_run_and_keep_their_metrics_in_range(capsys, args):
    m = run_json(capsys, *args)["metrics"]
    for name in ("clean_accuracy", "pgd_accuracy", "certified_accuracy"):
        assert 0.0 <= m[name]["mean"] <= 1.0
    assert m["certified_accuracy"]["mean"] <= m["pgd_accuracy"]["mean"]
    assert m["mean_bound_width"]["mean"] > 0


def test_crown_is_not_looser_than_ibp_here(capsys):
    """On the same trained networks (the cache shares them), CROWN's logit intervals are narrower than IBP's."""
    ibp = run_json(capsys, "--train", "normal", "--eps", "0.01")["metrics"]
    crn = run_json(capsys, "--train", "normal", "--eps", "0.01", "--bound", "crown")["metrics"]
    assert ibp["clean_accuracy"] == crn["clean_accuracy"]
    assert all(c < i for c, i in zip(crn["mean_bound_width"]["values"], ibp["mean_bound_width"]["values"]))


@pytest.mark.parametrize("argv, flag", [
    (["--train", "normal", "--eps-train", "0.1"], "eps_train"),
    (["--train", "normal", "--kappa", "0.5"], "kappa"),
    (["--train", "pgd", "--warmup", "0"], "warmup"),
    (["--train", "pgd", "--rampup", "1"], "rampup"),
    (["--train", "ibp", "--train-steps", "3"], "train_steps"),
    (["--kappa", "1.5"], "kappa"),
    (["--eps-train", "0"], "eps_train"),
    (["--eps", "-0.1"], "eps"),
    (["--warmup", "1", "--rampup", "5"], "rampup"),
    (["--warmup", "-1", "--rampup", "1"], "warmup"),
    (["--model", "cnn", "--bound", "crown"], "bound"),
    (["--model", "cnn", "--depth", "2"], "depth"),
    (["--depth", "0"], "depth"),
    (["--robust-logits", "tight"], "robust_logits"),
    (["--train", "fgsm"], "train"),
    (["--n-train", "60000"], "n_train"),
])
def test_bad_input_exits_2_with_one_line_naming_the_parameter(capsys, argv, flag):
    ramp = [] if {"--warmup", "--rampup"} & set(argv) else _ramp(argv)
    line = clitools.one_error_line(capsys, ["run", "certified", *FAST, *ramp, *argv])
    assert flag in line or flag.replace("_", "-") in line, line
