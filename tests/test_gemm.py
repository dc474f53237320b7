"""GEMM and the fused dense layer against float64 numpy references.

Accuracy: each element of a product is a length-k dot product, so it is compared with the
standard rounding-error bound |error| <= 2 k eps (|op(a)| @ |op(b)|) (+ the beta term), eps the
unit roundoff of the dtype: a bound that holds whatever the summation order or FMA use.
The fusion claims are checked bit for bit: dense == activation(bias(gemm)), and 1 thread ==
2 threads.
"""

import numpy as np
import pytest

import ffnc
from ffnc import kernels

ACTIVATION_ALPHA = {"leaky_relu": 0.07, "elu": 0.8}

# (m, n, k): the small unpacked path (m n k <= 512, m = 1) and the packed one; K = 1, M = 1, N = 1;
# one around each block size: MR (4, 6, 14), NR (4, 8, 16, 32), KC (256, 320), MC (32 .. 168),
# NC = 1024; one MC block with several chunks of packed B (packed into one place) and K blocks.
SHAPES = [
    (1, 1, 1), (3, 2, 5), (8, 8, 8), (8, 8, 9), (37, 53, 71), (7, 9, 1), (1, 300, 40),
    (1, 64, 600), (300, 1, 64), (200, 1, 1), (5, 15, 255), (13, 17, 256), (29, 33, 257),
    (145, 31, 513), (9, 40, 641), (169, 65, 20), (3, 1025, 9), (2, 2049, 3), (95, 97, 300),
    (100, 130, 700),
]


def _op(x, trans):
    return x.T if trans else x


def _operands(rng, m, n, k, trans_a, trans_b, dtype):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def _assert_product_close(actual, a, b, trans_a, trans_b, dtype, alpha=1.0, beta=0.0, c0=None):
    a64 = _op(a, trans_a).astype(np.float64)
    b64 = _op(b, trans_b).astype(np.float64)
    expected = alpha * (a64 @ b64)
    magnitude = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0:
        expected += beta * c0.astype(np.float64)
        magnitude += abs(beta) * np.abs(c0.astype(np.float64))
    k = a64.shape[1]
    eps = np.finfo(dtype).eps
    bound = 2 * (k + 2) * eps * magnitude + np.finfo(dtype).tiny
    error = np.abs(actual.astype(np.float64) - expected)
    assert actual.dtype == dtype
    assert np.all(error <= bound), f"max error {error.max()} over bound {bound[error > bound]}"


@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("trans_b", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_matches_numpy(isa, dtype, rng, shape, trans_a, trans_b):
    m, n, k = shape
    a, b = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    c = kernels.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert c.shape == (m, n)
    _assert_product_close(c, a, b, trans_a, trans_b, dtype)


@pytest.mark.parametrize("shape", [(4, 5, 6), (37, 53, 71), (130, 40, 300)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (-2.0, 0.5), (0.5, -1.0)])
def test_gemm_alpha_beta_accumulate(isa, dtype, rng, shape, alpha, beta):
    m, n, k = shape
    a, b = _operands(rng, m, n, k, False, True, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    out = c0.copy()
    result = kernels.gemm(a, b, trans_b=True, alpha=alpha, beta=beta, out=out)
    assert result is out
    _assert_product_close(out, a, b, False, True, dtype, alpha, beta, c0)


@pytest.mark.parametrize("shape", [(3, 4, 5), (50, 70, 90)], ids=lambda s: "x".join(map(str, s)))
def test_beta_zero_overwrites_nan_in_out(isa, dtype, rng, shape):
    m, n, k = shape
    a, b = _operands(rng, m, n, k, False, False, dtype)
    out = np.full((m, n), np.nan, dtype=dtype)
    kernels.gemm(a, b, out=out)
    assert np.all(np.isfinite(out))
    _assert_product_close(out, a, b, False, False, dtype)


@pytest.mark.parametrize("shape", [(3, 4, 5), (50, 70, 90)], ids=lambda s: "x".join(map(str, s)))
def test_nan_propagates_to_its_row_and_column(isa, dtype, rng, shape):
    m, n, k = shape
    a, b = _operands(rng, m, n, k, False, False, dtype)
    a[1, 2] = np.nan
    b[3, 2] = np.nan
    c = kernels.gemm(a, b)
    assert np.all(np.isnan(c[1, :]))
    assert np.all(np.isnan(c[:, 2]))
    rest = np.delete(np.delete(c, 1, axis=0), 2, axis=1)
    assert np.all(np.isfinite(rest))


def test_gemm_k_zero_and_alpha_zero(dtype, rng):
    a = np.empty((3, 0), dtype=dtype)
    b = np.empty((0, 4), dtype=dtype)
    np.testing.assert_array_equal(kernels.gemm(a, b), np.zeros((3, 4)))
    out = np.ones((3, 4), dtype=dtype)
    kernels.gemm(a, b, beta=2.0, out=out)
    np.testing.assert_array_equal(out, np.full((3, 4), 2.0))
    # alpha == 0 reads neither a nor b (BLAS convention): their NaNs do not reach out
    a = np.full((3, 5), np.nan, dtype=dtype)
    b = np.full((5, 4), np.nan, dtype=dtype)
    out = np.ones((3, 4), dtype=dtype)
    kernels.gemm(a, b, alpha=0.0, beta=-1.0, out=out)
    np.testing.assert_array_equal(out, np.full((3, 4), -1.0))
    assert kernels.gemm(np.ones((0, 5), dtype), np.ones((5, 4), dtype)).shape == (0, 4)


@pytest.fixture
def restore_threads():
    previous = ffnc.get_num_threads()
    yield
    ffnc.set_num_threads(previous)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False)],
                         ids=["NN", "NT", "TN"])
@pytest.mark.parametrize("shape", [(256, 300, 200), (30, 1000, 100), (500, 12, 300),
                                   (500, 10, 300)],
                         ids=lambda s: "x".join(map(str, s)))
def test_one_and_two_threads_are_bitwise_equal(isa, dtype, rng, restore_threads, shape, trans_a,
                                               trans_b):
    m, n, k = shape
    a, b = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    bias = rng.standard_normal(n).astype(dtype)
    ffnc.set_num_threads(1)
    one = kernels.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    x = _op(a, trans_a).copy()
    dense_one = kernels.dense(x, b, bias, activation="tanh", trans_weights=trans_b)
    ffnc.set_num_threads(2)
    two = kernels.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    dense_two = kernels.dense(x, b, bias, activation="tanh", trans_weights=trans_b)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(dense_one, dense_two)


# ---- few columns: computed as C^T = op(B)^T op(A)^T (KERNEL(gemm) in csrc/gemm/gemm.tmpl.h) --

def _first_columns(b, n, trans_b):
    return (b[:n] if trans_b else b[:, :n]).copy()


def _check_first_columns(rng, dtype, m, n, k, wide, trans_a, trans_b):
    """Each element of C depends only on its row of op(A) and column of op(B): the first n
    columns of a `wide`-column product must be the n-column product bit for bit, with alpha
    and beta, whichever paths the two take (every path runs each element's FMAs over k in
    order)."""
    a, b_wide = _operands(rng, m, wide, k, trans_a, trans_b, dtype)
    b = _first_columns(b_wide, n, trans_b)
    c_wide = rng.standard_normal((m, wide)).astype(dtype)
    c0 = c_wide[:, :n].copy()
    out = c0.copy()
    kernels.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=-0.5, beta=2.0, out=out)
    kernels.gemm(a, b_wide, trans_a=trans_a, trans_b=trans_b, alpha=-0.5, beta=2.0, out=c_wide)
    np.testing.assert_array_equal(out, c_wide[:, :n])
    _assert_product_close(out, a, b, trans_a, trans_b, dtype, -0.5, 2.0, c0)


def _check_first_columns_dense(rng, dtype, name, trans_weights, m, n, k, wide, nan_row):
    """The dense layer's version of _check_first_columns (bias, pre-activation, activation);
    x has a NaN in row nan_row, which must be NaN in every column and the only one."""
    x = rng.standard_normal((m, k)).astype(dtype)
    w_wide = rng.standard_normal((wide, k) if trans_weights else (k, wide)).astype(dtype)
    bias_wide = rng.standard_normal(wide).astype(dtype)
    x[nan_row, k - 1] = np.nan
    kw = _activation_kwargs(name)
    pre = np.empty((m, n), dtype)
    pre_wide = np.empty((m, wide), dtype)
    y = kernels.dense(x, _first_columns(w_wide, n, trans_weights), bias_wide[:n].copy(),
                      activation=name, trans_weights=trans_weights, pre_activation=pre, **kw)
    y_wide = kernels.dense(x, w_wide, bias_wide, activation=name, trans_weights=trans_weights,
                           pre_activation=pre_wide, **kw)
    np.testing.assert_array_equal(y, y_wide[:, :n])
    np.testing.assert_array_equal(pre, pre_wide[:, :n])
    assert np.all(np.isnan(y[nan_row]))
    assert np.isnan(y).sum() == n


@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("trans_b", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("n", [2, 5, 6, 10, 12, 13])
def test_few_columns_are_the_bits_of_a_wider_product(isa, dtype, rng, n, trans_a, trans_b):
    # a 40-column product takes the ordinary path; n columns, up to 5/8 of the panel width,
    # the transposed one
    _check_first_columns(rng, dtype, 97, n, 300, 40, trans_a, trans_b)


@pytest.mark.parametrize("name", ["relu", "tanh", "leaky_relu", "identity"])
@pytest.mark.parametrize("trans_weights", [False, True], ids=["W", "WT"])
def test_few_column_dense_is_the_bits_of_a_wider_layer(isa, dtype, rng, name, trans_weights):
    _check_first_columns_dense(rng, dtype, name, trans_weights, 130, 10, 200, 48, nan_row=3)


# m n k <= 512 where the tiny path's buffers hold the operands: rows of whole vectors read in
# place (4x16x2 NN), padded copies (3x5x7, 7x9x1, 2x7x30), the transposed product (16x2x4,
# 7x3x9, 64x1x8), blocks of two vectors then one (2x24x4; transposed, 20x3x4), the largest
# copy (2x2x128). (The small problems it leaves to the unpacked
# loops have a single row or column, whose dot products with a transposed B sum in eight
# lanes, so they are not the bits of a packed product.)
TINY_SHAPES = [(4, 16, 2), (4, 2, 16), (16, 2, 4), (2, 16, 4), (3, 5, 7), (7, 9, 1), (7, 3, 9),
               (64, 1, 8), (2, 7, 30), (2, 32, 8), (8, 8, 8), (2, 24, 4), (20, 3, 4),
               (2, 2, 128)]


@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("trans_b", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("shape", TINY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_tiny_products_are_the_bits_of_a_packed_one(isa, dtype, rng, shape, trans_a, trans_b):
    m, n, k = shape
    _check_first_columns(rng, dtype, m, n, k, 200, trans_a, trans_b)


@pytest.mark.parametrize("name", ["relu", "tanh", "leaky_relu", "identity"])
@pytest.mark.parametrize("trans_weights", [False, True], ids=["W", "WT"])
@pytest.mark.parametrize("shape", [(4, 16, 2), (4, 2, 16), (7, 3, 9), (3, 5, 7), (4, 24, 2)],
                         ids=lambda s: "x".join(map(str, s)))
def test_tiny_dense_is_the_bits_of_a_wider_layer(isa, dtype, rng, name, trans_weights, shape):
    m, n, k = shape
    _check_first_columns_dense(rng, dtype, name, trans_weights, m, n, k, 200, nan_row=m - 1)


# ---- dense ----------------------------------------------------------------------------------

def _activation_kwargs(name):
    return {"alpha": ACTIVATION_ALPHA[name]} if name in ACTIVATION_ALPHA else {}


@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
@pytest.mark.parametrize("trans_weights", [False, True], ids=["W", "WT"])
@pytest.mark.parametrize("shape", [(3, 5, 7), (37, 53, 71), (100, 70, 300)],
                         ids=lambda s: "x".join(map(str, s)))
def test_dense_is_bitwise_gemm_bias_activation(isa, dtype, rng, name, trans_weights, shape):
    m, n, k = shape
    x = rng.standard_normal((m, k)).astype(dtype)
    w = (rng.standard_normal((n, k) if trans_weights else (k, n)) / np.sqrt(k)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    x[0, 0] = np.nan  # NaN propagates through the epilogue as through the separate kernels
    kw = _activation_kwargs(name)
    pre = np.empty((m, n), dtype=dtype)
    y = kernels.dense(x, w, bias, activation=name, trans_weights=trans_weights,
                      pre_activation=pre, **kw)
    expected_pre = kernels.bias_forward(kernels.gemm(x, w, trans_b=trans_weights), bias)
    expected = kernels.activation_forward(expected_pre, name, **kw)
    np.testing.assert_array_equal(pre, expected_pre)
    np.testing.assert_array_equal(y, expected)
    assert np.all(np.isnan(y[0]))


def test_dense_against_numpy(isa, dtype, rng):
    x = rng.standard_normal((64, 40)).astype(dtype)
    w = rng.standard_normal((40, 50)).astype(dtype)
    bias = rng.standard_normal(50).astype(dtype)
    y = kernels.dense(x, w, bias, activation="relu")
    expected = np.maximum(x.astype(np.float64) @ w + bias, 0)
    scale = np.abs(x.astype(np.float64)) @ np.abs(w) + np.abs(bias)
    assert np.all(np.abs(y - expected) <= 100 * np.finfo(dtype).eps * scale)
    no_bias = kernels.dense(x, w)
    _assert_product_close(no_bias, x, w, False, False, dtype)


def test_dense_k_zero_is_activation_of_bias(dtype):
    bias = np.array([-1.0, 0.5, 2.0], dtype=dtype)
    y = kernels.dense(np.empty((2, 0), dtype), np.empty((0, 3), dtype), bias, activation="relu")
    np.testing.assert_array_equal(y, np.maximum(np.tile(bias, (2, 1)), 0))


@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
@pytest.mark.parametrize("trans_weights", [False, True], ids=["W", "WT"])
def test_dense_backward_matches_separate_kernels(isa, dtype, rng, name, trans_weights):
    m, n, k = 37, 45, 29
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((n, k) if trans_weights else (k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    kw = _activation_kwargs(name)
    pre = np.empty((m, n), dtype=dtype)
    y = kernels.dense(x, w, bias, activation=name, trans_weights=trans_weights,
                      pre_activation=pre, **kw)
    saved = y if kernels.activation_saves(name) == "output" else pre
    g = rng.standard_normal((m, n)).astype(dtype)
    dx, dw, db = kernels.dense_backward(g, x, w, saved, activation=name,
                                        trans_weights=trans_weights, **kw)
    diff_pre = kernels.activation_backward(g, saved, name, **kw)
    np.testing.assert_array_equal(db, kernels.bias_backward(diff_pre))
    if trans_weights:
        np.testing.assert_array_equal(dw, kernels.gemm(diff_pre, x, trans_a=True))
        np.testing.assert_array_equal(dx, kernels.gemm(diff_pre, w))
    else:
        np.testing.assert_array_equal(dw, kernels.gemm(x, diff_pre, trans_a=True))
        np.testing.assert_array_equal(dx, kernels.gemm(diff_pre, w, trans_b=True))
    # and against float64 numpy for one case of each layout
    if name == "relu":
        d = g.astype(np.float64) * (pre > 0)
        w64 = w.astype(np.float64).T if trans_weights else w.astype(np.float64)
        tol = 200 * np.finfo(dtype).eps
        np.testing.assert_allclose(dx, d @ w64.T, rtol=tol, atol=tol * 30)
        dw_ref = x.T.astype(np.float64) @ d
        np.testing.assert_allclose(dw, dw_ref.T if trans_weights else dw_ref, rtol=tol,
                                   atol=tol * 30)
        np.testing.assert_allclose(db, d.sum(axis=0), rtol=tol, atol=tol * 30)


def test_dense_backward_accumulates_and_skips(dtype, rng):
    x = rng.standard_normal((20, 6)).astype(dtype)
    w = rng.standard_normal((6, 9)).astype(dtype)
    g = rng.standard_normal((20, 9)).astype(dtype)
    y = kernels.dense(x, w, activation="tanh")
    dx, dw, db = kernels.dense_backward(g, x, w, y, activation="tanh")
    dw_acc = np.ones_like(dw)
    db_acc = np.ones_like(db)
    dx2, dw2, db2 = kernels.dense_backward(g, x, w, y, activation="tanh", need_diff_x=False,
                                           diff_weights=dw_acc, diff_bias=db_acc,
                                           accumulate=True)
    assert dx2 is None and dw2 is dw_acc and db2 is db_acc
    tol = 50 * np.finfo(dtype).eps
    np.testing.assert_allclose(dw_acc, dw + 1, rtol=tol, atol=tol)
    np.testing.assert_allclose(db_acc, db + 1, rtol=tol, atol=tol)
    _, _, none = kernels.dense_backward(g, x, w, y, activation="tanh", bias=False)
    assert none is None


# ---- validation -----------------------------------------------------------------------------

def test_gemm_rejects_bad_arguments():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match="b has dtype float64 but a has dtype float32"):
        kernels.gemm(a, b.astype(np.float64))
    with pytest.raises(TypeError, match="a must have dtype float32 or float64"):
        kernels.gemm(a.astype(np.int32), b)
    with pytest.raises(ValueError, match=r"cannot multiply a \(a has shape \(3, 4\)\) by b.T"):
        kernels.gemm(a, b, trans_b=True)
    with pytest.raises(ValueError, match="a must be 2-D"):
        kernels.gemm(np.ones(4, np.float32), b)
    with pytest.raises(ValueError, match="b must be C-contiguous"):
        kernels.gemm(a, np.ones((5, 4), np.float32).T)
    with pytest.raises(ValueError, match="out must be given"):
        kernels.gemm(a, b, beta=1.0)
    with pytest.raises(ValueError, match=r"out must have shape \(3, 5\)"):
        kernels.gemm(a, b, out=np.ones((5, 3), np.float32))
    with pytest.raises(TypeError, match="out has dtype float64"):
        kernels.gemm(a, b, out=np.ones((3, 5)))
    with pytest.raises(ValueError, match="alpha must be finite"):
        kernels.gemm(a, b, alpha=float("nan"))
    readonly = np.ones((3, 5), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        kernels.gemm(a, b, out=readonly)


def test_gemm_rejects_out_aliasing_an_operand():
    a = np.ones((4, 4), np.float64)
    b = np.ones((4, 4), np.float64)
    with pytest.raises(ValueError, match="out must not share memory with a"):
        kernels.gemm(a, b, out=a)
    with pytest.raises(ValueError, match="out must not share memory with b"):
        kernels.gemm(a, b, out=b)
    buf = np.ones(32)
    with pytest.raises(ValueError, match="out must not share memory with a"):
        kernels.gemm(buf[:16].reshape(4, 4), b, out=buf[8:24].reshape(4, 4))


def test_dense_rejects_bad_arguments():
    x = np.ones((3, 4), np.float32)
    w = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"x with shape \(3, 4\) has 4 inputs but weights with "
                                          r"shape \(4, 5\) \(layout \(units, inputs\)"):
        kernels.dense(x, w, trans_weights=True)
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\)"):
        kernels.dense(x, w, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="bias has dtype float64"):
        kernels.dense(x, w, np.ones(5))
    with pytest.raises(ValueError, match="activation must be one of"):
        kernels.dense(x, w, activation="swish")
    with pytest.raises(ValueError, match="takes no alpha"):
        kernels.dense(x, w, activation="relu", alpha=0.1)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        kernels.dense(x, w, activation="elu", alpha=-1.0)
    square = np.ones((5, 5), np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        kernels.dense(square, np.ones((5, 5), np.float32), out=square)
    with pytest.raises(ValueError, match="out must not share memory with weights"):
        kernels.dense(np.ones((5, 5), np.float32), square, out=square)
    pre = np.ones((3, 5), np.float32)
    with pytest.raises(ValueError, match="pre_activation must not share memory with out"):
        kernels.dense(x, w, out=pre, pre_activation=pre)
    with pytest.raises(ValueError, match=r"diff_y must have shape \(3, 5\)"):
        kernels.dense_backward(np.ones((3, 4), np.float32), x, w, np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="accumulate=True needs"):
        kernels.dense_backward(np.ones((3, 5), np.float32), x, w, np.ones((3, 5), np.float32),
                               accumulate=True)
