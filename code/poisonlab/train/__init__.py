"""Training by minibatch SGD: a readable single-model trainer and a batched one for K models at once.

`train` (loop.py) is the loop of the PyTorch optimisation tutorial, shown in the chapters.
`train_batched` (batched.py) runs K independent copies of that loop as one tensor program: model k
sees exactly the minibatches that `train` would show it for seed k (the same DataLoader shuffles,
reproduced draw for draw), starts from the same initial parameters and takes the same steps.
Both take the same open parts: an objective (objectives.py: ERM, FGSM, any callable returning
per-example losses), an optimiser (optim.py: SGD, SGD with momentum, Adam) and a per-epoch callback;
the batched one also a model spec (spec.py: any stack of Linear/Conv2d/ReLU/Flatten/Dropout/... layers,
functional over stacked parameters; "linear", "mlp", "cnn" are shorthands for Spec.linear/mlp/cnn),
an aggregator (aggregate.py: Mean, Median, TrimmedMean) and a device.
"""
from .aggregate import AGGREGATES, Aggregator, Mean, Median, TrimmedMean, _aggregate
from .batched import MODELS, THREADS, check_device, train_batched
from .checks import GROWTH
from .loop import History, train
from .objectives import ERM, FGSM
from .optim import SGD, Adam, Optimizer
from .spec import Spec
from .perms import _epoch_order, _permutations, epoch_permutations
from .stacked import BatchedModel, _initial_state

__all__ = ["train", "History", "train_batched", "BatchedModel", "epoch_permutations", "ERM", "FGSM", "SGD", "Adam",
           "Optimizer", "Spec", "Aggregator", "Mean", "Median", "TrimmedMean", "MODELS", "AGGREGATES", "GROWTH", "THREADS",
           "check_device"]
