/* test_layer.c — Keras Conv{1,2,3}DTranspose configs: real Keras 2 / Keras 3 /
 * R-keras dicts, every validation error (code and message), the normalized
 * config and shape inference. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layer.h"

/* ---- helpers ------------------------------------------------------------- */

static struct dcv_json *pj(const char *text)
{
    char err[DCV_ERRLEN] = "";
    struct dcv_json *j = dcv_json_parse(text, strlen(text), err);
    cr_assert_not_null(j, "test JSON does not parse (%s): %s", err, text);
    return j;
}

static int parse_layer(const char *cls, const char *json, struct dcv_layer *l, char *err)
{
    struct dcv_json *j = pj(json);
    memset(err, 0, DCV_ERRLEN);
    int rc = dcv_layer_parse(cls, j, l, err);
    dcv_json_free(j);   /* the layer must own copies of what it keeps */
    return rc;
}

static void must_parse(const char *cls, const char *json, struct dcv_layer *l)
{
    char err[DCV_ERRLEN];
    int rc = parse_layer(cls, json, l, err);
    cr_assert_eq(rc, 0, "parse failed (%s: %s): %s", dcv_error_name(rc), err, json);
    cr_assert_not_null(l->config);
}

/* Expects `code` and every NULL-terminated substring in the message. */
static void expect_fail(const char *cls, const char *json, int code, ...)
{
    struct dcv_layer l;
    char err[DCV_ERRLEN];
    int rc = parse_layer(cls, json, &l, err);
    cr_assert_eq(rc, code, "want %s, got %s (%s) for %s", dcv_error_name(code),
                 dcv_error_name(rc), err, json);
    cr_assert_null(l.config, "failed parse must not leave a config");
    cr_assert_null(l.weights);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        cr_expect(strstr(err, s), "message lacks \"%s\": %s", s, err);
    va_end(ap);
}

static bool str_array_has(const struct dcv_json *arr, const char *s)
{
    for (const struct dcv_json *e = dcv_json_first(arr); e; e = dcv_json_next(e))
        if (dcv_json_string(e) && strcmp(dcv_json_string(e), s) == 0) return true;
    return false;
}

static const struct dcv_json *meta(const struct dcv_layer *l, const char *key)
{
    const struct dcv_json *m = dcv_json_get(l->config, "deconvd");
    cr_assert_not_null(m, "normalized config has no \"deconvd\" section");
    const struct dcv_json *v = dcv_json_get(m, key);
    cr_assert_eq(dcv_json_type(v), DCV_JSON_ARRAY, "deconvd.%s is not a list", key);
    return v;
}

static void expect_ints(const struct dcv_json *arr, const int64_t *want, size_t n,
                        const char *what)
{
    cr_assert_eq(dcv_json_type(arr), DCV_JSON_ARRAY, "%s is not a list", what);
    cr_assert_eq(dcv_json_size(arr), n, "%s length", what);
    for (size_t i = 0; i < n; i++) {
        int64_t x;
        cr_assert(dcv_json_int(dcv_json_at(arr, i), INT64_MIN / 2, INT64_MAX / 2, &x),
                  "%s[%zu] not an int", what, i);
        cr_expect_eq(x, want[i], "%s[%zu] = %lld, want %lld", what, i, (long long)x,
                     (long long)want[i]);
    }
}

static const char *cfg_str(const struct dcv_layer *l, const char *key)
{
    return dcv_json_string(dcv_json_get(l->config, key));
}

/* ---- real configs ------------------------------------------------------- */

/* keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same",
 * activation="relu").get_config() under Keras 3.3, verbatim. */
static const char *const KERAS3 =
    "{\"name\": \"conv2d_transpose\", \"trainable\": true, \"dtype\": {\"module\": "
    "\"keras\", \"class_name\": \"DTypePolicy\", \"config\": {\"name\": \"float32\"}, "
    "\"registered_name\": null}, \"filters\": 16, \"kernel_size\": [3, 3], \"strides\": "
    "[2, 2], \"padding\": \"same\", \"data_format\": \"channels_last\", \"dilation_rate\": "
    "[1, 1], \"activation\": \"relu\", \"use_bias\": true, \"kernel_initializer\": "
    "{\"module\": \"keras.initializers\", \"class_name\": \"GlorotUniform\", \"config\": "
    "{\"seed\": null}, \"registered_name\": null}, \"bias_initializer\": {\"module\": "
    "\"keras.initializers\", \"class_name\": \"Zeros\", \"config\": {}, "
    "\"registered_name\": null}, \"kernel_regularizer\": null, \"bias_regularizer\": null, "
    "\"activity_regularizer\": null, \"kernel_constraint\": null, \"bias_constraint\": null, "
    "\"output_padding\": null}";

Test(layer, keras3_get_config_verbatim)
{
    struct dcv_layer l;
    must_parse("Conv2DTranspose", KERAS3, &l);
    const struct dcv_conv *c = &l.conv;
    cr_expect_str_eq(l.class_name, "Conv2DTranspose");
    cr_expect_str_eq(l.name, "conv2d_transpose");
    cr_expect_eq(c->rank, 2);
    cr_expect_eq(c->filters, 16);
    cr_expect_eq(c->in_channels, 0, "unknown until weights are seen");
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(c->kernel[i], 3);
        cr_expect_eq(c->strides[i], 2);
        cr_expect_eq(c->dilation[i], 1);
    }
    cr_expect_eq(c->padding, DCV_PADDING_SAME);
    cr_expect(!c->channels_first);
    cr_expect(c->use_bias);
    cr_expect_eq(c->dtype, DCV_DTYPE_FLOAT32);
    cr_expect_eq(c->act.kind, DCV_ACT_RELU);
    cr_expect(!l.has_output_padding);
    cr_expect(!l.has_input_shape);
    cr_expect_eq(l.kernel_init.kind, DCV_INIT_VARIANCE_SCALING);
    cr_expect_str_eq(l.kernel_init.name, "glorot_uniform");
    cr_expect_eq(l.bias_init.kind, DCV_INIT_ZEROS);
    cr_expect_null(l.weights);

    /* normalized config */
    cr_expect_str_eq(cfg_str(&l, "padding"), "same");
    cr_expect_str_eq(cfg_str(&l, "data_format"), "channels_last");
    cr_expect_str_eq(cfg_str(&l, "dtype"), "float32");
    cr_expect_str_eq(cfg_str(&l, "activation"), "relu");
    cr_expect_str_eq(cfg_str(&l, "name"), "conv2d_transpose");
    expect_ints(dcv_json_get(l.config, "kernel_size"), (int64_t[]){ 3, 3 }, 2, "kernel_size");
    expect_ints(dcv_json_get(l.config, "strides"), (int64_t[]){ 2, 2 }, 2, "strides");
    cr_expect_eq(dcv_json_type(dcv_json_get(l.config, "output_padding")), DCV_JSON_NULL);
    cr_expect(dcv_json_true(dcv_json_get(l.config, "use_bias")));
    const struct dcv_json *inactive = meta(&l, "inactive"), *ignored = meta(&l, "ignored");
    cr_expect_eq(dcv_json_size(ignored), 0, "a verbatim Keras 3 config has no unknown keys");
    const char *nulls[] = { "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                            "kernel_constraint", "bias_constraint" };
    for (size_t i = 0; i < 5; i++)
        cr_expect(!str_array_has(inactive, nulls[i]), "null %s listed as inactive", nulls[i]);
    dcv_layer_release(&l);
    dcv_layer_release(&l);  /* idempotent */
}

/* Keras 2 (tf.keras 2.x) get_config() of Conv2DTranspose, hand-written with
 * string initializers and a plain dtype; "groups" is what Conv.get_config()
 * adds in tf.keras 2.x. */
static const char *const KERAS2 =
    "{\"name\": \"deconv\", \"trainable\": true, \"dtype\": \"float32\", \"filters\": 8, "
    "\"kernel_size\": [4, 4], \"strides\": [2, 2], \"padding\": \"valid\", "
    "\"data_format\": \"channels_last\", \"dilation_rate\": [1, 1], \"groups\": 1, "
    "\"activation\": \"linear\", \"use_bias\": false, \"kernel_initializer\": \"he_normal\", "
    "\"bias_initializer\": \"zeros\", \"kernel_regularizer\": null, \"bias_regularizer\": "
    "null, \"activity_regularizer\": null, \"kernel_constraint\": null, "
    "\"bias_constraint\": null, \"output_padding\": [1, 0]}";

Test(layer, keras2_config)
{
    struct dcv_layer l;
    must_parse("Conv2DTranspose", KERAS2, &l);
    cr_expect_eq(l.conv.filters, 8);
    cr_expect_eq(l.conv.kernel[0], 4);
    cr_expect_eq(l.conv.padding, DCV_PADDING_VALID);
    cr_expect(!l.conv.use_bias);
    cr_expect_eq(l.conv.act.kind, DCV_ACT_LINEAR);
    cr_expect(l.has_output_padding);
    cr_expect_eq(l.output_padding[0], 1);
    cr_expect_eq(l.output_padding[1], 0);
    cr_expect_str_eq(l.kernel_init.name, "he_normal");
    cr_expect_eq(l.bias_init.kind, DCV_INIT_ZEROS);
    expect_ints(dcv_json_get(l.config, "output_padding"), (int64_t[]){ 1, 0 }, 2,
                "output_padding");
    cr_expect(str_array_has(meta(&l, "ignored"), "groups"));
    /* valid + output_padding: (n-1)*s + k + op */
    int64_t in[4] = { 2, 5, 6, 3 }, out[4];
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_layer_output_shape(&l, in, 4, out, err), 0, "%s", err);
    cr_expect_eq(out[0], 2);
    cr_expect_eq(out[1], 4 * 2 + 4 + 1);
    cr_expect_eq(out[2], 5 * 2 + 4 + 0);
    cr_expect_eq(out[3], 8);
    dcv_layer_release(&l);
}

/* Keras 2 serializes initializers as {"class_name", "config"} without module. */
Test(layer, keras2_initializer_dicts)
{
    struct dcv_layer l;
    must_parse("Conv1DTranspose",
               "{\"filters\": 2, \"kernel_size\": [3], \"kernel_initializer\": "
               "{\"class_name\": \"RandomNormal\", \"config\": {\"mean\": 0.5, \"stddev\": 2.0, "
               "\"seed\": 7}}, \"bias_initializer\": {\"class_name\": \"Constant\", "
               "\"config\": {\"value\": 0.25}}}",
               &l);
    cr_expect_eq(l.kernel_init.kind, DCV_INIT_RANDOM_NORMAL);
    cr_expect_float_eq(l.kernel_init.mean, 0.5, 1e-12);
    cr_expect_float_eq(l.kernel_init.stddev, 2.0, 1e-12);
    cr_expect_eq(l.kernel_init.seed, 7);
    cr_expect_eq(l.bias_init.kind, DCV_INIT_CONSTANT);
    cr_expect_float_eq(l.bias_init.value, 0.25, 1e-12);
    dcv_layer_release(&l);
}

/* What R's layer_conv_1d_transpose(filters = 4, kernel_size = 3,
 * input_shape = c(10, 2), batch_size = 8, name = "up") puts in the config. */
Test(layer, r_keras_input_shape_and_batch_size)
{
    struct dcv_layer l;
    must_parse("layer_conv_1d_transpose",
               "{\"filters\": 4, \"kernel_size\": 3, \"input_shape\": [10, 2], "
               "\"batch_size\": 8, \"name\": \"up\", \"trainable\": true}",
               &l);
    cr_expect_str_eq(l.class_name, "Conv1DTranspose");
    cr_expect_str_eq(l.name, "up");
    cr_expect(l.has_input_shape);
    cr_expect_eq(l.input_shape[0], 8);
    cr_expect_eq(l.input_shape[1], 10);
    cr_expect_eq(l.input_shape[2], 2);
    cr_expect_eq(l.conv.in_channels, 2);
    expect_ints(dcv_json_get(l.config, "batch_input_shape"), (int64_t[]){ 8, 10, 2 }, 3,
                "batch_input_shape");
    int64_t in[3], out[3];
    dcv_layer_signature(&l, in, out);
    cr_expect_eq(in[0], 8);
    cr_expect_eq(out[0], 8);
    cr_expect_eq(out[1], 12);  /* valid, s 1: 10 + 2 */
    cr_expect_eq(out[2], 4);
    dcv_layer_release(&l);
}

Test(layer, r_keras_batch_input_shape_with_nulls)
{
    struct dcv_layer l;
    must_parse("Conv2DTranspose",
               "{\"filters\": 5, \"kernel_size\": [3, 3], \"strides\": 2, \"padding\": "
               "\"same\", \"batch_input_shape\": [null, null, null, 3], \"weights\": null}",
               &l);
    cr_expect(l.has_input_shape);
    for (int i = 0; i < 3; i++) cr_expect_eq(l.input_shape[i], -1);
    cr_expect_eq(l.input_shape[3], 3);
    cr_expect_eq(l.conv.in_channels, 3);
    cr_expect_null(l.weights);
    const struct dcv_json *bis = dcv_json_get(l.config, "batch_input_shape");
    cr_assert_eq(dcv_json_size(bis), 4);
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(dcv_json_type(dcv_json_at(bis, i)), DCV_JSON_NULL);
    int64_t in[4], out[4];
    dcv_layer_signature(&l, in, out);
    cr_expect_eq(in[3], 3);
    cr_expect_eq(out[1], -1);
    cr_expect_eq(out[2], -1);
    cr_expect_eq(out[3], 5);
    dcv_layer_release(&l);

    /* batch_input_shape wins over input_shape; -1 also means unknown */
    must_parse("Conv2DTranspose",
               "{\"filters\": 5, \"kernel_size\": 3, \"batch_input_shape\": [4, -1, 7, 2], "
               "\"input_shape\": [9, 9, 9]}",
               &l);
    cr_expect_eq(l.input_shape[0], 4);
    cr_expect_eq(l.input_shape[1], -1);
    cr_expect_eq(l.input_shape[2], 7);
    cr_expect_eq(l.conv.in_channels, 2);
    dcv_layer_release(&l);
}

Test(layer, r_keras_inline_weights_are_kept)
{
    struct dcv_layer l;
    must_parse("Conv1DTranspose",
               "{\"filters\": 1, \"kernel_size\": 1, \"weights\": [[[[2.5]]], [0.5]]}", &l);
    cr_assert_not_null(l.weights);
    cr_expect_eq(dcv_json_type(l.weights), DCV_JSON_ARRAY);
    cr_expect_eq(dcv_json_size(l.weights), 2);
    cr_expect(!str_array_has(meta(&l, "ignored"), "weights"));
    dcv_layer_release(&l);
}

Test(layer, class_name_aliases)
{
    static const struct { const char *name; int rank; } t[] = {
        { "Conv1DTranspose", 1 }, { "Conv3DTranspose", 3 }, { "conv2dtranspose", 2 },
        { "Deconvolution2D", 2 }, { "Deconv3D", 3 }, { "Convolution1DTranspose", 1 },
        { "conv_2d_transpose", 2 }, { "layer_conv_3d_transpose", 3 },
        { "CONV2D_TRANSPOSE", 2 },
    };
    char buf[64];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct dcv_layer l;
        must_parse(t[i].name, "{\"filters\": 2, \"kernel_size\": 1}", &l);
        snprintf(buf, sizeof buf, "Conv%dDTranspose", t[i].rank);
        cr_expect_eq(l.conv.rank, t[i].rank, "%s", t[i].name);
        cr_expect_str_eq(l.class_name, buf, "%s", t[i].name);
        cr_expect_str_eq(l.name, buf, "default name is the class name");
        dcv_layer_release(&l);
    }
    /* class_name taken from the config when not given */
    struct dcv_layer l;
    must_parse(NULL, "{\"class_name\": \"Conv3DTranspose\", \"filters\": 2, "
               "\"kernel_size\": [1, 2, 3]}", &l);
    cr_expect_eq(l.conv.rank, 3);
    cr_expect_eq(l.conv.kernel[2], 3);
    dcv_layer_release(&l);
}

Test(layer, kernel_size_int_vs_list)
{
    struct dcv_layer a, b;
    must_parse("Conv3DTranspose", "{\"filters\": 2, \"kernel_size\": 3, \"strides\": 2}", &a);
    must_parse("Conv3DTranspose", "{\"filters\": 2, \"kernel_size\": [3, 3, 3], "
               "\"strides\": [2, 2, 2], \"dilation_rate\": 1}", &b);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(a.conv.kernel[i], 3);
        cr_expect_eq(b.conv.kernel[i], 3);
        cr_expect_eq(a.conv.strides[i], 2);
        cr_expect_eq(b.conv.strides[i], 2);
        cr_expect_eq(a.conv.dilation[i], 1);
    }
    dcv_layer_release(&a);
    dcv_layer_release(&b);
    must_parse("Conv2DTranspose", "{\"filters\": 2, \"kernel_size\": [1, 5], \"strides\": "
               "[3, 1]}", &a);
    cr_expect_eq(a.conv.kernel[0], 1);
    cr_expect_eq(a.conv.kernel[1], 5);
    cr_expect_eq(a.conv.strides[0], 3);
    cr_expect_eq(a.conv.strides[1], 1);
    /* defaults: strides 1, dilation 1, padding valid, bias on, linear */
    cr_expect_eq(a.conv.dilation[0], 1);
    cr_expect_eq(a.conv.padding, DCV_PADDING_VALID);
    cr_expect(a.conv.use_bias);
    cr_expect_eq(a.conv.act.kind, DCV_ACT_LINEAR);
    cr_expect_str_eq(a.kernel_init.name, "glorot_uniform");
    cr_expect_eq(a.bias_init.kind, DCV_INIT_ZEROS);
    dcv_layer_release(&a);
}

Test(layer, padding_case_insensitive)
{
    struct dcv_layer l;
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 2, \"padding\": \"SAME\"}",
               &l);
    cr_expect_eq(l.conv.padding, DCV_PADDING_SAME);
    cr_expect_str_eq(cfg_str(&l, "padding"), "same");
    dcv_layer_release(&l);
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 2, \"padding\": \"Valid\"}",
               &l);
    cr_expect_eq(l.conv.padding, DCV_PADDING_VALID);
    cr_expect_str_eq(cfg_str(&l, "padding"), "valid");
    dcv_layer_release(&l);
}

Test(layer, channels_first)
{
    struct dcv_layer l;
    must_parse("Conv2DTranspose",
               "{\"filters\": 6, \"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\", "
               "\"data_format\": \"channels_first\", \"batch_input_shape\": [null, 3, 8, 9]}",
               &l);
    cr_expect(l.conv.channels_first);
    cr_expect_eq(l.conv.in_channels, 3);
    cr_expect_str_eq(dcv_layer_layout(&l), "(batch, channels, height, width)");
    cr_expect_str_eq(cfg_str(&l, "data_format"), "channels_first");
    int64_t in[4] = { 2, 3, 8, 9 }, out[4];
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_layer_output_shape(&l, in, 4, out, err), 0, "%s", err);
    cr_expect_eq(out[0], 2);
    cr_expect_eq(out[1], 6);
    cr_expect_eq(out[2], 16);
    cr_expect_eq(out[3], 18);
    /* channel count is checked on axis 1 */
    int64_t bad[4] = { 2, 8, 8, 3 };
    cr_expect_eq(dcv_layer_output_shape(&l, bad, 4, out, err), DCV_ESHAPE);
    cr_expect(strstr(err, "8 channels") && strstr(err, "expects 3"), "%s", err);
    dcv_layer_release(&l);
}

Test(layer, layouts)
{
    static const char *const want[2][3] = {
        { "(batch, width, channels)", "(batch, height, width, channels)",
          "(batch, depth, height, width, channels)" },
        { "(batch, channels, width)", "(batch, channels, height, width)",
          "(batch, channels, depth, height, width)" },
    };
    for (int cf = 0; cf < 2; cf++)
        for (int r = 1; r <= 3; r++) {
            char cls[32], json[160];
            snprintf(cls, sizeof cls, "Conv%dDTranspose", r);
            snprintf(json, sizeof json, "{\"filters\": 1, \"kernel_size\": 1, "
                     "\"data_format\": \"%s\"}", cf ? "channels_first" : "channels_last");
            struct dcv_layer l;
            must_parse(cls, json, &l);
            cr_expect_str_eq(dcv_layer_layout(&l), want[cf][r - 1]);
            dcv_layer_release(&l);
        }
}

/* ---- validation errors --------------------------------------------------- */

Test(layer, padding_errors)
{
    expect_fail("Conv1DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"padding\": \"causal\"}",
                DCV_EINVAL, "padding", "causal", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"padding\": \"full\"}",
                DCV_EINVAL, "padding", "'full'", "valid", "same", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"padding\": 1}",
                DCV_EINVAL, "padding", "number", NULL);
}

Test(layer, output_padding_must_be_below_strides)
{
    expect_fail("Conv2DTranspose",
                "{\"filters\": 1, \"kernel_size\": 3, \"strides\": [2, 3], "
                "\"output_padding\": [1, 3]}",
                DCV_EINVAL, "output_padding[1]=3", "strides[1]=3", NULL);
    expect_fail("Conv2DTranspose",
                "{\"filters\": 1, \"kernel_size\": 3, \"strides\": [2, 3], "
                "\"output_padding\": [2, 0]}",
                DCV_EINVAL, "output_padding[0]=2", "strides[0]=2", NULL);
    /* default strides 1: any output_padding > 0 is too big */
    expect_fail("Conv1DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"output_padding\": 1}",
                DCV_EINVAL, "output_padding", "strides", NULL);
    expect_fail("Conv3DTranspose",
                "{\"filters\": 1, \"kernel_size\": 3, \"strides\": 2, "
                "\"output_padding\": [0, 0, 5]}",
                DCV_EINVAL, "output_padding[2]=5", NULL);
    expect_fail("Conv2DTranspose",
                "{\"filters\": 1, \"kernel_size\": 3, \"strides\": 2, \"output_padding\": -1}",
                DCV_EINVAL, "output_padding", "-1", NULL);
    expect_fail("Conv2DTranspose",
                "{\"filters\": 1, \"kernel_size\": 3, \"strides\": 2, "
                "\"output_padding\": [1]}",
                DCV_EINVAL, "output_padding", "length 1", NULL);
    /* op = s-1 in every dim is fine */
    struct dcv_layer l;
    must_parse("Conv3DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"strides\": [2, 3, 4], "
               "\"output_padding\": [1, 2, 3]}", &l);
    cr_expect_eq(l.output_padding[2], 3);
    dcv_layer_release(&l);
}

Test(layer, strides_with_dilation)
{
    expect_fail("Conv2DTranspose",
                "{\"filters\": 1, \"kernel_size\": 3, \"strides\": [2, 1], "
                "\"dilation_rate\": [1, 2]}",
                DCV_EINVAL, "strides=2", "dilation_rate=2", NULL);
    expect_fail("Conv1DTranspose",
                "{\"filters\": 1, \"kernel_size\": 3, \"strides\": 3, \"dilation_rate\": 4}",
                DCV_EINVAL, "strides", "dilation_rate", "3", "4", NULL);
    struct dcv_layer l;
    must_parse("Conv1DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dilation_rate\": 4}",
               &l);
    cr_expect_eq(l.conv.dilation[0], 4);
    dcv_layer_release(&l);
}

Test(layer, filters_errors)
{
    expect_fail("Conv2DTranspose", "{\"filters\": 0, \"kernel_size\": 3}", DCV_EINVAL,
                "filters", "0", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": -4, \"kernel_size\": 3}", DCV_EINVAL,
                "filters", "-4", NULL);
    expect_fail("Conv2DTranspose", "{\"kernel_size\": 3}", DCV_EINVAL, "filters",
                "required", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 2.5, \"kernel_size\": 3}", DCV_EINVAL,
                "filters", "2.5", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": \"8\", \"kernel_size\": 3}", DCV_EINVAL,
                "filters", "string", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": null, \"kernel_size\": 3}", DCV_EINVAL,
                "filters", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1e12, \"kernel_size\": 3}", DCV_EINVAL,
                "filters", NULL);
}

Test(layer, tuple_errors)
{
    expect_fail("Conv2DTranspose", "{\"filters\": 1}", DCV_EINVAL, "kernel_size", "required",
                NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 0}", DCV_EINVAL,
                "kernel_size", "got 0", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": [3, -1]}", DCV_EINVAL,
                "kernel_size", "-1", "dim 1", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": [3]}", DCV_EINVAL,
                "kernel_size", "list of 2", "length 1", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": [3, 3, 3]}", DCV_EINVAL,
                "kernel_size", "length 3", NULL);
    expect_fail("Conv1DTranspose", "{\"filters\": 1, \"kernel_size\": [2.5]}", DCV_EINVAL,
                "kernel_size[0]", NULL);
    expect_fail("Conv1DTranspose", "{\"filters\": 1, \"kernel_size\": \"3\"}", DCV_EINVAL,
                "kernel_size", "string", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"strides\": 0}",
                DCV_EINVAL, "strides", "got 0", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"strides\": [1, -2]}",
                DCV_EINVAL, "strides", "-2", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"strides\": [1, 1, 1]}",
                DCV_EINVAL, "strides", "length 3", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dilation_rate\": 0}",
                DCV_EINVAL, "dilation_rate", "got 0", NULL);
    expect_fail("Conv3DTranspose", "{\"filters\": 1, \"kernel_size\": 3, "
                "\"dilation_rate\": [1, 1]}", DCV_EINVAL, "dilation_rate", "length 2", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 5000}", DCV_EINVAL,
                "kernel_size", "5000", NULL);
}

Test(layer, class_name_errors)
{
    expect_fail("Conv2D", "{\"filters\": 1, \"kernel_size\": 3}", DCV_EUNSUPP, "Conv2D",
                "Conv2DTranspose", NULL);
    expect_fail("Dense", "{\"units\": 3}", DCV_EUNSUPP, "Dense", NULL);
    expect_fail(NULL, "{\"filters\": 1, \"kernel_size\": 3}", DCV_EINVAL, "class_name", NULL);
    struct dcv_layer l;
    char err[DCV_ERRLEN];
    cr_expect_eq(parse_layer("Conv2DTranspose", "[1, 2]", &l, err), DCV_EINVAL);
    cr_expect(strstr(err, "object"), "%s", err);
}

Test(layer, activation_errors)
{
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"activation\": "
                "\"frobnicate\"}", DCV_EINVAL, "frobnicate", "relu", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"activation\": 3}",
                DCV_EINVAL, "activation", NULL);
}

Test(layer, activation_forms_in_layer)
{
    struct dcv_layer l;
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"activation\": "
               "{\"module\": \"keras.activations\", \"class_name\": \"function\", "
               "\"config\": \"sigmoid\", \"registered_name\": \"sigmoid\"}}", &l);
    cr_expect_eq(l.conv.act.kind, DCV_ACT_SIGMOID);
    cr_expect_str_eq(cfg_str(&l, "activation"), "sigmoid");
    dcv_layer_release(&l);
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"activation\": null}",
               &l);
    cr_expect_eq(l.conv.act.kind, DCV_ACT_LINEAR);
    cr_expect_str_eq(cfg_str(&l, "activation"), "linear");
    dcv_layer_release(&l);
}

Test(layer, dtype)
{
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dtype\": \"float16\"}",
                DCV_EUNSUPP, "float16", "float32", "bfloat16", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dtype\": "
                "\"mixed_float16\"}", DCV_EUNSUPP, "mixed_float16", "supported", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dtype\": "
                "{\"module\": \"keras\", \"class_name\": \"DTypePolicy\", \"config\": "
                "{\"name\": \"float64\"}, \"registered_name\": null}}", DCV_EUNSUPP, "float64",
                NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dtype\": 32}",
                DCV_EUNSUPP, "number", NULL);

    struct dcv_layer l;
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dtype\": "
               "\"mixed_bfloat16\"}", &l);
    cr_expect_eq(l.conv.dtype, DCV_DTYPE_BFLOAT16);
    cr_expect_str_eq(cfg_str(&l, "dtype"), "bfloat16");
    dcv_layer_release(&l);
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dtype\": "
               "{\"module\": \"keras\", \"class_name\": \"DTypePolicy\", \"config\": "
               "{\"name\": \"mixed_bfloat16\"}, \"registered_name\": null}}", &l);
    cr_expect_eq(l.conv.dtype, DCV_DTYPE_BFLOAT16);
    dcv_layer_release(&l);
    /* Keras 2 mixed-precision Policy dict */
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dtype\": "
               "{\"class_name\": \"Policy\", \"config\": {\"name\": \"bfloat16\"}}}", &l);
    cr_expect_eq(l.conv.dtype, DCV_DTYPE_BFLOAT16);
    dcv_layer_release(&l);
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"dtype\": null}", &l);
    cr_expect_eq(l.conv.dtype, DCV_DTYPE_FLOAT32);
    dcv_layer_release(&l);
}

Test(layer, other_value_errors)
{
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"use_bias\": 1}",
                DCV_EINVAL, "use_bias", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"trainable\": "
                "\"yes\"}", DCV_EINVAL, "trainable", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"data_format\": "
                "\"NHWC\"}", DCV_EINVAL, "data_format", "NHWC", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, "
                "\"kernel_initializer\": \"glorot_sideways\"}", DCV_EINVAL,
                "kernel_initializer", "glorot_sideways", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, "
                "\"bias_initializer\": 5}", DCV_EINVAL, "bias_initializer", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, "
                "\"input_shape\": [8, 8]}", DCV_EINVAL, "input_shape", "3", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, "
                "\"batch_input_shape\": [null, 8, 0, 3]}", DCV_EINVAL,
                "batch_input_shape[2]", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, "
                "\"batch_input_shape\": [null, 8, -2, 3]}", DCV_EINVAL,
                "batch_input_shape[2]", NULL);
    expect_fail("Conv1DTranspose", "{\"filters\": 1, \"kernel_size\": 3, "
                "\"input_shape\": [8, 2], \"batch_size\": 0}", DCV_EINVAL, "batch_size", NULL);
    expect_fail("Conv1DTranspose", "{\"filters\": 1, \"kernel_size\": 3, "
                "\"input_shape\": [8, 2000000]}", DCV_EINVAL, "2000000", "channels", NULL);
    expect_fail("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 3, \"data_format\": "
                "\"channels_first\", \"batch_input_shape\": [1, 1048577, 4, 4]}", DCV_EINVAL,
                "1048577", NULL);
}

Test(layer, inactive_and_ignored)
{
    struct dcv_layer l;
    must_parse("Conv2DTranspose",
               "{\"filters\": 2, \"kernel_size\": 3, \"trainable\": false, "
               "\"kernel_regularizer\": {\"module\": \"keras.regularizers\", \"class_name\": "
               "\"L2\", \"config\": {\"l2\": 0.01}, \"registered_name\": null}, "
               "\"kernel_constraint\": {\"module\": \"keras.constraints\", \"class_name\": "
               "\"MaxNorm\", \"config\": {\"max_value\": 2, \"axis\": 0}, "
               "\"registered_name\": null}, \"bias_regularizer\": null, "
               "\"frobnication_level\": 11, \"build_config\": {\"input_shape\": null}}",
               &l);
    const struct dcv_json *inactive = meta(&l, "inactive"), *ignored = meta(&l, "ignored");
    cr_expect(str_array_has(inactive, "kernel_regularizer"));
    cr_expect(str_array_has(inactive, "kernel_constraint"));
    cr_expect(str_array_has(inactive, "trainable"));
    cr_expect(!str_array_has(inactive, "bias_regularizer"), "null is not an active setting");
    cr_expect(!str_array_has(inactive, "bias_constraint"));
    cr_expect(str_array_has(ignored, "frobnication_level"));
    cr_expect(str_array_has(ignored, "build_config"));
    cr_expect(!str_array_has(ignored, "filters"));
    cr_expect(!str_array_has(ignored, "kernel_regularizer"));
    cr_expect(!str_array_has(ignored, "trainable"));
    /* the inactive values are kept in the normalized config */
    const struct dcv_json *reg = dcv_json_get(l.config, "kernel_regularizer");
    cr_expect_str_eq(dcv_json_string(dcv_json_get(reg, "class_name")), "L2");
    cr_expect_eq(dcv_json_type(dcv_json_get(l.config, "trainable")), DCV_JSON_BOOL);
    cr_expect(!dcv_json_true(dcv_json_get(l.config, "trainable")));
    cr_expect_eq(dcv_json_type(dcv_json_get(l.config, "bias_regularizer")), DCV_JSON_NULL);
    dcv_layer_release(&l);
}

Test(layer, normalized_config_serializes)
{
    struct dcv_layer l;
    must_parse("Conv2DTranspose", KERAS2, &l);
    char *s = dcv_json_print(l.config);
    cr_assert_not_null(s);
    struct dcv_json *j = pj(s);
    /* the normalized config is itself a valid config that parses the same */
    struct dcv_layer l2;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_layer_parse("Conv2DTranspose", j, &l2, err), 0, "%s: %s", err, s);
    cr_expect_eq(l2.conv.filters, l.conv.filters);
    cr_expect_eq(l2.conv.kernel[0], l.conv.kernel[0]);
    cr_expect_eq(l2.conv.padding, l.conv.padding);
    cr_expect_eq(l2.conv.use_bias, l.conv.use_bias);
    cr_expect_eq(l2.output_padding[0], l.output_padding[0]);
    cr_expect_eq(l2.kernel_init.kind, l.kernel_init.kind);
    cr_expect_float_eq(l2.kernel_init.scale, l.kernel_init.scale, 1e-12);
    cr_expect_eq(l2.kernel_init.mode, l.kernel_init.mode);
    cr_expect_eq(l2.kernel_init.distribution, l.kernel_init.distribution);
    free(s);
    dcv_json_free(j);
    dcv_layer_release(&l2);
    dcv_layer_release(&l);
}

/* ---- output shapes ------------------------------------------------------- */

Test(layer, output_shape_basic_and_unknown_dims)
{
    struct dcv_layer l;
    char err[DCV_ERRLEN] = "";
    must_parse("Conv2DTranspose", "{\"filters\": 7, \"kernel_size\": 3, \"strides\": 2, "
               "\"padding\": \"same\"}", &l);
    int64_t in[4] = { 2, 5, 7, 3 }, out[4];
    cr_assert_eq(dcv_layer_output_shape(&l, in, 4, out, err), 0, "%s", err);
    cr_expect_eq(out[0], 2);
    cr_expect_eq(out[1], 10);
    cr_expect_eq(out[2], 14);
    cr_expect_eq(out[3], 7);
    int64_t unk[4] = { -1, -1, 7, -1 };
    cr_assert_eq(dcv_layer_output_shape(&l, unk, 4, out, err), 0, "%s", err);
    cr_expect_eq(out[0], -1);
    cr_expect_eq(out[1], -1);
    cr_expect_eq(out[2], 14);
    cr_expect_eq(out[3], 7);
    dcv_layer_release(&l);

    must_parse("Conv1DTranspose", "{\"filters\": 2, \"kernel_size\": 5, \"strides\": 3}", &l);
    int64_t in1[3] = { 1, 7, 4 }, out1[3];
    cr_assert_eq(dcv_layer_output_shape(&l, in1, 3, out1, err), 0, "%s", err);
    cr_expect_eq(out1[1], 23);
    dcv_layer_release(&l);

    must_parse("Conv3DTranspose", "{\"filters\": 2, \"kernel_size\": [1, 2, 3], "
               "\"strides\": [3, 2, 1], \"padding\": \"valid\", \"output_padding\": [2, 1, 0]}",
               &l);
    int64_t in3[5] = { 1, 4, 5, 6, 1 }, out3[5];
    cr_assert_eq(dcv_layer_output_shape(&l, in3, 5, out3, err), 0, "%s", err);
    cr_expect_eq(out3[1], 3 * 3 + 1 + 2);
    cr_expect_eq(out3[2], 4 * 2 + 2 + 1);
    cr_expect_eq(out3[3], 5 + 3);
    cr_expect_eq(out3[4], 2);
    dcv_layer_release(&l);
}

Test(layer, output_shape_errors)
{
    struct dcv_layer l;
    char err[DCV_ERRLEN] = "";
    must_parse("Conv2DTranspose", "{\"filters\": 7, \"kernel_size\": 3, "
               "\"batch_input_shape\": [null, null, null, 3]}", &l);
    int64_t out[8];

    int64_t r3[3] = { 1, 5, 3 };
    cr_expect_eq(dcv_layer_output_shape(&l, r3, 3, out, err), DCV_ESHAPE);
    cr_expect(strstr(err, "(batch, height, width, channels)") && strstr(err, "rank 3"),
              "%s", err);
    int64_t r5[5] = { 1, 5, 5, 5, 3 };
    cr_expect_eq(dcv_layer_output_shape(&l, r5, 5, out, err), DCV_ESHAPE);
    cr_expect(strstr(err, "rank-4"), "%s", err);

    int64_t ch[4] = { 1, 5, 5, 4 };
    cr_expect_eq(dcv_layer_output_shape(&l, ch, 4, out, err), DCV_ESHAPE);
    cr_expect(strstr(err, "4 channels") && strstr(err, "expects 3"), "%s", err);

    int64_t z[4] = { 1, 0, 5, 3 };
    cr_expect_eq(dcv_layer_output_shape(&l, z, 4, out, err), DCV_ESHAPE);
    cr_expect(strstr(err, "dim 1") && strstr(err, "got 0"), "%s", err);
    int64_t m2[4] = { -2, 5, 5, 3 };
    cr_expect_eq(dcv_layer_output_shape(&l, m2, 4, out, err), DCV_ESHAPE);
    cr_expect(strstr(err, "dim 0") && strstr(err, "-2"), "%s", err);
    int64_t zb[4] = { 0, 5, 5, 3 };
    cr_expect_eq(dcv_layer_output_shape(&l, zb, 4, out, err), DCV_ESHAPE);
    int64_t huge[4] = { 1, INT64_C(1) << 40, 5, 3 };
    cr_expect_eq(dcv_layer_output_shape(&l, huge, 4, out, err), DCV_ESHAPE);
    dcv_layer_release(&l);

    /* channels_first: the message names that layout */
    must_parse("Conv3DTranspose", "{\"filters\": 1, \"kernel_size\": 1, \"data_format\": "
               "\"channels_first\"}", &l);
    cr_expect_eq(dcv_layer_output_shape(&l, r3, 3, out, err), DCV_ESHAPE);
    cr_expect(strstr(err, "(batch, channels, depth, height, width)"), "%s", err);
    dcv_layer_release(&l);
}

/* k=4, s=1, same, output_padding 0: Keras computes n-1, and TensorFlow
 * refuses because a SAME convolution of n-1 gives n-1, not n. */
Test(layer, same_even_kernel_output_padding_zero_is_refused)
{
    struct dcv_layer l;
    char err[DCV_ERRLEN] = "";
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 4, \"strides\": 1, "
               "\"padding\": \"same\", \"output_padding\": 0}", &l);
    int64_t in[4] = { 1, 6, 6, 2 }, out[4];
    cr_expect_eq(dcv_layer_output_shape(&l, in, 4, out, err), DCV_ESHAPE);
    cr_expect(strstr(err, "SAME") && strstr(err, "5") && strstr(err, "6"), "%s", err);
    /* unknown spatial dims: nothing to check yet */
    int64_t unk[4] = { 1, -1, -1, 2 };
    cr_expect_eq(dcv_layer_output_shape(&l, unk, 4, out, err), 0, "%s", err);
    dcv_layer_release(&l);

    /* the same layer without output_padding is fine: out = n */
    must_parse("Conv2DTranspose", "{\"filters\": 1, \"kernel_size\": 4, \"strides\": 1, "
               "\"padding\": \"same\"}", &l);
    cr_expect_eq(dcv_layer_output_shape(&l, in, 4, out, err), 0, "%s", err);
    cr_expect_eq(out[1], 6);
    dcv_layer_release(&l);

    /* k=4, s=2, same, op=0: out 2n-2, ceil((2n-2)/2) = n-1 → refused;
     * op=1: 2n-1 → accepted */
    must_parse("Conv1DTranspose", "{\"filters\": 1, \"kernel_size\": 4, \"strides\": 2, "
               "\"padding\": \"same\", \"output_padding\": 0}", &l);
    int64_t in1[3] = { 1, 5, 1 }, out1[3];
    cr_expect_eq(dcv_layer_output_shape(&l, in1, 3, out1, err), DCV_ESHAPE);
    dcv_layer_release(&l);
    must_parse("Conv1DTranspose", "{\"filters\": 1, \"kernel_size\": 4, \"strides\": 2, "
               "\"padding\": \"same\", \"output_padding\": 1}", &l);
    cr_expect_eq(dcv_layer_output_shape(&l, in1, 3, out1, err), 0, "%s", err);
    cr_expect_eq(out1[1], 9);
    dcv_layer_release(&l);
}

Test(layer, set_in_channels)
{
    struct dcv_layer l;
    char err[DCV_ERRLEN] = "";
    must_parse("Conv2DTranspose", "{\"filters\": 2, \"kernel_size\": 3}", &l);
    cr_expect_eq(dcv_layer_set_in_channels(&l, 0, err), DCV_EINVAL);
    cr_expect_eq(dcv_layer_set_in_channels(&l, DCV_MAX_CHANNELS + 1, err), DCV_EINVAL);
    cr_assert_eq(dcv_layer_set_in_channels(&l, 5, err), 0, "%s", err);
    cr_expect_eq(l.conv.in_channels, 5);
    int64_t in[4], out[4];
    dcv_layer_signature(&l, in, out);
    cr_expect_eq(in[3], 5);
    cr_expect_eq(in[1], -1);
    cr_expect_eq(out[3], 2);
    dcv_layer_release(&l);

    must_parse("Conv2DTranspose", "{\"filters\": 2, \"kernel_size\": 3, "
               "\"input_shape\": [8, 8, 3]}", &l);
    cr_expect_eq(dcv_layer_set_in_channels(&l, 4, err), DCV_ESHAPE);
    cr_expect(strstr(err, "4") && strstr(err, "3"), "%s", err);
    cr_expect_eq(dcv_layer_set_in_channels(&l, 3, err), 0);
    dcv_layer_signature(&l, in, out);
    cr_expect_eq(in[1], 8);
    cr_expect_eq(out[1], 10);
    cr_expect_eq(out[0], -1);
    dcv_layer_release(&l);
}

Test(layer, trainable_true_is_not_reported)
{
    struct dcv_layer l;
    must_parse("Conv2DTranspose", "{\"filters\": 2, \"kernel_size\": 3, \"trainable\": true}", &l);
    cr_expect(!str_array_has(meta(&l, "inactive"), "trainable"),
              "trainable: true is the default and does nothing: not worth reporting");
    cr_expect(dcv_json_true(dcv_json_get(l.config, "trainable")));
    dcv_layer_release(&l);
}
