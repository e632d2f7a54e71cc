"""The sweep sizes of report/logistic-regression.qmd, one `Sizes` per
profile (lab.profile: quick for the tests, full for the book).

The exact solver (Newton) costs little, so the rate and density sweeps (dims, dim_n, ns, separations,
density_n, exact_repeats, density_repeats) are the same in both profiles: intervals within about 10% of
the predictions, and the same verdicts in the tests as in the book.
quick: 8 repeats give the law tests t(7) intervals; full: the book's figures, at least 10 repeats for every
curve the text interprets.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Every size the chapter's sweeps, studies and laws read (`S.n`, `S.repeats`, ...)."""

    repeats: int
    points: int
    n: int
    demo_epochs: int
    alphas: list[float]
    norm_n: int
    norm_alphas: list[float]
    norm_small: list[float]
    mixture_alphas: list[float]
    mixture_law_n: int
    margin: float
    margin_alphas: list[float]
    strip_alphas: list[float]
    strip_n: int
    confident_alphas: list[float]
    reversal_n: int
    confident_reversal: list[float]
    gauss_margin: float
    boundary_reversal: list[float]
    evasion_eps: list[float]
    dims: list[int]
    dim_n: int
    ns: list[int]
    rate_alpha: float
    separations: list[float]
    density_n: int
    mixture_angle_alphas: list[float]
    rate_lr: float
    little_ns: list[int]
    hidden: list[int]
    hidden_alphas: list[float]
    defense_alphas: list[float]
    defense_repeats: int
    bonus_repeats: int
    rate_sgd_repeats: int
    exact_repeats: int
    density_repeats: int
    knn_k: int
    knn_alphas: list[float]
    knn_repeats: int
    knn_far: float
    record_every: int


QUICK = Sizes(
    repeats=8,
    points=5,
    n=1000,
    demo_epochs=10,
    alphas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    norm_n=4000,
    norm_alphas=[0.02, 0.04, 0.08, 0.15, 0.3],
    norm_small=[0.02, 0.04, 0.08],
    mixture_alphas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.45],
    mixture_law_n=8000,
    margin=0.5,
    margin_alphas=[0.03, 0.06, 0.09, 0.12],
    strip_alphas=[0.05, 0.2, 0.3],
    strip_n=4000,
    confident_alphas=[0.1, 0.2, 0.3, 0.35, 0.4, 0.5],
    reversal_n=3000,
    confident_reversal=[0.15, 0.2, 0.225, 0.25, 0.275, 0.3, 0.35],
    gauss_margin=1.5,
    boundary_reversal=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75],
    evasion_eps=[0.05, 0.1, 0.2, 0.3, 0.4],
    dims=[2, 4, 8, 16, 32],
    dim_n=2000,
    ns=[250, 500, 1000, 2000, 4000],
    rate_alpha=0.2,
    separations=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
    density_n=8000,
    mixture_angle_alphas=[0.05, 0.2],
    rate_lr=0.2,
    little_ns=[20, 80, 320],
    hidden=[32],
    hidden_alphas=[0.0, 0.4],
    defense_alphas=[0.0, 0.2, 0.3],
    defense_repeats=2,
    bonus_repeats=3,
    rate_sgd_repeats=4,
    exact_repeats=60,
    density_repeats=100,
    knn_k=10,
    knn_alphas=[0.1, 0.2, 0.3, 0.4],
    knn_repeats=12,
    knn_far=0.5,
    record_every=5,
)

FULL = Sizes(
    repeats=20,
    points=11,
    n=1000,
    demo_epochs=30,
    alphas=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0],
    norm_n=4000,
    norm_alphas=[0.02, 0.03, 0.05, 0.08, 0.15, 0.3],
    norm_small=[0.02, 0.03, 0.05, 0.08],
    mixture_alphas=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45],
    mixture_law_n=8000,
    margin=0.5,
    margin_alphas=[0.02, 0.04, 0.06, 0.08, 0.1, 0.12],
    strip_alphas=[0.02, 0.05, 0.1, 0.2, 0.3],
    strip_n=4000,
    confident_alphas=[0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5],
    reversal_n=3000,
    confident_reversal=[0.15, 0.2, 0.22, 0.24, 0.26, 0.3, 0.35],
    gauss_margin=1.5,
    boundary_reversal=[0.5, 0.55, 0.6, 0.63, 0.66, 0.7, 0.75],
    evasion_eps=[0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4],
    dims=[2, 4, 8, 16, 32],
    dim_n=2000,
    ns=[250, 500, 1000, 2000, 4000],
    rate_alpha=0.2,
    separations=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
    density_n=8000,
    mixture_angle_alphas=[0.05, 0.2],
    rate_lr=0.2,
    little_ns=[20, 40, 80, 160, 320, 640],
    hidden=[32],
    hidden_alphas=[0.0, 0.2, 0.4],
    defense_alphas=[0.0, 0.1, 0.2, 0.3, 0.4],
    defense_repeats=10,
    bonus_repeats=10,
    rate_sgd_repeats=10,
    exact_repeats=60,
    density_repeats=100,
    knn_k=10,
    knn_alphas=[0.1, 0.2, 0.3, 0.4],
    knn_repeats=12,
    knn_far=0.5,
    record_every=5,
)

SIZES = {"quick": QUICK, "full": FULL}
