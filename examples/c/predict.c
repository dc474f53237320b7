/* Predictions of any ffnc checkpoint (written by Python's ffnc.io.save or by ffnc_model_save):
 *   predict MODEL.safetensors INPUT.safetensors OUTPUT.safetensors
 * reads tensor "x" (rows x inputs, the model's dtype) from INPUT and writes tensor "pred"
 * (rows x outputs: probabilities for softmax cross-entropy and BCE, else the outputs) to
 * OUTPUT. */
#include <stdio.h>
#include <stdlib.h>

#include <ffnc.h>

#define TRY(call)                                                                            \
    do {                                                                                     \
        status = (call);                                                                     \
        if (status != FFNC_OK) {                                                             \
            fprintf(stderr, "predict: %s: %s\n", #call, ffnc_status_string(status));         \
            goto done;                                                                       \
        }                                                                                    \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: predict MODEL.safetensors INPUT.safetensors OUTPUT.safetensors\n");
        return 2;
    }
    ffnc_status status;
    ffnc_model *model = NULL;
    ffnc_safetensors *input = NULL;
    ffnc_safetensors_writer *writer = NULL;
    void *x = NULL, *pred = NULL;
    TRY(ffnc_model_load(argv[1], &model));
    ffnc_model_desc desc;
    TRY(ffnc_model_get_desc(model, &desc));
    ffnc_tensor_dtype dtype = desc.dtype == FFNC_F32 ? FFNC_TENSOR_F32 : FFNC_TENSOR_F64;
    TRY(ffnc_safetensors_load(argv[2], &input));
    ffnc_tensor_info info;
    TRY(ffnc_safetensors_find(input, "x", &info));
    TRY(info.dtype == dtype && info.ndim == 2 && info.shape[1] == desc.sizes[0]
            ? FFNC_OK : FFNC_ERR_FORMAT);
    size_t rows = info.shape[0], outputs = desc.sizes[desc.n_layers];
    size_t width = ffnc_tensor_dtype_size(dtype);
    x = malloc(info.nbytes ? info.nbytes : 1);
    pred = calloc(rows * outputs ? rows * outputs : 1, width);
    TRY(x && pred ? FFNC_OK : FFNC_ERR_OUT_OF_MEMORY);
    TRY(ffnc_safetensors_read(input, "x", dtype, info.count, x));
    TRY(ffnc_model_predict(model, rows, x, pred));
    size_t shape[2] = {rows, outputs};
    TRY(ffnc_safetensors_writer_create(&writer));
    TRY(ffnc_safetensors_writer_add(writer, "pred", dtype, 2, shape, pred));
    TRY(ffnc_safetensors_writer_save(writer, argv[3]));
    printf("predict: %zu rows -> %s\n", rows, argv[3]);
done:
    ffnc_safetensors_writer_free(writer);
    ffnc_safetensors_free(input);
    ffnc_model_destroy(model);
    free(x);
    free(pred);
    return status == FFNC_OK ? 0 : 1;
}
