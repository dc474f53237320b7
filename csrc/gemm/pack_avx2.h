/* Packing of a transposed B with in-register transposes (AVX2; the AVX-512 path uses it too).
 *
 * A micro-panel of op(B) = B^T is NR rows of B side by side: element (p, j) of the panel is
 * b[j ldb + p]. Read one element at a time, that is NR strided loads and stores per k step.
 * Here 8 rows x 8 k steps (f32) or 4 x 4 (f64) are loaded as vectors, transposed in registers
 * (unpack, shuffle, 128-bit lane permute) and stored as 8 (4) packed rows: about 3 shuffles per
 * 8 (4) values instead of a load and a store per value. dX = dY W^T, in every backward pass, packs
 * its B this way. */
#include <immintrin.h>

/* dst[p nr + j] = b[j ldb + p] for p < kc and j < cols (cols a multiple of 8, nr >= cols). */
static inline void gemm_pack_bt_f32(size_t kc, size_t cols, const float *restrict b, size_t ldb,
                                    float *restrict dst, size_t nr) {
    size_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        for (size_t j = 0; j < cols; j += 8) {
            const float *src = b + j * ldb + p;
            /* rows j..j+7 with their halves paired across the two 128-bit lanes, so that the
             * final step is in-lane: lane 0 holds rows 0-3, lane 1 rows 4-7 */
            __m256 r0 = _mm256_loadu_ps(src);
            __m256 r1 = _mm256_loadu_ps(src + ldb);
            __m256 r2 = _mm256_loadu_ps(src + 2 * ldb);
            __m256 r3 = _mm256_loadu_ps(src + 3 * ldb);
            __m256 r4 = _mm256_loadu_ps(src + 4 * ldb);
            __m256 r5 = _mm256_loadu_ps(src + 5 * ldb);
            __m256 r6 = _mm256_loadu_ps(src + 6 * ldb);
            __m256 r7 = _mm256_loadu_ps(src + 7 * ldb);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
            float *out = dst + p * nr + j;
            _mm256_storeu_ps(out, _mm256_permute2f128_ps(s0, s4, 0x20));
            _mm256_storeu_ps(out + nr, _mm256_permute2f128_ps(s1, s5, 0x20));
            _mm256_storeu_ps(out + 2 * nr, _mm256_permute2f128_ps(s2, s6, 0x20));
            _mm256_storeu_ps(out + 3 * nr, _mm256_permute2f128_ps(s3, s7, 0x20));
            _mm256_storeu_ps(out + 4 * nr, _mm256_permute2f128_ps(s0, s4, 0x31));
            _mm256_storeu_ps(out + 5 * nr, _mm256_permute2f128_ps(s1, s5, 0x31));
            _mm256_storeu_ps(out + 6 * nr, _mm256_permute2f128_ps(s2, s6, 0x31));
            _mm256_storeu_ps(out + 7 * nr, _mm256_permute2f128_ps(s3, s7, 0x31));
        }
    }
    for (; p < kc; p++)
        for (size_t j = 0; j < cols; j++) dst[p * nr + j] = b[j * ldb + p];
}

/* dst[p nr + j] = b[j ldb + p] for p < kc and j < cols (cols a multiple of 4, nr >= cols). */
static inline void gemm_pack_bt_f64(size_t kc, size_t cols, const double *restrict b,
                                    size_t ldb, double *restrict dst, size_t nr) {
    size_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        for (size_t j = 0; j < cols; j += 4) {
            const double *src = b + j * ldb + p;
            __m256d r0 = _mm256_loadu_pd(src);
            __m256d r1 = _mm256_loadu_pd(src + ldb);
            __m256d r2 = _mm256_loadu_pd(src + 2 * ldb);
            __m256d r3 = _mm256_loadu_pd(src + 3 * ldb);
            __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            double *out = dst + p * nr + j;
            _mm256_storeu_pd(out, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(out + nr, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(out + 2 * nr, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(out + 3 * nr, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
    }
    for (; p < kc; p++)
        for (size_t j = 0; j < cols; j++) dst[p * nr + j] = b[j * ldb + p];
}

/* ---- row panels of an untransposed A ---------------------------------------------------------
 * A row panel of op(A) = A is h rows of A side by side: element (i, p) goes to dst[p h + i].
 * Read one value at a time that is a load and a store per value; here 8 (f32) / 4 (f64) k steps
 * of each row are loaded as one vector, transposed in registers with the shuffles above, and
 * each k step is stored as one or two vector pieces. The forward pass (X W) and dX = dY W^T
 * pack their A this way; with few columns in B (a 10-class output layer) packing A is most of
 * the work of the product. h is the AVX2 panel height, 6 (MR) or 4 (MR_SMALL). */

/* dst[p h + i] = a[i lda + p] for p < kc and i < h, h = 6 or 4. `next`, when not NULL, is the
 * next panel's first row, whose lines are prefetched along the way: each panel reads h short
 * runs of kc values, too short for the hardware prefetchers to catch (2048^3 f32: +1.5-2%). */
static inline void gemm_pack_a_rows_f32(size_t h, size_t kc, const float *restrict a, size_t lda,
                                        float *restrict dst, const float *next) {
    size_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        const float *src = a + p;
        if (next && (p & 15) == 0)
            for (size_t i = 0; i < h; i++) __builtin_prefetch(next + i * lda + p, 0, 3);
        __m256 r0 = _mm256_loadu_ps(src);
        __m256 r1 = _mm256_loadu_ps(src + lda);
        __m256 r2 = _mm256_loadu_ps(src + 2 * lda);
        __m256 r3 = _mm256_loadu_ps(src + 3 * lda);
        /* rows 0-3: s[q] holds k step q in its low lane and q + 4 in its high lane */
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        __m256 s[4] = {_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                       _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2))};
        float *out = dst + p * h;
        for (size_t q = 0; q < 4; q++) {
            _mm_storeu_ps(out + q * h, _mm256_castps256_ps128(s[q]));
            _mm_storeu_ps(out + (q + 4) * h, _mm256_extractf128_ps(s[q], 1));
        }
        if (h == 6) {
            /* rows 4-5 as pairs: u[0] holds k steps 0, 1 (low lane) and 4, 5 (high lane),
             * u[1] steps 2, 3 and 6, 7 */
            __m256 r4 = _mm256_loadu_ps(src + 4 * lda);
            __m256 r5 = _mm256_loadu_ps(src + 5 * lda);
            __m256 u[2] = {_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5)};
            for (size_t q = 0; q < 2; q++) {
                __m128 lo = _mm256_castps256_ps128(u[q]), hi = _mm256_extractf128_ps(u[q], 1);
                _mm_storel_pi((__m64 *)(out + 2 * q * h + 4), lo);
                _mm_storeh_pi((__m64 *)(out + (2 * q + 1) * h + 4), lo);
                _mm_storel_pi((__m64 *)(out + (2 * q + 4) * h + 4), hi);
                _mm_storeh_pi((__m64 *)(out + (2 * q + 5) * h + 4), hi);
            }
        }
    }
    for (; p < kc; p++)
        for (size_t i = 0; i < h; i++) dst[p * h + i] = a[i * lda + p];
}

/* As gemm_pack_a_rows_f32. */
static inline void gemm_pack_a_rows_f64(size_t h, size_t kc, const double *restrict a,
                                        size_t lda, double *restrict dst, const double *next) {
    size_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        const double *src = a + p;
        if (next && (p & 7) == 0)
            for (size_t i = 0; i < h; i++) __builtin_prefetch(next + i * lda + p, 0, 3);
        __m256d r0 = _mm256_loadu_pd(src);
        __m256d r1 = _mm256_loadu_pd(src + lda);
        __m256d r2 = _mm256_loadu_pd(src + 2 * lda);
        __m256d r3 = _mm256_loadu_pd(src + 3 * lda);
        __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
        __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
        double *out = dst + p * h;
        _mm256_storeu_pd(out, _mm256_permute2f128_pd(t0, t2, 0x20));
        _mm256_storeu_pd(out + h, _mm256_permute2f128_pd(t1, t3, 0x20));
        _mm256_storeu_pd(out + 2 * h, _mm256_permute2f128_pd(t0, t2, 0x31));
        _mm256_storeu_pd(out + 3 * h, _mm256_permute2f128_pd(t1, t3, 0x31));
        if (h == 6) {
            /* rows 4-5 as pairs: u0 holds k steps 0 (low lane) and 2, u1 steps 1 and 3 */
            __m256d r4 = _mm256_loadu_pd(src + 4 * lda);
            __m256d r5 = _mm256_loadu_pd(src + 5 * lda);
            __m256d u0 = _mm256_unpacklo_pd(r4, r5), u1 = _mm256_unpackhi_pd(r4, r5);
            _mm_storeu_pd(out + 4, _mm256_castpd256_pd128(u0));
            _mm_storeu_pd(out + h + 4, _mm256_castpd256_pd128(u1));
            _mm_storeu_pd(out + 2 * h + 4, _mm256_extractf128_pd(u0, 1));
            _mm_storeu_pd(out + 3 * h + 4, _mm256_extractf128_pd(u1, 1));
        }
    }
    for (; p < kc; p++)
        for (size_t i = 0; i < h; i++) dst[p * h + i] = a[i * lda + p];
}
