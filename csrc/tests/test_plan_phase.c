/* ffnc_plan_run_phase: a step split into its gradients and its update (data-parallel training
 * averages the gradient arena between the two). The split runs must equal ffnc_plan_run bit
 * for bit, the update must read the gradients as the caller left them, and only the update
 * counts the step. */
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define B 5 /* max batch */
#define K 3 /* inputs */
#define N 2 /* outputs */

static ffnc_plan_ref ref(int arena, size_t offset) { return (ffnc_plan_ref){arena, 0, offset}; }
static ffnc_plan_ref input(uint32_t slot) { return (ffnc_plan_ref){FFNC_PLAN_INPUT, slot, 0}; }
static ffnc_plan_size fixed(size_t n) { return (ffnc_plan_size){n, 0}; }
static ffnc_plan_size rows(void) { return (ffnc_plan_size){0, 1}; }

/* params: W (K x N) at 0, b (N) after it. acts: y_hat (B x N) at 0, loss, diff, norm. */
enum { PARAMS = K * N + N, YHAT = 0, LOSS = B * N, DIFF = B * N + 1, NORM = 2 * B * N + 1,
       ACTS = 2 * B * N + 2 };

/* A linear least-squares step: dense forward, MSE forward and backward, dense backward;
 * then, when `update` is set, clipping by global norm and a momentum update. Returns the
 * number of instructions. */
static size_t build(ffnc_plan_instr *ins, int update) {
    memset(ins, 0, 6 * sizeof *ins);
    ins[0].opcode = FFNC_OP_DENSE_FORWARD;
    ins[0].m = rows(), ins[0].n = fixed(N), ins[0].k = fixed(K);
    ins[0].subop = FFNC_ACT_IDENTITY;
    ins[0].refs[0] = input(0);
    ins[0].refs[1] = ref(FFNC_PLAN_PARAMS, 0);
    ins[0].refs[2] = ref(FFNC_PLAN_PARAMS, K * N);
    ins[0].refs[4] = ref(FFNC_PLAN_ACTS, YHAT);
    ins[1].opcode = FFNC_OP_MSE_FORWARD;
    ins[1].n = (ffnc_plan_size){0, N};
    ins[1].alpha = 1, ins[1].flags = FFNC_PLAN_MEAN;
    ins[1].refs[0] = ref(FFNC_PLAN_ACTS, YHAT);
    ins[1].refs[1] = input(1);
    ins[1].refs[2] = ref(FFNC_PLAN_ACTS, LOSS);
    ins[2] = ins[1];
    ins[2].opcode = FFNC_OP_MSE_BACKWARD;
    ins[2].refs[2] = (ffnc_plan_ref){0};
    ins[2].refs[3] = ref(FFNC_PLAN_ACTS, DIFF);
    ins[3].opcode = FFNC_OP_DENSE_BACKWARD;
    ins[3].m = rows(), ins[3].n = fixed(N), ins[3].k = fixed(K);
    ins[3].subop = FFNC_ACT_IDENTITY;
    ins[3].refs[0] = input(0);
    ins[3].refs[3] = ref(FFNC_PLAN_ACTS, DIFF);
    ins[3].refs[6] = ref(FFNC_PLAN_GRADS, 0);
    ins[3].refs[7] = ref(FFNC_PLAN_GRADS, K * N);
    if (!update) return 4;
    ins[4].opcode = FFNC_OP_CLIP_GRAD_NORM;
    ins[4].n = fixed(PARAMS);
    ins[4].hyper[0] = 0.5; /* small enough to clip these gradients */
    ins[4].refs[0] = ref(FFNC_PLAN_GRADS, 0);
    ins[4].refs[1] = ref(FFNC_PLAN_ACTS, NORM);
    ins[5].opcode = FFNC_OP_MOMENTUM;
    ins[5].n = fixed(PARAMS);
    ins[5].hyper[0] = 0.1, ins[5].hyper[1] = 0.9;
    ins[5].refs[0] = ref(FFNC_PLAN_PARAMS, 0);
    ins[5].refs[1] = ref(FFNC_PLAN_GRADS, 0);
    ins[5].refs[2] = ref(FFNC_PLAN_STATE, 0);
    return 6;
}

static ffnc_plan_input slots[2] = {{FFNC_PLAN_INPUT_FLOAT, {0, K}},
                                   {FFNC_PLAN_INPUT_FLOAT, {0, N}}};

static ffnc_plan *create(int update, ffnc_dtype dtype) {
    ffnc_plan_instr ins[6];
    size_t n = build(ins, update);
    ffnc_plan_desc d = {dtype, B, {PARAMS, PARAMS, update ? PARAMS : 0, ACTS}, 2, slots, n, ins,
                        0, NULL};
    ffnc_plan *plan = NULL;
    CHECK_OK(ffnc_plan_create(&d, &plan, NULL));
    if (!plan) return NULL;
    void *params;
    size_t count;
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, &params, &count));
    unsigned long long seed = 11;
    for (size_t i = 0; i < count; i++) {
        double v = check_uniform(&seed, -1, 1);
        if (dtype == FFNC_F32) ((float *)params)[i] = (float)v;
        else ((double *)params)[i] = v;
    }
    return plan;
}

static int same_arena(ffnc_plan *a, ffnc_plan *b, ffnc_plan_arena arena, size_t elem) {
    void *da, *db;
    size_t na, nb;
    if (ffnc_plan_arena_data(a, arena, &da, &na) != FFNC_OK) return 0;
    if (ffnc_plan_arena_data(b, arena, &db, &nb) != FFNC_OK) return 0;
    return na == nb && memcmp(da, db, na * elem) == 0;
}

/* x (B x K) and targets (B x N) in the dtype. */
static void data(ffnc_dtype dtype, void *x, void *t) {
    unsigned long long seed = 5;
    for (int i = 0; i < B * K + B * N; i++) {
        double v = check_uniform(&seed, -2, 2);
        void *dst = i < B * K ? x : t;
        size_t at = i < B * K ? (size_t)i : (size_t)(i - B * K);
        if (dtype == FFNC_F32) ((float *)dst)[at] = (float)v;
        else ((double *)dst)[at] = v;
    }
}

static void test_phases_equal_run(void) {
    for (int dt = 0; dt < 2; dt++) {
        ffnc_dtype dtype = dt ? FFNC_F64 : FFNC_F32;
        size_t elem = dt ? sizeof(double) : sizeof(float);
        FOR_EACH_ISA(isa) {
            ffnc_plan *whole = create(1, dtype), *split = create(1, dtype);
            ffnc_plan *grads_only = create(0, dtype);
            if (!whole || !split || !grads_only) return;
            CHECK(ffnc_plan_update_begin(whole) == 4);
            CHECK(ffnc_plan_update_begin(grads_only) == 4);
            double x[B * K], t[B * N]; /* large enough for either dtype */
            data(dtype, x, t);
            const void *inputs[2] = {x, t};
            for (size_t batch = 1; batch <= B; batch++) {
                CHECK_OK(ffnc_plan_run(whole, batch, inputs, NULL));
                CHECK_OK(ffnc_plan_run(grads_only, batch, inputs, NULL));
                CHECK_OK(ffnc_plan_run_phase(split, batch, inputs, FFNC_PLAN_PHASE_GRADIENTS,
                                             NULL));
                /* the gradients phase computes the gradients unclipped and updates nothing */
                CHECK(ffnc_plan_get_step(split) == (int64_t)batch - 1);
                CHECK(same_arena(split, grads_only, FFNC_PLAN_GRADS, elem));
                CHECK_OK(ffnc_plan_run_phase(split, batch, inputs, FFNC_PLAN_PHASE_UPDATE, NULL));
                CHECK(ffnc_plan_get_step(split) == (int64_t)batch);
                /* keep grads_only's parameters in step with the others' */
                void *src, *dst;
                size_t count;
                CHECK_OK(ffnc_plan_arena_data(split, FFNC_PLAN_PARAMS, &src, &count));
                CHECK_OK(ffnc_plan_arena_data(grads_only, FFNC_PLAN_PARAMS, &dst, &count));
                memcpy(dst, src, count * elem);
            }
            for (ffnc_plan_arena a = FFNC_PLAN_PARAMS; a <= FFNC_PLAN_ACTS; a++)
                CHECK(same_arena(whole, split, a, elem));
            CHECK(ffnc_plan_get_step(whole) == ffnc_plan_get_step(split));
            ffnc_plan_destroy(whole);
            ffnc_plan_destroy(split);
            ffnc_plan_destroy(grads_only);
        }
    }
}

/* The update reads the gradient arena as the caller left it between the phases. */
static void test_update_reads_caller_gradients(void) {
    ffnc_plan *plan = create(1, FFNC_F64);
    if (!plan) return;
    double x[B * K], t[B * N];
    data(FFNC_F64, x, t);
    const void *inputs[2] = {x, t};
    double *params, *grads, *velocity, *acts, before[PARAMS];
    size_t n;
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, (void **)&params, &n));
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_GRADS, (void **)&grads, &n));
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_STATE, (void **)&velocity, &n));
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_ACTS, (void **)&acts, &n));
    CHECK_OK(ffnc_plan_run_phase(plan, B, inputs, FFNC_PLAN_PHASE_GRADIENTS, NULL));
    memcpy(before, params, sizeof before);
    /* a gradient of global norm 0.3, below the clipping threshold 0.5: applied as it is */
    for (int i = 0; i < PARAMS; i++) grads[i] = 0;
    grads[1] = 0.3;
    CHECK_OK(ffnc_plan_run_phase(plan, B, inputs, FFNC_PLAN_PHASE_UPDATE, NULL));
    CHECK_CLOSE(acts[NORM], 0.3, 0, 0);
    for (int i = 0; i < PARAMS; i++) {
        CHECK_CLOSE(velocity[i], i == 1 ? 0.3 : 0.0, 0, 0);
        CHECK_CLOSE(params[i], before[i] - (i == 1 ? 0.1 * 0.3 : 0.0), 1e-15, 0);
    }
    ffnc_plan_destroy(plan);
}

static void test_no_update_and_errors(void) {
    ffnc_plan *plan = create(0, FFNC_F64);
    if (!plan) return;
    double x[B * K], t[B * N];
    data(FFNC_F64, x, t);
    const void *inputs[2] = {x, t};
    double *params, before[PARAMS];
    size_t n;
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, (void **)&params, &n));
    memcpy(before, params, sizeof before);
    /* no update instruction: an empty update phase that counts the step, as ffnc_plan_run */
    CHECK_OK(ffnc_plan_run_phase(plan, 2, inputs, FFNC_PLAN_PHASE_GRADIENTS, NULL));
    CHECK_OK(ffnc_plan_run_phase(plan, 2, inputs, FFNC_PLAN_PHASE_UPDATE, NULL));
    CHECK(ffnc_plan_get_step(plan) == 1);
    CHECK(memcmp(before, params, sizeof before) == 0);
    CHECK_STATUS(ffnc_plan_run_phase(plan, 2, inputs, (ffnc_plan_phase)0, NULL),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_plan_run_phase(plan, 2, inputs, (ffnc_plan_phase)3, NULL),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_plan_run_phase(plan, 0, inputs, FFNC_PLAN_PHASE_GRADIENTS, NULL),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_plan_run_phase(plan, B + 1, inputs, FFNC_PLAN_PHASE_UPDATE, NULL),
                 FFNC_ERR_INVALID_ARGUMENT);
    const void *missing[2] = {x, NULL};
    CHECK_STATUS(ffnc_plan_run_phase(plan, 1, missing, FFNC_PLAN_PHASE_GRADIENTS, NULL),
                 FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_plan_run_phase(NULL, 1, inputs, FFNC_PLAN_PHASE_GRADIENTS, NULL),
                 FFNC_ERR_NULL_POINTER);
    CHECK(ffnc_plan_get_step(plan) == 1);
    CHECK(ffnc_plan_update_begin(NULL) == 0);
    ffnc_plan_destroy(plan);
}

int main(void) {
    test_phases_equal_run();
    test_update_reads_caller_gradients();
    test_no_update_and_errors();
    return check_report("plan_phase");
}
