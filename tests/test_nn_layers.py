"""Every layer of ffnc.nn: derivatives against finite differences (in its input and in every
parameter, second order for the smooth ones), shape errors naming the layer, initializers."""

import zlib

import numpy as np
import pytest

import ffnc.graph as G
import ffnc.nn as nn
from ffnc.nn import initializers

F64 = np.float64


def spaced(rng, *shape):
    """Distinct values 0.3 apart (no ties under the differences), in a small range."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.3 / max(1, n / 8)).reshape(shape) \
        + rng.uniform(0, 0.01, shape)


def layer_gradcheck(layer, inputs, order, rng_seed=0, **options):
    """gradcheck of layer's output in its input(s) and all its parameters: the layer is built
    in a float64 model, then its parameter nodes are swapped for gradcheck's placeholders."""
    shapes = [x.shape[1:] for x in inputs]
    if len(inputs) == 1:
        model = nn.Sequential([layer], input_shape=shapes[0], dtype=F64, seed=rng_seed)
    else:
        ins = [nn.Input(s) for s in shapes]
        model = nn.Model(ins, layer(ins), dtype=F64, seed=rng_seed)
    names = list(layer.parameter_nodes())
    values = [node.value.copy() for node in layer.parameter_nodes().values()]
    nodes = layer._nodes

    def f(*holders):
        layer._nodes = dict(zip(names, holders[len(inputs):], strict=True))
        try:
            return layer.forward(list(holders[:len(inputs)]), False)
        finally:
            layer._nodes = nodes

    report = G.gradcheck(f, list(inputs) + values, order=order, seed=rng_seed, **options)
    assert report.ok
    assert set(report.errors) >= ({"rev", "fwd"} | ({"fwd_rev", "rev_rev"} if order == 2
                                                    else set()))
    return model


def away(rng, shape, gap=0.15):
    x = rng.uniform(-2, 2, shape)
    x[np.abs(x) < gap] = gap + np.abs(x[np.abs(x) < gap])
    return x


SMOOTH_ACTIVATIONS = ["identity", "tanh", "sigmoid", "softplus", "gelu"]
KINKED_ACTIVATIONS = ["relu", "leaky_relu", "abs", "hard_tanh", "elu"]


@pytest.mark.parametrize("activation", SMOOTH_ACTIVATIONS + KINKED_ACTIVATIONS)
def test_dense_every_activation(activation):
    rng = np.random.default_rng(zlib.crc32(activation.encode()))
    order = 2 if activation in SMOOTH_ACTIVATIONS else 1
    layer = nn.Dense(3, activation=activation, bias_initializer=initializers.Uniform(-1, 1))
    # kinks: the pre-activation must stay away from them for the differences
    for attempt in range(20):
        x = rng.uniform(-1, 1, (4, 5))
        probe = nn.Sequential([nn.Dense(3, activation="identity",
                                        bias_initializer=initializers.Uniform(-1, 1))],
                              input_shape=(5,), dtype=F64, seed=attempt)
        z = probe.forward(x)
        if np.min(np.abs(np.abs(z) - 1)) > 0.05 and np.min(np.abs(z)) > 0.05:
            break
    layer_gradcheck(layer, [x], order, rng_seed=attempt)


@pytest.mark.parametrize("activation", SMOOTH_ACTIVATIONS + KINKED_ACTIVATIONS)
def test_every_activation_as_a_layer(activation):
    rng = np.random.default_rng(zlib.crc32(activation.encode()) + 1)
    layer = nn.Activation(activation) if activation == "identity" else \
        nn.layers.ACTIVATION_LAYERS[activation]()
    x = away(rng, (3, 4))
    if activation == "hard_tanh":
        x = np.where(np.abs(np.abs(x) - 1) < 0.1, x * 0.5, x)
    model = layer_gradcheck(layer, [x], 2 if activation in SMOOTH_ACTIVATIONS else 1)
    expected = x if activation == "identity" else G.evaluate(
        G.activation(G.constant(x), activation))
    np.testing.assert_array_equal(model.forward(x), expected)


def test_activation_layers_with_alpha():
    x = np.array([[-2.0, -0.5, 0.5, 2.0]])
    leaky = nn.Sequential([nn.LeakyReLU(alpha=0.2)], input_shape=(4,), dtype=F64)
    np.testing.assert_allclose(leaky.forward(x), [[-0.4, -0.1, 0.5, 2.0]])
    elu = nn.Sequential([nn.ELU(alpha=0.5)], input_shape=(4,), dtype=F64)
    np.testing.assert_allclose(elu.forward(x)[0, :2], 0.5 * np.expm1([-2.0, -0.5]))
    assert nn.LeakyReLU().get_config() == {"class": "LeakyReLU", "alpha": None}
    with pytest.raises(ValueError, match="takes no alpha"):
        nn.Dense(3, activation="relu", alpha=0.1)
    with pytest.raises(ValueError, match="activation must be one of"):
        nn.Dense(3, activation="swish")


def test_softmax_and_log_softmax_layers():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4))
    m = layer_gradcheck(nn.Softmax(), [x], 2)
    np.testing.assert_allclose(m.forward(x).sum(1), 1.0)
    m = layer_gradcheck(nn.LogSoftmax(), [x], 2)
    np.testing.assert_allclose(np.exp(m.forward(x)).sum(1), 1.0)


def test_lowrank_derivatives_and_factorization():
    rng = np.random.default_rng(4)
    layer = nn.LowRank(5, rank=2, activation="tanh")
    model = layer_gradcheck(layer, [rng.standard_normal((3, 6))], 2)
    params = model.named_parameters()
    assert params["0.v"].shape == (6, 2) and params["0.u"].shape == (2, 5)
    assert model.n_parameters == 6 * 2 + 2 * 5 + 5
    w = params["0.v"] @ params["0.u"]
    assert np.linalg.matrix_rank(w) == 2
    x = rng.standard_normal((4, 6))
    np.testing.assert_allclose(model.forward(x), np.tanh(x @ w + params["0.bias"]),
                               rtol=1e-12)
    with pytest.raises(ValueError, match=r"layer '0' \(LowRank\): rank 7 exceeds"):
        nn.Sequential([nn.LowRank(5, rank=7)], input_shape=(6,))


def test_lowrank_starts_as_the_best_rank_r_approximation():
    """Its initial V U is the truncated SVD of the full weight the initializer draws."""
    low = nn.Sequential([nn.LowRank(8, rank=3, use_bias=False)], input_shape=(10,), dtype=F64,
                        seed=5)
    full = initializers.get("glorot_uniform").draw((10, 8), 10, 8, np.random.default_rng(5))
    p, s, qt = np.linalg.svd(full)
    best = (p[:, :3] * s[:3]) @ qt[:3]
    params = low.named_parameters()
    np.testing.assert_allclose(params["0.v"] @ params["0.u"], best, atol=1e-12)


def test_maxout_derivatives_and_values():
    rng = np.random.default_rng(6)
    layer = nn.Maxout(3, pieces=4)
    model = nn.Sequential([layer], input_shape=(5,), dtype=F64, seed=2)
    x = spaced(rng, 4, 5)
    z = x @ model.named_parameters()["0.weight"] + model.named_parameters()["0.bias"]
    np.testing.assert_array_equal(model.forward(x), z.reshape(4, 3, 4).max(axis=2))
    # the pieces of each group are well separated: no argmax flips under the differences
    groups = np.sort(z.reshape(4, 3, 4), axis=2)
    assert np.min(groups[..., -1] - groups[..., -2]) > 1e-3
    layer2 = nn.Maxout(3, pieces=4)
    layer_gradcheck(layer2, [x], 1, rng_seed=2)


def test_rbf_derivatives_and_values():
    rng = np.random.default_rng(8)
    model = layer_gradcheck(nn.RBF(4), [rng.standard_normal((3, 2))], 2)
    params = model.named_parameters()
    assert params["0.centers"].shape == (4, 2)
    np.testing.assert_allclose(params["0.sigma"], np.sqrt(2.0))
    x = rng.standard_normal((5, 2))
    d2 = ((x[:, None, :] - params["0.centers"][None]) ** 2).sum(-1)
    np.testing.assert_allclose(model.forward(x), np.exp(-d2 / params["0.sigma"] ** 2),
                               rtol=1e-12)
    one = nn.Sequential([nn.RBF(1, width_initializer=initializers.Constant(0.5))],
                        input_shape=(2,), dtype=F64)
    c = one.named_parameters()["0.centers"]
    assert one.forward(c.copy())[0, 0] == 1.0  # a point at the centre gives 1


@pytest.mark.parametrize("shared", [False, True], ids=["per_unit", "shared"])
def test_prelu_layer(shared):
    rng = np.random.default_rng(9)
    layer = nn.PReLU(shared=shared, alpha_initializer=initializers.Uniform(0.1, 0.4))
    model = layer_gradcheck(layer, [away(rng, (3, 4))], 2)
    alpha = model.named_parameters()["0.alpha"]
    assert alpha.shape == ((1,) if shared else (4,))
    x = away(rng, (2, 4))
    np.testing.assert_allclose(model.forward(x), np.where(x > 0, x, alpha * x))
    assert nn.Sequential([nn.PReLU()], input_shape=(3,)).named_parameters()["0.alpha"].tolist() \
        == [0.25] * 3


def test_identity_add_concat_derivatives():
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    layer_gradcheck(nn.Identity(), [a], 2)
    m = layer_gradcheck(nn.Add(), [a, b, rng.standard_normal((3, 4))], 2)
    m = layer_gradcheck(nn.Concat(), [a, rng.standard_normal((3, 2))], 2)
    assert m.output_shape == (None, 6)


def test_dropout_is_inverted_seeded_and_off_at_inference():
    model = nn.Sequential([nn.Dropout(0.25, seed=11)], input_shape=(400,), dtype=F64)
    x = np.ones((50, 400))
    assert np.array_equal(model.forward(x), x)  # inference: identity
    y0 = model.forward(x, training=True, step=0)
    kept = y0 != 0
    assert set(np.unique(y0)) == {0.0, 1 / 0.75}  # inverted: survivors scaled by 1/(1-p)
    assert abs(kept.mean() - 0.75) < 0.01
    assert abs(y0.mean() - 1.0) < 0.02
    np.testing.assert_array_equal(model.forward(x, training=True, step=0), y0)  # seeded
    y1 = model.forward(x, training=True, step=1)
    assert not np.array_equal(y1, y0)  # a fresh mask each step
    # the gradient goes through the same mask
    xin = model.inputs[0]
    g, y = G.evaluate([G.grad(G.sum(model.output(True)), xin), model.output(True)], {xin: x})
    np.testing.assert_array_equal(g, y0)
    np.testing.assert_array_equal(y, y0)
    other = nn.Sequential([nn.Dropout(0.25, seed=12)], input_shape=(400,), dtype=F64)
    assert not np.array_equal(other.forward(x, training=True), y0)
    # without an explicit seed the model's Generator draws one: same model seed, same masks
    m1 = nn.Sequential([nn.Dropout(0.5)], input_shape=(64,), seed=3)
    m2 = nn.Sequential([nn.Dropout(0.5)], input_shape=(64,), seed=3)
    xs = np.ones((4, 64), np.float32)
    np.testing.assert_array_equal(m1.forward(xs, training=True), m2.forward(xs, training=True))
    assert nn.Sequential([nn.Dropout(0.0)], input_shape=(3,)).output(True) is not None
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="rate must be"):
            nn.Dropout(bad)


def test_dropout_layer_derivatives():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 4))
    model = nn.Sequential([nn.Dropout(0.5, seed=1), nn.Dense(2, activation="tanh")],
                          input_shape=(4,), dtype=F64)
    out = model.output(True)
    xin = model.inputs[0]

    def f(h):
        # the model's training graph with x replaced: Dropout then Dense
        return model.layers[1].forward([model.layers[0].forward([h], True)], True)

    G.gradcheck(f, [x], order=2)
    assert out.shape == (None, 2) and xin.shape == (None, 4)


# ---- shape errors name the layer -------------------------------------------------------------


def test_shape_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"layer 'hidden' \(Dense\): expects inputs of shape "
                                         r"\(batch, features\), got \(None, 3, 4\)"):
        nn.Sequential([nn.Dense(4, name="hidden")], input_shape=(3, 4))
    x = nn.Input((4,))
    with pytest.raises(ValueError, match=r"layer 'join' \(Add\): inputs must have the same "
                                         r"shape; input 0 is \(None, 3\) and input 1 is "
                                         r"\(None, 4\)"):
        nn.Add(name="join")([nn.Dense(3)(x), nn.Dense(4)(x)])
    with pytest.raises(ValueError, match=r"layer 'Add' \(Add\): inputs must have the same"):
        nn.Add()([nn.Dense(3)(x), nn.Dense(4)(x)])  # unnamed: called by its class
    with pytest.raises(ValueError, match=r"layer 'cat' \(Concat\): takes two or more inputs"):
        nn.Concat(name="cat")(nn.Input((3,)))
    with pytest.raises(ValueError, match=r"layer 'prelu' \(PReLU\): expects inputs"):
        nn.Sequential([nn.PReLU(name="prelu")], input_shape=(2, 2))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="^Dense: units must be >= 1, got 0$"):
        nn.Dense(0)
    with pytest.raises(TypeError, match="^Dense: units must be an int, got float$"):
        nn.Dense(3.0)
    with pytest.raises(ValueError, match="^Maxout: pieces must be >= 1, got 0$"):
        nn.Maxout(3, pieces=0)
    with pytest.raises(TypeError, match="^Maxout: use_bias must be a bool, got int$"):
        nn.Maxout(3, use_bias=1)
    with pytest.raises(ValueError, match="name must be a non-empty string without '.'"):
        nn.Dense(3, name="a.b")
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        nn.Dense(3, kernel_initializer="glorot")


# ---- initializers ----------------------------------------------------------------------------


@pytest.mark.parametrize("name,variance", [
    ("glorot_uniform", 2 / (300 + 200)), ("glorot_normal", 2 / (300 + 200)),
    ("xavier_uniform", 2 / (300 + 200)), ("he_uniform", 2 / 300), ("he_normal", 2 / 300),
    ("kaiming_normal", 2 / 300), ("lecun_uniform", 1 / 300), ("lecun_normal", 1 / 300)])
def test_variance_scaling_initializers(name, variance):
    w = initializers.get(name)((300, 200), 300, 200, np.random.default_rng(0), np.float64)
    assert w.shape == (300, 200) and w.dtype == np.float64
    assert abs(w.var() / variance - 1) < 0.03
    assert abs(w.mean()) < 0.01 * np.sqrt(variance) * 10
    if "uniform" in name:
        assert np.max(np.abs(w)) <= np.sqrt(3 * variance)


def test_other_initializers():
    rng = np.random.default_rng(1)
    for shape in ((6, 4), (4, 6), (5, 5)):
        q = initializers.get("orthogonal")(shape, shape[0], shape[1], rng, np.float64)
        small = min(shape)
        gram = q.T @ q if shape[0] >= shape[1] else q @ q.T
        np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)
    q = initializers.Orthogonal(gain=2.0)((3, 3), 3, 3, rng, np.float64)
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(3), atol=1e-12)
    assert initializers.get("zeros")((3,), 1, 1, rng, np.float32).tolist() == [0, 0, 0]
    c = initializers.get({"class": "constant", "value": 0.1})((2,), 1, 1, rng, np.float32)
    assert c.dtype == np.float32 and c.tolist() == [np.float32(0.1)] * 2
    with pytest.raises(ValueError, match="orthogonal initializer: needs a matrix"):
        initializers.Orthogonal()((3,), 3, 3, rng, np.float64)
    with pytest.raises(ValueError, match="bad options"):
        initializers.get({"class": "constant", "valu": 1})
    assert initializers.get("kaiming_uniform") == initializers.get("he_uniform")


def test_one_generator_per_model_and_dtype_independent_values():
    """Every initial value comes from the model's Generator: the same seed gives the same
    parameters, another seed others; float32 models hold the float64 values rounded."""
    def build(seed, dtype):
        return nn.Sequential([nn.Dense(5, activation="relu", kernel_initializer="he_normal",
                                       bias_initializer=initializers.Constant(0.1)),
                              nn.Maxout(2, 3), nn.RBF(3), nn.Dense(1)],
                             input_shape=(4,), dtype=dtype, seed=seed)

    a, b, c = build(1, F64), build(1, F64), build(2, F64)
    np.testing.assert_array_equal(a.flat, b.flat)
    assert not np.array_equal(a.flat, c.flat)
    np.testing.assert_array_equal(build(1, np.float32).flat, a.flat.astype(np.float32))
    np.testing.assert_array_equal(a.named_parameters()["0.bias"], 0.1)
