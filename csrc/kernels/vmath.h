/*
 * Vectorizable exp and expm1 for float and double.
 *
 * libm's expf/tanh are calls the compiler cannot vectorize (without -ffast-math, which ffnc
 * does not use), so an element-wise tanh or sigmoid costs tens of cycles per value. These
 * versions are branch-free inline code (selects, integer bit tricks, Horner polynomials), so
 * the loops that call them vectorize at the width of each ISA path.
 *
 * Method: x = n ln2 + r with n = rint(x / ln2) and |r| <= ln2/2 (Cody-Waite: ln2 split into a
 * part whose products with n are exact and a small correction); expm1(r) by its Taylor series
 * to the degree where the first omitted term is below half an ulp (8 for float, 14 for
 * double); then exp(x) = 2^n (1 + expm1(r)) and expm1(x) = 2^n expm1(r) + (2^n - 1), which is
 * exact in the second term and keeps full relative accuracy near 0 (n = 0, r = x). 2^n is
 * built from its bits in two halves so that results down into the subnormal range are right.
 * Accuracy against libm (csrc/tests/test_vmath.c): within 2 ulp over the whole range.
 * Overflow gives +inf, underflow 0 (exp) or -1 (expm1), NaN gives NaN.
 */
#ifndef FFNC_VMATH_H
#define FFNC_VMATH_H

#include <stdint.h>
#include <string.h>

/* A multiply and an add, rounded separately even where FMA exists (ISO C mode keeps the
 * compiler from contracting them): every ISA path then computes the same bits, so element-wise
 * results do not depend on the machine. */
#define FFNC_MADD_F32(a, b, c) ((a) * (b) + (c))
#define FFNC_MADD_F64(a, b, c) ((a) * (b) + (c))

/* ---- float ---------------------------------------------------------------------------- */

/* n = rint(x / ln2) as a float, and its integer value, via the 1.5 * 2^23 shifter: adding it
 * rounds to an integer in the current (nearest) mode and leaves the integer in the low
 * mantissa bits. Valid for |x / ln2| < 2^22. */
static inline float ffnc_exp_reduce_f32(float x, int32_t *n_int, float *r) {
    const float shifter = 12582912.0f;
    float t = x * 1.44269504088896341f + shifter;
    int32_t t_bits, shifter_bits;
    memcpy(&t_bits, &t, sizeof t);
    memcpy(&shifter_bits, &shifter, sizeof shifter);
    *n_int = t_bits - shifter_bits;
    float n = t - shifter;
    *r = FFNC_MADD_F32(n, 2.12194440e-4f, FFNC_MADD_F32(n, -0.693359375f, x));
    return n;
}

/* expm1(r) for |r| <= ln2/2. */
static inline float ffnc_expm1_poly_f32(float r) {
    float p = 1.0f / 40320;
    p = FFNC_MADD_F32(p, r, 1.0f / 5040);
    p = FFNC_MADD_F32(p, r, 1.0f / 720);
    p = FFNC_MADD_F32(p, r, 1.0f / 120);
    p = FFNC_MADD_F32(p, r, 1.0f / 24);
    p = FFNC_MADD_F32(p, r, 1.0f / 6);
    p = FFNC_MADD_F32(p, r, 0.5f);
    return FFNC_MADD_F32(p * r, r, r);
}

/* 2^k for -126 <= k <= 127, from its bits. */
static inline float ffnc_pow2_f32(int32_t k) {
    int32_t bits = (k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float ffnc_vexp_f32(float x) {
    /* Clamp so that n stays in [-150, 128], NaN to 0 so the integer steps stay defined; the
     * selects below fix the ends and return the NaN. */
    float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : (x != x ? 0.0f : x));
    int32_t n;
    float r;
    ffnc_exp_reduce_f32(xc, &n, &r);
    float p = ffnc_expm1_poly_f32(r);
    int32_t half = n >> 1; /* 2^n = 2^half * 2^(n - half), each factor a normal float */
    float y = ((1.0f + p) * ffnc_pow2_f32(half)) * ffnc_pow2_f32(n - half);
    y = x > 88.72283905206835f ? __builtin_inff() : y;
    y = x < -103.972077083991796f ? 0.0f : y;
    return x != x ? x : y;
}

static inline float ffnc_vexpm1_f32(float x) {
    float xc = x < -30.0f ? -30.0f : (x > 89.0f ? 89.0f : (x != x ? 0.0f : x));
    int32_t n;
    float r;
    ffnc_exp_reduce_f32(xc, &n, &r);
    float p = ffnc_expm1_poly_f32(r);
    int32_t half = n >> 1;
    float s1 = ffnc_pow2_f32(half), s2 = ffnc_pow2_f32(n - half);
    /* For n > 24 the -1 is below half an ulp of the result: take exp's form, which also
     * stays finite up to the overflow threshold where 2^n alone (n = 128) would not. */
    float large = ((1.0f + p) * s1) * s2 - 1.0f;
    float scale = s1 * s2;
    float y = n > 24 ? large : FFNC_MADD_F32(p, scale, scale - 1.0f);
    y = x > 88.72283905206835f ? __builtin_inff() : y;
    y = x < -30.0f ? -1.0f : y;
    return x != x ? x : y;
}

/* ---- double --------------------------------------------------------------------------- */

static inline double ffnc_exp_reduce_f64(double x, int64_t *n_int, double *r) {
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52 */
    double t = x * 1.4426950408889634074 + shifter;
    int64_t t_bits, shifter_bits;
    memcpy(&t_bits, &t, sizeof t);
    memcpy(&shifter_bits, &shifter, sizeof shifter);
    *n_int = t_bits - shifter_bits;
    double n = t - shifter;
    *r = FFNC_MADD_F64(n, -1.90821492927058770002e-10, FFNC_MADD_F64(n, -6.93147180369123816490e-01, x));
    return n;
}

static inline double ffnc_expm1_poly_f64(double r) {
    double p = 1.0 / 87178291200.0; /* 1/14! */
    p = FFNC_MADD_F64(p, r, 1.0 / 6227020800.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 479001600.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 39916800.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 3628800.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 362880.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 40320.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 5040.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 720.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 120.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 24.0);
    p = FFNC_MADD_F64(p, r, 1.0 / 6.0);
    p = FFNC_MADD_F64(p, r, 0.5);
    return FFNC_MADD_F64(p * r, r, r);
}

static inline double ffnc_pow2_f64(int64_t k) {
    int64_t bits = (k + 1023) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static inline double ffnc_vexp_f64(double x) {
    double xc = x < -746.0 ? -746.0 : (x > 710.0 ? 710.0 : (x != x ? 0.0 : x));
    int64_t n;
    double r;
    ffnc_exp_reduce_f64(xc, &n, &r);
    double p = ffnc_expm1_poly_f64(r);
    int64_t half = n >> 1;
    double y = ((1.0 + p) * ffnc_pow2_f64(half)) * ffnc_pow2_f64(n - half);
    y = x > 709.782712893383973 ? __builtin_inf() : y;
    y = x < -745.133219101941108 ? 0.0 : y;
    return x != x ? x : y;
}

static inline double ffnc_vexpm1_f64(double x) {
    double xc = x < -40.0 ? -40.0 : (x > 710.0 ? 710.0 : (x != x ? 0.0 : x));
    int64_t n;
    double r;
    ffnc_exp_reduce_f64(xc, &n, &r);
    double p = ffnc_expm1_poly_f64(r);
    int64_t half = n >> 1;
    double s1 = ffnc_pow2_f64(half), s2 = ffnc_pow2_f64(n - half);
    double large = ((1.0 + p) * s1) * s2 - 1.0;
    double scale = s1 * s2;
    double y = n > 53 ? large : FFNC_MADD_F64(p, scale, scale - 1.0);
    y = x > 709.782712893383973 ? __builtin_inf() : y;
    y = x < -40.0 ? -1.0 : y;
    return x != x ? x : y;
}

#endif
