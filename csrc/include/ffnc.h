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
    FFNC_ERR_EMPTY = 8,             /* an operation that needs at least one element got none */
    FFNC_ERR_IO = 9,                /* a file could not be opened, read, written or renamed */
    FFNC_ERR_FORMAT = 10,           /* a file is malformed, truncated or inconsistent */
    FFNC_ERR_UNSUPPORTED = 11,      /* a well-formed file describes what this build cannot run */
    FFNC_ERR_NOT_FOUND = 12,        /* no tensor or metadata entry of that name */
    FFNC_ERR_INTERRUPTED = 13,      /* ffnc_plan_interrupt or ffnc_model_interrupt stopped a run
                                     * between two steps */
    FFNC_ERR_STEP_LIMIT = 14        /* a plan's step counter would pass INT64_MAX (2^63 - 1) */
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
 * only: it never changes the process-wide OpenMP setting. Until ffnc_set_num_threads is called,
 * the count is the calling thread's OpenMP default, read at each call (omp_get_max_threads:
 * OMP_NUM_THREADS, else the number of cores, as changed by omp_set_num_threads or threadpoolctl).
 * Small problems run on one thread; the size thresholds were measured (see README).
 *
 * The instruction-set path (generic C, AVX2+FMA, AVX-512) is chosen once by CPUID, the best
 * the CPU supports. The environment variable FFNC_ISA=generic|avx2|avx512 forces a path.
 * ------------------------------------------------------------------------------------------- */

/* The most threads ffnc runs a kernel on. Counts above it are refused
 * (FFNC_ERR_INVALID_ARGUMENT) rather than passed to OpenMP, whose runtime aborts the process
 * when it cannot create the threads asked for; an OpenMP default above it is capped. 1024 is
 * more than the hardware threads of today's two-socket servers (two 192-core sockets with
 * 2-way SMT: 768). */
#define FFNC_MAX_THREADS 1024

/* Sets the number of threads ffnc uses from now on, in every thread (1 <= n <=
 * FFNC_MAX_THREADS), or goes back to following the OpenMP default (n = 0). */
ffnc_status ffnc_set_num_threads(int n);
/* The count set by ffnc_set_num_threads, or 0 while ffnc follows the OpenMP default. */
int ffnc_get_configured_threads(void);
/* The number of threads ffnc's kernels use for calls made from the calling thread: the count
 * set by ffnc_set_local_num_threads in this thread, else the one set by ffnc_set_num_threads,
 * else the OpenMP default (at most FFNC_MAX_THREADS); capped by ffnc_set_thread_limit. */
int ffnc_get_num_threads(void);
/* Caps the threads of calls made from the calling thread at n (n >= 1), or removes the cap
 * (n = 0). threadpoolctl's threadpool_limits sets it through ffnc's controller. */
ffnc_status ffnc_set_thread_limit(int n);
int ffnc_get_thread_limit(void);
/* Sets the number of threads of calls made from the calling thread only (1 <= n <=
 * FFNC_MAX_THREADS), in place of ffnc_set_num_threads' count and the OpenMP default (the cap
 * above still bounds it), or removes it (n = 0). Lets two threads run ffnc at once, each with
 * its own count. Results do not depend on the count (see the top of this file). */
ffnc_status ffnc_set_local_num_threads(int n);
/* The count set by ffnc_set_local_num_threads in the calling thread, or 0. */
int ffnc_get_local_num_threads(void);

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
 * grad is not modified; param, grad and the state buffers (velocity, m, v, ...) must not overlap.
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

/* RMSprop as torch.optim.RMSprop, with coupled weight decay:
 *   g += weight_decay * p;  square_avg = alpha square_avg + (1 - alpha) g^2;
 *   centered (centered != 0): grad_avg = alpha grad_avg + (1 - alpha) g,
 *       den = sqrt(max(square_avg - grad_avg^2, 0)) + eps;  else den = sqrt(square_avg) + eps;
 *   momentum > 0: momentum_buffer = momentum momentum_buffer + g / den;  p -= lr momentum_buffer;
 *   else p -= lr g / den.
 * 0 <= alpha < 1, 0 <= momentum < 1, eps > 0 (as Adam's). momentum_buffer is used (and may be
 * NULL otherwise) only when momentum > 0, grad_avg only when centered. The max(., 0) only
 * matters where rounding makes the variance negative (PyTorch gives NaN there). */
ffnc_status ffnc_rmsprop_update(ffnc_dtype dtype, size_t n, void *param, const void *grad,
                                void *square_avg, void *momentum_buffer, void *grad_avg,
                                double lr, double alpha, double eps, double weight_decay,
                                double momentum, int centered);

/* *norm = sqrt(sum of src[i]^2), accumulated in double in a fixed order (bitwise the same for
 * every thread count and ISA path), scaled where double squares would overflow or underflow,
 * so the norm is accurate wherever it is representable. NaN if any value is NaN, else +inf if
 * any is infinite; 0 for n == 0. */
ffnc_status ffnc_global_norm(ffnc_dtype dtype, size_t n, const void *src, double *norm);

/* Gradient clipping by global norm, in place: with N = ffnc_global_norm(grad), grad *=
 * max_norm / N (the factor rounded to the element type) when N > max_norm; unchanged when
 * N <= max_norm or N is NaN or infinite (left for the caller to detect). *norm (when not
 * NULL) receives N, the norm before clipping. max_norm must be finite and > 0. Unlike
 * torch.nn.utils.clip_grad_norm_, the factor has no 1e-6 added to N. */
ffnc_status ffnc_clip_by_global_norm(ffnc_dtype dtype, size_t n, void *grad, double max_norm,
                                     double *norm);

/* ---------------------------------------------------------------------------------------------
 * Matrix multiply (GEMM) and dense layers
 *
 * Row-major: a matrix stored as rows x cols with row stride ld (>= cols) holds element (r, c)
 * at index r * ld + c. op(X) is X, or X^T when the matching trans flag is non-zero. The output
 * must not overlap an input. Every element of the result is computed by the same operations in
 * the same order whatever the thread count: results are bitwise reproducible. The ISA paths
 * differ only in rounding (the AVX2 and AVX-512 paths use fused multiply-adds).
 * ------------------------------------------------------------------------------------------- */

/* C (m x n, row stride ldc) = alpha op(A) op(B) + beta C, where op(A) is m x k (A stored k x m
 * when trans_a, else m x k, row stride lda) and op(B) is k x n (B stored n x k when trans_b,
 * else k x n, row stride ldb). beta == 0 does not read C (NaN there is overwritten); alpha == 0
 * or k == 0 does not read A or B. FFNC_ERR_OUT_OF_MEMORY when the packing buffers (a few MiB
 * per thread, kept for later calls) cannot be allocated; C is then unchanged. */
ffnc_status ffnc_gemm(ffnc_dtype dtype, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                      double alpha, const void *a, size_t lda, const void *b, size_t ldb,
                      double beta, void *c, size_t ldc);

/* A dense layer, fused: dst (m x n) = act(src @ op(W) + bias), src m x k, W stored k x n (or
 * n x k with trans_weights, the PyTorch layout), bias n values or NULL. The bias and activation
 * are applied to each tile of dst while it is in cache, with the semantics of
 * ffnc_bias_forward and ffnc_activation_forward (bitwise). pre_act (m x n, or NULL) receives
 * src @ op(W) + bias, the input of the activation, which ffnc_dense_backward needs when
 * ffnc_activation_backward_uses_dst(act) == 0. */
ffnc_status ffnc_dense_forward(ffnc_dtype dtype, size_t m, size_t n, size_t k, const void *src,
                               const void *weights, int trans_weights, const void *bias,
                               ffnc_activation act, double alpha, void *pre_act, void *dst);

/* The backward of ffnc_dense_forward. saved is dst when ffnc_activation_backward_uses_dst(act),
 * else pre_act. In one pass over diff_dst: diff_pre = diff_dst * act'(saved) (m x n; may equal
 * diff_dst; may be NULL when act is identity, then diff_dst is used) and diff_bias (n, or NULL)
 * = the column sums of diff_pre (rows in increasing order, in double, as ffnc_bias_backward).
 * Then diff_weights (shaped like W, or NULL) = src^T diff_pre (or its transpose), and diff_src
 * (m x k, or NULL) = diff_pre op(W)^T; diff_src may start where saved does (saved is read by
 * the first pass only), which lets a caller reuse saved's memory. With accumulate_params != 0,
 * diff_weights and diff_bias are added to instead of set; with accumulate_src != 0, diff_src
 * is. */
ffnc_status ffnc_dense_backward(ffnc_dtype dtype, size_t m, size_t n, size_t k, const void *src,
                                const void *weights, int trans_weights, ffnc_activation act,
                                double alpha, const void *saved, const void *diff_dst,
                                void *diff_pre, void *diff_src, void *diff_weights,
                                void *diff_bias, int accumulate_params, int accumulate_src);

/* ---------------------------------------------------------------------------------------------
 * Plans: a compiled training step (forward, backward, optimizer update) as an array of
 * instructions that ffnc_plan_run executes in one call, with no allocation per step.
 *
 * Every operand is a reference into one of the plan's arenas, allocated (zeroed) once by
 * ffnc_plan_create: parameters, gradients, persistent state (optimizer state, constants,
 * frozen parameters) and activations (every intermediate, slices reused by liveness), all of
 * the plan's dtype; or into an input slot, bound to a caller array at each run. Offsets and
 * sizes count elements. A size is `fixed + per_batch * batch`, batch being the number of rows
 * of this run (1 <= batch <= max_batch), so one plan serves every batch size up to its max.
 * ffnc_plan_create checks every operand of every instruction (in bounds at every batch size,
 * with overflow-checked arithmetic, input slots read only, the right element type), so a
 * created plan never reads or writes outside its arenas or its inputs.
 *
 * Threads: a plan is run by one thread at a time (its arenas are the step's working memory):
 * calls on one plan from several threads at once must be serialised by the caller (Python's
 * ffnc.compiler.Plan holds a lock per plan), ffnc_plan_interrupt excepted. Different plans run
 * at once from different threads, each call on its own OpenMP team.
 * ------------------------------------------------------------------------------------------- */

typedef enum ffnc_plan_arena {
    FFNC_PLAN_NONE = 0,    /* no operand (an optional one left out) */
    FFNC_PLAN_PARAMS = 1,  /* trainable parameters: what the optimizer instructions update */
    FFNC_PLAN_GRADS = 2,   /* their gradients, in the same layout */
    FFNC_PLAN_STATE = 3,   /* optimizer state, constants, frozen parameters */
    FFNC_PLAN_ACTS = 4,    /* intermediates */
    FFNC_PLAN_INPUT = 5    /* input slot `slot`, bound per run (read only) */
} ffnc_plan_arena;

typedef struct ffnc_plan_ref {
    int32_t arena;   /* an ffnc_plan_arena */
    uint32_t slot;   /* the input slot, for FFNC_PLAN_INPUT */
    size_t offset;   /* in elements */
} ffnc_plan_ref;

/* fixed + per_batch * batch */
typedef struct ffnc_plan_size {
    size_t fixed;
    size_t per_batch;
} ffnc_plan_size;

typedef enum ffnc_plan_opcode {
    /* refs: src, weights, bias?, pre_act?, dst; m, n, k; subop activation, alpha; TRANS_B */
    FFNC_OP_DENSE_FORWARD = 1,
    /* refs: src?, weights?, saved?, diff_dst, diff_pre?, diff_src?, diff_weights?, diff_bias?;
     * as ffnc_dense_backward; ACCUMULATE (params), ACCUMULATE_SRC, TRANS_B, BETA */
    FFNC_OP_DENSE_BACKWARD = 2,
    /* refs: a, b, c; c (m x n) = alpha op(a) op(b) (+ c with ACCUMULATE, + hyper[0] c with
     * BETA); TRANS_A, TRANS_B */
    FFNC_OP_GEMM = 3,
    /* refs: src, dst (n elements); subop activation, alpha */
    FFNC_OP_ACT_FORWARD = 4,
    /* refs: diff_dst, saved, diff_src (n elements); subop activation, alpha */
    FFNC_OP_ACT_BACKWARD = 5,
    /* refs: src (m x n), bias (n), dst */
    FFNC_OP_BIAS_FORWARD = 6,
    /* refs: src (m x n), dst (n): column sums, rows in increasing order (ACCUMULATE, MEAN) */
    FFNC_OP_COLSUM = 7,
    /* refs: src (m x n), dst (m): row sums, columns in increasing order (ACCUMULATE, MEAN) */
    FFNC_OP_ROWSUM = 8,
    /* refs: src (n), dst (1): the sum in fixed blocks (ACCUMULATE, MEAN) */
    FFNC_OP_SUM_ALL = 9,
    /* refs: logits (m x n), labels (int64 input, m), probs (m x n), loss (1); MEAN divides
     * by m; the loss is further multiplied by alpha */
    FFNC_OP_XENT_FORWARD = 10,
    /* refs: probs, labels, ct? (1), diff_logits; scale = alpha * ct (* 1/m with MEAN) */
    FFNC_OP_XENT_BACKWARD = 11,
    /* refs: a (n), b (n), loss (1); MEAN divides by n; times alpha */
    FFNC_OP_BCE_FORWARD = 12,
    FFNC_OP_MSE_FORWARD = 13,
    FFNC_OP_L1_FORWARD = 14,
    /* refs: a (n), b (n), ct? (1), diff_a (n); scale = alpha * ct (* 1/n with MEAN) */
    FFNC_OP_BCE_BACKWARD = 15,
    FFNC_OP_MSE_BACKWARD = 16,
    FFNC_OP_L1_BACKWARD = 17,
    /* refs: a, b, dst (m x n, contiguous): dst[r, c] (=|+=) a[r sa0 + c sa1] op b[r sb0 + c sb1]
     * with strides[] = {sa0, sa1, sb0, sb1} (0 broadcasts); subop an ffnc_plan_binary */
    FFNC_OP_BINARY = 18,
    /* refs: a, dst (m x n): dst[r, c] (=|+=) f(a[r sa0 + c sa1]); subop an ffnc_plan_unary */
    FFNC_OP_UNARY = 19,
    /* refs: dst (n): every element = alpha */
    FFNC_OP_FILL = 20,
    /* refs: dst (n): every element = m (the size, at this run's batch) */
    FFNC_OP_FILL_COUNT = 21,
    /* refs: params, grads (n each); hyper = {lr, weight_decay} */
    FFNC_OP_SGD = 22,
    /* refs: params, grads, velocity; hyper = {lr, momentum, weight_decay}; NESTEROV */
    FFNC_OP_MOMENTUM = 23,
    /* refs: params, grads, m, v; hyper = {lr, beta1, beta2, eps, weight_decay}; DECOUPLED;
     * the step is the plan's step counter + 1 */
    FFNC_OP_ADAM = 24,

    /* ---- 30-59: selection, row-wise, index and layout instructions --------------------------
     * Bool and integer results (comparisons, argmax, one-hot indices) are stored in the plan's
     * dtype, exactly: 0/1 for bools, integers of magnitude <= 2^24 (float32) or 2^53 (float64).
     * int64 input slots are converted once by FFNC_OP_FROM_INT64. Along-an-axis instructions
     * view their source as m x n x k: m outer lines, the axis of length n, k inner elements
     * (k = 1: contiguous rows). Row-wise reductions run in a fixed order (the thread count
     * changes nothing). */
    /* refs: cond, a, b, dst (m x n, contiguous): dst[r, c] = cond[r sc0 + c sc1] != 0 ?
     * a[r sa0 + c sa1] : b[r sb0 + c sb1], strides[] = {sc0, sc1, sa0, sa1, sb0, sb1} */
    FFNC_OP_WHERE = 30,
    /* refs: indices (m), scale? (m), dst (m x n): dst[r, c] = (c == indices[r]) (times
     * scale[r] when given: the scatter of a max's gradient to its argmax). An index that is
     * not an integer in [0, n) gives FFNC_ERR_LABEL_OUT_OF_RANGE before anything is written */
    FFNC_OP_ONE_HOT = 31,
    /* refs: src (an int64 input slot, n), dst (n): the values in the plan's dtype. subop 0
     * rounds to nearest (a cast); subop 1 requires them exact (|v| <= 2^24 for float32, 2^53
     * for float64; else FFNC_ERR_LABEL_OUT_OF_RANGE, nothing written) */
    FFNC_OP_FROM_INT64 = 32,
    /* refs: src (m x n x k), dst (m x n x k): softmax along n, shifted by the line max (by 0
     * when that is not finite, as ffnc.graph defines it: a line of -inf stays -inf in
     * log-softmax and logsumexp); exp is the vectorised one of the kernels, sums in double */
    FFNC_OP_SOFTMAX = 33,
    /* refs: src, dst (m x n x k): log-softmax along n */
    FFNC_OP_LOG_SOFTMAX = 34,
    /* refs: src (m x n x k), dst (m x k): log(sum(exp)) along n, shifted by the line max */
    FFNC_OP_LOGSUMEXP = 35,
    /* refs: src (m x n x k), max? (m x k), argmax? (m x k), at least one: the first maximum
     * along n and its index (NaN counts as the largest, as numpy's argmax) */
    FFNC_OP_MAX_ARGMAX = 36,
    /* refs: src, dst: dst[r sd0 + c sd1] (=|+=) src[r ss0 + c ss1] for r < m, c < n,
     * strides[] = {ss0, ss1, sd0, sd1}; ACCUMULATE (concatenation writes strided blocks) */
    FFNC_OP_COPY_STRIDED = 37,
    /* refs: x (m x k), centers (n x k), dst (m x n): sum over j of (x[r, j] - centers[c, j])^2
     * in double, j in increasing order */
    FFNC_OP_SQDIST = 38,
    /* refs: src (n), dst (n): inverted dropout, alpha = p in [0, 1), hyper[0] and hyper[1] the
     * low and high 32 bits of the seed. Element i is kept iff u >= p, where u = (z >> 11) 2^-53
     * and z is the splitmix64 finaliser of seed 0x9E3779B97F4A7C15 + step 0xD1B54A32D192ED03 + i
     * (64-bit wrap-around, step = the plan's step counter); kept: src[i] * (1 / (1 - p)) rounded
     * to the dtype, dropped: 0 (see ffnc_dropout_keep) */
    FFNC_OP_DROPOUT = 39,
    /* refs: diff_dst, dst (the softmax output), diff_src (m x n x k): dst * (g - sum(dst g)) */
    FFNC_OP_SOFTMAX_BACKWARD = 40,
    /* refs: diff_dst, dst (the log-softmax output), diff_src: g - exp(dst) sum(g) */
    FFNC_OP_LOG_SOFTMAX_BACKWARD = 41,
    /* refs: src (m x n), dst (n x m): the transpose, for sizes that grow with the batch */
    FFNC_OP_TRANSPOSE = 42,
    /* refs: src (m x n), alpha (k = 1 or n slopes), dst (m x n): as ffnc_prelu_forward */
    FFNC_OP_PRELU_FORWARD = 43,
    /* refs: diff_dst, src (m x n), alpha (k), diff_src (m x n), diff_alpha (k): as
     * ffnc_prelu_backward; ACCUMULATE adds to diff_alpha */
    FFNC_OP_PRELU_BACKWARD = 44,

    /* ---- 60-69: optimizer instructions ------------------------------------------------------
     * The learning rate of an update instruction (SGD, MOMENTUM, ADAM, RMSPROP) is hyper[0];
     * ffnc_plan_set_lr changes it, ffnc_plan_run_epoch_scaled multiplies it per step. */
    /* refs: params, grads, square_avg, momentum_buffer? (when momentum > 0), grad_avg? (with
     * CENTERED, required then) (n each); hyper = {lr, alpha, eps, weight_decay, momentum};
     * as ffnc_rmsprop_update */
    FFNC_OP_RMSPROP = 60,
    /* refs: grads (n), norm? (1): ffnc_clip_by_global_norm with max_norm = hyper[0]; norm
     * receives the norm before clipping, rounded to the dtype. Placed before the update. */
    FFNC_OP_CLIP_GRAD_NORM = 61
} ffnc_plan_opcode;

typedef enum ffnc_plan_binary {
    FFNC_BINARY_ADD = 0, FFNC_BINARY_SUB = 1, FFNC_BINARY_MUL = 2, FFNC_BINARY_DIV = 3,
    FFNC_BINARY_MAXIMUM = 4, FFNC_BINARY_MINIMUM = 5,
    /* comparisons: 1 where they hold, else 0 (false with a NaN operand) */
    FFNC_BINARY_GREATER = 6, FFNC_BINARY_GREATER_EQUAL = 7, FFNC_BINARY_EQUAL = 8
} ffnc_plan_binary;

typedef enum ffnc_plan_unary {
    FFNC_UNARY_COPY = 0, FFNC_UNARY_NEG = 1, FFNC_UNARY_SCALE = 2 /* alpha x */,
    FFNC_UNARY_EXP = 3, FFNC_UNARY_LOG = 4, FFNC_UNARY_SQUARE = 5, FFNC_UNARY_SQRT = 6
} ffnc_plan_unary;

enum {
    FFNC_PLAN_TRANS_A = 1u << 0,
    FFNC_PLAN_TRANS_B = 1u << 1,
    FFNC_PLAN_ACCUMULATE = 1u << 2,
    FFNC_PLAN_ACCUMULATE_SRC = 1u << 3,
    FFNC_PLAN_MEAN = 1u << 4,
    FFNC_PLAN_NESTEROV = 1u << 5,
    FFNC_PLAN_DECOUPLED = 1u << 6,
    FFNC_PLAN_CENTERED = 1u << 7,   /* FFNC_OP_RMSPROP: the centered variant */
    /* FFNC_OP_GEMM: c = alpha op(a) op(b) + hyper[0] c; FFNC_OP_DENSE_BACKWARD: diff_weights =
     * hyper[0] diff_weights + the product (diff_bias still follows ACCUMULATE). hyper[0] is
     * finite (and a float for FFNC_F32). How a momentum update takes a weight gradient
     * straight into its velocity, v = momentum v + g, without storing g. */
    FFNC_PLAN_BETA = 1u << 8,
    /* FFNC_OP_DENSE_BACKWARD with BETA, in a whole step (ffnc_plan_run, ffnc_plan_run_epoch*):
     * the weights (refs[1], in the parameter arena, no other operand there) take the SGD step
     * weights -= hyper[1] * lr_scale * diff_weights in the store of the weight gradient product
     * (diff_weights being the velocity), after diff_src is computed; the SGD instruction over
     * those weights, marked STEPPED, is then skipped. A phased step (ffnc_plan_run_phase)
     * does the reverse: no step in the backward, the STEPPED SGD runs in the update phase.
     * The same operations on the same values either way: the same bits. hyper[1] is the
     * learning rate (ffnc_plan_set_lr sets it too). The compiler marks only weights that no
     * instruction reads between the product and the SGD; the plan does not check the pairing. */
    FFNC_PLAN_STEP = 1u << 9,
    FFNC_PLAN_STEPPED = 1u << 10
};

#define FFNC_PLAN_MAX_REFS 8

typedef struct ffnc_plan_instr {
    int32_t opcode;        /* an ffnc_plan_opcode */
    int32_t subop;         /* ffnc_activation, ffnc_plan_binary or ffnc_plan_unary */
    uint32_t flags;        /* FFNC_PLAN_* bits */
    ffnc_plan_size m, n, k;
    double alpha;          /* activation alpha, GEMM alpha, scale, fill value */
    double hyper[5];       /* optimizer hyper-parameters */
    size_t strides[6];     /* operand strides of BINARY, UNARY, WHERE, COPY_STRIDED */
    ffnc_plan_ref refs[FFNC_PLAN_MAX_REFS];
} ffnc_plan_instr;

typedef enum ffnc_plan_input_type {
    FFNC_PLAN_INPUT_FLOAT = 0,  /* the plan's dtype */
    FFNC_PLAN_INPUT_INT64 = 1   /* class labels */
} ffnc_plan_input_type;

/* An input slot holds fixed + per_batch * batch elements; per_batch elements per row. */
typedef struct ffnc_plan_input {
    int32_t type;   /* an ffnc_plan_input_type */
    ffnc_plan_size size;
} ffnc_plan_input;

typedef struct ffnc_plan_desc {
    ffnc_dtype dtype;
    size_t max_batch;               /* >= 1 */
    size_t arena_size[4];           /* elements of params, grads, state, acts */
    size_t n_inputs;
    const ffnc_plan_input *inputs;
    size_t n_instrs;
    const ffnc_plan_instr *instrs;
    size_t n_records;               /* scalars ffnc_plan_run_epoch records after each step */
    const ffnc_plan_ref *records;
} ffnc_plan_desc;

typedef struct ffnc_plan ffnc_plan;

/* Checks `desc` and every instruction, copies them and allocates the zeroed arenas (the only
 * allocation; runs allocate nothing). FFNC_ERR_INVALID_ARGUMENT for a malformed instruction
 * (unknown opcode or sub-op, operand out of bounds, missing or misplaced operand, invalid
 * hyper-parameter), FFNC_ERR_SIZE_OVERFLOW when its sizes overflow; `*bad_instr` (when not NULL) then receives its index (n_instrs when the
 * problem is elsewhere). */
ffnc_status ffnc_plan_create(const ffnc_plan_desc *desc, ffnc_plan **plan, size_t *bad_instr);
void ffnc_plan_destroy(ffnc_plan *plan);

/* The arena `arena` (FFNC_PLAN_PARAMS..FFNC_PLAN_ACTS) and its size in elements. */
ffnc_status ffnc_plan_arena_data(ffnc_plan *plan, ffnc_plan_arena arena, void **data,
                                 size_t *size);

/* Runs every instruction once over inputs[i] (input slot i, batch rows) and then counts one
 * step (the counter Adam's bias correction reads). On an error the step stops at the failing
 * instruction, whose index goes to *failed_instr (when not NULL), and is not counted.
 * FFNC_ERR_STEP_LIMIT, before any instruction runs (*failed_instr untouched), when the step
 * counter is at its end (see ffnc_plan_get_step). */
ffnc_status ffnc_plan_run(ffnc_plan *plan, size_t batch, const void *const *inputs,
                          size_t *failed_instr);

/* ffnc_plan_run (the same step, the same bits, and it counts), timing each instruction: its
 * wall-clock seconds are added to seconds[i], one value per instruction of the plan (the
 * n_instrs of its ffnc_plan_desc), so that calls over several steps accumulate. */
ffnc_status ffnc_plan_run_timed(ffnc_plan *plan, size_t batch, const void *const *inputs,
                                double *seconds, size_t *failed_instr);

/* A step in two phases, for callers that act on the gradients between them (data-parallel
 * training averages the gradient arena across processes there). The update phase starts at
 * the first instruction that clips or applies the gradients (FFNC_OP_CLIP_GRAD_NORM, SGD,
 * MOMENTUM, ADAM, RMSPROP) and runs to the end of the plan; the gradients phase is everything
 * before it (forward and backward). Running GRADIENTS then UPDATE with the same batch and
 * inputs is ffnc_plan_run, bit for bit; only UPDATE counts the step. A plan without update
 * instructions has an empty update phase (which still counts the step). Errors as
 * ffnc_plan_run's; FFNC_ERR_INVALID_ARGUMENT for another `phase`. */
typedef enum ffnc_plan_phase {
    FFNC_PLAN_PHASE_GRADIENTS = 1,
    FFNC_PLAN_PHASE_UPDATE = 2
} ffnc_plan_phase;

ffnc_status ffnc_plan_run_phase(ffnc_plan *plan, size_t batch, const void *const *inputs,
                                ffnc_plan_phase phase, size_t *failed_instr);
/* The index of the first instruction of the update phase (n_instrs when there is none). */
size_t ffnc_plan_update_begin(const ffnc_plan *plan);

/* Runs ceil(rows / batch) steps over whole-dataset inputs: step s binds each per-row input
 * slot to rows [s batch, min(rows, (s + 1) batch)) (fixed-size slots are bound whole), so
 * the last step may be smaller. After each step the plan's record scalars are stored as
 * doubles in records[s * n_records + j] (records may be NULL when n_records is 0).
 * Stops at the first error (see ffnc_plan_run) or at an interrupt request between steps
 * (FFNC_ERR_INTERRUPTED, see ffnc_plan_interrupt); *steps_done gets the steps completed. */
ffnc_status ffnc_plan_run_epoch(ffnc_plan *plan, size_t rows, size_t batch,
                                const void *const *inputs, double *records, size_t *steps_done,
                                size_t *failed_instr);

/* Interrupting an epoch (a Ctrl-C handler, another thread): ffnc_plan_interrupt requests that
 * the ffnc_plan_run_epoch(_scaled) running on `plan` stop at the next step boundary. The run
 * checks before each step; when a request is pending it clears it and returns
 * FFNC_ERR_INTERRUPTED, *steps_done telling the steps completed (their records are stored),
 * so the plan is exactly as after that many steps: parameters, optimizer state and step
 * counter all consistent, ready to run again. A request made while no epoch runs stops the
 * next one before its first step. Async-signal-safe (one lock-free atomic store) and callable
 * from any thread. ffnc_plan_run and ffnc_plan_run_phase, single steps, ignore requests.
 * ffnc_plan_clear_interrupt withdraws a pending request: 1 when there was one, else 0. */
ffnc_status ffnc_plan_interrupt(ffnc_plan *plan);
int ffnc_plan_clear_interrupt(ffnc_plan *plan);

/* The step counter (steps completed since creation, or as last set, e.g. from a checkpoint).
 * It ends at INT64_MAX: at that value every run (either phase too), and any epoch that would
 * count past it, is refused before it starts (FFNC_ERR_STEP_LIMIT). */
int64_t ffnc_plan_get_step(const ffnc_plan *plan);
ffnc_status ffnc_plan_set_step(ffnc_plan *plan, int64_t step);

/* The learning rate of the plan's update instructions (hyper[0] of FFNC_OP_SGD, MOMENTUM,
 * ADAM, RMSPROP): get reads the first one's, set changes every one's in place, between runs.
 * FFNC_ERR_INVALID_ARGUMENT when the plan has no update instruction, or for an lr that is
 * negative or not finite (for FFNC_F32, also once rounded to float); the plan is then
 * unchanged. */
ffnc_status ffnc_plan_get_lr(const ffnc_plan *plan, double *lr);
ffnc_status ffnc_plan_set_lr(ffnc_plan *plan, double lr);

/* ffnc_plan_run_epoch with a learning-rate schedule: step s of the epoch runs its update
 * instructions with lr * lr_scale[s] (a double product, rounded to the dtype by the update as
 * any lr), lr_scale holding one value per step, ceil(rows / batch) of them. Every value must
 * be finite and >= 0, and every scaled rate valid for the dtype: otherwise
 * FFNC_ERR_INVALID_ARGUMENT before any step runs. The plan's own lr is unchanged afterwards.
 * lr_scale == NULL runs ffnc_plan_run_epoch. */
ffnc_status ffnc_plan_run_epoch_scaled(ffnc_plan *plan, size_t rows, size_t batch,
                                       const void *const *inputs, const double *lr_scale,
                                       double *records, size_t *steps_done,
                                       size_t *failed_instr);

/* The mask of FFNC_OP_DROPOUT: 1 when element `index` is kept at step `step` with drop
 * probability p, else 0. A pure function, so any thread split and the reference interpreter
 * (ffnc.graph.dropout) draw the same mask. */
int ffnc_dropout_keep(uint64_t seed, uint64_t step, uint64_t index, double p);

/* =============================================================================================
 * Safetensors files (https://huggingface.co/docs/safetensors)
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of a JSON object
 * naming each tensor's dtype, shape and byte range in the data that follows, and an optional
 * "__metadata__" object of string -> string. The reader is strict: it loads the whole file
 * (never allocating more than the file's own size implies), and rejects with FFNC_ERR_FORMAT a
 * header longer than the file or than 100 MB, JSON that is not exactly one object (duplicate
 * keys, unknown entry fields, bad escapes, nesting deeper than 64), unknown dtypes, shapes
 * whose element count overflows or disagrees with the byte range, ranges outside the data,
 * overlapping, or leaving holes, and trailing bytes. Values are converted from little-endian to
 * the host's byte order on reading.
 * ------------------------------------------------------------------------------------------- */

typedef enum ffnc_tensor_dtype {
    FFNC_TENSOR_BOOL = 0, FFNC_TENSOR_U8 = 1, FFNC_TENSOR_I8 = 2, FFNC_TENSOR_I16 = 3,
    FFNC_TENSOR_U16 = 4, FFNC_TENSOR_F16 = 5, FFNC_TENSOR_BF16 = 6, FFNC_TENSOR_I32 = 7,
    FFNC_TENSOR_U32 = 8, FFNC_TENSOR_F32 = 9, FFNC_TENSOR_F64 = 10, FFNC_TENSOR_I64 = 11,
    FFNC_TENSOR_U64 = 12, FFNC_TENSOR_F8_E5M2 = 13, FFNC_TENSOR_F8_E4M3 = 14,
    FFNC_TENSOR_DTYPE_COUNT = 15
} ffnc_tensor_dtype;

/* The safetensors name ("F32", "I64", ...); "unknown" for other values. */
const char *ffnc_tensor_dtype_name(ffnc_tensor_dtype dtype);
/* Bytes per element; 0 for values that are not an ffnc_tensor_dtype. */
size_t ffnc_tensor_dtype_size(ffnc_tensor_dtype dtype);

/* Tensors have at most this many dimensions (0 dimensions: a scalar, one element). */
#define FFNC_TENSOR_MAX_DIMS 8

typedef struct ffnc_tensor_info {
    const char *name;      /* owned by the file object */
    ffnc_tensor_dtype dtype;
    size_t ndim;
    size_t shape[FFNC_TENSOR_MAX_DIMS];
    size_t count;          /* elements: the product of the shape */
    size_t nbytes;         /* count * ffnc_tensor_dtype_size(dtype) */
} ffnc_tensor_info;

typedef struct ffnc_safetensors ffnc_safetensors;

/* Reads and checks the file at `path` (FFNC_ERR_IO when it cannot be read, FFNC_ERR_FORMAT
 * when it is not a valid safetensors file). Free with ffnc_safetensors_free. */
ffnc_status ffnc_safetensors_load(const char *path, ffnc_safetensors **file);
/* The same from `size` bytes in memory (copied). */
ffnc_status ffnc_safetensors_parse(const void *bytes, size_t size, ffnc_safetensors **file);
void ffnc_safetensors_free(ffnc_safetensors *file);

/* Number of tensors; info about tensor `index` (in file order: by data offset). */
size_t ffnc_safetensors_count(const ffnc_safetensors *file);
ffnc_status ffnc_safetensors_info(const ffnc_safetensors *file, size_t index,
                                  ffnc_tensor_info *info);
/* Info about the tensor called `name`; FFNC_ERR_NOT_FOUND when there is none. */
ffnc_status ffnc_safetensors_find(const ffnc_safetensors *file, const char *name,
                                  ffnc_tensor_info *info);
/* Copies tensor `name` into dst, which holds `count` elements of `dtype`. The dtype and the
 * element count must match the file's exactly (FFNC_ERR_INVALID_ARGUMENT otherwise: no
 * conversion happens). */
ffnc_status ffnc_safetensors_read(const ffnc_safetensors *file, const char *name,
                                  ffnc_tensor_dtype dtype, size_t count, void *dst);
/* The "__metadata__" value for `key` (owned by the file object); FFNC_ERR_NOT_FOUND. */
ffnc_status ffnc_safetensors_metadata(const ffnc_safetensors *file, const char *key,
                                      const char **value);

/* Writing: collect tensors and metadata, then save. */
typedef struct ffnc_safetensors_writer ffnc_safetensors_writer;

ffnc_status ffnc_safetensors_writer_create(ffnc_safetensors_writer **writer);
void ffnc_safetensors_writer_free(ffnc_safetensors_writer *writer);
/* Adds tensor `name` (copied; not "__metadata__", not added before) of `ndim` <=
 * FFNC_TENSOR_MAX_DIMS dimensions. `data` (host byte order) is NOT copied: it must stay valid
 * and unchanged until ffnc_safetensors_writer_save returns. */
ffnc_status ffnc_safetensors_writer_add(ffnc_safetensors_writer *writer, const char *name,
                                        ffnc_tensor_dtype dtype, size_t ndim,
                                        const size_t *shape, const void *data);
/* Adds a "__metadata__" entry (both strings copied; UTF-8; each key once). */
ffnc_status ffnc_safetensors_writer_add_metadata(ffnc_safetensors_writer *writer,
                                                 const char *key, const char *value);
/* Writes the file atomically: to a temporary file in the same directory, flushed to disk
 * (fsync), then renamed over `path`, so a reader sees the old file or the whole new one, never
 * a partial one. Tensors are laid out by decreasing element size (so every tensor is aligned
 * to its element size in the data) and the header is padded with spaces to a multiple of 8.
 * The temporary file is ".<name>.ffnc-<random>.tmp" (<name> the last component of `path`),
 * locked (flock) by its writer until the rename; a save first removes the unlocked ones of
 * earlier saves to the same path, left by writers killed mid-write. Python's ffnc.io writes
 * and cleans up the same way, so either removes the other's leftovers. */
ffnc_status ffnc_safetensors_writer_save(const ffnc_safetensors_writer *writer,
                                         const char *path);

/* =============================================================================================
 * Models: multi-layer perceptrons, trained, evaluated and saved from C
 *
 * A model is a stack of dense layers, layer i mapping sizes[i] inputs to sizes[i + 1] outputs:
 * y = act_i(x W_i + b_i), W_i of shape (sizes[i], sizes[i + 1]), and an output loss. Every step
 * runs on the plan executor (ffnc_plan_*): a model builds its training plan (fused dense
 * forward with bias and activation, the fused loss forward and backward, the dense backward,
 * one optimizer update over all parameters) and its inference plans from these instructions.
 *
 * Parameters live in one flat buffer of the model's dtype, in the order and layout of the
 * Python ffnc.nn.Sequential: "0.weight" (sizes[0] x sizes[1], row-major), "0.bias" (sizes[1]),
 * "1.weight", ... . ffnc_model_save writes them, and ffnc_model_load reads them, in checkpoint
 * format v1, the format of ffnc.io: a model saved by Python loads in C and the other way round.
 *
 * Random numbers come from a counter-based generator (SplitMix64's mixing function applied to a
 * key and a counter), so a seed gives the same numbers on every platform, compiler and thread
 * count: value t of stream s under seed k is mix(mix(k + s * G) + (t + 1) * G), G =
 * 0x9E3779B97F4A7C15, mapped to [0, 1) by its top 53 bits.
 *
 * Initialization (ffnc_model_create, ffnc_model_init): biases are 0; W_i[r, c] = a (2u - 1), u
 * the uniform value t = r * sizes[i + 1] + c of stream i, with a = sqrt(6 / fan_in) (He) after
 * relu, abs, elu and gelu, sqrt(6 / ((1 + alpha^2) fan_in)) after leaky_relu, and
 * sqrt(6 / (fan_in + fan_out)) (Glorot) after identity, tanh, sigmoid, softplus and hard_tanh.
 *
 * Models are not thread-safe: use one model from one thread at a time (each call runs its
 * kernels on ffnc's OpenMP threads); ffnc_model_interrupt is the exception.
 * ------------------------------------------------------------------------------------------- */

typedef enum ffnc_loss {
    FFNC_LOSS_NONE = 0,          /* no loss: the model predicts only (its raw outputs) */
    /* Softmax + cross-entropy. Targets: int64 class labels in [0, outputs), one per row.
     * Loss: the mean over rows. Prediction: the softmax probabilities. */
    FFNC_LOSS_SOFTMAX_XENT = 1,
    /* Sigmoid + binary cross-entropy from the outputs as logits. Targets: rows x outputs values
     * in [0, 1] of the model's dtype. Loss: the mean over all elements. Prediction: sigmoid. */
    FFNC_LOSS_BCE = 2,
    /* Mean squared error. Targets: rows x outputs of the model's dtype. Loss: the mean over all
     * elements of (output - target)^2. Prediction: the outputs. */
    FFNC_LOSS_MSE = 3
} ffnc_loss;

typedef struct ffnc_model_desc {
    ffnc_dtype dtype;
    size_t n_layers;                      /* >= 1 dense layers */
    const size_t *sizes;                  /* n_layers + 1 widths, each >= 1 */
    const ffnc_activation *activations;   /* n_layers; usually identity for the last layer */
    const double *alphas;                 /* n_layers, or NULL: the alpha of leaky_relu
                                           * (default 0.01) and elu (default 1); ignored for
                                           * the other activations */
    ffnc_loss loss;
} ffnc_model_desc;

typedef struct ffnc_model ffnc_model;

/* Creates a model and initializes it from `seed` (see above). FFNC_ERR_INVALID_ARGUMENT for
 * a zero width, an unknown activation or loss, a negative or non-finite alpha;
 * FFNC_ERR_SIZE_OVERFLOW when the parameter count overflows. */
ffnc_status ffnc_model_create(const ffnc_model_desc *desc, uint64_t seed, ffnc_model **model);
void ffnc_model_destroy(ffnc_model *model);

/* Re-initializes the parameters from `seed` and forgets the optimizer state. */
ffnc_status ffnc_model_init(ffnc_model *model, uint64_t seed);

/* The model's description; its arrays are owned by the model (valid until it is destroyed). */
ffnc_status ffnc_model_get_desc(const ffnc_model *model, ffnc_model_desc *desc);

/* The flat parameter buffer (writable; `count` elements of the model's dtype) in the layout
 * above. Changing it changes the model. */
ffnc_status ffnc_model_params(ffnc_model *model, void **data, size_t *count);
/* Layer `layer`'s weights (sizes[layer] x sizes[layer + 1]) and bias (sizes[layer + 1]), both
 * pointers into the flat buffer. */
ffnc_status ffnc_model_layer_params(ffnc_model *model, size_t layer, void **weights,
                                    void **bias);

typedef enum ffnc_optimizer {
    FFNC_OPTIMIZER_SGD = 0,       /* ffnc_sgd_update */
    FFNC_OPTIMIZER_MOMENTUM = 1,  /* ffnc_momentum_update */
    FFNC_OPTIMIZER_ADAM = 2       /* ffnc_adam_update (AdamW with decoupled_weight_decay) */
} ffnc_optimizer;

typedef struct ffnc_train_config {
    ffnc_optimizer optimizer;
    double learning_rate;          /* >= 0, finite */
    double momentum;               /* momentum: [0, 1) */
    int nesterov;                  /* momentum: Nesterov's variant when != 0 */
    double beta1, beta2, eps;      /* adam */
    double weight_decay;           /* >= 0; coupled (an L2 term) unless decoupled */
    int decoupled_weight_decay;    /* adam: AdamW */
    size_t batch_size;             /* >= 1; the last batch of an epoch may be smaller */
    size_t epochs;                 /* >= 1 */
    int shuffle;                   /* != 0: a new order of the rows every epoch */
    uint64_t seed;                 /* of the shuffling (counter-based, see above) */
} ffnc_train_config;

/* Fills `config` with the defaults for `optimizer`: learning rate 0.01 (sgd, momentum) or
 * 0.001 (adam), momentum 0.9, beta1 0.9, beta2 0.999, eps 1e-8, no weight decay, batch size 32,
 * one epoch, shuffling with seed 0. */
ffnc_status ffnc_train_config_init(ffnc_train_config *config, ffnc_optimizer optimizer);

/* Trains on `rows` examples: x (rows x sizes[0], the model's dtype) and targets (see
 * ffnc_loss), config->epochs passes in batches of config->batch_size. epoch_losses (NULL, or
 * config->epochs values) receives each epoch's mean training loss (the batch losses weighted
 * by their sizes, measured before each update). The optimizer state (momentum velocity, Adam
 * moments and step) carries over from one call to the next while the optimizer kind stays
 * the same, and is saved by ffnc_model_save; a different kind starts from zero. Labels are
 * checked before training starts (FFNC_ERR_LABEL_OUT_OF_RANGE); the model is unchanged on
 * argument errors. Shuffling copies the data once (rows x (sizes[0] + targets) values). */
ffnc_status ffnc_model_train(ffnc_model *model, const ffnc_train_config *config, size_t rows,
                             const void *x, const void *targets, double *epoch_losses);

/* Interrupting training (a Ctrl-C handler, another thread): ffnc_model_interrupt requests that
 * the ffnc_model_train running on `model` stop at the next step boundary. That call then
 * returns FFNC_ERR_INTERRUPTED, the model holding the weights, optimizer state and step count
 * of the last completed step (epoch_losses receives the completed epochs' losses only), ready
 * to train on. A request made while no training runs stops the next ffnc_model_train before
 * its first step; requests made during a call apply to that call only (one arriving after its
 * last step is withdrawn when it returns). Async-signal-safe (lock-free atomics, no waiting)
 * and callable from any thread, unlike the model's other functions; the model must outlive
 * the call. */
ffnc_status ffnc_model_interrupt(ffnc_model *model);

/* dst (rows x outputs, the model's dtype) = the model's prediction for x (see ffnc_loss). */
ffnc_status ffnc_model_predict(ffnc_model *model, size_t rows, const void *x, void *dst);

/* The mean loss over `rows` examples (as in training), and, when `accuracy` is not NULL,
 * the fraction of rows whose arg-max output is their label (softmax cross-entropy) or of
 * elements on the right side of 0.5 (BCE: sigmoid(output) > 0.5 iff target > 0.5); NaN for
 * MSE. FFNC_ERR_INVALID_ARGUMENT for a model without a loss. */
ffnc_status ffnc_model_evaluate(ffnc_model *model, size_t rows, const void *x,
                                const void *targets, double *loss, double *accuracy);

/* Saves the model to `path` in checkpoint format v1 (atomically, see
 * ffnc_safetensors_writer_save); with with_optimizer != 0 also the optimizer state (when the
 * model has been trained), under "optimizer.velocity" or "optimizer.m" / "optimizer.v" and the
 * "optimizer" metadata entry, so training resumes where it stopped after loading. */
ffnc_status ffnc_model_save(const ffnc_model *model, const char *path, int with_optimizer);

/* Loads a model saved by ffnc_model_save or by Python's ffnc.io: a Sequential of Dense layers
 * with biases, float32 or float64, with a softmax_cross_entropy, bce or mse loss or none.
 * FFNC_ERR_IO when the file cannot be read, FFNC_ERR_FORMAT when it is not a valid checkpoint
 * (bad safetensors, missing or mis-shaped tensors, malformed model JSON),
 * FFNC_ERR_UNSUPPORTED for other layers, losses or settings. Optimizer state of a kind the C
 * API does not train (e.g. RMSprop) is ignored. */
ffnc_status ffnc_model_load(const char *path, ffnc_model **model);

#ifdef __cplusplus
}
#endif

#endif /* FFNC_H */
