/* Plans built by hand: a one-layer regression step (dense forward, MSE forward and backward,
 * weight and bias gradients, SGD) against a plain C reference, and malformed plans that
 * ffnc_plan_create must reject. */
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define B 3 /* max batch */
#define K 4 /* inputs */
#define N 2 /* outputs */

static ffnc_plan_ref ref(int arena, size_t offset) { return (ffnc_plan_ref){arena, 0, offset}; }
static ffnc_plan_ref input(uint32_t slot) { return (ffnc_plan_ref){FFNC_PLAN_INPUT, slot, 0}; }
static ffnc_plan_size fixed(size_t n) { return (ffnc_plan_size){n, 0}; }
static ffnc_plan_size rows(void) { return (ffnc_plan_size){0, 1}; }

/* params: W (K x N) at 0, b (N) at K*N. acts: y_hat (B x N) at 0, loss at 8, diff at 16. */
enum { W_OFF = 0, B_OFF = K * N, PARAMS = K * N + N, YHAT = 0, LOSS = 8, DIFF = 16, ACTS = 24 };

static void build(ffnc_plan_instr *ins, double lr) {
    memset(ins, 0, 5 * sizeof *ins);
    ins[0].opcode = FFNC_OP_DENSE_FORWARD;
    ins[0].m = rows(), ins[0].n = fixed(N), ins[0].k = fixed(K);
    ins[0].subop = FFNC_ACT_IDENTITY;
    ins[0].refs[0] = input(0);
    ins[0].refs[1] = ref(FFNC_PLAN_PARAMS, W_OFF);
    ins[0].refs[2] = ref(FFNC_PLAN_PARAMS, B_OFF);
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
    ins[3].refs[6] = ref(FFNC_PLAN_GRADS, W_OFF);
    ins[3].refs[7] = ref(FFNC_PLAN_GRADS, B_OFF);
    ins[4].opcode = FFNC_OP_SGD;
    ins[4].n = fixed(PARAMS);
    ins[4].hyper[0] = lr;
    ins[4].refs[0] = ref(FFNC_PLAN_PARAMS, 0);
    ins[4].refs[1] = ref(FFNC_PLAN_GRADS, 0);
}

static ffnc_plan_input slots[2] = {{FFNC_PLAN_INPUT_FLOAT, {0, K}},
                                   {FFNC_PLAN_INPUT_FLOAT, {0, N}}};

static ffnc_plan_desc describe(ffnc_plan_instr *ins, size_t n_instrs, ffnc_plan_ref *record) {
    ffnc_plan_desc d = {FFNC_F64, B, {PARAMS, PARAMS, 0, ACTS}, 2, slots, n_instrs, ins, 1,
                        record};
    return d;
}

static void test_step_matches_reference(void) {
    ffnc_plan_instr ins[5];
    build(ins, 0.1);
    ffnc_plan_ref record = ref(FFNC_PLAN_ACTS, LOSS);
    ffnc_plan_desc d = describe(ins, 5, &record);
    ffnc_plan *plan = NULL;
    FOR_EACH_ISA(isa) {
        CHECK_OK(ffnc_plan_create(&d, &plan, NULL));
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
    ffnc_plan_instr ins[5];
    build(ins, 0.1);
    mutate(&ins[which]);
    ffnc_plan_ref record = ref(FFNC_PLAN_ACTS, LOSS);
    ffnc_plan_desc d = describe(ins, 5, &record);
    ffnc_plan *plan = (ffnc_plan *)&d; /* must be reset to NULL on failure */
    size_t bad = 99;
    ffnc_status s = ffnc_plan_create(&d, &plan, &bad);
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
    ffnc_plan_instr ins[5];
    build(ins, 0.1);
    ffnc_plan_ref record = ref(FFNC_PLAN_ACTS, ACTS);
    ffnc_plan_desc d = describe(ins, 5, &record);
    CHECK_STATUS(ffnc_plan_create(&d, &plan, NULL), FFNC_ERR_INVALID_ARGUMENT);
    record = ref(FFNC_PLAN_ACTS, LOSS);
    d.max_batch = 0;
    CHECK_STATUS(ffnc_plan_create(&d, &plan, NULL), FFNC_ERR_INVALID_ARGUMENT);
    ffnc_plan_destroy(NULL);
}

int main(void) {
    test_step_matches_reference();
    test_malformed_plans_rejected();
    return check_report("plan");
}
