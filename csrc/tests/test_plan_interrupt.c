/* ffnc_plan_interrupt: an epoch stops at the next step boundary, and the plan is then exactly
 * the plan after that many steps (parameters, optimizer state, step counter, records), so it
 * can train on. Requests come from a signal handler (as Python's Ctrl-C handler does), from
 * another thread, or before the run. */
#define _XOPEN_SOURCE 700 /* sigaction, setitimer, nanosleep */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "interrupt_fixture.h"
#include "plan_fixture.h"

#define K 3    /* inputs */
#define N 2    /* outputs */
#define B 4    /* max batch */
#define ROWS 6 /* rows of the short epochs: steps of 4 and 2 rows at batch 4 */

/* Least squares through tanh, trained by momentum; the loss is recorded after each step. */
static ffnc_plan *create(void) {
    static const fixture_spec spec = {FFNC_F64, B, K, N, FFNC_ACT_TANH, 0, FIXTURE_MOMENTUM,
                                      0.01, 0.9, 1};
    return fixture_create(&spec, 11);
}

/* x (n x K) and targets (n x N), allocated; NULL on failure. */
static double *make_data(size_t n, double **targets) {
    double *x = malloc(n * (K + N) * sizeof *x);
    if (!x) return NULL;
    unsigned long long seed = 5;
    fixture_fill(FFNC_F64, x, n * (K + N), &seed, -2, 2);
    *targets = x + n * K;
    return x;
}

/* Every arena and the step counter bit for bit. */
static int same_plan(ffnc_plan *a, ffnc_plan *b) {
    if (ffnc_plan_get_step(a) != ffnc_plan_get_step(b)) return 0;
    for (ffnc_plan_arena arena = FFNC_PLAN_PARAMS; arena <= FFNC_PLAN_STATE; arena++)
        if (!fixture_same_arena(a, b, arena, sizeof(double))) return 0;
    return 1;
}

/* A request made before the run stops it before its first step and is used up; single steps
 * leave it pending; clearing withdraws it. */
static void test_pending_request(void) {
    ffnc_plan *plan = create(), *reference = create();
    double *t, *x = make_data(ROWS, &t);
    if (!plan || !reference || !x) return;
    const void *inputs[2] = {x, t};
    double records[2] = {-1, -1};
    size_t done = 99, failed = 77;

    CHECK_OK(ffnc_plan_interrupt(plan));
    CHECK_OK(ffnc_plan_interrupt(plan)); /* requests do not add up */
    CHECK_STATUS(ffnc_plan_run_epoch(plan, ROWS, B, inputs, records, &done, &failed),
                 FFNC_ERR_INTERRUPTED);
    CHECK(done == 0 && failed == 77); /* no instruction failed */
    CHECK(records[0] == -1 && records[1] == -1);
    CHECK(same_plan(plan, reference)); /* nothing ran */

    /* used up: the next epoch runs whole, as on a plan never interrupted */
    CHECK_OK(ffnc_plan_run_epoch(plan, ROWS, B, inputs, records, &done, NULL));
    CHECK(done == 2);
    double expected[2];
    CHECK_OK(ffnc_plan_run_epoch(reference, ROWS, B, inputs, expected, NULL, NULL));
    CHECK(same_plan(plan, reference));
    CHECK(memcmp(records, expected, sizeof records) == 0);

    /* a single step runs and leaves the request for the next epoch */
    CHECK_OK(ffnc_plan_interrupt(plan));
    CHECK_OK(ffnc_plan_run(plan, B, inputs, NULL));
    CHECK_OK(ffnc_plan_run(reference, B, inputs, NULL));
    CHECK_STATUS(ffnc_plan_run_epoch_scaled(plan, ROWS, B, inputs, NULL, records, &done, NULL),
                 FFNC_ERR_INTERRUPTED);
    CHECK(done == 0);

    /* withdrawn */
    CHECK_OK(ffnc_plan_interrupt(plan));
    CHECK(ffnc_plan_clear_interrupt(plan) == 1);
    CHECK(ffnc_plan_clear_interrupt(plan) == 0);
    const double scale[2] = {1, 0.5};
    CHECK_OK(ffnc_plan_run_epoch_scaled(plan, ROWS, B, inputs, scale, records, &done, NULL));
    CHECK_OK(ffnc_plan_run_epoch_scaled(reference, ROWS, B, inputs, scale, expected, NULL,
                                        NULL));
    CHECK(done == 2 && same_plan(plan, reference));

    CHECK_STATUS(ffnc_plan_interrupt(NULL), FFNC_ERR_NULL_POINTER);
    CHECK(ffnc_plan_clear_interrupt(NULL) == 0);
    free(x);
    ffnc_plan_destroy(plan);
    ffnc_plan_destroy(reference);
}

/* ---- requests during a long epoch ---------------------------------------------------------- */

#define LONG_ROWS 20000 /* steps of one row each: an epoch of tens of milliseconds */

static void request_plan(void *plan) { (void)ffnc_plan_interrupt(plan); }

/* Runs epochs of LONG_ROWS steps on `plan` until one is interrupted (the caller has arranged
 * a request); then checks the plan against a fresh one run for the same number of steps
 * without interruption, and that it trains on from there identically. */
static void check_interrupted_run(ffnc_plan *plan, const double *x, const double *t,
                                  double *records) {
    const void *inputs[2] = {x, t};
    size_t done = 0, epochs = 0;
    ffnc_status s = FFNC_OK;
    for (int i = 0; i < 10000 && s == FFNC_OK; i++) {
        for (size_t r = 0; r < LONG_ROWS; r++) records[r] = NAN;
        s = ffnc_plan_run_epoch(plan, LONG_ROWS, 1, inputs, records, &done, NULL);
        if (s == FFNC_OK) epochs++;
    }
    CHECK_STATUS(s, FFNC_ERR_INTERRUPTED);
    CHECK(done < LONG_ROWS);
    CHECK(ffnc_plan_get_step(plan) == (int64_t)(epochs * LONG_ROWS + done));
    /* the completed steps recorded their loss; the others were not touched */
    int recorded = 1;
    for (size_t r = 0; r < done; r++) recorded &= !isnan(records[r]) && records[r] >= 0;
    CHECK(recorded);
    if (done < LONG_ROWS) CHECK(isnan(records[done]));

    ffnc_plan *replay = create();
    if (!replay) return;
    for (size_t e = 0; e < epochs; e++)
        CHECK_OK(ffnc_plan_run_epoch(replay, LONG_ROWS, 1, inputs, records, NULL, NULL));
    if (done) CHECK_OK(ffnc_plan_run_epoch(replay, done, 1, inputs, records, NULL, NULL));
    CHECK(same_plan(plan, replay));
    /* the interrupted epoch's remaining rows, on both */
    const void *rest[2] = {x + done * K, t + done * N};
    CHECK_OK(ffnc_plan_run_epoch(plan, LONG_ROWS - done, 1, rest, records, NULL, NULL));
    CHECK_OK(ffnc_plan_run_epoch(replay, LONG_ROWS - done, 1, rest, records, NULL, NULL));
    CHECK(same_plan(plan, replay));
    ffnc_plan_destroy(replay);
}

static void test_signal_handler_request(void) {
    ffnc_plan *plan = create();
    double *t, *x = make_data(LONG_ROWS, &t);
    double *records = malloc(LONG_ROWS * sizeof *records);
    if (!plan || !x || !records) return;
    CHECK(request_on_alarm(request_plan, plan, 3000) == 0); /* once, in 3 ms */
    check_interrupted_run(plan, x, t, records);
    CHECK(restore_alarm() == 0);
    free(records);
    free(x);
    ffnc_plan_destroy(plan);
}

static void test_other_thread_request(void) {
    ffnc_plan *plan = create();
    double *t, *x = make_data(LONG_ROWS, &t);
    double *records = malloc(LONG_ROWS * sizeof *records);
    if (!plan || !x || !records) return;
    delayed_request request = {request_plan, plan, 2000000}; /* 2 ms */
    CHECK(request_from_thread(&request) == 0);
    check_interrupted_run(plan, x, t, records);
    pthread_join(request.thread, NULL);
    free(records);
    free(x);
    ffnc_plan_destroy(plan);
}

int main(void) {
    test_pending_request();
    test_signal_handler_request();
    test_other_thread_request();
    CHECK(strcmp(ffnc_status_string(FFNC_ERR_INTERRUPTED), "interrupted between two steps") == 0);
    return check_report("plan_interrupt");
}
