"""Defences: filters of suspicious training points, and robust aggregation of gradients (passed to the trainer)."""
from .aggregate import AGGREGATES, Aggregator, Mean, Median, TrimmedMean
from .correction import anchor_flip_matrix
from .filters import discarded, filter_dataset, filter_masks, knn_disagreement, knn_filter, loss_filter

__all__ = ["loss_filter", "knn_filter", "knn_disagreement", "filter_masks", "discarded", "filter_dataset",
           "Aggregator", "Mean", "Median", "TrimmedMean", "AGGREGATES", "anchor_flip_matrix"]
