/* ffnc-bench shared helpers. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bench_stats bench_summarize(double *times, int n) {
    qsort(times, (size_t)n, sizeof(double), compare_doubles);
    bench_stats s;
    s.min = times[0];
    s.max = times[n - 1];
    s.median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
    return s;
}

int bench_usage_error(const char *subcommand, const char *message, const char *arg) {
    fprintf(stderr, "ffnc-bench %s: %s%s%s\n", subcommand, message, arg ? ": " : "",
            arg ? arg : "");
    return 2;
}

static const char *option_value(int argc, char **argv, int *i, const char *name) {
    if (strcmp(argv[*i], name) != 0) return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "ffnc-bench: %s needs a value\n", name);
        return "";
    }
    *i += 1;
    return argv[*i];
}

int bench_opt_size(int argc, char **argv, int *i, const char *name, size_t *out) {
    const char *v = option_value(argc, argv, i, name);
    if (v == NULL) return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0 || x > SIZE_MAX) {
        if (*v) fprintf(stderr, "ffnc-bench: %s expects a non-negative integer, got '%s'\n", name, v);
        return -1;
    }
    *out = (size_t)x;
    return 1;
}

int bench_opt_int(int argc, char **argv, int *i, const char *name, int *out) {
    const char *v = option_value(argc, argv, i, name);
    if (v == NULL) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || x < 1 || x > 1000000) {
        if (*v) fprintf(stderr, "ffnc-bench: %s expects an integer in [1, 1000000], got '%s'\n", name, v);
        return -1;
    }
    *out = (int)x;
    return 1;
}

int bench_opt_string(int argc, char **argv, int *i, const char *name, const char **out) {
    const char *v = option_value(argc, argv, i, name);
    if (v == NULL) return 0;
    if (*v == '\0') return -1;
    *out = v;
    return 1;
}

int bench_opt_common(int argc, char **argv, int *i, bench_common *common) {
    if (strcmp(argv[*i], "--json") == 0) {
        common->json = 1;
        return 1;
    }
    const char *dtype = NULL;
    int r = bench_opt_string(argc, argv, i, "--dtype", &dtype);
    if (r == 1) {
        if (strcmp(dtype, "f32") == 0) common->dtype = FFNC_F32;
        else if (strcmp(dtype, "f64") == 0) common->dtype = FFNC_F64;
        else {
            fprintf(stderr, "ffnc-bench: --dtype expects f32 or f64, got '%s'\n", dtype);
            return -1;
        }
        return 1;
    }
    if (r < 0) return r;
    if ((r = bench_opt_int(argc, argv, i, "--threads", &common->threads)) != 0) return r;
    return bench_opt_int(argc, argv, i, "--reps", &common->reps);
}

int bench_opt_verify(int argc, char **argv, int *i, bench_common *common) {
    (void)argc;
    if (strcmp(argv[*i], "--check") == 0) return common->check = 1;
    if (strcmp(argv[*i], "--repeat-bitwise") == 0) return common->repeat_bitwise = 1;
    return 0;
}

void bench_compare(bench_verdict *v, ffnc_dtype dtype, const void *got, const double *ref,
                   const double *scale, size_t n, double tol) {
    int passed = 1;
    for (size_t i = 0; i < n; i++) {
        double g = dtype == FFNC_F32 ? (double)((const float *)got)[i] : ((const double *)got)[i];
        double r = ref[i];
        if (isnan(g) || isnan(r)) {
            passed &= isnan(g) && isnan(r);
            continue;
        }
        double allowed = tol * (scale ? scale[i] : (fabs(r) > 1 ? fabs(r) : 1));
        double ratio = allowed > 0 ? fabs(g - r) / allowed : (g == r ? 0 : INFINITY);
        if (ratio > v->max_error) v->max_error = ratio;
        passed &= ratio <= 1;
    }
    v->check_passed = (v->checked ? v->check_passed : 1) && passed;
    v->checked = 1;
}

void bench_print_verdict(const bench_verdict *v, int json) {
    if (json) {
        if (v->checked)
            printf(", \"check\": \"%s\", \"check_max_error\": %.3g",
                   v->check_passed ? "passed" : "FAILED", v->max_error);
        if (v->repeated) printf(", \"bitwise_repeat\": %s", v->bitwise_equal ? "true" : "false");
        return;
    }
    if (v->checked)
        printf(" [check %s, max error %.2g of allowed]", v->check_passed ? "passed" : "FAILED",
               v->max_error);
    if (v->repeated) printf(" [repeat %s]", v->bitwise_equal ? "bitwise equal" : "DIFFERS");
}

int bench_verdict_failed(const bench_verdict *v) {
    return (v->checked && !v->check_passed) || (v->repeated && !v->bitwise_equal);
}

int bench_apply_common(const bench_common *common) {
    if (common->threads > 0 && ffnc_set_num_threads(common->threads) != FFNC_OK) return 1;
    return 0;
}

void *bench_random_array(ffnc_dtype dtype, size_t n, double lo, double hi, unsigned long long seed) {
    size_t width = dtype == FFNC_F32 ? sizeof(float) : sizeof(double);
    if (n > SIZE_MAX / width) {
        fprintf(stderr, "ffnc-bench: array of %zu values is too large\n", n);
        return NULL;
    }
    void *p = malloc(n * width + 1);
    if (p == NULL) {
        fprintf(stderr, "ffnc-bench: cannot allocate %zu bytes\n", n * width);
        return NULL;
    }
    unsigned long long x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        double u = lo + (hi - lo) * (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
        if (dtype == FFNC_F32) ((float *)p)[i] = (float)u;
        else ((double *)p)[i] = u;
    }
    return p;
}

const char *bench_dtype_name(ffnc_dtype dtype) { return dtype == FFNC_F32 ? "f32" : "f64"; }

/* The clock is measured with a dependent chain of integer adds (one per cycle on every x86
 * and ARM core of the last decade), so no privileged counters are needed. */
static double measured_ghz(void) {
    static double ghz;
    if (ghz > 0) return ghz;
    uint64_t x = 0;
    const uint64_t iterations = 50000000;
    double t0 = bench_now();
    /* eight dependent adds per iteration, so the loop overhead hides under the chain */
    for (uint64_t i = 0; i < iterations; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                         : "+r"(x));
#elif defined(__aarch64__)
        __asm__ volatile("add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
                         "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
                         "add %0, %0, #1\n\tadd %0, %0, #1"
                         : "+r"(x));
#else
        return 0;
#endif
    }
    double t1 = bench_now();
    ghz = (double)x / (t1 - t0) / 1e9;
    return ghz;
}

double bench_peak_gflops_per_core(ffnc_dtype dtype) {
    int lanes32;
    switch (ffnc_get_isa()) {
    case FFNC_ISA_AVX512: lanes32 = 16; break;
    case FFNC_ISA_AVX2: lanes32 = 8; break;
    default: lanes32 = 4; break; /* SSE2 baseline, mul + add (no FMA) counts the same */
    }
    int lanes = dtype == FFNC_F32 ? lanes32 : lanes32 / 2;
    /* two FMA pipes, two flops per FMA lane */
    double ghz = measured_ghz();
    return ghz > 0 ? ghz * 2.0 * 2.0 * lanes : 0;
}

void bench_json_begin(const char *op, const bench_common *common) {
    printf("{\"op\": \"%s\", \"dtype\": \"%s\", \"threads\": %d, \"isa\": \"%s\"", op,
           bench_dtype_name(common->dtype), ffnc_get_num_threads(),
           ffnc_isa_name(ffnc_get_isa()));
}
