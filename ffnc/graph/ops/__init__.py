"""The op families. Importing this package fills the registry; each constructor builds a node
of one registered op (or several, for the multi-output ones)."""

from ffnc.graph.ops.registry import REGISTRY, Op  # noqa: I001 (the registry first)
from ffnc.graph.ops.shape import (
    broadcast_to,
    cast,
    concat,
    count,
    one_hot,
    outputs,
    reshape,
    split,
    sum,
    transpose,
    unbroadcast,
    zeros_like,
)
from ffnc.graph.ops.elementwise import (
    add,
    add_all,
    div,
    equal,
    exp,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    maximum,
    minimum,
    mul,
    neg,
    sqrt,
    square,
    sub,
    where,
)
from ffnc.graph.ops.activation import (
    ACTIVATIONS,
    abs,
    activation,
    elu,
    gelu,
    hard_tanh,
    leaky_relu,
    relu,
    sigmoid,
    softplus,
    tanh,
)
from ffnc.graph.ops.reduce import group_max, log_softmax, logsumexp, maxout, mean, softmax
from ffnc.graph.ops.linalg import matmul, sqdist
from ffnc.graph.ops.loss import LOSSES, bce_with_logits, l1, mse, softmax_cross_entropy
from ffnc.graph.ops.indexing import argmax
from ffnc.graph.ops.noise import dropout
from ffnc.graph.ops.units import prelu

__all__ = [
    "ACTIVATIONS", "LOSSES", "REGISTRY", "Op",
    "abs", "activation", "argmax", "dropout", "add", "add_all", "bce_with_logits",
    "broadcast_to", "cast", "concat",
    "count", "div", "elu", "equal", "exp", "gelu", "greater", "greater_equal", "group_max",
    "hard_tanh", "l1", "leaky_relu", "less", "less_equal", "log", "log_softmax", "logsumexp",
    "matmul", "maximum", "maxout", "mean", "minimum", "mse", "mul", "neg", "one_hot",
    "outputs", "prelu", "relu", "reshape", "sigmoid", "softmax", "softmax_cross_entropy",
    "softplus",
    "split", "sqdist", "sqrt", "square", "sub", "sum", "tanh", "transpose", "unbroadcast",
    "where", "zeros_like",
]
