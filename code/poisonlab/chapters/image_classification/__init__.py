"""report/image-classification.qmd: label flipping against image classifiers (`poisonlab run images`)."""
