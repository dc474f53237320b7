"""Reverse mode: the backward graph of a scalar (or of any output, given its cotangent).

The lecture's recursion dz/du_j = sum over the consumers u_i of u_j of dz/du_i du_i/du_j,
done once per node in reverse topological order: every node's cotangent is the sum of the
contributions its consumers' VJP rules send it (the compiler turns that sum into accumulation
into one buffer). Each edge is visited once, so the backward graph grows linearly with the
forward graph; nodes that no requested input influences are skipped altogether.
"""

from __future__ import annotations

from collections.abc import Sequence

from ffnc.graph.ir import FLOAT_DTYPES, Node, constant, format_shape, node_list, topo_order
from ffnc.graph.ops import REGISTRY, add_all, zeros_like


def _total(node: Node, parts: list) -> Node | list:
    """The sum of the contributions to one node (slot by slot for a multi-output node)."""
    if node.n_outputs == 1:
        return add_all(parts)
    return [add_all([p[i] for p in parts]) for i in range(node.n_outputs)]


def _check_contribution(node: Node, position: int, x: Node, ct) -> None:
    cts = ct if isinstance(ct, list) else [ct]
    for i, c in enumerate(cts):
        if c is not None and (c.shape != x.shapes[i] or c.dtype != x.dtypes[i]):
            raise RuntimeError(
                f"the VJP rule of {node.op} gave input {position} ({x.label}, "
                f"{format_shape(x.shapes[i])} {x.dtypes[i].name}) a cotangent of "
                f"{format_shape(c.shape)} {c.dtype.name}")


def vjp(ys: Node | Sequence[Node], xs: Node | Sequence[Node],
        cotangents: Node | Sequence[Node]) -> Node | list[Node]:
    """The vector-Jacobian products sum_k cotangent_k^T d ys_k / d x for each x, as graphs.

    Each cotangent has the shape and dtype of its y. An x that no y depends on gets a zero.
    Returns one node per x (a single node when xs is a single node).
    """
    ys_list, _ = node_list(ys, "ys")
    xs_list, single = node_list(xs, "xs")
    cts, _ = node_list(cotangents, "cotangents")
    if len(cts) != len(ys_list):
        raise ValueError(f"vjp: {len(ys_list)} outputs but {len(cts)} cotangents")
    for y, ct in zip(ys_list, cts, strict=True):
        if ct.shape != y.shape or ct.dtype != y.dtype:
            raise ValueError(f"vjp: the cotangent {ct.label} of {y.label} must have shape "
                             f"{format_shape(y.shape)} and dtype {y.dtype.name}, got "
                             f"{format_shape(ct.shape)} {ct.dtype.name}")

    order = topo_order(ys_list)
    wanted = {x.id for x in xs_list}
    depends = set(wanted)  # the nodes some x influences: only they get cotangents
    for node in order:
        if node.id not in depends and any(i.id in depends for i in node.inputs):
            depends.add(node.id)

    contributions: dict[int, list] = {}
    for y, ct in zip(ys_list, cts, strict=True):
        if y.id in depends:
            contributions.setdefault(y.id, []).append(ct)

    found: dict[int, Node] = {}
    for node in reversed(order):
        parts = contributions.pop(node.id, None)
        if parts is None:
            continue
        total = _total(node, parts)
        if node.id in wanted:
            found[node.id] = total
        if node.is_leaf:
            continue
        input_cts = REGISTRY[node.op].vjp(node, total)
        for position, (x, ct) in enumerate(zip(node.inputs, input_cts, strict=True)):
            if ct is None or x.id not in depends:
                continue
            _check_contribution(node, position, x, ct)
            contributions.setdefault(x.id, []).append(ct)

    results = [found[x.id] if x.id in found else zeros_like(x) for x in xs_list]
    return results[0] if single else results


def grad(y: Node, xs: Node | Sequence[Node]) -> Node | list[Node]:
    """The gradient of the scalar y with respect to each x, as graphs (symbol to symbol).

    Returns one node per x with x's shape (a single node when xs is a single node); an x that
    y does not depend on gets a zero. The result can be differentiated again.
    """
    if not isinstance(y, Node):
        raise TypeError(f"grad: y must be a graph Node, got {type(y).__name__}")
    if y.shape != () or y.dtype not in FLOAT_DTYPES:
        raise ValueError(f"grad: y must be a float scalar, {y.label} has shape "
                         f"{format_shape(y.shape)} and dtype {y.dtype.name}; use vjp with a "
                         f"cotangent for other outputs")
    return vjp(y, xs, constant(1, dtype=y.dtype))
