"""The image-classification chapter's sweeps: the attacks' and defences' alpha sweeps, their summaries,
the damage per label, early stopping and the held-out gap of the learning curves.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ... import attacks, stats, validate
from ...lab import sweep
from ...lab.profile import get_profile
from . import theory
from ...lab.chapter import Chapter, SweepSpec
from .experiment import DEFENSES, EXPERIMENT, FLIPS, MODELS, make_data
from .sizes import SIZES


def _resolve(seed=0, **params) -> dict:
    return EXPERIMENT.resolve(**params, seed=seed)


def class_share(classes, seeds, reduce: str = "min", **params) -> float:
    """The share of the training points whose class is in `classes`: smallest ("min") or mean over the seeds."""
    reduce = validate.choice("reduce", reduce, ("min", "mean"))
    shares = []
    for s in seeds:
        ds = make_data(_resolve(int(s), **params))
        shares.append(float(sum((ds.y_train == c).sum() for c in classes)) / ds.n_train)
    if not shares:
        raise ValueError("seeds must hold at least one seed")
    return min(shares) if reduce == "min" else float(np.mean(shares))


def pair_alphas(fractions, seeds, pair=(1, 7), **params) -> list:
    """Fractions f of the pair's points as fractions alpha of the training set, feasible for every seed."""
    share = class_share(pair, seeds, **params)
    return [math.floor(validate.fraction("fractions", f) * share * 1e4) / 1e4 for f in fractions]


def _attack_specs(model: str, S, seed: int = 0) -> dict[str, SweepSpec]:
    """The attacks' alpha sweeps of one model with the chapter's sizes S (S.attacks[model]): flip -> SweepSpec."""
    R = S.sweep_repeats[model]
    stride = S.alpha_stride[model]
    fixed = {"model": model, "epochs": S.epochs[model], "batch_size": S.batch_size[model]}
    seeds = range(seed, seed + R)
    grids = {"random": S.random_alphas, "target-class": S.target_alphas, "pair": pair_alphas(S.pair_fractions, seeds),
             "least-confident": S.confidence_alphas, "most-confident": S.confidence_alphas}
    # thinning keeps the points the chapter reads: no flips, the random-flip threshold, alpha = 1 and
    # the small alpha at which random and confidence flips are compared per label
    keep = {"random": {0.0, theory.threshold(10), 1.0, S.damage_alpha},
            "least-confident": {0.0, S.damage_alpha}, "most-confident": {0.0, S.damage_alpha}}
    grids = {flip: [a for i, a in enumerate(alphas) if i % stride == 0 or a in keep.get(flip, {0.0})]
             for flip, alphas in grids.items()}
    return {flip: SweepSpec({"alpha": alphas}, {**fixed, "flip": flip}, R, seed) for flip, alphas in grids.items()
            if flip in S.attacks[model]}


def _defense_specs(S, seed: int = 0) -> dict[tuple, SweepSpec]:
    """Every defence x alpha for each model of S.defense_alphas and each attack (pair: alpha capped at 90% of
    the pair's share): (model, flip) -> SweepSpec."""
    R = S.defense_repeats
    pair_max = 0.9 * class_share((1, 7), range(seed, seed + R))
    out = {}
    for model, alphas in S.defense_alphas.items():
        fixed = {"model": model, "epochs": S.epochs[model], "batch_size": S.batch_size[model]}
        for flip in FLIPS:
            grid_alphas = sorted({round(min(a, pair_max), 4) for a in alphas}) if flip == "pair" else list(alphas)
            out[model, flip] = SweepSpec({"defense": list(DEFENSES), "alpha": grid_alphas}, {**fixed, "flip": flip},
                                         R, seed)
    return out


def _sweeps(S) -> dict[str, SweepSpec]:
    """Every sweep of the chapter by name: <flip>-<model> (the attacks), defense-<model>-<flip>."""
    out = {f"{flip}-{model}": spec for model in MODELS for flip, spec in _attack_specs(model, S).items()}
    out.update({f"defense-{model}-{flip}": spec for (model, flip), spec in _defense_specs(S).items()})
    return out


CHAPTER = Chapter(EXPERIMENT, SIZES, _sweeps)


def _run(spec: SweepSpec, cache: bool):
    return sweep.run(EXPERIMENT, grid=spec.grid, repeats=spec.repeats, seed=spec.seed, fixed=spec.fixed, cache=cache,
                     progress=False)


def attack_sweeps(model: str, S, seed: int = 0, cache: bool = True) -> dict:
    """The attacks' alpha sweeps of one model with the chapter's sizes S (S.attacks[model]): flip -> SweepResult."""
    return {flip: _run(spec, cache) for flip, spec in _attack_specs(model, S, seed).items()}


def sweeps_of(model: str, profile=None) -> dict:
    """attack_sweeps of `model` with the chapter's sizes in `profile`, once per process (cells and laws share it)."""
    profile = get_profile(profile)
    return CHAPTER.memo(("attacks", model, profile.name), lambda: attack_sweeps(model, CHAPTER.sizes(profile)))


# the metrics' ranges: the experiment's, and the fractions and accuracies the chapter's studies derive from them
_UNIT = (0.0, 1.0)
RANGES = {**EXPERIMENT.ranges, **{m: _UNIT for m in (
    "final_accuracy", "es_accuracy", "oracle_accuracy", "final_fit", "es_fit", "discard_clean", "catch_flipped",
    "discard_clean_pred", "catch_flipped_pred")}}


def summarize(rows: pd.DataFrame, by, metrics) -> pd.DataFrame:
    """stats.summarize as the chapter's tables show it: groups sorted, the rows pooled in column `n`, intervals
    inside each metric's range (RANGES; accuracies and fractions on the logit scale)."""
    return stats.summarize(rows, by, metrics, sort=True, count="n", ranges=RANGES)


def damage_per_label(sweeps: dict, alpha: float) -> pd.DataFrame:
    """Test accuracy lost per flipped label at `alpha`, paired by seed with alpha = 0, for each attack."""
    out = []
    for flip, res in sweeps.items():
        rows = res.rows
        if not np.isclose(rows["alpha"], alpha).any():
            continue
        base = rows[rows.alpha == 0].set_index("seed")["test_accuracy"]
        at = rows[np.isclose(rows.alpha, alpha)].set_index("seed")
        first = rows.iloc[0]
        data_params = {k: (None if pd.isna(first[k]) else first[k]) for k in ("dataset", "data_dir", "n_train")}
        flips = attacks.poison_count(alpha, make_data(_resolve(int(at.index[0]), **data_params)).n_train)
        out.append(pd.DataFrame({"flip": flip, "seed": at.index,
                                 "per_label": (base.loc[at.index].to_numpy() - at["test_accuracy"].to_numpy()) / flips}))
    return summarize(pd.concat(out, ignore_index=True), "flip", "per_label")


def defense_sweeps(S, seed: int = 0, cache: bool = True) -> pd.DataFrame:
    """Rows of every defence x attack x alpha x repeat for the models of S.defense_alphas (pair: alpha
    capped at 90% of the pair's share), each with the undefended run's accuracy of the same seed."""
    frames = [_run(spec, cache).rows for spec in _defense_specs(S, seed).values()]
    rows = pd.concat(frames, ignore_index=True)
    base = rows[rows.defense == "none"].set_index(["model", "flip", "alpha", "seed"])["test_accuracy"]
    rows["recovered"] = rows["test_accuracy"].to_numpy() - base.loc[
        list(zip(rows.model, rows.flip, rows.alpha, rows.seed))].to_numpy()
    return rows


def at_alpha(rows: pd.DataFrame, alpha: float, metric: str = "test_accuracy") -> tuple:
    """(mean, lo, hi) of a metric over the repeats at one alpha (95% t-interval, on the logit scale for a metric
    in [0, 1])."""
    values = rows.loc[np.isclose(rows["alpha"], alpha), metric]
    if values.empty:
        raise ValueError(f"alpha = {alpha} was not measured; measured: {sorted(rows['alpha'].unique())}")
    return stats.mean_ci(values, bounds=RANGES.get(metric))


def early_stopping_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run (model, alpha, seed): test accuracy and flipped fit at the end, at the epoch of best
    poisoned held-out accuracy (what a defender can do) and at that of best clean held-out accuracy."""
    rows = []
    for key, c in curves.groupby(["model", "alpha", "seed"], sort=True):
        c = c[c.epoch >= 1].reset_index(drop=True)
        last, es, oracle = c.iloc[-1], c.iloc[int(c.val_accuracy.argmax())], c.iloc[int(c.val_accuracy_clean.argmax())]
        rows.append({"model": key[0], "alpha": key[1], "seed": key[2], "final_accuracy": last.test_accuracy,
                     "es_accuracy": es.test_accuracy, "oracle_accuracy": oracle.test_accuracy,
                     "es_epoch": int(es.epoch), "final_fit": last.flipped_fit, "es_fit": es.flipped_fit})
    return pd.DataFrame(rows)


def noisy_heldout_gap(curves: pd.DataFrame, K: int = 10) -> pd.DataFrame:
    """Per seed: mean over runs and epochs of the measured poisoned held-out accuracy minus its prediction
    from the clean one, alpha_v/(K-1) + s(alpha_v) acc_clean, alpha_v the held-out split's flipped fraction.

    Runs of one seed share the data split and (nested) flips, so the seed is the independent unit. Column
    sd: the sampling SD of a run's gap (theory.heldout_gap_sd), averaged over the seed's runs (no credit
    for averaging runs that share one held-out split).
    """
    c = curves[curves.epoch >= 1]
    pred = c.val_flipped / (K - 1) + (1 - c.val_flipped * K / (K - 1)) * c.val_accuracy_clean
    c = c.assign(gap=c.val_accuracy - pred,
                 sd=theory.heldout_gap_sd(c.val_accuracy_clean.to_numpy(), c.val_flipped.to_numpy(), K, c.n_val.iloc[0]))
    return c.groupby("seed", as_index=False)[["gap", "sd"]].mean()


def ci_table(summary: pd.DataFrame, keys: dict, metrics: dict, digits: int = 3) -> pd.DataFrame:
    """A summary (columns m_mean, m_lo, m_hi per metric) as the page shows it: the `keys` columns renamed
    (old -> new), each metric one column "mean [lo, hi]" named by `metrics` (old -> new), no index."""
    from ...book import fmt_ci
    out = pd.DataFrame({new: summary[old].to_numpy() for old, new in keys.items()})
    for m, name in metrics.items():
        out[f"{name} [95% CI]"] = [fmt_ci(a, b, c, digits) for a, b, c in
                                   zip(summary[f"{m}_mean"], summary[f"{m}_lo"], summary[f"{m}_hi"])]
    return out


def confidence_gap(sweeps: dict) -> pd.DataFrame:
    """Per alpha of the confidence sweeps: accuracy under least-confident minus most-confident flips, paired by
    seed (same data, model seeds and reference model), mean with its 95% t-interval (columns gap_mean, gap_lo,
    gap_hi, n)."""
    least = sweeps["least-confident"].rows.set_index(["alpha", "seed"]).test_accuracy
    most = sweeps["most-confident"].rows.set_index(["alpha", "seed"]).test_accuracy
    both = least.index.intersection(most.index)
    gap = (least.loc[both] - most.loc[both]).rename("gap").reset_index()
    return summarize(gap, "alpha", "gap")


def interval_of(summary: pd.DataFrame, key, metric: str) -> tuple:
    """(mean, lo, hi) of `metric` in the row `key` of a summary indexed by its group."""
    row = summary.loc[key]
    return float(row[f"{metric}_mean"]), float(row[f"{metric}_lo"]), float(row[f"{metric}_hi"])


def gap_at(gap: pd.DataFrame, alpha: float) -> tuple:
    """(mean, lo, hi) of confidence_gap at `alpha`."""
    return interval_of(gap.set_index("alpha"), gap.alpha[np.isclose(gap.alpha, alpha)].iloc[0], "gap")


def smallest_alpha(gap: pd.DataFrame) -> float:
    """The smallest alpha > 0 of confidence_gap."""
    return float(gap.alpha[gap.alpha > 0].min())


def first_alpha(gap: pd.DataFrame) -> float:
    """The smallest alpha from which on most-confident flips cost more accuracy than least-confident ones at every
    measured alpha below 1 (confidence_gap's interval above 0); ValueError if there is none."""
    inner = gap[(gap.alpha > 0) & (gap.alpha < 1)].sort_values("alpha")
    above = (inner.gap_lo > 0).to_numpy()
    for i in range(len(above)):
        if above[i:].all():
            return float(inner.alpha.iloc[i])
    raise ValueError("gap must show most-confident flips costing more at its largest alphas below 1; it does not")


def worst_alpha(gap: pd.DataFrame) -> float:
    """The alpha at which most-confident flips cost the most more than least-confident ones."""
    return float(gap.alpha.iloc[int(gap.gap_mean.to_numpy().argmax())])


def gain_fit(es: pd.DataFrame, param: str) -> tuple:
    """(estimate, lo, hi) of the affine fit of early stopping's gain on alpha x (flipped fit memorised after the
    chosen epoch) over the runs of early_stopping_summary, param "a" (intercept) or "b" (slope), with the
    leave-one-seed-out jackknife 95% interval (the runs of one seed share its data split)."""
    param = validate.choice("param", param, ("a", "b"))
    est, lo, hi, _ = stats.jackknife(es, lambda r: stats.fit_affine(r.alpha * (r.final_fit - r.es_fit),
                                                                    r.gain).params[param])
    return est, lo, hi