"""The memory and time estimate of `run logistic` (the experiment's `cost`)."""
from __future__ import annotations

from ... import data
from .pipeline import EVAL_POINTS


_SIZES = {"n": 1000, "dim": 10, "epochs": 30, "hidden": 128, "knn_k": 10}


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration (trained together)."""
    from ...lab.cost import blamed_cost, knn_bytes, mlp_params, run_seconds, sgd_steps

    K, n, d = repeats, config["n"], config["dim"]
    N, H = data.train_size(n), tuple(config["hidden"])
    P = mlp_params([d, *H, 1])
    mixture = config["x_dist"] == "mixture"
    # data and their float64 copies; a mixture draws one d x d factor per point (sample_mixture)
    arrays = 40 * n * d + (8 * n * d * d + 2 * 8 * 4 * d * d if mixture else 0)
    evaluate = 2 * EVAL_POINTS * d * 8 + (8 * EVAL_POINTS * d * d if mixture and H else 0)
    B = min(config["batch_size"], N)
    model = 24 * P + 16 * B * sum(H) + 16 * max(n, EVAL_POINTS) * max((*H, 1))
    knn = knn_bytes(N, d) if config["defense"] == "knn-filter" else 0
    total = K * (arrays + model) + max(evaluate, knn)
    passes = 1 + (config["defense"] == "loss-filter") + (config["continue_from_clean"] or config["flip"] == "most-confident")
    flops = K * (2 * N * N * d if config["defense"] == "knn-filter" else 0) + (K * 8 * d**3 if mixture else 0)
    if config["solver"] == "exact":
        flops += passes * K * 50 * (2 * N * (d + 1) ** 2 + (d + 1) ** 3)
        seconds = run_seconds(flops)
    else:
        steps = sgd_steps(config["epochs"], N, B)
        flops += passes * K * config["epochs"] * N * 6 * P
        seconds = run_seconds(flops, passes * steps, "generic" if H else "fast")
    return blamed_cost(config, total, seconds, _SIZES,
                       {"knn_k": config["defense"] == "knn-filter", "epochs": config["solver"] == "sgd"})
