"""Determinism: the same seed gives the same bits, run after run, and with 1 or 2 threads.

Every reduction in ffnc runs in a fixed order that depends on neither the thread count nor the
ISA path (DESIGN.md, "Numerics"), so training a model twice from the same seed gives bitwise
identical weights, and so does training it once on 1 thread and once on 2. The shapes here are
chosen to cross the size thresholds below which kernels stay on one thread (csrc/core/
internal.h: 2^13 elements per thread for element-wise kernels, 2^14 for row-wise ones, 2^9 for
transcendental ones; csrc/gemm/gemm.c: 2^16 multiply-adds per thread for GEMM), and every test
checks with the core's counter of multithreaded kernel calls that the 2-thread run really took
the multithreaded paths while the 1-thread run did not.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import ffnc
import ffnc.graph as G
from ffnc import _core, nn, optim, train
from ffnc.compiler import compile as compile_plan

F32, F64 = np.float32, np.float64

# Each fit: ROWS rows in batches of BATCH (two steps per epoch, the second one smaller), over
# EPOCHS epochs. 512 rows x 64 units is 2^15 values: two threads for element-wise kernels, and
# the GEMMs (512 x 64 x 128 multiply-adds) are well over two GEMM grains.
ROWS, BATCH, EPOCHS, FEATURES = 768, 512, 2, 64

_core_lib = ctypes.CDLL(_core.__file__)
_core_lib.ffnc_multithreaded_calls.restype = ctypes.c_size_t


def multithreaded_calls() -> int:
    """Kernel calls so far, in this process, that chose more than one thread."""
    return _core_lib.ffnc_multithreaded_calls()


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


def assert_same_bits(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, what
    if not np.array_equal(bits(a), bits(b)):
        differ = np.flatnonzero(bits(a) != bits(b))
        raise AssertionError(f"{what}: {len(differ)} bytes differ, largest difference "
                             f"{np.max(np.abs(a.astype(F64) - b.astype(F64)))}")


# ---- the cases: layers x losses x optimizers ----------------------------------------------


def _targets(loss: str, outputs: int, dtype, rng) -> np.ndarray:
    if loss == "softmax_cross_entropy":
        return rng.integers(0, outputs, ROWS)
    if loss == "bce":
        return (rng.random((ROWS, outputs)) < 0.5).astype(dtype)
    if loss == "gaussian_nll":
        return rng.standard_normal((ROWS, outputs // 2)).astype(dtype)
    if loss == "mdn":
        return rng.standard_normal((ROWS, 1)).astype(dtype)
    return rng.standard_normal((ROWS, outputs)).astype(dtype)


def _sequential(layers, loss):
    return lambda dtype: nn.Sequential(layers(), input_shape=(FEATURES,), dtype=dtype, seed=3,
                                       loss=loss)


def _skip_model(dtype):
    x = nn.Input((FEATURES,))
    h1 = nn.Dense(96, activation="leaky_relu")(x)
    h2 = nn.Dense(32, activation="softplus")(x)
    h = nn.Concat()([h1, h2])
    y = nn.Add()([nn.Dense(96, activation="sigmoid")(h), h1])  # a skip connection
    return nn.Model(x, nn.Dense(64)(y), dtype=dtype, seed=3, loss="mse")


# name: (model factory, loss name, outputs, optimizer, fit options: a function, since a
# ReduceLROnPlateau carries its state from one fit into the next)
CASES = {
    "dense_relu_xent_adam": (
        _sequential(lambda: [nn.Dense(128, "relu"), nn.Dense(64)], "softmax_cross_entropy"),
        "softmax_cross_entropy", 64, optim.Adam(1e-3), dict),
    "dense_tanh_mse_sgd_decay": (
        _sequential(lambda: [nn.Dense(128, "tanh"), nn.Dense(64)], "mse"),
        "mse", 64, optim.SGD(0.01, weight_decay=1e-3), dict),
    "dense_sigmoid_bce_nesterov_clip": (
        _sequential(lambda: [nn.Dense(128, "sigmoid"), nn.Dense(64)], "bce"),
        "bce", 64, optim.Momentum(0.05, 0.9, nesterov=True, clip_norm=0.5), dict),
    "maxout_bce_rmsprop_centered": (
        _sequential(lambda: [nn.Maxout(64, 3), nn.Dense(64)], "bce"),
        "bce", 64, optim.RMSprop(1e-3, centered=True, momentum=0.5), dict),
    "prelu_l1_adamw_clip": (
        _sequential(lambda: [nn.Dense(128), nn.PReLU(), nn.Dense(64)], "l1"),
        "l1", 64, optim.AdamW(1e-3, clip_norm=0.1), dict),
    # one slope shared by the layer: its gradient is a full reduction over batch x units
    "prelu_shared_l1_momentum": (
        _sequential(lambda: [nn.Dense(128), nn.PReLU(shared=True), nn.Dense(64)], "l1"),
        "l1", 64, optim.Momentum(0.01, 0.9), dict),
    "lowrank_gelu_gaussian_nll_rmsprop": (
        _sequential(lambda: [nn.LowRank(128, 16, "gelu"), nn.Dense(64)], "gaussian_nll"),
        "gaussian_nll", 64, optim.RMSprop(1e-3), dict),
    "rbf_mdn_adam_schedule": (
        _sequential(lambda: [nn.RBF(128), nn.Dense(63)], {"class": "mdn", "components": 21}),
        "mdn", 63, optim.Adam(1e-3), lambda: {"schedule": optim.CosineLR(4)}),
    "dropout_elu_xent_sgd_schedule": (
        _sequential(lambda: [nn.Dense(128, "elu"), nn.Dropout(0.3), nn.Dense(64)],
                    "softmax_cross_entropy"),
        "softmax_cross_entropy", 64, optim.SGD(0.1),
        lambda: {"schedule": [optim.LinearWarmup(2), optim.ReduceLROnPlateau(patience=0)]}),
    "skip_model_mse_adam_clip_schedule": (
        _skip_model, "mse", 64, optim.Adam(1e-3, clip_norm=1.0),
        lambda: {"schedule": optim.StepLR(1)}),
}


def _fit(case: str, dtype, threads: int) -> tuple[np.ndarray, dict, int]:
    """Trains the case's model from its seed; returns its weights, the history and the number
    of multithreaded kernel calls the fit made."""
    make, loss, outputs, optimizer, options = CASES[case]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((ROWS, FEATURES)).astype(dtype)
    y = _targets(loss, outputs, dtype, rng)
    model = make(dtype)
    before = multithreaded_calls()
    history = train.fit(model, x, y, optimizer=optimizer, epochs=EPOCHS, batch_size=BATCH,
                        seed=4, metrics=[], verbose=0, threads=threads, **options())
    return model.flat.copy(), history.history, multithreaded_calls() - before


# Each case in one dtype, alternating, and the plainest ones in both: the float32 and float64
# kernels are separate code.
DTYPED_CASES = [(case, F32 if i % 2 == 0 else F64) for i, case in enumerate(sorted(CASES))] + \
    [("dense_relu_xent_adam", F64), ("dense_tanh_mse_sgd_decay", F64)]


@pytest.mark.parametrize(("case", "dtype"), DTYPED_CASES,
                         ids=[f"{c}-{np.dtype(d).name}" for c, d in DTYPED_CASES])
def test_fit_gives_the_same_bits_every_run_and_on_1_or_2_threads(case, dtype):
    first, history, calls_1 = _fit(case, dtype, threads=1)
    again, history_again, _ = _fit(case, dtype, threads=1)
    two, history_2, calls_2 = _fit(case, dtype, threads=2)
    assert calls_1 == 0, "threads=1 must not start a parallel region"
    assert calls_2 > 10, f"the 2-thread fit took the multithreaded paths only {calls_2} times"
    assert np.isfinite(first).all()
    assert_same_bits(first, again, f"{case}: two runs on 1 thread")
    assert_same_bits(first, two, f"{case}: 1 thread against 2")
    assert history == history_again == history_2


def test_each_optimizer_variant_on_1_and_2_threads():
    """Every optimizer and its variants over one model (the update kernels split the 16,576
    parameters over both threads)."""
    variants = [optim.SGD(0.05), optim.SGD(0.05, clip_norm=0.1),
                optim.Momentum(0.05, 0.9), optim.Momentum(0.05, 0.9, nesterov=True,
                                                          weight_decay=1e-3),
                optim.Adam(1e-3, weight_decay=1e-3), optim.AdamW(1e-3),
                optim.RMSprop(1e-3), optim.RMSprop(1e-3, centered=True),
                optim.RMSprop(1e-3, momentum=0.9, weight_decay=1e-3, centered=True,
                              clip_norm=0.2)]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((ROWS, FEATURES)).astype(F32)
    y = rng.integers(0, 64, ROWS)
    for optimizer in variants:
        weights = []
        for threads in (1, 2):
            model = nn.Sequential([nn.Dense(128, "relu"), nn.Dense(64)], input_shape=(FEATURES,),
                                  seed=1, loss="softmax_cross_entropy")
            before = multithreaded_calls()
            train.fit(model, x, y, optimizer=optimizer, epochs=1, batch_size=BATCH, verbose=0,
                      metrics=[], threads=threads)
            assert (multithreaded_calls() > before) == (threads == 2)
            weights.append(model.flat.copy())
        assert_same_bits(weights[0], weights[1], f"{optimizer}: 1 thread against 2")


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_odd_shapes_on_1_and_2_threads(dtype):
    """Sizes that are no multiple of any block: the GEMM's thread grid then cuts its tiles at
    different rows and columns than one thread does (and uses its shorter edge kernels
    elsewhere), and the fixed reduction blocks fall unevenly."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1001, 67)).astype(dtype)
    y = rng.integers(0, 37, 1001)
    weights = []
    for threads in (1, 2):
        model = nn.Sequential([nn.Dense(131, "gelu"), nn.Maxout(45, 3), nn.Dense(37)],
                              input_shape=(67,), dtype=dtype, seed=5,
                              loss="softmax_cross_entropy")
        before = multithreaded_calls()
        train.fit(model, x, y, optimizer=optim.Adam(1e-3, clip_norm=1.0), epochs=1,
                  batch_size=509, verbose=0, metrics=[], threads=threads)
        assert (multithreaded_calls() > before) == (threads == 2)
        weights.append(model.flat.copy())
    assert_same_bits(weights[0], weights[1], "odd shapes: 1 thread against 2")


def test_plan_run_alternating_thread_counts_gives_the_same_bits():
    """A raw plan stepped with the process-wide count switched between 1 and 2 before every
    step ends where a plan run on 1 thread throughout does."""
    rng = np.random.default_rng(4)
    x = G.placeholder((None, FEATURES), F32, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    w1 = G.parameter(rng.standard_normal((FEATURES, 256)).astype(F32) * 0.1, name="w1")
    w2 = G.parameter(rng.standard_normal((256, 64)).astype(F32) * 0.1, name="w2")
    h = G.activation(x @ w1, "tanh")
    loss = G.softmax_cross_entropy(h @ w2, y)
    xv = rng.standard_normal((BATCH, FEATURES)).astype(F32)
    yv = rng.integers(0, 64, BATCH)
    saved = _core.configured_num_threads()
    results = []
    try:
        # Both plans are compiled before either runs, so both start from the initial values
        # (a plan compiled after another trained the parameters would start from the trained
        # ones).
        plans = [compile_plan(loss, loss=loss, optimizer=optim.Adam(1e-3, clip_norm=1.0),
                              batch_size=BATCH) for _ in range(2)]
        for counts, plan in zip(([1] * 6, [1, 2] * 3), plans, strict=True):
            losses = []
            before = multithreaded_calls()
            for n in counts:
                ffnc.set_num_threads(n)
                losses.append(plan.run({"x": xv, "y": yv}))
            assert (multithreaded_calls() > before) == (2 in counts)
            results.append((plan.param_arena.copy(), np.array(losses)))
    finally:
        ffnc.set_num_threads(saved)
    assert_same_bits(results[0][0], results[1][0], "parameters")
    assert_same_bits(results[0][1], results[1][1], "losses")


def test_predict_and_evaluate_on_1_and_2_threads():
    rng = np.random.default_rng(6)
    model = nn.Sequential([nn.Dense(256, "softplus"), nn.Dense(64)], input_shape=(FEATURES,),
                          seed=2, loss="softmax_cross_entropy")
    x = rng.standard_normal((2000, FEATURES)).astype(F32)
    y = rng.integers(0, 64, 2000)
    out = []
    for threads in (1, 2):
        before = multithreaded_calls()
        with ffnc.threads(threads):
            out.append((train.predict(model, x), train.evaluate(model, x, y)))
        assert (multithreaded_calls() > before) == (threads == 2)
    assert_same_bits(out[0][0], out[1][0], "predict")
    assert out[0][1] == out[1][1]


def test_sklearn_estimators_on_1_and_2_threads():
    sklearn_nn = pytest.importorskip("ffnc.sklearn")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((256, FEATURES))
    labels = rng.integers(0, 3, 256)
    target = x[:, :3] @ rng.standard_normal((3, 40))
    for estimator, y in ((sklearn_nn.MLPClassifier, labels), (sklearn_nn.MLPRegressor, target)):
        fitted = []
        for threads in (1, 2):
            model = estimator(hidden_layer_sizes=(256,), batch_size=128, max_iter=2,
                              random_state=0, threads=threads)
            before = multithreaded_calls()
            with pytest.warns(Warning):  # sklearn's ConvergenceWarning after 2 iterations
                model.fit(x, y)
            prediction = model.predict(x)
            assert (multithreaded_calls() > before) == (threads == 2), estimator.__name__
            fitted.append((model.model_.flat.copy(), prediction))
        assert_same_bits(fitted[0][0], fitted[1][0], f"{estimator.__name__} weights")
        assert_same_bits(np.asarray(fitted[0][1]), np.asarray(fitted[1][1]),
                         f"{estimator.__name__} predictions")
