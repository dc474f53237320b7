/* Portable micro-kernels in plain C: 4 x 8 floats and 4 x 4 doubles, sized for 16 128-bit
 * registers (SSE2, NEON): eight accumulator vectors. The compiler vectorizes the loop over j;
 * without FMA each step is a multiply and an add, rounded separately. */
#define GEMM_MR_f32 4
#define GEMM_NR_f32 8
#define GEMM_MR_f64 4
#define GEMM_NR_f64 4

/* MC: the packed A block well inside a 256 KiB L2, the smallest common today:
 * 64 x 320 x 4 bytes = 80 KiB (f32), 32 x 256 x 8 = 64 KiB (f64). */
#define GEMM_MC_f32 64
#define GEMM_MC_f64 32

/* dst[0:NR] = src[0:NR] (a packed panel row). */
#define gemm_copy_row_f32(dst, src) memcpy((dst), (src), GEMM_NR_f32 * sizeof(float))
#define gemm_copy_row_f64(dst, src) memcpy((dst), (src), GEMM_NR_f64 * sizeof(double))

/* dst[p nr + j] = b[j ldb + p] for p < kc and j < cols: a transposed B packed one value at a
 * time (the x86 paths transpose in registers, pack_avx2.h). */
#define GEMM_GENERIC_PACK_BT(REAL_, SFX_)                                                        \
    static inline void gemm_pack_bt_##SFX_(size_t kc, size_t cols, const REAL_ *restrict b,      \
                                           size_t ldb, REAL_ *restrict dst, size_t nr) {         \
        for (size_t p = 0; p < kc; p++)                                                         \
            for (size_t j = 0; j < cols; j++) dst[p * nr + j] = b[j * ldb + p];                 \
    }
GEMM_GENERIC_PACK_BT(float, f32)
GEMM_GENERIC_PACK_BT(double, f64)
#undef GEMM_GENERIC_PACK_BT
#define GEMM_PACK_BT_UNIT_f32 1
#define GEMM_PACK_BT_UNIT_f64 1

#define GEMM_GENERIC_UKERNEL(REAL_, SFX_)                                                        \
    GEMM_MICRO_KERNEL void gemm_ukernel_##SFX_(size_t kc, const REAL_ *restrict pa,              \
                                               const REAL_ *restrict pb, REAL_ *restrict tile,  \
                                               gemm_prefetch *pf) {                             \
        gemm_prefetch_at_once(pf);                                                              \
        enum { MR_ = GEMM_MR_##SFX_, NR_ = GEMM_NR_##SFX_ };                                    \
        REAL_ acc[MR_][NR_] = {{0}};                                                            \
        for (size_t p = 0; p < kc; p++) {                                                       \
            for (int i = 0; i < MR_; i++)                                                       \
                for (int j = 0; j < NR_; j++) acc[i][j] += pa[i] * pb[j];                       \
            pa += MR_;                                                                          \
            pb += NR_;                                                                          \
        }                                                                                       \
        for (int i = 0; i < MR_; i++)                                                           \
            for (int j = 0; j < NR_; j++) tile[i * NR_ + j] = acc[i][j];                        \
    }

GEMM_GENERIC_UKERNEL(float, f32)
GEMM_GENERIC_UKERNEL(double, f64)
#undef GEMM_GENERIC_UKERNEL

/* Tiles go through the tile buffer (no gemm_ukernel_c_*). */
#define GEMM_DIRECT_C 0
/* Row panels of A are packed value by value (pack_a_panel in gemm.tmpl.h). */
#define GEMM_PACK_A_ROWS 0

/* One panel height only: the last rows of a block are padded to MR. */
#define GEMM_MR_SMALL_f32 GEMM_MR_f32
#define GEMM_MR_SMALL_f64 GEMM_MR_f64
#define gemm_ukernel_small_f32 gemm_ukernel_f32
#define gemm_ukernel_small_f64 gemm_ukernel_f64
