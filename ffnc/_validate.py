"""Checks of the int and bool arguments users pass across the package (graph ops, optimizers
and schedules, training). A value is taken as given or refused, never coerced: a bool is not
an int, a float is not truncated to one, and no object's truth value stands in for a bool;
numpy's integer and bool scalars are accepted. Refusals are a TypeError (the wrong type) or a
ValueError (out of range) whose message starts with the argument's name as the caller gives
it, e.g. "fit: epochs" or "one_hot: depth"."""

from __future__ import annotations

from typing import Any

import numpy as np

INT64_MAX = 2**63 - 1


def count(name: str, value: Any, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high] (no upper bound when high is None)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        bound = "< 2**63" if high == INT64_MAX else f"<= {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def int64_count(name: str, value: Any, low: int) -> int:
    """count() for what numpy and C store as int64 (sizes, step counters): below 2**63."""
    return count(name, value, low, INT64_MAX)


def flag(name: str, value: Any) -> bool:
    """`value`, a bool or numpy bool, as a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)
