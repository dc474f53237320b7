/* The model object shared by model.c (creation, plans, training, inference) and checkpoint.c
 * (saving and loading). */
#ifndef FFNC_MODEL_INTERNAL_H
#define FFNC_MODEL_INTERNAL_H

#include <stdatomic.h>

#include "internal.h"

typedef struct ffnc_model_infer_layout {
    size_t out;   /* the last layer's output */
    size_t pred;  /* the prediction (probabilities for softmax cross-entropy and BCE) */
    size_t loss;  /* the summed loss (evaluation) */
} ffnc_model_infer_layout;

struct ffnc_model {
    ffnc_dtype dtype;
    size_t elem_size;
    size_t n_layers;
    size_t *sizes;            /* n_layers + 1 */
    ffnc_activation *acts;    /* n_layers */
    double *alphas;           /* n_layers, defaults filled in */
    ffnc_loss loss;
    size_t n_params;
    size_t *weight_offset;    /* n_layers, in elements of the flat buffer */
    size_t *bias_offset;
    void *params;             /* n_params values, 64-byte aligned */

    /* Optimizer state, kept between ffnc_model_train calls and saved in checkpoints. */
    int has_optimizer;
    ffnc_train_config optimizer;  /* kind and hyper-parameters of the last training */
    void *optimizer_state;        /* momentum: velocity (n_params); adam: m then v */
    int64_t step;                 /* updates made, Adam's bias-correction counter */
    uint64_t epochs_trained;      /* picks the shuffling stream of the next epoch */

    /* Inference plans, built on first use (they read the parameters as an input slot), and
     * where their results land in the activation arena (elements). */
    ffnc_plan *predict_plan;
    ffnc_plan *evaluate_plan;
    ffnc_model_infer_layout predict_layout, evaluate_layout;
    int64_t *zero_labels;         /* FFNC_MODEL_INFER_BATCH zeros, see model.c */

    /* Interrupting training (ffnc_model_interrupt, from a signal handler or another thread).
     * A request sets `interrupt_requested` and forwards itself to the plan of the running
     * ffnc_model_train, published in `training_plan`; `interrupters` counts the requests
     * between reading `training_plan` and being done with that plan, so that train destroys
     * its plan only once none can still reach it. */
    atomic_int interrupt_requested;
    _Atomic(ffnc_plan *) training_plan;
    atomic_int interrupters;
};

/* Elements of optimizer state for `optimizer` over n parameters (0, n or 2n). */
size_t ffnc_model_state_size(ffnc_optimizer optimizer, size_t n_params);

/* The activation's name as in ffnc.graph.ACTIVATIONS ("identity", "relu", ...). */
extern const char *const ffnc_model_activation_names[FFNC_ACT_COUNT];

/* The counter-based generator documented in ffnc.h. */
#define FFNC_RANDOM_GAMMA 0x9E3779B97F4A7C15ULL

static inline uint64_t ffnc_random_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t ffnc_random_key(uint64_t seed, uint64_t stream) {
    return ffnc_random_mix(seed + stream * FFNC_RANDOM_GAMMA);
}

static inline uint64_t ffnc_random_u64(uint64_t key, uint64_t counter) {
    return ffnc_random_mix(key + (counter + 1) * FFNC_RANDOM_GAMMA);
}

/* Uniform in [0, 1) from the top 53 bits. */
static inline double ffnc_random_uniform(uint64_t key, uint64_t counter) {
    return (double)(ffnc_random_u64(key, counter) >> 11) * 0x1.0p-53;
}

#endif
