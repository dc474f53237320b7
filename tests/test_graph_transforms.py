"""Reverse and forward mode, higher order and Jacobians on whole graphs: the lecture's XOR
network, random DAGs (hypothesis), deep chains and wide fan-out."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ffnc.graph as G

F64 = np.float64
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=F64)


def xor_net():
    """The lecture's network f(x) = w^T max{0, W^T x + c} + b with the oracle's parameters."""
    x = G.placeholder((None, 2), F64, name="X")
    W = G.parameter(np.array([[1.0, 1.0], [1.0, 1.0]]), name="W")
    c = G.parameter(np.array([0.0, -1.0]), name="c")
    w = G.parameter(np.array([1.0, -2.0]), name="w")
    b = G.parameter(np.array(0.0), name="b")
    return x, (W, c, w, b), G.maximum(0, x @ W + c) @ w + b


def test_xor_network_evaluates_exactly():
    x, _, f = xor_net()
    out = G.evaluate(f, {x: XOR_X})
    assert out.dtype == F64 and out.shape == (4,)
    assert out.tolist() == [0.0, 1.0, 1.0, 0.0]


def test_xor_gradient_matches_the_hand_derivation():
    """J = 1/4 sum (y - f)^2 with targets 1 everywhere: the gradient is -1/2 sum (y - f) dF."""
    x, params, f = xor_net()
    W, c, w, b = params
    y = G.placeholder((None,), F64, name="y")
    loss = G.mean(G.square(y - f))
    grads = G.evaluate(G.grad(loss, list(params)), {x: XOR_X, y: np.ones(4)})
    h_pre = XOR_X @ W.value + c.value
    h = np.maximum(0, h_pre)
    r = -0.5 * (1.0 - (h @ w.value))  # dJ/df per example
    dh = np.outer(r, w.value) * (h_pre > 0)
    expected = [XOR_X.T @ dh, dh.sum(0), h.T @ r, r.sum()]
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_batch_dimension_is_bound_at_evaluation():
    x, params, f = xor_net()
    loss = G.mean(G.square(f))
    dW = G.grad(loss, params[0])
    for rows in (1, 4, 7):
        batch = np.tile(XOR_X, (2, 1))[:rows]
        got = G.evaluate(dW, {x: batch})
        # mean over the batch: scaling the batch by repetition leaves the gradient unchanged
        doubled = G.evaluate(dW, {x: np.concatenate([batch, batch])})
        np.testing.assert_allclose(got, doubled, rtol=1e-14, atol=1e-15)


def test_fan_out_contributions_are_summed():
    x = G.placeholder((3,), F64)
    y = G.sum(x * x + G.tanh(x) + 3 * x)
    dx = G.evaluate(G.grad(y, x), {x: np.array([0.1, -0.5, 2.0])})
    xv = np.array([0.1, -0.5, 2.0])
    np.testing.assert_allclose(dx, 2 * xv + 1 - np.tanh(xv) ** 2 + 3, rtol=1e-14)


def test_unreached_input_gets_zero_and_intermediate_input_works():
    x, z = G.placeholder((2,), F64), G.placeholder((3,), F64)
    h = G.tanh(x)
    y = G.sum(G.square(h))
    dx, dz, dh = G.grad(y, [x, z, h])
    feed = {x: np.array([0.3, -0.2]), z: np.zeros(3)}
    vx, vz, vh = G.evaluate([dx, dz, dh], feed)
    assert vz.tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(vh, 2 * np.tanh([0.3, -0.2]), rtol=1e-14)
    np.testing.assert_allclose(vx, vh * (1 - np.tanh([0.3, -0.2]) ** 2), rtol=1e-14)


# ---- random DAGs of smooth ops ---------------------------------------------------------------

UNARY = [
    G.tanh, G.sigmoid, G.softplus, G.gelu,
    lambda a: G.exp(G.tanh(a)),
    lambda a: G.log(1 + G.square(a)),
    lambda a: G.sqrt(1 + G.square(a)),
    lambda a: G.softmax(a),
    lambda a: G.log_softmax(a),
    lambda a: G.broadcast_to(G.logsumexp(a, keepdims=True), a.shape),
]
BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (1 + G.square(b)),
    lambda a, b: G.matmul(a, G.transpose(b)) @ G.tanh(b),
]


def random_dag(draw_ops):
    """f(x1, x2) for x of shape (3, 3): a DAG whose nodes may feed several later nodes."""
    def f(x1, x2):
        pool = [x1, x2]
        for kind, i, j, which in draw_ops:
            a, b = pool[i % len(pool)], pool[j % len(pool)]
            pool.append(UNARY[which % len(UNARY)](a) if kind == 0 else
                        BINARY[which % len(BINARY)](a, b))
        return pool[-1] + G.tanh(pool[len(pool) // 2])
    return f


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20), st.integers(0, 20),
                              st.integers(0, 20)), min_size=1, max_size=7),
       seed=st.integers(0, 2**16))
def test_random_smooth_dags_reverse_forward_and_differences_agree(ops, seed):
    rng = np.random.default_rng(seed)
    points = [rng.uniform(-1, 1, (3, 3)), rng.uniform(-1, 1, (3, 3))]
    f = random_dag(ops)
    # A random DAG can saturate (tanh of ~10 leaves gradients of ~1e-7, whose finite
    # differences are limited by cancellation to ~1e-13 absolute): judge those against an
    # absolute floor instead of a relative error.
    report = G.gradcheck(f, points, order=1, seed=seed, atol=1e-6)
    assert report.ok
    # and reverse == forward exactly enough: <u, J v> computed both ways
    x1, x2 = G.placeholder((3, 3), F64), G.placeholder((3, 3), F64)
    y = f(x1, x2)
    u = G.constant(rng.standard_normal(y.shape))
    v = [G.constant(rng.standard_normal((3, 3))) for _ in range(2)]
    rev = G.vjp(y, [x1, x2], u)
    fwd = G.jvp(y, [x1, x2], v)
    feed = {x1: points[0], x2: points[1]}
    left = G.evaluate(G.sum(rev[0] * v[0]) + G.sum(rev[1] * v[1]), feed)
    right = G.evaluate(G.sum(fwd * u), feed)
    assert abs(left - right) <= 1e-10 * max(1.0, abs(left))


# ---- cost: linear in the graph, no recursion ------------------------------------------------


def test_depth_2000_chain_grad_is_linear_and_iterative():
    depth = 2000
    x = G.placeholder((4,), F64)
    h = x
    for _ in range(depth):
        h = G.tanh(h) * 0.9 + 0.1
    y = G.sum(h)
    forward_nodes = G.count_nodes(y)
    dx = G.grad(y, x)
    total = G.count_nodes([y, dx])
    # per step: one tanh_grad and one mul by 0.9 (plus their shared constants)
    assert total - forward_nodes <= 2 * depth + 10
    xv = np.linspace(-1, 1, 4)
    value, gradient = G.evaluate([y, dx], {x: xv})
    hv, dv = xv.copy(), np.ones(4)
    for _ in range(depth):
        dv = dv * 0.9 * (1 - np.tanh(hv) ** 2)
        hv = np.tanh(hv) * 0.9 + 0.1
    np.testing.assert_allclose(value, hv.sum(), rtol=1e-12)
    np.testing.assert_allclose(gradient, dv, rtol=1e-10, atol=1e-300)
    tangent = G.jvp(y, x, G.constant(np.ones(4)))
    np.testing.assert_allclose(G.evaluate(tangent, {x: xv}), dv.sum(), rtol=1e-10)
    assert G.count_nodes(G.simplify([y, dx])) <= total


def test_wide_fan_out_grad_is_linear():
    width = 1000
    x = G.placeholder((3,), F64)
    terms = [G.tanh(x * float(i + 1)) for i in range(width)]
    y = G.sum(G.concat(terms, 0))
    forward_nodes = G.count_nodes(y)
    dx = G.grad(y, x)
    added = G.count_nodes([y, dx]) - forward_nodes
    # per branch: a split output, a tanh_grad, a mul and one add of the fan-in sum
    assert added <= 4 * width + 10
    xv = np.array([0.01, -0.02, 0.005])
    expected = sum((i + 1) * (1 - np.tanh((i + 1) * xv) ** 2) for i in range(width))
    np.testing.assert_allclose(G.evaluate(dx, {x: xv}), expected, rtol=1e-12)


# ---- second order, Hessians and Jacobians -----------------------------------------------------


def _mlp_loss():
    x = G.placeholder((5, 3), F64)
    W1 = G.placeholder((3, 4), F64)
    W2 = G.placeholder((4, 2), F64)
    labels = G.constant(np.array([0, 1, 1, 0, 1]))
    loss = G.softmax_cross_entropy(G.tanh(x @ W1) @ W2, labels)
    return x, W1, W2, loss


def test_hvp_modes_agree_and_match_the_dense_hessian():
    rng = np.random.default_rng(11)
    x, W1, W2, loss = _mlp_loss()
    feed = {x: rng.standard_normal((5, 3)), W1: rng.standard_normal((3, 4)),
            W2: rng.standard_normal((4, 2))}
    vs = [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))]
    fwd = G.evaluate(G.hvp(loss, [W1, W2], vs, mode="fwd_rev"), feed)
    rev = G.evaluate(G.hvp(loss, [W1, W2], vs, mode="rev_rev"), feed)
    for a, b in zip(fwd, rev, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    H = G.evaluate(G.hessian(loss, [W1, W2]), feed)
    assert H.shape == (20, 20)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-14)
    flat_v = np.concatenate([v.ravel() for v in vs])
    np.testing.assert_allclose(H @ flat_v, np.concatenate([a.ravel() for a in fwd]),
                               rtol=1e-12, atol=1e-14)
    assert G.HVP_DEFAULT in G.HVP_MODES


def test_hessian_of_a_quadratic_is_exact():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = G.placeholder((2,), F64)
    y = 0.5 * G.sum(x * (G.constant(A) @ x))
    np.testing.assert_allclose(G.evaluate(G.hessian(y, x), {x: np.array([0.3, 0.7])}), A,
                               rtol=1e-15)


@pytest.mark.parametrize("n_in, n_out, expected", [(2, 6, "forward"), (6, 2, "reverse"),
                                                   (3, 3, "reverse")])
def test_jacobian_chooses_mode_from_sizes_and_both_modes_agree(n_in, n_out, expected):
    rng = np.random.default_rng(n_in * 10 + n_out)
    M = G.constant(rng.standard_normal((n_out, n_in)))
    x = G.placeholder((n_in,), F64)
    y = G.tanh(M @ x) * G.sum(G.square(x))
    auto = G.jacobian(y, x)
    assert auto.mode == expected
    other = G.jacobian(y, x, mode="reverse" if expected == "forward" else "forward")
    feed = {x: rng.uniform(-1, 1, n_in)}
    J_auto, J_other = G.evaluate([auto.value, other.value], feed)
    assert J_auto.shape == (n_out, n_in)
    np.testing.assert_allclose(J_auto, J_other, rtol=1e-12, atol=1e-14)
    # against differences, column by column
    x0, h = feed[x], 1e-6
    for j in range(n_in):
        e = np.zeros(n_in)
        e[j] = h
        column = (G.evaluate(y, {x: x0 + e}) - G.evaluate(y, {x: x0 - e})) / (2 * h)
        np.testing.assert_allclose(J_auto[:, j], column, rtol=1e-6, atol=1e-8)


def test_jacobian_of_several_outputs_is_flattened():
    x = G.placeholder((2, 2), F64)
    a, b = G.sum(x, 0), G.square(x)
    result = G.jacobian([a, b], x)
    J = G.evaluate(result.value, {x: np.array([[1.0, 2.0], [3.0, 4.0]])})
    assert J.shape == (6, 4)
    np.testing.assert_allclose(J[:2], [[1, 0, 1, 0], [0, 1, 0, 1]])
    np.testing.assert_allclose(J[2:], np.diag([2.0, 4.0, 6.0, 8.0]))


def test_grad_of_grad_of_grad():
    x = G.placeholder((), F64)
    y = G.exp(x * 2)
    d3 = G.grad(G.grad(G.grad(y, x), x), x)
    assert G.evaluate(d3, {x: np.array(0.5)}) == pytest.approx(8 * np.exp(1.0), rel=1e-14)


@pytest.mark.parametrize("rule", ["vjp", "jvp"])
def test_gradcheck_catches_a_wrong_rule(monkeypatch, rule):
    """gradcheck can fail: tanh with a rule that is off by 1% is reported."""
    op = G.REGISTRY["tanh"]
    wrong = {"vjp": lambda node, ct: [op.vjp(node, ct)[0] * 1.01],
             "jvp": lambda node, t: op.jvp(node, t) * 1.01}
    monkeypatch.setitem(G.REGISTRY, "tanh", replace(op, **{rule: wrong[rule]}))
    with pytest.raises(G.GradcheckError, match="fwd" if rule == "jvp" else "rev"):
        G.gradcheck(G.tanh, [np.array([0.1, 0.2, 0.3])])
    report = G.gradcheck(G.tanh, [np.array([0.1, 0.2, 0.3])], raise_on_failure=False)
    assert not report.ok
