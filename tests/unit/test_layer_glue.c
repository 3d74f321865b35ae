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
