/* Shared pieces of ffnc-bench: timing, statistics, argument parsing, JSON output.
 * Each subcommand lives in its own file as `int ffnc_bench_<name>(int argc, char **argv)`
 * (argv[0] is the subcommand name) and is listed in main.c. */
#ifndef FFNC_BENCH_H
#define FFNC_BENCH_H

#include <stddef.h>
#include <stdio.h>

#include "ffnc.h"

/* Seconds on a monotonic clock. */
double bench_now(void);

/* Sorts `times` (n > 0) and gives the median, min and max. */
typedef struct bench_stats {
    double median, min, max;
} bench_stats;
bench_stats bench_summarize(double *times, int n);

/* Options every subcommand shares. */
typedef struct bench_common {
    ffnc_dtype dtype;
    int threads;
    int reps;
    int json;
    int check;          /* --check: compare with a plain C reference before timing */
    int repeat_bitwise; /* --repeat-bitwise: run twice, compare the results bit for bit */
} bench_common;

/* Parses "--name value" arguments. Each returns 1 when argv[*i] is that option (consuming its
 * value and advancing *i), 0 when it is another option, -1 (after a message on stderr) when
 * the value is missing or malformed. */
int bench_opt_size(int argc, char **argv, int *i, const char *name, size_t *out);
int bench_opt_int(int argc, char **argv, int *i, const char *name, int *out);
int bench_opt_string(int argc, char **argv, int *i, const char *name, const char **out);
/* Parses --dtype, --threads, --reps, --json; same return convention. */
int bench_opt_common(int argc, char **argv, int *i, bench_common *common);
/* Parses --check and --repeat-bitwise (subcommands that verify their kernels); same return
 * convention. */
int bench_opt_verify(int argc, char **argv, int *i, bench_common *common);

/* Verification outcome of one case, printed with its timing. */
typedef struct bench_verdict {
    int checked, check_passed;   /* --check ran; it passed */
    double max_error;            /* the largest error / allowed error ratio (<= 1 passes) */
    int repeated, bitwise_equal; /* --repeat-bitwise ran; the two runs agreed */
} bench_verdict;

/* Compares n values of `dtype` with a double reference: |got - ref| <= tol * scale[i] (scale
 * NULL: tol * max(1, |ref|)); NaN must match NaN. Updates v (checked, passed, max_error). */
void bench_compare(bench_verdict *v, ffnc_dtype dtype, const void *got, const double *ref,
                   const double *scale, size_t n, double tol);
/* The verdict as JSON fields (", \"check\": ..."), or as text for the table. */
void bench_print_verdict(const bench_verdict *v, int json);
/* 0 when every verification that ran passed (the exit status). */
int bench_verdict_failed(const bench_verdict *v);

/* Applies the common options (thread count); 0 on success. */
int bench_apply_common(const bench_common *common);

/* Allocates n values of `dtype` filled with uniform values in [lo, hi) from `seed`; NULL on
 * failure (after a message). Free with free(). */
void *bench_random_array(ffnc_dtype dtype, size_t n, double lo, double hi, unsigned long long seed);

const char *bench_dtype_name(ffnc_dtype dtype);

/* Peak FMA throughput of one core in GFLOP/s for the active ISA path and dtype, estimated from
 * the vector width, two FMA pipes and a measured clock; 0 when unknown. */
double bench_peak_gflops_per_core(ffnc_dtype dtype);

/* Writes the fields every JSON record starts with: op, dtype, threads, isa. */
void bench_json_begin(const char *op, const bench_common *common);

int bench_usage_error(const char *subcommand, const char *message, const char *arg);

/* The subcommands (listed in main.c). */
int ffnc_bench_info(int argc, char **argv);       /* activation.c */
int ffnc_bench_activation(int argc, char **argv); /* activation.c */
int ffnc_bench_threshold(int argc, char **argv);  /* activation.c */
/* gemm.c */
int ffnc_bench_gemm(int argc, char **argv);
int ffnc_bench_dense(int argc, char **argv);

/* Defined in csrc/bench/mlp.c: a whole training step as a plan. */
int ffnc_bench_mlp(int argc, char **argv);
/* suite.c: the softmax cross-entropy and optimizer-update kernels, and the standard suite. */
int ffnc_bench_softmax_xent(int argc, char **argv);
int ffnc_bench_update(int argc, char **argv);
int ffnc_bench_all(int argc, char **argv);

#endif
