/* Activation, prelu and bias kernels (activation.c), for the kernel table. REAL is bound where
 * the list is expanded. */
#ifndef FFNC_KERNELS_ACTIVATION_H
#define FFNC_KERNELS_ACTIVATION_H

#define FFNC_ACTIVATION_KERNELS(X)                                                               \
    X(activation_forward, (ffnc_activation act, REAL alpha, size_t n, const REAL *src,            \
                           REAL *dst))                                                           \
    X(activation_backward, (ffnc_activation act, REAL alpha, size_t n, const REAL *diff_dst,     \
                            const REAL *saved, REAL *diff_src))                                  \
    X(prelu_forward, (size_t rows, size_t cols, const REAL *src, const REAL *alpha,              \
                      size_t n_alpha, REAL *dst))                                                \
    X(prelu_backward, (size_t rows, size_t cols, const REAL *diff_dst, const REAL *src,          \
                       const REAL *alpha, size_t n_alpha, REAL *diff_src, REAL *diff_alpha,      \
                       int accumulate))                                                          \
    X(bias_forward, (size_t rows, size_t cols, const REAL *src, const REAL *bias, REAL *dst))    \
    X(bias_backward, (size_t rows, size_t cols, const REAL *diff_dst, REAL *diff_bias,           \
                      int accumulate))

#endif
