"""report/compression-robustness.qmd: does compressing a network (pruning, low rank) make it robust to evasion,
and does robust training compress it? (`poisonlab run compression`)."""

ALIAS = "compression"  # the chapter's short name: `poisonlab run compression`
USES = ("evasion",)  # chapters whose code it runs (the evasion chapter's models and attacks): in its cache key
