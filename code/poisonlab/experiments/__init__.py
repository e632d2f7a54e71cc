"""One module per experiment (`linear`, `logistic`, `images`); each registers an `Experiment`."""
