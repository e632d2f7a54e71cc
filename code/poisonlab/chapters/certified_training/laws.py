"""The laws of the certified-training chapter, each a prediction against a measurement with a 95% interval
(`law(name)`, `LAWS`, and each law's `rival`): IBP's and CROWN's certificates are sound (no certified image is
broken by PGD); the source's certified accuracy at 0.01;
the certification gap grows linearly at small eps; Gowal et al.'s published certified error at 0.1."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import stats
from ...lab.profile import get_profile
from .studies import sampling_rival
from .sweeps import CHAPTER, TRAINED, gap, sweep

SOURCE = {"clean": 0.96, "certified": 0.93}  # the source's tutorial, at eps = 0.01
GOWAL_ERROR = 0.0223  # Gowal et al. 2018, MNIST, verified error at eps = 0.1 (their large CNN)


def _mean_ci(values, bounds=(0.0, 1.0)) -> tuple:
    return tuple(float(v) for v in stats.mean_ci(np.asarray(values, dtype=float), bounds=bounds))


def soundness(bound: str, profile=None) -> tuple[int, int]:
    """(certified, certified yet broken by PGD): images x models x budgets of every sweep certified by `bound`."""
    S = CHAPTER.sizes(profile)
    names = [f"{t}-{bound}" for t in TRAINED] + ([f"cnn-{t}" for t in ("normal", "gowal")] if bound == "ibp" else [])
    certified = broken = 0
    for name in names:
        rows = sweep(name, profile).rows
        n = rows.n_test.to_numpy(float) if "n_test" in rows else np.full(len(rows), S.n_test)
        certified += int(round(float((rows.certified_accuracy * n).sum())))
        broken += int(round(float((rows.certified_but_broken * n).sum())))
    return certified, broken


def _law_sound(bound: str, profile) -> stats.Law:
    certified, broken = soundness(bound, profile)
    hi = 3.0 / certified if broken == 0 else None  # the rule of three: the one-sided 95% bound of a zero count
    if hi is None:
        mean, lo, hi = _mean_ci(np.r_[np.ones(broken), np.zeros(certified - broken)])
    else:
        mean, lo = 0.0, 0.0
    rival = sampling_rival(profile)["fraction"]
    return stats.Law(f"{bound.upper()}: certified images PGD breaks = 0", 0.0, mean, lo, hi,
                     how=f"{broken} of {certified} certified (images x models x budgets); 95% bound: rule of three; "
                     "scale: random sampling's rate", scale=rival)


def law_sound_ibp(profile) -> stats.Law:
    return _law_sound("ibp", profile)


def law_sound_crown(profile) -> stats.Law:
    return _law_sound("crown", profile)


def _at(name: str, eps: float, profile) -> pd.DataFrame:
    rows = sweep(name, profile).rows
    return rows[np.isclose(rows.eps, eps)].sort_values("seed")


def law_source_certified(profile) -> stats.Law:
    rows = _at("source-all", 0.01, profile)
    mean, lo, hi = _mean_ci(rows.certified_accuracy)
    return stats.Law(f"the source's recipe: certified accuracy at eps = 0.01 = {SOURCE['certified']:g}",
                     SOURCE["certified"], mean, lo, hi, how=f"IBP, mean over {len(rows)} seeds; scale: the source's "
                     "uncertified fraction", scale=1 - SOURCE["certified"])


def gap_ratio(profile=None) -> tuple:
    """gap(2 eps) / gap(eps) at the gap law's eps for the source's recipe: (estimate, lo, hi) by the seed
    jackknife."""
    S = CHAPTER.sizes(profile)
    rows = gap(sweep("gap", profile).rows)

    def ratio(r):
        by = r.groupby(np.isclose(r.eps, S.gap_eps)).gap.mean()
        return float(by[False] / by[True])

    return stats.jackknife(rows, ratio)[:3]


def law_gap(profile) -> stats.Law:
    S = CHAPTER.sizes(profile)
    est, lo, hi = gap_ratio(profile)
    return stats.Law(f"certification gap linear at small eps: gap({2 * S.gap_eps:g}) / gap({S.gap_eps:g}) = 2",
                     2.0, est, lo, hi, how="the source's recipe; ratio of means, seed jackknife; scale: the rival "
                     "minus 2", scale=2.0)


def law_gowal(profile) -> stats.Law:
    rows = _at("gowal-ibp", 0.1, profile)
    mean, lo, hi = _mean_ci(1 - rows.certified_accuracy)
    return stats.Law(f"IBP at 0.1 (Gowal's mix): certified error at eps = 0.1 = {GOWAL_ERROR:g} (their large CNN)",
                     GOWAL_ERROR, mean, lo, hi, how=f"1 - certified accuracy, mean over {len(rows)} seeds",
                     scale=GOWAL_ERROR)


LAWS = {"sound-ibp": law_sound_ibp, "sound-crown": law_sound_crown, "source-certified": law_source_certified,
        "gap-linear": law_gap, "gowal-anchor": law_gowal}

# Laws whose verdict is "no" or "not resolved" in the book, with why (tests/laws checks them both ways)
DISAGREES: dict[str, str] = {
    "source-certified": "the recipe certifies more than the tutorial claims with our minibatch of 128; the tutorial "
                        "gives none, and larger minibatches (fewer optimiser steps in the same epochs) bring both "
                        "its clean and its certified accuracy down towards the claims (the source table)",
    "gap-linear": "already between 0.0025 and 0.005 the gap grows by more than the factor 2 of a linear law, though "
                  "far less than the rival's 4: the quadratic term of the unstable units is measurable at the "
                  "smallest budgets we can resolve, and takes over at larger ones",
    "gowal-anchor": "Gowal et al.'s number is for a large CNN trained on all 60,000 images for many more epochs; the "
                    "source's 100-unit fully connected network, trained on 10,000 images for 20 epochs, is certified "
                    "far less at 0.1",
}
UNRESOLVED: dict[str, str] = {}


def exceptions_table(laws: dict) -> pd.DataFrame:
    """The laws (name -> Law) whose verdict is not "yes", with the reason declared in DISAGREES or UNRESOLVED."""
    return stats.exceptions(laws, {**DISAGREES, **UNRESOLVED})


def law(name: str, profile=None) -> stats.Law:
    """The law `name` of the chapter (see LAWS) as a stats.Law: prediction against measurement with a 95% CI."""
    return CHAPTER.law(name, profile, LAWS, rival)


def rival(name: str, profile=None) -> float:
    """The value of law `name`'s statistic under a named competing (wrong) theory, which its interval must
    exclude (tests/laws)."""
    profile = get_profile(profile)
    if name in ("sound-ibp", "sound-crown"):  # random sampling in the ball as the certificate
        return sampling_rival(profile)["fraction"]
    if name == "source-certified":  # any accurate network is certified: the normally trained one's
        return float(_at("normal-ibp", 0.01, profile).certified_accuracy.mean())
    if name == "gap-linear":  # the looseness of IBP alone, quadratic in eps (unstable units times their width)
        return 4.0
    if name == "gowal-anchor":  # a network that is not certified at all
        return 1.0
    raise ValueError(f"name must be one of {', '.join(LAWS)}; got {name!r}")


def table(profile=None) -> pd.DataFrame:
    """Every law's row (stats.table): statement, predicted, fitted with its interval, verdict."""
    return stats.table([law(name, profile) for name in LAWS])
