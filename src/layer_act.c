/* layer_act.c — the activation layers: Activation, ReLU, LeakyReLU, ELU,
 * Softmax and PReLU.
 *
 * Registry entries (layers.h). All but PReLU are a struct dcv_activation
 * read by the activation module (dcv_activation_parse_ex, with the Keras
 * that wrote the config): this file checks the ranges Keras checks, offers
 * the activation for fusion into a preceding convolution (as_activation)
 * and otherwise runs dcv_activation_apply. Softmax takes an axis or a list
 * of adjacent axes and runs over [outer][axes][inner]. PReLU owns its
 * alpha weight (input shape with shared axes set to 1) and runs with a
 * broadcast inner loop. Parse/shape/weights/bind on the loading thread;
 * run on any worker, concurrently.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layerargs.h"
#include "deconvd/layerkit.h"
#include "deconvd/layers.h"

struct act_layer {
    struct dcv_activation act;
    int naxes;                  /* Softmax: axes as configured (may be negative) */
    int axes[DCV_MAX_DIMS];
    struct dcv_json *config;
};

static int act_new(const struct dcv_json *cfg, const struct act_layer *l, void **state, char *err)
{
    struct act_layer *s = malloc(sizeof *s);
    struct dcv_json *copy = dcv_json_dup(cfg);
    if (!s || !copy) {
        free(s);
        dcv_json_free(copy);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    *s = *l;
    s->config = copy;
    *state = s;
    return 0;
}

/* Reads the layer config as the activation {"class_name": cls, "config":
 * cfg}, so that the activation module alone defines the function. */
static int parse_as_activation(const char *cls, const struct dcv_json *cfg,
                               enum dcv_keras keras, struct dcv_activation *act, char *err)
{
    struct dcv_json *spec = dcv_json_new_object();
    if (!spec || dcv_json_add(spec, "class_name", dcv_json_new_string(cls)) ||
        dcv_json_add(spec, "config", dcv_json_dup(cfg))) {
        dcv_json_free(spec);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    int rc = dcv_activation_parse_ex(spec, keras, act, err);
    dcv_json_free(spec);
    return rc;
}

static int activation_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                            void **state, char *err)
{
    struct act_layer l = { 0 };
    const struct dcv_json *a = dcv_json_get(cfg, "activation");
    if (!a)
        return dcv_errf(err, DCV_EINVAL, "Activation: 'activation' is required");
    char sub[DCV_ERRLEN];
    int rc = dcv_activation_parse_ex(a, ctx->keras, &l.act, sub);
    if (rc) return dcv_errf(err, rc, "Activation: %s", sub);
    return act_new(cfg, &l, state, err);
}

/* A bound Keras checks on a layer argument: null refused unless null_ok;
 * below lo refused (k2_any: any value from tf.keras 2, which does not
 * check). */
struct arg_check {
    const char *key;
    bool null_ok, k2_any;
    double lo;
};

/* Checks the arguments, then reads the config as an activation. */
static int checked_parse(const char *cls, const struct arg_check *chk, int n,
                         const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                         void **state, char *err)
{
    struct act_layer l = { 0 };
    double d;
    int rc;
    for (int i = 0; i < n; i++) {
        const struct dcv_json *v = dcv_json_get(cfg, chk[i].key);
        if (v && dcv_json_type(v) == DCV_JSON_NULL && !chk[i].null_ok)
            return dcv_errf(err, DCV_EINVAL, "%s: '%s' cannot be null", cls, chk[i].key);
        double lo = chk[i].k2_any && ctx->keras == DCV_KERAS_2 ? -INFINITY : chk[i].lo;
        if ((rc = dcv_layerargs_number(cfg, cls, chk[i].key, 0, lo, INFINITY, &d, err)))
            return rc;
    }
    if ((rc = parse_as_activation(cls, cfg, ctx->keras, &l.act, err))) return rc;
    return act_new(cfg, &l, state, err);
}

static int relu_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx, void **state,
                      char *err)
{
    static const struct arg_check chk[] = {
        { "max_value", true, false, 0 }, { "negative_slope", false, false, 0 },
        { "threshold", false, false, 0 },
    };
    return checked_parse("ReLU", chk, 3, cfg, ctx, state, err);
}

static int leaky_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx, void **state,
                       char *err)
{
    static const struct arg_check chk[] = {
        { "negative_slope", false, true, 0 }, { "alpha", false, true, 0 },
    };
    return checked_parse("LeakyReLU", chk, 2, cfg, ctx, state, err);
}

static int elu_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx, void **state,
                     char *err)
{
    static const struct arg_check chk[] = { { "alpha", false, false, -INFINITY } };
    return checked_parse("ELU", chk, 1, cfg, ctx, state, err);
}

static int softmax_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                         void **state, char *err)
{
    (void)ctx;
    struct act_layer l = { .act = { .kind = DCV_ACT_SOFTMAX, .max_value = INFINITY } };
    const struct dcv_json *a = dcv_json_get(cfg, "axis");
    int64_t v = -1;
    bool list = dcv_json_type(a) == DCV_JSON_ARRAY;
    bool ok = !a || dcv_json_type(a) == DCV_JSON_NULL ||
              dcv_json_int(a, -DCV_MAX_DIMS, DCV_MAX_DIMS - 1, &v) ||
              (list && dcv_json_size(a) >= 1 && dcv_json_size(a) <= DCV_MAX_DIMS);
    l.naxes = 1, l.axes[0] = (int)v;
    if (ok && list) {
        l.naxes = (int)dcv_json_size(a);
        for (int i = 0; ok && i < l.naxes; i++) {
            ok = dcv_json_int(dcv_json_at(a, (size_t)i), -DCV_MAX_DIMS, DCV_MAX_DIMS - 1, &v);
            l.axes[i] = (int)v;
        }
    }
    if (!ok)
        return dcv_errf(err, DCV_EINVAL, "Softmax: 'axis' must be an integer or a list of "
                        "integers in [%d, %d]", -DCV_MAX_DIMS, DCV_MAX_DIMS - 1);
    return act_new(cfg, &l, state, err);
}

static void act_free(void *state)
{
    struct act_layer *l = state;
    if (l) dcv_json_free(l->config);
    free(l);
}

/* Softmax's axes for rank ndim as one block [lo, hi]; -1 with a message
 * when an axis is out of range, the batch axis, or the axes are not
 * adjacent. */
static int softmax_block(const struct act_layer *l, int ndim, int *lo, int *hi, char *err)
{
    bool seen[DCV_MAX_DIMS] = { false };
    *lo = ndim, *hi = -1;
    for (int i = 0; i < l->naxes; i++) {
        int a = l->axes[i] < 0 ? l->axes[i] + ndim : l->axes[i];
        if (a < 1 || a >= ndim)
            return dcv_errf(err, DCV_ESHAPE, "Softmax: axis %d does not fit an input of rank %d "
                            "(the batch axis is not allowed)", l->axes[i], ndim);
        seen[a] = true;
        *lo = a < *lo ? a : *lo, *hi = a > *hi ? a : *hi;
    }
    for (int a = *lo; a <= *hi; a++)
        if (!seen[a])
            return dcv_errf(err, DCV_EUNSUPP, "Softmax: axes that are not adjacent are not "
                            "supported (axis %d lies between them)", a);
    return 0;
}

static int act_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out, char *err)
{
    const struct act_layer *l = state;
    int lo, hi, rc;
    char sub[DCV_ERRLEN];
    if (dcv_activation_is_axial(l->act.kind) && in->ndim < 2)
        return dcv_errf(err, DCV_ESHAPE, "%s needs an input of rank 2 or more, got rank %d",
                        dcv_activation_name(l->act.kind), in->ndim);
    if (l->naxes && (rc = softmax_block(l, in->ndim, &lo, &hi, err))) return rc;
    *out = *in;
    /* glu halves the last axis */
    if (in->ndim >= 1 &&
        (rc = dcv_activation_output_dim(&l->act, in->d[in->ndim - 1], &out->d[in->ndim - 1],
                                        sub)))
        return dcv_errf(err, rc, "Activation: %s", sub);
    return 0;
}

static bool act_as_activation(const void *state, struct dcv_activation *act)
{
    const struct act_layer *l = state;
    if (l->naxes && !(l->naxes == 1 && l->axes[0] == -1)) return false;
    if (l->act.kind == DCV_ACT_GLU) return false;     /* changes the shape */
    *act = l->act;
    return true;
}

/* Softmax of one [len][inner] block along len, inner > 1: columns in
 * chunks, so that every pass reads whole rows (the strided walk down each
 * column that a plain loop makes costs a cache miss per value). */
static void softmax_columns(float *p, size_t len, size_t inner)
{
    enum { CHUNK = 256 };
    float mx[CHUNK], sum[CHUNK];
    for (size_t i0 = 0; i0 < inner; i0 += CHUNK) {
        size_t w = inner - i0 < CHUNK ? inner - i0 : CHUNK;
        float *col = p + i0;
        for (size_t i = 0; i < w; i++) mx[i] = -INFINITY, sum[i] = 0;
        for (size_t k = 0; k < len; k++)
            for (size_t i = 0; i < w; i++) mx[i] = fmaxf(mx[i], col[k * inner + i]);
        for (size_t k = 0; k < len; k++)
            for (size_t i = 0; i < w; i++) sum[i] += (col[k * inner + i] =
                                                      expf(col[k * inner + i] - mx[i]));
        for (size_t i = 0; i < w; i++) sum[i] = 1.0f / sum[i];
        for (size_t k = 0; k < len; k++)
            for (size_t i = 0; i < w; i++) col[k * inner + i] *= sum[i];
    }
}

/* glu from in to a distinct, half-sized out: each row's halves meet in a
 * stack buffer, where the activation module computes them. */
static void glu_copy(const struct dcv_activation *a, const float *in, float *out, size_t outer,
                     size_t len)
{
    enum { HALF = 1024 };
    float tmp[2 * HALF];
    size_t h = len / 2;
    for (size_t o = 0; o < outer; o++)
        for (size_t k0 = 0; k0 < h; k0 += HALF) {
            size_t c = h - k0 < HALF ? h - k0 : HALF;
            memcpy(tmp, in + o * len + k0, sizeof(float) * c);
            memcpy(tmp + c, in + o * len + h + k0, sizeof(float) * c);
            dcv_activation_apply(a, tmp, 1, 2 * c, 1);
            memcpy(out + o * h + k0, tmp, sizeof(float) * c);
        }
}

static int act_run(const void *state, const float *in, const struct dcv_shape *is, float *out,
                   const struct dcv_shape *os, const atomic_bool *stop, char *err)
{
    const struct act_layer *l = state;
    (void)os;
    size_t outer = 1, len = 1, inner = 1;
    int lo = is->ndim - 1, hi = is->ndim - 1;
    if (l->naxes && softmax_block(l, is->ndim, &lo, &hi, err)) return DCV_ESHAPE;
    for (int i = 0; i < is->ndim; i++)
        *(i < lo ? &outer : i > hi ? &inner : &len) *= (size_t)is->d[i];
    if (!dcv_activation_is_axial(l->act.kind)) outer *= len * inner, len = inner = 1;
    if (l->act.kind == DCV_ACT_GLU) {             /* packs its output: one pass */
        if (in != out) glu_copy(&l->act, in, out, outer, len);
        else dcv_activation_apply(&l->act, out, outer, len, 1);
        return 0;
    }
    if (in != out) memmove(out, in, sizeof(float) * outer * len * inner);
    /* Slices of ~64k values between cancellation checks. */
    size_t step = 1 + 65536 / (len * inner);
    for (size_t o = 0; o < outer; o += step) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed))
            return dcv_errf(err, DCV_ECANCELED, "%s: cancelled",
                            dcv_activation_name(l->act.kind));
        size_t n = outer - o < step ? outer - o : step;
        if (inner == 1) {
            dcv_activation_apply(&l->act, out + o * len, n, len, 1);
            continue;
        }
        for (size_t j = o; j < o + n; j++) softmax_columns(out + j * len * inner, len, inner);
    }
    return 0;
}

/* Activation's config shows the activation it computes in its normalized
 * form; the other classes' configs are their arguments as given. */
static struct dcv_json *act_config(const void *state)
{
    const struct act_layer *l = state;
    struct dcv_json *c = dcv_json_dup(l->config);
    if (c && dcv_json_get(c, "activation") &&
        dcv_json_set(c, "activation", dcv_activation_to_json(&l->act))) {
        dcv_json_free(c);
        return NULL;
    }
    return c;
}

static const struct dcv_activation *act_activation(const void *state)
{
    return &((const struct act_layer *)state)->act;
}

#define ACT_CLASS(id, cname, parsefn)                                                         \
    const struct dcv_layer_class dcv_layer_class_##id = {                                     \
        .name = cname, .parse = parsefn, .free_state = act_free, .shape = act_shape,          \
        .as_activation = act_as_activation, .work = dcv_layerkit_work_elems,                  \
        .run = act_run, .in_place = true, .config = act_config, .activation = act_activation, \
    };

ACT_CLASS(activation, "Activation", activation_parse)
ACT_CLASS(relu, "ReLU", relu_parse)
ACT_CLASS(leaky_relu, "LeakyReLU", leaky_parse)
ACT_CLASS(elu, "ELU", elu_parse)
ACT_CLASS(softmax, "Softmax", softmax_parse)

/* --- PReLU --------------------------------------------------------------- */

struct prelu {
    bool shared[DCV_MAX_DIMS];  /* by input axis (batch = 0) */
    bool has_default;           /* the initializer is a constant we know */
    float init;                 /* its value */
    struct dcv_shape ashape;    /* alpha's shape, batch axis excluded; set at bind */
    float *alpha;
    struct dcv_json *config;
};

/* Zeros (Keras's default), Ones or Constant(value) fill an absent alpha. */
static bool constant_init(const struct dcv_json *init, float *v)
{
    const struct dcv_json *c = dcv_json_get(init, "config");
    const char *name = dcv_json_string(init);
    if (!init || dcv_json_type(init) == DCV_JSON_NULL) name = "zeros";
    if (!name) name = dcv_json_string(dcv_json_get(init, "class_name"));
    if (!name) return false;
    if (!strcmp(name, "zeros") || !strcmp(name, "Zeros")) return *v = 0, true;
    if (!strcmp(name, "ones") || !strcmp(name, "Ones")) return *v = 1, true;
    if (strcmp(name, "Constant") && strcmp(name, "constant")) return false;
    const struct dcv_json *val = dcv_json_get(c, "value");
    if (dcv_json_type(val) != DCV_JSON_NUMBER) return false;
    *v = (float)dcv_json_number(val);
    return true;
}

static int prelu_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx, void **state,
                       char *err)
{
    (void)ctx;
    struct prelu *l = calloc(1, sizeof *l);
    if (!l || !(l->config = dcv_json_dup(cfg))) {
        free(l);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    l->has_default = constant_init(dcv_json_get(cfg, "alpha_initializer"), &l->init);
    const struct dcv_json *sa = dcv_json_get(cfg, "shared_axes");
    bool list = dcv_json_type(sa) == DCV_JSON_ARRAY, ok = true;
    size_t n = list ? dcv_json_size(sa) : sa && dcv_json_type(sa) != DCV_JSON_NULL;
    for (size_t i = 0; ok && i < n; i++) {
        int64_t a;
        ok = dcv_json_int(list ? dcv_json_at(sa, i) : sa, 1, DCV_MAX_DIMS - 1, &a);
        if (ok) l->shared[a] = true;
    }
    if (!ok) {
        dcv_json_free(l->config);
        free(l);
        return dcv_errf(err, DCV_EINVAL, "PReLU: 'shared_axes' must be null, an integer or a "
                        "list of integers in [1, %d] (axis 0 is the batch)", DCV_MAX_DIMS - 1);
    }
    *state = l;
    return 0;
}

static void prelu_free(void *state)
{
    struct prelu *l = state;
    if (!l) return;
    free(l->alpha);
    dcv_json_free(l->config);
    free(l);
}

static int prelu_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out, char *err)
{
    const struct prelu *l = state;
    for (int a = in->ndim; a < DCV_MAX_DIMS; a++)
        if (l->shared[a])
            return dcv_errf(err, DCV_ESHAPE, "PReLU: shared axis %d does not fit an input of "
                            "rank %d", a, in->ndim);
    if (l->alpha && in->ndim != l->ashape.ndim + 1)
        return dcv_errf(err, DCV_ESHAPE, "PReLU: the input must have rank %d (batch "
                        "included), got rank %d", l->ashape.ndim + 1, in->ndim);
    for (int a = 1; l->alpha && a < in->ndim; a++)
        if (!l->shared[a] && in->d[a] >= 0 && in->d[a] != l->ashape.d[a - 1])
            return dcv_errf(err, DCV_ESHAPE, "PReLU: input dim %d must be %lld (its alpha's), "
                            "got %lld", a, (long long)l->ashape.d[a - 1], (long long)in->d[a]);
    *out = *in;
    return 0;
}

static int alpha_shape(const struct prelu *l, const struct dcv_shape *in, struct dcv_shape *s,
                       char *err)
{
    int rc;
    struct dcv_shape out;
    if ((rc = prelu_shape((void *)l, in, &out, err))) return rc;
    if (in->ndim < 2)
        return dcv_errf(err, DCV_ESHAPE, "PReLU: the input must have rank 2 or more");
    s->ndim = in->ndim - 1;
    for (int a = 1; a < in->ndim; a++) {
        s->d[a - 1] = l->shared[a] ? 1 : in->d[a];
        if (s->d[a - 1] < 1)
            return dcv_errf(err, DCV_ESHAPE, "PReLU: input dim %d must be known (or shared)", a);
    }
    return 0;
}

static int prelu_weights(const void *state, const struct dcv_shape *in,
                         struct dcv_weight_want *w, int *n, char *err)
{
    const struct prelu *l = state;
    *n = 1;
    w[0] = (struct dcv_weight_want){ .name = "alpha", .has_default = l->has_default };
    return alpha_shape(l, in, &w[0].shape, err);
}

static int prelu_bind(void *state, const struct dcv_shape *in, float *const *arrays, char *err)
{
    struct prelu *l = state;
    struct dcv_shape s;
    int rc = alpha_shape(l, in, &s, err);
    if (rc) return rc;
    size_t n = (size_t)dcv_layerkit_elems(&s);
    float *a = malloc(sizeof(float) * n);
    if (!a) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) a[i] = arrays[0] ? arrays[0][i] : l->init;
    free(l->alpha);
    l->alpha = a, l->ashape = s;
    return 0;
}

/* One row of the last axis; as = alpha's stride along it (0 when shared). */
static void prelu_row(const float *x, float *y, const float *a, size_t as, size_t n)
{
    if (as)
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : a[i] * x[i];
    else
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : a[0] * x[i];
}

static int prelu_run(const void *state, const float *in, const struct dcv_shape *is, float *out,
                     const struct dcv_shape *os, const atomic_bool *stop, char *err)
{
    const struct prelu *l = state;
    (void)os;
    int k = is->ndim - 1;                    /* non-batch axes 1..k */
    size_t astride[DCV_MAX_DIMS], idx[DCV_MAX_DIMS] = { 0 }, last = (size_t)is->d[k];
    size_t st = 1;
    for (int a = k; a >= 1; a--) {
        astride[a] = l->shared[a] ? 0 : st;
        st *= (size_t)l->ashape.d[a - 1];
    }
    size_t rows = (size_t)(dcv_layerkit_elems(is) / (last ? last : 1));
    size_t per_batch = rows / (size_t)(is->d[0] > 0 ? is->d[0] : 1), off = 0;
    for (size_t r = 0; r < rows; r++) {
        if (r % 1024 == 0 && stop && atomic_load_explicit(stop, memory_order_relaxed))
            return dcv_errf(err, DCV_ECANCELED, "PReLU: cancelled");
        prelu_row(in + r * last, out + r * last, l->alpha + off, astride[k], last);
        /* the odometer over axes 1..k-1, restarting at each batch item */
        if ((r + 1) % per_batch == 0) {
            memset(idx, 0, sizeof idx), off = 0;
            continue;
        }
        for (int a = k - 1; a >= 1; a--) {
            off += astride[a];
            if (++idx[a] < (size_t)is->d[a]) break;
            off -= astride[a] * idx[a], idx[a] = 0;
        }
    }
    return 0;
}

static struct dcv_json *prelu_config(const void *state)
{
    return dcv_json_dup(((const struct prelu *)state)->config);
}

const struct dcv_layer_class dcv_layer_class_prelu = {
    .name = "PReLU",
    .parse = prelu_parse,
    .free_state = prelu_free,
    .shape = prelu_shape,
    .weights = prelu_weights,
    .bind = prelu_bind,
    .work = dcv_layerkit_work_elems,
    .run = prelu_run,
    .in_place = true,
    .config = prelu_config,
};
