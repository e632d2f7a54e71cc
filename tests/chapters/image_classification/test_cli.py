"""`poisonlab run images`: the CLI contract (one JSON object, every parameter, reproducible, bad input -> exit 2)."""
from __future__ import annotations

import numpy as np
import pytest

import clitools
from poisonlab import cli
from poisonlab.chapters.image_classification import experiment as img_exp
from poisonlab.chapters.image_classification import pipeline as img_pipe

# small and fast: 2 epochs of softmax regression on the 8x8 digits, 2 repeats
FAST = ["--epochs", "2", "--repeats", "2"]
FLAGS = {"--dataset", "--data-dir", "--download", "--n-train", "--model", "--hidden", "--alpha", "--flip",
         "--target-class", "--pair", "--defense", "--drop", "--knn-k", "--knn-threshold", "--epochs", "--lr",
         "--batch-size", "--early-stopping", "--val-fraction"}
CONTRACT_METRICS = {"test_accuracy", "flipped_train_fit", "poisoned_fraction"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))


def run_json(capsys, *args):
    return clitools.run_json(capsys, "images", *FAST, *args)


def test_json_record_has_every_parameter_and_metric(capsys):
    record = run_json(capsys, "--alpha", "0.2")
    clitools.check_record(record, img_exp.EXPERIMENT, repeats=2)
    assert record["params"]["dataset"] == "digits" and record["params"]["alpha"] == 0.2
    assert record["params"]["pair"] == [1, 7]
    assert CONTRACT_METRICS <= set(record["metrics"])
    # exactly round(0.2 * 1438) = 288 of the 1438 training labels flipped, in every repeat
    assert record["metrics"]["poisoned_fraction"]["values"] == [288 / 1438] * 2


def test_every_flag_is_offered(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "images", "--help"])
    text = capsys.readouterr().out
    for flag in FLAGS | {"--repeats", "--seed", "--json", "--no-cache", "--save-data"}:
        assert flag in text, flag


def test_same_flags_give_identical_json(capsys):
    args = ("--alpha", "0.3", "--flip", "least-confident", "--seed", "5")
    first = run_json(capsys, *args)
    second = run_json(capsys, *args, "--no-cache")  # recomputed, not read back from the cache
    assert first == second
    third = run_json(capsys, "--alpha", "0.3", "--flip", "least-confident", "--seed", "6", "--no-cache")
    assert third["metrics"]["test_accuracy"]["values"] != first["metrics"]["test_accuracy"]["values"]


@pytest.mark.parametrize("args", [
    ("--flip", "target-class", "--target-class", "3", "--alpha", "0.3"),
    ("--flip", "pair", "--pair", "3", "8", "--alpha", "0.1"),
    ("--flip", "random", "--defense", "loss-filter", "--alpha", "0.2"),
    ("--flip", "random", "--defense", "knn-filter", "--knn-threshold", "0.5", "--alpha", "0.2"),
    ("--model", "mlp", "--hidden", "16", "--early-stopping", "--alpha", "0.2"),
    ("--model", "cnn", "--hidden", "2", "4", "--epochs", "1", "--alpha", "0.1"),
])
def test_attacks_models_and_defences_run(capsys, args):
    record = run_json(capsys, *args)
    metrics = record["metrics"]
    assert 0.0 <= metrics["test_accuracy"]["mean"] <= 1.0
    assert 0.0 <= metrics["flipped_train_fit"]["mean"] <= 1.0
    if "--early-stopping" in args:
        assert all(1 <= e <= 2 for e in metrics["stop_epoch"]["values"])
    if "--defense" in args:
        # the filters catch most randomly flipped labels and drop few clean ones
        assert metrics["poison_discarded"]["mean"] > 0.5
        assert metrics["clean_discarded"]["mean"] < 0.2


def test_text_output(capsys):
    assert cli.main(["run", "images", *FAST, "--alpha", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "images: 2 repeats" in out and "test_accuracy" in out and "95% CI" in out


def test_save_data_writes_the_poisoned_set(capsys, tmp_path):
    path = tmp_path / "poisoned.npz"
    assert cli.main(["run", "images", *FAST, "--json", "--flip", "target-class", "--alpha", "0.25",
                     "--save-data", str(path)]) == 0
    capsys.readouterr()
    saved = np.load(path)
    mask, y, y_clean = saved["mask"], saved["y_train"], saved["y_clean"]
    assert mask.sum() == round(0.25 * len(y)) and (y[mask] == 0).all() and (y_clean[mask] != 0).all()
    assert (y[~mask] == y_clean[~mask]).all()
    assert saved["X_train"].shape == (len(y), 1, 8, 8)


@pytest.mark.parametrize("args, flag", [
    (("--target-class", "10", "--flip", "target-class"), "--target-class"),
    (("--target-class", "-1"), "--target-class"),
    (("--pair", "3", "3", "--flip", "pair"), "--pair"),
    (("--pair", "1", "10"), "--pair"),
    (("--pair", "1"), "--pair"),
    (("--dataset", "cifar10"), "--dataset"),         # no installable package ships it: not offered
    (("--dataset", "digits", "--download"), "--download"),  # digits are shipped: nothing to download
    (("--dataset", "svhn"), "--dataset"),            # neither shipped nor known
    (("--alpha", "1.5"), "--alpha"),
    (("--alpha", "nan"), "--alpha"),
    (("--alpha", "0.5", "--flip", "pair"), "alpha"),  # more flips than points of classes 1 and 7
    (("--model", "rnn"), "--model"),
    (("--hidden", "8"), "--hidden"),                 # hidden layers need --model mlp or cnn
    (("--model", "cnn", "--hidden", "8"), "--hidden"),
    (("--flip", "everything"), "--flip"),
    (("--flip", "max-loss"), "least-confident"),     # renamed: the error names both new attacks
    (("--defense", "median"), "--defense"),
    (("--drop", "0.1"), "--drop"),                   # a budget needs a filter
    (("--knn-threshold", "0.5"), "--knn-threshold"),
    (("--defense", "knn-filter", "--knn-threshold", "0.5", "--drop", "0.1"), "--drop"),
    (("--val-fraction", "1.0", "--early-stopping"), "--val-fraction"),
    (("--epochs", "0"), "--epochs"),
    (("--lr", "-1"), "--lr"),
    (("--lr", "inf"), "--lr"),
    (("--batch-size", "0"), "--batch-size"),
    (("--n-train", "0"), "--n-train"),
    (("--n-train", "5000"), "n_train"),
    (("--repeats", "0"), "repeats"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, flag):
    assert cli.main(["run", "images", "--json", "--epochs", "1", "--repeats", "1", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert flag in lines[0], lines[0]
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_mnist_runs_offline_from_the_shipped_copy(capsys):
    # the official 60,000/10,000 split; a stratified 2,000-image subset keeps the test fast
    record = clitools.run_json(capsys, "images", "--dataset", "mnist", "--n-train", "2000", "--epochs", "3",
                               "--repeats", "1", "--alpha", "0")
    assert record["params"]["dataset"] == "mnist"
    assert record["metrics"]["test_accuracy"]["mean"] > 0.8


def test_fashion_mnist_runs_where_installed(capsys):
    from poisonlab import data

    try:
        data.require("fashion-mnist")
    except (ValueError, OSError):
        pytest.skip("Fashion-MNIST is not installed here (apt-get install dataset-fashion-mnist)")
    record = clitools.run_json(capsys, "images", "--dataset", "fashion-mnist", "--n-train", "1000",
                               "--epochs", "2", "--repeats", "1", "--alpha", "0.1")
    assert record["metrics"]["test_accuracy"]["mean"] > 0.5


def test_a_missing_data_set_is_one_line_naming_how_to_get_it(capsys, tmp_path, monkeypatch):
    from poisonlab.data import mnist

    monkeypatch.setattr(mnist, "SYSTEM_FOLDER", {})  # as on a machine without Debian's package
    assert cli.main(["run", "images", "--json", "--repeats", "1", "--dataset", "fashion-mnist",
                     "--data-dir", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--dataset" in lines[0] and "dataset-fashion-mnist" in lines[0], lines


def test_mnist_cost_counts_sixty_thousand_images():
    config = {p.name: p.default for p in img_exp.PARAMS} | {"dataset": "mnist", "alpha": 0.0}
    assert img_pipe.SHAPES["mnist"] == (70000, 60000, (1, 28, 28))
    assert img_pipe.SHAPES["digits"] == (1797, 1438, (1, 8, 8))
    one = img_exp.cost(config, 1)
    # the 60,000 x 784 float32 training images, shuffled and stacked, dominate: ~0.5-1 GB, seconds to minutes
    assert 0.4e9 < one.bytes < 1.5e9 and 1.0 < one.seconds < 600.0


# ---------------------------------------------------------------- reliability: ignored parameters, bounds

@pytest.mark.parametrize("args, flag", [
    (("--pair", "2", "3"), "--pair"),  # random flips: no pair
    (("--target-class", "3"), "--target-class"),
    (("--val-fraction", "0.3"), "--val-fraction"),  # no early stopping
    (("--data-dir", "/nonexistent"), "--data-dir"),  # digits are shipped: no folder
    (("--download",), "--download"),
    (("--n-train", "50", "--defense", "knn-filter", "--knn-k", "100"), "--knn-k"),
    (("--defense", "loss-filter", "--drop", "1"), "--drop"),
    (("--lr", "1e39"), "--lr"),
], ids=lambda a: " ".join(a) if isinstance(a, tuple) else a)
def test_parameters_that_do_not_apply_are_refused(capsys, args, flag):
    line = clitools.one_error_line(capsys, ["run", "images", *FAST, *args])
    assert flag in line and line.startswith("poisonlab: error:")


def test_applicable_parameters_still_run(capsys):
    record = run_json(capsys, "--flip", "pair", "--pair", "2", "3", "--n-train", "200")
    assert record["params"]["pair"] == [2, 3] and record["poisoned_count"] == 20


def test_huge_cnn_is_refused_before_allocating(capsys, monkeypatch):
    monkeypatch.setenv("POISONLAB_MEMORY_LIMIT", str(2 * 1024**3))
    line = clitools.one_error_line(capsys, ["run", "images", "--model", "cnn", "--hidden", "100000", "100000"])
    assert "argument --hidden:" in line and "of memory" in line


def test_divergence_before_overflow_is_reported(capsys):
    line = clitools.one_error_line(capsys, ["run", "images", "--lr", "1e30", "--epochs", "1", "--repeats", "1",
                                            "--n-train", "200", "--no-cache"], code=1)
    assert line.startswith("poisonlab: error: argument --lr: --lr 1e+30 diverged (")
