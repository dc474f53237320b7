"""Fuzz: every function of ffnc.kernels with generated arguments, valid and broken.

Each example builds a valid call (tiny arrays of random shapes, empty ones included, float32
or float64), then usually breaks ONE argument: its type, dtype, shape or strides, a read-only
output, an output that is one of the inputs, NaN/Inf values, or a hyper-parameter from a pool
of good and bad values. Whether the call is still valid is decided here, cheaply, from the
documented contract; then the call must either succeed with numpy's result or raise the
documented exception (TypeError for a type or dtype, ValueError for a value, shape or layout)
whose message names the argument. Any other exception, a crash or a silent cast fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from conftest import count_case, fuzz
from hypothesis import given
from hypothesis import strategies as st

from ffnc import kernels

FLOATS = (np.float32, np.float64)
TOL = {np.float32: (2e-4, 2e-5), np.float64: (1e-9, 1e-12)}
FLOAT32_MAX = float(np.finfo(np.float32).max)

# ---- numpy references --------------------------------------------------------------------


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


_erf = np.vectorize(math.erf, otypes=[float])


def _gelu_cdf(x):
    return 0.5 * (1 + _erf(x / math.sqrt(2)))


ACT_FORWARD = {
    "identity": lambda x, a: x,
    "relu": lambda x, a: np.maximum(x, 0),
    "leaky_relu": lambda x, a: np.where(x > 0, x, a * x),
    "abs": lambda x, a: np.abs(x),
    "tanh": lambda x, a: np.tanh(x),
    "sigmoid": lambda x, a: _sigmoid(x),
    "softplus": lambda x, a: np.logaddexp(0, x),
    "hard_tanh": lambda x, a: np.clip(x, -1, 1),
    "elu": lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
    "gelu": lambda x, a: x * _gelu_cdf(x),
}
ACT_DERIVATIVE = {  # as a function of the forward input
    "identity": lambda x, a: np.ones_like(x),
    "relu": lambda x, a: (x > 0).astype(float),
    "leaky_relu": lambda x, a: np.where(x > 0, 1.0, a),
    "abs": lambda x, a: np.sign(x),
    "tanh": lambda x, a: 1 - np.tanh(x) ** 2,
    "sigmoid": lambda x, a: _sigmoid(x) * (1 - _sigmoid(x)),
    "softplus": lambda x, a: _sigmoid(x),
    "hard_tanh": lambda x, a: ((x > -1) & (x < 1)).astype(float),
    "elu": lambda x, a: np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0))),
    "gelu": lambda x, a: _gelu_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),
}
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}
MASKING = ("relu", "hard_tanh", "abs")  # their backward writes an exact 0 where masked


def _act_backward(act, g, z, alpha):
    """g * act'(z); where a masking activation's derivative is 0 the result is an exact 0,
    whatever g (an infinite g stays out, as in the kernels and PyTorch)."""
    deriv = ACT_DERIVATIVE[act](z, alpha)
    product = g * deriv
    return np.where(deriv == 0, 0.0, product) if act in MASKING else product


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _log_softmax(x):
    x = _f64(x)
    if x.shape[0] == 0:
        return x.copy()
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _scale(reduction, count):
    return (1.0 / count if count else 0.0) if reduction == "mean" else 1.0


# ---- generic machinery ------------------------------------------------------------------


@dataclass
class Call:
    """One kernel call: its arrays (passed positionally in `positional` order, the others by
    keyword), its scalar keywords, and the contract that decides validity."""

    fn: Callable
    arrays: dict[str, Any]
    scalars: dict[str, Any]
    positional: list[str]
    written: set[str]                     # arrays the kernel writes (must be writable)
    optional: set[str] = field(default_factory=set)   # arrays that may be None
    labels: set[str] = field(default_factory=set)     # integer class-label arrays
    shapes_ok: Callable[[dict], bool] = lambda a: True
    scalar_rules: dict[str, Callable[[Any, Any], type | None]] = field(default_factory=dict)
    inplace: set[tuple[str, str]] = field(default_factory=set)  # (output, input) that may alias
    ignored: Callable[[dict], set[str]] = lambda s: set()  # arrays the scalars make unused
    values_ok: Callable[[dict, dict], str | None] = lambda a, s: None  # data checks (NaN, range)
    reference: Callable[[dict, dict], Any] = lambda a, s: None
    result: Callable[[Any, dict], Any] = lambda r, a: r  # what to compare with the reference

    def run(self):
        args = [self.arrays[n] for n in self.positional]
        kwargs = {n: a for n, a in self.arrays.items() if n not in self.positional}
        return self.fn(*args, **kwargs, **self.scalars)


def _real_rule(low=None, strict=False, high=None, float32_limit=False, nonzero_f32=False):
    """A rule for a real hyper-parameter: None when valid, else the exception type."""
    def rule(value, dtype):
        if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            return TypeError
        try:
            v = float(value)
        except OverflowError:
            return ValueError
        if not math.isfinite(v):
            return ValueError
        if low is not None and (v < low or (strict and v == low)):
            return ValueError
        if high is not None and not v < high:
            return ValueError
        if float32_limit and dtype == np.float32:
            if abs(v) > FLOAT32_MAX:
                return ValueError
            if nonzero_f32 and np.float32(v) == 0:
                return ValueError
        return None
    return rule


def _flag_rule(value, dtype):
    return None if isinstance(value, (bool, np.bool_)) else TypeError


def _on(flag) -> bool:
    """A flag argument that is set (a valid bool that is True)."""
    return isinstance(flag, (bool, np.bool_)) and bool(flag)


ENUM_ERRORS = (TypeError, ValueError)  # a name outside an enumeration: either is right


def _choice_rule(*choices):
    def rule(value, dtype):
        return None if isinstance(value, str) and value in choices else ENUM_ERRORS
    return rule


SKIP = object()  # a reference that does not apply: the outcome is checked, not the values


def _step_rule(value, dtype):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return TypeError
    return None if 1 <= value < 2**63 else ValueError


SCALAR_POOL = [
    None, "1", "mean", "relu", b"1", [1.0], (), {}, True, False, np.bool_(True),
    1j, float("nan"), float("inf"), -float("inf"), object(),
    -1.0, -1, 0, 0.0, 1, 0.5, 0.999, 1.0, 2.0, 1e-50, 1e-300, 1e39, 1e300, 10**400, 2**63,
    np.float32(0.25), np.float64(0.5), np.int64(3), np.int8(1), np.float16(0.5), -0.0,
]
FLAG_POOL = [True, False, np.bool_(True), np.bool_(False), 0, 1, "yes", "", None, 1.0]


def _strided(a):
    """The same values in a non-contiguous view (when the shape allows one)."""
    if a.ndim == 0:
        return a
    wide = np.repeat(a, 2, axis=-1) if a.shape[-1] else np.empty(a.shape[:-1] + (0,), a.dtype)
    return wide[..., ::2]


def _other_shape(m, a):
    shape = list(a.shape)
    choice = m.integers(0, 3)
    if choice == 0 or not shape:
        shape.append(m.integers(1, 3))
    elif choice == 1:
        shape.pop()
    else:
        axis = m.integers(0, len(shape) - 1)
        shape[axis] = max(shape[axis] + m.choice([-1, 1, 2]), 0)
    return np.zeros(tuple(shape), a.dtype) if tuple(shape) != a.shape else np.zeros(
        tuple(shape) + (2,), a.dtype)


BAD_FLOAT_DTYPES = [np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex64, object]
INT_DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64]

MUTATIONS = ["none", "none", "type", "dtype", "noncontig", "readonly", "shape", "alias",
             "scalar", "scalar", "nan"]


def _mutate(mutation: str, m: Choices, call: Call,
            dtype) -> tuple[str, str | None, type | None]:
    """Applies `mutation` (usually breaking one argument of `call`, in place), its choices
    from `m`; returns (mutation, the argument, the expected exception type or None for a call
    that stays valid)."""
    present = [n for n, a in call.arrays.items() if a is not None]
    if call.values_ok(call.arrays, call.scalars) is not None:
        return "none", None, None  # the data is already wrong: that error comes first
    if mutation == "scalar":
        if not call.scalar_rules:
            return "none", None, None
        name = m.choice(sorted(call.scalar_rules))
        rule = call.scalar_rules[name]
        value = m.choice(FLAG_POOL if rule is _flag_rule else SCALAR_POOL)
        call.scalars[name] = value
        expected = rule(value, dtype)
        if expected is None and not call.shapes_ok(call.arrays):
            expected = ValueError  # e.g. a transpose flag the shapes no longer fit
        return mutation, name, expected
    if mutation == "nan":
        floats = [n for n in present if n not in call.labels and n not in call.written]
        if not floats:
            return "none", None, None
        name = m.choice(floats)
        a = call.arrays[name]
        if a.size:
            a = a.copy()
            a.flat[m.integers(0, a.size - 1)] = m.choice([np.nan, np.inf, -np.inf])
            call.arrays[name] = a
        return mutation, name, None
    if mutation == "alias":
        pairs = [(o, i) for o in call.written for i in present
                 if o != i and call.arrays.get(o) is not None and i not in call.labels
                 and call.arrays[i].shape == call.arrays[o].shape]
        if not pairs:
            return "none", None, None
        out, src = m.choice(sorted(pairs))
        call.arrays[out] = call.arrays[src]
        ignored = call.ignored(call.scalars)
        ok = (out, src) in call.inplace or call.arrays[src].size == 0 \
            or out in ignored or src in ignored
        return mutation, out, None if ok else ValueError
    if mutation == "none" or not present:
        return "none", None, None
    name = m.choice(present)
    a = call.arrays[name]
    expected = _mutate_array(m, call, dtype, mutation, name, a)
    return mutation, name, None if name in call.ignored(call.scalars) else expected


class Retyped:
    """The outcome of a valid dtype change: success, with results of that dtype."""

    def __init__(self, dtype) -> None:
        self.dtype = dtype


def _mutate_array(m, call: Call, dtype, mutation: str, name: str, a: np.ndarray):
    if mutation == "type":
        call.arrays[name] = m.choice(
            [a.tolist(), 1.5, "array", (1, 2)] + ([] if name in call.optional else [None]))
        return TypeError
    if mutation == "dtype":
        if name in call.labels:
            new = m.choice(INT_DTYPES + [np.float32, np.float64, np.bool_])
            call.arrays[name] = a.astype(new)
            return None if np.dtype(new).kind in "iu" else TypeError
        other = np.float64 if dtype == np.float32 else np.float32
        new = m.choice(BAD_FLOAT_DTYPES + [other])
        call.arrays[name] = a.astype(new)
        ignored = call.ignored(call.scalars)
        partners = [n for n, x in call.arrays.items() if x is not None and n != name
                    and n not in call.labels and n not in ignored]
        # the other float dtype is fine for an array that alone decides the dtype: the
        # result then has that dtype
        return TypeError if new is not other or partners else Retyped(other)
    if mutation == "noncontig":
        view = _strided(a)
        call.arrays[name] = view
        ok = view.flags.c_contiguous or name in call.labels
        return None if ok else ValueError
    if mutation == "readonly":
        a = a.copy()
        a.flags.writeable = False
        call.arrays[name] = a
        return ValueError if name in call.written else None
    # shape
    call.arrays[name] = _other_shape(m, a)
    if name in call.labels:
        call.arrays[name] = call.arrays[name].astype(np.int64)
    return None if call.shapes_ok(call.arrays) else ValueError


def _snapshot(call: Call) -> dict:
    return {n: (np.array(a, copy=True) if isinstance(a, np.ndarray) else a)
            for n, a in call.arrays.items()}


def _assert_close(actual, expected, dtype):
    rtol, atol = TOL[dtype]
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for x, e in zip(actual, expected, strict=True):
            _assert_close(x, e, dtype)
        return
    if expected is None:
        assert actual is None
        return
    if expected is SKIP:
        return
    if isinstance(actual, np.ndarray):
        assert actual.dtype == dtype, f"result dtype {actual.dtype}, expected {np.dtype(dtype)}"
        assert actual.shape == np.shape(expected)
        with np.errstate(over="ignore"):
            expected = _f64(np.asarray(expected).astype(dtype))  # what the dtype can hold
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(_f64(actual), _f64(expected), rtol=rtol, atol=atol,
                                   equal_nan=True)


def check(call: Call, dtype, mutation: str, name: str | None, expected: Any) -> None:
    """Runs the call; asserts the outcome the contract decides."""
    before = _snapshot(call)
    if isinstance(expected, Retyped):
        dtype, expected = expected.dtype, None
    if expected is None:
        problem = call.values_ok(before, call.scalars)
        if problem is not None:
            expected, name = ValueError, problem
    try:
        result = call.run()
    except (TypeError, ValueError, MemoryError) as exc:
        assert expected is not None, (
            f"{mutation} of {name!r} should be accepted, got {type(exc).__name__}: {exc}")
        assert isinstance(exc, expected), (
            f"{mutation} of {name!r}: expected {expected}, got "
            f"{type(exc).__name__}: {exc}")
        named = [name] + ([n for n in call.arrays] if mutation == "scalar"
                          and expected is ValueError and name.startswith("trans") else [])
        assert any(n in str(exc) for n in named), (
            f"{mutation} of {name!r}: the message does not name it: {exc}")
        return
    assert expected is None, (
        f"{mutation} of {name!r} should raise {expected}; the call returned "
        f"{type(result).__name__}")
    with np.errstate(all="ignore"):
        reference = call.reference(before, call.scalars)
    _assert_close(call.result(result, call.arrays), reference, dtype)


# ---- value generation -------------------------------------------------------------------

class Choices:
    """Choices from one numpy Generator whose seed hypothesis draws: the valid call is built
    from one seed, the mutation's choices (which argument, which bad value) from another.
    One draw each instead of dozens keeps a case cheap (hypothesis costs milliseconds per
    example and a fraction of one per draw)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def integers(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))

    def boolean(self) -> bool:
        return bool(self.rng.integers(2))


def _values(r, shape, dtype, scale=3.0):
    x = np.asarray(r.rng.normal(scale=scale, size=shape))
    if x.size and r.boolean():
        x.flat[0] = r.choice([0.0, 1.0, -1.0])  # kinks of relu/abs/hard_tanh
    return x.astype(dtype)


def _dim(r, low=0, high=4):
    return r.integers(low, high)


def _shape(r, min_dims=0, max_dims=3):
    return tuple(_dim(r) for _ in range(r.integers(min_dims, max_dims)))


def _out(r, like_shape, dtype):
    """An output argument: None (allocated by the kernel) or a fresh array."""
    return r.choice([None, "array"]) and np.full(like_shape, 7.0, dtype)


def _same(*names):
    def ok(a):
        shapes = [np.shape(a[n]) for n in names if a.get(n) is not None]
        return all(s == shapes[0] for s in shapes)
    return ok


def _activation(r):
    name = r.choice(kernels.ACTIVATIONS)
    alpha = r.choice([None, 0.0, 0.3, 2.0]) if name in DEFAULT_ALPHA else None
    return name, alpha


def _alpha_rule(activation):
    nonneg = _real_rule(low=0.0, float32_limit=True)

    def rule(value, dtype):
        if activation not in DEFAULT_ALPHA:
            return None if value is None else ValueError
        return None if value is None else nonneg(value, dtype)
    return rule


def _act_alpha(s):
    a = s.get("alpha")
    return DEFAULT_ALPHA.get(s["activation"], 0.0) if a is None else float(a)


ACTIVATION_RULE = _choice_rule(*kernels.ACTIVATIONS)


def _activation_rules(call_activation):
    return {"activation": ACTIVATION_RULE, "alpha": _alpha_rule(call_activation)}


def _fix_activation_rules(call: Call) -> None:
    """alpha's validity depends on the activation actually passed."""
    act = call.scalars.get("activation")
    if "alpha" in call.scalar_rules and isinstance(act, str):
        call.scalar_rules["alpha"] = _alpha_rule(act)


# ---- the kernels --------------------------------------------------------------------------

def make_activation_forward(r, dt):
    act, alpha = _activation(r)
    x = _values(r, _shape(r), dt)
    return Call(kernels.activation_forward, {"x": x, "out": _out(r, x.shape, dt)},
                {"activation": act, "alpha": alpha}, ["x"], {"out"}, {"out"},
                shapes_ok=_same("x", "out"), scalar_rules=_activation_rules(act),
                inplace={("out", "x")},
                reference=lambda a, s: ACT_FORWARD[s["activation"]](_f64(a["x"]), _act_alpha(s)))


def make_activation_backward(r, dt):
    act, alpha = _activation(r)
    shape = _shape(r)
    z = _values(r, shape, dt)
    a_val = DEFAULT_ALPHA.get(act, 0.0) if alpha is None else alpha
    saved = np.asarray(ACT_FORWARD[act](_f64(z), a_val)).astype(dt) \
        if kernels.activation_saves(act) == "output" else z
    g = _values(r, shape, dt, 1.0)

    def reference(a, s):
        if s["activation"] != act or _act_alpha(s) != a_val or not np.array_equal(
                a["saved"], saved, equal_nan=True):
            # saved was changed (a NaN) or means another thing: an output-based rule would
            # need the output of that other forward; the input-based rule applies as it is
            if kernels.activation_saves(s["activation"]) == "output":
                return SKIP
            return _act_backward(s["activation"], _f64(a["diff_y"]), _f64(a["saved"]),
                                 _act_alpha(s))
        return _act_backward(act, _f64(a["diff_y"]), _f64(z), _act_alpha(s))

    call = Call(kernels.activation_backward,
                {"diff_y": g, "saved": saved, "out": _out(r, shape, dt)},
                {"activation": act, "alpha": alpha}, ["diff_y", "saved"], {"out"}, {"out"},
                shapes_ok=_same("diff_y", "saved", "out"), scalar_rules=_activation_rules(act),
                inplace={("out", "diff_y"), ("out", "saved")}, reference=reference)
    return call


def make_activation_saves(r, dt):
    act, _ = _activation(r)
    return Call(lambda activation: kernels.activation_saves(activation), {}, {"activation": act},
                [], set(), scalar_rules={"activation": ACTIVATION_RULE},
                reference=lambda a, s: None,
                result=lambda r, a: None if r in ("input", "output") else r)


def _prelu_alpha(r, cols, dt):
    n = r.choice([1, cols]) if cols != 1 else 1
    return np.asarray(np.abs(_values(r, (n,), dt, 0.5)))


def _prelu_shapes(a):
    x = a.get("x") if a.get("x") is not None else a.get("diff_y")
    if x is None or np.ndim(x) != 2:
        return False
    for n in ("diff_y", "x", "out", "diff_x"):
        if a.get(n) is not None and np.shape(a[n]) != np.shape(x):
            return False
    al = a["alpha"]
    if np.ndim(al) != 1 or np.shape(al)[0] not in (1, np.shape(x)[1]):
        return False
    return a.get("diff_alpha") is None or np.shape(a["diff_alpha"]) == np.shape(al)


def make_prelu_forward(r, dt):
    rows, cols = _dim(r), _dim(r, 1)
    x = _values(r, (rows, cols), dt)
    alpha = _prelu_alpha(r, cols, dt)
    return Call(kernels.prelu_forward,
                {"x": x, "alpha": alpha, "out": _out(r, x.shape, dt)}, {}, ["x", "alpha"],
                {"out"}, {"out"}, shapes_ok=_prelu_shapes, inplace={("out", "x")},
                reference=lambda a, s: np.where(_f64(a["x"]) > 0, _f64(a["x"]),
                                                _f64(a["alpha"]) * _f64(a["x"])))


def make_prelu_backward(r, dt):
    rows, cols = _dim(r), _dim(r, 1)
    x = _values(r, (rows, cols), dt)
    g = _values(r, (rows, cols), dt, 1.0)
    alpha = _prelu_alpha(r, cols, dt)
    accumulate = r.boolean()
    diff_alpha = _values(r, alpha.shape, dt, 1.0) if accumulate or r.boolean() \
        else None

    def reference(a, s):
        xx, gg, al = _f64(a["x"]), _f64(a["diff_y"]), _f64(a["alpha"])
        dx = gg * np.where(xx > 0, 1.0, al)
        contrib = np.where(xx > 0, 0.0, gg * xx)  # positive x contributes nothing
        da = np.array([contrib.sum()]) if al.shape[0] == 1 else contrib.sum(axis=0)
        if _on(s["accumulate"]):
            da = da + _f64(a["diff_alpha"])
        return dx, da

    return Call(kernels.prelu_backward,
                {"diff_y": g, "x": x, "alpha": alpha, "diff_x": _out(r, x.shape, dt),
                 "diff_alpha": diff_alpha},
                {"accumulate": accumulate}, ["diff_y", "x", "alpha"], {"diff_x", "diff_alpha"},
                {"diff_x", "diff_alpha"}, shapes_ok=_prelu_shapes,
                scalar_rules={"accumulate": _flag_rule},
                inplace={("diff_x", "diff_y")}, reference=reference,
                values_ok=lambda a, s: "accumulate" if _on(s["accumulate"])
                and a["diff_alpha"] is None else None)


def make_bias_forward(r, dt):
    rows, cols = _dim(r), _dim(r)
    x = _values(r, (rows, cols), dt)

    def shapes(a):
        return (np.ndim(a["x"]) == 2 and np.shape(a["bias"]) == (np.shape(a["x"])[1],)
                and (a["out"] is None or np.shape(a["out"]) == np.shape(a["x"])))

    return Call(kernels.bias_forward,
                {"x": x, "bias": _values(r, (cols,), dt), "out": _out(r, x.shape, dt)},
                {}, ["x", "bias"], {"out"}, {"out"}, shapes_ok=shapes, inplace={("out", "x")},
                reference=lambda a, s: _f64(a["x"]) + _f64(a["bias"]))


def make_bias_backward(r, dt):
    rows, cols = _dim(r), _dim(r)
    g = _values(r, (rows, cols), dt)
    accumulate = r.boolean()
    out = _values(r, (cols,), dt) if accumulate or r.boolean() else None

    def shapes(a):
        return np.ndim(a["diff_y"]) == 2 and (
            a["out"] is None or np.shape(a["out"]) == (np.shape(a["diff_y"])[1],))

    def reference(a, s):
        total = _f64(a["diff_y"]).sum(axis=0)
        return total + _f64(a["out"]) if _on(s["accumulate"]) else total

    return Call(kernels.bias_backward, {"diff_y": g, "out": out}, {"accumulate": accumulate},
                ["diff_y"], {"out"}, {"out"}, shapes_ok=shapes,
                scalar_rules={"accumulate": _flag_rule}, reference=reference,
                values_ok=lambda a, s: "accumulate" if _on(s["accumulate"])
                and a["out"] is None else None)


def _gemm_dims(a):
    aa, bb = a["a"], a["b"]
    if np.ndim(aa) != 2 or np.ndim(bb) != 2:
        return None
    return aa, bb


def make_gemm(r, dt):
    m, k, n = _dim(r), _dim(r), _dim(r)
    ta, tb = r.boolean(), r.boolean()
    a = _values(r, (k, m) if ta else (m, k), dt)
    b = _values(r, (n, k) if tb else (k, n), dt)
    beta = r.choice([0.0, 0.0, 1.0, -0.5])
    out = _values(r, (m, n), dt) if beta != 0 or r.boolean() else None
    alpha = r.choice([1.0, 1.0, -2.0, 0.5])

    def op(x, t):
        return x.T if _on(t) else x

    def shapes(arr):
        d = _gemm_dims(arr)
        if d is None:
            return False
        s = call.scalars
        ea, eb = op(d[0], s["trans_a"]), op(d[1], s["trans_b"])
        if ea.shape[1] != eb.shape[0]:
            return False
        return arr["out"] is None or np.shape(arr["out"]) == (ea.shape[0], eb.shape[1])

    def reference(arr, s):
        prod = s["alpha"] * (op(_f64(arr["a"]), s["trans_a"]) @ op(_f64(arr["b"]),
                                                                  s["trans_b"]))
        if s["beta"] != 0:
            prod = prod + s["beta"] * _f64(arr["out"])
        return prod

    real = _real_rule(float32_limit=True)  # applied in the arrays' dtype
    call = Call(kernels.gemm, {"a": a, "b": b, "out": out},
                {"trans_a": ta, "trans_b": tb, "alpha": alpha, "beta": beta}, ["a", "b"],
                {"out"}, {"out"}, shapes_ok=shapes,
                scalar_rules={"trans_a": _flag_rule, "trans_b": _flag_rule, "alpha": real,
                              "beta": real},
                reference=reference,
                values_ok=lambda arr, s: "beta" if s["beta"] != 0 and arr["out"] is None
                else None)
    return call


def _dense_call(r, dt):
    m, k, n = _dim(r), _dim(r), _dim(r)
    tw = r.boolean()
    act, alpha = _activation(r)
    return m, k, n, tw, act, alpha


def _dense_weights(w, tw):
    return w.T if _on(tw) else w


def make_dense(r, dt):
    m, k, n, tw, act, alpha = _dense_call(r, dt)
    x = _values(r, (m, k), dt)
    w = _values(r, (n, k) if tw else (k, n), dt, 1.0)
    bias = r.choice([None, "b"]) and _values(r, (n,), dt)
    pre = r.choice([None, "p"]) and np.zeros((m, n), dt)

    def shapes(a):
        x, w = a["x"], a["weights"]
        if np.ndim(x) != 2 or np.ndim(w) != 2:
            return False
        ew = _dense_weights(w, call.scalars["trans_weights"])
        if ew.shape[0] != x.shape[1]:
            return False
        mn = (x.shape[0], ew.shape[1])
        return ((a["bias"] is None or np.shape(a["bias"]) == (mn[1],))
                and (a["out"] is None or np.shape(a["out"]) == mn)
                and (a["pre_activation"] is None or np.shape(a["pre_activation"]) == mn))

    def reference(a, s):
        z = _f64(a["x"]) @ _dense_weights(_f64(a["weights"]), s["trans_weights"])
        if a["bias"] is not None:
            z = z + _f64(a["bias"])
        return ACT_FORWARD[s["activation"]](z, _act_alpha(s))

    call = Call(kernels.dense, {"x": x, "weights": w, "bias": bias,
                                "out": _out(r, (m, n), dt), "pre_activation": pre},
                {"activation": act, "alpha": alpha, "trans_weights": tw},
                ["x", "weights", "bias"], {"out", "pre_activation"},
                {"bias", "out", "pre_activation"}, shapes_ok=shapes,
                scalar_rules={**_activation_rules(act), "trans_weights": _flag_rule},
                reference=reference)
    return call


def make_dense_backward(r, dt):
    m, k, n, tw, act, alpha = _dense_call(r, dt)
    x = _values(r, (m, k), dt)
    w = _values(r, (n, k) if tw else (k, n), dt, 1.0)
    z = _values(r, (m, n), dt)
    a_val = DEFAULT_ALPHA.get(act, 0.0) if alpha is None else alpha
    saved = np.asarray(ACT_FORWARD[act](_f64(z), a_val)).astype(dt) \
        if kernels.activation_saves(act) == "output" else z
    g = _values(r, (m, n), dt, 1.0)
    bias, need_dx, accumulate = r.boolean(), r.boolean(), r.boolean()
    dw = _values(r, w.shape, dt) if accumulate or r.boolean() else None
    db = _values(r, (n,), dt) if bias and (accumulate or r.boolean()) else None
    dx = r.choice([None, "x"]) and np.zeros((m, k), dt) if need_dx else None

    def shapes(a):
        x, w = a["x"], a["weights"]
        if any(np.ndim(a[q]) != 2 for q in ("x", "weights", "diff_y", "saved")):
            return False
        ew = _dense_weights(w, call.scalars["trans_weights"])
        if ew.shape[0] != x.shape[1]:
            return False
        mn = (x.shape[0], ew.shape[1])
        return (np.shape(a["diff_y"]) == mn and np.shape(a["saved"]) == mn
                and (a["diff_weights"] is None or np.shape(a["diff_weights"]) == np.shape(w))
                and (a["diff_bias"] is None or not call.scalars["bias"]
                     or np.shape(a["diff_bias"]) == (mn[1],))
                and (a["diff_x"] is None or not call.scalars["need_diff_x"]
                     or np.shape(a["diff_x"]) == np.shape(x)))

    def reference(a, s):
        if s["activation"] != act or not np.array_equal(a["saved"], saved, equal_nan=True):
            return SKIP  # saved changed: the outcome is checked, not the values
        xx, ww = _f64(a["x"]), _f64(a["weights"])
        d = _act_backward(act, _f64(a["diff_y"]), _f64(z), _act_alpha(s))
        eff = _dense_weights(ww, s["trans_weights"])
        dweff = xx.T @ d
        dwr = dweff.T if _on(s["trans_weights"]) else dweff
        dbr = d.sum(axis=0) if s["bias"] else None
        if s["accumulate"]:
            dwr = dwr + _f64(a["diff_weights"])
            dbr = dbr + _f64(a["diff_bias"]) if dbr is not None else None
        dxr = d @ eff.T if s["need_diff_x"] else None
        return dxr, dwr, dbr

    def values_ok(a, s):
        if _on(s["accumulate"]) and (a["diff_weights"] is None
                                     or (_on(s["bias"]) and a["diff_bias"] is None)):
            return "accumulate"
        return None

    call = Call(kernels.dense_backward,
                {"diff_y": g, "x": x, "weights": w, "saved": saved, "diff_x": dx,
                 "diff_weights": dw, "diff_bias": db},
                {"activation": act, "alpha": alpha, "trans_weights": tw, "bias": bias,
                 "need_diff_x": need_dx, "accumulate": accumulate},
                ["diff_y", "x", "weights", "saved"], {"diff_x", "diff_weights", "diff_bias"},
                {"diff_x", "diff_weights", "diff_bias"}, shapes_ok=shapes,
                scalar_rules={**_activation_rules(act), "trans_weights": _flag_rule,
                              "bias": _flag_rule, "need_diff_x": _flag_rule,
                              "accumulate": _flag_rule},
                reference=reference, values_ok=values_ok,
                ignored=lambda s: ({"diff_bias"} if not _on(s["bias"]) else set())
                | ({"diff_x"} if not _on(s["need_diff_x"]) else set()))
    return call


REDUCTION_RULE = _choice_rule("mean", "sum")


def _diff_loss_rule(call: Call, count: Callable[[dict], int]):
    """diff_loss: a finite real whose product with the reduction's scale (applied in the
    arrays' dtype) fits that dtype."""
    real = _real_rule()

    def rule(value, dtype):
        error = real(value, dtype)
        if error is not None:
            return error
        k = _scale(call.scalars["reduction"], count(call.arrays))
        return ValueError if dtype == np.float32 and abs(float(value) * k) > FLOAT32_MAX \
            else None
    return rule


def _labels_for(r, rows, classes):
    seed = r.integers(0, 2**32 - 1)
    return np.random.default_rng(seed).integers(0, classes, rows)


def _labels_ok(name):
    def ok(a, s):
        lab = a["labels"]
        logits = a[name]
        if isinstance(lab, np.ndarray) and lab.size and np.ndim(logits) == 2 and (
                (lab < 0).any() or (lab >= np.shape(logits)[1]).any()):
            return "labels"
        return None
    return ok


def _softmax_shapes(first):
    def ok(a):
        x = a[first]
        if np.ndim(x) != 2 or np.shape(x)[1] == 0:
            return False
        if np.shape(a["labels"]) != (np.shape(x)[0],):
            return False
        return all(a.get(n) is None or np.shape(a[n]) == np.shape(x) for n in ("probs", "out"))
    return ok


def make_softmax_cross_entropy(r, dt):
    rows, classes = _dim(r), _dim(r, 1)
    x = _values(r, (rows, classes), dt)
    labels = _labels_for(r, rows, classes)
    if rows and r.integers(0, 5) == 0:
        labels[r.integers(0, rows - 1)] = r.choice([-1, classes, 2**40])

    def reference(a, s):
        ls = _log_softmax(a["logits"])
        lab = np.asarray(a["labels"]).astype(np.int64)
        loss = -ls[np.arange(len(lab)), lab].sum() * _scale(s["reduction"], len(lab))
        return loss, np.exp(ls)

    return Call(kernels.softmax_cross_entropy,
                {"logits": x, "labels": labels, "probs": _out(r, x.shape, dt)},
                {"reduction": r.choice(["mean", "sum"])}, ["logits", "labels"],
                {"probs"}, {"probs"}, {"labels"}, shapes_ok=_softmax_shapes("logits"),
                scalar_rules={"reduction": REDUCTION_RULE}, inplace={("probs", "logits")},
                values_ok=_labels_ok("logits"), reference=reference)


def make_softmax_cross_entropy_backward(r, dt):
    rows, classes = _dim(r), _dim(r, 1)
    p = _values(r, (rows, classes), dt, 0.5)
    labels = _labels_for(r, rows, classes)
    if rows and r.integers(0, 5) == 0:
        labels[0] = r.choice([-1, classes])

    def reference(a, s):
        lab = np.asarray(a["labels"]).astype(np.int64)
        onehot = np.zeros(np.shape(a["probs"]))
        onehot[np.arange(len(lab)), lab] = 1
        return (float(s["diff_loss"]) * _scale(s["reduction"], len(lab))
                * (_f64(a["probs"]) - onehot))

    call = Call(kernels.softmax_cross_entropy_backward,
                {"probs": p, "labels": labels, "out": _out(r, p.shape, dt)},
                {"reduction": r.choice(["mean", "sum"]),
                 "diff_loss": r.choice([1.0, 0.5, -2.0])},
                ["probs", "labels"], {"out"}, {"out"}, {"labels"},
                shapes_ok=_softmax_shapes("probs"),
                scalar_rules={"reduction": REDUCTION_RULE},
                inplace={("out", "probs")}, values_ok=_labels_ok("probs"), reference=reference)
    call.scalar_rules["diff_loss"] = _diff_loss_rule(call, lambda a: np.shape(a["probs"])[0])
    return call


def _matrix_shapes(*names):
    def ok(a):
        first = a[names[0]]
        if np.ndim(first) != 2 or np.shape(first)[1] == 0:
            return False
        return all(a.get(n) is None or np.shape(a[n]) == np.shape(first) for n in names)
    return ok


def make_log_softmax(r, dt):
    x = _values(r, (_dim(r), _dim(r, 1)), dt)
    return Call(kernels.log_softmax, {"x": x, "out": _out(r, x.shape, dt)}, {}, ["x"],
                {"out"}, {"out"}, shapes_ok=_matrix_shapes("x", "out"), inplace={("out", "x")},
                reference=lambda a, s: _log_softmax(a["x"]))


def make_log_softmax_backward(r, dt):
    shape = (_dim(r), _dim(r, 1))
    g, y = _values(r, shape, dt), _values(r, shape, dt)

    def reference(a, s):
        gg, yy = _f64(a["diff_y"]), _f64(a["y"])
        return gg - np.exp(yy) * gg.sum(axis=1, keepdims=True)

    return Call(kernels.log_softmax_backward, {"diff_y": g, "y": y, "out": _out(r, shape, dt)},
                {}, ["diff_y", "y"], {"out"}, {"out"},
                shapes_ok=_matrix_shapes("diff_y", "y", "out"), inplace={("out", "diff_y")},
                reference=reference)


def _bce_terms(z, y):
    return np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))


PAIRS = {  # name -> (forward, backward, first, second, per-element term, gradient term)
    "bce": (kernels.bce_with_logits, kernels.bce_with_logits_backward, "logits", "targets",
            _bce_terms, lambda z, y: _sigmoid(z) - y),
    "mse": (kernels.mse, kernels.mse_backward, "pred", "target",
            lambda p, t: (p - t) ** 2, lambda p, t: 2 * (p - t)),
    "l1": (kernels.l1, kernels.l1_backward, "pred", "target",
           lambda p, t: np.abs(p - t), lambda p, t: np.sign(p - t)),
}


def _targets_ok(name, second):
    def ok(a, s):
        if name != "bce":
            return None
        t = a[second]
        if isinstance(t, np.ndarray) and t.size and not ((t >= 0) & (t <= 1)).all():
            return second
        return None
    return ok


def _make_pair(name, backward):
    fwd, bwd, first, second, term, grad = PAIRS[name]

    def make(r, dt):
        shape = _shape(r)
        p = _values(r, shape, dt)
        t = _values(r, shape, dt)
        if name == "bce":
            t = np.asarray(np.abs(t) / (1 + np.abs(t)) if r.integers(0, 5) else t)
            t = t.astype(dt)
        scalars = {"reduction": r.choice(["mean", "sum"])}
        rules = {"reduction": REDUCTION_RULE}
        arrays = {first: p, second: t}
        if backward:
            scalars["diff_loss"] = r.choice([1.0, 0.25, -3.0])
            arrays["out"] = _out(r, shape, dt)

        def reference(a, s):
            pp, tt = _f64(a[first]), _f64(a[second])
            k = _scale(s["reduction"], pp.size)
            if backward:
                return float(s["diff_loss"]) * k * grad(pp, tt)
            return float(term(pp, tt).sum() * k)

        call = Call(bwd if backward else fwd, arrays, scalars, [first, second],
                    {"out"} if backward else set(), {"out"} if backward else set(),
                    shapes_ok=_same(first, second, "out"), scalar_rules=rules,
                    inplace={("out", first), ("out", second)},
                    values_ok=_targets_ok(name, second), reference=reference)
        if backward:
            call.scalar_rules["diff_loss"] = _diff_loss_rule(call, lambda a: np.size(a[first]))
        return call
    return make


def _optim_state(r, shape, dt, nonneg=False):
    v = _values(r, shape, dt, 0.5)
    return np.asarray(np.abs(v)) if nonneg else v


LR_RULE = _real_rule(low=0.0, float32_limit=True)
DECAY_RULE = _real_rule(low=0.0, float32_limit=True)
EPS_RULE = _real_rule(low=0.0, strict=True, float32_limit=True, nonzero_f32=True)
RATE_RULE = _real_rule(low=0.0, high=1.0)


def make_sgd_update(r, dt):
    shape = _shape(r)

    def reference(a, s):
        p, g = _f64(a["param"]), _f64(a["grad"])
        return None, p - float(s["lr"]) * (g + float(s["weight_decay"]) * p)

    return Call(kernels.sgd_update,
                {"param": _values(r, shape, dt), "grad": _values(r, shape, dt)},
                {"lr": r.choice([0.1, 0.0, 2.0]),
                 "weight_decay": r.choice([0.0, 0.01])},
                ["param", "grad"], {"param"}, shapes_ok=_same("param", "grad"),
                scalar_rules={"lr": LR_RULE, "weight_decay": DECAY_RULE},
                reference=reference, result=lambda r, a: (r, a["param"]))


def _optim_ref_wrap(fn):
    return lambda a, s: (None, fn(a, s))


def make_momentum_update(r, dt):
    shape = _shape(r)

    def reference(a, s):
        p, g, v = _f64(a["param"]), _f64(a["grad"]), _f64(a["velocity"])
        d = g + s["weight_decay"] * p
        v = s["momentum"] * v + d
        step = d + s["momentum"] * v if s["nesterov"] else v
        return p - s["lr"] * step, v

    return Call(kernels.momentum_update,
                {"param": _values(r, shape, dt), "grad": _values(r, shape, dt),
                 "velocity": _optim_state(r, shape, dt)},
                {"lr": r.choice([0.1, 0.5]),
                 "momentum": r.choice([0.9, 0.0]),
                 "weight_decay": r.choice([0.0, 0.01]),
                 "nesterov": r.boolean()},
                ["param", "grad", "velocity"], {"param", "velocity"},
                shapes_ok=_same("param", "grad", "velocity"),
                scalar_rules={"lr": LR_RULE, "momentum": RATE_RULE, "weight_decay": DECAY_RULE,
                              "nesterov": _flag_rule},
                reference=_optim_ref_wrap(reference),
                result=lambda r, a: (r, (a["param"], a["velocity"])))


def make_adam_update(r, dt):
    shape = _shape(r)

    def reference(a, s):
        p, g = _f64(a["param"]), _f64(a["grad"])
        m, v = _f64(a["m"]), _f64(a["v"])
        b1, b2, t = s["beta1"], s["beta2"], int(s["step"])
        if s["decoupled"]:
            p = p - s["lr"] * s["weight_decay"] * p
        else:
            g = g + s["weight_decay"] * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        return p - s["lr"] * mhat / (np.sqrt(vhat) + s["eps"]), m, v

    return Call(kernels.adam_update,
                {"param": _values(r, shape, dt), "grad": _values(r, shape, dt),
                 "m": _optim_state(r, shape, dt), "v": _optim_state(r, shape, dt, True)},
                {"step": r.choice([1, 2, 10]), "lr": 1e-2,
                 "beta1": r.choice([0.9, 0.0]), "beta2": 0.999,
                 "eps": r.choice([1e-8, 1e-3]),
                 "weight_decay": r.choice([0.0, 0.1]),
                 "decoupled": r.boolean()},
                ["param", "grad", "m", "v"], {"param", "m", "v"},
                shapes_ok=_same("param", "grad", "m", "v"),
                scalar_rules={"step": _step_rule, "lr": LR_RULE, "beta1": RATE_RULE,
                              "beta2": RATE_RULE, "eps": EPS_RULE, "weight_decay": DECAY_RULE,
                              "decoupled": _flag_rule},
                reference=_optim_ref_wrap(reference),
                result=lambda r, a: (r, (a["param"], a["m"], a["v"])))


def make_rmsprop_update(r, dt):
    shape = _shape(r)
    mu = r.choice([0.0, 0.5])
    centered = r.boolean()

    def reference(a, s):
        p, g, sq = _f64(a["param"]), _f64(a["grad"]), _f64(a["square_avg"])
        al = s["alpha"]
        g = g + s["weight_decay"] * p
        sq = al * sq + (1 - al) * g * g
        avg = None
        if s["centered"]:
            avg = al * _f64(a["grad_avg"]) + (1 - al) * g
            den = np.sqrt(np.maximum(sq - avg * avg, 0)) + s["eps"]
        else:
            den = np.sqrt(sq) + s["eps"]
        buf = None
        if s["momentum"] > 0:
            buf = s["momentum"] * _f64(a["momentum_buffer"]) + g / den
            p = p - s["lr"] * buf
        else:
            p = p - s["lr"] * g / den
        return p, sq, buf, avg

    def result(r, a):
        s = call.scalars
        return (r, (a["param"], a["square_avg"],
                    a["momentum_buffer"] if s["momentum"] > 0 else None,
                    a["grad_avg"] if s["centered"] else None))

    def values_ok(a, s):
        if s["momentum"] > 0 and a["momentum_buffer"] is None:
            return "momentum_buffer"
        if _on(s["centered"]) and a["grad_avg"] is None:
            return "grad_avg"
        return None

    call = Call(kernels.rmsprop_update,
                {"param": _values(r, shape, dt), "grad": _values(r, shape, dt),
                 "square_avg": _optim_state(r, shape, dt, True),
                 "momentum_buffer": _optim_state(r, shape, dt) if mu > 0 or r.boolean()
                 else None,
                 "grad_avg": np.asarray(_optim_state(r, shape, dt) * 0.1)
                 if centered or r.boolean() else None},
                {"lr": 1e-2, "alpha": r.choice([0.99, 0.5]), "eps": 1e-6,
                 "weight_decay": r.choice([0.0, 0.1]), "momentum": mu,
                 "centered": centered},
                ["param", "grad", "square_avg", "momentum_buffer", "grad_avg"],
                {"param", "square_avg", "momentum_buffer", "grad_avg"},
                {"momentum_buffer", "grad_avg"},
                shapes_ok=lambda a: _same("param", "grad", "square_avg")(a) and all(
                    a[n] is None or np.shape(a[n]) == np.shape(a["param"])
                    or (n == "momentum_buffer" and not (call.scalars["momentum"] > 0))
                    or (n == "grad_avg" and not _on(call.scalars["centered"]))
                    for n in ("momentum_buffer", "grad_avg")),
                scalar_rules={"lr": LR_RULE, "alpha": RATE_RULE, "eps": EPS_RULE,
                              "weight_decay": DECAY_RULE, "momentum": RATE_RULE,
                              "centered": _flag_rule},
                reference=lambda a, s: (None, reference(a, s)), result=result,
                values_ok=values_ok,
                ignored=lambda s: ({"momentum_buffer"} if not _real_is_positive(s["momentum"])
                                   else set())
                | ({"grad_avg"} if not _on(s["centered"]) else set()))
    return call


def _real_is_positive(v):
    return RATE_RULE(v, None) is None and float(v) > 0


def _norm(x):
    x = _f64(x)
    if np.isnan(x).any():
        return math.nan
    if np.isinf(x).any():
        return math.inf
    return float(np.sqrt((x * x).sum()))


def make_global_norm(r, dt):
    return Call(kernels.global_norm, {"x": _values(r, _shape(r), dt)}, {}, ["x"], set(),
                reference=lambda a, s: _norm(a["x"]))


def make_clip_by_global_norm(r, dt):
    g = _values(r, _shape(r), dt)

    def reference(a, s):
        n = _norm(a["grad"])
        gg = _f64(a["grad"])
        if math.isfinite(n) and n > s["max_norm"]:
            gg = gg * float(np.asarray(float(s["max_norm"]) / n, dtype=a["grad"].dtype))
        return n, gg

    return Call(kernels.clip_by_global_norm, {"grad": g},
                {"max_norm": r.choice([1.0, 0.1, 100.0])}, ["grad"], {"grad"},
                scalar_rules={"max_norm": _real_rule(low=0.0, strict=True)},
                reference=reference, result=lambda r, a: (r, a["grad"]))


KERNELS = {
    "activation_forward": make_activation_forward,
    "activation_backward": make_activation_backward,
    "activation_saves": make_activation_saves,
    "prelu_forward": make_prelu_forward,
    "prelu_backward": make_prelu_backward,
    "bias_forward": make_bias_forward,
    "bias_backward": make_bias_backward,
    "gemm": make_gemm,
    "dense": make_dense,
    "dense_backward": make_dense_backward,
    "softmax_cross_entropy": make_softmax_cross_entropy,
    "softmax_cross_entropy_backward": make_softmax_cross_entropy_backward,
    "log_softmax": make_log_softmax,
    "log_softmax_backward": make_log_softmax_backward,
    "bce_with_logits": _make_pair("bce", False),
    "bce_with_logits_backward": _make_pair("bce", True),
    "mse": _make_pair("mse", False),
    "mse_backward": _make_pair("mse", True),
    "l1": _make_pair("l1", False),
    "l1_backward": _make_pair("l1", True),
    "sgd_update": make_sgd_update,
    "momentum_update": make_momentum_update,
    "adam_update": make_adam_update,
    "rmsprop_update": make_rmsprop_update,
    "global_norm": make_global_norm,
    "clip_by_global_norm": make_clip_by_global_norm,
}


def test_every_kernel_is_fuzzed():
    assert set(KERNELS) == set(kernels.__all__) - {"ACTIVATIONS"}


CASES_PER_EXAMPLE = 6
# one generated case: the seed of the valid call, the mutation, the seed of its choices
cases = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.sampled_from(MUTATIONS),
                           st.integers(0, 2**32 - 1)),
                 min_size=CASES_PER_EXAMPLE, max_size=CASES_PER_EXAMPLE)


@pytest.mark.parametrize("name", sorted(KERNELS))
@fuzz(30)
@given(dtype=st.sampled_from(FLOATS), cases=cases)
def test_kernel_accepts_valid_and_names_bad_arguments(name, dtype, cases):
    for seed, mutation, choice_seed in cases:
        count_case()
        call = KERNELS[name](Choices(seed), dtype)
        mutation, arg, expected = _mutate(mutation, Choices(choice_seed), call, dtype)
        _fix_activation_rules(call)
        if mutation == "scalar" and arg == "activation" and expected is None and \
                "alpha" in call.scalar_rules:
            # a valid activation that takes no alpha while one is given: an error naming alpha
            bad_alpha = call.scalar_rules["alpha"](call.scalars.get("alpha"), dtype)
            if bad_alpha is not None:
                expected, arg = bad_alpha, "alpha"
        check(call, dtype, mutation, arg, expected)


# ---- absurd sizes ---------------------------------------------------------------------------

@fuzz(40)
@given(m=st.sampled_from([2**20, 2**31, 2**40]), n=st.sampled_from([2**20, 2**33, 2**40]),
       dtype=st.sampled_from(FLOATS), which=st.sampled_from(["gemm", "dense"]))
def test_outputs_larger_than_memory_are_refused_before_allocation(m, n, dtype, which):
    """Zero-size inputs can ask for an enormous product: a MemoryError (or ValueError) naming
    the output, raised before any allocation is attempted."""
    a = np.empty((m, 0), dtype)
    b = np.empty((0, n), dtype)
    with pytest.raises((MemoryError, ValueError), match="out"):
        if which == "gemm":
            kernels.gemm(a, b)
        else:
            kernels.dense(a, b)


# ---- what the fuzzing found, pinned down ----------------------------------------------------

@pytest.mark.parametrize("shared", [True, False])
def test_prelu_backward_in_place_gives_the_out_of_place_slope_gradient(shared):
    """diff_x may be diff_y itself; the slope gradient used to be summed from diff_y after
    diff_x had overwritten it."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 4))
    g = rng.normal(size=(5, 4))
    alpha = np.full(1 if shared else 4, 0.25)
    dx, da = kernels.prelu_backward(g.copy(), x, alpha)
    g_in_place = g.copy()
    dx2, da2 = kernels.prelu_backward(g_in_place, x, alpha, diff_x=g_in_place)
    assert dx2 is g_in_place
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(da2, da)


def test_flags_take_bools_only_and_scalars_must_fit_the_dtype():
    a = np.ones((2, 2), np.float32)
    for flag in ("yes", 0, None):
        with pytest.raises(TypeError, match="trans_a"):
            kernels.gemm(a, a, trans_a=flag)
        with pytest.raises(TypeError, match="accumulate"):
            kernels.bias_backward(a, out=np.ones(2, np.float32), accumulate=flag)
    with pytest.raises(ValueError, match="alpha"):
        kernels.gemm(a, a, alpha=1e39)  # would be inf in float32; exact results are finite
    kernels.gemm(a.astype(np.float64), a.astype(np.float64), alpha=1e39)
    with pytest.raises(ValueError, match="lr"):
        kernels.sgd_update(a, a.copy(), lr=10**400)  # was an OverflowError
