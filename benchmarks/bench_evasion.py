"""Accuracy-vs-eps curves of FGSM and PGD: ours against torchattacks' loop over eps, in one process.

One MLP (784-128-10, trained for 2 epochs on 10,000 MNIST images, seed 0), the 10,000 test images, 20 values
of eps. Ours: `evasion.fgsm_curve` (one input gradient serves every eps) and `evasion.pgd` on all eps at once
(per-example budgets and steps), in the chapter's chunks of rows; torchattacks 3.5.1: `FGSM(model, eps)` and
`PGD(model, eps, alpha, steps, random_start=False)` once per eps. Both curves must agree (they are the same
attacks); the ratio of the times is printed.

    python benchmarks/bench_evasion.py [--images 10000] [--points 20] [--steps 10] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch


def _best(f, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args(argv)
    os.environ.setdefault("POISONLAB_CACHE", tempfile.mkdtemp(prefix="poisonlab-bench-"))
    import torchattacks

    from poisonlab.attacks import evasion
    from poisonlab.chapters.evasion import experiment, pipeline

    config = experiment.EXPERIMENT.resolve(model="mlp", n_train=10_000, epochs=2, lr=3e-3, seed=0)
    model = pipeline.train_models([config]).single(0).eval()
    X, y = pipeline.split("test")
    X, y = X[:args.images], y[:args.images]
    eps = np.linspace(0.0, 0.3, args.points)
    print(f"# MLP, {len(y)} test images, {args.points} eps in [0, 0.3], python {platform.python_version()}, "
          f"torch {torch.__version__}, torchattacks {torchattacks.__version__}, {os.cpu_count()} CPU cores, "
          f"{torch.get_num_threads()} torch threads, best of {args.repeats}")

    ours_t, ours = _best(lambda: evasion.fgsm_curve(model, X, y, eps), args.repeats)
    ref_t, ref = _best(lambda: [evasion.accuracy(model, torchattacks.FGSM(model, eps=float(e))(X, y), y)
                                for e in eps], args.repeats)
    assert np.allclose(ours.numpy(), ref), "FGSM curves differ"
    print(f"FGSM curve: ours {ours_t:.2f} s, torchattacks loop {ref_t:.2f} s, ratio {ref_t / ours_t:.1f}x")

    def ours_pgd():  # every budget in one program, run in chunks of the chapter's size (pipeline.CHUNK rows)
        B = len(y)
        rows, labels = X.repeat(len(eps), 1, 1, 1), y.repeat(len(eps))
        e = torch.tensor(eps, dtype=X.dtype).repeat_interleave(B)
        right = []
        for s in range(0, len(rows), pipeline.CHUNK):
            part = slice(s, s + pipeline.CHUNK)
            adv = evasion.pgd(model, rows[part], labels[part], e[part], steps=args.steps,
                              step_size=2.5 * e[part] / args.steps)
            with torch.no_grad():
                right.append((model(adv).argmax(1) == labels[part]).double())
        return torch.cat(right).reshape(len(eps), B).mean(1).numpy()

    def ref_pgd():
        return [evasion.accuracy(model, torchattacks.PGD(model, eps=float(e), alpha=2.5 * float(e) / args.steps,
                                                         steps=args.steps, random_start=False)(X, y), y)
                for e in eps]

    ours_t, ours = _best(ours_pgd, args.repeats)
    ref_t, ref = _best(ref_pgd, args.repeats)
    print(f"PGD curve ({args.steps} steps): ours {ours_t:.2f} s, torchattacks loop {ref_t:.2f} s, "
          f"ratio {ref_t / ours_t:.2f}x; largest accuracy difference {np.abs(ours - np.array(ref)).max():.2g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
