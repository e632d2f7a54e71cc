"""Models: the zoo of plain nn.Modules (linear, MLP, CNN) built with a seed, and layer specs the batched
trainer evaluates over stacked parameters; Lipschitz bounds of a network (models.lipschitz); certified bounds over
an input box: interval bound propagation (models.bounds), CROWN (models.crown) and the exact worst case of a small
ReLU network by mixed-integer programming (models.exact)."""
from . import lipschitz
from .spec import Spec
from .zoo import MLP, MODELS, FlatLinear, SmallCNN, count_parameters, init_parameters, make_model

__all__ = ["make_model", "MODELS", "MLP", "SmallCNN", "FlatLinear", "init_parameters", "count_parameters", "Spec",
           "lipschitz"]
