"""Training by minibatch SGD: a readable single-model trainer and a batched one for K models at once.

`train` (loop.py) is the loop of the PyTorch optimisation tutorial, shown in the chapters.
`train_batched` (batched.py) runs K independent copies of that loop as one tensor program: model k
sees exactly the minibatches that `train` would show it for seed k (the same DataLoader shuffles,
reproduced draw for draw), starts from the same initial parameters and takes the same steps.
Both take the same open parts: an objective (objectives.py: ERM, FGSM, PGD adversarial training, Tempered
training at a temperature, Penalised: a regulariser added, IBP: certified training on interval bounds, any callable returning per-example losses), an optimiser (optim.py: SGD, SGD with momentum, Adam) and a per-epoch callback;
the batched one also a model spec (models.Spec: any stack of Linear/Conv2d/ReLU/Flatten/Dropout/... layers,
functional over stacked parameters; "linear", "mlp", "cnn" are shorthands for Spec.linear/mlp/cnn),
an aggregator (defenses.Mean, Median, TrimmedMean) and a device.
"""
from .batched import MODELS, THREADS, check_device, train_batched
from .checks import GROWTH
from .loop import History, train
from .objectives import ERM, FGSM, IBP, PGD, Penalised, Ramp, Tempered
from .optim import SGD, Adam, Optimizer
from .perms import epoch_permutations
from .stacked import BatchedModel

__all__ = ["train", "History", "train_batched", "BatchedModel", "epoch_permutations", "ERM", "FGSM", "PGD", "Penalised", "Tempered", "IBP", "Ramp",
           "SGD", "Adam", "Optimizer", "MODELS", "GROWTH", "THREADS", "check_device"]
