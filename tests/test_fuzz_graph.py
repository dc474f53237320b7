"""Fuzz: graph building (every public op of ffnc.graph), compile(), and the feeds of compiled
plans (Plan.run, run_epoch, compute_gradients/apply_update, the lr and step settings).

Graph ops get operands and attributes from pools that mix valid and invalid values (nodes of
every dtype and rank, numbers, arrays, junk; axes, shapes, sizes, dtypes, names). A call must
either build nodes whose static shape and dtype are those the numpy reference interpreter
computes, or raise TypeError/ValueError naming the op or the argument; nothing else.
Plans get feeds that are valid or broken in one way (type, dtype, shape, strides, batch size,
empty, NaN); each run either succeeds with the reference interpreter's values or raises the
documented error naming the input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import count_case, fuzz
from hypothesis import given
from hypothesis import strategies as st

import ffnc.graph as G
from ffnc.compiler import SGD, Adam, Momentum, compile
from ffnc.graph.ir import Node, resolve_shape

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.bool_]
ERRORS = (TypeError, ValueError)

# ---- operands ------------------------------------------------------------------------------


def _digits(code: int, *bases: int) -> list[int]:
    """code written in the mixed radix `bases` (least significant first)."""
    out = []
    for b in bases:
        code, d = divmod(code, b)
        out.append(d)
    return out


def _leaf(code: int) -> Node:
    """A leaf node from one integer: a placeholder (batch dimension first, maybe), a
    parameter or a constant, of any rank up to 3 and any dtype a graph holds."""
    kind, rank, d0, d1, d2, dt, batch, name = _digits(code, 3, 4, 4, 4, 4, 5, 2, 3)
    dims = [d0, d1, d2][:rank]
    if kind == 0:
        return G.placeholder(([None] if batch else []) + dims, DTYPES[dt % 4],
                             name=(None, "x", "y")[name])
    value = np.arange(math.prod(dims), dtype=np.float64).reshape(dims) % 3 - 1
    if kind == 1:
        return G.parameter(value.astype(DTYPES[dt % 2]))
    return G.constant(value.astype(DTYPES[dt]))


JUNK = [None, "x", b"x", [1, 2], (), {}, object(), 1j, np.zeros((2, 2), np.float16)]
NUMBERS = [0, 1, 2, -1, 0.5, 2.0, float("nan"), float("inf"), True, np.float32(1.5),
           np.int64(3), 10**400, 2**70]


def _operand(code: int):
    """An operand from one integer (one hypothesis draw, cheap): mostly a leaf node, else a
    number, an array or junk."""
    kind, code = code % 8, code // 8
    if kind < 5:
        return _leaf(code)
    if kind == 5:
        return NUMBERS[code % len(NUMBERS)]
    if kind == 6:
        return JUNK[code % len(JUNK)]
    return np.ones(code % 4, np.float32)


operands = st.integers(0, 2**32).map(_operand)
axes = st.sampled_from([None, 0, 1, -1, 2, -3, 5, (0,), (0, 1), (1, 1), [0], "a", 1.5, True,
                        np.int64(1), (0, "a")])
sizes = st.sampled_from([-1, 0, 1, 2, 3, 4, 2**70, 1.5, 2.7, "3", True, None, np.int64(2)])
shapes = st.one_of(
    st.lists(st.sampled_from([None, -1, 0, 1, 2, 3, 4, 6]), max_size=4).map(tuple),
    st.sampled_from([5, "abc", None, (1.5, 2), (True,), (-2, 3), [2, "x"]]))
dtypes = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_, "float32",
                          "junk", None, object, np.float16, 3])
reals = st.sampled_from([0.0, 0.2, 0.5, 1.0, -0.5, 0, 3, float("nan"), float("inf"), "x",
                         None, True, 2**70, 10**400, np.float32(0.1)])
flags = st.sampled_from([True, False, np.bool_(True), 0, 1, "yes", None])
names = st.sampled_from(["relu", "elu", "leaky_relu", "identity", "gelu", "nope", "", None, 3,
                         ["relu"]])
reductions = st.sampled_from(["mean", "sum", "max", None, 1, ["mean"]])
seeds = st.sampled_from([0, 1, 2**64 - 1, 2**64, -1, 1.5, "1", None, True, np.uint64(5)])

# name -> (function, argument strategies in order)
OPS = {
    "add": (G.add, [operands, operands]),
    "sub": (G.sub, [operands, operands]),
    "mul": (G.mul, [operands, operands]),
    "div": (G.div, [operands, operands]),
    "maximum": (G.maximum, [operands, operands]),
    "minimum": (G.minimum, [operands, operands]),
    "greater": (G.greater, [operands, operands]),
    "greater_equal": (G.greater_equal, [operands, operands]),
    "less": (G.less, [operands, operands]),
    "less_equal": (G.less_equal, [operands, operands]),
    "equal": (G.equal, [operands, operands]),
    "where": (G.where, [operands, operands, operands]),
    "neg": (G.neg, [operands]),
    "exp": (G.exp, [operands]),
    "log": (G.log, [operands]),
    "square": (G.square, [operands]),
    "sqrt": (G.sqrt, [operands]),
    "abs": (G.abs, [operands]),
    "relu": (G.relu, [operands]),
    "tanh": (G.tanh, [operands]),
    "sigmoid": (G.sigmoid, [operands]),
    "softplus": (G.softplus, [operands]),
    "hard_tanh": (G.hard_tanh, [operands]),
    "gelu": (G.gelu, [operands]),
    "elu": (G.elu, [operands, reals]),
    "leaky_relu": (G.leaky_relu, [operands, reals]),
    "activation": (G.activation, [operands, names, reals]),
    "matmul": (G.matmul, [operands, operands, flags, flags]),
    "sum": (G.sum, [operands, axes, flags]),
    "mean": (G.mean, [operands, axes, flags]),
    "count": (G.count, [operands, axes]),
    "logsumexp": (G.logsumexp, [operands, axes, flags]),
    "softmax": (G.softmax, [operands, axes]),
    "log_softmax": (G.log_softmax, [operands, axes]),
    "argmax": (G.argmax, [operands, axes]),
    "group_max": (G.group_max, [operands, sizes]),
    "maxout": (G.maxout, [operands, sizes]),
    "reshape": (G.reshape, [operands, shapes]),
    "transpose": (G.transpose, [operands, st.one_of(axes, shapes)]),
    "broadcast_to": (G.broadcast_to, [operands, shapes]),
    "concat": (G.concat, [st.one_of(st.lists(operands, max_size=3), operands), axes]),
    "split": (G.split, [operands, st.one_of(st.lists(sizes, max_size=3), sizes), axes]),
    "one_hot": (G.one_hot, [operands, sizes, dtypes]),
    "cast": (G.cast, [operands, dtypes]),
    "dropout": (G.dropout, [operands, reals, seeds]),
    "prelu": (G.prelu, [operands, operands]),
    "sqdist": (G.sqdist, [operands, operands]),
    "softmax_cross_entropy": (G.softmax_cross_entropy, [operands, operands, reductions]),
    "bce_with_logits": (G.bce_with_logits, [operands, operands, reductions]),
    "mse": (G.mse, [operands, operands, reductions]),
    "l1": (G.l1, [operands, operands, reductions]),
}


def test_every_graph_op_is_fuzzed():
    documented = {name for name in G.__all__ if name in G.REGISTRY or name in OPS}
    assert documented <= set(OPS) | {"count_nodes"}


def _feed_value(node: Node, batch: int, rng: np.random.Generator) -> np.ndarray:
    shape = resolve_shape(node.shape, batch)
    if node.dtype.kind in "iu":
        return rng.integers(0, 2, shape).astype(node.dtype)
    return rng.normal(size=shape).astype(node.dtype)


def _check_built(result, op: str, seed: int) -> None:
    """Each built node's static shape and dtype are those of its value computed by the
    reference interpreter (fed random data at two batch sizes)."""
    outs = list(result) if isinstance(result, (list, tuple)) else [result]
    assert outs and all(isinstance(n, Node) for n in outs), f"{op} returned {result!r}"
    rng = np.random.default_rng(seed)
    leaves = [n for n in G.topo_order(outs) if n.op == "placeholder"]
    for batch in (1, 3)[seed % 2:][:1]:  # one evaluation per case: a batch of 1 or 3
        feed = {x: _feed_value(x, batch, rng) for x in leaves}
        try:
            with np.errstate(all="ignore"):
                values = G.evaluate(outs, feed)
        except (ValueError, MemoryError) as exc:  # data-dependent domain errors (a one-hot
            # index >= depth, a one-hot too large to hold),
            # or a batch dimension made where no placeholder brings one
            assert op in str(exc) or "one_hot" in str(exc) or "batch size" in str(exc), exc
            continue
        for node, value in zip(outs, values, strict=True):
            has_batch = any(x.shape[:1] == (None,) for x in leaves)
            expected = resolve_shape(node.shape, batch if has_batch else None)
            assert np.shape(value) == expected, (op, node, np.shape(value))
            assert np.asarray(value).dtype == node.dtype, (op, node, np.asarray(value).dtype)


CASES_PER_EXAMPLE = 6


@pytest.mark.parametrize("op", sorted(OPS))
@fuzz(15)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_graph_op_builds_consistent_nodes_or_names_the_problem(op, data, seed):
    fn, strategies = OPS[op]
    for args in data.draw(st.lists(st.tuples(*strategies), min_size=CASES_PER_EXAMPLE,
                                   max_size=CASES_PER_EXAMPLE)):
        count_case()
        try:
            result = fn(*args)
        except ERRORS as exc:
            message = str(exc)
            named = [op] + [a for a in args if isinstance(a, str) and a]  # activation names
            assert any(n in message for n in named) or any(
                word in message for word in ("alpha", "activation", "axis", "dtype", "shape",
                                             "seed", "reduction", "depth", "sizes", "size")), (
                f"{op}{tuple(args)!r}: the message names neither the op nor the argument: "
                f"{exc!r}")
            continue
        _check_built(result, op, seed)


# ---- leaves and transforms ----------------------------------------------------------------

@fuzz(300)
@given(kind=st.sampled_from(["placeholder", "parameter", "constant"]),
       shape=shapes, dtype=dtypes, name=st.sampled_from([None, "x", "", 3, "a.b", b"x"]),
       value=st.one_of(st.sampled_from(JUNK + NUMBERS),
                       st.builds(lambda n, d: np.ones(n, d), st.integers(0, 3),
                                 st.sampled_from([np.float32, np.float64, np.int64, np.int8,
                                                  np.bool_, np.complex64, object]))))
def test_leaves_accept_valid_specs_and_name_bad_ones(kind, shape, dtype, name, value):
    try:
        if kind == "placeholder":
            node = G.placeholder(shape, dtype, name=name)
        elif kind == "parameter":
            node = G.parameter(value, name=name)
        else:
            node = G.constant(value, dtype=dtype, name=name)
    except ERRORS as exc:
        assert any(w in str(exc) for w in (kind, "shape", "dtype", "name", "value")), exc
        return
    assert isinstance(node, Node)
    assert node.name is None or isinstance(node.name, str)
    if kind == "parameter":
        assert node.dtype == np.asarray(value).dtype  # never a silent cast
        assert node.dtype in (np.float32, np.float64)
    if kind == "placeholder":
        assert all(d is None or (isinstance(d, int) and d >= 0) for d in node.shape)


@fuzz(200)
@given(data=st.data(), which=st.sampled_from(["grad", "jvp", "vjp", "hvp", "simplify",
                                              "evaluate", "jacobian"]))
def test_transforms_take_nodes_and_name_bad_arguments(data, which):
    x = G.placeholder((None, 2), np.float64, name="x")
    w = G.parameter(np.ones((2, 2)), name="w")
    y = G.sum(G.tanh(x @ w))
    pool = st.sampled_from([y, w, x, [w], [w, x], (), None, 3, "w", [3], G.sum(w)])
    a, b = data.draw(pool), data.draw(pool)
    try:
        if which == "grad":
            out = G.grad(a, b)
        elif which == "jvp":
            out = G.jvp(a, b, data.draw(st.sampled_from([None, np.ones((2, 2)), [1.0], "t"])))
        elif which == "vjp":
            out = G.vjp(a, b, data.draw(st.sampled_from([None, np.ones(()), [1.0], "t"])))
        elif which == "hvp":
            out = G.hvp(a, b, data.draw(st.sampled_from([np.ones((2, 2)), [np.ones((2, 2))],
                                                        None, "v", 1.0])))
        elif which == "simplify":
            out = G.simplify(a)
        elif which == "jacobian":
            out = G.jacobian(a, b)
        else:
            feed = data.draw(st.sampled_from([{x: np.ones((3, 2))}, {}, None, {x: "a"},
                                               {"x": np.ones((3, 2))}, {x: np.ones((3, 3))},
                                               {x: np.ones((3, 2), np.float32)}, [1]]))
            out = G.evaluate(a, feed)
    except ERRORS:
        return
    assert out is not None


# ---- compile() arguments -------------------------------------------------------------------

def _small_graph(dtype=np.float32):
    x = G.placeholder((None, 3), dtype, name="x")
    labels = G.placeholder((None,), np.int64, name="y")
    w = G.parameter(np.linspace(-1, 1, 6).reshape(3, 2).astype(dtype), name="w")
    b = G.parameter(np.zeros(2, dtype), name="b")
    logits = x @ w + b
    loss = G.softmax_cross_entropy(logits, labels)
    return x, labels, w, b, logits, loss


@fuzz(250)
@given(data=st.data())
def test_compile_accepts_valid_arguments_and_names_bad_ones(data):
    x, labels, w, b, logits, loss = _small_graph()
    other = G.placeholder((None, 3), np.float64, name="z")
    outputs = data.draw(st.sampled_from([loss, [loss, logits], [logits], [], 3, None, "loss",
                                         [loss, 3], G.sum(other)]))
    batch_size = data.draw(st.sampled_from([1, 4, 0, -1, 2.0, True, None, "4", 2**70, 2**31,
                                            np.int64(4)]))
    params = data.draw(st.sampled_from([None, [w, b], [w], [b, w], [w, w], [x], 3, [3], w]))
    inputs = data.draw(st.sampled_from([None, [x, labels], [labels, x], [x], [w], 3, x]))
    loss_arg = data.draw(st.sampled_from([None, loss, logits, 3]))
    optimizer = data.draw(st.sampled_from([None, SGD(0.1), Momentum(0.1), Adam(1e-3), "sgd",
                                           3, SGD]))
    try:
        plan = compile(outputs, batch_size=batch_size, params=params, inputs=inputs,
                       loss=loss_arg, optimizer=optimizer)
    except (TypeError, ValueError, MemoryError) as exc:
        assert any(w_ in str(exc) for w_ in ("outputs", "batch_size", "params", "inputs",
                                             "loss", "optimizer", "placeholder", "parameter",
                                             "dtype", "memory", "plan")), exc
        return
    assert plan.max_batch == int(batch_size)
    feed = {n: np.zeros(resolve_shape(n.shape, 1), n.dtype) for n in plan.inputs}
    result = plan.run(feed)
    assert result is not None


@fuzz(60)
@given(dims=st.lists(st.sampled_from([1, 7, 2**40, 2**62, 2**64, 2**70]), min_size=1,
                     max_size=3),
       batch=st.sampled_from([1, 2, 2**40, 2**62, 2**64, 2**70]),
       kind=st.sampled_from(["placeholder", "broadcast", "one_hot"]))
def test_compile_refuses_absurd_sizes_naming_the_problem(dims, batch, kind):
    """Sizes whose product overflows, or that no machine could hold: a ValueError or
    MemoryError before any allocation (never an OverflowError or an attempt). The sizes are
    either tiny or at least 2**40 elements: a plan in between would really be allocated."""
    total = batch * math.prod(dims)
    try:
        if kind == "placeholder":
            x = G.placeholder([None] + dims, np.float32, name="x")
            out = G.sum(x * 2.0)
        elif kind == "broadcast":
            x = G.placeholder((None,) + (1,) * len(dims), np.float32, name="x")
            out = G.sum(G.broadcast_to(x, (None, *dims)))
        else:
            x = G.placeholder((None,), np.int64, name="x")
            out = G.sum(G.one_hot(x, dims[0]))
        plan = compile(out, batch_size=batch)
    except (ValueError, MemoryError) as exc:
        assert any(w in str(exc) for w in ("batch_size", "x", "memory", "overflow", "size",
                                           "depth")), exc
        return
    assert plan.max_batch == batch
    assert plan.memory.arena * 4 < 2**30, (
        f"a plan with an activation arena of {plan.memory.arena} elements was compiled "
        f"({total} elements per value)")


# ---- feeds of compiled plans -----------------------------------------------------------------

_PLANS: dict = {}


def _plan(dtype, optimizer: bool):
    key = (np.dtype(dtype).name, optimizer)
    if key not in _PLANS:
        x, labels, w, b, logits, loss = _small_graph(dtype)
        plan = compile([loss, logits], batch_size=4, loss=loss if optimizer else None,
                       optimizer=SGD(0.1) if optimizer else None, inputs=[x, labels])
        _PLANS[key] = (plan, x, labels, w, b, logits, loss)
    return _PLANS[key]


def _reference(plan, w, b, x_value, y_value, loss, logits, x, labels):
    params = {w: plan.params[w].copy(), b: plan.params[b].copy()}
    return G.evaluate([loss, logits], {x: x_value, labels: y_value, **params})


FEED_MUTATIONS = ["none", "none", "none", "type", "dtype", "shape", "noncontig", "readonly",
                  "rows", "empty", "nan", "labels", "missing", "extra", "keys", "batch"]


@fuzz(400)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]),
       optimizer=st.booleans(), rows=st.integers(1, 4), seed=st.integers(0, 2**16),
       mutation=st.sampled_from(FEED_MUTATIONS),
       method=st.sampled_from(["run", "run_epoch", "phases"]))
def test_plan_feeds_run_or_name_the_bad_input(data, dtype, optimizer, rows, seed, mutation,
                                             method):
    plan, x, labels, w, b, logits, loss = _plan(dtype, optimizer)
    rng = np.random.default_rng(seed)
    if method == "run_epoch":
        rows = rows * 3
    xv = rng.normal(size=(rows, 3)).astype(dtype)
    yv = rng.integers(0, 2, rows)
    feed: dict = {"x": xv, "y": yv}
    expected, name = None, None
    target = data.draw(st.sampled_from(["x", "y"]))
    if mutation == "type":
        feed[target] = data.draw(st.sampled_from([feed[target].tolist(), None, 1.0, "a"]))
        expected, name = TypeError, target
    elif mutation == "dtype":
        new = data.draw(st.sampled_from([np.float16, np.float32, np.float64, np.int32,
                                         np.int64, np.uint8, np.bool_]))
        feed[target] = feed[target].astype(new)
        want = np.int64 if target == "y" else dtype
        expected, name = (None if np.dtype(new) == np.dtype(want) else TypeError), target
    elif mutation == "shape":
        feed[target] = np.zeros(feed[target].shape + (1,), feed[target].dtype)
        expected, name = ValueError, target
    elif mutation == "noncontig":
        feed["x"] = np.repeat(xv, 2, axis=1)[:, ::2]
        expected, name = ValueError, "x"
    elif mutation == "readonly":
        feed[target].flags.writeable = False  # inputs are only read: fine
    elif mutation == "rows":
        feed["y"] = yv[:-1]
        expected, name = ValueError, "batch"
    elif mutation == "empty":
        feed = {"x": xv[:0], "y": yv[:0]}
        expected, name = ValueError, "rows"
    elif mutation == "nan":
        xv[rng.integers(rows), rng.integers(3)] = rng.choice([np.nan, np.inf])
    elif mutation == "labels":
        yv[rng.integers(rows)] = rng.choice([-1, 2, 2**40])
        expected, name = ValueError, "label"
    elif mutation == "missing":
        del feed[target]
        expected, name = ValueError, "missing"
    elif mutation == "extra":
        feed["z"] = xv
        expected, name = ValueError, "z"
    elif mutation == "keys":
        feed = data.draw(st.sampled_from([{x: xv, labels: yv}, [xv, yv], {3: xv, "y": yv},
                                          {x: xv, "y": yv}]))
        expected = None if isinstance(feed, dict) and 3 not in feed else \
            (TypeError if not isinstance(feed, dict) else ValueError)
        name = "feed" if not isinstance(feed, dict) else "3"
    batch_arg = 4
    if mutation == "batch" and method == "run_epoch":
        batch_arg = data.draw(st.sampled_from([0, -1, 5, 2**70, 2.0, True, "2", None, 1]))
        ok = isinstance(batch_arg, int) and not isinstance(batch_arg, bool) \
            and 1 <= batch_arg <= 4
        expected, name = (None, None) if ok else (
            TypeError if not isinstance(batch_arg, int) or isinstance(batch_arg, bool)
            else ValueError, "batch")
    before = {k: plan.params[k].copy() for k in plan.params}
    try:
        if method == "run":
            if rows > 4 and expected is None:
                expected, name = ValueError, "rows"
            result = plan.run(feed)
        elif method == "run_epoch":
            result = plan.run_epoch(feed, batch_arg)
        else:
            if rows > 4 and expected is None:
                expected, name = ValueError, "rows"
            plan.compute_gradients(feed)
            result = plan.apply_update()
    except (TypeError, ValueError, MemoryError) as exc:
        assert expected is not None, f"{mutation} ({method}): unexpected {exc!r}"
        assert isinstance(exc, expected), f"{mutation} ({method}): {exc!r}"
        assert name in str(exc), f"{mutation} ({method}): message without {name!r}: {exc}"
        for k in plan.params:  # a refused feed changes nothing
            np.testing.assert_array_equal(plan.params[k], before[k])
        return
    assert expected is None, f"{mutation} ({method}) of {name!r} was accepted"
    if method == "run_epoch":
        assert result.shape == (-(-len(feed["y"] if isinstance(feed, dict) and "y" in feed
                                     else yv) // batch_arg), 1)
        return
    xs = feed[x] if x in feed else feed["x"] if isinstance(feed, dict) else feed[0]
    ys = feed[labels] if labels in feed else feed["y"] if isinstance(feed, dict) else feed[1]
    params = {w: before[w], b: before[b]}
    ref_loss, ref_logits = G.evaluate([loss, logits], {x: np.ascontiguousarray(xs),
                                                       labels: ys.astype(np.int64), **params})
    got_loss, got_logits = result
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got_logits, ref_logits, rtol=tol, atol=tol)
    np.testing.assert_allclose(got_loss, ref_loss, rtol=tol, atol=tol)


@fuzz(200)
@given(what=st.sampled_from(["lr", "step", "lr_scale"]),
       value=st.sampled_from([0.1, 0.0, -1.0, float("nan"), float("inf"), "1", None, True, 1,
                              2**63 - 1, 2**63, 2**64, -1, 10**400, 1e39, np.float32(0.5),
                              np.ones(3), np.ones(3, np.float32), np.array([1.0, -1.0, 0.5]),
                              np.array([np.nan, 1, 1]), [1.0, 1.0, 1.0]]),
       dtype=st.sampled_from([np.float32, np.float64]), optimizer=st.booleans())
def test_plan_settings_name_bad_values(what, value, dtype, optimizer):
    plan = _plan(dtype, optimizer)[0]
    lr, step = (plan.lr, plan.step) if optimizer else (None, plan.step)
    try:
        if what == "lr":
            plan.lr = value
        elif what == "step":
            plan.step = value
        else:
            plan.run_epoch({"x": np.ones((9, 3), dtype), "y": np.zeros(9, np.int64)}, 4,
                           lr_scale=value)
    except (TypeError, ValueError) as exc:
        assert what in str(exc) or "optimizer" in str(exc), exc
        return
    finally:
        if optimizer:
            plan.lr = lr
        plan.step = step
    if what == "lr":
        assert optimizer and not isinstance(value, bool) and value >= 0
    elif what == "step":
        assert isinstance(value, (int, np.integer)) and 0 <= value < 2**63
