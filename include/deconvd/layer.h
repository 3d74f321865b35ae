/* layer.h — Keras Conv{1,2,3}DTranspose layer configs.
 *
 * Turns the dict Keras `layer.get_config()` returns (Keras 2 or 3, or the
 * R-keras extras) into a validated struct dcv_layer: the engine geometry,
 * initializers, declared input shape and a normalized config to show users.
 * Also the pure shape inference the HTTP layer exposes. No compute, no
 * weights. Any thread; a parsed layer is immutable and may be shared.
 */
#ifndef DECONVD_LAYER_H
#define DECONVD_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "deconvd/conv.h"
#include "deconvd/init.h"

struct dcv_json;

struct dcv_layer {
    char class_name[32];                  /* canonical, e.g. "Conv2DTranspose" */
    char name[128];
    struct dcv_conv conv;                 /* in_channels 0 when not yet known */
    int64_t output_padding[DCV_MAX_SPATIAL];
    bool has_output_padding;
    struct dcv_init kernel_init, bias_init;
    int64_t input_shape[DCV_MAX_DIMS];    /* declared (batch first), -1 unknown */
    bool has_input_shape;
    struct dcv_json *config;              /* normalized Keras config; owned */
    struct dcv_json *weights;             /* config "weights" if given; owned */
};

/* Parses a layer. class_name may be NULL when config carries none; aliases
 * (Deconvolution2D, Convolution2DTranspose, conv_2d_transpose, ...) are
 * accepted. Fills *out (release with dcv_layer_release) and returns 0, or
 * DCV_EINVAL/DCV_EUNSUPP/DCV_ENOMEM with a message naming the argument and
 * the values. */
int dcv_layer_parse(const char *class_name, const struct dcv_json *config,
                    struct dcv_layer *out, char *err);
void dcv_layer_release(struct dcv_layer *layer);

/* Sets the number of input channels once it is known (from the kernel's last
 * dim); DCV_ESHAPE if it contradicts the declared input shape. */
int dcv_layer_set_in_channels(struct dcv_layer *layer, int64_t in_channels, char *err);

/* Output shape for a full input shape (batch first, layout per data_format;
 * -1 = unknown). Checks rank, channel count (when both known), that known
 * dims are >= 1, and TensorFlow's SAME/VALID consistency. out gets ndim
 * values. Returns 0 or DCV_ESHAPE/DCV_EINVAL with a message. */
int dcv_layer_output_shape(const struct dcv_layer *layer, const int64_t *in, int ndim,
                           int64_t *out, char *err);

/* The signature with unknowns: input and output shapes (rank+2 values)
 * from the declared input shape, batch and spatial dims -1 when unknown. */
void dcv_layer_signature(const struct dcv_layer *layer, int64_t *in, int64_t *out);

/* Parsing helpers shared with the registry's convolution entries
 * (layer_convfwd.c). Each reads one key of a get_config() dict, 0 or
 * DCV_EINVAL/DCV_EUNSUPP with a message naming the key and the value. */

/* An int, or a list of exactly `rank` ints, each in [lo, hi]; absent or
 * null: dflt everywhere (dflt < lo: the key is required). */
int dcv_layer_parse_tuple(const struct dcv_json *cfg, const char *key, int rank, int64_t dflt,
                          int64_t lo, int64_t hi, int64_t *out, char *err);
/* "valid" / "same" (any case), "causal" when causal_ok; cls names the
 * layer class in the refusal. */
int dcv_layer_parse_padding(const struct dcv_json *cfg, const char *cls, bool causal_ok,
                            enum dcv_padding *out, char *err);
int dcv_layer_parse_data_format(const struct dcv_json *cfg, struct dcv_conv *c, char *err);
/* "dtype": a string or a Keras 3 DTypePolicy dict. */
int dcv_layer_parse_dtype(const struct dcv_json *cfg, struct dcv_conv *c, char *err);
int dcv_layer_parse_bool(const struct dcv_json *cfg, const char *key, bool dflt, bool *out,
                         char *err);
/* "filters" (required, in [1, DCV_MAX_CHANNELS]), "kernel_size"
 * (required), "strides" and "dilation_rate" for c->rank dims. */
int dcv_layer_parse_window(const struct dcv_json *cfg, struct dcv_conv *c, char *err);
/* Keras's rule: no strides > 1 together with dilation_rate > 1. */
int dcv_layer_check_strides_dilation(const struct dcv_conv *c, char *err);

/* Human description of the input layout: "(batch, height, width, channels)". */
const char *dcv_layer_layout(const struct dcv_layer *layer);

#endif
