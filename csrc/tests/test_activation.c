/* Activation, prelu and bias kernels against naive double references, on every ISA path. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

static double reference_forward(ffnc_activation act, double alpha, double x) {
    switch (act) {
    case FFNC_ACT_IDENTITY: return x;
    case FFNC_ACT_RELU: return x > 0 ? x : 0;
    case FFNC_ACT_LEAKY_RELU: return x > 0 ? x : alpha * x;
    case FFNC_ACT_ABS: return fabs(x);
    case FFNC_ACT_TANH: return tanh(x);
    case FFNC_ACT_SIGMOID: return sigmoid(x);
    case FFNC_ACT_SOFTPLUS: return log(1 + exp(x));
    case FFNC_ACT_HARD_TANH: return x < -1 ? -1 : x > 1 ? 1 : x;
    case FFNC_ACT_ELU: return x > 0 ? x : alpha * (exp(x) - 1);
    case FFNC_ACT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    default: return NAN;
    }
}

static double reference_derivative(ffnc_activation act, double alpha, double x) {
    switch (act) {
    case FFNC_ACT_IDENTITY: return 1;
    case FFNC_ACT_RELU: return x > 0;
    case FFNC_ACT_LEAKY_RELU: return x > 0 ? 1 : alpha;
    case FFNC_ACT_ABS: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case FFNC_ACT_TANH: return 1 - tanh(x) * tanh(x);
    case FFNC_ACT_SIGMOID: return sigmoid(x) * (1 - sigmoid(x));
    case FFNC_ACT_SOFTPLUS: return sigmoid(x);
    case FFNC_ACT_HARD_TANH: return x > -1 && x < 1;
    case FFNC_ACT_ELU: return x > 0 ? 1 : alpha * exp(x);
    case FFNC_ACT_GELU:
        return 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * 3.14159265358979323846);
    default: return NAN;
    }
}

enum { N = 1031 }; /* odd, and not a multiple of any vector width */

static void test_activations_f64(void) {
    static double x[N], y[N], g[N], dx[N];
    unsigned long long seed = 7;
    for (int i = 0; i < N; i++) x[i] = check_uniform(&seed, -6, 6);
    x[0] = 0;
    FOR_EACH_ISA(isa) {
        for (int a = 0; a < FFNC_ACT_COUNT; a++) {
            ffnc_activation act = (ffnc_activation)a;
            double alpha = 0.3;
            CHECK_OK(ffnc_activation_forward(FFNC_F64, act, alpha, N, x, y));
            for (int i = 0; i < N; i++) CHECK_CLOSE(y[i], reference_forward(act, alpha, x[i]), 1e-13, 1e-15);
            for (int i = 0; i < N; i++) g[i] = 1.5;
            const double *saved = ffnc_activation_backward_uses_dst(act) ? y : x;
            CHECK_OK(ffnc_activation_backward(FFNC_F64, act, alpha, N, g, saved, dx));
            for (int i = 0; i < N; i++)
                CHECK_CLOSE(dx[i], 1.5 * reference_derivative(act, alpha, x[i]), 1e-12, 1e-14);
        }
    }
}

static void test_activations_f32(void) {
    static float x[N], y[N], g[N], dx[N];
    unsigned long long seed = 8;
    for (int i = 0; i < N; i++) x[i] = (float)check_uniform(&seed, -6, 6);
    FOR_EACH_ISA(isa) {
        for (int a = 0; a < FFNC_ACT_COUNT; a++) {
            ffnc_activation act = (ffnc_activation)a;
            CHECK_OK(ffnc_activation_forward(FFNC_F32, act, 0.2, N, x, y));
            for (int i = 0; i < N; i++) CHECK_CLOSE(y[i], reference_forward(act, 0.2f, x[i]), 2e-6, 1e-6);
            for (int i = 0; i < N; i++) g[i] = -0.5f;
            const float *saved = ffnc_activation_backward_uses_dst(act) ? y : x;
            CHECK_OK(ffnc_activation_backward(FFNC_F32, act, 0.2, N, g, saved, dx));
            for (int i = 0; i < N; i++)
                CHECK_CLOSE(dx[i], -0.5 * reference_derivative(act, 0.2f, x[i]), 1e-5, 1e-6);
        }
    }
}

static void test_nan_propagates(void) {
    double x[3] = {NAN, 1, -1}, y[3];
    FOR_EACH_ISA(isa) {
        for (int a = 0; a < FFNC_ACT_COUNT; a++) {
            CHECK_OK(ffnc_activation_forward(FFNC_F64, (ffnc_activation)a, 0.1, 3, x, y));
            CHECK(isnan(y[0]));
        }
    }
}

static void test_argument_checks(void) {
    double x[4] = {1, 2, 3, 4}, y[4], alpha[2] = {0.1, 0.2};
    CHECK_STATUS(ffnc_activation_forward(FFNC_F64, FFNC_ACT_COUNT, 0, 4, x, y), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_activation_forward(FFNC_F64, (ffnc_activation)-1, 0, 4, x, y), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_activation_forward(FFNC_F64, FFNC_ACT_LEAKY_RELU, -0.1, 4, x, y), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_activation_forward(FFNC_F64, FFNC_ACT_ELU, NAN, 4, x, y), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_activation_forward(FFNC_F64, FFNC_ACT_RELU, 0, 4, NULL, y), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_activation_forward((ffnc_dtype)7, FFNC_ACT_RELU, 0, 4, x, y), FFNC_ERR_INVALID_DTYPE);
    CHECK_OK(ffnc_activation_forward(FFNC_F64, FFNC_ACT_RELU, 0, 0, NULL, NULL));
    CHECK_STATUS(ffnc_activation_backward(FFNC_F64, FFNC_ACT_RELU, 0, 4, x, NULL, y), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_prelu_forward(FFNC_F64, 2, 2, x, alpha, 3, y), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_prelu_forward(FFNC_F64, SIZE_MAX / 2, 3, x, alpha, 1, y), FFNC_ERR_SIZE_OVERFLOW);
    CHECK_STATUS(ffnc_prelu_forward(FFNC_F64, 2, 2, x, NULL, 1, y), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_bias_forward(FFNC_F64, SIZE_MAX / 2, 3, x, alpha, y), FFNC_ERR_SIZE_OVERFLOW);
    CHECK_STATUS(ffnc_bias_backward(FFNC_F64, 2, 2, x, NULL, 0), FFNC_ERR_NULL_POINTER);
    CHECK_STATUS(ffnc_set_num_threads(-1), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_set_isa((ffnc_isa)9), FFNC_ERR_INVALID_ARGUMENT);
    CHECK(ffnc_status_string((ffnc_status)1234) != NULL);
}

static void test_prelu_and_bias(void) {
    enum { R = 37, C = 19 };
    static double x[R * C], y[R * C], g[R * C], dx[R * C], alpha[C], dalpha[C], bias[C], dbias[C];
    unsigned long long seed = 9;
    for (int i = 0; i < R * C; i++) x[i] = check_uniform(&seed, -2, 2), g[i] = check_uniform(&seed, -1, 1);
    for (int c = 0; c < C; c++) alpha[c] = check_uniform(&seed, 0, 0.5), bias[c] = c;
    FOR_EACH_ISA(isa) {
        CHECK_OK(ffnc_prelu_forward(FFNC_F64, R, C, x, alpha, C, y));
        CHECK_OK(ffnc_prelu_backward(FFNC_F64, R, C, g, x, alpha, C, dx, dalpha, 0));
        for (int c = 0; c < C; c++) {
            double expected = 0;
            for (int r = 0; r < R; r++) {
                double v = x[r * C + c];
                CHECK_CLOSE(y[r * C + c], v > 0 ? v : alpha[c] * v, 1e-15, 0);
                CHECK_CLOSE(dx[r * C + c], v > 0 ? g[r * C + c] : alpha[c] * g[r * C + c], 1e-15, 0);
                if (v <= 0) expected += g[r * C + c] * v;
            }
            CHECK_CLOSE(dalpha[c], expected, 1e-12, 1e-14);
        }
        CHECK_OK(ffnc_bias_forward(FFNC_F64, R, C, x, bias, y));
        CHECK_OK(ffnc_bias_backward(FFNC_F64, R, C, g, dbias, 0));
        for (int c = 0; c < C; c++) {
            double expected = 0;
            for (int r = 0; r < R; r++) {
                CHECK_CLOSE(y[r * C + c], x[r * C + c] + bias[c], 1e-15, 0);
                expected += g[r * C + c];
            }
            CHECK_CLOSE(dbias[c], expected, 1e-13, 1e-14);
        }
    }
}

int main(void) {
    test_activations_f64();
    test_activations_f32();
    test_nan_propagates();
    test_argument_checks();
    test_prelu_and_bias();
    return check_report("activation");
}
