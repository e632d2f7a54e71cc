"""Where the image-classification chapter spends its time: every code cell timed, in one process.

The cells run as in the chapter (its folder as working directory, an empty sweep cache), but in
this process rather than a Jupyter kernel, so kernel start-up is not counted; for the end-to-end
figure use `benchmarks/bench_chapters.py --chapter report/image-classification.qmd`.

    python benchmarks/bench_image_classification.py              # full profile
    python benchmarks/bench_image_classification.py --profile quick --min 0.5
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "report" / "image-classification.qmd"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("quick", "full"), default="full")
    parser.add_argument("--min", type=float, default=1.0, help="list cells that take at least this many seconds")
    args = parser.parse_args(argv)
    os.environ["POISONLAB_PROFILE"] = args.profile
    os.environ.setdefault("MPLBACKEND", "Agg")
    with tempfile.TemporaryDirectory(prefix="poisonlab-bench-") as cold:
        os.environ["POISONLAB_CACHE"] = cold
        from bookrender import model, notebooks

        book = model.load_book(ROOT, only=CHAPTER, profile=args.profile)
        nb = notebooks.build_notebook(book.chapters[0], book.config)
        os.chdir(CHAPTER.parent)
        namespace: dict = {}
        total = 0.0
        print(f"# {CHAPTER.name}, profile {args.profile}, cold cache, {os.cpu_count()} CPU cores")
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("#|"))
            start = time.perf_counter()
            exec(compile(source, str(CHAPTER), "exec"), namespace)  # noqa: S102 -- the chapter's own code
            seconds = time.perf_counter() - start
            total += seconds
            if seconds >= args.min:
                print(f"{seconds:8.2f} s  {source.splitlines()[0][:90]}")
        print(f"{total:8.2f} s  total (cells only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
