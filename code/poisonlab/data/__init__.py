"""Data: the Dataset container and its split, synthetic generators with known parameters, real data sets (data.load)."""
from .dataset import Dataset, generator, split, stack, train_size
from .files import default_data_dir
from .registry import DATASETS, IMAGES, INFO, Info, Split, info, load, require, stratified_subset, train_test
from .synthetic import (Mixture, cluster_at_distance, default_mixture, gaussian_mixture, make_binary, make_linear,
                        sample_mixture)

__all__ = ["Dataset", "Mixture", "make_linear", "make_binary", "gaussian_mixture", "sample_mixture",
           "cluster_at_distance", "default_mixture", "split", "stack", "generator", "train_size",
           "load", "info", "require", "train_test", "stratified_subset", "default_data_dir", "Info", "Split",
           "DATASETS", "IMAGES", "INFO"]
