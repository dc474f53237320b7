/* ffnc-bench mlp: one training step of an MLP (relu hidden layers, softmax cross-entropy,
 * SGD momentum 0.9) as a hand-built plan, timed from C. The same step bench/step.py times
 * through the compiler. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MLP_MAX_LAYERS 32

static ffnc_plan_ref at(int arena, size_t offset) { return (ffnc_plan_ref){arena, 0, offset}; }

static double value_at(ffnc_dtype dtype, const void *p, size_t i) {
    return dtype == FFNC_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* The gradient of the mean softmax cross-entropy of the relu MLP at `params`, over one batch,
 * in plain double C (the reference of --check); NULL when memory runs out. */
static double *mlp_reference_gradient(ffnc_dtype dtype, int L, const size_t *width,
                                      const size_t *w_off, const size_t *b_off,
                                      const void *params, const void *x, const int64_t *labels,
                                      size_t batch, size_t n_params) {
    double *grad = calloc(n_params, sizeof(double));
    double *h[MLP_MAX_LAYERS + 1] = {0}, *d = NULL, *dprev = NULL;
    size_t widest = 0;
    for (int l = 0; l <= L; l++) widest = width[l] > widest ? width[l] : widest;
    int ok = grad != NULL;
    for (int l = 0; l <= L && ok; l++) ok = (h[l] = malloc(batch * width[l] * sizeof(double))) != NULL;
    if (ok) ok = (d = malloc(batch * widest * sizeof(double))) && (dprev = malloc(batch * widest * sizeof(double)));
    if (ok) {
        for (size_t i = 0; i < batch * width[0]; i++) h[0][i] = value_at(dtype, x, i);
        for (int l = 0; l < L; l++)
            for (size_t r = 0; r < batch; r++)
                for (size_t c = 0; c < width[l + 1]; c++) {
                    double z = value_at(dtype, params, b_off[l] + c);
                    for (size_t k = 0; k < width[l]; k++)
                        z += h[l][r * width[l] + k] * value_at(dtype, params, w_off[l] + k * width[l + 1] + c);
                    h[l + 1][r * width[l + 1] + c] = l + 1 < L && z <= 0 ? 0 : z;
                }
        size_t C = width[L];
        for (size_t r = 0; r < batch; r++) {
            double mx = -INFINITY, sum = 0;
            for (size_t c = 0; c < C; c++) mx = h[L][r * C + c] > mx ? h[L][r * C + c] : mx;
            for (size_t c = 0; c < C; c++) sum += exp(h[L][r * C + c] - mx);
            for (size_t c = 0; c < C; c++)
                d[r * C + c] = (exp(h[L][r * C + c] - mx) / sum - ((int64_t)c == labels[r])) / (double)batch;
        }
        for (int l = L - 1; l >= 0; l--) {
            size_t n = width[l + 1], k = width[l];
            for (size_t r = 0; r < batch; r++)
                for (size_t c = 0; c < n; c++) {
                    double g = d[r * n + c];
                    grad[b_off[l] + c] += g;
                    for (size_t i = 0; i < k; i++) grad[w_off[l] + i * n + c] += h[l][r * k + i] * g;
                }
            for (size_t r = 0; r < batch && l > 0; r++)
                for (size_t i = 0; i < k; i++) {
                    double s = 0;
                    for (size_t c = 0; c < n; c++)
                        s += d[r * n + c] * value_at(dtype, params, w_off[l] + i * n + c);
                    dprev[r * k + i] = h[l][r * k + i] > 0 ? s : 0; /* relu of layer l - 1 */
                }
            double *t = d;
            d = dprev, dprev = t;
        }
    }
    for (int l = 0; l <= L; l++) free(h[l]);
    free(d), free(dprev);
    if (!ok) {
        free(grad);
        return NULL;
    }
    return grad;
}

/* The names Plan.describe gives the instructions this benchmark builds. */
static const char *mlp_opcode_name(int32_t opcode) {
    switch (opcode) {
    case FFNC_OP_DENSE_FORWARD: return "dense_forward";
    case FFNC_OP_DENSE_BACKWARD: return "dense_backward";
    case FFNC_OP_XENT_FORWARD: return "xent_forward";
    case FFNC_OP_XENT_BACKWARD: return "xent_backward";
    case FFNC_OP_MOMENTUM: return "momentum";
    default: return "?";
    }
}

/* Flops of the matrix products one run of `in` computes over `batch` rows: 2 m n k for a
 * dense forward; for a dense backward, 2 m n k for each of diff_src (operand 5) and
 * diff_weights (operand 6) that it writes; 0 for the others (their work is not a product). */
static double mlp_instr_flops(const ffnc_plan_instr *in, size_t batch) {
    double mnk = 2.0 * (double)(in->m.fixed + in->m.per_batch * batch) *
                 (double)(in->n.fixed + in->n.per_batch * batch) *
                 (double)(in->k.fixed + in->k.per_batch * batch);
    if (in->opcode == FFNC_OP_DENSE_FORWARD) return mnk;
    if (in->opcode == FFNC_OP_DENSE_BACKWARD)
        return mnk * ((in->refs[5].arena != FFNC_PLAN_NONE) + (in->refs[6].arena != FFNC_PLAN_NONE));
    return 0;
}

/* GFLOP/s of instruction `in` over `steps` runs that took `seconds` in all: 0 where it computes
 * no product or the clock saw no time (JSON has no NaN). */
static double mlp_instr_gflops(const ffnc_plan_instr *in, size_t batch, size_t steps,
                               double seconds) {
    double flops = mlp_instr_flops(in, batch);
    return flops > 0 && seconds > 0 ? flops * (double)steps / seconds / 1e9 : 0.0;
}

int ffnc_bench_mlp(int argc, char **argv) {
    const char *sub = "mlp", *layers_arg = "784,512,512,10";
    bench_common common = {FFNC_F32, 0, 0, 0, 0, 0};
    size_t batch = 128, steps = 100;
    int profile = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--profile") == 0) {
            profile = 1;
            continue;
        }
        int r = bench_opt_common(argc, argv, &i, &common);
        if (r == 0) r = bench_opt_verify(argc, argv, &i, &common);
        if (r == 0) r = bench_opt_string(argc, argv, &i, "--layers", &layers_arg);
        if (r == 0) r = bench_opt_size(argc, argv, &i, "--batch", &batch);
        if (r == 0) r = bench_opt_size(argc, argv, &i, "--steps", &steps);
        if (r == 0) return bench_usage_error(sub, "unknown option", argv[i]);
        if (r < 0) return 2;
    }
    size_t width[MLP_MAX_LAYERS + 1];
    int nl = 0;
    for (const char *p = layers_arg; *p;) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v == 0 || nl > MLP_MAX_LAYERS)
            return bench_usage_error(sub, "--layers expects sizes like 784,512,10", layers_arg);
        width[nl++] = (size_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return bench_usage_error(sub, "--layers expects sizes like 784,512,10", layers_arg);
    }
    if (nl < 2 || batch == 0 || steps == 0)
        return bench_usage_error(sub, "need two layer sizes, --batch and --steps >= 1", NULL);
    if (bench_apply_common(&common)) return bench_usage_error(sub, "bad --threads", NULL);
    int L = nl - 1;

    /* params: W_i then b_i per layer. acts: h_i (B x n_i) and dh_i for i = 1..L, probs,
     * loss. Layer L's h is the logits. */
    size_t w_off[MLP_MAX_LAYERS], b_off[MLP_MAX_LAYERS], h_off[MLP_MAX_LAYERS + 1],
        dh_off[MLP_MAX_LAYERS + 1], params = 0, acts = 0;
    double flops = 0;
    for (int l = 0; l < L; l++) {
        w_off[l] = params, params += width[l] * width[l + 1];
        b_off[l] = params, params += width[l + 1];
        h_off[l + 1] = acts, acts += batch * width[l + 1];
        dh_off[l + 1] = acts, acts += batch * width[l + 1];
        flops += 6.0 * (double)batch * (double)width[l] * (double)width[l + 1];
    }
    size_t probs = acts, loss = acts + batch * width[L];
    acts = loss + 1;

    ffnc_plan_instr ins[3 * MLP_MAX_LAYERS + 3];
    memset(ins, 0, sizeof ins);
    int n = 0;
    for (int l = 0; l < L; l++, n++) {
        ins[n].opcode = FFNC_OP_DENSE_FORWARD;
        ins[n].m = (ffnc_plan_size){0, 1};
        ins[n].n = (ffnc_plan_size){width[l + 1], 0};
        ins[n].k = (ffnc_plan_size){width[l], 0};
        ins[n].subop = l + 1 < L ? FFNC_ACT_RELU : FFNC_ACT_IDENTITY;
        ins[n].refs[0] = l == 0 ? (ffnc_plan_ref){FFNC_PLAN_INPUT, 0, 0} : at(FFNC_PLAN_ACTS, h_off[l]);
        ins[n].refs[1] = at(FFNC_PLAN_PARAMS, w_off[l]);
        ins[n].refs[2] = at(FFNC_PLAN_PARAMS, b_off[l]);
        ins[n].refs[4] = at(FFNC_PLAN_ACTS, h_off[l + 1]);
    }
    ins[n].opcode = FFNC_OP_XENT_FORWARD;
    ins[n].m = (ffnc_plan_size){0, 1};
    ins[n].n = (ffnc_plan_size){width[L], 0};
    ins[n].alpha = 1, ins[n].flags = FFNC_PLAN_MEAN;
    ins[n].refs[0] = at(FFNC_PLAN_ACTS, h_off[L]);
    ins[n].refs[1] = (ffnc_plan_ref){FFNC_PLAN_INPUT, 1, 0};
    ins[n].refs[2] = at(FFNC_PLAN_ACTS, probs);
    ins[n].refs[3] = at(FFNC_PLAN_ACTS, loss);
    n++;
    ins[n] = ins[n - 1];
    ins[n].opcode = FFNC_OP_XENT_BACKWARD;
    ins[n].refs[0] = at(FFNC_PLAN_ACTS, probs);
    ins[n].refs[2] = (ffnc_plan_ref){0};
    ins[n].refs[3] = at(FFNC_PLAN_ACTS, dh_off[L]);
    n++;
    for (int l = L - 1; l >= 0; l--, n++) {
        int hidden = l + 1 < L;
        ins[n].opcode = FFNC_OP_DENSE_BACKWARD;
        ins[n].m = (ffnc_plan_size){0, 1};
        ins[n].n = (ffnc_plan_size){width[l + 1], 0};
        ins[n].k = (ffnc_plan_size){width[l], 0};
        ins[n].subop = hidden ? FFNC_ACT_RELU : FFNC_ACT_IDENTITY;
        ins[n].refs[0] = l == 0 ? (ffnc_plan_ref){FFNC_PLAN_INPUT, 0, 0} : at(FFNC_PLAN_ACTS, h_off[l]);
        if (l > 0) ins[n].refs[1] = at(FFNC_PLAN_PARAMS, w_off[l]);
        if (hidden) ins[n].refs[2] = at(FFNC_PLAN_ACTS, h_off[l + 1]);
        ins[n].refs[3] = at(FFNC_PLAN_ACTS, dh_off[l + 1]);
        if (hidden) ins[n].refs[4] = at(FFNC_PLAN_ACTS, dh_off[l + 1]);
        if (l > 0) ins[n].refs[5] = at(FFNC_PLAN_ACTS, dh_off[l]);
        ins[n].refs[6] = at(FFNC_PLAN_GRADS, w_off[l]);
        ins[n].refs[7] = at(FFNC_PLAN_GRADS, b_off[l]);
    }
    ins[n].opcode = FFNC_OP_MOMENTUM;
    ins[n].n = (ffnc_plan_size){params, 0};
    ins[n].hyper[0] = 0.01, ins[n].hyper[1] = 0.9;
    ins[n].refs[0] = at(FFNC_PLAN_PARAMS, 0);
    ins[n].refs[1] = at(FFNC_PLAN_GRADS, 0);
    ins[n].refs[2] = at(FFNC_PLAN_STATE, 0);
    n++;

    ffnc_plan_input slots[2] = {{FFNC_PLAN_INPUT_FLOAT, {0, width[0]}},
                                {FFNC_PLAN_INPUT_INT64, {0, 1}}};
    ffnc_plan_desc desc = {common.dtype, batch, {params, params, params, acts}, 2, slots,
                           (size_t)n, ins, 0, NULL};
    ffnc_plan *plan = NULL;
    size_t bad = 0;
    ffnc_status s = ffnc_plan_create(&desc, &plan, &bad);
    void *x = bench_random_array(common.dtype, batch * width[0], -1, 1, 1);
    int64_t *labels = malloc(batch * sizeof *labels);
    if (s != FFNC_OK || !x || !labels) {
        fprintf(stderr, "ffnc-bench mlp: cannot build the plan: %s (instruction %zu)\n",
                ffnc_status_string(s), bad);
        ffnc_plan_destroy(plan);
        free(x);
        free(labels);
        return 1;
    }
    void *p;
    size_t np_;
    ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, &p, &np_);
    size_t elem = common.dtype == FFNC_F32 ? 4 : 8;
    void *init = bench_random_array(common.dtype, params, -0.05, 0.05, 2);
    if (init) memcpy(p, init, params * elem);
    for (size_t r = 0; r < batch; r++) labels[r] = (int64_t)(r % width[L]);
    const void *inputs[2] = {x, labels};
    bench_verdict verdict = {0};
    int status = init ? 0 : 1;
    if (status == 0 && common.check) {
        /* one step from the initial parameters: the plan's gradients against the reference */
        status = ffnc_plan_run(plan, batch, inputs, NULL);
        void *g;
        size_t ng;
        ffnc_plan_arena_data(plan, FFNC_PLAN_GRADS, &g, &ng);
        double *ref = mlp_reference_gradient(common.dtype, L, width, w_off, b_off, init, x,
                                             labels, batch, params);
        if (status == 0 && ref) {
            double largest = 0;
            for (size_t i = 0; i < params; i++) largest = fabs(ref[i]) > largest ? fabs(ref[i]) : largest;
            double *scale = malloc(params * sizeof(double));
            if (scale) {
                for (size_t i = 0; i < params; i++) scale[i] = largest > 0 ? largest : 1;
                bench_compare(&verdict, common.dtype, g, ref, scale, params,
                              common.dtype == FFNC_F32 ? 1e-4 : 1e-10);
            }
            free(scale);
        } else {
            verdict.checked = 1;
        }
        free(ref);
    }
    /* the timed run starts from the initial parameters and zero optimizer state */
    ffnc_plan_destroy(plan);
    plan = NULL;
    if (status == 0) status = ffnc_plan_create(&desc, &plan, NULL);
    if (status == 0) {
        ffnc_plan_arena_data(plan, FFNC_PLAN_PARAMS, &p, &np_);
        memcpy(p, init, params * elem);
    }
    for (int w = 0; w < 3 && status == 0; w++) status = ffnc_plan_run(plan, batch, inputs, NULL);
    double *times = malloc(steps * sizeof(double));
    if (!times) status = 1;
    double start = bench_now();
    for (size_t i = 0; i < steps && status == 0; i++) {
        double t0 = bench_now();
        status = ffnc_plan_run(plan, batch, inputs, NULL);
        times[i] = bench_now() - t0;
    }
    double elapsed = bench_now() - start;
    /* --profile: as many steps again, timed per instruction (after the timed run, which the
     * clock reads would otherwise slow) */
    double *instr_s = profile ? calloc((size_t)n, sizeof(double)) : NULL;
    if (profile && !instr_s) status = 1;
    for (size_t i = 0; profile && i < steps && status == 0; i++)
        status = ffnc_plan_run_timed(plan, batch, inputs, instr_s, NULL);
    if (status == 0 && common.repeat_bitwise) {
        /* a second plan from the same start, the same steps: the same parameters, bit for bit */
        ffnc_plan *twin = NULL;
        void *q;
        verdict.repeated = 1;
        if (ffnc_plan_create(&desc, &twin, NULL) == FFNC_OK) {
            ffnc_plan_arena_data(twin, FFNC_PLAN_PARAMS, &q, &np_);
            memcpy(q, init, params * elem);
            int ok = 1;
            for (size_t i = 0; i < steps + 3 && ok; i++)
                ok = ffnc_plan_run(twin, batch, inputs, NULL) == FFNC_OK;
            verdict.bitwise_equal = ok && memcmp(p, q, params * elem) == 0;
        }
        ffnc_plan_destroy(twin);
    }
    if (status != 0) {
        fprintf(stderr, "ffnc-bench mlp: step failed: %s\n", ffnc_status_string(status));
    } else {
        double us = elapsed / (double)steps * 1e6;
        bench_stats st = bench_summarize(times, (int)steps);
        if (common.json) {
            bench_json_begin("mlp", &common);
            printf(", \"layers\": \"%s\", \"batch\": %zu, \"steps\": %zu, \"samples_per_s\": %.1f, "
                   "\"us_per_step\": %.3f, \"gflops\": %.3f, \"median_s\": %.9g, \"min_s\": %.9g, "
                   "\"max_s\": %.9g, \"peak_gflops\": %.1f",
                   layers_arg, batch, steps, (double)batch * (double)steps / elapsed, us,
                   flops * (double)steps / elapsed / 1e9, st.median, st.min, st.max,
                   bench_peak_gflops_per_core(common.dtype) * ffnc_get_num_threads());
            if (profile) {
                printf(", \"instr_us\": [");
                for (int q = 0; q < n; q++)
                    printf("%s%.3f", q ? ", " : "", instr_s[q] / (double)steps * 1e6);
                printf("], \"instr_ops\": [");
                for (int q = 0; q < n; q++)
                    printf("%s\"%s\"", q ? ", " : "", mlp_opcode_name(ins[q].opcode));
                printf("], \"instr_gflops\": [");
                for (int q = 0; q < n; q++)
                    printf("%s%.3f", q ? ", " : "",
                           mlp_instr_gflops(&ins[q], batch, steps, instr_s[q]));
                printf("]");
            }
            bench_print_verdict(&verdict, 1);
            printf("}\n");
        } else {
            printf("mlp %s batch %zu %s, %d threads: %.2f us/step (median %.2f, min %.2f, max "
                   "%.2f), %.0f samples/s, %.2f GFLOP/s",
                   layers_arg, batch, bench_dtype_name(common.dtype), ffnc_get_num_threads(), us,
                   st.median * 1e6, st.min * 1e6, st.max * 1e6,
                   (double)batch * (double)steps / elapsed, flops * (double)steps / elapsed / 1e9);
            bench_print_verdict(&verdict, 0);
            printf("\n");
            for (int q = 0; profile && q < n; q++) {
                double gflops_q = mlp_instr_gflops(&ins[q], batch, steps, instr_s[q]);
                printf("  instruction %2d %-15s %10.2f us/step", q, mlp_opcode_name(ins[q].opcode),
                       instr_s[q] / (double)steps * 1e6);
                if (gflops_q > 0) printf(" %8.2f GFLOP/s", gflops_q);
                printf("\n");
            }
        }
        status = bench_verdict_failed(&verdict);
    }
    ffnc_plan_destroy(plan);
    free(init);
    free(times);
    free(instr_s);
    free(x);
    free(labels);
    return status == 0 ? 0 : 1;
}
