"""Shared by the experiments' CLI tests: run `poisonlab run ... --json` in-process and parse its one line."""
import json

from poisonlab import cli


def run_json(capsys, experiment: str, *args) -> dict:
    """The one JSON object that `poisonlab run <experiment> --json <args>` prints."""
    assert cli.main(["run", experiment, "--json", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, "--json must print exactly one line: one JSON object"
    return json.loads(lines[0])
