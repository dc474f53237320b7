"""Reductions that need arithmetic: mean, logsumexp, softmax, log_softmax, and group max with
its argmax (one op, two outputs, as in the lecture's max + argmax example).

softmax, log_softmax and logsumexp shift by the maximum along their axis, so any finite input
is safe. group_max takes the first maximum of each group: ties, and the derivative, go to the
lowest index.
"""

from __future__ import annotations

import numpy as np

from ffnc.graph.ir import (
    Node,
    apply,
    as_count,
    as_flag,
    format_shape,
    normalize_axis,
    require_float,
)
from ffnc.graph.ops.elementwise import exp
from ffnc.graph.ops.registry import Op, register
from ffnc.graph.ops.shape import (
    _reduce_infer,
    count,
    expand_reduced,
    one_hot,
    outputs,
    reshape,
    sum,
)

# ---- mean ------------------------------------------------------------------------------------


def _mean_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    x, axes = v[0], node.attrs["axes"]
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    total = np.sum(x, axis=axes, keepdims=node.attrs["keepdims"])
    return (total / x.dtype.type(n)).astype(x.dtype, copy=False)


def _mean_vjp(node: Node, ct: Node) -> list:
    (x,), axes = node.inputs, node.attrs["axes"]
    return [expand_reduced(ct / count(x, axes), x, axes, node.attrs["keepdims"])]


register(Op(
    name="mean",
    infer=_reduce_infer("mean"),
    forward=_mean_forward,
    vjp=_mean_vjp,
    jvp=lambda node, t: mean(t[0], node.attrs["axes"], node.attrs["keepdims"]),
    smooth=True,
    doc="The mean over `axes`; over the batch dimension it divides by the batch size.",
))


def mean(x: Node, axis=None, keepdims: bool = False) -> Node:
    """The mean of x over `axis` (an int, a tuple, or None for all axes)."""
    return apply("mean", [x], {"axes": axis, "keepdims": as_flag(keepdims, "mean", "keepdims")})


# ---- softmax family --------------------------------------------------------------------------


def _axis_infer(op: str, reduces: bool):
    def infer(inputs: list[Node], attrs: dict) -> tuple:
        (x,) = inputs
        require_float(op, x)
        if x.ndim == 0:
            raise ValueError(f"{op}: {x.label} must have at least one dimension")
        axis = attrs["axis"] = normalize_axis(op, attrs["axis"], x.ndim)
        if not reduces:
            return x.shape, x.dtype
        if attrs["keepdims"]:
            return tuple(1 if a == axis else d for a, d in enumerate(x.shape)), x.dtype
        return tuple(d for a, d in enumerate(x.shape) if a != axis), x.dtype
    return infer


def _shifted(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """x minus its maximum along axis, and that maximum (0 where it is not finite, so rows of
    -inf stay -inf rather than becoming NaN)."""
    with np.errstate(invalid="ignore"):
        m = np.max(x, axis=axis, keepdims=True) if x.shape[axis] else np.zeros_like(
            np.sum(x, axis=axis, keepdims=True))
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)
    return x - m, m


def _logsumexp_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    axis = node.attrs["axis"]
    z, m = _shifted(v[0], axis)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(z), axis=axis, keepdims=True)) + m
    return out if node.attrs["keepdims"] else np.squeeze(out, axis=axis)


def _softmax_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    z, _ = _shifted(v[0], node.attrs["axis"])
    e = np.exp(z)
    return e / np.sum(e, axis=node.attrs["axis"], keepdims=True)


def _log_softmax_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    z, _ = _shifted(v[0], node.attrs["axis"])
    with np.errstate(divide="ignore"):
        return z - np.log(np.sum(np.exp(z), axis=node.attrs["axis"], keepdims=True))


def softmax_product(s: Node, v: Node, axis: int) -> Node:
    """J v for J the Jacobian of softmax at output s: s * (v - sum(s v)). J is symmetric, so
    this is both the VJP and the JVP of softmax."""
    return s * (v - sum(s * v, axis, keepdims=True))


def _logsumexp_vjp(node: Node, ct: Node) -> list:
    (x,), axis = node.inputs, node.attrs["axis"]
    return [expand_reduced(ct, x, (axis,), node.attrs["keepdims"]) * softmax(x, axis)]


register(Op(
    name="logsumexp",
    infer=_axis_infer("logsumexp", reduces=True),
    forward=_logsumexp_forward,
    vjp=_logsumexp_vjp,
    jvp=lambda node, t: sum(t[0] * softmax(node.inputs[0], node.attrs["axis"]),
                            node.attrs["axis"], node.attrs["keepdims"]),
    smooth=True,
    doc="log(sum(exp(x))) along one axis, shifted by the maximum (the smoothed max).",
))
register(Op(
    name="softmax",
    infer=_axis_infer("softmax", reduces=False),
    forward=_softmax_forward,
    vjp=lambda node, ct: [softmax_product(node, ct, node.attrs["axis"])],
    jvp=lambda node, t: softmax_product(node, t[0], node.attrs["axis"]),
    smooth=True,
    doc="exp(x) / sum(exp(x)) along one axis, shifted by the maximum.",
))
register(Op(
    name="log_softmax",
    infer=_axis_infer("log_softmax", reduces=False),
    forward=_log_softmax_forward,
    vjp=lambda node, ct: [ct - exp(node) * sum(ct, node.attrs["axis"], keepdims=True)],
    jvp=lambda node, t: t[0] - sum(exp(node) * t[0], node.attrs["axis"], keepdims=True),
    kernel="ffnc_log_softmax_forward",
    smooth=True,
    doc="x - logsumexp(x) along one axis.",
))


def logsumexp(x: Node, axis: int = -1, keepdims: bool = False) -> Node:
    """log(sum(exp(x))) along `axis`, computed stably."""
    return apply("logsumexp", [x], {"axis": axis,
                                    "keepdims": as_flag(keepdims, "logsumexp", "keepdims")})


def softmax(x: Node, axis: int = -1) -> Node:
    """The softmax along `axis`, computed stably."""
    return apply("softmax", [x], {"axis": axis})


def log_softmax(x: Node, axis: int = -1) -> Node:
    """The log of the softmax along `axis`, computed stably."""
    return apply("log_softmax", [x], {"axis": axis})


# ---- group max with argmax -------------------------------------------------------------------


def _group_max_infer(inputs: list[Node], attrs: dict) -> list:
    (x,), size = inputs, attrs["size"]
    require_float("group_max", x)
    last = x.shape[-1] if x.ndim else None
    if last is None or size < 1 or last % size:
        raise ValueError(f"group_max: the last dimension of {x.label} with shape "
                         f"{format_shape(x.shape)} must be a static multiple of the group "
                         f"size {size}")
    shape = x.shape[:-1] + (last // size,)
    return [(shape, x.dtype), (shape, np.dtype(np.int64))]


def _grouped_shape(x: Node, size: int) -> tuple:
    return x.shape[:-1] + (x.shape[-1] // size, size)


def _group_max_forward(v: list, node: Node, batch: int | None) -> tuple:
    x, size = v[0], node.attrs["size"]
    if x.shape[-1] == 0:  # no groups (any size divides 0): nothing to reshape into
        shape = x.shape[:-1] + (0,)
        return np.empty(shape, x.dtype), np.empty(shape, np.int64)
    groups = x.reshape(x.shape[:-1] + (x.shape[-1] // size, size))
    index = np.argmax(groups, axis=-1)  # the first maximum
    values = np.take_along_axis(groups, index[..., None], axis=-1)[..., 0]
    return np.ascontiguousarray(values), index.astype(np.int64)


def _group_max_vjp(node: Node, cts: list) -> list:
    (x,), size = node.inputs, node.attrs["size"]
    ct, index = cts[0], _argmax_of(node)
    if ct is None:
        return [None]
    spread = reshape(ct, ct.shape + (1,)) * one_hot(index, size, x.dtype)
    return [reshape(spread, x.shape)]


def _group_max_jvp(node: Node, t: list) -> list:
    (x,), size = node.inputs, node.attrs["size"]
    index = _argmax_of(node)
    picked = sum(reshape(t[0], _grouped_shape(x, size)) * one_hot(index, size, x.dtype), -1)
    return [picked, None]


def _argmax_of(node: Node) -> Node:
    return apply("output", [node], {"index": 1})


register(Op(
    name="group_max",
    infer=_group_max_infer,
    forward=_group_max_forward,
    vjp=_group_max_vjp,
    jvp=_group_max_jvp,
    doc="The maximum of each group of `size` consecutive elements along the last axis, and "
        "its index in the group (int64): two outputs. Ties go to the first maximum.",
))


def group_max(x: Node, size: int) -> tuple[Node, Node]:
    """(max, argmax) of each group of `size` consecutive elements along x's last axis.

    size = x.shape[-1] gives the max and argmax of each row; smaller sizes give maxout units.
    The argmax is the index within its group (int64) of the first maximum; the derivative of
    max flows to that element only.
    """
    node = apply("group_max", [x], {"size": as_count(size, "group_max", "size", 1)})
    values, index = outputs(node)
    return values, index


def maxout(x: Node, pieces: int) -> Node:
    """Maxout units: the maximum of each group of `pieces` consecutive units."""
    try:
        return group_max(x, pieces)[0]
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"maxout: {exc}") from None
