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
    default: return (a != a || b != b) ? a + b : (a <= b ? a : b);
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

#undef FN
#undef PLAN_CAT
#undef PLAN_CAT_
