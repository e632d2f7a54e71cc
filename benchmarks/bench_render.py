"""Time whole renders of the book: `poisonlab render` with an engine and a profile, cold then warm.

Cold: empty sweep and notebook caches (every sweep and chapter really runs). Warm: the caches that
cold run left (nothing changed, so nothing executes: only the conversion to HTML/PDF is left).
Each render writes into a temporary folder, so the project's own book is not touched.

    python benchmarks/bench_render.py --engine quarto --profile quick
    python benchmarks/bench_render.py --engine jupyter --profile full
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render(engine: str, profile: str, out: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "poisonlab", "render", "--engine", engine, "--profile", profile,
                    "--output", str(out)], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("quarto", "jupyter"), default="quarto")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    args = parser.parse_args(argv)
    if args.engine == "quarto" and shutil.which("quarto") is None:
        print("bench_render: quarto is not on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="poisonlab-bench-render-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "POISONLAB_CACHE": str(tmp / "sweeps"), "BOOKRENDER_CACHE": str(tmp / "notebooks")}
        print(f"# {args.engine}, profile {args.profile}, python {platform.python_version()}, "
              f"{os.cpu_count()} CPU cores")
        cold = render(args.engine, args.profile, tmp / "book", env)
        print(f"cold caches: {cold:.1f} s")
        warm = render(args.engine, args.profile, tmp / "book", env)
        print(f"warm caches: {warm:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
