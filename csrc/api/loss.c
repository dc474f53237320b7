/* Public entry points of the loss kernels: argument checks, then the kernel of the active ISA
 * path. The labels are checked by the kernels themselves, before they write anything. */
#include <math.h>

#include "internal.h"

/* The loss scale and the gradient scale multiply every result: a non-finite one would only
 * spread inf or NaN through the outputs. */
static ffnc_status check_scale(double scale) {
    FFNC_REQUIRE(isfinite(scale), FFNC_ERR_INVALID_ARGUMENT);
    return FFNC_OK;
}

ffnc_status ffnc_softmax_xent_forward(ffnc_dtype dtype, size_t rows, size_t classes,
                                      const void *logits, const int64_t *labels, double scale,
                                      void *probs, double *loss) {
    size_t total;
    FFNC_TRY(ffnc_mul_size(rows, classes, &total));
    FFNC_REQUIRE(loss && (rows == 0 || labels), FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(total == 0 || (logits && probs), FFNC_ERR_NULL_POINTER);
    FFNC_TRY(check_scale(scale));
    FFNC_DISPATCH(dtype, softmax_xent_forward, rows, classes, logits, labels, scale, probs, loss);
}

ffnc_status ffnc_softmax_xent_backward(ffnc_dtype dtype, size_t rows, size_t classes,
                                       const void *probs, const int64_t *labels,
                                       double diff_loss_scale, void *diff_logits) {
    size_t total;
    FFNC_TRY(ffnc_mul_size(rows, classes, &total));
    FFNC_REQUIRE(rows == 0 || labels, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(total == 0 || (probs && diff_logits), FFNC_ERR_NULL_POINTER);
    FFNC_TRY(check_scale(diff_loss_scale));
    FFNC_DISPATCH(dtype, softmax_xent_backward, rows, classes, probs, labels, diff_loss_scale,
                  diff_logits);
}

ffnc_status ffnc_log_softmax_forward(ffnc_dtype dtype, size_t rows, size_t cols, const void *src,
                                     void *dst) {
    size_t total;
    FFNC_TRY(ffnc_mul_size(rows, cols, &total));
    FFNC_REQUIRE(total == 0 || (src && dst), FFNC_ERR_NULL_POINTER);
    /* rows of no column: no work, but a loop over the rows would count through them all */
    if (cols == 0) rows = 0;
    FFNC_DISPATCH(dtype, log_softmax_forward, rows, cols, src, dst);
}

ffnc_status ffnc_log_softmax_backward(ffnc_dtype dtype, size_t rows, size_t cols,
                                      const void *diff_dst, const void *dst, void *diff_src) {
    size_t total;
    FFNC_TRY(ffnc_mul_size(rows, cols, &total));
    FFNC_REQUIRE(total == 0 || (diff_dst && dst && diff_src), FFNC_ERR_NULL_POINTER);
    if (cols == 0) rows = 0; /* as the forward */
    FFNC_DISPATCH(dtype, log_softmax_backward, rows, cols, diff_dst, dst, diff_src);
}

/* The element-wise losses share their checks: a loss pointer always (it is written even for
 * n == 0), the arrays when there is an element. */
static ffnc_status check_pair_forward(size_t n, const void *a, const void *b, double scale,
                                      const double *loss) {
    FFNC_REQUIRE(loss && (n == 0 || (a && b)), FFNC_ERR_NULL_POINTER);
    return check_scale(scale);
}

static ffnc_status check_pair_backward(size_t n, const void *a, const void *b,
                                       double diff_loss_scale, const void *diff) {
    FFNC_REQUIRE(n == 0 || (a && b && diff), FFNC_ERR_NULL_POINTER);
    return check_scale(diff_loss_scale);
}

ffnc_status ffnc_bce_logits_forward(ffnc_dtype dtype, size_t n, const void *logits,
                                    const void *targets, double scale, double *loss) {
    FFNC_TRY(check_pair_forward(n, logits, targets, scale, loss));
    FFNC_DISPATCH(dtype, bce_logits_forward, n, logits, targets, scale, loss);
}

ffnc_status ffnc_bce_logits_backward(ffnc_dtype dtype, size_t n, const void *logits,
                                     const void *targets, double diff_loss_scale,
                                     void *diff_logits) {
    FFNC_TRY(check_pair_backward(n, logits, targets, diff_loss_scale, diff_logits));
    FFNC_DISPATCH(dtype, bce_logits_backward, n, logits, targets, diff_loss_scale, diff_logits);
}

ffnc_status ffnc_mse_forward(ffnc_dtype dtype, size_t n, const void *pred, const void *target,
                             double scale, double *loss) {
    FFNC_TRY(check_pair_forward(n, pred, target, scale, loss));
    FFNC_DISPATCH(dtype, mse_forward, n, pred, target, scale, loss);
}

ffnc_status ffnc_mse_backward(ffnc_dtype dtype, size_t n, const void *pred, const void *target,
                              double diff_loss_scale, void *diff_pred) {
    FFNC_TRY(check_pair_backward(n, pred, target, diff_loss_scale, diff_pred));
    FFNC_DISPATCH(dtype, mse_backward, n, pred, target, diff_loss_scale, diff_pred);
}

ffnc_status ffnc_l1_forward(ffnc_dtype dtype, size_t n, const void *pred, const void *target,
                            double scale, double *loss) {
    FFNC_TRY(check_pair_forward(n, pred, target, scale, loss));
    FFNC_DISPATCH(dtype, l1_forward, n, pred, target, scale, loss);
}

ffnc_status ffnc_l1_backward(ffnc_dtype dtype, size_t n, const void *pred, const void *target,
                             double diff_loss_scale, void *diff_pred) {
    FFNC_TRY(check_pair_backward(n, pred, target, diff_loss_scale, diff_pred));
    FFNC_DISPATCH(dtype, l1_backward, n, pred, target, diff_loss_scale, diff_pred);
}
