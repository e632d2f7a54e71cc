"""The sweep sizes of report/linear-regression.qmd, one `Sizes` per
profile (lab.profile: quick for the tests, full for the book).

quick: 8 repeats give the law tests t(7) intervals; full: the book's figures.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Every size the chapter's sweeps, studies and laws read (`S.n`, `S.repeats`, ...)."""

    repeats: int
    points: int
    n: int
    epochs: int
    batch_size: int
    lr: float
    epochs_grid: list[int]
    dims: list[int]
    out_dims: list[int]
    little_n: list[int]
    little_epochs: int
    little_repeats: int
    loss_mus: list[int]
    mc_n: int
    mc_draws: int
    forget_steps: int
    hidden: list[list[int]]
    hidden_epochs: int
    hidden_batch: int
    leverage_repeats: int
    forget_repeats: int
    # sweeps with their own repeats (<sweep>_repeats): laws over a whole curve, whose jackknife intervals
    # must be narrow enough (half-width <= 10% of the prediction) to resolve the law
    mean_repeats: int
    breakdown_repeats: int
    floor_repeats: int
    dimension_repeats: int
    outputs_repeats: int
    efficiency_repeats: int
    huber_delta_repeats: int
    training_repeats: int


QUICK = Sizes(
    repeats=8,
    points=5,
    n=500,
    epochs=20,
    batch_size=20,
    lr=0.05,
    epochs_grid=[1, 3, 10, 30],
    dims=[2, 4, 8, 16, 32],
    out_dims=[1, 2, 4],
    little_n=[10, 15, 20, 25, 38, 63, 125, 250],
    little_epochs=30,
    little_repeats=32,
    loss_mus=[0, 2, 8, 32, 64],
    mc_n=50,
    mc_draws=1000,
    forget_steps=150,
    hidden=[[], [32]],
    hidden_epochs=40,
    hidden_batch=50,
    leverage_repeats=10,
    forget_repeats=80,
    mean_repeats=16,
    breakdown_repeats=16,
    floor_repeats=8,
    dimension_repeats=8,
    outputs_repeats=8,
    efficiency_repeats=8,
    huber_delta_repeats=8,
    training_repeats=8,
)

FULL = Sizes(
    repeats=20,
    points=9,
    n=1000,
    epochs=20,
    batch_size=20,
    lr=0.05,
    epochs_grid=[1, 2, 5, 10, 20, 50],
    dims=[1, 2, 4, 8, 16, 32],
    out_dims=[1, 2, 4, 8],
    little_n=[5, 10, 14, 15, 16, 20, 25, 38, 63, 125, 250, 500],
    little_epochs=50,
    little_repeats=40,
    loss_mus=[0, 1, 2, 4, 8, 16, 64],
    mc_n=50,
    mc_draws=4000,
    forget_steps=300,
    hidden=[[], [16], [64]],
    hidden_epochs=40,
    hidden_batch=50,
    leverage_repeats=20,
    forget_repeats=100,
    mean_repeats=40,
    breakdown_repeats=40,
    floor_repeats=200,
    dimension_repeats=100,
    outputs_repeats=100,
    efficiency_repeats=100,
    huber_delta_repeats=80,
    training_repeats=60,
)

SIZES = {"quick": QUICK, "full": FULL}
