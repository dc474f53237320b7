"""Forward mode: Jacobian-vector products, pushed from the inputs towards the outputs.

One sweep in topological order applies each op's JVP rule to the tangents of its inputs; a
node no tangent reaches is skipped. Efficient when there are fewer inputs than outputs (the
lecture's left-to-right product of Jacobians).
"""

from __future__ import annotations

from collections.abc import Sequence

from ffnc.graph.ir import Node, format_shape, node_list, topo_order
from ffnc.graph.ops import REGISTRY, zeros_like


def _check_tangent(node: Node, t) -> None:
    ts = t if isinstance(t, list) else [t]
    for i, ti in enumerate(ts):
        if ti is not None and (ti.shape != node.shapes[i] or ti.dtype != node.dtypes[i]):
            raise RuntimeError(
                f"the JVP rule of {node.op} gave {node.label} ({format_shape(node.shapes[i])} "
                f"{node.dtypes[i].name}) a tangent of {format_shape(ti.shape)} {ti.dtype.name}")


def jvp(ys: Node | Sequence[Node], xs: Node | Sequence[Node],
        tangents: Node | Sequence[Node]) -> Node | list[Node]:
    """The directional derivatives sum_j d y / d x_j . tangent_j of each y, as graphs.

    Each tangent has the shape and dtype of its x. A y that no x influences gets a zero.
    Returns one node per y (a single node when ys is a single node).
    """
    ys_list, single = node_list(ys, "ys")
    xs_list, _ = node_list(xs, "xs")
    ts, _ = node_list(tangents, "tangents")
    if len(ts) != len(xs_list):
        raise ValueError(f"jvp: {len(xs_list)} inputs but {len(ts)} tangents")
    tangent: dict[int, Node | list] = {}
    for x, t in zip(xs_list, ts, strict=True):
        if t.shape != x.shape or t.dtype != x.dtype:
            raise ValueError(f"jvp: the tangent {t.label} of {x.label} must have shape "
                             f"{format_shape(x.shape)} and dtype {x.dtype.name}, got "
                             f"{format_shape(t.shape)} {t.dtype.name}")
        tangent[x.id] = t

    for node in topo_order(ys_list):
        if node.id in tangent or node.is_leaf:
            continue
        inputs = [tangent.get(i.id) for i in node.inputs]
        if all(t is None for t in inputs):
            continue
        out = REGISTRY[node.op].jvp(node, inputs)
        if out is not None:
            _check_tangent(node, out)
            tangent[node.id] = out

    results = [tangent[y.id] if y.id in tangent else zeros_like(y) for y in ys_list]
    return results[0] if single else results
