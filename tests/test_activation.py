"""Activation, prelu and bias kernels against float64 numpy references."""

import math

import numpy as np
import pytest
from conftest import assert_close

import ffnc
from ffnc import kernels

SQRT1_2 = 1 / math.sqrt(2)
_erf = np.vectorize(math.erf)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _gelu_cdf(x):
    return 0.5 * (1 + _erf(x * SQRT1_2))


# name -> (forward reference, derivative reference as a function of x), alpha where it applies
REFERENCES = {
    "identity": (lambda x, a: x, lambda x, a: np.ones_like(x)),
    "relu": (lambda x, a: np.maximum(x, 0), lambda x, a: (x > 0).astype(float)),
    "leaky_relu": (lambda x, a: np.where(x > 0, x, a * x), lambda x, a: np.where(x > 0, 1.0, a)),
    "abs": (lambda x, a: np.abs(x), lambda x, a: np.sign(x)),
    "tanh": (lambda x, a: np.tanh(x), lambda x, a: 1 - np.tanh(x) ** 2),
    "sigmoid": (lambda x, a: _sigmoid(x), lambda x, a: _sigmoid(x) * (1 - _sigmoid(x))),
    "softplus": (lambda x, a: np.logaddexp(0, x), lambda x, a: _sigmoid(x)),
    "hard_tanh": (lambda x, a: np.clip(x, -1, 1), lambda x, a: ((x > -1) & (x < 1)).astype(float)),
    "elu": (lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
            lambda x, a: np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0)))),
    "gelu": (lambda x, a: x * _gelu_cdf(x),
             lambda x, a: _gelu_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)),
}
ALPHA = {"leaky_relu": 0.07, "elu": 0.8}
SHAPES = [(1,), (7,), (3, 5), (37, 53), (300, 129)]


def test_every_activation_has_a_reference():
    assert set(REFERENCES) == set(kernels.ACTIVATIONS)


def _inputs(rng, shape, dtype):
    x = rng.normal(scale=3, size=shape)
    x.flat[0] = 0.0  # the non-differentiable point of relu/abs
    if x.size > 3:
        x.flat[1], x.flat[2] = 1.0, -1.0  # the kinks of hard tanh
    return x.astype(dtype)


def _saved(name, x, y):
    return y if kernels.activation_saves(name) == "output" else x


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_backward_match_numpy(isa, dtype, rng, name, shape):
    alpha = ALPHA.get(name)
    fwd, deriv = REFERENCES[name]
    x = _inputs(rng, shape, dtype)
    y = kernels.activation_forward(x, name, alpha=alpha)
    assert y.dtype == dtype and y.shape == x.shape
    x64 = x.astype(np.float64)
    assert_close(y, fwd(x64, alpha), dtype)

    g = rng.normal(size=shape).astype(dtype)
    dx = kernels.activation_backward(g, _saved(name, x, y), name, alpha=alpha)
    # The output-based backward of float32 sees y rounded to float32: allow for that.
    assert_close(dx, g.astype(np.float64) * deriv(x64, alpha), dtype, scale=4)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_backward_matches_finite_differences_float64(name, rng):
    """The derivative convention aside, the kernels' backward is the derivative of their forward."""
    alpha = ALPHA.get(name)
    x = rng.normal(scale=2, size=200)
    x = x[np.abs(x) > 1e-3]
    x = x[np.abs(np.abs(x) - 1) > 1e-3]  # away from the kinks
    h = 1e-6
    numeric = (kernels.activation_forward(x + h, name, alpha=alpha)
               - kernels.activation_forward(x - h, name, alpha=alpha)) / (2 * h)
    y = kernels.activation_forward(x, name, alpha=alpha)
    analytic = kernels.activation_backward(np.ones_like(x), _saved(name, x, y), name, alpha=alpha)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_nan_propagates_and_extremes_stay_finite(isa, dtype, name):
    alpha = ALPHA.get(name)
    big = np.finfo(dtype).max / 4
    x = np.array([np.nan, -big, big, -1e4, 1e4, 0.0], dtype=dtype)
    with np.errstate(all="ignore"):
        y = kernels.activation_forward(x, name, alpha=alpha)
    assert np.isnan(y[0])
    expected = REFERENCES[name][0](x[1:].astype(np.float64), alpha)
    finite = np.isfinite(expected.astype(dtype))
    assert np.all(np.isfinite(y[1:][finite]))
    g = np.full_like(x, np.nan)
    dx = kernels.activation_backward(g, _saved(name, x, y), name, alpha=alpha)
    assert dx.shape == x.shape  # masked positions may be 0; the rest must be NaN
    with np.errstate(all="ignore"):
        deriv = REFERENCES[name][1](np.nan_to_num(x.astype(np.float64)), alpha)
    assert np.all(np.isnan(dx[1:][deriv[1:] != 0]))


def test_in_place_forward_and_backward(dtype, rng):
    x = rng.normal(size=(4, 5)).astype(dtype)
    expected = np.tanh(x.astype(np.float64))
    y = kernels.activation_forward(x, "tanh", out=x)
    assert y is x
    assert_close(x, expected, dtype)
    g = np.ones_like(x)
    kernels.activation_backward(g, x, "tanh", out=g)
    assert_close(g, 1 - expected**2, dtype, scale=4)


def test_threads_give_identical_results(rng):
    x = rng.normal(size=1 << 17)
    saved = ffnc.get_num_threads()
    try:
        ffnc.set_num_threads(1)
        one = [kernels.activation_forward(x, n) for n in kernels.ACTIVATIONS]
        ffnc.set_num_threads(2)
        two = [kernels.activation_forward(x, n) for n in kernels.ACTIVATIONS]
    finally:
        ffnc.set_num_threads(saved)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


# ---- prelu ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (17, 1), (37, 53), (256, 300)])
@pytest.mark.parametrize("shared", [True, False])
def test_prelu_matches_numpy(isa, dtype, rng, shape, shared):
    x = rng.normal(size=shape).astype(dtype)
    alpha = rng.uniform(-0.5, 0.5, size=1 if shared else shape[1]).astype(dtype)
    y = kernels.prelu_forward(x, alpha)
    x64, a64 = x.astype(np.float64), alpha.astype(np.float64)
    assert_close(y, np.where(x64 > 0, x64, a64 * x64), dtype)

    g = rng.normal(size=shape).astype(dtype)
    dx, da = kernels.prelu_backward(g, x, alpha)
    g64 = g.astype(np.float64)
    assert_close(dx, np.where(x64 > 0, g64, a64 * g64), dtype)
    per_unit = np.where(x64 > 0, 0, g64 * x64).sum(axis=0)
    assert_close(da, per_unit.sum(keepdims=True) if shared else per_unit, dtype, scale=shape[0])

    # accumulation adds to what is there
    da2 = np.ones_like(alpha)
    kernels.prelu_backward(g, x, alpha, diff_alpha=da2, accumulate=True)
    assert_close(da2, np.asarray(da, np.float64) + 1, dtype, scale=shape[0])


def test_prelu_gradients_match_finite_differences(rng):
    x = rng.normal(size=(6, 4))
    x[np.abs(x) < 1e-3] = 0.5
    alpha = rng.uniform(0.05, 0.3, size=4)
    g = rng.normal(size=(6, 4))

    def loss(x_, a_):
        return float((kernels.prelu_forward(x_, a_) * g).sum())

    dx, da = kernels.prelu_backward(g, x, alpha)
    h = 1e-6
    for i in range(4):
        e = np.zeros(4)
        e[i] = h
        assert da[i] == pytest.approx((loss(x, alpha + e) - loss(x, alpha - e)) / (2 * h), rel=1e-6)
    e = np.zeros_like(x)
    e[2, 3] = h
    assert dx[2, 3] == pytest.approx((loss(x + e, alpha) - loss(x - e, alpha)) / (2 * h), rel=1e-6)


# ---- bias ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 70), (129, 1), (37, 53), (1000, 130), (0, 5)])
def test_bias_matches_numpy(isa, dtype, rng, shape):
    x = rng.normal(size=shape).astype(dtype)
    b = rng.normal(size=shape[1]).astype(dtype)
    assert_close(kernels.bias_forward(x, b), x.astype(np.float64) + b, dtype)
    db = kernels.bias_backward(x)
    assert_close(db, x.astype(np.float64).sum(axis=0), dtype, scale=max(1, shape[0]) ** 0.5)
    acc = np.full(shape[1], 2.0, dtype=dtype)
    kernels.bias_backward(x, out=acc, accumulate=True)
    assert_close(acc, x.astype(np.float64).sum(axis=0) + 2, dtype, scale=max(1, shape[0]) ** 0.5)


def test_bias_backward_identical_across_threads(rng):
    x = rng.normal(size=(4096, 200)).astype(np.float32)
    saved = ffnc.get_num_threads()
    try:
        ffnc.set_num_threads(1)
        one = kernels.bias_backward(x)
        ffnc.set_num_threads(2)
        two = kernels.bias_backward(x)
    finally:
        ffnc.set_num_threads(saved)
    np.testing.assert_array_equal(one, two)


# ---- bad input -----------------------------------------------------------------------------------


def test_bad_input_is_rejected_with_a_clear_message():
    x = np.ones((3, 4))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        kernels.activation_forward([1.0, 2.0], "relu")
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        kernels.activation_forward(np.ones(3, dtype=np.int64), "relu")
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        kernels.activation_forward(x.T, "relu")
    with pytest.raises(ValueError, match="activation must be one of"):
        kernels.activation_forward(x, "swish")
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        kernels.activation_forward(x, "leaky_relu", alpha=-0.1)
    with pytest.raises(ValueError, match="alpha must be finite"):
        kernels.activation_forward(x, "elu", alpha=float("nan"))
    with pytest.raises(ValueError, match="takes no alpha"):
        kernels.activation_forward(x, "relu", alpha=0.1)
    with pytest.raises(TypeError, match="out has dtype float32 but x has dtype float64"):
        kernels.activation_forward(x, "relu", out=np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"out has shape \(4, 3\) but x has shape \(3, 4\)"):
        kernels.activation_forward(x, "relu", out=np.ones((4, 3)))
    ro = np.ones((3, 4))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        kernels.activation_forward(x, "relu", out=ro)
    buf = np.ones(13)
    with pytest.raises(ValueError, match="out partially overlaps x"):
        kernels.activation_forward(buf[:12], "relu", out=buf[1:])
    with pytest.raises(ValueError, match=r"saved has shape \(4,\) but diff_y has shape \(3,\)"):
        kernels.activation_backward(np.ones(3), np.ones(4), "tanh")
    with pytest.raises(ValueError, match=r"alpha must have shape \(1,\)"):
        kernels.prelu_forward(x, np.ones(3))
    with pytest.raises(ValueError, match="x must be 2-D"):
        kernels.prelu_forward(np.ones(3), np.ones(1))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        kernels.bias_forward(x, np.ones(3))
    with pytest.raises(ValueError, match="out must not share memory with bias"):
        b = np.ones(4)
        kernels.bias_forward(np.ones((1, 4)), b, out=b.reshape(1, 4))
    with pytest.raises(ValueError, match="accumulate=True needs the out array"):
        kernels.bias_backward(x, accumulate=True)


def test_empty_arrays_are_fine():
    for name in kernels.ACTIVATIONS:
        assert kernels.activation_forward(np.ones(0), name).shape == (0,)
    np.testing.assert_array_equal(kernels.bias_backward(np.ones((0, 3))), np.zeros(3))


def test_activation_saves():
    assert kernels.activation_saves("relu") == "output"
    assert kernels.activation_saves("gelu") == "input"
    assert kernels.activation_saves("abs") == "input"


def test_every_isa_path_gives_the_same_bits(dtype, rng):
    """Element-wise kernels round the same operations in the same order on every path, so a
    result does not depend on the machine it was computed on."""
    x = (rng.normal(size=4099) * 5).astype(dtype)
    g = rng.normal(size=4099).astype(dtype)
    previous = ffnc.get_isa()
    results = {}
    try:
        for path in ffnc.supported_isas():
            ffnc.set_isa(path)
            results[path] = [
                (kernels.activation_forward(x, n),
                 kernels.activation_backward(g, kernels.activation_forward(x, n)
                                             if kernels.activation_saves(n) == "output" else x, n))
                for n in kernels.ACTIVATIONS
            ]
    finally:
        ffnc.set_isa(previous)
    reference = results["generic"]
    for path, got in results.items():
        for name, (y, dx), (y_ref, dx_ref) in zip(kernels.ACTIVATIONS, got, reference, strict=True):
            np.testing.assert_array_equal(y, y_ref, err_msg=f"{name} forward on {path}")
            np.testing.assert_array_equal(dx, dx_ref, err_msg=f"{name} backward on {path}")
