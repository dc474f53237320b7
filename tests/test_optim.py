"""Optimizer updates (sgd_update, momentum_update, adam_update, rmsprop_update) against float64
numpy references written from the update formulas, over several consecutive steps, on each ISA
path and dtype; the variants (Nesterov, coupled vs decoupled weight decay, centered RMSprop)
against each other and, when torch is installed, against torch.optim; the global norm and
gradient clipping (against numpy and torch.nn.utils.clip_grad_norm_, overflow, NaN); NaN
propagation, thread-count independence, argument checks, and convergence on a convex
quadratic."""

import numpy as np
import pytest
from conftest import RTOL, assert_close

import ffnc
from ffnc import kernels

# ---- references: the formulas of the docstrings, in float64 ---------------------------------


def ref_sgd(p, g, lr, weight_decay):
    return p - lr * (g + weight_decay * p)


def ref_momentum(p, g, velocity, lr, momentum, weight_decay, nesterov):
    d = g + weight_decay * p
    velocity = momentum * velocity + d
    step = d + momentum * velocity if nesterov else velocity
    return p - lr * step, velocity


def ref_adam(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    if decoupled:
        p = p - lr * weight_decay * p
    else:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def ref_rmsprop(p, g, square_avg, momentum_buffer, grad_avg, lr, alpha, eps, weight_decay,
                momentum, centered):
    g = g + weight_decay * p
    square_avg = alpha * square_avg + (1 - alpha) * g * g
    if centered:
        grad_avg = alpha * grad_avg + (1 - alpha) * g
        den = np.sqrt(np.maximum(square_avg - grad_avg * grad_avg, 0)) + eps
    else:
        den = np.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buffer = momentum * momentum_buffer + g / den
        p = p - lr * momentum_buffer
    else:
        p = p - lr * g / den
    return p, square_avg, momentum_buffer, grad_avg


# 70001 elements: above twice the element-wise threading grain (2**15), so two threads run.
SHAPES = [(0,), (1,), (7,), (25, 40), (70001,)]
SHAPE_IDS = ["0", "1", "7", "25x40", "70001"]
STEPS = 4


@pytest.fixture
def restore_threads():
    previous = ffnc.get_num_threads()
    yield
    ffnc.set_num_threads(previous)


def f64(a):
    """A float64 copy (never a view of an array an update will change)."""
    return np.array(a, dtype=np.float64)


# ---- each update against its reference -------------------------------------------------------
# The reference of each step starts from the kernel's own state after the previous step (cast to
# float64), so float32 rounding does not compound and the tolerance is that of one step; the
# state is still carried by the kernel from step to step.


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd_matches_reference(isa, dtype, rng, shape, weight_decay):
    p = rng.uniform(-1, 1, size=shape).astype(dtype)
    for _ in range(STEPS):
        g = rng.normal(size=shape).astype(dtype)
        g_before = g.copy()
        expected = ref_sgd(f64(p), f64(g), 0.1, weight_decay)
        assert kernels.sgd_update(p, g, lr=0.1, weight_decay=weight_decay) is None
        assert_close(p, expected, dtype)
        np.testing.assert_array_equal(g, g_before)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("nesterov", [False, True], ids=["classic", "nesterov"])
def test_momentum_matches_reference(isa, dtype, rng, shape, weight_decay, nesterov):
    p = rng.uniform(-1, 1, size=shape).astype(dtype)
    velocity = np.zeros(shape, dtype)
    for _ in range(STEPS):
        g = rng.normal(size=shape).astype(dtype)
        g_before = g.copy()
        expected_p, expected_v = ref_momentum(
            f64(p), f64(g), f64(velocity), 0.05, 0.9, weight_decay, nesterov
        )
        kernels.momentum_update(
            p, g, velocity, lr=0.05, momentum=0.9, weight_decay=weight_decay, nesterov=nesterov
        )
        assert_close(p, expected_p, dtype)
        assert_close(velocity, expected_v, dtype)
        np.testing.assert_array_equal(g, g_before)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize(
    "weight_decay, decoupled",
    [(0.0, False), (0.01, False), (0.1, True)],
    ids=["plain", "l2", "adamw"],
)
def test_adam_matches_reference(isa, dtype, rng, shape, weight_decay, decoupled):
    p = rng.uniform(-1, 1, size=shape).astype(dtype)
    m = np.zeros(shape, dtype)
    v = np.zeros(shape, dtype)
    for step in range(1, STEPS + 1):
        g = rng.normal(size=shape).astype(dtype)
        g_before = g.copy()
        expected = ref_adam(
            f64(p), f64(g), f64(m), f64(v), step, 1e-2, 0.9, 0.999, 1e-8, weight_decay, decoupled
        )
        kernels.adam_update(
            p, g, m, v, step=step, lr=1e-2, weight_decay=weight_decay, decoupled=decoupled
        )
        for actual, ref in zip((p, m, v), expected, strict=True):
            assert_close(actual, ref, dtype)
        np.testing.assert_array_equal(g, g_before)


RMSPROP_VARIANTS = [(0.0, 0.0, False), (0.01, 0.0, True), (0.0, 0.9, False), (0.01, 0.9, True)]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("weight_decay, momentum, centered", RMSPROP_VARIANTS,
                         ids=["plain", "l2+centered", "momentum", "l2+centered+momentum"])
def test_rmsprop_matches_reference(isa, dtype, rng, shape, weight_decay, momentum, centered):
    p = rng.uniform(-1, 1, size=shape).astype(dtype)
    state = [np.zeros(shape, dtype) for _ in range(3)]  # square_avg, momentum_buffer, grad_avg
    for _ in range(STEPS):
        g = rng.normal(size=shape).astype(dtype)
        g_before = g.copy()
        expected = ref_rmsprop(f64(p), f64(g), *map(f64, state), 1e-2, 0.9, 1e-8, weight_decay,
                               momentum, centered)
        kernels.rmsprop_update(p, g, *state, lr=1e-2, alpha=0.9, weight_decay=weight_decay,
                               momentum=momentum, centered=centered)
        for actual, ref in zip((p, *state), expected, strict=True):
            assert_close(actual, ref, dtype)
        np.testing.assert_array_equal(g, g_before)
    if momentum == 0:
        assert not state[1].any()  # unused buffers are not touched
    if not centered:
        assert not state[2].any()


def test_rmsprop_unused_buffers_may_be_omitted(dtype, rng):
    p = rng.uniform(-1, 1, size=9).astype(dtype)
    g = rng.normal(size=9).astype(dtype)
    with_all, square_avg = p.copy(), np.zeros(9, dtype)
    kernels.rmsprop_update(p, g, square_avg)
    kernels.rmsprop_update(with_all, g, np.zeros(9, dtype), np.zeros(9, dtype),
                           np.zeros(9, dtype))
    np.testing.assert_array_equal(p, with_all)


def test_rmsprop_centered_negative_variance_is_clamped():
    """A square average below the squared mean (rounding can leave one) gives variance 0, so the
    step is lr g / eps rather than NaN (where PyTorch takes the root of a negative number)."""
    p, g = np.array([1.0]), np.array([1.0])
    square_avg, grad_avg = np.array([0.0]), np.array([1.0])
    kernels.rmsprop_update(p, g, square_avg, None, grad_avg, lr=1e-9, alpha=0.99, eps=1e-3,
                           centered=True)
    np.testing.assert_allclose(p, 1 - 1e-9 / 1e-3, rtol=1e-15)
    np.testing.assert_allclose(square_avg, 0.01, rtol=1e-15)


def test_rmsprop_constant_gradient_stays_finite(dtype):
    """A constant gradient has variance exactly 0; rounding must not turn it into NaN."""
    p = np.zeros(64, dtype)
    g = np.full(64, 0.3, dtype)
    state = [np.zeros(64, dtype) for _ in range(3)]
    for _ in range(300):
        kernels.rmsprop_update(p, g, *state, lr=1e-4, alpha=0.5, momentum=0.5, centered=True)
    assert np.isfinite(p).all()


def test_adam_late_step_and_extreme_betas(dtype, rng):
    """Bias corrections far along (~1), at beta2 close to 1 (tiny at step 1), and beta = 0."""
    for step, beta1, beta2 in [(1000, 0.9, 0.999), (1, 0.9, 0.99999), (3, 0.0, 0.0)]:
        p = rng.uniform(-1, 1, size=33).astype(dtype)
        g = rng.normal(size=33).astype(dtype)
        m = rng.normal(size=33).astype(dtype)
        v = rng.uniform(0, 2, size=33).astype(dtype)
        expected = ref_adam(
            f64(p), f64(g), f64(m), f64(v), step, 1e-3, beta1, beta2, 1e-8, 0.0, False
        )
        kernels.adam_update(p, g, m, v, step=step, lr=1e-3, beta1=beta1, beta2=beta2)
        for actual, ref in zip((p, m, v), expected, strict=True):
            assert_close(actual, ref, dtype)


# ---- the variants against each other ---------------------------------------------------------


def test_nesterov_differs_from_classic_as_it_should(dtype, rng):
    p0 = rng.uniform(-1, 1, size=100).astype(dtype)
    g = rng.normal(size=100).astype(dtype)
    classic, nesterov = p0.copy(), p0.copy()
    v_classic, v_nesterov = np.zeros(100, dtype), np.zeros(100, dtype)
    kernels.momentum_update(classic, g, v_classic, lr=0.1, momentum=0.9, weight_decay=0.01)
    kernels.momentum_update(
        nesterov, g, v_nesterov, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True
    )
    # From zero velocity, v = d after one step and Nesterov's step is d + 0.9 d: 1.9 times as far.
    np.testing.assert_array_equal(v_classic, v_nesterov)
    assert_close(f64(p0) - nesterov, 1.9 * (f64(p0) - classic), dtype, scale=10)
    # Later steps: both move along their own velocity; Nesterov adds the look-ahead momentum term.
    g2 = rng.normal(size=100).astype(dtype)
    before_c, before_n = f64(classic), f64(nesterov)
    kernels.momentum_update(classic, g2, v_classic, lr=0.1, momentum=0.9, weight_decay=0.01)
    kernels.momentum_update(
        nesterov, g2, v_nesterov, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True
    )
    d_n = f64(g2) + 0.01 * before_n
    assert_close(before_n - nesterov, 0.1 * (d_n + 0.9 * f64(v_nesterov)), dtype, scale=10)
    assert_close(before_c - classic, 0.1 * f64(v_classic), dtype, scale=10)
    assert not np.allclose(classic, nesterov)


def test_adam_coupled_and_decoupled_weight_decay_differ_as_they_should(dtype, rng):
    """With a zero gradient, Adam's L2 term goes through the adaptive normalisation (a step of
    ~lr toward 0 whatever the decay), while AdamW shrinks p by lr * weight_decay * p and leaves
    the moments at zero."""
    p0 = rng.uniform(0.5, 2, size=64).astype(dtype) * rng.choice([-1, 1], size=64).astype(dtype)
    zero = np.zeros(64, dtype)
    for weight_decay in (0.1, 0.01):
        coupled, decoupled = p0.copy(), p0.copy()
        m1, v1, m2, v2 = (np.zeros(64, dtype) for _ in range(4))
        kernels.adam_update(coupled, zero, m1, v1, step=1, lr=1e-2, weight_decay=weight_decay)
        kernels.adam_update(
            decoupled, zero, m2, v2, step=1, lr=1e-2, weight_decay=weight_decay, decoupled=True
        )
        l2_gradient = weight_decay * f64(p0)
        # m_hat = l2_gradient and sqrt(v_hat) = |l2_gradient| at step 1
        assert_close(coupled, f64(p0) - 1e-2 * l2_gradient / (np.abs(l2_gradient) + 1e-8), dtype)
        np.testing.assert_allclose(f64(p0) - coupled, 1e-2 * np.sign(p0), rtol=1e-4)
        assert_close(decoupled, f64(p0) * (1 - 1e-2 * weight_decay), dtype)
        assert not m2.any() and not v2.any()
        assert_close(m1, 0.1 * weight_decay * f64(p0), dtype)


def test_sgd_weight_decay_is_an_l2_gradient(dtype, rng):
    p = rng.uniform(-1, 1, size=257).astype(dtype)
    g = rng.normal(size=257).astype(dtype)
    decayed, explicit = p.copy(), p.copy()
    kernels.sgd_update(decayed, g, lr=0.1, weight_decay=0.01)
    kernels.sgd_update(explicit, g + dtype(0.01) * p, lr=0.1)
    assert_close(decayed, f64(explicit), dtype)


def test_zero_weight_decay_adds_no_term():
    """0 * inf would be NaN: a zero decay must leave an infinite parameter infinite."""
    p = np.array([np.inf, -np.inf])
    g = np.array([1.0, 1.0])
    kernels.sgd_update(p, g, lr=0.1)
    kernels.momentum_update(p, g, np.zeros(2), lr=0.1)
    kernels.adam_update(p, g, np.zeros(2), np.zeros(2), step=1)
    np.testing.assert_array_equal(p, [np.inf, -np.inf])


def test_any_shape_and_empty_arrays():
    for shape in [(), (0,), (3, 0), (2, 3, 4)]:
        p = np.ones(shape)
        g = np.full(shape, 0.5)
        kernels.sgd_update(p, g, lr=0.1)
        np.testing.assert_allclose(p, np.full(shape, 0.95), rtol=1e-15)
        kernels.momentum_update(p, g, np.zeros(shape), lr=0.1, nesterov=True)
        kernels.adam_update(p, g, np.zeros(shape), np.zeros(shape), step=1, decoupled=True)


# ---- against torch.optim -------------------------------------------------------------------


@pytest.mark.parametrize(
    "momentum, nesterov",
    [(0.0, False), (0.9, False), (0.9, True)],
    ids=["sgd", "classic", "nesterov"],
)
def test_sgd_and_momentum_match_torch(rng, momentum, nesterov):
    torch = pytest.importorskip("torch")
    p0 = rng.normal(size=40)
    grads = [rng.normal(size=40) for _ in range(5)]
    tp = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.SGD(
        [tp], lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=0.01
    )
    p = p0.copy()
    velocity = np.zeros(40)
    for g in grads:
        tp.grad = torch.tensor(g)
        opt.step()
        if momentum == 0:
            kernels.sgd_update(p, g, lr=0.05, weight_decay=0.01)
        else:
            kernels.momentum_update(
                p, g, velocity, lr=0.05, momentum=momentum, weight_decay=0.01, nesterov=nesterov
            )
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("decoupled", [False, True], ids=["Adam", "AdamW"])
def test_adam_matches_torch(rng, decoupled):
    torch = pytest.importorskip("torch")
    p0 = rng.normal(size=40)
    grads = [rng.normal(size=40) for _ in range(5)]
    tp = torch.nn.Parameter(torch.tensor(p0))
    kind = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = kind([tp], lr=1e-2, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.05)
    p, m, v = p0.copy(), np.zeros(40), np.zeros(40)
    for step, g in enumerate(grads, start=1):
        tp.grad = torch.tensor(g)
        opt.step()
        kernels.adam_update(
            p, g, m, v, step=step, lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-6, weight_decay=0.05,
            decoupled=decoupled,
        )
    state = opt.state[tp]
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m, state["exp_avg"].numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(v, state["exp_avg_sq"].numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("momentum, centered, weight_decay",
                         [(0.0, False, 0.0), (0.0, True, 0.01), (0.9, False, 0.01),
                          (0.9, True, 0.0)],
                         ids=["plain", "centered", "momentum", "centered+momentum"])
def test_rmsprop_matches_torch(rng, momentum, centered, weight_decay):
    torch = pytest.importorskip("torch")
    p0 = rng.normal(size=40)
    grads = [rng.normal(size=40) for _ in range(6)]
    tp = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.RMSprop([tp], lr=1e-2, alpha=0.95, eps=1e-6, weight_decay=weight_decay,
                              momentum=momentum, centered=centered)
    p = p0.copy()
    state = [np.zeros(40) for _ in range(3)]
    for g in grads:
        tp.grad = torch.tensor(g)
        opt.step()
        kernels.rmsprop_update(p, g, *state, lr=1e-2, alpha=0.95, eps=1e-6,
                               weight_decay=weight_decay, momentum=momentum, centered=centered)
    torch_state = opt.state[tp]
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state[0], torch_state["square_avg"].numpy(), rtol=1e-12)
    if momentum:
        np.testing.assert_allclose(state[1], torch_state["momentum_buffer"].numpy(), rtol=1e-12)
    if centered:
        np.testing.assert_allclose(state[2], torch_state["grad_avg"].numpy(), rtol=1e-12,
                                   atol=1e-15)


# ---- global norm and clipping ----------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_global_norm_matches_numpy(isa, dtype, rng, shape):
    x = rng.normal(size=shape).astype(dtype)
    expected = np.sqrt(np.sum(f64(x) ** 2))
    # summed in double whatever the dtype: accurate to a few ulps of double
    np.testing.assert_allclose(kernels.global_norm(x), expected, rtol=1e-13)
    assert isinstance(kernels.global_norm(x), float)


def test_global_norm_is_bitwise_reproducible(restore_threads, rng):
    x = rng.normal(size=(1 << 17) + 3)
    results = []
    for isa in ffnc.supported_isas():
        for threads in (1, 2):
            ffnc.set_isa(isa)
            ffnc.set_num_threads(threads)
            results.append(kernels.global_norm(x))
    ffnc.set_isa(ffnc.supported_isas()[-1])
    assert len(set(results)) == 1, results


def test_global_norm_extremes():
    # float64 squares that overflow or underflow in double: the scaled second pass
    assert kernels.global_norm(np.array([3e200, -4e200, 0.0])) == pytest.approx(5e200, rel=1e-15)
    assert kernels.global_norm(np.array([3e-200, 0.0, -4e-200])) == pytest.approx(5e-200,
                                                                                  rel=1e-15)
    assert np.isinf(kernels.global_norm(np.array([1.5e308, 1.5e308])))  # above DBL_MAX
    # float32 squares cannot overflow in double
    big = np.array([3e38, 3e38], np.float32)
    assert kernels.global_norm(big) == pytest.approx(np.sqrt(2) * 3e38, rel=1e-7)
    assert np.isnan(kernels.global_norm(np.array([1.0, np.nan, np.inf])))
    assert kernels.global_norm(np.array([1.0, -np.inf])) == np.inf
    assert kernels.global_norm(np.zeros((0, 3))) == 0.0
    assert kernels.global_norm(np.zeros(5, np.float32)) == 0.0


def test_clip_by_global_norm(isa, dtype, rng):
    g = rng.normal(size=(30, 7)).astype(dtype)
    before = f64(g)
    norm = kernels.clip_by_global_norm(g, max_norm=1.5)
    np.testing.assert_allclose(norm, np.sqrt(np.sum(before ** 2)), rtol=1e-13)
    assert_close(g, before * (1.5 / norm), dtype)
    np.testing.assert_allclose(kernels.global_norm(g), 1.5, rtol=10 * RTOL[dtype])
    # under the limit: unchanged, bitwise
    unchanged = g.copy()
    assert kernels.clip_by_global_norm(g, max_norm=2.0) == pytest.approx(1.5, rel=1e-6)
    np.testing.assert_array_equal(g, unchanged)


def test_clip_leaves_nan_and_inf_gradients():
    for bad in (np.nan, np.inf):
        g = np.array([1.0, bad, 3.0])
        norm = kernels.clip_by_global_norm(g, max_norm=0.1)
        assert np.isnan(norm) if np.isnan(bad) else norm == np.inf
        assert g[0] == 1.0 and g[2] == 3.0


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_clip_matches_torch(rng, dt):
    torch = pytest.importorskip("torch")
    g = (rng.normal(size=200) * 3).astype(dt)
    tg = torch.nn.Parameter(torch.zeros(200, dtype=getattr(torch, np.dtype(dt).name)))
    tg.grad = torch.tensor(g.copy())
    torch_norm = float(torch.nn.utils.clip_grad_norm_([tg], max_norm=2.0))
    norm = kernels.clip_by_global_norm(g, max_norm=2.0)
    # torch sums in the tensor's dtype; ffnc in double
    np.testing.assert_allclose(norm, torch_norm, rtol=1e-12 if dt == np.float64 else 1e-6)
    # torch divides by norm + 1e-6: a relative difference of 1e-6 / norm in the factor
    np.testing.assert_allclose(g, tg.grad.numpy(), rtol=2e-6 / norm + RTOL[dt])


# ---- NaN, threads ----------------------------------------------------------------------------


def _run_all(p, g, velocity, m, v):
    kernels.sgd_update(p, g, lr=0.1, weight_decay=0.01)
    kernels.momentum_update(p, g, velocity, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    kernels.adam_update(p, g, m, v, step=1, lr=1e-2, weight_decay=0.01)
    kernels.adam_update(p, g, m, v, step=2, lr=1e-2, weight_decay=0.01, decoupled=True)
    # RMSprop reuses the buffers: v (>= 0) as square_avg, m and velocity as the others
    kernels.rmsprop_update(p, g, v, m, velocity, lr=1e-3, weight_decay=0.01, momentum=0.5,
                           centered=True)


def test_nan_gradient_propagates_to_its_element_only(isa, dtype):
    g = np.full(11, 0.5, dtype)
    g[4] = np.nan
    p = np.ones(11, dtype)
    velocity, m, v = (np.zeros(11, dtype) for _ in range(3))
    _run_all(p, g, velocity, m, v)
    for a in (p, velocity, m, v):
        assert np.isnan(a[4])
        assert np.isfinite(np.delete(a, 4)).all()
    # the other elements are updated as if the NaN were not there
    p_ok = np.ones(11, dtype)
    state_ok = [np.zeros(11, dtype) for _ in range(3)]
    _run_all(p_ok, np.full(11, 0.5, dtype), *state_ok)
    np.testing.assert_array_equal(np.delete(p, 4), np.delete(p_ok, 4))


def test_one_and_two_threads_agree_bitwise(restore_threads, rng):
    p0 = rng.normal(size=1 << 17)
    g = rng.normal(size=1 << 17)
    results = []
    for threads in (1, 2):
        ffnc.set_num_threads(threads)
        p = p0.copy()
        velocity, m, v = (np.zeros_like(p0) for _ in range(3))
        _run_all(p, g, velocity, m, v)
        results.append((p, velocity, m, v))
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


# ---- argument checks -------------------------------------------------------------------------


def _bad_calls():
    """(description, call(p, g, s1, s2), exception, message) for arrays p, g, s1, s2 of shape (4,),
    float64."""
    sgd, mom, adam = kernels.sgd_update, kernels.momentum_update, kernels.adam_update
    rms, clip, norm = kernels.rmsprop_update, kernels.clip_by_global_norm, kernels.global_norm
    ro = np.ones(4)
    ro.flags.writeable = False
    f32 = np.ones(4, np.float32)
    return [
        # arrays
        ("param not an array", lambda p, g, s1, s2: sgd([1.0] * 4, g, lr=0.1),
         TypeError, "param must be a numpy.ndarray"),
        ("int param", lambda p, g, s1, s2: sgd(np.ones(4, np.int64), g, lr=0.1),
         TypeError, "param must have dtype float32 or float64"),
        ("float32 grad", lambda p, g, s1, s2: sgd(p, f32, lr=0.1),
         TypeError, "grad has dtype float32 but param has dtype float64"),
        ("float32 m", lambda p, g, s1, s2: adam(p, g, f32, s2, step=1),
         TypeError, "m has dtype float32"),
        ("grad shape", lambda p, g, s1, s2: sgd(p, np.ones(5), lr=0.1),
         ValueError, r"grad has shape \(5,\) but param has shape \(4,\)"),
        ("velocity shape", lambda p, g, s1, s2: mom(p, g, np.ones((2, 2)), lr=0.1),
         ValueError, r"velocity has shape \(2, 2\)"),
        ("strided param", lambda p, g, s1, s2: sgd(np.ones(8)[::2], g, lr=0.1),
         ValueError, "param must be C-contiguous"),
        ("strided v", lambda p, g, s1, s2: adam(p, g, s1, np.ones(8)[::2], step=1),
         ValueError, "v must be C-contiguous"),
        ("read-only param", lambda p, g, s1, s2: sgd(ro, g, lr=0.1),
         ValueError, "param is read-only"),
        ("read-only velocity", lambda p, g, s1, s2: mom(p, g, ro, lr=0.1),
         ValueError, "velocity is read-only"),
        ("read-only v", lambda p, g, s1, s2: adam(p, g, s1, ro, step=1),
         ValueError, "v is read-only"),
        # aliasing
        ("grad is param", lambda p, g, s1, s2: sgd(p, p, lr=0.1),
         ValueError, "grad must not share memory with param"),
        ("velocity is grad", lambda p, g, s1, s2: mom(p, g, g, lr=0.1),
         ValueError, "velocity must not share memory with grad"),
        ("v is m", lambda p, g, s1, s2: adam(p, g, s1, s1, step=1),
         ValueError, "v must not share memory with m"),
        ("m overlaps param", lambda p, g, s1, s2: adam(_BUF[:4], g, _BUF[2:6], s2, step=1),
         ValueError, "m must not share memory with param"),
        # hyper-parameters
        ("negative lr", lambda p, g, s1, s2: sgd(p, g, lr=-0.1),
         ValueError, r"lr must be >= 0, got -0\.1"),
        ("NaN lr", lambda p, g, s1, s2: mom(p, g, s1, lr=float("nan")),
         ValueError, "lr must be finite"),
        ("infinite lr", lambda p, g, s1, s2: adam(p, g, s1, s2, step=1, lr=np.inf),
         ValueError, "lr must be finite"),
        ("bool lr", lambda p, g, s1, s2: sgd(p, g, lr=True),
         TypeError, "lr must be a real number, got bool"),
        ("string lr", lambda p, g, s1, s2: sgd(p, g, lr="0.1"),
         TypeError, "lr must be a real number, got str"),
        ("lr overflowing float32", lambda p, g, s1, s2: sgd(f32, f32.copy(), lr=1e39),
         ValueError, "lr=1e.39 overflows float32"),
        ("negative weight_decay", lambda p, g, s1, s2: sgd(p, g, lr=0.1, weight_decay=-1e-4),
         ValueError, "weight_decay must be >= 0"),
        ("momentum 1", lambda p, g, s1, s2: mom(p, g, s1, lr=0.1, momentum=1.0),
         ValueError, r"momentum must be in \[0, 1\), got 1\.0"),
        ("negative momentum", lambda p, g, s1, s2: mom(p, g, s1, lr=0.1, momentum=-0.5),
         ValueError, r"momentum must be in \[0, 1\)"),
        ("bool momentum", lambda p, g, s1, s2: mom(p, g, s1, lr=0.1, momentum=False),
         TypeError, "momentum must be a real number, got bool"),
        ("int nesterov", lambda p, g, s1, s2: mom(p, g, s1, lr=0.1, nesterov=1),
         TypeError, "nesterov must be a bool, got int"),
        ("step 0", lambda p, g, s1, s2: adam(p, g, s1, s2, step=0),
         ValueError, "step must be >= 1"),
        ("float step", lambda p, g, s1, s2: adam(p, g, s1, s2, step=1.0),
         TypeError, "step must be an int"),
        ("bool step", lambda p, g, s1, s2: adam(p, g, s1, s2, step=True),
         TypeError, "step must be an int.*got bool"),
        ("huge step", lambda p, g, s1, s2: adam(p, g, s1, s2, step=2**63),
         ValueError, r"step must be < 2\*\*63"),
        ("beta1 1", lambda p, g, s1, s2: adam(p, g, s1, s2, step=1, beta1=1),
         ValueError, r"beta1 must be in \[0, 1\)"),
        ("negative beta2", lambda p, g, s1, s2: adam(p, g, s1, s2, step=1, beta2=-0.1),
         ValueError, r"beta2 must be in \[0, 1\)"),
        ("NaN beta2", lambda p, g, s1, s2: adam(p, g, s1, s2, step=1, beta2=np.nan),
         ValueError, "beta2 must be finite"),
        ("eps 0", lambda p, g, s1, s2: adam(p, g, s1, s2, step=1, eps=0.0),
         ValueError, "eps must be > 0, got 0.0"),
        ("negative eps", lambda p, g, s1, s2: adam(p, g, s1, s2, step=1, eps=-1e-8),
         ValueError, "eps must be > 0"),
        ("eps 0 in float32", lambda p, g, s1, s2: adam(f32, f32.copy(), f32.copy(), f32.copy(),
                                                       step=1, eps=1e-50),
         ValueError, "eps=1e-50 rounds to 0 in float32"),
        ("string decoupled", lambda p, g, s1, s2: adam(p, g, s1, s2, step=1, decoupled="yes"),
         TypeError, "decoupled must be a bool, got str"),
        # rmsprop
        ("float32 square_avg", lambda p, g, s1, s2: rms(p, g, f32),
         TypeError, "square_avg has dtype float32"),
        ("read-only square_avg", lambda p, g, s1, s2: rms(p, g, ro),
         ValueError, "square_avg is read-only"),
        ("square_avg is grad", lambda p, g, s1, s2: rms(p, g, g),
         ValueError, "square_avg must not share memory with grad"),
        ("momentum_buffer missing", lambda p, g, s1, s2: rms(p, g, s1, momentum=0.9),
         ValueError, "momentum=0.9 needs a momentum_buffer"),
        ("grad_avg missing", lambda p, g, s1, s2: rms(p, g, s1, centered=True),
         ValueError, "centered=True needs a grad_avg"),
        ("grad_avg shape", lambda p, g, s1, s2: rms(p, g, s1, None, np.zeros(3), centered=True),
         ValueError, r"grad_avg has shape \(3,\)"),
        ("grad_avg is square_avg", lambda p, g, s1, s2: rms(p, g, s1, None, s1, centered=True),
         ValueError, "grad_avg must not share memory with square_avg"),
        ("alpha 1", lambda p, g, s1, s2: rms(p, g, s1, alpha=1.0),
         ValueError, r"alpha must be in \[0, 1\), got 1\.0"),
        ("NaN alpha", lambda p, g, s1, s2: rms(p, g, s1, alpha=np.nan),
         ValueError, "alpha must be finite"),
        ("rmsprop momentum 1", lambda p, g, s1, s2: rms(p, g, s1, s2, momentum=1),
         ValueError, r"momentum must be in \[0, 1\)"),
        ("rmsprop eps 0", lambda p, g, s1, s2: rms(p, g, s1, eps=0),
         ValueError, "eps must be > 0"),
        ("rmsprop negative lr", lambda p, g, s1, s2: rms(p, g, s1, lr=-1e-3),
         ValueError, "lr must be >= 0"),
        ("rmsprop negative weight_decay", lambda p, g, s1, s2: rms(p, g, s1, weight_decay=-1.0),
         ValueError, "weight_decay must be >= 0"),
        ("int centered", lambda p, g, s1, s2: rms(p, g, s1, s2, centered=1),
         TypeError, "centered must be a bool, got int"),
        # global norm and clipping
        ("norm of a list", lambda p, g, s1, s2: norm([1.0, 2.0]),
         TypeError, "x must be a numpy.ndarray"),
        ("norm of ints", lambda p, g, s1, s2: norm(np.ones(3, np.int32)),
         TypeError, "x must have dtype float32 or float64"),
        ("norm of a strided array", lambda p, g, s1, s2: norm(np.ones(8)[::2]),
         ValueError, "x must be C-contiguous"),
        ("clip read-only", lambda p, g, s1, s2: clip(ro, max_norm=1.0),
         ValueError, "grad is read-only"),
        ("clip max_norm 0", lambda p, g, s1, s2: clip(p, max_norm=0.0),
         ValueError, "max_norm must be > 0, got 0.0"),
        ("clip negative max_norm", lambda p, g, s1, s2: clip(p, max_norm=-1),
         ValueError, "max_norm must be > 0"),
        ("clip NaN max_norm", lambda p, g, s1, s2: clip(p, max_norm=np.nan),
         ValueError, "max_norm must be finite"),
        ("clip infinite max_norm", lambda p, g, s1, s2: clip(p, max_norm=np.inf),
         ValueError, "max_norm must be finite"),
        ("clip string max_norm", lambda p, g, s1, s2: clip(p, max_norm="1"),
         TypeError, "max_norm must be a real number, got str"),
    ]


_BUF = np.zeros(8)
_BAD = _bad_calls()


@pytest.mark.parametrize("call, exception, message", [c[1:] for c in _BAD],
                         ids=[c[0] for c in _BAD])
def test_bad_input_is_rejected_naming_the_argument(call, exception, message):
    p, g, s1, s2 = np.ones(4), np.full(4, 0.5), np.zeros(4), np.zeros(4)
    with pytest.raises(exception, match=message):
        call(p, g, s1, s2)
    # nothing was written
    np.testing.assert_array_equal(p, 1)
    np.testing.assert_array_equal(s1, 0)
    np.testing.assert_array_equal(s2, 0)
    np.testing.assert_array_equal(_BUF, 0)


def test_read_only_grad_is_fine():
    g = np.full(4, 0.5)
    g.flags.writeable = False
    p = np.ones(4)
    kernels.sgd_update(p, g, lr=0.1)
    kernels.adam_update(p, g, np.zeros(4), np.zeros(4), step=1)


def test_valid_edge_hyperparameters_are_accepted(dtype):
    p = np.ones(3, dtype)
    g = np.full(3, 0.5, dtype)
    kernels.sgd_update(p, g, lr=0, weight_decay=0)
    np.testing.assert_array_equal(p, 1)
    kernels.momentum_update(p, g, np.zeros(3, dtype), lr=np.float32(0.1), momentum=0)
    kernels.adam_update(
        p, g, np.zeros(3, dtype), np.zeros(3, dtype), step=np.int64(2**62), beta1=0, beta2=0,
        decoupled=np.bool_(True),
    )


# ---- convergence ---------------------------------------------------------------------------


QUADRATIC_CURVATURE = np.linspace(1, 10, 50)


def _minimize(dtype, update, iterations, weight_decay=0.0):
    """Runs `update(x, grad, state, t)` on f(x) = 1/2 sum a (x - c)^2 + weight_decay/2 |x|^2
    (the decay term left to the optimizer); returns max |x - argmin|."""
    a = QUADRATIC_CURVATURE.astype(dtype)
    c = np.random.default_rng(7).uniform(-2, 2, size=a.size).astype(dtype)
    x = np.zeros_like(a)
    state = [np.zeros_like(a), np.zeros_like(a)]
    for t in range(1, iterations + 1):
        update(x, a * (x - c), state, t)
    return np.abs(f64(x) - f64(a) * c / (f64(a) + weight_decay)).max()


CONVERGE_TOL = {np.float32: 2e-6, np.float64: 1e-12}
ADAM_ITERATIONS = 1500


def _adam_rate(t):
    """Adam with a constant rate keeps taking ~lr steps near the minimum once v has decayed; the
    usual linear decay of lr to 0 lets it settle."""
    return 0.05 * (1 - (t - 1) / ADAM_ITERATIONS)


@pytest.mark.parametrize(
    "update, iterations, weight_decay",
    [
        pytest.param(lambda x, g, s, t: kernels.sgd_update(x, g, lr=0.1), 400, 0.0, id="sgd"),
        pytest.param(
            lambda x, g, s, t: kernels.sgd_update(x, g, lr=0.1, weight_decay=0.5), 400, 0.5,
            id="sgd+l2",
        ),
        pytest.param(
            lambda x, g, s, t: kernels.momentum_update(x, g, s[0], lr=0.1, momentum=0.5), 200, 0.0,
            id="momentum",
        ),
        pytest.param(
            lambda x, g, s, t: kernels.momentum_update(
                x, g, s[0], lr=0.1, momentum=0.5, nesterov=True
            ),
            200, 0.0, id="nesterov",
        ),
        pytest.param(
            lambda x, g, s, t: kernels.adam_update(x, g, s[0], s[1], step=t, lr=_adam_rate(t)),
            ADAM_ITERATIONS, 0.0, id="adam",
        ),
        pytest.param(
            lambda x, g, s, t: kernels.adam_update(
                x, g, s[0], s[1], step=t, lr=_adam_rate(t), weight_decay=0.5
            ),
            ADAM_ITERATIONS, 0.5, id="adam+l2",
        ),
        pytest.param(
            lambda x, g, s, t: kernels.adam_update(
                x, g, s[0], s[1], step=t, lr=_adam_rate(t), decoupled=True
            ),
            ADAM_ITERATIONS, 0.0, id="adamw-no-decay",
        ),
        pytest.param(
            lambda x, g, s, t: kernels.rmsprop_update(x, g, s[0], lr=_adam_rate(t) / 5),
            ADAM_ITERATIONS, 0.0, id="rmsprop",
        ),
        pytest.param(
            lambda x, g, s, t: kernels.rmsprop_update(
                x, g, s[0], None, s[1], lr=_adam_rate(t) / 5, weight_decay=0.5, centered=True
            ),
            ADAM_ITERATIONS, 0.5, id="rmsprop-centered+l2",
        ),
    ],
)
def test_minimizes_a_convex_quadratic(dtype, update, iterations, weight_decay):
    error = _minimize(dtype, update, iterations, weight_decay)
    assert error < CONVERGE_TOL[dtype], f"max |x - x*| = {error:.3g} after {iterations} steps"
