/* Body of gemm.c for one REAL type (float or double, SFX f32 or f64). */

#define LOCAL(name) FFNC_CAT2(name, SFX)
#define MR FFNC_CAT2(GEMM_MR, SFX)
#define NR FFNC_CAT2(GEMM_NR, SFX)
#define MC FFNC_CAT2(GEMM_MC, SFX)
#define UKERNEL FFNC_CAT2(gemm_ukernel, SFX)
#define UKERNEL_C FFNC_CAT2(gemm_ukernel_c, SFX)
#define KC FFNC_CAT2(GEMM_KC, SFX)
#define COPY_ROW FFNC_CAT2(gemm_copy_row, SFX)
#define MRS FFNC_CAT2(GEMM_MR_SMALL, SFX)
#define UKERNEL_SMALL FFNC_CAT2(gemm_ukernel_small, SFX)
#define PACK_BT FFNC_CAT2(gemm_pack_bt, SFX)
#define PACK_BT_UNIT FFNC_CAT2(GEMM_PACK_BT_UNIT, SFX)
#define PACK_A_ROWS FFNC_CAT2(gemm_pack_a_rows, SFX)

/* ---- activations -----------------------------------------------------------------------------
 * The exact activations (one comparison, at most one multiply: identity, relu, leaky relu, abs,
 * hard tanh) are applied inline to each tile row as it is stored, with the expressions of
 * csrc/kernels/activation.tmpl.h, so the results are the same bits. The others call this
 * path's activation kernels on whole rows of a block just finished (still in L2): their cost
 * is the transcendental function, not memory, and they then stay bitwise identical to
 * ffnc_activation_forward / _backward whatever those kernels' implementation. */

#define GEMM_PROTO(name, params) ffnc_status KERNEL(name) params;
FFNC_ACTIVATION_KERNELS(GEMM_PROTO)
#undef GEMM_PROTO

static inline int LOCAL(exact_activation)(ffnc_activation act) {
    return act == FFNC_ACT_IDENTITY || act == FFNC_ACT_RELU || act == FFNC_ACT_LEAKY_RELU ||
           act == FFNC_ACT_ABS || act == FFNC_ACT_HARD_TANH;
}

#define GEMM_MAP(EXPR)                                \
    for (size_t j = 0; j < n; j++) {                  \
        REAL x = v[j];                                \
        v[j] = (EXPR);                                \
    }                                                 \
    break

/* v[j] = act(v[j]) for j < n, for the exact activations; the others are left to the caller. */
static inline void LOCAL(activate_row)(ffnc_activation act, REAL alpha, size_t n,
                                       REAL *restrict v) {
    switch (act) {
    case FFNC_ACT_RELU: GEMM_MAP(x <= 0 ? 0 : x);
    case FFNC_ACT_LEAKY_RELU: GEMM_MAP(x > 0 ? x : alpha * x);
    case FFNC_ACT_ABS: GEMM_MAP(fabs(x));
    case FFNC_ACT_HARD_TANH: GEMM_MAP(x < -1 ? -1 : (x > 1 ? 1 : x));
    default: break;
    }
}
#undef GEMM_MAP

#define GEMM_MAP_BACKWARD(EXPR)                       \
    for (size_t j = 0; j < n; j++) {                  \
        REAL g = diff_dst[j];                         \
        REAL s = saved[j];                            \
        diff_pre[j] = (EXPR);                         \
    }                                                 \
    break

/* diff_pre[j] = diff_dst[j] * act'(saved[j]) for the exact activations. */
static inline void LOCAL(derivative_row)(ffnc_activation act, REAL alpha, size_t n,
                                         const REAL *diff_dst, const REAL *saved,
                                         REAL *diff_pre) {
    switch (act) {
    case FFNC_ACT_RELU: GEMM_MAP_BACKWARD(s > 0 ? g : 0);
    case FFNC_ACT_LEAKY_RELU: GEMM_MAP_BACKWARD(s > 0 ? g : alpha * g);
    case FFNC_ACT_HARD_TANH: GEMM_MAP_BACKWARD(s > -1 && s < 1 ? g : 0);
    case FFNC_ACT_ABS: GEMM_MAP_BACKWARD(s > 0 ? g : (s < 0 ? -g : 0));
    default: GEMM_MAP_BACKWARD(((void)s, g)); /* identity */
    }
}
#undef GEMM_MAP_BACKWARD

/* ---- the store of C ----------------------------------------------------------------------- */

/* The epilogue with typed pointers; bias and pre_act are indexed by the global row/column. */
typedef struct LOCAL(gemm_epi) {
    const REAL *bias;
    REAL *pre_act;
    size_t ld_pre_act;
    ffnc_activation act;
    REAL act_alpha;
    int exact; /* the activation is applied per tile row; else per block (activate_block) */
    REAL *update; /* the SGD step's parameter (see ffnc_gemm_epilogue), or NULL */
    size_t ld_update;
    REAL update_rate;
} LOCAL(gemm_epi);

/* c[j] = alpha t[j] + beta c[j] for j < n; c is not read when beta == 0. */
static inline void LOCAL(update_row)(const REAL *restrict t, size_t n, REAL alpha, REAL beta,
                                     REAL *restrict c) {
    if (beta == 0)
        for (size_t j = 0; j < n; j++) c[j] = alpha * t[j];
    else
        for (size_t j = 0; j < n; j++) c[j] = alpha * t[j] + beta * c[j];
}

/* The epilogue on n values of row `row` of C starting at column `col`, just stored. */
static inline void LOCAL(epilogue_row)(const LOCAL(gemm_epi) *ep, REAL *restrict c, size_t n,
                                       size_t row, size_t col) {
    if (ep->bias)
        for (size_t j = 0; j < n; j++) c[j] = c[j] + ep->bias[col + j];
    if (ep->pre_act) memcpy(ep->pre_act + row * ep->ld_pre_act + col, c, n * sizeof(REAL));
    if (ep->exact) LOCAL(activate_row)(ep->act, ep->act_alpha, n, c);
    if (ep->update) {
        REAL *u = ep->update + row * ep->ld_update + col;
        for (size_t j = 0; j < n; j++) u[j] = u[j] - ep->update_rate * c[j];
    }
}

/* The non-exact activation over rows x cols of C (row stride ldc), row by row. The kernel runs
 * on one thread here: it is called inside the GEMM's parallel region, or on small blocks. */
static inline void LOCAL(activate_block)(const LOCAL(gemm_epi) *ep, REAL *c, size_t ldc,
                                         size_t rows, size_t cols) {
    if (ep == NULL || ep->exact) return;
    for (size_t i = 0; i < rows; i++)
        KERNEL(activation_forward)(ep->act, ep->act_alpha, cols, c + i * ldc, c + i * ldc);
}

/* Writes an mr x nr tile (rows of NR in `tile`) to C at (row, col); ep only after the last K
 * block. Full tiles take the branch with constant trip counts, which vectorizes fully. */
static inline void LOCAL(store_tile)(const REAL *tile, size_t mr, size_t nr, REAL alpha,
                                     REAL beta, REAL *c, size_t ldc, const LOCAL(gemm_epi) *ep,
                                     size_t row, size_t col) {
    if (mr == MR && nr == NR) {
        for (size_t i = 0; i < MR; i++) LOCAL(update_row)(tile + i * NR, NR, alpha, beta, c + i * ldc);
    } else {
        for (size_t i = 0; i < mr; i++) LOCAL(update_row)(tile + i * NR, nr, alpha, beta, c + i * ldc);
    }
    if (ep)
        for (size_t i = 0; i < mr; i++) LOCAL(epilogue_row)(ep, c + i * ldc, nr, row + i, col);
}

/* store_tile for a transposed problem: the tile's column j is row (col + j) of the caller's C,
 * from its column row; same operations on each element, then the epilogue on those rows. */
static inline void LOCAL(store_tile_transposed)(const REAL *tile, size_t mr, size_t nr,
                                                REAL alpha, REAL beta, REAL *c, size_t ldc,
                                                const LOCAL(gemm_epi) *ep, size_t row,
                                                size_t col) {
    for (size_t j = 0; j < nr; j++) {
        REAL *c_row = c + (col + j) * ldc + row;
        if (beta == 0)
            for (size_t i = 0; i < mr; i++) c_row[i] = alpha * tile[i * NR + j];
        else
            for (size_t i = 0; i < mr; i++) c_row[i] = alpha * tile[i * NR + j] + beta * c_row[i];
        if (ep) LOCAL(epilogue_row)(ep, c_row, mr, col + j, row);
    }
}

/* ---- the problem -------------------------------------------------------------------------- */

typedef struct LOCAL(gemm_problem) {
    int trans_a, trans_b;
    size_t m, n, k;
    REAL alpha, beta;
    const REAL *a;
    size_t lda;
    const REAL *b;
    size_t ldb;
    REAL *c;
    size_t ldc;
    const LOCAL(gemm_epi) *ep; /* NULL: plain GEMM */
    /* The problem is the transpose of the caller's, C^T = op(B)^T op(A)^T (see
     * KERNEL(gemm)): element (i, j) of the problem's C is c[j ldc + i], and the epilogue's
     * rows and columns are the caller's. */
    int trans_c;
} LOCAL(gemm_problem);

/* Pointer to op(A)(i, p) and op(B)(p, j). */
static inline const REAL *LOCAL(a_at)(const LOCAL(gemm_problem) *pr, size_t i, size_t p) {
    return pr->trans_a ? pr->a + p * pr->lda + i : pr->a + i * pr->lda + p;
}
static inline const REAL *LOCAL(b_at)(const LOCAL(gemm_problem) *pr, size_t p, size_t j) {
    return pr->trans_b ? pr->b + j * pr->ldb + p : pr->b + p * pr->ldb + j;
}
/* Pointer to element (i, j) of the problem's C. */
static inline REAL *LOCAL(c_at)(const LOCAL(gemm_problem) *pr, size_t i, size_t j) {
    return pr->trans_c ? pr->c + j * pr->ldc + i : pr->c + i * pr->ldc + j;
}
/* activate_block over rows x cols of the problem's C from c (cols x rows of the caller's). */
static inline void LOCAL(activate_block_of)(const LOCAL(gemm_problem) *pr,
                                            const LOCAL(gemm_epi) *ep, REAL *c, size_t rows,
                                            size_t cols) {
    if (pr->trans_c)
        LOCAL(activate_block)(ep, c, pr->ldc, cols, rows);
    else
        LOCAL(activate_block)(ep, c, pr->ldc, rows, cols);
}

/* ---- packing ------------------------------------------------------------------------------ */

/* The row panels of an MC block: full MR-row panels, then `small` panels of MRS rows (MRS < MR
 * where the path has a shorter micro-kernel), chosen to cover mc rows with the least padding:
 * with MR = 6 and MRS = 4 every even mc is covered exactly (32 = 4 x 6 + 2 x 4), where MR
 * alone would compute 36 rows for 32. */
static inline size_t LOCAL(small_panels)(size_t mc) {
    if (MRS >= MR || mc % MR == 0) return 0;
    size_t best = 0, best_rows = round_up(mc, MR);
    for (size_t small = 1; small * MRS < MR * 2 && small * MRS <= round_up(mc, MRS); small++) {
        size_t rest = mc > small * MRS ? mc - small * MRS : 0;
        size_t rows = round_up(rest, MR) + small * MRS;
        if (rows < best_rows) {
            best = small;
            best_rows = rows;
        }
    }
    return best;
}

/* The height of the panel that starts at row ir of an MC block with `full` rows in MR-row
 * panels. */
static inline size_t LOCAL(panel_height)(size_t ir, size_t full) { return ir < full ? MR : MRS; }

/* Packs rows [0, mr) of a panel of height h (mr <= h) of an untransposed A[.., 0:kc] (a points
 * at the panel's first element): element (i, p) goes to dst[p h + i]; rows mr..h are zero. */
static inline void LOCAL(pack_a_panel)(size_t h, size_t mr, size_t kc, const REAL *restrict a,
                                       size_t lda, REAL *restrict dst) {
    if (mr == h) {
        for (size_t p = 0; p < kc; p++)
            for (size_t i = 0; i < h; i++) dst[p * h + i] = a[i * lda + p];
    } else {
        for (size_t p = 0; p < kc; p++) {
            size_t i = 0;
            for (; i < mr; i++) dst[p * h + i] = a[i * lda + p];
            for (; i < h; i++) dst[p * h + i] = 0;
        }
    }
}

/* Packs op(A)[0:mc, 0:kc] (a points at its first element) into row panels (see small_panels):
 * the panel starting at row ir occupies pa[ir kc ...]; rows past mc are zero. */
static void LOCAL(pack_a)(int trans, size_t mc, size_t kc, const REAL *restrict a, size_t lda,
                          size_t full, REAL *restrict pa) {
    if (trans) {
        /* op(A) = A^T: row p of A holds op(A)(0:mc, p) contiguously; read it once, whole,
         * rather than MR values of it per panel */
        for (size_t p = 0; p < kc; p++) {
            const REAL *src = a + p * lda;
            for (size_t i = 0; i < mc; i += 64 / sizeof(REAL))
                __builtin_prefetch(src + GEMM_PREFETCH_ROWS * lda + i, 0, 2);
            for (size_t ir = 0, h; ir < mc; ir += h) {
                h = LOCAL(panel_height)(ir, full);
                size_t mr = min_size(h, mc - ir);
                REAL *dst = pa + ir * kc + p * h;
                /* whole panels as fixed-size copies, which compile to a vector move or two */
                if (mr == MR && h == MR) {
                    memcpy(dst, src + ir, MR * sizeof(REAL));
                    continue;
                }
                if (mr == MRS && h == MRS) {
                    memcpy(dst, src + ir, MRS * sizeof(REAL));
                    continue;
                }
                size_t i = 0;
                for (; i < mr; i++) dst[i] = src[ir + i];
                for (; i < h; i++) dst[i] = 0;
            }
        }
        return;
    }
    for (size_t ir = 0, h; ir < mc; ir += h) {
        h = LOCAL(panel_height)(ir, full);
        size_t mr = min_size(h, mc - ir);
#if GEMM_PACK_A_ROWS
        if (mr == h) {
            PACK_A_ROWS(h, kc, a + ir * lda, lda, pa + ir * kc,
                        ir + h < mc ? a + (ir + h) * lda : NULL);
            continue;
        }
#endif
        if (h == MR)
            LOCAL(pack_a_panel)(MR, mr, kc, a + ir * lda, lda, pa + ir * kc);
        else
            LOCAL(pack_a_panel)(MRS, mr, kc, a + ir * lda, lda, pa + ir * kc);
    }
}

/* Values from one packed B micro-panel to the next: one row of padding, so that the same row
 * of consecutive panels (written together when B is packed row by row) does not fall in one
 * cache set, as it would kc x NR values apart (16 KiB for kc = 256, f32 AVX2). */
static inline size_t LOCAL(panel_stride)(size_t kc) { return kc * NR + NR; }

/* Packs op(B)[0:kc, 0:nc] (b points at its first element) into NR-column micro-panels:
 * element (p, j) goes to pb[(j / NR) stride + p NR + j % NR], stride = panel_stride(kc);
 * columns past nc are zero.
 * Untransposed B is read row by row across all nc columns (a chunk of several panels, see
 * gemm_blocked), so each row is one contiguous run (several cache lines per page opened)
 * instead of one line per row and panel. */
static void LOCAL(pack_b)(int trans, size_t kc, size_t nc, const REAL *restrict b, size_t ldb,
                          REAL *restrict pb) {
    size_t stride = LOCAL(panel_stride)(kc);
    if (!trans) {
        for (size_t p = 0; p < kc; p++) {
            const REAL *src = b + p * ldb;
            for (size_t j = 0; j < nc; j += 64 / sizeof(REAL))
                __builtin_prefetch(src + GEMM_PREFETCH_ROWS * ldb + j, 0, 2);
            for (size_t jr = 0; jr < nc; jr += NR) {
                REAL *dst = pb + jr / NR * stride + p * NR;
                size_t nr = min_size(NR, nc - jr);
                if (nr == NR) {
                    COPY_ROW(dst, src + jr);
                } else {
                    size_t j = 0;
                    for (; j < nr; j++) dst[j] = src[jr + j];
                    for (; j < NR; j++) dst[j] = 0;
                }
            }
        }
        return;
    }
    /* op(B) = B^T: a panel is NR rows of B, transposed in registers where the path can
     * (PACK_BT); the columns of a last, partial panel beyond whole transposes one by one */
    for (size_t jr = 0; jr < nc; jr += NR) {
        size_t nr = min_size(NR, nc - jr);
        const REAL *cols = b + jr * ldb;
        REAL *dst = pb + jr / NR * stride;
        size_t whole = nr / PACK_BT_UNIT * PACK_BT_UNIT;
        PACK_BT(kc, whole, cols, ldb, dst, NR);
        if (whole < NR) {
            for (size_t p = 0; p < kc; p++) {
                size_t j = whole;
                for (; j < nr; j++) dst[p * NR + j] = cols[j * ldb + p];
                for (; j < NR; j++) dst[p * NR + j] = 0;
            }
        }
    }
}

/* ---- the blocked product over one rectangle of C ----------------------------------------- */

/* The stream of probes over the source of the next chunk of B: `runs` runs of `run_len` values,
 * `stride` values apart, `budget` probes per micro-kernel call (see gemm_prefetch). */
static inline gemm_prefetch LOCAL(prefetch_start)(const REAL *first, size_t runs, size_t run_len,
                                                  size_t stride, size_t calls) {
    /* Probes 64 bytes apart from a run's first byte touch every line of the run if there are
     * as many as its bytes span lines: one more than whole lines, unless each run starts a
     * line. */
    size_t bytes = run_len * sizeof(REAL);
    size_t per_run = (bytes + 63) / 64;
    if ((uintptr_t)first % 64 != 0 || stride * sizeof(REAL) % 64 != 0) per_run++;
    size_t lines = runs * per_run;
    gemm_prefetch pf = {.row = (const char *)first,
                        .offset = 0,
                        .row_bytes = per_run * 64,
                        .lines_left = lines,
                        .budget = calls == 0 ? lines : (lines + calls - 1) / calls,
                        .stride = (ptrdiff_t)(stride * sizeof(REAL))};
    return pf;
}

/* One micro-kernel call of block_kernels (C not transposed): the h-row panel at row ir of
 * the packed A block times the packed B micro-panel of column jr, stored into C (mr x nr of
 * it) with the epilogue; `tile` is the MR x NR buffer for tiles not stored from registers. */
static inline void LOCAL(block_tile)(const LOCAL(gemm_problem) *pr, size_t kc, const REAL *pa,
                                     const REAL *panel, size_t ir, size_t h, size_t mr,
                                     size_t jr, size_t nr, REAL beta, const LOCAL(gemm_epi) *ep,
                                     REAL *c, size_t row, size_t col, gemm_prefetch *pf,
                                     REAL *tile) {
    const REAL *pa_panel = pa + ir * kc;
    REAL *ct = c + ir * pr->ldc + jr;
    /* C comes from L3 or memory (an MC x NC block outgrows L2): fetch the tile while the
     * micro-kernel runs, not when it is stored. */
    for (size_t i = 0; i < mr; i++) {
        __builtin_prefetch(ct + i * pr->ldc, 1);
        __builtin_prefetch(ct + i * pr->ldc + nr - 1, 1);
    }
    if (ep && ep->update) {
        /* the parameter the step updates: read and written at the store, as C */
        REAL *ut = ep->update + (row + ir) * ep->ld_update + col + jr;
        for (size_t i = 0; i < mr; i++) {
            __builtin_prefetch(ut + i * ep->ld_update, 1);
            __builtin_prefetch(ut + i * ep->ld_update + nr - 1, 1);
        }
    }
#if GEMM_DIRECT_C
    if (h == MR && mr == MR && nr == NR) {
        if (ep == NULL)
            UKERNEL_C(kc, pa_panel, panel, pr->alpha, beta, ct, pr->ldc, NULL, NULL, 0,
                      FFNC_ACT_IDENTITY, 0, NULL, 0, 0, pf);
        else
            UKERNEL_C(kc, pa_panel, panel, pr->alpha, beta, ct, pr->ldc,
                      ep->bias ? ep->bias + col + jr : NULL,
                      ep->pre_act ? ep->pre_act + (row + ir) * ep->ld_pre_act + col + jr : NULL,
                      ep->ld_pre_act, ep->exact ? ep->act : FFNC_ACT_IDENTITY, ep->act_alpha,
                      ep->update ? ep->update + (row + ir) * ep->ld_update + col + jr : NULL,
                      ep->ld_update, ep->update_rate, pf);
        return;
    }
#endif
    if (h == MR)
        UKERNEL(kc, pa_panel, panel, tile, pf);
    else
        UKERNEL_SMALL(kc, pa_panel, panel, tile, pf);
    LOCAL(store_tile)(tile, mr, nr, pr->alpha, beta, ct, pr->ldc, ep, row + ir, col + jr);
}

/* One MC x KC block of packed A (pa, mc rows, the first `full` in MR-row panels) times the
 * packed B micro-panels of columns [jr_begin, jr_end) of a KC x NC block (pb at the panel of
 * column jr_begin), into C (c at the block's first element, global row and column `row`,
 * `col`); `pf`, when not NULL, is prefetched along the way. */
static void LOCAL(block_kernels)(const LOCAL(gemm_problem) *pr, size_t kc, size_t mc, size_t full,
                                 const REAL *pa, const REAL *pb, size_t jr_begin, size_t jr_end,
                                 REAL beta, const LOCAL(gemm_epi) *ep, REAL *c, size_t row,
                                 size_t col, gemm_prefetch *pf) {
    _Alignas(64) REAL tile[MR * NR];
    size_t b_stride = LOCAL(panel_stride)(kc);
    if (!pr->trans_c) {
        /* Along the rows of C: consecutive calls store the next NR columns of the same MR rows
         * (C's rows are contiguous), so C streams through the hardware prefetchers and open
         * DRAM pages instead of jumping MR rows down a column each call; the A micro-panel
         * stays in L1 and the B micro-panels stream from L2 (a chunk just packed) or L3 (the
         * packed block, in later MC blocks). The same tiles in another order: the same bits.
         * Measured on Zen 3 against the column order, one thread: dW of a batch of 32
         * (TN, k = 32, C of 4 to 64 MiB) 1.23-1.44x in f32 and 1.7-2.2x in f64, k = 128..256
         * 1.08-1.21x, square and MLP-sized NN and NT products 0.97-1.06x (noise). */
        for (size_t ir = 0, h; ir < mc; ir += h) {
            h = LOCAL(panel_height)(ir, full);
            size_t mr = min_size(h, mc - ir);
            for (size_t jr = jr_begin; jr < jr_end; jr += NR) {
                const REAL *panel = pb + (jr - jr_begin) / NR * b_stride;
                LOCAL(block_tile)(pr, kc, pa, panel, ir, h, mr, jr, min_size(NR, jr_end - jr),
                                  beta, ep, c, row, col, pf, tile);
            }
        }
        return;
    }
    /* C^T of the caller's C, stored through the tile buffer (store_tile_transposed): the
     * problem's columns are the caller's rows, so down the problem's columns is along the
     * caller's rows */
    for (size_t jr = jr_begin; jr < jr_end; jr += NR) {
        size_t nr = min_size(NR, jr_end - jr);
        const REAL *panel = pb + (jr - jr_begin) / NR * b_stride;
        for (size_t ir = 0, h; ir < mc; ir += h) {
            h = LOCAL(panel_height)(ir, full);
            if (h == MR)
                UKERNEL(kc, pa + ir * kc, panel, tile, pf);
            else
                UKERNEL_SMALL(kc, pa + ir * kc, panel, tile, pf);
            LOCAL(store_tile_transposed)(tile, min_size(h, mc - ir), nr, pr->alpha, beta, pr->c,
                                         pr->ldc, ep, row + ir, col + jr);
        }
    }
}

/* C[i0:i0+m, j0:j0+n] of the problem, with packing buffers pa (MC x KC) and pb (KC x NC), both
 * sized for this rectangle. */
static void LOCAL(gemm_blocked)(const LOCAL(gemm_problem) *pr, size_t i0, size_t m, size_t j0,
                                size_t n, REAL *restrict pa, REAL *restrict pb) {
    size_t k = pr->k;
    /* K is cut into equal blocks of at most KC (KC = 256: 784 = 4 x 196, not 3 x 256 + 16, as
     * a short last block would pay the C update for few FMAs). The cut depends on k only,
     * never on the threads. M blocks are balanced the same way, in whole MR panels. */
    size_t k_step = block_step(k, KC, 1);
    size_t m_step = block_step(m, MC, MR);
    size_t chunk = GEMM_CHUNK_PANELS * NR;
    /* One MC block covers the rectangle: the packed B is used once, chunk by chunk, so every
     * chunk is packed into the same place, which stays in L1/L2 (the next chunk's stores hit
     * the cache instead of fetching lines of a KC x NC buffer evicted since the last call). */
    int single_block = m <= m_step;
    for (size_t jc = 0; jc < n; jc += GEMM_NC) {
        size_t nc = min_size(GEMM_NC, n - jc);
        for (size_t pc = 0; pc < k; pc += k_step) {
            size_t kc = min_size(k_step, k - pc);
            REAL beta = pc == 0 ? pr->beta : 1;
            const LOCAL(gemm_epi) *ep = pc + kc == k ? pr->ep : NULL;
            size_t b_stride = LOCAL(panel_stride)(kc);
            for (size_t ic = 0; ic < m; ic += m_step) {
                size_t mc = min_size(m_step, m - ic);
                size_t small = LOCAL(small_panels)(mc);
                size_t full = small ? round_up(mc - min_size(mc, small * MRS), MR) : mc;
                LOCAL(pack_a)(pr->trans_a, mc, kc, LOCAL(a_at)(pr, i0 + ic, pc), pr->lda, full,
                              pa);
                REAL *c = LOCAL(c_at)(pr, i0 + ic, j0 + jc);
                if (ic > 0) {
                    /* later MC blocks reuse the packed B block */
                    LOCAL(block_kernels)(pr, kc, mc, full, pa, pb, 0, nc, beta, ep, c, i0 + ic,
                                         j0 + jc, NULL);
                    LOCAL(activate_block_of)(pr, ep, c, mc, nc);
                    continue;
                }
                /* The first MC block packs B a chunk of micro-panels at a time and multiplies
                 * each chunk at once, while it is in L1/L2 (GotoBLAS), instead of packing the
                 * whole KC x NC block through L3 first; the source of the next chunk is
                 * prefetched during the multiplication, so that reading B from memory overlaps
                 * the arithmetic (with small M, B is most of the data). */
                /* the micro-kernel calls per chunk of B: one per row panel and B panel */
                size_t panels = full / MR + (mc - full + MRS - 1) / MRS;
                for (size_t jb = 0; jb < nc; jb += chunk) {
                    size_t nb = min_size(chunk, nc - jb);
                    REAL *pb_chunk = single_block ? pb : pb + jb / NR * b_stride;
                    LOCAL(pack_b)(pr->trans_b, kc, nb, LOCAL(b_at)(pr, pc, j0 + jc + jb), pr->ldb,
                                  pb_chunk);
                    gemm_prefetch pf, *next = NULL;
                    if (!pr->trans_b && jb + nb < nc) {
                        /* (a transposed B is read as NR long rows, which the hardware
                         * prefetchers follow: prefetching it measured no better) */
                        size_t calls = (nb + NR - 1) / NR * panels;
                        pf = LOCAL(prefetch_start)(LOCAL(b_at)(pr, pc, j0 + jc + jb + nb), kc,
                                                   min_size(chunk, nc - jb - nb), pr->ldb, calls);
                        next = &pf;
                    }
                    LOCAL(block_kernels)(pr, kc, mc, full, pa, pb_chunk, jb, jb + nb, beta, ep, c,
                                         i0 + ic, j0 + jc, next);
                }
                LOCAL(activate_block_of)(pr, ep, c, mc, nc);
            }
        }
    }
}

/* Bytes of packing buffers for an m x n rectangle: the A block, then the B block at a 64-byte
 * boundary. Both fit in size_t: they are bounded by MC KC and KC NC values. */
static size_t LOCAL(workspace_bytes)(size_t m, size_t n, size_t k, size_t *b_offset) {
    size_t kc = min_size(k, KC);
    size_t a_bytes = round_up(min_size(m, MC), MR) * kc * sizeof(REAL);
    *b_offset = round_up(a_bytes, 64);
    return *b_offset + round_up(min_size(n, GEMM_NC), NR) / NR * LOCAL(panel_stride)(kc) *
                           sizeof(REAL);
}

/* The rows x columns grid of threads for nth threads: per k step, a thread's tile area plus
 * its packing (weighted by 16, the multiply-adds per cycle a packed value costs about). */
static void LOCAL(thread_grid)(size_t m, size_t n, int nth, int *grid_m, int *grid_n) {
    size_t panels_m = (m + MR - 1) / MR, panels_n = (n + NR - 1) / NR;
    size_t best = SIZE_MAX;
    *grid_m = 1;
    *grid_n = nth;
    for (int gm = 1; gm <= nth; gm++) {
        if (nth % gm != 0) continue;
        int gn = nth / gm;
        size_t rows = (panels_m + (size_t)gm - 1) / (size_t)gm * MR;
        size_t cols = (panels_n + (size_t)gn - 1) / (size_t)gn * NR;
        size_t packing = rows * ((cols + GEMM_NC - 1) / GEMM_NC) + cols;
        size_t cost = rows * cols + 16 * packing;
        if (cost < best) {
            best = cost;
            *grid_m = gm;
            *grid_n = gn;
        }
    }
}

static ffnc_status LOCAL(gemm_packed)(const LOCAL(gemm_problem) *pr) {
    int nt = ffnc_threads_for(saturating_mul3(pr->m, pr->n, pr->k), GEMM_GRAIN);
    if (nt == 1) {
        /* no parallel region at all: even an inactive one costs about a microsecond */
        size_t b_offset;
        char *ws = thread_workspace(LOCAL(workspace_bytes)(pr->m, pr->n, pr->k, &b_offset));
        if (ws == NULL) return FFNC_ERR_OUT_OF_MEMORY;
        LOCAL(gemm_blocked)(pr, 0, pr->m, 0, pr->n, (REAL *)ws, (REAL *)(ws + b_offset));
        return FFNC_OK;
    }
    int failed = 0;
#pragma omp parallel num_threads(nt)
    {
        int nth = omp_get_num_threads(), t = omp_get_thread_num();
        int grid_m, grid_n;
        LOCAL(thread_grid)(pr->m, pr->n, nth, &grid_m, &grid_n);
        size_t panels_m = (pr->m + MR - 1) / MR, panels_n = (pr->n + NR - 1) / NR;
        size_t tm = (size_t)(t / grid_n), tn = (size_t)(t % grid_n);
        size_t i0 = ffnc_block_begin(tm, (size_t)grid_m, panels_m) * MR;
        size_t i1 = min_size(ffnc_block_begin(tm + 1, (size_t)grid_m, panels_m) * MR, pr->m);
        size_t j0 = ffnc_block_begin(tn, (size_t)grid_n, panels_n) * NR;
        size_t j1 = min_size(ffnc_block_begin(tn + 1, (size_t)grid_n, panels_n) * NR, pr->n);
        REAL *pa = NULL, *pb = NULL;
        if (i0 < i1 && j0 < j1) {
            size_t b_offset;
            char *ws = thread_workspace(LOCAL(workspace_bytes)(i1 - i0, j1 - j0, pr->k, &b_offset));
            if (ws == NULL) {
#pragma omp atomic write
                failed = 1;
            } else {
                pa = (REAL *)ws;
                pb = (REAL *)(ws + b_offset);
            }
        }
        /* Nothing is written to C unless every thread has its buffers. */
#pragma omp barrier
        int any_failed;
#pragma omp atomic read
        any_failed = failed;
        if (!any_failed && pa != NULL) LOCAL(gemm_blocked)(pr, i0, i1 - i0, j0, j1 - j0, pa, pb);
    }
    return failed ? FFNC_ERR_OUT_OF_MEMORY : FFNC_OK;
}

/* ---- small problems, no packing ----------------------------------------------------------- */

#define GEMM_SMALL_COLS 64

/* sum over p < k of x[p incx] y[p], in eight lanes (p mod 8) added in a fixed tree: the
 * compiler vectorizes the lanes, and the order is the same on every path. */
static inline REAL LOCAL(dot)(size_t k, const REAL *x, size_t incx, const REAL *y) {
    REAL lane[8] = {0};
    size_t p = 0;
    if (incx == 1) {
        for (; p + 8 <= k; p += 8)
            for (size_t l = 0; l < 8; l++) lane[l] = GEMM_FMA(x[p + l], y[p + l], lane[l]);
    } else {
        for (; p + 8 <= k; p += 8)
            for (size_t l = 0; l < 8; l++) lane[l] = GEMM_FMA(x[(p + l) * incx], y[p + l], lane[l]);
    }
    for (size_t l = 0; p < k; p++, l++) lane[l] = GEMM_FMA(x[p * incx], y[p], lane[l]);
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* sum over p < k of x[p incx] y[p incy], one FMA after the other in the order of p: the order
 * the packed kernels and the row-at-a-time path below use. Only for short sums or few of them:
 * each FMA waits for the last. */
static inline REAL LOCAL(dot_in_order)(size_t k, const REAL *x, size_t incx, const REAL *y,
                                       size_t incy) {
    REAL sum = 0;
    for (size_t p = 0; p < k; p++) sum = GEMM_FMA(x[p * incx], y[p * incy], sum);
    return sum;
}

/* Below these, a vector loop's set-up costs more than it saves (a 2-16-2 network's GEMMs). */
#define GEMM_SMALL_DOT_K 8
#define GEMM_SMALL_ROW_N 8

static void LOCAL(gemm_small)(const LOCAL(gemm_problem) *pr) {
    REAL acc[GEMM_SMALL_COLS];
    size_t a_step = pr->trans_a ? pr->lda : 1; /* between op(A)(i, p) and op(A)(i, p + 1) */
    for (size_t i = 0; i < pr->m; i++) {
        const REAL *a_row = LOCAL(a_at)(pr, i, 0);
        REAL *c_row = pr->c + i * pr->ldc;
        for (size_t j0 = 0; j0 < pr->n; j0 += GEMM_SMALL_COLS) {
            size_t w = min_size(GEMM_SMALL_COLS, pr->n - j0);
            if (pr->trans_b && pr->k < GEMM_SMALL_DOT_K) {
                for (size_t j = 0; j < w; j++)
                    acc[j] = LOCAL(dot_in_order)(pr->k, a_row, a_step,
                                                 pr->b + (j0 + j) * pr->ldb, 1);
            } else if (pr->trans_b) {
                for (size_t j = 0; j < w; j++)
                    acc[j] = LOCAL(dot)(pr->k, a_row, a_step, pr->b + (j0 + j) * pr->ldb);
            } else if (w < GEMM_SMALL_ROW_N) {
                for (size_t j = 0; j < w; j++)
                    acc[j] = LOCAL(dot_in_order)(pr->k, a_row, a_step, pr->b + j0 + j, pr->ldb);
            } else {
                for (size_t j = 0; j < w; j++) acc[j] = 0;
                for (size_t p = 0; p < pr->k; p++) {
                    REAL aip = a_row[p * a_step];
                    const REAL *b_row = pr->b + p * pr->ldb + j0;
                    for (size_t j = 0; j < w; j++) acc[j] = GEMM_FMA(aip, b_row[j], acc[j]);
                }
            }
            LOCAL(update_row)(acc, w, pr->alpha, pr->beta, c_row + j0);
            if (pr->ep) LOCAL(epilogue_row)(pr->ep, c_row + j0, w, i, j0);
        }
        LOCAL(activate_block)(pr->ep, c_row, pr->ldc, 1, pr->n);
    }
}

/* ---- tiny problems: rows of the product in a few vectors of accumulators -----------------
 * Up to GEMM_SMALL_WORK multiply-adds (the products of a 2-16-2 network) the loops of
 * gemm_small cost more than the arithmetic: a dot product's or a vector loop's set-up per
 * element or per k step. Here each row of the product is computed in blocks of one or two
 * GEMM_TINY_LANES-wide fixed accumulators (each one or two registers), each k step one
 * broadcast and one multiply-add per vector; two at once where the row has more than one
 * left, so that two chains of multiply-adds overlap their latency (a row of 16: 1.2-1.4x on
 * Zen 3, dev/tiny_ab.c; blocks of four rows instead were 2x slower: GCC kept a 4 x W array
 * in memory, or unrolled it into scalars). The product is C, or C^T = op(B)^T op(A)^T
 * when C has fewer columns than a vector and more rows (dW of a 2-class layer: 16 x 2 becomes
 * 2 x 16, two rows of whole vectors instead of sixteen mostly empty ones). The right-hand
 * operand is read in place when its rows are contiguous whole vectors, else from a zero-padded
 * copy. Each element is the same chain of FMAs over p, in order from zero, as on every other
 * path: the same bits. */

#define GEMM_TINY_LANES 8
/* values in the right-hand copy and in a transposed product (4 KiB f32, 8 KiB f64 each) */
#define GEMM_TINY_VALUES 1024

/* A matrix element (r, c) at base[r rs + c cs]. */
typedef struct LOCAL(strided) {
    const REAL *base;
    size_t rs, cs;
} LOCAL(strided);

/* Whether gemm_tiny computes C^T, and whether its buffers hold the problem. */
static inline int LOCAL(tiny_transposed)(const LOCAL(gemm_problem) *pr) {
    return pr->n < GEMM_TINY_LANES && pr->m > pr->n;
}
static inline int LOCAL(tiny_fits)(const LOCAL(gemm_problem) *pr) {
    size_t rows = pr->m, cols = pr->n;
    if (LOCAL(tiny_transposed)(pr)) {
        rows = pr->n;
        cols = pr->m;
        if (rows * round_up(cols, GEMM_TINY_LANES) > GEMM_TINY_VALUES) return 0;
    }
    return cols <= GEMM_TINY_VALUES && pr->k * round_up(cols, GEMM_TINY_LANES) <= GEMM_TINY_VALUES;
}

/* dst[p ld + j] = src(p, j) for j < cols, 0 up to ld. The padding is zeroed in one sweep
 * first: filled row by row, it became one call of memset per row. */
static inline void LOCAL(tiny_copy)(size_t k, size_t cols, LOCAL(strided) src, REAL *dst,
                                    size_t ld) {
    for (size_t q = 0; q < k * ld; q++) dst[q] = 0;
    for (size_t p = 0; p < k; p++)
        for (size_t j = 0; j < cols; j++) dst[p * ld + j] = src.base[p * src.rs + j * src.cs];
}

static void LOCAL(gemm_tiny)(const LOCAL(gemm_problem) *pr) {
    enum { W = GEMM_TINY_LANES };
    _Alignas(64) REAL copy[GEMM_TINY_VALUES];
    _Alignas(64) REAL product[GEMM_TINY_VALUES];
    int transposed = LOCAL(tiny_transposed)(pr);
    /* the product is rows x cols = lhs (rows x k) times rhs (k x cols) */
    size_t rows = transposed ? pr->n : pr->m, cols = transposed ? pr->m : pr->n;
    LOCAL(strided) a = {pr->a, pr->trans_a ? 1 : pr->lda, pr->trans_a ? pr->lda : 1};
    LOCAL(strided) b = {pr->b, pr->trans_b ? 1 : pr->ldb, pr->trans_b ? pr->ldb : 1};
    LOCAL(strided) lhs = a, rhs = b; /* op(A)(i, p) = a.base[i a.rs + p a.cs] */
    if (transposed) {
        lhs = (LOCAL(strided)){b.base, b.cs, b.rs};
        rhs = (LOCAL(strided)){a.base, a.cs, a.rs};
    }
    const REAL *r = rhs.base;
    size_t ldr = rhs.rs;
    if (rhs.cs != 1 || cols % W != 0) {
        ldr = round_up(cols, W);
        LOCAL(tiny_copy)(pr->k, cols, rhs, copy, ldr);
        r = copy;
    }
    size_t ldp = round_up(cols, W);
    for (size_t i = 0; i < rows; i++) {
        const REAL *l_row = lhs.base + i * lhs.rs;
        REAL *c_row = pr->c + i * pr->ldc;
        size_t span;
        for (size_t j0 = 0; j0 < cols; j0 += span) {
            REAL two[2 * W], one[W];
            const REAL *acc = one;
            span = cols - j0 > W ? 2 * W : W;
            if (span == 2 * W) {
                /* two vectors at once: two independent chains of multiply-adds, where one
                 * waits out each one's latency (4 cycles on Zen 3) at every k step */
                for (size_t l = 0; l < 2 * W; l++) two[l] = 0;
                for (size_t p = 0; p < pr->k; p++) {
                    REAL lip = l_row[p * lhs.cs];
                    const REAL *r_row = r + p * ldr + j0;
                    for (size_t l = 0; l < 2 * W; l++) two[l] = GEMM_FMA(lip, r_row[l], two[l]);
                }
                acc = two;
            } else {
                for (size_t l = 0; l < W; l++) one[l] = 0;
                for (size_t p = 0; p < pr->k; p++) {
                    REAL lip = l_row[p * lhs.cs];
                    const REAL *r_row = r + p * ldr + j0;
                    for (size_t l = 0; l < W; l++) one[l] = GEMM_FMA(lip, r_row[l], one[l]);
                }
            }
            if (transposed) {
                memcpy(product + i * ldp + j0, acc, span * sizeof *acc);
                continue;
            }
            size_t w = min_size(span, cols - j0);
            LOCAL(update_row)(acc, w, pr->alpha, pr->beta, c_row + j0);
            if (pr->ep) LOCAL(epilogue_row)(pr->ep, c_row + j0, w, i, j0);
        }
        if (!transposed) LOCAL(activate_block)(pr->ep, c_row, pr->ldc, 1, pr->n);
    }
    if (!transposed) return;
    /* row i of C is column i of the product */
    REAL row[GEMM_TINY_LANES];
    for (size_t i = 0; i < pr->m; i++) {
        REAL *c_row = pr->c + i * pr->ldc;
        for (size_t j = 0; j < pr->n; j++) row[j] = product[j * ldp + i];
        LOCAL(update_row)(row, pr->n, pr->alpha, pr->beta, c_row);
        if (pr->ep) LOCAL(epilogue_row)(pr->ep, c_row, pr->n, i, 0);
        LOCAL(activate_block)(pr->ep, c_row, pr->ldc, 1, pr->n);
    }
}
#undef GEMM_TINY_LANES
#undef GEMM_TINY_VALUES

/* C = beta C (then the epilogue): k == 0 or alpha == 0, where A and B are not read. */
static void LOCAL(gemm_scale)(const LOCAL(gemm_problem) *pr) {
    int nt = ffnc_threads_for(saturating_mul3(pr->m, pr->n, 1), FFNC_GRAIN_ELEMENTWISE);
    FFNC_PARALLEL_FOR(for (size_t i = 0; i < pr->m; i++) {
        REAL *c_row = pr->c + i * pr->ldc;
        if (pr->beta == 0)
            for (size_t j = 0; j < pr->n; j++) c_row[j] = 0;
        else
            for (size_t j = 0; j < pr->n; j++) c_row[j] = pr->beta * c_row[j];
        if (pr->ep) LOCAL(epilogue_row)(pr->ep, c_row, pr->n, i, 0);
        LOCAL(activate_block)(pr->ep, c_row, pr->ldc, 1, pr->n);
    });
}

ffnc_status KERNEL(gemm)(int trans_a, int trans_b, size_t m, size_t n, size_t k, REAL alpha,
                         const REAL *a, size_t lda, const REAL *b, size_t ldb, REAL beta, REAL *c,
                         size_t ldc, const ffnc_gemm_epilogue *epilogue) {
    if (m == 0 || n == 0) return FFNC_OK;
    LOCAL(gemm_epi) ep;
    if (epilogue) {
        ep.bias = epilogue->bias;
        ep.pre_act = epilogue->pre_act;
        ep.ld_pre_act = epilogue->ld_pre_act;
        ep.act = epilogue->act;
        ep.act_alpha = (REAL)epilogue->act_alpha;
        ep.exact = LOCAL(exact_activation)(ep.act);
        ep.update = epilogue->update;
        ep.ld_update = epilogue->ld_update;
        ep.update_rate = (REAL)epilogue->update_rate;
        /* the step reads C at its store, which a per-block activation changes afterwards */
        if (ep.update && !ep.exact) return FFNC_ERR_INVALID_ARGUMENT;
    }
    LOCAL(gemm_problem) pr = {trans_a != 0, trans_b != 0, m, n, k, alpha, beta, a, lda,
                              b, ldb, c, ldc, epilogue ? &ep : NULL, 0};
    if (k == 0 || alpha == 0) {
        LOCAL(gemm_scale)(&pr);
        return FFNC_OK;
    }
    int small = saturating_mul3(m, n, k) <= GEMM_SMALL_WORK;
    if (small && LOCAL(tiny_fits)(&pr)) {
        LOCAL(gemm_tiny)(&pr);
        return FFNC_OK;
    }
    if (small || m == 1 || (n == 1 && trans_b)) {
        LOCAL(gemm_small)(&pr);
        return FFNC_OK;
    }
    if (n * 8 <= NR * 5 && m >= 2 * NR) {
        /* Few columns (a 10-class output layer fills 10 of 16): compute C^T = op(B)^T op(A)^T
         * instead, whose NR-wide panels run along M and whose few rows fit the MR / MRS
         * panels (10 = 6 + 4), rather than padding most of every panel. Each element is the
         * same operations in the same order (a product commutes), so the same bits. Measured
         * on Zen 3, f32, against the ordinary path: N = 10 1.31-1.47x (NN, NT, TN, and the
         * dense layer 1.27x); N = 12 0.96x, so the bound is 5/8 of the panel width. */
        LOCAL(gemm_problem) transposed = {!pr.trans_b, !pr.trans_a, n, m, k, alpha, beta, b,
                                          ldb, a, lda, c, ldc, pr.ep, 1};
        return LOCAL(gemm_packed)(&transposed);
    }
    return LOCAL(gemm_packed)(&pr);
}

/* ---- backward helper ---------------------------------------------------------------------- */

#define GEMM_BIAS_TILE 256

ffnc_status KERNEL(dense_backward_pre)(ffnc_activation act, REAL alpha, size_t rows, size_t cols,
                                       const REAL *diff_dst, const REAL *saved, REAL *diff_pre,
                                       REAL *diff_bias, int accumulate) {
    if (!LOCAL(exact_activation)(act)) {
        /* two passes through the kernels themselves: their derivative is the costly part */
        FFNC_TRY(KERNEL(activation_backward)(act, alpha, rows * cols, diff_dst, saved, diff_pre));
        return diff_bias ? KERNEL(bias_backward)(rows, cols, diff_pre, diff_bias, accumulate)
                         : FFNC_OK;
    }
    int nt = ffnc_threads_for(rows * cols, FFNC_GRAIN_ELEMENTWISE);
    if (diff_bias == NULL) {
        FFNC_PARALLEL_FOR(for (size_t r = 0; r < rows; r++)
            LOCAL(derivative_row)(act, alpha, cols, diff_dst + r * cols, saved + r * cols,
                                  diff_pre + r * cols););
        return FFNC_OK;
    }
    /* One pass: column tiles split across threads; each sums all its rows in order in double,
     * as bias_backward does, while the piece of diff_pre just written is in L1. */
    size_t tiles = (cols + GEMM_BIAS_TILE - 1) / GEMM_BIAS_TILE;
    if ((size_t)nt > tiles) nt = (int)tiles;
    FFNC_PARALLEL_FOR(for (size_t t = 0; t < tiles; t++) {
        size_t c0 = t * GEMM_BIAS_TILE;
        size_t w = min_size(GEMM_BIAS_TILE, cols - c0);
        double sum[GEMM_BIAS_TILE];
        for (size_t j = 0; j < w; j++) sum[j] = 0; /* not all GEMM_BIAS_TILE: a narrow layer */
        for (size_t r = 0; r < rows; r++) {
            size_t at = r * cols + c0;
            LOCAL(derivative_row)(act, alpha, w, diff_dst + at, saved + at, diff_pre + at);
            for (size_t j = 0; j < w; j++) sum[j] += (double)diff_pre[at + j];
        }
        for (size_t j = 0; j < w; j++)
            diff_bias[c0 + j] = (REAL)(accumulate ? (double)diff_bias[c0 + j] + sum[j] : sum[j]);
    });
    return FFNC_OK;
}
#undef GEMM_BIAS_TILE

#undef LOCAL
#undef MR
#undef NR
#undef MC
#undef UKERNEL
#undef UKERNEL_C
#undef KC
#undef COPY_ROW
#undef MRS
#undef UKERNEL_SMALL
#undef PACK_BT
#undef PACK_BT_UNIT
#undef PACK_A_ROWS
