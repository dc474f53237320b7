/* XOR with the ffnc C API: a 2-4-1 network (tanh hidden layer, sigmoid + binary cross-entropy
 * output) trained with Adam until its rounded outputs are exactly 0 1 1 0.
 *   xor            exit status 0 when every output rounds to its target */
#include <stdio.h>

#include <ffnc.h>

#define TRY(call)                                                                            \
    do {                                                                                     \
        ffnc_status status_ = (call);                                                        \
        if (status_ != FFNC_OK) {                                                            \
            fprintf(stderr, "xor: %s: %s\n", #call, ffnc_status_string(status_));            \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)

int main(void) {
    const float x[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    const float y[4] = {0, 1, 1, 0};
    const size_t sizes[] = {2, 4, 1};
    const ffnc_activation activations[] = {FFNC_ACT_TANH, FFNC_ACT_IDENTITY};
    ffnc_model_desc desc = {FFNC_F32, 2, sizes, activations, NULL, FFNC_LOSS_BCE};
    ffnc_model *model = NULL;
    TRY(ffnc_model_create(&desc, 42, &model));

    ffnc_train_config config;
    TRY(ffnc_train_config_init(&config, FFNC_OPTIMIZER_ADAM));
    config.learning_rate = 0.05;
    config.batch_size = 4;
    config.epochs = 500;
    double losses[500];
    TRY(ffnc_model_train(model, &config, 4, x, y, losses));
    printf("loss: epoch 1 %.4f, epoch 500 %.6f\n", losses[0], losses[499]);

    float out[4];
    TRY(ffnc_model_predict(model, 4, x, out));
    int exact = 1;
    for (int i = 0; i < 4; i++) {
        int rounded = out[i] >= 0.5f;
        exact &= rounded == (int)y[i];
        printf("%g xor %g = %d  (output %.4f)\n", x[i][0], x[i][1], rounded, out[i]);
    }
    printf(exact ? "XOR learned exactly\n" : "XOR NOT learned\n");
    ffnc_model_destroy(model);
    return exact ? 0 : 1;
}
