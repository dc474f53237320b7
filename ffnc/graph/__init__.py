"""ffnc.graph: computational graphs and symbolic differentiation.

Build a graph from placeholders, parameters and constants with operators (``+ - * / @``,
unary ``-``) and the functions here (``relu``, ``softmax_cross_entropy``, ...); every node
knows its shape and dtype as soon as it is built. Derivatives are graphs too (symbol to
symbol): ``grad`` (reverse mode), ``jvp`` (forward mode), ``hvp`` and ``hessian`` (second
order), ``jacobian`` (either mode, chosen from the sizes). ``simplify`` shrinks a graph,
``evaluate`` runs one in numpy (the reference every compiled plan is tested against), and
``gradcheck`` checks a graph's derivatives against finite differences.

    >>> import numpy as np, ffnc.graph as G
    >>> x = G.placeholder((None, 2), np.float64, name="x")
    >>> w = G.parameter(np.ones(2))
    >>> y = G.sum(G.square(x @ w))
    >>> dw = G.grad(y, w)
    >>> G.evaluate(dw, {x: np.ones((3, 2))})
    array([12., 12.])

Conventions at non-differentiable points: relu'(0) = 0, |x|'(0) = 0, hard_tanh'(+-1) = 0,
leaky_relu'(0) = elu'(0) = alpha; maximum/minimum ties and group_max ties go to the first.
"""

import importlib
from typing import Any

# The op families must be registered before anything builds a node.
from ffnc.graph import ops  # noqa: I001
from ffnc.graph.ir import Node, constant, count_nodes, parameter, placeholder, topo_order
from ffnc.graph.ops import (
    ACTIVATIONS,
    LOSSES,
    REGISTRY,
    Op,
    abs,
    activation,
    add,
    argmax,
    bce_with_logits,
    broadcast_to,
    cast,
    concat,
    count,
    div,
    dropout,
    elu,
    equal,
    exp,
    gelu,
    greater,
    greater_equal,
    group_max,
    hard_tanh,
    l1,
    leaky_relu,
    less,
    less_equal,
    log,
    log_softmax,
    logsumexp,
    matmul,
    maximum,
    maxout,
    mean,
    minimum,
    mse,
    mul,
    neg,
    one_hot,
    prelu,
    relu,
    reshape,
    sigmoid,
    softmax,
    softmax_cross_entropy,
    softplus,
    split,
    sqdist,
    sqrt,
    square,
    sub,
    sum,
    tanh,
    transpose,
    where,
)
from ffnc.graph.reverse import grad, vjp
from ffnc.graph.simplify import simplify

# What building, differentiating in reverse mode and compiling a graph do not need is imported
# on first use (PEP 562), which keeps a training process's memory down.
_LAZY = {
    "GradcheckError": "check", "GradcheckReport": "check", "gradcheck": "check",
    "jvp": "forward", "evaluate": "interpreter",
    **dict.fromkeys(("HVP_DEFAULT", "HVP_MODES", "JacobianResult", "hessian", "hvp",
                     "jacobian"), "higher"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ffnc.graph' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ffnc.graph.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "ACTIVATIONS", "HVP_DEFAULT", "HVP_MODES", "LOSSES", "REGISTRY",
    "GradcheckError", "GradcheckReport", "JacobianResult", "Node", "Op",
    "abs", "activation", "add", "argmax", "bce_with_logits", "broadcast_to", "cast", "concat",
    "constant", "count", "count_nodes", "div", "dropout", "elu", "equal", "evaluate", "exp",
    "gelu", "grad", "gradcheck", "greater", "greater_equal", "group_max", "hard_tanh",
    "hessian", "hvp",
    "jacobian", "jvp", "l1", "leaky_relu", "less", "less_equal", "log", "log_softmax",
    "logsumexp", "matmul", "maximum", "maxout", "mean", "minimum", "mse", "mul", "neg",
    "one_hot", "ops", "parameter", "placeholder", "prelu", "relu", "reshape", "sigmoid", "simplify",
    "softmax", "softmax_cross_entropy", "softplus", "split", "sqdist", "sqrt", "square", "sub",
    "sum", "tanh", "topo_order", "transpose", "vjp", "where",
]
