"""argmax: the index of the first maximum along an axis (int64, no derivative), what an
accuracy metric compares with the labels: mean(cast(equal(argmax(logits), labels), float32)).
"""

from __future__ import annotations

import numpy as np

from ffnc.graph.ir import Node, apply, format_shape, normalize_axis, require_float
from ffnc.graph.ops.registry import Op, no_jvp, no_vjp, register


def _argmax_infer(inputs: list[Node], attrs: dict) -> tuple:
    (x,) = inputs
    require_float("argmax", x)
    if x.ndim == 0:
        raise ValueError(f"argmax: {x.label} must have at least one dimension")
    axis = attrs["axis"] = normalize_axis("argmax", attrs["axis"], x.ndim)
    if x.shape[axis] == 0:
        raise ValueError(f"argmax: axis {axis} of {x.label} with shape {format_shape(x.shape)} "
                         f"is empty; there is no maximum")
    return tuple(d for a, d in enumerate(x.shape) if a != axis), np.dtype(np.int64)


def _argmax_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    return np.asarray(np.argmax(v[0], axis=node.attrs["axis"])).astype(np.int64)


register(Op(
    name="argmax",
    infer=_argmax_infer,
    forward=_argmax_forward,
    vjp=no_vjp,
    jvp=no_jvp,
    differentiable=False,
    doc="The index (int64) of the first maximum along one axis; NaN counts as the largest, "
        "as in numpy.",
))


def argmax(x: Node, axis: int = -1) -> Node:
    """The index of the first maximum of x along `axis` (int64, the axis dropped).

    Ties go to the lowest index and a NaN counts as larger than every number (numpy's rule).
    It has no derivative: gradients flow through nothing it feeds. In a compiled plan the
    indices are stored exactly in the plan's float dtype (axes up to 2^24 long for float32).
    """
    return apply("argmax", [x], {"axis": axis})
