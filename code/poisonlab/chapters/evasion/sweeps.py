"""The evasion chapter's sweeps: FGSM and PGD curves of the five models, the source's L_p attack, the
temperature sweep and adversarial training; and the tables read from them."""
from __future__ import annotations

import pandas as pd

from ...lab.chapter import Chapter, SweepSpec
from .experiment import EXPERIMENT
from .pipeline import MODELS, parameters
from .sizes import SIZES


def base(S, model: str, budget_images: int | None = None) -> dict:
    """What every sweep of `model` fixes: its training (subset, epochs, learning rate), the attacked images and
    how many of them get a minimal budget (default S.sweep_budget_images)."""
    b = S.sweep_budget_images if budget_images is None else budget_images
    return {"model": model, "n_train": S.n_train, "epochs": S.epochs[model], "lr": S.lr,
            "n_test": S.n_test[model], "budget_images": min(b, S.n_test[model])}


def _sweeps(S) -> dict[str, SweepSpec]:
    R, out = S.sweep_repeats, {}
    for m in MODELS:
        r = S.repeats if m == "linear" else R
        out[f"fgsm-{m}"] = SweepSpec({"eps": S.eps_inf}, {**base(S, m), "attack": "fgsm"}, r)
        out[f"pgd-{m}"] = SweepSpec({"eps": S.eps_pgd}, {**base(S, m), "attack": "pgd", "steps": S.pgd_steps}, R)
        if m in S.restart_models:  # random restarts: the models one by one, each with its own seeded starts
            out[f"restarts-{m}"] = SweepSpec({"eps": S.eps_pgd}, {**base(S, m), "attack": "pgd",
                                                                   "steps": S.pgd_steps, "restarts": S.restarts}, R)
        out[f"l2-{m}"] = SweepSpec({"eps": S.eps_l2}, {**base(S, m), "attack": "pgd", "norm": "2",
                                                       "steps": S.pgd_steps}, R)
    for m in S.lp_models:
        for p, budgets in S.lp_budgets.items():
            out[f"lp{p}-{m}"] = SweepSpec({"eps": budgets}, {**base(S, m, S.budget_images), "attack": "lp-descent",
                                                              "norm": p}, R)
    for how, attack in (("ignored", "fgsm"), ("known", "fgsm"), ("known", "margin")):
        fixed = {**base(S, "mlp"), "attack": attack, "attacker_temperature": how, "eps": S.temperature_eps}
        if attack == "margin":
            fixed["steps"] = S.pgd_steps
        out[f"temperature-{attack}-{how}"] = SweepSpec({"temperature": S.temperatures}, fixed, S.repeats)
    for m in S.adversarial_models:
        for attack in ("fgsm", "pgd"):
            fixed = {**base(S, m), "attack": attack, "train_eps": S.adversarial_eps}
            if attack == "pgd":
                fixed["steps"] = S.pgd_steps
            out[f"adversarial-{attack}-{m}"] = SweepSpec({"eps": S.eps_pgd}, fixed, R)
    return out


CHAPTER = Chapter(EXPERIMENT, SIZES, _sweeps)


def sweep(name: str, profile=None):
    """The sweep `name` of the chapter (CHAPTER.sweep)."""
    return CHAPTER.sweep(name, profile)


def summary(name: str, profile=None) -> pd.DataFrame:
    """Per grid point of sweep `name`: every metric's mean and 95% interval (SweepResult.summary)."""
    return sweep(name, profile).summary()


def models_table(profile=None) -> pd.DataFrame:
    """The source's table, ours beside it: per model the mean train / held-out / test accuracy over the repeats
    of its FGSM sweep, its parameters and seconds per epoch (K models trained together, divided by K)."""
    rows = []
    for m in MODELS:
        runs = sweep(f"fgsm-{m}", profile).rows
        first = runs[runs.eps == runs.eps.min()]
        K = len(first)
        rows.append({"model": m, "parameters": parameters(m), "train": first.train_accuracy.mean(),
                     "val": first.val_accuracy.mean(), "test": first.clean_accuracy.mean(),
                     "test_sd": first.clean_accuracy.std(ddof=1) if K > 1 else 0.0,
                     "seconds_per_epoch": first.seconds_per_epoch.mean() / K, "repeats": K})
    return pd.DataFrame(rows)


# The source's reported accuracies (%), train / test, quoted for comparison (its models: 50,000 images).
SOURCE_TABLE = {"mlp": (98.79, 97.23), "mlp-dropout": (97.88, 97.24), "cnn": (99.64, 98.95),
                "cnn-dropout": (99.35, 99.10)}
