"""The certified-training chapter's studies beyond the sweeps: a 2-D task small enough for the exact worst case
(a mixed-integer program per point) beside IBP and CROWN, and random sampling in the ball as a would-be
certificate (the soundness laws' rival)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ... import train
from ...lab import cache
from ...lab.profile import get_profile
from ...models import bounds, crown, exact
from ...models.spec import Linear, ReLU, Spec
from ..evasion.pipeline import attack_grid, seeds_of
from .pipeline import Trained, test_images, train_models
from .sweeps import CHAPTER, base, training

TOY_TRAININGS = ("normal", "ibp")
TOY = {"lr": 1e-2, "batch_size": 50, "epochs": 100, "warmup": 10, "rampup": 50, "kappa": 0.5}


def toy_spec(hidden) -> Spec:
    """2 inputs, ReLU layers of `hidden` units, 2 classes."""
    widths, layers = [2, *hidden, 2], []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        layers += [Linear(a, b, name=f"fc{i}")] + ([ReLU()] if i < len(widths) - 1 else [])
    return Spec(layers, name="toy")


def toy_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half-moons (scikit-learn's make_moons, noise 0.2): n points of seed `seed`'s data stream."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n, noise=0.2, random_state=seeds_of(seed)["data"] % 2**31)
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


def toy_models(how: str, profile=None) -> tuple[Spec, dict]:
    """The 2-D networks of every repeat trained normally or by IBP (Gowal's mix, elided, at toy_eps; no pixel
    box): (spec, stacked params); cached by their settings and the source."""
    S = CHAPTER.sizes(profile)
    spec = toy_spec(S.toy_hidden)
    seeds = list(range(S.repeats))
    keys = [{"toy": how, "n": S.toy_n, "hidden": list(S.toy_hidden), "eps": S.toy_eps, **TOY, "seed": s}
            for s in seeds]

    def compute():
        data = [toy_data(S.toy_n, s) for s in seeds]
        X, y = torch.stack([d[0] for d in data]), torch.stack([d[1] for d in data])
        goal = hook = None
        if how == "ibp":
            goal = train.IBP(spec, S.toy_eps, kappa=TOY["kappa"], elide=True, box=None)
            spe = -(-S.toy_n // TOY["batch_size"])
            hook = train.Ramp(goal, S.toy_eps, TOY["warmup"] * spe, TOY["rampup"] * spe)
        model = train.train_batched(X, y, model=spec, loss="ce", epochs=TOY["epochs"], lr=TOY["lr"],
                                    batch_size=TOY["batch_size"], seeds=[seeds_of(s)["model"] for s in seeds],
                                    out_dim=2, optimizer=train.Adam(), objective=goal, step_hook=hook)
        return model.params

    return spec, cache.tensors("certified", keys, compute)


def toy_margins(profile=None) -> pd.DataFrame:
    """Per training, repeat and test point (correctly classified): the worst-case margin z_y - z_other over the
    L_inf ball of radius toy_eps, exact (MILP), and its lower bounds by IBP and CROWN."""
    def compute():
        S = CHAPTER.sizes(profile)
        rows = []
        for how in TOY_TRAININGS:
            spec, params = toy_models(how, profile)
            for k in range(S.repeats):
                p = {name: v[k] for name, v in params.items()}
                X, y = toy_data(S.toy_n + S.toy_points, 10_000 + k)
                X, y = X[-S.toy_points:], y[-S.toy_points:]
                with torch.no_grad():
                    right = spec.forward(p, X).argmax(1) == y
                X, y = X[right], y[right]
                other = (1 - y).unsqueeze(1)
                with torch.no_grad():
                    ibp = bounds.margin_bounds(spec, p, X, y, S.toy_eps, box=None).gather(1, other)[:, 0]
                    cr = crown.crown_margins(spec, p, X, y, S.toy_eps, box=None).gather(1, other)[:, 0]
                ex = exact.exact_margins(spec, p, X, y, S.toy_eps, box=None)[np.arange(len(y)), other[:, 0].numpy()]
                rows.append(pd.DataFrame({"training": how, "seed": k, "exact": ex, "ibp": ibp.double().numpy(),
                                          "crown": cr.double().numpy()}))
        return pd.concat(rows, ignore_index=True)

    return CHAPTER.memo(("toy", get_profile(profile).name), compute)


def toy_looseness(profile=None) -> pd.DataFrame:
    """Per training and bound: the mean over points of exact - bound (how much the certificate gives away), with a
    seed-jackknife interval, and the fraction of points each certifies (bound > 0) against the exact fraction."""
    from ... import stats

    rows = toy_margins(profile)
    out = []
    for how in TOY_TRAININGS:
        r = rows[rows.training == how]
        for bound in ("ibp", "crown"):
            per = r.assign(gap=r.exact - r[bound])
            loose = stats.jackknife(per, lambda d: float(d.gap.mean()))
            out.append({"training": how, "bound": bound, "looseness": loose[0], "lo": loose[1], "hi": loose[2],
                        "certified": float((r[bound] > 0).mean()), "exact_certified": float((r.exact > 0).mean()),
                        "points": len(r)})
    return pd.DataFrame(out)


def trained(name: str, profile=None, **changes) -> Trained:
    """The models of training `name` (sweeps.TRAINED) of every repeat, as the sweeps train them."""
    S = CHAPTER.sizes(profile)
    config = CHAPTER.experiment.resolve(**{**base(S), **training(S, name), **changes})
    return train_models([{**config, "seed": s} for s in range(S.repeats)])


def sampled_robust(models: Trained, X, y, eps: float, samples: int, seed: int) -> torch.Tensor:
    """(K, n) whether `samples` uniform random points of the clipped ball around each image (and its corners'
    signs drawn at random for half of them) are all classified y: random search as a would-be certificate."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = bounds.ball(X, eps)
    module, K = models.module(), models.K
    ok = torch.ones(K, len(y), dtype=torch.bool)
    with torch.no_grad():
        for s in range(samples):
            u = torch.rand(X.shape, generator=g)
            if s % 2:
                u = (u > 0.5).to(X.dtype)  # a corner of the box: where a linear function has its extremes
            Z = lo + u * (hi - lo)
            pred = module(Z.unsqueeze(0).expand(K, *Z.shape).reshape(-1, *X.shape[1:])).argmax(1).reshape(K, -1)
            ok &= pred == y
    return ok


def sampling_rival(profile=None, eps: float = 0.1, samples: int = 100) -> dict:
    """For the normally trained network at eps: of the images that random sampling declares robust, the fraction
    that PGD breaks (the rival of the soundness laws: a search is no certificate)."""
    def compute():
        S = CHAPTER.sizes(profile)
        models = trained("normal", profile)
        X, y = test_images(S.n_test)
        ok = sampled_robust(models, X, y, eps, samples, seed=seeds_of(0)["attack"])
        attack = {"attack": "pgd", "norm": "inf", "steps": 20, "step_size": None, "restarts": 1,
                  "temperature": 1.0, "attacker_temperature": "known"}
        robust = attack_grid(models.module(), X, y, [eps], attack, [seeds_of(s)["attack"] for s in range(models.K)])
        robust = robust[:, 0] == y
        return {"declared": int(ok.sum()), "broken": int((ok & ~robust).sum()),
                "fraction": float((ok & ~robust).sum() / max(int(ok.sum()), 1))}

    return CHAPTER.memo(("sampling", get_profile(profile).name, eps, samples), compute)


def growth(profile=None) -> pd.DataFrame:
    """Per training of the depth sweep and width: the factor by which one more hidden layer multiplies IBP's mean
    logit width (exp of the slope of log width against depth, fitted over the depths), with a seed-jackknife
    interval."""
    from ... import stats
    from .sweeps import DEPTH_TRAINED, sweep

    def factor(rows):
        return float(np.exp(np.polyfit(rows.depth.to_numpy(float), np.log(rows.mean_bound_width.to_numpy(float)), 1)[0]))

    out = []
    for how in DEPTH_TRAINED:
        rows = sweep(f"depth-{how}", profile).rows
        for w, r in rows.groupby("width", sort=True):
            est, lo, hi, _ = stats.jackknife(r, factor)
            out.append({"training": how, "width": int(w), "factor": est, "lo": lo, "hi": hi,
                        "clean_min": float(r.groupby("depth").clean_accuracy.mean().min())})
    return pd.DataFrame(out)
