"""report/linear-regression.qmd: label poisoning of linear regression (`poisonlab run linear`)."""
