"""The sweep sizes of report/compression-robustness.qmd, one `Sizes` per profile (lab.profile: quick for the
tests, full for the book). FC5 has 2.5 million weights: its models train on a smaller stratified subset than
the CNN's, which keeps the cold chapter within minutes on 2 CPU cores (`poisonlab run compression` trains on
all 50,000 images by default)."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Sizes:
    """Every size the chapter's sweeps, studies and laws read (`S.repeats`, `S.sparsities`, ...)."""

    repeats: int
    models: tuple
    n_train: dict[str, int]
    epochs: dict[str, int]
    lr: dict[str, float]
    batch_size: dict[str, int]
    n_clean: int  # clean accuracy on the first n_clean test images
    n_test: dict[str, int]  # attacked test images per model under FGSM
    pgd_test: dict[str, int]  # ... under PGD (FC5's PGD is the costly attack)
    sparsities: list[float]
    eps: list[float]  # FGSM curves (their area is the robustness summary)
    eps_pgd: list[float]
    pgd_steps: int
    batches: tuple  # the batch-size test (dense CNN): the source's two minibatch sizes
    nuclear_weights: list[float]
    adversarial_eps: float
    adversarial_steps: int
    match_epochs: dict[str, list[int]]  # the dense baseline stopped early: the clean accuracies to match
    law_sparsity: float  # the pruned network of the laws
    fashion_sparsities: list[float]  # the Fashion-MNIST replication (empty: none; where the data is installed)
    trace_n_train: int  # the schedule's traced training


FULL = Sizes(
    repeats=10,
    models=("fc5", "cnn"),
    n_train={"fc5": 1500, "cnn": 3000},
    epochs={"fc5": 4, "cnn": 4},
    lr={"fc5": 2e-3, "cnn": 3e-3},
    batch_size={"fc5": 64, "cnn": 64},
    n_clean=2000,
    n_test={"fc5": 300, "cnn": 500},
    pgd_test={"fc5": 50, "cnn": 100},
    sparsities=[0.0, 0.5, 0.8, 0.9, 0.95, 0.98],
    eps=[0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3],
    eps_pgd=[0.05, 0.1, 0.2],
    pgd_steps=10,
    batches=(128, 512),
    nuclear_weights=[1e-3, 1e-2],
    adversarial_eps=0.1,
    adversarial_steps=3,
    match_epochs={"fc5": [1, 2, 3], "cnn": [1, 2, 3]},
    law_sparsity=0.8,
    fashion_sparsities=[0.0, 0.8],
    trace_n_train=2000,
)

# The quick profile runs every cell and every law with small sizes (tests/laws checks the laws there).
QUICK = replace(
    FULL,
    repeats=3,
    n_train={"fc5": 600, "cnn": 1000},
    epochs={"fc5": 2, "cnn": 2},
    n_clean=1000,
    n_test={"fc5": 100, "cnn": 200},
    pgd_test={"fc5": 20, "cnn": 50},
    sparsities=[0.0, 0.5],
    eps=[0.0, 0.05, 0.1, 0.2, 0.3],
    eps_pgd=[0.1],
    pgd_steps=5,
    nuclear_weights=[1e-2],
    adversarial_steps=2,
    match_epochs={"fc5": [1], "cnn": [1]},
    law_sparsity=0.5,
    fashion_sparsities=[],
    trace_n_train=500,
)

SIZES = {"quick": QUICK, "full": FULL}
