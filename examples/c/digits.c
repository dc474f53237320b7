/* Handwritten digits with the ffnc C API: a 64-128-10 network (relu, softmax cross-entropy)
 * trained with Adam on the UCI digits, evaluated on held-out images, saved as a checkpoint
 * that Python's ffnc.io.load (or this program's sibling, predict) reads back.
 *   digits DATA.safetensors [MODEL.safetensors]
 * DATA holds x_train (n, 64) float32 in [0, 1], y_train (n,) int64, x_test, y_test; make it
 * with make_digits.py. Exit status 0 when the test accuracy is at least 0.96. */
#include <stdio.h>
#include <stdlib.h>

#include <ffnc.h>

#define TRY(call)                                                                            \
    do {                                                                                     \
        status = (call);                                                                     \
        if (status != FFNC_OK) {                                                             \
            fprintf(stderr, "digits: %s: %s\n", #call, ffnc_status_string(status));          \
            goto done;                                                                       \
        }                                                                                    \
    } while (0)

/* Reads tensor `name` (a float32 matrix with `cols` columns, or int64 labels when cols == 0);
 * *rows receives its length. */
static ffnc_status read_array(const ffnc_safetensors *file, const char *name, size_t cols,
                              void **data, size_t *rows) {
    ffnc_tensor_info info;
    ffnc_status status = ffnc_safetensors_find(file, name, &info);
    if (status != FFNC_OK) return status;
    ffnc_tensor_dtype want = cols ? FFNC_TENSOR_F32 : FFNC_TENSOR_I64;
    if (info.dtype != want || info.ndim != (cols ? 2u : 1u) || (cols && info.shape[1] != cols))
        return FFNC_ERR_FORMAT;
    *rows = info.shape[0];
    *data = malloc(info.nbytes ? info.nbytes : 1);
    if (!*data) return FFNC_ERR_OUT_OF_MEMORY;
    return ffnc_safetensors_read(file, name, want, info.count, *data);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: digits DATA.safetensors [MODEL.safetensors]\n");
        return 2;
    }
    ffnc_status status;
    ffnc_safetensors *data = NULL;
    ffnc_model *model = NULL;
    void *x_train = NULL, *y_train = NULL, *x_test = NULL, *y_test = NULL;
    size_t n_train, n_test, n_labels;
    double accuracy = 0;
    TRY(ffnc_safetensors_load(argv[1], &data));
    TRY(read_array(data, "x_train", 64, &x_train, &n_train));
    TRY(read_array(data, "y_train", 0, &y_train, &n_labels));
    TRY(n_labels == n_train ? FFNC_OK : FFNC_ERR_FORMAT);
    TRY(read_array(data, "x_test", 64, &x_test, &n_test));
    TRY(read_array(data, "y_test", 0, &y_test, &n_labels));
    TRY(n_labels == n_test ? FFNC_OK : FFNC_ERR_FORMAT);
    printf("digits: %zu training and %zu test images, %d threads, %s path\n", n_train, n_test,
           ffnc_get_num_threads(), ffnc_isa_name(ffnc_get_isa()));

    const size_t sizes[] = {64, 128, 10};
    const ffnc_activation activations[] = {FFNC_ACT_RELU, FFNC_ACT_IDENTITY};
    ffnc_model_desc desc = {FFNC_F32, 2, sizes, activations, NULL, FFNC_LOSS_SOFTMAX_XENT};
    TRY(ffnc_model_create(&desc, 0, &model));
    ffnc_train_config config;
    TRY(ffnc_train_config_init(&config, FFNC_OPTIMIZER_ADAM));
    config.learning_rate = 0.003;
    config.batch_size = 32;
    config.epochs = 10;
    for (int round = 1; round <= 4; round++) {
        double losses[10], test_loss;
        TRY(ffnc_model_train(model, &config, n_train, x_train, y_train, losses));
        TRY(ffnc_model_evaluate(model, n_test, x_test, y_test, &test_loss, &accuracy));
        printf("epoch %2d: train loss %.4f, test loss %.4f, test accuracy %.4f\n", round * 10,
               losses[9], test_loss, accuracy);
    }
    if (argc == 3) {
        TRY(ffnc_model_save(model, argv[2], 1));
        printf("saved %s\n", argv[2]);
    }
    printf(accuracy >= 0.96 ? "test accuracy %.4f >= 0.96\n" : "test accuracy %.4f < 0.96\n",
           accuracy);
done:
    ffnc_model_destroy(model);
    ffnc_safetensors_free(data);
    free(x_train), free(y_train), free(x_test), free(y_test);
    return status != FFNC_OK ? 1 : accuracy >= 0.96 ? 0 : 1;
}
