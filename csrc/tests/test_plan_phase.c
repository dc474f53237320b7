/* ffnc_plan_run_phase: a step split into its gradients and its update (data-parallel training
 * averages the gradient arena between the two). The split runs must equal ffnc_plan_run bit
 * for bit, the update must read the gradients as the caller left them, and only the update
 * counts the step. */
#include <string.h>

#include "plan_fixture.h"

#define B 5 /* max batch */
#define K 3 /* inputs */
#define N 2 /* outputs */

enum { PARAMS = FIXTURE_PARAMS(K, N), NORM = FIXTURE_NORM(B, N) };

/* A linear least-squares step: dense forward, MSE forward and backward, dense backward; then,
 * when `update` is set, clipping by global norm at 0.5 (small enough to clip these gradients)
 * and a momentum update. */
static ffnc_plan *create(int update, ffnc_dtype dtype) {
    fixture_spec spec = {dtype, B, K, N, FFNC_ACT_IDENTITY, update ? 0.5 : 0,
                         update ? FIXTURE_MOMENTUM : FIXTURE_NO_UPDATE, 0.1, 0.9, 0};
    return fixture_create(&spec, 11);
}

/* x (B x K) and targets (B x N) in the dtype. */
static void data(ffnc_dtype dtype, void *x, void *t) {
    unsigned long long seed = 5;
    fixture_fill(dtype, x, B * K, &seed, -2, 2);
    fixture_fill(dtype, t, B * N, &seed, -2, 2);
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
                CHECK(fixture_same_arena(split, grads_only, FFNC_PLAN_GRADS, elem));
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
                CHECK(fixture_same_arena(whole, split, a, elem));
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
