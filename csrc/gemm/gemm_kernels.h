/* GEMM kernels (csrc/gemm/), for the kernel table. REAL is bound where the list is expanded. */
#ifndef FFNC_GEMM_KERNELS_H
#define FFNC_GEMM_KERNELS_H

#include <stddef.h>

#include "ffnc.h"

/* What the store of C does after the last K block, while the tile is still in L1:
 *   v = alpha op(A) op(B) + beta C  (+ bias[j] when bias != NULL)
 *   pre_act[i, j] = v               (when pre_act != NULL; row stride ld_pre_act)
 *   C[i, j] = act(v)                (with act_alpha, exactly as ffnc_activation_forward)
 *   update[i, j] -= rate C[i, j]    (when update != NULL)
 * bias and pre_act have the element type of the GEMM. */
typedef struct ffnc_gemm_epilogue {
    const void *bias;
    ffnc_activation act;
    double act_alpha;
    void *pre_act;
    size_t ld_pre_act;
    /* When update != NULL, last: update[i ld_update + j] = update[...] - rate C[i, j] with
     * rate = (element type) update_rate, a multiply and a subtraction rounded separately, as
     * ffnc_sgd_update: a parameter's SGD step from the velocity C, taken while C is in
     * registers. Requires an exact activation (C final at the store); update must not overlap
     * A, B or C. */
    void *update;
    size_t ld_update;
    double update_rate;
} ffnc_gemm_epilogue;

/* gemm: C (m x n, row stride ldc) = alpha op(A) op(B) + beta C, row-major, op(X) = X or X^T
 *   (trans != 0); beta == 0 never reads C; epilogue may be NULL. C must not overlap A or B.
 * dense_backward_pre: diff_pre = diff_dst * act'(saved) (rows x cols; diff_pre may equal
 *   diff_dst) and, when diff_bias != NULL, diff_bias (=|+=) the column sums of diff_pre in
 *   increasing row order, summed in double: bitwise what activation_backward then
 *   bias_backward give, in one pass. */
#define FFNC_GEMM_KERNELS(X)                                                                     \
    X(gemm, (int trans_a, int trans_b, size_t m, size_t n, size_t k, REAL alpha, const REAL *a,  \
             size_t lda, const REAL *b, size_t ldb, REAL beta, REAL *c, size_t ldc,              \
             const ffnc_gemm_epilogue *epilogue))                                                \
    X(dense_backward_pre, (ffnc_activation act, REAL alpha, size_t rows, size_t cols,            \
                           const REAL *diff_dst, const REAL *saved, REAL *diff_pre,              \
                           REAL *diff_bias, int accumulate))

#endif
