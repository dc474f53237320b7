/* Public entry points of the activation, prelu and bias kernels: argument checks, then the
 * kernel of the active ISA path. */
#include <math.h>

#include "internal.h"

int ffnc_activation_backward_uses_dst(ffnc_activation act) {
    switch (act) {
    case FFNC_ACT_IDENTITY:
    case FFNC_ACT_RELU:
    case FFNC_ACT_LEAKY_RELU:
    case FFNC_ACT_TANH:
    case FFNC_ACT_SIGMOID:
    case FFNC_ACT_HARD_TANH:
    case FFNC_ACT_ELU: return 1;
    default: return 0;
    }
}

static ffnc_status check_activation(ffnc_activation act, double alpha) {
    FFNC_REQUIRE((int)act >= 0 && act < FFNC_ACT_COUNT, FFNC_ERR_INVALID_ARGUMENT);
    /* The output-based backward of leaky relu and elu needs y > 0 exactly when x > 0. */
    if (act == FFNC_ACT_LEAKY_RELU || act == FFNC_ACT_ELU)
        FFNC_REQUIRE(isfinite(alpha) && alpha >= 0, FFNC_ERR_INVALID_ARGUMENT);
    return FFNC_OK;
}

ffnc_status ffnc_activation_forward(ffnc_dtype dtype, ffnc_activation act, double alpha, size_t n,
                                    const void *src, void *dst) {
    FFNC_TRY(check_activation(act, alpha));
    FFNC_REQUIRE(n == 0 || (src && dst), FFNC_ERR_NULL_POINTER);
    FFNC_DISPATCH(dtype, activation_forward, act, alpha, n, src, dst);
}

ffnc_status ffnc_activation_backward(ffnc_dtype dtype, ffnc_activation act, double alpha, size_t n,
                                     const void *diff_dst, const void *saved, void *diff_src) {
    FFNC_TRY(check_activation(act, alpha));
    FFNC_REQUIRE(n == 0 || (diff_dst && saved && diff_src), FFNC_ERR_NULL_POINTER);
    FFNC_DISPATCH(dtype, activation_backward, act, alpha, n, diff_dst, saved, diff_src);
}

static ffnc_status check_prelu(size_t rows, size_t cols, size_t n_alpha) {
    size_t total;
    FFNC_TRY(ffnc_mul_size(rows, cols, &total));
    FFNC_REQUIRE(n_alpha == 1 || n_alpha == cols, FFNC_ERR_INVALID_ARGUMENT);
    return FFNC_OK;
}

/* Rows of no column are no work, but the kernels' loops over rows would still count through
 * them (any number of them: no array bounds them then). */
static size_t rows_of_work(size_t rows, size_t cols) { return cols == 0 ? 0 : rows; }

ffnc_status ffnc_prelu_forward(ffnc_dtype dtype, size_t rows, size_t cols, const void *src,
                               const void *alpha, size_t n_alpha, void *dst) {
    FFNC_TRY(check_prelu(rows, cols, n_alpha));
    FFNC_REQUIRE(alpha && (rows * cols == 0 || (src && dst)), FFNC_ERR_NULL_POINTER);
    rows = rows_of_work(rows, cols);
    FFNC_DISPATCH(dtype, prelu_forward, rows, cols, src, alpha, n_alpha, dst);
}

ffnc_status ffnc_prelu_backward(ffnc_dtype dtype, size_t rows, size_t cols, const void *diff_dst,
                                const void *src, const void *alpha, size_t n_alpha,
                                void *diff_src, void *diff_alpha, int accumulate) {
    FFNC_TRY(check_prelu(rows, cols, n_alpha));
    FFNC_REQUIRE(alpha && diff_alpha, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(rows * cols == 0 || (diff_dst && src && diff_src), FFNC_ERR_NULL_POINTER);
    rows = rows_of_work(rows, cols);
    FFNC_DISPATCH(dtype, prelu_backward, rows, cols, diff_dst, src, alpha, n_alpha, diff_src,
                  diff_alpha, accumulate);
}

ffnc_status ffnc_bias_forward(ffnc_dtype dtype, size_t rows, size_t cols, const void *src,
                              const void *bias, void *dst) {
    size_t total;
    FFNC_TRY(ffnc_mul_size(rows, cols, &total));
    FFNC_REQUIRE(total == 0 || (src && bias && dst), FFNC_ERR_NULL_POINTER);
    rows = rows_of_work(rows, cols);
    FFNC_DISPATCH(dtype, bias_forward, rows, cols, src, bias, dst);
}

ffnc_status ffnc_bias_backward(ffnc_dtype dtype, size_t rows, size_t cols, const void *diff_dst,
                               void *diff_bias, int accumulate) {
    size_t total;
    FFNC_TRY(ffnc_mul_size(rows, cols, &total));
    FFNC_REQUIRE(cols == 0 || diff_bias, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(total == 0 || diff_dst, FFNC_ERR_NULL_POINTER);
    FFNC_DISPATCH(dtype, bias_backward, rows, cols, diff_dst, diff_bias, accumulate);
}
