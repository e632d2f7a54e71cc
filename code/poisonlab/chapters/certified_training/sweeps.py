"""The certified-training chapter's sweeps: the source's recipe, normal and PGD training, Gowal et al.'s mix (at
every budget, certified by IBP and by CROWN), the ramp's length, depth and width, the CNN; and what is read from
them: the certification gap."""
from __future__ import annotations

import pandas as pd

from ... import stats
from ...lab.chapter import Chapter, SweepSpec
from .experiment import EXPERIMENT
from .sizes import SIZES

TRAINED = ("normal", "pgd", "source", "gowal")  # the four trainings compared at every budget
DEPTH_TRAINED = ("normal", "source")  # the depth and width sweep's trainings (Gowal's 0.1 collapses deep nets
# trained this briefly to a constant output, whose intervals are narrow for no interesting reason)


def base(S, *varied) -> dict:
    """What every MNIST sweep fixes (but the parameters `varied`)."""
    fixed = {"n_train": S.n_train, "epochs": S.epochs, "n_test": S.n_test, "n_clean": S.n_clean}
    return {k: v for k, v in fixed.items() if k not in varied}


def training(S, name: str) -> dict:
    """The settings of training `name` (TRAINED)."""
    return {"normal": {"train": "normal"}, "pgd": S.pgd, "source": S.source, "gowal": S.gowal}[name]


def _sweeps(S) -> dict[str, SweepSpec]:
    R, out = S.repeats, {}
    for name in TRAINED:
        out[f"{name}-ibp"] = SweepSpec({"eps": S.eps}, {**base(S), **training(S, name), "bound": "ibp"}, R)
        out[f"{name}-crown"] = SweepSpec({"eps": S.crown_eps}, {**base(S), **training(S, name), "bound": "crown"}, R)
    # the source's recipe as the source ran it: every training image
    everything = {"n_train": S.source_n_train, "n_test": S.law_test}
    out["source-all"] = SweepSpec({"eps": [0.0, 0.01, 0.1]}, {**base(S), **S.source, **everything}, R)
    out["source-batch"] = SweepSpec({"batch_size": S.source_batches, "eps": [0.0, 0.01]},
                                    {**base(S), **S.source, **everything}, R)
    out["gap"] = SweepSpec({"eps": [S.gap_eps, 2 * S.gap_eps]},
                           {**base(S), **S.source, "n_train": S.gap_train, "n_test": S.law_test}, S.gap_repeats)
    out["rampup"] = SweepSpec({"rampup": S.rampups, "eps": [0.0, S.gowal["eps_train"]]}, {**base(S), **_without(S.gowal, "rampup")}, R)
    for train in DEPTH_TRAINED:
        out[f"depth-{train}"] = SweepSpec(
            {"depth": S.depths, "width": S.widths, "eps": [S.width_eps]},
            {**base(S, "epochs", "n_train"), **training(S, train), "n_train": S.depth_n_train,
             "epochs": S.depth_epochs, **_short(S, train)}, R)
    for train in ("normal", "gowal"):
        cnn = S.cnn if train == "gowal" else {k: S.cnn[k] for k in ("n_train", "epochs")}
        out[f"cnn-{train}"] = SweepSpec({"eps": S.eps}, {**base(S), **training(S, train), "model": "cnn", **cnn}, R)
    return out


def _without(settings: dict, *names) -> dict:
    return {k: v for k, v in settings.items() if k not in names}


def _short(S, train: str) -> dict:
    """The source's recipe compressed into the depth sweep's few epochs: a sixth warm-up, the rest ramp."""
    if train == "normal":
        return {}
    return {"warmup": max(1, S.depth_epochs // 6), "rampup": S.depth_epochs - max(1, S.depth_epochs // 6)}


CHAPTER = Chapter(EXPERIMENT, SIZES, _sweeps)


def sweep(name: str, profile=None):
    """The sweep `name` of the chapter (CHAPTER.sweep)."""
    return CHAPTER.sweep(name, profile)


def summary(name: str, profile=None) -> pd.DataFrame:
    """Per grid point of sweep `name`: every metric's mean and 95% interval (SweepResult.summary)."""
    return sweep(name, profile).summary()


def at(name: str, eps: float, metric: str, profile=None, **where) -> tuple[float, float, float]:
    """(mean, lo, hi) of `metric` over the repeats of sweep `name` at budget eps (and the values `where`)."""
    rows = stats.rows_where(sweep(name, profile), eps=float(eps), **where)
    return tuple(float(v) for v in stats.mean_ci(rows[metric].to_numpy(float),
                                                  bounds=CHAPTER.experiment.ranges.get(metric)))


def paired(name_a: str, name_b: str, eps: float, metric: str, profile=None) -> tuple[float, float, float]:
    """(mean, lo, hi) over the repeats of metric in sweep a minus in sweep b at budget eps, paired by seed (the
    same trained networks and images certified two ways)."""
    a, b = (stats.rows_where(sweep(n, profile), eps=float(eps)).sort_values("seed") for n in (name_a, name_b))
    if list(a.seed) != list(b.seed):
        raise ValueError(f"sweeps {name_a} and {name_b} must hold the same seeds to be paired")
    d = a[metric].to_numpy(float) - b[metric].to_numpy(float)
    return tuple(float(v) for v in stats.mean_ci(d, bounds=(-1.0, 1.0)))


def compared(diff: tuple) -> str:
    """"more", "less" or "no distinguishably different" for an interval of a difference."""
    return "more" if diff[1] > 0 else "less" if diff[2] < 0 else "not distinguishably more or less"


def gap(rows: pd.DataFrame) -> pd.DataFrame:
    """Per seed and budget: PGD accuracy minus certified accuracy (the certification gap, >= 0)."""
    return rows.assign(gap=rows.pgd_accuracy - rows.certified_accuracy)
