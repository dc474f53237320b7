/* Optimizer updates against a naive double reference, on every ISA path and dtype, over several
 * consecutive steps (the state carried by the kernel); argument checks; NaN propagation. */
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

int main(void) {
    test_against_reference();
    test_adam_bias_correction();
    test_momentum_variants();
    test_adam_weight_decay_kinds();
    test_nan_gradient();
    test_isa_paths_agree();
    test_invalid_arguments();
    return check_report("optim");
}
