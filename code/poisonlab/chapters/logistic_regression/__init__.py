"""report/logistic-regression.qmd: label flipping against logistic regression (`poisonlab run logistic`)."""

ALIAS = "logistic"  # the chapter's short name: `poisonlab run logistic`
