/* ffnc-bench softmax-xent, update and all: the fused softmax cross-entropy (forward, and
 * backward with --backward), the optimizer updates, and the standard suite. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Times `run` (one call of the kernel over prepared buffers): once to warm up, then `reps`
 * times (0: as many as fit in about a quarter second, 5 to 2000). */
typedef ffnc_status (*bench_fn)(void *ctx);

static int time_kernel(bench_fn run, void *ctx, int reps, bench_stats *st, int *reps_done) {
    double t0 = bench_now();
    if (run(ctx) != FFNC_OK) return 1;
    double first = bench_now() - t0;
    if (reps == 0) {
        reps = first > 0 ? (int)(0.25 / first) : 2000;
        reps = reps < 5 ? 5 : (reps > 2000 ? 2000 : reps);
    }
    double *times = malloc(sizeof(double) * (size_t)reps);
    if (!times) return 1;
    for (int r = 0; r < reps; r++) {
        t0 = bench_now();
        ffnc_status s = run(ctx);
        times[r] = bench_now() - t0;
        if (s != FFNC_OK) {
            free(times);
            return 1;
        }
    }
    *st = bench_summarize(times, reps);
    *reps_done = reps;
    free(times);
    return 0;
}

static size_t width_of(ffnc_dtype dtype) { return dtype == FFNC_F32 ? sizeof(float) : sizeof(double); }

static double value_at(ffnc_dtype dtype, const void *p, size_t i) {
    return dtype == FFNC_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* ---- softmax-xent ---------------------------------------------------------------------------- */

typedef struct xent_ctx {
    ffnc_dtype dtype;
    size_t rows, classes;
    int backward;
    void *logits, *probs, *diff;
    int64_t *labels;
    double loss;
} xent_ctx;

static ffnc_status xent_run(void *p) {
    xent_ctx *c = p;
    double scale = 1.0 / (double)c->rows;
    ffnc_status s = ffnc_softmax_xent_forward(c->dtype, c->rows, c->classes, c->logits,
                                              c->labels, scale, c->probs, &c->loss);
    if (s != FFNC_OK || !c->backward) return s;
    return ffnc_softmax_xent_backward(c->dtype, c->rows, c->classes, c->probs, c->labels, scale,
                                      c->diff);
}

/* Reference softmax, mean cross-entropy and its gradient in double. */
static void xent_check(const xent_ctx *c, bench_verdict *v) {
    size_t n = c->rows * c->classes;
    double *probs = malloc(n * sizeof(double)), *diff = malloc(n * sizeof(double));
    if (!probs || !diff) {
        v->checked = 1;
        free(probs), free(diff);
        return;
    }
    double loss = 0;
    for (size_t r = 0; r < c->rows; r++) {
        double mx = -INFINITY, sum = 0;
        for (size_t j = 0; j < c->classes; j++) {
            double z = value_at(c->dtype, c->logits, r * c->classes + j);
            mx = z > mx ? z : mx;
        }
        for (size_t j = 0; j < c->classes; j++)
            sum += exp(value_at(c->dtype, c->logits, r * c->classes + j) - mx);
        for (size_t j = 0; j < c->classes; j++) {
            double pr = exp(value_at(c->dtype, c->logits, r * c->classes + j) - mx) / sum;
            probs[r * c->classes + j] = pr;
            diff[r * c->classes + j] = (pr - ((int64_t)j == c->labels[r])) / (double)c->rows;
        }
        loss -= log(probs[r * c->classes + c->labels[r]]) / (double)c->rows;
    }
    double tol = c->dtype == FFNC_F32 ? 1e-5 : 1e-12;
    bench_compare(v, c->dtype, c->probs, probs, NULL, n, tol);
    if (c->backward) {
        /* the kernel's backward output, scaled like the reference's */
        double *scale = malloc(n * sizeof(double));
        if (scale) {
            for (size_t i = 0; i < n; i++) scale[i] = 1.0 / (double)c->rows;
            bench_compare(v, c->dtype, c->diff, diff, scale, n, tol);
        }
        free(scale);
    }
    double got = c->loss;
    bench_compare(v, FFNC_F64, &got, &loss, NULL, 1, tol);
    free(probs), free(diff);
}

int ffnc_bench_softmax_xent(int argc, char **argv) {
    const char *sub = "softmax-xent";
    bench_common common = {FFNC_F32, 0, 0, 0, 0, 0};
    xent_ctx c = {0};
    c.rows = 1024, c.classes = 10;
    for (int i = 1; i < argc; i++) {
        int r = bench_opt_common(argc, argv, &i, &common);
        if (r == 0) r = bench_opt_verify(argc, argv, &i, &common);
        if (r == 0) r = bench_opt_size(argc, argv, &i, "--rows", &c.rows);
        if (r == 0) r = bench_opt_size(argc, argv, &i, "--classes", &c.classes);
        if (r == 0 && strcmp(argv[i], "--backward") == 0) c.backward = r = 1;
        if (r == 0) return bench_usage_error(sub, "unknown option", argv[i]);
        if (r < 0) return 2;
    }
    if (c.rows == 0 || c.classes == 0 || c.rows > ((size_t)1 << 40) / c.classes)
        return bench_usage_error(sub, "--rows and --classes must be positive and not huge", NULL);
    if (bench_apply_common(&common)) return bench_usage_error(sub, "bad --threads", NULL);
    c.dtype = common.dtype;
    size_t n = c.rows * c.classes;
    c.logits = bench_random_array(c.dtype, n, -8, 8, 1);
    c.probs = bench_random_array(c.dtype, n, 0, 1, 2);
    c.diff = bench_random_array(c.dtype, n, 0, 1, 3);
    c.labels = malloc(c.rows * sizeof(int64_t));
    int status = 1;
    bench_verdict v = {0};
    if (!c.logits || !c.probs || !c.diff || !c.labels) goto done;
    for (size_t r = 0; r < c.rows; r++) c.labels[r] = (int64_t)((r * 7919) % c.classes);
    if (xent_run(&c) != FFNC_OK) goto done;
    if (common.check) xent_check(&c, &v);
    if (common.repeat_bitwise) {
        size_t bytes = n * width_of(c.dtype);
        void *probs = malloc(bytes), *diff = malloc(bytes);
        double loss = c.loss;
        v.repeated = 1;
        if (probs && diff) {
            memcpy(probs, c.probs, bytes);
            memcpy(diff, c.diff, bytes);
            v.bitwise_equal = xent_run(&c) == FFNC_OK && memcmp(probs, c.probs, bytes) == 0 &&
                              memcmp(diff, c.diff, bytes) == 0 &&
                              memcmp(&loss, &c.loss, sizeof loss) == 0;
        }
        free(probs), free(diff);
    }
    bench_stats st;
    int reps;
    if (time_kernel(xent_run, &c, common.reps, &st, &reps)) goto done;
    double bytes_moved = (double)n * (double)width_of(c.dtype) * (c.backward ? 4 : 2);
    if (common.json) {
        bench_json_begin("softmax-xent", &common);
        printf(", \"rows\": %zu, \"classes\": %zu, \"backward\": %s, \"reps\": %d, "
               "\"median_s\": %.9g, \"min_s\": %.9g, \"max_s\": %.9g, \"gb_per_s\": %.3f",
               c.rows, c.classes, c.backward ? "true" : "false", reps, st.median, st.min, st.max,
               bytes_moved / st.median / 1e9);
        bench_print_verdict(&v, 1);
        printf("}\n");
    } else {
        printf("softmax-xent%s %s rows=%zu classes=%zu threads=%d isa=%s: %.3f us median "
               "(min %.3f, max %.3f over %d reps), %.2f GB/s",
               c.backward ? " fwd+bwd" : "", bench_dtype_name(c.dtype), c.rows, c.classes,
               ffnc_get_num_threads(), ffnc_isa_name(ffnc_get_isa()), st.median * 1e6,
               st.min * 1e6, st.max * 1e6, reps, bytes_moved / st.median / 1e9);
        bench_print_verdict(&v, 0);
        printf("\n");
    }
    status = bench_verdict_failed(&v);
done:
    if (status && !bench_verdict_failed(&v))
        fprintf(stderr, "ffnc-bench %s: the kernel failed or memory ran out\n", sub);
    free(c.logits), free(c.probs), free(c.diff), free(c.labels);
    return status;
}

/* ---- update ---------------------------------------------------------------------------------- */

typedef struct update_ctx {
    ffnc_dtype dtype;
    int optimizer; /* 0 sgd, 1 momentum, 2 adam */
    size_t n;
    void *param, *grad, *s1, *s2;
    int64_t step;
} update_ctx;

static const char *const optimizer_names[3] = {"sgd", "momentum", "adam"};
#define BENCH_LR 1e-3
#define BENCH_WD 1e-4

static ffnc_status update_run(void *p) {
    update_ctx *c = p;
    switch (c->optimizer) {
    case 0: return ffnc_sgd_update(c->dtype, c->n, c->param, c->grad, BENCH_LR, BENCH_WD);
    case 1:
        return ffnc_momentum_update(c->dtype, c->n, c->param, c->grad, c->s1, BENCH_LR, 0.9,
                                    BENCH_WD, 0);
    default:
        return ffnc_adam_update(c->dtype, c->n, c->param, c->grad, c->s1, c->s2, ++c->step,
                                BENCH_LR, 0.9, 0.999, 1e-8, BENCH_WD, 0);
    }
}

/* One update from the saved state (param0, state0 zero) in double. */
static void update_check(const update_ctx *c, const void *param0, bench_verdict *v) {
    double *want = malloc(c->n * sizeof(double));
    if (!want) {
        v->checked = 1;
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        double p = value_at(c->dtype, param0, i), g = value_at(c->dtype, c->grad, i);
        double d = g + BENCH_WD * p;
        if (c->optimizer == 0 || c->optimizer == 1) {
            want[i] = p - BENCH_LR * d; /* momentum from zero velocity: v = d */
        } else {
            double m = 0.1 * d, s = 0.001 * d * d;
            want[i] = p - BENCH_LR * (m / 0.1) / (sqrt(s / 0.001) + 1e-8);
        }
    }
    bench_compare(v, c->dtype, c->param, want, NULL, c->n, c->dtype == FFNC_F32 ? 1e-6 : 1e-14);
    free(want);
}

int ffnc_bench_update(int argc, char **argv) {
    const char *sub = "update", *name = "adam";
    bench_common common = {FFNC_F32, 0, 0, 0, 0, 0};
    update_ctx c = {0};
    c.n = (size_t)1 << 20;
    for (int i = 1; i < argc; i++) {
        int r = bench_opt_common(argc, argv, &i, &common);
        if (r == 0) r = bench_opt_verify(argc, argv, &i, &common);
        if (r == 0) r = bench_opt_size(argc, argv, &i, "--n", &c.n);
        if (r == 0) r = bench_opt_string(argc, argv, &i, "--optimizer", &name);
        if (r == 0) return bench_usage_error(sub, "unknown option", argv[i]);
        if (r < 0) return 2;
    }
    c.optimizer = -1;
    for (int o = 0; o < 3; o++)
        if (strcmp(name, optimizer_names[o]) == 0) c.optimizer = o;
    if (c.optimizer < 0) return bench_usage_error(sub, "--optimizer expects sgd, momentum or adam", name);
    if (c.n == 0 || c.n > ((size_t)1 << 36)) return bench_usage_error(sub, "--n out of range", NULL);
    if (bench_apply_common(&common)) return bench_usage_error(sub, "bad --threads", NULL);
    c.dtype = common.dtype;
    size_t bytes = c.n * width_of(c.dtype);
    c.param = bench_random_array(c.dtype, c.n, -1, 1, 1);
    c.grad = bench_random_array(c.dtype, c.n, -1, 1, 2);
    c.s1 = calloc(c.n, width_of(c.dtype));
    c.s2 = calloc(c.n, width_of(c.dtype));
    void *param0 = malloc(bytes);
    int status = 1;
    bench_verdict v = {0};
    if (!c.param || !c.grad || !c.s1 || !c.s2 || !param0) goto done;
    memcpy(param0, c.param, bytes);
    if (update_run(&c) != FFNC_OK) goto done;
    if (common.check) update_check(&c, param0, &v);
    if (common.repeat_bitwise) {
        /* the same first step again from the same state */
        void *first = malloc(bytes);
        v.repeated = 1;
        if (first) {
            memcpy(first, c.param, bytes);
            memcpy(c.param, param0, bytes);
            memset(c.s1, 0, bytes), memset(c.s2, 0, bytes);
            c.step = 0;
            v.bitwise_equal = update_run(&c) == FFNC_OK && memcmp(first, c.param, bytes) == 0;
        }
        free(first);
    }
    bench_stats st;
    int reps;
    if (time_kernel(update_run, &c, common.reps, &st, &reps)) goto done;
    /* bytes read and written per value: param rw, grad r, and each state buffer rw */
    int streams = 3 + 2 * c.optimizer;
    double moved = (double)bytes * streams;
    if (common.json) {
        bench_json_begin("update", &common);
        printf(", \"optimizer\": \"%s\", \"n\": %zu, \"reps\": %d, \"median_s\": %.9g, "
               "\"min_s\": %.9g, \"max_s\": %.9g, \"gb_per_s\": %.3f",
               optimizer_names[c.optimizer], c.n, reps, st.median, st.min, st.max,
               moved / st.median / 1e9);
        bench_print_verdict(&v, 1);
        printf("}\n");
    } else {
        printf("update %s %s n=%zu threads=%d isa=%s: %.3f us median (min %.3f, max %.3f over "
               "%d reps), %.2f GB/s",
               optimizer_names[c.optimizer], bench_dtype_name(c.dtype), c.n,
               ffnc_get_num_threads(), ffnc_isa_name(ffnc_get_isa()), st.median * 1e6,
               st.min * 1e6, st.max * 1e6, reps, moved / st.median / 1e9);
        bench_print_verdict(&v, 0);
        printf("\n");
    }
    status = bench_verdict_failed(&v);
done:
    free(c.param), free(c.grad), free(c.s1), free(c.s2), free(param0);
    return status;
}

/* ---- all ------------------------------------------------------------------------------------- */

/* The standard suite: each case is a subcommand's argument list; the common options given to
 * `all` (--dtype, --threads, --json, --check, --repeat-bitwise) are appended to each. */
static const char *const suite[][12] = {
    {"gemm", "--m", "512", "--n", "512", "--k", "512"},
    {"gemm", "--m", "128", "--n", "784", "--k", "512", "--trans-b"},
    {"gemm", "--m", "512", "--n", "128", "--k", "784", "--trans-a"},
    {"dense", "--m", "128", "--n", "512", "--k", "784", "--activation", "relu"},
    {"dense", "--m", "256", "--n", "256", "--k", "256", "--activation", "tanh"},
    {"softmax-xent", "--rows", "1024", "--classes", "10"},
    {"softmax-xent", "--rows", "256", "--classes", "1000", "--backward"},
    {"update", "--optimizer", "sgd", "--n", "1048576"},
    {"update", "--optimizer", "momentum", "--n", "1048576"},
    {"update", "--optimizer", "adam", "--n", "1048576"},
    {"mlp", "--layers", "2,16,2", "--batch", "4", "--steps", "2000"},
    {"mlp", "--layers", "784,512,512,10", "--batch", "128", "--steps", "20"},
};

int ffnc_bench_all(int argc, char **argv) {
    const char *extra[16];
    int n_extra = 0;
    for (int i = 1; i < argc; i++) {
        int takes_value = strcmp(argv[i], "--dtype") == 0 || strcmp(argv[i], "--threads") == 0;
        int flag = strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "--check") == 0 ||
                   strcmp(argv[i], "--repeat-bitwise") == 0;
        if (!takes_value && !flag) return bench_usage_error("all", "unknown option", argv[i]);
        if (takes_value && i + 1 >= argc) return bench_usage_error("all", "needs a value", argv[i]);
        if (n_extra + 2 > 16) return bench_usage_error("all", "too many options", NULL);
        extra[n_extra++] = argv[i];
        if (takes_value) extra[n_extra++] = argv[++i];
    }
    int failures = 0;
    for (size_t c = 0; c < sizeof suite / sizeof suite[0]; c++) {
        char *args[32];
        int n = 0;
        for (int j = 0; j < 12 && suite[c][j]; j++) args[n++] = (char *)(uintptr_t)suite[c][j];
        for (int j = 0; j < n_extra; j++) args[n++] = (char *)(uintptr_t)extra[j];
        args[n] = NULL;
        int (*run)(int, char **) =
            strcmp(args[0], "gemm") == 0           ? ffnc_bench_gemm
            : strcmp(args[0], "dense") == 0        ? ffnc_bench_dense
            : strcmp(args[0], "softmax-xent") == 0 ? ffnc_bench_softmax_xent
            : strcmp(args[0], "update") == 0       ? ffnc_bench_update
                                                   : ffnc_bench_mlp;
        fflush(stdout);
        if (run(n, args) != 0) failures++;
        fflush(stdout);
    }
    if (failures) fprintf(stderr, "ffnc-bench all: %d case(s) failed\n", failures);
    return failures ? 1 : 0;
}
