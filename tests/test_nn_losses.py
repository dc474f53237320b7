"""ffnc.nn.losses: each output unit's NLL against numpy references and finite differences
(first and second order), per-sample weights, targets, predictions and sampling."""

import math
import zlib

import numpy as np
import pytest

import ffnc.graph as G
import ffnc.nn as nn
from ffnc.nn import losses

F64 = np.float64


def softplus(r):
    return np.maximum(r, 0) + np.log1p(np.exp(-np.abs(r)))


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def reference(loss, out, target):
    """The per-sample loss in plain numpy, from the formulas in the module docstring."""
    if loss.name == "mse":
        return ((out - target) ** 2).mean(axis=1)
    if loss.name == "l1":
        return np.abs(out - target).mean(axis=1)
    if loss.name == "bce":
        return (softplus(out) - target * out).mean(axis=1)
    if loss.name == "softmax_cross_entropy":
        ls = log_softmax(out)
        if target.dtype.kind == "i":
            return -ls[np.arange(len(out)), target]
        return -(target * ls).sum(axis=1)
    if loss.name == "gaussian_nll":
        d = out.shape[1] // 2
        mu, raw = out[:, :d], out[:, d:]
        beta = np.exp(raw) if loss.precision == "exp" else softplus(raw)
        return 0.5 * (beta * (target - mu) ** 2 - np.log(beta) + math.log(2 * math.pi)).sum(1)
    if loss.name == "mdn":
        k, d = loss.components, loss.dims
        logits, mu, raw = out[:, :k], out[:, k:k + k * d], out[:, k + k * d:]
        beta = (np.exp(raw) if loss.precision == "exp" else softplus(raw)).reshape(-1, k, d)
        mu = mu.reshape(-1, k, d)
        comp = 0.5 * (np.log(beta) - beta * (target[:, None, :] - mu) ** 2
                      - math.log(2 * math.pi)).sum(-1)
        joint = log_softmax(logits) + comp
        m = joint.max(axis=1, keepdims=True)
        return -(m[:, 0] + np.log(np.exp(joint - m).sum(axis=1)))
    raise AssertionError(loss.name)


def make_case(name, rng, n=5):
    """(loss, output values, target values, second order?)."""
    if name == "mse":
        return losses.MSE(), rng.standard_normal((n, 3)), rng.standard_normal((n, 3)), True
    if name == "l1":
        out = rng.standard_normal((n, 3))
        return losses.L1(), out, out + rng.choice([-1, 1], (n, 3)) * rng.uniform(0.2, 1,
                                                                                    (n, 3)), False
    if name == "bce":
        return losses.BCE(), rng.standard_normal((n, 2)) * 3, rng.uniform(0, 1, (n, 2)), True
    if name == "xent_labels":
        return (losses.SoftmaxCrossEntropy(), rng.standard_normal((n, 4)),
                rng.integers(0, 4, n), True)
    if name == "xent_probabilities":
        t = rng.uniform(0, 1, (n, 4))
        return (losses.SoftmaxCrossEntropy(probabilities=True), rng.standard_normal((n, 4)),
                t / t.sum(1, keepdims=True), True)
    if name == "gaussian_softplus":
        return losses.GaussianNLL(), rng.standard_normal((n, 4)), rng.standard_normal((n, 2)), \
            True
    if name == "gaussian_exp":
        return (losses.GaussianNLL(precision="exp"), rng.standard_normal((n, 2)),
                rng.standard_normal((n, 1)), True)
    if name == "mdn_1d":
        loss = losses.MDN(3)
        return loss, rng.standard_normal((n, loss.units)), rng.standard_normal((n, 1)), True
    if name == "mdn_2d_exp":
        loss = losses.MDN(2, dims=2, precision="exp")
        return loss, rng.standard_normal((n, loss.units)), rng.standard_normal((n, 2)), True
    raise AssertionError(name)


CASES = ["mse", "l1", "bce", "xent_labels", "xent_probabilities", "gaussian_softplus",
         "gaussian_exp", "mdn_1d", "mdn_2d_exp"]


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("name", CASES)
def test_loss_value_and_derivatives(name, weighted):
    """The value against the numpy reference (mean of the per-sample losses, weighted as
    sum w_i l_i / n), the derivatives in the output (and targets, where differentiable)
    against finite differences, second order for the smooth ones."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    loss, out, target, smooth = make_case(name, rng)
    w = rng.uniform(0.1, 2.0, len(out))
    per_sample = reference(loss, out, target)
    expected = float(np.mean(per_sample * (w if weighted else 1)))
    o = G.placeholder((None,) + out.shape[1:], F64)
    t = G.placeholder((None,) + target.shape[1:], target.dtype)
    wn = G.placeholder((None,), F64)
    value_node = loss(o, t, wn if weighted else None)
    assert value_node.shape == ()
    feed = {o: out, t: target, **({wn: w} if weighted else {})}
    np.testing.assert_allclose(G.evaluate(value_node, feed), expected, rtol=1e-12)

    inputs = [out, target] + ([w] if weighted else [])

    def f(*holders):
        return loss(*holders)

    G.gradcheck(f, inputs, order=2 if smooth else 1, seed=3)


@pytest.mark.parametrize("name", CASES)
def test_unit_weights_give_the_unweighted_loss(name):
    rng = np.random.default_rng(1)
    loss, out, target, _ = make_case(name, rng)
    o, t = G.constant(out), G.constant(target)
    plain = G.evaluate(loss(o, t))
    ones = G.evaluate(loss(o, t, G.constant(np.ones(len(out)))))
    np.testing.assert_allclose(ones, plain, rtol=1e-13)


def test_probability_targets_match_labels_when_one_hot():
    rng = np.random.default_rng(2)
    z, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    loss = losses.SoftmaxCrossEntropy()
    a = G.evaluate(loss(G.constant(z), G.constant(y)))
    b = G.evaluate(loss(G.constant(z), G.constant(np.eye(4)[y])))
    np.testing.assert_allclose(a, b, rtol=1e-13)


def test_losses_are_stable_at_extreme_outputs():
    """Huge logits and precision pre-activations give finite losses and gradients."""
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    for loss, target in ((losses.SoftmaxCrossEntropy(), np.array([1, 2])),
                         (losses.BCE(), np.array([[0.0, 1, 1], [1, 0, 0]]))):
        o = G.placeholder((2, 3), F64)
        t = G.constant(target)
        value = loss(o, t, G.constant(np.ones(2)))
        v, g = G.evaluate([value, G.grad(value, o)], {o: z})
        assert np.isfinite(v) and np.all(np.isfinite(g))
    mdn = losses.MDN(2)
    out = np.array([[500.0, -500.0, 3.0, -3.0, 30.0, 30.0]])  # very sharp components
    o = G.placeholder((1, 6), F64)
    value = mdn(o, G.constant(np.array([[-3.0]])))
    v, g = G.evaluate([value, G.grad(value, o)], {o: out})
    assert np.isfinite(v) and np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_softplus_precisions_are_stable_far_out(dtype):
    """A precision pre-activation far below zero (softplus underflows to 0, log(softplus) would
    be -inf with a 0/0 derivative) still gives finite NLLs and gradients, first and second
    order; there log softplus(r) = r."""
    raw = np.array([-1000.0, -800.0, -120.0, -31.0, -5.0, 0.0, 3.0, 700.0])
    n = len(raw)
    for loss, out in (
            (losses.GaussianNLL(), np.stack([np.zeros(n), raw], 1)),
            (losses.MDN(2), np.stack([np.zeros(n), np.zeros(n), np.zeros(n), np.ones(n),
                                      raw, np.zeros(n)], 1))):
        o = G.placeholder((n, out.shape[1]), dtype)
        t = G.constant(np.full((n, 1), 0.25, dtype))
        value = loss(o, t)
        gradient = G.grad(value, o)
        second = G.hvp(value, o, G.constant(np.ones(out.shape, dtype)))
        v, g, h = G.evaluate([value, gradient, second], {o: out.astype(dtype)})
        assert np.isfinite(v) and np.all(np.isfinite(g)) and np.all(np.isfinite(h)), loss
    per = losses.GaussianNLL().per_sample(G.constant(np.array([[0.0, -1000.0]])),
                                          G.constant(np.array([[0.0]])))
    np.testing.assert_allclose(G.evaluate(per), [0.5 * (1000 + math.log(2 * math.pi))])


def test_target_errors_are_clear():
    o = G.placeholder((None, 4), F64, name="out")
    with pytest.raises(TypeError, match="target y must be float64, got int64"):
        losses.MSE()(o, G.placeholder((None, 4), np.int64, name="y"))
    with pytest.raises(ValueError, match=r"target y must have shape \(None, 4\)"):
        losses.MSE()(o, G.placeholder((None, 3), F64, name="y"))
    with pytest.raises(ValueError, match=r"labels y must have shape \(None,\)"):
        losses.SoftmaxCrossEntropy()(o, G.placeholder((None, 1), np.int64, name="y"))
    with pytest.raises(ValueError, match="even number of columns"):
        losses.GaussianNLL()(G.placeholder((None, 3), F64), G.placeholder((None, 1), F64))
    with pytest.raises(ValueError, match="3 components of dimension 1 need 9 model outputs"):
        losses.MDN(3)(o, G.placeholder((None, 1), F64))
    with pytest.raises(ValueError, match=r"weight w must have shape \(None,\)"):
        losses.MSE()(o, G.placeholder((None, 4), F64), G.placeholder((None, 1), F64, name="w"))
    with pytest.raises(TypeError, match="weight w must be float64"):
        losses.MSE()(o, G.placeholder((None, 4), F64), G.placeholder((None,), np.float32,
                                                                     name="w"))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")
    with pytest.raises(ValueError, match="precision must be 'softplus' or 'exp'"):
        losses.MDN(2, precision="square")


def test_target_placeholders_and_configs():
    def model(units, dtype="float32"):
        return nn.Sequential([nn.Dense(units)], input_shape=(3,), dtype=dtype)

    cases = [("softmax_cross_entropy", 5, (None,), np.int64),
             ({"class": "softmax_cross_entropy", "probabilities": True}, 5, (None, 5),
              np.float32),
             ("bce", 2, (None, 2), np.float32), ("mse", 3, (None, 3), np.float32),
             ("l1", 1, (None, 1), np.float32), ("gaussian_nll", 4, (None, 2), np.float32),
             ({"class": "mdn", "components": 3, "dims": 2}, 15, (None, 2), np.float32)]
    for spec, units, shape, dtype in cases:
        loss = losses.get(spec)
        t = loss.target_placeholder(model(units))
        assert t.shape == shape and t.dtype == dtype, spec
        assert losses.get(loss.get_config()) == loss
    assert losses.get("softmax_cross_entropy").get_config() == {"class": "softmax_cross_entropy"}
    w = losses.get("mse").weight_placeholder(model(1, "float64"))
    assert w.shape == (None,) and w.dtype == F64


def test_predictions():
    z = np.array([[0.0, np.log(3.0)], [2.0, 2.0]])
    np.testing.assert_allclose(losses.SoftmaxCrossEntropy().predict(z), [[0.25, 0.75],
                                                                         [0.5, 0.5]])
    np.testing.assert_allclose(losses.BCE().predict(np.array([[0.0, -800.0]])), [[0.5, 0.0]])
    g = losses.GaussianNLL(precision="exp")
    np.testing.assert_allclose(g.predict(np.array([[1.5, np.log(4.0)]])), [[1.5]])
    np.testing.assert_allclose(g.std(np.array([[1.5, np.log(4.0)]])), [[0.5]])


def test_mdn_helpers_mean_mode_density_and_sampling():
    """Mixture weights from the softmax, the mixture mean, the mode at the heavier
    well-separated component, the log density, and samples distributed as the mixture."""
    mdn = losses.MDN(2, precision="exp")
    # pi = (0.25, 0.75), means (-2, 3), std (0.5, 0.25)
    out = np.array([[0.0, np.log(3.0), -2.0, 3.0, np.log(4.0), np.log(16.0)]])
    pi, mu, beta = mdn.mixture(out)
    np.testing.assert_allclose(pi, [[0.25, 0.75]])
    np.testing.assert_allclose(mdn.mean(out), [[0.25 * -2 + 0.75 * 3]])
    np.testing.assert_allclose(mdn.mode(out), [[3.0]])
    y = np.array([[0.4]])
    dens = 0.25 * np.exp(-0.5 * 4 * 2.4 ** 2) * 2 / np.sqrt(2 * np.pi) \
        + 0.75 * np.exp(-0.5 * 16 * 2.6 ** 2) * 4 / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(mdn.log_density(out, y), np.log([dens]), rtol=1e-12)
    # the graph NLL is the negative log density
    np.testing.assert_allclose(G.evaluate(mdn(G.constant(out), G.constant(y))), -np.log(dens),
                               rtol=1e-12)
    s = mdn.sample(np.repeat(out, 2, 0), 20000, np.random.default_rng(0))
    assert s.shape == (2, 20000, 1)
    upper = s[..., 0] > 0.5
    assert abs(upper.mean() - 0.75) < 0.01
    assert abs(s[..., 0][upper].std() - 0.25) < 0.01 and abs(s[..., 0][~upper].mean() + 2) < 0.02
    gauss = losses.GaussianNLL(precision="exp")
    two = np.array([[1.0, np.log(4.0)], [0.0, 0.0]])
    np.testing.assert_allclose(gauss.log_density(two, np.array([[0.5], [1.0]])),
                               [np.log(2 / np.sqrt(2 * np.pi)) - 0.5,
                                -0.5 * np.log(2 * np.pi) - 0.5], rtol=1e-12)
    np.testing.assert_allclose(
        G.evaluate(gauss(G.constant(two), G.constant(np.array([[0.5], [1.0]])))),
        -np.mean(gauss.log_density(two, np.array([[0.5], [1.0]]))), rtol=1e-12)
    assert gauss.log_density(two, np.zeros((2, 3, 1))).shape == (2, 3)
    g = losses.GaussianNLL().sample(np.array([[1.0, 3.0]]), 20000, np.random.default_rng(1))
    assert abs(g.mean() - 1) < 0.02 and abs(g.std() - 1 / np.sqrt(softplus(3.0))) < 0.02
    with pytest.raises(ValueError, match=r"model outputs must have shape \(n, 6\)"):
        mdn.mean(np.zeros((2, 5)))
