"""The reference interpreter: runs a graph with numpy, op by op. It is the ground truth every
compiled plan is tested against, so it favours clarity and checks over speed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ffnc.graph.ir import Node, format_shape, node_list, topo_order
from ffnc.graph.ops import REGISTRY


def _bind_feed(order: list[Node],
               feed: Mapping[Node, Any]) -> tuple[dict[int, np.ndarray], int | None]:
    """The fed arrays by node id, checked against their placeholders, and the batch size."""
    for key in feed:
        if not isinstance(key, Node) or key.op not in ("placeholder", "parameter"):
            raise TypeError(f"feed keys must be placeholder or parameter nodes, got {key!r}")
    values: dict[int, np.ndarray] = {}
    batch: int | None = None
    batch_from: Node | None = None
    for node in order:
        if node.op not in ("placeholder", "parameter"):
            continue
        if node not in feed:
            if node.op == "placeholder":
                raise ValueError(f"placeholder {node.label} with shape "
                                 f"{format_shape(node.shape)} was not fed (it is needed to "
                                 f"compute the outputs)")
            continue
        value = np.asarray(feed[node])
        if value.dtype != node.dtype:
            raise TypeError(f"{node.op} {node.label} expects {node.dtype.name}, got "
                            f"{value.dtype.name}; convert explicitly (ffnc never casts)")
        if value.ndim != len(node.shape) or any(
                d is not None and d != v for d, v in zip(node.shape, value.shape, strict=True)):
            raise ValueError(f"{node.op} {node.label} expects shape {format_shape(node.shape)}, "
                             f"got {value.shape}")
        if node.shape and node.shape[0] is None:
            if batch is not None and value.shape[0] != batch:
                raise ValueError(f"the batch dimension differs between placeholders: "
                                 f"{batch_from.label} has {batch} rows, {node.label} has "
                                 f"{value.shape[0]}")
            batch, batch_from = value.shape[0], node
        values[node.id] = value
    return values, batch


def _check_result(node: Node, value: Any, batch: int | None) -> None:
    """An op's numpy forward must produce what its shape rule promised."""
    results = value if node.n_outputs > 1 else (value,)
    for shape, dtype, v in zip(node.shapes, node.dtypes, results, strict=True):
        expected = tuple(batch if d is None else d for d in shape)
        if not isinstance(v, np.ndarray) or v.shape != expected or v.dtype != dtype:
            got = f"{v.shape} {v.dtype}" if isinstance(v, np.ndarray) else type(v).__name__
            raise RuntimeError(f"op {node.op} ({node.label}) computed {got}, its shape rule "
                               f"promised {expected} {dtype.name}")


def evaluate(outputs: Node | Sequence[Node], feed: Mapping[Node, Any] | None = None, *,
             step: int = 0) -> np.ndarray | list[np.ndarray]:
    """The values of `outputs`, computed in numpy from `feed` (placeholder or parameter node ->
    array).

    Every placeholder the outputs depend on must be fed with its exact dtype and shape (the
    batch dimension None takes the size fed, the same for every placeholder). Parameters use
    their stored value unless fed. `step` is the training step (the steps run before this
    one), which ops such as dropout read to draw a fresh mask each step, as a compiled plan
    does from its step counter. Returns one array, or a list for a list of outputs.
    """
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) \
            or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    outs, single = node_list(outputs, "evaluate: outputs")
    order = topo_order(outs)
    fed, batch = _bind_feed(order, feed or {})

    # Free each intermediate after its last consumer, as the compiled plan will.
    uses: dict[int, int] = {}
    for node in order:
        for x in node.inputs:
            uses[x.id] = uses.get(x.id, 0) + 1
    keep = {out.id for out in outs}

    values: dict[int, Any] = {}
    for node in order:
        if node.id in fed:
            value = fed[node.id]
        elif node.is_leaf:
            value = node.value
        else:
            args = [values[x.id] for x in node.inputs]
            op = REGISTRY[node.op]
            with np.errstate(all="ignore"):  # NaN and inf are values here, as in the kernels
                value = (op.forward(args, node, batch, int(step)) if op.uses_step
                         else op.forward(args, node, batch))
            if isinstance(value, np.generic):
                value = np.asarray(value)
            _check_result(node, value, batch)
        values[node.id] = value
        for x in node.inputs:
            uses[x.id] -= 1
            if uses[x.id] == 0 and x.id not in keep:
                del values[x.id]

    results = [values[out.id] for out in outs]
    return results[0] if single else results
