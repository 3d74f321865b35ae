/* layer.c — parsing and validation of Keras transposed-convolution configs.
 *
 * Accepts what Keras 2, Keras 3 and R-keras write: ints or lists for tuple
 * arguments, case-insensitive padding, dtype strings or DTypePolicy dicts,
 * input_shape / batch_input_shape / batch_size. Training-only arguments
 * (regularizers, constraints, trainable) are kept and reported as inactive;
 * unknown keys are kept and reported as ignored. The normalized config built
 * here is what users see at /v2/models/{m}/config. Which Keras wrote the
 * config (it decides activation semantics) is read from the config itself:
 * see keras_of(). Any thread; the parsed layer owns its JSON trees.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/names.h"
#include "deconvd/layer.h"

static const struct { const char *name; int rank; } classes[] = {
    { "Conv1DTranspose", 1 }, { "Conv2DTranspose", 2 }, { "Conv3DTranspose", 3 },
    { "Convolution1DTranspose", 1 }, { "Convolution2DTranspose", 2 },
    { "Convolution3DTranspose", 3 }, { "Deconvolution1D", 1 }, { "Deconvolution2D", 2 },
    { "Deconvolution3D", 3 }, { "Deconv1D", 1 }, { "Deconv2D", 2 }, { "Deconv3D", 3 },
    { "conv_1d_transpose", 1 }, { "conv_2d_transpose", 2 }, { "conv_3d_transpose", 3 },
    { "layer_conv_1d_transpose", 1 }, { "layer_conv_2d_transpose", 2 },
    { "layer_conv_3d_transpose", 3 },
};

/* Keys that do nothing at inference; kept and listed as inactive. */
static const char *const inactive_keys[] = {
    "kernel_regularizer", "bias_regularizer", "activity_regularizer",
    "kernel_constraint", "bias_constraint", "trainable",
};

static const char *const known_keys[] = {
    "name", "filters", "kernel_size", "strides", "padding", "output_padding",
    "data_format", "dilation_rate", "activation", "use_bias", "kernel_initializer",
    "bias_initializer", "input_shape", "batch_input_shape", "batch_size", "dtype",
    "weights", "class_name", "config",
};

static bool in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, list[i]) == 0) return true;
    return false;
}

static int parse_class(const char *cls, struct dcv_layer *l, char *err)
{
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (dcv_names_equal(cls, classes[i].name)) {
            l->conv.rank = classes[i].rank;
            snprintf(l->class_name, sizeof l->class_name, "Conv%dDTranspose", classes[i].rank);
            return 0;
        }
    return dcv_errf(err, DCV_EUNSUPP, "class_name '%.64s' is not supported (supported: "
                    "Conv1DTranspose, Conv2DTranspose, Conv3DTranspose)", cls);
}

int dcv_layer_parse_tuple(const struct dcv_json *cfg, const char *key, int rank, int64_t dflt,
                       int64_t lo, int64_t hi, int64_t *out, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, key);
    int64_t x;
    if (!v || dcv_json_type(v) == DCV_JSON_NULL) {
        if (dflt < lo)
            return dcv_errf(err, DCV_EINVAL, "'%s' is required", key);
        for (int i = 0; i < rank; i++) out[i] = dflt;
        return 0;
    }
    if (dcv_json_type(v) == DCV_JSON_NUMBER) {
        if (!dcv_json_int(v, INT32_MIN, INT32_MAX, &x))
            return dcv_errf(err, DCV_EINVAL, "%s must be an integer, got %g", key,
                            dcv_json_number(v));
        for (int i = 0; i < rank; i++) out[i] = x;
    } else if (dcv_json_type(v) == DCV_JSON_ARRAY && (int)dcv_json_size(v) == rank) {
        int i = 0;
        for (const struct dcv_json *e = dcv_json_first(v); e; e = dcv_json_next(e), i++) {
            if (!dcv_json_int(e, INT32_MIN, INT32_MAX, &x))
                return dcv_errf(err, DCV_EINVAL, "%s[%d] must be an integer, got %s", key, i,
                                dcv_json_type_name(e));
            out[i] = x;
        }
    } else {
        if (dcv_json_type(v) == DCV_JSON_ARRAY)
            return dcv_errf(err, DCV_EINVAL, "%s must be an integer or a list of %d integers, "
                            "got a list of length %zu", key, rank, dcv_json_size(v));
        return dcv_errf(err, DCV_EINVAL, "%s must be an integer or a list of %d integers, "
                        "got %s", key, rank, dcv_json_type_name(v));
    }
    for (int i = 0; i < rank; i++)
        if (out[i] < lo || out[i] > hi)
            return dcv_errf(err, DCV_EINVAL, "%s must be in [%lld, %lld], got %lld "
                            "(dim %d)", key, (long long)lo, (long long)hi,
                            (long long)out[i], i);
    return 0;
}

int dcv_layer_parse_padding(const struct dcv_json *cfg, const char *cls, bool causal_ok,
                            enum dcv_padding *out, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, "padding");
    const char *p = v ? dcv_json_string(v) : "valid";
    if (!p)
        return dcv_errf(err, DCV_EINVAL, "padding must be a string, got %s",
                        dcv_json_type_name(v));
    if (strcasecmp(p, "valid") == 0) *out = DCV_PADDING_VALID;
    else if (strcasecmp(p, "same") == 0) *out = DCV_PADDING_SAME;
    else if (causal_ok && strcasecmp(p, "causal") == 0) *out = DCV_PADDING_CAUSAL;
    else
        return dcv_errf(err, DCV_EINVAL, "padding '%.32s' is not supported by %s: use "
                        "'valid' or 'same'%s", p, cls, causal_ok ? " or 'causal'"
                        : strcasecmp(p, "causal") != 0 ? ""
                        : strstr(cls, "Transpose") ? " (causal padding exists only for "
                        "Conv1D, not its transpose)" : " (causal padding exists only for "
                        "Conv1D)");
    return 0;
}

static int parse_output_padding(const struct dcv_json *cfg, struct dcv_layer *l, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, "output_padding");
    int rc;
    l->has_output_padding = v && dcv_json_type(v) != DCV_JSON_NULL;
    if (!l->has_output_padding) return 0;
    if ((rc = dcv_layer_parse_tuple(cfg, "output_padding", l->conv.rank, 0, 0, DCV_MAX_STRIDE,
                          l->output_padding, err)))
        return rc;
    for (int i = 0; i < l->conv.rank; i++)
        if (l->output_padding[i] >= l->conv.strides[i])
            return dcv_errf(err, DCV_EINVAL, "output_padding must be smaller than strides "
                            "in every dim: output_padding[%d]=%lld, strides[%d]=%lld", i,
                            (long long)l->output_padding[i], i, (long long)l->conv.strides[i]);
    return 0;
}

int dcv_layer_parse_data_format(const struct dcv_json *cfg, struct dcv_conv *c, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, "data_format");
    if (!v || dcv_json_type(v) == DCV_JSON_NULL) return 0;
    const char *s = dcv_json_string(v);
    if (s && strcasecmp(s, "channels_last") == 0) c->channels_first = false;
    else if (s && strcasecmp(s, "channels_first") == 0) c->channels_first = true;
    else
        return dcv_errf(err, DCV_EINVAL, "data_format must be 'channels_last' or "
                        "'channels_first', got %.40s", s ? s : dcv_json_type_name(v));
    return 0;
}

int dcv_layer_parse_dtype(const struct dcv_json *cfg, struct dcv_conv *c, char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, "dtype");
    const char *s = NULL;
    if (!v || dcv_json_type(v) == DCV_JSON_NULL) return 0;
    if (dcv_json_type(v) == DCV_JSON_STRING) s = dcv_json_string(v);
    else if (dcv_json_type(v) == DCV_JSON_OBJECT)
        s = dcv_json_string(dcv_json_get(dcv_json_get(v, "config"), "name"));
    if (s && (strcmp(s, "float32") == 0 || strcmp(s, "float") == 0))
        c->dtype = DCV_DTYPE_FLOAT32;
    else if (s && (strcmp(s, "bfloat16") == 0 || strcmp(s, "mixed_bfloat16") == 0))
        c->dtype = DCV_DTYPE_BFLOAT16;
    else
        return dcv_errf(err, DCV_EUNSUPP, "dtype '%.40s' is not supported (supported: "
                        "float32, bfloat16, mixed_bfloat16)", s ? s : dcv_json_type_name(v));
    return 0;
}

/* Keras 3 (3.4 on) writes dtype as a DTypePolicy dict ({"module": "keras",
 * "class_name": "DTypePolicy", ...}); tf.keras 2 writes a string, or a
 * {"class_name": "Policy"} dict for mixed precision. The other markers
 * ("module", "registered_name" on initializers and activations) are no
 * proof: tf.keras 2.13+ writes them too. A Keras 3 activation dict or a
 * Keras-3-only name means the same under both readings, so nothing else is
 * needed here. */
static enum dcv_keras keras_of(const struct dcv_json *cfg)
{
    const struct dcv_json *d = dcv_json_get(cfg, "dtype");
    const char *cls = dcv_json_string(dcv_json_get(d, "class_name"));
    const char *mod = dcv_json_string(dcv_json_get(d, "module"));
    size_t n = cls ? strlen(cls) : 0;
    bool policy = n >= 11 && strcmp(cls + n - 11, "DTypePolicy") == 0;
    return policy || (mod && strcmp(mod, "keras") == 0) ? DCV_KERAS_3 : DCV_KERAS_2;
}

static int parse_activation(const struct dcv_json *cfg, struct dcv_layer *l, char *err)
{
    int rc = dcv_activation_parse_ex(dcv_json_get(cfg, "activation"), keras_of(cfg),
                                     &l->conv.act, err);
    return rc ? rc : dcv_activation_check_fused(&l->conv.act, l->class_name, err);
}

int dcv_layer_parse_bool(const struct dcv_json *cfg, const char *key, bool dflt, bool *out,
                      char *err)
{
    const struct dcv_json *v = dcv_json_get(cfg, key);
    *out = dflt;
    if (!v || dcv_json_type(v) == DCV_JSON_NULL) return 0;
    if (dcv_json_type(v) != DCV_JSON_BOOL)
        return dcv_errf(err, DCV_EINVAL, "%s must be true or false, got %s", key,
                        dcv_json_type_name(v));
    *out = dcv_json_true(v);
    return 0;
}

/* A list of dims with null/-1 as unknown, each known dim >= 1. */
static int parse_dims(const struct dcv_json *v, const char *key, int64_t *out, int want,
                      char *err)
{
    if (dcv_json_type(v) != DCV_JSON_ARRAY || (int)dcv_json_size(v) != want)
        return dcv_errf(err, DCV_EINVAL, "%s must be a list of %d dims, got %s of %zu", key,
                        want, dcv_json_type_name(v), dcv_json_size(v));
    int i = 0;
    for (const struct dcv_json *e = dcv_json_first(v); e; e = dcv_json_next(e), i++) {
        int64_t x;
        if (dcv_json_type(e) == DCV_JSON_NULL) out[i] = -1;
        else if (dcv_json_int(e, -1, DCV_MAX_EXTENT, &x) && x != 0) out[i] = x;
        else
            return dcv_errf(err, DCV_EINVAL, "%s[%d] must be null, -1 or a positive "
                            "integer", key, i);
    }
    return 0;
}

static int parse_input_shape(const struct dcv_json *cfg, struct dcv_layer *l, char *err)
{
    const struct dcv_json *bis = dcv_json_get(cfg, "batch_input_shape");
    const struct dcv_json *is = dcv_json_get(cfg, "input_shape");
    const struct dcv_json *bs = dcv_json_get(cfg, "batch_size");
    int nd = l->conv.rank + 2, rc;
    for (int i = 0; i < nd; i++) l->input_shape[i] = -1;
    if (bis && dcv_json_type(bis) != DCV_JSON_NULL) {
        if ((rc = parse_dims(bis, "batch_input_shape", l->input_shape, nd, err))) return rc;
        l->has_input_shape = true;
    } else if (is && dcv_json_type(is) != DCV_JSON_NULL) {
        if ((rc = parse_dims(is, "input_shape", l->input_shape + 1, nd - 1, err))) return rc;
        l->has_input_shape = true;
    }
    if (bs && dcv_json_type(bs) != DCV_JSON_NULL) {
        int64_t b;
        if (!dcv_json_int(bs, 1, DCV_MAX_EXTENT, &b))
            return dcv_errf(err, DCV_EINVAL, "batch_size must be a positive integer");
        l->input_shape[0] = b;
    }
    int64_t c = l->input_shape[dcv_conv_channel_axis(&l->conv)];
    if (c > DCV_MAX_CHANNELS)
        return dcv_errf(err, DCV_EINVAL, "the declared input shape has %lld channels, above "
                        "the limit of %d", (long long)c, DCV_MAX_CHANNELS);
    if (c > 0) l->conv.in_channels = c;
    return 0;
}

int dcv_layer_parse_window(const struct dcv_json *cfg, struct dcv_conv *c, char *err)
{
    const struct dcv_json *fv = dcv_json_get(cfg, "filters");
    if (!fv)
        return dcv_errf(err, DCV_EINVAL, "'filters' is required");
    if (!dcv_json_int(fv, INT32_MIN, INT32_MAX, &c->filters) || c->filters <= 0 ||
        c->filters > DCV_MAX_CHANNELS)
        return dcv_errf(err, DCV_EINVAL, "filters must be a positive integer (at most %d), "
                        "got %s %g", DCV_MAX_CHANNELS, dcv_json_type_name(fv),
                        dcv_json_number(fv));
    int rc;
    if ((rc = dcv_layer_parse_tuple(cfg, "kernel_size", c->rank, -1, 1, DCV_MAX_KERNEL,
                                    c->kernel, err)) ||
        (rc = dcv_layer_parse_tuple(cfg, "strides", c->rank, 1, 1, DCV_MAX_STRIDE, c->strides,
                                    err)))
        return rc;
    return dcv_layer_parse_tuple(cfg, "dilation_rate", c->rank, 1, 1, DCV_MAX_DILATION,
                                 c->dilation, err);
}

int dcv_layer_check_strides_dilation(const struct dcv_conv *c, char *err)
{
    for (int i = 0; i < c->rank; i++)
        for (int j = 0; j < c->rank; j++)
            if (c->strides[i] > 1 && c->dilation[j] > 1)
                return dcv_errf(err, DCV_EINVAL, "strides > 1 not supported in conjunction "
                                "with dilation_rate > 1: strides=%lld, dilation_rate=%lld",
                                (long long)c->strides[i], (long long)c->dilation[j]);
    return 0;
}

static int parse_geometry(const struct dcv_json *cfg, struct dcv_layer *l, char *err)
{
    struct dcv_conv *c = &l->conv;
    int rc;
    if ((rc = dcv_layer_parse_window(cfg, c, err)) ||
        (rc = dcv_layer_parse_padding(cfg, l->class_name, false, &c->padding, err)) ||
        (rc = parse_output_padding(cfg, l, err)) ||
        (rc = dcv_layer_parse_data_format(cfg, c, err)))
        return rc;
    return dcv_layer_check_strides_dilation(c, err);
}

static int add_tuple(struct dcv_json *o, const char *key, const int64_t *v, int n)
{
    return dcv_json_add(o, key, dcv_json_new_int_array(v, n));
}

/* The normalized config: every argument with its effective value, plus a
 * "deconvd" section saying what is inactive or ignored. */
static int build_config(const struct dcv_json *cfg, struct dcv_layer *l)
{
    struct dcv_json *o = dcv_json_new_object(), *inactive = dcv_json_new_array(),
                    *ignored = dcv_json_new_array(), *meta = dcv_json_new_object();
    const struct dcv_conv *c = &l->conv;
    int rc = 0;
    rc |= dcv_json_add(o, "name", dcv_json_new_string(l->name));
    rc |= dcv_json_add(o, "trainable", dcv_json_new_bool(!dcv_json_get(cfg, "trainable") ||
                                                         dcv_json_true(dcv_json_get(cfg, "trainable"))));
    rc |= dcv_json_add(o, "dtype", dcv_json_new_string(c->dtype == DCV_DTYPE_BFLOAT16
                                                       ? "bfloat16" : "float32"));
    rc |= dcv_json_add(o, "filters", dcv_json_new_number((double)c->filters));
    rc |= add_tuple(o, "kernel_size", c->kernel, c->rank);
    rc |= add_tuple(o, "strides", c->strides, c->rank);
    rc |= dcv_json_add(o, "padding", dcv_json_new_string(c->padding == DCV_PADDING_SAME
                                                         ? "same" : "valid"));
    rc |= l->has_output_padding ? add_tuple(o, "output_padding", l->output_padding, c->rank)
                                : dcv_json_add(o, "output_padding", dcv_json_new_null());
    rc |= dcv_json_add(o, "data_format", dcv_json_new_string(c->channels_first
                                                             ? "channels_first" : "channels_last"));
    rc |= add_tuple(o, "dilation_rate", c->dilation, c->rank);
    rc |= dcv_json_add(o, "activation", dcv_activation_to_json(&c->act));
    rc |= dcv_json_add(o, "use_bias", dcv_json_new_bool(c->use_bias));
    rc |= dcv_json_add(o, "kernel_initializer", dcv_init_to_json(&l->kernel_init));
    rc |= dcv_json_add(o, "bias_initializer", dcv_init_to_json(&l->bias_init));
    for (size_t i = 0; i < sizeof inactive_keys / sizeof *inactive_keys; i++) {
        const struct dcv_json *v = dcv_json_get(cfg, inactive_keys[i]);
        if (i + 1 < sizeof inactive_keys / sizeof *inactive_keys)
            rc |= dcv_json_add(o, inactive_keys[i], v ? dcv_json_dup(v) : dcv_json_new_null());
        /* trainable: true is every layer's default, so only false is news */
        bool set = v && dcv_json_type(v) != DCV_JSON_NULL &&
                   !(strcmp(inactive_keys[i], "trainable") == 0 && dcv_json_true(v));
        if (set) rc |= dcv_json_append(inactive, dcv_json_new_string(inactive_keys[i]));
    }
    if (l->has_input_shape) {
        struct dcv_json *bis = dcv_json_new_array();
        for (int i = 0; i < c->rank + 2; i++)
            rc |= dcv_json_append(bis, l->input_shape[i] < 0 ? dcv_json_new_null()
                                  : dcv_json_new_number((double)l->input_shape[i]));
        rc |= dcv_json_add(o, "batch_input_shape", bis);
    }
    for (const struct dcv_json *m = dcv_json_first(cfg); m; m = dcv_json_next(m)) {
        const char *k = dcv_json_key(m);
        if (!in_list(k, known_keys, sizeof known_keys / sizeof *known_keys) &&
            !in_list(k, inactive_keys, sizeof inactive_keys / sizeof *inactive_keys))
            rc |= dcv_json_append(ignored, dcv_json_new_string(k));
    }
    rc |= dcv_json_add(meta, "inactive", inactive);
    rc |= dcv_json_add(meta, "ignored", ignored);
    rc |= dcv_json_add(o, "deconvd", meta);
    l->config = o;
    return rc ? DCV_ENOMEM : 0;
}

int dcv_layer_parse(const char *class_name, const struct dcv_json *config,
                    struct dcv_layer *l, char *err)
{
    int rc;
    memset(l, 0, sizeof *l);
    if (dcv_json_type(config) != DCV_JSON_OBJECT)
        return dcv_errf(err, DCV_EINVAL, "layer config must be an object, got %s",
                        dcv_json_type_name(config));
    if (!class_name) class_name = dcv_json_string(dcv_json_get(config, "class_name"));
    if (!class_name)
        return dcv_errf(err, DCV_EINVAL, "missing 'class_name' (e.g. \"Conv2DTranspose\")");
    if ((rc = parse_class(class_name, l, err))) return rc;
    const struct dcv_json *name = dcv_json_get(config, "name");
    snprintf(l->name, sizeof l->name, "%s", dcv_json_string(name) ? dcv_json_string(name)
                                                                 : l->class_name);
    if ((rc = parse_geometry(config, l, err)) ||
        (rc = parse_activation(config, l, err)) ||
        (rc = dcv_layer_parse_bool(config, "use_bias", true, &l->conv.use_bias, err)) ||
        (rc = dcv_layer_parse_bool(config, "trainable", true, &(bool){ 0 }, err)) ||
        (rc = dcv_layer_parse_dtype(config, &l->conv, err)) || (rc = parse_input_shape(config, l, err)) ||
        (rc = dcv_init_parse(dcv_json_get(config, "kernel_initializer"), "glorot_uniform",
                             "kernel_initializer", &l->kernel_init, err)) ||
        (rc = dcv_init_parse(dcv_json_get(config, "bias_initializer"), "zeros",
                             "bias_initializer", &l->bias_init, err)))
        goto fail;
    const struct dcv_json *w = dcv_json_get(config, "weights");
    if (w && dcv_json_type(w) != DCV_JSON_NULL && !(l->weights = dcv_json_dup(w))) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory copying inline weights");
        goto fail;
    }
    if ((rc = build_config(config, l))) {
        dcv_errf(err, rc, "out of memory building the normalized config");
        goto fail;
    }
    return 0;
fail:
    dcv_layer_release(l);
    return rc;
}

void dcv_layer_release(struct dcv_layer *l)
{
    dcv_json_free(l->config);
    dcv_json_free(l->weights);
    l->config = l->weights = NULL;
}

int dcv_layer_set_in_channels(struct dcv_layer *l, int64_t in_channels, char *err)
{
    if (in_channels < 1 || in_channels > DCV_MAX_CHANNELS)
        return dcv_errf(err, DCV_EINVAL, "input channels must be in [1, %d], got %lld",
                        DCV_MAX_CHANNELS, (long long)in_channels);
    if (l->conv.in_channels && l->conv.in_channels != in_channels)
        return dcv_errf(err, DCV_ESHAPE, "kernel has %lld input channels but the declared "
                        "input shape has %lld", (long long)in_channels,
                        (long long)l->conv.in_channels);
    l->conv.in_channels = in_channels;
    l->input_shape[dcv_conv_channel_axis(&l->conv)] = in_channels;
    return 0;
}

const char *dcv_layer_layout(const struct dcv_layer *l)
{
    static const char *const layouts[2][3] = {
        { "(batch, width, channels)", "(batch, height, width, channels)",
          "(batch, depth, height, width, channels)" },
        { "(batch, channels, width)", "(batch, channels, height, width)",
          "(batch, channels, depth, height, width)" },
    };
    return layouts[l->conv.channels_first][l->conv.rank - 1];
}

int dcv_layer_output_shape(const struct dcv_layer *l, const int64_t *in, int ndim,
                           int64_t *out, char *err)
{
    const struct dcv_conv *c = &l->conv;
    int cax = dcv_conv_channel_axis(c), sax = dcv_conv_spatial_axis(c), rc;
    if (ndim != c->rank + 2)
        return dcv_errf(err, DCV_ESHAPE, "%s expects a rank-%d input %s, got rank %d",
                        l->class_name, c->rank + 2, dcv_layer_layout(l), ndim);
    for (int i = 0; i < ndim; i++)
        if (in[i] == 0 || in[i] < -1 || in[i] > DCV_MAX_EXTENT)
            return dcv_errf(err, DCV_ESHAPE, "input dim %d must be -1 (unknown) or in "
                            "[1, %lld], got %lld", i, (long long)DCV_MAX_EXTENT,
                            (long long)in[i]);
    if (in[cax] > 0 && c->in_channels > 0 && in[cax] != c->in_channels)
        return dcv_errf(err, DCV_ESHAPE, "input has %lld channels (dim %d of %s) but the "
                        "layer expects %lld", (long long)in[cax], cax, dcv_layer_layout(l),
                        (long long)c->in_channels);
    for (int i = 0; i < ndim; i++)
        if (i != cax && in[i] > 0 && l->input_shape[i] > 0 && in[i] != l->input_shape[i])
            return dcv_errf(err, DCV_ESHAPE, "input dim %d of %s is %lld but the layer "
                            "declares %lld (batch_input_shape/input_shape)", i,
                            dcv_layer_layout(l), (long long)in[i],
                            (long long)l->input_shape[i]);
    out[0] = in[0];
    out[cax] = c->filters;
    for (int i = 0; i < c->rank; i++) {
        int64_t n = in[sax + i];
        int64_t o = dcv_conv_output_length(n, c->kernel[i], c->strides[i], c->dilation[i],
                                           c->padding,
                                           l->has_output_padding ? l->output_padding[i] : -1);
        if (n > 0 && (rc = dcv_conv_check_lengths(c, i, n, o, err))) return rc;
        if (o > DCV_MAX_EXTENT)
            return dcv_errf(err, DCV_ESHAPE, "output dim would be %lld, above the limit %lld",
                            (long long)o, (long long)DCV_MAX_EXTENT);
        out[sax + i] = o;
    }
    return 0;
}

void dcv_layer_signature(const struct dcv_layer *l, int64_t *in, int64_t *out)
{
    int nd = l->conv.rank + 2;
    for (int i = 0; i < nd; i++) in[i] = l->input_shape[i];
    if (l->conv.in_channels) in[dcv_conv_channel_axis(&l->conv)] = l->conv.in_channels;
    if (dcv_layer_output_shape(l, in, nd, out, NULL))
        for (int i = 0; i < nd; i++) out[i] = -1;
}
