# Matrix multiply and dense layers (csrc/gemm/, csrc/api/gemm.c). Included by _core.pyx.


cdef cnp.ndarray _result_matrix(object out, str name, tuple shape, cnp.ndarray like,
                                str like_name, tuple origin):
    """A new (rows, cols) array of like's dtype, or the validated user-supplied `out`;
    `origin` holds the (name, array) pairs its shape comes from, for the error message."""
    if out is None:
        nbytes = array_bytes(shape, like.dtype.itemsize)
        if nbytes > MEMORY_LIMIT:
            check_allocation(nbytes, f"{name} with shape {shape} ({like.dtype})")
        return np.empty(shape, dtype=like.dtype)
    cdef cnp.ndarray o = _float_array(out, name)
    _same_dtype(like, like_name, o, name)
    if (<object>o).shape != shape:
        sources = " and ".join(f"{n} with shape {a.shape}" for n, a in origin)
        raise ValueError(f"{name} must have shape {shape} (from {sources}), got "
                         f"{(<object>o).shape}")
    _writable(o, name)
    return o


cdef cnp.ndarray _optional_bias(object bias, cnp.ndarray x, size_t units):
    if bias is None:
        return None
    cdef cnp.ndarray b = _float_array(bias, "bias")
    _same_dtype(x, "x", b, "bias")
    if b.ndim != 1 or <size_t>b.shape[0] != units:
        raise ValueError(f"bias must have shape ({units},) (one value per output unit: x @ "
                         f"weights has {units} columns), got {(<object>b).shape}")
    return b


cdef tuple _dense_shapes(cnp.ndarray x, cnp.ndarray w, bint trans_weights):
    """(m, k, n) of x @ op(weights), or ValueError naming both shapes."""
    cdef size_t m = x.shape[0], k = x.shape[1]
    cdef size_t w_in = w.shape[1] if trans_weights else w.shape[0]
    cdef size_t n = w.shape[0] if trans_weights else w.shape[1]
    if w_in != k:
        layout = "(units, inputs)" if trans_weights else "(inputs, units)"
        raise ValueError(
            f"x with shape {(<object>x).shape} has {k} inputs but weights with shape "
            f"{(<object>w).shape} (layout {layout}, trans_weights={bool(trans_weights)}) "
            f"takes {w_in}")
    return m, k, n


@cython.annotation_typing(False)
def gemm(a, b, *, trans_a: bool = False, trans_b: bool = False, alpha=1.0, beta=0.0, out=None):
    """Matrix product: alpha * op(a) @ op(b) + beta * out, op(x) = x.T when trans_x.

    a, b: 2-D float32 or float64 arrays of one dtype, C-contiguous (a transpose is requested
    with the flags, not with a strided view). beta != 0 adds to `out`, which must then be given;
    beta == 0 overwrites `out` without reading it. `out` must not share memory with a or b.
    Results are bitwise the same for any thread count. Returns `out` (a new array if None).
    """
    cdef cnp.ndarray aa = _matrix(a, "a")
    cdef cnp.ndarray bb = _matrix(b, "b")
    _same_dtype(aa, "a", bb, "b")
    cdef bint ta = _flag(trans_a, "trans_a"), tb = _flag(trans_b, "trans_b")
    cdef size_t m = aa.shape[1] if ta else aa.shape[0]
    cdef size_t k = aa.shape[0] if ta else aa.shape[1]
    cdef size_t kb = bb.shape[1] if tb else bb.shape[0]
    cdef size_t n = bb.shape[0] if tb else bb.shape[1]
    if k != kb:
        raise ValueError(
            f"cannot multiply a{'.T' if ta else ''} (a has shape {(<object>aa).shape}) by "
            f"b{'.T' if tb else ''} (b has shape {(<object>bb).shape}): {k} != {kb}")
    cdef double al = _in_dtype(_finite(alpha, "alpha"), "alpha", aa)
    cdef double be = _in_dtype(_finite(beta, "beta"), "beta", aa)
    if be != 0 and out is None:
        raise ValueError(f"beta={be} adds to out, so out must be given")
    cdef cnp.ndarray o = _result_matrix(out, "out", (m, n), aa, "a", (("a", aa), ("b", bb)))
    _no_partial_overlap(o, "out", aa, "a", False)
    _no_partial_overlap(o, "out", bb, "b", False)
    cdef ffnc_dtype dt = _dtype_of(aa)
    cdef size_t lda = aa.shape[1], ldb = bb.shape[1]
    cdef const void *ap = cnp.PyArray_DATA(aa)
    cdef const void *bp = cnp.PyArray_DATA(bb)
    cdef void *cp = cnp.PyArray_DATA(o)
    cdef int ita = ta, itb = tb
    cdef ffnc_status s
    with nogil:
        s = ffnc_gemm(dt, ita, itb, m, n, k, al, ap, lda, bp, ldb, be, cp, n)
    _check(s, "gemm")
    return o


@cython.annotation_typing(False)
def dense(x, weights, bias=None, *, activation: str = "identity", alpha=None,
          trans_weights: bool = False, out=None, pre_activation=None):
    """A dense layer in one pass: activation(x @ op(weights) + bias).

    x: (batch, inputs). weights: (inputs, units), or (units, inputs) with trans_weights=True.
    bias: (units,) or None. The bias and activation are applied to each tile of the product
    while it is in cache, with exactly the results of gemm + bias_forward + activation_forward.
    pre_activation: an optional (batch, units) array that receives x @ op(weights) + bias, the
    value dense_backward needs when activation_saves(activation) == 'input'.
    Returns `out` (a new array if None).
    """
    cdef cnp.ndarray xa = _matrix(x, "x")
    cdef cnp.ndarray w = _matrix(weights, "weights")
    _same_dtype(xa, "x", w, "weights")
    cdef bint tw = _flag(trans_weights, "trans_weights")
    m, k, n = _dense_shapes(xa, w, tw)
    cdef cnp.ndarray b = _optional_bias(bias, xa, n)
    cdef ffnc_activation act = _activation_code(activation)
    cdef double a = _in_dtype(_activation_alpha(activation, alpha), "alpha", xa)
    origin = (("x", xa), ("weights", w))
    cdef cnp.ndarray o = _result_matrix(out, "out", (m, n), xa, "x", origin)
    cdef cnp.ndarray pre = None
    if pre_activation is not None:
        pre = _result_matrix(pre_activation, "pre_activation", (m, n), xa, "x", origin)
        _no_partial_overlap(pre, "pre_activation", o, "out", False)
    for arr, arr_name in ((xa, "x"), (w, "weights"), (b, "bias")):
        if arr is not None:
            _no_partial_overlap(o, "out", arr, arr_name, False)
            if pre is not None:
                _no_partial_overlap(pre, "pre_activation", arr, arr_name, False)
    cdef ffnc_dtype dt = _dtype_of(xa)
    cdef size_t cm = m, cn = n, ck = k
    cdef const void *xp = cnp.PyArray_DATA(xa)
    cdef const void *wp = cnp.PyArray_DATA(w)
    cdef const void *bp = cnp.PyArray_DATA(b) if b is not None else NULL
    cdef void *pp = cnp.PyArray_DATA(pre) if pre is not None else NULL
    cdef void *op = cnp.PyArray_DATA(o)
    cdef int itw = tw
    cdef ffnc_status s
    with nogil:
        s = ffnc_dense_forward(dt, cm, cn, ck, xp, wp, itw, bp, act, a, pp, op)
    _check(s, "dense")
    return o


@cython.annotation_typing(False)
def dense_backward(diff_y, x, weights, saved, *, activation: str = "identity", alpha=None,
                   trans_weights: bool = False, bias: bool = True, need_diff_x: bool = True,
                   diff_x=None, diff_weights=None, diff_bias=None, accumulate: bool = False):
    """Gradients of dense(x, weights, bias, activation=...): (diff_x, diff_weights, diff_bias).

    saved: the forward output when activation_saves(activation) == 'output', else the
    pre_activation the forward filled. The activation derivative is applied once, in the same
    pass as the bias gradient (column sums in row order); then diff_weights = x^T diff_pre
    (transposed for trans_weights) and diff_x = diff_pre op(weights)^T. bias=False skips the
    bias gradient (returned as None), need_diff_x=False skips diff_x (the first layer).
    accumulate=True adds to the given diff_weights and diff_bias instead of overwriting them.
    """
    cdef cnp.ndarray g = _matrix(diff_y, "diff_y")
    cdef cnp.ndarray xa = _matrix(x, "x")
    cdef cnp.ndarray w = _matrix(weights, "weights")
    cdef cnp.ndarray sv = _matrix(saved, "saved")
    _same_dtype(g, "diff_y", xa, "x")
    _same_dtype(g, "diff_y", w, "weights")
    _same_dtype(g, "diff_y", sv, "saved")
    cdef bint tw = _flag(trans_weights, "trans_weights")
    bias = _flag(bias, "bias")
    need_diff_x = _flag(need_diff_x, "need_diff_x")
    accumulate = _flag(accumulate, "accumulate")
    m, k, n = _dense_shapes(xa, w, tw)
    if (<object>g).shape != (m, n):
        raise ValueError(f"diff_y must have shape {(m, n)} (x with shape {(<object>xa).shape} "
                         f"times weights with shape {(<object>w).shape}), got {(<object>g).shape}")
    _same_shape(g, "diff_y", sv, "saved")
    cdef ffnc_activation act = _activation_code(activation)
    cdef double a = _in_dtype(_activation_alpha(activation, alpha), "alpha", g)
    if accumulate and (diff_weights is None or (bias and diff_bias is None)):
        raise ValueError("accumulate=True needs the diff_weights (and, with bias, diff_bias) "
                         "arrays to add to")
    cdef cnp.ndarray dw = _result_matrix(diff_weights, "diff_weights", (<object>w).shape, w,
                                         "weights", (("weights", w),))
    cdef cnp.ndarray db = None
    if bias:
        if diff_bias is None:
            db = np.empty(n, dtype=g.dtype)
        else:
            db = _float_array(diff_bias, "diff_bias")
            _same_dtype(g, "diff_y", db, "diff_bias")
            if db.ndim != 1 or <size_t>db.shape[0] != <size_t>n:
                raise ValueError(f"diff_bias must have shape ({n},), got {(<object>db).shape}")
            _writable(db, "diff_bias")
    cdef cnp.ndarray dx = None
    if need_diff_x:
        dx = _result_matrix(diff_x, "diff_x", (m, k), xa, "x", (("x", xa),))
    outputs = [(dw, "diff_weights"), (db, "diff_bias"), (dx, "diff_x")]
    inputs = [(g, "diff_y"), (xa, "x"), (w, "weights"), (sv, "saved")]
    for i, (o, o_name) in enumerate(outputs):
        if o is None:
            continue
        for arr, arr_name in inputs + outputs[i + 1:]:
            if arr is not None:
                _no_partial_overlap(o, o_name, arr, arr_name, False)
    cdef cnp.ndarray pre = None
    if act != FFNC_ACT_IDENTITY:
        pre = np.empty_like(g)
    cdef ffnc_dtype dt = _dtype_of(g)
    cdef size_t cm = m, cn = n, ck = k
    cdef const void *xp = cnp.PyArray_DATA(xa)
    cdef const void *wp = cnp.PyArray_DATA(w)
    cdef const void *sp = cnp.PyArray_DATA(sv)
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef void *pp = cnp.PyArray_DATA(pre) if pre is not None else NULL
    cdef void *dxp = cnp.PyArray_DATA(dx) if dx is not None else NULL
    cdef void *dwp = cnp.PyArray_DATA(dw)
    cdef void *dbp = cnp.PyArray_DATA(db) if db is not None else NULL
    cdef int itw = tw, acc = 1 if accumulate else 0
    cdef ffnc_status s
    with nogil:
        s = ffnc_dense_backward(dt, cm, cn, ck, xp, wp, itw, act, a, sp, gp, pp, dxp, dwp, dbp,
                                acc, 0)
    _check(s, "dense_backward")
    return dx, dw, db
