/* Checkpoint format v1 (see the helper notes and ffnc.io): a safetensors file with the model's
 * parameters under "<layer>.weight" / "<layer>.bias", optional optimizer buffers under
 * "optimizer.<buffer>", and "__metadata__" entries "format" = "ffnc", "format_version" = "1",
 * "model" (the JSON of Sequential.get_config()) and optionally "optimizer". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "model_internal.h"

static const char *const loss_names[] = {NULL, "softmax_cross_entropy", "bce", "mse"};

static int takes_alpha(ffnc_activation act) {
    return act == FFNC_ACT_LEAKY_RELU || act == FFNC_ACT_ELU;
}

/* The model config exactly as Python's json.dumps(model.get_config()) writes it. */
static ffnc_status model_json(const ffnc_model *m, json_buf *b) {
    FFNC_TRY(json_put_raw(b, "{\"class\": \"Sequential\", \"dtype\": "));
    FFNC_TRY(json_put_string(b, m->dtype == FFNC_F32 ? "float32" : "float64"));
    FFNC_TRY(json_put_raw(b, ", \"input_shape\": ["));
    FFNC_TRY(json_put_uint(b, m->sizes[0]));
    FFNC_TRY(json_put_raw(b, "], \"layers\": ["));
    for (size_t l = 0; l < m->n_layers; l++) {
        FFNC_TRY(json_put_raw(b, l ? ", {\"class\": \"Dense\", \"units\": "
                                   : "{\"class\": \"Dense\", \"units\": "));
        FFNC_TRY(json_put_uint(b, m->sizes[l + 1]));
        FFNC_TRY(json_put_raw(b, ", \"activation\": "));
        FFNC_TRY(json_put_string(b, ffnc_model_activation_names[m->acts[l]]));
        FFNC_TRY(json_put_raw(b, ", \"alpha\": "));
        if (takes_alpha(m->acts[l])) FFNC_TRY(json_put_double(b, m->alphas[l]));
        else FFNC_TRY(json_put_raw(b, "null"));
        FFNC_TRY(json_put_raw(b, ", \"use_bias\": true}"));
    }
    FFNC_TRY(json_put_raw(b, "], \"loss\": "));
    if (m->loss == FFNC_LOSS_NONE) {
        FFNC_TRY(json_put_raw(b, "null}"));
    } else {
        FFNC_TRY(json_put_raw(b, "{\"class\": "));
        FFNC_TRY(json_put_string(b, loss_names[m->loss]));
        FFNC_TRY(json_put_raw(b, "}}"));
    }
    return FFNC_OK;
}

static ffnc_status put_member(json_buf *b, const char *key, double value) {
    FFNC_TRY(json_put_raw(b, ", "));
    FFNC_TRY(json_put_string(b, key));
    FFNC_TRY(json_put_raw(b, ": "));
    return json_put_double(b, value);
}

/* {"class", settings..., "step"} with the keys, in the order, of ffnc.optim's get_config()
 * (the C API does not clip gradients: "clip_norm" is null). */
static ffnc_status optimizer_json(const ffnc_model *m, json_buf *b) {
    const ffnc_train_config *c = &m->optimizer;
    static const char *const names[] = {"sgd", "momentum", "adam"};
    const char *name = c->optimizer == FFNC_OPTIMIZER_ADAM && c->decoupled_weight_decay
                           ? "adamw" : names[c->optimizer];
    FFNC_TRY(json_put_raw(b, "{\"class\": "));
    FFNC_TRY(json_put_string(b, name));
    FFNC_TRY(put_member(b, "lr", c->learning_rate));
    if (c->optimizer == FFNC_OPTIMIZER_MOMENTUM) {
        FFNC_TRY(put_member(b, "momentum", c->momentum));
        FFNC_TRY(put_member(b, "weight_decay", c->weight_decay));
        FFNC_TRY(json_put_raw(b, c->nesterov ? ", \"nesterov\": true" : ", \"nesterov\": false"));
    } else {
        if (c->optimizer == FFNC_OPTIMIZER_ADAM) {
            FFNC_TRY(put_member(b, "beta1", c->beta1));
            FFNC_TRY(put_member(b, "beta2", c->beta2));
            FFNC_TRY(put_member(b, "eps", c->eps));
        }
        FFNC_TRY(put_member(b, "weight_decay", c->weight_decay));
    }
    FFNC_TRY(json_put_raw(b, ", \"clip_norm\": null, \"step\": "));
    FFNC_TRY(json_put_uint(b, (uint64_t)m->step));
    return json_put_raw(b, "}");
}

ffnc_status ffnc_model_save(const ffnc_model *m, const char *path, int with_optimizer) {
    FFNC_REQUIRE(m && path, FFNC_ERR_NULL_POINTER);
    ffnc_safetensors_writer *w = NULL;
    FFNC_TRY(ffnc_safetensors_writer_create(&w));
    json_buf model = {NULL, 0, 0}, optimizer = {NULL, 0, 0};
    ffnc_tensor_dtype dtype = m->dtype == FFNC_F32 ? FFNC_TENSOR_F32 : FFNC_TENSOR_F64;
    ffnc_status s = FFNC_OK;
    for (size_t l = 0; l < m->n_layers && s == FFNC_OK; l++) {
        char name[48];
        size_t wshape[2] = {m->sizes[l], m->sizes[l + 1]};
        snprintf(name, sizeof name, "%zu.weight", l);
        s = ffnc_safetensors_writer_add(w, name, dtype, 2, wshape,
                                        (const char *)m->params + m->weight_offset[l] * m->elem_size);
        snprintf(name, sizeof name, "%zu.bias", l);
        if (s == FFNC_OK)
            s = ffnc_safetensors_writer_add(w, name, dtype, 1, &wshape[1],
                                            (const char *)m->params +
                                                m->bias_offset[l] * m->elem_size);
    }
    if (s == FFNC_OK) s = ffnc_safetensors_writer_add_metadata(w, "format", "ffnc");
    if (s == FFNC_OK) s = ffnc_safetensors_writer_add_metadata(w, "format_version", "1");
    if (s == FFNC_OK) s = model_json(m, &model);
    if (s == FFNC_OK) s = ffnc_safetensors_writer_add_metadata(w, "model", model.data);
    if (s == FFNC_OK && with_optimizer && m->has_optimizer) {
        size_t P = m->n_params;
        if (m->optimizer.optimizer == FFNC_OPTIMIZER_MOMENTUM) {
            s = ffnc_safetensors_writer_add(w, "optimizer.velocity", dtype, 1, &P,
                                            m->optimizer_state);
        } else if (m->optimizer.optimizer == FFNC_OPTIMIZER_ADAM) {
            s = ffnc_safetensors_writer_add(w, "optimizer.m", dtype, 1, &P, m->optimizer_state);
            if (s == FFNC_OK)
                s = ffnc_safetensors_writer_add(w, "optimizer.v", dtype, 1, &P,
                                                (const char *)m->optimizer_state + P * m->elem_size);
        }
        if (s == FFNC_OK) s = optimizer_json(m, &optimizer);
        if (s == FFNC_OK) s = ffnc_safetensors_writer_add_metadata(w, "optimizer", optimizer.data);
    }
    if (s == FFNC_OK) s = ffnc_safetensors_writer_save(w, path);
    json_buf_free(&model);
    json_buf_free(&optimizer);
    ffnc_safetensors_writer_free(w);
    return s;
}

/* ---- loading ------------------------------------------------------------------------------- */

#define MAX_NAME 256

typedef struct layer_spec {
    size_t units;
    ffnc_activation act;
    double alpha;
    char prefix[MAX_NAME]; /* the tensors' name prefix: the layer's name or its index */
} layer_spec;

static int string_is(const json_doc *doc, const json_node *n, const char *s) {
    return n && n->type == JSON_STRING && strcmp(json_str(doc, n), s) == 0;
}

/* Every member of `obj` is one of `allowed` (a NULL-terminated list). */
static int only_keys(const json_doc *doc, const json_node *obj, const char *const *allowed) {
    for (const json_node *m = json_first(doc, obj); m; m = json_next(doc, m)) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(json_key(doc, m), *a) == 0;
        if (!ok) return 0;
    }
    return 1;
}

static ffnc_status parse_layer(const json_doc *doc, const json_node *n, size_t index,
                               layer_spec *spec) {
    /* the initializers only shaped the weights this file holds */
    static const char *const keys[] = {"class", "units", "activation", "alpha", "use_bias",
                                       "name", "kernel_initializer", "bias_initializer", NULL};
    FFNC_REQUIRE(n->type == JSON_OBJECT, FFNC_ERR_FORMAT);
    const json_node *cls = json_get(doc, n, "class");
    FFNC_REQUIRE(cls && cls->type == JSON_STRING, FFNC_ERR_FORMAT);
    FFNC_REQUIRE(string_is(doc, cls, "Dense"), FFNC_ERR_UNSUPPORTED);
    FFNC_REQUIRE(only_keys(doc, n, keys), FFNC_ERR_UNSUPPORTED);
    uint64_t units;
    FFNC_REQUIRE(json_uint(doc, json_get(doc, n, "units"), &units) && units >= 1 &&
                     units <= SIZE_MAX,
                 FFNC_ERR_FORMAT);
    spec->units = (size_t)units;
    const json_node *act = json_get(doc, n, "activation");
    FFNC_REQUIRE(act && act->type == JSON_STRING, FFNC_ERR_FORMAT);
    int found = 0;
    for (int a = 0; a < FFNC_ACT_COUNT && !found; a++)
        if (strcmp(json_str(doc, act), ffnc_model_activation_names[a]) == 0) {
            spec->act = (ffnc_activation)a;
            found = 1;
        }
    FFNC_REQUIRE(found, FFNC_ERR_UNSUPPORTED);
    const json_node *alpha = json_get(doc, n, "alpha");
    spec->alpha = spec->act == FFNC_ACT_LEAKY_RELU ? 0.01 : spec->act == FFNC_ACT_ELU ? 1.0 : 0.0;
    if (alpha && alpha->type != JSON_NULL) {
        FFNC_REQUIRE(json_double(doc, alpha, &spec->alpha), FFNC_ERR_FORMAT);
        FFNC_REQUIRE(takes_alpha(spec->act) && spec->alpha >= 0, FFNC_ERR_FORMAT);
    }
    const json_node *bias = json_get(doc, n, "use_bias");
    FFNC_REQUIRE(!bias || bias->type == JSON_TRUE || bias->type == JSON_FALSE, FFNC_ERR_FORMAT);
    FFNC_REQUIRE(!bias || bias->type == JSON_TRUE, FFNC_ERR_UNSUPPORTED);
    const json_node *name = json_get(doc, n, "name");
    if (name && name->type != JSON_NULL) {
        FFNC_REQUIRE(name->type == JSON_STRING && name->length > 0 && name->length < MAX_NAME,
                     FFNC_ERR_FORMAT);
        memcpy(spec->prefix, json_str(doc, name), name->length + 1);
    } else {
        snprintf(spec->prefix, sizeof spec->prefix, "%zu", index);
    }
    return FFNC_OK;
}

/* Parses the "model" metadata into a description; *specs (n_layers) is allocated. */
static ffnc_status parse_model(const json_doc *doc, ffnc_model_desc *desc, size_t *input,
                               layer_spec **specs) {
    /* "seed" drew the initial weights, which the file's tensors replace */
    static const char *const keys[] = {"class", "dtype", "input_shape", "layers", "loss",
                                       "name", "seed", NULL};
    const json_node *root = json_root(doc);
    FFNC_REQUIRE(root->type == JSON_OBJECT, FFNC_ERR_FORMAT);
    const json_node *cls = json_get(doc, root, "class");
    FFNC_REQUIRE(cls && cls->type == JSON_STRING, FFNC_ERR_FORMAT);
    FFNC_REQUIRE(string_is(doc, cls, "Sequential"), FFNC_ERR_UNSUPPORTED);
    FFNC_REQUIRE(only_keys(doc, root, keys), FFNC_ERR_UNSUPPORTED);
    const json_node *dtype = json_get(doc, root, "dtype");
    FFNC_REQUIRE(dtype && dtype->type == JSON_STRING, FFNC_ERR_FORMAT);
    if (string_is(doc, dtype, "float32")) desc->dtype = FFNC_F32;
    else if (string_is(doc, dtype, "float64")) desc->dtype = FFNC_F64;
    else return FFNC_ERR_UNSUPPORTED;
    const json_node *shape = json_get(doc, root, "input_shape");
    FFNC_REQUIRE(shape && shape->type == JSON_ARRAY, FFNC_ERR_FORMAT);
    FFNC_REQUIRE(shape->count == 1, FFNC_ERR_UNSUPPORTED);
    uint64_t width;
    FFNC_REQUIRE(json_uint(doc, json_first(doc, shape), &width) && width >= 1 &&
                     width <= SIZE_MAX,
                 FFNC_ERR_FORMAT);
    *input = (size_t)width;
    const json_node *layers = json_get(doc, root, "layers");
    FFNC_REQUIRE(layers && layers->type == JSON_ARRAY, FFNC_ERR_FORMAT);
    FFNC_REQUIRE(layers->count >= 1, FFNC_ERR_UNSUPPORTED);
    const json_node *loss = json_get(doc, root, "loss");
    desc->loss = FFNC_LOSS_NONE;
    if (loss && loss->type != JSON_NULL) {
        static const char *const loss_keys[] = {"class", NULL};
        FFNC_REQUIRE(loss->type == JSON_OBJECT, FFNC_ERR_FORMAT);
        const json_node *lc = json_get(doc, loss, "class");
        FFNC_REQUIRE(lc && lc->type == JSON_STRING, FFNC_ERR_FORMAT);
        FFNC_REQUIRE(only_keys(doc, loss, loss_keys), FFNC_ERR_UNSUPPORTED);
        int found = 0;
        for (int l = FFNC_LOSS_SOFTMAX_XENT; l <= FFNC_LOSS_MSE && !found; l++)
            if (string_is(doc, lc, loss_names[l])) desc->loss = (ffnc_loss)l, found = 1;
        FFNC_REQUIRE(found, FFNC_ERR_UNSUPPORTED);
    }
    *specs = calloc(layers->count, sizeof(layer_spec)); /* bounded by the header's size */
    if (!*specs) return FFNC_ERR_OUT_OF_MEMORY;
    size_t i = 0;
    for (const json_node *n = json_first(doc, layers); n; n = json_next(doc, n), i++)
        FFNC_TRY(parse_layer(doc, n, i, &(*specs)[i]));
    desc->n_layers = layers->count;
    return FFNC_OK;
}

/* Checks that the file holds tensor `name` of exactly `dtype` and `shape`; *count gets its
 * elements. */
static ffnc_status check_tensor(const ffnc_safetensors *f, const char *name,
                                ffnc_tensor_dtype dtype, size_t ndim, const size_t *shape,
                                size_t *count) {
    ffnc_tensor_info info;
    ffnc_status s = ffnc_safetensors_find(f, name, &info);
    FFNC_REQUIRE(s != FFNC_ERR_NOT_FOUND, FFNC_ERR_FORMAT);
    FFNC_TRY(s);
    FFNC_REQUIRE(info.dtype == dtype && info.ndim == ndim, FFNC_ERR_FORMAT);
    for (size_t d = 0; d < ndim; d++) FFNC_REQUIRE(info.shape[d] == shape[d], FFNC_ERR_FORMAT);
    *count = info.count;
    return FFNC_OK;
}

/* Reads tensor `name` of exactly `shape` into dst. */
static ffnc_status read_tensor(const ffnc_safetensors *f, const char *name,
                               ffnc_tensor_dtype dtype, size_t ndim, const size_t *shape,
                               void *dst) {
    size_t count;
    FFNC_TRY(check_tensor(f, name, dtype, ndim, shape, &count));
    return ffnc_safetensors_read(f, name, dtype, count, dst);
}

/* Every layer's weight and bias, shaped as `sizes` says: checked against the file when `m` is
 * NULL, else read into m's parameters. */
static ffnc_status layer_tensors(const ffnc_safetensors *f, const layer_spec *specs,
                                 const size_t *sizes, size_t n_layers, ffnc_tensor_dtype dtype,
                                 ffnc_model *m) {
    for (size_t l = 0; l < n_layers; l++) {
        char weight[MAX_NAME + 16], bias[MAX_NAME + 16];
        size_t shape[2] = {sizes[l], sizes[l + 1]}, count;
        snprintf(weight, sizeof weight, "%s.weight", specs[l].prefix);
        snprintf(bias, sizeof bias, "%s.bias", specs[l].prefix);
        if (!m) {
            FFNC_TRY(check_tensor(f, weight, dtype, 2, shape, &count));
            FFNC_TRY(check_tensor(f, bias, dtype, 1, &shape[1], &count));
            continue;
        }
        void *w, *b;
        FFNC_TRY(ffnc_model_layer_params(m, l, &w, &b));
        FFNC_TRY(read_tensor(f, weight, dtype, 2, shape, w));
        FFNC_TRY(read_tensor(f, bias, dtype, 1, &shape[1], b));
    }
    return FFNC_OK;
}

/* Restores the optimizer state when the file has one the C API trains; *consumed counts the
 * optimizer tensors read. */
static ffnc_status load_optimizer(const ffnc_safetensors *f, ffnc_model *m, size_t *consumed) {
    const char *text;
    *consumed = 0;
    if (ffnc_safetensors_metadata(f, "optimizer", &text) != FFNC_OK) return FFNC_OK;
    json_doc doc;
    FFNC_TRY(json_parse(text, strlen(text), &doc));
    ffnc_status s = FFNC_OK;
    const json_node *root = json_root(&doc);
    const json_node *cls = json_get(&doc, root, "class");
    uint64_t step = 0;
    if (!cls || cls->type != JSON_STRING) s = FFNC_ERR_FORMAT;
    const json_node *step_node = json_get(&doc, root, "step");
    if (s == FFNC_OK && step_node && (!json_uint(&doc, step_node, &step) || step > INT64_MAX))
        s = FFNC_ERR_FORMAT;
    ffnc_train_config c;
    int known = 1;
    if (s == FFNC_OK) {
        if (string_is(&doc, cls, "sgd")) ffnc_train_config_init(&c, FFNC_OPTIMIZER_SGD);
        else if (string_is(&doc, cls, "momentum")) ffnc_train_config_init(&c, FFNC_OPTIMIZER_MOMENTUM);
        else if (string_is(&doc, cls, "adam") || string_is(&doc, cls, "adamw")) {
            ffnc_train_config_init(&c, FFNC_OPTIMIZER_ADAM);
            c.decoupled_weight_decay = string_is(&doc, cls, "adamw");
        } else known = 0;
    }
    if (s == FFNC_OK && known) {
        /* the hyper-parameters are informative: training takes them from its config */
        double v;
        if (json_double(&doc, json_get(&doc, root, "lr"), &v)) c.learning_rate = v;
        if (json_double(&doc, json_get(&doc, root, "momentum"), &v)) c.momentum = v;
        if (json_double(&doc, json_get(&doc, root, "beta1"), &v)) c.beta1 = v;
        if (json_double(&doc, json_get(&doc, root, "beta2"), &v)) c.beta2 = v;
        if (json_double(&doc, json_get(&doc, root, "eps"), &v)) c.eps = v;
        if (json_double(&doc, json_get(&doc, root, "weight_decay"), &v)) c.weight_decay = v;
        const json_node *nesterov = json_get(&doc, root, "nesterov");
        c.nesterov = nesterov && nesterov->type == JSON_TRUE;
        size_t P = m->n_params, size = ffnc_model_state_size(c.optimizer, P);
        ffnc_tensor_dtype dtype = m->dtype == FFNC_F32 ? FFNC_TENSOR_F32 : FFNC_TENSOR_F64;
        void *state = NULL;
        if (size) {
            state = aligned_alloc(64, (size * m->elem_size + 63) / 64 * 64);
            if (!state) s = FFNC_ERR_OUT_OF_MEMORY;
        }
        if (s == FFNC_OK && c.optimizer == FFNC_OPTIMIZER_MOMENTUM) {
            s = read_tensor(f, "optimizer.velocity", dtype, 1, &P, state);
            *consumed = 1;
        } else if (s == FFNC_OK && c.optimizer == FFNC_OPTIMIZER_ADAM) {
            s = read_tensor(f, "optimizer.m", dtype, 1, &P, state);
            if (s == FFNC_OK)
                s = read_tensor(f, "optimizer.v", dtype, 1, &P, (char *)state + P * m->elem_size);
            *consumed = 2;
        }
        if (s == FFNC_OK) {
            free(m->optimizer_state);
            m->optimizer_state = state;
            m->optimizer = c;
            m->has_optimizer = 1;
            m->step = (int64_t)step;
        } else {
            free(state);
        }
    }
    json_free(&doc);
    return s;
}

static ffnc_status load_file(const ffnc_safetensors *f, ffnc_model **out) {
    const char *value;
    FFNC_REQUIRE(ffnc_safetensors_metadata(f, "format", &value) == FFNC_OK &&
                     strcmp(value, "ffnc") == 0,
                 FFNC_ERR_FORMAT);
    FFNC_REQUIRE(ffnc_safetensors_metadata(f, "format_version", &value) == FFNC_OK,
                 FFNC_ERR_FORMAT);
    FFNC_REQUIRE(strcmp(value, "1") == 0, FFNC_ERR_UNSUPPORTED);
    FFNC_REQUIRE(ffnc_safetensors_metadata(f, "model", &value) == FFNC_OK, FFNC_ERR_FORMAT);
    json_doc doc;
    FFNC_TRY(json_parse(value, strlen(value), &doc));
    ffnc_model_desc desc = {0};
    size_t input = 0;
    layer_spec *specs = NULL;
    size_t *sizes = NULL;
    ffnc_activation *acts = NULL;
    double *alphas = NULL;
    ffnc_model *m = NULL;
    ffnc_status s = parse_model(&doc, &desc, &input, &specs);
    if (s == FFNC_OK) {
        sizes = malloc((desc.n_layers + 1) * sizeof(size_t));
        acts = malloc(desc.n_layers * sizeof(ffnc_activation));
        alphas = malloc(desc.n_layers * sizeof(double));
        if (!sizes || !acts || !alphas) s = FFNC_ERR_OUT_OF_MEMORY;
    }
    ffnc_tensor_dtype dtype = desc.dtype == FFNC_F32 ? FFNC_TENSOR_F32 : FFNC_TENSOR_F64;
    if (s == FFNC_OK) {
        sizes[0] = input;
        for (size_t l = 0; l < desc.n_layers; l++) {
            sizes[l + 1] = specs[l].units;
            acts[l] = specs[l].act;
            alphas[l] = specs[l].alpha;
        }
        /* The tensors before the model: a config declaring layers larger than the file holds
         * must not make the loader allocate them. */
        s = layer_tensors(f, specs, sizes, desc.n_layers, dtype, NULL);
    }
    if (s == FFNC_OK) {
        desc.sizes = sizes, desc.activations = acts, desc.alphas = alphas;
        s = ffnc_model_create(&desc, 0, &m);
        /* a description the library refuses is not a valid checkpoint */
        if (s == FFNC_ERR_INVALID_ARGUMENT || s == FFNC_ERR_SIZE_OVERFLOW) s = FFNC_ERR_FORMAT;
    }
    if (s == FFNC_OK) s = layer_tensors(f, specs, sizes, desc.n_layers, dtype, m);
    size_t optimizer_tensors = 0;
    if (s == FFNC_OK) s = load_optimizer(f, m, &optimizer_tensors);
    /* Every tensor must be accounted for: a stray one means the config and the weights
     * disagree. Optimizer buffers of kinds the C API does not train are skipped. */
    if (s == FFNC_OK) {
        size_t expected = 2 * desc.n_layers + optimizer_tensors, extra_optimizer = 0;
        for (size_t i = 0; i < ffnc_safetensors_count(f); i++) {
            ffnc_tensor_info info;
            ffnc_safetensors_info(f, i, &info);
            if (strncmp(info.name, "optimizer.", 10) == 0) extra_optimizer++;
        }
        extra_optimizer -= optimizer_tensors;
        if (ffnc_safetensors_count(f) != expected + extra_optimizer) s = FFNC_ERR_FORMAT;
    }
    if (s == FFNC_OK) *out = m;
    else ffnc_model_destroy(m);
    free(sizes);
    free(acts);
    free(alphas);
    free(specs);
    json_free(&doc);
    return s;
}

ffnc_status ffnc_model_load(const char *path, ffnc_model **model) {
    FFNC_REQUIRE(path && model, FFNC_ERR_NULL_POINTER);
    *model = NULL;
    ffnc_safetensors *f = NULL;
    FFNC_TRY(ffnc_safetensors_load(path, &f));
    ffnc_status s = load_file(f, model);
    ffnc_safetensors_free(f);
    return s;
}
