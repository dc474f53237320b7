/*
 * ffnc.h: the public C API of ffnc, a library for training feedforward neural networks on CPUs.
 *
 * Conventions
 * - Every function returns an ffnc_status; FFNC_OK (0) is success. Nothing here aborts, prints
 *   or exits. ffnc_status_string() turns a status into a sentence.
 * - Arrays are dense, row-major and C-contiguous. A matrix of `rows` x `cols` holds element
 *   (r, c) at index r * cols + c. The element type is given by an ffnc_dtype argument and the
 *   pointers are `void *` of that type (float for FFNC_F32, double for FFNC_F64).
 * - Argument names follow oneDNN: src (input), dst (output), weights, bias, and diff_* for the
 *   gradient of the loss with respect to that tensor.
 * - Sizes are size_t; products of sizes are checked for overflow.
 * - Reductions run in a fixed order that depends on neither the thread count nor the ISA path
 *   chosen at run time, so results are bitwise reproducible.
 */
#ifndef FFNC_H
#define FFNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FFNC_VERSION_MAJOR 0
#define FFNC_VERSION_MINOR 1
#define FFNC_VERSION_PATCH 0

/* ---------------------------------------------------------------------------------------------
 * Status codes, dtypes, version
 * ------------------------------------------------------------------------------------------- */

typedef enum ffnc_status {
    FFNC_OK = 0,
    FFNC_ERR_NULL_POINTER = 1,      /* a required pointer argument is NULL */
    FFNC_ERR_INVALID_ARGUMENT = 2,  /* an argument is out of its domain (enum, hyper-parameter) */
    FFNC_ERR_SIZE_OVERFLOW = 3,     /* a product of sizes does not fit in size_t */
    FFNC_ERR_LABEL_OUT_OF_RANGE = 4,/* a class label is < 0 or >= the number of classes */
    FFNC_ERR_OUT_OF_MEMORY = 5,     /* an allocation failed */
    FFNC_ERR_UNSUPPORTED_ISA = 6,   /* the requested ISA path is not supported by this CPU/build */
    FFNC_ERR_INVALID_DTYPE = 7,     /* the dtype argument is not an ffnc_dtype */
    FFNC_ERR_EMPTY = 8              /* an operation that needs at least one element got none */
} ffnc_status;

/* A sentence describing `status`; never NULL, for unknown codes too. */
const char *ffnc_status_string(ffnc_status status);

typedef enum ffnc_dtype {
    FFNC_F32 = 0,
    FFNC_F64 = 1
} ffnc_dtype;

/* "major.minor.patch" of the library that is linked (may differ from the header's macros). */
const char *ffnc_version(void);

/* ---------------------------------------------------------------------------------------------
 * Threads and CPU dispatch
 *
 * ffnc runs its kernels on OpenMP threads, using num_threads clauses on its own parallel regions
 * only: it never changes the process-wide OpenMP setting. The default thread count is the
 * OpenMP default when the library is first used (OMP_NUM_THREADS, else the number of cores).
 * Small problems run on one thread; the size thresholds were measured (see README).
 *
 * The instruction-set path (generic C, AVX2+FMA, AVX-512) is chosen once by CPUID, the best
 * the CPU supports. The environment variable FFNC_ISA=generic|avx2|avx512 forces a path.
 * ------------------------------------------------------------------------------------------- */

/* Sets the number of threads ffnc uses from now on (n >= 1). */
ffnc_status ffnc_set_num_threads(int n);
int ffnc_get_num_threads(void);

typedef enum ffnc_isa {
    FFNC_ISA_GENERIC = 0,
    FFNC_ISA_AVX2 = 1,    /* AVX2 + FMA */
    FFNC_ISA_AVX512 = 2   /* AVX-512 F, DQ, BW, VL */
} ffnc_isa;

/* The path kernels run on. */
ffnc_isa ffnc_get_isa(void);
/* Forces a path; FFNC_ERR_UNSUPPORTED_ISA when the CPU or the build lacks it. */
ffnc_status ffnc_set_isa(ffnc_isa isa);
/* 1 when this CPU and build can run `isa`, else 0. */
int ffnc_isa_supported(ffnc_isa isa);
/* "generic", "avx2", "avx512"; "unknown" otherwise. */
const char *ffnc_isa_name(ffnc_isa isa);
/* FFNC_OK, or why the FFNC_ISA environment variable could not be honoured (the best supported
 * path is used instead). Lets a binding report a mistyped or unsupported FFNC_ISA. */
ffnc_status ffnc_isa_env_status(void);
/* The OpenMP runtime the library was built with, e.g. "OpenMP 4.5 (201511)". */
const char *ffnc_openmp_info(void);

/* ---------------------------------------------------------------------------------------------
 * Activations (element-wise)
 *
 * The backward of each activation needs either its output (dst) or its input (src), never
 * both, so a fused forward kernel keeps one tensor. ffnc_activation_backward_uses_dst() says
 * which. Conventions at non-differentiable points: relu'(0) = 0, |x|'(0) = 0,
 * hard_tanh'(+-1) = 0. NaN inputs propagate to the outputs.
 * ------------------------------------------------------------------------------------------- */

typedef enum ffnc_activation {
    FFNC_ACT_IDENTITY = 0,   /* x */
    FFNC_ACT_RELU = 1,       /* max(0, x) */
    FFNC_ACT_LEAKY_RELU = 2, /* x > 0 ? x : alpha x, alpha >= 0 */
    FFNC_ACT_ABS = 3,        /* |x|: absolute-value rectification */
    FFNC_ACT_TANH = 4,       /* tanh(x) */
    FFNC_ACT_SIGMOID = 5,    /* 1 / (1 + exp(-x)) */
    FFNC_ACT_SOFTPLUS = 6,   /* log(1 + exp(x)) */
    FFNC_ACT_HARD_TANH = 7,  /* max(-1, min(1, x)) */
    FFNC_ACT_ELU = 8,        /* x > 0 ? x : alpha (exp(x) - 1), alpha >= 0 */
    FFNC_ACT_GELU = 9,       /* x Phi(x), Phi the standard normal CDF (exact, erf form) */
    FFNC_ACT_COUNT = 10
} ffnc_activation;

/* 1 when the backward of `act` takes the forward output (dst), 0 when it takes the input. */
int ffnc_activation_backward_uses_dst(ffnc_activation act);

/* dst[i] = act(src[i]) for i < n. `alpha` is used by leaky relu and elu only. dst may equal src. */
ffnc_status ffnc_activation_forward(ffnc_dtype dtype, ffnc_activation act, double alpha, size_t n,
                                    const void *src, void *dst);

/* diff_src[i] = diff_dst[i] * act'(x_i), where `saved` is the forward output (dst) when
 * ffnc_activation_backward_uses_dst(act), else the forward input (src). diff_src may equal
 * diff_dst. */
ffnc_status ffnc_activation_backward(ffnc_dtype dtype, ffnc_activation act, double alpha, size_t n,
                                     const void *diff_dst, const void *saved, void *diff_src);

/* Parametric relu over a rows x cols matrix: dst = src > 0 ? src : a * src, where a is
 * alpha[c] (n_alpha == cols, one slope per unit) or alpha[0] (n_alpha == 1, one shared slope). */
ffnc_status ffnc_prelu_forward(ffnc_dtype dtype, size_t rows, size_t cols, const void *src,
                               const void *alpha, size_t n_alpha, void *dst);

/* Gradients of prelu: diff_src (rows x cols) and diff_alpha (n_alpha values, the sum over the
 * elements that share each slope). With accumulate != 0, diff_alpha is added to, not set. */
ffnc_status ffnc_prelu_backward(ffnc_dtype dtype, size_t rows, size_t cols, const void *diff_dst,
                                const void *src, const void *alpha, size_t n_alpha,
                                void *diff_src, void *diff_alpha, int accumulate);

/* ---------------------------------------------------------------------------------------------
 * Bias
 * ------------------------------------------------------------------------------------------- */

/* dst[r, c] = src[r, c] + bias[c]. dst may equal src. */
ffnc_status ffnc_bias_forward(ffnc_dtype dtype, size_t rows, size_t cols, const void *src,
                              const void *bias, void *dst);

/* diff_bias[c] (=|+=) sum over r of diff_dst[r, c]: '+=' when accumulate != 0. Rows are summed
 * in increasing order, whatever the thread count. */
ffnc_status ffnc_bias_backward(ffnc_dtype dtype, size_t rows, size_t cols, const void *diff_dst,
                               void *diff_bias, int accumulate);


/* ---------------------------------------------------------------------------------------------
 * Losses
 *
 * Each loss is `scale` times a sum of per-example (or per-element) terms, so the caller picks
 * the reduction: scale = 1/rows for the batch mean, 1 for the sum. Losses are accumulated in
 * double, in a fixed order. The backward kernels take `diff_loss_scale` = scale * dL/dloss.
 * scale and diff_loss_scale must be finite (else FFNC_ERR_INVALID_ARGUMENT); with no rows or
 * elements the loss is 0. Labels are int64 class indices in [0, classes); one outside gives
 * FFNC_ERR_LABEL_OUT_OF_RANGE, checked before anything is written (outputs stay untouched).
 * A NaN input gives a NaN loss and NaN in the outputs that depend on it (a whole softmax row).
 * ------------------------------------------------------------------------------------------- */

/* Softmax + cross-entropy with integer labels, fused and stable for logits of any magnitude
 * (shift by the row max). loss = scale * sum_r -log softmax(logits[r])[labels[r]];
 * probs (rows x classes) receives the softmax, saved for the backward. probs may equal logits. */
ffnc_status ffnc_softmax_xent_forward(ffnc_dtype dtype, size_t rows, size_t classes,
                                      const void *logits, const int64_t *labels, double scale,
                                      void *probs, double *loss);

/* diff_logits = diff_loss_scale * (probs - onehot(labels)). diff_logits may equal probs. */
ffnc_status ffnc_softmax_xent_backward(ffnc_dtype dtype, size_t rows, size_t classes,
                                       const void *probs, const int64_t *labels,
                                       double diff_loss_scale, void *diff_logits);

/* dst[r] = log_softmax(src[r]) = src[r] - max - log(sum exp(src[r] - max)). dst may equal src. */
ffnc_status ffnc_log_softmax_forward(ffnc_dtype dtype, size_t rows, size_t cols, const void *src,
                                     void *dst);

/* diff_src[r] = diff_dst[r] - exp(dst[r]) * sum(diff_dst[r]), dst the forward output.
 * diff_src may equal diff_dst. */
ffnc_status ffnc_log_softmax_backward(ffnc_dtype dtype, size_t rows, size_t cols,
                                      const void *diff_dst, const void *dst, void *diff_src);

/* Sigmoid + binary cross-entropy from logits z and targets y in [0, 1], in the stable form
 * max(z, 0) - y z + log(1 + exp(-|z|)), which for y in {0, 1} is softplus((1 - 2y) z): it
 * saturates only when the answer is right. loss = scale * sum_i of that over n elements. */
ffnc_status ffnc_bce_logits_forward(ffnc_dtype dtype, size_t n, const void *logits,
                                    const void *targets, double scale, double *loss);

/* diff_logits = diff_loss_scale * (sigmoid(z) - y). diff_logits may equal logits or targets. */
ffnc_status ffnc_bce_logits_backward(ffnc_dtype dtype, size_t n, const void *logits,
                                     const void *targets, double diff_loss_scale,
                                     void *diff_logits);

/* Mean squared error: loss = scale * sum_i (pred_i - target_i)^2. */
ffnc_status ffnc_mse_forward(ffnc_dtype dtype, size_t n, const void *pred, const void *target,
                             double scale, double *loss);

/* diff_pred = diff_loss_scale * 2 (pred - target). diff_pred may equal pred or target. */
ffnc_status ffnc_mse_backward(ffnc_dtype dtype, size_t n, const void *pred, const void *target,
                              double diff_loss_scale, void *diff_pred);

/* L1 (absolute error, the conditional median): loss = scale * sum_i |pred_i - target_i|. */
ffnc_status ffnc_l1_forward(ffnc_dtype dtype, size_t n, const void *pred, const void *target,
                            double scale, double *loss);

/* diff_pred = diff_loss_scale * sign(pred - target), sign(0) = 0. diff_pred may equal pred or
 * target. */
ffnc_status ffnc_l1_backward(ffnc_dtype dtype, size_t n, const void *pred, const void *target,
                             double diff_loss_scale, void *diff_pred);

/* ---------------------------------------------------------------------------------------------
 * Optimizer updates over one flat parameter buffer of n values, one pass each, in place.
 * grad is not modified; param, grad and the state buffers (velocity, m, v) must not overlap.
 * State buffers start at zero before the first update. Hyper-parameters must be finite (for
 * FFNC_F32, also once rounded to float); lr >= 0, weight_decay >= 0; a weight_decay of 0 adds
 * no term at all. Out-of-domain values give FFNC_ERR_INVALID_ARGUMENT, NULL pointers (n > 0)
 * FFNC_ERR_NULL_POINTER. Elements are independent: results do not depend on the thread count.
 * A NaN gradient makes its parameter (and state) NaN.
 * ------------------------------------------------------------------------------------------- */

/* p -= lr * (g + weight_decay * p) */
ffnc_status ffnc_sgd_update(ffnc_dtype dtype, size_t n, void *param, const void *grad, double lr,
                            double weight_decay);

/* Heavy-ball momentum (0 <= momentum < 1) with coupled weight decay, as in PyTorch (no
 * dampening):
 *   d = g + weight_decay * p;  v = momentum * v + d;
 *   classic:  p -= lr * v;     nesterov (nesterov != 0):  p -= lr * (d + momentum * v). */
ffnc_status ffnc_momentum_update(ffnc_dtype dtype, size_t n, void *param, const void *grad,
                                 void *velocity, double lr, double momentum, double weight_decay,
                                 int nesterov);

/* Adam (decoupled_weight_decay == 0: g += weight_decay * p, an L2 term the adaptive step
 * rescales) or AdamW (decoupled_weight_decay != 0: p -= lr * weight_decay * p before the step,
 * as torch.optim.AdamW), bias-corrected:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps).
 * step >= 1 counts the updates made so far including this one; 0 <= b1, b2 < 1; eps > 0 (and
 * not 0 once rounded to float, for FFNC_F32). */
ffnc_status ffnc_adam_update(ffnc_dtype dtype, size_t n, void *param, const void *grad, void *m,
                             void *v, int64_t step, double lr, double beta1, double beta2,
                             double eps, double weight_decay, int decoupled_weight_decay);

#ifdef __cplusplus
}
#endif

#endif /* FFNC_H */
