"""Profiles: `quick` (tests, seconds) and `full` (the book). Every sweep size lives here, once.

The active profile is read from POISONLAB_PROFILE, else from QUARTO_PROFILE (Quarto's own
`--profile` setting, so that both engines honour one setting), else it is `full`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType

PROFILES = ("quick", "full")

# Sizes per profile. A chapter reads its own section; `common` applies everywhere.
# quick: enough repeats that the statistical tests have a meaningful Monte Carlo error,
# small enough that the whole suite stays within minutes on 2 CPU cores.
SIZES = {
    "quick": {
        "common": {"repeats": 6, "points": 5},
        "engine": {},
        "linear": {
            # the chapter's sizes (linear-regression.qmd); 8 repeats give the law tests t(7) intervals
            "repeats": 8, "points": 5, "n": 500, "epochs": 20, "batch_size": 20, "lr": 0.05,
            "epochs_grid": [1, 3, 10, 30], "dims": [2, 4, 8, 16, 32], "out_dims": [1, 2, 4],
            "little_n": [10, 15, 20, 25, 38, 63, 125, 250], "little_epochs": 30, "little_repeats": 32,
            "loss_mus": [0, 2, 8, 32, 64], "mc_n": 50, "mc_draws": 1000, "forget_steps": 150,
            "hidden": [[], [32]], "hidden_epochs": 40, "hidden_batch": 50,
        },
        "logistic": {
            # logistic-regression.qmd; 8 repeats give the law tests t(7) intervals
            "repeats": 8, "n": 1000, "demo_epochs": 10, "alphas": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            "norm_n": 4000, "norm_alphas": [0.02, 0.04, 0.08, 0.15, 0.3], "norm_small": [0.02, 0.04, 0.08],
            "mixture_alphas": [0.0, 0.1, 0.2, 0.3, 0.4, 0.45], "mixture_law_n": 8000, "margin": 0.5,
            "margin_alphas": [0.03, 0.06, 0.09, 0.12], "strip_alphas": [0.05, 0.2, 0.3], "strip_n": 4000,
            "maxloss_alphas": [0.1, 0.2, 0.3, 0.35, 0.4, 0.5],
            "reversal_n": 3000, "maxloss_reversal": [0.15, 0.2, 0.225, 0.25, 0.275, 0.3, 0.35],
            "gauss_margin": 1.5, "boundary_reversal": [0.5, 0.55, 0.6, 0.65, 0.7, 0.75],
            "evasion_eps": [0.05, 0.1, 0.2, 0.3, 0.4],
            "dims": [2, 8, 32], "dim_n": 1000, "ns": [250, 500, 2000], "rate_alpha": 0.2,
            "rate_lr": 0.2, "little_ns": [20, 80, 320], "hidden": [32], "hidden_alphas": [0.0, 0.4],
            "defense_alphas": [0.0, 0.2, 0.3], "defense_repeats": 2, "bonus_repeats": 3, "rate_sgd_repeats": 4,
            "knn_k": 10, "knn_alphas": [0.2, 0.4], "knn_repeats": 6, "knn_far": 0.5, "record_every": 5,
        },
        "images": {
            # image-classification.qmd: per-model repeats and epochs of the alpha sweeps; the law tests use
            # the linear model (law_repeats at the exact points, fits to means over the sweep's repeats);
            # the MLP and CNN sizes here only check that the cells run
            "sweep_repeats": {"linear": 4, "mlp": 2, "cnn": 2}, "epochs": {"linear": 30, "mlp": 10, "cnn": 4},
            "batch_size": {"linear": 64, "mlp": 64, "cnn": 32}, "law_repeats": {"linear": 12, "mlp": 3},
            "alpha_stride": {"linear": 1, "mlp": 2, "cnn": 3},
            "random_alphas": [0.0, 0.2, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0],
            "maxloss_alphas": [0.0, 0.2, 0.5, 1.0], "damage_alpha": 0.2,
            "target_alphas": [0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.8],
            "pair_fractions": [0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.95],
            "confusion_seeds": 2, "confusion_alpha": 0.3, "readable_epochs": 5,
            "memo_seeds": 3, "memo_alphas": [0.2, 0.4], "memo_hidden": 256, "memo_epochs": 25,
            "memo_lr": {"linear": 0.5, "mlp": 1.0}, "memo_batch_size": 32,
            "defense_repeats": 2, "defense_alphas": {"linear": [0.2]},
            "influence_seeds": 2, "influence_groups": 4, "influence_sizes": [1, 2, 4, 64],
            "knn_seeds": 3, "knn_alphas": [0.0, 0.2, 0.4], "knn_k": 10,
        },
    },
    "full": {
        "common": {"repeats": 20, "points": 11},
        "engine": {},
        "linear": {
            "repeats": 20, "points": 9, "n": 1000, "epochs": 20, "batch_size": 20, "lr": 0.05,
            "epochs_grid": [1, 2, 5, 10, 20, 50], "dims": [1, 2, 4, 8, 16, 32], "out_dims": [1, 2, 4, 8],
            "little_n": [5, 10, 14, 15, 16, 20, 25, 38, 63, 125, 250, 500], "little_epochs": 50, "little_repeats": 40,
            "loss_mus": [0, 1, 2, 4, 8, 16, 64], "mc_n": 50, "mc_draws": 4000, "forget_steps": 300,
            "hidden": [[], [16], [64]], "hidden_epochs": 40, "hidden_batch": 50,
        },
        "logistic": {
            "repeats": 20, "n": 1000, "demo_epochs": 30, "alphas": [round(0.05 * i, 2) for i in range(21)],
            "norm_n": 4000, "norm_alphas": [0.02, 0.03, 0.05, 0.08, 0.15, 0.3], "norm_small": [0.02, 0.03, 0.05, 0.08],
            "mixture_alphas": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45], "mixture_law_n": 8000,
            "margin": 0.5,
            "margin_alphas": [0.02, 0.04, 0.06, 0.08, 0.1, 0.12],
            "strip_alphas": [0.02, 0.05, 0.1, 0.2, 0.3], "strip_n": 4000,
            "maxloss_alphas": [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5],
            "reversal_n": 3000, "maxloss_reversal": [0.15, 0.2, 0.22, 0.24, 0.26, 0.3, 0.35],
            "gauss_margin": 1.5, "boundary_reversal": [0.5, 0.55, 0.6, 0.63, 0.66, 0.7, 0.75],
            "evasion_eps": [0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4],
            "dims": [2, 4, 8, 16, 32], "dim_n": 2000, "ns": [250, 500, 1000, 2000, 4000], "rate_alpha": 0.2,
            "rate_lr": 0.2, "little_ns": [20, 40, 80, 160, 320, 640], "hidden": [32], "hidden_alphas": [0.0, 0.2, 0.4],
            "defense_alphas": [0.0, 0.1, 0.2, 0.3, 0.4], "defense_repeats": 4, "bonus_repeats": 6,
            "rate_sgd_repeats": 10, "knn_k": 10,
            "knn_alphas": [0.1, 0.2, 0.3, 0.4], "knn_repeats": 12, "knn_far": 0.5, "record_every": 5,
        },
        "images": {
            "sweep_repeats": {"linear": 8, "mlp": 5, "cnn": 3}, "epochs": {"linear": 30, "mlp": 20, "cnn": 15},
            "batch_size": {"linear": 64, "mlp": 64, "cnn": 32}, "alpha_stride": {"linear": 1, "mlp": 1, "cnn": 3},
            "law_repeats": {"linear": 30, "mlp": 15},
            "random_alphas": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0],
            "maxloss_alphas": [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "damage_alpha": 0.1,
            "target_alphas": [0.0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8],
            "pair_fractions": [0.0, 0.15, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.85, 0.95],
            "confusion_seeds": 6, "confusion_alpha": 0.3, "readable_epochs": 5,
            "memo_seeds": 5, "memo_alphas": [0.2, 0.4], "memo_hidden": 256, "memo_epochs": 60,
            "memo_lr": {"linear": 0.5, "mlp": 1.0}, "memo_batch_size": 32,
            "defense_repeats": 5, "defense_alphas": {"linear": [0.2, 0.4]},
            "influence_seeds": 3, "influence_groups": 5, "influence_sizes": [1, 2, 4, 16, 64],
            "knn_seeds": 3, "knn_alphas": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], "knn_k": 10,
        },
    },
}


@dataclass(frozen=True)
class Profile:
    """The sweep sizes of one profile; `profile.linear["n"]` reads a chapter's own setting."""

    name: str
    repeats: int
    points: int
    sections: MappingProxyType = field(repr=False)

    def __getattr__(self, section):
        try:
            return self.sections[section]
        except KeyError:
            raise AttributeError(section) from None


def active_profile_name() -> str:
    """The name of the active profile (see module docstring)."""
    name = os.environ.get("POISONLAB_PROFILE")
    if not name:
        # QUARTO_PROFILE may list several profiles separated by commas.
        quarto = [p.strip() for p in os.environ.get("QUARTO_PROFILE", "").split(",")]
        name = next((p for p in quarto if p in PROFILES), "full")
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {name!r}")
    return name


def get_profile(name: str | None = None) -> Profile:
    """The sizes of profile `name` (default: the active one)."""
    name = active_profile_name() if name is None else name
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {name!r}")
    sizes = SIZES[name]
    sections = {k: MappingProxyType({**sizes["common"], **v}) for k, v in sizes.items() if k != "common"}
    return Profile(name=name, repeats=sizes["common"]["repeats"], points=sizes["common"]["points"],
                   sections=MappingProxyType(sections))
