/* AVX2 + FMA micro-kernels: 6 x 16 floats and 6 x 8 doubles.
 *
 * Twelve ymm accumulators (6 rows x 2 vectors), two for the B row and one for the broadcast A
 * value: 15 of the 16 registers. Each k step is 2 loads of B, 6 broadcasts and 12 FMAs, so the
 * two FMA pipes of a Zen 3 or Haswell-class core stay busy while the loads use the two load
 * ports at well under half rate. The packed panels are read strictly sequentially, which the
 * hardware prefetchers follow. */
#include <immintrin.h>

#include "ffnc.h"
#include "pack_avx2.h"

#define GEMM_MR_f32 6
#define GEMM_NR_f32 16
#define GEMM_MR_f64 6
#define GEMM_NR_f64 8

/* MC: the packed A block (MC x KC) should stay in a 512 KiB L2 next to the packed B panels
 * streaming through it: 144 x 320 x 4 bytes = 180 KiB (f32), 72 x 256 x 8 = 144 KiB (f64). */
#define GEMM_MC_f32 144
#define GEMM_MC_f64 72

/* dst[0:NR] = src[0:NR]; dst is 32-byte aligned (a packed panel row). Two full-width moves:
 * memcpy is inlined as 16-byte moves under the generic tuning. */
static inline void gemm_copy_row_f32(float *restrict dst, const float *restrict src) {
    _mm256_store_ps(dst, _mm256_loadu_ps(src));
    _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + 8));
}
static inline void gemm_copy_row_f64(double *restrict dst, const double *restrict src) {
    _mm256_store_pd(dst, _mm256_loadu_pd(src));
    _mm256_store_pd(dst + 4, _mm256_loadu_pd(src + 4));
}

/* Full row panels of an untransposed A are packed by gemm_pack_a_rows_* (pack_avx2.h). */
#define GEMM_PACK_A_ROWS 1

/* Columns per call of gemm_pack_bt_* (pack_avx2.h): one register transpose wide. */
#define GEMM_PACK_BT_UNIT_f32 8
#define GEMM_PACK_BT_UNIT_f64 4

/* The k loop of a micro-kernel around STEP (one k step), four steps per iteration, with one
 * probe of the prefetch stream per iteration while the call's share lasts (the rest, for a
 * short kc, after the loop). */
#define GEMM_AVX2_K_LOOP(STEP)                                                                 \
    size_t pf_todo = gemm_prefetch_share(pf);                                                  \
    gemm_prefetch pf_lane = pf ? *pf : (gemm_prefetch){0};                                     \
    size_t p = 0;                                                                              \
    for (; p + 4 <= kc; p += 4) {                                                              \
        if (pf_todo) {                                                                         \
            gemm_prefetch_next(&pf_lane);                                                      \
            pf_todo--;                                                                         \
        }                                                                                      \
        STEP;                                                                                  \
        STEP;                                                                                  \
        STEP;                                                                                  \
        STEP;                                                                                  \
    }                                                                                          \
    for (; p < kc; p++) STEP;                                                                  \
    if (pf) {                                                                                  \
        gemm_prefetch_burst(&pf_lane, pf_todo);                                                \
        *pf = pf_lane;                                                                         \
    }

/* One k step of an h-row tile (h = 6, or 4 for the last rows of a block): two vectors of the
 * B micro-panel's row, then each row's A value broadcast against both. VT is the vector type,
 * S its intrinsic suffix, BC the broadcast's, W the lanes of one vector. */
#define GEMM_AVX2_FMA_ROW(BC, S, i)                                                            \
    a = _mm256_broadcast_##BC(pa + i);                                                         \
    c##i##0 = _mm256_fmadd_##S(a, b0, c##i##0);                                                \
    c##i##1 = _mm256_fmadd_##S(a, b1, c##i##1)
#define GEMM_AVX2_FMA_ROWS_4(BC, S)                                                            \
    GEMM_AVX2_FMA_ROW(BC, S, 0);                                                               \
    GEMM_AVX2_FMA_ROW(BC, S, 1);                                                               \
    GEMM_AVX2_FMA_ROW(BC, S, 2);                                                               \
    GEMM_AVX2_FMA_ROW(BC, S, 3)
#define GEMM_AVX2_FMA_ROWS_6(BC, S)                                                            \
    GEMM_AVX2_FMA_ROWS_4(BC, S);                                                               \
    GEMM_AVX2_FMA_ROW(BC, S, 4);                                                               \
    GEMM_AVX2_FMA_ROW(BC, S, 5)
#define GEMM_AVX2_STEP(h, VT, S, BC, W)                                                        \
    do {                                                                                       \
        VT b0 = _mm256_loadu_##S(pb), b1 = _mm256_loadu_##S(pb + W), a;                        \
        GEMM_AVX2_FMA_ROWS_##h(BC, S);                                                         \
        pa += h;                                                                               \
        pb += 2 * W;                                                                           \
    } while (0)
#define GEMM_AVX2_STEP_F32 GEMM_AVX2_STEP(6, __m256, ps, ss, 8)
#define GEMM_AVX2_STEP_F64 GEMM_AVX2_STEP(6, __m256d, pd, sd, 4)
#define GEMM_AVX2_STEP_SMALL_F32 GEMM_AVX2_STEP(4, __m256, ps, ss, 8)
#define GEMM_AVX2_STEP_SMALL_F64 GEMM_AVX2_STEP(4, __m256d, pd, sd, 4)

#define GEMM_AVX2_LOOP_F32 \
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(); \
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps(); \
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(); \
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(); \
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(); \
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps(); \
    GEMM_AVX2_K_LOOP(GEMM_AVX2_STEP_F32)

/* tile (MR x NR, row-major, 32-byte aligned) = sum over p < kc of pa[p][:] outer pb[p][:]. */
GEMM_MICRO_KERNEL void gemm_ukernel_f32(size_t kc, const float *restrict pa,
                                        const float *restrict pb, float *restrict tile,
                                        gemm_prefetch *pf) {
    GEMM_AVX2_LOOP_F32;
    _mm256_store_ps(tile + 0, c00);
    _mm256_store_ps(tile + 8, c01);
    _mm256_store_ps(tile + 16, c10);
    _mm256_store_ps(tile + 24, c11);
    _mm256_store_ps(tile + 32, c20);
    _mm256_store_ps(tile + 40, c21);
    _mm256_store_ps(tile + 48, c30);
    _mm256_store_ps(tile + 56, c31);
    _mm256_store_ps(tile + 64, c40);
    _mm256_store_ps(tile + 72, c41);
    _mm256_store_ps(tile + 80, c50);
    _mm256_store_ps(tile + 88, c51);
}

#define GEMM_AVX2_LOOP_F64 \
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd(); \
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd(); \
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd(); \
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd(); \
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd(); \
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd(); \
    GEMM_AVX2_K_LOOP(GEMM_AVX2_STEP_F64)

GEMM_MICRO_KERNEL void gemm_ukernel_f64(size_t kc, const double *restrict pa,
                                        const double *restrict pb, double *restrict tile,
                                        gemm_prefetch *pf) {
    GEMM_AVX2_LOOP_F64;
    _mm256_store_pd(tile + 0, c00);
    _mm256_store_pd(tile + 4, c01);
    _mm256_store_pd(tile + 8, c10);
    _mm256_store_pd(tile + 12, c11);
    _mm256_store_pd(tile + 16, c20);
    _mm256_store_pd(tile + 20, c21);
    _mm256_store_pd(tile + 24, c30);
    _mm256_store_pd(tile + 28, c31);
    _mm256_store_pd(tile + 32, c40);
    _mm256_store_pd(tile + 36, c41);
    _mm256_store_pd(tile + 40, c50);
    _mm256_store_pd(tile + 44, c51);
}

/* ---- storing a full tile straight from the accumulators ------------------------------------
 * c = alpha acc (+ beta c), the operations of update_row in gemm.tmpl.h (a multiply and an add,
 * rounded separately), then the dense layer's epilogue of epilogue_row there: + bias, a copy to
 * pre_act, and one of the exact activations (activate_row), each the same operation on the
 * same values, so the result is the same bits as through the tile buffer (and so is the SGD
 * step of epilogue_row when update is not NULL). This skips the round trip through the buffer
 * and the scalar epilogue, which cost 10-20% of a dense layer's GEMM
 * (M = 128, K = N = 512) and matters most when kc is small (dW of a small batch has k =
 * batch). bias and pre point at the tile's column (and row) or are NULL; act is
 * FFNC_ACT_IDENTITY for no activation (the non-exact ones are applied after the block). */

#define GEMM_V(op, S) _mm256_##op##_##S

/* x -> act(x), lane by lane, as the expressions of activate_row: comparisons are ordered and
 * false for NaN, which then passes through as it does there. */
#define GEMM_AVX2_ACTIVATE(VT, S, T)                                                            \
    static inline VT gemm_activate_##T(ffnc_activation act, VT act_alpha, VT x) {              \
        VT zero = GEMM_V(setzero, S)();                                                        \
        switch (act) {                                                                         \
        case FFNC_ACT_RELU: /* x <= 0 ? 0 : x */                                               \
            return GEMM_V(blendv, S)(x, zero, GEMM_V(cmp, S)(x, zero, _CMP_LE_OQ));            \
        case FFNC_ACT_LEAKY_RELU: /* x > 0 ? x : alpha x */                                    \
            return GEMM_V(blendv, S)(GEMM_V(mul, S)(act_alpha, x), x,                          \
                                     GEMM_V(cmp, S)(x, zero, _CMP_GT_OQ));                     \
        case FFNC_ACT_ABS: /* fabs: the sign bit cleared */                                    \
            return GEMM_V(andnot, S)(GEMM_V(set1, S)(-0.0), x);                                \
        case FFNC_ACT_HARD_TANH: { /* x < -1 ? -1 : (x > 1 ? 1 : x) */                         \
            VT one = GEMM_V(set1, S)(1), minus_one = GEMM_V(set1, S)(-1);                      \
            VT y = GEMM_V(blendv, S)(x, one, GEMM_V(cmp, S)(x, one, _CMP_GT_OQ));              \
            return GEMM_V(blendv, S)(y, minus_one, GEMM_V(cmp, S)(x, minus_one, _CMP_LT_OQ));  \
        }                                                                                      \
        default: return x;                                                                     \
        }                                                                                      \
    }
GEMM_AVX2_ACTIVATE(__m256, ps, f32)
GEMM_AVX2_ACTIVATE(__m256d, pd, f64)
#undef GEMM_AVX2_ACTIVATE

/* One row of the tile, two vectors of W values: lo, hi are the accumulators. */
#define GEMM_AVX2_STORE_ROW(T, VT, S, W, row, lo, hi)                                             \
    do {                                                                                       \
        REALT *cr = c + (row) * ldc;                                                           \
        VT x0 = GEMM_V(mul, S)(va, lo), x1 = GEMM_V(mul, S)(va, hi);                           \
        if (beta != 0) {                                                                       \
            x0 = GEMM_V(add, S)(x0, GEMM_V(mul, S)(vb, GEMM_V(loadu, S)(cr)));                 \
            x1 = GEMM_V(add, S)(x1, GEMM_V(mul, S)(vb, GEMM_V(loadu, S)(cr + W)));             \
        }                                                                                      \
        if (bias) {                                                                            \
            x0 = GEMM_V(add, S)(x0, bias0);                                                    \
            x1 = GEMM_V(add, S)(x1, bias1);                                                    \
        }                                                                                      \
        if (pre) {                                                                             \
            GEMM_V(storeu, S)(pre + (row) * ld_pre, x0);                                       \
            GEMM_V(storeu, S)(pre + (row) * ld_pre + W, x1);                                   \
        }                                                                                      \
        x0 = gemm_activate_##T(act, vact, x0);                                                 \
        x1 = gemm_activate_##T(act, vact, x1);                                                 \
        GEMM_V(storeu, S)(cr, x0);                                                             \
        GEMM_V(storeu, S)(cr + W, x1);                                                         \
        if (update) { /* the SGD step: u - rate c, rounded as ffnc_sgd_update */              \
            REALT *ur = update + (row) * ld_update;                                            \
            VT u0 = GEMM_V(loadu, S)(ur), u1 = GEMM_V(loadu, S)(ur + W);                       \
            GEMM_V(storeu, S)(ur, GEMM_V(sub, S)(u0, GEMM_V(mul, S)(vrate, x0)));              \
            GEMM_V(storeu, S)(ur + W, GEMM_V(sub, S)(u1, GEMM_V(mul, S)(vrate, x1)));          \
        }                                                                                      \
    } while (0)

#define GEMM_AVX2_UKERNEL_C(T, REAL_T, VT, S, W, LOOP)                                         \
    GEMM_MICRO_KERNEL void gemm_ukernel_c_##T(                                                 \
        size_t kc, const REAL_T *restrict pa, const REAL_T *restrict pb, REAL_T alpha,         \
        REAL_T beta, REAL_T *restrict c, size_t ldc, const REAL_T *bias, REAL_T *restrict pre, \
        size_t ld_pre, ffnc_activation act, REAL_T act_alpha, REAL_T *restrict update,         \
        size_t ld_update, REAL_T rate, gemm_prefetch *pf) {                                    \
        typedef REAL_T REALT;                                                                  \
        LOOP;                                                                                  \
        VT va = GEMM_V(set1, S)(alpha), vb = GEMM_V(set1, S)(beta);                            \
        VT vrate = GEMM_V(set1, S)(rate);                                                      \
        VT vact = GEMM_V(set1, S)(act_alpha);                                                  \
        VT bias0 = GEMM_V(setzero, S)(), bias1 = bias0;                                        \
        if (bias) {                                                                            \
            bias0 = GEMM_V(loadu, S)(bias);                                                    \
            bias1 = GEMM_V(loadu, S)(bias + W);                                                \
        }                                                                                      \
        GEMM_AVX2_STORE_ROW(T, VT, S, W, 0, c00, c01);                                         \
        GEMM_AVX2_STORE_ROW(T, VT, S, W, 1, c10, c11);                                         \
        GEMM_AVX2_STORE_ROW(T, VT, S, W, 2, c20, c21);                                         \
        GEMM_AVX2_STORE_ROW(T, VT, S, W, 3, c30, c31);                                         \
        GEMM_AVX2_STORE_ROW(T, VT, S, W, 4, c40, c41);                                         \
        GEMM_AVX2_STORE_ROW(T, VT, S, W, 5, c50, c51);                                         \
    }
GEMM_AVX2_UKERNEL_C(f32, float, __m256, ps, 8, GEMM_AVX2_LOOP_F32)
GEMM_AVX2_UKERNEL_C(f64, double, __m256d, pd, 4, GEMM_AVX2_LOOP_F64)
#undef GEMM_AVX2_UKERNEL_C
#undef GEMM_AVX2_STORE_ROW
#undef GEMM_V

/* The path stores full tiles straight from the accumulators (gemm_ukernel_c_*). */
#define GEMM_DIRECT_C 1

/* 4-row micro-kernels for the last rows of a block (see small_panels in gemm.tmpl.h): eight
 * accumulators, still enough independent FMAs to cover the FMA latency of both pipes. */
#define GEMM_MR_SMALL_f32 4
#define GEMM_MR_SMALL_f64 4

GEMM_MICRO_KERNEL void gemm_ukernel_small_f32(size_t kc, const float *restrict pa,
                                              const float *restrict pb, float *restrict tile,
                                              gemm_prefetch *pf) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    GEMM_AVX2_K_LOOP(GEMM_AVX2_STEP_SMALL_F32)
    _mm256_store_ps(tile + 0, c00);
    _mm256_store_ps(tile + 8, c01);
    _mm256_store_ps(tile + 16, c10);
    _mm256_store_ps(tile + 24, c11);
    _mm256_store_ps(tile + 32, c20);
    _mm256_store_ps(tile + 40, c21);
    _mm256_store_ps(tile + 48, c30);
    _mm256_store_ps(tile + 56, c31);
}

GEMM_MICRO_KERNEL void gemm_ukernel_small_f64(size_t kc, const double *restrict pa,
                                              const double *restrict pb, double *restrict tile,
                                              gemm_prefetch *pf) {
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    GEMM_AVX2_K_LOOP(GEMM_AVX2_STEP_SMALL_F64)
    _mm256_store_pd(tile + 0, c00);
    _mm256_store_pd(tile + 4, c01);
    _mm256_store_pd(tile + 8, c10);
    _mm256_store_pd(tile + 12, c11);
    _mm256_store_pd(tile + 16, c20);
    _mm256_store_pd(tile + 20, c21);
    _mm256_store_pd(tile + 24, c30);
    _mm256_store_pd(tile + 28, c31);
}
