# Losses: softmax cross-entropy, log-softmax, binary cross-entropy from logits, MSE, L1, with
# their gradients (csrc/kernels/loss.c). Included by _core.pyx.
#
# Every loss is `scale` times a sum of per-row or per-element terms, accumulated in double in a
# fixed order (bitwise the same for any thread count and ISA path). reduction="mean" divides by
# the number of rows (softmax cross-entropy) or of elements (bce, mse, l1); "sum" does not. The
# mean over zero rows or elements is defined as 0.0, like the sum, rather than NaN, so an empty
# batch contributes nothing. The *_backward functions return the gradient of that loss times
# diff_loss (the upstream gradient of the scalar loss, 1.0 when the loss is the objective).

cdef int64_t _INT64_MAX = 9223372036854775807


cdef cnp.ndarray _labels(object labels, size_t rows, size_t classes, str rows_of):
    """Class labels as a C-contiguous int64 array of length `rows`.

    Any integer dtype is accepted and widened (a copy when it is not int64 already); uint64
    labels beyond the int64 range cannot be classes and are reported as out of range here,
    before the widening could wrap them.
    """
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels must be a numpy.ndarray of integer class indices, "
                        f"got {type(labels).__name__}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must have an integer dtype (class indices), got {labels.dtype}; "
                        f"convert them explicitly, e.g. labels.astype(numpy.int64)")
    if labels.ndim != 1 or labels.shape[0] != rows:
        raise ValueError(f"labels must have shape ({rows},), one class index per row of "
                         f"{rows_of}, got {labels.shape}")
    if labels.dtype == np.uint64 and rows > 0 and labels.max() > _INT64_MAX:
        _raise_label_out_of_range(labels, classes, rows_of)
    return np.ascontiguousarray(labels, dtype=np.int64)


cdef int _raise_label_out_of_range(object labels, size_t classes, str rows_of) except -1:
    """The ValueError for a label outside [0, classes), naming the first offending one."""
    first = int(np.flatnonzero((labels < 0) | (labels >= classes))[0])
    raise ValueError(f"labels[{first}] = {labels[first]} is out of range for {classes} classes "
                     f"(the columns of {rows_of}); labels must be in [0, {classes})")


cdef int _has_classes(cnp.ndarray a, str name) except -1:
    if a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class (column), got shape "
                         f"{(<object>a).shape}")
    return 0


cdef int _check_labels(ffnc_status s, cnp.ndarray labels, size_t classes, str rows_of,
                       str where) except -1:
    if s == FFNC_ERR_LABEL_OUT_OF_RANGE:
        _raise_label_out_of_range(labels, classes, rows_of)
    return _check(s, where)


def softmax_cross_entropy(logits, labels, *, reduction: str = "mean", probs=None):
    """Softmax + cross-entropy with integer class labels, fused and stable.

    logits: (rows, classes) float32/float64, classes >= 1; rows may be 0 (loss 0.0).
    labels: (rows,) integer class indices in [0, classes), any integer dtype.
    reduction: "mean" (divide by rows) or "sum".
    probs: optional output for the softmax, same shape and dtype as logits; may be logits
    itself (computed in place).

    Returns (loss, probs): loss = -sum_r log softmax(logits[r])[labels[r]] (divided by rows
    for "mean"), a Python float; probs the softmax of each row, saved for the backward. Each
    row is shifted by its maximum, so logits of any finite magnitude are safe; a row holding a
    NaN gives NaN probabilities and a NaN loss.
    """
    cdef cnp.ndarray x = _matrix(logits, "logits")
    _has_classes(x, "logits")
    cdef size_t rows = x.shape[0], classes = x.shape[1]
    cdef cnp.ndarray lab = _labels(labels, rows, classes, "logits")
    cdef double scale = _reduction_scale(reduction, rows)
    cdef cnp.ndarray p = _output(probs, "probs", x, "logits")
    _no_partial_overlap(p, "probs", x, "logits", True)
    _no_partial_overlap(p, "probs", lab, "labels", False)
    cdef ffnc_dtype dt = _dtype_of(x)
    cdef const void *xp = cnp.PyArray_DATA(x)
    cdef const int64_t *lp = <const int64_t *>cnp.PyArray_DATA(lab)
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef double loss = 0.0
    cdef ffnc_status s
    with nogil:
        s = ffnc_softmax_xent_forward(dt, rows, classes, xp, lp, scale, pp, &loss)
    _check_labels(s, lab, classes, "logits", "softmax_cross_entropy")
    return loss, p


def softmax_cross_entropy_backward(probs, labels, *, reduction: str = "mean",
                                   diff_loss=1.0, out=None):
    """The gradient of softmax_cross_entropy with respect to the logits.

    probs: the softmax returned by the forward; labels and reduction as given to it.
    Returns diff_loss * scale * (probs - onehot(labels)), scale = 1/rows for "mean", 1 for
    "sum"; in `out` when given (out may be probs itself).
    """
    cdef cnp.ndarray p = _matrix(probs, "probs")
    _has_classes(p, "probs")
    cdef size_t rows = p.shape[0], classes = p.shape[1]
    cdef cnp.ndarray lab = _labels(labels, rows, classes, "probs")
    cdef double scale = _in_dtype(_reduction_scale(reduction, rows)
                                  * _finite(diff_loss, "diff_loss"), "diff_loss", p)
    cdef cnp.ndarray o = _output(out, "out", p, "probs")
    _no_partial_overlap(o, "out", p, "probs", True)
    _no_partial_overlap(o, "out", lab, "labels", False)
    cdef ffnc_dtype dt = _dtype_of(p)
    cdef const void *pp = cnp.PyArray_DATA(p)
    cdef const int64_t *lp = <const int64_t *>cnp.PyArray_DATA(lab)
    cdef void *op = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_softmax_xent_backward(dt, rows, classes, pp, lp, scale, op)
    _check_labels(s, lab, classes, "probs", "softmax_cross_entropy_backward")
    return o


def log_softmax(x, *, out=None):
    """Row-wise log-softmax of a (rows, cols) matrix, cols >= 1: x - max - log(sum exp(x - max)).

    Stable for any finite magnitude; a row holding a NaN gives a row of NaN. The result goes to
    `out` when given (out may be x itself).
    """
    cdef cnp.ndarray xa = _matrix(x, "x")
    _has_classes(xa, "x")
    cdef cnp.ndarray o = _output(out, "out", xa, "x")
    _no_partial_overlap(o, "out", xa, "x", True)
    cdef ffnc_dtype dt = _dtype_of(xa)
    cdef size_t rows = xa.shape[0], cols = xa.shape[1]
    cdef const void *src = cnp.PyArray_DATA(xa)
    cdef void *dst = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_log_softmax_forward(dt, rows, cols, src, dst)
    _check(s, "log_softmax")
    return o


def log_softmax_backward(diff_y, y, *, out=None):
    """The gradient of log_softmax with respect to its input: diff_y - exp(y) * sum(diff_y),
    row by row, where y is the forward output. The result goes to `out` when given (out may be
    diff_y itself).
    """
    cdef cnp.ndarray g = _matrix(diff_y, "diff_y")
    cdef cnp.ndarray ya = _matrix(y, "y")
    _same_dtype(g, "diff_y", ya, "y")
    _same_shape(g, "diff_y", ya, "y")
    _has_classes(ya, "y")
    cdef cnp.ndarray o = _output(out, "out", g, "diff_y")
    _no_partial_overlap(o, "out", g, "diff_y", True)
    _no_partial_overlap(o, "out", ya, "y", False)
    cdef ffnc_dtype dt = _dtype_of(g)
    cdef size_t rows = g.shape[0], cols = g.shape[1]
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef const void *yp = cnp.PyArray_DATA(ya)
    cdef void *dst = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_log_softmax_backward(dt, rows, cols, gp, yp, dst)
    _check(s, "log_softmax_backward")
    return o


# ---- element-wise losses ------------------------------------------------------------------------

cdef tuple _pair(object a, str a_name, object b, str b_name):
    """Two float arrays of the same dtype and shape (any shape)."""
    cdef cnp.ndarray aa = _float_array(a, a_name)
    cdef cnp.ndarray ba = _float_array(b, b_name)
    _same_dtype(aa, a_name, ba, b_name)
    _same_shape(aa, a_name, ba, b_name)
    return aa, ba


cdef int _probability_targets(cnp.ndarray targets) except -1:
    """BCE targets must be probabilities: in [0, 1], not NaN (min/max propagate a NaN, so one
    pass each finds every violation; the index is looked up only when there is one)."""
    if targets.size == 0:
        return 0
    if targets.min() >= 0 and targets.max() <= 1:
        return 0
    bad = np.flatnonzero(~((targets >= 0) & (targets <= 1)))[0]
    index = np.unravel_index(bad, (<object>targets).shape)
    where = f"[{', '.join(str(int(i)) for i in index)}]" if targets.ndim else ""
    raise ValueError(f"targets must be probabilities in [0, 1], got targets{where} = "
                     f"{targets[index]}")


cdef cnp.ndarray _gradient_output(object out, cnp.ndarray first, str first_name,
                                  cnp.ndarray second, str second_name):
    """The gradient's output: may be either input exactly (in place), never a partial overlap."""
    cdef cnp.ndarray o = _output(out, "out", first, first_name)
    _no_partial_overlap(o, "out", first, first_name, True)
    _no_partial_overlap(o, "out", second, second_name, True)
    return o


def bce_with_logits(logits, targets, *, reduction: str = "mean") -> float:
    """Binary cross-entropy of sigmoid(logits) against targets, from the logits.

    logits, targets: float arrays of the same shape and dtype (any shape); targets must be
    probabilities in [0, 1] (NaN is rejected). Each element contributes
    max(z, 0) - y z + log(1 + exp(-|z|)), which is softplus((1 - 2y) z) for y in {0, 1}: it
    never overflows and saturates only when the prediction is right. reduction: "mean" (divide
    by the number of elements) or "sum"; an empty input gives 0.0 for either. A NaN logit gives
    a NaN loss.
    """
    cdef cnp.ndarray z, y
    z, y = _pair(logits, "logits", targets, "targets")
    _probability_targets(y)
    cdef double scale = _reduction_scale(reduction, z.size)
    cdef ffnc_dtype dt = _dtype_of(z)
    cdef size_t n = z.size
    cdef const void *zp = cnp.PyArray_DATA(z)
    cdef const void *yp = cnp.PyArray_DATA(y)
    cdef double loss = 0.0
    cdef ffnc_status s
    with nogil:
        s = ffnc_bce_logits_forward(dt, n, zp, yp, scale, &loss)
    _check(s, "bce_with_logits")
    return loss


def bce_with_logits_backward(logits, targets, *, reduction: str = "mean", diff_loss=1.0,
                             out=None):
    """The gradient of bce_with_logits with respect to the logits:
    diff_loss * scale * (sigmoid(logits) - targets), scale = 1/size for "mean", 1 for "sum".
    The result goes to `out` when given (out may be logits or targets itself).
    """
    cdef cnp.ndarray z, y
    z, y = _pair(logits, "logits", targets, "targets")
    _probability_targets(y)
    cdef double scale = _in_dtype(_reduction_scale(reduction, z.size)
                                  * _finite(diff_loss, "diff_loss"), "diff_loss", z)
    cdef cnp.ndarray o = _gradient_output(out, z, "logits", y, "targets")
    cdef ffnc_dtype dt = _dtype_of(z)
    cdef size_t n = z.size
    cdef const void *zp = cnp.PyArray_DATA(z)
    cdef const void *yp = cnp.PyArray_DATA(y)
    cdef void *op = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_bce_logits_backward(dt, n, zp, yp, scale, op)
    _check(s, "bce_with_logits_backward")
    return o


def mse(pred, target, *, reduction: str = "mean") -> float:
    """Squared error: sum of (pred - target)^2, divided by the number of elements for "mean".

    pred, target: float arrays of the same shape and dtype (any shape); an empty input gives 0.0.
    """
    cdef cnp.ndarray p, t
    p, t = _pair(pred, "pred", target, "target")
    cdef double scale = _reduction_scale(reduction, p.size)
    cdef ffnc_dtype dt = _dtype_of(p)
    cdef size_t n = p.size
    cdef const void *pp = cnp.PyArray_DATA(p)
    cdef const void *tp = cnp.PyArray_DATA(t)
    cdef double loss = 0.0
    cdef ffnc_status s
    with nogil:
        s = ffnc_mse_forward(dt, n, pp, tp, scale, &loss)
    _check(s, "mse")
    return loss


def mse_backward(pred, target, *, reduction: str = "mean", diff_loss=1.0, out=None):
    """The gradient of mse with respect to pred: diff_loss * scale * 2 (pred - target).
    The result goes to `out` when given (out may be pred or target itself).
    """
    cdef cnp.ndarray p, t
    p, t = _pair(pred, "pred", target, "target")
    cdef double scale = _in_dtype(_reduction_scale(reduction, p.size)
                                  * _finite(diff_loss, "diff_loss"), "diff_loss", p)
    cdef cnp.ndarray o = _gradient_output(out, p, "pred", t, "target")
    cdef ffnc_dtype dt = _dtype_of(p)
    cdef size_t n = p.size
    cdef const void *pp = cnp.PyArray_DATA(p)
    cdef const void *tp = cnp.PyArray_DATA(t)
    cdef void *op = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_mse_backward(dt, n, pp, tp, scale, op)
    _check(s, "mse_backward")
    return o


def l1(pred, target, *, reduction: str = "mean") -> float:
    """Absolute error: sum of |pred - target|, divided by the number of elements for "mean".

    pred, target: float arrays of the same shape and dtype (any shape); an empty input gives 0.0.
    """
    cdef cnp.ndarray p, t
    p, t = _pair(pred, "pred", target, "target")
    cdef double scale = _reduction_scale(reduction, p.size)
    cdef ffnc_dtype dt = _dtype_of(p)
    cdef size_t n = p.size
    cdef const void *pp = cnp.PyArray_DATA(p)
    cdef const void *tp = cnp.PyArray_DATA(t)
    cdef double loss = 0.0
    cdef ffnc_status s
    with nogil:
        s = ffnc_l1_forward(dt, n, pp, tp, scale, &loss)
    _check(s, "l1")
    return loss


def l1_backward(pred, target, *, reduction: str = "mean", diff_loss=1.0, out=None):
    """The gradient of l1 with respect to pred: diff_loss * scale * sign(pred - target), with
    sign(0) = 0 (a NaN difference gives NaN). The result goes to `out` when given (out may be
    pred or target itself).
    """
    cdef cnp.ndarray p, t
    p, t = _pair(pred, "pred", target, "target")
    cdef double scale = _in_dtype(_reduction_scale(reduction, p.size)
                                  * _finite(diff_loss, "diff_loss"), "diff_loss", p)
    cdef cnp.ndarray o = _gradient_output(out, p, "pred", t, "target")
    cdef ffnc_dtype dt = _dtype_of(p)
    cdef size_t n = p.size
    cdef const void *pp = cnp.PyArray_DATA(p)
    cdef const void *tp = cnp.PyArray_DATA(t)
    cdef void *op = cnp.PyArray_DATA(o)
    cdef ffnc_status s
    with nogil:
        s = ffnc_l1_backward(dt, n, pp, tp, scale, op)
    _check(s, "l1_backward")
    return o
