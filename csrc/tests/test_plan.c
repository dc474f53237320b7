/* Plans built by hand: a one-layer regression step (dense forward, MSE forward and backward,
 * weight and bias gradients, SGD) against a plain C reference, the momentum update with the
 * weight gradient added straight into the velocity (FFNC_PLAN_BETA) against the plain one,
 * and malformed plans that ffnc_plan_create must reject. */
#include <math.h>
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

/* ffnc_plan_run_timed is ffnc_plan_run (same bits, counts the step) plus a time per
 * instruction, accumulated over calls. */
static void test_timed_run_is_run(void) {
    fixture f;
    fixture_build(&f, &spec);
    ffnc_plan *plans[2] = {NULL, NULL};
    for (int v = 0; v < 2; v++) CHECK_OK(ffnc_plan_create(&f.desc, &plans[v], NULL));
    if (!plans[0] || !plans[1]) goto done;
    double *params[2];
    size_t n;
    unsigned long long seed = 11;
    for (int v = 0; v < 2; v++)
        CHECK_OK(ffnc_plan_arena_data(plans[v], FFNC_PLAN_PARAMS, (void **)&params[v], &n));
    for (int i = 0; i < PARAMS; i++) params[0][i] = params[1][i] = check_uniform(&seed, -1, 1);
    double x[B * K], t[B * N];
    for (int i = 0; i < B * K; i++) x[i] = check_uniform(&seed, -1, 1);
    for (int i = 0; i < B * N; i++) t[i] = check_uniform(&seed, -1, 1);
    const void *inputs[2] = {x, t};
    double seconds[16] = {0};
    CHECK(f.desc.n_instrs <= 16);
    for (size_t batch = 1; batch <= B; batch++) {
        CHECK_OK(ffnc_plan_run(plans[0], batch, inputs, NULL));
        CHECK_OK(ffnc_plan_run_timed(plans[1], batch, inputs, seconds, NULL));
    }
    CHECK(memcmp(params[0], params[1], PARAMS * sizeof(double)) == 0);
    CHECK(ffnc_plan_get_step(plans[1]) == B);
    for (size_t i = 0; i < f.desc.n_instrs; i++) CHECK(seconds[i] > 0 && seconds[i] < 10);
    for (size_t i = f.desc.n_instrs; i < 16; i++) CHECK(seconds[i] == 0);
    double before[16];
    memcpy(before, seconds, sizeof(seconds));
    CHECK_STATUS(ffnc_plan_run_timed(plans[1], 1, inputs, NULL, NULL), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_plan_run_timed(plans[1], 0, inputs, seconds, NULL),
                 FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_plan_run_timed(NULL, 1, inputs, seconds, NULL), FFNC_ERR_NULL_POINTER);
    CHECK(memcmp(before, seconds, sizeof(seconds)) == 0);
    CHECK(ffnc_plan_get_step(plans[1]) == B);
done:
    for (int v = 0; v < 2; v++) ffnc_plan_destroy(plans[v]);
}

/* The momentum fixture five ways, bit for bit alike over a few steps (the batch fits one
 * block of the GEMM's K): as built (dW into the gradient arena, then one MOMENTUM over W and
 * b); with DENSE_BACKWARD adding dW into the velocity (BETA, hyper[0] = momentum) and W updated
 * by SGD from the velocity; the same with dW from a separate GEMM instruction; and with the
 * SGD step taken in the DENSE_BACKWARD's store (STEP, the SGD marked STEPPED), run as whole
 * steps and as two phases (where the SGD instruction takes it instead). */
enum { MOMENTUM_WAYS = 5, WAY_STEP = 3, WAY_STEP_PHASES = 4 };

static void test_momentum_into_velocity(void) {
    const double lr = 0.1, mu = 0.9;
    const ffnc_dtype dtypes[2] = {FFNC_F64, FFNC_F32};
    for (int d = 0; d < 2; d++) {
        ffnc_dtype dt = dtypes[d];
        fixture_spec s = {dt, B, K, N, FFNC_ACT_IDENTITY, 0, FIXTURE_MOMENTUM, lr, mu, 0};
        fixture f[MOMENTUM_WAYS];
        for (int v = 0; v < MOMENTUM_WAYS; v++) fixture_build(&f[v], &s);
        for (int v = 1; v < MOMENTUM_WAYS; v++) {
            ffnc_plan_instr *in = f[v].instrs, *update = &in[v == 2 ? 5 : 4];
            if (v != 2) {
                in[3].refs[6] = ref(FFNC_PLAN_STATE, 0);
                in[3].flags |= FFNC_PLAN_BETA;
                in[3].hyper[0] = mu;
                if (v >= WAY_STEP) {
                    in[3].flags |= FFNC_PLAN_STEP;
                    in[3].refs[1] = ref(FFNC_PLAN_PARAMS, 0); /* W, which it steps */
                    in[3].hyper[1] = lr;
                }
            } else { /* dW = x^T diff by GEMM: m = K, n = N, k = the rows */
                in[3].refs[6] = (ffnc_plan_ref){0};
                memset(&in[4], 0, sizeof in[4]);
                in[4].opcode = FFNC_OP_GEMM;
                in[4].m = fixed(K), in[4].n = fixed(N), in[4].k = rows();
                in[4].alpha = 1;
                in[4].flags = FFNC_PLAN_TRANS_A | FFNC_PLAN_BETA;
                in[4].hyper[0] = mu;
                in[4].refs[0] = input(0);
                in[4].refs[1] = ref(FFNC_PLAN_ACTS, FIXTURE_DIFF(B, N));
                in[4].refs[2] = ref(FFNC_PLAN_STATE, 0);
            }
            /* W: p -= lr v (SGD from the velocity); b: the momentum update as before */
            update[1] = f[0].instrs[4];
            update[1].n = fixed(N);
            for (int r = 0; r < 3; r++) update[1].refs[r].offset = K * N;
            memset(update, 0, sizeof *update);
            update->opcode = FFNC_OP_SGD;
            update->n = fixed(K * N);
            update->hyper[0] = lr;
            update->refs[0] = ref(FFNC_PLAN_PARAMS, 0);
            update->refs[1] = ref(FFNC_PLAN_STATE, 0);
            if (v >= WAY_STEP) update->flags |= FFNC_PLAN_STEPPED;
            f[v].desc.n_instrs = (size_t)(update - in) + 2;
        }
        ffnc_plan *plans[MOMENTUM_WAYS] = {NULL};
        int all = 1;
        for (int v = 0; v < MOMENTUM_WAYS; v++) {
            CHECK_OK(ffnc_plan_create(&f[v].desc, &plans[v], NULL));
            all = all && plans[v];
        }
        if (!all) {
            for (int v = 0; v < MOMENTUM_WAYS; v++) ffnc_plan_destroy(plans[v]);
            return;
        }
        CHECK(ffnc_plan_update_begin(plans[WAY_STEP_PHASES]) == 4);
        size_t width = fixture_elem_size(dt);
        double x[B * K], t[B * N]; /* room for either dtype */
        unsigned long long seed = 11;
        fixture_fill(dt, x, B * K, &seed, -1, 1);
        fixture_fill(dt, t, B * N, &seed, -1, 1);
        const void *inputs[2] = {x, t};
        for (int v = 0; v < MOMENTUM_WAYS; v++) {
            void *params;
            size_t n;
            CHECK_OK(ffnc_plan_arena_data(plans[v], FFNC_PLAN_PARAMS, &params, &n));
            unsigned long long pseed = 5;
            fixture_fill(dt, params, n, &pseed, -1, 1);
            for (size_t batch = 1; batch <= B; batch++) {
                if (v != WAY_STEP_PHASES) {
                    CHECK_OK(ffnc_plan_run(plans[v], batch, inputs, NULL));
                    continue;
                }
                CHECK_OK(ffnc_plan_run_phase(plans[v], batch, inputs, FFNC_PLAN_PHASE_GRADIENTS,
                                             NULL));
                CHECK_OK(ffnc_plan_run_phase(plans[v], batch, inputs, FFNC_PLAN_PHASE_UPDATE,
                                             NULL));
            }
        }
        /* a new learning rate reaches the step in the backward as it does the SGD */
        for (int v = 0; v < MOMENTUM_WAYS; v++) {
            CHECK_OK(ffnc_plan_set_lr(plans[v], lr / 2));
            CHECK_OK(ffnc_plan_run(plans[v], B, inputs, NULL));
        }
        for (int v = 1; v < MOMENTUM_WAYS; v++) {
            CHECK(fixture_same_arena(plans[0], plans[v], FFNC_PLAN_PARAMS, width));
            CHECK(fixture_same_arena(plans[0], plans[v], FFNC_PLAN_STATE, width));
        }
        void *grads;
        size_t n;
        CHECK_OK(ffnc_plan_arena_data(plans[1], FFNC_PLAN_GRADS, &grads, &n));
        for (size_t i = 0; i < K * N; i++) /* W's gradient was never stored */
            CHECK(dt == FFNC_F32 ? ((float *)grads)[i] == 0 : ((double *)grads)[i] == 0);
        for (int v = 0; v < MOMENTUM_WAYS; v++) ffnc_plan_destroy(plans[v]);
    }
}

/* A dense backward may write diff_src over the saved activation its first pass reads (the
 * memory planner's reuse): the same results as with diff_src elsewhere; with ACCUMULATE_SRC,
 * which would read diff_src, the overlap is refused. Relu layer, K = N = 3, rows from slot 0
 * (x) and slot 1 (the incoming gradient). */
static void test_diff_src_over_saved(void) {
    enum { R = 4, D = 3, RD = R * D };
    double x[RD], dy[RD], results[2][RD];
    unsigned long long seed = 17;
    fixture_fill(FFNC_F64, x, RD, &seed, -1, 1);
    fixture_fill(FFNC_F64, dy, RD, &seed, -1, 1);
    const void *inputs[2] = {x, dy};
    ffnc_plan_input slots[2] = {{FFNC_PLAN_INPUT_FLOAT, {0, D}}, {FFNC_PLAN_INPUT_FLOAT, {0, D}}};
    for (int shared = 0; shared < 2; shared++) {
        ffnc_plan_instr in[2] = {{0}, {0}};
        in[0].opcode = FFNC_OP_DENSE_FORWARD, in[0].subop = FFNC_ACT_RELU;
        in[0].m = rows(), in[0].n = fixed(D), in[0].k = fixed(D);
        in[0].refs[0] = input(0), in[0].refs[1] = ref(FFNC_PLAN_PARAMS, 0);
        in[0].refs[4] = ref(FFNC_PLAN_ACTS, 0); /* y = relu(x W): saved */
        in[1] = in[0];
        memset(in[1].refs, 0, sizeof in[1].refs);
        in[1].opcode = FFNC_OP_DENSE_BACKWARD;
        in[1].refs[0] = input(0), in[1].refs[1] = ref(FFNC_PLAN_PARAMS, 0);
        in[1].refs[2] = ref(FFNC_PLAN_ACTS, 0), in[1].refs[3] = input(1);
        in[1].refs[4] = ref(FFNC_PLAN_ACTS, RD);                 /* diff_pre */
        in[1].refs[5] = ref(FFNC_PLAN_ACTS, shared ? 0 : 2 * RD); /* diff_src */
        in[1].refs[6] = ref(FFNC_PLAN_GRADS, 0);
        ffnc_plan_desc d = {FFNC_F64, R, {D * D, D * D, 0, 3 * RD}, 2, slots, 2, in, 0, NULL};
        ffnc_plan *plan = NULL;
        CHECK_OK(ffnc_plan_create(&d, &plan, NULL));
        if (!plan) return;
        double *params, *acts;
        size_t n;
        CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, (void **)&params, &n));
        unsigned long long param_seed = 3; /* the same weights in both plans */
        fixture_fill(FFNC_F64, params, n, &param_seed, -1, 1);
        CHECK_OK(ffnc_plan_run(plan, R, inputs, NULL));
        CHECK_OK(ffnc_plan_arena_data(plan, FFNC_PLAN_ACTS, (void **)&acts, &n));
        memcpy(results[shared], acts + (shared ? 0 : 2 * RD), sizeof results[shared]);
        ffnc_plan_destroy(plan);
        if (shared) { /* accumulating into it would read what the first pass left there */
            in[1].flags = FFNC_PLAN_ACCUMULATE_SRC;
            plan = (ffnc_plan *)&d;
            CHECK_STATUS(ffnc_plan_create(&d, &plan, NULL), FFNC_ERR_INVALID_ARGUMENT);
            CHECK(plan == NULL);
        }
    }
    CHECK(memcmp(results[0], results[1], sizeof results[0]) == 0);
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
static void beta_on_a_loss(ffnc_plan_instr *in) { in->flags |= FFNC_PLAN_BETA; }
static void nan_beta(ffnc_plan_instr *in) {
    in->flags |= FFNC_PLAN_BETA;
    in->hyper[0] = NAN;
}

/* FFNC_PLAN_STEP / STEPPED where they do not belong (instruction 3 is the dense backward) */
static void step_without_beta(ffnc_plan_instr *in) {
    in->flags |= FFNC_PLAN_STEP;
    in->refs[1] = ref(FFNC_PLAN_PARAMS, 0);
    in->hyper[1] = 0.1;
}
static void step_on_a_forward(ffnc_plan_instr *in) {
    in->flags |= FFNC_PLAN_STEP | FFNC_PLAN_BETA;
    in->hyper[1] = 0.1;
}
static void step_weights_not_parameters(ffnc_plan_instr *in) {
    step_without_beta(in);
    in->flags |= FFNC_PLAN_BETA;
    in->refs[1] = ref(FFNC_PLAN_ACTS, 0);
}
static void step_nan_lr(ffnc_plan_instr *in) {
    step_without_beta(in);
    in->flags |= FFNC_PLAN_BETA;
    in->hyper[1] = NAN;
}
static void stepped_not_sgd(ffnc_plan_instr *in) { in->flags |= FFNC_PLAN_STEPPED; }

static void test_malformed_plans_rejected(void) {
    expect_rejected(3, step_without_beta, "STEP without BETA", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(0, step_on_a_forward, "STEP on a dense forward", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(3, step_weights_not_parameters, "STEP on activations",
                    FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(3, step_nan_lr, "STEP with a NaN rate", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(3, stepped_not_sgd, "STEPPED on a dense backward", FFNC_ERR_INVALID_ARGUMENT);
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
    expect_rejected(1, beta_on_a_loss, "BETA on an MSE", FFNC_ERR_INVALID_ARGUMENT);
    expect_rejected(3, nan_beta, "NaN beta", FFNC_ERR_INVALID_ARGUMENT);
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
    test_timed_run_is_run();
    test_momentum_into_velocity();
    test_diff_src_over_saved();
    test_malformed_plans_rejected();
    test_step_counter_limit();
    return check_report("plan");
}
