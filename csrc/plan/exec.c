/* The plan executor: one instruction, its operands already bound to pointers (plan.c checked
 * them at creation). Kernels come from the public ffnc_* functions, which pick the ISA path
 * and their own thread counts from the sizes; the few loops that have no kernel (strided
 * element-wise ops, row and full sums) live in exec.tmpl.h. */
#include <omp.h>
#include <tgmath.h>

#include "plan_internal.h"

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
    const ffnc_activation act = (ffnc_activation)in->subop;
    double loss;
    switch ((ffnc_plan_opcode)in->opcode) {
    case FFNC_OP_DENSE_FORWARD:
        return ffnc_dense_forward(dt, m, n, k, p[0], p[1], (f & FFNC_PLAN_TRANS_B) != 0, p[2],
                                  act, in->alpha, p[3], p[4]);
    case FFNC_OP_DENSE_BACKWARD:
        return ffnc_dense_backward(dt, m, n, k, p[0], p[1], (f & FFNC_PLAN_TRANS_B) != 0, act,
                                   in->alpha, p[2], p[3], p[4], p[5], p[6], p[7], acc,
                                   (f & FFNC_PLAN_ACCUMULATE_SRC) != 0);
    case FFNC_OP_GEMM: {
        int ta = (f & FFNC_PLAN_TRANS_A) != 0, tb = (f & FFNC_PLAN_TRANS_B) != 0;
        /* row strides of the stored (untransposed) matrices */
        size_t lda = ta ? m : k, ldb = tb ? k : n;
        if (lda == 0) lda = 1;
        if (ldb == 0) ldb = 1;
        return ffnc_gemm(dt, ta, tb, m, n, k, in->alpha, p[0], lda, p[1], ldb, acc ? 1.0 : 0.0,
                         p[2], n ? n : 1);
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
    case FFNC_OP_SGD:
        return ffnc_sgd_update(dt, n, p[0], p[1], in->hyper[0], in->hyper[1]);
    case FFNC_OP_MOMENTUM:
        return ffnc_momentum_update(dt, n, p[0], p[1], p[2], in->hyper[0], in->hyper[1],
                                    in->hyper[2], (f & FFNC_PLAN_NESTEROV) != 0);
    case FFNC_OP_ADAM:
        return ffnc_adam_update(dt, n, p[0], p[1], p[2], p[3], plan->step + 1, in->hyper[0],
                                in->hyper[1], in->hyper[2], in->hyper[3], in->hyper[4],
                                (f & FFNC_PLAN_DECOUPLED) != 0);
    }
    return FFNC_ERR_INVALID_ARGUMENT;
}
