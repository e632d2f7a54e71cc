"""A render never deletes what it did not make; a failed or interrupted render leaves the previous book.

The data-loss cases run the command line in a temporary copy of a small project.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bookrender import outputs

pytestmark = pytest.mark.book  # each test renders a small book

BOOK = {
    "_quarto.yml": "project:\n  type: book\nbook:\n  title: T\n  chapters:\n    - index.qmd\n",
    "index.qmd": "# Preface {.unnumbered}\n\n```{python}\nx = 1\n```\n\nValue `{python} x`.\n",
    "report/keep.qmd": "# A source file the render must never touch\n",
    "code/pkg/__init__.py": "",
    "README.md": "readme\n",
}


def project(root: Path, files=None) -> Path:
    for name, text in {**BOOK, **(files or {})}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"],
                   check=True)
    return root


def poisonlab(root: Path, *args, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"}  # no quarto
    return subprocess.run([sys.executable, "-m", "poisonlab", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300, **kw)


def snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
            and not p.relative_to(root).parts[0].startswith(("_preview", ".cache"))}


@pytest.mark.parametrize("output", [".", "report", "README.md", "README.md/sub", ".git", "report/new", "code",
                                    "..", "/", "~"])
def test_render_refuses_to_replace_what_it_did_not_make(tmp_path, output):
    root = project(tmp_path / "p")
    before = snapshot(root)
    result = poisonlab(root, "render", "--engine", "jupyter", "--profile", "quick", "--output", output)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines[-1:]) == 1 and "--output" in lines[-1] and "Traceback" not in result.stderr
    assert snapshot(root) == before
    status = subprocess.run(["git", "-C", str(root), "status", "--short"], capture_output=True, text=True).stdout
    assert status == ""


def test_an_existing_folder_that_no_render_made_is_refused(tmp_path):
    root = project(tmp_path / "p")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    result = poisonlab(root, "render", "--engine", "jupyter", "--profile", "quick", "--output", str(mine))
    assert result.returncode == 2 and "no render made" in result.stderr
    assert (mine / "thesis.tex").read_text() == "precious"


def test_a_render_replaces_its_own_output_and_leaves_it_group_readable(tmp_path):
    root = project(tmp_path / "p")
    out = tmp_path / "book"
    for _ in range(2):  # the second render replaces the first one's folder (its stamp says so)
        result = poisonlab(root, "render", "--engine", "jupyter", "--profile", "quick", "--output", str(out))
        assert result.returncode == 0, result.stderr
    assert (out / outputs.STAMP).is_file() and (out / "index.html").is_file()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


def test_profiles_write_separate_folders(tmp_path):
    root = project(tmp_path / "p")
    assert poisonlab(root, "render", "--engine", "jupyter", "--profile", "quick").returncode == 0
    assert (root / "_preview-quick" / "index.html").is_file() and not (root / "_preview").exists()


def test_check_target_rules(tmp_path):
    root = project(tmp_path / "p")
    assert outputs.check_target(root / "_book", root) == (root / "_book").resolve()
    assert outputs.check_target(tmp_path / "new" / "deeper", root) == (tmp_path / "new" / "deeper").resolve()
    (root / "_book").mkdir()
    (root / "_book" / "index.html").write_text("a book quarto made")
    assert outputs.check_target(root / "_book", root)  # a default folder holding a book: replaceable
    for bad in (root, root / "report", root / "report" / "x", root / "README.md", root / ".git",
                Path.home(), Path("/")):
        with pytest.raises(ValueError, match="--output"):
            outputs.check_target(bad, root)
    with pytest.raises(ValueError, match="--output"):
        outputs.check_target("", root)


SLOW = {"index.qmd": "# Preface {.unnumbered}\n\n```{python}\nimport time\nprint('started', flush=True)\n"
                     "time.sleep(60)\n```\n"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_render_says_so_exits_130_and_keeps_the_previous_book(tmp_path, sig):
    root = project(tmp_path / "p", SLOW)
    previous = root / "_preview-quick"
    previous.mkdir()
    (previous / outputs.STAMP).write_text("")
    (previous / "index.html").write_text("previous good render")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "poisonlab", "render", "--engine", "jupyter", "--profile",
                             "quick"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not [p for p in root.iterdir() if ".staging-" in p.name]:
        time.sleep(0.2)
    time.sleep(4)  # the kernel is running the slow cell
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "poisonlab: interrupted" and "Traceback" not in err
    assert (previous / "index.html").read_text() == "previous good render"
    assert not [p for p in root.iterdir() if ".staging-" in p.name]


def test_a_render_to_one_format_keeps_the_other(tmp_path):
    root = project(tmp_path / "p")
    fake = tmp_path / "bin" / "quarto"
    fake.parent.mkdir()
    # a stand-in for Quarto that writes what it was asked for (every format, or the one of --to)
    fake.write_text('#!/bin/sh\nmkdir -p _bookrender_out\n'
                    'case "$*" in *"--to pdf"*) echo pdf2 > _bookrender_out/book.pdf ;;\n'
                    '*) echo html1 > _bookrender_out/index.html; echo pdf1 > _bookrender_out/book.pdf ;; esac\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.path.dirname(sys.executable)}{os.pathsep}/usr/bin:/bin"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "poisonlab", "render", "--engine", "quarto",  # noqa: E731
                                     "--profile", "quick", *a], cwd=root, env=env, capture_output=True, text=True)
    assert run().returncode == 0
    result = run("--to", "pdf")
    assert result.returncode == 0, result.stderr
    book = root / "_book"
    assert (book / "index.html").read_text() == "html1\n" and (book / "book.pdf").read_text() == "pdf2\n"
    assert "executed notebook from the cache" in result.stderr  # one execution served both renders


def test_render_flags_are_spelled_in_full(tmp_path):
    result = poisonlab(project(tmp_path / "p"), "render", "--prof", "quick")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "--prof" in result.stderr


def test_an_output_that_cannot_be_written_is_one_line(tmp_path, monkeypatch, capsys):
    from poisonlab import cli

    root = project(tmp_path / "p")
    monkeypatch.chdir(root)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs.tempfile, "mkdtemp", refuse)  # as on a read-only folder (root may write anywhere)
    assert cli.main(["render", "--engine", "jupyter", "--profile", "quick", "--output", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err[-1:]) == 1 and "--output" in err[-1] and "Permission denied" in err[-1]
