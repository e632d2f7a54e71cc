"""The sweep sizes of report/evasion.qmd, one `Sizes` per profile (lab.profile: quick for the tests, full for
the book). Every model is trained on a stratified subset of n_train of MNIST's 50,000 training images (the
full 50,000 with `poisonlab run evasion` by default), which keeps the cold chapter within minutes on 2 cores.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Sizes:
    """Every size the chapter's sweeps, studies and laws read (`S.repeats`, `S.eps_inf`, ...)."""

    repeats: int  # the laws' sweeps (linear models, the temperature sweep)
    sweep_repeats: int  # every other sweep
    n_train: int
    epochs: dict[str, int]
    lr: float
    n_test: dict[str, int]  # attacked test images per model (PGD sweeps on the CNNs are the costly ones)
    budget_images: int  # minimal budgets searched per model and repeat in the source's attack's sweeps
    sweep_budget_images: int  # in every other sweep (its mean_min_budget metric)
    eps_inf: list[float]  # FGSM curves
    eps_pgd: list[float]  # PGD curves (L_inf)
    eps_l2: list[float]  # PGD curves (L2)
    pgd_steps: int
    restarts: int
    restart_models: tuple
    lp_budgets: dict[str, list[float]]  # the source's attack, per norm
    lp_models: tuple
    temperatures: list[float]
    temperature_eps: float
    adversarial_eps: float
    adversarial_models: tuple
    law_eps: float  # where the linear laws are read
    binary_n_train: int  # 3 vs 7 images per repeat
    lipschitz_images: int


FULL = Sizes(
    repeats=10,
    sweep_repeats=10,
    n_train=10_000,
    epochs={"linear": 5, "mlp": 5, "mlp-dropout": 5, "cnn": 4, "cnn-dropout": 4},
    lr=3e-3,
    n_test={"linear": 500, "mlp": 500, "mlp-dropout": 500, "cnn": 200, "cnn-dropout": 200},
    budget_images=50,
    sweep_budget_images=10,
    eps_inf=[0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3],
    eps_pgd=[0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3],
    eps_l2=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
    pgd_steps=10,
    restarts=4,
    restart_models=("mlp",),
    lp_budgets={"inf": [0.025, 0.05, 0.1, 0.15, 0.2], "2": [0.5, 1.0, 1.5, 2.0, 3.0], "1": [2.0, 5.0, 10.0, 15.0, 20.0]},
    lp_models=("mlp", "cnn"),
    temperatures=[1.0, 20.0, 50.0, 70.0, 90.0],
    temperature_eps=0.1,
    adversarial_eps=0.1,
    adversarial_models=("mlp",),
    law_eps=0.05,
    binary_n_train=4000,
    lipschitz_images=200,
)

# The quick profile runs every cell with small sizes; the laws' studies (linear models, the MLP at two
# temperatures) keep the full profile's repeats and models, so that tests/laws checks what the page reports.
QUICK = replace(
    FULL,
    sweep_repeats=3,
    epochs={**FULL.epochs, "cnn": 1, "cnn-dropout": 1},
    n_test={"linear": 500, "mlp": 500, "mlp-dropout": 300, "cnn": 100, "cnn-dropout": 100},
    budget_images=10,
    sweep_budget_images=5,
    eps_pgd=[0.0, 0.05, 0.1, 0.2],
    eps_l2=[0.0, 1.0, 2.0],
    restarts=2,
    lp_budgets={"inf": [0.05, 0.1], "2": [1.0, 2.0], "1": [5.0, 10.0]},
    temperatures=[1.0, 90.0],
    lipschitz_images=50,
)

SIZES = {"quick": QUICK, "full": FULL}
