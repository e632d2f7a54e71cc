"""Attacks: poisoning of labels (Gaussian label noise, binary and multi-class flips) chosen with a seed, and
evasion of a trained model at test time (`attacks.evasion`: FGSM, PGD, the L_p-sphere descent)."""
from . import evasion
from .poisoning import (BINARY_FLIPS, CONFIDENCE_FLIPS, MULTICLASS_FLIPS, boundary_distance, flip_binary,
                        flip_multiclass, gaussian_labels, poison_count)

__all__ = ["evasion", "gaussian_labels", "flip_binary", "flip_multiclass", "poison_count", "boundary_distance",
           "BINARY_FLIPS", "MULTICLASS_FLIPS", "CONFIDENCE_FLIPS"]
