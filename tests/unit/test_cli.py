"""The command line in general: help at every level, and bad input as one line with exit status 2."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from poisonlab import cli
from poisonlab.lab import experiment


def helps():
    yield []
    yield ["render"]
    yield ["run"]
    for name in experiment.available():
        yield ["run", name]


@pytest.mark.parametrize("argv", list(helps()), ids=lambda a: " ".join(a) or "poisonlab")
def test_help_at_every_level_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    assert exit_.value.code == 0
    assert "usage: poisonlab" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["run"], ["run", "no-such-experiment"],
                                  ["render", "--engine", "gpu"], ["render", "--profile", "huge"],
                                  ["render", "--no-such-flag"]],
                         ids=lambda a: " ".join(a) or "nothing")
def test_bad_input_is_one_line_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poisonlab") and "error" in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_subprocess_help_and_unknown_subcommand():
    run = lambda *a: subprocess.run([sys.executable, "-m", "poisonlab", *a], capture_output=True,  # noqa: E731
                                    text=True, timeout=120)
    ok = run("--help")
    assert ok.returncode == 0 and "render" in ok.stdout and "run" in ok.stdout
    bad = run("frobnicate")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert "frobnicate" in bad.stderr


def test_output_to_a_closed_pipe_ends_quietly(tmp_path):
    # `poisonlab run ... | head`: the reader leaves early; no traceback on stderr, exit 141 like SIGPIPE
    import subprocess
    import sys

    cmd = (f"{sys.executable} -m poisonlab run linear --repeats 2 --epochs 1 --n 50 --json --no-cache "
           "| true")  # the reader exits before anything is written: EPIPE every time
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], capture_output=True, text=True,
                          cwd=tmp_path, env={**__import__("os").environ, "POISONLAB_CACHE": str(tmp_path)})
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 141


def test_top_level_help_does_not_import_the_experiments():
    # `poisonlab --help` must be fast: the experiments (torch, scipy, pandas) are imported only when run
    code = ("import sys; from poisonlab import cli; cli.build_parser(cli._experiments_needed(['--help']))"
            ".format_help(); print('torch' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_run_help_has_no_doubled_percent_or_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = capsys.readouterr().out
    assert "95%" in text and "95%%" not in text
    with pytest.raises(SystemExit):
        cli.main(["run", "logistic", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 0.15)" in text and not re.search(r"default[^()]*\)\s*\(default", text)


@pytest.mark.parametrize("argv", [["run", "linear", "--rep", "2"], ["run", "linear", "--n-", "5"],
                                  ["run", "logistic", "--knn", "3"]], ids=" ".join)
def test_abbreviated_flags_are_refused(argv, capsys):
    assert cli.main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
