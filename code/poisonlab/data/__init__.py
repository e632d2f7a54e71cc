"""Data: the Dataset container and its split, synthetic generators with known parameters, image data sets."""
from . import vision
from .dataset import Dataset, generator, split, stack, train_size
from .synthetic import (Mixture, cluster_at_distance, default_mixture, gaussian_mixture, make_binary, make_linear,
                        sample_mixture)

__all__ = ["Dataset", "Mixture", "make_linear", "make_binary", "gaussian_mixture", "sample_mixture",
           "cluster_at_distance", "default_mixture", "split", "stack", "generator", "train_size", "vision"]
