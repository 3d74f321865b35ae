/* layer_convfwd.c — Conv1D / Conv2D / Conv3D (forward convolutions).
 *
 * Registry entries (layers.h) for Keras's Conv*D and tf.keras 2's
 * Convolution*D spellings. The state is the engine geometry (struct
 * dcv_conv with `forward` set), the initializers, the Keras-layout weights
 * once bound ((*kernel_size, in_channels / groups, filters) and filters
 * biases) and, after prepare, the oneDNN kernel (engine.h) that run() calls.
 * A following BatchNormalization folds into the filters axis of the kernel
 * and the bias; a following activation into the engine's epilogue. Parsing
 * reuses layer.c's helpers. Loading thread for everything but work/run,
 * which any worker calls concurrently on the prepared (read-only) state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/init.h"
#include "deconvd/json.h"
#include "deconvd/layer.h"
#include "deconvd/layers.h"

struct convfwd {
    char cls[8];                    /* "Conv2D" */
    struct dcv_conv conv;           /* in_channels 0 until shape() learns it */
    struct dcv_init kernel_init, bias_init;
    float *kernel, *bias;           /* bound weights; bias has filters values */
    struct dcv_engine_kernel *eng;  /* after prepare */
    size_t cache_cap, max_weight_elems;
    struct dcv_json *config;        /* the given config with effective values */
};

static void convfwd_free(void *state)
{
    struct convfwd *l = state;
    if (!l) return;
    dcv_engine_kernel_free(l->eng);
    free(l->kernel);
    free(l->bias);
    dcv_json_free(l->config);
    free(l);
}

static int set_tuple(struct dcv_json *o, const char *key, const int64_t *v, int n)
{
    return dcv_json_set(o, key, dcv_json_new_int_array(v, (size_t)n));
}

/* The config as given (regularizers, constraints, lora_* and unknown keys
 * kept) with each argument's effective value. */
static int build_config(const struct dcv_json *cfg, struct convfwd *l)
{
    const struct dcv_conv *c = &l->conv;
    static const char *const pads[] = { "valid", "same", "causal" };
    struct dcv_json *o = dcv_json_dup(cfg);
    int rc = !o;
    rc |= dcv_json_set(o, "filters", dcv_json_new_number((double)c->filters));
    rc |= set_tuple(o, "kernel_size", c->kernel, c->rank);
    rc |= set_tuple(o, "strides", c->strides, c->rank);
    rc |= dcv_json_set(o, "padding", dcv_json_new_string(pads[c->padding]));
    rc |= dcv_json_set(o, "data_format", dcv_json_new_string(c->channels_first
                                                             ? "channels_first"
                                                             : "channels_last"));
    rc |= set_tuple(o, "dilation_rate", c->dilation, c->rank);
    rc |= dcv_json_set(o, "groups", dcv_json_new_number((double)dcv_conv_groups(c)));
    rc |= dcv_json_set(o, "activation", dcv_activation_to_json(&c->act));
    rc |= dcv_json_set(o, "use_bias", dcv_json_new_bool(c->use_bias));
    rc |= dcv_json_set(o, "kernel_initializer", dcv_init_to_json(&l->kernel_init));
    rc |= dcv_json_set(o, "bias_initializer", dcv_init_to_json(&l->bias_init));
    l->config = o;
    return rc ? DCV_ENOMEM : 0;
}

static int parse_groups(const struct dcv_json *cfg, struct dcv_conv *c, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, "groups");
    c->groups = 1;
    if (!v || dcv_json_type(v) == DCV_JSON_NULL) return 0;
    if (!dcv_json_int(v, 1, DCV_MAX_CHANNELS, &c->groups))
        return dcv_errf(err, DCV_EINVAL, "groups must be a positive integer (at most %d), "
                        "got %s %g", DCV_MAX_CHANNELS, dcv_json_type_name(v),
                        dcv_json_number(v));
    if (c->filters % c->groups)
        return dcv_errf(err, DCV_EINVAL, "filters (%lld) must be divisible by groups (%lld)",
                        (long long)c->filters, (long long)c->groups);
    return 0;
}

static int parse_geometry(const struct dcv_json *cfg, struct convfwd *l, char *err)
{
    struct dcv_conv *c = &l->conv;
    int rc;
    if ((rc = dcv_layer_parse_window(cfg, c, err)) ||
        (rc = dcv_layer_parse_padding(cfg, l->cls, c->rank == 1, &c->padding, err)) ||
        (rc = dcv_layer_parse_data_format(cfg, c, err)) || (rc = parse_groups(cfg, c, err)))
        return rc;
    return dcv_layer_check_strides_dilation(c, err);
}

static int parse_rank(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx, int rank,
                      void **state, char *err)
{
    struct convfwd *l = calloc(1, sizeof *l);
    int rc;
    if (!l) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    snprintf(l->cls, sizeof l->cls, "Conv%dD", rank);
    l->conv.rank = rank;
    l->conv.forward = true;
    l->cache_cap = ctx->cache_cap;
    l->max_weight_elems = ctx->max_weight_elems;
    if (dcv_json_type(cfg) != DCV_JSON_OBJECT) {
        rc = dcv_errf(err, DCV_EINVAL, "%s config must be an object, got %s", l->cls,
                      dcv_json_type_name(cfg));
        goto fail;
    }
    if ((rc = parse_geometry(cfg, l, err)) ||
        (rc = dcv_activation_parse_ex(dcv_json_get(cfg, "activation"), ctx->keras,
                                      &l->conv.act, err)) ||
        (rc = dcv_activation_check_fused(&l->conv.act, l->cls, err)) ||
        (rc = dcv_layer_parse_bool(cfg, "use_bias", true, &l->conv.use_bias, err)) ||
        (rc = dcv_layer_parse_dtype(cfg, &l->conv, err)) ||
        (rc = dcv_init_parse(dcv_json_get(cfg, "kernel_initializer"), "glorot_uniform",
                             "kernel_initializer", &l->kernel_init, err)) ||
        (rc = dcv_init_parse(dcv_json_get(cfg, "bias_initializer"), "zeros",
                             "bias_initializer", &l->bias_init, err)))
        goto fail;
    if ((rc = build_config(cfg, l))) {
        dcv_errf(err, rc, "out of memory building the normalized config");
        goto fail;
    }
    *state = l;
    return 0;
fail:
    convfwd_free(l);
    return rc;
}

static int conv1d_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                        void **state, char *err)
{
    return parse_rank(cfg, ctx, 1, state, err);
}

static int conv2d_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                        void **state, char *err)
{
    return parse_rank(cfg, ctx, 2, state, err);
}

static int conv3d_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                        void **state, char *err)
{
    return parse_rank(cfg, ctx, 3, state, err);
}

static int check_channels(struct convfwd *l, int64_t ch, char *err)
{
    struct dcv_conv *c = &l->conv;
    if (ch < 0) return 0;
    if (ch < 1 || ch > DCV_MAX_CHANNELS)
        return dcv_errf(err, DCV_ESHAPE, "%s: input channels must be in [1, %d], got %lld",
                        l->cls, DCV_MAX_CHANNELS, (long long)ch);
    if (c->in_channels && ch != c->in_channels)
        return dcv_errf(err, DCV_ESHAPE, "%s: the input has %lld channels but the layer was "
                        "built for %lld", l->cls, (long long)ch, (long long)c->in_channels);
    if (ch % dcv_conv_groups(c))
        return dcv_errf(err, DCV_ESHAPE, "%s: the number of input channels (%lld) must be "
                        "divisible by groups (%lld)", l->cls, (long long)ch,
                        (long long)dcv_conv_groups(c));
    if (!c->in_channels) c->in_channels = ch;   /* learnt from the load-time signature */
    return 0;
}

static int convfwd_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out,
                         char *err)
{
    struct convfwd *l = state;
    const struct dcv_conv *c = &l->conv;
    int cax = dcv_conv_channel_axis(c), sax = dcv_conv_spatial_axis(c), rc;
    if (in->ndim != c->rank + 2)
        return dcv_errf(err, DCV_ESHAPE, "%s expects a rank-%d input (batch, %d spatial "
                        "dims, channels), got rank %d", l->cls, c->rank + 2, c->rank,
                        in->ndim);
    if ((rc = check_channels(l, in->d[cax], err))) return rc;
    *out = *in;
    out->d[cax] = c->filters;
    for (int i = 0; i < c->rank; i++) {
        int64_t n = in->d[sax + i], o = dcv_conv_out_length(c, i, n);
        if (n >= 0 && o < 1)
            return dcv_errf(err, DCV_ESHAPE, "%s: computed output size would be zero or "
                            "negative: spatial dim %d is %lld, kernel_size %lld, "
                            "dilation_rate %lld, padding valid", l->cls, i, (long long)n,
                            (long long)c->kernel[i], (long long)c->dilation[i]);
        out->d[sax + i] = o;
    }
    return 0;
}

static int kernel_shape(const struct dcv_conv *c, struct dcv_shape *s)
{
    s->ndim = c->rank + 2;
    for (int i = 0; i < c->rank; i++) s->d[i] = c->kernel[i];
    s->d[c->rank] = c->in_channels / dcv_conv_groups(c);
    s->d[c->rank + 1] = c->filters;
    return s->ndim;
}

static int convfwd_weights(const void *state, const struct dcv_shape *in,
                           struct dcv_weight_want *w, int *n, char *err)
{
    const struct convfwd *l = state;
    const struct dcv_conv *c = &l->conv;
    int64_t ch = in->ndim == c->rank + 2 ? in->d[dcv_conv_channel_axis(c)] : -1;
    if (ch < 1 || (c->in_channels && ch != c->in_channels))
        return dcv_errf(err, DCV_ESHAPE, "%s: the input channels must be known to size the "
                        "kernel", l->cls);
    w[0] = (struct dcv_weight_want){ "kernel", { 0 }, true };
    struct dcv_conv k = *c;
    k.in_channels = ch;
    kernel_shape(&k, &w[0].shape);
    int64_t nk = dcv_shape_product(w[0].shape.d, w[0].shape.ndim);
    if (nk < 0 || (l->max_weight_elems && (uint64_t)nk > l->max_weight_elems))
        return dcv_errf(err, DCV_ETOOBIG, "%s: the kernel would have %lld weights, above "
                        "the limit of %zu", l->cls, (long long)nk, l->max_weight_elems);
    *n = 1;
    if (c->use_bias) {
        w[1] = (struct dcv_weight_want){ "bias", { 1, { c->filters } }, true };
        *n = 2;
    }
    return 0;
}

static int convfwd_bind(void *state, const struct dcv_shape *in, float *const *arrays,
                        char *err)
{
    struct convfwd *l = state;
    struct dcv_conv *c = &l->conv;
    struct dcv_shape ks;
    int rc;
    if ((rc = check_channels(l, in->d[dcv_conv_channel_axis(c)], err))) return rc;
    if (!c->in_channels)
        return dcv_errf(err, DCV_ESHAPE, "%s: input channels unknown", l->cls);
    kernel_shape(c, &ks);
    size_t nk = (size_t)dcv_shape_product(ks.d, ks.ndim), nb = (size_t)c->filters;
    free(l->kernel);
    free(l->bias);
    l->kernel = malloc(sizeof(float) * nk);
    l->bias = calloc(nb, sizeof(float));
    if (!l->kernel || !l->bias) return dcv_errf(err, DCV_ENOMEM, "out of memory for weights");
    if (arrays[0]) memcpy(l->kernel, arrays[0], sizeof(float) * nk);
    else if ((rc = dcv_init_fill(&l->kernel_init, ks.d, ks.ndim, 1, l->kernel, err)))
        return rc;
    if (!c->use_bias) return 0;
    if (arrays[1]) memcpy(l->bias, arrays[1], sizeof(float) * nb);
    else return dcv_init_fill(&l->bias_init, &c->filters, 1, 2, l->bias, err);
    return 0;
}

/* y = conv(x) * scale + shift per filter: the kernel's last (filters) axis
 * and the bias take the map; only before a non-linear activation. */
static int convfwd_fold_affine(void *state, int axis, const float *scale, const float *shift,
                               char *err)
{
    struct convfwd *l = state;
    struct dcv_conv *c = &l->conv;
    if (axis < 0) axis += c->rank + 2;
    if (axis != dcv_conv_channel_axis(c))
        return dcv_errf(err, DCV_EUNSUPP, "%s: cannot fold an affine map on axis %d: the "
                        "channel axis of its output is %d", l->cls, axis,
                        dcv_conv_channel_axis(c));
    if (c->act.kind != DCV_ACT_LINEAR)
        return dcv_errf(err, DCV_EUNSUPP, "%s: cannot fold an affine map after its "
                        "activation '%s'", l->cls, dcv_activation_name(c->act.kind));
    if (!l->kernel) return dcv_errf(err, DCV_EINVAL, "%s: fold before bind", l->cls);
    struct dcv_shape ks;
    kernel_shape(c, &ks);
    size_t f = (size_t)c->filters, nk = (size_t)dcv_shape_product(ks.d, ks.ndim);
    for (size_t i = 0; i < nk; i++) l->kernel[i] *= scale[i % f];
    for (size_t i = 0; i < f; i++) l->bias[i] = l->bias[i] * scale[i] + shift[i];
    c->use_bias = true;
    return 0;
}

static int convfwd_fold_activation(void *state, const struct dcv_activation *act, char *err)
{
    struct convfwd *l = state;
    if (l->conv.act.kind != DCV_ACT_LINEAR)
        return dcv_errf(err, DCV_EUNSUPP, "%s already has activation '%s'", l->cls,
                        dcv_activation_name(l->conv.act.kind));
    l->conv.act = *act;
    return 0;
}

static int convfwd_prepare(void *state, const struct dcv_shape *in, char *err)
{
    struct convfwd *l = state;
    int64_t sp[DCV_MAX_SPATIAL];
    int sax = dcv_conv_spatial_axis(&l->conv);
    if (!l->kernel) return dcv_errf(err, DCV_EINVAL, "%s: prepare before bind", l->cls);
    for (int i = 0; i < l->conv.rank; i++) sp[i] = in->ndim > sax + i ? in->d[sax + i] : -1;
    dcv_engine_kernel_free(l->eng);
    l->eng = NULL;
    return dcv_engine_kernel_create(&l->conv, l->kernel, l->bias, l->cache_cap, sp, &l->eng,
                                    err);
}

static uint64_t convfwd_work(const void *state, const struct dcv_shape *in)
{
    const struct convfwd *l = state;
    if (in->ndim != l->conv.rank + 2) return UINT64_MAX;
    return dcv_conv_work(&l->conv, in->d[0], in->d + dcv_conv_spatial_axis(&l->conv));
}

static int convfwd_run(const void *state, const float *in, const struct dcv_shape *is,
                       float *out, const struct dcv_shape *os, const atomic_bool *stop,
                       char *err)
{
    const struct convfwd *l = state;
    int sax = dcv_conv_spatial_axis(&l->conv);
    if (!l->eng) return dcv_errf(err, DCV_EENGINE, "%s: run before prepare", l->cls);
    return dcv_engine_run(l->eng, in, is->d[0], is->d + sax, os->d + sax, out, stop, err);
}

static struct dcv_json *convfwd_config(const void *state)
{
    return dcv_json_dup(((const struct convfwd *)state)->config);
}

static const struct dcv_activation *convfwd_activation(const void *state)
{
    return &((const struct convfwd *)state)->conv.act;
}

#define CONVFWD_ENTRY(r)                                                       \
    const struct dcv_layer_class dcv_layer_class_conv##r##d = {                \
        .name = "Conv" #r "D",                                                 \
        .aliases = (const char *const[]){ "Convolution" #r "D", NULL },        \
        .parse = conv##r##d_parse,                                             \
        .free_state = convfwd_free,                                            \
        .shape = convfwd_shape,                                                \
        .weights = convfwd_weights,                                            \
        .bind = convfwd_bind,                                                  \
        .fold_affine = convfwd_fold_affine,                                    \
        .fold_activation = convfwd_fold_activation,                            \
        .prepare = convfwd_prepare,                                            \
        .work = convfwd_work,                                                  \
        .run = convfwd_run,                                                    \
        .config = convfwd_config,                                              \
        .activation = convfwd_activation,                                      \
    };

CONVFWD_ENTRY(1)
CONVFWD_ENTRY(2)
CONVFWD_ENTRY(3)
