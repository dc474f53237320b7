/* Public entry points of the optimizer updates: argument checks, then the kernel of the active
 * ISA path. */
#include <float.h>
#include <math.h>

#include "internal.h"

/* A finite double that stays finite once rounded to the element type. */
static int finite_in(ffnc_dtype dtype, double x) {
    return isfinite(x) && (dtype != FFNC_F32 || fabs(x) <= FLT_MAX);
}

/* lr and weight_decay, which every update takes. */
static ffnc_status check_rate(ffnc_dtype dtype, double lr, double weight_decay) {
    FFNC_REQUIRE(finite_in(dtype, lr) && lr >= 0, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(finite_in(dtype, weight_decay) && weight_decay >= 0, FFNC_ERR_INVALID_ARGUMENT);
    return FFNC_OK;
}

/* A decay rate in [0, 1): momentum, beta1, beta2. */
static int is_rate_below_one(double x) { return x >= 0 && x < 1; }

/* 1 - beta^step for step >= 1, to a few ulps also when beta^step is close to 1, where
 * 1 - pow(beta, step) loses digits to cancellation (1e-13 relative at beta = 0.99999, step 2). */
static double bias_correction(double beta, int64_t step) {
    if (beta == 0) return 1;
    return -expm1((double)step * log(beta));
}

ffnc_status ffnc_sgd_update(ffnc_dtype dtype, size_t n, void *param, const void *grad, double lr,
                            double weight_decay) {
    FFNC_TRY(check_rate(dtype, lr, weight_decay));
    FFNC_REQUIRE(n == 0 || (param && grad), FFNC_ERR_NULL_POINTER);
    FFNC_DISPATCH(dtype, sgd_update, n, param, grad, lr, weight_decay);
}

ffnc_status ffnc_momentum_update(ffnc_dtype dtype, size_t n, void *param, const void *grad,
                                 void *velocity, double lr, double momentum, double weight_decay,
                                 int nesterov) {
    FFNC_TRY(check_rate(dtype, lr, weight_decay));
    FFNC_REQUIRE(is_rate_below_one(momentum), FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(n == 0 || (param && grad && velocity), FFNC_ERR_NULL_POINTER);
    FFNC_DISPATCH(dtype, momentum_update, n, param, grad, velocity, lr, momentum, weight_decay,
                  nesterov != 0);
}

ffnc_status ffnc_adam_update(ffnc_dtype dtype, size_t n, void *param, const void *grad, void *m,
                             void *v, int64_t step, double lr, double beta1, double beta2,
                             double eps, double weight_decay, int decoupled_weight_decay) {
    FFNC_TRY(check_rate(dtype, lr, weight_decay));
    FFNC_REQUIRE(is_rate_below_one(beta1) && is_rate_below_one(beta2), FFNC_ERR_INVALID_ARGUMENT);
    /* eps must stay positive in the element type: it is what keeps 0 / (0 + eps) at 0. */
    FFNC_REQUIRE(finite_in(dtype, eps) && eps > 0 && (dtype != FFNC_F32 || (float)eps > 0),
                 FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(step >= 1, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(n == 0 || (param && grad && m && v), FFNC_ERR_NULL_POINTER);
    FFNC_DISPATCH(dtype, adam_update, n, param, grad, m, v, lr, beta1, beta2, eps, weight_decay,
                  decoupled_weight_decay != 0, bias_correction(beta1, step),
                  bias_correction(beta2, step));
}

ffnc_status ffnc_rmsprop_update(ffnc_dtype dtype, size_t n, void *param, const void *grad,
                                void *square_avg, void *momentum_buffer, void *grad_avg,
                                double lr, double alpha, double eps, double weight_decay,
                                double momentum, int centered) {
    FFNC_TRY(check_rate(dtype, lr, weight_decay));
    FFNC_REQUIRE(is_rate_below_one(alpha) && is_rate_below_one(momentum),
                 FFNC_ERR_INVALID_ARGUMENT);
    /* as Adam's: eps keeps g / (0 + eps) finite */
    FFNC_REQUIRE(finite_in(dtype, eps) && eps > 0 && (dtype != FFNC_F32 || (float)eps > 0),
                 FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(n == 0 || (param && grad && square_avg), FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(n == 0 || momentum == 0 || momentum_buffer, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(n == 0 || !centered || grad_avg, FFNC_ERR_NULL_POINTER);
    FFNC_DISPATCH(dtype, rmsprop_update, n, param, grad, square_avg,
                  momentum == 0 ? NULL : momentum_buffer, centered ? grad_avg : NULL, lr, alpha,
                  eps, weight_decay, momentum);
}

ffnc_status ffnc_global_norm(ffnc_dtype dtype, size_t n, const void *src, double *norm) {
    FFNC_REQUIRE(norm && (n == 0 || src), FFNC_ERR_NULL_POINTER);
    FFNC_DISPATCH(dtype, global_norm, n, src, norm);
}

ffnc_status ffnc_clip_by_global_norm(ffnc_dtype dtype, size_t n, void *grad, double max_norm,
                                     double *norm) {
    FFNC_REQUIRE(isfinite(max_norm) && max_norm > 0, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(n == 0 || grad, FFNC_ERR_NULL_POINTER);
    double total;
    FFNC_TRY(ffnc_global_norm(dtype, n, grad, &total));
    if (norm) *norm = total;
    /* NaN and infinite norms fail the test: the gradients stay as they are for the caller's
     * NaN guard to report, rather than becoming NaN (inf / inf) or zero. */
    if (isfinite(total) && total > max_norm) {
        FFNC_DISPATCH(dtype, grad_scale, n, grad, max_norm / total);
    }
    return FFNC_OK;
}
