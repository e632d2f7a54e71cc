"""The memory and time estimate of `run evasion` (the experiment's `cost`)."""
from __future__ import annotations

import math

from .pipeline import CHANNELS, CHUNK as ATTACKED_ROWS, CLASSES, HIDDEN, IN_SHAPE, parameters


def _forward_flops(model: str) -> float:
    """Floating-point operations of one forward pass of one image."""
    d = math.prod(IN_SHAPE)
    if model == "linear":
        return 2.0 * d * CLASSES
    if model.startswith("mlp"):
        return 2.0 * (d * HIDDEN + HIDDEN * CLASSES)
    c1, c2 = CHANNELS
    return 2.0 * (24 * 24 * c1 * 25 + 8 * 8 * c2 * c1 * 25 + c2 * 16 * CLASSES)


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats of one configuration: the stacked training sets and their
    shuffled copies, the models, the attacked rows; training steps (PGD training: train_steps + 1 passes each)
    and the attack's passes over the attacked images."""
    from ...lab.cost import Cost, run_seconds, sgd_steps

    K, N = repeats, config["n_train"] or 50_000
    d, P = math.prod(IN_SHAPE), parameters(config["model"])
    act = 8 * 24 * 24 * CHANNELS[0] if config["model"].startswith("cnn") else HIDDEN
    memory = 3 * 4 * K * N * d + 10 * 4 * K * P + 4 * ATTACKED_ROWS * (3 * d + 4 * act)
    passes = 1 + (config["train_steps"] if config["train_eps"] > 0 else 0)
    attack = config["n_test"] * (config["steps"] * config["restarts"] + 1) \
        + config["budget_images"] * 10 * config["steps"]
    flops = 3 * _forward_flops(config["model"]) * K * (config["epochs"] * N * passes + attack)
    steps = sgd_steps(config["epochs"], N, min(config["batch_size"], N)) * passes
    return Cost(memory, run_seconds(flops, steps, "generic"), blame="n_train")
