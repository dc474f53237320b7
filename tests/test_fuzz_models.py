"""Fuzz: models (ffnc.nn layers, initializers, losses, Sequential, Model), training
(fit/predict/evaluate), optimizers and schedules (ffnc.optim), and checkpoint arguments.

Each example starts from a valid call and replaces one argument by a value from a pool that
mixes valid and invalid ones, each tagged with the outcome the documented contract gives
(None: accepted; TypeError; ValueError; or either, for a value of the wrong kind where both
read right). The call must then succeed (and the result is checked: shapes, finiteness,
round trips) or raise that error naming the argument, leaving the model as it was.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import fuzz
from hypothesis import given
from hypothesis import strategies as st

import ffnc
import ffnc.nn as nn
from ffnc import io, optim, train

ERRORS = (TypeError, ValueError)


class Bad:
    """Marks a pool value the call must refuse with `error` (naming `word`)."""

    def __init__(self, value, error=ERRORS, word=None) -> None:
        self.value, self.error, self.word = value, error, word

    def __repr__(self) -> str:
        return f"Bad({self.value!r})"


def _unpack(entry):
    return (entry.value, entry.error, entry.word) if isinstance(entry, Bad) else \
        (entry, None, None)


def _expect(fn, error, word, what):
    """Runs fn; asserts it raises `error` whose message holds `word`, or succeeds when error
    is None. Returns fn's result (None after an expected error)."""
    try:
        result = fn()
    except (TypeError, ValueError, MemoryError) as exc:
        assert error is not None, f"{what}: unexpected {type(exc).__name__}: {exc}"
        assert isinstance(exc, error), f"{what}: expected {error}, got {exc!r}"
        assert word in str(exc), f"{what}: the message does not name {word!r}: {exc}"
        return None
    assert error is None, f"{what}: accepted, expected {error}"
    return result


# ---- layers ---------------------------------------------------------------------------------

INTS = [1, 3, np.int64(2), Bad(0, ValueError), Bad(-1, ValueError), Bad(1.0), Bad(2.5),
        Bad("3"), Bad(True), Bad(None), Bad([3])]
BOOLS = [True, False, np.bool_(False), Bad(1, TypeError), Bad("no", TypeError),
         Bad(None, TypeError), Bad(0.0, TypeError)]
INITS = ["glorot_uniform", "he_normal", "zeros", {"class": "constant", "value": 0.1},
         nn.initializers.Normal(0.0, 0.1), Bad("nope", ValueError), Bad(3, TypeError),
         Bad({"class": "constant", "value": "x"}, ValueError), Bad({"value": 1}, TypeError),
         Bad({"class": "uniform", "low": 1.0, "high": 0.0}, ValueError),
         Bad({"class": "normal", "stddev": -1.0}, ValueError),
         Bad({"class": "normal", "stddev": float("nan")}, ValueError),
         Bad({"class": "orthogonal", "gain": "x"}, ValueError),
         Bad({"class": "constant", "bogus": 1}, ValueError)]
ACTS = ["relu", "identity", "tanh", "gelu", Bad("nope", ValueError), Bad(3, ERRORS),
        Bad(None, ERRORS), Bad(["relu"], ERRORS)]
RATES = [0.0, 0.5, 0.9, Bad(1.0, ValueError), Bad(-0.1, ValueError),
         Bad(float("nan"), ValueError), Bad("0.5"), Bad(True), Bad(None)]
NAMES = [None, "h", "block_1", Bad("", ValueError), Bad("a.b", ValueError), Bad(3), Bad(b"x")]

LAYERS = {  # class -> {argument: pool}; the first entry of each pool is the valid default
    nn.Dense: {"units": INTS, "activation": ACTS, "use_bias": BOOLS,
               "kernel_initializer": INITS, "bias_initializer": INITS, "name": NAMES,
               "alpha": [None, Bad(0.5, ValueError, "alpha")]},
    nn.LowRank: {"units": INTS, "rank": INTS, "activation": ACTS, "use_bias": BOOLS,
                 "name": NAMES},
    nn.Maxout: {"units": INTS, "pieces": INTS, "use_bias": BOOLS,
                "kernel_initializer": INITS, "name": NAMES},
    nn.RBF: {"units": INTS, "centers_initializer": [None] + INITS,
             "width_initializer": [None] + INITS, "name": NAMES},
    nn.PReLU: {"shared": BOOLS, "alpha_initializer": [None] + INITS, "name": NAMES},
    nn.Activation: {"activation": ACTS, "name": NAMES},
    nn.LeakyReLU: {"alpha": [None, 0.0, 0.2, 3, Bad(-1.0, ValueError),
                             Bad(float("inf"), ValueError), Bad("x"), Bad(True),
                             Bad(10**400)], "name": NAMES},
    nn.ELU: {"alpha": [None, 1.0, Bad(float("nan"), ValueError), Bad([1.0])], "name": NAMES},
    nn.Dropout: {"rate": RATES, "seed": [None, 0, 7, Bad(-1, ValueError), Bad(1.5),
                                         Bad("1"), Bad(True)], "name": NAMES},
    nn.Softmax: {"name": NAMES},
    nn.Add: {"name": NAMES},
    nn.Concat: {"name": NAMES},
}
REQUIRED = {nn.Dense: {"units": 2}, nn.LowRank: {"units": 2, "rank": 1},
            nn.Maxout: {"units": 2}, nn.RBF: {"units": 2}, nn.Activation: {"activation": "relu"},
            nn.Dropout: {"rate": 0.5}}


@pytest.mark.parametrize("cls", list(LAYERS), ids=lambda c: c.__name__)
@fuzz(60)
@given(data=st.data())
def test_layer_constructors_check_every_argument(cls, data):
    arg = data.draw(st.sampled_from(sorted(LAYERS[cls])))
    value, error, word = _unpack(data.draw(st.sampled_from(LAYERS[cls][arg])))
    kwargs = {**REQUIRED.get(cls, {}), arg: value}
    if cls is nn.Dense and arg == "alpha":
        kwargs["activation"] = "relu"  # relu takes no alpha
    layer = _expect(lambda: cls(**kwargs), error, word or _word(arg, cls), f"{cls.__name__}"
                    f"({arg}={value!r})")
    if layer is None:
        return
    config = layer.get_config()
    rebuilt = nn.from_config(config)
    assert type(rebuilt) is cls and rebuilt.get_config() == config
    import json

    json.dumps(config)  # a config is JSON


def _word(arg: str, cls) -> str:
    return {"kernel_initializer": "initializer", "bias_initializer": "initializer",
            "centers_initializer": "initializer", "width_initializer": "initializer",
            "alpha_initializer": "initializer"}.get(arg, arg)


# ---- models ---------------------------------------------------------------------------------

def _stack(draw):
    """A random stack of small layers (some shapes will not fit: that is part of the test)."""
    kinds = draw(st.lists(st.sampled_from(["dense", "lowrank", "maxout", "rbf", "prelu",
                                           "relu", "dropout", "softmax", "add"]),
                          min_size=0, max_size=4))
    makers = {"dense": lambda u: nn.Dense(u, activation="tanh"),
              "lowrank": lambda u: nn.LowRank(u, rank=2), "maxout": lambda u: nn.Maxout(u),
              "rbf": lambda u: nn.RBF(u), "prelu": lambda u: nn.PReLU(),
              "relu": lambda u: nn.ReLU(), "dropout": lambda u: nn.Dropout(0.5, seed=1),
              "softmax": lambda u: nn.Softmax(), "add": lambda u: nn.Add()}
    layers = [makers[k](draw(st.sampled_from([1, 2, 3]))) for k in kinds]
    return layers


@fuzz(250)
@given(data=st.data(),
       input_shape=st.sampled_from([(3,), 3, (1,), np.int64(2), Bad((), ValueError),
                                    Bad((0,), ValueError), (3, 2),
                                    Bad(-1, ValueError), Bad("3", ValueError),
                                    Bad((1.5,), ValueError), Bad(None, ValueError)]),
       dtype=st.sampled_from(["float32", np.float64, Bad("float16", TypeError),
                              Bad("junk", TypeError), Bad(np.int32, TypeError),
                              Bad(None, TypeError)]),
       seed=st.sampled_from([0, 5, None, 2**70, Bad(-1, ValueError), Bad(1.5, ValueError),
                             Bad("1", ValueError)]),
       loss=st.sampled_from([None, "mse", "softmax_cross_entropy", "bce", "l1",
                             {"class": "mdn", "components": 1},
                             Bad("nope", ValueError), Bad(3, TypeError),
                             Bad({"class": "mdn", "components": 0}, ValueError),
                             Bad({"class": "mse", "bogus": 1}, ValueError)]))
def test_sequential_builds_or_names_the_problem(data, input_shape, dtype, seed, loss):
    layers = _stack(data.draw)
    bad = [b for b in (input_shape, dtype, seed, loss) if isinstance(b, Bad)]
    values = [_unpack(v)[0] for v in (input_shape, dtype, seed, loss)]
    try:
        model = nn.Sequential(layers, input_shape=values[0], dtype=values[1], seed=values[2],
                              loss=values[3])
    except (TypeError, ValueError) as exc:
        if bad:
            assert isinstance(exc, tuple(b.error if isinstance(b.error, tuple) else (b.error,)
                                          for b in bad)[0] + ERRORS), exc
        message = str(exc)
        assert any(w in message for w in ("Sequential", "layer", "input_shape", "dtype",
                                          "seed", "loss", "mdn", "initializer")), message
        return
    assert not bad, f"accepted {bad}"
    # the output shape the model reports is the one the reference interpreter computes
    x = np.linspace(-1, 1, 2 * math.prod(model.input_shape)).reshape(
        (2,) + model.input_shape).astype(model.dtype)
    out = model.forward(x)
    assert out.shape == (2,) + tuple(model.output_shape[1:]) and out.dtype == model.dtype
    assert np.isfinite(out).all()
    rebuilt = nn.from_config(model.get_config())
    np.testing.assert_array_equal(rebuilt.flat, model.flat)


@fuzz(40)
@given(units=st.sampled_from([2**40, 2**45, 2**62, 2**70]),
       fan_in=st.sampled_from([1, 3, 2**10, 2**40]),
       kind=st.sampled_from(["dense", "maxout", "lowrank", "rbf"]))
def test_a_layer_larger_than_memory_is_refused_naming_it(units, fan_in, kind):
    """Layers of terabytes to zettabytes: a MemoryError naming the layer, before anything is
    allocated. (Sizes that fit in memory would really be drawn: the pools hold none.)"""
    layer = {"dense": lambda: nn.Dense(units), "maxout": lambda: nn.Maxout(units, pieces=2),
             "lowrank": lambda: nn.LowRank(units, rank=1), "rbf": lambda: nn.RBF(units)}[kind]()
    with pytest.raises(MemoryError, match="layer '0'"):
        nn.Sequential([layer], input_shape=(fan_in,))


# ---- fit, predict, evaluate ---------------------------------------------------------------------

ROWS = 6


def _model(loss, dtype):
    return nn.Sequential([nn.Dense(3, activation="relu"), nn.Dense(2)], input_shape=(4,),
                         dtype=dtype, seed=1, loss=loss)


def _data(loss, dtype, rng):
    x = rng.normal(size=(ROWS, 4)).astype(dtype)
    if loss == "softmax_cross_entropy":
        y = rng.integers(0, 2, ROWS)
    elif loss == "bce":
        y = rng.integers(0, 2, (ROWS, 2)).astype(dtype)
    else:
        y = rng.normal(size=(ROWS, 2)).astype(dtype)
    return x, y


def _x_pool(x, dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    nan = x.copy()
    nan[1, 2] = np.nan
    inf = x.copy()
    inf[0, 0] = -np.inf
    readonly = x.copy()
    readonly.flags.writeable = False
    return [x, np.repeat(x, 2, axis=1)[:, ::2], readonly, [x],
            Bad(x.astype(other), TypeError, "x"), Bad(x.astype(np.float16), TypeError, "x"),
            Bad(x.astype(np.int64), TypeError, "x"), Bad(x.tolist(), TypeError, "x"),
            Bad(x[:, :3], ValueError, "x"), Bad(x[..., None], ValueError, "x"),
            Bad(x[0], ValueError, "x"), Bad(x[:0], ValueError, "x"),
            Bad(nan, ValueError, "NaN"), Bad(inf, ValueError, "NaN"),
            Bad(None, TypeError, "x"), Bad([x, x], ValueError, "x")]


def _y_pool(y, loss, dtype):
    if loss == "softmax_cross_entropy":
        out_of_range = y.copy()
        out_of_range[2] = 2
        negative = y.copy()
        negative[0] = -1
        return [y, y.astype(np.int8), y.astype(np.uint64), y.astype(np.int32),
                np.repeat(y, 2)[::2],
                Bad(y.astype(dtype), TypeError, "y"), Bad(y.astype(bool), TypeError, "y"),
                Bad(out_of_range, ValueError, "y"), Bad(negative, ValueError, "y"),
                Bad(np.array([0, 1, 2**64 - 1, 0, 1, 0], np.uint64), ValueError, "y"),
                Bad(y[:-1], ValueError, "y"), Bad(y[:, None], ValueError, "y"),
                Bad(y.tolist(), TypeError, "y"), Bad(None, TypeError, "y")]
    other = np.float64 if dtype == np.float32 else np.float32
    nan = y.copy()
    nan[0, 0] = np.nan
    pool = [y, Bad(y.astype(other), TypeError, "y"), Bad(y.astype(np.int64), TypeError, "y"),
            Bad(nan, ValueError, "y"), Bad(y[:-1], ValueError, "y"),
            Bad(y[:, :1], ValueError, "y"), Bad(y.tolist(), TypeError, "y")]
    if loss == "bce":
        above = y.copy()
        above[1, 1] = 1.5
        pool.append(Bad(above, ValueError, "y"))
    return pool


def _fit_pool(ctx):
    """fit's keyword arguments: argument -> pool."""
    x, y = ctx["x"], ctx["y"]
    return {
        "epochs": [0, 1, 2, np.int64(1), Bad(-1, ValueError, "epochs"),
                   Bad(1.0, TypeError, "epochs"), Bad(True, TypeError, "epochs"),
                   Bad("2", TypeError, "epochs"), Bad(None, TypeError, "epochs")],
        "batch_size": [None, 1, 4, 2**70, np.int64(3), Bad(0, ValueError, "batch_size"),
                       Bad(-2, ValueError, "batch_size"), Bad(2.0, TypeError, "batch_size"),
                       Bad(True, TypeError, "batch_size"), Bad("4", TypeError, "batch_size")],
        "shuffle": [True, False, Bad("no", TypeError, "shuffle"),
                    Bad(None, TypeError, "shuffle"), Bad(1, TypeError, "shuffle")],
        "seed": [0, 3, 2**70, Bad(-1, ValueError, "seed"), Bad(0.5, TypeError, "seed"),
                 Bad("0", TypeError, "seed"), Bad(None, TypeError, "seed")],
        "validation_split": [0.0, 0.5, 0.34, Bad(1.0, ValueError, "validation_split"),
                             Bad(-0.1, ValueError, "validation_split"),
                             Bad(float("nan"), ValueError, "validation_split"),
                             Bad(0.01, ValueError, "validation_split"),
                             Bad("0.2", ERRORS, "validation_split"),
                             Bad(True, ERRORS, "validation_split")],
        "validation_data": [None, (x, y), [x, y], Bad((x,), TypeError, "validation_data"),
                            Bad(x, TypeError, "validation_data"),
                            Bad((x[:, :2], y), ValueError, "validation_data"),
                            Bad((x, y[:-1]), ValueError, "validation_data"),
                            Bad(3, TypeError, "validation_data")],
        "metrics": [None, [], Bad("nope", ValueError, "metric"), Bad(3, TypeError, "metrics"),
                    Bad([None], ValueError, "metric"), Bad(["mae", 3], ValueError, "metric")]
        + (["accuracy", ["accuracy", "loss"], Bad("mae", ValueError, "mae")]
           if ctx["loss"] in ("softmax_cross_entropy", "bce")
           else ["mae", ("loss", "mae"), Bad("accuracy", ValueError, "accuracy")]),
        "callbacks": [(), [lambda epoch, logs: False], train.Callback(),
                      Bad(3, TypeError, "callbacks"), Bad([3], TypeError, "callbacks"),
                      Bad(["x"], TypeError, "callbacks")],
        "early_stopping": [None, False, 1, train.EarlyStopping(0),
                           Bad(-1, ValueError, "patience"), Bad(2.5, TypeError, "patience"),
                           Bad("3", TypeError, "patience"), Bad(True, TypeError, "patience")],
        "schedule": [None, optim.StepLR(1, 0.5), optim.ReduceLROnPlateau(),
                     [optim.CosineLR(5), optim.ReduceLROnPlateau()],
                     Bad(3, TypeError, "schedule"), Bad("cosine", TypeError, "schedule"),
                     Bad([optim.StepLR(1), optim.StepLR(2)], TypeError, "schedule")],
        "verbose": [0, 2, Bad(-1, ValueError, "verbose"), Bad("1", TypeError, "verbose"),
                    Bad(1.0, TypeError, "verbose")],
        "threads": [None, 1, 2, Bad(0, ValueError, "threads"), Bad("1", TypeError, "threads"),
                    Bad(1.5, TypeError, "threads")],
        "optimizer": [None, "sgd", "adam", "rmsprop", "nesterov", optim.SGD(0.05),
                      optim.Adam(1e-3, clip_norm=1.0), Bad("nope", ValueError, "optimizer"),
                      Bad(3, TypeError, "optimizer"), Bad(optim.SGD, TypeError, "optimizer"),
                      Bad([], TypeError, "optimizer")],
        "loss": [None, ctx["loss"], Bad("nope", ValueError, "loss"), Bad(3, TypeError, "loss"),
                 Bad("mse" if ctx["loss"] == "softmax_cross_entropy" else
                     "softmax_cross_entropy", TypeError, "y")],
        "checkpoint": [None, ctx["tmp"] / "fit.safetensors", str(ctx["tmp"] / "fit2.st"),
                       Bad(3, TypeError, "checkpoint"), Bad(b"x", TypeError, "checkpoint"),
                       Bad(["a"], TypeError, "checkpoint")],
        "distributed": [False, None, Bad("yes", TypeError, "distributed"),
                        Bad(3, TypeError, "distributed")],
    }


LOSSES = ["softmax_cross_entropy", "mse", "bce"]


@fuzz(400)
@given(data=st.data(), loss=st.sampled_from(LOSSES),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
       which=st.sampled_from(["fit", "fit", "fit", "predict", "evaluate"]))
def test_training_entry_points_check_every_argument(data, loss, dtype, seed, which,
                                                    tmp_path_factory):
    rng = np.random.default_rng(seed)
    model = _model(loss, dtype)
    x, y = _data(loss, dtype, rng)
    ctx = {"x": x, "y": y, "loss": loss, "tmp": tmp_path_factory.mktemp("fit")}
    if which == "fit":
        pools = {"x": _x_pool(x, dtype), "y": _y_pool(y, loss, dtype), **_fit_pool(ctx)}
    elif which == "predict":
        pools = {"x": _x_pool(x, dtype), "raw": [False, True, Bad("yes", TypeError, "raw")],
                 "batch_size": _fit_pool(ctx)["batch_size"][:2] + [
                     Bad(0, ValueError, "batch_size"), Bad(1.5, TypeError, "batch_size")]}
    else:
        pools = {"x": _x_pool(x, dtype), "y": _y_pool(y, loss, dtype),
                 "metrics": _fit_pool(ctx)["metrics"],
                 "loss": _fit_pool(ctx)["loss"],
                 "batch_size": [None, 1, 5, Bad(0, ValueError, "batch_size"),
                                Bad("2", TypeError, "batch_size")]}
    arg = data.draw(st.sampled_from(sorted(pools)))
    value, error, word = _unpack(data.draw(st.sampled_from(pools[arg])))
    kwargs = {"x": x, "y": y} if which != "predict" else {"x": x}
    kwargs[arg] = value
    if which == "fit":
        kwargs.setdefault("epochs", 1)
        kwargs.setdefault("verbose", 0)
        kwargs.setdefault("optimizer", "sgd")
        if arg == "validation_split" and error is None and value and "validation_data" in kwargs:
            kwargs.pop("validation_data")
    flat, loss_before = model.flat.copy(), model.loss

    def call():
        fn = getattr(train, which)
        args = [model, kwargs.pop("x")] + ([kwargs.pop("y")] if which != "predict" else [])
        return fn(*args, **kwargs)

    result = _expect(call, error, word, f"{which}({arg}={value!r})")
    if error is not None:  # refused: the model is as it was
        np.testing.assert_array_equal(model.flat, flat)
        assert model.loss == loss_before
        return
    assert np.isfinite(model.flat).all()
    if which == "fit":
        epochs = 1 if arg != "epochs" else int(value)
        assert len(result.epoch) <= epochs
        for key, values in result.history.items():
            assert all(math.isfinite(v) for v in values), (key, values)
        assert train.predict(model, x).shape == (ROWS, 2)
    elif which == "predict":
        assert result.shape == (ROWS, 2) and result.dtype == model.dtype
        raw = train.predict(model, x, raw=True)
        ref = model.forward(x)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(raw, ref, rtol=tol, atol=tol)
    else:
        assert "loss" in result and all(math.isfinite(v) for v in result.values())


# ---- optimizers and schedules ---------------------------------------------------------------

REALS = [0.0, 0.1, 1, np.float32(0.5), Bad(-0.1, ValueError), Bad(float("nan"), ValueError),
         Bad(float("inf"), ValueError), Bad(10**400, ValueError), Bad("0.1", TypeError),
         Bad(None, TypeError), Bad(True, TypeError), Bad([0.1], TypeError), Bad(1j, TypeError)]
FRACTIONS = [0.0, 0.5, 0.99, Bad(1.0, ValueError), Bad(-0.5, ValueError),
             Bad(float("nan"), ValueError), Bad("0.9", TypeError), Bad(False, TypeError)]
STRICT = [1e-8, 0.5, Bad(0.0, ValueError), Bad(-1e-8, ValueError), Bad("1e-8", TypeError),
          Bad(float("inf"), ValueError)]
FLAGS = [True, False, Bad(1, TypeError), Bad("yes", TypeError), Bad(None, TypeError)]
CLIP = [None, 1.0, Bad(0.0, ValueError), Bad(-1.0, ValueError), Bad("1", TypeError)]
COUNTS = [1, 5, 2**40, Bad(0, ValueError), Bad(-3, ValueError), Bad(2.0, TypeError),
          Bad("5", TypeError), Bad(True, TypeError), Bad(2**63, ValueError),
          Bad(2**80, ValueError)]

OPTIMIZERS = {
    optim.SGD: {"lr": REALS, "weight_decay": REALS, "clip_norm": CLIP},
    optim.Momentum: {"lr": REALS, "momentum": FRACTIONS, "weight_decay": REALS,
                     "nesterov": FLAGS, "clip_norm": CLIP},
    optim.Adam: {"lr": REALS, "beta1": FRACTIONS, "beta2": FRACTIONS, "eps": STRICT,
                 "weight_decay": REALS, "decoupled": FLAGS, "clip_norm": CLIP},
    optim.AdamW: {"lr": REALS, "beta1": FRACTIONS, "eps": STRICT, "weight_decay": REALS},
    optim.RMSprop: {"lr": REALS, "alpha": FRACTIONS, "eps": STRICT, "momentum": FRACTIONS,
                    "centered": FLAGS, "clip_norm": CLIP},
    optim.StepLR: {"step_size": COUNTS, "gamma": REALS},
    optim.ExponentialLR: {"gamma": REALS},
    optim.CosineLR: {"total_steps": COUNTS, "min_scale": FRACTIONS[:2] + [1.0] + FRACTIONS[4:]},
    optim.LinearWarmup: {"warmup_steps": COUNTS,
                         "after": [None, optim.StepLR(2), Bad(3, TypeError),
                                   Bad(optim.SGD(0.1), TypeError)]},
    optim.ReduceLROnPlateau: {"factor": [0.5, Bad(0.0, ValueError), Bad(1.0, ValueError),
                                         Bad("x", TypeError)],
                              "patience": [0, 3, Bad(-1, ValueError), Bad(1.5, TypeError)],
                              "threshold_mode": ["rel", "abs", Bad("x", ValueError),
                                                 Bad(["rel"], ValueError)],
                              "mode": ["min", "max", Bad(None, ValueError),
                                       Bad({}, ValueError)],
                              "cooldown": [0, 2, Bad(-2, ValueError)],
                              "min_scale": FRACTIONS[:2] + [1.0] + FRACTIONS[4:]},
}
REQUIRED_OPT = {optim.SGD: {"lr": 0.1}, optim.Momentum: {"lr": 0.1},
                optim.StepLR: {"step_size": 2}, optim.ExponentialLR: {"gamma": 0.9},
                optim.CosineLR: {"total_steps": 10}, optim.LinearWarmup: {"warmup_steps": 3}}


@pytest.mark.parametrize("cls", list(OPTIMIZERS), ids=lambda c: c.__name__)
@fuzz(50)
@given(data=st.data(), start=st.sampled_from([0, 7, 2**40, Bad(-1, ValueError),
                                              Bad(1.5, TypeError), Bad(2**63, ValueError)]),
       steps=st.sampled_from([0, 1, 5, Bad(-1, ValueError), Bad("3", TypeError),
                              Bad(2**64, ValueError)]))
def test_optimizers_and_schedules_check_their_settings(cls, data, start, steps):
    arg = data.draw(st.sampled_from(sorted(OPTIMIZERS[cls])))
    value, error, word = _unpack(data.draw(st.sampled_from(OPTIMIZERS[cls][arg])))
    kwargs = {**REQUIRED_OPT.get(cls, {}), arg: value}
    obj = _expect(lambda: cls(**kwargs), error, word or arg, f"{cls.__name__}({arg}={value!r})")
    if obj is None:
        return
    cfg = obj.get_config()
    import json

    assert optim.from_config(json.loads(json.dumps(cfg))).get_config() == cfg
    if isinstance(obj, optim.Schedule):
        s, s_err, _ = _unpack(start)
        n, n_err, _ = _unpack(steps)
        error = s_err or n_err
        word = "start_step" if s_err else "n_steps"
        multipliers = _expect(lambda: obj.multipliers(s, n), error, word, "multipliers")
        if multipliers is not None:
            assert multipliers.shape == (n,) and multipliers.dtype == np.float64
            assert (np.isfinite(multipliers) | (multipliers == np.inf)).all()
            assert (multipliers >= 0).all()
    elif isinstance(obj, optim.ReduceLROnPlateau):
        for metric in (1.0, float("nan"), 0.5):
            assert obj.update(metric) > 0 or obj.min_scale == 0


@fuzz(200)
@given(cfg=st.one_of(
    st.sampled_from([{"class": "sgd", "lr": 0.1}, {"class": "sgd"}, {"class": []},
                     {"class": None}, {"class": "nope"}, [], "sgd", None, {"lr": 0.1},
                     {"class": "adam", "lr": "x"}, {"class": "sgd", "lr": 0.1, "step": 3},
                     {"class": "linear_warmup", "warmup_steps": 2, "after": {"class": "sgd",
                                                                               "lr": 1}},
                     {"class": "linear_warmup", "warmup_steps": 2, "after": 3},
                     {"class": "step_lr", "step_size": 2, "bogus": 1}]),
    st.dictionaries(st.sampled_from(["class", "lr", "momentum", "step_size", "gamma"]),
                    st.sampled_from(["sgd", "momentum", "step_lr", 0.5, -1, None, [1], 2]),
                    max_size=4)))
def test_optimizer_from_config_names_bad_configs(cfg):
    try:
        obj = optim.from_config(cfg)
    except (TypeError, ValueError) as exc:
        assert any(w in str(exc) for w in ("config", "class", "lr", "momentum", "step_size",
                                           "gamma", "after", "warmup_steps")), exc
        return
    assert obj.get_config()["class"] == cfg["class"]


@fuzz(200)
@given(spec=st.sampled_from(
    ["mse", "bce", "l1", "softmax_cross_entropy", "gaussian_nll", "nope", 3, None, [],
     {"class": "mdn", "components": 2}, {"class": "mdn"}, {"class": "mdn", "components": "2"},
     {"class": "gaussian_nll", "precision": "exp"}, {"class": "gaussian_nll", "precision": 3},
     {"class": "softmax_cross_entropy", "probabilities": "yes"}, {"class": 3}, {}]),
       which=st.sampled_from(["loss", "initializer"]),
       init=st.sampled_from(["zeros", "he_normal", "orthogonal", "xavier_uniform", "nope", 3,
                             {"class": "constant", "value": 2}, {"class": "constant"},
                             {"class": "uniform", "low": "a"}, {"class": "orthogonal",
                                                                "gain": float("nan")}]))
def test_loss_and_initializer_specs(spec, which, init):
    try:
        obj = nn.losses.get(spec) if which == "loss" else nn.initializers.get(init)
    except (TypeError, ValueError) as exc:
        assert any(w in str(exc) for w in ("loss", "initializer", "mdn", "gaussian_nll",
                                           "softmax_cross_entropy", "precision",
                                           "probabilities")), exc
        return
    if obj is not None:
        assert type(obj).__name__ and obj == (nn.losses.get(obj.get_config()) if which ==
                                             "loss" else nn.initializers.get(obj.get_config()))


# ---- checkpoints: argument types ------------------------------------------------------------

@fuzz(150)
@given(which=st.sampled_from(["save", "load", "info", "load_checkpoint"]),
       path=st.sampled_from(["ok", 3, None, b"/tmp/x", ["a"], 1.5, "missing", "dir"]),
       model=st.sampled_from(["model", None, 3, "x"]),
       optimizer=st.sampled_from([None, "sgd", 3, {"class": "sgd", "lr": 0.1}]),
       training=st.sampled_from([None, {"epoch": 1}, 3, {"a": object()}]))
def test_checkpoint_functions_name_bad_arguments(which, path, model, optimizer, training,
                                                 tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ck")
    real = _model("mse", np.float32)
    good = tmp / "m.safetensors"
    io.save(real, good)
    p = {"ok": good if which != "save" else tmp / "n.safetensors", "missing": tmp / "no",
         "dir": tmp}.get(path, path) if isinstance(path, str) else path
    m = real if model == "model" else model
    opt = optim.SGD(0.1) if optimizer == "sgd" else optimizer
    try:
        if which == "save":
            io.save(m, p, optimizer=opt, training=training)
            loaded = io.load_checkpoint(p)
            np.testing.assert_array_equal(loaded.model.flat, real.flat)
        else:
            getattr(io, which)(p)
    except (TypeError, ValueError) as exc:
        assert any(w in str(exc) for w in ("path", "model", "optimizer", "training")), exc
    except OSError as exc:  # a missing file or a directory: the OS's error, naming the path
        assert path in ("missing", "dir"), exc
        assert str(tmp) in str(exc)


def test_ffnc_exports_the_entry_points_fuzzed_here():
    assert ffnc.save is io.save and ffnc.load is io.load


# ---- the functional API and the module contract ----------------------------------------------

@fuzz(200)
@given(data=st.data())
def test_functional_models_and_state_dicts_name_bad_arguments(data):
    shape = data.draw(st.sampled_from([(3,), 3, (2,), Bad((), ValueError), Bad(0, ValueError),
                                       Bad("3", ValueError), Bad((1.5,), ValueError)]))
    name = data.draw(st.sampled_from([None, "a", Bad("", ValueError), Bad("a.b", ValueError),
                                      Bad(7, ValueError)]))
    wiring = data.draw(st.sampled_from(["dense", "concat", "add", "reuse", "foreign",
                                        "not_tensor", "outputs_junk", "inputs_junk"]))
    bad = [b for b in (shape, name) if isinstance(b, Bad)]
    try:
        x = nn.Input(_unpack(shape)[0], name=_unpack(name)[0])
        h1 = nn.Dense(2, activation="relu")(x)
        if wiring == "dense":
            out = nn.Dense(2)(h1)
        elif wiring == "concat":
            out = nn.Concat()([h1, nn.Dense(3)(x)])
        elif wiring == "add":
            out = nn.Add()([h1, nn.Dense(4)(x)])  # shapes (None, 2) and (None, 4): refused
        elif wiring == "reuse":
            layer = nn.Dense(2)
            layer(h1)
            out = layer(h1)  # a layer is called once: refused
        elif wiring == "foreign":
            out = nn.Dense(2)(nn.Input((5,)))  # depends on an input not listed: refused
        elif wiring == "not_tensor":
            out = nn.Dense(2)(np.ones((1, 3), np.float32))  # data, not a symbolic tensor
        else:
            out = nn.Dense(2)(h1)
        inputs = 3 if wiring == "inputs_junk" else x
        model = nn.Model(inputs, "out" if wiring == "outputs_junk" else out, loss="mse")
    except (TypeError, ValueError) as exc:
        assert bad or wiring not in ("dense", "concat"), exc
        assert any(w in str(exc) for w in ("Input", "name", "layer", "Model", "shape",
                                           "inputs", "outputs")), exc
        return
    assert not bad and wiring in ("dense", "concat")
    # the module contract: state dicts and bind check names, shapes and dtypes
    state = model.state_dict()
    key = data.draw(st.sampled_from(sorted(state)))
    change = data.draw(st.sampled_from(["none", "dtype", "shape", "missing", "extra", "list",
                                        "not_mapping"]))
    flat = model.flat.copy()
    if change == "dtype":
        state[key] = state[key].astype(np.float64)
    elif change == "shape":
        state[key] = state[key].ravel()[:-1] if state[key].size > 1 else state[key][None]
    elif change == "missing":
        del state[key]
    elif change == "extra":
        state["nope.weight"] = state[key]
    elif change == "list":
        state[key] = state[key].tolist()
    expected = {"none": None, "dtype": TypeError, "shape": ValueError, "missing": ValueError,
                "extra": ValueError, "list": TypeError, "not_mapping": TypeError}[change]
    _expect(lambda: model.load_state_dict(state if change != "not_mapping" else [1]),
            expected, "load_state_dict", f"load_state_dict ({change})")
    np.testing.assert_array_equal(model.flat, flat)  # refused or the same values: unchanged
    target = data.draw(st.sampled_from(["ok", "dtype", "size", "readonly", "list", "strided"]))
    arena = np.zeros(model.flat.size, model.dtype)
    value, error = {"ok": (arena, None), "dtype": (arena.astype(np.float64), TypeError),
                    "size": (arena[:-1], ValueError), "list": (arena.tolist(), TypeError),
                    "readonly": (np.zeros_like(arena), ValueError),
                    "strided": (np.zeros(2 * arena.size, model.dtype)[::2], ValueError)}[target]
    if target == "readonly":
        value.flags.writeable = False
    _expect(lambda: model.bind(value), error, "bind", f"bind ({target})")
    np.testing.assert_array_equal(model.flat, flat)


@fuzz(100)
@given(n=st.sampled_from([None, 1, 2, np.int64(1), Bad(0, ValueError), Bad(-1, ValueError),
                          Bad(1.5, TypeError), Bad("2", TypeError), Bad(True, TypeError)]),
       isa=st.sampled_from(["generic", "avx2", Bad("avx9", ValueError, "isa"),
                            Bad(3, TypeError, "name"), Bad(None, TypeError, "name")]))
def test_configuration_functions_name_bad_arguments(n, isa):
    before_n, before_isa = ffnc._core.configured_num_threads(), ffnc.get_isa()
    try:
        value, error, _ = _unpack(n)
        _expect(lambda: ffnc.set_num_threads(value), error, "n", f"set_num_threads({value!r})")
        value, error, word = _unpack(isa)
        if error is None and value not in ffnc.supported_isas():
            error, word = ValueError, "isa"
        _expect(lambda: ffnc.set_isa(value), error, word, f"set_isa({value!r})")
    finally:
        ffnc.set_num_threads(before_n)
        ffnc.set_isa(before_isa)


def test_a_refused_fit_leaves_the_models_loss_as_it_was():
    """fit used to set model.loss before checking y against it."""
    model = _model("softmax_cross_entropy", np.float32)
    x, y = _data("softmax_cross_entropy", np.float32, np.random.default_rng(0))
    with pytest.raises(TypeError, match="y"):
        train.fit(model, x, y, loss="mse", epochs=1, verbose=0)  # integer y for mse
    assert model.loss.name == "softmax_cross_entropy"
