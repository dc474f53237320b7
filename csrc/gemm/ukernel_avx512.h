/* AVX-512 micro-kernels: 14 x 32 floats and 14 x 16 doubles.
 *
 * 28 zmm accumulators (14 rows x 2 vectors), two for the B row and one for the broadcast: 31 of
 * the 32 registers. The loops over rows have constant trip counts and are fully unrolled, so
 * the accumulator arrays live in registers. */
#include <immintrin.h>

/* B^T is packed with the 256-bit transposes (pack_avx2.h), 8 (f32) / 4 (f64) columns at a
 * time: packing is a small share of the time, and those transposes are tested on AVX2. */
#include "pack_avx2.h"
#define GEMM_PACK_BT_UNIT_f32 8
#define GEMM_PACK_BT_UNIT_f64 4

#define GEMM_MR_f32 14
#define GEMM_NR_f32 32
#define GEMM_MR_f64 14
#define GEMM_NR_f64 16

/* MC: the packed A block well inside a 1-2 MiB L2 (Skylake-SP and later):
 * 168 x 320 x 4 bytes = 210 KiB (f32), 84 x 256 x 8 = 168 KiB (f64). */
#define GEMM_MC_f32 168
#define GEMM_MC_f64 84

/* dst[0:NR] = src[0:NR]; dst is 64-byte aligned (a packed panel row). */
static inline void gemm_copy_row_f32(float *restrict dst, const float *restrict src) {
    _mm512_store_ps(dst, _mm512_loadu_ps(src));
    _mm512_store_ps(dst + 16, _mm512_loadu_ps(src + 16));
}
static inline void gemm_copy_row_f64(double *restrict dst, const double *restrict src) {
    _mm512_store_pd(dst, _mm512_loadu_pd(src));
    _mm512_store_pd(dst + 8, _mm512_loadu_pd(src + 8));
}

/* tile (MR x NR, row-major, 64-byte aligned) = sum over p < kc of pa[p][:] outer pb[p][:]. */
GEMM_MICRO_KERNEL void gemm_ukernel_f32(size_t kc, const float *restrict pa,
                                        const float *restrict pb, float *restrict tile,
                                        gemm_prefetch *pf) {
    gemm_prefetch_at_once(pf);
    __m512 acc[GEMM_MR_f32][2];
#pragma GCC unroll 14
    for (int i = 0; i < GEMM_MR_f32; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (size_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16);
#pragma GCC unroll 14
        for (int i = 0; i < GEMM_MR_f32; i++) {
            __m512 a = _mm512_set1_ps(pa[i]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
        pa += GEMM_MR_f32;
        pb += GEMM_NR_f32;
    }
#pragma GCC unroll 14
    for (int i = 0; i < GEMM_MR_f32; i++) {
        _mm512_store_ps(tile + i * GEMM_NR_f32, acc[i][0]);
        _mm512_store_ps(tile + i * GEMM_NR_f32 + 16, acc[i][1]);
    }
}

GEMM_MICRO_KERNEL void gemm_ukernel_f64(size_t kc, const double *restrict pa,
                                        const double *restrict pb, double *restrict tile,
                                        gemm_prefetch *pf) {
    gemm_prefetch_at_once(pf);
    __m512d acc[GEMM_MR_f64][2];
#pragma GCC unroll 14
    for (int i = 0; i < GEMM_MR_f64; i++) acc[i][0] = acc[i][1] = _mm512_setzero_pd();
    for (size_t p = 0; p < kc; p++) {
        __m512d b0 = _mm512_loadu_pd(pb), b1 = _mm512_loadu_pd(pb + 8);
#pragma GCC unroll 14
        for (int i = 0; i < GEMM_MR_f64; i++) {
            __m512d a = _mm512_set1_pd(pa[i]);
            acc[i][0] = _mm512_fmadd_pd(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_pd(a, b1, acc[i][1]);
        }
        pa += GEMM_MR_f64;
        pb += GEMM_NR_f64;
    }
#pragma GCC unroll 14
    for (int i = 0; i < GEMM_MR_f64; i++) {
        _mm512_store_pd(tile + i * GEMM_NR_f64, acc[i][0]);
        _mm512_store_pd(tile + i * GEMM_NR_f64 + 8, acc[i][1]);
    }
}

/* Tiles go through the tile buffer (no gemm_ukernel_c_*). */
#define GEMM_DIRECT_C 0
/* Row panels of A are packed value by value (pack_a_panel in gemm.tmpl.h). */
#define GEMM_PACK_A_ROWS 0

/* One panel height only: the last rows of a block are padded to MR. */
#define GEMM_MR_SMALL_f32 GEMM_MR_f32
#define GEMM_MR_SMALL_f64 GEMM_MR_f64
#define gemm_ukernel_small_f32 gemm_ukernel_f32
#define gemm_ukernel_small_f64 gemm_ukernel_f64
