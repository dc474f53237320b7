"""matmul (with transposes, mapped to ffnc_gemm) and the squared distance of RBF units."""

from __future__ import annotations

from typing import Any

import numpy as np

from ffnc.graph.ir import (
    Node,
    apply,
    as_flag,
    as_node,
    format_shape,
    require_float,
    same_dtype,
)
from ffnc.graph.ops.elementwise import add_all
from ffnc.graph.ops.registry import Op, register
from ffnc.graph.ops.shape import reshape, sum, transpose

# ---- matmul ----------------------------------------------------------------------------------


def _effective(x: Node, trans: bool) -> tuple:
    return tuple(reversed(x.shape)) if trans else x.shape


def _matmul_infer(inputs: list[Node], attrs: dict) -> tuple:
    a, b = inputs
    dt = same_dtype("matmul", inputs)
    require_float("matmul", a)
    for x, flag in ((a, "transpose_a"), (b, "transpose_b")):
        if x.ndim not in (1, 2):
            raise ValueError(f"matmul: {x.label} must be a vector or a matrix, got shape "
                             f"{format_shape(x.shape)}")
        if attrs[flag] and x.ndim != 2:
            raise ValueError(f"matmul: {flag} needs a matrix, {x.label} has shape "
                             f"{format_shape(x.shape)}")
    sa, sb = _effective(a, attrs["transpose_a"]), _effective(b, attrs["transpose_b"])
    k_a = sa[-1]
    k_b = sb[0]
    if k_a != k_b:
        shown = [format_shape(sa) + (" (transposed)" if attrs["transpose_a"] else ""),
                 format_shape(sb) + (" (transposed)" if attrs["transpose_b"] else "")]
        raise ValueError(f"matmul: shapes {shown[0]} and {shown[1]} do not align "
                         f"({k_a} != {k_b}) for {a.label} @ {b.label}")
    return sa[:-1] + sb[1:], dt


def _matmul_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    a = v[0].T if node.attrs["transpose_a"] else v[0]
    b = v[1].T if node.attrs["transpose_b"] else v[1]
    return np.matmul(a, b)


def _as_matrices(node: Node, ct: Node) -> tuple[Node, Node, Node]:
    """The operands and the cotangent as matrices: a vector a is a row (1, k), a vector b a
    column (k, 1), which is what numpy's matmul does with them."""
    a, b = node.inputs
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    rows = a2.shape[1] if node.attrs["transpose_a"] else a2.shape[0]
    cols = b2.shape[0] if node.attrs["transpose_b"] else b2.shape[1]
    return a2, b2, reshape(ct, (rows, cols))


def _matmul_vjp(node: Node, ct: Node) -> list:
    # C = op(A) op(B): dA = ct op(B)^T (transposed back when A was), dB likewise.
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    a, b = node.inputs
    a2, b2, ct2 = _as_matrices(node, ct)
    if ta:
        da = matmul(b2, ct2, transpose_a=tb, transpose_b=True)
    else:
        da = matmul(ct2, b2, transpose_b=not tb)
    if tb:
        db = matmul(ct2, a2, transpose_a=True, transpose_b=ta)
    else:
        db = matmul(a2, ct2, transpose_a=not ta)
    return [reshape(da, a.shape), reshape(db, b.shape)]


def _matmul_jvp(node: Node, t: list) -> Node | None:
    (a, b), (ta, tb), flags = node.inputs, t, node.attrs
    return add_all([
        apply("matmul", [ta, b], dict(flags)) if ta is not None else None,
        apply("matmul", [a, tb], dict(flags)) if tb is not None else None,
    ])


register(Op(
    name="matmul",
    infer=_matmul_infer,
    forward=_matmul_forward,
    vjp=_matmul_vjp,
    jvp=_matmul_jvp,
    kernel="ffnc_gemm",
    smooth=True,
    doc="op(a) @ op(b), op a transpose when asked; vectors as in numpy.",
))


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False) -> Node:
    """op(a) @ op(b) where op transposes a matrix when its flag is set (no copy is made: the
    compiler passes the flag to the GEMM). Vectors follow numpy: a vector a is a row, b a
    column, and the result drops that dimension."""
    if not isinstance(a, Node) and not isinstance(b, Node):
        raise TypeError("matmul: at least one operand must be a graph Node")
    try:
        a = as_node(a)
        b = as_node(b)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"matmul: {exc}") from None
    return apply("matmul", [a, b], {"transpose_a": as_flag(transpose_a, "matmul", "transpose_a"),
                                    "transpose_b": as_flag(transpose_b, "matmul",
                                                           "transpose_b")})


# ---- squared distance ------------------------------------------------------------------------


def _sqdist_infer(inputs: list[Node], attrs: dict) -> tuple:
    x, c = inputs
    dt = same_dtype("sqdist", inputs)
    require_float("sqdist", x)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"sqdist: x {x.label} and centers {c.label} must be matrices with "
                         f"the same number of columns, got shapes {format_shape(x.shape)} and "
                         f"{format_shape(c.shape)}")
    return (x.shape[0], c.shape[0]), dt


def _sqdist_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    x, c = v
    return np.sum(np.square(x[:, None, :] - c[None, :, :]), axis=-1)


def _sqdist_vjp(node: Node, ct: Node) -> list:
    # d/dx_i = 2 sum_j ct_ij (x_i - c_j);  d/dc_j = 2 sum_i ct_ij (c_j - x_i)
    x, c = node.inputs
    dx = (sum(ct, 1, keepdims=True) * x - matmul(ct, c)) * 2
    dc = (transpose(sum(ct, 0, keepdims=True)) * c - matmul(ct, x, transpose_a=True)) * 2
    return [dx, dc]


def _sqdist_jvp(node: Node, t: list) -> Node | None:
    # d |x_i - c_j|^2 = 2 (x_i - c_j) . (dx_i - dc_j)
    (x, c), (tx, tc) = node.inputs, t
    terms = []
    if tx is not None:
        terms.append(sum(x * tx, 1, keepdims=True) - matmul(tx, c, transpose_b=True))
    if tc is not None:
        terms.append(transpose(sum(c * tc, 1, keepdims=True)) - matmul(x, tc, transpose_b=True))
    return add_all(terms) * 2


register(Op(
    name="sqdist",
    infer=_sqdist_infer,
    forward=_sqdist_forward,
    vjp=_sqdist_vjp,
    jvp=_sqdist_jvp,
    smooth=True,
    doc="|x_i - c_j|^2 for every row x_i of x and c_j of the centers (RBF units).",
))


def sqdist(x: Node, centers: Node) -> Node:
    """The squared Euclidean distance of every row of x (n, d) to every row of centers (m, d):
    an (n, m) matrix, the input of radial basis function units."""
    return apply("sqdist", [x, centers])
