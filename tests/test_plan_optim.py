"""Optimizers in compiled plans (ffnc.optim): every optimizer, with and without gradient
clipping, against a numpy re-implementation step by step and against torch.optim on the same
quadratic; the learning rate set between runs and scaled per step by run_epoch; 1 vs 2 threads;
optimizer state for checkpoints (save, load, resume bit-identical); the schedules against
closed forms and torch.optim.lr_scheduler; configurations; bad hyper-parameters."""

import json

import numpy as np
import pytest

import ffnc
import ffnc.graph as G
from ffnc import optim
from ffnc.compiler import compile

N_IN, N_OUT, BATCH = 4, 3, 8

OPTIMIZERS = {
    "sgd": optim.SGD(0.1),
    "sgd_wd": optim.SGD(0.05, weight_decay=0.1),
    "momentum": optim.Momentum(0.05, 0.9),
    "nesterov_wd": optim.Momentum(0.05, 0.8, weight_decay=0.05, nesterov=True),
    "adam": optim.Adam(0.05),
    "adam_l2": optim.Adam(0.05, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
    "adamw": optim.AdamW(0.05, weight_decay=0.1),
    "rmsprop": optim.RMSprop(0.01),
    "rmsprop_centered_momentum": optim.RMSprop(0.01, alpha=0.9, eps=1e-6, weight_decay=0.05,
                                               momentum=0.5, centered=True),
}


def with_clip(opt, clip_norm):
    cfg = opt.get_config()
    cfg["clip_norm"] = clip_norm
    return optim.from_config(cfg)


def quadratic(dtype, rng, n_in=N_IN, n_out=N_OUT):
    """Linear least squares: mse(x W + b, y), a convex quadratic in (W, b)."""
    x = G.placeholder((None, n_in), dtype, name="x")
    y = G.placeholder((None, n_out), dtype, name="y")
    w = G.parameter(rng.normal(size=(n_in, n_out)).astype(dtype), name="w")
    b = G.parameter(rng.normal(size=n_out).astype(dtype), name="b")
    return x, y, [w, b], G.mse(x @ w + b, y)


def batches(rng, dtype, steps, rows=BATCH, n_in=N_IN, n_out=N_OUT):
    return [(rng.normal(size=(rows, n_in)).astype(dtype),
             rng.normal(size=(rows, n_out)).astype(dtype)) for _ in range(steps)]


def numpy_grads(w, b, x, y):
    """The gradients of mean((x w + b - y)^2), in float64."""
    r = x @ w + b - y
    d = 2 * r / r.size
    return [x.T @ d, d.sum(axis=0)]


class NumpyOptimizer:
    """The update rules of ffnc.optim (the docstrings' formulas), in float64, with clipping by
    the global norm of all gradients."""

    def __init__(self, opt, shapes):
        self.opt = opt
        self.state = {name: [np.zeros(s) for s in shapes] for name in opt.state_names}
        self.step = 0
        self.norm = None

    def update(self, params, grads, lr):
        o, st = self.opt, self.state
        self.step += 1
        t = self.step
        if o.clip_norm is not None:
            self.norm = np.sqrt(sum(np.sum(g * g) for g in grads))
            if self.norm > o.clip_norm:
                grads = [g * (o.clip_norm / self.norm) for g in grads]
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if isinstance(o, optim.SGD):
                p -= lr * (g + o.weight_decay * p)
            elif isinstance(o, optim.Momentum):
                d = g + o.weight_decay * p
                v = st["velocity"][i]
                v *= o.momentum
                v += d
                p -= lr * (d + o.momentum * v if o.nesterov else v)
            elif isinstance(o, optim.Adam):
                if o.decoupled:
                    p -= lr * o.weight_decay * p
                else:
                    g = g + o.weight_decay * p
                m, v = st["m"][i], st["v"][i]
                m[...] = o.beta1 * m + (1 - o.beta1) * g
                v[...] = o.beta2 * v + (1 - o.beta2) * g * g
                p -= lr * (m / (1 - o.beta1 ** t)) / (np.sqrt(v / (1 - o.beta2 ** t)) + o.eps)
            else:
                g = g + o.weight_decay * p
                sq = st["square_avg"][i]
                sq[...] = o.alpha * sq + (1 - o.alpha) * g * g
                if o.centered:
                    avg = st["grad_avg"][i]
                    avg[...] = o.alpha * avg + (1 - o.alpha) * g
                    den = np.sqrt(np.maximum(sq - avg * avg, 0)) + o.eps
                else:
                    den = np.sqrt(sq) + o.eps
                if o.momentum > 0:
                    buf = st["momentum_buffer"][i]
                    buf[...] = o.momentum * buf + g / den
                    p -= lr * buf
                else:
                    p -= lr * g / den


def split_state(plan, params):
    """The plan's optimizer state per buffer name, split per parameter (float64 copies)."""
    sizes = [p.value.size for p in params]
    out = {}
    for name, flat in plan.optimizer_state().items():
        pieces = np.split(flat.astype(np.float64), np.cumsum(sizes)[:-1])
        out[name] = [piece.reshape(p.shape) for piece, p in zip(pieces, params, strict=True)]
    return out


# ---- every optimizer against numpy, step by step --------------------------------------------

# float64: the plan and numpy differ only in summation order inside the gradients, ~1e-16
# relative per step. float32: the plan rounds every operation to float; the reference restarts
# from the plan's state at each step, so the tolerance is that of one step (the gradients' float
# rounding passed through one update).
STEP_TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-4, atol=1e-5)}


@pytest.mark.parametrize("clip", [None, 0.5], ids=["noclip", "clip"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_plan_steps_match_numpy(dtype, rng, name, clip):
    opt = with_clip(OPTIMIZERS[name], clip)
    x, y, params, loss = quadratic(dtype, rng)
    plan = compile(loss, loss=loss, optimizer=opt, batch_size=BATCH)
    assert list(plan.optimizer_state()) == list(opt.state_names)
    values = [p.value.astype(np.float64) for p in params]
    ref = NumpyOptimizer(opt, [v.shape for v in values])
    for xv, yv in batches(rng, dtype, 6):
        if dtype == np.float32:  # restart from the plan's state: one step's tolerance
            values = [plan.params[p].astype(np.float64) for p in params]
            ref.state = split_state(plan, params)
        grads = numpy_grads(*values, xv.astype(np.float64), yv.astype(np.float64))
        plan.run({"x": xv, "y": yv})
        ref.update(values, grads, opt.lr)
        for p, v in zip(params, values, strict=True):
            np.testing.assert_allclose(plan.params[p], v, **STEP_TOL[dtype])
        for key, pieces in split_state(plan, params).items():
            for got, want in zip(pieces, ref.state[key], strict=True):
                np.testing.assert_allclose(got, want, **STEP_TOL[dtype])
        if clip is None:
            assert plan.grad_norm is None
        else:
            np.testing.assert_allclose(plan.grad_norm, ref.norm, rtol=STEP_TOL[dtype]["rtol"])
    assert plan.step == 6


def test_clipping_happens_and_reports_the_pre_clip_norm(rng):
    x, y, params, loss = quadratic(np.float64, rng)
    plan = compile(loss, loss=loss, optimizer=optim.SGD(0.0, clip_norm=0.25), batch_size=BATCH)
    assert plan.grad_norm == 0.0  # before the first step
    xv, yv = batches(rng, np.float64, 1)[0]
    plan.run({"x": xv, "y": yv})
    expected = numpy_grads(*[p.value for p in params], xv, yv)
    norm = np.sqrt(sum(np.sum(g * g) for g in expected))
    assert norm > 0.25
    np.testing.assert_allclose(plan.grad_norm, norm, rtol=1e-13)
    clipped = np.sqrt(sum(np.sum(g * g) for g in plan.grads.values()))
    np.testing.assert_allclose(clipped, 0.25, rtol=1e-13)
    # a limit above the norm leaves the gradients as computed
    plan2 = compile(loss, loss=loss, optimizer=optim.SGD(0.0, clip_norm=1e6), batch_size=BATCH)
    plan2.run({"x": xv, "y": yv})
    for p, g in zip(params, expected, strict=True):
        np.testing.assert_allclose(plan2.grads[p], g, rtol=1e-13)


def test_nan_gradients_are_not_clipped(rng):
    """A NaN norm leaves the gradients alone (they reach the parameters as NaN, for the NaN
    guard to report), instead of clipping them to zero."""
    x, y, params, loss = quadratic(np.float64, rng)
    plan = compile(loss, loss=loss, optimizer=optim.SGD(0.1, clip_norm=1.0), batch_size=BATCH)
    xv, yv = batches(rng, np.float64, 1)[0]
    xv[0, 0] = np.nan
    plan.run({"x": xv, "y": yv})
    assert np.isnan(plan.grad_norm)
    assert np.isnan(plan.params[params[0]]).any()


# ---- against torch.optim on the same quadratic -----------------------------------------------


def torch_optimizer(torch, opt, tensors):
    if isinstance(opt, optim.SGD):
        return torch.optim.SGD(tensors, lr=opt.lr, weight_decay=opt.weight_decay)
    if isinstance(opt, optim.Momentum):
        return torch.optim.SGD(tensors, lr=opt.lr, momentum=opt.momentum,
                               weight_decay=opt.weight_decay, nesterov=opt.nesterov)
    if isinstance(opt, optim.Adam):
        kind = torch.optim.AdamW if opt.decoupled else torch.optim.Adam
        return kind(tensors, lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps,
                    weight_decay=opt.weight_decay)
    return torch.optim.RMSprop(tensors, lr=opt.lr, alpha=opt.alpha, eps=opt.eps,
                               weight_decay=opt.weight_decay, momentum=opt.momentum,
                               centered=opt.centered)


def run_torch(torch, opt, params, data, clip=None):
    tensors = [torch.nn.Parameter(torch.tensor(p.value.astype(np.float64))) for p in params]
    topt = torch_optimizer(torch, opt, tensors)
    norms = []
    for xv, yv in data:
        topt.zero_grad()
        pred = torch.tensor(xv) @ tensors[0] + tensors[1]
        torch.nn.functional.mse_loss(pred, torch.tensor(yv)).backward()
        if clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(tensors, clip)))
        topt.step()
    return [t.detach().numpy() for t in tensors], norms


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_plan_matches_torch(rng, name):
    torch = pytest.importorskip("torch")
    opt = OPTIMIZERS[name]
    x, y, params, loss = quadratic(np.float64, rng)
    data = batches(rng, np.float64, 8)
    expected, _ = run_torch(torch, opt, params, data)
    plan = compile(loss, loss=loss, optimizer=opt, batch_size=BATCH)
    for xv, yv in data:
        plan.run({"x": xv, "y": yv})
    for p, want in zip(params, expected, strict=True):
        np.testing.assert_allclose(plan.params[p], want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop_centered_momentum"])
def test_clipping_matches_torch_clip_grad_norm(rng, name):
    torch = pytest.importorskip("torch")
    opt = with_clip(OPTIMIZERS[name], 0.3)
    x, y, params, loss = quadratic(np.float64, rng)
    data = batches(rng, np.float64, 5)
    expected, torch_norms = run_torch(torch, opt, params, data, clip=0.3)
    plan = compile(loss, loss=loss, optimizer=opt, batch_size=BATCH)
    # torch scales by 0.3 / (norm + 1e-6), ffnc by 0.3 / norm: 1e-6 / norm relative per step,
    # which moves the parameters, hence the next norms, by about as much
    for step, ((xv, yv), torch_norm) in enumerate(zip(data, torch_norms, strict=True)):
        plan.run({"x": xv, "y": yv})
        assert torch_norm > 0.3  # every step clips
        np.testing.assert_allclose(plan.grad_norm, torch_norm, rtol=1e-12 if step == 0 else 1e-6)
    for p, want in zip(params, expected, strict=True):
        np.testing.assert_allclose(plan.params[p], want, rtol=2e-5, atol=1e-7)


# ---- learning rates: Plan.lr and run_epoch(lr_scale) -----------------------------------------


@pytest.mark.parametrize("name", ["sgd_wd", "nesterov_wd", "adamw",
                                  "rmsprop_centered_momentum"])
def test_run_epoch_lr_scale_equals_steps_with_lr_set(rng, name):
    opt = with_clip(OPTIMIZERS[name], 1.0)
    x, y, params, loss = quadratic(np.float32, rng)
    epoch_plan = compile(loss, loss=loss, optimizer=opt, batch_size=BATCH)
    step_plan = compile(loss, loss=loss, optimizer=opt, batch_size=BATCH)
    xs = rng.normal(size=(5 * BATCH - 3, N_IN)).astype(np.float32)
    ys = rng.normal(size=(5 * BATCH - 3, N_OUT)).astype(np.float32)
    schedule = optim.LinearWarmup(2, optim.CosineLR(6, min_scale=0.1))
    for _ in range(2):  # two epochs: the schedule continues from plan.step
        scale = schedule.multipliers(epoch_plan.step, 5)
        records = epoch_plan.run_epoch({"x": xs, "y": ys}, BATCH, lr_scale=scale)
        assert epoch_plan.lr == opt.lr  # unchanged by the schedule
        losses = []
        for s in range(5):
            step_plan.lr = opt.lr * scale[s]
            rows = slice(s * BATCH, (s + 1) * BATCH)
            losses.append(step_plan.run({"x": xs[rows], "y": ys[rows]}))
        np.testing.assert_array_equal(records[:, 0], np.array(losses, np.float64))
        np.testing.assert_array_equal(epoch_plan.param_arena, step_plan.param_arena)
        for key, state in epoch_plan.optimizer_state().items():
            np.testing.assert_array_equal(state, step_plan.optimizer_state()[key])
    assert epoch_plan.step == step_plan.step == 10


def test_lr_setter(rng):
    x, y, params, loss = quadratic(np.float64, rng)
    plan = compile(loss, loss=loss, optimizer=optim.Momentum(0.1), batch_size=BATCH)
    assert plan.lr == 0.1
    plan.lr = np.float32(0.25)
    assert plan.lr == 0.25
    plan.lr = 0
    xv, yv = batches(rng, np.float64, 1)[0]
    before = plan.param_arena.copy()
    plan.run({"x": xv, "y": yv})
    np.testing.assert_array_equal(plan.param_arena, before)  # lr 0: no move
    for bad, exc, message in [(-0.1, ValueError, r"lr must be >= 0, got -0\.1"),
                              (np.nan, ValueError, "lr must be finite"),
                              (np.inf, ValueError, "lr must be finite"),
                              ("0.1", TypeError, "lr must be a real number, got str"),
                              (True, TypeError, "lr must be a real number, got bool")]:
        with pytest.raises(exc, match=message):
            plan.lr = bad
    assert plan.lr == 0
    no_opt = compile(loss, batch_size=2)
    with pytest.raises(ValueError, match="no optimizer"):
        no_opt.lr  # noqa: B018
    with pytest.raises(ValueError, match="no optimizer"):
        no_opt.lr = 0.1


def test_lr_overflowing_float32_is_refused(rng):
    x, y, params, loss = quadratic(np.float32, rng)
    plan = compile(loss, loss=loss, optimizer=optim.SGD(0.1), batch_size=BATCH)
    with pytest.raises(ValueError, match="lr=1e.40 overflows float32"):
        plan.lr = 1e40
    xs = rng.normal(size=(BATCH, N_IN)).astype(np.float32)
    ys = rng.normal(size=(BATCH, N_OUT)).astype(np.float32)
    with pytest.raises(ValueError, match="overflows float32"):
        plan.run_epoch({"x": xs, "y": ys}, BATCH, lr_scale=np.array([1e40]))


def test_bad_lr_scale_is_refused_before_any_step(rng):
    x, y, params, loss = quadratic(np.float64, rng)
    plan = compile(loss, loss=loss, optimizer=optim.Adam(0.1), batch_size=BATCH)
    xs = rng.normal(size=(2 * BATCH, N_IN))
    ys = rng.normal(size=(2 * BATCH, N_OUT))
    feed = {"x": xs, "y": ys}
    before = plan.param_arena.copy()
    cases = [
        (np.ones(3), ValueError, r"lr_scale must have shape \(2,\).*got \(3,\)"),
        (np.ones(1), ValueError, r"lr_scale must have shape \(2,\)"),
        (np.ones((2, 1)), ValueError, r"lr_scale must have shape \(2,\)"),
        (np.array([1.0, -0.5]), ValueError, r"finite values >= 0; lr_scale\[1\] = -0\.5"),
        (np.array([np.nan, 1.0]), ValueError, r"lr_scale\[0\] = nan"),
        (np.array([1.0, np.inf]), ValueError, r"lr_scale\[1\] = inf"),
        (np.ones(2, np.float32), TypeError, "lr_scale must have dtype float64"),
        ([1.0, 1.0], TypeError, "lr_scale must be a numpy.ndarray"),
    ]
    for bad, exc, message in cases:
        with pytest.raises(exc, match=message):
            plan.run_epoch(feed, BATCH, lr_scale=bad)
    assert plan.step == 0
    np.testing.assert_array_equal(plan.param_arena, before)
    # a strided view is fine (copied)
    plan.run_epoch(feed, BATCH, lr_scale=np.ones(4)[::2])
    assert plan.step == 2
    no_opt = compile(loss, batch_size=BATCH)
    with pytest.raises(ValueError, match="lr_scale needs a plan with an optimizer"):
        no_opt.run_epoch(feed, BATCH, lr_scale=np.ones(2))


# ---- threads ---------------------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    previous = ffnc.get_num_threads()
    yield
    ffnc.set_num_threads(previous)


@pytest.mark.parametrize("name", ["momentum", "adamw", "rmsprop_centered_momentum"])
def test_one_and_two_threads_agree_bitwise(restore_threads, rng, name):
    """20,100 parameters: above the threading grain of the updates and of the global norm."""
    opt = with_clip(OPTIMIZERS[name], 0.5)
    x, y, params, loss = quadratic(np.float32, rng, n_in=200, n_out=100)
    data = batches(rng, np.float32, 3, rows=16, n_in=200, n_out=100)
    # Both plans are compiled before either runs, so both start from the initial values (a
    # plan compiled after another trained the parameters would start from the trained ones).
    plans = [compile(loss, loss=loss, optimizer=opt, batch_size=16) for _ in range(2)]
    results = []
    for threads, plan in zip((1, 2), plans, strict=True):
        ffnc.set_num_threads(threads)
        norms = []
        for xv, yv in data:
            plan.run({"x": xv, "y": yv})
            norms.append(plan.grad_norm)
        results.append((plan.param_arena.copy(), dict(plan.optimizer_state()), norms))
    (p1, s1, n1), (p2, s2, n2) = results
    np.testing.assert_array_equal(p1, p2)
    assert n1 == n2
    for key in s1:
        np.testing.assert_array_equal(s1[key], s2[key])


# ---- optimizer state: checkpoints --------------------------------------------------------------


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_save_load_resume_is_bit_identical(rng, name):
    opt = with_clip(OPTIMIZERS[name], 0.5)
    x, y, params, loss = quadratic(np.float32, rng)
    xs = rng.normal(size=(6 * BATCH, N_IN)).astype(np.float32)
    ys = rng.normal(size=(6 * BATCH, N_OUT)).astype(np.float32)
    first, second = {"x": xs[:3 * BATCH], "y": ys[:3 * BATCH]}, {"x": xs[3 * BATCH:],
                                                                  "y": ys[3 * BATCH:]}
    schedule = optim.StepLR(2, 0.5)

    def epoch(plan, feed):
        return plan.run_epoch(feed, BATCH, lr_scale=schedule.multipliers(plan.step, 3))

    straight = compile(loss, loss=loss, optimizer=opt, batch_size=BATCH)
    epoch(straight, first)
    saved = {"params": straight.param_arena.copy(), "step": straight.step,
             "config": json.dumps(opt.get_config()),
             "state": {k: v.copy() for k, v in straight.optimizer_state().items()}}
    epoch(straight, second)

    restored_opt = optim.from_config(json.loads(saved["config"]))
    assert restored_opt == opt
    resumed = compile(loss, loss=loss, optimizer=restored_opt, batch_size=BATCH)
    resumed.param_arena[:] = saved["params"]
    for key, value in saved["state"].items():
        resumed.optimizer_state()[key][:] = value
    resumed.step = saved["step"]
    epoch(resumed, second)
    np.testing.assert_array_equal(resumed.param_arena, straight.param_arena)
    for key, value in straight.optimizer_state().items():
        np.testing.assert_array_equal(resumed.optimizer_state()[key], value)


def test_optimizer_state_views_are_zero_copy(rng):
    x, y, params, loss = quadratic(np.float64, rng)
    plan = compile(loss, loss=loss, optimizer=optim.RMSprop(momentum=0.9, centered=True),
                   batch_size=BATCH)
    state = plan.optimizer_state()
    assert list(state) == ["square_avg", "momentum_buffer", "grad_avg"]
    total = N_IN * N_OUT + N_OUT
    for view in state.values():
        assert view.shape == (total,) and view.dtype == np.float64 and view.flags.writeable
        assert not view.any()
    xv, yv = batches(rng, np.float64, 1)[0]
    plan.run({"x": xv, "y": yv})
    assert (state["square_avg"] > 0).all()  # the views see the update
    assert compile(loss, loss=loss, optimizer=optim.SGD(0.1),
                   batch_size=BATCH).optimizer_state() == {}
    assert list(compile(loss, loss=loss, optimizer=optim.RMSprop(), batch_size=BATCH)
                .optimizer_state()) == ["square_avg"]


# ---- full-batch gradient descent -------------------------------------------------------------


def test_full_batch_gd_below_one_over_l_decreases_the_loss_every_step(rng):
    """SGD with the whole set as one batch is gradient descent; on a convex quadratic with
    lr < 1/L (L the largest Hessian eigenvalue) every step decreases the loss."""
    rows = 64
    x, y, params, loss = quadratic(np.float64, rng)
    xs, ys = rng.normal(size=(rows, N_IN)), rng.normal(size=(rows, N_OUT))
    design = np.hstack([xs, np.ones((rows, 1))])
    lipschitz = 2 * np.linalg.eigvalsh(design.T @ design).max() / (rows * N_OUT)
    plan = compile(loss, loss=loss, optimizer=optim.SGD(0.9 / lipschitz), batch_size=rows)
    losses = plan.run_epoch({"x": xs, "y": ys}, rows)[:, 0]
    for _ in range(8):  # beyond, the loss is at its minimum to the last bits
        losses = np.append(losses, plan.run({"x": xs, "y": ys}))
    assert (np.diff(losses) < 0).all()


# ---- schedules -------------------------------------------------------------------------------


def test_schedules_closed_forms():
    t = np.arange(0, 40)
    np.testing.assert_allclose(optim.StepLR(7, 0.5).multipliers(0, 40), 0.5 ** (t // 7),
                               rtol=1e-15)
    np.testing.assert_allclose(optim.ExponentialLR(0.9).multipliers(0, 40), 0.9 ** t,
                               rtol=1e-14)
    cosine = 0.1 + 0.9 * (1 + np.cos(np.pi * np.minimum(t, 25) / 25)) / 2
    np.testing.assert_allclose(optim.CosineLR(25, 0.1).multipliers(0, 40), cosine, rtol=1e-15)
    assert optim.CosineLR(25, 0.1)(0) == 1.0 and optim.CosineLR(25, 0.1)(30) == 0.1
    warm = optim.LinearWarmup(5)
    np.testing.assert_allclose(warm.multipliers(0, 8), [0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1])
    composed = optim.LinearWarmup(4, optim.ExponentialLR(0.5))
    np.testing.assert_allclose(composed.multipliers(0, 7), [0.25, 0.5, 0.75, 1, 1, 0.5, 0.25])
    # any window of steps is the same slice of the whole
    for s in (optim.StepLR(3), composed, optim.CosineLR(10)):
        np.testing.assert_array_equal(s.multipliers(5, 10), s.multipliers(0, 15)[5:])
        assert s.multipliers(3, 0).shape == (0,)
        assert s.multipliers(0, 4).dtype == np.float64


def _torch_lrs(torch, make, steps):
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=1.0)
    scheduler = make(torch.optim.lr_scheduler, opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(lrs)


def test_schedules_match_torch():
    torch = pytest.importorskip("torch")
    cases = [
        (optim.StepLR(5, 0.3), lambda s, o: s.StepLR(o, 5, 0.3), 30),
        (optim.ExponentialLR(0.95), lambda s, o: s.ExponentialLR(o, 0.95), 30),
        # PyTorch's cosine rises again after T_max; ffnc's stays at the minimum
        (optim.CosineLR(20, 0.05), lambda s, o: s.CosineAnnealingLR(o, 20, eta_min=0.05), 21),
        (optim.LinearWarmup(6), lambda s, o: s.LinearLR(o, 1 / 6, 1.0, total_iters=5), 20),
        (optim.LinearWarmup(4, optim.CosineLR(10, 0.0)),
         lambda s, o: s.SequentialLR(o, [s.LinearLR(o, 0.25, 1.0, total_iters=3),
                                         s.CosineAnnealingLR(o, 10)], milestones=[4]), 15),
    ]
    for schedule, make, steps in cases:
        np.testing.assert_allclose(schedule.multipliers(0, steps), _torch_lrs(torch, make, steps),
                                   rtol=1e-12, atol=1e-15, err_msg=repr(schedule))


def test_reduce_on_plateau_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    metrics = list(np.maximum.accumulate(rng.uniform(0, 1, 40))[::-1]) + [np.nan, 0.5, 0.5]
    for kwargs in [dict(), dict(mode="max", threshold_mode="abs", threshold=0.01),
                   dict(factor=0.5, patience=2, cooldown=3, min_scale=0.1)]:
        ours = optim.ReduceLROnPlateau(**{"patience": 3, **kwargs})
        torch_kwargs = {("min_lr" if k == "min_scale" else k): v for k, v in kwargs.items()}
        param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        opt = torch.optim.SGD([param], lr=1.0)
        theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **{"patience": 3,
                                                                    **torch_kwargs})
        for m in metrics + metrics[::-1]:
            theirs.step(m)
            assert ours.update(m) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-15), kwargs


def test_reduce_on_plateau_closed_form_and_state():
    plateau = optim.ReduceLROnPlateau(factor=0.5, patience=1, min_scale=0.2)
    scales = [plateau.update(m) for m in [1.0, 0.5, 0.6, 0.6, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]]
    assert scales == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]
    state = plateau.state_dict()
    assert json.loads(json.dumps(state)) == state
    other = optim.from_config(plateau.get_config())
    other.load_state_dict(state)
    assert [other.update(0.3), other.update(0.3)] == [plateau.update(0.3), plateau.update(0.3)]
    assert optim.ReduceLROnPlateau().state_dict()["best"] is None
    with pytest.raises(ValueError, match="exactly the keys"):
        other.load_state_dict({"scale": 1.0})
    with pytest.raises(ValueError, match="scale must be >= 0"):
        other.load_state_dict({**state, "scale": -1.0})
    with pytest.raises(TypeError, match="metric must be a real number"):
        plateau.update("0.1")


# ---- configurations ----------------------------------------------------------------------------


ALL_CONFIGURABLE = [*OPTIMIZERS.values(), with_clip(optim.AdamW(), 2.0),
                    optim.StepLR(3), optim.ExponentialLR(0.9), optim.CosineLR(100, 0.01),
                    optim.LinearWarmup(10), optim.LinearWarmup(5, optim.StepLR(2, 0.5))]


def test_configs_round_trip_through_json():
    for obj in ALL_CONFIGURABLE:
        cfg = obj.get_config()
        again = optim.from_config(json.loads(json.dumps(cfg)))
        assert again == obj and type(again) is type(obj), cfg
    momentum = optim.Momentum(0.1, nesterov=True, clip_norm=1.0)
    assert momentum.get_config() == {"class": "momentum", "lr": 0.1, "momentum": 0.9,
                                     "weight_decay": 0.0, "nesterov": True, "clip_norm": 1.0}
    assert optim.AdamW().get_config()["class"] == "adamw"
    assert "decoupled" not in optim.AdamW().get_config()
    # Adam(decoupled=True) is AdamW, and says so
    assert optim.from_config(optim.Adam(decoupled=True, weight_decay=0.1).get_config()) == \
        optim.AdamW(weight_decay=0.1)
    # numpy scalars become Python numbers (JSON-serialisable)
    json.dumps(optim.SGD(np.float32(0.5), weight_decay=np.float64(0.1)).get_config())
    # a checkpoint's "step" entry is not a setting
    assert optim.from_config({**momentum.get_config(), "step": 12}) == momentum


def test_from_config_errors():
    with pytest.raises(ValueError, match="config 'class' must be one of"):
        optim.from_config({"class": "lbfgs"})
    with pytest.raises(ValueError, match=r"unknown keys \['nesterov'\]"):
        optim.from_config({"class": "sgd", "lr": 0.1, "nesterov": True})
    with pytest.raises(TypeError, match="config must be a mapping"):
        optim.from_config("sgd")
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optim.from_config({"class": "sgd", "lr": -1})
    with pytest.raises(ValueError, match="'after' must be a step schedule"):
        optim.from_config({"class": "linear_warmup", "warmup_steps": 2,
                           "after": {"class": "sgd", "lr": 0.1}})


# ---- bad hyper-parameters --------------------------------------------------------------------


BAD_SETTINGS = [
    (lambda: optim.SGD(-0.1), ValueError, r"lr must be >= 0, got -0\.1"),
    (lambda: optim.SGD(np.nan), ValueError, "lr must be finite, got nan"),
    (lambda: optim.SGD("0.1"), TypeError, "lr must be a real number, got str"),
    (lambda: optim.SGD(0.1, weight_decay=-1), ValueError, "weight_decay must be >= 0"),
    (lambda: optim.SGD(0.1, clip_norm=0), ValueError, "clip_norm must be > 0, got 0.0"),
    (lambda: optim.SGD(0.1, clip_norm=np.inf), ValueError, "clip_norm must be finite"),
    (lambda: optim.Momentum(0.1, 1.0), ValueError, r"momentum must be in \[0, 1\), got 1\.0"),
    (lambda: optim.Momentum(0.1, -0.1), ValueError, r"momentum must be in \[0, 1\)"),
    (lambda: optim.Momentum(0.1, np.nan), ValueError, "momentum must be finite"),
    (lambda: optim.Momentum(0.1, nesterov=1), TypeError, "nesterov must be a bool, got int"),
    (lambda: optim.Adam(beta1=1.0), ValueError, r"beta1 must be in \[0, 1\)"),
    (lambda: optim.Adam(beta2=np.inf), ValueError, "beta2 must be finite"),
    (lambda: optim.Adam(eps=0.0), ValueError, "eps must be > 0, got 0.0"),
    (lambda: optim.AdamW(weight_decay=-0.01), ValueError, "weight_decay must be >= 0"),
    (lambda: optim.AdamW(decoupled=False), TypeError, "unexpected keyword argument"),
    (lambda: optim.RMSprop(alpha=1.0), ValueError, r"alpha must be in \[0, 1\)"),
    (lambda: optim.RMSprop(momentum=1.5), ValueError, r"momentum must be in \[0, 1\)"),
    (lambda: optim.RMSprop(eps=-1e-8), ValueError, "eps must be > 0"),
    (lambda: optim.RMSprop(centered="yes"), TypeError, "centered must be a bool, got str"),
    (lambda: optim.StepLR(0), ValueError, "step_size must be >= 1, got 0"),
    (lambda: optim.StepLR(2.5), TypeError, "step_size must be an int, got float"),
    (lambda: optim.StepLR(2, gamma=-0.5), ValueError, "gamma must be >= 0"),
    (lambda: optim.ExponentialLR(np.nan), ValueError, "gamma must be finite"),
    (lambda: optim.CosineLR(0), ValueError, "total_steps must be >= 1"),
    (lambda: optim.CosineLR(10, min_scale=1.5), ValueError, r"min_scale must be in \[0, 1\]"),
    (lambda: optim.LinearWarmup(0), ValueError, "warmup_steps must be >= 1"),
    (lambda: optim.LinearWarmup(2, after=optim.ReduceLROnPlateau()), TypeError,
     "after must be a Schedule"),
    (lambda: optim.StepLR(2).multipliers(-1, 3), ValueError, "start_step must be >= 0"),
    (lambda: optim.StepLR(2).multipliers(0, 2.0), TypeError, "n_steps must be an int"),
    (lambda: optim.ReduceLROnPlateau(factor=1.0), ValueError, r"factor must be in \(0, 1\)"),
    (lambda: optim.ReduceLROnPlateau(patience=-1), ValueError, "patience must be >= 0"),
    (lambda: optim.ReduceLROnPlateau(mode="lowest"), ValueError, "mode must be 'min' or 'max'"),
    (lambda: optim.ReduceLROnPlateau(threshold_mode="x"), ValueError, "threshold_mode must be"),
]


@pytest.mark.parametrize("make, exc, message", BAD_SETTINGS,
                         ids=[str(i) for i in range(len(BAD_SETTINGS))])
def test_bad_settings_raise_naming_them(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


def test_compile_rejects_bad_optimizers(rng):
    x, y, params, loss = quadratic(np.float32, rng)
    with pytest.raises(TypeError, match="optimizer must be an ffnc.optim optimizer"):
        compile(loss, loss=loss, optimizer="sgd", batch_size=2)
    with pytest.raises(ValueError, match="eps=1e-50 rounds to 0 in float32"):
        compile(loss, loss=loss, optimizer=optim.Adam(eps=1e-50), batch_size=2)
    with pytest.raises(ValueError, match="lr=1e.40 overflows float32"):
        compile(loss, loss=loss, optimizer=optim.RMSprop(1e40), batch_size=2)
    # the same settings are fine in float64
    x, y, params, loss = quadratic(np.float64, rng)
    compile(loss, loss=loss, optimizer=optim.Adam(eps=1e-50), batch_size=2)


def test_compiler_reexports_the_optimizers():
    import ffnc.compiler as C

    assert C.SGD is optim.SGD and C.Momentum is optim.Momentum and C.Adam is optim.Adam
    assert C.AdamW is optim.AdamW and C.RMSprop is optim.RMSprop
