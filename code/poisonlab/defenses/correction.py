"""Loss correction for label noise: the flip matrix C (Patrini et al. 2017 call it T) estimated from anchor
points; the corrected loss itself is train.losses.forward_corrected_ce."""
from __future__ import annotations

import torch

from .. import validate


def anchor_flip_matrix(noisy_probs, quantile: float = 0.97) -> torch.Tensor:
    """C estimated from a model trained on the noisy labels, probabilities noisy_probs (n, K): for each class i
    the anchor is the point at the `quantile` of p(noisy = i | x) over the n points (Patrini et al. use 0.97
    rather than the maximum, which outliers reach), and row i of C is p(noisy | anchor_i)."""
    P = torch.as_tensor(noisy_probs, dtype=torch.float64)
    if P.dim() != 2 or P.shape[1] < 2 or P.shape[0] < 1:
        raise ValueError(f"noisy_probs must be an (n, K) array with K >= 2, got shape {tuple(P.shape)}")
    if not bool(torch.all(torch.isfinite(P))) or bool((P < 0).any()) or \
            not torch.allclose(P.sum(1), torch.ones(P.shape[0], dtype=P.dtype), atol=1e-6):
        raise ValueError("noisy_probs must be finite, >= 0 and sum to 1 in every row")
    quantile = validate.fraction("quantile", quantile)
    rows = []
    for i in range(P.shape[1]):
        level = torch.quantile(P[:, i], quantile, interpolation="lower")
        anchor = int(torch.argmin((P[:, i] - level).abs()))
        rows.append(P[anchor])
    return torch.stack(rows)
