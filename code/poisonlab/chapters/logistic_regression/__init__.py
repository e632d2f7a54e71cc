"""report/logistic-regression.qmd: label flipping against logistic regression (`poisonlab run logistic`)."""
