/* GEMM and the dense layer against a plain double-precision reference, on every ISA path. */
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ref (m x n, double) = alpha op(A) op(B) + beta C0, and mag = |alpha| |op(A)| |op(B)| +
 * |beta| |C0|, the scale of the rounding error. */
static void reference(int ta, int tb, size_t m, size_t n, size_t k, double alpha, const double *a,
                      const double *b, double beta, const double *c0, double *ref, double *mag) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double sum = 0, abs_sum = 0;
            for (size_t p = 0; p < k; p++) {
                double x = ta ? a[p * m + i] : a[i * k + p];
                double y = tb ? b[j * k + p] : b[p * n + j];
                sum += x * y;
                abs_sum += fabs(x * y);
            }
            ref[i * n + j] = alpha * sum + (beta != 0 ? beta * c0[i * n + j] : 0);
            mag[i * n + j] = fabs(alpha) * abs_sum + (beta != 0 ? fabs(beta * c0[i * n + j]) : 0);
        }
}

static void fill(unsigned long long *state, double *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = check_uniform(state, -1, 1);
}

/* One product in both dtypes against the reference; C starts as NaN when beta == 0. */
static void check_product(int ta, int tb, size_t m, size_t n, size_t k, double alpha, double beta) {
    unsigned long long state = 42 + m * 31 + n * 7 + k;
    double *a = malloc(sizeof(double) * (m * k + 1)), *b = malloc(sizeof(double) * (k * n + 1));
    double *c0 = malloc(sizeof(double) * (m * n + 1)), *ref = malloc(sizeof(double) * (m * n + 1));
    double *mag = malloc(sizeof(double) * (m * n + 1)), *c = malloc(sizeof(double) * (m * n + 1));
    float *af = malloc(sizeof(float) * (m * k + 1)), *bf = malloc(sizeof(float) * (k * n + 1));
    float *cf = malloc(sizeof(float) * (m * n + 1)), *c0f = malloc(sizeof(float) * (m * n + 1));
    fill(&state, a, m * k);
    fill(&state, b, k * n);
    fill(&state, c0, m * n);
    /* the float run uses the float-rounded operands, so one reference serves both */
    for (size_t i = 0; i < m * k; i++) a[i] = af[i] = (float)a[i];
    for (size_t i = 0; i < k * n; i++) b[i] = bf[i] = (float)b[i];
    for (size_t i = 0; i < m * n; i++) c0[i] = c0f[i] = (float)c0[i];
    reference(ta, tb, m, n, k, alpha, a, b, beta, c0, ref, mag);

    for (size_t i = 0; i < m * n; i++) c[i] = cf[i] = beta != 0 ? c0f[i] : NAN;
    CHECK_OK(ffnc_gemm(FFNC_F64, ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n));
    CHECK_OK(ffnc_gemm(FFNC_F32, ta, tb, m, n, k, alpha, af, ta ? m : k, bf, tb ? k : n, beta, cf, n));
    int bad64 = 0, bad32 = 0;
    for (size_t i = 0; i < m * n; i++) {
        double slack = 2.0 * (double)(k + 2) * mag[i];
        if (!(fabs(c[i] - ref[i]) <= slack * 1.1102230246251565e-16 + 1e-300)) bad64++;
        if (!(fabs(cf[i] - ref[i]) <= slack * 5.9604644775390625e-08 + 1e-30)) bad32++;
    }
    CHECK(bad64 == 0);
    CHECK(bad32 == 0);
    if (bad64 || bad32)
        fprintf(stderr, "  isa %s, %s%s m=%zu n=%zu k=%zu alpha=%g beta=%g: %d f64, %d f32 wrong\n",
                ffnc_isa_name(ffnc_get_isa()), ta ? "T" : "N", tb ? "T" : "N", m, n, k, alpha,
                beta, bad64, bad32);
    free(a), free(b), free(c0), free(ref), free(mag), free(c), free(af), free(bf), free(cf),
        free(c0f);
}

static void test_products(void) {
    /* small path, packed path, edge tiles, K = 1, M = 1, N = 1, around KC = 256 */
    static const size_t shapes[][3] = {{1, 1, 1},   {3, 5, 2},    {37, 53, 71}, {7, 9, 1},
                                       {1, 70, 90}, {70, 1, 90},  {20, 33, 257}, {15, 17, 256},
                                       {29, 40, 513}, {150, 35, 30}};
    FOR_EACH_ISA(isa) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++)
                check_product(t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], 1.0, 0.0);
        check_product(0, 1, 37, 53, 71, -2.0, 0.5);
        check_product(1, 0, 4, 5, 6, 0.5, 1.0);
    }
}

/* Leading dimensions larger than the rows (a view into a wider matrix), with NaN in the gaps:
 * the packing must read exactly the addressed elements. Shapes put the in-register transposes
 * of a transposed B (8 x 8 f32, 4 x 4 f64) at their edges: k not a multiple of 8, a last
 * panel of whole and leftover columns, several chunks of packed panels and NC blocks. */
static void check_strided(int ta, int tb, size_t m, size_t n, size_t k) {
    unsigned long long state = 99 + m + 3 * n + 5 * k;
    size_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    size_t lda = a_cols + 5, ldb = b_cols + 3, ldc = n + 7;
    double *a = malloc(sizeof(double) * a_rows * a_cols), *b = malloc(sizeof(double) * b_rows * b_cols);
    double *ref = malloc(sizeof(double) * m * n), *mag = malloc(sizeof(double) * m * n);
    double *as = malloc(sizeof(double) * a_rows * lda), *bs = malloc(sizeof(double) * b_rows * ldb);
    float *af = malloc(sizeof(float) * a_rows * lda), *bf = malloc(sizeof(float) * b_rows * ldb);
    double *c = malloc(sizeof(double) * m * ldc);
    float *cf = malloc(sizeof(float) * m * ldc);
    for (size_t i = 0; i < a_rows * lda; i++) as[i] = af[i] = NAN;
    for (size_t i = 0; i < b_rows * ldb; i++) bs[i] = bf[i] = NAN;
    for (size_t i = 0; i < a_rows; i++)
        for (size_t j = 0; j < a_cols; j++)
            a[i * a_cols + j] = as[i * lda + j] = af[i * lda + j] = (float)check_uniform(&state, -1, 1);
    for (size_t i = 0; i < b_rows; i++)
        for (size_t j = 0; j < b_cols; j++)
            b[i * b_cols + j] = bs[i * ldb + j] = bf[i * ldb + j] = (float)check_uniform(&state, -1, 1);
    reference(ta, tb, m, n, k, 1.0, a, b, 0.0, NULL, ref, mag);
    for (size_t i = 0; i < m * ldc; i++) c[i] = cf[i] = -7;
    CHECK_OK(ffnc_gemm(FFNC_F64, ta, tb, m, n, k, 1.0, as, lda, bs, ldb, 0.0, c, ldc));
    CHECK_OK(ffnc_gemm(FFNC_F32, ta, tb, m, n, k, 1.0, af, lda, bf, ldb, 0.0, cf, ldc));
    int bad64 = 0, bad32 = 0, gaps = 0;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            double slack = 2.0 * (double)(k + 2) * mag[i * n + j];
            if (!(fabs(c[i * ldc + j] - ref[i * n + j]) <= slack * 1.1102230246251565e-16 + 1e-300))
                bad64++;
            if (!(fabs(cf[i * ldc + j] - ref[i * n + j]) <= slack * 5.9604644775390625e-08 + 1e-30))
                bad32++;
        }
        for (size_t j = n; j < ldc; j++) gaps += c[i * ldc + j] != -7 || cf[i * ldc + j] != -7;
    }
    CHECK(bad64 == 0);
    CHECK(bad32 == 0);
    CHECK(gaps == 0); /* nothing written between the rows of C */
    if (bad64 || bad32 || gaps)
        fprintf(stderr, "  isa %s, strided %s%s m=%zu n=%zu k=%zu: %d f64, %d f32 wrong, %d gaps\n",
                ffnc_isa_name(ffnc_get_isa()), ta ? "T" : "N", tb ? "T" : "N", m, n, k, bad64,
                bad32, gaps);
    free(a), free(b), free(ref), free(mag), free(as), free(bs), free(af), free(bf), free(c), free(cf);
}

static void test_strided(void) {
    /* the last five are tiny (m n k <= 512): rows read in place, padded copies of op(B), and
     * the transposed product of few columns */
    static const size_t shapes[][3] = {{13, 75, 37}, {40, 133, 21}, {7, 1100, 12}, {64, 24, 9},
                                       {4, 16, 2},   {4, 2, 16},    {16, 2, 4},    {3, 5, 7},
                                       {7, 3, 9}};
    FOR_EACH_ISA(isa) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++)
                check_strided(t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2]);
    }
}

static void test_threads_bitwise(void) {
    size_t m = 130, n = 300, k = 270;
    unsigned long long state = 7;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *bias = malloc(sizeof(float) * n);
    float *c1 = malloc(sizeof(float) * m * n), *c2 = malloc(sizeof(float) * m * n);
    for (size_t i = 0; i < m * k; i++) a[i] = (float)check_uniform(&state, -1, 1);
    for (size_t i = 0; i < k * n; i++) b[i] = (float)check_uniform(&state, -1, 1);
    for (size_t i = 0; i < n; i++) bias[i] = (float)check_uniform(&state, -1, 1);
    int saved_threads = ffnc_get_num_threads();
    FOR_EACH_ISA(isa) {
        for (int t = 0; t < 3; t++) {
            int ta = t == 2, tb = t == 1;
            ffnc_set_num_threads(1);
            CHECK_OK(ffnc_gemm(FFNC_F32, ta, tb, m, n, k, 1.0, a, ta ? m : k, b, tb ? k : n, 0.0, c1, n));
            ffnc_set_num_threads(2);
            CHECK_OK(ffnc_gemm(FFNC_F32, ta, tb, m, n, k, 1.0, a, ta ? m : k, b, tb ? k : n, 0.0, c2, n));
            CHECK(memcmp(c1, c2, sizeof(float) * m * n) == 0);
        }
        ffnc_set_num_threads(1);
        CHECK_OK(ffnc_dense_forward(FFNC_F32, m, n, k, a, b, 0, bias, FFNC_ACT_GELU, 0, NULL, c1));
        ffnc_set_num_threads(2);
        CHECK_OK(ffnc_dense_forward(FFNC_F32, m, n, k, a, b, 0, bias, FFNC_ACT_GELU, 0, NULL, c2));
        CHECK(memcmp(c1, c2, sizeof(float) * m * n) == 0);
    }
    ffnc_set_num_threads(saved_threads);
    free(a), free(b), free(bias), free(c1), free(c2);
}

/* dense == gemm, then bias_forward, then activation_forward, bit for bit; pre_act too. */
static void test_dense_fusion(void) {
    size_t m = 23, n = 41, k = 300;
    unsigned long long state = 9;
    double *x = malloc(sizeof(double) * m * k), *w = malloc(sizeof(double) * k * n);
    double *bias = malloc(sizeof(double) * n), *y = malloc(sizeof(double) * m * n);
    double *pre = malloc(sizeof(double) * m * n), *expect = malloc(sizeof(double) * m * n);
    for (size_t i = 0; i < m * k; i++) x[i] = check_uniform(&state, -1, 1);
    for (size_t i = 0; i < k * n; i++) w[i] = check_uniform(&state, -0.1, 0.1);
    for (size_t i = 0; i < n; i++) bias[i] = check_uniform(&state, -1, 1);
    x[5] = NAN;
    FOR_EACH_ISA(isa) {
        for (int act = 0; act < FFNC_ACT_COUNT; act++) {
            double alpha = act == FFNC_ACT_LEAKY_RELU || act == FFNC_ACT_ELU ? 0.3 : 0;
            CHECK_OK(ffnc_dense_forward(FFNC_F64, m, n, k, x, w, 0, bias, (ffnc_activation)act,
                                        alpha, pre, y));
            CHECK_OK(ffnc_gemm(FFNC_F64, 0, 0, m, n, k, 1.0, x, k, w, n, 0.0, expect, n));
            CHECK_OK(ffnc_bias_forward(FFNC_F64, m, n, expect, bias, expect));
            int pre_same = 1;
            for (size_t i = 0; i < m * n; i++)
                pre_same &= memcmp(&pre[i], &expect[i], sizeof(double)) == 0;
            CHECK(pre_same);
            CHECK_OK(ffnc_activation_forward(FFNC_F64, (ffnc_activation)act, alpha, m * n, expect,
                                             expect));
            int same = 1;
            for (size_t i = 0; i < m * n; i++) same &= memcmp(&y[i], &expect[i], sizeof(double)) == 0;
            CHECK(same);
            CHECK(isnan(y[0]) && isnan(y[n - 1]) && !isnan(y[n]));
        }
    }
    free(x), free(w), free(bias), free(y), free(pre), free(expect);
}

static void test_dense_backward(void) {
    size_t m = 19, n = 13, k = 11;
    unsigned long long state = 11;
    float x[19 * 11], w[11 * 13], g[19 * 13], y[19 * 13], pre[19 * 13];
    float dpre[19 * 13], dx[19 * 11], dw[11 * 13], db[13];
    float e_dpre[19 * 13], e_dx[19 * 11], e_dw[11 * 13], e_db[13];
    for (size_t i = 0; i < m * k; i++) x[i] = (float)check_uniform(&state, -1, 1);
    for (size_t i = 0; i < k * n; i++) w[i] = (float)check_uniform(&state, -1, 1);
    for (size_t i = 0; i < m * n; i++) g[i] = (float)check_uniform(&state, -1, 1);
    FOR_EACH_ISA(isa) {
        for (int act = 0; act < FFNC_ACT_COUNT; act++) {
            ffnc_activation a = (ffnc_activation)act;
            CHECK_OK(ffnc_dense_forward(FFNC_F32, m, n, k, x, w, 0, NULL, a, 0.2, pre, y));
            const float *saved = ffnc_activation_backward_uses_dst(a) ? y : pre;
            CHECK_OK(ffnc_dense_backward(FFNC_F32, m, n, k, x, w, 0, a, 0.2, saved, g, dpre, dx, dw,
                                         db, 0, 0));
            CHECK_OK(ffnc_activation_backward(FFNC_F32, a, 0.2, m * n, g, saved, e_dpre));
            CHECK_OK(ffnc_bias_backward(FFNC_F32, m, n, e_dpre, e_db, 0));
            CHECK_OK(ffnc_gemm(FFNC_F32, 1, 0, k, n, m, 1.0, x, k, e_dpre, n, 0.0, e_dw, n));
            CHECK_OK(ffnc_gemm(FFNC_F32, 0, 1, m, k, n, 1.0, e_dpre, n, w, n, 0.0, e_dx, k));
            CHECK(memcmp(dpre, e_dpre, sizeof dpre) == 0);
            CHECK(memcmp(db, e_db, sizeof db) == 0);
            CHECK(memcmp(dw, e_dw, sizeof dw) == 0);
            CHECK(memcmp(dx, e_dx, sizeof dx) == 0);
        }
        /* accumulation adds to the parameter gradients and to diff_src */
        CHECK_OK(ffnc_dense_backward(FFNC_F32, m, n, k, x, w, 0, FFNC_ACT_IDENTITY, 0, y, g, NULL,
                                     dx, dw, db, 0, 0));
        memcpy(e_dw, dw, sizeof dw);
        memcpy(e_db, db, sizeof db);
        memcpy(e_dx, dx, sizeof dx);
        CHECK_OK(ffnc_dense_backward(FFNC_F32, m, n, k, x, w, 0, FFNC_ACT_IDENTITY, 0, y, g, NULL,
                                     dx, dw, db, 1, 1));
        CHECK_CLOSE(dw[7], 2 * e_dw[7], 1e-6, 1e-7);
        CHECK_CLOSE(db[3], 2 * e_db[3], 1e-6, 1e-7);
        CHECK_CLOSE(dx[5], 2 * e_dx[5], 1e-6, 1e-7);
    }
}

static void test_errors(void) {
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, c[4];
    CHECK_STATUS(ffnc_gemm((ffnc_dtype)7, 0, 0, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2), FFNC_ERR_INVALID_DTYPE);
    CHECK_STATUS(ffnc_gemm(FFNC_F32, 0, 0, 2, 2, 3, 1, NULL, 3, b, 2, 0, c, 2), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_gemm(FFNC_F32, 0, 0, 2, 2, 3, 1, a, 3, b, 2, 0, NULL, 2), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_gemm(FFNC_F32, 0, 0, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_gemm(FFNC_F32, 0, 0, 2, 2, 3, 1, a, 3, b, 2, 0, c, 1), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_gemm(FFNC_F32, 0, 0, SIZE_MAX / 2, 2, 3, 1, a, 3, b, 2, 0, c, 2),
                 FFNC_ERR_SIZE_OVERFLOW);
    /* empty products touch nothing; k == 0 scales C by beta without reading A or B */
    CHECK_OK(ffnc_gemm(FFNC_F32, 0, 0, 0, 2, 3, 1, NULL, 3, NULL, 2, 0, NULL, 2));
    c[0] = c[1] = c[2] = c[3] = 2;
    CHECK_OK(ffnc_gemm(FFNC_F32, 0, 0, 2, 2, 0, 1, NULL, 0, NULL, 2, 0.5, c, 2));
    CHECK(c[0] == 1 && c[3] == 1);
    CHECK_OK(ffnc_gemm(FFNC_F32, 0, 0, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2));
    CHECK(c[0] == 4 && c[1] == 5 && c[2] == 10 && c[3] == 11);
    CHECK_STATUS(ffnc_dense_forward(FFNC_F32, 2, 2, 3, a, b, 0, NULL, FFNC_ACT_COUNT, 0, NULL, c),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_dense_forward(FFNC_F32, 2, 2, 3, a, b, 0, NULL, FFNC_ACT_ELU, -1, NULL, c),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_dense_forward(FFNC_F32, 2, 2, 3, a, b, 0, NULL, FFNC_ACT_RELU, 0, NULL, NULL),
                 FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_dense_backward(FFNC_F32, 2, 2, 3, a, b, 0, FFNC_ACT_TANH, 0, NULL, c, c, NULL,
                                     NULL, NULL, 0, 0),
                 FFNC_ERR_NULL_POINTER);
}

int main(void) {
    test_products();
    test_strided();
    test_threads_bitwise();
    test_dense_fusion();
    test_dense_backward();
    test_errors();
    return check_report("gemm");
}
