/* test_init.c — Keras initializer parsing, statistics, determinism. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconvd/error.h"
#include "deconvd/init.h"
#include "deconvd/json.h"

#define WHAT "kernel_initializer"
#define TRUNC_STD 0.87962566103423978

static int parse_text(const char *text, struct dcv_init *out, char *err)
{
    char perr[DCV_ERRLEN];
    struct dcv_json *j = dcv_json_parse(text, strlen(text), perr);
    cr_assert_not_null(j, "bad test JSON %s: %s", text, perr);
    int rc = dcv_init_parse(j, "glorot_uniform", WHAT, out, err);
    dcv_json_free(j);
    return rc;
}

static struct dcv_init parse_ok(const char *text)
{
    struct dcv_init in;
    char err[DCV_ERRLEN] = "";
    int rc = parse_text(text, &in, err);
    cr_assert_eq(rc, 0, "parse %s: rc %d: %s", text, rc, err);
    return in;
}

static void parse_fails(const char *text, const char *needle)
{
    struct dcv_init in;
    char err[DCV_ERRLEN] = "";
    int rc = parse_text(text, &in, err);
    cr_assert_eq(rc, DCV_EINVAL, "%s: expected EINVAL, got %d", text, rc);
    cr_assert(strstr(err, WHAT), "message lacks the label: %s", err);
    cr_assert(strstr(err, needle), "message lacks \"%s\": %s", needle, err);
}

static size_t count_of(const int64_t *shape, int ndim)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

static float *fill_ok(const struct dcv_init *in, const int64_t *shape, int ndim, uint64_t salt)
{
    size_t n = count_of(shape, ndim);
    float *v = malloc((n ? n : 1) * sizeof *v);
    cr_assert_not_null(v);
    char err[DCV_ERRLEN] = "";
    int rc = dcv_init_fill(in, shape, ndim, salt, v, err);
    cr_assert_eq(rc, 0, "fill %s: rc %d: %s", in->name, rc, err);
    return v;
}

struct stats {
    double mean, std, min, max;
};

static struct stats stats_of(const float *v, size_t n)
{
    struct stats s = { 0, 0, INFINITY, -INFINITY };
    for (size_t i = 0; i < n; i++) {
        s.mean += v[i];
        s.min = fmin(s.min, v[i]);
        s.max = fmax(s.max, v[i]);
    }
    s.mean /= (double)n;
    for (size_t i = 0; i < n; i++) s.std += (v[i] - s.mean) * (v[i] - s.mean);
    s.std = sqrt(s.std / (double)n);
    return s;
}

/* ---------------------------------------------------------------- names */

struct name_case {
    const char *spelling, *canonical;
    enum dcv_init_kind kind;
};

static const struct name_case names[] = {
    { "zeros", "zeros", DCV_INIT_ZEROS },
    { "Zeros", "zeros", DCV_INIT_ZEROS },
    { "zero", "zeros", DCV_INIT_ZEROS },
    { "ones", "ones", DCV_INIT_ONES },
    { "Ones", "ones", DCV_INIT_ONES },
    { "one", "ones", DCV_INIT_ONES },
    { "constant", "constant", DCV_INIT_CONSTANT },
    { "Constant", "constant", DCV_INIT_CONSTANT },
    { "random_normal", "random_normal", DCV_INIT_RANDOM_NORMAL },
    { "RandomNormal", "random_normal", DCV_INIT_RANDOM_NORMAL },
    { "normal", "random_normal", DCV_INIT_RANDOM_NORMAL },
    { "random_uniform", "random_uniform", DCV_INIT_RANDOM_UNIFORM },
    { "RandomUniform", "random_uniform", DCV_INIT_RANDOM_UNIFORM },
    { "uniform", "random_uniform", DCV_INIT_RANDOM_UNIFORM },
    { "truncated_normal", "truncated_normal", DCV_INIT_TRUNCATED_NORMAL },
    { "TruncatedNormal", "truncated_normal", DCV_INIT_TRUNCATED_NORMAL },
    { "variance_scaling", "variance_scaling", DCV_INIT_VARIANCE_SCALING },
    { "VarianceScaling", "variance_scaling", DCV_INIT_VARIANCE_SCALING },
    { "glorot_uniform", "glorot_uniform", DCV_INIT_VARIANCE_SCALING },
    { "GlorotUniform", "glorot_uniform", DCV_INIT_VARIANCE_SCALING },
    { "GLOROT_UNIFORM", "glorot_uniform", DCV_INIT_VARIANCE_SCALING },
    { "glorot_normal", "glorot_normal", DCV_INIT_VARIANCE_SCALING },
    { "GlorotNormal", "glorot_normal", DCV_INIT_VARIANCE_SCALING },
    { "he_normal", "he_normal", DCV_INIT_VARIANCE_SCALING },
    { "HeNormal", "he_normal", DCV_INIT_VARIANCE_SCALING },
    { "He_Normal", "he_normal", DCV_INIT_VARIANCE_SCALING },
    { "henormal", "he_normal", DCV_INIT_VARIANCE_SCALING },
    { "he_uniform", "he_uniform", DCV_INIT_VARIANCE_SCALING },
    { "HeUniform", "he_uniform", DCV_INIT_VARIANCE_SCALING },
    { "lecun_normal", "lecun_normal", DCV_INIT_VARIANCE_SCALING },
    { "LecunNormal", "lecun_normal", DCV_INIT_VARIANCE_SCALING },
    { "lecun_uniform", "lecun_uniform", DCV_INIT_VARIANCE_SCALING },
    { "LecunUniform", "lecun_uniform", DCV_INIT_VARIANCE_SCALING },
    { "orthogonal", "orthogonal", DCV_INIT_ORTHOGONAL },
    { "Orthogonal", "orthogonal", DCV_INIT_ORTHOGONAL },
    { "OrthogonalInitializer", "orthogonal", DCV_INIT_ORTHOGONAL },
    { "identity", "identity", DCV_INIT_IDENTITY },
    { "Identity", "identity", DCV_INIT_IDENTITY },
    { "IdentityInitializer", "identity", DCV_INIT_IDENTITY },
};
#define NNAMES (sizeof names / sizeof names[0])

static void check_name(const char *form, const struct name_case *nc)
{
    char text[512];
    snprintf(text, sizeof text, form, nc->spelling);
    struct dcv_init in = parse_ok(text);
    cr_assert_eq(in.kind, nc->kind, "%s: kind %d", text, (int)in.kind);
    cr_assert_str_eq(in.name, nc->canonical, "%s", text);
}

Test(init, names_as_strings)
{
    for (size_t i = 0; i < NNAMES; i++) check_name("\"%s\"", &names[i]);
}

Test(init, names_in_keras2_dicts)
{
    for (size_t i = 0; i < NNAMES; i++)
        check_name("{\"class_name\":\"%s\",\"config\":{}}", &names[i]);
    for (size_t i = 0; i < NNAMES; i++) check_name("{\"class_name\":\"%s\"}", &names[i]);
}

Test(init, names_in_keras3_dicts)
{
    for (size_t i = 0; i < NNAMES; i++)
        check_name("{\"module\":\"keras.initializers\",\"class_name\":\"%s\","
                   "\"config\":{\"seed\":null},\"registered_name\":null}", &names[i]);
}

Test(init, keras3_seed_is_read)
{
    struct dcv_init in = parse_ok("{\"module\":\"keras.initializers\",\"class_name\":\"HeNormal\","
                                  "\"config\":{\"seed\":1},\"registered_name\":null}");
    cr_assert_eq(in.seed, 1);
    in = parse_ok("{\"class_name\":\"Orthogonal\",\"config\":{\"gain\":1.0,\"seed\":42}}");
    cr_assert_eq(in.seed, 42);
    in = parse_ok("{\"class_name\":\"GlorotUniform\",\"config\":{\"seed\":{\"module\":\"keras.random\","
                  "\"class_name\":\"SeedGenerator\",\"config\":{\"seed\":9}}}}");
    cr_assert_eq(in.seed, 9);
    in = parse_ok("{\"class_name\":\"GlorotUniform\",\"config\":{\"seed\":null}}");
    cr_assert_eq(in.seed, 0);
}

struct vs_case {
    const char *name;
    double scale;
    enum dcv_fan_mode mode;
    enum dcv_distribution dist;
};

static const struct vs_case vs_presets[] = {
    { "glorot_uniform", 1, DCV_FAN_AVG, DCV_DIST_UNIFORM },
    { "glorot_normal", 1, DCV_FAN_AVG, DCV_DIST_TRUNCATED_NORMAL },
    { "he_normal", 2, DCV_FAN_IN, DCV_DIST_TRUNCATED_NORMAL },
    { "he_uniform", 2, DCV_FAN_IN, DCV_DIST_UNIFORM },
    { "lecun_normal", 1, DCV_FAN_IN, DCV_DIST_TRUNCATED_NORMAL },
    { "lecun_uniform", 1, DCV_FAN_IN, DCV_DIST_UNIFORM },
    { "variance_scaling", 1, DCV_FAN_IN, DCV_DIST_TRUNCATED_NORMAL },
};
#define NVS (sizeof vs_presets / sizeof vs_presets[0])

Test(init, preset_parameters)
{
    for (size_t i = 0; i < NVS; i++) {
        char text[64];
        snprintf(text, sizeof text, "\"%s\"", vs_presets[i].name);
        struct dcv_init in = parse_ok(text);
        cr_assert_eq(in.kind, DCV_INIT_VARIANCE_SCALING, "%s", text);
        cr_assert_eq(in.scale, vs_presets[i].scale, "%s", text);
        cr_assert_eq(in.mode, vs_presets[i].mode, "%s", text);
        cr_assert_eq(in.distribution, vs_presets[i].dist, "%s", text);
        cr_assert_eq(in.seed, 0, "%s", text);
    }
}

Test(init, keras_defaults)
{
    struct dcv_init in = parse_ok("\"random_normal\"");
    cr_assert_eq(in.mean, 0.0);
    cr_assert_eq(in.stddev, 0.05);
    in = parse_ok("\"truncated_normal\"");
    cr_assert_eq(in.stddev, 0.05);
    in = parse_ok("\"random_uniform\"");
    cr_assert_eq(in.minval, -0.05);
    cr_assert_eq(in.maxval, 0.05);
    in = parse_ok("\"constant\"");
    cr_assert_eq(in.value, 0.0);
    in = parse_ok("\"orthogonal\"");
    cr_assert_eq(in.gain, 1.0);
    in = parse_ok("\"identity\"");
    cr_assert_eq(in.gain, 1.0);
}

Test(init, null_means_default)
{
    struct dcv_init in;
    char err[DCV_ERRLEN] = "";
    cr_assert_eq(dcv_init_parse(NULL, "zeros", WHAT, &in, err), 0, "%s", err);
    cr_assert_eq(in.kind, DCV_INIT_ZEROS);
    cr_assert_str_eq(in.name, "zeros");
    in = parse_ok("null");   /* parse_text's default is glorot_uniform */
    cr_assert_str_eq(in.name, "glorot_uniform");
    cr_assert_eq(in.distribution, DCV_DIST_UNIFORM);
    in = parse_ok("{\"class_name\":\"RandomNormal\",\"config\":null}");
    cr_assert_eq(in.stddev, 0.05);
    cr_assert_eq(dcv_init_parse(NULL, NULL, WHAT, &in, err), DCV_EINVAL);
    cr_assert(strstr(err, WHAT), "%s", err);
}

Test(init, config_parameters)
{
    struct dcv_init in = parse_ok("{\"class_name\":\"RandomNormal\",\"config\":"
                                  "{\"mean\":1.5,\"stddev\":2,\"seed\":7,\"dtype\":\"float32\"}}");
    cr_assert_eq(in.mean, 1.5);
    cr_assert_eq(in.stddev, 2.0);
    cr_assert_eq(in.seed, 7);
    in = parse_ok("{\"class_name\":\"RandomUniform\",\"config\":{\"minval\":-1,\"maxval\":3}}");
    cr_assert_eq(in.minval, -1.0);
    cr_assert_eq(in.maxval, 3.0);
    in = parse_ok("{\"class_name\":\"Constant\",\"config\":{\"value\":-0.25}}");
    cr_assert_eq(in.value, -0.25);
    in = parse_ok("{\"class_name\":\"VarianceScaling\",\"config\":{\"scale\":2.0,"
                  "\"mode\":\"fan_out\",\"distribution\":\"untruncated_normal\",\"seed\":null}}");
    cr_assert_eq(in.scale, 2.0);
    cr_assert_eq(in.mode, DCV_FAN_OUT);
    cr_assert_eq(in.distribution, DCV_DIST_UNTRUNCATED_NORMAL);
    in = parse_ok("{\"class_name\":\"VarianceScaling\",\"config\":{\"mode\":\"fan_avg\","
                  "\"distribution\":\"normal\"}}");
    cr_assert_eq(in.mode, DCV_FAN_AVG);
    cr_assert_eq(in.distribution, DCV_DIST_TRUNCATED_NORMAL);
    in = parse_ok("{\"class_name\":\"VarianceScaling\",\"config\":{\"distribution\":\"uniform\"}}");
    cr_assert_eq(in.distribution, DCV_DIST_UNIFORM);
    cr_assert_eq(in.mode, DCV_FAN_IN);
    in = parse_ok("{\"class_name\":\"Orthogonal\",\"config\":{\"gain\":0.5}}");
    cr_assert_eq(in.gain, 0.5);
    in = parse_ok("{\"class_name\":\"Identity\",\"config\":{\"gain\":3}}");
    cr_assert_eq(in.gain, 3.0);
}

Test(init, presets_ignore_variance_keys)
{
    /* Keras presets take only a seed; stray keys must not alter them. */
    struct dcv_init in = parse_ok("{\"class_name\":\"HeUniform\",\"config\":"
                                  "{\"scale\":9,\"mode\":\"fan_out\",\"seed\":3}}");
    cr_assert_eq(in.scale, 2.0);
    cr_assert_eq(in.mode, DCV_FAN_IN);
    cr_assert_eq(in.seed, 3);
}

Test(init, bad_specs)
{
    parse_fails("\"glorot_unifrom\"", "glorot_unifrom");
    parse_fails("\"glorot_unifrom\"", "he_normal");   /* lists the supported names */
    parse_fails("{\"class_name\":\"Custom>MyInit\",\"config\":{}}", "Custom>MyInit");
    parse_fails("{\"config\":{}}", "class_name");
    parse_fails("{\"class_name\":\"Zeros\",\"config\":[]}", "config");
    parse_fails("42", "number");
    parse_fails("[\"zeros\"]", "array");
}

Test(init, bad_parameters)
{
    parse_fails("{\"class_name\":\"VarianceScaling\",\"config\":{\"mode\":\"fan_sum\"}}", "mode");
    parse_fails("{\"class_name\":\"VarianceScaling\",\"config\":{\"mode\":\"fan_sum\"}}", "fan_sum");
    parse_fails("{\"class_name\":\"VarianceScaling\",\"config\":{\"mode\":3}}", "mode");
    parse_fails("{\"class_name\":\"VarianceScaling\",\"config\":{\"distribution\":\"cauchy\"}}",
                "cauchy");
    parse_fails("{\"class_name\":\"VarianceScaling\",\"config\":{\"scale\":0}}", "scale");
    parse_fails("{\"class_name\":\"VarianceScaling\",\"config\":{\"scale\":-2}}", "-2");
    parse_fails("{\"class_name\":\"RandomNormal\",\"config\":{\"stddev\":-0.1}}", "stddev");
    parse_fails("{\"class_name\":\"RandomNormal\",\"config\":{\"stddev\":-0.1}}", "-0.1");
    parse_fails("{\"class_name\":\"TruncatedNormal\",\"config\":{\"stddev\":\"abc\"}}", "abc");
    parse_fails("{\"class_name\":\"RandomNormal\",\"config\":{\"mean\":true}}", "mean");
    parse_fails("{\"class_name\":\"RandomUniform\",\"config\":{\"minval\":1,\"maxval\":0}}",
                "minval");
    parse_fails("{\"class_name\":\"RandomUniform\",\"config\":{\"minval\":0.1}}", "maxval");
    parse_fails("{\"class_name\":\"Constant\",\"config\":{\"value\":1e300}}", "value");
    parse_fails("{\"class_name\":\"GlorotUniform\",\"config\":{\"seed\":1.5}}", "seed");
    parse_fails("{\"class_name\":\"GlorotUniform\",\"config\":{\"seed\":\"x\"}}", "seed");
}

Test(init, failed_parse_leaves_output_alone)
{
    struct dcv_init in;
    memset(&in, 0x5a, sizeof in);
    char err[DCV_ERRLEN];
    cr_assert_eq(parse_text("{\"class_name\":\"RandomNormal\",\"config\":{\"stddev\":-1}}",
                            &in, err), DCV_EINVAL);
    cr_assert_eq(((unsigned char *)&in)[0], 0x5a);
}

/* ------------------------------------------------------------ statistics */

static const int64_t kshape[] = { 4, 4, 64, 128 };
#define KFAN_IN (4.0 * 4 * 64)
#define KFAN_OUT (4.0 * 4 * 128)

static double fan_for(enum dcv_fan_mode m)
{
    return m == DCV_FAN_IN ? KFAN_IN : m == DCV_FAN_OUT ? KFAN_OUT : (KFAN_IN + KFAN_OUT) / 2;
}

static void check_vs(const struct dcv_init *in, double scale, enum dcv_fan_mode mode,
                     enum dcv_distribution dist)
{
    size_t n = count_of(kshape, 4);
    float *v = fill_ok(in, kshape, 4, 1);
    struct stats s = stats_of(v, n);
    double sd = sqrt(scale / fan_for(mode));
    cr_assert_lt(fabs(s.mean), 0.015 * sd, "%s: mean %g (sd %g)", in->name, s.mean, sd);
    cr_assert_lt(fabs(s.std - sd), 0.03 * sd, "%s: std %g, want %g", in->name, s.std, sd);
    double peak = fmax(-s.min, s.max);
    if (dist == DCV_DIST_UNIFORM) {
        double limit = sqrt(3 * scale / fan_for(mode));
        cr_assert(s.min >= -limit && s.max <= limit, "%s: [%g,%g] outside +-%g", in->name,
                  s.min, s.max, limit);
        cr_assert_gt(peak, 0.999 * limit, "%s: never approaches the limit", in->name);
    } else if (dist == DCV_DIST_TRUNCATED_NORMAL) {
        double cut = 2 * sd / TRUNC_STD;
        cr_assert_leq(peak, cut * (1 + 1e-6), "%s: %g beyond 2 sigma %g", in->name, peak, cut);
        cr_assert_gt(peak, 0.99 * cut, "%s: tails missing", in->name);
    } else {
        cr_assert_gt(peak, 3 * sd, "%s: untruncated draw has no tails", in->name);
    }
    free(v);
}

Test(init, variance_scaling_presets_statistics)
{
    for (size_t i = 0; i < NVS; i++) {
        char text[64];
        snprintf(text, sizeof text, "\"%s\"", vs_presets[i].name);
        struct dcv_init in = parse_ok(text);
        check_vs(&in, vs_presets[i].scale, vs_presets[i].mode, vs_presets[i].dist);
    }
}

Test(init, variance_scaling_modes_statistics)
{
    const char *dists[] = { "truncated_normal", "untruncated_normal", "uniform" };
    const char *modes[] = { "fan_in", "fan_out", "fan_avg" };
    for (int d = 0; d < 3; d++)
        for (int m = 0; m < 3; m++) {
            char text[200];
            snprintf(text, sizeof text, "{\"class_name\":\"VarianceScaling\",\"config\":"
                     "{\"scale\":3.0,\"mode\":\"%s\",\"distribution\":\"%s\"}}", modes[m], dists[d]);
            struct dcv_init in = parse_ok(text);
            check_vs(&in, 3.0, (enum dcv_fan_mode)m, (enum dcv_distribution)d);
        }
}

Test(init, random_normal_statistics)
{
    struct dcv_init in = parse_ok("{\"class_name\":\"RandomNormal\",\"config\":"
                                  "{\"mean\":0.5,\"stddev\":0.2,\"seed\":11}}");
    const int64_t shape[] = { 256, 512 };
    float *v = fill_ok(&in, shape, 2, 0);
    struct stats s = stats_of(v, 256 * 512);
    cr_assert_lt(fabs(s.mean - 0.5), 0.003, "mean %g", s.mean);
    cr_assert_lt(fabs(s.std - 0.2), 0.2 * 0.02, "std %g", s.std);
    cr_assert_gt(s.max, 0.5 + 3 * 0.2, "no tail: max %g", s.max);
    free(v);
}

Test(init, default_random_normal_statistics)
{
    struct dcv_init in = parse_ok("\"normal\"");
    const int64_t shape[] = { 100000 };
    float *v = fill_ok(&in, shape, 1, 0);
    struct stats s = stats_of(v, 100000);
    cr_assert_lt(fabs(s.mean), 0.001, "mean %g", s.mean);
    cr_assert_lt(fabs(s.std - 0.05), 0.05 * 0.02, "std %g", s.std);
    free(v);
}

Test(init, truncated_normal_statistics)
{
    struct dcv_init in = parse_ok("{\"class_name\":\"TruncatedNormal\",\"config\":"
                                  "{\"mean\":1.0,\"stddev\":0.5}}");
    const int64_t shape[] = { 64, 2048 };
    float *v = fill_ok(&in, shape, 2, 0);
    struct stats s = stats_of(v, 64 * 2048);
    cr_assert(s.min >= 0.0 && s.max <= 2.0, "outside mean+-2sd: [%g,%g]", s.min, s.max);
    cr_assert_lt(fabs(s.mean - 1.0), 0.005, "mean %g", s.mean);
    cr_assert_lt(fabs(s.std - 0.5 * TRUNC_STD), 0.5 * TRUNC_STD * 0.02, "std %g", s.std);
    free(v);
}

Test(init, random_uniform_statistics)
{
    struct dcv_init in = parse_ok("{\"class_name\":\"RandomUniform\",\"config\":"
                                  "{\"minval\":-0.1,\"maxval\":0.3}}");
    const int64_t shape[] = { 8, 8, 2048 };
    float *v = fill_ok(&in, shape, 3, 5);
    struct stats s = stats_of(v, 8 * 8 * 2048);
    cr_assert(s.min >= -0.1 && s.max <= 0.3, "outside [-0.1,0.3]: [%g,%g]", s.min, s.max);
    cr_assert_lt(s.min, -0.099);
    cr_assert_gt(s.max, 0.299);
    cr_assert_lt(fabs(s.mean - 0.1), 0.002, "mean %g", s.mean);
    double sd = 0.4 / sqrt(12);
    cr_assert_lt(fabs(s.std - sd), 0.02 * sd, "std %g", s.std);
    free(v);
}

Test(init, uniform_bounds_survive_float_rounding)
{
    /* Neither bound is a float and the range spans about one float32 ulp,
     * so naive rounding would land outside it for a good share of draws. */
    struct dcv_init in = parse_ok("{\"class_name\":\"RandomUniform\",\"config\":"
                                  "{\"minval\":0.09999999,\"maxval\":0.1}}");
    const int64_t shape[] = { 10000 };
    float *v = fill_ok(&in, shape, 1, 0);
    for (int i = 0; i < 10000; i++)
        cr_assert((double)v[i] >= 0.09999999 && (double)v[i] <= 0.1, "[%d] = %.9g", i, v[i]);
    free(v);
}

Test(init, degenerate_uniform_is_constant)
{
    struct dcv_init in = parse_ok("{\"class_name\":\"RandomUniform\",\"config\":"
                                  "{\"minval\":0.1,\"maxval\":0.1}}");
    const int64_t shape[] = { 100 };
    float *v = fill_ok(&in, shape, 1, 0);
    for (int i = 0; i < 100; i++) cr_assert_eq(v[i], 0.1f, "[%d] = %g", i, v[i]);
    free(v);
}

Test(init, constants_exact)
{
    const int64_t shape[] = { 3, 7, 5 };
    struct { const char *spec; float want; } cases[] = {
        { "\"zeros\"", 0.0f },
        { "\"ones\"", 1.0f },
        { "{\"class_name\":\"Constant\",\"config\":{\"value\":3.25}}", 3.25f },
        { "{\"class_name\":\"Constant\",\"config\":{\"value\":-0.1}}", -0.1f },
        { "\"constant\"", 0.0f },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct dcv_init in = parse_ok(cases[c].spec);
        float v[105];
        for (int i = 0; i < 105; i++) v[i] = NAN;
        char err[DCV_ERRLEN];
        cr_assert_eq(dcv_init_fill(&in, shape, 3, 0, v, err), 0, "%s", err);
        for (int i = 0; i < 105; i++)
            cr_assert_eq(v[i], cases[c].want, "%s [%d] = %g", cases[c].spec, i, v[i]);
    }
}

/* ----------------------------------------------------------- determinism */

static const char *const random_specs[] = {
    "\"glorot_uniform\"", "\"glorot_normal\"", "\"he_normal\"", "\"he_uniform\"",
    "\"lecun_normal\"", "\"lecun_uniform\"", "\"random_normal\"", "\"random_uniform\"",
    "\"truncated_normal\"", "\"orthogonal\"",
    "{\"class_name\":\"VarianceScaling\",\"config\":{\"distribution\":\"untruncated_normal\"}}",
};

Test(init, same_seed_and_salt_same_bytes)
{
    const int64_t shape[] = { 3, 3, 8, 16 };
    size_t n = count_of(shape, 4);
    for (size_t k = 0; k < sizeof random_specs / sizeof random_specs[0]; k++) {
        struct dcv_init in = parse_ok(random_specs[k]);
        in.seed = 1234;
        float *a = fill_ok(&in, shape, 4, 77), *b = fill_ok(&in, shape, 4, 77);
        cr_assert(memcmp(a, b, n * sizeof *a) == 0, "%s not deterministic", random_specs[k]);
        free(a);
        free(b);
    }
}

Test(init, seed_or_salt_changes_values)
{
    const int64_t shape[] = { 3, 3, 8, 16 };
    size_t n = count_of(shape, 4);
    for (size_t k = 0; k < sizeof random_specs / sizeof random_specs[0]; k++) {
        struct dcv_init in = parse_ok(random_specs[k]);
        float *base = fill_ok(&in, shape, 4, 0);
        float *salted = fill_ok(&in, shape, 4, 1);
        in.seed = 1;
        float *seeded = fill_ok(&in, shape, 4, 0);
        size_t same_salt = 0, same_seed = 0;
        for (size_t i = 0; i < n; i++) {
            same_salt += base[i] == salted[i];
            same_seed += base[i] == seeded[i];
        }
        cr_assert_lt(same_salt, n / 100, "%s: salt barely matters", random_specs[k]);
        cr_assert_lt(same_seed, n / 100, "%s: seed barely matters", random_specs[k]);
        free(base);
        free(salted);
        free(seeded);
    }
}

/* The RNG is meant to give the same bytes on any machine; these values pin
 * the stream so a change to it (or a platform difference) is noticed. */
Test(init, stream_is_pinned)
{
    const int64_t shape[] = { 4 };
    struct dcv_init in = parse_ok("{\"class_name\":\"RandomNormal\",\"config\":{\"seed\":42}}");
    float *v = fill_ok(&in, shape, 1, 3);
    struct dcv_init u = parse_ok("{\"class_name\":\"RandomUniform\",\"config\":{\"seed\":42}}");
    float *w = fill_ok(&u, shape, 1, 3);
    uint32_t bits[8];
    memcpy(bits, v, 4 * sizeof *v);
    memcpy(bits + 4, w, 4 * sizeof *w);
    static const uint32_t want[8] = {
        0xbd7dcb7e, 0x3d310c41, 0xbd199099, 0xbd5d28f0,   /* -0.06196, 0.04322, ... */
        0xbcbdd5e3, 0x3c846dfe, 0xbc97a684, 0xbcda6723,   /* -0.02317, 0.01617, ... */
    };
    for (int i = 0; i < 8; i++)
        cr_assert_eq(bits[i], want[i], "[%d]: 0x%08x, pinned 0x%08x", i, bits[i], want[i]);
    free(v);
    free(w);
}

/* ------------------------------------------------- orthogonal / identity */

/* Max |G - gain^2 I| for the Gram matrix of columns (by_rows false) or rows. */
static double gram_error(const float *v, size_t rows, size_t cols, bool by_rows, double gain)
{
    size_t n = by_rows ? rows : cols, len = by_rows ? cols : rows;
    double worst = 0;
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++) {
            double s = 0;
            for (size_t k = 0; k < len; k++) {
                double x = by_rows ? v[a * cols + k] : v[k * cols + a];
                double y = by_rows ? v[b * cols + k] : v[k * cols + b];
                s += x * y;
            }
            worst = fmax(worst, fabs(s - (a == b ? gain * gain : 0)));
        }
    return worst;
}

Test(init, orthogonal_tall_has_orthonormal_columns)
{
    struct dcv_init in = parse_ok("\"orthogonal\"");
    const int64_t shape[] = { 3, 3, 4, 8 };   /* 36 x 8 */
    float *v = fill_ok(&in, shape, 4, 0);
    double e = gram_error(v, 36, 8, false, 1.0);
    cr_assert_lt(e, 1e-4, "Q^T Q - I = %g", e);
    free(v);
}

Test(init, orthogonal_wide_has_orthonormal_rows)
{
    struct dcv_init in = parse_ok("\"orthogonal\"");
    const int64_t shape[] = { 2, 16 };
    float *v = fill_ok(&in, shape, 2, 0);
    double e = gram_error(v, 2, 16, true, 1.0);
    cr_assert_lt(e, 1e-4, "Q Q^T - I = %g", e);
    free(v);
}

Test(init, orthogonal_square_and_large)
{
    struct dcv_init in = parse_ok("\"orthogonal\"");
    const int64_t sq[] = { 32, 32 };
    float *v = fill_ok(&in, sq, 2, 0);
    cr_assert_lt(gram_error(v, 32, 32, false, 1.0), 1e-4);
    cr_assert_lt(gram_error(v, 32, 32, true, 1.0), 1e-4);
    free(v);
    const int64_t big[] = { 3, 3, 32, 64 };   /* 288 x 64 */
    v = fill_ok(&in, big, 4, 0);
    cr_assert_lt(gram_error(v, 288, 64, false, 1.0), 1e-4);
    free(v);
}

Test(init, orthogonal_gain)
{
    struct dcv_init in = parse_ok("{\"class_name\":\"Orthogonal\",\"config\":{\"gain\":2.5}}");
    const int64_t tall[] = { 3, 3, 4, 8 }, wide[] = { 2, 16 };
    float *v = fill_ok(&in, tall, 4, 0);
    cr_assert_lt(gram_error(v, 36, 8, false, 2.5), 1e-4 * 6.25);
    free(v);
    v = fill_ok(&in, wide, 2, 0);
    cr_assert_lt(gram_error(v, 2, 16, true, 2.5), 1e-4 * 6.25);
    free(v);
}

Test(init, orthogonal_is_not_trivial)
{
    /* An identity-like or sign-only matrix would pass the Gram checks. */
    struct dcv_init in = parse_ok("\"orthogonal\"");
    const int64_t shape[] = { 16, 16 };
    float *v = fill_ok(&in, shape, 2, 0);
    int small = 0;
    for (int i = 0; i < 256; i++) small += fabsf(v[i]) < 1e-3f;
    cr_assert_lt(small, 8, "%d near-zero entries", small);
    free(v);
}

Test(init, identity_diagonal)
{
    struct dcv_init in = parse_ok("{\"class_name\":\"Identity\",\"config\":{\"gain\":2}}");
    const int64_t shape[] = { 3, 5 };
    float *v = fill_ok(&in, shape, 2, 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++)
            cr_assert_eq(v[i * 5 + j], i == j ? 2.0f : 0.0f, "[%d,%d] = %g", i, j, v[i * 5 + j]);
    free(v);
    const int64_t conv[] = { 2, 2, 3 };   /* flattened to 4 x 3 */
    v = fill_ok(&in, conv, 3, 0);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            cr_assert_eq(v[i * 3 + j], i == j ? 2.0f : 0.0f, "[%d,%d] = %g", i, j, v[i * 3 + j]);
    free(v);
}

/* ------------------------------------------------------------------ fans */

/* A uniform variance-scaling fill reaches (but never passes) its limit, so
 * the largest |value| pins down the fan the limit came from. */
static void check_limit(const char *spec, const int64_t *shape, int ndim, double fan)
{
    struct dcv_init in = parse_ok(spec);
    size_t n = count_of(shape, ndim);
    float *v = fill_ok(&in, shape, ndim, 0);
    struct stats s = stats_of(v, n);
    double limit = sqrt(3 * in.scale / fan), peak = fmax(-s.min, s.max);
    cr_assert_leq(peak, limit, "%s rank %d: %g beyond limit %g", spec, ndim, peak, limit);
    if (n >= 1000)
        cr_assert_gt(peak, 0.99 * limit, "%s rank %d: peak %g, limit %g", spec, ndim, peak, limit);
    free(v);
}

Test(init, fans_follow_keras_compute_fans)
{
    const int64_t r0[1] = { 0 }, r1[] = { 3000 }, r2[] = { 300, 100 }, r3[] = { 5, 40, 60 },
                  r5[] = { 2, 3, 4, 10, 20 };
    const char *glorot = "\"glorot_uniform\"", *he = "\"he_uniform\"";
    const char *fan_out = "{\"class_name\":\"VarianceScaling\",\"config\":"
                          "{\"mode\":\"fan_out\",\"distribution\":\"uniform\"}}";
    check_limit(glorot, r0, 0, 1);
    check_limit(glorot, r1, 1, 3000);
    check_limit(glorot, r2, 2, 200);
    check_limit(he, r2, 2, 300);
    check_limit(fan_out, r2, 2, 100);
    check_limit(glorot, r3, 3, 250);            /* receptive 5: in 200, out 300 */
    check_limit(he, r3, 3, 200);
    check_limit(fan_out, r3, 3, 300);
    check_limit(glorot, r5, 5, 360);            /* receptive 24: in 240, out 480 */
    check_limit(he, r5, 5, 240);
    check_limit(fan_out, r5, 5, 480);
}

Test(init, fill_rejects_bad_shapes)
{
    struct dcv_init in = parse_ok("\"he_normal\"");
    float v[4];
    char err[DCV_ERRLEN] = "";
    const int64_t neg[] = { 2, -1 }, empty[] = { 0, 4 }, huge[] = { INT64_MAX, INT64_MAX };
    cr_assert_eq(dcv_init_fill(&in, neg, 2, 0, v, err), DCV_EINVAL);
    cr_assert(strstr(err, "-1"), "%s", err);
    cr_assert_eq(dcv_init_fill(&in, empty, 2, 0, v, err), DCV_EINVAL);   /* fan_in 0 */
    cr_assert(strstr(err, "fan"), "%s", err);
    cr_assert_eq(dcv_init_fill(&in, huge, 2, 0, v, err), DCV_EINVAL);
    cr_assert_eq(dcv_init_fill(&in, NULL, 2, 0, v, err), DCV_EINVAL);
    cr_assert_eq(dcv_init_fill(&in, neg, -1, 0, v, err), DCV_EINVAL);
    struct dcv_init z = parse_ok("\"zeros\"");
    cr_assert_eq(dcv_init_fill(&z, empty, 2, 0, NULL, err), 0, "%s", err);
}

/* ------------------------------------------------------------- to_json */

static void round_trip(const char *spec)
{
    struct dcv_init a = parse_ok(spec);
    struct dcv_json *j = dcv_init_to_json(&a);
    cr_assert_not_null(j, "%s", spec);
    char *text = dcv_json_print(j);
    cr_assert_not_null(text);
    cr_assert_eq(dcv_json_type(dcv_json_get(j, "config")), DCV_JSON_OBJECT, "%s", text);
    char err[DCV_ERRLEN] = "";
    struct dcv_init b;
    cr_assert_eq(dcv_init_parse(j, NULL, WHAT, &b, err), 0, "%s: %s", text, err);
    cr_assert_eq(b.kind, a.kind, "%s", text);
    cr_assert_str_eq(b.name, a.name, "%s", text);
    cr_assert_eq(b.value, a.value, "%s", text);
    cr_assert_eq(b.mean, a.mean, "%s", text);
    cr_assert_eq(b.stddev, a.stddev, "%s", text);
    cr_assert_eq(b.minval, a.minval, "%s", text);
    cr_assert_eq(b.maxval, a.maxval, "%s", text);
    cr_assert_eq(b.scale, a.scale, "%s", text);
    cr_assert_eq(b.mode, a.mode, "%s", text);
    cr_assert_eq(b.distribution, a.distribution, "%s", text);
    cr_assert_eq(b.gain, a.gain, "%s", text);
    cr_assert_eq(b.seed, a.seed, "%s", text);
    free(text);
    dcv_json_free(j);
}

Test(init, to_json_round_trips)
{
    const char *specs[] = {
        "\"zeros\"", "\"ones\"",
        "{\"class_name\":\"Constant\",\"config\":{\"value\":0.3}}",
        "{\"class_name\":\"RandomNormal\",\"config\":{\"mean\":0.1,\"stddev\":0.7,\"seed\":5}}",
        "{\"class_name\":\"RandomUniform\",\"config\":{\"minval\":-2,\"maxval\":0.5,\"seed\":-3}}",
        "{\"class_name\":\"TruncatedNormal\",\"config\":{\"mean\":1e-3,\"stddev\":0.02}}",
        "{\"class_name\":\"VarianceScaling\",\"config\":{\"scale\":0.1,\"mode\":\"fan_avg\","
        "\"distribution\":\"untruncated_normal\",\"seed\":9007199254740992}}",
        "{\"class_name\":\"VarianceScaling\",\"config\":{\"mode\":\"fan_out\","
        "\"distribution\":\"uniform\"}}",
        "\"glorot_uniform\"", "\"glorot_normal\"", "\"he_normal\"",
        "{\"class_name\":\"HeUniform\",\"config\":{\"seed\":12}}",
        "\"lecun_normal\"", "\"lecun_uniform\"",
        "{\"class_name\":\"Orthogonal\",\"config\":{\"gain\":1.7,\"seed\":2}}",
        "{\"class_name\":\"Identity\",\"config\":{\"gain\":0.5}}",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) round_trip(specs[i]);
}

Test(init, to_json_uses_keras_class_names)
{
    struct { const char *spec, *want; } cases[] = {
        { "\"he_normal\"", "{\"class_name\":\"HeNormal\",\"config\":{\"seed\":null}}" },
        { "{\"class_name\":\"glorot_uniform\",\"config\":{\"seed\":4}}",
          "{\"class_name\":\"GlorotUniform\",\"config\":{\"seed\":4}}" },
        { "\"zeros\"", "{\"class_name\":\"Zeros\",\"config\":{}}" },
        { "\"normal\"",
          "{\"class_name\":\"RandomNormal\",\"config\":{\"mean\":0,\"stddev\":0.05,\"seed\":null}}" },
        { "\"variance_scaling\"",
          "{\"class_name\":\"VarianceScaling\",\"config\":{\"scale\":1,\"mode\":\"fan_in\","
          "\"distribution\":\"truncated_normal\",\"seed\":null}}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dcv_init in = parse_ok(cases[i].spec);
        struct dcv_json *j = dcv_init_to_json(&in);
        char *text = dcv_json_print(j);
        cr_assert_not_null(text);
        cr_assert_str_eq(text, cases[i].want);
        free(text);
        dcv_json_free(j);
    }
}

Test(init, to_json_keeps_edited_preset_numbers)
{
    /* A preset name with non-preset numbers must not be written as the preset. */
    struct dcv_init in = parse_ok("\"he_normal\"");
    in.scale = 5;
    struct dcv_json *j = dcv_init_to_json(&in);
    cr_assert_not_null(j);
    cr_assert_str_eq(dcv_json_string(dcv_json_get(j, "class_name")), "VarianceScaling");
    cr_assert_eq(dcv_json_number(dcv_json_get(dcv_json_get(j, "config"), "scale")), 5.0);
    dcv_json_free(j);
}
