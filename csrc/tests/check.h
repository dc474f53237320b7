/* A minimal C test harness: CHECK-style assertions that count, and a closing line
 * "N passed, N failed" that ctest and CI read. Each test_*.c is one ctest executable. */
#ifndef FFNC_CHECK_H
#define FFNC_CHECK_H

#include <math.h>
#include <stdio.h>

#include "ffnc.h"

static int check_total, check_failed;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        check_total++;                                                                  \
        if (!(cond)) {                                                                  \
            check_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);    \
        }                                                                               \
    } while (0)

#define CHECK_STATUS(expr, expected)                                                    \
    do {                                                                                \
        ffnc_status check_s_ = (expr);                                                  \
        check_total++;                                                                  \
        if (check_s_ != (expected)) {                                                   \
            check_failed++;                                                             \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n", __FILE__,      \
                    __LINE__, #expr, (int)check_s_, ffnc_status_string(check_s_),       \
                    #expected);                                                         \
        }                                                                               \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, FFNC_OK)

/* |actual - expected| <= atol + rtol |expected|, NaN equal to NaN. */
static inline int check_close_(double actual, double expected, double rtol, double atol) {
    if (isnan(actual) || isnan(expected)) return isnan(actual) && isnan(expected);
    if (actual == expected) return 1;
    return fabs(actual - expected) <= atol + rtol * fabs(expected);
}

#define CHECK_CLOSE(actual, expected, rtol, atol)                                       \
    do {                                                                                \
        double check_a_ = (actual), check_e_ = (expected);                              \
        check_total++;                                                                  \
        if (!check_close_(check_a_, check_e_, (rtol), (atol))) {                        \
            check_failed++;                                                             \
            fprintf(stderr, "%s:%d: %s = %.17g, expected %.17g\n", __FILE__, __LINE__,  \
                    #actual, check_a_, check_e_);                                       \
        }                                                                               \
    } while (0)

/* Runs the enclosed block once per ISA path this CPU supports, with that path forced. */
#define FOR_EACH_ISA(isa)                                                               \
    for (int isa = FFNC_ISA_GENERIC; isa <= FFNC_ISA_AVX512; isa++)                     \
        if (ffnc_isa_supported((ffnc_isa)isa) && ffnc_set_isa((ffnc_isa)isa) == FFNC_OK)

/* Deterministic pseudo-random doubles in [lo, hi) (xorshift64*). */
static inline double check_uniform(unsigned long long *state, double lo, double hi) {
    unsigned long long x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return lo + (hi - lo) * (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static inline int check_report(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, check_total - check_failed, check_failed);
    return check_failed != 0;
}

#endif
