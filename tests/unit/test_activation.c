/* test_activation.c — every form of activation spec Keras writes, errors,
 * serialization round trips, the scalar pass against independent
 * double-precision formulas (tf.keras 2 definitions), and every Keras 3.15
 * activation, with both Keras's semantics where they differ, against
 * tests/numpy_ref.py: directly, and through single-layer Conv2DTranspose
 * models with Keras 3 configs (the engine's fused and portable paths). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "deconvd/activation.h"
#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layer.h"
#include "deconvd/model.h"
#include "deconvd/npy.h"
#include "testutil.h"

static struct dcv_json *pj(const char *text)
{
    char err[DCV_ERRLEN] = "";
    struct dcv_json *j = dcv_json_parse(text, strlen(text), err);
    cr_assert_not_null(j, "test JSON does not parse (%s): %s", err, text);
    return j;
}

static int parse_act(const char *json, struct dcv_activation *a, char *err)
{
    struct dcv_json *j = pj(json);
    memset(err, 0, DCV_ERRLEN);
    int rc = dcv_activation_parse(j, a, err);
    dcv_json_free(j);
    return rc;
}

static struct dcv_activation must(const char *json)
{
    struct dcv_activation a;
    char err[DCV_ERRLEN];
    int rc = parse_act(json, &a, err);
    cr_assert_eq(rc, 0, "%s: %s", json, err);
    return a;
}

static void expect_fail(const char *json, ...)
{
    struct dcv_activation a;
    char err[DCV_ERRLEN];
    int rc = parse_act(json, &a, err);
    cr_assert_eq(rc, DCV_EINVAL, "%s should fail with EINVAL, got %d", json, rc);
    va_list ap;
    va_start(ap, json);
    for (const char *s; (s = va_arg(ap, const char *));)
        cr_expect(strstr(err, s), "message lacks \"%s\": %s", s, err);
    va_end(ap);
}

/* ---- parsing ------------------------------------------------------------ */

Test(activation, names)
{
    static const struct { const char *json; enum dcv_act_kind kind; } t[] = {
        { "\"linear\"", DCV_ACT_LINEAR },       { "\"relu\"", DCV_ACT_RELU },
        { "\"sigmoid\"", DCV_ACT_SIGMOID },     { "\"tanh\"", DCV_ACT_TANH },
        { "\"softplus\"", DCV_ACT_SOFTPLUS },   { "\"softsign\"", DCV_ACT_SOFTSIGN },
        { "\"elu\"", DCV_ACT_ELU },             { "\"selu\"", DCV_ACT_SELU },
        { "\"exponential\"", DCV_ACT_EXPONENTIAL },
        { "\"hard_sigmoid\"", DCV_ACT_HARD_SIGMOID },
        { "\"swish\"", DCV_ACT_SWISH },         { "\"silu\"", DCV_ACT_SWISH },
        { "\"gelu\"", DCV_ACT_GELU },           { "\"relu6\"", DCV_ACT_RELU6 },
        { "\"leaky_relu\"", DCV_ACT_LEAKY_RELU }, { "\"mish\"", DCV_ACT_MISH },
        { "\"softmax\"", DCV_ACT_SOFTMAX },     { "\"hard_silu\"", DCV_ACT_HARD_SILU },
        { "\"hard_swish\"", DCV_ACT_HARD_SILU }, { "\"log_sigmoid\"", DCV_ACT_LOG_SIGMOID },
        { "\"celu\"", DCV_ACT_CELU },         { "\"glu\"", DCV_ACT_GLU },
        { "\"hard_shrink\"", DCV_ACT_HARD_SHRINK }, { "\"hard_tanh\"", DCV_ACT_HARD_TANH },
        { "\"log_softmax\"", DCV_ACT_LOG_SOFTMAX }, { "\"soft_shrink\"", DCV_ACT_SOFT_SHRINK },
        { "\"sparse_plus\"", DCV_ACT_SPARSE_PLUS },
        { "\"sparse_sigmoid\"", DCV_ACT_SPARSE_SIGMOID },
        { "\"sparsemax\"", DCV_ACT_SPARSEMAX }, { "\"squareplus\"", DCV_ACT_SQUAREPLUS },
        { "\"tanh_shrink\"", DCV_ACT_TANH_SHRINK },
        { "null", DCV_ACT_LINEAR },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct dcv_activation a = must(t[i].json);
        cr_expect_eq(a.kind, t[i].kind, "%s → %s", t[i].json, dcv_activation_name(a.kind));
    }
    /* a missing spec (NULL) is linear too */
    struct dcv_activation a;
    cr_assert_eq(dcv_activation_parse(NULL, &a, NULL), 0);
    cr_expect_eq(a.kind, DCV_ACT_LINEAR);
    cr_expect_str_eq(dcv_activation_name(DCV_ACT_GELU), "gelu");
    cr_expect_str_eq(dcv_activation_name(DCV_ACT_COUNT), "unknown");
}

Test(activation, keras3_function_dict)
{
    struct dcv_activation a = must("{\"class_name\": \"function\", \"config\": \"relu\"}");
    cr_expect_eq(a.kind, DCV_ACT_RELU);
    a = must("{\"module\": \"keras.activations\", \"class_name\": \"function\", "
             "\"config\": \"gelu\", \"registered_name\": \"gelu\"}");
    cr_expect_eq(a.kind, DCV_ACT_GELU);
    cr_expect(!a.approximate);
    a = must("{\"module\": \"keras.activations\", \"class_name\": \"function\", "
             "\"config\": {}, \"registered_name\": \"tanh\"}");
    cr_expect_eq(a.kind, DCV_ACT_TANH);
}

Test(activation, leaky_relu_forms_and_defaults)
{
    /* Keras 3 LeakyReLU layer */
    struct dcv_activation a = must("{\"class_name\": \"LeakyReLU\", \"config\": "
                                   "{\"name\": \"lr\", \"negative_slope\": 0.1}}");
    cr_expect_eq(a.kind, DCV_ACT_LEAKY_RELU);
    cr_expect_float_eq(a.alpha, 0.1f, 1e-7);
    /* Keras 2 LeakyReLU layer */
    a = must("{\"class_name\": \"LeakyReLU\", \"config\": {\"alpha\": 0.1}}");
    cr_expect_eq(a.kind, DCV_ACT_LEAKY_RELU);
    cr_expect_float_eq(a.alpha, 0.1f, 1e-7);
    /* the layer's default slope is 0.3 ... */
    a = must("{\"class_name\": \"LeakyReLU\", \"config\": {}}");
    cr_expect_float_eq(a.alpha, 0.3f, 1e-7);
    /* ... the function's is 0.2 */
    a = must("\"leaky_relu\"");
    cr_expect_float_eq(a.alpha, 0.2f, 1e-7);
    float x = -2.0f;
    dcv_activation_apply(&a, &x, 1, 1, 1);
    cr_expect_float_eq(x, -0.4f, 1e-6);
}

Test(activation, relu_and_elu_layers)
{
    struct dcv_activation a = must("{\"class_name\": \"ReLU\", \"config\": {\"max_value\": 6}}");
    cr_expect_eq(a.kind, DCV_ACT_RELU);
    cr_expect_float_eq(a.max_value, 6.0f, 0);
    float x[4] = { -1.0f, 3.0f, 7.0f, 6.0f };
    dcv_activation_apply(&a, x, 1, 4, 1);
    cr_expect_float_eq(x[0], 0.0f, 0);
    cr_expect_float_eq(x[1], 3.0f, 0);
    cr_expect_float_eq(x[2], 6.0f, 0);
    cr_expect_float_eq(x[3], 6.0f, 0);

    /* Keras 3 ReLU layer config, all keys present */
    a = must("{\"class_name\": \"ReLU\", \"config\": {\"name\": \"re_lu\", \"trainable\": true, "
             "\"max_value\": null, \"negative_slope\": 0.0, \"threshold\": 0.0}}");
    cr_expect_eq(a.kind, DCV_ACT_RELU);
    cr_expect(isinf(a.max_value));

    /* ReLU with a slope is a leaky relu */
    a = must("{\"class_name\": \"ReLU\", \"config\": {\"negative_slope\": 0.25}}");
    cr_expect_eq(a.kind, DCV_ACT_LEAKY_RELU);
    cr_expect_float_eq(a.alpha, 0.25f, 1e-7);

    /* threshold: values below it get slope*(x - threshold) */
    a = must("{\"class_name\": \"ReLU\", \"config\": {\"threshold\": 1.0, "
             "\"negative_slope\": 0.5, \"max_value\": 4}}");
    float y[3] = { 0.0f, 2.0f, 9.0f };
    dcv_activation_apply(&a, y, 1, 3, 1);
    cr_expect_float_eq(y[0], -0.5f, 1e-6);
    cr_expect_float_eq(y[1], 2.0f, 1e-6);
    cr_expect_float_eq(y[2], 4.0f, 1e-6);

    a = must("{\"class_name\": \"ELU\", \"config\": {\"alpha\": 0.5}}");
    cr_expect_eq(a.kind, DCV_ACT_ELU);
    cr_expect_float_eq(a.alpha, 0.5f, 0);
    float z = -3.0f;
    dcv_activation_apply(&a, &z, 1, 1, 1);
    cr_expect_float_eq(z, 0.5 * expm1(-3.0), 1e-6);
    a = must("\"elu\"");
    cr_expect_float_eq(a.alpha, 1.0f, 0);
    a = must("\"relu6\"");
    cr_expect_float_eq(a.max_value, 6.0f, 0);
}

Test(activation, activation_layer_wrapper)
{
    struct dcv_activation a = must("{\"class_name\": \"Activation\", \"config\": {\"name\": "
                                   "\"act\", \"trainable\": true, \"dtype\": \"float32\", "
                                   "\"activation\": \"tanh\"}}");
    cr_expect_eq(a.kind, DCV_ACT_TANH);
    a = must("{\"class_name\": \"Activation\", \"config\": {\"activation\": {\"class_name\": "
             "\"function\", \"config\": \"silu\"}}}");
    cr_expect_eq(a.kind, DCV_ACT_SWISH);
}

Test(activation, softmax_axis)
{
    struct dcv_activation a = must("{\"class_name\": \"Softmax\", \"config\": {\"axis\": -1}}");
    cr_expect_eq(a.kind, DCV_ACT_SOFTMAX);
    a = must("{\"class_name\": \"Softmax\", \"config\": {\"axis\": [-1]}}");
    cr_expect_eq(a.kind, DCV_ACT_SOFTMAX);
    a = must("{\"class_name\": \"Softmax\", \"config\": {}}");
    cr_expect_eq(a.kind, DCV_ACT_SOFTMAX);
    expect_fail("{\"class_name\": \"Softmax\", \"config\": {\"axis\": 1}}", "axis", "-1", NULL);
    expect_fail("{\"class_name\": \"Softmax\", \"config\": {\"axis\": [1, 2]}}", "axis", NULL);
}

Test(activation, gelu_approximate)
{
    struct dcv_activation a = must("{\"class_name\": \"gelu\", \"config\": "
                                   "{\"approximate\": true}}");
    cr_expect_eq(a.kind, DCV_ACT_GELU);
    cr_expect(a.approximate);
}

Test(activation, errors)
{
    expect_fail("\"frobnicate\"", "frobnicate", "relu", "gelu", "softmax", "silu", NULL);
    expect_fail("{\"class_name\": \"PReLU\", \"config\": {}}", "PReLU", "supported", NULL);
    expect_fail("{\"class_name\": \"function\", \"config\": \"nope\"}", "nope", NULL);
    expect_fail("42", "activation", "number", NULL);
    expect_fail("[\"relu\"]", "activation", "array", NULL);
    expect_fail("{\"config\": \"relu\"}", "class_name", NULL);
    expect_fail("{\"class_name\": \"LeakyReLU\", \"config\": {\"negative_slope\": \"x\"}}",
                "negative_slope", "string", NULL);
}

/* ---- serialization ------------------------------------------------------ */

static void round_trip(const char *json)
{
    struct dcv_activation a = must(json), b;
    struct dcv_json *j = dcv_activation_to_json(&a);
    cr_assert_not_null(j);
    char err[DCV_ERRLEN] = "";
    char *s = dcv_json_print(j);
    cr_assert_eq(dcv_activation_parse(j, &b, err), 0, "%s → %s: %s", json, s, err);
    cr_expect_eq(a.kind, b.kind, "%s → %s", json, s);
    cr_expect_float_eq(a.alpha, b.alpha, 0, "%s → %s", json, s);
    cr_expect(a.max_value == b.max_value, "%s → %s", json, s);
    cr_expect_float_eq(a.threshold, b.threshold, 0, "%s → %s", json, s);
    cr_expect_eq(a.approximate, b.approximate, "%s → %s", json, s);
    free(s);
    dcv_json_free(j);
}

Test(activation, to_json_round_trip)
{
    const char *t[] = {
        "\"relu\"", "\"linear\"", "\"gelu\"", "\"relu6\"", "\"leaky_relu\"", "\"elu\"",
        "\"softmax\"", "\"mish\"", "\"hard_sigmoid\"",
        "{\"class_name\": \"LeakyReLU\", \"config\": {\"negative_slope\": 0.1}}",
        "{\"class_name\": \"LeakyReLU\", \"config\": {}}",
        "{\"class_name\": \"ReLU\", \"config\": {\"max_value\": 6}}",
        "{\"class_name\": \"ReLU\", \"config\": {\"max_value\": 2.5, \"threshold\": 0.5}}",
        "{\"class_name\": \"ELU\", \"config\": {\"alpha\": 0.5}}",
        "{\"class_name\": \"gelu\", \"config\": {\"approximate\": true}}",
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) round_trip(t[i]);

    /* defaults serialize as the bare name */
    struct dcv_activation a = must("{\"class_name\": \"function\", \"config\": \"relu\"}");
    struct dcv_json *j = dcv_activation_to_json(&a);
    cr_expect_str_eq(dcv_json_string(j), "relu");
    dcv_json_free(j);
    a = must("\"silu\"");
    j = dcv_activation_to_json(&a);
    cr_expect_str_eq(dcv_json_string(j), "swish");
    dcv_json_free(j);
    /* non-defaults as {"class_name", "config"} */
    a = must("{\"class_name\": \"LeakyReLU\", \"config\": {\"negative_slope\": 0.1}}");
    j = dcv_activation_to_json(&a);
    cr_expect_eq(dcv_json_type(j), DCV_JSON_OBJECT);
    cr_expect_str_eq(dcv_json_string(dcv_json_get(j, "class_name")), "leaky_relu");
    cr_expect_float_eq(dcv_json_number(dcv_json_get(dcv_json_get(j, "config"),
                                                    "negative_slope")), 0.1, 1e-7);
    dcv_json_free(j);
}

/* ---- values ------------------------------------------------------------- */

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static double ref(enum dcv_act_kind k, double x)
{
    switch (k) {
    case DCV_ACT_LINEAR: return x;
    case DCV_ACT_RELU: return x > 0 ? x : 0;
    case DCV_ACT_SIGMOID: return ref_sigmoid(x);
    case DCV_ACT_TANH: return tanh(x);
    case DCV_ACT_SOFTPLUS: return log(1.0 + exp(x));
    case DCV_ACT_SOFTSIGN: return x / (1.0 + fabs(x));
    case DCV_ACT_ELU: return x > 0 ? x : exp(x) - 1.0;
    case DCV_ACT_SELU:
        return 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * (exp(x) - 1.0));
    case DCV_ACT_EXPONENTIAL: return exp(x);
    case DCV_ACT_HARD_SIGMOID: return fmin(fmax(0.2 * x + 0.5, 0.0), 1.0);
    case DCV_ACT_SWISH: return x * ref_sigmoid(x);
    case DCV_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case DCV_ACT_RELU6: return fmin(fmax(x, 0.0), 6.0);
    case DCV_ACT_LEAKY_RELU: return x > 0 ? x : 0.2 * x;
    case DCV_ACT_MISH: return x * tanh(log1p(exp(x)));
    case DCV_ACT_HARD_SILU: return x * fmin(fmax(x + 3.0, 0.0), 6.0) / 6.0;
    case DCV_ACT_LOG_SIGMOID: return log(ref_sigmoid(x));
    default: cr_assert_fail("no reference for %d", (int)k);
    }
    return NAN;
}

static const double points[] = { -3.0, -0.5, 0.0, 0.5, 3.0 };
#define NPTS (sizeof points / sizeof points[0])

static void check_kind(const struct dcv_activation *a, double (*f)(double, const void *),
                       const void *ctx, const char *label)
{
    float x[NPTS];
    for (size_t i = 0; i < NPTS; i++) x[i] = (float)points[i];
    dcv_activation_apply(a, x, 1, NPTS, 1);
    for (size_t i = 0; i < NPTS; i++) {
        double want = f(points[i], ctx);
        double tol = 2e-6 * fmax(1.0, fabs(want));
        cr_expect(fabs((double)x[i] - want) <= tol, "%s(%g) = %.9g, want %.9g", label,
                  points[i], (double)x[i], want);
    }
}

static double by_kind(double x, const void *ctx)
{
    return ref(*(const enum dcv_act_kind *)ctx, x);
}

/* The kinds tf.keras 2 has (ref() above); Keras 3's additions are checked
 * against NumPy below. */
Test(activation, pointwise_values_match_reference)
{
    for (int k = 0; k <= DCV_ACT_LOG_SIGMOID; k++) {
        if (k == DCV_ACT_SOFTMAX) continue;
        char json[64];
        snprintf(json, sizeof json, "\"%s\"", dcv_activation_name((enum dcv_act_kind)k));
        struct dcv_activation a = must(json);
        cr_assert_eq((int)a.kind, k);
        enum dcv_act_kind kind = (enum dcv_act_kind)k;
        check_kind(&a, by_kind, &kind, dcv_activation_name(kind));
    }
}

static double ref_leaky01(double x, const void *c) { (void)c; return x > 0 ? x : 0.1 * x; }
static double ref_elu05(double x, const void *c) { (void)c; return x > 0 ? x : 0.5 * expm1(x); }
static double ref_relu_cap2(double x, const void *c) { (void)c; return fmin(fmax(x, 0), 2.0); }
static double ref_gelu_tanh(double x, const void *c)
{
    (void)c;
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

Test(activation, parameterized_values_match_reference)
{
    struct dcv_activation a = must("{\"class_name\": \"LeakyReLU\", \"config\": "
                                   "{\"negative_slope\": 0.1}}");
    check_kind(&a, ref_leaky01, NULL, "leaky_relu(0.1)");
    a = must("{\"class_name\": \"ELU\", \"config\": {\"alpha\": 0.5}}");
    check_kind(&a, ref_elu05, NULL, "elu(0.5)");
    a = must("{\"class_name\": \"ReLU\", \"config\": {\"max_value\": 2}}");
    check_kind(&a, ref_relu_cap2, NULL, "relu(max 2)");
    a = must("{\"class_name\": \"gelu\", \"config\": {\"approximate\": true}}");
    check_kind(&a, ref_gelu_tanh, NULL, "gelu(approximate)");
}

Test(activation, extreme_inputs_stay_finite)
{
    const enum dcv_act_kind kinds[] = { DCV_ACT_SOFTPLUS, DCV_ACT_MISH, DCV_ACT_LOG_SIGMOID,
                                        DCV_ACT_SIGMOID, DCV_ACT_SWISH, DCV_ACT_GELU,
                                        DCV_ACT_SELU, DCV_ACT_TANH };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        struct dcv_activation a = must("\"linear\"");
        a.kind = kinds[i];
        float x[4] = { -100.0f, 100.0f, -1e30f, 1e30f };
        dcv_activation_apply(&a, x, 1, 4, 1);
        for (int j = 0; j < 4; j++)
            cr_expect(!isnan(x[j]), "%s gives NaN at index %d", dcv_activation_name(kinds[i]),
                      j);
    }
    struct dcv_activation sp = must("\"softplus\"");
    float big = 100.0f;
    dcv_activation_apply(&sp, &big, 1, 1, 1);
    cr_expect_float_eq(big, 100.0f, 1e-4);
}

Test(activation, linear_leaves_data_alone)
{
    struct dcv_activation a = must("\"linear\"");
    float x[3] = { -1.5f, NAN, 2.0f };
    dcv_activation_apply(&a, x, 1, 3, 1);
    cr_expect_float_eq(x[0], -1.5f, 0);
    cr_expect(isnan(x[1]));
    cr_expect_float_eq(x[2], 2.0f, 0);
}

Test(activation, softmax_along_middle_axis)
{
    enum { OUTER = 2, LEN = 3, INNER = 4 };
    float x[OUTER * LEN * INNER];
    double orig[OUTER * LEN * INNER];
    for (int i = 0; i < OUTER * LEN * INNER; i++)
        orig[i] = x[i] = (float)(0.37 * i - 2.0 + (i % 5) * 0.9);
    struct dcv_activation a = must("\"softmax\"");
    dcv_activation_apply(&a, x, OUTER, LEN, INNER);
    for (int o = 0; o < OUTER; o++)
        for (int in = 0; in < INNER; in++) {
            double sum = 0, den = 0;
            for (int k = 0; k < LEN; k++) den += exp(orig[(o * LEN + k) * INNER + in]);
            for (int k = 0; k < LEN; k++) {
                int idx = (o * LEN + k) * INNER + in;
                sum += x[idx];
                cr_expect_float_eq(x[idx], exp(orig[idx]) / den, 1e-6, "o=%d k=%d i=%d", o, k,
                                   in);
            }
            cr_expect_float_eq(sum, 1.0, 1e-5, "o=%d i=%d sums to %g", o, in, sum);
        }

    /* numerically stable for large logits */
    float big[3] = { 1000.0f, 1000.0f, -1000.0f };
    dcv_activation_apply(&a, big, 1, 3, 1);
    cr_expect_float_eq(big[0], 0.5f, 1e-6);
    cr_expect_float_eq(big[1], 0.5f, 1e-6);
    cr_expect_float_eq(big[2], 0.0f, 1e-6);
}

/* ---- the ReLU family's zeros --------------------------------------------
 * Keras 3.15 on TensorFlow 2.18: relu is Eigen's max(x, 0), which answers +0
 * for every x < 0 and keeps x = -0 (std::max returns its first argument on a
 * tie); relu6 is max then min(., 6); the ReLU layer with a threshold keeps x
 * above it and puts 0 (+0) at and below it; with a negative slope it
 * subtracts slope * relu(threshold - x) from that 0; leaky_relu is
 * x > 0 ? x : x * alpha (-0 kept). Expected values and signs are worked by
 * hand from those definitions, and checked with signbit(): -0 == +0. */
struct zcase {
    const char *json;
    float x, want;
    bool neg;                            /* signbit of the answer */
};

static void zero_cases(const struct zcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct dcv_activation a = must(c[i].json);
        float y = c[i].x;
        dcv_activation_apply(&a, &y, 1, 1, 1);
        cr_expect(y == c[i].want && !signbit(y) == !c[i].neg,
                  "%s at %g: got %g (sign bit %d), want %g (sign bit %d)", c[i].json,
                  (double)c[i].x, (double)y, signbit(y) != 0, (double)c[i].want, (int)c[i].neg);
    }
}

Test(activation, relu_family_answers_plus_zero_below_zero)
{
    static const struct zcase c[] = {
        { "\"relu\"", -3.0f, 0.0f, false },
        { "\"relu\"", -1e-30f, 0.0f, false },
        { "\"relu\"", -INFINITY, 0.0f, false },
        { "\"relu\"", 0.0f, 0.0f, false },
        { "\"relu\"", -0.0f, 0.0f, true },            /* max(-0, 0) = -0 (Eigen) */
        { "\"relu\"", 2.5f, 2.5f, false },
        { "\"relu6\"", -1.0f, 0.0f, false },
        { "\"relu6\"", -0.0f, 0.0f, true },
        { "\"relu6\"", 7.0f, 6.0f, false },
        { "{\"class_name\":\"ReLU\",\"config\":{\"max_value\":2.0}}", -4.0f, 0.0f, false },
        { "{\"class_name\":\"ReLU\",\"config\":{\"max_value\":2.0}}", 3.0f, 2.0f, false },
        { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0}}", -2.0f, 0.0f, false },
        { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0}}", 0.5f, 0.0f, false },
        { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0}}", 1.0f, 0.0f, false },
        { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0}}", -0.0f, 0.0f, false },
        { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0}}", 1.5f, 1.5f, false },
        { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0}}", -INFINITY, 0.0f, false },
        { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0,\"max_value\":6}}", -1.0f,
          0.0f, false },
        /* slope with a threshold: 0 - 0.5 * (1 - x) */
        { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0,\"negative_slope\":0.5}}",
          -3.0f, -2.0f, true },
        { "{\"class_name\":\"ReLU\",\"config\":{\"threshold\":1.0,\"negative_slope\":0.5}}",
          1.0f, 0.0f, false },
        /* slope with a cap: x * slope below 0, not the leaky path */
        { "{\"class_name\":\"ReLU\",\"config\":{\"negative_slope\":0.25,\"max_value\":4}}",
          -2.0f, -0.5f, true },
        { "{\"class_name\":\"ReLU\",\"config\":{\"negative_slope\":0.25,\"max_value\":4}}",
          -0.0f, 0.0f, true },
        /* 0 - 2^-30 * 2^-120: the product underflows to 0, and 0 - 0 = +0 */
        { "{\"class_name\":\"ReLU\",\"config\":{\"negative_slope\":9.313225746154785e-10,"
          "\"max_value\":4}}", -7.52316384526264e-37f, 0.0f, false },
    };
    zero_cases(c, sizeof c / sizeof *c);
}

Test(activation, leaky_relu_slope_is_exact)
{
    static const struct zcase c[] = {
        { "\"leaky_relu\"", -2.0f, -0.4f, true },     /* 0.2f * -2 */
        { "\"leaky_relu\"", -0.0f, 0.0f, true },      /* -0 * 0.2 */
        { "\"leaky_relu\"", -INFINITY, -INFINITY, true },
        { "{\"class_name\":\"LeakyReLU\",\"config\":{\"negative_slope\":0.1}}", -3.0f,
          0.1f * -3.0f, true },
        /* tf.nn.leaky_relu multiplies: an underflowing product stays -0 */
        { "{\"class_name\":\"LeakyReLU\",\"config\":{\"negative_slope\":9.313225746154785e-10}}",
          -7.52316384526264e-37f, 0.0f, true },
        { "{\"class_name\":\"LeakyReLU\",\"config\":{\"negative_slope\":0.1}}", 3.0f, 3.0f,
          false },
    };
    zero_cases(c, sizeof c / sizeof *c);
    struct dcv_activation a = must("\"relu\"");
    float y = NAN;
    dcv_activation_apply(&a, &y, 1, 1, 1);
    cr_expect(isnan(y), "relu(NaN) = %g, want NaN", (double)y);
}

/* ---- Keras 3 and tf.keras 2 ------------------------------------------------ */

static int parse_k(const char *json, enum dcv_keras keras, struct dcv_activation *a, char *err)
{
    struct dcv_json *j = pj(json);
    memset(err, 0, DCV_ERRLEN);
    int rc = dcv_activation_parse_ex(j, keras, a, err);
    dcv_json_free(j);
    return rc;
}

static struct dcv_activation must_k(const char *json, enum dcv_keras keras)
{
    struct dcv_activation a;
    char err[DCV_ERRLEN];
    int rc = parse_k(json, keras, &a, err);
    cr_assert_eq(rc, 0, "%s (Keras %d): %s", json, (int)keras, err);
    return a;
}

static void need_numpy(void)
{
    if (!tu_have_numpy())
        cr_skip_test("%s cannot import numpy (install python3-numpy, or point "
                     "DCV_TEST_PYTHON at a Python that has it)", tu_python());
}

/* tests/numpy_ref.py, found next to this file or from the repository root. */
static const char *ref_script(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", __FILE__);
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
    slash = strrchr(buf, '/');
    if (slash) {
        snprintf(slash, cap - (size_t)(slash - buf), "/numpy_ref.py");
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, cap, "tests/numpy_ref.py");
    cr_assert_eq(access(buf, R_OK), 0, "cannot find tests/numpy_ref.py");
    return buf;
}

/* A scratch directory removed at exit, even after a failed assertion. */
static char g_dir[] = "/tmp/dcvact.XXXXXX";

static void remove_dir(void)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (tu_sh(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

static const char *scratch_dir(void)
{
    if (strchr(g_dir, 'X')) {
        cr_assert_not_null(tu_mkdtemp(g_dir));
        atexit(remove_dir);
    }
    return g_dir;
}

static void run_ref(const char *mode, const char *dir)
{
    char buf[512], cmd[1400];
    snprintf(cmd, sizeof cmd, "'%s' '%s' %s '%s'", tu_python(), ref_script(buf, sizeof buf),
             mode, dir);
    cr_assert_eq(tu_sh(cmd), 0, "numpy_ref.py failed: %s", cmd);
}

static struct dcv_npy load_ref(const char *path)
{
    struct dcv_npy r = { 0 };
    char err[DCV_ERRLEN];
    cr_assert_eq(dcv_npy_load(path, 0, &r, err), 0, "%s: %s", path, err);
    return r;
}

static void expect_close(const float *got, const struct dcv_npy *want, size_t n, double rtol,
                         const char *what)
{
    cr_assert_eq(want->count, n, "%s: reference has %zu values, we have %zu", what,
                 want->count, n);
    for (size_t i = 0; i < n; i++) {
        double w = want->data[i], tol = rtol * fmax(1.0, fabs(w));
        cr_expect(fabs((double)got[i] - w) <= tol, "%s[%zu] = %.9g, NumPy says %.9g", what, i,
                  (double)got[i], w);
    }
}

/* Every name keras/src/activations/__init__.py defines (but threshold, which
 * cannot be called by name), its aliases, dict forms with parameters, and
 * hard_sigmoid under both Kerases. */
static const struct { const char *spec; int keras; } every[] = {
    { "\"linear\"", 3 }, { "\"relu\"", 3 }, { "\"relu6\"", 3 }, { "\"leaky_relu\"", 3 },
    { "\"sigmoid\"", 3 }, { "\"tanh\"", 3 }, { "\"softplus\"", 3 }, { "\"softsign\"", 3 },
    { "\"elu\"", 3 }, { "\"selu\"", 3 }, { "\"exponential\"", 3 },
    { "\"hard_sigmoid\"", 3 }, { "\"hard_sigmoid\"", 2 }, { "\"silu\"", 3 }, { "\"swish\"", 2 },
    { "\"gelu\"", 3 }, { "{\"class_name\": \"gelu\", \"config\": {\"approximate\": true}}", 3 },
    { "\"mish\"", 3 }, { "\"hard_silu\"", 3 }, { "\"hard_swish\"", 2 },
    { "\"log_sigmoid\"", 3 }, { "\"softmax\"", 3 }, { "\"celu\"", 3 },
    { "{\"class_name\": \"celu\", \"config\": {\"alpha\": 2.0}}", 3 }, { "\"glu\"", 3 },
    { "\"hard_shrink\"", 3 }, { "{\"class_name\": \"hard_shrink\", \"config\": "
                                "{\"threshold\": 1.5}}", 3 },
    { "\"hard_tanh\"", 3 }, { "\"log_softmax\"", 3 }, { "\"soft_shrink\"", 3 },
    { "{\"class_name\": \"soft_shrink\", \"config\": {\"threshold\": 0.25}}", 3 },
    { "\"sparse_plus\"", 3 }, { "\"sparse_sigmoid\"", 3 }, { "\"sparsemax\"", 3 },
    { "\"squareplus\"", 3 }, { "{\"class_name\": \"squareplus\", \"config\": {\"b\": 1.0}}", 3 },
    { "\"tanh_shrink\"", 3 }, { "\"celu\"", 2 }, { "\"sparsemax\"", 2 },
    { "{\"module\": \"keras.activations\", \"class_name\": \"function\", \"config\": "
      "\"hard_sigmoid\", \"registered_name\": \"hard_sigmoid\"}", 3 },
    { "{\"module\": \"keras.activations\", \"class_name\": \"function\", \"config\": "
      "\"sparse_plus\", \"registered_name\": \"sparse_plus\"}", 3 },
};
#define NEVERY (sizeof every / sizeof *every)
enum { ROWS = 3, LEN = 8 };

/* rows of LEN values: around the kinks (+-1, +-0.5, 0, -3..3) and beyond */
static void grid(float *x)
{
    static const float base[LEN] = { -3.0f, -1.0f, -0.75f, -0.5f, 0.0f, 0.3f, 1.0f, 2.5f };
    for (int r = 0; r < ROWS; r++)
        for (int k = 0; k < LEN; k++) x[r * LEN + k] = base[k] * (1.0f + 0.5f * (float)r);
}

static void write_cases(const char *dir, const float *x)
{
    char path[256], err[DCV_ERRLEN];
    int64_t shape[2] = { ROWS, LEN };
    snprintf(path, sizeof path, "%s/x.npy", dir);
    cr_assert_eq(dcv_npy_save(path, x, shape, 2, err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/cases.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "[");
    for (size_t i = 0; i < NEVERY; i++)
        fprintf(f, "%s{\"activation\": %s, \"keras\": %d}", i ? ", " : "", every[i].spec,
                every[i].keras);
    fprintf(f, "]\n");
    cr_assert_eq(fclose(f), 0);
}

Test(activation, every_keras3_activation_matches_numpy)
{
    need_numpy();
    char dir[128], path[256];
    float x[ROWS * LEN];
    grid(x);
    snprintf(dir, sizeof dir, "%s/direct", scratch_dir());
    cr_assert_eq(mkdir(dir, 0700), 0);
    write_cases(dir, x);
    run_ref("--activations", dir);
    for (size_t i = 0; i < NEVERY; i++) {
        char what[400];
        snprintf(what, sizeof what, "%s (Keras %d)", every[i].spec, every[i].keras);
        struct dcv_activation a = must_k(every[i].spec, (enum dcv_keras)every[i].keras);
        int64_t out_len;
        cr_assert_eq(dcv_activation_output_dim(&a, LEN, &out_len, NULL), 0);
        snprintf(path, sizeof path, "%s/act%zu.npy", dir, i);
        struct dcv_npy want = load_ref(path);
        /* along the last axis: [ROWS][LEN][1] */
        float y[ROWS * LEN];
        memcpy(y, x, sizeof y);
        dcv_activation_apply(&a, y, ROWS, LEN, 1);
        expect_close(y, &want, ROWS * (size_t)out_len, 2e-6, what);
        /* the same lines strided: [1][LEN][ROWS], row r is column r */
        float t[ROWS * LEN], back[ROWS * LEN];
        for (int r = 0; r < ROWS; r++)
            for (int k = 0; k < LEN; k++) t[k * ROWS + r] = x[r * LEN + k];
        dcv_activation_apply(&a, t, 1, LEN, ROWS);
        for (int r = 0; r < ROWS; r++)
            for (int k = 0; k < out_len; k++) back[r * out_len + k] = t[k * ROWS + r];
        strncat(what, " strided", sizeof what - strlen(what) - 1);
        expect_close(back, &want, ROWS * (size_t)out_len, 2e-6, what);
        dcv_npy_release(&want);
    }
}

Test(activation, hard_sigmoid_differs_between_kerases)
{
    struct dcv_activation k3 = must_k("\"hard_sigmoid\"", DCV_KERAS_3);
    struct dcv_activation k2 = must_k("\"hard_sigmoid\"", DCV_KERAS_2);
    struct dcv_activation dflt = must("\"hard_sigmoid\"");
    cr_expect_eq(k3.keras, DCV_KERAS_3);
    cr_expect_eq(dflt.keras, DCV_KERAS_2, "dcv_activation_parse keeps tf.keras 2's meaning");
    float a = 1.0f, b = 1.0f, c = 1.0f;
    dcv_activation_apply(&k3, &a, 1, 1, 1);
    dcv_activation_apply(&k2, &b, 1, 1, 1);
    dcv_activation_apply(&dflt, &c, 1, 1, 1);
    cr_expect_float_eq(a, 4.0 / 6.0, 1e-7, "relu6(1 + 3) / 6");
    cr_expect_float_eq(b, 0.7, 1e-7, "0.2 + 0.5");
    cr_expect_float_eq(c, 0.7, 1e-7);
    /* the rest of the table means the same under both */
    struct dcv_activation g = must_k("\"gelu\"", DCV_KERAS_3);
    cr_expect(!g.approximate, "Keras 3 activations.gelu defaults to approximate=False");
    cr_expect_float_eq(must_k("\"leaky_relu\"", DCV_KERAS_3).alpha, 0.2f, 0);
    cr_expect_float_eq(must_k("{\"class_name\": \"LeakyReLU\", \"config\": {}}",
                              DCV_KERAS_3).alpha, 0.3f, 0);
}

/* Keras 3.15's own output for [0, 0.5, 1] (every backend), quoted in
 * keras-team/keras#23425: [0, 0, 0.25], where the paper's sparsemax says
 * [0, 0.25, 0.75]. */
Test(activation, sparsemax_is_keras_3_15s)
{
    struct dcv_activation a = must_k("\"sparsemax\"", DCV_KERAS_3);
    float x[3] = { 0.0f, 0.5f, 1.0f };
    dcv_activation_apply(&a, x, 1, 3, 1);
    cr_expect_float_eq(x[0], 0.0f, 1e-7);
    cr_expect_float_eq(x[1], 0.0f, 1e-7);
    cr_expect_float_eq(x[2], 0.25f, 1e-7);
    /* a line longer than the stack buffer: one-hot at the max */
    enum { N = 1000 };
    float *y = malloc(sizeof(float) * N);
    cr_assert_not_null(y);
    for (int i = 0; i < N; i++) y[i] = (float)i;
    dcv_activation_apply(&a, y, 1, N, 1);
    cr_expect_float_eq(y[N - 1], 1.0f, 1e-6);
    cr_expect_float_eq(y[N - 2], 0.0f, 0);
    free(y);
}

Test(activation, glu_halves_the_axis)
{
    struct dcv_activation a = must_k("\"glu\"", DCV_KERAS_3);
    int64_t n;
    char err[DCV_ERRLEN] = "";
    cr_expect_eq(dcv_activation_output_dim(&a, 8, &n, err), 0);
    cr_expect_eq(n, 4);
    cr_expect_eq(dcv_activation_output_dim(&a, -1, &n, err), 0, "unknown stays unknown");
    cr_expect_eq(n, -1);
    assert_err(dcv_activation_output_dim(&a, 7, &n, err), DCV_ESHAPE, err, "glu");
    cr_expect(strstr(err, "7"), "%s", err);
    struct dcv_activation r = must("\"relu\"");
    cr_expect_eq(dcv_activation_output_dim(&r, 7, &n, err), 0);
    cr_expect_eq(n, 7);
    cr_expect_eq(dcv_activation_check_fused(&r, "Dense", err), 0);
    assert_err(dcv_activation_check_fused(&a, "Dense", err), DCV_EUNSUPP, err, "Dense");
    cr_expect(strstr(err, "glu") && strstr(err, "Activation"), "%s", err);
}

Test(activation, keras3_refusals)
{
    expect_fail("\"frobnicate\"", "frobnicate", "celu", "glu", "sparsemax", "tanh_shrink",
                "hard_swish", "squareplus", NULL);
    expect_fail("\"threshold\"", "threshold", "default_value", "supported", NULL);
    expect_fail("{\"class_name\": \"function\", \"config\": \"threshold\"}", "threshold", NULL);
    expect_fail("{\"class_name\": \"log_softmax\", \"config\": {\"axis\": 1}}", "log_softmax",
                "-1", NULL);
    expect_fail("{\"class_name\": \"sparsemax\", \"config\": {\"axis\": 0}}", "sparsemax",
                NULL);
    expect_fail("{\"class_name\": \"glu\", \"config\": {\"axis\": 2}}", "glu", "axis", NULL);
    expect_fail("{\"class_name\": \"celu\", \"config\": {\"alpha\": 0}}", "celu", "alpha",
                NULL);
    expect_fail("{\"class_name\": \"squareplus\", \"config\": {\"b\": \"x\"}}", "'b'",
                "string", NULL);
    /* Keras 3 only names mean the same in a tf.keras 2 config */
    cr_expect_eq(must("\"sparse_plus\"").kind, DCV_ACT_SPARSE_PLUS);
}

Test(activation, keras3_to_json_round_trip)
{
    static const struct { const char *json; enum dcv_keras keras; } t[] = {
        { "\"hard_sigmoid\"", DCV_KERAS_3 }, { "\"hard_sigmoid\"", DCV_KERAS_2 },
        { "{\"class_name\": \"celu\", \"config\": {\"alpha\": 2.0}}", DCV_KERAS_3 },
        { "{\"class_name\": \"soft_shrink\", \"config\": {\"threshold\": 0.25}}", DCV_KERAS_3 },
        { "{\"class_name\": \"hard_shrink\", \"config\": {\"threshold\": 1}}", DCV_KERAS_3 },
        { "{\"class_name\": \"squareplus\", \"config\": {\"b\": 1.0}}", DCV_KERAS_3 },
        { "\"sparsemax\"", DCV_KERAS_3 }, { "\"glu\"", DCV_KERAS_3 },
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        struct dcv_activation a = must_k(t[i].json, t[i].keras), b;
        struct dcv_json *j = dcv_activation_to_json(&a);
        cr_assert_not_null(j);
        char err[DCV_ERRLEN] = "", *s = dcv_json_print(j);
        /* read back as tf.keras 2 would: the semantics travel in the JSON */
        cr_assert_eq(dcv_activation_parse(j, &b, err), 0, "%s → %s: %s", t[i].json, s, err);
        float x = 1.3f, y = 1.3f;
        dcv_activation_apply(&a, &x, 1, 1, 1);
        dcv_activation_apply(&b, &y, 1, 1, 1);
        cr_expect(a.kind == b.kind && x == y, "%s → %s: %g vs %g", t[i].json, s, (double)x,
                  (double)y);
        free(s);
        dcv_json_free(j);
    }
}

/* ---- through a Conv2DTranspose model (layer → model → engine) ----------- */

static const char *const policy3 =
    "{\"module\": \"keras\", \"class_name\": \"DTypePolicy\", \"config\": {\"name\": "
    "\"float32\"}, \"registered_name\": null}";

static void layer_keras(const char *dtype, enum dcv_keras want)
{
    char text[1024], err[DCV_ERRLEN];
    snprintf(text, sizeof text, "{\"name\": \"up\", \"filters\": 2, \"kernel_size\": 3, "
             "\"activation\": \"hard_sigmoid\", \"dtype\": %s}", dtype);
    struct dcv_json *cfg = pj(text);
    struct dcv_layer l;
    cr_assert_eq(dcv_layer_parse("Conv2DTranspose", cfg, &l, err), 0, "%s", err);
    cr_expect_eq(l.conv.act.keras, want, "dtype %s", dtype);
    dcv_layer_release(&l);
    dcv_json_free(cfg);
}

Test(activation, layer_reads_which_keras_wrote_it)
{
    layer_keras(policy3, DCV_KERAS_3);
    layer_keras("{\"module\": \"keras\", \"class_name\": \"FloatDTypePolicy\", \"config\": "
                "{\"name\": \"float32\"}, \"registered_name\": null}", DCV_KERAS_3);
    layer_keras("\"float32\"", DCV_KERAS_2);
    layer_keras("null", DCV_KERAS_2);
    /* tf.keras 2 mixed precision: {"class_name": "Policy"} */
    layer_keras("{\"module\": \"keras.mixed_precision\", \"class_name\": \"Policy\", "
                "\"config\": {\"name\": \"mixed_bfloat16\"}, \"registered_name\": null}",
                DCV_KERAS_2);
}

Test(activation, glu_refused_as_a_convolutions_activation)
{
    char err[DCV_ERRLEN] = "";
    struct dcv_json *cfg = pj("{\"name\": \"up\", \"filters\": 4, \"kernel_size\": 3, "
                              "\"activation\": \"glu\"}");
    struct dcv_layer l;
    assert_err(dcv_layer_parse("Conv2DTranspose", cfg, &l, err), DCV_EUNSUPP, err,
               "Conv2DTranspose");
    cr_expect(strstr(err, "glu"), "%s", err);
    dcv_json_free(cfg);
    /* the engine refuses it too */
    struct dcv_conv conv = { .rank = 1, .in_channels = 1, .filters = 2, .kernel = { 1 },
                             .strides = { 1 }, .dilation = { 1 } };
    conv.act = must_k("\"glu\"", DCV_KERAS_3);
    float w[2] = { 1, 1 };
    struct dcv_engine_kernel *k = NULL;
    assert_err(dcv_engine_kernel_create(&conv, w, NULL, 0, NULL, &k, err), DCV_EUNSUPP, err,
               "glu");
}

/* Activations of the model cases: fused into oneDNN post-ops (hard_sigmoid,
 * hard_tanh, sparse_sigmoid, celu alpha 1, hard_silu, gelu) and run by the
 * portable pass (the rest), axial ones on the last axis as laid out. */
static const char *const model_acts[] = {
    "\"hard_sigmoid\"", "\"hard_tanh\"", "\"sparse_sigmoid\"", "\"celu\"", "\"hard_silu\"",
    "\"gelu\"", "{\"class_name\": \"celu\", \"config\": {\"alpha\": 0.5}}", "\"soft_shrink\"",
    "\"hard_shrink\"", "\"sparse_plus\"", "\"squareplus\"", "\"tanh_shrink\"",
    "\"log_softmax\"", "\"sparsemax\"", "\"softmax\"",
    "{\"module\": \"keras.activations\", \"class_name\": \"function\", \"config\": "
    "\"log_sigmoid\", \"registered_name\": \"log_sigmoid\"}",
};
#define NMODEL (sizeof model_acts / sizeof *model_acts)
enum { MB = 2, MH = 3, MW = 4, MCIN = 3, MCOUT = 5, MOH = 6, MOW = 8 };

static void write_model_inputs(const char *dir)
{
    char path[256], err[DCV_ERRLEN];
    float x[MB * MH * MW * MCIN], w[3 * 3 * MCOUT * MCIN], b[MCOUT];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = (float)sin(0.7 * (double)i) * 1.5f;
    for (size_t i = 0; i < sizeof w / sizeof *w; i++) w[i] = (float)cos(1.3 * (double)i) * 0.6f;
    for (size_t i = 0; i < MCOUT; i++) b[i] = 0.2f * (float)i - 0.4f;
    int64_t xs[4] = { MB, MH, MW, MCIN }, ws[4] = { 3, 3, MCOUT, MCIN }, bs[1] = { MCOUT };
    int64_t xcf[4] = { MB, MCIN, MH, MW };
    float xt[MB * MH * MW * MCIN];     /* the same input channels first */
    for (int n = 0; n < MB; n++)
        for (int h = 0; h < MH; h++)
            for (int q = 0; q < MW; q++)
                for (int c = 0; c < MCIN; c++)
                    xt[((n * MCIN + c) * MH + h) * MW + q] = x[((n * MH + h) * MW + q) * MCIN + c];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    cr_assert_eq(dcv_npy_save(path, x, xs, 4, err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/xcf.npy", dir);
    cr_assert_eq(dcv_npy_save(path, xt, xcf, 4, err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/kernel.npy", dir);
    cr_assert_eq(dcv_npy_save(path, w, ws, 4, err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/bias.npy", dir);
    cr_assert_eq(dcv_npy_save(path, b, bs, 1, err), 0, "%s", err);
}

/* Case dir sub: params.json for numpy_ref.py (inputs linked from root). */
static void write_params(const char *root, const char *sub, const char *act, int keras, bool cf)
{
    char path[300], cmd[1200];
    snprintf(path, sizeof path, "%s/%s", root, sub);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(cmd, sizeof cmd, "ln -s ../%s '%s/%s/x.npy' && ln -s ../kernel.npy "
             "'%s/%s/kernel.npy' && ln -s ../bias.npy '%s/%s/bias.npy'", cf ? "xcf.npy" : "x.npy",
             root, sub, root, sub, root, sub);
    cr_assert_eq(tu_sh(cmd), 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/%s/params.json", root, sub);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"rank\": 2, \"strides\": [2, 2], \"dilation_rate\": [1, 1], \"padding\": "
            "\"same\", \"data_format\": \"%s\", \"output_padding\": null, \"output_shape\": "
            "null, \"activation\": %s, \"keras\": %d, \"use_bias\": true}\n",
            cf ? "channels_first" : "channels_last", act, keras);
    cr_assert_eq(fclose(f), 0);
}

static void model_case(const char *root, const char *sub, const char *act, const char *dtype,
                       bool cf)
{
    char text[2048], err[DCV_ERRLEN], path[300], what[512];
    snprintf(what, sizeof what, "Conv2DTranspose %s, dtype %s, %s", act, dtype,
             cf ? "channels_first" : "channels_last");
    snprintf(text, sizeof text,
             "{\"module\": \"keras.layers\", \"class_name\": \"Conv2DTranspose\", \"config\": "
             "{\"name\": \"up\", \"trainable\": true, \"dtype\": %s, \"filters\": %d, "
             "\"kernel_size\": [3, 3], \"strides\": [2, 2], \"padding\": \"same\", "
             "\"output_padding\": null, \"data_format\": \"%s\", \"dilation_rate\": [1, 1], "
             "\"activation\": %s, \"use_bias\": true}, \"registered_name\": null, "
             "\"weights\": {\"kernel\": \"kernel.npy\", \"bias\": \"bias.npy\"}}",
             dtype, MCOUT, cf ? "channels_first" : "channels_last", act);
    struct dcv_json *doc = pj(text);
    struct dcv_model *m = NULL;
    int rc = dcv_model_from_doc("act", doc, root, NULL, &m, err);
    dcv_json_free(doc);
    cr_assert_eq(rc, 0, "%s: %s", what, err);
    int64_t in[4] = { MB, MH, MW, MCIN }, incf[4] = { MB, MCIN, MH, MW }, out[4];
    size_t n;
    cr_assert_eq(dcv_model_output_shape(m, cf ? incf : in, 4, out, &n, err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/%s", root, cf ? "xcf.npy" : "x.npy");
    struct dcv_npy x = load_ref(path);
    float *y = malloc(sizeof(float) * n);
    cr_assert_not_null(y);
    cr_assert_eq(dcv_model_infer(m, x.data, cf ? incf : in, 4, y, n, NULL, err), 0, "%s: %s",
                 what, err);
    snprintf(path, sizeof path, "%s/%s/out.npy", root, sub);
    struct dcv_npy want = load_ref(path);
    expect_close(y, &want, n, 1e-5, what);
    dcv_npy_release(&want);
    dcv_npy_release(&x);
    free(y);
    dcv_model_free(m);
}

Test(activation, conv2dtranspose_keras3_models_match_numpy, .timeout = 120)
{
    need_numpy();
    char root[128], sub[NMODEL * 2 + 2][16], list[4096] = "";
    snprintf(root, sizeof root, "%s/models", scratch_dir());
    cr_assert_eq(mkdir(root, 0700), 0);
    write_model_inputs(root);
    size_t nsub = 0;
    for (size_t i = 0; i < NMODEL; i++)
        for (int cf = 0; cf < 2; cf++, nsub++) {
            snprintf(sub[nsub], sizeof sub[nsub], "c%zu", nsub);
            write_params(root, sub[nsub], model_acts[i], 3, cf);
        }
    /* the same hard_sigmoid written by tf.keras 2: clip(0.2x + 0.5) */
    snprintf(sub[nsub], sizeof sub[nsub], "k2");
    write_params(root, sub[nsub++], "\"hard_sigmoid\"", 2, false);
    for (size_t i = 0; i < nsub; i++) {
        strncat(list, " ", sizeof list - strlen(list) - 1);
        strncat(list, root, sizeof list - strlen(list) - 1);
        strncat(list, "/", sizeof list - strlen(list) - 1);
        strncat(list, sub[i], sizeof list - strlen(list) - 1);
    }
    char buf[512], cmd[5000];
    snprintf(cmd, sizeof cmd, "'%s' '%s'%s", tu_python(), ref_script(buf, sizeof buf), list);
    cr_assert_eq(tu_sh(cmd), 0, "numpy_ref.py failed: %s", cmd);
    for (size_t i = 0, c = 0; i < NMODEL; i++)
        for (int cf = 0; cf < 2; cf++, c++)
            model_case(root, sub[c], model_acts[i], policy3, cf);
    model_case(root, "k2", "\"hard_sigmoid\"", "\"float32\"", false);
}
