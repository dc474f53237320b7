"""Element-wise ops with numpy broadcasting: arithmetic, exp/log/square/sqrt, maximum/minimum,
where, and the comparisons that feed where.

Conventions at non-differentiable points: maximum(a, b) at a tie sends the whole gradient to
a, minimum likewise (the first argument wins), so the lecture's max{0, z} has derivative 0 at
z = 0, as relu does. Comparisons have no derivative (they are piecewise constant).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ffnc.graph.ir import (
    Node,
    apply,
    as_node,
    broadcast_shapes,
    constant,
    require_float,
    same_dtype,
)
from ffnc.graph.ops.registry import Op, no_jvp, no_vjp, register
from ffnc.graph.ops.shape import broadcast_to, unbroadcast


def _operands(op: str, a: Any, b: Any) -> tuple[Node, Node]:
    if not isinstance(a, Node) and not isinstance(b, Node):
        raise TypeError(f"{op}: at least one operand must be a graph Node")
    try:
        a = as_node(a, b if isinstance(b, Node) else None)
        b = as_node(b, a)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{op}: {exc}") from None
    return a, b


def _binary_infer(op: str, floats_only: bool = True, result_dtype: Any = None):
    def infer(inputs: list[Node], attrs: dict) -> tuple:
        dt = same_dtype(op, inputs)
        if floats_only:
            for x in inputs:
                require_float(op, x)
        shape = broadcast_shapes(op, *(x.shape for x in inputs))
        return shape, (result_dtype if result_dtype is not None else dt)
    return infer


def _unary_infer(op: str):
    def infer(inputs: list[Node], attrs: dict) -> tuple:
        (x,) = inputs
        require_float(op, x)
        return x.shape, x.dtype
    return infer


def fit(t: Node, node: Node) -> Node:
    """A tangent of one operand broadcast to the shape of the op's result."""
    return broadcast_to(t, node.shape)


def _zero(dtype: np.dtype) -> Node:
    return constant(0, dtype=dtype)


# ---- arithmetic ------------------------------------------------------------------------------


def _add_jvp(node: Node, t: list) -> Node:
    ta, tb = t
    if ta is None:
        return fit(tb, node)
    if tb is None:
        return fit(ta, node)
    return fit(ta + tb, node)


def _sub_jvp(node: Node, t: list) -> Node:
    ta, tb = t
    if tb is None:
        return fit(ta, node)
    if ta is None:
        return fit(neg(tb), node)
    return fit(ta - tb, node)


def _mul_vjp(node: Node, ct: Node) -> list:
    a, b = node.inputs
    return [unbroadcast(ct * b, a.shape), unbroadcast(ct * a, b.shape)]


def _mul_jvp(node: Node, t: list) -> Node:
    (a, b), (ta, tb) = node.inputs, t
    terms = [ta * b if ta is not None else None, a * tb if tb is not None else None]
    return fit(add_all(terms), node)


def _div_vjp(node: Node, ct: Node) -> list:
    a, b = node.inputs
    quotient = ct / b
    return [unbroadcast(quotient, a.shape), unbroadcast(neg(quotient * node), b.shape)]


def _div_jvp(node: Node, t: list) -> Node:
    # d(a/b) = (da - (a/b) db) / b
    b, (ta, tb) = node.inputs[1], t
    if tb is None:
        return fit(ta / b, node)
    numerator = neg(node * tb) if ta is None else ta - node * tb
    return fit(numerator / b, node)


register(Op("add", _binary_infer("add"), lambda v, n, b: v[0] + v[1],
            lambda n, ct: [unbroadcast(ct, n.inputs[0].shape), unbroadcast(ct, n.inputs[1].shape)],
            _add_jvp, smooth=True, doc="a + b"))
register(Op("sub", _binary_infer("sub"), lambda v, n, b: v[0] - v[1],
            lambda n, ct: [unbroadcast(ct, n.inputs[0].shape),
                           unbroadcast(neg(ct), n.inputs[1].shape)],
            _sub_jvp, smooth=True, doc="a - b"))
register(Op("mul", _binary_infer("mul"), lambda v, n, b: v[0] * v[1], _mul_vjp, _mul_jvp,
            smooth=True, doc="a * b"))
register(Op("div", _binary_infer("div"), lambda v, n, b: v[0] / v[1], _div_vjp, _div_jvp,
            smooth=True, doc="a / b"))
register(Op("neg", _unary_infer("neg"), lambda v, n, b: -v[0],
            lambda n, ct: [neg(ct)], lambda n, t: neg(t[0]), smooth=True, doc="-x"))


def add(a: Any, b: Any) -> Node:
    """a + b, broadcasting."""
    return apply("add", list(_operands("add", a, b)))


def sub(a: Any, b: Any) -> Node:
    """a - b, broadcasting."""
    return apply("sub", list(_operands("sub", a, b)))


def mul(a: Any, b: Any) -> Node:
    """a * b, broadcasting."""
    return apply("mul", list(_operands("mul", a, b)))


def div(a: Any, b: Any) -> Node:
    """a / b, broadcasting."""
    return apply("div", list(_operands("div", a, b)))


def neg(x: Node) -> Node:
    """-x."""
    return apply("neg", [x])


def add_all(terms: list[Node | None]) -> Node | None:
    """The sum of the terms that are not None (None when all are): how tangents and
    cotangent contributions are combined."""
    present = [t for t in terms if t is not None]
    if not present:
        return None
    total = present[0]
    for t in present[1:]:
        total = total + t
    return total


# ---- exp, log, square, sqrt ------------------------------------------------------------------


def _with_errstate(fn):
    def forward(v, node, batch):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return fn(v[0])
    return forward


register(Op("exp", _unary_infer("exp"), _with_errstate(np.exp),
            lambda n, ct: [ct * n], lambda n, t: t[0] * n, smooth=True, doc="e**x"))
register(Op("log", _unary_infer("log"), _with_errstate(np.log),
            lambda n, ct: [ct / n.inputs[0]], lambda n, t: t[0] / n.inputs[0], smooth=True,
            doc="The natural logarithm (x > 0)."))
register(Op("square", _unary_infer("square"), _with_errstate(np.square),
            lambda n, ct: [ct * (n.inputs[0] * 2)], lambda n, t: t[0] * (n.inputs[0] * 2),
            smooth=True, doc="x * x"))
register(Op("sqrt", _unary_infer("sqrt"), _with_errstate(np.sqrt),
            lambda n, ct: [ct / (n * 2)], lambda n, t: t[0] / (n * 2), smooth=True,
            doc="The square root (x > 0 for a derivative)."))


def exp(x: Node) -> Node:
    """e**x, element-wise."""
    return apply("exp", [x])


def log(x: Node) -> Node:
    """The natural logarithm, element-wise."""
    return apply("log", [x])


def square(x: Node) -> Node:
    """x * x, element-wise."""
    return apply("square", [x])


def sqrt(x: Node) -> Node:
    """The square root, element-wise."""
    return apply("sqrt", [x])


# ---- comparisons and where -------------------------------------------------------------------

_BOOL = np.dtype(bool)

for _name, _fn in (("greater", np.greater), ("greater_equal", np.greater_equal),
                   ("equal", np.equal)):
    register(Op(_name, _binary_infer(_name, floats_only=False, result_dtype=_BOOL),
                (lambda f: lambda v, n, b: f(v[0], v[1]))(_fn), no_vjp, no_jvp,
                differentiable=False, doc=f"numpy.{_name}(a, b), a bool mask."))


def greater(a: Any, b: Any) -> Node:
    """The bool mask a > b."""
    return apply("greater", list(_operands("greater", a, b)))


def greater_equal(a: Any, b: Any) -> Node:
    """The bool mask a >= b."""
    return apply("greater_equal", list(_operands("greater_equal", a, b)))


def less(a: Any, b: Any) -> Node:
    """The bool mask a < b."""
    a, b = _operands("less", a, b)
    return greater(b, a)


def less_equal(a: Any, b: Any) -> Node:
    """The bool mask a <= b."""
    a, b = _operands("less_equal", a, b)
    return greater_equal(b, a)


def equal(a: Any, b: Any) -> Node:
    """The bool mask a == b."""
    return apply("equal", list(_operands("equal", a, b)))


def _where_infer(inputs: list[Node], attrs: dict) -> tuple:
    cond, a, b = inputs
    if cond.dtype != _BOOL:
        raise TypeError(f"where: condition {cond.label} must be a bool mask, got "
                        f"{cond.dtype.name}")
    dt = same_dtype("where", [a, b])
    require_float("where", a)
    return broadcast_shapes("where", cond.shape, a.shape, b.shape), dt


def _where_vjp(node: Node, ct: Node) -> list:
    cond, a, b = node.inputs
    zero = _zero(ct.dtype)
    return [None, unbroadcast(where(cond, ct, zero), a.shape),
            unbroadcast(where(cond, zero, ct), b.shape)]


def _where_jvp(node: Node, t: list) -> Node:
    cond = node.inputs[0]
    zero = _zero(node.dtype)
    _, ta, tb = t
    return fit(where(cond, ta if ta is not None else zero, tb if tb is not None else zero), node)


register(Op("where", _where_infer, lambda v, n, b: np.where(v[0], v[1], v[2]),
            _where_vjp, _where_jvp, doc="a where cond holds, else b."))


def where(cond: Node, a: Any, b: Any) -> Node:
    """a where the bool mask cond holds, b elsewhere (all three broadcast)."""
    a, b = _operands("where", a, b)
    return apply("where", [cond, a, b])


# ---- maximum, minimum ------------------------------------------------------------------------


def _extremum_rules(first_wins_mask):
    def vjp(node: Node, ct: Node) -> list:
        a, b = node.inputs
        mask = first_wins_mask(a, b)
        zero = _zero(ct.dtype)
        return [unbroadcast(where(mask, ct, zero), a.shape),
                unbroadcast(where(mask, zero, ct), b.shape)]

    def jvp(node: Node, t: list) -> Node:
        a, b = node.inputs
        zero = _zero(node.dtype)
        ta, tb = (ti if ti is not None else zero for ti in t)
        return fit(where(first_wins_mask(a, b), ta, tb), node)

    return vjp, jvp


register(Op("maximum", _binary_infer("maximum"), lambda v, n, b: np.maximum(v[0], v[1]),
            *_extremum_rules(greater_equal),
            doc="The element-wise maximum; at a tie the derivative goes to a."))
register(Op("minimum", _binary_infer("minimum"), lambda v, n, b: np.minimum(v[0], v[1]),
            *_extremum_rules(less_equal),
            doc="The element-wise minimum; at a tie the derivative goes to a."))


def maximum(a: Any, b: Any) -> Node:
    """The element-wise maximum; at a tie the whole derivative goes to a (the first)."""
    return apply("maximum", list(_operands("maximum", a, b)))


def minimum(a: Any, b: Any) -> Node:
    """The element-wise minimum; at a tie the whole derivative goes to a (the first)."""
    return apply("minimum", list(_operands("minimum", a, b)))
