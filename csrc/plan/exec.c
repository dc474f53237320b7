/* The plan executor: one instruction, its operands already bound to pointers (plan.c checked
 * them at creation). Kernels come from the public ffnc_* functions, which pick the ISA path
 * and their own thread counts from the sizes; the few loops that have no kernel (strided
 * element-wise ops, row and full sums) live in exec.tmpl.h. */
#include <omp.h>
#include <string.h>
#include <tgmath.h>

#include "plan_internal.h"
#include "vmath.h"

int ffnc_dropout_keep(uint64_t seed, uint64_t step, uint64_t index, double p) {
    /* splitmix64's finaliser over a Weyl sequence in (seed, step, index): consecutive indices
     * and steps give independent-looking 64-bit words; the top 53 bits make u in [0, 1). */
    uint64_t z = seed * UINT64_C(0x9E3779B97F4A7C15) + step * UINT64_C(0xD1B54A32D192ED03) + index;
    z ^= z >> 30;
    z *= UINT64_C(0xBF58476D1CE4E5B9);
    z ^= z >> 27;
    z *= UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53 >= p;
}

/* What FFNC_OP_SOFTMAX, LOG_SOFTMAX and LOGSUMEXP compute along a line. */
enum { PLAN_SOFTMAX, PLAN_LOG_SOFTMAX, PLAN_LOGSUMEXP };

#define FFNC_TEMPLATE "exec.tmpl.h"
#include "instantiate.h"

static double load(ffnc_dtype dtype, const void *p) {
    return dtype == FFNC_F32 ? (double)*(const float *)p : *(const double *)p;
}

static void store_loss(ffnc_dtype dtype, void *p, double value) {
    if (dtype == FFNC_F32) *(float *)p = (float)value;
    else *(double *)p = value;
}

/* The factor of a loss or a mean: alpha, times the cotangent when there is one, divided by
 * `count` for a mean (0 over no elements, as the kernels define it). */
static double scale_of(ffnc_dtype dtype, const ffnc_plan_instr *in, const void *ct,
                       size_t count) {
    double s = in->alpha;
    if (ct) s *= load(dtype, ct);
    if (in->flags & FFNC_PLAN_MEAN) s = count ? s / (double)count : 0.0;
    return s;
}

ffnc_status ffnc_plan_execute(ffnc_plan *plan, const ffnc_plan_instr *in, size_t batch,
                              void *const *p) {
    const ffnc_dtype dt = plan->dtype;
    const size_t m = ffnc_plan_size_at(in->m, batch);
    const size_t n = ffnc_plan_size_at(in->n, batch);
    const size_t k = ffnc_plan_size_at(in->k, batch);
    const uint32_t f = in->flags;
    const int acc = (f & FFNC_PLAN_ACCUMULATE) != 0;
    /* what GEMM and DENSE_BACKWARD add the product to: 0, 1 or hyper[0] times the old value */
    const double beta = (f & FFNC_PLAN_BETA) ? in->hyper[0] : acc;
    const ffnc_activation act = (ffnc_activation)in->subop;
    double loss;
    switch ((ffnc_plan_opcode)in->opcode) {
    case FFNC_OP_DENSE_FORWARD:
        return ffnc_dense_forward(dt, m, n, k, p[0], p[1], (f & FFNC_PLAN_TRANS_B) != 0, p[2],
                                  act, in->alpha, p[3], p[4]);
    case FFNC_OP_DENSE_BACKWARD:
        return ffnc_dense_backward_beta(dt, m, n, k, p[0], p[1], (f & FFNC_PLAN_TRANS_B) != 0,
                                        act, in->alpha, p[2], p[3], p[4], p[5], p[6], p[7],
                                        beta, acc, (f & FFNC_PLAN_ACCUMULATE_SRC) != 0,
                                        (f & FFNC_PLAN_STEP) && plan->whole_step ? p[1] : NULL,
                                        in->hyper[1] * plan->lr_scale);
    case FFNC_OP_GEMM: {
        int ta = (f & FFNC_PLAN_TRANS_A) != 0, tb = (f & FFNC_PLAN_TRANS_B) != 0;
        /* row strides of the stored (untransposed) matrices */
        size_t lda = ta ? m : k, ldb = tb ? k : n;
        if (lda == 0) lda = 1;
        if (ldb == 0) ldb = 1;
        return ffnc_gemm(dt, ta, tb, m, n, k, in->alpha, p[0], lda, p[1], ldb, beta, p[2],
                         n ? n : 1);
    }
    case FFNC_OP_ACT_FORWARD:
        return ffnc_activation_forward(dt, act, in->alpha, n, p[0], p[1]);
    case FFNC_OP_ACT_BACKWARD:
        return ffnc_activation_backward(dt, act, in->alpha, n, p[0], p[1], p[2]);
    case FFNC_OP_BIAS_FORWARD:
        return ffnc_bias_forward(dt, m, n, p[0], p[1], p[2]);
    case FFNC_OP_COLSUM:
        if (!(f & FFNC_PLAN_MEAN)) return ffnc_bias_backward(dt, m, n, p[0], p[1], acc);
        if (dt == FFNC_F32) colsum_f32(m, n, p[0], p[1], m ? 1.0 / (double)m : 0.0, acc);
        else colsum_f64(m, n, p[0], p[1], m ? 1.0 / (double)m : 0.0, acc);
        return FFNC_OK;
    case FFNC_OP_ROWSUM: {
        double scale = (f & FFNC_PLAN_MEAN) ? (n ? 1.0 / (double)n : 0.0) : 1.0;
        if (dt == FFNC_F32) rowsum_f32(m, n, p[0], p[1], scale, acc);
        else rowsum_f64(m, n, p[0], p[1], scale, acc);
        return FFNC_OK;
    }
    case FFNC_OP_SUM_ALL: {
        double scale = (f & FFNC_PLAN_MEAN) ? (n ? 1.0 / (double)n : 0.0) : 1.0;
        if (dt == FFNC_F32) sum_all_f32(n, p[0], p[1], scale, acc);
        else sum_all_f64(n, p[0], p[1], scale, acc);
        return FFNC_OK;
    }
    case FFNC_OP_XENT_FORWARD:
        FFNC_TRY(ffnc_softmax_xent_forward(dt, m, n, p[0], p[1], scale_of(dt, in, NULL, m), p[2],
                                           &loss));
        store_loss(dt, p[3], loss);
        return FFNC_OK;
    case FFNC_OP_XENT_BACKWARD:
        return ffnc_softmax_xent_backward(dt, m, n, p[0], p[1], scale_of(dt, in, p[2], m), p[3]);
    case FFNC_OP_BCE_FORWARD:
        FFNC_TRY(ffnc_bce_logits_forward(dt, n, p[0], p[1], scale_of(dt, in, NULL, n), &loss));
        store_loss(dt, p[2], loss);
        return FFNC_OK;
    case FFNC_OP_MSE_FORWARD:
        FFNC_TRY(ffnc_mse_forward(dt, n, p[0], p[1], scale_of(dt, in, NULL, n), &loss));
        store_loss(dt, p[2], loss);
        return FFNC_OK;
    case FFNC_OP_L1_FORWARD:
        FFNC_TRY(ffnc_l1_forward(dt, n, p[0], p[1], scale_of(dt, in, NULL, n), &loss));
        store_loss(dt, p[2], loss);
        return FFNC_OK;
    case FFNC_OP_BCE_BACKWARD:
        return ffnc_bce_logits_backward(dt, n, p[0], p[1], scale_of(dt, in, p[2], n), p[3]);
    case FFNC_OP_MSE_BACKWARD:
        return ffnc_mse_backward(dt, n, p[0], p[1], scale_of(dt, in, p[2], n), p[3]);
    case FFNC_OP_L1_BACKWARD:
        return ffnc_l1_backward(dt, n, p[0], p[1], scale_of(dt, in, p[2], n), p[3]);
    case FFNC_OP_BINARY:
    case FFNC_OP_UNARY:
        if (m == 0 || n == 0) return FFNC_OK;
        if (dt == FFNC_F32) elementwise_f32(in, m, n, p[0], p[1], p[in->opcode == FFNC_OP_UNARY ? 1 : 2]);
        else elementwise_f64(in, m, n, p[0], p[1], p[in->opcode == FFNC_OP_UNARY ? 1 : 2]);
        return FFNC_OK;
    case FFNC_OP_FILL:
        if (dt == FFNC_F32) fill_f32(n, in->alpha, p[0]);
        else fill_f64(n, in->alpha, p[0]);
        return FFNC_OK;
    case FFNC_OP_FILL_COUNT:
        if (dt == FFNC_F32) fill_f32(n, (double)m, p[0]);
        else fill_f64(n, (double)m, p[0]);
        return FFNC_OK;
    /* Update instructions: the learning rate is hyper[0] times the epoch's schedule. */
    case FFNC_OP_SGD:
        if ((f & FFNC_PLAN_STEPPED) && plan->whole_step) return FFNC_OK; /* taken in the GEMM */
        return ffnc_sgd_update(dt, n, p[0], p[1], in->hyper[0] * plan->lr_scale, in->hyper[1]);
    case FFNC_OP_MOMENTUM:
        return ffnc_momentum_update(dt, n, p[0], p[1], p[2], in->hyper[0] * plan->lr_scale,
                                    in->hyper[1], in->hyper[2], (f & FFNC_PLAN_NESTEROV) != 0);
    case FFNC_OP_ADAM:
        return ffnc_adam_update(dt, n, p[0], p[1], p[2], p[3], plan->step + 1,
                                in->hyper[0] * plan->lr_scale, in->hyper[1], in->hyper[2],
                                in->hyper[3], in->hyper[4], (f & FFNC_PLAN_DECOUPLED) != 0);
    /* ---- 60-69: optimizer instructions ---- */
    case FFNC_OP_RMSPROP:
        return ffnc_rmsprop_update(dt, n, p[0], p[1], p[2], p[3], p[4],
                                   in->hyper[0] * plan->lr_scale, in->hyper[1], in->hyper[2],
                                   in->hyper[3], in->hyper[4], (f & FFNC_PLAN_CENTERED) != 0);
    case FFNC_OP_CLIP_GRAD_NORM: {
        double norm;
        FFNC_TRY(ffnc_clip_by_global_norm(dt, n, p[0], in->hyper[0], &norm));
        if (p[1]) store_loss(dt, p[1], norm);
        return FFNC_OK;
    }
    /* ---- 30-59: selection, row-wise, index and layout instructions ---- */
    case FFNC_OP_WHERE:
        if (m == 0 || n == 0) return FFNC_OK;
        if (dt == FFNC_F32) where_f32(in, m, n, p[0], p[1], p[2], p[3]);
        else where_f64(in, m, n, p[0], p[1], p[2], p[3]);
        return FFNC_OK;
    case FFNC_OP_ONE_HOT:
        if (dt == FFNC_F32) return one_hot_f32(m, n, p[0], p[1], p[2]);
        return one_hot_f64(m, n, p[0], p[1], p[2]);
    case FFNC_OP_FROM_INT64:
        if (dt == FFNC_F32) return from_int64_f32(n, p[0], p[1], in->subop);
        return from_int64_f64(n, p[0], p[1], in->subop);
    case FFNC_OP_SOFTMAX:
    case FFNC_OP_LOG_SOFTMAX:
    case FFNC_OP_LOGSUMEXP: {
        /* Not ffnc_log_softmax_forward: that kernel shifts by the max even when it is +inf
         * (a whole NaN row), where the graph's definition shifts by 0 and keeps the -inf of
         * the other elements. */
        int kind = in->opcode == FFNC_OP_SOFTMAX       ? PLAN_SOFTMAX
                   : in->opcode == FFNC_OP_LOG_SOFTMAX ? PLAN_LOG_SOFTMAX
                                                       : PLAN_LOGSUMEXP;
        /* Lines of no element: nothing to write, and m x k, which no operand then bounds,
         * could be any count of lines (logsumexp writes -inf to its m x k outputs). */
        if (n == 0 && kind != PLAN_LOGSUMEXP) return FFNC_OK;
        if (dt == FFNC_F32) softmax_family_f32(kind, m, n, k, p[0], p[1]);
        else softmax_family_f64(kind, m, n, k, p[0], p[1]);
        return FFNC_OK;
    }
    case FFNC_OP_SOFTMAX_BACKWARD:
    case FFNC_OP_LOG_SOFTMAX_BACKWARD: {
        int log_form = in->opcode == FFNC_OP_LOG_SOFTMAX_BACKWARD;
        if (n == 0) return FFNC_OK; /* as the forward: no element, and m x k unbounded */
        if (log_form && k == 1) return ffnc_log_softmax_backward(dt, m, n, p[0], p[1], p[2]);
        if (dt == FFNC_F32) softmax_backward_f32(log_form, m, n, k, p[0], p[1], p[2]);
        else softmax_backward_f64(log_form, m, n, k, p[0], p[1], p[2]);
        return FFNC_OK;
    }
    case FFNC_OP_MAX_ARGMAX:
        if (dt == FFNC_F32) max_argmax_f32(m, n, k, p[0], p[1], p[2]);
        else max_argmax_f64(m, n, k, p[0], p[1], p[2]);
        return FFNC_OK;
    case FFNC_OP_COPY_STRIDED:
        if (m == 0 || n == 0) return FFNC_OK;
        if (dt == FFNC_F32) copy_strided_f32(in, m, n, p[0], p[1]);
        else copy_strided_f64(in, m, n, p[0], p[1]);
        return FFNC_OK;
    case FFNC_OP_PRELU_FORWARD:
        return ffnc_prelu_forward(dt, m, n, p[0], p[1], k, p[2]);
    case FFNC_OP_PRELU_BACKWARD:
        return ffnc_prelu_backward(dt, m, n, p[0], p[1], p[2], k, p[3], p[4], acc);
    case FFNC_OP_TRANSPOSE:
        /* an empty output: the loops would still run over the other size, unbounded then */
        if (m == 0 || n == 0) return FFNC_OK;
        if (dt == FFNC_F32) transpose_f32(m, n, p[0], p[1]);
        else transpose_f64(m, n, p[0], p[1]);
        return FFNC_OK;
    case FFNC_OP_SQDIST:
        if (m == 0 || n == 0) return FFNC_OK; /* as TRANSPOSE */
        if (dt == FFNC_F32) sqdist_f32(m, n, k, p[0], p[1], p[2]);
        else sqdist_f64(m, n, k, p[0], p[1], p[2]);
        return FFNC_OK;
    case FFNC_OP_DROPOUT: {
        uint64_t seed = (uint64_t)in->hyper[0] | (uint64_t)in->hyper[1] << 32;
        if (dt == FFNC_F32) dropout_f32(n, in->alpha, seed, (uint64_t)plan->step, p[0], p[1]);
        else dropout_f64(n, in->alpha, seed, (uint64_t)plan->step, p[0], p[1]);
        return FFNC_OK;
    }
    }
    return FFNC_ERR_INVALID_ARGUMENT;
}
