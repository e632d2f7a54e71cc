"""The sweep sizes of report/certified-training.qmd, one `Sizes` per profile (lab.profile: quick for the tests,
full for the book). The source's recipe trains on all 50,000 training images; every other model on a stratified
subset of n_train, which keeps the cold chapter within minutes on 2 cores."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Sizes:
    """Every size the chapter's sweeps, studies and laws read."""

    repeats: int
    n_train: int  # every model but the source's recipe
    source_n_train: int  # the source's recipe: all 50,000 training images
    n_test: int  # attacked and certified test images
    source_batches: list[int]  # the source's recipe at larger minibatches (it gives none)
    law_test: int  # test images of the laws' sweeps (the source's recipe, the gap's two budgets)
    n_clean: int
    epochs: int  # the source's 10: 2 of warm-up, 8 of ramp
    source: dict  # the source's recipe (IBP at 0.01)
    gowal: dict  # Gowal et al.'s mix at 0.1, longer
    pgd: dict  # PGD adversarial training at 0.1
    eps: list[float]  # evaluation budgets
    gap_eps: float  # the gap law compares eps and 2 eps
    gap_repeats: int  # the gap at the smallest budget is under 1% of the images: more repeats resolve its ratio
    gap_train: int  # training images of the gap law's networks (the source's recipe otherwise)
    crown_eps: list[float]  # CROWN's budgets (a CROWN pass costs about 50 IBP passes)
    rampups: list[int]  # ramp lengths (epochs) at Gowal's setting
    depths: list[int]
    widths: list[int]
    depth_n_train: int
    depth_epochs: int  # the source's recipe shortened: a sixth of warm-up, the rest ramp
    width_eps: float  # where the bound widths are read
    cnn: dict  # the CNN's training (n_train, epochs; IBP's warm-up and ramp): an IBP epoch costs it 3 s a model
    toy_n: int  # the 2-D task's training points
    toy_points: int  # test points whose exact margin is solved
    toy_hidden: tuple
    toy_eps: float


FULL = Sizes(
    repeats=5,
    n_train=10_000,
    source_n_train=50_000,
    n_test=500,
    source_batches=[512, 2048],
    law_test=10_000,
    n_clean=10_000,
    epochs=10,
    source={"train": "ibp", "eps_train": 0.01, "warmup": 2, "rampup": 8, "kappa": 0.0, "robust_logits": "naive",
            "epochs": 10},
    gowal={"train": "ibp", "eps_train": 0.1, "warmup": 2, "rampup": 10, "kappa": 0.5, "robust_logits": "elided",
           "epochs": 20},
    pgd={"train": "pgd", "eps_train": 0.1, "train_steps": 5, "epochs": 10},
    eps=[0.0, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3],
    gap_eps=0.0025,
    gap_repeats=20,
    gap_train=10_000,
    crown_eps=[0.0025, 0.01, 0.05, 0.1],
    rampups=[0, 2, 10, 18],
    depths=[1, 2, 3, 4, 6],
    widths=[50, 100, 200],
    depth_n_train=5000,
    depth_epochs=6,
    width_eps=0.01,
    cnn={"n_train": 5000, "epochs": 10, "warmup": 1, "rampup": 5},
    toy_n=400,
    toy_points=60,
    toy_hidden=(16, 16),
    toy_eps=0.08,
)

# The quick profile runs every cell with small sizes (the tests), but the laws' sweeps (the source's recipe on
# every image, the gap's 20 repeats) are the full profile's, so that tests/laws checks what the page reports.
QUICK = replace(
    FULL,
    repeats=3,
    n_train=2000,
    n_test=300,
    source_batches=[2048],
    n_clean=2000,
    gowal={**FULL.gowal, "epochs": 6, "warmup": 1, "rampup": 4},
    pgd={**FULL.pgd, "epochs": 3, "train_steps": 3},
    eps=[0.0, 0.0025, 0.005, 0.01, 0.05, 0.1],
    rampups=[0, 2, 5],
    crown_eps=[0.01, 0.1],
    depths=[1, 3],
    widths=[50, 100],
    depth_n_train=500,
    depth_epochs=2,
    cnn={"n_train": 1000, "epochs": 3, "warmup": 1, "rampup": 2},
    toy_points=20,
)

SIZES = {"quick": QUICK, "full": FULL}
