/* init.h — Keras weight initializers for layers shipped without weights.
 *
 * Parses a Keras initializer spec (a string such as "glorot_uniform", or the
 * serialized dict {"class_name": "GlorotUniform", "config": {...}} in Keras 2
 * or Keras 3 form, with or without "module"/"registered_name") and fills a
 * float32 tensor of a given shape. Fans follow Keras `compute_fans` on the
 * tensor shape as stored, i.e. for a transposed-convolution kernel
 * (*kernel_size, filters, in_channels): fan_in = filters * prod(kernel_size),
 * fan_out = in_channels * prod(kernel_size). Values are deterministic for a
 * given seed (default 0) but are NOT bit-identical to TensorFlow's RNG; the
 * distributions are. Pure functions, any thread.
 */
#ifndef DECONVD_INIT_H
#define DECONVD_INIT_H

#include <stddef.h>
#include <stdint.h>

struct dcv_json;

enum dcv_init_kind {
    DCV_INIT_ZEROS,
    DCV_INIT_ONES,
    DCV_INIT_CONSTANT,
    DCV_INIT_RANDOM_NORMAL,
    DCV_INIT_RANDOM_UNIFORM,
    DCV_INIT_TRUNCATED_NORMAL,
    DCV_INIT_VARIANCE_SCALING, /* glorot_*, he_*, lecun_* are presets of it */
    DCV_INIT_ORTHOGONAL,
    DCV_INIT_IDENTITY,
};

enum dcv_fan_mode { DCV_FAN_IN, DCV_FAN_OUT, DCV_FAN_AVG };
enum dcv_distribution { DCV_DIST_TRUNCATED_NORMAL, DCV_DIST_UNTRUNCATED_NORMAL, DCV_DIST_UNIFORM };

struct dcv_init {
    enum dcv_init_kind kind;
    char name[32];      /* canonical snake_case Keras name, e.g. "glorot_uniform" */
    double value;       /* constant */
    double mean, stddev;        /* random_normal, truncated_normal */
    double minval, maxval;      /* random_uniform */
    double scale;               /* variance_scaling scale */
    enum dcv_fan_mode mode;
    enum dcv_distribution distribution;
    double gain;                /* orthogonal, identity */
    uint64_t seed;              /* 0 when the spec has seed null/absent */
};

/* Parses spec (string or dict; NULL/JSON null means `dflt`, a snake_case
 * name). Names are matched case-insensitively in both snake_case and
 * CamelCase ("GlorotUniform", "glorot_uniform", "he_normal", "HeNormal",
 * "Zeros", "RandomNormal", "VarianceScaling", "Orthogonal", "Identity",
 * "Constant", "TruncatedNormal", ...). Unknown names or bad parameters:
 * DCV_EINVAL with a message naming `what` (e.g. "kernel_initializer"). */
int dcv_init_parse(const struct dcv_json *spec, const char *dflt, const char *what,
                   struct dcv_init *out, char *err);

/* Serializes back to Keras 3 dict form {"class_name":..., "config":{...}}.
 * Returns a new tree (caller frees) or NULL on OOM. */
struct dcv_json *dcv_init_to_json(const struct dcv_init *init);

/* Fills out[prod(shape)] in C order. `salt` is mixed into the seed so that
 * kernel and bias of one layer differ. Orthogonal and identity treat the
 * tensor as a (prod(shape[:-1]), shape[-1]) matrix. Returns 0, DCV_EINVAL
 * (e.g. a zero fan for variance scaling) or DCV_ENOMEM, with a message. */
int dcv_init_fill(const struct dcv_init *init, const int64_t *shape, int ndim,
                  uint64_t salt, float *out, char *err);

#endif
