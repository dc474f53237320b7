"""Threads: ffnc called from several Python threads at once (every C call releases the GIL).

What is guaranteed, and tested here:
- Two models trained at once from two Python threads end with the same bits as trained one
  after the other, whatever thread counts the two fits ask for: fit(threads=n) sets a count
  for the calls made from its own Python thread only, and leaves ffnc.set_num_threads' process-
  wide count as it was.
- Changing the thread count between steps, from the training thread or from another thread
  while training runs, is safe and gives the same bits (results never depend on the count).
- Switching the ISA path (ffnc.set_isa) from another thread while a plan runs is safe: each
  kernel call runs wholly on the path active when it starts, so the result is that of some
  sequence of paths, within the paths' rounding differences of a single-path run (FMA against
  separate multiply and add, vectorised exp: ~1e-7 of the weights' scale in float32 and ~1e-16
  in float64 after 16 steps here), not bitwise.
- One plan run from two threads at once: the calls wait for each other (a lock per plan), so
  each step runs whole, on its own inputs, and returns its own outputs.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import ffnc
import ffnc.graph as G
from ffnc import _core, nn, optim, train
from ffnc.compiler import compile as compile_plan

F32, F64 = np.float32, np.float64


def run_in_threads(*functions, timeout: float = 120.0) -> list:
    """Runs each function in its own thread at once; returns their results, re-raising the
    first exception."""
    results: list = [None] * len(functions)
    errors: list = []

    def call(i, f):
        try:
            results[i] = f()
        except BaseException as e:  # noqa: BLE001 - reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=call, args=(i, f)) for i, f in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]
    return results


def assert_same_bits(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), \
        f"{what}: largest difference {np.max(np.abs(a.astype(F64) - b.astype(F64)))}"


@pytest.fixture
def process_threads():
    """Leaves the process-wide thread count and ISA as the test found them."""
    saved_count, saved_isa = _core.configured_num_threads(), ffnc.get_isa()
    yield
    ffnc.set_num_threads(saved_count)
    ffnc.set_isa(saved_isa)


# ---- two fits at once ----------------------------------------------------------------------

EPOCHS = 4


def _classifier():
    return nn.Sequential([nn.Dense(256, "relu"), nn.Dropout(0.2), nn.Dense(32)],
                         input_shape=(64,), seed=1, loss="softmax_cross_entropy")


def _regressor():
    x = nn.Input((48,))
    h = nn.Dense(128, activation="tanh")(x)
    y = nn.Add()([nn.Dense(128, activation="gelu")(h), h])
    return nn.Model(x, nn.Dense(16)(y), dtype=F64, seed=2, loss="mse")


def _data():
    rng = np.random.default_rng(9)
    xa = rng.standard_normal((1024, 64)).astype(F32)
    ya = rng.integers(0, 32, 1024)
    xb = rng.standard_normal((1000, 48))
    yb = np.tanh(xb[:, :16] * 2)
    return (xa, ya), (xb, yb)


def _fit_a(data, threads, callbacks=()):
    model = _classifier()
    train.fit(model, *data, optimizer=optim.Adam(1e-3, clip_norm=1.0), epochs=EPOCHS,
              batch_size=256, seed=3, verbose=0, threads=threads, callbacks=list(callbacks),
              schedule=optim.CosineLR(16))
    return model.flat.copy()


def _fit_b(data, threads, callbacks=()):
    model = _regressor()
    train.fit(model, *data, optimizer=optim.Momentum(1e-2, 0.9, nesterov=True), epochs=EPOCHS,
              batch_size=250, seed=4, verbose=0, threads=threads, callbacks=list(callbacks))
    return model.flat.copy()


class _InLockstep(train.Callback):
    """Makes two fits wait for each other at the end of every epoch (so they overlap all
    along), recording the thread count each one sees then."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier
        self.counts: list[int] = []

    def on_epoch_end(self, epoch, logs):
        self.counts.append(ffnc.get_num_threads())
        self.barrier.wait()
        return False


@pytest.mark.parametrize("threads", [(1, 2), (2, 1), (None, None), (2, 2)])
def test_two_fits_at_once_match_the_fits_one_after_the_other(threads, process_threads):
    ffnc.set_num_threads(2)
    a, b = _data()
    alone_a = _fit_a(a, threads[0])
    alone_b = _fit_b(b, threads[1])
    barrier = threading.Barrier(2, timeout=60)
    lockstep_a, lockstep_b = _InLockstep(barrier), _InLockstep(barrier)
    together_a, together_b = run_in_threads(lambda: _fit_a(a, threads[0], [lockstep_a]),
                                            lambda: _fit_b(b, threads[1], [lockstep_b]))
    assert_same_bits(together_a, alone_a, "model A")
    assert_same_bits(together_b, alone_b, "model B")
    # each fit ran with its own count, all along; the process-wide one is untouched
    assert lockstep_a.counts == [threads[0] or 2] * EPOCHS, lockstep_a.counts
    assert lockstep_b.counts == [threads[1] or 2] * EPOCHS, lockstep_b.counts
    assert _core.configured_num_threads() == 2
    assert _core.local_num_threads() is None


def test_fits_in_two_threads_leave_no_count_behind(process_threads):
    """The old implementation saved and restored the process-wide count around each fit: two
    overlapping fits restored each other's setting and left threads=1 in force for good."""
    ffnc.set_num_threads(None)
    a, b = _data()
    first_in = threading.Event()

    def fit_first():
        class Signal(train.Callback):
            def on_epoch_end(self, epoch, logs):
                first_in.set()
                return False
        return _fit_a(a, 1, [Signal()])

    def fit_second():
        assert first_in.wait(60)
        return _fit_b(b, 2)

    run_in_threads(fit_first, fit_second)
    assert _core.configured_num_threads() is None, \
        f"threads={_core.configured_num_threads()} left in force"


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")  # ConvergenceWarning after 5 epochs
def test_two_sklearn_estimators_at_once(process_threads):
    sklearn_nn = pytest.importorskip("ffnc.sklearn")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 32))
    y = rng.integers(0, 4, 400)

    def fit(threads):
        model = sklearn_nn.MLPClassifier(hidden_layer_sizes=(128,), max_iter=5,
                                         random_state=0, threads=threads).fit(x, y)
        return model.model_.flat.copy(), model.predict_proba(x)

    alone = [fit(1), fit(2)]
    together = run_in_threads(lambda: fit(1), lambda: fit(2))
    for (w, p), (w_alone, p_alone) in zip(together, alone, strict=True):
        assert_same_bits(w, w_alone, "weights")
        assert_same_bits(p, p_alone, "probabilities")


# ---- changing the thread count or the ISA while a plan runs ---------------------------------

def _training_plan(dtype=F32, rows=512, optimizer=None):
    rng = np.random.default_rng(8)
    x = G.placeholder((None, 64), dtype, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    w1 = G.parameter((rng.standard_normal((64, 256)) * 0.1).astype(dtype), name="w1")
    b1 = G.parameter(np.zeros(256, dtype), name="b1")
    w2 = G.parameter((rng.standard_normal((256, 32)) * 0.1).astype(dtype), name="w2")
    loss = G.softmax_cross_entropy(G.activation(x @ w1 + b1, "tanh") @ w2, y)
    optimizer = optimizer or optim.RMSprop(1e-3, centered=True, clip_norm=1.0)
    plan = compile_plan(loss, loss=loss, optimizer=optimizer, batch_size=rows)
    feed = {"x": rng.standard_normal((4 * rows, 64)).astype(dtype),
            "y": rng.integers(0, 32, 4 * rows)}
    return plan, feed


def _toggle_while(running: threading.Event, action) -> int:
    """Calls action(i) for i = 0, 1, ... every 0.1 ms until `running` is cleared; returns how
    many times."""
    i = 0
    while running.is_set():
        action(i)
        i += 1
        time.sleep(1e-4)
    return i


def test_thread_count_changed_from_another_thread_while_training(process_threads):
    ffnc.set_num_threads(1)
    plan, feed = _training_plan()
    reference = [plan.run_epoch(feed, 512) for _ in range(5)]
    expected = plan.param_arena.copy()

    plan, feed = _training_plan()
    running = threading.Event()
    running.set()

    def train_plan():
        try:
            return [plan.run_epoch(feed, 512) for _ in range(5)]
        finally:
            running.clear()

    toggles = lambda: _toggle_while(running, lambda i: ffnc.set_num_threads(1 + i % 2))  # noqa: E731
    records, changes = run_in_threads(train_plan, toggles)
    assert changes > 1
    assert_same_bits(plan.param_arena, expected, "parameters")
    assert_same_bits(np.array(records), np.array(reference), "losses")


class _SwitchThreads(train.Callback):
    """After every step (which puts fit in batch mode): the process-wide count alternates
    between 1 and 2, or (switch=False) stays."""

    def __init__(self, switch: bool) -> None:
        self.switch = switch

    def on_batch_end(self, step, logs):
        if self.switch:
            ffnc.set_num_threads(1 + step % 2)
        return False


def test_thread_count_changed_between_steps_of_a_fit(process_threads):
    a, _ = _data()
    weights = []
    for switch in (False, True):
        ffnc.set_num_threads(1)
        weights.append(_fit_a(a, None, [_SwitchThreads(switch)]))
    assert_same_bits(weights[1], weights[0], "weights")


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_isa_switched_from_another_thread_while_a_plan_runs(dtype, process_threads):
    isas = ffnc.supported_isas()
    if len(isas) < 2:
        pytest.skip(f"one ISA path on this machine: {isas}")
    ffnc.set_num_threads(2)
    ffnc.set_isa(isas[-1])
    # An update proportional to the gradient, so that the paths' rounding differences stay
    # relative ones (RMSprop's g / sqrt(mean g^2) magnifies them where g is near 0)
    optimizer = optim.Momentum(0.05, 0.9, clip_norm=1.0)
    plan, feed = _training_plan(dtype, optimizer=optimizer)
    for _ in range(4):
        plan.run_epoch(feed, 512)
    expected = plan.param_arena.copy()

    plan, feed = _training_plan(dtype, optimizer=optimizer)
    running = threading.Event()
    running.set()

    def train_plan():
        try:
            for _ in range(4):
                plan.run_epoch(feed, 512)
        finally:
            running.clear()

    switches = lambda: _toggle_while(running, lambda i: ffnc.set_isa(isas[i % len(isas)]))  # noqa: E731
    _, count = run_in_threads(train_plan, switches)
    assert count > 1
    got = plan.param_arena
    assert np.isfinite(got).all()
    # 16 steps; generic against avx2 differ here by 1.4e-7 (float32) and 1.3e-16 (float64) of
    # the largest weight: FMA against separate multiply and add
    rtol = 1e-5 if dtype == F32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


# ---- one plan, two threads -----------------------------------------------------------------

def test_one_inference_plan_run_from_two_threads_returns_each_its_own_outputs():
    """Batches of 1 and of 2048 rows through the same plan at once: before the plan had a
    lock, the big step could read the small step's input pointers (out of bounds)."""
    rng = np.random.default_rng(1)
    x = G.placeholder((None, 64), F32, name="x")
    w = G.parameter((rng.standard_normal((64, 128)) * 0.1).astype(F32), name="w")
    out = G.softmax(G.activation(x @ w, "gelu"), -1)
    plan = compile_plan(out, batch_size=2048)
    big = rng.standard_normal((2048, 64)).astype(F32)
    smalls = [rng.standard_normal((1, 64)).astype(F32) for _ in range(8)]
    expected_big = plan.run({"x": big})
    expected_small = [plan.run({"x": s}) for s in smalls]

    def run_big():
        return [plan.run({"x": big}) for _ in range(40)]

    def run_small():
        return [plan.run({"x": smalls[i % 8].copy()}) for i in range(2000)]

    bigs, small_results = run_in_threads(run_big, run_small)
    for got in bigs:
        assert_same_bits(got, expected_big, "the big batch's outputs")
    for i, got in enumerate(small_results):
        assert_same_bits(got, expected_small[i % 8], "a one-row batch's outputs")


def test_one_training_plan_run_from_two_threads_counts_every_step():
    plan, feed = _training_plan()
    one_row = {"x": feed["x"][:1].copy(), "y": feed["y"][:1].copy()}

    def epochs():
        return [plan.run_epoch(feed, 512) for _ in range(10)]

    def steps():
        return [plan.run(one_row) for _ in range(300)]

    records, losses = run_in_threads(epochs, steps)
    assert plan.step == 10 * 4 + 300
    assert np.isfinite(plan.param_arena).all()
    assert np.isfinite(np.array(records)).all() and np.isfinite(np.array(losses)).all()


def test_predict_on_one_model_from_two_threads():
    """predict caches one inference plan per model and batch size: two threads share it."""
    model = _classifier()
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((n, 64)).astype(F32) for n in (700, 3, 1024)]
    expected = [train.predict(model, x) for x in xs]

    def predict_all(k):
        return [train.predict(model, xs[(i + k) % 3]) for i in range(60)]

    for k, results in enumerate(run_in_threads(lambda: predict_all(0), lambda: predict_all(1))):
        for i, got in enumerate(results):
            assert_same_bits(got, expected[(i + k) % 3], "predictions")
