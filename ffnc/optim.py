"""Optimizers and learning-rate schedules for compiled plans.

An optimizer is a frozen description of an update rule; ``ffnc.compiler.compile(...,
optimizer=...)`` turns it into one update instruction over the whole parameter arena (one C
kernel call per step), preceded by gradient clipping when ``clip_norm`` is set:

- ``SGD``: p -= lr (g + weight_decay p). Full-batch gradient descent is SGD with the whole
  training set as one batch.
- ``Momentum``: heavy-ball momentum, or Nesterov's variant, as torch.optim.SGD.
- ``Adam`` (weight decay as an L2 term) and ``AdamW`` (decoupled weight decay), bias-corrected
  from the plan's step counter, as torch.optim.Adam / AdamW.
- ``RMSprop``, optionally centered and with momentum, as torch.optim.RMSprop.

Gradient clipping by global norm (``clip_norm``): before the update, the L2 norm N of the whole
gradient arena is computed in double in a fixed order, and the gradients are scaled by
clip_norm / N when N > clip_norm. A NaN or infinite N leaves them as they are (the training
loop's NaN guard reports it). ``Plan.grad_norm`` is the last N.

Learning-rate schedules give one multiplier of the optimizer's lr per step:
``multipliers(start_step, n_steps)`` is the float64 array ``Plan.run_epoch(...,
lr_scale=...)`` takes, so a per-step schedule still costs one call into C per epoch. Steps
count updates from 0 (the plan's ``step`` before the update). ``StepLR``, ``ExponentialLR``,
``CosineLR`` and ``LinearWarmup`` are pure functions of the step; ``ReduceLROnPlateau`` is
driven once per epoch by a validation metric (``update(metric) -> scale``) and its scale
multiplies whatever the other schedule gives.

Every optimizer and schedule has ``get_config()``, a JSON-serialisable dict with a "class"
key, and ``from_config(cfg)`` rebuilds it, for checkpoints. The optimizer's state (velocity,
moments) lives in the plan: ``Plan.optimizer_state()`` gives zero-copy views of it and
``Plan.step`` the step counter, which together with the parameters make training resume
bit-identically.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ffnc._memory import check_allocation
from ffnc._validate import flag, int64_count

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineLR",
    "ExponentialLR",
    "LinearWarmup",
    "Momentum",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "Schedule",
    "StepLR",
    "from_config",
]


# ---- validation -------------------------------------------------------------------------------


def _real(name: str, value: Any) -> float:
    """value as a finite float, else TypeError (not a real number) or ValueError (NaN, inf)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the range of a double
        v = math.inf
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value if v != v else v}")
    return v


def _at_least(name: str, value: Any, low: float, *, strict: bool = False) -> float:
    v = _real(name, value)
    if v < low or (strict and v == low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}, got {v}")
    return v


def _fraction(name: str, value: Any, *, closed: bool = False) -> float:
    """A value in [0, 1) (or [0, 1] when closed)."""
    v = _real(name, value)
    if not (0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0):
        raise ValueError(f"{name} must be in [0, 1{']' if closed else ')'}, got {v}")
    return v


def _set(obj: Any, name: str, value: Any) -> None:
    """Stores a normalised value on a frozen dataclass (numpy scalars become Python ones, so
    configs are JSON-serialisable)."""
    object.__setattr__(obj, name, value)


# ---- optimizers -------------------------------------------------------------------------------


class Optimizer:
    """Base of the optimizers: the common settings lr and clip_norm, the state buffers the
    update keeps (``state_names``) and the configuration round trip."""

    config_name: ClassVar[str]
    lr: float
    clip_norm: float | None

    def _check_common(self) -> None:
        _set(self, "lr", _at_least("lr", self.lr, 0.0))
        if self.clip_norm is not None:
            _set(self, "clip_norm", _at_least("clip_norm", self.clip_norm, 0.0, strict=True))

    @property
    def state_names(self) -> tuple[str, ...]:
        """The names of the state buffers the update keeps, each the size of the parameter
        arena, in the order they are laid out in the plan (the keys of
        ``Plan.optimizer_state()``)."""
        return ()

    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable dict: {"class": <name>, <every setting>}."""
        cfg: dict[str, Any] = {"class": self.config_name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.init:
                cfg[f.name] = getattr(self, f.name)
        return cfg


@dataclass(frozen=True)
class SGD(Optimizer):
    """Stochastic gradient descent with coupled weight decay: p -= lr (g + weight_decay p).

    Full-batch gradient descent is SGD run with the whole training set as one batch. lr >= 0,
    weight_decay >= 0 (an L2 penalty weight_decay/2 |p|^2 on the loss). clip_norm: clip the
    gradients to this global L2 norm before the update (None: no clipping).
    """

    config_name: ClassVar[str] = "sgd"
    lr: float
    weight_decay: float = 0.0
    clip_norm: float | None = None

    def __post_init__(self) -> None:
        self._check_common()
        _set(self, "weight_decay", _at_least("weight_decay", self.weight_decay, 0.0))


@dataclass(frozen=True)
class Momentum(Optimizer):
    """SGD with heavy-ball momentum, as torch.optim.SGD (no dampening):

        d = g + weight_decay p;  v = momentum v + d;
        p -= lr v   (classic)    or    p -= lr (d + momentum v)   (nesterov=True).

    lr >= 0, 0 <= momentum < 1, weight_decay >= 0. State: "velocity".
    """

    config_name: ClassVar[str] = "momentum"
    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    clip_norm: float | None = None

    def __post_init__(self) -> None:
        self._check_common()
        _set(self, "momentum", _fraction("momentum", self.momentum))
        _set(self, "weight_decay", _at_least("weight_decay", self.weight_decay, 0.0))
        _set(self, "nesterov", flag("nesterov", self.nesterov))

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("velocity",)


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam, bias-corrected, as torch.optim.Adam:

        g' = g + weight_decay p;  m = beta1 m + (1 - beta1) g';  v = beta2 v + (1 - beta2) g'^2;
        p -= lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps),

    t the step (the plan's step counter + 1). Weight decay here is an L2 term that the adaptive
    step rescales; ``AdamW`` decouples it (decoupled=True here is the same as AdamW). lr >= 0,
    0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0. State: "m", "v".
    """

    config_name: ClassVar[str] = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled: bool = False
    clip_norm: float | None = None

    def __post_init__(self) -> None:
        self._check_common()
        _set(self, "beta1", _fraction("beta1", self.beta1))
        _set(self, "beta2", _fraction("beta2", self.beta2))
        _set(self, "eps", _at_least("eps", self.eps, 0.0, strict=True))
        _set(self, "weight_decay", _at_least("weight_decay", self.weight_decay, 0.0))
        _set(self, "decoupled", flag("decoupled", self.decoupled))

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("m", "v")

    def get_config(self) -> dict[str, Any]:
        if self.decoupled and type(self) is Adam:
            return AdamW(self.lr, self.beta1, self.beta2, self.eps, self.weight_decay,
                         self.clip_norm).get_config()
        cfg = super().get_config()
        cfg.pop("decoupled", None)
        return cfg


@dataclass(frozen=True)
class AdamW(Adam):
    """AdamW, as torch.optim.AdamW: Adam with decoupled weight decay, p -= lr weight_decay p
    before the Adam step (the decay is not rescaled by the adaptive denominator). Defaults as
    PyTorch's (weight_decay 0.01). State: "m", "v"."""

    config_name: ClassVar[str] = "adamw"
    weight_decay: float = 1e-2
    decoupled: bool = field(default=True, init=False)


@dataclass(frozen=True)
class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop:

        g' = g + weight_decay p;  s = alpha s + (1 - alpha) g'^2;
        centered:  a = alpha a + (1 - alpha) g';  den = sqrt(s - a^2) + eps
        else:      den = sqrt(s) + eps
        momentum > 0:  b = momentum b + g' / den;  p -= lr b
        else:          p -= lr g' / den.

    lr >= 0, 0 <= alpha < 1, eps > 0, weight_decay >= 0, 0 <= momentum < 1. State:
    "square_avg", then "momentum_buffer" when momentum > 0 and "grad_avg" when centered.
    """

    config_name: ClassVar[str] = "rmsprop"
    lr: float = 1e-2
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False
    clip_norm: float | None = None

    def __post_init__(self) -> None:
        self._check_common()
        _set(self, "alpha", _fraction("alpha", self.alpha))
        _set(self, "eps", _at_least("eps", self.eps, 0.0, strict=True))
        _set(self, "weight_decay", _at_least("weight_decay", self.weight_decay, 0.0))
        _set(self, "momentum", _fraction("momentum", self.momentum))
        _set(self, "centered", flag("centered", self.centered))

    @property
    def state_names(self) -> tuple[str, ...]:
        return (("square_avg",) + (("momentum_buffer",) if self.momentum > 0 else ())
                + (("grad_avg",) if self.centered else ()))


# ---- schedules --------------------------------------------------------------------------------


def _steps(start_step: Any, n_steps: Any) -> np.ndarray:
    start = int64_count("start_step", start_step, 0)
    n = int64_count("n_steps", n_steps, 0)
    if start + n > 2**63:
        raise ValueError(f"start_step + n_steps must be <= 2**63 (steps are int64), got "
                         f"{start} + {n}")
    check_allocation(n * 8, f"the multipliers of n_steps={n} steps")
    return np.arange(start, start + n, dtype=np.int64)


class Schedule(abc.ABC):
    """A learning-rate schedule: a multiplier of the optimizer's lr for every step t >= 0 (t
    counts updates made before this one)."""

    config_name: ClassVar[str]

    def multipliers(self, start_step: int, n_steps: int) -> np.ndarray:
        """The multipliers of steps start_step .. start_step + n_steps - 1, float64: what
        ``Plan.run_epoch(..., lr_scale=...)`` takes for an epoch of n_steps steps that starts
        at plan.step == start_step."""
        return self._at(_steps(start_step, n_steps))

    @abc.abstractmethod
    def _at(self, t: np.ndarray) -> np.ndarray:
        """The multipliers of the steps in t (int64, >= 0)."""

    def __call__(self, step: int) -> float:
        """The multiplier of one step."""
        return float(self.multipliers(step, 1)[0])

    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable dict: {"class": <name>, <every setting>}."""
        cfg: dict[str, Any] = {"class": self.config_name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            cfg[f.name] = value.get_config() if isinstance(value, Schedule) else value
        return cfg


@dataclass(frozen=True)
class StepLR(Schedule):
    """gamma ** (t // step_size): the rate drops by gamma every step_size steps (as
    torch.optim.lr_scheduler.StepLR stepped once per update). step_size >= 1, gamma >= 0."""

    config_name: ClassVar[str] = "step_lr"
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _set(self, "step_size", int64_count("step_size", self.step_size, 1))
        _set(self, "gamma", _at_least("gamma", self.gamma, 0.0))

    def _at(self, t: np.ndarray) -> np.ndarray:
        return np.power(self.gamma, (t // self.step_size).astype(np.float64))


@dataclass(frozen=True)
class ExponentialLR(Schedule):
    """gamma ** t (as torch.optim.lr_scheduler.ExponentialLR stepped once per update).
    gamma >= 0; above 1 the rate grows (a learning-rate range test)."""

    config_name: ClassVar[str] = "exponential_lr"
    gamma: float

    def __post_init__(self) -> None:
        _set(self, "gamma", _at_least("gamma", self.gamma, 0.0))

    def _at(self, t: np.ndarray) -> np.ndarray:
        return np.power(self.gamma, t.astype(np.float64))


@dataclass(frozen=True)
class CosineLR(Schedule):
    """Cosine annealing from 1 to min_scale over total_steps steps, then min_scale:

        min_scale + (1 - min_scale) (1 + cos(pi t / total_steps)) / 2   for t < total_steps,

    as torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total_steps, eta_min=min_scale lr)
    over its first total_steps + 1 steps (PyTorch's then rises again; this one stays at the
    minimum). total_steps >= 1, 0 <= min_scale <= 1."""

    config_name: ClassVar[str] = "cosine_lr"
    total_steps: int
    min_scale: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "total_steps", int64_count("total_steps", self.total_steps, 1))
        _set(self, "min_scale", _fraction("min_scale", self.min_scale, closed=True))

    def _at(self, t: np.ndarray) -> np.ndarray:
        phase = np.minimum(t, self.total_steps).astype(np.float64) / self.total_steps
        return self.min_scale + (1 - self.min_scale) * (1 + np.cos(np.pi * phase)) / 2


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """A linear warm-up over warmup_steps steps, (t + 1) / warmup_steps for t < warmup_steps
    (the first step uses lr / warmup_steps, step warmup_steps - 1 the full lr), then the
    schedule `after` counted from the end of the warm-up (after(t - warmup_steps)), or 1 when
    after is None. warmup_steps >= 1. As torch's LinearLR(start_factor=1/warmup_steps,
    total_iters=warmup_steps - 1) followed by `after` (SequentialLR)."""

    config_name: ClassVar[str] = "linear_warmup"
    warmup_steps: int
    after: Schedule | None = None

    def __post_init__(self) -> None:
        _set(self, "warmup_steps", int64_count("warmup_steps", self.warmup_steps, 1))
        if self.after is not None and not isinstance(self.after, Schedule):
            raise TypeError(f"after must be a Schedule (StepLR, ExponentialLR, CosineLR, "
                            f"LinearWarmup) or None, got {type(self.after).__name__}")

    def _at(self, t: np.ndarray) -> np.ndarray:
        warm = t < self.warmup_steps
        out = np.ones(t.shape, np.float64)
        out[warm] = (t[warm] + 1).astype(np.float64) / self.warmup_steps
        if self.after is not None and not warm.all():
            out[~warm] = self.after._at(t[~warm] - self.warmup_steps)
        return out


class ReduceLROnPlateau:
    """Reduces the rate when a metric stops improving, as torch.optim.lr_scheduler.
    ReduceLROnPlateau, as a multiplier: call ``update(metric)`` once per epoch with the
    validation metric; it returns the scale to multiply the rate by from then on (1 at first).

    mode "min" (a loss) or "max" (an accuracy). A metric improves on the best so far when it is
    below best * (1 - threshold) ("rel" threshold_mode; above best * (1 + threshold) in "max"
    mode) or below best - threshold ("abs"). After more than `patience` epochs without
    improvement the scale is multiplied by factor (not below min_scale), then `cooldown`
    epochs pass before bad epochs count again; a reduction of the scale by eps or less is
    skipped (PyTorch's eps, there in absolute rate: the same for a base rate of 1). A NaN
    metric never improves. 0 < factor < 1, patience >= 0, threshold >= 0, cooldown >= 0,
    0 <= min_scale <= 1, eps >= 0.

    ``state_dict()`` / ``load_state_dict()`` carry the evolving state (scale, best, counters)
    for checkpoints; ``get_config()`` the settings.
    """

    config_name: ClassVar[str] = "reduce_lr_on_plateau"

    def __init__(self, factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                 threshold_mode: str = "rel", cooldown: int = 0, min_scale: float = 0.0,
                 mode: str = "min", eps: float = 1e-8) -> None:
        self.factor = _real("factor", factor)
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {self.factor}")
        self.patience = int64_count("patience", patience, 0)
        self.threshold = _at_least("threshold", threshold, 0.0)
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.threshold_mode = threshold_mode
        self.cooldown = int64_count("cooldown", cooldown, 0)
        self.min_scale = _fraction("min_scale", min_scale, closed=True)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.eps = _at_least("eps", eps, 0.0)
        self.scale = 1.0
        self.best: float | None = None
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.epochs = 0

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "class")
        return f"ReduceLROnPlateau({settings}; scale={self.scale})"

    def _improves(self, metric: float) -> bool:
        if self.best is None:  # as PyTorch's initial best of +-inf
            best = math.inf if self.mode == "min" else -math.inf
        else:
            best = self.best
        if self.mode == "min":
            bar = best * (1 - self.threshold) if self.threshold_mode == "rel" \
                else best - self.threshold
            return metric < bar
        bar = best * (1 + self.threshold) if self.threshold_mode == "rel" \
            else best + self.threshold
        return metric > bar

    def update(self, metric: float) -> float:
        """Takes one epoch's metric; returns the scale of the rate from now on."""
        if isinstance(metric, (bool, np.bool_)) or not isinstance(metric, numbers.Real):
            raise TypeError(f"metric must be a real number, got {type(metric).__name__}")
        metric = float(metric)
        self.epochs += 1
        if self._improves(metric):
            self.best = metric
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            reduced = max(self.scale * self.factor, self.min_scale)
            if self.scale - reduced > self.eps:
                self.scale = reduced
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.scale

    def get_config(self) -> dict[str, Any]:
        return {"class": self.config_name, "factor": self.factor, "patience": self.patience,
                "threshold": self.threshold, "threshold_mode": self.threshold_mode,
                "cooldown": self.cooldown, "min_scale": self.min_scale, "mode": self.mode,
                "eps": self.eps}

    def state_dict(self) -> dict[str, Any]:
        """The evolving state, JSON-serialisable (best is None before the first metric)."""
        return {"scale": self.scale, "best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter, "epochs": self.epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores what state_dict() returned (checked: a bad checkpoint is an error)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        expected = {"scale", "best", "num_bad_epochs", "cooldown_counter", "epochs"}
        if set(state) != expected:
            raise ValueError(f"state must have exactly the keys {sorted(expected)}, got "
                             f"{sorted(state)}")
        scale = _at_least("scale", state["scale"], 0.0)
        best = None if state["best"] is None else _real("best", state["best"])
        bad = int64_count("num_bad_epochs", state["num_bad_epochs"], 0)
        cooldown = int64_count("cooldown_counter", state["cooldown_counter"], 0)
        epochs = int64_count("epochs", state["epochs"], 0)
        self.scale, self.best, self.num_bad_epochs = scale, best, bad
        self.cooldown_counter, self.epochs = cooldown, epochs


# ---- configurations ---------------------------------------------------------------------------

_CLASSES: dict[str, type] = {
    cls.config_name: cls
    for cls in (SGD, Momentum, Adam, AdamW, RMSprop, StepLR, ExponentialLR, CosineLR,
                LinearWarmup, ReduceLROnPlateau)
}


def from_config(cfg: Mapping[str, Any]) -> Any:
    """Rebuilds an optimizer or a schedule from its get_config() dict. A "step" entry (the
    plan's step counter, which checkpoints store beside the optimizer's settings) is ignored;
    any other unknown key is an error."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"config must be a mapping, got {type(cfg).__name__}")
    settings = dict(cfg)
    name = settings.pop("class", None)
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"config 'class' must be one of {sorted(_CLASSES)}, got {name!r}")
    cls = _CLASSES[name]
    settings.pop("step", None)
    if cls is ReduceLROnPlateau:
        known = set(ReduceLROnPlateau().get_config()) - {"class"}
    else:
        known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"config of {name!r} has unknown keys {unknown}; it takes "
                         f"{sorted(known)}")
    if cls is LinearWarmup and settings.get("after") is not None:
        after = from_config(settings["after"])
        if not isinstance(after, Schedule):
            raise ValueError(f"linear_warmup's 'after' must be a step schedule, got "
                             f"{type(after).__name__}")
        settings["after"] = after
    return cls(**settings)
