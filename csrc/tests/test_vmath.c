/* The vectorizable exp/expm1 (csrc/kernels/vmath.h) against libm, in ulps, over the whole
 * range, near 0, at the overflow and underflow ends, and for NaN and infinities. */
#include <float.h>
#include <stdlib.h>

#include "check.h"
#include "../kernels/vmath.h"

static double ulps_f32(float got, double want) {
    if (isnan(want) || isnan(got)) return isnan(got) && isnan(want) ? 0 : 1e30;
    if (isinf(want) || want == 0) return got == (float)want ? 0 : 1e30;
    double ulp = fabs((double)nextafterf((float)fabs(want), INFINITY) - (double)(float)fabs(want));
    if (fabs(want) < FLT_MIN) ulp = FLT_TRUE_MIN;
    return fabs((double)got - want) / ulp;
}

static double ulps_f64(double got, long double want) {
    if (isnan(want) || isnan(got)) return isnan(got) && isnan(want) ? 0 : 1e30;
    if (isinf(want) || want == 0) return got == (double)want ? 0 : 1e30;
    double w = fabs((double)want);
    double ulp = w < DBL_MIN ? DBL_TRUE_MIN : nextafter(w, INFINITY) - w;
    return (double)(fabsl((long double)got - want) / ulp);
}

static void sweep_f32(float lo, float hi, int steps, double *worst_exp, double *worst_expm1) {
    for (int i = 0; i <= steps; i++) {
        float x = lo + (hi - lo) * (float)i / (float)steps;
        double e = ulps_f32(ffnc_vexp_f32(x), exp((double)x));
        double m = ulps_f32(ffnc_vexpm1_f32(x), expm1((double)x));
        if (e > *worst_exp) *worst_exp = e;
        if (m > *worst_expm1) *worst_expm1 = m;
    }
}

static void sweep_f64(double lo, double hi, int steps, double *worst_exp, double *worst_expm1) {
    for (int i = 0; i <= steps; i++) {
        double x = lo + (hi - lo) * (double)i / (double)steps;
        double e = ulps_f64(ffnc_vexp_f64(x), expl((long double)x));
        double m = ulps_f64(ffnc_vexpm1_f64(x), expm1l((long double)x));
        if (e > *worst_exp) *worst_exp = e;
        if (m > *worst_expm1) *worst_expm1 = m;
    }
}

int main(void) {
    double e32 = 0, m32 = 0, e64 = 0, m64 = 0;
    sweep_f32(-110.0f, 95.0f, 2000003, &e32, &m32);
    sweep_f32(-1e-3f, 1e-3f, 200001, &e32, &m32);
    sweep_f32(-1e-30f, 1e-30f, 2001, &e32, &m32);
    sweep_f32(88.0f, 88.8f, 200001, &e32, &m32); /* where 2^n alone overflows */
    sweep_f64(-750.0, 715.0, 2000003, &e64, &m64);
    sweep_f64(-1e-3, 1e-3, 200001, &e64, &m64);
    sweep_f64(-1e-300, 1e-300, 2001, &e64, &m64);
    sweep_f64(709.0, 709.9, 200001, &e64, &m64);
    printf("worst error: exp f32 %.2f ulp, expm1 f32 %.2f ulp, exp f64 %.2f ulp, expm1 f64 %.2f ulp\n",
           e32, m32, e64, m64);
    CHECK(e32 <= 2.0);
    CHECK(m32 <= 2.0);
    CHECK(e64 <= 2.0);
    CHECK(m64 <= 2.0);

    CHECK(isnan(ffnc_vexp_f32(NAN)) && isnan(ffnc_vexpm1_f32(NAN)));
    CHECK(isnan(ffnc_vexp_f64(NAN)) && isnan(ffnc_vexpm1_f64(NAN)));
    CHECK(ffnc_vexp_f32(INFINITY) == INFINITY && ffnc_vexp_f32(-INFINITY) == 0.0f);
    CHECK(ffnc_vexpm1_f32(INFINITY) == INFINITY && ffnc_vexpm1_f32(-INFINITY) == -1.0f);
    CHECK(ffnc_vexp_f64(INFINITY) == INFINITY && ffnc_vexp_f64(-INFINITY) == 0.0);
    CHECK(ffnc_vexpm1_f64(INFINITY) == INFINITY && ffnc_vexpm1_f64(-INFINITY) == -1.0);
    CHECK(ffnc_vexp_f32(0.0f) == 1.0f && ffnc_vexp_f64(0.0) == 1.0);
    CHECK(ffnc_vexpm1_f64(1e-300) == 1e-300);
    return check_report("vmath");
}
