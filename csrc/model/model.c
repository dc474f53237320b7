/* The C model API: multi-layer perceptrons whose every step is a plan (csrc/plan). The
 * training plan is built per ffnc_model_train call (its batch size and optimizer come with the
 * call); the two inference plans are built once and read the parameters as an input slot, so
 * predicting copies nothing. */
#define _POSIX_C_SOURCE 200809L /* sched_yield */
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* Rows per inference step: large enough to keep the GEMMs efficient, small enough that the
 * activations of an inference plan stay in cache for common widths. */
#define FFNC_MODEL_INFER_BATCH 256

const char *const ffnc_model_activation_names[FFNC_ACT_COUNT] = {
    "identity", "relu", "leaky_relu", "abs", "tanh", "sigmoid", "softplus", "hard_tanh", "elu",
    "gelu"};

size_t ffnc_model_state_size(ffnc_optimizer optimizer, size_t n_params) {
    switch (optimizer) {
    case FFNC_OPTIMIZER_MOMENTUM: return n_params;
    case FFNC_OPTIMIZER_ADAM: return 2 * n_params; /* fits: checked at creation */
    default: return 0;
    }
}

static void *aligned_zeros(size_t count, size_t elem_size) {
    size_t bytes = count * elem_size; /* callers checked the product */
    bytes = bytes < 64 ? 64 : (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

/* ---- creation ------------------------------------------------------------------------------ */

static double default_alpha(ffnc_activation act) {
    if (act == FFNC_ACT_LEAKY_RELU) return 0.01;
    if (act == FFNC_ACT_ELU) return 1.0;
    return 0.0;
}

static ffnc_status check_desc(const ffnc_model_desc *d, size_t *n_params) {
    FFNC_REQUIRE(d->sizes && d->activations, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(d->dtype == FFNC_F32 || d->dtype == FFNC_F64, FFNC_ERR_INVALID_DTYPE);
    FFNC_REQUIRE(d->n_layers >= 1 && d->n_layers <= SIZE_MAX / 8 - 1, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE((int)d->loss >= FFNC_LOSS_NONE && d->loss <= FFNC_LOSS_MSE,
                 FFNC_ERR_INVALID_ARGUMENT);
    size_t total = 0;
    for (size_t i = 0; i < d->n_layers; i++) {
        FFNC_REQUIRE(d->sizes[i] >= 1 && d->sizes[i + 1] >= 1, FFNC_ERR_INVALID_ARGUMENT);
        FFNC_REQUIRE((int)d->activations[i] >= 0 && d->activations[i] < FFNC_ACT_COUNT,
                     FFNC_ERR_INVALID_ARGUMENT);
        if (d->alphas && (d->activations[i] == FFNC_ACT_LEAKY_RELU ||
                          d->activations[i] == FFNC_ACT_ELU))
            FFNC_REQUIRE(isfinite(d->alphas[i]) && d->alphas[i] >= 0, FFNC_ERR_INVALID_ARGUMENT);
        size_t w;
        FFNC_TRY(ffnc_mul_size(d->sizes[i], d->sizes[i + 1], &w));
        FFNC_REQUIRE(w <= SIZE_MAX - d->sizes[i + 1], FFNC_ERR_SIZE_OVERFLOW);
        w += d->sizes[i + 1];
        FFNC_REQUIRE(total <= SIZE_MAX - w, FFNC_ERR_SIZE_OVERFLOW);
        total += w;
    }
    /* Adam keeps two values per parameter; every buffer must be addressable in bytes. */
    size_t bytes;
    FFNC_TRY(ffnc_mul_size(total, 2 * sizeof(double), &bytes));
    FFNC_REQUIRE(bytes <= SIZE_MAX - 64, FFNC_ERR_SIZE_OVERFLOW);
    if (d->loss == FFNC_LOSS_SOFTMAX_XENT)
        FFNC_REQUIRE(d->sizes[d->n_layers] >= 1, FFNC_ERR_INVALID_ARGUMENT);
    *n_params = total;
    return FFNC_OK;
}

void ffnc_model_destroy(ffnc_model *m) {
    if (!m) return;
    ffnc_plan_destroy(m->predict_plan);
    ffnc_plan_destroy(m->evaluate_plan);
    free(m->zero_labels);
    free(m->sizes);
    free(m->acts);
    free(m->alphas);
    free(m->weight_offset);
    free(m->bias_offset);
    free(m->params);
    free(m->optimizer_state);
    free(m);
}

/* The weight scale of a layer followed by `act` (see ffnc.h). */
static double init_limit(ffnc_activation act, double alpha, size_t fan_in, size_t fan_out) {
    switch (act) {
    case FFNC_ACT_RELU:
    case FFNC_ACT_ABS:
    case FFNC_ACT_ELU:
    case FFNC_ACT_GELU: return sqrt(6.0 / (double)fan_in);
    case FFNC_ACT_LEAKY_RELU: return sqrt(6.0 / ((1.0 + alpha * alpha) * (double)fan_in));
    default: return sqrt(6.0 / ((double)fan_in + (double)fan_out));
    }
}

ffnc_status ffnc_model_init(ffnc_model *m, uint64_t seed) {
    FFNC_REQUIRE(m, FFNC_ERR_NULL_POINTER);
    for (size_t l = 0; l < m->n_layers; l++) {
        size_t fan_in = m->sizes[l], fan_out = m->sizes[l + 1], n = fan_in * fan_out;
        double a = init_limit(m->acts[l], m->alphas[l], fan_in, fan_out);
        uint64_t key = ffnc_random_key(seed, l);
        if (m->dtype == FFNC_F32) {
            float *w = (float *)m->params + m->weight_offset[l];
            float *b = (float *)m->params + m->bias_offset[l];
            for (size_t t = 0; t < n; t++) w[t] = (float)(a * (2.0 * ffnc_random_uniform(key, t) - 1.0));
            for (size_t c = 0; c < fan_out; c++) b[c] = 0.0f;
        } else {
            double *w = (double *)m->params + m->weight_offset[l];
            double *b = (double *)m->params + m->bias_offset[l];
            for (size_t t = 0; t < n; t++) w[t] = a * (2.0 * ffnc_random_uniform(key, t) - 1.0);
            for (size_t c = 0; c < fan_out; c++) b[c] = 0.0;
        }
    }
    m->has_optimizer = 0;
    m->step = 0;
    m->epochs_trained = 0;
    return FFNC_OK;
}

ffnc_status ffnc_model_create(const ffnc_model_desc *desc, uint64_t seed, ffnc_model **out) {
    FFNC_REQUIRE(desc && out, FFNC_ERR_NULL_POINTER);
    *out = NULL;
    size_t n_params;
    FFNC_TRY(check_desc(desc, &n_params));
    ffnc_model *m = calloc(1, sizeof *m);
    if (!m) return FFNC_ERR_OUT_OF_MEMORY;
    atomic_init(&m->interrupt_requested, 0);
    atomic_init(&m->training_plan, NULL);
    atomic_init(&m->interrupters, 0);
    size_t L = desc->n_layers;
    m->dtype = desc->dtype;
    m->elem_size = desc->dtype == FFNC_F32 ? sizeof(float) : sizeof(double);
    m->n_layers = L;
    m->loss = desc->loss;
    m->n_params = n_params;
    m->sizes = malloc((L + 1) * sizeof(size_t));
    m->acts = malloc(L * sizeof(ffnc_activation));
    m->alphas = malloc(L * sizeof(double));
    m->weight_offset = malloc(L * sizeof(size_t));
    m->bias_offset = malloc(L * sizeof(size_t));
    m->params = aligned_zeros(n_params, m->elem_size);
    if (!m->sizes || !m->acts || !m->alphas || !m->weight_offset || !m->bias_offset ||
        !m->params) {
        ffnc_model_destroy(m);
        return FFNC_ERR_OUT_OF_MEMORY;
    }
    size_t offset = 0;
    for (size_t l = 0; l < L; l++) {
        m->sizes[l] = desc->sizes[l];
        m->acts[l] = desc->activations[l];
        int takes_alpha = m->acts[l] == FFNC_ACT_LEAKY_RELU || m->acts[l] == FFNC_ACT_ELU;
        m->alphas[l] = !takes_alpha ? 0.0 : desc->alphas ? desc->alphas[l]
                                                         : default_alpha(m->acts[l]);
        m->weight_offset[l] = offset;
        offset += desc->sizes[l] * desc->sizes[l + 1];
        m->bias_offset[l] = offset;
        offset += desc->sizes[l + 1];
    }
    m->sizes[L] = desc->sizes[L];
    ffnc_model_init(m, seed);
    *out = m;
    return FFNC_OK;
}

ffnc_status ffnc_model_get_desc(const ffnc_model *m, ffnc_model_desc *desc) {
    FFNC_REQUIRE(m && desc, FFNC_ERR_NULL_POINTER);
    *desc = (ffnc_model_desc){m->dtype, m->n_layers, m->sizes, m->acts, m->alphas, m->loss};
    return FFNC_OK;
}

ffnc_status ffnc_model_params(ffnc_model *m, void **data, size_t *count) {
    FFNC_REQUIRE(m && data && count, FFNC_ERR_NULL_POINTER);
    *data = m->params;
    *count = m->n_params;
    return FFNC_OK;
}

ffnc_status ffnc_model_layer_params(ffnc_model *m, size_t layer, void **weights, void **bias) {
    FFNC_REQUIRE(m && weights && bias, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(layer < m->n_layers, FFNC_ERR_INVALID_ARGUMENT);
    *weights = (char *)m->params + m->weight_offset[layer] * m->elem_size;
    *bias = (char *)m->params + m->bias_offset[layer] * m->elem_size;
    return FFNC_OK;
}

ffnc_status ffnc_train_config_init(ffnc_train_config *c, ffnc_optimizer optimizer) {
    FFNC_REQUIRE(c, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE((int)optimizer >= FFNC_OPTIMIZER_SGD && optimizer <= FFNC_OPTIMIZER_ADAM,
                 FFNC_ERR_INVALID_ARGUMENT);
    *c = (ffnc_train_config){optimizer, optimizer == FFNC_OPTIMIZER_ADAM ? 0.001 : 0.01, 0.9, 0,
                             0.9, 0.999, 1e-8, 0.0, 0, 32, 1, 1, 0};
    return FFNC_OK;
}

/* ---- plan building ------------------------------------------------------------------------- */

typedef struct builder {
    ffnc_plan_instr *ins;
    size_t n;
} builder;

static ffnc_plan_ref arena_ref(int arena, size_t offset) {
    return (ffnc_plan_ref){arena, 0, offset};
}
static ffnc_plan_ref input_ref(uint32_t slot) { return (ffnc_plan_ref){FFNC_PLAN_INPUT, slot, 0}; }
static const ffnc_plan_ref no_ref = {FFNC_PLAN_NONE, 0, 0};
static const ffnc_plan_size per_row = {0, 1};
static ffnc_plan_size fixed(size_t n) { return (ffnc_plan_size){n, 0}; }

static ffnc_plan_instr *emit(builder *b, ffnc_plan_opcode op) {
    ffnc_plan_instr *in = &b->ins[b->n++];
    memset(in, 0, sizeof *in);
    in->opcode = op;
    return in;
}

/* dst = act(src @ W + b) for every layer; weights come from `params` at the model's offsets. */
static void emit_dense_forward(builder *b, const ffnc_model *m, size_t l, ffnc_plan_ref src,
                               ffnc_plan_ref params, ffnc_plan_ref pre, ffnc_plan_ref dst) {
    ffnc_plan_instr *in = emit(b, FFNC_OP_DENSE_FORWARD);
    in->m = per_row, in->n = fixed(m->sizes[l + 1]), in->k = fixed(m->sizes[l]);
    in->subop = m->acts[l], in->alpha = m->alphas[l];
    in->refs[0] = src;
    in->refs[1] = params, in->refs[1].offset += m->weight_offset[l];
    in->refs[2] = params, in->refs[2].offset += m->bias_offset[l];
    in->refs[3] = pre;
    in->refs[4] = dst;
}

/* The loss forward over `out` (the last layer's output) and `targets`: a mean when `mean`,
 * else a sum. For softmax cross-entropy `probs` receives the probabilities. */
static void emit_loss_forward(builder *b, const ffnc_model *m, ffnc_plan_ref out,
                              ffnc_plan_ref targets, ffnc_plan_ref probs, ffnc_plan_ref loss,
                              int mean) {
    size_t classes = m->sizes[m->n_layers];
    ffnc_plan_instr *in;
    if (m->loss == FFNC_LOSS_SOFTMAX_XENT) {
        in = emit(b, FFNC_OP_XENT_FORWARD);
        in->m = per_row, in->n = fixed(classes);
        in->refs[0] = out, in->refs[1] = targets, in->refs[2] = probs, in->refs[3] = loss;
    } else {
        in = emit(b, m->loss == FFNC_LOSS_BCE ? FFNC_OP_BCE_FORWARD : FFNC_OP_MSE_FORWARD);
        in->n = (ffnc_plan_size){0, classes};
        in->refs[0] = out, in->refs[1] = targets, in->refs[2] = loss;
    }
    in->alpha = 1.0;
    in->flags = mean ? FFNC_PLAN_MEAN : 0;
}

typedef struct train_layout {
    size_t *h, *pre, *dh; /* per layer offsets in the activation arena */
    size_t loss, acts;
} train_layout;

/* Weights of at least this many elements take their gradient straight into the momentum
 * velocity (the rule and threshold of ffnc's compiler, ffnc/compiler/fuse_update.py: below it
 * the extra update instruction costs about what the saved pass does). */
#define MODEL_FUSE_MIN_SIZE 4096

static int weight_fused(const ffnc_model *m, const ffnc_train_config *c, size_t l) {
    return c->optimizer == FFNC_OPTIMIZER_MOMENTUM && !c->nesterov && c->weight_decay == 0 &&
           c->momentum > 0 && m->sizes[l] * m->sizes[l + 1] >= MODEL_FUSE_MIN_SIZE;
}

/* The optimizer update over every parameter (see build_train_plan). */
static void emit_update(builder *b, const ffnc_model *m, const ffnc_train_config *c) {
    size_t L = m->n_layers, P = m->n_params;
    int fused = 0;
    for (size_t l = 0; l < L; l++) fused |= weight_fused(m, c, l);
    ffnc_plan_instr *up;
    if (fused) {
        for (size_t l = 0; l < L; l++) { /* arena order: W then b of each layer */
            size_t w = m->weight_offset[l], nw = m->sizes[l] * m->sizes[l + 1];
            size_t first = w, count = nw + m->sizes[l + 1];
            if (weight_fused(m, c, l)) {
                up = emit(b, FFNC_OP_SGD);
                up->n = fixed(nw);
                up->hyper[0] = c->learning_rate;
                up->refs[0] = arena_ref(FFNC_PLAN_PARAMS, w);
                up->refs[1] = arena_ref(FFNC_PLAN_STATE, w);
                first = m->bias_offset[l], count = m->sizes[l + 1];
            }
            up = emit(b, FFNC_OP_MOMENTUM);
            up->n = fixed(count);
            up->hyper[0] = c->learning_rate, up->hyper[1] = c->momentum;
            up->refs[0] = arena_ref(FFNC_PLAN_PARAMS, first);
            up->refs[1] = arena_ref(FFNC_PLAN_GRADS, first);
            up->refs[2] = arena_ref(FFNC_PLAN_STATE, first);
        }
        return;
    }
    switch (c->optimizer) {
    case FFNC_OPTIMIZER_SGD:
        up = emit(b, FFNC_OP_SGD);
        up->hyper[0] = c->learning_rate, up->hyper[1] = c->weight_decay;
        break;
    case FFNC_OPTIMIZER_MOMENTUM:
        up = emit(b, FFNC_OP_MOMENTUM);
        up->hyper[0] = c->learning_rate, up->hyper[1] = c->momentum;
        up->hyper[2] = c->weight_decay;
        up->flags = c->nesterov ? FFNC_PLAN_NESTEROV : 0;
        up->refs[2] = arena_ref(FFNC_PLAN_STATE, 0);
        break;
    default:
        up = emit(b, FFNC_OP_ADAM);
        up->hyper[0] = c->learning_rate, up->hyper[1] = c->beta1, up->hyper[2] = c->beta2;
        up->hyper[3] = c->eps, up->hyper[4] = c->weight_decay;
        up->flags = c->decoupled_weight_decay ? FFNC_PLAN_DECOUPLED : 0;
        up->refs[2] = arena_ref(FFNC_PLAN_STATE, 0);
        up->refs[3] = arena_ref(FFNC_PLAN_STATE, P);
        break;
    }
    up->n = fixed(P);
    up->refs[0] = arena_ref(FFNC_PLAN_PARAMS, 0), up->refs[1] = arena_ref(FFNC_PLAN_GRADS, 0);
}

/* The training step: forward, loss, backward, the optimizer update over every parameter. With
 * heavy-ball momentum (no Nesterov, no weight decay), each large weight gradient is added
 * straight into its velocity by its DENSE_BACKWARD (FFNC_PLAN_BETA: v = momentum v + x^T d)
 * and never stored; those weights are then updated by SGD from the velocity, the rest by
 * MOMENTUM per layer. Otherwise one update instruction covers every parameter. */
static ffnc_status build_train_plan(const ffnc_model *m, const ffnc_train_config *c,
                                    size_t max_batch, ffnc_plan **plan, size_t *loss_offset) {
    size_t L = m->n_layers;
    size_t *offsets = malloc(3 * L * sizeof(size_t));
    ffnc_plan_instr *ins = malloc((4 * L + 3) * sizeof(ffnc_plan_instr));
    ffnc_status s = FFNC_OK;
    if (!offsets || !ins) s = FFNC_ERR_OUT_OF_MEMORY;
    train_layout lay = {offsets, offsets + L, offsets + 2 * L, 0, 0};
    size_t acts = 0;
    for (size_t l = 0; l < L && s == FFNC_OK; l++) {
        size_t block;
        s = ffnc_mul_size(max_batch, m->sizes[l + 1], &block);
        int keep_pre = m->acts[l] != FFNC_ACT_IDENTITY &&
                       !ffnc_activation_backward_uses_dst(m->acts[l]);
        for (int part = 0; part < 3 && s == FFNC_OK; part++) {
            size_t *slot = part == 0 ? &lay.h[l] : part == 1 ? &lay.pre[l] : &lay.dh[l];
            if (part == 1 && !keep_pre) {
                *slot = SIZE_MAX;
                continue;
            }
            if (acts > SIZE_MAX - block) s = FFNC_ERR_SIZE_OVERFLOW;
            *slot = acts;
            acts += block;
        }
    }
    if (s == FFNC_OK && acts == SIZE_MAX) s = FFNC_ERR_SIZE_OVERFLOW;
    if (s != FFNC_OK) {
        free(offsets);
        free(ins);
        return s;
    }
    lay.loss = acts++;
    builder b = {ins, 0};
    const ffnc_plan_ref params = arena_ref(FFNC_PLAN_PARAMS, 0);
    for (size_t l = 0; l < L; l++) {
        ffnc_plan_ref src = l == 0 ? input_ref(0) : arena_ref(FFNC_PLAN_ACTS, lay.h[l - 1]);
        ffnc_plan_ref pre = lay.pre[l] == SIZE_MAX ? no_ref : arena_ref(FFNC_PLAN_ACTS, lay.pre[l]);
        emit_dense_forward(&b, m, l, src, params, pre, arena_ref(FFNC_PLAN_ACTS, lay.h[l]));
    }
    ffnc_plan_ref out = arena_ref(FFNC_PLAN_ACTS, lay.h[L - 1]);
    ffnc_plan_ref diff_out = arena_ref(FFNC_PLAN_ACTS, lay.dh[L - 1]);
    /* softmax cross-entropy: the probabilities go where the gradient will, which the backward
     * then overwrites in place (ffnc_softmax_xent_backward allows it) */
    emit_loss_forward(&b, m, out, input_ref(1), diff_out, arena_ref(FFNC_PLAN_ACTS, lay.loss), 1);
    ffnc_plan_instr *lb;
    if (m->loss == FFNC_LOSS_SOFTMAX_XENT) {
        lb = emit(&b, FFNC_OP_XENT_BACKWARD);
        lb->m = per_row, lb->n = fixed(m->sizes[L]);
        lb->refs[0] = diff_out;
    } else {
        lb = emit(&b, m->loss == FFNC_LOSS_BCE ? FFNC_OP_BCE_BACKWARD : FFNC_OP_MSE_BACKWARD);
        lb->n = (ffnc_plan_size){0, m->sizes[L]};
        lb->refs[0] = out;
    }
    lb->alpha = 1.0, lb->flags = FFNC_PLAN_MEAN;
    lb->refs[1] = input_ref(1), lb->refs[2] = no_ref, lb->refs[3] = diff_out;
    for (size_t l = L; l-- > 0;) {
        ffnc_plan_instr *in = emit(&b, FFNC_OP_DENSE_BACKWARD);
        int identity = m->acts[l] == FFNC_ACT_IDENTITY;
        in->m = per_row, in->n = fixed(m->sizes[l + 1]), in->k = fixed(m->sizes[l]);
        in->subop = m->acts[l], in->alpha = m->alphas[l];
        in->refs[0] = l == 0 ? input_ref(0) : arena_ref(FFNC_PLAN_ACTS, lay.h[l - 1]);
        if (l > 0) in->refs[1] = arena_ref(FFNC_PLAN_PARAMS, m->weight_offset[l]);
        if (!identity)
            in->refs[2] = arena_ref(FFNC_PLAN_ACTS, lay.pre[l] == SIZE_MAX ? lay.h[l] : lay.pre[l]);
        in->refs[3] = arena_ref(FFNC_PLAN_ACTS, lay.dh[l]);
        if (!identity) in->refs[4] = in->refs[3];
        if (l > 0) in->refs[5] = arena_ref(FFNC_PLAN_ACTS, lay.dh[l - 1]);
        in->refs[6] = arena_ref(FFNC_PLAN_GRADS, m->weight_offset[l]);
        in->refs[7] = arena_ref(FFNC_PLAN_GRADS, m->bias_offset[l]);
        if (weight_fused(m, c, l)) {
            in->refs[6] = arena_ref(FFNC_PLAN_STATE, m->weight_offset[l]);
            in->flags |= FFNC_PLAN_BETA;
            in->hyper[0] = c->momentum;
        }
    }
    emit_update(&b, m, c);

    size_t P = m->n_params;
    int int64_targets = m->loss == FFNC_LOSS_SOFTMAX_XENT;
    ffnc_plan_input inputs[2] = {
        {FFNC_PLAN_INPUT_FLOAT, {0, m->sizes[0]}},
        {int64_targets ? FFNC_PLAN_INPUT_INT64 : FFNC_PLAN_INPUT_FLOAT,
         {0, int64_targets ? 1 : m->sizes[L]}}};
    ffnc_plan_ref record = arena_ref(FFNC_PLAN_ACTS, lay.loss);
    ffnc_plan_desc desc = {m->dtype, max_batch,
                           {P, P, ffnc_model_state_size(c->optimizer, P), acts},
                           2, inputs, b.n, ins, 1, &record};
    s = ffnc_plan_create(&desc, plan, NULL);
    *loss_offset = lay.loss;
    free(offsets);
    free(ins);
    return s;
}

/* Inference: inputs are x (slot 0), the parameters (slot 1, read in place) and the targets
 * (slot 2: labels or values; for predicting with softmax cross-entropy, zero labels, since
 * the fused softmax-xent kernel is the plan's softmax and its loss is then unused). Layers
 * alternate between two buffers; the output ends in the buffer at *out_offset, the
 * prediction (probabilities) at *pred_offset, the loss at *loss_offset. */
static ffnc_status build_infer_plan(const ffnc_model *m, int evaluate, ffnc_plan **plan,
                                    ffnc_model_infer_layout *lay) {
    size_t L = m->n_layers, widest = 0;
    for (size_t l = 1; l <= L; l++) widest = m->sizes[l] > widest ? m->sizes[l] : widest;
    size_t block;
    FFNC_TRY(ffnc_mul_size(widest, FFNC_MODEL_INFER_BATCH, &block));
    FFNC_REQUIRE(block <= (SIZE_MAX - 1) / 2, FFNC_ERR_SIZE_OVERFLOW);
    ffnc_plan_instr *ins = malloc((L + 2) * sizeof(ffnc_plan_instr));
    if (!ins) return FFNC_ERR_OUT_OF_MEMORY;
    builder b = {ins, 0};
    const ffnc_plan_ref params = input_ref(1);
    for (size_t l = 0; l < L; l++) {
        ffnc_plan_ref src = l == 0 ? input_ref(0) : arena_ref(FFNC_PLAN_ACTS, (l - 1) % 2 * block);
        emit_dense_forward(&b, m, l, src, params, no_ref,
                           arena_ref(FFNC_PLAN_ACTS, l % 2 * block));
    }
    lay->out = (L - 1) % 2 * block;
    lay->pred = lay->out;
    lay->loss = 2 * block;
    ffnc_plan_ref out = arena_ref(FFNC_PLAN_ACTS, lay->out);
    ffnc_plan_ref other = arena_ref(FFNC_PLAN_ACTS, L % 2 * block);
    ffnc_plan_ref loss = arena_ref(FFNC_PLAN_ACTS, lay->loss);
    int n_inputs = 2;
    if (evaluate || m->loss == FFNC_LOSS_SOFTMAX_XENT) {
        emit_loss_forward(&b, m, out, input_ref(2), other, loss, 0);
        n_inputs = 3;
        if (m->loss == FFNC_LOSS_SOFTMAX_XENT) lay->pred = L % 2 * block;
    }
    if (!evaluate && m->loss == FFNC_LOSS_BCE) {
        ffnc_plan_instr *in = emit(&b, FFNC_OP_ACT_FORWARD);
        in->n = (ffnc_plan_size){0, m->sizes[L]};
        in->subop = FFNC_ACT_SIGMOID;
        in->refs[0] = out, in->refs[1] = other;
        lay->pred = L % 2 * block;
    }
    int int64_targets = m->loss == FFNC_LOSS_SOFTMAX_XENT;
    ffnc_plan_input inputs[3] = {
        {FFNC_PLAN_INPUT_FLOAT, {0, m->sizes[0]}},
        {FFNC_PLAN_INPUT_FLOAT, {m->n_params, 0}},
        {int64_targets ? FFNC_PLAN_INPUT_INT64 : FFNC_PLAN_INPUT_FLOAT,
         {0, int64_targets ? 1 : m->sizes[L]}}};
    ffnc_plan_desc desc = {m->dtype, FFNC_MODEL_INFER_BATCH, {0, 0, 0, 2 * block + 1},
                           (size_t)n_inputs, inputs, b.n, ins, 0, NULL};
    ffnc_status s = ffnc_plan_create(&desc, plan, NULL);
    free(ins);
    return s;
}

/* ---- training ------------------------------------------------------------------------------ */

static ffnc_status check_labels(const ffnc_model *m, size_t rows, const int64_t *labels) {
    int64_t classes = (int64_t)m->sizes[m->n_layers];
    for (size_t r = 0; r < rows; r++)
        FFNC_REQUIRE(labels[r] >= 0 && labels[r] < classes, FFNC_ERR_LABEL_OUT_OF_RANGE);
    return FFNC_OK;
}

/* Bytes of one row of x and of the targets. */
static void row_bytes(const ffnc_model *m, size_t *x_row, size_t *t_row) {
    *x_row = m->sizes[0] * m->elem_size; /* fits: the parameter count bounds it */
    *t_row = m->loss == FFNC_LOSS_SOFTMAX_XENT ? sizeof(int64_t)
                                               : m->sizes[m->n_layers] * m->elem_size;
}

static ffnc_status check_data(const ffnc_model *m, size_t rows, const void *x,
                              const void *targets, int need_targets) {
    FFNC_REQUIRE(x && (targets || !need_targets), FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(rows >= 1, FFNC_ERR_EMPTY);
    size_t x_row, t_row, bytes;
    row_bytes(m, &x_row, &t_row);
    FFNC_TRY(ffnc_mul_size(rows, x_row, &bytes));
    FFNC_TRY(ffnc_mul_size(rows, t_row, &bytes));
    if (need_targets && m->loss == FFNC_LOSS_SOFTMAX_XENT) FFNC_TRY(check_labels(m, rows, targets));
    return FFNC_OK;
}

static ffnc_status check_config(const ffnc_train_config *c) {
    FFNC_REQUIRE((int)c->optimizer >= FFNC_OPTIMIZER_SGD && c->optimizer <= FFNC_OPTIMIZER_ADAM,
                 FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(c->batch_size >= 1 && c->epochs >= 1, FFNC_ERR_INVALID_ARGUMENT);
    return FFNC_OK;
}

/* A uniform integer in [0, n) by rejection (no modulo bias); draws advance *counter. */
static size_t random_below(uint64_t key, uint64_t *counter, size_t n) {
    uint64_t bound = (uint64_t)n, reject_below = (0 - bound) % bound;
    for (;;) {
        uint64_t u = ffnc_random_u64(key, (*counter)++);
        if (u >= reject_below) return (size_t)(u % bound);
    }
}

/* Rows of x and targets in a new order (Fisher-Yates over stream 2^32 + epoch). */
static void shuffle_rows(uint64_t seed, uint64_t epoch, size_t rows, size_t *perm,
                         const void *x, const void *t, size_t x_row, size_t t_row, char *xs,
                         char *ts) {
    uint64_t key = ffnc_random_key(seed, ((uint64_t)1 << 32) + epoch), counter = 0;
    for (size_t r = 0; r < rows; r++) perm[r] = r;
    for (size_t i = rows - 1; i > 0; i--) {
        size_t j = random_below(key, &counter, i + 1);
        size_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (size_t r = 0; r < rows; r++) {
        memcpy(xs + r * x_row, (const char *)x + perm[r] * x_row, x_row);
        memcpy(ts + r * t_row, (const char *)t + perm[r] * t_row, t_row);
    }
}

/* ---- interrupting training (ffnc_model_interrupt) ------------------------------------------ */

/* A signal handler may call ffnc_model_interrupt: none of its atomics may be a lock. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2,
               "ffnc_model_interrupt needs lock-free atomics");

ffnc_status ffnc_model_interrupt(ffnc_model *m) {
    FFNC_REQUIRE(m, FFNC_ERR_NULL_POINTER);
    /* Sequentially consistent, as in publish_training_plan: either this load sees the plan
     * published, or the publisher's exchange sees this request (or both). */
    atomic_store(&m->interrupt_requested, 1);
    atomic_fetch_add(&m->interrupters, 1);
    ffnc_plan *plan = atomic_load(&m->training_plan);
    if (plan) ffnc_plan_interrupt(plan);
    atomic_fetch_sub(&m->interrupters, 1);
    return FFNC_OK;
}

/* Makes `plan` the target of interrupt requests; one made before (while no training ran)
 * stops it before its first step. */
static void publish_training_plan(ffnc_model *m, ffnc_plan *plan) {
    atomic_store(&m->training_plan, plan);
    if (atomic_exchange(&m->interrupt_requested, 0)) ffnc_plan_interrupt(plan);
}

/* After training: no request reaches the plan any more (so it may be destroyed), and the
 * requests made during this call, which applied to it, are withdrawn. */
static void withdraw_training_plan(ffnc_model *m) {
    atomic_store(&m->training_plan, NULL);
    /* A request in another thread may hold the plan for a few instructions more. (One in a
     * signal handler on this thread has returned before this line runs.) */
    while (atomic_load(&m->interrupters) != 0) sched_yield();
    atomic_store(&m->interrupt_requested, 0);
}

ffnc_status ffnc_model_train(ffnc_model *m, const ffnc_train_config *c, size_t rows,
                             const void *x, const void *targets, double *epoch_losses) {
    FFNC_REQUIRE(m && c, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(m->loss != FFNC_LOSS_NONE, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_TRY(check_config(c));
    FFNC_TRY(check_data(m, rows, x, targets, 1));
    size_t batch = c->batch_size < rows ? c->batch_size : rows;
    size_t steps = rows / batch + (rows % batch != 0);
    size_t x_row, t_row;
    row_bytes(m, &x_row, &t_row);

    ffnc_plan *plan = NULL;
    size_t loss_offset;
    FFNC_TRY(build_train_plan(m, c, batch, &plan, &loss_offset));
    size_t state_size = ffnc_model_state_size(c->optimizer, m->n_params);
    int resume = m->has_optimizer && m->optimizer.optimizer == c->optimizer;
    void *state = resume ? m->optimizer_state : NULL;
    double *records = malloc(steps * sizeof(double)); /* steps <= rows: the data exists */
    size_t *perm = c->shuffle ? malloc(rows * sizeof(size_t)) : NULL;
    char *xs = c->shuffle ? malloc(rows * x_row) : NULL;
    char *ts = c->shuffle ? malloc(rows * t_row) : NULL;
    if (!resume && state_size) state = aligned_zeros(state_size, m->elem_size);
    if (!records || (state_size && !state) || (c->shuffle && (!perm || !xs || !ts))) {
        if (state != m->optimizer_state) free(state);
        free(records), free(perm), free(xs), free(ts);
        ffnc_plan_destroy(plan);
        return FFNC_ERR_OUT_OF_MEMORY;
    }

    void *p, *st;
    size_t n;
    ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, &p, &n);
    memcpy(p, m->params, m->n_params * m->elem_size);
    ffnc_plan_arena_data(plan, FFNC_PLAN_STATE, &st, &n);
    if (state_size) memcpy(st, state, state_size * m->elem_size);
    int64_t step = resume ? m->step : 0;
    ffnc_plan_set_step(plan, step);
    publish_training_plan(m, plan);

    ffnc_status s = FFNC_OK;
    for (size_t e = 0; e < c->epochs && s == FFNC_OK; e++) {
        const void *inputs[2] = {x, targets};
        if (c->shuffle) {
            shuffle_rows(c->seed, m->epochs_trained, rows, perm, x, targets, x_row, t_row, xs, ts);
            inputs[0] = xs, inputs[1] = ts;
        }
        size_t done = 0;
        s = ffnc_plan_run_epoch(plan, rows, batch, inputs, records, &done, NULL);
        if (s == FFNC_OK) m->epochs_trained++;
        if (s == FFNC_OK && epoch_losses) {
            double total = 0;
            for (size_t i = 0; i < steps; i++) {
                size_t size = i + 1 < steps ? batch : rows - i * batch;
                total += records[i] * (double)size;
            }
            epoch_losses[e] = total / (double)rows;
        }
    }
    withdraw_training_plan(m);
    /* Whatever steps ran are kept, also after an error or an interrupt part-way. */
    memcpy(m->params, p, m->n_params * m->elem_size);
    if (state_size) memcpy(state, st, state_size * m->elem_size);
    if (state != m->optimizer_state) {
        free(m->optimizer_state);
        m->optimizer_state = state;
    }
    m->has_optimizer = 1;
    m->optimizer = *c;
    m->step = ffnc_plan_get_step(plan);
    free(records), free(perm), free(xs), free(ts);
    ffnc_plan_destroy(plan);
    return s;
}

/* ---- inference ----------------------------------------------------------------------------- */

static ffnc_status infer_plan(ffnc_model *m, int evaluate, ffnc_plan **plan,
                              ffnc_model_infer_layout *lay) {
    ffnc_plan **cached = evaluate ? &m->evaluate_plan : &m->predict_plan;
    ffnc_model_infer_layout *cached_layout = evaluate ? &m->evaluate_layout : &m->predict_layout;
    if (!m->zero_labels) {
        m->zero_labels = calloc(FFNC_MODEL_INFER_BATCH, sizeof(int64_t));
        if (!m->zero_labels) return FFNC_ERR_OUT_OF_MEMORY;
    }
    if (!*cached) FFNC_TRY(build_infer_plan(m, evaluate, cached, cached_layout));
    *plan = *cached;
    *lay = *cached_layout;
    return FFNC_OK;
}

ffnc_status ffnc_model_predict(ffnc_model *m, size_t rows, const void *x, void *dst) {
    FFNC_REQUIRE(m && dst, FFNC_ERR_NULL_POINTER);
    FFNC_TRY(check_data(m, rows, x, NULL, 0));
    ffnc_plan *plan;
    ffnc_model_infer_layout lay;
    FFNC_TRY(infer_plan(m, 0, &plan, &lay));
    size_t x_row, t_row, out_row = m->sizes[m->n_layers] * m->elem_size;
    row_bytes(m, &x_row, &t_row);
    void *acts;
    size_t n;
    ffnc_plan_arena_data(plan, FFNC_PLAN_ACTS, &acts, &n);
    for (size_t first = 0; first < rows; first += FFNC_MODEL_INFER_BATCH) {
        size_t batch = rows - first < FFNC_MODEL_INFER_BATCH ? rows - first : FFNC_MODEL_INFER_BATCH;
        const void *inputs[3] = {(const char *)x + first * x_row, m->params, m->zero_labels};
        FFNC_TRY(ffnc_plan_run(plan, batch, inputs, NULL));
        memcpy((char *)dst + first * out_row, (char *)acts + lay.pred * m->elem_size,
               batch * out_row);
    }
    return FFNC_OK;
}

static double value_at(const ffnc_model *m, const void *base, size_t i) {
    return m->dtype == FFNC_F32 ? (double)((const float *)base)[i] : ((const double *)base)[i];
}

/* Correct predictions in one batch: argmax == label, or (sigmoid(z) > 0.5) == (t > 0.5). */
static size_t count_correct(const ffnc_model *m, size_t batch, const void *pred,
                            const void *targets) {
    size_t classes = m->sizes[m->n_layers], correct = 0;
    if (m->loss == FFNC_LOSS_SOFTMAX_XENT) {
        const int64_t *labels = targets;
        for (size_t r = 0; r < batch; r++) {
            size_t best = 0;
            for (size_t c = 1; c < classes; c++)
                if (value_at(m, pred, r * classes + c) > value_at(m, pred, r * classes + best))
                    best = c;
            correct += (int64_t)best == labels[r];
        }
    } else {
        /* sigmoid(z) > 0.5 exactly when z > 0 */
        for (size_t i = 0; i < batch * classes; i++)
            correct += (value_at(m, pred, i) > 0) == (value_at(m, targets, i) > 0.5);
    }
    return correct;
}

ffnc_status ffnc_model_evaluate(ffnc_model *m, size_t rows, const void *x, const void *targets,
                                double *loss, double *accuracy) {
    FFNC_REQUIRE(m && loss, FFNC_ERR_NULL_POINTER);
    FFNC_REQUIRE(m->loss != FFNC_LOSS_NONE, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_TRY(check_data(m, rows, x, targets, 1));
    ffnc_plan *plan;
    ffnc_model_infer_layout lay;
    FFNC_TRY(infer_plan(m, 1, &plan, &lay));
    size_t x_row, t_row, classes = m->sizes[m->n_layers];
    row_bytes(m, &x_row, &t_row);
    void *acts;
    size_t n;
    ffnc_plan_arena_data(plan, FFNC_PLAN_ACTS, &acts, &n);
    double total = 0;
    size_t correct = 0;
    for (size_t first = 0; first < rows; first += FFNC_MODEL_INFER_BATCH) {
        size_t batch = rows - first < FFNC_MODEL_INFER_BATCH ? rows - first : FFNC_MODEL_INFER_BATCH;
        const void *t = (const char *)targets + first * t_row;
        const void *inputs[3] = {(const char *)x + first * x_row, m->params, t};
        FFNC_TRY(ffnc_plan_run(plan, batch, inputs, NULL));
        total += value_at(m, acts, lay.loss);
        if (accuracy && m->loss != FFNC_LOSS_MSE)
            correct += count_correct(m, batch, (char *)acts + lay.pred * m->elem_size, t);
    }
    size_t per_row = m->loss == FFNC_LOSS_SOFTMAX_XENT ? 1 : classes;
    *loss = total / ((double)rows * (double)per_row);
    if (accuracy)
        *accuracy = m->loss == FFNC_LOSS_MSE ? NAN : (double)correct / ((double)rows * (double)per_row);
    return FFNC_OK;
}
