/* layer_shape.c — layers that move values without arithmetic: InputLayer,
 * Reshape, Flatten, Cropping, ZeroPadding, UpSampling.
 *
 * Registry entries (layers.h). Each state is a small struct parsed from the
 * Keras config; run() copies with strides, no allocation. Loading thread for
 * parse/shape; run on any worker, concurrently.
 */
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
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

static uint64_t no_work(const void *state, const struct dcv_shape *in)
{
    (void)state, (void)in;
    return 0;
}

static int copy_run(const void *state, const float *in, const struct dcv_shape *is, float *out,
                    const struct dcv_shape *os, const atomic_bool *stop, char *err)
{
    (void)state, (void)os, (void)stop, (void)err;
    int64_t n = 1;
    for (int i = 0; i < is->ndim; i++) n *= is->d[i];
    if (in != out) memmove(out, in, sizeof(float) * (size_t)n);
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
    .work = no_work,
    .run = copy_run,
    .in_place = true,
    .identity = true,
    .config = input_config,
};
