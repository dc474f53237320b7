# Declarations of the C API (csrc/include/ffnc.h) for the Cython layer.
from libc.stdint cimport int64_t

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

    ffnc_status ffnc_set_num_threads(int n)
    int ffnc_get_num_threads()
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
