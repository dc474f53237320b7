"""Momentum with the weight gradient added straight into the velocity by its GEMM
(ffnc/compiler/fuse_update.py): which parameters are fused and which are not; the fused plan
against the same plan with keep_grads=True (bit for bit while the batch fits one block of the
GEMM's K, to rounding beyond) and against numpy's momentum step by step; the learning rate,
the two-phase step and a resumed state; who refuses a fused plan."""

import numpy as np
import pytest

import ffnc.graph as G
from ffnc import distributed, optim
from ffnc.compiler import compile
from ffnc.compiler.fuse_update import FUSE_MIN_SIZE

SIZES = [100, 80, 70, 10]  # W1 8000 and W2 5600 elements are fused, W3 700 is not
MOMENTUM = optim.Momentum(0.05, 0.9)


def mlp(dtype, seed=1):
    """A relu MLP (dense layers: dense_backward instructions) and its parameters."""
    rng = np.random.default_rng(seed)
    x = G.placeholder((None, SIZES[0]), dtype, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    h, params = x, []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        w = G.parameter((rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype), name=f"w{i}")
        bias = G.parameter(np.full(b, 0.01, dtype), name=f"b{i}")
        params += [w, bias]
        h = h @ w + bias
        if i < len(SIZES) - 2:
            h = G.relu(h)
    return G.softmax_cross_entropy(h, y), params


def compile_mlp(dtype, batch, keep_grads=False, optimizer=MOMENTUM):
    loss, params = mlp(dtype)
    plan = compile(loss, loss=loss, optimizer=optimizer, batch_size=batch,
                   keep_grads=keep_grads)
    return plan, params


def feeds(dtype, batch, steps, seed=2):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((batch, SIZES[0])).astype(dtype),
             "y": rng.integers(0, SIZES[-1], batch)} for _ in range(steps)]


def test_which_parameters_are_fused():
    plan, params = compile_mlp(np.float64, 32)
    w1, b1, w2, b2, w3, b3 = params
    assert plan.grads_in_velocity == [w1, w2]
    assert set(plan.grads) == {b1, b2, w3, b3}
    assert sum("beta" in ins.flags for ins in plan.instructions) == 2
    updates = [ins.opcode for ins in plan.instructions[plan.update_begin:]]
    # arena order w1 b1 w2 b2 w3 b3: runs fused, unfused, fused, unfused (b2 w3 b3)
    assert updates == ["sgd", "momentum", "sgd", "momentum"]
    assert "velocity from the backward GEMMs" in plan.describe()
    assert w3.value.size < FUSE_MIN_SIZE <= w2.value.size


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_equals_unfused_bitwise_within_one_k_block(dtype):
    fused, _ = compile_mlp(dtype, 64)
    kept, _ = compile_mlp(dtype, 64, keep_grads=True)
    assert not kept.grads_in_velocity
    for feed in feeds(dtype, 64, 5):
        assert fused.run(feed) == kept.run(feed)
    np.testing.assert_array_equal(fused.param_arena, kept.param_arena)
    np.testing.assert_array_equal(fused.optimizer_state()["velocity"],
                                  kept.optimizer_state()["velocity"])
    # the fused gradients were never stored; the others were
    grads = fused.grad_arena
    w1, w2 = fused.grads_in_velocity
    assert not grads[:w1.value.size].any()
    assert all(g.any() for g in fused.grads.values())
    kept_by_name = {p.name: g for p, g in kept.grads.items()}
    for p, g in fused.grads.items():
        np.testing.assert_array_equal(g, kept_by_name[p.name])


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-13)])
def test_fused_equals_unfused_to_rounding_over_several_k_blocks(dtype, tol):
    batch = 700  # more rows than a K block (320 in float32, 256 in float64)
    fused, _ = compile_mlp(dtype, batch)
    kept, _ = compile_mlp(dtype, batch, keep_grads=True)
    for feed in feeds(dtype, batch, 3):
        np.testing.assert_allclose(fused.run(feed), kept.run(feed), rtol=tol)
    np.testing.assert_allclose(fused.param_arena, kept.param_arena, rtol=tol, atol=tol)


def test_bare_matmul_gemm_matches_numpy_momentum():
    """A weight without bias or activation: its gradient is a plain GEMM instruction."""
    rng = np.random.default_rng(3)
    n = 64  # 4096 elements: the smallest fused size
    x = G.placeholder((None, n), np.float64, name="x")
    y = G.placeholder((None, n), np.float64, name="y")
    w0 = rng.standard_normal((n, n)) / 8
    w = G.parameter(w0, name="w")
    loss = G.mse(x @ w, y)
    plan = compile(loss, loss=loss, optimizer=MOMENTUM, batch_size=16)
    assert plan.grads_in_velocity == [w]
    assert [ins.opcode for ins in plan.instructions if "beta" in ins.flags] == ["gemm"]
    ref_w, ref_v = w0.copy(), np.zeros_like(w0)
    for _ in range(4):
        xv, yv = rng.standard_normal((16, n)), rng.standard_normal((16, n))
        plan.run({"x": xv, "y": yv})
        g = xv.T @ (2 * (xv @ ref_w - yv) / yv.size)
        ref_v = MOMENTUM.momentum * ref_v + g
        ref_w -= MOMENTUM.lr * ref_v
        np.testing.assert_allclose(plan.params[w], ref_w, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(plan.optimizer_state()["velocity"], ref_v.reshape(-1),
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("opt", [
    optim.SGD(0.05), optim.Adam(0.01), optim.Momentum(0.05, 0.0),
    optim.Momentum(0.05, 0.9, nesterov=True), optim.Momentum(0.05, 0.9, weight_decay=1e-4),
    optim.Momentum(0.05, 0.9, clip_norm=1.0)],
    ids=["sgd", "adam", "no_momentum", "nesterov", "weight_decay", "clipping"])
def test_updates_that_need_the_gradient_are_not_fused(opt):
    plan, params = compile_mlp(np.float64, 16, optimizer=opt)
    assert plan.grads_in_velocity == []
    assert set(plan.grads) == set(params)
    assert not any("beta" in ins.flags for ins in plan.instructions)


def test_gradients_with_several_contributions_or_copies_are_not_fused():
    rng = np.random.default_rng(4)
    x = G.placeholder((None, 64), np.float64, name="x")
    y = G.placeholder((None, 64), np.float64, name="y")
    shared = G.parameter(rng.standard_normal((64, 64)) / 8, name="shared")
    transposed = G.parameter(rng.standard_normal((64, 64)) / 8, name="transposed")
    loss = G.mse((x @ shared) @ shared + x @ G.transpose(transposed), y)
    plan = compile(loss, loss=loss, optimizer=MOMENTUM, batch_size=8)
    assert plan.grads_in_velocity == []


def test_keep_grads_keeps_every_gradient_and_must_be_a_bool():
    plan, params = compile_mlp(np.float64, 16, keep_grads=True)
    assert plan.grads_in_velocity == [] and set(plan.grads) == set(params)
    loss, _ = mlp(np.float64)
    with pytest.raises(TypeError, match="keep_grads must be a bool"):
        compile(loss, loss=loss, optimizer=MOMENTUM, batch_size=4, keep_grads=1)


def test_lr_setter_and_epoch_lr_scale_reach_the_velocity_update():
    fused, _ = compile_mlp(np.float64, 32)
    kept, _ = compile_mlp(np.float64, 32, keep_grads=True)
    for plan in (fused, kept):
        plan.lr = 0.02
        assert plan.lr == 0.02
    epoch = feeds(np.float64, 96, 1)[0]
    scale = np.array([1.0, 0.5, 0.25])
    np.testing.assert_array_equal(fused.run_epoch(epoch, 32, lr_scale=scale),
                                  kept.run_epoch(epoch, 32, lr_scale=scale))
    np.testing.assert_array_equal(fused.param_arena, kept.param_arena)


def test_two_phases_equal_run_and_resume_is_bit_identical():
    one, _ = compile_mlp(np.float32, 32)
    two, _ = compile_mlp(np.float32, 32)
    steps = feeds(np.float32, 32, 4)
    for feed in steps[:2]:
        one.run(feed)
        two.compute_gradients(feed)
        two.apply_update()
    np.testing.assert_array_equal(one.param_arena, two.param_arena)
    # a third plan resumed from one's parameters, velocity and step continues identically
    resumed, _ = compile_mlp(np.float32, 32)
    resumed.param_arena[:] = one.param_arena
    resumed.optimizer_state()["velocity"][:] = one.optimizer_state()["velocity"]
    resumed.step = one.step
    for feed in steps[2:]:
        assert one.run(feed) == resumed.run(feed)
    np.testing.assert_array_equal(one.param_arena, resumed.param_arena)


def test_distributed_stepper_asks_for_keep_grads():
    plan, _ = compile_mlp(np.float64, 8)
    with pytest.raises(ValueError, match="keep_grads=True"):
        distributed.DistributedStepper(plan, group=None)
