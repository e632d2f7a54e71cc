"""`poisonlab run compression`: does compressing a network make it robust to evasion?

One configuration: the source's fully connected FC5 (784-1344-672-588-294-10) or the evasion chapter's CNN
(two 5x5 convolutions, 8 and 16 channels), trained with Adam on MNIST (or Fashion-MNIST where its files are
installed) and compressed in one of four ways: magnitude pruning of every weight layer to a final sparsity on
Zhu and Gupta's cubic schedule (or one shot), low-rank layers (Tai et al.'s k x 1 / 1 x k convolution pairs,
W = U V for FC5's hidden layers; rank schedules lr1 and lr2 = lr1 / 2), a nuclear-norm penalty (Langenberg
et al.), or none of them but PGD adversarial training. Then attacked on the first n_test test images by FGSM
or PGD (L_inf) within eps.

Metrics: clean_accuracy (the first n_clean test images, default all 10,000), train_accuracy (the first 1,000
images trained on, pipeline.TRAIN_ACCURACY_IMAGES), adversarial_accuracy (the n_test attacked images); and what
the weights have become: measured_sparsity (the fraction of exactly zero weights; --sparsity is the target),
near_zero (the fraction at most 1% of their
layer's largest magnitude), effective_rank (per linear map, factors multiplied out, exp of the entropy
of its normalised singular values over the largest possible, min(m, n); mean over the maps), lipschitz_product
(the product of the maps' spectral norms, convolutions as operators on their input: an L2 Lipschitz bound);
seconds_per_epoch (the K models trained together, when trained).
"""
from __future__ import annotations

import math

from ... import validate
from ...data import registry
from ...errors import ParameterError
from ...lab.experiment import Experiment, Param, by_training, register
from ..evasion.experiment import check_n_test, check_n_train
from ..evasion.pipeline import attack_grid, seeds_of, split
from .pipeline import (MODELS, RANK_SCHEDULES, SCHEDULES, WIDTHS, parameters, schedule_of, steps_per_epoch,
                       train_models)

__all__ = ["EXPERIMENT", "PARAMS", "METRICS", "fit"]

METRICS = ("clean_accuracy", "adversarial_accuracy", "measured_sparsity", "near_zero", "effective_rank",
           "lipschitz_product", "train_accuracy", "seconds_per_epoch")
DATASETS = ("mnist", "fashion-mnist")


def _sparsity(name, value):
    value = validate.non_negative(name, value)
    if value >= 1:
        raise ValueError(f"{name} must be in [0, 1) (the fraction of weights pruned), got {value!r}")
    return value


PARAMS = (
    Param("dataset", "mnist", str, "mnist, or fashion-mnist (where its files are installed)", choices=DATASETS,
          batch=False),
    Param("model", "cnn", str, f"fc5 ({'-'.join(map(str, WIDTHS))}) or cnn (two 5x5 convolutions, 8 and 16 "
          "channels, max-pooling)", choices=MODELS, batch=False),
    Param("sparsity", 0.0, float, "final fraction of every weight layer pruned by magnitude", _sparsity),
    Param("schedule", "cubic", str, "cubic (Zhu and Gupta: s_t = s_f - s_f (1 - (t - t_start)/(n dt))^3 at "
          "t_start + j dt) or oneshot (s_f at t_start)", choices=SCHEDULES, batch=False),
    Param("prune_start", None, int, "t_start, in optimiser steps (default: a fifth of the training steps)",
          validate.optional(validate.positive_int), batch=False),
    Param("prune_every", None, int, "dt, optimiser steps between pruning steps (default: the n steps spread "
          "over half the training)", validate.optional(validate.positive_int), batch=False),
    Param("prune_steps", 8, int, "n, pruning steps of the cubic schedule", validate.positive_int, batch=False),
    Param("rank_schedule", "none", str, "low-rank layers: none, lr1 (Tai pairs of ranks 4, 16 in the CNN; rank "
          "64 hidden layers in FC5) or lr2 (half those ranks)", choices=RANK_SCHEDULES, batch=False),
    Param("nuclear_weight", 0.0, float, "lambda: the loss plus lambda times the sum of the weights' nuclear norms",
          validate.non_negative, batch=False),
    Param("train_eps", 0.0, float, "adversarial training: PGD (L_inf) points at this budget; 0 trains on clean "
          "images", validate.non_negative, batch=False),
    Param("train_steps", 5, int, "adversarial training: PGD steps per minibatch", validate.positive_int,
          batch=False),
    Param("attack", "fgsm", str, "fgsm or pgd (L_inf, cross-entropy, step 2.5 eps / steps)",
          choices=("fgsm", "pgd"), batch=False),
    Param("eps", 0.1, float, "the attack's L_inf budget (pixels in [0, 1])", validate.non_negative),
    Param("steps", 10, int, "pgd: gradient steps", validate.positive_int, batch=False),
    Param("epochs", 5, int, "Adam epochs", validate.positive_int, batch=False),
    Param("lr", 1e-3, float, "Adam learning rate", validate.positive32, batch=False),
    Param("batch_size", 128, int, "minibatch size", validate.positive_int, batch=False),
    Param("n_train", None, int, "train on a stratified random subset of this many of the 50,000 training images "
          "(default: all)", validate.optional(check_n_train), batch=False),
    Param("n_test", 1000, int, "attack the first n_test test images", check_n_test, batch=False),
    Param("n_clean", 10_000, int, "clean accuracy on the first n_clean test images", check_n_test, batch=False),
)


def _check(config: dict) -> None:
    """Parameters that would be silently ignored, or methods combined that the chapter keeps apart, are refused."""
    if config["attack"] == "fgsm" and config["steps"] != 10:
        raise ParameterError("steps", "steps is not used by --attack fgsm (one step of size eps)")
    if config["train_eps"] == 0 and config["train_steps"] != 5:
        raise ParameterError("train_steps", "train_steps is only used with --train-eps > 0")
    methods = [name for name, on in (("sparsity", config["sparsity"] > 0),
                                     ("rank_schedule", config["rank_schedule"] != "none"),
                                     ("nuclear_weight", config["nuclear_weight"] > 0),
                                     ("train_eps", config["train_eps"] > 0)) if on]
    if len(methods) > 1:
        raise ParameterError(methods[1], f"{methods[1]} cannot be combined with {methods[0]}: one compression "
                             "method (or adversarial training) per run")
    if config["schedule"] == "oneshot":
        for name, default in (("prune_every", None), ("prune_steps", 8)):
            if config[name] != default:
                raise ParameterError(name, f"{name} is not used by --schedule oneshot (one pruning step at t_start)")
    spe = steps_per_epoch(config)
    total = config["epochs"] * spe
    start, every, n = schedule_of(config, spe)
    end = start if config["schedule"] == "oneshot" else start + n * every
    if config["sparsity"] > 0 and not 1 <= end <= total:
        name = "prune_start" if config["schedule"] == "oneshot" or start > total else "prune_steps"
        raise ParameterError(name, f"the pruning schedule ends at step {end}, after the {total} optimiser steps of "
                             f"training ({config['epochs']} epochs of {spe}); shorten it or train longer")
    if config["dataset"] != "mnist":
        try:
            registry.load(config["dataset"], "test")
        except (FileNotFoundError, OSError, ValueError, RuntimeError) as e:
            raise ParameterError("dataset", f"dataset {config['dataset']} is not available here: {e}") from None


def _run(configs: list[dict]) -> list[dict]:
    """Metrics of configurations that share everything but the sparsity, eps and the seed."""
    c0 = configs[0]
    models = list(dict.fromkeys((c["sparsity"], c["seed"]) for c in configs))
    trained = train_models([{**c0, "sparsity": s, "seed": seed} for s, seed in models])
    module = trained.module()
    X, y = split("test", c0["dataset"])
    X, y = X[:c0["n_test"]], y[:c0["n_test"]]
    eps_values = sorted({float(c["eps"]) for c in configs})
    attack = {"attack": c0["attack"], "norm": "inf", "steps": c0["steps"], "step_size": None, "restarts": 1,
              "temperature": 1.0, "attacker_temperature": "known"}
    adv_pred = attack_grid(module, X, y, eps_values, attack, [seeds_of(seed)["attack"] for _, seed in models])
    measured = trained.measured
    out = []
    for c in configs:
        k, e = models.index((c["sparsity"], c["seed"])), eps_values.index(float(c["eps"]))
        out.append({
            "clean_accuracy": float(trained.accuracy["test"][k]),
            "adversarial_accuracy": float((adv_pred[k, e] == y).double().mean()),
            "measured_sparsity": float(measured["sparsity"][k]), "near_zero": float(measured["near_zero"][k]),
            "effective_rank": float(measured["effective_rank"][k]),
            "lipschitz_product": float(measured["lipschitz_product"][k]),
            "train_accuracy": float(trained.accuracy["train"][k]),
            "seconds_per_epoch": trained.seconds_per_epoch,
        })
    return out


def fit(configs: list[dict]) -> list[dict]:
    """The experiment's fn: metrics of every configuration (the sparsities of one setting trained together)."""
    return by_training(configs, _run, varying=("eps", "seed", "sparsity"))


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats: the stacked training sets, the models with Adam's state,
    the attacked rows; training passes (PGD training: train_steps + 1 each) and the attack's passes."""
    from ...lab.cost import Cost, run_seconds, sgd_steps

    K, N, d = repeats, config["n_train"] or 50_000, 784
    P = parameters(config["model"], config["rank_schedule"])
    flops_per_image = 2.0 * P if config["model"] == "fc5" else 2.0 * (24 * 24 * 8 * 25 + 8 * 8 * 16 * 200 + 2560)
    passes = 1 + (config["train_steps"] if config["train_eps"] > 0 else 0)
    attack = config["n_test"] * (config["steps"] if config["attack"] == "pgd" else 1)
    flops = 3 * flops_per_image * K * (config["epochs"] * N * passes + attack)
    memory = 3 * 4 * K * N * d + 5 * 4 * K * P + 4 * 10_000 * 3 * d
    return Cost(memory, run_seconds(flops, sgd_steps(config["epochs"], N, min(config["batch_size"], N)) * passes,
                                    "generic"), blame="n_train")


_UNIT = (0.0, 1.0)
EXPERIMENT = register(Experiment(
    "compression", fit, PARAMS, METRICS,
    help="Train an MNIST classifier pruned, low-rank, nuclear-norm regularised or adversarially, and attack it.",
    check=_check, poisoned=lambda config: 0, cost=cost,
    ranges={"clean_accuracy": _UNIT, "adversarial_accuracy": _UNIT, "measured_sparsity": _UNIT, "near_zero": _UNIT, "effective_rank": _UNIT,
            "train_accuracy": _UNIT, "lipschitz_product": (0.0, math.inf),
            "seconds_per_epoch": (0.0, math.inf)}))
