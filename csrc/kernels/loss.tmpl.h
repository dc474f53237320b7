/* Body of loss.c for one REAL type. Math calls are type-generic (tgmath.h): exp and log1p of a
 * REAL run in REAL, everything that is summed is summed in double.
 *
 * Determinism: a loss over a batch is summed in the fixed blocks of ffnc_reduce_blocks (rows or
 * elements in index order inside a block, then the block sums in block order), so it depends
 * on the sizes only, never on the thread count. The loops are scalar with no reassociation
 * (no fast-math, no FP contraction in ISO C), so the ISA path does not change a result either.
 *
 * NaN: a NaN input makes the loss NaN, and the outputs that depend on it NaN (the whole row for
 * the softmax kernels, the one element for the element-wise ones). */

#define LOCAL(name) FFNC_CAT2(name, SFX)
#define VEXP FFNC_CAT2(ffnc_vexp, SFX)

/* Sums in double in four interleaved lanes, combined in a fixed order: vectorizes, and the
 * order is written here, so it is the same for every ISA path and thread count. */
static inline double LOCAL(sum_double)(size_t n, const REAL *x) {
    double lane[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) lane[j] += (double)x[i + j];
    double sum = (lane[0] + lane[1]) + (lane[2] + lane[3]);
    for (; i < n; i++) sum += (double)x[i];
    return sum;
}

/* sum over i of exp(x[i] - shift), in the lanes of sum_double. */
static inline double LOCAL(sum_exp_shifted)(size_t n, const REAL *x, REAL shift) {
    double lane[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) lane[j] += (double)VEXP(x[i + j] - shift);
    double sum = (lane[0] + lane[1]) + (lane[2] + lane[3]);
    for (; i < n; i++) sum += (double)VEXP(x[i] - shift);
    return sum;
}

/* ---- row-wise: softmax cross-entropy and log-softmax ------------------------------------ */

/* The largest of x[0..cols), cols >= 1, in eight interleaved lanes so the scan vectorizes.
 * NaNs are passed over here (they compare false) but still reach every output: exp(NaN - m)
 * is NaN, so the row's sum, probabilities and loss are NaN; a row of NaNs gives m = NaN. */
static inline REAL LOCAL(row_max)(size_t cols, const REAL *x) {
    REAL lane[8];
    for (int j = 0; j < 8; j++) lane[j] = x[0];
    size_t c = 0;
    for (; c + 8 <= cols; c += 8)
        for (int j = 0; j < 8; j++) lane[j] = x[c + j] > lane[j] ? x[c + j] : lane[j];
    REAL m = lane[0];
    for (int j = 1; j < 8; j++) m = lane[j] > m ? lane[j] : m;
    for (; c < cols; c++) m = x[c] > m ? x[c] : m;
    return m;
}

/* probs[r] = softmax(logits[r]) = exp(x - m) / sum exp(x - m), m the row max, so no exp can
 * overflow and the sum is >= 1. The loss term -log softmax(x)[label] = log(sum) - (x[label] - m)
 * is formed in double from the shifted logit, never from a rounded probability, so it stays
 * exact where the probability underflows. */
ffnc_status KERNEL(softmax_xent_forward)(size_t rows, size_t classes, const REAL *logits,
                                         const int64_t *labels, double scale, REAL *probs,
                                         double *loss) {
    FFNC_TRY(labels_in_range(rows, classes, labels));
    /* From here classes >= 1 or rows == 0: every row has an element to take the max of. */
    size_t nblocks = ffnc_reduce_blocks(rows);
    double partial[FFNC_REDUCE_BLOCKS];
    int nt = ffnc_threads_for(rows * classes, FFNC_GRAIN_ROWWISE);
    FFNC_PARALLEL_FOR(for (size_t b = 0; b < nblocks; b++) {
        size_t end = ffnc_block_begin(b + 1, nblocks, rows);
        double block_loss = 0;
        for (size_t r = ffnc_block_begin(b, nblocks, rows); r < end; r++) {
            const REAL *x = logits + r * classes;
            REAL *p = probs + r * classes;
            REAL m = LOCAL(row_max)(classes, x);
            /* Read before p, which may be x, is overwritten. */
            double label_shifted = (double)x[labels[r]] - (double)m;
            for (size_t c = 0; c < classes; c++) p[c] = VEXP(x[c] - m);
            double sum = LOCAL(sum_double)(classes, p);
            double inv_sum = 1 / sum;
            for (size_t c = 0; c < classes; c++) p[c] = (REAL)(p[c] * inv_sum);
            block_loss += log(sum) - label_shifted;
        }
        partial[b] = block_loss;
    });
    double total = 0;
    for (size_t b = 0; b < nblocks; b++) total += partial[b];
    *loss = scale * total;
    return FFNC_OK;
}

ffnc_status KERNEL(softmax_xent_backward)(size_t rows, size_t classes, const REAL *probs,
                                          const int64_t *labels, double diff_loss_scale,
                                          REAL *diff_logits) {
    FFNC_TRY(labels_in_range(rows, classes, labels));
    int nt = ffnc_threads_for(rows * classes, FFNC_GRAIN_ROWWISE);
    FFNC_PARALLEL_FOR(for (size_t r = 0; r < rows; r++) {
        const REAL *p = probs + r * classes;
        REAL *d = diff_logits + r * classes;
        size_t label = (size_t)labels[r];
        /* Read before d, which may be p, is overwritten. */
        double p_label = p[label];
        for (size_t c = 0; c < classes; c++) d[c] = (REAL)(diff_loss_scale * p[c]);
        d[label] = (REAL)(diff_loss_scale * (p_label - 1));
    });
    return FFNC_OK;
}

/* dst = (x - m) - log(sum exp(x - m)): the shift keeps every exp <= 1 and the sum >= 1. */
ffnc_status KERNEL(log_softmax_forward)(size_t rows, size_t cols, const REAL *src, REAL *dst) {
    if (cols == 0) return FFNC_OK;
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ROWWISE);
    FFNC_PARALLEL_FOR(for (size_t r = 0; r < rows; r++) {
        const REAL *x = src + r * cols;
        REAL *y = dst + r * cols;
        REAL m = LOCAL(row_max)(cols, x);
        double log_sum = log(LOCAL(sum_exp_shifted)(cols, x, m));
        for (size_t c = 0; c < cols; c++) y[c] = (REAL)(((double)x[c] - (double)m) - log_sum);
    });
    return FFNC_OK;
}

/* With y = log_softmax(x), dy_c/dx_k = [c == k] - softmax(x)_k and softmax(x) = exp(y), so
 * diff_x = g - exp(y) sum(g). */
ffnc_status KERNEL(log_softmax_backward)(size_t rows, size_t cols, const REAL *diff_dst,
                                         const REAL *dst, REAL *diff_src) {
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ROWWISE);
    FFNC_PARALLEL_FOR(for (size_t r = 0; r < rows; r++) {
        const REAL *g = diff_dst + r * cols;
        const REAL *y = dst + r * cols;
        REAL *dx = diff_src + r * cols;
        double g_sum = LOCAL(sum_double)(cols, g);
        for (size_t c = 0; c < cols; c++) dx[c] = (REAL)(g[c] - (double)VEXP(y[c]) * g_sum);
    });
    return FFNC_OK;
}

/* ---- element-wise losses ------------------------------------------------------------------ */

/* *loss = scale * (sum over i < n of TERM), TERM a double expression of a = first[i] and
 * b = second[i], in fixed blocks. */
#define FFNC_BLOCK_LOSS(first, second, grain, TERM)                                         \
    do {                                                                                    \
        size_t nblocks = ffnc_reduce_blocks(n);                                             \
        double partial[FFNC_REDUCE_BLOCKS];                                                 \
        int nt = ffnc_threads_for(n, grain);                                                \
        FFNC_PARALLEL_FOR(for (size_t blk = 0; blk < nblocks; blk++) {                      \
            size_t end = ffnc_block_begin(blk + 1, nblocks, n);                             \
            double sum = 0;                                                                 \
            for (size_t i = ffnc_block_begin(blk, nblocks, n); i < end; i++) {              \
                REAL a = (first)[i], b = (second)[i];                                       \
                sum += (TERM);                                                              \
            }                                                                               \
            partial[blk] = sum;                                                             \
        });                                                                                 \
        double total = 0;                                                                   \
        for (size_t blk = 0; blk < nblocks; blk++) total += partial[blk];                   \
        *loss = scale * total;                                                              \
    } while (0)

/* out[i] = (REAL)(diff_loss_scale * GRAD), GRAD a double expression of a = first[i] and
 * b = second[i]. Both are read before out[i] is written, so out may alias either. */
#define FFNC_MAP_GRAD(first, second, out, grain, GRAD)                                      \
    do {                                                                                    \
        int nt = ffnc_threads_for(n, grain);                                                \
        FFNC_PARALLEL_FOR(for (size_t i = 0; i < n; i++) {                                  \
            REAL a = (first)[i], b = (second)[i];                                           \
            (out)[i] = (REAL)(diff_loss_scale * (GRAD));                                    \
        });                                                                                 \
    } while (0)

/* max(z, 0) - y z + log(1 + e^-|z|): e^-|z| <= 1 cannot overflow, and log1p keeps the tail
 * accurate where the exp is tiny. (A NaN z reaches y z, so it is not lost in the max.) */
static inline double LOCAL(bce_term)(REAL z, REAL y) {
    return (double)(z > 0 ? z : 0) - (double)y * (double)z + (double)log1p(exp(-fabs(z)));
}

/* sigmoid(z) - y, written with q = sigmoid(-|z|) = e^-|z| / (1 + e^-|z|) so that neither
 * branch subtracts two numbers close to 1: sigmoid(z) = 1 - q for z >= 0, q for z < 0. It is
 * also the exact derivative of bce_term on each side of 0. */
static inline double LOCAL(bce_gradient)(REAL z, REAL y) {
    double e = exp(-fabs(z));
    double q = e / (1 + e);
    return z >= 0 ? (1 - (double)y) - q : q - (double)y;
}

/* sign(d) with sign(0) = 0 and NaN kept. */
static inline double LOCAL(sign)(double d) {
    return d > 0 ? 1.0 : (d < 0 ? -1.0 : (d == 0 ? 0.0 : d));
}

/* BCE's exp and log1p per element cost about what a softmax element does, hence the row-wise
 * grain; MSE and L1 are memory-bound like the activations. */
ffnc_status KERNEL(bce_logits_forward)(size_t n, const REAL *logits, const REAL *targets,
                                       double scale, double *loss) {
    FFNC_BLOCK_LOSS(logits, targets, FFNC_GRAIN_ROWWISE, LOCAL(bce_term)(a, b));
    return FFNC_OK;
}

ffnc_status KERNEL(bce_logits_backward)(size_t n, const REAL *logits, const REAL *targets,
                                        double diff_loss_scale, REAL *diff_logits) {
    FFNC_MAP_GRAD(logits, targets, diff_logits, FFNC_GRAIN_ROWWISE, LOCAL(bce_gradient)(a, b));
    return FFNC_OK;
}

ffnc_status KERNEL(mse_forward)(size_t n, const REAL *pred, const REAL *target, double scale,
                                double *loss) {
    FFNC_BLOCK_LOSS(pred, target, FFNC_GRAIN_ELEMENTWISE,
                    ((double)a - (double)b) * ((double)a - (double)b));
    return FFNC_OK;
}

ffnc_status KERNEL(mse_backward)(size_t n, const REAL *pred, const REAL *target,
                                 double diff_loss_scale, REAL *diff_pred) {
    FFNC_MAP_GRAD(pred, target, diff_pred, FFNC_GRAIN_ELEMENTWISE, 2 * ((double)a - (double)b));
    return FFNC_OK;
}

ffnc_status KERNEL(l1_forward)(size_t n, const REAL *pred, const REAL *target, double scale,
                               double *loss) {
    FFNC_BLOCK_LOSS(pred, target, FFNC_GRAIN_ELEMENTWISE, fabs((double)a - (double)b));
    return FFNC_OK;
}

ffnc_status KERNEL(l1_backward)(size_t n, const REAL *pred, const REAL *target,
                                double diff_loss_scale, REAL *diff_pred) {
    FFNC_MAP_GRAD(pred, target, diff_pred, FFNC_GRAIN_ELEMENTWISE,
                  LOCAL(sign)((double)a - (double)b));
    return FFNC_OK;
}

#undef FFNC_BLOCK_LOSS
#undef FFNC_MAP_GRAD
#undef LOCAL
#undef VEXP
