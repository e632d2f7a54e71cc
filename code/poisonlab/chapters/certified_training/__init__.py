"""report/certified-training.qmd: certified training with interval bound propagation, and how far its
certificates lie below what an attack finds (`poisonlab run certified`)."""

ALIAS = "certified"  # the chapter's short name: `poisonlab run certified`
USES = ("evasion",)  # chapters whose code it runs (MNIST splits, the CNN, PGD): in its cache key
