/* Body of optim.c for one REAL type.
 *
 * Each update is one pass over memory: param, grad and state are read once and written once
 * and elements are independent, so the results depend on neither the thread count nor the
 * ISA path. Loop constants are derived in double and rounded to REAL once, so a float update
 * uses the float nearest to, say, 1 - beta2, not 1 - (float)beta2.
 *
 * A zero weight decay skips the decay term instead of adding 0 * p, which would turn an infinite
 * parameter into NaN (PyTorch skips it too). NaN in a gradient propagates to the parameter and
 * state it touches.
 *
 * The global norm of gradient clipping is the one reduction here: summed in double in the fixed
 * blocks of ffnc_reduce_blocks, lanes combined in a written order, so it too depends on neither
 * the thread count nor the ISA path. */

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

/* ---- RMSprop -------------------------------------------------------------------------------- */

#define OPTIM_LOCAL(name) FFNC_CAT2(name, SFX)

/* The centered denominator sqrt(s - a^2) + eps after updating the gradient average a in *avg.
 * s >= a^2 holds exactly (an average of squares is at least the square of the average) but
 * rounding can make s - a^2 slightly negative where the gradient barely varies; it is clamped
 * at 0 there, where PyTorch would take the square root of a negative number and give NaN.
 * A NaN difference is not clamped (NaN < 0 is false): NaN still propagates. */
static inline REAL OPTIM_LOCAL(centered_denominator)(REAL sq, REAL *restrict avg, REAL g,
                                                      REAL a, REAL one_minus_a, REAL epsilon) {
    REAL mean = a * *avg + one_minus_a * g;
    *avg = mean;
    REAL variance = sq - mean * mean;
    variance = variance < 0 ? 0 : variance;
    return sqrt(variance) + epsilon;
}

/* g = DIRECTION; s = alpha s + (1 - alpha) g^2; den = DENOMINATOR (of sq); then STEP. */
#define FFNC_RMSPROP_LOOP(DIRECTION, DENOMINATOR, ...)                                  \
    FFNC_OPTIM_LOOP(REAL g = (DIRECTION);                                               \
                    REAL sq = a * square_avg[i] + one_minus_a * g * g;                  \
                    square_avg[i] = sq;                                                 \
                    REAL den = DENOMINATOR;                                             \
                    __VA_ARGS__)
#define FFNC_RMSPROP_PLAIN_DENOMINATOR (sqrt(sq) + epsilon)
#define FFNC_RMSPROP_CENTERED_DENOMINATOR                                               \
    OPTIM_LOCAL(centered_denominator)(sq, &grad_avg[i], g, a, one_minus_a, epsilon)
/* The four variants (centered or not, momentum or not) for one DIRECTION. */
#define FFNC_RMSPROP_VARIANTS(DIRECTION)                                                \
    do {                                                                                \
        if (grad_avg && mu != 0)                                                        \
            FFNC_RMSPROP_LOOP(DIRECTION, FFNC_RMSPROP_CENTERED_DENOMINATOR,             \
                              REAL b = mu * momentum_buffer[i] + g / den;               \
                              momentum_buffer[i] = b; param[i] = param[i] - rate * b;); \
        else if (grad_avg)                                                              \
            FFNC_RMSPROP_LOOP(DIRECTION, FFNC_RMSPROP_CENTERED_DENOMINATOR,             \
                              param[i] = param[i] - rate * (g / den););                 \
        else if (mu != 0)                                                               \
            FFNC_RMSPROP_LOOP(DIRECTION, FFNC_RMSPROP_PLAIN_DENOMINATOR,                \
                              REAL b = mu * momentum_buffer[i] + g / den;               \
                              momentum_buffer[i] = b; param[i] = param[i] - rate * b;); \
        else                                                                            \
            FFNC_RMSPROP_LOOP(DIRECTION, FFNC_RMSPROP_PLAIN_DENOMINATOR,                \
                              param[i] = param[i] - rate * (g / den););                 \
    } while (0)

/* RMSprop as torch.optim.RMSprop (coupled weight decay; a momentum of 0 uses no buffer). */
ffnc_status KERNEL(rmsprop_update)(size_t n, REAL *restrict param, const REAL *restrict grad,
                                   REAL *restrict square_avg, REAL *restrict momentum_buffer,
                                   REAL *restrict grad_avg, double lr, double alpha, double eps,
                                   double weight_decay, double momentum) {
    int nt = ffnc_threads_for(n, FFNC_GRAIN_ELEMENTWISE);
    const REAL rate = (REAL)lr, a = (REAL)alpha, one_minus_a = (REAL)(1 - alpha);
    const REAL epsilon = (REAL)eps, decay = (REAL)weight_decay, mu = (REAL)momentum;
    if (weight_decay == 0) FFNC_RMSPROP_VARIANTS(grad[i]);
    else FFNC_RMSPROP_VARIANTS(grad[i] + decay * param[i]);
    return FFNC_OK;
}
#undef FFNC_RMSPROP_VARIANTS
#undef FFNC_RMSPROP_CENTERED_DENOMINATOR
#undef FFNC_RMSPROP_PLAIN_DENOMINATOR
#undef FFNC_RMSPROP_LOOP

/* ---- global norm and gradient scaling ------------------------------------------------------ */

/* Sum of x[i]^2 over [lo, hi) in double, in eight interleaved lanes combined in a fixed order:
 * the loop vectorizes and the order is written here, the same for every ISA path. */
static inline double OPTIM_LOCAL(sum_squares)(size_t lo, size_t hi, const REAL *x) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = lo;
    for (; i + 8 <= hi; i += 8)
        for (int j = 0; j < 8; j++) {
            double t = (double)x[i + j];
            lane[j] += t * t;
        }
    double sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                 ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; i < hi; i++) sum += (double)x[i] * (double)x[i];
    return sum;
}

/* The same sum of (x[i] / unit)^2, for values whose squares would overflow or underflow. */
static inline double OPTIM_LOCAL(sum_scaled_squares)(size_t lo, size_t hi, const REAL *x,
                                                     double unit) {
    double sum = 0;
    for (size_t i = lo; i < hi; i++) {
        double t = (double)x[i] / unit;
        sum += t * t;
    }
    return sum;
}

static inline double OPTIM_LOCAL(max_abs)(size_t lo, size_t hi, const REAL *x) {
    double m = 0;
    for (size_t i = lo; i < hi; i++) {
        double t = fabs((double)x[i]);
        m = t > m ? t : m;
    }
    return m;
}

/* *out = the sum over the fixed blocks of EXPR(lo, hi) (block sums in block order), or their
 * maximum with COMBINE = max. */
#define FFNC_BLOCK_REDUCE(out, EXPR, COMBINE)                                           \
    do {                                                                                \
        size_t nblocks = ffnc_reduce_blocks(n);                                         \
        double partial[FFNC_REDUCE_BLOCKS];                                             \
        FFNC_PARALLEL_FOR(for (size_t b = 0; b < nblocks; b++) {                        \
            size_t lo = ffnc_block_begin(b, nblocks, n);                                \
            size_t hi = ffnc_block_begin(b + 1, nblocks, n);                            \
            partial[b] = EXPR;                                                          \
        });                                                                             \
        double acc = 0;                                                                 \
        for (size_t b = 0; b < nblocks; b++) acc = COMBINE(acc, partial[b]);            \
        *(out) = acc;                                                                   \
    } while (0)
#define FFNC_ADD(x, y) ((x) + (y))
#define FFNC_MAX(x, y) ((y) > (x) ? (y) : (x))

/* The L2 norm sqrt(sum x^2) of n values, summed in double in fixed blocks (see internal.h), so
 * it depends on neither the thread count nor the ISA path. float squares cannot overflow or
 * underflow in double; for double values whose sum of squares overflows (norm above ~1e154) or
 * falls toward the subnormal range, a second pass sums (x / max|x|)^2 instead, as LAPACK's
 * dnrm2 scales, so the norm is right wherever it is representable. NaN anywhere gives NaN;
 * an infinity (and no NaN) gives +inf. */
ffnc_status KERNEL(global_norm)(size_t n, const REAL *restrict src, double *norm) {
    int nt = ffnc_threads_for(n, FFNC_GRAIN_ELEMENTWISE);
    double total;
    FFNC_BLOCK_REDUCE(&total, OPTIM_LOCAL(sum_squares)(lo, hi, src), FFNC_ADD);
    /* From 2^-968 up, squares lost to the subnormal range weigh at most n 2^-106 relatively. */
    int in_range = total >= 0x1p-968 && total <= DBL_MAX;
    if (sizeof(REAL) == sizeof(float) || in_range || isnan(total)) {
        *norm = sqrt(total);
        return FFNC_OK;
    }
    double largest;
    FFNC_BLOCK_REDUCE(&largest, OPTIM_LOCAL(max_abs)(lo, hi, src), FFNC_MAX);
    if (largest == 0 || isinf(largest)) {
        *norm = largest;
        return FFNC_OK;
    }
    FFNC_BLOCK_REDUCE(&total, OPTIM_LOCAL(sum_scaled_squares)(lo, hi, src, largest), FFNC_ADD);
    *norm = largest * sqrt(total);
    return FFNC_OK;
}
#undef FFNC_MAX
#undef FFNC_ADD
#undef FFNC_BLOCK_REDUCE

/* data *= factor, the factor rounded to REAL once (as a float gradient scaled by a tensor). */
ffnc_status KERNEL(grad_scale)(size_t n, REAL *restrict data, double factor) {
    int nt = ffnc_threads_for(n, FFNC_GRAIN_ELEMENTWISE);
    const REAL f = (REAL)factor;
    FFNC_OPTIM_LOOP(data[i] = data[i] * f;);
    return FFNC_OK;
}

#undef OPTIM_LOCAL
#undef FFNC_OPTIM_LOOP
