"""Diagnosing gradient descent (the lecture's checklist), on a copy of the model.

    >>> report = ffnc.diagnosis.diagnose(model, x, y, optimizer="sgd", lr=0.5)
    >>> print(report)            # the table and a plain-language verdict
    >>> report.suggested_lr      # 1/L: a rate that guarantees descent for plain GD

What it measures, with the model left unchanged:

1. The size of one update relative to each parameter tensor, |delta p| / |p|, against the
   rule of thumb of about 1e-4 to 1e-3 (Karpathy): much larger and the step is too big,
   much smaller and training crawls.
2. Whether the loss decreases over a few probe steps on a fixed batch.
3. The local Lipschitz constant L of the gradient at the current weights: the largest
   |eigenvalue| of the Hessian, by power iteration on Hessian-vector products
   (ffnc.graph.hvp, compiled into a plan when its ops compile, else run by the reference
   interpreter). Gradient descent on an L-smooth cost decreases it for every lr < 2/L, and
   lr = 1/L gives the guaranteed decrease |grad|^2 / (2L) per step.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

import ffnc.graph as G
from ffnc import train
from ffnc._validate import count

RULE_OF_THUMB = 1e-4
"""The update/parameter ratio the lecture quotes as healthy (order of magnitude)."""
_TOO_LARGE_RATIO = 1e-2
_TOO_SMALL_RATIO = 1e-6
_DEFAULT_ROWS = 4096


@dataclasses.dataclass
class Diagnosis:
    """What diagnose() found. ``str(report)`` is a readable report; ``to_dict()`` JSON."""

    optimizer: dict[str, Any]
    """The optimizer probed (its config)."""
    lr: float
    rows: int
    """Rows in the probe batch."""
    ratios: dict[str, float]
    """|update| / |param| of the first probe step, per parameter tensor (inf for a
    parameter that is all zeros and moves)."""
    losses: list[float]
    """The loss before each probe step and after the last."""
    loss_decreased: bool
    """The loss after the probe steps is below the initial loss."""
    monotone: bool
    """It decreased at every probe step."""
    lipschitz: float
    """L: the largest |eigenvalue| of the Hessian of the loss at the current weights."""
    lipschitz_converged: bool
    lipschitz_method: str
    """"compiled plan" or "reference interpreter"."""
    safe_lr: float
    """1/L: plain gradient descent with this rate decreases the loss (guaranteed locally)."""
    max_stable_lr: float
    """2/L: beyond it gradient descent diverges along the sharpest direction."""
    lr_too_large: bool
    lr_too_small: bool
    suggested_lr: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (infinities as strings)."""
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return str(v)
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v
        return clean(dataclasses.asdict(self))

    def __str__(self) -> str:
        lines = [f"Diagnosis of {self.optimizer['class']} with lr {self.lr:g} on {self.rows} "
                 f"rows", "", f"{'parameter':<24} {'|update|/|param|':>17}  vs ~1e-4"]
        for name, r in self.ratios.items():
            lines.append(f"{name:<24} {r:>17.3g}  {_ratio_word(r)}")
        steps = len(self.losses) - 1
        trend = " -> ".join(f"{v:.4g}" for v in self.losses)
        lines += ["", f"loss over {steps} probe steps: {trend} "
                      f"({'decreased' if self.loss_decreased else 'did NOT decrease'}"
                      f"{', at every step' if self.monotone else ''})",
                  f"Lipschitz constant of the gradient L = {self.lipschitz:.4g} "
                  f"({self.lipschitz_method}"
                  f"{'' if self.lipschitz_converged else ', power iteration not converged'})",
                  f"safe learning rate 1/L = {self.safe_lr:.4g}; gradient descent diverges "
                  f"beyond 2/L = {self.max_stable_lr:.4g}", "", f"Verdict: {self.verdict}"]
        return "\n".join(lines)


def _ratio_word(r: float) -> str:
    if not math.isfinite(r):
        return "(parameter was zero)"
    if r > _TOO_LARGE_RATIO:
        return "much too large"
    if r < _TOO_SMALL_RATIO:
        return "tiny"
    return "ok"


def _copy_model(model: Any) -> Any:
    from ffnc import nn

    clone = nn.from_config(model.get_config())
    clone.load_state_dict(model.state_dict())
    return clone


def _optimizer(optimizer: Any, lr: float | None) -> Any:
    if optimizer is None:
        optimizer = "sgd"
    if isinstance(optimizer, str):
        return train.make_optimizer(optimizer, lr)
    if lr is not None:
        if dataclasses.is_dataclass(optimizer):
            return dataclasses.replace(optimizer, lr=lr)
        raise ValueError("diagnose: give lr= with an optimizer name, or set it in the "
                         "optimizer object")
    return train._resolve_optimizer(optimizer)


def _hvp_runner(model: Any, loss: Any, xs: list[np.ndarray], y: np.ndarray):
    """A function v (flat) -> H v at the model's weights, and the method's name."""
    out = model.output(False)
    target = loss.target_placeholder(model)
    objective = loss(out, target)
    nodes = list(model.parameter_nodes().values())
    vs = [G.placeholder(p.shape, p.dtype, name=f"v{i}") for i, p in enumerate(nodes)]
    products = G.hvp(objective, nodes, vs)
    sizes = [int(np.prod(p.shape)) for p in nodes]
    bounds = np.cumsum([0] + sizes)
    dtype = model.dtype

    def split(v: np.ndarray) -> list[np.ndarray]:
        return [v[bounds[i]:bounds[i + 1]].astype(dtype).reshape(p.shape)
                for i, p in enumerate(nodes)]

    try:
        plan = train._compile(products, batch_size=len(y), params=nodes,
                              inputs=list(model.inputs) + [target] + vs)
    except Exception:  # any op or fusion the compiler cannot lower: the
        # reference interpreter runs every graph (slower, same values)
        plan = None
    if plan is not None:
        np.copyto(plan.param_arena, model.flat)
        feed_base = {**{n: a for n, a in zip(model.inputs, xs, strict=True)}, target: y}

        def run(v: np.ndarray) -> np.ndarray:
            parts = plan.run({**feed_base, **dict(zip(vs, split(v), strict=True))})
            return np.concatenate([np.asarray(p, np.float64).ravel() for p in parts])
        return run, "compiled plan"

    def interpret(v: np.ndarray) -> np.ndarray:
        feed = {**{n: a for n, a in zip(model.inputs, xs, strict=True)}, target: y,
                **dict(zip(vs, split(v), strict=True))}
        parts = G.evaluate(products, feed)
        return np.concatenate([np.asarray(p, np.float64).ravel() for p in parts])
    return interpret, "reference interpreter"


def lipschitz(model: Any, x: Any, y: Any, *, loss: Any = None, iterations: int = 100,
              tol: float = 1e-7, seed: int = 0) -> tuple[float, bool, str]:
    """(L, converged, method): the largest |eigenvalue| of the Hessian of the loss over
    (x, y) at the model's weights, by power iteration on Hessian-vector products."""
    loss = train._loss_of(model, loss, "lipschitz")
    xs = train._check_x(model, x, "lipschitz")
    yv = train._check_y(model, loss, y, len(xs[0]), "lipschitz")
    return _power_iteration(model, loss, xs, yv, iterations, tol, seed)


def _power_iteration(model, loss, xs, y, iterations, tol, seed) -> tuple[float, bool, str]:
    hv, method = _hvp_runner(model, loss, xs, y)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(model.flat.size)
    v /= np.linalg.norm(v)
    estimate, converged = 0.0, False
    for _ in range(iterations):
        w = hv(v)
        norm = float(np.linalg.norm(w))
        if not math.isfinite(norm):
            return math.inf, False, method
        if norm == 0.0:
            return 0.0, True, method
        # |v^T H v| (the Rayleigh quotient) converges twice as fast as |H v| for symmetric H
        rayleigh = abs(float(v @ w))
        if abs(rayleigh - estimate) <= tol * rayleigh:
            return rayleigh, True, method
        estimate = rayleigh
        v = w / norm
    return estimate, converged, method


def diagnose(model: Any, x: Any, y: Any, *, optimizer: Any = None, lr: float | None = None,
             loss: Any = None, rows: int | None = None, probe_steps: int = 5,
             iterations: int = 100, tol: float = 1e-5, seed: int = 0) -> Diagnosis:
    """Diagnoses gradient descent for `model` on (x, y) with `optimizer` (an object or a name,
    default "sgd"; lr= sets a name's rate). The model is not changed: every probe runs on a
    copy. rows: the probe batch (default: all rows up to 4096, else a seeded sample);
    probe_steps: optimizer steps on that batch; iterations, tol: the power iteration's budget
    and its stopping rule (relative change of the estimate of L).
    """
    train._check_model(model, "diagnose")
    loss = train._loss_of(model, loss, "diagnose")
    opt = _optimizer(optimizer, lr)
    probe_steps = count("diagnose: probe_steps", probe_steps, 1)
    iterations = count("diagnose: iterations", iterations, 1)
    xs = train._check_x(model, x, "diagnose")
    yv = train._check_y(model, loss, y, len(xs[0]), "diagnose")
    n = len(yv)
    limit = _DEFAULT_ROWS if rows is None else count("diagnose: rows", rows, 1)
    if n > limit:
        pick = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
        xs, yv = [np.ascontiguousarray(a[pick]) for a in xs], np.ascontiguousarray(yv[pick])
        n = limit

    probe = _copy_model(model)
    probe.loss = loss
    big_l, converged, method = _power_iteration(probe, loss, xs, yv, iterations, tol, seed)

    out = probe.output(True)
    target = loss.target_placeholder(probe)
    objective = loss(out, target)
    plan = train._compile([objective], batch_size=n, loss=objective, optimizer=opt,
                          params=list(probe.parameter_nodes().values()),
                          inputs=list(probe.inputs) + [target])
    probe.bind(plan.param_arena)
    feed = {**{node: a for node, a in zip(probe.inputs, xs, strict=True)}, target: yv}
    before = {k: v.astype(np.float64) for k, v in probe.named_parameters().items()}
    losses = [float(plan.run(feed)[0])]
    ratios = {}
    for name, value in probe.named_parameters().items():
        delta = np.linalg.norm(value - before[name])
        size = np.linalg.norm(before[name])
        ratios[name] = float(delta / size) if size > 0 else (math.inf if delta > 0 else 0.0)
    for _ in range(probe_steps):
        with np.errstate(all="ignore"):
            losses.append(float(plan.run(feed)[0]))
    # losses[k] is the loss before step k+1; the last run's update is not counted
    finite = all(math.isfinite(v) for v in losses)
    decreased = finite and losses[-1] < losses[0]
    monotone = finite and all(b < a for a, b in zip(losses, losses[1:], strict=False))

    cfg = _optimizer_config(opt)
    rate = float(opt.lr)
    safe = 1.0 / big_l if big_l > 0 else math.inf
    stable = 2.0 / big_l if big_l > 0 else math.inf
    weights = [r for k, r in ratios.items() if math.isfinite(r) and r > 0]
    typical = float(np.median(weights)) if weights else 0.0
    plain_gd = cfg["class"] == "sgd"
    momentum = float(cfg.get("momentum", 0.0)) if cfg["class"] == "momentum" else 0.0
    # heavy-ball momentum on a quadratic is stable up to 2 (1 + momentum) / L
    limit_lr = stable * (1 + momentum) if cfg["class"] in ("sgd", "momentum") else math.inf
    if cfg["class"] in ("sgd", "momentum"):
        too_large = not decreased or rate > limit_lr
    else:  # adaptive rates: no L bound applies, the probe and the ratios decide
        too_large = not decreased or (not monotone and typical > _TOO_LARGE_RATIO)
    too_small = decreased and not too_large and (
        0 < typical < _TOO_SMALL_RATIO or (cfg["class"] in ("sgd", "momentum")
                                           and rate < safe / 100))
    if (too_large or too_small) and cfg["class"] in ("sgd", "momentum") \
            and math.isfinite(safe):
        suggested = safe * (1 - momentum)
    elif too_large:
        suggested = rate / 10
    else:
        suggested = rate
    verdict = _verdict(cfg["class"], rate, plain_gd, too_large, too_small, decreased,
                       finite, typical, safe, stable, limit_lr, suggested)
    return Diagnosis(optimizer=cfg, lr=rate, rows=n, ratios=ratios, losses=losses,
                     loss_decreased=decreased, monotone=monotone, lipschitz=big_l,
                     lipschitz_converged=converged, lipschitz_method=method, safe_lr=safe,
                     max_stable_lr=stable, lr_too_large=too_large, lr_too_small=too_small,
                     suggested_lr=suggested, verdict=verdict)


def _optimizer_config(opt: Any) -> dict[str, Any]:
    from ffnc import io

    return io.optimizer_config(opt)


def _verdict(name, rate, plain_gd, too_large, too_small, decreased, finite, typical, safe,
             stable, limit_lr, suggested) -> str:
    ratio_note = ""
    if typical > _TOO_LARGE_RATIO:
        ratio_note = (f"updates are ~{typical:.1e} of the parameters, far above the ~1e-4 "
                      f"rule of thumb")
    if too_large:
        parts = []
        if not finite:
            parts.append("the loss became NaN or infinite within a few steps")
        elif not decreased:
            parts.append("the loss went UP over the probe steps")
        if rate > limit_lr:
            parts.append(f"lr {rate:g} is above {limit_lr:.3g}, where gradient descent "
                         f"diverges along the sharpest direction of the cost (L = "
                         f"{2 / stable:.3g})")
        if ratio_note:
            parts.append(ratio_note)
        return ("The learning rate is too large: " + "; ".join(parts)
                + f". Use lr = {suggested:.3g}"
                + (" (1/L: guaranteed descent for gradient descent)." if plain_gd else "."))
    if too_small:
        return (f"The learning rate looks too small (updates ~{typical:.1e} of the parameters, "
                f"rule of thumb ~1e-4); lr = {suggested:.3g} (1/L) still guarantees descent "
                f"and moves faster.")
    extra = f" Note: {ratio_note} (common in the first steps from a fresh initialization)." \
        if ratio_note else ""
    if plain_gd and rate > safe:
        return (f"The loss decreases, but lr {rate:g} is between 1/L = {safe:.3g} and 2/L = "
                f"{stable:.3g}: descent is not guaranteed everywhere; {safe:.3g} is the safe "
                f"choice.{extra}")
    note = "" if plain_gd or name == "momentum" else (
        f" (the 1/L = {safe:.3g} bound is for plain gradient descent; {name} rescales its "
        f"steps)")
    return f"Healthy: the loss decreases at lr {rate:g}{note}.{extra}"


class DiagnoseCallback(train.Callback):
    """A fit callback that diagnoses the model every `every` epochs on (x, y) and keeps the
    reports in ``reports`` (epoch, Diagnosis); verbose=True prints each verdict.
    Keyword options go to diagnose (optimizer, lr, rows, probe_steps, iterations)."""

    def __init__(self, x: Any, y: Any, *, every: int = 1, verbose: bool = False,
                 **options: Any) -> None:
        self.x, self.y = x, y
        self.every = count("DiagnoseCallback: every", every, 1)
        self.verbose = bool(verbose)
        self.options = options
        self.reports: list[tuple[int, Diagnosis]] = []
        self.model: Any = None

    def on_train_begin(self, model: Any) -> None:
        self.model = model

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        if epoch % self.every == 0:
            report = diagnose(self.model, self.x, self.y, **self.options)
            self.reports.append((epoch, report))
            if self.verbose:
                print(f"epoch {epoch}: {report.verdict}", flush=True)
        return None


__all__ = ["RULE_OF_THUMB", "DiagnoseCallback", "Diagnosis", "diagnose", "lipschitz"]
