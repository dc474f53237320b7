/* Plans: creation (where every instruction is checked once, so runs need no bounds checks),
 * destruction, and the run loops. The instructions themselves are executed by exec.c. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, for ffnc_plan_run_timed */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plan_internal.h"

/* ---- operands of each opcode ------------------------------------------------------------- */

enum { READ = 0, WRITE = 1 };

typedef struct operand_spec {
    int ref;        /* index into instr->refs */
    int access;     /* READ or WRITE */
    int optional;   /* may be FFNC_PLAN_NONE */
    int int64;      /* int64 labels (an FFNC_PLAN_INPUT_INT64 slot) rather than the dtype */
    size_t elems;   /* elements touched, at the batch size asked for */
} operand_spec;

static ffnc_status size_at(ffnc_plan_size s, size_t batch, size_t *out) {
    size_t scaled;
    FFNC_TRY(ffnc_mul_size(s.per_batch, batch, &scaled));
    FFNC_REQUIRE(scaled <= SIZE_MAX - s.fixed, FFNC_ERR_SIZE_OVERFLOW);
    *out = s.fixed + scaled;
    return FFNC_OK;
}

static ffnc_status add_size(size_t a, size_t b, size_t *out) {
    FFNC_REQUIRE(a <= SIZE_MAX - b, FFNC_ERR_SIZE_OVERFLOW);
    *out = a + b;
    return FFNC_OK;
}

/* Elements spanned by rows x cols accesses at strides (rs, cs): 0 when empty. */
static ffnc_status strided_extent(size_t rows, size_t cols, size_t rs, size_t cs, size_t *out) {
    if (rows == 0 || cols == 0) {
        *out = 0;
        return FFNC_OK;
    }
    size_t a, b;
    FFNC_TRY(ffnc_mul_size(rows - 1, rs, &a));
    FFNC_TRY(ffnc_mul_size(cols - 1, cs, &b));
    FFNC_TRY(add_size(a, b, out));
    return add_size(*out, 1, out);
}

static int is_activation(int32_t act) { return act >= 0 && act < FFNC_ACT_COUNT; }

static int alpha_ok(int32_t act, double alpha) {
    if (act == FFNC_ACT_LEAKY_RELU || act == FFNC_ACT_ELU) return isfinite(alpha) && alpha >= 0;
    return 1;
}

#define SPEC(r, acc, opt, i64, count)                                                        \
    do {                                                                                     \
        spec[*count_out] = (operand_spec){(r), (acc), (opt), (i64), (count)};                \
        (*count_out)++;                                                                      \
    } while (0)

/* The operands instruction `in` touches at `batch`, with their sizes; INVALID_ARGUMENT for an
 * unknown opcode or sub-op. `no_alias` is set for kernels whose outputs must not overlap
 * their inputs. */
static ffnc_status describe(const ffnc_plan_instr *in, size_t batch, operand_spec *spec,
                            int *count_out, int *no_alias) {
    size_t m, n, k, mn, mk, kn;
    FFNC_TRY(size_at(in->m, batch, &m));
    FFNC_TRY(size_at(in->n, batch, &n));
    FFNC_TRY(size_at(in->k, batch, &k));
    FFNC_TRY(ffnc_mul_size(m, n, &mn));
    FFNC_TRY(ffnc_mul_size(m, k, &mk));
    FFNC_TRY(ffnc_mul_size(k, n, &kn));
    *count_out = 0;
    *no_alias = 0;
    switch ((ffnc_plan_opcode)in->opcode) {
    case FFNC_OP_DENSE_FORWARD:
        FFNC_REQUIRE(is_activation(in->subop) && alpha_ok(in->subop, in->alpha),
                     FFNC_ERR_INVALID_ARGUMENT);
        *no_alias = 1;
        SPEC(0, READ, 0, 0, mk);
        SPEC(1, READ, 0, 0, kn);
        SPEC(2, READ, 1, 0, n);
        SPEC(3, WRITE, 1, 0, mn);
        SPEC(4, WRITE, 0, 0, mn);
        return FFNC_OK;
    case FFNC_OP_DENSE_BACKWARD: {
        FFNC_REQUIRE(is_activation(in->subop) && alpha_ok(in->subop, in->alpha),
                     FFNC_ERR_INVALID_ARGUMENT);
        int identity = in->subop == FFNC_ACT_IDENTITY;
        int want_dw = in->refs[6].arena != FFNC_PLAN_NONE;
        int want_dsrc = in->refs[5].arena != FFNC_PLAN_NONE;
        *no_alias = 1;
        SPEC(0, READ, !want_dw, 0, mk);
        SPEC(1, READ, !want_dsrc, 0, kn);
        SPEC(2, READ, identity, 0, mn);
        SPEC(3, READ, 0, 0, mn);
        SPEC(4, WRITE, identity, 0, mn);
        SPEC(5, WRITE, 1, 0, mk);
        SPEC(6, WRITE, 1, 0, kn);
        SPEC(7, WRITE, 1, 0, n);
        return FFNC_OK;
    }
    case FFNC_OP_GEMM:
        FFNC_REQUIRE(isfinite(in->alpha), FFNC_ERR_INVALID_ARGUMENT);
        *no_alias = 1;
        SPEC(0, READ, 0, 0, mk);
        SPEC(1, READ, 0, 0, kn);
        SPEC(2, WRITE, 0, 0, mn);
        return FFNC_OK;
    case FFNC_OP_ACT_FORWARD:
        FFNC_REQUIRE(is_activation(in->subop) && alpha_ok(in->subop, in->alpha),
                     FFNC_ERR_INVALID_ARGUMENT);
        SPEC(0, READ, 0, 0, n);
        SPEC(1, WRITE, 0, 0, n);
        return FFNC_OK;
    case FFNC_OP_ACT_BACKWARD:
        FFNC_REQUIRE(is_activation(in->subop) && alpha_ok(in->subop, in->alpha),
                     FFNC_ERR_INVALID_ARGUMENT);
        SPEC(0, READ, 0, 0, n);
        SPEC(1, READ, 0, 0, n);
        SPEC(2, WRITE, 0, 0, n);
        return FFNC_OK;
    case FFNC_OP_BIAS_FORWARD:
        SPEC(0, READ, 0, 0, mn);
        SPEC(1, READ, 0, 0, n);
        SPEC(2, WRITE, 0, 0, mn);
        return FFNC_OK;
    case FFNC_OP_COLSUM:
        *no_alias = 1;
        SPEC(0, READ, 0, 0, mn);
        SPEC(1, WRITE, 0, 0, n);
        return FFNC_OK;
    case FFNC_OP_ROWSUM:
        *no_alias = 1;
        SPEC(0, READ, 0, 0, mn);
        SPEC(1, WRITE, 0, 0, m);
        return FFNC_OK;
    case FFNC_OP_SUM_ALL:
        *no_alias = 1;
        SPEC(0, READ, 0, 0, n);
        SPEC(1, WRITE, 0, 0, 1);
        return FFNC_OK;
    case FFNC_OP_XENT_FORWARD:
        FFNC_REQUIRE(isfinite(in->alpha), FFNC_ERR_INVALID_ARGUMENT);
        SPEC(0, READ, 0, 0, mn);
        SPEC(1, READ, 0, 1, m);
        SPEC(2, WRITE, 0, 0, mn);
        SPEC(3, WRITE, 0, 0, 1);
        return FFNC_OK;
    case FFNC_OP_XENT_BACKWARD:
        FFNC_REQUIRE(isfinite(in->alpha), FFNC_ERR_INVALID_ARGUMENT);
        SPEC(0, READ, 0, 0, mn);
        SPEC(1, READ, 0, 1, m);
        SPEC(2, READ, 1, 0, 1);
        SPEC(3, WRITE, 0, 0, mn);
        return FFNC_OK;
    case FFNC_OP_BCE_FORWARD:
    case FFNC_OP_MSE_FORWARD:
    case FFNC_OP_L1_FORWARD:
        FFNC_REQUIRE(isfinite(in->alpha), FFNC_ERR_INVALID_ARGUMENT);
        SPEC(0, READ, 0, 0, n);
        SPEC(1, READ, 0, 0, n);
        SPEC(2, WRITE, 0, 0, 1);
        return FFNC_OK;
    case FFNC_OP_BCE_BACKWARD:
    case FFNC_OP_MSE_BACKWARD:
    case FFNC_OP_L1_BACKWARD:
        FFNC_REQUIRE(isfinite(in->alpha), FFNC_ERR_INVALID_ARGUMENT);
        SPEC(0, READ, 0, 0, n);
        SPEC(1, READ, 0, 0, n);
        SPEC(2, READ, 1, 0, 1);
        SPEC(3, WRITE, 0, 0, n);
        return FFNC_OK;
    case FFNC_OP_BINARY: {
        FFNC_REQUIRE(in->subop >= FFNC_BINARY_ADD && in->subop <= FFNC_BINARY_EQUAL,
                     FFNC_ERR_INVALID_ARGUMENT);
        size_t ea, eb;
        FFNC_TRY(strided_extent(m, n, in->strides[0], in->strides[1], &ea));
        FFNC_TRY(strided_extent(m, n, in->strides[2], in->strides[3], &eb));
        SPEC(0, READ, 0, 0, ea);
        SPEC(1, READ, 0, 0, eb);
        SPEC(2, WRITE, 0, 0, mn);
        return FFNC_OK;
    }
    case FFNC_OP_UNARY: {
        FFNC_REQUIRE(in->subop >= FFNC_UNARY_COPY && in->subop <= FFNC_UNARY_SQRT,
                     FFNC_ERR_INVALID_ARGUMENT);
        FFNC_REQUIRE(isfinite(in->alpha), FFNC_ERR_INVALID_ARGUMENT);
        size_t ea;
        FFNC_TRY(strided_extent(m, n, in->strides[0], in->strides[1], &ea));
        SPEC(0, READ, 0, 0, ea);
        SPEC(1, WRITE, 0, 0, mn);
        return FFNC_OK;
    }
    case FFNC_OP_FILL:
    case FFNC_OP_FILL_COUNT:
        SPEC(0, WRITE, 0, 0, n);
        return FFNC_OK;
    case FFNC_OP_SGD:
        *no_alias = 1;
        SPEC(0, WRITE, 0, 0, n);
        SPEC(1, READ, 0, 0, n);
        return FFNC_OK;
    case FFNC_OP_MOMENTUM:
        *no_alias = 1;
        SPEC(0, WRITE, 0, 0, n);
        SPEC(1, READ, 0, 0, n);
        SPEC(2, WRITE, 0, 0, n);
        return FFNC_OK;
    case FFNC_OP_ADAM:
        *no_alias = 1;
        SPEC(0, WRITE, 0, 0, n);
        SPEC(1, READ, 0, 0, n);
        SPEC(2, WRITE, 0, 0, n);
        SPEC(3, WRITE, 0, 0, n);
        return FFNC_OK;
    /* ---- 60-69: optimizer instructions ---- */
    case FFNC_OP_RMSPROP:
        *no_alias = 1;
        SPEC(0, WRITE, 0, 0, n);
        SPEC(1, READ, 0, 0, n);
        SPEC(2, WRITE, 0, 0, n);
        /* the buffers the variant uses, and no others */
        if (in->hyper[4] != 0) SPEC(3, WRITE, 0, 0, n);
        if (in->flags & FFNC_PLAN_CENTERED) SPEC(4, WRITE, 0, 0, n);
        return FFNC_OK;
    case FFNC_OP_CLIP_GRAD_NORM:
        *no_alias = 1;
        SPEC(0, WRITE, 0, 0, n);
        SPEC(1, WRITE, 1, 0, 1);
        return FFNC_OK;
    /* ---- 30-59: selection, row-wise, index and layout instructions ---- */
    case FFNC_OP_WHERE: {
        size_t ec, ea, eb;
        FFNC_TRY(strided_extent(m, n, in->strides[0], in->strides[1], &ec));
        FFNC_TRY(strided_extent(m, n, in->strides[2], in->strides[3], &ea));
        FFNC_TRY(strided_extent(m, n, in->strides[4], in->strides[5], &eb));
        *no_alias = 1;
        SPEC(0, READ, 0, 0, ec);
        SPEC(1, READ, 0, 0, ea);
        SPEC(2, READ, 0, 0, eb);
        SPEC(3, WRITE, 0, 0, mn);
        return FFNC_OK;
    }
    case FFNC_OP_ONE_HOT:
        *no_alias = 1;
        SPEC(0, READ, 0, 0, m);
        SPEC(1, READ, 1, 0, m);
        SPEC(2, WRITE, 0, 0, mn);
        return FFNC_OK;
    case FFNC_OP_FROM_INT64:
        FFNC_REQUIRE(in->subop == 0 || in->subop == 1, FFNC_ERR_INVALID_ARGUMENT);
        SPEC(0, READ, 0, 1, n);
        SPEC(1, WRITE, 0, 0, n);
        return FFNC_OK;
    case FFNC_OP_SOFTMAX:
    case FFNC_OP_LOG_SOFTMAX:
    case FFNC_OP_LOGSUMEXP:
    case FFNC_OP_MAX_ARGMAX:
    case FFNC_OP_SOFTMAX_BACKWARD:
    case FFNC_OP_LOG_SOFTMAX_BACKWARD: {
        size_t mnk;
        FFNC_TRY(ffnc_mul_size(mn, k, &mnk));
        *no_alias = 1;
        SPEC(0, READ, 0, 0, mnk);
        if (in->opcode == FFNC_OP_LOGSUMEXP) {
            SPEC(1, WRITE, 0, 0, mk);
        } else if (in->opcode == FFNC_OP_MAX_ARGMAX) {
            FFNC_REQUIRE(n >= 1, FFNC_ERR_INVALID_ARGUMENT); /* a maximum of nothing */
            FFNC_REQUIRE(in->refs[1].arena != FFNC_PLAN_NONE ||
                             in->refs[2].arena != FFNC_PLAN_NONE,
                         FFNC_ERR_INVALID_ARGUMENT);
            SPEC(1, WRITE, 1, 0, mk);
            SPEC(2, WRITE, 1, 0, mk);
        } else if (in->opcode == FFNC_OP_SOFTMAX_BACKWARD ||
                   in->opcode == FFNC_OP_LOG_SOFTMAX_BACKWARD) {
            SPEC(1, READ, 0, 0, mnk);
            SPEC(2, WRITE, 0, 0, mnk);
        } else {
            SPEC(1, WRITE, 0, 0, mnk);
        }
        return FFNC_OK;
    }
    case FFNC_OP_COPY_STRIDED: {
        const size_t *s = in->strides;
        /* Distinct destinations (rows laid out one after another), so threads never write
         * one element twice. */
        FFNC_REQUIRE(n <= 1 || s[3] >= 1, FFNC_ERR_INVALID_ARGUMENT);
        if (m > 1 && n > 0) {
            size_t row_span;
            FFNC_TRY(strided_extent(1, n, 0, s[3], &row_span));
            FFNC_REQUIRE(s[2] >= row_span, FFNC_ERR_INVALID_ARGUMENT);
        }
        size_t es, ed;
        FFNC_TRY(strided_extent(m, n, s[0], s[1], &es));
        FFNC_TRY(strided_extent(m, n, s[2], s[3], &ed));
        *no_alias = 1;
        SPEC(0, READ, 0, 0, es);
        SPEC(1, WRITE, 0, 0, ed);
        return FFNC_OK;
    }
    case FFNC_OP_PRELU_FORWARD:
        FFNC_REQUIRE(k == 1 || k == n, FFNC_ERR_INVALID_ARGUMENT);
        SPEC(0, READ, 0, 0, mn);
        SPEC(1, READ, 0, 0, k);
        SPEC(2, WRITE, 0, 0, mn);
        return FFNC_OK;
    case FFNC_OP_PRELU_BACKWARD:
        FFNC_REQUIRE(k == 1 || k == n, FFNC_ERR_INVALID_ARGUMENT);
        *no_alias = 1;
        SPEC(0, READ, 0, 0, mn);
        SPEC(1, READ, 0, 0, mn);
        SPEC(2, READ, 0, 0, k);
        SPEC(3, WRITE, 0, 0, mn);
        SPEC(4, WRITE, 0, 0, k);
        return FFNC_OK;
    case FFNC_OP_TRANSPOSE:
        *no_alias = 1;
        SPEC(0, READ, 0, 0, mn);
        SPEC(1, WRITE, 0, 0, mn);
        return FFNC_OK;
    case FFNC_OP_SQDIST:
        *no_alias = 1;
        SPEC(0, READ, 0, 0, mk);
        SPEC(1, READ, 0, 0, kn);
        SPEC(2, WRITE, 0, 0, mn);
        return FFNC_OK;
    case FFNC_OP_DROPOUT: {
        FFNC_REQUIRE(in->alpha >= 0 && in->alpha < 1, FFNC_ERR_INVALID_ARGUMENT);
        for (int h = 0; h < 2; h++)
            FFNC_REQUIRE(in->hyper[h] >= 0 && in->hyper[h] < 4294967296.0 &&
                             in->hyper[h] == floor(in->hyper[h]),
                         FFNC_ERR_INVALID_ARGUMENT);
        SPEC(0, READ, 0, 0, n);
        SPEC(1, WRITE, 0, 0, n);
        return FFNC_OK;
    }
    }
    return FFNC_ERR_INVALID_ARGUMENT;
}

/* Hyper-parameters are checked by the update functions themselves, here on no elements. */
static ffnc_status check_hyper(ffnc_dtype dtype, const ffnc_plan_instr *in) {
    const double *h = in->hyper;
    switch ((ffnc_plan_opcode)in->opcode) {
    case FFNC_OP_SGD: return ffnc_sgd_update(dtype, 0, NULL, NULL, h[0], h[1]);
    case FFNC_OP_MOMENTUM:
        return ffnc_momentum_update(dtype, 0, NULL, NULL, NULL, h[0], h[1], h[2], 0);
    case FFNC_OP_ADAM:
        return ffnc_adam_update(dtype, 0, NULL, NULL, NULL, NULL, 1, h[0], h[1], h[2], h[3], h[4],
                                0);
    case FFNC_OP_RMSPROP:
        return ffnc_rmsprop_update(dtype, 0, NULL, NULL, NULL, NULL, NULL, h[0], h[1], h[2], h[3],
                                   h[4], 0);
    case FFNC_OP_CLIP_GRAD_NORM: return ffnc_clip_by_global_norm(dtype, 0, NULL, h[0], NULL);
    default: return FFNC_OK;
    }
}

/* The update instructions, whose hyper[0] is the learning rate. */
static int is_update(int32_t opcode) {
    return opcode == FFNC_OP_SGD || opcode == FFNC_OP_MOMENTUM || opcode == FFNC_OP_ADAM ||
           opcode == FFNC_OP_RMSPROP;
}

/* Whether update instruction `in` accepts the learning rate `lr` (its other hyper-parameters
 * were checked at creation). */
static ffnc_status check_update_lr(ffnc_dtype dtype, const ffnc_plan_instr *in, double lr) {
    ffnc_plan_instr changed = *in;
    changed.hyper[0] = lr;
    return check_hyper(dtype, &changed);
}

/* The elements available behind `ref` at `batch` (input slots grow with the batch). */
static ffnc_status available(const ffnc_plan_desc *d, ffnc_plan_ref ref, size_t batch,
                             size_t *out) {
    if (ref.arena == FFNC_PLAN_INPUT) return size_at(d->inputs[ref.slot].size, batch, out);
    *out = d->arena_size[ref.arena - FFNC_PLAN_PARAMS];
    return FFNC_OK;
}

static int ranges_overlap(ffnc_plan_ref a, size_t na, ffnc_plan_ref b, size_t nb) {
    if (na == 0 || nb == 0 || a.arena != b.arena) return 0;
    if (a.arena == FFNC_PLAN_INPUT && a.slot != b.slot) return 0;
    return a.offset < b.offset + nb && b.offset < a.offset + na;
}

/* The in-place uses a kernel documents: ffnc_dense_backward's diff_pre may be diff_dst, and
 * its diff_src may start where saved does (without ACCUMULATE_SRC, which would read it). */
static int exactly_in_place(const ffnc_plan_instr *in, int w, int r) {
    if (in->opcode != FFNC_OP_DENSE_BACKWARD) return 0;
    int pre_over_diff = w == 4 && r == 3;
    int src_over_saved = w == 5 && r == 2 && !(in->flags & FFNC_PLAN_ACCUMULATE_SRC);
    return (pre_over_diff || src_over_saved) && in->refs[r].arena == in->refs[w].arena &&
           in->refs[r].slot == in->refs[w].slot && in->refs[r].offset == in->refs[w].offset;
}

/* Checks one instruction at one batch size. The needed sizes are affine or products of affine
 * functions of the batch (convex), the available ones affine, so checking the smallest and
 * the largest batch covers every batch in between. */
static ffnc_status check_at(const ffnc_plan_desc *d, const ffnc_plan_instr *in, size_t batch) {
    operand_spec spec[FFNC_PLAN_MAX_REFS];
    int count, no_alias;
    FFNC_TRY(describe(in, batch, spec, &count, &no_alias));
    int used[FFNC_PLAN_MAX_REFS] = {0};
    for (int i = 0; i < count; i++) {
        ffnc_plan_ref ref = in->refs[spec[i].ref];
        used[spec[i].ref] = 1;
        if (ref.arena == FFNC_PLAN_NONE) {
            FFNC_REQUIRE(spec[i].optional, FFNC_ERR_INVALID_ARGUMENT);
            continue;
        }
        FFNC_REQUIRE(ref.arena >= FFNC_PLAN_PARAMS && ref.arena <= FFNC_PLAN_INPUT,
                     FFNC_ERR_INVALID_ARGUMENT);
        if (ref.arena == FFNC_PLAN_INPUT) {
            FFNC_REQUIRE(ref.slot < d->n_inputs && spec[i].access == READ,
                         FFNC_ERR_INVALID_ARGUMENT);
            int slot_int64 = d->inputs[ref.slot].type == FFNC_PLAN_INPUT_INT64;
            FFNC_REQUIRE(slot_int64 == spec[i].int64, FFNC_ERR_INVALID_ARGUMENT);
        } else {
            FFNC_REQUIRE(ref.slot == 0 && !spec[i].int64, FFNC_ERR_INVALID_ARGUMENT);
        }
        size_t have, end;
        FFNC_TRY(available(d, ref, batch, &have));
        FFNC_TRY(add_size(ref.offset, spec[i].elems, &end));
        /* an empty operand too: a run forms its pointer from the offset, at most one past
         * the end */
        FFNC_REQUIRE(end <= have, FFNC_ERR_INVALID_ARGUMENT);
    }
    for (int r = 0; r < FFNC_PLAN_MAX_REFS; r++)
        FFNC_REQUIRE(used[r] || in->refs[r].arena == FFNC_PLAN_NONE, FFNC_ERR_INVALID_ARGUMENT);
    for (int w = 0; w < count; w++) {
        if (spec[w].access != WRITE || in->refs[spec[w].ref].arena == FFNC_PLAN_NONE) continue;
        for (int o = 0; o < count; o++) {
            if (o == w || in->refs[spec[o].ref].arena == FFNC_PLAN_NONE) continue;
            if (exactly_in_place(in, spec[w].ref, spec[o].ref)) continue;
            /* Two outputs never overlap; an output overlaps no input of a no-alias kernel. */
            if (spec[o].access == WRITE || no_alias)
                FFNC_REQUIRE(!ranges_overlap(in->refs[spec[w].ref], spec[w].elems,
                                             in->refs[spec[o].ref], spec[o].elems),
                             FFNC_ERR_INVALID_ARGUMENT);
        }
    }
    return FFNC_OK;
}

/* Indices stored in the plan's dtype must be exact: an argmax along an axis longer than 2^24
 * (float32) or 2^53 (float64) could not be. The size is largest at the largest batch. */
static ffnc_status check_exact_indices(const ffnc_plan_desc *d, const ffnc_plan_instr *in) {
    if (in->opcode != FFNC_OP_MAX_ARGMAX || in->refs[2].arena == FFNC_PLAN_NONE)
        return FFNC_OK;
    size_t n;
    FFNC_TRY(size_at(in->n, d->max_batch, &n));
    double limit = d->dtype == FFNC_F32 ? 16777216.0 : 9007199254740992.0;
    FFNC_REQUIRE((double)n <= limit, FFNC_ERR_INVALID_ARGUMENT);
    return FFNC_OK;
}

/* Whether `lr` is a learning rate the STEP of a dense backward can take: SGD's rule, since
 * the step is the SGD instruction's own operation. */
static ffnc_status check_step_lr(ffnc_dtype dtype, double lr) {
    return ffnc_sgd_update(dtype, 0, NULL, NULL, lr, 0.0);
}

/* FFNC_PLAN_STEP: a dense backward that adds its weight gradient into a velocity and updates
 * the weights, which are parameters that no other operand of the instruction touches. */
static ffnc_status check_step(const ffnc_plan_desc *d, const ffnc_plan_instr *in) {
    if (in->flags & FFNC_PLAN_STEPPED)
        FFNC_REQUIRE(in->opcode == FFNC_OP_SGD, FFNC_ERR_INVALID_ARGUMENT);
    if (!(in->flags & FFNC_PLAN_STEP)) return FFNC_OK;
    FFNC_REQUIRE(in->opcode == FFNC_OP_DENSE_BACKWARD && (in->flags & FFNC_PLAN_BETA),
                 FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(in->refs[1].arena == FFNC_PLAN_PARAMS && in->refs[6].arena != FFNC_PLAN_NONE,
                 FFNC_ERR_INVALID_ARGUMENT);
    for (size_t r = 0; r < FFNC_PLAN_MAX_REFS; r++)
        FFNC_REQUIRE(r == 1 || in->refs[r].arena != FFNC_PLAN_PARAMS, FFNC_ERR_INVALID_ARGUMENT);
    return check_step_lr(d->dtype, in->hyper[1]);
}

static ffnc_status check_instr(const ffnc_plan_desc *d, const ffnc_plan_instr *in) {
    FFNC_REQUIRE((in->flags & ~0x7FFu) == 0, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_TRY(check_step(d, in));
    if (in->flags & FFNC_PLAN_BETA) {
        FFNC_REQUIRE(in->opcode == FFNC_OP_GEMM || in->opcode == FFNC_OP_DENSE_BACKWARD,
                     FFNC_ERR_INVALID_ARGUMENT);
        double limit = d->dtype == FFNC_F32 ? FLT_MAX : DBL_MAX;
        FFNC_REQUIRE(fabs(in->hyper[0]) <= limit, FFNC_ERR_INVALID_ARGUMENT);
    }
    FFNC_TRY(check_hyper(d->dtype, in));
    FFNC_TRY(check_exact_indices(d, in));
    FFNC_TRY(check_at(d, in, 1));
    if (d->max_batch > 1) FFNC_TRY(check_at(d, in, d->max_batch));
    return FFNC_OK;
}

static ffnc_status check_desc(const ffnc_plan_desc *d) {
    FFNC_REQUIRE(d->dtype == FFNC_F32 || d->dtype == FFNC_F64, FFNC_ERR_INVALID_DTYPE);
    FFNC_REQUIRE(d->max_batch >= 1, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(d->n_inputs == 0 || d->inputs, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(d->n_instrs == 0 || d->instrs, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(d->n_records == 0 || d->records, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(d->n_inputs <= UINT32_MAX, FFNC_ERR_INVALID_ARGUMENT);
    size_t elem = d->dtype == FFNC_F32 ? sizeof(float) : sizeof(double);
    for (int a = 0; a < 4; a++) {
        size_t bytes;
        FFNC_TRY(ffnc_mul_size(d->arena_size[a], elem, &bytes));
        FFNC_REQUIRE(bytes <= SIZE_MAX - 64, FFNC_ERR_SIZE_OVERFLOW);
    }
    for (size_t i = 0; i < d->n_inputs; i++) {
        FFNC_REQUIRE(d->inputs[i].type == FFNC_PLAN_INPUT_FLOAT ||
                         d->inputs[i].type == FFNC_PLAN_INPUT_INT64,
                     FFNC_ERR_INVALID_ARGUMENT);
        size_t total;
        FFNC_TRY(size_at(d->inputs[i].size, d->max_batch, &total));
    }
    for (size_t r = 0; r < d->n_records; r++) {
        ffnc_plan_ref ref = d->records[r];
        FFNC_REQUIRE(ref.arena >= FFNC_PLAN_PARAMS && ref.arena <= FFNC_PLAN_ACTS && ref.slot == 0,
                     FFNC_ERR_INVALID_ARGUMENT);
        FFNC_REQUIRE(ref.offset < d->arena_size[ref.arena - FFNC_PLAN_PARAMS],
                     FFNC_ERR_INVALID_ARGUMENT);
    }
    return FFNC_OK;
}

/* ---- creation and destruction ------------------------------------------------------------ */

static void *copy_array(const void *src, size_t n, size_t size, ffnc_status *status) {
    if (n == 0) return NULL;
    void *dst = malloc(n * size); /* n * size fits: the caller's array exists */
    if (!dst) {
        *status = FFNC_ERR_OUT_OF_MEMORY;
        return NULL;
    }
    memcpy(dst, src, n * size);
    return dst;
}

/* A zeroed block of `bytes` aligned to 64, from calloc rather than aligned_alloc + memset:
 * glibc serves a large calloc with fresh zero pages from the OS without writing them, so an
 * arena becomes resident only as the plan touches it (the gradient and optimizer-state arenas
 * cost no memory before the first step, the activation rows beyond the batches run none).
 * *block receives the pointer to free. bytes <= SIZE_MAX - 64 (check_desc). */
static void *zeroed_aligned(size_t bytes, void **block) {
    *block = calloc(1, bytes + 63);
    if (!*block) return NULL;
    return (void *)(((uintptr_t)*block + 63) & ~(uintptr_t)63);
}

void ffnc_plan_destroy(ffnc_plan *plan) {
    if (!plan) return;
    for (int a = 0; a < 4; a++) free(plan->arena_block[a]);
    free(plan->inputs);
    free(plan->instrs);
    free(plan->records);
    free(plan->operands);
    free(plan->input_operands);
    free(plan);
}

/* plan->operands with every arena operand resolved, and the list of input operands. */
static ffnc_status resolve_operands(ffnc_plan *plan) {
    size_t n_inputs = 0;
    for (size_t i = 0; i < plan->n_instrs; i++)
        for (int r = 0; r < FFNC_PLAN_MAX_REFS; r++)
            n_inputs += plan->instrs[i].refs[r].arena == FFNC_PLAN_INPUT;
    plan->operands = calloc(plan->n_instrs ? plan->n_instrs : 1, sizeof *plan->operands);
    plan->input_operands = malloc((n_inputs ? n_inputs : 1) * sizeof *plan->input_operands);
    if (!plan->operands || !plan->input_operands) return FFNC_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < plan->n_instrs; i++) {
        for (int r = 0; r < FFNC_PLAN_MAX_REFS; r++) {
            ffnc_plan_ref ref = plan->instrs[i].refs[r];
            if (ref.arena == FFNC_PLAN_INPUT)
                plan->input_operands[plan->n_input_operands++] = i * FFNC_PLAN_MAX_REFS + (size_t)r;
            else if (ref.arena != FFNC_PLAN_NONE)
                plan->operands[i][r] = (char *)plan->arena[ref.arena - FFNC_PLAN_PARAMS] +
                                       ref.offset * plan->elem_size;
        }
    }
    return FFNC_OK;
}

ffnc_status ffnc_plan_create(const ffnc_plan_desc *desc, ffnc_plan **plan_out,
                             size_t *bad_instr) {
    FFNC_REQUIRE(desc && plan_out, FFNC_ERR_NULL_POINTER);
    *plan_out = NULL;
    if (bad_instr) *bad_instr = desc->n_instrs;
    FFNC_TRY(check_desc(desc));
    for (size_t i = 0; i < desc->n_instrs; i++) {
        ffnc_status s = check_instr(desc, &desc->instrs[i]);
        if (s != FFNC_OK) {
            if (bad_instr) *bad_instr = i;
            return s;
        }
    }
    ffnc_plan *plan = calloc(1, sizeof *plan);
    if (!plan) return FFNC_ERR_OUT_OF_MEMORY;
    ffnc_status status = FFNC_OK;
    plan->dtype = desc->dtype;
    plan->elem_size = desc->dtype == FFNC_F32 ? sizeof(float) : sizeof(double);
    plan->max_batch = desc->max_batch;
    plan->lr_scale = 1;
    atomic_init(&plan->interrupt, 0);
    for (int a = 0; a < 4; a++) {
        /* At least one cache line, so every arena pointer is valid. */
        size_t bytes = desc->arena_size[a] * plan->elem_size;
        plan->arena[a] = zeroed_aligned(bytes < 64 ? 64 : bytes, &plan->arena_block[a]);
        if (!plan->arena[a]) {
            status = FFNC_ERR_OUT_OF_MEMORY;
            break;
        }
        plan->arena_size[a] = desc->arena_size[a];
    }
    plan->n_inputs = desc->n_inputs;
    plan->n_instrs = desc->n_instrs;
    plan->n_records = desc->n_records;
    if (status == FFNC_OK)
        plan->inputs = copy_array(desc->inputs, desc->n_inputs, sizeof *desc->inputs, &status);
    if (status == FFNC_OK)
        plan->instrs = copy_array(desc->instrs, desc->n_instrs, sizeof *desc->instrs, &status);
    if (status == FFNC_OK)
        plan->records = copy_array(desc->records, desc->n_records, sizeof *desc->records,
                                   &status);
    if (status == FFNC_OK) status = resolve_operands(plan);
    if (status != FFNC_OK) {
        ffnc_plan_destroy(plan);
        return status;
    }
    *plan_out = plan;
    return FFNC_OK;
}

ffnc_status ffnc_plan_arena_data(ffnc_plan *plan, ffnc_plan_arena arena, void **data,
                                 size_t *size) {
    FFNC_REQUIRE(plan && data && size, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(arena >= FFNC_PLAN_PARAMS && arena <= FFNC_PLAN_ACTS, FFNC_ERR_INVALID_ARGUMENT);
    *data = plan->arena[arena - FFNC_PLAN_PARAMS];
    *size = plan->arena_size[arena - FFNC_PLAN_PARAMS];
    return FFNC_OK;
}

int64_t ffnc_plan_get_step(const ffnc_plan *plan) { return plan ? plan->step : 0; }

ffnc_status ffnc_plan_set_step(ffnc_plan *plan, int64_t step) {
    FFNC_REQUIRE(plan, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(step >= 0, FFNC_ERR_INVALID_ARGUMENT);
    plan->step = step;
    return FFNC_OK;
}

ffnc_status ffnc_plan_get_lr(const ffnc_plan *plan, double *lr) {
    FFNC_REQUIRE(plan && lr, FFNC_ERR_NULL_POINTER);
    for (size_t i = 0; i < plan->n_instrs; i++) {
        if (is_update(plan->instrs[i].opcode)) {
            *lr = plan->instrs[i].hyper[0];
            return FFNC_OK;
        }
    }
    return FFNC_ERR_INVALID_ARGUMENT;
}

ffnc_status ffnc_plan_set_lr(ffnc_plan *plan, double lr) {
    FFNC_REQUIRE(plan, FFNC_ERR_NULL_POINTER);
    size_t updates = 0;
    for (size_t i = 0; i < plan->n_instrs; i++) {
        if (plan->instrs[i].flags & FFNC_PLAN_STEP) FFNC_TRY(check_step_lr(plan->dtype, lr));
        if (!is_update(plan->instrs[i].opcode)) continue;
        FFNC_TRY(check_update_lr(plan->dtype, &plan->instrs[i], lr));
        updates++;
    }
    FFNC_REQUIRE(updates > 0, FFNC_ERR_INVALID_ARGUMENT);
    for (size_t i = 0; i < plan->n_instrs; i++) {
        if (is_update(plan->instrs[i].opcode)) plan->instrs[i].hyper[0] = lr;
        if (plan->instrs[i].flags & FFNC_PLAN_STEP) plan->instrs[i].hyper[1] = lr;
    }
    return FFNC_OK;
}

/* ---- running ----------------------------------------------------------------------------- */

static size_t input_elem_size(const ffnc_plan *plan, size_t slot) {
    return plan->inputs[slot].type == FFNC_PLAN_INPUT_INT64 ? sizeof(int64_t) : plan->elem_size;
}

static double monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs instructions [first, end); with `seconds` (not NULL), adds each one's wall-clock time
 * to seconds[i]. */
static ffnc_status run_instrs(ffnc_plan *plan, size_t first, size_t end, size_t batch,
                              const void *const *inputs, double *seconds,
                              size_t *failed_instr) {
    for (size_t q = 0; q < plan->n_input_operands; q++) {
        size_t at = plan->input_operands[q];
        ffnc_plan_ref ref = plan->instrs[at / FFNC_PLAN_MAX_REFS].refs[at % FFNC_PLAN_MAX_REFS];
        /* read only: execute() passes input operands as const */
        plan->operands[at / FFNC_PLAN_MAX_REFS][at % FFNC_PLAN_MAX_REFS] =
            (char *)(uintptr_t)inputs[ref.slot] + ref.offset * input_elem_size(plan, ref.slot);
    }
    for (size_t i = first; i < end; i++) {
        double start = seconds ? monotonic_seconds() : 0;
        ffnc_status s = ffnc_plan_execute(plan, &plan->instrs[i], batch, plan->operands[i]);
        if (seconds) seconds[i] += monotonic_seconds() - start;
        if (s != FFNC_OK) {
            if (failed_instr) *failed_instr = i;
            return s;
        }
    }
    return FFNC_OK;
}

static ffnc_status run_step(ffnc_plan *plan, size_t batch, const void *const *inputs,
                            double *seconds, size_t *failed_instr) {
    plan->whole_step = 1;
    FFNC_TRY(run_instrs(plan, 0, plan->n_instrs, batch, inputs, seconds, failed_instr));
    plan->step++;
    return FFNC_OK;
}

static ffnc_status check_run(const ffnc_plan *plan, size_t batch, const void *const *inputs) {
    FFNC_REQUIRE(plan, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(batch >= 1 && batch <= plan->max_batch, FFNC_ERR_INVALID_ARGUMENT);
    /* A counter at INT64_MAX (set so) cannot count the step, nor Adam number it. */
    FFNC_REQUIRE(plan->step < INT64_MAX, FFNC_ERR_STEP_LIMIT);
    FFNC_REQUIRE(plan->n_inputs == 0 || inputs, FFNC_ERR_NULL_POINTER);
    for (size_t i = 0; i < plan->n_inputs; i++)
        FFNC_REQUIRE(inputs[i], FFNC_ERR_NULL_POINTER);
    return FFNC_OK;
}

ffnc_status ffnc_plan_run(ffnc_plan *plan, size_t batch, const void *const *inputs,
                          size_t *failed_instr) {
    FFNC_TRY(check_run(plan, batch, inputs));
    return run_step(plan, batch, inputs, NULL, failed_instr);
}

ffnc_status ffnc_plan_run_timed(ffnc_plan *plan, size_t batch, const void *const *inputs,
                                double *seconds, size_t *failed_instr) {
    FFNC_TRY(check_run(plan, batch, inputs));
    FFNC_REQUIRE(seconds, FFNC_ERR_NULL_POINTER);
    return run_step(plan, batch, inputs, seconds, failed_instr);
}

/* ---- phases: the gradients, then the update (ffnc_plan_run_phase) ------------------------- */

size_t ffnc_plan_update_begin(const ffnc_plan *plan) {
    if (!plan) return 0;
    for (size_t i = 0; i < plan->n_instrs; i++) {
        int32_t opcode = plan->instrs[i].opcode;
        if (is_update(opcode) || opcode == FFNC_OP_CLIP_GRAD_NORM) return i;
    }
    return plan->n_instrs;
}

ffnc_status ffnc_plan_run_phase(ffnc_plan *plan, size_t batch, const void *const *inputs,
                                ffnc_plan_phase phase, size_t *failed_instr) {
    FFNC_TRY(check_run(plan, batch, inputs));
    size_t split = ffnc_plan_update_begin(plan);
    plan->whole_step = 0;
    switch (phase) {
    case FFNC_PLAN_PHASE_GRADIENTS:
        return run_instrs(plan, 0, split, batch, inputs, NULL, failed_instr);
    case FFNC_PLAN_PHASE_UPDATE:
        FFNC_TRY(run_instrs(plan, split, plan->n_instrs, batch, inputs, NULL, failed_instr));
        plan->step++;
        return FFNC_OK;
    }
    return FFNC_ERR_INVALID_ARGUMENT;
}

static double read_scalar(const ffnc_plan *plan, ffnc_plan_ref ref) {
    const char *base = (const char *)plan->arena[ref.arena - FFNC_PLAN_PARAMS];
    if (plan->dtype == FFNC_F32) return ((const float *)base)[ref.offset];
    return ((const double *)base)[ref.offset];
}

/* Bounded by the number of input slots a plan may have; the epoch loop keeps its bound
 * pointers here rather than allocating. */
#define FFNC_PLAN_EPOCH_STACK_INPUTS 64

/* run_epoch's lr_scale: every value finite and >= 0, and the largest one, which gives the
 * largest rates, valid for every update instruction. */
static ffnc_status check_lr_scale(const ffnc_plan *plan, const double *lr_scale, size_t steps) {
    double largest = 0;
    for (size_t s = 0; s < steps; s++) {
        FFNC_REQUIRE(isfinite(lr_scale[s]) && lr_scale[s] >= 0, FFNC_ERR_INVALID_ARGUMENT);
        if (lr_scale[s] > largest) largest = lr_scale[s];
    }
    for (size_t i = 0; i < plan->n_instrs; i++) {
        const ffnc_plan_instr *in = &plan->instrs[i];
        if (is_update(in->opcode))
            FFNC_TRY(check_update_lr(plan->dtype, in, in->hyper[0] * largest));
        if (in->flags & FFNC_PLAN_STEP)
            FFNC_TRY(check_step_lr(plan->dtype, in->hyper[1] * largest));
    }
    return FFNC_OK;
}

static ffnc_status run_epoch(ffnc_plan *plan, size_t rows, size_t batch,
                             const void *const *inputs, const double *lr_scale, double *records,
                             size_t *steps_done, size_t *failed_instr) {
    FFNC_REQUIRE(plan, FFNC_ERR_NULL_POINTER);
    if (steps_done) *steps_done = 0;
    FFNC_REQUIRE(batch >= 1 && batch <= plan->max_batch, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(rows >= 1, FFNC_ERR_EMPTY);
    FFNC_REQUIRE(plan->n_records == 0 || records, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(plan->n_inputs <= FFNC_PLAN_EPOCH_STACK_INPUTS, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(plan->n_inputs == 0 || inputs, FFNC_ERR_NULL_POINTER);
    for (size_t i = 0; i < plan->n_inputs; i++) FFNC_REQUIRE(inputs[i], FFNC_ERR_NULL_POINTER);
    const void *bound[FFNC_PLAN_EPOCH_STACK_INPUTS];
    size_t steps = rows / batch + (rows % batch != 0);
    FFNC_REQUIRE((uint64_t)(INT64_MAX - plan->step) >= steps, FFNC_ERR_STEP_LIMIT);
    if (lr_scale) FFNC_TRY(check_lr_scale(plan, lr_scale, steps));
    for (size_t s = 0; s < steps; s++) {
        size_t first = s * batch;
        size_t this_batch = rows - first < batch ? rows - first : batch;
        for (size_t i = 0; i < plan->n_inputs; i++) {
            /* first * per_batch fits: the caller's arrays hold rows * per_batch elements */
            size_t skip = first * plan->inputs[i].size.per_batch * input_elem_size(plan, i);
            bound[i] = (const char *)inputs[i] + skip;
        }
        if (atomic_exchange(&plan->interrupt, 0)) return FFNC_ERR_INTERRUPTED;
        if (lr_scale) plan->lr_scale = lr_scale[s];
        ffnc_status status = run_step(plan, this_batch, bound, NULL, failed_instr);
        plan->lr_scale = 1;
        FFNC_TRY(status);
        for (size_t r = 0; r < plan->n_records; r++)
            records[s * plan->n_records + r] = read_scalar(plan, plan->records[r]);
        if (steps_done) *steps_done = s + 1;
    }
    return FFNC_OK;
}

/* ---- interrupting an epoch (ffnc_plan_interrupt) ------------------------------------------ */

/* A signal handler may call ffnc_plan_interrupt: the flag must not be a lock in disguise. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "ffnc_plan_interrupt needs a lock-free atomic_int");

ffnc_status ffnc_plan_interrupt(ffnc_plan *plan) {
    FFNC_REQUIRE(plan, FFNC_ERR_NULL_POINTER);
    atomic_store(&plan->interrupt, 1);
    return FFNC_OK;
}

int ffnc_plan_clear_interrupt(ffnc_plan *plan) {
    return plan ? atomic_exchange(&plan->interrupt, 0) != 0 : 0;
}

ffnc_status ffnc_plan_run_epoch(ffnc_plan *plan, size_t rows, size_t batch,
                                const void *const *inputs, double *records, size_t *steps_done,
                                size_t *failed_instr) {
    return run_epoch(plan, rows, batch, inputs, NULL, records, steps_done, failed_instr);
}

ffnc_status ffnc_plan_run_epoch_scaled(ffnc_plan *plan, size_t rows, size_t batch,
                                       const void *const *inputs, const double *lr_scale,
                                       double *records, size_t *steps_done,
                                       size_t *failed_instr) {
    return run_epoch(plan, rows, batch, inputs, lr_scale, records, steps_done, failed_instr);
}
