/* A fuzz-style test of the argument checks of every public function in ffnc.h: NULL for each
 * pointer, empty, absurd and overflowing sizes, invalid enums, out-of-domain and non-finite
 * hyper-parameters, random plans (structured and raw bytes), random model descriptions and
 * training settings, and random or mutated bytes as safetensors files and checkpoints, mixed
 * with valid calls, all drawn from one fixed seed.
 *
 * Every call must return an ffnc_status (never crash, abort, print or exit). A call given a
 * defect must be rejected with a status that names one of its defects and must leave its
 * output arrays untouched; a valid call must succeed. Arrays are allocated at their exact
 * sizes, so under AddressSanitizer (as CI runs the C tests) any access past what a call was
 * allowed to touch is reported, and LeakSanitizer checks that no path leaks. Plans that
 * ffnc_plan_create accepts are run over exactly-sized inputs: its promise that a created plan
 * stays inside its arenas and inputs is checked the same way. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif

#ifdef FUZZ_ASAN
/* An allocation that fails must give NULL, as malloc does, so the library can report
 * FFNC_ERR_OUT_OF_MEMORY: ASan's default is to stop the process instead. The cap makes every
 * request far beyond what these small cases need fail that way, so a loader that allocated
 * what a file declares (rather than what it holds) is caught by its status. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "allocator_may_return_null=1:max_allocation_size_mb=256";
}
#endif

/* Rounds of the main loop; each calls every fuzzer once (the heavier ones every few rounds). */
#define ROUNDS 600

/* ---- random numbers (SplitMix64, fixed seed) ---------------------------------------------- */

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static size_t below(size_t n) { return (size_t)(next_u64() % n); }
static int chance(unsigned percent) { return below(100) < percent; }
static double uniform(double lo, double hi) {
    return lo + (hi - lo) * (double)(next_u64() >> 11) * 0x1.0p-53;
}

#define PICK(array) ((array)[below(sizeof(array) / sizeof *(array))])

/* ---- results -------------------------------------------------------------------------------- */

static FILE *report;   /* the real stderr while the library's output is captured */
static long calls;     /* library calls made */
static long plans_run; /* random or mutated plans ffnc_plan_create accepted, then run */
static long mutants_accepted; /* mutated files the safetensors parser or the loader accepted */
static long round_no;  /* the round, to find a failure again */

static void verify(int ok, const char *fn, const char *what, int status) {
    check_total++;
    if (ok) return;
    check_failed++;
    fprintf(report, "test_api_fuzz: round %ld: %s: %s (status %d: %s)\n", round_no, fn, what,
            status, ffnc_status_string((ffnc_status)status));
}

/* A status code ffnc defines: one ffnc_status_string has a sentence for. */
static int is_status(int s) {
    return s >= 0 && s < 32 &&
           strcmp(ffnc_status_string((ffnc_status)s), "unknown ffnc status code") != 0;
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(report, "test_api_fuzz: the test itself ran out of memory\n");
        exit(2);
    }
    return p;
}

/* One call: the defects it was given and the arrays it may not change when it rejects. */
#define MAX_ARRAYS 12
typedef struct call {
    const char *fn;
    unsigned expected; /* bit s: status s names a defect of this call; 0: the call is valid */
    int n_arrays;
    void *array[MAX_ARRAYS];
    void *before[MAX_ARRAYS];
    size_t bytes[MAX_ARRAYS];
} call;

static void start(call *c, const char *fn) {
    memset(c, 0, sizeof *c);
    c->fn = fn;
}

static void reject(call *c, ffnc_status s) { c->expected |= 1u << s; }

/* A defect the API layer checks before any element is touched (bad labels are found by the
 * kernels, which read them). */
static int has_argument_defect(const call *c) {
    return (c->expected & ~(1u << FFNC_ERR_LABEL_OUT_OF_RANGE)) != 0;
}

static void *track(call *c, void *p, size_t bytes) {
    if (c->n_arrays == MAX_ARRAYS) {
        fprintf(report, "test_api_fuzz: too many arrays in %s\n", c->fn);
        exit(2);
    }
    c->array[c->n_arrays] = p;
    c->bytes[c->n_arrays] = bytes;
    c->n_arrays++;
    return p;
}

static size_t width(int dtype) { return dtype == FFNC_F32 ? sizeof(float) : sizeof(double); }

static void fill(void *p, int dtype, size_t count) {
    for (size_t i = 0; i < count; i++) {
        double v = uniform(-2, 2);
        if (dtype == FFNC_F32) ((float *)p)[i] = (float)v;
        else ((double *)p)[i] = v;
    }
}

/* `count` random values of `dtype` (8 bytes each for a dtype that is not one), allocated at
 * exactly that size. */
static void *values(call *c, int dtype, size_t count) {
    void *p = xmalloc(count * width(dtype));
    fill(p, dtype, count);
    return track(c, p, count * width(dtype));
}

/* Class labels in [0, classes). */
static int64_t *labels(call *c, size_t rows, size_t classes) {
    int64_t *p = xmalloc(rows * sizeof(int64_t));
    for (size_t r = 0; r < rows; r++) p[r] = classes ? (int64_t)below(classes) : 0;
    return track(c, p, rows * sizeof(int64_t));
}

/* Makes one label of a non-empty batch fall outside [0, classes). */
static void spoil_label(call *c, int64_t *p, size_t rows, size_t classes) {
    const int64_t bad[] = {-1, (int64_t)classes, (int64_t)classes + 7, INT64_MAX, INT64_MIN};
    p[below(rows)] = PICK(bad);
    reject(c, FFNC_ERR_LABEL_OUT_OF_RANGE);
}

static void run(call *c, ffnc_status s) {
    calls++;
    verify(is_status(s), c->fn, "returned a value that is not an ffnc_status", s);
    if (c->expected) {
        verify(s != FFNC_OK, c->fn, "accepted an invalid call", s);
        verify(s == FFNC_OK || (is_status(s) && ((c->expected >> s) & 1u)), c->fn,
               "rejected an invalid call with a status that names none of its defects", s);
        if (s != FFNC_OK)
            for (int i = 0; i < c->n_arrays; i++)
                verify(memcmp(c->before[i], c->array[i], c->bytes[i]) == 0, c->fn,
                       "changed an array while rejecting the call", s);
    } else {
        verify(s == FFNC_OK, c->fn, "rejected a valid call", s);
    }
    for (int i = 0; i < c->n_arrays; i++) {
        free(c->array[i]);
        free(c->before[i]);
    }
    c->n_arrays = 0;
}

static void snapshot(call *c) {
    for (int i = 0; i < c->n_arrays; i++) {
        c->before[i] = xmalloc(c->bytes[i]);
        memcpy(c->before[i], c->array[i], c->bytes[i]);
    }
}

/* Snapshot the arrays, make the call, judge it. */
#define CALL(c, expr)            \
    do {                         \
        snapshot(c);             \
        run((c), (expr));        \
    } while (0)

/* ---- argument generators ------------------------------------------------------------------ */

static size_t small_size(void) { return chance(20) ? 0 : 1 + below(6); }

static size_t huge_size(void) {
    const size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2, SIZE_MAX / 3 + 1,
                           (size_t)1 << 32, (size_t)1 << 40, (size_t)1 << 62};
    return PICK(huge);
}

/* a * b overflows size_t. */
static void overflowing_pair(size_t *a, size_t *b) {
    size_t x = ((size_t)1 << (32 + below(31))) | below(1000);
    size_t y = SIZE_MAX / x + 1 + below(1000);
    if (chance(50)) *a = x, *b = y;
    else *a = y, *b = x;
}

/* After a defect checked before any element is touched, a size may as well be absurd: the
 * call must still be rejected without reading. Such a size may overflow a product too. An
 * overflowing pair already drawn stays as it is (replacing one of its sizes could mend it). */
static size_t maybe_huge(call *c, size_t n) {
    if (!has_argument_defect(c) || (c->expected & (1u << FFNC_ERR_SIZE_OVERFLOW)) ||
        !chance(25))
        return n;
    reject(c, FFNC_ERR_SIZE_OVERFLOW);
    return huge_size();
}

/* An enum value that names nothing, for an enum of `count` values from 0. */
static int bad_enum(int count) {
    const int bad[] = {-1, count, count + 1, 1000, INT_MAX, INT_MIN};
    return PICK(bad);
}

static int pick_dtype(call *c) {
    if (chance(6)) {
        reject(c, FFNC_ERR_INVALID_DTYPE);
        return bad_enum(2);
    }
    return chance(50) ? FFNC_F32 : FFNC_F64;
}

static int pick_activation(call *c) {
    if (chance(6)) {
        reject(c, FFNC_ERR_INVALID_ARGUMENT);
        return bad_enum(FFNC_ACT_COUNT);
    }
    return (int)below(FFNC_ACT_COUNT);
}

static int takes_alpha(int act) { return act == FFNC_ACT_LEAKY_RELU || act == FFNC_ACT_ELU; }

/* The alpha of `act`: any value is fine for activations that ignore it. */
static double pick_alpha(call *c, int act) {
    const double good[] = {0, 0.01, 0.5, 1, 3};
    const double bad[] = {-0.5, -INFINITY, INFINITY, NAN};
    if (chance(10)) {
        if (takes_alpha(act)) reject(c, FFNC_ERR_INVALID_ARGUMENT);
        return PICK(bad);
    }
    return PICK(good);
}

/* A hyper-parameter from its valid values, or (8% of the time) from its invalid ones. */
static double pick_value(call *c, const double *good, size_t n_good, const double *bad,
                         size_t n_bad) {
    if (n_bad && chance(8)) {
        reject(c, FFNC_ERR_INVALID_ARGUMENT);
        return bad[below(n_bad)];
    }
    return good[below(n_good)];
}
#define PICK_VALUE(c, good, bad) \
    pick_value((c), (good), sizeof(good) / sizeof *(good), (bad), sizeof(bad) / sizeof *(bad))

/* A loss or gradient scale: any finite value. */
static double pick_scale(call *c) {
    const double good[] = {0, 1, -2.5, 1e-3, 1e300};
    const double bad[] = {NAN, INFINITY, -INFINITY};
    return PICK_VALUE(c, good, bad);
}

/* A learning rate or weight decay: finite (in float too, for FFNC_F32) and >= 0. */
static double pick_rate(call *c, int dtype) {
    const double good[] = {0, 1e-3, 0.1, 1, 1e30};
    const double bad[] = {-1e-3, -1, NAN, INFINITY, -INFINITY};
    const double bad_f32[] = {-1e-3, NAN, INFINITY, 1e39, -1e39};
    return dtype == FFNC_F32 ? PICK_VALUE(c, good, bad_f32) : PICK_VALUE(c, good, bad);
}

/* momentum, beta1, beta2, rmsprop's alpha: in [0, 1). */
static double pick_decay(call *c) {
    const double good[] = {0, 0.5, 0.9, 0.999};
    const double bad[] = {-0.1, 1, 1.5, NAN, INFINITY, -INFINITY};
    return PICK_VALUE(c, good, bad);
}

/* eps: > 0 and finite, and not 0 once rounded to float for FFNC_F32. */
static double pick_eps(call *c, int dtype) {
    const double good[] = {1e-8, 1e-3, 1};
    const double bad[] = {0, -1e-8, NAN, INFINITY};
    const double bad_f32[] = {0, -1e-8, NAN, INFINITY, 1e-50, 1e39};
    return dtype == FFNC_F32 ? PICK_VALUE(c, good, bad_f32) : PICK_VALUE(c, good, bad);
}

/* `p` where the call may leave it out (NULL is then fine) or needs it (NULL is a defect). */
static void *need(call *c, void *p, int needed) {
    if (needed && chance(7)) {
        reject(c, FFNC_ERR_NULL_POINTER);
        return NULL;
    }
    if (!needed && chance(30)) return NULL;
    return p;
}

/* Forces a supported ISA path at random, so valid calls run every kernel variant. */
static void pick_isa(void) {
    int isa = (int)below(3);
    if (ffnc_isa_supported((ffnc_isa)isa)) ffnc_set_isa((ffnc_isa)isa);
}

/* ---- element-wise kernels ----------------------------------------------------------------- */

static void fuzz_activation(void) {
    call c;
    int backward = chance(50);
    start(&c, backward ? "ffnc_activation_backward" : "ffnc_activation_forward");
    int dt = pick_dtype(&c), act = pick_activation(&c);
    double alpha = pick_alpha(&c, act);
    size_t n_alloc = small_size(), n = maybe_huge(&c, n_alloc);
    void *src = need(&c, values(&c, dt, n_alloc), n > 0), *saved = NULL;
    if (backward) saved = need(&c, values(&c, dt, n_alloc), n > 0);
    void *dst = values(&c, dt, n_alloc);
    dst = chance(20) && src ? src : need(&c, dst, n > 0); /* in place is allowed */
    if (backward)
        CALL(&c, ffnc_activation_backward((ffnc_dtype)dt, (ffnc_activation)act, alpha, n, src,
                                          saved, dst));
    else
        CALL(&c, ffnc_activation_forward((ffnc_dtype)dt, (ffnc_activation)act, alpha, n, src,
                                         dst));
}

static void fuzz_prelu(void) {
    call c;
    int backward = chance(50);
    start(&c, backward ? "ffnc_prelu_backward" : "ffnc_prelu_forward");
    int dt = pick_dtype(&c);
    size_t rows_a = small_size(), cols_a = small_size(), rows = rows_a, cols = cols_a;
    size_t n_alpha_a = chance(50) ? 1 : cols_a, n_alpha = n_alpha_a;
    if (chance(6)) {
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
        overflowing_pair(&rows, &cols);
        n_alpha = chance(50) ? 1 : cols;
    } else if (chance(6)) {
        const size_t bad[] = {0, 2, 3, 100};
        size_t b = PICK(bad);
        if (b != 1 && b != cols) {
            reject(&c, FFNC_ERR_INVALID_ARGUMENT);
            n_alpha = b;
        }
    }
    rows = maybe_huge(&c, rows);
    int any = rows != 0 && cols != 0;
    void *src = need(&c, values(&c, dt, rows_a * cols_a), any);
    void *alpha = need(&c, values(&c, dt, n_alpha_a ? n_alpha_a : 1), 1);
    void *dst = need(&c, values(&c, dt, rows_a * cols_a), any);
    if (!backward) {
        CALL(&c, ffnc_prelu_forward((ffnc_dtype)dt, rows, cols, src, alpha, n_alpha, dst));
        return;
    }
    void *diff_dst = need(&c, values(&c, dt, rows_a * cols_a), any);
    void *diff_alpha = need(&c, values(&c, dt, n_alpha_a ? n_alpha_a : 1), 1);
    CALL(&c, ffnc_prelu_backward((ffnc_dtype)dt, rows, cols, diff_dst, src, alpha, n_alpha, dst,
                                 diff_alpha, chance(50)));
}

static void fuzz_bias(void) {
    call c;
    int backward = chance(50);
    start(&c, backward ? "ffnc_bias_backward" : "ffnc_bias_forward");
    int dt = pick_dtype(&c);
    size_t rows_a = small_size(), cols_a = small_size(), rows = rows_a, cols = cols_a;
    if (chance(6)) {
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
        overflowing_pair(&rows, &cols);
    }
    rows = maybe_huge(&c, rows);
    int any = rows != 0 && cols != 0;
    void *src = values(&c, dt, rows_a * cols_a), *bias = values(&c, dt, cols_a);
    if (!backward) {
        src = need(&c, src, any);
        bias = need(&c, bias, any);
        void *dst = chance(20) && src ? src : need(&c, values(&c, dt, rows_a * cols_a), any);
        CALL(&c, ffnc_bias_forward((ffnc_dtype)dt, rows, cols, src, bias, dst));
    } else {
        src = need(&c, src, any);
        bias = need(&c, bias, cols != 0);
        CALL(&c, ffnc_bias_backward((ffnc_dtype)dt, rows, cols, src, bias, chance(50)));
    }
}

/* ---- losses -------------------------------------------------------------------------------- */

static void fuzz_softmax_xent(void) {
    call c;
    int backward = chance(50);
    start(&c, backward ? "ffnc_softmax_xent_backward" : "ffnc_softmax_xent_forward");
    int dt = pick_dtype(&c);
    size_t rows_a = small_size(), classes_a = 1 + below(6), rows = rows_a, classes = classes_a;
    if (chance(5)) classes = classes_a = 0;
    int64_t *lab = labels(&c, rows_a, classes_a);
    if (rows > 0 && classes == 0) reject(&c, FFNC_ERR_LABEL_OUT_OF_RANGE); /* no label fits */
    else if (rows > 0 && chance(6)) spoil_label(&c, lab, rows, classes);
    if (chance(5)) {
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
        overflowing_pair(&rows, &classes);
    }
    double scale = pick_scale(&c);
    rows = maybe_huge(&c, rows);
    int any = rows != 0 && classes != 0;
    void *in = need(&c, values(&c, dt, rows_a * classes_a), any);
    const int64_t *l = need(&c, lab, rows != 0);
    void *out = chance(20) && in ? in : need(&c, values(&c, dt, rows_a * classes_a), any);
    if (backward) {
        CALL(&c, ffnc_softmax_xent_backward((ffnc_dtype)dt, rows, classes, in, l, scale, out));
    } else {
        double *loss = need(&c, track(&c, xmalloc(sizeof(double)), sizeof(double)), 1);
        CALL(&c, ffnc_softmax_xent_forward((ffnc_dtype)dt, rows, classes, in, l, scale, out,
                                           loss));
    }
}

static void fuzz_log_softmax(void) {
    call c;
    int backward = chance(50);
    start(&c, backward ? "ffnc_log_softmax_backward" : "ffnc_log_softmax_forward");
    int dt = pick_dtype(&c);
    size_t rows_a = small_size(), cols_a = small_size(), rows = rows_a, cols = cols_a;
    if (chance(6)) {
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
        overflowing_pair(&rows, &cols);
    }
    rows = maybe_huge(&c, rows);
    int any = rows != 0 && cols != 0;
    void *a = need(&c, values(&c, dt, rows_a * cols_a), any);
    void *out = chance(20) && a ? a : need(&c, values(&c, dt, rows_a * cols_a), any);
    void *dst = backward ? need(&c, values(&c, dt, rows_a * cols_a), any) : NULL;
    if (backward)
        CALL(&c, ffnc_log_softmax_backward((ffnc_dtype)dt, rows, cols, a, dst, out));
    else
        CALL(&c, ffnc_log_softmax_forward((ffnc_dtype)dt, rows, cols, a, out));
}

typedef ffnc_status (*pair_forward)(ffnc_dtype, size_t, const void *, const void *, double,
                                    double *);
typedef ffnc_status (*pair_backward)(ffnc_dtype, size_t, const void *, const void *, double,
                                     void *);

static void fuzz_pair_loss(void) {
    static const struct {
        const char *forward_name, *backward_name;
        pair_forward forward;
        pair_backward backward;
    } losses[] = {
        {"ffnc_bce_logits_forward", "ffnc_bce_logits_backward", ffnc_bce_logits_forward,
         ffnc_bce_logits_backward},
        {"ffnc_mse_forward", "ffnc_mse_backward", ffnc_mse_forward, ffnc_mse_backward},
        {"ffnc_l1_forward", "ffnc_l1_backward", ffnc_l1_forward, ffnc_l1_backward},
    };
    size_t which = below(3);
    int backward = chance(50);
    call c;
    start(&c, backward ? losses[which].backward_name : losses[which].forward_name);
    int dt = pick_dtype(&c);
    double scale = pick_scale(&c);
    size_t n_a = small_size(), n = maybe_huge(&c, n_a);
    void *a = need(&c, values(&c, dt, n_a), n > 0);
    void *b = need(&c, values(&c, dt, n_a), n > 0);
    if (backward) {
        void *diff = chance(20) && a ? a : need(&c, values(&c, dt, n_a), n > 0);
        CALL(&c, losses[which].backward((ffnc_dtype)dt, n, a, b, scale, diff));
    } else {
        double *loss = need(&c, track(&c, xmalloc(sizeof(double)), sizeof(double)), 1);
        CALL(&c, losses[which].forward((ffnc_dtype)dt, n, a, b, scale, loss));
    }
}

/* ---- optimizer updates --------------------------------------------------------------------- */

static void fuzz_optimizer(void) {
    call c;
    int kind = (int)below(6);
    const char *names[] = {"ffnc_sgd_update", "ffnc_momentum_update", "ffnc_adam_update",
                           "ffnc_rmsprop_update", "ffnc_global_norm", "ffnc_clip_by_global_norm"};
    start(&c, names[kind]);
    int dt = pick_dtype(&c);
    size_t n_a = small_size();
    if (kind == 4) {
        size_t n = maybe_huge(&c, n_a);
        void *src = need(&c, values(&c, dt, n_a), n > 0);
        double *norm = need(&c, track(&c, xmalloc(sizeof(double)), sizeof(double)), 1);
        CALL(&c, ffnc_global_norm((ffnc_dtype)dt, n, src, norm));
        return;
    }
    if (kind == 5) {
        const double good[] = {0.5, 1, 100, 1e300};
        const double bad[] = {0, -1, NAN, INFINITY, -INFINITY};
        double max_norm = PICK_VALUE(&c, good, bad);
        size_t n = maybe_huge(&c, n_a);
        void *grad = need(&c, values(&c, dt, n_a), n > 0);
        double *norm = need(&c, track(&c, xmalloc(sizeof(double)), sizeof(double)), 0);
        CALL(&c, ffnc_clip_by_global_norm((ffnc_dtype)dt, n, grad, max_norm, norm));
        return;
    }
    double lr = pick_rate(&c, dt), wd = pick_rate(&c, dt);
    if (kind == 0) {
        size_t n = maybe_huge(&c, n_a);
        void *p = need(&c, values(&c, dt, n_a), n > 0), *g = need(&c, values(&c, dt, n_a), n > 0);
        CALL(&c, ffnc_sgd_update((ffnc_dtype)dt, n, p, g, lr, wd));
    } else if (kind == 1) {
        double momentum = pick_decay(&c);
        size_t n = maybe_huge(&c, n_a);
        void *p = need(&c, values(&c, dt, n_a), n > 0), *g = need(&c, values(&c, dt, n_a), n > 0);
        void *v = need(&c, values(&c, dt, n_a), n > 0);
        CALL(&c, ffnc_momentum_update((ffnc_dtype)dt, n, p, g, v, lr, momentum, wd, chance(50)));
    } else if (kind == 2) {
        double beta1 = pick_decay(&c), beta2 = pick_decay(&c), eps = pick_eps(&c, dt);
        const int64_t good_steps[] = {1, 2, 17, 100000, INT64_MAX};
        int64_t step = PICK(good_steps);
        if (chance(6)) {
            const int64_t bad_steps[] = {0, -1, INT64_MIN};
            step = PICK(bad_steps);
            reject(&c, FFNC_ERR_INVALID_ARGUMENT);
        }
        size_t n = maybe_huge(&c, n_a);
        void *p = need(&c, values(&c, dt, n_a), n > 0), *g = need(&c, values(&c, dt, n_a), n > 0);
        void *m = need(&c, values(&c, dt, n_a), n > 0), *v = need(&c, values(&c, dt, n_a), n > 0);
        CALL(&c, ffnc_adam_update((ffnc_dtype)dt, n, p, g, m, v, step, lr, beta1, beta2, eps, wd,
                                  chance(50)));
    } else {
        double alpha = pick_decay(&c), eps = pick_eps(&c, dt), momentum = pick_decay(&c);
        int centered = chance(50);
        size_t n = maybe_huge(&c, n_a);
        void *p = need(&c, values(&c, dt, n_a), n > 0), *g = need(&c, values(&c, dt, n_a), n > 0);
        void *sq = need(&c, values(&c, dt, n_a), n > 0);
        /* momentum_buffer is needed only with momentum, grad_avg only when centered (a NaN
         * momentum is already a defect: either way the call is rejected) */
        void *mb = need(&c, values(&c, dt, n_a), n > 0 && momentum != 0 && !isnan(momentum));
        void *ga = need(&c, values(&c, dt, n_a), n > 0 && centered);
        CALL(&c, ffnc_rmsprop_update((ffnc_dtype)dt, n, p, g, sq, mb, ga, lr, alpha, eps, wd,
                                     momentum, centered));
    }
}

/* ---- GEMM and dense layers ----------------------------------------------------------------- */

/* A stored matrix's row stride: >= cols, or (a defect) less. */
static size_t pick_ld(call *c, size_t cols) {
    if (cols > 0 && chance(5)) {
        reject(c, FFNC_ERR_INVALID_ARGUMENT);
        return below(cols);
    }
    return cols + below(3);
}

static void fuzz_gemm(void) {
    call c;
    start(&c, "ffnc_gemm");
    int dt = pick_dtype(&c), ta = chance(50), tb = chance(50);
    size_t m = small_size(), n = small_size(), k = small_size();
    size_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    size_t lda = pick_ld(&c, a_cols), ldb = pick_ld(&c, b_cols), ldc = pick_ld(&c, n);
    size_t a_n = a_rows * lda, b_n = b_rows * ldb, c_n = m * ldc;
    if (chance(5)) {
        /* a stride whose span overflows: (rows - 1) * ld */
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
        reject(&c, FFNC_ERR_INVALID_ARGUMENT);
        size_t big = huge_size();
        m = big, k = big, lda = SIZE_MAX, ldc = SIZE_MAX;
    }
    const double scalars[] = {0, 1, -0.5, 2};
    double alpha = PICK(scalars), beta = PICK(scalars);
    int any_c = m != 0 && n != 0;
    void *a = need(&c, values(&c, dt, a_n), any_c && k != 0);
    void *b = need(&c, values(&c, dt, b_n), any_c && k != 0);
    void *cm = need(&c, values(&c, dt, c_n), any_c);
    CALL(&c, ffnc_gemm((ffnc_dtype)dt, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc));
}

static void fuzz_dense(void) {
    call c;
    int backward = chance(50);
    start(&c, backward ? "ffnc_dense_backward" : "ffnc_dense_forward");
    int dt = pick_dtype(&c), act = pick_activation(&c), trans = chance(50);
    double alpha = pick_alpha(&c, act);
    size_t m_a = small_size(), n_a = small_size(), k_a = small_size(), m = m_a, n = n_a, k = k_a;
    if (chance(5)) {
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
        overflowing_pair(chance(50) ? &m : &n, &k);
    }
    m = maybe_huge(&c, m);
    int mn = m != 0 && n != 0, mk = m != 0 && k != 0, kn = k != 0 && n != 0;
    if (!backward) {
        void *src = need(&c, values(&c, dt, m_a * k_a), mn && k != 0);
        void *w = need(&c, values(&c, dt, k_a * n_a), mn && k != 0);
        void *bias = need(&c, values(&c, dt, n_a), 0);
        void *pre = need(&c, values(&c, dt, m_a * n_a), 0);
        void *dst = need(&c, values(&c, dt, m_a * n_a), mn);
        CALL(&c, ffnc_dense_forward((ffnc_dtype)dt, m, n, k, src, w, trans, bias,
                                    (ffnc_activation)act, alpha, pre, dst));
        return;
    }
    int identity = act == FFNC_ACT_IDENTITY;
    void *diff_dst = need(&c, values(&c, dt, m_a * n_a), mn);
    void *saved = need(&c, values(&c, dt, m_a * n_a), mn && !identity);
    void *diff_pre = chance(20) ? diff_dst : need(&c, values(&c, dt, m_a * n_a), mn && !identity);
    if (diff_pre == NULL && mn && !identity) reject(&c, FFNC_ERR_NULL_POINTER);
    void *diff_src = need(&c, values(&c, dt, m_a * k_a), 0);
    void *diff_w = need(&c, values(&c, dt, k_a * n_a), 0);
    void *diff_b = need(&c, values(&c, dt, n_a), 0);
    void *src = need(&c, values(&c, dt, m_a * k_a), kn && diff_w != NULL);
    void *w = need(&c, values(&c, dt, k_a * n_a), mk && diff_src != NULL);
    CALL(&c, ffnc_dense_backward((ffnc_dtype)dt, m, n, k, src, w, trans, (ffnc_activation)act,
                                 alpha, saved, diff_dst, diff_pre, diff_src, diff_w, diff_b,
                                 chance(50), chance(50)));
}

/* Calls with no element but an absurd other size (rows of no column, ...) are valid and must
 * return at once: no array bounds that size, so a loop over it would spin (main's alarm turns
 * a hang into a failure). */
static void fuzz_empty_with_absurd_sizes(void) {
    const size_t H = huge_size();
    double one[2] = {0.5, 0.5}, loss;
    int dt = chance(50) ? FFNC_F32 : FFNC_F64;
    ffnc_dtype d = (ffnc_dtype)dt;
    struct {
        const char *fn;
        ffnc_status s;
    } results[] = {
        {"ffnc_prelu_forward", ffnc_prelu_forward(d, H, 0, NULL, one, 1, NULL)},
        {"ffnc_prelu_forward", ffnc_prelu_forward(d, 0, H, NULL, one, 1, NULL)},
        {"ffnc_prelu_backward", ffnc_prelu_backward(d, H, 0, NULL, NULL, one, 1, NULL, one, 0)},
        {"ffnc_bias_forward", ffnc_bias_forward(d, H, 0, NULL, NULL, NULL)},
        {"ffnc_bias_forward", ffnc_bias_forward(d, 0, H, NULL, NULL, NULL)},
        {"ffnc_bias_backward", ffnc_bias_backward(d, H, 0, NULL, NULL, 0)},
        {"ffnc_softmax_xent_forward",
         ffnc_softmax_xent_forward(d, 0, H, NULL, NULL, 1, NULL, &loss)},
        {"ffnc_softmax_xent_backward", ffnc_softmax_xent_backward(d, 0, H, NULL, NULL, 1, NULL)},
        {"ffnc_log_softmax_forward", ffnc_log_softmax_forward(d, H, 0, NULL, NULL)},
        {"ffnc_log_softmax_forward", ffnc_log_softmax_forward(d, 0, H, NULL, NULL)},
        {"ffnc_log_softmax_backward", ffnc_log_softmax_backward(d, H, 0, NULL, NULL, NULL)},
        {"ffnc_log_softmax_backward", ffnc_log_softmax_backward(d, 0, H, NULL, NULL, NULL)},
        {"ffnc_gemm", ffnc_gemm(d, 0, 0, H, 0, 0, 1, NULL, 0, NULL, 0, 0, NULL, 0)},
        {"ffnc_gemm", ffnc_gemm(d, 1, 1, 0, H, 0, 1, NULL, 0, NULL, 0, 1, NULL, H)},
        {"ffnc_dense_forward",
         ffnc_dense_forward(d, H, 0, 0, NULL, NULL, 0, NULL, FFNC_ACT_TANH, 0, NULL, NULL)},
        {"ffnc_dense_forward",
         ffnc_dense_forward(d, 0, 0, H, NULL, NULL, 1, NULL, FFNC_ACT_RELU, 0, NULL, NULL)},
        {"ffnc_dense_backward",
         ffnc_dense_backward(d, H, 0, 0, NULL, NULL, 0, FFNC_ACT_TANH, 0, NULL, NULL, NULL, NULL,
                             NULL, NULL, 0, 0)},
        {"ffnc_dense_backward",
         ffnc_dense_backward(d, 0, H, 0, NULL, NULL, 1, FFNC_ACT_RELU, 0, NULL, NULL, NULL, NULL,
                             NULL, NULL, 1, 1)},
        {"ffnc_dense_backward",
         ffnc_dense_backward(d, 0, 0, H, NULL, NULL, 0, FFNC_ACT_IDENTITY, 0, NULL, NULL, NULL,
                             NULL, NULL, NULL, 0, 0)},
    };
    for (size_t i = 0; i < sizeof results / sizeof *results; i++) {
        calls++;
        verify(results[i].s == FFNC_OK, results[i].fn,
               "rejected a call with no element but an absurd size", results[i].s);
    }

    /* The same in plans: instructions whose operands are all empty run at once. */
    const struct {
        int32_t opcode;
        int refs;
        ffnc_plan_size m, n, k;
    } empty[] = {
        {FFNC_OP_SOFTMAX, 2, {H, 0}, {0, 0}, {1, 0}},
        {FFNC_OP_LOG_SOFTMAX, 2, {0, H / 4}, {0, 0}, {0, 1}}, /* H / 4 at every batch */
        {FFNC_OP_SOFTMAX_BACKWARD, 3, {H, 0}, {0, 0}, {1, 0}},
        {FFNC_OP_LOG_SOFTMAX_BACKWARD, 3, {H, 0}, {0, 0}, {1, 0}},
        {FFNC_OP_TRANSPOSE, 2, {0, 0}, {H, 0}, {0, 0}},
        {FFNC_OP_SQDIST, 3, {H, 0}, {0, 0}, {0, 0}},
        {FFNC_OP_BIAS_FORWARD, 3, {H, 0}, {0, 0}, {0, 0}},
        {FFNC_OP_PRELU_FORWARD, 3, {H, 0}, {0, 0}, {0, 0}},
    };
    for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) {
        ffnc_plan_instr in;
        memset(&in, 0, sizeof in);
        in.opcode = empty[i].opcode;
        in.m = empty[i].m, in.n = empty[i].n, in.k = empty[i].k;
        for (int r = 0; r < empty[i].refs; r++) in.refs[r] = (ffnc_plan_ref){FFNC_PLAN_ACTS, 0, 0};
        if (in.opcode == FFNC_OP_PRELU_FORWARD) in.refs[1].arena = FFNC_PLAN_PARAMS;
        ffnc_plan_desc pd = {d, 2, {1, 0, 0, 1}, 0, NULL, 1, &in, 0, NULL};
        ffnc_plan *plan = NULL;
        ffnc_status s = ffnc_plan_create(&pd, &plan, NULL);
        calls++;
        verify(s == FFNC_OK, "ffnc_plan_create", "rejected an instruction with empty operands",
               s);
        if (plan) {
            s = ffnc_plan_run(plan, 1 + below(2), NULL, NULL);
            calls++;
            verify(s == FFNC_OK, "ffnc_plan_run", "failed on an instruction with empty operands",
                   s);
            ffnc_plan_destroy(plan);
        }
    }
}

/* ---- threads, ISA, names ------------------------------------------------------------------- */

static void fuzz_settings(void) {
    const int counts[] = {-1, -1000, INT_MIN, 0, 1, 2, 3, FFNC_MAX_THREADS,
                          FFNC_MAX_THREADS + 1, INT_MAX};
    int n = PICK(counts);
    int refused = n < 0 || n > FFNC_MAX_THREADS;
    int before = ffnc_get_configured_threads();
    ffnc_status s = ffnc_set_num_threads(n);
    calls++;
    verify(refused ? s == FFNC_ERR_INVALID_ARGUMENT : s == FFNC_OK, "ffnc_set_num_threads",
           "misjudged a thread count", s);
    verify(ffnc_get_configured_threads() == (refused ? before : n), "ffnc_set_num_threads",
           "did not keep the count it accepted (or kept one it refused)", s);
    verify(ffnc_get_num_threads() >= 1, "ffnc_get_num_threads", "returned less than 1", 0);
    ffnc_set_num_threads(0);

    n = PICK(counts);
    refused = n < 0 || n > FFNC_MAX_THREADS;
    s = ffnc_set_local_num_threads(n);
    calls++;
    verify(refused ? s == FFNC_ERR_INVALID_ARGUMENT : s == FFNC_OK, "ffnc_set_local_num_threads",
           "misjudged a thread count", s);
    verify(ffnc_get_local_num_threads() == (refused ? 0 : n), "ffnc_set_local_num_threads",
           "did not keep the count it accepted", s);
    ffnc_set_local_num_threads(0);

    n = PICK(counts);
    s = ffnc_set_thread_limit(n);
    calls++;
    verify(n < 0 ? s == FFNC_ERR_INVALID_ARGUMENT : s == FFNC_OK, "ffnc_set_thread_limit",
           "misjudged a limit", s);
    verify(ffnc_get_thread_limit() == (n < 0 ? 0 : n), "ffnc_set_thread_limit",
           "did not keep the limit it accepted", s);
    ffnc_set_thread_limit(0);

    int isa = chance(30) ? bad_enum(3) : (int)below(3);
    ffnc_isa previous = ffnc_get_isa();
    s = ffnc_set_isa((ffnc_isa)isa);
    calls++;
    int known = isa >= 0 && isa <= 2;
    verify(!known ? s == FFNC_ERR_INVALID_ARGUMENT
                  : s == (ffnc_isa_supported((ffnc_isa)isa) ? FFNC_OK : FFNC_ERR_UNSUPPORTED_ISA),
           "ffnc_set_isa", "misjudged an ISA", s);
    verify(ffnc_get_isa() == (s == FFNC_OK ? (ffnc_isa)isa : previous), "ffnc_set_isa",
           "changed the path on an error or ignored a valid one", s);
    verify(known || ffnc_isa_supported((ffnc_isa)isa) == 0, "ffnc_isa_supported",
           "supports an ISA that does not exist", isa);
    verify(known || strcmp(ffnc_isa_name((ffnc_isa)isa), "unknown") == 0, "ffnc_isa_name",
           "named an ISA that does not exist", isa);
    calls += 3;

    int status = chance(50) ? (int)below(20) - 3 : (int)next_u64();
    const char *text = ffnc_status_string((ffnc_status)status);
    verify(text != NULL && text[0] != '\0', "ffnc_status_string", "gave no sentence", status);
    int act = chance(50) ? bad_enum(FFNC_ACT_COUNT) : (int)below(FFNC_ACT_COUNT);
    int uses = ffnc_activation_backward_uses_dst((ffnc_activation)act);
    verify(uses == 0 || uses == 1, "ffnc_activation_backward_uses_dst", "is not 0 or 1", uses);
    int tdt = chance(50) ? bad_enum(FFNC_TENSOR_DTYPE_COUNT) : (int)below(FFNC_TENSOR_DTYPE_COUNT);
    int known_tdt = tdt >= 0 && tdt < FFNC_TENSOR_DTYPE_COUNT;
    verify(known_tdt == (ffnc_tensor_dtype_size((ffnc_tensor_dtype)tdt) != 0),
           "ffnc_tensor_dtype_size", "gave a size to a dtype that does not exist, or none", tdt);
    verify(known_tdt == (strcmp(ffnc_tensor_dtype_name((ffnc_tensor_dtype)tdt), "unknown") != 0),
           "ffnc_tensor_dtype_name", "named a dtype that does not exist, or did not name one",
           tdt);
    uint64_t seed = next_u64(), step = next_u64(), index = next_u64();
    const double ps[] = {0, 0.5, 1, -1, 2, NAN};
    double p = PICK(ps);
    int keep = ffnc_dropout_keep(seed, step, index, p);
    verify(keep == (p <= 0 ? 1 : p >= 1 || isnan(p) ? 0 : keep) && (keep == 0 || keep == 1),
           "ffnc_dropout_keep", "is not 0 or 1, or ignores p = 0 or p >= 1", keep);
    verify(ffnc_version() && ffnc_openmp_info(), "ffnc_version", "returned NULL", 0);
    calls += 7;
    ffnc_isa_env_status();
}

/* ---- plans ------------------------------------------------------------------------------- */

static const struct {
    int32_t opcode;
    int refs; /* operands the opcode takes (refs[0, refs)) */
} plan_ops[] = {
    {FFNC_OP_DENSE_FORWARD, 5}, {FFNC_OP_DENSE_BACKWARD, 8}, {FFNC_OP_GEMM, 3},
    {FFNC_OP_ACT_FORWARD, 2}, {FFNC_OP_ACT_BACKWARD, 3}, {FFNC_OP_BIAS_FORWARD, 3},
    {FFNC_OP_COLSUM, 2}, {FFNC_OP_ROWSUM, 2}, {FFNC_OP_SUM_ALL, 2},
    {FFNC_OP_XENT_FORWARD, 4}, {FFNC_OP_XENT_BACKWARD, 4}, {FFNC_OP_BCE_FORWARD, 3},
    {FFNC_OP_MSE_FORWARD, 3}, {FFNC_OP_L1_FORWARD, 3}, {FFNC_OP_BCE_BACKWARD, 4},
    {FFNC_OP_MSE_BACKWARD, 4}, {FFNC_OP_L1_BACKWARD, 4}, {FFNC_OP_BINARY, 3},
    {FFNC_OP_UNARY, 2}, {FFNC_OP_FILL, 1}, {FFNC_OP_FILL_COUNT, 1}, {FFNC_OP_SGD, 2},
    {FFNC_OP_MOMENTUM, 3}, {FFNC_OP_ADAM, 4}, {FFNC_OP_WHERE, 4}, {FFNC_OP_ONE_HOT, 3},
    {FFNC_OP_FROM_INT64, 2}, {FFNC_OP_SOFTMAX, 2}, {FFNC_OP_LOG_SOFTMAX, 2},
    {FFNC_OP_LOGSUMEXP, 2}, {FFNC_OP_MAX_ARGMAX, 3}, {FFNC_OP_COPY_STRIDED, 2},
    {FFNC_OP_SQDIST, 3}, {FFNC_OP_DROPOUT, 2}, {FFNC_OP_SOFTMAX_BACKWARD, 3},
    {FFNC_OP_LOG_SOFTMAX_BACKWARD, 3}, {FFNC_OP_TRANSPOSE, 2}, {FFNC_OP_PRELU_FORWARD, 3},
    {FFNC_OP_PRELU_BACKWARD, 5}, {FFNC_OP_RMSPROP, 5}, {FFNC_OP_CLIP_GRAD_NORM, 2},
};

#define PLAN_ARENA 256     /* elements in each arena of the random plans */
#define PLAN_MAX_INPUT 4096 /* elements per input slot a run allocates at most */

static void random_bytes(void *p, size_t n) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)next_u64();
}

static ffnc_plan_size plan_size(void) {
    if (chance(3)) return (ffnc_plan_size){huge_size(), below(2)};
    if (chance(2)) return (ffnc_plan_size){below(3), huge_size()};
    return (ffnc_plan_size){below(5), chance(30) ? 1 : 0};
}

static ffnc_plan_ref plan_operand(size_t n_inputs) {
    ffnc_plan_ref r = {FFNC_PLAN_NONE, 0, 0};
    size_t pick = below(100);
    if (pick < 3) {
        r.arena = (int32_t)next_u64();
    } else if (pick < 25 && n_inputs) {
        r.arena = FFNC_PLAN_INPUT;
        r.slot = (uint32_t)below(n_inputs + (chance(10) ? 1 : 0));
    } else {
        r.arena = FFNC_PLAN_PARAMS + (int32_t)below(4);
    }
    if (chance(2)) r.slot = (uint32_t)next_u64();
    r.offset = chance(3) ? huge_size() : below(PLAN_ARENA);
    if (r.arena == FFNC_PLAN_INPUT && !chance(10)) r.offset = below(4);
    return r;
}

/* One instruction: mostly a real opcode with plausible fields, sometimes raw bytes. */
static void plan_instr(ffnc_plan_instr *in, size_t n_inputs) {
    if (chance(8)) {
        random_bytes(in, sizeof *in);
        return;
    }
    memset(in, 0, sizeof *in);
    size_t op = below(sizeof plan_ops / sizeof *plan_ops);
    in->opcode = chance(3) ? (int32_t)next_u64() : plan_ops[op].opcode;
    in->subop = chance(3) ? (int32_t)next_u64() : (int32_t)below(10);
    in->flags = chance(3) ? (uint32_t)next_u64() : (uint32_t)below(256);
    in->m = plan_size(), in->n = plan_size(), in->k = plan_size();
    const double alphas[] = {0, 1, 0.5, 0.25, 2, -1, NAN, INFINITY};
    in->alpha = PICK(alphas);
    /* index-wise plausible: {lr, decay or weight decay, beta2, eps, weight decay} */
    const double hyper[5][4] = {{0.1, 0.01, 0, 3},
                                {0, 0.9, 0.5, 7},
                                {0.999, 0, 0.5, 0.9},
                                {1e-8, 1e-3, 0, 1},
                                {0, 0.1, 0.5, 0}};
    for (int h = 0; h < 5; h++) {
        in->hyper[h] = hyper[h][below(4)];
        if (chance(3)) {
            const double bad[] = {NAN, -1, INFINITY, 1e300, 4294967296.0};
            in->hyper[h] = PICK(bad);
        }
    }
    for (int s = 0; s < 6; s++) in->strides[s] = chance(2) ? huge_size() : below(5);
    int refs = plan_ops[op].refs;
    for (int r = 0; r < FFNC_PLAN_MAX_REFS; r++) {
        if (r >= refs ? chance(3) : !chance(15)) in->refs[r] = plan_operand(n_inputs);
    }
}

/* Binds exactly-sized inputs for `rows` rows (int64 slots hold labels in [-1, 5]); NULL when
 * a slot would be too large to allocate here. */
static void **plan_inputs(const ffnc_plan_desc *d, size_t rows) {
    void **inputs = calloc(d->n_inputs ? d->n_inputs : 1, sizeof(void *));
    if (!inputs) exit(2);
    for (size_t i = 0; i < d->n_inputs; i++) {
        const ffnc_plan_size s = d->inputs[i].size;
        if (s.per_batch > PLAN_MAX_INPUT || rows > PLAN_MAX_INPUT ||
            s.fixed > PLAN_MAX_INPUT - s.per_batch * rows) {
            for (size_t j = 0; j < i; j++) free(inputs[j]);
            free(inputs);
            return NULL;
        }
        size_t count = s.fixed + s.per_batch * rows;
        if (d->inputs[i].type == FFNC_PLAN_INPUT_INT64) {
            int64_t *l = xmalloc(count * sizeof(int64_t));
            for (size_t j = 0; j < count; j++) l[j] = (int64_t)below(7) - 1;
            inputs[i] = l;
        } else {
            inputs[i] = xmalloc(count * width(d->dtype));
            fill(inputs[i], d->dtype, count);
        }
    }
    return inputs;
}

static void free_inputs(void **inputs, size_t n) {
    if (!inputs) return;
    for (size_t i = 0; i < n; i++) free(inputs[i]);
    free(inputs);
}

static int plan_has_update(const ffnc_plan_desc *d) {
    for (size_t i = 0; i < d->n_instrs; i++) {
        int32_t op = d->instrs[i].opcode;
        if (op == FFNC_OP_SGD || op == FFNC_OP_MOMENTUM || op == FFNC_OP_ADAM ||
            op == FFNC_OP_RMSPROP)
            return 1;
    }
    return 0;
}

/* What a run of a created plan may report: data-dependent failures only (labels out of
 * range, packing buffers that cannot be allocated). Any other status means the plan checks
 * accepted an instruction that its kernel then refuses. */
static int run_status_ok(ffnc_status s) {
    return s == FFNC_OK || s == FFNC_ERR_LABEL_OUT_OF_RANGE || s == FFNC_ERR_OUT_OF_MEMORY;
}

/* Runs a plan that ffnc_plan_create accepted, every way it can be run, with bad arguments in
 * between. */
static void exercise_plan(ffnc_plan *plan, const ffnc_plan_desc *d) {
    size_t batch = 1 + below(d->max_batch);
    void **inputs = plan_inputs(d, batch);
    if (!inputs) return;
    plans_run++;
    int64_t step = ffnc_plan_get_step(plan);
    size_t failed = SIZE_MAX;
    ffnc_status s = ffnc_plan_run(plan, batch, (const void *const *)inputs, &failed);
    calls += 2;
    verify(run_status_ok(s), "ffnc_plan_run", "failed on a plan it accepted", s);
    verify(ffnc_plan_get_step(plan) == step + (s == FFNC_OK), "ffnc_plan_run",
           "miscounted the step", s);
    verify(s == FFNC_OK || failed < d->n_instrs, "ffnc_plan_run",
           "did not name the failing instruction", s);

    double *seconds = calloc(d->n_instrs + 1, sizeof(double));
    if (seconds) {
        step = ffnc_plan_get_step(plan);
        s = ffnc_plan_run_timed(plan, batch, (const void *const *)inputs, seconds, NULL);
        calls += 2;
        verify(run_status_ok(s), "ffnc_plan_run_timed", "failed on a plan it accepted", s);
        verify(ffnc_plan_get_step(plan) == step + (s == FFNC_OK), "ffnc_plan_run_timed",
               "miscounted the step", s);
        verify(seconds[d->n_instrs] == 0, "ffnc_plan_run_timed", "wrote past the plan", s);
        s = ffnc_plan_run_timed(plan, batch, (const void *const *)inputs, NULL, NULL);
        calls++;
        verify(s == FFNC_ERR_NULL_POINTER, "ffnc_plan_run_timed", "ran without its times", s);
        free(seconds);
    }

    s = ffnc_plan_run_phase(plan, batch, (const void *const *)inputs, FFNC_PLAN_PHASE_GRADIENTS,
                            NULL);
    calls++;
    verify(run_status_ok(s), "ffnc_plan_run_phase", "failed on a plan it accepted", s);
    s = ffnc_plan_run_phase(plan, batch, (const void *const *)inputs, FFNC_PLAN_PHASE_UPDATE,
                            NULL);
    calls++;
    verify(run_status_ok(s), "ffnc_plan_run_phase", "failed on a plan it accepted", s);
    const int bad_phases[] = {0, 3, -1, INT_MAX};
    s = ffnc_plan_run_phase(plan, batch, (const void *const *)inputs,
                            (ffnc_plan_phase)PICK(bad_phases), NULL);
    calls++;
    verify(s == FFNC_ERR_INVALID_ARGUMENT, "ffnc_plan_run_phase", "ran an unknown phase", s);
    verify(ffnc_plan_update_begin(plan) <= d->n_instrs, "ffnc_plan_update_begin",
           "points past the plan", 0);
    calls++;

    /* the run checks: batch size, the inputs array and each input */
    const size_t bad_batches[] = {0, d->max_batch + 1, SIZE_MAX};
    s = ffnc_plan_run(plan, PICK(bad_batches), (const void *const *)inputs, NULL);
    calls++;
    verify(s == FFNC_ERR_INVALID_ARGUMENT, "ffnc_plan_run", "ran a batch it cannot hold", s);
    if (d->n_inputs) {
        s = ffnc_plan_run(plan, batch, NULL, NULL);
        calls++;
        verify(s == FFNC_ERR_NULL_POINTER, "ffnc_plan_run", "ran without inputs", s);
        size_t slot = below(d->n_inputs);
        void *kept = inputs[slot];
        inputs[slot] = NULL;
        s = ffnc_plan_run(plan, batch, (const void *const *)inputs, NULL);
        calls++;
        verify(s == FFNC_ERR_NULL_POINTER, "ffnc_plan_run", "ran with a NULL input", s);
        inputs[slot] = kept;
    }
    free_inputs(inputs, d->n_inputs);

    /* epochs, with and without a learning-rate schedule */
    size_t rows = 1 + below(7), epoch_batch = 1 + below(d->max_batch);
    size_t steps = rows / epoch_batch + (rows % epoch_batch != 0);
    inputs = plan_inputs(d, rows);
    if (inputs) {
        double *records = xmalloc(steps * (d->n_records ? d->n_records : 1) * sizeof(double));
        double *scale = xmalloc(steps * sizeof(double));
        int bad_scale = chance(30);
        for (size_t i = 0; i < steps; i++) scale[i] = uniform(0, 2);
        if (bad_scale) {
            const double bad[] = {-0.5, NAN, INFINITY};
            scale[below(steps)] = PICK(bad);
        }
        size_t done = SIZE_MAX;
        s = ffnc_plan_run_epoch_scaled(plan, rows, epoch_batch, (const void *const *)inputs,
                                       chance(50) ? scale : NULL, records, &done, NULL);
        calls++;
        verify(run_status_ok(s) || (bad_scale && s == FFNC_ERR_INVALID_ARGUMENT),
               "ffnc_plan_run_epoch_scaled", "failed on a plan it accepted", s);
        verify(done <= steps && (s != FFNC_OK || done == steps), "ffnc_plan_run_epoch_scaled",
               "miscounted the steps done", s);
        s = ffnc_plan_run_epoch(plan, 0, epoch_batch, (const void *const *)inputs, records, NULL,
                                NULL);
        calls++;
        verify(s == FFNC_ERR_EMPTY, "ffnc_plan_run_epoch", "ran an epoch of no rows", s);
        if (d->n_records) {
            s = ffnc_plan_run_epoch(plan, rows, epoch_batch, (const void *const *)inputs, NULL,
                                    NULL, NULL);
            calls++;
            verify(s == FFNC_ERR_NULL_POINTER, "ffnc_plan_run_epoch",
                   "recorded into a NULL array", s);
        }
        free(records);
        free(scale);
        free_inputs(inputs, d->n_inputs);
    }

    /* an interrupt request stops the next epoch before its first step, once */
    inputs = plan_inputs(d, 1);
    if (inputs) {
        double *records = xmalloc((d->n_records ? d->n_records : 1) * sizeof(double));
        size_t done = SIZE_MAX;
        int64_t at = ffnc_plan_get_step(plan);
        s = ffnc_plan_interrupt(plan);
        calls++;
        verify(s == FFNC_OK, "ffnc_plan_interrupt", "refused a plan", s);
        s = ffnc_plan_run_epoch(plan, 1, 1, (const void *const *)inputs, records, &done, NULL);
        calls++;
        verify(s == FFNC_ERR_INTERRUPTED && done == 0 && ffnc_plan_get_step(plan) == at,
               "ffnc_plan_run_epoch", "did not stop before its first step when interrupted", s);
        verify(ffnc_plan_clear_interrupt(plan) == 0, "ffnc_plan_clear_interrupt",
               "found a request the epoch had honoured", 0);
        ffnc_plan_interrupt(plan);
        verify(ffnc_plan_clear_interrupt(plan) == 1, "ffnc_plan_clear_interrupt",
               "did not withdraw a pending request", 0);
        calls += 3;
        free(records);
        free_inputs(inputs, d->n_inputs);
    }

    /* the step counter and the learning rate */
    const int64_t steps_to_set[] = {0, 5, INT64_MAX - 1, INT64_MAX, -1, INT64_MIN};
    int64_t new_step = PICK(steps_to_set);
    s = ffnc_plan_set_step(plan, new_step);
    calls++;
    verify(new_step < 0 ? s == FFNC_ERR_INVALID_ARGUMENT : s == FFNC_OK, "ffnc_plan_set_step",
           "misjudged a step", s);
    if (new_step >= INT64_MAX - 1) {
        /* a counter at its end can count no further step */
        inputs = plan_inputs(d, 1);
        if (inputs) {
            s = ffnc_plan_run(plan, 1, (const void *const *)inputs, NULL);
            calls++;
            verify(new_step == INT64_MAX ? s == FFNC_ERR_STEP_LIMIT : run_status_ok(s),
                   "ffnc_plan_run", "misjudged the end of the step counter", s);
            verify(ffnc_plan_get_step(plan) >= 0, "ffnc_plan_run", "wrapped the step counter", s);
            free_inputs(inputs, d->n_inputs);
        }
    }
    double lr_before = -1, lr_after = -1;
    ffnc_status got = ffnc_plan_get_lr(plan, &lr_before);
    const double lrs[] = {0, 0.5, 1e-3, -1, NAN, INFINITY, 1e39};
    double lr = PICK(lrs);
    s = ffnc_plan_set_lr(plan, lr);
    calls += 3;
    int lr_valid = isfinite(lr) && lr >= 0 && (d->dtype != FFNC_F32 || lr <= FLT_MAX);
    verify(plan_has_update(d) ? got == FFNC_OK : got == FFNC_ERR_INVALID_ARGUMENT,
           "ffnc_plan_get_lr", "misreported whether the plan has an update", got);
    verify(plan_has_update(d) && lr_valid ? s == FFNC_OK : s == FFNC_ERR_INVALID_ARGUMENT,
           "ffnc_plan_set_lr", "misjudged a learning rate", s);
    ffnc_plan_get_lr(plan, &lr_after);
    verify(s == FFNC_OK ? lr_after == lr : lr_after == lr_before || isnan(lr_before),
           "ffnc_plan_set_lr", "changed the plan on an error, or not on success", s);

    void *data = NULL;
    size_t size = 0;
    int arena = chance(70) ? FFNC_PLAN_PARAMS + (int)below(4) : bad_enum(5);
    s = ffnc_plan_arena_data(plan, (ffnc_plan_arena)arena, &data, &size);
    calls++;
    int arena_valid = arena >= FFNC_PLAN_PARAMS && arena <= FFNC_PLAN_ACTS;
    verify(arena_valid ? s == FFNC_OK && data && size == d->arena_size[arena - 1]
                       : s == FFNC_ERR_INVALID_ARGUMENT,
           "ffnc_plan_arena_data", "misreported an arena", s);
    s = ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, NULL, &size);
    calls++;
    verify(s == FFNC_ERR_NULL_POINTER, "ffnc_plan_arena_data", "wrote through NULL", s);
}

/* A random plan: descriptor defects, structured instructions, raw bytes. */
static void fuzz_plan(void) {
    call c;
    start(&c, "ffnc_plan_create");
    ffnc_plan_desc d;
    memset(&d, 0, sizeof d);
    d.dtype = (ffnc_dtype)pick_dtype(&c);
    d.max_batch = 1 + below(3);
    if (chance(4)) {
        d.max_batch = 0;
        reject(&c, FFNC_ERR_INVALID_ARGUMENT);
    }
    for (int a = 0; a < 4; a++) d.arena_size[a] = chance(10) ? below(8) : PLAN_ARENA;
    if (chance(4)) {
        /* bytes beyond size_t, for either dtype */
        d.arena_size[below(4)] = chance(50) ? SIZE_MAX : (size_t)1 << 62 | (size_t)1 << 63;
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
    }
    ffnc_plan_input slots[3] = {{FFNC_PLAN_INPUT_FLOAT, {below(3), 1 + below(8)}},
                                {FFNC_PLAN_INPUT_INT64, {0, 1}},
                                {FFNC_PLAN_INPUT_FLOAT, {1 + below(16), 0}}};
    d.n_inputs = below(4);
    d.inputs = slots;
    if (d.n_inputs && chance(4)) {
        slots[below(d.n_inputs)].type = bad_enum(2);
        reject(&c, FFNC_ERR_INVALID_ARGUMENT);
    }
    if (d.n_inputs && chance(3)) {
        slots[below(d.n_inputs)].size = (ffnc_plan_size){SIZE_MAX, SIZE_MAX};
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
    }
    size_t n_instrs = below(6);
    ffnc_plan_instr *instrs = xmalloc((n_instrs ? n_instrs : 1) * sizeof *instrs);
    for (size_t i = 0; i < n_instrs; i++) {
        /* Random instructions are rarely valid: draw candidates until one is accepted alone
         * (each a call judged too), and keep the last one tried otherwise, which makes the
         * whole plan one to reject at that index. */
        ffnc_plan_desc alone = d;
        alone.n_instrs = 1, alone.instrs = &instrs[i], alone.n_records = 0;
        for (int tries = 0; tries < 40; tries++) {
            plan_instr(&instrs[i], d.n_inputs);
            if (has_argument_defect(&c) || chance(2)) break;
            ffnc_plan *one = NULL;
            size_t bad = SIZE_MAX;
            ffnc_status s = ffnc_plan_create(&alone, &one, &bad);
            calls++;
            verify(is_status(s) && (s == FFNC_OK) == (one != NULL) &&
                       bad == (s == FFNC_OK ? 1 : 0),
                   "ffnc_plan_create", "misreported a one-instruction plan", s);
            ffnc_plan_destroy(one);
            if (s == FFNC_OK) break;
        }
    }
    d.n_instrs = n_instrs;
    d.instrs = instrs;
    ffnc_plan_ref records[2] = {{FFNC_PLAN_ACTS, 0, below(PLAN_ARENA)},
                                {FFNC_PLAN_PARAMS, 0, 0}};
    d.n_records = below(3);
    d.records = records;
    if (d.n_records && chance(4)) {
        ffnc_plan_ref *r = &records[below(d.n_records)];
        if (chance(50)) r->arena = bad_enum(5);
        else r->offset = PLAN_ARENA + below(3);
        reject(&c, FFNC_ERR_INVALID_ARGUMENT);
    }
    if (d.n_inputs && chance(3)) {
        d.inputs = NULL;
        reject(&c, FFNC_ERR_NULL_POINTER);
    }
    if (d.n_instrs && chance(3)) {
        d.instrs = NULL;
        reject(&c, FFNC_ERR_NULL_POINTER);
    }
    if (d.n_records && chance(3)) {
        d.records = NULL;
        reject(&c, FFNC_ERR_NULL_POINTER);
    }
    /* With a defect in the descriptor found first, counts may be absurd too. */
    if (has_argument_defect(&c) && chance(20)) {
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
        if (!d.instrs) d.n_instrs = huge_size();
        if (!d.records) d.n_records = huge_size();
    }

    ffnc_plan *plan = (ffnc_plan *)&c; /* must be overwritten */
    size_t bad = SIZE_MAX;
    ffnc_status s = ffnc_plan_create(&d, &plan, &bad);
    calls++;
    verify(is_status(s), c.fn, "returned a value that is not an ffnc_status", s);
    if (has_argument_defect(&c)) {
        verify(s != FFNC_OK, c.fn, "accepted a defective descriptor", s);
        verify(s == FFNC_OK || !is_status(s) || ((c.expected >> s) & 1u), c.fn,
               "rejected a descriptor with a status that names none of its defects", s);
    }
    verify(s == FFNC_OK ? plan != NULL : plan == NULL, c.fn,
           "left *plan inconsistent with its status", s);
    verify(bad <= d.n_instrs, c.fn, "named an instruction past the plan", s);
    if (s == FFNC_OK && plan) {
        exercise_plan(plan, &d);
        ffnc_plan_destroy(plan);
    }
    free(instrs);
}

/* The one-layer regression plan of test_plan.c, whole (it must be accepted and run) or with
 * one field of one instruction replaced by random bytes. */
static void fuzz_known_plan(void) {
    enum { B = 3, K = 4, N = 2, W = 0, BIAS = K * N, PARAMS = K * N + N, YHAT = 0, LOSS = 8,
           DIFF = 16, ACTS = 24 };
    ffnc_plan_instr ins[5];
    memset(ins, 0, sizeof ins);
    ffnc_plan_ref x = {FFNC_PLAN_INPUT, 0, 0}, t = {FFNC_PLAN_INPUT, 1, 0};
    ins[0].opcode = FFNC_OP_DENSE_FORWARD;
    ins[0].m = (ffnc_plan_size){0, 1}, ins[0].n = (ffnc_plan_size){N, 0};
    ins[0].k = (ffnc_plan_size){K, 0};
    ins[0].refs[0] = x;
    ins[0].refs[1] = (ffnc_plan_ref){FFNC_PLAN_PARAMS, 0, W};
    ins[0].refs[2] = (ffnc_plan_ref){FFNC_PLAN_PARAMS, 0, BIAS};
    ins[0].refs[4] = (ffnc_plan_ref){FFNC_PLAN_ACTS, 0, YHAT};
    ins[1].opcode = FFNC_OP_MSE_FORWARD;
    ins[1].n = (ffnc_plan_size){0, N};
    ins[1].alpha = 1, ins[1].flags = FFNC_PLAN_MEAN;
    ins[1].refs[0] = (ffnc_plan_ref){FFNC_PLAN_ACTS, 0, YHAT};
    ins[1].refs[1] = t;
    ins[1].refs[2] = (ffnc_plan_ref){FFNC_PLAN_ACTS, 0, LOSS};
    ins[2] = ins[1];
    ins[2].opcode = FFNC_OP_MSE_BACKWARD;
    ins[2].refs[2] = (ffnc_plan_ref){FFNC_PLAN_NONE, 0, 0};
    ins[2].refs[3] = (ffnc_plan_ref){FFNC_PLAN_ACTS, 0, DIFF};
    ins[3].opcode = FFNC_OP_DENSE_BACKWARD;
    ins[3].m = ins[0].m, ins[3].n = ins[0].n, ins[3].k = ins[0].k;
    ins[3].refs[0] = x;
    ins[3].refs[3] = (ffnc_plan_ref){FFNC_PLAN_ACTS, 0, DIFF};
    ins[3].refs[6] = (ffnc_plan_ref){FFNC_PLAN_GRADS, 0, W};
    ins[3].refs[7] = (ffnc_plan_ref){FFNC_PLAN_GRADS, 0, BIAS};
    ins[4].opcode = FFNC_OP_SGD;
    ins[4].n = (ffnc_plan_size){PARAMS, 0};
    ins[4].hyper[0] = 0.1;
    ins[4].refs[0] = (ffnc_plan_ref){FFNC_PLAN_PARAMS, 0, 0};
    ins[4].refs[1] = (ffnc_plan_ref){FFNC_PLAN_GRADS, 0, 0};
    ffnc_plan_input slots[2] = {{FFNC_PLAN_INPUT_FLOAT, {0, K}}, {FFNC_PLAN_INPUT_FLOAT, {0, N}}};
    ffnc_plan_ref record = {FFNC_PLAN_ACTS, 0, LOSS};
    ffnc_plan_desc d = {chance(50) ? FFNC_F32 : FFNC_F64, B, {PARAMS, PARAMS, 0, ACTS}, 2,
                        slots, 5, ins, 1, &record};
    int mutated = chance(80);
    if (mutated) {
        /* overwrite 1 to 8 bytes of one instruction */
        unsigned char *bytes = (unsigned char *)&ins[below(5)];
        size_t at = below(sizeof(ffnc_plan_instr)), len = 1 + below(8);
        for (size_t i = at; i < at + len && i < sizeof(ffnc_plan_instr); i++)
            bytes[i] = (unsigned char)next_u64();
    }
    ffnc_plan *plan = NULL;
    size_t bad = SIZE_MAX;
    ffnc_status s = ffnc_plan_create(&d, &plan, &bad);
    calls++;
    verify(is_status(s), "ffnc_plan_create", "returned a value that is not an ffnc_status", s);
    verify(mutated || s == FFNC_OK, "ffnc_plan_create", "rejected a valid plan", s);
    verify(s == FFNC_OK || bad < 5, "ffnc_plan_create", "did not name the bad instruction", s);
    if (s == FFNC_OK) {
        exercise_plan(plan, &d);
        ffnc_plan_destroy(plan);
    }
}

static void fuzz_plan_nulls(void) {
    ffnc_plan_desc d;
    memset(&d, 0, sizeof d);
    d.dtype = FFNC_F32, d.max_batch = 1;
    ffnc_plan *plan = NULL;
    verify(ffnc_plan_create(NULL, &plan, NULL) == FFNC_ERR_NULL_POINTER, "ffnc_plan_create",
           "took a NULL descriptor", 0);
    verify(ffnc_plan_create(&d, NULL, NULL) == FFNC_ERR_NULL_POINTER, "ffnc_plan_create",
           "took a NULL result pointer", 0);
    verify(ffnc_plan_run(NULL, 1, NULL, NULL) == FFNC_ERR_NULL_POINTER, "ffnc_plan_run",
           "ran NULL", 0);
    verify(ffnc_plan_run_phase(NULL, 1, NULL, FFNC_PLAN_PHASE_UPDATE, NULL) ==
               FFNC_ERR_NULL_POINTER,
           "ffnc_plan_run_phase", "ran NULL", 0);
    verify(ffnc_plan_run_epoch(NULL, 1, 1, NULL, NULL, NULL, NULL) == FFNC_ERR_NULL_POINTER,
           "ffnc_plan_run_epoch", "ran NULL", 0);
    verify(ffnc_plan_run_epoch_scaled(NULL, 1, 1, NULL, NULL, NULL, NULL, NULL) ==
               FFNC_ERR_NULL_POINTER,
           "ffnc_plan_run_epoch_scaled", "ran NULL", 0);
    double lr;
    void *data;
    size_t size;
    verify(ffnc_plan_get_lr(NULL, &lr) == FFNC_ERR_NULL_POINTER, "ffnc_plan_get_lr", "read NULL",
           0);
    verify(ffnc_plan_set_lr(NULL, 0.1) == FFNC_ERR_NULL_POINTER, "ffnc_plan_set_lr", "wrote NULL",
           0);
    verify(ffnc_plan_set_step(NULL, 1) == FFNC_ERR_NULL_POINTER, "ffnc_plan_set_step",
           "wrote NULL", 0);
    verify(ffnc_plan_get_step(NULL) == 0, "ffnc_plan_get_step", "read NULL", 0);
    verify(ffnc_plan_update_begin(NULL) == 0, "ffnc_plan_update_begin", "read NULL", 0);
    verify(ffnc_plan_arena_data(NULL, FFNC_PLAN_PARAMS, &data, &size) == FFNC_ERR_NULL_POINTER,
           "ffnc_plan_arena_data", "read NULL", 0);
    verify(ffnc_plan_interrupt(NULL) == FFNC_ERR_NULL_POINTER, "ffnc_plan_interrupt",
           "took NULL", 0);
    verify(ffnc_plan_clear_interrupt(NULL) == 0, "ffnc_plan_clear_interrupt", "read NULL", 0);
    ffnc_plan_destroy(NULL);
    calls += 15;
    /* a plan with nothing in it is valid */
    verify(ffnc_plan_create(&d, &plan, NULL) == FFNC_OK, "ffnc_plan_create",
           "rejected an empty plan", 0);
    verify(ffnc_plan_get_lr(plan, &lr) == FFNC_ERR_INVALID_ARGUMENT, "ffnc_plan_get_lr",
           "found a learning rate in an empty plan", 0);
    verify(ffnc_plan_run(plan, 1, NULL, NULL) == FFNC_OK, "ffnc_plan_run",
           "could not run an empty plan", 0);
    ffnc_plan_destroy(plan);
    calls += 3;
}

/* ---- models ----------------------------------------------------------------------------- */

static char path_buf[3][128];

static const char *temp_path(int which, const char *what) {
    snprintf(path_buf[which], sizeof path_buf[which], "test_api_fuzz_%ld_%s.safetensors",
             (long)getpid(), what);
    return path_buf[which];
}

/* A random small model (NULL when its description was refused) and that description, whose
 * arrays live here. */
typedef struct model_case {
    ffnc_model *model;
    ffnc_model_desc desc;
    size_t sizes[4];
    ffnc_activation acts[3];
    double alphas[3];
} model_case;

static void fuzz_model_create(model_case *mc) {
    call c;
    start(&c, "ffnc_model_create");
    memset(mc, 0, sizeof *mc);
    size_t layers = 1 + below(3);
    for (size_t i = 0; i <= layers; i++) mc->sizes[i] = 1 + below(5);
    int with_alphas = chance(50); /* without, the defaults stand in */
    for (size_t i = 0; i < layers; i++) {
        mc->acts[i] = (ffnc_activation)pick_activation(&c);
        mc->alphas[i] = with_alphas ? pick_alpha(&c, mc->acts[i]) : 0;
    }
    ffnc_model_desc *d = &mc->desc;
    d->dtype = (ffnc_dtype)pick_dtype(&c);
    d->n_layers = layers;
    d->sizes = mc->sizes;
    d->activations = mc->acts;
    d->alphas = with_alphas ? mc->alphas : NULL;
    d->loss = (ffnc_loss)below(4);
    if (chance(5)) {
        d->loss = (ffnc_loss)bad_enum(4);
        reject(&c, FFNC_ERR_INVALID_ARGUMENT);
    }
    if (chance(5)) {
        mc->sizes[below(layers + 1)] = 0;
        reject(&c, FFNC_ERR_INVALID_ARGUMENT);
    }
    if (chance(4)) {
        size_t i = below(layers);
        overflowing_pair(&mc->sizes[i], &mc->sizes[i + 1]);
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
    }
    if (chance(3)) {
        d->n_layers = 0;
        reject(&c, FFNC_ERR_INVALID_ARGUMENT);
    } else if (has_argument_defect(&c) && chance(20)) {
        /* the count is checked before the arrays are read */
        d->n_layers = SIZE_MAX / 8 + below(3);
        reject(&c, FFNC_ERR_INVALID_ARGUMENT);
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
    }
    if (chance(3)) {
        if (chance(50)) d->sizes = NULL;
        else d->activations = NULL;
        reject(&c, FFNC_ERR_NULL_POINTER);
    }
    ffnc_model **out = &mc->model;
    if (chance(3)) {
        out = NULL;
        reject(&c, FFNC_ERR_NULL_POINTER);
    }
    mc->model = (ffnc_model *)&c; /* must be overwritten */
    CALL(&c, ffnc_model_create(chance(3) ? (reject(&c, FFNC_ERR_NULL_POINTER), NULL) : d,
                               next_u64(), out));
    if (out == NULL || c.expected) {
        verify(mc->model == (ffnc_model *)&c || mc->model == NULL, "ffnc_model_create",
               "returned a model while failing", 0);
        mc->model = NULL;
    }
}

/* Train settings for the optimizer, with defects among them. */
static void pick_config(call *c, ffnc_train_config *cfg, int dtype) {
    int opt = (int)below(3);
    ffnc_status s = ffnc_train_config_init(cfg, (ffnc_optimizer)opt);
    calls++;
    verify(s == FFNC_OK, "ffnc_train_config_init", "refused an optimizer", s);
    cfg->learning_rate = pick_rate(c, dtype);
    cfg->weight_decay = pick_rate(c, dtype);
    if (opt == FFNC_OPTIMIZER_MOMENTUM) cfg->momentum = pick_decay(c);
    if (opt == FFNC_OPTIMIZER_ADAM) {
        cfg->beta1 = pick_decay(c);
        cfg->beta2 = pick_decay(c);
        cfg->eps = pick_eps(c, dtype);
    }
    cfg->nesterov = chance(50);
    cfg->decoupled_weight_decay = chance(50);
    cfg->batch_size = 1 + below(8);
    cfg->epochs = 1 + below(2);
    cfg->shuffle = chance(50);
    cfg->seed = next_u64();
    if (chance(4)) {
        cfg->batch_size = 0;
        reject(c, FFNC_ERR_INVALID_ARGUMENT);
    }
    if (chance(4)) {
        cfg->epochs = 0;
        reject(c, FFNC_ERR_INVALID_ARGUMENT);
    }
    if (chance(4)) {
        cfg->optimizer = (ffnc_optimizer)bad_enum(3);
        reject(c, FFNC_ERR_INVALID_ARGUMENT);
    }
}

/* Targets for `rows` rows of the model's loss (labels for softmax cross-entropy). */
static void *targets_for(call *c, const ffnc_model_desc *d, size_t rows, int spoil) {
    size_t outputs = d->sizes[d->n_layers];
    if (d->loss == FFNC_LOSS_SOFTMAX_XENT) {
        int64_t *l = labels(c, rows, outputs);
        if (spoil && rows) spoil_label(c, l, rows, outputs);
        return l;
    }
    void *t = xmalloc(rows * outputs * width(d->dtype));
    for (size_t i = 0; i < rows * outputs; i++) {
        double v = d->loss == FFNC_LOSS_BCE ? (double)below(2) : uniform(-1, 1);
        if (d->dtype == FFNC_F32) ((float *)t)[i] = (float)v;
        else ((double *)t)[i] = v;
    }
    return track(c, t, rows * outputs * width(d->dtype));
}

static void params_snapshot(ffnc_model *m, void **copy, size_t *bytes) {
    void *data;
    size_t count;
    ffnc_model_desc d;
    ffnc_model_params(m, &data, &count);
    ffnc_model_get_desc(m, &d);
    *bytes = count * width(d.dtype);
    *copy = xmalloc(*bytes);
    memcpy(*copy, data, *bytes);
}

static int params_equal(ffnc_model *m, const void *copy, size_t bytes) {
    void *data;
    size_t count;
    ffnc_model_params(m, &data, &count);
    return memcmp(data, copy, bytes) == 0;
}

static void fuzz_model_use(model_case *mc) {
    ffnc_model *m = mc->model;
    const ffnc_model_desc *d = &mc->desc;
    size_t inputs = d->sizes[0], outputs = d->sizes[d->n_layers];

    /* training */
    call c;
    start(&c, "ffnc_model_train");
    ffnc_train_config cfg;
    pick_config(&c, &cfg, d->dtype);
    if (d->loss == FFNC_LOSS_NONE) reject(&c, FFNC_ERR_INVALID_ARGUMENT);
    size_t rows_a = 1 + below(12), rows = rows_a;
    if (chance(4)) {
        rows = 0;
        reject(&c, FFNC_ERR_EMPTY);
    } else if (chance(4)) {
        rows = SIZE_MAX / 2 + below(100); /* rows x a row's bytes overflows */
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
    }
    void *x = need(&c, values(&c, d->dtype, rows_a * inputs), 1);
    void *t = need(&c, targets_for(&c, d, rows_a, chance(6)), 1);
    double *losses = need(&c, track(&c, xmalloc(cfg.epochs * sizeof(double)),
                                     cfg.epochs * sizeof(double)), 0);
    const ffnc_train_config *config = &cfg;
    if (chance(3)) {
        config = NULL;
        reject(&c, FFNC_ERR_NULL_POINTER);
    }
    if (chance(8)) {
        /* a request made before the call stops it before its first step */
        verify(ffnc_model_interrupt(m) == FFNC_OK, "ffnc_model_interrupt", "refused a model",
               0);
        calls++;
        reject(&c, FFNC_ERR_INTERRUPTED);
    }
    void *before;
    size_t bytes;
    params_snapshot(m, &before, &bytes);
    int invalid = c.expected != 0;
    CALL(&c, ffnc_model_train(m, config, rows, x, t, losses));
    verify(!invalid || params_equal(m, before, bytes), "ffnc_model_train",
           "changed the model while rejecting the call", 0);
    free(before);

    /* prediction */
    start(&c, "ffnc_model_predict");
    rows_a = 1 + below(12), rows = rows_a;
    if (chance(4)) {
        rows = 0;
        reject(&c, FFNC_ERR_EMPTY);
    } else if (chance(4)) {
        rows = SIZE_MAX / 2 + below(100);
        reject(&c, FFNC_ERR_SIZE_OVERFLOW);
    }
    x = need(&c, values(&c, d->dtype, rows_a * inputs), 1);
    void *dst = need(&c, values(&c, d->dtype, rows_a * outputs), 1);
    CALL(&c, ffnc_model_predict(chance(3) ? (reject(&c, FFNC_ERR_NULL_POINTER), NULL) : m, rows,
                                x, dst));

    /* evaluation */
    start(&c, "ffnc_model_evaluate");
    if (d->loss == FFNC_LOSS_NONE) reject(&c, FFNC_ERR_INVALID_ARGUMENT);
    rows_a = 1 + below(300), rows = rows_a; /* more than one inference batch at times */
    if (chance(4)) {
        rows = 0;
        reject(&c, FFNC_ERR_EMPTY);
    }
    x = need(&c, values(&c, d->dtype, rows_a * inputs), 1);
    t = need(&c, targets_for(&c, d, rows_a, chance(6)), 1);
    double *loss = need(&c, track(&c, xmalloc(sizeof(double)), sizeof(double)), 1);
    double *accuracy = need(&c, track(&c, xmalloc(sizeof(double)), sizeof(double)), 0);
    CALL(&c, ffnc_model_evaluate(m, rows, x, t, loss, accuracy));

    /* description and parameters */
    ffnc_model_desc got;
    void *w = NULL, *b = NULL, *data = NULL;
    size_t count = 0;
    verify(ffnc_model_get_desc(m, &got) == FFNC_OK && got.n_layers == d->n_layers &&
               got.dtype == d->dtype && got.loss == d->loss &&
               memcmp(got.sizes, d->sizes, (d->n_layers + 1) * sizeof(size_t)) == 0,
           "ffnc_model_get_desc", "does not describe the model created", 0);
    verify(ffnc_model_get_desc(NULL, &got) == FFNC_ERR_NULL_POINTER &&
               ffnc_model_get_desc(m, NULL) == FFNC_ERR_NULL_POINTER,
           "ffnc_model_get_desc", "took NULL", 0);
    verify(ffnc_model_params(m, &data, &count) == FFNC_OK && data && count > 0 &&
               ffnc_model_params(m, NULL, &count) == FFNC_ERR_NULL_POINTER &&
               ffnc_model_params(NULL, &data, &count) == FFNC_ERR_NULL_POINTER,
           "ffnc_model_params", "misbehaved", 0);
    size_t layer = chance(70) ? below(d->n_layers) : d->n_layers + below(3);
    if (chance(10)) layer = SIZE_MAX;
    ffnc_status s = ffnc_model_layer_params(m, layer, &w, &b);
    verify(layer < d->n_layers ? s == FFNC_OK && w && b : s == FFNC_ERR_INVALID_ARGUMENT,
           "ffnc_model_layer_params", "misjudged a layer index", s);
    verify(ffnc_model_layer_params(m, 0, NULL, &b) == FFNC_ERR_NULL_POINTER,
           "ffnc_model_layer_params", "wrote through NULL", 0);
    verify(ffnc_model_init(NULL, 1) == FFNC_ERR_NULL_POINTER, "ffnc_model_init", "took NULL", 0);
    verify(ffnc_model_interrupt(NULL) == FFNC_ERR_NULL_POINTER, "ffnc_model_interrupt",
           "took NULL", 0);
    verify(ffnc_train_config_init(NULL, FFNC_OPTIMIZER_SGD) == FFNC_ERR_NULL_POINTER &&
               ffnc_train_config_init(&cfg, (ffnc_optimizer)bad_enum(3)) ==
                   FFNC_ERR_INVALID_ARGUMENT,
           "ffnc_train_config_init", "took NULL or an unknown optimizer", 0);
    calls += 14;
}

/* Saving and loading back (bitwise the same parameters), and the save/load argument checks. */
static void fuzz_model_save_load(model_case *mc) {
    ffnc_model *m = mc->model;
    const char *path = temp_path(0, "model");
    ffnc_status s = ffnc_model_save(m, path, chance(50));
    calls++;
    verify(s == FFNC_OK, "ffnc_model_save", "could not save a model", s);
    ffnc_model *back = (ffnc_model *)mc;
    s = ffnc_model_load(path, &back);
    calls++;
    verify(s == FFNC_OK && back != NULL, "ffnc_model_load", "could not load what was saved", s);
    if (s == FFNC_OK) {
        void *copy;
        size_t bytes;
        params_snapshot(m, &copy, &bytes);
        verify(params_equal(back, copy, bytes), "ffnc_model_load",
               "did not load the parameters saved", 0);
        free(copy);
        ffnc_model_destroy(back);
    }
    verify(ffnc_model_save(NULL, path, 0) == FFNC_ERR_NULL_POINTER &&
               ffnc_model_save(m, NULL, 0) == FFNC_ERR_NULL_POINTER,
           "ffnc_model_save", "took NULL", 0);
    verify(ffnc_model_save(m, "", 0) == FFNC_ERR_INVALID_ARGUMENT, "ffnc_model_save",
           "saved to an empty path", 0);
    verify(ffnc_model_save(m, "no/such/directory/model.safetensors", 0) == FFNC_ERR_IO,
           "ffnc_model_save", "saved into a missing directory", 0);
    back = (ffnc_model *)mc;
    verify(ffnc_model_load("no/such/file.safetensors", &back) == FFNC_ERR_IO && back == NULL,
           "ffnc_model_load", "loaded a missing file", 0);
    verify(ffnc_model_load(".", &back) == FFNC_ERR_IO, "ffnc_model_load", "loaded a directory",
           0);
    verify(ffnc_model_load(NULL, &back) == FFNC_ERR_NULL_POINTER &&
               ffnc_model_load(path, NULL) == FFNC_ERR_NULL_POINTER,
           "ffnc_model_load", "took NULL", 0);
    calls += 8;
    ffnc_model_destroy(NULL);
    unlink(path);
}

/* ---- safetensors and checkpoints ------------------------------------------------------------ */

static unsigned char *read_whole(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = xmalloc(n > 0 ? (size_t)n : 1);
    *size = fread(b, 1, n > 0 ? (size_t)n : 0, f);
    fclose(f);
    return b;
}

static int write_whole(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t put = fwrite(b, 1, n, f);
    return fclose(f) == 0 && put == n;
}

/* A checkpoint of a trained model with optimizer state, as bytes: the seed of the mutations. */
static unsigned char *checkpoint_seed(size_t *size) {
    size_t sizes[3] = {3, 4, 2};
    ffnc_activation acts[2] = {FFNC_ACT_LEAKY_RELU, FFNC_ACT_IDENTITY};
    ffnc_model_desc d = {FFNC_F32, 2, sizes, acts, NULL, FFNC_LOSS_SOFTMAX_XENT};
    ffnc_model *m = NULL;
    if (ffnc_model_create(&d, 3, &m) != FFNC_OK) return NULL;
    float x[8 * 3];
    int64_t y[8];
    for (int i = 0; i < 24; i++) x[i] = (float)uniform(-1, 1);
    for (int i = 0; i < 8; i++) y[i] = i % 2;
    ffnc_train_config cfg;
    ffnc_train_config_init(&cfg, FFNC_OPTIMIZER_ADAM);
    cfg.batch_size = 4;
    ffnc_model_train(m, &cfg, 8, x, y, NULL);
    const char *path = temp_path(1, "seed");
    unsigned char *bytes = NULL;
    if (ffnc_model_save(m, path, 1) == FFNC_OK) bytes = read_whole(path, size);
    unlink(path);
    ffnc_model_destroy(m);
    return bytes;
}

/* A mutant of `seed`: flipped bytes, a cut, a lying header length, a number in the header
 * replaced by an absurd one, bytes appended, or pure noise. */
static unsigned char *mutate(const unsigned char *seed, size_t n, size_t *out_n) {
    size_t cap = n + 64;
    unsigned char *b = xmalloc(cap);
    memcpy(b, seed, n);
    size_t len = n;
    switch (below(7)) {
    case 0: /* flip bytes */
        for (size_t i = 1 + below(8); i > 0; i--) b[below(len)] ^= (unsigned char)(1 + below(255));
        break;
    case 1: /* cut */
        len = below(n);
        break;
    case 2: { /* lie about the header's length */
        uint64_t header = 0;
        for (int i = 7; i >= 0; i--) header = header << 8 | b[i];
        const uint64_t lies[] = {0, 1, 2, header - 1, header + 1, header + 8, UINT64_MAX,
                                 (uint64_t)n, (uint64_t)n - 8, 100000001};
        uint64_t lie = PICK(lies);
        for (int i = 0; i < 8; i++) b[i] = (unsigned char)(lie >> (8 * i));
        break;
    }
    case 3: { /* an absurd number in place of one in the header (a shape, offset, unit, step) */
        const char *absurd[] = {"18446744073709551615", "18446744073709551616", "4294967296",
                                "9223372036854775807", "99999999999999999999999", "0", "-1",
                                "1e308", "67108864", "1.5"};
        const char *with = PICK(absurd);
        uint64_t header = 0;
        for (int i = 7; i >= 0; i--) header = header << 8 | b[i];
        size_t digits = 0, start = 0;
        for (size_t tries = 0; tries < 64 && digits == 0 && header > 0 && header < len; tries++) {
            size_t at = 8 + below((size_t)header);
            if (b[at] >= '0' && b[at] <= '9') {
                start = at;
                while (start > 8 && b[start - 1] >= '0' && b[start - 1] <= '9') start--;
                while (start + digits < len && b[start + digits] >= '0' && b[start + digits] <= '9')
                    digits++;
            }
        }
        if (digits == 0) break;
        size_t w = strlen(with);
        if (len - digits + w > cap) break;
        memmove(b + start + w, b + start + digits, len - start - digits);
        memcpy(b + start, with, w);
        len = len - digits + w;
        /* keep the declared header length true, so the JSON is what gets tested */
        header = header + w - digits;
        for (int i = 0; i < 8; i++) b[i] = (unsigned char)(header >> (8 * i));
        break;
    }
    case 4: /* trailing bytes */
        for (size_t i = 1 + below(16); i > 0 && len < cap; i--)
            b[len++] = (unsigned char)next_u64();
        break;
    case 5: /* noise in the data */
        for (size_t i = 0; i < 16; i++) b[len - 1 - below(len / 4)] = (unsigned char)next_u64();
        break;
    default: /* noise */
        len = below(cap);
        random_bytes(b, len);
        break;
    }
    *out_n = len;
    return b;
}

/* Everything a reader offers, over a file the parser accepted. */
static void walk_safetensors(const ffnc_safetensors *f) {
    size_t count = ffnc_safetensors_count(f);
    for (size_t i = 0; i <= count; i++) {
        ffnc_tensor_info info;
        ffnc_status s = ffnc_safetensors_info(f, i, &info);
        calls++;
        verify(i < count ? s == FFNC_OK : s == FFNC_ERR_INVALID_ARGUMENT,
               "ffnc_safetensors_info", "misjudged a tensor index", s);
        if (s != FFNC_OK) continue;
        ffnc_tensor_info found;
        s = ffnc_safetensors_find(f, info.name, &found);
        calls++;
        verify(s == FFNC_OK && found.nbytes == info.nbytes, "ffnc_safetensors_find",
               "did not find a listed tensor", s);
        void *dst = xmalloc(info.nbytes);
        s = ffnc_safetensors_read(f, info.name, info.dtype, info.count, dst);
        calls++;
        verify(s == FFNC_OK, "ffnc_safetensors_read", "could not read a listed tensor", s);
        s = ffnc_safetensors_read(f, info.name, info.dtype, info.count + 1, dst);
        calls++;
        verify(s == FFNC_ERR_INVALID_ARGUMENT, "ffnc_safetensors_read",
               "read into a buffer of the wrong size", s);
        int bad_dtype = bad_enum(FFNC_TENSOR_DTYPE_COUNT);
        s = ffnc_safetensors_read(f, info.name, (ffnc_tensor_dtype)bad_dtype, info.count, dst);
        calls++;
        verify(s == FFNC_ERR_INVALID_ARGUMENT, "ffnc_safetensors_read",
               "read as a dtype that does not exist", s);
        if (info.count) {
            s = ffnc_safetensors_read(f, info.name, info.dtype, info.count, NULL);
            calls++;
            verify(s == FFNC_ERR_NULL_POINTER, "ffnc_safetensors_read", "read into NULL", s);
        }
        free(dst);
    }
    const char *value = NULL;
    ffnc_status s = ffnc_safetensors_metadata(f, chance(50) ? "model" : "format", &value);
    calls++;
    verify((s == FFNC_OK && value) || s == FFNC_ERR_NOT_FOUND, "ffnc_safetensors_metadata",
           "misreported an entry", s);
    verify(ffnc_safetensors_metadata(f, "no such key", &value) == FFNC_ERR_NOT_FOUND &&
               ffnc_safetensors_find(f, "no such tensor", &(ffnc_tensor_info){0}) ==
                   FFNC_ERR_NOT_FOUND &&
               ffnc_safetensors_read(f, "no such tensor", FFNC_TENSOR_F32, 0, NULL) ==
                   FFNC_ERR_NOT_FOUND,
           "ffnc_safetensors", "found what is not there", 0);
    verify(ffnc_safetensors_metadata(f, NULL, &value) == FFNC_ERR_NULL_POINTER &&
               ffnc_safetensors_find(f, NULL, &(ffnc_tensor_info){0}) == FFNC_ERR_NULL_POINTER &&
               ffnc_safetensors_info(f, 0, NULL) == FFNC_ERR_NULL_POINTER,
           "ffnc_safetensors", "took NULL", 0);
    calls += 6;
}

static void fuzz_checkpoint_bytes(const unsigned char *seed, size_t n, int through_file) {
    size_t len;
    unsigned char *b = mutate(seed, n, &len);
    ffnc_safetensors *f = (ffnc_safetensors *)b;
    ffnc_status s = ffnc_safetensors_parse(b, len, &f);
    calls++;
    verify(is_status(s) && s != FFNC_ERR_OUT_OF_MEMORY, "ffnc_safetensors_parse",
           "did not judge a mutated file (or allocated beyond it)", s);
    verify(s == FFNC_OK ? f != NULL : f == NULL, "ffnc_safetensors_parse",
           "left *file inconsistent with its status", s);
    if (s == FFNC_OK) {
        mutants_accepted++;
        walk_safetensors(f);
        ffnc_safetensors_free(f);
    }
    if (through_file) {
        const char *path = temp_path(2, "mutant");
        if (write_whole(path, b, len)) {
            ffnc_model *m = (ffnc_model *)b;
            s = ffnc_model_load(path, &m);
            calls++;
            verify(is_status(s) && s != FFNC_ERR_OUT_OF_MEMORY, "ffnc_model_load",
                   "did not judge a mutated checkpoint (or allocated beyond it)", s);
            verify(s == FFNC_OK ? m != NULL : m == NULL, "ffnc_model_load",
                   "left *model inconsistent with its status", s);
            if (s == FFNC_OK && m) {
                mutants_accepted++;
                ffnc_model_desc d;
                ffnc_model_get_desc(m, &d);
                void *x = xmalloc(2 * d.sizes[0] * width(d.dtype));
                void *y = xmalloc(2 * d.sizes[d.n_layers] * width(d.dtype));
                fill(x, d.dtype, 2 * d.sizes[0]);
                s = ffnc_model_predict(m, 2, x, y);
                calls++;
                verify(s == FFNC_OK, "ffnc_model_predict", "failed on a loaded model", s);
                free(x);
                free(y);
                ffnc_model_destroy(m);
            }
            unlink(path);
        }
    }
    free(b);
}

/* A checkpoint whose model config declares far larger layers than its tensors: the loader
 * must find the mismatch from the file, not by allocating what the config declares. */
static void fuzz_checkpoint_declares_huge_model(void) {
    const char *units[] = {"67108864", "4294967296", "1099511627776"};
    for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"class\": \"Sequential\", \"dtype\": \"float32\", \"input_shape\": [4], "
                 "\"layers\": [{\"class\": \"Dense\", \"units\": %s, \"activation\": \"relu\", "
                 "\"alpha\": null, \"use_bias\": true}], \"loss\": null}",
                 units[u]);
        ffnc_safetensors_writer *w = NULL;
        float weight[8] = {0}, bias[2] = {0};
        size_t wshape[2] = {4, 2}, bshape[1] = {2};
        const char *path = temp_path(2, "huge");
        ffnc_status s = ffnc_safetensors_writer_create(&w);
        if (s == FFNC_OK)
            s = ffnc_safetensors_writer_add(w, "0.weight", FFNC_TENSOR_F32, 2, wshape, weight);
        if (s == FFNC_OK)
            s = ffnc_safetensors_writer_add(w, "0.bias", FFNC_TENSOR_F32, 1, bshape, bias);
        if (s == FFNC_OK) s = ffnc_safetensors_writer_add_metadata(w, "format", "ffnc");
        if (s == FFNC_OK) s = ffnc_safetensors_writer_add_metadata(w, "format_version", "1");
        if (s == FFNC_OK) s = ffnc_safetensors_writer_add_metadata(w, "model", json);
        if (s == FFNC_OK) s = ffnc_safetensors_writer_save(w, path);
        ffnc_safetensors_writer_free(w);
        calls += 7;
        verify(s == FFNC_OK, "ffnc_safetensors_writer", "could not write a checkpoint", s);
        ffnc_model *m = NULL;
        s = ffnc_model_load(path, &m);
        calls++;
        verify(s == FFNC_ERR_FORMAT && m == NULL, "ffnc_model_load",
               "did not reject a config larger than its tensors as FFNC_ERR_FORMAT", s);
        ffnc_model_destroy(m);
        unlink(path);
    }
}

static void fuzz_safetensors_writer(void) {
    ffnc_safetensors_writer *w = NULL;
    ffnc_status s = ffnc_safetensors_writer_create(&w);
    calls++;
    verify(s == FFNC_OK && w, "ffnc_safetensors_writer_create", "failed", s);
    if (!w) return;
    double data[64];
    fill(data, FFNC_F64, 64);
    size_t added = 0;
    int have_t0 = 0;
    for (int i = 0; i < 12; i++) {
        call c;
        start(&c, "ffnc_safetensors_writer_add");
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        const char *n = name;
        if (chance(5)) {
            n = "__metadata__";
            reject(&c, FFNC_ERR_INVALID_ARGUMENT);
        } else if (chance(5)) {
            n = "\xff\xfe bad utf-8";
            reject(&c, FFNC_ERR_INVALID_ARGUMENT);
        } else if (chance(5) && have_t0) {
            n = "t0"; /* added before */
            reject(&c, FFNC_ERR_INVALID_ARGUMENT);
        }
        int dtype = FFNC_TENSOR_F64;
        if (chance(50)) dtype = (int)below(FFNC_TENSOR_DTYPE_COUNT);
        if (chance(5)) {
            dtype = bad_enum(FFNC_TENSOR_DTYPE_COUNT);
            reject(&c, FFNC_ERR_INVALID_ARGUMENT);
        }
        size_t shape[FFNC_TENSOR_MAX_DIMS + 2], ndim = below(4);
        for (size_t d = 0; d < sizeof shape / sizeof *shape; d++) shape[d] = 1 + below(2);
        if (chance(5)) {
            ndim = FFNC_TENSOR_MAX_DIMS + 1 + below(2);
            reject(&c, FFNC_ERR_INVALID_ARGUMENT);
        }
        if (chance(5) && ndim >= 2) {
            overflowing_pair(&shape[0], &shape[1]);
            reject(&c, FFNC_ERR_SIZE_OVERFLOW);
        }
        /* 64 doubles hold every valid shape drawn here: at most 2 x 2 x 2 elements of 8 bytes */
        const void *p = data;
        size_t elements = 1;
        for (size_t d = 0; d < ndim && d < 3; d++) elements *= shape[d];
        if (chance(5) && !(c.expected & (1u << FFNC_ERR_SIZE_OVERFLOW))) {
            p = NULL;
            if (elements) reject(&c, FFNC_ERR_NULL_POINTER);
        }
        const size_t *sh = shape;
        if (ndim && chance(4)) {
            sh = NULL;
            reject(&c, FFNC_ERR_NULL_POINTER);
        }
        if (chance(3)) {
            n = NULL;
            reject(&c, FFNC_ERR_NULL_POINTER);
        }
        CALL(&c, ffnc_safetensors_writer_add(chance(3) ? (reject(&c, FFNC_ERR_NULL_POINTER), NULL)
                                                       : w,
                                             n, (ffnc_tensor_dtype)dtype, ndim, sh, p));
        if (!c.expected) {
            added++;
            have_t0 |= i == 0;
        }
    }
    for (int i = 0; i < 4; i++) {
        call c;
        start(&c, "ffnc_safetensors_writer_add_metadata");
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        const char *k = key, *v = "value";
        if (chance(10)) {
            v = "\xc0\x80";
            reject(&c, FFNC_ERR_INVALID_ARGUMENT);
        }
        if (chance(10)) {
            k = NULL;
            reject(&c, FFNC_ERR_NULL_POINTER);
        }
        if (chance(10)) {
            v = NULL;
            reject(&c, FFNC_ERR_NULL_POINTER);
        }
        CALL(&c, ffnc_safetensors_writer_add_metadata(w, k, v));
    }
    const char *path = temp_path(1, "writer");
    s = ffnc_safetensors_writer_save(w, path);
    calls++;
    verify(s == FFNC_OK, "ffnc_safetensors_writer_save", "could not save", s);
    verify(ffnc_safetensors_writer_save(w, "") == FFNC_ERR_INVALID_ARGUMENT &&
               ffnc_safetensors_writer_save(w, NULL) == FFNC_ERR_NULL_POINTER &&
               ffnc_safetensors_writer_save(NULL, path) == FFNC_ERR_NULL_POINTER,
           "ffnc_safetensors_writer_save", "took an empty path or NULL", 0);
    calls += 3;
    ffnc_safetensors *f = NULL;
    s = ffnc_safetensors_load(path, &f);
    calls++;
    verify(s == FFNC_OK && ffnc_safetensors_count(f) == added, "ffnc_safetensors_load",
           "did not read back what was written", s);
    if (f) walk_safetensors(f);
    ffnc_safetensors_free(f);
    unlink(path);
    ffnc_safetensors_writer_free(w);
    verify(ffnc_safetensors_writer_create(NULL) == FFNC_ERR_NULL_POINTER &&
               ffnc_safetensors_load(NULL, &f) == FFNC_ERR_NULL_POINTER &&
               ffnc_safetensors_load(path, NULL) == FFNC_ERR_NULL_POINTER &&
               ffnc_safetensors_parse(NULL, 8, &f) == FFNC_ERR_NULL_POINTER &&
               ffnc_safetensors_parse("", 0, NULL) == FFNC_ERR_NULL_POINTER &&
               ffnc_safetensors_count(NULL) == 0,
           "ffnc_safetensors", "took NULL", 0);
    ffnc_safetensors_free(NULL);
    ffnc_safetensors_writer_free(NULL);
    calls += 7;
}

/* ---- the defects this test found, each checked once more by name -------------------------- */

static void regressions(void) {
    /* A plan's step counter at INT64_MAX: no run may count past it (it overflowed, and Adam
     * numbered the step INT64_MIN). */
    ffnc_plan_instr fill;
    memset(&fill, 0, sizeof fill);
    fill.opcode = FFNC_OP_FILL;
    fill.n = (ffnc_plan_size){2, 0};
    fill.refs[0] = (ffnc_plan_ref){FFNC_PLAN_ACTS, 0, 0};
    ffnc_plan_desc d = {FFNC_F64, 1, {0, 0, 0, 2}, 0, NULL, 1, &fill, 0, NULL};
    ffnc_plan *plan = NULL;
    size_t done = 7;
    verify(ffnc_plan_create(&d, &plan, NULL) == FFNC_OK, "ffnc_plan_create",
           "rejected a fill", 0);
    if (plan) {
        ffnc_plan_set_step(plan, INT64_MAX - 1);
        verify(ffnc_plan_run_epoch(plan, 2, 1, NULL, NULL, &done, NULL) ==
                       FFNC_ERR_STEP_LIMIT &&
                   done == 0 && ffnc_plan_get_step(plan) == INT64_MAX - 1,
               "ffnc_plan_run_epoch", "ran steps past the end of the step counter", 0);
        verify(ffnc_plan_run(plan, 1, NULL, NULL) == FFNC_OK &&
                   ffnc_plan_get_step(plan) == INT64_MAX,
               "ffnc_plan_run", "did not run the last step the counter can count", 0);
        verify(ffnc_plan_run(plan, 1, NULL, NULL) == FFNC_ERR_STEP_LIMIT &&
                   ffnc_plan_run_phase(plan, 1, NULL, FFNC_PLAN_PHASE_UPDATE, NULL) ==
                       FFNC_ERR_STEP_LIMIT &&
                   ffnc_plan_get_step(plan) == INT64_MAX,
               "ffnc_plan_run", "counted a step past INT64_MAX", 0);
        ffnc_plan_destroy(plan);
    }

    /* An empty operand must still lie within its arena: runs form its pointer from the
     * offset (it was accepted anywhere, and the pointer arithmetic overflowed). */
    fill.n = (ffnc_plan_size){0, 0};
    fill.refs[0].offset = SIZE_MAX / 2;
    plan = NULL;
    verify(ffnc_plan_create(&d, &plan, NULL) == FFNC_ERR_INVALID_ARGUMENT && plan == NULL,
           "ffnc_plan_create", "accepted an empty operand far outside its arena", 0);
    ffnc_plan_destroy(plan);
    fill.refs[0].offset = 2; /* one past the end: fine */
    verify(ffnc_plan_create(&d, &plan, NULL) == FFNC_OK, "ffnc_plan_create",
           "rejected an empty operand at the end of its arena", 0);
    ffnc_plan_destroy(plan);

    /* Identity's dense backward with no saved tensor (allowed): the kernel read it anyway. */
    double diff_dst[6] = {1, 2, 3, 4, 5, 6}, diff_pre[6], diff_bias[3];
    verify(ffnc_dense_backward(FFNC_F64, 2, 3, 0, NULL, NULL, 0, FFNC_ACT_IDENTITY, 0, NULL,
                               diff_dst, diff_pre, NULL, NULL, diff_bias, 0, 0) == FFNC_OK &&
               memcmp(diff_pre, diff_dst, sizeof diff_dst) == 0 && diff_bias[0] == 5 &&
               diff_bias[2] == 9,
           "ffnc_dense_backward", "failed identity's backward without a saved tensor", 0);
    calls += 9;
}

/* ---- capturing the library's output ------------------------------------------------------ */

static char capture_path[128];
static int saved_stdout = -1, saved_stderr = -1;

/* Sends fds 1 and 2 to a file for the fuzz, to check that the library prints nothing. Under
 * ASan stderr stays where it is, so a sanitizer report reaches the test log. */
static void capture_begin(void) {
    report = stderr;
    snprintf(capture_path, sizeof capture_path, "test_api_fuzz_%ld.out", (long)getpid());
    fflush(stdout);
    fflush(stderr);
    int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return;
    saved_stdout = dup(1);
    dup2(fd, 1);
#ifndef FUZZ_ASAN
    saved_stderr = dup(2);
    dup2(fd, 2);
    report = fdopen(saved_stderr, "w");
    if (!report) report = stdout;
#endif
    close(fd);
}

static void capture_end(void) {
    fflush(stdout);
    fflush(stderr);
    if (saved_stdout >= 0) {
        dup2(saved_stdout, 1);
        close(saved_stdout);
    }
    if (saved_stderr >= 0) {
        fflush(report);
        dup2(saved_stderr, 2);
        fclose(report); /* closes saved_stderr */
    }
    report = stderr;
    struct stat st;
    if (stat(capture_path, &st) == 0) {
        verify(st.st_size == 0, "the library", "printed to stdout or stderr", (int)st.st_size);
        unlink(capture_path);
    }
}

int main(void) {
    report = stderr;
    /* a hang (a loop over a size no array bounds) fails the test rather than CI */
    alarm(300);
    capture_begin();
    regressions();
    fuzz_plan_nulls();
    fuzz_checkpoint_declares_huge_model();
    size_t seed_n = 0;
    unsigned char *seed = checkpoint_seed(&seed_n);
    verify(seed != NULL && seed_n > 8, "checkpoint_seed", "could not save a checkpoint", 0);
    for (round_no = 0; round_no < ROUNDS; round_no++) {
        pick_isa();
        for (int i = 0; i < 3; i++) {
            fuzz_activation();
            fuzz_prelu();
            fuzz_bias();
            fuzz_softmax_xent();
            fuzz_log_softmax();
            fuzz_pair_loss();
            fuzz_optimizer();
            fuzz_gemm();
            fuzz_dense();
        }
        fuzz_settings();
        fuzz_empty_with_absurd_sizes();
        fuzz_plan();
        fuzz_known_plan();
        if (seed) fuzz_checkpoint_bytes(seed, seed_n, round_no % 4 == 0);
        if (round_no % 4 == 0) {
            model_case mc;
            fuzz_model_create(&mc);
            if (mc.model) {
                fuzz_model_use(&mc);
                if (round_no % 8 == 0) fuzz_model_save_load(&mc);
                ffnc_model_destroy(mc.model);
            }
        }
        if (round_no % 50 == 0) fuzz_safetensors_writer();
    }
    free(seed);
    capture_end();
    printf("test_api_fuzz: %ld library calls; %ld accepted random plans run; %ld mutated files "
           "accepted\n",
           calls, plans_run, mutants_accepted);
    return check_report("test_api_fuzz");
}
