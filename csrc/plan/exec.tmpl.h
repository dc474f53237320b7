/* Element-wise and reduction loops of the plan executor for one element type; included by
 * exec.c with REAL (float or double) and SFX (f32 or f64) defined. Reductions accumulate in
 * double in a fixed order (rows or columns in increasing order, full sums in the fixed blocks
 * of ffnc_reduce_blocks), whatever the thread count. */

#define PLAN_CAT_(a, b) a##_##b
#define PLAN_CAT(a, b) PLAN_CAT_(a, b)
#define FN(name) PLAN_CAT(name, SFX)

static inline REAL FN(apply_binary)(int op, REAL a, REAL b) {
    switch (op) {
    case FFNC_BINARY_ADD: return a + b;
    case FFNC_BINARY_SUB: return a - b;
    case FFNC_BINARY_MUL: return a * b;
    case FFNC_BINARY_DIV: return a / b;
    /* NaN propagates from either side; ties go to a */
    case FFNC_BINARY_MAXIMUM: return (a != a || b != b) ? a + b : (a >= b ? a : b);
    case FFNC_BINARY_MINIMUM: return (a != a || b != b) ? a + b : (a <= b ? a : b);
    case FFNC_BINARY_GREATER: return a > b;
    case FFNC_BINARY_GREATER_EQUAL: return a >= b;
    default: return a == b;
    }
}

static inline REAL FN(apply_unary)(int op, REAL x, REAL alpha) {
    switch (op) {
    case FFNC_UNARY_COPY: return x;
    case FFNC_UNARY_NEG: return -x;
    case FFNC_UNARY_SCALE: return alpha * x;
    case FFNC_UNARY_EXP: return exp(x);
    case FFNC_UNARY_LOG: return log(x);
    case FFNC_UNARY_SQUARE: return x * x;
    default: return sqrt(x);
    }
}

/* dst[r, c] (=|+=) a[r sa0 + c sa1] op b[r sb0 + c sb1] for rows [r0, r1). */
static void FN(binary_rows)(const ffnc_plan_instr *in, size_t r0, size_t r1, size_t cols,
                            const REAL *a, const REAL *b, REAL *dst) {
    const size_t sa0 = in->strides[0], sa1 = in->strides[1];
    const size_t sb0 = in->strides[2], sb1 = in->strides[3];
    const int op = in->subop, acc = (in->flags & FFNC_PLAN_ACCUMULATE) != 0;
    for (size_t r = r0; r < r1; r++) {
        const REAL *ar = a + r * sa0, *br = b + r * sb0;
        REAL *d = dst + r * cols;
        if (sa1 == 1 && sb1 == 1) {
            if (acc) for (size_t c = 0; c < cols; c++) d[c] += FN(apply_binary)(op, ar[c], br[c]);
            else for (size_t c = 0; c < cols; c++) d[c] = FN(apply_binary)(op, ar[c], br[c]);
        } else {
            for (size_t c = 0; c < cols; c++) {
                REAL v = FN(apply_binary)(op, ar[c * sa1], br[c * sb1]);
                d[c] = acc ? d[c] + v : v;
            }
        }
    }
}

static void FN(unary_rows)(const ffnc_plan_instr *in, size_t r0, size_t r1, size_t cols,
                           const REAL *a, REAL *dst) {
    const size_t sa0 = in->strides[0], sa1 = in->strides[1];
    const int op = in->subop, acc = (in->flags & FFNC_PLAN_ACCUMULATE) != 0;
    const REAL alpha = (REAL)in->alpha;
    for (size_t r = r0; r < r1; r++) {
        const REAL *ar = a + r * sa0;
        REAL *d = dst + r * cols;
        if (sa1 == 1) {
            if (acc) for (size_t c = 0; c < cols; c++) d[c] += FN(apply_unary)(op, ar[c], alpha);
            else for (size_t c = 0; c < cols; c++) d[c] = FN(apply_unary)(op, ar[c], alpha);
        } else {
            for (size_t c = 0; c < cols; c++) {
                REAL v = FN(apply_unary)(op, ar[c * sa1], alpha);
                d[c] = acc ? d[c] + v : v;
            }
        }
    }
}

/* Runs rows_fn over [0, rows) on nt threads, each a contiguous block of rows. A contiguous
 * operation over one long row is split the same way by viewing it as blocks of columns. */
static void FN(elementwise)(const ffnc_plan_instr *in, size_t rows, size_t cols, const REAL *a,
                            const REAL *b, REAL *dst) {
    int unary = in->opcode == FFNC_OP_UNARY;
    int heavy = unary && (in->subop == FFNC_UNARY_EXP || in->subop == FFNC_UNARY_LOG);
    size_t total = rows * cols;
    int nt = ffnc_threads_for(total, heavy ? FFNC_GRAIN_TRANSCENDENTAL : FFNC_GRAIN_ELEMENTWISE);
    if (nt <= 1) {
        if (unary) FN(unary_rows)(in, 0, rows, cols, a, dst);
        else FN(binary_rows)(in, 0, rows, cols, a, b, dst);
        return;
    }
    /* One long row: split its columns across threads instead (strides stay per column). */
    int by_cols = rows < (size_t)nt;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        size_t span = by_cols ? cols : rows;
        size_t lo = ffnc_block_begin((size_t)t, (size_t)team, span);
        size_t hi = ffnc_block_begin((size_t)t + 1, (size_t)team, span);
        if (!by_cols) {
            if (unary) FN(unary_rows)(in, lo, hi, cols, a, dst);
            else FN(binary_rows)(in, lo, hi, cols, a, b, dst);
        } else {
            for (size_t r = 0; r < rows; r++) {
                const REAL *ar = a + r * in->strides[0] + lo * in->strides[1];
                REAL *d = dst + r * cols + lo;
                if (unary) {
                    FN(unary_rows)(in, 0, 1, hi - lo, ar, d);
                } else {
                    const REAL *br = b + r * in->strides[2] + lo * in->strides[3];
                    FN(binary_rows)(in, 0, 1, hi - lo, ar, br, d);
                }
            }
        }
    }
}

static void FN(fill)(size_t n, double value, REAL *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = (REAL)value;
}

static inline void FN(store)(REAL *dst, double value, int accumulate) {
    *dst = accumulate ? (REAL)(*dst + (REAL)value) : (REAL)value;
}

static void FN(colsum_range)(size_t lo, size_t hi, size_t rows, size_t cols, const REAL *src,
                             REAL *dst, double scale, int accumulate) {
    for (size_t c = lo; c < hi; c++) {
        double s = 0;
        for (size_t r = 0; r < rows; r++) s += src[r * cols + c];
        FN(store)(&dst[c], s * scale, accumulate);
    }
}

/* Column sums in double, rows in increasing order; columns split over threads. */
static void FN(colsum)(size_t rows, size_t cols, const REAL *src, REAL *dst, double scale,
                       int accumulate) {
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ROWWISE);
    if (nt <= 1 || cols < (size_t)nt) {
        FN(colsum_range)(0, cols, rows, cols, src, dst, scale, accumulate);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        FN(colsum_range)(ffnc_block_begin((size_t)t, (size_t)team, cols),
                         ffnc_block_begin((size_t)t + 1, (size_t)team, cols), rows, cols, src,
                         dst, scale, accumulate);
    }
}

static void FN(rowsum_range)(size_t lo, size_t hi, size_t cols, const REAL *src, REAL *dst,
                             double scale, int accumulate) {
    for (size_t r = lo; r < hi; r++) {
        double s = 0;
        for (size_t c = 0; c < cols; c++) s += src[r * cols + c];
        FN(store)(&dst[r], s * scale, accumulate);
    }
}

static void FN(rowsum)(size_t rows, size_t cols, const REAL *src, REAL *dst, double scale,
                       int accumulate) {
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ROWWISE);
    if (nt <= 1 || rows < (size_t)nt) {
        FN(rowsum_range)(0, rows, cols, src, dst, scale, accumulate);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        FN(rowsum_range)(ffnc_block_begin((size_t)t, (size_t)team, rows),
                         ffnc_block_begin((size_t)t + 1, (size_t)team, rows), cols, src, dst,
                         scale, accumulate);
    }
}

static double FN(block_total)(size_t b, size_t nblocks, size_t n, const REAL *src) {
    size_t lo = ffnc_block_begin(b, nblocks, n), hi = ffnc_block_begin(b + 1, nblocks, n);
    double s = 0;
    for (size_t i = lo; i < hi; i++) s += src[i];
    return s;
}

static void FN(sum_all)(size_t n, const REAL *src, REAL *dst, double scale, int accumulate) {
    double block_sum[FFNC_REDUCE_BLOCKS];
    size_t nblocks = ffnc_reduce_blocks(n);
    int nt = ffnc_threads_for(n, FFNC_GRAIN_ELEMENTWISE);
    if (nt <= 1) {
        for (size_t b = 0; b < nblocks; b++) block_sum[b] = FN(block_total)(b, nblocks, n, src);
    } else {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t b = 0; b < nblocks; b++) block_sum[b] = FN(block_total)(b, nblocks, n, src);
    }
    double total = 0;
    for (size_t b = 0; b < nblocks; b++) total += block_sum[b];
    FN(store)(dst, total * scale, accumulate);
}

/* ---- 30-59: selection, row-wise, index and layout instructions ------------------------- */

#define VEXP PLAN_CAT(ffnc_vexp, SFX)

/* The flat range [lo, hi) of a rows x cols loop, as (row, column) runs. */
#define FOR_FLAT_RANGE(lo, hi, cols, BODY)                                                  \
    for (size_t flat_ = (lo); flat_ < (hi);) {                                              \
        size_t r = flat_ / (cols), c0 = flat_ % (cols);                                     \
        size_t c1 = (cols) - c0 < (hi) - flat_ ? (cols) : c0 + ((hi) - flat_);              \
        for (size_t c = c0; c < c1; c++) BODY;                                              \
        flat_ += c1 - c0;                                                                   \
    }

static void FN(where_range)(const ffnc_plan_instr *in, size_t lo, size_t hi, size_t cols,
                            const REAL *cond, const REAL *a, const REAL *b, REAL *dst) {
    const size_t *s = in->strides;
    FOR_FLAT_RANGE(lo, hi, cols, {
        dst[r * cols + c] = cond[r * s[0] + c * s[1]] != 0 ? a[r * s[2] + c * s[3]]
                                                            : b[r * s[4] + c * s[5]];
    })
}

/* Element-wise, so any split gives the same bits; split over the flat index. */
static void FN(where)(const ffnc_plan_instr *in, size_t rows, size_t cols, const REAL *cond,
                      const REAL *a, const REAL *b, REAL *dst) {
    size_t total = rows * cols;
    int nt = ffnc_threads_for(total, FFNC_GRAIN_ELEMENTWISE);
    if (nt <= 1) {
        FN(where_range)(in, 0, total, cols, cond, a, b, dst);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        FN(where_range)(in, ffnc_block_begin((size_t)t, (size_t)team, total),
                        ffnc_block_begin((size_t)t + 1, (size_t)team, total), cols, cond, a, b,
                        dst);
    }
}

/* Every index is checked before anything is written. */
static ffnc_status FN(one_hot)(size_t rows, size_t depth, const REAL *index, const REAL *scale,
                               REAL *dst) {
    for (size_t r = 0; r < rows; r++)
        FFNC_REQUIRE(index[r] >= 0 && index[r] < (REAL)depth && index[r] == floor(index[r]),
                     FFNC_ERR_LABEL_OUT_OF_RANGE);
    int nt = ffnc_threads_for(rows * depth, FFNC_GRAIN_ELEMENTWISE);
    FFNC_PARALLEL_FOR(for (size_t r = 0; r < rows; r++) {
        REAL *d = dst + r * depth;
        size_t hot = (size_t)index[r];
        /* as the graph's scale * one_hot: NaN or inf scales reach every element */
        REAL on = scale ? scale[r] * (REAL)1 : (REAL)1, off = scale ? scale[r] * (REAL)0 : 0;
        for (size_t c = 0; c < depth; c++) d[c] = c == hot ? on : off;
    });
    return FFNC_OK;
}

static ffnc_status FN(from_int64)(size_t n, const int64_t *src, REAL *dst, int exact) {
    if (exact) {
        const int64_t limit = sizeof(REAL) == sizeof(float) ? (int64_t)1 << 24 : (int64_t)1 << 53;
        for (size_t i = 0; i < n; i++)
            FFNC_REQUIRE(src[i] >= -limit && src[i] <= limit, FFNC_ERR_LABEL_OUT_OF_RANGE);
    }
    for (size_t i = 0; i < n; i++) dst[i] = (REAL)src[i];
    return FFNC_OK;
}

/* The shift of a softmax line: its max, or 0 when that is not finite (a line of -inf then
 * gives exp 0 rather than NaN, as the reference interpreter does). NaN is passed over by the
 * comparisons but still reaches every output through exp. */
static inline REAL FN(line_shift)(size_t n, size_t k, const REAL *x) {
    REAL mx = x[0];
    for (size_t j = 1; j < n; j++) mx = x[j * k] > mx ? x[j * k] : mx;
    return isfinite(mx) ? mx : (REAL)0;
}

/* One line of n elements at stride k: the softmax, log-softmax or log-sum-exp (one value). */
static inline void FN(softmax_line)(int kind, size_t n, size_t k, const REAL *x, REAL *y) {
    if (n == 0) {
        if (kind == PLAN_LOGSUMEXP) *y = -INFINITY;
        return;
    }
    REAL shift = FN(line_shift)(n, k, x);
    double sum = 0;
    if (kind == PLAN_SOFTMAX) {
        for (size_t j = 0; j < n; j++) y[j * k] = VEXP(x[j * k] - shift);
        for (size_t j = 0; j < n; j++) sum += (double)y[j * k];
        double inv = 1 / sum;
        for (size_t j = 0; j < n; j++) y[j * k] = (REAL)(y[j * k] * inv);
        return;
    }
    for (size_t j = 0; j < n; j++) sum += (double)VEXP(x[j * k] - shift);
    double log_sum = log(sum);
    if (kind == PLAN_LOGSUMEXP) {
        *y = (REAL)((double)shift + log_sum);
        return;
    }
    for (size_t j = 0; j < n; j++) y[j * k] = (REAL)(((double)x[j * k] - (double)shift) - log_sum);
}

/* m x k independent lines, each on one thread: any thread count gives the same bits. */
static void FN(softmax_family)(int kind, size_t m, size_t n, size_t k, const REAL *src,
                               REAL *dst) {
    size_t lines = m * k;
    int nt = ffnc_threads_for(lines * n, FFNC_GRAIN_ROWWISE);
    FFNC_PARALLEL_FOR(for (size_t line = 0; line < lines; line++) {
        size_t o = line / k, i = line % k;
        const REAL *x = src + o * n * k + i;
        REAL *y = kind == PLAN_LOGSUMEXP ? dst + line : dst + o * n * k + i;
        /* a literal stride 1 lets the compiler vectorise the contiguous case */
        if (k == 1) FN(softmax_line)(kind, n, 1, x, y);
        else FN(softmax_line)(kind, n, k, x, y);
    });
}

/* One line of the softmax backward y (g - sum(y g)) or the log-softmax one g - exp(y) sum(g),
 * the sum in double. */
static inline void FN(softmax_backward_line)(int log_form, size_t n, size_t k, const REAL *g,
                                             const REAL *y, REAL *dx) {
    double dot = 0;
    if (log_form) {
        for (size_t j = 0; j < n; j++) dot += (double)g[j * k];
        for (size_t j = 0; j < n; j++) dx[j * k] = (REAL)(g[j * k] - (double)VEXP(y[j * k]) * dot);
    } else {
        for (size_t j = 0; j < n; j++) dot += (double)y[j * k] * g[j * k];
        for (size_t j = 0; j < n; j++) dx[j * k] = (REAL)(y[j * k] * ((double)g[j * k] - dot));
    }
}

static void FN(softmax_backward)(int log_form, size_t m, size_t n, size_t k, const REAL *g,
                                 const REAL *y, REAL *dx) {
    size_t lines = m * k;
    int nt = ffnc_threads_for(lines * n, FFNC_GRAIN_ROWWISE);
    FFNC_PARALLEL_FOR(for (size_t line = 0; line < lines; line++) {
        size_t base = (line / k) * n * k + line % k;
        if (k == 1) FN(softmax_backward_line)(log_form, n, 1, g + base, y + base, dx + base);
        else FN(softmax_backward_line)(log_form, n, k, g + base, y + base, dx + base);
    });
}

/* The first maximum of each line and its index; NaN beats every number and the first NaN
 * wins (numpy's argmax). */
static void FN(max_argmax)(size_t m, size_t n, size_t k, const REAL *src, REAL *max,
                           REAL *argmax) {
    size_t lines = m * k;
    int nt = ffnc_threads_for(lines * n, FFNC_GRAIN_ELEMENTWISE);
    FFNC_PARALLEL_FOR(for (size_t line = 0; line < lines; line++) {
        const REAL *x = src + (line / k) * n * k + line % k;
        REAL best = x[0];
        size_t at = 0;
        for (size_t j = 1; j < n && best == best; j++) {
            REAL v = x[j * k];
            if (v > best || v != v) {
                best = v;
                at = j;
            }
        }
        if (max) max[line] = best;
        if (argmax) argmax[line] = (REAL)at;
    });
}

static void FN(copy_strided)(const ffnc_plan_instr *in, size_t rows, size_t cols,
                             const REAL *src, REAL *dst) {
    const size_t *s = in->strides;
    const int acc = (in->flags & FFNC_PLAN_ACCUMULATE) != 0;
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ELEMENTWISE);
    FFNC_PARALLEL_FOR(for (size_t r = 0; r < rows; r++) {
        const REAL *a = src + r * s[0];
        REAL *d = dst + r * s[2];
        if (s[1] == 1 && s[3] == 1) {
            if (acc) for (size_t c = 0; c < cols; c++) d[c] += a[c];
            else memcpy(d, a, cols * sizeof *d);
        } else {
            for (size_t c = 0; c < cols; c++)
                d[c * s[3]] = acc ? d[c * s[3]] + a[c * s[1]] : a[c * s[1]];
        }
    });
}

static void FN(transpose)(size_t rows, size_t cols, const REAL *src, REAL *dst) {
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ELEMENTWISE);
    FFNC_PARALLEL_FOR(for (size_t c = 0; c < cols; c++) {
        for (size_t r = 0; r < rows; r++) dst[c * rows + r] = src[r * cols + c];
    });
}

static void FN(sqdist)(size_t m, size_t n, size_t k, const REAL *x, const REAL *centers,
                       REAL *dst) {
    int nt = ffnc_threads_for(m * n * k, FFNC_GRAIN_ELEMENTWISE);
    FFNC_PARALLEL_FOR(for (size_t r = 0; r < m; r++) {
        const REAL *xr = x + r * k;
        for (size_t c = 0; c < n; c++) {
            const REAL *cc = centers + c * k;
            double s = 0;
            for (size_t j = 0; j < k; j++) {
                double d = (double)xr[j] - (double)cc[j];
                s += d * d;
            }
            dst[r * n + c] = (REAL)s;
        }
    });
}

/* Blocks of elements on threads; the mask is a function of the element's index only. */
static void FN(dropout)(size_t n, double p, uint64_t seed, uint64_t step, const REAL *src,
                        REAL *dst) {
    const REAL scale = (REAL)(1.0 / (1.0 - p));
    size_t nblocks = ffnc_reduce_blocks(n);
    int nt = ffnc_threads_for(n, FFNC_GRAIN_ELEMENTWISE);
    FFNC_PARALLEL_FOR(for (size_t b = 0; b < nblocks; b++) {
        size_t end = ffnc_block_begin(b + 1, nblocks, n);
        for (size_t i = ffnc_block_begin(b, nblocks, n); i < end; i++)
            dst[i] = ffnc_dropout_keep(seed, step, i, p) ? src[i] * scale : (REAL)0;
    });
}

#undef VEXP
#undef FN
#undef PLAN_CAT
#undef PLAN_CAT_
