# Optimizer updates: SGD, momentum (classic and Nesterov), Adam and AdamW, RMSprop, and gradient
# clipping by global norm (csrc/kernels/optim.c). Included by _core.pyx.
#
# Each update works in place on flat buffers: param, grad and the optimizer state (velocity, or
# m and v) are arrays of one float dtype and one shape (any shape: only the elements count),
# C-contiguous, with no two sharing memory. One pass over the elements, GIL released; elements
# are independent, so the result is the same on any number of threads.

cdef double _FLOAT32_MAX = 3.4028234663852886e38


cdef cnp.ndarray _optim_param(object param):
    cdef cnp.ndarray p = _float_array(param, "param")
    _writable(p, "param")
    return p


cdef cnp.ndarray _optim_like(object a, str name, cnp.ndarray param, bint written):
    """`a` as an array matching param's dtype and shape (writable when the update writes it)."""
    cdef cnp.ndarray arr = _float_array(a, name)
    _same_dtype(param, "param", arr, name)
    _same_shape(param, "param", arr, name)
    if written:
        _writable(arr, name)
    return arr


cdef int _optim_disjoint(list arrays, list names) except -1:
    """No two of the arrays may share memory: each element is read and written once."""
    cdef Py_ssize_t i, j
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            _no_partial_overlap(arrays[j], names[j], arrays[i], names[i], False)
    return 0


cdef double _optim_scalar(object value, str name, cnp.ndarray param, bint positive) except? -1.0:
    """A hyper-parameter >= 0 (or > 0), finite also in param's dtype."""
    cdef double v = _finite(value, name)
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    if cnp.PyArray_TYPE(param) == cnp.NPY_FLOAT32:
        if v > _FLOAT32_MAX:
            raise ValueError(f"{name}={v} overflows float32, the dtype of param")
        if positive and <float>v == 0:
            raise ValueError(f"{name}={v} rounds to 0 in float32, the dtype of param; "
                             f"use at least 1e-45")
    return v


cdef double _optim_rate(object value, str name) except? -1.0:
    """momentum, beta1, beta2: a finite number in [0, 1)."""
    cdef double r = _finite(value, name)
    if not (0.0 <= r < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {r}")
    return r


cdef int _optim_flag(object value, str name) except -1:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return 1 if value else 0


cdef int64_t _optim_step(object step) except -1:
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step must be an int (the number of updates so far, this one "
                        f"included), got {type(step).__name__}")
    if step < 1:
        raise ValueError(f"step must be >= 1 (the number of updates so far, this one "
                         f"included), got {step}")
    if step > 9223372036854775807:
        raise ValueError(f"step must be < 2**63, got {step}")
    return <int64_t>step


def sgd_update(param, grad, *, lr, weight_decay=0.0) -> None:
    """Plain SGD, in place: param -= lr * (grad + weight_decay * param).

    param (updated) and grad: float arrays of one dtype and shape, C-contiguous, not sharing
    memory. lr >= 0 and weight_decay >= 0 (L2 decay; 0 adds no term). Returns None.
    """
    cdef cnp.ndarray p = _optim_param(param)
    cdef cnp.ndarray g = _optim_like(grad, "grad", p, False)
    _optim_disjoint([p, g], ["param", "grad"])
    cdef double rate = _optim_scalar(lr, "lr", p, False)
    cdef double decay = _optim_scalar(weight_decay, "weight_decay", p, False)
    cdef ffnc_dtype dt = _dtype_of(p)
    cdef size_t n = p.size
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef ffnc_status s
    with nogil:
        s = ffnc_sgd_update(dt, n, pp, gp, rate, decay)
    _check(s, "sgd_update")


def momentum_update(param, grad, velocity, *, lr, momentum=0.9, weight_decay=0.0,
                    nesterov=False) -> None:
    """SGD with heavy-ball momentum, in place, as torch.optim.SGD (no dampening):

        d = grad + weight_decay * param
        velocity = momentum * velocity + d
        param -= lr * velocity                    (classic)
        param -= lr * (d + momentum * velocity)   (nesterov=True)

    velocity (updated) starts as zeros shaped like param. param, grad, velocity: float arrays of
    one dtype and shape, C-contiguous, no two sharing memory. lr >= 0, 0 <= momentum < 1,
    weight_decay >= 0 (0 adds no term). Returns None.
    """
    cdef cnp.ndarray p = _optim_param(param)
    cdef cnp.ndarray g = _optim_like(grad, "grad", p, False)
    cdef cnp.ndarray vel = _optim_like(velocity, "velocity", p, True)
    _optim_disjoint([p, g, vel], ["param", "grad", "velocity"])
    cdef double rate = _optim_scalar(lr, "lr", p, False)
    cdef double mu = _optim_rate(momentum, "momentum")
    cdef double decay = _optim_scalar(weight_decay, "weight_decay", p, False)
    cdef int nest = _optim_flag(nesterov, "nesterov")
    cdef ffnc_dtype dt = _dtype_of(p)
    cdef size_t n = p.size
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef void *vp = cnp.PyArray_DATA(vel)
    cdef ffnc_status s
    with nogil:
        s = ffnc_momentum_update(dt, n, pp, gp, vp, rate, mu, decay, nest)
    _check(s, "momentum_update")


def adam_update(param, grad, m, v, *, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, decoupled=False) -> None:
    """One Adam (or AdamW) update, in place, bias-corrected as torch.optim.Adam / AdamW:

        decoupled=True (AdamW):   param -= lr * weight_decay * param
        decoupled=False (Adam):   grad' = grad + weight_decay * param   (else grad' = grad)
        m = beta1 * m + (1 - beta1) * grad'
        v = beta2 * v + (1 - beta2) * grad'**2
        param -= lr * (m / (1 - beta1**step)) / (sqrt(v / (1 - beta2**step)) + eps)

    m and v (updated) start as zeros shaped like param; step >= 1 is the number of updates so
    far, this one included (1 on the first call). param, grad, m, v: float arrays of one dtype
    and shape, C-contiguous, no two sharing memory. lr >= 0, 0 <= beta1, beta2 < 1, eps > 0,
    weight_decay >= 0 (0 adds no term). Returns None.
    """
    cdef cnp.ndarray p = _optim_param(param)
    cdef cnp.ndarray g = _optim_like(grad, "grad", p, False)
    cdef cnp.ndarray ma = _optim_like(m, "m", p, True)
    cdef cnp.ndarray va = _optim_like(v, "v", p, True)
    _optim_disjoint([p, g, ma, va], ["param", "grad", "m", "v"])
    cdef int64_t t = _optim_step(step)
    cdef double rate = _optim_scalar(lr, "lr", p, False)
    cdef double b1 = _optim_rate(beta1, "beta1")
    cdef double b2 = _optim_rate(beta2, "beta2")
    cdef double epsilon = _optim_scalar(eps, "eps", p, True)
    cdef double decay = _optim_scalar(weight_decay, "weight_decay", p, False)
    cdef int decoupled_decay = _optim_flag(decoupled, "decoupled")
    cdef ffnc_dtype dt = _dtype_of(p)
    cdef size_t n = p.size
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef void *mp = cnp.PyArray_DATA(ma)
    cdef void *vp = cnp.PyArray_DATA(va)
    cdef ffnc_status s
    with nogil:
        s = ffnc_adam_update(dt, n, pp, gp, mp, vp, t, rate, b1, b2, epsilon, decay,
                             decoupled_decay)
    _check(s, "adam_update")


def rmsprop_update(param, grad, square_avg, momentum_buffer=None, grad_avg=None, *, lr=1e-2,
                   alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                   centered=False) -> None:
    """One RMSprop update, in place, as torch.optim.RMSprop:

        grad' = grad + weight_decay * param            (weight_decay > 0; else grad' = grad)
        square_avg = alpha * square_avg + (1 - alpha) * grad'**2
        centered:  grad_avg = alpha * grad_avg + (1 - alpha) * grad'
                   den = sqrt(max(square_avg - grad_avg**2, 0)) + eps
        else:      den = sqrt(square_avg) + eps
        momentum > 0:  momentum_buffer = momentum * momentum_buffer + grad' / den
                       param -= lr * momentum_buffer
        else:          param -= lr * grad' / den

    The state arrays (updated) start as zeros shaped like param: square_avg always,
    momentum_buffer when momentum > 0 (required then, else ignored and may be None), grad_avg
    when centered (likewise). The max(., 0) only matters where rounding makes the variance
    negative, where PyTorch gives NaN. All arrays: one float dtype and shape, C-contiguous, no
    two sharing memory. lr >= 0, 0 <= alpha < 1, eps > 0, weight_decay >= 0, 0 <= momentum < 1.
    Returns None.
    """
    cdef cnp.ndarray p = _optim_param(param)
    cdef cnp.ndarray g = _optim_like(grad, "grad", p, False)
    cdef cnp.ndarray sq = _optim_like(square_avg, "square_avg", p, True)
    cdef double rate = _optim_scalar(lr, "lr", p, False)
    cdef double a = _optim_rate(alpha, "alpha")
    cdef double epsilon = _optim_scalar(eps, "eps", p, True)
    cdef double decay = _optim_scalar(weight_decay, "weight_decay", p, False)
    cdef double mu = _optim_rate(momentum, "momentum")
    cdef int center = _optim_flag(centered, "centered")
    arrays, names = [p, g, sq], ["param", "grad", "square_avg"]
    cdef cnp.ndarray buf = None, avg = None
    if mu > 0:
        if momentum_buffer is None:
            raise ValueError(f"momentum={mu} needs a momentum_buffer (zeros shaped like param "
                             f"before the first update)")
        buf = _optim_like(momentum_buffer, "momentum_buffer", p, True)
        arrays.append(buf)
        names.append("momentum_buffer")
    if center:
        if grad_avg is None:
            raise ValueError("centered=True needs a grad_avg (zeros shaped like param before "
                             "the first update)")
        avg = _optim_like(grad_avg, "grad_avg", p, True)
        arrays.append(avg)
        names.append("grad_avg")
    _optim_disjoint(arrays, names)
    cdef ffnc_dtype dt = _dtype_of(p)
    cdef size_t n = p.size
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef void *sp = cnp.PyArray_DATA(sq)
    cdef void *bp = cnp.PyArray_DATA(buf) if buf is not None else NULL
    cdef void *ap = cnp.PyArray_DATA(avg) if avg is not None else NULL
    cdef ffnc_status s
    with nogil:
        s = ffnc_rmsprop_update(dt, n, pp, gp, sp, bp, ap, rate, a, epsilon, decay, mu, center)
    _check(s, "rmsprop_update")


def global_norm(x) -> float:
    """The L2 norm sqrt(sum(x**2)) of a float array (any shape, C-contiguous), accumulated in
    double in a fixed order: bitwise the same on any thread count and ISA path. Accurate also
    where the squares would overflow or underflow in double; NaN if x holds a NaN, else inf if
    it holds an infinity; 0.0 when empty."""
    cdef cnp.ndarray a = _float_array(x, "x")
    cdef ffnc_dtype dt = _dtype_of(a)
    cdef size_t n = a.size
    cdef const void *ap = cnp.PyArray_DATA(a)
    cdef double norm = 0
    cdef ffnc_status s
    with nogil:
        s = ffnc_global_norm(dt, n, ap, &norm)
    _check(s, "global_norm")
    return norm


def clip_by_global_norm(grad, *, max_norm) -> float:
    """Gradient clipping by global norm, in place: with N = global_norm(grad), grad is scaled
    by max_norm / N (rounded to grad's dtype) when N > max_norm, and left as it is when
    N <= max_norm or N is NaN or infinite (a NaN guard should report those). Returns N, the norm
    before clipping. max_norm: finite, > 0. torch.nn.utils.clip_grad_norm_ divides by N + 1e-6
    instead of N; otherwise the same."""
    cdef cnp.ndarray g = _float_array(grad, "grad")
    _writable(g, "grad")
    cdef double limit = _finite(max_norm, "max_norm")
    if not limit > 0:
        raise ValueError(f"max_norm must be > 0, got {limit}")
    cdef ffnc_dtype dt = _dtype_of(g)
    cdef size_t n = g.size
    cdef void *gp = cnp.PyArray_DATA(g)
    cdef double norm = 0
    cdef ffnc_status s
    with nogil:
        s = ffnc_clip_by_global_norm(dt, n, gp, limit, &norm)
    _check(s, "clip_by_global_norm")
    return norm
