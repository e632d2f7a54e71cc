"""The memory and time estimate of `run logistic` (the experiment's `cost`)."""
from __future__ import annotations

import math

from ... import data
from .pipeline import EVAL_POINTS


_SIZES = {"n": 1000, "dim": 10, "epochs": 30, "hidden": 128, "knn_k": 10}


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration (trained together)."""
    from ...lab.cost import FLOPS, STEP_SECONDS, Cost, blame

    K, n, d = repeats, config["n"], config["dim"]
    N, H = data.train_size(n), tuple(config["hidden"])
    widths = [d, *H, 1]
    P = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    mixture = config["x_dist"] == "mixture"
    # data and their float64 copies; a mixture draws one d x d factor per point (sample_mixture)
    arrays = 40 * n * d + (8 * n * d * d + 2 * 8 * 4 * d * d if mixture else 0)
    evaluate = 2 * EVAL_POINTS * d * 8 + (8 * EVAL_POINTS * d * d if mixture and H else 0)
    B = min(config["batch_size"], N)
    model = 24 * P + 16 * B * sum(H) + 16 * max(n, EVAL_POINTS) * max((*H, 1))
    knn = 8 * (3 * min(1024, N) * N + N * d) if config["defense"] == "knn-filter" else 0
    total = K * (arrays + model) + max(evaluate, knn)
    passes = 1 + (config["defense"] == "loss-filter") + (config["continue_from_clean"] or config["flip"] == "max-loss")
    flops = K * (2 * N * N * d if config["defense"] == "knn-filter" else 0) + (K * 8 * d**3 if mixture else 0)
    if config["solver"] == "exact":
        flops += passes * K * 50 * (2 * N * (d + 1) ** 2 + (d + 1) ** 3)
        seconds = flops / FLOPS
    else:
        steps = config["epochs"] * math.ceil(N / B)
        flops += passes * K * config["epochs"] * N * 6 * P
        seconds = flops / FLOPS + passes * steps * STEP_SECONDS["generic" if H else "fast"]
    sizes = dict(_SIZES)
    if config["defense"] != "knn-filter":
        del sizes["knn_k"]
    if config["solver"] == "exact":
        del sizes["epochs"]
    return Cost(total, seconds, blame(config, sizes), blame(config, {k: v for k, v in sizes.items() if k != "epochs"}))
