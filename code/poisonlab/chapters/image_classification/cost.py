"""The memory and time estimate of `run images` (the experiment's `cost`)."""
from __future__ import annotations

import math

from ... import attacks, data
from .pipeline import SHAPES, _n_train, hidden_of

MAX_BATCH = 256  # most training sets stacked in one call: 256 digit training sets, ~100 MB
_SIZES = {"n_train": 1438, "epochs": 30, "hidden": 128, "knn_k": 10}


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration (trained in chunks of max_batch)."""
    from ...lab.cost import blamed_cost, knn_bytes, mlp_params, run_seconds, sgd_steps

    K = repeats
    n_all, _, (C, Hh, Ww) = SHAPES[config["dataset"]]
    N, F, classes = _n_train(config), C * Hh * Ww, data.info(config["dataset"]).num_classes
    h = hidden_of(config)
    if config["model"] == "cnn":
        c1, c2 = h
        P = c1 * (C * 9 + 1) + c2 * (c1 * 9 + 1) + (c2 + 1) * classes
        act = c1 * Hh * Ww + (c1 + c2) * (Hh // 2) * (Ww // 2) + classes
        fwd = 2 * (c1 * C * 9 * Hh * Ww + c2 * c1 * 9 * (Hh // 2) * (Ww // 2) + c2 * classes)
    else:
        widths = [F, *h, classes]
        P = mlp_params(widths)
        act, fwd = sum(widths[1:]), 2 * P
    B = min(config["batch_size"], N)
    chunk = min(K, MAX_BATCH)
    if data.info(config["dataset"]).seeded:  # each repeat's own split (cached)
        loaded = 4 * n_all * F * 2 * K
    else:  # one copy shared by every repeat, plus each repeat's subset
        loaded = 4 * n_all * F + (4 * N * F * K if config["n_train"] is not None else 0)
    data_bytes = loaded + 3 * 4 * N * F * chunk  # stacked and shuffled
    T = config["epochs"] + 1 if config["early_stopping"] else 0
    model = chunk * (4 * P * (6 + T) + 4 * 4 * B * act + 4 * 4096 * act)
    knn = knn_bytes(N, F) if config["defense"] == "knn-filter" else 0
    total = data_bytes + model + knn
    passes = 1 + (config["defense"] == "loss-filter") + (config["flip"] in attacks.CONFIDENCE_FLIPS)
    steps = sgd_steps(config["epochs"], N, B)
    flops = passes * K * config["epochs"] * N * 3 * fwd + K * (2 * N * N * F if knn else 0)
    seconds = run_seconds(flops, passes * math.ceil(K / chunk) * steps, "generic")
    given = {**config, "hidden": h if config["model"] != "linear" else None,
             "n_train": N * (1438 / SHAPES["digits"][1])}
    return blamed_cost(given, total, seconds, _SIZES, {"knn_k": config["defense"] == "knn-filter"})
