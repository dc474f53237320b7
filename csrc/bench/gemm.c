/* ffnc-bench gemm and dense: GFLOP/s of ffnc_gemm and of the fused ffnc_dense_forward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const char *const dense_activation_names[FFNC_ACT_COUNT] = {
    "identity", "relu", "leaky_relu", "abs", "tanh", "sigmoid", "softplus", "hard_tanh", "elu", "gelu"};

/* One benchmark case: the operation is run once to warm caches, threads and the packing
 * buffers, then `reps` times (reps == 0: as many as fit in about half a second, 5 to 1000). */
typedef struct gemm_case {
    const char *op; /* "gemm" or "dense" */
    size_t m, n, k;
    int trans_a, trans_b; /* dense: trans_b is trans_weights */
    ffnc_activation act;
} gemm_case;

static ffnc_status run_once(const gemm_case *cs, ffnc_dtype dtype, const void *a, const void *b,
                            const void *bias, void *c) {
    if (strcmp(cs->op, "gemm") == 0)
        return ffnc_gemm(dtype, cs->trans_a, cs->trans_b, cs->m, cs->n, cs->k, 1.0, a,
                         cs->trans_a ? cs->m : cs->k, b, cs->trans_b ? cs->k : cs->n, 0.0, c,
                         cs->n);
    return ffnc_dense_forward(dtype, cs->m, cs->n, cs->k, a, b, cs->trans_b, bias, cs->act, 0.01,
                              NULL, c);
}

/* The plain reference: op(A) op(B) (+ bias, activation for dense) in double, and for each
 * element the sum of |terms|, the scale its rounding error is bounded by. */
static int reference(const gemm_case *cs, ffnc_dtype dtype, const void *a, const void *b,
                     const void *bias, double **out, double **scale) {
    size_t M = cs->m, N = cs->n, K = cs->k;
    int dense = strcmp(cs->op, "dense") == 0;
    *out = malloc(M * N * sizeof(double));
    *scale = malloc(M * N * sizeof(double));
    if (!*out || !*scale) return 1;
#define AT(p, i) (dtype == FFNC_F32 ? (double)((const float *)(p))[i] : ((const double *)(p))[i])
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double s = 0, abs_sum = 0;
            for (size_t p = 0; p < K; p++) {
                double av = AT(a, cs->trans_a ? p * M + i : i * K + p);
                double bv = AT(b, cs->trans_b ? j * K + p : p * N + j);
                s += av * bv;
                abs_sum += fabs(av * bv);
            }
            if (dense) s += AT(bias, j), abs_sum += fabs(AT(bias, j));
            (*out)[i * N + j] = s;
            (*scale)[i * N + j] = abs_sum > 1 ? abs_sum : 1;
        }
#undef AT
    /* the activation itself is checked by the activation tests; apply it to the exact sum */
    if (dense && ffnc_activation_forward(FFNC_F64, cs->act, 0.01, M * N, *out, *out) != FFNC_OK)
        return 1;
    return 0;
}

static int run_case(const gemm_case *cs, bench_common *common) {
    if (bench_apply_common(common)) return 2;
    ffnc_dtype dtype = common->dtype;
    size_t mk = cs->m * cs->k, kn = cs->k * cs->n, mn = cs->m * cs->n;
    if ((cs->k && mk / cs->k != cs->m) || (cs->n && kn / cs->n != cs->k) ||
        (cs->n && mn / cs->n != cs->m))
        return bench_usage_error(cs->op, "the matrices are too large", NULL);
    void *a = bench_random_array(dtype, mk, -1, 1, 1);
    void *b = bench_random_array(dtype, kn, -1, 1, 2);
    void *bias = bench_random_array(dtype, cs->n, -1, 1, 3);
    void *c = bench_random_array(dtype, mn, -1, 1, 4);
    int reps = common->reps;
    double *times = NULL;
    int status = 1;
    if (!a || !b || !bias || !c) goto done;

    double t0 = bench_now();
    ffnc_status s = run_once(cs, dtype, a, b, bias, c);
    double first = bench_now() - t0;
    if (s != FFNC_OK) {
        fprintf(stderr, "ffnc-bench %s: %s\n", cs->op, ffnc_status_string(s));
        goto done;
    }
    bench_verdict verdict = {0};
    if (common->check) {
        double *ref = NULL, *scale = NULL;
        if (reference(cs, dtype, a, b, bias, &ref, &scale) == 0)
            bench_compare(&verdict, dtype, c, ref, scale, mn, dtype == FFNC_F32 ? 1e-5 : 1e-13);
        else
            verdict.checked = 1;
        free(ref);
        free(scale);
    }
    if (common->repeat_bitwise) {
        size_t bytes = mn * (dtype == FFNC_F32 ? sizeof(float) : sizeof(double));
        void *again = bench_random_array(dtype, mn, -1, 1, 5);
        verdict.repeated = 1;
        if (again && run_once(cs, dtype, a, b, bias, again) == FFNC_OK)
            verdict.bitwise_equal = memcmp(again, c, bytes) == 0;
        free(again);
    }
    if (reps == 0) {
        reps = first > 0 ? (int)(0.5 / first) : 1000;
        reps = reps < 5 ? 5 : (reps > 1000 ? 1000 : reps);
    }
    times = malloc(sizeof(double) * (size_t)reps);
    if (times == NULL) goto done;
    for (int r = 0; r < reps; r++) {
        t0 = bench_now();
        s = run_once(cs, dtype, a, b, bias, c);
        times[r] = bench_now() - t0;
        if (s != FFNC_OK) {
            fprintf(stderr, "ffnc-bench %s: %s\n", cs->op, ffnc_status_string(s));
            goto done;
        }
    }
    bench_stats st = bench_summarize(times, reps);
    double flops = 2.0 * (double)cs->m * (double)cs->n * (double)cs->k;
    double peak = bench_peak_gflops_per_core(dtype) * ffnc_get_num_threads();
    double gflops = flops / st.median / 1e9;
    if (common->json) {
        bench_json_begin(cs->op, common);
        printf(", \"m\": %zu, \"n\": %zu, \"k\": %zu", cs->m, cs->n, cs->k);
        if (strcmp(cs->op, "gemm") == 0)
            printf(", \"trans_a\": %s, \"trans_b\": %s", cs->trans_a ? "true" : "false",
                   cs->trans_b ? "true" : "false");
        else
            printf(", \"trans_weights\": %s, \"activation\": \"%s\"",
                   cs->trans_b ? "true" : "false", dense_activation_names[cs->act]);
        printf(", \"reps\": %d, \"median_s\": %.9g, \"min_s\": %.9g, \"max_s\": %.9g, "
               "\"gflops\": %.3f, \"gflops_min\": %.3f, "
               "\"gflops_max\": %.3f, \"peak_gflops\": %.1f, \"percent_of_peak\": %.1f",
               reps, st.median, st.min, st.max, gflops, flops / st.max / 1e9,
               flops / st.min / 1e9, peak, peak > 0 ? 100 * gflops / peak : 0.0);
        bench_print_verdict(&verdict, 1);
        printf("}\n");
    } else {
        printf("%s %s m=%zu n=%zu k=%zu%s%s threads=%d isa=%s: %.2f GFLOP/s median "
               "(min %.2f, max %.2f over %d reps), %.1f%% of the %.1f GFLOP/s FMA peak",
               cs->op, bench_dtype_name(dtype), cs->m, cs->n, cs->k,
               cs->trans_a ? " trans_a" : "", cs->trans_b ? " trans_b" : "",
               ffnc_get_num_threads(), ffnc_isa_name(ffnc_get_isa()), gflops,
               flops / st.max / 1e9, flops / st.min / 1e9, reps,
               peak > 0 ? 100 * gflops / peak : 0.0, peak);
        bench_print_verdict(&verdict, 0);
        printf("\n");
    }
    status = bench_verdict_failed(&verdict);
done:
    free(a);
    free(b);
    free(bias);
    free(c);
    free(times);
    return status;
}

/* Parses the options shared by gemm and dense; `dense` enables --activation and
 * --trans-weights instead of --trans-a / --trans-b. Returns 0, or the exit code. */
static int parse_case(int argc, char **argv, int dense, gemm_case *cs, bench_common *common) {
    const char *sub = dense ? "dense" : "gemm";
    const char *act_name = "relu";
    for (int i = 1; i < argc; i++) {
        int r = bench_opt_common(argc, argv, &i, common);
        if (r == 0) r = bench_opt_verify(argc, argv, &i, common);
        if (r == 0) r = bench_opt_size(argc, argv, &i, "--m", &cs->m);
        if (r == 0) r = bench_opt_size(argc, argv, &i, "--n", &cs->n);
        if (r == 0) r = bench_opt_size(argc, argv, &i, "--k", &cs->k);
        if (r == 0 && !dense && strcmp(argv[i], "--trans-a") == 0) cs->trans_a = r = 1;
        if (r == 0 && !dense && strcmp(argv[i], "--trans-b") == 0) cs->trans_b = r = 1;
        if (r == 0 && dense && strcmp(argv[i], "--trans-weights") == 0) cs->trans_b = r = 1;
        if (r == 0 && dense) r = bench_opt_string(argc, argv, &i, "--activation", &act_name);
        if (r == 0) return bench_usage_error(sub, "unknown option", argv[i]);
        if (r < 0) return 2;
    }
    if (cs->m == 0 || cs->n == 0 || cs->k == 0)
        return bench_usage_error(sub, "--m, --n and --k must be positive", NULL);
    if (dense) {
        int found = 0;
        for (int a = 0; a < FFNC_ACT_COUNT; a++)
            if (strcmp(act_name, dense_activation_names[a]) == 0) {
                cs->act = (ffnc_activation)a;
                found = 1;
            }
        if (!found) return bench_usage_error(sub, "unknown --activation", act_name);
    }
    return 0;
}

int ffnc_bench_gemm(int argc, char **argv) {
    gemm_case cs = {"gemm", 1024, 1024, 1024, 0, 0, FFNC_ACT_IDENTITY};
    bench_common common = {FFNC_F32, 0, 0, 0, 0, 0};
    int r = parse_case(argc, argv, 0, &cs, &common);
    return r ? r : run_case(&cs, &common);
}

int ffnc_bench_dense(int argc, char **argv) {
    gemm_case cs = {"dense", 128, 512, 512, 0, 0, FFNC_ACT_RELU};
    bench_common common = {FFNC_F32, 0, 0, 0, 0, 0};
    int r = parse_case(argc, argv, 1, &cs, &common);
    return r ? r : run_case(&cs, &common);
}
