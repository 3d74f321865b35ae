/* activation.c — Keras activation specs and the portable activation pass.
 *
 * Parsing accepts the spellings Keras 2 and 3 write into get_config(): a
 * name, null, {"class_name": "function", "config": "relu"}, a class name with
 * parameters ({"class_name": "LeakyReLU", "config": {"negative_slope": .1}})
 * and the Activation layer wrapper. Definitions are Keras 3.15's
 * (keras/src/activations/activations.py and the TensorFlow backend's
 * nn.py), and tf.keras 2's where it differs (hard_sigmoid: clip(0.2x + 0.5)),
 * chosen by the caller's enum dcv_keras. dcv_activation_apply is the scalar
 * fallback for what oneDNN cannot fuse; it is written as simple loops the
 * compiler vectorizes; only sparsemax needs memory (a sorted copy of a
 * line). Any thread.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Keras 3's ALL_OBJECTS_DICT aliases (swish, hard_swish) and ours. */
static const struct { const char *alias; enum dcv_act_kind kind; } aliases[] = {
    { "silu", DCV_ACT_SWISH },       { "hard_swish", DCV_ACT_HARD_SILU },
    { "none", DCV_ACT_LINEAR },      { "identity", DCV_ACT_LINEAR },
};

static void set_defaults(struct dcv_activation *a, enum dcv_act_kind kind, enum dcv_keras keras)
{
    *a = (struct dcv_activation){ .kind = kind, .max_value = INFINITY, .keras = keras };
    if (kind == DCV_ACT_LEAKY_RELU) a->alpha = 0.2f;
    if (kind == DCV_ACT_ELU || kind == DCV_ACT_CELU) a->alpha = 1.0f;
    if (kind == DCV_ACT_RELU6) a->max_value = 6.0f;
    if (kind == DCV_ACT_SOFT_SHRINK || kind == DCV_ACT_HARD_SHRINK) a->threshold = 0.5f;
    if (kind == DCV_ACT_SQUAREPLUS) a->b = 4.0f;
}

static int unknown(const char *name, char *err)
{
    char list[400] = "";
    for (int k = 0; k < DCV_ACT_COUNT; k++) {
        strncat(list, act_names[k], sizeof list - strlen(list) - 1);
        strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    /* keras.activations.threshold(x, threshold, default_value) has no
     * defaults: Keras itself fails calling it from a name. */
    if (dcv_names_equal(name, "threshold"))
        return dcv_errf(err, DCV_EINVAL, "activation: 'threshold' has no default threshold "
                        "and default_value: Keras cannot call it by name; use a ReLU layer's "
                        "'threshold' (supported: %ssilu, hard_swish)", list);
    return dcv_errf(err, DCV_EINVAL, "activation: unknown activation '%.64s' (supported: "
                    "%ssilu, hard_swish)", name, list);
}

static int lookup(const char *name, enum dcv_keras keras, struct dcv_activation *out, char *err)
{
    for (int k = 0; k < DCV_ACT_COUNT; k++)
        if (dcv_names_equal(name, act_names[k])) {
            set_defaults(out, (enum dcv_act_kind)k, keras);
            return 0;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (dcv_names_equal(name, aliases[i].alias)) {
            set_defaults(out, aliases[i].kind, keras);
            return 0;
        }
    return unknown(name, err);
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

/* Keras's axial activations take `axis`; we run them on the last axis only
 * (the one every layer lays its features on). */
static int check_axis(const struct dcv_json *cfg, const struct dcv_activation *a, char *err)
{
    const struct dcv_json *ax = dcv_json_get(cfg, "axis");
    int64_t axis;
    if (!ax || dcv_json_type(ax) == DCV_JSON_NULL || dcv_json_int(ax, -1, -1, &axis) ||
        (dcv_json_type(ax) == DCV_JSON_ARRAY && dcv_json_size(ax) == 1 &&
         dcv_json_int(dcv_json_at(ax, 0), -1, -1, &axis)))
        return 0;
    return dcv_errf(err, DCV_EINVAL, "activation: %s only supports axis -1 (the last axis), "
                    "as Keras applies it", dcv_activation_is_axial(a->kind)
                    ? dcv_activation_name(a->kind) : "softmax");
}

/* Parameters of the layer-style dict forms. "keras" is ours: the marker
 * dcv_activation_to_json writes for a Keras 3 hard_sigmoid. */
static int apply_params(const struct dcv_json *cfg, const char *cls, struct dcv_activation *a,
                        char *err)
{
    int rc;
    int64_t k;
    if (dcv_json_type(cfg) != DCV_JSON_OBJECT) return 0;
    if (dcv_names_equal(cls, "LeakyReLU")) a->alpha = 0.3f;      /* the layer's default differs */
    if ((rc = get_float(cfg, "alpha", &a->alpha, err)) < 0) return rc;
    if ((rc = get_float(cfg, "negative_slope", &a->alpha, err)) < 0) return rc;
    if ((rc = get_float(cfg, "max_value", &a->max_value, err)) < 0) return rc;
    if ((rc = get_float(cfg, "threshold", &a->threshold, err)) < 0) return rc;
    if ((rc = get_float(cfg, "b", &a->b, err)) < 0) return rc;
    if ((rc = check_axis(cfg, a, err))) return rc;
    if (a->kind == DCV_ACT_CELU && a->alpha == 0)
        return dcv_errf(err, DCV_EINVAL, "activation: celu needs a nonzero alpha");
    const struct dcv_json *ap = dcv_json_get(cfg, "approximate");
    if (ap) a->approximate = dcv_json_true(ap);
    if (dcv_json_int(dcv_json_get(cfg, "keras"), 2, 3, &k)) a->keras = (enum dcv_keras)k;
    if (a->kind == DCV_ACT_RELU && a->alpha != 0 && a->max_value == INFINITY &&
        a->threshold == 0)
        a->kind = DCV_ACT_LEAKY_RELU;
    return 0;
}

int dcv_activation_parse_ex(const struct dcv_json *spec, enum dcv_keras keras,
                            struct dcv_activation *out, char *err)
{
    set_defaults(out, DCV_ACT_LINEAR, keras);
    switch (dcv_json_type(spec)) {
    case DCV_JSON_INVALID:
    case DCV_JSON_NULL:
        return 0;
    case DCV_JSON_STRING:
        return lookup(dcv_json_string(spec), keras, out, err);
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
        return dcv_activation_parse_ex(inner, keras, out, err);
    }
    int rc = lookup(cls, keras, out, err);
    if (rc) return rc;
    return apply_params(cfg, cls, out, err);
}

int dcv_activation_parse(const struct dcv_json *spec, struct dcv_activation *out, char *err)
{
    return dcv_activation_parse_ex(spec, DCV_KERAS_2, out, err);
}

int dcv_activation_output_dim(const struct dcv_activation *a, int64_t axis_len, int64_t *out,
                              char *err)
{
    *out = axis_len;
    if (a->kind != DCV_ACT_GLU || axis_len < 0) return 0;
    if (axis_len % 2)
        return dcv_errf(err, DCV_ESHAPE, "activation glu splits the last axis in two halves: "
                        "its size must be even, got %lld", (long long)axis_len);
    *out = axis_len / 2;
    return 0;
}

int dcv_activation_check_fused(const struct dcv_activation *a, const char *layer, char *err)
{
    if (a->kind != DCV_ACT_GLU) return 0;
    return dcv_errf(err, DCV_EUNSUPP, "%.128s: activation 'glu' halves the last axis, which "
                    "this layer's output shape does not account for; use activation=None and "
                    "an Activation('glu') layer after it", layer ? layer : "layer");
}

static bool is_default(const struct dcv_activation *a)
{
    struct dcv_activation d;
    set_defaults(&d, a->kind, DCV_KERAS_2);
    bool k3 = a->kind == DCV_ACT_HARD_SIGMOID && a->keras == DCV_KERAS_3;
    return d.alpha == a->alpha && d.max_value == a->max_value && !k3 &&
           d.threshold == a->threshold && d.approximate == a->approximate && d.b == a->b;
}

/* The parameters of a non-default a, under the keys Keras names them. */
static void add_params(const struct dcv_activation *a, struct dcv_json *cfg)
{
    switch (a->kind) {
    case DCV_ACT_GELU:
        dcv_json_add(cfg, "approximate", dcv_json_new_bool(a->approximate));
        return;
    case DCV_ACT_ELU:
    case DCV_ACT_CELU:
        dcv_json_add(cfg, "alpha", dcv_json_new_number(a->alpha));
        return;
    case DCV_ACT_SOFT_SHRINK:
    case DCV_ACT_HARD_SHRINK:
        dcv_json_add(cfg, "threshold", dcv_json_new_number(a->threshold));
        return;
    case DCV_ACT_SQUAREPLUS:
        dcv_json_add(cfg, "b", dcv_json_new_number(a->b));
        return;
    case DCV_ACT_HARD_SIGMOID:
        dcv_json_add(cfg, "keras", dcv_json_new_number(a->keras == DCV_KERAS_3 ? 3 : 2));
        return;
    default:
        dcv_json_add(cfg, "negative_slope", dcv_json_new_number(a->alpha));
        if (isfinite(a->max_value))
            dcv_json_add(cfg, "max_value", dcv_json_new_number(a->max_value));
        if (a->threshold != 0)
            dcv_json_add(cfg, "threshold", dcv_json_new_number(a->threshold));
    }
}

struct dcv_json *dcv_activation_to_json(const struct dcv_activation *a)
{
    if (is_default(a)) return dcv_json_new_string(dcv_activation_name(a->kind));
    struct dcv_json *o = dcv_json_new_object(), *cfg = dcv_json_new_object();
    dcv_json_add(o, "class_name", dcv_json_new_string(dcv_activation_name(a->kind)));
    if (cfg) add_params(a, cfg);
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

/* min(max(x, lo), hi) by comparisons: NaN stays NaN */
static float clampf(float x, float lo, float hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
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

/* Keras 3: relu6(x + 3) / 6 (TensorFlow backend nn.hard_sigmoid). */
static float hard_sigmoid3(float x) { return clampf(x + 3.0f, 0.0f, 6.0f) / 6.0f; }

/* Keras 3's additions (none of them in tf.keras 2). */
static float pointwise3(const struct dcv_activation *a, float x)
{
    float t = a->threshold;
    switch (a->kind) {
    case DCV_ACT_HARD_SILU: return x * hard_sigmoid3(x);
    case DCV_ACT_CELU:
        return (x > 0 ? x : 0.0f) + a->alpha * expm1f((x < 0 ? x : 0.0f) / a->alpha);
    case DCV_ACT_HARD_SHRINK: return fabsf(x) > t ? x : 0.0f;
    case DCV_ACT_HARD_TANH: return clampf(x, -1.0f, 1.0f);
    case DCV_ACT_SOFT_SHRINK: return x > t ? x - t : x < -t ? x + t : 0.0f;
    case DCV_ACT_SPARSE_PLUS: return x <= -1.0f ? 0.0f : x < 1.0f ? 0.25f * (x + 1) * (x + 1) : x;
    case DCV_ACT_SPARSE_SIGMOID: return x <= -1.0f ? 0.0f : x >= 1.0f ? 1.0f : 0.5f * (x + 1);
    case DCV_ACT_SQUAREPLUS: return (x + sqrtf(x * x + a->b)) / 2.0f;
    case DCV_ACT_TANH_SHRINK: return x - tanhf(x);
    default: return x;
    }
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
    case DCV_ACT_HARD_SIGMOID:
        return a->keras == DCV_KERAS_3 ? hard_sigmoid3(x) : clampf(0.2f * x + 0.5f, 0.0f, 1.0f);
    case DCV_ACT_SWISH: return x * sigmoidf(x);
    case DCV_ACT_GELU:
        if (a->approximate)
            return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
        return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case DCV_ACT_MISH: return x * tanhf(softplusf(x));
    case DCV_ACT_LOG_SIGMOID: return -softplusf(-x);
    default: return pointwise3(a, x);
    }
}

/* One line of an axial kind: n values `stride` apart. */
struct line { float *p; size_t n, stride; };

static float line_max(struct line l)
{
    float mx = -INFINITY;
    for (size_t k = 0; k < l.n; k++) mx = fmaxf(mx, l.p[k * l.stride]);
    return mx;
}

static void softmax_line(struct line l)
{
    float mx = line_max(l), sum = 0;
    for (size_t k = 0; k < l.n; k++) sum += (l.p[k * l.stride] = expf(l.p[k * l.stride] - mx));
    for (size_t k = 0; k < l.n; k++) l.p[k * l.stride] /= sum;
}

/* x - max - log(sum(exp(x - max))) */
static void log_softmax_line(struct line l)
{
    float mx = line_max(l), sum = 0;
    for (size_t k = 0; k < l.n; k++) sum += expf(l.p[k * l.stride] - mx);
    float lse = mx + logf(sum);
    for (size_t k = 0; k < l.n; k++) l.p[k * l.stride] -= lse;
}

static int descending(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* max(x - tau, 0) as Keras 3.15 computes it (every backend's nn.sparsemax):
 * z sorted descending, c its running sums, the support the j (from 1) with
 * z[j] > (c[j] - 1) / j, k its size, and tau = (sum of c[j] over the
 * support - 1) / k. That sum of running sums is Keras's: the paper's tau
 * uses c[k] alone (keras-team/keras#23425, fixed after 3.15); a model
 * trained with Keras 3.15 saw this one. s: scratch for the n values. */
static void sparsemax_line(struct line l, float *s)
{
    for (size_t k = 0; k < l.n; k++) s[k] = l.p[k * l.stride];
    qsort(s, l.n, sizeof *s, descending);
    double c = 0, sum = 0;
    size_t k = 0;
    for (size_t j = 0; j < l.n; j++) {
        c += s[j];
        if (s[j] - (c - 1.0) / (double)(j + 1) > 0) sum += c, k++;
    }
    float tau = (float)((sum - 1.0) / (double)k);
    for (size_t j = 0; j < l.n; j++) {
        float v = l.p[j * l.stride] - tau;
        l.p[j * l.stride] = v > 0 ? v : 0.0f;
    }
}

/* x[o][k][i] * sigmoid(x[o][k + h][i]) for k < h, packed as [outer][h][inner]
 * in place: each write lands at or before everything still to be read. */
static void glu(float *x, size_t outer, size_t len, size_t inner)
{
    size_t h = len / 2;
    for (size_t o = 0; o < outer; o++)
        for (size_t k = 0; k < h; k++)
            for (size_t i = 0; i < inner; i++) {
                const float *src = x + (o * len + k) * inner + i;
                x[(o * h + k) * inner + i] = src[0] * sigmoidf(src[h * inner]);
            }
}

/* sparsemax sorts a copy of each line: on the stack when short. Without
 * memory for a long one the output is NaN (this pass cannot fail). */
static void axial(const struct dcv_activation *a, float *x, size_t outer, size_t len,
                  size_t inner)
{
    float small[256], *s = small;
    if (a->kind == DCV_ACT_GLU) {
        glu(x, outer, len, inner);
        return;
    }
    if (a->kind == DCV_ACT_SPARSEMAX && len > sizeof small / sizeof *small &&
        !(s = malloc(sizeof(float) * len))) {
        for (size_t i = 0; i < outer * len * inner; i++) x[i] = NAN;
        return;
    }
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            struct line l = { x + o * len * inner + i, len, inner };
            if (a->kind == DCV_ACT_SOFTMAX) softmax_line(l);
            else if (a->kind == DCV_ACT_LOG_SOFTMAX) log_softmax_line(l);
            else sparsemax_line(l, s);
        }
    if (s != small) free(s);
}

void dcv_activation_apply(const struct dcv_activation *a, float *x, size_t outer,
                          size_t axis_len, size_t inner)
{
    if (a->kind == DCV_ACT_LINEAR) return;
    if (dcv_activation_is_axial(a->kind)) {
        axial(a, x, outer, axis_len, inner);
        return;
    }
    size_t n = outer * axis_len * inner;
    for (size_t i = 0; i < n; i++) x[i] = pointwise(a, x[i]);
}
