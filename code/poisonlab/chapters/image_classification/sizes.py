"""The sweep sizes of report/image-classification.qmd, one `Sizes` per
profile (lab.profile: quick for the tests, full for the book).

Per-model repeats and epochs of the alpha sweeps: at least 10 repeats for every curve the chapter reads;
the exact laws' points get law_repeats fresh seeds.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Sizes:
    """Every size the chapter's sweeps, studies and laws read (`S.n`, `S.repeats`, ...)."""

    repeats: int
    points: int
    sweep_repeats: dict[str, int]
    attacks: dict[str, tuple]  # the attacks swept for each model
    epochs: dict[str, int]
    batch_size: dict[str, int]
    law_repeats: dict[str, int]
    alpha_stride: dict[str, int]
    random_alphas: list[float]
    confidence_alphas: list[float]  # least- and most-confident flips
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


FULL = Sizes(
    repeats=20,
    points=11,
    sweep_repeats={'linear': 10, 'mlp': 10, 'cnn': 10},
    attacks={'linear': ('random', 'target-class', 'pair', 'least-confident', 'most-confident'),
             'mlp': ('random', 'target-class', 'pair', 'least-confident', 'most-confident'),
             'cnn': ('random', 'least-confident', 'most-confident')},
    epochs={'linear': 30, 'mlp': 20, 'cnn': 15},
    batch_size={'linear': 64, 'mlp': 64, 'cnn': 32},
    law_repeats={'linear': 30, 'mlp': 15},
    alpha_stride={'linear': 1, 'mlp': 1, 'cnn': 3},
    random_alphas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0],
    confidence_alphas=[0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    damage_alpha=0.1,
    target_alphas=[0.0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8],
    pair_fractions=[0.0, 0.15, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.85, 0.95],
    confusion_seeds=10,
    confusion_alpha=0.3,
    readable_epochs=5,
    memo_seeds=10,
    memo_alphas=[0.2, 0.4],
    memo_hidden=256,
    memo_epochs=60,
    memo_lr={'linear': 0.5, 'mlp': 1.0},
    memo_batch_size=32,
    defense_repeats=10,
    defense_alphas={'linear': [0.2, 0.4]},
    influence_seeds=10,
    influence_groups=3,
    influence_sizes=[1, 4, 64],
    knn_seeds=10,
    knn_alphas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    knn_k=10,
)

# The quick profile runs the attacks' sweeps and every law's study of the full profile (identical seeds, so
# identical verdicts: tests/laws checks in quick what the page reports in full, and the results are cached)
# and shrinks the rest: the confusions and the defences.
QUICK = replace(
    FULL,
    confusion_seeds=2,
    defense_repeats=3,
)

SIZES = {"quick": QUICK, "full": FULL}
