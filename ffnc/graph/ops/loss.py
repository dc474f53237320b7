"""The fused losses of the C kernels, each a scalar op, with a `<loss>_grad` op for its gradient.

Every loss is `scale` times a sum of terms: scale is 1 for reduction="sum" and 1/n for "mean",
n the number of rows (softmax_cross_entropy) or of elements (the others); the mean over no rows
is 0, as in the kernels. `<loss>_grad(a, b, ct)` is ct times the gradient of the loss with
respect to its first input; it is what the VJP emits, and the compiler maps it to the fused
backward kernel. The JVP of a loss is <gradient, tangent>. The rules of the grad ops (second
derivatives) are written with softmax and sigmoid.

    softmax_cross_entropy(logits, labels): mean/sum over rows of logsumexp(z) - z[label]
    bce_with_logits(logits, targets):      max(z, 0) - y z + log1p(exp(-|z|)), per element
    mse(pred, target):                     (p - t)^2, per element
    l1(pred, target):                      |p - t|, per element (derivative sign, 0 at 0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ffnc.graph.ir import (
    INDEX_DTYPES,
    Node,
    apply,
    constant,
    format_shape,
    require_float,
    same_dtype,
)
from ffnc.graph.ops.activation import sigmoid, sigmoid_grad_node
from ffnc.graph.ops.elementwise import add_all, neg
from ffnc.graph.ops.reduce import softmax, softmax_product
from ffnc.graph.ops.registry import Op, register
from ffnc.graph.ops.shape import count, sum

_REDUCTIONS = ("mean", "sum")


def _check_reduction(op: str, reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean' or 'sum', got {reduction!r}")
    return reduction


def _scale(n: int, reduction: str) -> float:
    return (1.0 / n if n else 0.0) if reduction == "mean" else 1.0


def _scaled(ct: Node, x: Node, reduction: str, axes: tuple[int, ...] | None) -> Node:
    """ct times the reduction's scale, as a graph (the count is known when the graph runs)."""
    return ct / count(x, axes) if reduction == "mean" else ct


def _one(x: Node) -> Node:
    return constant(1, dtype=x.dtype)


@dataclass(frozen=True)
class Loss:
    """One loss: its inputs' checks, its numpy forward and gradient, and the graph rules of
    its grad op (the gradient g of the loss with respect to the first input, times ct)."""

    name: str
    labels: bool  # the second input holds int class labels (no derivative)
    forward: Callable[[np.ndarray, np.ndarray], tuple[float, int]]  # (sum of terms, n)
    gradient: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, int]]  # (unscaled grad, n)
    mean_axes: tuple[int, ...] | None  # the axes a mean divides by (None: all)
    kernels: tuple[str, str]


def _check_labels(labels: np.ndarray, classes: int, op: str) -> None:
    bad = (labels < 0) | (labels >= classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{op}: labels[{first}] = {labels[first]} is out of range for "
                         f"{classes} classes; labels must be in [0, {classes})")


def _xent_forward(z: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    _check_labels(labels, z.shape[1], "softmax_cross_entropy")
    m = np.max(z, axis=1)
    lse = np.log(np.sum(np.exp(z - m[:, None]), axis=1)) + m
    picked = z[np.arange(z.shape[0]), labels]
    return float(np.sum(lse.astype(np.float64) - picked)), z.shape[0]


def _xent_gradient(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    _check_labels(labels, z.shape[1], "softmax_cross_entropy_grad")
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    p = e / np.sum(e, axis=1, keepdims=True)
    p[np.arange(z.shape[0]), labels] -= 1
    return p, z.shape[0]


def _bce_forward(z: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    terms = np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))
    return float(np.sum(terms, dtype=np.float64)), z.size


def _bce_gradient(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)) - y, z.size


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    Loss("softmax_cross_entropy", True, _xent_forward, _xent_gradient, (0,),
         ("ffnc_softmax_xent_forward", "ffnc_softmax_xent_backward")),
    Loss("bce_with_logits", False, _bce_forward, _bce_gradient, None,
         ("ffnc_bce_logits_forward", "ffnc_bce_logits_backward")),
    Loss("mse", False, lambda p, t: (float(np.sum(np.square(p - t), dtype=np.float64)), p.size),
         lambda p, t: (2 * (p - t), p.size), None, ("ffnc_mse_forward", "ffnc_mse_backward")),
    Loss("l1", False, lambda p, t: (float(np.sum(np.abs(p - t), dtype=np.float64)), p.size),
         lambda p, t: (np.sign(p - t), p.size), None, ("ffnc_l1_forward", "ffnc_l1_backward")),
)}


def _check_pair(loss: Loss, op: str, a: Node, b: Node) -> None:
    require_float(op, a)
    if loss.labels:
        if b.dtype not in INDEX_DTYPES:
            raise TypeError(f"{op}: labels {b.label} must be int32 or int64 class indices, got "
                            f"{b.dtype.name}")
        if a.ndim != 2 or b.ndim != 1 or a.shape[0] != b.shape[0]:
            raise ValueError(f"{op}: logits {a.label} must be (rows, classes) and labels "
                             f"{b.label} (rows,), got shapes {format_shape(a.shape)} and "
                             f"{format_shape(b.shape)}")
        if a.shape[1] == 0:
            raise ValueError(f"{op}: logits {a.label} must have at least one class, got shape "
                             f"{format_shape(a.shape)}")
    else:
        same_dtype(op, [a, b])
        if a.shape != b.shape:
            raise ValueError(f"{op}: {a.label} and {b.label} must have the same shape, got "
                             f"{format_shape(a.shape)} and {format_shape(b.shape)}")


def _register(loss: Loss) -> None:
    name, grad_name = loss.name, f"{loss.name}_grad"

    def infer(inputs: list[Node], attrs: dict) -> tuple:
        _check_pair(loss, name, *inputs)
        return (), inputs[0].dtype

    def forward(v: list, node: Node, batch: int | None) -> np.ndarray:
        total, n = loss.forward(v[0], v[1])
        return np.array(total * _scale(n, node.attrs["reduction"]), dtype=node.dtype)

    def unit_grad(node: Node) -> Node:
        """The gradient of the loss with respect to the first input (ct = 1)."""
        a, b = node.inputs[:2]
        return apply(grad_name, [a, b, _one(a)], {"reduction": node.attrs["reduction"]})

    def vjp(node: Node, ct: Node) -> list:
        a, b = node.inputs
        g = apply(grad_name, [a, b, ct], dict(node.attrs))
        if loss.labels:
            return [g, None]
        if name == "bce_with_logits":  # d/dy (-y z) = -z
            return [g, neg(a * _scaled(ct, a, node.attrs["reduction"], loss.mean_axes))]
        return [g, neg(g)]  # mse, l1: a function of p - t

    def jvp(node: Node, t: list) -> Node | None:
        a, (ta, tb) = node.inputs[0], t
        g = unit_grad(node)
        terms = [sum(g * ta) if ta is not None else None]
        if tb is not None and not loss.labels:
            other = (neg(a * _scaled(_one(a), a, node.attrs["reduction"], loss.mean_axes))
                     if name == "bce_with_logits" else neg(g))
            terms.append(sum(other * tb))
        return add_all(terms)

    register(Op(name=name, infer=infer, forward=forward, vjp=vjp, jvp=jvp,
                kernel=loss.kernels[0], smooth=name in ("softmax_cross_entropy",
                                                        "bce_with_logits", "mse"),
                doc=f"The {name} loss (see the module docstring)."))

    def grad_infer(inputs: list[Node], attrs: dict) -> tuple:
        a, b, ct = inputs
        _check_pair(loss, grad_name, a, b)
        same_dtype(grad_name, [a, ct])
        if ct.shape != ():
            raise ValueError(f"{grad_name}: the loss cotangent {ct.label} must be a scalar, "
                             f"got shape {format_shape(ct.shape)}")
        return a.shape, a.dtype

    def grad_forward(v: list, node: Node, batch: int | None) -> np.ndarray:
        a, b, ct = v
        g, n = loss.gradient(a, b)
        return (g * (ct * _scale(n, node.attrs["reduction"]))).astype(a.dtype, copy=False)

    def grad_vjp(node: Node, ct2: Node) -> list:
        a, b, ct = node.inputs
        reduction = node.attrs["reduction"]
        scaled = _scaled(ct, a, reduction, loss.mean_axes)
        unit = apply(grad_name, [a, b, _one(a)], dict(node.attrs))
        ct_ct = sum(ct2 * unit)
        if name == "softmax_cross_entropy":
            return [softmax_product(softmax(a, 1), ct2 * scaled, 1), None, ct_ct]
        if name == "bce_with_logits":
            return [sigmoid_grad_node(ct2 * scaled, sigmoid(a)), neg(ct2 * scaled), ct_ct]
        if name == "mse":
            d = ct2 * (scaled * 2)
            return [d, neg(d), ct_ct]
        return [None, None, ct_ct]  # l1: the sign is piecewise constant

    def grad_jvp(node: Node, t: list) -> Node | None:
        (a, b, ct), (ta, tb, tct) = node.inputs, t
        reduction = node.attrs["reduction"]
        scaled = _scaled(ct, a, reduction, loss.mean_axes)
        terms = []
        if tct is not None:
            terms.append(apply(grad_name, [a, b, _one(a)], dict(node.attrs)) * tct)
        if ta is not None:
            if name == "softmax_cross_entropy":
                terms.append(softmax_product(softmax(a, 1), ta, 1) * scaled)
            elif name == "bce_with_logits":
                terms.append(sigmoid_grad_node(ta * scaled, sigmoid(a)))
            elif name == "mse":
                terms.append(ta * (scaled * 2))
        if tb is not None and name in ("bce_with_logits", "mse"):
            terms.append(neg(tb * scaled * (2 if name == "mse" else 1)))
        return add_all(terms)

    register(Op(name=grad_name, infer=grad_infer, forward=grad_forward, vjp=grad_vjp,
                jvp=grad_jvp, kernel=loss.kernels[1], smooth=name != "l1",
                doc=f"ct times the gradient of {name} with respect to its first input."))


for _loss in LOSSES.values():
    _register(_loss)


def _loss(name: str, a: Node, b: Node, reduction: str) -> Node:
    return apply(name, [a, b], {"reduction": _check_reduction(name, reduction)})


def softmax_cross_entropy(logits: Node, labels: Node, reduction: str = "mean") -> Node:
    """Softmax + cross-entropy against int class labels, fused and stable: the mean (or sum)
    over rows of -log softmax(logits)[label]. The gradient is (softmax - onehot) * scale."""
    return _loss("softmax_cross_entropy", logits, labels, reduction)


def bce_with_logits(logits: Node, targets: Node, reduction: str = "mean") -> Node:
    """Binary cross-entropy of sigmoid(logits) against probability targets, from the logits:
    softplus((1 - 2y) z) for y in {0, 1}; never overflows."""
    return _loss("bce_with_logits", logits, targets, reduction)


def mse(pred: Node, target: Node, reduction: str = "mean") -> Node:
    """The squared error (p - t)^2, averaged (or summed) over all elements."""
    return _loss("mse", pred, target, reduction)


def l1(pred: Node, target: Node, reduction: str = "mean") -> Node:
    """The absolute error |p - t|, averaged (or summed); its derivative is sign(p - t), 0 at 0."""
    return _loss("l1", pred, target, reduction)

