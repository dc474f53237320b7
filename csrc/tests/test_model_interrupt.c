/* ffnc_model_interrupt: ffnc_model_train stops at the next step boundary with
 * FFNC_ERR_INTERRUPTED, and the model is then exactly the model after that many steps (weights,
 * optimizer state, step count), so it trains on. Requests come from a signal handler (as a C
 * program's Ctrl-C handler would send them), from another thread, or before the call. */
#define _XOPEN_SOURCE 700 /* sigaction, setitimer, nanosleep */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "interrupt_fixture.h"

#define IN 3
#define HIDDEN 4
#define OUT 2
#define ROWS 20000 /* steps of one row each: an epoch of tens of milliseconds */
#define EPOCHS 40  /* far more than a request needs to arrive; a broken one fails, not hangs */

static ffnc_model *make(void) {
    static const size_t sizes[3] = {IN, HIDDEN, OUT};
    static const ffnc_activation acts[2] = {FFNC_ACT_TANH, FFNC_ACT_IDENTITY};
    ffnc_model_desc d = {FFNC_F64, 2, sizes, acts, NULL, FFNC_LOSS_MSE};
    ffnc_model *m = NULL;
    CHECK_OK(ffnc_model_create(&d, 3, &m));
    return m;
}

/* Momentum (state to carry over), one row per step, rows in order: the steps an interrupted
 * epoch completed are the epoch over its first rows. */
static ffnc_train_config config(size_t epochs) {
    ffnc_train_config c;
    ffnc_train_config_init(&c, FFNC_OPTIMIZER_MOMENTUM);
    c.learning_rate = 0.01;
    c.batch_size = 1;
    c.epochs = epochs;
    c.shuffle = 0;
    return c;
}

/* x (ROWS x IN) then targets (ROWS x OUT), allocated. */
static double *make_data(void) {
    double *x = malloc(ROWS * (IN + OUT) * sizeof *x);
    if (!x) return NULL;
    unsigned long long seed = 5;
    for (size_t i = 0; i < ROWS * (IN + OUT); i++) x[i] = check_uniform(&seed, -2, 2);
    return x;
}

static int same_params(ffnc_model *a, ffnc_model *b) {
    void *pa, *pb;
    size_t na, nb;
    if (ffnc_model_params(a, &pa, &na) != FFNC_OK) return 0;
    if (ffnc_model_params(b, &pb, &nb) != FFNC_OK) return 0;
    return na == nb && memcmp(pa, pb, na * sizeof(double)) == 0;
}

/* The model's step count, as its checkpoint records it (the "step" of the "optimizer" entry). */
static int64_t step_of(ffnc_model *m) {
    char path[128];
    snprintf(path, sizeof path, "test_model_interrupt_%ld.safetensors", (long)getpid());
    int64_t step = -1;
    ffnc_safetensors *f = NULL;
    const char *json = NULL;
    CHECK_OK(ffnc_model_save(m, path, 1));
    CHECK_OK(ffnc_safetensors_load(path, &f));
    if (f) CHECK_OK(ffnc_safetensors_metadata(f, "optimizer", &json));
    const char *at = json ? strstr(json, "\"step\": ") : NULL;
    if (at) step = strtoll(at + strlen("\"step\": "), NULL, 10);
    ffnc_safetensors_free(f);
    unlink(path);
    return step;
}

/* A request made before the call stops it before its first step and is used up; one made
 * during a call that then completes is withdrawn with it. */
static void test_pending_request(void) {
    ffnc_model *m = make(), *untouched = make();
    double *x = make_data();
    if (!m || !untouched || !x) return;
    ffnc_train_config c = config(1);
    double losses[2] = {-1, -1};

    CHECK_OK(ffnc_model_interrupt(m));
    CHECK_OK(ffnc_model_interrupt(m)); /* requests do not add up */
    CHECK_STATUS(ffnc_model_train(m, &c, 50, x, x + ROWS * IN, losses), FFNC_ERR_INTERRUPTED);
    CHECK(losses[0] == -1);
    CHECK(same_params(m, untouched) && step_of(m) == 0);

    /* used up: the next call trains whole, as on a model never interrupted */
    CHECK_OK(ffnc_model_train(m, &c, 50, x, x + ROWS * IN, losses));
    CHECK_OK(ffnc_model_train(untouched, &c, 50, x, x + ROWS * IN, NULL));
    CHECK(losses[0] >= 0 && same_params(m, untouched) && step_of(m) == 50);

    /* a request that fails its call's checks stays for the next call */
    CHECK_OK(ffnc_model_interrupt(m));
    CHECK_STATUS(ffnc_model_train(m, &c, 0, x, x + ROWS * IN, NULL), FFNC_ERR_EMPTY);
    CHECK_STATUS(ffnc_model_train(m, &c, 50, x, x + ROWS * IN, NULL), FFNC_ERR_INTERRUPTED);
    CHECK(same_params(m, untouched) && step_of(m) == 50);

    CHECK_STATUS(ffnc_model_interrupt(NULL), FFNC_ERR_NULL_POINTER);
    free(x);
    ffnc_model_destroy(m);
    ffnc_model_destroy(untouched);
}

/* ---- requests during a long training ------------------------------------------------------- */

static void request_model(void *model) { (void)ffnc_model_interrupt(model); }

/* Trains `m` for EPOCHS epochs (the caller has arranged a request); checks that the call stopped
 * part-way, that the model equals a fresh one trained for the same steps without interruption,
 * and that both train on identically. */
static void check_interrupted_training(ffnc_model *m, const double *x) {
    const double *t = x + ROWS * IN;
    ffnc_train_config c = config(EPOCHS);
    double *losses = malloc(EPOCHS * sizeof *losses);
    if (!losses) return;
    for (size_t e = 0; e < EPOCHS; e++) losses[e] = NAN;
    CHECK_STATUS(ffnc_model_train(m, &c, ROWS, x, t, losses), FFNC_ERR_INTERRUPTED);
    int64_t steps = step_of(m);
    CHECK(steps >= 0 && steps < (int64_t)EPOCHS * ROWS);
    size_t epochs = (size_t)steps / ROWS, done = (size_t)steps % ROWS;
    /* the completed epochs reported their loss; the others were not written */
    int reported = 1;
    for (size_t e = 0; e < epochs; e++) reported &= losses[e] >= 0;
    CHECK(reported);
    if (epochs < EPOCHS) CHECK(isnan(losses[epochs]));

    ffnc_model *replay = make();
    if (replay) {
        ffnc_train_config whole = config(epochs), part = config(1);
        if (epochs) CHECK_OK(ffnc_model_train(replay, &whole, ROWS, x, t, NULL));
        if (done) CHECK_OK(ffnc_model_train(replay, &part, done, x, t, NULL));
        CHECK(step_of(replay) == steps);
        CHECK(same_params(m, replay));
        /* the interrupted epoch's remaining rows, on both: the momentum carried over alike */
        CHECK_OK(ffnc_model_train(m, &part, ROWS - done, x + done * IN, t + done * OUT, NULL));
        CHECK_OK(ffnc_model_train(replay, &part, ROWS - done, x + done * IN, t + done * OUT,
                                  NULL));
        CHECK(same_params(m, replay));
        ffnc_model_destroy(replay);
    }
    free(losses);
}

static void test_signal_handler_request(void) {
    ffnc_model *m = make();
    double *x = make_data();
    if (!m || !x) return;
    CHECK(request_on_alarm(request_model, m, 70000) == 0); /* once, in 70 ms: first epochs */
    check_interrupted_training(m, x);
    CHECK(restore_alarm() == 0);
    free(x);
    ffnc_model_destroy(m);
}

static void test_other_thread_request(void) {
    ffnc_model *m = make();
    double *x = make_data();
    if (!m || !x) return;
    delayed_request request = {request_model, m, 20000000}; /* 20 ms */
    CHECK(request_from_thread(&request) == 0);
    check_interrupted_training(m, x);
    pthread_join(request.thread, NULL);
    free(x);
    ffnc_model_destroy(m);
}

/* Requests racing with the start and end of many short calls (the plan being published and
 * withdrawn, then destroyed): each call completes or stops at a step boundary, and never
 * crashes or hangs (CI runs this under ASan, which reports a use of a destroyed plan). */
typedef struct {
    ffnc_model *model;
    atomic_int stop;
} hammer;

static void *interrupt_repeatedly(void *arg) {
    hammer *h = arg;
    while (!atomic_load(&h->stop)) ffnc_model_interrupt(h->model);
    return NULL;
}

static void test_requests_racing_short_calls(void) {
    ffnc_model *m = make();
    double *x = make_data();
    if (!m || !x) return;
    hammer h = {m, 0};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, interrupt_repeatedly, &h) == 0);
    ffnc_train_config c = config(1);
    int bad = 0;
    for (int i = 0; i < 300; i++) {
        ffnc_status s = ffnc_model_train(m, &c, 8, x, x + ROWS * IN, NULL);
        bad += s != FFNC_OK && s != FFNC_ERR_INTERRUPTED;
    }
    atomic_store(&h.stop, 1);
    pthread_join(thread, NULL);
    CHECK(bad == 0);
    /* a request made after the last call is pending: it stops the next call, once */
    ffnc_status s = ffnc_model_train(m, &c, 8, x, x + ROWS * IN, NULL);
    CHECK(s == FFNC_OK || s == FFNC_ERR_INTERRUPTED);
    CHECK_OK(ffnc_model_train(m, &c, 8, x, x + ROWS * IN, NULL));
    free(x);
    ffnc_model_destroy(m);
}

int main(void) {
    test_pending_request();
    test_signal_handler_request();
    test_other_thread_request();
    test_requests_racing_short_calls();
    CHECK(strstr(ffnc_status_string(FFNC_ERR_INTERRUPTED), "interrupted") != NULL);
    return check_report("model_interrupt");
}
