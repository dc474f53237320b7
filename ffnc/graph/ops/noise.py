"""dropout: inverted dropout with a counter-based mask, the same in the interpreter and in a
compiled plan, fresh at every training step.

Element i (flat, C order) of a tensor is kept at step s iff u >= p, where, in 64-bit unsigned
wrap-around arithmetic,

    z = seed * 0x9E3779B97F4A7C15 + s * 0xD1B54A32D192ED03 + i
    z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31
    u = (z >> 11) * 2**-53

(the splitmix64 finaliser). Kept elements are scaled by 1 / (1 - p) (rounded to the dtype
once), dropped ones are 0, so the expected value is unchanged. The mask is a pure function of
(seed, step, index): threads, batch splits and the interpreter all draw the same one, and the
backward pass reuses it. ``step`` is the plan's step counter, or ``evaluate(..., step=)``.
"""

from __future__ import annotations

import numpy as np

from ffnc.graph.ir import Node, apply, require_float, require_node
from ffnc.graph.ops.registry import Op, register

_SEED_MULT = 0x9E3779B97F4A7C15
_STEP_MULT = 0xD1B54A32D192ED03
_MASK64 = (1 << 64) - 1


def dropout_keep(seed: int, step: int, n: int, p: float) -> np.ndarray:
    """The keep mask (bool, n elements) of dropout with `seed` at `step`."""
    base = (seed * _SEED_MULT + step * _STEP_MULT) & _MASK64
    z = np.arange(n, dtype=np.uint64) + np.uint64(base)  # wraps modulo 2**64, as in C
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53 >= p


def _dropout_infer(inputs: list[Node], attrs: dict) -> tuple:
    (x,) = inputs
    require_float("dropout", x)
    return x.shape, x.dtype


def _dropout_forward(v: list, node: Node, batch: int | None, step: int) -> np.ndarray:
    x, p = v[0], node.attrs["p"]
    keep = dropout_keep(node.attrs["seed"], step, x.size, p).reshape(x.shape)
    scale = x.dtype.type(1.0 / (1.0 - p))
    return np.where(keep, x * scale, x.dtype.type(0))


register(Op(
    name="dropout",
    infer=_dropout_infer,
    forward=_dropout_forward,
    # linear with a fixed mask: the cotangent and the tangent go through the same mask
    vjp=lambda node, ct: [apply("dropout", [ct], dict(node.attrs))],
    jvp=lambda node, t: apply("dropout", [t[0]], dict(node.attrs)),
    smooth=True,
    uses_step=True,
    doc="Inverted dropout: each element dropped with probability p, the rest scaled by "
        "1 / (1 - p); the mask is a function of (seed, step, element index).",
))


def dropout(x: Node, p: float, seed: int = 0) -> Node:
    """x with each element zeroed with probability p and the others scaled by 1 / (1 - p).

    p: in [0, 1); p = 0 returns x itself. seed: an int in [0, 2**64). The mask depends on
    (seed, step, element index) only: the training step (a plan's step counter, or
    evaluate(..., step=)) draws a fresh one each step, and the gradient uses the same mask.
    Two dropouts in one model need different seeds to draw independent masks.
    """
    require_node(x, "dropout")
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.floating,
                                                             np.integer)) or not 0 <= p < 1:
        raise ValueError(f"dropout: p must be a number in [0, 1), got {p!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed <= _MASK64:
        raise ValueError(f"dropout: seed must be an int in [0, 2**64), got {seed!r}")
    if p == 0:
        return x
    return apply("dropout", [x], {"p": float(p), "seed": int(seed)})
