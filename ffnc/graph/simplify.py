"""The simplifier: rebuilds a graph with fewer nodes and the same values.

One pass in topological order over the outputs' ancestors does four things at once:

- dead-node elimination: only ancestors of the outputs are visited, so the rest is dropped;
- common-subexpression elimination: a node with the same op, inputs and attributes as one
  already kept (or a constant with the same value) is replaced by it;
- constant folding: an op whose inputs are all constants becomes a constant (when that does
  not make the graph larger), and count() of static dimensions is a constant;
- algebraic identities: x*1, 1*x, x/1, x+0, 0+x, x-0 -> x; 0-x -> -x; x*-1 -> -x; --x -> x;
  x + -y -> x - y; x - -y -> x + y; reshape, transpose, broadcast_to or cast to what x already
  is -> x; reshape of reshape and transpose of transpose collapse; where(c, x, x) -> x;
  an explicit broadcast_to feeding a broadcasting op is dropped when the op's shape stays.

Identities apply only when they keep the node's shape and dtype. x*0 is not rewritten to 0: it
is NaN when x is infinite or NaN, and the simplifier never changes a value (besides the sign of
a zero in x + 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ffnc.graph.ir import (
    Node,
    apply,
    broadcast_shapes,
    constant,
    count_nodes,
    node_list,
    topo_order,
)
from ffnc.graph.ops import REGISTRY, add, neg, reshape, sub, transpose

_FOLD_LIMIT = 4096  # a folded constant may be this large even when its inputs are smaller
_CSE_CONSTANT_LIMIT = 4096  # constants up to this size are compared by value


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, np.dtype):
        return value.str
    return value


def _is_constant(node: Node, value: float) -> bool:
    return node.op == "constant" and node.value.size > 0 and bool(np.all(node.value == value))


class _Rebuilder:
    def __init__(self) -> None:
        self.table: dict[Any, Node] = {}

    def intern(self, node: Node) -> Node:
        """The kept node equal to `node` (CSE), registering `node` when it is new."""
        if node.op == "constant":
            if node.value.size > _CSE_CONSTANT_LIMIT:
                return node
            key = ("constant", node.dtype.str, node.shape, node.value.tobytes())
        elif node.is_leaf:
            return node
        else:
            key = (node.op, tuple(x.id for x in node.inputs), _frozen(node.attrs))
        return self.table.setdefault(key, node)

    def rebuild(self, node: Node, inputs: list[Node]) -> Node:
        rewritten = _identity(node, inputs)
        if rewritten is not None:
            return self.intern(rewritten)
        folded = _fold(node, inputs)
        if folded is not None:
            return self.intern(folded)
        if all(a is b for a, b in zip(inputs, node.inputs, strict=True)):
            return self.intern(node)
        copy = Node(node.op, tuple(inputs), dict(node.attrs), node.shapes, node.dtypes,
                    node.name)
        return self.intern(copy)


def _same(candidate: Node, node: Node) -> Node | None:
    """candidate when it can stand for node (same shape and dtype), else None."""
    if candidate.shapes == node.shapes and candidate.dtypes == node.dtypes:
        return candidate
    return None


_BROADCASTING = ("add", "sub", "mul", "div", "maximum", "minimum", "where")


def _identity(node: Node, inputs: list[Node]) -> Node | None:
    op = node.op
    if op in _BROADCASTING and any(x.op == "broadcast_to" for x in inputs):
        # the op broadcasts by itself: an explicit broadcast_to of an operand is redundant
        # when the result keeps its shape without it
        bare = [x.inputs[0] if x.op == "broadcast_to" else x for x in inputs]
        shapes = [x.shape for x in bare]
        if broadcast_shapes(op, *shapes) == node.shape:
            return apply(op, bare, dict(node.attrs))
    if op in ("add", "sub", "mul", "div"):
        a, b = inputs
        if op == "add":
            if _is_constant(b, 0):
                return _same(a, node)
            if _is_constant(a, 0):
                return _same(b, node)
            if b.op == "neg":
                return _same(sub(a, b.inputs[0]), node)
            if a.op == "neg":
                return _same(sub(b, a.inputs[0]), node)
        elif op == "sub":
            if _is_constant(b, 0):
                return _same(a, node)
            if _is_constant(a, 0):
                return _same(neg(b), node)
            if b.op == "neg":
                return _same(add(a, b.inputs[0]), node)
        elif op == "mul":
            for x, c in ((a, b), (b, a)):
                if _is_constant(c, 1):
                    return _same(x, node)
                if _is_constant(c, -1):
                    return _same(neg(x), node)
        elif _is_constant(b, 1):
            return _same(a, node)
        return None
    x = inputs[0]
    if op == "neg" and x.op == "neg":
        return _same(x.inputs[0], node)
    if op in ("reshape", "broadcast_to", "cast") and _same(x, node) is not None:
        return x
    if op == "reshape" and x.op == "reshape":
        return _same(reshape(x.inputs[0], node.shape), node)
    if op == "transpose":
        axes = node.attrs["axes"]
        if axes == tuple(range(len(axes))):
            return x
        if x.op == "transpose":
            inner = x.attrs["axes"]
            return _same(transpose(x.inputs[0], tuple(inner[a] for a in axes)), node)
    if op == "sum" and not node.attrs["axes"]:
        return _same(x, node)
    if op == "where" and inputs[1] is inputs[2]:
        return _same(inputs[1], node)
    return None


def _fold(node: Node, inputs: list[Node]) -> Node | None:
    if node.n_outputs != 1 or any(d is None for d in node.shape):
        return None
    if node.op == "count":
        (x,) = inputs
        dims = [x.shape[a] for a in node.attrs["axes"]]
        if all(d is not None for d in dims):
            return constant(np.prod(dims, dtype=np.int64), dtype=node.dtype)
        return None
    if not inputs or any(x.op != "constant" for x in inputs) or REGISTRY[node.op].uses_step:
        return None
    size = int(np.prod(node.shape, dtype=np.int64))
    if size > max(_FOLD_LIMIT, *(x.value.size for x in inputs)):
        return None
    with np.errstate(all="ignore"):
        value = REGISTRY[node.op].forward([x.value for x in inputs], node, None)
    return constant(np.asarray(value), dtype=node.dtype, name=node.name)


def simplify(outputs: Node | Sequence[Node]) -> Node | list[Node]:
    """The same values from a smaller graph (see the module docstring for the rewrites).

    Placeholders and parameters are kept as they are (the same nodes), so feeds still apply.
    Returns one node per output (a single node for a single output).
    """
    current, single = node_list(outputs, "simplify: outputs")
    size = count_nodes(current)
    while True:  # a rewrite can expose another (x - -(-y)); stop when nothing shrinks
        rebuilder = _Rebuilder()
        new: dict[int, Node] = {}
        for node in topo_order(current):
            if node.is_leaf:
                new[node.id] = rebuilder.intern(node)
            else:
                new[node.id] = rebuilder.rebuild(node, [new[x.id] for x in node.inputs])
        current = [new[n.id] for n in current]
        smaller = count_nodes(current)
        if smaller >= size:
            break
        size = smaller
    return current[0] if single else current
