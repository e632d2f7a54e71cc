"""Models: the zoo of plain nn.Modules (linear, MLP, CNN) built with a seed, and layer specs the batched
trainer evaluates over stacked parameters; Lipschitz bounds of a network (models.lipschitz)."""
from . import lipschitz
from .spec import Spec
from .zoo import MLP, MODELS, FlatLinear, SmallCNN, count_parameters, init_parameters, make_model

__all__ = ["make_model", "MODELS", "MLP", "SmallCNN", "FlatLinear", "init_parameters", "count_parameters", "Spec",
           "lipschitz"]
