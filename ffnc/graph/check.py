"""gradcheck: symbolic derivatives of a user's graph against finite differences.

The reference is the fourth-order central difference
    f'(x) ~ (8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h,
whose truncation error is O(h^4): with h ~ 1e-3 in float64 it agrees with an exact derivative
to ~1e-10, far inside the default tolerance. Points must be away from kinks (relu at 0, ...),
where no finite difference is meaningful.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ffnc.graph.forward import jvp
from ffnc.graph.higher import hvp
from ffnc.graph.interpreter import evaluate
from ffnc.graph.ir import FLOAT_DTYPES, Node, constant, placeholder
from ffnc.graph.ops import sum
from ffnc.graph.reverse import grad, vjp

MODES = ("fwd", "rev")


class GradcheckError(AssertionError):
    """A symbolic derivative disagrees with finite differences."""


@dataclass
class GradcheckReport:
    """The largest relative error of each check, by name ('rev', 'fwd', 'fwd_rev', ...)."""

    errors: dict[str, float] = field(default_factory=dict)
    rtol: float = 1e-6

    @property
    def ok(self) -> bool:
        return all(e <= self.rtol for e in self.errors.values())

    def __str__(self) -> str:
        lines = [f"{name}: relative error {err:.3g}" for name, err in self.errors.items()]
        return "\n".join(lines + [f"(tolerance {self.rtol:g})"])


def _difference(f: Callable[[float], np.ndarray], h: float) -> np.ndarray:
    return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)


def _relative_error(actual: np.ndarray, expected: np.ndarray, atol: float) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if not np.all(np.isfinite(actual)) or not np.all(np.isfinite(expected)):
        return float("inf")
    diff = float(np.max(np.abs(actual - expected), initial=0.0))
    scale = max(float(np.max(np.abs(expected), initial=0.0)),
                float(np.max(np.abs(actual), initial=0.0)))
    return diff / (scale + atol)


def gradcheck(f: Callable[..., Node], inputs: Sequence[np.ndarray], order: int = 1,
              modes: Sequence[str] = MODES, eps: float = 1e-3, rtol: float = 1e-6,
              atol: float = 1e-9, seed: int = 0, raise_on_failure: bool = True
              ) -> GradcheckReport:
    """Checks the derivatives of the graph f(*placeholders) at the points `inputs`.

    f builds a graph from one placeholder per input (same shape and dtype; use float64 points,
    integer inputs such as labels are held fixed). With u a random cotangent of the output and
    v a random direction per float input:
    - order=1, 'rev': the gradient of <u, f> against differences along each coordinate;
      'fwd': the JVP along v against differences along v.
    - order=2 (for twice differentiable graphs): the Hessian of <u, f> times v, built
      forward-over-reverse ('fwd') and reverse-over-reverse ('rev'), against differences of
      the (symbolic) gradient along v; and the first-order checks too.
    The relative error is max|sym - fd| / (max(|sym|, |fd|) + atol). Returns a report; raises
    GradcheckError when an error exceeds rtol and raise_on_failure is set.
    """
    if not callable(f):
        raise TypeError(f"gradcheck: f must be a function building a graph, got "
                        f"{type(f).__name__}")
    if order not in (1, 2):
        raise ValueError(f"gradcheck: order must be 1 or 2, got {order!r}")
    for m in modes:
        if m not in MODES:
            raise ValueError(f"gradcheck: modes must be among {MODES}, got {m!r}")
    points = [np.asarray(x) for x in inputs]
    holders = [placeholder(x.shape, x.dtype, name=f"input{i}") for i, x in enumerate(points)]
    y = f(*holders)
    if not isinstance(y, Node):
        raise TypeError(f"gradcheck: f must return a graph Node, got {type(y).__name__}")
    diff_idx = [i for i, x in enumerate(points) if x.dtype in FLOAT_DTYPES]
    if not diff_idx:
        raise ValueError("gradcheck: no float input to differentiate")
    xs = [holders[i] for i in diff_idx]
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(y.shape).astype(y.dtype)
    v = [rng.standard_normal(points[i].shape).astype(points[i].dtype) for i in diff_idx]
    u_node = constant(u)
    v_nodes = [constant(vi) for vi in v]
    scalar = sum(y * u_node)
    feed = dict(zip(holders, points, strict=True))

    def value_along(nodes, direction_index=None):
        """h -> the values of `nodes` at the inputs moved by h along v (or one coordinate)."""
        def at(h: float) -> np.ndarray:
            moved = dict(feed)
            for j, i in enumerate(diff_idx):
                moved[holders[i]] = points[i] + h * v[j]
            out = evaluate(nodes, moved)
            return np.concatenate([np.ravel(o) for o in out]) if isinstance(out, list) else out
        return at

    report = GradcheckReport(rtol=rtol)
    if "rev" in modes:
        gradients = vjp(y, xs, u_node)
        symbolic = evaluate(gradients, feed)
        worst = 0.0
        for j, i in enumerate(diff_idx):
            numeric = np.zeros(points[i].shape)
            for k in np.ndindex(points[i].shape or ()):
                def at(h: float, i=i, k=k) -> float:
                    moved = dict(feed)
                    bumped = points[i].copy()
                    bumped[k] += h
                    moved[holders[i]] = bumped
                    return evaluate(scalar, moved)
                numeric[k] = _difference(at, eps)
            worst = max(worst, _relative_error(symbolic[j], numeric, atol))
        report.errors["rev"] = worst
    if "fwd" in modes:
        tangent = jvp(y, xs, v_nodes)
        numeric = _difference(value_along(y), eps)
        report.errors["fwd"] = _relative_error(evaluate(tangent, feed), numeric, atol)
    if order == 2:
        gradients = grad(scalar, xs)
        numeric = _difference(value_along(gradients), eps)
        names = {"fwd": "fwd_rev", "rev": "rev_rev"}
        for m in modes:
            products = hvp(scalar, xs, v_nodes, mode=names[m])
            symbolic = evaluate(products, feed)
            flat = np.concatenate([np.ravel(s) for s in symbolic])
            report.errors[names[m]] = _relative_error(flat, numeric, atol)
    if raise_on_failure and not report.ok:
        raise GradcheckError(f"gradcheck failed:\n{report}")
    return report
