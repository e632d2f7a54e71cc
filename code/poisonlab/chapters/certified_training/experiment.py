"""`poisonlab run certified`: certified training with interval bound propagation.

One configuration: the source's fully connected network (784-100-100-100-10; --depth hidden layers of --width
units) or the evasion chapter's CNN, trained on MNIST with Adam in one of three ways: normally; by PGD adversarial
training (Madry et al., L_inf, --train-steps steps) at --eps-train; or by interval bound propagation (Gowal et
al. 2018): kappa times the cross-entropy plus (1 - kappa) times the cross-entropy of the worst-case logits over
the ball of radius eps, eps 0 for --warmup epochs, then rising linearly to --eps-train over --rampup epochs. The
worst-case logits are the source's (naive: the lower bound of the true class's logit, the upper bounds of the
others) or Gowal's (elided: the last layer folded into the margins z_y - z_k).

Then, on the first n_test test images, at the L_inf budget eps (clipped to the pixel box [0, 1]): PGD (cross-
entropy, --steps steps of 2.5 eps / steps; an upper bound of the robust accuracy) and a certificate (--bound: IBP
with the last layer folded in, or CROWN; a lower bound).

Metrics: clean_accuracy (the first n_clean test images), pgd_accuracy, certified_accuracy (every margin's lower
bound positive), certified_but_broken (images certified yet misclassified by PGD: 0 unless a bound is wrong),
mean_bound_width (the logits' bound width hi - lo, mean over images and classes), seconds_per_epoch.
"""
from __future__ import annotations

import math

import torch

from ... import validate
from ...errors import ParameterError
from ...lab.experiment import Experiment, Param, by_training, register
from ..evasion.experiment import check_n_test, check_n_train
from ..evasion.pipeline import attack_grid, seeds_of
from .pipeline import (BOUNDS, DEPTH, MODELS, TRAININGS, WIDTH, bounds, clean_accuracy, logit_width, margins,
                       spec_of, test_images, train_models)

__all__ = ["EXPERIMENT", "PARAMS", "METRICS", "fit"]

METRICS = ("clean_accuracy", "pgd_accuracy", "certified_accuracy", "certified_but_broken", "mean_bound_width",
           "seconds_per_epoch")
ROBUST_LOGITS = ("naive", "elided")
DEFAULTS = {"eps_train": 0.01, "warmup": 2, "rampup": 8, "kappa": 0.0, "robust_logits": "naive", "train_steps": 5}


def _epochs(name, value):
    return validate.positive_int(name, value, minimum=0)


PARAMS = (
    Param("model", "mlp4", str, "mlp4 (the source's 784-100-100-100-10; see --depth, --width) or cnn (two 5x5 "
          "convolutions, 8 and 16 channels, max-pooling)", choices=MODELS, batch=False),
    Param("depth", DEPTH, int, "mlp4: hidden layers", validate.positive_int, batch=False),
    Param("width", WIDTH, int, "mlp4: units per hidden layer", validate.positive_int, batch=False),
    Param("train", "ibp", str, "normal (cross-entropy), pgd (adversarial training at --eps-train) or ibp "
          "(interval bound propagation at --eps-train)", choices=TRAININGS, batch=False),
    Param("eps_train", DEFAULTS["eps_train"], float, "pgd, ibp: the training budget (L_inf, pixels in [0, 1])",
          validate.positive, batch=False),
    Param("warmup", DEFAULTS["warmup"], int, "ibp: epochs at eps = 0 first", _epochs, batch=False),
    Param("rampup", DEFAULTS["rampup"], int, "ibp: epochs over which eps rises linearly to --eps-train (0: at once)",
          _epochs, batch=False),
    Param("kappa", DEFAULTS["kappa"], float, "ibp: the weight of the clean cross-entropy, the robust one weighs "
          "1 - kappa (the source: 0; Gowal et al.: 0.5)", validate.fraction, batch=False),
    Param("robust_logits", DEFAULTS["robust_logits"], str, "ibp: naive (the source: lower bound of the true logit, "
          "upper bounds of the others) or elided (Gowal et al.: bounds of the margins, the last layer folded in)",
          choices=ROBUST_LOGITS, batch=False),
    Param("train_steps", DEFAULTS["train_steps"], int, "pgd: PGD steps per minibatch", validate.positive_int,
          batch=False),
    Param("eps", 0.01, float, "the evaluation budget (L_inf, pixels in [0, 1])", validate.non_negative),
    Param("bound", "ibp", str, "the certificate: ibp (the last layer folded in) or crown (mlp4 only)",
          choices=BOUNDS, batch=False),
    Param("steps", 20, int, "PGD's steps at evaluation (step 2.5 eps / steps)", validate.positive_int, batch=False),
    Param("epochs", 10, int, "Adam epochs", validate.positive_int, batch=False),
    Param("lr", 1e-3, float, "Adam learning rate", validate.positive32, batch=False),
    Param("batch_size", 128, int, "minibatch size", validate.positive_int, batch=False),
    Param("n_train", None, int, "train on a stratified random subset of this many of the 50,000 training images "
          "(default: all)", validate.optional(check_n_train), batch=False),
    Param("n_test", 1000, int, "attack and certify the first n_test test images", check_n_test, batch=False),
    Param("n_clean", 10_000, int, "clean accuracy on the first n_clean test images", check_n_test, batch=False),
)

_USED_BY = {"eps_train": ("pgd", "ibp"), "warmup": ("ibp",), "rampup": ("ibp",), "kappa": ("ibp",),
            "robust_logits": ("ibp",), "train_steps": ("pgd",)}


def _check(config: dict) -> None:
    """Parameters that would be silently ignored are refused, and so is a ramp that never ends."""
    for name, trainings in _USED_BY.items():
        if config["train"] not in trainings and config[name] != DEFAULTS[name]:
            raise ParameterError(name, f"{name} is only used with --train {' or '.join(trainings)}")
    if config["model"] == "cnn":
        for name, default in (("depth", DEPTH), ("width", WIDTH)):
            if config[name] != default:
                raise ParameterError(name, f"{name} is only used with --model mlp4")
        if config["bound"] == "crown":
            raise ParameterError("bound", "bound crown supports Flatten/Linear/ReLU networks: use --model mlp4")
    if config["train"] == "ibp" and config["warmup"] + config["rampup"] > config["epochs"]:
        raise ParameterError("rampup", f"warmup + rampup = {config['warmup'] + config['rampup']} epochs, more than "
                             f"the {config['epochs']} epochs of training: eps would never reach --eps-train")


def _run(configs: list[dict]) -> list[dict]:
    """Metrics of configurations that share everything but eps and the seed."""
    c0 = configs[0]
    seeds = list(dict.fromkeys(c["seed"] for c in configs))
    trained = train_models([{**c0, "seed": s} for s in seeds])
    X, y = test_images(c0["n_test"])
    clean = clean_accuracy(trained, *test_images(c0["n_clean"]))
    eps_values = sorted({float(c["eps"]) for c in configs})
    attack = {"attack": "pgd", "norm": "inf", "steps": c0["steps"], "step_size": None, "restarts": 1,
              "temperature": 1.0, "attacker_temperature": "known"}
    adv_pred = attack_grid(trained.module(), X, y, eps_values, attack, [seeds_of(s)["attack"] for s in seeds])
    found = {}
    for e, eps in enumerate(eps_values):
        cert = torch.stack([bounds.certified(m, y) for m in margins(trained, X, y, eps, c0["bound"])])
        robust = adv_pred[:, e] == y
        found[eps] = {"pgd": robust.double().mean(1), "certified": cert.double().mean(1),
                      "broken": (cert & ~robust).double().mean(1),
                      "width": logit_width(trained, X, eps, c0["bound"])}
    out = []
    for c in configs:
        k, f = seeds.index(c["seed"]), found[float(c["eps"])]
        out.append({"clean_accuracy": float(clean[k]), "pgd_accuracy": float(f["pgd"][k]),
                    "certified_accuracy": float(f["certified"][k]), "certified_but_broken": float(f["broken"][k]),
                    "mean_bound_width": float(f["width"][k]), "seconds_per_epoch": trained.seconds_per_epoch})
    return out


def fit(configs: list[dict]) -> list[dict]:
    """The experiment's fn: metrics of every configuration (the seeds of one setting trained together)."""
    return by_training(configs, _run, varying=("eps", "seed"))


def cost(config: dict, repeats: int):
    """Estimated memory and time of `repeats` repeats: the stacked training sets, the models with Adam's state;
    training passes (IBP about two forward passes more, PGD train_steps + 1) and the attack's passes."""
    from ...lab.cost import Cost, run_seconds, sgd_steps

    K, N, d = repeats, config["n_train"] or 50_000, 784
    P = sum(math.prod(s) for s in spec_of(config["model"], config["depth"], config["width"]).shapes().values())
    flops_per_image = 2.0 * P if config["model"] == "mlp4" else 2.0 * (24 * 24 * 8 * 25 + 8 * 8 * 16 * 200 + 2560)
    passes = {"normal": 1, "pgd": 1 + config["train_steps"], "ibp": 3}[config["train"]]
    flops = 3 * flops_per_image * K * (config["epochs"] * N * passes + config["n_test"] * config["steps"])
    memory = 3 * 4 * K * N * d + 5 * 4 * K * P + 4 * 10_000 * 3 * d
    return Cost(memory, run_seconds(flops, sgd_steps(config["epochs"], N, min(config["batch_size"], N)) * passes,
                                    "generic"), blame="n_train")


_UNIT = (0.0, 1.0)
EXPERIMENT = register(Experiment(
    "certified", fit, PARAMS, METRICS,
    help="Train an MNIST classifier normally, adversarially or by interval bound propagation; attack and certify it.",
    check=_check, poisoned=lambda config: 0, cost=cost,
    ranges={"clean_accuracy": _UNIT, "pgd_accuracy": _UNIT, "certified_accuracy": _UNIT,
            "certified_but_broken": _UNIT, "mean_bound_width": (0.0, math.inf),
            "seconds_per_epoch": (0.0, math.inf)}))
