"""The laws of the evasion chapter, each a prediction against a measurement with a 95% interval over the
repeats (`law(name)`, `LAWS`, and each law's `rival`): FGSM is the optimal attack on a binary linear model,
box included; how far FGSM falls short of the optimum on softmax regression; which gradients float32 zeroes;
whether a margin attack sees through the temperature."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import stats
from ...lab.profile import get_profile
from .studies import binary_linear, gradients, softmax_optimal
from .sweeps import CHAPTER, sweep


def _mean_ci(values, bounds=None) -> tuple:
    """Mean over the repeats with its 95% t-interval (inside `bounds`, the statistic's range)."""
    return tuple(float(v) for v in stats.mean_ci(np.asarray(values, dtype=float), bounds=bounds))


def _paired(a, b) -> tuple:
    """Mean of the paired differences a - b of two accuracies over the repeats, with its t-interval."""
    return _mean_ci(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), bounds=(-1.0, 1.0))


def law_linear(profile) -> stats.Law:
    """Binary linear model: FGSM's accuracy drop at law_eps equals the fraction of points whose margin is at
    most the box-aware reduction sum_j |w_j| min(eps, room_j)."""
    S = CHAPTER.sizes(profile)
    rows = binary_linear(profile).query("eps == @S.law_eps")
    mean, lo, hi = _mean_ci(rows["drop"], bounds=(0.0, 1.0))
    return stats.Law("3 vs 7 logistic regression: FGSM's accuracy drop = the fraction of margins below the "
                     "box-aware reduction", float(rows.predicted.mean()), mean, lo, hi,
                     how=f"mean over {len(rows)} repeats at eps = {S.law_eps}")


def law_softmax(profile) -> stats.Law:
    """Softmax regression: FGSM fools the optimal attack's share of the images (ratio 1, as for two classes)."""
    S = CHAPTER.sizes(profile)
    rows = softmax_optimal(profile).query("eps == @S.law_eps")
    mean, lo, hi = _mean_ci(rows.fgsm / rows.optimal)
    return stats.Law("softmax regression: FGSM fools as many images as the optimal L_inf attack (ratio 1)", 1.0,
                     mean, lo, hi, how=f"ratio per repeat at eps = {S.law_eps}, mean over {len(rows)}")


def law_zero(profile) -> stats.Law:
    """MLP trained at the largest T, attacked at T = 1: the fraction of exactly zero input gradients is the
    fraction of images whose smallest logit gap exceeds 150 ln 2."""
    S = CHAPTER.sizes(profile)
    T = max(S.temperatures)
    rows = gradients(profile).query("temperature == @T")
    mean, lo, hi = _mean_ci(rows.measured, bounds=(0.0, 1.0))
    return stats.Law(f"T = {T:g}, attacker at T = 1: zero gradients = the share of logit gaps > 150 ln 2",
                     float(rows.predicted.mean()), mean, lo, hi, how=f"mean over {len(rows)} repeats")


def _at_temperature(name: str, T: float, profile) -> pd.Series:
    rows = sweep(name, profile).rows
    return rows[rows.temperature == T].sort_values("seed").adversarial_accuracy.reset_index(drop=True)


def law_margin(profile) -> stats.Law:
    """Masking only: PGD on the logit margin (which no temperature saturates) finds the model trained at the
    largest T exactly as robust as the one trained at T = 1 (difference 0)."""
    S = CHAPTER.sizes(profile)
    T = max(S.temperatures)
    mean, lo, hi = _paired(_at_temperature("temperature-margin-known", T, profile),
                           _at_temperature("temperature-margin-known", 1.0, profile))
    clean = sweep("temperature-margin-known", profile).rows.clean_accuracy.mean()
    return stats.Law(f"margin PGD: accuracy at T = {T:g} minus at T = 1 is 0 (temperature only masks)", 0.0,
                     mean, lo, hi, how="paired by seed, eps = " + f"{S.temperature_eps}; scale: clean accuracy",
                     scale=float(clean))


LAWS = {"linear-fgsm": law_linear, "softmax-fgsm": law_softmax, "zero-gradients": law_zero,
        "margin-temperature": law_margin}

# Laws whose verdict is "no": findings the chapter explains (tests/laws checks them both ways)
DISAGREES: dict[str, str] = {
    "softmax-fgsm": "the cross-entropy's gradient mixes the K - 1 pairwise directions, weighted by the model's "
                    "probabilities, and the sign of the mixture is not the best pairwise direction: FGSM is optimal "
                    "for two classes only",
    "margin-temperature": "temperature changes the model, not only its gradient: with Adam the last layer learns T "
                          "times slower, and the model trained at large T is less accurate and harder to attack "
                          "even for the unmasked margin attack",
}
UNRESOLVED: dict[str, str] = {}


def exceptions_table(laws: dict) -> pd.DataFrame:
    """The laws (name -> Law) whose verdict is not "yes", with the reason declared in DISAGREES or UNRESOLVED."""
    return stats.exceptions(laws, {**DISAGREES, **UNRESOLVED})


def interval(found: stats.Law) -> tuple:
    """(fitted, lo, hi) of a law, for book.fmt_ci."""
    return found.fitted, found.lo, found.hi


def law(name: str, profile=None) -> stats.Law:
    """The law `name` of the chapter (see LAWS) as a stats.Law: prediction against measurement with a 95% CI."""
    return CHAPTER.law(name, profile, LAWS, rival)


def rival(name: str, profile=None) -> float:
    """The value of law `name`'s statistic under a named competing (wrong) theory, which its interval must
    exclude (tests/laws)."""
    profile, S = get_profile(profile), CHAPTER.sizes(profile)
    if name == "linear-fgsm":  # the box forgotten: a point falls iff its margin < eps ||w||_1
        return float(binary_linear(profile).query("eps == @S.law_eps").no_box.mean())
    if name == "softmax-fgsm":  # FGSM as good as a random corner of the cube: half the optimum
        return 0.5
    if name == "zero-gradients":  # tiny gradients are never exactly zero, so FGSM's sign always has a direction
        return 0.0
    if name == "margin-temperature":  # the masked attack's difference: what the cross-entropy attacker at T = 1
        T = max(S.temperatures)  # reports
        return float((_at_temperature("temperature-fgsm-ignored", T, profile)
                      - _at_temperature("temperature-fgsm-ignored", 1.0, profile)).mean())
    raise ValueError(f"name must be one of {', '.join(LAWS)}; got {name!r}")


def table(profile=None) -> pd.DataFrame:
    """Every law's row (stats.table): statement, predicted, fitted with its interval, verdict."""
    return stats.table([law(name, profile) for name in LAWS])
