"""Layout and reduction ops: reshape, transpose, broadcast_to, sum, concat, split, the output
projection of multi-output ops, count, one_hot and cast.

sum and broadcast_to are each other's adjoint; so are concat and split. Every op here is
linear (or has no derivative), so its VJP and JVP are the same kind of op applied to the
cotangent or tangent.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ffnc._memory import array_bytes, check_allocation
from ffnc.graph.ir import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    Node,
    Shape,
    apply,
    as_count,
    as_dtype,
    as_flag,
    as_shape,
    broadcast_shapes,
    constant,
    format_shape,
    normalize_axes,
    normalize_axis,
    require_float,
    require_node,
    resolve_shape,
    same_dtype,
)
from ffnc.graph.ops.registry import Op, no_jvp, no_vjp, register

# ---- reshape ---------------------------------------------------------------------------------


def _static_product(shape: Shape) -> int:
    return int(np.prod([d for d in shape if d is not None and d != -1], dtype=np.int64))


def _reshape_infer(inputs: list[Node], attrs: dict) -> tuple:
    (x,), target = inputs, tuple(attrs["shape"])
    where = f"reshape of {x.label} with shape {format_shape(x.shape)} to {target}"
    if target.count(-1) > 1 or target.count(None) > 1:
        raise ValueError(f"{where}: at most one -1 and one None are allowed")
    if (None in x.shape) != (None in target):
        raise ValueError(f"{where}: the batch dimension None must be kept (exactly one None in "
                         f"the new shape when the input has one, none otherwise)")
    for d in target:
        if d is not None and not (isinstance(d, (int, np.integer))
                                  and not isinstance(d, (bool, np.bool_)) and d >= -1):
            raise ValueError(f"{where}: dimensions must be non-negative integers, -1 or None")
    have, want = _static_product(x.shape), _static_product(target)
    if -1 in target:
        if want == 0 or have % want:
            raise ValueError(f"{where}: {have} elements cannot be split into {target}")
        target = tuple(have // want if d == -1 else d for d in target)
    elif have != want:
        raise ValueError(f"{where}: sizes differ ({have} and {want} elements besides the batch)")
    attrs["shape"] = tuple(None if d is None else int(d) for d in target)
    return attrs["shape"], x.dtype


register(Op(
    name="reshape",
    infer=_reshape_infer,
    forward=lambda v, node, batch: v[0].reshape(resolve_shape(node.shape, batch)),
    vjp=lambda node, ct: [reshape(ct, node.inputs[0].shape)],
    jvp=lambda node, t: reshape(t[0], node.shape),
    smooth=True,
    doc="The same elements in a new shape (C order); one -1 may stand for the rest.",
))


def reshape(x: Node, shape: Shape) -> Node:
    """x with a new shape (C order). One dimension may be -1 (inferred); the batch dimension
    None must be kept."""
    require_node(x, "reshape")
    shape = as_shape(shape, "reshape")
    if shape == x.shape:
        return x
    return apply("reshape", [x], {"shape": shape})


# ---- transpose -------------------------------------------------------------------------------


def _transpose_infer(inputs: list[Node], attrs: dict) -> tuple:
    (x,) = inputs
    axes = attrs["axes"]
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    axes = tuple(int(a) % max(x.ndim, 1) for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {attrs['axes']} are not a permutation of the "
                         f"{x.ndim} axes of {x.label} with shape {format_shape(x.shape)}")
    attrs["axes"] = axes
    return tuple(x.shape[a] for a in axes), x.dtype


register(Op(
    name="transpose",
    infer=_transpose_infer,
    forward=lambda v, node, batch: np.transpose(v[0], node.attrs["axes"]).copy(),
    vjp=lambda node, ct: [transpose(ct, tuple(np.argsort(node.attrs["axes"])))],
    jvp=lambda node, t: transpose(t[0], node.attrs["axes"]),
    smooth=True,
    doc="Permutes the axes (all reversed by default).",
))


def transpose(x: Node, axes: tuple[int, ...] | None = None) -> Node:
    """x with its axes permuted; by default reversed (the matrix transpose for 2-D x)."""
    if axes is not None:
        axes = as_shape(axes, "transpose")
        if any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer))
               for a in axes):
            raise TypeError(f"transpose: axes must be ints, got {axes!r}")
    return apply("transpose", [x], {"axes": axes})


# ---- broadcast_to and its adjoint ------------------------------------------------------------


def _broadcast_infer(inputs: list[Node], attrs: dict) -> tuple:
    (x,), shape = inputs, tuple(attrs["shape"])
    if broadcast_shapes("broadcast_to", x.shape, shape) != shape:
        raise ValueError(f"broadcast_to: {x.label} with shape {format_shape(x.shape)} cannot "
                         f"be broadcast to {format_shape(shape)}")
    return shape, x.dtype


register(Op(
    name="broadcast_to",
    infer=_broadcast_infer,
    forward=lambda v, node, batch: np.broadcast_to(
        v[0], resolve_shape(node.shape, batch)).copy(),
    vjp=lambda node, ct: [unbroadcast(ct, node.inputs[0].shape)],
    jvp=lambda node, t: broadcast_to(t[0], node.shape),
    smooth=True,
    doc="Repeats x along broadcast axes (numpy rules; None is the batch size).",
))


def broadcast_to(x: Node, shape: Shape) -> Node:
    """x repeated to `shape` by numpy's broadcasting rules."""
    require_node(x, "broadcast_to")
    shape = as_shape(shape, "broadcast_to")
    for d in shape:  # None (the batch size) may have moved anywhere: a transpose takes it along
        if d is not None and (isinstance(d, (bool, np.bool_)) or not isinstance(
                d, (int, np.integer)) or d < 0):
            raise ValueError(f"broadcast_to: dimensions must be non-negative integers or None, "
                             f"got {d!r} in shape {shape}")
    if x.shape == shape:
        return x
    return apply("broadcast_to", [x], {"shape": shape})


def unbroadcast(ct: Node, shape: Shape) -> Node:
    """Sums ct over the axes broadcasting added or stretched, back to `shape`: the adjoint of
    broadcasting x of that shape (the VJP of every broadcasting op ends with this)."""
    shape = tuple(shape)
    if ct.shape == shape:
        return ct
    leading = ct.ndim - len(shape)
    if leading:
        ct = sum(ct, tuple(range(leading)))
    stretched = tuple(a for a, (d, c) in enumerate(zip(shape, ct.shape, strict=True))
                      if d == 1 and c != 1)
    if stretched:
        ct = sum(ct, stretched, keepdims=True)
    return ct


def zeros_like(x: Node) -> Node:
    """A zero of x's shape and dtype (broadcast from one scalar, batch dimension included)."""
    return broadcast_to(constant(0, dtype=x.dtype), x.shape)


# ---- sum -------------------------------------------------------------------------------------


def _reduced_shape(x: Node, axes: tuple[int, ...], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if a in axes else d for a, d in enumerate(x.shape))
    return tuple(d for a, d in enumerate(x.shape) if a not in axes)


def _reduce_infer(op: str):
    def infer(inputs: list[Node], attrs: dict) -> tuple:
        (x,) = inputs
        require_float(op, x)
        attrs["axes"] = normalize_axes(op, attrs["axes"], x.ndim)
        return _reduced_shape(x, attrs["axes"], attrs["keepdims"]), x.dtype
    return infer


def expand_reduced(ct: Node, x: Node, axes: tuple[int, ...], keepdims: bool) -> Node:
    """A reduction's cotangent broadcast back to the shape of its input x."""
    if not keepdims:
        ct = reshape(ct, _reduced_shape(x, axes, True))
    return broadcast_to(ct, x.shape)


register(Op(
    name="sum",
    infer=_reduce_infer("sum"),
    forward=lambda v, node, batch: np.sum(v[0], axis=node.attrs["axes"],
                                          keepdims=node.attrs["keepdims"]),
    vjp=lambda node, ct: [expand_reduced(ct, node.inputs[0], node.attrs["axes"],
                                         node.attrs["keepdims"])],
    jvp=lambda node, t: sum(t[0], node.attrs["axes"], node.attrs["keepdims"]),
    smooth=True,
    doc="The sum over `axes` (all by default).",
))


def sum(x: Node, axis: Any = None, keepdims: bool = False) -> Node:  # noqa: A001 (numpy's name)
    """The sum of x over `axis` (an int, a tuple, or None for all axes)."""
    return apply("sum", [x], {"axes": axis, "keepdims": as_flag(keepdims, "sum", "keepdims")})


# ---- count: the number of elements a mean divides by ------------------------------------------


def _count_infer(inputs: list[Node], attrs: dict) -> tuple:
    (x,) = inputs
    require_float("count", x)
    attrs["axes"] = normalize_axes("count", attrs["axes"], x.ndim)
    return (), x.dtype


def _count_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    dims = [v[0].shape[a] for a in node.attrs["axes"]]
    return np.array(np.prod(dims, dtype=np.int64), dtype=node.dtype)


register(Op(
    name="count",
    infer=_count_infer,
    forward=_count_forward,
    vjp=no_vjp,
    jvp=no_jvp,
    differentiable=False,
    doc="The number of elements of x over `axes`, as a scalar of x's dtype (known when the "
        "graph runs, so a mean over the batch divides by the batch size).",
))


def count(x: Node, axis: Any = None) -> Node:
    """The number of elements of x over `axis` (None: all), a scalar of x's dtype."""
    return apply("count", [x], {"axes": axis})


# ---- concat and split ------------------------------------------------------------------------


def _concat_infer(inputs: list[Node], attrs: dict) -> tuple:
    if not inputs:
        raise ValueError("concat: needs at least one input")
    dt = same_dtype("concat", inputs)
    first = inputs[0]
    axis = normalize_axis("concat", attrs["axis"], first.ndim)
    attrs["axis"] = axis
    total = 0
    for x in inputs:
        if x.ndim != first.ndim or any(a != b for i, (a, b) in
                                       enumerate(zip(x.shape, first.shape, strict=True))
                                       if i != axis):
            raise ValueError(f"concat: along axis {axis}, {first.label} with shape "
                             f"{format_shape(first.shape)} and {x.label} with shape "
                             f"{format_shape(x.shape)} differ in another dimension")
        if x.shape[axis] is None:
            raise ValueError(f"concat: cannot concatenate along the batch dimension of "
                             f"{x.label} with shape {format_shape(x.shape)}")
        total += x.shape[axis]
    shape = list(first.shape)
    shape[axis] = total
    return tuple(shape), dt


register(Op(
    name="concat",
    infer=_concat_infer,
    forward=lambda v, node, batch: np.concatenate(v, axis=node.attrs["axis"]),
    vjp=lambda node, ct: split(ct, [x.shape[node.attrs["axis"]] for x in node.inputs],
                               node.attrs["axis"]),
    jvp=lambda node, t: concat([ti if ti is not None else zeros_like(x)
                                for ti, x in zip(t, node.inputs, strict=True)],
                               node.attrs["axis"]),
    smooth=True,
    doc="Joins the inputs along one static axis.",
))


def concat(xs: list[Node], axis: int = 0) -> Node:
    """The inputs joined along `axis` (which must not be the batch dimension)."""
    if not isinstance(xs, (list, tuple)):
        raise TypeError(f"concat: xs must be a list of graph Nodes, got {type(xs).__name__}")
    if len(xs) == 1:
        x = require_node(xs[0], "concat", "xs[0]")
        normalize_axis("concat", axis, x.ndim)
        return x
    return apply("concat", list(xs), {"axis": axis})


def _split_infer(inputs: list[Node], attrs: dict) -> list:
    (x,) = inputs
    axis = normalize_axis("split", attrs["axis"], x.ndim)
    attrs["axis"] = axis
    sizes = tuple(int(s) for s in attrs["sizes"])
    if x.shape[axis] is None or not sizes or builtins.sum(sizes) != x.shape[axis] \
            or min(sizes) < 0:
        raise ValueError(f"split: sizes {sizes} do not add up to dimension {axis} of "
                         f"{x.label} with shape {format_shape(x.shape)}")
    attrs["sizes"] = sizes
    out = []
    for s in sizes:
        shape = list(x.shape)
        shape[axis] = s
        out.append((tuple(shape), x.dtype))
    return out


def _split_forward(v: list, node: Node, batch: int | None) -> tuple:
    cuts = np.cumsum(node.attrs["sizes"])[:-1]
    return tuple(np.ascontiguousarray(p) for p in np.split(v[0], cuts, axis=node.attrs["axis"]))


def _split_vjp(node: Node, cts: list) -> list:
    parts = [ct if ct is not None else broadcast_to(constant(0, dtype=node.dtypes[i]),
                                                     node.shapes[i])
             for i, ct in enumerate(cts)]
    return [concat(parts, node.attrs["axis"])]


register(Op(
    name="split",
    infer=_split_infer,
    forward=_split_forward,
    vjp=_split_vjp,
    jvp=lambda node, t: outputs(apply("split", [t[0]], dict(node.attrs))),
    smooth=True,
    doc="Cuts x along a static axis into pieces of the given sizes (one output per piece).",
))


def split(x: Node, sizes: list[int], axis: int = 0) -> list[Node]:
    """x cut along `axis` into pieces of `sizes` (which add up to that dimension)."""
    require_node(x, "split")
    sizes = tuple(as_count(s, "split", "sizes", 0) for s in as_shape(sizes, "split"))
    if len(sizes) == 1:
        if x.shape[normalize_axis("split", axis, x.ndim)] != sizes[0]:
            raise ValueError(f"split: sizes {sizes} do not add up to dimension {axis} of "
                             f"{x.label} with shape {format_shape(x.shape)}")
        return [x]
    return outputs(apply("split", [x], {"sizes": sizes, "axis": axis}))


# ---- output: one result of a multi-output op --------------------------------------------------


def _output_infer(inputs: list[Node], attrs: dict) -> tuple:
    (multi,) = inputs
    index = attrs["index"]
    if multi.n_outputs < 2 or not 0 <= index < multi.n_outputs:
        raise ValueError(f"output: {multi.label} has no output {index}")
    return multi.shapes[index], multi.dtypes[index]


def _output_vjp(node: Node, ct: Node) -> list:
    # The cotangent of a multi-output node is a list with one slot per output.
    slots: list[Node | None] = [None] * node.inputs[0].n_outputs
    slots[node.attrs["index"]] = ct
    return [slots]


register(Op(
    name="output",
    infer=_output_infer,
    forward=lambda v, node, batch: v[0][node.attrs["index"]],
    vjp=_output_vjp,
    jvp=lambda node, t: t[0][node.attrs["index"]] if t[0] is not None else None,
    smooth=True,
    doc="Output `index` of a multi-output op.",
))


def outputs(multi: Node) -> list[Node]:
    """One node per output of a multi-output op node."""
    return [apply("output", [multi], {"index": i}) for i in range(multi.n_outputs)]


# ---- one_hot and cast ------------------------------------------------------------------------


def _one_hot_infer(inputs: list[Node], attrs: dict) -> tuple:
    (indices,) = inputs
    if indices.dtype not in INDEX_DTYPES:
        raise TypeError(f"one_hot: indices {indices.label} must be int32 or int64, got "
                        f"{indices.dtype.name}")
    if attrs["depth"] < 1:
        raise ValueError(f"one_hot: depth must be >= 1, got {attrs['depth']}")
    return indices.shape + (attrs["depth"],), attrs["dtype"]


def _one_hot_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
    indices, depth = v[0], node.attrs["depth"]
    bad = (indices < 0) | (indices >= depth)
    if bad.any():
        first = np.unravel_index(np.flatnonzero(bad)[0], indices.shape)
        raise ValueError(f"one_hot: index {indices[first]} of {node.inputs[0].label} at "
                         f"{tuple(int(i) for i in first)} is out of range [0, {depth})")
    shape = indices.shape + (depth,)
    # (one row of the result must fit too: numpy refuses a dimension it could never fill)
    check_allocation(max(array_bytes(shape, node.dtype.itemsize), depth * node.dtype.itemsize),
                     f"one_hot {node.label} with shape {shape}")
    out = np.zeros(shape, node.dtype)
    np.put_along_axis(out, indices[..., None].astype(np.intp), 1, axis=-1)
    return out


register(Op(
    name="one_hot",
    infer=_one_hot_infer,
    forward=_one_hot_forward,
    vjp=no_vjp,
    jvp=no_jvp,
    differentiable=False,
    doc="1.0 at each index along a new last axis of size `depth`, 0.0 elsewhere.",
))


def one_hot(indices: Node, depth: int, dtype: Any = np.float32) -> Node:
    """Integer indices as one-hot rows of length `depth` (float32 or float64)."""
    dt = as_dtype(dtype, "one_hot")
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"one_hot: dtype must be float32 or float64, got {dt}")
    return apply("one_hot", [indices], {"depth": as_count(depth, "one_hot", "depth", 1),
                                        "dtype": dt})


def _cast_infer(inputs: list[Node], attrs: dict) -> tuple:
    (x,) = inputs
    if x.dtype not in FLOAT_DTYPES and x.dtype not in INDEX_DTYPES and x.dtype != bool:
        raise TypeError(f"cast: {x.label} has dtype {x.dtype.name}, which cannot be cast")
    return x.shape, attrs["dtype"]


register(Op(
    name="cast",
    infer=_cast_infer,
    forward=lambda v, node, batch: v[0].astype(node.dtype),
    vjp=lambda node, ct: [cast(ct, node.inputs[0].dtype)
                          if node.inputs[0].dtype in FLOAT_DTYPES else None],
    jvp=lambda node, t: cast(t[0], node.dtype),
    smooth=True,
    doc="An explicit conversion to another float dtype (the only way dtypes change); "
        "integers and bools (True -> 1) convert too.",
))


def cast(x: Node, dtype: Any) -> Node:
    """x (float, integer or bool) converted to float32 or float64: explicit, since ops never
    mix dtypes. A bool mask becomes 0/1, so mean(cast(equal(a, b), float32)) is an accuracy."""
    require_node(x, "cast")
    dt = as_dtype(dtype, "cast")
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"cast: target dtype must be float32 or float64, got {dt}")
    if x.dtype == dt:
        return x
    return apply("cast", [x], {"dtype": dt})

