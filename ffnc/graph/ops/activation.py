"""The activations of the C kernels (ffnc.kernels.activation_forward/backward), each an op,
with a companion `<name>_grad(g, saved)` op for its derivative.

The numpy forwards follow the C kernels' formulas exactly, including the conventions at the
points where a derivative is not defined:

    relu'(0) = 0, |x|'(0) = 0, hard_tanh'(+-1) = 0, leaky_relu'(0) = alpha, elu'(0) = alpha

and NaN in, NaN out. `<name>_grad(g, saved)` is g * act'(x), computed from what the kernel
saves: the forward output y for relu, leaky_relu, tanh, sigmoid, hard_tanh and elu, the input
x for abs, softplus and gelu (see ffnc.kernels.activation_saves). The VJP and the JVP of an
activation are both that op, which the compiler maps to ffnc_activation_backward. The rules of
`<name>_grad` itself (for second derivatives) use d act'(x) / d saved, written in graph ops.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ffnc.graph.ir import (
    Node,
    apply,
    constant,
    finite_float,
    require_float,
    require_node,
    same_dtype,
)
from ffnc.graph.ops.elementwise import add_all, exp, greater, square, where
from ffnc.graph.ops.registry import Op, register

_SQRT_HALF = 0.70710678118654752440
_INV_SQRT_2PI = 0.39894228040143267794
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # the kernel's two branches: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) below (and for NaN)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _gelu(x: np.ndarray) -> np.ndarray:
    cdf = (0.5 * (1 + _erf(x * x.dtype.type(_SQRT_HALF)))).astype(x.dtype)
    return x * cdf


def _gelu_derivative(x: np.ndarray) -> np.ndarray:
    cdf = (0.5 * (1 + _erf(x * x.dtype.type(_SQRT_HALF)))).astype(x.dtype)
    pdf = x.dtype.type(_INV_SQRT_2PI) * np.exp(x.dtype.type(-0.5) * x * x)
    return cdf + x * pdf


@dataclass(frozen=True)
class Activation:
    """One activation: forward f(x, alpha); derivative d(g, saved, alpha) = g * f'(x) from the
    saved value; second(saved, alpha) = d f'(x) / d saved as a graph (None when it is 0)."""

    name: str
    saves: str
    forward: Callable[[np.ndarray, float], np.ndarray]
    derivative: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    second: Callable[[Node, float], Node | None]
    smooth: bool
    default_alpha: float | None = None


def _elu_second(s: Node, alpha: float) -> Node:
    # y' = 1 for y > 0, y + alpha below, so d y' / d y is 0 above and 1 below
    return where(greater(s, 0), constant(0, dtype=s.dtype), constant(1, dtype=s.dtype))


def _softplus_second(s: Node, alpha: float) -> Node:
    p = sigmoid(s)
    return p * (1 - p)


def _gelu_second(s: Node, alpha: float) -> Node:
    # gelu'' = pdf (2 - x^2)
    pdf = exp(square(s) * -0.5) * _INV_SQRT_2PI
    return pdf * (2 - square(s))


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("relu", "output", lambda x, a: np.where(x <= 0, 0, x),
               lambda g, s, a: np.where(s > 0, g, 0), lambda s, a: None, smooth=False),
    Activation("leaky_relu", "output", lambda x, a: np.where(x > 0, x, a * x),
               lambda g, s, a: np.where(s > 0, g, a * g), lambda s, a: None, smooth=False,
               default_alpha=0.01),
    Activation("abs", "input", lambda x, a: np.abs(x),
               lambda g, s, a: np.where(s > 0, g, np.where(s < 0, -g, 0)), lambda s, a: None,
               smooth=False),
    Activation("tanh", "output", lambda x, a: np.tanh(x), lambda g, s, a: g * (1 - s * s),
               lambda s, a: s * -2, smooth=True),
    Activation("sigmoid", "output", lambda x, a: _sigmoid(x), lambda g, s, a: g * s * (1 - s),
               lambda s, a: 1 - s * 2, smooth=True),
    Activation("softplus", "input",
               lambda x, a: np.where(x > 0, x, 0) + np.log1p(np.exp(-np.abs(x))),
               lambda g, s, a: g * _sigmoid(s), _softplus_second, smooth=True),
    Activation("hard_tanh", "output", lambda x, a: np.where(x < -1, -1, np.where(x > 1, 1, x)),
               lambda g, s, a: np.where((s > -1) & (s < 1), g, 0), lambda s, a: None,
               smooth=False),
    Activation("elu", "output", lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
               lambda g, s, a: np.where(s > 0, g, g * (s + a)), _elu_second, smooth=False,
               default_alpha=1.0),
    Activation("gelu", "input", lambda x, a: _gelu(x), lambda g, s, a: g * _gelu_derivative(s),
               _gelu_second, smooth=True),
)}


def _alpha(node: Node, dtype: np.dtype) -> float:
    return dtype.type(node.attrs["alpha"])


def _register(act: Activation) -> None:
    grad_name = f"{act.name}_grad"

    def infer(inputs: list[Node], attrs: dict) -> tuple:
        (x,) = inputs
        return x.shape, require_float(act.name, x)

    def forward(v: list, node: Node, batch: int | None) -> np.ndarray:
        x = v[0]
        return act.forward(x, _alpha(node, x.dtype)).astype(x.dtype, copy=False)

    def saved(node: Node) -> Node:
        return node if act.saves == "output" else node.inputs[0]

    register(Op(
        name=act.name, infer=infer, forward=forward,
        vjp=lambda node, ct: [apply(grad_name, [ct, saved(node)], dict(node.attrs))],
        jvp=lambda node, t: apply(grad_name, [t[0], saved(node)], dict(node.attrs)),
        kernel="ffnc_activation_forward", smooth=act.smooth,
        doc=f"The {act.name} activation (C kernel conventions)."))

    def grad_infer(inputs: list[Node], attrs: dict) -> tuple:
        g, s = inputs
        same_dtype(grad_name, inputs)
        require_float(grad_name, g)
        if g.shape != s.shape:
            raise ValueError(f"{grad_name}: the gradient {g.label} has shape {g.shape} but the "
                             f"saved {act.saves} {s.label} has shape {s.shape}")
        return g.shape, g.dtype

    def grad_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
        g, s = v
        return act.derivative(g, s, _alpha(node, g.dtype)).astype(g.dtype, copy=False)

    def grad_vjp(node: Node, ct: Node) -> list:
        g, s = node.inputs
        second = act.second(s, node.attrs["alpha"])
        return [apply(grad_name, [ct, s], dict(node.attrs)),
                ct * g * second if second is not None else None]

    def grad_jvp(node: Node, t: list) -> Node | None:
        (g, s), (tg, ts) = node.inputs, t
        second = act.second(s, node.attrs["alpha"]) if ts is not None else None
        return add_all([apply(grad_name, [tg, s], dict(node.attrs)) if tg is not None else None,
                        ts * g * second if second is not None else None])

    register(Op(
        name=grad_name, infer=grad_infer, forward=grad_forward, vjp=grad_vjp, jvp=grad_jvp,
        kernel="ffnc_activation_backward", smooth=act.smooth,
        doc=f"g * {act.name}'(x), from g and the saved {act.saves}."))


for _act in ACTIVATIONS.values():
    _register(_act)


def activation(x: Node, name: str, alpha: float | None = None) -> Node:
    """Applies the activation `name` (one of ffnc.kernels.ACTIVATIONS) to x.

    alpha: the slope of leaky_relu (default 0.01) or the scale of elu (default 1.0), >= 0;
    the other activations take none. 'identity' returns x itself.
    """
    require_node(x, "activation")
    if name == "identity":
        if alpha is not None:
            raise ValueError(f"activation 'identity' takes no alpha (got alpha={alpha!r})")
        return x
    act = ACTIVATIONS.get(name) if isinstance(name, str) else None
    if act is None:
        raise ValueError(f"activation must be one of identity, {', '.join(ACTIVATIONS)}; "
                         f"got {name!r}")
    if act.default_alpha is None:
        if alpha is not None:
            raise ValueError(f"activation {name!r} takes no alpha (got alpha={alpha!r})")
        alpha = 0.0
    elif alpha is None:
        alpha = act.default_alpha
    elif finite_float(alpha) is None or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return apply(name, [x], {"alpha": float(alpha)})


def sigmoid_grad_node(g: Node, y: Node) -> Node:
    """g * sigmoid'(x) from the sigmoid's output y: g y (1 - y)."""
    return apply("sigmoid_grad", [g, y], {"alpha": 0.0})


def relu(x: Node) -> Node:
    """max(0, x); derivative 0 at 0."""
    return activation(x, "relu")


def leaky_relu(x: Node, alpha: float = 0.01) -> Node:
    """x for x > 0, alpha * x otherwise; derivative alpha at 0."""
    return activation(x, "leaky_relu", alpha)


def abs(x: Node) -> Node:  # noqa: A001 (numpy's name)
    """|x|; derivative 0 at 0."""
    return activation(x, "abs")


def tanh(x: Node) -> Node:
    """The hyperbolic tangent."""
    return activation(x, "tanh")


def sigmoid(x: Node) -> Node:
    """The logistic sigmoid 1 / (1 + e**-x), computed without overflow."""
    return activation(x, "sigmoid")


def softplus(x: Node) -> Node:
    """log(1 + e**x), computed without overflow."""
    return activation(x, "softplus")


def hard_tanh(x: Node) -> Node:
    """x clipped to [-1, 1]; derivative 0 at -1 and 1."""
    return activation(x, "hard_tanh")


def elu(x: Node, alpha: float = 1.0) -> Node:
    """x for x > 0, alpha (e**x - 1) otherwise; derivative alpha at 0."""
    return activation(x, "elu", alpha)


def gelu(x: Node) -> Node:
    """x * Phi(x), the exact (erf) form."""
    return activation(x, "gelu")
