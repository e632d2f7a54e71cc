"""The sweep sizes of report/image-classification.qmd, one `Sizes` per
profile (lab.profile: quick for the tests, full for the book).

Per-model repeats and epochs of the alpha sweeps; the law tests use the linear model (law_repeats at
the exact points, fits to means over the sweep's repeats); in the quick profile the MLP and CNN sizes only
check that the cells run.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Every size the chapter's sweeps, studies and laws read (`S.n`, `S.repeats`, ...)."""

    repeats: int
    points: int
    sweep_repeats: dict[str, int]
    epochs: dict[str, int]
    batch_size: dict[str, int]
    law_repeats: dict[str, int]
    alpha_stride: dict[str, int]
    random_alphas: list[float]
    maxloss_alphas: list[float]
    damage_alpha: float
    target_alphas: list[float]
    pair_fractions: list[float]
    confusion_seeds: int
    confusion_alpha: float
    readable_epochs: int
    memo_seeds: int
    memo_alphas: list[float]
    memo_hidden: int
    memo_epochs: int
    memo_lr: dict[str, float]
    memo_batch_size: int
    defense_repeats: int
    defense_alphas: dict[str, list[float]]
    influence_seeds: int
    influence_groups: int
    influence_sizes: list[int]
    knn_seeds: int
    knn_alphas: list[float]
    knn_k: int


QUICK = Sizes(
    repeats=6,
    points=5,
    sweep_repeats={'linear': 4, 'mlp': 2, 'cnn': 2},
    epochs={'linear': 30, 'mlp': 10, 'cnn': 4},
    batch_size={'linear': 64, 'mlp': 64, 'cnn': 32},
    law_repeats={'linear': 12, 'mlp': 3},
    alpha_stride={'linear': 1, 'mlp': 2, 'cnn': 3},
    random_alphas=[0.0, 0.2, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0],
    maxloss_alphas=[0.0, 0.2, 0.5, 1.0],
    damage_alpha=0.2,
    target_alphas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.8],
    pair_fractions=[0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.95],
    confusion_seeds=2,
    confusion_alpha=0.3,
    readable_epochs=5,
    memo_seeds=3,
    memo_alphas=[0.2, 0.4],
    memo_hidden=256,
    memo_epochs=25,
    memo_lr={'linear': 0.5, 'mlp': 1.0},
    memo_batch_size=32,
    defense_repeats=2,
    defense_alphas={'linear': [0.2]},
    influence_seeds=2,
    influence_groups=4,
    influence_sizes=[1, 2, 4, 64],
    knn_seeds=3,
    knn_alphas=[0.0, 0.2, 0.4],
    knn_k=10,
)

FULL = Sizes(
    repeats=20,
    points=11,
    sweep_repeats={'linear': 8, 'mlp': 5, 'cnn': 3},
    epochs={'linear': 30, 'mlp': 20, 'cnn': 15},
    batch_size={'linear': 64, 'mlp': 64, 'cnn': 32},
    law_repeats={'linear': 30, 'mlp': 15},
    alpha_stride={'linear': 1, 'mlp': 1, 'cnn': 3},
    random_alphas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0],
    maxloss_alphas=[0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    damage_alpha=0.1,
    target_alphas=[0.0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8],
    pair_fractions=[0.0, 0.15, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.85, 0.95],
    confusion_seeds=6,
    confusion_alpha=0.3,
    readable_epochs=5,
    memo_seeds=5,
    memo_alphas=[0.2, 0.4],
    memo_hidden=256,
    memo_epochs=60,
    memo_lr={'linear': 0.5, 'mlp': 1.0},
    memo_batch_size=32,
    defense_repeats=5,
    defense_alphas={'linear': [0.2, 0.4]},
    influence_seeds=3,
    influence_groups=5,
    influence_sizes=[1, 2, 4, 16, 64],
    knn_seeds=3,
    knn_alphas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    knn_k=10,
)

SIZES = {"quick": QUICK, "full": FULL}
