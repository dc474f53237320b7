"""Hidden units with learned parameters of their own: prelu, the parametric relu.

    prelu(x, alpha) = x for x > 0, alpha * x otherwise

over a (rows, units) matrix x, alpha of shape (1,) (one slope shared by every unit) or (units,)
(one slope per unit), as the C kernels ffnc_prelu_forward / ffnc_prelu_backward compute it. The
derivative with respect to x at 0 is alpha (the kernels' convention). Its VJP is one op with two
outputs, `prelu_grad(g, x, alpha) -> (diff_x, diff_alpha)`, which maps to the backward kernel;
diff_alpha sums g * x over the elements with x <= 0 that share each slope. prelu is bilinear in
(x, alpha) on the negative side, so the second-order rules of prelu_grad are written with a
mask of that side.
"""

from __future__ import annotations

import numpy as np

from ffnc.graph.ir import Node, apply, constant, format_shape, require_float, same_dtype
from ffnc.graph.ops.elementwise import add_all, greater, where
from ffnc.graph.ops.registry import Op, register
from ffnc.graph.ops.shape import outputs, reshape, sum


def _check(op: str, x: Node, alpha: Node) -> None:
    same_dtype(op, [x, alpha])
    require_float(op, x)
    if x.ndim != 2 or x.shape[1] is None:
        raise ValueError(f"{op}: x {x.label} must be a (rows, units) matrix, got shape "
                         f"{format_shape(x.shape)}")
    if alpha.ndim != 1 or alpha.shape[0] not in (1, x.shape[1]):
        raise ValueError(f"{op}: alpha {alpha.label} must have shape (1,) (one shared slope) "
                         f"or ({x.shape[1]},) (one per unit of x with shape "
                         f"{format_shape(x.shape)}), got {format_shape(alpha.shape)}")


def _negative_side(x: Node) -> Node:
    """1 where x <= 0 (where the slope applies), 0 elsewhere, in x's dtype."""
    return where(greater(x, 0), constant(0, dtype=x.dtype), constant(1, dtype=x.dtype))


def _reduce_to(t: Node, alpha: Node) -> Node:
    """t (rows, units) summed over the elements that share each slope of alpha."""
    if alpha.shape == (1,):
        return reshape(sum(t), (1,))
    return sum(t, 0)


def _slope_times(t: Node, x: Node, alpha: Node) -> Node:
    """t times d prelu / d x: t where x > 0, alpha t elsewhere."""
    return where(greater(x, 0), t, t * alpha)


# ---- prelu -----------------------------------------------------------------------------------


def _prelu_infer(inputs: list[Node], attrs: dict) -> tuple:
    x, alpha = inputs
    _check("prelu", x, alpha)
    return x.shape, x.dtype


def _prelu_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    x, alpha = v
    return np.where(x > 0, x, alpha * x).astype(x.dtype, copy=False)


def _prelu_vjp(node: Node, ct: Node) -> list:
    x, alpha = node.inputs
    diff_x, diff_alpha = outputs(apply("prelu_grad", [ct, x, alpha]))
    return [diff_x, diff_alpha]


def _prelu_jvp(node: Node, t: list) -> Node | None:
    (x, alpha), (tx, ta) = node.inputs, t
    return add_all([_slope_times(tx, x, alpha) if tx is not None else None,
                    ta * x * _negative_side(x) if ta is not None else None])


register(Op(
    name="prelu",
    infer=_prelu_infer,
    forward=_prelu_forward,
    vjp=_prelu_vjp,
    jvp=_prelu_jvp,
    kernel="ffnc_prelu_forward",
    doc="The parametric relu: x for x > 0, alpha x otherwise (alpha shared or per unit).",
))


# ---- prelu_grad ------------------------------------------------------------------------------


def _prelu_grad_infer(inputs: list[Node], attrs: dict) -> list:
    g, x, alpha = inputs
    _check("prelu_grad", x, alpha)
    same_dtype("prelu_grad", [g, x])
    if g.shape != x.shape:
        raise ValueError(f"prelu_grad: the gradient {g.label} has shape {format_shape(g.shape)} "
                         f"but x {x.label} has shape {format_shape(x.shape)}")
    return [(x.shape, x.dtype), (alpha.shape, alpha.dtype)]


def _prelu_grad_forward(v: list, node: Node, batch: int | None) -> tuple:
    g, x, alpha = v
    positive = x > 0
    diff_x = np.where(positive, g, alpha * g).astype(x.dtype, copy=False)
    per_element = np.where(positive, 0, g.astype(np.float64) * x)
    if alpha.shape == (1,):
        diff_alpha = np.array([np.sum(per_element)])
    else:
        diff_alpha = np.sum(per_element, axis=0)
    return diff_x, diff_alpha.astype(alpha.dtype)


def _prelu_grad_vjp(node: Node, cts: list) -> list:
    (g, x, alpha), (c_x, c_alpha) = node.inputs, cts
    negative = _negative_side(x)
    diff_g = add_all([_slope_times(c_x, x, alpha) if c_x is not None else None,
                      c_alpha * x * negative if c_alpha is not None else None])
    diff_x = c_alpha * g * negative if c_alpha is not None else None
    diff_alpha = _reduce_to(c_x * g * negative, alpha) if c_x is not None else None
    return [diff_g, diff_x, diff_alpha]


def _prelu_grad_jvp(node: Node, t: list) -> list:
    (g, x, alpha), (tg, tx, ta) = node.inputs, t
    negative = _negative_side(x)
    t_diff_x = add_all([_slope_times(tg, x, alpha) if tg is not None else None,
                        g * negative * ta if ta is not None else None])
    per_element = add_all([tg * x * negative if tg is not None else None,
                           g * tx * negative if tx is not None else None])
    return [t_diff_x, _reduce_to(per_element, alpha) if per_element is not None else None]


register(Op(
    name="prelu_grad",
    infer=_prelu_grad_infer,
    forward=_prelu_grad_forward,
    vjp=_prelu_grad_vjp,
    jvp=_prelu_grad_jvp,
    kernel="ffnc_prelu_backward",
    doc="(g * prelu'(x), the slope gradient): the VJP of prelu, two outputs.",
))


def prelu(x: Node, alpha: Node) -> Node:
    """The parametric relu of the (rows, units) matrix x: x for x > 0, alpha x otherwise.

    alpha: a (1,) node (one slope shared by every unit) or (units,) (one slope per unit),
    usually a parameter. The derivative with respect to x at 0 is alpha.
    """
    return apply("prelu", [x, alpha])
