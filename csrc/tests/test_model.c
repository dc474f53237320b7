/* The C model API against a plain C reference MLP (forward, backward, SGD / momentum / Adam,
 * written out below in double): training steps, epoch losses, predictions and evaluation, on
 * every ISA path; the documented initialization; shuffling and thread-count determinism;
 * argument errors; checkpoints (round trip, resuming, Python-style files, rejected files). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* ---- the reference -------------------------------------------------------------------------- */

#define MAXW 72
#define MAXL 4
#define MAXP 8192 /* parameters */

typedef struct ref_net {
    size_t L, sizes[MAXL + 1];
    ffnc_activation acts[MAXL];
    ffnc_loss loss;
    double p[MAXP];
    size_t wo[MAXL], bo[MAXL], n_params;
} ref_net;

static void ref_layout(ref_net *r) {
    size_t o = 0;
    for (size_t l = 0; l < r->L; l++) {
        r->wo[l] = o, o += r->sizes[l] * r->sizes[l + 1];
        r->bo[l] = o, o += r->sizes[l + 1];
    }
    r->n_params = o;
}

static double act_f(ffnc_activation a, double x) {
    switch (a) {
    case FFNC_ACT_RELU: return x > 0 ? x : 0;
    case FFNC_ACT_TANH: return tanh(x);
    case FFNC_ACT_SIGMOID: return 1 / (1 + exp(-x));
    default: return x;
    }
}

static double act_d(ffnc_activation a, double y) { /* from the output */
    switch (a) {
    case FFNC_ACT_RELU: return y > 0 ? 1 : 0;
    case FFNC_ACT_TANH: return 1 - y * y;
    case FFNC_ACT_SIGMOID: return y * (1 - y);
    default: return 1;
    }
}

/* Forward over one row: h[l] outputs. */
static void ref_forward(const ref_net *r, const double *x, double h[MAXL + 1][MAXW]) {
    for (size_t i = 0; i < r->sizes[0]; i++) h[0][i] = x[i];
    for (size_t l = 0; l < r->L; l++)
        for (size_t c = 0; c < r->sizes[l + 1]; c++) {
            double z = r->p[r->bo[l] + c];
            for (size_t k = 0; k < r->sizes[l]; k++)
                z += h[l][k] * r->p[r->wo[l] + k * r->sizes[l + 1] + c];
            h[l + 1][c] = act_f(r->acts[l], z);
        }
}

/* Mean loss over rows and its gradient (added to grad, zeroed here). */
static double ref_loss_grad(const ref_net *r, size_t rows, const double *x, const void *t,
                            double *grad) {
    memset(grad, 0, r->n_params * sizeof(double));
    size_t C = r->sizes[r->L], denom = r->loss == FFNC_LOSS_SOFTMAX_XENT ? rows : rows * C;
    double loss = 0;
    for (size_t row = 0; row < rows; row++) {
        double h[MAXL + 1][MAXW], d[MAXW], dprev[MAXW];
        ref_forward(r, x + row * r->sizes[0], h);
        const double *out = h[r->L];
        if (r->loss == FFNC_LOSS_SOFTMAX_XENT) {
            int64_t y = ((const int64_t *)t)[row];
            double mx = out[0], s = 0;
            for (size_t c = 1; c < C; c++) mx = out[c] > mx ? out[c] : mx;
            for (size_t c = 0; c < C; c++) s += exp(out[c] - mx);
            loss += -(out[y] - mx - log(s));
            for (size_t c = 0; c < C; c++)
                d[c] = (exp(out[c] - mx) / s - (c == (size_t)y)) / (double)denom;
        } else {
            const double *y = (const double *)t + row * C;
            for (size_t c = 0; c < C; c++) {
                double z = out[c];
                if (r->loss == FFNC_LOSS_BCE) {
                    loss += (z > 0 ? z : 0) - y[c] * z + log1p(exp(-fabs(z)));
                    d[c] = (1 / (1 + exp(-z)) - y[c]) / (double)denom;
                } else {
                    loss += (z - y[c]) * (z - y[c]);
                    d[c] = 2 * (z - y[c]) / (double)denom;
                }
            }
        }
        for (size_t l = r->L; l-- > 0;) {
            size_t n = r->sizes[l + 1], k = r->sizes[l];
            for (size_t c = 0; c < n; c++) d[c] *= act_d(r->acts[l], h[l + 1][c]);
            for (size_t c = 0; c < n; c++) grad[r->bo[l] + c] += d[c];
            for (size_t i = 0; i < k; i++) {
                dprev[i] = 0;
                for (size_t c = 0; c < n; c++) {
                    grad[r->wo[l] + i * n + c] += h[l][i] * d[c];
                    dprev[i] += d[c] * r->p[r->wo[l] + i * n + c];
                }
            }
            memcpy(d, dprev, k * sizeof(double));
        }
    }
    return loss / (double)denom;
}

typedef struct ref_opt {
    double v[MAXP], m[MAXP], s[MAXP];
    int64_t step;
} ref_opt;

static void ref_update(ref_net *r, ref_opt *o, const ffnc_train_config *c, const double *g) {
    o->step++;
    for (size_t i = 0; i < r->n_params; i++) {
        double gi = g[i] + c->weight_decay * r->p[i];
        if (c->optimizer == FFNC_OPTIMIZER_SGD) {
            r->p[i] -= c->learning_rate * gi;
        } else if (c->optimizer == FFNC_OPTIMIZER_MOMENTUM) {
            o->v[i] = c->momentum * o->v[i] + gi;
            r->p[i] -= c->learning_rate * o->v[i];
        } else {
            o->m[i] = c->beta1 * o->m[i] + (1 - c->beta1) * gi;
            o->s[i] = c->beta2 * o->s[i] + (1 - c->beta2) * gi * gi;
            double mh = o->m[i] / (1 - pow(c->beta1, (double)o->step));
            double vh = o->s[i] / (1 - pow(c->beta2, (double)o->step));
            r->p[i] -= c->learning_rate * mh / (sqrt(vh) + c->eps);
        }
    }
}

/* ---- helpers ------------------------------------------------------------------------------- */

static ffnc_model *make(ffnc_dtype dtype, size_t L, const size_t *sizes,
                        const ffnc_activation *acts, ffnc_loss loss, uint64_t seed) {
    ffnc_model_desc d = {dtype, L, sizes, acts, NULL, loss};
    ffnc_model *m = NULL;
    CHECK_OK(ffnc_model_create(&d, seed, &m));
    return m;
}

static void copy_params_to_ref(ffnc_model *m, ref_net *r) {
    void *p;
    size_t n;
    ffnc_model_params(m, &p, &n);
    CHECK(n == r->n_params);
    for (size_t i = 0; i < n; i++) r->p[i] = ((double *)p)[i];
}

static double max_param_diff(ffnc_model *m, const ref_net *r) {
    void *p;
    size_t n;
    ffnc_model_params(m, &p, &n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(((double *)p)[i] - r->p[i]);
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* ---- tests --------------------------------------------------------------------------------- */

/* Two epochs of 7 rows in batches of 3 (so a short last batch), no shuffling, every optimizer
 * and loss, against the reference; then predictions and evaluation. */
static void test_training_matches_reference(void) {
    const size_t sizes[3] = {3, 5, 4};
    const ffnc_activation acts[2][2] = {{FFNC_ACT_TANH, FFNC_ACT_IDENTITY},
                                        {FFNC_ACT_RELU, FFNC_ACT_SIGMOID}};
    enum { ROWS = 7, BATCH = 3, EPOCHS = 2 };
    unsigned long long seed = 11;
    double x[ROWS * 3], yv[ROWS * 4];
    int64_t labels[ROWS];
    for (int i = 0; i < ROWS * 3; i++) x[i] = check_uniform(&seed, -1, 1);
    for (int i = 0; i < ROWS * 4; i++) yv[i] = check_uniform(&seed, 0, 1);
    for (int i = 0; i < ROWS; i++) labels[i] = i % 4;
    FOR_EACH_ISA(isa) {
        for (int loss = FFNC_LOSS_SOFTMAX_XENT; loss <= FFNC_LOSS_MSE; loss++)
            for (int opt = FFNC_OPTIMIZER_SGD; opt <= FFNC_OPTIMIZER_ADAM; opt++)
                for (int a = 0; a < 2; a++) {
                    ffnc_model *m = make(FFNC_F64, 2, sizes, acts[a], (ffnc_loss)loss, 5 + a);
                    if (!m) return;
                    ref_net r = {2, {3, 5, 4}, {acts[a][0], acts[a][1]}, (ffnc_loss)loss, {0}, {0}, {0}, 0};
                    ref_layout(&r);
                    copy_params_to_ref(m, &r);
                    ffnc_train_config c;
                    CHECK_OK(ffnc_train_config_init(&c, (ffnc_optimizer)opt));
                    c.learning_rate = opt == FFNC_OPTIMIZER_ADAM ? 0.01 : 0.1;
                    c.weight_decay = 0.01;
                    c.batch_size = BATCH, c.epochs = EPOCHS, c.shuffle = 0;
                    const void *t = loss == FFNC_LOSS_SOFTMAX_XENT ? (const void *)labels : yv;
                    double losses[EPOCHS] = {0}, ref_losses[EPOCHS] = {0};
                    static ref_opt o;
                    memset(&o, 0, sizeof o);
                    for (int e = 0; e < EPOCHS; e++)
                        for (int first = 0; first < ROWS; first += BATCH) {
                            int rows = ROWS - first < BATCH ? ROWS - first : BATCH;
                            double g[MAXP];
                            const void *tb = loss == FFNC_LOSS_SOFTMAX_XENT
                                                 ? (const void *)(labels + first)
                                                 : (const void *)(yv + first * 4);
                            ref_losses[e] += rows * ref_loss_grad(&r, (size_t)rows, x + first * 3, tb, g);
                            ref_update(&r, &o, &c, g);
                        }
                    CHECK_OK(ffnc_model_train(m, &c, ROWS, x, t, losses));
                    double diff = max_param_diff(m, &r);
                    check_total++;
                    if (diff > 1e-10) {
                        check_failed++;
                        fprintf(stderr, "isa %d loss %d opt %d acts %d: params differ by %g\n",
                                isa, loss, opt, a, diff);
                    }
                    for (int e = 0; e < EPOCHS; e++)
                        CHECK_CLOSE(losses[e], ref_losses[e] / ROWS, 1e-10, 1e-12);

                    /* predictions and evaluation of the trained model */
                    double pred[ROWS * 4], ref_loss = 0, dummy[MAXP];
                    CHECK_OK(ffnc_model_predict(m, ROWS, x, pred));
                    size_t correct = 0;
                    for (int row = 0; row < ROWS; row++) {
                        double h[MAXL + 1][MAXW];
                        ref_forward(&r, x + row * 3, h);
                        double mx = h[2][0], s = 0;
                        size_t best = 0;
                        for (int c2 = 0; c2 < 4; c2++) {
                            if (h[2][c2] > mx) mx = h[2][c2], best = (size_t)c2;
                        }
                        for (int c2 = 0; c2 < 4; c2++) s += exp(h[2][c2] - mx);
                        correct += (int64_t)best == labels[row];
                        for (int c2 = 0; c2 < 4; c2++) {
                            double want = h[2][c2];
                            if (loss == FFNC_LOSS_SOFTMAX_XENT) want = exp(h[2][c2] - mx) / s;
                            if (loss == FFNC_LOSS_BCE) want = 1 / (1 + exp(-h[2][c2]));
                            CHECK_CLOSE(pred[row * 4 + c2], want, 1e-12, 1e-14);
                        }
                    }
                    ref_loss = ref_loss_grad(&r, ROWS, x, t, dummy);
                    double got_loss = -1, accuracy = -1;
                    CHECK_OK(ffnc_model_evaluate(m, ROWS, x, t, &got_loss, &accuracy));
                    CHECK_CLOSE(got_loss, ref_loss, 1e-12, 1e-14);
                    if (loss == FFNC_LOSS_SOFTMAX_XENT)
                        CHECK_CLOSE(accuracy, (double)correct / ROWS, 0, 0);
                    if (loss == FFNC_LOSS_MSE) CHECK(isnan(accuracy));
                    if (loss == FFNC_LOSS_BCE) CHECK(accuracy >= 0 && accuracy <= 1);
                    ffnc_model_destroy(m);
                }
    }
}

/* Momentum without weight decay on a model whose first weight matrix (64 x 70 = 4480
 * elements) is large enough to take its gradient straight into the velocity (the second,
 * 70 x 4, is not): training matches the reference update v = mu v + g; p -= lr v, in both
 * dtypes and on every ISA path. */
static void test_momentum_into_velocity_matches_reference(void) {
    const size_t sizes[3] = {64, 70, 4};
    const ffnc_activation acts[2] = {FFNC_ACT_RELU, FFNC_ACT_IDENTITY};
    enum { ROWS = 7, BATCH = 3, EPOCHS = 2, IN = 64 };
    unsigned long long seed = 21;
    static double x[ROWS * IN], g[MAXP];
    float x32[ROWS * IN];
    int64_t labels[ROWS];
    for (int i = 0; i < ROWS * IN; i++) x32[i] = (float)(x[i] = check_uniform(&seed, -1, 1));
    for (int i = 0; i < ROWS; i++) labels[i] = i % 4;
    const ffnc_dtype dtypes[2] = {FFNC_F64, FFNC_F32};
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < 2; d++) {
            ffnc_model *m = make(dtypes[d], 2, sizes, acts, FFNC_LOSS_SOFTMAX_XENT, 9);
            if (!m) return;
            static ref_net r;
            r = (ref_net){2, {64, 70, 4}, {acts[0], acts[1]}, FFNC_LOSS_SOFTMAX_XENT, {0}, {0},
                          {0}, 0};
            ref_layout(&r);
            void *p;
            size_t n;
            ffnc_model_params(m, &p, &n);
            for (size_t i = 0; i < n; i++)
                r.p[i] = dtypes[d] == FFNC_F64 ? ((double *)p)[i] : ((float *)p)[i];
            ffnc_train_config c;
            CHECK_OK(ffnc_train_config_init(&c, FFNC_OPTIMIZER_MOMENTUM));
            c.learning_rate = 0.05, c.momentum = 0.9, c.weight_decay = 0;
            c.batch_size = BATCH, c.epochs = EPOCHS, c.shuffle = 0;
            static ref_opt o;
            memset(&o, 0, sizeof o);
            for (int e = 0; e < EPOCHS; e++)
                for (int first = 0; first < ROWS; first += BATCH) {
                    int rows = ROWS - first < BATCH ? ROWS - first : BATCH;
                    ref_loss_grad(&r, (size_t)rows, x + first * IN, labels + first, g);
                    ref_update(&r, &o, &c, g);
                }
            const void *data = dtypes[d] == FFNC_F64 ? (const void *)x : (const void *)x32;
            CHECK_OK(ffnc_model_train(m, &c, ROWS, data, labels, NULL));
            ffnc_model_params(m, &p, &n);
            double worst = 0;
            for (size_t i = 0; i < n; i++) {
                double got = dtypes[d] == FFNC_F64 ? ((double *)p)[i] : ((float *)p)[i];
                double e = fabs(got - r.p[i]);
                worst = e > worst ? e : worst;
            }
            double tol = dtypes[d] == FFNC_F64 ? 1e-10 : 2e-5;
            check_total++;
            if (!(worst <= tol)) {
                check_failed++;
                fprintf(stderr, "isa %d dtype %d: momentum params differ by %g\n", isa, d, worst);
            }
            ffnc_model_destroy(m);
        }
    }
}

/* The initialization follows the formula in ffnc.h, for both dtypes. */
static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void test_initialization(void) {
    const size_t sizes[3] = {6, 9, 3};
    const ffnc_activation acts[2] = {FFNC_ACT_RELU, FFNC_ACT_IDENTITY};
    ffnc_model *a = make(FFNC_F64, 2, sizes, acts, FFNC_LOSS_SOFTMAX_XENT, 42);
    ffnc_model *b = make(FFNC_F32, 2, sizes, acts, FFNC_LOSS_SOFTMAX_XENT, 42);
    ffnc_model *c = make(FFNC_F64, 2, sizes, acts, FFNC_LOSS_SOFTMAX_XENT, 43);
    if (!a || !b || !c) return;
    const uint64_t G = 0x9E3779B97F4A7C15ULL;
    for (size_t l = 0; l < 2; l++) {
        void *wa, *ba, *wb, *bb, *wc, *bc;
        CHECK_OK(ffnc_model_layer_params(a, l, &wa, &ba));
        CHECK_OK(ffnc_model_layer_params(b, l, &wb, &bb));
        CHECK_OK(ffnc_model_layer_params(c, l, &wc, &bc));
        double limit = l == 0 ? sqrt(6.0 / 6) : sqrt(6.0 / (9 + 3));
        uint64_t key = mix(42 + l * G);
        int differs = 0;
        for (size_t t = 0; t < sizes[l] * sizes[l + 1]; t++) {
            double u = (double)(mix(key + (t + 1) * G) >> 11) * 0x1.0p-53;
            double want = limit * (2 * u - 1);
            CHECK(((double *)wa)[t] == want);
            CHECK(((float *)wb)[t] == (float)want);
            differs |= ((double *)wc)[t] != want;
        }
        CHECK(differs);
        for (size_t j = 0; j < sizes[l + 1]; j++)
            CHECK(((double *)ba)[j] == 0 && ((float *)bb)[j] == 0);
    }
    void *w0, *b0;
    CHECK_STATUS(ffnc_model_layer_params(a, 2, &w0, &b0), FFNC_ERR_INVALID_ARGUMENT);
    /* re-initializing with the creation seed restores the same weights */
    void *p;
    size_t n;
    ffnc_model_params(a, &p, &n);
    double first = ((double *)p)[0];
    ((double *)p)[0] = 123;
    CHECK_OK(ffnc_model_init(a, 42));
    CHECK(((double *)p)[0] == first);
    ffnc_model_desc d;
    CHECK_OK(ffnc_model_get_desc(a, &d));
    CHECK(d.n_layers == 2 && d.sizes[0] == 6 && d.sizes[1] == 9 && d.sizes[2] == 3);
    CHECK(d.activations[0] == FFNC_ACT_RELU && d.loss == FFNC_LOSS_SOFTMAX_XENT);
    ffnc_model_destroy(a);
    ffnc_model_destroy(b);
    ffnc_model_destroy(c);
}

/* Shuffled training: same seed, same result, on 1 and 2 threads; another seed differs. */
static void test_determinism(void) {
    const size_t sizes[3] = {16, 64, 10};
    const ffnc_activation acts[2] = {FFNC_ACT_RELU, FFNC_ACT_IDENTITY};
    enum { ROWS = 600 };
    float *x = malloc(ROWS * 16 * sizeof(float));
    int64_t labels[ROWS];
    unsigned long long s = 3;
    for (int i = 0; i < ROWS * 16; i++) x[i] = (float)check_uniform(&s, -1, 1);
    for (int i = 0; i < ROWS; i++) labels[i] = (int64_t)(check_uniform(&s, 0, 10));
    float *params[3];
    ffnc_model *models[3];
    int threads_before = ffnc_get_num_threads();
    for (int run = 0; run < 3; run++) {
        models[run] = make(FFNC_F32, 2, sizes, acts, FFNC_LOSS_SOFTMAX_XENT, 1);
        if (!models[run]) return;
        ffnc_set_num_threads(run == 1 ? 2 : 1);
        ffnc_train_config c;
        ffnc_train_config_init(&c, FFNC_OPTIMIZER_ADAM);
        c.batch_size = 64, c.epochs = 2, c.seed = run == 2 ? 8 : 7;
        CHECK_OK(ffnc_model_train(models[run], &c, ROWS, x, labels, NULL));
        size_t n;
        ffnc_model_params(models[run], (void **)&params[run], &n);
    }
    ffnc_set_num_threads(threads_before);
    size_t n;
    void *p;
    ffnc_model_params(models[0], &p, &n);
    CHECK(memcmp(params[0], params[1], n * sizeof(float)) == 0);
    CHECK(memcmp(params[0], params[2], n * sizeof(float)) != 0);
    for (int run = 0; run < 3; run++) ffnc_model_destroy(models[run]);
    free(x);
}

/* Predictions over more rows than one inference step holds. */
static void test_predict_many_rows(void) {
    const size_t sizes[3] = {5, 7, 3};
    const ffnc_activation acts[2] = {FFNC_ACT_TANH, FFNC_ACT_IDENTITY};
    enum { ROWS = 700 };
    ffnc_model *m = make(FFNC_F64, 2, sizes, acts, FFNC_LOSS_MSE, 9);
    if (!m) return;
    static double x[ROWS * 5], y[ROWS * 3], ref_p[ROWS * 3];
    unsigned long long s = 5;
    for (int i = 0; i < ROWS * 5; i++) x[i] = check_uniform(&s, -2, 2);
    CHECK_OK(ffnc_model_predict(m, ROWS, x, y));
    ref_net r = {2, {5, 7, 3}, {FFNC_ACT_TANH, FFNC_ACT_IDENTITY}, FFNC_LOSS_MSE, {0}, {0}, {0}, 0};
    ref_layout(&r);
    copy_params_to_ref(m, &r);
    for (int row = 0; row < ROWS; row++) {
        double h[MAXL + 1][MAXW];
        ref_forward(&r, x + row * 5, h);
        for (int c = 0; c < 3; c++) ref_p[row * 3 + c] = h[2][c];
    }
    int ok = 1;
    for (int i = 0; i < ROWS * 3; i++) ok &= check_close_(y[i], ref_p[i], 1e-12, 1e-14);
    CHECK(ok);
    ffnc_model_destroy(m);
}

static void test_argument_errors(void) {
    const size_t sizes[3] = {2, 3, 2}, zero[3] = {2, 0, 2};
    const ffnc_activation acts[2] = {FFNC_ACT_RELU, FFNC_ACT_IDENTITY};
    const ffnc_activation bad_acts[2] = {(ffnc_activation)FFNC_ACT_COUNT, FFNC_ACT_IDENTITY};
    const ffnc_activation leaky[2] = {FFNC_ACT_LEAKY_RELU, FFNC_ACT_IDENTITY};
    const double bad_alpha[2] = {-1, 0};
    ffnc_model *m = NULL;
    ffnc_model_desc d = {FFNC_F32, 2, sizes, acts, NULL, FFNC_LOSS_SOFTMAX_XENT};
    CHECK_STATUS(ffnc_model_create(NULL, 0, &m), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_model_create(&d, 0, NULL), FFNC_ERR_NULL_POINTER);
    d.sizes = zero;
    CHECK_STATUS(ffnc_model_create(&d, 0, &m), FFNC_ERR_INVALID_ARGUMENT);
    d.sizes = sizes, d.activations = bad_acts;
    CHECK_STATUS(ffnc_model_create(&d, 0, &m), FFNC_ERR_INVALID_ARGUMENT);
    d.activations = leaky, d.alphas = bad_alpha;
    CHECK_STATUS(ffnc_model_create(&d, 0, &m), FFNC_ERR_INVALID_ARGUMENT);
    d.activations = acts, d.alphas = NULL, d.loss = (ffnc_loss)9;
    CHECK_STATUS(ffnc_model_create(&d, 0, &m), FFNC_ERR_INVALID_ARGUMENT);
    d.loss = FFNC_LOSS_SOFTMAX_XENT, d.dtype = (ffnc_dtype)5;
    CHECK_STATUS(ffnc_model_create(&d, 0, &m), FFNC_ERR_INVALID_DTYPE);
    d.dtype = FFNC_F32, d.n_layers = 0;
    CHECK_STATUS(ffnc_model_create(&d, 0, &m), FFNC_ERR_INVALID_ARGUMENT);
    const size_t huge[3] = {SIZE_MAX / 4, 8, 2};
    d.n_layers = 2, d.sizes = huge;
    CHECK_STATUS(ffnc_model_create(&d, 0, &m), FFNC_ERR_SIZE_OVERFLOW);
    CHECK(m == NULL);

    m = make(FFNC_F32, 2, sizes, acts, FFNC_LOSS_SOFTMAX_XENT, 0);
    if (!m) return;
    float x[4] = {0, 1, 1, 0}, out[4];
    int64_t labels[2] = {0, 2};
    void *p;
    size_t n;
    ffnc_model_params(m, &p, &n);
    float before[32];
    memcpy(before, p, n * sizeof(float));
    ffnc_train_config c;
    CHECK_OK(ffnc_train_config_init(&c, FFNC_OPTIMIZER_SGD));
    CHECK_STATUS(ffnc_train_config_init(&c, (ffnc_optimizer)7), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_model_train(m, &c, 2, x, labels, NULL), FFNC_ERR_LABEL_OUT_OF_RANGE);
    labels[1] = -1;
    CHECK_STATUS(ffnc_model_train(m, &c, 2, x, labels, NULL), FFNC_ERR_LABEL_OUT_OF_RANGE);
    labels[1] = 1;
    CHECK_STATUS(ffnc_model_train(m, &c, 0, x, labels, NULL), FFNC_ERR_EMPTY);
    CHECK_STATUS(ffnc_model_train(m, &c, 2, NULL, labels, NULL), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_model_train(m, NULL, 2, x, labels, NULL), FFNC_ERR_NULL_POINTER);
    c.batch_size = 0;
    CHECK_STATUS(ffnc_model_train(m, &c, 2, x, labels, NULL), FFNC_ERR_INVALID_ARGUMENT);
    c.batch_size = 1, c.epochs = 0;
    CHECK_STATUS(ffnc_model_train(m, &c, 2, x, labels, NULL), FFNC_ERR_INVALID_ARGUMENT);
    c.epochs = 1, c.learning_rate = -1;
    CHECK_STATUS(ffnc_model_train(m, &c, 2, x, labels, NULL), FFNC_ERR_INVALID_ARGUMENT);
    c.learning_rate = NAN;
    CHECK_STATUS(ffnc_model_train(m, &c, 2, x, labels, NULL), FFNC_ERR_INVALID_ARGUMENT);
    c.learning_rate = 0.1, c.optimizer = FFNC_OPTIMIZER_MOMENTUM, c.momentum = 1;
    CHECK_STATUS(ffnc_model_train(m, &c, 2, x, labels, NULL), FFNC_ERR_INVALID_ARGUMENT);
    c.optimizer = (ffnc_optimizer)3;
    CHECK_STATUS(ffnc_model_train(m, &c, 2, x, labels, NULL), FFNC_ERR_INVALID_ARGUMENT);
    CHECK(memcmp(before, p, n * sizeof(float)) == 0);
    CHECK_STATUS(ffnc_model_predict(m, 0, x, out), FFNC_ERR_EMPTY);
    CHECK_STATUS(ffnc_model_predict(m, 2, x, NULL), FFNC_ERR_NULL_POINTER);
    double loss;
    CHECK_STATUS(ffnc_model_evaluate(m, 2, x, NULL, &loss, NULL), FFNC_ERR_NULL_POINTER);
    labels[1] = 5;
    CHECK_STATUS(ffnc_model_evaluate(m, 2, x, labels, &loss, NULL), FFNC_ERR_LABEL_OUT_OF_RANGE);
    CHECK_STATUS(ffnc_model_params(NULL, &p, &n), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_model_init(NULL, 0), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_model_save(m, NULL, 0), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_model_load(NULL, &m), FFNC_ERR_NULL_POINTER);
    ffnc_model_destroy(m);
    ffnc_model_destroy(NULL);

    /* a model without a loss predicts its raw outputs and refuses to train */
    m = make(FFNC_F32, 2, sizes, acts, FFNC_LOSS_NONE, 0);
    if (!m) return;
    c.optimizer = FFNC_OPTIMIZER_SGD, c.momentum = 0.9;
    CHECK_STATUS(ffnc_model_train(m, &c, 2, x, labels, NULL), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_model_evaluate(m, 2, x, labels, &loss, NULL), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_OK(ffnc_model_predict(m, 2, x, out));
    ffnc_model_destroy(m);
}

/* XOR, the classic: exact outputs after training, in both dtypes. */
static void test_xor(void) {
    const size_t sizes[3] = {2, 8, 2};
    const ffnc_activation acts[2] = {FFNC_ACT_TANH, FFNC_ACT_IDENTITY};
    for (int dt = FFNC_F32; dt <= FFNC_F64; dt++) {
        ffnc_model *m = make((ffnc_dtype)dt, 2, sizes, acts, FFNC_LOSS_SOFTMAX_XENT, 1);
        if (!m) return;
        float xf[8] = {0, 0, 0, 1, 1, 0, 1, 1};
        double xd[8] = {0, 0, 0, 1, 1, 0, 1, 1};
        int64_t y[4] = {0, 1, 1, 0};
        const void *x = dt == FFNC_F32 ? (const void *)xf : (const void *)xd;
        ffnc_train_config c;
        ffnc_train_config_init(&c, FFNC_OPTIMIZER_ADAM);
        c.learning_rate = 0.05, c.batch_size = 4, c.epochs = 300;
        double losses[300];
        CHECK_OK(ffnc_model_train(m, &c, 4, x, y, losses));
        CHECK(losses[299] < 0.01 && losses[299] < losses[0]);
        double loss, accuracy;
        CHECK_OK(ffnc_model_evaluate(m, 4, x, y, &loss, &accuracy));
        CHECK(accuracy == 1.0);
        ffnc_model_destroy(m);
    }
}

static char path_buf[2][256];
static const char *temp_path(int i, const char *what) {
    snprintf(path_buf[i], sizeof path_buf[i], "test_model_%ld_%s.safetensors", (long)getpid(),
             what);
    return path_buf[i];
}

/* Save, load, compare; resume training from a checkpoint bit for bit. */
static void test_checkpoint_round_trip(void) {
    const size_t sizes[4] = {4, 6, 5, 3};
    const ffnc_activation acts[3] = {FFNC_ACT_LEAKY_RELU, FFNC_ACT_ELU, FFNC_ACT_IDENTITY};
    const double alphas[3] = {0.2, 0.7, 0};
    enum { ROWS = 40 };
    for (int opt = FFNC_OPTIMIZER_SGD; opt <= FFNC_OPTIMIZER_ADAM; opt++) {
        ffnc_model_desc d = {FFNC_F32, 3, sizes, acts, alphas, FFNC_LOSS_SOFTMAX_XENT};
        ffnc_model *m = NULL;
        CHECK_OK(ffnc_model_create(&d, 4, &m));
        if (!m) return;
        float x[ROWS * 4];
        int64_t y[ROWS];
        unsigned long long s = 17;
        for (int i = 0; i < ROWS * 4; i++) x[i] = (float)check_uniform(&s, -1, 1);
        for (int i = 0; i < ROWS; i++) y[i] = i % 3;
        ffnc_train_config c;
        ffnc_train_config_init(&c, (ffnc_optimizer)opt);
        c.batch_size = 8, c.epochs = 3, c.nesterov = 1;
        CHECK_OK(ffnc_model_train(m, &c, ROWS, x, y, NULL));
        const char *path = temp_path(0, "ckpt");
        CHECK_OK(ffnc_model_save(m, path, 1));
        ffnc_model *back = NULL;
        CHECK_OK(ffnc_model_load(path, &back));
        if (!back) return;
        ffnc_model_desc db;
        ffnc_model_get_desc(back, &db);
        CHECK(db.dtype == FFNC_F32 && db.n_layers == 3 && db.loss == FFNC_LOSS_SOFTMAX_XENT);
        for (int l = 0; l < 3; l++) {
            CHECK(db.sizes[l + 1] == sizes[l + 1] && db.activations[l] == acts[l]);
            if (l < 2) CHECK(db.alphas[l] == alphas[l]);
        }
        void *p1, *p2;
        size_t n1, n2;
        ffnc_model_params(m, &p1, &n1);
        ffnc_model_params(back, &p2, &n2);
        CHECK(n1 == n2 && memcmp(p1, p2, n1 * sizeof(float)) == 0);
        float pred1[ROWS * 3], pred2[ROWS * 3];
        CHECK_OK(ffnc_model_predict(m, ROWS, x, pred1));
        CHECK_OK(ffnc_model_predict(back, ROWS, x, pred2));
        CHECK(memcmp(pred1, pred2, sizeof pred1) == 0);
        /* resuming: the optimizer state and step came along (shuffling aside: off here) */
        c.shuffle = 0, c.epochs = 2;
        CHECK_OK(ffnc_model_train(m, &c, ROWS, x, y, NULL));
        CHECK_OK(ffnc_model_train(back, &c, ROWS, x, y, NULL));
        CHECK(memcmp(p1, p2, n1 * sizeof(float)) == 0);
        /* without the optimizer: same weights, but momentum / Adam start over */
        CHECK_OK(ffnc_model_save(m, path, 0));
        ffnc_model *fresh = NULL;
        CHECK_OK(ffnc_model_load(path, &fresh));
        if (!fresh) return;
        void *p3;
        ffnc_model_params(fresh, &p3, &n2);
        CHECK(memcmp(p1, p3, n1 * sizeof(float)) == 0);
        CHECK_OK(ffnc_model_train(m, &c, ROWS, x, y, NULL));
        CHECK_OK(ffnc_model_train(fresh, &c, ROWS, x, y, NULL));
        int same = memcmp(p1, p3, n1 * sizeof(float)) == 0;
        CHECK(opt == FFNC_OPTIMIZER_SGD ? same : !same);
        remove(path);
        ffnc_model_destroy(m);
        ffnc_model_destroy(back);
        ffnc_model_destroy(fresh);
    }
}

/* A file as Python's ffnc.io writes it for the MLP in the notes (64-32-10), with the model
 * JSON verbatim; named layers; and files the loader must refuse. */
static ffnc_status save_file(const char *path, const char *model_json, const char *names[2],
                             size_t in, size_t hidden, size_t out, ffnc_tensor_dtype dtype,
                             const char *format) {
    static double data[64 * 32 + 32 + 32 * 10 + 10];
    unsigned long long s = 1;
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++) data[i] = check_uniform(&s, -1, 1);
    static float data32[sizeof data / sizeof data[0]];
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++) data32[i] = (float)data[i];
    const void *base = dtype == FFNC_TENSOR_F32 ? (const void *)data32 : (const void *)data;
    size_t es = ffnc_tensor_dtype_size(dtype);
    ffnc_safetensors_writer *w = NULL;
    ffnc_safetensors_writer_create(&w);
    size_t s0[2] = {in, hidden}, s1[2] = {hidden, out};
    char name[64];
    snprintf(name, sizeof name, "%s.weight", names[0]);
    ffnc_safetensors_writer_add(w, name, dtype, 2, s0, base);
    snprintf(name, sizeof name, "%s.bias", names[0]);
    ffnc_safetensors_writer_add(w, name, dtype, 1, &s0[1], (const char *)base + in * hidden * es);
    snprintf(name, sizeof name, "%s.weight", names[1]);
    ffnc_safetensors_writer_add(w, name, dtype, 2, s1, (const char *)base + (in + 1) * hidden * es);
    snprintf(name, sizeof name, "%s.bias", names[1]);
    ffnc_safetensors_writer_add(w, name, dtype, 1, &s1[1],
                                (const char *)base + ((in + 1) * hidden + hidden * out) * es);
    if (format) ffnc_safetensors_writer_add_metadata(w, "format", format);
    ffnc_safetensors_writer_add_metadata(w, "format_version", "1");
    if (model_json) ffnc_safetensors_writer_add_metadata(w, "model", model_json);
    ffnc_status st = ffnc_safetensors_writer_save(w, path);
    ffnc_safetensors_writer_free(w);
    return st;
}

static const char *python_json =
    "{\"class\": \"Sequential\", \"dtype\": \"float32\", \"input_shape\": [64], "
    "\"layers\": [{\"class\": \"Dense\", \"units\": 32, \"activation\": \"relu\", \"alpha\": "
    "null, \"use_bias\": true}, {\"class\": \"Dense\", \"units\": 10, \"activation\": "
    "\"identity\", \"alpha\": null, \"use_bias\": true}], \"loss\": {\"class\": "
    "\"softmax_cross_entropy\"}}";

static ffnc_status load_status(const char *path) {
    ffnc_model *m = (ffnc_model *)&path;
    ffnc_status s = ffnc_model_load(path, &m);
    if (s != FFNC_OK && m != NULL) return FFNC_ERR_INVALID_ARGUMENT; /* dangling handle */
    ffnc_model_destroy(m);
    return s;
}

static void test_python_style_files(void) {
    const char *path = temp_path(1, "py");
    const char *plain[2] = {"0", "1"};
    CHECK_OK(save_file(path, python_json, plain, 64, 32, 10, FFNC_TENSOR_F32, "ffnc"));
    ffnc_model *m = NULL;
    CHECK_OK(ffnc_model_load(path, &m));
    if (m) {
        ffnc_model_desc d;
        ffnc_model_get_desc(m, &d);
        CHECK(d.sizes[0] == 64 && d.sizes[1] == 32 && d.sizes[2] == 10);
        CHECK(d.activations[0] == FFNC_ACT_RELU && d.activations[1] == FFNC_ACT_IDENTITY);
        /* and saving it back writes the model JSON byte for byte as Python does */
        const char *again = temp_path(0, "again");
        CHECK_OK(ffnc_model_save(m, again, 1));
        ffnc_safetensors *f = NULL;
        CHECK_OK(ffnc_safetensors_load(again, &f));
        const char *value = "";
        if (f) CHECK_OK(ffnc_safetensors_metadata(f, "model", &value));
        CHECK(strcmp(value, python_json) == 0);
        if (f) CHECK_STATUS(ffnc_safetensors_metadata(f, "optimizer", &value), FFNC_ERR_NOT_FOUND);
        ffnc_safetensors_free(f);
        remove(again);
        ffnc_model_destroy(m);
    }
    const char *named[2] = {"hidden", "out"};
    char json[1024];
    snprintf(json, sizeof json,
             "{\"class\": \"Sequential\", \"dtype\": \"float64\", \"input_shape\": [64], "
             "\"layers\": [{\"class\": \"Dense\", \"units\": 32, \"activation\": \"leaky_relu\", "
             "\"alpha\": 0.3, \"use_bias\": true, \"name\": \"hidden\"}, {\"class\": \"Dense\", "
             "\"units\": 10, \"activation\": \"sigmoid\", \"alpha\": null, \"use_bias\": true, "
             "\"name\": \"out\", \"kernel_initializer\": {\"class\": \"he_normal\"}}], "
             "\"loss\": null, \"name\": \"net\", \"seed\": 1037023983}");
    CHECK_OK(save_file(path, json, named, 64, 32, 10, FFNC_TENSOR_F64, "ffnc"));
    CHECK_OK(load_status(path));

    /* refusals */
    CHECK_OK(save_file(path, python_json, plain, 64, 32, 10, FFNC_TENSOR_F64, "ffnc"));
    CHECK_STATUS(load_status(path), FFNC_ERR_FORMAT); /* dtype differs from the config */
    CHECK_OK(save_file(path, python_json, plain, 64, 31, 10, FFNC_TENSOR_F32, "ffnc"));
    CHECK_STATUS(load_status(path), FFNC_ERR_FORMAT); /* shapes differ */
    CHECK_OK(save_file(path, python_json, named, 64, 32, 10, FFNC_TENSOR_F32, "ffnc"));
    CHECK_STATUS(load_status(path), FFNC_ERR_FORMAT); /* tensor names differ */
    CHECK_OK(save_file(path, python_json, plain, 64, 32, 10, FFNC_TENSOR_F32, NULL));
    CHECK_STATUS(load_status(path), FFNC_ERR_FORMAT); /* not an ffnc checkpoint */
    CHECK_OK(save_file(path, NULL, plain, 64, 32, 10, FFNC_TENSOR_F32, "ffnc"));
    CHECK_STATUS(load_status(path), FFNC_ERR_FORMAT); /* no model */
    CHECK_OK(save_file(path, "{\"class\": \"Sequential\"", plain, 64, 32, 10, FFNC_TENSOR_F32,
                       "ffnc"));
    CHECK_STATUS(load_status(path), FFNC_ERR_FORMAT); /* broken JSON */
    const char *unsupported[] = {
        "{\"class\": \"Model\", \"dtype\": \"float32\", \"input_shape\": [64], \"layers\": []}",
        "{\"class\": \"Sequential\", \"dtype\": \"float16\", \"input_shape\": [64], "
        "\"layers\": [{\"class\": \"Dense\", \"units\": 32, \"activation\": \"relu\"}]}",
        "{\"class\": \"Sequential\", \"dtype\": \"float32\", \"input_shape\": [64], "
        "\"layers\": [{\"class\": \"Dropout\", \"rate\": 0.5}]}",
        "{\"class\": \"Sequential\", \"dtype\": \"float32\", \"input_shape\": [64], "
        "\"layers\": [{\"class\": \"Dense\", \"units\": 32, \"activation\": \"swish\"}]}",
        "{\"class\": \"Sequential\", \"dtype\": \"float32\", \"input_shape\": [64], "
        "\"layers\": [{\"class\": \"Dense\", \"units\": 32, \"activation\": \"relu\", "
        "\"use_bias\": false}]}",
        "{\"class\": \"Sequential\", \"dtype\": \"float32\", \"input_shape\": [64], "
        "\"layers\": [{\"class\": \"Dense\", \"units\": 32, \"activation\": \"relu\", "
        "\"kernel_regularizer\": 0.1}]}",
        "{\"class\": \"Sequential\", \"dtype\": \"float32\", \"input_shape\": [8, 8], "
        "\"layers\": [{\"class\": \"Dense\", \"units\": 32, \"activation\": \"relu\"}]}",
        "{\"class\": \"Sequential\", \"dtype\": \"float32\", \"input_shape\": [64], "
        "\"layers\": [{\"class\": \"Dense\", \"units\": 32, \"activation\": \"relu\"}], "
        "\"loss\": {\"class\": \"mdn\"}}",
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        CHECK_OK(save_file(path, unsupported[i], plain, 64, 32, 10, FFNC_TENSOR_F32, "ffnc"));
        ffnc_status s = load_status(path);
        check_total++;
        if (s != FFNC_ERR_UNSUPPORTED) {
            check_failed++;
            fprintf(stderr, "unsupported config %zu gave status %d\n", i, (int)s);
        }
    }
    CHECK_STATUS(load_status("no/such/checkpoint.safetensors"), FFNC_ERR_IO);
    remove(path);
}

int main(void) {
    test_training_matches_reference();
    test_momentum_into_velocity_matches_reference();
    test_initialization();
    test_determinism();
    test_predict_many_rows();
    test_argument_errors();
    test_xor();
    test_checkpoint_round_trip();
    test_python_style_files();
    return check_report("model");
}
