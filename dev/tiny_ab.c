/* A/B timing of the products of a tiny network (the 2-16-2 XOR step, batch 4, float32) between
 * two builds of libffnc, in one process.
 *
 *     cc -O2 -Icsrc/include -o /tmp/tiny_ab dev/tiny_ab.c -ldl
 *     /tmp/tiny_ab build/old/libffnc.so build/new/libffnc.so
 *
 * At these sizes a call takes 50-300 ns, where Python's ctypes (dev/gemm_ab.py) would add a
 * microsecond, so the calls are made from C. Each library is loaded with dlopen (its own copy
 * of the symbols); in each of ROUNDS rounds both run CALLS calls of a case, in an order that
 * alternates between rounds, and the table gives each one's median ns per call and the median
 * over rounds of the within-round ratio A / B (> 1: B is faster), which cancels the machine's
 * drift between rounds. A development tool for choosing between kernel variants. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ffnc.h"

enum { ROUNDS = 21, CALLS = 20000 };

typedef ffnc_status (*dense_forward_fn)(ffnc_dtype, size_t, size_t, size_t, const void *,
                                        const void *, int, const void *, ffnc_activation, double,
                                        void *, void *);
typedef ffnc_status (*gemm_fn)(ffnc_dtype, int, int, size_t, size_t, size_t, double, const void *,
                               size_t, const void *, size_t, double, void *, size_t);
typedef ffnc_status (*dense_backward_fn)(ffnc_dtype, size_t, size_t, size_t, const void *,
                                         const void *, int, ffnc_activation, double, const void *,
                                         const void *, void *, void *, void *, void *, int, int);

typedef struct {
    dense_forward_fn dense_forward;
    gemm_fn gemm;
    dense_backward_fn dense_backward;
} library;

/* The step's arrays: x (4 x 2) -> h (4 x 16) -> z (4 x 2), and their gradients. */
static float x[4 * 2], w1[2 * 16], b1[16], h[4 * 16], w2[16 * 2], b2[2], z[4 * 2], g[4 * 2];
static float dw2[16 * 2], db2[2], dh[4 * 16], dpre[4 * 16], dw1[2 * 16], db1[16];

static const char *const case_names[] = {
    "dense 4x16x2 relu", "dense 4x2x16",     "gemm dW2 16x2x4 TN", "gemm dH 4x16x2 NT",
    "gemm dW1 2x16x4 TN", "dense backward 2", "dense backward 1",  "gemm 8x8x8",
};
enum { CASES = sizeof case_names / sizeof *case_names };

static ffnc_status run_case(const library *lib, int c) {
    switch (c) {
    case 0: return lib->dense_forward(FFNC_F32, 4, 16, 2, x, w1, 0, b1, FFNC_ACT_RELU, 0, NULL, h);
    case 1: return lib->dense_forward(FFNC_F32, 4, 2, 16, h, w2, 0, b2, FFNC_ACT_IDENTITY, 0, NULL, z);
    case 2: return lib->gemm(FFNC_F32, 1, 0, 16, 2, 4, 1.0, h, 16, g, 2, 0.0, dw2, 2);
    case 3: return lib->gemm(FFNC_F32, 0, 1, 4, 16, 2, 1.0, g, 2, w2, 2, 0.0, dh, 16);
    case 4: return lib->gemm(FFNC_F32, 1, 0, 2, 16, 4, 1.0, x, 2, dpre, 16, 0.0, dw1, 16);
    case 5:
        return lib->dense_backward(FFNC_F32, 4, 2, 16, h, w2, 0, FFNC_ACT_IDENTITY, 0, NULL, g,
                                   NULL, dh, dw2, db2, 0, 0);
    case 6:
        return lib->dense_backward(FFNC_F32, 4, 16, 2, x, w1, 0, FFNC_ACT_RELU, 0, h, dh, dpre,
                                   NULL, dw1, db1, 0, 0);
    default: return lib->gemm(FFNC_F32, 0, 0, 8, 8, 8, 1.0, h, 8, h, 8, 0.0, dh, 8);
    }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x_ = *(const double *)a, y_ = *(const double *)b;
    return (x_ > y_) - (x_ < y_);
}

static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, compare_doubles);
    return v[n / 2];
}

static int load(const char *path, library *lib) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        fprintf(stderr, "tiny_ab: %s\n", dlerror());
        return 0;
    }
    lib->dense_forward = (dense_forward_fn)dlsym(handle, "ffnc_dense_forward");
    lib->gemm = (gemm_fn)dlsym(handle, "ffnc_gemm");
    lib->dense_backward = (dense_backward_fn)dlsym(handle, "ffnc_dense_backward");
    if (!lib->dense_forward || !lib->gemm || !lib->dense_backward) {
        fprintf(stderr, "tiny_ab: %s lacks the ffnc API\n", path);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: tiny_ab A/libffnc.so B/libffnc.so\n");
        return 2;
    }
    library libs[2];
    if (!load(argv[1], &libs[0]) || !load(argv[2], &libs[1])) return 1;
    for (int i = 0; i < 64; i++) {
        if (i < 8) x[i] = 0.1f * (float)i, g[i] = 0.05f * (float)i;
        if (i < 32) w1[i] = 0.01f * (float)i, w2[i] = 0.02f * (float)i;
        h[i] = 0.01f * (float)i;
    }
    printf("%-20s %10s %10s %8s\n", "case", "A ns", "B ns", "A / B");
    for (int c = 0; c < CASES; c++) {
        double ns[2][ROUNDS], ratio[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            for (int turn = 0; turn < 2; turn++) {
                int v = r % 2 ? 1 - turn : turn;
                double t0 = now();
                for (int i = 0; i < CALLS; i++) {
                    if (run_case(&libs[v], c) != FFNC_OK) {
                        fprintf(stderr, "tiny_ab: %s failed in %s\n", case_names[c], argv[1 + v]);
                        return 1;
                    }
                }
                ns[v][r] = (now() - t0) / CALLS * 1e9;
            }
            ratio[r] = ns[0][r] / ns[1][r];
        }
        printf("%-20s %10.1f %10.1f %8.3f\n", case_names[c], median(ns[0], ROUNDS),
               median(ns[1], ROUNDS), median(ratio, ROUNDS));
    }
    return 0;
}
