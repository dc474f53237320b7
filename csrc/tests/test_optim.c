/* Optimizer updates against a naive double reference, on every ISA path and dtype, over several
 * consecutive steps (the state carried by the kernel); argument checks; NaN propagation. The
 * global norm and gradient clipping (accuracy, bitwise reproducibility, overflow, NaN), and the
 * optimizer instructions of plans: RMSprop and clipping instructions, the learning rate set
 * between runs and scaled per step in an epoch. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Tolerances against the double reference: the float kernels round every operation to float. */
static double rtol_of(ffnc_dtype dt) { return dt == FFNC_F32 ? 2e-5 : 1e-12; }
static double atol_of(ffnc_dtype dt) { return dt == FFNC_F32 ? 1e-6 : 1e-14; }
static size_t size_of(ffnc_dtype dt) { return dt == FFNC_F32 ? sizeof(float) : sizeof(double); }

static double load(ffnc_dtype dt, const void *a, size_t i) {
    return dt == FFNC_F32 ? (double)((const float *)a)[i] : ((const double *)a)[i];
}

static void store(ffnc_dtype dt, void *a, size_t i, double x) {
    if (dt == FFNC_F32) ((float *)a)[i] = (float)x;
    else ((double *)a)[i] = x;
}

/* A buffer of n values of dt, filled from [lo, hi), and its copy in double. */
typedef struct buffer {
    void *data;
    double *ref;
} buffer;

static buffer make_buffer(ffnc_dtype dt, size_t n, unsigned long long *seed, double lo, double hi) {
    buffer b = {malloc(n * size_of(dt) + 1), malloc(n * sizeof(double) + 1)};
    for (size_t i = 0; i < n; i++) {
        store(dt, b.data, i, check_uniform(seed, lo, hi));
        b.ref[i] = load(dt, b.data, i);
    }
    return b;
}

static void free_buffer(buffer *b) {
    free(b->data);
    free(b->ref);
}

/* The reference state before a step is the kernel's state after the previous one, so errors do
 * not compound and the tolerance stays that of one step. */
static void sync_reference(ffnc_dtype dt, size_t n, buffer *b) {
    for (size_t i = 0; i < n; i++) b->ref[i] = load(dt, b->data, i);
}

/* Counts the elements off the reference as one failed check (printing the first). */
static void check_buffer(ffnc_dtype dt, size_t n, const buffer *b, const char *what, int isa) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (!check_close_(load(dt, b->data, i), b->ref[i], rtol_of(dt), atol_of(dt))) {
            if (bad++ == 0) first = i;
        }
    }
    check_total++;
    if (bad) {
        check_failed++;
        fprintf(stderr, "%s (%s, isa %d, n %zu): %zu values off; [%zu] = %.17g, expected %.17g\n",
                what, dt == FFNC_F32 ? "f32" : "f64", isa, n, bad, first,
                load(dt, b->data, first), b->ref[first]);
    }
}

/* ---- references: the update formulas of ffnc.h, in double ------------------------------- */

static void sgd_reference(size_t n, double *p, const double *g, double lr, double wd) {
    for (size_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
}

static void momentum_reference(size_t n, double *p, const double *g, double *v, double lr,
                               double mu, double wd, int nesterov) {
    for (size_t i = 0; i < n; i++) {
        double d = g[i] + wd * p[i];
        v[i] = mu * v[i] + d;
        p[i] -= lr * (nesterov ? d + mu * v[i] : v[i]);
    }
}

static void adam_reference(size_t n, double *p, const double *g, double *m, double *v, int64_t step,
                           double lr, double b1, double b2, double eps, double wd, int decoupled) {
    double bc1 = 1 - pow(b1, (double)step), bc2 = 1 - pow(b2, (double)step);
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        if (decoupled) p[i] -= lr * wd * p[i];
        else gi += wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + eps);
    }
}

static void rmsprop_reference(size_t n, double *p, const double *g, double *sq, double *buf,
                              double *avg, double lr, double alpha, double eps, double wd,
                              double mu, int centered) {
    for (size_t i = 0; i < n; i++) {
        double gi = g[i] + wd * p[i];
        sq[i] = alpha * sq[i] + (1 - alpha) * gi * gi;
        double den;
        if (centered) {
            avg[i] = alpha * avg[i] + (1 - alpha) * gi;
            double var = sq[i] - avg[i] * avg[i];
            den = sqrt(var > 0 ? var : 0) + eps;
        } else {
            den = sqrt(sq[i]) + eps;
        }
        if (mu > 0) {
            buf[i] = mu * buf[i] + gi / den;
            p[i] -= lr * buf[i];
        } else {
            p[i] -= lr * gi / den;
        }
    }
}

/* ---- updates against the references ------------------------------------------------------ */

static const size_t sizes[] = {0, 1, 7, 1000, 70001}; /* the last is above the threading grain */
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define STEPS 4

static void test_sgd(int isa, ffnc_dtype dt, size_t n, double wd) {
    unsigned long long seed = 0x5eed0001ULL + n;
    buffer p = make_buffer(dt, n, &seed, -1, 1), g = make_buffer(dt, n, &seed, -1, 1);
    for (int step = 1; step <= STEPS; step++) {
        sync_reference(dt, n, &p);
        sgd_reference(n, p.ref, g.ref, 0.1, wd);
        CHECK_OK(ffnc_sgd_update(dt, n, p.data, g.data, 0.1, wd));
        check_buffer(dt, n, &p, wd ? "sgd param (weight decay)" : "sgd param", isa);
    }
    check_buffer(dt, n, &g, "sgd grad (must be unchanged)", isa);
    free_buffer(&p);
    free_buffer(&g);
}

static void test_momentum(int isa, ffnc_dtype dt, size_t n, double wd, int nesterov) {
    unsigned long long seed = 0x5eed0002ULL + n;
    buffer p = make_buffer(dt, n, &seed, -1, 1), g = make_buffer(dt, n, &seed, -1, 1);
    buffer v = make_buffer(dt, n, &seed, 0, 0);
    for (int step = 1; step <= STEPS; step++) {
        sync_reference(dt, n, &p);
        sync_reference(dt, n, &v);
        momentum_reference(n, p.ref, g.ref, v.ref, 0.05, 0.9, wd, nesterov);
        CHECK_OK(ffnc_momentum_update(dt, n, p.data, g.data, v.data, 0.05, 0.9, wd, nesterov));
        check_buffer(dt, n, &p, nesterov ? "nesterov param" : "momentum param", isa);
        check_buffer(dt, n, &v, nesterov ? "nesterov velocity" : "momentum velocity", isa);
    }
    check_buffer(dt, n, &g, "momentum grad (must be unchanged)", isa);
    free_buffer(&p);
    free_buffer(&g);
    free_buffer(&v);
}

static void test_adam(int isa, ffnc_dtype dt, size_t n, double wd, int decoupled) {
    unsigned long long seed = 0x5eed0003ULL + n;
    buffer p = make_buffer(dt, n, &seed, -1, 1), g = make_buffer(dt, n, &seed, -1, 1);
    buffer m = make_buffer(dt, n, &seed, 0, 0), v = make_buffer(dt, n, &seed, 0, 0);
    const char *name = wd == 0 ? "adam" : (decoupled ? "adamw" : "adam (l2)");
    for (int64_t step = 1; step <= STEPS; step++) {
        sync_reference(dt, n, &p);
        sync_reference(dt, n, &m);
        sync_reference(dt, n, &v);
        adam_reference(n, p.ref, g.ref, m.ref, v.ref, step, 1e-2, 0.9, 0.999, 1e-8, wd,
                       decoupled);
        CHECK_OK(ffnc_adam_update(dt, n, p.data, g.data, m.data, v.data, step, 1e-2, 0.9, 0.999,
                                  1e-8, wd, decoupled));
        check_buffer(dt, n, &p, name, isa);
        check_buffer(dt, n, &m, name, isa);
        check_buffer(dt, n, &v, name, isa);
    }
    check_buffer(dt, n, &g, "adam grad (must be unchanged)", isa);
    free_buffer(&p);
    free_buffer(&g);
    free_buffer(&m);
    free_buffer(&v);
}

static void test_rmsprop(int isa, ffnc_dtype dt, size_t n, double wd, double mu, int centered) {
    unsigned long long seed = 0x5eed0004ULL + n;
    buffer p = make_buffer(dt, n, &seed, -1, 1), g = make_buffer(dt, n, &seed, -1, 1);
    buffer sq = make_buffer(dt, n, &seed, 0, 0), buf = make_buffer(dt, n, &seed, 0, 0);
    buffer avg = make_buffer(dt, n, &seed, 0, 0);
    const char *name = centered ? (mu > 0 ? "rmsprop centered+momentum" : "rmsprop centered")
                                : (mu > 0 ? "rmsprop momentum" : "rmsprop");
    for (int step = 1; step <= STEPS; step++) {
        sync_reference(dt, n, &p);
        sync_reference(dt, n, &sq);
        sync_reference(dt, n, &buf);
        sync_reference(dt, n, &avg);
        rmsprop_reference(n, p.ref, g.ref, sq.ref, buf.ref, avg.ref, 1e-2, 0.9, 1e-8, wd, mu,
                          centered);
        /* the buffers a variant does not use may be NULL */
        CHECK_OK(ffnc_rmsprop_update(dt, n, p.data, g.data, sq.data, mu > 0 ? buf.data : NULL,
                                     centered ? avg.data : NULL, 1e-2, 0.9, 1e-8, wd, mu,
                                     centered));
        check_buffer(dt, n, &p, name, isa);
        check_buffer(dt, n, &sq, name, isa);
        check_buffer(dt, n, &buf, name, isa);
        check_buffer(dt, n, &avg, name, isa);
    }
    check_buffer(dt, n, &g, "rmsprop grad (must be unchanged)", isa);
    free_buffer(&p);
    free_buffer(&g);
    free_buffer(&sq);
    free_buffer(&buf);
    free_buffer(&avg);
}

static void test_against_reference(void) {
    static const ffnc_dtype dtypes[] = {FFNC_F32, FFNC_F64};
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < 2; d++) {
            for (size_t s = 0; s < NSIZES; s++) {
                size_t n = sizes[s];
                test_sgd(isa, dtypes[d], n, 0);
                test_sgd(isa, dtypes[d], n, 0.01);
                for (int nesterov = 0; nesterov <= 1; nesterov++) {
                    test_momentum(isa, dtypes[d], n, 0, nesterov);
                    test_momentum(isa, dtypes[d], n, 0.01, nesterov);
                }
                test_adam(isa, dtypes[d], n, 0, 0);
                test_adam(isa, dtypes[d], n, 0.01, 0);
                test_adam(isa, dtypes[d], n, 0.1, 1);
                for (int centered = 0; centered <= 1; centered++) {
                    test_rmsprop(isa, dtypes[d], n, 0, 0, centered);
                    test_rmsprop(isa, dtypes[d], n, 0.01, 0.9, centered);
                }
            }
        }
    }
}

/* Large bias corrections (step 1, beta2 close to 1) and a step far along (corrections ~ 1). */
static void test_adam_bias_correction(void) {
    for (int64_t step = 1; step <= 1000000; step *= 1000) {
        double p = 0.5, g = 0.25, m = 0, v = 0;
        double pr = p, mr = m, vr = v;
        CHECK_OK(ffnc_adam_update(FFNC_F64, 1, &p, &g, &m, &v, step, 1e-3, 0.9, 0.99999, 1e-8, 0,
                                  0));
        adam_reference(1, &pr, &g, &mr, &vr, step, 1e-3, 0.9, 0.99999, 1e-8, 0, 0);
        CHECK_CLOSE(p, pr, 1e-12, 0);
    }
    /* beta = 0: no averaging, corrections of exactly 1: the step is lr * g / (|g| + eps). */
    double p = 1, g = -2, m = 5, v = 7;
    CHECK_OK(ffnc_adam_update(FFNC_F64, 1, &p, &g, &m, &v, 3, 0.5, 0, 0, 1e-8, 0, 0));
    CHECK(m == -2 && v == 4);
    CHECK_CLOSE(p, 1 + 0.5 * 2 / (2 + 1e-8), 1e-15, 0);
}

/* Classic and Nesterov momentum from zero velocity: the first Nesterov step is (1 + mu) times
 * the classic one. Weight decay of 0 leaves an infinite parameter infinite (no 0 * inf). */
static void test_momentum_variants(void) {
    double p_classic[1] = {1}, p_nesterov[1] = {1}, g[1] = {0.5}, v1[1] = {0}, v2[1] = {0};
    CHECK_OK(ffnc_momentum_update(FFNC_F64, 1, p_classic, g, v1, 0.1, 0.9, 0, 0));
    CHECK_OK(ffnc_momentum_update(FFNC_F64, 1, p_nesterov, g, v2, 0.1, 0.9, 0, 1));
    CHECK_CLOSE(1 - p_nesterov[0], 1.9 * (1 - p_classic[0]), 1e-14, 0);
    CHECK(v1[0] == 0.5 && v2[0] == 0.5);

    double p_inf[2] = {INFINITY, -INFINITY}, g2[2] = {1, 1}, m[2] = {0}, v[2] = {0};
    CHECK_OK(ffnc_sgd_update(FFNC_F64, 2, p_inf, g2, 0.1, 0));
    CHECK(isinf(p_inf[0]) && p_inf[0] > 0 && isinf(p_inf[1]) && p_inf[1] < 0);
    CHECK_OK(ffnc_adam_update(FFNC_F64, 2, p_inf, g2, m, v, 1, 0.1, 0.9, 0.999, 1e-8, 0, 0));
    CHECK(isinf(p_inf[0]) && isinf(p_inf[1]));
}

/* AdamW and Adam+L2 differ: with a zero gradient, the L2 term is normalised by the adaptive
 * denominator (a step of ~lr whatever the decay) while the decoupled decay shrinks p by lr wd. */
static void test_adam_weight_decay_kinds(void) {
    double p_l2 = 2, p_w = 2, g = 0, m1 = 0, v1 = 0, m2 = 0, v2 = 0;
    CHECK_OK(ffnc_adam_update(FFNC_F64, 1, &p_l2, &g, &m1, &v1, 1, 0.01, 0.9, 0.999, 1e-8, 0.1, 0));
    CHECK_OK(ffnc_adam_update(FFNC_F64, 1, &p_w, &g, &m2, &v2, 1, 0.01, 0.9, 0.999, 1e-8, 0.1, 1));
    CHECK_CLOSE(p_l2, 2 - 0.01 * 0.2 / (0.2 + 1e-8), 1e-14, 0);
    CHECK_CLOSE(p_w, 2 - 0.01 * 0.1 * 2, 1e-15, 0);
    CHECK(m2 == 0 && v2 == 0);
}

/* A NaN gradient poisons its own element only, and nothing crashes. */
static void test_nan_gradient(void) {
    FOR_EACH_ISA(isa) {
        float p[9], g[9], vel[9] = {0}, m[9] = {0}, v[9] = {0};
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < 9; i++) {
                p[i] = 1;
                g[i] = i == 4 ? NAN : 0.5f;
            }
            ffnc_status s = k == 0 ? ffnc_sgd_update(FFNC_F32, 9, p, g, 0.1, 0.01)
                          : k == 1 ? ffnc_momentum_update(FFNC_F32, 9, p, g, vel, 0.1, 0.9, 0, 1)
                                   : ffnc_adam_update(FFNC_F32, 9, p, g, m, v, 1, 0.1, 0.9, 0.999,
                                                      1e-8, 0.1, 1);
            CHECK_OK(s);
            for (int i = 0; i < 9; i++) CHECK(i == 4 ? isnan(p[i]) : isfinite(p[i]) && p[i] < 1);
        }
        CHECK(isnan(vel[4]) && isnan(m[4]) && isnan(v[4]) && vel[3] == 0.5f);
    }
}

/* The same update on every ISA path gives the same bits: the operations and their order are the
 * same, and no path contracts a * b + c into an FMA. */
static void test_isa_paths_agree(void) {
    enum { N = 1031 };
    static float first_p[N], first_v[N];
    int have_first = 0;
    FOR_EACH_ISA(isa) {
        static float p[N], g[N], m[N], v[N];
        unsigned long long seed = 99;
        for (int i = 0; i < N; i++) {
            p[i] = (float)check_uniform(&seed, -1, 1);
            g[i] = (float)check_uniform(&seed, -1, 1);
            m[i] = v[i] = 0;
        }
        for (int64_t step = 1; step <= 3; step++)
            CHECK_OK(ffnc_adam_update(FFNC_F32, N, p, g, m, v, step, 1e-3, 0.9, 0.999, 1e-8, 0.01,
                                      1));
        if (!have_first) {
            memcpy(first_p, p, sizeof p);
            memcpy(first_v, v, sizeof v);
            have_first = 1;
        } else {
            CHECK(memcmp(first_p, p, sizeof p) == 0);
            CHECK(memcmp(first_v, v, sizeof v) == 0);
        }
    }
}

/* ---- argument checks --------------------------------------------------------------------- */

static void test_invalid_arguments(void) {
    double p[2] = {1, 2}, g[2] = {0.5, 0.5}, s1[2] = {0}, s2[2] = {0};
    const ffnc_status bad = FFNC_ERR_INVALID_ARGUMENT;

    CHECK_STATUS(ffnc_sgd_update(FFNC_F64, 2, p, g, -0.1, 0), bad);
    CHECK_STATUS(ffnc_sgd_update(FFNC_F64, 2, p, g, NAN, 0), bad);
    CHECK_STATUS(ffnc_sgd_update(FFNC_F64, 2, p, g, INFINITY, 0), bad);
    CHECK_STATUS(ffnc_sgd_update(FFNC_F64, 2, p, g, 0.1, -1e-4), bad);
    CHECK_STATUS(ffnc_sgd_update(FFNC_F64, 2, p, g, 0.1, NAN), bad);
    /* finite as a double, infinite as a float */
    CHECK_STATUS(ffnc_sgd_update(FFNC_F32, 2, p, g, 1e300, 0), bad);
    CHECK_STATUS(ffnc_sgd_update(FFNC_F32, 2, p, g, 0.1, 1e40), bad);

    CHECK_STATUS(ffnc_momentum_update(FFNC_F64, 2, p, g, s1, 0.1, 1, 0, 0), bad);
    CHECK_STATUS(ffnc_momentum_update(FFNC_F64, 2, p, g, s1, 0.1, -0.1, 0, 0), bad);
    CHECK_STATUS(ffnc_momentum_update(FFNC_F64, 2, p, g, s1, 0.1, NAN, 0, 1), bad);
    CHECK_STATUS(ffnc_momentum_update(FFNC_F64, 2, p, g, s1, -1, 0.9, 0, 0), bad);
    CHECK_STATUS(ffnc_momentum_update(FFNC_F64, 2, p, g, s1, 0.1, 0.9, -1, 0), bad);

#define ADAM(dt, step, lr, b1, b2, eps, wd) \
    ffnc_adam_update(dt, 2, p, g, s1, s2, step, lr, b1, b2, eps, wd, 0)
    CHECK_STATUS(ADAM(FFNC_F64, 0, 1e-3, 0.9, 0.999, 1e-8, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, -5, 1e-3, 0.9, 0.999, 1e-8, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, 1, -1e-3, 0.9, 0.999, 1e-8, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, 1, 1e-3, 1, 0.999, 1e-8, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, 1, 1e-3, -0.1, 0.999, 1e-8, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, 1, 1e-3, 0.9, 1, 1e-8, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, 1, 1e-3, 0.9, NAN, 1e-8, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, 1, 1e-3, 0.9, 0.999, 0, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, 1, 1e-3, 0.9, 0.999, -1e-8, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, 1, 1e-3, 0.9, 0.999, INFINITY, 0), bad);
    CHECK_STATUS(ADAM(FFNC_F64, 1, 1e-3, 0.9, 0.999, 1e-8, -0.01), bad);
    /* an eps that rounds to 0 in float would let 0 / (0 + eps) be NaN */
    CHECK_STATUS(ADAM(FFNC_F32, 1, 1e-3, 0.9, 0.999, 1e-50, 0), bad);
#undef ADAM
    double q = 1, h = 0.5, qm = 0, qv = 0; /* but such an eps is fine in double */
    CHECK_OK(ffnc_adam_update(FFNC_F64, 1, &q, &h, &qm, &qv, 1, 1e-3, 0.9, 0.999, 1e-50, 0, 0));
    CHECK_CLOSE(q, 1 - 1e-3, 1e-15, 0);
    /* the refused calls wrote nothing */
    CHECK(s2[0] == 0 && s2[1] == 0);

    /* an unknown dtype */
    CHECK_STATUS(ffnc_sgd_update((ffnc_dtype)7, 2, p, g, 0.1, 0), FFNC_ERR_INVALID_DTYPE);
    CHECK_STATUS(ffnc_momentum_update((ffnc_dtype)-1, 2, p, g, s1, 0.1, 0.9, 0, 0),
                 FFNC_ERR_INVALID_DTYPE);
    CHECK_STATUS(ffnc_adam_update((ffnc_dtype)2, 2, p, g, s1, s2, 1, 1e-3, 0.9, 0.999, 1e-8, 0, 0),
                 FFNC_ERR_INVALID_DTYPE);

    /* NULL pointers: an error when there are elements, fine when there are none */
    const ffnc_status null = FFNC_ERR_NULL_POINTER;
    CHECK_STATUS(ffnc_sgd_update(FFNC_F64, 2, NULL, g, 0.1, 0), null);
    CHECK_STATUS(ffnc_sgd_update(FFNC_F64, 2, p, NULL, 0.1, 0), null);
    CHECK_STATUS(ffnc_momentum_update(FFNC_F64, 2, p, g, NULL, 0.1, 0.9, 0, 0), null);
    CHECK_STATUS(ffnc_momentum_update(FFNC_F64, 2, NULL, g, s1, 0.1, 0.9, 0, 0), null);
    CHECK_STATUS(ffnc_adam_update(FFNC_F64, 2, p, g, NULL, s2, 1, 1e-3, 0.9, 0.999, 1e-8, 0, 0),
                 null);
    CHECK_STATUS(ffnc_adam_update(FFNC_F64, 2, p, g, s1, NULL, 1, 1e-3, 0.9, 0.999, 1e-8, 0, 0),
                 null);
    CHECK_STATUS(ffnc_adam_update(FFNC_F64, 2, p, NULL, s1, s2, 1, 1e-3, 0.9, 0.999, 1e-8, 0, 0),
                 null);
    CHECK_OK(ffnc_sgd_update(FFNC_F32, 0, NULL, NULL, 0.1, 0.01));
    CHECK_OK(ffnc_momentum_update(FFNC_F32, 0, NULL, NULL, NULL, 0.1, 0.9, 0.01, 1));
    CHECK_OK(ffnc_adam_update(FFNC_F64, 0, NULL, NULL, NULL, NULL, 1, 1e-3, 0.9, 0.999, 1e-8,
                              0.01, 1));
    /* n = 0 still checks the hyper-parameters */
    CHECK_STATUS(ffnc_adam_update(FFNC_F64, 0, NULL, NULL, NULL, NULL, 0, 1e-3, 0.9, 0.999, 1e-8,
                                  0, 0),
                 bad);

    /* none of the refused calls touched the parameters */
    CHECK(p[0] == 1 && p[1] == 2);
}

/* ---- RMSprop specifics -------------------------------------------------------------------- */

/* A square average below the squared gradient average (as rounding can leave it) gives a
 * negative variance: clamped at 0, so the denominator is eps and the step finite. A NaN
 * gradient still propagates. Arguments are checked. */
static void test_rmsprop_edges(void) {
    double p = 1, g = 1, sq = 0, avg = 1;
    CHECK_OK(ffnc_rmsprop_update(FFNC_F64, 1, &p, &g, &sq, NULL, &avg, 1e-9, 0.99, 1e-3, 0, 0,
                                 1));
    /* sq = 0.01, avg = 1: variance 0.01 - 1 < 0 -> den = eps */
    CHECK_CLOSE(p, 1 - 1e-9 / 1e-3, 1e-15, 0);
    CHECK_CLOSE(sq, 0.01, 1e-15, 0);

    FOR_EACH_ISA(isa) {
        float pf[5] = {1, 1, 1, 1, 1}, gf[5] = {0.5f, 0.5f, NAN, 0.5f, 0.5f};
        float sqf[5] = {0}, buf[5] = {0}, avgf[5] = {0};
        CHECK_OK(ffnc_rmsprop_update(FFNC_F32, 5, pf, gf, sqf, buf, avgf, 0.01, 0.9, 1e-8, 0.1,
                                     0.9, 1));
        for (int i = 0; i < 5; i++) CHECK(i == 2 ? isnan(pf[i]) : isfinite(pf[i]) && pf[i] < 1);
        CHECK(isnan(sqf[2]) && isnan(buf[2]) && isnan(avgf[2]) && isfinite(sqf[1]));
    }

    double q[2] = {1, 2}, h[2] = {0.5, 0.5}, s1[2] = {0}, s2[2] = {0}, s3[2] = {0};
    const ffnc_status bad = FFNC_ERR_INVALID_ARGUMENT, null = FFNC_ERR_NULL_POINTER;
#define RMS(dt, lr, alpha, eps, wd, mu) \
    ffnc_rmsprop_update(dt, 2, q, h, s1, s2, s3, lr, alpha, eps, wd, mu, 1)
    CHECK_STATUS(RMS(FFNC_F64, -0.1, 0.99, 1e-8, 0, 0), bad);
    CHECK_STATUS(RMS(FFNC_F64, NAN, 0.99, 1e-8, 0, 0), bad);
    CHECK_STATUS(RMS(FFNC_F64, 0.1, 1, 1e-8, 0, 0), bad);
    CHECK_STATUS(RMS(FFNC_F64, 0.1, -0.5, 1e-8, 0, 0), bad);
    CHECK_STATUS(RMS(FFNC_F64, 0.1, NAN, 1e-8, 0, 0), bad);
    CHECK_STATUS(RMS(FFNC_F64, 0.1, 0.99, 0, 0, 0), bad);
    CHECK_STATUS(RMS(FFNC_F64, 0.1, 0.99, INFINITY, 0, 0), bad);
    CHECK_STATUS(RMS(FFNC_F32, 0.1, 0.99, 1e-50, 0, 0), bad);
    CHECK_STATUS(RMS(FFNC_F64, 0.1, 0.99, 1e-8, -1, 0), bad);
    CHECK_STATUS(RMS(FFNC_F64, 0.1, 0.99, 1e-8, 0, 1), bad);
    CHECK_STATUS(RMS(FFNC_F64, 0.1, 0.99, 1e-8, 0, -0.1), bad);
    CHECK_STATUS(RMS((ffnc_dtype)5, 0.1, 0.99, 1e-8, 0, 0), FFNC_ERR_INVALID_DTYPE);
#undef RMS
    CHECK_STATUS(ffnc_rmsprop_update(FFNC_F64, 2, q, h, NULL, NULL, NULL, 0.1, 0.9, 1e-8, 0, 0,
                                     0),
                 null);
    CHECK_STATUS(ffnc_rmsprop_update(FFNC_F64, 2, q, h, s1, NULL, NULL, 0.1, 0.9, 1e-8, 0, 0.5,
                                     0),
                 null);
    CHECK_STATUS(ffnc_rmsprop_update(FFNC_F64, 2, q, h, s1, NULL, NULL, 0.1, 0.9, 1e-8, 0, 0, 1),
                 null);
    CHECK(q[0] == 1 && q[1] == 2 && s1[0] == 0 && s2[0] == 0 && s3[0] == 0);
    CHECK_OK(ffnc_rmsprop_update(FFNC_F64, 0, NULL, NULL, NULL, NULL, NULL, 0.1, 0.9, 1e-8, 0,
                                 0.5, 1));
}

/* ---- global norm and clipping ------------------------------------------------------------- */

/* The norm in long double, element order: the reference. */
static double norm_reference(ffnc_dtype dt, size_t n, const void *x) {
    long double s = 0;
    for (size_t i = 0; i < n; i++) s += (long double)load(dt, x, i) * load(dt, x, i);
    return (double)sqrtl(s);
}

static void test_global_norm(void) {
    static const ffnc_dtype dtypes[] = {FFNC_F32, FFNC_F64};
    for (int d = 0; d < 2; d++) {
        ffnc_dtype dt = dtypes[d];
        for (size_t s = 0; s < NSIZES; s++) {
            size_t n = sizes[s];
            unsigned long long seed = 0x5eed0005ULL + n;
            buffer x = make_buffer(dt, n, &seed, -3, 3);
            double expected = norm_reference(dt, n, x.data), first = -1;
            int first_isa = -1;
            FOR_EACH_ISA(isa) {
                for (int threads = 1; threads <= 2; threads++) {
                    CHECK_OK(ffnc_set_num_threads(threads));
                    double norm = -1;
                    CHECK_OK(ffnc_global_norm(dt, n, x.data, &norm));
                    /* double sums of squares: ~n ulps at worst, far less in practice */
                    CHECK_CLOSE(norm, expected, 1e-13, 0);
                    /* bitwise equal across ISA paths and thread counts */
                    if (first_isa < 0) first = norm, first_isa = isa;
                    CHECK(norm == first);
                }
            }
            free_buffer(&x);
        }
    }
    CHECK_OK(ffnc_set_num_threads(2));

    /* double values whose squares overflow or underflow: the scaled second pass */
    double big[3] = {3e200, -4e200, 0}, tiny[3] = {3e-200, 0, -4e-200}, sub[2] = {3e-310, 4e-310};
    double norm;
    CHECK_OK(ffnc_global_norm(FFNC_F64, 3, big, &norm));
    CHECK_CLOSE(norm, 5e200, 1e-15, 0);
    CHECK_OK(ffnc_global_norm(FFNC_F64, 3, tiny, &norm));
    CHECK_CLOSE(norm, 5e-200, 1e-15, 0);
    CHECK_OK(ffnc_global_norm(FFNC_F64, 2, sub, &norm));
    CHECK_CLOSE(norm, 5e-310, 1e-9, 0); /* subnormal inputs carry few digits */
    double huge[2] = {DBL_MAX, DBL_MAX};
    CHECK_OK(ffnc_global_norm(FFNC_F64, 2, huge, &norm));
    CHECK(isinf(norm)); /* sqrt(2) DBL_MAX is not representable */
    float big_f[2] = {3e38f, 3e38f};
    CHECK_OK(ffnc_global_norm(FFNC_F32, 2, big_f, &norm));
    CHECK_CLOSE(norm, sqrt(2) * (double)3e38f, 1e-15, 0); /* above FLT_MAX: fine in double */

    /* NaN, infinity, zeros, empty */
    double with_nan[3] = {1, NAN, INFINITY}, with_inf[3] = {1, -INFINITY, 2}, zeros[4] = {0};
    CHECK_OK(ffnc_global_norm(FFNC_F64, 3, with_nan, &norm));
    CHECK(isnan(norm));
    CHECK_OK(ffnc_global_norm(FFNC_F64, 3, with_inf, &norm));
    CHECK(isinf(norm) && norm > 0);
    CHECK_OK(ffnc_global_norm(FFNC_F64, 4, zeros, &norm));
    CHECK(norm == 0);
    CHECK_OK(ffnc_global_norm(FFNC_F32, 0, NULL, &norm));
    CHECK(norm == 0);
    CHECK_STATUS(ffnc_global_norm(FFNC_F64, 3, big, NULL), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_global_norm(FFNC_F64, 3, NULL, &norm), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_global_norm((ffnc_dtype)3, 3, big, &norm), FFNC_ERR_INVALID_DTYPE);
}

static void test_clip(void) {
    FOR_EACH_ISA(isa) {
        double g[2] = {3, 4}, norm = 0;
        CHECK_OK(ffnc_clip_by_global_norm(FFNC_F64, 2, g, 1, &norm));
        CHECK(norm == 5);
        CHECK_CLOSE(g[0], 0.6, 1e-15, 0);
        CHECK_CLOSE(g[1], 0.8, 1e-15, 0);
        /* under the limit (or at it): unchanged, bitwise */
        float h[3] = {0.1f, -0.2f, 0.3f};
        CHECK_OK(ffnc_clip_by_global_norm(FFNC_F32, 3, h, 1, &norm));
        CHECK(h[0] == 0.1f && h[1] == -0.2f && h[2] == 0.3f);
        CHECK_CLOSE(norm, sqrt(0.14), 1e-7, 0);
        double at[2] = {3, 4};
        CHECK_OK(ffnc_clip_by_global_norm(FFNC_F64, 2, at, 5, NULL));
        CHECK(at[0] == 3 && at[1] == 4);
        /* NaN and infinite norms leave the gradients for the NaN guard */
        double bad_g[3] = {1, NAN, 2}, inf_g[2] = {INFINITY, 1};
        CHECK_OK(ffnc_clip_by_global_norm(FFNC_F64, 3, bad_g, 1, &norm));
        CHECK(isnan(norm) && bad_g[0] == 1 && bad_g[2] == 2);
        CHECK_OK(ffnc_clip_by_global_norm(FFNC_F64, 2, inf_g, 1, &norm));
        CHECK(isinf(norm) && isinf(inf_g[0]) && inf_g[1] == 1);
    }
    /* many values on two threads: the clipped vector has the limit as its norm */
    enum { N = 70001 };
    static float big[N];
    unsigned long long seed = 7;
    for (int i = 0; i < N; i++) big[i] = (float)check_uniform(&seed, -1, 1);
    double before, after;
    CHECK_OK(ffnc_clip_by_global_norm(FFNC_F32, N, big, 2.5, &before));
    CHECK(before > 100);
    CHECK_OK(ffnc_global_norm(FFNC_F32, N, big, &after));
    CHECK_CLOSE(after, 2.5, 1e-6, 0);

    double g[2] = {3, 4};
    const ffnc_status bad = FFNC_ERR_INVALID_ARGUMENT;
    CHECK_STATUS(ffnc_clip_by_global_norm(FFNC_F64, 2, g, 0, NULL), bad);
    CHECK_STATUS(ffnc_clip_by_global_norm(FFNC_F64, 2, g, -1, NULL), bad);
    CHECK_STATUS(ffnc_clip_by_global_norm(FFNC_F64, 2, g, NAN, NULL), bad);
    CHECK_STATUS(ffnc_clip_by_global_norm(FFNC_F64, 2, g, INFINITY, NULL), bad);
    CHECK_STATUS(ffnc_clip_by_global_norm(FFNC_F64, 2, NULL, 1, NULL), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_clip_by_global_norm((ffnc_dtype)9, 2, g, 1, NULL), FFNC_ERR_INVALID_DTYPE);
    CHECK(g[0] == 3 && g[1] == 4);
    CHECK_OK(ffnc_clip_by_global_norm(FFNC_F64, 0, NULL, 1, NULL));
}

/* ---- optimizer instructions in plans ------------------------------------------------------ */

enum { PN = 5 }; /* parameters of the hand-built plans */

static ffnc_plan_ref arena_ref(int arena, size_t offset) {
    return (ffnc_plan_ref){arena, 0, offset};
}

/* A plan with no inputs whose gradients are set by hand: [clip?] then one update. The update
 * does not change the gradients, so every step sees the same ones (clipped in place once). */
static ffnc_status make_plan(ffnc_dtype dt, const ffnc_plan_instr *update, double clip,
                             size_t state, ffnc_plan **plan) {
    ffnc_plan_instr ins[2];
    size_t n = 0;
    if (clip != 0) { /* the norm goes to the last element of the state arena */
        memset(&ins[0], 0, sizeof ins[0]);
        ins[0].opcode = FFNC_OP_CLIP_GRAD_NORM;
        ins[0].n = (ffnc_plan_size){PN, 0};
        ins[0].hyper[0] = clip;
        ins[0].refs[0] = arena_ref(FFNC_PLAN_GRADS, 0);
        ins[0].refs[1] = arena_ref(FFNC_PLAN_STATE, state - 1);
        n++;
    }
    ins[n++] = *update;
    ffnc_plan_desc d = {dt, 1, {PN, PN, state, 0}, 0, NULL, n, ins, 0, NULL};
    return ffnc_plan_create(&d, plan, NULL);
}

static ffnc_plan_instr update_instr(int opcode, double lr) {
    ffnc_plan_instr in;
    memset(&in, 0, sizeof in);
    in.opcode = opcode;
    in.n = (ffnc_plan_size){PN, 0};
    in.hyper[0] = lr;
    in.refs[0] = arena_ref(FFNC_PLAN_PARAMS, 0);
    in.refs[1] = arena_ref(FFNC_PLAN_GRADS, 0);
    return in;
}

static void set_arenas(ffnc_plan *plan, const double *p0, const double *g0) {
    void *data;
    size_t size;
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, &data, &size));
    memcpy(data, p0, PN * sizeof(double));
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_GRADS, &data, &size));
    memcpy(data, g0, PN * sizeof(double));
}

static const double *arena_f64(ffnc_plan *plan, ffnc_plan_arena arena) {
    void *data;
    size_t size;
    if (ffnc_plan_arena_data(plan, arena, &data, &size) != FFNC_OK) return NULL;
    return data;
}

/* RMSprop (centered, momentum) with clipping in a plan against the kernels called by hand. */
static void test_plan_rmsprop_and_clip(void) {
    const double p0[PN] = {1, -2, 0.5, 3, -1}, g0[PN] = {4, 1, -2, 0.5, 3};
    /* state: square_avg, momentum_buffer, grad_avg, the norm */
    ffnc_plan_instr rms = update_instr(FFNC_OP_RMSPROP, 0.01);
    rms.hyper[1] = 0.9, rms.hyper[2] = 1e-8, rms.hyper[3] = 0.01, rms.hyper[4] = 0.5;
    rms.flags = FFNC_PLAN_CENTERED;
    rms.refs[2] = arena_ref(FFNC_PLAN_STATE, 0);
    rms.refs[3] = arena_ref(FFNC_PLAN_STATE, PN);
    rms.refs[4] = arena_ref(FFNC_PLAN_STATE, 2 * PN);
    ffnc_plan *plan = NULL;
    CHECK_OK(make_plan(FFNC_F64, &rms, 2.0, 3 * PN + 1, &plan));
    if (!plan) return;
    set_arenas(plan, p0, g0);
    double p[PN], g[PN], sq[PN] = {0}, buf[PN] = {0}, avg[PN] = {0}, norm = 0;
    memcpy(p, p0, sizeof p);
    memcpy(g, g0, sizeof g);
    for (int step = 0; step < 3; step++) {
        CHECK_OK(ffnc_plan_run(plan, 1, NULL, NULL));
        CHECK_OK(ffnc_clip_by_global_norm(FFNC_F64, PN, g, 2.0, &norm));
        CHECK_OK(ffnc_rmsprop_update(FFNC_F64, PN, p, g, sq, buf, avg, 0.01, 0.9, 1e-8, 0.01,
                                     0.5, 1));
    }
    const double *pp = arena_f64(plan, FFNC_PLAN_PARAMS), *st = arena_f64(plan, FFNC_PLAN_STATE);
    CHECK(memcmp(pp, p, sizeof p) == 0);
    CHECK(memcmp(st, sq, sizeof sq) == 0 && memcmp(st + PN, buf, sizeof buf) == 0 &&
          memcmp(st + 2 * PN, avg, sizeof avg) == 0);
    /* the last pre-clip norm: the gradients were clipped to 2 at the first step */
    CHECK_CLOSE(st[3 * PN], 2.0, 1e-15, 0);
    CHECK(norm == st[3 * PN]);
    CHECK(ffnc_plan_get_step(plan) == 3);
    ffnc_plan_destroy(plan);

    /* malformed: a momentum buffer missing, one too many, grad_avg missing, bad hyper */
    ffnc_plan_instr wrong = rms;
    wrong.refs[3] = (ffnc_plan_ref){0};
    CHECK_STATUS(make_plan(FFNC_F64, &wrong, 0, 3 * PN, &plan), FFNC_ERR_INVALID_ARGUMENT);
    wrong = rms;
    wrong.hyper[4] = 0;
    CHECK_STATUS(make_plan(FFNC_F64, &wrong, 0, 3 * PN, &plan), FFNC_ERR_INVALID_ARGUMENT);
    wrong = rms;
    wrong.flags = 0;
    CHECK_STATUS(make_plan(FFNC_F64, &wrong, 0, 3 * PN, &plan), FFNC_ERR_INVALID_ARGUMENT);
    wrong.refs[4] = (ffnc_plan_ref){0};
    CHECK_OK(make_plan(FFNC_F64, &wrong, 0, 3 * PN, &plan)); /* not centered, no grad_avg */
    ffnc_plan_destroy(plan);
    wrong = rms;
    wrong.refs[4] = (ffnc_plan_ref){0};
    CHECK_STATUS(make_plan(FFNC_F64, &wrong, 0, 3 * PN, &plan), FFNC_ERR_INVALID_ARGUMENT);
    wrong = rms;
    wrong.hyper[1] = 1; /* alpha */
    CHECK_STATUS(make_plan(FFNC_F64, &wrong, 0, 3 * PN, &plan), FFNC_ERR_INVALID_ARGUMENT);
    wrong = rms;
    wrong.refs[4] = arena_ref(FFNC_PLAN_STATE, PN + 2); /* overlaps the momentum buffer */
    CHECK_STATUS(make_plan(FFNC_F64, &wrong, 0, 3 * PN, &plan), FFNC_ERR_INVALID_ARGUMENT);
    wrong = rms;
    wrong.flags |= 1u << 8; /* an unknown flag */
    CHECK_STATUS(make_plan(FFNC_F64, &wrong, 0, 3 * PN, &plan), FFNC_ERR_INVALID_ARGUMENT);
    /* clipping: max_norm NaN, negative, infinite */
    ffnc_plan_instr sgd = update_instr(FFNC_OP_SGD, 0.1);
    CHECK_STATUS(make_plan(FFNC_F64, &sgd, NAN, 1, &plan), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(make_plan(FFNC_F64, &sgd, -1.0, 1, &plan), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(make_plan(FFNC_F64, &sgd, INFINITY, 1, &plan), FFNC_ERR_INVALID_ARGUMENT);
    CHECK(plan == NULL);
}

/* ffnc_plan_set_lr between runs, and ffnc_plan_run_epoch_scaled, give the same bits. */
static void test_plan_learning_rates(void) {
    const double p0[PN] = {1, -2, 0.5, 3, -1}, g0[PN] = {4, 1, -2, 0.5, 3};
    const double scale[4] = {1, 0.5, 0.25, 0};
    const int opcodes[3] = {FFNC_OP_SGD, FFNC_OP_MOMENTUM, FFNC_OP_ADAM};
    for (int o = 0; o < 3; o++) {
        ffnc_plan_instr in = update_instr(opcodes[o], 0.1);
        size_t state = 0;
        if (opcodes[o] == FFNC_OP_MOMENTUM) {
            in.hyper[1] = 0.9;
            in.refs[2] = arena_ref(FFNC_PLAN_STATE, 0);
            state = PN;
        } else if (opcodes[o] == FFNC_OP_ADAM) {
            in.hyper[1] = 0.9, in.hyper[2] = 0.999, in.hyper[3] = 1e-8;
            in.refs[2] = arena_ref(FFNC_PLAN_STATE, 0);
            in.refs[3] = arena_ref(FFNC_PLAN_STATE, PN);
            state = 2 * PN;
        }
        ffnc_plan *epoch = NULL, *manual = NULL;
        CHECK_OK(make_plan(FFNC_F64, &in, 0, state, &epoch));
        CHECK_OK(make_plan(FFNC_F64, &in, 0, state, &manual));
        if (!epoch || !manual) return;
        set_arenas(epoch, p0, g0);
        set_arenas(manual, p0, g0);
        size_t done = 99;
        CHECK_OK(ffnc_plan_run_epoch_scaled(epoch, 4, 1, NULL, scale, NULL, &done, NULL));
        CHECK(done == 4);
        double lr = 0;
        CHECK_OK(ffnc_plan_get_lr(epoch, &lr));
        CHECK(lr == 0.1); /* unchanged by the epoch */
        for (int s = 0; s < 4; s++) {
            CHECK_OK(ffnc_plan_set_lr(manual, 0.1 * scale[s]));
            CHECK_OK(ffnc_plan_run(manual, 1, NULL, NULL));
        }
        CHECK(memcmp(arena_f64(epoch, FFNC_PLAN_PARAMS), arena_f64(manual, FFNC_PLAN_PARAMS),
                     PN * sizeof(double)) == 0);
        /* the last step had scale 0: the parameters did not move */
        CHECK(ffnc_plan_get_step(epoch) == 4);

        /* bad schedules are refused before any step runs */
        const double nan_scale[2] = {1, NAN}, negative[2] = {1, -0.5}, huge[2] = {1, DBL_MAX};
        double before[PN];
        memcpy(before, arena_f64(epoch, FFNC_PLAN_PARAMS), sizeof before);
        const ffnc_status bad = FFNC_ERR_INVALID_ARGUMENT;
        CHECK_STATUS(ffnc_plan_run_epoch_scaled(epoch, 2, 1, NULL, nan_scale, NULL, &done, NULL),
                     bad);
        CHECK_STATUS(ffnc_plan_run_epoch_scaled(epoch, 2, 1, NULL, negative, NULL, &done, NULL),
                     bad);
        CHECK_OK(ffnc_plan_set_lr(epoch, 10)); /* 10 DBL_MAX overflows */
        CHECK_STATUS(ffnc_plan_run_epoch_scaled(epoch, 2, 1, NULL, huge, NULL, &done, NULL), bad);
        CHECK_OK(ffnc_plan_set_lr(epoch, 0.1));
        CHECK(done == 0 && ffnc_plan_get_step(epoch) == 4);
        CHECK(memcmp(before, arena_f64(epoch, FFNC_PLAN_PARAMS), sizeof before) == 0);
        /* set_lr checks */
        CHECK_STATUS(ffnc_plan_set_lr(epoch, -1), bad);
        CHECK_STATUS(ffnc_plan_set_lr(epoch, NAN), bad);
        CHECK_STATUS(ffnc_plan_set_lr(epoch, INFINITY), bad);
        CHECK_OK(ffnc_plan_get_lr(epoch, &lr));
        CHECK(lr == 0.1);
        CHECK_STATUS(ffnc_plan_set_lr(NULL, 0.1), FFNC_ERR_NULL_POINTER);
        CHECK_STATUS(ffnc_plan_get_lr(epoch, NULL), FFNC_ERR_NULL_POINTER);
        ffnc_plan_destroy(epoch);
        ffnc_plan_destroy(manual);
    }
    /* float32: an lr finite in double but not in float */
    ffnc_plan_instr in = update_instr(FFNC_OP_SGD, 0.1);
    ffnc_plan *plan = NULL;
    CHECK_OK(make_plan(FFNC_F32, &in, 0, 0, &plan));
    CHECK_STATUS(ffnc_plan_set_lr(plan, 1e39), FFNC_ERR_INVALID_ARGUMENT);
    const double overflow[1] = {1e40}; /* 0.1 x 1e40 overflows float */
    CHECK_STATUS(ffnc_plan_run_epoch_scaled(plan, 1, 1, NULL, overflow, NULL, NULL, NULL),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_OK(ffnc_plan_run_epoch_scaled(plan, 1, 1, NULL, NULL, NULL, NULL, NULL));
    ffnc_plan_destroy(plan);
    /* a plan without an update instruction has no learning rate */
    ffnc_plan_instr fill;
    memset(&fill, 0, sizeof fill);
    fill.opcode = FFNC_OP_FILL;
    fill.n = (ffnc_plan_size){PN, 0};
    fill.refs[0] = arena_ref(FFNC_PLAN_GRADS, 0);
    CHECK_OK(make_plan(FFNC_F64, &fill, 0, 0, &plan));
    double lr;
    CHECK_STATUS(ffnc_plan_get_lr(plan, &lr), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_plan_set_lr(plan, 0.1), FFNC_ERR_INVALID_ARGUMENT);
    const double one[1] = {1};
    CHECK_OK(ffnc_plan_run_epoch_scaled(plan, 1, 1, NULL, one, NULL, NULL, NULL));
    ffnc_plan_destroy(plan);
}

int main(void) {
    test_against_reference();
    test_adam_bias_correction();
    test_momentum_variants();
    test_adam_weight_decay_kinds();
    test_nan_gradient();
    test_isa_paths_agree();
    test_invalid_arguments();
    test_rmsprop_edges();
    test_global_norm();
    test_clip();
    test_plan_rmsprop_and_clip();
    test_plan_learning_rates();
    return check_report("optim");
}
