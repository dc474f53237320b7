"""Units as graph ops: prelu against the C kernels and finite differences, and the lecture's
claims about hidden and output units, as tests."""

import numpy as np
import pytest

import ffnc
import ffnc.graph as G
from ffnc.graph.ir import apply
from ffnc.graph.ops import outputs

F64 = np.float64


def away_from_zero(rng, shape, gap=0.1):
    x = rng.uniform(-2, 2, shape)
    x[np.abs(x) < gap] += np.sign(x[np.abs(x) < gap] + 1e-300) * 2 * gap
    return x


# ---- prelu -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_alpha", [1, 4], ids=["shared", "per_unit"])
def test_prelu_derivatives_first_and_second_order(n_alpha):
    """prelu and its two-output gradient op against finite differences, in x and alpha, first
    and second order (prelu is bilinear in (x, alpha) where x <= 0)."""
    rng = np.random.default_rng(n_alpha)
    x, alpha = away_from_zero(rng, (3, 4)), rng.uniform(0.1, 0.5, n_alpha)
    report = G.gradcheck(G.prelu, [x, alpha], order=2, seed=1)
    assert report.ok and set(report.errors) == {"rev", "fwd", "fwd_rev", "rev_rev"}

    def both(g, x, a):
        dx, da = outputs(apply("prelu_grad", [g, x, a]))
        return G.concat([G.reshape(dx, (12,)), da], 0)

    report = G.gradcheck(both, [rng.standard_normal((3, 4)), x, alpha], order=2, seed=2)
    assert report.ok


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n_alpha", [1, 5], ids=["shared", "per_unit"])
def test_prelu_interpreter_matches_c_kernels(dtype, n_alpha):
    """The numpy forward and gradient agree with ffnc.kernels.prelu_forward/backward,
    including at 0 (derivative alpha there) and NaN."""
    rng = np.random.default_rng(7)
    x_val = rng.uniform(-2, 2, (6, 5)).astype(dtype)
    x_val[0, :3] = [0.0, -0.0, np.nan]
    g_val = rng.standard_normal((6, 5)).astype(dtype)
    a_val = rng.uniform(0.05, 0.5, n_alpha).astype(dtype)
    x, a, g = (G.placeholder(v.shape, dtype) for v in (x_val, a_val, g_val))
    y = G.prelu(x, a)
    dx, da = G.vjp(y, [x, a], g)
    y_ref, dx_ref, da_ref = G.evaluate([y, dx, da], {x: x_val, a: a_val, g: g_val})
    y_c = ffnc.kernels.prelu_forward(x_val, a_val)
    dx_c, da_c = ffnc.kernels.prelu_backward(g_val, x_val, a_val)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y_ref, y_c, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dx_ref, dx_c, rtol=rtol, atol=rtol)
    assert np.isnan(da_ref).all() == np.isnan(da_c).all()
    finite = ~np.isnan(x_val).any(axis=0) if n_alpha > 1 else slice(None)
    np.testing.assert_allclose(da_ref[finite], da_c[finite], rtol=10 * rtol, atol=10 * rtol)
    assert dx_ref[0, 0] == pytest.approx(a_val[0] * g_val[0, 0])  # prelu'(0) = alpha


def test_prelu_shape_errors_name_the_arguments():
    x = G.placeholder((None, 4), F64, name="h")
    with pytest.raises(ValueError, match=r"alpha .* must have shape \(1,\).*\(4,\)"):
        G.prelu(x, G.parameter(np.ones(3)))
    with pytest.raises(ValueError, match="x h must be a .rows, units. matrix"):
        G.prelu(G.placeholder((4,), F64, name="h"), G.parameter(np.ones(1)))
    with pytest.raises(TypeError, match="dtype mismatch"):
        G.prelu(x, G.parameter(np.ones(4, np.float32)))


# ---- the lecture's claims --------------------------------------------------------------------


def _grad_wrt_logit(loss_of_z, z_values):
    z = G.placeholder((len(z_values),), F64)
    return G.evaluate(G.grad(loss_of_z(z), z), {z: np.asarray(z_values, F64)})


def test_bce_from_logits_does_not_saturate_when_wrong_but_mse_on_sigmoid_does():
    """With y = 1 and z -> -inf (confidently wrong), the gradient of BCE-from-logits tends to
    -1 (per sample, sum reduction); the squared error of sigmoid(z) has a vanishing gradient
    there, so it cannot learn its way out."""
    z = np.array([-5.0, -10.0, -20.0, -40.0, -700.0])
    y = G.constant(np.ones(len(z)))
    bce = _grad_wrt_logit(lambda t: G.bce_with_logits(t, y, "sum"), z)
    mse = _grad_wrt_logit(lambda t: G.mse(G.sigmoid(t), y, "sum"), z)
    assert np.all(np.isfinite(bce))
    np.testing.assert_allclose(bce[2:], -1.0, atol=1e-8)
    assert np.all(np.diff(bce) <= 0) and bce[0] > -1  # monotonically towards -1
    assert np.all(np.abs(mse[2:]) < 1e-7) and abs(mse[-1]) < 1e-300
    assert np.all(np.diff(np.abs(mse)) < 0)  # shrinking towards 0
    # and the same holds for ffnc.nn's bce loss in its per-sample (weighted) form
    from ffnc.nn import losses

    zz = G.placeholder((len(z), 1), F64)
    loss = losses.get("bce")(zz, G.constant(np.ones((len(z), 1))),
                             G.constant(np.ones(len(z))))
    g = G.evaluate(G.grad(loss, zz), {zz: z[:, None]})[:, 0] * len(z)
    np.testing.assert_allclose(g[2:], -1.0, atol=1e-8)


def test_bce_saturates_only_when_right():
    """When the answer is right (y = 1, z -> +inf) the BCE gradient does vanish."""
    g = _grad_wrt_logit(lambda t: G.bce_with_logits(t, G.constant(np.ones(3)), "sum"),
                        [10.0, 20.0, 40.0])
    assert np.all(np.abs(g) < 5e-5) and np.all(g <= 0)


def test_softmax_is_shift_invariant_and_stable_at_huge_logits():
    rng = np.random.default_rng(0)
    z_val = rng.standard_normal((4, 5))
    z = G.placeholder((None, 5), F64)
    s = G.softmax(z, 1)
    base = G.evaluate(s, {z: z_val})
    for shift in (-1e4, -37.0, 1.0, 1e4):
        np.testing.assert_allclose(G.evaluate(s, {z: z_val + shift}), base, rtol=1e-9,
                                   atol=1e-12)
    big = np.array([[1e4, 1e4 - 1, 0.0], [1e4, 1e4, 1e4]])
    zb = G.placeholder((2, 3), F64)
    for dtype in (np.float32, np.float64):
        zd = G.placeholder((None, 3), dtype)
        out = G.evaluate(G.softmax(zd, 1), {zd: big.astype(dtype)})
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(out[1], 1 / 3, rtol=1e-6)
    e = np.exp(-1.0)
    np.testing.assert_allclose(G.evaluate(G.softmax(zb, 1), {zb: big})[0],
                               [1 / (1 + e), e / (1 + e), 0.0], rtol=1e-12)
    # and the cross-entropy at those logits is finite with a finite gradient
    y = G.constant(np.array([1, 0]))
    loss = G.softmax_cross_entropy(zb, y)
    val, grad = G.evaluate([loss, G.grad(loss, zb)], {zb: big})
    assert np.isfinite(val) and np.all(np.isfinite(grad))


def test_softplus_approaches_relu_and_its_derivative_is_the_sigmoid():
    z = np.concatenate([np.linspace(-60, -20, 5), np.linspace(-3, 3, 13), np.linspace(20, 60, 5)])
    x = G.placeholder((len(z),), F64)
    sp, d_sp, sig, relu = G.evaluate(
        [G.softplus(x), G.grad(G.sum(G.softplus(x)), x), G.sigmoid(x), G.relu(x)], {x: z})
    far = np.abs(z) >= 20
    np.testing.assert_allclose(sp[far], relu[far], atol=3e-9)  # log(1 + e^-20) ~ 2e-9
    assert np.all(sp >= relu) and np.all(sp - relu <= np.log(2) + 1e-15)
    np.testing.assert_allclose(d_sp, sig, rtol=1e-14, atol=1e-300)


def test_tanh_is_a_rescaled_sigmoid():
    z = np.linspace(-30, 30, 61)
    x = G.placeholder((len(z),), F64)
    tanh, rescaled = G.evaluate([G.tanh(x), G.sigmoid(x * 2.0) * 2.0 - 1.0], {x: z})
    np.testing.assert_allclose(tanh, rescaled, rtol=1e-13, atol=1e-15)


def test_maxout_with_two_pieces_represents_relu_and_abs_exactly():
    """A Maxout layer of 2 pieces per unit with weights (0, 1) is relu and with (-1, 1) is
    abs: exactly, values and derivatives (away from the kink)."""
    import ffnc.nn as nn

    model = nn.Sequential([nn.Maxout(2, pieces=2)], input_shape=(2,), dtype=F64)
    # unit 0: max(0, x0) (relu); unit 1: max(-x1, x1) (abs)
    w = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 1.0]])
    model.load_state_dict({"0.weight": w, "0.bias": np.zeros(4)})
    xs = np.array([[-2.5, -2.5], [-0.3, 0.3], [0.0, -0.0], [1e-300, -1e-300], [7.0, 7.0],
                   [-1e300, 1e300]])
    out = model.forward(xs)
    assert np.array_equal(out[:, 0], np.maximum(xs[:, 0], 0))
    assert np.array_equal(out[:, 1], np.abs(xs[:, 1]))
    x = model.inputs[0]
    dx = G.evaluate(G.grad(G.sum(model.output()), x), {x: xs[[0, 1, 4]]})
    assert dx.tolist() == [[0.0, -1.0], [0.0, 1.0], [1.0, 1.0]]
