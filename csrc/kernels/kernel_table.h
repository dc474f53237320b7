/*
 * The kernel table: every kernel that has ISA-specific builds, listed once.
 *
 * Each ISA path (generic, avx2, avx512) compiles the same kernel sources with its own compiler
 * flags and a name suffix (see isa.h), and publishes one table per dtype. The public API
 * (csrc/api/) checks arguments and calls through the table chosen at run time. To add a kernel:
 * add it to FFNC_KERNEL_LIST, implement it in a kernel source with KERNEL(name), and call it
 * from the API layer.
 *
 * REAL is the element type; it is bound to float or double where the list is expanded.
 */
#ifndef FFNC_KERNEL_TABLE_H
#define FFNC_KERNEL_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "ffnc.h"

#define FFNC_KERNEL_LIST(X)                                                                      \
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

#define FFNC_KERNEL_FIELD(name, params) ffnc_status (*name) params;

#define REAL float
typedef struct ffnc_kernels_f32 {
    FFNC_KERNEL_LIST(FFNC_KERNEL_FIELD)
} ffnc_kernels_f32;
#undef REAL

#define REAL double
typedef struct ffnc_kernels_f64 {
    FFNC_KERNEL_LIST(FFNC_KERNEL_FIELD)
} ffnc_kernels_f64;
#undef REAL

#define FFNC_DECLARE_TABLES(isa)                        \
    extern const ffnc_kernels_f32 ffnc_kernels_f32_##isa; \
    extern const ffnc_kernels_f64 ffnc_kernels_f64_##isa;

FFNC_DECLARE_TABLES(generic)
#ifdef FFNC_HAVE_X86_PATHS
FFNC_DECLARE_TABLES(avx2)
FFNC_DECLARE_TABLES(avx512)
#endif

#endif
