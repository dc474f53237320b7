/* Loss kernels (loss.c), for the kernel table. REAL is bound where the list is expanded.
 *
 * The kernels trust their sizes and pointers (csrc/api/loss.c checks them) but not the labels:
 * the softmax cross-entropy kernels check every label before writing anything and return
 * FFNC_ERR_LABEL_OUT_OF_RANGE, so no call reads or writes outside the arrays. */
#ifndef FFNC_KERNELS_LOSS_H
#define FFNC_KERNELS_LOSS_H

#define FFNC_LOSS_KERNELS(X)                                                                     \
    X(softmax_xent_forward, (size_t rows, size_t classes, const REAL *logits,                    \
                             const int64_t *labels, double scale, REAL *probs, double *loss))    \
    X(softmax_xent_backward, (size_t rows, size_t classes, const REAL *probs,                    \
                              const int64_t *labels, double diff_loss_scale,                     \
                              REAL *diff_logits))                                                \
    X(log_softmax_forward, (size_t rows, size_t cols, const REAL *src, REAL *dst))               \
    X(log_softmax_backward, (size_t rows, size_t cols, const REAL *diff_dst, const REAL *dst,    \
                             REAL *diff_src))                                                    \
    X(bce_logits_forward, (size_t n, const REAL *logits, const REAL *targets, double scale,      \
                           double *loss))                                                        \
    X(bce_logits_backward, (size_t n, const REAL *logits, const REAL *targets,                   \
                            double diff_loss_scale, REAL *diff_logits))                          \
    X(mse_forward, (size_t n, const REAL *pred, const REAL *target, double scale, double *loss)) \
    X(mse_backward, (size_t n, const REAL *pred, const REAL *target, double diff_loss_scale,     \
                     REAL *diff_pred))                                                           \
    X(l1_forward, (size_t n, const REAL *pred, const REAL *target, double scale, double *loss))  \
    X(l1_backward, (size_t n, const REAL *pred, const REAL *target, double diff_loss_scale,      \
                    REAL *diff_pred))

#endif
