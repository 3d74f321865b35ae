/* test_activation.c — every form of activation spec Keras writes, errors,
 * serialization round trips, and the scalar pass against independent
 * double-precision formulas (TF 2.x definitions). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/activation.h"
#include "deconvd/error.h"
#include "deconvd/json.h"

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

Test(activation, pointwise_values_match_reference)
{
    for (int k = 0; k < DCV_ACT_COUNT; k++) {
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
