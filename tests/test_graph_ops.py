"""Every registered op: VJP and JVP against finite differences, second order, and the coverage
rule that keeps it so (a new op without a check fails test_every_op_is_checked)."""

import re
import zlib
from pathlib import Path

import numpy as np
import pytest

import ffnc
import ffnc.graph as G
from ffnc.graph.ir import apply

F64 = np.float64


def away(rng, shape, kinks=(0.0,), low=-2.0, high=2.0, gap=0.1):
    """Uniform samples at least `gap` from every kink (where derivatives jump)."""
    x = rng.uniform(low, high, shape)
    for _ in range(100):
        near = np.zeros(x.shape, dtype=bool)
        for k in kinks:
            near |= np.abs(x - k) < gap
        if not near.any():
            return x
        x[near] = rng.uniform(low, high, int(near.sum()))
    raise AssertionError("could not sample away from the kinks")


def normal(rng, *shape):
    return rng.standard_normal(shape)


def positive(rng, *shape):
    return rng.uniform(0.5, 2.0, shape)


def spaced(rng, *shape):
    """Distinct values 0.3 apart: no ties, and no argmax flips under the differences."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.3 - 0.15 * n).reshape(shape) + rng.uniform(0, 0.01, shape)


def labels(rng, rows, classes):
    return rng.integers(0, classes, rows).astype(np.int64)


def grad_op(name, **attrs):
    return lambda g, s: apply(f"{name}_grad", [g, s], {"alpha": 0.0, **attrs})


def loss_grad(name, reduction="mean"):
    return lambda a, b, ct: apply(f"{name}_grad", [a, b, ct], {"reduction": reduction})


MASK = np.array([[True, False, True, False], [False, True, True, False], [True, True, False,
                                                                          False]])
ACT_KINKS = {"relu": (0,), "leaky_relu": (0,), "abs": (0,), "hard_tanh": (-1, 1), "elu": (0,)}

# (id, f, inputs(rng), options): f builds the checked graph from one placeholder per input.
CASES = [
    ("add", lambda a, b: a + b, lambda r: [normal(r, 3, 4), normal(r, 4)], {}),
    ("add_scalar", lambda a: 2.5 + a, lambda r: [normal(r, 3)], {}),
    ("sub", lambda a, b: a - b, lambda r: [normal(r, 3, 1), normal(r, 1, 4)], {}),
    ("mul", lambda a, b: a * b, lambda r: [normal(r, 3, 4), normal(r, 3, 4)], {}),
    ("mul_broadcast", lambda a, b: a * b, lambda r: [normal(r, 2, 3, 4), normal(r, 3, 1)], {}),
    ("div", lambda a, b: a / b, lambda r: [normal(r, 3, 4), positive(r, 4)], {}),
    ("neg", lambda a: -a, lambda r: [normal(r, 5)], {}),
    ("exp", G.exp, lambda r: [normal(r, 3, 2)], {}),
    ("log", G.log, lambda r: [positive(r, 3, 2)], {}),
    ("square", G.square, lambda r: [normal(r, 3, 2)], {}),
    ("sqrt", G.sqrt, lambda r: [positive(r, 3, 2)], {}),
    ("maximum", G.maximum, lambda r: [spaced(r, 3, 4), spaced(r, 3, 4) + 0.1], {}),
    ("minimum", G.minimum, lambda r: [spaced(r, 3, 4), spaced(r, 3, 4) + 0.1], {}),
    ("where", lambda a, b: G.where(G.constant(MASK), a * a, b),
     lambda r: [normal(r, 3, 4), normal(r, 4)], {}),
    ("greater", lambda a, b: G.where(G.greater(a, b), G.tanh(a), b * b),
     lambda r: [spaced(r, 3, 4), spaced(r, 3, 4) + 0.1], {}),
    ("greater_equal", lambda a, b: G.where(G.greater_equal(a, b), G.exp(a), b),
     lambda r: [spaced(r, 3, 4), spaced(r, 3, 4) + 0.1], {}),
    ("equal", lambda a, b: G.where(G.equal(a, b), a, a * b),
     lambda r: [spaced(r, 3, 4), spaced(r, 3, 4) + 0.1], {}),
    ("sum", lambda a: G.sum(a, (0, 2)), lambda r: [normal(r, 2, 3, 4)], {}),
    ("sum_keepdims", lambda a: G.sum(G.square(a), 1, keepdims=True),
     lambda r: [normal(r, 2, 3, 4)], {}),
    ("mean", lambda a: G.mean(G.square(a), 0), lambda r: [normal(r, 3, 4)], {}),
    ("count", lambda a: G.sum(G.square(a)) / G.count(a, 1), lambda r: [normal(r, 3, 4)], {}),
    ("reshape", lambda a: G.reshape(a, (3, -1)) * G.constant(np.arange(12.0).reshape(3, 4)),
     lambda r: [normal(r, 2, 6)], {}),
    ("transpose", lambda a: G.square(G.transpose(a, (1, 2, 0))), lambda r: [normal(r, 2, 3, 4)],
     {}),
    ("broadcast_to", lambda a: G.square(G.broadcast_to(a, (2, 3, 4))), lambda r: [normal(r, 3, 1)],
     {}),
    ("concat", lambda a, b: G.square(G.concat([a, b], 1)), lambda r: [normal(r, 2, 3),
                                                                      normal(r, 2, 2)], {}),
    ("split", lambda a: (lambda p: G.concat([G.square(p[1]), G.exp(p[0])], 1))(
        G.split(a, [2, 3], 1)), lambda r: [normal(r, 2, 5)], {}),
    ("one_hot", lambda a, y: G.sum(G.square(a) * G.one_hot(y, 3, F64), 1),
     lambda r: [normal(r, 4, 3), labels(r, 4, 3)], {}),
    ("cast", lambda a: G.cast(G.square(G.cast(a, np.float32)), F64),
     lambda r: [normal(r, 3)], {"rtol": 1e-3, "order": 1}),
    ("matmul", lambda a, b: a @ b, lambda r: [normal(r, 3, 4), normal(r, 4, 2)], {}),
    ("matmul_ta", lambda a, b: G.matmul(a, b, transpose_a=True),
     lambda r: [normal(r, 4, 3), normal(r, 4, 2)], {}),
    ("matmul_tb", lambda a, b: G.matmul(a, b, transpose_b=True),
     lambda r: [normal(r, 3, 4), normal(r, 2, 4)], {}),
    ("matmul_ta_tb", lambda a, b: G.square(G.matmul(a, b, transpose_a=True, transpose_b=True)),
     lambda r: [normal(r, 4, 3), normal(r, 2, 4)], {}),
    ("matmul_mv", lambda a, b: G.square(a @ b), lambda r: [normal(r, 3, 4), normal(r, 4)], {}),
    ("matmul_vm", lambda a, b: G.square(a @ b), lambda r: [normal(r, 4), normal(r, 4, 2)], {}),
    ("matmul_vv", lambda a, b: G.square(a @ b), lambda r: [normal(r, 4), normal(r, 4)], {}),
    ("sqdist", G.sqdist, lambda r: [normal(r, 3, 2), normal(r, 4, 2)], {}),
    ("softmax", lambda a: G.softmax(a), lambda r: [normal(r, 3, 4)], {}),
    ("softmax_axis0", lambda a: G.softmax(a, 0), lambda r: [normal(r, 3, 4)], {}),
    ("log_softmax", lambda a: G.log_softmax(a), lambda r: [normal(r, 3, 4)], {}),
    ("logsumexp", lambda a: G.logsumexp(a), lambda r: [normal(r, 3, 4)], {}),
    ("logsumexp_keepdims", lambda a: G.logsumexp(a, 0, keepdims=True), lambda r: [normal(r, 3, 4)],
     {}),
    ("group_max", lambda a: G.square(G.group_max(a, 3)[0]), lambda r: [spaced(r, 2, 6)], {}),
    ("group_max_rows", lambda a: G.exp(G.group_max(a, 4)[0]), lambda r: [spaced(r, 3, 4)], {}),
    ("softmax_cross_entropy", lambda a, y: G.softmax_cross_entropy(a, y),
     lambda r: [normal(r, 4, 3), labels(r, 4, 3)], {}),
    ("softmax_cross_entropy_sum", lambda a, y: G.softmax_cross_entropy(a, y, "sum"),
     lambda r: [normal(r, 4, 3), labels(r, 4, 3)], {}),
    ("bce_with_logits", G.bce_with_logits, lambda r: [normal(r, 3, 4), r.uniform(0, 1, (3, 4))],
     {}),
    ("mse", G.mse, lambda r: [normal(r, 3, 4), normal(r, 3, 4)], {}),
    ("mse_sum", lambda a, b: G.mse(a, b, "sum"), lambda r: [normal(r, 5), normal(r, 5)], {}),
    ("l1", G.l1, lambda r: [spaced(r, 3, 4), spaced(r, 3, 4) + 0.1], {}),
    ("softmax_cross_entropy_grad", loss_grad("softmax_cross_entropy"),
     lambda r: [normal(r, 4, 3), labels(r, 4, 3), normal(r)], {}),
    ("bce_with_logits_grad", loss_grad("bce_with_logits", "sum"),
     lambda r: [normal(r, 3, 4), r.uniform(0, 1, (3, 4)), normal(r)], {}),
    ("mse_grad", loss_grad("mse"), lambda r: [normal(r, 3, 4), normal(r, 3, 4), normal(r)], {}),
    ("l1_grad", loss_grad("l1"),
     lambda r: [spaced(r, 3, 4), spaced(r, 3, 4) + 0.1, normal(r)], {}),
]
CASES.append(("prelu", G.prelu, lambda r: [away(r, (3, 4), (0,)), r.uniform(0.1, 0.5, 4)], {}))
CASES.append(("prelu_shared", G.prelu, lambda r: [away(r, (3, 4), (0,)), r.uniform(0.1, 0.5, 1)],
              {}))
CASES.append(("prelu_grad", lambda g, x, a: G.concat(
    [G.reshape(d, (-1,)) for d in G.ops.outputs(apply("prelu_grad", [g, x, a]))], 0),
    lambda r: [normal(r, 3, 4), away(r, (3, 4), (0,)), r.uniform(0.1, 0.5, 4)], {}))
for _name in G.ACTIVATIONS:
    _kinks = ACT_KINKS.get(_name, ())
    CASES.append((_name, (lambda n: lambda a: G.activation(a, n))(_name),
                  (lambda k: lambda r: [away(r, (3, 4), k, -3, 3)])(_kinks), {}))
    # the derivative op, differentiated in its gradient and in its saved argument
    CASES.append((f"{_name}_grad", grad_op(_name, alpha={"leaky_relu": 0.01, "elu": 1.0}.get(
        _name, 0.0)), (lambda k: lambda r: [normal(r, 3, 4), away(r, (3, 4), k, -3, 3)])(_kinks),
        {}))
CASES.append(("leaky_relu_alpha", lambda a: G.leaky_relu(a, 0.3),
              lambda r: [away(r, (3, 4), (0,))], {}))
CASES.append(("elu_alpha", lambda a: G.elu(a, 0.5), lambda r: [away(r, (3, 4), (0,))], {}))
CASES.append(("dropout", lambda a: G.square(G.dropout(a, 0.4, seed=3)),
              lambda r: [normal(r, 3, 4)], {}))
CASES.append(("argmax", lambda a: G.square(a) * G.one_hot(G.argmax(a), 4, F64),
              lambda r: [spaced(r, 3, 4)], {}))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_derivatives_match_finite_differences(case):
    """VJP and JVP against central differences in float64 (relative error <= 1e-6), and the
    second order (forward-over-reverse and reverse-over-reverse Hessian-vector products)."""
    _, f, make_inputs, options = case
    rng = np.random.default_rng(zlib.crc32(case[0].encode()))
    report = G.gradcheck(f, make_inputs(rng), order=options.get("order", 2),
                         rtol=options.get("rtol", 1e-6), seed=7)
    assert report.ok
    assert set(report.errors) >= {"rev", "fwd"}


def _ops_in(case):
    _, f, make_inputs, _ = case
    points = make_inputs(np.random.default_rng(0))
    y = f(*[G.placeholder(p.shape, p.dtype) for p in points])
    return {n.op for n in G.topo_order([y])}


def test_every_op_is_checked():
    """Each registered op has both rules and appears in a graph that the check above
    differentiates (first and, for most, second order)."""
    checked = set().union(*(_ops_in(c) for c in CASES))
    for name, op in G.REGISTRY.items():
        assert callable(op.vjp) and callable(op.jvp), name
    missing = sorted(set(G.REGISTRY) - checked)
    assert not missing, f"ops without a derivative check: {missing}"


def test_kernels_named_by_ops_exist_in_the_c_api():
    header = Path(__file__).resolve().parents[1] / "csrc" / "include" / "ffnc.h"
    declared = set(re.findall(r"\b(ffnc_\w+)\s*\(", header.read_text()))
    named = {op.kernel for op in G.REGISTRY.values() if op.kernel is not None}
    assert named, "no op names a kernel"
    assert named <= declared, sorted(named - declared)


# ---- the numpy forwards follow the C kernels exactly -------------------------------------------

KINK_POINTS = np.array([-2.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.5, 40.0, -40.0, np.nan])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(G.ACTIVATIONS))
def test_activation_interpreter_matches_c_kernel(name, dtype):
    """Forward and derivative at random points, at the kinks, far out and at NaN: the numpy
    reference and ffnc.kernels agree (conventions included)."""
    rng = np.random.default_rng(3)
    x_val = np.concatenate([rng.uniform(-3, 3, 64), KINK_POINTS]).astype(dtype)
    g_val = rng.standard_normal(x_val.shape).astype(dtype)
    x = G.placeholder(x_val.shape, dtype)
    g = G.placeholder(x_val.shape, dtype)
    y = G.activation(x, name)
    dx = G.vjp(y, x, g)
    y_ref, dx_ref = G.evaluate([y, dx], {x: x_val, g: g_val})
    y_c = ffnc.kernels.activation_forward(x_val, name)
    saved = y_c if ffnc.kernels.activation_saves(name) == "output" else x_val
    dx_c = ffnc.kernels.activation_backward(g_val, saved, name)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y_ref, y_c, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dx_ref, dx_c, rtol=rtol, atol=rtol)
    assert np.array_equal(np.isnan(y_ref), np.isnan(y_c))


def _derivative_at(f, point, dtype=F64):
    x = G.placeholder((len(point),), dtype)
    y = f(x)
    return G.evaluate(G.grad(G.sum(y), x), {x: np.asarray(point, dtype)})


def test_non_differentiable_conventions():
    """The documented choices at kinks (same as the C kernels)."""
    assert _derivative_at(G.relu, [0.0, -0.0])[0] == 0.0
    assert _derivative_at(G.abs, [0.0])[0] == 0.0
    assert list(_derivative_at(G.hard_tanh, [-1.0, 1.0, 0.0])) == [0.0, 0.0, 1.0]
    assert _derivative_at(lambda x: G.leaky_relu(x, 0.2), [0.0])[0] == pytest.approx(0.2)
    assert _derivative_at(lambda x: G.elu(x, 0.5), [0.0])[0] == pytest.approx(0.5)
    # maximum/minimum: a tie sends the gradient to the first argument; max{0, z} at 0 is 0
    a, b = G.placeholder((2,), F64), G.placeholder((2,), F64)
    feed = {a: np.array([1.0, 2.0]), b: np.array([1.0, 2.0])}
    for op in (G.maximum, G.minimum):
        da, db = G.evaluate(G.grad(G.sum(op(a, b)), [a, b]), feed)
        assert list(da) == [1.0, 1.0] and list(db) == [0.0, 0.0]
    assert _derivative_at(lambda z: G.maximum(0, z), [0.0])[0] == 0.0
    # group max: ties go to the first maximum, in value, index and derivative
    x = G.placeholder((2, 4), F64)
    values, index = G.group_max(x, 4)
    dx = G.grad(G.sum(values), x)
    v, i, d = G.evaluate([values, index, dx], {x: np.array([[1, 3, 3, 0], [2, 2, 2, 2.0]])})
    assert list(v) == [3, 2] and list(i) == [1, 0]
    assert d.tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]
    # l1's derivative is sign(p - t), 0 at p == t
    p, t = G.placeholder((3,), F64), G.placeholder((3,), F64)
    dp = G.evaluate(G.grad(G.l1(p, t, "sum"), p), {p: np.array([1.0, 2, 3]),
                                                   t: np.array([0.0, 2, 4])})
    assert dp.tolist() == [1.0, 0.0, -1.0]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_losses_match_c_kernels(reduction):
    rng = np.random.default_rng(5)
    z_val, y_val = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    t_val = rng.uniform(0, 1, (6, 4))
    z = G.placeholder((None, 4), F64)
    y = G.placeholder((None,), np.int64)
    t = G.placeholder((None, 4), F64)
    losses = [G.softmax_cross_entropy(z, y, reduction), G.bce_with_logits(z, t, reduction),
              G.mse(z, t, reduction), G.l1(z, t, reduction)]
    grads = [G.grad(loss, z) for loss in losses]
    got = G.evaluate(losses + grads, {z: z_val, y: y_val, t: t_val})
    k = ffnc.kernels
    ce, probs = k.softmax_cross_entropy(z_val, y_val, reduction=reduction)
    expected = [ce, k.bce_with_logits(z_val, t_val, reduction=reduction),
                k.mse(z_val, t_val, reduction=reduction), k.l1(z_val, t_val, reduction=reduction),
                k.softmax_cross_entropy_backward(probs, y_val, reduction=reduction),
                k.bce_with_logits_backward(z_val, t_val, reduction=reduction),
                k.mse_backward(z_val, t_val, reduction=reduction),
                k.l1_backward(z_val, t_val, reduction=reduction)]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_softmax_family_is_stable_for_large_inputs():
    x = G.placeholder((2, 3), F64)
    big = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1001.0, -999.0]])
    s, ls, lse = G.evaluate([G.softmax(x), G.log_softmax(x), G.logsumexp(x)], {x: big})
    shifted = big - big.max(axis=1, keepdims=True)
    ref = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(s, ref, rtol=1e-14)
    np.testing.assert_allclose(ls, np.log(ref), rtol=1e-14)
    np.testing.assert_allclose(lse, big.max(axis=1) + np.log(np.exp(shifted).sum(axis=1)),
                               rtol=1e-14)
