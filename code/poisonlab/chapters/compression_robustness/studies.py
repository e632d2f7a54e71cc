"""What the compression chapter computes besides its sweeps: the pruning schedule traced through one training,
each layer's sparsity, what the weights of every method look like (the converse question), Tai et al.'s
decomposition of trained kernels against Eckart and Young's bound."""
from __future__ import annotations

import pandas as pd
import torch

from ... import train
from ...lab.profile import get_profile
from ...models import compress
from ..evasion.pipeline import CLASSES, seeds_of, train_subset
from .pipeline import KERNEL, RANKS, pruner, schedule_of, spec_of, steps_per_epoch, train_models, weight_names
from .sweeps import CHAPTER, base


def schedule_trace(profile=None, sparsity: float | None = None) -> pd.DataFrame:
    """One CNN pruned on the cubic schedule to the laws' sparsity, its layers' sparsity recorded after every
    optimiser step beside the schedule's value: step, layer, measured, scheduled."""
    S = CHAPTER.sizes(profile)
    s_f = S.law_sparsity if sparsity is None else sparsity

    def compute():
        config = {**CHAPTER.experiment.resolve(**{**base(S, "cnn"), "n_train": S.trace_n_train}),
                  "sparsity": s_f, "seed": 0}
        spec, spe = spec_of("cnn"), steps_per_epoch(config)
        names = weight_names(spec)
        hook = pruner([config], spe, names)
        start, every, n = schedule_of(config, spe)
        rows = []

        def record(step, params):
            hook(step, params)
            for k in names:
                rows.append({"step": step, "layer": k.rsplit(".", 1)[0],
                             "measured": float((params[k] == 0).double().mean()),
                             "scheduled": compress.cubic_sparsity(step, s_f, start, every, n)})

        X, y = train_subset(config["n_train"], 0)
        train.train_batched(X[None], y[None], model=spec, loss="ce", epochs=config["epochs"], lr=config["lr"],
                            batch_size=config["batch_size"], seeds=[seeds_of(0)["model"]], out_dim=CLASSES,
                            optimizer=train.Adam(), step_hook=record)
        return pd.DataFrame(rows)

    return CHAPTER.memo(("trace", s_f, get_profile(profile).name), compute)


def layer_sparsity(profile=None) -> pd.DataFrame:
    """Per model, final sparsity s_f and layer: the measured fraction of zero weights (mean over the repeats)."""
    S = CHAPTER.sizes(profile)
    rows = []
    for m in S.models:
        for s in S.sparsities[1:]:
            spec = CHAPTER.spec(f"prune-{m}", profile)
            configs = [{**CHAPTER.experiment.resolve(**{**spec.fixed, "sparsity": s}), "seed": spec.seed + r}
                       for r in range(spec.repeats)]
            trained = train_models_group(configs, S.sparsities)
            for key, v in trained.measured.items():
                if key.startswith("sparsity."):
                    rows.append({"model": m, "s_f": s, "layer": key[len("sparsity."):], "measured": float(v.mean()),
                                 "max_error": float((v - s).abs().max())})
    return pd.DataFrame(rows)


def train_models_group(configs: list[dict], sparsities):
    """The models of `configs` (one sparsity) read from the batch the sweep trained them in (every sparsity of
    the sweep, each repeat): a Trained restricted to the configurations asked for."""
    c0 = configs[0]
    seeds = [c["seed"] for c in configs]
    group = [{**c0, "sparsity": s, "seed": seed} for s in sparsities for seed in seeds]
    trained = train_models(group)
    ks = [i for i, c in enumerate(group) if c["sparsity"] == c0["sparsity"]]
    trained.measured = {k: v[ks] for k, v in trained.measured.items()}
    trained.accuracy = {k: v[ks] for k, v in trained.accuracy.items()}
    trained.params = {k: v[ks] for k, v in trained.params.items()}
    return trained


def structure(profile=None) -> pd.DataFrame:
    """The converse question: per CNN training (dense, adversarial, nuclear norm, pruned, low rank) and seed, what
    its weights have become: near-zero fraction, relative effective rank, Lipschitz product, clean accuracy."""
    S = CHAPTER.sizes(profile)
    rows = []
    kinds = {"dense": ("prune-cnn", {"sparsity": 0.0}), "adversarial": ("adversarial-cnn", {}),
             **{f"nuclear {w:g}": ("nuclear-cnn", {"nuclear_weight": w}) for w in S.nuclear_weights},
             f"pruned {S.law_sparsity:g}": ("prune-cnn", {"sparsity": S.law_sparsity}),
             "low rank lr1": ("lowrank-cnn", {"rank_schedule": "lr1"})}
    for label, (name, where) in kinds.items():
        first = CHAPTER.sweep(name, profile).rows
        first = first[first.eps == first.eps.min()]
        for k, v in where.items():
            first = first[first[k] == v]
        for _, r in first.iterrows():
            rows.append({"training": label, "seed": r.seed, "near_zero": r.near_zero, "sparsity": r.measured_sparsity,
                         "effective_rank": r.effective_rank, "lipschitz_product": r.lipschitz_product,
                         "clean_accuracy": r.clean_accuracy})
    return pd.DataFrame(rows)


def tai_errors(profile=None) -> pd.DataFrame:
    """Tai et al.'s decomposition of each trained dense CNN's conv2 kernel at the ranks of lr1 and lr2: the
    Frobenius error of our factors, Eckart and Young's prediction (the root sum of the squared singular values
    of the (C d) x (N d) reshape beyond K), and the rival (the same tail of the usual N x (C d d) reshape)."""
    spec = CHAPTER.spec("prune-cnn", profile)
    S = CHAPTER.sizes(profile)
    configs = [{**CHAPTER.experiment.resolve(**spec.fixed), "seed": spec.seed + r} for r in range(spec.repeats)]
    trained = train_models_group(configs, S.sparsities)
    rows = []
    for k in range(spec.repeats):
        W = trained.params["conv2.weight"][k].double()
        N, C = W.shape[:2]
        tai = torch.linalg.svdvals(W.permute(1, 2, 0, 3).reshape(C * KERNEL, N * KERNEL))
        usual = torch.linalg.svdvals(W.reshape(N, -1))
        for schedule in ("lr1", "lr2"):
            K = RANKS["cnn"][schedule][1]
            V, H = compress.tai_factors(W, K)
            rows.append({"seed": k, "schedule": schedule, "K": K,
                         "error": float((compress.tai_kernel(V, H) - W).norm()),
                         "predicted": float(tai[K:].square().sum().sqrt()),
                         "rival": float(usual[K:].square().sum().sqrt()) if K < len(usual) else 0.0,
                         "norm": float(W.norm())})
    return pd.DataFrame(rows)
