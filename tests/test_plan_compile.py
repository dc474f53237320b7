"""Compiled plans against the reference interpreter (ffnc.graph.evaluate): every supported op,
MLPs with each activation and loss, random DAGs; float64 to 1e-10 relative, float32 to 1e-4
relative (plus 1e-5 absolute: the GEMMs and fused kernels round differently from numpy)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ffnc.graph as G
from ffnc.compiler import CompileError, compile

RTOL = {np.float32: 1e-4, np.float64: 1e-10}
ATOL = {np.float32: 1e-5, np.float64: 1e-12}
ACTS = ["relu", "leaky_relu", "abs", "tanh", "sigmoid", "softplus", "hard_tanh", "elu", "gelu"]


def close(actual, expected, dtype):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=RTOL[dtype], atol=ATOL[dtype])


def check_against_reference(outputs, feed, dtype, batch_size=8, wrt=None, loss=None):
    """Runs the plan once (no optimizer) and compares outputs and gradients."""
    plan = compile(outputs, batch_size=batch_size, loss=loss, params=wrt)
    got = plan.run({k.name: v for k, v in feed.items()})
    expected = G.evaluate(outputs, feed)
    for a, e in zip(got, expected, strict=True):
        assert a.shape == e.shape
        close(a, e, dtype)
    if loss is not None:
        for p, e in zip(wrt, G.evaluate(G.grad(loss, wrt), feed), strict=True):
            close(plan.grads[p], e, dtype)
    return plan


def mlp(dtype, rng, act, sizes=(5, 7, 6, 3)):
    x = G.placeholder((None, sizes[0]), dtype, name="x")
    params, h = [], x
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = G.parameter((rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype), name=f"W{i}")
        bias = G.parameter((0.1 * rng.standard_normal(b)).astype(dtype), name=f"b{i}")
        params += [w, bias]
        h = h @ w + bias
        if i < len(sizes) - 2:
            h = G.activation(h, act)
    return x, params, h


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss_name", ["softmax_cross_entropy", "bce_with_logits", "mse", "l1"])
def test_mlp_matches_reference(dtype, rng, act, loss_name):
    x, params, z = mlp(dtype, rng, act)
    batch = 6
    xv = rng.standard_normal((batch, 5)).astype(dtype)
    if loss_name == "softmax_cross_entropy":
        y = G.placeholder((None,), np.int64, name="y")
        yv = rng.integers(0, 3, batch)
    else:
        y = G.placeholder((None, 3), dtype, name="y")
        yv = rng.random((batch, 3)).astype(dtype)
    loss = getattr(G, loss_name)(z, y)
    check_against_reference([loss, z], {x: xv, y: yv}, dtype, wrt=params, loss=loss)


def test_smaller_batch_and_sum_reduction(dtype, rng):
    x, params, z = mlp(dtype, rng, "tanh")
    y = G.placeholder((None,), np.int64, name="y")
    loss = G.softmax_cross_entropy(z, y, reduction="sum")
    for batch in (1, 3, 8):
        feed = {x: rng.standard_normal((batch, 5)).astype(dtype), y: rng.integers(0, 3, batch)}
        check_against_reference([loss], feed, dtype, wrt=params, loss=loss)


UNARY = [G.neg, G.exp, G.square, lambda v: G.sqrt(G.square(v) + 1), lambda v: G.log(G.exp(v))]


@pytest.mark.parametrize("fn", range(len(UNARY)))
def test_unary_ops(dtype, rng, fn):
    x = G.placeholder((None, 4), dtype, name="x")
    out = UNARY[fn](x)
    w = G.parameter(rng.standard_normal(4).astype(dtype), name="w")
    loss = G.sum(UNARY[fn](x * w))
    check_against_reference([out, loss], {x: rng.standard_normal((5, 4)).astype(dtype)}, dtype,
                            wrt=[w], loss=loss)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum"])
@pytest.mark.parametrize("other_shape", [(None, 4), (4,), (1, 4), (None, 1), ()])
def test_binary_ops_broadcast(dtype, rng, op, other_shape):
    x = G.placeholder((None, 4), dtype, name="x")
    static = tuple(d for d in other_shape if d is not None)
    if None in other_shape:
        o = G.placeholder(other_shape, dtype, name="o")
        ov = rng.standard_normal((5,) + other_shape[1:]).astype(dtype) + 3
        feed = {x: rng.standard_normal((5, 4)).astype(dtype), o: ov}
        other = o
        wrt = []
    else:
        other = G.parameter((rng.standard_normal(static) + 3).astype(dtype), name="p")
        feed = {x: rng.standard_normal((5, 4)).astype(dtype)}
        wrt = [other]
    out = getattr(G, op)(x, other)
    loss = G.sum(out * out)
    check_against_reference([out, loss], feed, dtype, wrt=wrt or None,
                            loss=loss if wrt else None)


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_reductions(dtype, rng, reduce, axis):
    x = G.placeholder((None, 6), dtype, name="x")
    w = G.parameter(rng.standard_normal(6).astype(dtype), name="w")
    out = getattr(G, reduce)(G.tanh(x * w), axis)
    loss = G.sum(G.square(out))
    check_against_reference([out, loss], {x: rng.standard_normal((7, 6)).astype(dtype)}, dtype,
                            wrt=[w], loss=loss)


def test_layout_ops(dtype, rng):
    x = G.placeholder((None, 6), dtype, name="x")
    w = G.parameter(rng.standard_normal((6, 3)).astype(dtype), name="w")
    v = G.parameter(rng.standard_normal(3).astype(dtype), name="v")
    h = x @ w
    t = G.transpose(w)                      # (3, 6)
    r = G.reshape(h, (None, 3, 1))
    b = G.broadcast_to(v, (4, 3))
    loss = G.sum(G.square(G.matmul(h, t))) + G.sum(r) + G.sum(b * b) + G.mean(x @ w, 1).sum()
    check_against_reference([loss, t, r, b], {x: rng.standard_normal((5, 6)).astype(dtype)},
                            dtype, wrt=[w, v], loss=loss)


def test_transposed_matmuls_and_vectors(dtype, rng):
    x = G.placeholder((None, 4), dtype, name="x")
    w = G.parameter(rng.standard_normal((3, 4)).astype(dtype), name="w")   # PyTorch layout
    u = G.parameter(rng.standard_normal(3).astype(dtype), name="u")
    h = G.relu(G.matmul(x, w, transpose_b=True))
    s = h @ u                                                               # matrix @ vector
    g = G.matmul(h, h, transpose_a=True)                                   # h^T h
    loss = G.sum(G.square(s)) + G.sum(g)
    check_against_reference([loss, s, g], {x: rng.standard_normal((6, 4)).astype(dtype)}, dtype,
                            wrt=[w, u], loss=loss)


def test_shared_weight_accumulates_gradients(dtype, rng):
    """A weight used twice: its gradient is the sum of two GEMMs, written into one buffer."""
    x = G.placeholder((None, 4), dtype, name="x")
    w = G.parameter(rng.standard_normal((4, 4)).astype(dtype) / 2, name="w")
    loss = G.sum(G.square(G.tanh(G.tanh(x @ w) @ w)))
    plan = check_against_reference([loss], {x: rng.standard_normal((5, 4)).astype(dtype)}, dtype,
                                   wrt=[w], loss=loss)
    gemms_into_grads = [i for i in plan.instructions
                        if i.opcode == "gemm" and i.refs[2][0].arena == "grads"]
    assert len(gemms_into_grads) == 2
    assert sum("accumulate" in i.flags for i in gemms_into_grads) == 1


def test_fusions_in_a_training_step(rng):
    x, params, z = mlp(np.float32, rng, "relu", sizes=(5, 8, 8, 3))
    y = G.placeholder((None,), np.int64, name="y")
    loss = G.softmax_cross_entropy(z, y)
    plan = compile(loss, loss=loss, batch_size=4)
    ops = [i.opcode for i in plan.instructions]
    assert ops.count("dense_forward") == 3 and "act_forward" not in ops
    assert ops.count("xent_forward") == 1 and ops.count("xent_backward") == 1
    assert plan.memory.arena <= plan.memory.naive


def test_activation_arena_reuses_memory(rng):
    x, params, z = mlp(np.float64, rng, "tanh", sizes=(8,) + (32,) * 8 + (3,))
    loss = G.sum(G.square(z))
    plan = compile(loss, loss=loss, batch_size=16)
    assert plan.memory.arena < plan.memory.naive


def _random_dag(draw, dtype, rng):
    x = G.placeholder((None, 3), dtype, name="x")
    w = G.parameter(rng.standard_normal((3, 3)).astype(dtype) / 2, name="w")
    b = G.parameter(rng.standard_normal(3).astype(dtype), name="b")
    pool = [x, w, b]
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["add", "sub", "mul", "tanh", "sigmoid", "matmul", "square",
                                     "neg", "relu"]))
        a = draw(st.sampled_from(pool))
        c = draw(st.sampled_from(pool))
        if kind in ("tanh", "sigmoid", "relu", "square", "neg"):
            node = getattr(G, kind)(a)
        elif kind == "matmul":
            if a.ndim != 2:
                continue
            node = a @ w
        else:
            try:
                node = getattr(G, kind)(a, c)
            except ValueError:
                continue
        pool.append(node)
    return x, w, b, G.sum(G.square(pool[-1])) + G.sum(pool[-1])


@settings(max_examples=25, deadline=None)
@given(st.data(), st.sampled_from([np.float32, np.float64]))
def test_random_dags_match_reference(data, dtype):
    rng = np.random.default_rng(7)
    x, w, b, loss = _random_dag(data.draw, dtype, rng)
    used = {n.id for n in G.topo_order([loss])}
    wrt = [p for p in (w, b) if p.id in used]
    feed = {x: rng.standard_normal((4, 3)).astype(dtype)} if x.id in used else {}
    check_against_reference([loss], feed, dtype, wrt=wrt or None,
                            loss=loss if wrt else None)


def test_unsupported_pattern_names_it(rng):
    x = G.placeholder((None, 2, 3), np.float64, name="x")
    with pytest.raises(CompileError, match="sum .*axes"):
        compile(G.sum(x, 1), batch_size=2)


def test_compile_argument_errors(rng):
    x = G.placeholder((None, 3), np.float64, name="x")
    w = G.parameter(np.ones((3, 2)), name="w")
    loss = G.sum(x @ w)
    with pytest.raises(ValueError, match="batch_size"):
        compile(loss, batch_size=0)
    with pytest.raises(ValueError, match="loss"):
        from ffnc.compiler import SGD
        compile(loss, batch_size=2, optimizer=SGD(0.1))
    y = G.placeholder((None,), np.int32, name="y")
    with pytest.raises(CompileError, match="int64"):
        compile(G.softmax_cross_entropy(x @ w, y), batch_size=2)
    w32 = G.parameter(np.ones((3, 2), np.float32), name="w32")
    x32 = G.placeholder((None, 3), np.float32, name="x32")
    with pytest.raises(CompileError, match="one float dtype"):
        compile([G.sum(x32 @ w32), loss], batch_size=2)
