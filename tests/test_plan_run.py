"""Running plans: training with each optimizer against numpy updates, the epoch API, feed
validation, parameter views, XOR, and no memory growth over 10,000 steps."""

import os
import time

import numpy as np
import pytest
from conftest import rss_leak_check

import ffnc.graph as G
from ffnc.compiler import SGD, Adam, Momentum, compile


def net(dtype, rng, sizes=(3, 6, 2)):
    x = G.placeholder((None, sizes[0]), dtype, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    params, h = [], x
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = G.parameter((rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype), name=f"W{i}")
        bias = G.parameter(np.zeros(b, dtype), name=f"b{i}")
        params += [w, bias]
        h = h @ w + bias
        if i < len(sizes) - 2:
            h = G.tanh(h)
    return x, y, params, G.softmax_cross_entropy(h, y)


def numpy_step(opt, values, grads, state, step):
    """The reference update of every parameter (float64)."""
    for i, (p, g) in enumerate(zip(values, grads, strict=True)):
        if isinstance(opt, SGD):
            p -= opt.lr * (g + opt.weight_decay * p)
        elif isinstance(opt, Momentum):
            d = g + opt.weight_decay * p
            v = state.setdefault(i, np.zeros_like(p))
            v *= opt.momentum
            v += d
            p -= opt.lr * (d + opt.momentum * v if opt.nesterov else v)
        else:
            if not opt.decoupled:
                g = g + opt.weight_decay * p
            else:
                p -= opt.lr * opt.weight_decay * p
            m, v = state.setdefault(i, (np.zeros_like(p), np.zeros_like(p)))
            m *= opt.beta1
            m += (1 - opt.beta1) * g
            v *= opt.beta2
            v += (1 - opt.beta2) * g * g
            mh = m / (1 - opt.beta1 ** step)
            vh = v / (1 - opt.beta2 ** step)
            p -= opt.lr * mh / (np.sqrt(vh) + opt.eps)


@pytest.mark.parametrize("opt", [SGD(0.1), SGD(0.05, weight_decay=0.01), Momentum(0.1, 0.9),
                                 Momentum(0.05, 0.8, 0.01, nesterov=True), Adam(0.01),
                                 Adam(0.01, weight_decay=0.1, decoupled=True)],
                         ids=["sgd", "sgd_wd", "momentum", "nesterov", "adam", "adamw"])
def test_training_matches_numpy_updates(rng, opt):
    x, y, params, loss = net(np.float64, rng)
    plan = compile(loss, loss=loss, optimizer=opt, batch_size=8)
    values = [p.value.astype(np.float64).copy() for p in params]
    state: dict = {}
    for step in range(1, 6):
        xv, yv = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
        feed = {x: xv, y: yv, **dict(zip(params, values, strict=True))}
        ref_loss = G.evaluate(loss, feed)
        ref_grads = G.evaluate(G.grad(loss, params), feed)
        got = plan.run({"x": xv, "y": yv})
        np.testing.assert_allclose(got, ref_loss, rtol=1e-10)
        numpy_step(opt, values, ref_grads, state, step)
        for p, v in zip(params, values, strict=True):
            np.testing.assert_allclose(plan.params[p], v, rtol=1e-9, atol=1e-12)
    assert plan.step == 5


def test_epoch_equals_separate_runs(rng):
    x, y, params, loss = net(np.float32, rng)
    plans = [compile(loss, loss=loss, optimizer=Momentum(0.1), batch_size=4) for _ in range(2)]
    xv = rng.standard_normal((10, 3)).astype(np.float32)
    yv = rng.integers(0, 2, 10)
    records = plans[0].run_epoch({"x": xv, "y": yv}, 4)
    assert records.shape == (3, 1)
    losses = [plans[1].run({"x": xv[i:i + 4], "y": yv[i:i + 4]}) for i in (0, 4, 8)]
    np.testing.assert_array_equal(records[:, 0], np.array(losses, np.float32))
    for p in params:
        np.testing.assert_array_equal(plans[0].params[p], plans[1].params[p])


def test_profile_steps_as_run_and_times_each_instruction(rng):
    x, y, params, loss = net(np.float32, rng, sizes=(3, 8, 8, 2))
    plans = [compile(loss, loss=loss, optimizer=Momentum(0.1), batch_size=4) for _ in range(2)]
    feed = {"x": rng.standard_normal((4, 3)).astype(np.float32), "y": rng.integers(0, 2, 4)}
    for _ in range(3):
        plans[0].run(feed)
    prof = plans[1].profile(feed, steps=3)
    # the profiled steps are the same steps, bit for bit, and they count
    assert plans[1].step == plans[0].step == 3
    for p in params:
        np.testing.assert_array_equal(plans[0].params[p], plans[1].params[p])
    n = len(plans[1].instructions)
    assert prof.seconds.shape == (n,) and prof.steps == 3 and prof.batch == 4
    assert np.all(prof.seconds > 0) and prof.total == pytest.approx(prof.seconds.sum())
    assert prof.opcodes == tuple(ins.opcode for ins in plans[1].instructions)
    table = str(prof).splitlines()
    assert len(table) == n + 2 and "dense_forward" in table[1] and "3 steps of 4 rows" in table[-1]
    assert "GFLOP/s" in table[0] and "GFLOP/s" in table[-1]
    # the products' flops, 2 m n k each: the forward of the 3-8-8-2 layers, their weight
    # gradients, and the input gradients of the two upper layers (the first needs none)
    macs = 3 * 8 + 8 * 8 + 8 * 2
    assert sum(prof.flops) == 2 * 4 * (macs + macs + (8 * 8 + 8 * 2))
    for op, flops, rate, t in zip(prof.opcodes, prof.flops, prof.gflops, prof.seconds,
                                  strict=True):
        if op in ("dense_forward", "dense_backward"):
            assert flops > 0 and rate == pytest.approx(flops / t / 1e9)
        else:
            assert flops == 0 and np.isnan(rate)
    # a batch smaller than the plan's
    small = {"x": feed["x"][:2], "y": feed["y"][:2]}
    prof_small = plans[1].profile(small, steps=1)
    assert prof_small.batch == 2 and sum(prof_small.flops) == sum(prof.flops) / 2


def test_profile_validation(rng):
    x, y, params, loss = net(np.float32, rng)
    plan = compile(loss, loss=loss, optimizer=SGD(0.1), batch_size=4)
    good = {"x": np.zeros((4, 3), np.float32), "y": np.zeros(4, np.int64)}
    for steps, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="steps"):
            plan.profile(good, steps=steps)
    with pytest.raises(TypeError, match="'x'.*float32"):
        plan.profile({**good, "x": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="label|range"):
        plan.profile({**good, "y": np.full(4, 7, np.int64)})
    assert plan.step == 0  # nothing ran
    handle = plan._handle
    for bad in (np.zeros(2), np.zeros(len(plan.instructions), np.float32),
                np.zeros((len(plan.instructions), 2))[:, 0]):
        with pytest.raises(ValueError, match="seconds"):
            handle.run_timed([good["x"], good["y"]], bad)


def test_parameter_views_are_zero_copy(rng):
    x, y, params, loss = net(np.float32, rng)
    plan = compile(loss, loss=loss, optimizer=SGD(0.5), batch_size=4)
    w = plan.params[params[0]]
    assert np.shares_memory(w, plan.param_arena)
    assert np.shares_memory(plan.grads[params[0]], plan.grad_arena)
    total = sum(p.value.size for p in params)
    assert plan.param_arena.size == total
    w[...] = 0
    assert np.all(plan.param_arena[:w.size] == 0)
    del plan
    w += 1  # the view keeps the plan's memory alive


def test_feed_validation(rng):
    x, y, params, loss = net(np.float32, rng)
    plan = compile(loss, loss=loss, batch_size=4)
    good = {"x": np.zeros((4, 3), np.float32), "y": np.zeros(4, np.int64)}
    plan.run(good)
    with pytest.raises(TypeError, match="'x'.*float32"):
        plan.run({**good, "x": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="'x'.*shape"):
        plan.run({**good, "x": np.zeros((4, 2), np.float32)})
    with pytest.raises(ValueError, match="C-contiguous"):
        plan.run({**good, "x": np.zeros((3, 4), np.float32).T[:, :3].copy().T})
    with pytest.raises(ValueError, match="batch size: 'x' has 4 rows, 'y' has 3"):
        plan.run({**good, "y": np.zeros(3, np.int64)})
    with pytest.raises(ValueError, match="'x'.*shape"):
        plan.run({**good, "x": np.zeros((4, 3, 1), np.float32)})
    with pytest.raises(TypeError, match="'y' must be a numpy.ndarray, got list"):
        plan.run({**good, "y": [0, 0, 0, 0]})
    with pytest.raises(ValueError, match="'x' has no rows"):
        plan.run({"x": np.zeros((0, 3), np.float32), "y": np.zeros(0, np.int64)})
    with pytest.raises(ValueError, match="at most 4"):
        plan.run({"x": np.zeros((5, 3), np.float32), "y": np.zeros(5, np.int64)})
    with pytest.raises(ValueError, match="missing"):
        plan.run({"x": good["x"]})
    with pytest.raises(ValueError, match="not an input"):
        plan.run({**good, "z": good["x"]})
    with pytest.raises(ValueError, match="label|range"):
        plan.run({**good, "y": np.full(4, 7, np.int64)})
    with pytest.raises(ValueError, match="batch"):
        plan.run_epoch(good, 5)


def test_xor_trains():
    rng = np.random.default_rng(0)
    x, y, params, loss = net(np.float32, rng, sizes=(2, 16, 2))
    plan = compile(loss, loss=loss, optimizer=Momentum(0.1, 0.9), batch_size=4)
    xv = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    yv = np.array([0, 1, 1, 0], np.int64)
    for _ in range(500):
        plan.run({"x": xv, "y": yv})
    feed = {x: xv, **{p: plan.params[p] for p in params}}
    logits = G.evaluate(loss.inputs[0], feed)
    assert list(np.argmax(logits, axis=1)) == [0, 1, 1, 0]


def _rss_pages() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
@rss_leak_check
def test_no_memory_growth_over_10000_steps():
    rng = np.random.default_rng(1)
    x, y, params, loss = net(np.float32, rng, sizes=(8, 32, 4))
    plan = compile(loss, loss=loss, optimizer=Adam(1e-3), batch_size=16)
    xv = rng.standard_normal((16 * 100, 8)).astype(np.float32)
    yv = rng.integers(0, 4, 16 * 100)
    plan.run_epoch({"x": xv, "y": yv}, 16)  # warm up every allocation once
    before = _rss_pages()
    start = time.perf_counter()
    for _ in range(100):
        plan.run_epoch({"x": xv, "y": yv}, 16)  # 100 x 100 = 10,000 steps
    after = _rss_pages()
    assert plan.step == 10_100
    assert after - before <= 16, f"RSS grew by {after - before} pages over 10,000 steps"
    assert time.perf_counter() - start < 10


def test_profile_counts_the_products_of_each_instruction():
    """2 m n k per matrix product: a plain GEMM (no bias), a dense forward, and a dense
    backward that writes both gradients or only the weights' (a first layer's)."""
    x = G.placeholder((None, 3), np.float64, name="x")
    w, v = G.parameter(np.ones((3, 5))), G.parameter(np.ones((5, 4)))
    out = G.sum(G.tanh(x @ w) @ v)
    plan = compile([out, *G.grad(out, [w, v])], batch_size=6)
    prof = plan.profile({"x": np.ones((6, 3))}, steps=1)
    flops = {}
    for ins, f in zip(plan.instructions, prof.flops, strict=True):
        flops.setdefault(ins.opcode, []).append(f)
    assert flops["dense_forward"] == [2 * 6 * 5 * 3]
    assert flops["gemm"] == [2 * 6 * 4 * 5]
    assert sorted(flops["dense_backward"]) == [2 * 6 * 5 * 3, 2 * (2 * 6 * 4 * 5)]
    assert all(f == 0 for op, fs in flops.items() if op not in ("dense_forward", "gemm",
                                                                  "dense_backward") for f in fs)
