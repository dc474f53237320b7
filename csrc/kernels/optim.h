/* Optimizer update kernels (optim.c), for the kernel table. REAL is bound where the list is
 * expanded.
 *
 * The kernels take the public API's arguments after its checks, with hyper-parameters in double:
 * each kernel derives its loop constants (1 - beta, lr / bias correction, ...) in double once,
 * then rounds them to REAL for the loop. adam_update takes the bias corrections
 * 1 - beta1^step and 1 - beta2^step, computed by the API layer, instead of the step count.
 * rmsprop_update reads momentum_buffer only when momentum > 0 and grad_avg only when it is not
 * NULL (the centered variant). param, grad and the state buffers never overlap (the API
 * requires it). global_norm and grad_scale serve gradient clipping. */
#ifndef FFNC_KERNELS_OPTIM_H
#define FFNC_KERNELS_OPTIM_H

#define FFNC_OPTIM_KERNELS(X)                                                                    \
    X(sgd_update, (size_t n, REAL *param, const REAL *grad, double lr, double weight_decay))    \
    X(momentum_update, (size_t n, REAL *param, const REAL *grad, REAL *velocity, double lr,     \
                        double momentum, double weight_decay, int nesterov))                     \
    X(adam_update, (size_t n, REAL *param, const REAL *grad, REAL *m, REAL *v, double lr,       \
                    double beta1, double beta2, double eps, double weight_decay,                 \
                    int decoupled_weight_decay, double bias_correction1,                         \
                    double bias_correction2))                                                    \
    X(rmsprop_update, (size_t n, REAL *param, const REAL *grad, REAL *square_avg,               \
                       REAL *momentum_buffer, REAL *grad_avg, double lr, double alpha,           \
                       double eps, double weight_decay, double momentum))                        \
    X(global_norm, (size_t n, const REAL *src, double *norm))                                    \
    X(grad_scale, (size_t n, REAL *data, double factor))

#endif
