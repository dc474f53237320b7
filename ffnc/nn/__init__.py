"""ffnc.nn: models, layers, initializers and losses.

    >>> import ffnc.nn as nn
    >>> model = nn.Sequential([nn.Dense(32, activation="relu"), nn.Dense(10)],
    ...                       input_shape=(64,), loss="softmax_cross_entropy")
    >>> list(model.named_parameters())
    ['0.weight', '0.bias', '1.weight', '1.bias']

A model (Sequential, or the functional Model over ffnc.nn.Input tensors) keeps every parameter
in one flat buffer ``model.flat``; ``model.output(training)`` is its graph (ffnc.graph), which
ffnc.compiler compiles and ffnc.train trains. ``get_config()`` / ``from_config()`` describe and
rebuild a model; ``state_dict()`` / ``load_state_dict()`` copy its parameters.
"""

from ffnc.nn import initializers, losses
from ffnc.nn.layers import (
    ELU,
    GELU,
    RBF,
    Abs,
    Activation,
    Add,
    Concat,
    Dense,
    Dropout,
    HardTanh,
    Identity,
    Layer,
    LeakyReLU,
    LogSoftmax,
    LowRank,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from ffnc.nn.models import Input, Model, Network, Sequential, Tensor, from_config
from ffnc.nn.module import Module

__all__ = [
    "ELU", "GELU", "RBF", "Abs", "Activation", "Add", "Concat", "Dense", "Dropout", "HardTanh",
    "Identity", "Input", "Layer", "LeakyReLU", "LogSoftmax", "LowRank", "Maxout", "Model",
    "Module", "Network", "PReLU", "ReLU", "Sequential", "Sigmoid", "Softmax", "Softplus", "Tanh",
    "Tensor", "from_config", "initializers", "losses",
]
