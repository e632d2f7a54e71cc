"""The compression chapter's sweeps: pruning at each sparsity (FGSM and PGD), the batch-size test, low rank, the
nuclear norm, adversarial training, the dense baseline stopped early, Fashion-MNIST; and what is read from
them: the area under the accuracy-vs-eps curve, and its difference from the dense baseline's at equal clean
accuracy."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import stats
from ...lab.chapter import Chapter, SweepSpec
from .experiment import EXPERIMENT
from .sizes import SIZES


def base(S, model: str, *varied) -> dict:
    """What every sweep of `model` fixes (but the parameters `varied`): its training (subset, epochs, learning
    rate) and attacked images."""
    fixed = {"model": model, "n_train": S.n_train[model], "epochs": S.epochs[model], "lr": S.lr[model],
             "batch_size": S.batch_size[model], "n_test": S.n_test[model], "n_clean": S.n_clean}
    return {k: v for k, v in fixed.items() if k not in varied}


def _pgd(S, model: str) -> dict:
    return {**base(S, model), "attack": "pgd", "steps": S.pgd_steps, "n_test": S.pgd_test[model]}


def _sweeps(S) -> dict[str, SweepSpec]:
    R, out = S.repeats, {}
    for m in S.models:
        out[f"prune-{m}"] = SweepSpec({"sparsity": S.sparsities, "eps": S.eps}, base(S, m), R)
        out[f"prune-pgd-{m}"] = SweepSpec({"sparsity": S.sparsities, "eps": S.eps_pgd}, _pgd(S, m), R)
        out[f"lowrank-{m}"] = SweepSpec({"rank_schedule": ["lr1", "lr2"], "eps": S.eps}, base(S, m), R)
        out[f"early-{m}"] = SweepSpec({"epochs": S.match_epochs[m], "eps": S.eps}, base(S, m, "epochs"), R)
    small, big = S.batches  # the source's minibatches, dense CNN: at equal epochs, and the big one at equal steps
    out["batch-cnn"] = SweepSpec({"batch_size": [small, big], "eps": S.eps}, base(S, "cnn", "batch_size"), R)
    out["batch-steps-cnn"] = SweepSpec({"eps": S.eps}, {**base(S, "cnn", "epochs", "batch_size"), "batch_size": big,
                                                       "epochs": S.epochs["cnn"] * big // small}, R)
    out["nuclear-cnn"] = SweepSpec({"nuclear_weight": S.nuclear_weights, "eps": S.eps}, base(S, "cnn"), R)
    adversarial = {"train_eps": S.adversarial_eps, "train_steps": S.adversarial_steps}
    out["adversarial-cnn"] = SweepSpec({"eps": S.eps}, {**base(S, "cnn"), **adversarial}, R)
    out["adversarial-pgd-cnn"] = SweepSpec({"eps": S.eps_pgd}, {**_pgd(S, "cnn"), **adversarial}, R)
    if S.fashion_sparsities:
        out["fashion-cnn"] = SweepSpec({"sparsity": S.fashion_sparsities, "eps": S.eps},
                                       {**base(S, "cnn"), "dataset": "fashion-mnist"}, R)
    return out


CHAPTER = Chapter(EXPERIMENT, SIZES, _sweeps)


def sweep(name: str, profile=None):
    """The sweep `name` of the chapter (CHAPTER.sweep)."""
    return CHAPTER.sweep(name, profile)


def summary(name: str, profile=None) -> pd.DataFrame:
    """Per grid point of sweep `name`: every metric's mean and 95% interval (SweepResult.summary)."""
    return sweep(name, profile).summary()


def auc(rows: pd.DataFrame, by=()) -> pd.DataFrame:
    """Per seed (and per value of `by`): the clean accuracy, and the area under adversarial accuracy against eps
    divided by the largest eps (1: no accuracy lost at any budget; the trapezoid rule over the sweep's budgets)."""
    keys = [*by, "seed"]
    out = []
    for key, g in rows.groupby(keys, sort=True):
        g = g.sort_values("eps")
        eps, acc = g.eps.to_numpy(float), g.adversarial_accuracy.to_numpy(float)
        area = float(np.sum((acc[1:] + acc[:-1]) / 2 * np.diff(eps)) / (eps[-1] - eps[0]))
        out.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                    "clean_accuracy": float(g.clean_accuracy.iloc[0]), "auc": area})
    return pd.DataFrame(out)


def dense_curve(model: str, profile=None) -> pd.DataFrame:
    """Per seed and number of epochs: the dense baseline's clean accuracy and AUC (early stopped and in full)."""
    S = CHAPTER.sizes(profile)
    early = auc(sweep(f"early-{model}", profile).rows, by=("epochs",))
    full = auc(sweep(f"prune-{model}", profile).rows.query("sparsity == 0"))
    return pd.concat([early, full.assign(epochs=S.epochs[model])], ignore_index=True)


def dense_line(curve: pd.DataFrame) -> tuple[float, float, float, float]:
    """(a, b, lo, hi): the least-squares line auc = a + b clean_accuracy through the dense baseline's points (every
    seed, every number of epochs), and the range of clean accuracies it is read in."""
    b, a = np.polyfit(curve.clean_accuracy.to_numpy(float), curve.auc.to_numpy(float), 1)
    return float(a), float(b), float(curve.clean_accuracy.min()), float(curve.clean_accuracy.max())


def _matched_mean(rows: pd.DataFrame) -> float:
    """Mean over a method's networks inside the dense range of auc minus the dense line at their clean accuracy."""
    dense, method = rows[rows.kind == "dense"], rows[rows.kind == "method"]
    a, b, lo, hi = dense_line(dense)
    inside = method[(method.clean_accuracy >= lo) & (method.clean_accuracy <= hi)]
    return float((inside.auc - a - b * inside.clean_accuracy).mean()) if len(inside) else float("nan")


def matched(method: pd.DataFrame, model: str, profile=None) -> dict:
    """A method's networks (per seed: clean_accuracy, auc) against the dense baseline at equal clean accuracy:
    the mean of auc minus the dense line (`dense_line`) over the networks whose clean accuracy the dense ones
    span, with its leave-one-seed-out jackknife interval (a seed's dense points and its own network out at once);
    and at equal epochs, the paired difference from the same seed's fully trained dense network."""
    curve = dense_curve(model, profile)
    full = curve[curve.epochs == curve.epochs.max()].set_index("seed").auc
    equal = (method.set_index("seed").auc - full).dropna().to_numpy(float)
    rows = pd.concat([curve.assign(kind="dense"), method.assign(kind="method")], ignore_index=True)
    a, b, lo, hi = dense_line(curve)
    inside = int(((method.clean_accuracy >= lo) & (method.clean_accuracy <= hi)).sum())
    out = {"clean": float(method.clean_accuracy.mean()), "auc": float(method.auc.mean()), "inside": inside,
           "seeds": len(method), "equal_epochs": stats.mean_ci(equal, bounds=(-1.0, 1.0)), "matched": None}
    if inside >= 2:
        est, lo_, hi_, _ = stats.jackknife(rows, _matched_mean)
        if np.isfinite([est, lo_, hi_]).all():
            out["matched"] = (est, lo_, hi_)
    return out


def methods(profile=None) -> dict[tuple, pd.DataFrame]:
    """(model, method label) -> per seed clean accuracy and AUC of every compressed or robust network."""
    S = CHAPTER.sizes(profile)
    out = {}
    for m in S.models:
        pruned = auc(sweep(f"prune-{m}", profile).rows, by=("sparsity",))
        for s in S.sparsities[1:]:
            out[(m, f"pruned {s:g}")] = pruned[pruned.sparsity == s].drop(columns="sparsity")
        low = auc(sweep(f"lowrank-{m}", profile).rows, by=("rank_schedule",))
        for r in ("lr1", "lr2"):
            out[(m, f"low rank {r}")] = low[low.rank_schedule == r].drop(columns="rank_schedule")
    nuclear = auc(sweep("nuclear-cnn", profile).rows, by=("nuclear_weight",))
    for w in S.nuclear_weights:
        out[("cnn", f"nuclear {w:g}")] = nuclear[nuclear.nuclear_weight == w].drop(columns="nuclear_weight")
    out[("cnn", "adversarial")] = auc(sweep("adversarial-cnn", profile).rows)
    return out


def matched_table(profile=None) -> pd.DataFrame:
    """Per model and method: mean clean accuracy and AUC, and the AUC difference from the dense baseline at equal
    epochs (paired by seed, t-interval) and at equal clean accuracy (`matched`: None where fewer than two of its
    networks lie in the dense baseline's range of clean accuracy)."""
    return pd.DataFrame([{"model": m, "method": label, **matched(table, m, profile)}
                         for (m, label), table in methods(profile).items()])
