"""Leaks: resident memory stays flat over long training runs, predict loops, repeated
compile/free of plans, model create/save/load cycles and threads that come and go.

Each test warms up first (first-use allocations: packing buffers, cached inference plans, the
allocator's arenas), then measures the resident set (/proc/self/statm) across the repetitions
and bounds its growth by a small number of pages, far below what leaking one object per
repetition would add (stated per test). tests/test_plan_run.py has the same check over 10,000
steps of Plan.run_epoch.
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading

import numpy as np
import pytest
from conftest import rss_leak_check

import ffnc.graph as G
from ffnc import _core, io, kernels, nn, optim, train
from ffnc.compiler import compile as compile_plan

pytestmark = [pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc"),
              rss_leak_check]

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_pages() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1])


class RssPerEpoch(train.Callback):
    """RSS before the first step and after each epoch."""

    def __init__(self) -> None:
        self.pages: list[int] = []

    def on_train_begin(self, model):
        self.pages.append(rss_pages())

    def on_epoch_end(self, epoch, logs):
        self.pages.append(rss_pages())
        return False


class RssPerEpochStepwise(RssPerEpoch):
    """The same, in fit's batch mode: one call into C per step, a Python callback after each."""

    def on_batch_end(self, step, logs):
        return False


def _classifier():
    return nn.Sequential([nn.Dense(32, "relu"), nn.Dropout(0.1), nn.Dense(4)], input_shape=(8,),
                         seed=0, loss="softmax_cross_entropy")


def _data(rows):
    rng = np.random.default_rng(0)
    return rng.standard_normal((rows, 8)).astype(np.float32), rng.integers(0, 4, rows)


@pytest.mark.parametrize("callback", [RssPerEpoch, RssPerEpochStepwise],
                         ids=["epoch_per_call", "step_per_call"])
def test_fit_10000_steps(callback):
    """10 epochs x 1,000 steps (batch 16), with validation, metrics, shuffling, a schedule and
    gradient clipping, after a warm-up fit: RSS moves by at most 16 pages (64 KiB) from the
    first step to the last, where keeping one 16-row batch per step would add 1.2 MiB."""
    x, y = _data(16_000)
    model = _classifier()
    options = dict(optimizer=optim.Adam(1e-3, clip_norm=1.0), batch_size=16, verbose=0,
                   validation_data=_data(256), schedule=optim.CosineLR(10_000))
    train.fit(model, x, y, epochs=1, **options)  # warm-up: every allocation once
    cb = callback()
    history = train.fit(model, x, y, epochs=10, callbacks=[cb], **options)
    assert len(history["loss"]) == 10 and np.isfinite(history["loss"]).all()
    growth = max(cb.pages) - cb.pages[0]
    assert growth <= 16, f"RSS grew by {growth} pages over 10,000 steps: {cb.pages}"


def test_predict_and_evaluate_loops():
    """10,000 predict calls and 1,000 evaluate calls: at most 16 pages, where keeping one
    result (10 x 4 floats) per call would add 1.6 MiB. Measured over a second round of calls:
    the first may settle the allocators' free lists (a few pages, once, depending on what
    earlier tests left in the heap); a leak grows in every round."""
    model = _classifier()
    x, y = _data(10)

    def calls():
        for _ in range(10_000):
            train.predict(model, x)
        for _ in range(1_000):
            train.evaluate(model, x, y)
        gc.collect()

    calls()
    before = rss_pages()
    calls()
    growth = rss_pages() - before
    assert growth <= 16, f"RSS grew by {growth} pages over 10,000 predicts"


def test_compile_run_free_2000_plans():
    """2,000 cycles of compile + run + delete: at most 64 pages (256 KiB) after 200 warm-up
    cycles, where leaking each plan (its arenas and instruction list, over 1 KiB) would add
    more than 2 MiB."""
    rng = np.random.default_rng(1)
    x = G.placeholder((None, 8), np.float32, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    w = G.parameter(rng.standard_normal((8, 16)).astype(np.float32), name="w")
    v = G.parameter(rng.standard_normal((16, 4)).astype(np.float32), name="v")
    loss = G.softmax_cross_entropy(G.activation(x @ w, "tanh") @ v, y)
    feed = {"x": rng.standard_normal((16, 8)).astype(np.float32), "y": rng.integers(0, 4, 16)}

    def cycle():
        plan = compile_plan(loss, loss=loss, optimizer=optim.Adam(1e-3), batch_size=16)
        plan.run(feed)
        plan.run_epoch(feed, 8)
        del plan

    for _ in range(200):
        cycle()
    gc.collect()
    before = rss_pages()
    for _ in range(2_000):
        cycle()
    gc.collect()
    growth = rss_pages() - before
    assert growth <= 64, f"RSS grew by {growth} pages over 2,000 compile/free cycles"


def test_model_create_save_load_cycles():
    """500 cycles of creating a model, saving it with optimizer and training state, loading
    it back (model and full checkpoint): at most 64 pages, where leaking one model's
    parameters (1.2 KiB) per cycle would add 600 KiB. On tmpfs when there is one: the
    atomic writes fsync."""
    directory = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    path = os.path.join(directory, "model.safetensors")
    state = {"m": None}

    def cycle():
        model = _classifier()
        if state["m"] is None:
            state["m"] = np.zeros(model.flat.size, np.float32)
        io.write_atomic(path, io.to_bytes(model, optimizer=optim.Adam(1e-3),
                                          optimizer_state={"m": state["m"], "v": state["m"]},
                                          step=3, training={"epoch": 1}))
        loaded = io.load(path)
        assert np.array_equal(loaded.flat, model.flat)
        io.load_checkpoint(path)

    try:
        for _ in range(50):
            cycle()
        gc.collect()
        before = rss_pages()
        for _ in range(500):
            cycle()
        gc.collect()
        growth = rss_pages() - before
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
    assert growth <= 64, f"RSS grew by {growth} pages over 500 create/save/load cycles"


def _malloc_in_use():
    """Bytes the C allocator has handed out and not had back (glibc's mallinfo2, summed over
    its arenas), or None where there is no mallinfo2."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    mallinfo2 = getattr(ctypes.CDLL(None), "mallinfo2", None)
    if mallinfo2 is None:
        return None
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return info.uordblks + info.hblkhd


def test_threads_that_come_and_go():
    """40 short-lived Python threads each running 2-thread GEMMs: each gets its own OpenMP
    team and packing buffers, which must go with the thread. The process's thread count comes
    back, and the bytes in use by malloc move by at most 64 KiB, where keeping each thread's
    packing buffers (about 0.4 MiB for its two OpenMP threads) would add 16 MiB. (Resident
    memory is not the measure here: glibc keeps a freed thread's arena for the next thread,
    so RSS rises in steps up to a bound set by the number of arenas, leak or not.)"""
    if _malloc_in_use() is None:
        pytest.skip("needs glibc's mallinfo2")
    a = np.ones((256, 256), np.float32)

    def work():
        _core.set_local_num_threads(2)
        for _ in range(2):
            kernels.gemm(a, a)

    def spawn(n):
        for _ in range(n):
            t = threading.Thread(target=work)
            t.start()
            t.join()

    tasks = len(os.listdir("/proc/self/task"))
    spawn(10)
    gc.collect()
    before = _malloc_in_use()
    spawn(40)
    gc.collect()
    growth = _malloc_in_use() - before
    assert len(os.listdir("/proc/self/task")) <= tasks + 1  # an OpenMP worker may linger
    assert growth <= 64 * 1024, f"malloc'd bytes in use grew by {growth} over 40 threads"
