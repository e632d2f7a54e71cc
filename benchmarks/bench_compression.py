"""Pruned training of one CNN per final sparsity: ours (one batched program, `compress.Pruner` as the trainer's
step hook) against a loop of PyTorch modules pruned by torch.nn.utils.prune, in one process.

The chapter's CNN (or FC5, --model fc5) at the final sparsities {0, 0.5, 0.8, 0.9, 0.95, 0.98}, trained with Adam (lr 3e-3, batch 128)
on the same stratified MNIST subset, pruned on the same cubic schedule (the chapter's defaults). Ours:
`train.train_batched` with the Pruner. The loop: one `nn.Module` per sparsity (the spec's `sequential`, same
initial weights), `torch.optim.Adam`, `prune.l1_unstructured` on each weight at each pruning step (amount:
the schedule's new sparsity as a fraction of the weights still unpruned) and the masks applied by PyTorch's
forward pre-hooks. Both reach the same final sparsity per layer; the ratio of the times is printed.

    python benchmarks/bench_compression.py [--model cnn|fc5] [--batch-size 128] [--n-train 4000] [--epochs 2]
                                           [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

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
    parser.add_argument("--model", choices=("cnn", "fc5"), default="cnn")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    args = parser.parse_args(argv)
    os.environ.setdefault("POISONLAB_CACHE", tempfile.mkdtemp(prefix="poisonlab-bench-"))
    from torch import nn
    from torch.nn.utils import prune

    from poisonlab import train
    from poisonlab.chapters.compression_robustness import experiment, pipeline
    from poisonlab.chapters.evasion.pipeline import seeds_of, train_subset
    from poisonlab.models import compress
    from poisonlab.train.perms import epoch_permutations

    torch.set_num_threads(1)  # as the batched trainer runs (train.THREADS)
    sparsities = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98]
    configs = [{**experiment.EXPERIMENT.resolve(model=args.model, sparsity=s, n_train=args.n_train, epochs=args.epochs,
                                                lr=3e-3, batch_size=args.batch_size), "seed": 0} for s in sparsities]
    spec = pipeline.spec_of(args.model)
    names = pipeline.weight_names(spec)
    X, y = train_subset(args.n_train, 0)
    spe = pipeline.steps_per_epoch(configs[0])
    seed = seeds_of(0)["model"]

    def ours():
        hook = pipeline.pruner(configs, spe, names)
        K = len(configs)
        return train.train_batched(X.expand(K, *X.shape), y.expand(K, *y.shape), model=spec, loss="ce",
                                   epochs=args.epochs, lr=3e-3, batch_size=args.batch_size, seeds=[seed] * K, out_dim=10,
                                   optimizer=train.Adam(), step_hook=hook).params

    def loop():
        out = []
        start, every, n = pipeline.schedule_of(configs[0], spe)
        steps = [start + j * every for j in range(n + 1)]
        order = epoch_permutations([seed], len(y), args.epochs)[:, 0]
        for s_f in sparsities:
            net = spec.sequential(spec.init(seed))
            opt = torch.optim.Adam(net.parameters(), lr=3e-3)
            layers = [(m, "weight") for m in net if isinstance(m, (nn.Linear, nn.Conv2d))]
            t, pruned = 0, 0.0
            for e in range(args.epochs):
                for b in range(0, len(y), args.batch_size):
                    idx = order[e][b:b + args.batch_size]
                    loss = nn.functional.cross_entropy(net(X[idx]), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    t += 1
                    if s_f > 0 and t in steps:
                        target = compress.cubic_sparsity(t, s_f, start, every, n)
                        if target > pruned:
                            for m, name in layers:
                                prune.l1_unstructured(m, name, amount=(target - pruned) / (1 - pruned))
                            pruned = target
            out.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        return out

    t_ours, params = _best(ours, args.repeats)
    t_loop, states = _best(loop, args.repeats)
    ours_sparsity = compress.sparsity(params, names)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print(f"{args.model} x {len(sparsities)} sparsities, {args.n_train} images, {args.epochs} epochs, "
          f"batch {args.batch_size}")
    for k, s in enumerate(sparsities):
        weights = [v for key, v in states[k].items() if key.endswith("weight_mask") or
                   (key.endswith("weight") and f"{key}_mask" not in states[k] and f"{key[:-6]}weight_orig" not in states[k])]
        zeros = sum(float((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
        print(f"  s_f = {s:<5g} final sparsity: ours {float(ours_sparsity[k]):.4f}, loop {zeros:.4f}")
    print(f"ours (batched, Pruner hook): {t_ours:.2f} s")
    print(f"loop (torch.nn.utils.prune): {t_loop:.2f} s")
    print(f"speed-up: {t_loop / t_ours:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
