"""The graph IR: nodes for placeholders, parameters, constants and op results.

Every node knows its static shape and dtype, inferred by its op's rule when the node is built,
so a mismatch is reported where the user made it (naming the op and both shapes), not when
the graph first runs. A dimension may be None only where it is the batch dimension: the first
dimension of a placeholder, and whatever the ops carry it to. None stands for one size, the
batch size, throughout a graph: it broadcasts against 1 and against None, and nothing else.

Nodes are immutable and compared by identity; graphs are DAGs by construction (a node's
inputs exist before it). All traversals are iterative, so graphs of any depth are fine.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ffnc._memory import page_backed_copy
from ffnc._validate import flag, int64_count
from ffnc.graph.ops.registry import REGISTRY

Dim = int | None
Shape = tuple[Dim, ...]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
LEAF_KINDS = ("placeholder", "parameter", "constant")

_next_id = itertools.count()


def format_shape(shape: Shape) -> str:
    """(None, 3) style, the way numpy prints shapes, with None for the batch dimension."""
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


class Node:
    """A value in a graph: a placeholder, a parameter, a constant or the result of an op.

    Attributes: ``op`` (the op name, or 'placeholder' / 'parameter' / 'constant'), ``inputs``,
    ``attrs`` (the op's static attributes), ``shape`` and ``dtype``, ``name`` (optional, used
    in messages), ``value`` (for constants and parameters). Arithmetic operators build nodes:
    ``+ - * / @`` and unary ``-``; Python numbers take the dtype of the node they meet.
    """

    __slots__ = ("id", "op", "inputs", "attrs", "shapes", "dtypes", "name", "value")
    __array_ufunc__ = None  # numpy defers to our reflected operators: array + node is a node

    def __init__(self, op: str, inputs: tuple[Node, ...], attrs: dict[str, Any],
                 shapes: tuple[Shape, ...], dtypes: tuple[np.dtype, ...],
                 name: str | None = None, value: np.ndarray | None = None) -> None:
        self.id = next(_next_id)
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.shapes = shapes
        self.dtypes = dtypes
        self.name = name
        self.value = value

    @property
    def n_outputs(self) -> int:
        return len(self.shapes)

    @property
    def shape(self) -> Shape:
        """The static shape; None marks the batch dimension."""
        self._single()
        return self.shapes[0]

    @property
    def dtype(self) -> np.dtype:
        self._single()
        return self.dtypes[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_leaf(self) -> bool:
        return self.op in LEAF_KINDS

    @property
    def static_size(self) -> int | None:
        """The number of elements, or None when the shape holds the batch dimension."""
        if any(d is None for d in self.shape):
            return None
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def label(self) -> str:
        """The node's name, or op#id when it has none: what error messages call it."""
        return self.name if self.name is not None else f"{self.op}#{self.id}"

    def _single(self) -> None:
        if len(self.shapes) != 1:
            raise TypeError(f"{self.label} has {len(self.shapes)} outputs; use the nodes its "
                            f"constructor returned, one per output")

    def __repr__(self) -> str:
        if len(self.shapes) != 1:
            return f"<Node {self.label}: {len(self.shapes)} outputs>"
        return f"<Node {self.label}: {format_shape(self.shape)} {self.dtype.name}>"

    # Operators; the functions live with their op families.
    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(other, self)
    def __sub__(self, other): return _ops().sub(self, other)
    def __rsub__(self, other): return _ops().sub(other, self)
    def __mul__(self, other): return _ops().mul(self, other)
    def __rmul__(self, other): return _ops().mul(other, self)
    def __truediv__(self, other): return _ops().div(self, other)
    def __rtruediv__(self, other): return _ops().div(other, self)
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __neg__(self): return _ops().neg(self)

    @property
    def T(self) -> Node:  # noqa: N802 (numpy's name)
        """The transpose (all axes reversed)."""
        return _ops().transpose(self)

    def sum(self, axis=None, keepdims: bool = False) -> Node:
        return _ops().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> Node:
        return _ops().mean(self, axis, keepdims)

    def reshape(self, *shape) -> Node:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops().reshape(self, shape)


def _ops():
    from ffnc.graph import ops

    return ops


# ---- building nodes --------------------------------------------------------------------------

def apply(op_name: str, inputs: Sequence[Node], attrs: dict[str, Any] | None = None,
          name: str | None = None) -> Node:
    """Builds the node of registered op `op_name`; its op's rule checks and infers the shape."""
    op = REGISTRY[op_name]
    for position, x in enumerate(inputs):
        if not isinstance(x, Node):
            raise TypeError(f"{op_name}: input {position} must be a graph Node, "
                            f"got {type(x).__name__}")
    attrs = dict(attrs or {})
    spec = op.infer(list(inputs), attrs)
    specs = spec if isinstance(spec, list) else [spec]
    shapes = tuple(tuple(s) for s, _ in specs)
    dtypes = tuple(np.dtype(d) for _, d in specs)
    return Node(op_name, tuple(inputs), attrs, shapes, dtypes, name)


def _check_dims(shape: Iterable, what: str, batch_first: bool) -> Shape:
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{what}: shape must be a tuple of dimensions, got {shape!r}")
    out = []
    for axis, d in enumerate(shape):
        if d is None:
            if not (batch_first and axis == 0):
                raise ValueError(f"{what}: only the first dimension may be None (the batch "
                                 f"dimension), got shape {tuple(shape)}")
            out.append(None)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0:
            out.append(int(d))
        else:
            raise ValueError(f"{what}: dimensions must be non-negative integers, got "
                             f"{d!r} in shape {tuple(shape)}")
    return tuple(out)


def as_dtype(dtype: Any, what: str) -> np.dtype:
    """dtype as a numpy dtype, or a TypeError naming `what` for something that is not one
    (None included: numpy would read it as float64)."""
    try:
        if dtype is None:
            raise TypeError
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{what}: dtype must be a numpy dtype such as numpy.float32, got "
                        f"{dtype!r}") from None


def require_node(x: Any, op: str, what: str = "x") -> Node:
    """x when it is a graph Node, else a TypeError naming the op and the argument."""
    if not isinstance(x, Node):
        raise TypeError(f"{op}: {what} must be a graph Node, got {type(x).__name__}")
    return x


def finite_float(value: Any) -> float | None:
    """value as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        return None
    try:
        v = float(value)
    except OverflowError:  # an int beyond the range of a double
        return None
    return v if math.isfinite(v) else None


def as_flag(value: Any, op: str, what: str) -> bool:
    """Op `op`'s bool argument `what` (see ffnc._validate.flag)."""
    return flag(f"{op}: {what}", value)


def as_count(value: Any, op: str, what: str, low: int) -> int:
    """Op `op`'s int argument `what`, >= low; sizes are int64 in numpy and C (see
    ffnc._validate.int64_count)."""
    return int64_count(f"{op}: {what}", value, low)


def as_shape(shape: Any, op: str) -> tuple:
    """A shape argument as a tuple (its entries are checked by the op)."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{op}: shape must be a tuple, got {shape!r}")
    return tuple(shape)


def _check_name(what: str, name: Any) -> None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"{what}: name must be a str or None, got {type(name).__name__}")


def placeholder(shape: Sequence[Dim], dtype: Any = np.float32, name: str | None = None) -> Node:
    """An input fed at evaluation time. shape[0] may be None: the batch size, fixed per run.

    dtype: float32 (the default), float64, or int32/int64 for class labels.
    """
    _check_name("placeholder", name)
    dt = as_dtype(dtype, f"placeholder {name or ''}".rstrip())
    if dt not in FLOAT_DTYPES and dt not in INDEX_DTYPES:
        raise TypeError(f"placeholder {name or ''}: dtype must be float32, float64, int32 or "
                        f"int64, got {dt}")
    shp = _check_dims(shape, f"placeholder {name or ''}".rstrip(), batch_first=True)
    return Node("placeholder", (), {}, (shp,), (dt,), name)


def parameter(value: Any, name: str | None = None) -> Node:
    """A trainable value. The node's ``value`` starts as a private read-only copy of `value`
    and can be overridden in the feed of an evaluation. The dtype is the array's: float32 or
    float64.

    Compiling the parameter into a plan (ffnc.compiler.compile) hands the copy over: ``value``
    becomes a read-only view of the plan's storage for it, so the graph evaluates with the
    values the plan trains, and the copy is freed (compile's docstring has the rules for
    several plans). The values are never written through ``value``: change them in the plan
    (``plan.params[node]``), or build a new parameter."""
    _check_name("parameter", name)
    arr = np.asarray(value)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"parameter {name or ''}: value must be a float32 or float64 array, "
                        f"got dtype {arr.dtype}; convert it explicitly")
    arr = page_backed_copy(arr)  # handed over at compile: its memory must go back at once
    arr.flags.writeable = False
    return Node("parameter", (), {}, (arr.shape,), (arr.dtype,), name, arr)


def constant(value: Any, dtype: Any = None, name: str | None = None) -> Node:
    """A fixed value. dtype converts explicitly; without it the array's own dtype is kept
    (a Python float is float64)."""
    _check_name("constant", name)
    dt = None if dtype is None else as_dtype(dtype, "constant")
    if np.iscomplexobj(value):  # converting would drop the imaginary part
        raise TypeError(f"constant: complex values are not supported, got {value!r}")
    try:
        with np.errstate(over="raise"):
            arr = np.array(value, dtype=dt, copy=True)
    except (OverflowError, FloatingPointError):
        raise ValueError(f"constant: {value!r} does not fit in {dt}") from None
    except (TypeError, ValueError) as exc:  # numpy's: a value that is not numbers
        raise type(exc)(f"constant: value {value!r}: {exc}") from None
    if arr.dtype not in FLOAT_DTYPES and arr.dtype not in INDEX_DTYPES and arr.dtype != bool:
        raise TypeError(f"constant: dtype must be float32, float64, int32, int64 or bool, "
                        f"got {arr.dtype}")
    arr.flags.writeable = False
    return Node("constant", (), {}, (arr.shape,), (arr.dtype,), name, arr)


def as_node(x: Any, like: Node | None = None) -> Node:
    """x itself when it is a Node; a Python number becomes a scalar constant of like's dtype
    (a literal, not a cast of data); an array becomes a constant of its own dtype."""
    if isinstance(x, Node):
        return x
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        if like is None:
            raise TypeError(f"cannot combine two plain numbers ({x!r}) into a graph; make one "
                            f"of them a node with ffnc.graph.constant")
        if like.dtype.kind in "ib" and isinstance(x, float):
            raise TypeError(f"the float {x!r} cannot meet {like.label}, which holds "
                            f"{like.dtype.name} values")
        if like.dtype.kind == "b" and x not in (0, 1):
            raise ValueError(f"the number {x!r} cannot meet {like.label}, which holds bools")
        try:
            with np.errstate(over="raise"):
                node = constant(x, dtype=like.dtype)
        except (ValueError, FloatingPointError):
            node = None
        if node is None or (isinstance(x, float) and math.isfinite(x)
                            and not np.isfinite(node.value)):
            raise ValueError(f"the number {x!r} does not fit in {like.dtype.name}, the dtype "
                             f"of {like.label}")
        return node
    if isinstance(x, (np.ndarray, np.generic, list, tuple)):
        return constant(x)
    raise TypeError(f"expected a graph Node, a number or an array, got {type(x).__name__}")


# ---- shape and dtype rules shared by the op families ----------------------------------------

def node_list(nodes: Node | Sequence[Node], what: str) -> tuple[list[Node], bool]:
    """One node or a sequence of them as a list, and whether a single node was given; a
    TypeError naming `what` for anything that is not a Node."""
    if isinstance(nodes, Node):
        return [nodes], True
    if isinstance(nodes, (str, bytes)) or not hasattr(nodes, "__iter__"):
        raise TypeError(f"{what} must be a graph Node or a sequence of them, got "
                        f"{type(nodes).__name__}")
    nodes = list(nodes)
    for n in nodes:
        if not isinstance(n, Node):
            raise TypeError(f"{what} must be graph Nodes, got {type(n).__name__}")
    return nodes, False


def same_dtype(op: str, nodes: Sequence[Node]) -> np.dtype:
    """The common dtype of `nodes`; a mix is a TypeError naming both (no implicit casts)."""
    dt = nodes[0].dtype
    for other in nodes[1:]:
        if other.dtype != dt:
            raise TypeError(f"{op}: dtype mismatch, {nodes[0].label} is {dt.name} and "
                            f"{other.label} is {other.dtype.name}; ffnc never casts silently, "
                            f"convert one explicitly with ffnc.graph.cast")
    return dt


def require_float(op: str, node: Node, what: str = "input") -> np.dtype:
    if node.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {what} {node.label} must be float32 or float64, "
                        f"got {node.dtype.name}")
    return node.dtype


def broadcast_shapes(op: str, *shapes: Shape) -> Shape:
    """numpy broadcasting over static shapes, None being the batch size."""
    ndim = max(len(s) for s in shapes)
    result: list[Dim] = [1] * ndim
    for shape in shapes:
        padded = (1,) * (ndim - len(shape)) + tuple(shape)
        for axis, d in enumerate(padded):
            r = result[axis]
            if d == r or d == 1:
                continue
            if r == 1:
                result[axis] = d
                continue
            listed = " and ".join(format_shape(s) for s in shapes)
            why = (" (the batch dimension None is not known to equal a fixed size)"
                   if d is None or r is None else "")
            raise ValueError(f"{op}: shapes {listed} do not broadcast{why}")
    return tuple(result)


def normalize_axes(op: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """A sorted tuple of distinct non-negative axes; None means all."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_)):
        axes = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        axes = (axis,)
    out = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, got "
                            f"{axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for {ndim} dimensions")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axes}")
    return tuple(sorted(out))


def normalize_axis(op: str, axis: Any, ndim: int) -> int:
    """One axis (an int in [-ndim, ndim)) as a non-negative int."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    return normalize_axes(op, axis, ndim)[0]


def resolve_shape(shape: Shape, batch: int | None) -> tuple[int, ...]:
    """The concrete shape at run time: None replaced by the bound batch size."""
    if any(d is None for d in shape):
        if batch is None:
            raise ValueError(f"shape {format_shape(shape)} needs the batch size, which no "
                             f"placeholder fed in this evaluation determines")
        return tuple(batch if d is None else d for d in shape)
    return tuple(shape)


# ---- traversal -------------------------------------------------------------------------------

def topo_order(outputs: Iterable[Node]) -> list[Node]:
    """Every ancestor of `outputs` (themselves included), each after all of its inputs.

    Iterative depth-first post-order: no recursion, so chains of any depth are fine.
    """
    order: list[Node] = []
    done: set[int] = set()
    stack: list[tuple[Node, bool]] = [(n, False) for n in reversed(list(outputs))]
    while stack:
        node, expanded = stack.pop()
        if node.id in done:
            continue
        if expanded:
            done.add(node.id)
            order.append(node)
            continue
        stack.append((node, True))
        for x in reversed(node.inputs):
            if x.id not in done:
                stack.append((x, False))
    return order


def count_nodes(outputs: Node | Iterable[Node]) -> int:
    """The number of distinct nodes `outputs` depend on (themselves included)."""
    return len(topo_order(node_list(outputs, "count_nodes: outputs")[0]))
