"""The op registry: one entry per op, holding everything the transforms need to know about it.

An entry puts side by side what the op computes and how it is differentiated:

- ``infer(inputs, attrs)``: the shape and dtype of each output, checked when a node is built;
  errors name the op and the offending shapes or dtypes.
- ``forward(values, node, batch)``: the numpy reference (the ground truth of the interpreter).
  ``batch`` is the size bound to the open batch dimension (None in a static shape).
- ``vjp(node, cotangent)``: the cotangent of each input, as graph nodes (None for zero).
  Multi-output ops receive a list with one cotangent (or None) per output.
- ``jvp(node, tangents)``: the tangent of the output, as a graph node (None for zero), given
  one tangent (or None) per input. Multi-output ops return one tangent per output.
- ``uses_step``: the forward also takes ``step``, the training step (the interpreter's
  ``evaluate(..., step=)``, a plan's step counter), as dropout does to draw a fresh mask per
  step: ``forward(values, node, batch, step)``. Such ops are never folded into constants.
- ``kernel``: the C entry point the compiler maps the op to (a name in ``csrc/include/ffnc.h``),
  or None where the compiler emits a generic element-wise, reduction or layout instruction.

Both rules are written in graph ops, so every derivative is itself a graph and can be
differentiated again. An op whose ``differentiable`` flag is False (comparisons, one-hot,
counts, ...) is piecewise constant or has an integer output: its rules return None, which the
transforms read as an exact zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Op:
    """One registry entry (see the module docstring for what each field means)."""

    name: str
    infer: Callable[[list, dict], Any]
    forward: Callable[[list, Any, Any], Any]
    vjp: Callable[[Any, Any], list]
    jvp: Callable[[Any, list], Any]
    kernel: str | None = None
    smooth: bool = False
    differentiable: bool = True
    uses_step: bool = False
    doc: str = ""


REGISTRY: dict[str, Op] = {}


def register(op: Op) -> Op:
    """Adds `op` to the registry; a second op with the same name is a programming error."""
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} is already registered")
    REGISTRY[op.name] = op
    return op


def no_vjp(node, cotangent) -> list:
    """The VJP of a non-differentiable op: no contribution to any input."""
    return [None] * len(node.inputs)


def no_jvp(node, tangents) -> None:
    """The JVP of a non-differentiable op: a zero tangent."""
    return None
