/* layer_norm.c — BatchNormalization at inference, and the layers that are
 * identities at inference (Dropout, SpatialDropout1D/2D/3D, GaussianNoise,
 * GaussianDropout, AlphaDropout, ActivityRegularization).
 *
 * Registry entries (layers.h). BatchNormalization binds its four weights
 * into one per-channel affine map y = x * scale[c] + shift[c], computed at
 * bind in double with Keras 3's operation order (tf.nn.batch_normalization:
 * inv = rsqrt(var + eps) * gamma, shift = beta - mean * inv); a preceding
 * convolution or Dense folds it through as_affine, else run applies it
 * with a contiguous inner loop. The identities only validate their
 * arguments (ranges Keras checks) and the input rank they require. Parse,
 * shape, weights and bind on the loading thread; run on any worker.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layerargs.h"
#include "deconvd/layerkit.h"
#include "deconvd/layers.h"

#define BN "BatchNormalization"

struct bn {
    int axis;                   /* as configured, may be negative */
    bool center, scale;
    bool fused, renorm;         /* tf.keras 2 may take its fused kernel */
    double eps;
    enum dcv_keras keras;
    int64_t c;                  /* channels, set at bind */
    int bound_axis, bound_ndim; /* axis resolved against the bound input rank */
    float *mul, *add;           /* per-channel scale and shift, set at bind */
    struct dcv_json *config;
};

/* tf.keras 2 writes axis as an int or a list; Keras 3 as an int. */
static int bn_axis(const struct dcv_json *cfg, int *axis, char *err)
{
    const struct dcv_json *a = dcv_json_get(cfg, "axis");
    int64_t v = -1;
    if (dcv_json_type(a) == DCV_JSON_ARRAY && dcv_json_size(a) > 1)
        return dcv_errf(err, DCV_EUNSUPP, BN ": 'axis' over %zu axes is not supported (one "
                        "channel axis only)", dcv_json_size(a));
    if (dcv_json_type(a) == DCV_JSON_ARRAY && dcv_json_size(a) == 1) a = dcv_json_at(a, 0);
    if (a && dcv_json_type(a) != DCV_JSON_NULL &&
        !dcv_json_int(a, -DCV_MAX_DIMS, DCV_MAX_DIMS - 1, &v))
        return dcv_errf(err, DCV_EINVAL, BN ": 'axis' must be an integer in [%d, %d]",
                        -DCV_MAX_DIMS, DCV_MAX_DIMS - 1);
    if (v == 0)
        return dcv_errf(err, DCV_EINVAL, BN ": 'axis' 0 is the batch axis");
    *axis = (int)v;
    return 0;
}

/* Arguments that only matter in training; values Keras itself refuses are
 * refused, the rest kept in the config. */
static int bn_training_args(const struct dcv_json *cfg, char *err)
{
    double d;
    bool b;
    int rc;
    if ((rc = dcv_layerargs_number(cfg, BN, "momentum", 0.99, -INFINITY, INFINITY, &d, err)) ||
        (rc = dcv_layerargs_number(cfg, BN, "renorm_momentum", 0.99, -INFINITY, INFINITY, &d,
                                   err)) ||
        (rc = dcv_layerargs_bool(cfg, BN, "synchronized", false, &b, err)) ||
        (rc = dcv_layerargs_bool(cfg, BN, "trainable", true, &b, err)))
        return rc;
    const struct dcv_json *rcl = dcv_json_get(cfg, "renorm_clipping");
    if (rcl && dcv_json_type(rcl) != DCV_JSON_NULL && dcv_json_type(rcl) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, BN ": 'renorm_clipping' must be null or a dict of "
                        "rmax, rmin, dmax, got %s", dcv_json_type_name(rcl));
    for (const struct dcv_json *m = dcv_json_first(rcl); m; m = dcv_json_next(m)) {
        const char *k = dcv_json_key(m);
        if (strcmp(k, "rmax") && strcmp(k, "rmin") && strcmp(k, "dmax"))
            return dcv_errf(err, DCV_EINVAL, BN ": 'renorm_clipping' key '%.32s' is not one of "
                            "rmax, rmin, dmax", k);
    }
    const struct dcv_json *vb = dcv_json_get(cfg, "virtual_batch_size");
    if (vb && dcv_json_type(vb) != DCV_JSON_NULL)
        return dcv_errf(err, DCV_EUNSUPP, BN ": 'virtual_batch_size' is not supported (its "
                        "weights have the virtual batch's shape); use null");
    const struct dcv_json *adj = dcv_json_get(cfg, "adjustment");
    if (adj && dcv_json_type(adj) != DCV_JSON_NULL)
        return dcv_errf(err, DCV_EUNSUPP, BN ": 'adjustment' is not supported; use null");
    return 0;
}

static int bn_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx, void **state,
                    char *err)
{
    struct bn l = { .keras = ctx->keras };
    int rc;
    if ((rc = bn_axis(cfg, &l.axis, err)) ||
        (rc = dcv_layerargs_number(cfg, BN, "epsilon", 1e-3, 0, INFINITY, &l.eps, err)) ||
        (rc = dcv_layerargs_bool(cfg, BN, "center", true, &l.center, err)) ||
        (rc = dcv_layerargs_bool(cfg, BN, "scale", true, &l.scale, err)) ||
        (rc = dcv_layerargs_bool(cfg, BN, "fused", true, &l.fused, err)) ||
        (rc = dcv_layerargs_bool(cfg, BN, "renorm", false, &l.renorm, err)) ||
        (rc = bn_training_args(cfg, err)))
        return rc;
    if (!(l.config = dcv_json_dup(cfg)) || !(*state = malloc(sizeof l))) {
        dcv_json_free(l.config);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    memcpy(*state, &l, sizeof l);
    return 0;
}

static void bn_free(void *state)
{
    struct bn *l = state;
    if (!l) return;
    free(l->mul);
    free(l->add);
    dcv_json_free(l->config);
    free(l);
}

/* The axis for an input of rank ndim, or -1 with a message. */
static int resolve_axis(const struct bn *l, int ndim, char *err)
{
    int a = l->axis < 0 ? l->axis + ndim : l->axis;
    if (a < 1 || a >= ndim)
        return dcv_errf(err, DCV_ESHAPE, BN ": 'axis' %d does not fit an input of rank %d "
                        "(batch axis included)", l->axis, ndim), -1;
    return a;
}

static int bn_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out, char *err)
{
    const struct bn *l = state;
    int a = resolve_axis(l, in->ndim, err);
    if (a < 0) return DCV_ESHAPE;
    if (l->c && in->ndim != l->bound_ndim)
        return dcv_errf(err, DCV_ESHAPE, BN ": the input must have rank %d (batch included), "
                        "got rank %d", l->bound_ndim, in->ndim);
    if (l->c && in->d[a] >= 0 && in->d[a] != l->c)
        return dcv_errf(err, DCV_ESHAPE, BN ": input dim %d must be %lld (its weights' "
                        "channels), got %lld", a, (long long)l->c, (long long)in->d[a]);
    *out = *in;
    return 0;
}

static int bn_weights(const void *state, const struct dcv_shape *in, struct dcv_weight_want *w,
                      int *n, char *err)
{
    const struct bn *l = state;
    int a = resolve_axis(l, in->ndim, err);
    if (a < 0) return DCV_ESHAPE;
    if (in->d[a] < 1)
        return dcv_errf(err, DCV_ESHAPE, BN ": the channel dim %d of the input must be known",
                        a);
    static const char *const names[] = { "gamma", "beta", "moving_mean", "moving_variance" };
    bool want[] = { l->scale, l->center, true, true };
    *n = 0;
    for (int i = 0; i < 4; i++)
        if (want[i])
            w[(*n)++] = (struct dcv_weight_want){ .name = names[i], .has_default = true,
                                                  .shape = { .ndim = 1, .d = { in->d[a] } } };
    return 0;
}

/* tf.keras 2 (fused not false, no renorm) runs 4-D and 5-D inputs
 * normalized on their first or last axis through FusedBatchNorm, which
 * raises epsilon to cuDNN's minimum. */
static double effective_eps(const struct bn *l, int ndim, int a)
{
    bool fused = l->keras == DCV_KERAS_2 && l->fused && !l->renorm &&
                 (ndim == 4 || ndim == 5) && (a == 1 || a == ndim - 1);
    return fused && l->eps < 1.001e-5 ? 1.001e-5 : l->eps;
}

static int bn_bind(void *state, const struct dcv_shape *in, float *const *arrays, char *err)
{
    struct bn *l = state;
    int a = resolve_axis(l, in->ndim, err), k = 0;
    if (a < 0) return DCV_ESHAPE;
    int64_t c = in->d[a];
    const float *gamma = l->scale ? arrays[k++] : NULL, *beta = l->center ? arrays[k++] : NULL;
    const float *mean = arrays[k], *var = arrays[k + 1];
    float *mul = malloc(sizeof(float) * (size_t)c), *add = malloc(sizeof(float) * (size_t)c);
    if (!mul || !add) {
        free(mul), free(add);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    /* Keras casts epsilon to float32 and works in float32; each step here
     * is the same step in double, rounded once. */
    double eps = (float)effective_eps(l, in->ndim, a);
    for (int64_t i = 0; i < c; i++) {
        double v = var ? var[i] : 1.0, m = mean ? mean[i] : 0.0;
        double inv = (double)(float)(1.0 / sqrt((double)(float)(v + eps)));
        if (gamma) inv = (double)(float)(inv * gamma[i]);
        mul[i] = (float)inv;
        add[i] = (float)((beta ? beta[i] : 0.0) - (double)(float)(m * inv));
    }
    free(l->mul), free(l->add);
    l->mul = mul, l->add = add, l->c = c, l->bound_axis = a, l->bound_ndim = in->ndim;
    return 0;
}

static bool bn_as_affine(const void *state, const struct dcv_shape *in, int *axis,
                         const float **scale, const float **shift)
{
    const struct bn *l = state;
    int a = resolve_axis(l, in->ndim, NULL);
    if (a < 0 || !l->mul) return false;
    *axis = a, *scale = l->mul, *shift = l->add;
    return true;
}

static int bn_run(const void *state, const float *in, const struct dcv_shape *is, float *out,
                  const struct dcv_shape *os, const atomic_bool *stop, char *err)
{
    const struct bn *l = state;
    (void)os, (void)err;
    int a = l->bound_axis;
    size_t outer = 1, inner = 1, c = (size_t)l->c;
    for (int i = 0; i < a; i++) outer *= (size_t)is->d[i];
    for (int i = a + 1; i < is->ndim; i++) inner *= (size_t)is->d[i];
    const float *mul = l->mul, *add = l->add;
    for (size_t o = 0; o < outer; o++) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed))
            return dcv_errf(err, DCV_ECANCELED, BN ": cancelled");
        const float *x = in + o * c * inner;
        float *y = out + o * c * inner;
        if (inner == 1) {
            for (size_t k = 0; k < c; k++) y[k] = x[k] * mul[k] + add[k];
            continue;
        }
        for (size_t k = 0; k < c; k++) {
            float m = mul[k], s = add[k];
            for (size_t i = 0; i < inner; i++) y[k * inner + i] = x[k * inner + i] * m + s;
        }
    }
    return 0;
}

/* The config with the arguments that decide the values spelled out (axis
 * resolved once bound). */
static struct dcv_json *bn_config(const void *state)
{
    const struct bn *l = state;
    struct dcv_json *c = dcv_json_dup(l->config);
    if (!c || dcv_json_set(c, "axis", dcv_json_new_number(l->c ? l->bound_axis : l->axis)) ||
        dcv_json_set(c, "epsilon", dcv_json_new_number(l->eps)) ||
        dcv_json_set(c, "center", dcv_json_new_bool(l->center)) ||
        dcv_json_set(c, "scale", dcv_json_new_bool(l->scale))) {
        dcv_json_free(c);
        return NULL;
    }
    return c;
}

const struct dcv_layer_class dcv_layer_class_batch_normalization = {
    .name = BN,
    .aliases = (const char *const[]){ "BatchNormalizationV2", "BatchNormalizationV1",
                                      "SyncBatchNormalization", NULL },
    .parse = bn_parse,
    .free_state = bn_free,
    .shape = bn_shape,
    .weights = bn_weights,
    .bind = bn_bind,
    .as_affine = bn_as_affine,
    .work = dcv_layerkit_work_elems,
    .run = bn_run,
    .in_place = true,
    .config = bn_config,
};

/* --- identities at inference ------------------------------------------- */

struct noise_kind {
    const char *name;
    const char *amount;         /* "rate" / "stddev", required in [0, 1]; NULL: none */
    int rank;                   /* required input rank (batch included), 0 = any */
    bool data_format, noise_shape;
    bool k2_unchecked;          /* tf.keras 2 does not bound the amount */
};

struct noise {
    const struct noise_kind *kind;
    struct dcv_json *config;
};

static int noise_shape_arg(const struct dcv_json *cfg, const char *layer, char *err)
{
    const struct dcv_json *ns = dcv_json_get(cfg, "noise_shape");
    if (!ns || dcv_json_type(ns) == DCV_JSON_NULL) return 0;
    bool ok = dcv_json_type(ns) == DCV_JSON_ARRAY && dcv_json_size(ns) <= DCV_MAX_DIMS;
    int64_t v;
    for (size_t i = 0; ok && i < dcv_json_size(ns); i++) {
        const struct dcv_json *d = dcv_json_at(ns, i);
        ok = dcv_json_type(d) == DCV_JSON_NULL || dcv_json_int(d, 1, DCV_MAX_EXTENT, &v);
    }
    if (!ok)
        return dcv_errf(err, DCV_EINVAL, "%s: 'noise_shape' must be null or a list of null or "
                        "positive integers", layer);
    return 0;
}

static int noise_parse_kind(const struct noise_kind *k, const struct dcv_json *cfg,
                            enum dcv_keras keras, void **state, char *err)
{
    /* Keras 3 bounds every amount to [0, 1]; tf.keras 2 only Dropout's. */
    bool free_amount = keras == DCV_KERAS_2 && k->k2_unchecked;
    double lo = free_amount ? -INFINITY : 0, hi = free_amount ? INFINITY : 1;
    double d;
    bool cf;
    int rc = 0;
    if (k->amount) {
        if (!dcv_json_get(cfg, k->amount))
            return dcv_errf(err, DCV_EINVAL, "%s: '%s' is required", k->name, k->amount);
        rc = dcv_layerargs_number(cfg, k->name, k->amount, 0, lo, hi, &d, err);
    } else {
        if (!(rc = dcv_layerargs_number(cfg, k->name, "l1", 0, -INFINITY, INFINITY, &d, err)))
            rc = dcv_layerargs_number(cfg, k->name, "l2", 0, -INFINITY, INFINITY, &d, err);
    }
    if (!rc && k->data_format) rc = dcv_layerargs_channels_first(cfg, k->name, &cf, err);
    if (!rc && k->noise_shape) rc = noise_shape_arg(cfg, k->name, err);
    if (rc) return rc;
    struct noise *l = malloc(sizeof *l);
    if (!l || !(l->config = dcv_json_dup(cfg))) {
        free(l);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    l->kind = k;
    *state = l;
    return 0;
}

static void noise_free(void *state)
{
    struct noise *l = state;
    if (l) dcv_json_free(l->config);
    free(l);
}

static int noise_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out, char *err)
{
    const struct noise *l = state;
    if (l->kind->rank && in->ndim != l->kind->rank)
        return dcv_errf(err, DCV_ESHAPE, "%s: the input must have rank %d (batch included), "
                        "got rank %d", l->kind->name, l->kind->rank, in->ndim);
    *out = *in;
    return 0;
}

static struct dcv_json *noise_config(const void *state)
{
    return dcv_json_dup(((const struct noise *)state)->config);
}

#define NOISE_CLASS(id, cname, amt, rk, df, ns, k2)                                          \
    static const struct noise_kind kind_##id = { cname, amt, rk, df, ns, k2 };               \
    static int parse_##id(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,       \
                          void **state, char *err)                                           \
    {                                                                                         \
        return noise_parse_kind(&kind_##id, cfg, ctx->keras, state, err);                     \
    }                                                                                         \
    const struct dcv_layer_class dcv_layer_class_##id = {                                     \
        .name = cname, .parse = parse_##id, .free_state = noise_free,                         \
        .shape = noise_shape, .work = dcv_layerkit_no_work, .run = dcv_layerkit_copy_run,    \
        .in_place = true, .identity = true, .config = noise_config,                           \
    };

NOISE_CLASS(dropout, "Dropout", "rate", 0, false, true, false)
NOISE_CLASS(spatial_dropout1d, "SpatialDropout1D", "rate", 3, false, false, false)
NOISE_CLASS(spatial_dropout2d, "SpatialDropout2D", "rate", 4, true, false, false)
NOISE_CLASS(spatial_dropout3d, "SpatialDropout3D", "rate", 5, true, false, false)
NOISE_CLASS(gaussian_noise, "GaussianNoise", "stddev", 0, false, false, true)
NOISE_CLASS(gaussian_dropout, "GaussianDropout", "rate", 0, false, false, true)
NOISE_CLASS(alpha_dropout, "AlphaDropout", "rate", 0, false, true, true)
NOISE_CLASS(activity_regularization, "ActivityRegularization", NULL, 0, false, false, false)
