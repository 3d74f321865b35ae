/* layer_conv.c — registry entries for the layers with weights that run on
 * the engine's transposed convolution: Conv1D/2D/3DTranspose and Dense.
 *
 * Design: a transposed convolution wraps layer.c's parse and engine.h's
 * kernel. Dense (kernel (in, units) on the last axis, any rank >= 2) runs
 * as a 1-wide Conv1DTranspose over the flattened middle axes: Keras's
 * deconvolution kernel layout (1, units, in) is the transpose of Dense's,
 * so one engine serves both. bind() copies the weights into the Keras
 * deconvolution layout; folds rewrite that copy (BatchNormalization scales
 * the filters and shifts the bias; an activation becomes the kernel's own
 * when it has none); prepare() hands the final weights to the engine,
 * which prepacks them. Loading thread for everything but run/work, which
 * any worker calls concurrently on the prepared, read-only state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/engine.h"
#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layer.h"
#include "deconvd/layers.h"

struct wlayer {
    bool dense;
    struct dcv_layer layer;         /* transposed convolutions: the parsed config */
    struct dcv_json *config;        /* Dense: its config */
    const char *class_name;
    char name[128];
    struct dcv_conv conv;           /* what the engine runs (Dense: 1-wide, channels last) */
    int ndim;                       /* input rank */
    float *kernel, *bias;           /* Keras deconvolution layout, folds applied */
    struct dcv_init kinit, binit;   /* fill weights the file leaves out, as single layers do */
    size_t cache_cap;
    struct dcv_engine_kernel *k;
};

static void wl_free(void *state)
{
    struct wlayer *s = state;
    if (!s) return;
    dcv_engine_kernel_free(s->k);
    dcv_layer_release(&s->layer);
    dcv_json_free(s->config);
    free(s->kernel);
    free(s->bias);
    free(s);
}

static struct wlayer *wl_new(const struct dcv_layer_ctx *ctx, char *err)
{
    struct wlayer *s = calloc(1, sizeof *s);
    if (!s) dcv_errf(err, DCV_ENOMEM, "out of memory");
    else s->cache_cap = ctx->cache_cap;
    return s;
}

/* ---- transposed convolutions ---------------------------------------------------- */

static int convt_parse(const char *cls, const struct dcv_json *cfg,
                       const struct dcv_layer_ctx *ctx, void **state, char *err)
{
    struct wlayer *s = wl_new(ctx, err);
    int rc;
    if (!s) return DCV_ENOMEM;
    if ((rc = dcv_layer_parse(cls, cfg, &s->layer, err)) ||
        (rc = dcv_activation_parse_ex(dcv_json_get(cfg, "activation"), ctx->keras,
                                      &s->layer.conv.act, err))) {
        wl_free(s);
        return rc;
    }
    s->class_name = cls;
    s->conv = s->layer.conv;
    s->kinit = s->layer.kernel_init;
    s->binit = s->layer.bias_init;
    s->ndim = s->conv.rank + 2;
    snprintf(s->name, sizeof s->name, "%s", s->layer.name);
    *state = s;
    return 0;
}

static int convt1_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                        void **state, char *err)
{
    return convt_parse("Conv1DTranspose", cfg, ctx, state, err);
}

static int convt2_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                        void **state, char *err)
{
    return convt_parse("Conv2DTranspose", cfg, ctx, state, err);
}

static int convt3_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                        void **state, char *err)
{
    return convt_parse("Conv3DTranspose", cfg, ctx, state, err);
}

static int convt_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out, char *err)
{
    struct wlayer *s = state;
    int cax = dcv_conv_channel_axis(&s->conv), rc;
    if (in->ndim == s->ndim && in->d[cax] > 0 && !s->layer.conv.in_channels) {
        if ((rc = dcv_layer_set_in_channels(&s->layer, in->d[cax], err))) return rc;
        s->conv.in_channels = in->d[cax];
    }
    out->ndim = s->ndim;
    return dcv_layer_output_shape(&s->layer, in->d, in->ndim, out->d, err);
}

/* ---- Dense ---------------------------------------------------------------------- */

static int dense_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                       void **state, char *err)
{
    struct wlayer *s;
    int64_t units;
    int rc;
    const struct dcv_json *lora = dcv_json_get(cfg, "lora_rank"), *ub = dcv_json_get(cfg,
                                                                                    "use_bias");
    if (dcv_json_type(cfg) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "Dense config must be an object, got %s",
                        dcv_json_type_name(cfg));
    if (!dcv_json_int(dcv_json_get(cfg, "units"), 1, DCV_MAX_CHANNELS, &units))
        return dcv_errf(err, DCV_EINVAL, "Dense needs 'units': an integer in [1, %d]",
                        DCV_MAX_CHANNELS);
    if (lora && dcv_json_type(lora) != DCV_JSON_NULL)
        return dcv_errf(err, DCV_EUNSUPP, "Dense 'lora_rank' is not supported (merge the "
                        "LoRA weights into the kernel first)");
    if (ub && dcv_json_type(ub) != DCV_JSON_BOOL)
        return dcv_errf(err, DCV_EINVAL, "Dense 'use_bias' must be true or false, got %s",
                        dcv_json_type_name(ub));
    if (!(s = wl_new(ctx, err))) return DCV_ENOMEM;
    s->dense = true;
    s->class_name = "Dense";
    s->conv = (struct dcv_conv){ .rank = 1, .filters = units, .kernel = { 1 },
                                 .strides = { 1 }, .dilation = { 1 },
                                 .use_bias = !ub || dcv_json_true(ub) };
    const char *nm = dcv_json_string(dcv_json_get(cfg, "name"));
    snprintf(s->name, sizeof s->name, "%s", nm ? nm : "dense");
    if ((rc = dcv_activation_parse_ex(dcv_json_get(cfg, "activation"), ctx->keras,
                                      &s->conv.act, err)) ||
        (rc = dcv_activation_check_fused(&s->conv.act, "Dense", err)) ||
        (rc = dcv_init_parse(dcv_json_get(cfg, "kernel_initializer"), "glorot_uniform",
                             "kernel_initializer", &s->kinit, err)) ||
        (rc = dcv_init_parse(dcv_json_get(cfg, "bias_initializer"), "zeros",
                             "bias_initializer", &s->binit, err)) ||
        (rc = dcv_layer_parse_dtype(cfg, &s->conv, err))) {
        wl_free(s);
        return rc;
    }
    if (!(s->config = dcv_json_dup(cfg))) {
        wl_free(s);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    *state = s;
    return 0;
}

static int dense_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out, char *err)
{
    struct wlayer *s = state;
    if (in->ndim < 2)
        return dcv_errf(err, DCV_ESHAPE, "Dense needs an input of rank 2 or more (batch, ..., "
                        "features), got rank %d", in->ndim);
    int64_t c = in->d[in->ndim - 1];
    if (!s->conv.in_channels && c > 0) {
        s->conv.in_channels = c;
        s->ndim = in->ndim;
    }
    if (c > 0 && c != s->conv.in_channels)
        return dcv_errf(err, DCV_ESHAPE, "Dense expects %lld features on the last axis, got "
                        "%lld", (long long)s->conv.in_channels, (long long)c);
    *out = *in;
    out->d[in->ndim - 1] = s->conv.filters;
    return 0;
}

/* Dense runs as one item of length batch * middle axes (the rows of its
 * matrix product): oneDNN's deconvolution then is one GEMM over all rows,
 * ~5x faster at batch 16 than items of length 1 (measured against
 * dnnl_sgemm: 1.0x vs 5.0x). *sp gets that length, -1 when unknown. */
static void dense_spatial(const struct dcv_shape *in, int64_t *sp)
{
    *sp = 1;
    for (int i = 0; i < in->ndim - 1; i++) {
        if (in->d[i] < 0) {
            *sp = -1;
            return;
        }
        *sp *= in->d[i];
    }
}

/* ---- shared: weights, folds, compute -------------------------------------------- */

static int64_t kernel_count(const struct dcv_conv *c)
{
    int64_t n = c->filters * c->in_channels;
    for (int i = 0; i < c->rank; i++) n *= c->kernel[i];
    return n;
}

static int wl_weights(const void *state, const struct dcv_shape *in, struct dcv_weight_want *w,
                      int *n, char *err)
{
    const struct wlayer *s = state;
    const struct dcv_conv *c = &s->conv;
    (void)in;
    if (!c->in_channels)
        return dcv_errf(err, DCV_ESHAPE, "the input's channel count is unknown");
    memset(w, 0, sizeof *w * 2);
    w[0].name = "kernel";
    if (s->dense) {
        w[0].shape = (struct dcv_shape){ 2, { c->in_channels, c->filters } };
    } else {
        w[0].shape.ndim = c->rank + 2;
        for (int i = 0; i < c->rank; i++) w[0].shape.d[i] = c->kernel[i];
        w[0].shape.d[c->rank] = c->filters;
        w[0].shape.d[c->rank + 1] = c->in_channels;
    }
    w[1].name = "bias";
    w[1].shape = (struct dcv_shape){ 1, { c->filters } };
    w[0].has_default = w[1].has_default = true;   /* from the initializers */
    *n = c->use_bias ? 2 : 1;
    return 0;
}

/* A weight the file leaves out, from the layer's initializer in its Keras
 * shape (the fans depend on it), as single-layer model files fill them. */
static int fill(struct wlayer *s, int which, float **out, char *err)
{
    struct dcv_weight_want w[2];
    int n, rc;
    if ((rc = wl_weights(s, NULL, w, &n, err))) return rc;
    size_t count = (size_t)dcv_shape_product(w[which].shape.d, w[which].shape.ndim);
    if (!(*out = malloc(sizeof(float) * (count ? count : 1))))
        return dcv_errf(err, DCV_ENOMEM, "out of memory for the weights of '%s'", s->name);
    return dcv_init_fill(which ? &s->binit : &s->kinit, w[which].shape.d, w[which].shape.ndim,
                         (uint64_t)which + 1, *out, err);
}

static int wl_bind(void *state, const struct dcv_shape *in, float *const *arrays, char *err)
{
    struct wlayer *s = state;
    const struct dcv_conv *c = &s->conv;
    int64_t nk = kernel_count(c), f = c->filters, ci = c->in_channels;
    (void)in;
    free(s->kernel);
    free(s->bias);
    s->bias = NULL;
    if (!(s->kernel = malloc(sizeof(float) * (size_t)nk)) ||
        (c->use_bias && !(s->bias = calloc((size_t)f, sizeof(float)))))
        return dcv_errf(err, DCV_ENOMEM, "out of memory for the weights of '%s'", s->name);
    float *filled[2] = { NULL, NULL };
    const float *k = arrays[0], *b = c->use_bias ? arrays[1] : NULL;
    int rc = 0;
    if ((!k && (rc = fill(s, 0, &filled[0], err))) ||
        (c->use_bias && !b && (rc = fill(s, 1, &filled[1], err))))
        goto out;
    k = k ? k : filled[0];
    b = b ? b : filled[1];
    if (s->dense) {            /* (in, units) -> (1, units, in) */
        for (int64_t u = 0; u < f; u++)
            for (int64_t i = 0; i < ci; i++) s->kernel[u * ci + i] = k[i * f + u];
    } else {
        memcpy(s->kernel, k, sizeof(float) * (size_t)nk);
    }
    if (b) memcpy(s->bias, b, sizeof(float) * (size_t)f);
out:
    free(filled[0]);
    free(filled[1]);
    return rc;
}

static int out_channel_axis(const struct wlayer *s)
{
    return s->dense ? s->ndim - 1 : dcv_conv_channel_axis(&s->conv);
}

static int wl_fold_affine(void *state, int axis, const float *scale, const float *shift,
                          char *err)
{
    struct wlayer *s = state;
    struct dcv_conv *c = &s->conv;
    if (axis != out_channel_axis(s))
        return dcv_errf(err, DCV_EUNSUPP, "'%s' has its channels on axis %d, not %d", s->name,
                        out_channel_axis(s), axis);
    if (c->act.kind != DCV_ACT_LINEAR)
        return dcv_errf(err, DCV_EUNSUPP, "'%s' ends with an activation", s->name);
    if (!s->bias && !(s->bias = calloc((size_t)c->filters, sizeof(float))))
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    int64_t f = c->filters, ci = c->in_channels, taps = kernel_count(c) / (f * ci);
    for (int64_t t = 0; t < taps; t++)
        for (int64_t o = 0; o < f; o++)
            for (int64_t i = 0; i < ci; i++) s->kernel[(t * f + o) * ci + i] *= scale[o];
    for (int64_t o = 0; o < f; o++) s->bias[o] = s->bias[o] * scale[o] + shift[o];
    c->use_bias = true;
    return 0;
}

static int wl_fold_activation(void *state, const struct dcv_activation *act, char *err)
{
    struct wlayer *s = state;
    if (s->conv.act.kind != DCV_ACT_LINEAR)
        return dcv_errf(err, DCV_EUNSUPP, "'%s' already ends with %s", s->name,
                        dcv_activation_name(s->conv.act.kind));
    /* the engine's softmax runs along the channel axis; Keras's along the last */
    if (act->kind == DCV_ACT_SOFTMAX && out_channel_axis(s) != s->ndim - 1)
        return dcv_errf(err, DCV_EUNSUPP, "'%s' is channels_first: softmax runs on its own",
                        s->name);
    s->conv.act = *act;
    return 0;
}

/* The engine's spatial view of an input: rank sizes into sp, batch. */
static int64_t engine_view(const struct wlayer *s, const struct dcv_shape *in, int64_t *sp)
{
    if (s->dense) {
        dense_spatial(in, sp);
        return 1;
    }
    int sax = dcv_conv_spatial_axis(&s->conv);
    for (int i = 0; i < s->conv.rank; i++) sp[i] = in->d[sax + i];
    return in->d[0];
}

/* The first plan is built at load for the declared size (unknown dims:
 * the engine's 8), unless an image would pass INT32_MAX values, where
 * oneDNN's index arithmetic overflows. */
static int wl_prepare(void *state, const struct dcv_shape *in, char *err)
{
    struct wlayer *s = state;
    int64_t sp[DCV_MAX_SPATIAL], o[DCV_MAX_SPATIAL];
    const struct dcv_conv *c = &s->conv;
    engine_view(s, in, sp);
    int64_t nin = c->in_channels, nout = c->filters;
    for (int i = 0; i < c->rank; i++) {
        int64_t n = sp[i] > 0 ? sp[i] : 8;
        o[i] = dcv_conv_output_length(n, c->kernel[i], c->strides[i], c->dilation[i],
                                      c->padding, -1);
        nin = nin > INT32_MAX / n ? INT32_MAX : nin * n;
        nout = o[i] <= 0 || nout > INT32_MAX / o[i] ? INT32_MAX : nout * o[i];
    }
    bool pack = nin < INT32_MAX && nout < INT32_MAX;
    dcv_engine_kernel_free(s->k);
    s->k = NULL;
    return dcv_engine_kernel_create(c, s->kernel, s->bias, s->cache_cap, pack ? sp : NULL,
                                    &s->k, err);
}

static uint64_t wl_work(const void *state, const struct dcv_shape *in)
{
    const struct wlayer *s = state;
    int64_t sp[DCV_MAX_SPATIAL];
    int64_t batch = engine_view(s, in, sp);
    return dcv_conv_work(&s->conv, batch, sp);
}

static int wl_run(const void *state, const float *in, const struct dcv_shape *is, float *out,
                  const struct dcv_shape *os, const atomic_bool *stop, char *err)
{
    const struct wlayer *s = state;
    int64_t isp[DCV_MAX_SPATIAL], osp[DCV_MAX_SPATIAL];
    int64_t batch = engine_view(s, is, isp);
    engine_view(s, os, osp);
    return dcv_engine_run(s->k, in, batch, isp, osp, out, stop, err);
}

static struct dcv_json *wl_config(const void *state)
{
    const struct wlayer *s = state;
    return dcv_json_dup(s->dense ? s->config : s->layer.config);
}

static const struct dcv_activation *wl_activation(const void *state)
{
    return &((const struct wlayer *)state)->conv.act;
}

#define WEIGHTED_OPS                                                                     \
    .free_state = wl_free, .weights = wl_weights, .bind = wl_bind,                       \
    .fold_affine = wl_fold_affine, .fold_activation = wl_fold_activation,                \
    .prepare = wl_prepare, .work = wl_work, .run = wl_run, .config = wl_config,          \
    .activation = wl_activation

const struct dcv_layer_class dcv_layer_class_conv1d_transpose = {
    .name = "Conv1DTranspose",
    .aliases = (const char *const[]){ "Convolution1DTranspose", "Deconvolution1D", "Deconv1D",
                                      "conv_1d_transpose", NULL },
    .parse = convt1_parse, .shape = convt_shape, WEIGHTED_OPS,
};

const struct dcv_layer_class dcv_layer_class_conv2d_transpose = {
    .name = "Conv2DTranspose",
    .aliases = (const char *const[]){ "Convolution2DTranspose", "Deconvolution2D", "Deconv2D",
                                      "conv_2d_transpose", NULL },
    .parse = convt2_parse, .shape = convt_shape, WEIGHTED_OPS,
};

const struct dcv_layer_class dcv_layer_class_conv3d_transpose = {
    .name = "Conv3DTranspose",
    .aliases = (const char *const[]){ "Convolution3DTranspose", "Deconvolution3D", "Deconv3D",
                                      "conv_3d_transpose", NULL },
    .parse = convt3_parse, .shape = convt_shape, WEIGHTED_OPS,
};

const struct dcv_layer_class dcv_layer_class_dense = {
    .name = "Dense",
    .parse = dense_parse, .shape = dense_shape, WEIGHTED_OPS,
};
