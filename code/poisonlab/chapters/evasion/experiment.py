"""`poisonlab run evasion`: evasion attacks on MNIST classifiers at test time.

One configuration: a classifier (softmax regression, an MLP, a small CNN, or the MLP/CNN with dropout)
trained with Adam on MNIST's first 50,000 training images (or a stratified subset of n_train drawn from the
repeat's seed), at a temperature T (the loss sees logits / T) or adversarially (PGD points at train_eps),
then attacked on the first n_test test images within an L_p budget eps: FGSM, PGD (cross-entropy; random
restarts with --restarts), "margin" (PGD on Carlini and Wagner's logit margin) or "lp-descent" (the book's
source: gradient steps with the perturbation held on the sphere ||r||_p = eps). The attacker divides the
logits by the training temperature (attacker_temperature known) or not (ignored).

Metrics: clean_accuracy on the 10,000 test images, train_accuracy (the images trained on) and val_accuracy
(the 10,000 held-out training images); adversarial_accuracy on the n_test attacked images; success_rate, the
fraction of the attacked images classified correctly that the attack makes wrong; mean_min_budget, the mean
over the first budget_images correctly classified of the smallest budget at which the attack succeeds
(bisection on [0, max_budget]; an image never fooled counts as max_budget, so the mean is then a lower bound);
grad_zero_fraction, the fraction of attacked images whose input gradient of the attack's loss is exactly zero
in float32; seconds_per_epoch, the training time per epoch of the K models trained together (when trained,
not when read back from the cache).
"""
from __future__ import annotations

import math

import torch

from ... import validate
from ...errors import ParameterError
from ...lab import cache
from ...lab.experiment import Experiment, Param, by_training, register
from .cost import cost
from .pipeline import (ATTACKS, MAX_BUDGET, MODELS, adversarial, attack_grid, predictions, repeat, seeds_of, split,
                       train_models, zero_gradients)
from ...attacks import evasion

__all__ = ["EXPERIMENT", "PARAMS", "METRICS", "fit", "MODELS", "ATTACKS"]

METRICS = ("clean_accuracy", "adversarial_accuracy", "success_rate", "mean_min_budget", "grad_zero_fraction",
           "train_accuracy", "val_accuracy", "seconds_per_epoch")
BISECTION = 10  # bisection steps of the minimal budget: to within max_budget / 2^10


def check_n_train(name, value):
    """A number of training images: at most the 50,000 of MNIST's (and Fashion-MNIST's) training part."""
    value = validate.positive_int(name, value)
    if value > 50_000:
        raise ValueError(f"{name} must be at most 50000 (MNIST's training part), got {value}")
    return value


def check_n_test(name, value):
    """A number of test images: at most the 10,000 of MNIST's (and Fashion-MNIST's) test set."""
    value = validate.positive_int(name, value)
    if value > 10_000:
        raise ValueError(f"{name} must be at most 10000 (MNIST's test set), got {value}")
    return value


PARAMS = (
    Param("model", "mlp", str, "classifier: linear (softmax regression), mlp (784-128-10), mlp-dropout, "
          "cnn (two 5x5 convolutions, 8 and 16 channels, max-pooling) or cnn-dropout", choices=MODELS, batch=False),
    Param("attack", "fgsm", str, "fgsm, pgd (cross-entropy), margin (PGD on the logit margin) or lp-descent "
          "(steps on the sphere ||r||_p = eps)", choices=ATTACKS, batch=False),
    Param("norm", "inf", str, "the budget's norm p: inf, 2 or 1", choices=evasion.NORMS, batch=False),
    Param("eps", 0.1, float, "the budget ||delta||_p <= eps (pixels in [0, 1])", validate.non_negative),
    Param("steps", 10, int, "pgd, margin, lp-descent: gradient steps", validate.positive_int, batch=False),
    Param("step_size", None, float, "the step (default: 2.5 eps / steps for pgd and margin, 0.1 for "
          "lp-descent)", validate.optional(validate.positive), batch=False),
    Param("restarts", 1, int, "pgd, margin: random starts (the best kept per image); 1 starts at x",
          validate.positive_int, batch=False),
    Param("temperature", 1.0, float, "training temperature T: the loss sees logits / T",
          validate.positive, batch=False),
    Param("attacker_temperature", "known", str, "known (the attacker divides the logits by T) or ignored "
          "(it attacks at T = 1)", choices=("known", "ignored"), batch=False),
    Param("train_eps", 0.0, float, "adversarial training: PGD (L_inf) points at this budget; 0 trains on clean "
          "images", validate.non_negative, batch=False),
    Param("train_steps", 5, int, "adversarial training: PGD steps per minibatch", validate.positive_int,
          batch=False),
    Param("epochs", 5, int, "Adam epochs", validate.positive_int, batch=False),
    Param("lr", 1e-3, float, "Adam learning rate", validate.positive32, batch=False),
    Param("batch_size", 128, int, "minibatch size", validate.positive_int, batch=False),
    Param("n_train", None, int, "train on a stratified random subset of this many of the 50,000 training "
          "images (default: all)", validate.optional(check_n_train), batch=False),
    Param("n_test", 1000, int, "attack the first n_test test images", check_n_test, batch=False),
    Param("budget_images", 100, int, "the minimal budget is searched for the first budget_images attacked images",
          validate.positive_int, batch=False),
    Param("max_budget", None, float, "the upper end of the minimal-budget bisection (default 0.5, 10 or 100 for "
          "p = inf, 2, 1)", validate.optional(validate.positive), batch=False),
)


def _check(config: dict) -> None:
    """Parameters that would be silently ignored are refused, naming the flag."""
    how = config["attack"]
    if how == "fgsm" and config["steps"] != 10:
        raise ParameterError("steps", "steps is not used by --attack fgsm (one step of size eps)")
    if how == "fgsm" and config["step_size"] is not None:
        raise ParameterError("step_size", "step_size is not used by --attack fgsm (one step of size eps)")
    if how in ("fgsm", "lp-descent") and config["restarts"] != 1:
        raise ParameterError("restarts", f"restarts is used by --attack pgd and margin, got attack {how}")
    if config["train_eps"] == 0 and config["train_steps"] != 5:
        raise ParameterError("train_steps", "train_steps is only used with --train-eps > 0")
    if config["train_eps"] > 0 and config["temperature"] != 1.0:
        raise ParameterError("temperature", "temperature and train_eps cannot be combined (adversarial training "
                             "is at T = 1)")
    if config["budget_images"] > config["n_test"]:
        raise ParameterError("budget_images", f"budget_images must be at most n_test={config['n_test']}, "
                             f"got {config['budget_images']}")


def min_budgets(configs: list[dict], module=None) -> torch.Tensor:
    """(K, budget_images) smallest budget at which the attack of `configs` (one per seed, equal otherwise; eps
    is not used) succeeds on each of the first budget_images test images, per model: inf where it fails even at
    max_budget, 0 where the image is misclassified already. Cached with the models' settings."""
    c0 = configs[0]
    keys = [{**{k: v for k, v in c.items() if k != "eps"}, "computed": "min-budgets"} for c in configs]

    def compute():
        mod = module if module is not None else train_models(configs).module()
        X, y = split("test")
        X, y = X[:c0["budget_images"]], y[:c0["budget_images"]]
        K = mod.K
        seed = seeds_of(c0["seed"])["attack"]

        def succeeds(Xr, yr, budget):
            adv = adversarial(mod, Xr, yr, budget, c0, seed=seed)
            return predictions(mod, adv) != yr

        hi = c0["max_budget"] or MAX_BUDGET[c0["norm"]]
        found = evasion.min_budget(succeeds, repeat(X, K), y.repeat(K), hi, iters=BISECTION).reshape(K, -1)
        return {"budgets": found.clamp_max(hi * 2).where(torch.isfinite(found), torch.tensor(-1.0, dtype=found.dtype))}

    found = cache.tensors("evasion", keys, compute)["budgets"]
    return torch.where(found < 0, torch.tensor(math.inf, dtype=found.dtype), found)


def _run(configs: list[dict]) -> list[dict]:
    """Metrics of configurations that share everything but eps and the seed."""
    c0 = configs[0]
    seeds = list(dict.fromkeys(c["seed"] for c in configs))
    trained = train_models([{**c0, "seed": s} for s in seeds])
    module = trained.module()
    K = len(seeds)
    X_test, y_test = split("test")
    clean, val, train_acc = (trained.accuracy[k] for k in ("test", "val", "train"))
    X, y = X_test[:c0["n_test"]], y_test[:c0["n_test"]]
    attack_seeds = [seeds_of(s)["attack"] for s in seeds]
    eps_values = sorted({float(c["eps"]) for c in configs})
    adv_pred = attack_grid(module, X, y, eps_values, c0, attack_seeds)  # (K, E, n)
    right = (predictions(module, repeat(X, K)).reshape(K, -1) == y)  # (K, n)
    zero = zero_gradients(module, repeat(X, K), y.repeat(K), c0).reshape(K, -1).double().mean(1)
    b = c0["budget_images"]
    budgets = min_budgets([{**c0, "seed": s} for s in seeds], module)
    hi = c0["max_budget"] or MAX_BUDGET[c0["norm"]]
    out = []
    for c in configs:
        k, e = seeds.index(c["seed"]), eps_values.index(float(c["eps"]))
        fooled = (adv_pred[k, e] != y) & right[k]
        ok = right[k, :b]
        found = budgets[k][ok].clamp_max(hi)
        out.append({
            "clean_accuracy": float(clean[k]),
            "adversarial_accuracy": float((adv_pred[k, e] == y).double().mean()),
            "success_rate": float(fooled.sum()) / max(1, int(right[k].sum())),
            "mean_min_budget": float(found.mean()) if len(found) else 0.0,
            "grad_zero_fraction": float(zero[k]),
            "train_accuracy": float(train_acc[k]), "val_accuracy": float(val[k]),
            "seconds_per_epoch": trained.seconds_per_epoch,
        })
    return out


def fit(configs: list[dict]) -> list[dict]:
    """The experiment's fn: metrics of every configuration (models trained once per training setting)."""
    return by_training(configs, _run)


def poisoned_count(config: dict) -> int:
    """Training points the attack changes: none (evasion attacks the test inputs)."""
    return 0


_UNIT = (0.0, 1.0)
EXPERIMENT = register(Experiment(
    "evasion", fit, PARAMS, METRICS,
    help="Train an MNIST classifier (clean, at a temperature, or adversarially) and attack it within an L_p budget.",
    check=_check, poisoned=poisoned_count, cost=cost,
    ranges={"clean_accuracy": _UNIT, "adversarial_accuracy": _UNIT, "success_rate": _UNIT,
            "grad_zero_fraction": _UNIT, "train_accuracy": _UNIT, "val_accuracy": _UNIT,
            "mean_min_budget": (0.0, math.inf), "seconds_per_epoch": (0.0, math.inf)}))
