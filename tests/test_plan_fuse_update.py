"""Momentum with the weight gradient added straight into the velocity by its GEMM
(ffnc/compiler/fuse_update.py), and the SGD step then taken in the same GEMM's store: which
parameters are fused and which are not; the fused plan
against the same plan with keep_grads=True (bit for bit while the batch fits one block of the
GEMM's K, to rounding beyond) and against numpy's momentum step by step; the learning rate,
the two-phase step and a resumed state; who refuses a fused plan."""

import numpy as np
import pytest

import ffnc.graph as G
from ffnc import distributed, optim
from ffnc.compiler import compile
from ffnc.compiler.fuse_update import FUSE_MIN_SIZE, STEP_MAX_BYTES, _steppable
from ffnc.compiler.program import Instr, Value

SIZES = [100, 80, 70, 10]  # W1 8000 and W2 5600 elements are fused, W3 700 is not
MOMENTUM = optim.Momentum(0.05, 0.9)


def mlp(dtype, seed=1, sizes=SIZES):
    """A relu MLP (dense layers: dense_backward instructions) and its parameters."""
    rng = np.random.default_rng(seed)
    x = G.placeholder((None, sizes[0]), dtype, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    h, params = x, []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = G.parameter((rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype), name=f"w{i}")
        bias = G.parameter(np.full(b, 0.01, dtype), name=f"b{i}")
        params += [w, bias]
        h = h @ w + bias
        if i < len(sizes) - 2:
            h = G.relu(h)
    return G.softmax_cross_entropy(h, y), params


def compile_mlp(dtype, batch, keep_grads=False, optimizer=MOMENTUM, sizes=SIZES):
    loss, params = mlp(dtype, sizes=sizes)
    plan = compile(loss, loss=loss, optimizer=optimizer, batch_size=batch,
                   keep_grads=keep_grads)
    return plan, params


def feeds(dtype, batch, steps, seed=2, sizes=SIZES):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((batch, sizes[0])).astype(dtype),
             "y": rng.integers(0, sizes[-1], batch)} for _ in range(steps)]


def test_which_parameters_are_fused():
    plan, params = compile_mlp(np.float64, 32)
    w1, b1, w2, b2, w3, b3 = params
    assert plan.grads_in_velocity == [w1, w2]
    assert set(plan.grads) == {b1, b2, w3, b3}
    assert sum("beta" in ins.flags for ins in plan.instructions) == 2
    updates = [ins.opcode for ins in plan.instructions[plan.update_begin:]]
    # arena order w1 b1 w2 b2 w3 b3: runs fused, unfused, fused, unfused (b2 w3 b3)
    assert updates == ["sgd", "momentum", "sgd", "momentum"]
    assert w3.value.size < FUSE_MIN_SIZE <= w2.value.size
    # both weights also take their SGD step in their dense backward (the first layer's gains
    # the weights operand it needs for that), and their SGD instructions are marked stepped
    stepping = [ins for ins in plan.instructions if "step" in ins.flags]
    assert [ins.opcode for ins in stepping] == ["dense_backward"] * 2
    assert all(ins.refs[1][0].arena == "params" and ins.hyper == (0.9, 0.05)
               for ins in stepping)
    sgds = [ins for ins in plan.instructions if ins.opcode == "sgd"]
    assert all("stepped" in ins.flags for ins in sgds)
    assert "stepped in the backward GEMMs" in plan.describe()


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


@pytest.mark.parametrize("sizes", [[100, 80, 70, 10], [64, 96, 96, 10], [32, 512, 10]],
                         ids=["edge_tiles", "whole_tiles", "ten_columns"])
def test_step_in_the_backward_is_the_bits_of_the_sgd_instruction(isa, dtype, sizes):
    """Every GEMM path that stores a stepped weight gradient (edge tiles through the tile
    buffer, whole tiles straight from registers, a 10-column layer computed as C^T), on every
    ISA: the plan equals the one that keeps its gradients, bit for bit (batch 48 is one K
    block), and the same plan run in two phases, where the SGD instruction takes the step."""
    stepped, _ = compile_mlp(dtype, 48, sizes=sizes)
    big = sum(a * b >= FUSE_MIN_SIZE for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    assert sum("step" in ins.flags for ins in stepped.instructions) == big == 2
    kept, _ = compile_mlp(dtype, 48, keep_grads=True, sizes=sizes)
    phased, _ = compile_mlp(dtype, 48, sizes=sizes)
    for feed in feeds(dtype, 48, 3, sizes=sizes):
        loss = stepped.run(feed)
        assert loss == kept.run(feed)
        phased.compute_gradients(feed)
        assert loss == phased.apply_update()
    np.testing.assert_array_equal(stepped.param_arena, kept.param_arena)
    np.testing.assert_array_equal(stepped.param_arena, phased.param_arena)
    np.testing.assert_array_equal(stepped.optimizer_state()["velocity"],
                                  kept.optimizer_state()["velocity"])


def test_large_weights_keep_the_sgd_instruction():
    """Past STEP_MAX_BYTES the step stays in the SGD instruction (it streams a parameter from
    L3 or memory faster): fused into the velocity, not stepped."""
    sizes = [1024, 600, 10]  # w0: 614,400 floats, 2.4 MiB; w1: 6,000
    plan, params = compile_mlp(np.float32, 8, sizes=sizes)
    w0, _, w1, _ = params
    assert w0.value.nbytes > STEP_MAX_BYTES >= w1.value.nbytes
    assert plan.grads_in_velocity == [w0, w1]
    stepping = [ins for ins in plan.instructions if "step" in ins.flags]
    assert len(stepping) == 1 and stepping[0].refs[1][0].offset == param_offset(plan, w1)
    sgds = [ins for ins in plan.instructions if ins.opcode == "sgd"]
    assert ["stepped" in ins.flags for ins in sgds] == [False, True]


def param_offset(plan, param):
    """Where `param` starts in the parameter arena (a view of it)."""
    view = plan.params[param]
    return (view.__array_interface__["data"][0]
            - plan.param_arena.__array_interface__["data"][0]) // view.itemsize


def test_no_step_where_a_later_instruction_touches_the_weights():
    """The step changes the weights inside the backward: refused when an instruction after the
    product (before the update) reads them, or when the weights are not the parameter."""
    params = Value("params", (10000, 0), "params", 0)
    w = Value("w", (5000, 0), "params", 5000)
    acts = Value("a", (0, 8), "acts", 0)
    backward = Instr("dense_backward", [(acts, 0), (w, 0)] + [None] * 6)
    region = (5000, 10000)
    assert _steppable(backward, region, [])
    assert _steppable(backward, region, [Instr("sgd", [(params, 0)], n=(5000, 0))]) is False
    reads_before = Instr("dense_forward", [(acts, 0), (Value("v", (5000, 0), "params", 0), 0)])
    assert _steppable(backward, region, [reads_before])  # the other parameter only
    assert not _steppable(backward, (0, 5000), [])  # the weights are another parameter
    assert not _steppable(Instr("gemm", [(acts, 0), (w, 0), None]), region, [])
    with_param_src = Instr("dense_backward", [(params, 0), (w, 0)] + [None] * 6)
    assert not _steppable(with_param_src, region, [])


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
