"""The model contract of ffnc.nn (used by ffnc.train, ffnc.io and the C model API): the flat
parameter buffer, bind, named parameters and state dicts, configs, summaries, input checks,
the functional DAG API, and compiled outputs equal to the interpreter's."""

import json
import sys
import types

import numpy as np
import pytest

import ffnc
import ffnc.graph as G
import ffnc.nn as nn
from ffnc.compiler import compile as compile_plan
from ffnc.nn import initializers

F64 = np.float64


def mlp(dtype="float32", seed=0, loss="softmax_cross_entropy"):
    return nn.Sequential([nn.Dense(32, activation="relu"), nn.Dense(16, activation="relu"),
                          nn.Dense(10)], input_shape=(64,), dtype=dtype, seed=seed, loss=loss)


def test_plain_mlp_config_is_exactly_the_contract():
    expected = {"class": "Sequential", "dtype": "float32", "input_shape": [64],
                "layers": [{"class": "Dense", "units": 32, "activation": "relu", "alpha": None,
                            "use_bias": True},
                           {"class": "Dense", "units": 16, "activation": "relu", "alpha": None,
                            "use_bias": True},
                           {"class": "Dense", "units": 10, "activation": "identity",
                            "alpha": None, "use_bias": True}],
                "loss": {"class": "softmax_cross_entropy"}}
    cfg = mlp().get_config()
    assert cfg == expected
    assert list(cfg) == list(expected)
    assert json.loads(json.dumps(cfg)) == expected
    assert json.loads(mlp().to_json()) == expected


def test_flat_buffer_layout_and_views():
    model = mlp()
    params = model.named_parameters()
    nodes = model.parameter_nodes()
    assert list(params) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    assert list(nodes) == list(params)
    assert params["0.weight"].shape == (64, 32) and params["0.bias"].shape == (32,)
    assert model.flat.ndim == 1 and model.flat.dtype == np.float32
    assert model.flat.size == model.n_parameters == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert model.flat.flags.c_contiguous
    offset = 0
    for name, value in params.items():
        assert value.flags.writeable and np.shares_memory(value, model.flat)
        np.testing.assert_array_equal(model.flat[offset:offset + value.size], value.ravel())
        assert nodes[name].value is value or np.shares_memory(nodes[name].value, value)
        assert nodes[name].op == "parameter" and nodes[name].name == name
        offset += value.size
    # writing a view changes the parameter, the flat buffer and the model's output
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    before = model.forward(x)
    params["2.bias"][:] += 1
    np.testing.assert_allclose(model.forward(x), before + 1, rtol=1e-6)
    assert model.flat[-1] == params["2.bias"][-1]
    # the layer sees its own parameters under local names
    assert list(model.layers[0].parameter_nodes()) == ["weight", "bias"]
    assert model.layers[0].named_parameters()["bias"] is not None


def test_bind_adopts_the_arena_and_copies_values():
    model = mlp(dtype="float64")
    x = np.random.default_rng(1).standard_normal((4, 64))
    before = model.forward(x)
    values = model.flat.copy()
    arena = np.full(model.flat.size, np.nan)
    model.bind(arena)
    assert model.flat is arena
    np.testing.assert_array_equal(arena, values)  # values copied in first
    for node in model.parameter_nodes().values():
        assert np.shares_memory(node.value, arena)
    for value in model.named_parameters().values():
        assert np.shares_memory(value, arena)
    np.testing.assert_array_equal(model.forward(x), before)
    arena[:] = 0  # e.g. an optimizer step writing the arena
    assert np.all(model.forward(x) == 0)
    assert all(np.all(v == 0) for v in model.state_dict().values())
    model.bind(arena)  # binding the same buffer again is a no-op
    assert model.flat is arena
    with pytest.raises(TypeError, match="bind: flat is float32 but the model is float64"):
        model.bind(np.zeros(model.flat.size, np.float32))
    with pytest.raises(ValueError, match=f"bind: flat must be 1-D with {arena.size} elements"):
        model.bind(np.zeros(arena.size + 1))
    with pytest.raises(ValueError, match="contiguous and writable"):
        model.bind(np.zeros(2 * arena.size)[::2])
    readonly = np.zeros(arena.size)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="contiguous and writable"):
        model.bind(readonly)
    with pytest.raises(TypeError, match="must be a numpy array"):
        model.bind(list(arena))


def test_training_a_compiled_plan_updates_the_bound_model_in_place():
    """The trainer's pattern: compile with params in named_parameters order, bind the model to
    the plan's parameter arena, run steps; the model changes with no copies."""
    model = mlp(dtype="float32")
    target = model.loss.target_placeholder(model)
    loss = model.loss(model.output(True), target)
    plan = compile_plan(loss, loss=loss, optimizer=ffnc.compiler.SGD(0.1), batch_size=16,
                        params=list(model.parameter_nodes().values()),
                        inputs=[model.inputs[0], target])
    np.testing.assert_array_equal(plan.param_arena, model.flat)  # same layout
    model.bind(plan.param_arena)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 64)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    first = float(plan.run({"x": x, "target": y}))
    for _ in range(30):
        last = float(plan.run({"x": x, "target": y}))
    assert last < first
    # the model (interpreter) sees the trained parameters: its loss is the plan's loss on the
    # current parameters (a plan with an optimizer reports the loss before its update)
    plan_loss = float(plan.run({"x": x, "target": y}))
    assert np.shares_memory(model.named_parameters()["0.weight"], plan.param_arena)
    ref = G.evaluate(loss, {model.inputs[0]: x, target: y})
    assert ref < plan_loss  # the run after plan_loss already took one more step
    probe = compile_plan(loss, batch_size=16, params=list(model.parameter_nodes().values()),
                         inputs=[model.inputs[0], target])
    np.testing.assert_allclose(float(probe.run({"x": x, "target": y})), ref, rtol=1e-5)


def test_state_dict_round_trip():
    a, b = mlp(seed=1), mlp(seed=2)
    x = np.random.default_rng(3).standard_normal((5, 64)).astype(np.float32)
    assert not np.array_equal(a.forward(x), b.forward(x))
    state = a.state_dict()
    for name, value in state.items():
        assert not np.shares_memory(value, a.flat), name  # copies
    b.load_state_dict(state)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    state["0.bias"][:] = 5  # the copy is independent of the model
    assert not np.any(a.named_parameters()["0.bias"] == 5)


def test_load_state_dict_errors_and_atomicity():
    model = mlp(dtype="float32")
    good = model.state_dict()
    before = model.flat.copy()
    missing = dict(good)
    del missing["1.bias"]
    with pytest.raises(ValueError, match=r"missing \['1.bias'\]"):
        model.load_state_dict(missing)
    extra = {**good, "3.weight": np.zeros((2, 2), np.float32)}
    with pytest.raises(ValueError, match=r"unexpected \['3.weight'\]"):
        model.load_state_dict(extra)
    shape = {**good, "0.weight": np.zeros((32, 64), np.float32)}
    shape["0.bias"] = np.full(32, 7, np.float32)  # valid, but must not be written
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(32, 64\) but the parameter "
                                         r"has shape \(64, 32\)"):
        model.load_state_dict(shape)
    dtype = {**good, "2.bias": np.zeros(10, np.float64)}
    with pytest.raises(TypeError, match="'2.bias' is float64 but the parameter is float32"):
        model.load_state_dict(dtype)
    with pytest.raises(TypeError, match="must be a numpy array"):
        model.load_state_dict({**good, "2.bias": [0.0] * 10})
    with pytest.raises(TypeError, match="must be a mapping"):
        model.load_state_dict([("0.bias", good["0.bias"])])
    np.testing.assert_array_equal(model.flat, before)  # nothing was written
    # strict=False skips names absent on either side, still checks the rest
    partial = {"0.bias": np.ones(32, np.float32), "other": np.zeros(1)}
    model.load_state_dict(partial, strict=False)
    assert np.all(model.named_parameters()["0.bias"] == 1)
    with pytest.raises(ValueError, match="has shape"):
        model.load_state_dict({"0.bias": np.ones(3, np.float32)}, strict=False)


def zoo(dtype="float64", seed=7):
    return nn.Sequential([
        nn.Dense(8, activation="leaky_relu", alpha=0.2, kernel_initializer="he_normal",
                 bias_initializer=initializers.Constant(0.1)),
        nn.LowRank(6, rank=2, activation="elu"),
        nn.Maxout(5, pieces=3),
        nn.PReLU(shared=True),
        nn.Dropout(0.3),
        nn.RBF(4, width_initializer=initializers.Constant(2.0), name="rbf"),
        nn.Identity(), nn.Tanh(), nn.LeakyReLU(0.1), nn.Softplus(),
        nn.Dense(9, use_bias=False, kernel_initializer="orthogonal"),
    ], input_shape=(3,), dtype=dtype, seed=seed,
        loss={"class": "mdn", "components": 3})


def functional(dtype="float64", seed=3):
    x = nn.Input((4,), name="x")
    h1 = nn.Dense(8, activation="relu")(x)
    h2 = nn.Dense(8, activation="tanh")(x)
    h = nn.Concat()([h1, h2])                    # f_{2,1}(h1, h2)
    g = nn.Dense(8)(h)
    r = nn.Add(name="skip")([g, h1])             # a skip connection
    out = nn.Dense(2)(r)
    return nn.Model(x, out, dtype=dtype, seed=seed, loss="gaussian_nll")


@pytest.mark.parametrize("build", [mlp, zoo, functional])
def test_config_round_trip_reproduces_outputs(build):
    model = build(seed=11)
    cfg = model.get_config()
    again = nn.from_config(json.loads(json.dumps(cfg)))
    assert again.get_config() == cfg
    assert type(again) is type(model) and again.dtype == model.dtype
    assert list(again.named_parameters()) == list(model.named_parameters())
    np.testing.assert_array_equal(again.flat, model.flat)  # same seed: same initial values
    x = np.random.default_rng(4).uniform(-1, 1, (6,) + model.inputs[0].shape[1:]).astype(
        model.dtype)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    np.testing.assert_array_equal(again.forward(x, training=True, step=3),
                                  model.forward(x, training=True, step=3))
    assert again.loss == model.loss
    assert nn.from_config(model.to_json()).get_config() == cfg


def test_config_errors():
    with pytest.raises(ValueError, match="unknown layer class 'Conv2D'"):
        nn.from_config({"class": "Sequential", "dtype": "float32", "input_shape": [3],
                        "layers": [{"class": "Conv2D"}], "loss": None})
    with pytest.raises(ValueError, match=r"Sequential config: missing keys \['input_shape'\]"):
        nn.from_config({"class": "Sequential", "dtype": "float32", "layers": []})
    with pytest.raises(ValueError, match=r"unknown keys \['optimizer'\]"):
        nn.from_config({**mlp().get_config(), "optimizer": {}})
    with pytest.raises(ValueError, match="layer config .* unexpected keyword"):
        nn.from_config({"class": "Dense", "units": 3, "colour": "red"})
    with pytest.raises(TypeError, match="model dtype must be float32 or float64"):
        nn.Sequential([nn.Dense(2)], input_shape=(3,), dtype="float16")
    with pytest.raises(ValueError, match="input_shape must be a tuple of positive ints"):
        nn.Sequential([nn.Dense(2)], input_shape=(0,))


def test_summary_lists_layers_shapes_and_counts():
    text = mlp().summary()
    for piece in ("Sequential (float32, seed 0)", "Layer", "Output shape", "Parameters",
                  "Dense(relu)", "Dense(identity)", "(None, 32)", "(None, 10)", "2,080", "528",
                  "170", "Parameters: 2,778 (11,112 bytes)", "Inputs: x (None, 64)",
                  "loss: softmax_cross_entropy"):
        assert piece in text, piece
    lines = text.splitlines()
    assert [ln.split()[0] for ln in lines if ln[:1].isdigit()] == ["0", "1", "2"]
    f = functional().summary()
    for piece in ("Model (float64, seed 3)", "Inputs", "concat_0", "dense_0, dense_1",
                  "skip", "dense_2, dense_0", "loss: gaussian_nll"):
        assert piece in f, piece


def test_wrong_inputs_raise_naming_the_layer():
    model = nn.Sequential([nn.Dense(4, name="encoder"), nn.Dense(2)], input_shape=(3,))
    with pytest.raises(ValueError, match=r"input 'x' feeds layer 'encoder' \(Dense\), which "
                                         r"expects shape \(None, 3\); got an array of shape "
                                         r"\(5, 4\)"):
        model.forward(np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="layer '0' .* expects shape"):
        nn.Sequential([nn.Dense(2)], input_shape=(3,)).check_inputs(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="input 'x' must be float32 .* got float64"):
        model.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="takes 1 input array"):
        model.check_inputs([np.zeros((5, 3), np.float32)] * 2)
    f = functional()
    with pytest.raises(ValueError, match=r"input 'x' feeds layer 'dense_0' \(Dense\)"):
        f.forward(np.zeros((2, 5)))


def test_functional_dag_values_and_parameter_names():
    model = functional()
    names = list(model.named_parameters())
    assert names == ["dense_0.weight", "dense_0.bias", "dense_1.weight", "dense_1.bias",
                     "dense_2.weight", "dense_2.bias", "dense_3.weight", "dense_3.bias"]
    p = model.named_parameters()
    x = np.random.default_rng(5).standard_normal((7, 4))
    h1 = np.maximum(x @ p["dense_0.weight"] + p["dense_0.bias"], 0)
    h2 = np.tanh(x @ p["dense_1.weight"] + p["dense_1.bias"])
    g = np.concatenate([h1, h2], 1) @ p["dense_2.weight"] + p["dense_2.bias"]
    out = (g + h1) @ p["dense_3.weight"] + p["dense_3.bias"]
    np.testing.assert_allclose(model.forward(x), out, rtol=1e-12)
    assert model.output_shape == (None, 2)
    assert model.loss.target_placeholder(model).shape == (None, 1)
    # the whole model differentiates, first and second order
    xin = model.inputs[0]
    t = model.loss.target_placeholder(model)
    loss = model.loss(model.output(), t)
    grads = G.grad(loss, list(model.parameter_nodes().values()))
    values = G.evaluate(grads, {xin: x, t: np.ones((7, 1))})
    assert [v.shape for v in values] == [v.shape for v in p.values()]


def test_multiple_inputs():
    a, b = nn.Input((2,), name="a"), nn.Input((3,), name="b")
    out = nn.Dense(1)(nn.Concat()([nn.Dense(4)(a), b]))
    model = nn.Model([a, b], out, dtype=F64, loss="mse")
    assert [x.label for x in model.inputs] == ["a", "b"]
    xa, xb = np.ones((2, 2)), np.ones((2, 3))
    assert model.forward(xa, xb).shape == (2, 1)
    with pytest.raises(ValueError, match=r"input 'b' feeds layer 'concat_0' \(Concat\)"):
        model.forward(xa, np.ones((2, 2)))
    again = nn.from_config(model.get_config())
    np.testing.assert_array_equal(again.forward(xa, xb), model.forward(xa, xb))


def test_functional_errors():
    x = nn.Input((3,))
    layer = nn.Dense(2)
    layer(x)
    with pytest.raises(ValueError, match="already used"):
        layer(x)
    other = nn.Input((3,))
    with pytest.raises(ValueError, match="depends on an Input .* not in inputs"):
        nn.Model(x, nn.Add()([nn.Dense(2)(x), nn.Dense(2)(other)]))
    with pytest.raises(TypeError, match="call it on symbolic tensors"):
        nn.Dense(2)(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="the name 'h' is used twice"):
        y = nn.Input((3,))
        nn.Model(y, nn.Dense(2, name="h")(nn.Dense(3, name="h")(y)))
    d = nn.Dense(2)
    nn.Sequential([d], input_shape=(3,))
    with pytest.raises(ValueError, match="already belongs to a model"):
        nn.Sequential([d], input_shape=(3,))
    with pytest.raises(ValueError, match="joins several inputs"):
        nn.Sequential([nn.Add()], input_shape=(3,))
    with pytest.raises(ValueError, match="two layers are named 'a'"):
        nn.Sequential([nn.Dense(2, name="a"), nn.Dense(2, name="a")], input_shape=(3,))


def test_loss_is_checked_against_the_output():
    with pytest.raises(ValueError, match="3 components of dimension 1 need 9 model outputs"):
        nn.Sequential([nn.Dense(4)], input_shape=(2,), loss={"class": "mdn", "components": 3})
    model = nn.Sequential([nn.Dense(4)], input_shape=(2,))
    assert model.loss is None and model.get_config()["loss"] is None
    model.loss = "gaussian_nll"
    assert model.get_config()["loss"] == {"class": "gaussian_nll"}


def test_seed_in_config_only_when_not_zero():
    assert "seed" not in mlp(seed=0).get_config()
    assert mlp(seed=5).get_config()["seed"] == 5
    fresh = mlp(seed=None)
    assert fresh.get_config().get("seed") == fresh.seed
    np.testing.assert_array_equal(nn.from_config(fresh.get_config()).flat, fresh.flat)


def test_fit_predict_evaluate_delegate_to_ffnc_train(monkeypatch):
    calls = []
    fake = types.ModuleType("ffnc.train")
    for name in ("fit", "predict", "evaluate"):
        setattr(fake, name, (lambda n: lambda model, *a, **k: calls.append((n, model, a, k))
                             or n)(name))
    monkeypatch.setitem(sys.modules, "ffnc.train", fake)
    monkeypatch.setattr(ffnc, "train", fake, raising=False)
    model = mlp()
    assert model.fit(1, 2, epochs=3) == "fit"
    assert model.predict("x", batch_size=8) == "predict"
    assert model.evaluate("x", "y") == "evaluate"
    assert calls == [("fit", model, (1, 2), {"epochs": 3}),
                     ("predict", model, ("x",), {"batch_size": 8}),
                     ("evaluate", model, ("x", "y"), {})]


# ---- compiled outputs equal the interpreter's, per layer type ---------------------------------

COMPILED = {
    "dense": lambda: [nn.Dense(5, activation="gelu")],
    "dense_no_bias": lambda: [nn.Dense(5, activation="relu", use_bias=False)],
    "lowrank": lambda: [nn.LowRank(5, rank=2, activation="tanh")],
    "maxout": lambda: [nn.Maxout(3, pieces=2)],
    "rbf": lambda: [nn.RBF(4)],
    "prelu": lambda: [nn.Dense(4), nn.PReLU()],
    "prelu_shared": lambda: [nn.Dense(4), nn.PReLU(shared=True)],
    "identity": lambda: [nn.Identity()],
    "activations": lambda: [nn.ReLU(), nn.LeakyReLU(0.2), nn.ELU(), nn.HardTanh(), nn.Abs(),
                            nn.Sigmoid(), nn.Softplus(), nn.Tanh(), nn.GELU()],
    "softmax": lambda: [nn.Softmax()],
    "log_softmax": lambda: [nn.LogSoftmax()],
    "dropout": lambda: [nn.Dropout(0.4, seed=3)],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(COMPILED))
def test_compiled_layer_matches_interpreter(case, dtype):
    """Forward (inference and training) and the parameter gradients of a compiled plan equal
    the interpreter's for every layer type."""
    model = nn.Sequential(COMPILED[case](), input_shape=(4,), dtype=dtype, seed=1)
    x = np.random.default_rng(6).standard_normal((5, 4)).astype(dtype)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    for training in (False, True):
        out = model.output(training)
        plan = compile_plan(out, batch_size=8, params=list(model.parameter_nodes().values()),
                            inputs=model.inputs)
        np.testing.assert_allclose(plan.run({"x": x}), model.forward(x, training=training),
                                   rtol=rtol, atol=rtol)
    params = list(model.parameter_nodes().values())
    if not params:
        return
    scalar = G.sum(G.square(model.output(True)))
    plan = compile_plan(scalar, loss=scalar, batch_size=8, params=params, inputs=model.inputs)
    plan.run({"x": x})
    expected = G.evaluate(G.grad(scalar, params), {model.inputs[0]: x})
    for p, e in zip(params, expected, strict=True):
        np.testing.assert_allclose(plan.grads[p], e, rtol=10 * rtol, atol=10 * rtol)


@pytest.mark.parametrize("loss", ["mse", "l1", "bce", "softmax_cross_entropy",
                                  {"class": "softmax_cross_entropy", "probabilities": True},
                                  "gaussian_nll", {"class": "gaussian_nll", "precision": "exp"},
                                  {"class": "mdn", "components": 3},
                                  {"class": "mdn", "components": 2, "dims": 2}])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_compiled_loss_matches_interpreter(loss, weighted):
    """Every loss compiles: the plan's loss and gradients equal the interpreter's."""
    loss = nn.losses.get(loss)
    units = {"gaussian_nll": 4, "mdn": getattr(loss, "units", 0)}.get(loss.name, 4)
    model = nn.Sequential([nn.Dense(6, activation="tanh"), nn.Dense(units)], input_shape=(3,),
                          dtype=F64, loss=loss, seed=2)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 3))
    t = loss.target_placeholder(model)
    if t.dtype == np.int64:
        y = rng.integers(0, units, 9)
    else:
        y = rng.uniform(0.05, 1, (9,) + t.shape[1:])
        if loss.name == "softmax_cross_entropy":
            y /= y.sum(1, keepdims=True)
    w = loss.weight_placeholder(model)
    value = loss(model.output(True), t, w if weighted else None)
    params = list(model.parameter_nodes().values())
    inputs = [model.inputs[0], t] + ([w] if weighted else [])
    plan = compile_plan(value, loss=value, batch_size=16, params=params, inputs=inputs)
    feed = {"x": x, "target": y, **({"weight": rng.uniform(0.5, 2, 9)} if weighted else {})}
    got = plan.run(feed)
    ref_feed = {model.inputs[0]: x, t: y, **({w: feed["weight"]} if weighted else {})}
    np.testing.assert_allclose(got, G.evaluate(value, ref_feed), rtol=1e-12)
    for p, e in zip(params, G.evaluate(G.grad(value, params), ref_feed), strict=True):
        np.testing.assert_allclose(plan.grads[p], e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_compiled_functional_dag_matches_interpreter(dtype):
    """A DAG with a concat of two branches and a skip connection (sum) compiles: outputs and
    parameter gradients equal the interpreter's."""
    model = functional(dtype=dtype)
    x = np.random.default_rng(8).standard_normal((6, 4)).astype(dtype)
    params = list(model.parameter_nodes().values())
    plan = compile_plan(model.output(), batch_size=8, params=params, inputs=model.inputs)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(plan.run({"x": x}), model.forward(x), rtol=rtol, atol=rtol)
    target = model.loss.target_placeholder(model)
    loss = model.loss(model.output(True), target)
    y = np.random.default_rng(9).standard_normal((6, 1)).astype(dtype)
    plan = compile_plan(loss, loss=loss, batch_size=8, params=params,
                        inputs=[model.inputs[0], target])
    got = plan.run({"x": x, "target": y})
    feed = {model.inputs[0]: x, target: y}
    np.testing.assert_allclose(got, G.evaluate(loss, feed), rtol=rtol, atol=rtol)
    for p, e in zip(params, G.evaluate(G.grad(loss, params), feed), strict=True):
        np.testing.assert_allclose(plan.grads[p], e, rtol=10 * rtol, atol=10 * rtol)
