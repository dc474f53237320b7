"""Higher-order derivatives and Jacobians, built from reverse and forward mode.

- hvp: Hessian-vector products, reverse-over-reverse (the gradient of <grad y, v>) or
  forward-over-reverse (the JVP of the gradient along v). Both are graphs; the default is the
  faster one in bench/hvp.py (forward-over-reverse: a smaller graph, see the issue notes).
- hessian: the full matrix for small inputs, one forward-over-reverse sweep per input element.
- jacobian: forward mode (one sweep per input element) or reverse mode (one per output
  element), chosen from the sizes as in the lecture's ABCD argument, and reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ffnc.graph.forward import jvp
from ffnc.graph.ir import Node, as_node, format_shape, node_list
from ffnc.graph.ops import add_all, concat, reshape, sum
from ffnc.graph.reverse import grad, vjp

HVP_MODES = ("fwd_rev", "rev_rev")
HVP_DEFAULT = "fwd_rev"
MAX_DENSE_SIZE = 4096  # hessian and jacobian build one sweep per row or column


def _vectors(vs: Any, xs: list[Node], what: str) -> list[Node]:
    if not isinstance(vs, (Node, np.ndarray, list, tuple)):
        raise TypeError(f"{what}: vs must be a node, an array or a list of them (one per x), "
                        f"got {type(vs).__name__}")
    vs_list = [vs] if isinstance(vs, (Node, np.ndarray)) else list(vs)
    if len(vs_list) != len(xs):
        raise ValueError(f"{what}: {len(xs)} inputs but {len(vs_list)} vectors")
    try:
        return [as_node(v) for v in vs_list]
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what}: vs: {exc}") from None


def hvp(y: Node, xs: Node | Sequence[Node], vs: Any, mode: str = HVP_DEFAULT) -> Node | list[Node]:
    """The Hessian of the scalar y times the vectors vs (one per x, same shape), as graphs.

    mode: 'fwd_rev' (forward-over-reverse: the JVP of grad y along vs) or 'rev_rev'
    (reverse-over-reverse: the gradient of sum_i <grad_i y, v_i>). Both give the same values.
    """
    if mode not in HVP_MODES:
        raise ValueError(f"hvp: mode must be one of {', '.join(HVP_MODES)}, got {mode!r}")
    xs_list, single = node_list(xs, "xs")
    v_nodes = _vectors(vs, xs_list, "hvp")
    gradients = grad(y, xs_list)
    if mode == "fwd_rev":
        result = jvp(gradients, xs_list, v_nodes)
    else:
        inner = add_all([sum(g * v) for g, v in zip(gradients, v_nodes, strict=True)])
        result = grad(inner, xs_list)
    return result[0] if single else result


def _static_total(nodes: list[Node], what: str) -> int:
    total = 0
    for n in nodes:
        if n.static_size is None:
            raise ValueError(f"{what}: {n.label} has the open batch dimension "
                             f"{format_shape(n.shape)}; dense derivatives need static shapes")
        total += n.static_size
    if total == 0:
        raise ValueError(f"{what}: the inputs or outputs have no elements")
    if total > MAX_DENSE_SIZE:
        raise ValueError(f"{what}: {total} elements is too many for a dense matrix built one "
                         f"sweep per element (at most {MAX_DENSE_SIZE}); use vjp/jvp/hvp")
    return total


def _flat(nodes: list[Node]) -> Node:
    return concat([reshape(n, (n.static_size,)) for n in nodes], 0)


def _basis(nodes: list[Node], k: int) -> list[Node]:
    """The k-th unit vector of the concatenation of `nodes`, split into their shapes."""
    parts, offset = [], 0
    for n in nodes:
        e = np.zeros(n.static_size, dtype=n.dtype)
        if offset <= k < offset + n.static_size:
            e[k - offset] = 1
        parts.append(as_node(e.reshape(n.shape)))
        offset += n.static_size
    return parts


def _stack_rows(rows: list[Node]) -> Node:
    return concat([reshape(r, (1, r.static_size)) for r in rows], 0)


def hessian(y: Node, xs: Node | Sequence[Node]) -> Node:
    """The Hessian of the scalar y with respect to xs, as an (n, n) graph node, n the total
    number of elements of xs (flattened in order and concatenated). For small inputs: it
    takes one forward-over-reverse sweep per element."""
    xs_list, _ = node_list(xs, "xs")
    n = _static_total(xs_list, "hessian")
    gradient = _flat(grad(y, xs_list))
    return _stack_rows([jvp(gradient, xs_list, _basis(xs_list, k)) for k in range(n)])


class JacobianResult(NamedTuple):
    """A Jacobian graph and the mode that built it ('forward' or 'reverse')."""

    value: Node
    mode: str


def jacobian(ys: Node | Sequence[Node], xs: Node | Sequence[Node],
             mode: str = "auto") -> JacobianResult:
    """The Jacobian of ys with respect to xs, and the mode used to build it.

    Forward mode takes one sweep per input element, reverse mode one per output element, so
    'auto' picks forward when there are fewer inputs than outputs and reverse otherwise (the
    lecture's ABCD argument: multiply the chain of Jacobians from the small end). Both modes
    give the same matrix. The value has shape y.shape + x.shape for one y and one x, and
    (m, n) otherwise (outputs and inputs flattened in order and concatenated).
    """
    ys_list, single_y = node_list(ys, "ys")
    xs_list, single_x = node_list(xs, "xs")
    m = _static_total(ys_list, "jacobian")
    n = _static_total(xs_list, "jacobian")
    if mode == "auto":
        mode = "forward" if n < m else "reverse"
    if mode == "forward":
        flat_y = _flat(ys_list)
        columns = [jvp(flat_y, xs_list, _basis(xs_list, k)) for k in range(n)]
        matrix = concat([reshape(c, (m, 1)) for c in columns], 1)
    elif mode == "reverse":
        matrix = _stack_rows([_flat(vjp(ys_list, xs_list, _basis(ys_list, k)))
                              for k in range(m)])
    else:
        raise ValueError(f"jacobian: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    if single_y and single_x:
        matrix = reshape(matrix, ys_list[0].shape + xs_list[0].shape)
    return JacobianResult(matrix, mode)
