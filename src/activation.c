/* activation.c — Keras activation specs and the portable activation pass.
 *
 * Parsing accepts the spellings Keras 2 and 3 write into get_config(): a
 * name, null, {"class_name": "function", "config": "relu"}, a class name with
 * parameters ({"class_name": "LeakyReLU", "config": {"negative_slope": .1}})
 * and the Activation layer wrapper. Definitions are TF 2.x's: hard_sigmoid
 * is clip(0.2x + 0.5, 0, 1), gelu the erf form unless approximate.
 * dcv_activation_apply is the scalar fallback for what oneDNN cannot fuse;
 * it is written as simple loops the compiler vectorizes. Any thread.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "deconvd/activation.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/names.h"

static const char *const act_names[DCV_ACT_COUNT] = {
#define X(id, name) name,
    DCV_ACTIVATIONS(X)
#undef X
};

const char *dcv_activation_name(enum dcv_act_kind kind)
{
    return (unsigned)kind < DCV_ACT_COUNT ? act_names[kind] : "unknown";
}

static const struct { const char *alias; enum dcv_act_kind kind; } aliases[] = {
    { "silu", DCV_ACT_SWISH },       { "hard_swish", DCV_ACT_HARD_SILU },
    { "none", DCV_ACT_LINEAR },      { "identity", DCV_ACT_LINEAR },
};

static void set_defaults(struct dcv_activation *a, enum dcv_act_kind kind)
{
    *a = (struct dcv_activation){ .kind = kind, .max_value = INFINITY };
    if (kind == DCV_ACT_LEAKY_RELU) a->alpha = 0.2f;
    if (kind == DCV_ACT_ELU) a->alpha = 1.0f;
    if (kind == DCV_ACT_RELU6) a->max_value = 6.0f;
}

static int lookup(const char *name, struct dcv_activation *out, char *err)
{
    for (int k = 0; k < DCV_ACT_COUNT; k++)
        if (dcv_names_equal(name, act_names[k])) {
            set_defaults(out, (enum dcv_act_kind)k);
            return 0;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (dcv_names_equal(name, aliases[i].alias)) {
            set_defaults(out, aliases[i].kind);
            return 0;
        }
    char list[400] = "";
    for (int k = 0; k < DCV_ACT_COUNT; k++) {
        strncat(list, act_names[k], sizeof list - strlen(list) - 1);
        if (k + 1 < DCV_ACT_COUNT) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return dcv_errf(err, DCV_EINVAL, "activation: unknown activation '%.64s' "
                    "(supported: %s, silu)", name, list);
}

static int get_float(const struct dcv_json *cfg, const char *key, float *v, char *err)
{
    const struct dcv_json *n = dcv_json_get(cfg, key);
    if (!n || dcv_json_type(n) == DCV_JSON_NULL) return 0;
    if (dcv_json_type(n) != DCV_JSON_NUMBER || !isfinite(dcv_json_number(n)))
        return dcv_errf(err, DCV_EINVAL, "activation: '%s' must be a number, got %s", key,
                        dcv_json_type_name(n));
    *v = (float)dcv_json_number(n);
    return 1;
}

/* Parameters of the layer-style dict forms. */
static int apply_params(const struct dcv_json *cfg, const char *cls, struct dcv_activation *a,
                        char *err)
{
    int rc;
    if (dcv_json_type(cfg) != DCV_JSON_OBJECT) return 0;
    if (dcv_names_equal(cls, "LeakyReLU")) a->alpha = 0.3f;      /* the layer's default differs */
    if ((rc = get_float(cfg, "alpha", &a->alpha, err)) < 0) return rc;
    if ((rc = get_float(cfg, "negative_slope", &a->alpha, err)) < 0) return rc;
    if ((rc = get_float(cfg, "max_value", &a->max_value, err)) < 0) return rc;
    if ((rc = get_float(cfg, "threshold", &a->threshold, err)) < 0) return rc;
    const struct dcv_json *ax = dcv_json_get(cfg, "axis");
    int64_t axis;
    if (ax && dcv_json_type(ax) != DCV_JSON_NULL &&
        !(dcv_json_int(ax, -1, -1, &axis) ||
          (dcv_json_type(ax) == DCV_JSON_ARRAY && dcv_json_size(ax) == 1 &&
           dcv_json_int(dcv_json_at(ax, 0), -1, -1, &axis))))
        return dcv_errf(err, DCV_EINVAL, "activation: softmax only supports axis -1 "
                        "(the last axis), as Keras applies it");
    const struct dcv_json *ap = dcv_json_get(cfg, "approximate");
    if (ap) a->approximate = dcv_json_true(ap);
    if (a->kind == DCV_ACT_RELU && a->alpha != 0 && a->max_value == INFINITY &&
        a->threshold == 0)
        a->kind = DCV_ACT_LEAKY_RELU;
    return 0;
}

int dcv_activation_parse(const struct dcv_json *spec, struct dcv_activation *out, char *err)
{
    set_defaults(out, DCV_ACT_LINEAR);
    switch (dcv_json_type(spec)) {
    case DCV_JSON_INVALID:
    case DCV_JSON_NULL:
        return 0;
    case DCV_JSON_STRING:
        return lookup(dcv_json_string(spec), out, err);
    case DCV_JSON_OBJECT:
        break;
    default:
        return dcv_errf(err, DCV_EINVAL, "activation must be a name, null or a "
                        "{\"class_name\", \"config\"} object, got %s", dcv_json_type_name(spec));
    }
    const char *cls = dcv_json_string(dcv_json_get(spec, "class_name"));
    const struct dcv_json *cfg = dcv_json_get(spec, "config");
    if (!cls)
        return dcv_errf(err, DCV_EINVAL, "activation object needs a string 'class_name'");
    /* Keras 3 functions: {"class_name": "function", "config": "relu"} */
    if (dcv_names_equal(cls, "function") || dcv_names_equal(cls, "Activation")) {
        const struct dcv_json *inner = dcv_json_type(cfg) == DCV_JSON_OBJECT
                                     ? dcv_json_get(cfg, "activation") : cfg;
        if (dcv_names_equal(cls, "function") && dcv_json_type(inner) != DCV_JSON_STRING)
            inner = dcv_json_get(spec, "registered_name");
        return dcv_activation_parse(inner, out, err);
    }
    int rc = lookup(cls, out, err);
    if (rc) return rc;
    return apply_params(cfg, cls, out, err);
}

static bool is_default(const struct dcv_activation *a)
{
    struct dcv_activation d;
    set_defaults(&d, a->kind);
    return d.alpha == a->alpha && d.max_value == a->max_value &&
           d.threshold == a->threshold && d.approximate == a->approximate;
}

struct dcv_json *dcv_activation_to_json(const struct dcv_activation *a)
{
    if (is_default(a)) return dcv_json_new_string(dcv_activation_name(a->kind));
    struct dcv_json *o = dcv_json_new_object(), *cfg = dcv_json_new_object();
    dcv_json_add(o, "class_name", dcv_json_new_string(dcv_activation_name(a->kind)));
    if (a->kind == DCV_ACT_GELU) {
        dcv_json_add(cfg, "approximate", dcv_json_new_bool(a->approximate));
    } else {
        dcv_json_add(cfg, a->kind == DCV_ACT_ELU ? "alpha" : "negative_slope",
                     dcv_json_new_number(a->alpha));
        if (isfinite(a->max_value))
            dcv_json_add(cfg, "max_value", dcv_json_new_number(a->max_value));
        if (a->threshold != 0)
            dcv_json_add(cfg, "threshold", dcv_json_new_number(a->threshold));
    }
    if (dcv_json_add(o, "config", cfg)) {
        dcv_json_free(o);
        return NULL;
    }
    return o;
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static float softplusf(float x)
{
    /* log1p(exp(x)) without overflow for large x */
    return x > 20.0f ? x : log1pf(expf(x));
}

struct dcv_relu dcv_activation_relu_params(const struct dcv_activation *a)
{
    bool leaky = a->kind == DCV_ACT_LEAKY_RELU;     /* tf.nn.leaky_relu: x * alpha */
    struct dcv_relu r = { .form = DCV_RELU_GENERAL, .th = a->threshold, .alpha = a->alpha,
                          .hi = a->max_value, .z = leaky ? -0.0f : 0.0f,
                          .lo = leaky || a->alpha != 0 ? -INFINITY : -FLT_MAX };
    if (a->threshold == 0) {
        if (leaky) r.form = DCV_RELU_LEAKY;
        else if (a->alpha == 0) r.form = DCV_RELU_MAX0;
    }
    return r;
}

static float pointwise(const struct dcv_activation *a, float x)
{
    switch (a->kind) {
    case DCV_ACT_RELU:
    case DCV_ACT_LEAKY_RELU:
    case DCV_ACT_RELU6: return dcv_activation_relu(dcv_activation_relu_params(a), x);
    case DCV_ACT_SIGMOID: return sigmoidf(x);
    case DCV_ACT_TANH: return tanhf(x);
    case DCV_ACT_SOFTPLUS: return softplusf(x);
    case DCV_ACT_SOFTSIGN: return x / (1.0f + fabsf(x));
    case DCV_ACT_ELU: return x > 0 ? x : a->alpha * expm1f(x);
    case DCV_ACT_SELU:
        return 1.0507009873554805f * (x > 0 ? x : 1.6732632423543772f * expm1f(x));
    case DCV_ACT_EXPONENTIAL: return expf(x);
    case DCV_ACT_HARD_SIGMOID: return fminf(fmaxf(0.2f * x + 0.5f, 0.0f), 1.0f);
    case DCV_ACT_SWISH: return x * sigmoidf(x);
    case DCV_ACT_GELU:
        if (a->approximate)
            return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
        return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case DCV_ACT_MISH: return x * tanhf(softplusf(x));
    case DCV_ACT_HARD_SILU: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case DCV_ACT_LOG_SIGMOID: return -softplusf(-x);
    default: return x;
    }
}

static void softmax_axis(float *x, size_t outer, size_t len, size_t inner)
{
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            float *p = x + o * len * inner + i;
            float mx = -INFINITY, sum = 0;
            for (size_t k = 0; k < len; k++) mx = fmaxf(mx, p[k * inner]);
            for (size_t k = 0; k < len; k++) sum += (p[k * inner] = expf(p[k * inner] - mx));
            for (size_t k = 0; k < len; k++) p[k * inner] /= sum;
        }
}

void dcv_activation_apply(const struct dcv_activation *a, float *x, size_t outer,
                          size_t axis_len, size_t inner)
{
    if (a->kind == DCV_ACT_LINEAR) return;
    if (a->kind == DCV_ACT_SOFTMAX) {
        softmax_axis(x, outer, axis_len, inner);
        return;
    }
    size_t n = outer * axis_len * inner;
    for (size_t i = 0; i < n; i++) x[i] = pointwise(a, x[i]);
}

int dcv_activation_parse_ex(const struct dcv_json *spec, enum dcv_keras keras,
                            struct dcv_activation *out, char *err)
{
    (void)keras;   /* TODO(h-act): Keras 3 definitions */
    return dcv_activation_parse(spec, out, err);
}
