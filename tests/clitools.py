"""Shared by the experiments' CLI tests: run `poisonlab run ... --json` in-process and parse its one line."""
import json

from poisonlab import cli


def run_json(capsys, experiment: str, *args) -> dict:
    """The one JSON object that `poisonlab run <experiment> --json <args>` prints."""
    assert cli.main(["run", experiment, "--json", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, "--json must print exactly one line: one JSON object"
    return json.loads(lines[0])


def check_record(record: dict, experiment, repeats: int) -> None:
    """The CLI contract: experiment, every resolved parameter, each metric's mean, 95% CI and values,
    the number of training points poisoned and the notes (what the run does that its flags do not say)."""
    import numpy as np
    import pytest

    assert set(record) == {"experiment", "params", "metrics", "poisoned_count", "notes"}
    assert isinstance(record["poisoned_count"], int) and record["poisoned_count"] >= 0
    assert isinstance(record["notes"], list) and all(isinstance(n, str) for n in record["notes"])
    assert record["experiment"] == experiment.name
    assert set(record["params"]) == {p.name for p in experiment.params}
    assert set(record["metrics"]) == set(experiment.metrics)
    for m in record["metrics"].values():
        assert set(m) == {"mean", "ci95", "values"}
        assert len(m["values"]) == repeats
        lo, hi = m["ci95"]
        assert lo <= m["mean"] <= hi
    for name, (low, high) in experiment.ranges.items():  # intervals stay within the metric's range
        lo, hi = record["metrics"][name]["ci95"]
        assert low <= lo and hi <= high, name
        assert m["mean"] == pytest.approx(np.mean(m["values"]))


def one_error_line(capsys, argv, code: int = 2) -> str:
    """Run `poisonlab <argv>`, expect exit `code`, nothing on stdout and exactly one line on stderr: that line."""
    from poisonlab import cli

    assert cli.main(list(argv)) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]
