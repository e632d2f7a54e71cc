"""Defences: filters of suspicious training points, robust aggregation of gradients (passed to the trainer), and
the flip-matrix estimate of a loss correction."""
from .aggregate import AGGREGATES, Aggregator, Mean, Median, TrimmedMean, WorkerMedian
from .correction import anchor_flip_matrix
from .filters import (centroid_scores, discarded, filter_dataset, filter_masks, knn_disagreement, knn_filter,
                      loss_filter)

__all__ = ["loss_filter", "knn_filter", "knn_disagreement", "filter_masks", "discarded", "filter_dataset",
           "centroid_scores", "Aggregator", "Mean", "Median", "TrimmedMean", "WorkerMedian", "AGGREGATES",
           "anchor_flip_matrix"]
