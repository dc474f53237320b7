/* Loss kernels against naive double references, on every ISA path and both dtypes; label,
 * NULL-pointer, size-overflow and scale checks; bitwise reproducibility across thread counts
 * and ISA paths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Tolerances of a kernel against its double reference (as in tests/conftest.py). */
static const double RTOL[2] = {2e-5, 1e-12};
static const double ATOL[2] = {1e-6, 1e-14};

static unsigned long long seed = 0x9E3779B97F4A7C15ULL;

static size_t elem_size(ffnc_dtype dt) { return dt == FFNC_F32 ? sizeof(float) : sizeof(double); }

/* A buffer of n values of dtype dt (at least one byte, so malloc never returns NULL for 0). */
static void *alloc(ffnc_dtype dt, size_t n) {
    void *p = malloc(n ? n * elem_size(dt) : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static double get(ffnc_dtype dt, const void *p, size_t i) {
    return dt == FFNC_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static void set(ffnc_dtype dt, void *p, size_t i, double v) {
    if (dt == FFNC_F32)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* n uniform values in [lo, hi) as dtype dt; `ref` (if not NULL) receives the same values in
 * double, exactly as the kernel will see them. */
static void *random_array(ffnc_dtype dt, size_t n, double lo, double hi, double *ref) {
    void *p = alloc(dt, n);
    for (size_t i = 0; i < n; i++) {
        set(dt, p, i, check_uniform(&seed, lo, hi));
        if (ref) ref[i] = get(dt, p, i);
    }
    return p;
}

static double *alloc_double(size_t n) { return (double *)alloc(FFNC_F64, n); }

static int64_t *random_labels(size_t rows, size_t classes) {
    int64_t *labels = malloc((rows ? rows : 1) * sizeof *labels);
    if (!labels) exit(2);
    for (size_t r = 0; r < rows; r++) {
        labels[r] = (int64_t)check_uniform(&seed, 0, (double)classes);
        if (labels[r] >= (int64_t)classes) labels[r] = (int64_t)classes - 1;
    }
    return labels;
}

/* ---- references (double, straight from the definitions) ---------------------------------- */

/* y = log_softmax(x) in the shifted form (x - m) - log(sum exp(x - m)), which is exact to a
 * rounding or two even for logits ~1e4 apart (m + log(sum) would round away the small terms). */
static void ref_log_softmax_row(size_t cols, const double *x, double *y) {
    double m = x[0];
    for (size_t c = 1; c < cols; c++) m = x[c] > m ? x[c] : m;
    double sum = 0;
    for (size_t c = 0; c < cols; c++) sum += exp(x[c] - m);
    double log_sum = log(sum);
    for (size_t c = 0; c < cols; c++) y[c] = (x[c] - m) - log_sum;
}

/* ---- softmax cross-entropy ---------------------------------------------------------------- */

static void test_softmax_xent(ffnc_dtype dt, size_t rows, size_t classes, double magnitude) {
    size_t total = rows * classes;
    double *x = alloc_double(total), *ref_probs = alloc_double(total);
    double *ref_diff = alloc_double(total);
    void *logits = random_array(dt, total, -magnitude, magnitude, x);
    int64_t *labels = random_labels(rows, classes);
    void *probs = alloc(dt, total), *diff = alloc(dt, total);

    double ref_sum = 0, diff_scale = -0.7;
    for (size_t r = 0; r < rows; r++) {
        double *p = ref_probs + r * classes;
        ref_log_softmax_row(classes, x + r * classes, p);
        ref_sum -= p[(size_t)labels[r]];
        for (size_t c = 0; c < classes; c++) {
            p[c] = exp(p[c]);
            ref_diff[r * classes + c] = diff_scale * (p[c] - (c == (size_t)labels[r]));
        }
    }

    double loss = -1;
    CHECK_OK(ffnc_softmax_xent_forward(dt, rows, classes, logits, labels, 1.0 / rows, probs,
                                       &loss));
    CHECK_CLOSE(loss, ref_sum / rows, RTOL[dt], ATOL[dt]);
    CHECK(isfinite(loss));
    int probs_ok = 1;
    for (size_t i = 0; i < total; i++)
        probs_ok &= check_close_(get(dt, probs, i), ref_probs[i], RTOL[dt], ATOL[dt]);
    CHECK(probs_ok);

    double loss_sum = -1;
    void *probs_again = alloc(dt, total);
    CHECK_OK(ffnc_softmax_xent_forward(dt, rows, classes, logits, labels, 1.0, probs_again,
                                       &loss_sum));
    CHECK_CLOSE(loss_sum, ref_sum, RTOL[dt], ATOL[dt]);

    CHECK_OK(ffnc_softmax_xent_backward(dt, rows, classes, probs, labels, diff_scale, diff));
    int diff_ok = 1;
    for (size_t i = 0; i < total; i++)
        diff_ok &= check_close_(get(dt, diff, i), ref_diff[i], RTOL[dt], ATOL[dt]);
    CHECK(diff_ok);

    /* In place: probs over the logits, then the gradient over the probs; same bits. */
    double loss_in_place = -1;
    CHECK_OK(ffnc_softmax_xent_forward(dt, rows, classes, logits, labels, 1.0 / rows, logits,
                                       &loss_in_place));
    CHECK(loss_in_place == loss);
    CHECK(memcmp(logits, probs, total * elem_size(dt)) == 0);
    CHECK_OK(ffnc_softmax_xent_backward(dt, rows, classes, logits, labels, diff_scale, logits));
    CHECK(memcmp(logits, diff, total * elem_size(dt)) == 0);

    free(x), free(ref_probs), free(ref_diff), free(logits), free(labels), free(probs), free(diff);
    free(probs_again);
}

/* A NaN logit makes its row's probabilities and the loss NaN; other rows are unaffected. */
static void test_softmax_xent_nan(ffnc_dtype dt) {
    size_t rows = 3, classes = 5;
    for (size_t nan_col = 0; nan_col < classes; nan_col++) {
        void *logits = random_array(dt, rows * classes, -3, 3, NULL);
        set(dt, logits, 1 * classes + nan_col, NAN);
        int64_t labels[3] = {0, 4, 2};
        void *probs = alloc(dt, rows * classes);
        double loss = 0;
        CHECK_OK(ffnc_softmax_xent_forward(dt, rows, classes, logits, labels, 1.0, probs, &loss));
        CHECK(isnan(loss));
        int row_nan = 1, others_finite = 1;
        for (size_t c = 0; c < classes; c++) {
            row_nan &= isnan(get(dt, probs, classes + c));
            others_finite &= isfinite(get(dt, probs, c));
            others_finite &= isfinite(get(dt, probs, 2 * classes + c));
        }
        CHECK(row_nan);
        CHECK(others_finite);

        void *y = alloc(dt, rows * classes);
        CHECK_OK(ffnc_log_softmax_forward(dt, rows, classes, logits, y));
        row_nan = 1, others_finite = 1;
        for (size_t c = 0; c < classes; c++) {
            row_nan &= isnan(get(dt, y, classes + c));
            others_finite &= isfinite(get(dt, y, c));
            others_finite &= isfinite(get(dt, y, 2 * classes + c));
        }
        CHECK(row_nan);
        CHECK(others_finite);
        free(logits), free(probs), free(y);
    }
}

/* A bad label is reported before anything is written: outputs (even in place) stay as they were. */
static void test_labels_out_of_range(ffnc_dtype dt) {
    size_t rows = 4, classes = 3;
    int64_t bad_labels[][4] = {
        {0, 1, 3, 2}, {0, -1, 1, 2}, {INT64_MAX, 0, 0, 0}, {0, 0, 0, INT64_MIN}};
    for (size_t k = 0; k < sizeof bad_labels / sizeof bad_labels[0]; k++) {
        void *logits = random_array(dt, rows * classes, -1, 1, NULL);
        void *saved = alloc(dt, rows * classes);
        memcpy(saved, logits, rows * classes * elem_size(dt));
        void *probs = alloc(dt, rows * classes);
        for (size_t i = 0; i < rows * classes; i++) set(dt, probs, i, 42);
        double loss = 123;
        const int64_t *labels = bad_labels[k];
        size_t r = rows, c = classes;
        CHECK_STATUS(ffnc_softmax_xent_forward(dt, r, c, logits, labels, 1.0, probs, &loss),
                     FFNC_ERR_LABEL_OUT_OF_RANGE);
        CHECK(loss == 123);
        int untouched = 1;
        for (size_t i = 0; i < rows * classes; i++) untouched &= get(dt, probs, i) == 42;
        CHECK(untouched);
        CHECK_STATUS(ffnc_softmax_xent_forward(dt, r, c, logits, labels, 1.0, logits, &loss),
                     FFNC_ERR_LABEL_OUT_OF_RANGE);
        CHECK(memcmp(logits, saved, rows * classes * elem_size(dt)) == 0);
        CHECK_STATUS(ffnc_softmax_xent_backward(dt, r, c, logits, labels, 1.0, logits),
                     FFNC_ERR_LABEL_OUT_OF_RANGE);
        CHECK(memcmp(logits, saved, rows * classes * elem_size(dt)) == 0);
        free(logits), free(saved), free(probs);
    }
    /* No class at all: every label is out of range, and the (NULL) logits are never read. */
    int64_t zero = 0;
    double loss = 0;
    CHECK_STATUS(ffnc_softmax_xent_forward(dt, 1, 0, NULL, &zero, 1.0, NULL, &loss),
                 FFNC_ERR_LABEL_OUT_OF_RANGE);
    CHECK_STATUS(ffnc_softmax_xent_backward(dt, 1, 0, NULL, &zero, 1.0, NULL),
                 FFNC_ERR_LABEL_OUT_OF_RANGE);
}

/* ---- log-softmax -------------------------------------------------------------------------- */

static void test_log_softmax(ffnc_dtype dt, size_t rows, size_t cols, double magnitude) {
    size_t total = rows * cols;
    double *x = alloc_double(total), *g = alloc_double(total), *ref_y = alloc_double(total);
    void *src = random_array(dt, total, -magnitude, magnitude, x);
    void *diff_dst = random_array(dt, total, -1, 1, g);
    void *dst = alloc(dt, total), *diff_src = alloc(dt, total);
    for (size_t r = 0; r < rows; r++) ref_log_softmax_row(cols, x + r * cols, ref_y + r * cols);

    CHECK_OK(ffnc_log_softmax_forward(dt, rows, cols, src, dst));
    int y_ok = 1;
    for (size_t i = 0; i < total; i++)
        y_ok &= check_close_(get(dt, dst, i), ref_y[i], RTOL[dt], ATOL[dt]);
    CHECK(y_ok);

    /* The backward alone: the reference starts from the kernel's own forward output. The
     * result g - p sum(g) cancels, so the absolute tolerance grows with |sum(g)|. */
    CHECK_OK(ffnc_log_softmax_backward(dt, rows, cols, diff_dst, dst, diff_src));
    int dx_ok = 1;
    for (size_t r = 0; r < rows; r++) {
        double g_sum = 0;
        for (size_t c = 0; c < cols; c++) g_sum += g[r * cols + c];
        for (size_t c = 0; c < cols; c++) {
            size_t i = r * cols + c;
            double expected = g[i] - exp(get(dt, dst, i)) * g_sum;
            dx_ok &= check_close_(get(dt, diff_src, i), expected, RTOL[dt],
                                  ATOL[dt] * (1 + fabs(g_sum)));
        }
    }
    CHECK(dx_ok);

    /* In place, both directions. */
    CHECK_OK(ffnc_log_softmax_forward(dt, rows, cols, src, src));
    CHECK(memcmp(src, dst, total * elem_size(dt)) == 0);
    CHECK_OK(ffnc_log_softmax_backward(dt, rows, cols, diff_dst, dst, diff_dst));
    CHECK(memcmp(diff_dst, diff_src, total * elem_size(dt)) == 0);

    free(x), free(g), free(ref_y), free(src), free(diff_dst), free(dst), free(diff_src);
}

/* ---- element-wise losses ------------------------------------------------------------------ */

enum pair_loss { BCE, MSE, L1 };

static ffnc_status pair_forward(enum pair_loss which, ffnc_dtype dt, size_t n, const void *a,
                                const void *b, double scale, double *loss) {
    switch (which) {
    case BCE: return ffnc_bce_logits_forward(dt, n, a, b, scale, loss);
    case MSE: return ffnc_mse_forward(dt, n, a, b, scale, loss);
    default: return ffnc_l1_forward(dt, n, a, b, scale, loss);
    }
}

static ffnc_status pair_backward(enum pair_loss which, ffnc_dtype dt, size_t n, const void *a,
                                 const void *b, double scale, void *diff) {
    switch (which) {
    case BCE: return ffnc_bce_logits_backward(dt, n, a, b, scale, diff);
    case MSE: return ffnc_mse_backward(dt, n, a, b, scale, diff);
    default: return ffnc_l1_backward(dt, n, a, b, scale, diff);
    }
}

static double ref_term(enum pair_loss which, double a, double b) {
    switch (which) {
    case BCE: return (a > 0 ? a : 0) - b * a + log1p(exp(-fabs(a)));
    case MSE: return (a - b) * (a - b);
    default: return fabs(a - b);
    }
}

static double ref_gradient(enum pair_loss which, double a, double b) {
    switch (which) {
    case BCE: return 1 / (1 + exp(-a)) - b;
    case MSE: return 2 * (a - b);
    default: return a > b ? 1 : (a < b ? -1 : 0);
    }
}

static void test_pair_loss(enum pair_loss which, ffnc_dtype dt, size_t n, double magnitude) {
    double *a = alloc_double(n), *b = alloc_double(n);
    void *first = random_array(dt, n, -magnitude, magnitude, a);
    /* BCE targets in [0, 1], some exactly 0 or 1; for L1 some exact ties (sign(0) = 0). */
    void *second = which == BCE ? random_array(dt, n, 0, 1, b)
                                : random_array(dt, n, -magnitude, magnitude, b);
    for (size_t i = 0; i < n; i += 5) {
        double v = which == BCE ? (double)(i % 2) : a[i];
        set(dt, second, i, v);
        b[i] = v;
    }
    double ref_sum = 0, diff_scale = 1.3;
    for (size_t i = 0; i < n; i++) ref_sum += ref_term(which, a[i], b[i]);

    double loss = -1;
    CHECK_OK(pair_forward(which, dt, n, first, second, 1.0 / n, &loss));
    CHECK_CLOSE(loss, ref_sum / n, RTOL[dt], ATOL[dt]);
    CHECK_OK(pair_forward(which, dt, n, first, second, 1.0, &loss));
    CHECK_CLOSE(loss, ref_sum, RTOL[dt], ATOL[dt] * n);

    void *diff = alloc(dt, n);
    CHECK_OK(pair_backward(which, dt, n, first, second, diff_scale, diff));
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= check_close_(get(dt, diff, i), diff_scale * ref_gradient(which, a[i], b[i]), RTOL[dt],
                           ATOL[dt]);
    CHECK(ok);
    if (which == L1) CHECK(get(dt, diff, 0) == 0);

    /* The gradient written over either input gives the same bits. */
    void *copy = alloc(dt, n);
    memcpy(copy, first, n * elem_size(dt));
    CHECK_OK(pair_backward(which, dt, n, copy, second, diff_scale, copy));
    CHECK(memcmp(copy, diff, n * elem_size(dt)) == 0);
    memcpy(copy, second, n * elem_size(dt));
    CHECK_OK(pair_backward(which, dt, n, first, copy, diff_scale, copy));
    CHECK(memcmp(copy, diff, n * elem_size(dt)) == 0);

    /* A NaN input: NaN loss, NaN gradient at that element only. */
    set(dt, first, n / 2, NAN);
    CHECK_OK(pair_forward(which, dt, n, first, second, 1.0, &loss));
    CHECK(isnan(loss));
    CHECK_OK(pair_backward(which, dt, n, first, second, diff_scale, diff));
    int nan_ok = isnan(get(dt, diff, n / 2));
    for (size_t i = 0; i < n; i++)
        if (i != n / 2) nan_ok &= !isnan(get(dt, diff, i));
    CHECK(nan_ok);

    free(a), free(b), free(first), free(second), free(diff), free(copy);
}

/* ---- argument checks ---------------------------------------------------------------------- */

static void test_arguments(void) {
    float x[8] = {0}, y[8] = {0};
    int64_t labels[2] = {0, 1};
    double loss = 7;

    /* NULL where an element or a result needs a pointer. */
    CHECK_STATUS(ffnc_softmax_xent_forward(FFNC_F32, 2, 4, NULL, labels, 1, y, &loss),
                 FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_softmax_xent_forward(FFNC_F32, 2, 4, x, NULL, 1, y, &loss),
                 FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_softmax_xent_forward(FFNC_F32, 2, 4, x, labels, 1, NULL, &loss),
                 FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_softmax_xent_forward(FFNC_F32, 2, 4, x, labels, 1, y, NULL),
                 FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_softmax_xent_backward(FFNC_F32, 2, 4, NULL, labels, 1, y),
                 FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_softmax_xent_backward(FFNC_F32, 2, 4, x, NULL, 1, y), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_softmax_xent_backward(FFNC_F32, 2, 4, x, labels, 1, NULL),
                 FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_log_softmax_forward(FFNC_F32, 2, 4, NULL, y), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_log_softmax_forward(FFNC_F32, 2, 4, x, NULL), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_log_softmax_backward(FFNC_F32, 2, 4, NULL, x, y), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_log_softmax_backward(FFNC_F32, 2, 4, x, NULL, y), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_log_softmax_backward(FFNC_F32, 2, 4, x, x, NULL), FFNC_ERR_NULL_POINTER);
    for (int which = BCE; which <= L1; which++) {
        CHECK_STATUS(pair_forward(which, FFNC_F32, 8, NULL, y, 1, &loss), FFNC_ERR_NULL_POINTER);
        CHECK_STATUS(pair_forward(which, FFNC_F32, 8, x, NULL, 1, &loss), FFNC_ERR_NULL_POINTER);
        CHECK_STATUS(pair_forward(which, FFNC_F32, 8, x, y, 1, NULL), FFNC_ERR_NULL_POINTER);
        CHECK_STATUS(pair_forward(which, FFNC_F32, 0, NULL, NULL, 1, NULL), FFNC_ERR_NULL_POINTER);
        CHECK_STATUS(pair_backward(which, FFNC_F32, 8, NULL, y, 1, y), FFNC_ERR_NULL_POINTER);
        CHECK_STATUS(pair_backward(which, FFNC_F32, 8, x, NULL, 1, y), FFNC_ERR_NULL_POINTER);
        CHECK_STATUS(pair_backward(which, FFNC_F32, 8, x, y, 1, NULL), FFNC_ERR_NULL_POINTER);
        /* Nothing to read: NULL arrays are fine, and the loss of nothing is 0. */
        CHECK_OK(pair_forward(which, FFNC_F64, 0, NULL, NULL, 0.5, &loss));
        CHECK(loss == 0);
        CHECK_OK(pair_backward(which, FFNC_F64, 0, NULL, NULL, 1, NULL));
        /* A non-finite scale, an unknown dtype. */
        CHECK_STATUS(pair_forward(which, FFNC_F32, 8, x, y, NAN, &loss), FFNC_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(pair_backward(which, FFNC_F32, 8, x, y, INFINITY, y),
                     FFNC_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(pair_forward(which, (ffnc_dtype)7, 8, x, y, 1, &loss), FFNC_ERR_INVALID_DTYPE);
        CHECK_STATUS(pair_backward(which, (ffnc_dtype)7, 8, x, y, 1, y), FFNC_ERR_INVALID_DTYPE);
    }

    /* Zero rows: no labels or arrays needed, the loss is 0 whatever the scale. */
    loss = 7;
    CHECK_OK(ffnc_softmax_xent_forward(FFNC_F64, 0, 10, NULL, NULL, 0.0, NULL, &loss));
    CHECK(loss == 0);
    CHECK_OK(ffnc_softmax_xent_backward(FFNC_F64, 0, 10, NULL, NULL, 1.0, NULL));
    CHECK_OK(ffnc_log_softmax_forward(FFNC_F64, 0, 10, NULL, NULL));
    CHECK_OK(ffnc_log_softmax_forward(FFNC_F64, 3, 0, NULL, NULL));
    CHECK_OK(ffnc_log_softmax_backward(FFNC_F64, 3, 0, NULL, NULL, NULL));

    CHECK_STATUS(ffnc_softmax_xent_forward(FFNC_F32, 2, 4, x, labels, INFINITY, y, &loss),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_softmax_xent_backward(FFNC_F32, 2, 4, x, labels, NAN, y),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_softmax_xent_forward((ffnc_dtype)-1, 2, 4, x, labels, 1, y, &loss),
                 FFNC_ERR_INVALID_DTYPE);
    CHECK_STATUS(ffnc_softmax_xent_backward((ffnc_dtype)2, 2, 4, x, labels, 1, y),
                 FFNC_ERR_INVALID_DTYPE);
    CHECK_STATUS(ffnc_log_softmax_forward((ffnc_dtype)2, 2, 4, x, y), FFNC_ERR_INVALID_DTYPE);
    CHECK_STATUS(ffnc_log_softmax_backward((ffnc_dtype)2, 2, 4, x, x, y), FFNC_ERR_INVALID_DTYPE);

    /* rows * classes overflows size_t: refused before any pointer is followed (the buffers are
     * 8 values long, so a kernel that ran would be caught by AddressSanitizer). */
    size_t huge = SIZE_MAX / 4 + 1;
    loss = 7;
    for (int dt = FFNC_F32; dt <= FFNC_F64; dt++) {
        CHECK_STATUS(ffnc_softmax_xent_forward(dt, huge, 4, x, labels, 1, y, &loss),
                     FFNC_ERR_SIZE_OVERFLOW);
        CHECK_STATUS(ffnc_softmax_xent_forward(dt, 4, huge, x, labels, 1, y, &loss),
                     FFNC_ERR_SIZE_OVERFLOW);
        CHECK_STATUS(ffnc_softmax_xent_backward(dt, huge, 4, x, labels, 1, y),
                     FFNC_ERR_SIZE_OVERFLOW);
        CHECK_STATUS(ffnc_softmax_xent_backward(dt, 4, huge, x, labels, 1, y),
                     FFNC_ERR_SIZE_OVERFLOW);
        CHECK_STATUS(ffnc_log_softmax_forward(dt, huge, 4, x, y), FFNC_ERR_SIZE_OVERFLOW);
        CHECK_STATUS(ffnc_log_softmax_backward(dt, 4, huge, x, x, y), FFNC_ERR_SIZE_OVERFLOW);
        CHECK_STATUS(ffnc_softmax_xent_forward(dt, SIZE_MAX, SIZE_MAX, NULL, NULL, 1, NULL, NULL),
                     FFNC_ERR_SIZE_OVERFLOW);
    }
    CHECK(loss == 7);
    for (int i = 0; i < 8; i++) CHECK(x[i] == 0 && y[i] == 0);
}

/* ---- reproducibility ---------------------------------------------------------------------- */

/* Everything a set of calls produces at a size that runs on several threads, so runs on other
 * thread counts or ISA paths can be compared bit for bit. */
typedef struct {
    double losses[4];
    void *probs, *log_probs, *diff_logits, *diff_x, *bce_diff;
} outputs;

enum { REPRO_ROWS = 300, REPRO_CLASSES = 257, REPRO_N = REPRO_ROWS * REPRO_CLASSES };

static void run_all(ffnc_dtype dt, const void *logits, const int64_t *labels, const void *g,
                    const void *targets, outputs *out) {
    CHECK_OK(ffnc_softmax_xent_forward(dt, REPRO_ROWS, REPRO_CLASSES, logits, labels,
                                       1.0 / REPRO_ROWS, out->probs, &out->losses[0]));
    CHECK_OK(ffnc_softmax_xent_backward(dt, REPRO_ROWS, REPRO_CLASSES, out->probs, labels, 0.3,
                                        out->diff_logits));
    CHECK_OK(ffnc_log_softmax_forward(dt, REPRO_ROWS, REPRO_CLASSES, logits, out->log_probs));
    CHECK_OK(ffnc_log_softmax_backward(dt, REPRO_ROWS, REPRO_CLASSES, g, out->log_probs,
                                       out->diff_x));
    CHECK_OK(ffnc_bce_logits_forward(dt, REPRO_N, logits, targets, 1.0 / REPRO_N, &out->losses[1]));
    CHECK_OK(ffnc_bce_logits_backward(dt, REPRO_N, logits, targets, 1.0, out->bce_diff));
    CHECK_OK(ffnc_mse_forward(dt, REPRO_N, logits, targets, 1.0 / REPRO_N, &out->losses[2]));
    CHECK_OK(ffnc_l1_forward(dt, REPRO_N, logits, targets, 1.0 / REPRO_N, &out->losses[3]));
}

static void outputs_alloc(ffnc_dtype dt, outputs *o) {
    o->probs = alloc(dt, REPRO_N), o->log_probs = alloc(dt, REPRO_N);
    o->diff_logits = alloc(dt, REPRO_N), o->diff_x = alloc(dt, REPRO_N);
    o->bce_diff = alloc(dt, REPRO_N);
}

static void outputs_free(outputs *o) {
    free(o->probs), free(o->log_probs), free(o->diff_logits), free(o->diff_x), free(o->bce_diff);
}

static int outputs_equal(ffnc_dtype dt, const outputs *a, const outputs *b) {
    size_t bytes = REPRO_N * elem_size(dt);
    return memcmp(a->losses, b->losses, sizeof a->losses) == 0 &&
           memcmp(a->probs, b->probs, bytes) == 0 &&
           memcmp(a->log_probs, b->log_probs, bytes) == 0 &&
           memcmp(a->diff_logits, b->diff_logits, bytes) == 0 &&
           memcmp(a->diff_x, b->diff_x, bytes) == 0 && memcmp(a->bce_diff, b->bce_diff, bytes) == 0;
}

static void test_reproducible(ffnc_dtype dt) {
    void *logits = random_array(dt, REPRO_N, -8, 8, NULL);
    void *g = random_array(dt, REPRO_N, -1, 1, NULL);
    void *targets = random_array(dt, REPRO_N, 0, 1, NULL);
    int64_t *labels = random_labels(REPRO_ROWS, REPRO_CLASSES);
    int threads = ffnc_get_num_threads();
    ffnc_isa isa = ffnc_get_isa();
    outputs reference, other;
    outputs_alloc(dt, &reference), outputs_alloc(dt, &other);

    CHECK_OK(ffnc_set_isa(FFNC_ISA_GENERIC));
    CHECK_OK(ffnc_set_num_threads(1));
    run_all(dt, logits, labels, g, targets, &reference);
    for (int nt = 1; nt <= 3; nt++) {
        CHECK_OK(ffnc_set_num_threads(nt));
        FOR_EACH_ISA(path) {
            memset(other.losses, 0, sizeof other.losses);
            run_all(dt, logits, labels, g, targets, &other);
            CHECK(outputs_equal(dt, &reference, &other));
        }
    }
    CHECK_OK(ffnc_set_num_threads(threads));
    CHECK_OK(ffnc_set_isa(isa));
    outputs_free(&reference), outputs_free(&other);
    free(logits), free(g), free(targets), free(labels);
}

int main(void) {
    static const size_t shapes[][2] = {{1, 1}, {1, 7}, {37, 10}, {300, 129}, {200, 257}};
    ffnc_isa initial = ffnc_get_isa();
    FOR_EACH_ISA(isa) {
        for (int dt = FFNC_F32; dt <= FFNC_F64; dt++) {
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                size_t rows = shapes[s][0], cols = shapes[s][1];
                test_softmax_xent(dt, rows, cols, 5);
                test_softmax_xent(dt, rows, cols, 1e4);
                test_log_softmax(dt, rows, cols, 5);
                test_log_softmax(dt, rows, cols, 1e4);
                for (int which = BCE; which <= L1; which++) {
                    test_pair_loss(which, dt, rows * cols, 4);
                    test_pair_loss(which, dt, rows * cols, 1e4);
                }
            }
            test_softmax_xent_nan(dt);
            test_labels_out_of_range(dt);
        }
    }
    CHECK_OK(ffnc_set_isa(initial));
    test_arguments();
    test_reproducible(FFNC_F32);
    test_reproducible(FFNC_F64);
    return check_report("test_loss");
}
