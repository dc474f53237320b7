/* Body of optim.c for one REAL type.
 *
 * Each update is one pass over memory: param, grad and state are read once and written once
 * and elements are independent, so the results depend on neither the thread count nor the
 * ISA path. Loop constants are derived in double and rounded to REAL once, so a float update
 * uses the float nearest to, say, 1 - beta2, not 1 - (float)beta2.
 *
 * A zero weight decay skips the decay term instead of adding 0 * p, which would turn an infinite
 * parameter into NaN (PyTorch skips it too). NaN in a gradient propagates to the parameter and
 * state it touches. */

/* for (i < n) { BODY }, split over nt threads. */
#define FFNC_OPTIM_LOOP(...) FFNC_PARALLEL_FOR(for (size_t i = 0; i < n; i++) { __VA_ARGS__ })

ffnc_status KERNEL(sgd_update)(size_t n, REAL *restrict param, const REAL *restrict grad,
                               double lr, double weight_decay) {
    int nt = ffnc_threads_for(n, FFNC_GRAIN_ELEMENTWISE);
    const REAL rate = (REAL)lr, decay = (REAL)weight_decay;
    if (weight_decay == 0)
        FFNC_OPTIM_LOOP(param[i] = param[i] - rate * grad[i];);
    else
        FFNC_OPTIM_LOOP(param[i] = param[i] - rate * (grad[i] + decay * param[i]););
    return FFNC_OK;
}

/* d = DIRECTION (the decayed gradient); v = mu v + d; p -= lr * STEP. */
#define FFNC_MOMENTUM_LOOP(DIRECTION, STEP)                                             \
    FFNC_OPTIM_LOOP(REAL d = (DIRECTION);                                               \
                    REAL vel = mu * velocity[i] + d;                                    \
                    velocity[i] = vel;                                                  \
                    param[i] = param[i] - rate * (STEP);)

ffnc_status KERNEL(momentum_update)(size_t n, REAL *restrict param, const REAL *restrict grad,
                                    REAL *restrict velocity, double lr, double momentum,
                                    double weight_decay, int nesterov) {
    int nt = ffnc_threads_for(n, FFNC_GRAIN_ELEMENTWISE);
    const REAL rate = (REAL)lr, mu = (REAL)momentum, decay = (REAL)weight_decay;
    if (weight_decay == 0) {
        if (nesterov) FFNC_MOMENTUM_LOOP(grad[i], d + mu * vel);
        else FFNC_MOMENTUM_LOOP(grad[i], vel);
    } else {
        if (nesterov) FFNC_MOMENTUM_LOOP(grad[i] + decay * param[i], d + mu * vel);
        else FFNC_MOMENTUM_LOOP(grad[i] + decay * param[i], vel);
    }
    return FFNC_OK;
}
#undef FFNC_MOMENTUM_LOOP

/* Adam in one pass. With g' the gradient (plus the coupled L2 term) and p' the parameter
 * (after the decoupled decay):
 *   p = p' - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),
 * the bias corrections folded into two constants so the step has one division. The loop
 * vectorizes (sqrt is the correctly rounded instruction: kernels build with -fno-math-errno). */
ffnc_status KERNEL(adam_update)(size_t n, REAL *restrict param, const REAL *restrict grad,
                                REAL *restrict m, REAL *restrict v, double lr, double beta1,
                                double beta2, double eps, double weight_decay,
                                int decoupled_weight_decay, double bias_correction1,
                                double bias_correction2) {
    int nt = ffnc_threads_for(n, FFNC_GRAIN_ELEMENTWISE);
    const REAL b1 = (REAL)beta1, b2 = (REAL)beta2;
    const REAL one_minus_b1 = (REAL)(1 - beta1), one_minus_b2 = (REAL)(1 - beta2);
    const REAL step_size = (REAL)(lr / bias_correction1);
    const REAL inv_sqrt_bc2 = (REAL)(1 / sqrt(bias_correction2));
    const REAL epsilon = (REAL)eps;
    /* Zero: no term at all (see the top of the file). */
    const REAL coupled_decay = decoupled_weight_decay ? 0 : (REAL)weight_decay;
    /* AdamW as p - (lr wd) p rather than p (1 - lr wd): rounding 1 - lr wd to float would
     * perturb the small decay lr wd by up to 6e-8 / (lr wd) relatively. */
    const REAL shrink = decoupled_weight_decay ? (REAL)(lr * weight_decay) : 0;
    if (coupled_decay != 0) {
        FFNC_OPTIM_LOOP(REAL g = grad[i] + coupled_decay * param[i];
                        m[i] = b1 * m[i] + one_minus_b1 * g;
                        v[i] = b2 * v[i] + one_minus_b2 * g * g;
                        param[i] = param[i] -
                                   step_size * (m[i] / (sqrt(v[i]) * inv_sqrt_bc2 + epsilon)););
    } else if (shrink != 0) {
        FFNC_OPTIM_LOOP(REAL g = grad[i];
                        m[i] = b1 * m[i] + one_minus_b1 * g;
                        v[i] = b2 * v[i] + one_minus_b2 * g * g;
                        param[i] = (param[i] - shrink * param[i]) -
                                   step_size * (m[i] / (sqrt(v[i]) * inv_sqrt_bc2 + epsilon)););
    } else {
        FFNC_OPTIM_LOOP(REAL g = grad[i];
                        m[i] = b1 * m[i] + one_minus_b1 * g;
                        v[i] = b2 * v[i] + one_minus_b2 * g * g;
                        param[i] = param[i] -
                                   step_size * (m[i] / (sqrt(v[i]) * inv_sqrt_bc2 + epsilon)););
    }
    return FFNC_OK;
}

#undef FFNC_OPTIM_LOOP
