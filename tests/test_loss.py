"""Loss kernels (softmax cross-entropy, log-softmax, BCE from logits, MSE, L1) and their
gradients against float64 numpy references and central finite differences."""

import numpy as np
import pytest
from conftest import ATOL, RTOL, assert_close

import ffnc
from ffnc import kernels

# The last shape is above every loss kernel's threading grain, so it runs on several threads.
SHAPES = [(1, 1), (1, 7), (37, 10), (300, 129), (512, 257)]
LARGE = (512, 257)
PAIR_LOSSES = ("bce", "mse", "l1")


# ---- float64 references -------------------------------------------------------------------------


def ref_log_softmax(x):
    shifted = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def ref_softmax_xent(x, labels):
    """(the summed loss, the softmax) of logits x."""
    log_probs = ref_log_softmax(x)
    return -log_probs[np.arange(len(labels)), labels].sum(), np.exp(log_probs)


def ref_sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def ref_sigmoid_minus(z, y):
    """sigmoid(z) - y without the cancellation of 1 / (1 + e^-z) - 1 for large z: with
    sigmoid(z) = 1 - sigmoid(-z), it is (1 - y) - sigmoid(-z) for z >= 0."""
    return np.where(z >= 0, (1 - y) - ref_sigmoid(-z), ref_sigmoid(z) - y)


def ref_pair_terms(name, a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    if name == "bce":
        return np.maximum(a, 0) - b * a + np.log1p(np.exp(-np.abs(a)))
    if name == "mse":
        return (a - b) ** 2
    return np.abs(a - b)


def ref_pair_gradient(name, a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    if name == "bce":
        return ref_sigmoid_minus(a, b)
    if name == "mse":
        return 2 * (a - b)
    return np.sign(a - b)


FORWARD = {"bce": kernels.bce_with_logits, "mse": kernels.mse, "l1": kernels.l1}
BACKWARD = {
    "bce": kernels.bce_with_logits_backward,
    "mse": kernels.mse_backward,
    "l1": kernels.l1_backward,
}


def _labels(rng, rows, classes):
    return rng.integers(0, classes, size=rows)


def _pair_inputs(rng, name, shape, dtype, magnitude=3.0):
    """(first, second) for a pair loss: BCE gets probabilities with exact 0s and 1s, L1 and MSE
    exact ties (where sign(0) = 0 matters)."""
    first = rng.uniform(-magnitude, magnitude, size=shape).astype(dtype)
    if name == "bce":
        second = rng.uniform(0, 1, size=shape).astype(dtype)
        second.flat[::5] = 0.0
        second.flat[1::5] = 1.0
    else:
        second = rng.uniform(-magnitude, magnitude, size=shape).astype(dtype)
        second.flat[::5] = first.flat[::5]
    return first, second


@pytest.fixture
def restore_threads():
    previous = ffnc.get_num_threads()
    yield
    ffnc.set_num_threads(previous)


# ---- softmax cross-entropy ----------------------------------------------------------------------


@pytest.mark.parametrize("magnitude", [3.0, 1e4])
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_cross_entropy_matches_numpy(isa, dtype, rng, shape, magnitude):
    rows, classes = shape
    logits = rng.uniform(-magnitude, magnitude, size=shape).astype(dtype)
    labels = _labels(rng, rows, classes)
    ref_sum, ref_probs = ref_softmax_xent(logits, labels)

    loss, probs = kernels.softmax_cross_entropy(logits, labels)
    assert type(loss) is float and np.isfinite(loss)
    assert probs.dtype == dtype and probs.shape == shape
    assert_close(loss, ref_sum / rows, dtype)
    assert_close(probs, ref_probs, dtype)
    loss_sum, _ = kernels.softmax_cross_entropy(logits, labels, reduction="sum")
    assert_close(loss_sum, ref_sum, dtype)

    onehot = np.eye(classes)[labels]
    for reduction, scale in (("mean", 1 / rows), ("sum", 1.0)):
        diff = kernels.softmax_cross_entropy_backward(probs, labels, reduction=reduction,
                                                      diff_loss=-0.7)
        assert diff.dtype == dtype and diff.shape == shape
        assert_close(diff, -0.7 * scale * (ref_probs - onehot), dtype)


def test_softmax_cross_entropy_any_integer_labels(rng):
    logits = rng.normal(size=(37, 10))
    labels = _labels(rng, 37, 10)
    expected, _ = kernels.softmax_cross_entropy(logits, labels)
    for label_dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.uint64):
        loss, _ = kernels.softmax_cross_entropy(logits, labels.astype(label_dtype))
        assert loss == expected
    strided = np.repeat(labels, 2)[::2]
    assert kernels.softmax_cross_entropy(logits, strided)[0] == expected


def test_softmax_cross_entropy_extreme_logits_are_exact():
    """Logits 1e4 apart: no overflow, and the loss is the exact margin, not inf."""
    for dtype in (np.float32, np.float64):
        logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4 - 2]], dtype=dtype)
        labels = np.array([1, 2])
        loss, probs = kernels.softmax_cross_entropy(logits, labels, reduction="sum")
        expected = 2e4 + (2 + np.log1p(np.exp(-2.0)))
        assert loss == pytest.approx(expected, rel=1e-12)
        assert np.all(np.isfinite(probs))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=RTOL[dtype])


@pytest.mark.parametrize("nan_col", [0, 3, 6])
def test_softmax_cross_entropy_nan_propagates_per_row(isa, dtype, rng, nan_col):
    logits = rng.normal(size=(5, 7)).astype(dtype)
    logits[2, nan_col] = np.nan
    labels = _labels(rng, 5, 7)
    loss, probs = kernels.softmax_cross_entropy(logits, labels)
    assert np.isnan(loss)
    assert np.all(np.isnan(probs[2]))
    keep = [0, 1, 3, 4]
    assert_close(probs[keep], ref_softmax_xent(logits[keep], labels[keep])[1], dtype)


def test_softmax_cross_entropy_in_place(isa, dtype, rng):
    logits = rng.normal(scale=4, size=(37, 10)).astype(dtype)
    labels = _labels(rng, 37, 10)
    loss, probs = kernels.softmax_cross_entropy(logits, labels)
    work = logits.copy()
    loss_in_place, probs_in_place = kernels.softmax_cross_entropy(work, labels, probs=work)
    assert probs_in_place is work
    assert loss_in_place == loss
    np.testing.assert_array_equal(work, probs)

    diff = kernels.softmax_cross_entropy_backward(probs, labels)
    diff_in_place = kernels.softmax_cross_entropy_backward(work, labels, out=work)
    assert diff_in_place is work
    np.testing.assert_array_equal(work, diff)


def test_softmax_cross_entropy_probs_output(rng):
    logits = rng.normal(size=(6, 4))
    labels = _labels(rng, 6, 4)
    out = np.full((6, 4), np.nan)
    loss, probs = kernels.softmax_cross_entropy(logits, labels, probs=out)
    assert probs is out
    assert_close(out, ref_softmax_xent(logits, labels)[1], np.float64)


def test_softmax_cross_entropy_zero_rows():
    logits = np.zeros((0, 5))
    labels = np.zeros(0, dtype=np.int64)
    for reduction in ("mean", "sum"):
        loss, probs = kernels.softmax_cross_entropy(logits, labels, reduction=reduction)
        assert loss == 0.0 and probs.shape == (0, 5)
        diff = kernels.softmax_cross_entropy_backward(probs, labels, reduction=reduction)
        assert diff.shape == (0, 5)


# ---- log-softmax --------------------------------------------------------------------------------


@pytest.mark.parametrize("magnitude", [3.0, 1e4])
@pytest.mark.parametrize("shape", SHAPES)
def test_log_softmax_matches_numpy(isa, dtype, rng, shape, magnitude):
    x = rng.uniform(-magnitude, magnitude, size=shape).astype(dtype)
    y = kernels.log_softmax(x)
    assert y.dtype == dtype and y.shape == shape
    assert np.all(np.isfinite(y))
    assert_close(y, ref_log_softmax(x), dtype)

    # The backward alone, from the kernel's own forward output. g - p sum(g) cancels, so the
    # absolute tolerance grows with |sum(g)| of the row.
    g = rng.normal(size=shape).astype(dtype)
    g_sum = g.astype(np.float64).sum(axis=1, keepdims=True)
    dx = kernels.log_softmax_backward(g, y)
    assert dx.dtype == dtype and dx.shape == shape
    expected = g - np.exp(y.astype(np.float64)) * g_sum
    atol = ATOL[dtype] * (1 + np.abs(g_sum))
    close = np.isclose(dx, expected, rtol=RTOL[dtype], atol=atol)
    worst = np.unravel_index(np.argmin(close), shape)
    assert close.all(), f"dx{worst} = {dx[worst]}, expected {expected[worst]}"


def test_log_softmax_nan_propagates_per_row(isa, dtype, rng):
    x = rng.normal(size=(4, 9)).astype(dtype)
    x[1, 0] = np.nan
    y = kernels.log_softmax(x)
    assert np.all(np.isnan(y[1]))
    keep = [0, 2, 3]
    assert_close(y[keep], ref_log_softmax(x[keep]), dtype)


def test_log_softmax_in_place(isa, dtype, rng):
    x = rng.normal(size=(37, 10)).astype(dtype)
    y = kernels.log_softmax(x)
    work = x.copy()
    assert kernels.log_softmax(work, out=work) is work
    np.testing.assert_array_equal(work, y)

    g = rng.normal(size=x.shape).astype(dtype)
    dx = kernels.log_softmax_backward(g, y)
    assert kernels.log_softmax_backward(g, y, out=g) is g
    np.testing.assert_array_equal(g, dx)


# ---- BCE, MSE, L1 -------------------------------------------------------------------------------


@pytest.mark.parametrize("magnitude", [3.0, 1e4])
@pytest.mark.parametrize("shape", [*SHAPES, (11,), (2, 3, 4)])
@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_pair_loss_matches_numpy(isa, dtype, rng, name, shape, magnitude):
    first, second = _pair_inputs(rng, name, shape, dtype, magnitude)
    terms = ref_pair_terms(name, first, second)
    n = first.size

    loss = FORWARD[name](first, second)
    assert type(loss) is float and np.isfinite(loss)
    assert_close(loss, terms.sum() / n, dtype)
    assert_close(FORWARD[name](first, second, reduction="sum"), terms.sum(), dtype)

    gradient = ref_pair_gradient(name, first, second)
    for reduction, scale in (("mean", 1 / n), ("sum", 1.0)):
        diff = BACKWARD[name](first, second, reduction=reduction, diff_loss=1.3)
        assert diff.dtype == dtype and diff.shape == shape
        assert_close(diff, 1.3 * scale * gradient, dtype)
    if name != "bce":
        assert np.all(diff.flat[::5] == 0)  # sign(0) = 0, and 2 * 0 for mse


@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_pair_loss_nan_propagates(isa, dtype, rng, name):
    first, second = _pair_inputs(rng, name, (6, 5), dtype)
    first[3, 2] = np.nan
    assert np.isnan(FORWARD[name](first, second))
    diff = BACKWARD[name](first, second)
    assert np.isnan(diff[3, 2])
    assert np.isnan(diff).sum() == 1
    if name != "bce":
        second[3, 2] = 0.5
        first[3, 2] = 0.5
        second[0, 0] = np.nan
        assert np.isnan(FORWARD[name](first, second))
        assert np.isnan(BACKWARD[name](first, second)[0, 0])


def test_bce_is_stable_at_large_logits():
    z = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    for y_value, expected in ((0.0, [0.0, 0.0, np.log(2), 30.0, 800.0]),
                              (1.0, [800.0, 30.0, np.log(2), 0.0, 0.0])):
        y = np.full_like(z, y_value)
        loss = kernels.bce_with_logits(z, y, reduction="sum")
        assert loss == pytest.approx(sum(expected), rel=1e-12)
        diff = kernels.bce_with_logits_backward(z, y, reduction="sum")
        assert np.all(np.isfinite(diff))
        # to the last bits even where sigmoid(z) - y is e^-30 or e^-800
        np.testing.assert_allclose(diff, ref_sigmoid_minus(z, y), rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_pair_loss_gradient_in_place(isa, dtype, rng, name):
    first, second = _pair_inputs(rng, name, (37, 10), dtype)
    diff = BACKWARD[name](first, second, diff_loss=0.5)
    for which in (0, 1):
        inputs = [first.copy(), second.copy()]
        result = BACKWARD[name](*inputs, diff_loss=0.5, out=inputs[which])
        assert result is inputs[which]
        np.testing.assert_array_equal(result, diff)


@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_pair_loss_empty(name):
    empty = np.zeros((0, 3))
    for reduction in ("mean", "sum"):
        assert FORWARD[name](empty, empty, reduction=reduction) == 0.0
        assert BACKWARD[name](empty, empty, reduction=reduction).shape == (0, 3)


# ---- gradients against central finite differences (float64) ------------------------------------


def _central_differences(f, x, h=1e-6):
    grad = np.empty_like(x)
    for i in range(x.size):
        plus, minus = x.copy(), x.copy()
        plus.flat[i] += h
        minus.flat[i] -= h
        grad.flat[i] = (f(plus) - f(minus)) / (2 * h)
    return grad


def _assert_matches_finite_differences(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_softmax_cross_entropy_gradient_finite_differences(isa, rng, reduction):
    logits = rng.normal(scale=2, size=(5, 4))
    labels = _labels(rng, 5, 4)
    _, probs = kernels.softmax_cross_entropy(logits, labels, reduction=reduction)
    analytic = kernels.softmax_cross_entropy_backward(probs, labels, reduction=reduction,
                                                      diff_loss=2.5)
    numeric = _central_differences(
        lambda x: 2.5 * kernels.softmax_cross_entropy(x, labels, reduction=reduction)[0], logits)
    _assert_matches_finite_differences(analytic, numeric)


def test_log_softmax_gradient_finite_differences(isa, rng):
    x = rng.normal(scale=2, size=(4, 6))
    weights = rng.normal(size=x.shape)
    analytic = kernels.log_softmax_backward(weights, kernels.log_softmax(x))
    numeric = _central_differences(lambda v: float((weights * kernels.log_softmax(v)).sum()), x)
    _assert_matches_finite_differences(analytic, numeric)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_pair_loss_gradient_finite_differences(isa, rng, name, reduction):
    first, second = _pair_inputs(rng, name, (4, 6), np.float64)
    if name == "bce":
        first.flat[:4] = [-30.0, -0.3, 0.3, 30.0]  # both branches, far into saturation
    else:
        # No tie within the step: the finite difference of |d| across d = 0 is meaningless.
        gaps = rng.uniform(0.1, 1, size=first.shape)
        second = first + rng.choice([-1.0, 1.0], size=first.shape) * gaps
    analytic = BACKWARD[name](first, second, reduction=reduction, diff_loss=-1.5)
    numeric = _central_differences(
        lambda v: -1.5 * FORWARD[name](v, second, reduction=reduction), first)
    _assert_matches_finite_differences(analytic, numeric)


# ---- reduction ----------------------------------------------------------------------------------


def test_mean_is_sum_over_count(rng):
    logits = rng.normal(size=(37, 10))
    labels = _labels(rng, 37, 10)
    mean, _ = kernels.softmax_cross_entropy(logits, labels)
    total, _ = kernels.softmax_cross_entropy(logits, labels, reduction="sum")
    assert mean == pytest.approx(total / 37, rel=1e-15)
    for name in PAIR_LOSSES:
        first, second = _pair_inputs(rng, name, (37, 10), np.float64)
        mean = FORWARD[name](first, second)
        total = FORWARD[name](first, second, reduction="sum")
        assert mean == pytest.approx(total / 370, rel=1e-15)
        np.testing.assert_allclose(BACKWARD[name](first, second) * 370,
                                   BACKWARD[name](first, second, reduction="sum"), rtol=1e-15)


# ---- reproducibility ----------------------------------------------------------------------------


def _run_everything(dtype, rng_seed=7):
    rng = np.random.default_rng(rng_seed)
    rows, classes = LARGE
    logits = rng.normal(scale=5, size=LARGE).astype(dtype)
    labels = _labels(rng, rows, classes)
    g = rng.normal(size=LARGE).astype(dtype)
    results = list(kernels.softmax_cross_entropy(logits, labels))
    results.append(kernels.softmax_cross_entropy_backward(results[1], labels, diff_loss=0.3))
    y = kernels.log_softmax(logits)
    results += [y, kernels.log_softmax_backward(g, y)]
    for name in PAIR_LOSSES:
        first, second = _pair_inputs(rng, name, LARGE, dtype)
        results += [FORWARD[name](first, second), BACKWARD[name](first, second)]
    return results


def _assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float):
            assert x == y
        else:
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


def test_one_and_two_threads_are_bitwise_equal(isa, dtype, restore_threads):
    ffnc.set_num_threads(1)
    one = _run_everything(dtype)
    ffnc.set_num_threads(2)
    two = _run_everything(dtype)
    _assert_bitwise_equal(one, two)


def test_isa_paths_are_bitwise_equal(dtype):
    previous = ffnc.get_isa()
    try:
        results = []
        for name in ffnc.supported_isas():
            ffnc.set_isa(name)
            results.append(_run_everything(dtype))
    finally:
        ffnc.set_isa(previous)
    for other in results[1:]:
        _assert_bitwise_equal(results[0], other)


# ---- bad input ----------------------------------------------------------------------------------

X = np.zeros((4, 3))
LABELS = np.array([0, 1, 2, 0])
P = np.full((4, 3), 0.5)


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


XENT = kernels.softmax_cross_entropy
XENT_B = kernels.softmax_cross_entropy_backward
BAD_INPUTS = {
    # softmax_cross_entropy
    "logits list": (lambda: XENT([[0.0, 1.0]], np.array([0])), TypeError,
                    "logits must be a numpy.ndarray"),
    "logits int": (lambda: XENT(np.zeros((4, 3), dtype=np.int64), LABELS), TypeError,
                   "logits must have dtype float32 or float64"),
    "logits 1-D": (lambda: XENT(np.zeros(3), np.array([0])), ValueError, "logits must be 2-D"),
    "logits strided": (lambda: XENT(np.zeros((4, 6))[:, ::2], LABELS), ValueError,
                       "logits must be C-contiguous"),
    "logits no class": (lambda: XENT(np.zeros((4, 0)), LABELS), ValueError,
                        "logits must have at least one class"),
    "labels list": (lambda: XENT(X, [0, 1, 2, 0]), TypeError, "labels must be a numpy.ndarray"),
    "labels float": (lambda: XENT(X, LABELS.astype(float)), TypeError,
                     "labels must have an integer dtype"),
    "labels bool": (lambda: XENT(X, LABELS.astype(bool)), TypeError,
                    "labels must have an integer dtype"),
    "labels 2-D": (lambda: XENT(X, LABELS.reshape(2, 2)), ValueError,
                   r"labels must have shape \(4,\)"),
    "labels short": (lambda: XENT(X, LABELS[:3]), ValueError, r"labels must have shape \(4,\)"),
    "label too big": (lambda: XENT(X, np.array([0, 1, 3, 0])), ValueError,
                      r"labels\[2\] = 3 is out of range for 3 classes"),
    "label negative": (lambda: XENT(X, np.array([0, -1, 5, 0], dtype=np.int8)), ValueError,
                       r"labels\[1\] = -1 is out of range for 3 classes"),
    "label uint64": (lambda: XENT(X, np.array([0, 1, 2**64 - 1, 0], dtype=np.uint64)),
                     ValueError, r"labels\[2\] = 18446744073709551615 is out of range"),
    "probs dtype": (lambda: XENT(X, LABELS, probs=np.zeros((4, 3), np.float32)), TypeError,
                    "probs has dtype float32 but logits has dtype float64"),
    "probs shape": (lambda: XENT(X, LABELS, probs=np.zeros((3, 4))), ValueError,
                    r"probs has shape \(3, 4\) but logits has shape \(4, 3\)"),
    "probs read-only": (lambda: XENT(X, LABELS, probs=_read_only(X)), ValueError,
                        "probs is read-only"),
    "reduction": (lambda: XENT(X, LABELS, reduction="avg"), ValueError,
                  "reduction must be 'mean' or 'sum'"),
    # softmax_cross_entropy_backward
    "backward probs 1-D": (lambda: XENT_B(np.zeros(3), np.array([0])), ValueError,
                           "probs must be 2-D"),
    "backward label": (lambda: XENT_B(P, np.array([0, 0, 0, 7])), ValueError,
                       r"labels\[3\] = 7 is out of range for 3 classes"),
    "backward diff_loss nan": (lambda: XENT_B(P, LABELS, diff_loss=np.nan), ValueError,
                               "diff_loss must be finite"),
    "backward diff_loss str": (lambda: XENT_B(P, LABELS, diff_loss="1"), TypeError,
                               "diff_loss must be a real number"),
    "backward out dtype": (lambda: XENT_B(P, LABELS, out=np.zeros((4, 3), np.float32)), TypeError,
                           "out has dtype float32 but probs has dtype float64"),
    "backward reduction": (lambda: XENT_B(P, LABELS, reduction="none"), ValueError,
                           "reduction must be"),
    # log_softmax
    "log_softmax 1-D": (lambda: kernels.log_softmax(np.zeros(3)), ValueError, "x must be 2-D"),
    "log_softmax int": (lambda: kernels.log_softmax(np.zeros((2, 2), np.int32)), TypeError,
                        "x must have dtype"),
    "log_softmax no column": (lambda: kernels.log_softmax(np.zeros((2, 0))), ValueError,
                              "x must have at least one class"),
    "log_softmax out shape": (lambda: kernels.log_softmax(X, out=np.zeros((3, 4))), ValueError,
                              "out has shape"),
    "log_softmax out read-only": (lambda: kernels.log_softmax(X, out=_read_only(X)), ValueError,
                                  "out is read-only"),
    "log_softmax_backward dtype": (lambda: kernels.log_softmax_backward(X, X.astype(np.float32)),
                                   TypeError, "y has dtype float32 but diff_y has dtype float64"),
    "log_softmax_backward shape": (lambda: kernels.log_softmax_backward(X, np.zeros((3, 4))),
                                   ValueError, r"y has shape \(3, 4\) but diff_y has shape"),
    "bce targets above 1": (lambda: kernels.bce_with_logits(X, np.where(X == 0, 1.5, 0)),
                            ValueError, r"targets must be probabilities in \[0, 1\], got "
                            r"targets\[0, 0\] = 1.5"),
    "bce targets negative": (lambda: kernels.bce_with_logits_backward(X, P - 0.75), ValueError,
                             r"targets\[0, 0\] = -0.25"),
    "bce targets nan": (lambda: kernels.bce_with_logits(X[0], np.array([0.5, np.nan, 0.5])),
                        ValueError, r"targets\[1\] = nan"),
    "bce targets dtype": (lambda: kernels.bce_with_logits(X, P.astype(np.float32)), TypeError,
                          "targets has dtype float32 but logits has dtype float64"),
    "bce targets shape": (lambda: kernels.bce_with_logits(X, P.T.copy()), ValueError,
                          r"targets has shape \(3, 4\) but logits has shape \(4, 3\)"),
    "bce logits list": (lambda: kernels.bce_with_logits([0.0], np.zeros(1)), TypeError,
                        "logits must be a numpy.ndarray"),
    "bce diff_loss inf": (lambda: kernels.bce_with_logits_backward(X, P, diff_loss=np.inf),
                          ValueError, "diff_loss must be finite"),
    # mse / l1
    "mse target dtype": (lambda: kernels.mse(X, X.astype(np.float32)), TypeError,
                         "target has dtype float32 but pred has dtype float64"),
    "mse target shape": (lambda: kernels.mse(X, X.ravel()), ValueError,
                         r"target has shape \(12,\) but pred has shape \(4, 3\)"),
    "mse pred int": (lambda: kernels.mse(np.zeros(3, np.int64), np.zeros(3)), TypeError,
                     "pred must have dtype"),
    "mse reduction": (lambda: kernels.mse(X, X, reduction="MEAN"), ValueError,
                      "reduction must be"),
    "l1 target strided": (lambda: kernels.l1(X, np.zeros((4, 6))[:, ::2]), ValueError,
                          "target must be C-contiguous"),
    "l1_backward out shape": (lambda: kernels.l1_backward(X, X, out=np.zeros(12)), ValueError,
                              r"out has shape \(12,\) but pred has shape \(4, 3\)"),
    "l1_backward diff_loss bool": (lambda: kernels.l1_backward(X, X, diff_loss=True), TypeError,
                                   "diff_loss must be a real number"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_naming_the_argument(case):
    call, exception, message = BAD_INPUTS[case]
    with pytest.raises(exception, match=message):
        call()


def _overlapping_views():
    """Two (4, 3) views of one buffer, one element apart."""
    buffer = np.zeros(13)
    return buffer[:12].reshape(4, 3), buffer[1:].reshape(4, 3)


def test_outputs_that_partially_overlap_an_input_are_refused():
    logits, probs = _overlapping_views()
    with pytest.raises(ValueError, match="probs partially overlaps logits"):
        kernels.softmax_cross_entropy(logits, LABELS, probs=probs)
    probs, out = _overlapping_views()
    with pytest.raises(ValueError, match="out partially overlaps probs"):
        kernels.softmax_cross_entropy_backward(probs, LABELS, out=out)
    target, out = _overlapping_views()
    with pytest.raises(ValueError, match="out partially overlaps target"):
        kernels.mse_backward(X, target, out=out)
    with pytest.raises(ValueError, match="out must not share memory with y"):
        y = kernels.log_softmax(X)
        kernels.log_softmax_backward(P, y, out=y)


def test_probs_sharing_memory_with_labels_is_refused():
    buffer = np.zeros(12, dtype=np.int64)
    labels, probs = buffer[:4], buffer.view(np.float64).reshape(4, 3)
    with pytest.raises(ValueError, match="probs must not share memory with labels"):
        kernels.softmax_cross_entropy(X, labels, probs=probs)


def test_failed_call_leaves_outputs_untouched():
    logits = np.arange(12.0).reshape(4, 3)
    saved = logits.copy()
    with pytest.raises(ValueError, match="labels"):
        kernels.softmax_cross_entropy(logits, np.array([0, 1, 2, 3]), probs=logits)
    np.testing.assert_array_equal(logits, saved)
    with pytest.raises(ValueError, match="labels"):
        kernels.softmax_cross_entropy_backward(logits, np.array([-1, 1, 2, 0]), out=logits)
    np.testing.assert_array_equal(logits, saved)
