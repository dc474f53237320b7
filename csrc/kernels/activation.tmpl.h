/* Body of activation.c for one REAL type. Math calls are type-generic (tgmath.h).
 *
 * NaN conventions: every forward maps NaN to NaN (comparisons are written so NaN falls through
 * to an expression of x). A backward that masks (relu, hard tanh, ...) writes an exact 0 where
 * the derivative is 0, as the upstream gradient is not looked at there. */

#define LOCAL(name) FFNC_CAT2(name, SFX)
#define VEXP FFNC_CAT2(ffnc_vexp, SFX)
#define VEXPM1 FFNC_CAT2(ffnc_vexpm1, SFX)

/* ---- scalar forms (branch-free where they use vmath.h, so their loops vectorize) --------- */

static inline REAL LOCAL(sigmoid)(REAL x) {
    /* e = e^-|x| never overflows; 1/(1+e) for x >= 0 and e/(1+e) for x < 0 keep full
     * relative accuracy on both tails. */
    REAL e = VEXP(-fabs(x));
    REAL s = 1 / (1 + e);
    return x >= 0 ? s : e * s;
}

static inline REAL LOCAL(tanh)(REAL x) {
    /* tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|)): accurate near 0, saturates to 1. */
    REAL e = VEXPM1(-2 * fabs(x));
    REAL t = -e / (2 + e);
    return x < 0 ? -t : t;
}

static inline REAL LOCAL(softplus)(REAL x) {
    /* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, no loss for small. */
    return (x > 0 ? x : 0) + log1p(VEXP(-fabs(x)));
}

static inline REAL LOCAL(gelu)(REAL x) {
    return (REAL)0.5 * x * (1 + erf(x * (REAL)0.70710678118654752440));
}

static inline REAL LOCAL(gelu_derivative)(REAL x) {
    REAL cdf = (REAL)0.5 * (1 + erf(x * (REAL)0.70710678118654752440));
    REAL pdf = (REAL)0.39894228040143267794 * VEXP((REAL)-0.5 * x * x);
    return cdf + x * pdf;
}

/* ---- element-wise loops ---------------------------------------------------------------- */

/* dst[i] = EXPR(x), x = src[i], on as many threads as the size pays for. */
#define FFNC_MAP_UNARY(EXPR)                                                           \
    FFNC_PARALLEL_FOR(for (size_t i = 0; i < n; i++) {                                 \
        REAL x = src[i];                                                               \
        dst[i] = (EXPR);                                                               \
    })

/* diff_src[i] = EXPR(g, s), g = diff_dst[i], s = saved[i]. */
#define FFNC_MAP_BACKWARD(EXPR)                                                        \
    FFNC_PARALLEL_FOR(for (size_t i = 0; i < n; i++) {                                 \
        REAL g = diff_dst[i];                                                          \
        REAL s = saved[i];                                                             \
        (void)s; /* identity ignores it */                                             \
        diff_src[i] = (EXPR);                                                          \
    })

/* Whether act's forward or backward calls a transcendental function: such loops cost tens of
 * cycles per value and pay for threads at much smaller sizes. */
static inline size_t LOCAL(activation_grain)(ffnc_activation act, int backward) {
    switch (act) {
    case FFNC_ACT_TANH:
    case FFNC_ACT_SOFTPLUS:
    case FFNC_ACT_GELU: return FFNC_GRAIN_TRANSCENDENTAL;
    case FFNC_ACT_SIGMOID:
    case FFNC_ACT_ELU: return backward ? FFNC_GRAIN_ELEMENTWISE : FFNC_GRAIN_TRANSCENDENTAL;
    default: return FFNC_GRAIN_ELEMENTWISE;
    }
}

ffnc_status KERNEL(activation_forward)(ffnc_activation act, REAL alpha, size_t n,
                                       const REAL *src, REAL *dst) {
    int nt = ffnc_threads_for(n, LOCAL(activation_grain)(act, 0));
    switch (act) {
    case FFNC_ACT_IDENTITY: FFNC_MAP_UNARY(x); break;
    case FFNC_ACT_RELU: FFNC_MAP_UNARY(x <= 0 ? 0 : x); break;
    case FFNC_ACT_LEAKY_RELU: FFNC_MAP_UNARY(x > 0 ? x : alpha * x); break;
    case FFNC_ACT_ABS: FFNC_MAP_UNARY(fabs(x)); break;
    case FFNC_ACT_TANH: FFNC_MAP_UNARY(LOCAL(tanh)(x)); break;
    case FFNC_ACT_SIGMOID: FFNC_MAP_UNARY(LOCAL(sigmoid)(x)); break;
    case FFNC_ACT_SOFTPLUS: FFNC_MAP_UNARY(LOCAL(softplus)(x)); break;
    case FFNC_ACT_HARD_TANH: FFNC_MAP_UNARY(x < -1 ? -1 : (x > 1 ? 1 : x)); break;
    case FFNC_ACT_ELU: FFNC_MAP_UNARY(x > 0 ? x : alpha * VEXPM1(x)); break;
    case FFNC_ACT_GELU: FFNC_MAP_UNARY(LOCAL(gelu)(x)); break;
    default: return FFNC_ERR_INVALID_ARGUMENT;
    }
    return FFNC_OK;
}

ffnc_status KERNEL(activation_backward)(ffnc_activation act, REAL alpha, size_t n,
                                        const REAL *diff_dst, const REAL *saved,
                                        REAL *diff_src) {
    int nt = ffnc_threads_for(n, LOCAL(activation_grain)(act, 1));
    switch (act) {
    /* s is the forward output y */
    case FFNC_ACT_IDENTITY: FFNC_MAP_BACKWARD(g); break;
    case FFNC_ACT_RELU: FFNC_MAP_BACKWARD(s > 0 ? g : 0); break;
    case FFNC_ACT_LEAKY_RELU: FFNC_MAP_BACKWARD(s > 0 ? g : alpha * g); break;
    case FFNC_ACT_TANH: FFNC_MAP_BACKWARD(g * (1 - s * s)); break;
    case FFNC_ACT_SIGMOID: FFNC_MAP_BACKWARD(g * s * (1 - s)); break;
    case FFNC_ACT_HARD_TANH: FFNC_MAP_BACKWARD(s > -1 && s < 1 ? g : 0); break;
    /* elu: for x <= 0, y = alpha (e^x - 1), so y' = alpha e^x = y + alpha */
    case FFNC_ACT_ELU: FFNC_MAP_BACKWARD(s > 0 ? g : g * (s + alpha)); break;
    /* s is the forward input x */
    case FFNC_ACT_ABS: FFNC_MAP_BACKWARD(s > 0 ? g : (s < 0 ? -g : 0)); break;
    case FFNC_ACT_SOFTPLUS: FFNC_MAP_BACKWARD(g * LOCAL(sigmoid)(s)); break;
    case FFNC_ACT_GELU: FFNC_MAP_BACKWARD(g * LOCAL(gelu_derivative)(s)); break;
    default: return FFNC_ERR_INVALID_ARGUMENT;
    }
    return FFNC_OK;
}

#undef FFNC_MAP_UNARY
#undef FFNC_MAP_BACKWARD

/* ---- prelu ------------------------------------------------------------------------------ */

ffnc_status KERNEL(prelu_forward)(size_t rows, size_t cols, const REAL *src, const REAL *alpha,
                                  size_t n_alpha, REAL *dst) {
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ELEMENTWISE);
    size_t alpha_step = n_alpha == 1 ? 0 : 1;
    FFNC_PARALLEL_FOR(for (size_t r = 0; r < rows; r++) {
        const REAL *x = src + r * cols;
        REAL *y = dst + r * cols;
        for (size_t c = 0; c < cols; c++) y[c] = x[c] > 0 ? x[c] : alpha[c * alpha_step] * x[c];
    });
    return FFNC_OK;
}

ffnc_status KERNEL(prelu_backward)(size_t rows, size_t cols, const REAL *diff_dst,
                                   const REAL *src, const REAL *alpha, size_t n_alpha,
                                   REAL *diff_src, REAL *diff_alpha, int accumulate) {
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ELEMENTWISE);
    size_t alpha_step = n_alpha == 1 ? 0 : 1;

    /* d alpha_c = sum over the elements using alpha_c, with x <= 0, of g x; in double, in a
     * fixed order. Per-unit slopes: columns split across threads, rows in order. Computed
     * before diff_src is written: diff_src may be diff_dst itself (in place). */
    if (n_alpha == cols) {
        FFNC_PARALLEL_FOR(for (size_t c = 0; c < cols; c++) {
            double sum = 0;
            for (size_t r = 0; r < rows; r++) {
                REAL x = src[r * cols + c];
                if (!(x > 0)) sum += (double)diff_dst[r * cols + c] * (double)x;
            }
            diff_alpha[c] = (REAL)(accumulate ? (double)diff_alpha[c] + sum : sum);
        });
    } else {
        size_t total = rows * cols;
        size_t nblocks = ffnc_reduce_blocks(total);
        double partial[FFNC_REDUCE_BLOCKS];
        FFNC_PARALLEL_FOR(for (size_t b = 0; b < nblocks; b++) {
            size_t end = ffnc_block_begin(b + 1, nblocks, total);
            double sum = 0;
            for (size_t i = ffnc_block_begin(b, nblocks, total); i < end; i++)
                if (!(src[i] > 0)) sum += (double)diff_dst[i] * (double)src[i];
            partial[b] = sum;
        });
        double sum = 0;
        for (size_t b = 0; b < nblocks; b++) sum += partial[b];
        diff_alpha[0] = (REAL)(accumulate ? (double)diff_alpha[0] + sum : sum);
    }

    FFNC_PARALLEL_FOR(for (size_t r = 0; r < rows; r++) {
        const REAL *x = src + r * cols;
        const REAL *g = diff_dst + r * cols;
        REAL *dx = diff_src + r * cols;
        for (size_t c = 0; c < cols; c++) dx[c] = x[c] > 0 ? g[c] : alpha[c * alpha_step] * g[c];
    });
    return FFNC_OK;
}

/* ---- bias ------------------------------------------------------------------------------- */

ffnc_status KERNEL(bias_forward)(size_t rows, size_t cols, const REAL *src, const REAL *bias,
                                 REAL *dst) {
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ELEMENTWISE);
    FFNC_PARALLEL_FOR(for (size_t r = 0; r < rows; r++) {
        const REAL *x = src + r * cols;
        REAL *y = dst + r * cols;
        for (size_t c = 0; c < cols; c++) y[c] = x[c] + bias[c];
    });
    return FFNC_OK;
}

/* Column sums in tiles of BIAS_TILE columns: each tile accumulates all rows, in order, into a
 * double accumulator that stays in L1; tiles are split across threads. */
#define BIAS_TILE 64
ffnc_status KERNEL(bias_backward)(size_t rows, size_t cols, const REAL *diff_dst,
                                  REAL *diff_bias, int accumulate) {
    size_t tiles = (cols + BIAS_TILE - 1) / BIAS_TILE;
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ELEMENTWISE);
    if ((size_t)nt > tiles) nt = (int)tiles;
    FFNC_PARALLEL_FOR(for (size_t t = 0; t < tiles; t++) {
        size_t c0 = t * BIAS_TILE;
        size_t width = cols - c0 < BIAS_TILE ? cols - c0 : BIAS_TILE;
        double acc[BIAS_TILE];
        for (size_t j = 0; j < width; j++) acc[j] = 0; /* not all BIAS_TILE: a narrow layer */
        for (size_t r = 0; r < rows; r++) {
            const REAL *g = diff_dst + r * cols + c0;
            for (size_t j = 0; j < width; j++) acc[j] += (double)g[j];
        }
        for (size_t j = 0; j < width; j++)
            diff_bias[c0 + j] = (REAL)(accumulate ? (double)diff_bias[c0 + j] + acc[j] : acc[j]);
    });
    return FFNC_OK;
}
#undef BIAS_TILE

#undef LOCAL
#undef VEXP
#undef VEXPM1
