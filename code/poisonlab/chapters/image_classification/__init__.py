"""report/image-classification.qmd: label flipping against image classifiers (`poisonlab run images`)."""

ALIAS = "images"  # the chapter's short name: `poisonlab run images`
