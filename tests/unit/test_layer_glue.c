/* test_layer_glue.c — the glue layer classes (layer_norm.c, layer_act.c,
 * layer_resize.c) through the registry, against tests/numpy_layers.py.
 *
 * Each case finds its class by Keras name and goes parse → shape → weights
 * → bind → prepare → run on a random input with random weights; the input,
 * weights and config go to a temporary directory as .npy files plus
 * layers.json, one Python run of numpy_layers.py computes every reference
 * in float64, and shapes and values must agree. Refusals check the code
 * and that the message names the layer or argument.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deconvd/error.h"
#include "deconvd/json.h"
#include "deconvd/layers.h"
#include "deconvd/npy.h"
#include "testutil.h"

struct gcase {
    const char *cls, *cfg;
    int keras;
    int ndim;
    int64_t d[5];
};

struct gresult {
    struct dcv_shape out;
    float *y;
    size_t n;
};

static uint64_t g_rng = 0x2545F4914F6CDD1DULL;

static double urand(void)
{
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static size_t count_of(const struct dcv_shape *s)
{
    size_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= (size_t)s->d[i];
    return n;
}

static float *random_buf(size_t n, double lo, double hi)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * urand());
    return p;
}

/* A parsed state of class cls from config text; asserts success. */
static void *parse_ok(const struct dcv_layer_class **cls, const char *name, const char *cfg,
                      int keras)
{
    char err[DCV_ERRLEN] = "";
    *cls = dcv_layers_find(name);
    cr_assert_not_null(*cls, "no layer class %s", name);
    struct dcv_json *j = dcv_json_parse(cfg, strlen(cfg), err);
    cr_assert_not_null(j, "%s: %s", cfg, err);
    struct dcv_layer_ctx ctx = { .keras = (enum dcv_keras)keras, .max_weight_elems = 1 << 24 };
    void *st = NULL;
    int rc = (*cls)->parse(j, &ctx, &st, err);
    dcv_json_free(j);
    cr_assert_eq(rc, 0, "%s %s: %s", name, cfg, err);
    return st;
}

static void save(const char *dir, const char *file, const float *v, const struct dcv_shape *s)
{
    char path[700], err[DCV_ERRLEN];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(dcv_npy_save(path, v, s->d, s->ndim, err), 0, "%s", err);
}

/* Runs case c through the registry, writing its inputs for the reference. */
static void run_case(const char *dir, const struct gcase *c, struct gresult *r)
{
    char err[DCV_ERRLEN] = "", path[700];
    const struct dcv_layer_class *cls;
    void *st = parse_ok(&cls, c->cls, c->cfg, c->keras);
    struct dcv_shape in = { .ndim = c->ndim };
    memcpy(in.d, c->d, sizeof(int64_t) * (size_t)c->ndim);
    cr_assert_eq(cls->shape(st, &in, &r->out, err), 0, "%s %s: %s", c->cls, c->cfg, err);

    struct dcv_weight_want want[DCV_LAYER_MAX_WEIGHTS];
    float *w[DCV_LAYER_MAX_WEIGHTS] = { NULL };
    int nw = 0;
    if (cls->weights) cr_assert_eq(cls->weights(st, &in, want, &nw, err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/layers.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"keras\": %d, \"layers\": [{\"class_name\": \"%s\", \"config\": %s, "
               "\"weights\": [", c->keras, cls->name, c->cfg);
    for (int i = 0; i < nw; i++) {
        bool var = !strcmp(want[i].name, "moving_variance");
        w[i] = random_buf(count_of(&want[i].shape), var ? 0.2 : -1.5, 1.5);
        char file[32];
        snprintf(file, sizeof file, "w%d.npy", i);
        save(dir, file, w[i], &want[i].shape);
        fprintf(f, "%s\"%s\"", i ? ", " : "", file);
    }
    fputs("]}]}\n", f);
    fclose(f);
    if (cls->bind) cr_assert_eq(cls->bind(st, &in, w, err), 0, "%s", err);
    if (cls->prepare) cr_assert_eq(cls->prepare(st, &in, err), 0, "%s", err);

    size_t nx = count_of(&in);
    float *x = random_buf(nx, -3, 3);
    save(dir, "x.npy", x, &in);
    r->n = count_of(&r->out);
    r->y = malloc(sizeof(float) * (r->n ? r->n : 1));
    cr_assert_not_null(r->y);
    cr_assert_eq(cls->run(st, x, &in, r->y, &r->out, NULL, err), 0, "%s: %s", c->cls, err);
    if (cls->in_place) {          /* the same values when run over its input */
        cr_assert_eq(cls->run(st, x, &in, x, &r->out, NULL, err), 0, "%s", err);
        cr_assert_eq(memcmp(x, r->y, sizeof(float) * r->n), 0, "%s in place differs", c->cls);
    }
    cr_assert(cls->work(st, &in) > 0 || cls->identity, "%s: no work counted", c->cls);
    free(x);
    for (int i = 0; i < nw; i++) free(w[i]);
    cls->free_state(st);
}

static int sh(const char *cmd)
{
    int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *script(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", __FILE__);
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
    if ((slash = strrchr(buf, '/'))) {
        snprintf(slash, cap - (size_t)(slash - buf), "/numpy_layers.py");
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, cap, "tests/numpy_layers.py");
    cr_assert_eq(access(buf, R_OK), 0, "cannot find tests/numpy_layers.py");
    return buf;
}

/* Every case against the NumPy reference; tol relative, with an absolute
 * floor of tol as well (values are O(1)). */
static void check_cases(const struct gcase *cases, size_t n, double tol)
{
    char cmd[16384], buf[512], base[] = "/tmp/dcvglue.XXXXXX", err[DCV_ERRLEN];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy' >/dev/null 2>&1", tu_python());
    if (sh(cmd) != 0) cr_skip_test("%s cannot import numpy", tu_python());
    cr_assert_not_null(mkdtemp(base));
    struct gresult *res = calloc(n, sizeof *res);
    cr_assert_not_null(res);
    size_t len = (size_t)snprintf(cmd, sizeof cmd, "'%s' '%s'", tu_python(),
                                  script(buf, sizeof buf));
    for (size_t i = 0; i < n; i++) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/c%zu", base, i);
        cr_assert_eq(mkdir(dir, 0700), 0);
        run_case(dir, &cases[i], &res[i]);
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " '%s'", dir);
        cr_assert_lt(len, sizeof cmd);
    }
    cr_assert_eq(sh(cmd), 0, "numpy_layers.py failed: %s", cmd);
    for (size_t i = 0; i < n; i++) {
        const struct gcase *c = &cases[i];
        struct dcv_npy ref = { 0 };
        snprintf(buf, sizeof buf, "%s/c%zu/out.npy", base, i);
        cr_assert_eq(dcv_npy_load(buf, 0, &ref, err), 0, "%s", err);
        cr_assert_eq(ref.ndim, res[i].out.ndim, "%s %s: rank", c->cls, c->cfg);
        for (int d = 0; d < ref.ndim; d++)
            cr_assert_eq(ref.shape[d], res[i].out.d[d], "%s %s: dim %d is %lld, NumPy %lld",
                         c->cls, c->cfg, d, (long long)res[i].out.d[d], (long long)ref.shape[d]);
        for (size_t k = 0; k < ref.count; k++) {
            double a = res[i].y[k], b = ref.data[k];
            cr_assert(fabs(a - b) <= tol * (1 + fabs(b)), "%s %s (keras %d): [%zu] %.9g, NumPy "
                      "%.9g", c->cls, c->cfg, c->keras, k, a, b);
        }
        dcv_npy_release(&ref);
        free(res[i].y);
    }
    free(res);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    sh(cmd);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(layer_glue, batch_normalization_numpy)
{
    static const struct gcase cases[] = {
        { "BatchNormalization", "{\"axis\": -1}", 3, 2, { 3, 5 } },
        { "BatchNormalization", "{\"axis\": -1, \"epsilon\": 0.01}", 3, 4, { 2, 3, 4, 6 } },
        { "BatchNormalization", "{\"axis\": 1, \"momentum\": 0.9}", 3, 4, { 2, 5, 3, 4 } },
        { "BatchNormalization", "{\"axis\": 2, \"center\": false}", 3, 5, { 1, 2, 3, 2, 2 } },
        { "BatchNormalization", "{\"axis\": -1, \"scale\": false}", 3, 3, { 2, 7, 4 } },
        { "BatchNormalization", "{\"axis\": -1, \"scale\": false, \"center\": false, "
          "\"synchronized\": false, \"renorm\": true, \"renorm_clipping\": {\"rmax\": 3}, "
          "\"renorm_momentum\": 0.9}", 3, 3, { 2, 3, 3 } },
        { "BatchNormalization", "{\"axis\": [3], \"epsilon\": 1e-6, \"fused\": null}", 2, 4,
          { 2, 2, 3, 4 } },
        { "BatchNormalization", "{\"axis\": [1], \"epsilon\": 1e-6, \"fused\": false}", 2, 4,
          { 2, 4, 3, 2 } },
        { "batch_normalization", "{\"axis\": 1, \"epsilon\": 1e-6}", 3, 4, { 2, 4, 3, 2 } },
        { "BatchNormalization", "{\"axis\": [4], \"epsilon\": 1e-7}", 2, 5, { 1, 2, 2, 2, 3 } },
        { "BatchNormalization", "{\"axis\": [2], \"epsilon\": 1e-7}", 2, 5, { 1, 2, 3, 2, 3 } },
        { "BatchNormalization", "{\"axis\": -1, \"epsilon\": 1e-7, \"renorm\": true}", 2, 4,
          { 1, 2, 2, 3 } },
    };
    check_cases(cases, N(cases), 2e-6);
}

Test(layer_glue, identities_numpy)
{
    static const struct gcase cases[] = {
        { "Dropout", "{\"rate\": 0.5, \"noise_shape\": [null, 1, 3], \"seed\": 7}", 3, 3,
          { 2, 4, 3 } },
        { "SpatialDropout1D", "{\"rate\": 0.1}", 3, 3, { 2, 4, 3 } },
        { "SpatialDropout2D", "{\"rate\": 0.2, \"data_format\": \"channels_first\"}", 3, 4,
          { 1, 2, 3, 4 } },
        { "SpatialDropout3D", "{\"rate\": 1}", 3, 5, { 1, 2, 3, 2, 2 } },
        { "GaussianNoise", "{\"stddev\": 0.3, \"seed\": null}", 3, 2, { 4, 4 } },
        { "GaussianNoise", "{\"stddev\": 3}", 2, 2, { 4, 4 } },
        { "GaussianDropout", "{\"rate\": 0.3}", 3, 2, { 4, 4 } },
        { "GaussianDropout", "{\"rate\": 1.5}", 2, 2, { 4, 4 } },
        { "AlphaDropout", "{\"rate\": 0.3, \"noise_shape\": null}", 3, 3, { 2, 2, 2 } },
        { "ActivityRegularization", "{\"l1\": 0.01, \"l2\": 0.0}", 3, 2, { 4, 4 } },
    };
    check_cases(cases, N(cases), 0);
}

Test(layer_glue, activations_numpy)
{
    static const struct gcase cases[] = {
        { "Activation", "{\"activation\": \"relu\"}", 3, 3, { 2, 4, 3 } },
        { "Activation", "{\"activation\": \"tanh\"}", 2, 2, { 2, 9 } },
        { "Activation", "{\"activation\": \"sigmoid\"}", 3, 4, { 2, 3, 2, 2 } },
        { "Activation", "{\"activation\": \"softmax\"}", 3, 3, { 2, 3, 5 } },
        { "Activation", "{\"activation\": {\"class_name\": \"function\", \"config\": \"elu\"}}",
          3, 2, { 3, 4 } },
        { "Activation", "{\"activation\": \"hard_sigmoid\"}", 3, 2, { 4, 8 } },
        { "Activation", "{\"activation\": \"hard_sigmoid\"}", 2, 2, { 4, 8 } },
        { "Activation", "{\"activation\": \"gelu\"}", 3, 2, { 4, 8 } },
        { "Activation", "{\"activation\": \"celu\"}", 3, 2, { 4, 8 } },
        { "Activation", "{\"activation\": \"log_softmax\"}", 3, 3, { 2, 3, 5 } },
        { "Activation", "{\"activation\": \"glu\"}", 3, 3, { 2, 3, 6 } },
        { "Activation", "{\"activation\": \"glu\"}", 3, 2, { 2, 4100 } },
        { "ReLU", "{\"max_value\": null, \"negative_slope\": 0.0, \"threshold\": 0.0}", 3, 2,
          { 4, 8 } },
        { "ReLU", "{\"max_value\": 1.5}", 3, 3, { 2, 4, 4 } },
        { "ReLU", "{\"max_value\": 6.0}", 3, 2, { 4, 8 } },
        { "ReLU", "{\"negative_slope\": 0.2}", 3, 2, { 4, 8 } },
        { "ReLU", "{\"threshold\": 0.5}", 3, 2, { 4, 8 } },
        { "ReLU", "{\"threshold\": 0.5, \"negative_slope\": 0.1, \"max_value\": 2.0}", 3, 2,
          { 4, 8 } },
        { "LeakyReLU", "{\"negative_slope\": 0.1}", 3, 2, { 4, 8 } },
        { "LeakyReLU", "{}", 3, 2, { 4, 8 } },
        { "LeakyReLU", "{\"alpha\": 0.05}", 2, 2, { 4, 8 } },
        { "LeakyReLU", "{}", 2, 2, { 4, 8 } },
        { "ELU", "{}", 3, 2, { 4, 8 } },
        { "ELU", "{\"alpha\": 0.5}", 2, 3, { 2, 4, 3 } },
        { "Softmax", "{\"axis\": -1}", 3, 3, { 2, 3, 4 } },
        { "Softmax", "{\"axis\": 1}", 3, 4, { 2, 3, 2, 2 } },
        { "Softmax", "{\"axis\": [1, 2]}", 3, 4, { 2, 3, 2, 2 } },
        { "Softmax", "{\"axis\": [-1]}", 2, 2, { 3, 5 } },
        { "Softmax", "{\"axis\": 1}", 3, 4, { 2, 3, 20, 15 } },
        { "Softmax", "{\"axis\": [2, 3]}", 3, 4, { 2, 2, 3, 4 } },
        { "PReLU", "{\"shared_axes\": [1, 2]}", 3, 4, { 2, 3, 4, 5 } },
        { "PReLU", "{\"shared_axes\": null, \"alpha_initializer\": \"zeros\"}", 3, 3,
          { 2, 3, 4 } },
        { "PReLU", "{\"shared_axes\": 2}", 3, 3, { 2, 3, 4 } },
        { "PReLU", "{\"shared_axes\": [2, 3]}", 3, 4, { 2, 3, 2, 4 } },
        { "PReLU", "{}", 3, 2, { 3, 6 } },
    };
    check_cases(cases, N(cases), 2e-6);
}

Test(layer_glue, resize_numpy)
{
    static const struct gcase cases[] = {
        { "UpSampling1D", "{\"size\": 3}", 3, 3, { 2, 4, 3 } },
        { "UpSampling1D", "{}", 3, 3, { 1, 5, 1 } },
        { "UpSampling2D", "{\"size\": [2, 3]}", 3, 4, { 2, 3, 4, 2 } },
        { "UpSampling2D", "{\"size\": [3, 2], \"data_format\": \"channels_first\"}", 3, 4,
          { 2, 2, 3, 4 } },
        { "UpSampling2D", "{\"size\": 2, \"interpolation\": \"bilinear\"}", 3, 4, { 2, 4, 5, 3 } },
        { "UpSampling2D", "{\"size\": [3, 2], \"interpolation\": \"bilinear\", "
          "\"data_format\": \"channels_first\"}", 3, 4, { 1, 2, 5, 3 } },
        { "UpSampling2D", "{\"size\": [1, 4], \"interpolation\": \"Bilinear\"}", 2, 4,
          { 1, 1, 6, 1 } },
        { "UpSampling2D", "{\"size\": [3, 5], \"interpolation\": \"bilinear\"}", 3, 4,
          { 1, 13, 11, 2 } },
        { "UpSampling2D", "{\"size\": 7, \"interpolation\": \"bilinear\", "
          "\"data_format\": \"channels_first\"}", 3, 4, { 1, 1, 9, 6 } },
        { "UpSampling3D", "{\"size\": [1, 2, 3]}", 3, 5, { 1, 2, 3, 2, 2 } },
        { "UpSampling3D", "{\"size\": 2, \"data_format\": \"channels_first\"}", 3, 5,
          { 1, 2, 3, 2, 2 } },
        { "Cropping1D", "{\"cropping\": [1, 2]}", 3, 3, { 2, 6, 3 } },
        { "Cropping1D", "{}", 3, 3, { 2, 3, 3 } },
        { "Cropping2D", "{\"cropping\": [[1, 0], [2, 1]]}", 3, 4, { 2, 4, 5, 3 } },
        { "Cropping2D", "{\"cropping\": [1, 2], \"data_format\": \"channels_first\"}", 3, 4,
          { 2, 3, 4, 5 } },
        { "Cropping2D", "{\"cropping\": 1}", 3, 4, { 1, 3, 3, 2 } },
        { "Cropping3D", "{\"cropping\": [1, [0, 2], 0]}", 3, 5, { 1, 3, 4, 2, 2 } },
        { "Cropping3D", "{\"data_format\": \"channels_first\"}", 3, 5, { 1, 2, 3, 4, 5 } },
        { "ZeroPadding1D", "{\"padding\": [2, 1]}", 3, 3, { 2, 3, 2 } },
        { "ZeroPadding1D", "{\"padding\": 1, \"data_format\": \"channels_first\"}", 3, 3,
          { 2, 3, 2 } },
        { "ZeroPadding2D", "{\"padding\": [[1, 2], [0, 3]]}", 3, 4, { 2, 2, 3, 2 } },
        { "ZeroPadding2D", "{\"padding\": [1, 2], \"data_format\": \"channels_first\"}", 2, 4,
          { 2, 3, 2, 2 } },
        { "ZeroPadding3D", "{\"padding\": 1, \"data_format\": \"channels_first\"}", 3, 5,
          { 1, 2, 2, 3, 2 } },
        { "ZeroPadding3D", "{\"padding\": [[0, 1], [2, 0], [1, 1]]}", 3, 5, { 1, 2, 2, 3, 2 } },
    };
    check_cases(cases, N(cases), 1e-6);
}

/* --- refusals ------------------------------------------------------------ */

struct refusal {
    const char *cls, *cfg;
    int keras;
    int ndim;                   /* 0: parse refuses; else shape refuses this input */
    int64_t d[5];
    int rc;
    const char *sub;
};

static const struct refusal refusals[] = {
    { "BatchNormalization", "{\"axis\": \"x\"}", 3, 0, { 0 }, DCV_EINVAL, "'axis'" },
    { "BatchNormalization", "{\"axis\": [1, 2]}", 2, 0, { 0 }, DCV_EUNSUPP, "'axis' over 2" },
    { "BatchNormalization", "{\"axis\": 0}", 3, 0, { 0 }, DCV_EINVAL, "batch axis" },
    { "BatchNormalization", "{\"epsilon\": -1}", 3, 0, { 0 }, DCV_EINVAL, "'epsilon'" },
    { "BatchNormalization", "{\"center\": 1}", 3, 0, { 0 }, DCV_EINVAL, "'center'" },
    { "BatchNormalization", "{\"scale\": \"yes\"}", 3, 0, { 0 }, DCV_EINVAL, "'scale'" },
    { "BatchNormalization", "{\"momentum\": \"a\"}", 3, 0, { 0 }, DCV_EINVAL, "'momentum'" },
    { "BatchNormalization", "{\"renorm_clipping\": {\"rmid\": 1}}", 3, 0, { 0 }, DCV_EINVAL,
      "'renorm_clipping' key 'rmid'" },
    { "BatchNormalization", "{\"renorm_clipping\": 3}", 3, 0, { 0 }, DCV_EINVAL,
      "'renorm_clipping'" },
    { "BatchNormalization", "{\"virtual_batch_size\": 4}", 2, 0, { 0 }, DCV_EUNSUPP,
      "'virtual_batch_size'" },
    { "BatchNormalization", "{\"adjustment\": \"f\"}", 2, 0, { 0 }, DCV_EUNSUPP,
      "'adjustment'" },
    { "BatchNormalization", "{\"axis\": 4}", 3, 4, { 1, 2, 2, 2 }, DCV_ESHAPE,
      "'axis' 4 does not fit an input of rank 4" },
    { "BatchNormalization", "{\"axis\": -5}", 3, 4, { 1, 2, 2, 2 }, DCV_ESHAPE, "'axis' -5" },
    { "Dropout", "{}", 3, 0, { 0 }, DCV_EINVAL, "Dropout: 'rate' is required" },
    { "Dropout", "{\"rate\": 1.5}", 3, 0, { 0 }, DCV_EINVAL, "Dropout: 'rate'" },
    { "Dropout", "{\"rate\": 0.5, \"noise_shape\": [0]}", 3, 0, { 0 }, DCV_EINVAL,
      "'noise_shape'" },
    { "AlphaDropout", "{\"rate\": 2}", 3, 0, { 0 }, DCV_EINVAL, "AlphaDropout: 'rate'" },
    { "GaussianDropout", "{\"rate\": -0.1}", 3, 0, { 0 }, DCV_EINVAL, "GaussianDropout" },
    { "GaussianNoise", "{\"stddev\": 2}", 3, 0, { 0 }, DCV_EINVAL, "GaussianNoise: 'stddev'" },
    { "GaussianNoise", "{\"stddev\": -1}", 3, 0, { 0 }, DCV_EINVAL, "'stddev'" },
    { "Dropout", "{\"rate\": 1.5}", 2, 0, { 0 }, DCV_EINVAL, "'rate'" },
    { "ActivityRegularization", "{\"l1\": \"x\"}", 3, 0, { 0 }, DCV_EINVAL, "'l1'" },
    { "SpatialDropout2D", "{\"rate\": 0.1, \"data_format\": \"nchw\"}", 3, 0, { 0 }, DCV_EINVAL,
      "'data_format'" },
    { "SpatialDropout1D", "{\"rate\": 0.1}", 3, 4, { 1, 2, 3, 4 }, DCV_ESHAPE,
      "SpatialDropout1D: the input must have rank 3" },
    { "SpatialDropout2D", "{\"rate\": 0.1}", 3, 3, { 1, 2, 3 }, DCV_ESHAPE, "rank 4" },
    { "SpatialDropout3D", "{\"rate\": 0.1}", 3, 4, { 1, 2, 3, 4 }, DCV_ESHAPE, "rank 5" },
    { "Activation", "{}", 3, 0, { 0 }, DCV_EINVAL, "Activation: 'activation' is required" },
    { "Activation", "{\"activation\": \"nope\"}", 3, 0, { 0 }, DCV_EINVAL, "nope" },
    { "ReLU", "{\"max_value\": -1}", 3, 0, { 0 }, DCV_EINVAL, "ReLU: 'max_value'" },
    { "ReLU", "{\"negative_slope\": null}", 3, 0, { 0 }, DCV_EINVAL,
      "'negative_slope' cannot be null" },
    { "ReLU", "{\"threshold\": -0.5}", 2, 0, { 0 }, DCV_EINVAL, "'threshold'" },
    { "LeakyReLU", "{\"negative_slope\": -0.1}", 3, 0, { 0 }, DCV_EINVAL,
      "LeakyReLU: 'negative_slope'" },
    { "LeakyReLU", "{\"alpha\": null}", 2, 0, { 0 }, DCV_EINVAL, "'alpha' cannot be null" },
    { "ELU", "{\"alpha\": \"x\"}", 2, 0, { 0 }, DCV_EINVAL, "ELU: 'alpha'" },
    { "Softmax", "{\"axis\": \"x\"}", 3, 0, { 0 }, DCV_EINVAL, "Softmax: 'axis'" },
    { "Softmax", "{\"axis\": []}", 3, 0, { 0 }, DCV_EINVAL, "'axis'" },
    { "Softmax", "{\"axis\": [1, 3]}", 3, 4, { 1, 2, 3, 4 }, DCV_EUNSUPP, "not adjacent" },
    { "Softmax", "{\"axis\": 0}", 3, 3, { 1, 2, 3 }, DCV_ESHAPE, "batch axis" },
    { "Softmax", "{\"axis\": 3}", 3, 3, { 1, 2, 3 }, DCV_ESHAPE, "axis 3 does not fit" },
    { "Activation", "{\"activation\": \"softmax\"}", 3, 1, { 4 }, DCV_ESHAPE, "rank 2" },
    { "Activation", "{\"activation\": \"glu\"}", 3, 3, { 1, 2, 5 }, DCV_ESHAPE,
      "Activation: activation glu" },
    { "PReLU", "{\"shared_axes\": [0]}", 3, 0, { 0 }, DCV_EINVAL, "PReLU: 'shared_axes'" },
    { "PReLU", "{\"shared_axes\": \"x\"}", 3, 0, { 0 }, DCV_EINVAL, "'shared_axes'" },
    { "PReLU", "{\"shared_axes\": [3]}", 3, 3, { 1, 2, 3 }, DCV_ESHAPE, "shared axis 3" },
    { "UpSampling1D", "{\"size\": 0}", 3, 0, { 0 }, DCV_EINVAL, "UpSampling1D: 'size'" },
    { "UpSampling2D", "{\"size\": [2]}", 3, 0, { 0 }, DCV_EINVAL, "'size'" },
    { "UpSampling2D", "{\"interpolation\": \"bicubic\"}", 3, 0, { 0 }, DCV_EUNSUPP,
      "interpolation 'bicubic' is not supported" },
    { "UpSampling2D", "{\"interpolation\": \"lanczos3\"}", 3, 0, { 0 }, DCV_EUNSUPP,
      "lanczos3" },
    { "UpSampling2D", "{\"interpolation\": 3}", 3, 0, { 0 }, DCV_EINVAL, "'interpolation'" },
    { "UpSampling3D", "{\"data_format\": \"channels_middle\"}", 3, 0, { 0 }, DCV_EINVAL,
      "UpSampling3D: 'data_format'" },
    { "UpSampling2D", "{}", 3, 3, { 1, 2, 3 }, DCV_ESHAPE, "UpSampling2D: the input must have "
      "rank 4" },
    { "UpSampling1D", "{\"size\": 2147483648}", 3, 3, { 1, 2, 3 }, DCV_ESHAPE, "exceed" },
    { "Cropping1D", "{\"cropping\": [1, 2, 3]}", 3, 0, { 0 }, DCV_EINVAL, "'cropping'" },
    { "Cropping2D", "{\"cropping\": [[1, 2, 3], [0, 0]]}", 3, 0, { 0 }, DCV_EINVAL,
      "Cropping2D: 'cropping'" },
    { "Cropping2D", "{\"cropping\": -1}", 3, 0, { 0 }, DCV_EINVAL, "'cropping'" },
    { "Cropping3D", "{\"cropping\": [1, 1]}", 3, 0, { 0 }, DCV_EINVAL, "'cropping'" },
    { "Cropping1D", "{\"cropping\": [2, 2]}", 3, 3, { 1, 4, 3 }, DCV_ESHAPE,
      "Cropping1D: cropping (2, 2) on input axis 1 must leave something of its 4 values" },
    { "Cropping2D", "{\"cropping\": 1, \"data_format\": \"channels_first\"}", 3, 4,
      { 1, 3, 5, 2 }, DCV_ESHAPE, "on input axis 3" },
    { "Cropping3D", "{}", 3, 4, { 1, 3, 5, 2 }, DCV_ESHAPE, "rank 5" },
    { "ZeroPadding2D", "{\"padding\": [1, 2, 3]}", 3, 0, { 0 }, DCV_EINVAL,
      "ZeroPadding2D: 'padding'" },
    { "ZeroPadding3D", "{\"padding\": [[1, 1], [1, 1]]}", 3, 0, { 0 }, DCV_EINVAL, "'padding'" },
    { "ZeroPadding1D", "{\"padding\": [1, -1]}", 3, 0, { 0 }, DCV_EINVAL, "'padding'" },
    { "ZeroPadding1D", "{}", 3, 4, { 1, 2, 3, 4 }, DCV_ESHAPE, "rank 3" },
};

Test(layer_glue, refusals)
{
    for (size_t i = 0; i < N(refusals); i++) {
        const struct refusal *r = &refusals[i];
        char err[DCV_ERRLEN] = "";
        const struct dcv_layer_class *cls = dcv_layers_find(r->cls);
        cr_assert_not_null(cls, "%s", r->cls);
        struct dcv_json *j = dcv_json_parse(r->cfg, strlen(r->cfg), err);
        cr_assert_not_null(j, "%s", err);
        struct dcv_layer_ctx ctx = { .keras = (enum dcv_keras)r->keras };
        void *st = NULL;
        int rc = cls->parse(j, &ctx, &st, err);
        dcv_json_free(j);
        if (r->ndim) {
            cr_assert_eq(rc, 0, "%s %s: %s", r->cls, r->cfg, err);
            struct dcv_shape in = { .ndim = r->ndim }, out;
            memcpy(in.d, r->d, sizeof(int64_t) * (size_t)r->ndim);
            rc = cls->shape(st, &in, &out, err);
            cls->free_state(st);
        } else {
            cr_assert_null(st, "%s %s: state left on failure", r->cls, r->cfg);
        }
        cr_assert_eq(rc, r->rc, "%s %s: rc %s, expected %s (%s)", r->cls, r->cfg,
                     dcv_error_name(rc), dcv_error_name(r->rc), err);
        cr_assert_not_null(strstr(err, r->sub), "%s %s: message \"%s\" lacks \"%s\"", r->cls,
                           r->cfg, err, r->sub);
    }
}

/* A bound state's input is fixed by its weights. */
Test(layer_glue, bound_shape_refusals)
{
    char err[DCV_ERRLEN] = "";
    const struct dcv_layer_class *cls;
    struct dcv_shape in = { .ndim = 4, .d = { -1, 3, 3, 4 } }, out;
    struct dcv_weight_want w[DCV_LAYER_MAX_WEIGHTS];
    float *none[DCV_LAYER_MAX_WEIGHTS] = { NULL };
    int n;
    void *bn = parse_ok(&cls, "BatchNormalization", "{}", 3);
    struct dcv_shape unknown = { .ndim = 4, .d = { -1, 3, 3, -1 } };
    assert_err(cls->weights(bn, &unknown, w, &n, err), DCV_ESHAPE, err, "must be known");
    cr_assert_eq(cls->weights(bn, &in, w, &n, err), 0, "%s", err);
    cr_assert_eq(cls->bind(bn, &in, none, err), 0, "%s", err);
    in.d[3] = 5;
    assert_err(cls->shape(bn, &in, &out, err), DCV_ESHAPE, err, "must be 4");
    struct dcv_shape r3 = { .ndim = 3, .d = { 1, 3, 4 } };
    assert_err(cls->shape(bn, &r3, &out, err), DCV_ESHAPE, err, "rank 4");
    cls->free_state(bn);

    void *pr = parse_ok(&cls, "PReLU", "{\"shared_axes\": 1}", 3);
    struct dcv_shape p = { .ndim = 3, .d = { 1, -1, -1 } };
    assert_err(cls->weights(pr, &p, w, &n, err), DCV_ESHAPE, err, "PReLU: input dim 2 must be "
               "known");
    p.d[2] = 4;
    cr_assert_eq(cls->weights(pr, &p, w, &n, err), 0, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_eq(w[0].shape.ndim, 2);
    cr_assert_eq(w[0].shape.d[0], 1);
    cr_assert_eq(w[0].shape.d[1], 4);
    cr_assert(w[0].has_default);
    cr_assert_eq(cls->bind(pr, &p, none, err), 0, "%s", err);
    struct dcv_shape q = { .ndim = 3, .d = { 2, 7, 5 } };
    assert_err(cls->shape(pr, &q, &out, err), DCV_ESHAPE, err, "input dim 2 must be 4");
    q.d[2] = 4;
    cr_assert_eq(cls->shape(pr, &q, &out, err), 0, "%s", err);   /* shared axis: any length */
    cls->free_state(pr);
}

/* --- weights, folds, registry -------------------------------------------- */

Test(layer_glue, batch_normalization_weights)
{
    static const struct {
        const char *cfg;
        int n;
        const char *names[4];
    } forms[] = {
        { "{}", 4, { "gamma", "beta", "moving_mean", "moving_variance" } },
        { "{\"scale\": false}", 3, { "beta", "moving_mean", "moving_variance" } },
        { "{\"center\": false}", 3, { "gamma", "moving_mean", "moving_variance" } },
        { "{\"center\": false, \"scale\": false}", 2, { "moving_mean", "moving_variance" } },
    };
    char err[DCV_ERRLEN] = "";
    struct dcv_shape in = { .ndim = 4, .d = { -1, 2, 2, 3 } };
    for (size_t f = 0; f < N(forms); f++) {
        const struct dcv_layer_class *cls;
        void *st = parse_ok(&cls, "BatchNormalization", forms[f].cfg, 3);
        struct dcv_weight_want w[DCV_LAYER_MAX_WEIGHTS];
        int n = -1;
        cr_assert_eq(cls->weights(st, &in, w, &n, err), 0, "%s", err);
        cr_assert_eq(n, forms[f].n, "%s", forms[f].cfg);
        for (int i = 0; i < n; i++) {
            cr_assert_str_eq(w[i].name, forms[f].names[i]);
            cr_assert(w[i].has_default);
            cr_assert_eq(w[i].shape.ndim, 1);
            cr_assert_eq(w[i].shape.d[0], 3);
        }
        cls->free_state(st);
    }
}

/* Absent weights take Keras's defaults (1, 0, 0, 1): y = x / sqrt(1 + eps);
 * given ones, the affine map is gamma / sqrt(var + eps) and beta - mean *
 * that, which run applies. */
Test(layer_glue, batch_normalization_affine)
{
    char err[DCV_ERRLEN] = "";
    const struct dcv_layer_class *cls;
    struct dcv_shape in = { .ndim = 3, .d = { 2, 4, 2 } }, out;
    float *none[4] = { NULL };
    int axis = -1;
    const float *mul, *add;
    void *st = parse_ok(&cls, "BatchNormalization", "{\"axis\": 1, \"epsilon\": 0.01}", 3);
    cr_assert_not(cls->as_affine(st, &in, &axis, &mul, &add), "affine before bind");
    cr_assert_eq(cls->bind(st, &in, none, err), 0, "%s", err);
    cr_assert(cls->as_affine(st, &in, &axis, &mul, &add));
    cr_assert_eq(axis, 1);
    for (int c = 0; c < 4; c++) {
        cr_assert_float_eq(mul[c], 1 / sqrt(1.01), 1e-7);
        cr_assert_eq(add[c], 0.0f);
    }
    float gamma[] = { 2, -1, 0.5f, 3 }, beta[] = { 0.1f, 0.2f, -0.3f, 0 };
    float mean[] = { 1, 0, -2, 0.5f }, var[] = { 4, 0.25f, 1, 9 };
    float *w[] = { gamma, beta, mean, var };
    cr_assert_eq(cls->bind(st, &in, w, err), 0, "%s", err);
    cr_assert(cls->as_affine(st, &in, &axis, &mul, &add));
    for (int c = 0; c < 4; c++) {
        double s = gamma[c] / sqrt(var[c] + 0.01);
        cr_assert(fabs(mul[c] - s) <= 1e-6 * fabs(s), "scale[%d] %.9g, expected %.9g", c,
                  mul[c], s);
        cr_assert(fabs(add[c] - (beta[c] - mean[c] * s)) <= 1e-6, "shift[%d]", c);
    }
    float x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i - 7.5f;
    cr_assert_eq(cls->shape(st, &in, &out, err), 0, "%s", err);
    cr_assert_eq(cls->run(st, x, &in, y, &out, NULL, err), 0, "%s", err);
    for (int i = 0; i < 16; i++) {
        int c = (i / 2) % 4;
        double e = (x[i] - mean[c]) / sqrt(var[c] + 0.01) * gamma[c] + beta[c];
        cr_assert(fabs(y[i] - e) <= 1e-5 * (1 + fabs(e)), "y[%d] %.9g, expected %.9g", i, y[i], e);
    }
    cr_assert_eq(cls->work(st, &in), 16);
    struct dcv_json *cfg = cls->config(st);
    char *text = dcv_json_print(cfg);
    cr_assert_str_eq(text, "{\"axis\":1,\"epsilon\":0.01,\"center\":true,\"scale\":true}");
    free(text);
    dcv_json_free(cfg);
    atomic_bool stop = true;
    assert_err(cls->run(st, x, &in, y, &out, &stop, err), DCV_ECANCELED, err,
               "BatchNormalization");
    cls->free_state(st);
}

Test(layer_glue, activation_folds)
{
    static const struct {
        const char *cls, *cfg;
        int keras;
        bool fuses;
        enum dcv_act_kind kind;
        float alpha, max_value, threshold;
    } forms[] = {
        { "Activation", "{\"activation\": \"relu\"}", 3, true, DCV_ACT_RELU, 0, INFINITY, 0 },
        { "Activation", "{\"activation\": \"softmax\"}", 3, true, DCV_ACT_SOFTMAX, 0, INFINITY,
          0 },
        { "ReLU", "{\"max_value\": 6.0}", 3, true, DCV_ACT_RELU, 0, 6, 0 },
        { "ReLU", "{\"threshold\": 1.0, \"negative_slope\": 0.5}", 3, true, DCV_ACT_RELU, 0.5f,
          INFINITY, 1 },
        { "LeakyReLU", "{}", 3, true, DCV_ACT_LEAKY_RELU, 0.3f, INFINITY, 0 },
        { "LeakyReLU", "{}", 2, true, DCV_ACT_LEAKY_RELU, 0.3f, INFINITY, 0 },
        { "LeakyReLU", "{\"alpha\": 0.1}", 2, true, DCV_ACT_LEAKY_RELU, 0.1f, INFINITY, 0 },
        { "LeakyReLU", "{\"negative_slope\": 0.2}", 3, true, DCV_ACT_LEAKY_RELU, 0.2f, INFINITY,
          0 },
        { "ELU", "{}", 3, true, DCV_ACT_ELU, 1, INFINITY, 0 },
        { "ELU", "{\"alpha\": 0.7}", 2, true, DCV_ACT_ELU, 0.7f, INFINITY, 0 },
        { "Softmax", "{}", 3, true, DCV_ACT_SOFTMAX, 0, INFINITY, 0 },
        { "Softmax", "{\"axis\": [-1]}", 3, true, DCV_ACT_SOFTMAX, 0, INFINITY, 0 },
        { "Softmax", "{\"axis\": 1}", 3, false, DCV_ACT_SOFTMAX, 0, 0, 0 },
        { "Activation", "{\"activation\": \"glu\"}", 3, false, DCV_ACT_GLU, 0, 0, 0 },
        { "Softmax", "{\"axis\": [1, 2]}", 3, false, DCV_ACT_SOFTMAX, 0, 0, 0 },
    };
    for (size_t i = 0; i < N(forms); i++) {
        const struct dcv_layer_class *cls;
        void *st = parse_ok(&cls, forms[i].cls, forms[i].cfg, forms[i].keras);
        struct dcv_activation a;
        bool f = cls->as_activation(st, &a);
        cr_assert_eq(f, forms[i].fuses, "%s %s", forms[i].cls, forms[i].cfg);
        const struct dcv_activation *last = cls->activation(st);
        cr_assert_not_null(last);
        cr_assert_eq(last->kind, forms[i].kind, "%s %s: kind %s", forms[i].cls, forms[i].cfg,
                     dcv_activation_name(last->kind));
        if (f) {
            cr_assert_eq(a.kind, forms[i].kind);
            cr_assert_float_eq(a.alpha, forms[i].alpha, 1e-7, "%s %s", forms[i].cls,
                               forms[i].cfg);
            cr_assert_eq(a.max_value, forms[i].max_value, "%s %s", forms[i].cls, forms[i].cfg);
            cr_assert_eq(a.threshold, forms[i].threshold);
        }
        struct dcv_json *cfg = cls->config(st);
        cr_assert_not_null(cfg);
        dcv_json_free(cfg);
        cls->free_state(st);
    }
    const struct dcv_layer_class *cls;
    void *st = parse_ok(&cls, "PReLU", "{}", 3);
    cr_assert_null(cls->as_activation, "PReLU has no activation form");
    cls->free_state(st);
}

/* PReLU's alpha defaults follow its initializer when it is a constant. */
Test(layer_glue, prelu_initializers)
{
    static const struct {
        const char *cfg;
        bool has_default;
        float slope;
    } forms[] = {
        { "{}", true, 0 },
        { "{\"alpha_initializer\": {\"module\": \"keras.initializers\", \"class_name\": "
          "\"Zeros\", \"config\": {}}}", true, 0 },
        { "{\"alpha_initializer\": \"ones\"}", true, 1 },
        { "{\"alpha_initializer\": {\"class_name\": \"Constant\", \"config\": {\"value\": 0.25}}}",
          true, 0.25f },
        { "{\"alpha_initializer\": \"glorot_uniform\"}", false, 0 },
    };
    char err[DCV_ERRLEN] = "";
    struct dcv_shape in = { .ndim = 2, .d = { 1, 3 } }, out;
    for (size_t i = 0; i < N(forms); i++) {
        const struct dcv_layer_class *cls;
        void *st = parse_ok(&cls, "PReLU", forms[i].cfg, 3);
        struct dcv_weight_want w[DCV_LAYER_MAX_WEIGHTS];
        int n;
        cr_assert_eq(cls->weights(st, &in, w, &n, err), 0, "%s", err);
        cr_assert_str_eq(w[0].name, "alpha");
        cr_assert_eq(w[0].has_default, forms[i].has_default, "%s", forms[i].cfg);
        if (forms[i].has_default) {
            float *none[1] = { NULL }, x[3] = { -2, 0.5f, -1 }, y[3];
            cr_assert_eq(cls->bind(st, &in, none, err), 0, "%s", err);
            cr_assert_eq(cls->shape(st, &in, &out, err), 0, "%s", err);
            cr_assert_eq(cls->run(st, x, &in, y, &out, NULL, err), 0, "%s", err);
            cr_assert_float_eq(y[0], -2 * forms[i].slope, 1e-7, "%s", forms[i].cfg);
            cr_assert_eq(y[1], 0.5f);
        }
        cls->free_state(st);
    }
}

Test(layer_glue, registry_names)
{
    static const struct { const char *name, *canonical; } names[] = {
        { "BatchNormalization", "BatchNormalization" },
        { "batch_normalization", "BatchNormalization" },
        { "BatchNormalizationV2", "BatchNormalization" },
        { "Dropout", "Dropout" },
        { "spatial_dropout2d", "SpatialDropout2D" },
        { "GaussianNoise", "GaussianNoise" },
        { "activity_regularization", "ActivityRegularization" },
        { "leaky_re_lu", "LeakyReLU" },
        { "p_re_lu", "PReLU" },
        { "re_lu", "ReLU" },
        { "Softmax", "Softmax" },
        { "up_sampling2d", "UpSampling2D" },
        { "Cropping3D", "Cropping3D" },
        { "zero_padding1d", "ZeroPadding1D" },
    };
    for (size_t i = 0; i < N(names); i++) {
        const struct dcv_layer_class *c = dcv_layers_find(names[i].name);
        cr_assert_not_null(c, "%s", names[i].name);
        cr_assert_str_eq(c->name, names[i].canonical);
        cr_assert_not_null(strstr(dcv_layers_supported(), names[i].canonical));
    }
}

/* /config shows every resize argument in Keras 3's spelling. */
Test(layer_glue, resize_config)
{
    static const struct { const char *cls, *cfg, *out; } forms[] = {
        { "Cropping2D", "{\"name\": \"c\", \"cropping\": 1}",
          "{\"name\":\"c\",\"cropping\":[[1,1],[1,1]],\"data_format\":\"channels_last\"}" },
        { "Cropping1D", "{}", "{\"cropping\":[1,1]}" },
        { "ZeroPadding1D", "{\"padding\": [2, 1], \"data_format\": \"channels_first\"}",
          "{\"padding\":[2,1],\"data_format\":\"channels_first\"}" },
        { "ZeroPadding3D", "{\"padding\": [1, [0, 2], 3]}",
          "{\"padding\":[[1,1],[0,2],[3,3]],\"data_format\":\"channels_last\"}" },
        { "UpSampling1D", "{}", "{\"size\":2}" },
        { "UpSampling2D", "{\"size\": 3, \"interpolation\": \"BILINEAR\"}",
          "{\"size\":[3,3],\"interpolation\":\"bilinear\",\"data_format\":\"channels_last\"}" },
        { "UpSampling3D", "{\"size\": [1, 2, 3]}",
          "{\"size\":[1,2,3],\"data_format\":\"channels_last\"}" },
    };
    for (size_t i = 0; i < N(forms); i++) {
        const struct dcv_layer_class *cls;
        void *st = parse_ok(&cls, forms[i].cls, forms[i].cfg, 3);
        struct dcv_json *c = cls->config(st);
        cr_assert_not_null(c);
        char *text = dcv_json_print(c);
        cr_assert_str_eq(text, forms[i].out, "%s %s", forms[i].cls, forms[i].cfg);
        free(text);
        dcv_json_free(c);
        cls->free_state(st);
    }
}
