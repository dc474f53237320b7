/* The selection, index, row-wise and dropout instructions of plans (opcodes 30-59), built by
 * hand: results against plain C references, the run-time errors (indices out of range,
 * integers without an exact float), 1 against 2 threads bit for bit, and the malformed
 * instructions ffnc_plan_create must reject. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan_fixture.h"

static ffnc_plan_ref acts(size_t offset) { return ref(FFNC_PLAN_ACTS, offset); }

/* A plan of one instruction over an activation arena of `n_acts` elements, with input slots. */
static ffnc_status one_instr(ffnc_dtype dt, size_t max_batch, size_t n_acts, ffnc_plan_instr in,
                             size_t n_inputs, const ffnc_plan_input *inputs, ffnc_plan **plan) {
    ffnc_plan_desc d = {dt, max_batch, {0, 0, 0, n_acts}, n_inputs, inputs, 1, &in, 0, NULL};
    return ffnc_plan_create(&d, plan, NULL);
}

static double *acts_f64(ffnc_plan *plan) {
    void *data;
    size_t n;
    ffnc_plan_arena_data(plan, FFNC_PLAN_ACTS, &data, &n);
    return data;
}

/* The mask formula of ffnc.h, written out again. */
static int reference_keep(uint64_t seed, uint64_t step, uint64_t i, double p) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + step * 0xD1B54A32D192ED03ull + i;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return ldexp((double)(z >> 11), -53) >= p;
}

static void test_dropout(void) {
    enum { N = 40000 };
    const uint64_t seed = 0xDEADBEEF12345678ull;
    ffnc_plan_input slot = {FFNC_PLAN_INPUT_FLOAT, {N, 0}};
    ffnc_plan_instr in = {0};
    in.opcode = FFNC_OP_DROPOUT;
    in.n = fixed(N);
    in.alpha = 0.25;
    in.hyper[0] = (double)(seed & 0xFFFFFFFFu);
    in.hyper[1] = (double)(seed >> 32);
    in.refs[0] = input(0);
    in.refs[1] = acts(0);
    double *x = malloc(N * sizeof *x), *first = malloc(N * sizeof *first);
    for (int i = 0; i < N; i++) x[i] = i + 1;
    const void *inputs[1] = {x};
    ffnc_plan *plan = NULL;
    CHECK_OK(one_instr(FFNC_F64, 1, N, in, 1, &slot, &plan));
    if (!plan) return;
    CHECK(ffnc_dropout_keep(seed, 3, 17, 0.25) == reference_keep(seed, 3, 17, 0.25));
    for (int threads = 1; threads <= 2; threads++) {
        ffnc_set_num_threads(threads);
        CHECK_OK(ffnc_plan_set_step(plan, 3));
        CHECK_OK(ffnc_plan_run(plan, 1, inputs, NULL));
        double *y = acts_f64(plan);
        size_t kept = 0, wrong = 0;
        for (int i = 0; i < N; i++) {
            int keep = reference_keep(seed, 3, (uint64_t)i, 0.25);
            kept += keep;
            wrong += y[i] != (keep ? x[i] * (1 / 0.75) : 0.0);
        }
        CHECK(wrong == 0);
        /* within 4 sigma of the keep rate */
        CHECK(fabs((double)kept - 0.75 * N) <= 4 * sqrt(N * 0.25 * 0.75));
        if (threads == 1) memcpy(first, y, N * sizeof *y);
        else CHECK(memcmp(first, y, N * sizeof *y) == 0);
    }
    /* the next step draws another mask */
    CHECK_OK(ffnc_plan_run(plan, 1, inputs, NULL));
    CHECK(memcmp(first, acts_f64(plan), N * sizeof *first) != 0);
    ffnc_set_num_threads(1);
    ffnc_plan_destroy(plan);
    free(x);
    free(first);
}

static void test_one_hot_and_labels(void) {
    /* labels (int64 input) -> exact floats -> one-hot rows of depth 3 scaled per row */
    ffnc_plan_input slots[2] = {{FFNC_PLAN_INPUT_INT64, {0, 1}}, {FFNC_PLAN_INPUT_FLOAT, {0, 1}}};
    ffnc_plan_instr ins[2] = {{0}, {0}};
    ins[0].opcode = FFNC_OP_FROM_INT64;
    ins[0].subop = 1;
    ins[0].n = rows();
    ins[0].refs[0] = input(0);
    ins[0].refs[1] = acts(0);
    ins[1].opcode = FFNC_OP_ONE_HOT;
    ins[1].m = rows();
    ins[1].n = fixed(3);
    ins[1].refs[0] = acts(0);
    ins[1].refs[1] = input(1);
    ins[1].refs[2] = acts(8);
    ffnc_plan_desc d = {FFNC_F32, 4, {0, 0, 0, 20}, 2, slots, 2, ins, 0, NULL};
    ffnc_plan *plan = NULL;
    CHECK_OK(ffnc_plan_create(&d, &plan, NULL));
    if (!plan) return;
    int64_t labels[4] = {2, 0, 1, 2};
    float scale[4] = {1, -2, NAN, 4};
    const void *inputs[2] = {labels, scale};
    CHECK_OK(ffnc_plan_run(plan, 4, inputs, NULL));
    void *data;
    size_t n;
    ffnc_plan_arena_data(plan, FFNC_PLAN_ACTS, &data, &n);
    float *hot = (float *)data + 8;
    CHECK(hot[2] == 1 && hot[0] == 0 && hot[3] == -2 && hot[4] == 0 && isnan(hot[7]) &&
          isnan(hot[6]) && hot[11] == 4);
    CHECK(hot[4] == 0 && signbit(hot[4])); /* -2 * 0 is -0, as the graph's product */
    /* out of range: reported, nothing written by the one-hot */
    labels[1] = 3;
    hot[0] = 99;
    size_t failed = 0;
    CHECK_STATUS(ffnc_plan_run(plan, 4, inputs, &failed), FFNC_ERR_LABEL_OUT_OF_RANGE);
    CHECK(failed == 1 && hot[0] == 99);
    /* 2^24 + 1 has no exact float: the conversion refuses it */
    labels[1] = ((int64_t)1 << 24) + 1;
    CHECK_STATUS(ffnc_plan_run(plan, 4, inputs, &failed), FFNC_ERR_LABEL_OUT_OF_RANGE);
    CHECK(failed == 0);
    labels[1] = -((int64_t)1 << 24);
    CHECK_STATUS(ffnc_plan_run(plan, 4, inputs, &failed), FFNC_ERR_LABEL_OUT_OF_RANGE);
    CHECK(failed == 1); /* exact, but not an index */
    ffnc_plan_destroy(plan);
}

static void test_max_argmax_and_rowwise(void) {
    /* 3 rows of 4: ties go to the first, NaN wins, then softmax/log-softmax/logsumexp */
    enum { R = 3, C = 4 };
    double x[R * C] = {1, 3, 3, 0, NAN, 1, NAN, 2, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    ffnc_plan_input slot = {FFNC_PLAN_INPUT_FLOAT, {0, C}};
    ffnc_plan_instr ins[4] = {{0}, {0}, {0}, {0}};
    for (int i = 0; i < 4; i++) {
        ins[i].m = rows();
        ins[i].n = fixed(C);
        ins[i].k = fixed(1);
        ins[i].refs[0] = input(0);
    }
    ins[0].opcode = FFNC_OP_MAX_ARGMAX;
    ins[0].refs[1] = acts(0);
    ins[0].refs[2] = acts(4);
    ins[1].opcode = FFNC_OP_SOFTMAX;
    ins[1].refs[1] = acts(8);
    ins[2].opcode = FFNC_OP_LOG_SOFTMAX;
    ins[2].refs[1] = acts(24);
    ins[3].opcode = FFNC_OP_LOGSUMEXP;
    ins[3].refs[1] = acts(40);
    ffnc_plan_desc d = {FFNC_F64, R, {0, 0, 0, 48}, 1, &slot, 4, ins, 0, NULL};
    ffnc_plan *plan = NULL;
    CHECK_OK(ffnc_plan_create(&d, &plan, NULL));
    if (!plan) return;
    const void *inputs[1] = {x};
    CHECK_OK(ffnc_plan_run(plan, R, inputs, NULL));
    double *a = acts_f64(plan);
    CHECK(a[0] == 3 && isnan(a[1]) && a[2] == -INFINITY);
    CHECK(a[4] == 1 && a[5] == 0 && a[6] == 0);
    double e = exp(-2.0), total = e + 1 + 1 + exp(-3.0);
    CHECK_CLOSE(a[8], e / total, 1e-15, 0);
    CHECK_CLOSE(a[9], 1 / total, 1e-15, 0);
    CHECK_CLOSE(a[24], -2 - log(total), 1e-15, 0);
    CHECK_CLOSE(a[40], 3 + log(total), 1e-15, 0);
    CHECK(isnan(a[12]) && isnan(a[28]) && isnan(a[41])); /* NaN reaches the whole row */
    CHECK(isnan(a[16]) && isnan(a[32]) && a[42] == -INFINITY); /* a row of -inf */
    ffnc_plan_destroy(plan);
}

static void test_rowwise_threads_bitwise(void) {
    enum { R = 256, C = 300 };
    ffnc_plan_input slot = {FFNC_PLAN_INPUT_FLOAT, {0, C}};
    ffnc_plan_instr ins[3] = {{0}, {0}, {0}};
    int ops[3] = {FFNC_OP_SOFTMAX, FFNC_OP_LOGSUMEXP, FFNC_OP_SOFTMAX_BACKWARD};
    for (int i = 0; i < 3; i++) {
        ins[i].opcode = ops[i];
        ins[i].m = rows();
        ins[i].n = fixed(C);
        ins[i].k = fixed(1);
        ins[i].refs[0] = input(0);
    }
    ins[0].refs[1] = acts(0);
    ins[1].refs[1] = acts(R * C);
    ins[2].refs[1] = acts(0);
    ins[2].refs[2] = acts(R * C + R);
    size_t total = 2 * R * C + R;
    ffnc_plan_desc d = {FFNC_F32, R, {0, 0, 0, total}, 1, &slot, 3, ins, 0, NULL};
    ffnc_plan *plan = NULL;
    CHECK_OK(ffnc_plan_create(&d, &plan, NULL));
    if (!plan) return;
    float *x = malloc(R * C * sizeof *x), *first = malloc(total * sizeof *first);
    unsigned long long state = 3;
    for (int i = 0; i < R * C; i++) x[i] = (float)check_uniform(&state, -20, 20);
    const void *inputs[1] = {x};
    void *data;
    size_t n;
    ffnc_plan_arena_data(plan, FFNC_PLAN_ACTS, &data, &n);
    for (int threads = 1; threads <= 2; threads++) {
        ffnc_set_num_threads(threads);
        CHECK_OK(ffnc_plan_run(plan, R, inputs, NULL));
        if (threads == 1) memcpy(first, data, total * sizeof *first);
        else CHECK(memcmp(first, data, total * sizeof *first) == 0);
    }
    ffnc_set_num_threads(1);
    ffnc_plan_destroy(plan);
    free(x);
    free(first);
}

/* ---- malformed instructions -------------------------------------------------------------- */

static ffnc_plan_instr plain(int opcode) {
    ffnc_plan_instr in = {0};
    in.opcode = opcode;
    in.m = fixed(2);
    in.n = fixed(3);
    in.k = fixed(1);
    in.refs[0] = acts(0);
    in.refs[1] = acts(8);
    return in;
}

static void expect_rejected(ffnc_plan_instr in, const char *what) {
    ffnc_plan *plan = NULL;
    ffnc_plan_input slot = {FFNC_PLAN_INPUT_INT64, {4, 0}};
    ffnc_status s = one_instr(FFNC_F32, 2, 16, in, 1, &slot, &plan);
    check_total++;
    if (s == FFNC_OK || plan != NULL) {
        check_failed++;
        fprintf(stderr, "malformed instruction (%s) not rejected\n", what);
    }
    ffnc_plan_destroy(plan);
}

static void test_malformed_rejected(void) {
    ffnc_plan_instr in = plain(FFNC_OP_DROPOUT);
    in.alpha = 1.0;
    expect_rejected(in, "dropout with p = 1");
    in.alpha = 0.5;
    in.hyper[1] = 0.5;
    expect_rejected(in, "dropout seed that is not an integer");
    in = plain(FFNC_OP_MAX_ARGMAX);
    in.refs[1] = (ffnc_plan_ref){0};
    expect_rejected(in, "max with neither output");
    in = plain(FFNC_OP_MAX_ARGMAX);
    in.n = fixed(0);
    expect_rejected(in, "max of nothing");
    in = plain(FFNC_OP_COPY_STRIDED);
    in.strides[0] = 3, in.strides[1] = 1, in.strides[2] = 1, in.strides[3] = 1;
    expect_rejected(in, "strided copy writing one element twice");
    in = plain(FFNC_OP_FROM_INT64);
    expect_rejected(in, "int64 conversion from a float arena");
    in.refs[0] = input(0);
    in.subop = 2;
    expect_rejected(in, "unknown conversion");
    in = plain(FFNC_OP_LOGSUMEXP);
    in.refs[1] = acts(2);
    expect_rejected(in, "row-wise output overlapping its input");
    in = plain(FFNC_OP_WHERE);
    in.refs[2] = acts(0);
    in.refs[3] = acts(12);
    in.strides[4] = 100;
    expect_rejected(in, "where reading past the arena");
    in = plain(FFNC_OP_BINARY);
    in.subop = FFNC_BINARY_EQUAL + 1;
    expect_rejected(in, "unknown binary op");
    in = plain(FFNC_OP_PRELU_FORWARD);
    in.k = fixed(2);
    in.refs[2] = acts(10);
    expect_rejected(in, "prelu with 2 slopes for 3 units");
    /* a valid instruction of the same shapes is accepted (the cases above fail for the reason
     * given, not another) */
    ffnc_plan *plan = NULL;
    in = plain(FFNC_OP_COPY_STRIDED);
    in.strides[0] = 3, in.strides[1] = 1, in.strides[2] = 3, in.strides[3] = 1;
    CHECK_OK(one_instr(FFNC_F32, 2, 16, in, 0, NULL, &plan));
    ffnc_plan_destroy(plan);
}

int main(void) {
    test_dropout();
    test_one_hot_and_labels();
    test_max_argmax_and_rowwise();
    test_rowwise_threads_bitwise();
    test_malformed_rejected();
    return check_report("plan_ops");
}
