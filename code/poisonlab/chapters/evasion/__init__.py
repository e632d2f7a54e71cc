"""report/evasion.qmd: evasion attacks on MNIST classifiers at test time (`poisonlab run evasion`)."""

ALIAS = "evasion"  # the chapter's short name: `poisonlab run evasion`
