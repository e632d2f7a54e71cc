"""report/linear-regression.qmd: label poisoning of linear regression (`poisonlab run linear`)."""

ALIAS = "linear"  # the chapter's short name: `poisonlab run linear`
