"""Initial values of parameters, each drawn from the model's one numpy Generator.

An initializer is called as ``init(shape, fan_in, fan_out, rng, dtype)``. Values are drawn in
float64 and rounded to the model's dtype, so a float32 and a float64 model built with the same
seed start from the same (rounded) values. The variance-scaling families draw from

    uniform(-limit, limit), limit = sqrt(3 scale / n)   or   normal(0, sqrt(scale / n))

with (scale, n) = (1, (fan_in + fan_out) / 2) for Glorot/Xavier, (2, fan_in) for He/Kaiming
(relu units) and (1, fan_in) for LeCun. ``orthogonal`` draws a random orthogonal matrix (QR of
a Gaussian one, signs fixed so it is uniformly distributed) times ``gain``; ``constant(0.1)``
is the lecture's bias for relu units (starting them active).

Names for ``get``: zeros, ones, constant, uniform, normal, glorot_uniform (xavier_uniform),
glorot_normal (xavier_normal), he_uniform (kaiming_uniform), he_normal (kaiming_normal),
lecun_uniform, lecun_normal, orthogonal.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from ffnc._memory import MEMORY_LIMIT, array_bytes, check_allocation
from ffnc.graph.ir import finite_float
from ffnc.nn.config import Configured, parse_spec

Shape = tuple[int, ...]


def check_draw(init: Any, shape: Shape) -> None:
    """Values are drawn in float64: a draw larger than this machine's memory is refused (a
    MemoryError naming the initializer and the shape) before anything is allocated."""
    nbytes = array_bytes(shape, 8)
    if nbytes > MEMORY_LIMIT:
        check_allocation(nbytes, f"initializer {init.name or type(init).__name__}: a "
                                 f"parameter of shape {tuple(shape)}")


# Within skip_draws: [the values initializers may still hand out]; else None.
_SKIP_DRAWS: ContextVar[list[int] | None] = ContextVar("ffnc_skip_draws", default=None)


@contextmanager
def skip_draws(max_values: int) -> Iterator[None]:
    """Within this block (in this thread or task) initializers draw nothing: they return zeros,
    for parameters about to be overwritten, and raise ValueError before allocating once the
    parameters asked for exceed max_values in total. ffnc.io builds a checkpoint's model so:
    no random draws to throw away, and a config that declares more parameters than its file
    holds (a few bytes asking for gigabytes) fails at once."""
    token = _SKIP_DRAWS.set([int(max_values)])
    try:
        yield
    finally:
        _SKIP_DRAWS.reset(token)


def skipping_draws() -> bool:
    """True inside skip_draws (layers whose initial values are not one initializer call, such
    as LowRank's factorised draw, then ask for their parameters' shapes directly)."""
    return _SKIP_DRAWS.get() is not None


def _finite(initializer: str, what: str, value: Any) -> float:
    v = finite_float(value)
    if v is None:
        raise ValueError(f"{initializer} initializer: {what} must be a finite number, got "
                         f"{value!r}")
    return v


class Initializer(Configured):
    """Base class: a rule for the initial value of a parameter."""

    name: str = ""

    def __call__(self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
                 dtype: np.dtype) -> np.ndarray:
        remaining = _SKIP_DRAWS.get()
        if remaining is not None:
            values = math.prod(shape)
            if values > remaining[0]:
                raise ValueError(f"a parameter of shape {tuple(shape)} ({values:,} values) "
                                 f"exceeds the {remaining[0]:,} values left for the model's "
                                 f"parameters")
            remaining[0] -= values
            return np.zeros(shape, dtype)
        check_draw(self, shape)
        return self.draw(tuple(shape), fan_in, fan_out, rng).astype(dtype)

    def draw(self, shape: Shape, fan_in: int, fan_out: int,
             rng: np.random.Generator) -> np.ndarray:
        """The values in float64."""
        raise TypeError(f"{type(self).__name__} does not define draw()")


class Zeros(Initializer):
    """All zeros (the usual bias)."""

    name = "zeros"

    def draw(self, shape, fan_in, fan_out, rng):
        return np.zeros(shape)


class Ones(Initializer):
    """All ones."""

    name = "ones"

    def draw(self, shape, fan_in, fan_out, rng):
        return np.ones(shape)


class Constant(Initializer):
    """Every value equal to `value` (e.g. 0.1 for the biases of relu units)."""

    name = "constant"

    def __init__(self, value: float = 0.0) -> None:
        self.value = _finite("constant", "value", value)

    def draw(self, shape, fan_in, fan_out, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"class": self.name, "value": self.value}


class Uniform(Initializer):
    """Uniform on [low, high)."""

    name = "uniform"

    def __init__(self, low: float = -0.05, high: float = 0.05) -> None:
        self.low, self.high = _finite("uniform", "low", low), _finite("uniform", "high", high)
        if not self.low <= self.high:
            raise ValueError(f"uniform initializer: need low <= high, got low={low!r}, "
                             f"high={high!r}")

    def draw(self, shape, fan_in, fan_out, rng):
        return rng.uniform(self.low, self.high, shape)

    def get_config(self):
        return {"class": self.name, "low": self.low, "high": self.high}


class Normal(Initializer):
    """Normal with the given mean and standard deviation."""

    name = "normal"

    def __init__(self, mean: float = 0.0, stddev: float = 0.05) -> None:
        self.mean, self.stddev = _finite("normal", "mean", mean), _finite("normal", "stddev",
                                                                          stddev)
        if self.stddev < 0:
            raise ValueError(f"normal initializer: stddev must be >= 0, got {stddev!r}")

    def draw(self, shape, fan_in, fan_out, rng):
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"class": self.name, "mean": self.mean, "stddev": self.stddev}


class VarianceScaling(Initializer):
    """Uniform or normal with variance scale / n, n from the fans (see the module docstring)."""

    def __init__(self, scale: float, mode: str, distribution: str, name: str) -> None:
        self.scale, self.mode, self.distribution, self.name = scale, mode, distribution, name

    def draw(self, shape, fan_in, fan_out, rng):
        n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(n, 1)
        if self.distribution == "uniform":
            limit = math.sqrt(3 * variance)
            return rng.uniform(-limit, limit, shape)
        return rng.normal(0.0, math.sqrt(variance), shape)


class Orthogonal(Initializer):
    """A random orthogonal matrix (rows or columns orthonormal, whichever fit) times gain.

    Shapes with more than two dimensions are flattened to (prod(shape[:-1]), shape[-1]).
    """

    name = "orthogonal"

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = _finite("orthogonal", "gain", gain)

    def draw(self, shape, fan_in, fan_out, rng):
        if len(shape) < 2:
            raise ValueError(f"orthogonal initializer: needs a matrix, got shape {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # Haar-distributed, not biased by QR's signs
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape)

    def get_config(self):
        return {"class": self.name, "gain": self.gain}


def _scaling(scale: float, mode: str, distribution: str, name: str):
    def make() -> VarianceScaling:
        return VarianceScaling(scale, mode, distribution, name)
    make.__doc__ = f"{name}: variance {scale} / {mode}, {distribution}."
    return make


glorot_uniform = _scaling(1.0, "fan_avg", "uniform", "glorot_uniform")
glorot_normal = _scaling(1.0, "fan_avg", "normal", "glorot_normal")
he_uniform = _scaling(2.0, "fan_in", "uniform", "he_uniform")
he_normal = _scaling(2.0, "fan_in", "normal", "he_normal")
lecun_uniform = _scaling(1.0, "fan_in", "uniform", "lecun_uniform")
lecun_normal = _scaling(1.0, "fan_in", "normal", "lecun_normal")

_FACTORIES: dict[str, Any] = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "uniform": Uniform, "normal": Normal,
    "orthogonal": Orthogonal,
    "glorot_uniform": glorot_uniform, "glorot_normal": glorot_normal,
    "he_uniform": he_uniform, "he_normal": he_normal,
    "lecun_uniform": lecun_uniform, "lecun_normal": lecun_normal,
}
_ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
            "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}
NAMES = tuple(_FACTORIES) + tuple(_ALIASES)


def get(spec: str | dict | Initializer) -> Initializer:
    """An initializer from a name ("he_normal"), a config dict ({"class": "constant",
    "value": 0.1}) or an Initializer (returned as is)."""
    if isinstance(spec, Initializer):
        return spec
    name, options = parse_spec(spec, "initializer", "an Initializer")
    factory = _FACTORIES.get(_ALIASES.get(name, name))
    if factory is None:
        raise ValueError(f"unknown initializer {name!r}; known: {', '.join(NAMES)}")
    try:
        return factory(**options)
    except TypeError as exc:
        raise ValueError(f"initializer {name!r}: bad options {options}: {exc}") from None


__all__ = ["NAMES", "Constant", "Initializer", "Normal", "Ones", "Orthogonal", "Uniform",
           "VarianceScaling", "Zeros", "get", "glorot_normal", "glorot_uniform", "he_normal",
           "he_uniform", "lecun_normal", "lecun_uniform"]
