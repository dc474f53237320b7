/* The C model API trains to the same bits on 1 and 2 threads, for every optimizer, loss and
 * dtype, with shapes large enough that the 2-thread run really takes the multithreaded paths
 * (ffnc_multithreaded_calls counts the kernel calls that chose more than one thread): 256 rows
 * x 128 units is 2^15 values, two element-wise grains; 256 x 64 x 128 multiply-adds is four
 * GEMM grains; the 16,576 parameters are two optimizer grains. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Internal (csrc/core/internal.h), exported for the tests. */
size_t ffnc_multithreaded_calls(void);

enum { ROWS = 600, INPUTS = 64, HIDDEN = 128, OUTPUTS = 64, BATCH = 256 };

/* The model's parameters after two epochs of training on `threads` threads (0 bytes on
 * failure); *parallel_calls receives the multithreaded kernel calls the training made. */
static void *train_copy(ffnc_dtype dtype, ffnc_loss loss, ffnc_optimizer optimizer, int threads,
                        const void *x, const void *targets, size_t *bytes,
                        size_t *parallel_calls) {
    const size_t sizes[3] = {INPUTS, HIDDEN, OUTPUTS};
    const ffnc_activation acts[2] = {FFNC_ACT_TANH, FFNC_ACT_IDENTITY};
    ffnc_model_desc desc = {dtype, 2, sizes, acts, NULL, loss};
    ffnc_model *model = NULL;
    *bytes = 0;
    CHECK_OK(ffnc_model_create(&desc, 42, &model));
    if (!model) return NULL;
    ffnc_train_config config;
    CHECK_OK(ffnc_train_config_init(&config, optimizer));
    config.batch_size = BATCH;
    config.epochs = 2;
    config.seed = 5;
    config.weight_decay = 1e-3;
    double losses[2];
    CHECK_OK(ffnc_set_local_num_threads(threads));
    size_t before = ffnc_multithreaded_calls();
    CHECK_OK(ffnc_model_train(model, &config, ROWS, x, targets, losses));
    *parallel_calls = ffnc_multithreaded_calls() - before;
    CHECK_OK(ffnc_set_local_num_threads(0));
    CHECK(isfinite(losses[0]) && isfinite(losses[1]));
    void *params;
    size_t count;
    CHECK_OK(ffnc_model_params(model, &params, &count));
    size_t size = (dtype == FFNC_F32 ? sizeof(float) : sizeof(double)) * count;
    void *copy = malloc(size);
    if (copy) {
        memcpy(copy, params, size);
        *bytes = size;
    }
    ffnc_model_destroy(model);
    return copy;
}

static void fill(ffnc_dtype dtype, void *dst, size_t n, unsigned long long *state, double lo,
                 double hi) {
    for (size_t i = 0; i < n; i++) {
        double v = check_uniform(state, lo, hi);
        if (dtype == FFNC_F32) ((float *)dst)[i] = (float)v;
        else ((double *)dst)[i] = v;
    }
}

static void test_one_and_two_threads_agree(ffnc_dtype dtype) {
    size_t elem = dtype == FFNC_F32 ? sizeof(float) : sizeof(double);
    unsigned long long state = 17;
    void *x = malloc(ROWS * INPUTS * elem);
    void *values = malloc(ROWS * OUTPUTS * elem);
    int64_t *labels = malloc(ROWS * sizeof *labels);
    if (!x || !values || !labels) {
        CHECK(0);
        free(x), free(values), free(labels);
        return;
    }
    fill(dtype, x, ROWS * INPUTS, &state, -1, 1);
    fill(dtype, values, ROWS * OUTPUTS, &state, 0, 1); /* BCE targets in [0, 1], MSE's too */
    for (size_t r = 0; r < ROWS; r++) labels[r] = (int64_t)check_uniform(&state, 0, OUTPUTS);
    const ffnc_loss losses[3] = {FFNC_LOSS_SOFTMAX_XENT, FFNC_LOSS_BCE, FFNC_LOSS_MSE};
    for (int l = 0; l < 3; l++) {
        const void *targets = losses[l] == FFNC_LOSS_SOFTMAX_XENT ? (const void *)labels : values;
        for (int opt = FFNC_OPTIMIZER_SGD; opt <= FFNC_OPTIMIZER_ADAM; opt++) {
            size_t bytes1, bytes2, calls1, calls2;
            void *one = train_copy(dtype, losses[l], (ffnc_optimizer)opt, 1, x, targets, &bytes1,
                                   &calls1);
            void *two = train_copy(dtype, losses[l], (ffnc_optimizer)opt, 2, x, targets, &bytes2,
                                   &calls2);
            CHECK(calls1 == 0);
            CHECK(calls2 > 10);
            CHECK(bytes1 > 0 && bytes1 == bytes2);
            if (one && two && bytes1 == bytes2) CHECK(memcmp(one, two, bytes1) == 0);
            free(one);
            free(two);
        }
    }
    free(x);
    free(values);
    free(labels);
}

int main(void) {
    test_one_and_two_threads_agree(FFNC_F32);
    test_one_and_two_threads_agree(FFNC_F64);
    return check_report("determinism");
}
