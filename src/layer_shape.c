/* layer_shape.c — layers that move values without arithmetic: InputLayer,
 * Reshape, Flatten (resampling, cropping and padding are layer_resize.c's).
 *
 * Registry entries (layers.h). Each state is a small struct parsed from the
 * Keras config; run() copies with strides, no allocation. Loading thread for
 * parse/shape; run on any worker, concurrently.
 */
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layerkit.h"
#include "deconvd/layers.h"

/* InputLayer: the declared shape (Keras 3 "batch_shape", tf.keras 2
 * "batch_input_shape"); every other key (dtype, sparse, ragged, name) is
 * kept in the config. */
struct input_layer {
    struct dcv_shape shape;
    struct dcv_json *config;
};

static int input_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx, void **state,
                       char *err)
{
    (void)ctx;
    const struct dcv_json *bs = dcv_json_get(cfg, "batch_shape");
    if (!bs) bs = dcv_json_get(cfg, "batch_input_shape");
    if (dcv_json_type(bs) != DCV_JSON_ARRAY || dcv_json_size(bs) < 1 ||
        dcv_json_size(bs) > DCV_MAX_DIMS)
        return dcv_errf(err, DCV_EINVAL,
                        "InputLayer needs batch_shape (or batch_input_shape): a list of 1 to %d "
                        "dims, batch first", DCV_MAX_DIMS);
    struct input_layer *l = calloc(1, sizeof *l);
    if (!l) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    l->shape.ndim = (int)dcv_json_size(bs);
    for (int i = 0; i < l->shape.ndim; i++) {
        const struct dcv_json *v = dcv_json_at(bs, (size_t)i);
        if (dcv_json_type(v) == DCV_JSON_NULL) {
            l->shape.d[i] = -1;
        } else if (!dcv_json_int(v, 1, DCV_MAX_EXTENT, &l->shape.d[i])) {
            free(l);
            return dcv_errf(err, DCV_EINVAL, "InputLayer batch_shape[%d] must be null or a "
                            "positive integer", i);
        }
    }
    if (!(l->config = dcv_json_dup(cfg))) {
        free(l);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    *state = l;
    return 0;
}

static void input_free(void *state)
{
    struct input_layer *l = state;
    if (l) dcv_json_free(l->config);
    free(l);
}

/* in->ndim == 0: nothing known yet, the declared shape starts the chain. */
static int input_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out, char *err)
{
    const struct input_layer *l = state;
    if (in->ndim == 0) {
        *out = l->shape;
        return 0;
    }
    if (in->ndim != l->shape.ndim)
        return dcv_errf(err, DCV_ESHAPE, "the input must have rank %d, got rank %d",
                        l->shape.ndim, in->ndim);
    for (int i = 1; i < in->ndim; i++)
        if (l->shape.d[i] > 0 && in->d[i] > 0 && in->d[i] != l->shape.d[i])
            return dcv_errf(err, DCV_ESHAPE, "input dim %d must be %lld, got %lld", i,
                            (long long)l->shape.d[i], (long long)in->d[i]);
    *out = *in;
    for (int i = 1; i < in->ndim; i++)
        if (out->d[i] < 0) out->d[i] = l->shape.d[i];
    return 0;
}

static struct dcv_json *input_config(const void *state)
{
    return dcv_json_dup(((const struct input_layer *)state)->config);
}

const struct dcv_layer_class dcv_layer_class_input_layer = {
    .name = "InputLayer",
    .aliases = (const char *const[]){ "Input", NULL },
    .parse = input_parse,
    .free_state = input_free,
    .shape = input_shape,
    .work = dcv_layerkit_no_work,
    .run = dcv_layerkit_copy_run,
    .in_place = true,
    .identity = true,
    .config = input_config,
};

/* Reshape: Keras's target_shape (batch excluded), at most one -1 filled
 * from the input's size. The values keep their order, so a run is a copy
 * the chain skips. */
struct reshape {
    struct dcv_json *config;        /* first: json_state_free */
    struct dcv_shape target;        /* batch slot unused */
    int free_dim;                   /* index of the -1, or 0 */
};

static int reshape_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                         void **state, char *err)
{
    (void)ctx;
    const struct dcv_json *ts = dcv_json_get(cfg, "target_shape");
    if (dcv_json_type(ts) != DCV_JSON_ARRAY || dcv_json_size(ts) < 1 ||
        dcv_json_size(ts) > DCV_MAX_DIMS - 1)
        return dcv_errf(err, DCV_EINVAL, "Reshape needs target_shape: a list of 1 to %d dims "
                        "without the batch", DCV_MAX_DIMS - 1);
    struct reshape *l = calloc(1, sizeof *l);
    if (!l) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    l->target.ndim = (int)dcv_json_size(ts) + 1;
    for (int i = 1; i < l->target.ndim; i++) {
        const struct dcv_json *v = dcv_json_at(ts, (size_t)i - 1);
        int64_t d;
        if (dcv_json_int(v, -1, -1, &d) && !l->free_dim) {
            l->free_dim = i;
        } else if (!dcv_json_int(v, 1, DCV_MAX_EXTENT, &d)) {
            free(l);
            return dcv_errf(err, DCV_EINVAL, "Reshape target_shape[%d] must be a positive "
                            "integer (or one -1)", i - 1);
        }
        l->target.d[i] = d;
    }
    if (!(l->config = dcv_json_dup(cfg))) {
        free(l);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    *state = l;
    return 0;
}

/* States whose first member is their config. */
static void json_state_free(void *state)
{
    if (state) dcv_json_free(*(struct dcv_json **)state);
    free(state);
}

/* Values per batch item: -1 when a dim is unknown, -2 on overflow. */
static int64_t item_size(const struct dcv_shape *s, int skip)
{
    int64_t n = 1;
    for (int i = 1; i < s->ndim; i++) {
        if (i == skip) continue;
        if (s->d[i] < 0) return -1;
        if (n > INT64_MAX / s->d[i]) return -2;
        n *= s->d[i];
    }
    return n;
}

static int reshape_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out,
                         char *err)
{
    const struct reshape *l = state;
    int64_t have = item_size(in, 0), want = item_size(&l->target, l->free_dim);
    *out = l->target;
    out->d[0] = in->d[0];
    if (have == -1) {               /* unknown until a request comes */
        if (l->free_dim) out->d[l->free_dim] = -1;
        return 0;
    }
    if (have < 0 || want < 0)
        return dcv_errf(err, DCV_ESHAPE, "Reshape: the input's size overflows");
    if (l->free_dim) {
        if (have % want)
            return dcv_errf(err, DCV_ESHAPE, "Reshape cannot fill the -1 of its target_shape: "
                            "%lld values per item are not a multiple of %lld",
                            (long long)have, (long long)want);
        out->d[l->free_dim] = have / want;
    } else if (have != want) {
        return dcv_errf(err, DCV_ESHAPE, "Reshape needs %lld values per item for its "
                        "target_shape, got %lld", (long long)want, (long long)have);
    }
    return 0;
}

static struct dcv_json *json_state_config(const void *state)
{
    return dcv_json_dup(*(struct dcv_json *const *)state);
}

const struct dcv_layer_class dcv_layer_class_reshape = {
    .name = "Reshape",
    .parse = reshape_parse,
    .free_state = json_state_free,
    .shape = reshape_shape,
    .work = dcv_layerkit_no_work,
    .run = dcv_layerkit_copy_run,
    .in_place = true,
    .identity = true,
    .config = json_state_config,
};

/* Flatten: (batch, prod(rest)); Keras (keras/src/layers/reshaping/
 * flatten.py) moves channels_first inputs of rank > 2 to channels_last
 * before flattening, so that case is a transpose, the rest a copy. */
struct flatten {
    struct dcv_json *config;        /* first: json_state_free */
    bool channels_first;
};

static int flatten_parse(const struct dcv_json *cfg, const struct dcv_layer_ctx *ctx,
                         void **state, char *err)
{
    (void)ctx;
    const struct dcv_json *df = dcv_json_get(cfg, "data_format");
    const char *f = dcv_json_string(df);
    if (df && dcv_json_type(df) != DCV_JSON_NULL && (!f || (strcmp(f, "channels_first") &&
                                                           strcmp(f, "channels_last"))))
        return dcv_errf(err, DCV_EINVAL, "Flatten data_format must be \"channels_last\" or "
                        "\"channels_first\"");
    struct flatten *l = calloc(1, sizeof *l);
    if (!l || !(l->config = dcv_json_dup(cfg))) {
        free(l);
        return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    l->channels_first = f && !strcmp(f, "channels_first");
    *state = l;
    return 0;
}

static int flatten_shape(void *state, const struct dcv_shape *in, struct dcv_shape *out,
                         char *err)
{
    (void)state;
    int64_t n = item_size(in, 0);
    if (n == -2) return dcv_errf(err, DCV_ESHAPE, "Flatten: the input's size overflows");
    *out = (struct dcv_shape){ 2, { in->d[0], n } };
    return 0;
}

/* (b, c, rest) -> (b, rest, c) for channels_first, else a copy. */
static int flatten_run(const void *state, const float *in, const struct dcv_shape *is,
                       float *out, const struct dcv_shape *os, const atomic_bool *stop,
                       char *err)
{
    const struct flatten *l = state;
    if (!l->channels_first || is->ndim <= 2)
        return dcv_layerkit_copy_run(state, in, is, out, os, stop, err);
    int64_t c = is->d[1], rest = item_size(is, 1);
    for (int64_t b = 0; b < is->d[0]; b++) {
        const float *src = in + b * c * rest;
        float *dst = out + b * c * rest;
        for (int64_t i = 0; i < rest; i++)
            for (int64_t k = 0; k < c; k++) dst[i * c + k] = src[k * rest + i];
    }
    return 0;
}

const struct dcv_layer_class dcv_layer_class_flatten = {
    .name = "Flatten",
    .parse = flatten_parse,
    .free_state = json_state_free,
    .shape = flatten_shape,
    .work = dcv_layerkit_no_work,
    .run = flatten_run,
    .config = json_state_config,
};
