"""A full-profile sweep run here and on a Dask LocalCluster, in one process: the same table, and the speed-up.

Also measures what one task costs the scheduler (a round trip of an empty task), the number behind the
README's estimate of how a sweep spreads over many workers.

    python benchmarks/bench_scale.py                        # linear's "little" sweep, 2 workers
    python benchmarks/bench_scale.py --chapter linear --sweep dimension --workers 2
    python benchmarks/bench_scale.py --chapter images --grid '{"model": ["linear", "mlp"], "defense": ["none",
        "loss-filter", "knn-filter"]}' --repeats 10      # a sweep of one's own over the chapter's experiment
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import tempfile
import time


def _noop(i):
    return i


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="linear", help="a chapter's short name (default: linear)")
    parser.add_argument("--sweep", default="little", help="one of its named sweeps (default: little)")
    parser.add_argument("--profile", default="full", choices=("quick", "full"))
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default: 2)")
    parser.add_argument("--grid", default=None, help="a grid of one's own (JSON) instead of the named sweep")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of --grid's sweep (default: 5)")
    args = parser.parse_args(argv)

    from dask import distributed

    from poisonlab.lab import executor, experiment, sweep
    from poisonlab.lab.chapter import SweepSpec

    package = experiment.chapters()[args.chapter]
    chapter = importlib.import_module(f"{package}.sweeps").CHAPTER
    if args.grid is None:
        spec = chapter.spec(args.sweep, args.profile)
    else:
        spec = SweepSpec(grid=json.loads(args.grid), repeats=args.repeats)
    exp = chapter.experiment
    what = args.sweep if args.grid is None else f"grid {args.grid}"
    print(f"# {args.chapter}/{what} ({args.profile}): {spec.runs} runs; python "
          f"{platform.python_version()}, {os.cpu_count()} CPU cores, {args.workers} single-threaded workers")

    with tempfile.TemporaryDirectory(prefix="poisonlab-bench-") as cold:
        os.environ["POISONLAB_CACHE"] = cold  # nothing cached: every batch is trained
        kw = dict(grid=spec.grid, repeats=spec.repeats, seed=spec.seed, fixed=spec.fixed, cache=False,
                  progress=False)
        t = time.perf_counter()
        local = sweep.run(exp, **kw)
        t_local = time.perf_counter() - t

        t = time.perf_counter()
        client = executor.client(args.workers)
        client.wait_for_workers(args.workers)
        t_start = time.perf_counter() - t
        times, same = [], True
        for _ in range(2):  # first with fresh workers (they import torch and the chapter), then warm
            t = time.perf_counter()
            remote = sweep.run(exp, **kw, executor="dask", workers=args.workers)
            times.append(time.perf_counter() - t)
            same = same and remote.rows.equals(local.rows)

        n = 200
        t = time.perf_counter()
        for f in distributed.as_completed([client.submit(_noop, i, pure=False) for i in range(n)]):
            f.result()
        per_task = (time.perf_counter() - t) / n
        executor.close()

    print(f"batches {local.batches}; identical tables: {same}")
    print(f"local {t_local:.1f} s; dask {times[0]:.1f} s with fresh workers, {times[1]:.1f} s warm (cluster start "
          f"{t_start:.1f} s, not counted); speed-up {t_local / times[0]:.2f}x fresh, {t_local / times[1]:.2f}x warm")
    print(f"scheduler round trip per empty task: {1000 * per_task:.1f} ms "
          f"(tasks of this sweep: {1000 * t_local / local.batches:.0f} ms each on average)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
