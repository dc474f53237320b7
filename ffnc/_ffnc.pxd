# Declarations of the C API (csrc/include/ffnc.h) for the Cython layer.
from libc.stdint cimport int32_t, int64_t, uint32_t

cdef extern from "ffnc.h" nogil:
    ctypedef enum ffnc_status:
        FFNC_OK
        FFNC_ERR_NULL_POINTER
        FFNC_ERR_INVALID_ARGUMENT
        FFNC_ERR_SIZE_OVERFLOW
        FFNC_ERR_LABEL_OUT_OF_RANGE
        FFNC_ERR_OUT_OF_MEMORY
        FFNC_ERR_UNSUPPORTED_ISA
        FFNC_ERR_INVALID_DTYPE
        FFNC_ERR_EMPTY
        FFNC_ERR_INTERRUPTED
        FFNC_ERR_STEP_LIMIT

    ctypedef enum ffnc_dtype:
        FFNC_F32
        FFNC_F64

    ctypedef enum ffnc_isa:
        FFNC_ISA_GENERIC
        FFNC_ISA_AVX2
        FFNC_ISA_AVX512

    ctypedef enum ffnc_activation:
        FFNC_ACT_IDENTITY
        FFNC_ACT_RELU
        FFNC_ACT_LEAKY_RELU
        FFNC_ACT_ABS
        FFNC_ACT_TANH
        FFNC_ACT_SIGMOID
        FFNC_ACT_SOFTPLUS
        FFNC_ACT_HARD_TANH
        FFNC_ACT_ELU
        FFNC_ACT_GELU
        FFNC_ACT_COUNT

    const char *ffnc_status_string(ffnc_status status)
    const char *ffnc_version()

    enum: FFNC_MAX_THREADS
    ffnc_status ffnc_set_num_threads(int n)
    int ffnc_get_num_threads()
    int ffnc_get_configured_threads()
    ffnc_status ffnc_set_local_num_threads(int n)
    int ffnc_get_local_num_threads()
    ffnc_isa ffnc_get_isa()
    ffnc_status ffnc_set_isa(ffnc_isa isa)
    int ffnc_isa_supported(ffnc_isa isa)
    const char *ffnc_isa_name(ffnc_isa isa)
    ffnc_status ffnc_isa_env_status()
    const char *ffnc_openmp_info()

    int ffnc_activation_backward_uses_dst(ffnc_activation act)
    ffnc_status ffnc_activation_forward(ffnc_dtype dtype, ffnc_activation act, double alpha,
                                        size_t n, const void *src, void *dst)
    ffnc_status ffnc_activation_backward(ffnc_dtype dtype, ffnc_activation act, double alpha,
                                         size_t n, const void *diff_dst, const void *saved,
                                         void *diff_src)
    ffnc_status ffnc_prelu_forward(ffnc_dtype dtype, size_t rows, size_t cols, const void *src,
                                   const void *alpha, size_t n_alpha, void *dst)
    ffnc_status ffnc_prelu_backward(ffnc_dtype dtype, size_t rows, size_t cols,
                                    const void *diff_dst, const void *src, const void *alpha,
                                    size_t n_alpha, void *diff_src, void *diff_alpha,
                                    int accumulate)
    ffnc_status ffnc_bias_forward(ffnc_dtype dtype, size_t rows, size_t cols, const void *src,
                                  const void *bias, void *dst)
    ffnc_status ffnc_bias_backward(ffnc_dtype dtype, size_t rows, size_t cols,
                                   const void *diff_dst, void *diff_bias, int accumulate)

    ffnc_status ffnc_softmax_xent_forward(ffnc_dtype dtype, size_t rows, size_t classes,
                                          const void *logits, const int64_t *labels,
                                          double scale, void *probs, double *loss)
    ffnc_status ffnc_softmax_xent_backward(ffnc_dtype dtype, size_t rows, size_t classes,
                                           const void *probs, const int64_t *labels,
                                           double diff_loss_scale, void *diff_logits)
    ffnc_status ffnc_log_softmax_forward(ffnc_dtype dtype, size_t rows, size_t cols,
                                         const void *src, void *dst)
    ffnc_status ffnc_log_softmax_backward(ffnc_dtype dtype, size_t rows, size_t cols,
                                          const void *diff_dst, const void *dst, void *diff_src)
    ffnc_status ffnc_bce_logits_forward(ffnc_dtype dtype, size_t n, const void *logits,
                                        const void *targets, double scale, double *loss)
    ffnc_status ffnc_bce_logits_backward(ffnc_dtype dtype, size_t n, const void *logits,
                                         const void *targets, double diff_loss_scale,
                                         void *diff_logits)
    ffnc_status ffnc_mse_forward(ffnc_dtype dtype, size_t n, const void *pred,
                                 const void *target, double scale, double *loss)
    ffnc_status ffnc_mse_backward(ffnc_dtype dtype, size_t n, const void *pred,
                                  const void *target, double diff_loss_scale, void *diff_pred)
    ffnc_status ffnc_l1_forward(ffnc_dtype dtype, size_t n, const void *pred, const void *target,
                                double scale, double *loss)
    ffnc_status ffnc_l1_backward(ffnc_dtype dtype, size_t n, const void *pred,
                                 const void *target, double diff_loss_scale, void *diff_pred)

    ffnc_status ffnc_sgd_update(ffnc_dtype dtype, size_t n, void *param, const void *grad,
                                double lr, double weight_decay)
    ffnc_status ffnc_momentum_update(ffnc_dtype dtype, size_t n, void *param, const void *grad,
                                     void *velocity, double lr, double momentum,
                                     double weight_decay, int nesterov)
    ffnc_status ffnc_adam_update(ffnc_dtype dtype, size_t n, void *param, const void *grad,
                                 void *m, void *v, int64_t step, double lr, double beta1,
                                 double beta2, double eps, double weight_decay,
                                 int decoupled_weight_decay)
    ffnc_status ffnc_rmsprop_update(ffnc_dtype dtype, size_t n, void *param, const void *grad,
                                    void *square_avg, void *momentum_buffer, void *grad_avg,
                                    double lr, double alpha, double eps, double weight_decay,
                                    double momentum, int centered)
    ffnc_status ffnc_global_norm(ffnc_dtype dtype, size_t n, const void *src, double *norm)
    ffnc_status ffnc_clip_by_global_norm(ffnc_dtype dtype, size_t n, void *grad,
                                         double max_norm, double *norm)

    ffnc_status ffnc_gemm(ffnc_dtype dtype, int trans_a, int trans_b, size_t m, size_t n,
                          size_t k, double alpha, const void *a, size_t lda, const void *b,
                          size_t ldb, double beta, void *c, size_t ldc)
    ffnc_status ffnc_dense_forward(ffnc_dtype dtype, size_t m, size_t n, size_t k,
                                   const void *src, const void *weights, int trans_weights,
                                   const void *bias, ffnc_activation act, double alpha,
                                   void *pre_act, void *dst)
    ffnc_status ffnc_dense_backward(ffnc_dtype dtype, size_t m, size_t n, size_t k,
                                    const void *src, const void *weights, int trans_weights,
                                    ffnc_activation act, double alpha, const void *saved,
                                    const void *diff_dst, void *diff_pre, void *diff_src,
                                    void *diff_weights, void *diff_bias, int accumulate_params,
                                    int accumulate_src)

    ctypedef enum ffnc_plan_arena:
        FFNC_PLAN_NONE
        FFNC_PLAN_PARAMS
        FFNC_PLAN_GRADS
        FFNC_PLAN_STATE
        FFNC_PLAN_ACTS
        FFNC_PLAN_INPUT
    ctypedef struct ffnc_plan_ref:
        int32_t arena
        uint32_t slot
        size_t offset
    ctypedef struct ffnc_plan_size:
        size_t fixed
        size_t per_batch
    ctypedef enum ffnc_plan_opcode:
        FFNC_OP_DENSE_FORWARD
        FFNC_OP_DENSE_BACKWARD
        FFNC_OP_GEMM
        FFNC_OP_ACT_FORWARD
        FFNC_OP_ACT_BACKWARD
        FFNC_OP_BIAS_FORWARD
        FFNC_OP_COLSUM
        FFNC_OP_ROWSUM
        FFNC_OP_SUM_ALL
        FFNC_OP_XENT_FORWARD
        FFNC_OP_XENT_BACKWARD
        FFNC_OP_BCE_FORWARD
        FFNC_OP_MSE_FORWARD
        FFNC_OP_L1_FORWARD
        FFNC_OP_BCE_BACKWARD
        FFNC_OP_MSE_BACKWARD
        FFNC_OP_L1_BACKWARD
        FFNC_OP_BINARY
        FFNC_OP_UNARY
        FFNC_OP_FILL
        FFNC_OP_FILL_COUNT
        FFNC_OP_SGD
        FFNC_OP_MOMENTUM
        FFNC_OP_ADAM
        FFNC_OP_RMSPROP
        FFNC_OP_CLIP_GRAD_NORM
        FFNC_OP_WHERE
        FFNC_OP_ONE_HOT
        FFNC_OP_FROM_INT64
        FFNC_OP_SOFTMAX
        FFNC_OP_LOG_SOFTMAX
        FFNC_OP_LOGSUMEXP
        FFNC_OP_MAX_ARGMAX
        FFNC_OP_COPY_STRIDED
        FFNC_OP_SQDIST
        FFNC_OP_DROPOUT
        FFNC_OP_SOFTMAX_BACKWARD
        FFNC_OP_LOG_SOFTMAX_BACKWARD
        FFNC_OP_TRANSPOSE
        FFNC_OP_PRELU_FORWARD
        FFNC_OP_PRELU_BACKWARD
    ctypedef enum ffnc_plan_binary:
        FFNC_BINARY_ADD
        FFNC_BINARY_SUB
        FFNC_BINARY_MUL
        FFNC_BINARY_DIV
        FFNC_BINARY_MAXIMUM
        FFNC_BINARY_MINIMUM
        FFNC_BINARY_GREATER
        FFNC_BINARY_GREATER_EQUAL
        FFNC_BINARY_EQUAL
    ctypedef enum ffnc_plan_unary:
        FFNC_UNARY_COPY
        FFNC_UNARY_NEG
        FFNC_UNARY_SCALE
        FFNC_UNARY_EXP
        FFNC_UNARY_LOG
        FFNC_UNARY_SQUARE
        FFNC_UNARY_SQRT
    enum:
        FFNC_PLAN_TRANS_A
        FFNC_PLAN_TRANS_B
        FFNC_PLAN_ACCUMULATE
        FFNC_PLAN_ACCUMULATE_SRC
        FFNC_PLAN_MEAN
        FFNC_PLAN_NESTEROV
        FFNC_PLAN_DECOUPLED
        FFNC_PLAN_CENTERED
        FFNC_PLAN_BETA
        FFNC_PLAN_STEP
        FFNC_PLAN_STEPPED
        FFNC_PLAN_MAX_REFS
    ctypedef struct ffnc_plan_instr:
        int32_t opcode
        int32_t subop
        uint32_t flags
        ffnc_plan_size m
        ffnc_plan_size n
        ffnc_plan_size k
        double alpha
        double hyper[5]
        size_t strides[6]
        ffnc_plan_ref refs[8]
    ctypedef enum ffnc_plan_input_type:
        FFNC_PLAN_INPUT_FLOAT
        FFNC_PLAN_INPUT_INT64
    ctypedef struct ffnc_plan_input:
        int32_t type
        ffnc_plan_size size
    ctypedef struct ffnc_plan_desc:
        ffnc_dtype dtype
        size_t max_batch
        size_t arena_size[4]
        size_t n_inputs
        const ffnc_plan_input *inputs
        size_t n_instrs
        const ffnc_plan_instr *instrs
        size_t n_records
        const ffnc_plan_ref *records
    ctypedef struct ffnc_plan:
        pass
    ffnc_status ffnc_plan_create(const ffnc_plan_desc *desc, ffnc_plan **plan, size_t *bad_instr)
    void ffnc_plan_destroy(ffnc_plan *plan)
    ffnc_status ffnc_plan_arena_data(ffnc_plan *plan, ffnc_plan_arena arena, void **data,
                                     size_t *size)
    ffnc_status ffnc_plan_run(ffnc_plan *plan, size_t batch, const void *const *inputs,
                              size_t *failed_instr)
    ffnc_status ffnc_plan_run_timed(ffnc_plan *plan, size_t batch, const void *const *inputs,
                                    double *seconds, size_t *failed_instr)
    # a step in two phases (ffnc.distributed acts between them)
    ctypedef enum ffnc_plan_phase:
        FFNC_PLAN_PHASE_GRADIENTS
        FFNC_PLAN_PHASE_UPDATE
    ffnc_status ffnc_plan_run_phase(ffnc_plan *plan, size_t batch, const void *const *inputs,
                                    ffnc_plan_phase phase, size_t *failed_instr)
    size_t ffnc_plan_update_begin(const ffnc_plan *plan)
    ffnc_status ffnc_plan_run_epoch(ffnc_plan *plan, size_t rows, size_t batch,
                                    const void *const *inputs, double *records,
                                    size_t *steps_done, size_t *failed_instr)
    ffnc_status ffnc_plan_interrupt(ffnc_plan *plan)
    int ffnc_plan_clear_interrupt(ffnc_plan *plan)
    int64_t ffnc_plan_get_step(const ffnc_plan *plan)
    ffnc_status ffnc_plan_set_step(ffnc_plan *plan, int64_t step)
    ffnc_status ffnc_plan_get_lr(const ffnc_plan *plan, double *lr)
    ffnc_status ffnc_plan_set_lr(ffnc_plan *plan, double lr)
    ffnc_status ffnc_plan_run_epoch_scaled(ffnc_plan *plan, size_t rows, size_t batch,
                                           const void *const *inputs, const double *lr_scale,
                                           double *records, size_t *steps_done,
                                           size_t *failed_instr)
