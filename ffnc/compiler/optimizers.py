"""Optimizer settings a plan compiles into one update instruction over its parameter arena.

The updates are the C kernels' (ffnc_sgd_update, ffnc_momentum_update, ffnc_adam_update):
SGD with coupled weight decay, heavy-ball momentum (optionally Nesterov) as in PyTorch, and
Adam / AdamW with bias correction from the plan's step counter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _check(name: str, value: float, low: float, high: float | None = None,
           open_high: bool = True) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < low or (high is not None and (value >= high if open_high else value > high)):
        bound = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bound}, got {value!r}")


@dataclass(frozen=True)
class SGD:
    """p -= lr * (g + weight_decay * p)."""

    lr: float
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _check("lr", self.lr, 0.0)
        _check("weight_decay", self.weight_decay, 0.0)

    state_buffers = 0


@dataclass(frozen=True)
class Momentum:
    """v = momentum v + g + weight_decay p; p -= lr v (or lr (g + momentum v), Nesterov)."""

    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        _check("lr", self.lr, 0.0)
        _check("momentum", self.momentum, 0.0, 1.0)
        _check("weight_decay", self.weight_decay, 0.0)

    state_buffers = 1


@dataclass(frozen=True)
class Adam:
    """Adam (decoupled=False: L2 weight decay) or AdamW (decoupled=True), bias-corrected."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled: bool = False

    def __post_init__(self) -> None:
        _check("lr", self.lr, 0.0)
        _check("beta1", self.beta1, 0.0, 1.0)
        _check("beta2", self.beta2, 0.0, 1.0)
        _check("weight_decay", self.weight_decay, 0.0)
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}")

    state_buffers = 2


Optimizer = SGD | Momentum | Adam
