/* The small plan the plan tests share, built by hand: one dense layer trained by least squares.
 *   y_hat = act(x W + b)          DENSE_FORWARD   (W: k x n at params 0, b: n after it)
 *   loss  = mean (y_hat - t)^2    MSE_FORWARD     (recorded after each step when asked)
 *   diff  = d loss / d y_hat      MSE_BACKWARD
 *   dW, db                        DENSE_BACKWARD  (into the gradient arena, W's layout)
 * then, as the spec asks, clipping by global norm and an SGD or momentum update. Input slot 0
 * is x (rows x k), slot 1 the targets t (rows x n). Also the operand helpers every hand-built
 * plan uses, and the fills and comparisons the tests share. */
#ifndef FFNC_PLAN_FIXTURE_H
#define FFNC_PLAN_FIXTURE_H

#include <string.h>

#include "check.h"

/* ---- operands ------------------------------------------------------------------------------ */

static inline ffnc_plan_ref ref(int arena, size_t offset) {
    return (ffnc_plan_ref){arena, 0, offset};
}
static inline ffnc_plan_ref input(uint32_t slot) {
    return (ffnc_plan_ref){FFNC_PLAN_INPUT, slot, 0};
}
static inline ffnc_plan_size fixed(size_t n) { return (ffnc_plan_size){n, 0}; }
static inline ffnc_plan_size rows(void) { return (ffnc_plan_size){0, 1}; }

/* ---- the layout, for a max batch b, k inputs and n outputs (constant expressions) ---------- */

#define FIXTURE_PARAMS(k, n) ((k) * (n) + (n)) /* W then b; the gradients alike */
#define FIXTURE_YHAT 0                          /* activations: y_hat (b x n) */
#define FIXTURE_LOSS(b, n) ((b) * (n))          /* the loss */
#define FIXTURE_DIFF(b, n) ((b) * (n) + 1)      /* its gradient (b x n) */
#define FIXTURE_DIFF_PRE(b, n) (2 * (b) * (n) + 1) /* before the activation (b x n) */
#define FIXTURE_NORM(b, n) (3 * (b) * (n) + 1)  /* the global norm clipping measured */
#define FIXTURE_ACTS(b, n) (3 * (b) * (n) + 2)

typedef enum fixture_update { FIXTURE_NO_UPDATE, FIXTURE_SGD, FIXTURE_MOMENTUM } fixture_update;

typedef struct fixture_spec {
    ffnc_dtype dtype;
    size_t max_batch, k, n;
    ffnc_activation activation;
    double clip;           /* > 0: clip the gradients' global norm to it first */
    fixture_update update;
    double lr, momentum;
    int record_loss;
} fixture_spec;

#define FIXTURE_MAX_INSTRS 8

/* The plan's description and everything it points to. */
typedef struct fixture {
    ffnc_plan_instr instrs[FIXTURE_MAX_INSTRS];
    ffnc_plan_input slots[2];
    ffnc_plan_ref record;
    ffnc_plan_desc desc;
} fixture;

/* Fills `f` from `s`; f->desc points into f, so f must stay where it is while desc is used.
 * Tests may change f->instrs and f->desc before ffnc_plan_create. */
static inline void fixture_build(fixture *f, const fixture_spec *s) {
    size_t b = s->max_batch, k = s->k, n = s->n, params = FIXTURE_PARAMS(k, n);
    int identity = s->activation == FFNC_ACT_IDENTITY;
    memset(f, 0, sizeof *f);
    ffnc_plan_instr *in = f->instrs;
    in[0].opcode = FFNC_OP_DENSE_FORWARD;
    in[0].m = rows(), in[0].n = fixed(n), in[0].k = fixed(k);
    in[0].subop = s->activation;
    in[0].refs[0] = input(0);
    in[0].refs[1] = ref(FFNC_PLAN_PARAMS, 0);
    in[0].refs[2] = ref(FFNC_PLAN_PARAMS, k * n);
    in[0].refs[4] = ref(FFNC_PLAN_ACTS, FIXTURE_YHAT);
    in[1].opcode = FFNC_OP_MSE_FORWARD;
    in[1].n = (ffnc_plan_size){0, n};
    in[1].alpha = 1, in[1].flags = FFNC_PLAN_MEAN;
    in[1].refs[0] = ref(FFNC_PLAN_ACTS, FIXTURE_YHAT);
    in[1].refs[1] = input(1);
    in[1].refs[2] = ref(FFNC_PLAN_ACTS, FIXTURE_LOSS(b, n));
    in[2] = in[1];
    in[2].opcode = FFNC_OP_MSE_BACKWARD;
    in[2].refs[2] = (ffnc_plan_ref){0};
    in[2].refs[3] = ref(FFNC_PLAN_ACTS, FIXTURE_DIFF(b, n));
    in[3].opcode = FFNC_OP_DENSE_BACKWARD;
    in[3].m = rows(), in[3].n = fixed(n), in[3].k = fixed(k);
    in[3].subop = s->activation;
    in[3].refs[0] = input(0);
    if (!identity) { /* the activation's derivative reads y_hat, writes the pre-activation's */
        in[3].refs[2] = ref(FFNC_PLAN_ACTS, FIXTURE_YHAT);
        in[3].refs[4] = ref(FFNC_PLAN_ACTS, FIXTURE_DIFF_PRE(b, n));
    }
    in[3].refs[3] = ref(FFNC_PLAN_ACTS, FIXTURE_DIFF(b, n));
    in[3].refs[6] = ref(FFNC_PLAN_GRADS, 0);
    in[3].refs[7] = ref(FFNC_PLAN_GRADS, k * n);
    size_t count = 4;
    if (s->clip > 0) {
        in[count].opcode = FFNC_OP_CLIP_GRAD_NORM;
        in[count].n = fixed(params);
        in[count].hyper[0] = s->clip;
        in[count].refs[0] = ref(FFNC_PLAN_GRADS, 0);
        in[count].refs[1] = ref(FFNC_PLAN_ACTS, FIXTURE_NORM(b, n));
        count++;
    }
    if (s->update != FIXTURE_NO_UPDATE) {
        int momentum = s->update == FIXTURE_MOMENTUM;
        in[count].opcode = momentum ? FFNC_OP_MOMENTUM : FFNC_OP_SGD;
        in[count].n = fixed(params);
        in[count].hyper[0] = s->lr;
        if (momentum) in[count].hyper[1] = s->momentum;
        in[count].refs[0] = ref(FFNC_PLAN_PARAMS, 0);
        in[count].refs[1] = ref(FFNC_PLAN_GRADS, 0);
        if (momentum) in[count].refs[2] = ref(FFNC_PLAN_STATE, 0);
        count++;
    }
    f->slots[0] = (ffnc_plan_input){FFNC_PLAN_INPUT_FLOAT, {0, k}};
    f->slots[1] = (ffnc_plan_input){FFNC_PLAN_INPUT_FLOAT, {0, n}};
    f->record = ref(FFNC_PLAN_ACTS, FIXTURE_LOSS(b, n));
    size_t state = s->update == FIXTURE_MOMENTUM ? params : 0;
    f->desc = (ffnc_plan_desc){s->dtype, b, {params, params, state, FIXTURE_ACTS(b, n)},
                               2, f->slots, count, f->instrs, s->record_loss ? 1 : 0,
                               s->record_loss ? &f->record : NULL};
}

static inline size_t fixture_elem_size(ffnc_dtype dtype) {
    return dtype == FFNC_F32 ? sizeof(float) : sizeof(double);
}

/* `count` values uniform in [lo, hi) from *seed, stored in `dtype`. */
static inline void fixture_fill(ffnc_dtype dtype, void *dst, size_t count,
                                unsigned long long *seed, double lo, double hi) {
    for (size_t i = 0; i < count; i++) {
        double v = check_uniform(seed, lo, hi);
        if (dtype == FFNC_F32) ((float *)dst)[i] = (float)v;
        else ((double *)dst)[i] = v;
    }
}

/* The plan of `s` (a failed check and NULL if refused), its parameters uniform in [-1, 1)
 * from `seed`. */
static inline ffnc_plan *fixture_create(const fixture_spec *s, unsigned long long seed) {
    fixture f;
    fixture_build(&f, s);
    ffnc_plan *plan = NULL;
    CHECK_OK(ffnc_plan_create(&f.desc, &plan, NULL));
    if (!plan) return NULL;
    void *params;
    size_t count;
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, &params, &count));
    fixture_fill(s->dtype, params, count, &seed, -1, 1);
    return plan;
}

/* Arena `arena` of two plans of one spec, bit for bit. */
static inline int fixture_same_arena(ffnc_plan *a, ffnc_plan *b, ffnc_plan_arena arena,
                                     size_t elem_size) {
    void *da, *db;
    size_t na, nb;
    if (ffnc_plan_arena_data(a, arena, &da, &na) != FFNC_OK) return 0;
    if (ffnc_plan_arena_data(b, arena, &db, &nb) != FFNC_OK) return 0;
    return na == nb && memcmp(da, db, na * elem_size) == 0;
}

#endif
