# Activations, prelu and bias (csrc/kernels/activation.c). Included by _core.pyx.

_ACTIVATIONS = {
    "identity": FFNC_ACT_IDENTITY,
    "relu": FFNC_ACT_RELU,
    "leaky_relu": FFNC_ACT_LEAKY_RELU,
    "abs": FFNC_ACT_ABS,
    "tanh": FFNC_ACT_TANH,
    "sigmoid": FFNC_ACT_SIGMOID,
    "softplus": FFNC_ACT_SOFTPLUS,
    "hard_tanh": FFNC_ACT_HARD_TANH,
    "elu": FFNC_ACT_ELU,
    "gelu": FFNC_ACT_GELU,
}
_DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}

ACTIVATIONS = tuple(_ACTIVATIONS)


cdef ffnc_activation _activation_code(object activation) except *:
    try:
        return _ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation must be one of {', '.join(_ACTIVATIONS)}; got {activation!r}") from None


cdef double _activation_alpha(object activation, object alpha) except? -1.0:
    if activation not in _DEFAULT_ALPHA:
        if alpha is not None:
            raise ValueError(f"activation {activation!r} takes no alpha (got alpha={alpha!r})")
        return 0.0
    if alpha is None:
        return _DEFAULT_ALPHA[activation]
    return _nonnegative(alpha, "alpha")


def activation_saves(activation: str) -> str:
    """What the backward of `activation` needs from its forward: 'output' or 'input'.

    relu, leaky_relu, tanh, sigmoid, hard_tanh, elu and identity differentiate from their
    output, so a fused forward kernel keeps only that; abs, softplus and gelu need the input.
    """
    return "output" if ffnc_activation_backward_uses_dst(_activation_code(activation)) else "input"


def activation_forward(x, activation: str = "relu", *, alpha=None, out=None):
    """Applies `activation` element-wise: returns act(x) (in `out` when given; out may be x).

    activation: one of ACTIVATIONS. alpha: the slope of leaky_relu (default 0.01) or the scale
    of elu (default 1.0), >= 0. NaN inputs give NaN outputs.
    """
    cdef cnp.ndarray xa = _float_array(x, "x")
    cdef ffnc_activation act = _activation_code(activation)
    cdef double a = _in_dtype(_activation_alpha(activation, alpha), "alpha", xa)
    cdef cnp.ndarray o = _output(out, "out", xa, "x")
    _no_partial_overlap(o, "out", xa, "x", True)
    cdef ffnc_dtype dt = _dtype_of(xa)
    cdef size_t n = xa.size
    cdef const void *src = cnp.PyArray_DATA(xa)
    cdef void *dst = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_activation_forward(dt, act, a, n, src, dst)
    _check(s, "activation_forward")
    return o


def activation_backward(diff_y, saved, activation: str = "relu", *, alpha=None, out=None):
    """The gradient with respect to the activation's input: diff_y * act'(x).

    saved: the forward output y when activation_saves(activation) == 'output', else the forward
    input x. The result goes to `out` when given (out may be diff_y).
    """
    cdef cnp.ndarray g = _float_array(diff_y, "diff_y")
    cdef cnp.ndarray sv = _float_array(saved, "saved")
    _same_dtype(g, "diff_y", sv, "saved")
    _same_shape(g, "diff_y", sv, "saved")
    cdef ffnc_activation act = _activation_code(activation)
    cdef double a = _in_dtype(_activation_alpha(activation, alpha), "alpha", g)
    cdef cnp.ndarray o = _output(out, "out", g, "diff_y")
    _no_partial_overlap(o, "out", g, "diff_y", True)
    _no_partial_overlap(o, "out", sv, "saved", True)
    cdef ffnc_dtype dt = _dtype_of(g)
    cdef size_t n = g.size
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef const void *sp = cnp.PyArray_DATA(sv)
    cdef void *dst = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_activation_backward(dt, act, a, n, gp, sp, dst)
    _check(s, "activation_backward")
    return o


cdef cnp.ndarray _prelu_alpha(object alpha, cnp.ndarray x):
    cdef cnp.ndarray al = _float_array(alpha, "alpha")
    _same_dtype(x, "x", al, "alpha")
    if al.ndim != 1 or (al.shape[0] != 1 and al.shape[0] != x.shape[1]):
        raise ValueError(f"alpha must have shape (1,) (shared slope) or ({x.shape[1]},) "
                         f"(one per unit of x with shape {(<object>x).shape}), got {(<object>al).shape}")
    return al


def prelu_forward(x, alpha, *, out=None):
    """Parametric relu: x > 0 ? x : alpha * x over a (rows, units) matrix.

    alpha: shape (1,) for one shared slope, or (units,) for one slope per unit.
    """
    cdef cnp.ndarray xa = _matrix(x, "x")
    cdef cnp.ndarray al = _prelu_alpha(alpha, xa)
    cdef cnp.ndarray o = _output(out, "out", xa, "x")
    _no_partial_overlap(o, "out", xa, "x", True)
    _no_partial_overlap(o, "out", al, "alpha", False)
    cdef ffnc_dtype dt = _dtype_of(xa)
    cdef size_t rows = xa.shape[0], cols = xa.shape[1], n_alpha = al.shape[0]
    cdef const void *src = cnp.PyArray_DATA(xa)
    cdef const void *ap = cnp.PyArray_DATA(al)
    cdef void *dst = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_prelu_forward(dt, rows, cols, src, ap, n_alpha, dst)
    _check(s, "prelu_forward")
    return o


@cython.annotation_typing(False)
def prelu_backward(diff_y, x, alpha, *, diff_x=None, diff_alpha=None, accumulate: bool = False):
    """Gradients of prelu: returns (diff_x, diff_alpha).

    x is the forward input. With accumulate=True the slope gradient is added to `diff_alpha`
    (which must then be given) instead of overwriting it.
    """
    cdef cnp.ndarray g = _matrix(diff_y, "diff_y")
    cdef cnp.ndarray xa = _matrix(x, "x")
    _same_dtype(g, "diff_y", xa, "x")
    _same_shape(g, "diff_y", xa, "x")
    cdef cnp.ndarray al = _prelu_alpha(alpha, xa)
    cdef cnp.ndarray dx = _output(diff_x, "diff_x", g, "diff_y")
    accumulate = _flag(accumulate, "accumulate")
    if accumulate and diff_alpha is None:
        raise ValueError("accumulate=True needs the diff_alpha array to add to")
    cdef cnp.ndarray da = _output(diff_alpha, "diff_alpha", al, "alpha")
    _no_partial_overlap(dx, "diff_x", g, "diff_y", True)
    _no_partial_overlap(dx, "diff_x", xa, "x", False)
    _no_partial_overlap(dx, "diff_x", al, "alpha", False)
    for arr, arr_name in ((g, "diff_y"), (xa, "x"), (al, "alpha"), (dx, "diff_x")):
        _no_partial_overlap(da, "diff_alpha", arr, arr_name, False)
    cdef ffnc_dtype dt = _dtype_of(xa)
    cdef size_t rows = xa.shape[0], cols = xa.shape[1], n_alpha = al.shape[0]
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef const void *xp = cnp.PyArray_DATA(xa)
    cdef const void *ap = cnp.PyArray_DATA(al)
    cdef void *dxp = cnp.PyArray_DATA(dx)
    cdef void *dap = cnp.PyArray_DATA(da)
    cdef int acc = 1 if accumulate else 0
    cdef ffnc_status s
    with nogil:
        s = ffnc_prelu_backward(dt, rows, cols, gp, xp, ap, n_alpha, dxp, dap, acc)
    _check(s, "prelu_backward")
    return dx, da


def bias_forward(x, bias, *, out=None):
    """Adds bias (shape (cols,)) to every row of the (rows, cols) matrix x."""
    cdef cnp.ndarray xa = _matrix(x, "x")
    cdef cnp.ndarray b = _float_array(bias, "bias")
    _same_dtype(xa, "x", b, "bias")
    if b.ndim != 1 or b.shape[0] != xa.shape[1]:
        raise ValueError(f"bias must have shape ({xa.shape[1]},) to match x with shape "
                         f"{(<object>xa).shape}, got {(<object>b).shape}")
    cdef cnp.ndarray o = _output(out, "out", xa, "x")
    _no_partial_overlap(o, "out", xa, "x", True)
    _no_partial_overlap(o, "out", b, "bias", False)
    cdef ffnc_dtype dt = _dtype_of(xa)
    cdef size_t rows = xa.shape[0], cols = xa.shape[1]
    cdef const void *src = cnp.PyArray_DATA(xa)
    cdef const void *bp = cnp.PyArray_DATA(b)
    cdef void *dst = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_bias_forward(dt, rows, cols, src, bp, dst)
    _check(s, "bias_forward")
    return o


@cython.annotation_typing(False)
def bias_backward(diff_y, *, out=None, accumulate: bool = False):
    """The bias gradient: column sums of diff_y (rows summed in order, any thread count).

    With accumulate=True the sums are added to `out` (which must then be given).
    """
    cdef cnp.ndarray g = _matrix(diff_y, "diff_y")
    cdef cnp.ndarray o
    accumulate = _flag(accumulate, "accumulate")
    if out is None:
        if accumulate:
            raise ValueError("accumulate=True needs the out array to add to")
        o = np.empty(g.shape[1], dtype=g.dtype)
    else:
        o = _float_array(out, "out")
        _same_dtype(g, "diff_y", o, "out")
        if o.ndim != 1 or o.shape[0] != g.shape[1]:
            raise ValueError(f"out must have shape ({g.shape[1]},) for diff_y with shape "
                             f"{(<object>g).shape}, got {(<object>o).shape}")
        _writable(o, "out")
        _no_partial_overlap(o, "out", g, "diff_y", False)
    cdef ffnc_dtype dt = _dtype_of(g)
    cdef size_t rows = g.shape[0], cols = g.shape[1]
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef void *dst = cnp.PyArray_DATA(o)
    cdef int acc = 1 if accumulate else 0
    cdef ffnc_status s
    with nogil:
        s = ffnc_bias_backward(dt, rows, cols, gp, dst, acc)
    _check(s, "bias_backward")
    return o
