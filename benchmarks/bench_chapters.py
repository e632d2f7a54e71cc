"""Time the execution of each chapter of the book (or of one, --chapter FILE) in a profile.

Each chapter runs as `poisonlab render` runs it: `render.execute_chapter` (a fresh Jupyter kernel,
the chapter's folder as working directory). Prints one line per chapter and the total, in seconds.

    python benchmarks/bench_chapters.py                      # every chapter, full profile
    python benchmarks/bench_chapters.py --profile quick --chapter report/linear-regression.qmd
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bookrender import model, render

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=model.PROFILES, default="full", help="sweep sizes (default: full)")
    parser.add_argument("--chapter", metavar="FILE", action="append",
                        help="time only this chapter (repeatable; default: every chapter of _quarto.yml)")
    parser.add_argument("--warm", action="store_true",
                        help="use the project's sweep cache (default: an empty one, so sweeps really run)")
    args = parser.parse_args(argv)
    paths = [Path(c).resolve() for c in args.chapter] if args.chapter else model.chapters(ROOT)
    with tempfile.TemporaryDirectory(prefix="poisonlab-bench-") as cold:
        if not args.warm:  # the kernels inherit this: every sweep computes instead of reading the cache
            os.environ["POISONLAB_CACHE"] = cold
        print(f"# profile {args.profile}, {'warm' if args.warm else 'cold'} cache, python "
              f"{platform.python_version()}, {os.cpu_count()} CPU cores")
        return time_chapters(paths, args.profile)


def time_chapters(paths: list[Path], profile: str) -> int:
    """Execute each chapter, print its seconds and the total; 1 if any failed."""
    total, status = 0.0, 0
    for path in paths:
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        start = time.perf_counter()
        try:
            render.execute_chapter(path, profile=profile)
        except (model.RenderError, ValueError) as e:
            print(f"{name:<40} failed: {e}")
            status = 1
            continue
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{name:<40} {seconds:8.1f} s")
    print(f"{'total':<40} {total:8.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
