/* AVX2 + FMA micro-kernels: 6 x 16 floats and 6 x 8 doubles.
 *
 * Twelve ymm accumulators (6 rows x 2 vectors), two for the B row and one for the broadcast A
 * value: 15 of the 16 registers. Each k step is 2 loads of B, 6 broadcasts and 12 FMAs, so the
 * two FMA pipes of a Zen 3 or Haswell-class core stay busy while the loads use the two load
 * ports at well under half rate. The packed panels are read strictly sequentially, which the
 * hardware prefetchers follow. */
#include <immintrin.h>

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

/* Columns per call of gemm_pack_bt_* (pack_avx2.h): one register transpose wide. */
#define GEMM_PACK_BT_UNIT_f32 8
#define GEMM_PACK_BT_UNIT_f64 4

#define GEMM_AVX2_LOOP_F32 \
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(); \
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps(); \
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(); \
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(); \
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(); \
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps(); \
_Pragma("GCC unroll 4") \
    for (size_t p = 0; p < kc; p++) { \
        __m256 b0 = _mm256_loadu_ps(pb), b1 = _mm256_loadu_ps(pb + 8); \
        __m256 a; \
        a = _mm256_broadcast_ss(pa + 0); \
        c00 = _mm256_fmadd_ps(a, b0, c00); \
        c01 = _mm256_fmadd_ps(a, b1, c01); \
        a = _mm256_broadcast_ss(pa + 1); \
        c10 = _mm256_fmadd_ps(a, b0, c10); \
        c11 = _mm256_fmadd_ps(a, b1, c11); \
        a = _mm256_broadcast_ss(pa + 2); \
        c20 = _mm256_fmadd_ps(a, b0, c20); \
        c21 = _mm256_fmadd_ps(a, b1, c21); \
        a = _mm256_broadcast_ss(pa + 3); \
        c30 = _mm256_fmadd_ps(a, b0, c30); \
        c31 = _mm256_fmadd_ps(a, b1, c31); \
        a = _mm256_broadcast_ss(pa + 4); \
        c40 = _mm256_fmadd_ps(a, b0, c40); \
        c41 = _mm256_fmadd_ps(a, b1, c41); \
        a = _mm256_broadcast_ss(pa + 5); \
        c50 = _mm256_fmadd_ps(a, b0, c50); \
        c51 = _mm256_fmadd_ps(a, b1, c51); \
        pa += 6; \
        pb += 16; \
    } \
    (void)0

/* tile (MR x NR, row-major, 32-byte aligned) = sum over p < kc of pa[p][:] outer pb[p][:]. */
static inline void gemm_ukernel_f32(size_t kc, const float *restrict pa, const float *restrict pb,
                                    float *restrict tile) {
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

/* The same product stored straight into a full 6 x 16 tile of C: c = alpha acc (+ beta c),
 * the operations of update_row in gemm.tmpl.h (a multiply and an add, rounded separately), so
 * the result is the same bits; skips the round trip through the tile buffer, which matters
 * when kc is small (dW of a small batch has k = batch). */
static inline void gemm_ukernel_c_f32(size_t kc, const float *restrict pa,
                                      const float *restrict pb, float alpha, float beta,
                                      float *restrict c, size_t ldc) {
    GEMM_AVX2_LOOP_F32;
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#define GEMM_AVX2_STORE(row, lo, hi)                                                           \
    do {                                                                                   \
        float *cr = c + (row) * ldc;                                                       \
        if (beta == 0) {                                                                   \
            _mm256_storeu_ps(cr, _mm256_mul_ps(va, lo));                                   \
            _mm256_storeu_ps(cr + 8, _mm256_mul_ps(va, hi));                               \
        } else {                                                                           \
            _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_mul_ps(va, lo),                      \
                                               _mm256_mul_ps(vb, _mm256_loadu_ps(cr))));   \
            _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_mul_ps(va, hi),                  \
                                                   _mm256_mul_ps(vb, _mm256_loadu_ps(cr + 8)))); \
        }                                                                                  \
    } while (0)
    GEMM_AVX2_STORE(0, c00, c01);
    GEMM_AVX2_STORE(1, c10, c11);
    GEMM_AVX2_STORE(2, c20, c21);
    GEMM_AVX2_STORE(3, c30, c31);
    GEMM_AVX2_STORE(4, c40, c41);
    GEMM_AVX2_STORE(5, c50, c51);
#undef GEMM_AVX2_STORE
}
#define GEMM_AVX2_LOOP_F64 \
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd(); \
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd(); \
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd(); \
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd(); \
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd(); \
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd(); \
_Pragma("GCC unroll 4") \
    for (size_t p = 0; p < kc; p++) { \
        __m256d b0 = _mm256_loadu_pd(pb), b1 = _mm256_loadu_pd(pb + 4); \
        __m256d a; \
        a = _mm256_broadcast_sd(pa + 0); \
        c00 = _mm256_fmadd_pd(a, b0, c00); \
        c01 = _mm256_fmadd_pd(a, b1, c01); \
        a = _mm256_broadcast_sd(pa + 1); \
        c10 = _mm256_fmadd_pd(a, b0, c10); \
        c11 = _mm256_fmadd_pd(a, b1, c11); \
        a = _mm256_broadcast_sd(pa + 2); \
        c20 = _mm256_fmadd_pd(a, b0, c20); \
        c21 = _mm256_fmadd_pd(a, b1, c21); \
        a = _mm256_broadcast_sd(pa + 3); \
        c30 = _mm256_fmadd_pd(a, b0, c30); \
        c31 = _mm256_fmadd_pd(a, b1, c31); \
        a = _mm256_broadcast_sd(pa + 4); \
        c40 = _mm256_fmadd_pd(a, b0, c40); \
        c41 = _mm256_fmadd_pd(a, b1, c41); \
        a = _mm256_broadcast_sd(pa + 5); \
        c50 = _mm256_fmadd_pd(a, b0, c50); \
        c51 = _mm256_fmadd_pd(a, b1, c51); \
        pa += 6; \
        pb += 8; \
    } \
    (void)0

static inline void gemm_ukernel_f64(size_t kc, const double *restrict pa,
                                    const double *restrict pb, double *restrict tile) {
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

static inline void gemm_ukernel_c_f64(size_t kc, const double *restrict pa,
                                      const double *restrict pb, double alpha, double beta,
                                      double *restrict c, size_t ldc) {
    GEMM_AVX2_LOOP_F64;
    __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
#define GEMM_AVX2_STORE(row, lo, hi)                                                           \
    do {                                                                                   \
        double *cr = c + (row) * ldc;                                                      \
        if (beta == 0) {                                                                   \
            _mm256_storeu_pd(cr, _mm256_mul_pd(va, lo));                                   \
            _mm256_storeu_pd(cr + 4, _mm256_mul_pd(va, hi));                               \
        } else {                                                                           \
            _mm256_storeu_pd(cr, _mm256_add_pd(_mm256_mul_pd(va, lo),                      \
                                               _mm256_mul_pd(vb, _mm256_loadu_pd(cr))));   \
            _mm256_storeu_pd(cr + 4, _mm256_add_pd(_mm256_mul_pd(va, hi),                  \
                                                   _mm256_mul_pd(vb, _mm256_loadu_pd(cr + 4)))); \
        }                                                                                  \
    } while (0)
    GEMM_AVX2_STORE(0, c00, c01);
    GEMM_AVX2_STORE(1, c10, c11);
    GEMM_AVX2_STORE(2, c20, c21);
    GEMM_AVX2_STORE(3, c30, c31);
    GEMM_AVX2_STORE(4, c40, c41);
    GEMM_AVX2_STORE(5, c50, c51);
#undef GEMM_AVX2_STORE
}

/* The path stores full tiles straight from the accumulators (gemm_ukernel_c_*). */
#define GEMM_DIRECT_C 1

/* 4-row micro-kernels for the last rows of a block (see small_panels in gemm.tmpl.h): eight
 * accumulators, still enough independent FMAs to cover the FMA latency of both pipes. */
#define GEMM_MR_SMALL_f32 4
#define GEMM_MR_SMALL_f64 4

static inline void gemm_ukernel_small_f32(size_t kc, const float *restrict pa,
                                          const float *restrict pb, float *restrict tile) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (size_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(pb), b1 = _mm256_loadu_ps(pb + 8);
        __m256 a;
        a = _mm256_broadcast_ss(pa + 0);
        c00 = _mm256_fmadd_ps(a, b0, c00);
        c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(pa + 1);
        c10 = _mm256_fmadd_ps(a, b0, c10);
        c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(pa + 2);
        c20 = _mm256_fmadd_ps(a, b0, c20);
        c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(pa + 3);
        c30 = _mm256_fmadd_ps(a, b0, c30);
        c31 = _mm256_fmadd_ps(a, b1, c31);
        pa += 4;
        pb += 16;
    }
    _mm256_store_ps(tile + 0, c00);
    _mm256_store_ps(tile + 8, c01);
    _mm256_store_ps(tile + 16, c10);
    _mm256_store_ps(tile + 24, c11);
    _mm256_store_ps(tile + 32, c20);
    _mm256_store_ps(tile + 40, c21);
    _mm256_store_ps(tile + 48, c30);
    _mm256_store_ps(tile + 56, c31);
}

static inline void gemm_ukernel_small_f64(size_t kc, const double *restrict pa,
                                          const double *restrict pb, double *restrict tile) {
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
#pragma GCC unroll 4
    for (size_t p = 0; p < kc; p++) {
        __m256d b0 = _mm256_loadu_pd(pb), b1 = _mm256_loadu_pd(pb + 4);
        __m256d a;
        a = _mm256_broadcast_sd(pa + 0);
        c00 = _mm256_fmadd_pd(a, b0, c00);
        c01 = _mm256_fmadd_pd(a, b1, c01);
        a = _mm256_broadcast_sd(pa + 1);
        c10 = _mm256_fmadd_pd(a, b0, c10);
        c11 = _mm256_fmadd_pd(a, b1, c11);
        a = _mm256_broadcast_sd(pa + 2);
        c20 = _mm256_fmadd_pd(a, b0, c20);
        c21 = _mm256_fmadd_pd(a, b1, c21);
        a = _mm256_broadcast_sd(pa + 3);
        c30 = _mm256_fmadd_pd(a, b0, c30);
        c31 = _mm256_fmadd_pd(a, b1, c31);
        pa += 4;
        pb += 8;
    }
    _mm256_store_pd(tile + 0, c00);
    _mm256_store_pd(tile + 4, c01);
    _mm256_store_pd(tile + 8, c10);
    _mm256_store_pd(tile + 12, c11);
    _mm256_store_pd(tile + 16, c20);
    _mm256_store_pd(tile + 20, c21);
    _mm256_store_pd(tile + 24, c30);
    _mm256_store_pd(tile + 28, c31);
}
