/* Plans built by hand: a one-layer regression step (dense forward, MSE forward and backward,
 * weight and bias gradients, SGD) against a plain C reference, and malformed plans that
 * ffnc_plan_create must reject. */
#include <stdlib.h>
#include <string.h>

#include "plan_fixture.h"

#define B 3 /* max batch */
#define K 4 /* inputs */
#define N 2 /* outputs */

enum { B_OFF = K * N, PARAMS = FIXTURE_PARAMS(K, N), LOSS = FIXTURE_LOSS(B, N),
       ACTS = FIXTURE_ACTS(B, N) };

/* The step: identity activation, SGD at learning rate 0.1 (instruction 4), loss recorded. */
static const fixture_spec spec = {FFNC_F64, B, K, N, FFNC_ACT_IDENTITY, 0, FIXTURE_SGD, 0.1, 0,
                                  1};

static void test_step_matches_reference(void) {
    fixture f;
    fixture_build(&f, &spec);
    ffnc_plan *plan = NULL;
    FOR_EACH_ISA(isa) {
        CHECK_OK(ffnc_plan_create(&f.desc, &plan, NULL));
        if (!plan) return;
        double *params, ref_p[PARAMS];
        size_t n;
        CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, (void **)&params, &n));
        CHECK(n == PARAMS);
        unsigned long long seed = 7;
        for (int i = 0; i < PARAMS; i++) ref_p[i] = params[i] = check_uniform(&seed, -1, 1);
        double x[B * K], t[B * N];
        for (int i = 0; i < B * K; i++) x[i] = check_uniform(&seed, -1, 1);
        for (int i = 0; i < B * N; i++) t[i] = check_uniform(&seed, -1, 1);
        const void *inputs[2] = {x, t};
        for (size_t batch = 1; batch <= B; batch++) {
            /* reference: y = x W + b, loss = mean (y - t)^2, g = 2 (y - t) / (batch N) */
            double loss = 0, gw[K * N] = {0}, gb[N] = {0};
            for (size_t r = 0; r < batch; r++)
                for (int c = 0; c < N; c++) {
                    double y = ref_p[B_OFF + c];
                    for (int k = 0; k < K; k++) y += x[r * K + k] * ref_p[k * N + c];
                    double e = y - t[r * N + c];
                    loss += e * e / (double)(batch * N);
                    double g = 2 * e / (double)(batch * N);
                    gb[c] += g;
                    for (int k = 0; k < K; k++) gw[k * N + c] += x[r * K + k] * g;
                }
            for (int i = 0; i < K * N; i++) ref_p[i] -= 0.1 * gw[i];
            for (int c = 0; c < N; c++) ref_p[B_OFF + c] -= 0.1 * gb[c];
            size_t failed = 99;
            CHECK_OK(ffnc_plan_run(plan, batch, inputs, &failed));
            double *acts;
            CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_ACTS, (void **)&acts, &n));
            CHECK_CLOSE(acts[LOSS], loss, 1e-12, 1e-15);
            for (int i = 0; i < PARAMS; i++) CHECK_CLOSE(params[i], ref_p[i], 1e-12, 1e-15);
        }
        CHECK(ffnc_plan_get_step(plan) == B);
        /* the epoch API over 3 rows in batches of 2: two steps, two recorded losses */
        double records[2] = {-1, -1};
        size_t steps = 0;
        CHECK_OK(ffnc_plan_run_epoch(plan, 3, 2, inputs, records, &steps, NULL));
        CHECK(steps == 2 && records[0] >= 0 && records[1] >= 0);
        CHECK_STATUS(ffnc_plan_run(plan, B + 1, inputs, NULL), FFNC_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(ffnc_plan_run(plan, 0, inputs, NULL), FFNC_ERR_INVALID_ARGUMENT);
        const void *missing[2] = {x, NULL};
        CHECK_STATUS(ffnc_plan_run(plan, 1, missing, NULL), FFNC_ERR_NULL_POINTER);
        ffnc_plan_destroy(plan);
        plan = NULL;
    }
}

/* Builds the valid plan, applies `mutate` to instruction `which`, expects rejection there. */
static void expect_rejected(int which, void (*mutate)(ffnc_plan_instr *), const char *what,
                            ffnc_status expected) {
    fixture f;
    fixture_build(&f, &spec);
    mutate(&f.instrs[which]);
    ffnc_plan *plan = (ffnc_plan *)&f; /* must be reset to NULL on failure */
    size_t bad = 99;
    ffnc_status s = ffnc_plan_create(&f.desc, &plan, &bad);
    check_total++;
    if (s != expected || bad != (size_t)which || plan != NULL) {
        check_failed++;
        fprintf(stderr, "malformed plan (%s) not rejected: status %d, bad %zu\n", what, (int)s,
                bad);
    }
    ffnc_plan_destroy(plan);
}

static void past_acts(ffnc_plan_instr *in) { in->refs[4].offset = ACTS - 1; }
static void huge_offset(ffnc_plan_instr *in) { in->refs[4].offset = SIZE_MAX - 1; }
static void huge_rows(ffnc_plan_instr *in) { in->m.per_batch = SIZE_MAX / 2; }
static void wide_input(ffnc_plan_instr *in) { in->k = fixed(K + 1); }
static void write_input(ffnc_plan_instr *in) { in->refs[3] = input(0); }
static void bad_slot(ffnc_plan_instr *in) { in->refs[0] = input(5); }
static void bad_opcode(ffnc_plan_instr *in) { in->opcode = 999; }
static void missing_dst(ffnc_plan_instr *in) { in->refs[4] = (ffnc_plan_ref){0}; }
static void extra_ref(ffnc_plan_instr *in) { in->refs[7] = ref(FFNC_PLAN_ACTS, 0); }
static void bad_lr(ffnc_plan_instr *in) { in->hyper[0] = -1; }
static void aliased(ffnc_plan_instr *in) { in->refs[4] = ref(FFNC_PLAN_PARAMS, 0); }
static void bad_arena(ffnc_plan_instr *in) { in->refs[0].arena = 42; }
static void bad_flags(ffnc_plan_instr *in) { in->flags = 1u << 20; }

static void test_malformed_plans_rejected(void) {
    expect_rejected(0, past_acts, "output past the activation arena", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(0, huge_offset, "offset overflow", FFNC_ERR_SIZE_OVERFLOW);
    expect_rejected(0, huge_rows, "size overflow", FFNC_ERR_SIZE_OVERFLOW);
    expect_rejected(0, wide_input, "reads past the input", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(2, write_input, "writes an input", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(0, bad_slot, "unknown input slot", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(1, bad_opcode, "unknown opcode", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(0, missing_dst, "missing output", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(1, extra_ref, "operand the opcode does not take", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(4, bad_lr, "negative learning rate", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(0, aliased, "GEMM output overlapping its weights", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(0, bad_arena, "unknown arena", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(3, bad_flags, "unknown flag", FFNC_ERR_INVALID_ARGUMENT);
    ffnc_plan *plan = NULL;
    CHECK_STATUS(ffnc_plan_create(NULL, &plan, NULL), FFNC_ERR_NULL_POINTER);
    fixture f;
    fixture_build(&f, &spec);
    CHECK(f.desc.n_instrs == 5 && f.desc.n_records == 1);
    f.record = ref(FFNC_PLAN_ACTS, ACTS); /* a record past the activation arena */
    CHECK_STATUS(ffnc_plan_create(&f.desc, &plan, NULL), FFNC_ERR_INVALID_ARGUMENT);
    f.record = ref(FFNC_PLAN_ACTS, LOSS);
    f.desc.max_batch = 0;
    CHECK_STATUS(ffnc_plan_create(&f.desc, &plan, NULL), FFNC_ERR_INVALID_ARGUMENT);
    ffnc_plan_destroy(NULL);
}

/* A step counter at its end (INT64_MAX, set so or reached) refuses every run that would count
 * past it with its own status, before any instruction runs: the plan stays as it was. */
static void test_step_counter_limit(void) {
    ffnc_plan *plan = fixture_create(&spec, 3);
    if (!plan) return;
    double x[B * K], t[B * N], *params, before[PARAMS];
    unsigned long long seed = 4;
    fixture_fill(FFNC_F64, x, B * K, &seed, -1, 1);
    fixture_fill(FFNC_F64, t, B * N, &seed, -1, 1);
    const void *inputs[2] = {x, t};
    size_t n, failed = 99, done = 99;
    double records[2] = {-1, -1};
    CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, (void **)&params, &n));

    CHECK_OK(ffnc_plan_set_step(plan, INT64_MAX - 1));
    memcpy(before, params, sizeof before);
    /* two steps do not fit, one does */
    CHECK_STATUS(ffnc_plan_run_epoch(plan, 2, 1, inputs, records, &done, &failed),
                 FFNC_ERR_STEP_LIMIT);
    CHECK(done == 0 && failed == 99 && records[0] == -1);
    CHECK(memcmp(before, params, sizeof before) == 0);
    CHECK_OK(ffnc_plan_run_epoch(plan, 1, 1, inputs, records, &done, NULL));
    CHECK(done == 1 && ffnc_plan_get_step(plan) == INT64_MAX);

    memcpy(before, params, sizeof before);
    CHECK_STATUS(ffnc_plan_run(plan, 1, inputs, &failed), FFNC_ERR_STEP_LIMIT);
    CHECK_STATUS(ffnc_plan_run_phase(plan, 1, inputs, FFNC_PLAN_PHASE_GRADIENTS, &failed),
                 FFNC_ERR_STEP_LIMIT);
    CHECK_STATUS(ffnc_plan_run_phase(plan, 1, inputs, FFNC_PLAN_PHASE_UPDATE, &failed),
                 FFNC_ERR_STEP_LIMIT);
    CHECK_STATUS(ffnc_plan_run_epoch(plan, 1, 1, inputs, records, &done, &failed),
                 FFNC_ERR_STEP_LIMIT);
    CHECK(failed == 99 && done == 0 && ffnc_plan_get_step(plan) == INT64_MAX);
    CHECK(memcmp(before, params, sizeof before) == 0);
    /* the message names the limit */
    CHECK(strstr(ffnc_status_string(FFNC_ERR_STEP_LIMIT), "2**63 - 1") != NULL);
    /* a smaller step runs again */
    CHECK_OK(ffnc_plan_set_step(plan, 0));
    CHECK_OK(ffnc_plan_run(plan, 1, inputs, NULL));
    CHECK(ffnc_plan_get_step(plan) == 1);
    ffnc_plan_destroy(plan);
}

int main(void) {
    test_step_matches_reference();
    test_malformed_plans_rejected();
    test_step_counter_limit();
    return check_report("plan");
}
