"""Every op of the graph registry compiled into a plan, forward and gradient, against the
reference interpreter (ffnc.graph.evaluate): float64 to 1e-10 relative (plus 1e-12 times the
array's largest magnitude), float32 to 1e-4 relative plus 1e-5 times the array's largest
magnitude (the row-wise kernels sum in double and use a vectorised exp within 2 ulp, numpy
sums in float32, and second derivatives cancel terms of that size). Each op at batch 1 and 5
from one plan. Plus: argmax ties and NaN, the accuracy metric, integer and label errors, the
fusions (dense backward, softmax backwards, the maxout scatter, reshape aliases), edge shapes
and extreme values, dropout (keep rate within 4 sigma, plan == interpreter bit for bit, a
fresh mask per step, p = 0, gradcheck, JVP), random DAGs with the new ops, and bitwise
equality of 1 and 2 threads for the row-wise, reduction and dropout instructions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ffnc
import ffnc.graph as G
from ffnc.compiler import SGD, CompileError, compile
from ffnc.graph.ir import apply
from ffnc.graph.ops.noise import dropout_keep

RTOL = {np.float32: 1e-4, np.float64: 1e-10}
ATOL = {np.float32: 1e-5, np.float64: 1e-12}
BATCHES = (1, 5)


def close(actual, expected, dtype, what=""):
    expected = np.asarray(expected)
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        assert actual.dtype == expected.dtype, what
        return
    expected = expected.astype(np.float64)
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(np.max(finite, initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=RTOL[dtype],
                               atol=ATOL[dtype] * scale, err_msg=what)


def check(outputs, feed, dtype, wrt=(), loss=None, step=0, batches=None):
    """Compiles outputs (and the gradient of loss with respect to wrt), runs one step on the
    leading `batches` rows of feed (default: all of them; one plan serves every batch) and
    compares everything with the interpreter. Returns the plan."""
    outputs = list(outputs)
    rows = max([v.shape[0] for k, v in feed.items() if k.shape and k.shape[0] is None] or [1])
    plan = compile(outputs, batch_size=rows, loss=loss, params=list(wrt) or None)
    grads = G.grad(loss, list(wrt)) if loss is not None and wrt else []
    for batch in batches or (rows,):
        part = {k: v[:batch] if k.shape and k.shape[0] is None else v for k, v in feed.items()}
        plan.step = step
        got = plan.run({k.name: v for k, v in part.items()})
        expected = G.evaluate(outputs + grads, part, step=step)
        for node, a, e in zip(outputs, got, expected[:len(outputs)], strict=True):
            assert a.shape == e.shape, node
            close(a, e, dtype, f"output {node.label} at batch {batch}")
        for p, e in zip(wrt if grads else [], expected[len(outputs):], strict=True):
            close(plan.grads[p], e, dtype, f"gradient of {p.label} at batch {batch}")
    return plan


def param(rng, shape, dtype, name, scale=1.0, shift=0.0):
    return G.parameter((scale * rng.standard_normal(shape) + shift).astype(dtype), name=name)


def data(rng, shape, dtype, scale=1.0, shift=0.0):
    return (scale * rng.standard_normal(shape) + shift).astype(dtype)


def energy(*nodes):
    """A scalar with a non-trivial gradient through every node."""
    total = None
    for i, n in enumerate(nodes):
        term = G.sum(G.square(n)) + G.sum(n) * (0.5 + i)
        total = term if total is None else total + term
    return total


# ---- one case per registered op ---------------------------------------------------------------
# Each builder takes (dtype, rng, batch) and returns (outputs, feed, wrt, loss).


def _x(dtype, rng, batch, cols=6, shift=0.0, name="x"):
    x = G.placeholder((None, cols), dtype, name=name)
    return x, data(rng, (batch, cols), dtype, shift=shift)


def _affine(dtype, rng, batch, cols=6, out=6):
    x, xv = _x(dtype, rng, batch, cols)
    w = param(rng, (cols, out), dtype, "w", 1 / np.sqrt(cols))
    b = param(rng, (out,), dtype, "b", 0.1)
    return x, xv, w, b, x @ w + b


def _activation(name):
    def build(dtype, rng, batch):
        x, xv, w, b, z = _affine(dtype, rng, batch)
        out = G.activation(z, name)
        return [out], {x: xv}, [w, b], energy(out)
    return build


def _activation_grad(name):
    def build(dtype, rng, batch):
        x, xv, w, b, z = _affine(dtype, rng, batch)
        g = G.grad(G.sum(G.activation(z, name) * G.tanh(z)), w)
        return [g], {x: xv}, [w, b], energy(g)
    return build


def _binary(op, positive=False):
    def build(dtype, rng, batch):
        x, xv, w, b, z = _affine(dtype, rng, batch)
        other = param(rng, (6,), dtype, "o", shift=3.0 if positive else 0.0)
        out = getattr(G, op)(z, other)
        return [out], {x: xv}, [w, b, other], energy(out)
    return build


def _unary(op):
    def build(dtype, rng, batch):
        x, xv, w, b, z = _affine(dtype, rng, batch)
        arg = G.square(z) + 0.5 if op in ("log", "sqrt") else z
        out = getattr(G, op)(arg)
        return [out], {x: xv}, [w, b], energy(out)
    return build


def _comparison(op):
    def build(dtype, rng, batch):
        x, xv, w, b, z = _affine(dtype, rng, batch)
        xv[:, 2] = 0.25  # ties for equal and greater_equal
        ref = param(rng, (6,), dtype, "r")
        mask = getattr(G, op)(x, G.constant(np.full(6, 0.25, dtype)))
        out = G.where(mask, z, z * ref)
        return [out, mask, G.cast(mask, dtype)], {x: xv}, [w, b, ref], energy(out)
    return build


def _where(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    s = param(rng, (6,), dtype, "s")
    out = G.where(G.greater(z, s), G.tanh(z), G.constant(np.asarray(0.5, dtype)))
    out2 = G.where(G.constant(np.array([True, False, True, True, False, True])), z, s)
    return [out, out2], {x: xv}, [w, b, s], energy(out, out2)


def _one_hot(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    y = G.placeholder((None,), np.int64, name="y")
    hot = G.one_hot(y, 6, dtype)
    idx = G.one_hot(G.argmax(z), 6, dtype)
    out = z * hot + idx
    return [out, hot], {x: xv, y: rng.integers(0, 6, batch)}, [w, b], energy(out)


def _cast(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    y = G.placeholder((None,), np.int64, name="y")
    labels = G.cast(y, dtype)
    out = z * G.reshape(labels, (None, 1)) + G.reshape(G.cast(G.argmax(z), dtype), (None, 1))
    return [out, labels], {x: xv, y: rng.integers(-3, 9, batch)}, [w, b], energy(out)


def _concat(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    c = param(rng, (2, 3), dtype, "c")
    wide = G.concat([z, G.tanh(x), z * 2], axis=1)
    tall = G.concat([c, c * 3], axis=0)
    return [wide, tall], {x: xv}, [w, b, c], energy(wide, tall)


def _split(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    left, mid, right = G.split(z, [1, 3, 2], axis=1)
    c = param(rng, (4, 3), dtype, "c")
    top, bottom = G.split(c, [1, 3], axis=0)       # contiguous pieces: aliases
    out = left * G.sum(right, 1, keepdims=True) + G.sum(mid * mid)
    return [out, top, mid], {x: xv}, [w, b, c], energy(out, bottom)


def _group_max(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    xv[:, :] = np.round(xv * 2) / 2  # ties inside groups
    m, idx = G.group_max(x * 1 + z, 3)
    maxed = G.maxout(z, 2)
    return [m, idx, maxed], {x: xv}, [w, b], energy(m, maxed)


def _output(dtype, rng, batch):
    return _split(dtype, rng, batch)


def _argmax(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    xv[:, 3] = xv[:, 1]
    am = G.argmax(x)
    am0 = G.argmax(z, axis=0)
    loss = energy(z)
    return [am, am0, G.argmax(G.reshape(z, (None, 2, 3)), axis=1)], {x: xv}, [w, b], loss


def _rowwise(op):
    def build(dtype, rng, batch):
        x, xv, w, b, z = _affine(dtype, rng, batch)
        last = getattr(G, op)(z * 3)
        first = getattr(G, op)(G.tanh(z), axis=0)
        return [last, first], {x: xv}, [w, b], energy(last, first)
    return build


def _sqdist(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch, out=4)
    c = param(rng, (3, 4), dtype, "c")
    d = G.sqdist(z, c)
    return [d], {x: xv}, [w, b, c], energy(G.exp(-d))


def _dropout(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    out = G.dropout(G.tanh(z), 0.4, seed=11)
    return [out], {x: xv}, [w, b], energy(out)


def _prelu(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    shared = param(rng, (1,), dtype, "a1", 0.1, 0.2)
    per_unit = param(rng, (6,), dtype, "a6", 0.1, 0.2)
    out = G.prelu(z, shared) + G.prelu(G.tanh(z), per_unit)
    return [out], {x: xv}, [w, b, shared, per_unit], energy(out)


def _prelu_grad(dtype, rng, batch):
    outputs, feed, wrt, loss = _prelu(dtype, rng, batch)
    g = G.grad(G.sum(outputs[0] * outputs[0]), wrt[2:])
    return g, feed, wrt, energy(*g)


def _matmul(dtype, rng, batch):
    x, xv, w, b, z = _affine(dtype, rng, batch)
    v = param(rng, (6,), dtype, "v")
    out = G.matmul(z, w, transpose_b=True) @ v
    return [out], {x: xv}, [w, b, v], energy(out)


def _layout(op):
    def build(dtype, rng, batch):
        x, xv, w, b, z = _affine(dtype, rng, batch)
        if op == "reshape":
            out = G.reshape(z, (None, 2, 3)) * G.reshape(b, (2, 3))
        elif op == "transpose":
            out = G.transpose(z) @ z + G.transpose(w)
        elif op == "broadcast_to":
            out = G.broadcast_to(b, (3, 6)) * G.sum(z)
        elif op == "count":
            out = G.sum(z, 0) / G.count(z, 0)
        elif op == "sum":
            out = G.sum(z, 1) + G.sum(z)
        else:
            out = G.mean(z, 0) * G.mean(z)
        return [out], {x: xv}, [w, b], energy(out)
    return build


def _loss(name):
    def build(dtype, rng, batch):
        x, xv, w, b, z = _affine(dtype, rng, batch, out=3)
        if name == "softmax_cross_entropy":
            y = G.placeholder((None,), np.int64, name="y")
            yv = rng.integers(0, 3, batch)
        else:
            y = G.placeholder((None, 3), dtype, name="y")
            yv = rng.random((batch, 3)).astype(dtype)
        loss = getattr(G, name)(z, y)
        return [loss], {x: xv, y: yv}, [w, b], loss
    return build


def _loss_grad(name):
    def build(dtype, rng, batch):
        outputs, feed, wrt, loss = _loss(name)(dtype, rng, batch)
        g = G.grad(loss, wrt[0])
        return [g], feed, wrt, energy(g)
    return build


CASES = {
    "where": _where, "one_hot": _one_hot, "cast": _cast, "concat": _concat, "split": _split,
    "output": _output, "group_max": _group_max, "argmax": _argmax, "sqdist": _sqdist,
    "dropout": _dropout, "matmul": _matmul, "prelu": _prelu, "prelu_grad": _prelu_grad,
    "greater": _comparison("greater"), "greater_equal": _comparison("greater_equal"),
    "equal": _comparison("equal"), "less": _comparison("less"),
    "less_equal": _comparison("less_equal"),
    **{op: _rowwise(op) for op in ("softmax", "log_softmax", "logsumexp")},
    **{op: _binary(op, positive=op == "div") for op in
       ("add", "sub", "mul", "div", "maximum", "minimum")},
    **{op: _unary(op) for op in ("neg", "exp", "log", "square", "sqrt")},
    **{op: _layout(op) for op in ("reshape", "transpose", "broadcast_to", "count", "sum",
                                  "mean")},
    **{name: _activation(name) for name in G.ACTIVATIONS},
    **{f"{name}_grad": _activation_grad(name) for name in G.ACTIVATIONS},
    **{name: _loss(name) for name in G.LOSSES},
    **{f"{name}_grad": _loss_grad(name) for name in G.LOSSES},
}


def test_every_registered_op_has_a_case():
    missing = sorted(set(G.REGISTRY) - set(CASES) - {"less", "less_equal"})
    assert not missing, f"ops without a plan test: {missing}"


@pytest.mark.parametrize("op", sorted(CASES))
def test_op_compiles_and_matches_interpreter(op, dtype):
    rng = np.random.default_rng(sum(map(ord, op)))
    outputs, feed, wrt, loss = CASES[op](dtype, rng, max(BATCHES))
    check(outputs + [loss], feed, dtype, wrt, loss, batches=BATCHES)


# ---- argmax, accuracy, integer values ---------------------------------------------------------


def test_argmax_ties_and_nan_follow_numpy(dtype):
    x = G.placeholder((None, 5), dtype, name="x")
    xv = np.array([[1, 3, 3, 0, 3], [np.nan, 1, np.nan, 2, 0], [0, 0, 0, 0, 0],
                   [-np.inf, -np.inf, -1, -1, 5], [2, np.nan, 7, 7, 1]], dtype)
    plan = compile([G.argmax(x), G.argmax(x, 0)], batch_size=5)
    a, b = plan.run({"x": xv})
    np.testing.assert_array_equal(a, [1, 0, 0, 4, 1])
    np.testing.assert_array_equal(b, np.argmax(xv, axis=0))
    assert a.dtype == np.int64


def test_group_max_first_maximum_takes_the_gradient(dtype):
    x = G.placeholder((None, 4), dtype, name="x")
    w = G.parameter(np.ones(4, dtype), name="w")
    m, idx = G.group_max(x * w, 2)
    loss = G.sum(m * G.constant(np.array([1, 10], dtype)))
    xv = np.array([[2, 2, 1, 5], [np.nan, 1, 3, 3]], dtype)
    plan = check([m, idx, loss], {x: xv}, dtype, [w], loss)
    np.testing.assert_array_equal(plan.run({"x": xv})[1], [[0, 1], [0, 0]])


def test_accuracy_metric_compiles_and_matches(dtype, rng):
    x = G.placeholder((None, 4), dtype, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    w = param(rng, (4, 3), dtype, "w")
    logits = x @ w
    loss = G.softmax_cross_entropy(logits, y)
    accuracy = G.mean(G.cast(G.equal(G.argmax(logits), y), dtype))
    for batch in (1, 7):
        feed = {x: data(rng, (batch, 4), dtype), y: rng.integers(0, 3, batch)}
        plan = check([loss, accuracy], feed, dtype, [w], loss)
        assert [i.opcode for i in plan.instructions].count("max_argmax") == 1


def test_labels_beyond_exact_floats_are_refused_at_run_time():
    x = G.placeholder((None, 3), np.float32, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    plan = compile(G.mean(G.cast(G.equal(G.argmax(x), y), np.float32)), batch_size=2)
    xv = np.zeros((2, 3), np.float32)
    assert float(plan.run({"x": xv, "y": np.array([0, 2 ** 24])})) == 0.5
    with pytest.raises(ValueError, match="instruction"):
        plan.run({"x": xv, "y": np.array([0, 2 ** 24 + 1])})
    # a cast rounds, as numpy's astype does
    cast = compile(G.cast(y, np.float32) + G.sum(x, 1), batch_size=2)
    big = np.array([2 ** 24 + 1, -3])
    np.testing.assert_array_equal(cast.run({"x": xv, "y": big}), big.astype(np.float32))


def test_one_hot_out_of_range_index_is_an_error():
    y = G.placeholder((None,), np.int64, name="y")
    plan = compile(G.one_hot(y, 3, np.float64), batch_size=2)
    np.testing.assert_array_equal(plan.run({"y": np.array([2, 0])}), [[0, 0, 1], [1, 0, 0]])
    for bad in ([3, 0], [0, -1]):
        with pytest.raises(ValueError, match="label"):
            plan.run({"y": np.array(bad)})


def test_big_integer_constant_is_refused():
    x = G.placeholder((None, 2), np.float32, name="x")
    far = G.equal(G.argmax(x), G.constant(np.int64(2 ** 25)))
    with pytest.raises(CompileError, match="not exact"):
        compile(G.cast(far, np.float32), batch_size=2)


def test_comparison_outputs_are_bool(dtype):
    x = G.placeholder((None, 3), dtype, name="x")
    plan = compile([G.greater(x, 0.0), G.less_equal(x, 0.0)], batch_size=2)
    xv = np.array([[1, 0, np.nan], [-1, 2, 0]], dtype)
    gt, le = plan.run({"x": xv})
    assert gt.dtype == bool
    np.testing.assert_array_equal(gt, xv > 0)
    np.testing.assert_array_equal(le, xv <= 0)


# ---- aliases and fusions ----------------------------------------------------------------------


def test_reshape_is_an_alias(rng):
    x = G.placeholder((None, 6), np.float64, name="x")
    w = param(rng, (6, 6), np.float64, "w")
    z = G.reshape(G.tanh(x @ w), (None, 3, 2)) * G.constant(data(rng, (3, 2), np.float64))
    out = G.sum(G.reshape(z, (None, 6)) @ w)
    plan = check([out, z], {x: data(rng, (3, 6), np.float64)}, np.float64, [w], out)
    assert not any("reshape" in i.note for i in plan.instructions)


def test_dense_backward_is_fused(rng):
    x = G.placeholder((None, 5), np.float32, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    h, params = x, []
    for i, (a, b) in enumerate([(5, 8), (8, 8), (8, 3)]):
        w, bias = param(rng, (a, b), np.float32, f"w{i}"), param(rng, (b,), np.float32, f"b{i}")
        params += [w, bias]
        h = h @ w + bias
        if i < 2:
            h = G.relu(h) if i == 0 else G.gelu(h)
    loss = G.softmax_cross_entropy(h, y)
    plan = check([loss], {x: data(rng, (4, 5), np.float32), y: rng.integers(0, 3, 4)},
                 np.float32, params, loss)
    ops = [i.opcode for i in plan.instructions]
    assert ops.count("dense_backward") == 3
    assert not {"gemm", "colsum", "act_backward"} & set(ops)


def test_softmax_backwards_are_fused(dtype, rng):
    x = G.placeholder((None, 5), dtype, name="x")
    w = param(rng, (5, 5), dtype, "w")
    t = G.constant(data(rng, (5,), dtype))
    loss = G.sum(G.softmax(x @ w) * t) + G.sum(G.log_softmax(x @ w, 0) * t)
    plan = check([loss], {x: data(rng, (4, 5), dtype)}, dtype, [w], loss)
    ops = [i.opcode for i in plan.instructions]
    assert "softmax_backward" in ops and "log_softmax_backward" in ops


def test_maxout_backward_is_one_scatter(rng):
    x = G.placeholder((None, 6), np.float64, name="x")
    w = param(rng, (6, 6), np.float64, "w")
    loss = G.sum(G.square(G.maxout(x @ w, 3)))
    plan = check([loss], {x: data(rng, (5, 6), np.float64)}, np.float64, [w], loss)
    ops = [i.opcode for i in plan.instructions]
    assert ops.count("max_argmax") == 1 and ops.count("one_hot") == 1
    scatter = plan.instructions[ops.index("one_hot")]
    assert scatter.refs[1] is not None  # the cotangent scales the one-hot rows in place


# ---- edge shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("cols", [1, 2, 33])
def test_rowwise_edge_shapes(dtype, rng, cols):
    x = G.placeholder((None, cols), dtype, name="x")
    w = param(rng, (cols,), dtype, "w")
    z = x * w
    outs = [G.softmax(z), G.log_softmax(z), G.logsumexp(z), G.argmax(z), G.maxout(z, cols)]
    loss = energy(*outs[:3], outs[4])
    for batch in (1, 3):
        xv = data(rng, (batch, cols), dtype, scale=30.0)
        check(outs + [loss], {x: xv}, dtype, [w], loss)


def test_rowwise_extreme_values(dtype):
    x = G.placeholder((None, 3), dtype, name="x")
    xv = np.array([[-np.inf, -np.inf, -np.inf], [np.inf, 0, 1], [np.nan, 0, 1],
                   [1e30, -1e30, 0], [-np.inf, 0, -np.inf]], dtype)
    outs = [G.softmax(x), G.log_softmax(x), G.logsumexp(x), G.argmax(x)]
    plan = compile(outs, batch_size=5)
    for got, want in zip(plan.run({"x": xv}), G.evaluate(outs, {x: xv}), strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        close(got[ok], want[ok], dtype)


# ---- dropout ----------------------------------------------------------------------------------


def _dropout_plan(p, seed, n=4000, dtype=np.float64, batch=8):
    x = G.placeholder((None, n // batch), dtype, name="x")
    return x, compile(G.dropout(x, p, seed), batch_size=batch)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keep_rate_within_four_sigma(p):
    x, plan = _dropout_plan(p, seed=3, n=20000)
    ones = np.ones((8, 2500))
    for step in range(3):
        out = plan.run({"x": ones})
        kept = np.count_nonzero(out)
        n = ones.size
        assert abs(kept - n * (1 - p)) <= 4 * np.sqrt(n * p * (1 - p))
        np.testing.assert_array_equal(out[out != 0], 1 / (1 - p))
        assert plan.step == step + 1


def test_dropout_plan_equals_interpreter_bitwise_and_is_fresh_each_step(dtype):
    x, plan = _dropout_plan(0.3, seed=2 ** 63 + 12345, n=600, dtype=dtype, batch=6)
    xv = np.random.default_rng(0).standard_normal((6, 100)).astype(dtype)
    xv[0, :3] = np.nan
    masks = []
    for step in range(4):
        got = plan.run({"x": xv})
        want = G.evaluate(G.dropout(x, 0.3, 2 ** 63 + 12345), {x: xv}, step=step)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
        masks.append(got != 0)
    assert all((a != b).any() for a, b in zip(masks, masks[1:], strict=False))  # fresh masks
    # a smaller batch draws the leading part of the same mask
    plan.step = 1
    np.testing.assert_array_equal(plan.run({"x": xv[:2]}) != 0, masks[1][:2])


def test_dropout_mask_reference_values():
    """The documented formula, evaluated by hand for two elements."""
    def keep(seed, step, i, p):
        m = (1 << 64) - 1
        z = (seed * 0x9E3779B97F4A7C15 + step * 0xD1B54A32D192ED03 + i) & m
        z ^= z >> 30
        z = (z * 0xBF58476D1CE4E5B9) & m
        z ^= z >> 27
        z = (z * 0x94D049BB133111EB) & m
        z ^= z >> 31
        return (z >> 11) * 2.0 ** -53 >= p
    got = dropout_keep(99, 7, 50, 0.5)
    assert [keep(99, 7, i, 0.5) for i in range(50)] == list(got)


def test_dropout_p_zero_and_arguments():
    x = G.placeholder((None, 3), np.float32, name="x")
    assert G.dropout(x, 0.0) is x
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    # the op itself at p = 0 (as a graph built by hand may hold it) is the identity too
    same = G.ops.REGISTRY["dropout"].forward([xv], G.dropout(x, 0.5), 2, 7)
    assert np.count_nonzero(same) < xv.size
    zero_p = apply("dropout", [x], {"p": 0.0, "seed": 1})
    plan = compile(zero_p, batch_size=2)
    np.testing.assert_array_equal(plan.run({"x": xv}), xv)
    np.testing.assert_array_equal(G.evaluate(zero_p, {x: xv}, step=3), xv)
    for bad in (-0.1, 1.0, float("nan"), True):
        with pytest.raises(ValueError, match="p must"):
            G.dropout(x, bad)
    for bad in (-1, 2 ** 64, 1.5):
        with pytest.raises(ValueError, match="seed"):
            G.dropout(x, 0.5, bad)
    with pytest.raises(ValueError, match="step"):
        G.evaluate(G.dropout(x, 0.5), {x: xv}, step=-1)


def test_dropout_gradcheck_and_training(rng):
    x = G.placeholder((None, 4), np.float64, name="x")
    w = param(rng, (4, 3), np.float64, "w")
    out = G.dropout(G.tanh(x @ w), 0.5, seed=5)
    loss = G.sum(G.square(out))
    xv = data(rng, (6, 4), np.float64)
    report = G.gradcheck(lambda xx, ww: G.dropout(G.tanh(xx @ ww), 0.5, seed=5),
                         [xv, w.value.copy()], order=2)
    assert report.ok and report.errors
    for step in (0, 3):
        check([loss, out], {x: xv}, np.float64, [w], loss, step=step)
    # the JVP uses the mask too
    t = G.constant(np.ones((4, 3)))
    tangent = G.jvp(loss, w, t)
    plan = compile(tangent, batch_size=6)
    plan.step = 2
    np.testing.assert_allclose(plan.run({"x": xv}), G.evaluate(tangent, {x: xv}, step=2),
                               rtol=1e-10)
    trained = compile(loss, loss=loss, optimizer=SGD(0.1), batch_size=6)
    trained.run_epoch({"x": np.repeat(xv, 3, axis=0)}, 6)
    assert trained.step == 3


# ---- random DAGs with the new ops -------------------------------------------------------------


def _random_dag(draw, dtype, rng):
    x = G.placeholder((None, 4), dtype, name="x")
    w = G.parameter(rng.standard_normal((4, 4)).astype(dtype) / 2, name="w")
    b = G.parameter(rng.standard_normal(4).astype(dtype), name="b")
    pool = [x @ w, x + b]
    kinds = ["softmax", "log_softmax", "logsumexp", "maxout", "where", "concat_split", "dropout",
             "sqdist", "add", "mul", "tanh", "reshape", "one_hot_argmax"]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(kinds))
        a = draw(st.sampled_from(pool))
        c = draw(st.sampled_from(pool))
        if kind in ("softmax", "log_softmax"):
            node = getattr(G, kind)(a, draw(st.sampled_from([0, -1])))
        elif kind == "logsumexp":
            node = G.reshape(G.logsumexp(a), (None, 1)) * c
        elif kind == "maxout":
            node = G.concat([G.maxout(a, 2), G.maxout(c, 2)], axis=1)
        elif kind == "where":
            node = G.where(G.greater(a, c), a, c * 0.5)
        elif kind == "concat_split":
            left, right = G.split(G.concat([a, c], axis=1), [3, 5], axis=1)
            node = G.concat([left, G.sum(right, 1, keepdims=True)], axis=1)
        elif kind == "dropout":
            node = G.dropout(a, 0.25, seed=draw(st.integers(0, 3)))
        elif kind == "sqdist":
            node = G.sqdist(a, w)
        elif kind == "one_hot_argmax":
            node = a * G.one_hot(G.argmax(c), 4, dtype)
        elif kind == "reshape":
            node = G.reshape(G.reshape(a, (None, 2, 2)) * 2.0, (None, 4))
        elif kind == "tanh":
            node = G.tanh(a)
        else:
            node = getattr(G, kind)(a, c)
        pool.append(node)
    return x, w, b, G.sum(G.square(pool[-1])) + G.sum(pool[-1])


@settings(max_examples=25, deadline=None)
@given(st.data(), st.sampled_from([np.float32, np.float64]))
def test_random_dags_with_new_ops(data, dtype):
    rng = np.random.default_rng(11)
    x, w, b, loss = _random_dag(data.draw, dtype, rng)
    xv = data.draw(st.sampled_from([1, 3]))
    check([loss], {x: rng.standard_normal((xv, 4)).astype(dtype)}, dtype, [w, b], loss, step=2)


# ---- threads ----------------------------------------------------------------------------------


def test_one_and_two_threads_give_the_same_bits():
    rng = np.random.default_rng(5)
    x = G.placeholder((None, 128), np.float32, name="x")
    w = param(rng, (128,), np.float32, "w")
    z = x * w
    outs = [G.softmax(z), G.log_softmax(z), G.logsumexp(z), G.softmax(z, 0), G.argmax(z),
            G.maxout(z, 4), G.dropout(z, 0.5, 9), G.where(G.greater(z, 0.0), z, -z),
            G.concat([z, z], axis=1),
            G.sqdist(G.split(z, [8, 120], 1)[0], G.constant(np.ones((64, 8), np.float32)))]
    loss = energy(outs[0], outs[1], outs[3], outs[5])
    xv = rng.standard_normal((512, 128)).astype(np.float32)
    previous = ffnc.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            ffnc.set_num_threads(threads)
            plan = compile(outs + [loss], loss=loss, params=[w], batch_size=512)
            results.append([r.copy() for r in plan.run({"x": xv})] + [plan.grads[w].copy()])
    finally:
        ffnc.set_num_threads(previous)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
