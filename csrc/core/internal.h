/* Declarations shared inside libffnc; not part of the public API. */
#ifndef FFNC_INTERNAL_H
#define FFNC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ffnc.h"
#include "kernel_table.h"

/* Threads to use for a loop over `work` units when each thread should get at least `grain`
 * of them: 1 below the grain (threading costs more than it saves), else at most the configured
 * count. The grains are measured with `ffnc-bench threshold` (see README). */
int ffnc_threads_for(size_t work, size_t grain);

/* Sets the grain every kernel uses, overriding its own (0 restores them). Only for
 * `ffnc-bench threshold`, which measures where threading pays; not thread-safe. */
void ffnc_override_grain(size_t grain);

/* How many times ffnc_threads_for has chosen more than one thread in this process: lets tests
 * check that the shapes they use really take the multithreaded paths (a relaxed atomic
 * counter; exported for ctypes, not part of the API). */
size_t ffnc_multithreaded_calls(void);

/* ffnc_dense_backward with the weight gradient's beta given apart from the bias's
 * accumulation: diff_weights = beta_weights * diff_weights + src^T diff_pre (not read when
 * beta_weights == 0). A plan's momentum update takes the gradient straight into the velocity
 * this way (FFNC_PLAN_BETA). When step_weights is not NULL (the weights' own, writable
 * memory, and diff_weights not NULL), the weights then take the SGD step from it in the
 * product's store: weights -= step_rate diff_weights, rounded as ffnc_sgd_update
 * (FFNC_PLAN_STEP). diff_src is computed first, from the weights before the step. */
ffnc_status ffnc_dense_backward_beta(ffnc_dtype dtype, size_t m, size_t n, size_t k,
                                     const void *src, const void *weights, int trans_weights,
                                     ffnc_activation act, double alpha, const void *saved,
                                     const void *diff_dst, void *diff_pre, void *diff_src,
                                     void *diff_weights, void *diff_bias, double beta_weights,
                                     int accumulate_bias, int accumulate_src, void *step_weights,
                                     double step_rate);

/* Elements per thread below which cheap element-wise kernels (a few flops per value, memory
 * bound) stay on one thread. Measured with `ffnc-bench threshold` on a quiet 2-core Zen 3
 * (f32, AVX2): 2 threads break even on relu at 2^12 values and give 1.4x at 2^14; on tanh
 * (vectorized, ~2 ns a value) they break even at 2^9 and give 1.35x at 2^10. The grains keep
 * one thread a little past break-even, since a loaded machine makes thread wake-ups dearer. */
#define FFNC_GRAIN_ELEMENTWISE ((size_t)1 << 13)
/* The same for element-wise kernels that call exp, tanh, erf, log1p (tens of cycles a value). */
#define FFNC_GRAIN_TRANSCENDENTAL ((size_t)1 << 9)
/* Elements per thread below which row-wise kernels (softmax, losses) stay on one thread. */
#define FFNC_GRAIN_ROWWISE ((size_t)1 << 14)

/* The kernel tables of the ISA path in use (chosen on first use). */
const ffnc_kernels_f32 *ffnc_active_kernels_f32(void);
const ffnc_kernels_f64 *ffnc_active_kernels_f64(void);

/* a * b into *out, or FFNC_ERR_SIZE_OVERFLOW. */
static inline ffnc_status ffnc_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return FFNC_ERR_SIZE_OVERFLOW;
    *out = a * b;
    return FFNC_OK;
}

#define FFNC_TRY(expr)                      \
    do {                                    \
        ffnc_status ffnc_try_s_ = (expr);   \
        if (ffnc_try_s_ != FFNC_OK)         \
            return ffnc_try_s_;             \
    } while (0)

#define FFNC_REQUIRE(cond, status)          \
    do {                                    \
        if (!(cond))                        \
            return (status);                \
    } while (0)

/* Full reductions (a loss over a batch, a shared slope's gradient) are summed in
 * FFNC_REDUCE_BLOCKS fixed blocks, each in index order, then the block sums in block order:
 * the result depends on the sizes only, never on the thread count. Block b of nblocks over n
 * items covers [b n / nblocks, (b + 1) n / nblocks). */
#define FFNC_REDUCE_BLOCKS 64
static inline size_t ffnc_reduce_blocks(size_t n) {
    return n < FFNC_REDUCE_BLOCKS ? n : FFNC_REDUCE_BLOCKS;
}
static inline size_t ffnc_block_begin(size_t b, size_t nblocks, size_t n) {
    /* b * n may overflow for n near SIZE_MAX; split to stay exact. */
    return (n / nblocks) * b + ((n % nblocks) * b) / nblocks;
}

/* Runs a for loop on `nt` threads (a variable of that name must be in scope), or as plain
 * code when nt <= 1: entering an OpenMP region costs ~0.4 us even with an if(0) clause, more
 * than a small kernel's whole work. Usage: FFNC_PARALLEL_FOR(for (...) { ... }); */
#define FFNC_PARALLEL_FOR(...)                                              \
    do {                                                                    \
        if (nt > 1) {                                                       \
            _Pragma("omp parallel for num_threads(nt) schedule(static)")    \
            __VA_ARGS__                                                     \
        } else {                                                            \
            __VA_ARGS__                                                     \
        }                                                                   \
    } while (0)

/* Calls kernel `name` of the active ISA path for `dtype`; returns its status. */
#define FFNC_DISPATCH(dtype, name, ...)                                   \
    switch (dtype) {                                                      \
    case FFNC_F32: return ffnc_active_kernels_f32()->name(__VA_ARGS__);   \
    case FFNC_F64: return ffnc_active_kernels_f64()->name(__VA_ARGS__);   \
    }                                                                     \
    return FFNC_ERR_INVALID_DTYPE

#endif
