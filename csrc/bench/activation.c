/* ffnc-bench info, activation and threshold. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

static const char *activation_names[FFNC_ACT_COUNT] = {
    "identity", "relu", "leaky_relu", "abs", "tanh", "sigmoid", "softplus", "hard_tanh", "elu", "gelu"};

static int parse_activation(const char *name, ffnc_activation *out) {
    for (int a = 0; a < FFNC_ACT_COUNT; a++)
        if (strcmp(name, activation_names[a]) == 0) {
            *out = (ffnc_activation)a;
            return 1;
        }
    return 0;
}

int ffnc_bench_info(int argc, char **argv) {
    bench_common common = {FFNC_F32, 0, 1, 0, 0, 0};
    for (int i = 1; i < argc; i++) {
        int r = bench_opt_common(argc, argv, &i, &common);
        if (r == 0) return bench_usage_error("info", "unknown option", argv[i]);
        if (r < 0) return 2;
    }
    if (bench_apply_common(&common)) return 2;
    double peak = bench_peak_gflops_per_core(common.dtype);
    if (common.json) {
        bench_json_begin("info", &common);
        printf(", \"version\": \"%s\", \"openmp\": \"%s\", \"peak_gflops_per_core\": %.1f}\n",
               ffnc_version(), ffnc_openmp_info(), peak);
    } else {
        printf("ffnc %s, ISA path %s, %d threads, %s\n", ffnc_version(), ffnc_isa_name(ffnc_get_isa()),
               ffnc_get_num_threads(), ffnc_openmp_info());
        printf("peak %s FMA throughput: %.1f GFLOP/s per core, %.1f with %d threads\n",
               bench_dtype_name(common.dtype), peak, peak * ffnc_get_num_threads(),
               ffnc_get_num_threads());
    }
    return 0;
}

/* Median seconds of `reps` runs of the activation forward (or backward) over n values. */
static int time_activation(ffnc_activation act, int backward, ffnc_dtype dtype, size_t n, int reps,
                           bench_stats *stats) {
    void *src = bench_random_array(dtype, n, -3, 3, 1);
    void *dst = bench_random_array(dtype, n, -1, 1, 2);
    void *grad = bench_random_array(dtype, n, -1, 1, 3);
    double *times = malloc(sizeof(double) * (size_t)reps);
    int failed = !src || !dst || !grad || !times;
    for (int r = 0; !failed && r < reps + 1; r++) {
        double t0 = bench_now();
        ffnc_status s = backward ? ffnc_activation_backward(dtype, act, 0.1, n, grad, src, dst)
                                 : ffnc_activation_forward(dtype, act, 0.1, n, src, dst);
        double t1 = bench_now();
        if (s != FFNC_OK) {
            fprintf(stderr, "ffnc-bench: %s\n", ffnc_status_string(s));
            failed = 1;
        }
        if (r > 0) times[r - 1] = t1 - t0; /* the first run warms caches and threads */
    }
    if (!failed) *stats = bench_summarize(times, reps);
    free(src);
    free(dst);
    free(grad);
    free(times);
    return failed;
}

int ffnc_bench_activation(int argc, char **argv) {
    bench_common common = {FFNC_F32, 0, 50, 0, 0, 0};
    const char *act_name = "relu";
    size_t n = (size_t)1 << 20;
    int backward = 0;
    for (int i = 1; i < argc; i++) {
        int r = bench_opt_common(argc, argv, &i, &common);
        if (r == 0) r = bench_opt_string(argc, argv, &i, "--act", &act_name);
        if (r == 0) r = bench_opt_size(argc, argv, &i, "--n", &n);
        if (r == 0 && strcmp(argv[i], "--backward") == 0) backward = r = 1;
        if (r == 0) return bench_usage_error("activation", "unknown option", argv[i]);
        if (r < 0) return 2;
    }
    ffnc_activation act;
    if (!parse_activation(act_name, &act)) return bench_usage_error("activation", "unknown --act", act_name);
    if (n == 0) return bench_usage_error("activation", "--n must be positive", NULL);
    if (bench_apply_common(&common)) return 2;
    bench_stats st;
    if (time_activation(act, backward, common.dtype, n, common.reps, &st)) return 1;
    size_t width = common.dtype == FFNC_F32 ? 4 : 8;
    double bytes = (double)n * (double)width * (backward ? 3 : 2);
    if (common.json) {
        bench_json_begin(backward ? "activation_backward" : "activation_forward", &common);
        printf(", \"activation\": \"%s\", \"n\": %zu, \"median_s\": %.9g, \"min_s\": %.9g, "
               "\"max_s\": %.9g, \"gbytes_per_s\": %.3f}\n",
               act_name, n, st.median, st.min, st.max, bytes / st.median / 1e9);
    } else {
        printf("%s %s %s n=%zu threads=%d isa=%s: median %.3f us (min %.3f, max %.3f), %.2f GB/s\n",
               act_name, backward ? "backward" : "forward", bench_dtype_name(common.dtype), n,
               ffnc_get_num_threads(), ffnc_isa_name(ffnc_get_isa()), st.median * 1e6,
               st.min * 1e6, st.max * 1e6, bytes / st.median / 1e9);
    }
    return 0;
}

/* Times relu (memory-bound) and tanh (compute-bound) forward on 1 thread and on all threads
 * over sizes 2^8 .. 2^22, and prints where threads start to pay: the data behind
 * FFNC_GRAIN_ELEMENTWISE and FFNC_GRAIN_TRANSCENDENTAL. The kernels' own grains are overridden
 * so that every size runs threaded in the second column. */
int ffnc_bench_threshold(int argc, char **argv) {
    bench_common common = {FFNC_F32, 0, 200, 0, 0, 0};
    for (int i = 1; i < argc; i++) {
        int r = bench_opt_common(argc, argv, &i, &common);
        if (r == 0) return bench_usage_error("threshold", "unknown option", argv[i]);
        if (r < 0) return 2;
    }
    int all = ffnc_get_num_threads();
    if (common.threads > 0) all = common.threads;
    const ffnc_activation acts[2] = {FFNC_ACT_RELU, FFNC_ACT_TANH};
    printf("%-10s %10s %14s %14s %8s\n", "kernel", "n", "1 thread (us)", "threads (us)", "speedup");
    for (int a = 0; a < 2; a++) {
        for (size_t n = (size_t)1 << 8; n <= (size_t)1 << 22; n <<= 1) {
            bench_stats one, many;
            ffnc_set_num_threads(1);
            if (time_activation(acts[a], 0, common.dtype, n, common.reps, &one)) return 1;
            ffnc_set_num_threads(all);
            ffnc_override_grain(1);
            int failed = time_activation(acts[a], 0, common.dtype, n, common.reps, &many);
            ffnc_override_grain(0);
            if (failed) return 1;
            printf("%-10s %10zu %14.2f %14.2f %8.2f\n", activation_names[acts[a]], n,
                   one.median * 1e6, many.median * 1e6, one.median / many.median);
        }
    }
    printf("threads=%d isa=%s dtype=%s\n", all, ffnc_isa_name(ffnc_get_isa()), bench_dtype_name(common.dtype));
    return 0;
}
