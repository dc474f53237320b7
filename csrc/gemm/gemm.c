/*
 * GEMM, BLIS style: C = alpha op(A) op(B) + beta C with the bias and activation of a dense layer
 * fused into the store of C. Compiled once per ISA path; only the micro-kernel differs between
 * paths (ukernel_avx512.h, ukernel_avx2.h, ukernel_generic.h, chosen by the path's flags).
 *
 * Loop nest over one thread's rectangle of C (Goto / BLIS):
 *   jc over N in NC columns:
 *     pc over K in KC steps:        the K blocks, always from 0 upwards
 *       ic over M in MC rows:       an MC x KC block of op(A) is packed (lives in L2);
 *                                   the first MC block packs the KC x NC block of op(B)
 *                                   GEMM_CHUNK_PANELS micro-panels at a time, multiplying each
 *                                   chunk while it is in L1/L2 and prefetching the source of
 *                                   the next (GotoBLAS: the micro-kernels spread the probes
 *                                   over their k loops, gemm_prefetch); later MC blocks reuse
 *                                   it (L2/L3);
 *                                   with a single MC block, each chunk overwrites the last
 *                                   (it stays in cache: 128 x 512 x 512 f32 +2-4%)
 *         ir over MC in MR:         one MR x KC micro-panel of A (lives in L1; packing
 *                                   prefetches the next panel's rows)
 *           jr over NC in NR:       the micro-kernel: an MR x NR tile of C in registers, times
 *                                   a KC x NR micro-panel of B (from L2 / L3), so that C is
 *                                   written along its rows (see block_kernels)
 * Packing copies each block once into the exact order the micro-kernel reads it, zero-padded to
 * whole panels, so the micro-kernel streams contiguous memory, never reads out of bounds, and
 * every transpose (NN, NT, TN, TT) is handled by the packing alone. Where the path has a
 * shorter micro-kernel (AVX2: 4 rows), the last rows of a block use it so that little padding
 * is computed (M = 32: 4 x 6 + 2 x 4 rows instead of 6 x 6).
 *
 * Blocking (element counts; KC depends on the dtype only, not on the path, so every element of
 * C is the same sequence of operations on every path, up to FMA rounding):
 * - KC = 320 (f32) / 256 (f64): a B micro-panel (KC x NR, 64 bytes per k step for AVX2 in
 *   both dtypes) plus an A micro-panel (24 / 48 bytes per k step) take 27.5 / 28 KiB, inside a
 *   32 KiB L1d. K is cut into equal blocks of at most KC (784 = 3 x 262). The C tile is loaded
 *   and stored once per block: under 1% of the time.
 * - MC (per path, see the ukernel headers): the packed A block at about half the L2.
 * - NC = 1024: the packed B block is KC x NC = 1.25 MiB (f32) / 2 MiB (f64) per thread, well
 *   inside a 32 MiB L3 shared by 2..8 cores; A is re-packed once per NC columns, which costs
 *   1/NC of the arithmetic. On Zen 3, NC = 2048 was slower: 2048^2 at 0.91-0.96 (f64) and
 *   0.94-0.95 (f32) of OpenBLAS instead of 0.99-1.02 and 0.97-1.03.
 *
 * Threads split C into a grid of rectangles of whole MR x NR tiles, one per thread, each with
 * its own packing buffers: no K split across threads and no shared partial sums, so every
 * element is computed by the same operations in the same order whatever the thread count, and
 * 1 and 2 threads give bitwise identical results. The grid shape minimises the per-thread tile
 * area plus the packing work (split over N first: MLP batches make M the small dimension).
 *
 * Small problems skip packing: up to GEMM_SMALL_WORK multiply-adds, each row of the product in
 * fixed-width vectors of accumulators (gemm_tiny); single rows and larger leftovers, a
 * row-times-matrix loop that the compiler vectorizes over the columns of B, or dot products in
 * eight fixed lanes when B is transposed (gemm_small).
 */
#define _DEFAULT_SOURCE /* POSIX threads; madvise and MADV_HUGEPAGE where Linux has them */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <omp.h>

/* Micro-kernels are never inlined into the blocked loops: inlined there, GCC ran out of the
 * 16 vector registers (12 accumulators, 2 B vectors, the broadcast A value, and the loops' own
 * live values) and kept two accumulators on the stack, every k step then waiting on a
 * store-to-load round trip. Measured on Zen 3, the 6 x 16 f32 kernel on L1-resident panels:
 * 88 GFLOP/s inlined, 95 as a function of its own. One call per MR x NR x kc tile is noise. */
#define GEMM_MICRO_KERNEL static __attribute__((noinline))

/* Cache lines for the micro-kernels to prefetch while they run: the source of the next chunk of
 * packed B (see gemm_blocked). Probes go 64 bytes apart from the first byte of each row, through
 * `row_bytes` of it, rows `stride` bytes apart; `offset` is the next probe's place in `row`,
 * `lines_left` probes remain and each micro-kernel call issues `budget` of them. The AVX2
 * kernels spread their probes over the k loop (one per four k steps), so that the misses
 * overlap the arithmetic: issued in a burst before each call, they outran the core's miss
 * buffers and stalled it (perf, 32 x 4096 x 4096 NN: a fifth of the samples on the probes, and
 * the spread probes measured 1.11-1.23x on M = 32 products, 1.04x at M = 128). */
typedef struct gemm_prefetch {
    const char *row;
    size_t offset, row_bytes, lines_left, budget;
    ptrdiff_t stride;
} gemm_prefetch;

/* Issues the next probe of the stream (lines_left > 0). */
static inline void gemm_prefetch_next(gemm_prefetch *pf) {
    __builtin_prefetch(pf->row + pf->offset, 0, 2);
    pf->lines_left--;
    pf->offset += 64;
    if (pf->offset == pf->row_bytes) {
        pf->offset = 0;
        pf->row += pf->stride;
    }
}

/* Issues n probes of the stream at once (n <= lines_left). */
static inline void gemm_prefetch_burst(gemm_prefetch *pf, size_t n) {
    for (size_t i = 0; i < n; i++) gemm_prefetch_next(pf);
}

/* The probes of this call (its budget, clamped to the stream): 0 without a stream. */
static inline size_t gemm_prefetch_share(const gemm_prefetch *pf) {
    if (pf == NULL) return 0;
    return pf->budget < pf->lines_left ? pf->budget : pf->lines_left;
}

/* The call's probes in one burst, for micro-kernels that do not spread them. */
static inline void gemm_prefetch_at_once(gemm_prefetch *pf) {
    size_t n = gemm_prefetch_share(pf);
    if (n > 0) gemm_prefetch_burst(pf, n);
}

#if defined(__AVX512F__)
#include "ukernel_avx512.h"
#elif defined(__AVX2__) && defined(__FMA__)
#include "ukernel_avx2.h"
#else
#include "ukernel_generic.h"
#endif

#include <tgmath.h>

#include "internal.h"
#include "isa.h"

#define GEMM_KC_f32 320
#define GEMM_KC_f64 256
#define GEMM_NC 1024
/* Micro-panels of B packed and multiplied at a time by the first MC block (see gemm_blocked).
 * Measured on Zen 3, f32, one thread, against packing the whole KC x NC block first: M = 32,
 * K = N = 4096 NN 1.18x, NT 1.05x; M = 128 1.03-1.04x. One panel at a time was 0.7-0.9x of
 * four (an untransposed B is then read one cache line per row), sixteen 0.85-1.1x; the
 * prefetch of the next chunk's source is worth 1.1-1.4x on NN with small M. (Timings on a
 * loaded machine, interleaved in one process: +-10%.) */
#define GEMM_CHUNK_PANELS 4

/* Multiply-adds (m n k) per thread below which a GEMM stays on one thread (two threads from
 * 2^17, about 50^3). Measured on a 2-core Zen 3, square f32, 1 against 2 threads: 32^3 0.66x,
 * 48^3 0.99x, 64^3 1.33x, 96^3 1.49x, 128^3 1.72x. */
#define GEMM_GRAIN ((size_t)1 << 16)
/* Multiply-adds up to which packing costs more than it saves: measured on Zen 3 (AVX2), the
 * packed path is ahead from 8^3 on once it skips the OpenMP region on one thread (16^3: 0.4 us
 * against 1.1 us). Single rows (m = 1) and single columns of a transposed B also skip packing:
 * packing would copy all of B for one use (1 x 1024 x 1024: 129 us unpacked, 266 us packed;
 * NT 345 against 816 us). */
#define GEMM_SMALL_WORK ((size_t)512)

/* Packing reads an operand row by row (B, or A transposed): each row is a separate run of
 * pages once rows exceed 4 KiB, and the hardware prefetchers restart at every page, so the
 * packing prefetches the row this many rows ahead into L2. */
#define GEMM_PREFETCH_ROWS 2

/* a fused multiply-add where the path has one; a rounded multiply then add elsewhere */
#if defined(__FMA__)
#define GEMM_FMA(x, y, z) fma((x), (y), (z))
#else
#define GEMM_FMA(x, y, z) ((x) * (y) + (z))
#endif

/* ---- per-thread packing buffers ------------------------------------------------------------
 * Each thread keeps one buffer and grows it on demand, so a training loop calling GEMM on the
 * same shapes allocates nothing after the first step (fresh pages would cost a page fault per
 * 4 KiB, several percent of an MLP-sized GEMM). The buffer is freed when its thread exits. */

typedef struct gemm_workspace {
    void *data;
    size_t bytes;
} gemm_workspace;

#define GEMM_HUGE_PAGE ((size_t)2 << 20)

static pthread_key_t workspace_key;
static int workspace_key_ok;
static pthread_once_t workspace_once = PTHREAD_ONCE_INIT;

static void free_workspace(void *p) {
    gemm_workspace *ws = p;
    free(ws->data);
    free(ws);
}

static void create_workspace_key(void) {
    workspace_key_ok = pthread_key_create(&workspace_key, free_workspace) == 0;
}

/* A 64-byte aligned buffer of at least `bytes` for the calling thread; NULL when out of memory. */
static void *thread_workspace(size_t bytes) {
    pthread_once(&workspace_once, create_workspace_key);
    if (!workspace_key_ok) return NULL;
    gemm_workspace *ws = pthread_getspecific(workspace_key);
    if (ws == NULL) {
        ws = calloc(1, sizeof *ws);
        if (ws == NULL) return NULL;
        if (pthread_setspecific(workspace_key, ws) != 0) {
            free(ws);
            return NULL;
        }
    }
    if (bytes <= ws->bytes) return ws->data;
    /* Buffers of a huge page or more are huge-page aligned and advised as such (Linux THP in
     * "madvise" mode, as numpy does for its arrays): the packed B block is read once per
     * micro-kernel row and its TLB misses cost a few percent with 4 KiB pages. */
    size_t align = bytes >= GEMM_HUGE_PAGE ? GEMM_HUGE_PAGE : 4096;
    if (bytes > SIZE_MAX - align) return NULL;
    size_t rounded = (bytes + align - 1) & ~(align - 1);
    void *data = aligned_alloc(align, rounded);
    if (data == NULL) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == GEMM_HUGE_PAGE) (void)madvise(data, rounded, MADV_HUGEPAGE); /* advice only */
#endif
    free(ws->data);
    ws->data = data;
    ws->bytes = rounded;
    return data;
}

static inline size_t min_size(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }
/* The step that cuts n into ceil(n / max_step) nearly equal blocks, rounded up to a multiple
 * of `unit` and never above max_step (a multiple of unit). */
static inline size_t block_step(size_t n, size_t max_step, size_t unit) {
    if (n <= max_step) return n;
    size_t blocks = (n + max_step - 1) / max_step;
    size_t step = round_up((n + blocks - 1) / blocks, unit);
    return step < max_step ? step : max_step;
}
static inline size_t saturating_mul3(size_t a, size_t b, size_t c) {
    if (a == 0 || b == 0 || c == 0) return 0;
    if (b > SIZE_MAX / a) return SIZE_MAX;
    size_t ab = a * b;
    return c > SIZE_MAX / ab ? SIZE_MAX : ab * c;
}

#define FFNC_TEMPLATE "gemm.tmpl.h"
#include "instantiate.h"
