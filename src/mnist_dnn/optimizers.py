"""Optimizers chosen by name from params.yaml."""

import torch

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adadelta": torch.optim.Adadelta,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


def build_optimizer(name, parameters, lr):
    """The optimizer called ``name`` over ``parameters`` with learning rate ``lr``."""
    return OPTIMIZERS[name](parameters, lr=lr)
