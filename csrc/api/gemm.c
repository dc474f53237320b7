/* Public entry points of GEMM and the dense layer: argument checks, then the kernels of the
 * active ISA path (csrc/gemm/). */
#include <math.h>

#include "internal.h"

static size_t dtype_width(ffnc_dtype dtype) {
    return dtype == FFNC_F32 ? sizeof(float) : sizeof(double);
}

/* A stored rows x cols matrix with row stride ld must have ld >= cols, and its last element's
 * byte offset must fit in size_t. */
static ffnc_status check_matrix(ffnc_dtype dtype, size_t rows, size_t cols, size_t ld) {
    FFNC_REQUIRE(ld >= cols, FFNC_ERR_INVALID_ARGUMENT);
    if (rows == 0 || cols == 0) return FFNC_OK;
    size_t span, bytes;
    FFNC_TRY(ffnc_mul_size(rows - 1, ld, &span));
    FFNC_REQUIRE(span <= SIZE_MAX - cols, FFNC_ERR_SIZE_OVERFLOW);
    return ffnc_mul_size(span + cols, dtype_width(dtype), &bytes);
}

static ffnc_status check_dtype(ffnc_dtype dtype) {
    FFNC_REQUIRE(dtype == FFNC_F32 || dtype == FFNC_F64, FFNC_ERR_INVALID_DTYPE);
    return FFNC_OK;
}

/* The activation's domain, as ffnc_activation_forward checks it. */
static ffnc_status check_activation(ffnc_activation act, double alpha) {
    FFNC_REQUIRE((int)act >= 0 && act < FFNC_ACT_COUNT, FFNC_ERR_INVALID_ARGUMENT);
    if (act == FFNC_ACT_LEAKY_RELU || act == FFNC_ACT_ELU)
        FFNC_REQUIRE(isfinite(alpha) && alpha >= 0, FFNC_ERR_INVALID_ARGUMENT);
    return FFNC_OK;
}

/* The kernel call with an epilogue; the public ffnc_gemm passes NULL. */
static ffnc_status gemm_dispatch(ffnc_dtype dtype, int trans_a, int trans_b, size_t m, size_t n,
                                 size_t k, double alpha, const void *a, size_t lda, const void *b,
                                 size_t ldb, double beta, void *c, size_t ldc,
                                 const ffnc_gemm_epilogue *epilogue) {
    FFNC_DISPATCH(dtype, gemm, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                  epilogue);
}

ffnc_status ffnc_gemm(ffnc_dtype dtype, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                      double alpha, const void *a, size_t lda, const void *b, size_t ldb,
                      double beta, void *c, size_t ldc) {
    FFNC_TRY(check_dtype(dtype));
    FFNC_TRY(check_matrix(dtype, trans_a ? k : m, trans_a ? m : k, lda));
    FFNC_TRY(check_matrix(dtype, trans_b ? n : k, trans_b ? k : n, ldb));
    FFNC_TRY(check_matrix(dtype, m, n, ldc));
    if (m == 0 || n == 0) return FFNC_OK;
    FFNC_REQUIRE(c != NULL, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(k == 0 || (a && b), FFNC_ERR_NULL_POINTER);
    return gemm_dispatch(dtype, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                         NULL);
}

ffnc_status ffnc_dense_forward(ffnc_dtype dtype, size_t m, size_t n, size_t k, const void *src,
                               const void *weights, int trans_weights, const void *bias,
                               ffnc_activation act, double alpha, void *pre_act, void *dst) {
    FFNC_TRY(check_dtype(dtype));
    FFNC_TRY(check_activation(act, alpha));
    FFNC_TRY(check_matrix(dtype, m, k, k));
    FFNC_TRY(check_matrix(dtype, k, n, n));
    FFNC_TRY(check_matrix(dtype, m, n, n));
    if (m == 0 || n == 0) return FFNC_OK;
    FFNC_REQUIRE(dst != NULL, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(k == 0 || (src && weights), FFNC_ERR_NULL_POINTER);
    ffnc_gemm_epilogue epilogue = {bias, act, alpha, pre_act, n, NULL, 0, 0.0};
    return gemm_dispatch(dtype, 0, trans_weights, m, n, k, 1.0, src, k, weights,
                         trans_weights ? k : n, 0.0, dst, n, &epilogue);
}

ffnc_status ffnc_dense_backward(ffnc_dtype dtype, size_t m, size_t n, size_t k, const void *src,
                                const void *weights, int trans_weights, ffnc_activation act,
                                double alpha, const void *saved, const void *diff_dst,
                                void *diff_pre, void *diff_src, void *diff_weights,
                                void *diff_bias, int accumulate_params, int accumulate_src) {
    return ffnc_dense_backward_beta(dtype, m, n, k, src, weights, trans_weights, act, alpha,
                                    saved, diff_dst, diff_pre, diff_src, diff_weights, diff_bias,
                                    accumulate_params ? 1.0 : 0.0, accumulate_params,
                                    accumulate_src, NULL, 0.0);
}

ffnc_status ffnc_dense_backward_beta(ffnc_dtype dtype, size_t m, size_t n, size_t k,
                                     const void *src, const void *weights, int trans_weights,
                                     ffnc_activation act, double alpha, const void *saved,
                                     const void *diff_dst, void *diff_pre, void *diff_src,
                                     void *diff_weights, void *diff_bias, double beta_weights,
                                     int accumulate_bias, int accumulate_src, void *step_weights,
                                     double step_rate) {
    FFNC_TRY(check_dtype(dtype));
    FFNC_REQUIRE(isfinite(beta_weights), FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(step_weights == NULL || (diff_weights != NULL && isfinite(step_rate)),
                 FFNC_ERR_INVALID_ARGUMENT);
    FFNC_TRY(check_activation(act, alpha));
    FFNC_TRY(check_matrix(dtype, m, k, k));
    FFNC_TRY(check_matrix(dtype, k, n, n));
    FFNC_TRY(check_matrix(dtype, m, n, n));
    size_t mn = m * n, mk = m * k, kn = k * n;
    FFNC_REQUIRE(mn == 0 || diff_dst, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(mn == 0 || act == FFNC_ACT_IDENTITY || (saved && diff_pre), FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(mk == 0 || diff_src == NULL || weights, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(kn == 0 || diff_weights == NULL || src, FFNC_ERR_NULL_POINTER);

    /* diff_pre and diff_bias in one pass; identity without a diff_pre buffer reads diff_dst. */
    const void *grad = diff_dst;
    /* Identity's derivative needs no saved tensor, which may then be NULL; the kernel's row
     * loops still offset it, so they get diff_dst in its place. */
    if (act == FFNC_ACT_IDENTITY) saved = diff_dst;
    if (act != FFNC_ACT_IDENTITY || diff_pre != NULL) {
        ffnc_status s;
        switch (dtype) {
        case FFNC_F32:
            s = ffnc_active_kernels_f32()->dense_backward_pre(act, (float)alpha, m, n, diff_dst,
                                                              saved, diff_pre, diff_bias,
                                                              accumulate_bias);
            break;
        default:
            s = ffnc_active_kernels_f64()->dense_backward_pre(act, alpha, m, n, diff_dst, saved,
                                                              diff_pre, diff_bias,
                                                              accumulate_bias);
            break;
        }
        FFNC_TRY(s);
        grad = diff_pre;
    } else if (diff_bias != NULL) {
        FFNC_TRY(ffnc_bias_backward(dtype, m, n, diff_dst, diff_bias, accumulate_bias));
    }

    /* diff_src before diff_weights: the weights' step (if any) is taken in the second */
    if (diff_src != NULL) /* diff_src = diff_pre op(W)^T */
        FFNC_TRY(gemm_dispatch(dtype, 0, !trans_weights, m, k, n, 1.0, grad, n, weights,
                               trans_weights ? k : n, accumulate_src ? 1.0 : 0.0, diff_src, k,
                               NULL));
    if (diff_weights != NULL) {
        size_t ld = trans_weights ? k : n;
        ffnc_gemm_epilogue step = {NULL, FFNC_ACT_IDENTITY, 0.0, NULL, 0, step_weights, ld,
                                   step_rate};
        const ffnc_gemm_epilogue *ep = step_weights ? &step : NULL;
        if (trans_weights) /* W is n x k: dW = diff_pre^T src */
            FFNC_TRY(gemm_dispatch(dtype, 1, 0, n, k, m, 1.0, grad, n, src, k, beta_weights,
                                   diff_weights, k, ep));
        else /* W is k x n: dW = src^T diff_pre */
            FFNC_TRY(gemm_dispatch(dtype, 1, 0, k, n, m, 1.0, src, k, grad, n, beta_weights,
                                   diff_weights, n, ep));
    }
    return FFNC_OK;
}
